/** The Jira sink's settings on the AWS hub (the ticket function's only; kept out of aws.ts with the ticket policy it validates against). */
import { ConfigError } from '../../core/errors.js';
import { type JiraConfig, JiraConfigSchema } from '../tickets/jira-config.js';
import type { AwsEnv, JiraSecret } from './aws.js';

/** The Jira sink's configuration from the Secrets Manager secret and the function environment. */
export function jiraConfigFrom(secret: JiraSecret, env: AwsEnv): JiraConfig {
  const parsed = JiraConfigSchema.safeParse({
    baseUrl: secret.host,
    auth: { kind: 'basic', email: secret.email, apiToken: secret.apiToken },
    project: env.CLOSELOOP_JIRA_PROJECT,
    ...(secret.webhookSecret ? { webhookSecret: secret.webhookSecret } : {}),
  });
  if (!parsed.success) {
    // Field names only: the secret's values never reach a message.
    throw new ConfigError(
      `Jira secret/project invalid: ${parsed.error.issues.map((i) => i.path.join('.')).join(', ')}`,
    );
  }
  return parsed.data;
}
