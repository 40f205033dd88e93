/**
 * Apply-time gates: each returns a GateResult whose reason is recorded on the case. Decide already
 * gated the decision; these are re-checked just before a change because time passed (an exception may
 * have been added, a tag set, a budget spent). Anything that cannot be evaluated is `unknown`: fail closed.
 * Budget and circuit breaker are persisted in the DocStore so every worker sees the same counts.
 */
import * as z from 'zod';
import type { EnvironmentTag } from '../enrich/environment.js';
import { compileGlob } from '../enrich/glob.js';
import { errorMessage } from '../errors.js';
import type { Case } from '../model/case.js';
import type { GateResult } from '../model/decision.js';
import type { Environment } from '../model/enrichment.js';
import { matchException, namesAccount, type RiskException } from '../policy/exceptions.js';
import { skipTagValue } from '../policy/gates.js';
import { canRead, type DocStore, type OwnerLookup, type ResourceRef } from '../ports.js';
import { getDoc, mutateDoc } from '../store/docs.js';
import type { ApplyPolicy, Approvers } from './policy.js';

export const BUDGET_COLLECTION = 'apply-budget';
export const BREAKER_COLLECTION = 'circuit-breaker';
const BREAKER_ID = 'verifications';

/**
 * Gates that depend on the case and policy, and the environment tag on the resource's live tags (`live`, read
 * with the skip tag by {@link skipTagGate}; `unread` where they were not read: decide's environment stands).
 */
export function policyGates(
  c: Case,
  action: { productionSafe: boolean },
  policy: ApplyPolicy,
  approved: boolean,
  live: LiveEnvironment = 'unread',
): GateResult[] {
  const gates: GateResult[] = [];
  // Decide's own gates (skip tag, allowlist, denylist, owner …) still bind: a block or unknown there stops us.
  for (const g of c.remediation.gates) {
    if (g.outcome === 'block' || g.outcome === 'unknown') gates.push({ ...g, reason: `decide: ${g.reason}` });
  }
  // A GCP project by its id or its number (the console shows both), as decide's denylist and exceptions take it:
  // a project number on apply.accounts.deny was not matched, and the fix went through.
  const listed = (list: readonly string[]) =>
    namesAccount(new Set(list.map((a) => a.toLowerCase())), c.account, c.accountNumber);
  if (listed(policy.accounts.deny)) {
    gates.push({ gate: 'denylist', outcome: 'block', reason: `account ${c.account} is on apply.accounts.deny` });
  } else if (policy.accounts.allow.length > 0 && !listed(policy.accounts.allow)) {
    gates.push({ gate: 'allowlist', outcome: 'block', reason: `account ${c.account} is not on apply.accounts.allow` });
  } else {
    gates.push({ gate: 'accounts', outcome: 'pass', reason: `account ${c.account} may receive applies` });
  }
  // The globs every other resource list uses (registry, exceptions, decide's allowlist): a bucket written in
  // either Cloud Storage spelling matches the case's id (see canonicalResourceId); without case, as before.
  const denied = policy.resources.deny.find((p) => compileGlob(p).test(c.resourceId, true));
  gates.push(
    denied
      ? { gate: 'denylist', outcome: 'block', reason: `resource matches apply.resources.deny \`${denied}\`` }
      : { gate: 'resources', outcome: 'pass', reason: 'resource not on apply.resources.deny' },
  );
  gates.push(
    environmentGate(
      { decided: c.enrichment.environment, byRegistry: fromRegistry(c), live },
      { productionSafe: action.productionSafe, allowProductionAuto: policy.allowProductionAuto, approved },
    ),
  );
  return gates;
}

/**
 * The environment tag on a resource's live tags, read just before an apply: `unread` when they were not read (no
 * lookup, or one that cannot read the resource's cloud), `none` when no environment tag is on them.
 */
export type LiveEnvironment = 'unread' | 'none' | EnvironmentTag;

/** The environment a case was decided in, and what the apply-time re-read found. */
export interface EnvironmentInput {
  /** decide's reading (`c.enrichment.environment`). */
  decided: Environment;
  /**
   * Whether decide's reading came from the registry (a rule, the account's entry): an environment tag naming no
   * known environment (`nonprod`, `prd01`) leaves it standing, as it did in enrichment.
   */
  byRegistry: boolean;
  live: LiveEnvironment;
}

/** Whether the environment of `c` was read from the registry (see {@link EnvironmentInput.byRegistry}). */
export const fromRegistry = (c: Case): boolean => {
  const via = c.enrichment.provenance.environment.via;
  return via === 'registry-rule' || via === 'registry-account';
};

/**
 * The environment gate at apply time, on the hub and in a spoke alike. Decide judged the environment it read
 * then; the resource may have been re-tagged since (a dev bucket now `env`=prod, a case decided days ago, a
 * redriven event), and a fix that is not production-safe would have gone to production without the person
 * production asks for. So the live environment tag is judged:
 * - it names an environment: that one (a live `prod` asks for the production approval); a production reading of
 *   decide's is never lowered here (decide reads a change away from production when the finding comes again);
 * - it names more than one (`uat/prod`), or none known (`prd01`) while decide's reading did not come from the
 *   registry: unknown, which may be production, so it is gated as production (fail closed);
 * - no environment tag, or the tags not read: decide's reading stands (the registry or account may have given it).
 * The reason names the environment judged and where it came from; it is recorded on the case's applyGates.
 */
export function environmentGate(
  input: EnvironmentInput,
  rule: { productionSafe: boolean; allowProductionAuto: boolean; approved: boolean },
): GateResult {
  const { environment: env, from, mayBeProduction } = judgeEnvironment(input);
  // decide's own `unknown` (no live tag says otherwise) passes as before: decide's policy let it through.
  const strict = env === 'prod' || mayBeProduction;
  const head = env === 'prod' ? `production${from}` : `environment ${env}${from}`;
  if (strict && !rule.approved && !(rule.productionSafe && rule.allowProductionAuto)) {
    const why = rule.productionSafe
      ? 'apply.allowProductionAuto is off, a person approves'
      : 'the action is not production-safe, a person approves';
    return {
      gate: 'environment',
      outcome: 'approval',
      reason: `${head}: ${env === 'prod' ? '' : 'it may be production; '}${why}`,
    };
  }
  return {
    gate: 'environment',
    outcome: 'pass',
    reason: `environment ${env}${from}${rule.approved ? ' (approved)' : ''}`,
  };
}

/**
 * What {@link environmentGate} judges (see there): the environment, where it comes from (said after it; nothing
 * for decide's reading as before), and whether a live tag leaves it unknown, so that it may be production.
 */
export function judgeEnvironment(input: EnvironmentInput): {
  environment: Environment;
  from: string;
  mayBeProduction: boolean;
} {
  const { decided, live } = input;
  if (live === 'unread') return { environment: decided, from: '', mayBeProduction: false };
  if (live === 'none')
    return { environment: decided, from: ' (decide; no environment tag on the live resource)', mayBeProduction: false };
  const tag = `live tag \`${live.key}\`=${live.value}`;
  const r = live.reading;
  const stands = (from: string) => ({ environment: decided, from, mayBeProduction: false });
  if (r !== undefined && r.environment !== 'unknown') {
    if (r.environment === decided) return stands(` (${tag})`);
    if (decided === 'prod')
      return stands(` (decide read prod; the ${tag} does not lower it before decide reads it again)`);
    return { environment: r.environment, from: ` now: ${tag} (decide read ${decided})`, mayBeProduction: false };
  }
  if (r === undefined && input.byRegistry) return stands(` (decide; the ${tag} names no known environment)`);
  if (decided === 'prod') return stands(` (decide read prod; the ${tag} does not say otherwise)`);
  const says =
    r === undefined
      ? 'names no known environment'
      : `names more than one environment (${r.words.map((w) => `\`${w}\``).join(', ')})`;
  return { environment: 'unknown', from: ` now: ${tag} ${says} (decide read ${decided})`, mayBeProduction: true };
}

/**
 * The environment an apply-time judgement ({@link judgeEnvironment}) stands for when approvals are checked:
 * `prod` where the live tags leave it unknown (it may be production), else the one judged. Recorded on the
 * case (`remediation.judgedEnvironment`) and answered by a spoke.
 */
export const judgedForApprovers = (j: { environment: Environment; mayBeProduction: boolean }): Environment =>
  j.mayBeProduction ? 'prod' : j.environment;

/**
 * The environment whose `apply.approvers` decide who may approve a case: the strictest of decide's and the one
 * the apply-time gate judged last (`judged`, absent before any). Production beats anything, whichever of the two
 * read it (a case decided dev whose resource is tagged prod now is approved by production's approvers, not by
 * dev's, nor by anyone where dev has no entry); otherwise the one judged stands, the later reading of the two
 * (the gate never lowers decide's production).
 */
export const approverEnvironment = (decided: Environment, judged: Environment | undefined): Environment =>
  decided === 'prod' || judged === 'prod' ? 'prod' : (judged ?? decided);

/**
 * Why `approver` may not approve fixes in `env` under `approvers` (policy `apply.approvers`: the entry for `env`,
 * else `*`), and who may instead; undefined when they may (no entry for it, and no `*`: anyone). An approver is
 * compared by what comes before ` (` (a Jira approver is recorded as `jira:<accountId> (<display name>)`), without
 * case. Shared by the hub (approveCase, the Jira webhook, the re-check before an apply) and a spoke.
 */
export function approverRefusalIn(
  approvers: Approvers,
  env: Environment,
  approver: string,
): { reason: string; mayApprove: string } | undefined {
  const key = approvers[env] !== undefined ? env : '*';
  const allowed = approvers[key];
  if (allowed === undefined) return undefined;
  const id = approver.split(' (')[0]?.trim().toLowerCase() ?? '';
  if (allowed.some((a) => a.trim().toLowerCase() === id)) return undefined;
  return {
    reason: `${id || 'an unnamed approver'} may not approve fixes in ${env} (policy apply.approvers.${key === '*' ? '"*"' : key})`,
    mayApprove:
      allowed.length > 0 ? `approvers for ${env}: ${allowed.join(', ')}` : `no one may approve fixes in ${env}`,
  };
}

/**
 * What an approval already on a case is told when it does not count at apply time ({@link approverRefusalIn}):
 * the case waits for one of those who may.
 */
export const approvalLapsed = (refused: { reason: string; mayApprove: string }): string =>
  `${refused.reason}: the approval does not count; ${refused.mayApprove}`;

/**
 * The skip tag on the live tags of `ref` as a gate: `block` when it is on the resource now, `pass` when not,
 * `unknown` when the tags cannot be read (fail closed), with the error behind it (`cause`) for a caller that
 * tells a read failing for the moment (throttled, 5xx) from one refused for good; undefined when there is no
 * lookup, or one that cannot read the resource's cloud (the AWS hub reads AWS tags only).
 */
export async function readSkipTag(
  tags: OwnerLookup | undefined,
  ref: ResourceRef,
  skipTag: string,
): Promise<{ gate: GateResult; cause?: unknown; tags?: Record<string, string> } | undefined> {
  if (!tags || !canRead(tags, ref.provider)) return undefined;
  let live: Record<string, string>;
  try {
    live = await tags.tagsFor(ref);
  } catch (e) {
    const reason = `live tags could not be read: ${errorMessage(e)}`;
    return { gate: { gate: 'skip-tag', outcome: 'unknown', reason }, cause: e };
  }
  return {
    gate:
      skipTagValue(live, skipTag) !== undefined
        ? { gate: 'skip-tag', outcome: 'block', reason: `resource carries the skip tag \`${skipTag}\` now` }
        : { gate: 'skip-tag', outcome: 'pass', reason: `no \`${skipTag}\` tag on the live resource` },
    tags: live,
  };
}

/** The environment tag on live tags just read, or `unread` when they were not ({@link LiveEnvironment}). */
export const liveEnvironment = (
  tags: Record<string, string> | undefined,
  environmentTag: (tags: Record<string, string>) => EnvironmentTag | undefined,
): LiveEnvironment => (tags === undefined ? 'unread' : (environmentTag(tags) ?? 'none'));

/**
 * The apply-time skip-tag gate of a case ({@link readSkipTag}); none where decide's gate stands. `cause`: the
 * error that left it `unknown`. `environment`: the environment tag on the same live tags (one read serves both),
 * read with `environmentTag`, for {@link policyGates}.
 */
export async function skipTagGate(
  c: Case,
  policy: ApplyPolicy,
  tags: OwnerLookup | undefined,
  environmentTag: (tags: Record<string, string>) => EnvironmentTag | undefined,
): Promise<{ gates: GateResult[]; cause?: unknown; environment: LiveEnvironment }> {
  const ref: ResourceRef = { provider: c.provider, id: c.resourceId, account: c.account, region: c.region };
  const read = await readSkipTag(tags, ref, policy.skipTag);
  const environment = liveEnvironment(read?.tags, environmentTag);
  return read ? { gates: [read.gate], cause: read.cause, environment } : { gates: [], environment };
}

/** An exception added since decide ran still stops the apply. */
export async function exceptionGate(
  c: Case,
  load: (() => Promise<RiskException[]>) | undefined,
  now: Date,
): Promise<GateResult> {
  if (c.exception) {
    return { gate: 'exception', outcome: 'block', reason: `exception ${c.exception.id} accepts the risk` };
  }
  if (!load) return { gate: 'exception', outcome: 'pass', reason: 'no exception on the case' };
  try {
    const active = matchException(c, await load(), now).active;
    return active
      ? {
          gate: 'exception',
          outcome: 'block',
          reason: `exception ${active.id} (owner ${active.owner}) accepts the risk`,
        }
      : { gate: 'exception', outcome: 'pass', reason: 'no active exception' };
  } catch (e) {
    return { gate: 'exception', outcome: 'unknown', reason: `exceptions could not be read: ${errorMessage(e)}` };
  }
}

/** One apply's slot: the case it went to and when it was taken. */
const BudgetSchema = z.object({ slots: z.array(z.object({ caseKey: z.string(), at: z.string() })) });
type Budget = z.infer<typeof BudgetSchema>;

/** The window a budget counts applies over: any 60 minutes, not the clock hour. */
const BUDGET_WINDOW_MS = 60 * 60_000;

/**
 * The budget document of the case's account. One per account, over a sliding window: a budget per clock hour
 * let twice its limit through in two minutes across the hour (10 applies at 10:59, 10 more at 11:00).
 */
const budgetId = (c: Case) => `${c.provider}|${c.account.toLowerCase()}`;

/**
 * When an account's budget document expires, written with each slot taken: an hour after that newest slot has
 * left the window (a function's clock may be minutes off). By then it counts nothing, and an account that
 * receives no more applies leaves no document behind.
 */
const budgetExpiry = (now: Date): Date => new Date(now.getTime() + 2 * BUDGET_WINDOW_MS);

/** The slots taken in the 60 minutes before `now`. */
const slotsIn = (b: Budget | undefined, now: Date) =>
  (b?.slots ?? []).filter((s) => Date.parse(s.at) > now.getTime() - BUDGET_WINDOW_MS);

/**
 * Whether an apply of `c` would get a slot in its account's budget now (read only: the slot is taken by
 * {@link reserveBudget}, after the claim).
 */
export async function budgetLeft(store: DocStore, c: Case, policy: ApplyPolicy, now: Date): Promise<boolean> {
  const slots = slotsIn((await getDoc(store, BUDGET_COLLECTION, budgetId(c), BudgetSchema))?.value, now);
  return slots.some((s) => s.caseKey === c.key) || slots.length < policy.budget.perAccountPerHour;
}

/**
 * Reserves one apply in the account's budget (the applies of the last 60 minutes); false when spent. Same case
 * twice within the window: one slot.
 */
export async function reserveBudget(
  store: DocStore,
  c: Case,
  policy: ApplyPolicy,
  now: Date,
): Promise<{ ok: boolean; gate: GateResult }> {
  const limit = policy.budget.perAccountPerHour;
  let ok = false;
  let frees: string | undefined;
  await mutateDoc(
    store,
    BUDGET_COLLECTION,
    budgetId(c),
    BudgetSchema,
    (cur) => {
      const slots = slotsIn(cur, now);
      const mine = slots.some((s) => s.caseKey === c.key);
      ok = mine || slots.length < limit;
      const oldest = slots[0];
      frees = oldest ? new Date(Date.parse(oldest.at) + BUDGET_WINDOW_MS).toISOString() : undefined;
      if (!ok || mine) return undefined;
      return { slots: [...slots, { caseKey: c.key, at: now.toISOString() }] };
    },
    { expiresAt: budgetExpiry(now) },
  );
  return {
    ok,
    gate: ok
      ? { gate: 'budget', outcome: 'pass', reason: `within ${limit} applies in 60 minutes for account ${c.account}` }
      : {
          gate: 'budget',
          outcome: 'block',
          reason: `budget spent: ${limit} applies in the last 60 minutes in account ${c.account}${frees ? ` (the next slot frees at ${frees})` : ''}; held`,
        },
  };
}

const BreakerSchema = z.object({ failures: z.array(z.object({ id: z.string(), at: z.string() })) });

/** Records a failed verification of an applied fix (idempotent on the event id). */
export async function recordFailedVerification(store: DocStore, eventId: string, at: Date, policy: ApplyPolicy) {
  const since = at.getTime() - policy.circuitBreaker.windowMinutes * 60_000;
  await mutateDoc(store, BREAKER_COLLECTION, BREAKER_ID, BreakerSchema, (cur) => {
    const failures = (cur?.failures ?? []).filter((f) => Date.parse(f.at) >= since);
    if (failures.some((f) => f.id === eventId)) return undefined;
    return { failures: [...failures, { id: eventId, at: at.toISOString() }] };
  });
}

/** Open (block) when the failed verifications within the window reach the threshold. */
export async function breakerGate(store: DocStore, policy: ApplyPolicy, now: Date): Promise<GateResult> {
  const doc = await store.get(BREAKER_COLLECTION, BREAKER_ID);
  const parsed = BreakerSchema.safeParse(doc?.value ?? { failures: [] });
  if (!parsed.success) return { gate: 'circuit-breaker', outcome: 'unknown', reason: 'breaker state unreadable' };
  const since = now.getTime() - policy.circuitBreaker.windowMinutes * 60_000;
  const recent = parsed.data.failures.filter((f) => Date.parse(f.at) >= since).length;
  const { failedVerifications: threshold, windowMinutes } = policy.circuitBreaker;
  return recent >= threshold
    ? {
        gate: 'circuit-breaker',
        outcome: 'block',
        reason: `circuit breaker open: ${recent} failed verifications in ${windowMinutes} min (threshold ${threshold}); held`,
      }
    : { gate: 'circuit-breaker', outcome: 'pass', reason: `${recent} failed verifications in ${windowMinutes} min` };
}
