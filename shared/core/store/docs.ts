/**
 * Typed access to DocStore collections with optimistic concurrency: every read-modify-write goes
 * through `mutateDoc`, which retries when another writer won the race. This is what makes each side
 * effect idempotent under concurrent at-least-once delivery, on SQLite and DynamoDB alike.
 */
import type * as z from 'zod';
import { ConflictError } from '../errors.js';
import type { DocStore, PutOptions, StoredDoc, WriteBatch } from '../ports.js';
import { parseWithoutCopy } from '../util/accept.js';

export interface Versioned<T> {
  value: T;
  version: number;
}

export async function getDoc<S extends z.ZodType>(
  store: DocStore,
  collection: string,
  id: string,
  schema: S,
): Promise<Versioned<z.infer<S>> | undefined> {
  const doc = await store.get(collection, id);
  if (!doc) return undefined;
  // Stores hand out fresh values (parsed JSON, clones), so a valid one is used as it is, not copied.
  return { value: parseWithoutCopy(schema, doc.value) as z.infer<S>, version: doc.version };
}

export interface MutateResult<T> {
  previous: T | undefined;
  value: T | undefined;
  changed: boolean;
  version: number;
}

/**
 * Reads the document, lets `fn` compute the next value (return `undefined` to change nothing) and
 * writes it only if nobody wrote in between; on a lost race it reads again and re-runs `fn`.
 * `fn` must be pure: it may run more than once. `options.beforeWrite` runs before each write attempt with
 * the value about to be written: a write-ahead (events kept before the state they announce). `options.expiresAt`:
 * the written document's expiry (see {@link PutOptions.expiresAt}).
 */
export async function mutateDoc<S extends z.ZodType>(
  store: DocStore,
  collection: string,
  id: string,
  schema: S,
  fn: (current: z.infer<S> | undefined) => z.infer<S> | undefined,
  options: { maxAttempts?: number; beforeWrite?: (next: z.infer<S>) => Promise<void>; expiresAt?: Date } = {},
): Promise<MutateResult<z.infer<S>>> {
  const maxAttempts = options.maxAttempts ?? 50;
  for (let attempt = 1; attempt <= maxAttempts; attempt++) {
    const current = await getDoc(store, collection, id, schema);
    const next = fn(current?.value);
    if (next === undefined) {
      return { previous: current?.value, value: current?.value, changed: false, version: current?.version ?? 0 };
    }
    const valid = parseWithoutCopy(schema, next) as z.infer<S>;
    await options.beforeWrite?.(valid);
    const expectVersion = current?.version ?? 0;
    const version = await store.put(
      collection,
      id,
      valid,
      options.expiresAt ? { expectVersion, expiresAt: options.expiresAt } : { expectVersion },
    );
    if (version !== null) return { previous: current?.value, value: valid, changed: true, version };
    // Lost the race: someone else wrote first. Back off a little so concurrent writers interleave.
    await new Promise((r) => setTimeout(r, Math.min(50, attempt * 2) * Math.random()));
  }
  throw new ConflictError(`${collection}/${id}: gave up after ${maxAttempts} conflicting writes`);
}

/**
 * `getMany` for stores without a batched read: one `get` per id (the in-memory and overlay stores).
 * @example getMany = (c, ids) => getEach(this, c, ids);
 */
export async function getEach(
  store: Pick<DocStore, 'get'>,
  collection: string,
  ids: readonly string[],
): Promise<Map<string, StoredDoc>> {
  const out = new Map<string, StoredDoc>();
  for (const id of ids) {
    const doc = await store.get(collection, id);
    if (doc) out.set(id, doc);
  }
  return out;
}

/** A batch put's own conditions as {@link PutOptions} (`exactOptionalPropertyTypes`: no undefined values). */
export const putOptionsOf = (p: WriteBatch['puts'][number]): PutOptions => ({
  ...(p.expectVersion !== undefined ? { expectVersion: p.expectVersion } : {}),
  ...(p.expiresAt !== undefined ? { expiresAt: p.expiresAt } : {}),
});

/**
 * `writeBatch` for stores without a transaction: each put and append in order, with the same per-entry
 * outcomes a batched store reports (a put's new version or null on a version conflict; whether an append was new).
 */
export async function writeEach(
  store: Pick<DocStore, 'put' | 'append'>,
  batch: WriteBatch,
): Promise<{ puts: Array<number | null>; appends: boolean[] }> {
  const puts: Array<number | null> = [];
  for (const p of batch.puts) {
    puts.push(await store.put(p.collection, p.id, p.value, putOptionsOf(p)));
  }
  const appends: boolean[] = [];
  for (const a of batch.appends) appends.push(await store.append(a.log, a.id, a.value));
  return { puts, appends };
}
