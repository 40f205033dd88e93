/**
 * The log lines that serverless.yml's metric filters count: a finding rejected at ingest is acknowledged and
 * kept in the table, and Jira refusing every request fails no invocation and fills no queue (the requests
 * wait in the outbox, retried for days), so these lines are all an operator's alarm can see. The patterns are
 * read from serverless.yml and matched against what the functions' Powertools loggers really write.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Logger } from '@aws-lambda-powertools/logger';
import { EventBridgeClient, PutEventsCommand, type PutEventsRequestEntry } from '@aws-sdk/client-eventbridge';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { parse } from 'yaml';
import { z } from 'zod';
import { bundledConfig } from '../../../scripts/bundle-functions.mjs';
import { SPOKE_DETAIL_TYPE, spokeSource } from '../../../shared/adapters/bus/spoke.js';
import { createAwsPorts } from '../../../shared/adapters/wiring/aws.js';
import { deadLetter } from '../../../shared/core/tickets/outbox.js';
import { COLLECTIONS, OutboxEntrySchema } from '../../../shared/core/tickets/store.js';
import { signJiraBody } from '../../../shared/core/tickets/webhook.js';
import { type JiraDouble, startJiraDouble } from '../../helpers/jira-double.js';
import { type LocalDynamo, startDynalite } from '../helpers/dynalite.js';
import { eventBridgeEvent, fixture, lambdaContext, sqsEvent, sqsRecord } from '../helpers/events.js';

const MetricFilterSchema = z.object({
  Type: z.literal('AWS::Logs::MetricFilter'),
  Properties: z.object({
    LogGroupName: z.object({ Ref: z.string() }),
    FilterPattern: z.string(),
    MetricTransformations: z.array(z.object({ MetricName: z.string(), MetricValue: z.string() })),
  }),
});

/** serverless.yml's metric filters on a function's log group (`TicketLogGroup`), by metric name. */
function filtersOn(logGroup: string): Map<string, { pattern: string; value: string }> {
  const doc = z
    .object({ resources: z.object({ Resources: z.record(z.string(), z.unknown()) }) })
    .parse(parse(readFileSync(join(process.cwd(), 'serverless.yml'), 'utf8')));
  const out = new Map<string, { pattern: string; value: string }>();
  for (const r of Object.values(doc.resources.Resources)) {
    const f = MetricFilterSchema.safeParse(r);
    if (!f.success || f.data.Properties.LogGroupName.Ref !== logGroup) continue;
    for (const t of f.data.Properties.MetricTransformations)
      out.set(t.MetricName, { pattern: f.data.Properties.FilterPattern, value: t.MetricValue });
  }
  return out;
}

/**
 * CloudWatch Logs' JSON pattern, in the forms serverless.yml uses (`{ $.field = "text" }`, several joined
 * by `||`), applied to one log line; returns the metric value (`$.field` read from the line, or a literal),
 * undefined when the line does not match or the value is not a number (CloudWatch then records nothing).
 */
function metricOf(filter: { pattern: string; value: string }, line: Record<string, unknown>): number | undefined {
  const body = /^\{ (.*) \}$/.exec(filter.pattern)?.[1];
  if (body === undefined) throw new Error(`a pattern this test cannot read: ${filter.pattern}`);
  const matches = body.split(' || ').some((term) => {
    const m = /^\$\.([A-Za-z]+) = "([^"]*)"$/.exec(term);
    if (!m) throw new Error(`a pattern this test cannot read: ${filter.pattern}`);
    return line[m[1] as string] === m[2];
  });
  if (!matches) return undefined;
  const value = filter.value.startsWith('$.') ? line[filter.value.slice(2)] : Number(filter.value);
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}

let dir: string;
let local: LocalDynamo;
let jira: JiraDouble;
const eb = mockClient(EventBridgeClient);
const secrets = mockClient(SecretsManagerClient);
const published: PutEventsRequestEntry[] = [];
let lines: Array<Record<string, unknown>> = [];

beforeAll(async () => {
  local = await startDynalite();
  await local.createTable('closeloop-alarms');
  dir = mkdtempSync(join(tmpdir(), 'closeloop-ticket-alarms-'));
  writeFileSync(join(dir, 'config.json'), JSON.stringify(await bundledConfig(process.cwd(), 'examples/config')));
  vi.stubEnv('AWS_ENDPOINT_URL_DYNAMODB', local.endpoint);
  vi.stubEnv('AWS_ACCESS_KEY_ID', 'AKIAIOSFODNN7EXAMPLE');
  vi.stubEnv('AWS_SECRET_ACCESS_KEY', 'test-secret');
  vi.stubEnv('CLOSELOOP_TABLE', 'closeloop-alarms');
  vi.stubEnv('CLOSELOOP_BUS', 'closeloop-alarms');
  vi.stubEnv('CLOSELOOP_CONFIG', join(dir, 'config.json'));
  vi.stubEnv('CLOSELOOP_EVIDENCE_BUCKET', 'closeloop-alarms-evidence');
  vi.stubEnv('CLOSELOOP_JIRA_SECRET', 'closeloop/alarms/jira');
  vi.stubEnv('CLOSELOOP_ACCOUNT_ID', '111122223333');
  vi.stubEnv('POWERTOOLS_METRICS_DISABLED', 'true');
  // The level serverless.yml deploys with: the lines the filters count are written at it.
  vi.stubEnv('POWERTOOLS_LOG_LEVEL', 'INFO');
  eb.on(PutEventsCommand).callsFake(async (input: { Entries?: PutEventsRequestEntry[] }) => {
    published.push(...(input.Entries ?? []));
    return { FailedEntryCount: 0, Entries: (input.Entries ?? []).map((_, i) => ({ EventId: `e${i}` })) };
  });
  // Jira answers every request 401: the API token was revoked.
  jira = await startJiraDouble({ projects: ['SEC', 'DATA', 'WEB', 'MEDIA'], authorization: 'Basic not-ours' });
  secrets.on(GetSecretValueCommand).resolves({
    SecretString: JSON.stringify({ host: jira.url, email: 'bot@example.com', apiToken: 'revoked-token' }),
  });
  // Powertools writes one JSON line per entry to stdout (and errors to stderr): keep them for the filters.
  for (const stream of [process.stdout, process.stderr])
    vi.spyOn(stream, 'write').mockImplementation((chunk: unknown) => {
      for (const text of String(chunk).split('\n'))
        if (text.startsWith('{')) lines.push(z.record(z.string(), z.unknown()).parse(JSON.parse(text)));
      return true;
    });
}, 60_000);
afterEach(() => {
  lines = [];
});
afterAll(async () => {
  vi.restoreAllMocks();
  eb.restore();
  secrets.restore();
  vi.unstubAllEnvs();
  await jira.close();
  await local.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('the ingest function tells the alarm about every finding it cannot take', () => {
  it('logs each rejected, refused or unreadable input as the filter counts it', async () => {
    // Prepare: a GuardDuty event whose finding has no resource, a document the GCP spoke's source puts
    // forward as the Azure spoke's, and a message that is not an EventBridge event at all
    const filter = filtersOn('IngestLogGroup').get('FindingsRejected');
    if (!filter) throw new Error('serverless.yml has no FindingsRejected filter on the ingest log group');
    const broken = fixture('guardduty/instance-crypto.eventbridge.json') as { detail: Record<string, unknown> };
    const { handler } = await import('../../../functions/aws/ingest.js');
    // Act
    const res = await handler(
      sqsEvent(
        sqsRecord(JSON.stringify({ ...broken, detail: { ...broken.detail, resource: undefined } })),
        sqsRecord(
          JSON.stringify(
            eventBridgeEvent(spokeSource('gcp'), SPOKE_DETAIL_TYPE, {
              spoke: 'azure',
              input: 'forged',
              document: fixture('defender/alert.arm.json'),
              findingKeys: [],
            }),
          ),
        ),
        sqsRecord('{"not": "an EventBridge event"'),
        sqsRecord(JSON.stringify(fixture('guardduty/instance-crypto.eventbridge.json'))),
      ),
      lambdaContext('ingest'),
    );
    // Assess: three counted (the good event none), nothing failed back to the queue
    expect(res.batchItemFailures).toEqual([]);
    expect(lines.map((l) => metricOf(filter, l)).filter((v) => v !== undefined)).toEqual([1, 1, 1]);
  });
});

const scheduled = () => eventBridgeEvent('aws.events', 'Scheduled Event', {}) as Record<string, unknown>;

describe('the ticket function tells the alarms when Jira takes nothing', () => {
  it('logs the age of the oldest request waiting in the outbox on every drain, as the filter reads it', async () => {
    // Prepare: a decided case whose create Jira refuses (401): it waits in the outbox, failing nothing
    const filter = filtersOn('TicketLogGroup').get('TicketOutboxOldestMinutes');
    if (!filter) throw new Error('serverless.yml has no TicketOutboxOldestMinutes filter on the ticket log group');
    const { handler: ingest } = await import('../../../functions/aws/ingest.js');
    await ingest(
      sqsEvent(sqsRecord(JSON.stringify(fixture('guardduty/instance-crypto.eventbridge.json')))),
      lambdaContext('ingest'),
    );
    const decided = published.find((e) => e.DetailType === 'case.decided');
    if (!decided?.Detail) throw new Error('ingest published no case.decided');
    const { handler } = await import('../../../functions/aws/ticket.js');
    const first = await handler(
      sqsEvent(sqsRecord(JSON.stringify(eventBridgeEvent('closeloop', 'case.decided', JSON.parse(decided.Detail))))),
      lambdaContext('ticket'),
    );
    expect(first).toEqual({ batchItemFailures: [] });
    expect(jira.issues.size).toBe(0);
    // …enqueued two hours ago (the drains since took nothing): moved back in the table itself.
    const { store } = createAwsPorts(process.env, { logger: new Logger({ serviceName: 'test' }) });
    const [entry] = await store.list(COLLECTIONS.outbox);
    if (!entry) throw new Error('the refused create is not in the outbox');
    const twoHoursAgo = new Date(Date.now() - 2 * 3_600_000).toISOString();
    await store.put(
      COLLECTIONS.outbox,
      entry.id,
      { ...OutboxEntrySchema.parse(entry.value), enqueuedAt: twoHoursAgo, notBefore: undefined },
      { expectVersion: entry.version },
    );
    lines = [];
    // Act: the scheduled drain, refused again
    await handler(scheduled(), lambdaContext('ticket'));
    // Assess: one line the filter counts, whose value is the wait in minutes (over the alarm's 60)
    const values = lines.map((l) => metricOf(filter, l)).filter((v) => v !== undefined);
    expect(values).toHaveLength(1);
    expect(values[0]).toBeGreaterThanOrEqual(120);
    expect(values[0]).toBeLessThan(125);
    expect(jira.issues.size).toBe(0);
    // …written as a warning: a stage whose functions log at WARN (to save on logs) still feeds the alarm
    const counted = lines.filter((l) => metricOf(filter, l) !== undefined);
    expect(counted.map((l) => l.level)).toEqual(['WARN']);
  });

  it('logs a request given up as the dead-letter filter counts it', async () => {
    // Prepare
    const filter = filtersOn('TicketLogGroup').get('TicketRequestsDeadLettered');
    if (!filter) throw new Error('serverless.yml has no TicketRequestsDeadLettered filter on the ticket log group');
    const ports = createAwsPorts(process.env, { logger: new Logger({ serviceName: 'closeloop-ticket' }) });
    // Act: what the outbox does when Jira refuses a request for good (its logger is the function's)
    await deadLetter(
      { store: ports.store, log: ports.log, clock: ports.clock } as Parameters<typeof deadLetter>[0],
      'aws|arn:aws:s3:::b|T',
      'create: 400 Field customfield_1 is required',
    );
    // Assess
    expect(lines.map((l) => metricOf(filter, l)).filter((v) => v !== undefined)).toEqual([1]);
  });
});

describe('the Jira webhook tells the alarm when it refuses deliveries for their signature', () => {
  it('logs each delivery signed with another secret as the filter counts it, and a well-signed one not', async () => {
    // Prepare: the hub's secret, and a Jira that signs with the one it was given before a rotation
    const filter = filtersOn('JiraDashwebhookLogGroup').get('JiraWebhookRefused');
    if (!filter) throw new Error('serverless.yml has no JiraWebhookRefused filter on the jira-webhook log group');
    const webhookSecret = 'jira-webhook-secret-0123456789';
    secrets.on(GetSecretValueCommand).resolves({
      SecretString: JSON.stringify({ host: jira.url, email: 'bot@example.com', apiToken: 'token', webhookSecret }),
    });
    const { handler } = await import('../../../functions/aws/jira-webhook.js');
    const body = JSON.stringify({ webhookEvent: 'jira:issue_updated', timestamp: Date.now(), issue: { key: 'SEC-1' } });
    const delivery = (secret: string) => ({
      version: '2.0',
      rawPath: '/jira/webhook',
      headers: { 'x-hub-signature': signJiraBody(body, secret) },
      body,
      isBase64Encoded: false,
    });
    // Act
    const refused = await handler(delivery('the-secret-before-rotation'), lambdaContext('jira-webhook'));
    const counted = lines.map((l) => metricOf(filter, l)).filter((v) => v !== undefined);
    lines = [];
    await handler(delivery(webhookSecret), lambdaContext('jira-webhook'));
    // Assess
    expect(refused).toMatchObject({ statusCode: 401 });
    expect(counted).toEqual([1]);
    expect(lines.map((l) => metricOf(filter, l)).filter((v) => v !== undefined)).toEqual([]);
  });
});
