/**
 * Sets a long-term IAM access key (AKIA…) to Inactive. Never deletes it: an inactive key can be
 * re-activated by rollback, a deleted one cannot, and its id stays as evidence. Rollback re-activates it only
 * while it is still inactive; a key deleted since the fix is named in the rollback's note.
 *
 * @see https://docs.aws.amazon.com/IAM/latest/APIReference/API_UpdateAccessKey.html
 */
import type { IAMClient } from '@aws-sdk/client-iam';
import * as z from 'zod';
import { AdapterError, isGone } from '../core/errors.js';
import { awsSdk } from './clients.js';
import { type ActionContext, defineAction, type Plan } from './define.js';
import { applyPlanned, awsRequestId, call, changePlan, noopPlan, step } from './plan.js';

const TargetSchema = z.object({
  userName: z.string().min(1).max(128),
  // Only long-term keys can be deactivated; temporary (ASIA…) credentials are revoked per role instead.
  accessKeyId: z.string().regex(/^AKIA[A-Z0-9]{12,}$/),
});
type Target = z.infer<typeof TargetSchema>;

/** status null: the key no longer exists (deleted by its owner: nothing left to deactivate). */
const BeforeSchema = z.object({ status: z.enum(['Active', 'Inactive']).nullable() });
type Before = z.infer<typeof BeforeSchema>;

async function readStatus(iam: IAMClient, t: Target, ctx: ActionContext): Promise<Before> {
  const sdk = await awsSdk.iam();
  const out = await call(ctx, `iam:ListAccessKeys ${t.userName}`, () =>
    iam.send(new sdk.ListAccessKeysCommand({ UserName: t.userName })),
  );
  const key = (out.AccessKeyMetadata ?? []).find((k) => k.AccessKeyId === t.accessKeyId);
  return BeforeSchema.parse({ status: key?.Status ?? null });
}

async function plan(target: Target, ctx: ActionContext): Promise<Plan<Target, Before>> {
  const before = await readStatus(await ctx.clients.iam(), target, ctx);
  if (before.status === null) {
    return noopPlan(target, before, `access key ${target.accessKeyId} of ${target.userName} no longer exists`);
  }
  if (before.status === 'Inactive') {
    return noopPlan(target, before, `access key ${target.accessKeyId} of ${target.userName} is already inactive`);
  }
  const input = { UserName: target.userName, AccessKeyId: target.accessKeyId, Status: 'Inactive' };
  return changePlan(
    target,
    before,
    [
      step(
        `set access key ${target.accessKeyId} of ${target.userName} to Inactive`,
        'iam:UpdateAccessKey',
        'iam:UpdateAccessKey',
        input,
      ),
    ],
    `deactivate access key ${target.accessKeyId} of IAM user ${target.userName} (kept, not deleted)`,
  );
}

const UpdateInput = z.object({ UserName: z.string(), AccessKeyId: z.string(), Status: z.enum(['Active', 'Inactive']) });

export default defineAction<Target, Before>({
  id: 'iam.deactivate-access-key',
  title: 'Deactivate a long-term IAM access key (never deleted)',
  provider: 'aws',
  handles: {
    findingTypes: [
      'UnauthorizedAccess:IAMUser/MaliciousIPCaller',
      'UnauthorizedAccess:IAMUser/MaliciousIPCaller.Custom',
      'UnauthorizedAccess:IAMUser/TorIPCaller',
      'CredentialAccess:IAMUser/AnomalousBehavior',
    ],
    controls: ['IAM.3', 'IAM.8'],
  },
  permissions: ['iam:ListAccessKeys', 'iam:UpdateAccessKey'],
  // verify(): readStatus (ListAccessKeys).
  verifyPermissions: ['iam:ListAccessKeys'],
  risk: 'medium',
  // The workload using the key stops working; in production a person should know first.
  productionSafe: false,
  outline: [
    {
      say: 'set the access key to Inactive (never deleted)',
      api: 'iam:UpdateAccessKey',
      permission: 'iam:UpdateAccessKey',
    },
  ],
  target: TargetSchema,
  beforeSchema: BeforeSchema,
  selectTarget(f) {
    if (f.resource.provider !== 'aws') return undefined;
    const d = f.resource.details;
    const accessKeyId =
      (typeof d.accessKeyId === 'string' ? d.accessKeyId : undefined) ??
      f.actor?.accessKeyId ??
      f.resource.altIds.find((id) => id.startsWith('AKIA'));
    const userName =
      (typeof d.userName === 'string' ? d.userName : undefined) ??
      (f.actor?.userType === 'IAMUser' ? f.actor.userName : undefined) ??
      /^arn:aws[\w-]*:iam::\d{12}:user\/(?:.*\/)?([^/]+)$/.exec(f.resource.id)?.[1];
    const parsed = TargetSchema.safeParse({ userName, accessKeyId });
    return parsed.success ? parsed.data : undefined;
  },
  plan,
  apply: (p, ctx) =>
    applyPlanned(p, ctx, plan, async (s) => {
      const sdk = await awsSdk.iam();
      if (s.call.api !== 'iam:UpdateAccessKey') throw new AdapterError('invalid', `no step ${s.call.api}`);
      const input = UpdateInput.parse(s.call.input);
      const what = `iam:UpdateAccessKey ${input.AccessKeyId}`;
      return awsRequestId(
        await call(ctx, what, async () => (await ctx.clients.iam()).send(new sdk.UpdateAccessKeyCommand(input))),
        what,
      );
    }),
  async verify(target, ctx) {
    const observed = await readStatus(await ctx.clients.iam(), target, ctx);
    const holds = observed.status !== 'Active';
    return {
      holds,
      observed,
      reason: holds
        ? `access key ${target.accessKeyId} is ${observed.status === null ? 'gone' : 'inactive'}`
        : `access key ${target.accessKeyId} is still active`,
    };
  },
  async rollback({ target, before }, ctx) {
    const sdk = await awsSdk.iam();
    if (before.status !== 'Active') return { requestIds: [] };
    // The key as it is now: only a key still inactive, as the fix left it, is made active again. One its
    // owner deleted since (rotated), or whose user is gone, has nothing to restore (UpdateAccessKey failed the
    // rollback with NoSuchEntity); one active again already needs nothing.
    const iam = await ctx.clients.iam();
    let live: Before;
    try {
      live = await readStatus(iam, target, ctx);
    } catch (e) {
      if (!isGone(e)) throw e;
      live = { status: null };
    }
    if (live.status === 'Active') return { requestIds: [] };
    if (live.status === null) {
      const note = `access key ${target.accessKeyId} of ${target.userName} no longer exists (deleted since the fix): nothing restored`;
      ctx.log.warn(`iam.deactivate-access-key rollback: ${note}`, { userName: target.userName });
      return { requestIds: [], note };
    }
    const what = `iam:UpdateAccessKey ${target.accessKeyId}`;
    const input = { UserName: target.userName, AccessKeyId: target.accessKeyId, Status: 'Active' as const };
    const out = await call(ctx, what, () => iam.send(new sdk.UpdateAccessKeyCommand(input)));
    return { requestIds: [awsRequestId(out, what)] };
  },
});
