/**
 * Tickets: case events become Jira issues, comments and transitions (outbox-backed, idempotent per case).
 * On its schedule the function drains the outbox: what Jira could not take when its event came (the
 * storm budget, a Retry-After, an outage, a comment waiting for its ticket) is sent then, bounded per run.
 */

import { Logger } from '@aws-lambda-powertools/logger';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { createAwsPorts, JiraSecretSchema, secretReader } from '../../shared/adapters/wiring/aws.js';
import { jiraConfigFrom } from '../../shared/adapters/wiring/aws-jira.js';
import { ConfigError } from '../../shared/core/errors.js';
import type { TicketDeps } from '../../shared/core/tickets/context.js';
import { drainOutbox, OUTBOX_WAITING_LOG } from '../../shared/core/tickets/outbox.js';
import { createTicketStage } from '../../shared/core/tickets/stage.js';
import { hubFunction, MetricUnit, queueOrSchedule } from './middleware/hub-function.js';
import { stageFunction } from './middleware/stage-function.js';

const ports = createAwsPorts(process.env, { logger: new Logger({ serviceName: 'closeloop-ticket' }) });

/** The oldest request's wait from which the drain's line is a warning (well below the alarm's 60 minutes). */
export const WAITING_WARN_MINUTES = 10;

/** A drain stops taking entries after this long (well inside the function's timeout; an entry may retry). */
export const DRAIN_BUDGET_MS = 15_000;

let deps: Promise<TicketDeps> | undefined;
const ticketDeps = () =>
  (deps ??= (async (): Promise<TicketDeps> => {
    const secretId = ports.env.CLOSELOOP_JIRA_SECRET;
    if (!secretId) throw new ConfigError('CLOSELOOP_JIRA_SECRET is not set');
    const readJira = secretReader(
      new SecretsManagerClient({ region: ports.env.AWS_REGION }),
      secretId,
      JiraSecretSchema,
    );
    // jira.js with axios and mime-db (~500 KB minified) is imported when the deps are first built (the
    // first batch or drain), not at module load.
    const { JiraTicketSink } = await import('../../shared/adapters/tickets/jira.js');
    const sink = new JiraTicketSink({ config: jiraConfigFrom(await readJira(), ports.env), log: ports.log });
    const { policy } = await ports.config();
    return { store: ports.store, sink, clock: ports.clock, log: ports.log, policy: policy.tickets };
  })().catch((e: unknown) => {
    deps = undefined; // a failed build (config, secret) is retried on the next invocation
    throw e;
  }));

const onQueue = stageFunction(ports, 'ticket', async () => [createTicketStage(await ticketDeps())]);
const onSchedule = hubFunction(ports, 'ticket-drain', async (_event: unknown, metrics) => {
  const result = await drainOutbox(await ticketDeps(), { until: ports.clock.now().getTime() + DRAIN_BUDGET_MS });
  metrics.addMetric('OutboxSent', MetricUnit.Count, result.sent);
  metrics.addMetric('OutboxRemaining', MetricUnit.Count, result.remaining);
  metrics.addMetric('OutboxDeadLettered', MetricUnit.Count, result.deadLettered);
  // Whenever anything waits (also what this drain did not reach, or left to another worker's lease): the
  // alarm on requests waiting too long reads `oldestWaitingMinutes` from this line (serverless.yml). A wait
  // past a few drains is a warning: a stage run at WARN (to save on logs) still feeds the alarm.
  if (result.oldestWaitingMinutes === null) return result;
  if (result.oldestWaitingMinutes >= WAITING_WARN_MINUTES) ports.log.warn(OUTBOX_WAITING_LOG, { ...result });
  else ports.log.info(OUTBOX_WAITING_LOG, { ...result });
  return result;
});

/** An EventBridge schedule invokes with a `Scheduled Event`; the ticket queue with `Records`. */
export const handler = queueOrSchedule(onQueue, onSchedule);
