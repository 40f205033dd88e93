/**
 * The ticketing collections in the DocStore and their schemas. Everything the ticket stage must not
 * forget across crashes, replays and concurrent runs lives here: the ledger (case → ticket, with the
 * claim), the reverse index (ticket → case), the outbox (every request before it is sent), the
 * create budget, the groups, the user cache, once-markers and dead letters.
 */
import * as z from 'zod';
import { TicketRefSchema } from '../model/case.js';
import { EnvironmentSchema } from '../model/enrichment.js';
import { TimestampSchema } from '../model/finding.js';
import { AdfDocSchema } from './adf.js';

export const COLLECTIONS = {
  ledger: 'ticket-ledger',
  index: 'ticket-index',
  outbox: 'ticket-outbox',
  budget: 'ticket-budget',
  groups: 'ticket-groups',
  users: 'ticket-users',
  once: 'ticket-once',
  /** ticket-webhook-deliveries/webhook|<sha256 of the signed body>: a Jira delivery handled (see webhook.ts). */
  deliveries: 'ticket-webhook-deliveries',
  /** ticket-pending/<ledger id>: a create for this case is already in the outbox (one per case). */
  pending: 'ticket-pending',
  deadletters: 'deadletters',
  cases: 'cases',
  /** The pipeline's findings (ingest.ts): read for what the source says about a case's finding. */
  findings: 'findings',
} as const;

/** ticket-ledger/<ledgerIdOf(key)>: one per case (or group); the claim makes creation once-only. */
export const LedgerEntrySchema = z.object({
  key: z.string(),
  label: z.string(),
  /** `uncertain`: nobody holds a claim, but an earlier create may have made the issue (see `uncertainSince`). */
  state: z.enum(['claimed', 'created', 'uncertain']),
  claimId: z.string(),
  claimedAt: TimestampSchema,
  ticket: TicketRefSchema.optional(),
  /**
   * When a create for this key last failed ambiguously (a timeout, a reset, a 5xx: the issue may exist) and
   * no issue was found since. Kept here, not on the request that failed, so that every later create for the
   * key (a new request queued by a later event, a retry, a takeover) waits for Jira's search to catch up
   * and searches before it creates.
   */
  uncertainSince: TimestampSchema.optional(),
});
export type LedgerEntry = z.infer<typeof LedgerEntrySchema>;

/** ticket-index/<ticket key>: maps an issue back to its case or group (webhooks never trust issue text). */
export const TicketIndexSchema = z.object({ key: z.string(), kind: z.enum(['case', 'group']) });
export type TicketIndex = z.infer<typeof TicketIndexSchema>;

export const OutboxOpSchema = z.discriminatedUnion('op', [
  /** `searchFirst`: not sure the case is new (lost ledger?), so look for its label before creating. */
  z.object({ op: z.literal('create'), caseKey: z.string(), searchFirst: z.boolean() }),
  z.object({ op: z.literal('comment'), caseKey: z.string(), body: AdfDocSchema }),
  z.object({
    op: z.literal('transition'),
    caseKey: z.string(),
    target: z.enum(['done', 'reopen']),
    body: AdfDocSchema,
  }),
  /** `remove`: labels taken off (a lifted or expired exception's `risk-accepted`). */
  z.object({
    op: z.literal('labels'),
    caseKey: z.string(),
    labels: z.array(z.string()),
    remove: z.array(z.string()).optional(),
  }),
  /**
   * The case's owner changed (`was`: the one the ticket was told): reassign as far as closeloop may, and say so.
   * `lookupRefused`: the owner is the same, but was never looked up (the sink refused the user search): look
   * them up now and reassign the same way.
   */
  z.object({
    op: z.literal('assign'),
    caseKey: z.string(),
    was: z.string(),
    lookupRefused: z.literal(true).optional(),
  }),
]);
export type OutboxOp = z.infer<typeof OutboxOpSchema>;

/** ticket-outbox/<time-ordered id>: a request persisted before it is sent; deleted once done. */
export const OutboxEntrySchema = z.object({
  op: OutboxOpSchema,
  state: z.enum(['pending', 'sending']),
  attempts: z.number().int(),
  enqueuedAt: TimestampSchema,
  /** Not to be tried before (Retry-After longer than one invocation should wait, a claim lease). */
  notBefore: TimestampSchema.optional(),
  /** While `sending`: another worker may take it over after this. */
  leaseUntil: TimestampSchema.optional(),
  /** A create held back by the budget (counted in the budget's backlog). */
  deferred: z.boolean().optional(),
  lastError: z.string().optional(),
  /**
   * A transition's: the status before its first attempt moved it with a transition Jira lists
   * without its target (see `CommentOnce.statusBefore`). Written before that move is sent.
   */
  statusBefore: z.string().optional(),
});
export type OutboxEntry = z.infer<typeof OutboxEntrySchema>;

/** ticket-budget/creates: creates used in the current minute, and creates waiting in the outbox. */
export const BudgetSchema = z.object({ minute: z.string(), used: z.number().int(), backlog: z.number().int() });

export const GroupMemberSchema = z.object({
  caseKey: z.string(),
  resourceName: z.string(),
  resourceId: z.string(),
  account: z.string(),
  region: z.string().nullable(),
  severity: z.string(),
  /** The case's environment (its priority row); absent in groups written before it was kept. */
  environment: EnvironmentSchema.optional(),
  /** The case's SLA due date (`YYYY-MM-DD`) counted from when it joined, as its own ticket's would be. */
  due: z.string().optional(),
  occurrences: z.number().int(),
  lastSeen: TimestampSchema,
  status: z.enum(['open', 'done', 'reopened']),
});
export type GroupMember = z.infer<typeof GroupMemberSchema>;

/** ticket-groups/<hash of owner|type|project>: the recent new cases and, once over the threshold, the parent. */
export const GroupSchema = z.object({
  key: z.string(),
  owner: z.string(),
  type: z.string(),
  title: z.string(),
  /** New cases of this owner and type seen recently (trimmed to the window). */
  recent: z.array(z.object({ caseKey: z.string(), at: TimestampSchema })),
  /** Cases that went under the parent instead of getting their own ticket. */
  members: z.array(GroupMemberSchema),
  /** Where the parent goes (the first member's routing). */
  sampleCaseKey: z.string().optional(),
  dirty: z.boolean(),
  lastRefreshAt: TimestampSchema.optional(),
  parentStatus: z.enum(['open', 'done', 'reopened']).default('open'),
  /** Bumped when a finished group (parent done) starts over with a new parent. */
  generation: z.number().int().default(0),
  /**
   * The priority and due date closeloop last set on the parent (from its most urgent open row): sent again
   * only when they change, so a person's edit of the parent stands until a more urgent row joins.
   */
  parentFields: z.object({ priority: z.string().optional(), dueDate: z.string().optional() }).optional(),
  /**
   * Why the parent is not its owner's, when its create fell back because the ticket sink refused closeloop the
   * user search (assignmentFor's note): said in its description, as a single ticket's is, and kept when the
   * table is rewritten. Nothing re-assigns a parent later, so the sentence stays true.
   */
  assigneeNote: z.string().optional(),
});
export type Group = z.infer<typeof GroupSchema>;

export const UserCacheSchema = z.object({ accountId: z.string().nullable(), at: TimestampSchema });

export const OnceSchema = z.object({ at: TimestampSchema, state: z.enum(['enqueuing', 'done']) });

/**
 * How long a `ticket-once` marker is kept (it is written with this expiry, and renewed with each write). A marker
 * stops the same event, delivered again, from queueing its ticket request (a comment, a transition) a second time,
 * and a Jira approval delivered again from approving twice; it has to outlive every way either can come back:
 * - EventBridge retries a delivery to a stage's queue for up to 24 h (serverless.yml `MaximumEventAgeInSeconds`);
 * - a message that keeps failing goes to its queue's DLQ after 5 receives, and stays there for at most 14 days (SQS's
 *   longest retention, the DLQs' `MessageRetentionPeriod`, counted from when it was first sent); `redrive` then
 *   sends it back as a new message, which the stage handles within minutes or fails into the DLQ again;
 * - events kept ahead of their publish (kept-events.ts) are published again by the stage's next run, hours at most;
 * - the outbox's own retries (72 h, OUTBOX_MAX_AGE_MS) retry the queued request, never enqueue it again, and a Jira
 *   approval is taken only from a delivery signed within a day (webhook.ts), so neither needs longer.
 * 24 h + 14 days + a redrive comes to about 16 days: 30 leaves room for a DLQ looked at late. An event redriven after
 * that (a message failed into the DLQ twice over and redriven both times) queues its request again: a repeated
 * comment on the ticket, never a lost one. A constant, not a setting: what it follows is the queues' fixed maximum.
 */
export const ONCE_MARKER_TTL_MS = 30 * 86_400_000;

/** The expiry of a `ticket-once` marker written at `now` (see {@link ONCE_MARKER_TTL_MS}). */
export const onceMarkerExpiry = (now: Date): Date => new Date(now.getTime() + ONCE_MARKER_TTL_MS);

/** deadletters/<id>: what could not be sent and why (Jira's own message). */
export const DeadLetterSchema = z.object({
  stage: z.literal('tickets'),
  caseKey: z.string(),
  reason: z.string(),
  at: TimestampSchema,
});
export type DeadLetter = z.infer<typeof DeadLetterSchema>;
