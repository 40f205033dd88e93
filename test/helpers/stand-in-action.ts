/**
 * Stand-in actions (no cloud here): one for s3.block-public-access for the resilience tests, its live read (`plan`)
 * and its `apply` the test's, the rest fixed (the bucket public before, blocked after); and a test action a case
 * had before decide chose another ({@link closeBucket}).
 */
import { z } from 'zod';
import { type Action, type ApplyResult, defineAction, type Plan } from '../../shared/actions/define.js';
import { changePlan, step } from '../../shared/actions/plan.js';

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

/**
 * A test action closing a bucket (target `{ name }`, before-state `{ open }`, one `test:Close` call), recording its
 * rollbacks: the action a case had before decide chose another for it (a playbook or registry change).
 */
export function closeBucket() {
  const rolledBack: unknown[] = [];
  const action = defineAction({
    id: 'test.close-bucket',
    title: 'Close a bucket',
    provider: 'aws',
    handles: {},
    permissions: ['test:Close'],
    verifyPermissions: ['test:Read'],
    risk: 'low',
    productionSafe: false,
    target: z.object({ name: z.string() }),
    beforeSchema: z.object({ open: z.boolean() }),
    selectTarget: (f) => ({ name: f.resource.name }),
    plan: async (target) =>
      changePlan(target, { open: true }, [step('close', 'test:Close', 'test:Close', target)], 'close it'),
    apply: async () => ({ before: { open: true }, requestIds: ['req-close'] }),
    verify: async () => ({ holds: true, observed: {}, reason: '' }),
    rollback: async (p) => {
      rolledBack.push(p);
      return { requestIds: ['req-reopen'] };
    },
  });
  return { action: action as Action, rolledBack };
}
