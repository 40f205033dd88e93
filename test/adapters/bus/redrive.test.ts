/** The dead-letter redrive against aws-sdk-client-mock standing in for SQS (no local SQS server here). */
import {
  DeleteMessageBatchCommand,
  type Message,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { redrive } from '../../../shared/adapters/bus/redrive.js';

const sqs = mockClient(SQSClient);
const QUEUES = { ingest: { queue: 'https://sqs.example/ingest', dlq: 'https://sqs.example/ingest-dlq' } };

/** A dead-letter queue holding `bodies`; SendMessageBatch refuses a batch over 256 KiB as SQS does. */
function deadLetters(bodies: string[]) {
  const dlq: Message[] = bodies.map((b, i) => ({ MessageId: `m${i}`, ReceiptHandle: `r${i}`, Body: b }));
  const queue: string[] = [];
  sqs.on(ReceiveMessageCommand).callsFake(async (input: { MaxNumberOfMessages?: number }) => ({
    Messages: dlq.slice(0, input.MaxNumberOfMessages ?? 1),
  }));
  sqs
    .on(SendMessageBatchCommand)
    .callsFake(async (input: { Entries?: Array<{ Id?: string; MessageBody?: string }> }) => {
      const entries = input.Entries ?? [];
      const bytes = entries.reduce((n, e) => n + Buffer.byteLength(e.MessageBody ?? ''), 0);
      if (bytes > 256 * 1024)
        throw Object.assign(new Error('Batch requests cannot be longer than 262144 bytes'), {
          name: 'BatchRequestTooLong',
          $metadata: { httpStatusCode: 400 },
        });
      queue.push(...entries.map((e) => e.MessageBody ?? ''));
      return { Successful: entries.map((e) => ({ Id: e.Id, MessageId: 'x', MD5OfMessageBody: 'y' })), Failed: [] };
    });
  sqs.on(DeleteMessageBatchCommand).callsFake(async (input: { Entries?: Array<{ ReceiptHandle?: string }> }) => {
    const gone = new Set((input.Entries ?? []).map((e) => e.ReceiptHandle));
    for (let i = dlq.length - 1; i >= 0; i--) if (gone.has(dlq[i]?.ReceiptHandle)) dlq.splice(i, 1);
    return { Successful: (input.Entries ?? []).map((_, i) => ({ Id: String(i) })), Failed: [] };
  });
  return { dlq, queue };
}

describe('redrive', () => {
  beforeEach(() => sqs.reset());
  afterAll(() => sqs.restore());

  it('moves large dead letters back in batches SQS accepts, so the dead-letter queue drains', async () => {
    // Prepare: ten 100 KB spoke documents (one batch of ten would be ~1 MB)
    const bodies = Array.from({ length: 10 }, (_, i) => `${i}`.padEnd(100 * 1024, 'x'));
    const state = deadLetters(bodies);
    // Act
    const out = await redrive(new SQSClient({}), QUEUES, { queue: 'ingest', max: 10 });
    // Assess
    expect(out).toEqual({ queue: 'ingest', moved: 10, notDeleted: 0 });
    expect(state.queue).toEqual(bodies);
    expect(state.dlq).toEqual([]);
    expect(sqs.commandCalls(SendMessageBatchCommand).length).toBeGreaterThan(1);
  });
});
