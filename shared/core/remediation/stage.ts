/**
 * The remediation stage: on `case.decided` it plans the case's action, checks the apply-time gates
 * and applies when everything allows it; on `case.verified` it feeds the circuit breaker. It writes only
 * the case's `remediation` section and `status`/`statusReason`, always through `mutateDoc`.
 *
 * Order of checks, each recorded as a gate with its reason:
 *   plan (live re-read; an error → blocked, or held and read again later when it failed for the moment, as
 *   a failed read of the run's own AWS account is) → policy gates (decide's blocks, accounts, resources,
 *   environment: the one on the live tags the skip tag is read from, see environmentGate) → skip tag (live; a
 *   read failing for the moment → held, as the plan) → exception → approval → dry-run → circuit breaker → claim
 *   → budget → apply.
 * The claim (state `applying` with a fresh applyToken, conditional on the version read) makes two
 * concurrent deliveries of the same case produce one apply. A claim whose process died is settled failed by
 * `recoverAbandonedApplies` once older than policy `apply.abandonAfter`; held work is run again by
 * `releaseHeld` (both on the hub's remediate schedule and at the start of a local `run`).
 */
import * as z from 'zod';
import type { Action, ActionContext, Plan } from '../../actions/define.js';
import { classifyCloudError } from '../../actions/retry.js';
import { contextFor } from '../../actions/scope.js';
import { compileEnvironmentTag, type EnvironmentTag } from '../enrich/environment.js';
import {
  type AdapterError,
  ApplyIncompleteError,
  errorMessage,
  isGone,
  isRetryable,
  PlanOutdatedError,
  UsageError,
} from '../errors.js';
import { type Case, type CaseRemediation, CaseSchema, type CaseStatus, type RemediationState } from '../model/case.js';
import type { GateResult } from '../model/decision.js';
import type { PipelineEvent } from '../model/events.js';
import { FindingSchema } from '../model/finding.js';
import { readAnnouncedCase } from '../pipeline/announced.js';
import type { Stage } from '../pipeline/stage.js';
import type { RiskException } from '../policy/exceptions.js';
import { type EnrichmentPolicy, EnrichmentPolicySchema } from '../policy/policy.js';
import type { Clock, DocStore, Logger, OwnerLookup } from '../ports.js';
import { getDoc, mutateDoc } from '../store/docs.js';
import { canonicalJson, shortHash } from '../util/hash.js';
import {
  approvalLapsed,
  approverEnvironment,
  approverRefusalIn,
  breakerGate,
  budgetLeft,
  exceptionGate,
  fromRegistry,
  judgedForApprovers,
  judgeEnvironment,
  policyGates,
  recordFailedVerification,
  reserveBudget,
  skipTagGate,
} from './gates.js';
import type { ApplyPolicy } from './policy.js';
import type { RemoteExecutor, RemoteRequest, RemoteResult } from './remote.js';

const CASES = 'cases';
const FINDINGS = 'findings';
/**
 * Held work (budget spent, breaker open, a live read that failed for the moment): one document per case,
 * retried by `releaseHeld`.
 */
export const HELD_COLLECTION = 'remediation-held';
/**
 * A held case's document. `retry`: the hold is a read that failed for the moment (throttled, 5xx, reset,
 * timeout), not before `after`, the `attempts`-th failure in a row since `since`.
 */
const HeldDocSchema = z.object({
  caseKey: z.string(),
  reason: z.string(),
  at: z.string(),
  retry: z.object({ attempts: z.number().int().min(1), since: z.string(), after: z.string() }).optional(),
});
type HeldRetry = NonNullable<z.infer<typeof HeldDocSchema>['retry']>;
/**
 * The waits (minutes) after the 1st, 2nd … failed read of a case for the moment before the next one (a
 * remote's longer Retry-After wins). A read failing this many times in a row, or for longer than
 * {@link TRANSIENT_RETRY_LIMIT_MS}, is no longer the moment: the case is blocked with the reason.
 */
export const TRANSIENT_RETRY_MINUTES = [5, 15, 60, 240] as const;
export const TRANSIENT_RETRY_LIMIT_MS = 24 * 3_600_000;
/**
 * Claims to look at (`{ caseKey, at }`, one per case), written before each claim: `recoverAbandonedApplies`
 * lists these instead of every case. A pointer outlives its claim until a recovery run finds the claim settled.
 */
export const CLAIMS_COLLECTION = 'remediation-claims';
/** When the cases were last all looked through for claims without a pointer (`{ at }` under id `cases`). */
export const CLAIM_SWEEP_COLLECTION = 'remediation-claim-sweep';
const ClaimPointerSchema = z.object({ caseKey: z.string(), at: z.string() });
const SweepMarkSchema = z.object({ at: z.string() });
/** What the sweep reads of a case: whether it holds a claim, and since when (unknown keys are dropped). */
const ClaimOfCaseSchema = z.object({
  key: z.string(),
  updatedAt: z.string(),
  remediation: z.object({ state: z.string(), claimedAt: z.string().optional() }),
});

export interface RemediationDeps {
  store: DocStore;
  actions: { get(id: string): Action | undefined };
  /** Undefined in the local default (no cloud): plans are built from the finding only, nothing is applied. */
  ctx: ActionContext | undefined;
  clock: Clock;
  log: Logger;
  policy: ApplyPolicy;
  /** true with `--apply` or in a deployment whose mode applies; false = dry-run. */
  apply: boolean;
  /** Who acts for automatic runs (`closeloop`, `closeloop@aws-hub`). */
  actor: string;
  /** Exceptions (file + store), re-read at apply time; omitted: only the case's exception counts. */
  exceptions?: () => Promise<RiskException[]>;
  /**
   * Live tags for the skip-tag and environment re-checks (one read serves both); omitted: decide's skip-tag
   * gate and environment stand.
   */
  tags?: OwnerLookup;
  /**
   * The enrichment policy's environment tag keys, words and placeholder values, which read the environment on
   * the live tags as enrichment reads it (and travel to a spoke with the request); omitted: the policy's defaults.
   */
  enrichment?: Pick<EnrichmentPolicy, 'tagAliases' | 'environmentWords' | 'placeholderValues'>;
  /**
   * Where actions of other providers run (the AWS hub hands Azure/GCP actions to their spokes). For those
   * the hub plans from the finding only, gates and claims as usual, then dispatches instead of applying;
   * the spoke's answer is recorded by {@link recordRemoteResult}. Omitted: every action runs here.
   */
  remote?: RemoteExecutor;
  /**
   * The id of the event being handled (set by the stage, per event): the events it leads to take their ids
   * from it rather than from the time, so a duplicate delivery of it (SQS delivers at least once) announces
   * what it re-did under the same ids, which the ticket and evidence stages do once.
   */
  trigger?: string;
}

type Outcome = { events: PipelineEvent[]; state: RemediationState | 'unchanged' };

/** The enrichment policy's defaults, for deps that name none: parsed when first needed, not at import (config.ts). */
let defaultEnrichment: EnrichmentPolicy | undefined;
function enrichmentOf(
  deps: RemediationDeps,
): Pick<EnrichmentPolicy, 'tagAliases' | 'environmentWords' | 'placeholderValues'> {
  if (deps.enrichment) return deps.enrichment;
  defaultEnrichment ??= EnrichmentPolicySchema.parse({});
  return defaultEnrichment;
}
/** The environment tag reader of each enrichment policy, compiled once. */
const environmentTags = new WeakMap<object, (tags: Record<string, string>) => EnvironmentTag | undefined>();
function environmentTagOf(deps: RemediationDeps) {
  const p = enrichmentOf(deps);
  let read = environmentTags.get(p);
  if (!read) {
    read = compileEnvironmentTag(p.tagAliases.environment, p.environmentWords, p.placeholderValues);
    environmentTags.set(p, read);
  }
  return read;
}

const STATUS_OF: Partial<Record<RemediationState, CaseStatus>> = {
  planned: 'planned',
  'awaiting-approval': 'awaiting-approval',
  approved: 'awaiting-approval',
  applied: 'remediated',
  failed: 'failed',
  held: 'planned',
  blocked: 'open',
  'rolled-back': 'open',
};

const asPlan = (r: CaseRemediation): Plan<unknown, unknown> | undefined =>
  r.plan ? { target: r.target, before: r.before, ...r.plan } : undefined;

/** Writes the remediation section (and status) of a case; `guard` may refuse (returns false) on the fresh value. */
async function writeRemediation(
  deps: RemediationDeps,
  key: string,
  patchOf: Partial<CaseRemediation> | ((c: Case) => Partial<CaseRemediation>),
  guard: (c: Case) => boolean = () => true,
  reason?: string,
): Promise<Case | undefined> {
  const now = deps.clock.now().toISOString();
  const r = await mutateDoc(deps.store, CASES, key, CaseSchema, (c) => {
    if (!c || !guard(c)) return undefined;
    const patch = typeof patchOf === 'function' ? patchOf(c) : patchOf;
    const remediation = { ...c.remediation, ...patch };
    const status = patch.state ? STATUS_OF[patch.state] : undefined;
    return {
      ...c,
      remediation,
      ...(status ? { status, statusReason: reason ?? remediation.stateReason ?? remediation.reason } : {}),
      updatedAt: now,
    };
  });
  return r.changed ? r.value : undefined;
}

function event(
  deps: RemediationDeps,
  c: Case,
  state: string,
  actor: string,
  detail: Record<string, unknown>,
  salt = '',
  // The time of what happened when it is on the case (an apply's `appliedAt`): the id then derives from
  // the case alone, and re-sending the event after a lost publish gives the same id, not a new event.
  when?: string,
) {
  const at = when ?? deps.clock.now().toISOString();
  // A time of its own (`when`) makes the id the same for every re-send; else the event handled does.
  const stamp = when ?? (deps.trigger !== undefined ? `event:${deps.trigger}` : at);
  const e: PipelineEvent = {
    id: `rem-${shortHash(`${c.key}|${state}|${c.remediation.applyToken ?? ''}|${salt}|${stamp}`)}`,
    type: 'case.remediation',
    caseKey: c.key,
    at,
    state,
    actor,
    detail,
  };
  return e;
}

/**
 * Whether the target and plan on the case are `action`'s. Decide carries the stage's fields over when it chooses
 * another action for the case (a playbook or registry changed): that action's target and plan are not this
 * one's. Told by the target's shape and by the plan's steps, each of which names a permission of its action.
 */
const plannedFor = (r: CaseRemediation, action: Action): boolean =>
  r.target === undefined ||
  (action.target.safeParse(r.target).success &&
    (r.plan?.steps ?? []).every((s) => action.permissions.includes(s.call.permission)));

/**
 * The action's target: the one on the case when it is this action's (`own`: {@link plannedFor}), else from the
 * finding.
 */
async function targetOf(deps: RemediationDeps, c: Case, action: Action, own: boolean): Promise<unknown> {
  if (c.remediation.target !== undefined && own) {
    return action.target.parse(c.remediation.target);
  }
  const key = c.findingKeys[c.findingKeys.length - 1];
  const doc = key ? await deps.store.get(FINDINGS, key) : undefined;
  const finding = doc ? FindingSchema.safeParse(doc.value) : undefined;
  return finding?.success ? action.selectTarget(finding.data) : undefined;
}

/** Records a terminal-for-now state with its reason and emits `case.remediation`. */
async function settle(
  deps: RemediationDeps,
  c: Case,
  state: RemediationState,
  reason: string,
  extra: Partial<CaseRemediation>,
  actor: string,
  guard?: (c: Case) => boolean,
  retry?: HeldRetry,
): Promise<Outcome> {
  const next = await writeRemediation(deps, c.key, { ...extra, state, stateReason: reason }, guard, reason);
  if (!next) return { events: [], state: 'unchanged' };
  if (state === 'held') {
    const at = deps.clock.now().toISOString();
    await deps.store.put(HELD_COLLECTION, c.key, { caseKey: c.key, reason, at, ...(retry ? { retry } : {}) });
  }
  const detail = {
    reason,
    ...(retry ? { retryAfter: retry.after, attempt: retry.attempts } : {}),
    ...(extra.plan ? { plan: extra.plan } : {}),
    ...(extra.applyGates ? { gates: extra.applyGates } : {}),
  };
  return { events: [event(deps, next, state, actor, detail)], state };
}

/**
 * A live read (the own account, the resource's state) failed for the moment: the case is held, with why and
 * when it is read again, and `releaseHeld` runs it again from then on — the same gates and a fresh live read,
 * nothing applied without one. Failing {@link TRANSIENT_RETRY_MINUTES}' length + 1 times in a row, or for
 * longer than {@link TRANSIENT_RETRY_LIMIT_MS}, it is blocked with the reason (fail closed): no longer the
 * moment. Before, one throttled call blocked the case until its finding happened to come again.
 */
async function retryLater(
  deps: RemediationDeps,
  c: Case,
  reason: string,
  e: Pick<AdapterError, 'kind' | 'retryAfterSeconds'>,
  extra: Partial<CaseRemediation>,
  actor: string,
  guard?: (c: Case) => boolean,
): Promise<Outcome> {
  const now = deps.clock.now();
  // Failures in a row: counted on while the case is still held for an earlier one, or (a spoke's answer) is
  // the hand-over the release of that hold sent again (its hold document is kept while it is out).
  const counts = c.remediation.state === 'held' || c.remediation.state === 'applying';
  const doc = counts ? await getDoc(deps.store, HELD_COLLECTION, c.key, HeldDocSchema) : undefined;
  const earlier = doc?.value.retry;
  const attempts = (earlier?.attempts ?? 0) + 1;
  const since = earlier?.since ?? now.toISOString();
  const waited = now.getTime() - Date.parse(since);
  const waitMinutes = TRANSIENT_RETRY_MINUTES[attempts - 1];
  if (waitMinutes === undefined || waited >= TRANSIENT_RETRY_LIMIT_MS) {
    const why = `${reason} (${e.kind}, ${attempts} reads in a row since ${since} failed: no longer retried)`;
    return settle(deps, c, 'blocked', why, extra, actor, guard);
  }
  const waitMs = Math.max(waitMinutes * 60_000, (e.retryAfterSeconds ?? 0) * 1000);
  const after = new Date(now.getTime() + waitMs).toISOString();
  const held = `${reason} (${e.kind}: read again after ${after}, attempt ${attempts} of ${TRANSIENT_RETRY_MINUTES.length + 1})`;
  return settle(deps, c, 'held', held, extra, actor, guard, { attempts, since, after });
}

/**
 * Blocked with `reason`, or, when `cause` (the error of the live read `what` that left it unreadable) failed for
 * the moment, held and read again later ({@link retryLater}).
 */
function blockOrRetry(
  deps: RemediationDeps,
  c: Case,
  reason: string,
  cause: unknown,
  what: string,
  extra: Partial<CaseRemediation>,
  actor: string,
): Promise<Outcome> {
  const classified = cause === undefined ? undefined : classifyCloudError(cause, what);
  return classified && isRetryable(classified)
    ? retryLater(deps, c, reason, classified, extra, actor)
    : settle(deps, c, 'blocked', reason, extra, actor);
}

/**
 * Plans, gates and (when everything allows) applies the case's action. `approvedBy` is set when a person
 * approved; `storedPlan`: this run carries out that approval. An approval is of the live plan it was given
 * on: that plan is applied (refused if the live state moved since, and then planned again for a person to
 * approve), never a plan made again later. `lapsed`: why an approval on the case no longer counts, said where
 * the case asks for one again.
 */
async function run(
  deps: RemediationDeps,
  c: Case,
  actor: string,
  storedPlan = false,
  lapsed?: string,
): Promise<Outcome> {
  const r = c.remediation;
  const action = r.action ? deps.actions.get(r.action) : undefined;
  if (!r.action) return { events: [], state: 'unchanged' };
  if (!action) return settle(deps, c, 'blocked', `action ${r.action} is not registered`, {}, actor);
  // A plan (and an approval of it) of the action decide chose before: this action plans afresh, and a person
  // approves its plan (before, its stored target did not fit: blocked for good, "no target").
  const own = plannedFor(r, action);
  const target = await targetOf(deps, c, action, own).catch(() => undefined);
  if (target === undefined) {
    return settle(deps, c, 'blocked', `the finding does not name what ${action.id} needs (no target)`, {}, actor);
  }
  let approved = r.approvedBy !== undefined;
  if (approved && !own) {
    approved = false;
    lapsed ??= `${r.approvedBy} approved a plan of another action`;
  }
  const remote = deps.remote?.runs(action.provider) ? deps.remote : undefined;
  // The account acted in: an AWS call names no account, and another account's credentials would read
  // (and change) a namesake there. Refused before anything is read.
  let ctx = deps.ctx;
  if (ctx && !remote) {
    const scoped = await contextFor(ctx, c.provider, c.account);
    if ('refused' in scoped) {
      // The own account could not be read this time (STS throttled, a reset): retried, not blocked for good.
      return blockOrRetry(deps, c, scoped.refused, scoped.cause, 'sts:GetCallerIdentity', { target }, actor);
    }
    ctx = scoped.ctx;
  }

  // 1. Plan: a live re-read; without a cloud context, a dry-run description from the finding only.
  let plan: Plan<unknown, unknown>;
  // A retry of an apply that stopped part-way (steps recorded, or one that may have taken effect, never
  // applied): plan again from the live state, since the steps made are no longer needed, and keep the
  // original before-state for rollback. Only an attempt of this action: another one's before-state is not of this
  // action's target (see rollbackCase), and this action reads its own from the live state.
  const partial = startedBefore(r) && (r.applyAction === undefined ? own : r.applyAction === action.id);
  // The approved plan, when the approval is of a live plan that changes something: it is what is applied, the
  // action re-reading the resource and refusing it if it moved since (see PlanOutdatedError below). Kept on the
  // case while the approval is: every write after an approval is of that plan, or drops the approval.
  const stored = own ? asPlan(r) : undefined;
  const liveApproved = approved && stored?.before !== undefined && !stored.noop ? stored : undefined;
  const approvedPlan = ctx && !remote && !partial ? liveApproved : undefined;
  // An approval without such a plan (given on a plan from the finding only, one that found nothing to do) is
  // carried out once, by the run it asks for; a plan made again later (the case run again after a block, its
  // finding come back) is not the one approved and needs a person again. A retry of an apply that stopped
  // part-way finishes the approved one.
  if (approved && ctx && !remote && !partial && !approvedPlan && !storedPlan) {
    approved = false;
    lapsed ??= `${r.approvedBy} approved an earlier plan, not this one`;
  }
  if (remote) {
    // The live state is read by the spoke, under its own identity, right before it applies.
    const summary = `${action.provider} spoke reads the live state and runs ${action.id} (${action.title}) on ${canonicalJson(target)}`;
    plan = { target, before: undefined, steps: [], summary, noop: false };
  } else if (!ctx) {
    const summary = `dry-run, live state not read (--live reads it): ${action.title} on ${canonicalJson(target)}`;
    // The action's outline: what it may do; the live plan keeps only the steps the resource needs.
    const steps = (action.outline ?? []).map((o) => ({
      say: `${o.say}, where needed`,
      call: { api: o.api, permission: o.permission, input: target },
    }));
    plan = { target, before: undefined, steps, summary, noop: false };
  } else if (approvedPlan) {
    plan = approvedPlan;
  } else {
    try {
      plan = await action.plan(target, ctx);
    } catch (e) {
      const reason = `${isGone(e) ? 'resource gone' : 'live state could not be read'}: ${errorMessage(e)}`;
      // Nothing is applied without a live read; one that failed for the moment is read again later.
      return blockOrRetry(deps, c, reason, e, `${action.id}:plan`, { target, error: errorMessage(e) }, actor);
    }
  }
  const before = partial ? r.before : plan.before;
  // An approval that does not count for this plan is taken off the case: the plan shown waits for a new one
  // (a Jira approval is taken only while none is on the case).
  const dropApproval = () => (lapsed !== undefined ? { approvedBy: undefined, approvedAt: undefined } : {});
  const shown = {
    target,
    plan: { steps: plan.steps, summary: plan.summary, noop: plan.noop },
    before,
  };
  if (plan.noop && partial) return finishedEarlier(deps, c, action, { ...shown, ...dropApproval() }, actor);
  if (plan.noop) return settle(deps, c, 'noop', plan.summary, { ...shown, ...dropApproval() }, actor);

  // 2. Gates that need no counter.
  const now = deps.clock.now();
  // The environment is judged on the same live tags: a dev bucket re-tagged `env`=prod since decide asks for
  // production's approval (before, decide's `dev` let a fix that is not production-safe through).
  const skip = await skipTagGate(c, deps.policy, deps.tags, environmentTagOf(deps));
  // Recorded for approvers (see approverRefusal); tags not read here (a spoke's cloud) keep what was recorded,
  // which may be a spoke's own reading.
  const judgedEnvironment =
    skip.environment === 'unread'
      ? r.judgedEnvironment
      : judgedForApprovers(
          judgeEnvironment({ decided: c.enrichment.environment, byRegistry: fromRegistry(c), live: skip.environment }),
        );
  // An approval on the case counts only from someone who may approve fixes in the environment judged now: one
  // given while the case was dev, its resource tagged prod since, waits for production's approvers (before,
  // dev's approver, or anyone where dev had no entry, approved a production fix).
  if (approved && r.approvedBy !== undefined) {
    const env = approverEnvironment(c.enrichment.environment, judgedEnvironment);
    const refused = approverRefusalIn(deps.policy.approvers, env, r.approvedBy);
    if (refused) {
      approved = false;
      lapsed ??= approvalLapsed(refused);
    }
  }
  const planned = {
    ...shown,
    ...dropApproval(),
    ...(judgedEnvironment !== undefined ? { judgedEnvironment } : {}),
  };
  const gates: GateResult[] = [
    ...policyGates(c, action, deps.policy, approved, skip.environment),
    ...skip.gates,
    await exceptionGate(c, deps.exceptions, now),
  ];
  if (plan.needsApproval && !approved)
    gates.push({ gate: 'resource', outcome: 'approval', reason: plan.needsApproval });
  if (r.mode === 'approval' && !approved) gates.push({ gate: 'mode', outcome: 'approval', reason: r.reason });
  const stop = gates.find((g) => g.outcome === 'block' || g.outcome === 'unknown');
  if (stop) {
    // The live tags could not be read for the moment (throttled, 5xx): read again later, as a failed plan read.
    const cause = stop === skip.gates[0] ? skip.cause : undefined;
    return blockOrRetry(deps, c, stop.reason, cause, 'tags:read', { ...planned, applyGates: gates }, actor);
  }
  const ask = gates.find((g) => g.outcome === 'approval');
  if (ask) {
    const why = lapsed === undefined ? ask.reason : `${ask.reason} (${lapsed})`;
    return settle(deps, c, 'awaiting-approval', why, { ...planned, applyGates: gates }, actor);
  }
  if (!deps.apply || (!ctx && !remote)) {
    const why = ctx || remote ? 'dry-run: plan recorded, nothing applied (use --apply)' : plan.summary;
    return settle(deps, c, approved ? 'approved' : 'planned', why, { ...planned, applyGates: gates }, actor);
  }

  // 3. Circuit breaker, then the claim (one apply per case), then the budget.
  const breaker = await breakerGate(deps.store, deps.policy, now);
  if (breaker.outcome !== 'pass')
    return settle(deps, c, 'held', breaker.reason, { ...planned, applyGates: [...gates, breaker] }, actor);
  const token = shortHash(`${c.key}|${now.toISOString()}|${Math.random()}`);
  // A new apply (not the retry of one that may have changed the resource) starts with no steps made: what an
  // earlier apply of this case made (one rolled back since) must not pass for steps of this one. A retry names
  // what may have taken effect before it: the claim clears `interruptedAt`, and an answer of this retry finding
  // nothing left to do must still be recorded as the earlier attempt's fix (see recordRemoteResult).
  const fresh = partial
    ? { unconfirmed: uncertainStep(r) }
    : {
        requestIds: undefined,
        appliedAt: undefined,
        unconfirmed: undefined,
        rolledBackAt: undefined,
        rolledBackBy: undefined,
      };
  // The claim token is new for every attempt (it tells concurrent claims apart); the apply key stays with a
  // retry of an apply that stopped part-way, so the action finds what that apply created (a snapshot).
  const applyKey = (partial && r.applyKey) || token;
  const claimedAt = deps.clock.now().toISOString();
  // The pointer goes first: a process that dies after the claim always leaves one for the recovery to find.
  await deps.store.put(CLAIMS_COLLECTION, c.key, { caseKey: c.key, at: claimedAt });
  const claimed = await writeRemediation(
    deps,
    c.key,
    {
      ...planned,
      ...fresh,
      applyGates: [...gates, breaker],
      state: 'applying',
      applyToken: token,
      applyKey,
      applyAction: action.id,
      claimedAt,
      interruptedAt: undefined,
      // The error shown is the latest attempt's: an earlier attempt's failure stays in the case's events.
      error: undefined,
      stateReason: 'applying',
    },
    (current) => current.remediation.state !== 'applying' && current.remediation.state !== 'applied',
  );
  if (claimed?.remediation.applyToken !== token) return { events: [], state: 'unchanged' };
  // What this claim records from here on, it records only while the case still holds the claim: once
  // recovered as abandoned (see holdsClaim) or taken over by a newer claim, it is no longer this one's.
  const mine = holdsClaim(token);
  const budget = await reserveBudget(deps.store, claimed, deps.policy, now);
  const allGates = [...gates, breaker, budget.gate];
  if (!budget.ok) return settle(deps, claimed, 'held', budget.gate.reason, { applyGates: allGates }, actor, mine);
  if (remote) return dispatchRemote(deps, remote, claimed, action, target, token, allGates, actor);
  // Without a context only a remote executor gets this far (the dry-run check above); this narrows the type.
  if (!ctx) return settle(deps, claimed, 'blocked', 'no cloud context to apply with', {}, actor, mine);

  // 4. Apply: the action re-reads and refuses if the state moved since the plan.
  const madeBefore = partial ? (r.requestIds ?? []) : []; // steps an earlier, partial attempt made
  try {
    const result = await action.apply(plan, { ...ctx, applyKey });
    const appliedAt = deps.clock.now().toISOString();
    const requestIds = [...madeBefore, ...result.requestIds];
    const extra = {
      applyGates: allGates,
      before: partial ? r.before : result.before,
      requestIds,
      appliedAt,
      unconfirmed: undefined,
      interruptedAt: undefined,
      // Finishing after its claim was settled as abandoned: the interruption's error no longer holds.
      error: undefined,
    };
    const reason = `applied ${action.id}: ${plan.summary}`;
    const next = await writeRemediation(deps, c.key, { ...extra, state: 'applied', stateReason: reason }, mine, reason);
    if (!next) {
      // A newer claim took the case over (this one was settled as abandoned, then retried): that attempt
      // re-reads the live state, which now holds this apply's change.
      deps.log.warn('apply finished after its claim was taken over; the newer attempt decides', { caseKey: c.key });
      return { events: [], state: 'unchanged' };
    }
    const detail = { plan: planned.plan, before: extra.before, requestIds };
    return { events: await appliedOutcome(deps, next, actor, detail, token, appliedAt), state: 'applied' };
  } catch (e) {
    if (approvedPlan && e instanceof PlanOutdatedError) {
      // The resource changed after the plan a person approved: nothing was called, and the approval is of
      // the resource as it was. The claim is given up and the case planned again from the live state, so the
      // person sees what a fix now changes (before, approving again re-applied the stale plan and failed).
      const note = `${r.approvedBy} approved a plan the live resource no longer matches (it changed since)`;
      const released = await writeRemediation(
        deps,
        c.key,
        { state: 'planned', stateReason: note, approvedBy: undefined, approvedAt: undefined },
        mine,
        note,
      );
      if (released) return run(deps, released, actor, false, note);
    }
    const reason = `apply of ${action.id} failed: ${errorMessage(e)}`;
    // Steps made before the failure are recorded (after any made by an earlier, also partial, attempt),
    // and a step that may have taken effect is named.
    const made = e instanceof ApplyIncompleteError ? [...madeBefore, ...e.requestIds] : [];
    const unconfirmed = e instanceof ApplyIncompleteError ? e.unconfirmed : undefined;
    const extra = {
      applyGates: allGates,
      error: errorMessage(e),
      interruptedAt: undefined,
      ...(made.length > 0 ? { requestIds: made } : {}),
      ...(unconfirmed ? { unconfirmed } : {}),
    };
    return settle(deps, c, 'failed', reason, extra, actor, mine);
  }
}

/**
 * Whether a case still holds the claim `token`: `applying` under it, or settled failed by the recovery of
 * abandoned claims while its outcome was unknown (`interruptedAt`). The outcome of that apply, arriving
 * late, is the truth about what was applied and is recorded; once a newer claim took over, it is not.
 */
const holdsClaim =
  (token: string) =>
  (c: Case): boolean =>
    c.remediation.applyToken === token &&
    (c.remediation.state === 'applying' ||
      (c.remediation.state === 'failed' && c.remediation.interruptedAt !== undefined));

/**
 * What an apply recorded on `next` announces: its hold lifted, the `applied` event (timed at the apply, so a
 * re-send has the same id) and the verification it owes (one per claim `token`).
 */
async function appliedOutcome(
  deps: RemediationDeps,
  next: Case,
  actor: string,
  detail: Record<string, unknown>,
  token: string,
  appliedAt: string,
): Promise<PipelineEvent[]> {
  await deps.store.delete(HELD_COLLECTION, next.key);
  return [
    event(deps, next, 'applied', actor, detail, '', appliedAt),
    verifyAfterApply(next.key, token, appliedAt, actor),
  ];
}

/**
 * Whether an earlier apply of this remediation may have changed the resource without completing: steps
 * recorded, a step that may have taken effect (`unconfirmed`), or a claim settled as abandoned with its outcome
 * unknown (`interruptedAt`); never applied, and not rolled back since (a rollback ends the remediation's
 * attempt). Its before-state, when known, is then the original one. A spoke's claim has none (the spoke reads
 * it): an interrupted hand-over counts all the same, its before-state unknown.
 */
const startedBefore = (r: CaseRemediation): boolean =>
  r.appliedAt === undefined &&
  r.rolledBackAt === undefined &&
  ((r.requestIds?.length ?? 0) > 0 || r.unconfirmed !== undefined || r.interruptedAt !== undefined);

/**
 * What of an earlier attempt may have taken effect: the step named without a definite answer, else the whole
 * apply when its claim was settled as abandoned; undefined when neither.
 */
const uncertainStep = (r: CaseRemediation): string | undefined =>
  r.unconfirmed ??
  (r.interruptedAt !== undefined
    ? `${r.plan?.summary ?? r.applyAction ?? r.action ?? 'the apply'} (interrupted)`
    : undefined);

/**
 * What a rollback writes besides who and when: it ends the remediation's attempt. A new apply after it is not
 * the retry of one that stopped part-way (see startedBefore): it gets a new apply key, reads its own
 * before-state and counts no step of the rolled-back one.
 */
const ENDS_ATTEMPT = {
  state: 'rolled-back',
  applyKey: undefined,
  unconfirmed: undefined,
  interruptedAt: undefined,
} as const satisfies Partial<CaseRemediation>;

/**
 * A retry whose live re-read finds nothing left to do after an earlier attempt that may have changed the
 * resource: that attempt finished the fix (its last answer was lost, or the rest was done by hand). Recorded
 * as applied, with the original before-state (so it can be rolled back) and the verification it owes; not as
 * "already compliant", which would hide closeloop's own change and leave nothing to roll back.
 */
async function finishedEarlier(
  deps: RemediationDeps,
  c: Case,
  action: Action,
  planned: Partial<CaseRemediation>,
  actor: string,
): Promise<Outcome> {
  const r = c.remediation;
  const appliedAt = deps.clock.now().toISOString();
  const token = shortHash(`${c.key}|${appliedAt}|${Math.random()}`);
  const uncertain = uncertainStep(r);
  const reason = `applied ${action.id} by an earlier attempt${uncertain ? ` ("${uncertain}" had no definite answer)` : ''}: the live state needs nothing more`;
  const next = await writeRemediation(
    deps,
    c.key,
    {
      ...planned,
      state: 'applied',
      stateReason: reason,
      appliedAt,
      applyToken: token,
      applyAction: action.id,
      unconfirmed: undefined,
      interruptedAt: undefined,
    },
    (f) => f.remediation.state !== 'applying' && f.remediation.state !== 'applied' && startedBefore(f.remediation),
    reason,
  );
  if (!next) return { events: [], state: 'unchanged' };
  const detail = { plan: planned.plan, before: next.remediation.before, requestIds: next.remediation.requestIds ?? [] };
  return { events: await appliedOutcome(deps, next, actor, detail, token, appliedAt), state: 'applied' };
}

/**
 * The events an apply announces (`applied`, and the verification it owes), rebuilt from the case with the
 * ids they were first sent with, while the case is applied and not verified since. In AWS a stage's
 * follow-ups are published after its writes: when the function dies in between, or the publish fails and
 * the message comes back, the redelivered event finds the case already applied, and without this the
 * apply would never be verified nor its evidence recorded. Downstream stages are idempotent on event ids.
 */
function appliedFollowUps(deps: RemediationDeps, c: Case): PipelineEvent[] {
  const r = c.remediation;
  if (r.state !== 'applied' || !r.applyToken || !r.appliedAt) return [];
  if (c.verification && Date.parse(c.verification.at) >= Date.parse(r.appliedAt)) return [];
  const detail = { plan: r.plan, before: r.before, requestIds: r.requestIds ?? [] };
  return [
    event(deps, c, 'applied', r.approvedBy ?? deps.actor, detail, '', r.appliedAt),
    verifyAfterApply(c.key, r.applyToken, r.appliedAt, deps.actor),
  ];
}

/** Verification owed after an apply: one request per claim (the id is derived from the claim's token). */
const verifyAfterApply = (caseKey: string, token: string, at: string, actor: string): PipelineEvent => ({
  id: `verify-${shortHash(`${caseKey}|${token}`)}`,
  type: 'case.verify-requested',
  caseKey,
  at,
  trigger: 'apply',
  actor,
});

/** The action's policy settings (`apply.actions.<id>`) when they are an object, to send along with a request. */
function settingsOf(deps: RemediationDeps, id: string): Record<string, unknown> | undefined {
  const entry: unknown = deps.ctx?.settings?.[id];
  return typeof entry === 'object' && entry !== null && !Array.isArray(entry) ? { ...entry } : undefined;
}

/**
 * Hands the claimed apply to the spoke that runs the action. The case stays `applying` under the claim's
 * token until the spoke's result comes back ({@link recordRemoteResult}); a failed hand-over fails the case.
 */
async function dispatchRemote(
  deps: RemediationDeps,
  remote: RemoteExecutor,
  c: Case,
  action: Action,
  target: unknown,
  token: string,
  gates: GateResult[],
  actor: string,
): Promise<Outcome> {
  const requestId = `rq-${shortHash(`${c.key}|${token}`)}`;
  const settings = settingsOf(deps, action.id);
  try {
    await remote.dispatch({
      requestId,
      caseKey: c.key,
      provider: action.provider,
      action: action.id,
      op: 'apply',
      target,
      applyToken: token,
      ...(settings ? { settings } : {}),
      ...(c.remediation.approvedBy ? { approvedBy: c.remediation.approvedBy } : {}),
      // The spoke re-reads the live tags with its own identity just before it applies, for the skip tag and
      // the environment (judged there as here: see environmentGate).
      skipTag: deps.policy.skipTag,
      resource: { id: c.resourceId, account: c.account, region: c.region },
      environment: {
        decided: c.enrichment.environment,
        byRegistry: fromRegistry(c),
        allowProductionAuto: deps.policy.allowProductionAuto,
        tagKeys: enrichmentOf(deps).tagAliases.environment,
        words: enrichmentOf(deps).environmentWords,
        // `env=TBD` is no tag there as here (and in enrichment), not a value naming no known environment.
        placeholders: enrichmentOf(deps).placeholderValues,
        // The approval sent is checked again there against the environment the spoke judges.
        approvers: deps.policy.approvers,
      },
      actor,
    });
  } catch (e) {
    const reason = `hand-over of ${action.id} to the ${action.provider} spoke failed: ${errorMessage(e)}`;
    const extra = { applyGates: gates, error: errorMessage(e) };
    return settle(deps, c, 'failed', reason, extra, actor, holdsClaim(token));
  }
  const reason = `dispatched ${action.id} to the ${action.provider} spoke (${requestId})`;
  const next = await writeRemediation(deps, c.key, { stateReason: reason }, (f) => f.remediation.applyToken === token);
  const detail = { reason, requestId, spoke: action.provider, gates };
  return { events: next ? [event(deps, next, 'dispatched', actor, detail)] : [], state: 'applying' };
}

/** Case state for each apply outcome a spoke reports. */
const REMOTE_STATE: Partial<Record<RemoteResult['outcome'], RemediationState>> = {
  applied: 'applied',
  noop: 'noop',
  planned: 'planned',
  'awaiting-approval': 'awaiting-approval',
  blocked: 'blocked',
  failed: 'failed',
};

/**
 * Records a spoke's answer on the case. An apply result counts only while the case still holds the
 * claim it was dispatched under (state `applying`, same token; or that claim settled failed as abandoned,
 * its outcome unknown: the answer is then the truth about what was applied): a duplicate answer, or one
 * for a claim a newer one replaced, changes nothing. A rollback result counts on an applied (or failed)
 * case. Verify results are not recorded here.
 *
 * @example const events = await recordRemoteResult(deps, RemoteResultSchema.parse(detail));
 */
export async function recordRemoteResult(deps: RemediationDeps, result: RemoteResult): Promise<PipelineEvent[]> {
  const at = deps.clock.now().toISOString();
  const detail = {
    reason: result.reason,
    requestId: result.requestId,
    spoke: result.provider,
    requestIds: result.requestIds,
    ...(result.plan ? { plan: result.plan } : {}),
    ...(result.before !== undefined ? { before: result.before } : {}),
    ...(result.observed !== undefined ? { after: result.observed } : {}),
    ...(result.error ? { error: result.error } : {}),
  };
  if (result.op === 'rollback') {
    if (result.outcome !== 'rolled-back') {
      deps.log.warn('remote rollback did not complete', { caseKey: result.caseKey, reason: result.reason });
      return [];
    }
    const next = await writeRemediation(
      deps,
      result.caseKey,
      {
        ...ENDS_ATTEMPT,
        rolledBackBy: result.actor,
        rolledBackAt: at,
        stateReason: result.reason,
        requestIds: result.requestIds,
      },
      (f) => f.remediation.state === 'applied' || f.remediation.state === 'failed',
      result.reason,
    );
    // Timed at the recorded rollback, so the event sent again for a redelivered answer has the same id.
    if (next) return [event(deps, next, 'rolled-back', result.actor, detail, result.requestId, at)];
    // Delivered again: when this rollback is the one on the case, its event may be what the first delivery lost.
    const current = await readCase(deps.store, result.caseKey);
    const r = current?.remediation;
    return current &&
      r?.state === 'rolled-back' &&
      r.rolledBackAt !== undefined &&
      r.rolledBackBy === result.actor &&
      r.stateReason === result.reason &&
      sameIds(r.requestIds, result.requestIds)
      ? [event(deps, current, 'rolled-back', result.actor, detail, result.requestId, r.rolledBackAt)]
      : [];
  }
  const reported = result.op === 'apply' ? REMOTE_STATE[result.outcome] : undefined;
  if (!reported || !result.applyToken) return [];
  if (reported === 'blocked' && result.retry)
    return remoteRetryLater(deps, result, result.retry, result.applyToken, detail);
  // Settled against the case as it is: after an earlier apply that may have changed the resource
  // (startedBefore), its steps stay first, its before-state stays the one kept for rollback, and a spoke
  // finding nothing left to do means that attempt finished the fix (applied, see finishedEarlier). The
  // interruption of the claim this answer is for does not count as an earlier attempt: the answer is that
  // claim's own outcome, and replaces the uncertainty (a late noop, blocked or failed-without-steps leaves none).
  const patch = (f: Case): Partial<CaseRemediation> => {
    const earlier = startedBefore({ ...f.remediation, interruptedAt: undefined });
    const state: RemediationState = earlier && reported === 'noop' ? 'applied' : reported;
    const requestIds = [...(earlier ? (f.remediation.requestIds ?? []) : []), ...result.requestIds];
    // After an interrupted hand-over the original before-state is unknown: this answer's read is the best
    // known one when it found something to do; when it found nothing, it read the fixed state, not the original.
    const before = earlier
      ? (f.remediation.before ?? (reported === 'noop' ? undefined : result.before))
      : result.before;
    return {
      state,
      stateReason:
        state === reported ? result.reason : `applied ${result.action} by an earlier attempt: ${result.reason}`,
      requestIds,
      ...(result.target !== undefined ? { target: result.target } : {}),
      ...(result.plan ? { plan: result.plan } : {}),
      ...(before !== undefined ? { before } : {}),
      // This claim's own outcome: its error, or none (the interruption's text was not an outcome).
      error: result.error,
      // The action the spoke ran: for a claim taken before claims named it, the answer does.
      ...(state === 'applied' ? { appliedAt: at, unconfirmed: undefined, applyAction: result.action } : {}),
      // The environment the spoke judged on the live tags it read: approvals are checked against it here (the
      // hub cannot read them), so a resource tagged prod now waits for production's approvers.
      ...(result.judgedEnvironment !== undefined ? { judgedEnvironment: result.judgedEnvironment } : {}),
      // Waiting for a person: an approval on the case did not count there (none asked for then, or one from
      // someone who may not approve in the environment the spoke judged). It is taken off, so a new one is
      // taken (a Jira approval is taken only while none is on the case).
      ...(state === 'awaiting-approval' ? { approvedBy: undefined, approvedAt: undefined } : {}),
      ...(result.unconfirmed ? { unconfirmed: result.unconfirmed } : {}),
      interruptedAt: undefined,
    };
  };
  const token = result.applyToken;
  const next = await writeRemediation(deps, result.caseKey, patch, holdsClaim(token));
  if (!next) {
    // A result delivered again: when this answer is already on the case, its follow-ups may be what the
    // first delivery lost (see appliedFollowUps), sent again with the ids they were first sent with.
    const current = await readCase(deps.store, result.caseKey);
    if (current?.remediation.applyToken !== token) return [];
    if (current.remediation.state === 'applied') return appliedFollowUps(deps, current);
    const recorded = current.remediation.state === reported && current.remediation.stateReason === result.reason;
    return recorded ? [event(deps, current, reported, result.actor, detail, result.requestId, result.at)] : [];
  }
  const state = next.remediation.state;
  if (state === 'applied') return appliedOutcome(deps, next, result.actor, detail, token, at);
  // A hand-over sent again after a read that failed for the moment has its answer: the streak is over.
  await deps.store.delete(HELD_COLLECTION, next.key);
  // Timed at the answer, so the event sent again for a redelivered answer has the same id.
  return [event(deps, next, state, result.actor, detail, result.requestId, result.at)];
}

/** Whether two lists of request ids are the same, in order. */
const sameIds = (a: readonly string[] | undefined, b: readonly string[]): boolean =>
  (a ?? []).length === b.length && b.every((id, i) => a?.[i] === id);

/**
 * A spoke's live read (its plan, its skip-tag re-read) failed for the moment: nothing was applied, and the
 * case is held and sent again by `releaseHeld` once the wait is over, bounded as a hub read is
 * ({@link retryLater}), instead of blocked until its finding recurs. Only while the case holds the claim.
 */
async function remoteRetryLater(
  deps: RemediationDeps,
  result: RemoteResult,
  retry: NonNullable<RemoteResult['retry']>,
  token: string,
  detail: Record<string, unknown>,
): Promise<PipelineEvent[]> {
  const c = await readCase(deps.store, result.caseKey);
  if (!c || !holdsClaim(token)(c)) return [];
  const why = { kind: retry.kind, retryAfterSeconds: retry.afterSeconds };
  const extra: Partial<CaseRemediation> = {
    ...(result.target !== undefined ? { target: result.target } : {}),
    ...(result.plan ? { plan: result.plan } : {}),
    error: result.error,
    interruptedAt: undefined,
  };
  const out = await retryLater(deps, c, result.reason, why, extra, result.actor, holdsClaim(token));
  return out.events.map((e) => (e.type === 'case.remediation' ? { ...e, detail: { ...detail, ...e.detail } } : e));
}

/**
 * Whether a hand-over to a spoke may be sent again (one the hub bus could not deliver, redriven from the
 * dead-letter queue): an apply only while its case still waits on that claim. A claim settled since
 * (recovered as abandoned, failed, taken over by a newer apply) must not reach the spoke late: the spoke
 * would act on a plan the case no longer stands behind, beside a newer apply of its own. A rollback only
 * while its case is still in the state it was asked for (applied or failed under the same claim token): once
 * rolled back, or applied again since, the spoke would restore the old before-state over the newer fix. A
 * rollback request without the token (sent before it was carried) cannot be matched and is not sent again.
 * Verify and resolve requests change nothing a newer apply depends on and are always sent.
 */
export async function handOverStillOwed(store: DocStore, request: RemoteRequest): Promise<boolean> {
  if (request.op !== 'apply' && request.op !== 'rollback') return true;
  if (request.applyToken === undefined) return false;
  const c = await readCase(store, request.caseKey);
  if (c?.remediation.applyToken !== request.applyToken) return false;
  const state = c.remediation.state;
  return request.op === 'apply' ? state === 'applying' : state === 'applied' || state === 'failed';
}

/**
 * What to do with a hand-over redriven from the dead-letter queue (the spoke could not be reached when it was
 * sent): `send` it again while it is owed ({@link handOverStillOwed}) and, for an apply, while nothing that
 * stops an apply stops it now. It comes back up to `apply.abandonAfter.spokeMinutes` after its gates were
 * checked: an exception accepted since (or one that can no longer be read) blocks the case, a circuit
 * breaker opened since holds it, each with the reason, and the events saying so are returned. Before, the
 * apply went to the spoke as it was, and the spoke (which re-reads the skip tag only) applied it.
 */
export async function redriveHandOver(
  deps: RemediationDeps,
  request: RemoteRequest,
): Promise<{ send: boolean; events: PipelineEvent[] }> {
  if (!(await handOverStillOwed(deps.store, request))) return { send: false, events: [] };
  const c = request.op === 'apply' ? await readCase(deps.store, request.caseKey) : undefined;
  const token = request.applyToken;
  if (!c || token === undefined) return { send: true, events: [] };
  const now = deps.clock.now();
  const gates = [await exceptionGate(c, deps.exceptions, now), await breakerGate(deps.store, deps.policy, now)];
  const stop = gates.find((g) => g.outcome !== 'pass');
  if (!stop) return { send: true, events: [] };
  const state = stop.gate === 'circuit-breaker' && stop.outcome === 'block' ? 'held' : 'blocked';
  const reason = `hand-over of ${request.action} to the ${request.provider} spoke not sent again: ${stop.reason}`;
  const applyGates = [...(c.remediation.applyGates ?? []), ...gates];
  const out = await settle(deps, c, state, reason, { applyGates }, deps.actor, holdsClaim(token));
  return { send: false, events: out.events };
}

const readCase = async (store: DocStore, key: string): Promise<Case | undefined> => {
  const doc = await store.get(CASES, key);
  return doc ? CaseSchema.parse(doc.value) : undefined;
};

/**
 * Whether decide, as it last decided the case, leaves a fix to make: not when an exception or the source's
 * mute accepts the risk, the source resolved it (mode `none`), or it is a sample. What waited (a hold, an
 * approval not yet carried out) may have been overtaken so: run then, its gates blocked the case and the
 * block wrote it `open` over `suppressed` or `pending-verification` (an expired exception then re-opened
 * nothing, the sweep re-opens only suppressed cases).
 */
const fixStillWanted = (c: Case): boolean =>
  c.remediation.action !== null &&
  c.remediation.mode !== 'none' &&
  c.sourceStatus !== 'resolved' &&
  !c.sample &&
  !c.muted;

/** States after which a new `case.decided` does not plan again (a person or verification owns the case). */
const SETTLED: ReadonlySet<RemediationState> = new Set([
  'applying',
  'applied',
  'rolled-back',
  'awaiting-approval',
  'failed',
]);

/**
 * @example
 * const stage = createRemediationStage({ store, actions: registry, ctx: undefined, clock, log,
 *   policy: config.policy.apply, apply: false, actor: 'closeloop' });
 * const bus = new InProcessBus([stage, ...], log);
 */
export function createRemediationStage(stageDeps: RemediationDeps): Stage {
  return {
    name: 'remediate',
    handles: ['case.decided', 'case.verified', 'case.remediation'],
    async handle(e) {
      const deps = { ...stageDeps, trigger: e.id };
      // Throws (retryable) while the state the event announces is not written yet: no plan or apply on the
      // state before it, and a new case's event is not dropped for want of a case.
      const c = await readAnnouncedCase(deps.store, e);
      if (e.type === 'case.remediation') {
        // An approval recorded where nothing may be applied (the Jira webhook, `closeloop approve` in a
        // dry-run) is carried out here, by the deployment that holds the cloud context and may apply.
        if (e.state === 'approved' && c?.remediation.state === 'applied') return appliedFollowUps(deps, c);
        if (e.state !== 'approved' || c?.remediation.state !== 'approved' || !deps.apply || !deps.ctx) return [];
        return (await run(deps, c, c.remediation.approvedBy ?? e.actor, true)).events;
      }
      if (e.type === 'case.verified') {
        // Only a failed verification of a fix closeloop applied counts against the breaker.
        if (e.verdict === 'failed' && c?.remediation.state === 'applied') {
          await recordFailedVerification(deps.store, e.id, deps.clock.now(), deps.policy);
        }
        return [];
      }
      if (e.type !== 'case.decided' || !c) return [];
      const r = c.remediation;
      if (r.state === 'applied') return appliedFollowUps(deps, c);
      if (!fixStillWanted(c) || r.mode === 'manual' || SETTLED.has(r.state)) return [];
      return (await run(deps, c, deps.actor, r.state === 'approved')).events;
    },
  };
}

/** Case statuses under which there is no fix to approve (closed, risk accepted, resolved at the source). */
const NOT_APPROVABLE: ReadonlySet<CaseStatus> = new Set(['verified', 'suppressed', 'pending-verification']);

/**
 * Records who approved and applies now when allowed (`apply` on and a cloud context), else marks the case
 * approved; its `approved` event makes a remediation stage that may apply carry it out (the remediate
 * function in the hub, `closeloop run --apply` locally). Applies exactly the plan that was approved.
 * A case with nothing to approve (no action, applied, closed, suppressed) is a UsageError.
 *
 * @example await approveCase(deps, 'aws|arn:aws:s3:::acme-exports|S3.8', 'lead@acme.example')
 */
export async function approveCase(
  deps: RemediationDeps,
  caseKey: string,
  approver: string,
): Promise<{ state: RemediationState | 'approval-refused'; events: PipelineEvent[] }> {
  const at = deps.clock.now().toISOString();
  const current = await readCase(deps.store, caseKey);
  const refused = current ? approverRefusal(deps.policy, current, approver) : undefined;
  if (current && refused) {
    // Not an approval: the case keeps waiting; the attempt is recorded (evidence, ticket comment), with who
    // may approve it instead, so the person refused knows whom to ask.
    const detail = { reason: refused.reason, mayApprove: refused.mayApprove, approver };
    return { state: 'approval-refused', events: [event(deps, current, 'approval-refused', approver, detail, at)] };
  }
  // A closed, suppressed or source-resolved case has nothing to approve: approving it would move it back to
  // awaiting-approval (and count it open) under a verified closure or an accepted risk.
  const closed = current && NOT_APPROVABLE.has(current.status) ? current.status : undefined;
  if (closed) throw new UsageError(`case ${caseKey} is ${closed}: there is no fix to approve`);
  const c = await writeRemediation(
    deps,
    caseKey,
    { approvedBy: approver, approvedAt: at, state: 'approved', stateReason: `approved by ${approver}` },
    (fresh) =>
      fresh.remediation.action !== null &&
      !['applying', 'applied'].includes(fresh.remediation.state) &&
      !NOT_APPROVABLE.has(fresh.status),
  );
  if (!c) throw new UsageError(`case ${caseKey} not found, has no action, is already applied, or is closed`);
  const approvedEvent = event(deps, c, 'approved', approver, { approvedBy: approver });
  // Where nothing may be applied, the approval is recorded as is: re-planning without a cloud context
  // would replace the approved live plan with a description. The `approved` event carries it to the
  // remediation stage of a deployment that may apply.
  if (!deps.apply || !deps.ctx) return { state: 'approved', events: [approvedEvent] };
  const out = await run(deps, c, approver, asPlan(c.remediation) !== undefined);
  return { state: out.state === 'unchanged' ? 'approved' : out.state, events: [approvedEvent, ...out.events] };
}

/**
 * Why `approver` may not approve `c` (policy `apply.approvers` for the case's environment, else `*`), and who
 * may instead, or undefined when they may. The case's environment is the strictest of decide's and the one the apply-time gate
 * judged on the live tags ({@link approverEnvironment}): production's approvers approve a case decided dev whose
 * resource is tagged prod now. An approver is compared by what comes before ` (` (a Jira approver is recorded
 * as `jira:<accountId> (<display name>)`), without case.
 *
 * @example approverRefusal(policy, prodCase, 'jira:557058:ab12 (Sam)')
 * // { reason: 'jira:557058:ab12 may not approve …', mayApprove: 'approvers for prod: …' }
 */
export function approverRefusal(
  policy: ApplyPolicy,
  c: Case,
  approver: string,
): { reason: string; mayApprove: string } | undefined {
  const env = approverEnvironment(c.enrichment.environment, c.remediation.judgedEnvironment);
  return approverRefusalIn(policy.approvers, env, approver);
}

/**
 * Restores the recorded before-state of an applied case and records who did it.
 *
 * @example await rollbackCase(deps, caseKey, 'oncall@acme.example')
 */
export async function rollbackCase(deps: RemediationDeps, caseKey: string, actor: string) {
  const c = await readCase(deps.store, caseKey);
  if (!c?.remediation.action && !c?.remediation.applyAction) {
    throw new UsageError(`case ${caseKey} not found or has no registered action`);
  }
  if (c.remediation.state !== 'applied' && c.remediation.state !== 'failed') {
    throw new UsageError(`case ${caseKey} is ${c.remediation.state}: only an applied (or failed) fix rolls back`);
  }
  const r = c.remediation;
  const action = appliedBy(deps, c);
  // A failed apply rolls back only what it may have changed: steps made, one without a definite answer, or an
  // apply interrupted with its outcome unknown. One refused before any change has nothing of closeloop's to
  // undo, and writing its before-state back would undo what was done to the resource since (a leaked key the
  // owner deactivated by hand made active again, a bucket closed since opened again).
  if (r.state === 'failed' && (r.requestIds?.length ?? 0) === 0 && !r.unconfirmed && !r.interruptedAt) {
    throw new UsageError(
      `case ${caseKey} failed before changing anything: there is nothing to roll back (its before-state is not written over the resource as it is now)`,
    );
  }
  const target = action.target.parse(c.remediation.target);
  if (deps.remote?.runs(action.provider)) {
    // The spoke restores it under its own identity; its result is recorded by recordRemoteResult.
    const requestId = `rq-${shortHash(`${caseKey}|rollback|${deps.clock.now().toISOString()}`)}`;
    await deps.remote.dispatch({
      requestId,
      caseKey,
      provider: action.provider,
      action: action.id,
      op: 'rollback',
      target,
      before: c.remediation.before,
      // The applied (or failed) state this rollback is for: a redriven copy goes out only while the case is
      // still in it (see handOverStillOwed).
      ...(c.remediation.applyToken ? { applyToken: c.remediation.applyToken } : {}),
      actor,
    });
    const detail = { requestId, spoke: action.provider, reason: `rollback requested by ${actor}` };
    return { requestIds: [], events: [event(deps, c, 'rollback-dispatched', actor, detail, requestId)] };
  }
  if (!deps.ctx) throw new UsageError('rollback needs cloud access (no client context in this run)');
  const scoped = await contextFor(deps.ctx, c.provider, c.account);
  if ('refused' in scoped) throw new UsageError(`rollback refused: ${scoped.refused}`);
  const before = action.beforeSchema.parse(c.remediation.before);
  const result = await action.rollback({ target, before }, scoped.ctx);
  const at = deps.clock.now().toISOString();
  // What the rollback left as it was (a container deleted since the fix) is said with it.
  const reason = `rolled back by ${actor}${result.note ? `: ${result.note}` : ''}`;
  const next = await writeRemediation(
    deps,
    caseKey,
    { ...ENDS_ATTEMPT, rolledBackBy: actor, rolledBackAt: at, stateReason: reason, requestIds: result.requestIds },
    undefined,
    reason,
  );
  const events = next ? [event(deps, next, 'rolled-back', actor, { requestIds: result.requestIds })] : [];
  return { requestIds: result.requestIds, events };
}

/**
 * The action whose apply the case's target and before-state are of: the one its apply recorded, not the one
 * decide chose since (before, the new action's rollback ran with the old one's before-state: a schema error,
 * or when the shapes fit, the wrong thing restored). A case applied before the action was recorded is taken
 * to be of the current action only when its target and plan are that action's ({@link plannedFor}).
 */
function appliedBy(deps: RemediationDeps, c: Case): Action {
  const r = c.remediation;
  const id = r.applyAction ?? r.action ?? '';
  const action = deps.actions.get(id);
  const now = r.action && r.action !== id ? ` (decide now chooses ${r.action})` : '';
  if (!action) throw new UsageError(`case ${c.key} was applied by ${id}, which is not registered${now}`);
  if (r.applyAction === undefined && !plannedFor(r, action)) {
    throw new UsageError(
      `case ${c.key} was applied by another action than ${id}, the one decide now chooses, before cases recorded the action that applied them (its plan: ${r.plan?.summary ?? 'not recorded'}): its before-state is not ${id}'s, and rolling back with ${id} would restore the wrong thing; restore it by hand`,
    );
  }
  return action;
}

/**
 * Carries out approvals recorded where nothing could be applied (`closeloop approve` without `--apply`),
 * now that this run may apply. Scans the cases: meant for the local run, where the hub uses events.
 */
export async function releaseApproved(deps: RemediationDeps): Promise<PipelineEvent[]> {
  if (!deps.apply || !deps.ctx) return [];
  const events: PipelineEvent[] = [];
  for (const doc of await deps.store.list(CASES)) {
    const c = CaseSchema.safeParse(doc.value);
    if (!c.success || c.data.remediation.state !== 'approved' || !fixStillWanted(c.data)) continue;
    events.push(...(await run(deps, c.data, c.data.remediation.approvedBy ?? deps.actor, true)).events);
  }
  return events;
}

/** How a sweep of the schedule (or a run of the CLI) is bounded and where what it finds goes. */
export interface SweepOptions {
  /**
   * Epoch ms (by `deps.clock`) after which no further case is taken; the rest waits for the next run. A case
   * is not started when the longest one so far would not end before it.
   */
  until?: number;
  /** Publishes what one case produced, right after its write; omitted: the events are returned. */
  publish?: (events: readonly PipelineEvent[]) => Promise<void>;
}

/** A sweep's emitter: publishes case by case (`publish`), or collects into `events`. */
function emitter(options: SweepOptions) {
  const events: PipelineEvent[] = [];
  const emit = async (found: readonly PipelineEvent[]) => {
    if (found.length === 0) return;
    if (options.publish) await options.publish(found);
    else events.push(...found);
  };
  return { events, emit };
}

/**
 * What one case of a sweep is taken to need before any was timed (and at least, after): a live re-read and an
 * apply whose calls are retried with backoff take seconds. Without it, the first case starts however little
 * time is left.
 */
export const CASE_ESTIMATE_MS = 10_000;

/** A time budget: whether the next piece of work still fits before `until` (by the longest one so far). */
function timeBudget(deps: RemediationDeps, until: number | undefined) {
  let longest = CASE_ESTIMATE_MS;
  const fits = () => until === undefined || deps.clock.now().getTime() + longest < until;
  return {
    fits,
    async time<T>(work: () => Promise<T>): Promise<T> {
      const started = deps.clock.now().getTime();
      try {
        return await work();
      } finally {
        longest = Math.max(longest, deps.clock.now().getTime() - started);
      }
    },
    /**
     * Runs `one` on each item, one at a time, while the budget fits; returns how many it did not reach. An
     * item that throws (a document that no longer parses, a store error) goes to `failed` and the others go
     * on: one bad case must not stop the rest, on this run and every one after.
     */
    async each<T>(
      items: readonly T[],
      one: (item: T) => Promise<void>,
      failed: (item: T, e: unknown) => void,
    ): Promise<number> {
      for (const [i, item] of items.entries()) {
        if (!fits()) return items.length - i;
        try {
          await one(item);
        } catch (e) {
          failed(item, e);
        }
      }
      return 0;
    },
  };
}

export interface HeldRelease {
  /** Held cases run again (applied, held again, blocked …). */
  released: number;
  /**
   * Held cases left alone: the breaker is still open, their account's budget for the last 60 minutes is spent, or the
   * wait after a read that failed for the moment is not over.
   */
  waiting: number;
  /** Held cases the time budget did not reach: the next run takes them (those before them are skipped at once). */
  remaining: number;
  /** Held cases that could not be looked at (unreadable, a store error): logged, left held for the next run. */
  errors: number;
  /** The events, when no `publish` was given. */
  events: PipelineEvent[];
}

/**
 * Retries every held case (budget refilled, breaker closed, a failed read's wait over); what is still held
 * stays queued. A case whose hold cannot have lifted (the breaker still open, its account's budget for the last
 * 60 minutes spent, read from the store; its retry time not reached) is left as it is, without a live re-read: on
 * a schedule every few minutes, running it again would re-read the resource and tell its ticket "held" again
 * each time.
 *
 * @example const r = await releaseHeld(deps, { until: Date.now() + 60_000, publish: (e) => bus.publish(e) });
 */
export async function releaseHeld(deps: RemediationDeps, options: SweepOptions = {}): Promise<HeldRelease> {
  const { events, emit } = emitter(options);
  const budget = timeBudget(deps, options.until);
  const out: HeldRelease = { released: 0, waiting: 0, remaining: 0, errors: 0, events };
  const held = await deps.store.list(HELD_COLLECTION);
  const now = deps.clock.now();
  const breakerOpen = (await breakerGate(deps.store, deps.policy, now)).outcome !== 'pass';
  const releaseOne = async (doc: (typeof held)[number]): Promise<'dropped' | 'out' | 'waiting' | 'released'> => {
    const c = await readCase(deps.store, doc.id);
    // A hold for a read that failed for the moment (see retryLater), read once for both uses below.
    const retry = HeldDocSchema.safeParse(doc.value).data?.retry;
    // A hand-over sent again after a spoke's read failed for the moment: its answer counts on the streak.
    if (c?.remediation.state === 'applying' && retry !== undefined) return 'out';
    // Not held any more, or held for a fix no longer wanted (its exception or the source's answer comes back
    // through decide, whose decision plans it again).
    if (c?.remediation.state !== 'held' || !fixStillWanted(c)) {
      // At the version listed: a hold written since (its document rewritten) stays queued.
      await deps.store.delete(HELD_COLLECTION, doc.id, { expectVersion: doc.version });
      return 'dropped';
    }
    // A read that failed for the moment is tried again once its wait is over, not on every run before.
    if (retry && Date.parse(retry.after) > now.getTime()) return 'waiting';
    if (breakerOpen || !(await budgetLeft(deps.store, c, deps.policy, now))) return 'waiting';
    const ran = await budget.time(() => run(deps, c, deps.actor, c.remediation.approvedBy !== undefined));
    await emit(ran.events);
    return 'released';
  };
  out.remaining = await budget.each(
    held,
    async (doc) => {
      const done = await releaseOne(doc);
      if (done !== 'dropped' && done !== 'out') out[done]++;
    },
    (doc, e) => {
      out.errors++;
      deps.log.error('remediate: a held case could not be released; the others go on', {
        caseKey: doc.id,
        error: errorMessage(e),
      });
    },
  );
  return out;
}

export interface ClaimRecovery {
  /** Abandoned claims settled failed by this run. */
  recovered: number;
  /** Claims settled by an earlier run whose events are sent again (that run stopped before it finished). */
  resent: number;
  /** Claims younger than the bound, left to their apply. */
  live: number;
  /** Claims the time budget did not reach. */
  remaining: number;
  /** Claims (or cases of the sweep) that could not be looked at (unreadable, a store error): logged, looked at next run. */
  errors: number;
  /** Whether the cases were all looked through for claims without a pointer (first run, then daily). */
  swept: boolean;
  /** The events, when no `publish` was given. */
  events: PipelineEvent[];
}

/** How often the cases are all looked through for claims without a pointer (see CLAIM_SWEEP_COLLECTION). */
export const CLAIM_SWEEP_EVERY_MS = 24 * 3_600_000;
/**
 * A pointer younger than this is kept even when its case holds no claim: the claim it was written for may
 * be being written (the pointer goes first).
 */
const POINTER_GRACE_MS = 60_000;

/**
 * Settles claims whose process died (state `applying` longer than `policy.abandonAfter`: a Lambda timeout, an
 * out-of-memory kill, a SIGKILLed local run, a spoke whose answer never came) as `failed`, with why and the
 * outcome unknown (`interruptedAt`), so a retry re-reads the live state, does what is left, keeps the
 * before-state read before the claim for rollback, and a retry finding nothing left is recorded as applied by
 * the interrupted attempt (the retry's claim names it in `unconfirmed`). The write is conditional on the same
 * claim, so an apply that finishes first wins; one that finishes after is still recorded (see holdsClaim). Emits the `failed` event a failed apply emits (the ticket
 * is told), timed at the recovery so a re-send has the same id.
 *
 * Claims are found through their pointers ({@link CLAIMS_COLLECTION}); on the first run and daily after, the
 * cases are all looked through for claims without one (taken before pointers existed: their age counts
 * from the case's `updatedAt`, never earlier than the claim, so such a claim is settled late, never early).
 *
 * @example const r = await recoverAbandonedApplies(deps, new Date(), { publish: (e) => bus.publish(e) });
 */
export async function recoverAbandonedApplies(
  deps: RemediationDeps,
  now: Date,
  options: SweepOptions = {},
): Promise<ClaimRecovery> {
  const { events, emit } = emitter(options);
  const budget = timeBudget(deps, options.until);
  const out: ClaimRecovery = { recovered: 0, resent: 0, live: 0, remaining: 0, errors: 0, swept: false, events };
  // One case that cannot be read or settled (a document that no longer parses, a store error) must not stop
  // the others, on this run and every one after (and at the start of every local run): logged and counted.
  const failed = (caseKey: string | undefined, e: unknown) => {
    out.errors++;
    deps.log.error('remediate: a claim could not be looked at; the others go on', {
      ...(caseKey !== undefined ? { caseKey } : {}),
      error: errorMessage(e),
    });
  };
  out.swept = await sweepClaims(deps, now, budget.fits, failed);
  const pointers = await listAll(deps.store, CLAIMS_COLLECTION);
  const recoverOne = async (doc: (typeof pointers)[number]): Promise<'recovered' | 'resent' | 'live' | 'other'> => {
    const c = await readCase(deps.store, doc.id);
    // At the version listed: a pointer written since (a new claim's) stays.
    const drop = () => deps.store.delete(CLAIMS_COLLECTION, doc.id, { expectVersion: doc.version });
    if (c?.remediation.state === 'applying') {
      const settled = await budget.time(() => settleAbandoned(deps, c, now));
      if (settled === 'live') return 'live';
      if (settled === 'overtaken') return 'other'; // settled meanwhile: looked at again next run
      await emit(settled);
      await drop();
      return 'recovered';
    }
    // Settled by an earlier run, which may have stopped before its events went out: the same events again
    // (same ids), until the pointer is gone.
    const resent = c?.remediation.state === 'failed' && c.remediation.interruptedAt !== undefined;
    if (resent) await emit([interruptedEvent(deps, c)]);
    const pointer = ClaimPointerSchema.safeParse(doc.value);
    const young = pointer.success && now.getTime() - Date.parse(pointer.data.at) < POINTER_GRACE_MS;
    if (!c || !young) await drop();
    return resent ? 'resent' : 'other';
  };
  out.remaining = await budget.each(
    pointers,
    async (doc) => {
      const done = await recoverOne(doc);
      if (done !== 'other') out[done]++;
    },
    (doc, e) => failed(doc.id, e),
  );
  return out;
}

/**
 * The bound of a claim on `c` in minutes, and the spoke it waits for when its action runs in one. An action
 * no longer registered gets the longer bound (it may have been handed over).
 */
function boundOf(deps: RemediationDeps, c: Case): { minutes: number; spoke: string | undefined } {
  const id = c.remediation.applyAction ?? c.remediation.action;
  const action = id ? deps.actions.get(id) : undefined;
  const spoke = action && deps.remote?.runs(action.provider) ? action.provider : undefined;
  const { applyMinutes, spokeMinutes } = deps.policy.abandonAfter;
  return { minutes: !action || spoke ? spokeMinutes : applyMinutes, spoke };
}

/**
 * Settles the claim `c` holds as failed when it is older than its bound: the events, `live` when it is not,
 * `overtaken` when the case moved on before the write (the apply finished, a newer claim).
 */
async function settleAbandoned(
  deps: RemediationDeps,
  c: Case,
  now: Date,
): Promise<PipelineEvent[] | 'live' | 'overtaken'> {
  const r = c.remediation;
  const token = r.applyToken;
  const { minutes, spoke } = boundOf(deps, c);
  // A claim taken before claimedAt existed: the case's last write, which is never earlier than the claim.
  const since = r.claimedAt ?? c.updatedAt;
  if (now.getTime() - Date.parse(since) < minutes * 60_000) return 'live';
  const counted = r.claimedAt
    ? `its claim at ${since}`
    : `the case's last update at ${since} (claim time not recorded)`;
  // The action the claim applied: decide may have chosen another for the case since.
  const applying = r.applyAction ?? r.action;
  const what = spoke
    ? `hand-over of ${applying} to the ${spoke} spoke unanswered: no result within ${minutes} min of ${counted}`
    : `apply of ${applying} interrupted: no outcome within ${minutes} min of ${counted}`;
  const reason = `${what}; it may have taken effect in part — the live state decides the next attempt`;
  const next = await writeRemediation(
    deps,
    c.key,
    {
      state: 'failed',
      stateReason: reason,
      // The ticket's comment shows the error: the why, in full.
      error: reason,
      // The outcome of this claim is unknown (see startedBefore, uncertainStep). `unconfirmed` is left as the
      // claim found it: a late answer of this claim replaces the interruption with what it says, and what
      // an earlier attempt left uncertain must stay so whatever that answer is.
      interruptedAt: now.toISOString(),
    },
    (f) => f.remediation.state === 'applying' && f.remediation.applyToken === token,
    reason,
  );
  return next ? [interruptedEvent(deps, next)] : 'overtaken';
}

/** The `failed` event of a claim settled as abandoned: timed at the settling, so a re-send has the same id. */
function interruptedEvent(deps: RemediationDeps, c: Case): PipelineEvent {
  const r = c.remediation;
  const unconfirmed = uncertainStep(r);
  const detail = {
    reason: r.stateReason,
    interrupted: true,
    ...(unconfirmed ? { unconfirmed } : {}),
    ...(r.plan ? { plan: r.plan } : {}),
  };
  return event(deps, c, 'failed', deps.actor, detail, 'interrupted', r.interruptedAt);
}

/**
 * On the first run and then every {@link CLAIM_SWEEP_EVERY_MS}: a pointer for every claim that has none (taken
 * before pointers existed). Returns whether the cases were looked through to the end (only then is it marked).
 */
async function sweepClaims(
  deps: RemediationDeps,
  now: Date,
  fits: () => boolean,
  failed: (caseKey: string | undefined, e: unknown) => void,
): Promise<boolean> {
  try {
    const mark = await getDoc(deps.store, CLAIM_SWEEP_COLLECTION, 'cases', SweepMarkSchema);
    if (mark && now.getTime() - Date.parse(mark.value.at) < CLAIM_SWEEP_EVERY_MS) return false;
    let after: string | undefined;
    // A pointer that could not be written leaves the sweep unmarked: the next run looks through again.
    let complete = true;
    for (;;) {
      if (!fits()) return false;
      const page = await deps.store.list(CASES, { limit: 500, ...(after !== undefined ? { after } : {}) });
      if (page.length === 0) break;
      after = page.at(-1)?.id;
      for (const doc of page) {
        const c = ClaimOfCaseSchema.safeParse(doc.value);
        if (!c.success || c.data.remediation.state !== 'applying') continue;
        const at = c.data.remediation.claimedAt ?? c.data.updatedAt;
        try {
          // expectVersion 0: a pointer already there is left as it is (not written, no error).
          await deps.store.put(CLAIMS_COLLECTION, c.data.key, { caseKey: c.data.key, at }, { expectVersion: 0 });
        } catch (e) {
          complete = false;
          failed(c.data.key, e);
        }
      }
    }
    if (!complete) return false;
    await deps.store.put(CLAIM_SWEEP_COLLECTION, 'cases', { at: now.toISOString() });
    return true;
  } catch (e) {
    // The pointers already written are looked at all the same.
    failed(undefined, e);
    return false;
  }
}

/** Every document of a (small) collection, page by page. */
async function listAll(store: DocStore, collection: string) {
  const all: Awaited<ReturnType<DocStore['list']>> = [];
  for (;;) {
    const after = all.at(-1)?.id;
    const page = await store.list(collection, { limit: 100, ...(after !== undefined ? { after } : {}) });
    all.push(...page);
    if (page.length < 100) return all;
  }
}
