/**
 * closeloop's own events between stages (the hub bus in AWS, an in-process queue locally).
 * Every event names its case; handlers re-read the case from the store (the truth), so an event
 * delivered twice, late or out of order does no harm. `id` is deterministic where the event is a
 * consequence of a state change, so duplicates can be recognized.
 */
import * as z from 'zod';
import { TimestampSchema } from './finding.js';

const base = {
  id: z.string(),
  caseKey: z.string(),
  at: TimestampSchema,
  /** Stage-specific facts for evidence and tickets (plan, before/after state, request ids, observed state, hashes). */
  detail: z.record(z.string(), z.unknown()).optional(),
  /**
   * The version of the case document this event announces, on an event published before that write (the
   * ingest's write-ahead): a stage that finds the case missing or older waits for the write instead of acting
   * on the state before it (pipeline/announced.ts). Versions, not times: they only grow, whatever the clocks.
   * Absent: published after its write (or before the field existed), nothing to wait for.
   */
  caseVersion: z.number().int().positive().optional(),
};

/**
 * `detail` flag of a `case.verified` that the re-verification sweep sends for a verified closure whose ticket
 * close was never recorded (verify/stage.ts, `reconcileEvent`): the ticket stage closes only a ticket that is
 * still recorded open, never one reopened since the sweep read the case.
 */
export const RECONCILED_CLOSE = 'reconciledClose';

/** Why verification was asked for. */
export const VerifyTriggerSchema = z.enum(['apply', 'source-resolved', 'ticket-closed', 'scheduled', 'manual']);
export type VerifyTrigger = z.infer<typeof VerifyTriggerSchema>;

export const PipelineEventSchema = z.discriminatedUnion('type', [
  /** decide ran for a finding of this case (new, recurrence, status change, exception change). */
  z.object({
    ...base,
    type: z.literal('case.decided'),
    isNewCase: z.boolean(),
    recurrence: z.boolean(),
    statusChanged: z.boolean(),
  }),
  /** A remediation was planned, applied, held, blocked, failed or rolled back. */
  z.object({
    ...base,
    type: z.literal('case.remediation'),
    state: z.string(),
    actor: z.string(),
  }),
  /** Verification is owed: after an apply, a source resolution, a human closing the ticket, or a schedule. */
  z.object({
    ...base,
    type: z.literal('case.verify-requested'),
    trigger: VerifyTriggerSchema,
    actor: z.string(),
  }),
  /** Verification reached a verdict. */
  z.object({
    ...base,
    type: z.literal('case.verified'),
    verdict: z.enum(['verified', 'failed', 'inconclusive']),
  }),
  /** The case was reopened (regression, expired exception, human reopen in the ticket). */
  z.object({ ...base, type: z.literal('case.reopened'), reason: z.string(), actor: z.string() }),
  /** An exception now covers the case (risk accepted). */
  z.object({ ...base, type: z.literal('case.exception'), exceptionId: z.string(), active: z.boolean() }),
]);
export type PipelineEvent = z.infer<typeof PipelineEventSchema>;
export type PipelineEventType = PipelineEvent['type'];
