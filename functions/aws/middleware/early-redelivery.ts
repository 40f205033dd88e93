/**
 * Early redelivery for the SQS-fed stage functions. A record that failed with a retryable error that says when
 * to try again (a schedule by delivery: an event whose case write has not landed yet, CaseNotWrittenError) is
 * made visible again after that wait, ChangeMessageVisibility on its receipt handle, before `sqsFunction`
 * reports it as a batch item failure. Otherwise SQS delivers it again only after the queue's visibility
 * timeout: 30 minutes on the ticket, remediate and verify queues, for a write that usually lands within a
 * second. Lambda leaves a reported failure's message in the queue as it is, so the shorter timeout holds (the
 * pattern AWS's own Lambda messaging library uses for partial batch failures).
 *
 * A call that fails changes nothing else: the record is still reported, and waits the queue's timeout.
 *
 * Not on the ingest (it writes cases, it never waits for one), whose cold start is at its budget.
 * @see https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html#services-sqs-batchfailurereporting
 * @see https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_ChangeMessageVisibility.html
 */
import type { SQSClient } from '@aws-sdk/client-sqs';
import type { SqsRecord } from '../../../shared/adapters/bus/sqs.js';
import type { AwsPorts } from '../../../shared/adapters/wiring/aws.js';
import { errorMessage, scheduledRetryAfterSeconds } from '../../../shared/core/errors.js';
import { type Metrics, MetricUnit } from './hub-function.js';

export type RecordHandler = (record: SqsRecord, metrics: Metrics) => Promise<void>;

/** How many times SQS has delivered the record, this delivery included (1 when the attribute is missing). */
export function receiveCountOf(record: SqsRecord): number {
  const n = Number(record.attributes?.ApproximateReceiveCount);
  return Number.isInteger(n) && n >= 1 ? n : 1;
}

/**
 * Wraps `handleRecord` so that a record whose error asks for a wait (by its receive count) is delivered again
 * after that wait; the error is rethrown as it came.
 *
 * @example
 * sqsFunction(ports, 'verify', redeliverEarly(ports, 'verify', async (record, metrics) => { … }));
 */
export function redeliverEarly(ports: AwsPorts, name: string, handleRecord: RecordHandler): RecordHandler {
  // One client per container, built (and the SDK client imported) on the first record that needs it.
  let sqs: Promise<SQSClient> | undefined;
  const client = () =>
    (sqs ??= import('../../../shared/adapters/wiring/aws-sqs.js')
      .then(({ createAwsSqsClient }) => createAwsSqsClient(ports))
      .catch((e: unknown) => {
        sqs = undefined; // a failed import is tried again on the next record
        throw e;
      }));

  async function shortenVisibility(record: SqsRecord, seconds: number, receiveCount: number, metrics: Metrics) {
    // Which message and how long; never its body or its receipt handle.
    const at = { messageId: record.messageId, queue: record.eventSourceARN, receiveCount, visibilityTimeout: seconds };
    try {
      const { eventSourceARN: queueArn, receiptHandle } = record;
      if (!queueArn || !receiptHandle) throw new Error('the record names no queue or receipt handle');
      const [{ redeliverAfter }, sqsClient] = await Promise.all([
        import('../../../shared/adapters/bus/sqs-visibility.js'),
        client(),
      ]);
      await redeliverAfter(sqsClient, { queueArn, receiptHandle }, seconds);
      metrics.addMetric('RecordsRedeliveredEarly', MetricUnit.Count, 1);
      ports.log.info(`${name}: record to be delivered again in ${seconds} s`, at);
    } catch (e) {
      ports.log.warn(`${name}: visibility not shortened (delivered again after the queue's visibility timeout)`, {
        ...at,
        error: errorMessage(e),
      });
    }
  }

  return async function handleRecordRedeliveringEarly(record, metrics) {
    try {
      await handleRecord(record, metrics);
    } catch (e) {
      const receiveCount = receiveCountOf(record);
      const seconds = scheduledRetryAfterSeconds(e, receiveCount);
      if (seconds !== undefined) await shortenVisibility(record, seconds, receiveCount, metrics);
      throw e;
    }
  };
}
