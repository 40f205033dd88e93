/**
 * An AWS call names no account: the credentials do. A GuardDuty finding from a member account names an
 * IAM user `deploy` there; the hub acting on it with its own role would list the hub's own `deploy` user's
 * keys, not find the leaked one, call it "gone" (a no-op plan, a re-read that holds) and close the case
 * as fixed while the key stays active. These tests pin that AWS actions act in the case's own account only.
 */
import { IAMClient, ListAccessKeysCommand, UpdateAccessKeyCommand } from '@aws-sdk/client-iam';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import type { ActionContext } from '../../shared/actions/define.js';
import { getAction } from '../../shared/actions/registry.js';
import { contextFor } from '../../shared/actions/scope.js';
import { MemoryDocStore } from '../../shared/adapters/store/memory.js';
import { UsageError } from '../../shared/core/errors.js';
import { type Case, CaseSchema } from '../../shared/core/model/case.js';
import { createRemediationStage, type RemediationDeps, rollbackCase } from '../../shared/core/remediation/stage.js';
import { getDoc } from '../../shared/core/store/docs.js';
import { assessCase } from '../../shared/core/verify/assess.js';
import {
  decidedCase,
  decidedEvent,
  findingFor,
  remediationDeps,
  TEST_AWS_ACCOUNT,
  testContext,
} from '../helpers/action-context.js';

const iam = mockClient(IAMClient);
const MEMBER = '444455556666';
const LEAKED = 'AKIA4444EXAMPLELEAKD';
const action = getAction('iam.deactivate-access-key');
if (!action) throw new Error('iam.deactivate-access-key is not registered');

const finding = findingFor(
  { provider: 'aws', id: `arn:aws:iam::${MEMBER}:user/deploy`, type: 'AccessKey', name: 'deploy', account: MEMBER },
  {
    type: 'UnauthorizedAccess:IAMUser/MaliciousIPCaller',
    actor: { accessKeyId: LEAKED, userName: 'deploy', userType: 'IAMUser' },
  },
);
const memberCase = (over: Partial<Case> = {}) =>
  decidedCase(
    finding,
    { action: action.id, gates: [{ gate: 'skip-tag', outcome: 'pass', reason: 'no skip tag' }] },
    over,
  );

describe('AWS actions act in the case account only', () => {
  let store: MemoryDocStore;
  const deps = (ctx: ActionContext | undefined): RemediationDeps => remediationDeps(store, action, ctx);
  const remediate = async (ctx: ActionContext | undefined, c = memberCase()) => {
    await store.put('cases', c.key, c);
    await store.put('findings', finding.key, finding);
    await createRemediationStage(deps(ctx)).handle(decidedEvent(c.key));
    return (await getDoc(store, 'cases', c.key, CaseSchema))?.value;
  };

  beforeEach(() => {
    store = new MemoryDocStore();
    iam.reset();
    // The hub's own account has a user named `deploy` too, with a key of its own.
    iam.on(ListAccessKeysCommand).resolves({
      AccessKeyMetadata: [{ UserName: 'deploy', AccessKeyId: 'AKIA1111EXAMPLEOWNKY', Status: 'Active' }],
    });
  });

  it("blocks a member account's case without reading anything in the hub's account", async () => {
    // Act
    const c = await remediate(testContext());
    // Assess: blocked with the reason, not "no longer exists" (a no-op that would close the case)
    expect(c?.remediation.state).toBe('blocked');
    expect(c?.remediation.stateReason).toBe(
      `the resource is in AWS account ${MEMBER} and this deployment acts in ${TEST_AWS_ACCOUNT} only ` +
        '(no member role to assume there: CLOSELOOP_MEMBER_ROLE)',
    );
    expect(iam.calls()).toHaveLength(0);
  });

  it('blocks when the own account is unknown or cannot be read (fail closed)', async () => {
    // Prepare
    const unknown: ActionContext = { ...testContext(), awsAccount: async () => undefined };
    const failing: ActionContext = {
      ...testContext(),
      awsAccount: async () => {
        throw new Error('sts: could not load credentials');
      },
    };
    // Act
    const a = await remediate(unknown, memberCase({ account: TEST_AWS_ACCOUNT }));
    const b = await remediate(failing, memberCase({ account: TEST_AWS_ACCOUNT }));
    // Assess
    expect(a?.remediation.stateReason).toBe("the AWS account of this run's credentials is not known");
    expect(b?.remediation.stateReason).toBe(
      "the AWS account of this run's credentials could not be read (sts: could not load credentials)",
    );
    expect(iam.calls()).toHaveLength(0);
  });

  it("acts through the member account's context when one reaches it", async () => {
    // Prepare: the member role's clients answer for the member account (a stub IAM client of their own).
    const sent: unknown[] = [];
    const memberIam = {
      send: async (command: { input: unknown; constructor: { name: string } }) => {
        sent.push([command.constructor.name, command.input]);
        return command instanceof ListAccessKeysCommand
          ? { AccessKeyMetadata: [{ UserName: 'deploy', AccessKeyId: LEAKED, Status: 'Active' }] }
          : { $metadata: { requestId: 'member-req-1' } };
      },
    } as unknown as IAMClient;
    const hub = testContext();
    const member = testContext({ clients: { iam: () => memberIam }, awsAccount: MEMBER });
    const ctx: ActionContext = { ...hub, inAwsAccount: (a) => (a === MEMBER ? member : undefined) };
    // Act
    const c = await remediate(ctx);
    // Assess: the leaked key was deactivated in the member account; the hub's namesake was never touched.
    expect(c?.remediation).toMatchObject({ state: 'applied', requestIds: ['member-req-1'] });
    expect(sent).toContainEqual([
      'UpdateAccessKeyCommand',
      { UserName: 'deploy', AccessKeyId: LEAKED, Status: 'Inactive' },
    ]);
    expect(iam).toReceiveCommandTimes(UpdateAccessKeyCommand, 0);
    expect(iam.calls()).toHaveLength(0);
  });

  it('refuses a rollback in another account', async () => {
    // Prepare: a case applied earlier (e.g. while a member role was deployed)
    const applied = memberCase();
    applied.remediation = {
      ...applied.remediation,
      state: 'applied',
      target: { userName: 'deploy', accessKeyId: LEAKED },
      before: { status: 'Active' },
    };
    await store.put('cases', applied.key, applied);
    // Act
    const attempt = rollbackCase(deps(testContext()), applied.key, 'oncall@example.com');
    // Assess
    await expect(attempt).rejects.toThrow(UsageError);
    await expect(attempt).rejects.toThrow(`rollback refused: the resource is in AWS account ${MEMBER}`);
    expect(iam.calls()).toHaveLength(0);
  });

  it("never re-reads another account's resource to verify it", async () => {
    // Prepare
    const policy = { attempts: 2, backoffMs: 1, maxBackoffMs: 1 };
    const verifyDeps = { actions: { get: () => action }, ctx: testContext(), policy, sleep: async () => {} };
    const active = memberCase();
    const resolved = memberCase({ sourceStatus: 'resolved' });
    // Act
    const stillActive = await assessCase(verifyDeps, active, [finding], 'apply');
    const atSource = await assessCase(verifyDeps, resolved, [{ ...finding, status: 'resolved' }], 'source-resolved');
    // Assess: no "gone, so fixed" from the hub's namesake; the source's own word is said to be all there is.
    expect(stillActive).toMatchObject({ verdict: 'inconclusive', basis: 'none' });
    expect(stillActive !== 'skip' && stillActive.reason).toContain(
      `no live re-read: the resource is in AWS account ${MEMBER}`,
    );
    expect(atSource).toMatchObject({ verdict: 'verified', basis: 'source-state' });
    expect(atSource !== 'skip' && atSource.reason).toContain('no live re-read');
    expect(iam.calls()).toHaveLength(0);
  });

  it('scopes AWS only: Azure and GCP targets name their subscription or project themselves', async () => {
    // Prepare
    const ctx: ActionContext = { ...testContext(), awsAccount: async () => undefined };
    // Act / Assess
    expect(await contextFor(ctx, 'azure', '00000000-0000-0000-0000-000000000001')).toEqual({ ctx });
    expect(await contextFor(ctx, 'gcp', 'acme-prod')).toEqual({ ctx });
    expect(await contextFor(testContext(), 'aws', 'not-an-account')).toEqual({
      refused: '"not-an-account" is not an AWS account id: nothing is acted on',
    });
    expect(await contextFor(testContext(), 'aws', TEST_AWS_ACCOUNT)).toHaveProperty('ctx');
  });
});
