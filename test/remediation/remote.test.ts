import { beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { type Action, defineAction } from '../../shared/actions/define.js';
import { changePlan, noopPlan, step } from '../../shared/actions/plan.js';
import { MemoryDocStore } from '../../shared/adapters/store/memory.js';
import { AdapterError, ApplyIncompleteError } from '../../shared/core/errors.js';
import { type Case, CaseSchema } from '../../shared/core/model/case.js';
import type { PipelineEvent } from '../../shared/core/model/events.js';
import { silentLogger } from '../../shared/core/ports.js';
import { ApplyPolicySchema } from '../../shared/core/remediation/policy.js';
import {
  executeRemote,
  RemoteEnvironmentSchema,
  type RemoteExecutor,
  type RemoteRequest,
  type RemoteResult,
} from '../../shared/core/remediation/remote.js';
import {
  approveCase,
  createRemediationStage,
  handOverStillOwed,
  type RemediationDeps,
  recordRemoteResult,
  recoverAbandonedApplies,
  releaseHeld,
  rollbackCase,
} from '../../shared/core/remediation/stage.js';
import { getDoc } from '../../shared/core/store/docs.js';
import { decidedCase, findingFor, fixedClock, testContext } from '../helpers/action-context.js';

const ACCOUNT_ID =
  '/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-data/providers/Microsoft.Storage/storageAccounts/acmedata';
const CASE_KEY = `azure|${ACCOUNT_ID.toLowerCase()}|Storage.Blob_OpenACL`;
const finding = findingFor({ provider: 'azure', id: ACCOUNT_ID, type: 'StorageAccount', name: 'acmedata' });

/** An Azure action double: the live account flag is mutable; counts its calls. */
function azureDouble() {
  const calls = { plan: 0, apply: 0, rollback: 0 };
  /** `loseAnswer`: the next apply takes effect and its call then times out. `readError`: every plan read throws it. */
  const live: { open: boolean; loseAnswer: boolean; rollbackNote?: string; readError?: unknown } = {
    open: true,
    loseAnswer: false,
  };
  const action = defineAction<{ account: string }, { open: boolean }>({
    id: 'test.azure-close',
    title: 'Close a test account',
    provider: 'azure',
    handles: {},
    permissions: ['Microsoft.Storage/storageAccounts/write'],
    verifyPermissions: ['Microsoft.Storage/storageAccounts/read'],
    risk: 'low',
    productionSafe: true,
    target: z.object({ account: z.string() }),
    beforeSchema: z.object({ open: z.boolean() }),
    selectTarget: (f) => ({ account: f.resource.name }),
    async plan(target) {
      calls.plan++;
      if (live.readError !== undefined) throw live.readError;
      if (!live.open) return noopPlan(target, { open: live.open }, `${target.account} already closed`);
      const steps = [step(`close ${target.account}`, 'update', 'Microsoft.Storage/storageAccounts/write', target)];
      return changePlan(target, { open: live.open }, steps, `close ${target.account}`);
    },
    async apply(plan) {
      calls.apply++;
      live.open = false;
      if (live.loseAnswer) {
        live.loseAnswer = false;
        const timeout = new AdapterError('transient', 'update acmedata failed (transient: TimeoutError)');
        throw new ApplyIncompleteError(timeout, [], 1, 'close acmedata', true);
      }
      return { before: plan.before, requestIds: ['arm-req-1'] };
    },
    async verify() {
      return { holds: !live.open, observed: { open: live.open }, reason: live.open ? 'still open' : 'closed' };
    },
    async rollback({ before }) {
      calls.rollback++;
      live.open = before.open;
      return { requestIds: ['arm-rb-1'], ...(live.rollbackNote ? { note: live.rollbackNote } : {}) };
    },
  });
  const widened: Action = action;
  return { action: widened, calls, live };
}

function azureCase(): Case {
  return decidedCase(
    finding,
    { action: 'test.azure-close', gates: [{ gate: 'skip-tag', outcome: 'pass', reason: 'no skip tag' }] },
    {
      key: CASE_KEY,
      account: '00000000-0000-0000-0000-000000000000',
      region: 'westeurope',
      type: 'Storage.Blob_OpenACL',
      title: 'container public',
      severity: 'medium',
    },
  );
}

const decided: PipelineEvent = {
  id: 'd-1',
  type: 'case.decided',
  caseKey: CASE_KEY,
  at: '2026-11-18T10:00:00.000Z',
  isNewCase: true,
  recurrence: false,
  statusChanged: true,
};

/** Records hand-overs; runs azure only, like the hub's executor. */
function recordingExecutor(fail?: Error) {
  const sent: RemoteRequest[] = [];
  const executor: RemoteExecutor = {
    runs: (provider) => provider === 'azure',
    async dispatch(request) {
      if (fail) throw fail;
      sent.push(request);
    },
  };
  return { executor, sent };
}

describe('remote remediation on the hub', () => {
  let store: MemoryDocStore;
  let double: ReturnType<typeof azureDouble>;
  const deps = (o: Partial<RemediationDeps> = {}): RemediationDeps => ({
    store,
    actions: { get: (id) => (id === double.action.id ? double.action : undefined) },
    ctx: testContext(),
    clock: fixedClock(),
    log: silentLogger,
    policy: ApplyPolicySchema.parse({}),
    apply: true,
    actor: 'closeloop@aws-hub-test',
    ...o,
  });
  const stored = async () => (await getDoc(store, 'cases', CASE_KEY, CaseSchema))?.value;
  /** The spoke's side: its action lookup and context, applying under its own identity. */
  const spokeDeps = () => ({
    actions: deps().actions,
    ctx: testContext(),
    clock: fixedClock(),
    apply: true,
    actor: 'closeloop@azure-spoke',
  });
  /** The hub's stage dispatches the decided case; returns the request the spoke receives. */
  const dispatch = async (remote: ReturnType<typeof recordingExecutor>) => {
    await createRemediationStage(deps({ remote: remote.executor })).handle(decided);
    const request = remote.sent[0];
    if (!request) throw new Error('nothing dispatched');
    return request;
  };

  beforeEach(async () => {
    store = new MemoryDocStore();
    double = azureDouble();
    await store.put('cases', CASE_KEY, azureCase());
    await store.put('findings', finding.key, finding);
  });

  it('dispatches instead of applying and keeps the claim when the action runs in a spoke', async () => {
    // Prepare
    const remote = recordingExecutor();
    // Act
    const events = await createRemediationStage(deps({ remote: remote.executor })).handle(decided);
    // Assess
    const c = await stored();
    expect(double.calls).toEqual({ plan: 0, apply: 0, rollback: 0 });
    expect(remote.sent).toHaveLength(1);
    expect(remote.sent[0]).toMatchObject({
      caseKey: CASE_KEY,
      provider: 'azure',
      action: 'test.azure-close',
      op: 'apply',
      target: { account: 'acmedata' },
      applyToken: c?.remediation.applyToken,
      actor: 'closeloop@aws-hub-test',
      skipTag: 'closeloop:skip',
      resource: { id: ACCOUNT_ID, account: '00000000-0000-0000-0000-000000000000', region: 'westeurope' },
    });
    expect(c?.remediation.state).toBe('applying');
    expect(c?.remediation.stateReason).toMatch(/^dispatched test.azure-close to the azure spoke/);
    expect(events.map((e) => (e.type === 'case.remediation' ? e.state : e.type))).toEqual(['dispatched']);
  });

  it('the spoke re-reads the live tags before it applies: a skip tag set since, or tags it cannot read, stop the fix', async () => {
    // Prepare
    const request = await dispatch(recordingExecutor());
    const asked: string[] = [];
    const tagged = (tags: Record<string, string>) => ({
      tagsFor: async (r: { id: string }) => {
        asked.push(r.id);
        return tags;
      },
    });
    const unreadable = {
      tagsFor: async () => {
        throw new Error('AuthorizationFailed: Microsoft.Resources/tags/read');
      },
    };
    // Act
    const skipped = await executeRemote(request, { ...spokeDeps(), tags: tagged({ 'closeloop:skip': 'change-1234' }) });
    const denied = await executeRemote(request, { ...spokeDeps(), tags: unreadable });
    const falseValue = await executeRemote(request, { ...spokeDeps(), tags: tagged({ 'closeloop:skip': 'false' }) });
    // Assess
    expect(asked).toEqual([ACCOUNT_ID, ACCOUNT_ID]);
    expect(skipped.outcome).toBe('blocked');
    expect(skipped.reason).toBe('resource carries the skip tag `closeloop:skip` now: nothing applied');
    expect(denied.outcome).toBe('blocked');
    expect(denied.reason).toContain('live tags could not be read: AuthorizationFailed');
    expect(falseValue.outcome).toBe('applied');
    expect(double.calls.apply).toBe(1);
  });

  it('the spoke judges the environment on the live tags it reads: a case decided in dev tagged `env`=prod since waits for a person, then applies', async () => {
    // Prepare: decided dev on the hub (which cannot read Azure tags); the account was tagged prod since.
    const remote = recordingExecutor();
    const request = await dispatch(remote);
    const prodNow = {
      reads: 0,
      async tagsFor() {
        prodNow.reads++;
        return { Environment: 'Production' };
      },
    };
    // Act
    const waiting = await executeRemote(request, { ...spokeDeps(), tags: prodNow });
    await recordRemoteResult(deps(), waiting);
    const asked = await stored();
    await approveCase(deps({ remote: remote.executor }), CASE_KEY, 'lead@example.com');
    const approved = remote.sent[1];
    if (!approved) throw new Error('no approved hand-over dispatched');
    const applied = await executeRemote(approved, { ...spokeDeps(), tags: prodNow });
    // Assess: what the hub sends lets the spoke judge as the hub would; one read per apply serves both checks
    expect(request.environment).toMatchObject({ decided: 'dev', byRegistry: false, allowProductionAuto: false });
    expect(request.environment?.tagKeys).toContain('Environment');
    expect(prodNow.reads).toBe(2);
    expect(waiting.outcome).toBe('awaiting-approval');
    expect(waiting.reason).toBe(
      'production now: live tag `Environment`=Production (decide read dev): apply.allowProductionAuto is off, a person approves',
    );
    expect(asked?.remediation.state).toBe('awaiting-approval');
    expect(asked?.remediation.stateReason).toContain('live tag `Environment`=Production (decide read dev)');
    // Recorded on the hub, which cannot read Azure tags: its approvers are checked against production's.
    expect(asked?.remediation.judgedEnvironment).toBe('prod');
    expect(approved.approvedBy).toBe('lead@example.com');
    expect(applied.outcome).toBe('applied');
    expect(double.calls.apply).toBe(1);
  });

  it("production's approvers approve what the spoke found tagged prod: dev's approval is not carried out there, nor taken after on the hub", async () => {
    // Prepare: decided dev, the playbook asks for a person; dev's approver approves while the hub knows only dev.
    const policy = ApplyPolicySchema.parse({
      approvers: { dev: ['dev-lead@example.com'], prod: ['lead@example.com'] },
    });
    const c = azureCase();
    c.remediation.mode = 'approval';
    await store.put('cases', CASE_KEY, c);
    const remote = recordingExecutor();
    const hub = deps({ remote: remote.executor, policy });
    await createRemediationStage(hub).handle(decided);
    const prodNow = { tagsFor: async () => ({ Environment: 'Production' }) };
    // Act: the approval goes to the spoke, which reads `Environment`=Production on the account.
    await approveCase(hub, CASE_KEY, 'dev-lead@example.com');
    const devApproved = remote.sent[0];
    if (!devApproved) throw new Error('no approved hand-over dispatched');
    const answer = await executeRemote(devApproved, { ...spokeDeps(), tags: prodNow });
    await recordRemoteResult(hub, answer);
    const waiting = await stored();
    const devAgain = await approveCase(hub, CASE_KEY, 'dev-lead@example.com');
    const lead = await approveCase(hub, CASE_KEY, 'lead@example.com');
    const leadApproved = remote.sent[1];
    if (!leadApproved) throw new Error('no hand-over for the lead');
    const applied = await executeRemote(leadApproved, { ...spokeDeps(), tags: prodNow });
    await recordRemoteResult(hub, applied);
    // Assess
    expect(devApproved.approvedBy).toBe('dev-lead@example.com');
    expect(devApproved.environment?.approvers).toEqual(policy.approvers);
    expect(answer).toMatchObject({ outcome: 'awaiting-approval', judgedEnvironment: 'prod' });
    expect(answer.reason).toBe(
      'production now: live tag `Environment`=Production (decide read dev): apply.allowProductionAuto is off, a person approves (dev-lead@example.com may not approve fixes in prod (policy apply.approvers.prod): the approval does not count; approvers for prod: lead@example.com)',
    );
    expect(waiting?.remediation).toMatchObject({ state: 'awaiting-approval', judgedEnvironment: 'prod' });
    expect(waiting?.remediation.approvedBy).toBeUndefined();
    expect(devAgain.state).toBe('approval-refused');
    expect(devAgain.events[0]?.detail).toMatchObject({
      reason: 'dev-lead@example.com may not approve fixes in prod (policy apply.approvers.prod)',
    });
    expect(lead.state).toBe('applying');
    expect(applied.outcome).toBe('applied');
    expect((await stored())?.remediation).toMatchObject({ state: 'applied', approvedBy: 'lead@example.com' });
    expect(double.calls.apply).toBe(1);
  });

  it("the spoke keeps the hub's environment when the live tags name none, and asks when they name more than one", async () => {
    // Prepare
    const request = await dispatch(recordingExecutor());
    const tagged = (tags: Record<string, string>) => ({ tagsFor: async () => tags });
    // Act
    const mixed = await executeRemote(request, { ...spokeDeps(), tags: tagged({ env: 'dev-prod' }) });
    const untagged = await executeRemote(request, { ...spokeDeps(), tags: tagged({ owner: 'data@example.com' }) });
    // Assess
    expect(mixed.outcome).toBe('awaiting-approval');
    expect(mixed.reason).toContain(
      'environment unknown now: live tag `env`=dev-prod names more than one environment (`dev`, `prod`) (decide read dev)',
    );
    expect(untagged.outcome).toBe('applied');
    expect(double.calls.apply).toBe(1);
  });

  it("the spoke reads a placeholder environment tag (`env`=TBD) as no tag, as the hub's enrichment does; a request without the hub's placeholders reads it as before", async () => {
    // Prepare: decided dev (not by the registry); the live `env` tag says TBD
    const request = await dispatch(recordingExecutor());
    const { placeholders: _placeholders, ...olderEnvironment } =
      request.environment ?? RemoteEnvironmentSchema.parse({});
    const older = { ...request, environment: olderEnvironment };
    const tbd = { tagsFor: async () => ({ env: 'TBD' }) };
    // Act
    const olderAnswer = await executeRemote(older, { ...spokeDeps(), tags: tbd });
    const answer = await executeRemote(request, { ...spokeDeps(), tags: tbd });
    // Assess: the hub sends its placeholder values; with them TBD leaves decide's dev standing
    expect(request.environment?.placeholders).toContain('tbd');
    expect(answer).toMatchObject({ outcome: 'applied', judgedEnvironment: 'dev' });
    expect(olderAnswer.outcome).toBe('awaiting-approval');
    expect(olderAnswer.reason).toContain('environment unknown now: live tag `env`=TBD names no known environment');
    expect(double.calls.apply).toBe(1);
  });

  it('the spoke judges a request from an older hub (no environment in it) by the defaults: a live prod waits for a person', async () => {
    // Prepare
    const { environment: _environment, ...older } = await dispatch(recordingExecutor());
    const tagged = (tags: Record<string, string>) => ({ tagsFor: async () => tags });
    // Act
    const prod = await executeRemote(older, { ...spokeDeps(), tags: tagged({ env: 'prod' }) });
    const allowed = await executeRemote(
      { ...older, environment: RemoteEnvironmentSchema.parse({ decided: 'prod', allowProductionAuto: true }) },
      { ...spokeDeps(), tags: tagged({ env: 'prod' }) },
    );
    // Assess: a production-safe action where the hub allows production without a person applies
    expect(prod.outcome).toBe('awaiting-approval');
    expect(prod.reason).toContain('production now: live tag `env`=prod (decide read unknown)');
    expect(allowed.outcome).toBe('applied');
    expect(double.calls.apply).toBe(1);
  });

  it("holds the case when the spoke's live read is throttled, and the release sweep sends it again once the wait is over", async () => {
    // Prepare: Azure answers the spoke's plan read with 429
    const remote = recordingExecutor();
    const throttled = Object.assign(new Error('Too many requests'), { name: 'RestError', statusCode: 429 });
    double.live.readError = throttled;
    const first = await executeRemote(await dispatch(remote), spokeDeps());
    const at = (minutes: number) =>
      deps({ remote: remote.executor, clock: fixedClock(new Date(Date.parse(decided.at) + minutes * 60_000)) });
    // Act
    const events = await recordRemoteResult(deps(), first);
    const held = await stored();
    const early = await releaseHeld(at(2));
    const due = await releaseHeld(at(5));
    // Assess: the spoke says nothing was applied and the read may be tried again; the hub holds the case with
    // why and when, and re-sends the hand-over (a new claim) only once the wait is over
    expect(first).toMatchObject({ outcome: 'blocked', retry: { kind: 'throttled' } });
    expect(first.reason).toContain('live state could not be read');
    expect(held?.remediation.state).toBe('held');
    expect(held?.remediation.stateReason).toContain('live state could not be read');
    expect(held?.remediation.stateReason).toContain(
      'throttled: read again after 2026-11-18T10:05:00.000Z, attempt 1 of 5',
    );
    expect(events).toMatchObject([{ type: 'case.remediation', state: 'held', actor: 'closeloop@azure-spoke' }]);
    expect(early).toMatchObject({ released: 0, waiting: 1 });
    expect(due).toMatchObject({ released: 1, waiting: 0 });
    expect(remote.sent).toHaveLength(2);
    const again = remote.sent[1];
    if (!again) throw new Error('not sent again');
    expect(again.applyToken).not.toBe(remote.sent[0]?.applyToken);
    expect(double.calls.apply).toBe(0);
    // Act: Azure answers this time; the spoke applies and the hub records it
    double.live.readError = undefined;
    await recordRemoteResult(deps(), await executeRemote(again, spokeDeps()));
    // Assess
    expect((await stored())?.remediation).toMatchObject({ state: 'applied', requestIds: ['arm-req-1'] });
    expect(double.calls.apply).toBe(1);
    expect(await store.get('remediation-held', CASE_KEY)).toBeUndefined();
  });

  it("holds the case when the spoke's skip-tag re-read fails for the moment, and blocks after five such answers in a row", async () => {
    // Prepare: the spoke's tag read answers 503 every time
    const remote = recordingExecutor();
    const unavailable = {
      tagsFor: async () => {
        throw Object.assign(new Error('Service Unavailable'), { name: 'RestError', statusCode: 503 });
      },
    };
    const at = (minutes: number) =>
      deps({ remote: remote.executor, clock: fixedClock(new Date(Date.parse(decided.at) + minutes * 60_000)) });
    const answer = async (request: RemoteRequest | undefined, minutes: number) => {
      if (!request) throw new Error('nothing sent');
      const result = await executeRemote(request, { ...spokeDeps(), tags: unavailable });
      await recordRemoteResult(at(minutes), result);
      return result;
    };
    // Act: the first answer, then each sweep once its wait is over (5, 15, 60 and 240 minutes) and its answer
    const first = await answer(await dispatch(remote), 0);
    const states = [String((await stored())?.remediation.state)];
    for (const minutes of [5, 20, 80, 320]) {
      await releaseHeld(at(minutes));
      await releaseHeld(at(minutes)); // a sweep while the hand-over is out keeps its count
      await answer(remote.sent.at(-1), minutes);
      states.push(String((await stored())?.remediation.state));
    }
    // Assess: held four times, then blocked with why; nothing applied; a later sweep sends nothing
    expect(first).toMatchObject({ outcome: 'blocked', retry: { kind: 'transient' } });
    expect(first.reason).toContain('live tags could not be read');
    expect(remote.sent).toHaveLength(5);
    expect(states).toEqual(['held', 'held', 'held', 'held', 'blocked']);
    const c = await stored();
    expect(c?.remediation.stateReason).toContain('live tags could not be read');
    expect(c?.remediation.stateReason).toContain(
      'transient, 5 reads in a row since 2026-11-18T10:00:00.000Z failed: no longer retried',
    );
    expect(double.calls.apply).toBe(0);
    await releaseHeld(at(2000));
    expect(remote.sent).toHaveLength(5);
  });

  it("blocks at once, as before, when the spoke's live read is refused for good", async () => {
    // Prepare: Azure refuses the plan read
    double.live.readError = Object.assign(new Error('AuthorizationFailed'), { name: 'RestError', statusCode: 403 });
    const remote = recordingExecutor();
    const result = await executeRemote(await dispatch(remote), spokeDeps());
    // Act
    await recordRemoteResult(deps(), result);
    await releaseHeld(deps({ remote: remote.executor, clock: fixedClock(new Date('2026-11-18T12:00:00.000Z')) }));
    // Assess
    expect(result.retry).toBeUndefined();
    expect((await stored())?.remediation.state).toBe('blocked');
    expect(await store.get('remediation-held', CASE_KEY)).toBeUndefined();
    expect(remote.sent).toHaveLength(1);
  });

  it("the spoke applies as before when the request carries no skip tag (an older hub) or its cloud is not the lookup's", async () => {
    // Prepare
    const request = await dispatch(recordingExecutor());
    const { skipTag: _skip, resource: _resource, ...older } = request;
    const never = { tagsFor: async () => ({ 'closeloop:skip': 'true' }), handles: () => false };
    const skipping = { tagsFor: async () => ({ 'closeloop:skip': 'true' }) };
    // Act
    const fromOlder = await executeRemote(older, { ...spokeDeps(), tags: skipping });
    double.live.open = true;
    const otherCloud = await executeRemote(request, { ...spokeDeps(), tags: never });
    // Assess
    expect([fromOlder.outcome, otherCloud.outcome]).toEqual(['applied', 'applied']);
    expect(double.calls.apply).toBe(2);
  });

  it('dispatches nothing in dry-run when the deployment does not apply', async () => {
    // Prepare
    const remote = recordingExecutor();
    // Act
    await createRemediationStage(deps({ remote: remote.executor, apply: false })).handle(decided);
    // Assess
    expect(remote.sent).toEqual([]);
    expect((await stored())?.remediation.state).toBe('planned');
  });

  it('fails the case with the reason when the hand-over cannot be sent', async () => {
    // Prepare
    const remote = recordingExecutor(new Error('PutEvents throttled'));
    // Act
    await createRemediationStage(deps({ remote: remote.executor })).handle(decided);
    // Assess
    const c = await stored();
    expect(c?.remediation.state).toBe('failed');
    expect(c?.remediation.stateReason).toContain('PutEvents throttled');
  });

  it('records the spoke result once and asks for verification when the spoke applied under the claim', async () => {
    // Prepare: dispatch, then let the "spoke" run the request against the double.
    const remote = recordingExecutor();
    const request = await dispatch(remote);
    const result = await executeRemote(request, spokeDeps());
    // Act
    const first = await recordRemoteResult(deps(), result);
    const again = await recordRemoteResult(deps(), result);
    // Assess
    const c = await stored();
    expect(result.outcome).toBe('applied');
    expect(double.calls.apply).toBe(1);
    expect(c?.remediation).toMatchObject({ state: 'applied', before: { open: true }, requestIds: ['arm-req-1'] });
    expect(c?.status).toBe('remediated');
    expect(first.map((e) => e.type)).toEqual(['case.remediation', 'case.verify-requested']);
    expect(first[0]).toMatchObject({ state: 'applied', actor: 'closeloop@azure-spoke' });
    // Delivered again, the result applies nothing twice and re-sends the same events (same ids): the first
    // publish may be what was lost.
    expect(again.map((e) => `${e.type} ${e.id}`)).toEqual(first.map((e) => `${e.type} ${e.id}`));
    expect(double.calls.apply).toBe(1);
  });

  it("keeps the original before-state when the spoke's write may have taken effect, and a retry finding it done is applied", async () => {
    // Prepare: the spoke's write goes through and its answer is lost
    const remote = recordingExecutor();
    double.live.loseAnswer = true;
    const first = await executeRemote(await dispatch(remote), spokeDeps());
    await recordRemoteResult(deps(), first);
    const failed = await stored();
    // Act: a person retries; the spoke re-reads, finds the account closed, answers noop
    await approveCase(deps({ remote: remote.executor }), CASE_KEY, 'oncall@example.com');
    const retry = remote.sent[1];
    if (!retry) throw new Error('no retry dispatched');
    const second = await executeRemote(retry, spokeDeps());
    const events = await recordRemoteResult(deps(), second);
    const c = await stored();
    // Assess: the failure says a step may have been made; the retry is recorded as applied by the earlier
    // attempt, with the account as closeloop found it (what a rollback restores), and owes a verification
    expect(first).toMatchObject({ outcome: 'failed', unconfirmed: 'close acmedata' });
    expect(failed?.remediation).toMatchObject({
      state: 'failed',
      unconfirmed: 'close acmedata',
      before: { open: true },
    });
    expect(second).toMatchObject({ outcome: 'noop', before: { open: false } });
    expect(c?.remediation).toMatchObject({ state: 'applied', before: { open: true } });
    expect(c?.remediation.unconfirmed).toBeUndefined();
    expect(c?.remediation.stateReason).toMatch(/by an earlier attempt/);
    expect(events.map((e) => e.type)).toEqual(['case.remediation', 'case.verify-requested']);
    expect(double.calls.apply).toBe(1);
  });

  it('settles a hand-over left unanswered past its bound as failed, and records the answer that comes after all', async () => {
    // Prepare: dispatched at 10:00; the spoke's answer is late
    const remote = recordingExecutor();
    const request = await dispatch(remote);
    const result = await executeRemote(request, spokeDeps());
    const at = (iso: string) => deps({ remote: remote.executor, clock: fixedClock(new Date(iso)) });
    // Act: past the apply bound (15 min) but within the spoke's (60 min), then past it; then the answer
    const within = await recoverAbandonedApplies(at('2026-11-18T10:30:00.000Z'), new Date('2026-11-18T10:30:00.000Z'));
    const past = await recoverAbandonedApplies(at('2026-11-18T11:01:00.000Z'), new Date('2026-11-18T11:01:00.000Z'));
    const failed = await stored();
    const events = await recordRemoteResult(deps(), result);
    // Assess
    expect(within).toMatchObject({ recovered: 0, live: 1 });
    expect(past.recovered).toBe(1);
    expect(past.events.map((e) => e.type === 'case.remediation' && e.state)).toEqual(['failed']);
    expect(failed?.remediation).toMatchObject({ state: 'failed', interruptedAt: '2026-11-18T11:01:00.000Z' });
    expect(failed?.remediation.stateReason).toMatch(
      /^hand-over of test\.azure-close to the azure spoke unanswered: no result within 60 min of its claim at 2026-11-18T10:00:00\.000Z; it may have taken effect in part/,
    );
    const c = await stored();
    expect(c?.remediation).toMatchObject({ state: 'applied', before: { open: true }, requestIds: ['arm-req-1'] });
    expect(c?.remediation.interruptedAt).toBeUndefined();
    expect(c?.remediation.error).toBeUndefined();
    expect(c?.status).toBe('remediated');
    expect(events.map((e) => e.type)).toEqual(['case.remediation', 'case.verify-requested']);
  });

  it('records a retry finding nothing left after an interrupted hand-over as applied by that hand-over, owing its verification', async () => {
    // Prepare: the spoke applies the first hand-over but its answer is late; past the bound the case is settled
    // failed (outcome unknown); a person retries
    const remote = recordingExecutor();
    const first = await dispatch(remote);
    const late = await executeRemote(first, spokeDeps());
    const clock = fixedClock(new Date('2026-11-18T11:01:00.000Z'));
    await recoverAbandonedApplies(deps({ remote: remote.executor, clock }), clock.now());
    await approveCase(deps({ remote: remote.executor, clock }), CASE_KEY, 'oncall@example.com');
    const retry = remote.sent[1];
    if (!retry) throw new Error('no retry dispatched');
    const claimed = await stored();
    // Act: the spoke finds the account closed (noop); then the first answer arrives, after its claim was replaced
    const answer = await executeRemote(retry, spokeDeps());
    const events = await recordRemoteResult(deps(), answer);
    const lateEvents = await recordRemoteResult(deps(), late);
    // Assess: closeloop's own change is on the case (not "already compliant"), its verification owed; the
    // retry kept the apply key of the interrupted hand-over; the before-state, never read by the hub, is not
    // taken from the fixed account
    const c = await stored();
    expect(answer.outcome).toBe('noop');
    expect(claimed?.remediation.applyKey).toBe(first.applyToken);
    expect(c?.remediation.state).toBe('applied');
    expect(c?.status).toBe('remediated');
    expect(c?.remediation.stateReason).toMatch(/^applied test\.azure-close by an earlier attempt/);
    expect(c?.remediation.before).toBeUndefined();
    expect(c?.remediation.unconfirmed).toBeUndefined();
    expect(events.map((e) => e.type)).toEqual(['case.remediation', 'case.verify-requested']);
    expect(lateEvents).toEqual([]);
    expect(double.calls.apply).toBe(1);
  });

  it('a late noop answer for an interrupted hand-over leaves nothing uncertain: the next noop is not taken for a fix', async () => {
    // Prepare: the account was closed by someone else before the spoke got to it; the answer comes after the
    // claim was settled as abandoned
    const remote = recordingExecutor();
    const first = await dispatch(remote);
    double.live.open = false;
    const late = await executeRemote(first, spokeDeps());
    const clock = fixedClock(new Date('2026-11-18T11:01:00.000Z'));
    await recoverAbandonedApplies(deps({ remote: remote.executor, clock }), clock.now());
    // Act: the late answer, then the next decided event runs the case again
    await recordRemoteResult(deps(), late);
    const answered = await stored();
    await createRemediationStage(deps({ remote: remote.executor })).handle({ ...decided, id: 'd-2' });
    const retry = remote.sent[1];
    if (!retry) throw new Error('no retry dispatched');
    const events = await recordRemoteResult(deps(), await executeRemote(retry, spokeDeps()));
    // Assess: the late answer replaced the interruption; nothing was ever applied by closeloop, and no
    // verification or rollback of a change is offered
    expect(late.outcome).toBe('noop');
    expect(answered?.remediation.state).toBe('noop');
    expect(answered?.remediation.interruptedAt).toBeUndefined();
    expect(answered?.remediation.unconfirmed).toBeUndefined();
    const c = await stored();
    expect(c?.remediation.state).toBe('noop');
    expect(c?.remediation.appliedAt).toBeUndefined();
    expect(events.map((e) => e.type)).toEqual(['case.remediation']);
    expect(double.calls.apply).toBe(0);
  });

  it('ignores a late answer once a newer claim replaced the one it was dispatched under', async () => {
    // Prepare: the first hand-over goes unanswered and is settled failed; a person retries (a second hand-over)
    const remote = recordingExecutor();
    const first = await dispatch(remote);
    const late = await executeRemote(first, spokeDeps());
    const clock = fixedClock(new Date('2026-11-18T11:01:00.000Z'));
    await recoverAbandonedApplies(deps({ remote: remote.executor, clock }), clock.now());
    await approveCase(deps({ remote: remote.executor, clock }), CASE_KEY, 'oncall@example.com');
    const retried = await stored();
    // Act
    const events = await recordRemoteResult(deps(), late);
    // Assess
    expect(remote.sent).toHaveLength(2);
    expect(events).toEqual([]);
    expect(await stored()).toEqual(retried);
    expect(retried?.remediation.state).toBe('applying');
  });

  it('ignores a result whose token is not the case claim', async () => {
    // Prepare
    const remote = recordingExecutor();
    await createRemediationStage(deps({ remote: remote.executor })).handle(decided);
    const forged: RemoteResult = {
      requestId: 'rq-x',
      caseKey: CASE_KEY,
      provider: 'azure',
      action: 'test.azure-close',
      op: 'apply',
      applyToken: 'not-the-claim',
      outcome: 'applied',
      reason: 'applied',
      requestIds: [],
      actor: 'closeloop@azure-spoke',
      at: '2026-11-18T10:00:01.000Z',
    };
    // Act
    const events = await recordRemoteResult(deps(), forged);
    // Assess
    expect(events).toEqual([]);
    expect((await stored())?.remediation.state).toBe('applying');
  });

  it('dispatches a rollback with the recorded before-state and records it when the spoke restored it', async () => {
    // Prepare: an applied case.
    const remote = recordingExecutor();
    const applyRequest = await dispatch(remote);
    await recordRemoteResult(deps(), await executeRemote(applyRequest, spokeDeps()));
    // Act
    await rollbackCase(deps({ remote: remote.executor }), CASE_KEY, 'oncall@example.com');
    const rollback = remote.sent[1];
    if (!rollback) throw new Error('no rollback dispatched');
    const events = await recordRemoteResult(deps(), await executeRemote(rollback, spokeDeps()));
    // Assess
    expect(rollback).toMatchObject({ op: 'rollback', before: { open: true }, actor: 'oncall@example.com' });
    expect(double.live.open).toBe(true);
    expect((await stored())?.remediation).toMatchObject({ state: 'rolled-back', requestIds: ['arm-rb-1'] });
    expect(events).toHaveLength(1);
  });

  it('sends a redriven rollback again only while its case is still in the applied state it was asked for', async () => {
    // Prepare: an applied case; its first rollback hand-over is not delivered (it waits in the dead-letter
    // queue), a second one rolls back; a person approves and the fix is applied again
    const remote = recordingExecutor();
    await recordRemoteResult(deps(), await executeRemote(await dispatch(remote), spokeDeps()));
    const applied = await stored();
    await rollbackCase(deps({ remote: remote.executor }), CASE_KEY, 'oncall@example.com');
    const undelivered = remote.sent[1];
    if (!undelivered) throw new Error('no rollback dispatched');
    const whileApplied = await handOverStillOwed(store, undelivered);
    await rollbackCase(deps({ remote: remote.executor }), CASE_KEY, 'oncall@example.com');
    const delivered = remote.sent[2];
    if (!delivered) throw new Error('no second rollback dispatched');
    await recordRemoteResult(deps(), await executeRemote(delivered, spokeDeps()));
    const whileRolledBack = await handOverStillOwed(store, undelivered);
    await approveCase(deps({ remote: remote.executor }), CASE_KEY, 'oncall@example.com');
    const reapply = remote.sent[3];
    if (!reapply) throw new Error('no new apply dispatched');
    await recordRemoteResult(deps(), await executeRemote(reapply, spokeDeps()));
    // Act: the dead-letter queue is redriven
    const afterReapply = await handOverStillOwed(store, undelivered);
    const { applyToken: _token, ...withoutToken } = undelivered;
    const unmatched = await handOverStillOwed(store, withoutToken);
    // Assess: the rollback names the claim of the apply it undoes; once rolled back, or applied again under
    // a newer claim, it is not sent again (the newer fix stays); one that names no claim cannot be matched
    expect(undelivered).toMatchObject({ op: 'rollback', applyToken: applied?.remediation.applyToken });
    expect(whileApplied).toBe(true);
    expect(whileRolledBack).toBe(false);
    expect((await stored())?.remediation.state).toBe('applied');
    expect(afterReapply).toBe(false);
    expect(unmatched).toBe(false);
    expect(double.live.open).toBe(false);
  });
});

describe('executeRemote in a spoke', () => {
  const request: RemoteRequest = {
    requestId: 'rq-1',
    caseKey: CASE_KEY,
    provider: 'azure',
    action: 'test.azure-close',
    op: 'apply',
    target: { account: 'acmedata' },
    applyToken: 'tok-1',
    actor: 'closeloop@aws-hub-test',
  };
  const run = (double: ReturnType<typeof azureDouble>, apply: boolean, r: RemoteRequest = request) =>
    executeRemote(r, {
      actions: { get: (id) => (id === double.action.id ? double.action : undefined) },
      ctx: testContext(),
      clock: fixedClock(),
      apply,
      actor: 'closeloop@azure-spoke',
    });

  it('plans and applies nothing when the spoke is deployed in dry-run', async () => {
    // Prepare
    const double = azureDouble();
    // Act
    const result = await run(double, false);
    // Assess
    expect(result).toMatchObject({ outcome: 'planned', applyToken: 'tok-1', plan: { noop: false } });
    expect(double.calls.apply).toBe(0);
  });

  it('says with a spoke rollback what it left as it was', async () => {
    // Prepare: a part of the fixed resource was deleted since the fix, so the rollback skips it.
    const double = azureDouble();
    double.live.open = false;
    double.live.rollbackNote = 'container(s) logs no longer exist: skipped, not restored';
    // Act
    const result = await run(double, true, { ...request, op: 'rollback', before: { open: true } });
    // Assess
    expect(result).toMatchObject({
      outcome: 'rolled-back',
      reason: 'rolled back test.azure-close: container(s) logs no longer exist: skipped, not restored',
    });
  });

  it('refuses a rollback and changes nothing when the spoke is deployed in dry-run', async () => {
    // Prepare
    const double = azureDouble();
    double.live.open = false;
    // Act
    const result = await run(double, false, { ...request, op: 'rollback', before: { open: true } });
    // Assess
    expect(result).toMatchObject({
      outcome: 'blocked',
      reason: 'dry-run spoke: rollback of test.azure-close refused, nothing changed',
      requestIds: [],
    });
    expect(double.calls.rollback).toBe(0);
    expect(double.live.open).toBe(false);
  });

  it('answers noop without applying when the live state is already compliant', async () => {
    // Prepare
    const double = azureDouble();
    double.live.open = false;
    // Act
    const result = await run(double, true);
    // Assess
    expect(result.outcome).toBe('noop');
    expect(double.calls.apply).toBe(0);
  });

  it('blocks when the target does not fit the action', async () => {
    // Act
    const result = await run(azureDouble(), true, { ...request, target: { bucket: 'x' } });
    // Assess
    expect(result.outcome).toBe('blocked');
    expect(result.reason).toMatch(/target does not fit/);
  });

  it('reports the live verdict when asked to verify', async () => {
    // Prepare
    const double = azureDouble();
    // Act
    const result = await run(double, true, { ...request, op: 'verify' });
    // Assess
    expect(result).toMatchObject({ outcome: 'not-verified', observed: { open: true }, reason: 'still open' });
  });
});
