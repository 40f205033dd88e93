/**
 * Which account an action acts in. An AWS call addresses its resource without the resource's account (an
 * IAM user or role by name, an instance by id, a bucket by its global name): made with another account's
 * credentials it reads or changes a namesake there (the hub's own `Admin` role, the hub's own user
 * `deploy`), or finds nothing and calls the resource gone — and a leaked key "gone" is a verified fix.
 * So an AWS action runs only for a case of the account its context's credentials are in, or of an
 * account the context can act in through a member role ({@link ActionContext.inAwsAccount}); anything
 * else is refused before any call, with the reason (fail closed, also when the own account is unknown).
 *
 * Azure and GCP actions name their subscription or project in every call (the target carries it): a
 * missing grant there is an AccessDenied, never a namesake, so they are not scoped here.
 */
import { errorMessage } from '../core/errors.js';
import type { Provider } from '../core/model/finding.js';
import { type CloudClientOptions, createCloudClients } from './clients.js';
import type { ActionContext } from './define.js';

/**
 * `cause`: the refusal is an error of the moment (the own account could not be read), not the deployment's
 * reach: the same request may succeed later.
 */
export type Scoped = { ctx: ActionContext } | { refused: string; cause?: unknown };

const AWS_ACCOUNT = /^\d{12}$/;

/** The context to act on a resource of `provider` in `account` with, or why there is none. */
export async function contextFor(ctx: ActionContext, provider: Provider, account: string): Promise<Scoped> {
  if (provider !== 'aws') return { ctx };
  if (!AWS_ACCOUNT.test(account)) return { refused: `"${account}" is not an AWS account id: nothing is acted on` };
  let own: string | undefined;
  try {
    own = await ctx.awsAccount?.();
  } catch (e) {
    return { refused: `the AWS account of this run's credentials could not be read (${errorMessage(e)})`, cause: e };
  }
  if (own === undefined) return { refused: "the AWS account of this run's credentials is not known" };
  if (account === own) return { ctx };
  const member = ctx.inAwsAccount?.(account);
  if (member) return { ctx: member };
  return {
    refused:
      `the resource is in AWS account ${account} and this deployment acts in ${own} only ` +
      '(no member role to assume there: CLOSELOOP_MEMBER_ROLE)',
  };
}

/**
 * `inAwsAccount` for a context reaching member accounts: one context per account, built on its first
 * case, with `base`'s clock, log, settings and retries and its own clients under the credentials `member`
 * gives for that account (its member role). A member context reaches no further.
 */
export function memberContexts(
  base: ActionContext,
  member: { credentials(account: string): NonNullable<NonNullable<CloudClientOptions['aws']>['credentials']> },
): (account: string) => ActionContext {
  const contexts = new Map<string, ActionContext>();
  return (account) => {
    let ctx = contexts.get(account);
    if (!ctx) {
      const { inAwsAccount: _reach, ...rest } = base;
      const clients = createCloudClients({ aws: { credentials: member.credentials(account) } });
      ctx = { ...rest, clients, awsAccount: async () => account };
      contexts.set(account, ctx);
    }
    return ctx;
  };
}
