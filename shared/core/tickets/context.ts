/**
 * What every ticketing function needs, built once per stage: ports, policy, the retry settings and a
 * user cache (memory in front of the DocStore, so 10 000 cases of 20 owners cost 20 user searches).
 */
import * as z from 'zod';
import { errorMessage, isRetryable } from '../errors.js';
import { type Case, CaseSchema, type CaseTicket, type TicketRef } from '../model/case.js';
import type { Clock, DocStore, Logger } from '../ports.js';
import { getDoc, mutateDoc } from '../store/docs.js';
import { shortHash } from '../util/hash.js';
import { type RetryOptions, realSleep, type Sleep } from '../util/retry.js';
import { type FindingText, ownerUncertain } from './content.js';
import type { TicketPolicy } from './policy.js';
import type { TicketSink } from './ports.js';
import { COLLECTIONS, UserCacheSchema } from './store.js';

export interface TicketDeps {
  store: DocStore;
  sink: TicketSink;
  clock: Clock;
  log: Logger;
  policy: TicketPolicy;
  /** Waits between retries (injectable so tests are fast). Default: real timers. */
  sleep?: Sleep;
  /** Jitter source in [0, 1). Default: Math.random. */
  random?: () => number;
}

export interface TicketContext extends Required<Omit<TicketDeps, 'random'>> {
  random: () => number;
  retry: RetryOptions;
  userCache: Map<string, Promise<string | undefined>>;
  /**
   * Set when a sink call failed through its own retries (SinkUnavailableError: unreachable, a 5xx, a
   * throttle): until then the other requests wait in the outbox untried, instead of each spending the same
   * retries (a run with Jira down spent tens of seconds on every request, printing nothing).
   */
  sinkDown: { until: number; reason: string } | undefined;
}

/** Contexts are cached per deps object so the user cache survives across calls. */
const contexts = new WeakMap<TicketDeps, TicketContext>();

export function contextOf(deps: TicketDeps): TicketContext {
  const known = contexts.get(deps);
  if (known) return known;
  const sleep = deps.sleep ?? realSleep;
  const random = deps.random ?? Math.random;
  const ctx: TicketContext = {
    ...deps,
    sleep,
    random,
    retry: { ...deps.policy.retry, sleep, random, now: () => deps.clock.now().getTime() },
    userCache: new Map(),
    sinkDown: undefined,
  };
  contexts.set(deps, ctx);
  return ctx;
}

export const nowIso = (ctx: TicketContext): string => ctx.clock.now().toISOString();

/** The members of a stored finding a ticket shows (the rest, its raw event among them, is not parsed). */
const FindingTextSchema = z.object({
  product: z.string(),
  description: z.string(),
  recommendation: z.string().optional(),
  link: z.string().optional(),
});

/**
 * What the source says about the case's newest finding (its explanation, what to do, its page), for the
 * ticket's description; undefined when none of its findings is stored or readable as one. A store that
 * fails throws (the create is retried); a finding stored in a shape not understood is passed over.
 */
export async function findingTextOf(ctx: TicketContext, c: Case): Promise<FindingText | undefined> {
  for (let i = c.findingKeys.length - 1; i >= 0; i--) {
    const stored = await ctx.store.get(COLLECTIONS.findings, c.findingKeys[i] as string);
    const parsed = FindingTextSchema.safeParse(stored?.value);
    if (parsed.success) return parsed.data;
  }
  return undefined;
}

export async function loadCase(ctx: TicketContext, caseKey: string): Promise<Case | undefined> {
  return (await getDoc(ctx.store, COLLECTIONS.cases, caseKey, CaseSchema))?.value;
}

/**
 * Rewrites only the case's `ticket` section (other stages own the rest), with optimistic retries.
 * `fn` gets the current ticket section and returns the next one, or undefined for "no change".
 */
export async function updateCaseTicket(
  ctx: Pick<TicketContext, 'store'>,
  caseKey: string,
  fn: (ticket: CaseTicket | null, c: Case) => CaseTicket | null | undefined,
): Promise<{ changed: boolean; value: Case | undefined; previous: Case | undefined }> {
  const res = await mutateDoc(ctx.store, COLLECTIONS.cases, caseKey, CaseSchema, (c) => {
    if (!c) return undefined;
    const next = fn(c.ticket, c);
    return next === undefined ? undefined : { ...c, ticket: next };
  });
  return { changed: res.changed, value: res.value, previous: res.previous };
}

/** Records the ticket on the case (first writer wins; later writers keep what is there). */
export async function recordTicketOnCase(
  ctx: TicketContext,
  caseKey: string,
  ref: TicketRef,
  /** Whom closeloop assigned the new issue to (null: unassigned); omitted when not known (found by search). */
  assigneeId?: string | null,
): Promise<void> {
  await updateCaseTicket(ctx, caseKey, (t, c) =>
    t && t.key === ref.key
      ? undefined
      : {
          key: ref.key,
          sink: ref.sink,
          ...(ref.url !== undefined ? { url: ref.url } : {}),
          ...(ref.parentKey !== undefined ? { parentKey: ref.parentKey } : {}),
          createdAt: nowIso(ctx),
          reportedOccurrences: c.occurrences,
          reportedOwner: c.enrichment.owner,
          ...(assigneeId !== undefined ? { assigneeId } : {}),
          status: 'open',
        },
  );
}

const USER_TTL_MS = 24 * 3_600_000;

/**
 * The Jira account of an e-mail: memory cache, then the DocStore cache (a day), then one user search.
 * Only an answer is cached, "no such user" included. A search that failed for the moment (Jira down, a 5xx, a
 * timeout, a throttle: {@link isRetryable}) is thrown, not taken for "no account": the ticket request that
 * asked waits in the outbox and asks again (see {@link assignmentFor}). Any other failure (a refusal of the
 * search itself, an answer not understood) would fail the same way every time: it yields undefined, the
 * fallback, as before, and is not cached either.
 */
export function findUserCached(ctx: TicketContext, email: string): Promise<string | undefined> {
  const norm = email.trim().toLowerCase();
  const cached = ctx.userCache.get(norm);
  if (cached) return cached;
  const lookup = (async () => {
    const id = shortHash(norm, 32);
    const stored = await getDoc(ctx.store, COLLECTIONS.users, id, UserCacheSchema);
    if (stored && ctx.clock.now().getTime() - Date.parse(stored.value.at) < USER_TTL_MS) {
      return stored.value.accountId ?? undefined;
    }
    try {
      const accountId = await ctx.sink.findUser(norm);
      // Expires when it stops being used (USER_TTL_MS): one entry per owner address ever seen would only grow.
      const expiresAt = new Date(ctx.clock.now().getTime() + USER_TTL_MS);
      await ctx.store.put(COLLECTIONS.users, id, { accountId: accountId ?? null, at: nowIso(ctx) }, { expiresAt });
      return accountId;
    } catch (e) {
      ctx.userCache.delete(norm);
      if (isRetryable(e)) throw e;
      ctx.log.warn("user search failed; the owner's fallback is used", { error: errorMessage(e) });
      return undefined;
    }
  })();
  ctx.userCache.set(norm, lookup);
  return lookup;
}

/** Whom a case's issue is assigned to, and, when that is not the owner, why (a sentence for the ticket). */
export interface Assignment {
  /** The Jira account; undefined: unassigned (the triage component is set). */
  id: string | undefined;
  /**
   * Set when the owner's own account was not found: whom the issue went to instead and why. Undefined when
   * it is the owner's, or while the owner is uncertain ({@link ownerUncertain}: the ticket says so already).
   */
  note?: string;
}

/**
 * Owner's account, else the team's default assignee, else unassigned (triage component); unassigned too
 * while the owner is uncertain ({@link ownerUncertain}). A fallback is said (`note`): without it the ticket
 * named the owner while the issue sat with the team's lead, and nobody knew the owner had no account.
 *
 * A user search that failed for the moment is thrown (see {@link findUserCached}), and the create or the
 * owner-change request that asked waits in the outbox, which retries it with backoff and Retry-After.
 * Creating at once with the fallback instead would have cost more than the wait: the issue went to the
 * team's lead for good (nothing assigned it to the owner later), Jira told the lead, not the owner, and the
 * ticket said the owner had no Jira account. The wait is short in practice: a search Jira fails with a 5xx,
 * a timeout or a throttle (account-wide) comes with a create that fails alike, and a wait that lasts shows
 * on the outbox's `oldestWaitingMinutes` alarm. The note is then only ever said of a definite answer.
 */
export async function assignmentFor(ctx: TicketContext, c: Case): Promise<Assignment> {
  if (ownerUncertain(c)) return { id: undefined };
  const { owner, ownerEmail } = c.enrichment;
  const ownerId = ownerEmail?.includes('@') ? await findUserCached(ctx, ownerEmail) : undefined;
  if (ownerId) return { id: ownerId };
  const why = ownerEmail?.includes('@')
    ? `closeloop cannot find a Jira account for the owner ${owner}`
    : `the owner ${owner} is not an e-mail address closeloop can look up in Jira`;
  const fallback = c.enrichment.jira?.assigneeEmail;
  const fallbackId =
    fallback?.includes('@') && fallback.toLowerCase() !== ownerEmail?.toLowerCase()
      ? await findUserCached(ctx, fallback)
      : undefined;
  if (fallbackId) return { id: fallbackId, note: `${why}: assigned to the team's default assignee ${fallback}.` };
  return { id: undefined, note: `${why}: unassigned, for triage.` };
}

/** {@link assignmentFor}'s account alone. */
export const assigneeFor = async (ctx: TicketContext, c: Case): Promise<string | undefined> =>
  (await assignmentFor(ctx, c)).id;
