import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { AssumeRoleWithWebIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { getTestServer } from '@google-cloud/functions-framework/testing';
import { type AwsClientStub, mockClient } from 'aws-sdk-client-mock';
import supertest from 'supertest';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { answerForwarder } from '../../helpers/forwarder.js';
import { fixture } from '../helpers/events.js';

let sts: AwsClientStub<STSClient>;
let eb: AwsClientStub<EventBridgeClient>;
const metadataCalls: string[] = [];

beforeAll(async () => {
  vi.stubEnv('CLOSELOOP_HUB_BUS_ARN', 'arn:aws:events:us-east-1:111122223333:event-bus/closeloop-test');
  vi.stubEnv('CLOSELOOP_FORWARDER_ROLE_ARN', 'arn:aws:iam::111122223333:role/closeloop-test-gcp-spoke');
  // The metadata server's identity endpoint.
  vi.stubGlobal('fetch', async (url: string, init: { headers: Record<string, string> }) => {
    metadataCalls.push(`${url} ${init.headers['Metadata-Flavor']}`);
    return { ok: true, status: 200, text: async () => 'gcp-id-token\n' };
  });
  vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
  sts = mockClient(STSClient);
  eb = mockClient(EventBridgeClient);
  await import('../../../functions/gcp/scc-ingest.js');
});
afterAll(() => {
  sts.restore();
  eb.restore();
  vi.unstubAllEnvs();
  vi.unstubAllGlobals();
  vi.restoreAllMocks();
});
beforeEach(() => {
  answerForwarder(sts, eb);
});

/** A Pub/Sub CloudEvent (structured mode) around a base64 NotificationMessage. */
function pubsubCloudEvent(notification: unknown, messageId = '8412345678901') {
  return {
    specversion: '1.0',
    id: messageId,
    source: '//pubsub.googleapis.com/projects/acme-sec/topics/scc-findings',
    type: 'google.cloud.pubsub.topic.v1.messagePublished',
    datacontenttype: 'application/json',
    time: '2026-01-02T03:04:05Z',
    data: {
      subscription: 'projects/acme-sec/subscriptions/closeloop',
      message: {
        data: Buffer.from(JSON.stringify(notification)).toString('base64'),
        messageId,
        publishTime: '2026-01-02T03:04:05Z',
        attributes: {},
      },
    },
  };
}

describe('GCP spoke: sccIngest through the Functions Framework test server', () => {
  it('forwards the decoded NotificationMessage to the hub bus when SCC publishes a finding', async () => {
    // Prepare
    const notification = fixture('scc/public-bucket-acl.notification.json');
    const server = getTestServer('sccIngest');
    // Act
    const res = await supertest(server)
      .post('/')
      .set('content-type', 'application/cloudevents+json')
      .send(JSON.stringify(pubsubCloudEvent(notification)));
    // Assess
    expect(res.status).toBe(204);
    const entry = eb.commandCalls(PutEventsCommand)[0]?.args[0].input.Entries?.[0];
    expect(entry).toMatchObject({
      EventBusName: 'arn:aws:events:us-east-1:111122223333:event-bus/closeloop-test',
      Source: 'closeloop.spoke.gcp',
      DetailType: 'Spoke Finding Document',
    });
    const detail = JSON.parse(entry?.Detail ?? '{}');
    expect(detail).toMatchObject({ spoke: 'gcp', input: 'pubsub:8412345678901', document: notification });
    expect(detail.findingKeys).toHaveLength(1);
  });

  it("forwards a finding delivered by the template's Pub/Sub push subscription (its body, not a CloudEvent)", async () => {
    // Prepare: what a push subscription POSTs (infra/gcp/main.tf google_pubsub_subscription.ingest), to
    // the function's URL with the topic as the path
    const notification = fixture('scc/public-bucket-acl.notification.json');
    const push = {
      subscription: 'projects/acme-sec/subscriptions/closeloop-scc-ingest',
      deliveryAttempt: 3,
      message: {
        data: Buffer.from(JSON.stringify(notification)).toString('base64'),
        messageId: '8412345678902',
        publishTime: '2026-01-02T03:04:05Z',
        attributes: {},
      },
    };
    // Act
    const res = await supertest(getTestServer('sccIngest'))
      .post('/projects/acme-sec/topics/closeloop-scc-findings')
      .set('content-type', 'application/json')
      .send(JSON.stringify(push));
    // Assess: acknowledged (2xx) and forwarded as the CloudEvent delivery would be
    expect(res.status).toBe(204);
    const entry = eb.commandCalls(PutEventsCommand)[0]?.args[0].input.Entries?.[0];
    const detail = JSON.parse(entry?.Detail ?? '{}');
    expect(detail).toMatchObject({ spoke: 'gcp', input: 'pubsub:8412345678902', document: notification });
    expect(detail.findingKeys).toHaveLength(1);
  });

  it('answers a pushed message with an error, so Pub/Sub counts a failed delivery, when the hub bus keeps failing', async () => {
    // Prepare
    eb.on(PutEventsCommand).rejects(Object.assign(new Error('down'), { name: 'InternalException' }));
    const push = {
      subscription: 'projects/acme-sec/subscriptions/closeloop-scc-ingest',
      message: {
        data: Buffer.from(JSON.stringify(fixture('scc/public-bucket-acl.notification.json'))).toString('base64'),
        messageId: '8412345678903',
      },
    };
    // Act
    const res = await supertest(getTestServer('sccIngest'))
      .post('/projects/acme-sec/topics/closeloop-scc-findings')
      .set('content-type', 'application/json')
      .send(JSON.stringify(push));
    // Assess
    expect(res.status).toBeGreaterThanOrEqual(500);
  });

  it('acknowledges without forwarding when message.data is not base64 JSON, logging the message, field and reason', async () => {
    // Prepare
    const event = pubsubCloudEvent({});
    event.data.message.data = Buffer.from('{not json, body-marker').toString('base64');
    const logged = vi.mocked(process.stdout.write);
    logged.mockClear();
    // Act
    const res = await supertest(getTestServer('sccIngest'))
      .post('/')
      .set('content-type', 'application/cloudevents+json')
      .send(JSON.stringify(event));
    // Assess: the log says which message, which field and why (never the data: JSON.parse quotes it)
    expect(res.status).toBe(204);
    expect(eb).toHaveReceivedCommandTimes(PutEventsCommand, 0);
    const rejection = logged.mock.calls.map((c) => String(c[0])).find((line) => line.includes('rejected message'));
    expect(rejection).toContain('"input":"gcp:pubsub:8412345678901"');
    expect(rejection).toContain('"source":"unknown"');
    expect(rejection).toContain('"path":"data.message.data"');
    expect(rejection).toContain('"reason":"not base64 JSON"');
    expect(rejection).not.toContain('body-marker');
  });

  it('acknowledges a CloudEvent that carries no Pub/Sub message, logging the field', async () => {
    // Prepare
    const event = { ...pubsubCloudEvent({}), data: { subscription: 'projects/acme-sec/subscriptions/closeloop' } };
    const logged = vi.mocked(process.stdout.write);
    logged.mockClear();
    // Act
    const res = await supertest(getTestServer('sccIngest'))
      .post('/')
      .set('content-type', 'application/cloudevents+json')
      .send(JSON.stringify(event));
    // Assess
    expect(res.status).toBe(204);
    const rejection = logged.mock.calls.map((c) => String(c[0])).find((line) => line.includes('rejected message'));
    expect(rejection).toContain('"input":"gcp:cloudevent:8412345678901"');
    expect(rejection).toContain('"path":"data.message"');
  });

  it('acknowledges without forwarding when a GuardDuty finding is published to the SCC topic', async () => {
    // Prepare
    const gd = fixture('guardduty/accesskey-iamuser-malicious-ip.eventbridge.json');
    // Act
    const res = await supertest(getTestServer('sccIngest'))
      .post('/')
      .set('content-type', 'application/cloudevents+json')
      .send(JSON.stringify(pubsubCloudEvent(gd)));
    // Assess
    expect(res.status).toBe(204);
    expect(eb).toHaveReceivedCommandTimes(PutEventsCommand, 0);
  });

  it('acknowledges a notification too large for the hub bus instead of failing it into endless redelivery', async () => {
    // Prepare: Pub/Sub takes 10 MB; one hub event takes 256 KB. Retrying cannot make it smaller.
    const notification = structuredClone(fixture('scc/public-bucket-acl.notification.json')) as {
      finding: { sourceProperties: Record<string, unknown> };
    };
    notification.finding.sourceProperties.Evidence = 'x'.repeat(300_000);
    const logged = vi.mocked(process.stdout.write);
    logged.mockClear();
    // Act
    const res = await supertest(getTestServer('sccIngest'))
      .post('/')
      .set('content-type', 'application/cloudevents+json')
      .send(JSON.stringify(pubsubCloudEvent(notification)));
    // Assess: acknowledged, and the log says which message, which source and why
    expect(res.status).toBe(204);
    expect(eb).toHaveReceivedCommandTimes(PutEventsCommand, 0);
    const rejection = logged.mock.calls.map((c) => String(c[0])).find((line) => line.includes('rejected input'));
    expect(rejection).toContain('gcp:pubsub:8412345678901');
    expect(rejection).toContain('"source":"scc"');
    expect(rejection).toMatch(/document is \d+ bytes as a hub event/);
  });

  it('answers an error so Pub/Sub redelivers when the hub bus keeps failing', async () => {
    // Prepare
    eb.on(PutEventsCommand).rejects(Object.assign(new Error('down'), { name: 'InternalException' }));
    // Act
    const res = await supertest(getTestServer('sccIngest'))
      .post('/')
      .set('content-type', 'application/cloudevents+json')
      .send(JSON.stringify(pubsubCloudEvent(fixture('scc/public-bucket-acl.notification.json'))));
    // Assess
    expect(res.status).toBeGreaterThanOrEqual(500);
  });

  it('requests an ID token for the hub audience when credentials are resolved', async () => {
    // Prepare
    const { createGcpSpoke } = await import('../../../shared/adapters/wiring/gcp.js');
    const spoke = createGcpSpoke(process.env);
    // Act
    await spoke.hub.eventBridge.config.credentials();
    // Assess
    expect(metadataCalls.at(-1)).toBe(
      'http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/identity?audience=closeloop-hub&format=full Google',
    );
    expect(sts).toHaveReceivedCommandWith(AssumeRoleWithWebIdentityCommand, {
      RoleArn: 'arn:aws:iam::111122223333:role/closeloop-test-gcp-spoke',
      WebIdentityToken: 'gcp-id-token',
    });
  });
});
