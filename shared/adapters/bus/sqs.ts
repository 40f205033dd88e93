/**
 * SQS envelopes: the hub's stage queues receive EventBridge events (a rule's SQS target delivers the
 * whole event as the message body), so a record is SQS envelope → EventBridge envelope → payload. The
 * envelopes are kept apart from the payload (Powertools `parser/envelopes/eventbridge`), each with its
 * own zod schema; vendor/AWS envelopes parse leniently (unknown fields kept).
 *
 * @see https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-use-resource-based.html#eb-sqs-permissions
 * @see https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html (event shape)
 */
import * as z from 'zod';
import { AdapterError } from '../../core/errors.js';
import { type PipelineEvent, PipelineEventSchema } from '../../core/model/events.js';

/**
 * One record of a Lambda SQS event.
 * @example { "messageId": "059f36b4-87a3-44ab-83d2-661975830a7d", "receiptHandle": "AQEB…", "body": "{…}", "attributes": { "ApproximateReceiveCount": "1" }, "messageAttributes": {}, "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:111122223333:closeloop-dev-ticket", "awsRegion": "us-east-1" }
 */
export const SqsRecordSchema = z.looseObject({
  messageId: z.string(),
  receiptHandle: z.string().optional(),
  body: z.string(),
  attributes: z.record(z.string(), z.string()).optional(),
  eventSource: z.string().optional(),
  eventSourceARN: z.string().optional(),
});
export type SqsRecord = z.infer<typeof SqsRecordSchema>;

/** A Lambda SQS event (what an SQS event source mapping invokes the function with). */
export const SqsEventSchema = z.looseObject({ Records: z.array(SqsRecordSchema) });
export type SqsEvent = z.infer<typeof SqsEventSchema>;

/**
 * An EventBridge event as delivered to targets.
 * @example { "version": "0", "id": "00000000-0000-0000-0000-000000000000", "detail-type": "GuardDuty Finding", "source": "aws.guardduty", "account": "111122223333", "time": "2026-01-01T00:00:00Z", "region": "us-east-1", "resources": [], "detail": {} }
 * @see https://docs.aws.amazon.com/eventbridge/latest/ref/overiew-event-structure.html
 */
export const EventBridgeEventSchema = z.looseObject({
  version: z.string().optional(),
  id: z.string(),
  'detail-type': z.string(),
  source: z.string(),
  account: z.string().optional(),
  time: z.string().optional(),
  region: z.string().optional(),
  resources: z.array(z.string()).optional(),
  detail: z.unknown(),
});
export type EventBridgeEvent = z.infer<typeof EventBridgeEventSchema>;

function parseJson(text: string, where: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new AdapterError('invalid', `${where}: body is not JSON`, { cause: e });
  }
}

/** The EventBridge event carried in an SQS record's body; `invalid` AdapterError when it is not one. */
export function eventBridgeEventFromSqs(record: SqsRecord): EventBridgeEvent {
  const parsed = EventBridgeEventSchema.safeParse(parseJson(record.body, `sqs:${record.messageId}`));
  if (!parsed.success) {
    throw new AdapterError(
      'invalid',
      `sqs:${record.messageId}: not an EventBridge event: ${z.prettifyError(parsed.error)}`,
    );
  }
  return parsed.data;
}

/**
 * The closeloop PipelineEvent carried in an SQS record (EventBridge `detail`), validated with the
 * model's own schema.
 *
 * @example
 * for (const record of event.Records) await stage.handle(pipelineEventFromSqs(record));
 */
export function pipelineEventFromSqs(record: SqsRecord): PipelineEvent {
  const envelope = eventBridgeEventFromSqs(record);
  const parsed = PipelineEventSchema.safeParse(envelope.detail);
  if (!parsed.success) {
    throw new AdapterError(
      'invalid',
      `sqs:${record.messageId}: detail of ${envelope['detail-type']} is not a closeloop event: ${z.prettifyError(parsed.error)}`,
    );
  }
  return parsed.data;
}
