/** Real Lambda event shapes built around fixture payloads (SQS records carrying EventBridge events). */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export const fixture = (path: string): unknown =>
  JSON.parse(readFileSync(join(import.meta.dirname, '../../fixtures', path), 'utf8'));

let counter = 0;

/** An SQS record as Lambda delivers it from an EventBridge rule target (the body is the whole event). */
export function sqsRecord(body: string, queue = 'closeloop-test-ingest') {
  counter++;
  const id = `00000000-0000-0000-0000-${String(counter).padStart(12, '0')}`;
  return {
    messageId: id,
    receiptHandle: `AQEB${counter}`,
    body,
    attributes: {
      ApproximateReceiveCount: '1',
      SentTimestamp: '1767225600000',
      SenderId: 'AIDAEXAMPLE',
      ApproximateFirstReceiveTimestamp: '1767225600001',
    },
    messageAttributes: {},
    md5OfBody: '00000000000000000000000000000000',
    eventSource: 'aws:sqs',
    eventSourceARN: `arn:aws:sqs:us-east-1:111122223333:${queue}`,
    awsRegion: 'us-east-1',
  };
}

export const sqsEvent = (...records: ReturnType<typeof sqsRecord>[]) => ({ Records: records });

/** An EventBridge event (as a rule delivers it) around `detail`. */
export function eventBridgeEvent(source: string, detailType: string, detail: unknown) {
  counter++;
  return {
    version: '0',
    id: `00000000-0000-0000-0000-${String(counter).padStart(12, '0')}`,
    'detail-type': detailType,
    source,
    account: '111122223333',
    time: '2026-01-02T03:04:05Z',
    region: 'us-east-1',
    resources: [],
    detail,
  };
}

/** A Lambda context with what middy and Powertools read. */
export const lambdaContext = (name: string) => ({
  functionName: `closeloop-test-${name}`,
  functionVersion: '$LATEST',
  invokedFunctionArn: `arn:aws:lambda:us-east-1:111122223333:function:closeloop-test-${name}`,
  memoryLimitInMB: '512',
  awsRequestId: '00000000-0000-0000-0000-00000000abcd',
  logGroupName: `/aws/lambda/closeloop-test-${name}`,
  logStreamName: '2026/01/02/[$LATEST]0000',
  callbackWaitsForEmptyEventLoop: true,
  getRemainingTimeInMillis: () => 30_000,
  done: () => {},
  fail: () => {},
  succeed: () => {},
});
