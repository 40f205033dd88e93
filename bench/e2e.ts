/**
 * End-to-end latency per finding, from ingest to verified closure, against local doubles: the local
 * runtime (SQLite store, durable in-process bus, local ticket sink, local evidence folder) with `apply` on
 * and the real `s3.block-public-access` action talking to a stateful in-process S3 double (every S3Client
 * `send` answered by aws-sdk-client-mock from a bucket map: reads see what earlier writes changed, so
 * verification really checks the applied fix).
 *
 * Each finding is a GuardDuty `Policy:S3/BucketAnonymousAccessGranted` on its own public bucket in the dev
 * account (mode auto): ingest → decide → plan → apply → verify → evidence. The clock starts when the
 * finding is handed to `ingest` and stops when the run has settled (bus drained, outbox sent) and the case
 * reads `verified`; findings are sent one after another, so each figure is one finding's own path with
 * nothing queued ahead of it. A few warm-up findings (JIT, first SQLite pages) are not counted.
 *
 * Run alone: `npx tsx bench/e2e.ts [findings]`.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DeleteBucketPolicyCommand,
  DeletePublicAccessBlockCommand,
  GetBucketAclCommand,
  GetBucketPolicyCommand,
  GetBucketPolicyStatusCommand,
  GetBucketTaggingCommand,
  GetPublicAccessBlockCommand,
  type Grant,
  type PublicAccessBlockConfiguration,
  PutBucketAclCommand,
  PutBucketPolicyCommand,
  PutPublicAccessBlockCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { parse, stringify } from 'yaml';
import { createCloudClients } from '../shared/actions/clients.js';
import type { ActionContext } from '../shared/actions/define.js';
import { createLocalRuntime } from '../shared/adapters/wiring/local.js';
import { CaseSchema } from '../shared/core/model/case.js';
import { caseKeyOf } from '../shared/core/pipeline/decide.js';
import { normalize } from '../shared/core/pipeline/normalize.js';
import { silentLogger, systemClock } from '../shared/core/ports.js';
import { projectRoot, ranAsScript } from './root.js';

const root = projectRoot(import.meta.url);
const ACCOUNT = '444455556666'; // acme-web-dev in examples/config: environment dev → mode auto
const ALL_USERS = 'http://acs.amazonaws.com/groups/global/AllUsers';

export interface E2eResult {
  e2eP50Ms: number;
  e2eP99Ms: number;
  e2eMaxMs: number;
  /** Findings measured (warm-up excluded). */
  e2eFindings: number;
  /** Measured findings whose case did not end `verified` (target 0). */
  e2eNotVerified: number;
}

interface BucketState {
  pab: PublicAccessBlockConfiguration | null;
  grants: Grant[];
  policy: string | null;
}

/** An S3 error the way the SDK surfaces it: `name` carries the S3 error code the action matches on. */
function s3Error(code: string, message: string): Error {
  const e = new Error(message);
  e.name = code;
  return e;
}

/**
 * A stateful S3 double for the calls s3.block-public-access makes. Every bucket starts public (no Block
 * Public Access configuration, an AllUsers READ grant). Returns the mock so the caller can restore it.
 */
export function startS3Double(): { buckets: Map<string, BucketState>; restore(): void } {
  const buckets = new Map<string, BucketState>();
  const bucket = (name: string | undefined): BucketState => {
    if (!name) throw s3Error('NoSuchBucket', 'no bucket named');
    let b = buckets.get(name);
    if (!b) {
      b = {
        pab: null,
        grants: [
          { Grantee: { Type: 'CanonicalUser', ID: '0'.repeat(64) }, Permission: 'FULL_CONTROL' },
          { Grantee: { Type: 'Group', URI: ALL_USERS }, Permission: 'READ' },
        ],
        policy: null,
      };
      buckets.set(name, b);
    }
    return b;
  };
  let seq = 0;
  const meta = () => ({ $metadata: { httpStatusCode: 200, requestId: `bench-${++seq}` } });
  const s3 = mockClient(S3Client);
  s3.on(GetPublicAccessBlockCommand).callsFake((input: { Bucket?: string }) => {
    const b = bucket(input.Bucket);
    if (!b.pab)
      throw s3Error('NoSuchPublicAccessBlockConfiguration', 'The public access block configuration was not found');
    return { ...meta(), PublicAccessBlockConfiguration: { ...b.pab } };
  });
  s3.on(GetBucketAclCommand).callsFake((input: { Bucket?: string }) => ({
    ...meta(),
    Owner: { ID: '0'.repeat(64) },
    Grants: bucket(input.Bucket).grants.map((g) => ({ ...g })),
  }));
  s3.on(GetBucketPolicyCommand).callsFake((input: { Bucket?: string }) => {
    const b = bucket(input.Bucket);
    if (b.policy === null) throw s3Error('NoSuchBucketPolicy', 'The bucket policy does not exist');
    return { ...meta(), Policy: b.policy };
  });
  s3.on(GetBucketTaggingCommand).callsFake(() => {
    throw s3Error('NoSuchTagSet', 'The TagSet does not exist');
  });
  s3.on(GetBucketPolicyStatusCommand).callsFake((input: { Bucket?: string }) => {
    const b = bucket(input.Bucket);
    if (b.policy === null) throw s3Error('NoSuchBucketPolicy', 'The bucket policy does not exist');
    return { ...meta(), PolicyStatus: { IsPublic: b.policy.includes('"Principal":"*"') } };
  });
  s3.on(PutPublicAccessBlockCommand).callsFake(
    (input: { Bucket?: string; PublicAccessBlockConfiguration?: PublicAccessBlockConfiguration }) => {
      bucket(input.Bucket).pab = { ...input.PublicAccessBlockConfiguration };
      return meta();
    },
  );
  s3.on(DeletePublicAccessBlockCommand).callsFake((input: { Bucket?: string }) => {
    bucket(input.Bucket).pab = null;
    return meta();
  });
  s3.on(PutBucketAclCommand).callsFake((input: { Bucket?: string; AccessControlPolicy?: { Grants?: Grant[] } }) => {
    bucket(input.Bucket).grants = [...(input.AccessControlPolicy?.Grants ?? [])];
    return meta();
  });
  s3.on(PutBucketPolicyCommand).callsFake((input: { Bucket?: string; Policy?: string }) => {
    bucket(input.Bucket).policy = input.Policy ?? null;
    return meta();
  });
  s3.on(DeleteBucketPolicyCommand).callsFake((input: { Bucket?: string }) => {
    bucket(input.Bucket).policy = null;
    return meta();
  });
  return { buckets, restore: () => s3.restore() };
}

/** One GuardDuty finding (EventBridge envelope, finding-formats §2) on a fresh public bucket. */
export function publicBucketEvent(n: number): unknown {
  const bucket = `acme-e2e-${n}`;
  const id = n.toString(16).padStart(32, 'e');
  const at = new Date(Date.parse('2026-11-20T00:00:00.000Z') + n * 1000).toISOString();
  return {
    version: '0',
    id: `00000000-0000-0000-0000-${String(n).padStart(12, '0')}`,
    'detail-type': 'GuardDuty Finding',
    source: 'aws.guardduty',
    account: ACCOUNT,
    time: at,
    region: 'us-east-1',
    resources: [],
    detail: {
      schemaVersion: '2.0',
      accountId: ACCOUNT,
      region: 'us-east-1',
      partition: 'aws',
      id,
      arn: `arn:aws:guardduty:us-east-1:${ACCOUNT}:detector/e3e3a90d0f125cce54f587d33c863830/finding/${id}`,
      type: 'Policy:S3/BucketAnonymousAccessGranted',
      resource: {
        resourceType: 'S3Bucket',
        s3BucketDetails: [
          {
            arn: `arn:aws:s3:::${bucket}`,
            name: bucket,
            type: 'Destination',
            tags: [
              { key: 'owner', value: 'web-team@acme.example' },
              { key: 'env', value: 'dev' },
            ],
          },
        ],
      },
      service: {
        serviceName: 'guardduty',
        detectorId: 'e3e3a90d0f125cce54f587d33c863830',
        eventFirstSeen: at,
        eventLastSeen: at,
        archived: false,
        count: 1,
      },
      severity: 8,
      createdAt: at,
      updatedAt: at,
      title: `Amazon S3 Public Anonymous Access was granted for the S3 bucket ${bucket}.`,
      description: `The S3 bucket ${bucket} was made publicly accessible.`,
    },
  };
}

/**
 * The example config with two budgets raised, because this bench sends hundreds of findings a minute:
 * the blast-radius budget (10 applies per account per hour; the rest would be held, never verified) and
 * the Jira create budget (60 a minute; the rest wait in the outbox, and every settle walks that backlog,
 * so a deferred backlog would make each finding's latency grow with the number before it). Everything
 * else (owners, environments, gates, grouping) is the example's own.
 */
function benchConfig(dir: string): string {
  const from = join(root, 'examples/config');
  mkdirSync(dir, { recursive: true });
  for (const f of ['registry.yaml', 'exceptions.yaml']) copyFileSync(join(from, f), join(dir, f));
  const policy: unknown = parse(readFileSync(join(from, 'policy.yaml'), 'utf8'));
  const base = typeof policy === 'object' && policy !== null ? policy : {};
  const section = (key: string): object => {
    const v: unknown = key in base ? Reflect.get(base, key) : undefined;
    return typeof v === 'object' && v !== null ? v : {};
  };
  writeFileSync(
    join(dir, 'policy.yaml'),
    stringify({
      ...base,
      apply: { ...section('apply'), budget: { perAccountPerHour: 1_000_000 } },
      tickets: { ...section('tickets'), budget: { createsPerMinute: 1_000_000 } },
    }),
  );
  return dir;
}

/** The p-th percentile (nearest rank) of ascending `sorted`. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1] ?? Number.NaN;
}

/**
 * Runs `findings` findings one after another through the local runtime and returns p50/p99.
 * @example const { e2eP50Ms, e2eP99Ms } = await e2eBench({ findings: 500 });
 */
export async function e2eBench(opts: { findings?: number; warmup?: number } = {}): Promise<E2eResult> {
  const findings = opts.findings ?? 1_000;
  const warmup = opts.warmup ?? 20;
  const home = mkdtempSync(join(tmpdir(), 'closeloop-e2e-'));
  const double = startS3Double();
  // Static dummy credentials: the double answers before any signing or network; nothing leaves the process.
  const clients = createCloudClients({
    aws: { credentials: { accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: 'bench' } },
  });
  // The credentials stand for the findings' account: AWS actions act in their case's account only.
  const actionContext: ActionContext = {
    clients,
    clock: systemClock,
    log: silentLogger,
    awsAccount: async () => ACCOUNT,
  };
  const rt = await createLocalRuntime({
    home,
    configDir: benchConfig(join(home, 'config')),
    apply: true,
    actionContext,
    env: {},
    actor: 'bench',
  });
  const times: number[] = [];
  let notVerified = 0;
  try {
    for (let i = 0; i < warmup + findings; i++) {
      const value = publicBucketEvent(i);
      const t0 = performance.now();
      await rt.ingest.ingest([{ input: `e2e#${i}`, value }]);
      await rt.settle();
      const t1 = performance.now();
      // The case key as decide builds it, from the same normalized finding.
      const finding = normalize(value, `e2e#${i}`).findings[0];
      const doc = finding ? await rt.store.get('cases', caseKeyOf(finding)) : undefined;
      const parsed = doc ? CaseSchema.safeParse(doc.value) : undefined;
      const verified = parsed?.success === true && parsed.data.status === 'verified';
      if (i < warmup) continue;
      times.push(t1 - t0);
      if (!verified) notVerified++;
    }
  } finally {
    double.restore();
    await rt.close();
    rmSync(home, { recursive: true, force: true });
  }
  const sorted = [...times].sort((a, b) => a - b);
  const round = (x: number) => Math.round(x * 10) / 10;
  return {
    e2eP50Ms: round(percentile(sorted, 50)),
    e2eP99Ms: round(percentile(sorted, 99)),
    e2eMaxMs: round(sorted[sorted.length - 1] ?? Number.NaN),
    e2eFindings: sorted.length,
    e2eNotVerified: notVerified,
  };
}

/** The bench harness's hook (bench/run.ts): figures and table rows. */
export async function benchRows(
  quick: boolean,
): Promise<{ results: Record<string, unknown>; rows: Array<[string, string, string]> }> {
  const r = await e2eBench({ findings: quick ? 200 : 500 });
  return {
    results: { ...r },
    rows: [
      ['end to end p50 (ingest → verified)', `${r.e2eP50Ms.toFixed(1)} ms`, `${r.e2eFindings} findings, one at a time`],
      [
        'end to end p99 (ingest → verified)',
        `${r.e2eP99Ms.toFixed(1)} ms`,
        `max ${r.e2eMaxMs.toFixed(1)} ms; ${r.e2eNotVerified} not verified`,
      ],
    ],
  };
}

if (ranAsScript('e2e')) {
  const findings = process.argv[2] ? Number(process.argv[2]) : undefined;
  e2eBench(findings ? { findings } : {}).then(
    (r) => console.log(JSON.stringify(r)),
    (e: unknown) => {
      console.error(e);
      process.exitCode = 1;
    },
  );
}
