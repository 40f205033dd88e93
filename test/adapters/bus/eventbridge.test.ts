import { EventBridgeClient, EventBridgeServiceException, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { type AwsClientStub, mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { chunkEntries, EventBridgeBus, putEvents } from '../../../shared/adapters/bus/eventbridge.js';
import { isDenied, isInvalid, isThrottled, isTransient } from '../../../shared/core/errors.js';
import type { PipelineEvent } from '../../../shared/core/model/events.js';

const decided = (n: number): PipelineEvent => ({
  type: 'case.decided',
  id: `decided-${n}`,
  caseKey: `aws|arn:aws:s3:::bucket-${n}|S3.8`,
  at: '2026-01-02T03:04:05.000Z',
  isNewCase: true,
  recurrence: false,
  statusChanged: true,
});

describe('EventBridgeBus', () => {
  let eb: AwsClientStub<EventBridgeClient>;
  beforeEach(() => {
    eb = mockClient(EventBridgeClient);
  });
  afterEach(() => {
    eb.restore();
  });

  it('puts each event on the closeloop bus with source closeloop and detail-type = event type', async () => {
    // Prepare
    eb.on(PutEventsCommand).resolves({ FailedEntryCount: 0, Entries: [{ EventId: 'e-1' }] });
    const bus = new EventBridgeBus(new EventBridgeClient({ region: 'us-east-1' }), 'closeloop-dev');
    // Act
    await bus.publish([decided(1)]);
    // Assess
    expect(eb).toHaveReceivedCommandExactlyOnceWith(PutEventsCommand, {
      Entries: [
        {
          EventBusName: 'closeloop-dev',
          Source: 'closeloop',
          DetailType: 'case.decided',
          Detail: JSON.stringify(decided(1)),
          Time: new Date('2026-01-02T03:04:05.000Z'),
        },
      ],
    });
  });

  it('sends at most 10 entries per call when publishing 23 events', async () => {
    // Prepare
    eb.on(PutEventsCommand).resolves({ FailedEntryCount: 0 });
    const bus = new EventBridgeBus(new EventBridgeClient({ region: 'us-east-1' }), 'closeloop-dev');
    // Act
    await bus.publish(Array.from({ length: 23 }, (_, i) => decided(i)));
    // Assess
    const sizes = eb.commandCalls(PutEventsCommand).map((c) => c.args[0].input.Entries?.length);
    expect(sizes).toEqual([10, 10, 3]);
  });

  it('retries only the failed entries when FailedEntryCount is set', async () => {
    // Prepare
    eb.on(PutEventsCommand)
      .resolvesOnce({
        FailedEntryCount: 1,
        Entries: [{ EventId: 'ok' }, { ErrorCode: 'ThrottlingException', ErrorMessage: 'slow down' }],
      })
      .resolves({ FailedEntryCount: 0, Entries: [{ EventId: 'ok-2' }] });
    const bus = new EventBridgeBus(new EventBridgeClient({ region: 'us-east-1' }), 'closeloop-dev', { backoffMs: 1 });
    // Act
    await bus.publish([decided(1), decided(2)]);
    // Assess
    expect(eb).toHaveReceivedCommandTimes(PutEventsCommand, 2);
    const retried = eb.commandCalls(PutEventsCommand)[1]?.args[0].input.Entries ?? [];
    expect(retried.map((e) => e.Detail)).toEqual([JSON.stringify(decided(2))]);
  });

  it('fails with a transient error naming the code when entries keep failing', async () => {
    // Prepare
    eb.on(PutEventsCommand).resolves({ FailedEntryCount: 1, Entries: [{ ErrorCode: 'InternalFailure' }] });
    const bus = new EventBridgeBus(new EventBridgeClient({ region: 'us-east-1' }), 'closeloop-dev', {
      backoffMs: 1,
      maxAttempts: 3,
    });
    // Act
    const error = await bus.publish([decided(1)]).catch((e: unknown) => e);
    // Assess
    expect(isTransient(error)).toBe(true);
    expect(String(error)).toContain('InternalFailure');
    expect(eb).toHaveReceivedCommandTimes(PutEventsCommand, 3);
  });

  it('fails as denied after one call, without retrying, when PutEvents itself is refused', async () => {
    // Prepare: the function's role may not put on the bus (a policy edit, a bus re-created elsewhere).
    eb.on(PutEventsCommand).rejects(
      new EventBridgeServiceException({
        name: 'AccessDeniedException',
        $fault: 'client',
        $metadata: { httpStatusCode: 400, requestId: 'req-1' },
        message: 'not authorized to perform: events:PutEvents',
      }),
    );
    const bus = new EventBridgeBus(new EventBridgeClient({ region: 'us-east-1' }), 'closeloop-dev', { backoffMs: 1 });
    // Act
    const error = await bus.publish([decided(1)]).catch((e: unknown) => e);
    // Assess: not retryable, so the message is not sent round the queue as if the next try could go through.
    expect(isDenied(error)).toBe(true);
    expect(String(error)).toContain('AccessDeniedException');
    expect(eb).toHaveReceivedCommandTimes(PutEventsCommand, 1);
  });

  it.each([
    ['ThrottlingException', 429, isThrottled],
    ['InternalException', 500, isTransient],
  ])('keeps a PutEvents call that failed with %s retryable', async (name, status, predicate) => {
    // Prepare
    eb.on(PutEventsCommand).rejects(
      new EventBridgeServiceException({ name, $fault: 'server', $metadata: { httpStatusCode: status }, message: name }),
    );
    const bus = new EventBridgeBus(new EventBridgeClient({ region: 'us-east-1' }), 'closeloop-dev', { backoffMs: 1 });
    // Act
    const error = await bus.publish([decided(1)]).catch((e: unknown) => e);
    // Assess
    expect(predicate(error)).toBe(true);
  });

  it('keeps a PutEvents call that got no answer (a socket error) transient', async () => {
    // Prepare
    eb.on(PutEventsCommand).rejects(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }));
    const bus = new EventBridgeBus(new EventBridgeClient({ region: 'us-east-1' }), 'closeloop-dev', { backoffMs: 1 });
    // Act
    const error = await bus.publish([decided(1)]).catch((e: unknown) => e);
    // Assess
    expect(isTransient(error)).toBe(true);
  });

  it('retries only the throttled entry and fails as denied, naming the codes, when others are refused', async () => {
    // Prepare: entry 1 throttled, entry 2 denied (the role may not use this detail-type), entry 3 malformed.
    eb.on(PutEventsCommand)
      .resolvesOnce({
        FailedEntryCount: 3,
        Entries: [
          { ErrorCode: 'ThrottlingException' },
          { ErrorCode: 'AccessDeniedException' },
          { ErrorCode: 'ValidationException' },
        ],
      })
      .resolves({ FailedEntryCount: 0, Entries: [{ EventId: 'ok' }] });
    const bus = new EventBridgeBus(new EventBridgeClient({ region: 'us-east-1' }), 'closeloop-dev', { backoffMs: 1 });
    // Act
    const error = await bus.publish([decided(1), decided(2), decided(3)]).catch((e: unknown) => e);
    // Assess: the refused entries are not sent again (they would fail the same way); the throttled one is.
    expect(isDenied(error)).toBe(true);
    expect(String(error)).toContain('AccessDeniedException');
    expect(String(error)).toContain('ValidationException');
    expect(eb).toHaveReceivedCommandTimes(PutEventsCommand, 2);
    const retried = eb.commandCalls(PutEventsCommand)[1]?.args[0].input.Entries ?? [];
    expect(retried.map((e) => e.Detail)).toEqual([JSON.stringify(decided(1))]);
  });

  it('fails as invalid after one call when every failed entry is malformed', async () => {
    // Prepare
    eb.on(PutEventsCommand).resolves({ FailedEntryCount: 1, Entries: [{ ErrorCode: 'MalformedDetail' }] });
    const bus = new EventBridgeBus(new EventBridgeClient({ region: 'us-east-1' }), 'closeloop-dev', { backoffMs: 1 });
    // Act
    const error = await bus.publish([decided(1)]).catch((e: unknown) => e);
    // Assess
    expect(isInvalid(error)).toBe(true);
    expect(eb).toHaveReceivedCommandTimes(PutEventsCommand, 1);
  });

  it('makes no call when there is nothing to publish', async () => {
    // Act
    await new EventBridgeBus(new EventBridgeClient({ region: 'us-east-1' }), 'b').publish([]);
    // Assess
    expect(eb).toHaveReceivedCommandTimes(PutEventsCommand, 0);
  });
});

describe('putEvents sizing', () => {
  it('splits by request size when entries are large', () => {
    // Prepare: only two 100 KB entries fit in one 256 KB request.
    const big = { Source: 's', DetailType: 't', Detail: 'x'.repeat(100 * 1024) };
    // Act
    const chunks = chunkEntries([big, big, big]);
    // Assess
    expect(chunks.map((c) => c.length)).toEqual([2, 1]);
  });

  it('rejects an entry over 256 KB as invalid when it can never be sent', async () => {
    // Prepare
    const huge = { Source: 's', DetailType: 't', Detail: 'x'.repeat(257 * 1024) };
    // Act
    const error = await putEvents(new EventBridgeClient({ region: 'us-east-1' }), [huge]).catch((e: unknown) => e);
    // Assess
    expect(isInvalid(error)).toBe(true);
  });
});
