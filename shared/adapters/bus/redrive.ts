/**
 * Dead-letter redrive: moves messages from a queue's DLQ back to the queue, at most `max` per run, each
 * sent before it is deleted (a crash in between duplicates a message, which the idempotent stages
 * absorb, and never loses one).
 */
import {
  DeleteMessageBatchCommand,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import * as z from 'zod';
import { AdapterError, ConfigError } from '../../core/errors.js';
import { batchesOf } from '../../core/util/batches.js';

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
    // SQS caps a whole batch's payload (256 KiB, as it long did): ten large spoke documents in one
    // SendMessageBatch were refused as a whole (BatchRequestTooLong), and the dead-letter queue never drained.
    const ok = new Set<string>();
    const numbered = messages.map((m, i) => ({ m, i }));
    for (const part of batchesOf(numbered, ({ m }) => messageBytes(m), { maxItems: 10, maxBytes: BATCH_BYTES })) {
      const sent = await client.send(
        new SendMessageBatchCommand({
          QueueUrl: target.queue,
          Entries: part.map(({ m, i }) => ({
            Id: String(i),
            MessageBody: m.Body ?? '',
            ...(m.MessageAttributes ? { MessageAttributes: m.MessageAttributes } : {}),
          })),
        }),
      );
      for (const s of sent.Successful ?? []) if (s.Id) ok.add(s.Id);
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
    if (toDelete.length < messages.length) {
      throw new AdapterError(
        'transient',
        `redrive ${queue}: ${messages.length - toDelete.length} messages could not be sent back (${moved} moved)`,
      );
    }
  }
  return { queue, moved, notDeleted };
}
