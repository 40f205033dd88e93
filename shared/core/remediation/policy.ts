/** Apply policy (policy.yaml `apply:`: budget, circuit breaker, approval). OWNER: remediation. Placeholder. */
import { z } from 'zod';

export const ApplyPolicySchema = z.looseObject({});
export type ApplyPolicy = z.infer<typeof ApplyPolicySchema>;
