/**
 * A case's fix is rolled back by the action that applied it, not by the one decide chose for the case since (a
 * playbook or registry change): the before-state and target on the case are the applying action's.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { type Action, defineAction } from '../../shared/actions/define.js';
import { changePlan, step } from '../../shared/actions/plan.js';
import { MemoryDocStore } from '../../shared/adapters/store/memory.js';
import { AdapterError, ApplyIncompleteError, UsageError } from '../../shared/core/errors.js';
import { type Case, CaseSchema } from '../../shared/core/model/case.js';
import type { RemoteRequest } from '../../shared/core/remediation/remote.js';
import {
  approveCase,
  createRemediationStage,
  type RemediationDeps,
  recordRemoteResult,
  rollbackCase,
} from '../../shared/core/remediation/stage.js';
import { getDoc } from '../../shared/core/store/docs.js';
import { decidedCase, decidedEvent, findingFor, remediationDeps, testContext } from '../helpers/action-context.js';
import { closeBucket } from '../helpers/stand-in-action.js';

/** The action decide chooses for the case later (another target shape, before-state and calls). */
function removeGrants() {
  const rolledBack: unknown[] = [];
  const action = defineAction({
    id: 'test.remove-grants',
    title: 'Remove public grants',
    provider: 'aws',
    handles: {},
    permissions: ['test:PutAcl'],
    verifyPermissions: ['test:GetAcl'],
    risk: 'medium',
    productionSafe: false,
    target: z.object({ bucket: z.string() }),
    beforeSchema: z.object({ grants: z.array(z.string()) }),
    selectTarget: (f) => ({ bucket: f.resource.name }),
    plan: async (target) =>
      changePlan(target, { grants: ['AllUsers:READ'] }, [step('remove', 'test:PutAcl', 'test:PutAcl', target)], 'x'),
    apply: async () => ({ before: { grants: ['AllUsers:READ'] }, requestIds: ['req-acl'] }),
    verify: async () => ({ holds: false, observed: {}, reason: '' }),
    rollback: async (p) => {
      rolledBack.push(p);
      return { requestIds: [] };
    },
  });
  return { action: action as Action, rolledBack };
}

const finding = findingFor({
  provider: 'aws',
  id: 'arn:aws:s3:::acme-exports',
  type: 'S3Bucket',
  name: 'acme-exports',
});
const devCase = (): Case => decidedCase(finding, { action: 'test.close-bucket' });
const KEY = devCase().key;

describe('rollback of a case whose action decide changed after the apply', () => {
  let store: MemoryDocStore;
  let a: ReturnType<typeof closeBucket>;
  let b: ReturnType<typeof removeGrants>;
  const deps = (o: Partial<RemediationDeps> = {}): RemediationDeps =>
    remediationDeps(store, a.action, testContext(), {
      actions: { get: (id) => (id === a.action.id ? a.action : id === b.action.id ? b.action : undefined) },
      ...o,
    });
  const stored = async () => (await getDoc(store, 'cases', KEY, CaseSchema))?.value;
  /** Decide chooses test.remove-grants now and carries the stage's fields over, as it does. */
  const decideChangesAction = async (over: Partial<Case['remediation']> = {}) => {
    const c = await stored();
    await store.put('cases', KEY, { ...c, remediation: { ...c?.remediation, action: b.action.id, ...over } });
  };

  beforeEach(async () => {
    store = new MemoryDocStore();
    a = closeBucket();
    b = removeGrants();
    await store.put('cases', KEY, devCase());
    await store.put('findings', finding.key, finding);
  });

  it('restores the before-state with the action that applied it', async () => {
    // Prepare: applied by test.close-bucket, then decide chose test.remove-grants
    await createRemediationStage(deps()).handle(decidedEvent(KEY));
    expect((await stored())?.remediation.state).toBe('applied');
    await decideChangesAction();
    // Act
    const out = await rollbackCase(deps(), KEY, 'oncall@example.com');
    // Assess
    expect(a.rolledBack).toEqual([{ target: { name: 'acme-exports' }, before: { open: true } }]);
    expect(b.rolledBack).toEqual([]);
    expect(out.requestIds).toEqual(['req-reopen']);
    expect((await stored())?.remediation.state).toBe('rolled-back');
  });

  it("hands the rollback to the spoke under the action the spoke applied, with that action's before-state", async () => {
    // Prepare: the spoke ran test.close-bucket; decide chose test.remove-grants after its answer
    const sent: RemoteRequest[] = [];
    const remote = { runs: () => true, dispatch: async (r: RemoteRequest) => void sent.push(r) };
    await createRemediationStage(deps({ remote, ctx: undefined })).handle(decidedEvent(KEY));
    const apply = sent[0];
    await recordRemoteResult(deps({ remote }), {
      requestId: apply?.requestId ?? '',
      caseKey: KEY,
      provider: 'aws',
      action: a.action.id,
      op: 'apply',
      applyToken: apply?.applyToken,
      outcome: 'applied',
      reason: 'closed',
      target: { name: 'acme-exports' },
      before: { open: true },
      requestIds: ['req-close'],
      actor: 'closeloop@aws-spoke',
      at: '2026-11-18T10:00:00.000Z',
    });
    await decideChangesAction();
    // Act
    await rollbackCase(deps({ remote, ctx: undefined }), KEY, 'oncall@example.com');
    // Assess
    expect(sent[1]).toMatchObject({
      op: 'rollback',
      action: a.action.id,
      target: { name: 'acme-exports' },
      before: { open: true },
    });
  });

  it("applies the new action with its own before-state after the old one's apply stopped part-way", async () => {
    // Prepare: test.close-bucket made a step, then failed; decide chose test.remove-grants since
    a.action.apply = async () => {
      throw new ApplyIncompleteError(new AdapterError('transient', 'reset'), ['req-close'], 2, 'close', true);
    };
    await createRemediationStage(deps()).handle(decidedEvent(KEY));
    expect((await stored())?.remediation.state).toBe('failed');
    await decideChangesAction();
    // Act: a person asks for the fix again, which the new action makes; then it is rolled back
    const out = await approveCase(deps(), KEY, 'lead@example.com');
    const applied = await stored();
    await rollbackCase(deps(), KEY, 'oncall@example.com');
    // Assess: the new action's fix keeps its own before-state (not the old action's) and rolls back with it
    expect(out.state).toBe('applied');
    expect(applied?.remediation).toMatchObject({ before: { grants: ['AllUsers:READ'] }, requestIds: ['req-acl'] });
    expect(b.rolledBack).toEqual([{ target: { bucket: 'acme-exports' }, before: { grants: ['AllUsers:READ'] } }]);
  });

  it("refuses a case applied before the applying action was recorded whose target is not the new action's", async () => {
    // Prepare: applied (by test.close-bucket) before cases named the applying action
    await createRemediationStage(deps()).handle(decidedEvent(KEY));
    await decideChangesAction({ applyAction: undefined });
    // Act
    const attempt = rollbackCase(deps(), KEY, 'oncall@example.com');
    // Assess: refused, saying why, and nothing rolled back by either action
    await expect(attempt).rejects.toThrow(UsageError);
    await expect(attempt).rejects.toThrow(/another action than test\.remove-grants.*\(its plan: close it\)/);
    expect(a.rolledBack).toEqual([]);
    expect(b.rolledBack).toEqual([]);
    expect((await stored())?.remediation.state).toBe('applied');
  });

  it("rolls back a case applied before the applying action was recorded with its action when the target is that action's", async () => {
    // Prepare
    await createRemediationStage(deps()).handle(decidedEvent(KEY));
    const c = await stored();
    await store.put('cases', KEY, { ...c, remediation: { ...c?.remediation, applyAction: undefined } });
    // Act
    await rollbackCase(deps(), KEY, 'oncall@example.com');
    // Assess
    expect(a.rolledBack).toEqual([{ target: { name: 'acme-exports' }, before: { open: true } }]);
  });
});
