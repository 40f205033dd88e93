/**
 * A cache in front of a live lookup: entries live `ttlMs`, at most `maxEntries` are kept (the oldest
 * goes first), and concurrent asks for the same resource share one call. Failures are not cached, so
 * the next finding tries again. `tagsForMany` answers what it holds and asks the inner lookup for the
 * rest in one batch. An answer is kept whole: which of the tags the resource takes from its container
 * (`inherited`: GCP project labels, Azure resource group and subscription tags) and, on Azure, from which of
 * the two (`inheritedFrom`) are cached with them.
 */
import {
  type Clock,
  canRead,
  type LookupOutcome,
  type LookupTags,
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
  private readonly entries = new Map<string, { answer: LookupTags; expiresAt: number }>();
  private readonly inFlight = new Map<string, Promise<LookupTags>>();
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
  private known(key: string): LookupTags | Promise<LookupTags> | undefined {
    const hit = this.entries.get(key);
    if (hit && hit.expiresAt > this.clock.now().getTime()) return hit.answer;
    if (hit) this.entries.delete(key);
    return this.inFlight.get(key);
  }

  /** Shares `call` with concurrent asks for `key` and keeps its answer when it succeeds. */
  private track(key: string, call: Promise<LookupTags>): Promise<LookupTags> {
    const kept = call.then((answer) => {
      this.entries.set(key, { answer, expiresAt: this.clock.now().getTime() + this.options.ttlMs });
      while (this.entries.size > this.options.maxEntries) {
        const oldest = this.entries.keys().next();
        if (oldest.done) break;
        this.entries.delete(oldest.value);
      }
      return answer;
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
    const known = this.known(key) ?? this.track(key, this.ask(r));
    return { ...(await known).tags };
  }

  /** The inner lookup's whole answer for `r` (its batch call when it has one: that one says `inherited`). */
  private async ask(r: ResourceRef): Promise<LookupTags> {
    const [outcome] = await lookupMany(this.inner, [r]);
    if (outcome === undefined || 'error' in outcome) throw outcome?.error;
    return outcome;
  }

  async tagsForMany(refs: readonly ResourceRef[]): Promise<LookupOutcome[]> {
    const answers: Array<LookupTags | Promise<LookupTags>> = [];
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
            if ('tags' in o) return o;
            throw o.error;
          }),
        );
        missing.set(key, { ref: r, settle });
      }
      answers.push(this.inFlight.get(key) as Promise<LookupTags>);
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
          ({ tags, inherited, inheritedFrom }): LookupOutcome => {
            const o: LookupOutcome = { tags: { ...tags } };
            if (inherited !== undefined) o.inherited = { ...inherited };
            if (inheritedFrom !== undefined) o.inheritedFrom = { ...inheritedFrom };
            return o;
          },
          (error: unknown): LookupOutcome => ({ error }),
        ),
      ),
    );
  }
}
