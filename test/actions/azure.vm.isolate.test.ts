import type { NetworkInterface, NetworkSecurityGroup } from '@azure/arm-network';
import { beforeEach, describe, expect, it } from 'vitest';
import action, { DENY_ALL_RULES } from '../../shared/actions/azure.vm.isolate.js';
import type { AzureNetwork } from '../../shared/actions/clients.js';
import { isDenied, isGone } from '../../shared/core/errors.js';
import { findingFor, testContext } from '../helpers/action-context.js';
import { assessApplied } from '../verify/helpers.js';

const SUB = '00000000-0000-0000-0000-000000000000';
const RG = 'rg-build';
const target = { subscriptionId: SUB, resourceGroup: RG, vmName: 'build-agent-01' };
const ARM = `/subscriptions/${SUB}/resourceGroups/${RG}/providers`;
const VM_ID = `${ARM}/Microsoft.Compute/virtualMachines/build-agent-01`;
const OTHER_VM_ID = `${ARM}/Microsoft.Compute/virtualMachines/web-01`;
const ISOLATION = 'closeloop-isolation-westeurope';
const ISOLATION_ID = `${ARM}/Microsoft.Network/networkSecurityGroups/${ISOLATION}`;
const APP_NSG_ID = `${ARM}/Microsoft.Network/networkSecurityGroups/nsg-app`;

/** An Azure RestError as @azure/core-rest-pipeline throws it: class name in `name`, ARM code in `code`. */
function restError(code: string, statusCode: number, retryAfter?: string): Error {
  const headers = new Map(retryAfter ? [['retry-after', retryAfter]] : []);
  return Object.assign(new Error(code), {
    name: 'RestError',
    code,
    statusCode,
    response: { status: statusCode, headers: { get: (n: string) => headers.get(n.toLowerCase()) } },
  });
}

const nic = (name: string, vm: string, nsg?: string, group = RG): NetworkInterface => ({
  id: `/subscriptions/${SUB}/resourceGroups/${group}/providers/Microsoft.Network/networkInterfaces/${name}`,
  name,
  location: 'westeurope',
  virtualMachine: { id: vm },
  ipConfigurations: [{ name: 'ipconfig1', privateIPAddress: '192.0.2.10', primary: true }],
  tags: { owner: 'build@example.com' },
  ...(nsg ? { networkSecurityGroup: { id: nsg } } : {}),
});

type Call =
  | { op: 'nsg.createOrUpdate'; resourceGroup: string; name: string; parameters: NetworkSecurityGroup }
  | { op: 'nic.createOrUpdate'; resourceGroup: string; name: string; parameters: NetworkInterface };

/**
 * ARM stub over the calls the action makes (house style §2): holds NICs and NSGs, records every write
 * with its documented request shape, answers a missing resource with 404 ResourceNotFound like ARM, and
 * can fail the next call of one operation.
 */
function armStub() {
  const nics = new Map<string, NetworkInterface>();
  const nsgs = new Map<string, NetworkSecurityGroup>();
  const calls: Call[] = [];
  const failures = new Map<string, Error[]>();
  const attempts = new Map<string, number>();
  const failing = (op: string) => {
    attempts.set(op, (attempts.get(op) ?? 0) + 1);
    const e = failures.get(op)?.shift();
    if (e) throw e;
  };
  const notFound = (kind: string, name: string) =>
    Object.assign(restError('ResourceNotFound', 404), { message: `${kind} ${name} not found` });
  const network: AzureNetwork = {
    networkInterfaces: {
      listAll() {
        const items = [...nics.values()];
        async function* all() {
          failing('nic.list');
          yield* items;
        }
        const it = all();
        return {
          next: () => it.next(),
          [Symbol.asyncIterator]() {
            return this;
          },
          byPage: () =>
            (async function* pages() {
              yield items;
            })(),
        };
      },
      async get(resourceGroup, name) {
        failing('nic.get');
        const n = nics.get(name);
        if (!n?.id?.includes(`/resourceGroups/${resourceGroup}/`)) throw notFound('networkInterface', name);
        return structuredClone(n);
      },
      async beginCreateOrUpdateAndWait(resourceGroup, name, parameters) {
        failing('nic.createOrUpdate');
        calls.push({ op: 'nic.createOrUpdate', resourceGroup, name, parameters: structuredClone(parameters) });
        nics.set(name, structuredClone(parameters));
        return parameters;
      },
    },
    networkSecurityGroups: {
      async get(_resourceGroup, name) {
        failing('nsg.get');
        const g = nsgs.get(name);
        if (!g) throw notFound('networkSecurityGroup', name);
        return structuredClone(g);
      },
      async beginCreateOrUpdateAndWait(resourceGroup, name, parameters) {
        failing('nsg.createOrUpdate');
        calls.push({ op: 'nsg.createOrUpdate', resourceGroup, name, parameters: structuredClone(parameters) });
        const created = {
          ...structuredClone(parameters),
          id: `${ARM}/Microsoft.Network/networkSecurityGroups/${name}`,
          name,
        };
        nsgs.set(name, created);
        return created;
      },
    },
  };
  return {
    network,
    nics,
    nsgs,
    calls,
    attempts,
    failNext: (op: string, e: Error) => failures.set(op, [...(failures.get(op) ?? []), e]),
  };
}

describe('Action: azure.vm.isolate', () => {
  let arm: ReturnType<typeof armStub>;
  beforeEach(() => {
    arm = armStub();
    arm.nics.set('build-agent-01-nic0', nic('build-agent-01-nic0', VM_ID, APP_NSG_ID));
    arm.nics.set('build-agent-01-nic1', nic('build-agent-01-nic1', VM_ID));
    arm.nics.set('web-01-nic0', nic('web-01-nic0', OTHER_VM_ID, APP_NSG_ID));
    arm.nsgs.set('nsg-app', { id: APP_NSG_ID, name: 'nsg-app', location: 'westeurope', securityRules: [] });
  });

  const ctx = () => testContext({ clients: { azureNetwork: () => arm.network } });
  const isolateFully = () => {
    arm.nsgs.set(ISOLATION, {
      id: ISOLATION_ID,
      name: ISOLATION,
      location: 'westeurope',
      securityRules: DENY_ALL_RULES,
    });
    for (const name of ['build-agent-01-nic0', 'build-agent-01-nic1']) {
      arm.nics.set(name, nic(name, VM_ID, ISOLATION_ID));
    }
  };

  it('plans the deny-all NSG and one NIC swap per NIC, naming the old NSGs, without writing', async () => {
    // Act
    const plan = await action.plan(target, ctx());
    // Assess
    expect(plan.steps.map((s) => s.say)).toEqual([
      `create (or complete) NSG ${ISOLATION} denying all inbound and outbound traffic`,
      `associate NIC build-agent-01-nic0 with the isolation NSG (was ${APP_NSG_ID})`,
      'associate NIC build-agent-01-nic1 with the isolation NSG (was none)',
    ]);
    expect(plan.steps.map((s) => s.call)).toEqual([
      {
        api: 'networkSecurityGroups.beginCreateOrUpdateAndWait',
        permission: 'Microsoft.Network/networkSecurityGroups/write',
        input: {
          resourceGroupName: RG,
          networkSecurityGroupName: ISOLATION,
          parameters: {
            location: 'westeurope',
            tags: { 'closeloop:isolation': 'true' },
            securityRules: DENY_ALL_RULES,
          },
        },
      },
      {
        api: 'networkInterfaces.beginCreateOrUpdateAndWait',
        permission: 'Microsoft.Network/networkInterfaces/write',
        input: {
          resourceGroupName: RG,
          networkInterfaceName: 'build-agent-01-nic0',
          networkSecurityGroupId: ISOLATION_ID,
        },
      },
      {
        api: 'networkInterfaces.beginCreateOrUpdateAndWait',
        permission: 'Microsoft.Network/networkInterfaces/write',
        input: {
          resourceGroupName: RG,
          networkInterfaceName: 'build-agent-01-nic1',
          networkSecurityGroupId: ISOLATION_ID,
        },
      },
    ]);
    expect(plan.before).toEqual({
      location: 'westeurope',
      nics: [
        { name: 'build-agent-01-nic0', resourceGroup: RG, nsgId: APP_NSG_ID },
        { name: 'build-agent-01-nic1', resourceGroup: RG, nsgId: null },
      ],
      isolationNsg: null,
    });
    expect(arm.calls).toEqual([]);
  });

  it('creates an NSG whose explicit denies at priority 100 cover both directions', () => {
    // Assess: the defaults (AllowVnetInBound 65000 …) lose only to a lower priority number.
    expect(DENY_ALL_RULES).toEqual([
      {
        name: 'closeloop-deny-all-inbound',
        priority: 100,
        direction: 'Inbound',
        access: 'Deny',
        protocol: '*',
        sourceAddressPrefix: '*',
        sourcePortRange: '*',
        destinationAddressPrefix: '*',
        destinationPortRange: '*',
      },
      {
        name: 'closeloop-deny-all-outbound',
        priority: 100,
        direction: 'Outbound',
        access: 'Deny',
        protocol: '*',
        sourceAddressPrefix: '*',
        sourcePortRange: '*',
        destinationAddressPrefix: '*',
        destinationPortRange: '*',
      },
    ]);
  });

  it('creates the NSG and swaps it onto every NIC of the VM, keeping the rest of each NIC and the old NSG', async () => {
    // Prepare
    const c = ctx();
    const plan = await action.plan(target, c);
    // Act
    const result = await action.apply(plan, c);
    // Assess
    expect(arm.calls).toEqual([
      {
        op: 'nsg.createOrUpdate',
        resourceGroup: RG,
        name: ISOLATION,
        parameters: { location: 'westeurope', tags: { 'closeloop:isolation': 'true' }, securityRules: DENY_ALL_RULES },
      },
      {
        op: 'nic.createOrUpdate',
        resourceGroup: RG,
        name: 'build-agent-01-nic0',
        parameters: { ...nic('build-agent-01-nic0', VM_ID), networkSecurityGroup: { id: ISOLATION_ID } },
      },
      {
        op: 'nic.createOrUpdate',
        resourceGroup: RG,
        name: 'build-agent-01-nic1',
        parameters: { ...nic('build-agent-01-nic1', VM_ID), networkSecurityGroup: { id: ISOLATION_ID } },
      },
    ]);
    expect(arm.nics.get('web-01-nic0')?.networkSecurityGroup?.id).toBe(APP_NSG_ID);
    expect(arm.nsgs.has('nsg-app')).toBe(true);
    expect(result.before).toEqual(plan.before);
    expect(result.requestIds).toEqual([
      `azure:networkSecurityGroups.beginCreateOrUpdateAndWait ${ISOLATION}`,
      'azure:networkInterfaces.beginCreateOrUpdateAndWait build-agent-01-nic0',
      'azure:networkInterfaces.beginCreateOrUpdateAndWait build-agent-01-nic1',
    ]);
  });

  it('isolates a NIC of the VM that lives in another resource group of the subscription', async () => {
    // Prepare
    arm.nics.set('build-agent-01-nic2', nic('build-agent-01-nic2', VM_ID, undefined, 'rg-network'));
    const c = ctx();
    // Act
    const plan = await action.plan(target, c);
    await action.apply(plan, c);
    const v = await action.verify(target, c);
    // Assess
    expect(plan.steps.at(-1)?.call.input).toEqual({
      resourceGroupName: 'rg-network',
      networkInterfaceName: 'build-agent-01-nic2',
      networkSecurityGroupId: ISOLATION_ID,
    });
    expect(arm.calls.at(-1)).toMatchObject({
      op: 'nic.createOrUpdate',
      resourceGroup: 'rg-network',
      name: 'build-agent-01-nic2',
    });
    expect(arm.nics.get('build-agent-01-nic2')?.networkSecurityGroup?.id).toBe(ISOLATION_ID);
    expect(v.holds).toBe(true);
  });

  it('does not call the VM isolated while a NIC in another resource group is still open', async () => {
    // Prepare
    isolateFully();
    arm.nics.set('build-agent-01-nic2', nic('build-agent-01-nic2', VM_ID, APP_NSG_ID, 'rg-network'));
    // Act
    const v = await action.verify(target, ctx());
    // Assess
    expect(v).toMatchObject({ holds: false, reason: 'a NIC lacks the deny-all NSG' });
  });

  it('rolls back a record written before NICs carried their resource group', async () => {
    // Prepare
    isolateFully();
    const legacy = action.beforeSchema.parse({
      location: 'westeurope',
      nics: [{ name: 'build-agent-01-nic0', nsgId: APP_NSG_ID }],
      isolationNsg: null,
    });
    // Act
    await action.rollback({ target, before: legacy }, ctx());
    // Assess
    expect(arm.nics.get('build-agent-01-nic0')?.networkSecurityGroup?.id).toBe(APP_NSG_ID);
  });

  it('reuses a complete isolation NSG of the resource group and only swaps the NICs', async () => {
    // Prepare
    arm.nsgs.set(ISOLATION, {
      id: ISOLATION_ID,
      name: ISOLATION,
      location: 'westeurope',
      securityRules: DENY_ALL_RULES,
    });
    // Act
    const plan = await action.plan(target, ctx());
    // Assess
    expect(plan.steps.map((s) => s.call.api)).toEqual([
      'networkInterfaces.beginCreateOrUpdateAndWait',
      'networkInterfaces.beginCreateOrUpdateAndWait',
    ]);
  });

  it('plans a no-op saying so when every NIC already has the complete isolation NSG', async () => {
    // Prepare
    isolateFully();
    // Act
    const plan = await action.plan(target, ctx());
    // Assess
    expect(plan).toMatchObject({ noop: true, steps: [], summary: 'VM build-agent-01 is already isolated' });
  });

  it('completes the isolation NSG when someone removed its outbound deny', async () => {
    // Prepare
    isolateFully();
    arm.nsgs.set(ISOLATION, {
      id: ISOLATION_ID,
      name: ISOLATION,
      location: 'westeurope',
      securityRules: DENY_ALL_RULES.slice(0, 1),
    });
    // Act
    const plan = await action.plan(target, ctx());
    // Assess
    expect(plan.steps.map((s) => s.call.api)).toEqual(['networkSecurityGroups.beginCreateOrUpdateAndWait']);
  });

  it('does not call the VM isolated when a deny rule of the isolation NSG was narrowed, and completes it', async () => {
    // Prepare: the rules keep their names, Deny and priority 100, but now deny one port, one source, one protocol.
    isolateFully();
    const edits = [
      { destinationPortRange: '3389' },
      { sourceAddressPrefix: '', sourceAddressPrefixes: ['203.0.113.0/24'] },
      { protocol: 'Tcp' },
    ];
    for (const edit of edits) {
      arm.nsgs.set(ISOLATION, {
        id: ISOLATION_ID,
        name: ISOLATION,
        location: 'westeurope',
        securityRules: DENY_ALL_RULES.map((r) => (r.direction === 'Inbound' ? { ...r, ...edit } : r)),
      });
      // Act
      const verdict = await action.verify(target, ctx());
      const plan = await action.plan(target, ctx());
      // Assess
      expect(verdict, JSON.stringify(edit)).toMatchObject({ holds: false, reason: 'a NIC lacks the deny-all NSG' });
      expect(plan.steps.map((s) => s.call.api)).toEqual(['networkSecurityGroups.beginCreateOrUpdateAndWait']);
    }
  });

  it('verifies isolation after apply and fails when a NIC got its old NSG back', async () => {
    // Prepare
    const c = ctx();
    await action.apply(await action.plan(target, c), c);
    // Act
    const holds = await action.verify(target, c);
    arm.nics.set('build-agent-01-nic0', nic('build-agent-01-nic0', VM_ID, APP_NSG_ID));
    const broken = await action.verify(target, c);
    // Assess
    expect(holds).toMatchObject({ holds: true, reason: 'VM build-agent-01 is isolated' });
    expect(broken).toMatchObject({ holds: false, reason: 'a NIC lacks the deny-all NSG' });
    expect(broken.observed).toMatchObject({ nics: [{ name: 'build-agent-01-nic0', nsgId: APP_NSG_ID }, {}] });
  });

  describe('through the verifier', () => {
    const assess = () => assessApplied(action, target, ctx());

    it('reaches verified when only the isolation NSG is attached', async () => {
      // Prepare
      isolateFully();
      // Act / Assess
      expect(await assess()).toMatchObject({ verdict: 'verified', basis: 're-read' });
    });

    it('reaches failed with the observed NICs when the VM is not isolated', async () => {
      // Act / Assess
      expect(await assess()).toMatchObject({ verdict: 'failed', observed: { isolationNsg: null } });
    });

    it('reaches inconclusive when ARM denies the re-read', async () => {
      // Prepare
      arm.failNext('nic.list', restError('AuthorizationFailed', 403));
      // Act
      const verdict = await assess();
      // Assess
      expect(verdict).toMatchObject({ verdict: 'inconclusive', attempts: 1 });
      expect(verdict).toHaveProperty('reason', expect.stringContaining('denied'));
    });
  });

  it('puts every NIC back on its old NSG (or none) on rollback and keeps the isolation NSG', async () => {
    // Prepare
    const c = ctx();
    const { before } = await action.apply(await action.plan(target, c), c);
    arm.calls.length = 0;
    // Act
    const { requestIds } = await action.rollback({ target, before }, c);
    // Assess
    expect(arm.calls).toEqual([
      {
        op: 'nic.createOrUpdate',
        resourceGroup: RG,
        name: 'build-agent-01-nic0',
        parameters: nic('build-agent-01-nic0', VM_ID, APP_NSG_ID),
      },
      {
        op: 'nic.createOrUpdate',
        resourceGroup: RG,
        name: 'build-agent-01-nic1',
        parameters: nic('build-agent-01-nic1', VM_ID),
      },
    ]);
    expect(requestIds).toHaveLength(2);
    expect(arm.nsgs.has(ISOLATION)).toBe(true);
  });

  it('leaves a NIC whose NSG was changed since the isolation as it is on rollback, and says so', async () => {
    // Prepare: after the isolation a responder put nic1 on a forensics NSG.
    const c = ctx();
    const { before } = await action.apply(await action.plan(target, c), c);
    const FORENSICS_ID = `${ARM}/Microsoft.Network/networkSecurityGroups/nsg-forensics`;
    arm.nics.set('build-agent-01-nic1', nic('build-agent-01-nic1', VM_ID, FORENSICS_ID));
    arm.calls.length = 0;
    // Act
    const { requestIds, note } = await action.rollback({ target, before }, c);
    // Assess: nic0 is back on its old NSG; nic1 keeps the responder's, and the note names it
    expect(arm.calls.map((x) => x.name)).toEqual(['build-agent-01-nic0']);
    expect(requestIds).toHaveLength(1);
    expect(arm.nics.get('build-agent-01-nic0')?.networkSecurityGroup?.id).toBe(APP_NSG_ID);
    expect(arm.nics.get('build-agent-01-nic1')?.networkSecurityGroup?.id).toBe(FORENSICS_ID);
    expect(note).toContain('build-agent-01-nic1');
    expect(note).toContain('nsg-forensics');
  });

  it('refuses a rollback and writes nothing when the before-state names a NIC of another VM', async () => {
    // Prepare: the record names web-01's NIC beside the target's, to strip its NSG.
    const c = ctx();
    const { before } = await action.apply(await action.plan(target, c), c);
    arm.calls.length = 0;
    const forged = { ...before, nics: [...before.nics, { name: 'web-01-nic0', resourceGroup: RG, nsgId: null }] };
    // Act
    const attempt = action.rollback({ target, before: forged }, c);
    // Assess
    await expect(attempt).rejects.toThrow(
      `azure.vm.isolate rollback: NIC ${RG}/web-01-nic0 is not attached to VM build-agent-01: nothing restored`,
    );
    expect(arm.calls).toEqual([]);
    expect(arm.nics.get('web-01-nic0')?.networkSecurityGroup?.id).toBe(APP_NSG_ID);
  });

  it('throws denied without retrying when ARM answers 403 AuthorizationFailed', async () => {
    // Prepare
    const c = ctx();
    const plan = await action.plan(target, c);
    arm.failNext('nsg.createOrUpdate', restError('AuthorizationFailed', 403));
    // Act
    const attempt = action.apply(plan, c);
    // Assess
    await expect(attempt).rejects.toSatisfy(isDenied);
    expect(arm.attempts.get('nsg.createOrUpdate')).toBe(1);
    expect(arm.calls).toEqual([]);
    expect(arm.nics.get('build-agent-01-nic0')?.networkSecurityGroup?.id).toBe(APP_NSG_ID);
  });

  it('throws gone when the VM has no network interface left', async () => {
    // Prepare
    arm.nics.delete('build-agent-01-nic0');
    arm.nics.delete('build-agent-01-nic1');
    // Act / Assess
    await expect(action.plan(target, ctx())).rejects.toSatisfy(isGone);
  });

  it('retries and succeeds when ARM throttles a NIC update once with Retry-After', async () => {
    // Prepare
    const c = ctx();
    const plan = await action.plan(target, c);
    arm.failNext('nic.createOrUpdate', restError('TooManyRequests', 429, '0'));
    // Act
    const result = await action.apply(plan, c);
    // Assess
    expect(result.requestIds).toHaveLength(3);
    expect(arm.attempts.get('nic.createOrUpdate')).toBe(3);
    expect(arm.nics.get('build-agent-01-nic0')?.networkSecurityGroup?.id).toBe(ISOLATION_ID);
  });

  it('selects subscription, resource group and VM from a Defender resource id', () => {
    // Prepare / Act
    const t = action.selectTarget(
      findingFor({
        provider: 'azure',
        id: VM_ID,
        type: 'Microsoft.Compute/virtualMachines',
        name: 'build-agent-01',
        account: SUB,
      }),
    );
    // Assess
    expect(t).toEqual(target);
  });
});
