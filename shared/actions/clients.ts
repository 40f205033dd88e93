/**
 * The cloud clients actions use, created lazily by the wiring (shared/adapters/wiring/*) and injected,
 * so tests intercept them (aws-sdk-client-mock, Azurite, HTTP doubles). Add a factory here when an
 * action needs a new client.
 *
 * Azure ARM operation groups are typed as the narrow slice actions call (house style §2: declare an
 * interface where it is consumed, with exactly the calls made); the real SDK objects satisfy them
 * structurally, and tests hand in stubs that record the request shapes.
 */
import { EC2Client } from '@aws-sdk/client-ec2';
import { IAMClient } from '@aws-sdk/client-iam';
import { S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { NetworkManagementClient } from '@azure/arm-network';
import { StorageManagementClient } from '@azure/arm-storage';
import type { TokenCredential } from '@azure/identity';
import { DefaultAzureCredential } from '@azure/identity';
import { BlobServiceClient, type StorageSharedKeyCredential } from '@azure/storage-blob';
import { FirewallsClient, GlobalOperationsClient, type protos } from '@google-cloud/compute';
import { Storage } from '@google-cloud/storage';

/** The storage-account calls `azure.storage.disallow-public-access` makes (@azure/arm-storage). */
export type AzureStorageAccounts = Pick<StorageManagementClient['storageAccounts'], 'getProperties' | 'update'>;

/** The network calls `azure.vm.isolate` makes (@azure/arm-network). */
export interface AzureNetwork {
  networkInterfaces: Pick<
    NetworkManagementClient['networkInterfaces'],
    'get' | 'listAll' | 'beginCreateOrUpdateAndWait'
  >;
  networkSecurityGroups: Pick<NetworkManagementClient['networkSecurityGroups'], 'get' | 'beginCreateOrUpdateAndWait'>;
}

type IFirewall = protos.google.cloud.compute.v1.IFirewall;
type IOperation = protos.google.cloud.compute.v1.IOperation;
/**
 * The firewall calls `gcp.firewall.disable-rule` makes (@google-cloud/compute, REST transport): the
 * promise overloads of `FirewallsClient.get` / `patch` (a Pick would keep the callback overload only).
 *
 * `patch` is typed by the SDK as a long-running `LROperation`, but compute v1 resolves it to a plain
 * `{ latestResponse: <compute Operation>, name: <numeric id>, done: false }` without `promise()`
 * (firewalls_client.js wraps the raw response): the compute Operation is `latestResponse`, and waiting
 * for it is `GlobalOperationsClient.wait` (see {@link GcpGlobalOperations}).
 */
export interface GcpFirewalls {
  get(request: { project: string; firewall: string }): Promise<[IFirewall, ...unknown[]]>;
  patch(request: {
    project: string;
    firewall: string;
    firewallResource: IFirewall;
  }): Promise<[{ latestResponse?: unknown }, ...unknown[]]>;
}

/**
 * Waiting on a global compute operation (`POST /compute/v1/projects/{project}/global/operations/{operation}/wait`):
 * returns when the operation is DONE or after about two minutes, whichever comes first.
 *
 * @see https://cloud.google.com/compute/docs/reference/rest/v1/globalOperations/wait
 */
export interface GcpGlobalOperations {
  wait(request: { project: string; operation: string }): Promise<[IOperation, ...unknown[]]>;
}

export interface CloudClients {
  s3(region: string): S3Client;
  iam(): IAMClient;
  ec2(region: string): EC2Client;
  azureStorage(subscriptionId: string): AzureStorageAccounts;
  azureNetwork(subscriptionId: string): AzureNetwork;
  /** Data-plane client of one storage account (container ACLs). */
  azureBlob(accountName: string): BlobServiceClient;
  gcsStorage(): Storage;
  gcpFirewalls(): GcpFirewalls;
  gcpGlobalOperations(): GcpGlobalOperations;
}

export interface CloudClientOptions {
  aws?: {
    /** Endpoint override (LocalStack-style doubles); real AWS when absent. */
    endpoint?: string;
    credentials?: S3ClientConfig['credentials'];
  };
  azure?: {
    /** Default: DefaultAzureCredential (env, workload/managed identity, Azure CLI). */
    credential?: TokenCredential;
    /** Blob endpoint per account; default `https://{account}.blob.core.windows.net` (Azurite: `http://127.0.0.1:P/{account}`). */
    blobUrl?: (accountName: string) => string;
    /** Shared-key credential for the blob data plane (Azurite's well-known dev key); default: the token credential. */
    blobCredential?: (accountName: string) => StorageSharedKeyCredential | TokenCredential;
  };
  gcp?: {
    projectId?: string;
    /** GCS JSON API endpoint (a local double: `http://127.0.0.1:P`); real GCS with ADC when absent. */
    storageApiEndpoint?: string;
    /** Compute REST endpoint of a double: host, port and protocol; real Compute with ADC when absent. */
    /** `apiKey` stands in for ADC against a double (no token exchange). */
    compute?: { host: string; port: number; protocol: 'http' | 'https'; apiKey?: string };
  };
}

/** Memoizes a factory per key so one client per region/subscription/account is built, on first use. */
function lazy<R>(make: (key: string) => R): (key: string) => R {
  const cache = new Map<string, R>();
  return (key) => {
    let v = cache.get(key);
    if (v === undefined) {
      v = make(key);
      cache.set(key, v);
    }
    return v;
  };
}

/**
 * Builds real clients with each cloud's default credential chain (AWS default provider chain, Azure
 * DefaultAzureCredential, Google ADC). AWS clients get `maxAttempts: 1` and GCS `autoRetry: false`: actions retry through
 * `withRetry` (shared/actions/retry.ts), and two stacked retry layers would multiply the attempts.
 *
 * @example const clients = createCloudClients({}); await action.plan(target, { clients, clock, log });
 */
export function createCloudClients(opts: CloudClientOptions = {}): CloudClients {
  const awsBase = {
    maxAttempts: 1,
    ...(opts.aws?.endpoint ? { endpoint: opts.aws.endpoint } : {}),
    ...(opts.aws?.credentials ? { credentials: opts.aws.credentials } : {}),
  };
  let azureCredential: TokenCredential | undefined = opts.azure?.credential;
  const credential = (): TokenCredential => {
    azureCredential ??= new DefaultAzureCredential();
    return azureCredential;
  };
  const s3 = lazy(
    (region) => new S3Client({ ...awsBase, region, ...(opts.aws?.endpoint ? { forcePathStyle: true } : {}) }),
  );
  const ec2 = lazy((region) => new EC2Client({ ...awsBase, region }));
  // IAM is global; its endpoint lives in us-east-1 for the aws partition.
  const iam = lazy(() => new IAMClient({ ...awsBase, region: 'us-east-1' }));
  const azureStorage = lazy((sub) => new StorageManagementClient(credential(), sub).storageAccounts);
  const azureNetwork = lazy((sub): AzureNetwork => new NetworkManagementClient(credential(), sub));
  const azureBlob = lazy(
    (account) =>
      new BlobServiceClient(
        opts.azure?.blobUrl?.(account) ?? `https://${account}.blob.core.windows.net`,
        opts.azure?.blobCredential?.(account) ?? credential(),
        // One retry layer, as for AWS and GCS: the SDK's StorageRetryPolicy (4 tries from 4 s, exponential)
        // under `withRetry` made one unreachable endpoint cost minutes per call.
        { retryOptions: { maxTries: 1 } },
      ),
  );
  const gcs = lazy(
    () =>
      new Storage({
        // One retry layer, as for AWS: actions retry through `withRetry`; the client's own retry of
        // 429/5xx (up to 3 more attempts, from 1 s) would multiply attempts and ignore our budget.
        retryOptions: { autoRetry: false },
        ...(opts.gcp?.projectId ? { projectId: opts.gcp.projectId } : {}),
        ...(opts.gcp?.storageApiEndpoint ? { apiEndpoint: opts.gcp.storageApiEndpoint } : {}),
      }),
  );
  // Both compute clients talk to the same endpoint (a double's, or real Compute with ADC).
  const computeOptions = () => {
    const c = opts.gcp?.compute;
    return c
      ? {
          apiEndpoint: c.host,
          port: c.port,
          protocol: c.protocol,
          fallback: true,
          ...(c.apiKey ? { apiKey: c.apiKey } : {}),
        }
      : { fallback: true };
  };
  const firewalls = lazy((): GcpFirewalls => new FirewallsClient(computeOptions()));
  const globalOperations = lazy((): GcpGlobalOperations => new GlobalOperationsClient(computeOptions()));
  return {
    s3,
    ec2,
    iam: () => iam('global'),
    azureStorage,
    azureNetwork,
    azureBlob,
    gcsStorage: () => gcs('default'),
    gcpFirewalls: () => firewalls('default'),
    gcpGlobalOperations: () => globalOperations('default'),
  };
}
