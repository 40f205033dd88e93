/**
 * Azure spoke: Defender for Cloud alerts and recommendations arrive by Event Grid (trigger, or webhook
 * over HTTP with the validation handshake) or from a Logic App (HTTP + shared secret); accepted
 * documents are normalized here and forwarded to the AWS hub bus.
 */
import {
  app,
  type EventGridEvent,
  type HttpRequest,
  type HttpResponseInit,
  type InvocationContext,
} from '@azure/functions';
import { documentsFromAzure, validationCodeOf } from '../../shared/adapters/bus/event-grid.js';
import type { ReceivedDocument } from '../../shared/adapters/bus/spoke.js';
import { acceptDocuments } from '../../shared/adapters/bus/spoke-accept.js';
import { contextLogger, createAzureSpoke, secretMatches } from '../../shared/adapters/wiring/azure.js';

const spoke = createAzureSpoke(process.env);

async function forward(docs: ReceivedDocument[], context: InvocationContext): Promise<number> {
  const { details, rejected } = await acceptDocuments('azure', docs, spoke.tags);
  const log = contextLogger(context);
  for (const r of rejected)
    log.warn('rejected input', { input: r.input, source: r.source, path: r.path, reason: r.reason });
  await spoke.hub.forward(details);
  return details.length;
}

/** Event Grid trigger (the host handles the subscription handshake for this binding). */
export async function defenderEventGrid(event: EventGridEvent, context: InvocationContext): Promise<void> {
  await forward([{ input: `eventgrid:${event.id}`, value: event.data }], context);
}

/** HTTP: Event Grid webhook (function key) or Logic App (function key + `x-closeloop-secret`). */
export async function defenderHttp(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  // CloudEvents abuse protection: answer the OPTIONS probe with the origin we accept deliveries from.
  const origin = request.headers.get('webhook-request-origin');
  if (request.method === 'OPTIONS')
    return origin ? { status: 200, headers: { 'WebHook-Allowed-Origin': origin } } : { status: 400 };
  const eventGrid = request.headers.get('aeg-event-type');
  if (!eventGrid && !secretMatches(request.headers.get('x-closeloop-secret'), spoke.settings.CLOSELOOP_SPOKE_SECRET)) {
    return { status: 401, jsonBody: { error: 'missing or wrong x-closeloop-secret' } };
  }
  const body: unknown = await request.json().catch(() => undefined);
  if (body === undefined) return { status: 400, jsonBody: { error: 'body is not JSON' } };
  if (eventGrid === 'SubscriptionValidation') {
    const code = validationCodeOf(body);
    return code
      ? { status: 200, jsonBody: { validationResponse: code } }
      : { status: 400, jsonBody: { error: 'no validationCode' } };
  }
  const forwarded = await forward(documentsFromAzure(body, `http:${context.invocationId}`), context);
  return { status: 202, jsonBody: { forwarded } };
}

app.eventGrid('defenderEventGrid', { handler: defenderEventGrid });
app.http('defenderHttp', {
  methods: ['POST', 'OPTIONS'],
  authLevel: 'function',
  route: 'defender',
  handler: defenderHttp,
});
