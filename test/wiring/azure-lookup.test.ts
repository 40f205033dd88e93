/**
 * The Azure lookups the wiring builds: the pre-apply re-check reads resource group and subscription tags fresh;
 * enrichment may share them.
 */
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { liveOwnerLookup } from '../../shared/adapters/wiring/lookup.js';
import type { ResourceRef } from '../../shared/core/ports.js';
import { readSkipTag } from '../../shared/core/remediation/gates.js';

// The resource group's and subscription's tags as ARM answers them now (the resources have none of their own);
// each test sets them.
const arm = vi.hoisted(() => ({
  groupTags: {} as Record<string, string>,
  groupReads: 0,
  subscriptionTags: {} as Record<string, string>,
  subscriptionReads: 0,
}));
const SUBSCRIPTION = '/subscriptions/9d2e5f1a-3b4c-4d5e-8f6a-7b8c9d0e1f2a';
const GROUP = `${SUBSCRIPTION}/resourceGroups/rg-payments-prod`;
vi.mock('@azure/identity', () => ({ DefaultAzureCredential: class {} }));
vi.mock('@azure/arm-resources', () => ({
  ResourceManagementClient: class {
    tagsOperations = {
      getAtScope: async (scope: string) => {
        if (`/${scope}` === SUBSCRIPTION) {
          arm.subscriptionReads++;
          return { properties: { tags: { ...arm.subscriptionTags } } };
        }
        if (`/${scope}` !== GROUP) return { properties: { tags: {} } };
        arm.groupReads++;
        return { properties: { tags: { ...arm.groupTags } } };
      },
    };
  },
}));

const ACCOUNT: ResourceRef = {
  provider: 'azure',
  id: `${GROUP}/providers/Microsoft.Storage/storageAccounts/stpayledger01`,
  account: '9d2e5f1a-3b4c-4d5e-8f6a-7b8c9d0e1f2a',
  region: 'westeurope',
};

describe('Azure resource group and subscription tags in the wired lookups', () => {
  beforeEach(() => {
    arm.groupTags = { owner: 'alice@acme.example' };
    arm.groupReads = 0;
    arm.subscriptionTags = { env: 'prod' };
    arm.subscriptionReads = 0;
  });

  it.each([
    {
      level: 'resource group',
      tag: () => {
        // a person stops fixes in the group
        arm.groupTags = { owner: 'alice@acme.example', 'closeloop:skip': 'quarter-end freeze' };
      },
      reads: () => arm.groupReads,
    },
    {
      level: 'subscription',
      tag: () => {
        // a person stops fixes in the whole subscription
        arm.subscriptionTags = { env: 'prod', 'closeloop:skip': 'tenant migration' };
      },
      reads: () => arm.subscriptionReads,
    },
  ])('the pre-apply re-check sees a skip tag added to the $level after a first read', async ({ tag, reads }) => {
    // Prepare
    const recheck = liveOwnerLookup(['azure'], { fresh: true });
    const before = await readSkipTag(recheck, ACCOUNT, 'closeloop:skip');
    // Act
    tag();
    const after = await readSkipTag(recheck, ACCOUNT, 'closeloop:skip');
    // Assess
    expect(before?.gate.outcome).toBe('pass');
    expect(after?.gate).toEqual({
      gate: 'skip-tag',
      outcome: 'block',
      reason: 'resource carries the skip tag `closeloop:skip` now',
    });
    expect(reads()).toBe(2);
  });

  it("enrichment's lookup shares the group's and the subscription's tags across reads", async () => {
    // Prepare
    const enrichment = liveOwnerLookup(['azure']);
    await enrichment.tagsFor(ACCOUNT);
    // Act
    arm.groupTags = { owner: 'alice@acme.example', 'closeloop:skip': 'true' };
    arm.subscriptionTags = { env: 'dev' };
    const again = await enrichment.tagsFor(ACCOUNT);
    // Assess
    expect(again).toEqual({ owner: 'alice@acme.example', env: 'prod' });
    expect(arm.groupReads).toBe(1);
    expect(arm.subscriptionReads).toBe(1);
  });
});
