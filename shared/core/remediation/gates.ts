/**
 * Apply-time gates: each returns a GateResult whose reason is recorded on the case. Decide already
 * gated the decision; these are re-checked just before a change because time passed (an exception may
 * have been added, a tag set, a budget spent). Anything that cannot be evaluated is `unknown`: fail closed.
 * Budget and circuit breaker are persisted in the DocStore so every worker sees the same counts.
 */
import * as z from 'zod';
import { compileGlob } from '../enrich/glob.js';
import { errorMessage } from '../errors.js';
import type { Case } from '../model/case.js';
import type { GateResult } from '../model/decision.js';
import { matchException, namesAccount, type RiskException } from '../policy/exceptions.js';
import { skipTagValue } from '../policy/gates.js';
import { canRead, type DocStore, type OwnerLookup, type ResourceRef } from '../ports.js';
import { getDoc, mutateDoc } from '../store/docs.js';
import type { ApplyPolicy } from './policy.js';

export const BUDGET_COLLECTION = 'apply-budget';
export const BREAKER_COLLECTION = 'circuit-breaker';
const BREAKER_ID = 'verifications';

/** Gates that depend on the case and policy only. */
export function policyGates(
  c: Case,
  action: { productionSafe: boolean },
  policy: ApplyPolicy,
  approved: boolean,
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
  const env = c.enrichment.environment;
  if (env === 'prod' && !approved && !(action.productionSafe && policy.allowProductionAuto)) {
    gates.push({
      gate: 'environment',
      outcome: 'approval',
      reason: action.productionSafe
        ? 'production: apply.allowProductionAuto is off, a person approves'
        : 'production: the action is not production-safe, a person approves',
    });
  } else {
    gates.push({ gate: 'environment', outcome: 'pass', reason: `environment ${env}${approved ? ' (approved)' : ''}` });
  }
  return gates;
}

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
): Promise<{ gate: GateResult; cause?: unknown } | undefined> {
  if (!tags || !canRead(tags, ref.provider)) return undefined;
  try {
    return {
      gate:
        skipTagValue(await tags.tagsFor(ref), skipTag) !== undefined
          ? { gate: 'skip-tag', outcome: 'block', reason: `resource carries the skip tag \`${skipTag}\` now` }
          : { gate: 'skip-tag', outcome: 'pass', reason: `no \`${skipTag}\` tag on the live resource` },
    };
  } catch (e) {
    const reason = `live tags could not be read: ${errorMessage(e)}`;
    return { gate: { gate: 'skip-tag', outcome: 'unknown', reason }, cause: e };
  }
}

/**
 * The apply-time skip-tag gate of a case ({@link readSkipTag}); none where decide's gate stands. `cause`: the
 * error that left it `unknown`.
 */
export async function skipTagGate(
  c: Case,
  policy: ApplyPolicy,
  tags: OwnerLookup | undefined,
): Promise<{ gates: GateResult[]; cause?: unknown }> {
  const ref: ResourceRef = { provider: c.provider, id: c.resourceId, account: c.account, region: c.region };
  const read = await readSkipTag(tags, ref, policy.skipTag);
  return read ? { gates: [read.gate], cause: read.cause } : { gates: [] };
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
