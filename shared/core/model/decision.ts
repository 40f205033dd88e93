/** What the decide stage concluded for one finding in the context of its case. */
import * as z from 'zod';

export const RemediationModeSchema = z.enum(['auto', 'approval', 'manual', 'none']);
export type RemediationMode = z.infer<typeof RemediationModeSchema>;

/** One gate's outcome. `unknown` means it could not be evaluated: remediation fails closed. */
export const GateResultSchema = z.object({
  gate: z.string(), // 'sample' | 'status' | 'exception' | 'skip-tag' | 'allowlist' | 'denylist' | 'environment' | 'owner' | 'budget' | 'circuit-breaker' …
  outcome: z.enum(['pass', 'block', 'approval', 'unknown']),
  reason: z.string(),
});
export type GateResult = z.infer<typeof GateResultSchema>;

export const ExceptionRefSchema = z.object({
  id: z.string(),
  owner: z.string(),
  justification: z.string(),
  expires: z.string(),
});
export type ExceptionRef = z.infer<typeof ExceptionRefSchema>;

export const DecisionSchema = z.object({
  caseKey: z.string(),
  isNewCase: z.boolean(),
  /** The same finding seen again (or another finding joining an open case). */
  recurrence: z.boolean(),
  /** Nothing changed for this case compared with what the store holds (replay of the same input). */
  unchanged: z.boolean(),
  /** The active exception that suppresses ticketing and remediation, if any. */
  exception: ExceptionRefSchema.nullable(),
  /** An exception that applied before and has expired: the case re-opens. */
  exceptionExpired: ExceptionRefSchema.nullable(),
  /**
   * An exception that covered the case and no longer applies, though it has not expired (revoked, or its
   * scope no longer matches): the risk is no longer accepted, and the ticket says so. Absent otherwise.
   */
  exceptionLifted: ExceptionRefSchema.optional(),
  remediation: z.object({
    action: z.string().nullable(),
    mode: RemediationModeSchema,
    reason: z.string(),
    gates: z.array(GateResultSchema),
  }),
  ticket: z.object({ wanted: z.boolean(), reason: z.string() }),
  /** The source says resolved: the case goes to verification, never silently closed. */
  verify: z.boolean(),
});
export type Decision = z.infer<typeof DecisionSchema>;
