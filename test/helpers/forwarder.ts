/**
 * The spokes' forwarder to the hub bus, answered in process: web-identity federation (STS) hands out
 * temporary credentials and EventBridge accepts every entry. Each test starts from fresh stubs.
 */
import { type EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { AssumeRoleWithWebIdentityCommand, type STSClient } from '@aws-sdk/client-sts';
import type { AwsClientStub } from 'aws-sdk-client-mock';

export function answerForwarder(sts: AwsClientStub<STSClient>, eb: AwsClientStub<EventBridgeClient>): void {
  sts.reset();
  eb.reset();
  sts.on(AssumeRoleWithWebIdentityCommand).resolves({
    Credentials: {
      AccessKeyId: 'ASIAEXAMPLE',
      SecretAccessKey: 'temp-secret',
      SessionToken: 'temp-session',
      Expiration: new Date(Date.now() + 3_600_000),
    },
  });
  eb.on(PutEventsCommand).resolves({ FailedEntryCount: 0, Entries: [{ EventId: 'e' }] });
}
