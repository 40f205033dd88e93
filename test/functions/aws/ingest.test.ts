import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { type AwsClientStub, mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { DynamoDocStore } from '../../../shared/adapters/store/dynamodb.js';
import { type LocalDynamo, startDynalite } from '../helpers/dynalite.js';
import { eventBridgeEvent, fixture, lambdaContext, sqsEvent, sqsRecord } from '../helpers/events.js';

// The handler builds its ports at module scope from the environment, as in Lambda: the table lives in
// dynalite (the SDK honours AWS_ENDPOINT_URL_DYNAMODB), EventBridge is mocked.
let local: LocalDynamo;
let eb: AwsClientStub<EventBridgeClient>;
let handler: typeof import('../../../functions/aws/ingest.js')['handler'];
let UNREADABLE_BODY_KEPT: number;

beforeAll(async () => {
  local = await startDynalite();
  await local.createTable('closeloop-test');
  vi.stubEnv('AWS_ENDPOINT_URL_DYNAMODB', local.endpoint);
  vi.stubEnv('AWS_ACCESS_KEY_ID', 'AKIAIOSFODNN7EXAMPLE');
  vi.stubEnv('AWS_SECRET_ACCESS_KEY', 'test-secret');
  vi.stubEnv('CLOSELOOP_TABLE', 'closeloop-test');
  vi.stubEnv('CLOSELOOP_BUS', 'closeloop-test');
  vi.stubEnv('POWERTOOLS_METRICS_DISABLED', 'true');
  vi.stubEnv('POWERTOOLS_LOG_LEVEL', 'SILENT');
  eb = mockClient(EventBridgeClient);
  ({ handler } = await import('../../../functions/aws/ingest.js'));
  ({ UNREADABLE_BODY_KEPT } = await import('../../../shared/adapters/bus/received-body.js'));
});
afterAll(async () => {
  eb.restore();
  vi.unstubAllEnvs();
  await local.stop();
});
beforeEach(() => {
  eb.reset();
  eb.on(PutEventsCommand).resolves({ FailedEntryCount: 0, Entries: [{ EventId: 'e' }] });
});

const decidedEntries = () =>
  eb
    .commandCalls(PutEventsCommand)
    .flatMap((c) => c.args[0].input.Entries ?? [])
    .filter((e) => e.DetailType === 'case.decided');

/** The reasons of the dead letters recorded for one SQS message. */
async function deadLetterReasons(messageId: string): Promise<string[]> {
  const letters = await new DynamoDocStore(local.client, 'closeloop-test').list('deadletters');
  return letters
    .map((d) => d.value as { input: string; reason: string })
    .filter((v) => v.input.startsWith(`sqs:${messageId}:`))
    .map((v) => v.reason);
}

/** The dead letters recorded for one SQS message. */
async function deadLettersOf(messageId: string): Promise<Array<Record<string, unknown>>> {
  const letters = await new DynamoDocStore(local.client, 'closeloop-test').list('deadletters');
  return letters
    .map((d) => d.value as Record<string, unknown>)
    .filter((v) => v.input === `sqs:${messageId}` || String(v.input).startsWith(`sqs:${messageId}:`));
}

describe('AWS ingest function', () => {
  it('stores the case and publishes case.decided when a GuardDuty event arrives through SQS', async () => {
    // Prepare
    const gd = fixture('guardduty/s3-bucket-anonymous-access.eventbridge.json');
    // Act
    const res = await handler(sqsEvent(sqsRecord(JSON.stringify(gd))), lambdaContext('ingest'));
    // Assess
    expect(res.batchItemFailures).toEqual([]);
    const entries = decidedEntries();
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({ EventBusName: 'closeloop-test', Source: 'closeloop' });
    const detail = JSON.parse(entries[0]?.Detail ?? '{}');
    const stored = await new DynamoDocStore(local.client, 'closeloop-test').get('cases', detail.caseKey);
    expect(stored?.version).toBe(1);
  });

  it('ingests the forwarded document when a spoke event arrives', async () => {
    // Prepare
    const notification = fixture('scc/public-bucket-acl.notification.json');
    const spokeEvent = eventBridgeEvent('closeloop.spoke.gcp', 'Spoke Finding Document', {
      spoke: 'gcp',
      input: 'pubsub:1',
      document: notification,
      findingKeys: [],
    });
    // Act
    const res = await handler(sqsEvent(sqsRecord(JSON.stringify(spokeEvent))), lambdaContext('ingest'));
    // Assess
    expect(res.batchItemFailures).toEqual([]);
    expect(decidedEntries().map((e) => JSON.parse(e.Detail ?? '{}').caseKey)).toEqual([
      expect.stringContaining('gcp|//storage.googleapis.com/acme-web-uploads'),
    ]);
  });

  it('dead-letters a GuardDuty finding forwarded through the Azure spoke and decides nothing', async () => {
    // Prepare: a GuardDuty-shaped document posted to the Azure spoke, as it would reach the hub.
    const gd = fixture('guardduty/accesskey-iamuser-malicious-ip.eventbridge.json');
    const spokeEvent = eventBridgeEvent('closeloop.spoke.azure', 'Spoke Finding Document', {
      spoke: 'azure',
      input: 'http:forged',
      document: gd,
      findingKeys: [],
    });
    const record = sqsRecord(JSON.stringify(spokeEvent));
    // Act
    const res = await handler(sqsEvent(record), lambdaContext('ingest'));
    // Assess
    expect(res.batchItemFailures).toEqual([]);
    expect(decidedEntries()).toEqual([]);
    expect(await deadLetterReasons(record.messageId)).toEqual([
      'refused: a guardduty finding (aws) came through closeloop.spoke.azure, which accepts only azure findings',
    ]);
  });

  it('dead-letters a spoke event whose detail.spoke is not the spoke of its source', async () => {
    // Prepare
    const spokeEvent = eventBridgeEvent('closeloop.spoke.azure', 'Spoke Finding Document', {
      spoke: 'gcp',
      input: 'pubsub:1',
      document: fixture('scc/public-bucket-acl.notification.json'),
      findingKeys: [],
    });
    const record = sqsRecord(JSON.stringify(spokeEvent));
    // Act
    const res = await handler(sqsEvent(record), lambdaContext('ingest'));
    // Assess
    expect(res.batchItemFailures).toEqual([]);
    expect(decidedEntries()).toEqual([]);
    expect(await deadLetterReasons(record.messageId)).toEqual([
      'refused: detail.spoke "gcp" does not match the event source "closeloop.spoke.azure" (a spoke forwards only under its own source)',
    ]);
  });

  it('dead-letters a body that is not JSON with the reason, and still ingests the rest of the batch', async () => {
    // Prepare
    const good = sqsRecord(JSON.stringify(fixture('securityhub/s3.8-failed.eventbridge.json')));
    const bad = sqsRecord('{"truncated": ');
    // Act
    const res = await handler(sqsEvent(good, bad), lambdaContext('ingest'));
    // Assess: retrying cannot fix it — kept in the store with why, not retried into the SQS dead-letter queue
    expect(res.batchItemFailures).toEqual([]);
    expect(decidedEntries()).toHaveLength(1);
    const letters = (await new DynamoDocStore(local.client, 'closeloop-test').list('deadletters')).map(
      (d) => d.value as { input: string; reason: string },
    );
    expect(letters).toContainEqual(
      expect.objectContaining({ input: `sqs:${bad.messageId}`, reason: expect.stringContaining('body is not JSON') }),
    );
  });

  it('keeps the event as received with the dead letter of a finding it rejects (the message is gone once acknowledged)', async () => {
    // Prepare: a GuardDuty finding whose accountId is not an AWS account id.
    const gd = structuredClone(fixture('guardduty/s3-bucket-anonymous-access.eventbridge.json')) as {
      detail: { accountId: string };
    };
    gd.detail.accountId = 'not-an-account';
    const record = sqsRecord(JSON.stringify(gd));
    // Act
    const res = await handler(sqsEvent(record), lambdaContext('ingest'));
    // Assess
    expect(res.batchItemFailures).toEqual([]);
    const letters = await deadLettersOf(record.messageId);
    expect(letters).toHaveLength(1);
    expect(letters[0]).toMatchObject({ source: 'guardduty', path: expect.stringContaining('accountId'), raw: gd });
  });

  it('keeps a Security Hub event once with the dead letters of the findings it rejects, each rejection still its own', async () => {
    // Prepare: one event of three findings whose account id is not an AWS account id, and one good finding.
    const sh = structuredClone(fixture('securityhub/s3.8-failed.eventbridge.json')) as {
      detail: { findings: Array<Record<string, unknown>> };
    };
    const good = sh.detail.findings[0] as Record<string, unknown>;
    const bad = [1, 2, 3].map((i) => ({ ...good, Id: `${String(good.Id)}/${i}`, AwsAccountId: 'not-an-account' }));
    sh.detail.findings = [...bad, good];
    const record = sqsRecord(JSON.stringify(sh));
    // Act: delivered twice (SQS delivers at least once)
    for (const _ of [1, 2])
      expect((await handler(sqsEvent(record), lambdaContext('ingest'))).batchItemFailures).toEqual([]);
    // Assess: a letter per rejection, the event kept with one of them and named by the others
    const letters = (await new DynamoDocStore(local.client, 'closeloop-test').list('deadletters'))
      .map((d) => ({ id: d.id, value: d.value as Record<string, unknown> }))
      .filter((l) => String(l.value.input).startsWith(`sqs:${record.messageId}:`));
    expect(letters.map((l) => l.value.path).sort()).toEqual([
      'detail.findings[0].AwsAccountId',
      'detail.findings[1].AwsAccountId',
      'detail.findings[2].AwsAccountId',
    ]);
    const holders = letters.filter((l) => 'raw' in l.value);
    expect(holders).toHaveLength(1);
    expect(holders[0]?.value.raw).toEqual(sh);
    for (const l of letters.filter((x) => x !== holders[0])) expect(l.value.rawIn).toBe(holders[0]?.id);
  });

  it('keeps the body of a message it cannot read with its dead letter', async () => {
    // Prepare
    const record = sqsRecord('{"truncated": ');
    // Act
    const res = await handler(sqsEvent(record), lambdaContext('ingest'));
    // Assess
    expect(res.batchItemFailures).toEqual([]);
    expect(await deadLettersOf(record.messageId)).toEqual([
      expect.objectContaining({ reason: expect.stringContaining('body is not JSON'), raw: '{"truncated": ' }),
    ]);
  });

  it('keeps the start of a body too large for one store item, and still dead-letters it', async () => {
    // Prepare: SQS takes up to 1 MiB from a direct sender; a stored item 400 KB.
    const record = sqsRecord(`<${'"'.repeat(600_000)}`);
    // Act
    const res = await handler(sqsEvent(record), lambdaContext('ingest'));
    // Assess
    expect(res.batchItemFailures).toEqual([]);
    const [letter] = await deadLettersOf(record.messageId);
    expect(letter?.raw).toBe(record.body.slice(0, UNREADABLE_BODY_KEPT));
  });

  it('keeps the event as received with the dead letter of a refused spoke event', async () => {
    // Prepare
    const spokeEvent = eventBridgeEvent('closeloop.spoke.azure', 'Spoke Finding Document', {
      spoke: 'gcp',
      input: 'pubsub:1',
      document: fixture('scc/public-bucket-acl.notification.json'),
      findingKeys: [],
    });
    const record = sqsRecord(JSON.stringify(spokeEvent));
    // Act
    await handler(sqsEvent(record), lambdaContext('ingest'));
    // Assess
    expect(await deadLettersOf(record.messageId)).toEqual([
      expect.objectContaining({ path: 'detail.spoke', raw: spokeEvent }),
    ]);
  });

  it('fails the record so SQS retries it when the hub bus keeps refusing events', async () => {
    // Prepare
    eb.on(PutEventsCommand).resolves({ FailedEntryCount: 1, Entries: [{ ErrorCode: 'InternalFailure' }] });
    const gd = structuredClone(fixture('guardduty/instance-crypto.eventbridge.json'));
    const record = sqsRecord(JSON.stringify(gd));
    // Act
    const res = await handler(sqsEvent(record), lambdaContext('ingest'));
    // Assess
    expect(res.batchItemFailures).toEqual([{ itemIdentifier: record.messageId }]);
  });
});
