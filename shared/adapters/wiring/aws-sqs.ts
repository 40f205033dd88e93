/**
 * The hub's SQS client, beside the wiring of shared/adapters/wiring/aws.ts and not in it: every function
 * loads that module at cold start, and only a record that failed and says when to try again needs this one
 * (functions/aws/middleware/early-redelivery.ts imports it then). A dynamic import of the SDK client from
 * aws.ts would change how every bundle is split, the ingest's cold start included (at its budget).
 */
import { SQSClient } from '@aws-sdk/client-sqs';
import type { AwsPorts } from './aws.js';

/**
 * An SQS client in the function's region (a Lambda event source reads a queue of its own region).
 *
 * @example const sqs = createAwsSqsClient(ports);
 */
export function createAwsSqsClient(ports: Pick<AwsPorts, 'env'>): SQSClient {
  return new SQSClient({ region: ports.env.AWS_REGION });
}
