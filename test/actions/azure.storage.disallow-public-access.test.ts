import type { StorageAccount, StorageAccountUpdateParameters } from '@azure/arm-storage';
import { BlobServiceClient } from '@azure/storage-blob';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import action from '../../shared/actions/azure.storage.disallow-public-access.js';
import type { AzureStorageAccounts } from '../../shared/actions/clients.js';
import { isDenied } from '../../shared/core/errors.js';
import { findingFor, testContext } from '../helpers/action-context.js';
import { AZURITE_ACCOUNT, type Azurite, startAzurite } from '../helpers/azurite.js';

const SUB = '00000000-0000-0000-0000-000000000000';
const target = { subscriptionId: SUB, resourceGroup: 'rg-data', accountName: AZURITE_ACCOUNT };

/** ARM stub: records update calls with their documented parameters and holds the account flag. */
function armStub(initial: boolean | undefined, fail?: Error) {
  const state = { allowBlobPublicAccess: initial };
  const updates: Array<{ resourceGroup: string; account: string; parameters: StorageAccountUpdateParameters }> = [];
  const stub: AzureStorageAccounts = {
    async getProperties(): Promise<StorageAccount> {
      if (fail) throw fail;
      return {
        location: 'westeurope',
        ...(state.allowBlobPublicAccess === undefined ? {} : { allowBlobPublicAccess: state.allowBlobPublicAccess }),
      };
    },
    async update(resourceGroup, account, parameters): Promise<StorageAccount> {
      updates.push({ resourceGroup, account, parameters });
      if (parameters.allowBlobPublicAccess !== undefined)
        state.allowBlobPublicAccess = parameters.allowBlobPublicAccess;
      return { location: 'westeurope' };
    },
  };
  return { stub, updates, state };
}

describe('Action: azure.storage.disallow-public-access', () => {
  let azurite: Azurite;
  let blob: BlobServiceClient;
  let n = 0;
  let container: string;

  beforeAll(async () => {
    azurite = await startAzurite();
    blob = new BlobServiceClient(azurite.url, azurite.credential);
  });
  afterAll(async () => azurite?.stop());
  beforeEach(async () => {
    // Azurite keeps state for the file: each test gets its own container and deletes the others.
    for await (const c of blob.listContainers()) await blob.deleteContainer(c.name);
    container = `public-${++n}`;
    const c = blob.getContainerClient(container);
    await c.create({ access: 'blob' });
    await c.getBlockBlobClient('report.csv').upload('a,b\n1,2\n', 8);
  });

  const ctxWith = (arm: AzureStorageAccounts) =>
    testContext({
      clients: { azureStorage: () => arm },
      cloud: { azure: { blobUrl: () => azurite.url, blobCredential: () => azurite.credential } },
    });
  const anonymousGet = () => fetch(`${azurite.url}/${container}/report.csv`);

  it('makes a public container unreadable anonymously and sets allowBlobPublicAccess false', async () => {
    // Prepare
    const arm = armStub(true);
    const ctx = ctxWith(arm.stub);
    expect((await anonymousGet()).status).toBe(200);
    // Act
    const plan = await action.plan(target, ctx);
    const result = await action.apply(plan, ctx);
    // Assess
    expect(plan.steps.map((s) => s.call.api)).toEqual(['storageAccounts.update', 'containers.setAccessPolicy']);
    expect(arm.updates).toEqual([
      { resourceGroup: 'rg-data', account: AZURITE_ACCOUNT, parameters: { allowBlobPublicAccess: false } },
    ]);
    expect((await anonymousGet()).status).toBe(403);
    expect(result.before).toEqual({
      allowBlobPublicAccess: true,
      publicContainers: [{ name: container, access: 'blob' }],
    });
    expect(result.requestIds).toHaveLength(2);
    expect((await action.verify(target, ctx)).holds).toBe(true);
  });

  it('plans a no-op when the account disallows public access and no container is public', async () => {
    // Prepare
    await blob.getContainerClient(container).setAccessPolicy();
    // Act
    const plan = await action.plan(target, ctxWith(armStub(false).stub));
    // Assess
    expect(plan.noop).toBe(true);
  });

  it('restores the container level and the account flag on rollback', async () => {
    // Prepare
    const arm = armStub(true);
    const ctx = ctxWith(arm.stub);
    const { before } = await action.apply(await action.plan(target, ctx), ctx);
    // Act
    await action.rollback({ target, before }, ctx);
    // Assess
    expect(arm.state.allowBlobPublicAccess).toBe(true);
    expect((await anonymousGet()).status).toBe(200);
  });

  it('allows public access again on rollback when the flag was never set and containers were public', async () => {
    // Prepare: an older account (no allowBlobPublicAccess: anonymous access permitted) with a public container.
    const arm = armStub(undefined);
    const ctx = ctxWith(arm.stub);
    const { before } = await action.apply(await action.plan(target, ctx), ctx);
    // Act
    await action.rollback({ target, before }, ctx);
    // Assess: without the flag, ARM would refuse the container's public level (PublicAccessNotPermitted).
    expect(before.allowBlobPublicAccess).toBeNull();
    expect(arm.updates.map((u) => u.parameters)).toEqual([
      { allowBlobPublicAccess: false },
      { allowBlobPublicAccess: true },
    ]);
    expect((await anonymousGet()).status).toBe(200);
  });

  it('skips a container deleted since the fix on rollback, restores the others and says which', async () => {
    // Prepare: a second public container, listed first, is deleted after the fix.
    const gone = `a-gone-${n}`;
    await blob.getContainerClient(gone).create({ access: 'container' });
    const arm = armStub(true);
    const ctx = ctxWith(arm.stub);
    const { before } = await action.apply(await action.plan(target, ctx), ctx);
    await blob.deleteContainer(gone);
    // Act
    const result = await action.rollback({ target, before }, ctx);
    // Assess
    expect(before.publicContainers.map((c) => c.name)).toEqual([gone, container]);
    expect(result.note).toContain(gone);
    expect(arm.state.allowBlobPublicAccess).toBe(true);
    expect((await anonymousGet()).status).toBe(200);
  });

  it('on rollback leaves a container whose level was changed since the fix as it is, restores the others and names it', async () => {
    // Prepare: two containers public at `blob` level; after the fix the owner opens this one at
    // `container` level (listing too) by hand. Writing the old level over it narrowed it back unsaid.
    const other = `b-other-${n}`;
    await blob.getContainerClient(other).create({ access: 'blob' });
    const arm = armStub(true);
    const ctx = ctxWith(arm.stub);
    const { before } = await action.apply(await action.plan(target, ctx), ctx);
    await blob.getContainerClient(container).setAccessPolicy('container');
    // Act
    const result = await action.rollback({ target, before }, ctx);
    // Assess
    const level = async (name: string) => (await blob.getContainerClient(name).getAccessPolicy()).blobPublicAccess;
    expect(before.publicContainers).toEqual([
      { name: other, access: 'blob' },
      { name: container, access: 'blob' },
    ]);
    expect(await level(container)).toBe('container');
    expect(await level(other)).toBe('blob');
    expect(arm.state.allowBlobPublicAccess).toBe(true);
    expect(result.requestIds).toHaveLength(2);
    expect(result.note).toBe(
      `container(s) ${container} (now container) changed since the fix: left as they are, old level not restored`,
    );
  });

  it('on rollback writes nothing when the account and every container were opened again since the fix, and says so', async () => {
    // Prepare: after the fix the owner allowed public access again and chose `container` level by hand.
    const arm = armStub(true);
    const ctx = ctxWith(arm.stub);
    const { before } = await action.apply(await action.plan(target, ctx), ctx);
    arm.state.allowBlobPublicAccess = true;
    await blob.getContainerClient(container).setAccessPolicy('container');
    // Act
    const result = await action.rollback({ target, before }, ctx);
    // Assess
    expect(result).toEqual({ requestIds: [], note: expect.stringContaining(`${container} (now container)`) });
    expect(arm.updates.map((u) => u.parameters)).toEqual([{ allowBlobPublicAccess: false }]);
    expect((await blob.getContainerClient(container).getAccessPolicy()).blobPublicAccess).toBe('container');
  });

  it('does not open an account whose flag was never set when every container to restore is gone', async () => {
    // Prepare
    const arm = armStub(undefined);
    const ctx = ctxWith(arm.stub);
    const { before } = await action.apply(await action.plan(target, ctx), ctx);
    await blob.deleteContainer(container);
    // Act
    const result = await action.rollback({ target, before }, ctx);
    // Assess: the fixed state stands; nothing is left to make public.
    expect(result).toEqual({ requestIds: [], note: expect.stringContaining(container) });
    expect(arm.updates.map((u) => u.parameters)).toEqual([{ allowBlobPublicAccess: false }]);
    expect(arm.state.allowBlobPublicAccess).toBe(false);
  });

  it('declares the data-plane rights its container calls need, and names them on the container steps', async () => {
    // Prepare: Get/Set Container ACL under an Entra token need containers/getAcl and setAcl (containers/write
    // does not cover them): without them the spoke's custom role could never make a container private.
    const ctx = ctxWith(armStub(true).stub);
    // Act
    const plan = await action.plan(target, ctx);
    // Assess
    expect(action.permissions).toEqual(
      expect.arrayContaining([
        'Microsoft.Storage/storageAccounts/blobServices/containers/read',
        'Microsoft.Storage/storageAccounts/blobServices/containers/getAcl/action',
        'Microsoft.Storage/storageAccounts/blobServices/containers/setAcl/action',
      ]),
    );
    expect(action.permissions).not.toContain('Microsoft.Storage/storageAccounts/blobServices/containers/write');
    expect(
      plan.steps.filter((st) => st.call.api === 'containers.setAccessPolicy').map((st) => st.call.permission),
    ).toEqual(['Microsoft.Storage/storageAccounts/blobServices/containers/setAcl/action']);
  });

  it('throws denied when ARM answers 403 AuthorizationFailed', async () => {
    // Prepare
    const denied = Object.assign(new Error('no'), { name: 'RestError', code: 'AuthorizationFailed', statusCode: 403 });
    // Act / Assess
    await expect(action.plan(target, ctxWith(armStub(true, denied).stub))).rejects.toSatisfy(isDenied);
  });

  it('selects the account from a Defender resource id', () => {
    // Prepare / Act
    const t = action.selectTarget(
      findingFor({
        provider: 'azure',
        id: `/subscriptions/${SUB}/resourceGroups/rg-data/providers/Microsoft.Storage/storageAccounts/acmedata`,
        type: 'Microsoft.Storage/storageAccounts',
        name: 'acmedata',
        account: SUB,
      }),
    );
    // Assess
    expect(t).toEqual({ subscriptionId: SUB, resourceGroup: 'rg-data', accountName: 'acmedata' });
  });
});
