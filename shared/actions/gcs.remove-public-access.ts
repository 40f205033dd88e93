/**
 * Removes public access from a Cloud Storage bucket: the `allUsers` / `allAuthenticatedUsers` members
 * are dropped from the bucket IAM policy (setIamPolicy with the read etag, so a concurrent change is
 * refused rather than overwritten) and `iamConfiguration.publicAccessPrevention` is set to `enforced`.
 * The old bindings and prevention setting are the before-state; rollback restores the prevention setting while
 * it is still `enforced` and adds the removed public members back to the live policy (a change made since the
 * fix is kept).
 *
 * @see https://cloud.google.com/storage/docs/public-access-prevention
 * @see SRA cloudfunctions/gcs/closebucket
 */
import type { Iam } from '@google-cloud/storage';
import * as z from 'zod';
import { AdapterError } from '../core/errors.js';
import { canonicalJson } from '../core/util/hash.js';
import { type ActionContext, defineAction, type Plan } from './define.js';
import { applyPlanned, call, changePlan, noopPlan, step } from './plan.js';

const ID = 'gcs.remove-public-access';
const PUBLIC = new Set(['allUsers', 'allAuthenticatedUsers']);

const TargetSchema = z.object({ bucket: z.string().regex(/^[a-z0-9][a-z0-9._-]{1,221}[a-z0-9]$/) });
type Target = z.infer<typeof TargetSchema>;

const BindingSchema = z.object({
  role: z.string(),
  members: z.array(z.string()),
  condition: z.object({ title: z.string(), expression: z.string(), description: z.string().optional() }).optional(),
});
const BeforeSchema = z.object({
  bindings: z.array(BindingSchema),
  etag: z.string().nullable(),
  version: z.number().int().nullable(),
  /** `inherited`, `enforced`, or null when the bucket does not say. */
  publicAccessPrevention: z.string().nullable(),
});
type Before = z.infer<typeof BeforeSchema>;

async function readState(t: Target, ctx: ActionContext): Promise<Before> {
  const bucket = (await ctx.clients.gcsStorage()).bucket(t.bucket);
  // Version 3 so conditional bindings are returned (and written back) intact.
  const [policy] = await call(ctx, `storage.buckets.getIamPolicy ${t.bucket}`, () =>
    bucket.iam.getPolicy({ requestedPolicyVersion: 3 }),
  );
  const [metadata] = await call(ctx, `storage.buckets.get ${t.bucket}`, () => bucket.getMetadata());
  return BeforeSchema.parse({
    bindings: (policy.bindings ?? []).map((b) => ({
      role: b.role,
      members: b.members ?? [],
      ...(b.condition ? { condition: b.condition } : {}),
    })),
    etag: typeof policy.etag === 'string' ? policy.etag : null,
    version: policy.version ?? null,
    publicAccessPrevention: metadata.iamConfiguration?.publicAccessPrevention ?? null,
  });
}

/** A prevention setting as compared: `unspecified` (older buckets) and unset mean `inherited`. */
const setting = (value: string | null) => (value === null || value === 'unspecified' ? 'inherited' : value);

const withoutPublic = (bindings: Before['bindings']) =>
  bindings.map((b) => ({ ...b, members: b.members.filter((m) => !PUBLIC.has(m)) })).filter((b) => b.members.length > 0);
const publicMembers = (bindings: Before['bindings']) =>
  bindings.flatMap((b) => b.members.filter((m) => PUBLIC.has(m)).map((m) => `${m} (${b.role})`));

const bindingKey = (b: Before['bindings'][number]) => `${b.role}|${canonicalJson(b.condition ?? null)}`;

/**
 * The live bindings with the public members `before` had put back, each into its own role (and condition):
 * what the fix removed comes back, and only that. A member granted or revoked since the fix stays as it is
 * now (writing the whole old policy back would re-grant a revoked member and drop a newer grant). Bindings
 * are kept in the old order, so a policy untouched since the fix is restored exactly; newer ones follow.
 */
function withPublicRestored(current: Before['bindings'], before: Before['bindings']): Before['bindings'] {
  const unused = current.map((b, i) => ({ b, i }));
  const taken = new Set<number>();
  const out: Before['bindings'] = [];
  for (const old of before) {
    const pub = old.members.filter((m) => PUBLIC.has(m));
    const match = unused.find(({ b, i }) => !taken.has(i) && bindingKey(b) === bindingKey(old));
    if (!match) {
      if (pub.length > 0) out.push({ ...old, members: pub });
      continue;
    }
    taken.add(match.i);
    const now = match.b.members;
    const members = [
      ...old.members.filter((m) => PUBLIC.has(m) || now.includes(m)),
      ...now.filter((m) => !old.members.includes(m)),
    ];
    out.push({ ...match.b, members });
  }
  for (const { b, i } of unused) if (!taken.has(i)) out.push(b);
  return out;
}

async function plan(target: Target, ctx: ActionContext): Promise<Plan<Target, Before>> {
  const before = await readState(target, ctx);
  const steps = [];
  const members = publicMembers(before.bindings);
  if (members.length > 0) {
    steps.push(
      step(
        `remove ${members.join(', ')} from the IAM policy of gs://${target.bucket}`,
        'storage.buckets.setIamPolicy',
        'storage.buckets.setIamPolicy',
        {
          bucket: target.bucket,
          policy: { bindings: withoutPublic(before.bindings), etag: before.etag, version: 3 },
        },
      ),
    );
  }
  if (before.publicAccessPrevention !== 'enforced') {
    steps.push(
      step(
        `enforce public access prevention on gs://${target.bucket}`,
        'storage.buckets.patch',
        'storage.buckets.update',
        {
          bucket: target.bucket,
          metadata: { iamConfiguration: { publicAccessPrevention: 'enforced' } },
        },
      ),
    );
  }
  if (steps.length === 0)
    return noopPlan(target, before, `gs://${target.bucket} is not public and prevention is enforced`);
  return changePlan(target, before, steps, `remove public access from gs://${target.bucket}`);
}

const SetPolicyInput = z.object({
  policy: z.object({ bindings: z.array(BindingSchema), etag: z.string().nullable(), version: z.number() }),
});

/** The SDK's binding shape (exact optional members: absent, never undefined). */
type PolicyBinding = NonNullable<Parameters<Iam['setPolicy']>[0]['bindings']>[number];
const toBinding = (b: z.infer<typeof BindingSchema>): PolicyBinding => ({
  role: b.role,
  members: b.members,
  ...(b.condition
    ? {
        condition: {
          expression: b.condition.expression,
          title: b.condition.title,
          ...(b.condition.description !== undefined ? { description: b.condition.description } : {}),
        },
      }
    : {}),
});

async function setPolicy(t: Target, p: z.infer<typeof SetPolicyInput>['policy'], ctx: ActionContext): Promise<string> {
  const what = `storage.buckets.setIamPolicy ${t.bucket}`;
  const [out] = await call(ctx, what, async () =>
    (await ctx.clients.gcsStorage())
      .bucket(t.bucket)
      .iam.setPolicy({ bindings: p.bindings.map(toBinding), version: p.version, ...(p.etag ? { etag: p.etag } : {}) }),
  );
  return `gcp:${what}@${typeof out.etag === 'string' ? out.etag : 'no-etag'}`;
}

async function setPrevention(t: Target, value: string, ctx: ActionContext): Promise<string> {
  const what = `storage.buckets.patch ${t.bucket}`;
  const [out] = await call(ctx, what, async () =>
    (await ctx.clients.gcsStorage())
      .bucket(t.bucket)
      .setMetadata({ iamConfiguration: { publicAccessPrevention: value } }),
  );
  return `gcp:${what}@${out.metageneration ?? 'unknown'}`;
}

export default defineAction<Target, Before>({
  id: ID,
  title: 'Remove allUsers/allAuthenticatedUsers from a GCS bucket and enforce public access prevention',
  provider: 'gcp',
  handles: { categories: ['PUBLIC_BUCKET_ACL'] },
  permissions: [
    'storage.buckets.get',
    'storage.buckets.getIamPolicy',
    'storage.buckets.setIamPolicy',
    'storage.buckets.update',
  ],
  // verify(): readState (buckets.getIamPolicy, buckets.get for the metadata).
  verifyPermissions: ['storage.buckets.get', 'storage.buckets.getIamPolicy'],
  risk: 'medium',
  productionSafe: false,
  outline: [
    {
      say: "remove allUsers/allAuthenticatedUsers from the bucket's IAM policy",
      api: 'storage.buckets.setIamPolicy',
      permission: 'storage.buckets.setIamPolicy',
    },
    {
      say: 'enforce public access prevention on the bucket',
      api: 'storage.buckets.patch',
      permission: 'storage.buckets.update',
    },
  ],
  target: TargetSchema,
  beforeSchema: BeforeSchema,
  selectTarget(f) {
    if (f.resource.provider !== 'gcp') return undefined;
    const d = f.resource.details.bucket;
    const m = /^\/\/storage\.googleapis\.com\/(?:projects\/_\/buckets\/)?([^/]+)$/.exec(f.resource.id);
    const parsed = TargetSchema.safeParse({ bucket: typeof d === 'string' ? d : m?.[1] });
    return parsed.success ? parsed.data : undefined;
  },
  plan,
  apply: (p, ctx) =>
    applyPlanned(p, ctx, plan, async (s) => {
      if (s.call.api === 'storage.buckets.setIamPolicy')
        return setPolicy(p.target, SetPolicyInput.parse(s.call.input).policy, ctx);
      if (s.call.api === 'storage.buckets.patch') return setPrevention(p.target, 'enforced', ctx);
      throw new AdapterError('invalid', `${ID} has no step ${s.call.api}`);
    }),
  async verify(target, ctx) {
    const observed = await readState(target, ctx);
    const members = publicMembers(observed.bindings);
    const problems = [
      ...(members.length ? [`public members remain: ${members.join(', ')}`] : []),
      ...(observed.publicAccessPrevention === 'enforced' ? [] : ['public access prevention is not enforced']),
    ];
    return {
      holds: problems.length === 0,
      observed,
      reason: problems.join('; ') || `gs://${target.bucket} is private`,
    };
  },
  async rollback({ target, before }, ctx) {
    const ids: string[] = [];
    // The prevention setting goes back only while it is still `enforced`, as the fix left it: one lifted
    // since already is what it was, and one set to anything else since is left and named (writing the old
    // value over it undid that change). `unspecified` is the older name of `inherited`.
    const was = setting(before.publicAccessPrevention);
    let current = await readState(target, ctx);
    const now = setting(current.publicAccessPrevention);
    const changed: string[] = [];
    if (was !== 'enforced' && now === 'enforced') {
      ids.push(await setPrevention(target, before.publicAccessPrevention ?? 'inherited', ctx));
      // Re-read for the policy's etag after the metadata write.
      if (publicMembers(before.bindings).length > 0) current = await readState(target, ctx);
    } else if (was !== 'enforced' && now !== was) {
      changed.push(`publicAccessPrevention (now ${current.publicAccessPrevention})`);
    }
    if (publicMembers(before.bindings).length > 0) {
      // The live policy with the removed public members added back, under its current etag: a change
      // made between this read and the write is refused (412), not overwritten. Members granted or revoked
      // since the fix stay as they are (withPublicRestored); public members already back need nothing.
      const bindings = withPublicRestored(current.bindings, before.bindings);
      if (canonicalJson(bindings) !== canonicalJson(current.bindings)) {
        ids.push(await setPolicy(target, { bindings, etag: current.etag, version: 3 }, ctx));
      }
    }
    if (changed.length === 0) return { requestIds: ids };
    const note = `${changed.join('; ')} changed since the fix: left as it is, old value not restored`;
    ctx.log.warn(`${ID} rollback: ${note}`, { bucket: target.bucket });
    return { requestIds: ids, note };
  },
});
