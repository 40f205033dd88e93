/**
 * Isolates an Azure VM: a deny-all network security group (explicit deny of all inbound and outbound
 * traffic at priority 100, above the default allow rules at 65000+) associated with every NIC of the VM.
 * The NSG is created once per resource group and region and reused. Each NIC's previous NSG is the
 * before-state; rollback puts it back. A VM's NICs may live in other resource groups of the
 * subscription, so they are found by listing the subscription's NICs and matching the VM id: a NIC
 * missed here would stay open while verify reported the VM isolated.
 *
 * @see https://learn.microsoft.com/azure/virtual-network/network-security-groups-overview (rule priorities)
 */
import * as z from 'zod';
import { AdapterError } from '../core/errors.js';
import { type ActionContext, defineAction, type Plan } from './define.js';
import { applyPlanned, call, changePlan, noopPlan, step } from './plan.js';
import { sdkErrorCode } from './retry.js';

const ID = 'azure.vm.isolate';
const VM_ID =
  /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/Microsoft\.Compute\/virtualMachines\/([^/]+)$/i;

const TargetSchema = z.object({
  subscriptionId: z.string().min(1),
  resourceGroup: z.string().min(1),
  vmName: z.string().min(1),
});
type Target = z.infer<typeof TargetSchema>;

const BeforeSchema = z.object({
  location: z.string(),
  /** `resourceGroup` absent in records written before NICs of other groups were found: the VM's group. */
  nics: z.array(z.object({ name: z.string(), resourceGroup: z.string().optional(), nsgId: z.string().nullable() })),
  isolationNsg: z.object({ id: z.string(), complete: z.boolean() }).nullable(),
});
type Before = z.infer<typeof BeforeSchema>;

const nsgName = (location: string) => `closeloop-isolation-${location}`;
const nsgId = (t: Target, location: string) =>
  `/subscriptions/${t.subscriptionId}/resourceGroups/${t.resourceGroup}/providers/Microsoft.Network/networkSecurityGroups/${nsgName(location)}`;
const vmId = (t: Target) =>
  `/subscriptions/${t.subscriptionId}/resourceGroups/${t.resourceGroup}/providers/Microsoft.Compute/virtualMachines/${t.vmName}`;

/** Explicit denies at the highest custom priority: the defaults (AllowVnetInBound …) would otherwise win. */
export const DENY_ALL_RULES = (['Inbound', 'Outbound'] as const).map((direction) => ({
  name: `closeloop-deny-all-${direction.toLowerCase()}`,
  priority: 100,
  direction,
  access: 'Deny' as const,
  protocol: '*' as const,
  sourceAddressPrefix: '*',
  sourcePortRange: '*',
  destinationAddressPrefix: '*',
  destinationPortRange: '*',
}));

/** A security rule as ARM returns it, reduced to what decides which traffic it matches. */
interface RuleView {
  name?: string;
  access?: string;
  priority?: number;
  direction?: string;
  protocol?: string;
  sourceAddressPrefix?: string;
  sourceAddressPrefixes?: readonly string[];
  destinationAddressPrefix?: string;
  destinationAddressPrefixes?: readonly string[];
  sourcePortRange?: string;
  sourcePortRanges?: readonly string[];
  destinationPortRange?: string;
  destinationPortRanges?: readonly string[];
  sourceApplicationSecurityGroups?: readonly unknown[];
  destinationApplicationSecurityGroups?: readonly unknown[];
}

const none = (xs: readonly unknown[] | undefined) => (xs?.length ?? 0) === 0;

/**
 * Does `x` still deny everything `r` denies: same direction, every protocol, address and port (a list of
 * prefixes, ports or application security groups replaces the single `*` in ARM, so any of them narrows it)?
 * A deny rule edited to one port or one source keeps its name, access and priority while the VM is open.
 */
const deniesAllOf = (x: RuleView, r: (typeof DENY_ALL_RULES)[number]) =>
  x.name === r.name &&
  x.access === 'Deny' &&
  x.priority === r.priority &&
  x.direction === r.direction &&
  x.protocol === '*' &&
  x.sourceAddressPrefix === '*' &&
  x.destinationAddressPrefix === '*' &&
  x.sourcePortRange === '*' &&
  x.destinationPortRange === '*' &&
  none(x.sourceAddressPrefixes) &&
  none(x.destinationAddressPrefixes) &&
  none(x.sourcePortRanges) &&
  none(x.destinationPortRanges) &&
  none(x.sourceApplicationSecurityGroups) &&
  none(x.destinationApplicationSecurityGroups);

const isComplete = (rules: readonly RuleView[] | undefined) =>
  DENY_ALL_RULES.every((r) => rules?.some((x) => deniesAllOf(x, r)));

/** The resource group in an ARM id (`/subscriptions/…/resourceGroups/<rg>/…`). */
const groupOf = (id: string | undefined) => (id ? /\/resourceGroups\/([^/]+)\//i.exec(id)?.[1] : undefined);

async function readState(t: Target, ctx: ActionContext): Promise<Before> {
  const net = await ctx.clients.azureNetwork(t.subscriptionId);
  const nics: Array<{ name: string; resourceGroup: string; nsgId: string | null; location: string }> = [];
  await call(ctx, `networkInterfaces.listAll ${t.subscriptionId}`, async () => {
    nics.length = 0;
    for await (const n of net.networkInterfaces.listAll()) {
      if (n.virtualMachine?.id?.toLowerCase() !== vmId(t).toLowerCase() || !n.name) continue;
      nics.push({
        name: n.name,
        resourceGroup: groupOf(n.id) ?? t.resourceGroup,
        nsgId: n.networkSecurityGroup?.id ?? null,
        location: n.location ?? '',
      });
    }
  });
  // Stable order: the listing's order is not part of the API, and the before-state is compared at apply.
  nics.sort((a, b) => `${a.resourceGroup}/${a.name}`.localeCompare(`${b.resourceGroup}/${b.name}`));
  const location = nics[0]?.location;
  if (!location) throw new AdapterError('gone', `no network interface of VM ${t.vmName} found in ${t.subscriptionId}`);
  let isolationNsg: Before['isolationNsg'] = null;
  try {
    const nsg = await call(ctx, `networkSecurityGroups.get ${nsgName(location)}`, () =>
      net.networkSecurityGroups.get(t.resourceGroup, nsgName(location)),
    );
    isolationNsg = { id: nsg.id ?? nsgId(t, location), complete: isComplete(nsg.securityRules) };
  } catch (e) {
    if (sdkErrorCode(e) !== 'ResourceNotFound' && sdkErrorCode(e) !== 'NotFound') throw e;
  }
  return {
    location,
    nics: nics.map(({ name, resourceGroup, nsgId: id }) => ({ name, resourceGroup, nsgId: id })),
    isolationNsg,
  };
}

const isolated = (b: Before) =>
  b.isolationNsg?.complete === true && b.nics.every((n) => n.nsgId?.toLowerCase() === b.isolationNsg?.id.toLowerCase());

async function plan(target: Target, ctx: ActionContext): Promise<Plan<Target, Before>> {
  const before = await readState(target, ctx);
  if (isolated(before)) return noopPlan(target, before, `VM ${target.vmName} is already isolated`);
  const id = nsgId(target, before.location);
  const steps = [];
  if (!before.isolationNsg?.complete) {
    steps.push(
      step(
        `create (or complete) NSG ${nsgName(before.location)} denying all inbound and outbound traffic`,
        'networkSecurityGroups.beginCreateOrUpdateAndWait',
        'Microsoft.Network/networkSecurityGroups/write',
        {
          resourceGroupName: target.resourceGroup,
          networkSecurityGroupName: nsgName(before.location),
          parameters: {
            location: before.location,
            tags: { 'closeloop:isolation': 'true' },
            securityRules: DENY_ALL_RULES,
          },
        },
      ),
    );
  }
  for (const nic of before.nics) {
    if (nic.nsgId?.toLowerCase() === id.toLowerCase()) continue;
    steps.push(
      step(
        `associate NIC ${nic.name} with the isolation NSG (was ${nic.nsgId ?? 'none'})`,
        'networkInterfaces.beginCreateOrUpdateAndWait',
        'Microsoft.Network/networkInterfaces/write',
        {
          resourceGroupName: nic.resourceGroup ?? target.resourceGroup,
          networkInterfaceName: nic.name,
          networkSecurityGroupId: id,
        },
      ),
    );
  }
  return changePlan(target, before, steps, `isolate VM ${target.vmName}: deny-all NSG on ${before.nics.length} NIC(s)`);
}

/** Re-reads the NIC and writes it back with only its NSG association changed (PUT replaces the whole NIC). */
async function setNicNsg(
  t: Target,
  nicGroup: string,
  nicName: string,
  id: string | null,
  ctx: ActionContext,
): Promise<string> {
  const net = await ctx.clients.azureNetwork(t.subscriptionId);
  const nic = await call(ctx, `networkInterfaces.get ${nicName}`, () => net.networkInterfaces.get(nicGroup, nicName));
  const { networkSecurityGroup: _old, ...rest } = nic;
  const what = `networkInterfaces.beginCreateOrUpdateAndWait ${nicName}`;
  await call(ctx, what, () =>
    net.networkInterfaces.beginCreateOrUpdateAndWait(
      nicGroup,
      nicName,
      id ? { ...rest, networkSecurityGroup: { id } } : rest,
    ),
  );
  return `azure:${what}`;
}

const NsgInput = z.object({
  networkSecurityGroupName: z.string(),
  parameters: z.object({ location: z.string(), tags: z.record(z.string(), z.string()) }),
});
const NicInput = z.object({
  resourceGroupName: z.string(),
  networkInterfaceName: z.string(),
  networkSecurityGroupId: z.string(),
});

export default defineAction<Target, Before>({
  id: ID,
  title: 'Isolate an Azure VM with a deny-all network security group on its NICs',
  provider: 'azure',
  handles: { findingTypes: ['VM_MinerInContainerImage', 'VM_DigitalCurrencyMining', 'VM_MaliciousSoftware'] },
  // A NIC is written back whole (PUT), and ARM checks a join on every resource its body names, changed or
  // not (linked access check, 403 LinkedAuthorizationFailed): the NSG set, and what its IP configurations
  // sit in or behind (subnet, public IP, application security groups, load balancer pools and NAT rules,
  // application gateway pools). Without them no NIC could be isolated nor put back.
  // https://learn.microsoft.com/azure/virtual-network/virtual-network-network-interface#permissions
  permissions: [
    'Microsoft.Network/networkInterfaces/read',
    'Microsoft.Network/networkInterfaces/write',
    'Microsoft.Network/networkSecurityGroups/read',
    'Microsoft.Network/networkSecurityGroups/write',
    'Microsoft.Network/networkSecurityGroups/join/action',
    'Microsoft.Network/virtualNetworks/subnets/join/action',
    'Microsoft.Network/publicIPAddresses/join/action',
    'Microsoft.Network/applicationSecurityGroups/joinIpConfiguration/action',
    'Microsoft.Network/loadBalancers/backendAddressPools/join/action',
    'Microsoft.Network/loadBalancers/inboundNatRules/join/action',
    'Microsoft.Network/applicationGateways/backendAddressPools/join/action',
  ],
  // verify(): readState (networkInterfaces.listAll, networkSecurityGroups.get).
  verifyPermissions: ['Microsoft.Network/networkInterfaces/read', 'Microsoft.Network/networkSecurityGroups/read'],
  risk: 'high',
  productionSafe: false,
  outline: [
    {
      say: 'create (or complete) an NSG denying all inbound and outbound traffic',
      api: 'networkSecurityGroups.beginCreateOrUpdateAndWait',
      permission: 'Microsoft.Network/networkSecurityGroups/write',
    },
    {
      say: "associate each of the VM's NICs with the isolation NSG (old NSGs kept for rollback)",
      api: 'networkInterfaces.beginCreateOrUpdateAndWait',
      permission: 'Microsoft.Network/networkInterfaces/write',
    },
  ],
  target: TargetSchema,
  beforeSchema: BeforeSchema,
  selectTarget(f) {
    if (f.resource.provider !== 'azure') return undefined;
    const m = VM_ID.exec(f.resource.id);
    const d = f.resource.details;
    const parsed = TargetSchema.safeParse({
      subscriptionId: m?.[1] ?? f.resource.account,
      resourceGroup: typeof d.resourceGroup === 'string' ? d.resourceGroup : m?.[2],
      vmName: typeof d.vmName === 'string' ? d.vmName : m?.[3],
    });
    return parsed.success ? parsed.data : undefined;
  },
  plan,
  apply: (p, ctx) =>
    applyPlanned(p, ctx, plan, async (s) => {
      const t = p.target;
      if (s.call.api === 'networkSecurityGroups.beginCreateOrUpdateAndWait') {
        const input = NsgInput.parse(s.call.input);
        const what = `networkSecurityGroups.beginCreateOrUpdateAndWait ${input.networkSecurityGroupName}`;
        await call(ctx, what, async () =>
          (await ctx.clients.azureNetwork(t.subscriptionId)).networkSecurityGroups.beginCreateOrUpdateAndWait(
            t.resourceGroup,
            input.networkSecurityGroupName,
            {
              ...input.parameters,
              securityRules: DENY_ALL_RULES,
            },
          ),
        );
        return `azure:${what}`;
      }
      if (s.call.api === 'networkInterfaces.beginCreateOrUpdateAndWait') {
        const input = NicInput.parse(s.call.input);
        return setNicNsg(t, input.resourceGroupName, input.networkInterfaceName, input.networkSecurityGroupId, ctx);
      }
      throw new AdapterError('invalid', `${ID} has no step ${s.call.api}`);
    }),
  async verify(target, ctx) {
    const observed = await readState(target, ctx);
    const holds = isolated(observed);
    return { holds, observed, reason: holds ? `VM ${target.vmName} is isolated` : 'a NIC lacks the deny-all NSG' };
  },
  async rollback({ target, before }, ctx) {
    // Only the target VM's NICs are put back: a before-state naming another NIC (forged or misfiled) would
    // set that NIC's NSG, so the VM's NICs are re-read and the rollback refused before any write.
    const key = (group: string | undefined, name: string) => `${group ?? target.resourceGroup}/${name}`.toLowerCase();
    const live = await readState(target, ctx);
    const attached = new Map(live.nics.map((n) => [key(n.resourceGroup, n.name), n.nsgId]));
    const foreign = before.nics.filter((n) => !attached.has(key(n.resourceGroup, n.name)));
    if (foreign.length > 0) {
      const names = foreign.map((n) => `${n.resourceGroup ?? target.resourceGroup}/${n.name}`).join(', ');
      throw new AdapterError(
        'invalid',
        `${ID} rollback: NIC ${names} is not attached to VM ${target.vmName}: nothing restored`,
      );
    }
    const ids: string[] = [];
    // Only what the isolation set is put back: a NIC still on the isolation NSG. One whose NSG was changed
    // since (a responder's forensics NSG, or none) keeps it and is named in the note: writing the old NSG over
    // it undid that change unsaid. One already on its old NSG needs nothing. ARM ids compare without case.
    const isolation = new Set(
      [live.isolationNsg?.id, before.isolationNsg?.id, nsgId(target, before.location)].flatMap((id) =>
        id ? [id.toLowerCase()] : [],
      ),
    );
    const changed: string[] = [];
    for (const nic of before.nics) {
      const group = nic.resourceGroup ?? target.resourceGroup;
      const now = attached.get(key(group, nic.name)) ?? null;
      if (now?.toLowerCase() === nic.nsgId?.toLowerCase()) continue;
      if (now === null || !isolation.has(now.toLowerCase())) {
        changed.push(`${group}/${nic.name} (now ${now ?? 'no NSG'})`);
        continue;
      }
      ids.push(await setNicNsg(target, group, nic.name, nic.nsgId, ctx));
    }
    if (changed.length === 0) return { requestIds: ids };
    const note = `NIC(s) ${changed.join('; ')} changed since the isolation: left as they are, old NSG not restored`;
    ctx.log.warn(`${ID} rollback: ${note}`, { vm: target.vmName });
    return { requestIds: ids, note };
  },
});
