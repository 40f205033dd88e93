/**
 * The action contract: one module per action (file name = action id) declares what it handles,
 * the exact permissions it needs, its risk, and implements plan / apply / verify / rollback.
 * Permissions are data next to the code (Custodian `permissions`); each plan step names its permission.
 */
import type * as z from 'zod';
import type { PlanStep } from '../core/model/case.js';
import type { Finding, Provider } from '../core/model/finding.js';
import type { Clock, Logger } from '../core/ports.js';
import type { CloudClients } from './clients.js';
import type { RetryOptions } from './retry.js';

export type Risk = 'low' | 'medium' | 'high';

export interface ActionDeclaration {
  /** == file name == playbook id, e.g. `s3.block-public-access` */
  id: string;
  title: string;
  provider: Provider;
  /** Finding types, controls or categories this action handles (documentation and contract tests). */
  handles: { findingTypes?: string[]; controls?: string[]; categories?: string[] };
  /** Exact IAM actions / Azure RBAC operations / GCP permissions; nothing more is granted in deployment. */
  permissions: string[];
  /**
   * The read-only permissions `verify()` needs: exactly the calls it makes (the reads of `plan()` it
   * reuses included), never a write. The verify function's role is generated from these alone
   * (infra/aws/verify-permissions.json), so a function that only re-reads holds no write permission;
   * test/contract/verify-permissions.test.ts records verify()'s calls and compares.
   */
  verifyPermissions: string[];
  risk: Risk;
  /** May it run in production without a person approving it (when policy allows)? */
  productionSafe: boolean;
  /**
   * What a plan may do, step by step, before any live state is read: the offline dry-run shows it (the
   * live plan lists only the steps the resource needs). Each permission is one of `permissions`.
   */
  outline?: ReadonlyArray<{ say: string; api: string; permission: string }>;
}

export interface ActionContext {
  clients: CloudClients;
  clock: Clock;
  log: Logger;
  /**
   * Per-action settings from policy.yaml `apply.actions.<action id>`; each action parses its own entry
   * with its own schema (e.g. the website tag of `s3.block-public-access`, the narrow mode of
   * `gcp.firewall.disable-rule`). Absent: every action uses its defaults.
   */
  settings?: Readonly<Record<string, unknown>>;
  /** Backoff of cloud calls (attempts, base, cap); defaults suit production, tests shorten the waits. */
  retry?: RetryOptions;
  /**
   * The AWS account the AWS clients' credentials are in (the hub: its deployment's; locally: STS). AWS
   * actions run only for resources of this account or of one {@link inAwsAccount} reaches; absent or
   * failing, no AWS action runs (see shared/actions/scope.ts).
   */
  awsAccount?: () => Promise<string | undefined>;
  /** The same context acting in another AWS account (its member role assumed); undefined: none there. */
  inAwsAccount?: (account: string) => ActionContext | undefined;
  /**
   * Names one remediation of one case across its attempts: an apply that stopped part-way and the retries
   * that finish it share it, a new apply (after a rollback) gets another. A create call with no idempotency
   * token of its own (EC2 CreateSnapshot) tags what it makes with it and looks for that tag before making
   * another. Absent (an apply outside the remediation stage): the action names its own apply.
   */
  applyKey?: string;
}

export interface Plan<T, B> {
  target: T;
  /** The live state read before acting (kept for rollback and evidence). */
  before: B;
  steps: PlanStep[];
  /** One readable sentence: what will change, or why nothing needs to. */
  summary: string;
  /** Already compliant: nothing to apply. */
  noop: boolean;
  /** Set when this particular resource needs a person even where policy would allow auto (e.g. a website bucket). */
  needsApproval?: string;
}

export interface ApplyResult<B> {
  before: B;
  /** One per API call made, in order (cloud request ids, for evidence). */
  requestIds: string[];
  /** State read back after the change, when cheap. */
  after?: unknown;
}

export interface VerifyResult {
  holds: boolean;
  /** The state observed, stored as evidence. */
  observed: unknown;
  reason: string;
}

export interface Action<T = unknown, B = unknown> extends ActionDeclaration {
  target: z.ZodType<T>;
  /** Shape of the before-state, so a stored record (case `remediation.before`) is validated before a rollback. */
  beforeSchema: z.ZodType<B>;
  /** Picks the target from the normalized finding; undefined when the finding lacks what the action needs. */
  selectTarget(finding: Finding): T | undefined;
  plan(target: T, ctx: ActionContext): Promise<Plan<T, B>>;
  /** Makes exactly the planned change, idempotently; re-reads the live resource first (fail closed). */
  apply(plan: Plan<T, B>, ctx: ActionContext): Promise<ApplyResult<B>>;
  verify(target: T, ctx: ActionContext): Promise<VerifyResult>;
  /**
   * Puts back what the fix changed, re-reading the live resource first, and only where the live value is still
   * what the fix set: a field changed since (a flag turned off, an interface moved to a forensics group) is left
   * as it is, not written over. `note`: what it left as it was and why (changed or deleted since the fix),
   * recorded with the rollback.
   */
  rollback(record: { target: T; before: B }, ctx: ActionContext): Promise<{ requestIds: string[]; note?: string }>;
}

/** Identity function that checks the shape at compile time and keeps the literal types. */
export function defineAction<T, B>(action: Action<T, B>): Action<T, B> {
  return action;
}
