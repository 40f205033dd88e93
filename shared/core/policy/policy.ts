/**
 * The `enrichment:` and `decide:` sections of `policy.yaml`. Parsed strictly (a typo is an error naming
 * the field); every key has a default, so an empty section, or no file at all, is a sensible policy.
 *
 * @example
 * ```yaml
 * enrichment:
 *   tagAliases: { owner: [owner, Owner, owner-email] }
 * decide:
 *   environments: { prod: approval, dev: auto, unknown: manual }
 *   skipTag: closeloop:skip
 *   allowlist: { resources: ["arn:aws:s3:::acme-audit-logs*"] }
 * ```
 */
import * as z from 'zod';
import { RemediationModeSchema } from '../model/decision.js';
import { EnvironmentSchema } from '../model/enrichment.js';

const TagKeys = z.array(z.string().min(1)).min(1);

/** Which tag/label keys carry which enriched field, in priority order (first present key wins). */
export const TagAliasesSchema = z.strictObject({
  owner: TagKeys.default(['owner', 'Owner', 'owner-email', 'owner_email', 'OwnerEmail', 'contact']),
  team: TagKeys.default(['team', 'Team', 'squad']),
  application: TagKeys.default(['app', 'application', 'App', 'Application', 'service']),
  environment: TagKeys.default(['env', 'environment', 'Environment', 'Env', 'stage', 'Stage']),
  criticality: TagKeys.default(['criticality', 'Criticality', 'business-criticality', 'tier']),
});
export type TagAliases = z.infer<typeof TagAliasesSchema>;

/**
 * Words that name each environment: used to normalize tag and registry values (`Production` → prod) and
 * as name patterns on word boundaries of resource names and account aliases (`acme-prd-logs` → prod).
 */
export const EnvironmentWordsSchema = z.strictObject({
  prod: z.array(z.string().min(2)).default(['prod', 'prd', 'production', 'live']),
  staging: z.array(z.string().min(2)).default(['stg', 'stage', 'staging', 'preprod']),
  test: z.array(z.string().min(2)).default(['test', 'tst', 'qa', 'uat']),
  dev: z.array(z.string().min(2)).default(['dev', 'development']),
  sandbox: z.array(z.string().min(2)).default(['sandbox', 'sbx']),
});
export type EnvironmentWords = z.infer<typeof EnvironmentWordsSchema>;

/**
 * Tag values that stand for "nobody filled this in": an `owner=TBD` tag is no owner (a Jira search for `TBD`,
 * then the team lead with "owner not found"), and must not hide the registry's or the team's real one.
 * Compared trimmed and in any casing. Here, not beside the tag reader: the policy's schema would take that
 * module (and a chunk of its own) into every function that loads a configuration.
 */
export const DEFAULT_PLACEHOLDERS: readonly string[] =
  'tbd tbc todo unknown unassigned none n/a na null nil undefined - ? changeme placeholder'.split(' ');

export const EnrichmentPolicySchema = z.strictObject({
  // Defaults parsed from `{}` when the key is absent (`prefault`), not at import: see config.ts.
  tagAliases: TagAliasesSchema.prefault({}),
  environmentWords: EnvironmentWordsSchema.prefault({}),
  /**
   * Tag values that mean "not filled in" (`owner=TBD`): read as no tag, with a warning on the case, so the
   * registry or the team's default owner is used instead of a Jira search for `TBD`. Any casing.
   */
  placeholderValues: z.array(z.string().trim().min(1).max(32)).default([...DEFAULT_PLACEHOLDERS]),
  /** Infer the environment from resource/account names when neither tags nor the registry say. */
  namePatterns: z.boolean().default(true),
  /**
   * Live tag lookups (AWS Resource Groups Tagging API, Azure tags, GCP labels) for findings whose event
   * carries no tags. Off by default: the local run never calls a cloud.
   */
  lookup: z
    .strictObject({
      enabled: z.boolean().default(false),
      ttlSeconds: z.number().int().positive().default(900),
      maxEntries: z.number().int().positive().default(10_000),
    })
    .default({ enabled: false, ttlSeconds: 900, maxEntries: 10_000 }),
});
export type EnrichmentPolicy = z.infer<typeof EnrichmentPolicySchema>;

const ModeByEnvSchema = z.partialRecord(EnvironmentSchema, RemediationModeSchema);
export type ModeByEnvironment = z.infer<typeof ModeByEnvSchema>;

export const DecidePolicySchema = z.strictObject({
  /** Remediation mode per environment, for actions whose playbook line says nothing more specific. */
  environments: z
    .strictObject({
      prod: RemediationModeSchema.default('approval'),
      staging: RemediationModeSchema.default('approval'),
      test: RemediationModeSchema.default('auto'),
      dev: RemediationModeSchema.default('auto'),
      sandbox: RemediationModeSchema.default('auto'),
      unknown: RemediationModeSchema.default('manual'),
    })
    .default({ prod: 'approval', staging: 'approval', test: 'auto', dev: 'auto', sandbox: 'auto', unknown: 'manual' }),
  /** Lets an action declared production-safe run `auto` in prod. Off: prod always asks a person. */
  productionSafeAuto: z.boolean().default(false),
  /** Per action id, per environment: overrides the playbook line's default mode. */
  actionModes: z.record(z.string().min(1), ModeByEnvSchema).default({}),
  /** Resources carrying this tag key (any value but "false") are never remediated automatically. */
  skipTag: z.string().min(1).default('closeloop:skip'),
  /** Resources (globs) closeloop must never touch: ticket only, a person fixes. */
  allowlist: z.strictObject({ resources: z.array(z.string().min(1)).default([]) }).default({ resources: [] }),
  /** Accounts / subscriptions / projects where automatic remediation is denied. */
  denylist: z.strictObject({ accounts: z.array(z.string().min(1)).default([]) }).default({ accounts: [] }),
  /** Unowned or incompletely enriched resources are only remediated by a person (fail closed). */
  requireOwner: z.boolean().default(true),
  /** Open tickets for sample findings (GuardDuty CreateSampleFindings) — off: they describe no real resource. */
  ticketSamples: z.boolean().default(false),
});
export type DecidePolicy = z.infer<typeof DecidePolicySchema>;
