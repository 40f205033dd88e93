/**
 * Remote remediation over the hub bus: the hub hands an Azure or GCP action to its spoke (`Remediation
 * Requested` → EventBridge API destination), the spoke's endpoint checks it and queues it, its queue worker
 * runs it under the spoke's own identity and reports back (`Spoke Remediation Result`, spoke.ts `reportToHub`). Apart from spoke.ts so the functions that only
 * forward findings (the spokes' ingest, the hub's ingest) do not load the remediation model with it.
 */
import type { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import * as z from 'zod';
import { AdapterError } from '../../core/errors.js';
import type { Logger } from '../../core/ports.js';
import {
  type ExecuteRemoteDeps,
  executeRemote,
  type RemoteExecutor,
  type RemoteRequest,
  RemoteRequestSchema,
  type RemoteResult,
  RemoteResultSchema,
} from '../../core/remediation/remote.js';
import { sharedSecretMatches } from '../wiring/shared-secret.js';
import { putEvents } from './eventbridge.js';
import {
  REMOTE_REQUEST_DETAIL_TYPE,
  REMOTE_REQUEST_SOURCE,
  REMOTE_RESULT_DETAIL_TYPE,
  REMOTE_SECRET_HEADER,
  SPOKE_SOURCE_PREFIX,
  type Spoke,
  SpokeSchema,
  spokeSource,
} from './spoke.js';
import type { EventBridgeEvent } from './sqs.js';

/**
 * The hub's {@link RemoteExecutor}: Azure and GCP actions are handed to their spokes as an event on the
 * hub bus; serverless.yml's `<Cloud>RemediateRule` sends it to the spoke's API destination.
 *
 * @example const remote = eventBridgeRemoteExecutor(ports.clients.eventbridge, ports.env.CLOSELOOP_BUS);
 */
export function eventBridgeRemoteExecutor(
  client: EventBridgeClient,
  busName: string,
  spokes: readonly Spoke[] = SpokeSchema.options,
): RemoteExecutor {
  const runs = (provider: string) => spokes.some((s) => s === provider);
  return {
    runs,
    async dispatch(request) {
      if (!runs(request.provider)) throw new AdapterError('invalid', `no spoke runs ${request.provider} actions`);
      await putEvents(client, [
        {
          EventBusName: busName,
          Source: REMOTE_REQUEST_SOURCE,
          DetailType: REMOTE_REQUEST_DETAIL_TYPE,
          Detail: JSON.stringify(RemoteRequestSchema.parse(request)),
        },
      ]);
    },
  };
}

/** What a hub queue record carries when it is part of remote remediation. */
export type RemoteMessage = { kind: 'result'; result: RemoteResult } | { kind: 'request'; request: RemoteRequest };

/**
 * Recognises remote-remediation events among the remediate queue's records: a spoke's result, or a
 * hand-over redriven from the dead-letter queue (the API destination's failed deliveries land there).
 * Undefined for anything else (closeloop's own pipeline events).
 */
export function remoteMessageOf(event: EventBridgeEvent): RemoteMessage | undefined {
  const where = `eventbridge:${event.id}`;
  if (event['detail-type'] === REMOTE_RESULT_DETAIL_TYPE && event.source.startsWith(SPOKE_SOURCE_PREFIX)) {
    const parsed = RemoteResultSchema.safeParse(event.detail);
    if (!parsed.success) throw new AdapterError('invalid', `${where}: result: ${z.prettifyError(parsed.error)}`);
    // A spoke reports only for its own provider (its role may put only its own source).
    const from = SpokeSchema.safeParse(parsed.data.provider);
    if (!from.success || spokeSource(from.data) !== event.source)
      throw new AdapterError('invalid', `${where}: ${event.source} reported a ${parsed.data.provider} result`);
    return { kind: 'result', result: parsed.data };
  }
  if (event['detail-type'] === REMOTE_REQUEST_DETAIL_TYPE && event.source === REMOTE_REQUEST_SOURCE) {
    const parsed = RemoteRequestSchema.safeParse(event.detail);
    if (!parsed.success) throw new AdapterError('invalid', `${where}: request: ${z.prettifyError(parsed.error)}`);
    return { kind: 'request', request: parsed.data };
  }
  return undefined;
}

/**
 * Settings of a spoke's remediate function (Azure app settings / Cloud Function env; infra sets them).
 * The secret comes from Key Vault (reference) or Secret Manager (secret env var), never from the template.
 */
export const RemoteSpokeEnvSchema = z.object({
  CLOSELOOP_REMEDIATE_SECRET: z.string().optional(),
  /** The spoke's own switch: `true` lets it change resources; anything else plans only. */
  CLOSELOOP_APPLY: z.string().optional(),
});

/** An HTTP answer, framework-neutral (Azure Functions HttpResponseInit / Express response). */
export interface RemoteHttpAnswer {
  status: number;
  body: Record<string, unknown>;
}

/**
 * The largest request (its JSON) a spoke's endpoint queues; a larger one is refused with 413. Far above what
 * the hub can hand over (one EventBridge event, 256 KB) and below what either queue can carry: the Azure
 * spoke stores a request over a Storage queue message (64 KiB, base64) as a blob (claim-check.ts), and a
 * Pub/Sub message takes 10 MB (as base64 in the publish call, about 7.5 MB of JSON).
 */
export const MAX_REMOTE_REQUEST_BYTES = 1024 * 1024;

/** What the spoke's endpoint needs to check a request: which spoke it is, its settings, the actions it knows. */
export interface RemoteAcceptDeps {
  spoke: Spoke;
  env: NodeJS.ProcessEnv;
  log: Logger;
  actions: ExecuteRemoteDeps['actions'];
}

export interface RemoteQueueDeps extends RemoteAcceptDeps {
  /**
   * Puts the validated request on the spoke's own queue (Azure Storage queue, Pub/Sub topic), whose worker
   * runs it with {@link runRemoteRequest} (at most {@link MAX_REMOTE_REQUEST_BYTES} of JSON). A throw answers
   * 5xx: the hub's API destination then dead-letters the hand-over (RemediateDlq), a real failure worth its alarm.
   */
  enqueue(request: RemoteRequest): Promise<void>;
}

export interface RemoteRunDeps extends RemoteAcceptDeps, Omit<ExecuteRemoteDeps, 'apply' | 'actions'> {
  report(result: RemoteResult): Promise<void>;
}

/**
 * Why this spoke will not run `body` (its answer: 400 unreadable, 422 another spoke's), or the request.
 * The same check at the endpoint and in the queue worker, so the worker never runs what the endpoint
 * would have refused, whoever put it on the queue.
 */
function checkRequest(
  body: unknown,
  deps: RemoteAcceptDeps,
): { request: RemoteRequest } | { status: 400 | 422; error: string } {
  // An API destination posts the whole EventBridge event; a direct caller may post the request itself.
  const envelope = z.looseObject({ detail: z.unknown() }).safeParse(body);
  const parsed = RemoteRequestSchema.safeParse(envelope.success ? envelope.data.detail : body);
  if (!parsed.success) return { status: 400, error: z.prettifyError(parsed.error) };
  const request = parsed.data;
  if (request.provider !== deps.spoke)
    return { status: 422, error: `this is the ${deps.spoke} spoke; ${request.provider} requests go elsewhere` };
  const action = deps.actions.get(request.action);
  if (action && action.provider !== deps.spoke)
    return { status: 422, error: `${action.id} is a ${action.provider} action; this is the ${deps.spoke} spoke` };
  return { request };
}

/** 401 unless the caller presents the remediate secret (constant time). */
function refuseCaller(
  presentedSecret: string | null | undefined,
  deps: RemoteAcceptDeps,
): RemoteHttpAnswer | undefined {
  const env = RemoteSpokeEnvSchema.parse(deps.env);
  if (sharedSecretMatches(presentedSecret, env.CLOSELOOP_REMEDIATE_SECRET)) return undefined;
  deps.log.warn('remediation request refused: missing or wrong secret');
  return { status: 401, body: { error: `missing or wrong ${REMOTE_SECRET_HEADER}` } };
}

/**
 * The spoke's remediate endpoint, shared by the Azure and GCP functions: authenticates the caller,
 * validates the request and puts it on the spoke's queue, then answers 202. It does not run the action:
 * an EventBridge API destination gives up on an endpoint after 5 seconds, and an apply with its
 * long-running operation takes longer, so a fix that succeeded was dead-lettered (RemediateDlq, paging
 * the operators) and dispatched again when redriven. 401/400/422/413 (over {@link MAX_REMOTE_REQUEST_BYTES})
 * for requests that must not be retried;
 * a throw (5xx) when the request could not be queued, so the hub's delivery is dead-lettered.
 *
 * @example const answer = await queueRemoteRequest(await req.json(), req.headers.get(REMOTE_SECRET_HEADER), deps);
 */
export async function queueRemoteRequest(
  body: unknown,
  presentedSecret: string | null | undefined,
  deps: RemoteQueueDeps,
): Promise<RemoteHttpAnswer> {
  const refused = refuseCaller(presentedSecret, deps);
  if (refused) return refused;
  const checked = checkRequest(body, deps);
  if (!('request' in checked)) return { status: checked.status, body: { error: checked.error } };
  const { request } = checked;
  // Refused, not failed: a 5xx is retried by the API destination for as long as its retry policy allows and
  // then dead-lettered as a failure; a 413 is dead-lettered at once (EventBridge retries only 429 and 5xx),
  // with this answer and the warning below saying why.
  const bytes = Buffer.byteLength(JSON.stringify(request), 'utf8');
  if (bytes > MAX_REMOTE_REQUEST_BYTES) {
    const error = `request ${request.requestId} is ${bytes} bytes as JSON; this spoke takes at most ${MAX_REMOTE_REQUEST_BYTES}`;
    deps.log.warn('remediation request refused: too large', {
      requestId: request.requestId,
      caseKey: request.caseKey,
      bytes,
    });
    return { status: 413, body: { error } };
  }
  await deps.enqueue(request);
  deps.log.info('remediation request queued', {
    requestId: request.requestId,
    caseKey: request.caseKey,
    action: request.action,
    op: request.op,
  });
  return { status: 202, body: { requestId: request.requestId, queued: true } };
}

/** What the queue worker did with one message. */
export type RemoteRun = { ran: RemoteResult } | { unrunnable: string };

/**
 * The spoke's queue worker, shared by the Azure and GCP functions: runs a request the endpoint queued under
 * the spoke's identity and reports the result to the hub. Queues deliver at least once, so a request may
 * run twice: harmless, as the action re-reads and plans noop, and the hub records a result only while the
 * case holds the request's token. A throw (the result could not be reported, an unexpected error) leaves
 * the message to the queue's retries and, once they are spent, to its poison queue / dead-letter topic.
 * A message it can never run (not a request for this spoke) is not thrown back: `unrunnable` says why,
 * for the caller to set it aside where an operator sees it.
 *
 * @example const run = await runRemoteRequest(queueItem, deps);
 */
export async function runRemoteRequest(message: unknown, deps: RemoteRunDeps): Promise<RemoteRun> {
  const env = RemoteSpokeEnvSchema.parse(deps.env);
  const checked = checkRequest(message, deps);
  if (!('request' in checked)) return { unrunnable: checked.error };
  const { request } = checked;
  const result = await executeRemote(request, { ...deps, apply: env.CLOSELOOP_APPLY === 'true' });
  deps.log.info('remediation request ran', {
    requestId: request.requestId,
    caseKey: request.caseKey,
    action: request.action,
    op: request.op,
    outcome: result.outcome,
  });
  await deps.report(result);
  return { ran: result };
}
