import { ChangeMessageVisibilityCommand, SQSClient } from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { parseQueueArn, queueUrlOf, redeliverAfter } from '../../../shared/adapters/bus/sqs-visibility.js';
import { kindOf } from '../../../shared/core/errors.js';

const sqs = mockClient(SQSClient);
beforeEach(() => sqs.reset());
afterAll(() => sqs.restore());

const client = (region: string) =>
  new SQSClient({ region, credentials: { accessKeyId: 'AKIA', secretAccessKey: 'x' } });

describe('SQS queue URL from an event source ARN', () => {
  it.each([
    [
      'arn:aws:sqs:us-east-1:111122223333:closeloop-dev-ticket',
      'https://sqs.us-east-1.amazonaws.com/111122223333/closeloop-dev-ticket',
    ],
    [
      'arn:aws:sqs:eu-west-1:111122223333:closeloop-prod-verify',
      'https://sqs.eu-west-1.amazonaws.com/111122223333/closeloop-prod-verify',
    ],
    [
      'arn:aws-cn:sqs:cn-north-1:111122223333:closeloop-dev-ticket',
      'https://sqs.cn-north-1.amazonaws.com.cn/111122223333/closeloop-dev-ticket',
    ],
    [
      'arn:aws-us-gov:sqs:us-gov-west-1:111122223333:closeloop-dev-ticket',
      'https://sqs.us-gov-west-1.amazonaws.com/111122223333/closeloop-dev-ticket',
    ],
    ['arn:aws:sqs:us-east-1:111122223333:jobs.fifo', 'https://sqs.us-east-1.amazonaws.com/111122223333/jobs.fifo'],
  ])('builds the URL of %s on the endpoint the client resolves for its region', async (arn, url) => {
    // Prepare: a client of the queue's own region (a Lambda event source reads a queue of its region)
    const region = parseQueueArn(arn)?.region ?? '';
    // Act
    const built = await queueUrlOf(client(region), arn);
    // Assess
    expect(built).toBe(url);
  });

  it('refuses what is not a queue ARN, without a call', async () => {
    // Act
    const refused = await queueUrlOf(client('us-east-1'), 'arn:aws:sns:us-east-1:111122223333:topic').catch((e) => e);
    // Assess
    expect(kindOf(refused)).toBe('invalid');
    expect(parseQueueArn('https://sqs.us-east-1.amazonaws.com/111122223333/q')).toBeUndefined();
    expect(parseQueueArn('arn:aws:sqs:us-east-1:111122223333:a/b')).toBeUndefined();
  });
});

describe('redeliverAfter', () => {
  const message = {
    queueArn: 'arn:aws:sqs:us-east-1:111122223333:closeloop-dev-ticket',
    receiptHandle: 'AQEB-secret-handle',
  };

  it('sets the message visibility timeout to the wait, in whole seconds', async () => {
    // Act
    await redeliverAfter(client('us-east-1'), message, 19.2);
    // Assess
    expect(sqs).toHaveReceivedCommandExactlyOnceWith(ChangeMessageVisibilityCommand, {
      QueueUrl: 'https://sqs.us-east-1.amazonaws.com/111122223333/closeloop-dev-ticket',
      ReceiptHandle: 'AQEB-secret-handle',
      VisibilityTimeout: 20,
    });
  });

  it('names the queue and the SQS error when the change fails, never the receipt handle', async () => {
    // Prepare: SQS's message quotes the handle
    sqs.on(ChangeMessageVisibilityCommand).rejects(
      Object.assign(new Error('Value AQEB-secret-handle for parameter ReceiptHandle is invalid'), {
        name: 'ReceiptHandleIsInvalid',
      }),
    );
    // Act
    const e = await redeliverAfter(client('us-east-1'), message, 5).catch((err: unknown) => err);
    // Assess
    expect(kindOf(e)).toBe('gone');
    expect(String(e)).toContain('closeloop-dev-ticket');
    expect(String(e)).toContain('ReceiptHandleIsInvalid');
    expect(String(e)).not.toContain('AQEB-secret-handle');
  });
});
