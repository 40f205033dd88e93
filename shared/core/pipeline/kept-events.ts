/**
 * Events kept in the store ahead of the state write they announce, until they are published.
 *
 * A stage that writes a case and then publishes what it did loses the events for good when the publish fails
 * or the process dies in between, wherever nothing would bring the work back: a sweep finds the case already
 * written and has nothing left to announce, a remote answer finds its request claimed. Such a stage keeps the
 * events first (one document per announcement), writes the case, publishes, and releases them; its next run
 * publishes what is left, oldest first. A separate write ahead, not the case's own batch: `writeBatch` is not
 * atomic (DynamoDB runs its puts in parallel), and events kept on the case would put one stage's bookkeeping
 * into the document every stage reads and writes.
 *
 * A kept entry may announce a state its case never got (the run died between the keep and the case write, or
 * lost the write's race): whoever publishes it first makes sure the case says what the events announce (the
 * verifier finishes from its evidence record; the exception sweep re-evaluates the case). Event ids are
 * deterministic, so an entry published twice (a release that failed) is a duplicate the stages do once.
 */
import * as z from 'zod';
import { errorMessage } from '../errors.js';
import { type PipelineEvent, PipelineEventSchema } from '../model/events.js';
import { TimestampSchema } from '../model/finding.js';
import type { Clock, DocStore, Logger } from '../ports.js';

const KeptDocSchema = z.object({
  events: z.array(PipelineEventSchema).min(1),
  /** When it was kept (absent on entries kept before it was recorded: they sort first). */
  at: TimestampSchema.optional(),
});

/** One kept announcement: its document id (its first event's id), when it was kept, and its events. */
export interface KeptEvents {
  id: string;
  at: string;
  events: PipelineEvent[];
}

export interface KeptDeps {
  store: DocStore;
  clock: Clock;
  log: Logger;
}

/** Documents read per round trip when listing what is kept. */
const PAGE = 100;

/**
 * Writes `events` to `collection` ahead of the state write they announce, under the first event's id (or
 * `id`, for a caller that finds them again by what caused them): keeping the same announcement again (a
 * retried run) rewrites the one document, never adds a second.
 */
export async function keepEvents(
  deps: KeptDeps,
  collection: string,
  events: readonly PipelineEvent[],
  id: string | undefined = events[0]?.id,
): Promise<void> {
  if (events.length === 0 || id === undefined) return;
  await deps.store.put(collection, id, { events, at: deps.clock.now().toISOString() });
}

/** The events kept under `id` in `collection`, or undefined when none are (or the document does not parse). */
export async function keptEvents(deps: KeptDeps, collection: string, id: string): Promise<PipelineEvent[] | undefined> {
  const doc = await deps.store.get(collection, id);
  const kept = doc ? KeptDocSchema.safeParse(doc.value) : undefined;
  return kept?.success ? kept.data.events : undefined;
}

/**
 * Removes published (or superseded) events from `collection`. A removal that fails is logged, not thrown: the
 * events were published, and the next run publishes them again, a duplicate (same ids) the stages do once.
 */
export async function releaseEvents(
  deps: KeptDeps,
  collection: string,
  events: readonly PipelineEvent[],
): Promise<void> {
  const first = events[0];
  if (!first) return;
  try {
    await deps.store.delete(collection, first.id);
  } catch (e) {
    deps.log.warn(`${collection}: published events stay kept; the next run publishes them again`, {
      id: first.id,
      error: errorMessage(e),
    });
  }
}

/**
 * What `collection` keeps, oldest first (then by id), at most `limit` entries. Every document is read (ids are
 * event ids, in no time order), a page at a time; a document that does not parse is logged and left alone.
 */
export async function keptOldestFirst(
  deps: KeptDeps,
  collection: string,
  options: { limit?: number } = {},
): Promise<KeptEvents[]> {
  const kept: KeptEvents[] = [];
  let after: string | undefined;
  for (;;) {
    const page = await deps.store.list(collection, { limit: PAGE, ...(after !== undefined ? { after } : {}) });
    if (page.length === 0) break;
    for (const doc of page) {
      const parsed = KeptDocSchema.safeParse(doc.value);
      if (parsed.success) kept.push({ id: doc.id, at: parsed.data.at ?? '', events: parsed.data.events });
      else deps.log.warn(`${collection}: unreadable kept events left alone`, { id: doc.id });
    }
    after = page.at(-1)?.id;
  }
  kept.sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return options.limit === undefined ? kept : kept.slice(0, options.limit);
}
