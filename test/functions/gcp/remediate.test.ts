/**
 * The GCP spoke's remediate function through the Functions Framework's own test server over HTTP: the
 * hub's API destination posts `Remediation Requested`; the function checks the shared secret, runs the
 * GCP action against the Google JSON API double and puts the result on the hub bus through
 * web-identity federation (metadata server and STS doubled; the exchange itself is tested in scc-ingest.test.ts).
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
  // The metadata server's identity endpoint; everything else (the double on 127.0.0.1) goes through.
  const realFetch = globalThis.fetch;
  vi.stubGlobal('fetch', async (url: string | URL, init?: RequestInit) =>
    String(url).startsWith('http://metadata.google.internal/')
      ? { ok: true, status: 200, text: async () => 'gcp-id-token\n' }
      : realFetch(url, init),
  );
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
const reported = () => eb.commandCalls(PutEventsCommand).flatMap((call) => call.args[0].input.Entries ?? []);
const resultsReported = () => reported().map((e) => RemoteResultSchema.parse(JSON.parse(e.Detail ?? '{}')));
const writes = () => gcp.requests.filter((r) => r.method !== 'GET');
const publicMembers = () =>
  (gcp.buckets.get(BUCKET)?.iam.bindings ?? []).flatMap((b) => b.members).filter((m) => m.startsWith('all'));

describe('GCP spoke: remediate through the Functions Framework test server', () => {
  it('refuses with 401 and calls no cloud when the secret header is missing', async () => {
    // Act
    const res = await post(delivered(request()), null);
    // Assess
    expect(res.status).toBe(401);
    expect(gcp.requests).toEqual([]);
    expect(eb).toHaveReceivedCommandTimes(PutEventsCommand, 0);
    expect(sts).toHaveReceivedCommandTimes(AssumeRoleWithWebIdentityCommand, 0);
  });

  it('refuses with 401 and calls no cloud when the secret header is wrong', async () => {
    // Act
    const res = await post(delivered(request()), 'not-the-secret-000000000000');
    // Assess
    expect(res.status).toBe(401);
    expect(gcp.requests).toEqual([]);
    expect(eb).toHaveReceivedCommandTimes(PutEventsCommand, 0);
  });

  it('answers 400 naming the field when the request has an unknown op', async () => {
    // Act
    const res = await post(delivered(request({ op: 'delete' })));
    // Assess
    expect(res.status).toBe(400);
    expect(JSON.stringify(res.body)).toContain('op');
    expect(gcp.requests).toEqual([]);
    expect(eb).toHaveReceivedCommandTimes(PutEventsCommand, 0);
  });

  it('answers 405 to a GET', async () => {
    // Act
    const res = await supertest(getTestServer('remediate')).get('/').set('x-closeloop-secret', SECRET);
    // Assess
    expect(res.status).toBe(405);
    expect(gcp.requests).toEqual([]);
  });

  it('applies the GCP action and reports the result with the request token when the request is valid', async () => {
    // Act
    const res = await post(delivered(request()));
    // Assess
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ requestId: 'rq-00000000000000g1', outcome: 'applied' });
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

  it('accepts the request itself as the body when a caller posts it without the EventBridge envelope', async () => {
    // Act
    const res = await post(request());
    // Assess
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ outcome: 'applied' });
  });

  it('makes no write and reports noop when the same request arrives twice', async () => {
    // Prepare
    await post(delivered(request()));
    const writesAfterFirst = writes().length;
    // Act
    const res = await post(delivered(request()));
    // Assess
    expect(res.body).toMatchObject({ outcome: 'noop' });
    expect(writes()).toHaveLength(writesAfterFirst);
    expect(resultsReported().map((r) => [r.outcome, r.applyToken])).toEqual([
      ['applied', 'token-000000000000000g'],
      ['noop', 'token-000000000000000g'],
    ]);
  });

  it('refuses with 422 and runs nothing when the request names an Azure action', async () => {
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
    expect(gcp.requests).toEqual([]);
    expect(eb).toHaveReceivedCommandTimes(PutEventsCommand, 0);
  });

  it('refuses with 422 when the request is addressed to the Azure spoke', async () => {
    // Act
    const res = await post(delivered(request({ provider: 'azure' })));
    // Assess
    expect(res.status).toBe(422);
    expect(gcp.requests).toEqual([]);
  });

  it('answers 5xx so the delivery is retried or dead-lettered when the result cannot reach the hub', async () => {
    // Prepare
    eb.on(PutEventsCommand).rejects(Object.assign(new Error('down'), { name: 'InternalException' }));
    // Act
    const res = await post(delivered(request({ op: 'verify' })));
    // Assess
    expect(res.status).toBeGreaterThanOrEqual(500);
  });
});
