/**
 * The config as an AWS artifact carries it: `config.json`, written by scripts/bundle-functions.mjs from the
 * config folder (loaded and validated at build time), re-validated with the same schemas when a function
 * first reads it (`loadConfigJson`, shared/adapters/wiring/aws.ts, imports this module then).
 */
import * as z from 'zod';
import { type Config, ExceptionsFileSchema, PolicyFileSchema } from '../../core/config.js';
import { RegistrySchema } from '../../core/enrich/registry.js';
import { ConfigError } from '../../core/errors.js';

const BundledConfigSchema = z.object({
  registry: RegistrySchema,
  policy: PolicyFileSchema,
  exceptions: ExceptionsFileSchema,
  origin: z.string(),
});

/** @throws ConfigError naming `file` and every invalid field */
export function parseBundledConfig(json: unknown, file: string): Config {
  const parsed = BundledConfigSchema.safeParse(json);
  if (!parsed.success) throw new ConfigError(`${file}: ${z.prettifyError(parsed.error)}`);
  return { ...parsed.data, exceptions: parsed.data.exceptions.exceptions };
}
