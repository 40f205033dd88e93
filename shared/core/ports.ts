/**
 * The core's only doors to the outside world. Feature-specific ports live beside the code that
 * consumes them (tickets/ports.ts, remediation/ports.ts, verify/ports.ts), each with exactly the calls made.
 */
import type { PipelineEvent } from './model/events.js';

export interface Clock {
  now(): Date;
}
export const systemClock: Clock = { now: () => new Date() };

export type LogFn = (msg: string, data?: Record<string, unknown>) => void;
export interface Logger {
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
}
const noop: LogFn = () => {};
export const silentLogger: Logger = { debug: noop, info: noop, warn: noop, error: noop };

/** A stored JSON document with its version (for conditional writes). */
export interface StoredDoc {
  id: string;
  value: unknown;
  version: number;
}

export interface PutOptions {
  /** 0: the document must not exist yet; n > 0: it must be at version n. Omitted: unconditional. */
  expectVersion?: number;
  /**
   * When the written document expires (a put's only; `delete` ignores it). From then on the store treats it as
   * absent: reads leave it out, a create (`expectVersion: 0`) takes its id again (at version 1), an update or a
   * delete of it fails. The store removes it later, when it gets to it (DynamoDB's TTL, up to days later;
   * SQLite when opened and a few at a time as it writes). Every put sets it anew: one without it makes the
   * document permanent. For bookkeeping that only ever grows (once-markers, delivery records, per-hour counters),
   * never for the product's data.
   */
  expiresAt?: Date;
}

/**
 * A small document store with conditional writes: the lowest common denominator of SQLite
 * (the embedded default), DynamoDB (the AWS hub) and memory (tests). Every repository in the core
 * (findings, cases, exceptions, ticket ledger, outbox, action ledger, dead letters) is built on it.
 * Values are plain JSON.
 */
export interface DocStore {
  get(collection: string, id: string): Promise<StoredDoc | undefined>;
  /** Returns the new version, or null when the condition failed (someone else wrote first). */
  put(collection: string, id: string, value: unknown, options?: PutOptions): Promise<number | null>;
  /** Returns false when the condition failed or the document did not exist. */
  delete(collection: string, id: string, options?: PutOptions): Promise<boolean>;
  /** Documents in id order (ascending), optionally only ids starting with `prefix`, after id `after`. */
  list(collection: string, options?: { prefix?: string; after?: string; limit?: number }): Promise<StoredDoc[]>;
  /** Appends to an ordered log; idempotent on `id` (returns false when the id is already there). */
  append(log: string, id: string, value: unknown): Promise<boolean>;
  /** Reads a log in append order from sequence `after` (exclusive). */
  readLog(
    log: string,
    options?: { after?: number; limit?: number },
  ): Promise<Array<{ seq: number; id: string; value: unknown }>>;
  /** Several documents of one collection in one round trip (missing ids are absent from the map). */
  getMany(collection: string, ids: readonly string[]): Promise<Map<string, StoredDoc>>;
  /**
   * Several conditional puts and log appends in one round trip. Each put succeeds or fails on its own
   * condition (not all-or-nothing); the caller retries the failed ones one by one with `mutateDoc`.
   */
  writeBatch(batch: WriteBatch): Promise<{ puts: Array<number | null>; appends: boolean[] }>;
  close(): Promise<void>;
}

export interface WriteBatch {
  puts: Array<{ collection: string; id: string; value: unknown; expectVersion?: number; expiresAt?: Date }>;
  appends: Array<{ log: string; id: string; value: unknown }>;
  /**
   * The caller does not use the appends' outcomes (an append is idempotent on its id either way): a store
   * may skip working them out and answer `appends: []`.
   */
  appendsUnread?: boolean;
}

/** Publishes closeloop's own events to the next stages (in-process locally, EventBridge/SQS in AWS). */
export interface EventBus {
  publish(events: readonly PipelineEvent[]): Promise<void>;
}

/** Reference to a resource for live lookups. */
export interface ResourceRef {
  provider: 'aws' | 'azure' | 'gcp';
  id: string;
  account: string;
  region: string | null;
}

/** What a live lookup read for one resource. */
export interface LookupTags {
  /**
   * Every tag that applies to the resource: its own over those it takes from its container (a GCP
   * project's labels, an Azure resource group's tags over its subscription's). The skip-tag gates read all of
   * them: a skip label on the project, a skip tag on the resource group or the subscription, stops a fix.
   */
  tags: Record<string, string>;
  /**
   * Those of `tags` that come from the container, not the resource (GCP: the project's labels the resource
   * does not override; Azure: its resource group's tags and its subscription's, which ARM does not copy onto
   * the resource).
   * Enrichment ranks them with the registry's account entry, after registry rules: a project-wide `owner`
   * label does not outrank a rule naming one resource. Absent: all are the resource's.
   */
  inherited?: Record<string, string> | undefined;
  /**
   * Azure only: where each key of `inherited` comes from, its resource group or its subscription (whose tags
   * ARM does not copy either; a key the resource or its group has wins over the subscription's). Provenance
   * names the level, and a group's tag outranks its subscription's for one field. Absent (GCP, an older spoke's
   * message), or a key not in it: the container's (GCP project, Azure resource group).
   */
  inheritedFrom?: Record<string, 'group' | 'subscription'> | undefined;
}

/** One answer of {@link OwnerLookup.tagsForMany}: the resource's tags, or why they could not be read. */
export type LookupOutcome = LookupTags | { error: unknown };

/** Live tag/label lookup (AWS Resource Groups Tagging API, Azure resource tags, GCP labels). */
export interface OwnerLookup {
  tagsFor(r: ResourceRef): Promise<Record<string, string>>;
  /**
   * Many resources at once, one outcome per ref in order (a failure is an outcome, never a throw).
   * Adapters with a batch call implement it (AWS: 100 ARNs per `GetResources`); without it, callers go
   * through {@link lookupMany}'s bounded fan-out of `tagsFor`.
   */
  tagsForMany?(refs: readonly ResourceRef[]): Promise<LookupOutcome[]>;
  /**
   * Whether this lookup can read the live tags of `provider`'s resources at all (the AWS hub reads AWS
   * tags only). Absent: every provider. A provider it cannot read is not a lookup that found no tags.
   */
  handles?(provider: ResourceRef['provider']): boolean;
}

/** Whether `lookup` can read the live tags of `provider`'s resources (no `handles`: every provider's). */
export const canRead = (lookup: OwnerLookup, provider: ResourceRef['provider']): boolean =>
  lookup.handles === undefined || lookup.handles(provider);

/** The ref of a finding's resource. */
export const refOf = (r: ResourceRef): ResourceRef => ({
  provider: r.provider,
  id: r.id,
  account: r.account,
  region: r.region,
});

/** One key per resource, for caches and de-duplication: Azure ids are case-insensitive. */
export const resourceKey = (r: Pick<ResourceRef, 'provider' | 'id'>): string =>
  `${r.provider}|${r.provider === 'azure' ? r.id.toLowerCase() : r.id}`;

/** Parallel calls of the fan-out in {@link lookupMany} (the providers' own rate limits are far above it). */
export const LOOKUP_CONCURRENCY = 8;

/**
 * Outcomes for `refs`, one per ref in order, never a throw: the lookup's batch call when it has one, else
 * `tagsFor` with at most `concurrency` calls in flight. A batch call that throws is every ref's error; a
 * ref it leaves unanswered, an error of its own.
 */
export async function lookupMany(
  lookup: OwnerLookup,
  refs: readonly ResourceRef[],
  concurrency = LOOKUP_CONCURRENCY,
): Promise<LookupOutcome[]> {
  if (refs.length === 0) return [];
  let outcomes: LookupOutcome[];
  try {
    outcomes = lookup.tagsForMany
      ? await lookup.tagsForMany(refs)
      : await mapBounded(refs, concurrency, (r) =>
          lookup.tagsFor(r).then(
            (tags): LookupOutcome => ({ tags }),
            (error: unknown): LookupOutcome => ({ error }),
          ),
        );
  } catch (error) {
    return refs.map(() => ({ error }));
  }
  return refs.map((_, i) => outcomes[i] ?? { error: new Error('the lookup gave no answer') });
}

/**
 * Each resource's answer of `labelsFor` (its tags and what it inherits), a failure as its outcome, at most
 * {@link LOOKUP_CONCURRENCY} at once: the `tagsForMany` of the lookups whose containers' tags are read once for
 * all their resources (GCP projects, Azure resource groups and subscriptions).
 */
export function settledLookups(
  refs: readonly ResourceRef[],
  labelsFor: (r: ResourceRef) => Promise<LookupTags>,
): Promise<LookupOutcome[]> {
  return mapBounded(refs, LOOKUP_CONCURRENCY, (r) =>
    labelsFor(r).then(
      (o): LookupOutcome => o,
      (error: unknown): LookupOutcome => ({ error }),
    ),
  );
}

/** `fn` over `items` with at most `limit` calls pending at once; results in the items' order. */
export async function mapBounded<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return out;
}
