import {
  DeleteRolePolicyCommand,
  GetRoleCommand,
  GetRolePolicyCommand,
  IAMClient,
  PutRolePolicyCommand,
} from '@aws-sdk/client-iam';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import action, { revokeDocument } from '../../shared/actions/iam.revoke-role-sessions.js';
import { isConflict, isDenied, isGone } from '../../shared/core/errors.js';
import { awsError, FIXED_NOW, fixedClock, testContext } from '../helpers/action-context.js';

const iam = mockClient(IAMClient);
const target = { roleName: 'app-server', issuedBefore: '2026-11-18T09:07:02.000Z' };

describe('Action: iam.revoke-role-sessions', () => {
  beforeEach(() => {
    iam.reset();
    iam.on(GetRoleCommand).resolves({});
  });

  it('puts the AWSRevokeOlderSessions deny with the token issue time when the role has none', async () => {
    // Prepare
    iam.on(GetRolePolicyCommand).rejects(awsError('NoSuchEntity', 404));
    iam.on(PutRolePolicyCommand).resolves({ $metadata: { requestId: 'P1' } });
    const ctx = testContext();
    // Act
    const result = await action.apply(await action.plan(target, ctx), ctx);
    // Assess
    expect(result).toEqual({
      before: { policyDocument: null, cutoff: '2026-11-18T10:00:00.000Z' },
      requestIds: ['P1'],
    });
    expect(iam).toReceiveCommandWith(PutRolePolicyCommand, {
      RoleName: 'app-server',
      PolicyName: 'AWSRevokeOlderSessions',
      PolicyDocument: JSON.stringify({
        Version: '2012-10-17',
        Statement: [
          {
            Effect: 'Deny',
            Action: ['*'],
            Resource: ['*'],
            Condition: { DateLessThan: { 'aws:TokenIssueTime': '2026-11-18T10:00:00.000Z' } },
          },
        ],
      }),
    });
  });

  it('plans a no-op when an existing revoke already covers the compromised sessions', async () => {
    // Prepare
    iam.on(GetRolePolicyCommand).resolves({ PolicyDocument: encodeURIComponent(revokeDocument(FIXED_NOW)) });
    // Act
    const plan = await action.plan(target, testContext());
    // Assess
    expect(plan.noop).toBe(true);
    expect(iam).toReceiveCommandTimes(PutRolePolicyCommand, 0);
  });

  it('verifies the deny with the token issue time is in place', async () => {
    // Prepare
    iam.on(GetRolePolicyCommand).resolves({ PolicyDocument: encodeURIComponent(revokeDocument(FIXED_NOW)) });
    // Act
    const result = await action.verify(target, testContext());
    // Assess
    expect(result.holds).toBe(true);
  });

  it('does not count a revoke policy that denies less than everything to the old sessions', async () => {
    // Prepare: the policy keeps its name, Deny and token-issue-time cutoff, but was narrowed.
    const full = JSON.parse(revokeDocument(FIXED_NOW)) as { Statement: Array<Record<string, unknown>> };
    const [deny = {}] = full.Statement;
    const narrowed = [
      { ...deny, Action: ['s3:GetObject'] },
      { ...deny, Resource: ['arn:aws:s3:::acme-logs/*'] },
      { ...deny, Action: undefined, NotAction: ['iam:*'] },
      {
        ...deny,
        Condition: {
          DateLessThan: { 'aws:TokenIssueTime': FIXED_NOW.toISOString() },
          IpAddress: { 'aws:SourceIp': '203.0.113.0/24' },
        },
      },
    ];
    for (const statement of narrowed) {
      const doc = JSON.stringify({ ...full, Statement: [statement] });
      iam.on(GetRolePolicyCommand).resolves({ PolicyDocument: encodeURIComponent(doc) });
      // Act
      const verdict = await action.verify(target, testContext());
      const plan = await action.plan(target, testContext());
      // Assess
      expect(verdict.holds, doc).toBe(false);
      expect(
        plan.steps.map((s) => s.call.api),
        doc,
      ).toEqual(['iam:PutRolePolicy']);
    }
  });

  it('throws gone when the role no longer exists', async () => {
    // Prepare
    iam.on(GetRoleCommand).rejects(awsError('NoSuchEntity', 404));
    // Act / Assess
    await expect(action.plan(target, testContext())).rejects.toSatisfy(isGone);
  });

  it('throws denied when IAM answers AccessDenied', async () => {
    // Prepare
    iam.on(GetRolePolicyCommand).rejects(awsError('AccessDenied', 403));
    // Act / Assess
    await expect(action.plan(target, testContext())).rejects.toSatisfy(isDenied);
  });

  it('retries and succeeds when IAM throttles once', async () => {
    // Prepare
    iam.on(GetRoleCommand).rejectsOnce(awsError('Throttling', 400)).resolves({});
    iam.on(GetRolePolicyCommand).rejects(awsError('NoSuchEntity', 404));
    // Act
    const plan = await action.plan(target, testContext());
    // Assess
    expect(plan.steps).toHaveLength(1);
  });

  /** IAM holding one role's inline policies: what the fix, a later fix and the rollback write is what is read. */
  function statefulIam() {
    const policy: { doc: string | null } = { doc: null };
    let n = 0;
    iam.on(GetRolePolicyCommand).callsFake(async () => {
      if (policy.doc === null) throw awsError('NoSuchEntity', 404);
      return { PolicyDocument: encodeURIComponent(policy.doc) };
    });
    iam.on(PutRolePolicyCommand).callsFake(async (input: { PolicyDocument: string }) => {
      policy.doc = input.PolicyDocument;
      return { $metadata: { requestId: `P${++n}` } };
    });
    iam.on(DeleteRolePolicyCommand).callsFake(async () => {
      policy.doc = null;
      return { $metadata: { requestId: `D${++n}` } };
    });
    return policy;
  }
  const later = new Date(FIXED_NOW.getTime() + 2 * 3600_000);

  it('deletes the revoke policy on rollback when the role had none and the fix is still the live one', async () => {
    // Prepare
    const policy = statefulIam();
    const ctx = testContext();
    const { before } = await action.apply(await action.plan(target, ctx), ctx);
    // Act
    const result = await action.rollback({ target, before }, ctx);
    // Assess
    expect(result.requestIds).toEqual(['D2']);
    expect(policy.doc).toBeNull();
    expect(iam).toReceiveCommandWith(DeleteRolePolicyCommand, {
      RoleName: 'app-server',
      PolicyName: 'AWSRevokeOlderSessions',
    });
  });

  it('puts the earlier revoke back on rollback when the fix replaced one', async () => {
    // Prepare: the role had been revoked a day earlier, before this compromise.
    const policy = statefulIam();
    const earlier = revokeDocument(new Date('2026-11-17T08:00:00.000Z'));
    policy.doc = earlier;
    const ctx = testContext();
    const { before } = await action.apply(await action.plan(target, ctx), ctx);
    // Act
    await action.rollback({ target, before }, ctx);
    // Assess
    expect(policy.doc).toBe(earlier);
  });

  it('applies a plan made earlier (an approval) and keeps the cutoff its step writes, not the apply time', async () => {
    // Prepare: planned at FIXED_NOW, approved and applied two hours later.
    statefulIam();
    const planned = await action.plan(target, testContext());
    // Act
    const result = await action.apply(planned, testContext({ clock: fixedClock(later) }));
    // Assess
    expect(result.before.cutoff).toBe(FIXED_NOW.toISOString());
    expect(iam).toReceiveCommandWith(PutRolePolicyCommand, { PolicyDocument: revokeDocument(FIXED_NOW) });
  });

  it('leaves a later revoke in place on rollback: the sessions revoked again since stay revoked', async () => {
    // Prepare: this case's fix, then a second compromise of the role revokes its sessions again, later.
    const policy = statefulIam();
    const first = testContext();
    const { before } = await action.apply(await action.plan(target, first), first);
    const second = testContext({ clock: fixedClock(later) });
    const again = { roleName: 'app-server', issuedBefore: new Date(later.getTime() - 60_000).toISOString() };
    await action.apply(await action.plan(again, second), second);
    iam.resetHistory();
    // Act / Assess: refused, saying why, and the later cutoff still denies the old sessions.
    await expect(action.rollback({ target, before }, first)).rejects.toSatisfy(
      (e: Error) => isConflict(e) && /revoked again since the fix/.test(e.message),
    );
    expect(policy.doc).toBe(revokeDocument(later));
    expect(iam).toReceiveCommandTimes(DeleteRolePolicyCommand, 0);
    expect(iam).toReceiveCommandTimes(PutRolePolicyCommand, 0);
  });

  it('changes nothing on rollback when the revoke policy was removed since the fix', async () => {
    // Prepare
    const policy = statefulIam();
    const ctx = testContext();
    const { before } = await action.apply(await action.plan(target, ctx), ctx);
    policy.doc = null;
    iam.resetHistory();
    // Act
    const result = await action.rollback({ target, before }, ctx);
    // Assess
    expect(result.requestIds).toEqual([]);
    expect(iam).toReceiveCommandTimes(PutRolePolicyCommand, 0);
    expect(iam).toReceiveCommandTimes(DeleteRolePolicyCommand, 0);
  });

  it('loads a before-state recorded without the cutoff and refuses to remove a revoke it cannot tell apart', async () => {
    // Prepare: a record kept before the cutoff was; the role is revoked (by the fix, or again since).
    const policy = statefulIam();
    policy.doc = revokeDocument(later);
    const before = action.beforeSchema.parse({ policyDocument: null });
    // Act / Assess
    await expect(action.rollback({ target, before }, testContext())).rejects.toSatisfy(isConflict);
    expect(policy.doc).toBe(revokeDocument(later));
  });
});
