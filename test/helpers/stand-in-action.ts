/**
 * A stand-in for s3.block-public-access (no cloud here) for the resilience tests: its live read (`plan`)
 * and its `apply` are the test's, the rest is fixed (the bucket public before, blocked after).
 */
import { z } from 'zod';
import { type Action, type ApplyResult, defineAction, type Plan } from '../../shared/actions/define.js';

const Target = z.object({ bucket: z.string() });
const Before = z.object({ public: z.boolean() });
type BucketPlan = Plan<z.infer<typeof Target>, z.infer<typeof Before>>;

export function standInS3Action(hooks: {
  /** Runs before the plan is made (a live read that blocks, counts or fails). */
  onPlan?: () => Promise<void>;
  /** The apply; by default a dry-run-only action that throws when applied. */
  apply?: (plan: BucketPlan) => Promise<ApplyResult<z.infer<typeof Before>>>;
}): Action {
  return defineAction({
    id: 's3.block-public-access',
    title: 'stand-in',
    provider: 'aws',
    handles: {},
    permissions: ['s3:PutBucketPublicAccessBlock'],
    verifyPermissions: ['s3:GetBucketPublicAccessBlock'],
    risk: 'low',
    productionSafe: false,
    target: Target,
    beforeSchema: Before,
    selectTarget: (f) => ({ bucket: f.resource.name }),
    plan: async (target) => {
      await hooks.onPlan?.();
      return {
        target,
        before: { public: true },
        steps: [
          {
            say: `block ${target.bucket}`,
            call: { api: 's3:PutPublicAccessBlock', permission: 's3:PutBucketPublicAccessBlock', input: target },
          },
        ],
        summary: `block public access on ${target.bucket}`,
        noop: false,
      };
    },
    apply:
      hooks.apply ??
      (async () => {
        throw new Error('a dry-run never applies');
      }),
    verify: async () => ({ holds: true, observed: { public: false }, reason: 'blocked' }),
    rollback: async () => ({ requestIds: [] }),
  });
}
