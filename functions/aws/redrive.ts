/** Dead-letter redrive, invoked on demand: `{"queue": "ticket", "max": 100}` → moves ≤ max messages back. */

import { Logger } from '@aws-lambda-powertools/logger';
import { SQSClient } from '@aws-sdk/client-sqs';
import { parseQueueMap, type RedriveRequest, redrive } from '../../shared/adapters/bus/redrive.js';
import { createAwsPorts } from '../../shared/adapters/wiring/aws.js';
import { hubFunction, MetricUnit } from './middleware/hub-function.js';

const ports = createAwsPorts(process.env, { logger: new Logger({ serviceName: 'closeloop-redrive' }) });
const sqs = new SQSClient({ region: ports.env.AWS_REGION });

export const handler = hubFunction(ports, 'redrive', async (request: RedriveRequest, metrics) => {
  const result = await redrive(sqs, parseQueueMap(process.env.CLOSELOOP_QUEUES), request);
  metrics.addMetric('Redriven', MetricUnit.Count, result.moved);
  ports.log.info('redrive done', { ...result });
  return result;
});
