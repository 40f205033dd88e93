/**
 * The Jira connection settings (validated at the boundary), apart from the Jira adapter so the wiring
 * validates them without importing jira.js.
 */
import * as z from 'zod';
import { PROJECT_KEY_PATTERN } from '../../core/tickets/policy.js';

export const JiraConfigSchema = z.object({
  baseUrl: z.url({ protocol: /^https?$/ }).refine((u) => {
    const url = new URL(u);
    return url.username === '' && url.password === '';
  }, 'must not hold a user name or password (the URL is logged and put into ticket links): use JIRA_EMAIL and JIRA_API_TOKEN'),
  auth: z.discriminatedUnion('kind', [
    z.object({ kind: z.literal('basic'), email: z.string().min(3), apiToken: z.string().min(1) }),
    z.object({ kind: z.literal('bearer'), token: z.string().min(1) }),
  ]),
  project: z.string().regex(PROJECT_KEY_PATTERN, 'JIRA_PROJECT must be a Jira project key such as SEC'),
  /** HMAC key of Jira's webhook; the AWS hub's JiraSecretSchema requires the same length. */
  webhookSecret: z.string().min(16, 'must be at least 16 characters').optional(),
  /**
   * Per-request timeout: a connection silent this long is a transient failure, not a stuck stage, and no
   * request lasts more than twice this, however slowly its answer arrives.
   */
  timeoutMs: z.number().int().min(100).default(15_000),
});
export type JiraConfig = z.infer<typeof JiraConfigSchema>;
