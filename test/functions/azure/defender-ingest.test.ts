import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { AssumeRoleWithWebIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { HttpRequest, InvocationContext } from '@azure/functions';
import { type AwsClientStub, mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { answerForwarder } from '../../helpers/forwarder.js';
import { fixture } from '../helpers/events.js';

const SECRET = 'logic-app-shared-secret-0000000000';
let sts: AwsClientStub<STSClient>;
let eb: AwsClientStub<EventBridgeClient>;
let fn: typeof import('../../../functions/azure/defender-ingest.js');
const identityCalls: string[] = [];

beforeAll(async () => {
  vi.stubEnv('CLOSELOOP_HUB_BUS_ARN', 'arn:aws:events:us-east-1:111122223333:event-bus/closeloop-test');
  vi.stubEnv('CLOSELOOP_FORWARDER_ROLE_ARN', 'arn:aws:iam::111122223333:role/closeloop-test-azure-spoke');
  vi.stubEnv('CLOSELOOP_SPOKE_SECRET', SECRET);
  vi.stubEnv('IDENTITY_ENDPOINT', 'http://127.0.0.1:41111/msi/token');
  vi.stubEnv('IDENTITY_HEADER', 'identity-header-test');
  // The managed identity endpoint, as App Service serves it.
  vi.stubGlobal('fetch', async (url: string, init: { headers: Record<string, string> }) => {
    identityCalls.push(`${url} ${init.headers['X-IDENTITY-HEADER']}`);
    return { ok: true, status: 200, json: async () => ({ access_token: 'azure-mi-token' }) };
  });
  sts = mockClient(STSClient);
  eb = mockClient(EventBridgeClient);
  fn = await import('../../../functions/azure/defender-ingest.js');
});
afterAll(() => {
  sts.restore();
  eb.restore();
  vi.unstubAllEnvs();
  vi.unstubAllGlobals();
});
beforeEach(() => {
  answerForwarder(sts, eb);
});

const context = () =>
  new InvocationContext({ invocationId: '00000000-0000-0000-0000-000000000042', functionName: 'defenderHttp' });
const post = (body: unknown, headers: Record<string, string>) =>
  new HttpRequest({
    method: 'POST',
    url: 'https://spoke.example/api/defender',
    headers,
    body: { string: JSON.stringify(body) },
  });

describe('Azure spoke: defenderHttp', () => {
  it('rejects with 401 and forwards nothing when an aeg-event-type header comes without the secret', async () => {
    // Prepare: any value of the header (Notification here) used to skip the secret.
    const alert = fixture('defender/alert-storage-open-acl.workflow-automation.json');
    const req = post(alert, { 'aeg-event-type': 'Notification' });
    // Act
    const res = await fn.defenderHttp(req, context());
    // Assess
    expect(res.status).toBe(401);
    expect(eb).toHaveReceivedCommandTimes(PutEventsCommand, 0);
  });

  it('answers no Event Grid validation handshake over HTTP (the subscription targets the Event Grid trigger)', async () => {
    // Prepare
    const body = fixture('bad/eventgrid-validation.json');
    // Act
    const withoutSecret = await fn.defenderHttp(post(body, { 'aeg-event-type': 'SubscriptionValidation' }), context());
    const withSecret = await fn.defenderHttp(
      post(body, { 'aeg-event-type': 'SubscriptionValidation', 'x-closeloop-secret': SECRET }),
      context(),
    );
    // Assess
    expect(withoutSecret.status).toBe(401);
    expect(withSecret).toMatchObject({ status: 202, jsonBody: { forwarded: 0, rejected: 1 } });
    expect(eb).toHaveReceivedCommandTimes(PutEventsCommand, 0);
  });

  it('rejects with 401 when the configured secret is an unresolved Key Vault reference, even presented verbatim', async () => {
    // Prepare: App Service leaves the reference text in place when it cannot resolve it; that text is public.
    const reference = '@Microsoft.KeyVault(SecretUri=https://kv-closeloop.vault.azure.net/secrets/spoke-secret/)';
    vi.stubEnv('CLOSELOOP_SPOKE_SECRET', reference);
    vi.resetModules();
    const unresolved = await import('../../../functions/azure/defender-ingest.js');
    vi.stubEnv('CLOSELOOP_SPOKE_SECRET', SECRET);
    const alert = fixture('defender/alert-storage-open-acl.workflow-automation.json');
    // Act
    const res = await unresolved.defenderHttp(post(alert, { 'x-closeloop-secret': reference }), context());
    // Assess
    expect(res.status).toBe(401);
    expect(eb).toHaveReceivedCommandTimes(PutEventsCommand, 0);
  });

  it('rejects with 401 when a Logic App call lacks the shared secret', async () => {
    // Prepare
    const req = post(fixture('defender/alert-storage-open-acl.workflow-automation.json'), {});
    // Act
    const res = await fn.defenderHttp(req, context());
    // Assess
    expect(res.status).toBe(401);
    expect(eb).toHaveReceivedCommandTimes(PutEventsCommand, 0);
    expect(sts).toHaveReceivedCommandTimes(AssumeRoleWithWebIdentityCommand, 0);
  });

  it('rejects with 401 when the shared secret is wrong', async () => {
    // Act
    const res = await fn.defenderHttp(post({}, { 'x-closeloop-secret': `${SECRET}x` }), context());
    // Assess
    expect(res.status).toBe(401);
  });

  it('forwards the alert to the hub bus with web-identity credentials when the Logic App is authenticated', async () => {
    // Prepare
    const alert = fixture('defender/alert-storage-open-acl.workflow-automation.json');
    // Act
    const res = await fn.defenderHttp(post(alert, { 'x-closeloop-secret': SECRET }), context());
    // Assess
    expect(res).toEqual({ status: 202, jsonBody: { forwarded: 1, rejected: 0, rejections: [] } });
    const entry = eb.commandCalls(PutEventsCommand)[0]?.args[0].input.Entries?.[0];
    expect(entry).toMatchObject({
      EventBusName: 'arn:aws:events:us-east-1:111122223333:event-bus/closeloop-test',
      Source: 'closeloop.spoke.azure',
      DetailType: 'Spoke Finding Document',
    });
    const detail = JSON.parse(entry?.Detail ?? '{}');
    expect(detail).toMatchObject({ spoke: 'azure', document: alert });
    expect(detail.findingKeys).toHaveLength(1);
  });

  it('forwards the rest of a Logic App batch when one alert is too large for the hub bus', async () => {
    // Prepare: one hub event takes 256 KB; an alert over it must not hold back the others (or fail the call,
    // which the Logic App would retry with the same alert in it).
    const alert = fixture('defender/alert-storage-open-acl.workflow-automation.json') as Record<string, unknown>;
    const huge = { ...alert, SystemAlertId: `${String(alert.SystemAlertId)}9`, Description: 'x'.repeat(300_000) };
    // Act
    const res = await fn.defenderHttp(post([huge, alert], { 'x-closeloop-secret': SECRET }), context());
    // Assess: the Logic App's run history says which alert stayed behind and why
    expect(res).toEqual({
      status: 202,
      jsonBody: {
        forwarded: 1,
        rejected: 1,
        rejections: [
          {
            input: 'azure:http:00000000-0000-0000-0000-000000000042#0',
            source: 'defender',
            path: '$',
            reason: expect.stringMatching(/^document is \d+ bytes as a hub event/),
          },
        ],
      },
    });
    const entries = eb.commandCalls(PutEventsCommand).flatMap((c) => c.args[0].input.Entries ?? []);
    expect(entries.map((e) => JSON.parse(e.Detail ?? '{}').document)).toEqual([alert]);
  });

  it('forwards nothing and answers why when an authenticated caller posts a GuardDuty finding to the Azure spoke', async () => {
    // Prepare
    const gd = fixture('guardduty/accesskey-iamuser-malicious-ip.eventbridge.json');
    // Act
    const res = await fn.defenderHttp(post(gd, { 'x-closeloop-secret': SECRET }), context());
    // Assess: input, source, field and reason in the answer (the Logic App's run history), never the payload
    expect(res).toEqual({
      status: 202,
      jsonBody: {
        forwarded: 0,
        rejected: 1,
        rejections: [
          {
            input: 'azure:http:00000000-0000-0000-0000-000000000042',
            source: 'guardduty',
            path: 'detail',
            reason:
              'refused: a guardduty finding (aws) came through the azure spoke, which accepts only azure findings',
          },
        ],
      },
    });
    expect(JSON.stringify(res)).not.toContain('AKIAIOSFODNN7EXAMPLE');
    expect(eb).toHaveReceivedCommandTimes(PutEventsCommand, 0);
  });

  it('forwards nothing and still answers 202 when the Event Grid delivery holds no Defender document', async () => {
    // Prepare
    const events = [
      {
        id: '1',
        eventType: 'Custom',
        subject: 's',
        dataVersion: '1',
        eventTime: '2026-01-01T00:00:00Z',
        data: { hello: 'x' },
      },
    ];
    // Act
    const res = await fn.defenderHttp(post(events, { 'x-closeloop-secret': SECRET }), context());
    // Assess
    expect(res).toEqual({
      status: 202,
      jsonBody: {
        forwarded: 0,
        rejected: 1,
        rejections: [
          {
            input: 'azure:eventgrid:1',
            source: 'unknown',
            path: '$',
            reason: expect.stringContaining('unknown source'),
          },
        ],
      },
    });
    expect(eb).toHaveReceivedCommandTimes(PutEventsCommand, 0);
  });
});

describe('Azure spoke: web-identity federation', () => {
  it('trades the managed identity token for hub credentials when the forwarder signs a request', async () => {
    // Prepare: the SDK resolves credentials through the client's provider (the mock skips signing).
    const { createAzureSpoke } = await import('../../../shared/adapters/wiring/azure.js');
    const spoke = createAzureSpoke(process.env);
    // Act
    const credentials = await spoke.hub.eventBridge.config.credentials();
    // Assess
    expect(credentials).toMatchObject({ accessKeyId: 'ASIAEXAMPLE', sessionToken: 'temp-session' });
    expect(sts).toHaveReceivedCommandExactlyOnceWith(AssumeRoleWithWebIdentityCommand, {
      RoleArn: 'arn:aws:iam::111122223333:role/closeloop-test-azure-spoke',
      RoleSessionName: 'closeloop-azure-spoke',
      WebIdentityToken: 'azure-mi-token',
      DurationSeconds: 3600,
    });
    expect(identityCalls.at(-1)).toBe(
      'http://127.0.0.1:41111/msi/token?resource=api%3A%2F%2Fcloseloop-hub&api-version=2019-08-01 identity-header-test',
    );
  });
});

describe('Azure spoke: defenderEventGrid', () => {
  it('forwards the event data when the Event Grid trigger delivers a Defender assessment', async () => {
    // Prepare
    const envelope = fixture('defender/eventgrid-envelope.json');
    const event = Array.isArray(envelope) ? envelope[0] : envelope;
    // Act
    await fn.defenderEventGrid(event, context());
    // Assess
    const detail = JSON.parse(eb.commandCalls(PutEventsCommand)[0]?.args[0].input.Entries?.[0]?.Detail ?? '{}');
    expect(detail.input).toBe(`eventgrid:${event.id}`);
    expect(detail.document).toEqual(event.data);
  });
});
