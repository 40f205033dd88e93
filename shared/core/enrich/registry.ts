/** Ownership registry schema (registry.yaml). OWNER: enrichment. Placeholder until the enrichment work lands. */
import { z } from 'zod';

export const RegistrySchema = z.looseObject({});
export type Registry = z.infer<typeof RegistrySchema>;
