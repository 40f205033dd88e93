/**
 * The Azure spoke's remediate functions, invoked through @azure/functions with constructed
 * InvocationContexts: the hub's API destination posts `Remediation Requested`; `remediate` checks the
 * shared secret and the request and queues it (the output binding's value, as the host would add it to
 * the Storage queue), answering 202 within the API destination's 5 seconds; the queue worker
 * `remediateQueued` runs the Azure action under its identity (here: a stubbed ARM storage client and
 * Azurite for the containers) and puts the result on the hub bus through web-identity federation.
 */
import { createHash } from 'node:crypto';
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { AssumeRoleWithWebIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import type { StorageAccount, StorageAccountUpdateParameters } from '@azure/arm-storage';
import { HttpRequest, InvocationContext } from '@azure/functions';
import { BlobServiceClient, type StorageSharedKeyCredential } from '@azure/storage-blob';
import { type AwsClientStub, mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { AzureStorageAccounts, CloudClientOptions } from '../../../shared/actions/clients.js';
import {
  REMOTE_REQUEST_DETAIL_TYPE,
  REMOTE_REQUEST_SOURCE,
  REMOTE_RESULT_DETAIL_TYPE,
} from '../../../shared/adapters/bus/spoke.js';
import { remoteMessageOf } from '../../../shared/adapters/bus/spoke-remote.js';
import { RemoteResultSchema } from '../../../shared/core/remediation/remote.js';
import { AZURITE_ACCOUNT, type Azurite, startAzurite } from '../../helpers/azurite.js';
import { answerForwarder } from '../../helpers/forwarder.js';
import { eventBridgeEvent } from '../helpers/events.js';

/** What the mocked client factory hands the function: the ARM stub and Azurite's blob endpoint. */
const doubles = vi.hoisted(() => {
  const d: { arm?: AzureStorageAccounts; blobUrl?: string; blobCredential?: StorageSharedKeyCredential } = {};
  return d;
});

// The function builds its clients once at module scope with the managed identity; the test swaps in
// the ARM stub and Azurite there (the same doubles as test/actions/azure.storage.*), nothing else.
vi.mock('../../../shared/actions/clients.js', async (importOriginal) => {
  const original = await importOriginal<typeof import('../../../shared/actions/clients.js')>();
  return {
    ...original,
    createCloudClients(opts: CloudClientOptions = {}) {
      const real = original.createCloudClients({
        ...opts,
        azure: {
          blobUrl: (account) => doubles.blobUrl ?? `https://${account}.blob.core.windows.net`,
          blobCredential: () => {
            if (!doubles.blobCredential) throw new Error('no Azurite credential in this test');
            return doubles.blobCredential;
          },
        },
      });
      return {
        ...real,
        azureStorage(subscriptionId: string): AzureStorageAccounts {
          if (!doubles.arm) throw new Error(`no ARM stub for ${subscriptionId}`);
          return doubles.arm;
        },
      };
    },
  };
});

/** Defender's alerts API as the function builds it (SecurityCenter(credential, subscription).alerts). */
const security = vi.hoisted(() => ({ resolved: [] as string[] }));
vi.mock('@azure/arm-security', () => ({
  SecurityCenter: class {
    readonly alerts;
    constructor(_credential: unknown, subscriptionId: string) {
      this.alerts = {
        async updateResourceGroupLevelStateToResolve(location: string, name: string, rg: string) {
          security.resolved.push(`${subscriptionId}/${rg}/${location}/${name}`);
        },
        async updateSubscriptionLevelStateToResolve(location: string, name: string) {
          security.resolved.push(`${subscriptionId}/-/${location}/${name}`);
        },
      };
    }
  },
}));

const SECRET = 'hub-remediate-secret-000000000000';
const SUB = '00000000-0000-0000-0000-000000000000';
const BUS = 'arn:aws:events:us-east-1:111122223333:event-bus/closeloop-test';
/** Where the spoke keeps requests too large for a queue message (functions/azure/remediate.ts). */
const LARGE = 'remediate-requests-large';
const target = { subscriptionId: SUB, resourceGroup: 'rg-data', accountName: AZURITE_ACCOUNT };

/** ARM stub: holds the account flag and records every call. */
function armStub(initial: boolean) {
  const state = { allowBlobPublicAccess: initial };
  const calls: string[] = [];
  const updates: StorageAccountUpdateParameters[] = [];
  const stub: AzureStorageAccounts = {
    async getProperties(): Promise<StorageAccount> {
      calls.push('getProperties');
      return { location: 'westeurope', allowBlobPublicAccess: state.allowBlobPublicAccess };
    },
    async update(_rg, _account, parameters): Promise<StorageAccount> {
      calls.push('update');
      updates.push(parameters);
      if (parameters.allowBlobPublicAccess !== undefined)
        state.allowBlobPublicAccess = parameters.allowBlobPublicAccess;
      return { location: 'westeurope' };
    },
  };
  return { stub, calls, updates, state };
}

let sts: AwsClientStub<STSClient>;
let eb: AwsClientStub<EventBridgeClient>;
let azurite: Azurite;
let blob: BlobServiceClient;
let fn: typeof import('../../../functions/azure/remediate.js');
let arm: ReturnType<typeof armStub>;
let container = '';
let n = 0;

beforeAll(async () => {
  vi.stubEnv('CLOSELOOP_HUB_BUS_ARN', BUS);
  vi.stubEnv('CLOSELOOP_FORWARDER_ROLE_ARN', 'arn:aws:iam::111122223333:role/closeloop-test-azure-spoke');
  vi.stubEnv('CLOSELOOP_REMEDIATE_SECRET', SECRET);
  vi.stubEnv('IDENTITY_ENDPOINT', 'http://127.0.0.1:41111/msi/token');
  vi.stubEnv('IDENTITY_HEADER', 'identity-header-test');
  // The app's own storage (identity-based AzureWebJobsStorage), where large requests are kept: Azurite here.
  vi.stubEnv('AzureWebJobsStorage__accountName', AZURITE_ACCOUNT);
  // The managed identity endpoint, as App Service serves it (the forwarder's federation token).
  const realFetch = globalThis.fetch;
  vi.stubGlobal('fetch', async (url: string | URL, init?: RequestInit) =>
    String(url).startsWith('http://127.0.0.1:41111/')
      ? { ok: true, status: 200, json: async () => ({ access_token: 'azure-mi-token' }) }
      : realFetch(url, init),
  );
  azurite = await startAzurite();
  doubles.blobUrl = azurite.url;
  doubles.blobCredential = azurite.credential;
  blob = new BlobServiceClient(azurite.url, azurite.credential);
  sts = mockClient(STSClient);
  eb = mockClient(EventBridgeClient);
  fn = await import('../../../functions/azure/remediate.js');
}, 30_000);
afterAll(async () => {
  sts.restore();
  eb.restore();
  vi.unstubAllEnvs();
  vi.unstubAllGlobals();
  await azurite?.stop();
});
beforeEach(async () => {
  vi.stubEnv('CLOSELOOP_APPLY', 'true');
  answerForwarder(sts, eb);
  // A public container holding a blob, and an account that allows public access.
  for await (const c of blob.listContainers()) await blob.deleteContainer(c.name);
  container = `public-${++n}`;
  const c = blob.getContainerClient(container);
  await c.create({ access: 'blob' });
  await c.getBlockBlobClient('report.csv').upload('a,b\n1,2\n', 8);
  // The container for requests too large for a queue message, as infra/azure/spoke.bicep creates it.
  await blob.getContainerClient(LARGE).create();
  arm = armStub(true);
  doubles.arm = arm.stub;
});

const request = (over: Record<string, unknown> = {}) => ({
  requestId: 'rq-00000000000000a1',
  caseKey: `azure|/subscriptions/${SUB}/resourcegroups/rg-data/providers/microsoft.storage/storageaccounts/${AZURITE_ACCOUNT}|Storage.Blob_OpenACL`,
  provider: 'azure',
  action: 'azure.storage.disallow-public-access',
  op: 'apply',
  target,
  applyToken: 'token-0000000000000001',
  actor: 'closeloop@aws-hub-test',
  ...over,
});
/** What an API destination posts: the whole EventBridge event. */
const delivered = (detail: unknown) => eventBridgeEvent(REMOTE_REQUEST_SOURCE, REMOTE_REQUEST_DETAIL_TYPE, detail);
const post = (body: unknown, headers: Record<string, string> = { 'x-closeloop-secret': SECRET }) =>
  new HttpRequest({
    method: 'POST',
    url: 'https://spoke.example/api/remediate',
    headers: { 'content-type': 'application/json', ...headers },
    body: { string: typeof body === 'string' ? body : JSON.stringify(body) },
  });
const context = () =>
  new InvocationContext({
    invocationId: '00000000-0000-0000-0000-000000000077',
    functionName: 'remediate',
    logHandler: () => undefined,
  });
const anonymousGet = () => fetch(`${azurite.url}/${container}/report.csv`);
/** What the HTTP function left for the host to add to the queue (undefined: nothing). */
const queuedBy = (ctx: InvocationContext): unknown => ctx.extraOutputs.get(fn.queued);
/**
 * The queue's copy of a message: the host serializes the output binding's value as JSON and base64-encodes it
 * (host.json's default messageEncoding); Azure Storage refuses a message over 64 KiB, and the host then fails
 * the invocation (the endpoint answers 500). The trigger parses what the queue kept.
 */
const throughQueue = (message: unknown): unknown => {
  const json = JSON.stringify(message);
  const stored = Buffer.from(json, 'utf8').toString('base64').length;
  if (stored > 64 * 1024) throw new Error(`RequestBodyTooLarge: a queue message of ${stored} bytes (64 KiB at most)`);
  return JSON.parse(json);
};
/** The worker's run of one queue message; its context (poison output) for the assessment. */
async function work(message: unknown) {
  const ctx = context();
  await fn.remediateQueued(throughQueue(message), ctx);
  return ctx;
}
/** The whole way: posted, answered, and (when queued) run by the worker, as the host would do it. */
async function deliver(body: unknown) {
  const ctx = context();
  const res = await fn.remediate(post(body), ctx);
  const message = queuedBy(ctx);
  if (message !== undefined) await work(message);
  return { res, message };
}
/** The results the function put on the hub bus. */
function reported() {
  return eb.commandCalls(PutEventsCommand).flatMap((call) => call.args[0].input.Entries ?? []);
}

describe('Azure spoke: remediate endpoint', () => {
  it('refuses with 401, queues nothing and calls no cloud when the secret header is missing', async () => {
    // Prepare
    const ctx = context();
    // Act
    const res = await fn.remediate(post(delivered(request()), {}), ctx);
    // Assess
    expect(res.status).toBe(401);
    expect(queuedBy(ctx)).toBeUndefined();
    expect(arm.calls).toEqual([]);
    expect(eb).toHaveReceivedCommandTimes(PutEventsCommand, 0);
    expect(sts).toHaveReceivedCommandTimes(AssumeRoleWithWebIdentityCommand, 0);
    expect((await anonymousGet()).status).toBe(200);
  });

  it('refuses with 401 and queues nothing when the secret header is wrong', async () => {
    // Prepare
    const ctx = context();
    // Act
    const res = await fn.remediate(post(delivered(request()), { 'x-closeloop-secret': `${SECRET}x` }), ctx);
    // Assess
    expect(res.status).toBe(401);
    expect(queuedBy(ctx)).toBeUndefined();
    expect(arm.calls).toEqual([]);
  });

  it('answers 400 naming the field, and queues nothing, when the request lacks op', async () => {
    // Prepare
    const { op: _op, ...withoutOp } = request();
    const ctx = context();
    // Act
    const res = await fn.remediate(post(delivered(withoutOp)), ctx);
    // Assess
    expect(res.status).toBe(400);
    expect(JSON.stringify(res.jsonBody)).toContain('op');
    expect(queuedBy(ctx)).toBeUndefined();
  });

  it('answers 400 when the body is not JSON', async () => {
    // Prepare
    const ctx = context();
    // Act
    const res = await fn.remediate(post('{not json'), ctx);
    // Assess
    expect(res.status).toBe(400);
    expect(queuedBy(ctx)).toBeUndefined();
  });

  it('refuses with 422 and queues nothing when the request names a GCP action', async () => {
    // Prepare
    const ctx = context();
    // Act
    const res = await fn.remediate(
      post(delivered(request({ action: 'gcs.remove-public-access', target: { bucket: 'acme-exports' } }))),
      ctx,
    );
    // Assess
    expect(res.status).toBe(422);
    expect(JSON.stringify(res.jsonBody)).toContain('gcs.remove-public-access is a gcp action');
    expect(queuedBy(ctx)).toBeUndefined();
  });

  it('refuses with 422 when the request is addressed to the GCP spoke', async () => {
    // Prepare
    const ctx = context();
    // Act
    const res = await fn.remediate(post(delivered(request({ provider: 'gcp' }))), ctx);
    // Assess
    expect(res.status).toBe(422);
    expect(queuedBy(ctx)).toBeUndefined();
  });

  it('answers 202 and queues the request without running it, so the API destination never waits on an apply', async () => {
    // Prepare: an ARM update that takes longer than an API destination waits (5 s)
    arm.stub.update = () => new Promise(() => undefined);
    const ctx = context();
    // Act
    const res = await fn.remediate(post(delivered(request())), ctx);
    // Assess
    expect(res).toMatchObject({ status: 202, jsonBody: { requestId: 'rq-00000000000000a1', queued: true } });
    expect(queuedBy(ctx)).toEqual(request());
    expect(arm.calls).toEqual([]);
    expect(eb).toHaveReceivedCommandTimes(PutEventsCommand, 0);
    expect((await anonymousGet()).status).toBe(200);
  });
});

describe('Azure spoke: remediate queue worker', () => {
  it('applies the Azure action and reports the result with the request token', async () => {
    // Act
    const { res } = await deliver(delivered(request()));
    // Assess
    expect(res.status).toBe(202);
    expect(arm.updates).toEqual([{ allowBlobPublicAccess: false }]);
    expect((await anonymousGet()).status).toBe(403);
    const [entry, ...more] = reported();
    expect(more).toEqual([]);
    expect(entry).toMatchObject({
      EventBusName: BUS,
      Source: 'closeloop.spoke.azure',
      DetailType: REMOTE_RESULT_DETAIL_TYPE,
    });
    const result = RemoteResultSchema.parse(JSON.parse(entry?.Detail ?? '{}'));
    expect(result).toMatchObject({
      requestId: 'rq-00000000000000a1',
      applyToken: 'token-0000000000000001',
      op: 'apply',
      outcome: 'applied',
      actor: 'closeloop@azure-spoke',
      before: { allowBlobPublicAccess: true, publicContainers: [{ name: container, access: 'blob' }] },
    });
    expect(result.requestIds).toHaveLength(2);
    // The hub's remediate queue accepts what the spoke put on the bus.
    const hubSees = remoteMessageOf(eventBridgeEvent(entry?.Source ?? '', entry?.DetailType ?? '', result));
    expect(hubSees).toEqual({ kind: 'result', result });
  });

  it('changes nothing and reports noop when the queue delivers the same request twice', async () => {
    // Prepare
    const { message } = await deliver(delivered(request()));
    const updatesAfterFirst = arm.updates.length;
    // Act
    const ctx = await work(message);
    // Assess
    expect(arm.updates).toHaveLength(updatesAfterFirst);
    expect(ctx.extraOutputs.get(fn.poisoned)).toBeUndefined();
    const results = reported().map((e) => RemoteResultSchema.parse(JSON.parse(e.Detail ?? '{}')));
    expect(results.map((r) => [r.outcome, r.applyToken])).toEqual([
      ['applied', 'token-0000000000000001'],
      ['noop', 'token-0000000000000001'],
    ]);
    expect(results[1]?.requestIds).toEqual([]);
  });

  it('changes nothing and reports noop when the hub hands the same request over twice', async () => {
    // Prepare
    await deliver(delivered(request()));
    // Act
    const { res } = await deliver(delivered(request()));
    // Assess
    expect(res.status).toBe(202);
    expect(arm.updates).toHaveLength(1);
    expect(reported().map((e) => RemoteResultSchema.parse(JSON.parse(e.Detail ?? '{}')).outcome)).toEqual([
      'applied',
      'noop',
    ]);
  });

  it('throws for the queue to retry, and later poison, when the result cannot reach the hub', async () => {
    // Prepare
    const { message } = await (async () => {
      const ctx = context();
      await fn.remediate(post(delivered(request({ op: 'verify' }))), ctx);
      return { message: queuedBy(ctx) };
    })();
    eb.on(PutEventsCommand).rejects(Object.assign(new Error('down'), { name: 'InternalException' }));
    // Act
    const run = fn.remediateQueued(throughQueue(message), context());
    // Assess
    await expect(run).rejects.toThrow();
  });

  it('moves a message that is no request for this spoke to the poison queue with its reason, running nothing', async () => {
    // Prepare: something else put a GCP request on the queue
    const stray = request({ provider: 'gcp', action: 'gcs.remove-public-access', target: { bucket: 'acme' } });
    // Act
    const ctx = await work(stray);
    // Assess
    expect(ctx.extraOutputs.get(fn.poisoned)).toEqual({
      reason: 'this is the azure spoke; gcp requests go elsewhere',
      message: stray,
    });
    expect(arm.calls).toEqual([]);
    expect(eb).toHaveReceivedCommandTimes(PutEventsCommand, 0);
  });

  it('plans only and reports planned when the spoke is deployed without CLOSELOOP_APPLY', async () => {
    // Prepare
    vi.stubEnv('CLOSELOOP_APPLY', '');
    // Act
    await deliver(delivered(request()));
    // Assess
    expect(arm.updates).toEqual([]);
    expect((await anonymousGet()).status).toBe(200);
    expect(RemoteResultSchema.parse(JSON.parse(reported()[0]?.Detail ?? '{}')).outcome).toBe('planned');
  });

  it('reports the live state when the hub asks for a verify', async () => {
    // Prepare
    await deliver(delivered(request()));
    eb.resetHistory();
    // Act
    await deliver(
      delivered(request({ requestId: 'rq-00000000000000v1', op: 'verify', applyToken: 'verify-token-01' })),
    );
    // Assess
    const result = RemoteResultSchema.parse(JSON.parse(reported()[0]?.Detail ?? '{}'));
    expect(result).toMatchObject({ op: 'verify', outcome: 'verified', applyToken: 'verify-token-01' });
    expect(result.observed).toMatchObject({ allowBlobPublicAccess: false });
  });

  it('resolves a Defender alert the hub verified fixed, under its identity, and reports it', async () => {
    // Prepare
    security.resolved.length = 0;
    const alertName = '2517538088322968242_9d9c1b2a-7b7e-4f5e-8c1d-0a1b2c3d4e5f';
    const resolve = request({
      requestId: 'up-00000000000000a1',
      action: 'upstream.resolve',
      op: 'resolve',
      target: null,
      applyToken: undefined,
      finding: {
        key: 'e'.repeat(64),
        source: 'defender',
        sourceId: `/subscriptions/${SUB}/resourceGroups/rg-data/providers/Microsoft.Security/locations/westeurope/alerts/${alertName}`,
        alert: { subscriptionId: SUB, resourceGroup: 'rg-data', ascLocation: 'westeurope', alertName },
      },
    });
    // Act
    const { res } = await deliver(delivered(resolve));
    // Assess
    expect(res.status).toBe(202);
    expect(security.resolved).toEqual([`${SUB}/rg-data/westeurope/${alertName}`]);
    expect(arm.calls).toEqual([]);
    const result = RemoteResultSchema.parse(JSON.parse(reported()[0]?.Detail ?? '{}'));
    expect(result).toMatchObject({
      op: 'resolve',
      outcome: 'resolved',
      upstream: { outcome: 'updated', api: 'Microsoft.Security/locations/alerts/resolve' },
    });
  });
});

/** The request with a `settings` entry (many IAM bindings, say) that makes its JSON exactly `bytes` long. */
function sized(bytes: number, over: Record<string, unknown> = {}) {
  const base = request(over);
  const pad = bytes - Buffer.byteLength(JSON.stringify({ ...base, settings: { bindings: '' } }), 'utf8');
  return { ...base, settings: { bindings: 'b'.repeat(pad) } };
}
/** The blobs the endpoint stored for large requests. */
async function largeBlobs(): Promise<string[]> {
  const names: string[] = [];
  for await (const b of blob.getContainerClient(LARGE).listBlobsFlat()) names.push(b.name);
  return names;
}
const largeBlob = (name: string) => blob.getContainerClient(LARGE).getBlockBlobClient(name);
const sha256 = (text: string | Buffer) => createHash('sha256').update(text).digest('hex');
/** The endpoint's answer and queue message for a posted body (the message through the queue double). */
async function accept(body: unknown) {
  const ctx = context();
  const res = await fn.remediate(post(body), ctx);
  const message = queuedBy(ctx);
  return { res, message: message === undefined ? undefined : throughQueue(message) };
}

describe('Azure spoke: requests too large for a queue message', () => {
  it('stores a 100 KB request as a blob, queues a pointer with its sha256, and runs it like a small one', async () => {
    // Prepare
    const big = sized(100_000);
    // Act
    const { res, message } = await deliver(delivered(big));
    // Assess: answered, kept whole in its blob, pointed at from the queue
    expect(res.status).toBe(202);
    const stored = (await largeBlob('rq-00000000000000a1.json').downloadToBuffer()).toString('utf8');
    expect(JSON.parse(stored)).toEqual(big);
    expect(message).toEqual({
      claimCheck: { container: LARGE, blob: 'rq-00000000000000a1.json', sha256: sha256(stored) },
    });
    expect(await largeBlobs()).toEqual(['rq-00000000000000a1.json']);
    // … and run as a small request is (the first worker test)
    expect(arm.updates).toEqual([{ allowBlobPublicAccess: false }]);
    expect((await anonymousGet()).status).toBe(403);
    const [entry, ...more] = reported();
    expect(more).toEqual([]);
    expect(RemoteResultSchema.parse(JSON.parse(entry?.Detail ?? '{}'))).toMatchObject({
      requestId: 'rq-00000000000000a1',
      applyToken: 'token-0000000000000001',
      outcome: 'applied',
      before: { allowBlobPublicAccess: true, publicContainers: [{ name: container, access: 'blob' }] },
    });
  });

  it('queues a request inline while its base64 message leaves 4 KiB of the 64 KiB, and by claim check from one byte more', async () => {
    // Prepare: (64 KiB - 4 KiB) of base64 is 46,080 bytes of JSON
    const fits = sized(46_080);
    const over = sized(46_081, { requestId: 'rq-00000000000000a2' });
    // Act
    const inline = await accept(delivered(fits));
    const claimed = await accept(delivered(over));
    // Assess
    expect(inline.res.status).toBe(202);
    expect(inline.message).toEqual(fits);
    expect(claimed.res.status).toBe(202);
    expect(claimed.message).toMatchObject({ claimCheck: { container: LARGE, blob: 'rq-00000000000000a2.json' } });
    expect(await largeBlobs()).toEqual(['rq-00000000000000a2.json']);
  });

  it('writes one blob, and queues the same pointer, when the hub hands the same large request over twice', async () => {
    // Prepare
    const big = sized(100_000);
    const first = await accept(delivered(big));
    // Act: the API destination's retry, or a redrive of the dead-lettered hand-over
    const again = await accept(delivered(big));
    // Assess
    expect(again.res.status).toBe(202);
    expect(again.message).toEqual(first.message);
    expect(await largeBlobs()).toEqual(['rq-00000000000000a1.json']);
  });

  it('refuses a pointer whose blob was altered after it was queued, setting it aside with the reason and running nothing', async () => {
    // Prepare: the blob rewritten to name another account
    const { message } = await accept(delivered(sized(100_000)));
    const stored = JSON.parse((await largeBlob('rq-00000000000000a1.json').downloadToBuffer()).toString('utf8'));
    const tampered = JSON.stringify({ ...stored, target: { ...target, accountName: 'victim' } });
    await largeBlob('rq-00000000000000a1.json').upload(tampered, Buffer.byteLength(tampered));
    // Act
    const ctx = await work(message);
    // Assess
    expect(ctx.extraOutputs.get(fn.poisoned)).toEqual({
      reason: expect.stringContaining(`the blob's sha256 is ${sha256(tampered)}`),
      message,
    });
    expect(arm.calls).toEqual([]);
    expect(eb).toHaveReceivedCommandTimes(PutEventsCommand, 0);
  });

  it('refuses a pointer whose blob is missing, setting it aside with the reason', async () => {
    // Prepare
    const { message } = await accept(delivered(sized(100_000)));
    await largeBlob('rq-00000000000000a1.json').delete();
    // Act
    const ctx = await work(message);
    // Assess
    expect(ctx.extraOutputs.get(fn.poisoned)).toEqual({
      reason: expect.stringContaining(`claim check ${LARGE}/rq-00000000000000a1.json: the blob is missing`),
      message,
    });
    expect(arm.calls).toEqual([]);
    expect(eb).toHaveReceivedCommandTimes(PutEventsCommand, 0);
  });

  it('refuses a pointer into another container of the account, reading nothing there', async () => {
    // Prepare: a pointer at a blob the app's identity could read, with its true hash
    const pointer = { claimCheck: { container, blob: 'report.csv', sha256: sha256('a,b\n1,2\n') } };
    // Act
    const ctx = await work(pointer);
    // Assess
    expect(ctx.extraOutputs.get(fn.poisoned)).toEqual({
      reason: `claim check ${container}/report.csv: refused, requests are kept in ${LARGE} only`,
      message: pointer,
    });
    expect(arm.calls).toEqual([]);
  });

  it('refuses a request over 1 MiB with 413 naming its size, storing and queueing nothing', async () => {
    // Act
    const { res, message } = await accept(delivered(sized(1_100_000)));
    // Assess
    expect(res.status).toBe(413);
    expect(res.jsonBody).toEqual({
      error: 'request rq-00000000000000a1 is 1100000 bytes as JSON; this spoke takes at most 1048576',
    });
    expect(message).toBeUndefined();
    expect(await largeBlobs()).toEqual([]);
  });
});
