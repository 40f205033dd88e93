import { MemoryDocStore } from '../shared/adapters/store/memory.js';
import { JiraTicketSink } from '../shared/adapters/tickets/jira.js';
import { type Case, CaseSchema } from '../shared/core/model/case.js';
import { silentLogger } from '../shared/core/ports.js';
import type { TicketDeps } from '../shared/core/tickets/context.js';
import { drainOutbox } from '../shared/core/tickets/outbox.js';
import { TicketPolicySchema } from '../shared/core/tickets/policy.js';
import { createTicketStage } from '../shared/core/tickets/stage.js';
import { startJiraDouble } from '../test/helpers/jira-double.js';
import { ranAsScript } from './root.js';

const TYPES = [
  'Policy:S3/BucketBlockPublicAccessDisabled',
  'Policy:S3/BucketAnonymousAccessGranted',
  'Policy:S3/BucketPublicAccessGranted',
  'S3.8',
  'S3.2',
  'S3.3',
  'IAM.3',
  'IAM.8',
  'UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS',
  'Recon:IAMUser/MaliciousIPCaller',
] as const;

export interface TicketStormResult {
  jiraCallsPerCase: number;
  duplicateTickets: number;
  wallMs: number;
  cases: number;
  calls: number;
}

function caseFor(resource: number, type: string, owner: number, at: string): Case {
  const bucket = `bench-111122223333-${resource}`;
  const resourceId = `arn:aws:s3:::${bucket}`;
  const email = `owner-${owner}@example.com`;
  return CaseSchema.parse({
    key: `aws|${resourceId}|${type}`,
    provider: 'aws',
    resourceId,
    resourceName: bucket,
    resourceType: 'S3Bucket',
    account: '111122223333',
    region: 'us-east-1',
    type,
    title: `${type} on ${bucket}`,
    severity: (['critical', 'high', 'medium', 'low'] as const)[resource % 4],
    status: 'open',
    statusReason: 'new',
    sourceStatus: 'active',
    sources: ['guardduty'],
    findingKeys: [],
    sample: false,
    muted: false,
    firstSeen: at,
    lastSeen: at,
    occurrences: 1,
    findingOccurrences: [],
    compliance: { controls: [], standards: [] },
    enrichment: {
      owner: email,
      ownerEmail: email,
      team: `team-${owner}`,
      application: null,
      environment: resource % 3 === 0 ? 'prod' : 'dev',
      criticality: null,
      unowned: false,
      provenance: {
        owner: { via: 'tag', detail: 'owner from tag `owner`' },
        environment: { via: 'registry-account', detail: 'environment from the registry' },
      },
      jira: { project: 'SEC' },
      warnings: [],
      complete: true,
    },
    exception: null,
    remediation: { action: null, mode: 'none', reason: 'ticket only', gates: [], state: 'none' },
    ticket: null,
    verification: null,
    evidenceHead: null,
    createdAt: at,
    updatedAt: at,
    closedAt: null,
    reopenCount: 0,
  });
}

/**
 * Runs the storm and returns the figures.
 * @example
 * const { jiraCallsPerCase, duplicateTickets } = await ticketStormBench({ findings: 10_000 });
 */
export async function ticketStormBench(
  opts: { findings?: number; resources?: number; owners?: number } = {},
): Promise<TicketStormResult> {
  const findings = opts.findings ?? 10_000;
  const resources = opts.resources ?? 200;
  const owners = opts.owners ?? 20;
  const double = await startJiraDouble({
    users: Array.from({ length: owners }, (_, i) => ({
      accountId: `000000:00000000-0000-0000-0000-${String(i).padStart(12, '0')}`,
      emailAddress: `owner-${i}@example.com`,
      displayName: `Owner ${i}`,
    })),
  });
  let t = Date.parse('2026-03-01T00:00:00.000Z');
  const clock = { now: () => new Date(t) };
  const store = new MemoryDocStore();
  const deps: TicketDeps = {
    store,
    clock,
    log: silentLogger,
    policy: TicketPolicySchema.parse({}),
    sink: new JiraTicketSink({
      config: {
        baseUrl: double.url,
        auth: { kind: 'basic', email: 'bench@example.com', apiToken: 'bench-token' },
        project: 'SEC',
        timeoutMs: 10_000,
      },
    }),
  };
  const stage = createTicketStage(deps);
  const started = performance.now();
  try {
    const typesPerResource = Math.max(1, Math.min(TYPES.length, Math.ceil(findings / resources / 5)));
    const cases = new Set<string>();
    const CONCURRENCY = 8;
    for (let i = 0; i < findings; i += CONCURRENCY) {
      const batch: Promise<unknown>[] = [];
      for (let j = i; j < Math.min(findings, i + CONCURRENCY); j++) {
        const r = j % resources;
        const type = TYPES[Math.floor(j / resources) % typesPerResource] ?? TYPES[0];
        const at = clock.now().toISOString();
        const fresh = caseFor(r, type, r % owners, at);
        batch.push(
          (async () => {
            const stored = await store.get('cases', fresh.key);
            const prev = stored ? CaseSchema.parse(stored.value) : undefined;
            const isNewCase = prev === undefined;
            const next = prev ? { ...prev, occurrences: prev.occurrences + 1, lastSeen: at, updatedAt: at } : fresh;
            await store.put('cases', fresh.key, next);
            cases.add(fresh.key);
            await stage.handle({
              id: `f-${j}`,
              type: 'case.decided',
              caseKey: fresh.key,
              at,
              isNewCase,
              recurrence: !isNewCase,
              statusChanged: false,
            });
          })(),
        );
      }
      await Promise.all(batch);
      t += 100 * CONCURRENCY; // 100 ms between findings
    }
    // The outbox holds what the budget deferred: drain it as the minutes pass.
    for (let i = 0; i < 1_000 && (await store.list('ticket-outbox', { limit: 1 })).length > 0; i++) {
      t += 60_000;
      await drainOutbox(deps);
    }
    const wallMs = performance.now() - started;
    const perLabel = new Map<string, number>();
    for (const issue of double.issues.values()) {
      const label = issue.fields.labels.find((l) => /^closeloop-[0-9a-f]{32}$/.test(l)) ?? issue.key;
      perLabel.set(label, (perLabel.get(label) ?? 0) + 1);
    }
    const duplicateTickets = [...perLabel.values()].reduce((s, n) => s + n - 1, 0);
    const calls = double.calls.length;
    return {
      jiraCallsPerCase: Math.round((calls / cases.size) * 1000) / 1000,
      duplicateTickets,
      wallMs: Math.round(wallMs),
      cases: cases.size,
      calls,
    };
  } finally {
    await double.close();
  }
}

/** The bench harness's hook (bench/run.ts): figures and table rows. */
export async function benchRows(
  quick: boolean,
): Promise<{ results: Record<string, unknown>; rows: Array<[string, string, string]> }> {
  const r = await ticketStormBench({ findings: quick ? 2_000 : 10_000 });
  return {
    results: {
      jiraCallsPerCase: r.jiraCallsPerCase,
      duplicateTickets: r.duplicateTickets,
      ticketStormWallMs: r.wallMs,
      ticketStormCases: r.cases,
      ticketStormJiraCalls: r.calls,
    },
    rows: [
      ['ticket storm: Jira calls per case', r.jiraCallsPerCase.toFixed(3), `${r.calls} calls, ${r.cases} cases`],
      ['ticket storm: duplicate tickets', String(r.duplicateTickets), `wall ${(r.wallMs / 1000).toFixed(1)} s`],
    ],
  };
}

if (ranAsScript('ticket-storm')) {
  const findings = process.argv[2] ? Number(process.argv[2]) : undefined;
  ticketStormBench(findings ? { findings } : {}).then(
    (r) => console.log(JSON.stringify(r)),
    (e: unknown) => {
      console.error(e);
      process.exitCode = 1;
    },
  );
}
