/**
 * The GCP spoke's remediate functions through the Functions Framework's own test server over HTTP: the
 * hub's API destination posts `Remediation Requested`; `remediate` checks the shared secret and the
 * request, publishes it to the remediation topic (Pub/Sub's REST API, doubled at fetch with the metadata
 * server's access token) and answers 202 within the API destination's 5 seconds; the topic's push
 * subscription delivers it to `remediateQueued`, which runs the GCP action against the Google JSON API
 * double and puts the result on the hub bus through web-identity federation (metadata server and STS
 * doubled; the exchange itself is tested in scc-ingest.test.ts).
 */
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { AssumeRoleWithWebIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { getTestServer } from '@google-cloud/functions-framework/testing';
import { type AwsClientStub, mockClient } from 'aws-sdk-client-mock';
import supertest from 'supertest';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { CloudClientOptions } from '../../../shared/actions/clients.js';
import {
  REMOTE_REQUEST_DETAIL_TYPE,
  REMOTE_REQUEST_SOURCE,
  REMOTE_RESULT_DETAIL_TYPE,
} from '../../../shared/adapters/bus/spoke.js';
import { remoteMessageOf } from '../../../shared/adapters/bus/spoke-remote.js';
import { RemoteResultSchema } from '../../../shared/core/remediation/remote.js';
import { answerForwarder } from '../../helpers/forwarder.js';
import { type GcpDouble, startGcpDouble } from '../../helpers/gcp-double.js';
import { eventBridgeEvent } from '../helpers/events.js';

/** The double's endpoints, set before the function module builds its clients. */
const doubles = vi.hoisted(() => {
  const d: { gcp?: NonNullable<CloudClientOptions['gcp']> } = {};
  return d;
});

// The function builds its clients once at module scope with Application Default Credentials; the test
// points them at the JSON API double (as test/actions/gcs.* do), nothing else changes.
vi.mock('../../../shared/actions/clients.js', async (importOriginal) => {
  const original = await importOriginal<typeof import('../../../shared/actions/clients.js')>();
  return {
    ...original,
    createCloudClients(opts: CloudClientOptions = {}) {
      if (!doubles.gcp) throw new Error('the GCP double must start before the function is imported');
      return original.createCloudClients({ ...opts, gcp: doubles.gcp });
    },
  };
});

const SECRET = 'hub-remediate-secret-000000000000';
const TOPIC = 'projects/acme-sec/topics/closeloop-remediate-requests';
const DEAD_LETTERS = 'projects/acme-sec/topics/closeloop-remediate-dead-letter';
/** What the functions published, per topic, as Pub/Sub's REST API received it. */
const pubsub = {
  published: [] as { topic: string; data: string; attributes?: Record<string, string>; authorization: string }[],
  /** The status the double answers a publish with. */
  status: 200,
};
const BUS = 'arn:aws:events:us-east-1:111122223333:event-bus/closeloop-test';
const BUCKET = 'acme-public-exports';
const OWNERS = { role: 'roles/storage.legacyBucketOwner', members: ['projectOwner:acme-prod'] };
const PUBLIC_VIEWERS = { role: 'roles/storage.objectViewer', members: ['allUsers'] };

let sts: AwsClientStub<STSClient>;
let eb: AwsClientStub<EventBridgeClient>;
let gcp: GcpDouble;

beforeAll(async () => {
  vi.stubEnv('CLOSELOOP_HUB_BUS_ARN', BUS);
  vi.stubEnv('CLOSELOOP_FORWARDER_ROLE_ARN', 'arn:aws:iam::111122223333:role/closeloop-test-gcp-spoke');
  vi.stubEnv('CLOSELOOP_REMEDIATE_SECRET', SECRET);
  // The metadata server's identity and token endpoints, and Pub/Sub's publish; everything else (the double
  // on 127.0.0.1) goes through.
  const realFetch = globalThis.fetch;
  vi.stubGlobal('fetch', async (url: string | URL, init?: RequestInit) => {
    const at = String(url);
    if (at === 'http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token')
      return {
        ok: true,
        status: 200,
        text: async () => JSON.stringify({ access_token: 'ya29.spoke', expires_in: 3599 }),
      };
    if (at.startsWith('http://metadata.google.internal/'))
      return { ok: true, status: 200, text: async () => 'gcp-id-token\n' };
    const publish = /^https:\/\/pubsub\.googleapis\.com\/v1\/(projects\/[^/]+\/topics\/[^/:]+):publish$/.exec(at);
    if (publish) {
      const headers = new Headers(init?.headers);
      const { messages } = JSON.parse(String(init?.body)) as {
        messages: { data: string; attributes?: Record<string, string> }[];
      };
      if (pubsub.status !== 200) return { ok: false, status: pubsub.status, text: async () => '{"error":{}}' };
      for (const m of messages)
        pubsub.published.push({
          topic: publish[1] ?? '',
          data: Buffer.from(m.data, 'base64').toString('utf8'),
          ...(m.attributes ? { attributes: m.attributes } : {}),
          authorization: headers.get('authorization') ?? '',
        });
      return {
        ok: true,
        status: 200,
        text: async () => JSON.stringify({ messageIds: messages.map((_, i) => `${i + 1}`) }),
      };
    }
    return realFetch(url, init);
  });
  vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
  gcp = await startGcpDouble();
  doubles.gcp = gcp.options;
  sts = mockClient(STSClient);
  eb = mockClient(EventBridgeClient);
  await import('../../../functions/gcp/remediate.js');
});
afterAll(async () => {
  sts.restore();
  eb.restore();
  vi.unstubAllEnvs();
  vi.unstubAllGlobals();
  vi.restoreAllMocks();
  await gcp?.stop();
});
beforeEach(() => {
  vi.stubEnv('CLOSELOOP_APPLY', 'true');
  // Each entry point as infra/gcp/main.tf deploys it: remediate knows the queue's topic, the worker the
  // dead-letter topic (deliver() runs both, each under its own).
  vi.stubEnv('CLOSELOOP_REMEDIATE_TOPIC', TOPIC);
  vi.stubEnv('CLOSELOOP_REMEDIATE_DEAD_LETTER_TOPIC', undefined);
  pubsub.published.length = 0;
  pubsub.status = 200;
  answerForwarder(sts, eb);
  gcp.requests.length = 0;
  gcp.buckets.clear();
  gcp.buckets.set(BUCKET, {
    iam: { bindings: [OWNERS, PUBLIC_VIEWERS], etag: 'BwE1', version: 3 },
    metadata: {
      metageneration: '4',
      iamConfiguration: { uniformBucketLevelAccess: { enabled: true }, publicAccessPrevention: 'inherited' },
    },
  });
});

const request = (over: Record<string, unknown> = {}) => ({
  requestId: 'rq-00000000000000g1',
  caseKey: `gcp|//storage.googleapis.com/${BUCKET}|PUBLIC_BUCKET_ACL`,
  provider: 'gcp',
  action: 'gcs.remove-public-access',
  op: 'apply',
  target: { bucket: BUCKET },
  applyToken: 'token-000000000000000g',
  actor: 'closeloop@aws-hub-test',
  ...over,
});
/** What an API destination posts: the whole EventBridge event, as JSON. */
const delivered = (detail: unknown) => eventBridgeEvent(REMOTE_REQUEST_SOURCE, REMOTE_REQUEST_DETAIL_TYPE, detail);
const post = (body: unknown, secret: string | null = SECRET) => {
  const req = supertest(getTestServer('remediate')).post('/').set('content-type', 'application/json');
  if (secret !== null) req.set('x-closeloop-secret', secret);
  return req.send(typeof body === 'string' ? body : JSON.stringify(body));
};
/** What remediate published to `topic`, parsed. */
const published = (topic = TOPIC) => pubsub.published.filter((m) => m.topic === topic);
let pushes = 0;
/** What the worker's push subscription POSTs for a message of the remediation topic (infra/gcp/main.tf). */
async function push(data: string, attributes: Record<string, string> = {}) {
  vi.stubEnv('CLOSELOOP_REMEDIATE_TOPIC', undefined);
  vi.stubEnv('CLOSELOOP_REMEDIATE_DEAD_LETTER_TOPIC', DEAD_LETTERS);
  try {
    return await supertest(getTestServer('remediateQueued'))
      .post(`/${TOPIC}`)
      .set('content-type', 'application/json')
      .send(
        JSON.stringify({
          subscription: 'projects/acme-sec/subscriptions/closeloop-remediate-worker',
          message: {
            data: Buffer.from(data, 'utf8').toString('base64'),
            attributes,
            messageId: `99000000000${++pushes}`,
            publishTime: '2026-12-07T10:00:00.000Z',
          },
        }),
      );
  } finally {
    vi.stubEnv('CLOSELOOP_REMEDIATE_TOPIC', TOPIC);
    vi.stubEnv('CLOSELOOP_REMEDIATE_DEAD_LETTER_TOPIC', undefined);
  }
}
/** The whole way: posted, answered, and (when published) pushed to the worker, as Pub/Sub would do it. */
async function deliver(body: unknown) {
  const before = published().length;
  const res = await post(body);
  const message = published()[before];
  const worked = message ? await push(message.data, message.attributes) : undefined;
  return { res, message, worked };
}
const reported = () => eb.commandCalls(PutEventsCommand).flatMap((call) => call.args[0].input.Entries ?? []);
const resultsReported = () => reported().map((e) => RemoteResultSchema.parse(JSON.parse(e.Detail ?? '{}')));
const writes = () => gcp.requests.filter((r) => r.method !== 'GET');
const publicMembers = () =>
  (gcp.buckets.get(BUCKET)?.iam.bindings ?? []).flatMap((b) => b.members).filter((m) => m.startsWith('all'));

describe('GCP spoke: remediate endpoint through the Functions Framework test server', () => {
  it('refuses with 401, publishes nothing and calls no cloud when the secret header is missing', async () => {
    // Act
    const res = await post(delivered(request()), null);
    // Assess
    expect(res.status).toBe(401);
    expect(pubsub.published).toEqual([]);
    expect(gcp.requests).toEqual([]);
    expect(eb).toHaveReceivedCommandTimes(PutEventsCommand, 0);
    expect(sts).toHaveReceivedCommandTimes(AssumeRoleWithWebIdentityCommand, 0);
  });

  it('refuses with 401 and publishes nothing when the secret header is wrong', async () => {
    // Act
    const res = await post(delivered(request()), 'not-the-secret-000000000000');
    // Assess
    expect(res.status).toBe(401);
    expect(pubsub.published).toEqual([]);
    expect(gcp.requests).toEqual([]);
  });

  it('answers 400 naming the field, and publishes nothing, when the request has an unknown op', async () => {
    // Act
    const res = await post(delivered(request({ op: 'delete' })));
    // Assess
    expect(res.status).toBe(400);
    expect(JSON.stringify(res.body)).toContain('op');
    expect(pubsub.published).toEqual([]);
  });

  it('answers 405 to a GET', async () => {
    // Act
    const res = await supertest(getTestServer('remediate')).get('/').set('x-closeloop-secret', SECRET);
    // Assess
    expect(res.status).toBe(405);
    expect(pubsub.published).toEqual([]);
  });

  it('refuses with 422 and publishes nothing when the request names an Azure action', async () => {
    // Act
    const res = await post(
      delivered(
        request({
          action: 'azure.storage.disallow-public-access',
          target: { subscriptionId: '00000000-0000-0000-0000-000000000000', resourceGroup: 'rg', accountName: 'acme' },
        }),
      ),
    );
    // Assess
    expect(res.status).toBe(422);
    expect(JSON.stringify(res.body)).toContain('azure.storage.disallow-public-access is a azure action');
    expect(pubsub.published).toEqual([]);
  });

  it('refuses with 422 when the request is addressed to the Azure spoke', async () => {
    // Act
    const res = await post(delivered(request({ provider: 'azure' })));
    // Assess
    expect(res.status).toBe(422);
    expect(pubsub.published).toEqual([]);
  });

  it('answers 202 and publishes the request without running it, so the API destination never waits on an apply', async () => {
    // Act
    const res = await post(delivered(request()));
    // Assess
    expect(res.status).toBe(202);
    expect(res.body).toEqual({ requestId: 'rq-00000000000000g1', queued: true });
    const [message, ...more] = published();
    expect(more).toEqual([]);
    expect(JSON.parse(message?.data ?? '{}')).toEqual(request());
    expect(message).toMatchObject({
      attributes: { requestId: 'rq-00000000000000g1' },
      authorization: 'Bearer ya29.spoke',
    });
    expect(gcp.requests).toEqual([]);
    expect(eb).toHaveReceivedCommandTimes(PutEventsCommand, 0);
  });

  it('accepts the request itself as the body when a caller posts it without the EventBridge envelope', async () => {
    // Act
    const res = await post(request());
    // Assess
    expect(res.status).toBe(202);
    expect(JSON.parse(published()[0]?.data ?? '{}')).toEqual(request());
  });

  it('publishes a 100 KB request whole (a Pub/Sub message takes 10 MB) and refuses one over 1 MiB with 413 naming its size', async () => {
    // Prepare: requests whose JSON is 100,000 and 1,100,000 bytes (a long settings entry)
    const sized = (bytes: number) => {
      const pad = bytes - Buffer.byteLength(JSON.stringify({ ...request(), settings: { bindings: '' } }), 'utf8');
      return { ...request(), settings: { bindings: 'b'.repeat(pad) } };
    };
    // Act
    const fits = await post(delivered(sized(100_000)));
    const over = await post(delivered(sized(1_100_000)));
    // Assess
    expect(fits.status).toBe(202);
    expect(over.status).toBe(413);
    expect(over.body).toEqual({
      error: 'request rq-00000000000000g1 is 1100000 bytes as JSON; this spoke takes at most 1048576',
    });
    expect(published().map((m) => Buffer.byteLength(m.data, 'utf8'))).toEqual([100_000]);
  });

  it('answers 5xx, so the hub dead-letters the hand-over, when the request cannot be published', async () => {
    // Prepare
    pubsub.status = 503;
    // Act
    const res = await post(delivered(request()));
    // Assess
    expect(res.status).toBeGreaterThanOrEqual(500);
    expect(gcp.requests).toEqual([]);
  });
});

describe('GCP spoke: remediate worker on the push subscription', () => {
  it('applies the GCP action and reports the result with the request token', async () => {
    // Act
    const { res, worked } = await deliver(delivered(request()));
    // Assess
    expect(res.status).toBe(202);
    expect(worked?.status).toBe(204);
    expect(publicMembers()).toEqual([]);
    expect(gcp.buckets.get(BUCKET)?.metadata).toMatchObject({
      iamConfiguration: { publicAccessPrevention: 'enforced' },
    });
    const [entry, ...more] = reported();
    expect(more).toEqual([]);
    expect(entry).toMatchObject({
      EventBusName: BUS,
      Source: 'closeloop.spoke.gcp',
      DetailType: REMOTE_RESULT_DETAIL_TYPE,
    });
    const [result] = resultsReported();
    expect(result).toMatchObject({
      requestId: 'rq-00000000000000g1',
      applyToken: 'token-000000000000000g',
      op: 'apply',
      outcome: 'applied',
      actor: 'closeloop@gcp-spoke',
    });
    // The hub's remediate queue accepts what the spoke put on the bus.
    expect(remoteMessageOf(eventBridgeEvent(entry?.Source ?? '', entry?.DetailType ?? '', result))).toEqual({
      kind: 'result',
      result,
    });
  });

  it('makes no write and reports noop when Pub/Sub delivers the same request twice', async () => {
    // Prepare
    const { message } = await deliver(delivered(request()));
    const writesAfterFirst = writes().length;
    // Act
    const again = await push(message?.data ?? '', message?.attributes);
    // Assess
    expect(again.status).toBe(204);
    expect(writes()).toHaveLength(writesAfterFirst);
    expect(resultsReported().map((r) => [r.outcome, r.applyToken])).toEqual([
      ['applied', 'token-000000000000000g'],
      ['noop', 'token-000000000000000g'],
    ]);
    expect(published(DEAD_LETTERS)).toEqual([]);
  });

  it('answers an error, so Pub/Sub redelivers and then dead-letters, when the result cannot reach the hub', async () => {
    // Prepare
    const { message } = await deliver(delivered(request({ op: 'verify' })));
    eb.on(PutEventsCommand).rejects(Object.assign(new Error('down'), { name: 'InternalException' }));
    // Act
    const res = await push(message?.data ?? '');
    // Assess
    expect(res.status).toBeGreaterThanOrEqual(500);
  });

  it('sets a message that is no request for this spoke aside on the dead-letter topic with its reason, running nothing', async () => {
    // Prepare: something else published an Azure request to the topic
    const stray = JSON.stringify(request({ provider: 'azure' }));
    // Act
    const res = await push(stray);
    // Assess: acknowledged (retrying cannot fix it), and where the dead-letter alert looks
    expect(res.status).toBe(204);
    const [aside, ...more] = published(DEAD_LETTERS);
    expect(more).toEqual([]);
    expect(aside?.data).toBe(stray);
    expect(aside?.attributes?.reason).toBe('this is the gcp spoke; azure requests go elsewhere');
    expect(gcp.requests).toEqual([]);
    expect(eb).toHaveReceivedCommandTimes(PutEventsCommand, 0);
  });

  it('sets a message whose data is not JSON aside on the dead-letter topic with the field and reason', async () => {
    // Act
    const res = await push('{not json');
    // Assess
    expect(res.status).toBe(204);
    expect(published(DEAD_LETTERS)).toMatchObject([
      { data: '{not json', attributes: { reason: 'data.message.data: not base64 JSON' } },
    ]);
    expect(gcp.requests).toEqual([]);
  });
});
