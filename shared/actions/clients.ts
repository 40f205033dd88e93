/**
 * The cloud clients actions use, created lazily by the wiring (shared/adapters/wiring/*) and injected,
 * so tests intercept them (aws-sdk-client-mock, Azurite, HTTP doubles). Add a factory here when an
 * action needs a new client.
 *
 * Azure ARM operation groups are typed as the narrow slice actions call (house style §2: declare an
 * interface where it is consumed, with exactly the calls made); the real SDK objects satisfy them
 * structurally, and tests hand in stubs that record the request shapes.
 *
 * Every SDK is imported on first use (`import()`), never at module load: a function carries and parses
 * only the SDKs of the actions it actually runs (an EC2 quarantine loads ~550 KB of EC2 schemas that an
 * S3 fix never needs; a spoke loads its SDK when its first request arrives). The bundler turns each
 * `import()` into a chunk read on first use. Only types are imported statically here.
 */
import type { EC2Client } from '@aws-sdk/client-ec2';
import type { IAMClient } from '@aws-sdk/client-iam';
import type { S3Client, S3ClientConfig } from '@aws-sdk/client-s3';
import type { NetworkManagementClient } from '@azure/arm-network';
import type { StorageManagementClient, StorageManagementClientOptionalParams } from '@azure/arm-storage';
import type { TokenCredential } from '@azure/identity';
import type { BlobServiceClient, StorageSharedKeyCredential } from '@azure/storage-blob';
import type { protos } from '@google-cloud/compute';
import type { Storage } from '@google-cloud/storage';
import { iamRegion } from '../core/util/aws-partition.js';
import { GCP_CALL_OPTIONS, GCP_CALL_TIMEOUT_MS, withDeadline } from './retry.js';

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

/**
 * A client, or the promise of one: the real factories resolve once their SDK is loaded; a test double
 * may hand its stub back directly. Actions always `await` a factory's result.
 */
export type Awaitable<T> = T | Promise<T>;

export interface CloudClients {
  s3(region: string): Awaitable<S3Client>;
  iam(): Awaitable<IAMClient>;
  ec2(region: string): Awaitable<EC2Client>;
  azureStorage(subscriptionId: string): Awaitable<AzureStorageAccounts>;
  azureNetwork(subscriptionId: string): Awaitable<AzureNetwork>;
  /** Data-plane client of one storage account (container ACLs). */
  azureBlob(accountName: string): Awaitable<BlobServiceClient>;
  gcsStorage(): Awaitable<Storage>;
  gcpFirewalls(): Awaitable<GcpFirewalls>;
  gcpGlobalOperations(): Awaitable<GcpGlobalOperations>;
}

/** Memoizes a module import; a failed import is forgotten so the next use tries again. */
function once<M>(load: () => Promise<M>): () => Promise<M> {
  let loading: Promise<M> | undefined;
  return () =>
    (loading ??= load().catch((e: unknown) => {
      loading = undefined;
      throw e;
    }));
}

/**
 * The AWS SDK modules AWS actions take their command classes from, each imported once on first use
 * (`const { GetRoleCommand } = await awsSdk.iam()`), so a function that never runs an EC2 action never
 * loads the EC2 client's schemas.
 */
export const awsSdk = {
  s3: once(() => import('@aws-sdk/client-s3')),
  iam: once(() => import('@aws-sdk/client-iam')),
  ec2: once(() => import('@aws-sdk/client-ec2')),
};

/** How long an AWS call may go without a byte before it fails as transient (retried by `withRetry`). */
export const AWS_SOCKET_TIMEOUT_MS = 30_000;

export interface CloudClientOptions {
  aws?: {
    /** Endpoint override (LocalStack-style doubles); real AWS when absent. */
    endpoint?: string;
    /** Silence after which a call fails (default {@link AWS_SOCKET_TIMEOUT_MS}). */
    socketTimeoutMs?: number;
    credentials?: S3ClientConfig['credentials'];
    /**
     * The deployment's region (default: `AWS_REGION`, as the SDK reads it): IAM is called in its partition
     * (us-gov-west-1 in GovCloud, cn-north-1 in China, us-east-1 otherwise), where the credentials are.
     */
    region?: string;
  };
  azure?: {
    /** Default: DefaultAzureCredential (env, workload/managed identity, Azure CLI). */
    credential?: TokenCredential;
    /** Blob endpoint per account; default `https://{account}.blob.core.windows.net` (Azurite: `http://127.0.0.1:P/{account}`). */
    blobUrl?: (accountName: string) => string;
    /** Shared-key credential for the blob data plane (Azurite's well-known dev key); default: the token credential. */
    blobCredential?: (accountName: string) => StorageSharedKeyCredential | TokenCredential;
    /** The HTTP client ARM requests are sent through (a test double); default: the SDK's own. */
    armHttpClient?: StorageManagementClientOptionalParams['httpClient'];
  };
  gcp?: {
    projectId?: string;
    /** GCS JSON API endpoint (a local double: `http://127.0.0.1:P`); real GCS with ADC when absent. */
    storageApiEndpoint?: string;
    /** Compute REST endpoint of a double: host, port and protocol; real Compute with ADC when absent. */
    /** `apiKey` stands in for ADC against a double (no token exchange). */
    compute?: { host: string; port: number; protocol: 'http' | 'https'; apiKey?: string };
    /** How long one Google API call may take (default {@link GCP_CALL_TIMEOUT_MS}). */
    callTimeoutMs?: number;
  };
}

/**
 * Memoizes an async factory per key so one client per region/subscription/account is built, on first
 * use; a failed build (an SDK that cannot load) is forgotten so the next call tries again.
 */
function lazy<R>(make: (key: string) => Promise<R>): (key: string) => Promise<R> {
  const cache = new Map<string, Promise<R>>();
  return (key) => {
    let v = cache.get(key);
    if (v === undefined) {
      v = make(key).catch((e: unknown) => {
        cache.delete(key);
        throw e;
      });
      cache.set(key, v);
    }
    return v;
  };
}

/**
 * Builds real clients with each cloud's default credential chain (AWS default provider chain, Azure
 * DefaultAzureCredential, Google ADC). AWS clients get `maxAttempts: 1`, ARM and blob clients no retries, GCS
 * `autoRetry: false` and compute calls `retry: null` with a deadline: actions retry through `withRetry` (shared/actions/retry.ts), and two stacked retry layers
 * would multiply the attempts.
 *
 * @example const clients = createCloudClients({}); await action.plan(target, { clients, clock, log });
 */
export function createCloudClients(opts: CloudClientOptions = {}): CloudClients {
  const awsBase = {
    maxAttempts: 1,
    // The SDK's own socket timeout is 5 minutes of silence, the remediate function's whole time: a call to a
    // hung endpoint held the apply until Lambda killed it (its claim then waits abandonAfter to be settled).
    // A silent connection now fails the call as transient, and `withRetry` tries again or gives up.
    requestHandler: { connectionTimeout: 5_000, socketTimeout: opts.aws?.socketTimeoutMs ?? AWS_SOCKET_TIMEOUT_MS },
    ...(opts.aws?.endpoint ? { endpoint: opts.aws.endpoint } : {}),
    ...(opts.aws?.credentials ? { credentials: opts.aws.credentials } : {}),
  };
  let azureCredential: Promise<TokenCredential> | undefined = opts.azure?.credential
    ? Promise.resolve(opts.azure.credential)
    : undefined;
  const credential = (): Promise<TokenCredential> =>
    (azureCredential ??= import('@azure/identity').then(({ DefaultAzureCredential }) => new DefaultAzureCredential()));
  const s3 = lazy(async (region) => {
    const { S3Client } = await awsSdk.s3();
    return new S3Client({ ...awsBase, region, ...(opts.aws?.endpoint ? { forcePathStyle: true } : {}) });
  });
  const ec2 = lazy(async (region) => new (await awsSdk.ec2()).EC2Client({ ...awsBase, region }));
  // IAM is global, with one endpoint per partition: the deployment's (its credentials are in no other). It
  // was us-east-1 whatever the partition: in GovCloud or China every IAM fix, its verify and its rollback
  // called the aws partition's endpoint, which does not know those credentials.
  const iamAt = iamRegion({ region: opts.aws?.region ?? process.env.AWS_REGION });
  const iam = lazy(async () => new (await awsSdk.iam()).IAMClient({ ...awsBase, region: iamAt }));
  // One retry layer, as for AWS: the ARM pipeline's own retry (3 more tries per call) multiplied `withRetry`'s
  // attempts, and its throttling policy slept whatever Retry-After ARM sent, uncapped, inside the function
  // (an hour's Retry-After held the spoke until its host killed it); `withRetry` caps the wait and gives up.
  const armOptions = {
    retryOptions: { maxRetries: 0 },
    ...(opts.azure?.armHttpClient ? { httpClient: opts.azure.armHttpClient } : {}),
  };
  const azureStorage = lazy(async (sub): Promise<AzureStorageAccounts> => {
    const { StorageManagementClient } = await import('@azure/arm-storage');
    return new StorageManagementClient(await credential(), sub, armOptions).storageAccounts;
  });
  const azureNetwork = lazy(async (sub): Promise<AzureNetwork> => {
    const { NetworkManagementClient } = await import('@azure/arm-network');
    return new NetworkManagementClient(await credential(), sub, armOptions);
  });
  const azureBlob = lazy(async (account) => {
    const { BlobServiceClient } = await import('@azure/storage-blob');
    return new BlobServiceClient(
      opts.azure?.blobUrl?.(account) ?? `https://${account}.blob.core.windows.net`,
      opts.azure?.blobCredential?.(account) ?? (await credential()),
      // One retry layer, as for AWS and GCS: the SDK's StorageRetryPolicy (4 tries from 4 s, exponential)
      // under `withRetry` made one unreachable endpoint cost minutes per call.
      { retryOptions: { maxTries: 1 } },
    );
  });
  const gcs = lazy(async () => {
    const { Storage } = await import('@google-cloud/storage');
    return new Storage({
      // One retry layer, as for AWS: actions retry through `withRetry`; the client's own retry of
      // 429/5xx (up to 3 more attempts, from 1 s) would multiply attempts and ignore our budget.
      retryOptions: { autoRetry: false },
      // Its own per-request timeout is 60 s: half the remediate function's time for one try.
      timeout: opts.gcp?.callTimeoutMs ?? GCP_CALL_TIMEOUT_MS,
      ...(opts.gcp?.projectId ? { projectId: opts.gcp.projectId } : {}),
      ...(opts.gcp?.storageApiEndpoint ? { apiEndpoint: opts.gcp.storageApiEndpoint } : {}),
    });
  });
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
  // @google-cloud/compute is the heaviest SDK by far (its proto JSON alone is ~11 MB): only the GCP
  // firewall action ever loads it.
  const compute = once(() => import('@google-cloud/compute'));
  // Each call gets one try and a deadline (GCP_CALL_OPTIONS): the client's own settings retried a 503 for up
  // to 600 s under `withRetry`. The REST transport ignores gax's deadline, so a timer bounds the call too.
  const callTimeoutMs = opts.gcp?.callTimeoutMs ?? GCP_CALL_TIMEOUT_MS;
  const callOptions = { ...GCP_CALL_OPTIONS, timeout: callTimeoutMs };
  const firewalls = lazy(async (): Promise<GcpFirewalls> => {
    const client = new (await compute()).FirewallsClient(computeOptions());
    return {
      get: (request) => withDeadline(client.get(request, callOptions), callTimeoutMs, 'compute.firewalls.get'),
      patch: (request) => withDeadline(client.patch(request, callOptions), callTimeoutMs, 'compute.firewalls.patch'),
    };
  });
  const globalOperations = lazy(async (): Promise<GcpGlobalOperations> => {
    const client = new (await compute()).GlobalOperationsClient(computeOptions());
    return {
      wait: (request) =>
        withDeadline(client.wait(request, callOptions), callTimeoutMs, 'compute.globalOperations.wait'),
    };
  });
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
