/**
 * A cache in front of a live lookup: entries live `ttlMs`, at most `maxEntries` are kept (the oldest
 * goes first), and concurrent asks for the same resource share one call. Failures are not cached, so
 * the next finding tries again.
 */
import { type Clock, type OwnerLookup, type ResourceRef, systemClock } from '../../core/ports.js';

export interface CacheOptions {
  ttlMs: number;
  maxEntries: number;
  clock?: Clock;
}

/**
 * @example new CachedOwnerLookup(new RoutingOwnerLookup({ aws }), { ttlMs: 900_000, maxEntries: 10_000 })
 */
export class CachedOwnerLookup implements OwnerLookup {
  private readonly entries = new Map<string, { tags: Record<string, string>; expiresAt: number }>();
  private readonly inFlight = new Map<string, Promise<Record<string, string>>>();
  private readonly clock: Clock;

  constructor(
    private readonly inner: OwnerLookup,
    private readonly options: CacheOptions,
  ) {
    this.clock = options.clock ?? systemClock;
  }

  /** Number of cached entries (for tests and metrics). */
  get size(): number {
    return this.entries.size;
  }

  async tagsFor(r: ResourceRef): Promise<Record<string, string>> {
    // Azure ids are case-insensitive: one resource, one entry.
    const key = `${r.provider}|${r.provider === 'azure' ? r.id.toLowerCase() : r.id}`;
    const now = this.clock.now().getTime();
    const hit = this.entries.get(key);
    if (hit && hit.expiresAt > now) return { ...hit.tags };
    if (hit) this.entries.delete(key);
    const pending = this.inFlight.get(key);
    if (pending) return { ...(await pending) };
    const call = this.inner.tagsFor(r);
    this.inFlight.set(key, call);
    try {
      const tags = await call;
      this.entries.set(key, { tags, expiresAt: this.clock.now().getTime() + this.options.ttlMs });
      while (this.entries.size > this.options.maxEntries) {
        const oldest = this.entries.keys().next();
        if (oldest.done) break;
        this.entries.delete(oldest.value);
      }
      return { ...tags };
    } finally {
      this.inFlight.delete(key);
    }
  }
}
