/**
 * Remediation: plans, gates and applies the case's action with the function's own IAM role (in a member
 * account, with the member role it assumes there, when the deployment names one). Azure and
 * GCP actions are handed to their spokes (`Remediation Requested` on the hub bus → API destination) and
 * their answers (`Spoke Remediation Result`, routed to this queue) are recorded on the case here. On its
 * schedule, it settles abandoned claims and runs held work again.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { eventBridgeRemoteExecutor, remoteMessageOf } from '../../shared/adapters/bus/spoke-remote.js';
import { eventBridgeEventFromSqs, pipelineEventFromSqs } from '../../shared/adapters/bus/sqs.js';
import { createAwsPorts } from '../../shared/adapters/wiring/aws.js';
import { hubMemberAccess } from '../../shared/adapters/wiring/member-role.js';
import { errorMessage } from '../../shared/core/errors.js';
import type { PipelineEvent } from '../../shared/core/model/events.js';
import { keepEvents, keptEvents, keptOldestFirst } from '../../shared/core/pipeline/kept-events.js';
import { exceptionsRepo } from '../../shared/core/policy/exceptions.js';
import {
  createRemediationStage,
  type RemediationDeps,
  recordRemoteResult,
  recoverAbandonedApplies,
  redriveHandOver,
  releaseHeld,
} from '../../shared/core/remediation/stage.js';
import { awsActionContext } from './middleware/action-context.js';
import { receiveCountOf, redeliverEarly } from './middleware/early-redelivery.js';
import { hubFunction, MetricUnit, queueOrSchedule, sqsFunction } from './middleware/hub-function.js';

const ports = createAwsPorts(process.env, { logger: new Logger({ serviceName: 'closeloop-remediate' }) });
const remote = eventBridgeRemoteExecutor(ports.clients.eventbridge, ports.env.CLOSELOOP_BUS);

let deps: Promise<RemediationDeps> | undefined;
const load = () => {
  deps ??= (async (): Promise<RemediationDeps> => {
    // The action registry (every action module and its declarations) is imported with the deps, on the
    // first record; each action's cloud SDK only when that action first runs.
    const [config, { getAction }, { hubAwsLookup }] = await Promise.all([
      ports.config(),
      import('../../shared/actions/registry.js'),
      import('../../shared/adapters/wiring/lookup.js'),
    ]);
    const repo = exceptionsRepo(ports.store, ports.clock);
    const member = hubMemberAccess(ports.env, 'remediate');
    return {
      store: ports.store,
      actions: { get: getAction },
      ctx: awsActionContext(ports, member),
      clock: ports.clock,
      log: ports.log,
      policy: config.policy.apply,
      // The environment on the live tags (here, and sent to a spoke) is read with enrichment's keys and words.
      enrichment: config.policy.enrichment,
      // Whether a decided mode applies is policy (apply section); the deployment itself may act.
      apply: ports.env.CLOSELOOP_APPLY,
      actor: `closeloop@aws-hub-${ports.env.CLOSELOOP_STAGE}`,
      exceptions: async () => [...config.exceptions, ...(await repo.list())],
      // The skip tag re-read from the live AWS resource before an apply (uncached; the hub's account, and
      // member accounts through the member role); Azure and GCP cases keep decide's gate here and are
      // re-checked by their spoke.
      tags: hubAwsLookup(ports.env, member),
      remote,
    };
  })().catch((e: unknown) => {
    deps = undefined; // a failed build (config) is retried on the next record
    throw e;
  });
  return deps;
};

/**
 * The follow-ups of a message whose publish failed, kept under the id of the event it carried until a delivery
 * of it publishes them. The stage wrote the case first, and what it settled (a decision needing approval, a
 * failed apply, a spoke's answer holding the case) is not acted on again: delivered again, the message had
 * nothing to announce, and the ticket never asked for the approval nor heard of the failure, nor did the
 * evidence. Kept only when the publish fails (nothing more on the way that works); read when a delivery finds
 * nothing to do, also after a redrive from the DLQ. Keyed by the EventBridge event id, which every delivery
 * of one message carries (a pipeline event's own id for closeloop's events).
 */
export const UNPUBLISHED_FOLLOW_UPS = 'remediate-unpublished';

/** Publishes what handling message `id` produced; when that fails, keeps it for the next delivery of `id`. */
async function publishFollowUps(id: string, followUps: PipelineEvent[], receiveCount: number) {
  const kept = followUps.length === 0 ? await keptEvents(ports, UNPUBLISHED_FOLLOW_UPS, id) : undefined;
  const out = kept ?? followUps;
  try {
    await ports.bus.publish(out);
  } catch (e) {
    if (!kept && out.length > 0)
      await keepEvents(ports, UNPUBLISHED_FOLLOW_UPS, out, id).catch((keepError: unknown) =>
        ports.log.error('remediate: follow-ups neither published nor kept', {
          id,
          error: errorMessage(keepError),
        }),
      );
    throw e;
  }
  // Published: what an earlier delivery kept is done with (a delivery that handled the event anew included).
  if (kept || receiveCount > 1) await ports.store.delete(UNPUBLISHED_FOLLOW_UPS, id);
}

// An event that reached the stage before its case write is delivered again in seconds, not the queue's timeout.
const onQueue = sqsFunction(
  ports,
  'remediate',
  redeliverEarly(ports, 'remediate', async (record, metrics) => {
    const envelope = eventBridgeEventFromSqs(record);
    const message = remoteMessageOf(envelope);
    if (message?.kind === 'result') {
      const followUps = await recordRemoteResult(await load(), message.result);
      await publishFollowUps(`eventbridge:${envelope.id}`, followUps, receiveCountOf(record));
      metrics.addMetric('remediate.remote-result', MetricUnit.Count, 1);
      return;
    }
    // A hand-over the API destination could not deliver, redriven from the dead-letter queue: sent again while
    // its case still waits on it and nothing stops the apply now (an apply whose claim was settled since is
    // dropped, and said; one an exception or the circuit breaker stops now blocks or holds its case, told).
    if (message?.kind === 'request') {
      const redrive = await redriveHandOver(await load(), message.request);
      if (redrive.send) return remote.dispatch(message.request);
      await publishFollowUps(`eventbridge:${envelope.id}`, redrive.events, receiveCountOf(record));
      ports.log.warn(
        redrive.events.length > 0
          ? 'redriven hand-over not sent: an apply gate stops it now (the case says which)'
          : 'redriven hand-over dropped: its case no longer waits on that claim',
        { caseKey: message.request.caseKey, requestId: message.request.requestId },
      );
      metrics.addMetric('remediate.stale-hand-over', MetricUnit.Count, 1);
      return;
    }
    const stage = createRemediationStage(await load());
    const event = pipelineEventFromSqs(record);
    if (!stage.handles.includes(event.type)) return;
    await publishFollowUps(event.id, await stage.handle(event), receiveCountOf(record));
    metrics.addMetric(`${stage.name}.handled`, MetricUnit.Count, 1);
  }),
);

/** Kept follow-ups a schedule run publishes at most (oldest first; the rest wait for the next run). */
export const KEPT_PER_RUN = 100;

/** Publishes what is kept in {@link UNPUBLISHED_FOLLOW_UPS}, oldest first; stops at the first publish that fails. */
async function publishKept(): Promise<number> {
  let sent = 0;
  for (const kept of await keptOldestFirst(ports, UNPUBLISHED_FOLLOW_UPS, { limit: KEPT_PER_RUN })) {
    try {
      await ports.bus.publish(kept.events);
    } catch (e) {
      ports.log.warn('remediate: kept follow-ups still not published; the next run tries again', {
        id: kept.id,
        error: errorMessage(e),
      });
      break;
    }
    await ports.store.delete(UNPUBLISHED_FOLLOW_UPS, kept.id);
    sent += kept.events.length;
  }
  return sent;
}

/**
 * The schedule starts no case later than this before the function's timeout: room for an apply in flight
 * (its calls retried with backoff) and the metrics flush. What it did not reach comes first in the next run.
 */
export const SWEEP_MARGIN_MS = 60_000;

/**
 * Every few minutes: claims whose invocation died (a timeout, an out-of-memory kill) or whose spoke never
 * answered are settled failed once older than policy apply.abandonAfter, and held work (budget spent,
 * breaker open) is run again once its hold can have lifted. Nothing else would: this function is fed by
 * its queue, and a held or abandoned case gets no new event of its own.
 */
const onSchedule = hubFunction(ports, 'remediate-schedule', async (_event: unknown, metrics, context) => {
  // Taken before the deps are built: a cold start's imports count against the timeout too.
  const until = ports.clock.now().getTime() + context.getRemainingTimeInMillis() - SWEEP_MARGIN_MS;
  const deps = await load();
  let published = 0;
  // First what an earlier run, or a message's delivery, could not publish: the case is written, and nothing
  // else would announce it (a released hold is gone, an applied case gets no new event once it is fixed).
  const resent = await publishKept();
  // What a case produced goes out right after its write (the ticket is told), also when the invocation is
  // stopped part-way; kept for the next run when the publish fails.
  const publish = async (found: readonly PipelineEvent[]) => {
    try {
      await ports.bus.publish(found);
    } catch (e) {
      await keepEvents(ports, UNPUBLISHED_FOLLOW_UPS, found);
      throw e;
    }
    published += found.length;
  };
  const { events: _recoveredEvents, ...claims } = await recoverAbandonedApplies(deps, ports.clock.now(), {
    until,
    publish,
  });
  const { events: _heldEvents, ...held } = await releaseHeld(deps, { until, publish });
  metrics.addMetric('ClaimsRecovered', MetricUnit.Count, claims.recovered);
  metrics.addMetric('HeldReleased', MetricUnit.Count, held.released);
  metrics.addMetric('SweepRemaining', MetricUnit.Count, claims.remaining + held.remaining);
  // Each logged with its case where it happened; the others went on.
  metrics.addMetric('SweepErrors', MetricUnit.Count, claims.errors + held.errors);
  metrics.addMetric('FollowUpsResent', MetricUnit.Count, resent);
  if (claims.recovered > 0) ports.log.warn('remediate: abandoned claims settled failed', { ...claims });
  if (claims.remaining + held.remaining > 0)
    ports.log.info('remediate: time budget spent; the next run takes the cases not reached', {
      claims: claims.remaining,
      held: held.remaining,
    });
  return { claims, held, published, resent };
});

/** An EventBridge schedule invokes with a `Scheduled Event`; the remediate queue with `Records`. */
export const handler = queueOrSchedule(onQueue, onSchedule);
