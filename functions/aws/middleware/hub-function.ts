/**
 * The one shape of a hub function: middy with Powertools' logger context and metrics, and SQS partial
 * batch failure so one bad message does not fail its batch (it is retried alone, then dead-lettered).
 * @see https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html#services-sqs-batchfailurereporting
 */
import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import middy from '@middy/core';
import { type SqsRecord, SqsRecordSchema } from '../../../shared/adapters/bus/sqs.js';
import type { AwsPorts } from '../../../shared/adapters/wiring/aws.js';
import { errorMessage, isRetryable, kindOf } from '../../../shared/core/errors.js';

export type { Metrics };
export { MetricUnit };

/** Lambda's context, as far as the middlewares read it. */
export interface LambdaContext {
  functionName: string;
  awsRequestId: string;
  /** Time left before Lambda stops the invocation (a sweep's budget). */
  getRemainingTimeInMillis(): number;
}

/** Wraps a handler with the logger context and metrics flush. */
export function hubFunction<E, R>(
  ports: AwsPorts,
  name: string,
  handler: (event: E, metrics: Metrics, context: LambdaContext) => Promise<R>,
) {
  const metrics = new Metrics({ namespace: 'closeloop', serviceName: `closeloop-${name}` });
  return middy<E, R>()
    .use(injectLambdaContext(ports.logger))
    .use(logMetrics(metrics))
    .handler((event, context) => handler(event, metrics, context));
}

/**
 * An SQS-fed hub function: `handleRecord` runs per record; failures are reported per item
 * (`batchItemFailures`) instead of failing the batch. Needs `functionResponseType: ReportBatchItemFailures`
 * on the event source mapping (serverless.yml sets it on every queue).
 */
export function sqsFunction(
  ports: AwsPorts,
  name: string,
  handleRecord: (record: SqsRecord, metrics: Metrics) => Promise<void>,
) {
  return hubFunction(ports, name, async (event: { Records: unknown[] }, metrics) => {
    // A fresh processor per invocation: it keeps per-batch state.
    const processor = new BatchProcessor(EventType.SQS);
    let retryable = 0;
    const response = await processPartialResponse(
      event,
      async (raw: unknown) => {
        try {
          await handleRecord(SqsRecordSchema.parse(raw), metrics);
        } catch (e) {
          // Why, per record (the processor keeps the error to itself): the message id, the kind and the
          // message; never the body, which may carry a spoke's document. Retryable: a passing condition
          // (a throttle, a case whose write has not landed yet), the redelivery after the visibility
          // timeout is expected to go through.
          const messageId = typeof raw === 'object' && raw !== null && 'messageId' in raw ? raw.messageId : undefined;
          const again = isRetryable(e);
          if (again) retryable++;
          ports.log.warn(`${name}: record failed${again ? ' (retryable: delivered again later)' : ''}`, {
            messageId,
            kind: kindOf(e) ?? 'unexpected',
            retryable: again,
            error: errorMessage(e),
          });
          throw e;
        }
      },
      processor,
      { throwOnFullBatchFailure: false },
    );
    const failed = response.batchItemFailures.length;
    metrics.addMetric('RecordsFailed', MetricUnit.Count, failed);
    metrics.addMetric('RecordsRetryable', MetricUnit.Count, retryable);
    metrics.addMetric('RecordsProcessed', MetricUnit.Count, event.Records.length - failed);
    if (failed > 0) ports.log.warn(`${name}: ${failed} of ${event.Records.length} records failed`);
    return response;
  });
}

/**
 * One handler for a function fed by a queue and a schedule: an SQS batch carries `Records`, an EventBridge
 * schedule a `Scheduled Event`.
 */
export function queueOrSchedule<Q, S>(
  onQueue: (event: { Records: unknown[] }, context: LambdaContext) => Promise<Q>,
  onSchedule: (event: unknown, context: LambdaContext) => Promise<S>,
) {
  function handler(event: { Records: unknown[] }, context: LambdaContext): Promise<Q>;
  function handler(event: object, context: LambdaContext): Promise<Q | S>;
  function handler(event: { Records?: unknown[] }, context: LambdaContext): Promise<Q | S> {
    return Array.isArray(event.Records) ? onQueue({ Records: event.Records }, context) : onSchedule(event, context);
  }
  return handler;
}
