/**
 * One ticket per case, always. The ledger entry is claimed atomically (`expectVersion: 0`) before
 * anything is created, so the same event delivered three times at once creates one issue. A claim
 * whose holder crashed is taken over after the lease, and the taker first searches Jira for the
 * derived label (the crashed holder may have created the issue before dying). A lost ledger is
 * recovered the same way: when the caller is not sure the case is new, the label is searched before
 * creating. An ambiguous failure (5xx, timeout: the issue may exist) is always followed by a label
 * search before the create is retried, and it is kept on the ledger entry (`uncertain`) so that whichever
 * request creates next for the key waits for Jira's search to catch up and searches first.
 */
import { AdapterError, errorMessage, isThrottled, isTransient } from '../errors.js';
import type { TicketRef } from '../model/case.js';
import { getDoc } from '../store/docs.js';
import { backoffDelay, realSleep } from '../util/retry.js';
import { CASE_LABEL_PATTERN, caseLabelOf, ledgerIdOf } from './content.js';
import { nowIso, type TicketContext } from './context.js';
import { AssigneeRejectedError, type TicketDraft } from './ports.js';
import { COLLECTIONS, LedgerEntrySchema } from './store.js';

export type EnsureResult =
  | {
      status: 'created' | 'existing' | 'recovered';
      ref: TicketRef;
      /** The sink refused the draft's assignee: the issue was created unassigned, for triage. */
      unassigned?: true;
    }
  /** Another worker holds a fresh claim: try again after `until` (it will most likely have finished). */
  | { status: 'waiting'; until: string };

/**
 * How long a create that failed ambiguously leaves Jira before anyone searches for its issue: Jira's search
 * can take minutes to show a new issue, and a search sooner finds nothing and creates a second one.
 */
export const AMBIGUOUS_CREATE_WAIT_MS = 5 * 60_000;

/** How long a loser polls for the winner's ticket before leaving its request in the outbox. */
const CLAIM_WAIT_MS = 5_000;
const CLAIM_POLL_MS = 20;

/** The ticket already recorded for a case or group key, if any. */
export async function ledgerTicket(ctx: TicketContext, key: string): Promise<TicketRef | undefined> {
  const entry = await getDoc(ctx.store, COLLECTIONS.ledger, ledgerIdOf(key), LedgerEntrySchema);
  return entry?.value.state === 'created' ? entry.value.ticket : undefined;
}

/**
 * Returns the ticket of `key`, creating it with `makeDraft()` only if this worker wins the claim.
 * @example
 * const r = await ensureTicket(ctx, c.key, 'case', async () => draftForCase(c, policy, { now, assigneeId }));
 */
export async function ensureTicket(
  ctx: TicketContext,
  key: string,
  kind: 'case' | 'group',
  makeDraft: () => Promise<TicketDraft>,
  options: { searchFirst: boolean },
): Promise<EnsureResult> {
  const id = ledgerIdOf(key);
  const label = caseLabelOf(key);
  const leaseMs = ctx.policy.claimLeaseSeconds * 1000;
  const waitUntil = Date.now() + CLAIM_WAIT_MS;
  for (;;) {
    const current = await getDoc(ctx.store, COLLECTIONS.ledger, id, LedgerEntrySchema);
    if (current?.value.state === 'created' && current.value.ticket)
      return { status: 'existing', ref: current.value.ticket };
    // An earlier create may have made the issue: whoever creates next (this request or another for the same
    // key) waits until Jira's search can show it, then searches before creating.
    const uncertainSince = current?.value.uncertainSince;
    const claim = {
      key,
      label,
      state: 'claimed' as const,
      claimId: randomId(ctx),
      claimedAt: nowIso(ctx),
      ...(uncertainSince ? { uncertainSince } : {}),
    };
    if (current?.value.state === 'uncertain') {
      const settled = Date.parse(current.value.uncertainSince ?? current.value.claimedAt) + AMBIGUOUS_CREATE_WAIT_MS;
      if (ctx.clock.now().getTime() < settled) return { status: 'waiting', until: new Date(settled).toISOString() };
      const version = await ctx.store.put(COLLECTIONS.ledger, id, claim, { expectVersion: current.version });
      if (version === null) continue;
      return createAfterClaim(
        ctx,
        { id, key, kind, label, version, claimId: claim.claimId, searchFirst: true, uncertainSince },
        makeDraft,
      );
    }
    if (!current) {
      const version = await ctx.store.put(COLLECTIONS.ledger, id, claim, { expectVersion: 0 });
      if (version === null) continue; // someone claimed first: read theirs
      // No ledger entry: a new case, or a lost ledger. The caller asks for a search first whenever it is
      // not sure the case is new (it had a ticket, it existed before, an earlier attempt failed), so a
      // brand-new case costs one call and a lost ledger still finds its issue.
      return createAfterClaim(
        ctx,
        { id, key, kind, label, version, claimId: claim.claimId, searchFirst: options.searchFirst },
        makeDraft,
      );
    }
    const age = ctx.clock.now().getTime() - Date.parse(current.value.claimedAt);
    if (age < leaseMs) {
      // A live claim: the winner is creating right now. Wait a little (real time: the winner needs I/O).
      if (Date.now() < waitUntil) {
        await realSleep(CLAIM_POLL_MS);
        continue;
      }
      return { status: 'waiting', until: new Date(Date.parse(current.value.claimedAt) + leaseMs).toISOString() };
    }
    // The claim outlived its lease: its holder crashed (claimed, never created). Take it over.
    const version = await ctx.store.put(COLLECTIONS.ledger, id, claim, { expectVersion: current.version });
    if (version === null) continue;
    ctx.log.warn('taking over a stale ticket claim', { key, claimedAt: current.value.claimedAt });
    return createAfterClaim(
      ctx,
      { id, key, kind, label, version, claimId: claim.claimId, searchFirst: true, uncertainSince },
      makeDraft,
    );
  }
}

interface Claim {
  id: string;
  key: string;
  kind: 'case' | 'group';
  label: string;
  version: number;
  claimId: string;
  searchFirst: boolean;
  /** The ledger's record of an earlier ambiguous create, carried until an issue is found or made. */
  uncertainSince?: string | undefined;
}

async function createAfterClaim(
  ctx: TicketContext,
  claim: Claim,
  makeDraft: () => Promise<TicketDraft>,
): Promise<EnsureResult> {
  let ref: TicketRef | undefined;
  let status: 'created' | 'recovered' = 'created';
  let unassigned = false;
  const ambiguous: Ambiguity = {};
  try {
    if (claim.searchFirst) {
      ref = await findByLabel(ctx, claim.label);
      if (ref) status = 'recovered';
    }
    if (!ref) {
      const created = await createWithRecovery(ctx, await makeDraft(), ambiguous);
      ref = created.ref;
      if (created.recovered) status = 'recovered';
      unassigned = created.unassigned;
    }
  } catch (e) {
    // Give the claim back so the next attempt does not wait for the lease (the outbox retries). When a create
    // may have made the issue (now or before), the ledger keeps saying so: the request that failed is not
    // the only one that may create next (a later event queues its own create once the pending marker ages).
    const uncertainSince = ambiguous.at ?? claim.uncertainSince;
    if (uncertainSince === undefined)
      await ctx.store.delete(COLLECTIONS.ledger, claim.id, { expectVersion: claim.version });
    else {
      const uncertain = {
        key: claim.key,
        label: claim.label,
        state: 'uncertain' as const,
        claimId: claim.claimId,
        claimedAt: nowIso(ctx),
        uncertainSince,
      };
      await ctx.store.put(COLLECTIONS.ledger, claim.id, uncertain, { expectVersion: claim.version });
    }
    throw e;
  }
  const entry = {
    key: claim.key,
    label: claim.label,
    state: 'created' as const,
    claimId: claim.claimId,
    claimedAt: nowIso(ctx),
    ticket: ref,
  };
  const written = await ctx.store.put(COLLECTIONS.ledger, claim.id, entry, { expectVersion: claim.version });
  if (written === null) {
    // Our claim was taken over while we were creating (we outlived the lease). Keep the ledger's answer.
    const winner = await ledgerTicket(ctx, claim.key);
    ctx.log.error('ticket claim lost while creating', { key: claim.key, ours: ref.key, theirs: winner?.key });
    if (winner) return { status: 'existing', ref: winner };
    await ctx.store.put(COLLECTIONS.ledger, claim.id, entry);
  }
  await ctx.store.put(COLLECTIONS.index, ref.key, { key: claim.key, kind: claim.kind });
  return unassigned ? { status, ref, unassigned } : { status, ref };
}

async function findByLabel(ctx: TicketContext, label: string): Promise<TicketRef | undefined> {
  // The label is derived (hex hash), but check anyway: it is the only value that reaches JQL.
  if (!CASE_LABEL_PATTERN.test(label))
    throw new AdapterError('invalid', `refusing to search for label ${JSON.stringify(label)}`);
  return ctx.sink.findTicket(label);
}

/** Set when a create failed ambiguously: the issue may exist though no search has found it yet. */
interface Ambiguity {
  at?: string;
}

/**
 * Creates with bounded retries. 429 means "not processed": retry after Retry-After. A 5xx or a timeout
 * is ambiguous (the issue may exist), so the label is searched before the next create.
 */
async function createWithRecovery(
  ctx: TicketContext,
  asked: TicketDraft,
  ambiguous: Ambiguity,
): Promise<{ ref: TicketRef; recovered: boolean; unassigned: boolean }> {
  const { maxAttempts, maxElapsedMs } = ctx.retry;
  const started = ctx.clock.now().getTime();
  let draft = asked;
  let unassigned = false;
  for (let attempt = 1; ; attempt++) {
    try {
      return { ref: await ctx.sink.createTicket(draft), recovered: false, unassigned };
    } catch (e) {
      // The owner has an account Jira will not assign in this project: the ticket still goes out, unassigned
      // with the triage component (as for an owner without an account), instead of being dead-lettered.
      if (e instanceof AssigneeRejectedError && draft.assigneeId !== undefined) {
        ctx.log.warn('assignee refused; ticket created unassigned for triage', { error: errorMessage(e) });
        draft = {
          ...draft,
          assigneeId: undefined,
          components: [...new Set([...draft.components, ctx.policy.triageComponent])],
        };
        unassigned = true;
        attempt--;
        continue;
      }
      if (isTransient(e)) ambiguous.at = nowIso(ctx);
      if (!(isThrottled(e) || isTransient(e)) || attempt >= maxAttempts) throw e;
      const delay = backoffDelay(e, attempt, ctx.retry);
      if (delay === undefined) throw e;
      // No wait that would end past the budget: a throttle of 30 s a time otherwise spent 150 s in one create,
      // past the function's timeout once the calls before it had waited too. The outbox waits instead.
      if (maxElapsedMs !== undefined && ctx.clock.now().getTime() - started + delay > maxElapsedMs) throw e;
      ctx.log.debug('ticket create failed; retrying', { attempt, delay, error: errorMessage(e) });
      await ctx.sleep(delay);
      if (isTransient(e)) {
        // If this search fails too, stop: creating again without knowing could make a second issue.
        // The request stays in the outbox and its next attempt searches first.
        const found = await findByLabel(ctx, draft.caseLabel);
        if (found) return { ref: found, recovered: true, unassigned };
        // Not found is not proof: after a timeout or a reset the first create may still be in flight
        // (queued behind a busy Jira) and land after this search. Creating again now made duplicates
        // under load (test/resilience/jira-faults.test.ts), so leave it to the outbox, whose next attempt,
        // after a backoff, searches first.
        throw e;
      }
    }
  }
}

function randomId(ctx: TicketContext): string {
  return `${ctx.clock.now().getTime().toString(36)}-${Math.floor(ctx.random() * 2 ** 48).toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
}
