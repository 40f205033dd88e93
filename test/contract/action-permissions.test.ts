/**
 * plan, apply and rollback against their declaration: every registered action runs through each scenario
 * below (a resource in the state its finding reports: plan and apply; then as the fix left it: rollback)
 * against recording doubles, each call it makes is turned into the permissions the cloud checks for it
 * (test/helpers/cloud-permissions.ts), and:
 *   - every one of them must be in the action's `permissions`: the deployment grants exactly those
 *     (infra/{aws,azure,gcp}/action-permissions.json, member-role.json), so an undeclared call would be
 *     denied in production, part-way through a fix or a rollback;
 *   - every declared permission must be used by some scenario: a permission no call needs is granted for
 *     nothing. The spokes run verify() under the same identity (op verify), so for Azure and GCP its calls
 *     count too; the hub's verify has a role of its own (verifyPermissions, verify-permissions.test.ts).
 */
import {
  CreateSecurityGroupCommand,
  CreateSnapshotCommand,
  DescribeInstanceAttributeCommand,
  DescribeInstancesCommand,
  DescribeSecurityGroupsCommand,
  DescribeSnapshotsCommand,
  EC2Client,
} from '@aws-sdk/client-ec2';
import { GetRolePolicyCommand, IAMClient, ListAccessKeysCommand } from '@aws-sdk/client-iam';
import {
  GetBucketAclCommand,
  GetBucketPolicyCommand,
  GetBucketTaggingCommand,
  GetPublicAccessBlockCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import type { CloudClients } from '../../shared/actions/clients.js';
import type { Action } from '../../shared/actions/define.js';
import { revokeDocument } from '../../shared/actions/iam.revoke-role-sessions.js';
import { listActions } from '../../shared/actions/registry.js';
import { awsError, FIXED_NOW, testContext } from '../helpers/action-context.js';
import { awsPermissions, type Impl, recording, type StubCall, stubPermissions } from '../helpers/cloud-permissions.js';

const s3 = mockClient(S3Client);
const iam = mockClient(IAMClient);
const ec2 = mockClient(EC2Client);
/** The commands each mocked AWS client was sent, and its reset to answering every command with `{}`. */
const AWS_MOCKS: Array<{ service: string; sent: () => object[]; reset: () => void }> = [
  { service: 's3', sent: () => s3.calls().map((c) => c.args[0]), reset: () => s3.reset().onAnyCommand().resolves({}) },
  {
    service: 'iam',
    sent: () => iam.calls().map((c) => c.args[0]),
    reset: () => iam.reset().onAnyCommand().resolves({}),
  },
  {
    service: 'ec2',
    sent: () => ec2.calls().map((c) => c.args[0]),
    reset: () => ec2.reset().onAnyCommand().resolves({}),
  },
];

/** The permissions of the AWS commands sent since the last reset. */
const awsUsed = (): string[] =>
  AWS_MOCKS.flatMap(({ service, sent }) => sent().flatMap((command) => awsPermissions(service, command)));

function resetAws(): void {
  for (const { reset } of AWS_MOCKS) reset();
}

/** The Azure/GCP clients of a scenario phase, as recording stubs (client name → implementation). */
type Stubs = Partial<
  Record<'azureStorage' | 'azureBlob' | 'azureNetwork' | 'gcpFirewalls' | 'gcpGlobalOperations' | 'gcsStorage', Impl>
>;

interface Scenario {
  name: string;
  target: unknown;
  settings?: Record<string, unknown>;
  /** The resource as its finding found it: what plan and apply read (AWS answers set on the mocks). */
  found: () => Stubs;
  /** The resource as the fix left it: what the rollback reads. */
  fixed: () => Stubs;
}

const SUB = '00000000-0000-0000-0000-000000000000';
const RG = 'rg-app';
const ARM = `/subscriptions/${SUB}/resourceGroups/${RG}/providers`;
const NET_RG = `/subscriptions/${SUB}/resourceGroups/rg-network/providers/Microsoft.Network`;
const VM_ID = `${ARM}/Microsoft.Compute/virtualMachines/vm-web-1`;
const APP_NSG = `${ARM}/Microsoft.Network/networkSecurityGroups/nsg-web`;
const ISOLATION_NSG = `${ARM}/Microsoft.Network/networkSecurityGroups/closeloop-isolation-westeurope`;
const ALL_USERS = 'http://acs.amazonaws.com/groups/global/AllUsers';

/** An Azure RestError as @azure/core-rest-pipeline throws it: class name in `name`, ARM code in `code`. */
const restError = (code: string, statusCode: number) =>
  Object.assign(new Error(code), { name: 'RestError', code, statusCode });

async function* yieldAll<T>(...items: T[]) {
  yield* items;
}

/** A VM's NIC as ARM returns it: in the VNet's subnet, with a public IP, behind a load balancer and an app gateway. */
const webNic = (nsg: string) => ({
  id: `${ARM}/Microsoft.Network/networkInterfaces/nic-web-1`,
  name: 'nic-web-1',
  location: 'westeurope',
  virtualMachine: { id: VM_ID },
  networkSecurityGroup: { id: nsg },
  ipConfigurations: [
    {
      name: 'ipconfig1',
      primary: true,
      privateIPAddress: '10.0.1.4',
      subnet: { id: `${NET_RG}/virtualNetworks/vnet-hub/subnets/web` },
      publicIPAddress: { id: `${ARM}/Microsoft.Network/publicIPAddresses/pip-web-1` },
      applicationSecurityGroups: [{ id: `${ARM}/Microsoft.Network/applicationSecurityGroups/asg-web` }],
      loadBalancerBackendAddressPools: [{ id: `${NET_RG}/loadBalancers/lb-web/backendAddressPools/web` }],
      loadBalancerInboundNatRules: [{ id: `${NET_RG}/loadBalancers/lb-web/inboundNatRules/ssh-1` }],
      applicationGatewayBackendAddressPools: [{ id: `${NET_RG}/applicationGateways/agw-web/backendAddressPools/web` }],
    },
  ],
});

const azureVm = (nsg: string, isolation: 'missing' | 'complete'): Stubs => ({
  azureNetwork: {
    networkInterfaces: {
      listAll: () => yieldAll(webNic(nsg)),
      get: async () => webNic(nsg),
      beginCreateOrUpdateAndWait: async (_rg: string, _name: string, nic: unknown) => nic,
    },
    networkSecurityGroups: {
      get: async () => {
        if (isolation === 'missing') throw restError('ResourceNotFound', 404);
        const { DENY_ALL_RULES } = await import('../../shared/actions/azure.vm.isolate.js');
        return { id: ISOLATION_NSG, securityRules: DENY_ALL_RULES };
      },
      beginCreateOrUpdateAndWait: async () => ({ id: ISOLATION_NSG }),
    },
  },
});

const azureStorage = (allow: boolean, access: 'blob' | undefined): Stubs => ({
  azureStorage: { getProperties: async () => ({ allowBlobPublicAccess: allow }), update: async () => ({}) },
  azureBlob: {
    listContainers: () => yieldAll({ name: 'reports', properties: { publicAccess: access } }),
    getContainerClient: () => ({
      getAccessPolicy: async () => ({ signedIdentifiers: [] }),
      setAccessPolicy: async () => ({ requestId: 'req-acl' }),
    }),
  },
});

const gcpFirewall = (disabled: boolean): Stubs => ({
  gcpFirewalls: {
    get: async () => [
      {
        id: '7001',
        name: 'allow-ssh',
        direction: 'INGRESS',
        disabled,
        sourceRanges: ['0.0.0.0/0'],
        allowed: [{ IPProtocol: 'tcp', ports: ['22'] }],
      },
    ],
    patch: async () => [{ latestResponse: { name: 'operation-1', status: 'RUNNING' } }],
  },
  gcpGlobalOperations: { wait: async () => [{ name: 'operation-1', status: 'DONE' }] },
});

const gcsBucket = (members: string[], prevention: string): Stubs => ({
  gcsStorage: {
    bucket: () => ({
      iam: {
        getPolicy: async () => [
          { bindings: [{ role: 'roles/storage.objectViewer', members }], etag: 'CAE=', version: 3 },
        ],
        setPolicy: async () => [{ etag: 'CAI=' }],
      },
      getMetadata: async () => [{ iamConfiguration: { publicAccessPrevention: prevention } }],
      setMetadata: async () => [{ metageneration: '2' }],
    }),
  },
});

/** The S3 bucket's reads: Block Public Access flags (null: none), ACL grants, policy (null: none). */
function s3Bucket(flags: boolean | null, publicGrant: boolean, statements: object[] | null): Stubs {
  if (flags === null) s3.on(GetPublicAccessBlockCommand).rejects(awsError('NoSuchPublicAccessBlockConfiguration', 404));
  else
    s3.on(GetPublicAccessBlockCommand).resolves({
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: flags,
        IgnorePublicAcls: flags,
        BlockPublicPolicy: flags,
        RestrictPublicBuckets: flags,
      },
    });
  s3.on(GetBucketAclCommand).resolves({
    Owner: { ID: 'owner-1' },
    Grants: [
      { Grantee: { Type: 'CanonicalUser', ID: 'owner-1' }, Permission: 'FULL_CONTROL' },
      ...(publicGrant ? [{ Grantee: { Type: 'Group' as const, URI: ALL_USERS }, Permission: 'READ' as const }] : []),
    ],
  });
  if (statements === null) s3.on(GetBucketPolicyCommand).rejects(awsError('NoSuchBucketPolicy', 404));
  else
    s3.on(GetBucketPolicyCommand).resolves({
      Policy: JSON.stringify({ Version: '2012-10-17', Statement: statements }),
    });
  s3.on(GetBucketTaggingCommand).rejects(awsError('NoSuchTagSet', 404));
  return {};
}
const PUBLIC_READ = { Effect: 'Allow', Principal: '*', Action: 's3:GetObject', Resource: 'arn:aws:s3:::logs-1/*' };
const ACCOUNT_READ = {
  Effect: 'Allow',
  Principal: { AWS: 'arn:aws:iam::111122223333:root' },
  Action: 's3:GetObject',
  Resource: 'arn:aws:s3:::logs-1/*',
};

function ec2Instance(groups: string[], isolation: object | undefined, protectedNow: boolean): Stubs {
  ec2.on(DescribeInstancesCommand).resolves({
    Reservations: [
      {
        Instances: [
          {
            InstanceId: 'i-0123456789abcdef0',
            VpcId: 'vpc-0a1b2c3d',
            NetworkInterfaces: [{ NetworkInterfaceId: 'eni-0a1b2c3d', Groups: groups.map((GroupId) => ({ GroupId })) }],
            BlockDeviceMappings: [{ Ebs: { VolumeId: 'vol-0a1b2c3d' } }],
          },
        ],
      },
    ],
  });
  ec2.on(DescribeSecurityGroupsCommand).resolves({ SecurityGroups: isolation ? [isolation] : [] });
  ec2.on(DescribeInstanceAttributeCommand).resolves({ DisableApiTermination: { Value: protectedNow } });
  ec2.on(DescribeSnapshotsCommand).resolves({ Snapshots: [] });
  ec2.on(CreateSecurityGroupCommand).resolves({ GroupId: 'sg-isolation' });
  ec2.on(CreateSnapshotCommand).resolves({ SnapshotId: 'snap-0a1b2c3d' });
  return {};
}

/** Scenarios per action id; between them they reach every step and every rollback branch that calls out. */
const SCENARIOS: Record<string, Scenario[]> = {
  's3.block-public-access': [
    {
      name: 'no flags, a public ACL grant, a public statement beside a private one',
      target: { bucket: 'logs-1', region: 'us-east-1' },
      found: () => s3Bucket(null, true, [PUBLIC_READ, ACCOUNT_READ]),
      fixed: () => s3Bucket(true, false, [ACCOUNT_READ]),
    },
    {
      name: 'all flags on, a policy of public statements only',
      target: { bucket: 'logs-1', region: 'us-east-1' },
      found: () => s3Bucket(true, false, [PUBLIC_READ]),
      fixed: () => s3Bucket(true, false, null),
    },
  ],
  'iam.deactivate-access-key': [
    {
      name: 'an active key',
      target: { userName: 'ci-deployer', accessKeyId: 'AKIA0000000000EXAMPLE' },
      found: () => {
        iam.on(ListAccessKeysCommand).resolves({
          AccessKeyMetadata: [{ AccessKeyId: 'AKIA0000000000EXAMPLE', Status: 'Active' }],
        });
        return {};
      },
      fixed: () => {
        iam.on(ListAccessKeysCommand).resolves({
          AccessKeyMetadata: [{ AccessKeyId: 'AKIA0000000000EXAMPLE', Status: 'Inactive' }],
        });
        return {};
      },
    },
  ],
  'iam.revoke-role-sessions': [
    {
      name: 'a role without a revoke policy',
      target: { roleName: 'app-runtime', issuedBefore: '2026-11-18T09:07:02.000Z' },
      found: () => {
        iam.on(GetRolePolicyCommand).rejects(awsError('NoSuchEntity', 404));
        return {};
      },
      fixed: () => {
        iam.on(GetRolePolicyCommand).resolves({ PolicyDocument: encodeURIComponent(revokeDocument(FIXED_NOW)) });
        return {};
      },
    },
  ],
  'ec2.quarantine-instance': [
    {
      name: 'no isolation group in the VPC yet',
      target: { instanceId: 'i-0123456789abcdef0', region: 'us-east-1' },
      found: () => ec2Instance(['sg-app'], undefined, false),
      fixed: () => ec2Instance(['sg-isolation'], { GroupId: 'sg-isolation' }, true),
    },
    {
      name: 'an isolation group someone added rules to',
      target: { instanceId: 'i-0123456789abcdef0', region: 'us-east-1' },
      found: () =>
        ec2Instance(
          ['sg-app'],
          {
            GroupId: 'sg-isolation',
            IpPermissionsEgress: [{ IpProtocol: '-1' }],
            IpPermissions: [{ IpProtocol: 'tcp' }],
          },
          false,
        ),
      fixed: () => ec2Instance(['sg-isolation'], { GroupId: 'sg-isolation' }, true),
    },
  ],
  'azure.storage.disallow-public-access': [
    {
      name: 'an account allowing public access, a public container',
      target: { subscriptionId: SUB, resourceGroup: RG, accountName: 'stdata01' },
      found: () => azureStorage(true, 'blob'),
      fixed: () => azureStorage(false, undefined),
    },
  ],
  'azure.vm.isolate': [
    {
      name: 'a load-balanced VM with a public IP, no isolation NSG yet',
      target: { subscriptionId: SUB, resourceGroup: RG, vmName: 'vm-web-1' },
      found: () => azureVm(APP_NSG, 'missing'),
      fixed: () => azureVm(ISOLATION_NSG, 'complete'),
    },
  ],
  'gcp.firewall.disable-rule': [
    {
      name: 'an enabled rule open to the internet',
      target: { project: 'example-project', firewall: 'allow-ssh' },
      found: () => gcpFirewall(false),
      fixed: () => gcpFirewall(true),
    },
  ],
  'gcs.remove-public-access': [
    {
      name: 'allUsers on the bucket, prevention inherited',
      target: { bucket: 'example-reports' },
      found: () => gcsBucket(['allUsers', 'user:owner@example.com'], 'inherited'),
      fixed: () => gcsBucket(['user:owner@example.com'], 'enforced'),
    },
  ],
};

function clientsOf(stubs: Stubs, calls: StubCall[]): Partial<CloudClients> {
  return Object.fromEntries(
    Object.entries(stubs).map(([name, impl]) => [name, () => recording(name, impl as Impl, calls)]),
  ) as Partial<CloudClients>;
}

/**
 * Runs plan → apply on the resource as found, then rollback (and, for a spoke, verify) on it as fixed;
 * returns the permissions of every call made, sorted and unique.
 */
async function permissionsUsed(action: Action, s: Scenario): Promise<string[]> {
  const calls: StubCall[] = [];
  const used: string[] = [];
  const target = action.target.parse(s.target);
  resetAws();
  const found = testContext({ clients: clientsOf(s.found(), calls), ...(s.settings ? { settings: s.settings } : {}) });
  const plan = await action.plan(target, found);
  expect(plan.noop, `${action.id} (${s.name}): the scenario must need a fix`).toBe(false);
  await action.apply(plan, found);
  used.push(...awsUsed());
  resetAws();
  const fixed = testContext({ clients: clientsOf(s.fixed(), calls) });
  await action.rollback({ target, before: plan.before }, fixed);
  if (action.provider !== 'aws') await action.verify(target, fixed);
  used.push(...awsUsed(), ...calls.flatMap(stubPermissions));
  return [...new Set(used)].sort();
}

describe('plan, apply and rollback against the declared permissions', () => {
  beforeEach(() => resetAws());

  it('has scenarios here for every registered action', () => {
    expect(
      listActions()
        .map((a) => a.id)
        .filter((id) => !SCENARIOS[id]?.length),
    ).toEqual([]);
  });

  const cases = listActions().flatMap((a) => (SCENARIOS[a.id] ?? []).map((s) => [a.id, s.name, a, s] as const));

  it.each(cases)('declares every call of %s (%s)', async (id, _name, a, s) => {
    // Act
    const used = await permissionsUsed(a, s);
    // Assess: what the deployment would deny.
    expect(
      used.filter((p) => !a.permissions.includes(p)),
      `${id} calls what it does not declare`,
    ).toEqual([]);
  });

  it.each(listActions().map((a) => [a.id, a] as const))('uses every permission %s declares', async (id, a) => {
    // Act
    const used = new Set<string>();
    for (const s of SCENARIOS[id] ?? []) for (const p of await permissionsUsed(a, s)) used.add(p);
    // Assess: what the deployment would grant for nothing.
    expect(
      a.permissions.filter((p) => !used.has(p)),
      `${id} declares what none of its calls needs`,
    ).toEqual([]);
  });
});
