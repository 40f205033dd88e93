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

/** The NotificationMessage inside a Pub/Sub CloudEvent's data; `invalid` AdapterError when it is not one. */
export function documentFromPubSub(data: unknown, eventId: string): ReceivedDocument {
  const parsed = MessagePublishedDataSchema.safeParse(data);
  if (!parsed.success)
    throw new AdapterError('invalid', `cloudevent ${eventId}: not a Pub/Sub message: ${z.prettifyError(parsed.error)}`);
  const { message } = parsed.data;
  const id = message.messageId ?? message.message_id ?? eventId;
  if (!message.data) throw new AdapterError('invalid', `pubsub:${id}: message.data is empty`);
  if (message.data.length > (MAX_MESSAGE_BYTES * 4) / 3 + 4)
    throw new AdapterError('invalid', `pubsub:${id}: message over 10 MB`);
  try {
    return { input: `pubsub:${id}`, value: JSON.parse(Buffer.from(message.data, 'base64').toString('utf8')) };
  } catch (e) {
    throw new AdapterError('invalid', `pubsub:${id}: message.data is not base64 JSON`, { cause: e });
  }
}
