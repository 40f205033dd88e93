/**
 * The evidence stage: one record per pipeline step, written from the event and the case.
 * Idempotent per event id (a duplicate delivery returns the first record). Verification records are
 * written by the verify stage itself (it needs their hash for `case.verified`), so `case.verified` is
 * not recorded again here.
 */
import { type Case, CaseSchema } from '../model/case.js';
import type { PipelineEvent, PipelineEventType } from '../model/events.js';
import type { Stage } from '../pipeline/stage.js';
import type { Clock, DocStore, Logger } from '../ports.js';
import { getDoc } from '../store/docs.js';
import { CASES, caseFields, recordEvidence } from './case-link.js';
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
  applying: 'apply',
  applied: 'apply',
  failed: 'apply',
  'rolled-back': 'rollback',
};

/**
 * Creates the stage. Wire it into the bus before the other stages, so each step is recorded before
 * the next stage acts on it and the case's story reads in order.
 *
 * @example
 * const bus = new InProcessBus([createEvidenceStage({ store, evidence, clock, log }), remediate, tickets, verify], log);
 */
export function createEvidenceStage(deps: EvidenceStageDeps): Stage {
  return {
    name: 'evidence',
    handles: ALL_TYPES,
    async handle(event) {
      const current = (await getDoc(deps.store, CASES, event.caseKey, CaseSchema))?.value;
      const draft = draftFor(event, current);
      if (!draft) return [];
      const { record, created } = await recordEvidence(deps, draft, `${event.id}:${draft.step}`);
      deps.log.debug(created ? 'evidence recorded' : 'evidence already recorded', {
        caseKey: event.caseKey,
        step: draft.step,
        hash: record.hash,
      });
      return [];
    },
  };
}

/** The record an event calls for, or undefined when the event is not a step of its own. */
export function draftFor(event: PipelineEvent, c: Case | undefined): EvidenceDraft | undefined {
  const detail = event.detail ?? {};
  const base = { caseKey: event.caseKey, ...caseFields(c), eventId: event.id, at: event.at, calls: [] };
  switch (event.type) {
    case 'case.decided': {
      const d = c?.lastDecision;
      return {
        ...base,
        step: 'decision',
        actor: { kind: 'function', id: 'closeloop:decide' },
        summary: d
          ? `decided: action ${d.remediation.action ?? 'none'}, mode ${d.remediation.mode} (${d.remediation.reason}); ticket ${d.ticket.wanted ? 'wanted' : 'not wanted'}`
          : 'decided',
        verdict: null,
        detail: {
          isNewCase: event.isNewCase,
          recurrence: event.recurrence,
          statusChanged: event.statusChanged,
          ...(d ? { decision: d } : {}),
          ...(c ? { status: c.status, sourceStatus: c.sourceStatus, severity: c.severity } : {}),
          ...detail,
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
        calls: callsFrom(detail, step),
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
    case 'case.exception':
      return {
        ...base,
        step: 'exception',
        actor: actorFrom(c?.exception?.owner ?? stringOf(detail.owner) ?? 'closeloop:decide'),
        summary: `exception ${event.exceptionId} ${event.active ? 'active' : 'no longer active'}${c?.exception ? `: ${c.exception.justification} (until ${c.exception.expires})` : ''}`,
        verdict: event.active ? 'risk-accepted' : 'exception-ended',
        detail: {
          exceptionId: event.exceptionId,
          active: event.active,
          ...(c?.exception ? { exception: c.exception } : {}),
          ...detail,
        },
      };
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
function callsFrom(detail: Record<string, unknown>, step: EvidenceStep): EvidenceCall[] {
  const ids = Array.isArray(detail.requestIds) ? detail.requestIds.filter((x) => typeof x === 'string') : [];
  const steps = planSteps(detail.plan);
  if (step === 'plan') return steps.map((api) => ({ api, requestId: null, outcome: 'planned' }));
  if (ids.length === 0) return [];
  return ids.map((requestId, i) => ({ api: steps[i] ?? 'call', requestId, outcome: 'made' }));
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
