/**
 * The exception sweep: stored cases re-evaluated against the exceptions as they are now, without a new
 * finding. A case whose exception expired re-opens (`case.decided`, `case.reopened`), one whose exception was
 * revoked opens, one an exception newly covers is suppressed (`case.decided`, `case.exception`).
 *
 * Each change's events are kept ({@link SWEEP_UNPUBLISHED}, see `kept-events.ts`) before its case write and
 * released once published, a few cases at a time. Published only at the end of the run, a publish that failed
 * or a process that died (a Lambda timeout, SIGKILL) lost them for good: the next sweep finds the cases
 * already changed and has nothing to announce, and the ticket of a case whose exception expired keeps saying
 * the risk is accepted. The next run publishes what is kept first.
 */
import * as z from 'zod';
import type { Config } from '../config.js';
import { errorMessage } from '../errors.js';
import { type Case, CaseSchema } from '../model/case.js';
import { type Decision, DecisionSchema } from '../model/decision.js';
import type { PipelineEvent } from '../model/events.js';
import type { RiskException } from '../policy/exceptions.js';
import type { Clock, DocStore, EventBus, Logger, StoredDoc } from '../ports.js';
import { mutateDoc } from '../store/docs.js';
import { parseWithoutCopy } from '../util/accept.js';
import { shortHash } from '../util/hash.js';
import { CASES } from './announced.js';
import { reevaluate } from './decide.js';
import { keepEvents, keptOldestFirst, releaseEvents } from './kept-events.js';

/** The events of changed cases not yet published: one document per case change (id: its `case.decided`'s). */
export const SWEEP_UNPUBLISHED = 'sweep-unpublished';
/** Where a run stopped by its time budget left off ({@link SweepOptions.until}): the next run starts after it. */
export const SWEEP_CURSOR = { collection: 'sweep-cursor', id: 'exceptions' } as const;

/** Cases read per round trip. */
const PAGE = 100;
/**
 * Changed cases per publish: about ten events, one PutEvents call. One call per case would make a mass expiry
 * (one exception over thousands of cases) a call per case; a whole run's worth would be lost together again.
 */
const GROUP = 5;

const CursorSchema = z.object({ after: z.string() });

export interface SweepDeps {
  store: DocStore;
  bus: EventBus;
  config: Pick<Config, 'policy'>;
  /** Exceptions from the config file and from the store, merged (called once per run). */
  exceptions: () => Promise<RiskException[]>;
  clock: Clock;
  log: Logger;
}

export interface SweepOptions {
  /**
   * Epoch ms (by `deps.clock`) after which no further case is re-evaluated: a function's time budget. The
   * run leaves a cursor after the last case it reached, and the next one starts there (then wraps round),
   * so consecutive runs cover every case, least recently swept first.
   */
  until?: number;
}

export interface SweepResult {
  /** Cases re-opened (their exception expired) or opened (it was revoked or no longer covers them). */
  reopened: number;
  suppressed: number;
  /** Events kept by earlier runs (written, not published) that this run published. */
  republished: number;
  /** The time budget ran out before every case was re-evaluated: the next run goes on from where this one stopped. */
  stopped: boolean;
}

/**
 * Runs the sweep: what earlier runs kept first (oldest first), then the cases in id order from where the last
 * run stopped. A publish that fails stops the run and is thrown, after the cursor is saved: its events, and
 * those of any case written since, stay kept and are published first by the next run (same ids).
 */
export async function sweepExceptions(deps: SweepDeps, options: SweepOptions = {}): Promise<SweepResult> {
  const now = deps.clock.now();
  const at = now.toISOString();
  const exceptions = await deps.exceptions();
  const policy = deps.config.policy.decide;
  const result: SweepResult = { reopened: 0, suppressed: 0, republished: 0, stopped: false };
  const outOfTime = () => options.until !== undefined && deps.clock.now().getTime() >= options.until;

  // Written changes whose events are kept and not yet published; `kept`: left by an earlier run.
  let group: Array<{ events: PipelineEvent[]; kept: boolean }> = [];
  let failure: unknown;
  const flush = async (): Promise<boolean> => {
    if (group.length === 0) return true;
    const sent = group;
    group = [];
    try {
      await deps.bus.publish(sent.flatMap((g) => g.events));
    } catch (e) {
      failure = e;
      deps.log.warn('exception sweep: publishing failed; the events stay kept for the next run', {
        cases: sent.map((g) => g.events[0]?.caseKey),
        error: errorMessage(e),
      });
      return false;
    }
    for (const g of sent) {
      await releaseEvents(deps, SWEEP_UNPUBLISHED, g.events);
      if (g.kept) result.republished += g.events.length;
    }
    return true;
  };
  const announce = async (events: PipelineEvent[], kept: boolean): Promise<boolean> => {
    group.push({ events, kept });
    return group.length >= GROUP ? flush() : true;
  };
  const counted = (change: Change) => {
    // A suppressed case whose exception was extended (or handed over) is announced, not newly suppressed.
    if (change.was === 'suppressed' && change.next.status === 'suppressed') return change.events;
    if (change.next.status === 'suppressed') result.suppressed++;
    else result.reopened++;
    return change.events;
  };

  /**
   * Re-evaluates one case (as listed: the list is fresh enough to skip the cases that do not change, a read
   * each). A change is kept before its conditional write (mutateDoc's write-ahead); on a lost race the case is
   * read again and re-evaluated. The entry kept for the lost write is not removed: a concurrent sweep making
   * the same change keeps it under the same id, and removing it could lose that run's events; the next run
   * finds it and checks it against the case (below).
   */
  const sweepCase = async (listed: StoredDoc): Promise<Change | undefined> => {
    if (!reevaluate(parseWithoutCopy(CaseSchema, listed.value) as Case, exceptions, policy, now)) return undefined;
    let decision: Decision | undefined;
    let was: Case['status'] | undefined;
    let change: Change | undefined;
    const written = await mutateDoc(
      deps.store,
      CASES,
      listed.id,
      CaseSchema,
      (current) => {
        const changed = current ? reevaluate(current, exceptions, policy, now) : undefined;
        decision = changed?.decision;
        was = current?.status;
        return changed?.next;
      },
      {
        beforeWrite: async (next) => {
          const events = sweepEvents(next, decision as Decision, at);
          change = { next, events, was };
          await keepEvents(deps, SWEEP_UNPUBLISHED, events);
        },
      },
    );
    return written.changed ? change : undefined;
  };

  // What earlier runs kept: written and not published (a failed publish, a run killed after the write), or
  // kept by a run that died before its case write (or lost the write's race). The latter must not announce a
  // state the case does not have (a reopen of a case still suppressed, its exception since extended): an
  // entry is published as it is only when its case says what it announces. Otherwise the case is re-evaluated
  // now, as the pass would: the same change is written and announced under the same ids, another change is
  // announced instead, and with none the entry goes unannounced (the case is as the exceptions say).
  // Re-deriving the state from the entry alone could not tell an extension since from a write never made.
  for (const k of await keptOldestFirst(deps, SWEEP_UNPUBLISHED)) {
    if (outOfTime()) {
      result.stopped = true;
      break;
    }
    const caseKey = k.events[0]?.caseKey ?? '';
    const doc = await deps.store.get(CASES, caseKey);
    if (doc && announces(parseWithoutCopy(CaseSchema, doc.value) as Case, k.events)) {
      if (!(await announce(k.events, true))) break;
      continue;
    }
    const change = doc ? await sweepCase(doc) : undefined;
    if (change) {
      // The same change is kept under the same id again (released when published).
      if (change.events[0]?.id !== k.id) await releaseEvents(deps, SWEEP_UNPUBLISHED, k.events);
      if (!(await announce(counted(change), false))) break;
      continue;
    }
    // Nothing to change now. Unless the run that kept the entry is alive and its write just won the race with
    // this one: then the case says it now, and the entry (that run's) is owed.
    const fresh = doc ? await deps.store.get(CASES, caseKey) : undefined;
    if (fresh && announces(parseWithoutCopy(CaseSchema, fresh.value) as Case, k.events)) {
      if (!(await announce(k.events, true))) break;
    } else await releaseEvents(deps, SWEEP_UNPUBLISHED, k.events);
  }

  // The pass, from where the last stopped run left off, round to it.
  const cursor = CursorSchema.safeParse((await deps.store.get(SWEEP_CURSOR.collection, SWEEP_CURSOR.id))?.value);
  const start = cursor.success ? cursor.data.after : undefined;
  let after = start;
  let wrapped = start === undefined;
  let last: string | undefined;
  pass: while (failure === undefined && !result.stopped) {
    const page = await deps.store.list(CASES, { limit: PAGE, ...(after !== undefined ? { after } : {}) });
    if (page.length === 0) {
      if (wrapped) break;
      wrapped = true;
      after = undefined;
      continue;
    }
    for (const doc of page) {
      // Past the case the last stopped run reached (taken again: a run that completes covers every case).
      if (wrapped && start !== undefined && doc.id > start) break pass;
      if (outOfTime()) {
        result.stopped = true;
        break pass;
      }
      const change = await sweepCase(doc);
      last = doc.id;
      if (change && !(await announce(counted(change), false))) break pass;
    }
    after = page.at(-1)?.id;
  }
  if (failure === undefined) await flush();
  if (last !== undefined && (result.stopped || failure !== undefined))
    await deps.store.put(SWEEP_CURSOR.collection, SWEEP_CURSOR.id, { after: last, at });
  if (failure !== undefined) throw failure;
  return result;
}

interface Change {
  next: Case;
  events: PipelineEvent[];
  /** The case's status before this change. */
  was: Case['status'] | undefined;
}

/**
 * The events of one change. Deterministic ids (the case, its new status and the exception concerned): the
 * same change derived again (a kept entry re-evaluated, a re-run) is the same events, which the ticket stage
 * handles once.
 */
function sweepEvents(next: Case, decision: Decision, at: string): PipelineEvent[] {
  // With the exception's expiry: one exception extended and expiring again is another change (the same id
  // would be the first expiry's, which the ticket stage has handled, and the ticket would not be told).
  const x = next.exception ?? decision.exceptionExpired ?? decision.exceptionLifted;
  const id = `sweep:${shortHash(`${next.key}\n${next.status}\n${x?.id ?? ''}\n${x?.expires ?? ''}`, 32)}`;
  const events: PipelineEvent[] = [
    {
      id,
      type: 'case.decided',
      caseKey: next.key,
      at,
      isNewCase: false,
      recurrence: false,
      statusChanged: true,
      detail: { decision },
    },
  ];
  if (next.status === 'suppressed' && next.exception)
    events.push({
      id: `${id}:exception`,
      type: 'case.exception',
      caseKey: next.key,
      at,
      exceptionId: next.exception.id,
      active: true,
    });
  if (decision.exceptionExpired)
    events.push({
      id: `${id}:reopened`,
      type: 'case.reopened',
      caseKey: next.key,
      at,
      reason: next.statusReason,
      actor: 'closeloop:exceptions',
    });
  return events;
}

/**
 * Whether the case says what a kept change announces: suppressed by the exception it names, or no longer
 * suppressed by the one that expired or was lifted. Before its write the case never does (the sweep changes a
 * case only from the other state); after it, later changes may have moved it on, and the entry is still owed.
 */
function announces(c: Case, events: readonly PipelineEvent[]): boolean {
  const decided = events.find((e) => e.type === 'case.decided');
  const parsed = DecisionSchema.safeParse(decided?.detail?.decision);
  if (!parsed.success) return false;
  const { exception, exceptionExpired, exceptionLifted } = parsed.data;
  if (exception) return c.exception?.id === exception.id;
  const gone = exceptionExpired ?? exceptionLifted;
  return gone !== undefined && !(c.status === 'suppressed' && c.exception?.id === gone.id);
}
