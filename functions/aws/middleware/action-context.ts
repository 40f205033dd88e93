/**
 * The context remediation and verification hand to actions: cloud clients under the function's own IAM
 * role, created lazily per region. Kept out of the shared wiring so only these two bundles carry the
 * action clients.
 */
import { createCloudClients } from '../../../shared/actions/clients.js';
import type { ActionContext } from '../../../shared/actions/define.js';
import type { AwsPorts } from '../../../shared/adapters/wiring/aws.js';

export const awsActionContext = (ports: AwsPorts): ActionContext => ({
  clients: createCloudClients({}),
  clock: ports.clock,
  log: ports.log,
  // The function's role is in the hub's account: AWS actions act on that account's resources only.
  awsAccount: async () => ports.env.CLOSELOOP_ACCOUNT_ID,
});
