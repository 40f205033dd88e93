/**
 * Dead-letter redrive: moves messages from a queue's DLQ back to the queue, at most `max` per run, each
 * sent before it is deleted (a crash in between duplicates a message, which the idempotent stages
 * absorb, and never loses one). A DLQ holds two kinds: messages its queue's consumer failed five times, and
 * events EventBridge could not deliver to a rule target (the event as body, the reason as attributes).
 */
import {
  DeleteMessageBatchCommand,
  type Message,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import * as z from 'zod';
import { AdapterError, ConfigError } from '../../core/errors.js';
import { batchesOf } from '../../core/util/batches.js';
import { parseQueueArn } from './sqs-visibility.js';

/** `CLOSELOOP_QUEUES`: queue name → { queue URL, DLQ URL } (serverless.yml builds it with Fn::Sub). */
export const QueueMapSchema = z.record(z.string(), z.object({ queue: z.url(), dlq: z.url() }));
export type QueueMap = z.infer<typeof QueueMapSchema>;

/** The redrive request (the function's invocation payload). */
export const RedriveRequestSchema = z.strictObject({
  queue: z.string().min(1),
  /** Upper bound of messages moved in this run. */
  max: z.number().int().min(1).max(10_000).default(100),
});
export type RedriveRequest = z.input<typeof RedriveRequestSchema>;

export interface RedriveResult {
  queue: string;
  moved: number;
  /** Messages sent back but not deleted from the DLQ (they will be moved again: a duplicate, not a loss). */
  notDeleted: number;
}

export function parseQueueMap(json: string | undefined): QueueMap {
  try {
    return QueueMapSchema.parse(JSON.parse(json ?? ''));
  } catch (e) {
    throw new ConfigError('CLOSELOOP_QUEUES must be JSON {name: {queue, dlq}}', { cause: e });
  }
}

/** The batch payload SQS accepts at most (the long-standing 256 KiB; it is larger today). */
const BATCH_BYTES = 256 * 1024;

/** What SQS counts of a message: its body and its attributes' names, types and values. */
function messageBytes(m: {
  Body?: string | undefined;
  MessageAttributes?: Record<string, unknown> | undefined;
}): number {
  return Buffer.byteLength(m.Body ?? '', 'utf8') + Buffer.byteLength(JSON.stringify(m.MessageAttributes ?? {}), 'utf8');
}

/**
 * What EventBridge adds to an event it dead-letters. Not sent back: the redriven message is the delivery
 * EventBridge could not make, and if its consumer fails it later, the DLQ must not show a stale delivery error.
 * @see https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rule-dlq.html
 */
const EVENTBRIDGE_ATTRIBUTES = new Set([
  'RULE_ARN',
  'TARGET_ARN',
  'ERROR_CODE',
  'ERROR_MESSAGE',
  'EXHAUSTED_RETRY_CONDITION',
  'RETRY_ATTEMPTS',
]);

/**
 * The queue a dead letter goes back to: the SQS queue EventBridge failed to deliver it to (its TARGET_ARN),
 * which is the DLQ's own queue in serverless.yml, or else the DLQ's own queue (a consumer's failure; a spoke
 * hand-over whose target was an API destination, which remediate dispatches again). Undefined: an SQS
 * target this redrive does not know, where nothing may guess.
 */
function destination(m: Message, own: string, queues: QueueMap): string | undefined {
  const arn = parseQueueArn(m.MessageAttributes?.TARGET_ARN?.StringValue ?? '');
  if (!arn) return own;
  const path = `/${arn.account}/${arn.name}`;
  return Object.values(queues).find((q) => new URL(q.queue).pathname === path)?.queue;
}

function withoutEventBridgeAttributes(m: Message): Message['MessageAttributes'] {
  if (!m.MessageAttributes) return undefined;
  const kept = Object.entries(m.MessageAttributes).filter(([name]) => !EVENTBRIDGE_ATTRIBUTES.has(name));
  return kept.length > 0 ? Object.fromEntries(kept) : undefined;
}

/**
 * @example
 * await redrive(new SQSClient({}), parseQueueMap(process.env.CLOSELOOP_QUEUES), { queue: 'ticket', max: 50 });
 */
export async function redrive(client: SQSClient, queues: QueueMap, request: RedriveRequest): Promise<RedriveResult> {
  const { queue, max } = RedriveRequestSchema.parse(request);
  const target = queues[queue];
  if (!target) throw new ConfigError(`unknown queue ${queue}; known: ${Object.keys(queues).sort().join(', ')}`);
  let moved = 0;
  let notDeleted = 0;
  while (moved < max) {
    const received = await client.send(
      new ReceiveMessageCommand({
        QueueUrl: target.dlq,
        MaxNumberOfMessages: Math.min(10, max - moved),
        WaitTimeSeconds: 1,
        MessageAttributeNames: ['All'],
      }),
    );
    const messages = (received.Messages ?? []).filter((m) => m.MessageId && m.Body !== undefined && m.ReceiptHandle);
    if (messages.length === 0) break;
    const ok = new Set<string>();
    const unknownTargets = new Set<string>();
    const byQueue = new Map<string, Array<{ i: number; body: string; attributes: Message['MessageAttributes'] }>>();
    messages.forEach((m, i) => {
      const url = destination(m, target.queue, queues);
      if (url === undefined) {
        unknownTargets.add(m.MessageAttributes?.TARGET_ARN?.StringValue ?? '');
        return;
      }
      const entries = byQueue.get(url) ?? [];
      entries.push({ i, body: m.Body ?? '', attributes: withoutEventBridgeAttributes(m) });
      byQueue.set(url, entries);
    });
    // SQS caps a whole batch's payload (256 KiB, as it long did): ten large spoke documents in one
    // SendMessageBatch were refused as a whole (BatchRequestTooLong), and the dead-letter queue never drained.
    for (const [url, entries] of byQueue) {
      const size = (e: (typeof entries)[number]) => messageBytes({ Body: e.body, MessageAttributes: e.attributes });
      for (const part of batchesOf(entries, size, { maxItems: 10, maxBytes: BATCH_BYTES })) {
        const sent = await client.send(
          new SendMessageBatchCommand({
            QueueUrl: url,
            Entries: part.map((e) => ({
              Id: String(e.i),
              MessageBody: e.body,
              ...(e.attributes ? { MessageAttributes: e.attributes } : {}),
            })),
          }),
        );
        for (const s of sent.Successful ?? []) if (s.Id) ok.add(s.Id);
      }
    }
    // Only what reached the queue leaves the DLQ; the rest stays for the next run.
    const toDelete = messages.flatMap((m, i) =>
      ok.has(String(i)) ? [{ Id: String(i), ReceiptHandle: m.ReceiptHandle ?? '' }] : [],
    );
    if (toDelete.length > 0) {
      const deleted = await client.send(new DeleteMessageBatchCommand({ QueueUrl: target.dlq, Entries: toDelete }));
      notDeleted += deleted.Failed?.length ?? 0;
    }
    moved += toDelete.length;
    if (unknownTargets.size > 0) {
      throw new ConfigError(
        `redrive ${queue}: dead letters for ${[...unknownTargets].sort().join(', ')}, which CLOSELOOP_QUEUES does not name, stay in the DLQ (${moved} moved)`,
      );
    }
    if (toDelete.length < messages.length) {
      throw new AdapterError(
        'transient',
        `redrive ${queue}: ${messages.length - toDelete.length} messages could not be sent back (${moved} moved)`,
      );
    }
  }
  return { queue, moved, notDeleted };
}
