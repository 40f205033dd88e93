/**
 * Closes a VPC firewall rule that admits the whole internet (ingress from 0.0.0.0/0 or ::/0): by
 * default the rule is disabled (`disabled: true`), or, when policy says `mode: narrow`, its source
 * ranges are replaced with the configured ones. The old `disabled` flag and source ranges are the
 * before-state; rollback patches back the one the fix changed while it is still as the fix left it (never a
 * rule re-created under the name since, nor ranges changed since: those are named in the rollback's note).
 *
 * @see https://cloud.google.com/compute/docs/reference/rest/v1/firewalls/patch
 * @see SRA cloudfunctions/firewall/openfirewall
 */
import * as z from 'zod';
import { AdapterError, OutcomeUnknownError } from '../core/errors.js';
import { canonicalJson } from '../core/util/hash.js';
import { type ActionContext, defineAction, type Plan } from './define.js';
import { applyPlanned, call, changePlan, noopPlan, step } from './plan.js';
import { classifyCloudError, GCP_CALL_TIMEOUT_MS, withRetry } from './retry.js';

const ID = 'gcp.firewall.disable-rule';
const OPEN = new Set(['0.0.0.0/0', '::/0']);

const TargetSchema = z.object({ project: z.string().min(1), firewall: z.string().min(1) });
type Target = z.infer<typeof TargetSchema>;

const BeforeSchema = z.object({
  name: z.string(),
  direction: z.string(),
  disabled: z.boolean(),
  sourceRanges: z.array(z.string()),
  /**
   * The rule's id and what it allows and denies: a rule re-created under the same name, or changed from
   * allow to deny, is another rule (the plan's re-read then conflicts). Absent in before-states recorded
   * before 2026-12-07.
   */
  id: z.string().optional(),
  allowed: z.number().int().optional(),
  denied: z.number().int().optional(),
  /**
   * What the fix sets (mode disable: `disabled`; mode narrow: the new `sourceRanges`), so a rollback knows
   * which field is still as the fix left it. Absent in before-states recorded before 2026-12-08: taken from
   * the settings at rollback.
   */
  fix: z.union([z.object({ disabled: z.literal(true) }), z.object({ sourceRanges: z.array(z.string()) })]).optional(),
});
type Before = z.infer<typeof BeforeSchema>;
type Fix = NonNullable<Before['fix']>;

/** policy.yaml `apply.actions["gcp.firewall.disable-rule"]`. */
const SettingsSchema = z.strictObject({
  mode: z.enum(['disable', 'narrow']).default('disable'),
  /** Ranges that replace an open source range in `narrow` mode. */
  sourceRanges: z.array(z.string().min(1)).default([]),
});

/** What a fix under `settings` sets on the rule. */
const fixOf = (settings: z.infer<typeof SettingsSchema>): Fix =>
  settings.mode === 'narrow' ? { sourceRanges: settings.sourceRanges } : { disabled: true };

/** Source ranges compare as sets: the order is not part of the rule. */
const sameRanges = (a: readonly string[], b: readonly string[]) =>
  canonicalJson([...a].sort()) === canonicalJson([...b].sort());

async function readState(t: Target, ctx: ActionContext): Promise<Before> {
  const [fw] = await call(ctx, `compute.firewalls.get ${t.firewall}`, async () =>
    (await ctx.clients.gcpFirewalls()).get({ project: t.project, firewall: t.firewall }),
  );
  return BeforeSchema.parse({
    name: fw.name ?? t.firewall,
    direction: fw.direction ?? 'INGRESS',
    disabled: fw.disabled === true,
    sourceRanges: fw.sourceRanges ?? [],
    ...(fw.id !== undefined && fw.id !== null ? { id: String(fw.id) } : {}),
    allowed: fw.allowed?.length ?? 0,
    denied: fw.denied?.length ?? 0,
  });
}

/**
 * An enabled ingress rule that *allows* traffic from the whole internet. A deny rule from 0.0.0.0/0 is a
 * guard: disabling (or narrowing) it would let in what lower-priority allow rules admit.
 */
const isOpen = (b: Before) =>
  b.direction === 'INGRESS' && !b.disabled && (b.allowed ?? 1) > 0 && b.sourceRanges.some((r) => OPEN.has(r));

async function plan(target: Target, ctx: ActionContext): Promise<Plan<Target, Before>> {
  const settings = SettingsSchema.parse(ctx.settings?.[ID] ?? {});
  const before = await readState(target, ctx);
  if (!isOpen(before)) {
    const why =
      (before.allowed ?? 1) === 0
        ? `firewall rule ${before.name} allows nothing (a deny rule guards, it is left as it is)`
        : `firewall rule ${before.name} does not admit the internet (disabled or narrowed)`;
    return noopPlan(target, before, why);
  }
  const fixed = { ...before, fix: fixOf(settings) };
  if (settings.mode === 'narrow') {
    if (settings.sourceRanges.length === 0) {
      throw new AdapterError('invalid', `${ID}: mode narrow needs apply.actions["${ID}"].sourceRanges`);
    }
    return changePlan(
      target,
      fixed,
      [
        step(
          `narrow the source ranges of ${before.name} from ${before.sourceRanges.join(', ')} to ${settings.sourceRanges.join(', ')}`,
          'compute.firewalls.patch',
          'compute.firewalls.update',
          {
            project: target.project,
            firewall: before.name,
            firewallResource: { sourceRanges: settings.sourceRanges },
          },
        ),
      ],
      `narrow firewall rule ${before.name}`,
    );
  }
  return changePlan(
    target,
    fixed,
    [
      step(
        `disable firewall rule ${before.name} (open to ${before.sourceRanges.filter((r) => OPEN.has(r)).join(', ')})`,
        'compute.firewalls.patch',
        'compute.firewalls.update',
        {
          project: target.project,
          firewall: before.name,
          firewallResource: { disabled: true },
        },
      ),
    ],
    `disable firewall rule ${before.name}`,
  );
}

const PatchInput = z.object({
  project: z.string(),
  firewall: z.string(),
  firewallResource: z.object({ disabled: z.boolean().optional(), sourceRanges: z.array(z.string()).optional() }),
});

/**
 * The compute Operation a patch returns (the fields we read). A DONE operation may still carry `error`:
 * the change was refused after the request was accepted.
 *
 * @see https://cloud.google.com/compute/docs/reference/rest/v1/globalOperations#resource:-operation
 */
const OperationSchema = z.looseObject({
  name: z.string().min(1),
  status: z.string().nullish(),
  httpErrorStatusCode: z.number().nullish(),
  error: z
    .looseObject({
      errors: z.array(z.looseObject({ code: z.string().nullish(), message: z.string().nullish() })).nullish(),
    })
    .nullish(),
});
type Operation = z.infer<typeof OperationSchema>;

/**
 * How long apply (or rollback) waits for the patch's operation in all: half the remediate worker's 120 s (remediateQueued,
 * infra/gcp/main.tf), the other half left for the re-read and the patch before it.
 */
const OPERATION_WAIT_BUDGET_MS = 60_000;

/**
 * `globalOperations.wait` long-polls (up to about two minutes) but every Google API call is cut at
 * {@link GCP_CALL_TIMEOUT_MS}, so one wait lasts at most that: this many waits in all (3: 60 s, plus backoffs
 * under a second). A wait cut short, failed for the moment or answered RUNNING is the next of them, not tried
 * again by `call` on top: 5 waits of up to 4 tries each was up to 400 s, and one wait cut 4 times 80 s after
 * the re-read and the patch, in a function killed at 120 s.
 */
const MAX_WAITS = Math.max(1, Math.floor(OPERATION_WAIT_BUDGET_MS / GCP_CALL_TIMEOUT_MS));

function operationFailure(op: Operation, what: string): AdapterError | undefined {
  const first = op.error?.errors?.[0];
  if (!first) return undefined;
  // The same classification as an HTTP error: the operation's status code and error code say the kind.
  return classifyCloudError(
    Object.assign(new Error(first.message ?? 'operation failed'), {
      ...(first.code ? { name: first.code } : {}),
      ...(op.httpErrorStatusCode ? { code: op.httpErrorStatusCode } : {}),
    }),
    what,
  );
}

/**
 * The operation once DONE, waiting at most {@link MAX_WAITS} waits. The patch was accepted: an operation
 * still running after them, or a wait that fails (even refused: compute.globalOperations.get missing), leaves
 * the change unconfirmed, not undone ({@link OutcomeUnknownError}); the next attempt's re-read decides.
 */
async function waitForOperation(name: string, project: string, what: string, ctx: ActionContext): Promise<Operation> {
  const waitWhat = `compute.globalOperations.wait ${name}`;
  try {
    return await withRetry(
      waitWhat,
      async () => {
        const [next] = await (await ctx.clients.gcpGlobalOperations()).wait({ project, operation: name });
        const op = OperationSchema.parse(next);
        if (op.status !== 'DONE') throw new AdapterError('transient', `${waitWhat}: still ${op.status ?? 'not done'}`);
        return op;
      },
      { ...ctx.retry, attempts: MAX_WAITS },
    );
  } catch (e) {
    throw new OutcomeUnknownError(
      classifyCloudError(e, waitWhat),
      `${what} was accepted, but operation ${name} was not seen to finish after ${MAX_WAITS} wait(s): it may have taken effect`,
    );
  }
}

async function patch(input: z.infer<typeof PatchInput>, ctx: ActionContext): Promise<string> {
  const what = `compute.firewalls.patch ${input.firewall}`;
  const [started] = await call(ctx, what, async () =>
    (await ctx.clients.gcpFirewalls()).patch({
      project: input.project,
      firewall: input.firewall,
      firewallResource: {
        ...(input.firewallResource.disabled !== undefined ? { disabled: input.firewallResource.disabled } : {}),
        ...(input.firewallResource.sourceRanges ? { sourceRanges: input.firewallResource.sourceRanges } : {}),
      },
    }),
  );
  let op = OperationSchema.parse(started.latestResponse);
  // Wait for the global operation: "the rule is disabled" must be true when apply returns.
  if (op.status !== 'DONE') op = await waitForOperation(op.name, input.project, what, ctx);
  const failure = operationFailure(op, what);
  if (failure) throw failure;
  return `gcp:operation/${op.name}`;
}

export default defineAction<Target, Before>({
  id: ID,
  title: 'Disable (or narrow) a GCP firewall rule open to the internet',
  provider: 'gcp',
  handles: { categories: ['OPEN_FIREWALL'] },
  // compute.networks.updatePolicy: firewalls.patch also requires it on the rule's network;
  // compute.globalOperations.get: waiting for the patch's global operation.
  permissions: [
    'compute.firewalls.get',
    'compute.firewalls.update',
    'compute.globalOperations.get',
    'compute.networks.updatePolicy',
  ],
  // verify(): readState (firewalls.get).
  verifyPermissions: ['compute.firewalls.get'],
  risk: 'medium',
  productionSafe: false,
  outline: [
    {
      say: 'disable the ingress rule open to 0.0.0.0/0 (or narrow its source ranges when policy says so)',
      api: 'compute.firewalls.patch',
      permission: 'compute.firewalls.update',
    },
  ],
  target: TargetSchema,
  beforeSchema: BeforeSchema,
  selectTarget(f) {
    if (f.resource.provider !== 'gcp') return undefined;
    const m = /^\/\/compute\.googleapis\.com\/projects\/([^/]+)\/global\/firewalls\/([^/]+)$/.exec(f.resource.id);
    const d = f.resource.details;
    const parsed = TargetSchema.safeParse({
      project: typeof d.project === 'string' ? d.project : (m?.[1] ?? f.resource.account),
      firewall: typeof d.firewall === 'string' ? d.firewall : f.resource.name || m?.[2],
    });
    return parsed.success ? parsed.data : undefined;
  },
  plan,
  apply: (p, ctx) =>
    applyPlanned(p, ctx, plan, async (s) => {
      if (s.call.api !== 'compute.firewalls.patch')
        throw new AdapterError('invalid', `${ID} has no step ${s.call.api}`);
      return patch(PatchInput.parse(s.call.input), ctx);
    }),
  async verify(target, ctx) {
    const observed = await readState(target, ctx);
    const holds = !isOpen(observed);
    return {
      holds,
      observed,
      reason: holds ? `firewall rule ${observed.name} is closed` : `${observed.name} still admits the internet`,
    };
  },
  async rollback({ target, before }, ctx) {
    // The rule patched is the target's: a before-state naming another rule (a forged or misfiled
    // record) would re-open that rule instead, so it is refused.
    if (before.name !== target.firewall) {
      throw new AdapterError(
        'invalid',
        `${ID} rollback: the before-state is of rule ${before.name}, not ${target.firewall}: nothing restored`,
      );
    }
    // The live rule, so a rule re-created under the name since the fix (another rule: its id differs) is
    // not opened to the internet in the fixed rule's place.
    const live = await readState(target, ctx);
    if (before.id !== undefined && live.id !== before.id) {
      throw new AdapterError(
        'conflict',
        `${ID} rollback: rule ${target.firewall} was re-created since the fix (id ${live.id ?? 'unknown'}, fixed ${before.id}): nothing restored`,
      );
    }
    // Only what the fix changed is put back, and only while it is as the fix left it. A rule disabled by the
    // fix (it was enabled) is enabled again with the source ranges it has now: ranges narrowed by its owner
    // since the fix are not widened back to the internet. Ranges narrowed by the fix (mode narrow) get the old
    // ones back while they are still the ones the fix set: ranges changed since (narrowed further by their
    // owner) are left and named, and a rule its owner disabled since stays disabled. Writing the before-state
    // over the rule undid those changes, re-opening a rule its owner had closed another way.
    const fix = before.fix ?? fixOf(SettingsSchema.parse(ctx.settings?.[ID] ?? {}));
    let firewallResource: { disabled: boolean } | { sourceRanges: string[] } | undefined;
    let note: string | undefined;
    if ('disabled' in fix) {
      if (live.disabled && !before.disabled) firewallResource = { disabled: false };
    } else if (sameRanges(live.sourceRanges, fix.sourceRanges)) {
      if (!sameRanges(live.sourceRanges, before.sourceRanges)) firewallResource = { sourceRanges: before.sourceRanges };
    } else if (!sameRanges(live.sourceRanges, before.sourceRanges)) {
      note = `rule ${target.firewall} source ranges (now ${live.sourceRanges.join(', ') || 'none'}) changed since the fix: left as they are, old ranges not restored`;
      ctx.log.warn(`${ID} rollback: ${note}`, { project: target.project });
    }
    if (!firewallResource) return { requestIds: [], ...(note ? { note } : {}) };
    const id = await patch({ project: target.project, firewall: target.firewall, firewallResource }, ctx);
    return { requestIds: [id] };
  },
});
