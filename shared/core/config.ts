/**
 * closeloop's configuration: a folder with `registry.yaml` (ownership), `policy.yaml` (one section
 * per stage) and `exceptions.yaml`. Each section's schema lives with the stage that reads it; this
 * file only composes them. Our own config parses strictly: a typo is an error naming file and field.
 */
import * as z from 'zod';
import { RegistrySchema } from './enrich/registry.js';
import { ExceptionSchema } from './policy/exceptions.js';
import { DecidePolicySchema, EnrichmentPolicySchema } from './policy/policy.js';
import { ApplyPolicySchema } from './remediation/policy.js';
import { TicketPolicySchema } from './tickets/policy.js';
import { VerificationPolicySchema } from './verify/policy.js';

// An absent section is parsed from `{}` when met (`prefault`), not at import: a parse at module scope
// generated each section's parser on every cold start of every function.
export const PolicyFileSchema = z.strictObject({
  enrichment: EnrichmentPolicySchema.prefault({}),
  decide: DecidePolicySchema.prefault({}),
  apply: ApplyPolicySchema.prefault({}),
  tickets: TicketPolicySchema.prefault({}),
  verification: VerificationPolicySchema.prefault({}),
});
export type PolicyFile = z.infer<typeof PolicyFileSchema>;

export const ExceptionsFileSchema = z.strictObject({ exceptions: z.array(ExceptionSchema).default([]) });

export interface Config {
  registry: z.infer<typeof RegistrySchema>;
  policy: PolicyFile;
  exceptions: z.infer<typeof ExceptionSchema>[];
  /** Where the config came from, for messages ("examples/config"). */
  origin: string;
}

export const defaultConfig = (): Config => ({
  registry: RegistrySchema.parse({}),
  policy: PolicyFileSchema.parse({}),
  exceptions: [],
  origin: '(defaults)',
});
