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
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import action from '../../shared/actions/s3.block-public-access.js';
import { isDenied, isGone } from '../../shared/core/errors.js';
import { awsError, findingFor, testContext } from '../helpers/action-context.js';

const s3 = mockClient(S3Client);
const target = { bucket: 'acme-exports-111122223333', region: 'us-east-1' };
const ALL_ON = { BlockPublicAcls: true, IgnorePublicAcls: true, BlockPublicPolicy: true, RestrictPublicBuckets: true };
const OWNER = { ID: '0000000000000000000000000000000000000000000000000000000000000000', DisplayName: 'owner' };
const OWNER_GRANT = { Grantee: { Type: 'CanonicalUser' as const, ID: OWNER.ID }, Permission: 'FULL_CONTROL' as const };
const PUBLIC_GRANT = {
  Grantee: { Type: 'Group' as const, URI: 'http://acs.amazonaws.com/groups/global/AllUsers' },
  Permission: 'READ' as const,
};
const PUBLIC_STATEMENT = {
  Sid: 'Public',
  Effect: 'Allow',
  Principal: '*',
  Action: 's3:GetObject',
  Resource: 'arn:aws:s3:::acme-exports-111122223333/*',
};
const VPC_STATEMENT = {
  Sid: 'VpceOnly',
  Effect: 'Allow',
  Principal: { AWS: '*' },
  Action: 's3:GetObject',
  Resource: 'arn:aws:s3:::acme-exports-111122223333/*',
  Condition: { StringEquals: { 'aws:SourceVpce': 'vpce-0000000000000000' } },
};
const policyOf = (...Statement: unknown[]) => JSON.stringify({ Version: '2012-10-17', Statement });

function compliant() {
  s3.on(GetPublicAccessBlockCommand).resolves({ PublicAccessBlockConfiguration: ALL_ON });
  s3.on(GetBucketAclCommand).resolves({ Owner: OWNER, Grants: [OWNER_GRANT] });
  s3.on(GetBucketPolicyCommand).rejects(awsError('NoSuchBucketPolicy', 404));
  s3.on(GetBucketTaggingCommand).rejects(awsError('NoSuchTagSet', 404));
  s3.on(GetBucketPolicyStatusCommand).rejects(awsError('NoSuchBucketPolicy', 404));
}

function publicBucket(tags: Array<{ Key: string; Value: string }> = []) {
  s3.on(GetPublicAccessBlockCommand).rejects(awsError('NoSuchPublicAccessBlockConfiguration', 404));
  s3.on(GetBucketAclCommand).resolves({ Owner: OWNER, Grants: [OWNER_GRANT, PUBLIC_GRANT] });
  s3.on(GetBucketPolicyCommand).resolves({ Policy: policyOf(PUBLIC_STATEMENT, VPC_STATEMENT) });
  s3.on(GetBucketTaggingCommand).resolves({ TagSet: tags });
}

describe('Action: s3.block-public-access', () => {
  beforeEach(() => s3.reset());

  it('plans a no-op when all four flags are on and nothing is public', async () => {
    // Prepare
    compliant();
    // Act
    const plan = await action.plan(target, testContext());
    // Assess
    expect(plan.noop).toBe(true);
    expect(plan.steps).toEqual([]);
    expect(plan.summary).toContain('already blocks all public access');
    expect(s3).toReceiveCommandTimes(PutPublicAccessBlockCommand, 0);
  });

  it('plans the flags, the ACL and the policy change without side effects when the bucket is public', async () => {
    // Prepare
    publicBucket();
    // Act
    const plan = await action.plan(target, testContext());
    // Assess
    expect(plan.steps.map((s) => s.call.api)).toEqual([
      's3:PutPublicAccessBlock',
      's3:PutBucketAcl',
      's3:PutBucketPolicy',
    ]);
    expect(plan.steps[2]?.call.input).toEqual({ Bucket: target.bucket, Policy: policyOf(VPC_STATEMENT) });
    expect(plan.before.publicAccessBlock).toBeNull();
    expect(plan.needsApproval).toBeUndefined();
    expect(s3).toReceiveCommandTimes(PutPublicAccessBlockCommand, 0);
    expect(s3).toReceiveCommandTimes(PutBucketAclCommand, 0);
    expect(s3).toReceiveCommandTimes(PutBucketPolicyCommand, 0);
  });

  it('applies exactly the planned calls and returns request ids when the bucket is public', async () => {
    // Prepare
    publicBucket();
    s3.on(PutPublicAccessBlockCommand).resolves({ $metadata: { requestId: 'R1' } });
    s3.on(PutBucketAclCommand).resolves({ $metadata: { requestId: 'R2' } });
    s3.on(PutBucketPolicyCommand).resolves({ $metadata: { requestId: 'R3' } });
    const ctx = testContext();
    const plan = await action.plan(target, ctx);
    // Act
    const result = await action.apply(plan, ctx);
    // Assess
    expect(result.requestIds).toEqual(['R1', 'R2', 'R3']);
    expect(s3).toReceiveCommandWith(PutPublicAccessBlockCommand, {
      Bucket: target.bucket,
      PublicAccessBlockConfiguration: ALL_ON,
    });
    expect(s3).toReceiveCommandWith(PutBucketAclCommand, {
      Bucket: target.bucket,
      AccessControlPolicy: { Owner: OWNER, Grants: [OWNER_GRANT] },
    });
    expect(s3).toReceiveCommandWith(PutBucketPolicyCommand, { Bucket: target.bucket, Policy: policyOf(VPC_STATEMENT) });
    expect(result.before.acl.grants).toContainEqual(PUBLIC_GRANT);
  });

  it('deletes the policy when its only statement allows "*" without a condition', async () => {
    // Prepare
    compliant();
    s3.on(GetBucketPolicyCommand).resolves({ Policy: policyOf(PUBLIC_STATEMENT) });
    s3.on(DeleteBucketPolicyCommand).resolves({ $metadata: { requestId: 'D1' } });
    const ctx = testContext();
    // Act
    const plan = await action.plan(target, ctx);
    const result = await action.apply(plan, ctx);
    // Assess
    expect(plan.steps.map((s) => s.call.api)).toEqual(['s3:DeleteBucketPolicy']);
    expect(result.requestIds).toEqual(['D1']);
    expect(s3).toReceiveCommandWith(DeleteBucketPolicyCommand, { Bucket: target.bucket });
  });

  it('asks for approval when the bucket is tagged as a public website', async () => {
    // Prepare
    publicBucket([{ Key: 'website', Value: 'true' }]);
    // Act
    const plan = await action.plan(target, testContext());
    // Assess
    expect(plan.needsApproval).toContain('website=true');
  });

  it('uses the configured website tag when policy names one', async () => {
    // Prepare
    publicBucket([{ Key: 'site', Value: 'public' }]);
    const ctx = testContext({ settings: { 's3.block-public-access': { websiteTags: ['site=public'] } } });
    // Act
    const plan = await action.plan(target, ctx);
    // Assess
    expect(plan.needsApproval).toContain('site=public');
  });

  it('refuses to apply when the live state changed since the plan', async () => {
    // Prepare
    publicBucket();
    const ctx = testContext();
    const plan = await action.plan(target, ctx);
    s3.on(GetBucketAclCommand).resolves({ Owner: OWNER, Grants: [OWNER_GRANT, PUBLIC_GRANT, PUBLIC_GRANT] });
    // Act
    const attempt = action.apply(plan, ctx);
    // Assess
    await expect(attempt).rejects.toMatchObject({ kind: 'conflict' });
    expect(s3).toReceiveCommandTimes(PutPublicAccessBlockCommand, 0);
  });

  it('calls nothing when the bucket was fixed between plan and apply', async () => {
    // Prepare
    publicBucket();
    const ctx = testContext();
    const plan = await action.plan(target, ctx);
    compliant();
    // Act
    const result = await action.apply(plan, ctx);
    // Assess
    expect(result.requestIds).toEqual([]);
    expect(s3).toReceiveCommandTimes(PutPublicAccessBlockCommand, 0);
  });

  it('throws a denied error when S3 answers AccessDenied', async () => {
    // Prepare
    s3.on(GetPublicAccessBlockCommand).rejects(awsError('AccessDenied', 403));
    // Act
    const attempt = action.plan(target, testContext());
    // Assess
    await expect(attempt).rejects.toSatisfy(isDenied);
    expect(s3).toReceiveCommandTimes(GetPublicAccessBlockCommand, 1);
  });

  it('retries and succeeds when S3 throttles once', async () => {
    // Prepare
    compliant();
    s3.on(GetBucketAclCommand)
      .rejectsOnce(awsError('SlowDown', 503))
      .resolves({ Owner: OWNER, Grants: [OWNER_GRANT] });
    // Act
    const plan = await action.plan(target, testContext());
    // Assess
    expect(plan.noop).toBe(true);
    expect(s3).toReceiveCommandTimes(GetBucketAclCommand, 2);
  });

  it('throws a gone error when the bucket no longer exists', async () => {
    // Prepare
    s3.on(GetPublicAccessBlockCommand).rejects(awsError('NoSuchBucket', 404));
    // Act
    const attempt = action.plan(target, testContext());
    // Assess
    await expect(attempt).rejects.toSatisfy(isGone);
  });

  it('verifies the fix holds only when flags are on, the policy is not public and no public grant remains', async () => {
    // Prepare
    compliant();
    s3.on(GetBucketPolicyStatusCommand).resolves({ PolicyStatus: { IsPublic: true } });
    const ctx = testContext();
    // Act
    const broken = await action.verify(target, ctx);
    s3.on(GetBucketPolicyStatusCommand).resolves({ PolicyStatus: { IsPublic: false } });
    const holds = await action.verify(target, ctx);
    // Assess
    expect(broken).toMatchObject({ holds: false, reason: 'the bucket policy is public' });
    expect(holds.holds).toBe(true);
  });

  it('lifts the blocking flags to restore stale public grants, then writes the exact old flags back', async () => {
    // Prepare: all four flags were on, yet a public ACL grant had stayed (the plan removed only the grant).
    const ALL = ALL_ON;
    s3.on(GetPublicAccessBlockCommand).resolves({ PublicAccessBlockConfiguration: ALL });
    s3.on(GetBucketAclCommand).resolves({ Owner: OWNER, Grants: [OWNER_GRANT, PUBLIC_GRANT] });
    s3.on(GetBucketPolicyCommand).rejects(awsError('NoSuchBucketPolicy', 404));
    s3.on(GetBucketTaggingCommand).resolves({ TagSet: [] });
    const ctx = testContext();
    const plan = await action.plan(target, ctx);
    // S3 refuses a public ACL while BlockPublicAcls is on, as the real service does.
    let flags = ALL;
    s3.on(PutPublicAccessBlockCommand).callsFake((input: { PublicAccessBlockConfiguration: typeof ALL }) => {
      flags = input.PublicAccessBlockConfiguration;
      return { $metadata: { requestId: `F${s3.commandCalls(PutPublicAccessBlockCommand).length}` } };
    });
    s3.on(PutBucketAclCommand).callsFake(() => {
      if (flags.BlockPublicAcls) throw awsError('AccessDenied', 403);
      return { $metadata: { requestId: 'A1' } };
    });
    // Act
    const result = await action.rollback({ target, before: plan.before }, ctx);
    // Assess
    expect(plan.steps.map((st) => st.call.api)).toEqual(['s3:PutBucketAcl']);
    expect(result.requestIds).toEqual(['F1', 'A1', 'F2']);
    expect(
      s3.commandCalls(PutPublicAccessBlockCommand).map((c) => c.args[0].input.PublicAccessBlockConfiguration),
    ).toEqual([{ ...ALL, BlockPublicAcls: false }, ALL]);
    expect(flags).toEqual(ALL);
  });

  it('removes Allow-to-* statements whose conditions S3 still counts as public, keeps those pinned to fixed sources', async () => {
    // Prepare
    const allow = (Sid: string, Condition: Record<string, unknown>) => ({
      Sid,
      Effect: 'Allow',
      Principal: '*',
      Action: 's3:GetObject',
      Resource: `arn:aws:s3:::${target.bucket}/*`,
      Condition,
    });
    const statements = [
      allow('TlsOnly', { Bool: { 'aws:SecureTransport': 'true' } }),
      allow('Referer', { StringLike: { 'aws:Referer': 'https://acme.example/*' } }),
      allow('AnyIp', { IpAddress: { 'aws:SourceIp': '0.0.0.0/0' } }),
      allow('NotVpce', { StringNotEquals: { 'aws:SourceVpce': 'vpce-1a2b3c4d' } }),
      allow('OfficeIp', { IpAddress: { 'aws:SourceIp': ['203.0.113.0/24'] } }),
      allow('Account', { StringEquals: { 'aws:SourceAccount': '111122223333' } }),
    ];
    s3.on(GetPublicAccessBlockCommand).resolves({ PublicAccessBlockConfiguration: ALL_ON });
    s3.on(GetBucketAclCommand).resolves({ Owner: OWNER, Grants: [OWNER_GRANT] });
    s3.on(GetBucketPolicyCommand).resolves({ Policy: policyOf(...statements) });
    s3.on(GetBucketTaggingCommand).resolves({ TagSet: [] });
    // Act
    const plan = await action.plan(target, testContext());
    // Assess
    const put = plan.steps.find((st) => st.call.api === 's3:PutBucketPolicy')?.call.input as { Policy: string };
    const kept = (JSON.parse(put.Policy) as { Statement: Array<{ Sid: string }> }).Statement.map((st) => st.Sid);
    expect(kept).toEqual(['OfficeIp', 'Account']);
  });

  it('on rollback adds back only the public grant and statement it removed, keeping changes made after the fix', async () => {
    // Prepare: the fix removed the public grant and statement; then the owner dropped the VPC endpoint
    // statement, granted a partner account read and gave the log delivery group write on the ACL.
    publicBucket();
    const ctx = testContext();
    const plan = await action.plan(target, ctx);
    const PARTNER = {
      Sid: 'Partner',
      Effect: 'Allow',
      Principal: { AWS: 'arn:aws:iam::444455556666:root' },
      Action: 's3:GetObject',
      Resource: `arn:aws:s3:::${target.bucket}/*`,
    };
    const LOG_GRANT = {
      Grantee: { Type: 'Group' as const, URI: 'http://acs.amazonaws.com/groups/s3/LogDelivery' },
      Permission: 'WRITE' as const,
    };
    s3.on(GetPublicAccessBlockCommand).resolves({ PublicAccessBlockConfiguration: ALL_ON });
    s3.on(GetBucketAclCommand).resolves({ Owner: OWNER, Grants: [OWNER_GRANT, LOG_GRANT] });
    s3.on(GetBucketPolicyCommand).resolves({ Policy: policyOf(PARTNER) });
    s3.on(DeletePublicAccessBlockCommand).resolves({});
    s3.on(PutBucketAclCommand).resolves({});
    s3.on(PutBucketPolicyCommand).resolves({});
    // Act
    await action.rollback({ target, before: plan.before }, ctx);
    // Assess
    expect(s3).toReceiveCommandWith(PutBucketAclCommand, {
      Bucket: target.bucket,
      AccessControlPolicy: { Owner: OWNER, Grants: [OWNER_GRANT, PUBLIC_GRANT, LOG_GRANT] },
    });
    expect(s3).toReceiveCommandWith(PutBucketPolicyCommand, {
      Bucket: target.bucket,
      Policy: policyOf(PUBLIC_STATEMENT, PARTNER),
    });
  });

  /** The bucket as the fix leaves a {@link publicBucket}: all four flags on, no public grant or statement. */
  function fixedBucket(flags: Partial<typeof ALL_ON> = {}) {
    s3.on(GetPublicAccessBlockCommand).resolves({ PublicAccessBlockConfiguration: { ...ALL_ON, ...flags } });
    s3.on(GetBucketAclCommand).resolves({ Owner: OWNER, Grants: [OWNER_GRANT] });
    s3.on(GetBucketPolicyCommand).resolves({ Policy: policyOf(VPC_STATEMENT) });
  }

  it('restores the old flags, ACL and policy on rollback', async () => {
    // Prepare
    publicBucket();
    const ctx = testContext();
    const plan = await action.plan(target, ctx);
    fixedBucket();
    s3.on(DeletePublicAccessBlockCommand).resolves({ $metadata: { requestId: 'B1' } });
    s3.on(PutBucketAclCommand).resolves({ $metadata: { requestId: 'B2' } });
    s3.on(PutBucketPolicyCommand).resolves({ $metadata: { requestId: 'B3' } });
    // Act
    const result = await action.rollback({ target, before: plan.before }, ctx);
    // Assess
    expect(result.requestIds).toEqual(['B1', 'B2', 'B3']);
    expect(s3).toReceiveCommandWith(DeletePublicAccessBlockCommand, { Bucket: target.bucket });
    expect(s3).toReceiveCommandWith(PutBucketAclCommand, {
      Bucket: target.bucket,
      AccessControlPolicy: { Owner: OWNER, Grants: [OWNER_GRANT, PUBLIC_GRANT] },
    });
    expect(s3).toReceiveCommandWith(PutBucketPolicyCommand, {
      Bucket: target.bucket,
      Policy: policyOf(PUBLIC_STATEMENT, VPC_STATEMENT),
    });
  });

  it('on rollback leaves a flag turned off since the fix as it is, restores the others and names it', async () => {
    // Prepare: the bucket had two flags on; the fix turned all four on; then its owner turned BlockPublicPolicy
    // off (to attach a policy reviewed by hand). Writing the old flags back turned it on again unsaid.
    publicBucket();
    const OLD = {
      BlockPublicAcls: false,
      IgnorePublicAcls: false,
      BlockPublicPolicy: true,
      RestrictPublicBuckets: true,
    };
    s3.on(GetPublicAccessBlockCommand).resolves({ PublicAccessBlockConfiguration: OLD });
    const ctx = testContext();
    const plan = await action.plan(target, ctx);
    fixedBucket({ BlockPublicPolicy: false });
    s3.on(PutPublicAccessBlockCommand).resolves({ $metadata: { requestId: 'F1' } });
    s3.on(PutBucketAclCommand).resolves({ $metadata: { requestId: 'A1' } });
    s3.on(PutBucketPolicyCommand).resolves({ $metadata: { requestId: 'P1' } });
    // Act
    const result = await action.rollback({ target, before: plan.before }, ctx);
    // Assess: the two flags the fix turned on are off again, RestrictPublicBuckets stays on as it was,
    // BlockPublicPolicy keeps its owner's value, and the note says so.
    expect(
      s3.commandCalls(PutPublicAccessBlockCommand).map((c) => c.args[0].input.PublicAccessBlockConfiguration),
    ).toEqual([{ ...OLD, BlockPublicPolicy: false }]);
    expect(result.requestIds).toEqual(['F1', 'A1', 'P1']);
    expect(result.note).toBe(
      'Block Public Access flag(s) BlockPublicPolicy (now false) changed since the fix: left as they are, old values not restored',
    );
  });

  it('on rollback writes no flag back when every flag was changed since the fix, and says so', async () => {
    // Prepare: all four flags were on already (the fix removed a stale public grant only); since then an
    // admin took the configuration off the bucket. The old code lifted BlockPublicAcls for the grant and
    // then wrote all four flags back on over the admin's change.
    s3.on(GetPublicAccessBlockCommand).resolves({ PublicAccessBlockConfiguration: ALL_ON });
    s3.on(GetBucketAclCommand).resolves({ Owner: OWNER, Grants: [OWNER_GRANT, PUBLIC_GRANT] });
    s3.on(GetBucketPolicyCommand).rejects(awsError('NoSuchBucketPolicy', 404));
    s3.on(GetBucketTaggingCommand).resolves({ TagSet: [] });
    const ctx = testContext();
    const plan = await action.plan(target, ctx);
    s3.on(GetPublicAccessBlockCommand).rejects(awsError('NoSuchPublicAccessBlockConfiguration', 404));
    s3.on(GetBucketAclCommand).resolves({ Owner: OWNER, Grants: [OWNER_GRANT] });
    s3.on(PutBucketAclCommand).resolves({ $metadata: { requestId: 'A1' } });
    // Act
    const result = await action.rollback({ target, before: plan.before }, ctx);
    // Assess: only the grant the fix removed comes back.
    expect(s3.commandCalls(PutPublicAccessBlockCommand)).toHaveLength(0);
    expect(s3.commandCalls(DeletePublicAccessBlockCommand)).toHaveLength(0);
    expect(result.requestIds).toEqual(['A1']);
    expect(result.note).toContain('BlockPublicAcls (now false, no configuration)');
    expect(result.note).toContain('RestrictPublicBuckets (now false, no configuration)');
  });
});

describe('Action: s3.block-public-access target outside the aws partition', () => {
  it.each([
    ['arn:aws-us-gov:s3:::acme-gov-exports', 'us-gov-west-1'],
    ['arn:aws-cn:s3:::acme-cn-exports', 'cn-north-1'],
    ['arn:aws:s3:::acme-exports', 'us-east-1'],
  ])('acts on %s, a bucket whose finding names no region, in %s', (id, region) => {
    // Act
    const t = action.selectTarget(findingFor({ provider: 'aws', id, type: 'AwsS3Bucket', name: 'b', region: null }));
    // Assess: us-east-1 for every partition before (a GovCloud bucket's calls went to the aws partition)
    expect(t).toEqual({ bucket: id.split(':').pop(), region });
  });
});
