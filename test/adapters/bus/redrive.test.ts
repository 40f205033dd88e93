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
import { ConfigError } from '../../../shared/core/errors.js';

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

const HUB = 'https://sqs.us-east-1.amazonaws.com/111122223333';
const HUB_QUEUES = Object.fromEntries(
  ['ingest', 'ticket', 'remediate'].map((q) => [
    q,
    { queue: `${HUB}/closeloop-dev-${q}`, dlq: `${HUB}/closeloop-dev-${q}-dlq` },
  ]),
);
const RULE = 'arn:aws:events:us-east-1:111122223333:rule/closeloop-dev-GuardDutyRule-1A2B3C';

/** A message EventBridge dead-lettered: the event as body, why as attributes (EventBridge user guide, DLQs). */
function undelivered(receipt: string, event: object, targetArn: string): Message {
  const s = (v: string) => ({ DataType: 'String', StringValue: v });
  return {
    MessageId: receipt,
    ReceiptHandle: receipt,
    Body: JSON.stringify(event),
    MessageAttributes: {
      RULE_ARN: s(RULE),
      TARGET_ARN: s(targetArn),
      ERROR_CODE: s('SQS_PERMISSION_DENIED'),
      ERROR_MESSAGE: s('Access to the queue was denied'),
      EXHAUSTED_RETRY_CONDITION: s('MaximumRetryAttempts'),
      RETRY_ATTEMPTS: s('185'),
    },
  };
}

/** DLQs (by URL) holding `held`; records every message sent, with the queue it was sent to. */
function hub(held: Record<string, Message[]>) {
  const sent: Array<{ queue: string; body: string; attributes: unknown }> = [];
  sqs.on(ReceiveMessageCommand).callsFake(async (input: { QueueUrl?: string; MaxNumberOfMessages?: number }) => ({
    Messages: (held[input.QueueUrl ?? ''] ?? []).slice(0, input.MaxNumberOfMessages ?? 1),
  }));
  sqs
    .on(SendMessageBatchCommand)
    .callsFake(
      async (input: {
        QueueUrl?: string;
        Entries?: Array<{ Id?: string; MessageBody?: string; MessageAttributes?: unknown }>;
      }) => {
        const entries = input.Entries ?? [];
        for (const e of entries)
          sent.push({ queue: input.QueueUrl ?? '', body: e.MessageBody ?? '', attributes: e.MessageAttributes });
        return { Successful: entries.map((e) => ({ Id: e.Id, MessageId: 'x', MD5OfMessageBody: 'y' })), Failed: [] };
      },
    );
  sqs
    .on(DeleteMessageBatchCommand)
    .callsFake(async (input: { QueueUrl?: string; Entries?: Array<{ ReceiptHandle?: string }> }) => {
      const gone = new Set((input.Entries ?? []).map((e) => e.ReceiptHandle));
      const dlq = held[input.QueueUrl ?? ''] ?? [];
      for (let i = dlq.length - 1; i >= 0; i--) if (gone.has(dlq[i]?.ReceiptHandle)) dlq.splice(i, 1);
      return { Successful: (input.Entries ?? []).map((_, i) => ({ Id: String(i) })), Failed: [] };
    });
  return sent;
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
  it('sends an event EventBridge could not deliver back to the queue its target named, as EventBridge delivers it', async () => {
    // Prepare: a GuardDuty finding the ingest queue refused (a queue policy change), dead-lettered by its rule
    const finding = { source: 'aws.guardduty', 'detail-type': 'GuardDuty Finding', detail: { id: 'f-1' } };
    const dlq = HUB_QUEUES.ingest?.dlq ?? '';
    const held = { [dlq]: [undelivered('r1', finding, 'arn:aws:sqs:us-east-1:111122223333:closeloop-dev-ingest')] };
    const sent = hub(held);
    // Act
    const out = await redrive(new SQSClient({}), HUB_QUEUES, { queue: 'ingest', max: 10 });
    // Assess: the event itself, without EventBridge's delivery error (a later consumer failure must not show it)
    expect(out).toEqual({ queue: 'ingest', moved: 1, notDeleted: 0 });
    expect(sent).toEqual([{ queue: HUB_QUEUES.ingest?.queue, body: JSON.stringify(finding), attributes: undefined }]);
    expect(held[dlq]).toEqual([]);
  });

  it("sends a dead letter to the queue its target named when that is another of closeloop's queues", async () => {
    // Prepare: a case.decided the ticket rule could not deliver, found in the ingest DLQ
    const event = { source: 'closeloop', 'detail-type': 'case.decided', detail: { caseKey: 'k' } };
    const dlq = HUB_QUEUES.ingest?.dlq ?? '';
    const sent = hub({ [dlq]: [undelivered('r1', event, 'arn:aws:sqs:us-east-1:111122223333:closeloop-dev-ticket')] });
    // Act
    await redrive(new SQSClient({}), HUB_QUEUES, { queue: 'ingest', max: 10 });
    // Assess
    expect(sent.map((m) => m.queue)).toEqual([HUB_QUEUES.ticket?.queue]);
  });

  it('sends a spoke hand-over its API destination did not take back to the remediate queue, which dispatches it again', async () => {
    // Prepare
    const handOver = { source: 'closeloop.remediation', 'detail-type': 'Remediation Requested', detail: {} };
    const destination = 'arn:aws:events:us-east-1:111122223333:api-destination/closeloop-azure/0a1b2c3d';
    const dlq = HUB_QUEUES.remediate?.dlq ?? '';
    const sent = hub({ [dlq]: [undelivered('r1', handOver, destination)] });
    // Act
    await redrive(new SQSClient({}), HUB_QUEUES, { queue: 'remediate', max: 10 });
    // Assess
    expect(sent).toEqual([
      { queue: HUB_QUEUES.remediate?.queue, body: JSON.stringify(handOver), attributes: undefined },
    ]);
  });

  it('leaves a dead letter for a queue it does not know in the DLQ, moves the others and names that queue', async () => {
    // Prepare: one event for a queue outside CLOSELOOP_QUEUES beside one for ingest
    const unknown = 'arn:aws:sqs:us-east-1:111122223333:someone-elses-queue';
    const dlq = HUB_QUEUES.ingest?.dlq ?? '';
    const held = {
      [dlq]: [
        undelivered('r1', { id: 'a' }, unknown),
        undelivered('r2', { id: 'b' }, 'arn:aws:sqs:us-east-1:111122223333:closeloop-dev-ingest'),
      ],
    };
    const sent = hub(held);
    // Act
    const run = redrive(new SQSClient({}), HUB_QUEUES, { queue: 'ingest', max: 10 });
    // Assess: nothing guessed; the known one moved, the unknown one stays for a person
    await expect(run).rejects.toThrow(ConfigError);
    await expect(run).rejects.toThrow(unknown);
    expect(sent.map((m) => m.body)).toEqual([JSON.stringify({ id: 'b' })]);
    expect(held[dlq]?.map((m) => m.ReceiptHandle)).toEqual(['r1']);
  });
});
