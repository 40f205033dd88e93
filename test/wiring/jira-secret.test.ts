/**
 * The Jira secret of the AWS hub (Secrets Manager, aws-sdk-client-mock) and the Jira settings from the
 * environment agree on what a webhook secret may be, and a refusal names the field and where it came from.
 */
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { JiraConfigSchema } from '../../shared/adapters/tickets/jira-config.js';
import { JiraSecretSchema, secretReader } from '../../shared/adapters/wiring/aws.js';

const secrets = mockClient(SecretsManagerClient);
const SECRET_ID = 'closeloop/test/jira';
const jiraSecret = (webhookSecret: string) =>
  JSON.stringify({
    host: 'https://acme.atlassian.net',
    email: 'bot@example.com',
    apiToken: 'test-token',
    webhookSecret,
  });

describe('Jira webhook secret on the AWS hub', () => {
  beforeEach(() => secrets.reset());

  it('refuses a webhook secret shorter than 16 characters, naming the field and the secret, never the value', async () => {
    // Prepare
    secrets.on(GetSecretValueCommand).resolves({ SecretString: jiraSecret('s3cr3t-15-chars') });
    const read = secretReader(new SecretsManagerClient({ region: 'us-east-1' }), SECRET_ID, JiraSecretSchema);
    // Act
    const attempt = read();
    // Assess
    await expect(attempt).rejects.toThrow(
      'secret closeloop/test/jira: invalid fields webhookSecret (must be at least 16 characters)',
    );
    await expect(read()).rejects.not.toThrow('s3cr3t-15-chars');
  });

  it('accepts a 16-character webhook secret, as the Jira settings do, and agrees with them at every length', async () => {
    // Prepare
    secrets.on(GetSecretValueCommand).resolves({ SecretString: jiraSecret('s3cr3t-16-chars!') });
    const read = secretReader(new SecretsManagerClient({ region: 'us-east-1' }), SECRET_ID, JiraSecretSchema);
    const settings = (webhookSecret: string) => ({
      baseUrl: 'https://acme.atlassian.net',
      auth: { kind: 'basic', email: 'bot@example.com', apiToken: 'test-token' },
      project: 'SEC',
      webhookSecret,
    });
    // Act
    const { webhookSecret } = await read();
    const agree = [1, 15, 16, 64].map((n) => {
      const s = 'x'.repeat(n);
      return (
        JiraSecretSchema.safeParse(JSON.parse(jiraSecret(s))).success ===
        JiraConfigSchema.safeParse(settings(s)).success
      );
    });
    // Assess
    expect(webhookSecret).toBe('s3cr3t-16-chars!');
    expect(agree).toEqual([true, true, true, true]);
  });
});
