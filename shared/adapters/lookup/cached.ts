/**
 * A cache in front of a live lookup: entries live `ttlMs`, at most `maxEntries` are kept (the oldest
 * goes first), and concurrent asks for the same resource share one call. Failures are not cached, so
 * the next finding tries again. `tagsForMany` answers what it holds and asks the inner lookup for the
 * rest in one batch.
 */
import {
  type Clock,
  canRead,
  type LookupOutcome,
  lookupMany,
  type OwnerLookup,
  type ResourceRef,
  resourceKey,
  systemClock,
} from '../../core/ports.js';

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

  handles(provider: ResourceRef['provider']): boolean {
    return canRead(this.inner, provider);
  }

  /** A cached or in-flight answer for `key`, else undefined (an expired entry is dropped). */
  private known(key: string): Record<string, string> | Promise<Record<string, string>> | undefined {
    const hit = this.entries.get(key);
    if (hit && hit.expiresAt > this.clock.now().getTime()) return hit.tags;
    if (hit) this.entries.delete(key);
    return this.inFlight.get(key);
  }

  /** Shares `call` with concurrent asks for `key` and keeps its answer when it succeeds. */
  private track(key: string, call: Promise<Record<string, string>>): Promise<Record<string, string>> {
    const kept = call.then((tags) => {
      this.entries.set(key, { tags, expiresAt: this.clock.now().getTime() + this.options.ttlMs });
      while (this.entries.size > this.options.maxEntries) {
        const oldest = this.entries.keys().next();
        if (oldest.done) break;
        this.entries.delete(oldest.value);
      }
      return tags;
    });
    this.inFlight.set(key, kept);
    const done = () => {
      if (this.inFlight.get(key) === kept) this.inFlight.delete(key);
    };
    kept.then(done, done);
    return kept;
  }

  async tagsFor(r: ResourceRef): Promise<Record<string, string>> {
    const key = resourceKey(r);
    const known = this.known(key);
    if (known) return { ...(await known) };
    return { ...(await this.track(key, this.inner.tagsFor(r))) };
  }

  async tagsForMany(refs: readonly ResourceRef[]): Promise<LookupOutcome[]> {
    const answers: Array<Record<string, string> | Promise<Record<string, string>>> = [];
    const missing = new Map<string, { ref: ResourceRef; settle: (o: LookupOutcome) => void }>();
    for (const r of refs) {
      const key = resourceKey(r);
      const known = this.known(key);
      if (known) {
        answers.push(known);
        continue;
      }
      if (!missing.has(key)) {
        // In flight from now on: a concurrent ask for the same resource waits for this batch's answer.
        let settle: (o: LookupOutcome) => void = () => {};
        const outcome = new Promise<LookupOutcome>((resolve) => {
          settle = resolve;
        });
        this.track(
          key,
          outcome.then((o) => {
            if ('tags' in o) return o.tags;
            throw o.error;
          }),
        );
        missing.set(key, { ref: r, settle });
      }
      answers.push(this.inFlight.get(key) as Promise<Record<string, string>>);
    }
    if (missing.size > 0) {
      const asked = [...missing.values()];
      const outcomes = await lookupMany(
        this.inner,
        asked.map((m) => m.ref),
      );
      asked.forEach((m, i) => {
        m.settle(outcomes[i] as LookupOutcome);
      });
    }
    return Promise.all(
      answers.map((a) =>
        Promise.resolve(a).then(
          (tags): LookupOutcome => ({ tags: { ...tags } }),
          (error: unknown): LookupOutcome => ({ error }),
        ),
      ),
    );
  }
}
