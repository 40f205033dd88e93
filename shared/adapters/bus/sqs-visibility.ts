/**
 * Early redelivery of an SQS message a Lambda function received: ChangeMessageVisibility on the record's
 * receipt handle sets how long the message stays hidden, counted from the call and for this receive only (the
 * next receive hides it for the queue's visibility timeout again). A record reported in `batchItemFailures`
 * is left in the queue as it is, so it is delivered again once that shorter timeout has passed.
 *
 * The queue URL comes from the record's `eventSourceARN` with no call (GetQueueUrl would need one, and a
 * permission): a queue URL is `https://sqs.<region>.<the partition's DNS suffix>/<account>/<name>`
 * (`amazonaws.com`, `amazonaws.com.cn` in China), the host the client's own endpoint resolution gives for that
 * region. The client sends to the QueueUrl's host when it differs from its endpoint, so the two are kept equal.
 *
 * @see https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_ChangeMessageVisibility.html
 * @see https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-visibility-timeout.html
 * @see https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html#services-sqs-batchfailurereporting
 */
import { ChangeMessageVisibilityCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { AdapterError } from '../../core/errors.js';

/** The most ChangeMessageVisibility accepts (12 hours). */
const MAX_VISIBILITY_SECONDS = 43_200;

/** `arn:<partition>:sqs:<region>:<account>:<name>` (a FIFO queue's name ends in `.fifo`). */
const QUEUE_ARN = /^arn:aws[a-z-]*:sqs:([a-z]{2}(?:-[a-z0-9]+)+):(\d{12}):([\w-]{1,80}(?:\.fifo)?)$/;

/** The parts of an SQS queue ARN; undefined when `arn` is not one. */
export function parseQueueArn(arn: string): { region: string; account: string; name: string } | undefined {
  const m = QUEUE_ARN.exec(arn);
  if (!m) return undefined;
  const [, region = '', account = '', name = ''] = m;
  return { region, account, name };
}

/**
 * The URL of the queue `arn` names, on the endpoint `client` resolves for the queue's region (FIPS and
 * dual-stack as the client is configured). Throws an `invalid` AdapterError when `arn` is not a queue ARN.
 *
 * @example await queueUrlOf(sqs, 'arn:aws:sqs:us-east-1:111122223333:closeloop-dev-ticket')
 * // 'https://sqs.us-east-1.amazonaws.com/111122223333/closeloop-dev-ticket'
 */
export async function queueUrlOf(client: SQSClient, arn: string): Promise<string> {
  const queue = parseQueueArn(arn);
  if (!queue) throw new AdapterError('invalid', `not an SQS queue ARN: ${arn}`);
  const [UseFIPS, UseDualStack] = await Promise.all([
    client.config.useFipsEndpoint(),
    client.config.useDualstackEndpoint(),
  ]);
  const { url } = client.config.endpointProvider({ Region: queue.region, UseFIPS, UseDualStack });
  return new URL(`/${queue.account}/${queue.name}`, url).href;
}

/**
 * Makes a received message visible again `seconds` from now (0 to 12 hours). Failures are AdapterErrors that
 * name the queue and the SDK error, never the receipt handle.
 *
 * @example await redeliverAfter(sqs, { queueArn: record.eventSourceARN, receiptHandle: record.receiptHandle }, 5);
 */
export async function redeliverAfter(
  client: SQSClient,
  message: { queueArn: string; receiptHandle: string },
  seconds: number,
): Promise<void> {
  const queueUrl = await queueUrlOf(client, message.queueArn);
  const timeout = Math.min(MAX_VISIBILITY_SECONDS, Math.max(0, Math.ceil(seconds)));
  try {
    await client.send(
      new ChangeMessageVisibilityCommand({
        QueueUrl: queueUrl,
        ReceiptHandle: message.receiptHandle,
        VisibilityTimeout: timeout,
      }),
    );
  } catch (e) {
    // The SDK's message may quote the receipt handle (it lets its holder delete the message): the name only.
    const name = e instanceof Error ? e.name : 'Error';
    const kind = /AccessDenied/.test(name)
      ? 'denied'
      : /^(MessageNotInflight|ReceiptHandleIsInvalid|QueueDoesNotExist)$/.test(name)
        ? 'gone'
        : 'transient';
    throw new AdapterError(kind, `ChangeMessageVisibility on ${message.queueArn} failed (${name})`);
  }
}
