import {
  GetBucketAclCommand,
  GetBucketPolicyCommand,
  GetBucketPolicyStatusCommand,
  GetBucketTaggingCommand,
  GetPublicAccessBlockCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import s3BlockPublicAccess from '../../shared/actions/s3.block-public-access.js';
import { MemoryEvidenceStore } from '../../shared/adapters/evidence/memory.js';
import { MemoryDocStore } from '../../shared/adapters/store/memory.js';
import { LocalUpstreamStatus } from '../../shared/adapters/upstream/local.js';
import { CaseSchema } from '../../shared/core/model/case.js';
import { silentLogger } from '../../shared/core/ports.js';
import { VerificationPolicySchema } from '../../shared/core/verify/policy.js';
import { createVerifyStage } from '../../shared/core/verify/stage.js';
import { awsError, testContext } from '../helpers/action-context.js';
import { CASE_KEY, fixedClock, makeCase, makeFinding, putCase, putFinding } from './helpers.js';

const s3 = mockClient(S3Client);
const ALL_ON = { BlockPublicAcls: true, IgnorePublicAcls: true, BlockPublicPolicy: true, RestrictPublicBuckets: true };
const OWNER = { ID: '0'.repeat(64), DisplayName: 'acme' };

describe('verify stage with the real s3.block-public-access verify', () => {
  let store: MemoryDocStore;
  let evidence: MemoryEvidenceStore;

  beforeEach(async () => {
    s3.reset();
    store = new MemoryDocStore();
    evidence = new MemoryEvidenceStore();
    s3.on(GetBucketAclCommand).resolves({ Owner: OWNER, Grants: [] });
    s3.on(GetBucketPolicyCommand).rejects(awsError('NoSuchBucketPolicy', 404));
    s3.on(GetBucketTaggingCommand).rejects(awsError('NoSuchTagSet', 404));
    s3.on(GetBucketPolicyStatusCommand).rejects(awsError('NoSuchBucketPolicy', 404));
    await putFinding(store, makeFinding());
    await putCase(
      store,
      makeCase({
        status: 'remediated',
        remediation: {
          state: 'applied',
          appliedAt: '2026-11-20T09:59:00.000Z',
          target: { bucket: 'acme-marketing-exports', region: 'us-east-1' },
        },
      }),
    );
  });

  const run = () =>
    createVerifyStage({
      store,
      evidence,
      actions: { get: (id) => (id === s3BlockPublicAccess.id ? s3BlockPublicAccess : undefined) },
      ctx: testContext(),
      upstream: new LocalUpstreamStatus(),
      clock: fixedClock(),
      log: silentLogger,
      policy: VerificationPolicySchema.parse({ attempts: 2, backoffMs: 1 }),
    }).handle({
      id: 'r-1',
      type: 'case.remediation',
      caseKey: CASE_KEY,
      at: '2026-11-20T09:59:00.000Z',
      state: 'applied',
      actor: 'closeloop:remediate',
    });
  const readCase = async () => CaseSchema.parse((await store.get('cases', CASE_KEY))?.value);

  it('verifies when all four flags are on, the policy is not public and no public grant remains', async () => {
    // Prepare
    s3.on(GetPublicAccessBlockCommand).resolves({ PublicAccessBlockConfiguration: ALL_ON });
    // Act
    const events = await run();
    // Assess
    expect(s3).toHaveReceivedCommandWith(GetPublicAccessBlockCommand, { Bucket: 'acme-marketing-exports' });
    expect((await readCase()).verification).toMatchObject({
      verdict: 'verified',
      observed: { publicAccessBlock: ALL_ON, policyPublic: false, publicGrants: 0 },
    });
    expect(events[0]).toMatchObject({ type: 'case.verified', verdict: 'verified' });
  });

  it('fails with the observed flags when Block Public Access is still off', async () => {
    // Prepare
    s3.on(GetPublicAccessBlockCommand).rejects(awsError('NoSuchPublicAccessBlockConfiguration', 404));
    s3.on(GetBucketAclCommand).resolves({
      Owner: OWNER,
      Grants: [
        { Grantee: { Type: 'Group', URI: 'http://acs.amazonaws.com/groups/global/AllUsers' }, Permission: 'READ' },
      ],
    });
    // Act
    await run();
    // Assess
    const c = await readCase();
    expect(c.status).toBe('failed');
    expect(c.verification).toMatchObject({
      verdict: 'failed',
      attempts: 2,
      observed: { publicAccessBlock: null, publicGrants: 1 },
    });
    expect(c.verification?.reason).toContain(
      'not all four Block Public Access flags are on; 1 public ACL grant(s) remain',
    );
  });
});
