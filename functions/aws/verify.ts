/**
 * Verification: on `case.verify-requested` (SQS) re-reads the resource through the action's verify(),
 * records evidence and marks the source resolved; on the schedule, re-verifies recently closed cases.
 * Azure/GCP resources are re-read by their spokes (`Remediation Requested` with op `verify`); their
 * answers (`Spoke Remediation Result`, op `verify`, routed to this queue) are recorded here. Defender alerts
 * and SCC findings verified fixed are marked resolved by their spoke (op `resolve`); its answer is recorded
 * here too, as an `upstream` evidence record.
 */

import { Logger } from '@aws-lambda-powertools/logger';
import { eventBridgeRemoteExecutor, remoteMessageOf } from '../../shared/adapters/bus/spoke-remote.js';
import { eventBridgeEventFromSqs, pipelineEventFromSqs } from '../../shared/adapters/bus/sqs.js';
import { type AwsPorts, createAwsEvidenceStore, createAwsPorts } from '../../shared/adapters/wiring/aws.js';
import { hubMemberAccess } from '../../shared/adapters/wiring/member-role.js';
import {
  createVerifyStage,
  recordRemoteVerification,
  reverifyRecent,
  type VerifyDeps,
} from '../../shared/core/verify/stage.js';
import { recordUpstreamAnswer } from '../../shared/core/verify/upstream-answer.js';
import { awsActionContext } from './middleware/action-context.js';
import { redeliverEarly } from './middleware/early-redelivery.js';
import { hubFunction, MetricUnit, queueOrSchedule, sqsFunction } from './middleware/hub-function.js';

const ports = createAwsPorts(process.env, { logger: new Logger({ serviceName: 'closeloop-verify' }) });
let deps: Promise<VerifyDeps> | undefined;

async function buildDeps(p: AwsPorts): Promise<VerifyDeps> {
  const { policy } = await p.config();
  // The GuardDuty and Security Hub clients (~290 KB minified) and the action registry are imported when the
  // deps are first built (the first record or schedule), not at module load: the cold start parses only
  // what every path needs.
  const [
    { GuardDutyClient },
    { SecurityHubClient },
    { GuardDutyUpstream },
    { RoutingUpstreamStatus },
    { SecurityHubUpstream },
    { RemoteUpstream },
    { getAction },
  ] = await Promise.all([
    import('@aws-sdk/client-guardduty'),
    import('@aws-sdk/client-securityhub'),
    import('../../shared/adapters/upstream/guardduty.js'),
    import('../../shared/adapters/upstream/route.js'),
    import('../../shared/adapters/upstream/securityhub.js'),
    import('../../shared/adapters/upstream/spoke.js'),
    import('../../shared/actions/registry.js'),
  ]);
  const region = (r: string) => ({ region: r });
  const remote = eventBridgeRemoteExecutor(p.clients.eventbridge, p.env.CLOSELOOP_BUS);
  // Defender alerts and SCC findings are marked resolved by their spoke, under its own identity.
  const bySpoke = new RemoteUpstream({
    executor: remote,
    actor: `closeloop@aws-hub-${p.env.CLOSELOOP_STAGE}`,
    clock: p.clock,
  });
  const upstream = new RoutingUpstreamStatus({
    guardduty: new GuardDutyUpstream({
      client: (r) => new GuardDutyClient(region(r)),
      archive: policy.verification.upstream.guarddutyArchive,
      ...(p.env.CLOSELOOP_ACCOUNT_ID ? { account: p.env.CLOSELOOP_ACCOUNT_ID } : {}),
    }),
    securityhub: new SecurityHubUpstream({ client: (r) => new SecurityHubClient(region(r)), updatedBy: 'closeloop' }),
    defender: bySpoke,
    scc: bySpoke,
  });
  const evidence = await createAwsEvidenceStore(p);
  const actions = { get: getAction };
  return {
    store: p.store,
    evidence,
    actions,
    ctx: awsActionContext(p, hubMemberAccess(p.env, 'verify')),
    upstream,
    clock: p.clock,
    log: p.log,
    policy: policy.verification,
    remote,
  };
}
const verifyDeps = () =>
  (deps ??= buildDeps(ports).catch((e: unknown) => {
    deps = undefined; // a failed build (config, evidence bucket) is retried on the next record
    throw e;
  }));

// One queue carries closeloop's own events and the spokes' verify answers, mixed in a batch.
// An event that reached the stage before its case write is delivered again in seconds, not the queue's timeout.
const onQueue = sqsFunction(
  ports,
  'verify',
  redeliverEarly(ports, 'verify', async (record, metrics) => {
    const deps = await verifyDeps();
    const message = remoteMessageOf(eventBridgeEventFromSqs(record));
    if (message?.kind === 'result' && message.result.op === 'resolve') {
      await recordUpstreamAnswer(deps, message.result);
      metrics.addMetric('verify.upstream-answer', MetricUnit.Count, 1);
      return;
    }
    if (message?.kind === 'result') {
      // Published inside, after the events were kept: the answer's redelivery cannot announce them again.
      await recordRemoteVerification(deps, message.result, { publish: (events) => ports.bus.publish(events) });
      metrics.addMetric('verify.remote-answer', MetricUnit.Count, 1);
      return;
    }
    const stage = createVerifyStage(deps);
    const event = pipelineEventFromSqs(record);
    if (!stage.handles.includes(event.type)) return;
    await ports.bus.publish(await stage.handle(event));
    metrics.addMetric(`${stage.name}.handled`, MetricUnit.Count, 1);
  }),
);
/**
 * The sweep starts no re-check later than this before the function's timeout: room for the re-check in
 * flight (with the default policy a failing re-read backs off 2 + 4 + 8 s between its attempts, and a
 * Retry-After may ask for more), its evidence, case write and publish, and the metrics flush. A re-check cut
 * off by the timeout would leave its case written and its events unpublished. What the sweep did not reach
 * comes first in the next run.
 */
export const REVERIFY_MARGIN_MS = 60_000;
/**
 * A closed case checked within the last hour is not due: well under the schedule's 6 hours, it keeps a
 * repeated delivery of the schedule (at least once) from re-reading what the first one just checked.
 */
export const REVERIFY_MIN_AGE_MS = 3_600_000;

const onSchedule = hubFunction(ports, 'reverify', async (_event: unknown, metrics, context) => {
  // Taken before the deps are built: a cold start's imports count against the timeout too.
  const until = ports.clock.now().getTime() + context.getRemainingTimeInMillis() - REVERIFY_MARGIN_MS;
  let published = 0;
  // `events` is empty: they went out through `publish`.
  const { events: _published, ...counts } = await reverifyRecent(await verifyDeps(), ports.clock.now(), {
    until,
    minAgeMs: REVERIFY_MIN_AGE_MS,
    // What the sweep finds goes out case by case (a regression's case.reopened reaches the ticket; a
    // re-check's verdict its evidence): left unpublished, the case was reopened in the store and its ticket
    // never told, also when the invocation is stopped part-way.
    publish: async (found) => {
      await ports.bus.publish(found);
      published += found.length;
    },
  });
  metrics.addMetric('Reverified', MetricUnit.Count, 1);
  metrics.addMetric('ReverifyRemaining', MetricUnit.Count, counts.remaining);
  metrics.addMetric('ReverifyErrors', MetricUnit.Count, counts.errors);
  if (counts.remaining > 0)
    ports.log.info('reverify: time budget spent; the cases not reached come first in the next run', { ...counts });
  return { ...counts, published };
});

/** An EventBridge schedule invokes with a `Scheduled Event`; the verify queue with `Records`. */
export const handler = queueOrSchedule(onQueue, onSchedule);
