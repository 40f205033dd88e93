/**
 * Azure spoke: Defender for Cloud alerts and recommendations arrive by Event Grid (trigger) or from a
 * Logic App (HTTP + shared secret); accepted documents are normalized here and forwarded to the AWS hub bus.
 */
import {
  app,
  type EventGridEvent,
  type HttpRequest,
  type HttpResponseInit,
  type InvocationContext,
} from '@azure/functions';
import { documentsFromAzure } from '../../shared/adapters/bus/event-grid.js';
import type { ReceivedDocument } from '../../shared/adapters/bus/spoke.js';
import { acceptDocuments } from '../../shared/adapters/bus/spoke-accept.js';
import { contextLogger, createAzureSpoke } from '../../shared/adapters/wiring/azure.js';
import { sharedSecretMatches } from '../../shared/adapters/wiring/shared-secret.js';

const spoke = createAzureSpoke(process.env);

/** Forwards what is accepted; the rejections (where, which source, which field, why: never the payload) are logged and returned. */
async function forward(docs: ReceivedDocument[], context: InvocationContext) {
  const { details, rejected } = await acceptDocuments('azure', docs, spoke.tags);
  const log = contextLogger(context);
  const rejections = rejected.map((r) => ({ input: r.input, source: r.source, path: r.path, reason: r.reason }));
  for (const r of rejections) log.warn('rejected input', r);
  await spoke.hub.forward(details);
  return { forwarded: details.length, rejected: rejections.length, rejections };
}

/** Event Grid trigger (the host handles the subscription handshake for this binding). */
export async function defenderEventGrid(event: EventGridEvent, context: InvocationContext): Promise<void> {
  await forward([{ input: `eventgrid:${event.id}`, value: event.data }], context);
}

/**
 * HTTP: the Logic App of Defender's workflow automation (function key + `x-closeloop-secret`), every
 * call. Event Grid does not come this way: its subscription targets defenderEventGrid (infra
 * spoke.bicep, endpointType AzureFunction), so no webhook handshake is answered here and no header
 * lets a caller skip the secret.
 */
export async function defenderHttp(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  if (!sharedSecretMatches(request.headers.get('x-closeloop-secret'), spoke.settings.CLOSELOOP_SPOKE_SECRET))
    return { status: 401, jsonBody: { error: 'missing or wrong x-closeloop-secret' } };
  const body: unknown = await request.json().catch(() => undefined);
  if (body === undefined) return { status: 400, jsonBody: { error: 'body is not JSON' } };
  // The rejections in the answer: the Logic App's run history shows why an alert was not forwarded.
  return { status: 202, jsonBody: await forward(documentsFromAzure(body, `http:${context.invocationId}`), context) };
}

app.eventGrid('defenderEventGrid', { handler: defenderEventGrid });
app.http('defenderHttp', {
  methods: ['POST'],
  authLevel: 'function',
  route: 'defender',
  handler: defenderHttp,
});
