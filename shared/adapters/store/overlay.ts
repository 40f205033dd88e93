/**
 * A copy-on-write view of a DocStore: reads fall through to the base store, writes stay in memory.
 * `closeloop plan` runs the whole pipeline on it, so it sees existing cases and exceptions but
 * changes nothing on disk.
 */
import type { Clock, DocStore, PutOptions, StoredDoc, WriteBatch } from '../../core/ports.js';
import { getEach, writeEach } from '../../core/store/docs.js';
import { MemoryDocStore } from './memory.js';

export class OverlayDocStore implements DocStore {
  private readonly top: MemoryDocStore;
  private readonly deleted = new Set<string>();

  /** `options.clock`: what the expiries of documents written to the view are compared with (see MemoryDocStore). */
  constructor(
    private readonly base: DocStore,
    options: { clock?: Clock } = {},
  ) {
    this.top = new MemoryDocStore(options.clock ? { clock: options.clock } : {});
  }

  private k(collection: string, id: string) {
    return `${collection}\u0000${id}`;
  }

  async get(collection: string, id: string): Promise<StoredDoc | undefined> {
    if (this.deleted.has(this.k(collection, id))) return undefined;
    // Written here (expired since, or not): the base's copy is the older one.
    if (this.top.holds(collection, id)) return this.top.get(collection, id);
    return this.base.get(collection, id);
  }

  /**
   * Conditional writes one at a time: each reads the version (from the base, asynchronously) then writes, and two
   * interleaved would both pass their condition (a lost update under mutateDoc's concurrent retries).
   */
  private writes: Promise<unknown> = Promise.resolve();

  put(collection: string, id: string, value: unknown, options: PutOptions = {}): Promise<number | null> {
    const write = this.writes.then(() => this.putNow(collection, id, value, options));
    this.writes = write.catch(() => {});
    return write;
  }

  private async putNow(collection: string, id: string, value: unknown, options: PutOptions): Promise<number | null> {
    const current = await this.get(collection, id);
    if (options.expectVersion !== undefined && (current?.version ?? 0) !== options.expectVersion) return null;
    const version = (current?.version ?? 0) + 1;
    this.deleted.delete(this.k(collection, id));
    this.top.setVersioned(collection, id, value, version, options.expiresAt);
    return version;
  }

  async delete(collection: string, id: string, options: PutOptions = {}): Promise<boolean> {
    const current = await this.get(collection, id);
    if (!current) return false;
    if (options.expectVersion !== undefined && current.version !== options.expectVersion) return false;
    await this.top.delete(collection, id);
    this.deleted.add(this.k(collection, id));
    return true;
  }

  async list(
    collection: string,
    options: { prefix?: string; after?: string; limit?: number } = {},
  ): Promise<StoredDoc[]> {
    const { limit, ...rest } = options;
    const merged = new Map<string, StoredDoc>();
    for (const d of await this.base.list(collection, rest)) if (!this.top.holds(collection, d.id)) merged.set(d.id, d);
    for (const d of await this.top.list(collection, rest)) merged.set(d.id, d);
    const out = [...merged.values()]
      .filter((d) => !this.deleted.has(this.k(collection, d.id)))
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    return limit !== undefined ? out.slice(0, limit) : out;
  }

  async append(log: string, id: string, value: unknown): Promise<boolean> {
    const existing = await this.base.readLog(log);
    if (existing.some((e) => e.id === id)) return false;
    return this.top.append(log, id, value);
  }

  async readLog(log: string, options: { after?: number; limit?: number } = {}) {
    const base = await this.base.readLog(log);
    const offset = base.at(-1)?.seq ?? 0;
    const top = (await this.top.readLog(log)).map((e) => ({ ...e, seq: e.seq + offset }));
    const all = [...base, ...top].filter((e) => e.seq > (options.after ?? 0));
    return options.limit !== undefined ? all.slice(0, options.limit) : all;
  }

  getMany(collection: string, ids: readonly string[]): Promise<Map<string, StoredDoc>> {
    return getEach(this, collection, ids);
  }

  writeBatch(batch: WriteBatch): Promise<{ puts: Array<number | null>; appends: boolean[] }> {
    return writeEach(this, batch);
  }

  /** Leaves the base store open: its owner closes it. */
  async close(): Promise<void> {}
}
