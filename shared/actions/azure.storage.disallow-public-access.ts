/**
 * Disallows anonymous blob access on an Azure storage account: `allowBlobPublicAccess = false` on the
 * account (ARM PATCH `properties.allowBlobPublicAccess`), and every container whose public access is
 * `blob` or `container` set to private (Set Container ACL without the public-access header, keeping its
 * stored access policies). The old account flag and per-container levels are the before-state. Rollback
 * puts them back where the fix's value is still live: a container whose level was changed since keeps it
 * (named in the rollback's note), one deleted since is skipped.
 *
 * @see https://learn.microsoft.com/azure/storage/blobs/anonymous-read-access-prevent
 * @see https://learn.microsoft.com/rest/api/storageservices/set-container-acl
 */
import * as z from 'zod';
import { AdapterError, isGone } from '../core/errors.js';
import { type ActionContext, defineAction, type Plan } from './define.js';
import { applyPlanned, call, changePlan, noopPlan, step } from './plan.js';

const ID = 'azure.storage.disallow-public-access';
const TargetSchema = z.object({
  subscriptionId: z.string().min(1),
  resourceGroup: z.string().min(1),
  accountName: z.string().regex(/^[a-z0-9]{3,24}$/),
});
type Target = z.infer<typeof TargetSchema>;

const AccessSchema = z.enum(['blob', 'container']);
const BeforeSchema = z.object({
  /** null: never set on the account (newer accounts default to disallowed). */
  allowBlobPublicAccess: z.boolean().nullable(),
  publicContainers: z.array(z.object({ name: z.string(), access: AccessSchema })),
});
type Before = z.infer<typeof BeforeSchema>;

const ACCOUNT_ID =
  /\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/Microsoft\.Storage\/storageAccounts\/([^/]+)/i;

async function readState(t: Target, ctx: ActionContext): Promise<Before> {
  const account = await call(ctx, `storageAccounts.getProperties ${t.accountName}`, async () =>
    (await ctx.clients.azureStorage(t.subscriptionId)).getProperties(t.resourceGroup, t.accountName),
  );
  const publicContainers: Before['publicContainers'] = [];
  await call(ctx, `listContainers ${t.accountName}`, async () => {
    publicContainers.length = 0;
    for await (const c of (await ctx.clients.azureBlob(t.accountName)).listContainers()) {
      const access = c.properties.publicAccess;
      if (access === 'blob' || access === 'container') publicContainers.push({ name: c.name, access });
    }
  });
  return { allowBlobPublicAccess: account.allowBlobPublicAccess ?? null, publicContainers };
}

async function plan(target: Target, ctx: ActionContext): Promise<Plan<Target, Before>> {
  const before = await readState(target, ctx);
  const steps = [];
  if (before.allowBlobPublicAccess !== false) {
    steps.push(
      step(
        `set allowBlobPublicAccess = false on storage account ${target.accountName}`,
        'storageAccounts.update',
        'Microsoft.Storage/storageAccounts/write',
        {
          resourceGroupName: target.resourceGroup,
          accountName: target.accountName,
          parameters: { allowBlobPublicAccess: false },
        },
      ),
    );
  }
  for (const c of before.publicContainers) {
    steps.push(
      step(
        `make container ${c.name} private (was public access "${c.access}")`,
        'containers.setAccessPolicy',
        'Microsoft.Storage/storageAccounts/blobServices/containers/setAcl/action',
        { accountName: target.accountName, containerName: c.name, access: null },
      ),
    );
  }
  if (steps.length === 0) return noopPlan(target, before, `${target.accountName} already disallows public blob access`);
  return changePlan(
    target,
    before,
    steps,
    `disallow public blob access on ${target.accountName}: ${steps.length} change(s)`,
  );
}

/** Sets a container's public level, keeping its stored access policies (Set Container ACL replaces both). */
async function setContainerAccess(
  t: Target,
  name: string,
  access: 'blob' | 'container' | undefined,
  ctx: ActionContext,
) {
  const container = (await ctx.clients.azureBlob(t.accountName)).getContainerClient(name);
  const what = `setAccessPolicy ${t.accountName}/${name}`;
  const current = await call(ctx, `getAccessPolicy ${t.accountName}/${name}`, () => container.getAccessPolicy());
  const out = await call(ctx, what, () => container.setAccessPolicy(access, current.signedIdentifiers));
  return out.requestId ?? `azure:${what}`;
}

/** The account's containers now, each with its public access level (null: private). */
async function containerLevels(t: Target, ctx: ActionContext): Promise<Map<string, 'blob' | 'container' | null>> {
  const levels = new Map<string, 'blob' | 'container' | null>();
  await call(ctx, `listContainers ${t.accountName}`, async () => {
    levels.clear();
    for await (const c of (await ctx.clients.azureBlob(t.accountName)).listContainers()) {
      const access = c.properties.publicAccess;
      levels.set(c.name, access === 'blob' || access === 'container' ? access : null);
    }
  });
  return levels;
}

const ContainerInput = z.object({ containerName: z.string() });

export default defineAction<Target, Before>({
  id: ID,
  title: 'Disallow anonymous blob access on an Azure storage account and make its containers private',
  provider: 'azure',
  handles: {
    findingTypes: ['Storage.Blob_OpenACL', 'Storage.Blob_AnonymousAccessAnomaly'],
    controls: ['4fa4b6c0-31ca-4c0d-b10d-24b96f62a751'],
  },
  // The container ACL calls go to the blob data plane under the identity's token: List Containers is
  // `containers/read`, Get and Set Container ACL are `containers/getAcl/action` and `setAcl/action`
  // (`containers/write` does not cover them).
  // https://learn.microsoft.com/rest/api/storageservices/authorize-with-azure-active-directory#permissions-for-blob-service-operations
  permissions: [
    'Microsoft.Storage/storageAccounts/read',
    'Microsoft.Storage/storageAccounts/write',
    'Microsoft.Storage/storageAccounts/blobServices/containers/read',
    'Microsoft.Storage/storageAccounts/blobServices/containers/getAcl/action',
    'Microsoft.Storage/storageAccounts/blobServices/containers/setAcl/action',
  ],
  // verify(): readState (storageAccounts.getProperties; List Containers is `containers/read`).
  verifyPermissions: [
    'Microsoft.Storage/storageAccounts/read',
    'Microsoft.Storage/storageAccounts/blobServices/containers/read',
  ],
  risk: 'medium',
  // Anything served anonymously from the account stops working.
  productionSafe: false,
  outline: [
    {
      say: 'set allowBlobPublicAccess = false on the storage account',
      api: 'storageAccounts.update',
      permission: 'Microsoft.Storage/storageAccounts/write',
    },
    {
      say: 'make every container with public access private',
      api: 'containers.setAccessPolicy',
      permission: 'Microsoft.Storage/storageAccounts/blobServices/containers/setAcl/action',
    },
  ],
  target: TargetSchema,
  beforeSchema: BeforeSchema,
  selectTarget(f) {
    if (f.resource.provider !== 'azure') return undefined;
    const m = ACCOUNT_ID.exec(f.resource.id);
    const d = f.resource.details;
    const parsed = TargetSchema.safeParse({
      subscriptionId: m?.[1] ?? f.resource.account,
      resourceGroup: typeof d.resourceGroup === 'string' ? d.resourceGroup : m?.[2],
      accountName: (typeof d.storageAccount === 'string' ? d.storageAccount : m?.[3])?.toLowerCase(),
    });
    return parsed.success ? parsed.data : undefined;
  },
  plan,
  apply: (p, ctx) =>
    applyPlanned(p, ctx, plan, async (s) => {
      const t = p.target;
      if (s.call.api === 'storageAccounts.update') {
        const what = `storageAccounts.update ${t.accountName}`;
        await call(ctx, what, async () =>
          (await ctx.clients.azureStorage(t.subscriptionId)).update(t.resourceGroup, t.accountName, {
            allowBlobPublicAccess: false,
          }),
        );
        return `azure:${what}`;
      }
      if (s.call.api === 'containers.setAccessPolicy') {
        return setContainerAccess(t, ContainerInput.parse(s.call.input).containerName, undefined, ctx);
      }
      throw new AdapterError('invalid', `${ID} has no step ${s.call.api}`);
    }),
  async verify(target, ctx) {
    const observed = await readState(target, ctx);
    const problems = [
      ...(observed.allowBlobPublicAccess === false ? [] : ['allowBlobPublicAccess is not false']),
      ...observed.publicContainers.map((c) => `container ${c.name} is public (${c.access})`),
    ];
    return {
      holds: problems.length === 0,
      observed,
      reason: problems.join('; ') || `${target.accountName} is private`,
    };
  },
  async rollback({ target, before }, ctx) {
    // The containers first, as they are now: one deleted since the fix has nothing to make public again, and
    // restoring it stopped the rollback part-way (the account reopened, the containers after it left private).
    // Only what the fix set is put back: a container still private. One whose level was changed since (its
    // owner chose `blob` over `container`) keeps it and is named in the note: writing the old level over it
    // undid that change unsaid. One already at its old level needs nothing.
    const levels = await containerLevels(target, ctx);
    const skipped = before.publicContainers.filter((c) => !levels.has(c.name)).map((c) => c.name);
    const changed: string[] = [];
    const restore = before.publicContainers.filter((c) => {
      const now = levels.get(c.name);
      if (now === undefined || now === c.access) return false;
      if (now !== null) changed.push(`${c.name} (now ${now})`);
      return now === null;
    });
    const ids: string[] = [];
    // Account flag before the containers: a container cannot be made public while the account disallows it,
    // and a failure between the two leaves the account allowing public access with no container public, no
    // more open than the before-state. An unset flag (null, older accounts) permits anonymous access as true
    // does; ARM cannot unset it again, so it is set to true only when public containers are to be restored,
    // the closest state that allows them (not for containers that are all gone). A flag allowing access now
    // (set so since the fix) is already what it was.
    const account = await call(ctx, `storageAccounts.getProperties ${target.accountName}`, async () =>
      (await ctx.clients.azureStorage(target.subscriptionId)).getProperties(target.resourceGroup, target.accountName),
    );
    const reopen =
      account.allowBlobPublicAccess === false &&
      (before.allowBlobPublicAccess === true || (before.allowBlobPublicAccess === null && restore.length > 0));
    if (reopen) {
      const what = `storageAccounts.update ${target.accountName}`;
      await call(ctx, what, async () =>
        (await ctx.clients.azureStorage(target.subscriptionId)).update(target.resourceGroup, target.accountName, {
          allowBlobPublicAccess: true,
        }),
      );
      ids.push(`azure:${what}`);
    }
    for (const c of restore) {
      try {
        ids.push(await setContainerAccess(target, c.name, c.access, ctx));
      } catch (e) {
        // Deleted between the listing and its turn: skipped as the others are.
        if (!isGone(e)) throw e;
        skipped.push(c.name);
      }
    }
    const notes = [
      ...(skipped.length > 0 ? [`container(s) ${skipped.join(', ')} no longer exist: skipped, not restored`] : []),
      ...(changed.length > 0
        ? [`container(s) ${changed.join('; ')} changed since the fix: left as they are, old level not restored`]
        : []),
    ];
    if (notes.length === 0) return { requestIds: ids };
    const note = notes.join('; ');
    ctx.log.warn(`${ID} rollback: ${note}`, { account: target.accountName });
    return { requestIds: ids, note };
  },
});
