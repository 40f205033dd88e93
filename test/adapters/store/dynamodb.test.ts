import {
  BatchGetItemCommand,
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
} from '@aws-sdk/client-dynamodb';
import { type AwsClientStub, mockClient } from 'aws-sdk-client-mock';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  DynamoDocStore,
  type DynamoDocStoreOptions,
  EXPIRES_ATTRIBUTE,
} from '../../../shared/adapters/store/dynamodb.js';
import { isThrottled } from '../../../shared/core/errors.js';
import { type LocalDynamo, startDynalite } from '../../functions/helpers/dynalite.js';
import { docStoreContract } from '../../helpers/docstore-contract.js';

let local: LocalDynamo;
let tables = 0;
beforeAll(async () => {
  local = await startDynalite();
});
afterAll(async () => {
  await local.stop();
});

/** A fresh table per test: the contract expects an empty store each time. */
async function freshStore(options: DynamoDocStoreOptions = {}): Promise<DynamoDocStore> {
  const name = `closeloop-test-${++tables}`;
  await local.createTable(name);
  return new DynamoDocStore(local.client, name, options);
}

docStoreContract('dynamodb', async (clock) => {
  const store = await freshStore({ clock });
  return { store, done: () => store.close() };
});

describe('DynamoDocStore on dynalite', () => {
  it('keeps one entry per id when the same append races with itself', async () => {
    // Prepare
    const store = await freshStore();
    // Act
    const results = await Promise.all(Array.from({ length: 10 }, () => store.append('outbox', 'evt-1', { n: 1 })));
    await store.append('outbox', 'evt-2', { n: 2 });
    // Assess
    expect(results.filter(Boolean)).toHaveLength(1);
    const log = await store.readLog('outbox');
    expect(log.map((e) => e.id)).toEqual(['evt-1', 'evt-2']);
    expect(log[0]?.seq).toBeLessThan(log[1]?.seq ?? 0);
  });

  it('repairs a missing log entry when the guard was committed before a crash', async () => {
    // Prepare: simulate a crash after the guard put, before the entry put.
    const store = await freshStore();
    await local.client.send(
      new PutItemCommand({
        TableName: store.table,
        Item: { pk: { S: 'g#outbox' }, sk: { S: 'evt-9' }, seq: { N: '7' }, doc: { S: '{"n":9}' } },
      }),
    );
    // Act
    const appended = await store.append('outbox', 'evt-9', { n: 9 });
    // Assess
    expect(appended).toBe(false);
    expect(await store.readLog('outbox')).toEqual([{ seq: 7, id: 'evt-9', value: { n: 9 } }]);
  });

  it('pages the log with after and limit when there are more entries than one page', async () => {
    // Prepare
    const store = await freshStore();
    for (let i = 1; i <= 12; i++) await store.append('events', `e${i}`, { i });
    // Act
    const first = await store.readLog('events', { limit: 5 });
    const rest = await store.readLog('events', { after: first.at(-1)?.seq ?? 0 });
    // Assess
    expect(first.map((e) => e.id)).toEqual(['e1', 'e2', 'e3', 'e4', 'e5']);
    expect(rest.map((e) => e.id)).toEqual(['e6', 'e7', 'e8', 'e9', 'e10', 'e11', 'e12']);
  });

  it('lists within a prefix starting after an id inside it', async () => {
    // Prepare
    const store = await freshStore();
    for (const id of ['a:1', 'b:1', 'b:2', 'b:3', 'c:1']) await store.put('c', id, {});
    // Act
    const docs = await store.list('c', { prefix: 'b:', after: 'b:1', limit: 5 });
    const before = await store.list('c', { prefix: 'b:', after: 'a:9' });
    // Assess
    expect(docs.map((d) => d.id)).toEqual(['b:2', 'b:3']);
    expect(before.map((d) => d.id)).toEqual(['b:1', 'b:2', 'b:3']);
  });

  it('gets more than 100 documents across BatchGetItem calls', async () => {
    // Prepare
    const store = await freshStore();
    const ids = Array.from({ length: 130 }, (_, i) => `id-${String(i).padStart(3, '0')}`);
    await store.writeBatch({
      puts: ids.map((id) => ({ collection: 'c', id, value: { id }, expectVersion: 0 })),
      appends: [],
    });
    // Act
    const got = await store.getMany('c', [...ids, 'missing']);
    // Assess
    expect(got.size).toBe(130);
    expect(got.get('id-129')).toEqual({ id: 'id-129', value: { id: 'id-129' }, version: 1 });
  });

  it("writes a document's expiry as the epoch-seconds TTL attribute, and takes it off with a put that has none", async () => {
    // Prepare
    const store = await freshStore();
    const raw = async (id: string) =>
      (
        await local.client.send(
          new GetItemCommand({ TableName: store.table, Key: { pk: { S: 'd#ticket-once' }, sk: { S: id } } }),
        )
      ).Item;
    // Act: each kind of put with an expiry (a create, an update, an unconditional put, a batch create)
    await store.put(
      'ticket-once',
      'created',
      {},
      { expectVersion: 0, expiresAt: new Date('2026-12-20T10:00:00.250Z') },
    );
    await store.put('ticket-once', 'updated', {}, { expectVersion: 0 });
    await store.put('ticket-once', 'updated', {}, { expectVersion: 1, expiresAt: new Date('2026-12-20T10:00:00Z') });
    await store.put('ticket-once', 'unconditional', {}, { expiresAt: new Date('2026-12-20T10:00:00Z') });
    await store.writeBatch({
      puts: [
        {
          collection: 'ticket-once',
          id: 'batched',
          value: {},
          expectVersion: 0,
          expiresAt: new Date('2026-12-20T10:00:00Z'),
        },
      ],
      appends: [],
    });
    await store.put('ticket-once', 'made-permanent', {}, { expiresAt: new Date('2026-12-20T10:00:00Z') });
    await store.put('ticket-once', 'made-permanent', {});
    // Assess: a number of seconds, rounded up (a marker never expires before its time)
    const seconds = String(Date.parse('2026-12-20T10:00:00Z') / 1000);
    expect((await raw('created'))?.[EXPIRES_ATTRIBUTE]).toEqual({ N: String(Number(seconds) + 1) });
    for (const id of ['updated', 'unconditional', 'batched']) {
      expect((await raw(id))?.[EXPIRES_ATTRIBUTE]).toEqual({ N: seconds });
    }
    expect(await raw('made-permanent')).not.toHaveProperty(EXPIRES_ATTRIBUTE);
  });

  it('reads an item past its expiry as absent while TTL has not deleted it yet', async () => {
    // Prepare: an item TTL would delete (its expiresAt is past) but has not (TTL deletes within days)
    const store = await freshStore();
    const past = String(Math.floor(Date.now() / 1000) - 60);
    await local.client.send(
      new PutItemCommand({
        TableName: store.table,
        Item: { pk: { S: 'd#ticket-once' }, sk: { S: 'm' }, v: { N: '1' }, doc: { S: '{}' }, expiresAt: { N: past } },
      }),
    );
    // Act / Assess
    expect(await store.get('ticket-once', 'm')).toBeUndefined();
    expect(await store.list('ticket-once')).toEqual([]);
    expect(await store.put('ticket-once', 'm', { again: true }, { expectVersion: 0 })).toBe(1);
  });
});

describe('DynamoDocStore with a mocked client', () => {
  // Mocks the class prototype: create it only while these tests run, so the dynalite tests use the wire.
  let ddb: AwsClientStub<DynamoDBClient>;
  beforeEach(() => {
    ddb = mockClient(DynamoDBClient);
  });
  afterEach(() => {
    ddb.restore();
  });

  it('retries UnprocessedKeys until every key is read', async () => {
    // Prepare
    const key = (id: string) => ({ pk: { S: 'd#c' }, sk: { S: id } });
    const item = (id: string) => ({ ...key(id), v: { N: '1' }, doc: { S: `{"id":"${id}"}` } });
    ddb
      .on(BatchGetItemCommand)
      .resolvesOnce({ Responses: { t: [item('a')] }, UnprocessedKeys: { t: { Keys: [key('b')] } } })
      .resolvesOnce({ Responses: { t: [item('b')] }, UnprocessedKeys: {} });
    const store = new DynamoDocStore(new DynamoDBClient({ region: 'us-east-1' }), 't', { backoffMs: 1 });
    // Act
    const got = await store.getMany('c', ['a', 'b']);
    // Assess
    expect([...got.keys()].sort()).toEqual(['a', 'b']);
    expect(ddb).toHaveReceivedCommandTimes(BatchGetItemCommand, 2);
    expect(ddb).toHaveReceivedNthCommandWith(BatchGetItemCommand, 2, {
      RequestItems: { t: { Keys: [key('b')], ConsistentRead: true } },
    });
  });

  it('gives up with a throttled error when keys stay unprocessed', async () => {
    // Prepare
    const keys = [{ pk: { S: 'd#c' }, sk: { S: 'a' } }];
    ddb.on(BatchGetItemCommand).resolves({ Responses: { t: [] }, UnprocessedKeys: { t: { Keys: keys } } });
    const store = new DynamoDocStore(new DynamoDBClient({ region: 'us-east-1' }), 't', {
      backoffMs: 1,
      maxBatchRetries: 2,
    });
    // Act
    const error = await store.getMany('c', ['a']).catch((e: unknown) => e);
    // Assess
    expect(isThrottled(error)).toBe(true);
    expect(ddb).toHaveReceivedCommandTimes(BatchGetItemCommand, 3);
  });

  it('classifies a throughput error as throttled when a query fails', async () => {
    // Prepare
    const err = Object.assign(new Error('slow down'), { name: 'ProvisionedThroughputExceededException' });
    ddb.on(QueryCommand).rejects(err);
    const store = new DynamoDocStore(new DynamoDBClient({ region: 'us-east-1' }), 't');
    // Act
    const error = await store.list('c').catch((e: unknown) => e);
    // Assess
    expect(isThrottled(error)).toBe(true);
  });
});
