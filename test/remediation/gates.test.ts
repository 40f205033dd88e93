import { describe, expect, it } from 'vitest';
import { MemoryDocStore } from '../../shared/adapters/store/memory.js';
import { BUDGET_COLLECTION, policyGates, reserveBudget } from '../../shared/core/remediation/gates.js';
import { ApplyPolicySchema } from '../../shared/core/remediation/policy.js';
import { decidedCase, findingFor } from '../helpers/action-context.js';
import { movableClock } from '../helpers/docstore-contract.js';

/** A case about a Cloud Storage bucket, its id in closeloop's spelling (as the SCC normalizer writes it). */
const bucketCase = (name: string) =>
  decidedCase(
    findingFor({
      provider: 'gcp',
      id: `//storage.googleapis.com/${name}`,
      type: 'google.cloud.storage.Bucket',
      name,
      account: 'acme-prod',
    }),
    { action: 'gcs.remove-public-access' },
  );

describe('apply-time policy gates', () => {
  it.each([
    ['//storage.googleapis.com/projects/_/buckets/acme-audit-logs'],
    ['//storage.googleapis.com/projects/_/buckets/acme-audit-*'],
    ['//storage.googleapis.com/acme-audit-*'],
  ])('blocks a bucket on apply.resources.deny written as %s, however the finding spelled it', (pattern) => {
    // Prepare
    const policy = ApplyPolicySchema.parse({ resources: { deny: [pattern] } });
    // Act
    const gates = policyGates(bucketCase('acme-audit-logs'), { productionSafe: false }, policy, false);
    // Assess
    expect(gates.find((g) => g.gate === 'denylist')).toMatchObject({ outcome: 'block' });
  });

  it('lets a bucket the deny list does not name through, and matches ARNs without case', () => {
    // Prepare
    const policy = ApplyPolicySchema.parse({
      resources: { deny: ['//storage.googleapis.com/projects/_/buckets/acme-audit-*', 'ARN:AWS:S3:::ACME-*'] },
    });
    const s3 = decidedCase(
      findingFor({ provider: 'aws', id: 'arn:aws:s3:::acme-exports', type: 'AwsS3Bucket', name: 'acme-exports' }),
      { action: 's3.block-public-access' },
    );
    // Act
    const gcs = policyGates(bucketCase('acme-exports'), { productionSafe: false }, policy, false);
    const aws = policyGates(s3, { productionSafe: false }, policy, false);
    // Assess
    expect(gcs.find((g) => g.gate === 'resources')).toMatchObject({ outcome: 'pass' });
    expect(aws.find((g) => g.gate === 'denylist')).toMatchObject({ outcome: 'block' });
  });

  it("knows a GCP project on apply.accounts by its number as well as by its id, as decide's denylist and exceptions do", () => {
    // Prepare: the SCC finding names project acme-prod, number 318274659012 (finding-formats: resource.project).
    const c = { ...bucketCase('acme-exports'), accountNumber: '318274659012' };
    const deny = ApplyPolicySchema.parse({ accounts: { deny: ['318274659012'] } });
    const allow = ApplyPolicySchema.parse({ accounts: { allow: ['318274659012'] } });
    // Act
    const denied = policyGates(c, { productionSafe: false }, deny, false);
    const allowed = policyGates(c, { productionSafe: false }, allow, false);
    // Assess
    expect(denied.find((g) => g.gate === 'denylist')).toMatchObject({ outcome: 'block' });
    expect(allowed.find((g) => g.gate === 'accounts')).toMatchObject({ outcome: 'pass' });
    expect(allowed.some((g) => g.outcome === 'block')).toBe(false);
  });
});

describe('the apply budget', () => {
  it("lets an account's budget document expire an hour after its newest slot left the window, instead of keeping it forever", async () => {
    // Prepare
    const clock = movableClock('2026-11-18T10:20:00.000Z');
    const store = new MemoryDocStore({ clock });
    const policy = ApplyPolicySchema.parse({ budget: { perAccountPerHour: 1 } });
    const [a, b] = ['a', 'b'].map((name) => bucketCase(`acme-${name}`));
    if (!a || !b) throw new Error('setup');
    // Act
    const first = await reserveBudget(store, a, policy, clock.now());
    const second = await reserveBudget(store, b, policy, clock.now());
    clock.advance(2 * 3_600_000 - 60_000); // 12:19: the slot left the window at 11:20; the document is kept
    const kept = await store.list(BUDGET_COLLECTION);
    clock.advance(60_000);
    // Assess
    expect([first.ok, second.ok]).toEqual([true, false]);
    expect(kept).toHaveLength(1);
    expect(await store.list(BUDGET_COLLECTION)).toEqual([]);
  });
});
