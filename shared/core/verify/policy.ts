/**
 * Verification policy (policy.yaml `verification:`). OWNER: verification.
 * Strict: a typo is an error naming the field (our own config, house style §5).
 *
 * @example
 * verification:
 *   attempts: 5            # re-reads before a verdict (eventual consistency)
 *   backoffMs: 2000        # first wait; doubles each attempt up to maxBackoffMs
 *   reverifyDays: 30       # scheduled re-verification covers cases verified in the last 30 days
 *   remoteWindowSeconds: 900  # wait for a spoke's re-read (Azure/GCP in the AWS hub) before asking again
 *   recheckInconclusive: { times: 6, afterMinutes: 60 }  # scheduled re-checks of an inconclusive verdict
 *   upstream: { enabled: true, guarddutyArchive: false }
 *   slaDays: { critical: 1, high: 7, medium: 30, low: 90 }
 *   evidence: { retentionDays: 2555 }
 */
import * as z from 'zod';

export const UpstreamPolicySchema = z.strictObject({
  /** Mark findings resolved at their source once verified (Security Hub, GuardDuty, SCC, Defender). */
  enabled: z.boolean().default(true),
  /** GuardDuty has no "resolved": archiving hides the finding from the console, so some teams keep it off. */
  guarddutyArchive: z.boolean().default(true),
  /** Text of the note left on the source finding; the evidence hash is appended. */
  note: z.string().min(1).max(400).default('Fixed and verified by closeloop (resource re-read).'),
});

export const SlaDaysSchema = z.strictObject({
  critical: z.number().positive().default(1),
  high: z.number().positive().default(7),
  medium: z.number().positive().default(30),
  low: z.number().positive().default(90),
  /** Informational findings carry no SLA unless set. */
  informational: z.number().positive().nullable().default(null),
});
export type SlaDays = z.infer<typeof SlaDaysSchema>;

export const VerificationPolicySchema = z.strictObject({
  /** Re-reads before a verdict; the first one counts. */
  attempts: z.number().int().min(1).max(20).default(4),
  backoffMs: z.number().int().min(0).max(600_000).default(2_000),
  maxBackoffMs: z.number().int().min(0).max(3_600_000).default(30_000),
  /**
   * How long the hub waits for a spoke's answer to a remote re-read (Azure/GCP resources in the AWS hub)
   * before the scheduled re-verification asks again; after `attempts` unanswered requests the verdict is
   * inconclusive and the case stays pending-verification.
   */
  remoteWindowSeconds: z.number().int().min(1).max(86_400).default(900),
  /**
   * A case left pending-verification by an inconclusive verdict (re-reads throttled, denied or unanswered;
   * nothing retries it by itself) is verified again by the scheduled sweep: at most `times` times, the n-th
   * once `afterMinutes × 2^(n-1)` passed since the last verdict (60: 1 h, 2 h, 4 h, … after it; the sweep's
   * own period — 6 hours in AWS — comes on top). Then it stays pending-verification and says so: a person looks.
   */
  recheckInconclusive: z
    .strictObject({
      times: z.number().int().min(0).max(20).default(6),
      afterMinutes: z.number().int().min(1).max(10_080).default(60),
    })
    .prefault({}),
  /** Scheduled re-verification looks at cases verified within this many days. */
  reverifyDays: z.number().int().min(0).max(3650).default(30),
  upstream: UpstreamPolicySchema.prefault({}),
  /** Days a case may stay open by severity before `closeloop report` lists it as past SLA. */
  slaDays: SlaDaysSchema.prefault({}),
  evidence: z
    .strictObject({
      /** S3 Object Lock (compliance mode) retention for evidence records in the AWS deployment. */
      retentionDays: z.number().int().min(1).max(36_500).default(2555),
    })
    .prefault({}),
});
export type VerificationPolicy = z.infer<typeof VerificationPolicySchema>;
