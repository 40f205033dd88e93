/**
 * verify() against its declaration: every registered action's verify() runs against recording doubles
 * (aws-sdk-client-mock for the AWS SDK clients, recording stubs for the Azure and GCP clients), each call
 * it makes is turned into the permission the cloud checks for it, and that set must equal the action's
 * `verifyPermissions`, which must all be reads. The verify function's role is generated from those
 * declarations alone (infra/aws/verify-permissions.json), so a verify() that called something undeclared
 * would be denied in deployment: this test says so first.
 */
import { EC2Client } from '@aws-sdk/client-ec2';
import { IAMClient } from '@aws-sdk/client-iam';
import { S3Client } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import type { CloudClients } from '../../shared/actions/clients.js';
import type { Action } from '../../shared/actions/define.js';
import { listActions } from '../../shared/actions/registry.js';
import { testContext } from '../helpers/action-context.js';
import { awsPermissions, type Impl, recording, type StubCall, stubPermissions } from '../helpers/cloud-permissions.js';

const s3 = mockClient(S3Client);
const iam = mockClient(IAMClient);
const ec2 = mockClient(EC2Client);
/** The commands each mocked AWS client was sent (only their classes are read). */
const AWS_MOCKS: Array<{ service: string; reset: () => void; sent: () => object[] }> = [
  { service: 's3', reset: () => s3.reset(), sent: () => s3.calls().map((c) => c.args[0]) },
  { service: 'iam', reset: () => iam.reset(), sent: () => iam.calls().map((c) => c.args[0]) },
  { service: 'ec2', reset: () => ec2.reset(), sent: () => ec2.calls().map((c) => c.args[0]) },
];

const SUB = '00000000-0000-0000-0000-000000000000';
const RG = 'rg-data';

/** The Azure and GCP clients as recording stubs answering a resource in its fixed state. */
function stubClients(calls: StubCall[]): Partial<CloudClients> {
  const arm = `/subscriptions/${SUB}/resourceGroups/${RG}/providers`;
  const azureStorage: Impl = { getProperties: async () => ({ allowBlobPublicAccess: false }) };
  const azureBlob: Impl = {
    listContainers: async function* listContainers() {
      yield { name: 'reports', properties: { publicAccess: undefined } };
    },
  };
  const azureNetwork: Impl = {
    networkInterfaces: {
      listAll: async function* listAll() {
        yield {
          id: `${arm}/Microsoft.Network/networkInterfaces/nic-1`,
          name: 'nic-1',
          location: 'westeurope',
          virtualMachine: { id: `${arm}/Microsoft.Compute/virtualMachines/vm-1` },
          networkSecurityGroup: { id: `${arm}/Microsoft.Network/networkSecurityGroups/closeloop-isolation-westeurope` },
        };
      },
    },
    networkSecurityGroups: {
      get: async () => ({ id: `${arm}/Microsoft.Network/networkSecurityGroups/closeloop-isolation-westeurope` }),
    },
  };
  const gcpFirewalls: Impl = {
    get: async () => [{ name: 'allow-ssh', direction: 'INGRESS', disabled: true, sourceRanges: ['0.0.0.0/0'] }],
  };
  const gcsStorage: Impl = {
    bucket: () => ({
      iam: { getPolicy: async () => [{ bindings: [], etag: 'CAE=', version: 3 }] },
      getMetadata: async () => [{ iamConfiguration: { publicAccessPrevention: 'enforced' } }],
    }),
  };
  const client =
    <T>(name: string, impl: Impl) =>
    () =>
      recording(name, impl, calls) as T;
  return {
    azureStorage: client('azureStorage', azureStorage),
    azureBlob: client('azureBlob', azureBlob),
    azureNetwork: client('azureNetwork', azureNetwork),
    gcpFirewalls: client('gcpFirewalls', gcpFirewalls),
    gcsStorage: client('gcsStorage', gcsStorage),
  };
}

/**
 * A target per registered action (synthetic ids); an action without one fails the test below, so a new
 * action cannot skip this contract.
 */
const TARGETS: Record<string, unknown> = {
  's3.block-public-access': { bucket: 'logs-111122223333', region: 'us-east-1' },
  'iam.deactivate-access-key': { userName: 'ci-deployer', accessKeyId: 'AKIA0000000000EXAMPLE' },
  'iam.revoke-role-sessions': { roleName: 'app-runtime', issuedBefore: '2026-11-18T09:07:02.000Z' },
  'ec2.quarantine-instance': { instanceId: 'i-0123456789abcdef0', region: 'us-east-1' },
  'azure.storage.disallow-public-access': { subscriptionId: SUB, resourceGroup: RG, accountName: 'stdata01' },
  'azure.vm.isolate': { subscriptionId: SUB, resourceGroup: RG, vmName: 'vm-1' },
  'gcp.firewall.disable-rule': { project: 'example-project', firewall: 'allow-ssh' },
  'gcs.remove-public-access': { bucket: 'example-reports' },
};

/** Runs `action.verify` on `target` and returns the permissions its calls need (sorted, unique). */
async function permissionsVerifyUses(action: Action, target: unknown): Promise<string[]> {
  const calls: StubCall[] = [];
  await action.verify(action.target.parse(target), testContext({ clients: stubClients(calls) }));
  const aws = AWS_MOCKS.flatMap(({ service, sent }) => sent().flatMap((command) => awsPermissions(service, command)));
  const others = calls.flatMap(stubPermissions);
  return [...new Set([...aws, ...others])].sort();
}

/** What a read-only permission looks like, per provider. */
const READ_ONLY = {
  aws: /^[a-z0-9-]+:(Get|List|Describe)[A-Za-z0-9]+$/,
  azure: /^Microsoft\.[A-Za-z]+(\/[A-Za-z]+)+\/read$/,
  gcp: /^[a-z]+\.[a-zA-Z]+\.(get|list)[a-zA-Z]*$/,
} as const;

describe('verify() against its declared verifyPermissions', () => {
  beforeEach(() => {
    for (const { reset } of AWS_MOCKS) reset();
    // Every AWS call answers: an empty answer is a valid state for the reads (none configured, no key …).
    s3.onAnyCommand().resolves({});
    iam.onAnyCommand().resolves({});
    ec2.onAnyCommand().resolves({
      Reservations: [
        {
          Instances: [
            {
              InstanceId: 'i-0123456789abcdef0',
              VpcId: 'vpc-0a1b2c3d',
              NetworkInterfaces: [{ NetworkInterfaceId: 'eni-0a1b2c3d', Groups: [{ GroupId: 'sg-0a1b2c3d' }] }],
              BlockDeviceMappings: [{ Ebs: { VolumeId: 'vol-0a1b2c3d' } }],
            },
          ],
        },
      ],
    });
  });

  it('has a target here for every registered action', () => {
    expect(
      listActions()
        .map((a) => a.id)
        .filter((id) => !(id in TARGETS)),
    ).toEqual([]);
  });

  it.each(listActions().map((a) => [a.id, a] as const))('declares only reads for the verify of %s', (_id, a) => {
    // Assess
    expect(a.verifyPermissions.length, a.id).toBeGreaterThan(0);
    expect(new Set(a.verifyPermissions).size, `${a.id} repeats a verify permission`).toBe(a.verifyPermissions.length);
    for (const p of a.verifyPermissions) expect(p, a.id).toMatch(READ_ONLY[a.provider]);
  });

  it.each(listActions().map((a) => [a.id, a] as const))(
    'declares exactly the calls verify() of %s makes',
    async (id, a) => {
      // Act
      const used = await permissionsVerifyUses(a, TARGETS[id]);
      // Assess
      expect(used, id).toEqual([...a.verifyPermissions].sort());
    },
  );

  it('reports a write made by a verify() that declares only reads (the check itself)', async () => {
    // Prepare: an S3 verify that, wrongly, also writes.
    const base = listActions().find((a) => a.id === 's3.block-public-access');
    if (!base) throw new Error('s3.block-public-access is not registered');
    const { PutBucketPolicyCommand } = await import('@aws-sdk/client-s3');
    const writing: Action = {
      ...base,
      async verify(target, ctx) {
        const result = await base.verify(target, ctx);
        await (await ctx.clients.s3('us-east-1')).send(new PutBucketPolicyCommand({ Bucket: 'b', Policy: '{}' }));
        return result;
      },
    };
    // Act
    const used = await permissionsVerifyUses(writing, TARGETS['s3.block-public-access']);
    // Assess
    expect(used).toContain('s3:PutBucketPolicy');
    expect(used).not.toEqual([...base.verifyPermissions].sort());
  });
});
