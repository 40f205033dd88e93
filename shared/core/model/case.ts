/**
 * A case: one resource with one finding type or control, whatever the number of source events.
 * caseKey = provider | lower(resource.id) | type   (finding-formats.md §5.2)
 * Each stage owns one section: decide owns the top level, ticketing `ticket`, remediation `remediation`,
 * verification `verification` and `evidence`.
 */
import * as z from 'zod';
import { shortHash } from '../util/hash.js';
import {
  type Decision,
  DecisionSchema,
  ExceptionRefSchema,
  GateResultSchema,
  RemediationModeSchema,
} from './decision.js';
import { EnrichmentSchema, EnvironmentSchema } from './enrichment.js';
import { FindingStatusSchema, ProviderSchema, SeveritySchema, SourceSchema, TimestampSchema } from './finding.js';

export const CaseStatusSchema = z.enum([
  'open', // active finding, nothing applied yet
  'suppressed', // an active exception covers it
  'planned', // a remediation plan exists (dry-run, or waiting for its turn)
  'awaiting-approval', // remediation needs a person's approval
  'remediated', // applied, not yet verified
  'pending-verification', // claimed fixed (source resolved, ticket closed): verification owed
  'verified', // re-read and proven fixed: closed with evidence
  'failed', // apply or verification failed; a person must look
  'reopened', // was verified/closed and came back (regression, expired exception, human reopen)
]);
export type CaseStatus = z.infer<typeof CaseStatusSchema>;

export const TicketRefSchema = z.object({
  /** `SEC-123` for Jira, `LOCAL-12` for the local sink */
  key: z.string(),
  url: z.string().optional(),
  sink: z.enum(['jira', 'local']),
  /** When the ticket is one row of a grouped parent ticket. */
  parentKey: z.string().optional(),
});
export type TicketRef = z.infer<typeof TicketRefSchema>;

export const CaseTicketSchema = TicketRefSchema.extend({
  createdAt: TimestampSchema,
  lastCommentAt: TimestampSchema.optional(),
  /** Occurrence count last reported on the ticket (recurrence comments say what changed). */
  reportedOccurrences: z.number().int().optional(),
  /** Owner last told on the ticket (at its creation, then by owner-change comments). */
  reportedOwner: z.string().optional(),
  /**
   * The account closeloop assigned the issue to (null: left unassigned), as far as it knows: absent for an
   * issue found again by search or created before it was kept. An owner change reassigns the issue only
   * while its assignee is still this one (a person's reassignment stands).
   */
  assigneeId: z.string().nullable().optional(),
  /**
   * The issue went to the owner's fallback because the ticket sink refused to look users up at all (not
   * because the owner has no account): a later event looks the owner up again and reassigns the issue as an
   * owner change does. Absent once the owner was looked up.
   */
  ownerLookupRefused: z.boolean().optional(),
  status: z.enum(['open', 'done', 'reopened']).default('open'),
  /** The ticket was told the source muted the case's finding (and labelled risk-accepted); false once told it no longer is. */
  muted: z.boolean().optional(),
});
export type CaseTicket = z.infer<typeof CaseTicketSchema>;

export const PlanStepSchema = z.object({
  say: z.string(),
  call: z.object({
    api: z.string(), // 's3:PutPublicAccessBlock'
    permission: z.string(), // 's3:PutBucketPublicAccessBlock'
    input: z.unknown(),
  }),
});
export type PlanStep = z.infer<typeof PlanStepSchema>;

export const RemediationStateSchema = z.enum([
  'none', // no action applies
  'planned', // plan computed (dry-run)
  'awaiting-approval',
  'approved',
  'held', // budget / circuit breaker: queued, not dropped
  'blocked', // a gate blocked or could not be evaluated (fail closed)
  'applying',
  'applied',
  'noop', // already compliant
  'failed',
  'rolled-back',
]);
export type RemediationState = z.infer<typeof RemediationStateSchema>;

export const CaseRemediationSchema = z.object({
  action: z.string().nullable(),
  mode: RemediationModeSchema,
  reason: z.string(),
  gates: z.array(GateResultSchema),
  state: RemediationStateSchema,
  target: z.unknown().optional(),
  plan: z.object({ steps: z.array(PlanStepSchema), summary: z.string(), noop: z.boolean() }).optional(),
  before: z.unknown().optional(),
  requestIds: z.array(z.string()).optional(),
  approvedBy: z.string().optional(),
  approvedAt: TimestampSchema.optional(),
  appliedAt: TimestampSchema.optional(),
  rolledBackBy: z.string().optional(),
  rolledBackAt: TimestampSchema.optional(),
  error: z.string().optional(),
  /** Idempotency token of the apply in flight or done: the same case applied twice at once → one apply. */
  applyToken: z.string().optional(),
  /**
   * Names this remediation across its attempts (the actions' `applyKey`): set by the claim of a new apply,
   * kept by the retries of one that stopped part-way, so what an earlier attempt created is found again.
   */
  applyKey: z.string().optional(),
  /**
   * The action of that apply (set by its claim, and by a spoke's answer): its target and before-state are the
   * ones on the case, and a rollback or a re-read of the fix uses it, not the action decide chose since (a
   * playbook or registry change). Absent on cases applied before 2026-12-08.
   */
  applyAction: z.string().optional(),
  /**
   * When the claim under `applyToken` was taken (state `applying`): a claim older than the policy's
   * `apply.abandonAfter` bound has lost its process and is settled failed. Absent on claims taken before
   * 2026-12-07 (their age is then counted from the case's `updatedAt`, which is never earlier).
   */
  claimedAt: TimestampSchema.optional(),
  /**
   * Set when an abandoned claim was settled failed without an outcome (`recoverAbandonedApplies`): the
   * outcome of that apply is unknown, and one arriving late for the same token (a spoke's answer, the
   * apply itself) is still recorded, which clears it. A retry's claim clears it too and names the interrupted
   * apply in `unconfirmed` instead.
   */
  interruptedAt: TimestampSchema.optional(),
  /** Why the remediation stage is in `state` (decide owns `reason`): the gate that held, blocked or asked. */
  stateReason: z.string().optional(),
  /** Gates the remediation stage evaluated at apply time (decide owns `gates`). */
  applyGates: z.array(GateResultSchema).optional(),
  /**
   * The environment the apply-time environment gate judged last on the resource's live tags (`prod` where they
   * leave it unknown and it may be production), written with `applyGates`, or from a spoke's answer on the tags
   * it read; kept as it was by a check that could not read them. Approvals are checked against the strictest of
   * it and decide's (`approverEnvironment`): a case decided dev whose resource is tagged prod now is approved by
   * production's approvers. Absent before an apply-time check read the tags (and on cases before 2026-12-08).
   */
  judgedEnvironment: EnvironmentSchema.optional(),
  /**
   * A step of a failed apply whose call got no definite answer (timeout, reset, 5xx): it may have taken
   * effect, so the before-state read for that apply stays the one kept for rollback until an apply completes
   * (or a rollback ends the attempt). On the claim of a retry after an interrupted apply: that whole apply.
   */
  unconfirmed: z.string().optional(),
});
export type CaseRemediation = z.infer<typeof CaseRemediationSchema>;

/** States an apply left the case in: they are of the action that applied (its claim), not of decide's. */
const APPLY_STATES: readonly RemediationState[] = ['applying', 'applied', 'failed', 'rolled-back'];

/**
 * The action the remediation's state is of when it is not decide's current one: an apply's state (applied,
 * rolled back …) of the action that applied, decide having chosen another since (a playbook or registry change).
 * What names the case's remediation to a person (the case table and card, the ticket) says this one then.
 */
export const applyingAction = (r: CaseRemediation): string | undefined =>
  r.applyAction !== undefined && r.applyAction !== r.action && APPLY_STATES.includes(r.state)
    ? r.applyAction
    : undefined;

/** The decision's verdict a case's remediation holds (its action, mode, reason and gates, without its state). */
export const verdictOf = (r: CaseRemediation): Decision['remediation'] => ({
  action: r.action,
  mode: r.mode,
  reason: r.reason,
  gates: r.gates,
});

export const VerdictSchema = z.enum(['verified', 'failed', 'inconclusive']);
export type Verdict = z.infer<typeof VerdictSchema>;

export const CaseVerificationSchema = z.object({
  verdict: VerdictSchema,
  at: TimestampSchema,
  reason: z.string(),
  observed: z.unknown().optional(),
  attempts: z.number().int(),
  /** Why verification was asked for: 'apply' | 'source-resolved' | 'ticket-closed' | 'scheduled' */
  trigger: z.string(),
  /** The n-th scheduled re-check of a verification that was inconclusive (policy `recheckInconclusive`). */
  rechecks: z.number().int().optional(),
  /**
   * Source updates for this case's findings, one per finding and source (a GuardDuty finding's Security Hub
   * copy has its own): made in this verification, or (`at` earlier) made by an earlier one while the case
   * stayed verified — a re-check does not update a finding at a source again, but tries a failed one again.
   * `findingKey` is absent in entries written before 2026-12-08. Older entries fold a copy's outcome into
   * their finding's (`updated: …; securityhub: failed: …`): a re-check leaves those as they are.
   */
  upstream: z
    .array(
      z.object({ source: z.string(), findingKey: z.string().optional(), outcome: z.string(), at: TimestampSchema }),
    )
    .default([]),
});
export type CaseVerification = z.infer<typeof CaseVerificationSchema>;

/**
 * The decision that made a case what it is, as the case keeps it: without what the case holds itself (its
 * key, and the remediation verdict, which `remediation` carries beside its state). The whole decision goes
 * out with the `case.decided` event. Cases written before 2026-12-07 hold the whole decision: the two
 * members are dropped when such a case is read.
 */
export const CaseDecisionSchema = DecisionSchema.omit({ caseKey: true, remediation: true });
export type CaseDecision = z.infer<typeof CaseDecisionSchema>;

export const CaseSchema = z.object({
  key: z.string(),
  provider: ProviderSchema,
  resourceId: z.string(),
  resourceName: z.string(),
  resourceType: z.string(),
  account: z.string(),
  /**
   * GCP: the project number when `account` is the project id (a finding that gave both). Exceptions and the
   * denylist scoped by either must match the case as they match its findings.
   */
  accountNumber: z.string().optional(),
  region: z.string().nullable(),
  type: z.string(),
  title: z.string(),
  /** The highest severity seen: a resolution event never lowers it. */
  severity: SeveritySchema,
  status: CaseStatusSchema,
  statusReason: z.string(),
  /** The latest status the source(s) reported. */
  sourceStatus: FindingStatusSchema,
  sources: z.array(SourceSchema),
  findingKeys: z.array(z.string()),
  sample: z.boolean(),
  muted: z.boolean(),
  firstSeen: TimestampSchema,
  lastSeen: TimestampSchema,
  /** Sum over the case's findings of their latest occurrence counts. */
  occurrences: z.number().int(),
  /**
   * Latest occurrence count of each finding of `findingKeys`, in the same order (so repeats of one finding
   * are not double counted). Optional only for cases written before it existed (see `occurrencesByFinding`).
   */
  findingOccurrences: z.array(z.number().int()).optional(),
  /**
   * The same counts keyed by finding key, as cases written before 2026-11-23 hold them: read when
   * `findingOccurrences` is absent, no longer written (a case is rewritten without it when it next changes).
   */
  occurrencesByFinding: z.record(z.string(), z.number().int()).optional(),
  /**
   * Whether each finding of `findingKeys` (same order) is active at its source: the case is resolved at the
   * source (`sourceStatus`) only when none is. Optional only for cases written before it existed (their
   * findings then all read as the case's `sourceStatus`).
   */
  findingActive: z.array(z.boolean()).optional(),
  compliance: z.object({ controls: z.array(z.string()), standards: z.array(z.string()) }),
  enrichment: EnrichmentSchema,
  exception: ExceptionRefSchema.nullable(),
  lastDecision: CaseDecisionSchema.optional(),
  remediation: CaseRemediationSchema,
  ticket: CaseTicketSchema.nullable(),
  verification: CaseVerificationSchema.nullable(),
  /** Hash of the newest evidence record of this case (its chain head). */
  evidenceHead: z.string().nullable(),
  createdAt: TimestampSchema,
  updatedAt: TimestampSchema,
  closedAt: TimestampSchema.nullable(),
  reopenCount: z.number().int(),
});
export type Case = z.infer<typeof CaseSchema>;

/**
 * A short, stable handle for a case (case keys are long and hold `|`, which a shell reads as a pipe): shown
 * in the CLI's tables and in tickets, accepted by every CLI command that takes a case.
 */
export const caseIdOf = (key: string): string => shortHash(key, 10);
