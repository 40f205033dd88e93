import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import action from '../../shared/actions/gcs.remove-public-access.js';
import { isDenied, isGone } from '../../shared/core/errors.js';
import { findingFor, testContext } from '../helpers/action-context.js';
import { type GcpDouble, startGcpDouble } from '../helpers/gcp-double.js';
import { assessApplied } from '../verify/helpers.js';

const BUCKET = 'acme-public-exports';
const target = { bucket: BUCKET };
const OWNERS = { role: 'roles/storage.legacyBucketOwner', members: ['projectOwner:acme-prod'] };
const CONDITIONAL = {
  role: 'roles/storage.objectViewer',
  members: ['user:auditor@example.com'],
  condition: { title: 'until-2027', expression: 'request.time < timestamp("2027-01-01T00:00:00Z")' },
};
const PUBLIC_VIEWERS = { role: 'roles/storage.objectViewer', members: ['allUsers', 'group:analysts@example.com'] };
const PUBLIC_LISTERS = { role: 'roles/storage.legacyBucketReader', members: ['allAuthenticatedUsers'] };

describe('Action: gcs.remove-public-access', () => {
  let gcp: GcpDouble;
  beforeAll(async () => {
    gcp = await startGcpDouble();
  });
  afterAll(async () => gcp?.stop());
  beforeEach(() => {
    gcp.requests.length = 0;
    gcp.buckets.clear();
    gcp.buckets.set(BUCKET, {
      iam: { bindings: [OWNERS, PUBLIC_VIEWERS, PUBLIC_LISTERS, CONDITIONAL], etag: 'BwE1', version: 3 },
      metadata: {
        metageneration: '4',
        iamConfiguration: { uniformBucketLevelAccess: { enabled: true }, publicAccessPrevention: 'inherited' },
      },
    });
  });

  const ctx = () => testContext({ cloud: { gcp: gcp.options } });
  const bucket = () => {
    const b = gcp.buckets.get(BUCKET);
    if (!b) throw new Error(`double lost ${BUCKET}`);
    return b;
  };
  const writes = () => gcp.requests.filter((r) => r.method !== 'GET');

  it('plans readable steps with the exact calls and makes no write when the bucket is public', async () => {
    // Act
    const plan = await action.plan(target, ctx());
    // Assess
    expect(plan.noop).toBe(false);
    expect(plan.steps.map((s) => s.say)).toEqual([
      `remove allUsers (roles/storage.objectViewer), allAuthenticatedUsers (roles/storage.legacyBucketReader) from the IAM policy of gs://${BUCKET}`,
      `enforce public access prevention on gs://${BUCKET}`,
    ]);
    expect(plan.steps.map((s) => s.call)).toEqual([
      {
        api: 'storage.buckets.setIamPolicy',
        permission: 'storage.buckets.setIamPolicy',
        input: {
          bucket: BUCKET,
          policy: {
            bindings: [
              OWNERS,
              { role: 'roles/storage.objectViewer', members: ['group:analysts@example.com'] },
              CONDITIONAL,
            ],
            etag: 'BwE1',
            version: 3,
          },
        },
      },
      {
        api: 'storage.buckets.patch',
        permission: 'storage.buckets.update',
        input: { bucket: BUCKET, metadata: { iamConfiguration: { publicAccessPrevention: 'enforced' } } },
      },
    ]);
    expect(plan.before).toEqual({
      bindings: [OWNERS, PUBLIC_VIEWERS, PUBLIC_LISTERS, CONDITIONAL],
      etag: 'BwE1',
      version: 3,
      publicAccessPrevention: 'inherited',
    });
    // Version 3 is requested so conditional bindings come back (and are written back) intact.
    expect(gcp.requests.find((r) => r.path.endsWith('/iam'))?.query).toEqual({ optionsRequestedPolicyVersion: '3' });
    expect(writes()).toEqual([]);
  });

  it('plans a no-op saying so when no public member remains and prevention is enforced', async () => {
    // Prepare
    bucket().iam.bindings = [OWNERS, CONDITIONAL];
    bucket().metadata.iamConfiguration = { publicAccessPrevention: 'enforced' };
    // Act
    const plan = await action.plan(target, ctx());
    // Assess
    expect(plan).toMatchObject({
      noop: true,
      steps: [],
      summary: `gs://${BUCKET} is not public and prevention is enforced`,
    });
    expect(writes()).toEqual([]);
  });

  it('plans only the prevention step when the policy is already private', async () => {
    // Prepare
    bucket().iam.bindings = [OWNERS];
    // Act
    const plan = await action.plan(target, ctx());
    // Assess
    expect(plan.steps.map((s) => s.call.api)).toEqual(['storage.buckets.patch']);
  });

  it('removes the public members with the read etag, keeps every other binding and enforces prevention', async () => {
    // Prepare
    const c = ctx();
    const plan = await action.plan(target, c);
    gcp.requests.length = 0;
    // Act
    const result = await action.apply(plan, c);
    // Assess
    expect(writes().map((r) => [r.method, r.path])).toEqual([
      ['PUT', `/storage/v1/b/${BUCKET}/iam`],
      ['PATCH', `/storage/v1/b/${BUCKET}`],
    ]);
    expect(writes()[0]?.body).toMatchObject({
      etag: 'BwE1',
      version: 3,
      bindings: [OWNERS, { role: 'roles/storage.objectViewer', members: ['group:analysts@example.com'] }, CONDITIONAL],
    });
    expect(writes()[1]?.body).toEqual({ iamConfiguration: { publicAccessPrevention: 'enforced' } });
    expect(bucket().iam.bindings.flatMap((b) => b.members)).not.toContain('allUsers');
    expect(bucket().iam.bindings.flatMap((b) => b.members)).not.toContain('allAuthenticatedUsers');
    expect(bucket().metadata.iamConfiguration).toEqual({
      uniformBucketLevelAccess: { enabled: true },
      publicAccessPrevention: 'enforced',
    });
    expect(result.before).toEqual(plan.before);
    expect(result.requestIds).toEqual([
      `gcp:storage.buckets.setIamPolicy ${BUCKET}@${bucket().iam.etag}`,
      `gcp:storage.buckets.patch ${BUCKET}@5`,
    ]);
  });

  it('applies nothing when the bucket was fixed between plan and apply', async () => {
    // Prepare
    const c = ctx();
    const plan = await action.plan(target, c);
    bucket().iam = { bindings: [OWNERS], etag: 'BwE9', version: 3 };
    bucket().metadata.iamConfiguration = { publicAccessPrevention: 'enforced' };
    gcp.requests.length = 0;
    // Act
    const result = await action.apply(plan, c);
    // Assess
    expect(result.requestIds).toEqual([]);
    expect(writes()).toEqual([]);
  });

  it('refuses with conflict and writes nothing when the policy changed since the plan', async () => {
    // Prepare
    const c = ctx();
    const plan = await action.plan(target, c);
    bucket().iam = {
      bindings: [...bucket().iam.bindings, { role: 'roles/storage.admin', members: ['user:new@example.com'] }],
      etag: 'BwE7',
      version: 3,
    };
    gcp.requests.length = 0;
    // Act
    const attempt = action.apply(plan, c);
    // Assess
    await expect(attempt).rejects.toMatchObject({ kind: 'conflict' });
    expect(writes()).toEqual([]);
  });

  it('verifies that the fix holds after apply', async () => {
    // Prepare
    const c = ctx();
    await action.apply(await action.plan(target, c), c);
    // Act
    const v = await action.verify(target, c);
    // Assess
    expect(v).toMatchObject({ holds: true, reason: `gs://${BUCKET} is private` });
    expect(v.observed).toMatchObject({ publicAccessPrevention: 'enforced' });
  });

  it('fails verification naming what remains when a public member and inherited prevention remain', async () => {
    // Act
    const v = await action.verify(target, ctx());
    // Assess
    expect(v.holds).toBe(false);
    expect(v.reason).toBe(
      'public members remain: allUsers (roles/storage.objectViewer), allAuthenticatedUsers (roles/storage.legacyBucketReader); public access prevention is not enforced',
    );
  });

  describe('through the verifier', () => {
    const assess = () => assessApplied(action, target, ctx());

    it('reaches verified when the bucket is private', async () => {
      // Prepare
      bucket().iam.bindings = [OWNERS];
      bucket().metadata.iamConfiguration = { publicAccessPrevention: 'enforced' };
      // Act
      const verdict = await assess();
      // Assess
      expect(verdict).toMatchObject({ verdict: 'verified', basis: 're-read', attempts: 1 });
    });

    it('reaches failed with the observed bindings when allUsers is still bound', async () => {
      // Act
      const verdict = await assess();
      // Assess
      expect(verdict).toMatchObject({ verdict: 'failed', basis: 're-read', attempts: 2 });
      expect(verdict).toHaveProperty('observed.bindings', [OWNERS, PUBLIC_VIEWERS, PUBLIC_LISTERS, CONDITIONAL]);
    });

    it('reaches inconclusive, not a pass, when the re-read is denied', async () => {
      // Prepare
      gcp.failNext('/iam', 403, { reason: 'forbidden' });
      // Act
      const verdict = await assess();
      // Assess
      expect(verdict).toMatchObject({ verdict: 'inconclusive', basis: 'none', attempts: 1 });
      expect(verdict).toHaveProperty('reason', expect.stringContaining('denied'));
    });
  });

  it('restores the public bindings and the old prevention setting on rollback', async () => {
    // Prepare
    const c = ctx();
    const { before } = await action.apply(await action.plan(target, c), c);
    const etagAfterFix = bucket().iam.etag;
    // Act
    const { requestIds } = await action.rollback({ target, before }, c);
    // Assess
    expect(requestIds).toHaveLength(2);
    expect(bucket().iam.bindings).toEqual([OWNERS, PUBLIC_VIEWERS, PUBLIC_LISTERS, CONDITIONAL]);
    expect(bucket().metadata.iamConfiguration).toMatchObject({ publicAccessPrevention: 'inherited' });
    // The current etag is sent: rollback deliberately writes over our own change.
    expect(gcp.requests.filter((r) => r.method === 'PUT').at(-1)?.body).toMatchObject({ etag: etagAfterFix });
  });

  it('on rollback adds back only the public members it removed, keeping IAM changes made after the fix', async () => {
    // Prepare: after the fix, the owner revokes the analysts' read and grants the ETL job write.
    const c = ctx();
    const { before } = await action.apply(await action.plan(target, c), c);
    const ETL = {
      role: 'roles/storage.objectCreator',
      members: ['serviceAccount:etl@acme-prod.iam.gserviceaccount.com'],
    };
    const b = bucket();
    b.iam = { ...b.iam, bindings: [OWNERS, CONDITIONAL, ETL], etag: 'BwE-owner-edit' };
    // Act
    await action.rollback({ target, before }, c);
    // Assess: the public members are back; the revoked group stays revoked, the new grant stays.
    const members = (role: string) =>
      bucket()
        .iam.bindings.filter((x) => x.role === role && x.condition === undefined)
        .flatMap((x) => x.members)
        .sort();
    expect(members('roles/storage.objectViewer')).toEqual(['allUsers']);
    expect(members('roles/storage.legacyBucketReader')).toEqual(['allAuthenticatedUsers']);
    expect(members('roles/storage.objectCreator')).toEqual(ETL.members);
    expect(bucket().iam.bindings).toContainEqual(CONDITIONAL);
    expect(bucket().iam.bindings).toContainEqual(OWNERS);
  });

  /** The owner sets public access prevention back to inherited by hand. */
  const liftPrevention = () => {
    bucket().metadata.iamConfiguration = {
      uniformBucketLevelAccess: { enabled: true },
      publicAccessPrevention: 'inherited',
    };
  };

  it('on rollback leaves a prevention setting lifted since the fix as it is, and adds back only the public members', async () => {
    // Prepare: after the fix the owner set prevention back to inherited by hand. The rollback patched it
    // again over that change (a metadata write that was not the fix's to undo).
    const c = ctx();
    const { before } = await action.apply(await action.plan(target, c), c);
    liftPrevention();
    gcp.requests.length = 0;
    // Act
    const result = await action.rollback({ target, before }, c);
    // Assess
    expect(writes().map((w) => w.method)).toEqual(['PUT']);
    expect(result.requestIds).toHaveLength(1);
    expect(result.note).toBeUndefined();
    expect(bucket().iam.bindings).toEqual([OWNERS, PUBLIC_VIEWERS, PUBLIC_LISTERS, CONDITIONAL]);
  });

  it('on rollback writes nothing when the public members are back and prevention was lifted since the fix', async () => {
    // Prepare: the owner undid the fix by hand.
    const c = ctx();
    const { before } = await action.apply(await action.plan(target, c), c);
    liftPrevention();
    bucket().iam = { ...bucket().iam, bindings: [OWNERS, PUBLIC_VIEWERS, PUBLIC_LISTERS, CONDITIONAL] };
    gcp.requests.length = 0;
    // Act
    const result = await action.rollback({ target, before }, c);
    // Assess
    expect(writes()).toEqual([]);
    expect(result).toEqual({ requestIds: [] });
  });

  it('throws denied without retrying when GCS answers 403', async () => {
    // Prepare
    gcp.failNext('/iam', 403, { reason: 'forbidden' });
    // Act
    const attempt = action.plan(target, ctx());
    // Assess
    await expect(attempt).rejects.toSatisfy(isDenied);
    expect(gcp.requests.filter((r) => r.path.endsWith('/iam'))).toHaveLength(1);
  });

  it('throws gone when the bucket no longer exists', async () => {
    // Prepare
    gcp.buckets.clear();
    // Act
    const attempt = action.plan(target, ctx());
    // Assess
    await expect(attempt).rejects.toSatisfy(isGone);
  });

  it('retries and succeeds when GCS throttles the policy write once', async () => {
    // Prepare
    const c = ctx();
    const plan = await action.plan(target, c);
    gcp.failNext('/iam', 429, { method: 'PUT', reason: 'rateLimitExceeded' });
    gcp.requests.length = 0;
    // Act
    const result = await action.apply(plan, c);
    // Assess
    expect(gcp.requests.filter((r) => r.method === 'PUT')).toHaveLength(2);
    expect(result.requestIds).toHaveLength(2);
    expect(bucket().iam.bindings.flatMap((b) => b.members)).not.toContain('allUsers');
  });

  it('selects the bucket from an SCC storage resource name', () => {
    // Prepare / Act
    const t = action.selectTarget(
      findingFor({
        provider: 'gcp',
        id: `//storage.googleapis.com/${BUCKET}`,
        type: 'google.cloud.storage.Bucket',
        name: BUCKET,
        account: 'acme-prod',
      }),
    );
    // Assess
    expect(t).toEqual(target);
  });
});
