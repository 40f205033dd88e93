/**
 * What every ticketing function needs, built once per stage: ports, policy, the retry settings and a
 * user cache (memory in front of the DocStore, so 10 000 cases of 20 owners cost 20 user searches).
 */
import * as z from 'zod';
import { errorMessage, isDenied, isRetryable } from '../errors.js';
import { type Case, CaseSchema, type CaseTicket, type TicketRef } from '../model/case.js';
import type { Clock, DocStore, Logger } from '../ports.js';
import { getDoc, mutateDoc } from '../store/docs.js';
import { shortHash } from '../util/hash.js';
import { type RetryOptions, realSleep, type Sleep } from '../util/retry.js';
import { type FindingText, ownerUncertain } from './content.js';
import type { TicketPolicy } from './policy.js';
import { type TicketSink, UserSearchRefusedError } from './ports.js';
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
  /**
   * Set when the sink refused a user search outright (see {@link findUserCached}): until then no user is
   * searched for, and assignments fall back as they say. One entry, however many cases ask.
   */
  userSearchRefused: { until: number; error: UserSearchRefusedError } | undefined;
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
    userSearchRefused: undefined,
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
  /** The owner could not be looked up for that assignment (see {@link Assignment}). */
  ownerLookupRefused = false,
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
          ...(ownerLookupRefused && assigneeId !== undefined ? { ownerLookupRefused } : {}),
          status: 'open',
        },
  );
}

const USER_TTL_MS = 24 * 3_600_000;

/**
 * How long a refused user search is believed: a storm of new cases then costs one refused search, not one
 * each, and a fixed permission is noticed within this long.
 */
export const USER_SEARCH_REFUSED_MS = 10 * 60_000;

/**
 * The log line (error level) of a user search the sink refused, once per {@link USER_SEARCH_REFUSED_MS}:
 * every new issue goes to its fallback assignee until an operator fixes closeloop's own Jira account.
 * serverless.yml counts it with a metric filter and alarms on the first.
 */
export const USER_SEARCH_REFUSED_LOG = 'ticket sink refused the user search: issues are assigned by the fallback rule';

/** The refusal still believed, if any (see {@link USER_SEARCH_REFUSED_MS}). */
export function userSearchRefusal(ctx: TicketContext): UserSearchRefusedError | undefined {
  const r = ctx.userSearchRefused;
  return r && ctx.clock.now().getTime() < r.until ? r.error : undefined;
}

/** Remembers a refused search for a while and says so once for that while, naming the fix. */
function refuseUserSearch(ctx: TicketContext, e: unknown): UserSearchRefusedError {
  const error =
    e instanceof UserSearchRefusedError
      ? e
      : new UserSearchRefusedError(
          errorMessage(e),
          errorMessage(e),
          "check the ticket sink's credentials and closeloop's permissions there",
        );
  if (!userSearchRefusal(ctx)) {
    ctx.log.error(USER_SEARCH_REFUSED_LOG, {
      reason: error.message,
      fix: error.fix,
      retryInMinutes: USER_SEARCH_REFUSED_MS / 60_000,
    });
  }
  ctx.userSearchRefused = { until: ctx.clock.now().getTime() + USER_SEARCH_REFUSED_MS, error };
  return error;
}

/**
 * The Jira account of an e-mail: memory cache, then the DocStore cache (a day), then one user search.
 * Only an answer is cached, "no such user" included. A search that failed for the moment (Jira down, a 5xx, a
 * timeout, a throttle: {@link isRetryable}) is thrown, not taken for "no account": the ticket request that
 * asked waits in the outbox and asks again (see {@link assignmentFor}). A search the sink refused outright
 * (401, 403: closeloop's credentials or permissions) throws UserSearchRefusedError, is never cached as "no
 * such user", and is not tried again for {@link USER_SEARCH_REFUSED_MS} (the cached answers still serve).
 * Any other failure (an answer not understood) would fail the same way every time: it yields undefined, the
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
    const refused = userSearchRefusal(ctx);
    if (refused) {
      ctx.userCache.delete(norm);
      throw refused;
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
      if (isDenied(e)) throw refuseUserSearch(ctx, e);
      ctx.log.warn("user search failed; the owner's fallback is used", { error: errorMessage(e) });
      return undefined;
    }
  })();
  ctx.userCache.set(norm, lookup);
  return lookup;
}

/** {@link findUserCached}, with a refused search as its error rather than thrown. */
async function lookUp(
  ctx: TicketContext,
  email: string,
): Promise<{ id: string | undefined; refused?: UserSearchRefusedError }> {
  try {
    return { id: await findUserCached(ctx, email) };
  } catch (e) {
    if (e instanceof UserSearchRefusedError) return { id: undefined, refused: e };
    throw e;
  }
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
  /**
   * True when the owner's account could not be looked up at all (the sink refused the search): the case's
   * ticket keeps it (`ownerLookupRefused`), and a later event looks the owner up again (stage.ts).
   */
  ownerLookupRefused?: boolean;
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
 * on the outbox's `oldestWaitingMinutes` alarm.
 *
 * A search the sink refuses outright (closeloop's own account lacks a permission) would be refused for every
 * case until someone fixes it: the issue is not held back for it. It goes to the fallback, and the note says
 * the search was refused and why, never that the owner has no account; the owner is looked up again later.
 */
export async function assignmentFor(ctx: TicketContext, c: Case): Promise<Assignment> {
  if (ownerUncertain(c)) return { id: undefined };
  const { owner, ownerEmail } = c.enrichment;
  const own = ownerEmail?.includes('@') ? await lookUp(ctx, ownerEmail) : { id: undefined };
  if (own.id) return { id: own.id };
  const fallback = c.enrichment.jira?.assigneeEmail;
  const lead =
    fallback?.includes('@') && fallback.toLowerCase() !== ownerEmail?.toLowerCase()
      ? await lookUp(ctx, fallback)
      : { id: undefined };
  if (own.refused) {
    const why = `closeloop could not look up Jira users (${own.refused.why})`;
    const note = lead.id
      ? `${why}: assigned to the team's default assignee ${fallback} instead of the owner ${owner}.`
      : `${why}: unassigned, for triage, instead of assigned to the owner ${owner}.`;
    return { id: lead.id, note, ownerLookupRefused: true };
  }
  const why = ownerEmail?.includes('@')
    ? `closeloop cannot find a Jira account for the owner ${owner}`
    : `the owner ${owner} is not an e-mail address closeloop can look up in Jira`;
  if (lead.id) return { id: lead.id, note: `${why}: assigned to the team's default assignee ${fallback}.` };
  if (lead.refused)
    return {
      id: undefined,
      note: `${why}, and could not look up the team's default assignee ${fallback} (${lead.refused.why}): unassigned, for triage.`,
    };
  return { id: undefined, note: `${why}: unassigned, for triage.` };
}
