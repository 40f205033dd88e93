/** Builders for ticketing tests: valid cases, a settable clock, and stage/sink wiring. */
import { MemoryDocStore } from '../../shared/adapters/store/memory.js';
import { JiraTicketSink } from '../../shared/adapters/tickets/jira.js';
import { LocalTicketSink } from '../../shared/adapters/tickets/local.js';
import { type Case, CaseSchema } from '../../shared/core/model/case.js';
import type { PipelineEvent } from '../../shared/core/model/events.js';
import type { Clock, DocStore } from '../../shared/core/ports.js';
import type { TicketDeps } from '../../shared/core/tickets/context.js';
import { type TicketPolicy, TicketPolicySchema } from '../../shared/core/tickets/policy.js';
import type { TicketSink } from '../../shared/core/tickets/ports.js';
import { createTicketStage } from '../../shared/core/tickets/stage.js';
import { type JiraDouble, type JiraDoubleOptions, startJiraDouble } from '../helpers/jira-double.js';

export const T0 = '2026-03-01T10:00:00.000Z';

export class TestClock implements Clock {
  private t: number;
  constructor(iso = T0) {
    this.t = Date.parse(iso);
  }
  now(): Date {
    return new Date(this.t);
  }
  advance(ms: number): void {
    this.t += ms;
  }
}

export interface CaseOptions {
  n?: number;
  bucket?: string;
  type?: string;
  owner?: string;
  severity?: Case['severity'];
  environment?: Case['enrichment']['environment'];
  project?: string;
}

/** A valid case (parsed by CaseSchema) for an S3 bucket finding; override anything after. */
export function makeCase(opts: CaseOptions = {}, override: Partial<Case> = {}): Case {
  const n = opts.n ?? 1;
  const bucket = opts.bucket ?? `logs-111122223333-${n}`;
  const type = opts.type ?? 'Policy:S3/BucketBlockPublicAccessDisabled';
  const owner = opts.owner ?? 'alice@example.com';
  const resourceId = `arn:aws:s3:::${bucket}`;
  return CaseSchema.parse({
    key: `aws|${resourceId.toLowerCase()}|${type}`,
    provider: 'aws',
    resourceId,
    resourceName: bucket,
    resourceType: 'S3Bucket',
    account: '111122223333',
    region: 'us-east-1',
    type,
    title: `Amazon S3 Block Public Access was disabled for bucket ${bucket}`,
    severity: opts.severity ?? 'high',
    status: 'awaiting-approval',
    statusReason: 'production change needs approval',
    sourceStatus: 'active',
    sources: ['guardduty'],
    findingKeys: ['0'.repeat(64)],
    sample: false,
    muted: false,
    firstSeen: T0,
    lastSeen: T0,
    occurrences: 1,
    findingOccurrences: [1],
    compliance: { controls: ['S3.8'], standards: ['standards/aws-foundational-security-best-practices/v/1.0.0'] },
    enrichment: {
      owner,
      ownerEmail: owner,
      team: 'payments',
      application: 'checkout',
      environment: opts.environment ?? 'prod',
      criticality: null,
      unowned: false,
      provenance: {
        owner: { via: 'tag', detail: 'owner from tag `owner` on the resource', ref: 'owner' },
        environment: { via: 'registry-account', detail: 'environment from account 111122223333 in the registry' },
      },
      jira: { project: opts.project ?? 'SEC', assigneeEmail: 'secops-lead@example.com' },
      warnings: [],
      complete: true,
    },
    exception: null,
    lastDecision: {
      isNewCase: true,
      recurrence: false,
      unchanged: false,
      exception: null,
      exceptionExpired: null,
      ticket: { wanted: true, reason: 'active finding' },
      verify: false,
    },
    remediation: {
      action: 's3.block-public-access',
      mode: 'approval',
      reason: 'prod needs approval',
      gates: [],
      state: 'awaiting-approval',
      plan: {
        summary: 'turn on Block Public Access',
        noop: false,
        steps: [
          {
            say: `turn on all four Block Public Access flags on ${bucket}`,
            call: {
              api: 's3:PutPublicAccessBlock',
              permission: 's3:PutBucketPublicAccessBlock',
              input: { Bucket: bucket },
            },
          },
        ],
      },
    },
    ticket: null,
    verification: null,
    evidenceHead: null,
    createdAt: T0,
    updatedAt: T0,
    closedAt: null,
    reopenCount: 0,
    ...override,
  });
}

/** The case's last decision (every case from makeCase has one). */
export function decisionOf(c: Case): NonNullable<Case['lastDecision']> {
  if (!c.lastDecision) throw new Error(`case ${c.key} has no decision`);
  return c.lastDecision;
}

export async function putCase(store: DocStore, c: Case): Promise<void> {
  await store.put('cases', c.key, c);
}

export async function readCase(store: DocStore, key: string): Promise<Case> {
  const doc = await store.get('cases', key);
  return CaseSchema.parse(doc?.value);
}

let eventSeq = 0;
export function decided(
  c: Case,
  opts: {
    isNewCase?: boolean;
    recurrence?: boolean;
    id?: string;
    statusChanged?: boolean;
    detail?: Record<string, unknown>;
  } = {},
): PipelineEvent {
  return {
    id: opts.id ?? `decided-${++eventSeq}`,
    type: 'case.decided',
    caseKey: c.key,
    at: T0,
    isNewCase: opts.isNewCase ?? true,
    recurrence: opts.recurrence ?? false,
    statusChanged: opts.statusChanged ?? false,
    ...(opts.detail ? { detail: opts.detail } : {}),
  };
}

/** The verifier's `case.verified` event for `c` (verdict verified, an evidence hash and summary). */
export function verified(c: Case, id = 'v'): PipelineEvent {
  return {
    id,
    type: 'case.verified',
    caseKey: c.key,
    at: c.updatedAt,
    verdict: 'verified',
    detail: { evidenceHash: 'b'.repeat(64), evidenceSummary: 'flags on' },
  };
}

/** Ticket policy overrides that turn grouping off (one ticket per case, whatever the storm). */
export const NO_GROUPING = {
  grouping: {
    enabled: false,
    threshold: 10,
    windowMinutes: 60,
    mode: 'table',
    subtaskIssueType: 'Subtask',
    refreshSeconds: 60,
  },
};

export function policy(overrides: Record<string, unknown> = {}): TicketPolicy {
  return TicketPolicySchema.parse(overrides);
}

/** Records every wait (the Retry-After and backoff figures) without waiting. */
export function recordingSleep(): { sleep: (ms: number) => Promise<void>; waits: number[] } {
  const waits: number[] = [];
  return { waits, sleep: async (ms) => void waits.push(ms) };
}

export interface Harness {
  store: MemoryDocStore;
  clock: TestClock;
  sink: TicketSink;
  deps: TicketDeps;
  stage: ReturnType<typeof createTicketStage>;
  waits: number[];
  double?: JiraDouble;
  close(): Promise<void>;
}

/** A stage over the local sink. */
export function localHarness(policyOverrides: Record<string, unknown> = {}): Harness {
  const clock = new TestClock();
  const store = new MemoryDocStore({ clock });
  const sink = new LocalTicketSink(store, clock);
  const { sleep, waits } = recordingSleep();
  const deps: TicketDeps = {
    store,
    sink,
    clock,
    log: quietLog,
    policy: policy(policyOverrides),
    sleep,
    random: () => 0.5,
  };
  return { store, clock, sink, deps, stage: createTicketStage(deps), waits, close: async () => {} };
}

/** A stage over JiraTicketSink (jira.js) against a fresh double. */
export async function jiraHarness(
  policyOverrides: Record<string, unknown> = {},
  doubleOptions: JiraDoubleOptions = {},
  sinkOptions: { timeoutMs?: number } = {},
): Promise<Harness & { double: JiraDouble; jira: JiraTicketSink }> {
  const double = await startJiraDouble({
    users: [
      {
        accountId: '000000:00000000-0000-0000-0000-000000000001',
        emailAddress: 'alice@example.com',
        displayName: 'Alice',
      },
      {
        accountId: '000000:00000000-0000-0000-0000-000000000002',
        emailAddress: 'secops-lead@example.com',
        displayName: 'Lead',
      },
    ],
    ...doubleOptions,
  });
  const clock = new TestClock();
  const store = new MemoryDocStore({ clock });
  const { sleep, waits } = recordingSleep();
  const jira = new JiraTicketSink({
    config: {
      baseUrl: double.url,
      auth: { kind: 'basic', email: 'closeloop@example.com', apiToken: 'test-token-0000' },
      project: 'SEC',
      timeoutMs: sinkOptions.timeoutMs ?? 2_000,
    },
    retry: { maxAttempts: 8, baseDelayMs: 10, maxDelayMs: 5_000 },
    sleep,
  });
  const deps: TicketDeps = {
    store,
    sink: jira,
    clock,
    log: quietLog,
    policy: policy({ retry: { maxAttempts: 8, baseDelayMs: 10, maxDelayMs: 5_000 }, ...policyOverrides }),
    sleep,
    random: () => 0.5,
  };
  return {
    store,
    clock,
    sink: jira,
    jira,
    deps,
    stage: createTicketStage(deps),
    waits,
    double,
    close: () => double.close(),
  };
}

const noop = () => {};
export const quietLog = { debug: noop, info: noop, warn: noop, error: noop };
