/**
 * Reaching a verdict for one case: re-read the resource through the action's `verify` (with bounded
 * retries and backoff, because cloud APIs are eventually consistent), else rely on the source's own
 * state, saying so. Never a silent pass: every verdict carries its basis and reason.
 */

import type { Action, ActionContext } from '../../actions/define.js';
import { contextFor } from '../../actions/scope.js';
import { errorMessage, isRetryable } from '../errors.js';
import type { EvidenceCall } from '../evidence/record.js';
import type { Case } from '../model/case.js';
import type { VerifyTrigger } from '../model/events.js';
import type { Finding } from '../model/finding.js';
import type { VerificationPolicy } from './policy.js';

/** The part of an action the verifier uses (any registered action fits). */
export type VerifiableAction = Pick<Action, 'id' | 'target' | 'selectTarget' | 'verify'>;
export interface ActionLookup {
  get(id: string): VerifiableAction | undefined;
}

export type Trigger = VerifyTrigger;

export interface Assessment {
  verdict: 'verified' | 'failed' | 'inconclusive';
  /** What the verdict rests on: `re-read` of the live resource, or the `source-state` alone. */
  basis: 're-read' | 'source-state' | 'none';
  reason: string;
  observed?: unknown;
  attempts: number;
  calls: EvidenceCall[];
}

export interface AssessDeps {
  actions: ActionLookup;
  ctx: ActionContext | undefined;
  policy: Pick<VerificationPolicy, 'attempts' | 'backoffMs' | 'maxBackoffMs'>;
  sleep: (ms: number) => Promise<void>;
}

/** Remediation states in which nothing was changed yet: a dry-run plan is not a fix. */
const NOT_APPLIED = new Set(['none', 'planned', 'awaiting-approval', 'approved', 'held', 'blocked']);

/**
 * The verdict for a case, or `skip` when nothing is owed: a dry-run plan in the local run stays `planned`.
 */
export async function assessCase(
  deps: AssessDeps,
  c: Case,
  findings: readonly Finding[],
  trigger: Trigger,
): Promise<Assessment | 'skip'> {
  const resolvedAtSource = c.sourceStatus === 'resolved';
  // The source's own words for it ("Compliance.Status PASSED", "state INACTIVE"), from the resolved finding.
  const sourceReason = findings.find((f) => f.status === 'resolved')?.statusReason;
  const sourceBasis = `source reports resolved${sourceReason ? ` (${sourceReason})` : ''}`;
  const claimedByPerson = trigger === 'ticket-closed' || trigger === 'manual';

  if (!deps.ctx) {
    if (resolvedAtSource && !c.muted) {
      return {
        verdict: 'verified',
        basis: 'source-state',
        reason: `${sourceBasis}; no live re-read in the local run`,
        observed: { sourceStatus: c.sourceStatus, ...(sourceReason ? { sourceReason } : {}) },
        attempts: 0,
        calls: [],
      };
    }
    if (c.remediation.action && NOT_APPLIED.has(c.remediation.state) && !claimedByPerson) return 'skip';
    return inconclusive(
      c.muted
        ? 'muted at the source: an accepted risk, not a fix; no live re-read in the local run'
        : `no live re-read in the local run (no cloud access) and the source reports the finding ${c.sourceStatus}`,
    );
  }

  const actionId = fixActionOf(c);
  const action = actionId ? deps.actions.get(actionId) : undefined;
  const target = action ? targetFor(action, c, findings) : undefined;
  // Re-read in the case's own account only: elsewhere a namesake (or nothing: "gone") would answer.
  const scoped = action && target !== undefined ? await contextFor(deps.ctx, c.provider, c.account) : undefined;
  if (action && scoped && 'ctx' in scoped) return reRead(deps, scoped.ctx, action, target);
  if (action && scoped && 'refused' in scoped && scoped.cause !== undefined) {
    // The re-read is owed and within reach, only not now (the own account could not be read: throttled,
    // expired credentials): like a re-read that errs, no verdict — never the source's word in its place.
    const outcome = `error: ${errorMessage(scoped.cause)}`;
    return inconclusive(`no live re-read: ${scoped.refused}`, 0, [
      { api: `${action.id}:verify`, requestId: requestIdOf(scoped.cause), outcome },
    ]);
  }

  const why =
    scoped && 'refused' in scoped
      ? `no live re-read: ${scoped.refused}`
      : actionId
        ? action
          ? `action ${actionId} cannot find its target in the finding`
          : `action ${actionId} is not registered`
        : 'no action can re-read this resource';
  if (resolvedAtSource && !c.muted) {
    return {
      verdict: 'verified',
      basis: 'source-state',
      reason: `${sourceBasis}; ${why}`,
      observed: { sourceStatus: c.sourceStatus, ...(sourceReason ? { sourceReason } : {}) },
      attempts: 0,
      calls: [],
    };
  }
  return inconclusive(
    c.muted
      ? `muted at the source: an accepted risk, not a fix; ${why}`
      : `${why}, and the source reports the finding ${c.sourceStatus}`,
  );
}

function inconclusive(reason: string, attempts = 0, calls: EvidenceCall[] = []): Assessment {
  return { verdict: 'inconclusive', basis: 'none', reason, attempts, calls };
}

/**
 * The action that re-reads the case's resource: the one whose apply is on it while the case is applied (decide
 * may have chosen another since, a playbook or registry change: its check is not of the fix made, and the
 * stored target is not its own), else the action decide chose.
 */
export const fixActionOf = (c: Case): string | null =>
  (c.remediation.state === 'applied' ? c.remediation.applyAction : undefined) ?? c.remediation.action;

/** The target recorded at plan time, else selected again from the newest finding. */
export function targetFor(action: VerifiableAction, c: Case, findings: readonly Finding[]): unknown {
  if (c.remediation.target !== undefined) {
    const parsed = action.target.safeParse(c.remediation.target);
    if (parsed.success) return parsed.data;
  }
  for (const f of [...findings].sort((a, b) => (a.updatedAt < b.updatedAt ? 1 : -1))) {
    const t = action.selectTarget(f);
    if (t !== undefined) return t;
  }
  return undefined;
}

/**
 * Re-reads until the fix holds or attempts run out. A fix that does not hold yet may still be
 * propagating, so "not holding" is retried like a transient error; only the last attempt decides: one that
 * erred (throttled to the end) leaves no verdict, never the earlier "not holding" it may since have outgrown.
 */
async function reRead(
  deps: AssessDeps,
  ctx: ActionContext,
  action: VerifiableAction,
  target: unknown,
): Promise<Assessment> {
  const calls: EvidenceCall[] = [];
  let last: { holds: boolean; observed: unknown; reason: string } | undefined;
  let lastError: unknown;
  const api = `${action.id}:verify`;
  for (let attempt = 1; attempt <= deps.policy.attempts; attempt++) {
    try {
      const r = await action.verify(target, ctx);
      last = r;
      calls.push({ api, requestId: null, outcome: r.holds ? 'holds' : `does not hold: ${r.reason}` });
      if (r.holds) {
        return {
          verdict: 'verified',
          basis: 're-read',
          reason: r.reason,
          observed: r.observed,
          attempts: attempt,
          calls,
        };
      }
    } catch (e) {
      lastError = e;
      // What an earlier attempt saw is no longer the latest word (see the verdict after the loop).
      last = undefined;
      calls.push({ api, requestId: requestIdOf(e), outcome: `error: ${errorMessage(e)}` });
      if (!isRetryable(e)) {
        return inconclusive(`re-read failed and is not retried: ${errorMessage(e)}`, attempt, calls);
      }
    }
    if (attempt < deps.policy.attempts) await deps.sleep(delayFor(deps.policy, attempt, lastError));
    lastError = undefined;
  }
  if (last && !last.holds) {
    return {
      verdict: 'failed',
      basis: 're-read',
      reason: `${last.reason} (after ${deps.policy.attempts} re-reads)`,
      observed: last.observed,
      attempts: deps.policy.attempts,
      calls,
    };
  }
  const lastOutcome = calls.at(-1)?.outcome ?? 'no answer';
  return inconclusive(`no verdict after ${deps.policy.attempts} re-reads: ${lastOutcome}`, deps.policy.attempts, calls);
}

/** Capped exponential backoff; a remote's Retry-After wins when it asks for longer. */
export function delayFor(policy: AssessDeps['policy'], attempt: number, error?: unknown): number {
  const base = Math.min(policy.maxBackoffMs, policy.backoffMs * 2 ** (attempt - 1));
  const retryAfter =
    error && typeof error === 'object' && 'retryAfterSeconds' in error && typeof error.retryAfterSeconds === 'number'
      ? error.retryAfterSeconds * 1000
      : 0;
  return Math.max(base, Math.min(retryAfter, policy.maxBackoffMs));
}

function requestIdOf(e: unknown): string | null {
  return e && typeof e === 'object' && 'requestId' in e && typeof e.requestId === 'string' ? e.requestId : null;
}
