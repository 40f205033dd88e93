/**
 * The GCP spoke's public `remediate` function as infra/gcp/main.tf deploys it: under an account of its own,
 * with only its topic and its secret in the environment (none of the hub's settings the worker forwards
 * with). It must load and queue a request so; before, the module built the spoke (hub forwarder settings
 * required) at load and the function could not start without them.
 */
import { getTestServer } from '@google-cloud/functions-framework/testing';
import supertest from 'supertest';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { REMOTE_REQUEST_DETAIL_TYPE, REMOTE_REQUEST_SOURCE } from '../../../shared/adapters/bus/spoke.js';
import { GcpSpokeEnvSchema } from '../../../shared/adapters/wiring/gcp.js';
import { eventBridgeEvent } from '../helpers/events.js';

const SECRET = 'hub-remediate-secret-000000000000';
const TOPIC = 'projects/acme-sec/topics/closeloop-remediate-requests';
const published: { url: string; authorization: string; data: string }[] = [];

beforeAll(async () => {
  // Exactly the endpoint's environment: every spoke setting unset, whatever the machine has.
  for (const name of Object.keys(GcpSpokeEnvSchema.shape)) vi.stubEnv(name, undefined);
  vi.stubEnv('CLOSELOOP_REMEDIATE_SECRET', SECRET);
  vi.stubEnv('CLOSELOOP_REMEDIATE_TOPIC', TOPIC);
  vi.stubGlobal('fetch', async (url: string | URL, init?: RequestInit) => {
    const at = String(url);
    if (at === 'http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token')
      return {
        ok: true,
        status: 200,
        text: async () => JSON.stringify({ access_token: 'ya29.endpoint', expires_in: 3599 }),
      };
    if (at === `https://pubsub.googleapis.com/v1/${TOPIC}:publish`) {
      const { messages } = JSON.parse(String(init?.body)) as { messages: { data: string }[] };
      for (const m of messages)
        published.push({
          url: at,
          authorization: new Headers(init?.headers).get('authorization') ?? '',
          data: Buffer.from(m.data, 'base64').toString('utf8'),
        });
      return { ok: true, status: 200, text: async () => JSON.stringify({ messageIds: ['1'] }) };
    }
    throw new Error(`unexpected fetch ${at}`);
  });
  vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
  await import('../../../functions/gcp/remediate.js');
});
afterAll(() => {
  vi.unstubAllEnvs();
  vi.unstubAllGlobals();
  vi.restoreAllMocks();
});

describe('GCP spoke: remediate with only its own environment', () => {
  it('loads without the hub settings and queues a request with its own access token', async () => {
    // Prepare
    const request = {
      requestId: 'rq-00000000000000e1',
      caseKey: 'gcp|//storage.googleapis.com/acme-public-exports|PUBLIC_BUCKET_ACL',
      provider: 'gcp',
      action: 'gcs.remove-public-access',
      op: 'apply',
      target: { bucket: 'acme-public-exports' },
      applyToken: 'token-000000000000000e',
      actor: 'closeloop@aws-hub-test',
    };
    // Act
    const res = await supertest(getTestServer('remediate'))
      .post('/')
      .set('content-type', 'application/json')
      .set('x-closeloop-secret', SECRET)
      .send(JSON.stringify(eventBridgeEvent(REMOTE_REQUEST_SOURCE, REMOTE_REQUEST_DETAIL_TYPE, request)));
    // Assess
    expect(res.status).toBe(202);
    expect(published).toHaveLength(1);
    expect(published[0]?.authorization).toBe('Bearer ya29.endpoint');
    expect(JSON.parse(published[0]?.data ?? '{}')).toMatchObject({ requestId: request.requestId });
  });
});
