/**
 * Acting in the member accounts of an AWS organization. GuardDuty and Security Hub hand the hub (their
 * delegated administrator) every member account's findings, but the hub's role acts in the hub's account
 * only. With a member role deployed in each member account (infra/aws/member-role.json, a StackSet-ready
 * template trusting exactly the hub's function roles), a hub function assumes it to act or read there.
 *
 * The role's name is the same in every account (`CLOSELOOP_MEMBER_ROLE`); the ARN is built per account
 * in the hub's partition. Credentials are kept per account until five minutes before they expire, a
 * burst of asks shares one AssumeRole call, and a refusal is an `AdapterError` of kind `denied` naming
 * the role (never cached: the next case asks again).
 *
 * @see https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html
 */

import type { AssumeRoleCommandOutput } from '@aws-sdk/client-sts';
import { AdapterError, ConfigError } from '../../core/errors.js';
import { type Clock, systemClock } from '../../core/ports.js';
import { MEMBER_ROLE_NAME } from './member-role-name.js';

/** The one STS call made (aws-sdk-client-mock or a stub stands in). */
export interface AssumeRoleClient {
  assumeRole(input: {
    RoleArn: string;
    RoleSessionName: string;
    DurationSeconds: number;
  }): Promise<Pick<AssumeRoleCommandOutput, 'Credentials'>>;
}

/** What an AWS SDK client takes as `credentials` (the SDK's AwsCredentialIdentity, structurally). */
export interface AwsCredentialIdentity {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  expiration?: Date;
  accountId?: string;
}
export type AwsCredentialIdentityProvider = () => Promise<AwsCredentialIdentity>;

export interface MemberAccess {
  /** The member role's ARN in `account`. */
  roleArn(account: string): string;
  /** Credentials of the member role in `account`, for an SDK client's `credentials`. */
  credentials(account: string): AwsCredentialIdentityProvider;
}

/** Credentials are renewed this long before they expire (the SDK's own refresh window). */
const RENEW_BEFORE_MS = 5 * 60_000;
/** The shortest session STS grants: the hub asks often enough, and a leaked session dies soon. */
const SESSION_SECONDS = 900;

/**
 * @param options.session the session name CloudTrail shows in the member account (`closeloop-prod-remediate`).
 * @example memberAccess({ roleName: 'closeloop-member', partition: 'aws', session: 'closeloop-dev-remediate', sts })
 */
export function memberAccess(options: {
  roleName: string;
  partition: string;
  session: string;
  sts: () => Promise<AssumeRoleClient>;
  clock?: Clock;
}): MemberAccess {
  if (!MEMBER_ROLE_NAME.test(options.roleName))
    throw new ConfigError(`CLOSELOOP_MEMBER_ROLE: "${options.roleName}" is not an IAM role name (no path)`);
  const clock = options.clock ?? systemClock;
  const session = options.session.replace(/[^\w+=,.@-]/g, '-').slice(0, 64);
  const roleArn = (account: string) => `arn:${options.partition}:iam::${account}:role/${options.roleName}`;
  const held = new Map<string, { creds: AwsCredentialIdentity } | { pending: Promise<AwsCredentialIdentity> }>();

  const assume = async (account: string): Promise<AwsCredentialIdentity> => {
    const arn = roleArn(account);
    let out: Pick<AssumeRoleCommandOutput, 'Credentials'>;
    try {
      const sts = await options.sts();
      out = await sts.assumeRole({ RoleArn: arn, RoleSessionName: session, DurationSeconds: SESSION_SECONDS });
    } catch (e) {
      const name = e instanceof Error ? e.name : 'Error';
      const kind = /AccessDenied|NotAuthorized|InvalidClientTokenId/.test(name)
        ? 'denied'
        : /Throttl/.test(name)
          ? 'throttled'
          : 'transient';
      throw new AdapterError(kind, `sts:AssumeRole ${arn} failed (${name}): is the member role deployed there?`, {
        cause: e,
      });
    }
    const c = out.Credentials;
    if (!c?.AccessKeyId || !c.SecretAccessKey || !c.SessionToken || !c.Expiration)
      throw new AdapterError('transient', `sts:AssumeRole ${arn} answered without credentials`);
    return {
      accessKeyId: c.AccessKeyId,
      secretAccessKey: c.SecretAccessKey,
      sessionToken: c.SessionToken,
      expiration: new Date(c.Expiration),
      accountId: account,
    };
  };

  return {
    roleArn,
    credentials: (account) => async () => {
      const now = clock.now().getTime();
      const h = held.get(account);
      if (h && 'creds' in h && (h.creds.expiration?.getTime() ?? 0) - RENEW_BEFORE_MS > now) return h.creds;
      if (h && 'pending' in h) return h.pending;
      const pending = assume(account).then(
        (creds) => {
          held.set(account, { creds });
          return creds;
        },
        (e: unknown) => {
          held.delete(account);
          throw e;
        },
      );
      held.set(account, { pending });
      return pending;
    },
  };
}

/**
 * The member access a deployment configures: `CLOSELOOP_MEMBER_ROLE` (the role's name; unset or empty:
 * none, the hub acts in its own account only) in `CLOSELOOP_PARTITION` (default `aws`). STS is imported
 * on the first AssumeRole, so a function that never acts in a member account never loads it.
 */
export function memberAccessFromEnv(
  env: { CLOSELOOP_MEMBER_ROLE?: string | undefined; CLOSELOOP_PARTITION?: string | undefined; AWS_REGION?: string },
  session: string,
): MemberAccess | undefined {
  const roleName = env.CLOSELOOP_MEMBER_ROLE?.trim();
  if (!roleName) return undefined;
  let client: Promise<AssumeRoleClient> | undefined;
  return memberAccess({
    roleName,
    partition: env.CLOSELOOP_PARTITION?.trim() || 'aws',
    session,
    sts: () => {
      if (!client) {
        // The regional endpoint (the function's region): no dependency on us-east-1.
        const loading = import('@aws-sdk/client-sts').then(({ AssumeRoleCommand, STSClient }) => {
          const sts = new STSClient(env.AWS_REGION ? { region: env.AWS_REGION } : {});
          return { assumeRole: (input) => sts.send(new AssumeRoleCommand(input)) } satisfies AssumeRoleClient;
        });
        loading.catch(() => {
          if (client === loading) client = undefined; // a failed import is tried again
        });
        client = loading;
      }
      return client;
    },
  });
}

/** A hub function's member access (`CLOSELOOP_MEMBER_ROLE`), its session named `closeloop-<stage>-<fn>`. */
export const hubMemberAccess = (
  env: Parameters<typeof memberAccessFromEnv>[0] & { CLOSELOOP_STAGE: string },
  fn: string,
): MemberAccess | undefined => memberAccessFromEnv(env, `closeloop-${env.CLOSELOOP_STAGE}-${fn}`);
