/**
 * An ActionContext for action tests: real client factories (aws-sdk-client-mock intercepts the AWS
 * ones), fixed clock, fast retries, and per-test overrides for Azure ARM stubs, Azurite and the GCP double.
 */

import { type CloudClientOptions, type CloudClients, createCloudClients } from '../../shared/actions/clients.js';
import type { Action, ActionContext } from '../../shared/actions/define.js';
import { type Case, CaseSchema } from '../../shared/core/model/case.js';
import type { GateResult } from '../../shared/core/model/decision.js';
import type { PipelineEvent } from '../../shared/core/model/events.js';
import { type Finding, FindingSchema, type Resource } from '../../shared/core/model/finding.js';
import type { Clock, DocStore } from '../../shared/core/ports.js';
import { silentLogger } from '../../shared/core/ports.js';
import { ApplyPolicySchema } from '../../shared/core/remediation/policy.js';
import type { RemediationDeps } from '../../shared/core/remediation/stage.js';
import { sha256Hex } from '../../shared/core/util/hash.js';

export const FIXED_NOW = new Date('2026-11-18T10:00:00.000Z');
export const fixedClock = (at: Date = FIXED_NOW): Clock => ({ now: () => at });

/** The account of {@link findingFor}'s resources and of {@link testContext}'s credentials. */
export const TEST_AWS_ACCOUNT = '111122223333';

/** Synthetic AWS credentials: nothing leaves the process under aws-sdk-client-mock. */
export const FAKE_AWS = { credentials: { accessKeyId: 'AKIA0000000000EXAMPLE', secretAccessKey: 'test-secret' } };

export function testContext(
  options: {
    clients?: Partial<CloudClients>;
    cloud?: CloudClientOptions;
    settings?: Record<string, unknown>;
    clock?: Clock;
    /** The AWS account the (fake) credentials are in; default that of {@link findingFor}'s resources. */
    awsAccount?: string;
  } = {},
): ActionContext {
  const base = createCloudClients({ aws: FAKE_AWS, ...options.cloud });
  return {
    clients: { ...base, ...options.clients },
    clock: options.clock ?? fixedClock(),
    log: silentLogger,
    retry: { attempts: 3, baseMs: 1, maxMs: 50 },
    awsAccount: async () => options.awsAccount ?? TEST_AWS_ACCOUNT,
    ...(options.settings ? { settings: options.settings } : {}),
  };
}

/** An SDK-shaped error (name + HTTP status), as the AWS SDK v3 throws them. */
export function awsError(name: string, status: number, extra: Record<string, unknown> = {}): Error {
  return Object.assign(new Error(name), {
    name,
    $fault: status >= 500 ? 'server' : 'client',
    $metadata: { httpStatusCode: status, requestId: `req-${name}` },
    ...extra,
  });
}

/** A valid normalized finding around a resource (synthetic ids), for `selectTarget` and stage tests. */
export function findingFor(
  resource: Pick<Resource, 'provider' | 'id' | 'type' | 'name'> & Partial<Resource>,
  extra: Partial<Finding> = {},
): Finding {
  return FindingSchema.parse({
    key: sha256Hex(`${resource.provider}:${resource.id}:${extra.type ?? 'test'}`),
    source: resource.provider === 'aws' ? 'guardduty' : resource.provider === 'azure' ? 'defender' : 'scc',
    product: 'test',
    sourceId: `finding-${resource.id}`,
    type: 'Policy:S3/BucketAnonymousAccessGranted',
    title: 'synthetic finding',
    description: 'synthetic finding for tests',
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
    compliance: { controls: [], standards: [] },
    ocsf: { class_uid: 2004, category_uid: 2, activity_id: 1, type_uid: 200401, severity_id: 4, status_id: 1 },
    raw: {},
    ...extra,
    resource: { account: TEST_AWS_ACCOUNT, region: 'us-east-1', tags: {}, altIds: [], details: {}, ...resource },
  });
}

export interface DecidedCaseOptions {
  /** The action id decide chose. */
  action: string;
  env?: string;
  mode?: 'auto' | 'approval';
  reason?: string;
  gates?: GateResult[];
}

/**
 * A case as decide leaves it around one finding (owner data@example.com, team data, nothing planned yet),
 * for remediation tests. `override` sets case fields the finding does not carry (a key, a title …).
 */
export function decidedCase(f: Finding, o: DecidedCaseOptions, override: Partial<Case> = {}): Case {
  const at = '2026-11-18T09:07:02.000Z';
  return CaseSchema.parse({
    key: `${f.resource.provider}|${f.resource.id}|${f.type}`,
    provider: f.resource.provider,
    resourceId: f.resource.id,
    resourceName: f.resource.name,
    resourceType: f.resource.type,
    account: f.resource.account,
    region: f.resource.region,
    type: f.type,
    title: f.title,
    severity: f.severity,
    status: 'open',
    statusReason: 'new',
    sourceStatus: 'active',
    sources: [f.source],
    findingKeys: [f.key],
    sample: false,
    muted: false,
    firstSeen: at,
    lastSeen: at,
    occurrences: 1,
    findingOccurrences: [1],
    compliance: { controls: [], standards: [] },
    enrichment: {
      owner: 'data@example.com',
      ownerEmail: 'data@example.com',
      team: 'data',
      application: null,
      environment: o.env ?? 'dev',
      criticality: null,
      unowned: false,
      provenance: { owner: { via: 'tag', detail: 'owner tag' }, environment: { via: 'tag', detail: 'env tag' } },
    },
    exception: null,
    remediation: {
      action: o.action,
      mode: o.mode ?? 'auto',
      reason: o.reason ?? 'auto in dev',
      gates: o.gates ?? [],
      state: 'none',
    },
    ticket: null,
    verification: null,
    evidenceHead: null,
    createdAt: at,
    updatedAt: at,
    closedAt: null,
    reopenCount: 0,
    ...override,
  });
}

/** Remediation stage deps around one registered action: default apply policy, fixed clock, applying. */
export function remediationDeps(
  store: DocStore,
  action: Action,
  ctx: ActionContext | undefined,
  over: Partial<RemediationDeps> = {},
): RemediationDeps {
  return {
    store,
    actions: { get: (id) => (id === action.id ? action : undefined) },
    ctx,
    clock: fixedClock(),
    log: silentLogger,
    policy: ApplyPolicySchema.parse({}),
    apply: true,
    actor: 'closeloop',
    ...over,
  };
}

/** The `case.decided` event of a new case, as ingest publishes it. */
export const decidedEvent = (caseKey: string): PipelineEvent => ({
  id: `d-${caseKey}`,
  type: 'case.decided',
  caseKey,
  at: '2026-11-18T10:00:00.000Z',
  isNewCase: true,
  recurrence: false,
  statusChanged: true,
});
