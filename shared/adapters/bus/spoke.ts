/**
 * The spoke → hub hand-off. A spoke (Azure Function, Cloud Function) normalizes what it receives, to
 * reject bad input at the edge (spoke-accept.ts), and forwards each accepted source document to the hub
 * bus as one EventBridge entry. The hub's ingest normalizes the document again with the same code: the hub stays
 * the single place where findings are stored and decided, and a forwarded document replays exactly
 * like a local file does.
 *
 * The spoke's own way to the hub (web-identity credentials, STS) is spoke-forwarder.ts: the hub's
 * functions import this module and must not carry the STS client in their cold start.
 */
import type { EventBridgeClient, PutEventsRequestEntry } from '@aws-sdk/client-eventbridge';
import * as z from 'zod';
import { AdapterError } from '../../core/errors.js';
import type { Rejected } from '../../core/model/finding.js';
import type { Channel } from '../../core/pipeline/normalize.js';
import type { RemoteResult } from '../../core/remediation/remote.js';
import { type PutEventsOptions, putEvents } from './eventbridge.js';
import type { EventBridgeEvent } from './sqs.js';

export const SpokeSchema = z.enum(['azure', 'gcp']);
export type Spoke = z.infer<typeof SpokeSchema>;

/** EventBridge `source` per spoke; serverless.yml's ingest rule matches the prefix `closeloop.spoke.`. */
export const spokeSource = (spoke: Spoke): string => `closeloop.spoke.${spoke}`;
export const SPOKE_SOURCE_PREFIX = 'closeloop.spoke.';
export const SPOKE_DETAIL_TYPE = 'Spoke Finding Document';

/** One resource's live tags as a spoke read them, or why it could not (a lookup outcome, on the wire). */
export const SpokeLiveTagSchema = z.union([
  z.object({
    tags: z.record(z.string().max(512), z.string().max(512)),
    /**
     * Those of `tags` the resource takes from its GCP project or Azure resource group or subscription (see
     * LookupTags.inherited).
     */
    inherited: z.record(z.string().max(512), z.string().max(512)).optional(),
    /**
     * Azure: which of the two each inherited tag comes from (see LookupTags.inheritedFrom). Absent in a message
     * of a spoke from before subscription tags were read: all are its resource group's.
     */
    inheritedFrom: z.record(z.string().max(512), z.enum(['group', 'subscription'])).optional(),
  }),
  z.object({ error: z.string().max(1024) }),
]);
export type SpokeLiveTag = z.infer<typeof SpokeLiveTagSchema>;

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
  /**
   * The live tags the spoke read with its own identity (the hub cannot read Azure or GCP tags), by resource
   * id, for the findings whose event carried none — or why they could not be read. Only when the spoke's
   * tag lookup is on (`CLOSELOOP_TAG_LOOKUP`).
   */
  liveTags: z.record(z.string().max(2048), SpokeLiveTagSchema).optional(),
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
  const entries = details.map((detail) => spokeDocumentEntry(busName, detail));
  if (entries.length > 0) await putEvents(client, entries, options);
}

/** The hub bus entry that carries one forwarded document. */
export function spokeDocumentEntry(busName: string, detail: SpokeDetail): PutEventsRequestEntry {
  return {
    EventBusName: busName,
    Source: spokeSource(detail.spoke),
    DetailType: SPOKE_DETAIL_TYPE,
    Detail: JSON.stringify(detail),
  };
}

/** One document for the hub's ingest, from an EventBridge event that reached the ingest queue. */
export interface HubIngestDoc {
  input: string;
  value: unknown;
  /** The cloud the event's source speaks for: a spoke's own, AWS for the AWS services' events. */
  channel: Channel;
  /** A spoke's live tags by resource id (see SpokeDetailSchema.liveTags). */
  liveTags?: Record<string, z.infer<typeof SpokeLiveTagSchema>>;
}

/** An event the hub refuses before reading its document (dead-lettered with the reason). */
export interface RefusedIngestDoc {
  input: string;
  refused: Rejected;
}

/**
 * What the hub ingests from an EventBridge event: a spoke's forwarded document, or the AWS event itself
 * (GuardDuty / Security Hub events are recognised by their EventBridge envelope, finding-formats §1 rule 4).
 * Each is bound to one cloud: the event's source is what the sender's IAM role allows it to put
 * (`events:source` on each forwarder role, serverless.yml), so a spoke's document must name that spoke
 * in `detail.spoke` and normalize to that spoke's cloud only; an AWS service's event to AWS only.
 *
 * @example
 * hubIngestDoc({ source: 'closeloop.spoke.gcp', detail: { spoke: 'azure', … }, … });
 * // → { input: 'eventbridge:<id>', refused: { path: 'detail.spoke', reason: 'refused: detail.spoke "azure" …' } }
 */
export function hubIngestDoc(event: EventBridgeEvent): HubIngestDoc | RefusedIngestDoc {
  if (!event.source.startsWith(SPOKE_SOURCE_PREFIX))
    return {
      input: `eventbridge:${event.id}`,
      value: event,
      channel: { provider: 'aws', name: `EventBridge source ${JSON.stringify(event.source.slice(0, 64))}` },
    };
  const detail = SpokeDetailSchema.safeParse(event.detail);
  if (!detail.success) {
    throw new AdapterError(
      'invalid',
      `eventbridge:${event.id}: ${event.source} detail: ${z.prettifyError(detail.error)}`,
    );
  }
  const { spoke, input, document, liveTags } = detail.data;
  if (event.source !== spokeSource(spoke)) {
    const reason = `refused: detail.spoke ${JSON.stringify(spoke)} does not match the event source ${JSON.stringify(event.source.slice(0, 64))} (a spoke forwards only under its own source)`;
    return {
      input: `eventbridge:${event.id}`,
      refused: { input: `eventbridge:${event.id}`, source: 'unknown', path: 'detail.spoke', reason },
    };
  }
  return {
    input: `${spoke}:${input}`,
    value: document,
    channel: { provider: spoke, name: event.source },
    ...(liveTags ? { liveTags } : {}),
  };
}

/** What a spoke received, unwrapped from its transport (one source document each). */
export interface ReceivedDocument {
  input: string;
  value: unknown;
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
