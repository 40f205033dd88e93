/**
 * The context remediation and verification hand to actions: cloud clients under the function's own IAM
 * role, created lazily per region, acting in the hub's account; with `CLOSELOOP_MEMBER_ROLE` set, the
 * same clients under that role assumed in a member account, for that account's cases. Kept out of the
 * shared wiring so only these two bundles carry the action clients.
 */
import { createCloudClients } from '../../../shared/actions/clients.js';
import type { ActionContext } from '../../../shared/actions/define.js';
import { memberContexts } from '../../../shared/actions/scope.js';
import type { AwsPorts } from '../../../shared/adapters/wiring/aws.js';
import type { MemberAccess } from '../../../shared/adapters/wiring/member-role.js';

export const awsActionContext = (ports: AwsPorts, member?: MemberAccess): ActionContext => {
  const base: ActionContext = {
    clients: createCloudClients({}),
    clock: ports.clock,
    log: ports.log,
    // The function's role is in the hub's account: AWS actions act on that account's resources only.
    awsAccount: async () => ports.env.CLOSELOOP_ACCOUNT_ID,
  };
  return member ? { ...base, inAwsAccount: memberContexts(base, member) } : base;
};
