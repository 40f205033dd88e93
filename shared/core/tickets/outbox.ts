/**
 * The persisted outbox: every ticket request is written to the DocStore before it is sent, then sent
 * (right away by the stage when the budget allows, later by `drainOutbox`), and deleted once done.
 * A crash or a Jira outage therefore loses nothing: the next run resumes the outbox, in order.
 */
import { AdapterError, errorMessage, isConflict, isDenied, isRetryable, isTransient } from '../errors.js';
import type { Case, TicketRef } from '../model/case.js';
import { mutateDoc } from '../store/docs.js';
import { shortHash } from '../util/hash.js';
import { backoffDelay } from '../util/retry.js';
import { type AdfDoc, doc, p, strong } from './adf.js';
import {
  draftForCase,
  ledgerIdOf,
  type OwnerChangeOutcome,
  ownerChangeComment,
  ownerLookedUpComment,
} from './content.js';
import {
  assignmentFor,
  contextOf,
  findingTextOf,
  loadCase,
  nowIso,
  recordTicketOnCase,
  type TicketContext,
  type TicketDeps,
  updateCaseTicket,
} from './context.js';
import {
  type GroupJoin,
  groupDraft,
  groupOfMember,
  joinGroup,
  keepAssigneeNote,
  parentKeyOf,
  refreshGroup,
  refusedLookupNote,
  setMemberStatus,
  setParentStatus,
} from './grouping.js';
import { AMBIGUOUS_CREATE_WAIT_MS, ensureTicket, ledgerTicket } from './ledger.js';
import { AssigneeRejectedError, type CommentOnce, SinkUnavailableError } from './ports.js';
import {
  BudgetSchema,
  COLLECTIONS,
  GroupSchema,
  OnceSchema,
  type OutboxEntry,
  OutboxEntrySchema,
  type OutboxOp,
  onceMarkerExpiry,
} from './store.js';

/** How long a worker may hold an entry it is sending before another may take it over. */
const SEND_LEASE_MS = 120_000;
/** Requests for a case that never got a ticket are dropped after this long. */
const ORPHAN_MS = 7 * 86_400_000;
/** A replayed event whose once-marker is this old and still `enqueuing` crashed mid-way: enqueue again. */
const ONCE_LEASE_MS = 60_000;

let sequence = 0;
/** Time-ordered, unique outbox ids: list() returns them in enqueue order. */
function outboxId(ctx: TicketContext): string {
  sequence = (sequence + 1) % 1e8;
  const rand = Math.floor(ctx.random() * 0xffffffff)
    .toString(16)
    .padStart(8, '0');
  return `${String(ctx.clock.now().getTime()).padStart(15, '0')}-${String(sequence).padStart(8, '0')}-${rand}`;
}

/**
 * Persists `ops` (in order). With `onceKey`, the same logical request (a replayed event, the same
 * exception accepted twice) is enqueued only once, even when the replays run concurrently.
 * Returns the ids of the new entries (empty for a duplicate).
 */
export async function enqueue(ctx: TicketContext, ops: readonly OutboxOp[], onceKey?: string): Promise<string[]> {
  if (ops.length === 0) return [];
  const onceId = onceKey ? shortHash(onceKey, 32) : undefined;
  // Every write of the marker sets its expiry anew (see ONCE_MARKER_TTL_MS): it lives that long after its last.
  const expiresAt = onceMarkerExpiry(ctx.clock.now());
  if (onceId) {
    const won = await ctx.store.put(
      COLLECTIONS.once,
      onceId,
      { at: nowIso(ctx), state: 'enqueuing' },
      { expectVersion: 0, expiresAt },
    );
    if (won === null) {
      const seen = await ctx.store.get(COLLECTIONS.once, onceId);
      const marker = seen ? OnceSchema.parse(seen.value) : undefined;
      const stale = marker?.state === 'enqueuing' && ctx.clock.now().getTime() - Date.parse(marker.at) > ONCE_LEASE_MS;
      if (!seen || !stale) return [];
      const retaken = await ctx.store.put(
        COLLECTIONS.once,
        onceId,
        { at: nowIso(ctx), state: 'enqueuing' },
        { expectVersion: seen.version, expiresAt },
      );
      if (retaken === null) return [];
    }
  }
  const ids: string[] = [];
  const puts = ops.map((op) => {
    const id = outboxId(ctx);
    ids.push(id);
    const entry: OutboxEntry = { op, state: 'pending', attempts: 0, enqueuedAt: nowIso(ctx) };
    return { collection: COLLECTIONS.outbox, id, value: entry, expectVersion: 0 };
  });
  await ctx.store.writeBatch({ puts, appends: [] });
  if (onceId) await ctx.store.put(COLLECTIONS.once, onceId, { at: nowIso(ctx), state: 'done' }, { expiresAt });
  return ids;
}

type Outcome = { kind: 'done' } | { kind: 'wait'; notBefore?: string; deferred?: boolean };

/** Thrown by a create when the minute's budget is spent: the request waits in the outbox. */
class BudgetExhaustedError extends Error {
  constructor() {
    super('ticket create budget for this minute is spent');
    this.name = 'BudgetExhaustedError';
  }
}

export type SendResult = 'done' | 'waiting' | 'deferred' | 'dead' | 'skipped';

/** Drain-wide state: once a create is deferred, later creates wait too (they go out in order). */
interface PassState {
  mode: 'stage' | 'drain';
  createsBlocked: boolean;
}

/** How long a create that failed ambiguously waits before its next attempt searches for the issue. */
export { AMBIGUOUS_CREATE_WAIT_MS } from './ledger.js';

/** A request is retried at most this many times… */
export const OUTBOX_MAX_ATTEMPTS = 100;
/** …and for at most this long (a Jira outage of three days); then it is dead-lettered with its last error. */
export const OUTBOX_MAX_AGE_MS = 72 * 3_600_000;

/** Sends one outbox entry if nobody else is sending it; deletes it when done. */
export async function sendEntry(ctx: TicketContext, id: string, pass: PassState): Promise<SendResult> {
  const stored = await ctx.store.get(COLLECTIONS.outbox, id);
  if (!stored) return 'skipped';
  const entry = OutboxEntrySchema.parse(stored.value);
  const now = ctx.clock.now().getTime();
  if (entry.state === 'sending' && entry.leaseUntil && Date.parse(entry.leaseUntil) > now) return 'skipped';
  if (entry.notBefore && Date.parse(entry.notBefore) > now) return 'waiting';
  // The sink failed another request for a reason of its own moments ago: this one waits untried.
  if (ctx.sinkDown && now < ctx.sinkDown.until) return 'waiting';
  if (entry.op.op === 'create' && pass.createsBlocked) return 'deferred';
  const sending: OutboxEntry = { ...entry, state: 'sending', leaseUntil: new Date(now + SEND_LEASE_MS).toISOString() };
  const taken = await ctx.store.put(COLLECTIONS.outbox, id, sending, { expectVersion: stored.version });
  if (taken === null) return 'skipped'; // another worker took it
  let version = taken;
  // The entry as it is put back: with the status a transition's first attempt recorded, if it did.
  let kept = entry;
  const recordStatus = async (statusBefore: string): Promise<void> => {
    const next = await ctx.store.put(COLLECTIONS.outbox, id, { ...sending, statusBefore }, { expectVersion: version });
    // Another worker took the entry over (this one outlived its lease): it sends, this one must not.
    if (next === null) throw new AdapterError('conflict', `ticket request ${id} taken over by another worker`);
    version = next;
    kept = { ...kept, statusBefore };
  };
  const caseKey = entry.op.caseKey;
  try {
    const outcome = await runOp(ctx, id, entry, pass, recordStatus);
    if (outcome.kind === 'done') {
      await ctx.store.delete(COLLECTIONS.outbox, id, { expectVersion: version });
      if (entry.op.op === 'create') await ctx.store.delete(COLLECTIONS.pending, ledgerIdOf(caseKey));
      return 'done';
    }
    const { leaseUntil: _drop, ...rest } = kept;
    await ctx.store.put(
      COLLECTIONS.outbox,
      id,
      {
        ...rest,
        state: 'pending',
        ...(outcome.notBefore ? { notBefore: outcome.notBefore } : {}),
        ...(outcome.deferred || entry.deferred ? { deferred: true } : {}),
      },
      { expectVersion: version },
    );
    if (outcome.deferred) pass.createsBlocked = true;
    return outcome.deferred ? 'deferred' : 'waiting';
  } catch (e) {
    const { leaseUntil: _drop, ...rest } = kept;
    const attempts = entry.attempts + 1;
    const keptFor = ctx.clock.now().getTime() - Date.parse(entry.enqueuedAt);
    const exhausted = attempts >= OUTBOX_MAX_ATTEMPTS || keptFor >= OUTBOX_MAX_AGE_MS;
    if (!exhausted && (isRetryable(e) || isConflict(e) || isDenied(e) || !(e instanceof AdapterError))) {
      // Keep it: throttling, outages and bad credentials pass; the next drain tries again, not before
      // the server's Retry-After when it gave one (however long).
      const retryAfterMs = e instanceof AdapterError && e.retryAfterSeconds ? e.retryAfterSeconds * 1000 : 0;
      const backoff = isDenied(e)
        ? 300_000
        : (backoffDelay(e, attempts, { ...ctx.retry, maxDelayMs: Math.max(ctx.retry.maxDelayMs, 3_600_000) }) ??
          60_000);
      // A create that failed ambiguously (timeout, reset, 5xx) may have made the issue; Jira's search can
      // take minutes to show it, and the next attempt searches before it creates: it waits that long.
      const ambiguousCreate = entry.op.op === 'create' && isTransient(e) ? AMBIGUOUS_CREATE_WAIT_MS : 0;
      const delay = Math.min(Math.max(backoff, retryAfterMs, ambiguousCreate), 24 * 3_600_000);
      if (e instanceof SinkUnavailableError) pauseSink(ctx, e, retryAfterMs);
      ctx.log.warn('ticket request failed; kept in the outbox', {
        caseKey,
        op: entry.op.op,
        attempts,
        error: errorMessage(e),
      });
      await ctx.store.put(
        COLLECTIONS.outbox,
        id,
        {
          ...rest,
          state: 'pending',
          attempts,
          lastError: errorMessage(e),
          notBefore: new Date(ctx.clock.now().getTime() + delay).toISOString(),
        },
        { expectVersion: version },
      );
      return 'waiting';
    }
    // A 4xx about the request itself (a field Jira rejects, an issue that is gone): retrying cannot help.
    // Anything else after OUTBOX_MAX_ATTEMPTS tries or OUTBOX_MAX_AGE_MS in the outbox: retries are bounded.
    const why = exhausted
      ? `${entry.op.op}: gave up after ${attempts} attempts over ${Math.round(keptFor / 3_600_000)} h: ${errorMessage(e)}`
      : `${entry.op.op}: ${errorMessage(e)}`;
    await deadLetter(ctx, caseKey, why);
    await ctx.store.delete(COLLECTIONS.outbox, id, { expectVersion: version });
    if (entry.op.op === 'create') await ctx.store.delete(COLLECTIONS.pending, ledgerIdOf(caseKey));
    if (entry.deferred) await releaseBacklog(ctx);
    return 'dead';
  }
}

/** How long the other requests wait untried after the sink failed one for a reason of its own. */
export const SINK_PAUSE_MS = 60_000;

/**
 * Jira unreachable, failing (5xx) or throttling fails every request alike, each after the sink's retries: the
 * others wait in the outbox for a minute (or the Retry-After) rather than each spending them again. Only a
 * call that failed through its retries counts: one create that timed out (never retried blind) says nothing
 * about the next, and a refusal (401/403, not retried) costs one call and may concern one project only.
 * Said once per pause.
 */
function pauseSink(ctx: TicketContext, e: SinkUnavailableError, retryAfterMs: number): void {
  const now = ctx.clock.now().getTime();
  const reason = errorMessage(e);
  const pauseMs = Math.max(SINK_PAUSE_MS, retryAfterMs);
  if (!ctx.sinkDown || now >= ctx.sinkDown.until)
    ctx.log.warn('ticket sink unavailable: requests wait in the outbox', { reason, pauseMs });
  ctx.sinkDown = { until: now + pauseMs, reason };
}

/**
 * The log line of a ticket request given up (`message` in the AWS function's JSON logs): serverless.yml
 * counts it with a metric filter and alarms, as a case left without its ticket or update.
 */
export const TICKET_DEAD_LETTERED_LOG = 'ticket request dead-lettered';

export async function deadLetter(ctx: TicketContext, caseKey: string, reason: string): Promise<void> {
  const at = nowIso(ctx);
  ctx.log.error(TICKET_DEAD_LETTERED_LOG, { caseKey, reason });
  await ctx.store.put(COLLECTIONS.deadletters, `tickets-${shortHash(caseKey, 16)}-${at}-${shortHash(reason, 8)}`, {
    stage: 'tickets',
    caseKey,
    reason,
    at,
  });
}

async function runOp(
  ctx: TicketContext,
  id: string,
  entry: OutboxEntry,
  pass: PassState,
  recordStatus: (status: string) => Promise<void>,
): Promise<Outcome> {
  const op = entry.op;
  // The request's comment is posted once, however often it is sent: an entry tried before (a failure that
  // may have come after Jira stored the comment) or taken over from a worker that died sending it looks
  // for its comment on the issue first. A transition the sink cannot see the target of is judged by the
  // status the issue had before its first attempt, kept on the entry: the sink's own memory of it lasts
  // one call, and a later attempt could only ask whether the issue is in a status the names match.
  const once: CommentOnce = {
    id,
    maybeSent: entry.attempts > 0 || entry.state === 'sending',
    statusBefore: entry.statusBefore,
    recordStatus,
  };
  const c = await loadCase(ctx, op.caseKey);
  if (!c) {
    ctx.log.warn('ticket request for an unknown case dropped', { caseKey: op.caseKey, op: op.op });
    return { kind: 'done' };
  }
  if (op.op === 'create') return runCreate(ctx, c, entry, pass);
  let ref: TicketRef | undefined = c.ticket ?? undefined;
  if (!ref) {
    ref = await ledgerTicket(ctx, c.key);
    if (ref) await recordTicketOnCase(ctx, c.key, ref);
  }
  if (!ref) {
    // The create is still waiting (budget, outage): this request waits behind it.
    if (ctx.clock.now().getTime() - Date.parse(entry.enqueuedAt) > ORPHAN_MS) return { kind: 'done' };
    return { kind: 'wait', notBefore: new Date(ctx.clock.now().getTime() + 30_000).toISOString() };
  }
  const groupId = ref.parentKey !== undefined && ref.parentKey === ref.key ? await groupOfMember(ctx, c) : undefined;
  if (groupId) return runOnGroupRow(ctx, c, ref, groupId, op, once);
  if (op.op === 'assign') return runAssign(ctx, c, ref, op, once);
  if (op.op === 'comment') await ctx.sink.comment(ref, op.body, once);
  else if (op.op === 'labels') {
    if (op.labels.length > 0) await ctx.sink.addLabels(ref, op.labels);
    if (op.remove && op.remove.length > 0) await ctx.sink.removeLabels(ref, op.remove);
  } else {
    const names = op.target === 'done' ? ctx.policy.transitions.done : ctx.policy.transitions.reopen;
    const used = await ctx.sink.transition(ref, names, op.body, once);
    if (!used)
      ctx.log.warn('no matching transition; commented instead', { caseKey: c.key, ticket: ref.key, target: op.target });
  }
  return { kind: 'done' };
}

/**
 * The case's owner changed: the issue follows the new owner while its assignee is still the one closeloop
 * set (a person's reassignment stands, and an issue closeloop did not assign itself is left alone), and one
 * comment says what changed and what was done. Safe to run again: an issue already on the new owner's
 * account is not assigned twice.
 *
 * `lookupRefused`: the owner is the one the ticket names, but the issue went to the fallback because the
 * sink refused the user search. The owner is looked up now and the issue follows them the same way, said in
 * one comment; while the search is still refused, nothing changes or is said, and a later event tries again.
 */
async function runAssign(
  ctx: TicketContext,
  c: Case,
  ref: TicketRef,
  op: { was: string; lookupRefused?: true | undefined },
  once: CommentOnce,
): Promise<Outcome> {
  const recorded = c.ticket?.assigneeId;
  let outcome: OwnerChangeOutcome = 'not-ours';
  let note: string | undefined;
  if (recorded !== undefined) {
    const assignment = await assignmentFor(ctx, c);
    if (op.lookupRefused && assignment.ownerLookupRefused) {
      await updateCaseTicket(ctx, c.key, (t) =>
        t && !t.ownerLookupRefused ? { ...t, ownerLookupRefused: true } : undefined,
      );
      return { kind: 'done' };
    }
    note = assignment.note;
    const want = assignment.id ?? null;
    const now = await ctx.sink.assigneeOf(ref);
    if (now === want) outcome = want === null ? 'unassigned' : 'reassigned';
    else if (now !== recorded) outcome = 'kept';
    else outcome = await reassign(ctx, ref, want);
    const assigneeId = outcome === 'refused' ? null : want;
    // Kept for a later event while the owner could not be looked up; a person's assignment ends the matter.
    const refused = outcome !== 'kept' && assignment.ownerLookupRefused === true;
    await updateCaseTicket(ctx, c.key, (t) => {
      if (!t) return undefined;
      const { ownerLookupRefused: _was, ...rest } = t;
      return {
        ...rest,
        ...(outcome !== 'kept' ? { assigneeId } : {}),
        ...(refused ? { ownerLookupRefused: true } : {}),
      };
    });
  }
  const body = op.lookupRefused ? ownerLookedUpComment(c, outcome, note) : ownerChangeComment(c, op.was, outcome, note);
  await ctx.sink.comment(ref, body, once);
  return { kind: 'done' };
}

/**
 * Assigns the issue to the new owner's account. Jira may refuse that person in the project (an account
 * without the Assignable User permission): the issue is then unassigned, for triage, as a create does,
 * rather than left on the former owner or the request dead-lettered with nobody told.
 */
async function reassign(ctx: TicketContext, ref: TicketRef, want: string | null): Promise<OwnerChangeOutcome> {
  try {
    await ctx.sink.assign(ref, want);
    return want === null ? 'unassigned' : 'reassigned';
  } catch (e) {
    if (!(e instanceof AssigneeRejectedError)) throw e;
    ctx.log.warn('new owner refused as assignee; issue unassigned for triage', {
      ticket: ref.key,
      error: errorMessage(e),
    });
    await ctx.sink.assign(ref, null);
    return 'refused';
  }
}

/** A case that is one row of a parent's table: comments name the resource; the parent closes when all rows are done. */
async function runOnGroupRow(
  ctx: TicketContext,
  c: Case,
  ref: TicketRef,
  groupId: string,
  op: OutboxOp,
  once: CommentOnce,
): Promise<Outcome> {
  const prefixed = (body: AdfDoc): AdfDoc => doc(p(strong(`${c.resourceName}: `)), ...body.content);
  if (op.op === 'comment') await ctx.sink.comment(ref, prefixed(op.body), once);
  else if (op.op === 'transition') {
    const group = await setMemberStatus(ctx, groupId, c.key, op.target === 'done' ? 'done' : 'reopened');
    const allDone = group?.members.every((m) => m.status === 'done') ?? false;
    // The parent's status is recorded before it is moved, as a case's ticket status is: the webhook then
    // knows Jira's echo of closeloop's own transition, and does not take it for a person's (which would
    // reopen, or ask to verify, every other row of the group).
    if (op.target === 'done' && allDone) {
      await setParentStatus(ctx, groupId, 'done');
      await ctx.sink.transition(ref, ctx.policy.transitions.done, prefixed(op.body), once);
    } else if (op.target === 'reopen' && group !== undefined && group.parentStatus !== 'open') {
      // 'reopened' too: a retry after a failed transition moves it again (an open issue has no reopen
      // transition: the sink comments instead).
      await setParentStatus(ctx, groupId, 'reopened');
      await ctx.sink.transition(ref, ctx.policy.transitions.reopen, prefixed(op.body), once);
    } else await ctx.sink.comment(ref, prefixed(op.body), once);
  }
  // Labels (risk-accepted) describe one row, not the parent: the comment says it instead.
  await refreshGroup(ctx, groupId, false);
  return { kind: 'done' };
}

async function runCreate(ctx: TicketContext, c: Case, entry: OutboxEntry, pass: PassState): Promise<Outcome> {
  if (c.ticket) return { kind: 'done' };
  if (c.lastDecision && !c.lastDecision.ticket.wanted) return { kind: 'done' };
  const op = entry.op;
  const searchFirst = (op.op === 'create' && op.searchFirst) || entry.attempts > 0;
  const takeToken = () => takeBudget(ctx, pass.mode === 'drain', entry.deferred === true);
  try {
    const join: GroupJoin = await joinGroup(ctx, c);
    let parent: TicketRef | undefined;
    if (join.grouped) {
      const group = join.group;
      const sampleKey = group.sampleCaseKey ?? c.key;
      const sample = sampleKey === c.key ? c : ((await loadCase(ctx, sampleKey)) ?? c);
      // Why this pass's create did not assign the parent to its owner, when Jira refused the user search.
      let parentNote: string | undefined;
      const res = await ensureTicket(
        ctx,
        parentKeyOf(group),
        'group',
        async () => {
          await takeToken();
          const assignment = await assignmentFor(ctx, sample);
          parentNote = refusedLookupNote(assignment);
          return groupDraft(ctx, group, sample, assignment);
        },
        { searchFirst },
      );
      if (res.status === 'waiting') return { kind: 'wait', notBefore: res.until };
      parent = res.ref;
      // Kept on the group: the table's rewrites of the description say it again.
      if (parentNote) await keepAssigneeNote(ctx, join.groupId, group.generation, parentNote);
      if (ctx.policy.grouping.mode === 'table') {
        await recordTicketOnCase(ctx, c.key, { ...parent, parentKey: parent.key });
        await refreshGroup(ctx, join.groupId, false);
        return { kind: 'done' };
      }
    }
    const parentKey = parent?.key;
    // Whom this pass's create assigned the issue to; unknown when the issue was found, not created, here.
    let assigned: string | null | undefined;
    let lookupRefused = false;
    const res = await ensureTicket(
      ctx,
      c.key,
      'case',
      async () => {
        await takeToken();
        const { id: assigneeId, note: assigneeNote, ownerLookupRefused } = await assignmentFor(ctx, c);
        assigned = assigneeId ?? null;
        lookupRefused = ownerLookupRefused === true;
        const finding = await findingTextOf(ctx, c);
        return draftForCase(c, ctx.policy, { now: ctx.clock.now(), assigneeId, assigneeNote, parentKey, finding });
      },
      { searchFirst },
    );
    if (res.status === 'waiting') return { kind: 'wait', notBefore: res.until };
    if (res.unassigned) assigned = null;
    await recordTicketOnCase(ctx, c.key, parentKey ? { ...res.ref, parentKey } : res.ref, assigned, lookupRefused);
    if (join.grouped) await refreshGroup(ctx, join.groupId, false);
    return { kind: 'done' };
  } catch (e) {
    if (e instanceof BudgetExhaustedError) return { kind: 'wait', deferred: true };
    throw e;
  }
}

/**
 * Takes one create from this minute's budget. The stage may not overtake creates already waiting
 * (backlog > 0); the drain sends them in order. A deferred entry leaves the backlog when it goes out.
 */
async function takeBudget(ctx: TicketContext, fromDrain: boolean, entryDeferred: boolean): Promise<void> {
  const minute = ctx.clock.now().toISOString().slice(0, 16);
  const limit = ctx.policy.budget.createsPerMinute;
  let granted = false;
  await mutateDoc(ctx.store, COLLECTIONS.budget, 'creates', BudgetSchema, (cur) => {
    const b = cur && cur.minute === minute ? cur : { minute, used: 0, backlog: cur?.backlog ?? 0 };
    granted = b.used < limit && (fromDrain || entryDeferred || b.backlog === 0);
    if (granted) return { ...b, used: b.used + 1, backlog: entryDeferred ? Math.max(0, b.backlog - 1) : b.backlog };
    return entryDeferred ? (cur === b ? undefined : b) : { ...b, backlog: b.backlog + 1 };
  });
  if (!granted) throw new BudgetExhaustedError();
}

async function releaseBacklog(ctx: TicketContext): Promise<void> {
  await mutateDoc(ctx.store, COLLECTIONS.budget, 'creates', BudgetSchema, (b) =>
    b && b.backlog > 0 ? { ...b, backlog: b.backlog - 1 } : undefined,
  );
}

/**
 * The log line of a drain that leaves requests waiting, with the DrainResult's members (the AWS ticket
 * function writes it): serverless.yml reads `oldestWaitingMinutes` from it into a metric and alarms.
 */
export const OUTBOX_WAITING_LOG = 'ticket outbox: entries still waiting';

export interface DrainResult {
  /** Requests sent and removed from the outbox. */
  sent: number;
  /** Still in the outbox (budget, Retry-After, outage, waiting for their ticket). */
  remaining: number;
  deadLettered: number;
  groupsRefreshed: number;
  /**
   * Minutes since the oldest request still in the outbox was enqueued, after this drain; null when the
   * outbox is empty. Jira refusing everything (revoked credentials, a lost permission, an outage) shows
   * here first: its requests are kept and retried for days before they are dead-lettered, so this is what
   * an operator's alarm reads (the AWS ticket function logs it; serverless.yml turns it into a metric).
   */
  oldestWaitingMinutes: number | null;
}

/**
 * Sends what waits in the outbox, oldest first, then rewrites the tables of groups that changed.
 * The integrator calls it at the end of `closeloop run`; the AWS ticket function on a schedule.
 *
 * @example
 * const { sent, remaining } = await drainOutbox({ store, sink, clock, log, policy });
 */
export async function drainOutbox(
  deps: TicketDeps,
  options: {
    maxEntries?: number;
    /** Epoch ms after which no further entry is taken (a function's time budget); the rest waits. */
    until?: number;
  } = {},
): Promise<DrainResult> {
  const ctx = contextOf(deps);
  const pass: PassState = { mode: 'drain', createsBlocked: false };
  const result: DrainResult = {
    sent: 0,
    remaining: 0,
    deadLettered: 0,
    groupsRefreshed: 0,
    oldestWaitingMinutes: null,
  };
  let deferredLeft = 0;
  let seen = 0;
  let after: string | undefined;
  const max = options.maxEntries ?? Number.POSITIVE_INFINITY;
  for (;;) {
    const page = await ctx.store.list(COLLECTIONS.outbox, { limit: 200, ...(after !== undefined ? { after } : {}) });
    for (const d of page) {
      if (seen >= max || (options.until !== undefined && ctx.clock.now().getTime() >= options.until)) {
        seen = max; // stopped early: not a full pass (the backlog counter is left as it is)
        break;
      }
      seen++;
      const r = await sendEntry(ctx, d.id, pass);
      if (r === 'done') result.sent++;
      else if (r === 'dead') result.deadLettered++;
      else {
        result.remaining++;
        const left = await ctx.store.get(COLLECTIONS.outbox, d.id);
        if (left && OutboxEntrySchema.parse(left.value).deferred) deferredLeft++;
      }
    }
    const last = page.at(-1);
    if (page.length < 200 || !last || seen >= max) break;
    after = last.id;
  }
  if (seen < max) {
    // A full pass knows the true backlog: repair the counter (a crash between send and bookkeeping).
    await mutateDoc(ctx.store, COLLECTIONS.budget, 'creates', BudgetSchema, (b) =>
      b && b.backlog !== deferredLeft ? { ...b, backlog: deferredLeft } : undefined,
    );
  }
  for (const g of await ctx.store.list(COLLECTIONS.groups)) {
    if (!GroupSchema.parse(g.value).dirty) continue;
    try {
      if (await refreshGroup(ctx, g.id, true)) result.groupsRefreshed++;
    } catch (e) {
      ctx.log.warn('group table refresh failed; kept dirty', { group: g.id, error: errorMessage(e) });
    }
  }
  // Outbox ids are in enqueue order: the first one listed has waited longest.
  const [oldest] = await ctx.store.list(COLLECTIONS.outbox, { limit: 1 });
  if (oldest) {
    const since = Date.parse(OutboxEntrySchema.parse(oldest.value).enqueuedAt);
    result.oldestWaitingMinutes = Math.max(0, Math.floor((ctx.clock.now().getTime() - since) / 60_000));
  }
  return result;
}

/** A pending-create marker older than this has lost its request (crash between marker and enqueue). */
const PENDING_STALE_MS = 3_600_000;

/**
 * Enqueues (and tries) the create of a case's ticket unless one is already waiting in the outbox:
 * a case seen 50 times while its create waits for the budget still costs one create request.
 */
export async function enqueueCreate(ctx: TicketContext, caseKey: string, searchFirst: boolean): Promise<void> {
  const id = ledgerIdOf(caseKey);
  const at = nowIso(ctx);
  if ((await ctx.store.put(COLLECTIONS.pending, id, { at }, { expectVersion: 0 })) === null) {
    const cur = await ctx.store.get(COLLECTIONS.pending, id);
    const since = cur ? Date.parse(String(prop(cur.value, 'at'))) : 0;
    if (cur && ctx.clock.now().getTime() - since < PENDING_STALE_MS) return;
    if (
      (await ctx.store.put(
        COLLECTIONS.pending,
        id,
        { at },
        cur ? { expectVersion: cur.version } : { expectVersion: 0 },
      )) === null
    )
      return;
  }
  await enqueueAndSend(ctx, [{ op: 'create', caseKey, searchFirst }]);
}

function prop(v: unknown, key: string): unknown {
  if (v === null || typeof v !== 'object' || !(key in v)) return undefined;
  const value: unknown = Reflect.get(v, key);
  return value;
}

/** Persists `ops` and sends them right away (stage path); what cannot go now stays for drainOutbox. */
export async function enqueueAndSend(ctx: TicketContext, ops: readonly OutboxOp[], onceKey?: string): Promise<void> {
  const ids = await enqueue(ctx, ops, onceKey);
  const pass: PassState = { mode: 'stage', createsBlocked: false };
  for (const id of ids) await sendEntry(ctx, id, pass);
}

/** Marks the case's ticket with the status closeloop is moving it to, before the request is sent
 * (so the webhook that echoes our own transition is recognised and ignored). */
export async function markTicketStatus(
  ctx: TicketContext,
  caseKey: string,
  status: 'open' | 'done' | 'reopened',
): Promise<boolean> {
  const res = await updateCaseTicket(ctx, caseKey, (t) => (t && t.status !== status ? { ...t, status } : undefined));
  return res.changed;
}
