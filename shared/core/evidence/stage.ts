/**
 * The evidence stage: one record per pipeline step, written from the event and the case.
 * Idempotent per event id (a duplicate delivery returns the first record). Verification records are
 * written by the verify stage itself (it needs their hash for `case.verified`), so `case.verified` is
 * not recorded again here.
 */
import { type Case, verdictOf } from '../model/case.js';
import { type Decision, DecisionSchema, type ExceptionRef } from '../model/decision.js';
import type { PipelineEvent, PipelineEventType } from '../model/events.js';
import { readAnnouncedCase } from '../pipeline/announced.js';
import type { Stage } from '../pipeline/stage.js';
import type { Clock, DocStore, Logger } from '../ports.js';
import { shortHash } from '../util/hash.js';
import { caseFields, recordEvidence } from './case-link.js';
import type { EvidenceStore } from './ports.js';
import { actorFrom, type EvidenceCall, type EvidenceDraft, type EvidenceStep } from './record.js';

export interface EvidenceStageDeps {
  store: DocStore;
  evidence: EvidenceStore;
  clock: Clock;
  log: Logger;
}

const ALL_TYPES: readonly PipelineEventType[] = [
  'case.decided',
  'case.remediation',
  'case.verify-requested',
  'case.verified',
  'case.reopened',
  'case.exception',
];

/** Remediation states → evidence step. Gate outcomes (held, blocked) are part of planning. */
const REMEDIATION_STEP: Record<string, EvidenceStep> = {
  planned: 'plan',
  'awaiting-approval': 'plan',
  held: 'plan',
  blocked: 'plan',
  noop: 'plan',
  none: 'plan',
  approved: 'approval',
  'approval-refused': 'approval',
  applying: 'apply',
  applied: 'apply',
  failed: 'apply',
  'rolled-back': 'rollback',
};

/**
 * Creates the stage. Wire it into the bus before the other stages, so each step is recorded before
 * the next stage acts on it and the case's story reads in order (the verify stage also records the
 * event it reacts to first, so its records never precede their cause).
 *
 * @example
 * const bus = new InProcessBus([createEvidenceStage({ store, evidence, clock, log }), remediate, tickets, verify], log);
 */
export function createEvidenceStage(deps: EvidenceStageDeps): Stage {
  return {
    name: 'evidence',
    handles: ALL_TYPES,
    async handle(event) {
      await recordEventEvidence(deps, event);
      return [];
    },
  };
}

/**
 * Records what one event calls for, idempotently (the same keys as the stage). Stages that write
 * records of their own in reaction to an event (verify) call it first, so the event's own step precedes
 * their records in the case's story whatever the order of the stages on the bus.
 *
 * @example await recordEventEvidence({ store, evidence, clock, log }, event);
 */
export async function recordEventEvidence(deps: EvidenceStageDeps, event: PipelineEvent): Promise<void> {
  // Throws (retryable) while the state the event announces is not written yet: a record is written once
  // (idempotent on its key), so one made from the state before it would keep that state's owner and
  // findings (or none) for good.
  const current = await readAnnouncedCase(deps.store, event);
  for (const { draft, key } of draftsFor(event, current)) {
    const { record, created } = await recordEvidence(deps, draft, key);
    deps.log.debug(created ? 'evidence recorded' : 'evidence already recorded', {
      caseKey: event.caseKey,
      step: draft.step,
      hash: record.hash,
    });
  }
}

/** A draft with the idempotency key that makes its record once-only. */
export interface KeyedDraft {
  draft: EvidenceDraft;
  key: string;
}

/**
 * Every record an event calls for, each with its idempotency key. Usually one (keyed by event id and
 * step); a decision that puts an exception into force or finds one expired also yields an `exception`
 * record, keyed by the exception itself, so the sweep's `case.decided` + `case.exception` pair and every
 * repeat of a suppressed finding record the exception once.
 *
 * @example draftsFor(event, c).map((d) => d.draft.step) // ['decision', 'exception']
 */
export function draftsFor(event: PipelineEvent, c: Case | undefined): KeyedDraft[] {
  const out: KeyedDraft[] = [];
  if (event.type === 'case.remediation' && event.state === 'applied' && !c?.remediation.approvedBy) {
    // An automatic apply plans and applies in one go: the plan gets its own record first, as it would
    // have had when waiting for approval (an approved plan was recorded then, so it is not repeated).
    const planned = draftFor({ ...event, state: 'planned' }, c);
    if (planned) out.push({ draft: { ...planned, verdict: 'planned' }, key: `${event.id}:plan` });
  }
  const main = draftFor(event, c);
  if (main) {
    const key = main.step === 'exception' ? exceptionKeyOf(main) : `${event.id}:${main.step}`;
    out.push({ draft: main, key });
  }
  if (event.type === 'case.decided') {
    const d = decisionOf(event.detail, c);
    const base = { caseKey: event.caseKey, ...caseFields(c), eventId: event.id, at: event.at, calls: [] };
    for (const draft of [
      ...(d?.exceptionExpired ? [exceptionDraft(base, d.exceptionExpired, false, 'closeloop:exceptions')] : []),
      ...(d?.exception ? [exceptionDraft(base, d.exception, true, d.exception.owner)] : []),
    ]) {
      out.push({ draft, key: exceptionKeyOf(draft) });
    }
  }
  return out;
}

/**
 * The decision the event announces (the one that was made), else the case's latest, whose verdict the case
 * keeps in its `remediation` (CaseDecisionSchema).
 */
function decisionOf(detail: Record<string, unknown> | undefined, c: Case | undefined): Decision | undefined {
  const parsed = DecisionSchema.safeParse(detail?.decision);
  if (parsed.success) return parsed.data;
  const d = c?.lastDecision;
  if (!c || !d) return undefined;
  return { caseKey: c.key, ...d, remediation: verdictOf(c.remediation) };
}

type DraftBase = Pick<EvidenceDraft, 'caseKey' | 'findingIds' | 'owner' | 'eventId' | 'at' | 'calls'>;

function exceptionDraft(base: DraftBase, x: ExceptionRef, active: boolean, actor: string): EvidenceDraft {
  return {
    ...base,
    step: 'exception',
    actor: actorFrom(actor),
    summary: active
      ? `exception ${x.id} active: ${x.justification} (accepted by ${x.owner} until ${x.expires})`
      : `exception ${x.id} no longer active: expired on ${x.expires}`,
    verdict: active ? 'risk-accepted' : 'exception-ended',
    detail: { exceptionId: x.id, active, exception: x },
  };
}

/** One exception record per case, exception, expiry and state, whichever event announces it. */
function exceptionKeyOf(draft: EvidenceDraft): string {
  const x = draft.detail.exception;
  const expires = x && typeof x === 'object' && 'expires' in x ? String(x.expires) : '';
  const id = stringOf(draft.detail.exceptionId) ?? '';
  return `exception:${shortHash(`${draft.caseKey}\n${id}\n${expires}\n${draft.verdict ?? ''}`, 32)}`;
}

/** The main record an event calls for, or undefined when the event is not a step of its own. */
export function draftFor(event: PipelineEvent, c: Case | undefined): EvidenceDraft | undefined {
  const detail = event.detail ?? {};
  const base = { caseKey: event.caseKey, ...caseFields(c), eventId: event.id, at: event.at, calls: [] };
  switch (event.type) {
    case 'case.decided': {
      // The event's decision is the one that was made; the case may already hold a later one.
      const d = decisionOf(event.detail, c);
      return {
        ...base,
        step: 'decision',
        actor: { kind: 'function', id: 'closeloop:decide' },
        summary: d
          ? `decided: action ${d.remediation.action ?? 'none'}, mode ${d.remediation.mode} (${d.remediation.reason}); ticket ${d.ticket.wanted ? 'wanted' : 'not wanted'}${d.exception ? `; suppressed by exception ${d.exception.id}` : ''}${d.verify ? '; source reports resolved: verification owed' : ''}`
          : 'decided',
        verdict: null,
        detail: {
          isNewCase: event.isNewCase,
          recurrence: event.recurrence,
          statusChanged: event.statusChanged,
          ...(c ? { status: c.status, sourceStatus: c.sourceStatus, severity: c.severity } : {}),
          ...detail,
          ...(d ? { decision: d } : {}),
        },
      };
    }
    case 'case.remediation': {
      const step = REMEDIATION_STEP[event.state] ?? 'plan';
      const r = c?.remediation;
      const action = r?.action ?? stringOf(detail.action) ?? 'none';
      const error = stringOf(detail.error) ?? r?.error;
      return {
        ...base,
        step,
        actor: actorFrom(event.actor),
        summary: `${step}: ${action} ${event.state}${error ? ` (${error})` : ''}`,
        calls: callsFrom(detail, step, `${action}:${step}`),
        ...(detail.before !== undefined
          ? { before: detail.before }
          : r?.before !== undefined
            ? { before: r.before }
            : {}),
        ...(detail.after !== undefined ? { after: detail.after } : {}),
        verdict: event.state,
        detail: { state: event.state, action, ...(r?.plan ? { plan: r.plan } : {}), ...detail },
      };
    }
    case 'case.exception': {
      const x = c?.exception?.id === event.exceptionId ? c.exception : undefined;
      const expired = c?.lastDecision?.exceptionExpired;
      const ref =
        x ??
        (expired?.id === event.exceptionId ? expired : undefined) ??
        ({
          id: event.exceptionId,
          owner: stringOf(detail.owner) ?? 'unknown',
          justification: stringOf(detail.justification) ?? 'not recorded',
          expires: stringOf(detail.expires) ?? '',
        } satisfies ExceptionRef);
      const draft = exceptionDraft(base, ref, event.active, event.active ? ref.owner : 'closeloop:exceptions');
      return { ...draft, detail: { ...draft.detail, ...detail } };
    }
    case 'case.reopened':
      return {
        ...base,
        step: 'reopen',
        actor: actorFrom(event.actor),
        summary: `reopened: ${event.reason}`,
        verdict: 'reopened',
        detail: { reason: event.reason, ...detail },
      };
    case 'case.verify-requested':
      // Only a person closing the ticket is a step of its own; other requests end in a verify record.
      if (event.trigger !== 'ticket-closed') return undefined;
      return {
        ...base,
        step: 'ticket',
        actor: actorFrom(event.actor),
        summary: `ticket${c?.ticket ? ` ${c.ticket.key}` : ''} closed by ${event.actor}: verification requested`,
        verdict: null,
        detail: { trigger: event.trigger, ...(c?.ticket ? { ticket: c.ticket.key } : {}), ...detail },
      };
    case 'case.verified':
      return undefined;
  }
}

function stringOf(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

/** API calls from a remediation event: plan steps (not yet made) or request ids (made). */
function callsFrom(detail: Record<string, unknown>, step: EvidenceStep, fallbackApi: string): EvidenceCall[] {
  const ids = Array.isArray(detail.requestIds) ? detail.requestIds.filter((x) => typeof x === 'string') : [];
  const steps = planSteps(detail.plan);
  if (step === 'plan') return steps.map((api) => ({ api, requestId: null, outcome: 'planned' }));
  if (ids.length === 0) return [];
  // A rollback has no plan of its own: its calls are named after the action that made them.
  return ids.map((requestId, i) => ({ api: steps[i] ?? fallbackApi, requestId, outcome: 'made' }));
}

function planSteps(plan: unknown): string[] {
  if (!plan || typeof plan !== 'object' || !('steps' in plan) || !Array.isArray(plan.steps)) return [];
  return plan.steps.map((s: unknown) => {
    if (s && typeof s === 'object' && 'call' in s && s.call && typeof s.call === 'object' && 'api' in s.call) {
      return String(s.call.api);
    }
    return 'call';
  });
}
