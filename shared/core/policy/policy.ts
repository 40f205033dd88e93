/** Decision policy (policy.yaml `decide:` and `enrichment:`). OWNER: decide. Placeholder until the decide work lands. */
import { z } from 'zod';

export const DecidePolicySchema = z.looseObject({});
export type DecidePolicy = z.infer<typeof DecidePolicySchema>;
export const EnrichmentPolicySchema = z.looseObject({});
export type EnrichmentPolicy = z.infer<typeof EnrichmentPolicySchema>;
