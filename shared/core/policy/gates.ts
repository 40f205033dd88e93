/**
 * Gates: each one looks at one reason not to let a machine fix something, and records its outcome and
 * reason on the decision (the ticket and the evidence show them). The mode is the most restrictive one
 * any gate asks for: auto < approval < manual < none.
 *
 * - `none` gates (nothing to apply): sample, status (resolved/muted), playbook (no action), exception.
 *   The first of these stops evaluation: there is nothing left to gate.
 * - otherwise every gate is evaluated and recorded: skip tag, allowlist (never touch), account denylist,
 *   owner (unowned or incomplete enrichment → manual, fail closed), environment policy.
 * The remediation stage adds its own (budget, circuit breaker) at apply time.
 */
import { type CompiledGlob, compileGlob } from '../enrich/glob.js';
import type { GateResult, RemediationMode } from '../model/decision.js';
import type { Enrichment } from '../model/enrichment.js';
import type { Provider } from '../model/finding.js';
import { IdentityTrie, SharedTable } from '../util/intern.js';
import { namesAccount, type RiskException } from './exceptions.js';
import type { DecidePolicy, ModeByEnvironment } from './policy.js';

export interface GateInput {
  action: string | null;
  /** Why the playbook chose `action` (or none). */
  playbookReason: string;
  /** The playbook line's default modes per environment. */
  playbookMode: ModeByEnvironment | undefined;
  sample: boolean;
  status: 'active' | 'resolved';
  muted: boolean;
  /** The active exception covering the finding, if any. */
  exception: RiskException | undefined;
  /**
   * Resource tags, or undefined when they are not known (re-evaluating a case without its finding):
   * the skip-tag gate then keeps its previous outcome, or fails closed when it has none.
   */
  tags: Record<string, string> | undefined;
  previousGates: readonly GateResult[] | undefined;
  provider: Provider;
  resourceId: string;
  account: string;
  accountNumber: string | undefined;
  enrichment: Enrichment;
  policy: DecidePolicy;
  actionInfo: ((id: string) => { productionSafe: boolean } | undefined) | undefined;
}

export interface GateVerdict {
  mode: RemediationMode;
  reason: string;
  gates: GateResult[];
}

const RANK: Record<RemediationMode, number> = { auto: 0, approval: 1, manual: 2, none: 3 };

interface CompiledPolicy {
  allowlist: CompiledGlob[];
  denylist: Set<string>;
  skipTagPass: GateResult;
  skipTagBlock: GateResult;
  /** Environment gate per playbook line's modes (or none), action and environment. */
  environment: IdentityTrie<unknown, EnvironmentGate>;
}
const compiledPolicies = new WeakMap<DecidePolicy, CompiledPolicy>();
function compilePolicy(p: DecidePolicy): CompiledPolicy {
  let c = compiledPolicies.get(p);
  if (!c) {
    c = {
      allowlist: p.allowlist.resources.map(compileGlob),
      denylist: new Set(p.denylist.accounts.map((a) => a.toLowerCase())),
      skipTagPass: Object.freeze({ gate: 'skip-tag', outcome: 'pass', reason: `no \`${p.skipTag}\` tag` }),
      skipTagBlock: Object.freeze({
        gate: 'skip-tag',
        outcome: 'block',
        reason: `resource carries the skip tag \`${p.skipTag}\`: a person fixes it`,
      }),
      environment: new IdentityTrie(),
    };
    compiledPolicies.set(p, c);
  }
  return c;
}

// Gate results, and lists of them, are shared between the cases that have the same ones (most cases of a
// team and environment; see util/intern.ts): each case held five objects and four sentences of its own.
// A result is made once per what its sentence names (policy, owner, triage owner, allowlist entry, account,
// playbook reason); only an incomplete enrichment's, which quotes its warning, is made fresh, and a list
// holding one is not kept (its trie nodes would be used once: a fresh result per unowned finding made
// the list trie grow by a node per finding until it started over).
const stopGates = new SharedTable<string, GateResult>();
const ownerPass = new SharedTable<string, GateResult>();
const ownerBlock = new SharedTable<string, GateResult>();
const allowlistBlock = new SharedTable<string, GateResult>();
const denylistBlock = new SharedTable<string, GateResult>();
const gateLists = new IdentityTrie<GateResult, GateResult[]>();
const ALLOWLIST_PASS: GateResult = Object.freeze({
  gate: 'allowlist',
  outcome: 'pass',
  reason: 'resource is not on the never-touch allowlist',
});
const SKIP_TAGS_UNKNOWN: GateResult = Object.freeze({
  gate: 'skip-tag',
  outcome: 'unknown',
  reason: 'resource tags not known without a finding: fail closed',
});

/** Collects gate results; the first gate asking for the most restrictive mode names the decision. */
class Verdict {
  readonly gates: GateResult[] = [];
  mode: RemediationMode = 'auto';
  reason = '';
  /** Every result added is a shared one (the list can be shared too). */
  shared = true;
  add(g: GateResult, asks: RemediationMode): void {
    this.gates.push(g);
    if (this.shared && !Object.isFrozen(g)) this.shared = false;
    if (RANK[asks] > RANK[this.mode]) {
      this.mode = asks;
      this.reason = g.reason;
    }
  }
  /** A gate that leaves nothing to apply: evaluation stops here (`reason` is a fixed sentence or the playbook's). */
  stop(gate: string, reason: string): GateVerdict {
    const g = stopGates.get(reason) ?? stopGates.set(reason, { gate, outcome: 'block', reason });
    if (g.gate === gate) this.gates.push(g);
    else {
      this.gates.push({ gate, outcome: 'block', reason });
      this.shared = false;
    }
    return { mode: 'none', reason, gates: this.list() };
  }
  /** The gates as a shared list when every one of them is shared, else as they are. */
  list(): GateResult[] {
    if (!this.shared) return this.gates;
    return gateLists.get(this.gates) ?? gateLists.set(this.gates, this.gates);
  }
}

/** A tag key as a GCP label key (lower-case letters, digits, `_` and `-` only): `closeloop:skip` → `closeloop-skip`. */
export const gcpLabelKey = (key: string): string => key.toLowerCase().replace(/[^a-z0-9_-]/g, '-');

/**
 * The skip tag's value when `tags` carry it (any value but `false` counts), else undefined. Its label form
 * counts too (GCP labels cannot hold the usual `closeloop:skip`; written so on another cloud, it says the
 * same), and either in any casing and with white space around it (`Closeloop:Skip`, `closeloop:skip `: AWS
 * and Azure keep a key as typed). Any such key that does not say `false` stops the fix: a person who tagged
 * a resource so meant it (read as absent, the fix went through).
 */
const skipTagNames = new Map<string, string[]>();
export const skipTagValue = (tags: Record<string, string>, key: string): string | undefined => {
  // The key's two spellings, made once per configured key (this runs for every finding decided).
  let names = skipTagNames.get(key);
  if (!names) {
    names = [key.toLowerCase(), gcpLabelKey(key)];
    skipTagNames.set(key, names);
  }
  const spellings = names;
  return Object.entries(tags).find(
    ([k, v]) => spellings.includes(k.trim().toLowerCase()) && !/^\s*false\s*$/i.test(v),
  )?.[1];
};

/**
 * Evaluates the gates for one finding/case and returns the mode with the deciding reason.
 *
 * @example evaluateGates({ ...input, enrichment, policy: config.policy.decide }).mode // 'approval'
 */
export function evaluateGates(input: GateInput): GateVerdict {
  const acc = new Verdict();
  if (input.sample) return acc.stop('sample', 'sample finding: its resources do not exist, nothing is applied');
  if (input.muted) return acc.stop('status', 'muted at the source: a risk accepted there, nothing is applied');
  if (input.status === 'resolved')
    return acc.stop('status', 'resolved at the source: verification only, nothing is applied');
  if (input.action === null) return acc.stop('playbook', input.playbookReason);
  if (input.exception) {
    const e = input.exception;
    return acc.stop(
      'exception',
      `exception ${e.id} (owner ${e.owner}, until ${e.expires}) accepts the risk: ${e.justification}`,
    );
  }

  const action = input.action;
  const { policy, enrichment } = input;
  const compiled = compilePolicy(policy);
  // skip tag
  if (input.tags === undefined) {
    const before = input.previousGates?.find((g) => g.gate === 'skip-tag');
    if (before) acc.add(before, before.outcome === 'pass' ? 'auto' : 'manual');
    else acc.add(SKIP_TAGS_UNKNOWN, 'manual');
  } else if (skipTagValue(input.tags, policy.skipTag) !== undefined) acc.add(compiled.skipTagBlock, 'manual');
  else acc.add(compiled.skipTagPass, 'auto');

  // allowlist: resources closeloop must never touch. Matched without regard to case on every cloud, as
  // apply.resources.deny is: Azure ids are case-insensitive, IAM names are unique without regard to case
  // (`role/BreakGlass` and `role/breakglass` are one role), and a never-touch entry that matches more only
  // leaves more to a person.
  let allowed: CompiledGlob | undefined;
  for (const g of compiled.allowlist) if (g.test(input.resourceId, true)) allowed ??= g;
  if (allowed)
    acc.add(
      allowlistBlock.get(allowed.source) ??
        allowlistBlock.set(allowed.source, {
          gate: 'allowlist',
          outcome: 'block',
          reason: `resource matches allowlist entry \`${allowed.source}\`: never touched`,
        }),
      'manual',
    );
  else if (compiled.allowlist.length > 0) acc.add(ALLOWLIST_PASS, 'auto');

  // account denylist
  if (namesAccount(compiled.denylist, input.account, input.accountNumber))
    acc.add(
      denylistBlock.get(input.account) ??
        denylistBlock.set(input.account, {
          gate: 'denylist',
          outcome: 'block',
          reason: `account ${input.account} is on the denylist: no automatic changes`,
        }),
      'manual',
    );

  // owner: who would we tell? Without an owner (or when enrichment could not finish) a person decides.
  if (policy.requireOwner && !enrichment.complete)
    acc.add(
      {
        gate: 'owner',
        outcome: 'unknown',
        reason: `enrichment incomplete (${enrichment.warnings[0] ?? 'lookup failed'}): fail closed`,
      },
      'manual',
    );
  else if (policy.requireOwner && enrichment.unowned)
    acc.add(
      ownerBlock.get(enrichment.owner) ??
        ownerBlock.set(enrichment.owner, {
          gate: 'owner',
          outcome: 'block',
          reason: `no owner known (triage owner ${enrichment.owner} stands in)`,
        }),
      'manual',
    );
  else
    acc.add(
      ownerPass.get(enrichment.owner) ??
        ownerPass.set(enrichment.owner, { gate: 'owner', outcome: 'pass', reason: `owner ${enrichment.owner}` }),
      'auto',
    );

  // environment policy: one shared result per policy, playbook line, action and environment
  const env = enrichment.environment;
  const parts = [input.playbookMode, action, env];
  let envGate = compiled.environment.get(parts);
  if (!envGate) {
    envGate = environmentGate(action, env, input);
    // In prod with productionSafeAuto the answer also depends on the caller's action registry: not kept.
    if (!(env === 'prod' && policy.productionSafeAuto)) compiled.environment.set(parts, envGate);
  }
  acc.add(envGate.gate, envGate.mode);

  // Every gate passed: the environment policy is what allowed `auto`.
  return { mode: acc.mode, reason: acc.reason === '' ? envGate.gate.reason : acc.reason, gates: acc.list() };
}

/** The environment gate: the action's mode in this environment, by policy override, playbook line or default. */
interface EnvironmentGate {
  gate: GateResult;
  mode: RemediationMode;
}

function environmentGate(action: string, env: Enrichment['environment'], input: GateInput): EnvironmentGate {
  const { policy } = input;
  const override = policy.actionModes[action]?.[env];
  let envMode: RemediationMode;
  let envReason: string;
  if (override !== undefined) {
    envMode = override;
    envReason = `${env}: ${override} for ${action} (policy decide.actionModes)`;
  } else {
    const fromLine = input.playbookMode?.[env];
    envMode = fromLine ?? policy.environments[env];
    envReason =
      fromLine !== undefined
        ? `${env}: ${envMode} (playbook default for ${action})`
        : `${env}: ${envMode} (policy decide.environments.${env})`;
    if (env === 'prod' && envMode === 'approval' && policy.productionSafeAuto) {
      const info = input.actionInfo?.(action);
      if (info?.productionSafe) {
        envMode = 'auto';
        envReason = `prod: auto, ${action} is declared production-safe and decide.productionSafeAuto allows it`;
      }
    }
  }
  const outcome: GateResult['outcome'] = envMode === 'auto' ? 'pass' : envMode === 'approval' ? 'approval' : 'block';
  return { gate: Object.freeze({ gate: 'environment', outcome, reason: envReason }), mode: envMode };
}
