/**
 * The spoke's way to the hub: EventBridge PutEvents under short-lived credentials from
 * AssumeRoleWithWebIdentity. Apart from spoke.ts, which the hub's functions import: only the spokes
 * carry the STS client.
 */
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { STSClient } from '@aws-sdk/client-sts';
import type { Clock } from '../../core/ports.js';
import type { RemoteResult } from '../../core/remediation/remote.js';
import { forwardToHub, reportToHub, type Spoke, type SpokeDetail } from './spoke.js';
import { webIdentityCredentials } from './web-identity.js';

export interface SpokeForwarderOptions {
  spoke: Spoke;
  /** The hub bus ARN (EventBusName accepts an ARN; the hub may be another account). */
  busArn: string;
  region: string;
  /** The hub role this spoke may assume with its own identity token (serverless.yml `<Cloud>SpokeForwarderRole`). */
  roleArn: string;
  /** The spoke's platform identity token (managed identity / service account ID token). */
  token: () => Promise<string>;
  /** Injected for tests; built from `region` otherwise. */
  sts?: STSClient;
  /** Injected for tests (with its own credentials); built with web-identity credentials otherwise. */
  eventBridge?: EventBridgeClient;
  clock?: Clock;
}

/**
 * The spoke's way to the hub: EventBridge PutEvents with short-lived credentials from
 * AssumeRoleWithWebIdentity (no long-lived AWS key in Azure or GCP).
 *
 * @example
 * const hub = createSpokeForwarder({ spoke: 'gcp', busArn, region: 'us-east-1', roleArn, token: () => gcpIdToken(audience) });
 * await hub.forward(details);
 */
export function createSpokeForwarder(options: SpokeForwarderOptions): {
  eventBridge: EventBridgeClient;
  forward(details: readonly SpokeDetail[]): Promise<void>;
  /** Puts a remote-remediation result on the hub bus (`Spoke Remediation Result`). */
  report(result: RemoteResult): Promise<void>;
} {
  const eventBridge =
    options.eventBridge ??
    new EventBridgeClient({
      region: options.region,
      credentials: webIdentityCredentials({
        sts: options.sts ?? new STSClient({ region: options.region }),
        roleArn: options.roleArn,
        sessionName: `closeloop-${options.spoke}-spoke`,
        token: options.token,
        ...(options.clock ? { clock: options.clock } : {}),
      }),
    });
  return {
    eventBridge,
    forward: (details) => forwardToHub(eventBridge, options.busArn, details),
    report: (result) => reportToHub(eventBridge, options.busArn, options.spoke, result),
  };
}
