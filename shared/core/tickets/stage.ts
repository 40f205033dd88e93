/**
 * The ticket stage: turns case events into ticket requests (persisted in the outbox, then sent).
 * It re-reads the case from the store (events may arrive twice, late or concurrently) and writes only
 * the case's `ticket` section.
 */

import type { Case } from '../model/case.js';
import { type PipelineEvent, type PipelineEventType, RECONCILED_CLOSE } from '../model/events.js';
import { readAnnouncedCase } from '../pipeline/announced.js';
import type { Stage } from '../pipeline/stage.js';
import type { AdfDoc } from './adf.js';
import {
  exceptionComment,
  exceptionExpiredReason,
  mutedComment,
  ownerUncertain,
  recurrenceComment,
  regressionReason,
  remediationComment,
  reopenComment,
  resolutionComment,
  unmutedComment,
} from './content.js';
import {
  contextOf,
  nowIso,
  type TicketContext,
  type TicketDeps,
  updateCaseTicket,
  userSearchRefusal,
} from './context.js';
import { enqueueAndSend, enqueueCreate, markTicketStatus } from './outbox.js';
import type { OutboxOp } from './store.js';

export const RISK_ACCEPTED_LABEL = 'risk-accepted';

const HANDLES: readonly PipelineEventType[] = [
  'case.decided',
  'case.remediation',
  'case.verified',
  'case.reopened',
  'case.exception',
];

/** Remediation states worth telling the ticket about (`applying` is a moment, not news). */
const TOLD_STATES = new Set([
  'planned',
  'awaiting-approval',
  'approved',
  'approval-refused',
  'held',
  'blocked',
  'applied',
  'noop',
  'failed',
  'rolled-back',
]);

/**
 * Builds the ticket stage.
 * @example
 * const bus = new InProcessBus([decide, createTicketStage({ store, sink, clock, log, policy: config.policy.tickets })], log);
 */
export function createTicketStage(deps: TicketDeps): Stage {
  const ctx = contextOf(deps);
  return {
    name: 'tickets',
    handles: HANDLES,
    async handle(event: PipelineEvent): Promise<PipelineEvent[]> {
      // Throws (retryable) while the state the event announces is not written yet: no ticket from the state
      // before it, and a new case's event is not dropped as "not found".
      const c = await readAnnouncedCase(ctx.store, event);
      if (!c) {
        ctx.log.warn('ticket stage: case not found', { caseKey: event.caseKey, type: event.type });
        return [];
      }
      switch (event.type) {
        case 'case.decided':
          if (isRegression(c, event.statusChanged)) await onRegression(ctx, c, event.id, event.detail);
          else await onDecided(ctx, c, event.isNewCase, event.recurrence);
          break;
        case 'case.remediation':
          if (TOLD_STATES.has(event.state) && wantsTicket(c)) {
            await enqueueAndSend(
              ctx,
              [comment(c, remediationComment(c, event.state, event.actor, ctx.policy, event.detail))],
              `event|${event.id}`,
            );
          }
          break;
        case 'case.verified':
          await onVerified(ctx, c, event.verdict, event.detail, event.id);
          break;
        case 'case.reopened':
          if (!event.actor.startsWith('jira:') && verifiedSince(c, event.at)) {
            // A late delivery (the verifier's kept events come with the next sweep, hours later): a verdict
            // after this reopen closed the case again, and its own event told the ticket.
            ctx.log.info('reopen older than the verified closure: ticket left as it is', {
              caseKey: c.key,
              at: event.at,
            });
            break;
          }
          await reopen(ctx, c, event.reason, event.actor.startsWith('jira:'), `event|${event.id}`, event.detail);
          break;
        case 'case.exception':
          if (event.active && c.exception) await acceptRisk(ctx, c, c.exception.id);
          else if (!event.active)
            await riskNoLongerAccepted(
              ctx,
              c,
              `exception ${event.exceptionId} no longer applies`,
              `expired|${c.key}|${event.exceptionId}`,
            );
          break;
        default:
          break;
      }
      return [];
    },
  };
}

/** Whether the case is closed on a verdict reached after `at`. */
const verifiedSince = (c: Case, at: string): boolean =>
  c.status === 'verified' && c.verification?.verdict === 'verified' && Date.parse(c.verification.at) > Date.parse(at);

/** Whether a reconciled close (see `RECONCILED_CLOSE`) may still close the ticket: verified, ticket not reopened. */
const closeStillOwed = (c: Case): boolean =>
  c.status === 'verified' && c.ticket !== null && c.ticket.status !== 'reopened';

const wantsTicket = (c: Case): boolean => c.ticket !== null || (c.lastDecision?.ticket.wanted ?? true);

const comment = (c: Case, body: AdfDoc): OutboxOp => ({ op: 'comment', caseKey: c.key, body });

async function onDecided(ctx: TicketContext, c: Case, isNewCase: boolean, recurrence: boolean): Promise<void> {
  const d = c.lastDecision;
  if (d?.exceptionExpired) {
    const x = d.exceptionExpired;
    // Keyed with the expiry: an exception extended after it expired may expire again, and the ticket is told again.
    await riskNoLongerAccepted(ctx, c, exceptionExpiredReason(x), `expired|${c.key}|${x.id}|${x.expires}`);
    if (c.ticket) return;
  }
  if (d?.exceptionLifted) {
    // Revoked (or narrowed) before it expired: the ticket said the risk was accepted; now it is not.
    const x = d.exceptionLifted;
    const why = `exception ${x.id} no longer applies (revoked, or its scope no longer covers this case): the risk is no longer accepted`;
    // Keyed with the exception's expiry, not the case's last write: a late delivery after the case changed
    // again (a kept sweep entry published by the next run) is the same news.
    await riskNoLongerAccepted(ctx, c, why, `lifted|${c.key}|${x.id}|${x.expires}`);
    if (c.ticket) return;
  }
  if (d?.exception) {
    if (c.ticket) await acceptRisk(ctx, c, d.exception.id);
    return;
  }
  await tellMute(ctx, c);
  if (!c.ticket) {
    if (!(d?.ticket.wanted ?? true)) return;
    // Not a brand-new case, yet no ticket recorded: maybe a lost ledger or an earlier failure → search first.
    await enqueueCreate(ctx, c.key, !isNewCase);
    return;
  }
  await commentOnOwnerChange(ctx, c);
  if (!recurrence || isNewCase) return;
  await commentOnRecurrence(ctx, c);
}

/**
 * The decision reopened a case whose ticket was closed: the source reports the finding active again after
 * the verified closure (decide's regression). Only the decision that changed the status says so (a later
 * recurrence of the reopened case does not); an expired exception reopens through {@link onDecided}.
 */
const isRegression = (c: Case, statusChanged: boolean): boolean =>
  statusChanged &&
  c.status === 'reopened' &&
  !c.lastDecision?.exceptionExpired &&
  c.ticket !== null &&
  // `reopened`: a redelivery finishing a reopen that stopped after marking the ticket (the once-key holds).
  c.ticket.status !== 'open';

/**
 * Reopens the closed ticket of a regressed case, saying why. Once per regression: keyed by the decision
 * event, and only the decision that changed the status reaches here (its redeliveries share its id).
 */
async function onRegression(
  ctx: TicketContext,
  c: Case,
  eventId: string,
  detail: Record<string, unknown> | undefined,
): Promise<void> {
  const source = typeof detail?.source === 'string' ? detail.source : 'the source';
  await reopen(ctx, c, regressionReason(source), false, `regressed|${c.key}|${eventId}`);
}

/**
 * Whether the ticket was told this owner already. E-mail addresses are compared without regard to case
 * (`Alice@acme.example` is alice@acme.example's mailbox, and Jira finds her either way): a tag retyped in
 * other casing is no owner change, and posted a comment and a reassignment to the same person.
 */
const sameOwner = (told: string | undefined, owner: string): boolean =>
  told !== undefined && told.toLowerCase() === owner.toLowerCase();

/**
 * One comment per change of the case's owner, reserved atomically on the case's ticket section (replays
 * and concurrent deliveries comment once). A ticket from before `reportedOwner` was kept gets it recorded,
 * without a comment: what it was told is not known.
 */
async function commentOnOwnerChange(ctx: TicketContext, c: Case): Promise<void> {
  // An owner that is itself a fallback after a failed lookup is no news (lookups that fail now and then
  // would otherwise flip the ticket's owner back and forth).
  if (ownerUncertain(c)) return;
  if (sameOwner(c.ticket?.reportedOwner, c.enrichment.owner)) {
    await lookUpRefusedOwner(ctx, c);
    return;
  }
  const res = await updateCaseTicket(ctx, c.key, (t, fresh) =>
    t && !sameOwner(t.reportedOwner, fresh.enrichment.owner) && !ownerUncertain(fresh)
      ? { ...t, reportedOwner: fresh.enrichment.owner }
      : undefined,
  );
  const ticket = res.value?.ticket;
  const was = res.previous?.ticket?.reportedOwner;
  if (!res.changed || !res.value || !ticket || was === undefined) return;
  // A row of a grouped parent: the parent names many owners' resources; a comment per row would flood it.
  if (ticket.parentKey !== undefined && ticket.parentKey === ticket.key) return;
  // Reassigned as far as closeloop may (see runAssign in outbox.ts), and said in one comment.
  await enqueueAndSend(ctx, [{ op: 'assign', caseKey: c.key, was }]);
}

/**
 * The issue went to the owner's fallback because the ticket sink refused the user search (see assignmentFor):
 * once that refusal is no longer believed, the next event looks the owner up again, reassigning as an owner
 * change does (runAssign in outbox.ts). Reserved atomically on the case's ticket section: the mark comes off
 * here, and runAssign puts it back while the search is still refused.
 */
async function lookUpRefusedOwner(ctx: TicketContext, c: Case): Promise<void> {
  if (!c.ticket?.ownerLookupRefused || userSearchRefusal(ctx)) return;
  const res = await updateCaseTicket(ctx, c.key, (t, fresh) => {
    if (!t?.ownerLookupRefused || !sameOwner(t.reportedOwner, fresh.enrichment.owner) || ownerUncertain(fresh))
      return undefined;
    const { ownerLookupRefused: _done, ...rest } = t;
    return rest;
  });
  const ticket = res.value?.ticket;
  if (!res.changed || !ticket) return;
  await enqueueAndSend(ctx, [
    { op: 'assign', caseKey: c.key, was: ticket.reportedOwner ?? c.enrichment.owner, lookupRefused: true },
  ]);
}

/** At most one recurrence comment per case per window, reserved atomically on the case's ticket section. */
async function commentOnRecurrence(ctx: TicketContext, c: Case): Promise<void> {
  const windowMs = ctx.policy.recurrence.commentWindowMinutes * 60_000;
  const now = ctx.clock.now().getTime();
  const res = await updateCaseTicket(ctx, c.key, (t, fresh) => {
    if (!t) return undefined;
    const last = Date.parse(t.lastCommentAt ?? t.createdAt);
    if (now - last < windowMs) return undefined;
    if (fresh.occurrences <= (t.reportedOccurrences ?? 0)) return undefined;
    return { ...t, lastCommentAt: nowIso(ctx), reportedOccurrences: fresh.occurrences };
  });
  if (!res.changed || !res.value) return;
  const ticket = res.value.ticket;
  // A row of a grouped parent: the table carries the count; a comment per row would flood the parent.
  if (ticket?.parentKey !== undefined && ticket.parentKey === ticket.key) return;
  await enqueueAndSend(ctx, [
    comment(res.value, recurrenceComment(res.value, res.previous?.ticket?.reportedOccurrences)),
  ]);
}

async function onVerified(
  ctx: TicketContext,
  c: Case,
  verdict: 'verified' | 'failed' | 'inconclusive',
  detail: Record<string, unknown> | undefined,
  eventId: string,
): Promise<void> {
  if (!c.ticket && !wantsTicket(c)) return;
  if (verdict === 'verified' && c.status === 'reopened') {
    // A late delivery: the case reopened since this proof (a regression, a person): the ticket stays open.
    ctx.log.info('verified event for a case no longer verified: ticket left open', {
      caseKey: c.key,
      status: c.status,
    });
    return;
  }
  if (verdict === 'verified' && detail?.[RECONCILED_CLOSE] === true && !closeStillOwed(c)) {
    // The sweep's close of a ticket it read open: reopened since (a person in Jira, before the verifier
    // reopened the case), or the case changed. Its redelivery after the ticket was marked done goes on.
    ctx.log.info('reconciled close no longer owed: ticket left as it is', {
      caseKey: c.key,
      status: c.status,
      ticket: c.ticket?.status,
    });
    return;
  }
  if (verdict === 'verified') {
    await markTicketStatus(ctx, c.key, 'done');
    // Once per closure, not per event: the verifier's event and the sweep's reconciliation of the same closure
    // (another id) close the ticket once, whichever comes first (the verifier's only delayed, from a DLQ). A
    // closure is the case's reopen count with its close time (each reopen counts one more).
    const once =
      c.status === 'verified' && c.closedAt ? `closed|${c.key}|${c.reopenCount}|${c.closedAt}` : `event|${eventId}`;
    await enqueueAndSend(
      ctx,
      [{ op: 'transition', caseKey: c.key, target: 'done', body: resolutionComment(c, detail) }],
      once,
    );
    return;
  }
  const reason = `verification ${verdict}: ${c.verification?.reason ?? 'see the evidence record'}`;
  if (verdict === 'failed' && c.ticket?.status === 'done') {
    await reopen(ctx, c, reason, false, `event|${eventId}`, detail);
    return;
  }
  await enqueueAndSend(ctx, [comment(c, reopenComment(reason, detail))], `event|${eventId}`);
}

async function reopen(
  ctx: TicketContext,
  c: Case,
  reason: string,
  byJira: boolean,
  onceKey: string,
  /** The event's detail: the verifier's evidence summary and record hash, when it found the reason. */
  evidence?: Record<string, unknown>,
): Promise<void> {
  if (!c.ticket) {
    // Never ticketed (suppressed until now): the case needs its ticket.
    if (wantsTicket(c)) await enqueueCreate(ctx, c.key, true);
    return;
  }
  await markTicketStatus(ctx, c.key, 'reopened');
  // A person reopened it in Jira: the issue is already open; do not transition it again.
  if (byJira) return;
  await enqueueAndSend(
    ctx,
    [{ op: 'transition', caseKey: c.key, target: 'reopen', body: reopenComment(reason, evidence) }],
    onceKey,
  );
}

/**
 * The risk is no longer accepted (an exception expired or was lifted): the ticket reopens saying why and its
 * `risk-accepted` label comes off, once per `onceKey`; a case never ticketed gets its ticket.
 */
async function riskNoLongerAccepted(ctx: TicketContext, c: Case, reason: string, onceKey: string): Promise<void> {
  await reopen(ctx, c, reason, false, onceKey);
  if (!c.ticket) return;
  await enqueueAndSend(
    ctx,
    [{ op: 'labels', caseKey: c.key, labels: [], remove: [RISK_ACCEPTED_LABEL] }],
    `${onceKey}|label`,
  );
}

/** Muted at its source and not under an exception (which its own comments tell). */
const mutedAtSource = (c: Case): boolean => c.status === 'suppressed' && c.muted && c.exception === null;

/**
 * The source muted the case's finding, or no longer does: the ticket is told once each way (a comment and the
 * `risk-accepted` label on, then off), the change reserved atomically on the case's ticket section as an owner
 * change is. The ticket stayed open and silent while its case was suppressed, and again when it came back.
 */
async function tellMute(ctx: TicketContext, c: Case): Promise<void> {
  if (!c.ticket || c.exception !== null || (c.ticket.muted ?? false) === mutedAtSource(c)) return;
  const res = await updateCaseTicket(ctx, c.key, (t, fresh) =>
    t && fresh.exception === null && (t.muted ?? false) !== mutedAtSource(fresh)
      ? { ...t, muted: mutedAtSource(fresh) }
      : undefined,
  );
  const fresh = res.value;
  const ticket = fresh?.ticket;
  if (!res.changed || !fresh || !ticket) return;
  // A row of a grouped parent: the table carries the row's status; a comment per row would flood the parent.
  if (ticket.parentKey !== undefined && ticket.parentKey === ticket.key) return;
  await enqueueAndSend(
    ctx,
    ticket.muted
      ? [comment(fresh, mutedComment(fresh)), { op: 'labels', caseKey: fresh.key, labels: [RISK_ACCEPTED_LABEL] }]
      : [
          comment(fresh, unmutedComment(fresh)),
          { op: 'labels', caseKey: fresh.key, labels: [], remove: [RISK_ACCEPTED_LABEL] },
        ],
  );
}

async function acceptRisk(ctx: TicketContext, c: Case, exceptionId: string): Promise<void> {
  const x = c.exception ?? c.lastDecision?.exception;
  if (!x || !c.ticket) return;
  await enqueueAndSend(
    ctx,
    [comment(c, exceptionComment(x)), { op: 'labels', caseKey: c.key, labels: [RISK_ACCEPTED_LABEL] }],
    // Keyed with the expiry: the same exception extended after it expired accepts the risk again.
    `accepted|${c.key}|${exceptionId}|${x.expires}`,
  );
}
