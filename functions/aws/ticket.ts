/** Tickets: case events become Jira issues, comments and transitions (outbox-backed, idempotent per case). */

import { Logger } from '@aws-lambda-powertools/logger';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { createAwsPorts, JiraSecretSchema, secretReader } from '../../shared/adapters/wiring/aws.js';
import { jiraConfigFrom } from '../../shared/adapters/wiring/aws-jira.js';
import { ConfigError } from '../../shared/core/errors.js';
import { createTicketStage } from '../../shared/core/tickets/stage.js';
import { stageFunction } from './middleware/stage-function.js';

const ports = createAwsPorts(process.env, { logger: new Logger({ serviceName: 'closeloop-ticket' }) });

export const handler = stageFunction(ports, 'ticket', async (p) => {
  const secretId = p.env.CLOSELOOP_JIRA_SECRET;
  if (!secretId) throw new ConfigError('CLOSELOOP_JIRA_SECRET is not set');
  const readJira = secretReader(new SecretsManagerClient({ region: p.env.AWS_REGION }), secretId, JiraSecretSchema);
  // jira.js with axios and mime-db (~500 KB minified) is imported when the stage is first built (the
  // first batch), not at module load.
  const { JiraTicketSink } = await import('../../shared/adapters/tickets/jira.js');
  const sink = new JiraTicketSink({ config: jiraConfigFrom(await readJira(), p.env), log: p.log });
  const { policy } = await p.config();
  return [createTicketStage({ store: p.store, sink, clock: p.clock, log: p.log, policy: policy.tickets })];
});
