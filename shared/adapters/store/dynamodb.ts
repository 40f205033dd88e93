/**
 * The AWS hub's DocStore: one DynamoDB table (pk = partition, sk = sort key), conditional writes on a
 * numeric `v` attribute, append-only logs as items ordered by a zero-padded sequence number.
 *
 * Item layout (every attribute a string or number, so nothing depends on DynamoDB's map marshalling):
 * - document:  pk `d#<collection>`, sk `<id>`, v (version), doc (JSON text), expiresAt (epoch seconds, only
 *              on a document written with an expiry: the table's TTL attribute, see {@link EXPIRES_ATTRIBUTE})
 * - log entry: pk `l#<log>`, sk `<seq, 16 digits>`, id, doc
 * - log guard: pk `g#<log>`, sk `<id>`, seq, doc  (the commitment that makes `append` idempotent on id)
 * - counter:   pk `c#<log>`, sk `#`, n          (ADD-incremented sequence source)
 *
 * Values are stored as JSON text rather than DynamoDB maps: the round trip is exact (no number
 * precision loss, no 32-level nesting limit, no empty-set quirks), and the 400 KB item limit is the same.
 *
 * @see https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Expressions.ConditionExpressions.html
 */
import {
  type AttributeValue,
  BatchGetItemCommand,
  ConditionalCheckFailedException,
  DeleteItemCommand,
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { AdapterError } from '../../core/errors.js';
import {
  type Clock,
  type DocStore,
  type PutOptions,
  type StoredDoc,
  systemClock,
  type WriteBatch,
} from '../../core/ports.js';
import { putOptionsOf } from '../../core/store/docs.js';

/**
 * The attribute a document's expiry is written to, in epoch seconds: the one the table's Time to Live deletes
 * by (serverless.yml `TimeToLiveSpecification`). TTL deletes within days of the time, not at it, so every read
 * here leaves out an item past it, and a create takes its key again.
 * @see https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/howitworks-ttl.html
 */
export const EXPIRES_ATTRIBUTE = 'expiresAt';
/**
 * The item is there and has not expired. `NOT` of a comparison with a missing attribute holds (one written
 * without an expiry never expires); `NOT (LIVE)`: a create, which takes the key of an expired item again.
 */
const LIVE = 'attribute_exists(pk) AND NOT expiresAt <= :now';
// The expressions below name it as it is (not a reserved word): no ExpressionAttributeNames entry for it.

type Item = Record<string, AttributeValue>;

const SEQ_DIGITS = 16;
const padSeq = (seq: number): string => String(seq).padStart(SEQ_DIGITS, '0');
const docPk = (collection: string): string => `d#${collection}`;
const logPk = (log: string): string => `l#${log}`;
const guardPk = (log: string): string => `g#${log}`;
const counterPk = (log: string): string => `c#${log}`;

const str = (item: Item | undefined, name: string): string | undefined => item?.[name]?.S;
const num = (item: Item | undefined, name: string): number | undefined => {
  const n = item?.[name]?.N;
  return n === undefined ? undefined : Number(n);
};

/** Options for {@link DynamoDocStore}. */
export interface DynamoDocStoreOptions {
  /** Bounded retries of BatchGetItem's UnprocessedKeys (DynamoDB returns them under throttling). */
  maxBatchRetries?: number;
  /** Base back-off in ms between UnprocessedKeys retries (doubles each time). */
  backoffMs?: number;
  /** What expiries are compared with (default: the system clock). */
  clock?: Clock;
}

/**
 * DocStore on one DynamoDB table with a string partition key `pk` and a string sort key `sk`
 * (see serverless.yml `CasesTable`). The client is injected so tests point it at dynalite or mock it.
 *
 * @example
 * const store = new DynamoDocStore(new DynamoDBClient({}), process.env.CLOSELOOP_TABLE ?? 'closeloop');
 * await store.put('cases', 'aws|arn:aws:s3:::b|S3.8', value, { expectVersion: 0 });
 */
export class DynamoDocStore implements DocStore {
  private readonly maxBatchRetries: number;
  private readonly backoffMs: number;
  private readonly clock: Clock;

  constructor(
    private readonly client: DynamoDBClient,
    readonly table: string,
    options: DynamoDocStoreOptions = {},
  ) {
    this.maxBatchRetries = options.maxBatchRetries ?? 8;
    this.backoffMs = options.backoffMs ?? 25;
    this.clock = options.clock ?? systemClock;
  }

  /** Now in epoch seconds, as `expiresAt` counts: an item with `expiresAt <= now` has expired. */
  private now(): AttributeValue {
    return { N: String(Math.floor(this.clock.now().getTime() / 1000)) };
  }

  /** Whether an item read has not expired (TTL may not have deleted it yet). */
  private live(item: Item): boolean {
    return (num(item, EXPIRES_ATTRIBUTE) ?? Infinity) > +(this.now().N as string);
  }

  async get(collection: string, id: string): Promise<StoredDoc | undefined> {
    const out = await this.call('GetItem', () =>
      this.client.send(
        new GetItemCommand({
          TableName: this.table,
          Key: { pk: { S: docPk(collection) }, sk: { S: id } },
          // Strongly consistent: mutateDoc reads then writes at the version it read.
          ConsistentRead: true,
        }),
      ),
    );
    return out.Item && this.live(out.Item) ? toDoc(out.Item) : undefined;
  }

  async put(collection: string, id: string, value: unknown, options: PutOptions = {}): Promise<number | null> {
    const key = { pk: { S: docPk(collection) }, sk: { S: id } };
    const doc = { S: JSON.stringify(value) };
    const expect = options.expectVersion;
    // Rounded up: a document expires at the second after its time, never before it.
    const x = options.expiresAt && { N: String(Math.ceil(options.expiresAt.getTime() / 1000)) };
    try {
      if (expect === undefined) {
        // Unconditional: bump whatever version is there (ADD treats a missing attribute as 0), and set the
        // expiry or take it off (each put sets it anew).
        const out = await this.client.send(
          new UpdateItemCommand({
            TableName: this.table,
            Key: key,
            UpdateExpression: x
              ? 'SET #doc = :doc, expiresAt = :x ADD #v :one'
              : 'SET #doc = :doc ADD #v :one REMOVE expiresAt',
            ExpressionAttributeNames: { '#doc': 'doc', '#v': 'v' },
            ExpressionAttributeValues: { ':doc': doc, ':one': { N: '1' }, ...(x ? { ':x': x } : {}) },
            ReturnValues: 'UPDATED_NEW',
          }),
        );
        return num(out.Attributes, 'v') ?? 1;
      }
      // An expired item is absent: a create replaces it, an update of it fails (`NOT` of a comparison with a
      // missing attribute holds).
      await this.client.send(
        new PutItemCommand({
          TableName: this.table,
          Item: { ...key, doc, v: { N: String(expect + 1) }, ...(x ? { [EXPIRES_ATTRIBUTE]: x } : {}) },
          ...(expect === 0 ? this.when(`NOT (${LIVE})`) : this.when(`#v = :expect AND ${LIVE}`, expect)),
        }),
      );
      return expect + 1;
    } catch (e) {
      if (e instanceof ConditionalCheckFailedException) return null;
      throw await classify('PutItem', e);
    }
  }

  async delete(collection: string, id: string, options: PutOptions = {}): Promise<boolean> {
    const expect = options.expectVersion;
    try {
      await this.client.send(
        new DeleteItemCommand({
          TableName: this.table,
          Key: { pk: { S: docPk(collection) }, sk: { S: id } },
          // Both forms need the item to exist, unexpired: the port returns false for a missing document.
          ...this.when(expect === undefined ? LIVE : `#v = :expect AND ${LIVE}`, expect),
        }),
      );
      return true;
    } catch (e) {
      if (e instanceof ConditionalCheckFailedException) return false;
      throw await classify('DeleteItem', e);
    }
  }

  /** A condition naming `:now` (see {@link LIVE}) and, with `expect`, the version `#v = :expect`. */
  private when(condition: string, expect?: number) {
    const now = { ':now': this.now() };
    return expect === undefined
      ? { ConditionExpression: condition, ExpressionAttributeValues: now }
      : {
          ConditionExpression: condition,
          ExpressionAttributeNames: { '#v': 'v' },
          ExpressionAttributeValues: { ...now, ':expect': { N: String(expect) } },
        };
  }

  async list(
    collection: string,
    options: { prefix?: string; after?: string; limit?: number } = {},
  ): Promise<StoredDoc[]> {
    const { prefix, after, limit } = options;
    if (limit !== undefined && limit <= 0) return [];
    // One key condition on sk only: start from whichever bound is tighter, filter the other here.
    const useAfter = after !== undefined && (prefix === undefined || after >= prefix);
    const names: Record<string, string> = { '#pk': 'pk' };
    const values: Item = { ':pk': { S: docPk(collection) } };
    let condition = '#pk = :pk';
    if (useAfter) {
      condition += ' AND #sk > :after';
      names['#sk'] = 'sk';
      values[':after'] = { S: after };
    } else if (prefix !== undefined) {
      condition += ' AND begins_with(#sk, :prefix)';
      names['#sk'] = 'sk';
      values[':prefix'] = { S: prefix };
    }
    const out: StoredDoc[] = [];
    let start: Item | undefined;
    do {
      const page = await this.call('Query', () =>
        this.client.send(
          new QueryCommand({
            TableName: this.table,
            KeyConditionExpression: condition,
            ExpressionAttributeNames: names,
            ExpressionAttributeValues: values,
            ConsistentRead: true,
            ...(limit !== undefined && prefix === undefined ? { Limit: limit - out.length } : {}),
            ...(start ? { ExclusiveStartKey: start } : {}),
          }),
        ),
      );
      for (const item of page.Items ?? []) {
        const doc = toDoc(item);
        if (prefix !== undefined && !doc.id.startsWith(prefix)) {
          // Sorted by sk: once past the prefix range nothing further can match.
          if (doc.id > prefix) return out;
          continue;
        }
        if ((after !== undefined && doc.id <= after) || !this.live(item)) continue;
        out.push(doc);
        if (limit !== undefined && out.length >= limit) return out;
      }
      start = page.LastEvaluatedKey;
    } while (start);
    return out;
  }

  /**
   * Idempotent on `id`, crash-safe without transactions (dynalite has none): take a sequence number from
   * the counter (ADD), then commit with a conditional put of the guard item (which also holds the value),
   * then materialize the ordered entry. A retry after a crash between guard and entry finds the guard and
   * repairs the entry, so an at-least-once redelivery never loses an appended item. Sequence numbers
   * taken by a losing duplicate leave gaps; readers only rely on order.
   */
  async append(log: string, id: string, value: unknown): Promise<boolean> {
    const doc = JSON.stringify(value);
    const seq = await this.nextSeq(log);
    try {
      await this.client.send(
        new PutItemCommand({
          TableName: this.table,
          Item: { pk: { S: guardPk(log) }, sk: { S: id }, seq: { N: String(seq) }, doc: { S: doc } },
          ConditionExpression: 'attribute_not_exists(pk)',
        }),
      );
    } catch (e) {
      if (!(e instanceof ConditionalCheckFailedException)) throw await classify('PutItem', e);
      await this.repairEntry(log, id);
      return false;
    }
    await this.putEntry(log, id, seq, doc);
    return true;
  }

  async readLog(
    log: string,
    options: { after?: number; limit?: number } = {},
  ): Promise<Array<{ seq: number; id: string; value: unknown }>> {
    const out: Array<{ seq: number; id: string; value: unknown }> = [];
    if (options.limit !== undefined && options.limit <= 0) return out;
    let start: Item | undefined;
    do {
      const page = await this.call('Query', () =>
        this.client.send(
          new QueryCommand({
            TableName: this.table,
            KeyConditionExpression: '#pk = :pk AND #sk > :after',
            ExpressionAttributeNames: { '#pk': 'pk', '#sk': 'sk' },
            ExpressionAttributeValues: { ':pk': { S: logPk(log) }, ':after': { S: padSeq(options.after ?? 0) } },
            ConsistentRead: true,
            ...(options.limit !== undefined ? { Limit: options.limit - out.length } : {}),
            ...(start ? { ExclusiveStartKey: start } : {}),
          }),
        ),
      );
      for (const item of page.Items ?? []) {
        out.push({
          seq: Number(str(item, 'sk')),
          id: str(item, 'id') ?? '',
          value: JSON.parse(str(item, 'doc') ?? 'null'),
        });
        if (options.limit !== undefined && out.length >= options.limit) return out;
      }
      start = page.LastEvaluatedKey;
    } while (start);
    return out;
  }

  async getMany(collection: string, ids: readonly string[]): Promise<Map<string, StoredDoc>> {
    const out = new Map<string, StoredDoc>();
    const unique = [...new Set(ids)];
    // BatchGetItem takes at most 100 keys per call.
    for (let i = 0; i < unique.length; i += 100) {
      let keys: Item[] = unique.slice(i, i + 100).map((id) => ({ pk: { S: docPk(collection) }, sk: { S: id } }));
      for (let attempt = 0; keys.length > 0; attempt++) {
        if (attempt > this.maxBatchRetries) {
          throw new AdapterError(
            'throttled',
            `BatchGetItem: ${keys.length} keys still unprocessed after ${attempt} tries`,
          );
        }
        if (attempt > 0) await sleep(this.backoffMs * 2 ** (attempt - 1));
        const requested = keys;
        const page = await this.call('BatchGetItem', () =>
          this.client.send(
            new BatchGetItemCommand({
              RequestItems: { [this.table]: { Keys: requested, ConsistentRead: true } },
            }),
          ),
        );
        for (const item of page.Responses?.[this.table] ?? []) {
          if (!this.live(item)) continue;
          const doc = toDoc(item);
          out.set(doc.id, doc);
        }
        keys = page.UnprocessedKeys?.[this.table]?.Keys ?? [];
      }
    }
    return out;
  }

  /** Parallel conditional puts and appends: each stands on its own condition, as the port specifies. */
  async writeBatch(batch: WriteBatch): Promise<{ puts: Array<number | null>; appends: boolean[] }> {
    const [puts, appends] = await Promise.all([
      Promise.all(batch.puts.map((p) => this.put(p.collection, p.id, p.value, putOptionsOf(p)))),
      Promise.all(batch.appends.map((a) => this.append(a.log, a.id, a.value))),
    ]);
    return { puts, appends };
  }

  async close(): Promise<void> {
    // The client is injected and may be shared by other adapters in the container: its owner destroys it.
  }

  private async nextSeq(log: string): Promise<number> {
    const out = await this.call('UpdateItem', () =>
      this.client.send(
        new UpdateItemCommand({
          TableName: this.table,
          Key: { pk: { S: counterPk(log) }, sk: { S: '#' } },
          UpdateExpression: 'ADD #n :one',
          ExpressionAttributeNames: { '#n': 'n' },
          ExpressionAttributeValues: { ':one': { N: '1' } },
          ReturnValues: 'UPDATED_NEW',
        }),
      ),
    );
    const seq = num(out.Attributes, 'n');
    if (seq === undefined) throw new AdapterError('transient', `UpdateItem: no sequence returned for log ${log}`);
    return seq;
  }

  private async putEntry(log: string, id: string, seq: number, doc: string): Promise<void> {
    try {
      await this.client.send(
        new PutItemCommand({
          TableName: this.table,
          Item: { pk: { S: logPk(log) }, sk: { S: padSeq(seq) }, id: { S: id }, doc: { S: doc } },
          ConditionExpression: 'attribute_not_exists(pk)',
        }),
      );
    } catch (e) {
      // Already materialized (by a concurrent repair): same seq, same content.
      if (!(e instanceof ConditionalCheckFailedException)) throw await classify('PutItem', e);
    }
  }

  private async repairEntry(log: string, id: string): Promise<void> {
    const guard = await this.call('GetItem', () =>
      this.client.send(
        new GetItemCommand({
          TableName: this.table,
          Key: { pk: { S: guardPk(log) }, sk: { S: id } },
          ConsistentRead: true,
        }),
      ),
    );
    const seq = num(guard.Item, 'seq');
    const doc = str(guard.Item, 'doc');
    if (seq !== undefined && doc !== undefined) await this.putEntry(log, id, seq, doc);
  }

  private async call<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      throw await classify(operation, e);
    }
  }
}

function toDoc(item: Item): StoredDoc {
  return { id: str(item, 'sk') ?? '', value: JSON.parse(str(item, 'doc') ?? 'null'), version: num(item, 'v') ?? 0 };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Maps an SDK error to the AdapterError family (house style §6). The mapping loads on the first error: it is
 * off the cold start of every function (the ingest's bundle has a byte budget, test/infra/serverless.test.ts).
 */
async function classify(operation: string, e: unknown): Promise<AdapterError> {
  return e instanceof AdapterError ? e : (await import('./dynamodb-errors.js')).classify(operation, e);
}
