/**
 * Quarantines an EC2 instance for forensics: an isolation security group with no rules in the
 * instance's VPC (created once per VPC and found again by tag; its default allow-all egress rule
 * revoked) replaces the groups of every network interface; EBS snapshots of the attached volumes are
 * taken; termination protection is turned on; tags say when and why. The old groups per interface
 * are the before-state. Rollback restores groups and termination protection and removes the tags;
 * snapshots stay (they are evidence).
 *
 * CreateSnapshot takes no idempotency token: each snapshot is tagged at creation with the apply key (one
 * per remediation, kept by its retries), and a snapshot of the volume with that tag is reused rather than
 * a second one made when an apply is retried after a create whose answer was lost.
 *
 * @see https://docs.aws.amazon.com/prescriptive-guidance/latest/ec2-isolation (isolation security group)
 * @see https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/security-group-rules.html (default egress rule)
 */
import { randomUUID } from 'node:crypto';
import type { EC2Client } from '@aws-sdk/client-ec2';
import * as z from 'zod';
import { AdapterError } from '../core/errors.js';
import { awsSdk } from './clients.js';
import { type ActionContext, defineAction, type Plan } from './define.js';
import { applyPlanned, awsRequestId, call, changePlan, noopPlan, ref, resolveRefs, step } from './plan.js';
import { sdkErrorCode } from './retry.js';

const ID = 'ec2.quarantine-instance';
const ISOLATION_TAG = 'closeloop:isolation';
const QUARANTINE_TAG = 'closeloop:quarantined';
const SNAPSHOT_TAG = 'closeloop:forensics-instance';
/** On each forensic snapshot: the apply key of the remediation that made it (see ActionContext.applyKey). */
const APPLY_KEY_TAG = 'closeloop:apply-key';

const TargetSchema = z.object({ instanceId: z.string().regex(/^i-[0-9a-f]{8,17}$/), region: z.string().min(1) });
type Target = z.infer<typeof TargetSchema>;

/** An IpPermission as EC2 returns and accepts it (kept loose: many optional members). */
const IpPermissionSchema = z.looseObject({ IpProtocol: z.string() });

const BeforeSchema = z.object({
  vpcId: z.string(),
  interfaces: z.array(z.object({ networkInterfaceId: z.string(), groups: z.array(z.string()) })),
  volumes: z.array(z.string()),
  disableApiTermination: z.boolean(),
  /** The VPC's isolation group when it already existed, with any rules it has (to be revoked). */
  isolationGroup: z
    .object({ id: z.string(), egress: z.array(IpPermissionSchema), ingress: z.array(IpPermissionSchema) })
    .nullable(),
  quarantinedTag: z.string().nullable(),
});
type Before = z.infer<typeof BeforeSchema>;

async function readState(ec2: EC2Client, instanceId: string, ctx: ActionContext): Promise<Before> {
  const sdk = await awsSdk.ec2();
  const out = await call(ctx, `ec2:DescribeInstances ${instanceId}`, () =>
    ec2.send(new sdk.DescribeInstancesCommand({ InstanceIds: [instanceId] })),
  );
  const instance = out.Reservations?.[0]?.Instances?.[0];
  if (!instance?.VpcId) throw new AdapterError('gone', `instance ${instanceId} not found (or not in a VPC)`);
  const vpcId = instance.VpcId;
  const groups = await call(ctx, `ec2:DescribeSecurityGroups ${vpcId}`, () =>
    ec2.send(
      new sdk.DescribeSecurityGroupsCommand({
        Filters: [
          { Name: 'vpc-id', Values: [vpcId] },
          { Name: `tag:${ISOLATION_TAG}`, Values: ['true'] },
        ],
      }),
    ),
  );
  const iso = groups.SecurityGroups?.[0];
  const attr = await call(ctx, `ec2:DescribeInstanceAttribute ${instanceId}`, () =>
    ec2.send(new sdk.DescribeInstanceAttributeCommand({ InstanceId: instanceId, Attribute: 'disableApiTermination' })),
  );
  return BeforeSchema.parse({
    vpcId,
    interfaces: (instance.NetworkInterfaces ?? []).map((n) => ({
      networkInterfaceId: n.NetworkInterfaceId,
      groups: (n.Groups ?? []).map((g) => g.GroupId),
    })),
    volumes: (instance.BlockDeviceMappings ?? []).flatMap((b) => (b.Ebs?.VolumeId ? [b.Ebs.VolumeId] : [])),
    disableApiTermination: attr.DisableApiTermination?.Value === true,
    isolationGroup: iso?.GroupId
      ? { id: iso.GroupId, egress: iso.IpPermissionsEgress ?? [], ingress: iso.IpPermissions ?? [] }
      : null,
    quarantinedTag: instance.Tags?.find((t) => t.Key === QUARANTINE_TAG)?.Value ?? null,
  });
}

const isIsolated = (b: Before): boolean =>
  b.isolationGroup !== null &&
  b.isolationGroup.egress.length === 0 &&
  b.isolationGroup.ingress.length === 0 &&
  b.interfaces.length > 0 &&
  b.interfaces.every((i) => i.groups.length === 1 && i.groups[0] === b.isolationGroup?.id) &&
  b.disableApiTermination;

async function plan(target: Target, ctx: ActionContext): Promise<Plan<Target, Before>> {
  const { instanceId } = target;
  const before = await readState(await ctx.clients.ec2(target.region), instanceId, ctx);
  if (isIsolated(before)) return noopPlan(target, before, `${instanceId} is already quarantined`);
  const now = ctx.clock.now().toISOString();
  const steps = [];
  const iso = before.isolationGroup;
  const groupId = iso?.id ?? ref('isolationGroupId');
  if (!iso) {
    steps.push(
      step(
        `create the isolation security group (no rules) in ${before.vpcId}`,
        'ec2:CreateSecurityGroup',
        'ec2:CreateSecurityGroup',
        {
          GroupName: `closeloop-isolation-${before.vpcId}`,
          Description: 'closeloop quarantine: no inbound, no outbound',
          VpcId: before.vpcId,
          TagSpecifications: [{ ResourceType: 'security-group', Tags: [{ Key: ISOLATION_TAG, Value: 'true' }] }],
        },
      ),
      // A new group allows all outbound traffic until this rule is revoked.
      step(
        'revoke the default allow-all egress rule of the isolation group',
        'ec2:RevokeSecurityGroupEgress',
        'ec2:RevokeSecurityGroupEgress',
        {
          GroupId: groupId,
          IpPermissions: [{ IpProtocol: '-1', IpRanges: [{ CidrIp: '0.0.0.0/0' }] }],
        },
      ),
    );
  } else {
    if (iso.egress.length > 0) {
      steps.push(
        step(
          `revoke the ${iso.egress.length} egress rule(s) of isolation group ${iso.id}`,
          'ec2:RevokeSecurityGroupEgress',
          'ec2:RevokeSecurityGroupEgress',
          {
            GroupId: iso.id,
            IpPermissions: iso.egress,
          },
        ),
      );
    }
    if (iso.ingress.length > 0) {
      steps.push(
        step(
          `revoke the ${iso.ingress.length} ingress rule(s) of isolation group ${iso.id}`,
          'ec2:RevokeSecurityGroupIngress',
          'ec2:RevokeSecurityGroupIngress',
          {
            GroupId: iso.id,
            IpPermissions: iso.ingress,
          },
        ),
      );
    }
  }
  for (const i of before.interfaces) {
    if (i.groups.length === 1 && i.groups[0] === iso?.id) continue;
    steps.push(
      step(
        `replace the security groups of ${i.networkInterfaceId} (${i.groups.join(', ') || 'none'}) with the isolation group`,
        'ec2:ModifyNetworkInterfaceAttribute',
        'ec2:ModifyNetworkInterfaceAttribute',
        { NetworkInterfaceId: i.networkInterfaceId, Groups: [groupId] },
      ),
    );
  }
  for (const volumeId of before.volumes) {
    steps.push(
      step(`snapshot volume ${volumeId} for forensics`, 'ec2:CreateSnapshot', 'ec2:CreateSnapshot', {
        VolumeId: volumeId,
        Description: `closeloop forensics snapshot of ${instanceId} at ${now}`,
        TagSpecifications: [
          {
            ResourceType: 'snapshot',
            Tags: [
              { Key: SNAPSHOT_TAG, Value: instanceId },
              // Known once the apply runs: what a retry of this apply looks for before snapshotting again.
              { Key: APPLY_KEY_TAG, Value: ref('applyKey') },
            ],
          },
        ],
      }),
    );
  }
  if (!before.disableApiTermination) {
    steps.push(
      step(
        `turn on termination protection of ${instanceId}`,
        'ec2:ModifyInstanceAttribute',
        'ec2:ModifyInstanceAttribute',
        {
          InstanceId: instanceId,
          DisableApiTermination: { Value: true },
        },
      ),
    );
  }
  steps.push(
    step(`tag ${instanceId} as quarantined by closeloop at ${now}`, 'ec2:CreateTags', 'ec2:CreateTags', {
      Resources: [instanceId],
      Tags: [
        { Key: QUARANTINE_TAG, Value: now },
        { Key: 'closeloop:reason', Value: 'security finding: isolated for forensics' },
      ],
    }),
  );
  return changePlan(
    target,
    before,
    steps,
    `quarantine ${instanceId}: ${steps.length} step(s), old groups kept for rollback`,
  );
}

const Any = z.record(z.string(), z.unknown());

/** The isolation group (tagged) named `GroupName` in `VpcId`, as CreateSecurityGroup answers it; undefined when none. */
async function isolationGroup(ec2: EC2Client, request: { GroupName: string; VpcId?: string | undefined }) {
  const sdk = await awsSdk.ec2();
  const out = await ec2.send(
    new sdk.DescribeSecurityGroupsCommand({
      Filters: [
        { Name: 'group-name', Values: [request.GroupName] },
        ...(request.VpcId ? [{ Name: 'vpc-id', Values: [request.VpcId] }] : []),
        { Name: `tag:${ISOLATION_TAG}`, Values: ['true'] },
      ],
    }),
  );
  const GroupId = out.SecurityGroups?.find((g) => g.GroupId)?.GroupId;
  return GroupId ? { GroupId, $metadata: out.$metadata } : undefined;
}

/**
 * The snapshot of `volumeId` this remediation already made (tagged with its apply key), if any; one that
 * failed (`error`) does not count. Snapshots of other remediations of the instance are not this apply's.
 * EC2 lists new resources with a delay (eventual consistency): a re-send right after a lost answer could
 * still miss one; a retry of the apply (the next delivery, a person) comes long after.
 */
async function snapshotMadeBy(ec2: EC2Client, volumeId: string, applyKey: string) {
  const sdk = await awsSdk.ec2();
  const out = await ec2.send(
    new sdk.DescribeSnapshotsCommand({
      OwnerIds: ['self'],
      Filters: [
        { Name: 'volume-id', Values: [volumeId] },
        { Name: `tag:${APPLY_KEY_TAG}`, Values: [applyKey] },
        { Name: 'status', Values: ['pending', 'completed'] },
      ],
    }),
  );
  const made = out.Snapshots?.find((s) => s.SnapshotId)?.SnapshotId;
  return made ? { made, requestId: awsRequestId(out, `ec2:DescribeSnapshots ${volumeId}`) } : undefined;
}

export default defineAction<Target, Before>({
  id: ID,
  title: 'Quarantine an EC2 instance (isolation security group, EBS snapshots, termination protection)',
  provider: 'aws',
  handles: { findingTypes: ['CryptoCurrency:EC2/*', 'Backdoor:EC2/*', 'Trojan:EC2/*'] },
  permissions: [
    'ec2:DescribeInstances',
    'ec2:DescribeInstanceAttribute',
    'ec2:DescribeSecurityGroups',
    'ec2:DescribeSnapshots',
    'ec2:CreateSecurityGroup',
    'ec2:RevokeSecurityGroupEgress',
    'ec2:RevokeSecurityGroupIngress',
    'ec2:ModifyNetworkInterfaceAttribute',
    'ec2:CreateSnapshot',
    'ec2:ModifyInstanceAttribute',
    'ec2:CreateTags',
    'ec2:DeleteTags',
  ],
  // verify(): readState's three Describe calls and DescribeSnapshots.
  verifyPermissions: [
    'ec2:DescribeInstances',
    'ec2:DescribeSecurityGroups',
    'ec2:DescribeInstanceAttribute',
    'ec2:DescribeSnapshots',
  ],
  risk: 'high',
  // Cuts the instance off the network: whatever it serves goes down.
  productionSafe: false,
  outline: [
    {
      say: "create an isolation security group with no rules in the instance's VPC",
      api: 'ec2:CreateSecurityGroup',
      permission: 'ec2:CreateSecurityGroup',
    },
    {
      say: "revoke the isolation group's default egress rule",
      api: 'ec2:RevokeSecurityGroupEgress',
      permission: 'ec2:RevokeSecurityGroupEgress',
    },
    {
      say: "swap every network interface's security groups for the isolation group (old groups kept for rollback)",
      api: 'ec2:ModifyNetworkInterfaceAttribute',
      permission: 'ec2:ModifyNetworkInterfaceAttribute',
    },
    {
      say: 'snapshot each attached EBS volume for forensics',
      api: 'ec2:CreateSnapshot',
      permission: 'ec2:CreateSnapshot',
    },
    {
      say: 'turn termination protection on',
      api: 'ec2:ModifyInstanceAttribute',
      permission: 'ec2:ModifyInstanceAttribute',
    },
    {
      say: 'tag the instance with when and why it was quarantined',
      api: 'ec2:CreateTags',
      permission: 'ec2:CreateTags',
    },
  ],
  target: TargetSchema,
  beforeSchema: BeforeSchema,
  selectTarget(f) {
    if (f.resource.provider !== 'aws') return undefined;
    const d = f.resource.details.instanceId;
    const instanceId = typeof d === 'string' ? d : /instance\/(i-[0-9a-f]+)$/.exec(f.resource.id)?.[1];
    const region = f.resource.region ?? /^arn:aws[\w-]*:ec2:([a-z0-9-]+):/.exec(f.resource.id)?.[1];
    const parsed = TargetSchema.safeParse({ instanceId, region });
    return parsed.success ? parsed.data : undefined;
  },
  plan,
  apply: (p, ctx) => {
    // Outside the remediation stage nothing names the remediation: this apply names itself, which still
    // keeps its own re-sent CreateSnapshot from making a second snapshot.
    const applyKey = ctx.applyKey ?? `apply-${randomUUID()}`;
    return applyPlanned(p, ctx, plan, async (s, vars) => {
      const sdk = await awsSdk.ec2();
      const ec2 = await ctx.clients.ec2(p.target.region);
      vars.set('applyKey', applyKey);
      const input = resolveRefs(Any.parse(s.call.input), vars);
      const what = `${s.call.api} ${p.target.instanceId}`;
      // The SDK validates member shapes on its side; the planned input is the exact request.
      switch (s.call.api) {
        case 'ec2:CreateSecurityGroup': {
          const request = z
            .looseObject({ GroupName: z.string(), Description: z.string(), VpcId: z.string().optional() })
            .parse(input);
          // A create whose answer was lost (timeout, reset) may have made the group: its re-send is then refused
          // as a duplicate (the name is unique per VPC) and the quarantine failed, leaving the group it had made.
          // A re-send refused so takes the tagged group of that name in the VPC: the one the lost create made.
          let sent = false;
          const out = await call(ctx, what, async () => {
            const again = sent;
            sent = true;
            try {
              return await ec2.send(new sdk.CreateSecurityGroupCommand(request));
            } catch (e) {
              const made =
                again && sdkErrorCode(e) === 'InvalidGroup.Duplicate' && (await isolationGroup(ec2, request));
              if (made) return made;
              throw e;
            }
          });
          if (!out.GroupId) throw new AdapterError('invalid', 'CreateSecurityGroup returned no GroupId');
          vars.set('isolationGroupId', out.GroupId);
          return awsRequestId(out, what);
        }
        case 'ec2:RevokeSecurityGroupEgress':
          return awsRequestId(
            await call(ctx, what, () =>
              ec2.send(new sdk.RevokeSecurityGroupEgressCommand(z.looseObject({ GroupId: z.string() }).parse(input))),
            ),
            what,
          );
        case 'ec2:RevokeSecurityGroupIngress':
          return awsRequestId(
            await call(ctx, what, () =>
              ec2.send(new sdk.RevokeSecurityGroupIngressCommand(z.looseObject({ GroupId: z.string() }).parse(input))),
            ),
            what,
          );
        case 'ec2:ModifyNetworkInterfaceAttribute':
          return awsRequestId(
            await call(ctx, what, () =>
              ec2.send(
                new sdk.ModifyNetworkInterfaceAttributeCommand(
                  z.looseObject({ NetworkInterfaceId: z.string() }).parse(input),
                ),
              ),
            ),
            what,
          );
        case 'ec2:CreateSnapshot': {
          const request = z.looseObject({ VolumeId: z.string() }).parse(input);
          // A create whose answer was lost (timeout) may have made the snapshot: what an earlier attempt of
          // this remediation, or an earlier send of this call, made is looked for before every send.
          const out = await call(
            ctx,
            what,
            async () =>
              (await snapshotMadeBy(ec2, request.VolumeId, applyKey)) ??
              ec2.send(new sdk.CreateSnapshotCommand(request)),
          );
          if ('made' in out) return `${out.requestId} (${out.made}, already made by this remediation)`;
          return out.SnapshotId ? `${awsRequestId(out, what)} (${out.SnapshotId})` : awsRequestId(out, what);
        }
        case 'ec2:ModifyInstanceAttribute':
          return awsRequestId(
            await call(ctx, what, () =>
              ec2.send(new sdk.ModifyInstanceAttributeCommand(z.looseObject({ InstanceId: z.string() }).parse(input))),
            ),
            what,
          );
        case 'ec2:CreateTags':
          return awsRequestId(
            await call(ctx, what, () =>
              ec2.send(
                new sdk.CreateTagsCommand(
                  z
                    .looseObject({
                      Resources: z.array(z.string()),
                      Tags: z.array(z.object({ Key: z.string(), Value: z.string() })),
                    })
                    .parse(input),
                ),
              ),
            ),
            what,
          );
        default:
          throw new AdapterError('invalid', `${ID} has no step ${s.call.api}`);
      }
    });
  },
  async verify({ instanceId, region }, ctx) {
    const sdk = await awsSdk.ec2();
    const ec2 = await ctx.clients.ec2(region);
    const state = await readState(ec2, instanceId, ctx);
    const snaps = await call(ctx, `ec2:DescribeSnapshots ${instanceId}`, () =>
      ec2.send(
        new sdk.DescribeSnapshotsCommand({
          OwnerIds: ['self'],
          Filters: [{ Name: `tag:${SNAPSHOT_TAG}`, Values: [instanceId] }],
        }),
      ),
    );
    const snapped = new Set((snaps.Snapshots ?? []).map((s) => s.VolumeId));
    const missing = state.volumes.filter((v) => !snapped.has(v));
    const isolated = isIsolated(state);
    const observed = {
      interfaces: state.interfaces,
      isolationGroup: state.isolationGroup,
      snapshotsMissingFor: missing,
    };
    const problems = [
      ...(isolated
        ? []
        : ['the instance is not attached to the (empty) isolation group only, or termination protection is off']),
      ...(missing.length ? [`no forensics snapshot of ${missing.join(', ')}`] : []),
    ];
    // What the re-read can prove is the configuration: connections the instance had before its groups changed
    // are tracked and stay open until they go idle (EC2 security group connection tracking); say so.
    const held = `${instanceId} is quarantined (only the isolation group on every interface; connections open before the change last until idle)`;
    return { holds: problems.length === 0, observed, reason: problems.join('; ') || held };
  },
  async rollback({ target, before }, ctx) {
    const sdk = await awsSdk.ec2();
    const ec2 = await ctx.clients.ec2(target.region);
    // Only the target instance's interfaces get their groups back: a before-state naming another ENI
    // (forged or misfiled) would rewrite that ENI's groups, so the instance is re-read and the rollback
    // refused before any write.
    const live = await readState(ec2, target.instanceId, ctx);
    const attached = new Map(live.interfaces.map((i) => [i.networkInterfaceId, i.groups]));
    const foreign = before.interfaces.filter((i) => !attached.has(i.networkInterfaceId));
    if (foreign.length > 0) {
      const ids = foreign.map((i) => i.networkInterfaceId).join(', ');
      throw new AdapterError(
        'invalid',
        `${ID} rollback: interface ${ids} is not attached to ${target.instanceId}: nothing restored`,
      );
    }
    const ids: string[] = [];
    // Only what the quarantine set is put back: an interface still in the isolation group alone. One whose
    // groups were changed since (a responder moved it to a forensics group) keeps them and is named in the
    // note: writing the old groups over them undid that change unsaid. One already in its old groups (never
    // swapped by a partial apply, or restored by an earlier try of this rollback) needs nothing.
    const isolation = live.isolationGroup?.id ?? before.isolationGroup?.id;
    const changed: string[] = [];
    for (const i of before.interfaces) {
      const now = attached.get(i.networkInterfaceId) ?? [];
      if ([...now].sort().join(' ') === [...i.groups].sort().join(' ')) continue;
      if (now.length !== 1 || now[0] !== isolation) {
        changed.push(`${i.networkInterfaceId} (now ${now.join(', ') || 'no group'})`);
        continue;
      }
      const what = `ec2:ModifyNetworkInterfaceAttribute ${i.networkInterfaceId}`;
      const input = { NetworkInterfaceId: i.networkInterfaceId, Groups: i.groups };
      ids.push(
        awsRequestId(
          await call(ctx, what, () => ec2.send(new sdk.ModifyNetworkInterfaceAttributeCommand(input))),
          what,
        ),
      );
    }
    if (!before.disableApiTermination) {
      const what = `ec2:ModifyInstanceAttribute ${target.instanceId}`;
      const input = { InstanceId: target.instanceId, DisableApiTermination: { Value: false } };
      ids.push(
        awsRequestId(await call(ctx, what, () => ec2.send(new sdk.ModifyInstanceAttributeCommand(input))), what),
      );
    }
    if (before.quarantinedTag === null) {
      const what = `ec2:DeleteTags ${target.instanceId}`;
      const input = { Resources: [target.instanceId], Tags: [{ Key: QUARANTINE_TAG }, { Key: 'closeloop:reason' }] };
      ids.push(awsRequestId(await call(ctx, what, () => ec2.send(new sdk.DeleteTagsCommand(input))), what));
    }
    if (changed.length === 0) return { requestIds: ids };
    const note = `interface(s) ${changed.join('; ')} changed since the quarantine: left as they are, old groups not restored`;
    ctx.log.warn(`${ID} rollback: ${note}`, { instanceId: target.instanceId });
    return { requestIds: ids, note };
  },
});
