/**
 * Google Pub/Sub transports: the Cloud Functions (2nd gen) CloudEvent
 * `google.cloud.pubsub.topic.v1.messagePublished` whose `data.message.data` is the base64
 * NotificationMessage (finding-formats §9.2) or a queued remediation request, and a publisher for the
 * latter (the GCP spoke's remediate endpoint → its worker).
 *
 * @see https://github.com/googleapis/google-cloudevents/blob/main/proto/google/events/cloud/pubsub/v1/data.proto
 */
import * as z from 'zod';
import { AdapterError, errorMessage, kindOfHttpStatus } from '../../core/errors.js';
import type { ReceivedDocument } from './spoke.js';

/**
 * `MessagePublishedData`, the CloudEvent's data.
 * @example { "subscription": "projects/acme-sec/subscriptions/closeloop", "message": { "data": "eyJub3RpZmljYXRpb25Db25maWdOYW1lIjoi…", "messageId": "1", "publishTime": "2026-01-01T00:00:00Z", "attributes": {} } }
 */
export const MessagePublishedDataSchema = z.looseObject({
  subscription: z.string().optional(),
  message: z.looseObject({
    data: z.string().optional(),
    messageId: z.string().optional(),
    message_id: z.string().optional(),
    publishTime: z.string().optional(),
    attributes: z.record(z.string(), z.string()).optional(),
  }),
});

/** Pub/Sub allows 10 MB messages; the hub's EventBridge entry allows 256 KB, checked when accepting (spoke-accept.ts). */
const MAX_MESSAGE_BYTES = 10 * 1024 * 1024;

/**
 * A Pub/Sub message that holds no readable notification: `input` names the message, `path` the field of the
 * CloudEvent that is wrong (never its value), `reason` why. Retrying cannot fix it.
 */
export class UnreadableMessageError extends AdapterError {
  constructor(
    readonly input: string,
    readonly path: string,
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super('invalid', `${input}: ${path}: ${reason}`, options);
    this.name = 'UnreadableMessageError';
  }
}

/** The NotificationMessage inside a Pub/Sub CloudEvent's data; an {@link UnreadableMessageError} when it is not one. */
export function documentFromPubSub(data: unknown, eventId: string): ReceivedDocument {
  const parsed = MessagePublishedDataSchema.safeParse(data);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const path = ['data', ...(issue?.path ?? [])].map(String).join('.');
    throw new UnreadableMessageError(
      `cloudevent:${eventId}`,
      path,
      `not a Pub/Sub message: ${issue?.message ?? 'invalid'}`,
    );
  }
  const { message } = parsed.data;
  const input = `pubsub:${message.messageId ?? message.message_id ?? eventId}`;
  const field = 'data.message.data';
  if (!message.data) throw new UnreadableMessageError(input, field, 'empty');
  if (message.data.length > (MAX_MESSAGE_BYTES * 4) / 3 + 4)
    throw new UnreadableMessageError(input, field, 'over 10 MB');
  try {
    return { input, value: JSON.parse(Buffer.from(message.data, 'base64').toString('utf8')) };
  } catch (e) {
    throw new UnreadableMessageError(input, field, 'not base64 JSON', { cause: e });
  }
}

/** A topic to publish to (the GCP spoke's remediation queue and its dead-letter topic). */
export interface PubSubPublisher {
  /** Publishes one message; resolves to its message id once Pub/Sub has it. */
  publish(data: string, attributes?: Record<string, string>): Promise<string>;
}

type PublishFetch = (
  url: string,
  init: { method: string; headers: Record<string, string>; body: string; signal: AbortSignal },
) => Promise<{ ok: boolean; status: number; text(): Promise<string> }>;

export interface PubSubPublisherOptions {
  /** An OAuth access token of the caller (wiring/gcp.ts gcpAccessTokens). */
  token(): Promise<string>;
  fetch?: PublishFetch;
  endpoint?: string;
  /** Gives up after this long (default 3 s: the remediate endpoint answers within an API destination's 5 s). */
  timeoutMs?: number;
}

/**
 * A failed publish's kind: a 4xx is transient but for those named, as the publisher has read them from the
 * start (a 400 included). Nothing acts on the kind but the log: whatever it is, a failed publish answers the
 * hub 5xx (its retries, then its dead letters) or fails the worker's delivery (Pub/Sub's retries).
 */
const PUBLISH_STATUS_KINDS = {
  '4xx': 'transient',
  401: 'denied',
  403: 'denied',
  404: 'gone',
  429: 'throttled',
} as const;

/**
 * Publishes to `topic` (`projects/<project>/topics/<name>`) through Pub/Sub's REST API with the caller's
 * access token: one call, no client library in the function's bundle.
 * @see https://cloud.google.com/pubsub/docs/reference/rest/v1/projects.topics/publish
 * @example const queue = pubsubPublisher('projects/acme-sec/topics/closeloop-remediate-requests', { token });
 */
export function pubsubPublisher(topic: string, options: PubSubPublisherOptions): PubSubPublisher {
  const fetchFn: PublishFetch = options.fetch ?? fetch;
  const url = `${options.endpoint ?? 'https://pubsub.googleapis.com'}/v1/${topic}:publish`;
  return {
    async publish(data, attributes) {
      const message = { data: Buffer.from(data, 'utf8').toString('base64'), ...(attributes ? { attributes } : {}) };
      const headers = { authorization: `Bearer ${await options.token()}`, 'content-type': 'application/json' };
      let res: Awaited<ReturnType<PublishFetch>>;
      let text: string;
      try {
        res = await fetchFn(url, {
          method: 'POST',
          headers,
          body: JSON.stringify({ messages: [message] }),
          signal: AbortSignal.timeout(options.timeoutMs ?? 3000),
        });
        text = await res.text();
      } catch (e) {
        // No answer (the deadline, a reset connection): the moment, named, not fetch's bare TypeError/AbortError.
        throw new AdapterError('transient', `Pub/Sub publish to ${topic}: no answer (${errorMessage(e)})`, {
          cause: e,
        });
      }
      if (!res.ok) {
        const kind = kindOfHttpStatus(res.status, PUBLISH_STATUS_KINDS);
        throw new AdapterError(kind, `Pub/Sub publish to ${topic} answered ${res.status}: ${text.slice(0, 512)}`);
      }
      let id: string | undefined;
      try {
        id = z.object({ messageIds: z.array(z.string()).min(1) }).safeParse(JSON.parse(text || '{}')).data
          ?.messageIds[0];
      } catch {
        /* an answer that is no JSON: no message id either */
      }
      if (!id) throw new AdapterError('transient', `Pub/Sub publish to ${topic} returned no message id`);
      return id;
    },
  };
}
