/**
 * Apply policy (policy.yaml `apply:`): the safety rails checked at apply time, after decide chose the
 * mode. Strict: a typo names the field. Approval in Jira (label or transition) is configured under
 * `tickets:` (`approvalLabel`, `approvalTransition`), where the webhook reads it.
 *
 * @example
 * apply:
 *   budget: { perAccountPerHour: 5 }
 *   circuitBreaker: { failedVerifications: 3, windowMinutes: 60 }
 *   abandonAfter: { applyMinutes: 15, spokeMinutes: 60 }
 *   accounts: { allow: ["111122223333"], deny: [] }
 *   resources: { deny: ["arn:aws:s3:::acme-audit-*"] }
 *   approvers: { prod: ["jira:5b10ac8d82e05b22cc7d4ef5", "lead@acme.example"] }
 *   actions:
 *     s3.block-public-access: { websiteTags: ["closeloop:public-website=true"] }
 *     gcp.firewall.disable-rule: { mode: narrow, sourceRanges: ["192.0.2.0/24"] }
 */
import * as z from 'zod';
import { EnvironmentSchema } from '../model/enrichment.js';

/**
 * Who may approve a fix, per environment (`*`: every environment without its own entry): Jira account ids as
 * `jira:<accountId>`, or the names `closeloop approve --by` is given. See `apply.approvers` below.
 */
export const ApproversSchema = z.partialRecord(
  z.union([EnvironmentSchema, z.literal('*')]),
  z.array(z.string().min(1)),
);
export type Approvers = z.infer<typeof ApproversSchema>;

export const ApplyPolicySchema = z.strictObject({
  /**
   * Blast-radius budget: at most this many applies per account in any 60 minutes (a sliding window, not the clock
   * hour); the rest is held, not dropped, and released as slots free.
   */
  budget: z.strictObject({ perAccountPerHour: z.number().int().min(0).default(10) }).default({ perAccountPerHour: 10 }),
  /** Stops every apply while this many verifications of applied fixes failed within the window. */
  circuitBreaker: z
    .strictObject({
      failedVerifications: z.number().int().min(1).default(3),
      windowMinutes: z.number().int().min(1).default(60),
    })
    .default({ failedVerifications: 3, windowMinutes: 60 }),
  /**
   * How long a claimed apply may go without an outcome before it counts as abandoned (its process died:
   * a Lambda timeout, an out-of-memory kill, a SIGKILLed local run) and is settled failed, its outcome
   * unknown. `applyMinutes` bounds an apply run here (the hub's remediate function stops an invocation
   * after 300 s; 15 min also covers a local run's retries); `spokeMinutes` a hand-over to a spoke, whose
   * answer travels back through the spoke's function (at most 10 min on Azure Functions, 120 s on GCP),
   * EventBridge and the remediate queue. At least 10 minutes: a bound below the function's timeout would
   * settle a live apply, and a person could then start a second one beside it.
   */
  abandonAfter: z
    .strictObject({
      applyMinutes: z.number().int().min(10).default(15),
      spokeMinutes: z.number().int().min(10).default(60),
    })
    .default({ applyMinutes: 15, spokeMinutes: 60 }),
  /**
   * Production applies without a person only for actions declared productionSafe, and only when this is
   * true (decide checks the same at decision time; this is the apply-time re-check).
   */
  allowProductionAuto: z.boolean().default(false),
  /** The skip tag checked again on live tags at apply time (when a live tag lookup is wired). */
  skipTag: z.string().min(1).default('closeloop:skip'),
  /**
   * Accounts / subscriptions / projects (a GCP project by its id or number), without case: `allow` empty = all
   * (an opt-in rollout list when set).
   */
  accounts: z
    .strictObject({ allow: z.array(z.string().min(1)).default([]), deny: z.array(z.string().min(1)).default([]) })
    .default({ allow: [], deny: [] }),
  /**
   * Resource ids never to change automatically, as globs (`*` any run of characters, `?` one; case-insensitive);
   * a Cloud Storage bucket may be written either way (`//storage.googleapis.com/NAME` or `…/projects/_/buckets/NAME`).
   */
  resources: z.strictObject({ deny: z.array(z.string().min(1)).default([]) }).default({ deny: [] }),
  /** Per-action settings, each parsed by its action (`shared/actions/<id>.ts`). */
  actions: z.record(z.string().min(1), z.unknown()).default({}),
  /**
   * Who may approve a fix, per environment of the case (`*`: every environment without its own entry):
   * Jira account ids as `jira:<accountId>`, or the names `closeloop approve --by` is given. Compared
   * without case; anyone else's approval is refused and recorded (evidence, ticket comment) and the case
   * keeps waiting. An environment with no entry (and no `*`) takes anyone's approval; an empty list,
   * no one's. The environment is the strictest of decide's and the one judged on the resource's live tags
   * at apply time (a case decided dev whose resource is tagged prod now is approved by `prod`'s list; one
   * whose live tag leaves it unknown, so that it may be production, too), and an approval already on the
   * case is checked again before the apply (on the hub, and in a spoke on the tags it reads).
   */
  approvers: ApproversSchema.default({}),
});
export type ApplyPolicy = z.infer<typeof ApplyPolicySchema>;
