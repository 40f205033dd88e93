/**
 * Cross-cloud credentials without long-lived keys: a spoke trades its own platform identity token (Azure
 * managed identity, GCP service account ID token) for short-lived AWS credentials with
 * AssumeRoleWithWebIdentity, scoped to one role that may only put the spoke's own events on the hub bus.
 * AssumeRoleWithWebIdentity needs no AWS credentials to call: the token is the credential.
 *
 * @see https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRoleWithWebIdentity.html
 */
import { AssumeRoleWithWebIdentityCommand, type STSClient } from '@aws-sdk/client-sts';
import { AdapterError } from '../../core/errors.js';
import { type Clock, systemClock } from '../../core/ports.js';

export interface AwsTemporaryCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
  expiration: Date;
}

export interface WebIdentityOptions {
  sts: STSClient;
  roleArn: string;
  /** Shows in CloudTrail as the assumed-role session: name the spoke. */
  sessionName: string;
  /** Returns a fresh OIDC token of the spoke's identity (never logged). */
  token: () => Promise<string>;
  clock?: Clock;
  /** Refresh this long before expiry (default 5 minutes). */
  refreshMarginMs?: number;
  durationSeconds?: number;
}

/**
 * A credential provider for an AWS SDK client (`new EventBridgeClient({ credentials })`), cached until
 * shortly before expiry; concurrent callers share one STS call.
 *
 * @example
 * const credentials = webIdentityCredentials({ sts: new STSClient({ region }), roleArn, sessionName: 'closeloop-azure-spoke', token: azureToken });
 */
export function webIdentityCredentials(options: WebIdentityOptions): () => Promise<AwsTemporaryCredentials> {
  const clock = options.clock ?? systemClock;
  const margin = options.refreshMarginMs ?? 5 * 60_000;
  let cached: AwsTemporaryCredentials | undefined;
  let inflight: Promise<AwsTemporaryCredentials> | undefined;
  return async function provideWebIdentityCredentials() {
    if (cached && cached.expiration.getTime() - margin > clock.now().getTime()) return cached;
    inflight ??= (async () => {
      try {
        const token = await options.token();
        const out = await options.sts
          .send(
            new AssumeRoleWithWebIdentityCommand({
              RoleArn: options.roleArn,
              RoleSessionName: options.sessionName,
              WebIdentityToken: token,
              DurationSeconds: options.durationSeconds ?? 3600,
            }),
          )
          .catch((e: unknown) => {
            const name = e instanceof Error ? e.name : 'Error';
            const denied = /AccessDenied|InvalidIdentityToken|ExpiredToken|IDPRejectedClaim/.test(name);
            throw new AdapterError(
              denied ? 'denied' : 'transient',
              `AssumeRoleWithWebIdentity ${options.roleArn} failed (${name})`,
            );
          });
        const c = out.Credentials;
        if (!c?.AccessKeyId || !c.SecretAccessKey || !c.SessionToken || !c.Expiration) {
          throw new AdapterError('transient', 'AssumeRoleWithWebIdentity returned no credentials');
        }
        cached = {
          accessKeyId: c.AccessKeyId,
          secretAccessKey: c.SecretAccessKey,
          sessionToken: c.SessionToken,
          expiration: new Date(c.Expiration),
        };
        return cached;
      } finally {
        inflight = undefined;
      }
    })();
    return inflight;
  };
}
