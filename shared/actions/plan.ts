/**
 * Small helpers every action shares: building plan steps, the no-op plan, and `applyPlanned`, which
 * re-reads the live state, refuses to act when it moved since the plan (fail closed), and then makes
 * exactly the planned calls in order, collecting request ids.
 */

import {
  AdapterError,
  ApplyIncompleteError,
  errorMessage,
  OutcomeUnknownError,
  PlanOutdatedError,
} from '../core/errors.js';
import type { PlanStep } from '../core/model/case.js';
import { canonicalJson } from '../core/util/hash.js';
import type { ActionContext, ApplyResult, Plan } from './define.js';
import { classifyCloudError, withRetry } from './retry.js';

/** One readable step with the exact call and the permission it needs. */
export const step = (say: string, api: string, permission: string, input: unknown): PlanStep => ({
  say,
  call: { api, permission, input },
});

/** Already compliant: nothing to apply, the before-state kept as evidence. */
export function noopPlan<T, B>(target: T, before: B, summary: string): Plan<T, B> {
  return { target, before, steps: [], summary, noop: true };
}

export function changePlan<T, B>(
  target: T,
  before: B,
  steps: PlanStep[],
  summary: string,
  needsApproval?: string,
): Plan<T, B> {
  return { target, before, steps, summary, noop: steps.length === 0, ...(needsApproval ? { needsApproval } : {}) };
}

/** Values produced by earlier steps of the same apply (e.g. the id of a security group just created). */
export type StepVars = Map<string, string>;

/** Placeholder in a planned input for a value only known during apply: `{{isolationGroupId}}`. */
export const ref = (name: string): string => `{{${name}}}`;

/** Replaces `{{name}}` placeholders (as whole strings) with values from `vars`; throws if one is missing. */
export function resolveRefs<V>(input: V, vars: StepVars): V {
  const walk = (v: unknown): unknown => {
    if (typeof v === 'string') {
      const m = /^\{\{(\w+)\}\}$/.exec(v);
      if (!m?.[1]) return v;
      const value = vars.get(m[1]);
      if (value === undefined) throw new AdapterError('invalid', `plan refers to ${v} before a step produced it`);
      return value;
    }
    if (Array.isArray(v)) return v.map(walk);
    if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]));
    return v;
  };
  return walk(input) as V;
}

/** Runs one step's call: returns the request id (or a stable description when the API gives none). */
export type StepRunner = (step: PlanStep, vars: StepVars) => Promise<string>;

/**
 * The shared `apply`: re-plans against live state; a no-op re-plan means someone (or an earlier try of
 * this apply) already fixed it, so nothing is called. A before-state that differs from the plan's means
 * the approved plan no longer describes the resource: refuse (kind `conflict`) rather than act on a guess.
 * Otherwise runs exactly the planned steps, in order.
 */
export async function applyPlanned<T, B>(
  plan: Plan<T, B>,
  ctx: ActionContext,
  replan: (target: T, ctx: ActionContext) => Promise<Plan<T, B>>,
  run: StepRunner,
): Promise<ApplyResult<B>> {
  const fresh = await replan(plan.target, ctx);
  if (fresh.noop) return { before: fresh.before, requestIds: [] };
  if (canonicalJson(fresh.before) !== canonicalJson(plan.before)) {
    throw new PlanOutdatedError('the live state changed since the plan was made: plan again before applying');
  }
  const vars: StepVars = new Map();
  const requestIds: string[] = [];
  for (const s of plan.steps) {
    try {
      requestIds.push(await run(s, vars));
    } catch (e) {
      // Steps already made are real changes: say which, so the case records them (nothing half-applied
      // goes unrecorded) and a retry plans only what is left. A call with no definite answer may have
      // taken effect too: said as well, so the before-state read for this apply is the one kept.
      const error = classifyCloudError(e, s.call.api);
      const unconfirmed = outcomeUnknown(error);
      if (requestIds.length === 0 && !unconfirmed) throw e;
      throw new ApplyIncompleteError(error, requestIds, plan.steps.length, s.say, unconfirmed);
    }
  }
  return { before: fresh.before, requestIds };
}

/**
 * Whether a failed call may still have taken effect: a transient failure (timeout, reset connection, 5xx)
 * leaves the outcome unknown, unless the request never left (connection refused, name not resolved). A
 * refusal (denied, throttled, invalid, gone, conflict) is a definite answer: nothing was changed, unless it
 * came after the change was accepted ({@link OutcomeUnknownError}: the wait for an operation failed).
 */
export const outcomeUnknown = (e: AdapterError): boolean =>
  e instanceof OutcomeUnknownError ||
  (e.kind === 'transient' && !/ECONNREFUSED|EAI_AGAIN|ENOTFOUND|did not establish a connection/.test(errorMessage(e)));

/** A cloud call: classified errors, bounded retry of throttled/transient (backoff from `ctx.retry`). */
export const call = <R>(ctx: ActionContext, what: string, fn: () => Promise<R>): Promise<R> =>
  withRetry(what, fn, ctx.retry ?? {});

/** AWS request id of a v3 command output. */
export const awsRequestId = (out: { $metadata?: { requestId?: string } }, what: string): string =>
  out.$metadata?.requestId ?? `aws:${what}`;
