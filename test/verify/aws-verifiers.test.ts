/**
 * The verify stage with the real AWS verifiers (IAM key, role sessions, EC2 quarantine) against the
 * same aws-sdk-client-mock doubles as the action tests: verified, failed with what was observed, and
 * inconclusive with why (denied at once; throttled until the attempts run out).
 */
import {
  DescribeInstanceAttributeCommand,
  DescribeInstancesCommand,
  DescribeSecurityGroupsCommand,
  DescribeSnapshotsCommand,
  EC2Client,
} from '@aws-sdk/client-ec2';
import { GetRoleCommand, GetRolePolicyCommand, IAMClient, ListAccessKeysCommand } from '@aws-sdk/client-iam';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import type { Action } from '../../shared/actions/define.js';
import ec2Quarantine from '../../shared/actions/ec2.quarantine-instance.js';
import iamDeactivateKey from '../../shared/actions/iam.deactivate-access-key.js';
import iamRevokeSessions, { revokeDocument } from '../../shared/actions/iam.revoke-role-sessions.js';
import { MemoryEvidenceStore } from '../../shared/adapters/evidence/memory.js';
import { MemoryDocStore } from '../../shared/adapters/store/memory.js';
import { LocalUpstreamStatus } from '../../shared/adapters/upstream/local.js';
import { EvidenceRecordSchema } from '../../shared/core/evidence/record.js';
import { CaseSchema } from '../../shared/core/model/case.js';
import { silentLogger } from '../../shared/core/ports.js';
import { VerificationPolicySchema } from '../../shared/core/verify/policy.js';
import { createVerifyStage } from '../../shared/core/verify/stage.js';
import { awsError, FIXED_NOW, testContext } from '../helpers/action-context.js';
import { appliedCase, applyRequested, CASE_KEY, fixedClock, makeFinding, putCase, putFinding } from './helpers.js';

const iam = mockClient(IAMClient);
const ec2 = mockClient(EC2Client);

describe('verify stage with the real AWS verifiers', () => {
  let store: MemoryDocStore;
  let evidence: MemoryEvidenceStore;
  let sleeps: number[];

  beforeEach(async () => {
    iam.reset();
    ec2.reset();
    store = new MemoryDocStore();
    evidence = new MemoryEvidenceStore();
    sleeps = [];
    await putFinding(store, makeFinding());
  });

  /** Runs the stage on an applied case of `action` and returns the case and its verify record. */
  async function verifyApplied(action: Action, target: unknown) {
    await putCase(store, appliedCase(action.id, target));
    const events = await createVerifyStage({
      store,
      evidence,
      actions: { get: (id) => (id === action.id ? action : undefined) },
      ctx: testContext(),
      upstream: new LocalUpstreamStatus(),
      clock: fixedClock(),
      log: silentLogger,
      policy: VerificationPolicySchema.parse({ attempts: 3, backoffMs: 10 }),
      sleep: async (ms) => {
        sleeps.push(ms);
      },
    }).handle(applyRequested());
    const c = CaseSchema.parse((await store.get('cases', CASE_KEY))?.value);
    const records = (await evidence.listAll()).map((s) => EvidenceRecordSchema.parse(s.raw));
    return { c, events, verify: records.find((r) => r.step === 'verify') };
  }

  describe('iam.deactivate-access-key', () => {
    const target = { userName: 'build-bot', accessKeyId: 'AKIA0000000000EXAMPLE' };
    const keys = (Status: 'Active' | 'Inactive') => ({
      AccessKeyMetadata: [{ UserName: target.userName, AccessKeyId: target.accessKeyId, Status }],
    });

    it('verifies when the key reads back inactive', async () => {
      // Prepare
      iam.on(ListAccessKeysCommand).resolves(keys('Inactive'));
      // Act
      const { c, events, verify } = await verifyApplied(iamDeactivateKey, target);
      // Assess
      expect(iam).toHaveReceivedCommandWith(ListAccessKeysCommand, { UserName: 'build-bot' });
      expect(c).toMatchObject({ status: 'verified', verification: { verdict: 'verified', attempts: 1 } });
      expect(c.verification?.reason).toBe('access key AKIA0000000000EXAMPLE is inactive');
      expect(verify).toMatchObject({ verdict: 'verified', after: { status: 'Inactive' } });
      expect(events).toEqual([expect.objectContaining({ type: 'case.verified', verdict: 'verified' })]);
    });

    it('fails with the observed status when the key is still active after every re-read', async () => {
      // Prepare
      iam.on(ListAccessKeysCommand).resolves(keys('Active'));
      // Act
      const { c, verify } = await verifyApplied(iamDeactivateKey, target);
      // Assess
      expect(c.status).toBe('failed');
      expect(c.verification).toMatchObject({ verdict: 'failed', attempts: 3, observed: { status: 'Active' } });
      expect(c.verification?.reason).toBe('access key AKIA0000000000EXAMPLE is still active (after 3 re-reads)');
      expect(verify?.calls).toHaveLength(3);
      expect(sleeps).toEqual([10, 20]);
    });

    it('leaves no verdict, not a failed one, when the re-reads after an early "still active" are all throttled', async () => {
      // Prepare: the first re-read comes before the change took effect; IAM throttles every one after
      iam.on(ListAccessKeysCommand).resolvesOnce(keys('Active')).rejects(awsError('Throttling', 400));
      // Act
      const { c, events, verify } = await verifyApplied(iamDeactivateKey, target);
      // Assess: the early observation does not reopen the ticket as a failed fix
      expect(c.status).toBe('pending-verification');
      expect(c.verification).toMatchObject({ verdict: 'inconclusive', attempts: 3 });
      expect(c.verification?.reason).toMatch(/^no verdict after 3 re-reads: error: .*Throttling/);
      expect(verify?.calls.map((call) => call.outcome.split(':')[0])).toEqual(['does not hold', 'error', 'error']);
      expect(events).not.toContainEqual(expect.objectContaining({ type: 'case.verified', verdict: 'failed' }));
    });

    it('is inconclusive at once, with the reason, when IAM denies the re-read', async () => {
      // Prepare
      iam.on(ListAccessKeysCommand).rejects(awsError('AccessDenied', 403));
      // Act
      const { c, verify } = await verifyApplied(iamDeactivateKey, target);
      // Assess
      expect(c.status).toBe('pending-verification');
      expect(c.verification).toMatchObject({ verdict: 'inconclusive', attempts: 1 });
      expect(c.verification?.reason).toMatch(/^re-read failed and is not retried: .*AccessDenied/);
      expect(verify?.calls[0]?.requestId).toBe('req-AccessDenied');
      expect(sleeps).toEqual([]);
    });
  });

  describe('iam.revoke-role-sessions', () => {
    const target = { roleName: 'app-server', issuedBefore: '2026-11-18T09:07:02.000Z' };

    beforeEach(() => {
      iam.on(GetRoleCommand).resolves({});
    });

    it('verifies when the revoke deny covers the compromised sessions', async () => {
      // Prepare
      iam.on(GetRolePolicyCommand).resolves({ PolicyDocument: encodeURIComponent(revokeDocument(FIXED_NOW)) });
      // Act
      const { c } = await verifyApplied(iamRevokeSessions, target);
      // Assess
      expect(iam).toHaveReceivedCommandWith(GetRolePolicyCommand, {
        RoleName: 'app-server',
        PolicyName: 'AWSRevokeOlderSessions',
      });
      expect(c.verification).toMatchObject({ verdict: 'verified' });
      expect(c.verification?.reason).toBe(`role app-server denies sessions issued before ${FIXED_NOW.toISOString()}`);
    });

    it('fails when the deny was removed', async () => {
      // Prepare
      iam.on(GetRolePolicyCommand).rejects(awsError('NoSuchEntity', 404));
      // Act
      const { c } = await verifyApplied(iamRevokeSessions, target);
      // Assess
      expect(c.verification).toMatchObject({ verdict: 'failed', observed: { policyDocument: null } });
      expect(c.verification?.reason).toContain('has no AWSRevokeOlderSessions deny covering the compromised sessions');
    });

    it('fails when the deny predates the compromised sessions', async () => {
      // Prepare: a cutoff before the sessions to revoke leaves them working.
      iam
        .on(GetRolePolicyCommand)
        .resolves({ PolicyDocument: encodeURIComponent(revokeDocument(new Date('2026-11-01T00:00:00.000Z'))) });
      // Act
      const { c } = await verifyApplied(iamRevokeSessions, target);
      // Assess
      expect(c.verification?.verdict).toBe('failed');
    });
  });

  describe('ec2.quarantine-instance', () => {
    const target = { instanceId: 'i-0123456789abcdef0', region: 'us-east-1' };
    const ISO = 'sg-0000000000000iso0';

    function instanceWith(groups: string[], protectedFromTermination: boolean) {
      ec2.on(DescribeInstancesCommand).resolves({
        Reservations: [
          {
            Instances: [
              {
                InstanceId: target.instanceId,
                VpcId: 'vpc-00000000000000001',
                NetworkInterfaces: [
                  { NetworkInterfaceId: 'eni-00000000000000001', Groups: groups.map((GroupId) => ({ GroupId })) },
                ],
                BlockDeviceMappings: [{ DeviceName: '/dev/xvda', Ebs: { VolumeId: 'vol-00000000000000001' } }],
              },
            ],
          },
        ],
      });
      ec2.on(DescribeSecurityGroupsCommand).resolves({
        SecurityGroups: [{ GroupId: ISO, IpPermissions: [], IpPermissionsEgress: [] }],
      });
      ec2.on(DescribeInstanceAttributeCommand).resolves({ DisableApiTermination: { Value: protectedFromTermination } });
      ec2.on(DescribeSnapshotsCommand).resolves({ Snapshots: [{ VolumeId: 'vol-00000000000000001' }] });
    }

    it('verifies when only the empty isolation group is attached, termination is protected and the volume is snapshotted', async () => {
      // Prepare
      instanceWith([ISO], true);
      // Act
      const { c, verify } = await verifyApplied(ec2Quarantine, target);
      // Assess
      expect(ec2).toHaveReceivedCommandWith(DescribeSnapshotsCommand, {
        OwnerIds: ['self'],
        Filters: [{ Name: 'tag:closeloop:forensics-instance', Values: [target.instanceId] }],
      });
      expect(c.verification).toMatchObject({ verdict: 'verified' });
      expect(verify?.after).toMatchObject({ isolationGroup: { id: ISO }, snapshotsMissingFor: [] });
    });

    it('fails with the attached groups when someone re-attached the original group', async () => {
      // Prepare
      instanceWith([ISO, 'sg-0000000000000000a'], true);
      // Act
      const { c } = await verifyApplied(ec2Quarantine, target);
      // Assess
      expect(c.verification).toMatchObject({
        verdict: 'failed',
        observed: { interfaces: [{ groups: [ISO, 'sg-0000000000000000a'] }] },
      });
      expect(c.verification?.reason).toContain('not attached to the (empty) isolation group only');
    });

    it('is inconclusive after the bounded attempts when EC2 keeps throttling', async () => {
      // Prepare
      ec2.on(DescribeInstancesCommand).rejects(awsError('RequestLimitExceeded', 503));
      // Act
      const { c, verify } = await verifyApplied(ec2Quarantine, target);
      // Assess
      expect(c.verification).toMatchObject({ verdict: 'inconclusive', attempts: 3 });
      expect(c.verification?.reason).toMatch(/^no verdict after 3 re-reads: error: /);
      expect(verify?.calls.every((call) => call.outcome.startsWith('error:'))).toBe(true);
      expect(sleeps).toHaveLength(2);
    });

    it('is inconclusive, never a pass, when the instance is gone', async () => {
      // Prepare
      ec2.on(DescribeInstancesCommand).resolves({ Reservations: [] });
      // Act
      const { c } = await verifyApplied(ec2Quarantine, target);
      // Assess
      expect(c.verification?.verdict).toBe('inconclusive');
      expect(c.verification?.reason).toContain('not found');
    });
  });
});
