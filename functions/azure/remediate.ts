/**
 * Azure spoke remediation: the hub's API destination posts a `Remediation Requested` event to `remediate`,
 * which checks it and puts it on the app's Storage queue `remediate-requests`, answering 202 at once (an
 * API destination gives up after 5 seconds; an apply's ARM long-running operation takes longer). A request
 * too large for a queue message (64 KiB, base64) is stored in the container `remediate-requests-large` and
 * the queue gets a pointer with its SHA-256 (shared/adapters/bus/claim-check.ts); over 1 MiB it is refused
 * with 413. The queue worker `remediateQueued` runs the named Azure action (plan → apply, verify or
 * rollback), or resolves a verified Defender alert, under the function app's managed identity (the custom
 * role of infra/azure/main.bicep) and reports the result to the hub bus. A run that throws is retried by the
 * queue (host.json maxDequeueCount) and then moved to `remediate-requests-poison`, as is a message that is no
 * request for this spoke, or a pointer whose blob is missing or altered, with its reason; the spoke's Bicep
 * alerts on that queue.
 * Anonymous at the Functions level: the caller is authenticated by `x-closeloop-secret` (constant time,
 * against the Key Vault-referenced app setting), as an API destination sends no function key of its own.
 */
import { app, type HttpRequest, type HttpResponseInit, type InvocationContext, output } from '@azure/functions';
import { createCloudClients } from '../../shared/actions/clients.js';
import { actionRegistry } from '../../shared/actions/registry.js';
import { azureClaimCheckBlobs, queueMessageFor, redeemClaimCheck } from '../../shared/adapters/bus/claim-check.js';
import { REMOTE_SECRET_HEADER } from '../../shared/adapters/bus/spoke.js';
import { queueRemoteRequest, runRemoteRequest } from '../../shared/adapters/bus/spoke-remote.js';
import { defenderResolver, lazyResolver } from '../../shared/adapters/upstream/spoke.js';
import { contextLogger, createAzureSpoke } from '../../shared/adapters/wiring/azure.js';
import { liveOwnerLookup } from '../../shared/adapters/wiring/lookup.js';
import { ConfigError } from '../../shared/core/errors.js';
import { systemClock } from '../../shared/core/ports.js';

const spoke = createAzureSpoke(process.env);
// Clients are built on first use, with DefaultAzureCredential = the app's managed identity.
const clients = createCloudClients({});
// The skip tag re-read from the live resource just before an apply, under the same identity.
const tags = liveOwnerLookup(['azure'], { fresh: true });
// Defender alerts the hub verified fixed are resolved here, under the same identity (Security Center SDK
// loaded on the first such request).
const upstream = lazyResolver(async () => {
  const [{ SecurityCenter }, { DefaultAzureCredential }] = await Promise.all([
    import('@azure/arm-security'),
    import('@azure/identity'),
  ]);
  const credential = new DefaultAzureCredential();
  return defenderResolver((subscriptionId) => new SecurityCenter(credential, subscriptionId).alerts);
});

/** The queue between the endpoint and the worker (infra/azure/spoke.bicep creates both), in the app's own storage. */
export const REMEDIATE_QUEUE = 'remediate-requests';
/** Where the Functions host moves a message whose runs kept failing (`<queue>-poison`), and the worker an unrunnable one. */
export const REMEDIATE_POISON_QUEUE = `${REMEDIATE_QUEUE}-poison`;
// AzureWebJobsStorage: the app's account, reached with its managed identity (AzureWebJobsStorage__accountName).
const connection = 'AzureWebJobsStorage';
export const queued = output.storageQueue({ queueName: REMEDIATE_QUEUE, connection });
/**
 * Requests too large for a queue message, one blob per requestId, in the same account (infra/azure/spoke.bicep
 * creates the container, and a lifecycle rule deletes its blobs after 15 days: a pointer outlives its run, as
 * the queue may deliver it again, and an operator may put a poisoned one back).
 */
export const REMEDIATE_LARGE_CONTAINER = `${REMEDIATE_QUEUE}-large`;
const largeRequests = azureClaimCheckBlobs(REMEDIATE_LARGE_CONTAINER, async () => {
  const account = process.env[`${connection}__accountName`];
  if (!account) throw new ConfigError(`${connection}__accountName is not set: no storage for large requests`);
  return clients.azureBlob(account);
});
export const poisoned = output.storageQueue({ queueName: REMEDIATE_POISON_QUEUE, connection });

export async function remediate(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  const log = contextLogger(context);
  const body: unknown = await request.json().catch(() => undefined);
  const answer = await queueRemoteRequest(body, request.headers.get(REMOTE_SECRET_HEADER), {
    spoke: 'azure',
    env: process.env,
    log,
    actions: actionRegistry,
    // The output binding: the host adds the message once this returns, and answers 500 if it cannot. A
    // request over a queue message is stored first, and its pointer queued.
    enqueue: async (req) => context.extraOutputs.set(queued, await queueMessageFor(req, largeRequests)),
  });
  return { status: answer.status, jsonBody: answer.body };
}

export async function remediateQueued(message: unknown, context: InvocationContext): Promise<void> {
  const log = contextLogger(context);
  const redeemed = await redeemClaimCheck(message, largeRequests);
  const run =
    'unrunnable' in redeemed
      ? redeemed
      : await runRemoteRequest(redeemed.value, {
          spoke: 'azure',
          env: process.env,
          log,
          actions: actionRegistry,
          ctx: { clients, clock: systemClock, log },
          clock: systemClock,
          actor: 'closeloop@azure-spoke',
          report: (result) => spoke.hub.report(result),
          tags,
          upstream,
        });
  if ('unrunnable' in run) {
    // Retrying cannot make it a request: set aside now, with why, where the poison alert looks.
    log.error(`remediation message moved to ${REMEDIATE_POISON_QUEUE}`, {
      reason: run.unrunnable,
      dequeueCount: context.triggerMetadata?.dequeueCount,
    });
    context.extraOutputs.set(poisoned, { reason: run.unrunnable, message });
  }
}

app.http('remediate', {
  methods: ['POST'],
  authLevel: 'anonymous',
  route: 'remediate',
  extraOutputs: [queued],
  handler: remediate,
});
app.storageQueue('remediateQueued', {
  queueName: REMEDIATE_QUEUE,
  connection,
  extraOutputs: [poisoned],
  handler: remediateQueued,
});
