/**
 * `closeloop plan --live`, `run --apply`, `approve` and `rollback` against S3 through aws-sdk-client-mock
 * (the CLI builds real SDK clients; the mock intercepts every send, so nothing leaves the process).
 */

import { appendFileSync, cpSync } from 'node:fs';
import { join } from 'node:path';
import { IAMClient } from '@aws-sdk/client-iam';
import { GetResourcesCommand, ResourceGroupsTaggingAPIClient } from '@aws-sdk/client-resource-groups-tagging-api';
import {
  DeleteBucketPolicyCommand,
  DeletePublicAccessBlockCommand,
  GetBucketAclCommand,
  GetBucketPolicyCommand,
  GetBucketPolicyStatusCommand,
  GetBucketTaggingCommand,
  GetPublicAccessBlockCommand,
  PutBucketAclCommand,
  PutBucketPolicyCommand,
  PutPublicAccessBlockCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { SqliteDocStore } from '../../shared/adapters/store/sqlite.js';
import { LOCAL_COLLECTIONS, LocalTicketSchema } from '../../shared/adapters/tickets/local.js';
import { CaseSchema } from '../../shared/core/model/case.js';
import { CLAIMS_COLLECTION } from '../../shared/core/remediation/stage.js';
import { awsError } from '../helpers/action-context.js';
import { cli } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

const EVENTS = join(import.meta.dirname, '../../examples/events');
const CONFIG = join(import.meta.dirname, '../../examples/config');
const DEV_BATCH = join(EVENTS, '33-securityhub-findings-batch-dev.json');
const PROD_S3 = join(EVENTS, '01-guardduty-s3-anonymous-access-prod.json');

const OWNER = { ID: '0'.repeat(64), DisplayName: 'owner' };
const OWNER_GRANT = { Grantee: { Type: 'CanonicalUser' as const, ID: OWNER.ID }, Permission: 'FULL_CONTROL' as const };
const PUBLIC_GRANT = {
  Grantee: { Type: 'Group' as const, URI: 'http://acs.amazonaws.com/groups/global/AllUsers' },
  Permission: 'READ' as const,
};
const PUBLIC_POLICY = JSON.stringify({
  Version: '2012-10-17',
  Statement: [{ Sid: 'Public', Effect: 'Allow', Principal: '*', Action: 's3:GetObject', Resource: 'arn:aws:s3:::b/*' }],
});
const ALL_ON = { BlockPublicAcls: true, IgnorePublicAcls: true, BlockPublicPolicy: true, RestrictPublicBuckets: true };

const s3 = mockClient(S3Client);
const iam = mockClient(IAMClient);
// The skip tag is re-read through the Tagging API just before an apply.
const tagging = mockClient(ResourceGroupsTaggingAPIClient);
// The account the ambient credentials are in: the dev batch's (444455556666) unless a test says otherwise.
const sts = mockClient(STSClient);

/** A stateful S3 bucket behind the mock: public until the fix lands, and a rollback makes it public again. */
function statefulBucket() {
  const state = {
    block: undefined as typeof ALL_ON | undefined,
    grants: [OWNER_GRANT, PUBLIC_GRANT],
    policy: PUBLIC_POLICY as string | undefined,
  };
  s3.on(GetPublicAccessBlockCommand).callsFake(() => {
    if (!state.block) throw awsError('NoSuchPublicAccessBlockConfiguration', 404);
    return { PublicAccessBlockConfiguration: state.block };
  });
  s3.on(GetBucketAclCommand).callsFake(() => ({ Owner: OWNER, Grants: state.grants }));
  s3.on(GetBucketPolicyCommand).callsFake(() => {
    if (!state.policy) throw awsError('NoSuchBucketPolicy', 404);
    return { Policy: state.policy };
  });
  s3.on(GetBucketPolicyStatusCommand).callsFake(() => {
    if (!state.policy) throw awsError('NoSuchBucketPolicy', 404);
    return { PolicyStatus: { IsPublic: state.policy.includes('"Principal":"*"') && !state.block } };
  });
  s3.on(GetBucketTaggingCommand).rejects(awsError('NoSuchTagSet', 404));
  s3.on(PutPublicAccessBlockCommand).callsFake((input: { PublicAccessBlockConfiguration: typeof ALL_ON }) => {
    state.block = input.PublicAccessBlockConfiguration;
    return { $metadata: { requestId: 'req-pab' } };
  });
  s3.on(PutBucketAclCommand).callsFake((input: { AccessControlPolicy?: { Grants?: typeof state.grants } }) => {
    state.grants = input.AccessControlPolicy?.Grants ?? state.grants;
    return { $metadata: { requestId: 'req-acl' } };
  });
  s3.on(PutBucketPolicyCommand).callsFake((input: { Policy: string }) => {
    state.policy = input.Policy;
    return { $metadata: { requestId: 'req-policy' } };
  });
  s3.on(DeletePublicAccessBlockCommand).callsFake(() => {
    state.block = undefined;
    return { $metadata: { requestId: 'req-del-pab' } };
  });
  s3.on(DeleteBucketPolicyCommand).callsFake(() => {
    state.policy = undefined;
    return { $metadata: { requestId: 'req-del-policy' } };
  });
  return state;
}

async function caseFor(home: string, resource: string) {
  const r = await cli(['cases', '--json', '--home', home]);
  const cases = CaseSchema.array().parse(JSON.parse(r.out));
  const c = cases.find((x) => x.resourceName === resource && x.remediation.action === 's3.block-public-access');
  if (!c) throw new Error(`no s3 case for ${resource} in ${cases.map((x) => x.resourceName).join(', ')}`);
  return c;
}

describe('closeloop against live (mocked) S3', () => {
  let tmp: ReturnType<typeof tempDir>;
  let home: string;
  beforeEach(() => {
    tmp = tempDir();
    home = join(tmp.dir, 'home');
    s3.reset();
    iam.reset();
    iam.onAnyCommand().rejects(awsError('AccessDenied', 403));
    tagging.reset();
    tagging.on(GetResourcesCommand).resolves({ ResourceTagMappingList: [] });
    sts.reset();
    sts.on(GetCallerIdentityCommand).resolves({ Account: '444455556666' });
  });
  afterEach(() => {
    vi.unstubAllEnvs();
    tmp.cleanup();
  });

  it('prints readable steps with the exact API calls when plan reads live state', async () => {
    // Prepare
    statefulBucket();
    // Act
    const r = await cli(['plan', DEV_BATCH, '--live', '--config', CONFIG, '--home', home]);
    // Assess
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/plan for \w+ s3\.block-public-access on acme-web-dev-assets/);
    expect(r.out).toContain('[s3:PutPublicAccessBlock]');
    expect(s3).toReceiveCommandTimes(PutPublicAccessBlockCommand, 0);
  });

  it('applies, verifies with a re-read, keeps the before-state, and rolls back when asked', async () => {
    // Prepare
    const bucket = statefulBucket();
    // Act 1: the dev case is auto; --apply executes it.
    const run = await cli(['run', DEV_BATCH, '--apply', '--config', CONFIG, '--home', home]);
    // Assess 1
    expect(run.code, run.err).toBe(0);
    expect(s3).toReceiveCommandWith(PutPublicAccessBlockCommand, {
      Bucket: 'acme-web-dev-assets',
      PublicAccessBlockConfiguration: ALL_ON,
    });
    expect(bucket.block).toEqual(ALL_ON);
    const applied = await caseFor(home, 'acme-web-dev-assets');
    expect(applied.remediation.state).toBe('applied');
    expect(applied.status).toBe('verified');
    expect(JSON.stringify(applied.remediation.before)).toContain('AllUsers');
    const evidence = await cli(['evidence', 'verify', '--home', home]);
    expect(evidence.code, evidence.out).toBe(0);

    // Act 2: a rollback restores what was recorded.
    const rollback = await cli([
      'rollback',
      applied.key,
      '--by',
      'oncall@example.com',
      '--config',
      CONFIG,
      '--home',
      home,
    ]);
    // Assess 2
    expect(rollback.code, rollback.err).toBe(0);
    expect(bucket.grants).toContainEqual(PUBLIC_GRANT);
    expect(bucket.block).toBeUndefined();
    const rolled = await caseFor(home, 'acme-web-dev-assets');
    expect(rolled.remediation.state).toBe('rolled-back');
    expect(rolled.remediation.rolledBackBy).toBe('oncall@example.com');
  });

  it('blocks the fix when the live resource carries the skip tag now, or its tags cannot be read', async () => {
    // Prepare: the dev bucket was tagged closeloop:skip after the finding; the event has no such tag.
    const bucket = statefulBucket();
    tagging.on(GetResourcesCommand).callsFake((input: { ResourceARNList?: string[] }) => ({
      ResourceTagMappingList: (input.ResourceARNList ?? []).map((arn) => ({
        ResourceARN: arn,
        Tags: [{ Key: 'closeloop:skip', Value: 'incident-4711' }],
      })),
    }));
    /** `run --apply` of the dev batch in a home of its own: the S3 case must end blocked, for `why`. */
    const blockedRun = async (dir: string, why: string) => {
      const r = await cli(['run', DEV_BATCH, '--apply', '--config', CONFIG, '--home', join(tmp.dir, dir)]);
      expect(r.code, r.err).toBe(0);
      const c = await caseFor(join(tmp.dir, dir), 'acme-web-dev-assets');
      expect(c.remediation.state).toBe('blocked');
      expect(c.remediation.stateReason).toContain(why);
      expect(s3).toReceiveCommandTimes(PutPublicAccessBlockCommand, 0);
    };
    // Act / Assess 1: the skip tag is on the live bucket.
    await blockedRun('tagged', 'carries the skip tag `closeloop:skip` now');
    expect(bucket.block).toBeUndefined();
    expect(tagging).toHaveReceivedCommandWith(GetResourcesCommand, {
      ResourceARNList: ['arn:aws:s3:::acme-web-dev-assets'],
    });
    // Act / Assess 2: the Tagging API refuses.
    tagging.reset();
    tagging.on(GetResourcesCommand).rejects(awsError('AccessDeniedException', 403));
    await blockedRun('denied', 'live tags could not be read');
    // Act / Assess 3: the credentials are another account's: the bucket is not acted on from here, and
    // nothing of it is read (neither its state nor its tags: a namesake's would answer).
    tagging.reset();
    const s3Calls = s3.calls().length;
    sts.on(GetCallerIdentityCommand).resolves({ Account: '999988887777' });
    await blockedRun('elsewhere', 'is in AWS account 444455556666 and this deployment acts in 999988887777 only');
    expect(tagging).toHaveReceivedCommandTimes(GetResourcesCommand, 0);
    expect(s3.calls().length).toBe(s3Calls);
  });

  it('settles an apply its killed run left claimed as failed on the next run, telling the ticket, and leaves a younger claim alone', async () => {
    // Prepare: a run planned the dev batch; then two applies were claimed as `run --apply` claims them, by
    // runs SIGKILLed mid-apply: one 20 minutes ago, one a minute ago (its run may still be going)
    statefulBucket();
    expect((await cli(['run', DEV_BATCH, '--config', CONFIG, '--home', home])).code).toBe(0);
    const planned = CaseSchema.array().parse(JSON.parse((await cli(['cases', '--json', '--home', home])).out));
    const s3Case = await caseFor(home, 'acme-web-dev-assets');
    const other = planned.find((c) => c.key !== s3Case.key && c.remediation.action);
    if (!other) throw new Error('the dev batch has no second case with an action');
    const store = await SqliteDocStore.open(join(home, 'closeloop.db'));
    for (const [c, minutesAgo] of [
      [s3Case, 20],
      [other, 1],
    ] as const) {
      const claimedAt = new Date(Date.now() - minutesAgo * 60_000).toISOString();
      const remediation = { ...c.remediation, state: 'applying', applyToken: `killed-${minutesAgo}`, claimedAt };
      await store.put(CLAIMS_COLLECTION, c.key, { caseKey: c.key, at: claimedAt });
      await store.put('cases', c.key, { ...c, remediation });
    }
    await store.close();
    // Act
    const run = await cli(['run', DEV_BATCH, '--apply', '--config', CONFIG, '--home', home]);
    // Assess: failed with why, its outcome unknown, and nothing applied again; the younger claim untouched
    expect(run.code, run.err).toBe(0);
    const settled = await caseFor(home, 'acme-web-dev-assets');
    expect(settled.remediation.state).toBe('failed');
    expect(settled.remediation.stateReason).toMatch(
      /^apply of s3\.block-public-access interrupted: no outcome within 15 min of its claim at .*; it may have taken effect in part/,
    );
    expect(settled.remediation.interruptedAt).toBeDefined();
    expect(s3).toReceiveCommandTimes(PutPublicAccessBlockCommand, 0);
    const after = CaseSchema.array().parse(JSON.parse((await cli(['cases', '--json', '--home', home])).out));
    expect(after.find((c) => c.key === other.key)?.remediation).toMatchObject({
      state: 'applying',
      applyToken: 'killed-1',
    });
    const tickets = await SqliteDocStore.open(join(home, 'closeloop.db'));
    const ticket = settled.ticket
      ? LocalTicketSchema.parse((await tickets.get(LOCAL_COLLECTIONS.tickets, settled.ticket.key))?.value)
      : undefined;
    await tickets.close();
    expect(ticket?.comments.map((c) => c.text).join('\n')).toContain('interrupted: no outcome within 15 min');
  });

  it('holds a production fix for approval and applies it once a person approves with --apply', async () => {
    // Prepare
    const bucket = statefulBucket();
    sts.on(GetCallerIdentityCommand).resolves({ Account: '111122223333' }); // the prod bucket's account
    const run = await cli(['run', PROD_S3, '--apply', '--config', CONFIG, '--home', home]);
    expect(run.code, run.err).toBe(0);
    const waiting = await caseFor(home, 'acme-data-exports');
    expect(waiting.remediation.state).toBe('awaiting-approval');
    expect(bucket.block).toBeUndefined();
    // Act
    const approve = await cli([
      'approve',
      waiting.key,
      '--by',
      'lead@example.com',
      '--apply',
      '--config',
      CONFIG,
      '--home',
      home,
    ]);
    // Assess
    expect(approve.code, approve.err).toBe(0);
    const done = await caseFor(home, 'acme-data-exports');
    expect(done.remediation.approvedBy).toBe('lead@example.com');
    expect(done.remediation.state).toBe('applied');
    expect(bucket.block).toEqual(ALL_ON);
    expect(s3).toReceiveCommandTimes(PutPublicAccessBlockCommand, 1);
  });

  it('refuses approve --by a person apply.approvers does not list for prod (exit 1, recorded, nothing applied)', async () => {
    // Prepare: the example config with only the lead allowed to approve prod fixes.
    const config = join(tmp.dir, 'config');
    cpSync(CONFIG, config, { recursive: true });
    appendFileSync(join(config, 'policy.yaml'), '\napply:\n  approvers:\n    prod: [lead@example.com]\n');
    const bucket = statefulBucket();
    sts.on(GetCallerIdentityCommand).resolves({ Account: '111122223333' });
    await cli(['run', PROD_S3, '--apply', '--config', config, '--home', home]);
    const waiting = await caseFor(home, 'acme-data-exports');
    const by = (who: string) => ['approve', waiting.key, '--by', who, '--apply', '--config', config, '--home', home];
    // Act
    const intern = await cli(by('intern@example.com'));
    const afterIntern = await caseFor(home, 'acme-data-exports');
    const lead = await cli(by('lead@example.com'));
    const evidence = await cli(['evidence', 'show', waiting.key, '--json', '--home', home]);
    // Assess
    expect(intern.code).toBe(1);
    // The refused person is told whom to ask.
    expect(intern.err).toContain(
      'not approved: intern@example.com may not approve fixes in prod (policy apply.approvers.prod); approvers for prod: lead@example.com',
    );
    expect(afterIntern.remediation.state).toBe('awaiting-approval');
    expect(lead.code, lead.err).toBe(0);
    expect((await caseFor(home, 'acme-data-exports')).remediation).toMatchObject({
      state: 'applied',
      approvedBy: 'lead@example.com',
    });
    expect(bucket.block).toEqual(ALL_ON);
    expect(evidence.out).toContain('approval-refused');
    // --json: the JSON bundle, its chain check intact
    expect(JSON.parse(evidence.out)).toMatchObject({ caseKey: waiting.key, chain: { ok: true } });
  });

  it("asks production's approvers, not dev's, for a dev bucket tagged env=prod since: approve --by dev's approver is refused, prod's applies", async () => {
    // Prepare: dev and prod each list their own approver; the dev batch's bucket carries `env`=prod on its
    // live tags now (decide read dev: lookups are off in the example config, the event says dev).
    const config = join(tmp.dir, 'config');
    cpSync(CONFIG, config, { recursive: true });
    appendFileSync(
      join(config, 'policy.yaml'),
      '\napply:\n  approvers:\n    dev: [dev-lead@example.com]\n    prod: [lead@example.com]\n',
    );
    const bucket = statefulBucket();
    tagging.on(GetResourcesCommand).callsFake((input: { ResourceARNList?: string[] }) => ({
      ResourceTagMappingList: (input.ResourceARNList ?? []).map((arn) => ({
        ResourceARN: arn,
        Tags: [{ Key: 'env', Value: 'prod' }],
      })),
    }));
    await cli(['run', DEV_BATCH, '--apply', '--config', config, '--home', home]);
    const waiting = await caseFor(home, 'acme-web-dev-assets');
    const by = (who: string) => ['approve', waiting.key, '--by', who, '--apply', '--config', config, '--home', home];
    // Act
    const devLead = await cli(by('dev-lead@example.com'));
    const afterDevLead = await caseFor(home, 'acme-web-dev-assets');
    const lead = await cli(by('lead@example.com'));
    // Assess
    expect(waiting.enrichment.environment).toBe('dev');
    expect(waiting.remediation).toMatchObject({ state: 'awaiting-approval', judgedEnvironment: 'prod' });
    expect(devLead.code).toBe(1);
    expect(devLead.err).toContain(
      'not approved: dev-lead@example.com may not approve fixes in prod (policy apply.approvers.prod); approvers for prod: lead@example.com',
    );
    expect(afterDevLead.remediation.state).toBe('awaiting-approval');
    expect(afterDevLead.remediation.approvedBy).toBeUndefined();
    expect(lead.code, lead.err).toBe(0);
    expect((await caseFor(home, 'acme-web-dev-assets')).remediation).toMatchObject({
      state: 'applied',
      approvedBy: 'lead@example.com',
    });
    expect(bucket.block).toEqual(ALL_ON);
    expect(s3).toReceiveCommandTimes(PutPublicAccessBlockCommand, 1);
  });

  it('applies an approval given in a dry-run at the next run --apply', async () => {
    // Prepare
    const bucket = statefulBucket();
    sts.on(GetCallerIdentityCommand).resolves({ Account: '111122223333' }); // the prod bucket's account
    await cli(['run', PROD_S3, '--live', '--config', CONFIG, '--home', home]);
    const waiting = await caseFor(home, 'acme-data-exports');
    const approve = await cli(['approve', waiting.key, '--by', 'lead@example.com', '--config', CONFIG, '--home', home]);
    expect(approve.code, approve.err).toBe(0);
    expect((await caseFor(home, 'acme-data-exports')).remediation.state).toBe('approved');
    expect(bucket.block).toBeUndefined();
    // Act: a later run with --apply and no new finding for that case.
    const run = await cli(['run', DEV_BATCH, '--apply', '--config', CONFIG, '--home', home]);
    // Assess
    expect(run.code, run.err).toBe(0);
    const done = await caseFor(home, 'acme-data-exports');
    expect(done.remediation).toMatchObject({ state: 'applied', approvedBy: 'lead@example.com' });
    expect(s3).toReceiveCommandWith(PutPublicAccessBlockCommand, { Bucket: 'acme-data-exports' });
  });

  it('takes the approver from CLOSELOOP_ACTOR when --by is not given, as the README says', async () => {
    // Prepare
    statefulBucket();
    sts.on(GetCallerIdentityCommand).resolves({ Account: '111122223333' }); // the prod bucket's account
    await cli(['run', PROD_S3, '--live', '--config', CONFIG, '--home', home]);
    const waiting = await caseFor(home, 'acme-data-exports');
    vi.stubEnv('CLOSELOOP_ACTOR', 'lead@example.com');
    // Act
    const approve = await cli(['approve', waiting.key, '--config', CONFIG, '--home', home]);
    // Assess
    expect(approve.code, approve.err).toBe(0);
    expect((await caseFor(home, 'acme-data-exports')).remediation).toMatchObject({
      state: 'approved',
      approvedBy: 'lead@example.com',
    });
  });

  it('refuses approve and rollback without --by (the person is recorded)', async () => {
    // Prepare: nor CLOSELOOP_ACTOR, which stands for --by
    vi.stubEnv('CLOSELOOP_ACTOR', undefined);
    // Act
    const a = await cli(['approve', 'abcdef', '--home', home]);
    const b = await cli(['rollback', 'abcdef', '--home', home]);
    // Assess
    expect(a.code).toBe(2);
    expect(a.err).toContain('--by');
    expect(b.code).toBe(2);
  });
});
