/** What enrichment adds to a finding: whose it is, what it is part of, and how each value was found. */
import * as z from 'zod';

export const EnvironmentSchema = z.enum(['prod', 'staging', 'test', 'dev', 'sandbox', 'unknown']);
export type Environment = z.infer<typeof EnvironmentSchema>;

/** How one enriched value was found. `detail` is a sentence a person reads in a ticket. */
export const ProvenanceSchema = z.object({
  via: z.enum([
    'tag',
    'lookup',
    'registry-rule',
    'registry-account',
    'registry-team',
    'name-pattern',
    'triage',
    'default',
  ]),
  /** e.g. "owner from tag `owner` on the resource", "environment from account 111122223333 in the registry" */
  detail: z.string(),
  /** The tag key, registry rule id, account id or pattern that matched. */
  ref: z.string().optional(),
});
export type Provenance = z.infer<typeof ProvenanceSchema>;

/** Where a team's tickets go (from the ownership registry). */
export const JiraRoutingSchema = z.object({
  project: z.string().optional(),
  component: z.string().optional(),
  issueType: z.string().optional(),
  assigneeEmail: z.string().optional(),
});
export type JiraRouting = z.infer<typeof JiraRoutingSchema>;

export const EnrichmentSchema = z.object({
  /** Owner as found (usually an e-mail); the triage owner when none was found. */
  owner: z.string(),
  ownerEmail: z.string().nullable(),
  team: z.string().nullable(),
  application: z.string().nullable(),
  environment: EnvironmentSchema,
  criticality: z.string().nullable(),
  /** true when no owner was found and the triage owner stands in: an owner gap, reported, never dropped. */
  unowned: z.boolean(),
  provenance: z.object({
    owner: ProvenanceSchema,
    team: ProvenanceSchema.optional(),
    application: ProvenanceSchema.optional(),
    environment: ProvenanceSchema,
    criticality: ProvenanceSchema.optional(),
  }),
  jira: JiraRoutingSchema.optional(),
  /** Problems met while enriching (lookup failed, registry rule invalid); the values above still stand. */
  warnings: z.array(z.string()).default([]),
  /** false when a live lookup that was needed could not be made: gates that depend on owner fail closed. */
  complete: z.boolean().default(true),
});
export type Enrichment = z.infer<typeof EnrichmentSchema>;
