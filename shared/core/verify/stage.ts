/**
 * The verify stage: no case closes without proof, and a fix that stops holding reopens its case.
 *
 * Handles `case.remediation` (state `applied`), `case.verify-requested` (apply, source-resolved,
 * ticket-closed, scheduled, manual), `case.decided` when the decision says the source reports the
 * finding resolved, and `case.reopened` by a person in Jira (the closed case reopens: its proof no longer
 * stands, and the ticket's next close is verified and closed with evidence again). Writes evidence (one
 * `upstream` record per source update, then the `verify` record) and only the case's `verification`,
 * `status`, `statusReason`, `closedAt`, `reopenCount` and `evidenceHead`.
 */
import * as z from 'zod';
import type { ActionContext } from '../../actions/define.js';
import { errorMessage } from '../errors.js';
import { CASES, caseFields, recordEvidence } from '../evidence/case-link.js';
import { findByIdempotencyKey } from '../evidence/chain.js';
import type { EvidenceStore } from '../evidence/ports.js';
import {
  actorFrom,
  type EvidenceCall,
  EvidenceCallSchema,
  type EvidenceRecord,
  EvidenceRecordSchema,
} from '../evidence/record.js';
import { recordEventEvidence } from '../evidence/stage.js';
import { type Case, CaseSchema, type CaseVerification } from '../model/case.js';
import { type PipelineEvent, RECONCILED_CLOSE, VerifyTriggerSchema } from '../model/events.js';
import { type Finding, FindingSchema, ProviderSchema, SourceSchema, TimestampSchema } from '../model/finding.js';
import { ensureCaseWritten } from '../pipeline/announced.js';
import { keepEvents, keptOldestFirst, releaseEvents } from '../pipeline/kept-events.js';
import type { Stage } from '../pipeline/stage.js';
import type { Clock, DocStore, Logger } from '../ports.js';
import type { RemoteExecutor, RemoteResult } from '../remediation/remote.js';
import { getDoc, mutateDoc } from '../store/docs.js';
import { canonicalJson, shortHash } from '../util/hash.js';
import {
  type ActionLookup,
  type Assessment,
  assessCase,
  delayFor,
  fixActionOf,
  type Trigger,
  targetFor,
} from './assess.js';
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
  /**
   * Where resources of other providers are re-read (the AWS hub asks the Azure/GCP spokes, whose SDKs
   * it does not carry). For those the stage sends an `op: 'verify'` request instead of re-reading, and
   * the verdict is recorded when the answer comes back ({@link recordRemoteVerification}). Omitted:
   * every re-read happens here.
   */
  remote?: RemoteExecutor;
}

export interface VerifyRequest {
  caseKey: string;
  trigger: Trigger;
  /** Who asked (a person closing the ticket, `closeloop:remediate`, `closeloop:schedule`). */
  requestedBy: string;
  eventId: string;
}

export interface VerifyOutcome {
  /** `pending`: a spoke was asked to re-read the resource; the verdict follows with its answer. */
  verdict: Assessment['verdict'] | 'skipped' | 'duplicate' | 'missing' | 'pending';
  record?: EvidenceRecord;
  events: PipelineEvent[];
}

export const VERIFIER = 'closeloop:verify';
const PENDING: Case['status'] = 'pending-verification';
const EVENT_LOG = 'events';
const FINDINGS = 'findings';
/**
 * Follow-up events owed by verifications whose callers cannot be asked again (see {@link KeepOptions}): one
 * document per verdict (id: its first event's), written before the case write the events announce and
 * removed once they are published. The sweep publishes whatever is left (a run killed between the case write
 * and the publish, or a publish that failed) first.
 */
export const UNPUBLISHED = 'verify-unpublished';

/**
 * How a verification hands over its follow-up events. An event-driven request needs nothing more: its
 * message is written before the case and comes back when the process dies before it published (SQS after
 * the visibility timeout, the local bus's `event-queue` on recovery), and the redelivery finishes from the
 * evidence record with the same event ids ({@link resumeVerification}). The sweep and a remote answer have no
 * such message: the next sweep finds the case already written (no longer due, or checked with another key)
 * and a redelivered answer finds its request claimed, so what the dead run owed would never be announced
 * (the ticket of a regression never reopened). They `keep` the events.
 */
export interface KeepOptions {
  /**
   * Write the events to {@link UNPUBLISHED} before the case write, so they are durable no later than the
   * state they announce; whoever publishes them removes them ({@link releaseKept}). A separate write ahead,
   * not the case's own batch: `writeBatch` is not atomic (DynamoDB runs its puts in parallel), and events
   * kept on the case would put the verifier's bookkeeping into the document every stage reads and writes
   * (`pipeline/kept-events.ts`, shared with the exception sweep).
   */
  keep?: boolean;
}

/** Writes a verdict's follow-up events ahead of the case write (idempotent: same id, same events). */
const keepAhead = (deps: VerifyDeps, events: readonly PipelineEvent[]) => keepEvents(deps, UNPUBLISHED, events);

/**
 * Removes published events from {@link UNPUBLISHED}. A removal that fails leaves them to the next sweep,
 * which publishes them again: a duplicate (same ids) the ticket stage does once.
 */
const releaseKept = (deps: VerifyDeps, events: readonly PipelineEvent[]) => releaseEvents(deps, UNPUBLISHED, events);

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
    handles: ['case.remediation', 'case.verify-requested', 'case.decided', 'case.reopened'],
    async handle(event) {
      // Throws (retryable) while the state the event announces is not written yet: a source resolution is
      // verified on the case it resolved (verified earlier, the state before it was judged, an inconclusive
      // verdict recorded and announced while the source still said active; a new case was "not found").
      await ensureCaseWritten(deps.store, event);
      if (event.type === 'case.reopened') {
        if (!event.actor.startsWith('jira:')) return []; // the verifier's own reopen wrote the case already
        await recordEventEvidence(deps, event);
        await reopenByPerson(deps, event.caseKey, event.reason, event.actor);
        return [];
      }
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
    case 'case.verify-requested': {
      if (event.trigger === 'ticket-closed') {
        // A person closing the ticket of a risk-accepted case closes it on the exception, not on a fix: the
        // re-read found the risk still there, and reopened the case and the ticket under an exception in
        // force (the sweep, which re-opens suppressed cases only, then never re-opened it at its expiry).
        const c = (await getDoc(deps.store, CASES, event.caseKey, CaseSchema))?.value;
        if (c?.status === 'suppressed' && c.exception) {
          deps.log.info('verify: ticket closed on an accepted risk, nothing to verify', {
            caseKey: c.key,
            exception: c.exception.id,
          });
          return undefined;
        }
      }
      return { ...base, trigger: event.trigger, requestedBy: event.actor };
    }
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

/**
 * A person reopened the closed ticket: the case reopens (status, `closedAt`, `reopenCount`), so a later
 * close of the ticket is a new claim whose verification closes the case and the ticket with evidence again.
 * Once per reopen: only a verified case changes (a redelivery finds it reopened). A close recorded since
 * (the ticket is done again, its verification may have run first) wins.
 */
async function reopenByPerson(deps: VerifyDeps, caseKey: string, reason: string, actor: string): Promise<void> {
  await mutateDoc(deps.store, CASES, caseKey, CaseSchema, (cur): Case | undefined =>
    cur && cur.status === 'verified' && cur.ticket?.status !== 'done'
      ? {
          ...cur,
          status: 'reopened',
          statusReason: `${reason} by ${actor}: the verified closure no longer stands`,
          closedAt: null,
          reopenCount: cur.reopenCount + 1,
        }
      : undefined,
  );
}

function decisionVerify(detail: Record<string, unknown> | undefined): boolean | undefined {
  const d = detail?.decision;
  return d && typeof d === 'object' && 'verify' in d && typeof d.verify === 'boolean' ? d.verify : undefined;
}

/** The ids the ingest gives a decided finding state's `case.decided` and `case.verify-requested`. */
const INGEST_EVENT_ID = /^(?:decided|verify):([0-9a-f]{32})$/;

/**
 * One idempotency key per claim of fixedness: the same apply (or the same source resolution) asked
 * for twice — by `case.remediation` and `case.verify-requested`, or a duplicate delivery — is verified once.
 *
 * A source resolution is the finding state the ingest decided: its `case.decided` and `case.verify-requested`
 * carry one hash in their ids, shared by their redeliveries; a later resolution of the same finding (NEW →
 * RESOLVED → NEW → RESOLVED) is another state, another hash. A request from elsewhere (an exception sweep's
 * decision) falls back to the decision that recorded it: the case's `lastSeen` and `updatedAt`.
 */
function verifyKeyFor(req: VerifyRequest, c: Case): string {
  if (req.trigger === 'apply') {
    return `verify:${shortHash(`${c.key}\napply\n${c.remediation.appliedAt ?? c.remediation.applyToken ?? req.eventId}`, 32)}`;
  }
  if (req.trigger === 'source-resolved') {
    // The ingest's events of one decided finding state share their hash (`decided:<h>`, `verify:<h>`, on the
    // write-ahead publish and its conflict redo alike): the resolution itself, whatever was written since. Keyed
    // by the case's last write instead, a redelivery after decide wrote the case again (a repeat of the
    // resolved finding) re-verified under a new key and, the case already verified, announced nothing: the
    // first attempt's `case.verified`, which closes the ticket, was lost with its process.
    const resolution = INGEST_EVENT_ID.exec(req.eventId)?.[1];
    if (resolution) return `verify:${shortHash(`${c.key}\nsource-resolved\n${resolution}`, 32)}`;
    return `verify:${shortHash(`${c.key}\nsource-resolved\n${c.lastSeen}\n${c.updatedAt}`, 32)}`;
  }
  return `verify:${shortHash(`${c.key}\n${req.eventId}`, 32)}`;
}

/**
 * Verifies one case now and returns the follow-up events (the caller publishes them). `current`: the case
 * as the caller has just read it (else it is read here). `options.keep`: see {@link KeepOptions}. Used by
 * the stage, by `reverifyRecent` and by `closeloop verify <case>`.
 */
export async function verifyCase(
  deps: VerifyDeps,
  req: VerifyRequest,
  current?: Case,
  options: KeepOptions = {},
): Promise<VerifyOutcome> {
  const c = current ?? (await getDoc(deps.store, CASES, req.caseKey, CaseSchema))?.value;
  if (!c) {
    deps.log.warn('verify: case not found', { caseKey: req.caseKey });
    return { verdict: 'missing', events: [] };
  }
  const key = verifyKeyFor(req, c);
  const chain = { store: deps.store, evidence: deps.evidence, clock: deps.clock };
  const done = await findByIdempotencyKey(chain, key);
  if (done) return resumeVerification(deps, c, req, done, options);

  const findings = await loadFindings(deps.store, c.findingKeys);
  const remote = remoteReadOf(deps, c, findings);
  if (remote) return requestRemoteVerification(deps, c, req, key, remote, 1, []);
  const assessment = await assessCase({ ...deps, sleep: sleepOf(deps) }, c, findings, req.trigger);
  if (assessment === 'skip') {
    deps.log.info('verify: dry-run plan only, nothing to verify', { caseKey: c.key });
    return { verdict: 'skipped', events: [] };
  }
  return concludeVerification(deps, c, req, key, findings, assessment, options);
}

const sleepOf = (deps: VerifyDeps) => deps.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));

/**
 * Records a verdict: upstream updates when verified, the evidence record (idempotent on `key`), the
 * case's verification section and status, and the follow-up events.
 */
async function concludeVerification(
  deps: VerifyDeps,
  c: Case,
  req: VerifyRequest,
  key: string,
  findings: Finding[],
  assessment: Assessment,
  options: KeepOptions = {},
): Promise<VerifyOutcome> {
  const chain = { store: deps.store, evidence: deps.evidence, clock: deps.clock };
  const now = deps.clock.now().toISOString();
  const upstream = assessment.verdict === 'verified' ? await markUpstream(deps, c, findings, key, now) : [];

  const wasVerified = c.status === 'verified';
  const reopen =
    (assessment.verdict === 'failed' && (wasVerified || c.closedAt !== null || req.trigger === 'ticket-closed')) ||
    (assessment.verdict === 'inconclusive' && req.trigger === 'ticket-closed');
  const change = wasVerified ? describeChange(c.verification?.observed, assessment.observed) : '';
  const recheck = recheckOf(c, req);
  const gaveUp =
    recheck !== undefined && assessment.verdict === 'inconclusive' && recheck >= deps.policy.recheckInconclusive.times;
  const reason = `${reasonFor(assessment, req, reopen, change)}${gaveUp ? `; no further scheduled re-checks (${recheck} made): a person must look` : ''}`;

  const { record, created } = await recordEvidence(
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
        action: fixActionOf(c),
        upstream,
        ...(change ? { changed: change } : {}),
        // What the verdict does to the case, decided before the record: a redelivery that finds this
        // record finishes the same work (see resumeVerification).
        reopen,
        wasVerified,
        ...(recheck !== undefined ? { recheck } : {}),
      },
    },
    key,
  );
  // Another run with the same key (an overlapping sweep, a redelivery) recorded its verdict first: the record
  // is the proof, so the case follows it, not this run's own re-read (which may have seen otherwise).
  if (!created) return resumeVerification(deps, c, req, record, options);

  const events = await finishVerification(deps, c, req, record, assessment, upstream, reopen, wasVerified, reason, {
    resuming: false,
    keep: options.keep ?? false,
    recheck,
  });
  deps.log.info(`verify: ${assessment.verdict}`, { caseKey: c.key, trigger: req.trigger, hash: record.hash });
  return { verdict: assessment.verdict, record, events };
}

/** How {@link finishVerification} finishes. */
interface Finish {
  /** The case may already hold this verdict (or a later one), and is then left as it is. */
  resuming: boolean;
  /** The events are written ahead of the case write ({@link KeepOptions}). */
  keep: boolean;
  /** Which scheduled re-check of an inconclusive verdict this is ({@link recheckOf}). */
  recheck: number | undefined;
}

/**
 * What follows the evidence record: the case's verification section and status, and the follow-up events
 * (ids derived from the record).
 */
async function finishVerification(
  deps: VerifyDeps,
  c: Case,
  req: VerifyRequest,
  record: EvidenceRecord,
  assessment: Assessment,
  upstream: FindingUpstream[],
  reopen: boolean,
  wasVerified: boolean,
  reason: string,
  { resuming, keep, recheck }: Finish,
): Promise<PipelineEvent[]> {
  const at = record.at;
  const verification: CaseVerification = {
    verdict: assessment.verdict,
    at,
    reason,
    ...(assessment.observed !== undefined ? { observed: assessment.observed } : {}),
    attempts: assessment.attempts,
    trigger: req.trigger,
    ...(recheck !== undefined ? { rechecks: recheck } : {}),
    upstream: upstreamEntries(c, upstream, at),
  };
  const summary = evidenceSummary(assessment, record, upstream, reason);
  // A re-check that is inconclusive again has nothing new to tell, until the last one gives up.
  const quiet =
    recheck !== undefined && assessment.verdict === 'inconclusive' && recheck < deps.policy.recheckInconclusive.times;
  const events = quiet ? [] : eventsFor(c, req, assessment, record, summary, reopen, wasVerified, reason, at);
  // Before the case write: a process that dies after it has the events on record (see KeepOptions).
  if (keep) await keepAhead(deps, events);
  await mutateDoc(deps.store, CASES, c.key, CaseSchema, (cur) =>
    cur && !(resuming && cur.verification && Date.parse(cur.verification.at) >= Date.parse(at))
      ? nextCase(cur, verification, reopen, reason)
      : undefined,
  );
  if (events.length > 0) {
    await deps.store.writeBatch({
      puts: [],
      appends: events.map((e) => ({ log: EVENT_LOG, id: e.id, value: logEntry(e) })),
    });
  }
  return events;
}

/**
 * A request whose verification is already on record (a redelivered event, or the second of two requests
 * for the same apply). When the first run stopped after the record (the function died, or publishing its
 * events failed and the message came back), the case write and the events were lost with it: they are
 * finished from the record, which holds the verdict and what it does to the case. Event ids derive from
 * the record, so downstream stages see the same events again, never new ones. Records written before
 * they carried `reopen`/`wasVerified` are left as they are.
 */
async function resumeVerification(
  deps: VerifyDeps,
  c: Case,
  req: VerifyRequest,
  record: EvidenceRecord,
  options: KeepOptions = {},
): Promise<VerifyOutcome> {
  const d = record.detail;
  const verdict = record.verdict;
  if (
    record.step !== 'verify' ||
    (verdict !== 'verified' && verdict !== 'failed' && verdict !== 'inconclusive') ||
    typeof d.reopen !== 'boolean' ||
    typeof d.wasVerified !== 'boolean'
  )
    return { verdict: 'duplicate', record, events: [] };
  const prefix = `${verdict}: `;
  const reason = record.summary.startsWith(prefix) ? record.summary.slice(prefix.length) : record.summary;
  const assessment: Assessment = {
    verdict,
    basis: d.basis === 're-read' || d.basis === 'source-state' ? d.basis : 'none',
    reason,
    ...(record.after !== undefined ? { observed: record.after } : {}),
    attempts: typeof d.attempts === 'number' ? d.attempts : 1,
    calls: record.calls,
  };
  const upstream = Array.isArray(d.upstream) ? (d.upstream as FindingUpstream[]) : [];
  const trigger = VerifyTriggerSchema.safeParse(d.trigger);
  const original = { ...req, trigger: trigger.success ? trigger.data : req.trigger };
  const events = await finishVerification(
    deps,
    c,
    original,
    record,
    assessment,
    upstream,
    d.reopen,
    d.wasVerified,
    reason,
    {
      resuming: true,
      keep: options.keep ?? false,
      recheck: typeof d.recheck === 'number' ? d.recheck : undefined,
    },
  );
  deps.log.info('verify: already on record; case and events completed from it', { caseKey: c.key, hash: record.hash });
  return { verdict: 'duplicate', record, events };
}

/**
 * Which scheduled re-check of an inconclusive verdict this request is (1-based), or undefined when it is
 * none: only a `scheduled` request for a case still pending-verification on an inconclusive verdict. A new
 * claim of fixedness (apply, source resolution) starts the count again.
 */
function recheckOf(c: Case, req: VerifyRequest): number | undefined {
  const v = c.verification;
  if (req.trigger !== 'scheduled' || c.status !== PENDING || v?.verdict !== 'inconclusive') return undefined;
  return (v.rechecks ?? 0) + 1;
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
      // Re-opened since it was read (decide on the finding active again, while this re-read ran): one reopen,
      // counted once, as decide counts a reopen of a reopened case.
      reopenCount: cur.reopenCount + (cur.status === 'reopened' ? 0 : 1),
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
    .flatMap(withCopies)
    .map((u) => `${u.source} ${u.outcome}${u.requestId ? ` (request ${u.requestId})` : ''}`)
    .join(', ');
  return `Verdict ${a.verdict} on ${basis}: ${reason}.${up ? ` Upstream: ${up}.` : ''} Evidence record ${record.hash} (case record #${record.caseSeq}, chain #${record.seq}).`;
}

/** A source update and those of the finding's copies in other sources (`also`), in that order. */
const withCopies = (u: UpstreamResult): UpstreamResult[] => [u, ...(u.also ?? [])];
/** One source update in a sentence: `securityhub: updated: workflow set to RESOLVED on …`. */
const said = (u: UpstreamResult): string => `${u.source}: ${u.outcome}: ${u.detail}`;

/** A source update of one finding, as the verify record keeps it (`findingKey`: since 2026-12-08). */
type FindingUpstream = UpstreamResult & { findingKey?: string };

type UpstreamEntry = CaseVerification['upstream'][number];

/** A source update that was made and refused (`failed: AccessDenied …`): owed still. */
const failedEntry = (e: UpstreamEntry): boolean => e.outcome.startsWith('failed');

/**
 * The source updates a still-verified case already has for its findings, one entry per finding and source
 * (a GuardDuty finding and its Security Hub copy are two). A re-check leaves a finding alone at every source
 * whose update was made, or deliberately not made (GuardDuty would archive it again, and each call would be
 * one more `upstream` record); one that failed is tried again, alone. A case that reopened starts over: its
 * next verification updates the sources again.
 */
function earlierUpstream(c: Case): UpstreamEntry[] {
  if (c.status !== 'verified') return [];
  return (c.verification?.upstream ?? []).filter((e) => e.findingKey && c.findingKeys.includes(e.findingKey));
}

/**
 * The case's upstream section after a verdict: the updates made now (one entry per source, the copies in
 * `also` included), and the earlier ones still standing. A finding tried again drops its earlier failures
 * (what is still owed is in this attempt's outcome); one not tried keeps them, to be tried next time.
 */
function upstreamEntries(c: Case, upstream: readonly FindingUpstream[], at: string): CaseVerification['upstream'] {
  const fresh = upstream.flatMap((u) =>
    withCopies(u).map((x) => ({
      source: x.source,
      ...(u.findingKey !== undefined ? { findingKey: u.findingKey } : {}),
      outcome: `${x.outcome}: ${x.detail}`,
      at,
    })),
  );
  const tried = new Set(upstream.map((u) => u.findingKey));
  const made = new Set(fresh.map((e) => `${e.findingKey}\n${e.source}`));
  const standing = earlierUpstream(c).filter(
    (e) => !made.has(`${e.findingKey}\n${e.source}`) && !(tried.has(e.findingKey) && failedEntry(e)),
  );
  return [...standing, ...fresh];
}

/**
 * Marks each still-active finding resolved at its sources, except where a still-verified case already
 * updated it ({@link earlierUpstream}): a finding whose every earlier update stands is left alone, one with
 * a failed update has only the sources not yet updated tried again. Each attempt is an evidence record of
 * what was tried in it.
 */
async function markUpstream(
  deps: VerifyDeps,
  c: Case,
  findings: Finding[],
  key: string,
  at: string,
): Promise<FindingUpstream[]> {
  const results: FindingUpstream[] = [];
  const chain = { store: deps.store, evidence: deps.evidence, clock: deps.clock };
  const earlier = earlierUpstream(c);
  for (const f of findings) {
    const mine = earlier.filter((e) => e.findingKey === f.key);
    if (mine.length > 0 && !mine.some(failedEntry)) continue;
    const done = mine.flatMap((e) => {
      const source = SourceSchema.safeParse(e.source);
      return source.success && !failedEntry(e) ? [source.data] : [];
    });
    let r: UpstreamResult;
    if (!deps.policy.upstream.enabled) {
      // What is owed stays owed (its failed entry kept) until updates are enabled again.
      if (done.length > 0) continue;
      r = {
        source: f.source,
        outcome: 'not-updated',
        api: null,
        requestId: null,
        detail: 'upstream updates disabled by policy',
      };
    } else if (f.status === 'resolved' && !done.includes(f.source)) {
      r = {
        source: f.source,
        outcome: 'not-updated',
        api: null,
        requestId: null,
        detail: `already resolved at the source (${f.statusReason ?? 'resolved'})`,
      };
    } else {
      try {
        r = await deps.upstream.markResolved(
          f,
          `${deps.policy.upstream.note} closeloop case ${shortHash(c.key)}.`,
          c.sources,
          done,
        );
      } catch (e) {
        r = { source: f.source, outcome: 'failed', api: null, requestId: null, detail: errorMessage(e) };
      }
    }
    results.push({ ...r, findingKey: f.key });
    await recordEvidence(
      chain,
      {
        caseKey: c.key,
        ...caseFields(c),
        step: 'upstream',
        actor: actorFrom(VERIFIER),
        eventId: null,
        at,
        summary: withCopies(r).map(said).join('; '),
        calls: withCopies(r).flatMap((u) =>
          u.api ? [{ api: u.api, requestId: u.requestId, outcome: u.outcome }] : [],
        ),
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
  /** Cases due when the run started: closed cases in the window and inconclusive verdicts due a re-check. */
  due: number;
  /** Closed cases re-read (the verdict counts below cover these and `rechecked`). */
  checked: number;
  /** Pending verifications re-checked after an inconclusive verdict (policy `recheckInconclusive`). */
  rechecked: number;
  holding: number;
  reopened: number;
  inconclusive: number;
  /** Re-reads handed to a spoke; their verdicts follow with the answers. */
  pending: number;
  /** Due cases whose re-check threw (logged): each keeps its last check and comes first in the next run. */
  errors: number;
  /**
   * Due cases another run or stage checked or changed before this run reached them (an overlapping
   * schedule, a verification or reopen in between): left to what happened to them.
   */
  overtaken: number;
  /** Due cases not reached before `until`: the next run starts with them (they were checked longest ago). */
  remaining: number;
  /**
   * Kept events published by this run: those of cases an earlier run wrote but did not publish (it failed to,
   * or died first), and those of remote answers whose process died before publishing.
   */
  republished: number;
  /**
   * Verified cases whose ticket closeloop never recorded closed ({@link closeOwed}): a `case.verified` for
   * their closure was published again, so the ticket stage closes the ticket.
   */
  reconciled: number;
  /** Remote re-reads without an answer in the window: asked again, or given up as inconclusive. */
  remote: { resent: number; expired: number };
  /** The follow-up events to publish; empty when they went to `options.publish` as they came. */
  events: PipelineEvent[];
}

export interface ReverifyOptions {
  /**
   * Epoch ms (by `deps.clock`) after which no further case is started: a function's time budget. A case is
   * not started either when the longest one of this run would not fit any more. The rest is `remaining`.
   */
  until?: number;
  /**
   * Takes each case's follow-up events as soon as they are known, so a run the platform stops part-way
   * (a re-read slower than the margin) has published what it found before; they are not returned then.
   * Each verdict's events are kept ({@link UNPUBLISHED}) ahead of its case write until this returns, and
   * the run first publishes what earlier runs kept. Without it, what a run killed part-way found is lost.
   */
  publish?: (events: readonly PipelineEvent[]) => Promise<void>;
  /**
   * A closed case checked less than this long before `now` is not due (default 0: every case in the
   * window). Shorter than the schedule's period, it keeps a repeated delivery of the schedule, or a run
   * right after another, from re-reading what was just checked.
   */
  minAgeMs?: number;
}

/** A case the sweep re-checks, and since when it waits (its last verdict, or its closing). */
interface DueCase {
  key: string;
  lastChecked: string;
}

/**
 * Scheduled re-verification: remote re-reads left unanswered are asked again (or given up, see
 * {@link retryRemoteVerifications}); every case verified within `policy.reverifyDays` of `now` is re-read;
 * a fix that no longer holds reopens the case (and, through `case.reopened`, its ticket). A case left
 * pending-verification by an inconclusive verdict is verified again when its next re-check is due
 * ({@link recheckDue}). A verified case whose ticket close was never recorded, from the same scan, has its
 * close sent again ({@link closeOwed}, {@link reconcileEvent}): a safety net for a `case.verified` lost in a
 * way nothing else catches. The caller publishes the returned events (or passes `options.publish`).
 *
 * The cases are taken oldest last check first, so a run stopped by `options.until` leaves the ones it did
 * not reach at the front of the next run (each verdict moves its case to the back): consecutive runs cover
 * every due case before any is checked twice, with no cursor to keep. A re-check's idempotency key is the
 * case and its last check: a second run reaching the same case (an overlapping or repeated schedule, or
 * the run after one stopped between the record and the case write) finds the record and finishes from it
 * (same case write, same event ids) instead of re-reading and acting again.
 *
 * @example
 * const r = await reverifyRecent(deps, new Date(), { until: Date.now() + 60_000 }); await bus.publish(r.events);
 */
export async function reverifyRecent(
  deps: VerifyDeps,
  now: Date,
  options: ReverifyOptions = {},
): Promise<ReverifyResult> {
  const { until, publish } = options;
  const result: ReverifyResult = {
    due: 0,
    checked: 0,
    rechecked: 0,
    holding: 0,
    reopened: 0,
    inconclusive: 0,
    pending: 0,
    errors: 0,
    overtaken: 0,
    remaining: 0,
    republished: 0,
    reconciled: 0,
    remote: { resent: 0, expired: 0 },
    events: [],
  };
  // With `publish`, every verdict's events are kept ahead of its case write and removed once published: the
  // cases are written before the publish, so a run killed in between, or a publish that fails, leaves the
  // next run finding them checked, never announcing this again (the ticket of a regression never reopened).
  // Without it the caller takes the events, and their publishing, at the end of the run.
  const keep = publish !== undefined;
  const emit = async (events: readonly PipelineEvent[]) => {
    if (events.length === 0) return;
    if (!publish) {
      result.events.push(...events);
      return;
    }
    try {
      await publish(events);
    } catch (e) {
      // Kept (ahead of the case write), and published first by the next run.
      result.errors++;
      deps.log.warn('reverify: publishing failed; kept for the next run', {
        caseKey: events[0]?.caseKey,
        error: errorMessage(e),
      });
      return;
    }
    await releaseKept(deps, events);
  };
  // What an earlier run kept goes first. A case whose kept events are still not out is not reconciled: they
  // are its announcement (a second one, under another id, would close the ticket twice).
  const stillKept = publish ? await publishKept(deps, publish, result, until) : new Set<string>();
  const swept = await retryRemoteVerifications(deps, now, { ...(until !== undefined ? { until } : {}), keep });
  result.remote = { resent: swept.resent, expired: swept.expired };
  await emit(swept.events);

  const minAgeMs = options.minAgeMs ?? 0;
  const { due, unclosed } = await dueCases(deps, now, minAgeMs);
  result.due = due.length;
  // Before the re-checks: the cases as the scan read them, so a re-check's reopen follows the close.
  for (const c of unclosed) {
    if (until !== undefined && deps.clock.now().getTime() >= until) break;
    if (stillKept.has(c.key)) continue;
    const event = reconcileEvent(c);
    if (!publish) {
      result.events.push(event);
      result.reconciled++;
      continue;
    }
    try {
      await publish([event]);
      result.reconciled++;
    } catch (e) {
      // Nothing is kept or written: the next run finds the ticket still open and sends the same event.
      result.errors++;
      deps.log.warn('reverify: publishing the undelivered close failed; the next run sends it again', {
        caseKey: c.key,
        error: errorMessage(e),
      });
    }
  }
  let longest = 0;
  for (const [i, d] of due.entries()) {
    const started = deps.clock.now().getTime();
    if (until !== undefined && started + longest >= until) {
      result.remaining = due.length - i;
      break;
    }
    // Read again: the list may be minutes old, and another run may have checked the case since.
    const c = (await getDoc(deps.store, CASES, d.key, CaseSchema))?.value;
    const kind = c ? await dueKind(deps, c, now, minAgeMs) : undefined;
    if (!c || kind === undefined || lastCheckedOf(c) !== d.lastChecked) {
      result.overtaken++;
      continue;
    }
    let out: VerifyOutcome;
    try {
      out = await verifyCase(
        deps,
        {
          caseKey: c.key,
          trigger: 'scheduled',
          requestedBy: 'closeloop:schedule',
          eventId: `reverify:${c.key}:${d.lastChecked}`,
        },
        c, // just read to see it is still due: not read again
        { keep },
      );
    } catch (e) {
      // One case that cannot be re-checked must not stop the others (it would come first every run).
      result.errors++;
      deps.log.warn('reverify: re-check failed; the case waits for the next run', {
        caseKey: c.key,
        error: errorMessage(e),
      });
      continue;
    } finally {
      longest = Math.max(longest, deps.clock.now().getTime() - started);
    }
    if (kind === 'recheck') result.rechecked++;
    else result.checked++;
    if (out.verdict === 'verified') result.holding++;
    else if (out.events.some((e) => e.type === 'case.reopened')) result.reopened++;
    else if (out.verdict === 'inconclusive') result.inconclusive++;
    else if (out.verdict === 'pending') result.pending++;
    await emit(out.events);
  }
  return result;
}

/**
 * Publishes what verifications kept ({@link UNPUBLISHED}), oldest first, and removes each once published.
 * Each is finished from its evidence record first, as a redelivery would be: a run that died between keeping
 * the events and writing the case left the case unwritten (a remote answer's claim is gone, so nothing else
 * writes it), and the events must not announce what the case does not say yet. One whose record cannot be
 * read stays kept (an error each run): a ticket is not closed on proof that cannot be found. A publish that
 * fails stops the rest (the bus is down): they wait for the next run, in the same order. Returns the keys of
 * the cases whose events stay kept.
 */
async function publishKept(
  deps: VerifyDeps,
  publish: (events: readonly PipelineEvent[]) => Promise<void>,
  result: ReverifyResult,
  until: number | undefined,
): Promise<Set<string>> {
  const kept = await keptOldestFirst(deps, UNPUBLISHED);
  const published = new Set<string>();
  // The cases with events still kept (not reached, not finished, or not published).
  const left = () => new Set(kept.filter((k) => !published.has(k.id)).flatMap((k) => k.events.map((e) => e.caseKey)));
  for (const k of kept) {
    if (until !== undefined && deps.clock.now().getTime() >= until) return left();
    try {
      await finishKept(deps, k.events);
    } catch (e) {
      result.errors++;
      deps.log.error('reverify: kept events not published: their verification cannot be finished', {
        id: k.id,
        caseKey: k.events[0]?.caseKey,
        error: errorMessage(e),
      });
      continue;
    }
    try {
      await publish(k.events);
    } catch (e) {
      result.errors++;
      deps.log.warn('reverify: publishing kept events failed again', { id: k.id, error: errorMessage(e) });
      return left();
    }
    await releaseKept(deps, k.events);
    result.republished += k.events.length;
    published.add(k.id);
  }
  return left();
}

/**
 * Finishes the verification whose events were kept from its evidence record (named by the events'
 * `evidenceHash`): the case write is made unless the case already holds that verdict or a later one.
 */
async function finishKept(deps: VerifyDeps, events: readonly PipelineEvent[]): Promise<void> {
  const hash = events[0]?.detail?.evidenceHash;
  if (typeof hash !== 'string') throw new Error('the kept events name no evidence record');
  const parsed = EvidenceRecordSchema.safeParse((await deps.evidence.get(hash))?.raw);
  if (!parsed.success) throw new Error(`evidence record ${hash} not found or unreadable`);
  const record = parsed.data;
  const c = (await getDoc(deps.store, CASES, record.caseKey, CaseSchema))?.value;
  if (!c) return;
  const trigger = VerifyTriggerSchema.safeParse(record.detail.trigger);
  await resumeVerification(
    deps,
    c,
    {
      caseKey: c.key,
      trigger: trigger.success ? trigger.data : 'scheduled',
      requestedBy: typeof record.detail.requestedBy === 'string' ? record.detail.requestedBy : VERIFIER,
      eventId: record.eventId ?? hash,
    },
    record,
  );
}

/**
 * Every due case, oldest last check first (then by key, for a stable order among equals), and, from the same
 * scan, the verified cases whose ticket close was never recorded ({@link closeOwed}).
 */
async function dueCases(deps: VerifyDeps, now: Date, minAgeMs: number): Promise<{ due: DueCase[]; unclosed: Case[] }> {
  const due: DueCase[] = [];
  const unclosed: Case[] = [];
  let after: string | undefined;
  for (;;) {
    const page = await deps.store.list(CASES, { limit: 500, ...(after !== undefined ? { after } : {}) });
    if (page.length === 0) break;
    after = page.at(-1)?.id;
    for (const doc of page) {
      const parsed = CaseSchema.safeParse(doc.value);
      if (!parsed.success) continue;
      if (await dueKind(deps, parsed.data, now, minAgeMs))
        due.push({ key: parsed.data.key, lastChecked: lastCheckedOf(parsed.data) });
      if (closeOwed(parsed.data, now)) unclosed.push(parsed.data);
    }
  }
  due.sort(
    (a, b) => Date.parse(a.lastChecked) - Date.parse(b.lastChecked) || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0),
  );
  return { due, unclosed };
}

/**
 * How long after a case's verified closure its ticket may still be open without anything being lost: the
 * closure's `case.verified` may still be on its way (a delivery retried after a case write that had not
 * landed, a verify request back after its visibility timeout, events kept until the next publish). Older
 * than this, a ticket closeloop never recorded closed is a close that was not delivered.
 */
export const CLOSE_GRACE_MS = 3_600_000;

/** When the case's verified closure was reached (a re-check that holds keeps `closedAt`). */
const closureOf = (c: Case): string | undefined => c.closedAt ?? c.verification?.at;

/**
 * Whether the case is closed on a verified verdict, more than {@link CLOSE_GRACE_MS} ago, while its ticket is
 * recorded neither closed (`done`: the ticket stage marks it before it transitions) nor reopened (a person, or
 * a regression, reopened it: never closed behind their back). No ticket: nothing to close.
 */
function closeOwed(c: Case, now: Date): boolean {
  const closure = closureOf(c);
  return (
    c.status === 'verified' &&
    c.verification?.verdict === 'verified' &&
    c.ticket !== null &&
    c.ticket.status !== 'done' &&
    c.ticket.status !== 'reopened' &&
    closure !== undefined &&
    Date.parse(closure) <= now.getTime() - CLOSE_GRACE_MS
  );
}

/**
 * The `case.verified` a closure whose close never reached the ticket should have had. Its id is the case and
 * its closure (`closedAt`, kept by re-checks that hold; `verification.at` moves with each): every sweep until
 * the ticket stage handles it sends the same event, which closes the ticket once (its once-key is the id).
 * The verify record's hash is not on the case: `evidenceHead` is its latest record (the verify record, or one
 * after it in the chain), and the summary says so.
 */
function reconcileEvent(c: Case): PipelineEvent {
  const closure = closureOf(c) ?? c.updatedAt;
  const head = c.evidenceHead
    ? ` Evidence record ${c.evidenceHead} is the case's latest record, not necessarily the verify record; its chain leads to it.`
    : '';
  return {
    id: `reconcile:${shortHash(`${c.key}\n${closure}`, 32)}`,
    type: 'case.verified',
    caseKey: c.key,
    // The closure it announces, not this sweep (reports read the first close from the event log).
    at: closure,
    verdict: 'verified',
    detail: {
      ...(c.evidenceHead ? { evidenceHash: c.evidenceHead } : {}),
      evidenceSummary: `Reconciliation: verified on ${closure} (${c.verification?.reason ?? 'see the evidence record'}), but the close of this ticket was not delivered; closed now by the scheduled re-verification.${head}`,
      trigger: 'reconcile',
      [RECONCILED_CLOSE]: true,
    },
  };
}

/**
 * Why a case is due now: `recheck` (an inconclusive verdict whose next re-check is due), `closed` (verified
 * within `policy.reverifyDays`, last checked at least `minAgeMs` ago), or undefined.
 */
async function dueKind(
  deps: VerifyDeps,
  c: Case,
  now: Date,
  minAgeMs: number,
): Promise<'recheck' | 'closed' | undefined> {
  if (await recheckDue(deps, c, now)) return 'recheck';
  const since = now.getTime() - deps.policy.reverifyDays * 86_400_000;
  const closed = c.status === 'verified' && c.closedAt && Date.parse(c.closedAt) >= since;
  const aged = minAgeMs <= 0 || Date.parse(lastCheckedOf(c)) <= now.getTime() - minAgeMs;
  return closed && aged ? 'closed' : undefined;
}

/** When the case was last checked: its last verdict (a re-check that holds moves it), else its closing. */
const lastCheckedOf = (c: Case): string => c.verification?.at ?? c.closedAt ?? c.updatedAt;

/**
 * Whether a case waits on an inconclusive verdict and its next re-check is due: fewer than
 * `recheckInconclusive.times` made, `afterMinutes × 2^(made)` passed since the last verdict, and no remote
 * re-read outstanding (its answer, or {@link retryRemoteVerifications}, concludes that one).
 */
async function recheckDue(deps: VerifyDeps, c: Case, now: Date): Promise<boolean> {
  const v = c.verification;
  if (c.status !== PENDING || v?.verdict !== 'inconclusive') return false;
  const made = v.rechecks ?? 0;
  const { times, afterMinutes } = deps.policy.recheckInconclusive;
  if (made >= times || now.getTime() < Date.parse(v.at) + afterMinutes * 60_000 * 2 ** made) return false;
  return !(await deps.store.get(REMOTE_VERIFY_COLLECTION, c.key));
}

// ---- remote re-reads: the AWS hub asks the Azure/GCP spoke to run the action's verify ----

/** One outstanding remote re-read per case (document id = case key). */
export const REMOTE_VERIFY_COLLECTION = 'verify-remote';

/** What the hub remembers about a re-read it asked a spoke for, to match and bound the answers. */
export const PendingRemoteVerifySchema = z.object({
  caseKey: z.string(),
  /** The request the answer must name; an answer to an older request is stale. */
  requestId: z.string(),
  /** Travels as the request's `applyToken`; the answer must carry it back. */
  token: z.string(),
  /** The verification's idempotency key (one per claim of fixedness). */
  key: z.string(),
  trigger: VerifyTriggerSchema,
  requestedBy: z.string(),
  eventId: z.string(),
  provider: ProviderSchema,
  action: z.string(),
  target: z.unknown(),
  /** Requests sent for this verification so far (1-based); bounded by the policy's `attempts`. */
  attempt: z.number().int().min(1),
  sentAt: TimestampSchema,
  /** One per answer or unanswered request, for the evidence record. */
  calls: z.array(EvidenceCallSchema),
});
export type PendingRemoteVerify = z.infer<typeof PendingRemoteVerifySchema>;

/** What a spoke is asked to re-read: the action (its verify) and the target. */
interface RemoteRead {
  actionId: string;
  target: unknown;
}

/** The action and target to re-read remotely, when this case's provider is re-read by a spoke. */
function remoteReadOf(deps: VerifyDeps, c: Case, findings: readonly Finding[]): RemoteRead | undefined {
  const actionId = fixActionOf(c);
  if (!deps.remote?.runs(c.provider) || !actionId) return undefined;
  const action = deps.actions.get(actionId);
  if (!action) return undefined;
  const target = targetFor(action, c, findings);
  return target === undefined ? undefined : { actionId: action.id, target };
}

/**
 * Asks the spoke for a re-read. The pending document is written first (so an answer can never arrive
 * unmatched), conditional on no live request for the same verification: a duplicate delivery of the
 * triggering event sends nothing more. A failed hand-over removes the document again and throws, so the
 * triggering message is retried (and dead-lettered) instead of silently passing.
 */
async function requestRemoteVerification(
  deps: VerifyDeps,
  c: Case,
  req: VerifyRequest,
  key: string,
  remote: RemoteRead,
  attempt: number,
  calls: EvidenceCall[],
  replacing?: string,
): Promise<VerifyOutcome> {
  const executor = deps.remote;
  if (!executor) throw new Error('requestRemoteVerification needs deps.remote');
  const now = deps.clock.now();
  const windowMs = deps.policy.remoteWindowSeconds * 1000;
  const token = shortHash(`${key}|${attempt}|${now.toISOString()}|${Math.random()}`, 32);
  const pending: PendingRemoteVerify = {
    caseKey: c.key,
    requestId: `vq-${shortHash(`${c.key}|${token}`)}`,
    token,
    key,
    trigger: req.trigger,
    requestedBy: req.requestedBy,
    eventId: req.eventId,
    provider: c.provider,
    action: remote.actionId,
    target: remote.target,
    attempt,
    sentAt: now.toISOString(),
    calls,
  };
  const claim = await mutateDoc(deps.store, REMOTE_VERIFY_COLLECTION, c.key, PendingRemoteVerifySchema, (cur) => {
    if (replacing !== undefined) return cur?.requestId === replacing ? pending : undefined;
    const live = cur && cur.key === key && Date.parse(cur.sentAt) + windowMs > now.getTime();
    return live ? undefined : pending;
  });
  if (!claim.changed) return { verdict: 'duplicate', events: [] };
  try {
    await executor.dispatch({
      requestId: pending.requestId,
      caseKey: c.key,
      provider: c.provider,
      action: remote.actionId,
      op: 'verify',
      target: remote.target,
      applyToken: token,
      actor: VERIFIER,
    });
  } catch (e) {
    await deps.store.delete(REMOTE_VERIFY_COLLECTION, c.key, { expectVersion: claim.version });
    throw e;
  }
  const reason = `re-read requested from the ${c.provider} spoke (${pending.requestId}, request ${attempt} of ${deps.policy.attempts})`;
  await mutateDoc(deps.store, CASES, c.key, CaseSchema, (cur) =>
    // A closed case stays closed while it is re-checked; anything else waits for the spoke's answer.
    cur && cur.status !== 'verified' && cur.statusReason !== reason
      ? { ...cur, status: PENDING, statusReason: reason }
      : undefined,
  );
  deps.log.info('verify: remote re-read requested', { caseKey: c.key, requestId: pending.requestId, attempt });
  return { verdict: 'pending', events: [] };
}

/** The verdict a spoke's answer gives, or `retry` while requests remain. */
function assessRemote(
  deps: VerifyDeps,
  pending: PendingRemoteVerify,
  result: RemoteResult,
  calls: EvidenceCall[],
): Assessment | 'retry' {
  const attempts = pending.attempt;
  const more = attempts < deps.policy.attempts;
  const observed = result.observed !== undefined ? { observed: result.observed } : {};
  switch (result.outcome) {
    case 'verified':
      return { verdict: 'verified', basis: 're-read', reason: result.reason, ...observed, attempts, calls };
    case 'not-verified':
      // Not holding yet may still be propagating (as for local re-reads): only the last answer decides.
      if (more) return 'retry';
      return {
        verdict: 'failed',
        basis: 're-read',
        reason: `${result.reason} (after ${attempts} re-reads by the ${pending.provider} spoke)`,
        ...observed,
        attempts,
        calls,
      };
    case 'failed':
      if (more) return 'retry';
      return {
        verdict: 'inconclusive',
        basis: 'none',
        reason: `no verdict after ${attempts} re-reads by the ${pending.provider} spoke: ${result.reason}`,
        attempts,
        calls,
      };
    default:
      // blocked (target unusable, action unknown to the spoke) or an outcome that is no verify answer.
      return {
        verdict: 'inconclusive',
        basis: 'none',
        reason: `the ${pending.provider} spoke could not re-read: ${result.reason}`,
        attempts,
        calls,
      };
  }
}

/**
 * Records a spoke's answer to a remote re-read (`Spoke Remediation Result` with `op: 'verify'`). Counts
 * only when it names the outstanding request and carries its token: a duplicate, late or forged answer
 * changes nothing. A fix that does not hold yet is asked again (with the policy's backoff) until
 * `attempts` requests were answered; then the verdict is recorded exactly like a local re-read's.
 *
 * With `options.publish`, the verdict's events are kept ahead of the case write and published through it
 * (`events` then says what was published): the answer is claimed before the verdict is recorded, so its
 * redelivery after a process that died later finds it a duplicate, and only the next sweep publishes what
 * was kept ({@link reverifyRecent}). A publish that fails throws, and the events stay kept for that sweep.
 *
 * @example
 * await recordRemoteVerification(verifyDeps, message.result, { publish: (events) => bus.publish(events) });
 */
export async function recordRemoteVerification(
  deps: VerifyDeps,
  result: RemoteResult,
  options: { publish?: (events: readonly PipelineEvent[]) => Promise<void> } = {},
): Promise<VerifyOutcome> {
  if (result.op !== 'verify') return { verdict: 'skipped', events: [] };
  const doc = await getDoc(deps.store, REMOTE_VERIFY_COLLECTION, result.caseKey, PendingRemoteVerifySchema);
  const pending = doc?.value;
  if (!doc || !pending || pending.requestId !== result.requestId || pending.token !== result.applyToken) {
    deps.log.warn('verify: remote answer matches no outstanding request', {
      caseKey: result.caseKey,
      requestId: result.requestId,
    });
    return { verdict: 'duplicate', events: [] };
  }
  const call: EvidenceCall = {
    api: `${pending.action}:verify@${pending.provider}-spoke`,
    requestId: result.requestId,
    outcome: result.outcome === 'verified' ? 'holds' : `${result.outcome}: ${result.reason}`,
  };
  const calls = [...pending.calls, call];
  const c = (await getDoc(deps.store, CASES, result.caseKey, CaseSchema))?.value;
  if (!c) {
    await deps.store.delete(REMOTE_VERIFY_COLLECTION, result.caseKey, { expectVersion: doc.version });
    return { verdict: 'missing', events: [] };
  }
  const req: VerifyRequest = {
    caseKey: c.key,
    trigger: pending.trigger,
    requestedBy: pending.requestedBy,
    eventId: pending.eventId,
  };
  const assessment = assessRemote(deps, pending, result, calls);
  if (assessment === 'retry') {
    await sleepOf(deps)(delayFor(deps.policy, pending.attempt));
    return requestRemoteRetry(deps, c, req, pending, calls);
  }
  // Recorded before the request is removed: a process that dies anywhere before the removal leaves the request
  // for the answer's redelivery, which finishes from the record (same key: pending.key) and announces the same
  // events. Removed first, as a claim, the redelivery found nothing to answer: a death before the events were
  // kept lost the verdict, and the case waited in pending-verification for good. Two deliveries at once, or
  // the sweep giving the request up meanwhile, record one verdict: the first record under the key stands.
  const findings = await loadFindings(deps.store, c.findingKeys);
  const { publish } = options;
  const out = await concludeVerification(
    deps,
    c,
    req,
    pending.key,
    findings,
    {
      ...assessment,
      ...(assessment.observed === undefined && result.observed !== undefined ? { observed: result.observed } : {}),
    },
    { keep: publish !== undefined },
  );
  if (publish && out.events.length > 0) {
    await publish(out.events);
    await releaseKept(deps, out.events);
  }
  // A request replaced meanwhile (the sweep asked again) stays: its answer finds this verdict on record.
  await deps.store.delete(REMOTE_VERIFY_COLLECTION, c.key, { expectVersion: doc.version });
  return out;
}

/** Sends the next request of a remote verification, replacing the outstanding one. */
async function requestRemoteRetry(
  deps: VerifyDeps,
  c: Case,
  req: VerifyRequest,
  pending: PendingRemoteVerify,
  calls: EvidenceCall[],
): Promise<VerifyOutcome> {
  const remote = { actionId: pending.action, target: pending.target };
  return requestRemoteVerification(deps, c, req, pending.key, remote, pending.attempt + 1, calls, pending.requestId);
}

export interface RemoteRetryResult {
  /** Requests sent again because no answer came within `remoteWindowSeconds`. */
  resent: number;
  /** Verifications given up after `attempts` unanswered requests (verdict inconclusive). */
  expired: number;
  events: PipelineEvent[];
}

/**
 * The scheduled sweep over remote re-reads that got no answer within the policy's window: each is asked
 * again until `attempts` requests went unanswered, then recorded as inconclusive (the case stays
 * pending-verification: never a silent pass). Called by {@link reverifyRecent}.
 */
export async function retryRemoteVerifications(
  deps: VerifyDeps,
  now: Date,
  options: {
    /**
     * Epoch ms (by `deps.clock`) after which no further request is taken; the rest waits for the next run
     * (each one taken is sent again with a new time, or removed, so the next run starts past them).
     */
    until?: number;
    /**
     * Keep the events of the verifications given up ({@link KeepOptions}): the caller publishes them, then
     * removes them ({@link reverifyRecent} with `publish`). Their request is removed before the verdict is
     * recorded, so nothing else would announce it.
     */
    keep?: boolean;
  } = {},
): Promise<RemoteRetryResult> {
  const out: RemoteRetryResult = { resent: 0, expired: 0, events: [] };
  const windowMs = deps.policy.remoteWindowSeconds * 1000;
  let after: string | undefined;
  for (;;) {
    const page = await deps.store.list(REMOTE_VERIFY_COLLECTION, { limit: 100, ...(after ? { after } : {}) });
    if (page.length === 0) break;
    after = page.at(-1)?.id;
    for (const doc of page) {
      if (options.until !== undefined && deps.clock.now().getTime() >= options.until) return out;
      const parsed = PendingRemoteVerifySchema.safeParse(doc.value);
      if (!parsed.success || Date.parse(parsed.data.sentAt) + windowMs > now.getTime()) continue;
      const pending = parsed.data;
      const unanswered: EvidenceCall = {
        api: `${pending.action}:verify@${pending.provider}-spoke`,
        requestId: pending.requestId,
        outcome: `no answer within ${deps.policy.remoteWindowSeconds}s`,
      };
      const calls = [...pending.calls, unanswered];
      const c = (await getDoc(deps.store, CASES, pending.caseKey, CaseSchema))?.value;
      const req: VerifyRequest = {
        caseKey: pending.caseKey,
        trigger: pending.trigger,
        requestedBy: pending.requestedBy,
        eventId: pending.eventId,
      };
      if (c && pending.attempt < deps.policy.attempts && deps.remote?.runs(pending.provider)) {
        const r = await requestRemoteRetry(deps, c, req, pending, calls);
        if (r.verdict === 'pending') out.resent++;
        continue;
      }
      if (!(await deps.store.delete(REMOTE_VERIFY_COLLECTION, pending.caseKey, { expectVersion: doc.version })))
        continue;
      if (!c) continue;
      out.expired++;
      const findings = await loadFindings(deps.store, c.findingKeys);
      const verdict = await concludeVerification(
        deps,
        c,
        req,
        pending.key,
        findings,
        {
          verdict: 'inconclusive',
          basis: 'none',
          reason: `the ${pending.provider} spoke did not answer ${pending.attempt} re-read request(s) within ${deps.policy.remoteWindowSeconds}s each`,
          attempts: pending.attempt,
          calls,
        },
        { keep: options.keep ?? false },
      );
      out.events.push(...verdict.events);
    }
  }
  return out;
}
