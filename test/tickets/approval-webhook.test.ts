import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { type Action, defineAction } from '../../shared/actions/define.js';
import { changePlan, noopPlan, step } from '../../shared/actions/plan.js';
import { LocalTicketSink } from '../../shared/adapters/tickets/local.js';
import { AdapterError } from '../../shared/core/errors.js';
import type { Case } from '../../shared/core/model/case.js';
import type { DocStore } from '../../shared/core/ports.js';
import { ApplyPolicySchema } from '../../shared/core/remediation/policy.js';
import { createRemediationStage, type RemediationDeps } from '../../shared/core/remediation/stage.js';
import {
  DELIVERY_RECORD_TTL_MS,
  handleJiraWebhook,
  type JiraWebhookDeps,
  markDelivered,
  signJiraBody,
} from '../../shared/core/tickets/webhook.js';
import { decidedEvent, testContext } from '../helpers/action-context.js';
import { dynamoActionsOf, recordingStore, tableGrants } from '../helpers/store-grants.js';
import { decided, localHarness, makeCase, putCase, quietLog, readCase, T0 } from './helpers.js';

const SECRET = 'whsec-0000000000000000';
const ALICE = { accountId: '000000:00000000-0000-0000-0000-00000000000a', displayName: 'Alice Example' };
const APPROVER = `jira:${ALICE.accountId} (Alice Example)`;

/** Stands in for s3.block-public-access (same id): counts applies; the bucket is a mutable flag. */
function recordingAction() {
  const live = { open: true };
  const calls = { apply: 0 };
  const action = defineAction<{ bucket: string }, { open: boolean }>({
    id: 's3.block-public-access',
    title: 'Close a test bucket',
    provider: 'aws',
    handles: {},
    permissions: ['s3:PutBucketPublicAccessBlock'],
    verifyPermissions: ['s3:GetBucketPublicAccessBlock'],
    risk: 'medium',
    productionSafe: false,
    target: z.object({ bucket: z.string() }),
    beforeSchema: z.object({ open: z.boolean() }),
    selectTarget: (f) => ({ bucket: f.resource.name }),
    async plan(target) {
      const before = { ...live };
      if (!live.open) return noopPlan(target, before, `${target.bucket} already closed`);
      const steps = [
        step(`close ${target.bucket}`, 's3:PutPublicAccessBlock', 's3:PutBucketPublicAccessBlock', target),
      ];
      return changePlan(target, before, steps, `close ${target.bucket}`);
    },
    async apply(plan) {
      calls.apply++;
      // A slow cloud call widens the window in which concurrent deliveries could double-apply.
      await new Promise((r) => setTimeout(r, 5));
      live.open = false;
      return { before: plan.before, requestIds: [`req-${calls.apply}`] };
    },
    async verify() {
      return { holds: !live.open, observed: live, reason: '' };
    },
    async rollback({ before }) {
      live.open = before.open;
      return { requestIds: ['rb-1'] };
    },
  });
  const widened: Action = action;
  return { action: widened, calls };
}

type Item = { field: string; fieldtype?: string; fromString: string | null; toString: string | null };
/** A `jira:issue_updated` delivery as Jira Cloud sends it (changelog items; labels space-separated). */
const update = (items: Item[], extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    timestamp: Date.parse(T0) - 60_000, // signed a minute before the harness's clock
    webhookEvent: 'jira:issue_updated',
    issue_event_type_name: 'issue_updated',
    user: { ...ALICE, accountType: 'atlassian', active: true },
    issue: { key: 'LOCAL-1', fields: { status: { name: 'To Do', statusCategory: { key: 'new' } }, labels: [] } },
    changelog: { id: '10001', items },
    ...extra,
  });
const labelsAdded = (from: string, to: string): Item => ({
  field: 'labels',
  fieldtype: 'jira',
  fromString: from,
  toString: to,
});
const statusTo = (to: string): Item => ({ field: 'status', fieldtype: 'jira', fromString: 'To Do', toString: to });
const signed = (raw: string) => ({ headers: { 'X-Hub-Signature': signJiraBody(raw, SECRET) }, rawBody: raw });

async function setup(
  o: {
    ticketPolicy?: Record<string, unknown>;
    applyPolicy?: Record<string, unknown>;
    apply?: boolean;
    edit?: (c: Case) => void;
  } = {},
) {
  const l = localHarness(o.ticketPolicy);
  const c = makeCase();
  c.remediation.target = { bucket: c.resourceName };
  o.edit?.(c);
  await putCase(l.store, c);
  await l.stage.handle(decided(c)); // creates LOCAL-1 and the ticket index that maps it back to the case
  const double = recordingAction();
  const remediation: RemediationDeps = {
    store: l.store,
    actions: { get: (id) => (id === double.action.id ? double.action : undefined) },
    ctx: o.apply === false ? undefined : testContext(),
    clock: l.clock,
    log: quietLog,
    policy: ApplyPolicySchema.parse(o.applyPolicy ?? {}),
    apply: o.apply ?? true,
    actor: 'closeloop@aws-hub',
  };
  const deps: JiraWebhookDeps = {
    store: l.store,
    clock: l.clock,
    log: quietLog,
    policy: l.deps.policy,
    secret: SECRET,
    remediation,
  };
  return { l, c, deps, double };
}

describe('Jira approval webhook', () => {
  it('approves and applies when a person adds the approval label, recording the Jira user as approver', async () => {
    // Prepare
    const { l, c, deps, double } = await setup();
    // Act
    const res = await handleJiraWebhook(signed(update([labelsAdded('security', 'security closeloop-approve')])), deps);
    // Assess
    expect(res).toMatchObject({ status: 200, body: { accepted: res.events.length, approved: [c.key] } });
    expect(res.events[0]).toMatchObject({
      type: 'case.remediation',
      caseKey: c.key,
      state: 'approved',
      actor: APPROVER,
    });
    expect(res.events.map((e) => (e.type === 'case.remediation' ? e.state : e.type))).toContain('applied');
    expect((await readCase(l.store, c.key)).remediation).toMatchObject({ approvedBy: APPROVER, state: 'applied' });
    expect(double.calls.apply).toBe(1);
  });

  it('refuses the approval of someone not listed in apply.approvers, says why on the ticket, and still takes a listed one', async () => {
    // Prepare: in prod only Bob may approve; Alice adds the label.
    const BOB = { accountId: '000000:00000000-0000-0000-0000-00000000000b', displayName: 'Bob Example' };
    const { l, c, deps, double } = await setup({ applyPolicy: { approvers: { prod: [`JIRA:${BOB.accountId}`] } } });
    const byAlice = update([labelsAdded('', 'closeloop-approve')]);
    // Act
    const refused = await handleJiraWebhook(signed(byAlice), deps);
    if (refused.delivery) await markDelivered(deps, refused.delivery); // published, as the function does
    const replayed = await handleJiraWebhook(signed(byAlice), deps);
    for (const e of refused.events) await l.stage.handle(e);
    const byBob = update([labelsAdded('', 'closeloop-approve')], { user: { ...BOB, accountType: 'atlassian' } });
    const approved = await handleJiraWebhook(signed(byBob), deps);
    // Assess: Alice's attempt is recorded once, changes nothing, and the ticket says why.
    expect(refused.body).toEqual({ accepted: 1, approved: [], refused: [c.key] });
    expect(refused.events[0]).toMatchObject({
      type: 'case.remediation',
      state: 'approval-refused',
      actor: APPROVER,
      detail: {
        reason: `jira:${ALICE.accountId} may not approve fixes in prod (policy apply.approvers.prod)`,
        mayApprove: `approvers for prod: JIRA:${BOB.accountId}`,
      },
    });
    expect(replayed.events).toEqual([]);
    if (!(l.sink instanceof LocalTicketSink)) throw new Error('a local sink');
    const comments = (await l.sink.get('LOCAL-1'))?.comments.map((x) => x.text) ?? [];
    expect(comments.at(-1)).toContain('Approval not accepted');
    // Alice is told whom to ask.
    expect(comments.at(-1)).toContain(
      `may not approve fixes in prod (policy apply.approvers.prod); approvers for prod: JIRA:${BOB.accountId}. The fix still waits`,
    );
    // Bob's approval of the same plan is taken and applied.
    expect(approved.body).toMatchObject({ approved: [c.key] });
    expect((await readCase(l.store, c.key)).remediation).toMatchObject({
      approvedBy: `jira:${BOB.accountId} (Bob Example)`,
      state: 'applied',
    });
    expect(double.calls.apply).toBe(1);
  });

  it("takes production's approvers, not dev's, for a case decided dev whose bucket the apply-time check found tagged env=prod", async () => {
    // Prepare: Alice approves dev fixes, Bob prod ones. The case was decided dev (auto); its remediation run
    // read `env`=prod on the live bucket and asked for production's approval.
    const BOB = { accountId: '000000:00000000-0000-0000-0000-00000000000b', displayName: 'Bob Example' };
    const approvers = { dev: [`jira:${ALICE.accountId}`], prod: [`jira:${BOB.accountId}`] };
    const { l, c, deps, double } = await setup({
      applyPolicy: { approvers },
      edit: (x) => {
        x.enrichment.environment = 'dev';
        x.remediation = { ...x.remediation, mode: 'auto', reason: 'auto in dev', state: 'planned' };
      },
    });
    const prodNow = { tagsFor: async () => ({ env: 'prod' }) };
    if (!deps.remediation) throw new Error('remediation wiring');
    deps.remediation = { ...deps.remediation, tags: prodNow };
    await createRemediationStage(deps.remediation).handle(decidedEvent(c.key));
    const asked = await readCase(l.store, c.key);
    // Act
    const byAlice = await handleJiraWebhook(signed(update([labelsAdded('', 'closeloop-approve')])), deps);
    const afterAlice = await readCase(l.store, c.key);
    const byBob = update([labelsAdded('', 'closeloop-approve')], { user: { ...BOB, accountType: 'atlassian' } });
    const approved = await handleJiraWebhook(signed(byBob), deps);
    // Assess
    expect(asked.remediation).toMatchObject({ state: 'awaiting-approval', judgedEnvironment: 'prod' });
    expect(byAlice.body).toEqual({ accepted: 1, approved: [], refused: [c.key] });
    expect(byAlice.events[0]).toMatchObject({
      state: 'approval-refused',
      detail: { reason: `jira:${ALICE.accountId} may not approve fixes in prod (policy apply.approvers.prod)` },
    });
    expect(afterAlice.remediation.state).toBe('awaiting-approval');
    expect(afterAlice.remediation.approvedBy).toBeUndefined();
    expect(approved.body).toMatchObject({ approved: [c.key] });
    expect((await readCase(l.store, c.key)).remediation).toMatchObject({
      approvedBy: `jira:${BOB.accountId} (Bob Example)`,
      state: 'applied',
    });
    expect(double.calls.apply).toBe(1);
  });

  it('never handles a recorded delivery again: a captured approval replayed for a later plan approves nothing', async () => {
    // Prepare: Alice approves plan 1 (applied); later the case awaits approval of a new plan.
    const { l, c, deps, double } = await setup();
    const raw = update([labelsAdded('', 'closeloop-approve')]);
    const first = await handleJiraWebhook(signed(raw), deps);
    if (first.delivery) await markDelivered(deps, first.delivery); // as the function does once it has published
    const again = await readCase(l.store, c.key);
    again.remediation = { ...again.remediation, state: 'awaiting-approval', stateReason: 'a new plan' };
    delete again.remediation.approvedBy;
    await putCase(l.store, again);
    // Act: the same signed body, sent again by someone who captured it
    const replay = await handleJiraWebhook(signed(raw), deps);
    // Assess
    expect(first.delivery).toMatch(/^webhook\|[0-9a-f]{64}$/);
    expect(replay).toEqual({ status: 200, body: { ignored: 'delivery already handled' }, events: [] });
    expect((await readCase(l.store, c.key)).remediation.state).toBe('awaiting-approval');
    expect(double.calls.apply).toBe(1);
  });

  it('approves nothing when a captured approval is replayed for a later plan after its delivery record expired', async () => {
    // Prepare: Alice approves plan 1 (applied); the record of that delivery outlives its time and expires…
    const { l, c, deps, double } = await setup();
    const raw = update([labelsAdded('', 'closeloop-approve')]);
    const first = await handleJiraWebhook(signed(raw), deps);
    if (first.delivery) await markDelivered(deps, first.delivery);
    l.clock.advance(DELIVERY_RECORD_TTL_MS + 60_000);
    // …and the case awaits approval of a new plan
    const again = await readCase(l.store, c.key);
    again.remediation = { ...again.remediation, state: 'awaiting-approval', stateReason: 'a new plan' };
    delete again.remediation.approvedBy;
    await putCase(l.store, again);
    // Act: the same signed body, sent again by someone who captured it
    const replay = await handleJiraWebhook(signed(raw), deps);
    // Assess: the record is gone; the body's own signed time refuses it
    expect(await l.store.get('ticket-webhook-deliveries', first.delivery ?? '')).toBeUndefined();
    expect(replay).toEqual({ status: 200, body: { ignored: 'delivery not recent' }, events: [] });
    expect((await readCase(l.store, c.key)).remediation.state).toBe('awaiting-approval');
    expect(double.calls.apply).toBe(1);
  });

  it('takes no approval from a delivery signed more than a day ago, or without its signed time', async () => {
    // Prepare
    const { l, c, deps, double } = await setup();
    const old = update([labelsAdded('', 'closeloop-approve')], { timestamp: Date.parse(T0) - 25 * 3_600_000 });
    const untimed = update([labelsAdded('', 'closeloop-approve')], { timestamp: undefined });
    // Act
    const a = await handleJiraWebhook(signed(old), deps);
    const b = await handleJiraWebhook(signed(untimed), deps);
    // Assess
    for (const res of [a, b])
      expect(res).toEqual({ status: 200, body: { ignored: 'delivery not recent' }, events: [] });
    expect((await readCase(l.store, c.key)).remediation.state).toBe('awaiting-approval');
    expect(double.calls.apply).toBe(0);
  });

  it('approves once when Jira delivers the same webhook again, and re-sends its events until they are published', async () => {
    // Prepare
    const { deps, double } = await setup();
    const raw = update([labelsAdded('', 'closeloop-approve')]);
    // Act: Jira retries (the first answer was lost, or the events' publish failed), then once more after
    // the function has published them.
    const first = await handleJiraWebhook(signed(raw), deps);
    const retried = await handleJiraWebhook(signed(raw), deps);
    if (retried.delivery) await markDelivered(deps, retried.delivery);
    const after = await handleJiraWebhook(signed(raw), deps);
    // Assess: the same events (same ids: downstream handles them once), never a second approval or apply.
    expect(first.events.length).toBeGreaterThan(0);
    expect(retried.events.map((e) => e.id)).toEqual(first.events.map((e) => e.id));
    expect(after).toEqual({ status: 200, body: { ignored: 'delivery already handled' }, events: [] });
    expect(double.calls.apply).toBe(1);
  });

  it('approves once when five workers handle the same delivery at the same time', async () => {
    // Prepare
    const { deps, double } = await setup();
    const raw = update([labelsAdded('', 'closeloop-approve')]);
    // Act
    const results = await Promise.all(Array.from({ length: 5 }, () => handleJiraWebhook(signed(raw), deps)));
    // Assess
    const approvals = results
      .flatMap((r) => r.events)
      .filter((e) => e.type === 'case.remediation' && e.state === 'approved');
    expect(approvals).toHaveLength(1);
    expect(double.calls.apply).toBe(1);
  });

  it('approves when the issue moves through the configured transition (target status in the changelog)', async () => {
    // Prepare
    const { l, c, deps } = await setup({ ticketPolicy: { approvalTransition: 'Approved' } });
    // Act
    const res = await handleJiraWebhook(signed(update([statusTo('APPROVED')])), deps);
    // Assess
    expect(res.body).toMatchObject({ approved: [c.key] });
    expect((await readCase(l.store, c.key)).remediation.approvedBy).toBe(APPROVER);
  });

  it('approves when a workflow post-function webhook names the configured transition', async () => {
    // Prepare
    const { c, deps } = await setup({ ticketPolicy: { approvalTransition: 'Approve fix' } });
    const raw = update([statusTo('In Progress')], {
      transition: { transitionName: 'Approve fix', to_status: 'In Progress' },
    });
    // Act
    const res = await handleJiraWebhook(signed(raw), deps);
    // Assess
    expect(res.body).toMatchObject({ approved: [c.key] });
  });

  it('does not approve on a status change when no approval transition is configured', async () => {
    // Prepare
    const { l, c, deps, double } = await setup();
    // Act
    const res = await handleJiraWebhook(signed(update([statusTo('Approve fix')])), deps);
    // Assess
    expect(res.body).toEqual({ accepted: 0 });
    expect((await readCase(l.store, c.key)).remediation.state).toBe('awaiting-approval');
    expect(double.calls.apply).toBe(0);
  });

  it('ignores label edits that do not add the approval label', async () => {
    // Prepare
    const { l, c, deps } = await setup();
    // Act: another label added to an issue that already carried the approval label; an unrelated label.
    const kept = await handleJiraWebhook(
      signed(update([labelsAdded('closeloop-approve', 'closeloop-approve urgent')])),
      deps,
    );
    const other = await handleJiraWebhook(signed(update([labelsAdded('', 'closeloop-approved-later')])), deps);
    // Assess
    for (const r of [kept, other])
      expect(r).toEqual({ status: 200, body: { ignored: 'not a status change' }, events: [] });
    expect((await readCase(l.store, c.key)).remediation.state).toBe('awaiting-approval');
  });

  it('approves nothing when the case does not await approval', async () => {
    // Prepare
    const { deps, double } = await setup({
      edit: (c) => {
        c.remediation.state = 'blocked';
      },
    });
    // Act
    const res = await handleJiraWebhook(signed(update([labelsAdded('', 'closeloop-approve')])), deps);
    // Assess
    expect(res).toMatchObject({ status: 200, body: { accepted: 0, approved: [] }, events: [] });
    expect(double.calls.apply).toBe(0);
  });

  it('marks the case approved for the next run when the deployment is in dry-run', async () => {
    // Prepare
    const { l, c, deps, double } = await setup({ apply: false });
    // Act
    const res = await handleJiraWebhook(signed(update([labelsAdded('', 'closeloop-approve')])), deps);
    // Assess
    expect(res.body).toMatchObject({ approved: [c.key] });
    expect((await readCase(l.store, c.key)).remediation).toMatchObject({ approvedBy: APPROVER, state: 'approved' });
    expect(double.calls.apply).toBe(0);
  });

  it('acts on no approval without remediation wiring, and changes nothing', async () => {
    // Prepare
    const { l, c, deps } = await setup();
    const { remediation: _unwired, ...withoutRemediation } = deps;
    // Act
    const res = await handleJiraWebhook(signed(update([labelsAdded('', 'closeloop-approve')])), withoutRemediation);
    // Assess
    expect(res).toMatchObject({ status: 200, body: { accepted: 0, approved: [] }, events: [] });
    expect((await readCase(l.store, c.key)).remediation.approvedBy).toBeUndefined();
  });

  it('refuses an unsigned approval with 401 and approves nothing', async () => {
    // Prepare
    const { l, c, deps, double } = await setup();
    const raw = update([labelsAdded('', 'closeloop-approve')]);
    // Act
    const unsigned = await handleJiraWebhook({ headers: {}, rawBody: raw }, deps);
    const forged = await handleJiraWebhook(
      { headers: { 'x-hub-signature': signJiraBody(raw, 'not-the-secret-000') }, rawBody: raw },
      deps,
    );
    // Assess
    for (const r of [unsigned, forged]) expect(r.status).toBe(401);
    expect((await readCase(l.store, c.key)).remediation.approvedBy).toBeUndefined();
    expect(double.calls.apply).toBe(0);
  });

  it('releases its approval claim when the approval fails, with a store call the jira-webhook role is granted, so the redelivery approves', async () => {
    // Prepare: the remediation's case writes fail (throttled); the webhook's own store calls are recorded.
    const { l, c, deps, double } = await setup();
    const remediation = deps.remediation as RemediationDeps;
    const throttled: DocStore = Object.assign(Object.create(l.store) as DocStore, {
      put: async () => {
        throw new AdapterError('throttled', 'UpdateItem failed (throttled: ProvisionedThroughputExceededException)');
      },
    });
    const recorded = recordingStore(l.store);
    const failing = { ...deps, store: recorded.store, remediation: { ...remediation, store: throttled } };
    const raw = update([labelsAdded('security', 'security closeloop-approve')]);
    // Act
    const first = handleJiraWebhook(signed(raw), failing);
    await expect(first).rejects.toThrow('throttled');
    const grants = tableGrants('JiraWebhookRole');
    const needed = await dynamoActionsOf(recorded.calls);
    const redelivered = await handleJiraWebhook(signed(raw), deps);
    // Assess
    expect(recorded.calls.map((x) => x.method)).toContain('delete');
    expect(needed).toContain('dynamodb:DeleteItem');
    expect(needed.filter((a) => !grants.includes(a))).toEqual([]);
    expect(redelivered.body).toMatchObject({ approved: [c.key] });
    expect(double.calls.apply).toBe(1);
  });
});
