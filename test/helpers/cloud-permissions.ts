/**
 * The permission each cloud checks for the calls the actions make, for the contract tests that compare what
 * an action calls with what it declares (test/contract/verify-permissions.test.ts for verify(),
 * test/contract/action-permissions.test.ts for plan, apply and rollback). The AWS SDK clients are recorded by
 * aws-sdk-client-mock, the Azure and GCP clients by {@link recording} stubs; a call missing here is reported as
 * an unknown permission, so it cannot go undeclared.
 */

/**
 * An SDK command's IAM action: `<service>:<operation>`, except where the service authorizes an operation
 * under another name.
 * @see https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetPublicAccessBlock.html ("you must have the
 *   s3:GetBucketPublicAccessBlock permission"; Put/DeletePublicAccessBlock: s3:PutBucketPublicAccessBlock)
 */
const AWS_RENAMED: Record<string, string> = {
  's3:GetPublicAccessBlock': 's3:GetBucketPublicAccessBlock',
  's3:PutPublicAccessBlock': 's3:PutBucketPublicAccessBlock',
  's3:DeletePublicAccessBlock': 's3:PutBucketPublicAccessBlock',
};

/**
 * The IAM actions one AWS SDK command needs. A create call that tags what it makes (`TagSpecifications`) is
 * authorized for `ec2:CreateTags` on the new resource as well.
 * @see https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/supported-iam-actions-tagging.html
 */
export function awsPermissions(service: string, command: object): string[] {
  const call = `${service}:${command.constructor.name.replace(/Command$/, '')}`;
  const input: unknown = 'input' in command ? command.input : undefined;
  const tagsOnCreate =
    service === 'ec2' &&
    input !== null &&
    typeof input === 'object' &&
    'TagSpecifications' in input &&
    Array.isArray(input.TagSpecifications) &&
    input.TagSpecifications.length > 0;
  return [AWS_RENAMED[call] ?? call, ...(tagsOnCreate ? ['ec2:CreateTags'] : [])];
}

/**
 * The Azure and GCP client methods the actions call, with the permission each needs.
 * @see https://learn.microsoft.com/azure/role-based-access-control/permissions/storage
 * @see https://learn.microsoft.com/rest/api/storageservices/authorize-with-azure-active-directory#permissions-for-blob-service-operations
 * @see https://learn.microsoft.com/azure/role-based-access-control/permissions/networking
 * @see https://cloud.google.com/storage/docs/access-control/iam-json
 * @see https://cloud.google.com/compute/docs/reference/rest/v1/firewalls
 */
const STUB_PERMISSIONS: Record<string, readonly string[]> = {
  'azureStorage.getProperties': ['Microsoft.Storage/storageAccounts/read'],
  'azureStorage.update': ['Microsoft.Storage/storageAccounts/write'],
  'azureBlob.listContainers': ['Microsoft.Storage/storageAccounts/blobServices/containers/read'],
  'azureBlob.getContainerClient.getAccessPolicy': [
    'Microsoft.Storage/storageAccounts/blobServices/containers/getAcl/action',
  ],
  'azureBlob.getContainerClient.setAccessPolicy': [
    'Microsoft.Storage/storageAccounts/blobServices/containers/setAcl/action',
  ],
  'azureNetwork.networkInterfaces.listAll': ['Microsoft.Network/networkInterfaces/read'],
  'azureNetwork.networkInterfaces.get': ['Microsoft.Network/networkInterfaces/read'],
  // The linked resources the NIC's body names are checked too: see azureLinkedPermissions.
  'azureNetwork.networkInterfaces.beginCreateOrUpdateAndWait': ['Microsoft.Network/networkInterfaces/write'],
  'azureNetwork.networkSecurityGroups.get': ['Microsoft.Network/networkSecurityGroups/read'],
  'azureNetwork.networkSecurityGroups.beginCreateOrUpdateAndWait': ['Microsoft.Network/networkSecurityGroups/write'],
  'gcpFirewalls.get': ['compute.firewalls.get'],
  // firewalls.patch is also authorized on the rule's network.
  'gcpFirewalls.patch': ['compute.firewalls.update', 'compute.networks.updatePolicy'],
  'gcpGlobalOperations.wait': ['compute.globalOperations.get'],
  'gcsStorage.bucket.iam.getPolicy': ['storage.buckets.getIamPolicy'],
  'gcsStorage.bucket.iam.setPolicy': ['storage.buckets.setIamPolicy'],
  'gcsStorage.bucket.getMetadata': ['storage.buckets.get'],
  'gcsStorage.bucket.setMetadata': ['storage.buckets.update'],
};

/** Methods that only build a handle for later calls (no request is sent): they need no permission. */
const HANDLES = new Set(['gcsStorage.bucket', 'azureBlob.getContainerClient']);

/**
 * ARM's linked access check: a PUT of a network interface is authorized for a `join` action on every resource
 * its body refers to, whether the reference changed or not (the NIC is written back whole), else it fails
 * with 403 LinkedAuthorizationFailed. The members are those of @azure/arm-network's `NetworkInterface` and
 * `NetworkInterfaceIPConfiguration` (flattened properties).
 * @see https://learn.microsoft.com/azure/virtual-network/virtual-network-network-interface#permissions
 * @see https://learn.microsoft.com/azure/role-based-access-control/permissions/networking
 */
const NIC_LINKS = {
  networkSecurityGroup: 'Microsoft.Network/networkSecurityGroups/join/action',
} as const;
const IP_CONFIGURATION_LINKS = {
  subnet: 'Microsoft.Network/virtualNetworks/subnets/join/action',
  publicIPAddress: 'Microsoft.Network/publicIPAddresses/join/action',
  applicationSecurityGroups: 'Microsoft.Network/applicationSecurityGroups/joinIpConfiguration/action',
  loadBalancerBackendAddressPools: 'Microsoft.Network/loadBalancers/backendAddressPools/join/action',
  loadBalancerInboundNatRules: 'Microsoft.Network/loadBalancers/inboundNatRules/join/action',
  applicationGatewayBackendAddressPools: 'Microsoft.Network/applicationGateways/backendAddressPools/join/action',
} as const;

const refers = (v: unknown): boolean => (Array.isArray(v) ? v.length > 0 : v !== undefined && v !== null);
const record = (v: unknown): Record<string, unknown> =>
  v !== null && typeof v === 'object' ? (v as Record<string, unknown>) : {};

/** The join permissions the body of a NIC write needs (the third argument of beginCreateOrUpdateAndWait). */
function azureLinkedPermissions(nic: unknown): string[] {
  const body = record(nic);
  const links: string[] = Object.entries(NIC_LINKS).flatMap(([k, p]) => (refers(body[k]) ? [p] : []));
  const ipConfigurations = Array.isArray(body.ipConfigurations) ? body.ipConfigurations : [];
  for (const ip of ipConfigurations)
    for (const [k, p] of Object.entries(IP_CONFIGURATION_LINKS)) if (refers(record(ip)[k])) links.push(p);
  return links;
}

/** A call a {@link recording} stub saw: `<client>.<member>…<method>` and its arguments. */
export interface StubCall {
  at: string;
  args: readonly unknown[];
}

/** The permissions one recorded Azure/GCP call needs (`unknown permission for …` when it is not mapped). */
export function stubPermissions(c: StubCall): string[] {
  if (HANDLES.has(c.at)) return [];
  const base = STUB_PERMISSIONS[c.at] ?? [`unknown permission for ${c.at}`];
  if (c.at === 'azureNetwork.networkInterfaces.beginCreateOrUpdateAndWait')
    return [...base, ...azureLinkedPermissions(c.args[2])];
  return [...base];
}

export type Impl = { [name: string]: ((...args: never[]) => unknown) | Impl };

/**
 * A stub client that records every call (`<path>.<method>` and its arguments) and answers from `impl`; a
 * method `impl` lacks is recorded too, then throws (the recorded call names what the action tried).
 */
export function recording(path: string, impl: Impl, calls: StubCall[]): object {
  return new Proxy(
    {},
    {
      get(_t, prop) {
        if (typeof prop !== 'string' || prop === 'then') return undefined;
        const at = `${path}.${prop}`;
        const member = impl[prop];
        if (member !== undefined && typeof member !== 'function') return recording(at, member, calls);
        return (...args: never[]) => {
          calls.push({ at, args });
          if (member === undefined) throw new Error(`no stub for ${at}`);
          const out = member(...args);
          // A nested client handed back by a call (storage.bucket(name)) records under the same path.
          return out !== null && typeof out === 'object' && !('then' in out) && !(Symbol.asyncIterator in out)
            ? recording(at, out as Impl, calls)
            : out;
        };
      },
    },
  );
}
