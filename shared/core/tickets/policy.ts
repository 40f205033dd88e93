/**
 * Ticketing policy (policy.yaml `tickets:`). OWNER: ticketing.
 * Parsed strictly (a typo is an error); every key has a default so an empty section is valid.
 *
 * @example
 * ```yaml
 * tickets:
 *   defaultProject: SEC
 *   slaDays: { critical: 1, high: 7, medium: 30, low: 90 }
 *   recurrence: { commentWindowMinutes: 1440 }
 *   grouping: { threshold: 10, windowMinutes: 60, mode: table }
 *   budget: { createsPerMinute: 60 }
 * ```
 */
import * as z from 'zod';
import { EnvironmentSchema } from '../model/enrichment.js';

/** Jira project keys: upper-case letter first, then upper-case letters, digits, underscore (Jira's own rule). */
export const PROJECT_KEY_PATTERN = /^[A-Z][A-Z0-9_]+$/;
const ProjectKeySchema = z.string().regex(PROJECT_KEY_PATTERN, 'a Jira project key such as SEC');

const SeverityTableSchema = <T extends z.ZodType>(value: T) =>
  z.strictObject({ critical: value, high: value, medium: value, low: value, informational: value });

/**
 * Priority name per environment; `default` covers environments not named. Keys are checked: a row keyed
 * `production:` (not `prod:`) was never read, and prod tickets took the default priority without a word.
 */
const PriorityRowSchema = z.partialRecord(z.union([EnvironmentSchema, z.literal('default')]), z.string().min(1));

export const DEFAULT_PRIORITIES = {
  critical: { prod: 'Highest', default: 'High' },
  high: { prod: 'High', default: 'Medium' },
  medium: { prod: 'Medium', default: 'Low' },
  low: { prod: 'Low', default: 'Lowest' },
  informational: { default: 'Lowest' },
} as const;

export const TicketPolicySchema = z.strictObject({
  /** Project when the owner's registry entry names none (the environment's `JIRA_PROJECT` wins over this). */
  defaultProject: ProjectKeySchema.optional(),
  defaultIssueType: z.string().min(1).default('Task'),
  /** Component set when no assignee could be found, so someone triages the ticket. */
  triageComponent: z.string().min(1).default('triage'),
  /** Jira caps summaries at 255 characters; shorter reads better in lists. */
  summaryMaxLength: z.number().int().min(40).max(255).default(120),
  /** Priority name by severity × environment. */
  priorities: SeverityTableSchema(PriorityRowSchema).default({
    critical: { ...DEFAULT_PRIORITIES.critical },
    high: { ...DEFAULT_PRIORITIES.high },
    medium: { ...DEFAULT_PRIORITIES.medium },
    low: { ...DEFAULT_PRIORITIES.low },
    informational: { ...DEFAULT_PRIORITIES.informational },
  }),
  /** Days until the due date, by severity. */
  slaDays: SeverityTableSchema(z.number().int().min(0)).default({
    critical: 1,
    high: 7,
    medium: 30,
    low: 90,
    informational: 180,
  }),
  /** Extra labels on every ticket. */
  labels: z.array(z.string().regex(/^[A-Za-z0-9_.:-]+$/)).default([]),
  recurrence: z
    .strictObject({
      /** At most one recurrence comment per case per window. */
      commentWindowMinutes: z.number().int().min(0).default(1440),
    })
    .default({ commentWindowMinutes: 1440 }),
  /** Transition names tried in order (case-insensitive, matched against the transition or its target status). */
  transitions: z
    .strictObject({
      done: z.array(z.string().min(1)).min(1).default(['Done', 'Resolve Issue', 'Resolved', 'Close Issue', 'Closed']),
      reopen: z.array(z.string().min(1)).min(1).default(['Reopen', 'Reopen Issue', 'Reopened', 'To Do', 'Open']),
    })
    .default({
      done: ['Done', 'Resolve Issue', 'Resolved', 'Close Issue', 'Closed'],
      reopen: ['Reopen', 'Reopen Issue', 'Reopened', 'To Do', 'Open'],
    }),
  /**
   * How a person approves a remediation from Jira (besides `closeloop approve <case>`): adding this label
   * to the ticket approves its cases awaiting approval, with the Jira user recorded as approver.
   * Default `closeloop-approve` (the ticket's text tells people to add it). Anyone who may edit the
   * issue's labels can add it: `apply.approvers` lists whose approval counts per environment (anyone
   * else's is refused and said so on the ticket), and `approvalTransition` with a workflow condition
   * restricts it in Jira itself.
   */
  approvalLabel: z
    .string()
    .regex(/^[A-Za-z0-9_.:-]+$/)
    .default('closeloop-approve'),
  /**
   * Also approves: the issue moving through this transition (case-insensitive), matched against the
   * transition name of workflow post-function webhooks or the target status of `jira:issue_updated`
   * (e.g. `Approve fix`, or the `Approved` status it leads to). Default: none (label only), because the
   * workflow must define it.
   */
  approvalTransition: z.string().min(1).optional(),
  grouping: z
    .strictObject({
      enabled: z.boolean().default(true),
      /** More than this many new cases of one type for one owner within the window → one parent ticket. */
      threshold: z.number().int().min(1).default(10),
      windowMinutes: z.number().int().min(1).default(60),
      /** `table`: rows in the parent's description; `subtasks`: one sub-task per case under the parent. */
      mode: z.enum(['table', 'subtasks']).default('table'),
      subtaskIssueType: z.string().min(1).default('Subtask'),
      /** The parent's table is rewritten at most this often from the stage; drainOutbox always flushes it. */
      refreshSeconds: z.number().int().min(0).default(60),
    })
    .default({
      enabled: true,
      threshold: 10,
      windowMinutes: 60,
      mode: 'table',
      subtaskIssueType: 'Subtask',
      refreshSeconds: 60,
    }),
  budget: z
    .strictObject({
      /** Ticket creations per minute; the rest wait in the outbox. */
      createsPerMinute: z.number().int().min(1).default(60),
    })
    .default({ createsPerMinute: 60 }),
  retry: z
    .strictObject({
      maxAttempts: z.number().int().min(1).max(20).default(6),
      baseDelayMs: z.number().int().min(0).default(500),
      maxDelayMs: z.number().int().min(0).default(30_000),
      /**
       * How long one create may go on retrying before the outbox takes it over (see RetryOptions.maxElapsedMs):
       * well inside the ticket function's timeout, whatever `maxAttempts` and Retry-After add up to.
       */
      maxElapsedMs: z.number().int().min(0).default(45_000),
    })
    .default({ maxAttempts: 6, baseDelayMs: 500, maxDelayMs: 30_000, maxElapsedMs: 45_000 }),
  /** A claim older than this (claimed, never created: a crash) is taken over after a JQL search. */
  claimLeaseSeconds: z.number().int().min(1).default(120),
});
export type TicketPolicy = z.infer<typeof TicketPolicySchema>;
