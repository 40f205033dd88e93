import { IAMClient, ListAccessKeysCommand, UpdateAccessKeyCommand } from '@aws-sdk/client-iam';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import action from '../../shared/actions/iam.deactivate-access-key.js';
import { isDenied, isGone } from '../../shared/core/errors.js';
import { awsError, findingFor, testContext } from '../helpers/action-context.js';

const iam = mockClient(IAMClient);
const target = { userName: 'build-bot', accessKeyId: 'AKIA0000000000EXAMPLE' };
const keys = (Status: 'Active' | 'Inactive') => ({
  AccessKeyMetadata: [{ UserName: target.userName, AccessKeyId: target.accessKeyId, Status }],
});

describe('Action: iam.deactivate-access-key', () => {
  beforeEach(() => iam.reset());

  it('plans a no-op when the key is already inactive', async () => {
    // Prepare
    iam.on(ListAccessKeysCommand).resolves(keys('Inactive'));
    // Act
    const plan = await action.plan(target, testContext());
    // Assess
    expect(plan.noop).toBe(true);
    expect(iam).toReceiveCommandTimes(UpdateAccessKeyCommand, 0);
  });

  it('sets the key Inactive with the exact input when it is active', async () => {
    // Prepare
    iam.on(ListAccessKeysCommand).resolves(keys('Active'));
    iam.on(UpdateAccessKeyCommand).resolves({ $metadata: { requestId: 'U1' } });
    const ctx = testContext();
    // Act
    const result = await action.apply(await action.plan(target, ctx), ctx);
    // Assess
    expect(result).toEqual({ before: { status: 'Active' }, requestIds: ['U1'] });
    expect(iam).toReceiveCommandWith(UpdateAccessKeyCommand, {
      UserName: 'build-bot',
      AccessKeyId: 'AKIA0000000000EXAMPLE',
      Status: 'Inactive',
    });
  });

  it('retries and succeeds when IAM throttles once', async () => {
    // Prepare
    iam.on(ListAccessKeysCommand).rejectsOnce(awsError('Throttling', 400)).resolves(keys('Active'));
    // Act
    const plan = await action.plan(target, testContext());
    // Assess
    expect(plan.steps).toHaveLength(1);
    expect(iam).toReceiveCommandTimes(ListAccessKeysCommand, 2);
  });

  it('gives up after the bounded attempts when IAM keeps throttling', async () => {
    // Prepare
    iam.on(ListAccessKeysCommand).rejects(awsError('Throttling', 400));
    // Act
    const attempt = action.plan(target, testContext());
    // Assess
    await expect(attempt).rejects.toMatchObject({ kind: 'throttled' });
    expect(iam).toReceiveCommandTimes(ListAccessKeysCommand, 3);
  });

  it('throws denied without retrying when IAM answers AccessDenied', async () => {
    // Prepare
    iam.on(ListAccessKeysCommand).resolves(keys('Active'));
    iam.on(UpdateAccessKeyCommand).rejects(awsError('AccessDenied', 403));
    const ctx = testContext();
    // Act
    const attempt = action.apply(await action.plan(target, ctx), ctx);
    // Assess
    await expect(attempt).rejects.toSatisfy(isDenied);
    expect(iam).toReceiveCommandTimes(UpdateAccessKeyCommand, 1);
  });

  it('throws gone when the user no longer exists', async () => {
    // Prepare
    iam.on(ListAccessKeysCommand).rejects(awsError('NoSuchEntity', 404));
    // Act
    const attempt = action.plan(target, testContext());
    // Assess
    await expect(attempt).rejects.toSatisfy(isGone);
  });

  it('verifies only when the key is no longer active', async () => {
    // Prepare
    iam.on(ListAccessKeysCommand).resolves(keys('Active'));
    // Act
    const result = await action.verify(target, testContext());
    // Assess
    expect(result.holds).toBe(false);
  });

  it('re-activates the key on rollback when it was active before', async () => {
    // Prepare: the key as the fix left it.
    iam.on(ListAccessKeysCommand).resolves(keys('Inactive'));
    iam.on(UpdateAccessKeyCommand).resolves({ $metadata: { requestId: 'U2' } });
    // Act
    const result = await action.rollback({ target, before: { status: 'Active' } }, testContext());
    // Assess
    expect(result.requestIds).toEqual(['U2']);
    expect(iam).toReceiveCommandWith(UpdateAccessKeyCommand, {
      UserName: 'build-bot',
      AccessKeyId: 'AKIA0000000000EXAMPLE',
      Status: 'Active',
    });
  });

  it('on rollback restores nothing and says so when the key was deleted since the fix', async () => {
    // Prepare: its owner rotated the key after the fix (the deactivated one deleted, a new one made).
    iam.on(ListAccessKeysCommand).resolves({
      AccessKeyMetadata: [{ UserName: target.userName, AccessKeyId: 'AKIA1111111111EXAMPLE', Status: 'Active' }],
    });
    iam.on(UpdateAccessKeyCommand).rejects(awsError('NoSuchEntity', 404));
    // Act
    const result = await action.rollback({ target, before: { status: 'Active' } }, testContext());
    // Assess
    expect(result).toEqual({
      requestIds: [],
      note: 'access key AKIA0000000000EXAMPLE of build-bot no longer exists (deleted since the fix): nothing restored',
    });
    expect(iam).toReceiveCommandTimes(UpdateAccessKeyCommand, 0);
  });

  it('on rollback restores nothing and says so when the user was deleted since the fix', async () => {
    // Prepare
    iam.on(ListAccessKeysCommand).rejects(awsError('NoSuchEntity', 404));
    // Act
    const result = await action.rollback({ target, before: { status: 'Active' } }, testContext());
    // Assess
    expect(result.requestIds).toEqual([]);
    expect(result.note).toContain('no longer exists');
    expect(iam).toReceiveCommandTimes(UpdateAccessKeyCommand, 0);
  });

  it('on rollback writes nothing when the key is active again already', async () => {
    // Prepare
    iam.on(ListAccessKeysCommand).resolves(keys('Active'));
    // Act
    const result = await action.rollback({ target, before: { status: 'Active' } }, testContext());
    // Assess
    expect(result).toEqual({ requestIds: [] });
    expect(iam).toReceiveCommandTimes(UpdateAccessKeyCommand, 0);
  });

  it('selects the key from the actor of an IAM user finding', () => {
    // Prepare / Act
    const t = action.selectTarget(
      findingFor(
        { provider: 'aws', id: 'arn:aws:iam::111122223333:user/build-bot', type: 'AccessKey', name: 'build-bot' },
        { actor: { accessKeyId: 'AKIA0000000000EXAMPLE', userName: 'build-bot', userType: 'IAMUser' } },
      ),
    );
    // Assess
    expect(t).toEqual(target);
  });
});

describe('Action: iam.deactivate-access-key outside the aws partition', () => {
  beforeEach(() => iam.reset());
  afterEach(() => vi.unstubAllEnvs());

  // The region each IAM call's client was built for, and the endpoint the SDK sends it to.
  const calledAt = async () =>
    Promise.all(
      iam.calls().map(async (c) => {
        const config = (c.thisValue as IAMClient).config;
        const region = await config.region();
        const endpoint = config.endpointProvider({ Region: region, UseFIPS: false, UseDualStack: false });
        return `${region} ${endpoint.url.host}`;
      }),
    );

  it.each([
    ['us-gov-west-1', 'arn:aws-us-gov', 'us-gov-west-1 iam.us-gov.amazonaws.com'],
    ['us-gov-east-1', 'arn:aws-us-gov', 'us-gov-west-1 iam.us-gov.amazonaws.com'],
    ['cn-northwest-1', 'arn:aws-cn', 'cn-north-1 iam.cn-north-1.amazonaws.com.cn'],
    ['eu-west-1', 'arn:aws', 'us-east-1 iam.amazonaws.com'],
  ])("deployed in %s, reads, deactivates and verifies a leaked key at its partition's IAM", async (region, arn, at) => {
    // Prepare: a deployment in `region` (AWS_REGION, as Lambda sets it) and a key finding of its partition
    vi.stubEnv('AWS_REGION', region);
    iam.on(ListAccessKeysCommand).resolvesOnce(keys('Active')).resolves(keys('Inactive'));
    iam.on(UpdateAccessKeyCommand).resolves({ $metadata: { requestId: 'U1' } });
    const ctx = testContext();
    const t = action.selectTarget(
      findingFor(
        { provider: 'aws', id: `${arn}:iam::111122223333:user/build-bot`, type: 'AccessKey', name: 'build-bot' },
        { actor: { accessKeyId: 'AKIA0000000000EXAMPLE', userName: 'build-bot', userType: 'IAMUser' } },
      ),
    );
    if (!t) throw new Error('no target');
    // Act
    await action.apply(await action.plan(t, ctx), ctx);
    const verified = await action.verify(t, ctx);
    // Assess: the plan's read, the update and the verify's read each at the partition's IAM (us-east-1 in
    // every partition before)
    expect(verified.holds).toBe(true);
    expect(await calledAt()).toEqual([at, at, at]);
  });
});
