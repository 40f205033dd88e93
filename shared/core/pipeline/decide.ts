/**
 * Decide: merge a finding into its case and conclude what should happen — status, exception, playbook
 * action, remediation mode with every gate's reason, whether a ticket is wanted, whether verification is
 * owed. Pure: the same inputs give the same outputs, so a redelivered or concurrent event is harmless
 * (the caller writes `next` with a conditional put and re-runs `decide` when it lost the race).
 *
 * Case key = provider | lower(resource.id) | type (finding-formats.md §5.2): a GuardDuty finding and its
 * Security Hub copy share one case; an S3.8 control failure and a GuardDuty Policy:S3 finding on the same
 * bucket stay two cases.
 *
 * Decide owns the case's top level and the action/mode/reason/gates of `remediation`; it carries over
 * `ticket`, `verification`, `evidenceHead` and the remediation stage's fields untouched.
 */
import { type Case, type CaseDecision, type CaseStatus, verdictOf } from '../model/case.js';
import type { Decision, ExceptionRef } from '../model/decision.js';
import type { Enrichment } from '../model/enrichment.js';
import { type Finding, maxSeverity } from '../model/finding.js';
import { exceptionRef, matchException, type RiskException } from '../policy/exceptions.js';
import { evaluateGates, type GateVerdict } from '../policy/gates.js';
import { selectPlaybook, strictestModeFor } from '../policy/playbooks.js';
import type { DecidePolicy } from '../policy/policy.js';
import { EMPTY_LIST, IdentityTrie, SharedTable } from '../util/intern.js';

const lastKeyOf = { provider: '', id: '', type: '', key: '' };
/** The case a finding belongs to. @example caseKeyOf(f) // 'aws|arn:aws:s3:::acme-logs|S3.8' */
export function caseKeyOf(f: Finding): string {
  // Asked two or three times in a row per finding (the caller's lookup, decide, the write): the last
  // answer is reused while the fields it is made of are the same strings.
  const { provider, id } = f.resource;
  const last = lastKeyOf;
  if (id === last.id && f.type === last.type && provider === last.provider) return last.key;
  // Joined, not concatenated: a flat string (a template literal makes a rope, and every Map lookup and
  // comparison of a rope key walks its pieces).
  last.key = [provider, id.toLowerCase(), f.type].join('|');
  last.provider = provider;
  last.id = id;
  last.type = f.type;
  return last.key;
}

export interface DecideInput {
  finding: Finding;
  /** The stored version of the same finding (same `key`), if any. */
  previous?: Finding;
  enrichment: Enrichment;
  /** The stored case for `caseKeyOf(finding)`, if any. */
  existing?: Case;
  /** Active and expired exceptions (file + store, see `combineExceptions`). */
  exceptions: readonly RiskException[];
  policy: DecidePolicy;
  now: Date;
  /** Declaration facts of an action (the action registry); used for the production-safe gate. */
  actionInfo?: (id: string) => { productionSafe: boolean } | undefined;
  /**
   * The resource's tags as a live lookup read them (the event carried none): the skip-tag gate reads these
   * instead; null when the lookup failed (tags unknown: the gate keeps its previous outcome or fails closed).
   */
  liveTags?: Record<string, string> | null;
}

export interface DecideOutput {
  decision: Decision;
  /** The case to store (=== `existing` when nothing changed). */
  next: Case;
  /** The finding is newer than `previous` (store it); false for a stale or identical replay. */
  findingChanged: boolean;
  /** The case differs from `existing` (write it and publish `case.decided`). */
  caseChanged: boolean;
}

const ms = (ts: string): number => Date.parse(ts);

// Finding and case timestamps are canonical UTC (`2026-11-18T09:12:44.601Z`, see `toIso`): two such strings
// compare as their instants do, without parsing. Anything else (a stored case from an older writer) parses.
const CANONICAL_LENGTH = 24;
/** -1, 0 or 1 as instant `a` is before, at or after instant `b`. */
export function compareTime(a: string, b: string): number {
  if (a.length === CANONICAL_LENGTH && b.length === CANONICAL_LENGTH && a.endsWith('Z') && b.endsWith('Z'))
    return a < b ? -1 : a > b ? 1 : 0;
  const d = ms(a) - ms(b);
  return d < 0 ? -1 : d > 0 ? 1 : 0;
}

// decide runs once per finding with the same `now` for a whole batch: format it once.
let lastNow = Number.NaN;
let lastNowIso = '';
function isoOf(now: Date): string {
  const t = now.getTime();
  if (t !== lastNow) {
    lastNowIso = now.toISOString();
    lastNow = t;
  }
  return lastNowIso;
}

/** Same state as far as a case is concerned (the raw event may differ in irrelevant ways). */
function sameFindingState(a: Finding, b: Finding): boolean {
  return (
    a.updatedAt === b.updatedAt &&
    a.status === b.status &&
    a.muted === b.muted &&
    a.occurrences === b.occurrences &&
    a.lastSeen === b.lastSeen &&
    a.firstSeen === b.firstSeen &&
    a.severity === b.severity &&
    a.source === b.source &&
    a.title === b.title &&
    a.sample === b.sample
  );
}

/** Structural equality of JSON-like values (cases are plain JSON). */
function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!deepEqual(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  const ao = a as Record<string, unknown>;
  const bo = b as Record<string, unknown>;
  let n = 0;
  for (const k in ao) {
    if (ao[k] === undefined) continue;
    n++;
    if (!deepEqual(ao[k], bo[k])) return false;
  }
  for (const k in bo) if (bo[k] !== undefined) n--;
  return n === 0;
}

/** Everything decide owns, compared without the bookkeeping fields that change on every write. */
function sameCase(a: Case, b: Case): boolean {
  for (const k in a) {
    if (k === 'updatedAt' || k === 'lastDecision') continue;
    // The counts compare as counts, whichever way a stored case holds them (an older case is not rewritten
    // for its form alone).
    if (k === 'findingOccurrences') {
      if (!deepEqual(countsOf(a), countsOf(b))) return false;
      continue;
    }
    if (k === 'findingActive') {
      if (!deepEqual(activeOf(a), activeOf(b))) return false;
      continue;
    }
    if (!deepEqual(a[k as keyof Case], b[k as keyof Case])) return false;
  }
  return true;
}

/** `xs` with the members of `add` it lacks; `xs` itself when it lacks none (lists are never changed in place). */
const union = <T extends string>(xs: T[], add: readonly T[]): T[] => {
  let out: T[] | undefined;
  for (const x of add) {
    if (xs.includes(x) || out?.includes(x)) continue;
    out ??= [...xs];
    out.push(x);
  }
  return out ?? xs;
};

type DecidedRemediation = Decision['remediation'];
// A decision's remediation, and a new case's, shared between the cases decided alike (util/intern.ts).
const decidedRemediations = new IdentityTrie<unknown, DecidedRemediation>();
const newCaseRemediations = new SharedTable<DecidedRemediation, Case['remediation']>();
function remediationOf(action: string | null, verdict: GateVerdict): DecidedRemediation {
  // A list of gates that is not shared (one quotes an enrichment warning) makes a remediation of its own.
  if (!Object.isFrozen(verdict.gates))
    return { action, mode: verdict.mode, reason: verdict.reason, gates: verdict.gates };
  const parts = [action, verdict.mode, verdict.reason, verdict.gates];
  return (
    decidedRemediations.get(parts) ??
    decidedRemediations.set(parts, { action, mode: verdict.mode, reason: verdict.reason, gates: verdict.gates })
  );
}
function newCaseRemediation(r: DecidedRemediation): Case['remediation'] {
  const shared = Object.isFrozen(r) ? newCaseRemediations.get(r) : undefined;
  if (shared) return shared;
  const made: Case['remediation'] = { action: r.action, mode: r.mode, reason: r.reason, gates: r.gates, state: 'none' };
  return Object.isFrozen(r) ? newCaseRemediations.set(r, made) : made;
}

/** A case's remediation with a new decision's verdict: the case's own object when the verdict is the same. */
function caseRemediation(existing: Case['remediation'], r: DecidedRemediation): Case['remediation'] {
  if (
    existing.action === r.action &&
    existing.mode === r.mode &&
    existing.reason === r.reason &&
    existing.gates === r.gates
  )
    return existing;
  return { ...existing, ...r };
}

/** A new case's source list: one shared, frozen list per source. */
const SOURCE_LISTS = new SharedTable<string, Finding['source'][]>(100);
const sourcesOf = (source: Finding['source']): Finding['source'][] =>
  SOURCE_LISTS.get(source) ?? SOURCE_LISTS.set(source, [source]);

/**
 * A case's occurrence count per finding, in `findingKeys` order. Cases written before
 * `findingOccurrences` existed keep them in `occurrencesByFinding` (keyed by finding key): read from there.
 */
function countsOf(c: Case): number[] {
  const keys = c.findingKeys;
  const counts = c.findingOccurrences;
  if (counts !== undefined && counts.length === keys.length) return counts;
  return keys.map(
    (k, i) =>
      counts?.[i] ??
      (c.occurrencesByFinding && Object.hasOwn(c.occurrencesByFinding, k) ? (c.occurrencesByFinding[k] ?? 0) : 0),
  );
}

/** Whether each finding of a case is active at its source (a case written before it was kept: its status). */
function activeOf(c: Case): boolean[] {
  const flags = c.findingActive;
  if (flags !== undefined && flags.length === c.findingKeys.length) return flags;
  const active = c.sourceStatus !== 'resolved';
  return c.findingKeys.map((_, i) => flags?.[i] ?? active);
}

/** A one-finding case's flags: shared, frozen lists (most cases hold one finding). */
const ONE_ACTIVE: boolean[] = Object.freeze([true]) as unknown as boolean[];
const ONE_RESOLVED: boolean[] = Object.freeze([false]) as unknown as boolean[];

/** The finding-derived part of a case: identity, severity, counts, sources, compliance. */
function mergeFinding(f: Finding, previous: Finding | undefined, existing: Case | undefined) {
  // Counts sit beside the keys, in a plain array: a sha256-keyed object made a dictionary per case and
  // entered every finding key into V8's string table (about a third of decide, and ~250 bytes a case).
  const counts = existing ? countsOf(existing) : undefined;
  const at = existing ? existing.findingKeys.indexOf(f.key) : -1;
  const seen = at >= 0 ? (counts?.[at] ?? 0) : 0;
  let count = Math.max(seen, f.occurrences);
  // Sources without a count of their own (SCC, Defender, control findings: always 1) report a
  // re-detection as a later lastSeen: that is one more occurrence. A status change alone is not, and a
  // counting source (GuardDuty and its Security Hub copies) is believed as it counts.
  if (
    previous &&
    f.occurrences === 1 &&
    previous.occurrences === 1 &&
    f.status === 'active' &&
    compareTime(f.lastSeen, previous.lastSeen) > 0
  )
    count = seen + 1;
  const active = f.status === 'active';
  let findingKeys: string[];
  let findingOccurrences: number[];
  let findingActive: boolean[];
  if (!existing || !counts) {
    findingKeys = [f.key];
    findingOccurrences = count === 1 ? ONE_OCCURRENCE : [count];
    findingActive = active ? ONE_ACTIVE : ONE_RESOLVED;
  } else if (at < 0) {
    findingKeys = [...existing.findingKeys, f.key];
    findingOccurrences = [...counts, count];
    findingActive = [...activeOf(existing), active];
  } else {
    findingKeys = existing.findingKeys;
    findingOccurrences = counts[at] === count ? counts : counts.with(at, count);
    const flags = activeOf(existing);
    findingActive = flags[at] === active ? flags : flags.with(at, active);
  }
  let occurrences = 0;
  for (const n of findingOccurrences) occurrences += n;
  // Another finding of the case still active at its source: the case is not resolved there.
  const self = at < 0 ? findingActive.length - 1 : at;
  let othersActive = false;
  for (let i = 0; i < findingActive.length && !othersActive; i++)
    othersActive = i !== self && findingActive[i] === true;
  return {
    findingKeys,
    findingOccurrences,
    findingActive,
    othersActive,
    occurrences,
    severity: existing ? maxSeverity(existing.severity, f.severity) : f.severity,
    sources: existing ? union(existing.sources, sourcesOf(f.source)) : sourcesOf(f.source),
    firstSeen: existing && compareTime(existing.firstSeen, f.firstSeen) <= 0 ? existing.firstSeen : f.firstSeen,
    lastSeen: existing && compareTime(existing.lastSeen, f.lastSeen) >= 0 ? existing.lastSeen : f.lastSeen,
    compliance: complianceOf(f, existing),
  };
}

/** A new case's counts when its finding was seen once (most cases): one shared, frozen list. */
const ONE_OCCURRENCE: number[] = Object.freeze([1]) as unknown as number[];
const NO_COMPLIANCE: Case['compliance'] = Object.freeze({ controls: EMPTY_LIST, standards: EMPTY_LIST });

/**
 * The case's compliance lists with the finding's added. A new case holds its finding's lists, a case that
 * gains nothing keeps its object, one without any shares the empty one (none is ever changed in place).
 */
function complianceOf(f: Finding, existing: Case | undefined): Case['compliance'] {
  if (!existing) {
    const { controls, standards } = f.compliance;
    return controls === EMPTY_LIST && standards === EMPTY_LIST ? NO_COMPLIANCE : { controls, standards };
  }
  const before = existing.compliance;
  const controls = union(before.controls, f.compliance.controls);
  const standards = union(before.standards, f.compliance.standards);
  return controls === before.controls && standards === before.standards ? before : { controls, standards };
}

interface StatusOutcome {
  status: CaseStatus;
  reason: string;
  verify: boolean;
  reopened: boolean;
  exceptionExpired: ExceptionRef | null;
  /** The exception that covered the case and no longer applies (not expired). */
  exceptionLifted?: ExceptionRef;
}

const to = (status: CaseStatus, reason: string, extra?: Partial<StatusOutcome>): StatusOutcome => ({
  status,
  reason,
  verify: false,
  reopened: false,
  exceptionExpired: null,
  ...extra,
});
const keep = (existing: Case | undefined): StatusOutcome =>
  to(existing?.status ?? 'open', existing?.statusReason ?? 'new finding');

/** What an exception makes of a case active at its source: covered, expired, or lifted (else undefined). */
function exceptionOutcome(
  active: RiskException | undefined,
  lapsed: ExceptionRef | null,
  had: ExceptionRef | null,
  prev: CaseStatus | undefined,
): StatusOutcome | undefined {
  if (active)
    return to('suppressed', `risk accepted: exception ${active.id} (owner ${active.owner}) until ${active.expires}`);
  if (lapsed && had?.id === lapsed.id)
    return to('reopened', `exception ${lapsed.id} expired on ${lapsed.expires}: the risk is no longer accepted`, {
      reopened: true,
      exceptionExpired: lapsed,
    });
  if (prev === 'suppressed' && had)
    return to('open', `exception ${had.id} no longer applies`, { exceptionLifted: had });
  return undefined;
}

function nextStatus(
  f: Finding,
  existing: Case | undefined,
  active: RiskException | undefined,
  expired: RiskException | undefined,
  othersActive: boolean,
  /** The finding reports activity not known before (see decide): what a regression needs. */
  activeAgain: boolean,
): StatusOutcome {
  const prev = existing?.status;
  const had = existing?.exception ?? null;
  // An expired exception matters when it is the one that covered this case, or when a new case is born
  // under it (the ticket then says the acceptance lapsed).
  const lapsed = !active && expired && (had?.id === expired.id || !existing) ? exceptionRef(expired) : null;

  if (f.status === 'resolved') {
    // One finding of several resolved: the case stays what it is while another is active at its source
    // (closing it, and asking to verify it, would close a case whose other finding nobody fixed). An exception
    // covers it, expires or is lifted as for that other one: kept as it was, a case left open under a new
    // exception, or suppressed after its exception expired, was then never suppressed nor re-opened by the
    // sweep (it changes suppressed cases that name their exception, and cases that name none).
    if (othersActive && existing) return exceptionOutcome(active, lapsed, had, prev) ?? keep(existing);
    if (f.muted)
      return to('suppressed', `muted at the source (${f.statusReason ?? 'mute MUTED'}): risk accepted there`);
    if (prev === 'verified' || prev === 'pending-verification') return keep(existing);
    return to(
      'pending-verification',
      `resolved at the source (${f.statusReason ?? 'status resolved'}): closure waits for verification`,
      { verify: true },
    );
  }
  const byException = exceptionOutcome(active, lapsed, had, prev);
  if (byException) return byException;
  if (prev === 'verified')
    return activeAgain
      ? to('reopened', 'active again at the source after verified closure (regression)', { reopened: true })
      : keep(existing);
  if (prev === 'suppressed') return to('open', 'active again at the source (no longer muted)');
  if (prev === 'pending-verification') return to('open', 'active again at the source before verification');
  if (prev === undefined)
    return lapsed
      ? to('open', `new finding; exception ${lapsed.id} expired on ${lapsed.expires}`, { exceptionExpired: lapsed })
      : to('open', 'new finding');
  // open, planned, awaiting-approval, remediated, failed, reopened: progress other stages own.
  return keep(existing);
}

// Shared by every decision that reaches them (decisions are never changed once made).
const RESOLVED_BEFORE_TICKET: Decision['ticket'] = Object.freeze({
  wanted: false,
  reason: 'resolved at the source before any ticket was needed',
});
const NEW_CASE_TICKET: Decision['ticket'] = Object.freeze({ wanted: true, reason: 'new case' });
const CASE_TICKETS = new SharedTable<CaseStatus, Decision['ticket']>(100);

function ticketWanted(
  c: { sample: boolean; status: CaseStatus; ticket: Case['ticket'] },
  isNew: boolean,
  sourceResolved: boolean,
  exception: ExceptionRef | null,
  policy: DecidePolicy,
): Decision['ticket'] {
  if (c.sample && !policy.ticketSamples)
    return { wanted: false, reason: 'sample finding: no ticket (decide.ticketSamples is off)' };
  if (c.status === 'suppressed')
    return {
      wanted: false,
      reason: exception
        ? `suppressed by exception ${exception.id} until ${exception.expires}: no ticket while it is in force`
        : 'muted at the source: no ticket',
    };
  // Resolved at the source with no ticket yet (new, or a case that never needed one): a resolution, or a
  // resolved control finding evaluated again, asks for none (every passing control would get one).
  if (sourceResolved && (isNew || c.ticket === null)) return RESOLVED_BEFORE_TICKET;
  if (isNew) return NEW_CASE_TICKET;
  return CASE_TICKETS.get(c.status) ?? CASE_TICKETS.set(c.status, { wanted: true, reason: `case ${c.status}` });
}

/** A decision describing a case as stored (stale events, and re-evaluation bookkeeping). */
function decisionOf(c: Case, unchanged: boolean): Decision {
  return {
    caseKey: c.key,
    isNewCase: false,
    recurrence: false,
    unchanged,
    exception: c.exception,
    exceptionExpired: null,
    remediation: verdictOf(c.remediation),
    ticket: c.lastDecision?.ticket ?? { wanted: c.status !== 'suppressed', reason: 'as decided before' },
    verify: false,
  };
}

/** The placeholder in a candidate case's `lastDecision` slot until the decision is made (see decide). */
const DECISION_PENDING: CaseDecision = Object.freeze<CaseDecision>({
  isNewCase: false,
  recurrence: false,
  unchanged: true,
  exception: null,
  exceptionExpired: null,
  ticket: { wanted: false, reason: '' },
  verify: false,
});

/** Case decisions without an exception, by their shared ticket verdict and then by their four flags. */
const sharedCaseDecisions = new WeakMap<Decision['ticket'], Array<CaseDecision | undefined>>();

/**
 * A decision as its case keeps it (CaseDecisionSchema): its key and verdict are the case's own `key` and
 * `remediation`, and stored twice they were a quarter of every case document. Without an exception it is
 * one of a few shared, frozen objects (a shared ticket verdict and four flags), not one more per case.
 */
function asCaseDecision(d: Decision): CaseDecision {
  const shareable =
    d.exception === null && d.exceptionExpired === null && d.exceptionLifted === undefined && Object.isFrozen(d.ticket);
  const flags = (d.isNewCase ? 1 : 0) | (d.recurrence ? 2 : 0) | (d.unchanged ? 4 : 0) | (d.verify ? 8 : 0);
  let byFlags = shareable ? sharedCaseDecisions.get(d.ticket) : undefined;
  const shared = byFlags?.[flags];
  if (shared) return shared;
  const made: CaseDecision = {
    isNewCase: d.isNewCase,
    recurrence: d.recurrence,
    unchanged: d.unchanged,
    exception: d.exception,
    exceptionExpired: d.exceptionExpired,
    ticket: d.ticket,
    verify: d.verify,
  };
  if (d.exceptionLifted) made.exceptionLifted = d.exceptionLifted;
  if (!shareable) return made;
  if (!byFlags) {
    byFlags = [];
    sharedCaseDecisions.set(d.ticket, byFlags);
  }
  byFlags[flags] = Object.freeze(made);
  return made;
}

/**
 * Merges one finding into its case and decides. Pure.
 *
 * @example
 * const { decision, next, caseChanged } = decide({ finding, previous, enrichment, existing, exceptions,
 *   policy: config.policy.decide, now: clock.now() });
 * if (caseChanged) await store.put('cases', next.key, next, { expectVersion });
 */
export function decide(input: DecideInput): DecideOutput {
  const { previous, enrichment, existing, policy, now } = input;
  const stale = previous !== undefined && compareTime(input.finding.updatedAt, previous.updatedAt) < 0;
  if (stale && existing)
    return { decision: decisionOf(existing, true), next: existing, findingChanged: false, caseChanged: false };
  // A stale event with no case (the case was lost): rebuild it from the newest state we know.
  const f = stale && previous ? previous : input.finding;
  const findingChanged = !stale && (previous === undefined || !sameFindingState(previous, f));
  const key = caseKeyOf(f);
  const nowIso = isoOf(now);
  const isNew = existing === undefined;

  const merged = mergeFinding(f, stale ? undefined : previous, existing);
  const { active, expired } = matchException(f, input.exceptions, now);
  // Activity the stored finding did not report (first seen, active after resolved, counted or seen later): a
  // verified case re-opens on that, not on the state it was fixed from delivered again (at least once), nor
  // on its Security Hub copy (same timestamps, another source), nor on a snapshot of an unchanged assessment.
  // GuardDuty sends no event for the archive made at verification: its stored finding stays the active one.
  const activeAgain =
    f.status === 'active' &&
    (previous === undefined ||
      previous.status === 'resolved' ||
      f.occurrences > previous.occurrences ||
      compareTime(f.lastSeen, previous.lastSeen) > 0);
  const st = nextStatus(f, existing, active, expired, merged.othersActive, activeAgain);
  const exception = active ? exceptionRef(active) : null;
  // While another finding of the case is active at its source, the case is: one finding resolved or muted
  // (one of two alerts dismissed) leaves the case's fix to be made, and the case not muted.
  const sourceStatus = merged.othersActive ? 'active' : f.status;
  const muted = f.muted && !merged.othersActive;
  // The table does not look at status: a resolved finding keeps its action id (verification only).
  const playbook = selectPlaybook(f);
  const verdict: GateVerdict = evaluateGates({
    action: playbook.action,
    playbookReason: playbook.reason,
    playbookMode: playbook.mode,
    sample: f.sample,
    status: sourceStatus,
    muted,
    exception: active,
    tags: input.liveTags === undefined ? f.resource.tags : (input.liveTags ?? undefined),
    previousGates: existing?.remediation.gates,
    provider: f.resource.provider,
    resourceId: f.resource.id,
    account: f.resource.account,
    accountNumber: f.resource.accountNumber,
    enrichment,
    policy,
    actionInfo: input.actionInfo,
  });
  const remediation = remediationOf(playbook.action, verdict);

  const candidate: Case = {
    key,
    provider: f.resource.provider,
    resourceId: existing?.resourceId ?? f.resource.id,
    resourceName: f.resource.name,
    resourceType: f.resource.type,
    account: f.resource.account,
    accountNumber: f.resource.accountNumber ?? existing?.accountNumber,
    region: f.resource.region ?? existing?.region ?? null,
    type: f.type,
    title: f.title,
    severity: merged.severity,
    status: st.status,
    statusReason: st.reason,
    sourceStatus,
    sources: merged.sources,
    findingKeys: merged.findingKeys,
    sample: existing ? existing.sample && f.sample : f.sample,
    muted,
    firstSeen: merged.firstSeen,
    lastSeen: merged.lastSeen,
    occurrences: merged.occurrences,
    findingOccurrences: merged.findingOccurrences,
    findingActive: merged.findingActive,
    compliance: merged.compliance,
    enrichment,
    exception,
    remediation: existing ? caseRemediation(existing.remediation, remediation) : newCaseRemediation(remediation),
    ticket: existing?.ticket ?? null,
    verification: existing?.verification ?? null,
    evidenceHead: existing?.evidenceHead ?? null,
    createdAt: existing?.createdAt ?? nowIso,
    updatedAt: nowIso,
    closedAt: st.reopened ? null : (existing?.closedAt ?? null),
    reopenCount: (existing?.reopenCount ?? 0) + (st.reopened && existing?.status !== 'reopened' ? 1 : 0),
    // A slot in the literal (a member added afterwards takes a property store of its own, one more object
    // per case); it holds this decision below, and the placeholder never leaves this function.
    lastDecision: DECISION_PENDING,
  };

  const caseChanged = !existing || !sameCase(candidate, existing);
  const recurrence =
    !isNew &&
    findingChanged &&
    (merged.occurrences > existing.occurrences ||
      compareTime(merged.lastSeen, existing.lastSeen) > 0 ||
      !existing.findingKeys.includes(f.key));
  const decision: Decision = {
    caseKey: key,
    isNewCase: isNew,
    recurrence,
    unchanged: !caseChanged,
    exception,
    exceptionExpired: st.exceptionExpired,
    remediation,
    ticket: ticketWanted(candidate, isNew, candidate.sourceStatus === 'resolved', exception, policy),
    verify: st.verify,
  };
  if (st.exceptionLifted) decision.exceptionLifted = st.exceptionLifted;
  if (!caseChanged && existing) return { decision, next: existing, findingChanged, caseChanged: false };
  candidate.lastDecision = asCaseDecision(decision);
  return { decision, next: candidate, findingChanged, caseChanged: true };
}

/** Whether a case's exception reference says what exception `e` says now. */
const namesAsIs = (ref: ExceptionRef | null, e: RiskException): boolean =>
  ref !== null &&
  ref.id === e.id &&
  ref.expires === e.expires &&
  ref.owner === e.owner &&
  ref.justification === e.justification;

/**
 * Re-evaluates a stored case without a new finding (a sweep): re-opens cases whose exception expired or
 * was revoked, and suppresses cases an exception newly covers. Returns undefined when nothing changes.
 *
 * @example for (const c of cases) { const r = reevaluate(c, exceptions, policy, now); if (r) await save(r.next); }
 */
export function reevaluate(
  c: Case,
  exceptions: readonly RiskException[],
  policy: DecidePolicy,
  now: Date,
): { decision: Decision; next: Case } | undefined {
  const { active, expired } = matchException(c, exceptions, now);
  const nowIso = now.toISOString();
  let status: CaseStatus;
  let reason: string;
  let exceptionExpired: ExceptionRef | null = null;
  let exceptionLifted: ExceptionRef | undefined;
  let reopened = false;
  // The exception the case names, as it is now: one extended or handed to another owner under the same id
  // is said again (the case kept saying the old expiry and owner, and the ticket was never told). A verified
  // case is fixed, whatever its source says until it catches up: suppressed, its exception's expiry re-opened
  // the fix (a finding active again still suppresses it, through decide).
  if (active && !namesAsIs(c.exception, active) && c.sourceStatus === 'active' && !c.muted && c.status !== 'verified') {
    status = 'suppressed';
    reason = `risk accepted: exception ${active.id} (owner ${active.owner}) until ${active.expires}`;
  } else if (c.status === 'suppressed' && c.exception && !active) {
    if (expired?.id === c.exception.id) {
      exceptionExpired = exceptionRef(expired);
      status = 'reopened';
      reason = `exception ${expired.id} expired on ${expired.expires}: the risk is no longer accepted`;
      reopened = true;
    } else {
      status = 'open';
      reason = `exception ${c.exception.id} no longer applies`;
      exceptionLifted = c.exception;
    }
  } else return undefined;

  const exception = active ? exceptionRef(active) : null;
  const verdict = evaluateGates({
    action: c.remediation.action,
    playbookReason: c.remediation.action === null ? c.remediation.reason : '',
    // The playbook line is not stored on the case: take the strictest line defaults for its action.
    playbookMode: c.remediation.action === null ? undefined : strictestModeFor(c.remediation.action),
    sample: c.sample,
    status: c.sourceStatus,
    muted: c.muted,
    exception: active,
    tags: undefined,
    previousGates: c.remediation.gates,
    provider: c.provider,
    resourceId: c.resourceId,
    account: c.account,
    accountNumber: c.accountNumber,
    enrichment: c.enrichment,
    policy,
    actionInfo: undefined,
  });
  const remediation = remediationOf(c.remediation.action, verdict);
  const next: Case = {
    ...c,
    status,
    statusReason: reason,
    exception,
    remediation: { ...c.remediation, ...remediation },
    updatedAt: nowIso,
    closedAt: reopened ? null : c.closedAt,
    reopenCount: c.reopenCount + (reopened ? 1 : 0),
  };
  const decision: Decision = {
    ...decisionOf(next, false),
    exception,
    exceptionExpired,
    remediation,
    ticket: ticketWanted(next, false, c.sourceStatus === 'resolved', exception, policy),
    ...(exceptionLifted ? { exceptionLifted } : {}),
  };
  next.lastDecision = asCaseDecision(decision);
  return { decision, next };
}
