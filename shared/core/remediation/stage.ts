/**
 * The remediation stage: on `case.decided` it plans the case's action, checks the apply-time gates
 * and applies when everything allows it; on `case.verified` it feeds the circuit breaker. It writes only
 * the case's `remediation` section and `status`/`statusReason`, always through `mutateDoc`.
 *
 * Order of checks, each recorded as a gate with its reason:
 *   plan (live re-read; an error → blocked) → policy gates (decide's blocks, accounts, resources,
 *   environment) → skip tag (live) → exception → approval → dry-run → circuit breaker → claim → budget → apply.
 * The claim (state `applying` with a fresh applyToken, conditional on the version read) makes two
 * concurrent deliveries of the same case produce one apply.
 */
import type { Action, ActionContext, Plan } from '../../actions/define.js';
import { errorMessage, isGone, UsageError } from '../errors.js';
import { type Case, type CaseRemediation, CaseSchema, type CaseStatus, type RemediationState } from '../model/case.js';
import type { GateResult } from '../model/decision.js';
import type { PipelineEvent } from '../model/events.js';
import { FindingSchema } from '../model/finding.js';
import type { Stage } from '../pipeline/stage.js';
import type { RiskException } from '../policy/exceptions.js';
import type { Clock, DocStore, Logger, OwnerLookup } from '../ports.js';
import { mutateDoc } from '../store/docs.js';
import { canonicalJson, shortHash } from '../util/hash.js';
import {
  breakerGate,
  exceptionGate,
  policyGates,
  recordFailedVerification,
  reserveBudget,
  skipTagGate,
} from './gates.js';
import type { ApplyPolicy } from './policy.js';

const CASES = 'cases';
const FINDINGS = 'findings';
/** Held work (budget spent, breaker open): one document per case, retried by `releaseHeld`. */
export const HELD_COLLECTION = 'remediation-held';

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
  /** Live tags for the skip-tag re-check; omitted: decide's skip-tag gate stands. */
  tags?: OwnerLookup;
}

type Outcome = { events: PipelineEvent[]; state: RemediationState | 'unchanged' };

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
  patch: Partial<CaseRemediation>,
  guard: (c: Case) => boolean = () => true,
  reason?: string,
): Promise<Case | undefined> {
  const now = deps.clock.now().toISOString();
  const r = await mutateDoc(deps.store, CASES, key, CaseSchema, (c) => {
    if (!c || !guard(c)) return undefined;
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
) {
  const at = deps.clock.now().toISOString();
  const e: PipelineEvent = {
    id: `rem-${shortHash(`${c.key}|${state}|${c.remediation.applyToken ?? ''}|${salt}|${at}`)}`,
    type: 'case.remediation',
    caseKey: c.key,
    at,
    state,
    actor,
    detail,
  };
  return e;
}

async function targetOf(deps: RemediationDeps, c: Case, action: Action): Promise<unknown> {
  if (c.remediation.target !== undefined) return action.target.parse(c.remediation.target);
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
): Promise<Outcome> {
  const next = await writeRemediation(deps, c.key, { ...extra, state, stateReason: reason }, undefined, reason);
  if (!next) return { events: [], state: 'unchanged' };
  if (state === 'held') {
    await deps.store.put(HELD_COLLECTION, c.key, { caseKey: c.key, reason, at: deps.clock.now().toISOString() });
  }
  const detail = {
    reason,
    ...(extra.plan ? { plan: extra.plan } : {}),
    ...(extra.applyGates ? { gates: extra.applyGates } : {}),
  };
  return { events: [event(deps, next, state, actor, detail)], state };
}

/**
 * Plans, gates and (when everything allows) applies the case's action. `approvedBy` is set when a person
 * approved; `storedPlan` applies exactly the plan that was approved (refused if the live state moved).
 */
async function run(deps: RemediationDeps, c: Case, actor: string, storedPlan = false): Promise<Outcome> {
  const r = c.remediation;
  const action = r.action ? deps.actions.get(r.action) : undefined;
  if (!r.action) return { events: [], state: 'unchanged' };
  if (!action) return settle(deps, c, 'blocked', `action ${r.action} is not registered`, {}, actor);
  const target = await targetOf(deps, c, action).catch(() => undefined);
  if (target === undefined) {
    return settle(deps, c, 'blocked', `the finding does not name what ${action.id} needs (no target)`, {}, actor);
  }
  const approved = r.approvedBy !== undefined;

  // 1. Plan: a live re-read; without a cloud context, a dry-run description from the finding only.
  let plan: Plan<unknown, unknown>;
  const approvedPlan = storedPlan ? asPlan(r) : undefined;
  if (!deps.ctx) {
    const summary = `dry-run: live state not read; would run ${action.id} (${action.title}) on ${canonicalJson(target)}`;
    plan = { target, before: undefined, steps: [], summary, noop: false };
  } else if (approvedPlan && approvedPlan.before !== undefined) {
    plan = approvedPlan;
  } else {
    try {
      plan = await action.plan(target, deps.ctx);
    } catch (e) {
      const reason = `${isGone(e) ? 'resource gone' : 'live state could not be read'}: ${errorMessage(e)}`;
      return settle(deps, c, 'blocked', reason, { target, error: errorMessage(e) }, actor);
    }
  }
  const planned = { target, plan: { steps: plan.steps, summary: plan.summary, noop: plan.noop }, before: plan.before };
  if (plan.noop) return settle(deps, c, 'noop', plan.summary, planned, actor);

  // 2. Gates that need no counter.
  const now = deps.clock.now();
  const gates: GateResult[] = [
    ...policyGates(c, action, deps.policy, approved),
    ...(await skipTagGate(c, deps.policy, deps.tags)),
    await exceptionGate(c, deps.exceptions, now),
  ];
  if (plan.needsApproval && !approved)
    gates.push({ gate: 'resource', outcome: 'approval', reason: plan.needsApproval });
  if (r.mode === 'approval' && !approved) gates.push({ gate: 'mode', outcome: 'approval', reason: r.reason });
  const stop = gates.find((g) => g.outcome === 'block' || g.outcome === 'unknown');
  if (stop) return settle(deps, c, 'blocked', stop.reason, { ...planned, applyGates: gates }, actor);
  const ask = gates.find((g) => g.outcome === 'approval');
  if (ask) return settle(deps, c, 'awaiting-approval', ask.reason, { ...planned, applyGates: gates }, actor);
  if (!deps.apply || !deps.ctx) {
    const why = deps.ctx ? 'dry-run: plan recorded, nothing applied (use --apply)' : plan.summary;
    return settle(deps, c, approved ? 'approved' : 'planned', why, { ...planned, applyGates: gates }, actor);
  }

  // 3. Circuit breaker, then the claim (one apply per case), then the budget.
  const breaker = await breakerGate(deps.store, deps.policy, now);
  if (breaker.outcome !== 'pass')
    return settle(deps, c, 'held', breaker.reason, { ...planned, applyGates: [...gates, breaker] }, actor);
  const token = shortHash(`${c.key}|${now.toISOString()}|${Math.random()}`);
  const claimed = await writeRemediation(
    deps,
    c.key,
    { ...planned, applyGates: [...gates, breaker], state: 'applying', applyToken: token, stateReason: 'applying' },
    (fresh) => fresh.remediation.state !== 'applying' && fresh.remediation.state !== 'applied',
  );
  if (claimed?.remediation.applyToken !== token) return { events: [], state: 'unchanged' };
  const budget = await reserveBudget(deps.store, claimed, deps.policy, now);
  const allGates = [...gates, breaker, budget.gate];
  if (!budget.ok) return settle(deps, claimed, 'held', budget.gate.reason, { applyGates: allGates }, actor);

  // 4. Apply: the action re-reads and refuses if the state moved since the plan.
  try {
    const result = await action.apply(plan, deps.ctx);
    const appliedAt = deps.clock.now().toISOString();
    const extra = { applyGates: allGates, before: result.before, requestIds: result.requestIds, appliedAt };
    const reason = `applied ${action.id}: ${plan.summary}`;
    const next = await writeRemediation(
      deps,
      c.key,
      { ...extra, state: 'applied', stateReason: reason },
      undefined,
      reason,
    );
    if (!next) return { events: [], state: 'unchanged' };
    await deps.store.delete(HELD_COLLECTION, c.key);
    const detail = { plan: planned.plan, before: result.before, requestIds: result.requestIds };
    const verify: PipelineEvent = {
      id: `verify-${shortHash(`${c.key}|${token}`)}`,
      type: 'case.verify-requested',
      caseKey: c.key,
      at: appliedAt,
      trigger: 'apply',
      actor,
    };
    return { events: [event(deps, next, 'applied', actor, detail), verify], state: 'applied' };
  } catch (e) {
    const reason = `apply of ${action.id} failed: ${errorMessage(e)}`;
    return settle(deps, c, 'failed', reason, { applyGates: allGates, error: errorMessage(e) }, actor);
  }
}

const readCase = async (store: DocStore, key: string): Promise<Case | undefined> => {
  const doc = await store.get(CASES, key);
  return doc ? CaseSchema.parse(doc.value) : undefined;
};

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
export function createRemediationStage(deps: RemediationDeps): Stage {
  return {
    name: 'remediate',
    handles: ['case.decided', 'case.verified'],
    async handle(e) {
      const c = await readCase(deps.store, e.caseKey);
      if (e.type === 'case.verified') {
        // Only a failed verification of a fix closeloop applied counts against the breaker.
        if (e.verdict === 'failed' && c?.remediation.state === 'applied') {
          await recordFailedVerification(deps.store, e.id, deps.clock.now(), deps.policy);
        }
        return [];
      }
      if (e.type !== 'case.decided' || !c) return [];
      const r = c.remediation;
      if (!r.action || r.mode === 'none' || r.mode === 'manual' || SETTLED.has(r.state)) return [];
      if (c.sourceStatus === 'resolved' || c.sample || c.muted) return [];
      return (await run(deps, c, deps.actor, r.state === 'approved')).events;
    },
  };
}

/**
 * Records who approved and applies now when allowed (`apply` on and a cloud context), else marks the case
 * approved for the next run. Applies exactly the plan that was approved.
 *
 * @example await approveCase(deps, 'aws|arn:aws:s3:::acme-exports|S3.8', 'lead@acme.example')
 */
export async function approveCase(deps: RemediationDeps, caseKey: string, approver: string) {
  const at = deps.clock.now().toISOString();
  const c = await writeRemediation(
    deps,
    caseKey,
    { approvedBy: approver, approvedAt: at, state: 'approved', stateReason: `approved by ${approver}` },
    (fresh) => fresh.remediation.action !== null && !['applying', 'applied'].includes(fresh.remediation.state),
  );
  if (!c) throw new UsageError(`case ${caseKey} not found, has no action, or is already applied`);
  const approvedEvent = event(deps, c, 'approved', approver, { approvedBy: approver });
  const out = await run(deps, c, approver, asPlan(c.remediation) !== undefined);
  return { state: out.state === 'unchanged' ? 'approved' : out.state, events: [approvedEvent, ...out.events] };
}

/**
 * Restores the recorded before-state of an applied case and records who did it.
 *
 * @example await rollbackCase(deps, caseKey, 'oncall@acme.example')
 */
export async function rollbackCase(deps: RemediationDeps, caseKey: string, actor: string) {
  const c = await readCase(deps.store, caseKey);
  const action = c?.remediation.action ? deps.actions.get(c.remediation.action) : undefined;
  if (!c || !action) throw new UsageError(`case ${caseKey} not found or has no registered action`);
  if (c.remediation.state !== 'applied' && c.remediation.state !== 'failed') {
    throw new UsageError(`case ${caseKey} is ${c.remediation.state}: only an applied (or failed) fix rolls back`);
  }
  if (!deps.ctx) throw new UsageError('rollback needs cloud access (no client context in this run)');
  const target = action.target.parse(c.remediation.target);
  const before = action.beforeSchema.parse(c.remediation.before);
  const result = await action.rollback({ target, before }, deps.ctx);
  const at = deps.clock.now().toISOString();
  const reason = `rolled back by ${actor}`;
  const next = await writeRemediation(
    deps,
    caseKey,
    { state: 'rolled-back', rolledBackBy: actor, rolledBackAt: at, stateReason: reason, requestIds: result.requestIds },
    undefined,
    reason,
  );
  const events = next ? [event(deps, next, 'rolled-back', actor, { requestIds: result.requestIds })] : [];
  return { requestIds: result.requestIds, events };
}

/** Retries every held case (budget refilled, breaker closed); what is still held stays queued. */
export async function releaseHeld(deps: RemediationDeps): Promise<PipelineEvent[]> {
  const events: PipelineEvent[] = [];
  for (const doc of await deps.store.list(HELD_COLLECTION)) {
    const c = await readCase(deps.store, doc.id);
    if (c?.remediation.state !== 'held') {
      await deps.store.delete(HELD_COLLECTION, doc.id);
      continue;
    }
    events.push(...(await run(deps, c, deps.actor, c.remediation.approvedBy !== undefined)).events);
  }
  return events;
}
