/**
 * Hub ingest: the ingest queue receives GuardDuty and Security Hub events (EventBridge rules on the
 * default bus) and the spokes' forwarded documents (rule on the closeloop bus); each is normalized,
 * enriched, stored and decided, and `case.decided` is published on the closeloop bus. On its hourly
 * schedule it sweeps the cases against the exceptions as they are now (an expired or revoked exception
 * re-opens its cases, a new one suppresses them) and publishes what changed.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { hubIngestDoc } from '../../shared/adapters/bus/spoke.js';
import { eventBridgeEventFromSqs } from '../../shared/adapters/bus/sqs.js';
import { createAwsPorts } from '../../shared/adapters/wiring/aws.js';
import { createAwsIngest } from '../../shared/adapters/wiring/aws-ingest.js';
import { errorMessage, isInvalid } from '../../shared/core/errors.js';
import type { Rejected } from '../../shared/core/model/finding.js';
import { hubFunction, type Metrics, MetricUnit, queueOrSchedule, sqsFunction } from './middleware/hub-function.js';

const ports = createAwsPorts(process.env, { logger: new Logger({ serviceName: 'closeloop-ingest' }) });
let pipeline: ReturnType<typeof createAwsIngest> | undefined;
const ingestPipeline = () =>
  (pipeline ??= createAwsIngest(ports).catch((e: unknown) => {
    pipeline = undefined; // a failed build (config, store) is retried on the next record, not kept
    throw e;
  }));

/**
 * A message retrying cannot fix, kept in the store as a dead letter with its reason and what was received
 * (`raw`: acknowledged, the message is deleted from the queue), not failed to SQS.
 */
async function keep(rejected: Rejected, raw: unknown, metrics: Metrics, what: string): Promise<void> {
  await (await ingestPipeline()).deadLetter([rejected], ports.clock.now().toISOString(), raw);
  metrics.addMetric('Rejected', MetricUnit.Count, 1);
  ports.log.warn(what, { input: rejected.input, path: rejected.path, reason: rejected.reason });
}

/** The body as received (shared/adapters/bus/received-body.ts), loaded with the first message that needs it: not on the hot path. */
const receivedBody = async (body: string, parsed?: unknown): Promise<unknown> =>
  (await import('../../shared/adapters/bus/received-body.js')).receivedBody(body, parsed);

const onQueue = sqsFunction(ports, 'ingest', async (record, metrics) => {
  let event: ReturnType<typeof eventBridgeEventFromSqs>;
  let doc: ReturnType<typeof hubIngestDoc>;
  try {
    event = eventBridgeEventFromSqs(record);
    doc = hubIngestDoc(event);
  } catch (e) {
    if (!isInvalid(e)) throw e;
    // Not an EventBridge event, or a spoke detail that does not parse: five retries and an SQS DLQ would
    // keep it without the reason.
    const reason = errorMessage(e);
    return keep(
      { input: `sqs:${record.messageId}`, source: 'unknown', path: '$', reason },
      await receivedBody(record.body),
      metrics,
      'unreadable input',
    );
  }
  const input = `sqs:${record.messageId}:${doc.input}`;
  // Its sender is not who it claims to be: never read.
  if ('refused' in doc)
    return keep({ ...doc.refused, input }, await receivedBody(record.body, event), metrics, 'refused input');
  const { stats, rejected } = await (await ingestPipeline()).ingest([
    {
      input,
      value: doc.value,
      channel: doc.channel,
      // The whole event, for the dead letters of what it is rejected for (at most EventBridge's 256 KB: the
      // queue takes messages from the hub's rules only).
      raw: event,
      // It lies inside the body: a short body holds no string of 1 MiB (normalize walks its nesting only).
      textChars: record.body.length,
      // A spoke's live tags of its cloud's resources (the hub cannot read them).
      ...(doc.liveTags ? { liveTags: doc.liveTags } : {}),
    },
  ]);
  metrics.addMetric('Findings', MetricUnit.Count, stats.findings);
  metrics.addMetric('NewCases', MetricUnit.Count, stats.newCases);
  metrics.addMetric('Rejected', MetricUnit.Count, stats.rejected);
  // A rejection is data (dead-lettered in the store by ingest), not a failed message: retrying cannot fix it.
  for (const r of rejected)
    ports.log.warn('rejected input', { input: r.input, source: r.source, path: r.path, reason: r.reason });
});

/**
 * The sweep re-evaluates no case later than this before the function's timeout (30 s): room for the last
 * group's publish (PutEvents retried with backoff), the cursor write and the metrics flush. The cases it did
 * not reach come first in the next run.
 */
export const EXCEPTION_SWEEP_MARGIN_MS = 10_000;

/** The exception sweep (it publishes the events of the cases it changes). */
const onSchedule = hubFunction(ports, 'exception-sweep', async (_event: unknown, metrics, context) => {
  // Taken before the pipeline is built: a cold start's imports count against the timeout too.
  const until = ports.clock.now().getTime() + context.getRemainingTimeInMillis() - EXCEPTION_SWEEP_MARGIN_MS;
  const counts = await (await ingestPipeline()).sweepExceptions({ until });
  metrics.addMetric('ExceptionSweepReopened', MetricUnit.Count, counts.reopened);
  metrics.addMetric('ExceptionSweepSuppressed', MetricUnit.Count, counts.suppressed);
  metrics.addMetric('ExceptionSweepRepublished', MetricUnit.Count, counts.republished);
  if (counts.stopped)
    ports.log.info('exception sweep: time budget spent; the next run goes on from the last case reached', {
      ...counts,
    });
  return counts;
});

/** An EventBridge schedule invokes with a `Scheduled Event`; the ingest queue with `Records`. */
export const handler = queueOrSchedule(onQueue, onSchedule);
