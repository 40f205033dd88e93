import { describe, expect, it } from 'vitest';
import { eventBridgeEventFromSqs, pipelineEventFromSqs, type SqsRecord } from '../../../shared/adapters/bus/sqs.js';
import { isInvalid } from '../../../shared/core/errors.js';

const verifyRequested = {
  type: 'case.verify-requested',
  id: 'verify-1',
  caseKey: 'aws|arn:aws:s3:::acme-data-lake-raw|S3.8',
  at: '2026-01-02T03:04:05.000Z',
  trigger: 'apply',
  actor: 'closeloop',
};

const record = (body: string): SqsRecord => ({
  messageId: '00000000-0000-0000-0000-000000000001',
  receiptHandle: 'AQEB-test',
  body,
  attributes: { ApproximateReceiveCount: '1' },
  eventSource: 'aws:sqs',
  eventSourceARN: 'arn:aws:sqs:us-east-1:111122223333:closeloop-dev-verify',
});

const envelope = (detail: unknown) =>
  JSON.stringify({
    version: '0',
    id: '00000000-0000-0000-0000-000000000002',
    'detail-type': 'case.verify-requested',
    source: 'closeloop',
    account: '111122223333',
    time: '2026-01-02T03:04:05Z',
    region: 'us-east-1',
    resources: [],
    detail,
  });

describe('SQS envelope reader', () => {
  it('returns the pipeline event when the body is an EventBridge event from the closeloop bus', () => {
    // Act
    const event = pipelineEventFromSqs(record(envelope(verifyRequested)));
    // Assess
    expect(event).toEqual(verifyRequested);
  });

  it('rejects as invalid when the body is not JSON', () => {
    // Act
    const error = (() => {
      try {
        return pipelineEventFromSqs(record('{not json'));
      } catch (e) {
        return e;
      }
    })();
    // Assess
    expect(isInvalid(error)).toBe(true);
  });

  it('rejects as invalid naming the field when the detail is not a closeloop event', () => {
    // Act
    const error = (() => {
      try {
        return pipelineEventFromSqs(record(envelope({ ...verifyRequested, trigger: 'whenever' })));
      } catch (e) {
        return e;
      }
    })();
    // Assess
    expect(isInvalid(error)).toBe(true);
    expect(String(error)).toContain('trigger');
  });

  it('keeps unknown envelope fields when reading a vendor event', () => {
    // Act
    const event = eventBridgeEventFromSqs(
      record(JSON.stringify({ ...JSON.parse(envelope({})), source: 'aws.guardduty', 'replay-name': 'r1' })),
    );
    // Assess
    expect(event.source).toBe('aws.guardduty');
    expect(event['replay-name']).toBe('r1');
  });
});
