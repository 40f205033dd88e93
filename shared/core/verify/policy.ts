/** Verification policy (policy.yaml `verification:`). OWNER: verification. Placeholder. */
import { z } from 'zod';

export const VerificationPolicySchema = z.looseObject({});
export type VerificationPolicy = z.infer<typeof VerificationPolicySchema>;
