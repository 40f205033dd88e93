/**
 * Google Pub/Sub transports for SCC notifications: the Cloud Functions (2nd gen) CloudEvent
 * `google.cloud.pubsub.topic.v1.messagePublished` whose `data.message.data` is the base64
 * NotificationMessage (finding-formats §9.2).
 *
 * @see https://github.com/googleapis/google-cloudevents/blob/main/proto/google/events/cloud/pubsub/v1/data.proto
 */
import * as z from 'zod';
import { AdapterError } from '../../core/errors.js';
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
