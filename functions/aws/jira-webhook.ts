/**
 * Jira webhook (HTTP API, payload v2): the raw body and headers go to the core's handler, which checks
 * the HMAC signature with the secret from Secrets Manager; the events it returns go on the hub bus.
 */

import { Logger } from '@aws-lambda-powertools/logger';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { createAwsPorts, JiraSecretSchema, secretReader } from '../../shared/adapters/wiring/aws.js';
import { exceptionsRepo } from '../../shared/core/policy/exceptions.js';
import type { RemediationDeps } from '../../shared/core/remediation/stage.js';
import { handleJiraWebhook, markDelivered } from '../../shared/core/tickets/webhook.js';
import { HttpApiEventSchema, rawBodyOf } from './middleware/http-api.js';
import { hubFunction } from './middleware/hub-function.js';

const ports = createAwsPorts(process.env, { logger: new Logger({ serviceName: 'closeloop-jira-webhook' }) });
const secretId = ports.env.CLOSELOOP_JIRA_SECRET;
const jira = secretId
  ? secretReader(new SecretsManagerClient({ region: ports.env.AWS_REGION }), secretId, JiraSecretSchema)
  : undefined;

export const handler = hubFunction(ports, 'jira-webhook', async (input: unknown) => {
  const event = HttpApiEventSchema.parse(input);
  const config = await ports.config();
  // No secret configured → undefined → the core refuses every call (401): fail closed.
  const secret = jira ? (await jira()).webhookSecret : undefined;
  const { store, clock, log } = ports;
  const repo = exceptionsRepo(store, clock);
  // Approvals only: this function holds no action permissions and no cloud context, so an approval is
  // recorded here and its `approved` event is applied by the remediate function (RemediateApprovedRule).
  const remediation: RemediationDeps = {
    store,
    // Never planned or applied here (apply off, no context): no action modules in this bundle.
    actions: { get: () => undefined },
    ctx: undefined,
    clock,
    log,
    policy: config.policy.apply,
    apply: false,
    actor: `closeloop@aws-hub-${ports.env.CLOSELOOP_STAGE}`,
    exceptions: async () => [...config.exceptions, ...(await repo.list())],
  };
  const deps = { store, clock, log, policy: config.policy.tickets, secret, remediation };
  const res = await handleJiraWebhook({ headers: event.headers ?? {}, rawBody: rawBodyOf(event) }, deps);
  await ports.bus.publish(res.events);
  // Only once its events are out: a retry of a delivery whose publish failed is handled again.
  if (res.delivery) await markDelivered(deps, res.delivery);
  return { statusCode: res.status, headers: { 'content-type': 'application/json' }, body: JSON.stringify(res.body) };
});
