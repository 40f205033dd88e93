import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createCloudClients } from '../../shared/actions/clients.js';
import type { ActionContext } from '../../shared/actions/define.js';
import action from '../../shared/actions/gcp.firewall.disable-rule.js';
import { classifyCloudError } from '../../shared/actions/retry.js';
import { MemoryDocStore } from '../../shared/adapters/store/memory.js';
import { ApplyIncompleteError, isDenied, isGone, isTransient } from '../../shared/core/errors.js';
import { CaseSchema } from '../../shared/core/model/case.js';
import { createRemediationStage } from '../../shared/core/remediation/stage.js';
import { getDoc } from '../../shared/core/store/docs.js';
import { decidedCase, decidedEvent, findingFor, remediationDeps, testContext } from '../helpers/action-context.js';
import { type GcpDouble, startGcpDouble } from '../helpers/gcp-double.js';
import { assessApplied } from '../verify/helpers.js';

const PROJECT = 'acme-prod';
const RULE = 'allow-ssh-from-anywhere';
const target = { project: PROJECT, firewall: RULE };
const RULE_PATH = `/compute/v1/projects/${PROJECT}/global/firewalls/${RULE}`;
const NARROW = { 'gcp.firewall.disable-rule': { mode: 'narrow', sourceRanges: ['192.0.2.0/24'] } };

describe('Action: gcp.firewall.disable-rule', () => {
  let gcp: GcpDouble;
  beforeAll(async () => {
    gcp = await startGcpDouble();
    shared = testContext({ cloud: { gcp: gcp.options } });
  });
  afterAll(async () => gcp?.stop());
  beforeEach(() => {
    gcp.requests.length = 0;
    gcp.setOperationWaits(0);
    gcp.hangOperationWaits(false);
    gcp.firewalls.clear();
    gcp.firewalls.set(RULE, {
      name: RULE,
      network: `projects/${PROJECT}/global/networks/default`,
      direction: 'INGRESS',
      disabled: false,
      sourceRanges: ['0.0.0.0/0', '192.0.2.10/32'],
      allowed: [{ IPProtocol: 'tcp', ports: ['22'] }],
    });
  });

  // One set of clients for the file: building a compute client costs about a second of setup.
  let shared: ActionContext;
  const ctx = (settings?: Record<string, unknown>): ActionContext => ({ ...shared, ...(settings ? { settings } : {}) });
  const rule = () => gcp.firewalls.get(RULE);
  const writes = () => gcp.requests.filter((r) => r.method !== 'GET');

  it('plans a readable disable step with the exact patch when the rule admits the internet', async () => {
    // Act
    const plan = await action.plan(target, ctx());
    // Assess
    expect(plan).toMatchObject({ noop: false, summary: `disable firewall rule ${RULE}` });
    expect(plan.steps).toEqual([
      {
        say: `disable firewall rule ${RULE} (open to 0.0.0.0/0)`,
        call: {
          api: 'compute.firewalls.patch',
          permission: 'compute.firewalls.update',
          input: { project: PROJECT, firewall: RULE, firewallResource: { disabled: true } },
        },
      },
    ]);
    expect(plan.before).toMatchObject({
      name: RULE,
      direction: 'INGRESS',
      disabled: false,
      sourceRanges: ['0.0.0.0/0', '192.0.2.10/32'],
      allowed: 1,
      denied: 0,
    });
    expect(gcp.requests.map((r) => [r.method, r.path])).toEqual([['GET', RULE_PATH]]);
  });

  it('leaves a deny rule from the internet alone in both modes (disabling a guard would open the network)', async () => {
    // Prepare: a high-priority deny of SSH from anywhere, in front of broader allow rules.
    const { allowed: _allowed, ...withoutAllowed } = rule() ?? {};
    gcp.firewalls.set(RULE, { ...withoutAllowed, denied: [{ IPProtocol: 'tcp', ports: ['22'] }], priority: 100 });
    // Act
    const disable = await action.plan(target, ctx());
    const narrow = await action.plan(target, ctx(NARROW));
    const verdict = await action.verify(target, ctx());
    // Assess
    expect(disable).toMatchObject({ noop: true, steps: [] });
    expect(disable.summary).toContain('a deny rule guards');
    expect(narrow.noop).toBe(true);
    expect(verdict.holds).toBe(true);
    expect(writes()).toEqual([]);
  });

  it('refuses to apply when the rule was replaced by a deny rule of the same name since the plan', async () => {
    // Prepare
    const plan = await action.plan(target, ctx());
    const { allowed: _allowed, ...withoutAllowed } = rule() ?? {};
    gcp.firewalls.set(RULE, { ...withoutAllowed, denied: [{ IPProtocol: 'tcp', ports: ['22'] }] });
    // Act
    const attempt = action.apply(plan, ctx());
    // Assess: the re-read finds nothing to close (a no-op), and nothing is written.
    await expect(attempt).resolves.toMatchObject({ requestIds: [] });
    expect(writes()).toEqual([]);
  });

  it('plans a no-op saying so when the rule is already disabled', async () => {
    // Prepare
    gcp.firewalls.set(RULE, { ...rule(), disabled: true });
    // Act
    const plan = await action.plan(target, ctx());
    // Assess
    expect(plan).toMatchObject({ noop: true, steps: [] });
    expect(plan.summary).toContain('does not admit the internet');
  });

  it('plans a no-op when the rule only admits documented ranges', async () => {
    // Prepare
    gcp.firewalls.set(RULE, { ...rule(), sourceRanges: ['192.0.2.0/24'] });
    // Act
    const plan = await action.plan(target, ctx());
    // Assess
    expect(plan.noop).toBe(true);
  });

  it('disables the rule, waits for the global operation and returns its id', async () => {
    // Prepare
    const c = ctx();
    const plan = await action.plan(target, c);
    gcp.setOperationWaits(2);
    gcp.requests.length = 0;
    // Act
    const result = await action.apply(plan, c);
    // Assess
    const patch = writes()[0];
    expect(patch).toMatchObject({ method: 'PATCH', path: RULE_PATH, body: { disabled: true } });
    const op = result.requestIds[0]?.replace('gcp:operation/', '');
    const waitPath = `/compute/v1/projects/${PROJECT}/global/operations/${op}/wait`;
    expect(
      writes()
        .slice(1)
        .map((r) => [r.method, r.path]),
    ).toEqual([
      ['POST', waitPath],
      ['POST', waitPath],
    ]);
    expect(rule()).toMatchObject({ disabled: true, sourceRanges: ['0.0.0.0/0', '192.0.2.10/32'] });
    expect(result.before).toEqual(plan.before);
    expect(result.requestIds).toEqual([expect.stringMatching(/^gcp:operation\/operation-\d+$/)]);
  });

  it('narrows the source ranges instead when policy says mode narrow', async () => {
    // Prepare
    const c = ctx(NARROW);
    // Act
    const plan = await action.plan(target, c);
    await action.apply(plan, c);
    // Assess
    expect(plan.steps[0]?.say).toBe(
      `narrow the source ranges of ${RULE} from 0.0.0.0/0, 192.0.2.10/32 to 192.0.2.0/24`,
    );
    expect(writes()[0]).toMatchObject({ method: 'PATCH', body: { sourceRanges: ['192.0.2.0/24'] } });
    expect(rule()).toMatchObject({ disabled: false, sourceRanges: ['192.0.2.0/24'] });
    expect((await action.verify(target, c)).holds).toBe(true);
  });

  it('refuses to plan a narrowing without replacement ranges', async () => {
    // Act
    const attempt = action.plan(target, ctx({ 'gcp.firewall.disable-rule': { mode: 'narrow' } }));
    // Assess
    await expect(attempt).rejects.toMatchObject({ kind: 'invalid' });
    expect(writes()).toEqual([]);
  });

  it('throws the operation error when compute accepts the patch but the operation fails', async () => {
    // Prepare
    const c = ctx();
    const plan = await action.plan(target, c);
    gcp.failNextOperation(403, 'PERMISSION_DENIED', "Required 'compute.networks.updatePolicy' permission");
    // Act
    const attempt = action.apply(plan, c);
    // Assess
    await expect(attempt).rejects.toSatisfy(isDenied);
    expect(rule()).toMatchObject({ disabled: false });
  });

  describe('an operation not seen to finish (the patch was sent: the case must say it may have taken effect)', () => {
    const DISABLE_STEP = `disable firewall rule ${RULE} (open to 0.0.0.0/0)`;
    const waitCalls = () => gcp.requests.filter((r) => r.path.endsWith('/wait'));
    // 60 s of waiting (half the remediate function's 120 s, infra/gcp/main.tf) over a 20 s deadline per call.
    const MOST_WAITS = 3;

    it('names the step unconfirmed after at most 3 waits when the operation stays RUNNING', async () => {
      // Prepare
      const c = ctx();
      const plan = await action.plan(target, c);
      gcp.setOperationWaits(1_000);
      gcp.requests.length = 0;
      // Act
      const error = await action.apply(plan, c).catch((e: unknown) => e);
      // Assess: failed, the patch named as possibly made, not a clean failure
      expect(error).toBeInstanceOf(ApplyIncompleteError);
      expect(error).toMatchObject({ requestIds: [], unconfirmed: DISABLE_STEP });
      expect(gcp.requests.filter((r) => r.method === 'PATCH')).toHaveLength(1);
      expect(waitCalls().length).toBeLessThanOrEqual(MOST_WAITS);
    });

    it('says a rollback may have taken effect when its operation stays RUNNING', async () => {
      // Prepare: the rule as the fix left it
      const before = (await action.plan(target, ctx())).before;
      gcp.firewalls.set(RULE, { ...rule(), disabled: true });
      gcp.setOperationWaits(1_000);
      // Act
      const attempt = action.rollback({ target, before }, ctx());
      // Assess
      await expect(attempt).rejects.toThrow(/may have taken effect/);
      expect(waitCalls().length).toBeLessThanOrEqual(MOST_WAITS);
    });

    it('names the step unconfirmed, keeping the kind, when the wait is refused after the patch was accepted', async () => {
      // Prepare: compute.globalOperations.get missing
      const c = ctx();
      const plan = await action.plan(target, c);
      gcp.setOperationWaits(1);
      gcp.failNext('/wait', 403, { reason: 'forbidden' });
      // Act
      const error = await action.apply(plan, c).catch((e: unknown) => e);
      // Assess
      expect(error).toBeInstanceOf(ApplyIncompleteError);
      expect(error).toMatchObject({ unconfirmed: DISABLE_STEP });
      expect(isDenied(error)).toBe(true);
      expect(rule()).toMatchObject({ disabled: true });
    });

    it('leaves the case failed with the patch named unconfirmed when the wait is refused', async () => {
      // Prepare: a case for the rule, applied by the remediation stage
      const store = new MemoryDocStore();
      const f = findingFor(
        {
          provider: 'gcp',
          id: `//compute.googleapis.com/projects/${PROJECT}/global/firewalls/${RULE}`,
          type: 'google.compute.Firewall',
          name: RULE,
          account: PROJECT,
        },
        { type: 'OPEN_FIREWALL' },
      );
      const c = decidedCase(f, { action: action.id });
      await store.put('cases', c.key, c);
      await store.put('findings', f.key, f);
      gcp.setOperationWaits(1);
      gcp.failNext('/wait', 403, { reason: 'forbidden' });
      // Act
      await createRemediationStage(remediationDeps(store, action, ctx())).handle(decidedEvent(c.key));
      // Assess: failed, and the patch said to have maybe taken effect (the rule is in fact disabled)
      const stored = (await getDoc(store, 'cases', c.key, CaseSchema))?.value;
      expect(stored?.remediation).toMatchObject({ state: 'failed', unconfirmed: DISABLE_STEP });
      expect(stored?.remediation.error).toMatch(/may have taken effect/);
      expect(rule()).toMatchObject({ disabled: true });
    });

    it('waits at most 3 call deadlines in all when a wait is never answered, then names the step unconfirmed', async () => {
      // Prepare: each wait cut at 1.5 s (the 20 s deadline, scaled down; the client's first call sets it up;
      // at 500 ms the re-read or the patch itself was cut now and then on a loaded machine, failing another
      // step than the one under test), with closeloop's retry of a call as in production (4 tries)
      const fast = testContext({ cloud: { gcp: { ...gcp.options, callTimeoutMs: 1_500 } } });
      const c: ActionContext = { ...fast, retry: { baseMs: 1, maxMs: 50 } };
      const plan = await action.plan(target, c);
      gcp.setOperationWaits(1);
      gcp.hangOperationWaits(true);
      gcp.requests.length = 0;
      // Act
      const error = await action.apply(plan, c).catch((e: unknown) => e);
      // Assess: 3 waits × 20 s = 60 s, not 4 tries × 20 s = 80 s of one wait (up to 5 waits × 4 tries × 20 s =
      // 400 s while some answered RUNNING) after the re-read and the patch, in a function killed at 120 s
      expect(waitCalls().length).toBeLessThanOrEqual(MOST_WAITS);
      expect(error).toBeInstanceOf(ApplyIncompleteError);
      expect(error).toMatchObject({ unconfirmed: DISABLE_STEP });
      expect(isTransient(error)).toBe(true);
    }, 20_000);
  });

  it('verifies the rule is closed after apply and fails while it is still open', async () => {
    // Prepare
    const c = ctx();
    const open = await action.verify(target, c);
    // Act
    await action.apply(await action.plan(target, c), c);
    const closed = await action.verify(target, c);
    // Assess
    expect(open).toMatchObject({ holds: false, reason: `${RULE} still admits the internet` });
    expect(closed).toMatchObject({ holds: true, reason: `firewall rule ${RULE} is closed` });
  });

  describe('through the verifier', () => {
    const assess = () => assessApplied(action, target, ctx());

    it('reaches verified when the rule is disabled', async () => {
      // Prepare
      gcp.firewalls.set(RULE, { ...rule(), disabled: true });
      // Act / Assess
      expect(await assess()).toMatchObject({ verdict: 'verified', basis: 're-read' });
    });

    it('reaches failed with the observed rule when it still admits 0.0.0.0/0', async () => {
      // Act
      const verdict = await assess();
      // Assess
      expect(verdict).toMatchObject({ verdict: 'failed', observed: { disabled: false } });
    });

    it('reaches inconclusive when the rule is gone', async () => {
      // Prepare
      gcp.firewalls.clear();
      // Act
      const verdict = await assess();
      // Assess
      expect(verdict).toMatchObject({ verdict: 'inconclusive', basis: 'none' });
      expect(verdict).toHaveProperty('reason', expect.stringContaining('gone'));
    });
  });

  it('restores the old source ranges of a narrowed rule on rollback', async () => {
    // Prepare
    const c = ctx(NARROW);
    const { before } = await action.apply(await action.plan(target, c), c);
    gcp.requests.length = 0;
    // Act
    const { requestIds } = await action.rollback({ target, before }, c);
    // Assess
    expect(writes()[0]).toMatchObject({
      method: 'PATCH',
      path: RULE_PATH,
      body: { sourceRanges: ['0.0.0.0/0', '192.0.2.10/32'] },
    });
    expect(rule()).toMatchObject({ disabled: false, sourceRanges: ['0.0.0.0/0', '192.0.2.10/32'] });
    expect(requestIds).toHaveLength(1);
  });

  it('on rollback re-enables a disabled rule without widening source ranges narrowed after the fix', async () => {
    // Prepare: disabled by the fix; then its owner narrowed it to the one admin address.
    const c = ctx();
    const { before } = await action.apply(await action.plan(target, c), c);
    gcp.firewalls.set(RULE, { ...rule(), sourceRanges: ['192.0.2.10/32'] });
    gcp.requests.length = 0;
    // Act
    await action.rollback({ target, before }, c);
    // Assess: enabled again, still narrowed (not re-opened to 0.0.0.0/0).
    expect(rule()).toMatchObject({ disabled: false, sourceRanges: ['192.0.2.10/32'] });
    expect(writes().map((w) => w.body)).toEqual([{ disabled: false }]);
  });

  it('on rollback leaves source ranges changed since a narrowing fix as they are, and names them', async () => {
    // Prepare: narrowed by the fix to 192.0.2.0/24; then its owner narrowed it further to the one admin
    // address. Writing the old ranges back opened the rule to 0.0.0.0/0 again over the owner's change.
    const c = ctx(NARROW);
    const { before } = await action.apply(await action.plan(target, c), c);
    gcp.firewalls.set(RULE, { ...rule(), sourceRanges: ['192.0.2.10/32'] });
    gcp.requests.length = 0;
    // Act
    const result = await action.rollback({ target, before }, c);
    // Assess
    expect(writes()).toEqual([]);
    expect(rule()).toMatchObject({ disabled: false, sourceRanges: ['192.0.2.10/32'] });
    expect(result).toEqual({
      requestIds: [],
      note: `rule ${RULE} source ranges (now 192.0.2.10/32) changed since the fix: left as they are, old ranges not restored`,
    });
  });

  it('on rollback of a disabling fix does not touch a rule its owner enabled again with narrowed ranges', async () => {
    // Prepare: disabled by the fix; then its owner enabled it again, narrowed to the one admin address (the
    // owner's own fix). The rollback saw the ranges differ from the old ones and widened them back.
    const c = ctx();
    const { before } = await action.apply(await action.plan(target, c), c);
    gcp.firewalls.set(RULE, { ...rule(), disabled: false, sourceRanges: ['192.0.2.10/32'] });
    gcp.requests.length = 0;
    // Act
    const result = await action.rollback({ target, before }, c);
    // Assess
    expect(writes()).toEqual([]);
    expect(result.requestIds).toEqual([]);
    expect(rule()).toMatchObject({ disabled: false, sourceRanges: ['192.0.2.10/32'] });
  });

  it('on rollback of a narrowing fix keeps a rule its owner disabled since disabled, and restores its ranges', async () => {
    // Prepare: narrowed by the fix; then its owner disabled it. The rollback enabled it again.
    const c = ctx(NARROW);
    const { before } = await action.apply(await action.plan(target, c), c);
    gcp.firewalls.set(RULE, { ...rule(), disabled: true });
    gcp.requests.length = 0;
    // Act
    await action.rollback({ target, before }, c);
    // Assess
    expect(writes().map((w) => w.body)).toEqual([{ sourceRanges: ['0.0.0.0/0', '192.0.2.10/32'] }]);
    expect(rule()).toMatchObject({ disabled: true, sourceRanges: ['0.0.0.0/0', '192.0.2.10/32'] });
  });

  it('rolls back a before-state recorded without what the fix set by the settings (older cases)', async () => {
    // Prepare: a case recorded before the before-state named the fix: the narrow mode is taken from policy.
    const c = ctx(NARROW);
    const { before } = await action.apply(await action.plan(target, c), c);
    const { fix: _fix, ...older } = before;
    gcp.requests.length = 0;
    // Act
    await action.rollback({ target, before: action.beforeSchema.parse(older) }, c);
    // Assess
    expect(writes().map((w) => w.body)).toEqual([{ sourceRanges: ['0.0.0.0/0', '192.0.2.10/32'] }]);
  });

  it('refuses a rollback and patches nothing when the rule was re-created under its name since the fix', async () => {
    // Prepare: the fixed rule (id 1001) was deleted and another one (id 2002) made under the same name, disabled.
    gcp.firewalls.set(RULE, { ...rule(), id: '1001' });
    const c = ctx();
    const { before } = await action.apply(await action.plan(target, c), c);
    gcp.firewalls.set(RULE, { ...rule(), id: '2002', disabled: true, sourceRanges: ['0.0.0.0/0'] });
    gcp.requests.length = 0;
    // Act
    const attempt = action.rollback({ target, before }, c);
    // Assess
    await expect(attempt).rejects.toThrow(/re-created/);
    expect(writes()).toEqual([]);
    expect(rule()).toMatchObject({ id: '2002', disabled: true });
  });

  it('refuses a rollback and patches nothing when the before-state names another rule than the target', async () => {
    // Prepare: a second open rule, disabled; a before-state that names it beside the target.
    const OTHER = 'allow-rdp-from-anywhere';
    gcp.firewalls.set(OTHER, { ...rule(), name: OTHER, disabled: true });
    const c = ctx();
    const { before } = await action.apply(await action.plan(target, c), c);
    gcp.requests.length = 0;
    // Act
    const attempt = action.rollback({ target, before: { ...before, name: OTHER } }, c);
    // Assess
    await expect(attempt).rejects.toThrow(
      `gcp.firewall.disable-rule rollback: the before-state is of rule ${OTHER}, not ${RULE}: nothing restored`,
    );
    expect(writes()).toEqual([]);
    expect(gcp.firewalls.get(OTHER)).toMatchObject({ disabled: true });
  });

  it('throws denied without retrying when compute answers 403', async () => {
    // Prepare
    gcp.failNext(RULE_PATH, 403, { reason: 'forbidden' });
    // Act
    const attempt = action.plan(target, ctx());
    // Assess
    await expect(attempt).rejects.toSatisfy(isDenied);
    expect(gcp.requests).toHaveLength(1);
  });

  it('throws gone when the rule no longer exists', async () => {
    // Prepare
    gcp.firewalls.clear();
    // Act / Assess
    await expect(action.plan(target, ctx())).rejects.toSatisfy(isGone);
  });

  it('retries and succeeds when compute throttles the patch once', async () => {
    // Prepare
    const c = ctx();
    const plan = await action.plan(target, c);
    gcp.failNext(RULE_PATH, 429, { method: 'PATCH', reason: 'rateLimitExceeded' });
    gcp.requests.length = 0;
    // Act
    const result = await action.apply(plan, c);
    // Assess
    expect(gcp.requests.filter((r) => r.method === 'PATCH')).toHaveLength(2);
    expect(result.requestIds).toHaveLength(1);
    expect(rule()).toMatchObject({ disabled: true });
  });

  it('selects project and rule from an SCC firewall resource name', () => {
    // Prepare / Act
    const t = action.selectTarget(
      findingFor({
        provider: 'gcp',
        id: `//compute.googleapis.com/projects/${PROJECT}/global/firewalls/${RULE}`,
        type: 'google.compute.Firewall',
        name: RULE,
        account: PROJECT,
      }),
    );
    // Assess
    expect(t).toEqual(target);
  });
});

describe('compute clients: a call Compute never answers', () => {
  let silent: Server;
  let port = 0;
  beforeAll(async () => {
    // Accepts the request and never answers (a hung backend, a black-holed route).
    silent = createServer(() => {});
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    port = (silent.address() as AddressInfo).port;
  });
  afterAll(async () => {
    silent.closeAllConnections();
    await new Promise<void>((resolve) => silent.close(() => resolve()));
  });

  it('fails as transient after the call deadline, not when the function is killed', async () => {
    // Prepare: the REST transport sends no deadline of its own
    const clients = createCloudClients({
      gcp: { compute: { host: '127.0.0.1', port, protocol: 'http', apiKey: 'test-key' }, callTimeoutMs: 300 },
    });
    const firewalls = await clients.gcpFirewalls();
    const started = Date.now();
    // Act
    const error = await firewalls.get({ project: PROJECT, firewall: RULE }).catch((e: unknown) => e);
    // Assess
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(isTransient(classifyCloudError(error, 'compute.firewalls.get'))).toBe(true);
  }, 8_000);
});
