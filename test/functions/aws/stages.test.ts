import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EventBridgeClient, PutEventsCommand, type PutEventsRequestEntry } from '@aws-sdk/client-eventbridge';
import { GetResourcesCommand, ResourceGroupsTaggingAPIClient } from '@aws-sdk/client-resource-groups-tagging-api';
import {
  GetBucketAclCommand,
  GetBucketPolicyCommand,
  GetBucketTaggingCommand,
  GetPublicAccessBlockCommand,
  PutObjectCommand,
  PutPublicAccessBlockCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { ChangeMessageVisibilityCommand, ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { type AwsClientStub, mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { bundledConfig } from '../../../scripts/bundle-functions.mjs';
import {
  REMOTE_REQUEST_DETAIL_TYPE,
  REMOTE_REQUEST_SOURCE,
  REMOTE_RESULT_DETAIL_TYPE,
  spokeSource,
} from '../../../shared/adapters/bus/spoke.js';
import { DynamoDocStore } from '../../../shared/adapters/store/dynamodb.js';
import { type Case, CaseSchema } from '../../../shared/core/model/case.js';
import { exceptionsRepo } from '../../../shared/core/policy/exceptions.js';
import { CLAIMS_COLLECTION, HELD_COLLECTION } from '../../../shared/core/remediation/stage.js';
import { shortHash } from '../../../shared/core/util/hash.js';
import { awsError, decidedCase as decidedCaseOf, decidedEvent, findingFor } from '../../helpers/action-context.js';
import { type JiraDouble, startJiraDouble } from '../../helpers/jira-double.js';
import { type LocalDynamo, startDynalite } from '../helpers/dynalite.js';
import { eventBridgeEvent, fixture, lambdaContext, sqsEvent, sqsRecord } from '../helpers/events.js';

// The hub's stage functions as Lambda runs them: ports built at module scope from the environment, the
// table in dynalite, the bus, the evidence bucket, the Jira secret and the queues mocked, Jira a local
// double. Each function builds what it needs on its first record (config, action registry, S3 client,
// jira.js), so these tests go through those first builds.
let dir: string;
let local: LocalDynamo;
let jira: JiraDouble;
let eb: AwsClientStub<EventBridgeClient>;
let s3: AwsClientStub<S3Client>;
let secrets: AwsClientStub<SecretsManagerClient>;
let sqs: AwsClientStub<SQSClient>;
let published: PutEventsRequestEntry[] = [];

beforeAll(async () => {
  local = await startDynalite();
  await local.createTable('closeloop-test');
  // The Jira projects examples/config routes teams to.
  jira = await startJiraDouble({ projects: ['SEC', 'DATA', 'WEB', 'MEDIA'] });
  // config.json as the bundler writes it into the artifact, from the example config
  dir = mkdtempSync(join(tmpdir(), 'closeloop-stage-functions-'));
  writeFileSync(join(dir, 'config.json'), JSON.stringify(await bundledConfig(process.cwd(), 'examples/config')));
  vi.stubEnv('AWS_ENDPOINT_URL_DYNAMODB', local.endpoint);
  vi.stubEnv('AWS_ACCESS_KEY_ID', 'AKIAIOSFODNN7EXAMPLE');
  vi.stubEnv('AWS_SECRET_ACCESS_KEY', 'test-secret');
  vi.stubEnv('CLOSELOOP_TABLE', 'closeloop-test');
  vi.stubEnv('CLOSELOOP_BUS', 'closeloop-test');
  vi.stubEnv('CLOSELOOP_CONFIG', join(dir, 'config.json'));
  vi.stubEnv('CLOSELOOP_EVIDENCE_BUCKET', 'closeloop-test-evidence');
  vi.stubEnv('CLOSELOOP_JIRA_SECRET', 'closeloop/test/jira');
  vi.stubEnv('CLOSELOOP_ACCOUNT_ID', '111122223333'); // the fixtures' account, as serverless.yml sets the hub's
  vi.stubEnv(
    'CLOSELOOP_QUEUES',
    JSON.stringify({ ticket: { queue: 'https://q/ticket', dlq: 'https://q/ticket-dlq' } }),
  );
  vi.stubEnv('POWERTOOLS_METRICS_DISABLED', 'true');
  vi.stubEnv('POWERTOOLS_LOG_LEVEL', 'SILENT');
  eb = mockClient(EventBridgeClient);
  s3 = mockClient(S3Client);
  secrets = mockClient(SecretsManagerClient);
  sqs = mockClient(SQSClient);
}, 60_000);
afterAll(async () => {
  for (const mock of [eb, s3, secrets, sqs]) mock.restore();
  vi.unstubAllEnvs();
  await jira.close();
  await local.stop();
  rmSync(dir, { recursive: true, force: true });
});
beforeEach(() => {
  published = [];
  eb.reset();
  eb.on(PutEventsCommand).callsFake(async (input: { Entries?: PutEventsRequestEntry[] }) => {
    published.push(...(input.Entries ?? []));
    return { FailedEntryCount: 0, Entries: (input.Entries ?? []).map((_, i) => ({ EventId: `e${i}` })) };
  });
  s3.reset();
  s3.on(PutObjectCommand).resolves({});
  secrets.reset();
  secrets.on(GetSecretValueCommand).resolves({
    SecretString: JSON.stringify({ host: jira.url, email: 'bot@example.com', apiToken: 'test-token' }),
  });
  sqs.reset();
  sqs.on(ReceiveMessageCommand).resolves({ Messages: [] });
});

/** Ingests one fixture through the ingest function and returns the `case.decided` event it published. */
async function decidedCase(path: string): Promise<ReturnType<typeof eventBridgeEvent>> {
  const { handler } = await import('../../../functions/aws/ingest.js');
  const res = await handler(sqsEvent(sqsRecord(JSON.stringify(fixture(path)))), lambdaContext('ingest'));
  expect(res.batchItemFailures).toEqual([]);
  const entry = published.find((e) => e.DetailType === 'case.decided');
  if (!entry?.Detail) throw new Error('ingest published no case.decided');
  published = [];
  return eventBridgeEvent('closeloop', 'case.decided', JSON.parse(entry.Detail));
}

const asRecord = (event: unknown) => sqsEvent(sqsRecord(JSON.stringify(event)));

/** One case for the early deliveries (ingested once: a repeated finding announces no new decision). */
let earlyCase: ReturnType<typeof decidedCase> | undefined;
/**
 * A `case.decided` naming the version after the one stored (the ingest's write not landed yet), as the
 * `receiveCount`-th delivery from `queue`.
 */
async function earlyRecord(queue: string, receiveCount: number): Promise<ReturnType<typeof sqsRecord>> {
  earlyCase ??= decidedCase('guardduty/sample.eventbridge.json');
  const decided = await earlyCase;
  const announced = z.looseObject({ caseKey: z.string(), caseVersion: z.number() }).parse(decided.detail);
  const early = { ...decided, detail: { ...announced, caseVersion: announced.caseVersion + 1 } };
  const record = sqsRecord(JSON.stringify(early), queue);
  return { ...record, attributes: { ...record.attributes, ApproximateReceiveCount: String(receiveCount) } };
}

describe('AWS stage functions', () => {
  it('evidence writes a locked record to the evidence bucket for a decided case', async () => {
    // Prepare
    const decided = await decidedCase('guardduty/s3-bucket-anonymous-access.eventbridge.json');
    const { handler } = await import('../../../functions/aws/evidence.js');
    // Act
    const res = await handler(asRecord(decided), lambdaContext('evidence'));
    // Assess
    expect(res.batchItemFailures).toEqual([]);
    const puts = s3.commandCalls(PutObjectCommand).map((c) => c.args[0].input);
    expect(puts.length).toBeGreaterThan(0);
    expect(puts[0]).toMatchObject({
      Bucket: 'closeloop-test-evidence',
      ObjectLockMode: 'COMPLIANCE',
      IfNoneMatch: '*',
    });
  });

  it('remediate records a remediation for a decided case (dry run: CLOSELOOP_APPLY unset)', async () => {
    // Prepare
    const decided = await decidedCase('securityhub/s3.8-failed.eventbridge.json');
    const { handler } = await import('../../../functions/aws/remediate.js');
    // Act
    const res = await handler(asRecord(decided), lambdaContext('remediate'));
    // Assess
    expect(res.batchItemFailures).toEqual([]);
    // The S3.8 playbook's action (s3.block-public-access, from the registry imported on this first record)
    // re-read the bucket through the mocked S3 client, which knows no bucket: the case is blocked, not applied.
    const remediation = published.find((e) => e.DetailType === 'case.remediation');
    expect(JSON.parse(remediation?.Detail ?? '{}')).toMatchObject({
      state: 'blocked',
      detail: { reason: expect.stringMatching(/live state could not be read/) },
    });
  });

  it('remediate announces a decision delivered twice once: the duplicate re-plans, under the same event id', async () => {
    // Prepare: SQS delivers at least once; EventBridge may put the same event on the queue twice
    const decided = await decidedCase('securityhub/iam.3.eventbridge.json');
    const { handler } = await import('../../../functions/aws/remediate.js');
    const record = asRecord(decided);
    // Act
    await handler(record, lambdaContext('remediate'));
    await handler(record, lambdaContext('remediate'));
    // Assess: downstream stages do an event id once (one ticket comment, one evidence record)
    const ids = published
      .filter((e) => e.DetailType === 'case.remediation')
      .map((e) => (JSON.parse(e.Detail ?? '{}') as { id: string }).id);
    expect(ids).toHaveLength(2);
    expect(new Set(ids).size).toBe(1);
  });

  it('verify answers its schedule and leaves events it does not handle alone', async () => {
    // Prepare
    const { handler } = await import('../../../functions/aws/verify.js');
    const scheduled: { Records?: unknown[] } & Record<string, unknown> = eventBridgeEvent(
      'aws.events',
      'Scheduled Event',
      {},
    );
    // Act
    const onSchedule = await handler(scheduled, {
      ...lambdaContext('verify'),
      getRemainingTimeInMillis: () => 300_000,
    });
    const exception = {
      type: 'case.exception',
      id: 'x-1',
      caseKey: 'k',
      at: '2026-01-02T03:04:05Z',
      exceptionId: 'EXC-1',
      active: true,
    };
    const onQueue = await handler(
      asRecord(eventBridgeEvent('closeloop', 'case.exception', exception)),
      lambdaContext('verify'),
    );
    // Assess
    expect(onSchedule).toMatchObject({ reopened: 0 });
    expect(onQueue).toMatchObject({ batchItemFailures: [] });
  });

  it("verify's schedule publishes what its sweep found (a re-check's verdict), not only counts it", async () => {
    // Prepare: a case left pending-verification by inconclusive verdicts, its last re-check due (it says so)
    const decided = await decidedCase('guardduty/lambda.eventbridge.json');
    const caseKey = String((decided.detail as { caseKey: string }).caseKey);
    const store = new DynamoDocStore(new DynamoDBClient({}), 'closeloop-test');
    const doc = await store.get('cases', caseKey);
    if (!doc) throw new Error('no case stored');
    const pending = {
      ...(doc.value as Record<string, unknown>),
      status: 'pending-verification',
      sourceStatus: 'resolved',
      verification: {
        verdict: 'inconclusive',
        at: '2026-01-01T00:00:00.000Z',
        reason: 'throttled',
        attempts: 3,
        trigger: 'apply',
        upstream: [],
      },
    };
    await store.put('cases', caseKey, pending, { expectVersion: doc.version });
    const { handler } = await import('../../../functions/aws/verify.js');
    // Act
    const scheduled: { Records?: unknown[] } & Record<string, unknown> = eventBridgeEvent(
      'aws.events',
      'Scheduled Event',
      {},
    );
    const out = await handler(scheduled, { ...lambdaContext('verify'), getRemainingTimeInMillis: () => 300_000 });
    // Assess
    const fromSweep = published.filter(
      (e) => (JSON.parse(e.Detail ?? '{}') as { caseKey?: string }).caseKey === caseKey,
    );
    expect(out).toMatchObject({ rechecked: 1 });
    expect(fromSweep.map((e) => e.DetailType)).toContain('case.verified');
  });

  it("verify's schedule starts no re-check past the invocation's remaining time; the next invocation takes the rest", async () => {
    // Prepare: a case pending a due re-check, and an invocation with no more time than the margin
    const decided = await decidedCase('guardduty/accesskey-iamuser-malicious-ip.eventbridge.json');
    const caseKey = String((decided.detail as { caseKey: string }).caseKey);
    const store = new DynamoDocStore(new DynamoDBClient({}), 'closeloop-test');
    const doc = await store.get('cases', caseKey);
    if (!doc) throw new Error('no case stored');
    const pending = {
      ...(doc.value as Record<string, unknown>),
      status: 'pending-verification',
      sourceStatus: 'resolved',
      verification: {
        verdict: 'inconclusive',
        at: '2026-01-01T00:00:00.000Z',
        reason: 'throttled',
        attempts: 3,
        trigger: 'apply',
        upstream: [],
      },
    };
    await store.put('cases', caseKey, pending, { expectVersion: doc.version });
    const { handler, REVERIFY_MARGIN_MS } = await import('../../../functions/aws/verify.js');
    const scheduled: { Records?: unknown[] } & Record<string, unknown> = eventBridgeEvent(
      'aws.events',
      'Scheduled Event',
      {},
    );
    const SweepCounts = z.object({
      due: z.number(),
      rechecked: z.number(),
      remaining: z.number(),
      published: z.number(),
    });
    const verification = async () => CaseSchema.parse((await store.get('cases', caseKey))?.value).verification;
    // Act
    const stopped = SweepCounts.parse(
      await handler(scheduled, { ...lambdaContext('verify'), getRemainingTimeInMillis: () => REVERIFY_MARGIN_MS }),
    );
    const afterStopped = await verification();
    const next = SweepCounts.parse(
      await handler(scheduled, { ...lambdaContext('verify'), getRemainingTimeInMillis: () => 300_000 }),
    );
    // Assess
    expect(stopped.due).toBeGreaterThanOrEqual(1);
    expect(stopped).toMatchObject({ rechecked: 0, remaining: stopped.due, published: 0 });
    expect(afterStopped).toMatchObject({ at: '2026-01-01T00:00:00.000Z', trigger: 'apply' });
    expect(next).toMatchObject({ remaining: 0 });
    expect(next.rechecked).toBeGreaterThanOrEqual(1);
    expect(await verification()).toMatchObject({ trigger: 'scheduled', rechecks: 1 });
  });

  it("ingest's schedule sweeps the cases against the exceptions: a new exception suppresses an open case", async () => {
    // Prepare: an open case, then an exception added to the store for its resource
    const decided = await decidedCase('guardduty/rds.eventbridge.json');
    const caseKey = String((decided.detail as { caseKey: string }).caseKey);
    const store = new DynamoDocStore(new DynamoDBClient({}), 'closeloop-test');
    const open = CaseSchema.parse((await store.get('cases', caseKey))?.value);
    await exceptionsRepo(store).add({
      id: 'EXC-SWEEP',
      owner: 'ciso@example.com',
      justification: 'forensics copy, isolated',
      scope: { resources: [open.resourceId] },
      expires: '2099-12-31',
    });
    const { handler } = await import('../../../functions/aws/ingest.js');
    // Act
    const scheduled: { Records?: unknown[] } & Record<string, unknown> = eventBridgeEvent(
      'aws.events',
      'Scheduled Event',
      {},
    );
    const out = await handler(scheduled, lambdaContext('ingest'));
    // Assess
    const c = CaseSchema.parse((await store.get('cases', caseKey))?.value);
    expect(out).toMatchObject({ suppressed: expect.any(Number) });
    expect(c.status).toBe('suppressed');
    expect(c.exception?.id).toBe('EXC-SWEEP');
    expect(published.map((e) => e.DetailType)).toEqual(expect.arrayContaining(['case.decided', 'case.exception']));
  });

  it('ticket creates one Jira issue for a decided case', async () => {
    // Prepare
    const decided = await decidedCase('guardduty/instance-crypto.eventbridge.json');
    const { handler } = await import('../../../functions/aws/ticket.js');
    // Act
    const res = await handler(asRecord(decided), lambdaContext('ticket'));
    // Assess
    expect(res).toEqual({ batchItemFailures: [] });
    expect(jira.issues.size).toBe(1);
  });

  it("ticket links only to AWS's console, whatever region a finding's resource claims", async () => {
    // Prepare: a Security Hub finding (any account allowed to BatchImportFindings can make one) whose
    // resources name a "region" that is a host: in the ARN, and in `Region` beside a region-less ARN.
    const event = fixture('securityhub/iam.3.eventbridge.json') as {
      detail: { findings: Array<Record<string, unknown>> };
    };
    const [template] = event.detail.findings;
    const finding = (n: number, resource: Record<string, unknown>) => ({
      ...template,
      Id: `arn:aws:securityhub:us-east-1:111122223333:security-control/EC2.99/finding/console-link-${n}`,
      GeneratorId: 'security-control/EC2.99',
      Compliance: { Status: 'FAILED', SecurityControlId: 'EC2.99' },
      ProductFields: {},
      Resources: [resource],
    });
    event.detail.findings = [
      finding(1, { Type: 'AwsEc2Instance', Id: 'arn:aws:ec2:evil.example#:111122223333:instance/i-0c0c0c0c0c0c0c0c1' }),
      finding(2, {
        Type: 'AwsEc2Instance',
        Id: 'arn:aws:ec2::111122223333:instance/i-0c0c0c0c0c0c0c0c2',
        Region: 'evil.example/x?',
      }),
      finding(3, { Type: 'AwsLambdaFunction', Id: 'arn:aws:lambda:evil.example?:111122223333:function:f' }),
    ];
    const ingest = (await import('../../../functions/aws/ingest.js')).handler;
    expect((await ingest(asRecord(event), lambdaContext('ingest'))).batchItemFailures).toEqual([]);
    const decisions = published.filter((e) => e.DetailType === 'case.decided');
    expect(decisions).toHaveLength(3);
    published = [];
    const before = new Set(jira.issues.keys());
    const { handler } = await import('../../../functions/aws/ticket.js');
    // Act
    for (const d of decisions)
      await handler(
        asRecord(eventBridgeEvent('closeloop', 'case.decided', JSON.parse(d.Detail ?? ''))),
        lambdaContext('ticket'),
      );
    // Assess: every link in the new issues goes to AWS's console
    const made = [...jira.issues.values()].filter((i) => !before.has(i.key));
    expect(made).toHaveLength(3);
    const hrefs = made.flatMap((i) =>
      [...JSON.stringify(i.fields.description).matchAll(/"href":"([^"]*)"/g)].map((m) => m[1] ?? ''),
    );
    expect(hrefs.length).toBeGreaterThanOrEqual(3);
    for (const href of hrefs) expect(new URL(href).hostname).toMatch(/(^|\.)console\.aws\.amazon\.com$/);
  });

  it('ticket tells how to approve with a command a shell runs as written, whatever the resource id holds', async () => {
    // Prepare: a Security Hub finding (anyone allowed to BatchImportFindings can make one) whose bucket ARN
    // carries a command substitution (ids refuse quotes and white space, not `$(…)`, braces or `|`; the case key
    // lower-cases the id, which brace expansion does not mind).
    // Lower-case throughout: the case key lower-cases the id that carries it.
    const markerDir = join(tmpdir(), `closeloop-approve-hint-${process.pid}`).toLowerCase();
    mkdirSync(markerDir, { recursive: true });
    const marker = join(markerDir, 'ran');
    const event = fixture('securityhub/iam.3.eventbridge.json') as {
      detail: { findings: Array<Record<string, unknown>> };
    };
    const [template] = event.detail.findings;
    event.detail.findings = [
      {
        ...template,
        Id: 'arn:aws:securityhub:us-east-1:111122223333:security-control/S3.99/finding/approve-hint',
        GeneratorId: 'security-control/S3.99',
        Compliance: { Status: 'FAILED', SecurityControlId: 'S3.99' },
        ProductFields: {},
        Resources: [{ Type: 'AwsS3Bucket', Id: `arn:aws:s3:::acme-reports$({touch,${marker}})` }],
      },
    ];
    const ingest = (await import('../../../functions/aws/ingest.js')).handler;
    expect((await ingest(asRecord(event), lambdaContext('ingest'))).batchItemFailures).toEqual([]);
    const decided = published.find((e) => e.DetailType === 'case.decided');
    const { caseKey } = z.object({ caseKey: z.string() }).parse(JSON.parse(decided?.Detail ?? ''));
    published = [];
    const before = new Set(jira.issues.keys());
    const { handler } = await import('../../../functions/aws/ticket.js');
    await handler(
      asRecord(eventBridgeEvent('closeloop', 'case.decided', JSON.parse(decided?.Detail ?? ''))),
      lambdaContext('ticket'),
    );
    const awaiting = {
      id: 'approve-hint-1',
      type: 'case.remediation',
      caseKey,
      at: '2026-01-02T03:04:05.000Z',
      state: 'awaiting-approval',
      actor: 'closeloop',
    };
    // Act
    const res = await handler(
      asRecord(eventBridgeEvent('closeloop', 'case.remediation', awaiting)),
      lambdaContext('ticket'),
    );
    // Assess: the hint's command, pasted into a shell, runs `closeloop approve <this case> --by NAME` and nothing else
    expect(res).toEqual({ batchItemFailures: [] });
    const [issue] = [...jira.issues.values()].filter((i) => !before.has(i.key));
    const hint = [...JSON.stringify(issue?.comments).matchAll(/"text":"(closeloop approve [^"]*)"/g)].map((m) => m[1]);
    expect(hint).toHaveLength(1);
    const shell = spawnSync('bash', ['-c', `closeloop() { printf '%s\\n' "$@"; }; ${hint[0]}`], {
      encoding: 'utf8',
    }).stdout;
    const ran = existsSync(marker);
    rmSync(markerDir, { recursive: true, force: true });
    expect(ran).toBe(false);
    const [verb, ref, ...rest] = shell.trim().split('\n');
    expect({ verb, rest }).toEqual({ verb: 'approve', rest: ['--by', 'NAME'] });
    expect([caseKey, shortHash(caseKey, 10)]).toContain(ref);
  });

  it('ticket reports an event whose case write has not landed as a batch item failure, and handles it once it has', async () => {
    // Prepare: a decided case (stored at version 1) whose event names a version 2 not written yet
    const decided = await decidedCase('guardduty/assumedrole-exfiltration.eventbridge.json');
    const announced = z.looseObject({ caseKey: z.string(), caseVersion: z.number() }).parse(decided.detail);
    expect(announced.caseVersion).toBe(1);
    const early = { ...decided, detail: { ...announced, caseVersion: 2 } };
    const record = sqsRecord(JSON.stringify(early));
    const { handler } = await import('../../../functions/aws/ticket.js');
    const before = jira.issues.size;
    // Act 1: the early delivery
    const first = await handler(sqsEvent(record), lambdaContext('ticket'));
    const afterFirst = jira.issues.size;
    // Act 2: the write lands; SQS delivers the same message again
    const store = new DynamoDocStore(new DynamoDBClient({}), 'closeloop-test');
    const stored = await store.get('cases', announced.caseKey);
    await store.put('cases', announced.caseKey, stored?.value, { expectVersion: stored?.version ?? 0 });
    const second = await handler(sqsEvent(record), lambdaContext('ticket'));
    // Assess
    expect(first).toEqual({ batchItemFailures: [{ itemIdentifier: record.messageId }] });
    expect(afterFirst).toBe(before);
    expect(second).toEqual({ batchItemFailures: [] });
    expect(jira.issues.size).toBe(before + 1);
  });

  it('ticket makes a record whose case is not written yet visible again in 5 s on its own queue, and still reports it failed', async () => {
    // Prepare: the first delivery of an event whose case write has not landed, from the ticket queue
    const record = await earlyRecord('closeloop-test-ticket', 1);
    const { handler } = await import('../../../functions/aws/ticket.js');
    // Act
    const res = await handler(sqsEvent(record), lambdaContext('ticket'));
    // Assess: hidden for 5 s from now (not the queue's 30 min), and left to SQS as a batch item failure
    expect(sqs).toHaveReceivedCommandTimes(ChangeMessageVisibilityCommand, 1);
    expect(sqs).toHaveReceivedCommandWith(ChangeMessageVisibilityCommand, {
      QueueUrl: 'https://sqs.us-east-1.amazonaws.com/111122223333/closeloop-test-ticket',
      ReceiptHandle: record.receiptHandle,
      VisibilityTimeout: 5,
    });
    expect(res).toEqual({ batchItemFailures: [{ itemIdentifier: record.messageId }] });
  });

  it('ticket waits longer before the next delivery of a record received three times already', async () => {
    // Prepare: the third delivery of an event whose case write still has not landed
    const record = await earlyRecord('closeloop-test-ticket', 3);
    const { handler } = await import('../../../functions/aws/ticket.js');
    // Act
    const res = await handler(sqsEvent(record), lambdaContext('ticket'));
    // Assess
    expect(sqs).toHaveReceivedCommandExactlyOnceWith(ChangeMessageVisibilityCommand, {
      QueueUrl: 'https://sqs.us-east-1.amazonaws.com/111122223333/closeloop-test-ticket',
      ReceiptHandle: record.receiptHandle,
      VisibilityTimeout: 60,
    });
    expect(res).toEqual({ batchItemFailures: [{ itemIdentifier: record.messageId }] });
  });

  it('ticket leaves the visibility of a record that failed for a reason retrying cannot fix alone', async () => {
    // Prepare: a body that is no EventBridge event (invalid, not retryable) beside a record whose case is pending
    const broken = sqsRecord('not json', 'closeloop-test-ticket');
    const early = await earlyRecord('closeloop-test-ticket', 1);
    const { handler } = await import('../../../functions/aws/ticket.js');
    // Act
    const res = await handler(sqsEvent(broken, early), lambdaContext('ticket'));
    // Assess: both reported; only the pending one is shortened
    expect(res.batchItemFailures).toEqual(
      expect.arrayContaining([{ itemIdentifier: broken.messageId }, { itemIdentifier: early.messageId }]),
    );
    expect(sqs).toHaveReceivedCommandTimes(ChangeMessageVisibilityCommand, 1);
    expect(sqs).toHaveReceivedCommandWith(ChangeMessageVisibilityCommand, { ReceiptHandle: early.receiptHandle });
  });

  it('ticket still reports the record failed when ChangeMessageVisibility fails', async () => {
    // Prepare: SQS refuses the change (the receipt handle expired while the batch ran)
    sqs.on(ChangeMessageVisibilityCommand).rejects(
      Object.assign(new Error('Value AQEB for parameter ReceiptHandle is invalid'), {
        name: 'ReceiptHandleIsInvalid',
      }),
    );
    const record = await earlyRecord('closeloop-test-ticket', 1);
    const { handler } = await import('../../../functions/aws/ticket.js');
    // Act
    const res = await handler(sqsEvent(record), lambdaContext('ticket'));
    // Assess: the change was tried, and the record goes back to SQS as it would have without it
    expect(sqs).toHaveReceivedCommandTimes(ChangeMessageVisibilityCommand, 1);
    expect(res).toEqual({ batchItemFailures: [{ itemIdentifier: record.messageId }] });
  });

  it.each([
    ['evidence', 'closeloop-test-evidence', () => import('../../../functions/aws/evidence.js')],
    ['remediate', 'closeloop-test-remediate', () => import('../../../functions/aws/remediate.js')],
    ['verify', 'closeloop-test-verify', () => import('../../../functions/aws/verify.js')],
  ] as const)(
    '%s makes a record whose case is not written yet visible again in 5 s on its own queue',
    async (fn, queue, load) => {
      // Prepare
      const record = await earlyRecord(queue, 1);
      const { handler } = await load();
      // Act
      const res = await handler(sqsEvent(record), lambdaContext(fn));
      // Assess
      expect(sqs).toHaveReceivedCommandExactlyOnceWith(ChangeMessageVisibilityCommand, {
        QueueUrl: `https://sqs.us-east-1.amazonaws.com/111122223333/${queue}`,
        ReceiptHandle: record.receiptHandle,
        VisibilityTimeout: 5,
      });
      expect(res).toEqual({ batchItemFailures: [{ itemIdentifier: record.messageId }] });
    },
  );

  it("ticket's schedule sends what Jira could not take when the event came (the outbox drain)", async () => {
    // Prepare: Jira refuses every create while the case's event is handled; the message itself succeeds.
    const decided = await decidedCase('guardduty/eks.eventbridge.json');
    const { handler } = await import('../../../functions/aws/ticket.js');
    const before = jira.issues.size;
    jira.faults = [{ match: /^POST \/rest\/api\/3\/issue$/, ratio: 1, kind: '503' }];
    const onEvent = await handler(asRecord(decided), lambdaContext('ticket'));
    const afterEvent = jira.issues.size;
    jira.faults = [];
    const scheduled: { Records?: unknown[] } & Record<string, unknown> = eventBridgeEvent(
      'aws.events',
      'Scheduled Event',
      {},
    );
    // Act: the next scheduled drain, once the entry's backoff has passed (only Date is moved forward).
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(Date.now() + 10 * 60_000);
    const drained = await handler(scheduled, lambdaContext('ticket')).finally(() => vi.useRealTimers());
    const again = await handler(scheduled, lambdaContext('ticket'));
    // Assess
    expect(onEvent).toEqual({ batchItemFailures: [] });
    expect(afterEvent).toBe(before);
    expect(drained).toMatchObject({ sent: 1, remaining: 0 });
    expect(jira.issues.size).toBe(before + 1);
    expect(again).toMatchObject({ sent: 0, remaining: 0 });
  }, 60_000);

  it('redrive moves nothing from an empty dead-letter queue', async () => {
    // Prepare
    const { handler } = await import('../../../functions/aws/redrive.js');
    // Act
    const result = await handler({ queue: 'ticket', max: 5 }, lambdaContext('redrive'));
    // Assess
    expect(result).toMatchObject({ queue: 'ticket', moved: 0 });
  });

  it('jira-webhook refuses a call without a valid signature', async () => {
    // Prepare
    const { handler } = await import('../../../functions/aws/jira-webhook.js');
    const event = { version: '2.0', rawPath: '/jira/webhook', headers: {}, body: '{}', isBase64Encoded: false };
    // Act
    const res = await handler(event, lambdaContext('jira-webhook'));
    // Assess
    expect(res.statusCode).toBe(401);
  });

  it('jira-webhook names the wrong field of a signed body that is no Jira webhook payload, in its answer and its log', async () => {
    // Prepare: the function as deployed with a webhook secret, logging warnings (the module reads both at load).
    const webhookSecret = 'jira-webhook-secret-0123456789';
    secrets.on(GetSecretValueCommand).resolves({
      SecretString: JSON.stringify({ host: jira.url, email: 'bot@example.com', apiToken: 'test-token', webhookSecret }),
    });
    vi.resetModules();
    vi.stubEnv('POWERTOOLS_LOG_LEVEL', 'WARN');
    const { handler } = await import('../../../functions/aws/jira-webhook.js');
    vi.stubEnv('POWERTOOLS_LOG_LEVEL', 'SILENT');
    const { signJiraBody } = await import('../../../shared/core/tickets/webhook.js');
    const body = JSON.stringify({ webhookEvent: 'jira:issue_updated', issue: { key: 4711, summary: 'body-marker' } });
    const headers = { 'x-hub-signature': signJiraBody(body, webhookSecret) };
    const event = { version: '2.0', rawPath: '/jira/webhook', headers, body, isBase64Encoded: false };
    // Powertools writes warnings to stderr.
    const written = [process.stdout, process.stderr].map((s) => vi.spyOn(s, 'write').mockImplementation(() => true));
    // Act
    const lines: string[] = [];
    const res = await handler(event, lambdaContext('jira-webhook')).finally(() => {
      for (const w of written) lines.push(...w.mock.calls.map((c) => String(c[0])));
      for (const w of written) w.mockRestore();
    });
    // Assess: the field and why, never the body or the secret
    expect(res.statusCode).toBe(400);
    expect(JSON.parse(res.body)).toEqual({
      error: 'not a Jira webhook payload',
      field: 'issue.key',
      reason: expect.stringContaining('expected string'),
    });
    const warning = lines.find((l) => l.includes('not a Jira webhook payload'));
    expect(warning).toContain('"field":"issue.key"');
    for (const line of [...lines, res.body]) {
      expect(line).not.toContain('body-marker');
      expect(line).not.toContain(webhookSecret);
    }
  });

  // Last: these load the remediate module again as a deployment with apply on.
  describe('remediate, deployed to apply, on its schedule', () => {
    const tagging = mockClient(ResourceGroupsTaggingAPIClient);
    const store = () => new DynamoDocStore(new DynamoDBClient({}), 'closeloop-test');
    /** The remediate module as a deployment with apply on loads it (its ports read the environment at load). */
    const applyingRemediate = async () => {
      vi.resetModules();
      vi.stubEnv('CLOSELOOP_APPLY', 'true');
      return import('../../../functions/aws/remediate.js');
    };
    /** A dev S3 case of the hub's account with an automatic fix, stored with its finding, as `change` leaves it. */
    const storedCase = async (bucket: string, change: (c: Case) => Case) => {
      const finding = findingFor({ provider: 'aws', id: `arn:aws:s3:::${bucket}`, type: 'S3Bucket', name: bucket });
      const skipTag = { gate: 'skip-tag' as const, outcome: 'pass' as const, reason: 'no skip tag' };
      const c = change(decidedCaseOf(finding, { action: 's3.block-public-access', gates: [skipTag] }));
      await store().put('findings', finding.key, finding);
      await store().put('cases', c.key, c);
      return c;
    };
    /** A planned case the budget held, whose hold is over (its held document written beside it). */
    const heldCase = async (bucket: string) => {
      const held = await storedCase(bucket, (c) => ({
        ...c,
        status: 'planned',
        remediation: { ...c.remediation, state: 'held', stateReason: 'budget spent: 10 applies this hour; held' },
      }));
      await store().put(HELD_COLLECTION, held.key, { caseKey: held.key, reason: 'budget spent', at: held.updatedAt });
      return held;
    };
    const scheduled = (): { Records?: unknown[] } & Record<string, unknown> =>
      eventBridgeEvent('aws.events', 'Scheduled Event', {});
    const remediationEvents = (caseKey: string) =>
      published
        .filter((e) => e.DetailType === 'case.remediation')
        .map((e) => JSON.parse(e.Detail ?? '{}') as { caseKey: string; state: string; detail: { reason?: string } })
        .filter((d) => d.caseKey === caseKey);
    /** The context of an invocation with `ms` left before its timeout. */
    const withTime = (ms: number) => ({ ...lambdaContext('remediate'), getRemainingTimeInMillis: () => ms });
    const caseOf = async (key: string) => CaseSchema.parse((await store().get('cases', key))?.value);

    beforeEach(() => {
      // A bucket with nothing configured, and no skip tag on it.
      s3.on(GetPublicAccessBlockCommand).rejects(awsError('NoSuchPublicAccessBlockConfiguration', 404));
      s3.on(GetBucketAclCommand).resolves({ Owner: { ID: '0'.repeat(64) }, Grants: [] });
      s3.on(GetBucketPolicyCommand).rejects(awsError('NoSuchBucketPolicy', 404));
      s3.on(GetBucketTaggingCommand).rejects(awsError('NoSuchTagSet', 404));
      s3.on(PutPublicAccessBlockCommand).resolves({ $metadata: { requestId: 'req-pab' } });
      tagging.reset();
      tagging.on(GetResourcesCommand).resolves({ ResourceTagMappingList: [] });
    });
    afterAll(() => {
      tagging.restore();
      vi.resetModules();
    });

    it('applies a held fix once its hold has lifted: held work no longer waits for a new finding', async () => {
      // Prepare: a case held by the budget of an hour that is over
      const held = await heldCase('acme-held-exports');
      const { handler, SWEEP_MARGIN_MS } = await applyingRemediate();
      // Act: an invocation with no more time than the margin, then one with the function's whole timeout
      const stopped = await handler(scheduled(), withTime(SWEEP_MARGIN_MS));
      const afterStopped = await caseOf(held.key);
      const out = await handler(scheduled(), withTime(300_000));
      // Assess
      expect(stopped).toMatchObject({ held: { released: 0, remaining: 1 } });
      expect(afterStopped.remediation.state).toBe('held');
      expect(out).toMatchObject({ held: { released: 1, remaining: 0 } });
      expect((await caseOf(held.key)).remediation.state).toBe('applied');
      expect(s3).toReceiveCommandWith(PutPublicAccessBlockCommand, { Bucket: 'acme-held-exports' });
      expect(remediationEvents(held.key).map((d) => d.state)).toEqual(['applied']);
      expect(published.map((e) => e.DetailType)).toContain('case.verify-requested');
      expect(await store().get(HELD_COLLECTION, held.key)).toBeUndefined();
    });

    it("sends a released fix's events with the next run when the run that applied it could not publish them", async () => {
      // Prepare: a held case whose hold is over
      const held = await heldCase('acme-held-unannounced');
      const { handler, UNPUBLISHED_FOLLOW_UPS } = await applyingRemediate();
      eb.on(PutEventsCommand).resolves({ FailedEntryCount: 1, Entries: [{ ErrorCode: 'InternalFailure' }] });
      const first = await handler(scheduled(), withTime(300_000));
      eb.on(PutEventsCommand).callsFake(async (input: { Entries?: PutEventsRequestEntry[] }) => {
        published.push(...(input.Entries ?? []));
        return { FailedEntryCount: 0, Entries: (input.Entries ?? []).map((_, i) => ({ EventId: `e${i}` })) };
      });
      // Act
      const second = await handler(scheduled(), withTime(300_000));
      await handler(scheduled(), withTime(300_000));
      // Assess: applied once by the first run; its ticket is told and its verification asked for by the next, once
      expect(first).toMatchObject({ held: { released: 0, errors: 1 } });
      expect((await caseOf(held.key)).remediation.state).toBe('applied');
      expect(s3).toReceiveCommandTimes(PutPublicAccessBlockCommand, 1);
      expect(remediationEvents(held.key).map((d) => d.state)).toEqual(['applied']);
      expect(published.filter((e) => e.DetailType === 'case.verify-requested')).toHaveLength(1);
      expect(second).toMatchObject({ resent: 2 });
      expect(await store().list(UNPUBLISHED_FOLLOW_UPS)).toEqual([]);
    });

    it('settles a claim whose invocation died as failed and publishes the failed event for its ticket, leaving a fresh claim alone', async () => {
      // Prepare: two claims, one taken 20 minutes ago (its invocation timed out mid-apply), one just now
      const claim = (claimedAt: Date) => (c: Case) => ({
        ...c,
        status: 'planned' as const,
        remediation: {
          ...c.remediation,
          state: 'applying' as const,
          stateReason: 'applying',
          applyToken: `claim-${claimedAt.getTime()}`,
          claimedAt: claimedAt.toISOString(),
        },
      });
      const abandoned = await storedCase('acme-abandoned', claim(new Date(Date.now() - 20 * 60_000)));
      const fresh = await storedCase('acme-claimed-now', claim(new Date()));
      for (const c of [abandoned, fresh]) {
        await store().put(CLAIMS_COLLECTION, c.key, { caseKey: c.key, at: c.remediation.claimedAt });
      }
      const { handler } = await applyingRemediate();
      // Act
      const out = await handler(scheduled(), withTime(300_000));
      // Assess
      const settled = await caseOf(abandoned.key);
      expect(out).toMatchObject({ claims: { recovered: 1, live: 1 } });
      expect(settled.remediation).toMatchObject({ state: 'failed', applyToken: abandoned.remediation.applyToken });
      expect(settled.remediation.stateReason).toMatch(/interrupted: no outcome within 15 min of its claim/);
      expect(remediationEvents(abandoned.key)).toEqual([
        expect.objectContaining({
          state: 'failed',
          detail: expect.objectContaining({ reason: settled.remediation.stateReason }),
        }),
      ]);
      expect((await caseOf(fresh.key)).remediation).toEqual(fresh.remediation);
      expect(s3).toReceiveCommandTimes(PutPublicAccessBlockCommand, 0);
    });

    it("records a spoke's answer read from the spoke-results queue, in the same batch shape as a decision", async () => {
      // Prepare: an Azure case handed over under claim `t-1`, and the spoke's answer as its own queue delivers it
      const waiting = await storedCase('acme-answered', (c) => ({
        ...c,
        status: 'planned' as const,
        remediation: { ...c.remediation, state: 'applying' as const, stateReason: 'dispatched', applyToken: 't-1' },
      }));
      const answer = eventBridgeEvent(spokeSource('azure'), REMOTE_RESULT_DETAIL_TYPE, {
        requestId: 'rq-answered',
        caseKey: waiting.key,
        provider: 'azure',
        action: 'azure.storage.disallow-public-access',
        op: 'apply',
        applyToken: 't-1',
        outcome: 'applied',
        reason: 'public blob access disallowed',
        before: { allowBlobPublicAccess: true },
        requestIds: ['arm-req-1'],
        actor: 'closeloop@azure-spoke',
        at: '2026-11-18T10:00:00.000Z',
      });
      const { handler } = await applyingRemediate();
      // Act
      const res = await handler(
        sqsEvent(sqsRecord(JSON.stringify(answer), 'closeloop-test-spoke-results')),
        lambdaContext('remediate'),
      );
      // Assess: the answer is recorded on its case (not taken for a pipeline event) and verification is asked for
      expect(res.batchItemFailures).toEqual([]);
      expect((await caseOf(waiting.key)).remediation).toMatchObject({ state: 'applied', requestIds: ['arm-req-1'] });
      expect(remediationEvents(waiting.key).map((d) => d.state)).toEqual(['applied']);
      expect(published.map((e) => e.DetailType)).toContain('case.verify-requested');
    });

    it('publishes what a decision settled (approval needed, a failed apply) when it comes again after its first publish failed', async () => {
      // Prepare: a case whose fix needs an approval, and one whose apply is refused by IAM
      const asking = await storedCase('acme-asks-approval', (c) => ({
        ...c,
        remediation: { ...c.remediation, mode: 'approval' as const, reason: 'approval in dev' },
      }));
      const refused = await storedCase('acme-apply-refused', (c) => c);
      s3.on(PutPublicAccessBlockCommand, { Bucket: 'acme-apply-refused' }).rejects(awsError('AccessDenied', 403));
      const decision = (caseKey: string, id: string) =>
        sqsRecord(
          JSON.stringify(eventBridgeEvent('closeloop', 'case.decided', { ...decidedEvent(caseKey), id })),
          'closeloop-test-remediate',
        );
      const records = [decision(asking.key, 'd-asks-approval'), decision(refused.key, 'd-apply-refused')];
      const { handler, UNPUBLISHED_FOLLOW_UPS } = await applyingRemediate();
      // The hub bus refuses the decisions' events the first time.
      eb.on(PutEventsCommand).resolves({ FailedEntryCount: 1, Entries: [{ ErrorCode: 'InternalFailure' }] });
      const first = await handler(sqsEvent(...records), lambdaContext('remediate'));
      eb.on(PutEventsCommand).callsFake(async (input: { Entries?: PutEventsRequestEntry[] }) => {
        published.push(...(input.Entries ?? []));
        return { FailedEntryCount: 0, Entries: (input.Entries ?? []).map((_, i) => ({ EventId: `e${i}` })) };
      });
      // Act: SQS delivers both again
      const again = await handler(sqsEvent(...records), lambdaContext('remediate'));
      // Assess: settled once; the ticket is asked for the approval and told of the failure after all
      expect(first.batchItemFailures).toHaveLength(2);
      expect(again.batchItemFailures).toEqual([]);
      expect((await caseOf(asking.key)).remediation.state).toBe('awaiting-approval');
      expect((await caseOf(refused.key)).remediation.state).toBe('failed');
      expect(s3).toReceiveCommandTimes(PutPublicAccessBlockCommand, 1);
      expect(remediationEvents(asking.key).map((d) => d.state)).toEqual(['awaiting-approval']);
      expect(remediationEvents(refused.key).map((d) => d.state)).toEqual(['failed']);
      expect(await store().list(UNPUBLISHED_FOLLOW_UPS)).toEqual([]);
    });

    it("publishes a spoke's failed or rolled-back answer when it comes again after its first publish failed", async () => {
      // Prepare: an Azure case handed over under claim `t-1`, and another applied under `t-1` and being rolled
      // back; the spokes' answers as their queue delivers them
      const waiting = await storedCase('acme-answered-failed', (c) => ({
        ...c,
        status: 'planned' as const,
        remediation: { ...c.remediation, state: 'applying' as const, stateReason: 'dispatched', applyToken: 't-1' },
      }));
      const undone = await storedCase('acme-answered-rolled-back', (c) => ({
        ...c,
        status: 'remediated' as const,
        remediation: {
          ...c.remediation,
          state: 'applied' as const,
          stateReason: 'applied',
          applyToken: 't-1',
          appliedAt: '2026-11-18T10:00:00.000Z',
          before: { allowBlobPublicAccess: true },
        },
      }));
      const answer = (caseKey: string, op: string, outcome: string) =>
        sqsRecord(
          JSON.stringify(
            eventBridgeEvent(spokeSource('azure'), REMOTE_RESULT_DETAIL_TYPE, {
              requestId: `rq-${op}-${outcome}`,
              caseKey,
              provider: 'azure',
              action: 'azure.storage.disallow-public-access',
              op,
              applyToken: 't-1',
              outcome,
              reason: outcome === 'failed' ? 'AuthorizationFailed: the identity may not write' : 'restored',
              requestIds: ['arm-req-9'],
              actor: 'closeloop@azure-spoke',
              at: '2026-11-18T10:00:00.000Z',
            }),
          ),
          'closeloop-test-spoke-results',
        );
      const records = [answer(waiting.key, 'apply', 'failed'), answer(undone.key, 'rollback', 'rolled-back')];
      const { handler } = await applyingRemediate();
      // The hub bus refuses the answers' events the first time.
      eb.on(PutEventsCommand).resolves({ FailedEntryCount: 1, Entries: [{ ErrorCode: 'InternalFailure' }] });
      const first = await handler(sqsEvent(...records), lambdaContext('remediate'));
      eb.on(PutEventsCommand).callsFake(async (input: { Entries?: PutEventsRequestEntry[] }) => {
        published.push(...(input.Entries ?? []));
        return { FailedEntryCount: 0, Entries: (input.Entries ?? []).map((_, i) => ({ EventId: `e${i}` })) };
      });
      // Act: SQS delivers both again, and once more (at least once)
      const again = await handler(sqsEvent(...records), lambdaContext('remediate'));
      await handler(sqsEvent(...records), lambdaContext('remediate'));
      // Assess: recorded once, and their tickets and evidence are told after all, each time as the same event
      expect(first.batchItemFailures).toHaveLength(2);
      expect(again.batchItemFailures).toEqual([]);
      expect((await caseOf(waiting.key)).remediation.state).toBe('failed');
      expect((await caseOf(undone.key)).remediation.state).toBe('rolled-back');
      expect(remediationEvents(waiting.key).map((d) => d.state)).toEqual(['failed', 'failed']);
      expect(remediationEvents(undone.key).map((d) => d.state)).toEqual(['rolled-back', 'rolled-back']);
      const ids = (caseKey: string) =>
        new Set(
          published
            .filter((e) => e.DetailType === 'case.remediation')
            .map((e) => JSON.parse(e.Detail ?? '{}') as { id: string; caseKey: string })
            .filter((d) => d.caseKey === caseKey)
            .map((d) => d.id),
        );
      expect(ids(waiting.key).size).toBe(1);
      expect(ids(undone.key).size).toBe(1);
    });

    it("tells the ticket a case is held when a spoke's throttled answer comes again after its first publish failed", async () => {
      // Prepare: an Azure case handed over under claim `t-1`; the spoke's live read was throttled
      const waiting = await storedCase('acme-answered-throttled', (c) => ({
        ...c,
        status: 'planned' as const,
        remediation: { ...c.remediation, state: 'applying' as const, stateReason: 'dispatched', applyToken: 't-1' },
      }));
      const record = sqsRecord(
        JSON.stringify(
          eventBridgeEvent(spokeSource('azure'), REMOTE_RESULT_DETAIL_TYPE, {
            requestId: 'rq-throttled',
            caseKey: waiting.key,
            provider: 'azure',
            action: 'azure.storage.disallow-public-access',
            op: 'apply',
            applyToken: 't-1',
            outcome: 'blocked',
            reason: 'live read throttled',
            retry: { kind: 'throttled', afterSeconds: 60 },
            requestIds: [],
            actor: 'closeloop@azure-spoke',
            at: '2026-11-18T10:00:00.000Z',
          }),
        ),
        'closeloop-test-spoke-results',
      );
      const { handler } = await applyingRemediate();
      eb.on(PutEventsCommand).resolves({ FailedEntryCount: 1, Entries: [{ ErrorCode: 'InternalFailure' }] });
      const first = await handler(sqsEvent(record), lambdaContext('remediate'));
      eb.on(PutEventsCommand).callsFake(async (input: { Entries?: PutEventsRequestEntry[] }) => {
        published.push(...(input.Entries ?? []));
        return { FailedEntryCount: 0, Entries: (input.Entries ?? []).map((_, i) => ({ EventId: `e${i}` })) };
      });
      // Act
      const again = await handler(sqsEvent(record), lambdaContext('remediate'));
      // Assess
      expect(first.batchItemFailures).toHaveLength(1);
      expect(again.batchItemFailures).toEqual([]);
      expect((await caseOf(waiting.key)).remediation.state).toBe('held');
      expect(remediationEvents(waiting.key).map((d) => d.state)).toEqual(['held']);
    });

    it('sends a redriven hand-over to its spoke again only while its case still waits on that claim', async () => {
      // Prepare: two Azure cases handed over under claim `t-1`; the second was taken over since by claim `t-2`
      const handedOver = (token: string) => (c: Case) => ({
        ...c,
        status: 'planned' as const,
        remediation: { ...c.remediation, state: 'applying' as const, stateReason: 'dispatched', applyToken: token },
      });
      const waiting = await storedCase('acme-waiting', handedOver('t-1'));
      const replaced = await storedCase('acme-replaced', handedOver('t-2'));
      const redriven = (caseKey: string) =>
        asRecord(
          eventBridgeEvent(REMOTE_REQUEST_SOURCE, REMOTE_REQUEST_DETAIL_TYPE, {
            requestId: `rq-${caseKey.length}`,
            caseKey,
            provider: 'azure',
            action: 'azure.storage.disallow-public-access',
            op: 'apply',
            target: { account: 'stacme' },
            applyToken: 't-1',
            actor: 'closeloop@aws-hub-test',
          }),
        );
      const { handler } = await applyingRemediate();
      // Act
      await handler(redriven(waiting.key), lambdaContext('remediate'));
      await handler(redriven(replaced.key), lambdaContext('remediate'));
      // Assess: the waiting case's hand-over went out again; the replaced one's did not
      const handOvers = published
        .filter((e) => e.DetailType === REMOTE_REQUEST_DETAIL_TYPE)
        .map((e) => (JSON.parse(e.Detail ?? '{}') as { caseKey: string }).caseKey);
      expect(handOvers).toEqual([waiting.key]);
      expect((await caseOf(replaced.key)).remediation).toEqual(replaced.remediation);
    });

    it('sends no redriven hand-over of an apply an exception accepted since it was gated: the case is blocked and says why', async () => {
      // Prepare: an Azure case handed over under claim `t-1`, its hand-over undelivered; then the risk is accepted
      const waiting = await storedCase('acme-accepted-since', (c) => ({
        ...c,
        status: 'planned' as const,
        remediation: { ...c.remediation, state: 'applying' as const, stateReason: 'dispatched', applyToken: 't-1' },
      }));
      await exceptionsRepo(store()).add({
        id: 'EXC-AFTER-GATE',
        owner: 'ciso@example.com',
        justification: 'public by design, reviewed',
        scope: { resources: [waiting.resourceId] },
        expires: '2099-12-31',
      });
      const redriven = asRecord(
        eventBridgeEvent(REMOTE_REQUEST_SOURCE, REMOTE_REQUEST_DETAIL_TYPE, {
          requestId: 'rq-accepted-since',
          caseKey: waiting.key,
          provider: 'azure',
          action: 'azure.storage.disallow-public-access',
          op: 'apply',
          target: { account: 'stacme' },
          applyToken: 't-1',
          actor: 'closeloop@aws-hub-test',
        }),
      );
      const { handler } = await applyingRemediate();
      // Act
      const out = await handler(redriven, lambdaContext('remediate'));
      // Assess: nothing went to the spoke; the case is blocked with the exception named, and its ticket is told
      expect(out.batchItemFailures).toEqual([]);
      expect(published.filter((e) => e.DetailType === REMOTE_REQUEST_DETAIL_TYPE)).toEqual([]);
      const c = await caseOf(waiting.key);
      expect(c.remediation.state).toBe('blocked');
      expect(c.remediation.stateReason).toContain('EXC-AFTER-GATE');
      expect(remediationEvents(waiting.key).map((d) => d.state)).toEqual(['blocked']);
    });

    it('sends a redriven rollback to its spoke again only while its case is still applied under the claim it undoes', async () => {
      // Prepare: two Azure cases applied under claim `t-1`; the second was rolled back and applied again since
      // (claim `t-2`)
      const applied = (token: string) => (c: Case) => ({
        ...c,
        status: 'remediated' as const,
        remediation: {
          ...c.remediation,
          state: 'applied' as const,
          stateReason: 'applied',
          applyToken: token,
          appliedAt: '2026-11-18T10:00:00.000Z',
          before: { allowBlobPublicAccess: true },
        },
      });
      const stillApplied = await storedCase('acme-still-applied', applied('t-1'));
      const reapplied = await storedCase('acme-reapplied', applied('t-2'));
      const redriven = (caseKey: string) =>
        asRecord(
          eventBridgeEvent(REMOTE_REQUEST_SOURCE, REMOTE_REQUEST_DETAIL_TYPE, {
            requestId: `rq-rb-${caseKey.length}`,
            caseKey,
            provider: 'azure',
            action: 'azure.storage.disallow-public-access',
            op: 'rollback',
            target: { account: 'stacme' },
            before: { allowBlobPublicAccess: true },
            applyToken: 't-1',
            actor: 'oncall@example.com',
          }),
        );
      const { handler } = await applyingRemediate();
      // Act
      await handler(redriven(stillApplied.key), lambdaContext('remediate'));
      await handler(redriven(reapplied.key), lambdaContext('remediate'));
      // Assess: only the case still applied under `t-1` gets its rollback; the newer fix is not undone
      const rollbacks = published
        .filter((e) => e.DetailType === REMOTE_REQUEST_DETAIL_TYPE)
        .map((e) => JSON.parse(e.Detail ?? '{}') as { caseKey: string; op: string })
        .map((d) => `${d.op} ${d.caseKey}`);
      expect(rollbacks).toEqual([`rollback ${stillApplied.key}`]);
      expect((await caseOf(reapplied.key)).remediation).toEqual(reapplied.remediation);
    });
  });
});
