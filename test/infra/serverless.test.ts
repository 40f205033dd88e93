/**
 * The functions as deployed: bundles every function (AWS hub and spokes) and loads each bundle in a fresh
 * node process; packages serverless.yml offline with osls (no login, dummy credentials) and checks the
 * generated CloudFormation.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { GuardDutyClient } from '@aws-sdk/client-guardduty';
import { SecurityHubClient } from '@aws-sdk/client-securityhub';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import * as bundler from '../../scripts/bundle-functions.mjs';
import { CLOSELOOP_SOURCE } from '../../shared/adapters/bus/eventbridge.js';
import {
  REMOTE_REQUEST_SOURCE,
  REMOTE_RESULT_DETAIL_TYPE,
  SPOKE_DETAIL_TYPE,
  spokeSource,
} from '../../shared/adapters/bus/spoke.js';
import { EXPIRES_ATTRIBUTE } from '../../shared/adapters/store/dynamodb.js';
import { GuardDutyUpstream } from '../../shared/adapters/upstream/guardduty.js';
import { SecurityHubUpstream } from '../../shared/adapters/upstream/securityhub.js';
import { PipelineEventSchema } from '../../shared/core/model/events.js';
import { CASE_WRITE_RETRY_SECONDS } from '../../shared/core/pipeline/announced.js';
import { ApplyPolicySchema } from '../../shared/core/remediation/policy.js';
import { USER_SEARCH_REFUSED_LOG } from '../../shared/core/tickets/context.js';
import { type DrainResult, OUTBOX_WAITING_LOG, TICKET_DEAD_LETTERED_LOG } from '../../shared/core/tickets/outbox.js';
import { eventBridgeEvent, fixture } from '../functions/helpers/events.js';
import { findingFor } from '../helpers/action-context.js';
import { matchesPattern, root } from './helpers.js';

const run = promisify(execFile);

const ResourceSchema = z.looseObject({ Type: z.string(), Properties: z.record(z.string(), z.unknown()).default({}) });
const TemplateSchema = z.looseObject({ Resources: z.record(z.string(), ResourceSchema) });
type Template = z.infer<typeof TemplateSchema>;
const StatementSchema = z.looseObject({
  Sid: z.string().optional(),
  Effect: z.enum(['Allow', 'Deny']),
  Action: z.union([z.string(), z.array(z.string())]),
  Resource: z.unknown(),
});
type Statement = z.infer<typeof StatementSchema>;

const out = mkdtempSync(join(tmpdir(), 'closeloop-sls-'));
let template: Template;
let templateFile: string;
const resources = (type: string) => Object.entries(template.Resources).filter(([, r]) => r.Type === type);
const actionsOf = (s: Statement) => (Array.isArray(s.Action) ? s.Action : [s.Action]);

const PolicySchema = z.looseObject({
  PolicyName: z.string(),
  PolicyDocument: z.looseObject({ Statement: z.array(StatementSchema) }),
});
/** A policy that exists only under a condition: `Fn::If: [condition, policy, Ref AWS::NoValue]`. */
const ConditionalPolicySchema = z.object({
  'Fn::If': z.tuple([z.string(), PolicySchema, z.object({ Ref: z.literal('AWS::NoValue') })]),
});

/** A role's policies, each with the condition it exists under (undefined: always). */
function rolePolicies(role: string): Array<{ condition?: string; policy: z.infer<typeof PolicySchema> }> {
  return z
    .array(z.unknown())
    .parse(template.Resources[role]?.Properties.Policies)
    .map((p) => {
      const conditional = ConditionalPolicySchema.safeParse(p);
      if (conditional.success) {
        const [condition, policy] = conditional.data['Fn::If'];
        return { condition, policy };
      }
      return { policy: PolicySchema.parse(p) };
    });
}

/** Every statement a role may hold, conditional ones included. */
function roleStatements(role: string): Statement[] {
  return rolePolicies(role).flatMap((p) => p.policy.PolicyDocument.Statement);
}

const GetAttArnSchema = z.object({ 'Fn::GetAtt': z.tuple([z.string(), z.literal('Arn')]) });
const RuleTargetSchema = z.looseObject({
  Arn: z.unknown(),
  RetryPolicy: z.unknown().optional(),
  DeadLetterConfig: z.object({ Arn: GetAttArnSchema }).optional(),
});
/** Every target of every EventBridge rule, with its rule's name and condition. */
function ruleTargets(): Array<{ rule: string; condition: unknown; target: z.infer<typeof RuleTargetSchema> }> {
  return resources('AWS::Events::Rule').flatMap(([rule, r]) =>
    z
      .array(RuleTargetSchema)
      .parse(r.Properties.Targets)
      .map((target) => ({ rule, condition: Reflect.get(r, 'Condition'), target })),
  );
}
/** An `aws:SourceArn` entry: a rule's ARN, or one that exists only under a condition (`Fn::If` … NoValue). */
const SourceArnSchema = z.union([
  GetAttArnSchema.transform((g) => ({ rule: g['Fn::GetAtt'][0], condition: undefined as string | undefined })),
  z
    .object({ 'Fn::If': z.tuple([z.string(), GetAttArnSchema, z.object({ Ref: z.literal('AWS::NoValue') })]) })
    .transform((f) => ({ rule: f['Fn::If'][1]['Fn::GetAtt'][0], condition: f['Fn::If'][0] as string | undefined })),
]);
/** The queue a rule target names, when it is one of this stack's queues. */
function targetQueue(target: { Arn: unknown }): string | undefined {
  const arn = GetAttArnSchema.safeParse(target.Arn);
  if (!arn.success) return undefined;
  const name = arn.data['Fn::GetAtt'][0];
  return template.Resources[name]?.Type === 'AWS::SQS::Queue' ? name : undefined;
}
/** The rules that send to each of this stack's queues, as target or as dead-letter queue. */
function queueWriters(): Map<string, Set<string>> {
  const writers = new Map<string, Set<string>>();
  const add = (queue: string | undefined, rule: string) => {
    if (queue) writers.set(queue, (writers.get(queue) ?? new Set()).add(rule));
  };
  for (const { rule, target } of ruleTargets()) {
    add(targetQueue(target), rule);
    add(target.DeadLetterConfig?.Arn['Fn::GetAtt'][0], rule);
  }
  return writers;
}
/** An alarm's properties, loosely: what the alarm tests compare. */
const AlarmSchema = z.looseObject({
  Namespace: z.string(),
  MetricName: z.string(),
  // None on the metrics counted from log lines (a metric filter gives them none).
  Dimensions: z.array(z.object({ Name: z.string(), Value: z.unknown() })).optional(),
  Threshold: z.number(),
  ComparisonOperator: z.string(),
  TreatMissingData: z.string(),
  AlarmActions: z.array(z.object({ Ref: z.string() })),
});
/** Every CloudWatch alarm, with its condition. */
function alarms(): Array<{ name: string; condition: unknown; alarm: z.infer<typeof AlarmSchema> }> {
  return resources('AWS::CloudWatch::Alarm').map(([name, r]) => ({
    name,
    condition: Reflect.get(r, 'Condition'),
    alarm: AlarmSchema.parse(r.Properties),
  }));
}
/** The alarm on `metric` whose dimensions are exactly `dimensions`, if any. */
function alarmOn(namespace: string, metric: string, dimensions: unknown) {
  return alarms().filter(
    ({ alarm }) =>
      alarm.Namespace === namespace &&
      alarm.MetricName === metric &&
      JSON.stringify(alarm.Dimensions) === JSON.stringify(dimensions),
  );
}
/** An alarm that fires on the first count and notifies the operators' topic. */
function expectAlarmsOnFirstCount(found: ReturnType<typeof alarmOn>, what: string) {
  expect(found, what).toHaveLength(1);
  const [{ alarm } = { alarm: undefined }] = found;
  expect(alarm, what).toMatchObject({
    Threshold: 0,
    ComparisonOperator: 'GreaterThanThreshold',
    TreatMissingData: 'notBreaching',
  });
  expect(alarm?.AlarmActions.length, what).toBeGreaterThan(0);
  for (const a of alarm?.AlarmActions ?? []) expect(template.Resources[a.Ref]?.Type, what).toBe('AWS::SNS::Topic');
}
const QueueStatementSchema = z.looseObject({
  Effect: z.literal('Allow'),
  Principal: z.object({ Service: z.string() }),
  Action: z.union([z.string(), z.array(z.string())]),
  Resource: GetAttArnSchema,
  Condition: z.object({ ArnEquals: z.object({ 'aws:SourceArn': z.array(SourceArnSchema) }) }),
});

beforeAll(async () => {
  await bundler.bundleFunctions({ root });
  const missing = bundler.functionEntries(root).filter((fn) => !existsSync(bundler.zipPath(root, fn)));
  if (missing.length > 0) throw new Error(`bundling left no artifact for ${missing.map((m) => m.name).join(', ')}`);
}, 300_000);

/** Runs once for the serverless.yml checks, so a packaging failure does not hide whether the bundles load. */
async function packageOffline(): Promise<void> {
  try {
    // Packaged with a member role named, so its conditional grants show their concrete ARNs.
    const args = ['package', '--package', out, '--param=memberRole=closeloop-member'];
    await run(process.execPath, [join(root, 'node_modules/osls/bin/serverless.js'), ...args], {
      cwd: root,
      timeout: 180_000,
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? tmpdir(),
        AWS_ACCESS_KEY_ID: 'AKIAIOSFODNN7EXAMPLE',
        AWS_SECRET_ACCESS_KEY: 'dummy-offline-packaging',
        AWS_REGION: 'us-east-1',
        SLS_TELEMETRY_DISABLED: '1',
      },
    });
  } catch (e) {
    const detail =
      e instanceof Error && 'stdout' in e ? `${String(e.stdout)}\n${String(Reflect.get(e, 'stderr'))}` : String(e);
    throw new Error(`osls package failed; serverless.yml cannot be packaged offline:\n${detail}`);
  }
  templateFile = join(out, 'cloudformation-template-update-stack.json');
  template = TemplateSchema.parse(JSON.parse(readFileSync(templateFile, 'utf8')));
}
afterAll(() => rmSync(out, { recursive: true, force: true }));

describe('function bundles', () => {
  const entries = bundler.functionEntries(root);

  it.each(entries.map((fn) => [`${fn.cloud}/${fn.name}`, fn] as const))(
    'loads %s in a fresh node process with the environment a deployment sets',
    (_name, fn) => {
      // Act: throws with the bundle's error lines (e.g. a CommonJS global missing in ESM) when it cannot load
      const ms = bundler.loadOnce(bundler.bundlePath(root, fn));
      // Assess
      expect(ms).toBeGreaterThan(0);
    },
  );

  it.each(entries.map((fn) => [`${fn.cloud}/${fn.name}`, fn] as const))(
    'loads every lazily imported chunk of %s in a fresh node process',
    (_name, fn) => {
      // Act: what the handler imports on first use (config schemas, action SDKs, jira.js) loads as bundled
      const ms = bundler.loadChunks(root, fn);
      // Assess
      expect(ms).toBeGreaterThan(0);
    },
  );

  it.each(entries.map((fn) => [`${fn.cloud}/${fn.name}`, fn] as const))(
    'keeps what a cold start of %s reads within 500 KB (what a lazily imported SDK adds stays out of it)',
    (_name, fn) => {
      // Act: the entry and every chunk it imports statically (bytes, not time: the bench measures loads)
      const bytes = bundler.coldBytes(bundler.bundlePath(root, fn));
      // Assess (where the bytes go: node scripts/bundle-functions.mjs --analyze)
      expect(bytes).toBeLessThanOrEqual(500 * 1024);
    },
  );

  it.each(entries.map((fn) => [`${fn.cloud}/${fn.name}`, fn] as const))(
    "keeps other clouds' action SDKs out of %s",
    (_name, fn) => {
      // Prepare
      const stubbed = bundler.STUBBED_PACKAGES[fn.cloud];
      // Act
      const packages = bundler.bundleComposition(root, fn).map((p) => p.package);
      // Assess: the stub module stands in (namespace `other-cloud`), the package's own files never do
      expect(packages.filter((p) => stubbed.test(p))).toEqual([]);
    },
  );

  it.each(entries.map((fn) => [`${fn.cloud}/${fn.name}`, fn] as const))(
    "takes the small LRU cache for the SDK's endpoint cache in %s, not mnemonist's",
    (_name, fn) => {
      // Act
      const packages = bundler.bundleComposition(root, fn).map((p) => p.package);
      // Assess: scripts/lru-cache-shim.mjs stands in (see smallLruCache)
      expect(packages.filter((p) => p === 'mnemonist' || p === 'obliterator')).toEqual([]);
    },
  );

  it("stubs exactly the other clouds' action SDKs per cloud, keeping what a spoke needs to reach the hub", () => {
    // Prepare
    const { aws, azure, gcp } = bundler.STUBBED_PACKAGES;
    // Assess
    expect(['@azure/arm-network', '@google-cloud/compute'].every((p) => aws.test(p))).toBe(true);
    for (const spoke of [azure, gcp])
      expect(['@aws-sdk/client-s3', '@aws-sdk/client-iam', '@aws-sdk/client-ec2'].every((p) => spoke.test(p))).toBe(
        true,
      );
    for (const needed of ['@aws-sdk/client-sts', '@aws-sdk/client-eventbridge', '@aws-sdk/core'])
      expect(azure.test(needed) || gcp.test(needed)).toBe(false);
    expect(azure.test('@google-cloud/storage') && !azure.test('@azure/functions')).toBe(true);
    expect(gcp.test('@azure/storage-blob') && !gcp.test('@google-cloud/functions-framework')).toBe(true);
  });
});

describe('serverless.yml packaged offline', () => {
  beforeAll(packageOffline, 300_000);

  it('points every function at a zip that holds its handler module with an exported handler', async () => {
    // Prepare
    const functions = resources('AWS::Lambda::Function');
    expect(functions.length).toBe(bundler.functionEntries(root).filter((f) => f.cloud === 'aws').length);
    for (const [, fn] of functions) {
      const handler = z.string().parse(fn.Properties.Handler);
      const [file, exported] = handler.split('.');
      const key = z.object({ S3Key: z.string() }).parse(fn.Properties.Code).S3Key;
      // Act
      const entries: Map<string, Buffer> = bundler.readZip(
        join(root, 'dist/functions/aws', key.split('/').at(-1) ?? ''),
      );
      // Assess
      expect(fn.Properties.Runtime).toBe('nodejs22.x');
      expect([...entries.keys()]).toContain(`${file}.mjs`);
      expect(entries.has('config.json')).toBe(true);
      expect(exported).toBe('handler');
    }
  });

  it('routes the fixture events to ingest and nothing else when the vendor rules are matched', () => {
    // Prepare
    const gd = fixture('guardduty/s3-bucket-anonymous-access.eventbridge.json');
    const sh = fixture('securityhub/s3.8-failed.eventbridge.json');
    const spoke = eventBridgeEvent(spokeSource('azure'), SPOKE_DETAIL_TYPE, {});
    const pattern = (name: string) => template.Resources[name]?.Properties.EventPattern;
    // Act / Assess
    expect(matchesPattern(pattern('GuardDutyRule'), gd)).toBe(true);
    expect(matchesPattern(pattern('GuardDutyRule'), sh)).toBe(false);
    expect(matchesPattern(pattern('SecurityHubRule'), sh)).toBe(true);
    expect(matchesPattern(pattern('SecurityHubRule'), gd)).toBe(false);
    expect(matchesPattern(pattern('SpokeRule'), spoke)).toBe(true);
    expect(matchesPattern(pattern('SpokeRule'), eventBridgeEvent('evil.source', SPOKE_DETAIL_TYPE, {}))).toBe(false);
    for (const rule of ['GuardDutyRule', 'SecurityHubRule', 'SpokeRule']) {
      expect(template.Resources[rule]?.Properties.Targets).toMatchObject([
        { Id: 'ingest', Arn: { 'Fn::GetAtt': ['IngestQueue', 'Arn'] } },
      ]);
    }
  });

  it('routes every closeloop event type to at least one stage queue on the hub bus', () => {
    // Prepare
    const types = PipelineEventSchema.options.map((o) => o.shape.type.value);
    const stageRules = ['TicketRule', 'RemediateRule', 'VerifyRule', 'EvidenceRule'];
    for (const type of types) {
      const event = eventBridgeEvent('closeloop', type, {});
      // Act
      const matched = stageRules.filter((r) => matchesPattern(template.Resources[r]?.Properties.EventPattern, event));
      // Assess
      expect(matched.length, type).toBeGreaterThan(0);
      expect(matched).toContain('EvidenceRule');
    }
  });

  it('routes case.reopened to the verify queue, whose stage reopens the case when a person reopens its ticket', () => {
    // Prepare
    const event = eventBridgeEvent('closeloop', 'case.reopened', {});
    // Act
    const matched = matchesPattern(template.Resources.VerifyRule?.Properties.EventPattern, event);
    // Assess
    expect(matched).toBe(true);
  });

  it('runs the ticket outbox drain, the re-verification, the exception sweep and the remediation sweep on schedules', () => {
    // Prepare
    const scheduled = resources('AWS::Events::Rule')
      .filter(([, r]) => r.Properties.ScheduleExpression !== undefined)
      .map(([, r]) => ({
        rate: r.Properties.ScheduleExpression,
        target: JSON.stringify(r.Properties.Targets),
      }));
    // Act / Assess
    expect(scheduled).toContainEqual({
      rate: 'rate(2 minutes)',
      target: expect.stringContaining('TicketLambdaFunction'),
    });
    expect(scheduled).toContainEqual({
      rate: 'rate(6 hours)',
      target: expect.stringContaining('VerifyLambdaFunction'),
    });
    expect(scheduled).toContainEqual({
      rate: 'rate(1 hour)',
      target: expect.stringContaining('IngestLambdaFunction'),
    });
    // Held fixes and abandoned applies get no event of their own: only this schedule moves them on.
    expect(scheduled).toContainEqual({
      rate: 'rate(5 minutes)',
      target: expect.stringContaining('RemediateLambdaFunction'),
    });
  });

  it('gives remediate a timeout that covers an apply, well below the bound after which its claim counts as abandoned', () => {
    // Prepare
    const fns = Object.fromEntries(resources('AWS::Lambda::Function'));
    const timeout = Number(fns.RemediateLambdaFunction?.Properties.Timeout);
    const bound = ApplyPolicySchema.shape.abandonAfter;
    // Act / Assess: an invocation is stopped at its timeout, so a claim older than the bound has no live apply
    // (the default with room for a slow start, and the lowest bound policy accepts still above the timeout)
    expect(timeout).toBeGreaterThanOrEqual(300);
    expect(bound.parse(undefined).applyMinutes * 60).toBeGreaterThanOrEqual(3 * timeout);
    expect(() => bound.parse({ applyMinutes: 9 })).toThrow();
    expect(10 * 60).toBeGreaterThan(timeout);
    expect(Number(fns.VerifyLambdaFunction?.Properties.Timeout)).toBeGreaterThanOrEqual(300);
  });

  it('caps SQS-fed functions on the event source, never by reserved concurrency, and waits out each timeout', () => {
    // Prepare: every SQS event source, its function and its queue
    const fns = Object.fromEntries(resources('AWS::Lambda::Function'));
    const mappings = resources('AWS::Lambda::EventSourceMapping').map(([, m]) => m.Properties);
    const ticket = mappings.find((m) => JSON.stringify(m.FunctionName).includes('TicketLambdaFunction'));
    // Act / Assess: reserved concurrency throttles what the SQS pollers start, and each throttle costs a receive
    for (const m of mappings) {
      const fn =
        fns[z.object({ 'Fn::GetAtt': z.tuple([z.string(), z.string()]) }).parse(m.FunctionName)['Fn::GetAtt'][0]];
      expect(fn?.Properties.ReservedConcurrentExecutions).toBeUndefined();
      const queue = z.object({ 'Fn::GetAtt': z.tuple([z.string(), z.literal('Arn')]) }).parse(m.EventSourceArn);
      const visibility = Number(template.Resources[queue['Fn::GetAtt'][0]]?.Properties.VisibilityTimeout);
      expect(visibility).toBeGreaterThanOrEqual(6 * Number(fn?.Properties.Timeout));
    }
    expect(ticket?.ScalingConfig).toEqual({ MaximumConcurrency: 5 });
  });

  it("lets every SQS-fed function change the visibility of its own queues' messages, and of no other queue", () => {
    // Prepare: each function's queues (its event sources) and its role
    const fns = Object.fromEntries(resources('AWS::Lambda::Function'));
    const getAtt = z.object({ 'Fn::GetAtt': z.tuple([z.string(), z.string()]) });
    const queuesOf = new Map<string, Set<string>>();
    for (const [, m] of resources('AWS::Lambda::EventSourceMapping')) {
      const fn = getAtt.parse(m.Properties.FunctionName)['Fn::GetAtt'][0];
      const queue = getAtt.parse(m.Properties.EventSourceArn)['Fn::GetAtt'][0];
      queuesOf.set(fn, (queuesOf.get(fn) ?? new Set()).add(queue));
    }
    const roleOf = (fn: string) => getAtt.parse(fns[fn]?.Properties.Role)['Fn::GetAtt'][0];
    const roles = new Set([...queuesOf.keys()].map(roleOf));
    // Act: the queues each role may call ChangeMessageVisibility on (early redelivery of a pending case's event)
    const granted = (role: string) =>
      roleStatements(role)
        .filter((st) => st.Effect === 'Allow' && actionsOf(st).includes('sqs:ChangeMessageVisibility'))
        .flatMap((st) => [st.Resource].flat())
        .map((r) => getAtt.parse(r)['Fn::GetAtt'][0])
        .sort();
    // Assess
    expect(queuesOf.size).toBeGreaterThanOrEqual(5);
    for (const [fn, queues] of queuesOf) expect(granted(roleOf(fn)), fn).toEqual([...queues].sort());
    for (const [name] of resources('AWS::IAM::Role')) if (!roles.has(name)) expect(granted(name), name).toEqual([]);
  });

  it("keeps every wait before an early redelivery within the visibility timeout of each SQS-fed function's queue", () => {
    // Prepare
    const queues = resources('AWS::Lambda::EventSourceMapping').map(
      ([, m]) => GetAttArnSchema.parse(m.Properties.EventSourceArn)['Fn::GetAtt'][0],
    );
    // Act / Assess: the change only ever shortens the wait it replaces
    for (const queue of queues)
      expect(Number(template.Resources[queue]?.Properties.VisibilityTimeout), queue).toBeGreaterThanOrEqual(
        Math.max(...CASE_WRITE_RETRY_SECONDS),
      );
  });

  it('gives every queue a dead-letter queue when it is not one itself', () => {
    // Prepare
    const queues = resources('AWS::SQS::Queue');
    const dlqs = new Set<string>();
    for (const [, q] of queues) {
      const target = z.object({
        deadLetterTargetArn: z.object({ 'Fn::GetAtt': z.tuple([z.string(), z.literal('Arn')]) }),
      });
      const policy = q.Properties.RedrivePolicy;
      if (policy) dlqs.add(target.parse(policy).deadLetterTargetArn['Fn::GetAtt'][0]);
    }
    // Act
    const withoutDlq = queues
      .filter(([name, q]) => !dlqs.has(name) && !q.Properties.RedrivePolicy)
      .map(([name]) => name);
    // Assess
    expect(dlqs.size).toBeGreaterThanOrEqual(5);
    expect(withoutDlq).toEqual([]);
    for (const dlq of dlqs) expect(template.Resources[dlq]?.Type).toBe('AWS::SQS::Queue');
  });

  it("gives every rule's queue target EventBridge's whole retry budget and a DLQ only the rules using it may write to", () => {
    // Prepare: the targets that are queues of this stack, and which rules dead-letter into which queue
    const isQueue = (name: string) => template.Resources[name]?.Type === 'AWS::SQS::Queue';
    const queueTargets = ruleTargets().filter(({ target }) => {
      const arn = GetAttArnSchema.safeParse(target.Arn);
      return arn.success && isQueue(arn.data['Fn::GetAtt'][0]);
    });
    const writers = new Map<string, Array<{ rule: string; condition: unknown }>>();
    for (const { rule, condition, target } of ruleTargets()) {
      const dlq = target.DeadLetterConfig?.Arn['Fn::GetAtt'][0];
      if (dlq) writers.set(dlq, [...(writers.get(dlq) ?? []), { rule, condition }]);
    }
    const policies = resources('AWS::SQS::QueuePolicy').map(([, p]) => p.Properties);
    // Act / Assess: without a DLQ, EventBridge drops an event after its retries, with no trace
    expect(queueTargets.length).toBeGreaterThanOrEqual(10);
    for (const { rule, target } of queueTargets) {
      const queue = GetAttArnSchema.parse(target.Arn)['Fn::GetAtt'][0];
      expect(target.RetryPolicy, rule).toEqual({ MaximumEventAgeInSeconds: 86400, MaximumRetryAttempts: 185 });
      const dlq = target.DeadLetterConfig?.Arn['Fn::GetAtt'][0] ?? '';
      expect(isQueue(dlq) && dlq !== queue, `${rule} → ${dlq || 'no DLQ'}`).toBe(true);
    }
    for (const [dlq, rules] of writers) {
      // EventBridge cannot write to a queue under the AWS-managed KMS key
      const queue = template.Resources[dlq]?.Properties;
      expect(
        queue?.SqsManagedSseEnabled === true || (queue?.KmsMasterKeyId ?? 'alias/aws/sqs') !== 'alias/aws/sqs',
      ).toBe(true);
      // A queue holds one policy: a second QueuePolicy on it would replace the first
      const owning = policies.filter((p) => JSON.stringify(p.Queues).includes(JSON.stringify({ Ref: dlq })));
      expect(owning.length, dlq).toBe(1);
      const statements = z
        .array(z.unknown())
        .parse(z.looseObject({ Statement: z.array(z.unknown()) }).parse(owning[0]?.PolicyDocument).Statement)
        .flatMap((raw) => {
          const st = QueueStatementSchema.safeParse(raw);
          return st.success && st.data.Resource['Fn::GetAtt'][0] === dlq ? [st.data] : [];
        });
      expect(statements.length, dlq).toBe(1);
      const [st] = statements;
      expect(st?.Principal.Service).toBe('events.amazonaws.com');
      expect([st?.Action].flat()).toEqual(['sqs:SendMessage']);
      // Exactly the rules that dead-letter here, a conditional rule only under its own condition
      const allowed = st?.Condition.ArnEquals['aws:SourceArn'] ?? [];
      expect(new Set(allowed.map((a) => a.rule)), dlq).toEqual(new Set(rules.map((r) => r.rule)));
      for (const a of allowed) expect(a.condition, a.rule).toBe(rules.find((r) => r.rule === a.rule)?.condition);
    }
  });

  it("keeps RemediateDlq's queue policy under the logical id stacks deployed before created for it", () => {
    // A renamed policy resource is created before the old one is deleted, and deleting a queue policy clears
    // the policy of its queues: RemediateDlq would lose the statement that lets EventBridge dead-letter into it.
    const [id, policy] = resources('AWS::SQS::QueuePolicy').find(([, r]) =>
      JSON.stringify(r.Properties.Queues).includes('RemediateDlq'),
    ) ?? ['', undefined];
    expect(policy?.Condition).toBeUndefined();
    expect(id).toBe('RemoteDeadLetterPolicy');
  });

  it('alarms on a message in any dead-letter queue, to a topic an operator can subscribe to', () => {
    // Prepare: the queues that are DLQs (of a queue's redrive policy or of a rule target)
    const dlqs = new Set<string>();
    for (const [, q] of resources('AWS::SQS::Queue')) {
      const policy = q.Properties.RedrivePolicy;
      if (policy)
        dlqs.add(z.object({ deadLetterTargetArn: GetAttArnSchema }).parse(policy).deadLetterTargetArn['Fn::GetAtt'][0]);
    }
    for (const { target } of ruleTargets()) {
      const dlq = target.DeadLetterConfig?.Arn['Fn::GetAtt'][0];
      if (dlq) dlqs.add(dlq);
    }
    const alarms = resources('AWS::CloudWatch::Alarm').map(([, a]) => a.Properties);
    // Act / Assess
    expect(dlqs.size).toBeGreaterThanOrEqual(5);
    for (const dlq of dlqs) {
      const alarm = alarms.find(
        (a) =>
          JSON.stringify(a.Dimensions) ===
          JSON.stringify([{ Name: 'QueueName', Value: { 'Fn::GetAtt': [dlq, 'QueueName'] } }]),
      );
      expect(alarm, dlq).toMatchObject({
        Namespace: 'AWS/SQS',
        MetricName: 'ApproximateNumberOfMessagesVisible',
        Threshold: 0,
        ComparisonOperator: 'GreaterThanThreshold',
        TreatMissingData: 'notBreaching',
      });
      const actions = z.array(z.object({ Ref: z.string() })).parse(alarm?.AlarmActions);
      for (const a of actions) expect(template.Resources[a.Ref]?.Type).toBe('AWS::SNS::Topic');
      expect(actions.length).toBeGreaterThan(0);
    }
  });

  it("gives the spokes' remediation answers a queue of their own, read by remediate beside its decisions, with a DLQ, an alarm and redrive", () => {
    // Prepare: where an Azure spoke's answer to a hand-over goes, and what reads the remediate function's queues
    const answer = eventBridgeEvent(spokeSource('azure'), REMOTE_RESULT_DETAIL_TYPE, { op: 'apply' });
    const answerRules = resources('AWS::Events::Rule')
      .filter(([, r]) => matchesPattern(r.Properties.EventPattern, answer))
      .map(([name]) => name);
    const [answerTarget, ...more] = ruleTargets().filter(({ rule }) => answerRules.includes(rule));
    const queue = answerTarget ? targetQueue(answerTarget.target) : undefined;
    const dlq = answerTarget?.target.DeadLetterConfig?.Arn['Fn::GetAtt'][0];
    const sources = resources('AWS::Lambda::EventSourceMapping')
      .map(([, m]) => m.Properties)
      .filter((m) => JSON.stringify(m.FunctionName).includes('"RemediateLambdaFunction"'));
    const readFrom = (q: string | undefined) =>
      sources.find((m) => JSON.stringify(m.EventSourceArn) === JSON.stringify({ 'Fn::GetAtt': [q, 'Arn'] }));
    const remediateReads = roleStatements('RemediateRole')
      .filter((st) => st.Effect === 'Allow' && actionsOf(st).includes('sqs:ReceiveMessage'))
      .flatMap((st) => [st.Resource].flat());
    // Act / Assess: one rule, to a queue only it sends to (never behind the decisions on the remediate queue)
    expect(answerRules).toEqual(['SpokeResultRule']);
    expect(more).toEqual([]);
    expect(queue).toBeDefined();
    expect(queue).not.toBe('RemediateQueue');
    expect([...(queueWriters().get(queue ?? '') ?? [])]).toEqual(['SpokeResultRule']);
    // Its DLQ (of the rule and of the queue), not the remediate DLQ, and a message there alarms
    expect(dlq).toBeDefined();
    expect(dlq).not.toBe('RemediateDlq');
    expect(template.Resources[queue ?? '']?.Properties.RedrivePolicy).toMatchObject({
      deadLetterTargetArn: { 'Fn::GetAtt': [dlq, 'Arn'] },
    });
    expectAlarmsOnFirstCount(
      alarmOn('AWS/SQS', 'ApproximateNumberOfMessagesVisible', [
        { Name: 'QueueName', Value: { 'Fn::GetAtt': [dlq, 'QueueName'] } },
      ]),
      `${dlq} alarm`,
    );
    // The remediate function reads it on an event source of its own, beside its queue of decisions
    expect(readFrom(queue)).toMatchObject({ FunctionResponseTypes: ['ReportBatchItemFailures'] });
    expect(readFrom('RemediateQueue')).toMatchObject({ ScalingConfig: { MaximumConcurrency: 5 } });
    expect(sources).toHaveLength(2);
    expect(remediateReads).toEqual(
      expect.arrayContaining([{ 'Fn::GetAtt': ['RemediateQueue', 'Arn'] }, { 'Fn::GetAtt': [queue, 'Arn'] }]),
    );
    expect(remediateReads).toHaveLength(2);
    expect(roleStatements('RemediateRole').flatMap(actionsOf)).not.toContain('sqs:SendMessage');
  });

  it('names every queue with its DLQ in the redrive map, and lets redrive read exactly those DLQs and send back to those queues', () => {
    // Prepare: CLOSELOOP_QUEUES as serverless.yml builds it (Fn::Sub of `${Queue}` URLs), and every queue's DLQ
    const env = z
      .looseObject({ Environment: z.object({ Variables: z.record(z.string(), z.unknown()) }) })
      .parse(template.Resources.RedriveLambdaFunction?.Properties).Environment.Variables;
    const sub = z.object({ 'Fn::Sub': z.string() }).parse(env.CLOSELOOP_QUEUES)['Fn::Sub'];
    const map = z
      .record(z.string(), z.object({ queue: z.string(), dlq: z.string() }))
      .parse(JSON.parse(sub.replace(/\$\{(\w+)\}/g, '$1')));
    const dlqOf = new Map(
      resources('AWS::SQS::Queue').flatMap(([name, q]) => {
        const policy = z.object({ deadLetterTargetArn: GetAttArnSchema }).safeParse(q.Properties.RedrivePolicy);
        return policy.success ? [[name, policy.data.deadLetterTargetArn['Fn::GetAtt'][0]] as const] : [];
      }),
    );
    const granted = (sid: string) =>
      roleStatements('RedriveRole')
        .filter((st) => st.Sid === sid)
        .flatMap((st) => [st.Resource].flat())
        .map((r) => GetAttArnSchema.parse(r)['Fn::GetAtt'][0])
        .sort();
    // Act
    const named = Object.values(map).map((m) => [m.queue, m.dlq] as const);
    // Assess: `redrive` sends a dead letter back to the queue its TARGET_ARN names only when the map knows it
    expect(new Map(named)).toEqual(dlqOf);
    expect(map['spoke-results']).toEqual({ queue: 'SpokeResultQueue', dlq: 'SpokeResultDlq' });
    expect(granted('ReadDeadLetters')).toEqual([...dlqOf.values()].sort());
    expect(granted('SendBack')).toEqual([...dlqOf.keys()].sort());
  });

  it('lets EventBridge send to each stage queue only from the rules that target it, one statement per queue', () => {
    // Prepare: every queue policy statement, the rules that target each queue, and the rules that write to each
    const writers = queueWriters();
    const targeted = new Map<string, Set<string>>();
    for (const { rule, target } of ruleTargets()) {
      const queue = targetQueue(target);
      if (queue) targeted.set(queue, (targeted.get(queue) ?? new Set()).add(rule));
    }
    const policies = resources('AWS::SQS::QueuePolicy');
    const statements = policies.flatMap(([id, p]) =>
      z
        .array(z.looseObject({ Resource: z.unknown(), Condition: z.unknown().optional() }))
        .parse(z.looseObject({ Statement: z.array(z.unknown()) }).parse(p.Properties.PolicyDocument).Statement)
        .map((st) => ({ id, st })),
    );
    const rulesOf = (condition: unknown) =>
      z
        .object({ ArnEquals: z.object({ 'aws:SourceArn': z.array(SourceArnSchema) }) })
        .parse(condition)
        .ArnEquals['aws:SourceArn'].map((a) => a.rule);
    // Act / Assess: no statement of any queue policy lets a rule send to a queue it neither targets nor
    // dead-letters into (a rule matching a forged or misrouted event must not reach another stage's queue)
    expect(statements.length).toBeGreaterThan(0);
    for (const { st } of statements) {
      const allowed = rulesOf(st.Condition);
      for (const resource of [st.Resource].flat()) {
        const queue = GetAttArnSchema.parse(resource)['Fn::GetAtt'][0];
        for (const rule of allowed) expect(writers.get(queue)?.has(rule), `${rule} → ${queue}`).toBe(true);
      }
    }
    // Each target queue has one statement of its own, naming exactly the rules that target it
    expect(targeted.size).toBeGreaterThanOrEqual(5);
    for (const [queue, rules] of targeted) {
      const own = statements.filter(({ st }) => JSON.stringify([st.Resource].flat()).includes(`"${queue}"`));
      expect(own.length, queue).toBe(1);
      const [{ id, st } = { id: '', st: { Resource: undefined } }] = own;
      expect(st.Resource, queue).toEqual({ 'Fn::GetAtt': [queue, 'Arn'] });
      const parsed = QueueStatementSchema.parse(st);
      expect([parsed.Action].flat()).toEqual(['sqs:SendMessage']);
      expect(parsed.Principal.Service).toBe('events.amazonaws.com');
      expect(new Set(parsed.Condition.ArnEquals['aws:SourceArn'].map((a) => a.rule)), queue).toEqual(rules);
      // The stage queues' policy keeps the logical id deployed stacks hold it under (see RemoteDeadLetterPolicy)
      expect(id, queue).toBe('StageQueuesPolicy');
    }
  });

  it('alarms when a rule cannot write an undeliverable event to its DLQ, one alarm per rule with a DLQ', () => {
    // Prepare: the rules with a DLQ, each with its bus (EventBusName absent: the default bus)
    const withDlq = resources('AWS::Events::Rule').filter(([, r]) =>
      z
        .array(RuleTargetSchema)
        .parse(r.Properties.Targets)
        .some((t) => t.DeadLetterConfig),
    );
    // Act / Assess: EventBridge measures a default bus's rule under RuleName, a custom bus's under both
    expect(withDlq.length).toBeGreaterThanOrEqual(12);
    for (const [rule, r] of withDlq) {
      const bus = r.Properties.EventBusName;
      const dimensions =
        bus === undefined
          ? [{ Name: 'RuleName', Value: { Ref: rule } }]
          : [
              {
                Name: 'EventBusName',
                Value: { 'Fn::GetAtt': [z.object({ Ref: z.string() }).parse(bus).Ref, 'Name'] },
              },
              // arn:…:rule/<bus>/<name>
              {
                Name: 'RuleName',
                Value: { 'Fn::Select': [2, { 'Fn::Split': ['/', { 'Fn::GetAtt': [rule, 'Arn'] }] }] },
              },
            ];
      const found = alarmOn('AWS/Events', 'InvocationsFailedToBeSentToDlq', dimensions);
      expectAlarmsOnFirstCount(found, rule);
      // A conditional rule's alarm exists under the same condition (an alarm on a rule that is not there)
      expect(found[0]?.condition, rule).toBe(Reflect.get(r, 'Condition'));
    }
  });

  it('alarms when a schedule could not invoke its function and when a scheduled run failed through its retries', () => {
    // Prepare: every schedule, its rule's name and the function it runs
    const schedules = resources('AWS::Events::Rule')
      .filter(([, r]) => r.Properties.ScheduleExpression !== undefined)
      .map(([, r]) => {
        const [target, ...others] = z.array(RuleTargetSchema).parse(r.Properties.Targets);
        return {
          name: z.string().parse(r.Properties.Name),
          fn: GetAttArnSchema.parse(target?.Arn)['Fn::GetAtt'][0],
          targets: 1 + others.length,
        };
      });
    // Act / Assess: a tick carries no work (the next one does what it would have), so no DLQ; a schedule that
    // keeps failing must not go unnoticed: EventBridge's failure (default bus) and Lambda's dropped event
    expect(schedules.map((s) => s.fn).sort()).toEqual([
      'IngestLambdaFunction',
      'RemediateLambdaFunction',
      'TicketLambdaFunction',
      'VerifyLambdaFunction',
    ]);
    for (const { name, fn, targets } of schedules) {
      expect(targets, name).toBe(1);
      expect(template.Resources[fn]?.Type).toBe('AWS::Lambda::Function');
      expectAlarmsOnFirstCount(alarmOn('AWS/Events', 'FailedInvocations', [{ Name: 'RuleName', Value: name }]), name);
      expectAlarmsOnFirstCount(
        alarmOn('AWS/Lambda', 'AsyncEventsDropped', [{ Name: 'FunctionName', Value: { Ref: fn } }]),
        `${fn} (${name})`,
      );
    }
  });

  it("alarms when ticket requests wait in the outbox too long or are given up, findings are rejected or Jira's webhook is refused, counted from the functions' own log lines", () => {
    // Prepare: Jira refusing (revoked credentials, an outage) fails no function and fills no queue: the
    // requests wait in the outbox for up to 72 hours, then are dead-lettered in the table. What the ticket
    // function logs about them is all an alarm can see.
    const filters = resources('AWS::Logs::MetricFilter').map(([, f]) =>
      z
        .object({
          LogGroupName: z.object({ Ref: z.string() }),
          FilterPattern: z.string(),
          MetricTransformations: z.array(
            z.object({ MetricNamespace: z.string(), MetricName: z.string(), MetricValue: z.string() }),
          ),
        })
        .parse(f.Properties),
    );
    const filterOn = (message: string) => {
      const found = filters.filter((f) => f.FilterPattern === `{ $.message = "${message}" }`);
      expect(found, message).toHaveLength(1);
      const [f] = found;
      if (!f) throw new Error(message);
      // The log group Serverless creates for the ticket function, which writes both lines.
      expect(template.Resources[f.LogGroupName.Ref]).toMatchObject({
        Type: 'AWS::Logs::LogGroup',
        Properties: { LogGroupName: '/aws/lambda/closeloop-dev-ticket' },
      });
      expect(f.MetricTransformations).toHaveLength(1);
      return f.MetricTransformations[0] as { MetricNamespace: string; MetricName: string; MetricValue: string };
    };
    const alarmFor = (metric: { MetricNamespace: string; MetricName: string }) => {
      const found = alarms().filter(
        ({ alarm }) => alarm.Namespace === metric.MetricNamespace && alarm.MetricName === metric.MetricName,
      );
      expect(found, metric.MetricName).toHaveLength(1);
      const [{ alarm } = { alarm: undefined }] = found;
      for (const a of alarm?.AlarmActions ?? []) expect(template.Resources[a.Ref]?.Type).toBe('AWS::SNS::Topic');
      expect(alarm?.AlarmActions.length).toBeGreaterThan(0);
      return alarm;
    };
    // Act
    const waiting = filterOn(OUTBOX_WAITING_LOG);
    const dead = filterOn(TICKET_DEAD_LETTERED_LOG);
    const userSearchRefused = filterOn(USER_SEARCH_REFUSED_LOG);
    // Assess: the age of the oldest waiting request, alarmed past an hour (the default parameter); every
    // request given up, alarmed on the first. Each stage counts in a namespace of its own (two stages may
    // share an account and its log-based metrics have no dimension).
    const oldest: keyof DrainResult = 'oldestWaitingMinutes';
    expect(waiting).toEqual({
      MetricNamespace: 'closeloop/dev',
      MetricName: expect.any(String),
      MetricValue: `$.${oldest}`,
    });
    expect(alarmFor(waiting)).toMatchObject({
      Statistic: 'Maximum',
      Threshold: 60,
      ComparisonOperator: 'GreaterThanThreshold',
      TreatMissingData: 'notBreaching',
    });
    // …a finding rejected at ingest (acknowledged, kept in the table) and a Jira webhook delivery refused for
    // its signature (a secret that differs from Jira's), each counted from its function's log group
    for (const [group, fn, threshold] of [
      ['IngestLogGroup', 'ingest', 0],
      ['JiraDashwebhookLogGroup', 'jira-webhook', 2],
    ] as const) {
      const found = filters.filter((f) => f.LogGroupName.Ref === group);
      expect(found, group).toHaveLength(1);
      expect(template.Resources[group]).toMatchObject({
        Type: 'AWS::Logs::LogGroup',
        Properties: { LogGroupName: `/aws/lambda/closeloop-dev-${fn}` },
      });
      const [metric] = found[0]?.MetricTransformations ?? [];
      if (!metric) throw new Error(`no metric from ${group}`);
      expect(metric).toMatchObject({ MetricNamespace: 'closeloop/dev', MetricValue: '1' });
      expect(alarmFor(metric)).toMatchObject({
        Statistic: 'Sum',
        Threshold: threshold,
        TreatMissingData: 'notBreaching',
      });
    }
    expect(dead).toEqual({ MetricNamespace: 'closeloop/dev', MetricName: expect.any(String), MetricValue: '1' });
    expect(alarmFor(dead)).toMatchObject({
      Statistic: 'Sum',
      Threshold: 0,
      ComparisonOperator: 'GreaterThanThreshold',
      TreatMissingData: 'notBreaching',
    });
    // …and Jira refusing closeloop the user search (issues then go to their fallback), alarmed on the first
    expect(userSearchRefused).toMatchObject({ MetricNamespace: 'closeloop/dev', MetricValue: '1' });
    expect(alarmFor(userSearchRefused)).toMatchObject({ Statistic: 'Sum', Threshold: 0 });
  });

  it('grants no wildcard action and a "*" resource only to APIs without resource-level permissions', () => {
    // Prepare
    const noResourceLevel = /^(tag:GetResources|ec2:Describe[A-Za-z]+|guardduty:ListDetectors)$/;
    for (const [name] of resources('AWS::IAM::Role')) {
      for (const s of roleStatements(name)) {
        // Act / Assess
        for (const action of actionsOf(s)) expect(action, `${name}/${s.Sid}`).not.toMatch(/\*/);
        if (s.Resource === '*')
          for (const action of actionsOf(s)) expect(action, `${name}/${s.Sid}`).toMatch(noResourceLevel);
      }
    }
  });

  it("gives the remediate role exactly the AWS actions' permissions and the verify role exactly their verify reads", async () => {
    // Prepare
    const declared = await bundler.registryPermissions(root);
    if (!declared)
      throw new Error('shared/actions/registry.ts is missing: permissions cannot be checked against the declarations');
    const granted = (role: string, prefix: string) => [
      ...new Set(
        roleStatements(role)
          .filter((s) => s.Sid?.startsWith(prefix))
          .flatMap(actionsOf),
      ),
    ];
    // Act / Assess
    expect(granted('RemediateRole', 'Action').sort()).toEqual(declared.aws);
    expect(granted('VerifyRole', 'Verify').sort()).toEqual(declared.verify.aws);
    expect(granted('VerifyRole', 'Action')).toEqual([]);
  });

  it('grants the verify role exactly the calls the AWS upstream adapters make to mark a verified finding resolved', async () => {
    // Prepare: the adapters as verify wires them, on recorded clients; a member account's GuardDuty finding
    // (archived through the administrator's own detector) and a Security Hub finding.
    const guardduty = mockClient(GuardDutyClient);
    const securityhub = mockClient(SecurityHubClient);
    guardduty.onAnyCommand().resolves({ DetectorIds: ['12abc34d567e8fa901bc2d34e56789f0'] });
    securityhub.onAnyCommand().resolves({ ProcessedFindings: [], UnprocessedFindings: [] });
    const resource = { provider: 'aws' as const, id: 'arn:aws:s3:::logs-1', type: 'AwsS3Bucket', name: 'logs-1' };
    const member = findingFor(resource, {
      sourceId: 'arn:aws:guardduty:us-east-1:444455556666:detector/9f8e7d6c/finding/0a1b2c3d',
    });
    const hub = findingFor(resource, {
      source: 'securityhub',
      raw: {
        Id: 'arn:aws:securityhub:us-east-1:111122223333:subscription/aws-foundational/v/1.0.0/S3.8/finding/1',
        ProductArn: 'arn:aws:securityhub:us-east-1::product/aws/securityhub',
      },
    });
    // Act
    await new GuardDutyUpstream({
      client: () => new GuardDutyClient({ region: 'us-east-1' }),
      archive: true,
      account: '111122223333',
    }).markResolved(member);
    await new SecurityHubUpstream({ client: () => new SecurityHubClient({ region: 'us-east-1' }) }).markResolved(
      hub,
      'verified fixed',
    );
    const called = [
      ...guardduty.calls().map((c) => `guardduty:${c.args[0].constructor.name.replace(/Command$/, '')}`),
      ...securityhub.calls().map((c) => `securityhub:${c.args[0].constructor.name.replace(/Command$/, '')}`),
    ];
    guardduty.restore();
    securityhub.restore();
    // Assess: the verify role's Upstream… grants are those calls, no more and no fewer.
    const granted = roleStatements('VerifyRole')
      .filter((st) => st.Sid?.startsWith('Upstream'))
      .flatMap(actionsOf);
    expect([...new Set(called)].sort()).toEqual([
      'guardduty:ArchiveFindings',
      'guardduty:ListDetectors',
      'securityhub:BatchUpdateFindings',
    ]);
    expect([...new Set(granted)].sort()).toEqual([...new Set(called)].sort());
  });

  it("lets only remediate and verify put the spokes' hand-overs on the hub bus; every other function its pipeline events only", () => {
    // Prepare: what each function role may put on the hub bus, by events:source.
    const sourcesOf = (role: string) =>
      roleStatements(role)
        .filter((st) => st.Effect === 'Allow' && actionsOf(st).includes('events:PutEvents'))
        .map((st) => {
          const condition = z
            .object({ StringEquals: z.object({ 'events:source': z.union([z.string(), z.array(z.string())]) }) })
            .safeParse(st.Condition);
          if (!condition.success) return ['any source'];
          const sources = condition.data.StringEquals['events:source'];
          return (Array.isArray(sources) ? sources : [sources]).sort();
        });
    const functionRoles = resources('AWS::Lambda::Function').map(
      ([, fn]) =>
        z.object({ 'Fn::GetAtt': z.tuple([z.string(), z.literal('Arn')]) }).parse(fn.Properties.Role)['Fn::GetAtt'][0],
    );
    const handOvers = ruleTargets().filter(({ rule }) =>
      JSON.stringify(template.Resources[rule]?.Properties.EventPattern ?? {}).includes(`"${REMOTE_REQUEST_SOURCE}"`),
    );
    // Assess: a hand-over reaches a spoke's remediate function with the shared secret (the API destination's
    // connection adds it), so a function that could put one could have any Azure or GCP action applied,
    // past decide, approval and the blast-radius budget.
    expect(handOvers.map((h) => h.rule).sort()).toEqual(['AzureRemediateRule', 'GcpRemediateRule']);
    expect(new Set(functionRoles)).toEqual(
      new Set([
        'IngestRole',
        'TicketRole',
        'RemediateRole',
        'VerifyRole',
        'EvidenceRole',
        'JiraWebhookRole',
        'RedriveRole',
      ]),
    );
    for (const role of ['RemediateRole', 'VerifyRole'])
      expect(sourcesOf(role), role).toEqual([[CLOSELOOP_SOURCE, REMOTE_REQUEST_SOURCE].sort()]);
    for (const role of ['IngestRole', 'TicketRole', 'JiraWebhookRole'])
      expect(sourcesOf(role), role).toEqual([[CLOSELOOP_SOURCE]]);
    for (const role of ['EvidenceRole', 'RedriveRole']) expect(sourcesOf(role), role).toEqual([]);
  });

  it("leaves the verify role no write of any action's permissions, in the hub or through a member role", async () => {
    // Prepare: a write is any declared action permission that is not a Get/List/Describe read.
    const declared = await bundler.registryPermissions(root);
    if (!declared) throw new Error('shared/actions/registry.ts is missing');
    const writes = declared.aws.filter((p) => !/^[a-z0-9-]+:(Get|List|Describe)/.test(p));
    const allowed = roleStatements('VerifyRole')
      .filter((s) => s.Effect === 'Allow')
      .flatMap(actionsOf);
    const assumed = roleStatements('VerifyRole')
      .filter((s) => actionsOf(s).includes('sts:AssumeRole'))
      .map((s) => JSON.stringify(s.Resource));
    // Assess
    expect(writes).toEqual(expect.arrayContaining(['iam:PutRolePolicy', 'iam:UpdateAccessKey', 's3:PutBucketPolicy']));
    expect(allowed.filter((a) => writes.includes(a))).toEqual([]);
    // The only member role it may assume is the read-only verify role (the acting role holds the writes).
    expect(assumed).toEqual([expect.stringMatching(/:role\/closeloop-member-verify"/)]);
  });

  it('lets the hub assume the member roles by name only, each function the one it needs, under ActInMembers', () => {
    // Prepare
    const assumes = (role: string) =>
      rolePolicies(role).flatMap((p) =>
        p.policy.PolicyDocument.Statement.filter((st) => actionsOf(st).includes('sts:AssumeRole')).map((st) => ({
          condition: p.condition,
          resource: st.Resource,
        })),
      );
    const onRole = (name: string) => ({ 'Fn::Sub': `arn:\${AWS::Partition}:iam::*:role/${name}` });
    // Act / Assess
    expect(assumes('RemediateRole')).toEqual([{ condition: 'ActInMembers', resource: onRole('closeloop-member') }]);
    expect(assumes('VerifyRole')).toEqual([{ condition: 'ActInMembers', resource: onRole('closeloop-member-verify') }]);
    expect(assumes('IngestRole')).toEqual([{ condition: 'ActInMembers', resource: onRole('closeloop-member-read') }]);
    for (const role of ['TicketRole', 'EvidenceRole', 'JiraWebhookRole', 'RedriveRole'])
      expect(assumes(role)).toEqual([]);
    const env = (fn: string) =>
      z
        .looseObject({ Environment: z.object({ Variables: z.record(z.string(), z.unknown()) }) })
        .parse(template.Resources[fn]?.Properties).Environment.Variables;
    expect(env('RemediateLambdaFunction').CLOSELOOP_MEMBER_ROLE).toBe('closeloop-member');
    expect(env('VerifyLambdaFunction').CLOSELOOP_MEMBER_ROLE).toEqual({
      'Fn::If': ['ActInMembers', 'closeloop-member-verify', ''],
    });
    expect(env('IngestLambdaFunction').CLOSELOOP_MEMBER_ROLE).toEqual({
      'Fn::If': ['ActInMembers', 'closeloop-member-read', ''],
    });
    expect(env('RemediateLambdaFunction').CLOSELOOP_PARTITION).toEqual({ Ref: 'AWS::Partition' });
  });

  it("lets each of the GCP spoke's accounts forward, sccIngest's and remediate's, by the unique ids the param lists", () => {
    // Prepare
    const role = z
      .looseObject({
        AssumeRolePolicyDocument: z.object({
          Statement: z.array(z.looseObject({ Condition: z.record(z.string(), z.record(z.string(), z.unknown())) })),
        }),
      })
      .parse(template.Resources.GcpSpokeForwarderRole?.Properties);
    const [trust] = role.AssumeRolePolicyDocument.Statement;
    // Act: packaged without the spokes, the param is empty.
    const ids = { 'Fn::Split': [',', ''] };
    // Assess: a list of ids (infra/gcp output service_account_unique_ids), each its token's sub and azp.
    expect(trust?.Condition.StringEquals?.['accounts.google.com:sub']).toEqual(ids);
    expect(trust?.Condition.StringEquals?.['accounts.google.com:aud']).toEqual(ids);
    expect(trust?.Condition.StringEquals?.['accounts.google.com:oaud']).toBe('closeloop-hub');
  });

  it("gives the member role exactly the actions' declared permissions, trusted by the hub's remediate role only", async () => {
    // Prepare
    const declared = await bundler.registryPermissions(root);
    if (!declared) throw new Error('shared/actions/registry.ts is missing');
    const member = z
      .looseObject({ Resources: z.record(z.string(), ResourceSchema), Outputs: z.record(z.string(), z.unknown()) })
      .parse(JSON.parse(readFileSync(join(root, 'infra/aws/member-role.json'), 'utf8')));
    const policies = (role: string) => z.array(PolicySchema).parse(member.Resources[role]?.Properties.Policies);
    const statements = (role: string) => policies(role).flatMap((p) => p.PolicyDocument.Statement);
    // Act
    const acting = statements('ActingRole');
    const reading = statements('ReadingRole');
    const verifying = statements('VerifyingRole');
    const allowed = (list: Statement[]) => list.filter((st) => st.Effect === 'Allow');
    // The Tagging API read, and IAM users' and roles' tags (which GetResources does not read).
    const TAG_READS = ['tag:GetResources', 'iam:ListUserTags', 'iam:ListRoleTags'];
    // Assess
    expect([...new Set(acting.filter((st) => st.Sid?.startsWith('Action')).flatMap(actionsOf))].sort()).toEqual(
      declared.aws,
    );
    expect(
      allowed(acting)
        .filter((st) => !st.Sid?.startsWith('Action'))
        .flatMap(actionsOf),
    ).toEqual(TAG_READS);
    expect(reading.flatMap(actionsOf)).toEqual(TAG_READS);
    // The verify role: the actions' verify reads and nothing else (no write, no tag read).
    expect(allowed(verifying).every((st) => st.Sid?.startsWith('Verify'))).toBe(true);
    expect([...new Set(verifying.flatMap(actionsOf))].sort()).toEqual(declared.verify.aws);
    expect(member.Resources.VerifyingRole).toMatchObject({
      Condition: 'Verifies',
      Properties: {
        RoleName: { 'Fn::Sub': `\${RoleName}-verify` },
        AssumeRolePolicyDocument: { Statement: [{ Principal: { AWS: { Ref: 'VerifyingRoleArn' } } }] },
      },
    });
    expect(member.Resources.ActingRole?.Properties.AssumeRolePolicyDocument).toEqual({
      Version: '2012-10-17',
      Statement: [{ Effect: 'Allow', Principal: { AWS: { Ref: 'ActingRoleArns' } }, Action: 'sts:AssumeRole' }],
    });
    expect(member.Resources.ReadingRole?.Properties.AssumeRolePolicyDocument).toMatchObject({
      Statement: [{ Principal: { AWS: { Ref: 'ReadingRoleArn' } } }],
    });
    // The hub's outputs are what the member template is given.
    const outputs = z.record(z.string(), z.unknown()).parse(Reflect.get(template, 'Outputs'));
    expect(outputs.MemberActingRoleArns).toEqual({
      Condition: 'ActInMembers',
      Value: { 'Fn::GetAtt': ['RemediateRole', 'Arn'] },
    });
    expect(outputs.MemberVerifyingRoleArn).toEqual({
      Condition: 'ActInMembers',
      Value: { 'Fn::GetAtt': ['VerifyRole', 'Arn'] },
    });
    expect(outputs.MemberReadingRoleArn).toEqual({
      Condition: 'ActInMembers',
      Value: { 'Fn::GetAtt': ['IngestRole', 'Arn'] },
    });
  });

  it("denies the remediate role IAM writes on closeloop's own roles: every stage's hub and the member roles", async () => {
    // Prepare
    const declared = await bundler.registryPermissions(root);
    if (!declared) throw new Error('shared/actions/registry.ts is missing');
    const denies = roleStatements('RemediateRole').filter((s) => s.Effect === 'Deny' && s.Sid === 'DenyOwnRoleWrites');
    const onRole = (name: string) => ({ 'Fn::Sub': `arn:\${AWS::Partition}:iam::*:role/${name}` });
    const roleWrites = declared.aws.filter((p) => /^iam:.*Role/.test(p) && !/^iam:(Get|List)/.test(p));
    // Assess: the deny covers every role write the actions hold, on closeloop's role names.
    expect(denies).toHaveLength(1);
    const deny = denies[0];
    expect(actionsOf(deny ?? { Effect: 'Deny', Action: [], Resource: [] }).sort()).toEqual(
      [...bundler.OWN_ROLE_WRITES].sort(),
    );
    expect(roleWrites.length).toBeGreaterThan(0);
    expect(bundler.OWN_ROLE_WRITES).toEqual(expect.arrayContaining([...roleWrites, 'iam:UpdateAssumeRolePolicy']));
    // Every stage's roles (closeloop-*), not only this one's: two stages may share an account.
    expect(deny?.Resource).toEqual([
      onRole('closeloop-*'),
      { 'Fn::If': ['ActInMembers', onRole('closeloop-member'), { Ref: 'AWS::NoValue' }] },
      { 'Fn::If': ['ActInMembers', onRole('closeloop-member-*'), { Ref: 'AWS::NoValue' }] },
    ]);
    // The hub's own roles are the ones that pattern names: CloudFormation names a role without RoleName
    // <stack>-<logical id>-<suffix> (the stack is closeloop-<stage>), and every named role is closeloop-<stage>-….
    const named = resources('AWS::IAM::Role').flatMap(([, r]) =>
      typeof r.Properties.RoleName === 'string' ? [r.Properties.RoleName] : [],
    );
    expect(named.length).toBeGreaterThan(0);
    for (const n of named) expect(n).toMatch(/^closeloop-dev-/);
    expect(readFileSync(join(root, 'serverless.yml'), 'utf8')).toMatch(/^service: closeloop$/m);
  });

  it("denies the remediate role the actions' S3 bucket writes on closeloop's evidence buckets, every stage's", async () => {
    // Prepare
    const declared = await bundler.registryPermissions(root);
    if (!declared) throw new Error('shared/actions/registry.ts is missing');
    const bucketWrites = declared.aws.filter((p) => p.startsWith('s3:') && !/^s3:(Get|List)/.test(p));
    const denies = roleStatements('RemediateRole').filter(
      (s) => s.Effect === 'Deny' && s.Sid === 'DenyOwnBucketWrites',
    );
    const bucket = z
      .object({ BucketName: z.object({ 'Fn::Sub': z.string() }) })
      .parse(template.Resources.EvidenceBucket?.Properties).BucketName['Fn::Sub'];
    // Assess: every bucket write the actions hold, on a pattern naming this stage's evidence bucket and others'.
    expect(bucketWrites).toEqual(expect.arrayContaining(['s3:PutBucketPolicy', 's3:PutBucketPublicAccessBlock']));
    expect(denies).toHaveLength(1);
    expect(actionsOf(denies[0] ?? { Effect: 'Deny', Action: [], Resource: [] }).sort()).toEqual(bucketWrites);
    expect(denies[0]?.Resource).toEqual({ 'Fn::Sub': 'arn:${AWS::Partition}:s3:::closeloop-*-evidence-*' });
    expect(bucket).toBe('closeloop-dev-evidence-${AWS::AccountId}-${AWS::Region}');
  });

  it('denies the member acting role IAM writes on the member roles themselves', () => {
    // Prepare
    const member = z
      .looseObject({ Resources: z.record(z.string(), ResourceSchema) })
      .parse(JSON.parse(readFileSync(join(root, 'infra/aws/member-role.json'), 'utf8')));
    const denies = z
      .array(PolicySchema)
      .parse(member.Resources.ActingRole?.Properties.Policies)
      .flatMap((p) => p.PolicyDocument.Statement)
      .filter((st) => st.Effect === 'Deny');
    // Assess
    expect(denies).toEqual([
      {
        Sid: 'DenyOwnRoleWrites',
        Effect: 'Deny',
        Action: bundler.OWN_ROLE_WRITES,
        Resource: [
          // biome-ignore-start lint/suspicious/noTemplateCurlyInString: CloudFormation Fn::Sub variables, not JS templates
          { 'Fn::Sub': 'arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${RoleName}' },
          { 'Fn::Sub': 'arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${RoleName}-*' },
          // biome-ignore-end lint/suspicious/noTemplateCurlyInString: end of the Fn::Sub variables
        ],
      },
    ]);
  });

  it('keeps the generated permission files equal to the declarations (no drift)', async () => {
    // Prepare
    const declared = await bundler.registryPermissions(root);
    if (!declared)
      throw new Error('shared/actions/registry.ts is missing: permissions cannot be checked against the declarations');
    // Act
    const expected = bundler.permissionFiles(declared);
    // Assess
    for (const [path, content] of Object.entries(expected)) {
      expect(JSON.parse(readFileSync(join(root, path), 'utf8')), path).toEqual(content);
    }
  });

  it('keeps evidence write-once and state recoverable', () => {
    // Prepare
    const bucket = template.Resources.EvidenceBucket?.Properties;
    const table = template.Resources.CasesTable?.Properties;
    // Assess
    expect(bucket?.ObjectLockEnabled).toBe(true);
    expect(bucket?.ObjectLockConfiguration).toMatchObject({
      ObjectLockEnabled: 'Enabled',
      Rule: { DefaultRetention: { Mode: 'COMPLIANCE' } },
    });
    expect(bucket?.PublicAccessBlockConfiguration).toEqual({
      BlockPublicAcls: true,
      BlockPublicPolicy: true,
      IgnorePublicAcls: true,
      RestrictPublicBuckets: true,
    });
    expect(table?.PointInTimeRecoverySpecification).toEqual({ PointInTimeRecoveryEnabled: true });
    expect(table?.KeySchema).toEqual([
      { AttributeName: 'pk', KeyType: 'HASH' },
      { AttributeName: 'sk', KeyType: 'RANGE' },
    ]);
  });

  it('has DynamoDB delete expired items by the attribute the store writes their expiry to', () => {
    // Prepare: without TTL on that attribute, markers stay in the table forever (the store only hides them)
    const table = template.Resources.CasesTable?.Properties;
    // Assess
    expect(table?.TimeToLiveSpecification).toEqual({ AttributeName: EXPIRES_ATTRIBUTE, Enabled: true });
  });

  it('grants s3:PutObjectRetention beside s3:PutObject to every role that writes evidence with a retention date', () => {
    // Prepare: S3ObjectLockEvidenceStore.put sends ObjectLockMode and ObjectLockRetainUntilDate, which S3
    // authorizes as s3:PutObjectRetention (https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutObjectRetention.html)
    const writers = resources('AWS::IAM::Role')
      .map(([name]) => ({
        name,
        actions: rolePolicies(name)
          .flatMap((p) => p.policy.PolicyDocument.Statement)
          .filter((st) => st.Effect === 'Allow' && JSON.stringify(st.Resource).includes('EvidenceBucket.Arn}/*'))
          .flatMap(actionsOf),
      }))
      .filter((r) => r.actions.includes('s3:PutObject'));
    // Assess
    expect(writers.map((r) => r.name).sort()).toEqual(['EvidenceRole', 'VerifyRole']);
    for (const r of writers) expect(r.actions, r.name).toContain('s3:PutObjectRetention');
  });

  it('passes cfn-lint without errors (the hub and the member template) when cfn-lint is installed', async (ctx) => {
    // Prepare
    const has = await run('sh', ['-c', 'command -v cfn-lint']).then(
      () => true,
      () => false,
    );
    if (!has) return ctx.skip('cfn-lint is not installed on this machine: template not linted');
    // Act
    const files = [templateFile, join(root, 'infra/aws/member-role.json')];
    const result = await run('cfn-lint', ['--format', 'parseable', ...files]).then(
      (r) => ({ code: 0, out: r.stdout }),
      (e: { code?: unknown; stdout?: unknown }) => ({ code: Number(e.code), out: String(e.stdout) }),
    );
    // Assess: exit bit 2 = errors (bit 4 = warnings, reported but accepted: W3005 comes from the framework's DependsOn).
    expect(result.code & 2, result.out).toBe(0);
  });
});
