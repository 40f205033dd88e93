/**
 * Turns on all four S3 Block Public Access flags on a bucket, removes ACL grants to AllUsers /
 * AuthenticatedUsers and bucket-policy statements that allow `*` without a restricting condition.
 * The old block configuration, ACL and policy are the before-state: rollback restores each old flag still on as
 * the fix left it and adds the removed grants and statements back to the live ACL and policy (changes made
 * since the fix are kept; a flag turned off since is left off and named in the rollback's note).
 * A bucket tagged as an intended public website is left to a person (needsApproval).
 *
 * @see https://docs.aws.amazon.com/AmazonS3/latest/userguide/access-control-block-public-access.html
 * @see ASR ConfigureS3PublicAccessBlock.py (apply, then verify by re-reading)
 */
import type { S3Client } from '@aws-sdk/client-s3';
import * as z from 'zod';
import { AdapterError } from '../core/errors.js';
import { iamRegion } from '../core/util/aws-partition.js';
import { canonicalJson } from '../core/util/hash.js';
import { awsSdk } from './clients.js';
import { type ActionContext, defineAction, type Plan } from './define.js';
import { applyPlanned, awsRequestId, call, changePlan, noopPlan, step } from './plan.js';
import { sdkErrorCode } from './retry.js';

const ID = 's3.block-public-access';
const ALL_USERS = 'http://acs.amazonaws.com/groups/global/AllUsers';
const AUTHENTICATED_USERS = 'http://acs.amazonaws.com/groups/global/AuthenticatedUsers';

const FlagsSchema = z.object({
  BlockPublicAcls: z.boolean(),
  IgnorePublicAcls: z.boolean(),
  BlockPublicPolicy: z.boolean(),
  RestrictPublicBuckets: z.boolean(),
});
const ALL_ON: z.infer<typeof FlagsSchema> = {
  BlockPublicAcls: true,
  IgnorePublicAcls: true,
  BlockPublicPolicy: true,
  RestrictPublicBuckets: true,
};

const GrantSchema = z.object({
  Grantee: z.object({
    Type: z.enum(['CanonicalUser', 'AmazonCustomerByEmail', 'Group']),
    ID: z.string().optional(),
    URI: z.string().optional(),
    EmailAddress: z.string().optional(),
    DisplayName: z.string().optional(),
  }),
  Permission: z.enum(['FULL_CONTROL', 'READ', 'READ_ACP', 'WRITE', 'WRITE_ACP']),
});
type Grant = z.infer<typeof GrantSchema>;

const BeforeSchema = z.object({
  /** null: the bucket had no Block Public Access configuration (all flags off). */
  publicAccessBlock: FlagsSchema.nullable(),
  acl: z.object({
    owner: z.object({ ID: z.string().optional(), DisplayName: z.string().optional() }).optional(),
    grants: z.array(GrantSchema),
  }),
  /** The bucket policy JSON as stored; null when the bucket had none. */
  policy: z.string().nullable(),
  tags: z.record(z.string(), z.string()),
});
type Before = z.infer<typeof BeforeSchema>;

const TargetSchema = z.object({ bucket: z.string().min(3).max(63), region: z.string().min(1) });
type Target = z.infer<typeof TargetSchema>;

/** policy.yaml `apply.actions["s3.block-public-access"]`. */
const SettingsSchema = z.strictObject({
  /** Tags (`key=value`) that mark a bucket as an intended public website: such buckets need approval. */
  websiteTags: z.array(z.string().regex(/^[^=]+=.*$/)).default(['closeloop:public-website=true', 'website=true']),
});

const isPublicGrant = (g: Grant): boolean =>
  g.Grantee.Type === 'Group' && (g.Grantee.URI === ALL_USERS || g.Grantee.URI === AUTHENTICATED_USERS);

const StatementSchema = z.looseObject({
  Effect: z.string().optional(),
  Principal: z.unknown().optional(),
  Condition: z.record(z.string(), z.unknown()).optional(),
});
const PolicyDocSchema = z.looseObject({ Statement: z.union([z.array(StatementSchema), StatementSchema]) });

function isStar(principal: unknown): boolean {
  if (principal === '*') return true;
  if (principal && typeof principal === 'object' && 'AWS' in principal) {
    const aws: unknown = principal.AWS;
    return aws === '*' || (Array.isArray(aws) && aws.includes('*'));
  }
  return false;
}

/**
 * Condition keys whose fixed values make an Allow to `*` non-public, as S3 judges a policy ("The meaning of
 * public"): any other condition (aws:Referer, aws:SecureTransport, a wildcard value, a Not… or …IfExists
 * operator) leaves the statement public.
 *
 * @see https://docs.aws.amazon.com/AmazonS3/latest/userguide/access-control-block-public-access.html
 */
const NARROWING_KEYS = new Set([
  'aws:sourceip',
  'aws:sourcearn',
  'aws:sourcevpc',
  'aws:sourcevpce',
  'aws:sourceowner',
  'aws:sourceaccount',
  's3:x-amz-server-side-encryption-aws-kms-key-id',
  'aws:userid',
]);
const OPEN_RANGES = new Set(['0.0.0.0/0', '::/0']);

/** Does this condition block pin one narrowing key to fixed values? */
function narrows(condition: Record<string, unknown> | undefined): boolean {
  for (const [operator, block] of Object.entries(condition ?? {})) {
    if (/Not|IfExists$/i.test(operator) || !block || typeof block !== 'object') continue;
    for (const [key, value] of Object.entries(block)) {
      if (!NARROWING_KEYS.has(key.toLowerCase())) continue;
      const values = Array.isArray(value) ? value : [value];
      const fixed = values.every(
        (v) =>
          typeof v === 'string' &&
          v !== '' &&
          !/[*?]|\$\{/.test(v) &&
          !(key.toLowerCase() === 'aws:sourceip' && OPEN_RANGES.has(v)),
      );
      if (values.length > 0 && fixed) return true;
    }
  }
  return false;
}

/** An Allow to `*` that no condition pins to fixed sources (S3 considers it public). */
const isPublicStatement = (s: z.infer<typeof StatementSchema>): boolean =>
  s.Effect === 'Allow' && isStar(s.Principal) && !narrows(s.Condition);

/** A policy's statements as written, with those S3 counts as public picked out (judged on the parsed view). */
function statementsOf(policy: string): { raw: object; statements: unknown[]; open: Set<unknown> } {
  const raw: unknown = JSON.parse(policy);
  const doc = PolicyDocSchema.safeParse(raw);
  if (!doc.success || !raw || typeof raw !== 'object' || !('Statement' in raw)) {
    throw new AdapterError('invalid', 'bucket policy is not a policy document');
  }
  // The statements as written (zod would reorder keys), using the parsed view only to judge them.
  const statements: unknown[] = Array.isArray(raw.Statement) ? raw.Statement : [raw.Statement];
  const parsed = Array.isArray(doc.data.Statement) ? doc.data.Statement : [doc.data.Statement];
  const open = new Set(
    statements.filter((_, i) => {
      const s = parsed[i];
      return s !== undefined && isPublicStatement(s);
    }),
  );
  return { raw, statements, open };
}

/** The policy without its public statements: `null` = delete the policy, `undefined` = nothing to remove. */
function withoutPublicStatements(policy: string | null): string | null | undefined {
  if (policy === null) return undefined;
  const { raw, statements, open } = statementsOf(policy);
  const kept = statements.filter((s) => !open.has(s));
  if (kept.length === statements.length) return undefined;
  return kept.length === 0 ? null : JSON.stringify({ ...raw, Statement: kept });
}

/**
 * `live` with the items of `old` that `restored` picks added back, and nothing else of `old`: in the old order
 * (a configuration untouched since the fix comes back exactly), then what was added since. An old item that is
 * no longer live and not restored was removed by someone after the fix, and stays removed.
 */
function restoreInto<X>(live: readonly X[], old: readonly X[], restored: (x: X) => boolean): X[] {
  const liveKeys = new Set(live.map((x) => canonicalJson(x)));
  const oldKeys = new Set(old.map((x) => canonicalJson(x)));
  return [
    ...old.filter((x) => restored(x) || liveKeys.has(canonicalJson(x))),
    ...live.filter((x) => !oldKeys.has(canonicalJson(x))),
  ];
}

/** The live policy (null: none) with the public statements of the old one added back; the old text when equal. */
function withPublicStatementsRestored(live: string | null, old: string): string {
  const was = statementsOf(old);
  const now = live === null ? undefined : statementsOf(live);
  const statements = restoreInto(now?.statements ?? [], was.statements, (s) => was.open.has(s));
  if (canonicalJson(statements) === canonicalJson(was.statements)) return old;
  return JSON.stringify({ ...(now?.raw ?? was.raw), Statement: statements });
}

type Flags = z.infer<typeof FlagsSchema>;

/**
 * The Block Public Access flags a rollback ends with: per flag, the old value where the live one is still what
 * the fix set (on), the live one otherwise. A flag turned off since the fix was on before it (the fix turns
 * flags on only): writing the old flags back turned it on again over its owner's change, so it stays off and
 * is named in `changed`. `null` (no configuration: all off) when every flag ends off and the bucket had no
 * configuration before the fix, or has none now.
 */
function restoredFlags(old: Flags | null, live: Flags | null): { flags: Flags | null; changed: string[] } {
  const changed: string[] = [];
  const flags = { ...ALL_ON };
  for (const key of Object.keys(ALL_ON) as Array<keyof Flags>) {
    const was = old?.[key] ?? false;
    const now = live?.[key] ?? false;
    flags[key] = now === ALL_ON[key] ? was : now;
    if (now !== was && now !== ALL_ON[key]) changed.push(`${key} (now ${now}${live ? '' : ', no configuration'})`);
  }
  const allOff = Object.values(flags).every((v) => !v);
  return { flags: allOff && (old === null || live === null) ? null : flags, changed };
}

const isAllOn = (f: Before['publicAccessBlock']): boolean =>
  f?.BlockPublicAcls === true && f.IgnorePublicAcls && f.BlockPublicPolicy && f.RestrictPublicBuckets;

/** Reads a bucket sub-resource; the named "not configured" code is a state, any other not-found is thrown. */
async function readOr<R, D>(ctx: ActionContext, what: string, fn: () => Promise<R>, absent: string, d: D) {
  try {
    return await call(ctx, what, fn);
  } catch (e) {
    if (sdkErrorCode(e) === absent) return d;
    throw e;
  }
}

async function readState(s3: S3Client, bucket: string, ctx: ActionContext): Promise<Before> {
  const sdk = await awsSdk.s3();
  const pab = await readOr(
    ctx,
    `s3:GetPublicAccessBlock ${bucket}`,
    () => s3.send(new sdk.GetPublicAccessBlockCommand({ Bucket: bucket })),
    'NoSuchPublicAccessBlockConfiguration',
    null,
  );
  const acl = await call(ctx, `s3:GetBucketAcl ${bucket}`, () =>
    s3.send(new sdk.GetBucketAclCommand({ Bucket: bucket })),
  );
  const policy = await readOr(
    ctx,
    `s3:GetBucketPolicy ${bucket}`,
    () => s3.send(new sdk.GetBucketPolicyCommand({ Bucket: bucket })),
    'NoSuchBucketPolicy',
    null,
  );
  const tagging = await readOr(
    ctx,
    `s3:GetBucketTagging ${bucket}`,
    () => s3.send(new sdk.GetBucketTaggingCommand({ Bucket: bucket })),
    'NoSuchTagSet',
    null,
  );
  const flags = pab?.PublicAccessBlockConfiguration;
  return BeforeSchema.parse({
    publicAccessBlock: flags
      ? {
          BlockPublicAcls: flags.BlockPublicAcls ?? false,
          IgnorePublicAcls: flags.IgnorePublicAcls ?? false,
          BlockPublicPolicy: flags.BlockPublicPolicy ?? false,
          RestrictPublicBuckets: flags.RestrictPublicBuckets ?? false,
        }
      : null,
    acl: {
      ...(acl.Owner ? { owner: { ID: acl.Owner.ID, DisplayName: acl.Owner.DisplayName } } : {}),
      grants: acl.Grants ?? [],
    },
    policy: policy?.Policy ?? null,
    tags: Object.fromEntries((tagging?.TagSet ?? []).map((t) => [t.Key ?? '', t.Value ?? ''])),
  });
}

async function plan(target: Target, ctx: ActionContext): Promise<Plan<Target, Before>> {
  const { bucket } = target;
  const settings = SettingsSchema.parse(ctx.settings?.[ID] ?? {});
  const before = await readState(await ctx.clients.s3(target.region), bucket, ctx);
  const steps = [];
  if (!isAllOn(before.publicAccessBlock)) {
    steps.push(
      step(
        `turn on all four Block Public Access flags on ${bucket}`,
        's3:PutPublicAccessBlock',
        's3:PutBucketPublicAccessBlock',
        { Bucket: bucket, PublicAccessBlockConfiguration: ALL_ON },
      ),
    );
  }
  const publicGrants = before.acl.grants.filter(isPublicGrant);
  if (publicGrants.length > 0) {
    steps.push(
      step(
        `remove ${publicGrants.length} ACL grant(s) to AllUsers/AuthenticatedUsers from ${bucket}`,
        's3:PutBucketAcl',
        's3:PutBucketAcl',
        {
          Bucket: bucket,
          AccessControlPolicy: { Owner: before.acl.owner, Grants: before.acl.grants.filter((g) => !isPublicGrant(g)) },
        },
      ),
    );
  }
  const policy = withoutPublicStatements(before.policy);
  if (policy === null) {
    steps.push(
      step(
        `delete the bucket policy of ${bucket} (its only statements allow "*")`,
        's3:DeleteBucketPolicy',
        's3:DeleteBucketPolicy',
        {
          Bucket: bucket,
        },
      ),
    );
  } else if (policy !== undefined) {
    steps.push(
      step(
        `remove the statements allowing "*" without a condition from the policy of ${bucket}`,
        's3:PutBucketPolicy',
        's3:PutBucketPolicy',
        {
          Bucket: bucket,
          Policy: policy,
        },
      ),
    );
  }
  if (steps.length === 0) return noopPlan(target, before, `${bucket} already blocks all public access`);
  const website = settings.websiteTags.find((kv) => {
    const [k = '', ...v] = kv.split('=');
    return before.tags[k] === v.join('=');
  });
  return changePlan(
    target,
    before,
    steps,
    `block public access on ${bucket}: ${steps.map((s) => s.say).join('; ')}`,
    website ? `${bucket} is tagged ${website} (an intended public website): a person decides` : undefined,
  );
}

const s3Input = <I>(input: unknown, schema: z.ZodType<I>): I => schema.parse(input);
const BucketInput = z.object({ Bucket: z.string() });

export default defineAction<Target, Before>({
  id: ID,
  title: 'Block public access to an S3 bucket (all four flags, public ACL grants and "*" policy statements)',
  provider: 'aws',
  handles: {
    findingTypes: [
      'Policy:S3/BucketAnonymousAccessGranted',
      'Policy:S3/BucketPublicAccessGranted',
      'Policy:S3/BucketBlockPublicAccessDisabled',
    ],
    controls: ['S3.2', 'S3.3', 'S3.8'],
  },
  // plan/apply/rollback: readState's four reads and the writes. GetBucketPolicyStatus is verify()'s alone, and
  // on the hub verify runs under a role of its own (verifyPermissions): the remediate role does not need it.
  permissions: [
    's3:GetBucketPublicAccessBlock',
    's3:GetBucketAcl',
    's3:GetBucketPolicy',
    's3:GetBucketTagging',
    's3:PutBucketPublicAccessBlock',
    's3:PutBucketAcl',
    's3:PutBucketPolicy',
    's3:DeleteBucketPolicy',
  ],
  // verify(): readState's four reads (GetPublicAccessBlock is authorized as
  // s3:GetBucketPublicAccessBlock) and GetBucketPolicyStatus.
  verifyPermissions: [
    's3:GetBucketPublicAccessBlock',
    's3:GetBucketAcl',
    's3:GetBucketPolicy',
    's3:GetBucketTagging',
    's3:GetBucketPolicyStatus',
  ],
  risk: 'medium',
  // A bucket that serves a website (or public downloads) stops serving: production needs a person.
  productionSafe: false,
  outline: [
    {
      say: 'turn on all four Block Public Access flags',
      api: 's3:PutPublicAccessBlock',
      permission: 's3:PutBucketPublicAccessBlock',
    },
    { say: 'remove ACL grants to AllUsers/AuthenticatedUsers', api: 's3:PutBucketAcl', permission: 's3:PutBucketAcl' },
    {
      say: 'remove bucket-policy statements allowing "*" without a condition',
      api: 's3:PutBucketPolicy',
      permission: 's3:PutBucketPolicy',
    },
  ],
  target: TargetSchema,
  beforeSchema: BeforeSchema,
  selectTarget(f) {
    if (f.resource.provider !== 'aws') return undefined;
    const detail = f.resource.details.bucket;
    const fromArn = /^arn:aws[\w-]*:s3:::([^/]+)$/.exec(f.resource.id)?.[1];
    const bucket = typeof detail === 'string' ? detail : (fromArn ?? undefined);
    // No region on the finding: the bucket's partition's first region (us-east-1, us-gov-west-1, cn-north-1, where
    // its IAM answers too); us-east-1 whatever the partition sent a GovCloud bucket's calls to the aws partition.
    const region = f.resource.region ?? iamRegion({ arn: f.resource.id });
    const parsed = TargetSchema.safeParse({ bucket, region });
    return parsed.success ? parsed.data : undefined;
  },
  plan,
  apply: (p, ctx) =>
    applyPlanned(p, ctx, plan, async (s) => {
      const sdk = await awsSdk.s3();
      const s3 = await ctx.clients.s3(p.target.region);
      const what = `${s.call.api} ${p.target.bucket}`;
      switch (s.call.api) {
        case 's3:PutPublicAccessBlock': {
          const input = s3Input(s.call.input, BucketInput.extend({ PublicAccessBlockConfiguration: FlagsSchema }));
          return awsRequestId(await call(ctx, what, () => s3.send(new sdk.PutPublicAccessBlockCommand(input))), what);
        }
        case 's3:PutBucketAcl': {
          const input = s3Input(
            s.call.input,
            BucketInput.extend({
              AccessControlPolicy: z.object({
                Owner: BeforeSchema.shape.acl.shape.owner,
                Grants: z.array(GrantSchema),
              }),
            }),
          );
          return awsRequestId(await call(ctx, what, () => s3.send(new sdk.PutBucketAclCommand(input))), what);
        }
        case 's3:PutBucketPolicy': {
          const input = s3Input(s.call.input, BucketInput.extend({ Policy: z.string() }));
          return awsRequestId(await call(ctx, what, () => s3.send(new sdk.PutBucketPolicyCommand(input))), what);
        }
        case 's3:DeleteBucketPolicy': {
          const input = s3Input(s.call.input, BucketInput);
          return awsRequestId(await call(ctx, what, () => s3.send(new sdk.DeleteBucketPolicyCommand(input))), what);
        }
        default:
          throw new AdapterError('invalid', `${ID} has no step ${s.call.api}`);
      }
    }),
  async verify({ bucket, region }, ctx) {
    const sdk = await awsSdk.s3();
    const s3 = await ctx.clients.s3(region);
    const state = await readState(s3, bucket, ctx);
    const status = await readOr(
      ctx,
      `s3:GetBucketPolicyStatus ${bucket}`,
      () => s3.send(new sdk.GetBucketPolicyStatusCommand({ Bucket: bucket })),
      'NoSuchBucketPolicy',
      null,
    );
    const policyPublic = status?.PolicyStatus?.IsPublic === true;
    const publicGrants = state.acl.grants.filter(isPublicGrant).length;
    const observed = { publicAccessBlock: state.publicAccessBlock, policyPublic, publicGrants };
    const problems = [
      ...(isAllOn(state.publicAccessBlock) ? [] : ['not all four Block Public Access flags are on']),
      ...(policyPublic ? ['the bucket policy is public'] : []),
      ...(publicGrants > 0 ? [`${publicGrants} public ACL grant(s) remain`] : []),
    ];
    return {
      holds: problems.length === 0,
      observed,
      reason: problems.length === 0 ? `${bucket} blocks all public access` : problems.join('; '),
    };
  },
  async rollback({ target, before }, ctx) {
    const sdk = await awsSdk.s3();
    const s3 = await ctx.clients.s3(target.region);
    const { bucket } = target;
    const ids: string[] = [];
    const putFlags = async (flags: Before['publicAccessBlock']) => {
      const what = `s3:PutPublicAccessBlock ${bucket}`;
      const out = await call(ctx, what, () =>
        flags
          ? s3.send(new sdk.PutPublicAccessBlockCommand({ Bucket: bucket, PublicAccessBlockConfiguration: flags }))
          : s3.send(new sdk.DeletePublicAccessBlockCommand({ Bucket: bucket })),
      );
      ids.push(awsRequestId(out, what));
    };
    const restoreAcl = before.acl.grants.some(isPublicGrant);
    const restorePolicy = before.policy !== null && withoutPublicStatements(before.policy) !== undefined;
    // What the fix removed is added back to the live ACL and policy, and only that: writing the whole old
    // ACL or policy back would undo every change made since the fix (a grant revoked, a statement added).
    // The live flags likewise: see restoredFlags.
    const live = await readState(s3, bucket, ctx);
    const { flags, changed } = restoredFlags(before.publicAccessBlock, live.publicAccessBlock);
    const rewrite = canonicalJson(flags) !== canonicalJson(live.publicAccessBlock);
    // A public ACL cannot be put while BlockPublicAcls is on, nor a public policy while BlockPublicPolicy is:
    // when the flags to end with themselves block what is restored (stale grants under all four flags), those
    // two are lifted for the restore and the flags to end with are written last.
    const blocked = flags && ((restoreAcl && flags.BlockPublicAcls) || (restorePolicy && flags.BlockPublicPolicy));
    if (blocked) {
      await putFlags({
        ...flags,
        ...(restoreAcl ? { BlockPublicAcls: false } : {}),
        ...(restorePolicy ? { BlockPublicPolicy: false } : {}),
      });
    } else if (rewrite) {
      await putFlags(flags); // the flags to end with first: they allow what follows
    }
    if (restoreAcl) {
      const what = `s3:PutBucketAcl ${bucket}`;
      const grants = restoreInto(live.acl.grants, before.acl.grants, isPublicGrant);
      const input = {
        Bucket: bucket,
        AccessControlPolicy: { Owner: live.acl.owner ?? before.acl.owner, Grants: grants },
      };
      ids.push(awsRequestId(await call(ctx, what, () => s3.send(new sdk.PutBucketAclCommand(input))), what));
    }
    if (restorePolicy && before.policy !== null) {
      const what = `s3:PutBucketPolicy ${bucket}`;
      const input = { Bucket: bucket, Policy: withPublicStatementsRestored(live.policy, before.policy) };
      ids.push(awsRequestId(await call(ctx, what, () => s3.send(new sdk.PutBucketPolicyCommand(input))), what));
    }
    if (blocked) await putFlags(flags);
    if (changed.length === 0) return { requestIds: ids };
    const note = `Block Public Access flag(s) ${changed.join('; ')} changed since the fix: left as they are, old values not restored`;
    ctx.log.warn(`${ID} rollback: ${note}`, { bucket });
    return { requestIds: ids, note };
  },
});
