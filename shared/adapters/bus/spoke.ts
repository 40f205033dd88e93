/**
 * The spoke → hub hand-off. A spoke (Azure Function, Cloud Function) normalizes what it receives, to
 * reject bad input at the edge (spoke-accept.ts), and forwards each accepted source document to the hub
 * bus as one EventBridge entry. The hub's ingest normalizes the document again with the same code: the hub stays
 * the single place where findings are stored and decided, and a forwarded document replays exactly
 * like a local file does.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { EventBridgeClient, type PutEventsRequestEntry } from '@aws-sdk/client-eventbridge';
import { STSClient } from '@aws-sdk/client-sts';
import * as z from 'zod';
import { AdapterError } from '../../core/errors.js';
import type { Clock, Logger } from '../../core/ports.js';
import {
  type ExecuteRemoteDeps,
  executeRemote,
  type RemoteExecutor,
  type RemoteRequest,
  RemoteRequestSchema,
  type RemoteResult,
  RemoteResultSchema,
} from '../../core/remediation/remote.js';
import { type PutEventsOptions, putEvents } from './eventbridge.js';
import type { EventBridgeEvent } from './sqs.js';
import { webIdentityCredentials } from './web-identity.js';

export const SpokeSchema = z.enum(['azure', 'gcp']);
export type Spoke = z.infer<typeof SpokeSchema>;

/** EventBridge `source` per spoke; serverless.yml's ingest rule matches the prefix `closeloop.spoke.`. */
export const spokeSource = (spoke: Spoke): string => `closeloop.spoke.${spoke}`;
export const SPOKE_SOURCE_PREFIX = 'closeloop.spoke.';
export const SPOKE_DETAIL_TYPE = 'Spoke Finding Document';

/**
 * The detail of a forwarded document.
 * @example { "spoke": "gcp", "input": "pubsub:00000000000001", "document": { "notificationConfigName": "…", "finding": {}, "resource": {} }, "findingKeys": ["<64 hex>"] }
 */
export const SpokeDetailSchema = z.object({
  spoke: SpokeSchema,
  /** Where the spoke received it (`eventgrid:<id>`, `http:<invocationId>`, `pubsub:<messageId>`). */
  input: z.string().min(1).max(512),
  /** The source document, unwrapped from its transport envelope (Defender alert/assessment, SCC NotificationMessage). */
  document: z.unknown(),
  /** Keys of the findings the spoke normalized from it, for tracing across clouds. */
  findingKeys: z.array(z.string()),
});
export type SpokeDetail = z.infer<typeof SpokeDetailSchema>;

/**
 * Forwards accepted documents to the hub bus (≤ 10 per call, failed entries retried boundedly).
 *
 * @example
 * await forwardToHub(eventBridgeWithWebIdentity, 'closeloop-prod', [{ spoke: 'azure', input: 'eventgrid:1', document, findingKeys }]);
 */
export async function forwardToHub(
  client: EventBridgeClient,
  busName: string,
  details: readonly SpokeDetail[],
  options: PutEventsOptions = {},
): Promise<void> {
  const entries: PutEventsRequestEntry[] = details.map((detail) => ({
    EventBusName: busName,
    Source: spokeSource(detail.spoke),
    DetailType: SPOKE_DETAIL_TYPE,
    Detail: JSON.stringify(detail),
  }));
  if (entries.length > 0) await putEvents(client, entries, options);
}

/** One document for the hub's ingest, from an EventBridge event that reached the ingest queue. */
export interface HubIngestDoc {
  input: string;
  value: unknown;
}

/**
 * What the hub ingests from an EventBridge event: a spoke's forwarded document, or the AWS event itself
 * (GuardDuty / Security Hub events are recognised by their EventBridge envelope, finding-formats §1 rule 4).
 */
export function hubIngestDoc(event: EventBridgeEvent): HubIngestDoc {
  if (!event.source.startsWith(SPOKE_SOURCE_PREFIX)) return { input: `eventbridge:${event.id}`, value: event };
  const detail = SpokeDetailSchema.safeParse(event.detail);
  if (!detail.success) {
    throw new AdapterError(
      'invalid',
      `eventbridge:${event.id}: ${event.source} detail: ${z.prettifyError(detail.error)}`,
    );
  }
  return { input: `${detail.data.spoke}:${detail.data.input}`, value: detail.data.document };
}

/** What a spoke received, unwrapped from its transport (one source document each). */
export interface ReceivedDocument {
  input: string;
  value: unknown;
}

export interface SpokeForwarderOptions {
  spoke: Spoke;
  /** The hub bus ARN (EventBusName accepts an ARN; the hub may be another account). */
  busArn: string;
  region: string;
  /** The hub role this spoke may assume with its own identity token (serverless.yml `<Cloud>SpokeForwarderRole`). */
  roleArn: string;
  /** The spoke's platform identity token (managed identity / service account ID token). */
  token: () => Promise<string>;
  /** Injected for tests; built from `region` otherwise. */
  sts?: STSClient;
  /** Injected for tests (with its own credentials); built with web-identity credentials otherwise. */
  eventBridge?: EventBridgeClient;
  clock?: Clock;
}

/**
 * The spoke's way to the hub: EventBridge PutEvents with short-lived credentials from
 * AssumeRoleWithWebIdentity (no long-lived AWS key in Azure or GCP).
 *
 * @example
 * const hub = createSpokeForwarder({ spoke: 'gcp', busArn, region: 'us-east-1', roleArn, token: () => gcpIdToken(audience) });
 * await hub.forward(details);
 */
export function createSpokeForwarder(options: SpokeForwarderOptions): {
  eventBridge: EventBridgeClient;
  forward(details: readonly SpokeDetail[]): Promise<void>;
  /** Puts a remote-remediation result on the hub bus (`Spoke Remediation Result`). */
  report(result: RemoteResult): Promise<void>;
} {
  const eventBridge =
    options.eventBridge ??
    new EventBridgeClient({
      region: options.region,
      credentials: webIdentityCredentials({
        sts: options.sts ?? new STSClient({ region: options.region }),
        roleArn: options.roleArn,
        sessionName: `closeloop-${options.spoke}-spoke`,
        token: options.token,
        ...(options.clock ? { clock: options.clock } : {}),
      }),
    });
  return {
    eventBridge,
    forward: (details) => forwardToHub(eventBridge, options.busArn, details),
    report: (result) => reportToHub(eventBridge, options.busArn, options.spoke, result),
  };
}

// ---- remote remediation: hub → spoke (API destination) → hub (forwarder) ----

/** `source` of the hub's hand-over events; serverless.yml routes them per provider to the spokes' API destinations. */
export const REMOTE_REQUEST_SOURCE = 'closeloop.remediation';
export const REMOTE_REQUEST_DETAIL_TYPE = 'Remediation Requested';
/** detail-type of a spoke's answer (source `closeloop.spoke.<spoke>`, like forwarded findings). */
export const REMOTE_RESULT_DETAIL_TYPE = 'Spoke Remediation Result';
/** The header the API destination's connection sends and the spoke's remediate function checks. */
export const REMOTE_SECRET_HEADER = 'x-closeloop-secret';

/** Puts a spoke's result on the hub bus (the spoke forwarder role allows only its own source). */
export async function reportToHub(
  client: EventBridgeClient,
  busName: string,
  spoke: Spoke,
  result: RemoteResult,
  options: PutEventsOptions = {},
): Promise<void> {
  await putEvents(
    client,
    [
      {
        EventBusName: busName,
        Source: spokeSource(spoke),
        DetailType: REMOTE_RESULT_DETAIL_TYPE,
        Detail: JSON.stringify(result),
      },
    ],
    options,
  );
}

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

/**
 * Constant-time check of the presented header against the configured secret. Fails closed on a missing
 * or short secret, and on an unresolved Key Vault reference (App Service leaves the literal
 * `@Microsoft.KeyVault(…)` text in place when it cannot resolve it, and that text is public).
 */
export function remoteSecretMatches(presented: string | null | undefined, expected: string | undefined): boolean {
  if (!presented || !expected || expected.length < 16 || expected.startsWith('@Microsoft.KeyVault(')) return false;
  const digest = (v: string) => createHash('sha256').update(v, 'utf8').digest();
  return timingSafeEqual(digest(presented), digest(expected));
}

/** An HTTP answer, framework-neutral (Azure Functions HttpResponseInit / Express response). */
export interface RemoteHttpAnswer {
  status: number;
  body: Record<string, unknown>;
}

export interface RemoteHandlerDeps extends Omit<ExecuteRemoteDeps, 'apply'> {
  spoke: Spoke;
  env: NodeJS.ProcessEnv;
  log: Logger;
  report(result: RemoteResult): Promise<void>;
}

/**
 * The spoke's remediate endpoint, shared by the Azure and GCP functions: authenticates the caller,
 * validates the request, runs it under the spoke's identity and reports the result to the hub.
 * 200 with the outcome once the result is on the hub bus; 401/400/422 for requests that must not be
 * retried; a throw (5xx) when the result could not be reported, so the delivery is retried or dead-lettered.
 *
 * @example const answer = await handleRemoteRequest(await req.json(), req.headers.get(REMOTE_SECRET_HEADER), deps);
 */
export async function handleRemoteRequest(
  body: unknown,
  presentedSecret: string | null | undefined,
  deps: RemoteHandlerDeps,
): Promise<RemoteHttpAnswer> {
  const env = RemoteSpokeEnvSchema.parse(deps.env);
  if (!remoteSecretMatches(presentedSecret, env.CLOSELOOP_REMEDIATE_SECRET)) {
    deps.log.warn('remediation request refused: missing or wrong secret');
    return { status: 401, body: { error: `missing or wrong ${REMOTE_SECRET_HEADER}` } };
  }
  // An API destination posts the whole EventBridge event; a direct caller may post the request itself.
  const envelope = z.looseObject({ detail: z.unknown() }).safeParse(body);
  const parsed = RemoteRequestSchema.safeParse(envelope.success ? envelope.data.detail : body);
  if (!parsed.success) return { status: 400, body: { error: z.prettifyError(parsed.error) } };
  const request = parsed.data;
  if (request.provider !== deps.spoke) {
    return {
      status: 422,
      body: { error: `this is the ${deps.spoke} spoke; ${request.provider} requests go elsewhere` },
    };
  }
  const action = deps.actions.get(request.action);
  if (action && action.provider !== deps.spoke) {
    return {
      status: 422,
      body: { error: `${action.id} is a ${action.provider} action; this is the ${deps.spoke} spoke` },
    };
  }
  const result = await executeRemote(request, { ...deps, apply: env.CLOSELOOP_APPLY === 'true' });
  deps.log.info('remediation request ran', {
    requestId: request.requestId,
    caseKey: request.caseKey,
    action: request.action,
    op: request.op,
    outcome: result.outcome,
  });
  await deps.report(result);
  return { status: 200, body: { requestId: result.requestId, outcome: result.outcome, reason: result.reason } };
}
