/**
 * The config as an AWS artifact carries it: `config.json`, written by scripts/bundle-functions.mjs from the
 * config folder (loaded and validated at build time), re-validated with the same schemas when a function
 * first reads it (`loadConfigJson`, shared/adapters/wiring/aws.ts, imports this module then).
 */
import * as z from 'zod';
import { type Config, ExceptionsFileSchema, PolicyFileSchema } from '../../core/config.js';
import { exceptionProblems, policyProblems, registryProblems } from '../../core/config-checks.js';
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
  // The same checks as loadConfig (a config.json edited by hand, or written by an older build).
  const { registry, policy, exceptions } = parsed.data;
  const problems = [
    ...registryProblems(registry).map((p) => ({ ...p, path: ['registry', ...p.path] })),
    ...policyProblems(policy).map((p) => ({ ...p, path: ['policy', ...p.path] })),
    ...exceptions.exceptions.flatMap((e, i) => exceptionProblems(e, ['exceptions', 'exceptions', i])),
  ];
  if (problems.length > 0)
    throw new ConfigError(`${file}: ${problems.map((p) => `${p.path.join('.')}: ${p.message}`).join('; ')}`);
  return { ...parsed.data, exceptions: parsed.data.exceptions.exceptions };
}
