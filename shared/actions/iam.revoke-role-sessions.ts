/**
 * Revokes the active sessions of an IAM role: an inline deny-all policy conditioned on
 * `aws:TokenIssueTime` being before now, so credentials issued earlier (e.g. stolen instance
 * credentials) lose every permission while new sessions keep working. This is the console's
 * "Revoke active sessions" (inline policy `AWSRevokeOlderSessions`).
 *
 * @see https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_use_revoke-sessions.html
 */
import type { IAMClient } from '@aws-sdk/client-iam';
import * as z from 'zod';
import { AdapterError } from '../core/errors.js';
import { canonicalJson } from '../core/util/hash.js';
import { awsSdk } from './clients.js';
import { type ActionContext, defineAction, type Plan } from './define.js';
import { applyPlanned, awsRequestId, call, changePlan, noopPlan, step } from './plan.js';
import { sdkErrorCode } from './retry.js';

const ID = 'iam.revoke-role-sessions';
export const REVOKE_POLICY_NAME = 'AWSRevokeOlderSessions';

const TargetSchema = z.object({
  roleName: z.string().min(1).max(64),
  /** Sessions issued up to this time must lose access (the finding's last sighting). */
  issuedBefore: z.iso.datetime({ offset: true }).optional(),
});
type Target = z.infer<typeof TargetSchema>;

const BeforeSchema = z.object({
  /** The inline revoke policy the role had before (JSON), or null. */
  policyDocument: z.string().nullable(),
  /**
   * The cutoff the fix's policy denies sessions before (ISO), set by a plan that writes one: a rollback undoes
   * only this cutoff, never a later one set since (the sessions revoked again by another case or a person).
   * Absent in records written before it was kept, and in a no-op plan's.
   */
  cutoff: z.iso.datetime({ offset: true }).optional(),
});
type Before = z.infer<typeof BeforeSchema>;

const StatementSchema = z.looseObject({
  Effect: z.string().optional(),
  Action: z.unknown().optional(),
  Resource: z.unknown().optional(),
  Condition: z.record(z.string(), z.record(z.string(), z.unknown())).optional(),
});
const RevokeDocSchema = z.looseObject({ Statement: z.union([z.array(StatementSchema), StatementSchema]) });

/** `"*"` or a list holding `"*"`: every action (or resource). */
const isAll = (v: unknown): boolean => v === '*' || (Array.isArray(v) && v.includes('*'));

/**
 * The token issue time before which this statement denies everything, or undefined when it denies less: a
 * deny of some actions or resources only (`s3:GetObject`, `NotAction`), or one with a further condition
 * (`aws:SourceIp`), leaves the compromised sessions the rest of their permissions.
 */
function fullDenyCutoff(s: z.infer<typeof StatementSchema>): Date | undefined {
  if (s.Effect !== 'Deny' || !isAll(s.Action) || !isAll(s.Resource) || 'NotAction' in s || 'NotResource' in s)
    return undefined;
  const operators = Object.entries(s.Condition ?? {});
  const [operator, block] = operators[0] ?? [];
  if (operators.length !== 1 || operator !== 'DateLessThan' || !block) return undefined;
  const keys = Object.entries(block);
  const [key, value] = keys[0] ?? [];
  if (keys.length !== 1 || key !== 'aws:TokenIssueTime' || typeof value !== 'string') return undefined;
  const at = new Date(value);
  return Number.isNaN(at.getTime()) ? undefined : at;
}

/** The cutoff of an existing revoke policy (its latest deny-everything statement), or undefined when it has none. */
function cutoffOf(doc: string | null): Date | undefined {
  if (doc === null) return undefined;
  const parsed = RevokeDocSchema.safeParse(JSON.parse(doc));
  if (!parsed.success) return undefined;
  const statements = Array.isArray(parsed.data.Statement) ? parsed.data.Statement : [parsed.data.Statement];
  let latest: Date | undefined;
  for (const s of statements) {
    const at = fullDenyCutoff(s);
    if (at && (!latest || at > latest)) latest = at;
  }
  return latest;
}

export const revokeDocument = (cutoff: Date): string =>
  JSON.stringify({
    Version: '2012-10-17',
    Statement: [
      {
        Effect: 'Deny',
        Action: ['*'],
        Resource: ['*'],
        Condition: { DateLessThan: { 'aws:TokenIssueTime': cutoff.toISOString() } },
      },
    ],
  });

async function readBefore(iam: IAMClient, roleName: string, ctx: ActionContext): Promise<Before> {
  const sdk = await awsSdk.iam();
  // GetRole first: NoSuchEntity from GetRolePolicy cannot tell a missing role from a missing policy.
  await call(ctx, `iam:GetRole ${roleName}`, () => iam.send(new sdk.GetRoleCommand({ RoleName: roleName })));
  try {
    const out = await call(ctx, `iam:GetRolePolicy ${roleName}`, () =>
      iam.send(new sdk.GetRolePolicyCommand({ RoleName: roleName, PolicyName: REVOKE_POLICY_NAME })),
    );
    // IAM returns policy documents URL-encoded (RFC 3986).
    return { policyDocument: out.PolicyDocument ? decodeURIComponent(out.PolicyDocument) : null };
  } catch (e) {
    if (sdkErrorCode(e) === 'NoSuchEntity' || sdkErrorCode(e) === 'NoSuchEntityException')
      return { policyDocument: null };
    throw e;
  }
}

async function plan(target: Target, ctx: ActionContext): Promise<Plan<Target, Before>> {
  const before = await readBefore(await ctx.clients.iam(), target.roleName, ctx);
  const now = ctx.clock.now();
  const existing = cutoffOf(before.policyDocument);
  const needed = target.issuedBefore ? new Date(target.issuedBefore) : now;
  if (existing && existing >= needed) {
    return noopPlan(
      target,
      before,
      `role ${target.roleName} already denies sessions issued before ${existing.toISOString()}`,
    );
  }
  const input = { RoleName: target.roleName, PolicyName: REVOKE_POLICY_NAME, PolicyDocument: revokeDocument(now) };
  return changePlan(
    target,
    { ...before, cutoff: now.toISOString() },
    [
      step(
        `attach inline policy ${REVOKE_POLICY_NAME} to role ${target.roleName}: deny everything to sessions issued before ${now.toISOString()}`,
        'iam:PutRolePolicy',
        'iam:PutRolePolicy',
        input,
      ),
    ],
    `revoke the sessions of role ${target.roleName} issued before ${now.toISOString()}`,
  );
}

/** The plan with the cutoff of another plan (the one being applied), when it writes one. */
function withCutoff(p: Plan<Target, Before>, cutoff: string | undefined): Plan<Target, Before> {
  const { cutoff: _own, ...read } = p.before;
  return p.noop ? p : { ...p, before: cutoff === undefined ? read : { ...read, cutoff } };
}

/** The same policy document: parsed, so white space and key order do not count. */
function sameDocument(a: string | null, b: string | null): boolean {
  if (a === null || b === null) return a === b;
  try {
    return canonicalJson(JSON.parse(a)) === canonicalJson(JSON.parse(b));
  } catch {
    return false;
  }
}

const PutInput = z.object({
  RoleName: z.string(),
  PolicyName: z.literal(REVOKE_POLICY_NAME),
  PolicyDocument: z.string(),
});

export default defineAction<Target, Before>({
  id: ID,
  title: 'Revoke the active sessions of an IAM role (deny tokens issued before now)',
  provider: 'aws',
  handles: {
    findingTypes: [
      'UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS',
      'UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.InsideAWS',
      'UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration',
    ],
  },
  permissions: ['iam:GetRole', 'iam:GetRolePolicy', 'iam:PutRolePolicy', 'iam:DeleteRolePolicy'],
  // verify(): readBefore (GetRole, then GetRolePolicy).
  verifyPermissions: ['iam:GetRole', 'iam:GetRolePolicy'],
  risk: 'low',
  // Running workloads re-assume the role and get fresh credentials: the documented safe response.
  productionSafe: true,
  outline: [
    {
      say: 'attach an inline deny-all policy for sessions issued before now (aws:TokenIssueTime)',
      api: 'iam:PutRolePolicy',
      permission: 'iam:PutRolePolicy',
    },
  ],
  target: TargetSchema,
  beforeSchema: BeforeSchema,
  selectTarget(f) {
    if (f.resource.provider !== 'aws') return undefined;
    const d = f.resource.details;
    const roleName =
      (typeof d.roleName === 'string' ? d.roleName : undefined) ??
      (f.actor?.userType === 'AssumedRole' ? f.actor.userName : undefined) ??
      /^arn:aws[\w-]*:iam::\d{12}:role\/(?:.*\/)?([^/]+)$/.exec(f.resource.id)?.[1];
    const parsed = TargetSchema.safeParse({ roleName, issuedBefore: f.lastSeen });
    return parsed.success ? parsed.data : undefined;
  },
  plan,
  apply: (p, ctx) =>
    // The re-plan's cutoff is its own clock's: the live state is compared without it, and the cutoff kept is
    // the one the planned step writes.
    applyPlanned(
      p,
      ctx,
      async (t, c) => withCutoff(await plan(t, c), p.before.cutoff),
      async (s) => {
        const sdk = await awsSdk.iam();
        if (s.call.api !== 'iam:PutRolePolicy') throw new AdapterError('invalid', `no step ${s.call.api}`);
        const input = PutInput.parse(s.call.input);
        const what = `iam:PutRolePolicy ${input.RoleName}`;
        return awsRequestId(
          await call(ctx, what, async () => (await ctx.clients.iam()).send(new sdk.PutRolePolicyCommand(input))),
          what,
        );
      },
    ),
  async verify(target, ctx) {
    const observed = await readBefore(await ctx.clients.iam(), target.roleName, ctx);
    const cutoff = cutoffOf(observed.policyDocument);
    const needed = target.issuedBefore ? new Date(target.issuedBefore) : undefined;
    const holds = cutoff !== undefined && (needed === undefined || cutoff >= needed);
    return {
      holds,
      observed,
      reason: holds
        ? `role ${target.roleName} denies sessions issued before ${cutoff?.toISOString()}`
        : `role ${target.roleName} has no ${REVOKE_POLICY_NAME} deny covering the compromised sessions`,
    };
  },
  async rollback({ target, before }, ctx) {
    const sdk = await awsSdk.iam();
    const iam = await ctx.clients.iam();
    const role = target.roleName;
    // The live policy first: the role may have been revoked again since the fix (a later compromise, another
    // case, a person), and putting the old policy back, or deleting it, would give the sessions that later
    // revoke cut off their permissions again.
    const live = await readBefore(iam, role, ctx);
    if (sameDocument(live.policyDocument, before.policyDocument)) return { requestIds: [] }; // nothing of the fix left
    if (before.cutoff === undefined) {
      throw new AdapterError(
        'conflict',
        `${ID} rollback: the record does not say which cutoff the fix wrote (kept before it was recorded), so a later revoke of role ${role} cannot be told from it: ${REVOKE_POLICY_NAME} left as it is`,
      );
    }
    if (live.policyDocument === null) return { requestIds: [] }; // removed since the fix: nothing to undo
    if (!sameDocument(live.policyDocument, revokeDocument(new Date(before.cutoff)))) {
      const liveCutoff = cutoffOf(live.policyDocument);
      const why =
        liveCutoff && liveCutoff > new Date(before.cutoff)
          ? `sessions were revoked again since the fix (tokens issued before ${liveCutoff.toISOString()}, the fix's ${before.cutoff})`
          : `it was changed since the fix`;
      throw new AdapterError(
        'conflict',
        `${ID} rollback: ${REVOKE_POLICY_NAME} on role ${role} is not the fix's: ${why}; left as it is`,
      );
    }
    const restore = before.policyDocument;
    const what = `iam:${restore === null ? 'DeleteRolePolicy' : 'PutRolePolicy'} ${role}`;
    const out = await call(ctx, what, () =>
      restore === null
        ? iam.send(new sdk.DeleteRolePolicyCommand({ RoleName: role, PolicyName: REVOKE_POLICY_NAME }))
        : iam.send(
            new sdk.PutRolePolicyCommand({ RoleName: role, PolicyName: REVOKE_POLICY_NAME, PolicyDocument: restore }),
          ),
    );
    return { requestIds: [awsRequestId(out, what)] };
  },
});
