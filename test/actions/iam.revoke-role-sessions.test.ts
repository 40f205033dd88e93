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
import { isDenied, isGone } from '../../shared/core/errors.js';
import { awsError, FIXED_NOW, testContext } from '../helpers/action-context.js';

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
    expect(result).toEqual({ before: { policyDocument: null }, requestIds: ['P1'] });
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

  it('deletes the revoke policy on rollback when the role had none', async () => {
    // Prepare
    iam.on(DeleteRolePolicyCommand).resolves({ $metadata: { requestId: 'D1' } });
    // Act
    const result = await action.rollback({ target, before: { policyDocument: null } }, testContext());
    // Assess
    expect(result.requestIds).toEqual(['D1']);
    expect(iam).toReceiveCommandWith(DeleteRolePolicyCommand, {
      RoleName: 'app-server',
      PolicyName: 'AWSRevokeOlderSessions',
    });
  });
});
