import {
  CreateSecurityGroupCommand,
  CreateSnapshotCommand,
  CreateTagsCommand,
  DeleteTagsCommand,
  DescribeInstanceAttributeCommand,
  DescribeInstancesCommand,
  DescribeSecurityGroupsCommand,
  DescribeSnapshotsCommand,
  EC2Client,
  ModifyInstanceAttributeCommand,
  ModifyNetworkInterfaceAttributeCommand,
  RevokeSecurityGroupEgressCommand,
} from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import action from '../../shared/actions/ec2.quarantine-instance.js';
import { ApplyIncompleteError, isDenied, isGone } from '../../shared/core/errors.js';
import { awsError, findingFor, testContext } from '../helpers/action-context.js';

const ec2 = mockClient(EC2Client);
const target = { instanceId: 'i-0123456789abcdef0', region: 'us-east-1' };
const VPC = 'vpc-00000000000000001';

function instance(groupsByEni: Record<string, string[]>, tags: Array<{ Key: string; Value: string }> = []) {
  ec2.on(DescribeInstancesCommand).resolves({
    Reservations: [
      {
        Instances: [
          {
            InstanceId: target.instanceId,
            VpcId: VPC,
            Tags: tags,
            NetworkInterfaces: Object.entries(groupsByEni).map(([id, groups]) => ({
              NetworkInterfaceId: id,
              Groups: groups.map((GroupId) => ({ GroupId })),
            })),
            BlockDeviceMappings: [{ DeviceName: '/dev/xvda', Ebs: { VolumeId: 'vol-00000000000000001' } }],
          },
        ],
      },
    ],
  });
}

/** A snapshot as DescribeSnapshots lists it. */
type Snapshot = { SnapshotId: string; VolumeId: string; State: string; Tags: Array<{ Key?: string; Value?: string }> };

/**
 * The account's snapshots behind CreateSnapshot and DescribeSnapshots (filters by volume, tag and status
 * applied as EC2 does); `loseAnswers` makes the next creates take effect and then time out.
 */
function snapshotStore(existing: Snapshot[] = []) {
  const snapshots = [...existing];
  let lost = 0;
  ec2
    .on(CreateSnapshotCommand)
    .callsFake(async (input: { VolumeId: string; TagSpecifications?: Array<{ Tags?: Snapshot['Tags'] }> }) => {
      const made = {
        SnapshotId: `snap-0000000000000000${snapshots.length + 1}`,
        VolumeId: input.VolumeId,
        State: 'pending',
        Tags: input.TagSpecifications?.flatMap((t) => t.Tags ?? []) ?? [],
      };
      snapshots.push(made);
      if (lost > 0) {
        lost--;
        throw Object.assign(new Error('the request socket timed out after 3000 ms of inactivity'), {
          name: 'TimeoutError',
        });
      }
      return { SnapshotId: made.SnapshotId, $metadata: { requestId: `create-${made.SnapshotId}` } };
    });
  ec2.on(DescribeSnapshotsCommand).callsFake(async (input: { Filters?: Array<{ Name: string; Values: string[] }> }) => {
    const fits = (s: Snapshot) =>
      (input.Filters ?? []).every((f) => {
        if (f.Name === 'volume-id') return f.Values.includes(s.VolumeId);
        if (f.Name === 'status') return f.Values.includes(s.State);
        if (f.Name.startsWith('tag:'))
          return s.Tags.some((t) => `tag:${t.Key}` === f.Name && f.Values.includes(t.Value ?? ''));
        throw new Error(`filter ${f.Name} not modelled`);
      });
    return { Snapshots: snapshots.filter(fits), $metadata: { requestId: 'describe-1' } };
  });
  return { snapshots, loseAnswers: (n: number) => (lost = n) };
}

/** The VPC's isolation group (tagged, no rules), as a quarantine leaves it. */
function isolationGroupInVpc() {
  ec2.on(DescribeSecurityGroupsCommand).resolves({
    SecurityGroups: [{ GroupId: 'sg-0000000000000iso0', IpPermissions: [], IpPermissionsEgress: [] }],
  });
}

describe('Action: ec2.quarantine-instance', () => {
  beforeEach(() => {
    ec2.reset();
    ec2.on(DescribeInstanceAttributeCommand).resolves({ DisableApiTermination: { Value: false } });
    ec2.on(DescribeSecurityGroupsCommand).resolves({ SecurityGroups: [] });
    ec2.on(DescribeSnapshotsCommand).resolves({ Snapshots: [] });
  });

  it('creates the isolation group, revokes its egress, swaps every ENI, snapshots and protects when none exists', async () => {
    // Prepare
    instance({
      'eni-00000000000000001': ['sg-0000000000000000a', 'sg-0000000000000000b'],
      'eni-00000000000000002': ['sg-0000000000000000c'],
    });
    ec2.on(CreateSecurityGroupCommand).resolves({ GroupId: 'sg-0000000000000iso0', $metadata: { requestId: 'C1' } });
    ec2.on(RevokeSecurityGroupEgressCommand).resolves({ $metadata: { requestId: 'C2' } });
    ec2.on(ModifyNetworkInterfaceAttributeCommand).resolves({ $metadata: { requestId: 'C3' } });
    ec2.on(CreateSnapshotCommand).resolves({ SnapshotId: 'snap-00000000000000001', $metadata: { requestId: 'C4' } });
    ec2.on(ModifyInstanceAttributeCommand).resolves({ $metadata: { requestId: 'C5' } });
    ec2.on(CreateTagsCommand).resolves({ $metadata: { requestId: 'C6' } });
    const ctx = testContext();
    // Act
    const plan = await action.plan(target, ctx);
    const result = await action.apply(plan, ctx);
    // Assess
    expect(result.requestIds).toEqual(['C1', 'C2', 'C3', 'C3', 'C4 (snap-00000000000000001)', 'C5', 'C6']);
    expect(ec2).toReceiveCommandWith(CreateSecurityGroupCommand, {
      GroupName: `closeloop-isolation-${VPC}`,
      VpcId: VPC,
      TagSpecifications: [{ ResourceType: 'security-group', Tags: [{ Key: 'closeloop:isolation', Value: 'true' }] }],
    });
    expect(ec2).toReceiveCommandWith(RevokeSecurityGroupEgressCommand, {
      GroupId: 'sg-0000000000000iso0',
      IpPermissions: [{ IpProtocol: '-1', IpRanges: [{ CidrIp: '0.0.0.0/0' }] }],
    });
    expect(ec2).toReceiveCommandWith(ModifyNetworkInterfaceAttributeCommand, {
      NetworkInterfaceId: 'eni-00000000000000002',
      Groups: ['sg-0000000000000iso0'],
    });
    expect(ec2).toReceiveCommandWith(CreateSnapshotCommand, { VolumeId: 'vol-00000000000000001' });
    expect(ec2).toReceiveCommandWith(ModifyInstanceAttributeCommand, {
      InstanceId: target.instanceId,
      DisableApiTermination: { Value: true },
    });
    expect(result.before.interfaces[0]?.groups).toEqual(['sg-0000000000000000a', 'sg-0000000000000000b']);
  });

  it('takes the group a timed-out CreateSecurityGroup made when its re-send is refused as a duplicate', async () => {
    // Prepare: EC2 makes the group, the answer is lost; the re-send is refused (the name is taken in the VPC)
    instance({ 'eni-00000000000000001': ['sg-0000000000000000a'] });
    let made = false;
    ec2.on(CreateSecurityGroupCommand).callsFake(async () => {
      if (made) throw awsError('InvalidGroup.Duplicate', 400);
      made = true;
      throw Object.assign(new Error('the request socket timed out after 3000 ms of inactivity'), {
        name: 'TimeoutError',
      });
    });
    ec2.on(DescribeSecurityGroupsCommand).callsFake(async (input: { Filters?: Array<{ Name: string }> }) => ({
      SecurityGroups:
        made && input.Filters?.some((f) => f.Name === 'group-name') ? [{ GroupId: 'sg-0000000000000iso0' }] : [],
      $metadata: { requestId: 'D1' },
    }));
    ec2.on(RevokeSecurityGroupEgressCommand).resolves({ $metadata: { requestId: 'C2' } });
    ec2.on(ModifyNetworkInterfaceAttributeCommand).resolves({ $metadata: { requestId: 'C3' } });
    snapshotStore();
    ec2.on(ModifyInstanceAttributeCommand).resolves({ $metadata: { requestId: 'C5' } });
    ec2.on(CreateTagsCommand).resolves({ $metadata: { requestId: 'C6' } });
    const ctx = testContext();
    const plan = await action.plan(target, ctx);
    // Act
    const result = await action.apply(plan, ctx);
    // Assess: one group made, and the quarantine carried on with it
    expect(ec2).toReceiveCommandTimes(CreateSecurityGroupCommand, 2);
    expect(ec2).toReceiveCommandWith(DescribeSecurityGroupsCommand, {
      Filters: [
        { Name: 'group-name', Values: [`closeloop-isolation-${VPC}`] },
        { Name: 'vpc-id', Values: [VPC] },
        { Name: 'tag:closeloop:isolation', Values: ['true'] },
      ],
    });
    expect(ec2).toReceiveCommandWith(ModifyNetworkInterfaceAttributeCommand, {
      NetworkInterfaceId: 'eni-00000000000000001',
      Groups: ['sg-0000000000000iso0'],
    });
    expect(result.requestIds[0]).toBe('D1');
  });

  it('tags the forensic snapshot at creation with the apply key and the instance', async () => {
    // Prepare
    instance({ 'eni-00000000000000001': ['sg-0000000000000iso0'] });
    ec2.on(DescribeSecurityGroupsCommand).resolves({
      SecurityGroups: [{ GroupId: 'sg-0000000000000iso0', IpPermissions: [], IpPermissionsEgress: [] }],
    });
    ec2.on(ModifyInstanceAttributeCommand).resolves({ $metadata: { requestId: 'M1' } });
    ec2.on(CreateTagsCommand).resolves({ $metadata: { requestId: 'T1' } });
    const store = snapshotStore();
    const ctx = { ...testContext(), applyKey: 'key-of-the-remediation' };
    // Act
    const result = await action.apply(await action.plan(target, ctx), ctx);
    // Assess
    expect(result.requestIds).toEqual(['create-snap-00000000000000001 (snap-00000000000000001)', 'M1', 'T1']);
    expect(ec2).toReceiveCommandWith(CreateSnapshotCommand, {
      VolumeId: 'vol-00000000000000001',
      TagSpecifications: [
        {
          ResourceType: 'snapshot',
          Tags: [
            { Key: 'closeloop:forensics-instance', Value: target.instanceId },
            { Key: 'closeloop:apply-key', Value: 'key-of-the-remediation' },
          ],
        },
      ],
    });
    expect(ec2).toReceiveCommandWith(DescribeSnapshotsCommand, {
      OwnerIds: ['self'],
      Filters: [
        { Name: 'volume-id', Values: ['vol-00000000000000001'] },
        { Name: 'tag:closeloop:apply-key', Values: ['key-of-the-remediation'] },
        { Name: 'status', Values: ['pending', 'completed'] },
      ],
    });
    expect(store.snapshots).toHaveLength(1);
  });

  it('makes no second snapshot when a retried apply finds the one a timed-out CreateSnapshot made', async () => {
    // Prepare: the create takes effect and loses its answer; the apply gives up at once (no in-call retry)
    instance({ 'eni-00000000000000001': ['sg-0000000000000iso0'] });
    ec2.on(DescribeSecurityGroupsCommand).resolves({
      SecurityGroups: [{ GroupId: 'sg-0000000000000iso0', IpPermissions: [], IpPermissionsEgress: [] }],
    });
    ec2.on(ModifyInstanceAttributeCommand).resolves({ $metadata: { requestId: 'M1' } });
    ec2.on(CreateTagsCommand).resolves({ $metadata: { requestId: 'T1' } });
    const store = snapshotStore();
    store.loseAnswers(1);
    const ctx = { ...testContext(), retry: { attempts: 1 }, applyKey: 'key-of-the-remediation' };
    // Act
    const first = action.apply(await action.plan(target, ctx), ctx);
    await expect(first).rejects.toBeInstanceOf(ApplyIncompleteError);
    const retried = await action.apply(await action.plan(target, ctx), ctx);
    // Assess: one snapshot, found again and named in the retry's record
    expect(ec2).toReceiveCommandTimes(CreateSnapshotCommand, 1);
    expect(store.snapshots.map((s) => s.SnapshotId)).toEqual(['snap-00000000000000001']);
    expect(retried.requestIds).toEqual([
      'describe-1 (snap-00000000000000001, already made by this remediation)',
      'M1',
      'T1',
    ]);
  });

  it('makes no second snapshot when its own re-send follows a CreateSnapshot that timed out after taking effect', async () => {
    // Prepare: the first send takes effect and loses its answer; the call is retried within the same apply
    instance({ 'eni-00000000000000001': ['sg-0000000000000iso0'] });
    ec2.on(DescribeSecurityGroupsCommand).resolves({
      SecurityGroups: [{ GroupId: 'sg-0000000000000iso0', IpPermissions: [], IpPermissionsEgress: [] }],
    });
    ec2.on(ModifyInstanceAttributeCommand).resolves({ $metadata: { requestId: 'M1' } });
    ec2.on(CreateTagsCommand).resolves({ $metadata: { requestId: 'T1' } });
    const store = snapshotStore();
    store.loseAnswers(1);
    const ctx = testContext();
    // Act
    const result = await action.apply(await action.plan(target, ctx), ctx);
    // Assess
    expect(ec2).toReceiveCommandTimes(CreateSnapshotCommand, 1);
    expect(store.snapshots).toHaveLength(1);
    expect(result.requestIds[0]).toBe('describe-1 (snap-00000000000000001, already made by this remediation)');
  });

  it("snapshots again for a new remediation: another remediation's snapshot of the volume is not reused", async () => {
    // Prepare: a snapshot an earlier (rolled back) quarantine of the instance made
    instance({ 'eni-00000000000000001': ['sg-0000000000000iso0'] });
    ec2.on(DescribeSecurityGroupsCommand).resolves({
      SecurityGroups: [{ GroupId: 'sg-0000000000000iso0', IpPermissions: [], IpPermissionsEgress: [] }],
    });
    ec2.on(ModifyInstanceAttributeCommand).resolves({ $metadata: { requestId: 'M1' } });
    ec2.on(CreateTagsCommand).resolves({ $metadata: { requestId: 'T1' } });
    const store = snapshotStore([
      {
        SnapshotId: 'snap-000000000000000a0',
        VolumeId: 'vol-00000000000000001',
        State: 'completed',
        Tags: [
          { Key: 'closeloop:forensics-instance', Value: target.instanceId },
          { Key: 'closeloop:apply-key', Value: 'key-of-last-month' },
        ],
      },
    ]);
    const ctx = { ...testContext(), applyKey: 'key-of-this-remediation' };
    // Act
    await action.apply(await action.plan(target, ctx), ctx);
    // Assess
    expect(ec2).toReceiveCommandTimes(CreateSnapshotCommand, 1);
    expect(store.snapshots).toHaveLength(2);
  });

  it('plans a no-op when every ENI has only the empty isolation group and termination protection is on', async () => {
    // Prepare
    instance({ 'eni-00000000000000001': ['sg-0000000000000iso0'] });
    ec2.on(DescribeSecurityGroupsCommand).resolves({
      SecurityGroups: [{ GroupId: 'sg-0000000000000iso0', IpPermissions: [], IpPermissionsEgress: [] }],
    });
    ec2.on(DescribeInstanceAttributeCommand).resolves({ DisableApiTermination: { Value: true } });
    // Act
    const plan = await action.plan(target, testContext());
    // Assess
    expect(plan.noop).toBe(true);
  });

  it('reuses the tagged isolation group of the VPC instead of creating another', async () => {
    // Prepare
    instance({ 'eni-00000000000000001': ['sg-0000000000000000a'] });
    ec2.on(DescribeSecurityGroupsCommand).resolves({
      SecurityGroups: [{ GroupId: 'sg-0000000000000iso0', IpPermissions: [], IpPermissionsEgress: [] }],
    });
    // Act
    const plan = await action.plan(target, testContext());
    // Assess
    expect(plan.steps.map((s) => s.call.api)).toEqual([
      'ec2:ModifyNetworkInterfaceAttribute',
      'ec2:CreateSnapshot',
      'ec2:ModifyInstanceAttribute',
      'ec2:CreateTags',
    ]);
    expect(plan.steps[0]?.call.input).toEqual({
      NetworkInterfaceId: 'eni-00000000000000001',
      Groups: ['sg-0000000000000iso0'],
    });
  });

  it('throws gone when the instance no longer exists', async () => {
    // Prepare
    ec2.on(DescribeInstancesCommand).rejects(awsError('InvalidInstanceID.NotFound', 400));
    // Act / Assess
    await expect(action.plan(target, testContext())).rejects.toSatisfy(isGone);
  });

  it('throws denied when EC2 answers UnauthorizedOperation', async () => {
    // Prepare
    ec2.on(DescribeInstancesCommand).rejects(awsError('UnauthorizedOperation', 403));
    // Act / Assess
    await expect(action.plan(target, testContext())).rejects.toSatisfy(isDenied);
  });

  it('retries and succeeds when EC2 answers RequestLimitExceeded once', async () => {
    // Prepare
    instance({ 'eni-00000000000000001': ['sg-0000000000000000a'] });
    ec2
      .on(DescribeInstanceAttributeCommand)
      .rejectsOnce(awsError('RequestLimitExceeded', 503))
      .resolves({ DisableApiTermination: { Value: false } });
    // Act
    const plan = await action.plan(target, testContext());
    // Assess
    expect(plan.noop).toBe(false);
    expect(ec2).toReceiveCommandTimes(DescribeInstanceAttributeCommand, 2);
  });

  it('verifies isolation and forensic snapshots', async () => {
    // Prepare
    instance({ 'eni-00000000000000001': ['sg-0000000000000iso0'] });
    ec2.on(DescribeSecurityGroupsCommand).resolves({
      SecurityGroups: [{ GroupId: 'sg-0000000000000iso0', IpPermissions: [], IpPermissionsEgress: [] }],
    });
    ec2.on(DescribeInstanceAttributeCommand).resolves({ DisableApiTermination: { Value: true } });
    ec2.on(DescribeSnapshotsCommand).resolves({ Snapshots: [{ VolumeId: 'vol-00000000000000001' }] });
    // Act
    const result = await action.verify(target, testContext());
    // Assess
    expect(result).toMatchObject({ holds: true });
  });

  it('restores each ENI old groups, termination protection and tags on rollback', async () => {
    // Prepare
    instance({ 'eni-00000000000000001': ['sg-0000000000000iso0'] });
    isolationGroupInVpc();
    ec2.on(ModifyNetworkInterfaceAttributeCommand).resolves({ $metadata: { requestId: 'R1' } });
    ec2.on(ModifyInstanceAttributeCommand).resolves({ $metadata: { requestId: 'R2' } });
    ec2.on(DeleteTagsCommand).resolves({ $metadata: { requestId: 'R3' } });
    const before = {
      vpcId: VPC,
      interfaces: [
        { networkInterfaceId: 'eni-00000000000000001', groups: ['sg-0000000000000000a', 'sg-0000000000000000b'] },
      ],
      volumes: ['vol-00000000000000001'],
      disableApiTermination: false,
      isolationGroup: null,
      quarantinedTag: null,
    };
    // Act
    const result = await action.rollback({ target, before }, testContext());
    // Assess
    expect(result.requestIds).toEqual(['R1', 'R2', 'R3']);
    expect(ec2).toReceiveCommandWith(ModifyNetworkInterfaceAttributeCommand, {
      NetworkInterfaceId: 'eni-00000000000000001',
      Groups: ['sg-0000000000000000a', 'sg-0000000000000000b'],
    });
  });

  it('leaves an interface whose groups were changed since the quarantine as it is on rollback, and says so', async () => {
    // Prepare: after the quarantine a responder moved the second ENI to a forensics group.
    instance({
      'eni-00000000000000001': ['sg-0000000000000iso0'],
      'eni-00000000000000002': ['sg-00000000forensics'],
    });
    isolationGroupInVpc();
    ec2.on(ModifyNetworkInterfaceAttributeCommand).resolves({ $metadata: { requestId: 'R1' } });
    ec2.on(ModifyInstanceAttributeCommand).resolves({ $metadata: { requestId: 'R2' } });
    ec2.on(DeleteTagsCommand).resolves({ $metadata: { requestId: 'R3' } });
    const before = {
      vpcId: VPC,
      interfaces: [
        { networkInterfaceId: 'eni-00000000000000001', groups: ['sg-0000000000000000a'] },
        { networkInterfaceId: 'eni-00000000000000002', groups: ['sg-0000000000000000c'] },
      ],
      volumes: ['vol-00000000000000001'],
      disableApiTermination: false,
      isolationGroup: null,
      quarantinedTag: null,
    };
    // Act
    const result = await action.rollback({ target, before }, testContext());
    // Assess: the isolated ENI gets its old groups back; the other keeps the responder's, and the note says why
    expect(ec2).toReceiveCommandTimes(ModifyNetworkInterfaceAttributeCommand, 1);
    expect(ec2).toReceiveCommandWith(ModifyNetworkInterfaceAttributeCommand, {
      NetworkInterfaceId: 'eni-00000000000000001',
      Groups: ['sg-0000000000000000a'],
    });
    expect(result.note).toContain('eni-00000000000000002');
    expect(result.note).toContain('sg-00000000forensics');
  });

  it('refuses a rollback and writes nothing when the before-state names an interface not attached to the instance', async () => {
    // Prepare: the instance has one ENI; the record also names another instance's ENI.
    instance({ 'eni-00000000000000001': ['sg-0000000000000iso0'] });
    const before = {
      vpcId: VPC,
      interfaces: [
        { networkInterfaceId: 'eni-00000000000000001', groups: ['sg-0000000000000000a'] },
        { networkInterfaceId: 'eni-000000000000000ff', groups: ['sg-0000000000000000f'] },
      ],
      volumes: [],
      disableApiTermination: false,
      isolationGroup: null,
      quarantinedTag: null,
    };
    // Act
    const attempt = action.rollback({ target, before }, testContext());
    // Assess
    await expect(attempt).rejects.toThrow(
      'ec2.quarantine-instance rollback: interface eni-000000000000000ff is not attached to i-0123456789abcdef0: nothing restored',
    );
    expect(ec2).toReceiveCommandTimes(ModifyNetworkInterfaceAttributeCommand, 0);
    expect(ec2).toReceiveCommandTimes(ModifyInstanceAttributeCommand, 0);
    expect(ec2).toReceiveCommandTimes(DeleteTagsCommand, 0);
  });

  it('selects the instance from a GuardDuty instance ARN', () => {
    // Prepare / Act
    const t = action.selectTarget(
      findingFor({
        provider: 'aws',
        id: 'arn:aws:ec2:us-east-1:111122223333:instance/i-0123456789abcdef0',
        type: 'Instance',
        name: 'i-0123456789abcdef0',
      }),
    );
    // Assess
    expect(t).toEqual(target);
  });
});
