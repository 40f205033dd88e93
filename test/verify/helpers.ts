/** Builders of valid cases and findings for the verification, evidence and report tests. */
import type { ActionContext } from '../../shared/actions/define.js';
import { type Case, CaseSchema } from '../../shared/core/model/case.js';
import type { PipelineEvent } from '../../shared/core/model/events.js';
import { type Finding, FindingSchema } from '../../shared/core/model/finding.js';
import type { DocStore } from '../../shared/core/ports.js';
import { sha256Hex } from '../../shared/core/util/hash.js';
import { type Assessment, assessCase, type VerifiableAction } from '../../shared/core/verify/assess.js';

export const BUCKET_ARN = 'arn:aws:s3:::acme-marketing-exports';
export const CASE_KEY = `aws|${BUCKET_ARN}|Policy:S3/BucketAnonymousAccessGranted`;

type DeepPartialCase = Omit<Partial<Case>, 'remediation' | 'enrichment'> & {
  remediation?: Partial<Case['remediation']>;
  enrichment?: Partial<Case['enrichment']>;
};

/** A valid case (schema-checked); `over` replaces top-level fields and merges remediation/enrichment. */
export function makeCase(over: DeepPartialCase = {}): Case {
  const { remediation, enrichment, ...rest } = over;
  return CaseSchema.parse({
    key: CASE_KEY,
    provider: 'aws',
    resourceId: BUCKET_ARN,
    resourceName: 'acme-marketing-exports',
    resourceType: 'S3Bucket',
    account: '111122223333',
    region: 'us-east-1',
    type: 'Policy:S3/BucketAnonymousAccessGranted',
    title: 'Amazon S3 Public Anonymous Access was granted for the S3 bucket',
    severity: 'high',
    status: 'open',
    statusReason: 'active finding',
    sourceStatus: 'active',
    sources: ['guardduty'],
    findingKeys: [findingKey()],
    sample: false,
    muted: false,
    firstSeen: '2026-11-18T09:07:02.000Z',
    lastSeen: '2026-11-18T09:07:02.000Z',
    occurrences: 1,
    findingOccurrences: [1],
    compliance: { controls: [], standards: [] },
    enrichment: {
      owner: 'marketing-data@acme.example',
      ownerEmail: 'marketing-data@acme.example',
      team: 'data-platform',
      application: 'campaign-exports',
      environment: 'prod',
      criticality: null,
      unowned: false,
      provenance: {
        owner: { via: 'tag', detail: 'owner from tag `owner` on the resource', ref: 'owner' },
        environment: { via: 'tag', detail: 'environment from tag `env`', ref: 'env' },
      },
      warnings: [],
      complete: true,
      ...enrichment,
    },
    exception: null,
    remediation: {
      action: 's3.block-public-access',
      mode: 'auto',
      reason: 'auto in dev',
      gates: [],
      state: 'planned',
      ...remediation,
    },
    ticket: null,
    verification: null,
    evidenceHead: null,
    createdAt: '2026-11-18T09:10:00.000Z',
    updatedAt: '2026-11-18T09:10:00.000Z',
    closedAt: null,
    reopenCount: 0,
    ...rest,
  });
}

export function findingKey(
  sourceId = 'arn:aws:guardduty:us-east-1:111122223333:detector/00000000000000000000000000000000/finding/11111111111111111111111111111111',
): string {
  return sha256Hex(`aws:${sourceId}`);
}

/** A GuardDuty finding for the case's bucket (raw is a minimal GuardDuty finding). */
export function makeFinding(over: Partial<Finding> = {}): Finding {
  const sourceId =
    'arn:aws:guardduty:us-east-1:111122223333:detector/00000000000000000000000000000000/finding/11111111111111111111111111111111';
  return FindingSchema.parse({
    key: findingKey(sourceId),
    source: 'guardduty',
    product: 'GuardDuty',
    sourceId,
    type: 'Policy:S3/BucketAnonymousAccessGranted',
    title: 'Amazon S3 Public Anonymous Access was granted for the S3 bucket',
    description: 'synthetic',
    severity: 'high',
    sourceSeverity: 8,
    status: 'active',
    muted: false,
    sample: false,
    kind: 'detection',
    firstSeen: '2026-11-18T09:07:02.000Z',
    lastSeen: '2026-11-18T09:07:02.000Z',
    updatedAt: '2026-11-18T09:07:02.000Z',
    occurrences: 1,
    resource: {
      provider: 'aws',
      id: BUCKET_ARN,
      type: 'S3Bucket',
      name: 'acme-marketing-exports',
      account: '111122223333',
      region: 'us-east-1',
      tags: {},
    },
    compliance: { controls: [], standards: [] },
    ocsf: { class_uid: 2004, category_uid: 2, activity_id: 1, type_uid: 200401, severity_id: 4, status_id: 1 },
    raw: {
      id: '11111111111111111111111111111111',
      arn: sourceId,
      accountId: '111122223333',
      region: 'us-east-1',
      service: { detectorId: '00000000000000000000000000000000', archived: false },
    },
    ...over,
  });
}

export async function putCase(store: DocStore, c: Case): Promise<void> {
  await store.put('cases', c.key, c);
}

export async function putFinding(store: DocStore, f: Finding): Promise<void> {
  await store.put('findings', f.key, f);
}

/** A clock that moves only when told to. */
export function fixedClock(iso = '2026-11-20T10:00:00.000Z') {
  let now = new Date(iso);
  return {
    now: () => new Date(now),
    set: (next: string) => {
      now = new Date(next);
    },
  };
}

/** An applied case of `action` on `target`: what the verifier finds after a successful apply. */
export function appliedCase(action: string, target: unknown, over: Parameters<typeof makeCase>[0] = {}): Case {
  return makeCase({
    status: 'remediated',
    ...over,
    remediation: {
      action,
      state: 'applied',
      appliedAt: '2026-11-20T09:59:00.000Z',
      target,
      ...over.remediation,
    },
  });
}

/** The verify request the remediation stage publishes after an apply. */
export const applyRequested = (caseKey: string = CASE_KEY): PipelineEvent => ({
  id: `verify-${caseKey}`,
  type: 'case.verify-requested',
  caseKey,
  at: '2026-11-20T09:59:00.000Z',
  trigger: 'apply',
  actor: 'closeloop:remediate',
});

/** The verifier's verdict on a case whose fix `action` applied to `target`: two quick re-reads, no waiting. */
export function assessApplied(
  action: VerifiableAction,
  target: unknown,
  ctx: ActionContext,
): Promise<Assessment | 'skip'> {
  return assessCase(
    {
      actions: { get: (id) => (id === action.id ? action : undefined) },
      ctx,
      policy: { attempts: 2, backoffMs: 1, maxBackoffMs: 5 },
      sleep: async () => undefined,
    },
    makeCase({
      status: 'remediated',
      remediation: { state: 'applied', action: action.id, target, appliedAt: '2026-11-20T09:59:00.000Z' },
    }),
    [],
    'apply',
  );
}
