/**
 * Azure transports for Defender for Cloud documents: Event Grid (event grid schema or CloudEvents
 * schema) and a Logic App / workflow automation posting the alert itself. The deployed Event Grid
 * subscription targets the function's Event Grid trigger (the host answers its handshake), so no webhook
 * validation is handled here. Envelopes are kept apart from
 * the payload; the payload is recognised by its shape later (finding-formats §1: never by `eventType`).
 *
 * @see https://learn.microsoft.com/azure/event-grid/event-schema
 */
import * as z from 'zod';
import type { ReceivedDocument } from './spoke.js';

/**
 * One event in the Event Grid schema.
 * @example { "id": "00000000-0000-0000-0000-000000000001", "eventType": "Closeloop.Defender.Alert", "subject": "/subscriptions/…", "eventTime": "2026-01-01T00:00:00Z", "dataVersion": "1", "data": { "SystemAlertId": "…" } }
 */
export const EventGridEventSchema = z.looseObject({
  id: z.string(),
  eventType: z.string(),
  subject: z.string(),
  eventTime: z.string().optional(),
  dataVersion: z.string(),
  data: z.unknown(),
  topic: z.string().optional(),
});
export type EventGridEvent = z.infer<typeof EventGridEventSchema>;

/** A CloudEvents 1.0 structured event (Event Grid's CloudEvents schema). */
export const CloudEventSchema = z.looseObject({
  specversion: z.literal('1.0'),
  id: z.string(),
  type: z.string(),
  source: z.string(),
  data: z.unknown().optional(),
});

/**
 * Source documents from what the Azure spoke received: an Event Grid batch (each `data`), a CloudEvent
 * (its `data`), or a Logic App body (the alert/assessment itself, or an array of them).
 */
export function documentsFromAzure(body: unknown, input: string): ReceivedDocument[] {
  const items = Array.isArray(body) ? body : [body];
  return items.map((item, i) => {
    const where = items.length > 1 ? `${input}#${i}` : input;
    const grid = EventGridEventSchema.safeParse(item);
    if (grid.success) return { input: `eventgrid:${grid.data.id}`, value: grid.data.data };
    const cloud = CloudEventSchema.safeParse(item);
    if (cloud.success) return { input: `cloudevent:${cloud.data.id}`, value: cloud.data.data };
    return { input: where, value: item };
  });
}
