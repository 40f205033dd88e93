/**
 * A live read that fails for the moment (STS or the service throttled, a 5xx, a reset connection) is no
 * reason to give up a fix that policy allows: the case is held with why and when it is read again, the
 * release sweep (the hub's remediate schedule, the start of a local run) reads again once that time has
 * come, and only a read that keeps failing, or a permanent refusal, leaves the case blocked. Nothing is
 * applied without a live read that succeeded.
 */
import { IAMClient, ListAccessKeysCommand, UpdateAccessKeyCommand } from '@aws-sdk/client-iam';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import type { ActionContext } from '../../shared/actions/define.js';
import { getAction } from '../../shared/actions/registry.js';
import { MemoryDocStore } from '../../shared/adapters/store/memory.js';
import { type Case, CaseSchema } from '../../shared/core/model/case.js';
import {
  createRemediationStage,
  HELD_COLLECTION,
  type RemediationDeps,
  releaseHeld,
} from '../../shared/core/remediation/stage.js';
import { getDoc } from '../../shared/core/store/docs.js';
import {
  awsError,
  decidedCase,
  decidedEvent,
  FAKE_AWS,
  FIXED_NOW,
  findingFor,
  fixedClock,
  remediationDeps,
  TEST_AWS_ACCOUNT,
  testContext,
} from '../helpers/action-context.js';

const iam = mockClient(IAMClient);
const sts = mockClient(STSClient);
const LEAKED = 'AKIA1111EXAMPLELEAKD';
const action = getAction('iam.deactivate-access-key');
if (!action) throw new Error('iam.deactivate-access-key is not registered');

const finding = findingFor(
  { provider: 'aws', id: `arn:aws:iam::${TEST_AWS_ACCOUNT}:user/deploy`, type: 'AccessKey', name: 'deploy' },
  {
    type: 'UnauthorizedAccess:IAMUser/MaliciousIPCaller',
    actor: { accessKeyId: LEAKED, userName: 'deploy', userType: 'IAMUser' },
  },
);
const leakCase = (): Case =>
  decidedCase(finding, { action: action.id, gates: [{ gate: 'skip-tag', outcome: 'pass', reason: 'no skip tag' }] });
const KEY = leakCase().key;
const minutes = (n: number) => fixedClock(new Date(FIXED_NOW.getTime() + n * 60_000));

/** The local run's own account: asked of STS (mocked), as the CLI does. */
const stsContext = (): ActionContext => ({
  ...testContext(),
  awsAccount: async () =>
    (await new STSClient({ ...FAKE_AWS, region: 'us-east-1' }).send(new GetCallerIdentityCommand({}))).Account,
});

describe('a live read that fails for the moment is read again later, not blocked for good', () => {
  let store: MemoryDocStore;
  let ctx: ActionContext;
  const deps = (o: Partial<RemediationDeps> = {}): RemediationDeps => remediationDeps(store, action, ctx, o);
  const stored = async () => (await getDoc(store, 'cases', KEY, CaseSchema))?.value;
  const remediate = async () => {
    await store.put('cases', KEY, leakCase());
    await store.put('findings', finding.key, finding);
    return createRemediationStage(deps()).handle(decidedEvent(KEY));
  };

  beforeEach(() => {
    store = new MemoryDocStore();
    ctx = stsContext();
    iam.reset();
    sts.reset();
    sts.on(GetCallerIdentityCommand).resolves({ Account: TEST_AWS_ACCOUNT });
    iam.on(ListAccessKeysCommand).resolves({
      AccessKeyMetadata: [{ UserName: 'deploy', AccessKeyId: LEAKED, Status: 'Active' }],
    });
    iam.on(UpdateAccessKeyCommand).resolves({ $metadata: { requestId: 'req-deactivate' } });
  });

  it("holds the case when the run's own account cannot be read for a throttled STS, and applies once the sweep reads it", async () => {
    // Prepare: STS throttles this one call
    sts.on(GetCallerIdentityCommand).rejectsOnce(awsError('Throttling', 400)).resolves({ Account: TEST_AWS_ACCOUNT });
    // Act
    const events = await remediate();
    // Assess: held with why and when it is read again; nothing read or changed in IAM
    const held = await stored();
    expect(held?.remediation.state).toBe('held');
    expect(held?.remediation.stateReason).toContain("the AWS account of this run's credentials could not be read");
    expect(held?.remediation.stateReason).toContain('read again after 2026-11-18T10:05:00.000Z, attempt 1 of 5');
    expect(events).toMatchObject([{ type: 'case.remediation', state: 'held' }]);
    expect(await store.get(HELD_COLLECTION, KEY)).toBeDefined();
    expect(iam.calls()).toHaveLength(0);
    // Act: a sweep before the wait is over leaves it alone; the one after reads again and applies
    const early = await releaseHeld(deps({ clock: minutes(2) }));
    const due = await releaseHeld(deps({ clock: minutes(5) }));
    // Assess
    expect(early).toMatchObject({ released: 0, waiting: 1, events: [] });
    expect(due).toMatchObject({ released: 1, waiting: 0 });
    expect((await stored())?.remediation).toMatchObject({ state: 'applied', requestIds: ['req-deactivate'] });
    expect(iam).toReceiveCommandWith(UpdateAccessKeyCommand, { AccessKeyId: LEAKED, Status: 'Inactive' });
    expect(await store.get(HELD_COLLECTION, KEY)).toBeUndefined();
  });

  it('holds the case when the live plan read is throttled past its retries, and applies once a later read succeeds', async () => {
    // Prepare: IAM throttles every call of this run (the action's own retries included)
    iam.on(ListAccessKeysCommand).rejects(awsError('Throttling', 400));
    // Act
    await remediate();
    // Assess
    const held = await stored();
    expect(held?.remediation.state).toBe('held');
    expect(held?.remediation.stateReason).toContain('live state could not be read');
    expect(held?.remediation.stateReason).toContain('throttled: read again after 2026-11-18T10:05:00.000Z');
    expect(iam).toReceiveCommandTimes(UpdateAccessKeyCommand, 0);
    // Act: IAM answers again by the next sweep
    iam.on(ListAccessKeysCommand).resolves({
      AccessKeyMetadata: [{ UserName: 'deploy', AccessKeyId: LEAKED, Status: 'Active' }],
    });
    await releaseHeld(deps({ clock: minutes(5) }));
    // Assess
    expect((await stored())?.remediation.state).toBe('applied');
    expect(iam).toReceiveCommandTimes(UpdateAccessKeyCommand, 1);
  });

  it('holds the case when the live skip-tag re-read is throttled, and applies once a later read finds no skip tag', async () => {
    // Prepare: the Tagging API throttles the first re-read of the resource's tags
    let reads = 0;
    const tags = {
      tagsFor: async () => {
        reads++;
        if (reads === 1) throw awsError('ThrottlingException', 400);
        return { owner: 'deploy-team' };
      },
    };
    await store.put('cases', KEY, leakCase());
    await store.put('findings', finding.key, finding);
    // Act
    await createRemediationStage(deps({ tags })).handle(decidedEvent(KEY));
    // Assess: held (not blocked), nothing changed in IAM
    const held = await stored();
    expect(held?.remediation.state).toBe('held');
    expect(held?.remediation.stateReason).toContain('live tags could not be read');
    expect(held?.remediation.stateReason).toContain('read again after 2026-11-18T10:05:00.000Z, attempt 1 of 5');
    expect(iam).toReceiveCommandTimes(UpdateAccessKeyCommand, 0);
    // Act: the sweep after the wait reads the tags again
    await releaseHeld(deps({ tags, clock: minutes(5) }));
    // Assess
    expect((await stored())?.remediation.state).toBe('applied');
    expect(iam).toReceiveCommandTimes(UpdateAccessKeyCommand, 1);
  });

  it("waits as long as the service's Retry-After asks when that is longer", async () => {
    // Prepare
    const slowDown = awsError('ThrottlingException', 400, { $response: { headers: { 'retry-after': '1200' } } });
    iam.on(ListAccessKeysCommand).rejects(slowDown);
    // Act
    await remediate();
    const at5 = await releaseHeld(deps({ clock: minutes(5) }));
    // Assess
    expect((await stored())?.remediation.stateReason).toContain('read again after 2026-11-18T10:20:00.000Z');
    expect(at5).toMatchObject({ released: 0, waiting: 1 });
  });

  it('blocks with the reason once the read has failed on every retry, and applies nothing', async () => {
    // Prepare: IAM answers 503 to every read
    iam.on(ListAccessKeysCommand).rejects(awsError('ServiceUnavailable', 503));
    await remediate();
    // Act: each sweep once its wait is over (5, 15, 60 and 240 minutes after each failure)
    const states: string[] = [];
    for (const at of [5, 20, 80, 320]) {
      await releaseHeld(deps({ clock: minutes(at) }));
      states.push(String((await stored())?.remediation.state));
    }
    // Assess
    expect(states).toEqual(['held', 'held', 'held', 'blocked']);
    const c = await stored();
    expect(c?.remediation.stateReason).toContain('live state could not be read');
    expect(c?.remediation.stateReason).toContain(
      'transient, 5 reads in a row since 2026-11-18T10:00:00.000Z failed: no longer retried',
    );
    expect(iam).toReceiveCommandTimes(UpdateAccessKeyCommand, 0);
    // A later sweep does not read it again
    const calls = iam.calls().length;
    await releaseHeld(deps({ clock: minutes(2000) }));
    expect(iam.calls()).toHaveLength(calls);
  });

  it('blocks at once, as before, when the read is refused for good (AccessDenied, the key gone, no credentials)', async () => {
    // Prepare / Act: denied by IAM
    iam.on(ListAccessKeysCommand).rejects(awsError('AccessDenied', 403));
    await remediate();
    const denied = await stored();
    // … the user gone
    iam.on(ListAccessKeysCommand).rejects(awsError('NoSuchEntity', 404));
    await remediate();
    const gone = await stored();
    // … no credentials to ask STS with
    ctx = {
      ...testContext(),
      awsAccount: async () => {
        throw new Error('sts: could not load credentials');
      },
    };
    await remediate();
    const noCredentials = await stored();
    // Assess
    expect(denied?.remediation.state).toBe('blocked');
    expect(denied?.remediation.stateReason).toContain('live state could not be read');
    expect(gone?.remediation.state).toBe('blocked');
    expect(gone?.remediation.stateReason).toContain('resource gone');
    expect(noCredentials?.remediation).toMatchObject({
      state: 'blocked',
      stateReason: "the AWS account of this run's credentials could not be read (sts: could not load credentials)",
    });
    expect(await store.get(HELD_COLLECTION, KEY)).toBeUndefined();
    expect(iam).toReceiveCommandTimes(UpdateAccessKeyCommand, 0);
  });
});
