/**
 * Remediation: plans, gates and applies the case's action with the function's own IAM role (in a member
 * account, with the member role it assumes there, when the deployment names one). Azure and
 * GCP actions are handed to their spokes (`Remediation Requested` on the hub bus → API destination) and
 * their answers (`Spoke Remediation Result`, routed to this queue) are recorded on the case here.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { eventBridgeRemoteExecutor, remoteMessageOf } from '../../shared/adapters/bus/spoke-remote.js';
import { eventBridgeEventFromSqs, pipelineEventFromSqs } from '../../shared/adapters/bus/sqs.js';
import { createAwsPorts } from '../../shared/adapters/wiring/aws.js';
import { hubMemberAccess } from '../../shared/adapters/wiring/member-role.js';
import { exceptionsRepo } from '../../shared/core/policy/exceptions.js';
import {
  createRemediationStage,
  type RemediationDeps,
  recordRemoteResult,
} from '../../shared/core/remediation/stage.js';
import { awsActionContext } from './middleware/action-context.js';
import { MetricUnit, sqsFunction } from './middleware/hub-function.js';

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

export const handler = sqsFunction(ports, 'remediate', async (record, metrics) => {
  const message = remoteMessageOf(eventBridgeEventFromSqs(record));
  if (message?.kind === 'result') {
    await ports.bus.publish(await recordRemoteResult(await load(), message.result));
    metrics.addMetric('remediate.remote-result', MetricUnit.Count, 1);
    return;
  }
  // A hand-over the API destination could not deliver, redriven from the dead-letter queue: send it again.
  if (message?.kind === 'request') return remote.dispatch(message.request);
  const stage = createRemediationStage(await load());
  const event = pipelineEventFromSqs(record);
  if (!stage.handles.includes(event.type)) return;
  await ports.bus.publish(await stage.handle(event));
  metrics.addMetric(`${stage.name}.handled`, MetricUnit.Count, 1);
});
