/**
 * Classification of cloud SDK errors (the kind decides retry, the remediation stage's "blocked" vs "failed",
 * and whether a failed write may still have taken effect) and the bounded retry around each call.
 */

import { createServer, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import storageAction from '../../shared/actions/azure.storage.disallow-public-access.js';
import { outcomeUnknown } from '../../shared/actions/plan.js';
import { classifyCloudError, withRetry } from '../../shared/actions/retry.js';
import s3Action from '../../shared/actions/s3.block-public-access.js';
import { kindOf } from '../../shared/core/errors.js';
import { awsError, FAKE_AWS, testContext } from '../helpers/action-context.js';
import { armAnswering, armCredential } from '../helpers/arm-double.js';

/** The AWS SDK's socket timeout, as @smithy/node-http-handler throws it (no status, no code in the message). */
const sdkSocketTimeout = () =>
  Object.assign(
    new Error(
      '@smithy/node-http-handler - the request socket timed out after 3000 ms of inactivity (configured by client requestHandler).',
    ),
    { name: 'TimeoutError' },
  );
/** … and its connect timeout: the request never reached the service. */
const sdkConnectTimeout = () =>
  Object.assign(
    new Error(
      '@smithy/node-http-handler - the request socket did not establish a connection with the server within the configured timeout of 1000 ms.',
    ),
    { name: 'TimeoutError' },
  );

describe('classifyCloudError', () => {
  it.each([
    ['AccessDenied 403', 'denied', awsError('AccessDenied', 403)],
    ['Throttling 400', 'throttled', awsError('Throttling', 400)],
    ['NoSuchBucket 404', 'gone', awsError('NoSuchBucket', 404)],
    ['InternalError 500', 'transient', awsError('InternalError', 500)],
    ['ValidationError 400', 'invalid', awsError('ValidationError', 400)],
    ['the SDK socket timeout', 'transient', sdkSocketTimeout()],
    ['the SDK connect timeout', 'transient', sdkConnectTimeout()],
    ['a reset socket', 'transient', Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })],
    ['S3 RequestTimeout 400', 'transient', awsError('RequestTimeout', 400)],
    ['a GCS 408 (ApiError code)', 'transient', Object.assign(new Error('Request Timeout'), { code: 408 })],
    ['an ARM 425', 'throttled', Object.assign(new Error('Too Early'), { name: 'RestError', statusCode: 425 })],
    [
      'an Azure send failure',
      'transient',
      Object.assign(new Error('socket closed'), { name: 'RestError', code: 'REQUEST_SEND_ERROR' }),
    ],
  ])('%s is %s', (_label, kind, e) => {
    expect(classifyCloudError(e, 's3:PutPublicAccessBlock b').kind).toBe(kind);
  });

  it('retries the SDK socket timeout within the bound', async () => {
    // Prepare
    let calls = 0;
    const fn = async () => {
      calls++;
      if (calls < 3) throw sdkSocketTimeout();
      return 'ok';
    };
    // Act
    const out = await withRetry('s3:PutPublicAccessBlock b', fn, { sleep: async () => {} });
    // Assess
    expect(out).toBe('ok');
    expect(calls).toBe(3);
  });
});

describe('outcomeUnknown: may a failed write have taken effect?', () => {
  it.each([
    ['the SDK socket timeout (sent, no answer)', true, sdkSocketTimeout()],
    ['a reset socket', true, Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })],
    ['InternalError 500', true, awsError('InternalError', 500)],
    ['the SDK connect timeout (never sent)', false, sdkConnectTimeout()],
    [
      'a refused connection',
      false,
      Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }),
    ],
    ['AccessDenied', false, awsError('AccessDenied', 403)],
    ['Throttling', false, awsError('Throttling', 400)],
  ])('%s: %s', (_label, unknown, e) => {
    expect(outcomeUnknown(classifyCloudError(e, 's3:PutPublicAccessBlock b'))).toBe(unknown);
  });
});

describe('the Azure ARM clients actions call', () => {
  const target = { subscriptionId: '00000000-0000-0000-0000-000000000000', resourceGroup: 'rg', accountName: 'acct' };
  const credential = armCredential;

  /** ARM answering every request with `status` and `headers`; counts the requests. */
  function arm(status: number, code: string, headers: Record<string, string>) {
    const { sent, httpClient } = armAnswering(status, code, headers);
    return { sent, armHttpClient: httpClient };
  }

  it('give up at once when ARM asks to wait longer than a function should (no uncapped sleep in the SDK)', async () => {
    // Prepare: ARM throttles with an hour's Retry-After
    const { sent, armHttpClient } = arm(429, 'TooManyRequests', { 'retry-after': '3600' });
    const ctx = testContext({ cloud: { azure: { credential, armHttpClient } } });
    // Act
    const started = Date.now();
    const error = await storageAction.plan(target, ctx).catch((e: unknown) => e);
    // Assess: throttled with the server's wait on it, for the queue to deliver again; one request sent
    expect(kindOf(error)).toBe('throttled');
    expect(error).toMatchObject({ retryAfterSeconds: 3600 });
    expect(sent).toHaveLength(1);
    expect(Date.now() - started).toBeLessThan(2_000);
  }, 5_000);

  it('retry through one layer only: as many requests as withRetry has attempts', async () => {
    // Prepare: ARM is unavailable, and says to come back at once
    const { sent, armHttpClient } = arm(503, 'ServiceUnavailable', { 'retry-after': '0' });
    const ctx = testContext({ cloud: { azure: { credential, armHttpClient } } });
    // Act
    const error = await storageAction.plan(target, ctx).catch((e: unknown) => e);
    // Assess
    expect(kindOf(error)).toBe('transient');
    expect(sent).toHaveLength(ctx.retry?.attempts ?? 0);
  });
});

describe('the AWS clients actions call', () => {
  it('fail a call to an endpoint that never answers, within the bound, instead of holding the function', async () => {
    // Prepare: an endpoint that takes the request and says nothing
    const sockets = new Set<Socket>();
    let received = 0;
    const server: Server = createServer(() => void received++);
    server.on('connection', (s) => sockets.add(s));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const address = server.address();
    const endpoint = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
    const ctx = testContext({ cloud: { aws: { ...FAKE_AWS, endpoint, socketTimeoutMs: 200 } } });
    try {
      // Act
      const started = Date.now();
      const error = await s3Action
        .plan({ bucket: 'acme-exports-111122223333', region: 'us-east-1' }, ctx)
        .catch((e: unknown) => e);
      // Assess: transient after each attempt timed out (the queue delivers it again), well inside the test's 5 s
      expect(kindOf(error)).toBe('transient');
      expect(received).toBe(ctx.retry?.attempts);
      expect(Date.now() - started).toBeLessThan(3_000);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    }
  }, 5_000);
});
