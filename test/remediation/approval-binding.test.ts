/**
 * An approval is of the plan the person saw: it carries out that plan on the resource as it was, and nothing
 * else. A resource changed since (its live state no longer the plan's before-state) or a plan made again later
 * needs a person again; an unchanged one keeps the approval.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { type Action, defineAction } from '../../shared/actions/define.js';
import { applyPlanned, changePlan, noopPlan, step } from '../../shared/actions/plan.js';
import { MemoryDocStore } from '../../shared/adapters/store/memory.js';
import { type Case, CaseSchema } from '../../shared/core/model/case.js';
import type { OwnerLookup } from '../../shared/core/ports.js';
import { approveCase, createRemediationStage, type RemediationDeps } from '../../shared/core/remediation/stage.js';
import { getDoc } from '../../shared/core/store/docs.js';
import { decidedCase, decidedEvent, findingFor, remediationDeps, testContext } from '../helpers/action-context.js';
import { closeBucket } from '../helpers/stand-in-action.js';

/**
 * A bucket whose public grants are the live state, applied through the shared `applyPlanned` (which re-reads
 * and refuses a plan whose before-state no longer matches), as every registered action is.
 */
function grantsAction() {
  const live = { grants: ['AllUsers:READ'] };
  const applied: string[][] = [];
  const Before = z.object({ grants: z.array(z.string()) });
  const Target = z.object({ bucket: z.string() });
  const plan = async (target: z.infer<typeof Target>) => {
    const before = { grants: [...live.grants] };
    if (live.grants.length === 0) return noopPlan(target, before, `${target.bucket} has no public grant`);
    const steps = [step(`remove ${live.grants.join(', ')}`, 'test:PutAcl', 'test:PutAcl', { remove: live.grants })];
    return changePlan(target, before, steps, `remove ${live.grants.length} public grant(s) from ${target.bucket}`);
  };
  const action = defineAction({
    id: 'test.remove-grants',
    title: 'Remove public grants',
    provider: 'aws',
    handles: {},
    permissions: ['test:GetAcl', 'test:PutAcl'],
    verifyPermissions: ['test:GetAcl'],
    risk: 'medium',
    productionSafe: false,
    target: Target,
    beforeSchema: Before,
    selectTarget: (f) => ({ bucket: f.resource.name }),
    plan,
    apply: (p, ctx) =>
      applyPlanned(p, ctx, plan, async (s) => {
        const removed = z.object({ remove: z.array(z.string()) }).parse(s.call.input).remove;
        applied.push(removed);
        live.grants = live.grants.filter((g) => !removed.includes(g));
        return `req-${applied.length}`;
      }),
    verify: async () => ({ holds: live.grants.length === 0, observed: live, reason: '' }),
    rollback: async () => ({ requestIds: [] }),
  });
  const widened: Action = action;
  return { action: widened, live, applied };
}

const finding = findingFor({
  provider: 'aws',
  id: 'arn:aws:s3:::acme-exports',
  type: 'S3Bucket',
  name: 'acme-exports',
});
const prodCase = (): Case =>
  decidedCase(finding, {
    action: 'test.remove-grants',
    env: 'prod',
    mode: 'approval',
    reason: 'prod: approval',
    gates: [{ gate: 'skip-tag', outcome: 'pass', reason: 'no skip tag' }],
  });
const KEY = prodCase().key;

describe('an approval applies only to the plan that was approved', () => {
  let store: MemoryDocStore;
  let double: ReturnType<typeof grantsAction>;
  const deps = (o: Partial<RemediationDeps> = {}): RemediationDeps =>
    remediationDeps(store, double.action, testContext(), o);
  const stored = async () => (await getDoc(store, 'cases', KEY, CaseSchema))?.value;

  beforeEach(async () => {
    store = new MemoryDocStore();
    double = grantsAction();
    await store.put('cases', KEY, prodCase());
    await store.put('findings', finding.key, finding);
    // The plan a person is shown: remove AllUsers:READ.
    await createRemediationStage(deps()).handle(decidedEvent(KEY));
  });

  it('asks again, showing the new plan, when the resource changed after the plan was approved; the new approval applies it', async () => {
    // Prepare: someone opens the bucket further after the plan was shown, before the approval.
    expect((await stored())?.remediation.state).toBe('awaiting-approval');
    double.live.grants.push('AllUsers:WRITE');
    // Act
    const first = await approveCase(deps(), KEY, 'lead@example.com');
    const asked = await stored();
    const second = await approveCase(deps(), KEY, 'lead@example.com');
    // Assess: nothing applied on the first approval; the case shows the plan for the bucket as it is now, with
    // no approval on it (a Jira approval of the new plan is taken), and approving that plan applies it.
    expect(first.state).toBe('awaiting-approval');
    expect(asked?.remediation.approvedBy).toBeUndefined();
    expect(asked?.remediation.before).toEqual({ grants: ['AllUsers:READ', 'AllUsers:WRITE'] });
    expect(asked?.remediation.stateReason).toContain('lead@example.com approved');
    expect(second.state).toBe('applied');
    expect(double.applied).toEqual([['AllUsers:READ', 'AllUsers:WRITE']]);
    expect((await stored())?.remediation).toMatchObject({ state: 'applied', approvedBy: 'lead@example.com' });
  });

  it('does not carry an approval over to a plan made again after the approved apply was blocked', async () => {
    // Prepare: approved, but the live skip tag stops the apply (the approval is still on the case).
    const skip: OwnerLookup = { tagsFor: async () => ({ 'closeloop:skip': 'true' }) };
    await approveCase(deps({ tags: skip }), KEY, 'lead@example.com');
    expect((await stored())?.remediation.state).toBe('blocked');
    // The tag is removed and the bucket changed; its finding comes again.
    double.live.grants.push('AllUsers:WRITE');
    // Act
    await createRemediationStage(deps()).handle({ ...decidedEvent(KEY), id: 'd-again' });
    // Assess
    const c = await stored();
    expect(double.applied).toEqual([]);
    expect(c?.remediation.state).toBe('awaiting-approval');
    expect(c?.remediation.approvedBy).toBeUndefined();
    expect(c?.remediation.before).toEqual({ grants: ['AllUsers:READ', 'AllUsers:WRITE'] });
  });

  it('keeps the approval of a plan the resource still matches when the blocked case is run again', async () => {
    // Prepare
    const skip: OwnerLookup = { tagsFor: async () => ({ 'closeloop:skip': 'true' }) };
    await approveCase(deps({ tags: skip }), KEY, 'lead@example.com');
    // Act: the tag is removed, the bucket as it was approved
    await createRemediationStage(deps()).handle({ ...decidedEvent(KEY), id: 'd-again' });
    // Assess
    expect(double.applied).toEqual([['AllUsers:READ']]);
    expect((await stored())?.remediation).toMatchObject({ state: 'applied', approvedBy: 'lead@example.com' });
  });

  it("plans the case's new action for a person when decide chose another action for it after its plan was approved", async () => {
    // Prepare: the case waits with the plan of the action decide chose then (another target shape, other calls);
    // the playbook now names test.remove-grants, and decide carried the old plan over.
    const old = closeBucket().action;
    const both = {
      get: (id: string) => (id === old.id ? (old as Action) : id === double.action.id ? double.action : undefined),
    };
    await store.put('cases', KEY, { ...prodCase(), remediation: { ...prodCase().remediation, action: old.id } });
    await createRemediationStage(deps({ actions: both })).handle({ ...decidedEvent(KEY), id: 'd-old' });
    const waiting = await stored();
    expect(waiting?.remediation.plan?.summary).toBe('close it');
    await store.put('cases', KEY, { ...waiting, remediation: { ...waiting?.remediation, action: double.action.id } });
    // Act
    const first = await approveCase(deps({ actions: both }), KEY, 'lead@example.com');
    const asked = await stored();
    const second = await approveCase(deps({ actions: both }), KEY, 'lead@example.com');
    // Assess: the approval of the old plan applied nothing; the new action's plan waited for a person, whose
    // approval of it applied it
    expect(first.state).toBe('awaiting-approval');
    expect(asked?.remediation.plan?.summary).toBe('remove 1 public grant(s) from acme-exports');
    expect(asked?.remediation.target).toEqual({ bucket: 'acme-exports' });
    expect(asked?.remediation.stateReason).toContain('approved a plan of another action');
    expect(second.state).toBe('applied');
    expect(double.applied).toEqual([['AllUsers:READ']]);
  });
});
