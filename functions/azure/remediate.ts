/**
 * Azure spoke remediation: the hub's API destination posts a `Remediation Requested` event; this runs
 * the named Azure action (plan → apply, verify or rollback), or resolves a verified Defender alert, under the function app's managed identity
 * (the custom role of infra/azure/main.bicep) and reports the result to the hub bus.
 * Anonymous at the Functions level: the caller is authenticated by `x-closeloop-secret` (constant time,
 * against the Key Vault-referenced app setting), as an API destination sends no function key of its own.
 */
import { app, type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import { createCloudClients } from '../../shared/actions/clients.js';
import { actionRegistry } from '../../shared/actions/registry.js';
import { REMOTE_SECRET_HEADER } from '../../shared/adapters/bus/spoke.js';
import { handleRemoteRequest } from '../../shared/adapters/bus/spoke-remote.js';
import { defenderResolver, lazyResolver } from '../../shared/adapters/upstream/spoke.js';
import { contextLogger, createAzureSpoke } from '../../shared/adapters/wiring/azure.js';
import { liveOwnerLookup } from '../../shared/adapters/wiring/lookup.js';
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

export async function remediate(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  const log = contextLogger(context);
  const body: unknown = await request.json().catch(() => undefined);
  const answer = await handleRemoteRequest(body, request.headers.get(REMOTE_SECRET_HEADER), {
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
  return { status: answer.status, jsonBody: answer.body };
}

app.http('remediate', { methods: ['POST'], authLevel: 'anonymous', route: 'remediate', handler: remediate });
