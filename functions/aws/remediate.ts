/** Remediation: plans, gates and applies the case's action with the function's own IAM role. */
import { Logger } from '@aws-lambda-powertools/logger';
import { getAction } from '../../shared/actions/registry.js';
import { createAwsPorts } from '../../shared/adapters/wiring/aws.js';
import { exceptionsRepo } from '../../shared/core/policy/exceptions.js';
import { createRemediationStage } from '../../shared/core/remediation/stage.js';
import { awsActionContext } from './middleware/action-context.js';
import { stageFunction } from './middleware/stage-function.js';

const ports = createAwsPorts(process.env, { logger: new Logger({ serviceName: 'closeloop-remediate' }) });

export const handler = stageFunction(ports, 'remediate', async (p) => {
  const config = await p.config();
  const repo = exceptionsRepo(p.store, p.clock);
  return [
    createRemediationStage({
      store: p.store,
      actions: { get: getAction },
      ctx: awsActionContext(p),
      clock: p.clock,
      log: p.log,
      policy: config.policy.apply,
      // Whether a decided mode applies is policy (apply section); the deployment itself may act.
      apply: p.env.CLOSELOOP_APPLY,
      actor: `closeloop@aws-hub-${p.env.CLOSELOOP_STAGE}`,
      exceptions: async () => [...config.exceptions, ...(await repo.list())],
    }),
  ];
});
