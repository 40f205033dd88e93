/**
 * The verify stage: no case closes without proof, and a fix that stops holding reopens its case.
 *
 * Handles `case.remediation` (state `applied`), `case.verify-requested` (apply, source-resolved,
 * ticket-closed, scheduled, manual) and `case.decided` when the decision says the source reports the
 * finding resolved. Writes evidence (one `upstream` record per source update, then the `verify` record)
 * and only the case's `verification`, `status`, `statusReason`, `closedAt`, `reopenCount` and
 * `evidenceHead`.
 */
import type { ActionContext } from '../../actions/define.js';
import { errorMessage } from '../errors.js';
import { CASES, caseFields, recordEvidence } from '../evidence/case-link.js';
import { findByIdempotencyKey } from '../evidence/chain.js';
import type { EvidenceStore } from '../evidence/ports.js';
import { actorFrom, type EvidenceRecord } from '../evidence/record.js';
import { recordEventEvidence } from '../evidence/stage.js';
import { type Case, CaseSchema, type CaseVerification } from '../model/case.js';
import type { PipelineEvent } from '../model/events.js';
import { type Finding, FindingSchema } from '../model/finding.js';
import type { Stage } from '../pipeline/stage.js';
import type { Clock, DocStore, Logger } from '../ports.js';
import { getDoc, mutateDoc } from '../store/docs.js';
import { canonicalJson, shortHash } from '../util/hash.js';
import { type ActionLookup, type Assessment, assessCase, type Trigger } from './assess.js';
import type { VerificationPolicy } from './policy.js';
import type { UpstreamResult, UpstreamStatus } from './ports.js';

export interface VerifyDeps {
  store: DocStore;
  evidence: EvidenceStore;
  actions: ActionLookup;
  /** Cloud clients for re-reads; undefined in the local default (no cloud). */
  ctx: ActionContext | undefined;
  upstream: UpstreamStatus;
  clock: Clock;
  log: Logger;
  policy: VerificationPolicy;
  sleep?: (ms: number) => Promise<void>;
}

export interface VerifyRequest {
  caseKey: string;
  trigger: Trigger;
  /** Who asked (a person closing the ticket, `closeloop:remediate`, `closeloop:schedule`). */
  requestedBy: string;
  eventId: string;
}

export interface VerifyOutcome {
  verdict: Assessment['verdict'] | 'skipped' | 'duplicate' | 'missing';
  record?: EvidenceRecord;
  events: PipelineEvent[];
}

export const VERIFIER = 'closeloop:verify';
const EVENT_LOG = 'events';
const FINDINGS = 'findings';

/**
 * Creates the stage.
 *
 * @example
 * const verify = createVerifyStage({ store, evidence, actions: { get: getAction }, ctx: undefined,
 *   upstream: new LocalUpstreamStatus(), clock, log, policy: config.policy.verification });
 */
export function createVerifyStage(deps: VerifyDeps): Stage {
  return {
    name: 'verify',
    handles: ['case.remediation', 'case.verify-requested', 'case.decided'],
    async handle(event) {
      const request = await requestFor(event, deps);
      if (!request) return [];
      // The cause first (idempotent with the evidence stage): the story reads apply → upstream → verify
      // even when this stage runs before the evidence stage on the bus.
      await recordEventEvidence(deps, event);
      return (await verifyCase(deps, request)).events;
    },
  };
}

async function requestFor(event: PipelineEvent, deps: VerifyDeps): Promise<VerifyRequest | undefined> {
  const base = { caseKey: event.caseKey, eventId: event.id };
  switch (event.type) {
    case 'case.remediation':
      return event.state === 'applied' ? { ...base, trigger: 'apply', requestedBy: event.actor } : undefined;
    case 'case.verify-requested':
      return { ...base, trigger: event.trigger, requestedBy: event.actor };
    case 'case.decided': {
      // The source says resolved: verification is owed (never a silent close).
      const c = (await getDoc(deps.store, CASES, event.caseKey, CaseSchema))?.value;
      const saysVerify = decisionVerify(event.detail) ?? c?.lastDecision?.verify ?? false;
      return c && saysVerify && c.sourceStatus === 'resolved'
        ? { ...base, trigger: 'source-resolved', requestedBy: 'closeloop:decide' }
        : undefined;
    }
    default:
      return undefined;
  }
}

function decisionVerify(detail: Record<string, unknown> | undefined): boolean | undefined {
  const d = detail?.decision;
  return d && typeof d === 'object' && 'verify' in d && typeof d.verify === 'boolean' ? d.verify : undefined;
}

/**
 * One idempotency key per claim of fixedness: the same apply (or the same source resolution) asked
 * for twice — by `case.remediation` and `case.verify-requested`, or a duplicate delivery — is verified once.
 */
function verifyKeyFor(req: VerifyRequest, c: Case): string {
  if (req.trigger === 'apply') {
    return `verify:${shortHash(`${c.key}\napply\n${c.remediation.appliedAt ?? c.remediation.applyToken ?? req.eventId}`, 32)}`;
  }
  if (req.trigger === 'source-resolved') return `verify:${shortHash(`${c.key}\nsource-resolved\n${c.lastSeen}`, 32)}`;
  return `verify:${shortHash(`${c.key}\n${req.eventId}`, 32)}`;
}

/**
 * Verifies one case now and returns the follow-up events (the caller publishes them).
 * Used by the stage, by `reverifyRecent` and by `closeloop verify <case>`.
 */
export async function verifyCase(deps: VerifyDeps, req: VerifyRequest): Promise<VerifyOutcome> {
  const c = (await getDoc(deps.store, CASES, req.caseKey, CaseSchema))?.value;
  if (!c) {
    deps.log.warn('verify: case not found', { caseKey: req.caseKey });
    return { verdict: 'missing', events: [] };
  }
  const key = verifyKeyFor(req, c);
  const chain = { store: deps.store, evidence: deps.evidence, clock: deps.clock };
  if (await findByIdempotencyKey(chain, key)) return { verdict: 'duplicate', events: [] };

  const findings = await loadFindings(deps.store, c.findingKeys);
  const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const assessment = await assessCase({ ...deps, sleep }, c, findings, req.trigger);
  if (assessment === 'skip') {
    deps.log.info('verify: dry-run plan only, nothing to verify', { caseKey: c.key });
    return { verdict: 'skipped', events: [] };
  }
  const now = deps.clock.now().toISOString();
  const upstream = assessment.verdict === 'verified' ? await markUpstream(deps, c, findings, key, now) : [];

  const wasVerified = c.status === 'verified';
  const reopen =
    (assessment.verdict === 'failed' && (wasVerified || c.closedAt !== null || req.trigger === 'ticket-closed')) ||
    (assessment.verdict === 'inconclusive' && req.trigger === 'ticket-closed');
  const change = wasVerified ? describeChange(c.verification?.observed, assessment.observed) : '';
  const reason = reasonFor(assessment, req, reopen, change);

  const { record } = await recordEvidence(
    chain,
    {
      caseKey: c.key,
      ...caseFields(c),
      step: 'verify',
      actor: actorFrom(VERIFIER),
      eventId: req.eventId,
      at: now,
      summary: `${assessment.verdict}: ${reason}`,
      calls: assessment.calls,
      ...(c.remediation.before !== undefined ? { before: c.remediation.before } : {}),
      ...(assessment.observed !== undefined ? { after: assessment.observed } : {}),
      verdict: assessment.verdict,
      detail: {
        trigger: req.trigger,
        requestedBy: req.requestedBy,
        basis: assessment.basis,
        attempts: assessment.attempts,
        action: c.remediation.action,
        upstream,
        ...(change ? { changed: change } : {}),
      },
    },
    key,
  );

  const verification: CaseVerification = {
    verdict: assessment.verdict,
    at: now,
    reason,
    ...(assessment.observed !== undefined ? { observed: assessment.observed } : {}),
    attempts: assessment.attempts,
    trigger: req.trigger,
    upstream: upstream.map((u) => ({ source: u.source, outcome: `${u.outcome}: ${u.detail}`, at: now })),
  };
  await mutateDoc(deps.store, CASES, c.key, CaseSchema, (cur) =>
    cur ? nextCase(cur, verification, reopen, reason) : undefined,
  );

  const summary = evidenceSummary(assessment, record, upstream, reason);
  const events = eventsFor(c, req, assessment, record, summary, reopen, wasVerified, reason, now);
  if (events.length > 0) {
    await deps.store.writeBatch({
      puts: [],
      appends: events.map((e) => ({ log: EVENT_LOG, id: e.id, value: logEntry(e) })),
    });
  }
  deps.log.info(`verify: ${assessment.verdict}`, { caseKey: c.key, trigger: req.trigger, hash: record.hash });
  return { verdict: assessment.verdict, record, events };
}

/** Only the fields the verifier owns. */
function nextCase(cur: Case, v: CaseVerification, reopen: boolean, reason: string): Case {
  if (v.verdict === 'verified') {
    return {
      ...cur,
      verification: v,
      status: 'verified',
      statusReason: `verified: ${reason}`,
      // A scheduled re-verification that still holds keeps the original closing time.
      closedAt: cur.status === 'verified' && cur.closedAt ? cur.closedAt : v.at,
    };
  }
  if (reopen) {
    return {
      ...cur,
      verification: v,
      status: 'reopened',
      statusReason: reason,
      closedAt: null,
      reopenCount: cur.reopenCount + 1,
    };
  }
  if (v.verdict === 'failed')
    return { ...cur, verification: v, status: 'failed', statusReason: reason, closedAt: null };
  // Inconclusive: a closed case stays closed (the last proof stands) but says the re-check did not conclude.
  if (cur.status === 'verified')
    return { ...cur, verification: v, statusReason: `re-verification inconclusive: ${reason}` };
  return {
    ...cur,
    verification: v,
    status: 'pending-verification',
    statusReason: `verification inconclusive: ${reason}`,
  };
}

function reasonFor(a: Assessment, req: VerifyRequest, reopen: boolean, change: string): string {
  if (!reopen) return a.reason;
  if (req.trigger === 'ticket-closed') {
    return a.verdict === 'failed'
      ? `ticket closed by ${req.requestedBy} but the fix does not hold: ${a.reason}`
      : `ticket closed by ${req.requestedBy} but the closure could not be verified: ${a.reason}`;
  }
  return `regression: the fix no longer holds: ${a.reason}${change ? `; changed: ${change}` : ''}`;
}

function eventsFor(
  c: Case,
  req: VerifyRequest,
  a: Assessment,
  record: EvidenceRecord,
  summary: string,
  reopen: boolean,
  wasVerified: boolean,
  reason: string,
  at: string,
): PipelineEvent[] {
  const id = (kind: string) => `${kind}:${shortHash(`${c.key}\n${record.hash}`, 32)}`;
  const detail = {
    evidenceHash: record.hash,
    evidenceSummary: summary,
    trigger: req.trigger,
    ...(a.observed !== undefined ? { observed: a.observed } : {}),
  };
  if (reopen) {
    return [{ id: id('reopened'), type: 'case.reopened', caseKey: c.key, at, reason, actor: VERIFIER, detail }];
  }
  // A scheduled re-check of a closed case that still holds (or cannot tell) changes nothing downstream.
  if (wasVerified && a.verdict !== 'failed') return [];
  return [{ id: id('verified'), type: 'case.verified', caseKey: c.key, at, verdict: a.verdict, detail }];
}

/** The ticket's closing comment: what was checked, the verdict, upstream updates and the record hash. */
function evidenceSummary(a: Assessment, record: EvidenceRecord, upstream: UpstreamResult[], reason: string): string {
  const basis =
    a.basis === 're-read'
      ? `re-read of the resource (${a.attempts} attempt${a.attempts === 1 ? '' : 's'})`
      : a.basis === 'source-state'
        ? "the source's own state"
        : 'no basis';
  const up = upstream
    .map((u) => `${u.source} ${u.outcome}${u.requestId ? ` (request ${u.requestId})` : ''}`)
    .join(', ');
  return `Verdict ${a.verdict} on ${basis}: ${reason}.${up ? ` Upstream: ${up}.` : ''} Evidence record ${record.hash} (case record #${record.caseSeq}, chain #${record.seq}).`;
}

/** Marks each still-active finding resolved at its source; each attempt is an evidence record. */
async function markUpstream(
  deps: VerifyDeps,
  c: Case,
  findings: Finding[],
  key: string,
  at: string,
): Promise<UpstreamResult[]> {
  const results: UpstreamResult[] = [];
  const chain = { store: deps.store, evidence: deps.evidence, clock: deps.clock };
  for (const f of findings) {
    let r: UpstreamResult;
    if (!deps.policy.upstream.enabled) {
      r = {
        source: f.source,
        outcome: 'not-updated',
        api: null,
        requestId: null,
        detail: 'upstream updates disabled by policy',
      };
    } else if (f.status === 'resolved') {
      r = {
        source: f.source,
        outcome: 'not-updated',
        api: null,
        requestId: null,
        detail: `already resolved at the source (${f.statusReason ?? 'resolved'})`,
      };
    } else {
      try {
        r = await deps.upstream.markResolved(f, `${deps.policy.upstream.note} closeloop case ${shortHash(c.key)}.`);
      } catch (e) {
        r = { source: f.source, outcome: 'failed', api: null, requestId: null, detail: errorMessage(e) };
      }
    }
    results.push(r);
    await recordEvidence(
      chain,
      {
        caseKey: c.key,
        ...caseFields(c),
        step: 'upstream',
        actor: actorFrom(VERIFIER),
        eventId: null,
        at,
        summary: `${f.source}: ${r.outcome}: ${r.detail}`,
        calls: r.api ? [{ api: r.api, requestId: r.requestId, outcome: r.outcome }] : [],
        verdict: r.outcome,
        detail: { findingKey: f.key, sourceId: f.sourceId },
      },
      `${key}:upstream:${f.key}`,
    );
  }
  return results;
}

async function loadFindings(store: DocStore, keys: readonly string[]): Promise<Finding[]> {
  const docs = await store.getMany(FINDINGS, keys);
  const out: Finding[] = [];
  for (const d of docs.values()) {
    const parsed = FindingSchema.safeParse(d.value);
    if (parsed.success) out.push(parsed.data);
  }
  return out;
}

/** "What changed" between the last proof and now, by top-level field, for regression messages. */
export function describeChange(before: unknown, after: unknown): string {
  const obj = (v: unknown): Record<string, unknown> | undefined =>
    v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v)) : undefined;
  const b = obj(before);
  const a = obj(after);
  const short = (v: unknown) => {
    const s = canonicalJson(v) ?? 'absent';
    return s.length > 120 ? `${s.slice(0, 117)}...` : s;
  };
  if (!b || !a) return canonicalJson(before) === canonicalJson(after) ? '' : `${short(before)} → ${short(after)}`;
  return [...new Set([...Object.keys(b), ...Object.keys(a)])]
    .sort()
    .filter((k) => canonicalJson(b[k]) !== canonicalJson(a[k]))
    .map((k) => `${k}: ${short(b[k])} → ${short(a[k])}`)
    .join('; ');
}

function logEntry(e: PipelineEvent): Record<string, unknown> {
  const base = { type: e.type, caseKey: e.caseKey, at: e.at };
  if (e.type === 'case.verified') return { ...base, verdict: e.verdict };
  if (e.type === 'case.reopened') return { ...base, reason: e.reason };
  return base;
}

export interface ReverifyResult {
  checked: number;
  holding: number;
  reopened: number;
  inconclusive: number;
  events: PipelineEvent[];
}

/**
 * Scheduled re-verification: every case verified within `policy.reverifyDays` of `now` is re-read;
 * a fix that no longer holds reopens the case (and, through `case.reopened`, its ticket). The caller
 * publishes the returned events.
 *
 * @example
 * const r = await reverifyRecent(deps, new Date()); await bus.publish(r.events);
 */
export async function reverifyRecent(deps: VerifyDeps, now: Date): Promise<ReverifyResult> {
  const since = now.getTime() - deps.policy.reverifyDays * 86_400_000;
  const result: ReverifyResult = { checked: 0, holding: 0, reopened: 0, inconclusive: 0, events: [] };
  let after: string | undefined;
  for (;;) {
    const page = await deps.store.list(CASES, { limit: 500, ...(after !== undefined ? { after } : {}) });
    if (page.length === 0) break;
    after = page.at(-1)?.id;
    for (const doc of page) {
      const parsed = CaseSchema.safeParse(doc.value);
      if (!parsed.success) continue;
      const c = parsed.data;
      if (c.status !== 'verified' || !c.closedAt || Date.parse(c.closedAt) < since) continue;
      result.checked++;
      const out = await verifyCase(deps, {
        caseKey: c.key,
        trigger: 'scheduled',
        requestedBy: 'closeloop:schedule',
        eventId: `reverify:${c.key}:${now.toISOString()}`,
      });
      if (out.verdict === 'verified') result.holding++;
      else if (out.events.some((e) => e.type === 'case.reopened')) result.reopened++;
      else if (out.verdict === 'inconclusive') result.inconclusive++;
      result.events.push(...out.events);
    }
  }
  return result;
}
