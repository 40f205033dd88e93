/**
 * Hub ingest: the ingest queue receives GuardDuty and Security Hub events (EventBridge rules on the
 * default bus) and the spokes' forwarded documents (rule on the closeloop bus); each is normalized,
 * enriched, stored and decided, and `case.decided` is published on the closeloop bus.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { hubIngestDoc } from '../../shared/adapters/bus/spoke.js';
import { eventBridgeEventFromSqs } from '../../shared/adapters/bus/sqs.js';
import { createAwsPorts } from '../../shared/adapters/wiring/aws.js';
import { createAwsIngest } from '../../shared/adapters/wiring/aws-ingest.js';
import { MetricUnit, sqsFunction } from './middleware/hub-function.js';

const ports = createAwsPorts(process.env, { logger: new Logger({ serviceName: 'closeloop-ingest' }) });
let pipeline: ReturnType<typeof createAwsIngest> | undefined;

export const handler = sqsFunction(ports, 'ingest', async (record, metrics) => {
  pipeline ??= createAwsIngest(ports);
  const doc = hubIngestDoc(eventBridgeEventFromSqs(record));
  const input = `sqs:${record.messageId}:${doc.input}`;
  if ('refused' in doc) {
    // Its sender is not who it claims to be: kept as a dead letter, never read (retrying cannot fix it).
    await (await pipeline).deadLetter([{ ...doc.refused, input }], ports.clock.now().toISOString());
    metrics.addMetric('Rejected', MetricUnit.Count, 1);
    ports.log.warn('refused input', { input, path: doc.refused.path, reason: doc.refused.reason });
    return;
  }
  const { stats, rejected } = await (await pipeline).ingest([
    {
      input,
      value: doc.value,
      channel: doc.channel,
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
