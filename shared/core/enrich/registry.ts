/**
 * The ownership registry (`registry.yaml`): who owns which account, subscription, project and resource,
 * which team a resource belongs to, and where each team's tickets go. Parsed strictly: a typo in our own
 * configuration is an error naming the field (house style §5), never a silently ignored key.
 *
 * Resource globs (`rules[].match.resource`): `*` matches any characters (including `/` and `:`), `?` one
 * character, the whole id must match; Azure ids compare case-insensitively; a Cloud Storage bucket matches
 * written either way (see canonicalResourceId). First matching rule wins.
 *
 * @example
 * ```yaml
 * triage: { owner: secops-triage@acme.example, jira: { project: SEC, component: triage } }
 * accounts:
 *   - { provider: aws, id: "111122223333", environment: prod, team: data-platform }
 * rules:
 *   - id: public-website
 *     match: { provider: aws, resource: "arn:aws:s3:::acme-public-website*" }
 *     team: web
 *     application: public-website
 * teams:
 *   - { id: web, owner: web-team@acme.example, jira: { project: WEB, assigneeEmail: web-lead@acme.example } }
 * ```
 */
import * as z from 'zod';
import { EnvironmentSchema } from '../model/enrichment.js';
import { ProviderSchema } from '../model/finding.js';

/** Environments a registry may assign (`unknown` is what inference yields, never something to configure). */
export const KnownEnvironmentSchema = EnvironmentSchema.exclude(['unknown']);

const JiraKey = z.string().regex(/^[A-Z][A-Z0-9_]{1,9}$/, 'a Jira project key such as SEC or WEB');
const Email = z.email();

/** Where a team's tickets go. */
export const RegistryJiraSchema = z.strictObject({
  project: JiraKey,
  component: z.string().min(1).optional(),
  issueType: z.string().min(1).optional(),
  assigneeEmail: Email.optional(),
});

export const RegistryTeamSchema = z.strictObject({
  id: z.string().min(1),
  /** The team's default owner (an e-mail): used when a resource has a team but no owner of its own. */
  owner: z.string().min(1).optional(),
  jira: RegistryJiraSchema,
});
export type RegistryTeam = z.infer<typeof RegistryTeamSchema>;

export const RegistryAccountSchema = z.strictObject({
  provider: ProviderSchema,
  /** AWS account id (12 digits), Azure subscription id (GUID) or GCP project id or project number. */
  id: z.string().min(1),
  /** GCP only: the project number beside the project id, so findings that carry either one match. */
  number: z
    .string()
    .regex(/^\d{6,20}$/)
    .optional(),
  /**
   * A readable alias (`acme-prod`) for the people who keep the registry. Not read for the environment: an entry
   * always says its `environment`, which wins over any name pattern.
   */
  name: z.string().min(1).optional(),
  environment: KnownEnvironmentSchema,
  team: z.string().min(1).optional(),
  owner: z.string().min(1).optional(),
  criticality: z.string().min(1).optional(),
});
export type RegistryAccount = z.infer<typeof RegistryAccountSchema>;

export const RegistryRuleSchema = z.strictObject({
  id: z.string().min(1),
  match: z.strictObject({
    provider: ProviderSchema.optional(),
    /** Glob on the resource id (ARN, Azure resource id, GCP full resource name). */
    resource: z.string().min(1),
    /**
     * Exact resource type as the finding gives it (`S3Bucket`, `AwsS3Bucket`, …); for Azure without case, as
     * ARM compares types (`Microsoft.Storage/storageAccounts` matches a lower-cased Defender resource id).
     */
    type: z.string().min(1).optional(),
    /**
     * Account / subscription / project id (or GCP project number). A project in `accounts` with both matches
     * a finding that carries either one.
     */
    account: z.string().min(1).optional(),
  }),
  owner: z.string().min(1).optional(),
  team: z.string().min(1).optional(),
  application: z.string().min(1).optional(),
  environment: KnownEnvironmentSchema.optional(),
  criticality: z.string().min(1).optional(),
});
export type RegistryRule = z.infer<typeof RegistryRuleSchema>;

export const RegistryTriageSchema = z.strictObject({
  owner: z.string().min(1),
  team: z.string().min(1).optional(),
  jira: RegistryJiraSchema.partial().default({}),
});

const AWS_ACCOUNT = /^\d{12}$/;
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
// GCP project ids: 6–30 chars, lower-case letters, digits, hyphens; or a project number.
const GCP_PROJECT = /^(?:[a-z][a-z0-9-]{4,28}[a-z0-9]|\d{6,20})$/;

export const RegistrySchema = z
  .strictObject({
    triage: RegistryTriageSchema.default({ owner: 'security-triage', jira: {} }),
    accounts: z.array(RegistryAccountSchema).default([]),
    rules: z.array(RegistryRuleSchema).default([]),
    teams: z.array(RegistryTeamSchema).default([]),
  })
  .superRefine((reg, ctx) => {
    const teams = new Set<string>();
    reg.teams.forEach((t, i) => {
      if (teams.has(t.id))
        ctx.addIssue({ code: 'custom', path: ['teams', i, 'id'], message: `duplicate team "${t.id}"` });
      teams.add(t.id);
    });
    const unknownTeam = (team: string | undefined, path: (string | number)[]): void => {
      if (team !== undefined && !teams.has(team))
        ctx.addIssue({ code: 'custom', path, message: `unknown team "${team}" (not in teams[])` });
    };
    unknownTeam(reg.triage.team, ['triage', 'team']);
    const accounts = new Set<string>();
    reg.accounts.forEach((a, i) => {
      const formatOk =
        a.provider === 'aws'
          ? AWS_ACCOUNT.test(a.id)
          : a.provider === 'azure'
            ? GUID.test(a.id)
            : GCP_PROJECT.test(a.id);
      if (!formatOk) {
        const want = { aws: 'a 12-digit AWS account id', azure: 'a subscription GUID', gcp: 'a project id or number' };
        ctx.addIssue({ code: 'custom', path: ['accounts', i, 'id'], message: `expected ${want[a.provider]}` });
      }
      if (a.number !== undefined && a.provider !== 'gcp')
        ctx.addIssue({ code: 'custom', path: ['accounts', i, 'number'], message: 'only GCP projects have a number' });
      const k = `${a.provider}|${a.id.toLowerCase()}`;
      if (accounts.has(k))
        ctx.addIssue({ code: 'custom', path: ['accounts', i, 'id'], message: `duplicate account "${a.id}"` });
      accounts.add(k);
      unknownTeam(a.team, ['accounts', i, 'team']);
    });
    const rules = new Set<string>();
    reg.rules.forEach((r, i) => {
      if (rules.has(r.id))
        ctx.addIssue({ code: 'custom', path: ['rules', i, 'id'], message: `duplicate rule "${r.id}"` });
      rules.add(r.id);
      unknownTeam(r.team, ['rules', i, 'team']);
    });
  });
export type Registry = z.infer<typeof RegistrySchema>;
