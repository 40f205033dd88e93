/**
 * Cloud fault injection through the remediation stage with real actions from the registry and a real
 * store: AWS throttling and AccessDenied (aws-sdk-client-mock over a stateful bucket), Azurite stopped in
 * the middle of an apply and started again, and the GCS double failing. In every scenario: nothing
 * half-applied goes unrecorded, the case says what happened, and a later retry completes without
 * applying any step twice.
 */
import {
  DeleteBucketPolicyCommand,
  GetBucketAclCommand,
  GetBucketPolicyCommand,
  GetBucketTaggingCommand,
  GetPublicAccessBlockCommand,
  PutBucketAclCommand,
  PutBucketPolicyCommand,
  PutPublicAccessBlockCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import type { StorageAccount } from '@azure/arm-storage';
import { BlobServiceClient, StorageSharedKeyCredential } from '@azure/storage-blob';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { AzureStorageAccounts } from '../../shared/actions/clients.js';
import type { ActionContext } from '../../shared/actions/define.js';
import { actionRegistry } from '../../shared/actions/registry.js';
import { MemoryDocStore } from '../../shared/adapters/store/memory.js';
import { type Case, CaseSchema } from '../../shared/core/model/case.js';
import type { PipelineEvent } from '../../shared/core/model/events.js';
import type { Finding } from '../../shared/core/model/finding.js';
import { silentLogger } from '../../shared/core/ports.js';
import { ApplyPolicySchema } from '../../shared/core/remediation/policy.js';
import { approveCase, createRemediationStage, type RemediationDeps } from '../../shared/core/remediation/stage.js';
import { getDoc } from '../../shared/core/store/docs.js';
import { awsError, decidedCase, findingFor, fixedClock, testContext } from '../helpers/action-context.js';
import { AZURITE_ACCOUNT, AZURITE_KEY, freePort, spawnAzurite } from '../helpers/azurite.js';
import { type GcpDouble, startGcpDouble } from '../helpers/gcp-double.js';
import { tempDir } from '../helpers/tmp.js';

const decided = (caseKey: string, n = 1): PipelineEvent => ({
  id: `decided-${n}-${caseKey}`,
  type: 'case.decided',
  caseKey,
  at: '2026-11-18T10:00:00.000Z',
  isNewCase: n === 1,
  recurrence: false,
  statusChanged: n === 1,
});

/** A case decided for automatic remediation in dev, around one finding (as decide leaves it). */
const caseFor = (f: Finding, action: string): Case => decidedCase(f, { action });

function harness(ctx: () => ActionContext) {
  const store = new MemoryDocStore();
  const deps = (): RemediationDeps => ({
    store,
    actions: actionRegistry,
    ctx: ctx(),
    clock: fixedClock(),
    log: silentLogger,
    policy: ApplyPolicySchema.parse({}),
    apply: true,
    actor: 'closeloop',
  });
  return {
    store,
    deps,
    async seed(f: Finding, action: string): Promise<string> {
      const c = caseFor(f, action);
      await store.put('findings', f.key, f);
      await store.put('cases', c.key, c);
      return c.key;
    },
    decide: (key: string, n = 1) => createRemediationStage(deps()).handle(decided(key, n)),
    retry: (key: string) => approveCase(deps(), key, 'oncall@example.com'),
    async stored(key: string): Promise<Case> {
      const doc = await getDoc(store, 'cases', key, CaseSchema);
      if (!doc) throw new Error(`case ${key} is gone`);
      return doc.value;
    },
  };
}

// ───────────────────────────── AWS ─────────────────────────────

const s3 = mockClient(S3Client);
const BUCKET = 'acme-exports-111122223333';
const OWNER = { ID: '0'.repeat(64), DisplayName: 'owner' };
const OWNER_GRANT = { Grantee: { Type: 'CanonicalUser' as const, ID: OWNER.ID }, Permission: 'FULL_CONTROL' as const };
const PUBLIC_GRANT = {
  Grantee: { Type: 'Group' as const, URI: 'http://acs.amazonaws.com/groups/global/AllUsers' },
  Permission: 'READ' as const,
};
const ALL_ON = { BlockPublicAcls: true, IgnorePublicAcls: true, BlockPublicPolicy: true, RestrictPublicBuckets: true };

/** A public bucket behind aws-sdk-client-mock: reads see the state, writes change it, faults come first. */
function awsBucket() {
  const state: { pab: typeof ALL_ON | null; grants: Array<typeof OWNER_GRANT | typeof PUBLIC_GRANT> } = {
    pab: null,
    grants: [OWNER_GRANT, PUBLIC_GRANT],
  };
  const faults = new Map<string, Error[]>();
  /** Writes that take effect and then lose their answer (the SDK's socket timeout), per API. */
  const lost = new Map<string, number>();
  const calls = new Map<string, number>();
  /** Effective changes (a write that got through), per API. */
  const writes = new Map<string, number>();
  let request = 0;
  const enter = (api: string) => {
    calls.set(api, (calls.get(api) ?? 0) + 1);
    const e = faults.get(api)?.shift();
    if (e) throw e;
  };
  const answer = (api: string) => {
    const n = lost.get(api) ?? 0;
    if (n > 0) {
      lost.set(api, n - 1);
      throw Object.assign(new Error('the request socket timed out after 3000 ms of inactivity'), {
        name: 'TimeoutError',
      });
    }
    return meta();
  };
  const meta = () => ({ $metadata: { requestId: `req-${++request}`, httpStatusCode: 200 } });
  s3.on(GetPublicAccessBlockCommand).callsFake(async () => {
    enter('GetPublicAccessBlock');
    if (!state.pab) throw awsError('NoSuchPublicAccessBlockConfiguration', 404);
    return { PublicAccessBlockConfiguration: state.pab, ...meta() };
  });
  s3.on(GetBucketAclCommand).callsFake(async () => {
    enter('GetBucketAcl');
    return { Owner: OWNER, Grants: state.grants, ...meta() };
  });
  s3.on(GetBucketPolicyCommand).callsFake(async () => {
    enter('GetBucketPolicy');
    throw awsError('NoSuchBucketPolicy', 404);
  });
  s3.on(GetBucketTaggingCommand).callsFake(async () => {
    enter('GetBucketTagging');
    throw awsError('NoSuchTagSet', 404);
  });
  s3.on(PutPublicAccessBlockCommand).callsFake(async () => {
    enter('PutPublicAccessBlock');
    writes.set('PutPublicAccessBlock', (writes.get('PutPublicAccessBlock') ?? 0) + 1);
    state.pab = { ...ALL_ON };
    return answer('PutPublicAccessBlock');
  });
  s3.on(PutBucketAclCommand).callsFake(async () => {
    enter('PutBucketAcl');
    writes.set('PutBucketAcl', (writes.get('PutBucketAcl') ?? 0) + 1);
    state.grants = [OWNER_GRANT];
    return answer('PutBucketAcl');
  });
  s3.on(PutBucketPolicyCommand).rejects(new Error('not expected: no policy'));
  s3.on(DeleteBucketPolicyCommand).rejects(new Error('not expected: no policy'));
  return {
    state,
    calls,
    writes,
    fault: (api: string, ...errors: Error[]) => faults.set(api, [...(faults.get(api) ?? []), ...errors]),
    /** The next `n` writes of `api` take effect, then time out. */
    loseAnswers: (api: string, n: number) => lost.set(api, n),
    clearFaults: () => faults.clear(),
  };
}

const s3Finding = findingFor({ provider: 'aws', id: `arn:aws:s3:::${BUCKET}`, type: 'AwsS3Bucket', name: BUCKET });
const S3_ACTION = 's3.block-public-access';

describe('fault injection: AWS throttling and AccessDenied through the remediation stage', () => {
  let bucket: ReturnType<typeof awsBucket>;
  let h: ReturnType<typeof harness>;
  beforeEach(() => {
    s3.reset();
    bucket = awsBucket();
    h = harness(() => testContext());
  });

  it('applies once after throttled reads and writes are retried within the bound', async () => {
    // Prepare
    const key = await h.seed(s3Finding, S3_ACTION);
    bucket.fault('GetBucketAcl', awsError('Throttling', 400), awsError('SlowDown', 503));
    bucket.fault('PutPublicAccessBlock', awsError('ThrottlingException', 400), awsError('SlowDown', 503));
    // Act
    const events = await h.decide(key);
    // Assess
    const c = await h.stored(key);
    expect(c.remediation.state).toBe('applied');
    expect(c.status).toBe('remediated');
    expect(bucket.calls.get('PutPublicAccessBlock')).toBe(3);
    expect(bucket.writes).toEqual(
      new Map([
        ['PutPublicAccessBlock', 1],
        ['PutBucketAcl', 1],
      ]),
    );
    expect(c.remediation.requestIds).toHaveLength(2);
    expect(events.map((e) => e.type)).toEqual(['case.remediation', 'case.verify-requested']);
  });

  it('stops at the retry bound, records the throttling with nothing applied, and a retry applies once', async () => {
    // Prepare: more throttles than the 3 attempts allow
    const key = await h.seed(s3Finding, S3_ACTION);
    bucket.fault('PutPublicAccessBlock', ...Array.from({ length: 5 }, () => awsError('Throttling', 400)));
    // Act
    await h.decide(key);
    const failed = await h.stored(key);
    const redelivered = await h.decide(key, 2);
    // Assess: bounded, recorded, nothing applied, the duplicate delivery does nothing
    expect(bucket.calls.get('PutPublicAccessBlock')).toBe(3);
    expect(bucket.writes.size).toBe(0);
    expect(failed.remediation).toMatchObject({ state: 'failed', before: { publicAccessBlock: null } });
    expect(failed.remediation.stateReason).toMatch(/PutPublicAccessBlock.*throttled/);
    expect(failed.remediation.appliedAt).toBeUndefined();
    expect(failed.remediation.requestIds ?? []).toEqual([]);
    expect(failed.status).toBe('failed');
    expect(redelivered).toEqual([]);
    // Act: a person retries; the 2 remaining throttles are absorbed by the bound
    const retried = await h.retry(key);
    // Assess
    const c = await h.stored(key);
    expect(retried.state).toBe('applied');
    expect(c.remediation.state).toBe('applied');
    expect(bucket.writes).toEqual(
      new Map([
        ['PutPublicAccessBlock', 1],
        ['PutBucketAcl', 1],
      ]),
    );
    expect(bucket.state).toEqual({ pab: ALL_ON, grants: [OWNER_GRANT] });
  });

  it('blocks with the denied reason when the live read is denied, and a later delivery applies once', async () => {
    // Prepare
    const key = await h.seed(s3Finding, S3_ACTION);
    bucket.fault('GetBucketAcl', awsError('AccessDenied', 403));
    // Act
    await h.decide(key);
    const blocked = await h.stored(key);
    await h.decide(key, 2);
    await h.decide(key, 3);
    // Assess
    expect(blocked.remediation.state).toBe('blocked');
    expect(blocked.remediation.stateReason).toMatch(/live state could not be read.*GetBucketAcl.*denied/);
    expect(blocked.remediation.appliedAt).toBeUndefined();
    expect(bucket.calls.get('GetBucketAcl')).toBeGreaterThanOrEqual(2);
    expect((await h.stored(key)).remediation.state).toBe('applied');
    expect(bucket.writes).toEqual(
      new Map([
        ['PutPublicAccessBlock', 1],
        ['PutBucketAcl', 1],
      ]),
    );
  });

  it('keeps the original before-state (what rollback restores) when a first write timed out after taking effect', async () => {
    // Prepare: every attempt of the flags write goes through and loses its answer (past the retry bound)
    const key = await h.seed(s3Finding, S3_ACTION);
    bucket.loseAnswers('PutPublicAccessBlock', 3);
    // Act
    await h.decide(key);
    const failed = await h.stored(key);
    // Assess: no step is known to be made, but the case says one may have been, with the original state
    expect(failed.remediation.state).toBe('failed');
    expect(failed.remediation.stateReason).toMatch(
      /0 of 2 step\(s\) applied, then .* failed without a definite answer \(it may have taken effect\).*transient/,
    );
    expect(failed.remediation.requestIds ?? []).toEqual([]);
    expect(failed.remediation.unconfirmed).toMatch(/Block Public Access/);
    expect(failed.remediation.before).toMatchObject({ publicAccessBlock: null });
    expect(bucket.state.pab).toEqual(ALL_ON);
    // Act: a person retries; the live re-read finds the flags on and plans only the ACL
    const retried = await h.retry(key);
    const c = await h.stored(key);
    // Assess: the before-state kept for rollback is the bucket as closeloop found it, not as it left it
    expect(retried.state).toBe('applied');
    expect(c.remediation.before).toMatchObject({ publicAccessBlock: null });
    expect(c.remediation.unconfirmed).toBeUndefined();
    expect(bucket.state).toEqual({ pab: ALL_ON, grants: [OWNER_GRANT] });
  });

  it('records as applied (not "already compliant") a retry that finds the earlier attempt finished the fix', async () => {
    // Prepare: the flags go through; the ACL write goes through and every attempt loses its answer
    const key = await h.seed(s3Finding, S3_ACTION);
    bucket.loseAnswers('PutBucketAcl', 3);
    // Act
    await h.decide(key);
    const failed = await h.stored(key);
    const events = await h.retry(key);
    const c = await h.stored(key);
    // Assess: the first attempt did everything; the retry applies nothing, the case is applied with the
    // original before-state (rollback possible) and owes a verification
    expect(failed.remediation.state).toBe('failed');
    expect(failed.remediation.requestIds).toHaveLength(1);
    expect(events.state).toBe('applied');
    expect(events.events.map((e) => e.type)).toContain('case.verify-requested');
    expect(c.remediation.state).toBe('applied');
    expect(c.status).toBe('remediated');
    expect(c.remediation.stateReason).toMatch(/by an earlier attempt.*no definite answer/);
    expect(c.remediation.before).toMatchObject({ publicAccessBlock: null });
    expect(c.remediation.appliedAt).toBeDefined();
    expect(bucket.writes).toEqual(
      new Map([
        ['PutPublicAccessBlock', 1],
        ['PutBucketAcl', 3],
      ]),
    );
  });

  it('records the half-applied step when a later write is denied, and a retry finishes without repeating it', async () => {
    // Prepare: the flags go through, the ACL write is denied
    const key = await h.seed(s3Finding, S3_ACTION);
    bucket.fault('PutBucketAcl', awsError('AccessDenied', 403));
    // Act
    await h.decide(key);
    const failed = await h.stored(key);
    // Assess: the case says which step was applied, keeps the original before-state, is not "applied"
    expect(failed.remediation.state).toBe('failed');
    expect(failed.remediation.appliedAt).toBeUndefined();
    expect(failed.remediation.stateReason).toMatch(/1 of 2 step\(s\) applied.*PutBucketAcl.*denied/);
    expect(failed.remediation.requestIds).toHaveLength(1);
    expect(failed.remediation.before).toMatchObject({ publicAccessBlock: null });
    expect(bucket.state.pab).toEqual(ALL_ON);
    // Act: permission granted, a person retries
    const retried = await h.retry(key);
    // Assess: only the remaining step ran; the before-state is still the original (rollback restores it)
    const c = await h.stored(key);
    expect(retried.state).toBe('applied');
    expect(bucket.writes).toEqual(
      new Map([
        ['PutPublicAccessBlock', 1],
        ['PutBucketAcl', 1],
      ]),
    );
    expect(c.remediation.before).toMatchObject({ publicAccessBlock: null });
    expect(c.remediation.requestIds).toHaveLength(2);
  });
});

// ───────────────────────────── Azure (Azurite stopped mid-run) ─────────────────────────────

const SUB = '00000000-0000-0000-0000-000000000000';
const AZ_ACTION = 'azure.storage.disallow-public-access';

/** Azurite blob on one port with its data on disk, so it can be stopped and started again. */
function restartableAzurite(location: string, port: number) {
  let running: { stop(): Promise<void> } | undefined;
  return {
    url: `http://127.0.0.1:${port}/${AZURITE_ACCOUNT}`,
    async start() {
      running = await spawnAzurite(port, location);
    },
    async stop() {
      await running?.stop();
      running = undefined;
    },
  };
}

// A free port, chosen before the describe block builds its clients, which keep the URL across restarts.
const AZURITE_PORT = await freePort();

describe('fault injection: Azurite stopped mid-run for azure.storage.disallow-public-access', () => {
  const tmp = tempDir('closeloop-azurite-');
  const azurite = restartableAzurite(tmp.dir, AZURITE_PORT);
  const credential = new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY);
  // Test setup only (creating the public container); the action uses the real client factory below.
  const blob = new BlobServiceClient(azurite.url, credential);
  const account: { allowBlobPublicAccess: boolean; updates: number } = { allowBlobPublicAccess: true, updates: 0 };
  let onUpdate: () => Promise<void> = async () => {};
  const arm: AzureStorageAccounts = {
    async getProperties(): Promise<StorageAccount> {
      return { location: 'westeurope', allowBlobPublicAccess: account.allowBlobPublicAccess };
    },
    async update(_rg, _name, parameters): Promise<StorageAccount> {
      account.updates++;
      if (parameters.allowBlobPublicAccess !== undefined)
        account.allowBlobPublicAccess = parameters.allowBlobPublicAccess;
      await onUpdate();
      return { location: 'westeurope' };
    },
  };
  // Built once: the factory caches its blob client, which keeps working across Azurite restarts.
  const ctx = testContext({
    clients: { azureStorage: () => arm },
    cloud: { azure: { blobUrl: () => azurite.url, blobCredential: () => credential } },
  });
  const h = harness(() => ctx);
  const finding = findingFor({
    provider: 'azure',
    id: `/subscriptions/${SUB}/resourceGroups/rg-data/providers/Microsoft.Storage/storageAccounts/${AZURITE_ACCOUNT}`,
    type: 'Microsoft.Storage/storageAccounts',
    name: AZURITE_ACCOUNT,
    account: SUB,
  });
  const anonymousGet = () => fetch(`${azurite.url}/public-1/report.csv`);

  beforeAll(async () => {
    await azurite.start();
    const c = blob.getContainerClient('public-1');
    await c.create({ access: 'blob' });
    await c.getBlockBlobClient('report.csv').upload('a,b\n', 4);
  });
  afterAll(async () => {
    await azurite.stop();
    tmp.cleanup();
  });

  it('records the account step done when Azurite dies mid-apply, and a retry after restart makes the container private once', async () => {
    // Prepare: Azurite stops right after the ARM account update, before the container step
    const key = await h.seed(finding, AZ_ACTION);
    expect((await anonymousGet()).status).toBe(200);
    onUpdate = () => azurite.stop();
    // Act
    await h.decide(key);
    const failed = await h.stored(key);
    // Assess: the partial state is recorded; the original before-state is kept
    expect(failed.remediation.state).toBe('failed');
    expect(failed.remediation.appliedAt).toBeUndefined();
    expect(failed.remediation.stateReason).toMatch(/1 of 2 step\(s\) applied/);
    expect(failed.remediation.stateReason).toMatch(/public-1/);
    expect(failed.remediation.requestIds).toEqual([`azure:storageAccounts.update ${AZURITE_ACCOUNT}`]);
    expect(failed.remediation.before).toEqual({
      allowBlobPublicAccess: true,
      publicContainers: [{ name: 'public-1', access: 'blob' }],
    });
    expect(account.updates).toBe(1);
    // Act: Azurite is back; a person retries
    onUpdate = async () => {};
    await azurite.start();
    const retried = await h.retry(key);
    // Assess: the container step ran, the account update did not run again
    const c = await h.stored(key);
    expect(retried.state).toBe('applied');
    expect(account.updates).toBe(1);
    expect((await anonymousGet()).status).toBe(403);
    expect(c.remediation.before).toEqual(failed.remediation.before);
    expect(c.remediation.requestIds).toHaveLength(2);
  });

  it('holds (to read again later) when Azurite is down before the plan, and a delivery after restart applies once', async () => {
    // Prepare: a second public container and a fresh case; the account flag already off
    const c2 = blob.getContainerClient('public-2');
    await c2.create({ access: 'container' });
    const other = findingFor({
      provider: 'azure',
      id: `/subscriptions/${SUB}/resourceGroups/rg-other/providers/Microsoft.Storage/storageAccounts/${AZURITE_ACCOUNT}`,
      type: 'Microsoft.Storage/storageAccounts',
      name: AZURITE_ACCOUNT,
      account: SUB,
    });
    const key = await h.seed(other, AZ_ACTION);
    await azurite.stop();
    // Act
    await h.decide(key);
    const held = await h.stored(key);
    await azurite.start();
    await h.decide(key, 2);
    // Assess: a read that failed for the moment is read again later (not blocked for good)
    expect(held.remediation.state).toBe('held');
    expect(held.remediation.stateReason).toMatch(
      /live state could not be read.*listContainers.*transient.*read again after/,
    );
    const c = await h.stored(key);
    expect(c.remediation.state).toBe('applied');
    expect(c.remediation.requestIds).toHaveLength(c.remediation.plan?.steps.length ?? -1);
    expect((await fetch(`${azurite.url}/public-2?restype=container&comp=list`)).status).toBe(403);
  });
});

// ───────────────────────────── GCP (GCS double failing) ─────────────────────────────

const GCS_ACTION = 'gcs.remove-public-access';
const GCS_BUCKET = 'acme-public-exports';

describe('fault injection: the GCS double failing for gcs.remove-public-access', () => {
  let gcp: GcpDouble;
  let ctx: ActionContext;
  let h: ReturnType<typeof harness>;
  const finding = findingFor({
    provider: 'gcp',
    id: `//storage.googleapis.com/${GCS_BUCKET}`,
    type: 'google.cloud.storage.Bucket',
    name: GCS_BUCKET,
    account: 'acme-prod',
  });
  const writes = () => gcp.requests.filter((r) => r.method !== 'GET');
  const publicMembers = () =>
    (gcp.buckets.get(GCS_BUCKET)?.iam.bindings ?? []).flatMap((b) => b.members).filter((m) => m.startsWith('all'));

  beforeAll(async () => {
    gcp = await startGcpDouble();
    ctx = testContext({ cloud: { gcp: gcp.options } });
  });
  afterAll(async () => gcp?.stop());
  beforeEach(() => {
    gcp.requests.length = 0;
    gcp.buckets.clear();
    gcp.buckets.set(GCS_BUCKET, {
      iam: {
        bindings: [
          { role: 'roles/storage.legacyBucketOwner', members: ['projectOwner:acme-prod'] },
          { role: 'roles/storage.objectViewer', members: ['allUsers'] },
        ],
        etag: 'BwE1',
        version: 3,
      },
      metadata: { iamConfiguration: { publicAccessPrevention: 'inherited' } },
    });
    h = harness(() => ctx);
  });

  it('retries a 429 and a 503 within the bound and applies each step once', async () => {
    // Prepare
    const key = await h.seed(finding, GCS_ACTION);
    gcp.failNext(`/b/${GCS_BUCKET}/iam`, 429, { method: 'PUT' });
    gcp.failNext(`/b/${GCS_BUCKET}`, 503, { method: 'PATCH' });
    // Act
    await h.decide(key);
    // Assess: two refused attempts, then one effective write per step
    const c = await h.stored(key);
    expect(c.remediation.state).toBe('applied');
    expect(writes().map((r) => r.method)).toEqual(['PUT', 'PUT', 'PATCH', 'PATCH']);
    expect(publicMembers()).toEqual([]);
    expect(gcp.buckets.get(GCS_BUCKET)?.metadata.iamConfiguration).toEqual({ publicAccessPrevention: 'enforced' });
  });

  it('records a denied IAM write with nothing applied, and a retry applies once', async () => {
    // Prepare
    const key = await h.seed(finding, GCS_ACTION);
    gcp.failNext(`/b/${GCS_BUCKET}/iam`, 403, { method: 'PUT', reason: 'forbidden' });
    // Act
    await h.decide(key);
    const failed = await h.stored(key);
    // Assess
    expect(failed.remediation.state).toBe('failed');
    expect(failed.remediation.stateReason).toMatch(/setIamPolicy.*denied/);
    expect(failed.remediation.requestIds ?? []).toEqual([]);
    expect(failed.remediation.appliedAt).toBeUndefined();
    expect(publicMembers()).toEqual(['allUsers']);
    expect(writes().map((r) => r.method)).toEqual(['PUT']);
    // Act
    const retried = await h.retry(key);
    // Assess
    expect(retried.state).toBe('applied');
    expect(writes().map((r) => r.method)).toEqual(['PUT', 'PUT', 'PATCH']);
    expect(publicMembers()).toEqual([]);
  });

  it('records the IAM step done when the patch keeps failing, and a retry runs only the patch', async () => {
    // Prepare: more 503s on the patch than the 3 attempts allow
    const key = await h.seed(finding, GCS_ACTION);
    for (let i = 0; i < 3; i++) gcp.failNext(`/b/${GCS_BUCKET}`, 503, { method: 'PATCH' });
    // Act
    await h.decide(key);
    const failed = await h.stored(key);
    // Assess
    expect(failed.remediation.state).toBe('failed');
    expect(failed.remediation.stateReason).toMatch(/1 of 2 step\(s\) applied.*patch.*transient/);
    expect(failed.remediation.requestIds).toHaveLength(1);
    expect(failed.remediation.before).toMatchObject({ publicAccessPrevention: 'inherited' });
    expect(publicMembers()).toEqual([]);
    // Act
    const retried = await h.retry(key);
    // Assess: the IAM policy was not written again
    const c = await h.stored(key);
    expect(retried.state).toBe('applied');
    expect(writes().map((r) => r.method)).toEqual(['PUT', 'PATCH', 'PATCH', 'PATCH', 'PATCH']);
    expect(c.remediation.before).toEqual(failed.remediation.before);
    expect(gcp.buckets.get(GCS_BUCKET)?.metadata.iamConfiguration).toEqual({ publicAccessPrevention: 'enforced' });
  });
});
