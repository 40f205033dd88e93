/** In-memory DocStore: for tests and for `closeloop plan` (which must not write anything). */
import {
  type Clock,
  type DocStore,
  type PutOptions,
  type StoredDoc,
  systemClock,
  type WriteBatch,
} from '../../core/ports.js';
import { getEach, writeEach } from '../../core/store/docs.js';

/** A stored document and when it expires (ms since the epoch; absent: never). */
type Entry = StoredDoc & { expiresAt?: number };

export interface MemoryDocStoreOptions {
  /**
   * What expiries are compared with (default: the system clock). A test whose stages run on a fixed clock
   * gives the store the same clock: markers written on it would otherwise expire, or never, by the wall clock.
   */
  clock?: Clock;
}

export class MemoryDocStore implements DocStore {
  private readonly collections = new Map<string, Map<string, Entry>>();
  private readonly logs = new Map<string, Array<{ seq: number; id: string; value: unknown }>>();
  private readonly logIds = new Map<string, Set<string>>();
  private readonly clock: Clock;

  constructor(options: MemoryDocStoreOptions = {}) {
    this.clock = options.clock ?? systemClock;
  }

  private coll(name: string): Map<string, Entry> {
    let c = this.collections.get(name);
    if (!c) {
      c = new Map();
      this.collections.set(name, c);
    }
    return c;
  }

  /**
   * The document unless it expired. An expired one stays in the map until overwritten: this store lives for a
   * test or one `closeloop plan`, and the overlay view needs to know it wrote the id (see {@link holds}).
   */
  private live(collection: string, id: string): Entry | undefined {
    const doc = this.coll(collection).get(id);
    return doc?.expiresAt !== undefined && doc.expiresAt <= this.clock.now().getTime() ? undefined : doc;
  }

  async get(collection: string, id: string): Promise<StoredDoc | undefined> {
    const doc = this.live(collection, id);
    return doc ? { id, value: structuredClone(doc.value), version: doc.version } : undefined;
  }

  async put(collection: string, id: string, value: unknown, options: PutOptions = {}): Promise<number | null> {
    const current = this.live(collection, id);
    if (options.expectVersion !== undefined && (current?.version ?? 0) !== options.expectVersion) return null;
    const version = (current?.version ?? 0) + 1;
    this.setVersioned(collection, id, value, version, options.expiresAt);
    return version;
  }

  /** Stores a document at an exact version (used by the overlay view to continue a base store's versions). */
  setVersioned(collection: string, id: string, value: unknown, version: number, expiresAt?: Date): void {
    const doc: Entry = { id, value: structuredClone(value), version };
    if (expiresAt) doc.expiresAt = expiresAt.getTime();
    this.coll(collection).set(id, doc);
  }

  /** Whether `id` was written here and not deleted, expired or not (the overlay view: it hides the base's copy). */
  holds(collection: string, id: string): boolean {
    return this.coll(collection).has(id);
  }

  async delete(collection: string, id: string, options: PutOptions = {}): Promise<boolean> {
    const current = this.live(collection, id);
    if (!current) return false;
    if (options.expectVersion !== undefined && current.version !== options.expectVersion) return false;
    return this.coll(collection).delete(id);
  }

  async list(
    collection: string,
    options: { prefix?: string; after?: string; limit?: number } = {},
  ): Promise<StoredDoc[]> {
    const ids = [...this.coll(collection).keys()].sort();
    const out: StoredDoc[] = [];
    for (const id of ids) {
      if (options.prefix !== undefined && !id.startsWith(options.prefix)) continue;
      if (options.after !== undefined && id <= options.after) continue;
      const doc = this.live(collection, id);
      if (doc) out.push({ id, value: structuredClone(doc.value), version: doc.version });
      if (options.limit !== undefined && out.length >= options.limit) break;
    }
    return out;
  }
  async append(log: string, id: string, value: unknown): Promise<boolean> {
    let ids = this.logIds.get(log);
    if (!ids) {
      ids = new Set();
      this.logIds.set(log, ids);
    }
    if (ids.has(id)) return false;
    ids.add(id);
    let entries = this.logs.get(log);
    if (!entries) {
      entries = [];
      this.logs.set(log, entries);
    }
    entries.push({ seq: entries.length + 1, id, value: structuredClone(value) });
    return true;
  }

  async readLog(
    log: string,
    options: { after?: number; limit?: number } = {},
  ): Promise<Array<{ seq: number; id: string; value: unknown }>> {
    const entries = (this.logs.get(log) ?? []).filter((e) => e.seq > (options.after ?? 0));
    return structuredClone(options.limit !== undefined ? entries.slice(0, options.limit) : entries);
  }

  getMany(collection: string, ids: readonly string[]): Promise<Map<string, StoredDoc>> {
    return getEach(this, collection, ids);
  }

  writeBatch(batch: WriteBatch): Promise<{ puts: Array<number | null>; appends: boolean[] }> {
    return writeEach(this, batch);
  }

  async close(): Promise<void> {}
}
