import { beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { type Action, type ActionContext, defineAction } from '../../shared/actions/define.js';
import { changePlan, noopPlan, step } from '../../shared/actions/plan.js';
import { getAction } from '../../shared/actions/registry.js';
import { MemoryDocStore } from '../../shared/adapters/store/memory.js';
import { AdapterError, ApplyIncompleteError, errorMessage, isRetryable, UsageError } from '../../shared/core/errors.js';
import { type Case, CaseSchema } from '../../shared/core/model/case.js';
import type { PipelineEvent } from '../../shared/core/model/events.js';
import { CaseNotWrittenError } from '../../shared/core/pipeline/announced.js';
import { decide, reevaluate } from '../../shared/core/pipeline/decide.js';
import { ExceptionSchema } from '../../shared/core/policy/exceptions.js';
import { DecidePolicySchema, EnrichmentPolicySchema } from '../../shared/core/policy/policy.js';
import { BUDGET_COLLECTION } from '../../shared/core/remediation/gates.js';
import { ApplyPolicySchema } from '../../shared/core/remediation/policy.js';
import {
  approveCase,
  approverRefusal,
  CLAIMS_COLLECTION,
  createRemediationStage,
  HELD_COLLECTION,
  type RemediationDeps,
  recoverAbandonedApplies,
  releaseApproved,
  releaseHeld,
  rollbackCase,
} from '../../shared/core/remediation/stage.js';
import { getDoc } from '../../shared/core/store/docs.js';
import {
  decidedCase,
  decidedEvent,
  findingFor,
  fixedClock,
  remediationDeps,
  testContext,
} from '../helpers/action-context.js';

/** A recording action double: counts plan/apply/rollback calls; the live state is a mutable flag. */
function recordingAction(
  opts: {
    productionSafe?: boolean;
    planError?: Error;
    slowApplyMs?: number;
    applyTimesOut?: number;
    /** The first apply waits for this before it changes anything (a process stalled, or killed, mid-apply). */
    stallFirstApply?: Promise<void>;
    /** The first apply then fails with this, having changed nothing. */
    failFirstApply?: Error;
    /** What the rollback says it left as it was. */
    rollbackNote?: string;
  } = {},
) {
  const calls = { plan: 0, apply: 0, rollback: 0 };
  /** The apply key each apply was given. */
  const applyKeys: Array<string | undefined> = [];
  let timeouts = opts.applyTimesOut ?? 0;
  const live = { open: true };
  const action = defineAction<{ bucket: string }, { open: boolean }>({
    id: 'test.close-bucket',
    title: 'Close a test bucket',
    provider: 'aws',
    handles: {},
    permissions: ['test:Read', 'test:Close'],
    verifyPermissions: ['test:Read'],
    risk: 'low',
    productionSafe: opts.productionSafe ?? false,
    target: z.object({ bucket: z.string() }),
    beforeSchema: z.object({ open: z.boolean() }),
    selectTarget: (f) => ({ bucket: f.resource.name }),
    async plan(target) {
      calls.plan++;
      if (opts.planError) throw opts.planError;
      const before = { ...live };
      if (!live.open) return noopPlan(target, before, `${target.bucket} already closed`);
      return changePlan(
        target,
        before,
        [step(`close ${target.bucket}`, 'test:Close', 'test:Close', target)],
        `close ${target.bucket}`,
      );
    },
    async apply(plan, ctx) {
      calls.apply++;
      applyKeys.push(ctx.applyKey);
      if (opts.stallFirstApply && calls.apply === 1) await opts.stallFirstApply;
      if (opts.failFirstApply && calls.apply === 1) throw opts.failFirstApply;
      if (opts.slowApplyMs) await new Promise((r) => setTimeout(r, opts.slowApplyMs));
      if (timeouts > 0) {
        timeouts--;
        // No answer: the stage cannot tell whether the close (or, in a real action, a create) took effect.
        const timeout = new AdapterError('transient', 'test:Close timed out');
        throw new ApplyIncompleteError(timeout, [], 1, `close ${plan.target.bucket}`, true);
      }
      live.open = false;
      return { before: plan.before, requestIds: [`req-${calls.apply}`] };
    },
    async verify() {
      return { holds: !live.open, observed: live, reason: '' };
    },
    async rollback({ before }) {
      calls.rollback++;
      live.open = before.open;
      return { requestIds: ['rb-1'], ...(opts.rollbackNote ? { note: opts.rollbackNote } : {}) };
    },
  });
  const widened: Action = action;
  return { action: widened, calls, live, applyKeys };
}

const finding = findingFor({
  provider: 'aws',
  id: 'arn:aws:s3:::acme-exports',
  type: 'S3Bucket',
  name: 'acme-exports',
});
const CASE_KEY = 'aws|arn:aws:s3:::acme-exports|Policy:S3/BucketAnonymousAccessGranted';

const SKIP_TAG_PASSED = [{ gate: 'skip-tag' as const, outcome: 'pass' as const, reason: 'no skip tag' }];

function makeCase(o: { env?: 'prod' | 'dev'; mode?: 'auto' | 'approval'; account?: string; key?: string } = {}): Case {
  const decision = {
    action: 'test.close-bucket',
    ...(o.env ? { env: o.env } : {}),
    ...(o.mode ? { mode: o.mode } : {}),
    reason: o.mode === 'approval' ? 'playbook says approval' : 'auto in dev',
    gates: SKIP_TAG_PASSED,
  };
  return decidedCase(finding, decision, {
    key: o.key ?? CASE_KEY,
    title: 'bucket public',
    ...(o.account ? { account: o.account } : {}),
  });
}

const decided = (key = CASE_KEY): PipelineEvent => decidedEvent(key);
const failedVerification = (n: number): PipelineEvent => ({
  id: `v-${n}`,
  type: 'case.verified',
  caseKey: CASE_KEY,
  at: '2026-11-18T10:00:00.000Z',
  verdict: 'failed',
});

describe('remediation stage', () => {
  let store: MemoryDocStore;
  let double: ReturnType<typeof recordingAction>;
  let ctx: ActionContext;

  const deps = (o: Partial<RemediationDeps> = {}): RemediationDeps => remediationDeps(store, double.action, ctx, o);
  const seed = async (c: Case = makeCase()) => {
    await store.put('cases', c.key, c);
    await store.put('findings', finding.key, finding);
  };
  const stored = async (key = CASE_KEY) => (await getDoc(store, 'cases', key, CaseSchema))?.value;

  beforeEach(() => {
    // Expiries (the hourly budgets') count on the tests' time, not the wall clock's: a few hours around FIXED_NOW.
    store = new MemoryDocStore({ clock: fixedClock() });
    double = recordingAction();
    ctx = testContext();
  });

  it('applies, records before-state and request ids, and asks for verification when every gate passes', async () => {
    // Prepare
    await seed();
    // Act
    const events = await createRemediationStage(deps()).handle(decided());
    // Assess
    const c = await stored();
    expect(double.calls.apply).toBe(1);
    expect(c?.remediation).toMatchObject({ state: 'applied', before: { open: true }, requestIds: ['req-1'] });
    expect(c?.status).toBe('remediated');
    expect(events.map((e) => e.type)).toEqual(['case.remediation', 'case.verify-requested']);
    expect(events[0]?.detail).toMatchObject({ requestIds: ['req-1'], before: { open: true } });
  });

  it('records a plan and applies nothing in dry-run', async () => {
    // Prepare
    await seed();
    // Act
    await createRemediationStage(deps({ apply: false })).handle(decided());
    // Assess
    expect(double.calls.apply).toBe(0);
    expect((await stored())?.remediation).toMatchObject({
      state: 'planned',
      plan: { steps: [{ say: 'close acme-exports' }] },
    });
  });

  it('plans from the finding only and says so when there is no cloud context', async () => {
    // Prepare
    await seed();
    // Act
    await createRemediationStage(deps({ ctx: undefined, apply: false })).handle(decided());
    // Assess
    const c = await stored();
    expect(double.calls.plan).toBe(0);
    expect(c?.remediation.state).toBe('planned');
    expect(c?.remediation.plan?.summary).toContain('dry-run, live state not read');
  });

  it("shows the registered action's outline as the offline plan's steps", async () => {
    // Prepare
    await seed();
    const s3 = getAction('s3.block-public-access');
    if (!s3) throw new Error('s3.block-public-access is not registered');
    // Act
    await createRemediationStage(deps({ ctx: undefined, apply: false, actions: { get: () => s3 } })).handle(decided());
    // Assess
    const steps = (await stored())?.remediation.plan?.steps ?? [];
    expect(steps.map((st) => st.call.api)).toEqual([
      's3:PutPublicAccessBlock',
      's3:PutBucketAcl',
      's3:PutBucketPolicy',
    ]);
    expect(steps[0]?.say).toContain('Block Public Access flags');
  });

  it('waits for approval in production when the action is not production-safe', async () => {
    // Prepare
    await seed(makeCase({ env: 'prod' }));
    // Act
    await createRemediationStage(deps()).handle(decided());
    // Assess
    const c = await stored();
    expect(double.calls.apply).toBe(0);
    expect(c?.status).toBe('awaiting-approval');
    expect(c?.remediation.stateReason).toContain('not production-safe');
  });

  it('applies after a person approves, recording the approver', async () => {
    // Prepare
    await seed(makeCase({ env: 'prod' }));
    await createRemediationStage(deps()).handle(decided());
    // Act
    const out = await approveCase(deps(), CASE_KEY, 'lead@example.com');
    // Assess
    const c = await stored();
    expect(out.state).toBe('applied');
    expect(c?.remediation).toMatchObject({ approvedBy: 'lead@example.com', state: 'applied' });
    expect(double.calls.apply).toBe(1);
  });

  it.each(['verified', 'suppressed', 'pending-verification'] as const)(
    'refuses to approve a %s case and leaves it as it is',
    async (status) => {
      // Prepare
      await seed({ ...makeCase({ env: 'prod' }), status });
      // Act
      const out = await approveCase(deps(), CASE_KEY, 'lead@example.com').catch((e: unknown) => e);
      // Assess
      expect(out).toBeInstanceOf(UsageError);
      expect(String(out)).toContain(`is ${status}: there is no fix to approve`);
      expect((await stored())?.status).toBe(status);
      expect(double.calls.apply).toBe(0);
    },
  );

  it("refuses an approval from someone apply.approvers does not list for the case's environment", async () => {
    // Prepare: prod lists the lead; every other environment ("*") the on-call.
    const policy = ApplyPolicySchema.parse({
      approvers: { prod: ['Lead@Example.com'], '*': ['oncall@example.com'] },
    });
    await seed(makeCase({ env: 'prod' }));
    await createRemediationStage(deps({ policy })).handle(decided());
    // Act
    const intern = await approveCase(deps({ policy }), CASE_KEY, 'intern@example.com');
    const waiting = await stored();
    const lead = await approveCase(deps({ policy }), CASE_KEY, 'lead@example.com');
    // Assess
    expect(intern.state).toBe('approval-refused');
    expect(intern.events).toEqual([
      expect.objectContaining({
        state: 'approval-refused',
        actor: 'intern@example.com',
        detail: {
          approver: 'intern@example.com',
          reason: 'intern@example.com may not approve fixes in prod (policy apply.approvers.prod)',
          mayApprove: 'approvers for prod: Lead@Example.com',
        },
      }),
    ]);
    expect(waiting?.remediation).toMatchObject({ state: 'awaiting-approval' });
    expect(waiting?.remediation.approvedBy).toBeUndefined();
    expect(lead.state).toBe('applied');
    expect(double.calls.apply).toBe(1);
  });

  it("takes anyone's approval where apply.approvers has no entry for the environment, no one's where it is empty", async () => {
    // Prepare
    const c = makeCase({ env: 'prod' });
    const open = ApplyPolicySchema.parse({ approvers: { dev: ['a@example.com'] } });
    const closed = ApplyPolicySchema.parse({ approvers: { '*': [] } });
    // Act / Assess
    expect(approverRefusal(open, c, 'anyone@example.com')).toBeUndefined();
    expect(approverRefusal(closed, c, 'anyone@example.com')).toEqual({
      reason: 'anyone@example.com may not approve fixes in prod (policy apply.approvers."*")',
      mayApprove: 'no one may approve fixes in prod',
    });
    expect(() => ApplyPolicySchema.parse({ approvers: { production: [] } })).toThrow();
  });

  it('applies an approval recorded where nothing may be applied once its event reaches an applying stage', async () => {
    // Prepare: the Jira webhook's wiring records the approval (apply off, no context).
    await seed(makeCase({ env: 'prod' }));
    await createRemediationStage(deps()).handle(decided());
    const recorded = await approveCase(deps({ apply: false }), CASE_KEY, 'lead@example.com');
    expect(recorded.state).toBe('approved');
    expect(double.calls.apply).toBe(0);
    const approved = recorded.events.find((e) => e.type === 'case.remediation');
    if (!approved) throw new Error('approveCase returned no approved event');
    // Act: the remediate function receives the event, twice (at-least-once delivery).
    await createRemediationStage(deps()).handle(approved);
    await createRemediationStage(deps()).handle(approved);
    // Assess
    const c = await stored();
    expect(c?.remediation).toMatchObject({ approvedBy: 'lead@example.com', state: 'applied' });
    expect(double.calls.apply).toBe(1);
  });

  it('ignores an approved event in a stage that may not apply', async () => {
    // Prepare
    await seed(makeCase({ env: 'prod' }));
    await createRemediationStage(deps()).handle(decided());
    const recorded = await approveCase(deps({ apply: false }), CASE_KEY, 'lead@example.com');
    const approved = recorded.events.find((e) => e.type === 'case.remediation');
    if (!approved) throw new Error('approveCase returned no approved event');
    // Act
    const out = await createRemediationStage(deps({ apply: false })).handle(approved);
    // Assess
    expect(out).toEqual([]);
    expect((await stored())?.remediation.state).toBe('approved');
  });

  it('marks the case approved for the next run when approval comes during a dry-run', async () => {
    // Prepare
    await seed(makeCase({ mode: 'approval' }));
    await createRemediationStage(deps({ apply: false })).handle(decided());
    // Act
    const out = await approveCase(deps({ apply: false }), CASE_KEY, 'lead@example.com');
    // Assess
    expect(out.state).toBe('approved');
    expect(double.calls.apply).toBe(0);
  });

  it('leaves an approval of a case resolved at the source since unapplied, and the case pending verification', async () => {
    // Prepare: approved during a dry-run, then the finding archived at its source before the next run --apply
    await seed(makeCase({ mode: 'approval' }));
    await createRemediationStage(deps({ apply: false })).handle(decided());
    await approveCase(deps({ apply: false }), CASE_KEY, 'lead@example.com');
    const approved = (await stored()) as Case;
    const archived = { ...finding, status: 'resolved' as const, updatedAt: '2026-11-18T10:30:00.000Z' };
    const { next } = decide({
      finding: archived,
      previous: finding,
      enrichment: approved.enrichment,
      existing: approved,
      exceptions: [],
      policy: DecidePolicySchema.parse({}),
      now: new Date('2026-11-18T10:30:00.000Z'),
    });
    expect(next.status).toBe('pending-verification');
    await store.put('cases', CASE_KEY, next);
    // Act: (decide's playbook names the real action for the finding; the double stands in for it)
    const events = await releaseApproved(deps({ actions: { get: () => double.action } }));
    // Assess
    expect(events).toEqual([]);
    expect(double.calls.apply).toBe(0);
    expect((await stored())?.status).toBe('pending-verification');
  });

  it('blocks with the reason when the live resource carries the skip tag', async () => {
    // Prepare
    await seed();
    const tags = { tagsFor: async () => ({ 'closeloop:skip': 'true' }) };
    // Act
    await createRemediationStage(deps({ tags })).handle(decided());
    // Assess
    const c = await stored();
    expect(double.calls.apply).toBe(0);
    expect(c?.remediation).toMatchObject({ state: 'blocked' });
    expect(c?.remediation.stateReason).toContain('skip tag');
  });

  it('fails closed when the live tags cannot be read, and leaves the skip tag to decide for a cloud the lookup cannot read', async () => {
    // Prepare
    await seed();
    const unreadable = {
      tagsFor: async () => {
        throw new Error('AccessDeniedException: tag:GetResources');
      },
    };
    const otherCloud = {
      tagsFor: async () => ({ 'closeloop:skip': 'true' }),
      handles: (provider: string) => provider === 'gcp',
    };
    // Act
    await createRemediationStage(deps({ tags: unreadable })).handle(decided());
    const blocked = await stored();
    await store.put('cases', CASE_KEY, makeCase());
    await createRemediationStage(deps({ tags: otherCloud })).handle({ ...decided(), id: 'd-again' });
    // Assess
    expect(blocked?.remediation.state).toBe('blocked');
    expect(blocked?.remediation.stateReason).toContain('live tags could not be read');
    expect(double.calls.apply).toBe(1);
    expect((await stored())?.remediation.gates.some((g) => g.gate === 'skip-tag' && g.reason.includes('live'))).toBe(
      false,
    );
  });

  describe('the environment on the live tags, read with the skip tag', () => {
    /** A lookup answering `tags`, counting its reads. */
    const liveTags = (tags: Record<string, string>) => {
      const reads = { n: 0 };
      const lookup = {
        async tagsFor() {
          reads.n++;
          return tags;
        },
      };
      return { reads, lookup };
    };
    const environmentGate = (c: Case | undefined) => c?.remediation.applyGates?.find((g) => g.gate === 'environment');

    it('asks for the production approval when a case decided in dev is tagged `env`=prod now, and applies once approved', async () => {
      // Prepare: decided dev, auto; the owner re-tagged the bucket since.
      await seed(makeCase({ env: 'dev' }));
      const live = liveTags({ env: 'prod', owner: 'data@example.com' });
      // Act
      await createRemediationStage(deps({ tags: live.lookup })).handle(decided());
      const waiting = await stored();
      const out = await approveCase(deps({ tags: live.lookup }), CASE_KEY, 'lead@example.com');
      // Assess
      expect(live.reads.n).toBe(2); // one read a run serves the skip tag and the environment
      expect(waiting?.remediation.state).toBe('awaiting-approval');
      expect(waiting?.remediation.stateReason).toBe(
        'production now: live tag `env`=prod (decide read dev): the action is not production-safe, a person approves',
      );
      expect(environmentGate(waiting)?.outcome).toBe('approval');
      expect(out.state).toBe('applied');
      expect(environmentGate(await stored())?.reason).toBe(
        'environment prod now: live tag `env`=prod (decide read dev) (approved)',
      );
      expect(double.calls.apply).toBe(1);
    });

    it('reads the live environment tag through the enrichment policy: its keys, any casing, its words', async () => {
      // Prepare: a deployment whose environment key is `Stage` and whose production word is `live`.
      await seed(makeCase({ env: 'dev' }));
      const enrichment = EnrichmentPolicySchema.parse({ tagAliases: { environment: ['Stage'] } });
      // Act
      await createRemediationStage(deps({ tags: liveTags({ ' stage ': 'Live' }).lookup, enrichment })).handle(
        decided(),
      );
      // Assess
      expect(double.calls.apply).toBe(0);
      expect((await stored())?.remediation.stateReason).toContain(
        'production now: live tag ` stage `=Live (decide read dev)',
      );
    });

    it("keeps decide's environment when the live tags name none, and a live non-production one passes", async () => {
      // Prepare
      await seed(makeCase({ env: 'dev' }));
      // Act
      await createRemediationStage(deps({ tags: liveTags({ owner: 'data@example.com' }).lookup })).handle(decided());
      const untagged = await stored();
      await store.put('cases', CASE_KEY, makeCase({ env: 'dev' }));
      double.live.open = true;
      await createRemediationStage(deps({ tags: liveTags({ Environment: 'test' }).lookup })).handle({
        ...decided(),
        id: 'd-again',
      });
      // Assess
      expect(untagged?.remediation.state).toBe('applied');
      expect(environmentGate(untagged)?.reason).toBe(
        'environment dev (decide; no environment tag on the live resource)',
      );
      expect(environmentGate(await stored())?.reason).toBe(
        'environment test now: live tag `Environment`=test (decide read dev)',
      );
      expect(double.calls.apply).toBe(2);
    });

    it('asks for approval when the live environment tag names more than one environment, or none known', async () => {
      // Prepare
      await seed(makeCase({ env: 'dev' }));
      // Act
      await createRemediationStage(deps({ tags: liveTags({ env: 'uat/prod' }).lookup })).handle(decided());
      const mixed = await stored();
      await store.put('cases', CASE_KEY, makeCase({ env: 'dev' }));
      await createRemediationStage(deps({ tags: liveTags({ env: 'prd01' }).lookup })).handle({
        ...decided(),
        id: 'd-2',
      });
      // Assess
      expect(double.calls.apply).toBe(0);
      expect(mixed?.remediation.state).toBe('awaiting-approval');
      expect(mixed?.remediation.stateReason).toBe(
        'environment unknown now: live tag `env`=uat/prod names more than one environment (`uat`, `prod`) (decide read dev): it may be production; the action is not production-safe, a person approves',
      );
      expect((await stored())?.remediation.stateReason).toContain(
        'environment unknown now: live tag `env`=prd01 names no known environment (decide read dev)',
      );
    });

    it("lets the registry's environment stand beside a live tag naming none known, and never lowers production", async () => {
      // Prepare: the registry said dev (the tag `env`=nonprod names no environment, as at decide); a prod case
      // tagged dev since still asks.
      const byRegistry = makeCase({ env: 'dev' });
      byRegistry.enrichment.provenance.environment = { via: 'registry-account', detail: 'account in the registry' };
      await seed(byRegistry);
      // Act
      await createRemediationStage(deps({ tags: liveTags({ env: 'nonprod' }).lookup })).handle(decided());
      const registry = await stored();
      await store.put('cases', CASE_KEY, makeCase({ env: 'prod' }));
      double.live.open = true;
      await createRemediationStage(deps({ tags: liveTags({ env: 'dev' }).lookup })).handle({ ...decided(), id: 'd-2' });
      // Assess
      expect(registry?.remediation.state).toBe('applied');
      expect(environmentGate(registry)?.reason).toBe(
        'environment dev (decide; the live tag `env`=nonprod names no known environment)',
      );
      const prod = await stored();
      expect(prod?.remediation.state).toBe('awaiting-approval');
      expect(prod?.remediation.stateReason).toContain(
        'production (decide read prod; the live tag `env`=dev does not lower it',
      );
      expect(double.calls.apply).toBe(1);
    });

    it('reads a placeholder environment tag (`env`=TBD) as no tag, as enrichment does, and applies as decided', async () => {
      // Prepare: decided dev from the bucket's name; its live `env` tag says TBD (enrichment.placeholderValues).
      const byName = makeCase({ env: 'dev' });
      byName.enrichment.provenance.environment = { via: 'name-pattern', detail: 'resource name acme-web-dev-assets' };
      await seed(byName);
      // Act
      const out = await createRemediationStage(deps({ tags: liveTags({ env: 'TBD' }).lookup })).handle(decided());
      // Assess: not "names no known environment" → unknown → production's approval
      expect(out.map((e) => e.type === 'case.remediation' && e.state)).toContain('applied');
      expect((await stored())?.remediation).toMatchObject({ state: 'applied', judgedEnvironment: 'dev' });
      expect(environmentGate(await stored())?.reason).toBe(
        'environment dev (decide; no environment tag on the live resource)',
      );
      expect(double.calls.apply).toBe(1);
    });

    describe("who may approve: production's approvers when the live tags say production", () => {
      const policy = ApplyPolicySchema.parse({
        approvers: { dev: ['dev-lead@example.com'], prod: ['lead@example.com', 'cto@example.com'] },
      });

      it('refuses the approver listed for dev only when the case decided dev is tagged prod now (or may be), and applies with one listed for prod', async () => {
        // Prepare: decided dev (auto); the bucket carries `env`=prod now.
        await seed(makeCase({ env: 'dev' }));
        const prodNow = liveTags({ env: 'prod' }).lookup;
        await createRemediationStage(deps({ policy, tags: prodNow })).handle(decided());
        const waiting = await stored();
        // Act
        const devLead = await approveCase(deps({ policy, tags: prodNow }), CASE_KEY, 'dev-lead@example.com');
        const afterDevLead = await stored();
        const lead = await approveCase(deps({ policy, tags: prodNow }), CASE_KEY, 'lead@example.com');
        // Assess
        expect(waiting?.remediation).toMatchObject({ state: 'awaiting-approval', judgedEnvironment: 'prod' });
        expect(devLead.state).toBe('approval-refused');
        expect(devLead.events[0]?.detail).toMatchObject({
          reason: 'dev-lead@example.com may not approve fixes in prod (policy apply.approvers.prod)',
        });
        expect(afterDevLead?.remediation.state).toBe('awaiting-approval');
        expect(afterDevLead?.remediation.approvedBy).toBeUndefined();
        expect(lead.state).toBe('applied');
        expect(double.calls.apply).toBe(1);
        // A live tag that leaves the environment unknown (it may be production) counts as production too.
        await store.put('cases', CASE_KEY, makeCase({ env: 'dev' }));
        double.live.open = true;
        const mixed = liveTags({ env: 'uat/prod' }).lookup;
        await createRemediationStage(deps({ policy, tags: mixed })).handle({ ...decided(), id: 'd-2' });
        expect((await stored())?.remediation).toMatchObject({ state: 'awaiting-approval', judgedEnvironment: 'prod' });
        const again = await approveCase(deps({ policy, tags: mixed }), CASE_KEY, 'dev-lead@example.com');
        expect(again.state).toBe('approval-refused');
        expect(double.calls.apply).toBe(1);
      });

      it("does not carry out an approval given while the case was dev once the bucket is tagged prod: it waits for production's approvers", async () => {
        // Prepare: decided dev, the playbook asks for approval; dev's approver approves in a dry-run, while the
        // bucket is still tagged dev.
        await seed(makeCase({ env: 'dev', mode: 'approval' }));
        const tags = { env: 'dev' };
        const lookup = { tagsFor: async () => ({ ...tags }) };
        await createRemediationStage(deps({ policy, tags: lookup })).handle(decided());
        const given = await approveCase(deps({ policy, tags: lookup, apply: false }), CASE_KEY, 'dev-lead@example.com');
        // The owner tags the bucket prod before the approval is carried out.
        tags.env = 'prod';
        // Act
        const carried = await releaseApproved(deps({ policy, tags: lookup }));
        const waiting = await stored();
        const lead = await approveCase(deps({ policy, tags: lookup }), CASE_KEY, 'lead@example.com');
        // Assess: nothing applied on dev's approval; the case says why and who may approve.
        expect(given.state).toBe('approved');
        expect(carried.map((e) => (e.type === 'case.remediation' ? e.state : e.type))).toEqual(['awaiting-approval']);
        expect(waiting?.remediation).toMatchObject({ state: 'awaiting-approval', judgedEnvironment: 'prod' });
        expect(waiting?.remediation.approvedBy).toBeUndefined();
        expect(waiting?.remediation.stateReason).toBe(
          'production now: live tag `env`=prod (decide read dev): the action is not production-safe, a person approves (dev-lead@example.com may not approve fixes in prod (policy apply.approvers.prod): the approval does not count; approvers for prod: lead@example.com, cto@example.com)',
        );
        expect(lead.state).toBe('applied');
        expect((await stored())?.remediation.approvedBy).toBe('lead@example.com');
        expect(double.calls.apply).toBe(1);
      });
    });
  });

  it('blocks when an exception became active after decide ran', async () => {
    // Prepare
    await seed();
    const exception = ExceptionSchema.parse({
      id: 'EXC-001',
      owner: 'data@example.com',
      justification: 'public dataset by design',
      scope: { resources: ['arn:aws:s3:::acme-exports'] },
      expires: '2027-01-01',
    });
    // Act
    await createRemediationStage(deps({ exceptions: async () => [exception] })).handle(decided());
    // Assess
    const c = await stored();
    expect(double.calls.apply).toBe(0);
    expect(c?.remediation.stateReason).toContain('EXC-001');
  });

  it('fails closed when the exceptions cannot be read', async () => {
    // Prepare
    await seed();
    // Act
    await createRemediationStage(deps({ exceptions: () => Promise.reject(new Error('store down')) })).handle(decided());
    // Assess
    const c = await stored();
    expect(double.calls.apply).toBe(0);
    expect(c?.remediation).toMatchObject({ state: 'blocked' });
    expect(c?.remediation.stateReason).toContain('store down');
  });

  it('fails closed when the live re-read errors', async () => {
    // Prepare
    double = recordingAction({
      planError: new AdapterError('denied', 's3:GetBucketAcl failed (denied: AccessDenied)'),
    });
    await seed();
    // Act
    await createRemediationStage(deps()).handle(decided());
    // Assess
    const c = await stored();
    expect(double.calls.apply).toBe(0);
    expect(c?.remediation.state).toBe('blocked');
    expect(c?.remediation.stateReason).toContain('live state could not be read');
  });

  it('blocks accounts on the apply denylist', async () => {
    // Prepare
    await seed();
    const policy = ApplyPolicySchema.parse({ accounts: { deny: ['111122223333'] } });
    // Act
    await createRemediationStage(deps({ policy })).handle(decided());
    // Assess
    expect((await stored())?.remediation.stateReason).toContain('apply.accounts.deny');
    expect(double.calls.apply).toBe(0);
  });

  it('holds work when the budget is spent and releases it in the next hour', async () => {
    // Prepare
    const policy = ApplyPolicySchema.parse({ budget: { perAccountPerHour: 1 } });
    await seed();
    await seed(makeCase({ key: 'aws|other|x' }));
    const stage = createRemediationStage(deps({ policy }));
    await stage.handle(decided());
    double.live.open = true; // the second resource is still open
    // Act
    await stage.handle(decided('aws|other|x'));
    // Assess
    const held = await stored('aws|other|x');
    expect(held?.remediation.state).toBe('held');
    expect(held?.remediation.stateReason).toContain('budget spent');
    expect(await store.get(HELD_COLLECTION, 'aws|other|x')).toBeDefined();
    expect(double.calls.apply).toBe(1);
    // Act (next hour)
    double.live.open = true;
    await releaseHeld(deps({ policy, clock: fixedClock(new Date('2026-11-18T11:00:00.000Z')) }));
    // Assess
    expect((await stored('aws|other|x'))?.remediation.state).toBe('applied');
    expect(await store.get(HELD_COLLECTION, 'aws|other|x')).toBeUndefined();
    // One budget per account: the 10:00 slot left the window as the 11:00 one was taken
    const budget = await store.list(BUDGET_COLLECTION);
    expect(budget.map((d) => d.value)).toEqual([
      { slots: [{ caseKey: 'aws|other|x', at: '2026-11-18T11:00:00.000Z' }] },
    ]);
  });

  it('counts the budget over any 60 minutes: applies just before the hour turns still count just after it', async () => {
    // Prepare: the budget (1) went to one case at 10:59
    const policy = ApplyPolicySchema.parse({ budget: { perAccountPerHour: 1 } });
    await seed();
    await seed(makeCase({ key: 'aws|other|x' }));
    const at = (iso: string) => fixedClock(new Date(iso));
    await createRemediationStage(deps({ policy, clock: at('2026-11-18T10:59:00.000Z') })).handle(decided());
    double.live.open = true;
    // Act: another case of the account two minutes later, in the next clock hour
    await createRemediationStage(deps({ policy, clock: at('2026-11-18T11:01:00.000Z') })).handle(
      decided('aws|other|x'),
    );
    // Assess: held, saying when the slot frees; released only once the first apply is an hour old
    const held = await stored('aws|other|x');
    expect(held?.remediation.state).toBe('held');
    expect(held?.remediation.stateReason).toContain('budget spent: 1 applies in the last 60 minutes');
    expect(held?.remediation.stateReason).toContain('frees at 2026-11-18T11:59:00.000Z');
    expect(double.calls.apply).toBe(1);
    expect(await releaseHeld(deps({ policy, clock: at('2026-11-18T11:58:00.000Z') }))).toMatchObject({ waiting: 1 });
    await releaseHeld(deps({ policy, clock: at('2026-11-18T11:59:00.000Z') }));
    expect((await stored('aws|other|x'))?.remediation.state).toBe('applied');
    expect(double.calls.apply).toBe(2);
  });

  it('leaves a held case as it is, without re-reading it or telling its ticket again, while its hold cannot have lifted', async () => {
    // Prepare: the hour's budget (1) went to one case, the other is held
    const policy = ApplyPolicySchema.parse({ budget: { perAccountPerHour: 1 } });
    await seed();
    await seed(makeCase({ key: 'aws|other|x' }));
    const stage = createRemediationStage(deps({ policy }));
    await stage.handle(decided());
    double.live.open = true;
    await stage.handle(decided('aws|other|x'));
    const plans = double.calls.plan;
    // Act: a release within the same hour (the schedule runs every few minutes)
    const sameHour = await releaseHeld(deps({ policy, clock: fixedClock(new Date('2026-11-18T10:55:00.000Z')) }));
    // Assess
    expect(sameHour).toMatchObject({ released: 0, waiting: 1, events: [] });
    expect(double.calls.plan).toBe(plans);
    expect((await stored('aws|other|x'))?.remediation.state).toBe('held');
    expect(await store.get(HELD_COLLECTION, 'aws|other|x')).toBeDefined();
  });

  it('leaves a held case an exception suppressed since as it is, and its expiry then re-opens it', async () => {
    // Prepare: the hour's budget (1) went to one case, the other is held; then the risk of the held one is
    // accepted (the exception sweep suppresses it)
    const policy = ApplyPolicySchema.parse({ budget: { perAccountPerHour: 1 } });
    await seed();
    await seed(makeCase({ key: 'aws|other|x' }));
    const stage = createRemediationStage(deps({ policy }));
    await stage.handle(decided());
    double.live.open = true;
    await stage.handle(decided('aws|other|x'));
    const exception = ExceptionSchema.parse({
      id: 'EXC-007',
      owner: 'data@example.com',
      justification: 'partner drop bucket, closed with the contract',
      scope: { resources: ['arn:aws:s3:::acme-exports'] },
      expires: '2026-11-30',
    });
    const decidePolicy = DecidePolicySchema.parse({});
    const suppressed = reevaluate(
      (await stored('aws|other|x')) as Case,
      [exception],
      decidePolicy,
      new Date('2026-11-18T10:30:00.000Z'),
    );
    expect(suppressed?.next.status).toBe('suppressed');
    await store.put('cases', 'aws|other|x', suppressed?.next);
    // Act: the next hour's release, then the sweep after the exception expired
    await releaseHeld(deps({ policy, clock: fixedClock(new Date('2026-11-18T11:00:00.000Z')) }));
    const released = await stored('aws|other|x');
    const expired = released && reevaluate(released, [exception], decidePolicy, new Date('2026-12-01T00:00:00.000Z'));
    // Assess: nothing read or applied for the accepted risk, the case still suppressed; the expiry re-opens it
    expect(double.calls.apply).toBe(1);
    expect(released).toMatchObject({ status: 'suppressed', exception: { id: 'EXC-007' } });
    expect(await store.get(HELD_COLLECTION, 'aws|other|x')).toBeUndefined();
    expect(expired?.next.status).toBe('reopened');
    expect(expired?.decision.exceptionExpired?.id).toBe('EXC-007');
  });

  it('holds every apply while the circuit breaker is open', async () => {
    // Prepare
    const policy = ApplyPolicySchema.parse({ circuitBreaker: { failedVerifications: 2, windowMinutes: 60 } });
    await seed(makeCase({ key: 'aws|applied|x' }));
    const stage = createRemediationStage(deps({ policy }));
    await stage.handle(decided('aws|applied|x'));
    for (const n of [1, 2, 2]) await stage.handle({ ...failedVerification(n), caseKey: 'aws|applied|x' });
    double.live.open = true;
    await seed();
    // Act
    await stage.handle(decided());
    // Assess
    const c = await stored();
    expect(c?.remediation.state).toBe('held');
    expect(c?.remediation.stateReason).toContain('circuit breaker open: 2 failed verifications');
    expect(double.calls.apply).toBe(1);
  });

  it('applies once when the same case is delivered twice at once', async () => {
    // Prepare
    double = recordingAction({ slowApplyMs: 30 });
    await seed();
    const stage = createRemediationStage(deps());
    // Act
    const [a, b] = await Promise.all([stage.handle(decided()), stage.handle(decided())]);
    // Assess
    expect(double.calls.apply).toBe(1);
    expect([...(a ?? []), ...(b ?? [])].filter((e) => e.type === 'case.verify-requested')).toHaveLength(1);
  });

  it('re-sends the events of an apply, not a second apply, when the event comes back before verification', async () => {
    // Prepare: an apply whose follow-ups were lost (the function died before publishing them).
    await seed();
    const stage = createRemediationStage(deps());
    const first = await stage.handle(decided());
    // Act
    const again = await stage.handle(decided());
    const c = await stored();
    if (!c) throw new Error('no case');
    await store.put('cases', c.key, {
      ...c,
      verification: {
        verdict: 'verified',
        at: '2026-11-18T10:05:00.000Z',
        reason: 'holds',
        attempts: 1,
        trigger: 'apply',
        upstream: [],
      },
    });
    const afterVerified = await stage.handle(decided());
    // Assess
    expect(double.calls.apply).toBe(1);
    expect(again.map((e) => `${e.type} ${e.id}`)).toEqual(first.map((e) => `${e.type} ${e.id}`));
    expect(again[0]?.detail).toMatchObject({ requestIds: ['req-1'], before: { open: true } });
    expect(afterVerified).toEqual([]);
  });

  it('gives the retry of an apply that stopped part-way the same apply key, and a new apply after a rollback another', async () => {
    // Prepare: the first apply gets no answer (it may have made something), so the state still needs the fix
    double = recordingAction({ applyTimesOut: 1 });
    await seed();
    // Act
    await createRemediationStage(deps()).handle(decided());
    const failed = await stored();
    await approveCase(deps(), CASE_KEY, 'oncall@example.com');
    const retried = await stored();
    await rollbackCase(deps(), CASE_KEY, 'oncall@example.com');
    await approveCase(deps(), CASE_KEY, 'oncall@example.com');
    const reapplied = await stored();
    // Assess: two claims, one remediation (what the first made is found again); a later remediation is another
    const [first, second, third] = double.applyKeys;
    expect(failed?.remediation).toMatchObject({ state: 'failed', unconfirmed: 'close acme-exports' });
    expect(failed?.remediation.error).toEqual(expect.any(String));
    expect(retried?.remediation.state).toBe('applied');
    expect(retried?.remediation.error).toBeUndefined();
    expect(retried?.remediation.applyToken).not.toBe(failed?.remediation.applyToken);
    expect(first).toEqual(expect.any(String));
    expect(second).toBe(first);
    expect(retried?.remediation.applyKey).toBe(first);
    expect(reapplied?.remediation.state).toBe('applied');
    expect(third).toEqual(expect.any(String));
    expect(third).not.toBe(first);
  });

  it('gives a new apply after the rollback of a failed, partial apply a new apply key and none of its steps', async () => {
    // Prepare: the first apply gets no answer (it may have made something, a snapshot); a person rolls it back
    double = recordingAction({ applyTimesOut: 1 });
    await seed();
    await createRemediationStage(deps()).handle(decided());
    await rollbackCase(deps(), CASE_KEY, 'oncall@example.com');
    const rolledBack = await stored();
    // Act: a person approves a new apply
    const out = await approveCase(deps(), CASE_KEY, 'oncall@example.com');
    // Assess: the rollback ended that remediation; the new apply is another one (its own key, steps and
    // before-state), not the retry of the rolled-back one
    const c = await stored();
    const [first, second] = double.applyKeys;
    expect(rolledBack?.remediation).toMatchObject({ state: 'rolled-back', requestIds: ['rb-1'] });
    expect(rolledBack?.remediation.applyKey).toBeUndefined();
    expect(rolledBack?.remediation.unconfirmed).toBeUndefined();
    expect(out.state).toBe('applied');
    expect(second).toEqual(expect.any(String));
    expect(second).not.toBe(first);
    expect(c?.remediation).toMatchObject({ applyKey: second, requestIds: ['req-2'], before: { open: true } });
    expect(c?.remediation.stateReason).not.toMatch(/earlier attempt/);
  });

  it('restores the before-state and records who rolled back', async () => {
    // Prepare
    await seed();
    await createRemediationStage(deps()).handle(decided());
    // Act
    const out = await rollbackCase(deps(), CASE_KEY, 'oncall@example.com');
    // Assess
    const c = await stored();
    expect(out.requestIds).toEqual(['rb-1']);
    expect(double.live.open).toBe(true);
    expect(c?.remediation).toMatchObject({ state: 'rolled-back', rolledBackBy: 'oncall@example.com' });
  });

  it('rolls back no failed apply that changed nothing: its before-state is not written over the resource as it is now', async () => {
    // Prepare: the apply is refused at its first call (nothing changed); the owner then closes the bucket by hand.
    double = recordingAction({ failFirstApply: new Error('AccessDenied: test:Close') });
    await seed();
    await createRemediationStage(deps()).handle(decided());
    expect((await stored())?.remediation.state).toBe('failed');
    double.live.open = false;
    // Act
    const out = await rollbackCase(deps(), CASE_KEY, 'oncall@example.com').catch((e: unknown) => e);
    // Assess: refused with why; the bucket stays closed, the case failed
    expect(out).toBeInstanceOf(UsageError);
    expect(String(out)).toContain('nothing to roll back');
    expect(double.calls.rollback).toBe(0);
    expect(double.live.open).toBe(false);
    expect((await stored())?.remediation.state).toBe('failed');
  });

  it('records what the rollback left as it was with the rollback', async () => {
    // Prepare: a part of the fixed resource was deleted since the fix, so the rollback skipped it.
    double = recordingAction({ rollbackNote: 'container(s) logs no longer exist: skipped, not restored' });
    await seed();
    await createRemediationStage(deps()).handle(decided());
    // Act
    await rollbackCase(deps(), CASE_KEY, 'oncall@example.com');
    // Assess
    const c = await stored();
    expect(c?.remediation.stateReason).toBe(
      'rolled back by oncall@example.com: container(s) logs no longer exist: skipped, not restored',
    );
  });

  it('records a no-op when the resource is already compliant', async () => {
    // Prepare
    double.live.open = false;
    await seed();
    // Act
    await createRemediationStage(deps()).handle(decided());
    // Assess
    expect((await stored())?.remediation.state).toBe('noop');
    expect(double.calls.apply).toBe(0);
  });

  it('applies no fix to a new case before its write lands, and applies it once when the event comes back after', async () => {
    // Prepare: the ingest announced the new case at version 1; its write has not landed
    await store.put('findings', finding.key, finding);
    const stage = createRemediationStage(deps());
    const event: PipelineEvent = { ...decided(), caseVersion: 1 };
    // Act
    const early = await stage.handle(event).then(
      () => undefined,
      (e: unknown) => e,
    );
    const callsBefore = { ...double.calls };
    await store.put('cases', CASE_KEY, makeCase(), { expectVersion: 0 });
    const first = await stage.handle(event);
    const again = await stage.handle(event);
    // Assess
    expect(early).toBeInstanceOf(CaseNotWrittenError);
    expect(isRetryable(early)).toBe(true);
    expect(callsBefore).toEqual({ plan: 0, apply: 0, rollback: 0 });
    expect(double.calls.apply).toBe(1);
    expect(first.map((e) => e.type)).toEqual(['case.remediation', 'case.verify-requested']);
    expect(again.filter((e) => e.type === 'case.verify-requested').map((e) => e.id)).toEqual(
      first.filter((e) => e.type === 'case.verify-requested').map((e) => e.id),
    );
  });

  it('decides nothing on the state before the write an event announces, and on that write once it lands', async () => {
    // Prepare: the case stored at version 1 waits for approval (prod); the decision announced at version 2
    // makes it a dev case fixed automatically
    await seed(makeCase({ env: 'prod' }));
    const stage = createRemediationStage(deps());
    const event: PipelineEvent = { ...decided(), caseVersion: 2 };
    // Act
    const early = await stage.handle(event).then(
      () => undefined,
      (e: unknown) => e,
    );
    const untouched = await store.get('cases', CASE_KEY);
    await store.put('cases', CASE_KEY, makeCase(), { expectVersion: 1 });
    await stage.handle(event);
    // Assess
    expect(errorMessage(early)).toBe(`case ${CASE_KEY} not written yet at version 2 (stored: 1)`);
    expect(untouched?.version).toBe(1);
    expect(CaseSchema.parse(untouched?.value).remediation.state).not.toBe('awaiting-approval');
    expect(double.calls.apply).toBe(1);
    expect((await stored())?.remediation.state).toBe('applied');
  });

  describe('an apply whose process died (its claim abandoned)', () => {
    const at = (iso: string) => fixedClock(new Date(iso));
    const CLAIMED = '2026-11-18T10:00:00.000Z'; // fixedClock(): the time the claim is taken
    /** Starts an apply that stalls mid-way, as a killed process leaves it; resolves once the case is claimed. */
    const stalledApply = async () => {
      let finish = () => {};
      const stalled = new Promise<void>((r) => {
        finish = r;
      });
      double = recordingAction({ stallFirstApply: stalled });
      await seed();
      const running = createRemediationStage(deps()).handle(decided());
      while (double.calls.apply === 0) await new Promise((r) => setTimeout(r, 1));
      return { running, finish };
    };

    it('names the action the claim applied when it is settled, not the one decide chose since', async () => {
      // Prepare: the claim is test.close-bucket's; a playbook change makes decide choose another action meanwhile.
      await stalledApply();
      const claimed = await stored();
      if (!claimed) throw new Error('no case');
      await store.put('cases', CASE_KEY, {
        ...claimed,
        remediation: { ...claimed.remediation, action: 's3.block-public-access' },
      });
      // Act
      const old = await recoverAbandonedApplies(
        deps({ clock: at('2026-11-18T11:30:00.000Z') }),
        new Date('2026-11-18T11:30:00.000Z'),
      );
      // Assess: the bound of an action no longer chosen is the longer one, but the text names the apply's action
      expect(old.recovered).toBe(1);
      expect((await stored())?.remediation.stateReason).toMatch(/^apply of test\.close-bucket interrupted: /);
    });

    it('settles a claim older than the bound as failed with why and the failed event, and leaves a younger one alone', async () => {
      // Prepare
      await stalledApply();
      // Act
      const young = await recoverAbandonedApplies(
        deps({ clock: at('2026-11-18T10:14:00.000Z') }),
        new Date('2026-11-18T10:14:00.000Z'),
      );
      const afterYoung = await stored();
      const old = await recoverAbandonedApplies(
        deps({ clock: at('2026-11-18T10:16:00.000Z') }),
        new Date('2026-11-18T10:16:00.000Z'),
      );
      const again = await recoverAbandonedApplies(
        deps({ clock: at('2026-11-18T10:21:00.000Z') }),
        new Date('2026-11-18T10:21:00.000Z'),
      );
      // Assess: untouched within 15 min; then failed, its outcome unknown, the before-state kept for rollback
      expect(young).toMatchObject({ recovered: 0, live: 1, events: [] });
      expect(afterYoung?.remediation).toMatchObject({ state: 'applying', claimedAt: CLAIMED });
      const c = await stored();
      expect(c?.status).toBe('failed');
      expect(c?.remediation).toMatchObject({
        state: 'failed',
        before: { open: true },
        interruptedAt: '2026-11-18T10:16:00.000Z',
      });
      // The interruption is the uncertainty; `unconfirmed` stays for a step an earlier attempt left unanswered
      expect(c?.remediation.unconfirmed).toBeUndefined();
      expect(c?.remediation.stateReason).toBe(
        `apply of test.close-bucket interrupted: no outcome within 15 min of its claim at ${CLAIMED}; ` +
          'it may have taken effect in part — the live state decides the next attempt',
      );
      expect(old.recovered).toBe(1);
      expect(old.events).toHaveLength(1);
      expect(old.events[0]).toMatchObject({
        type: 'case.remediation',
        caseKey: CASE_KEY,
        state: 'failed',
        detail: { reason: c?.remediation.stateReason, unconfirmed: 'close acme-exports (interrupted)' },
      });
      expect(again).toMatchObject({ recovered: 0, events: [] });
      expect(await store.get(CLAIMS_COLLECTION, CASE_KEY)).toBeUndefined();
    });

    it('records the outcome of the apply when it finishes after all, under the same claim', async () => {
      // Prepare: settled as abandoned while the apply was stalled
      const { running, finish } = await stalledApply();
      await recoverAbandonedApplies(
        deps({ clock: at('2026-11-18T10:16:00.000Z') }),
        new Date('2026-11-18T10:16:00.000Z'),
      );
      // Act: the apply goes on and finishes
      finish();
      const events = await running;
      // Assess: what was applied is on the case, and its verification is owed
      const c = await stored();
      expect(c?.remediation).toMatchObject({ state: 'applied', requestIds: ['req-1'], before: { open: true } });
      expect(c?.remediation.interruptedAt).toBeUndefined();
      expect(c?.remediation.error).toBeUndefined();
      expect(c?.remediation.unconfirmed).toBeUndefined();
      expect(events.map((e) => e.type)).toEqual(['case.remediation', 'case.verify-requested']);
    });

    it('a late plain failure of an interrupted apply leaves nothing uncertain: a retry is not taken for that apply finishing the fix', async () => {
      // Prepare: settled as abandoned while the apply was stalled; the apply then fails having changed nothing
      let finish = () => {};
      const stalled = new Promise<void>((r) => {
        finish = r;
      });
      double = recordingAction({ stallFirstApply: stalled, failFirstApply: new Error('AccessDenied: test:Close') });
      await seed();
      const running = createRemediationStage(deps()).handle(decided());
      while (double.calls.apply === 0) await new Promise((r) => setTimeout(r, 1));
      await recoverAbandonedApplies(
        deps({ clock: at('2026-11-18T10:16:00.000Z') }),
        new Date('2026-11-18T10:16:00.000Z'),
      );
      finish();
      await running;
      const failed = await stored();
      // Act: someone closes the bucket by hand; a person retries the approved plan
      double.live.open = false;
      const retry = await approveCase(deps({ clock: at('2026-11-18T10:20:00.000Z') }), CASE_KEY, 'oncall@example.com');
      // Assess: the failure replaced the interruption; the retry is an apply of its own (its own key), not
      // "applied by an earlier attempt" (the failed apply changed nothing)
      expect(failed?.remediation).toMatchObject({ state: 'failed', error: 'AccessDenied: test:Close' });
      expect(failed?.remediation.interruptedAt).toBeUndefined();
      expect(failed?.remediation.unconfirmed).toBeUndefined();
      expect(retry.state).toBe('applied');
      expect((await stored())?.remediation.stateReason).not.toMatch(/earlier attempt/);
      expect(double.calls.apply).toBe(2);
      expect(double.applyKeys[1]).not.toBe(double.applyKeys[0]);
    });

    it("keeps a retry's outcome when the abandoned apply finishes after the retry claimed the case", async () => {
      // Prepare: settled as abandoned, then retried by a person: the retry re-reads and applies
      const { running, finish } = await stalledApply();
      await recoverAbandonedApplies(
        deps({ clock: at('2026-11-18T10:16:00.000Z') }),
        new Date('2026-11-18T10:16:00.000Z'),
      );
      const retry = await approveCase(deps({ clock: at('2026-11-18T10:20:00.000Z') }), CASE_KEY, 'oncall@example.com');
      const retried = await stored();
      // Act: the first apply finishes after the retry
      finish();
      const late = await running;
      // Assess: the retry's claim stands; the late apply records nothing over it
      expect(retry.state).toBe('applied');
      expect(late).toEqual([]);
      const c = await stored();
      expect(c?.remediation.applyToken).toBe(retried?.remediation.applyToken);
      expect(c?.remediation).toMatchObject({
        state: 'applied',
        approvedBy: 'oncall@example.com',
        before: { open: true },
      });
    });

    it('a case that cannot be read stops neither the recovery of the other claims nor the release of the other held cases', async () => {
      // Prepare: an abandoned claim and a held case, each listed after a case whose document no longer parses
      const BROKEN = 'aws|0-broken|x';
      await store.put('cases', BROKEN, { key: BROKEN, remediation: { state: 'applying' } });
      await store.put(CLAIMS_COLLECTION, BROKEN, { caseKey: BROKEN, at: CLAIMED });
      await store.put(HELD_COLLECTION, BROKEN, { caseKey: BROKEN, reason: 'budget spent', at: CLAIMED });
      await stalledApply();
      const HELD = 'aws|held|x';
      const held = makeCase({ key: HELD });
      await seed({ ...held, remediation: { ...held.remediation, state: 'held', stateReason: 'budget spent' } });
      await store.put(HELD_COLLECTION, HELD, { caseKey: HELD, reason: 'budget spent', at: CLAIMED });
      double.live.open = true;
      const later = deps({ clock: at('2026-11-18T11:00:00.000Z') });
      // Act
      const recovery = await recoverAbandonedApplies(later, new Date('2026-11-18T11:00:00.000Z'));
      const release = await releaseHeld(later);
      // Assess: each broken case counted as an error, every other one handled
      expect(recovery).toMatchObject({ recovered: 1, errors: 1 });
      expect((await stored())?.remediation.state).toBe('failed');
      expect(release).toMatchObject({ released: 1, errors: 1 });
      expect((await stored(HELD))?.remediation.state).toBe('applied');
    });

    it('starts no case with only seconds left before its bound, even before any case was timed', async () => {
      // Prepare: an abandoned claim and a held case
      await stalledApply();
      const HELD = 'aws|held|x';
      const held = makeCase({ key: HELD });
      await seed({ ...held, remediation: { ...held.remediation, state: 'held', stateReason: 'budget spent' } });
      await store.put(HELD_COLLECTION, HELD, { caseKey: HELD, reason: 'budget spent', at: CLAIMED });
      const now = new Date('2026-11-18T11:00:00.000Z');
      const later = deps({ clock: at(now.toISOString()) });
      const until = now.getTime() + 5_000; // a few seconds: less than a case is taken to need
      // Act
      const recovery = await recoverAbandonedApplies(later, now, { until });
      const release = await releaseHeld(later, { until });
      // Assess: both left for the next run
      expect(recovery).toMatchObject({ recovered: 0, remaining: 1 });
      expect(release).toMatchObject({ released: 0, remaining: 1 });
      expect((await stored())?.remediation.state).toBe('applying');
      expect((await stored(HELD))?.remediation.state).toBe('held');
    });

    it("counts the age of a claim taken before claim times were kept from the case's last update", async () => {
      // Prepare: a claim as the earlier code left it (no claimedAt, no pointer)
      const c = makeCase();
      await seed({
        ...c,
        updatedAt: '2026-11-18T09:00:00.000Z',
        status: 'planned',
        remediation: { ...c.remediation, state: 'applying', applyToken: 'old-claim', stateReason: 'applying' },
      });
      // Act
      const early = await recoverAbandonedApplies(
        deps({ clock: at('2026-11-18T09:10:00.000Z') }),
        new Date('2026-11-18T09:10:00.000Z'),
      );
      const late = await recoverAbandonedApplies(
        deps({ clock: at('2026-11-18T09:20:00.000Z') }),
        new Date('2026-11-18T09:20:00.000Z'),
      );
      // Assess
      expect(early).toMatchObject({ swept: true, recovered: 0, live: 1 });
      expect(late).toMatchObject({ swept: false, recovered: 1 });
      expect((await stored())?.remediation.stateReason).toContain(
        "within 15 min of the case's last update at 2026-11-18T09:00:00.000Z (claim time not recorded)",
      );
    });
  });
});
