/**
 * Remote execution of an action: the AWS hub decides and gates, but an Azure or GCP action runs in its
 * spoke, under the spoke's own identity (managed identity, service account). The hub hands the work over
 * as a {@link RemoteRequest} (through its {@link RemoteExecutor}); the spoke runs it with
 * {@link executeRemote} and sends a {@link RemoteResult} back, which the hub records on the case
 * (`recordRemoteResult` in stage.ts) only while the case still holds the claim the request was made under.
 */
import * as z from 'zod';
import type { Action, ActionContext } from '../../actions/define.js';
import { classifyCloudError } from '../../actions/retry.js';
import { compileEnvironmentTag } from '../enrich/environment.js';
import { ApplyIncompleteError, errorMessage, isGone, isRetryable } from '../errors.js';
import { PlanStepSchema } from '../model/case.js';
import { type Environment, EnvironmentSchema } from '../model/enrichment.js';
import { ProviderSchema, TimestampSchema } from '../model/finding.js';
import { EnvironmentWordsSchema, TagAliasesSchema } from '../policy/policy.js';
import type { Clock, OwnerLookup } from '../ports.js';
import type { UpstreamResult } from '../verify/ports.js';
import {
  approvalLapsed,
  approverEnvironment,
  approverRefusalIn,
  environmentGate,
  judgedForApprovers,
  judgeEnvironment,
  liveEnvironment,
  readSkipTag,
} from './gates.js';
import { ApproversSchema } from './policy.js';

export const RemoteOpSchema = z.enum(['apply', 'verify', 'rollback', 'resolve']);
export type RemoteOp = z.infer<typeof RemoteOpSchema>;

/** A Defender alert's place, from its ARM id or portal link (finding-formats §11): what `resolve` needs. */
export const AlertRefSchema = z.object({
  subscriptionId: z.string().min(1).max(64),
  resourceGroup: z.string().min(1).max(90).optional(),
  ascLocation: z.string().min(1).max(64),
  alertName: z.string().min(1).max(512),
});
export type AlertRef = z.infer<typeof AlertRefSchema>;

/** A finding as a spoke marks it resolved at its source: its key, source and source id (and alert place). */
export const UpstreamRefSchema = z.object({
  key: z.string().min(1).max(128),
  source: z.enum(['defender', 'scc']),
  sourceId: z.string().min(1).max(2048),
  alert: AlertRefSchema.optional(),
});
export type UpstreamRef = z.infer<typeof UpstreamRefSchema>;

/** What a spoke needs to judge the environment again at apply time, as the hub would (see environmentGate). */
export const RemoteEnvironmentSchema = z.object({
  /** The environment decide read for the case. */
  decided: EnvironmentSchema.default('unknown'),
  /** Whether decide read it from the registry (a rule, the account's entry). */
  byRegistry: z.boolean().default(false),
  /** The hub's `apply.allowProductionAuto`. */
  allowProductionAuto: z.boolean().default(false),
  /** The hub's environment tag keys (`enrichment.tagAliases.environment`) and environment words. */
  tagKeys: TagAliasesSchema.shape.environment,
  words: EnvironmentWordsSchema.prefault({}),
  /**
   * The hub's `enrichment.placeholderValues`: an environment tag with one of them (`env=TBD`) is no tag, as
   * enrichment reads it. Absent (a hub before it): none, every value is read through the words as before.
   */
  placeholders: z.array(z.string().trim().min(1).max(32)).optional(),
  /**
   * The hub's `apply.approvers`: an approval the request carries counts only from someone who may approve fixes
   * in the environment the spoke judges (a case approved while it was dev, its resource tagged prod since, waits
   * for production's approvers). Absent (a hub before it): any approval counts, as before.
   */
  approvers: ApproversSchema.optional(),
});
export type RemoteEnvironment = z.infer<typeof RemoteEnvironmentSchema>;

/**
 * What the hub asks a spoke to do.
 * @example { "requestId": "rq-3f2a…", "caseKey": "azure|/subscriptions/…/storageaccounts/acme|…", "provider": "azure", "action": "azure.storage.disallow-public-access", "op": "apply", "target": { … }, "applyToken": "9c1e…", "actor": "closeloop@aws-hub-prod" }
 */
export const RemoteRequestSchema = z.object({
  /** Unique per hand-over; a result names it, so the spoke's logs and the hub's evidence line up. */
  requestId: z.string().min(1).max(128),
  caseKey: z.string().min(1).max(2048),
  provider: ProviderSchema,
  action: z.string().min(1).max(128),
  op: RemoteOpSchema,
  /** The action's target as the hub selected it; the spoke parses it with the action's own schema. */
  target: z.unknown(),
  /**
   * apply: the hub's claim; the result is recorded only while the case still holds this token. rollback: the
   * claim of the apply it undoes, so a redriven copy is sent again only while the case is still in that state.
   */
  applyToken: z.string().min(1).max(128).optional(),
  /** rollback: the before-state recorded at apply time. */
  before: z.unknown().optional(),
  /** The action's entry of policy.yaml `apply.actions` on the hub (the spoke has no config of its own). */
  settings: z.record(z.string(), z.unknown()).optional(),
  /** Set when a person approved: a resource-level approval the spoke's plan asks for is then satisfied. */
  approvedBy: z.string().optional(),
  /**
   * apply: the tag that stops a fix (the hub's `apply.skipTag`) and the case's resource: the spoke re-reads
   * the resource's live tags with its own identity just before applying (the hub cannot read them).
   */
  skipTag: z.string().min(1).max(128).optional(),
  resource: z
    .object({ id: z.string().min(1).max(2048), account: z.string().max(256), region: z.string().max(64).nullable() })
    .optional(),
  /**
   * apply: what the spoke needs to judge the environment again on the live tags it reads (see environmentGate).
   * A request without it (from a hub before it) is judged with the defaults: decide's reading unknown, no
   * production apply without a person, the enrichment policy's default tag keys and words.
   */
  environment: RemoteEnvironmentSchema.optional(),
  /** resolve: the verified finding to mark resolved at its source, under the spoke's identity. */
  finding: UpstreamRefSchema.optional(),
  actor: z.string().min(1),
});
export type RemoteRequest = z.infer<typeof RemoteRequestSchema>;

/** A spoke's door to its cloud's security tool: marks one verified finding resolved there. */
export interface UpstreamResolver {
  resolve(
    finding: UpstreamRef,
    note: string,
  ): Promise<UpstreamResult & { outcome: Exclude<UpstreamResult['outcome'], 'requested'> }>;
}

export const RemoteOutcomeSchema = z.enum([
  'applied',
  'noop',
  'planned', // the spoke is deployed in dry-run: planned only
  'awaiting-approval', // the live plan asks for a person (e.g. a resource-level approval)
  'blocked', // the target is unusable or the live state could not be read (with `retry`: for the moment)
  'failed',
  'verified',
  'not-verified',
  'rolled-back',
  'resolved', // resolve: the source accepted the change
  'not-resolved', // resolve: not changed (no alert place, a dry-run spoke, no resolver) or refused
]);
export type RemoteOutcome = z.infer<typeof RemoteOutcomeSchema>;

/**
 * What the spoke reports back to the hub.
 * @example { "requestId": "rq-3f2a…", "caseKey": "…", "provider": "azure", "action": "azure.storage.disallow-public-access", "op": "apply", "applyToken": "9c1e…", "outcome": "applied", "reason": "applied …", "requestIds": ["…"], "actor": "closeloop@azure-spoke", "at": "2026-01-01T00:00:00.000Z" }
 */
export const RemoteResultSchema = z.object({
  requestId: z.string().min(1).max(128),
  caseKey: z.string().min(1).max(2048),
  provider: ProviderSchema,
  action: z.string().min(1).max(128),
  op: RemoteOpSchema,
  applyToken: z.string().min(1).max(128).optional(),
  outcome: RemoteOutcomeSchema,
  reason: z.string(),
  target: z.unknown().optional(),
  plan: z.object({ steps: z.array(PlanStepSchema), summary: z.string(), noop: z.boolean() }).optional(),
  before: z.unknown().optional(),
  observed: z.unknown().optional(),
  requestIds: z.array(z.string()).default([]),
  /** resolve: the finding it was asked about. */
  findingKey: z.string().min(1).max(128).optional(),
  /** resolve: what the source answered, as the verifier records it. */
  upstream: z
    .object({
      outcome: z.enum(['updated', 'not-updated', 'not-applicable', 'failed']),
      api: z.string().nullable(),
      requestId: z.string().nullable(),
      detail: z.string(),
    })
    .optional(),
  /** A failed apply's step that got no definite answer: it may have taken effect. */
  unconfirmed: z.string().optional(),
  /**
   * apply: the environment the spoke judged on the live tags it read (`prod` where they leave it unknown and it
   * may be production; see environmentGate), which the hub records on the case (`judgedEnvironment`) so its
   * approvers are checked against it. Absent when the spoke read no tags (or from a spoke before it).
   */
  judgedEnvironment: EnvironmentSchema.optional(),
  /**
   * blocked because a live read (the plan, the skip-tag re-read) failed for the moment (throttled, 5xx, reset,
   * timeout), not for good: the hub holds the case and sends the request again later (after `afterSeconds`
   * at least, the service's Retry-After). Nothing was applied. A hub that does not know it records blocked.
   */
  retry: z
    .object({ kind: z.enum(['throttled', 'transient']), afterSeconds: z.number().nonnegative().optional() })
    .optional(),
  error: z.string().optional(),
  /** Who acted: the spoke's identity (`closeloop@azure-spoke`). */
  actor: z.string().min(1),
  at: TimestampSchema,
});
export type RemoteResult = z.infer<typeof RemoteResultSchema>;

/**
 * Where actions of some providers run instead of in this process (the AWS hub: Azure and GCP actions).
 * `dispatch` resolves when the request is accepted for delivery, not when it ran.
 */
export interface RemoteExecutor {
  runs(provider: string): boolean;
  dispatch(request: RemoteRequest): Promise<void>;
}

export interface ExecuteRemoteDeps {
  actions: { get(id: string): Action | undefined };
  ctx: ActionContext;
  clock: Clock;
  /** false: the spoke plans but never changes anything, rollback included (its own deployment switch, beside the hub's). */
  apply: boolean;
  /** The spoke's identity for the record (`closeloop@azure-spoke`). */
  actor: string;
  /** Live tags of the spoke's cloud, for the skip-tag re-check before an apply; omitted: the hub's gate stands. */
  tags?: OwnerLookup;
  /** Marks verified findings resolved at the spoke's security tool (`resolve`); omitted: not updated. */
  upstream?: UpstreamResolver;
}

/**
 * Runs one request under the spoke's identity: apply = plan (live re-read) → apply; verify; rollback.
 * Never throws for the action's own failures: they are outcomes the hub records. Throws only when the
 * request names an action of another provider (a misrouted request must not run anywhere).
 *
 * @example const result = await executeRemote(request, { actions: actionRegistry, ctx, clock, apply: true, actor: 'closeloop@gcp-spoke' });
 */
export async function executeRemote(request: RemoteRequest, deps: ExecuteRemoteDeps): Promise<RemoteResult> {
  const base = {
    requestId: request.requestId,
    caseKey: request.caseKey,
    provider: request.provider,
    action: request.action,
    op: request.op,
    ...(request.applyToken ? { applyToken: request.applyToken } : {}),
    actor: deps.actor,
  };
  const done = (outcome: RemoteOutcome, reason: string, extra: Partial<RemoteResult> = {}): RemoteResult => ({
    ...base,
    requestIds: [],
    ...extra,
    outcome,
    reason,
    at: deps.clock.now().toISOString(),
  });
  if (request.op === 'resolve') return resolveUpstream(request, deps, done);
  const action = deps.actions.get(request.action);
  if (!action) return done('blocked', `action ${request.action} is not registered in this spoke`);
  if (action.provider !== request.provider) {
    throw new Error(
      `request ${request.requestId}: ${action.id} is a ${action.provider} action, not ${request.provider}`,
    );
  }
  const target = action.target.safeParse(request.target);
  if (!target.success) return done('blocked', `target does not fit ${action.id}: ${z.prettifyError(target.error)}`);
  const t = target.data;
  // The hub's per-action settings travel with the request; nothing else of the hub's config is needed here.
  const ctx: ActionContext = request.settings ? { ...deps.ctx, settings: { [action.id]: request.settings } } : deps.ctx;

  if (request.op === 'verify') {
    try {
      const v = await action.verify(t, ctx);
      return done(v.holds ? 'verified' : 'not-verified', v.reason, { target: t, observed: v.observed });
    } catch (e) {
      return done('failed', `verify of ${action.id} failed: ${errorMessage(e)}`, { target: t, error: errorMessage(e) });
    }
  }

  if (request.op === 'rollback') {
    // A rollback is a write like any other: a spoke deployed not to apply changes nothing, whatever the hub asks.
    if (!deps.apply)
      return done('blocked', `dry-run spoke: rollback of ${action.id} refused, nothing changed`, { target: t });
    const before = action.beforeSchema.safeParse(request.before);
    if (!before.success) return done('blocked', `no usable before-state to restore for ${action.id}`, { target: t });
    try {
      const r = await action.rollback({ target: t, before: before.data }, ctx);
      const reason = `rolled back ${action.id}${r.note ? `: ${r.note}` : ''}`;
      return done('rolled-back', reason, { target: t, requestIds: r.requestIds });
    } catch (e) {
      const error = errorMessage(e);
      return done('failed', `rollback of ${action.id} failed: ${error}`, { target: t, error });
    }
  }

  let plan: Awaited<ReturnType<typeof action.plan>>;
  try {
    plan = await action.plan(t, ctx);
  } catch (e) {
    const reason = `${isGone(e) ? 'resource gone' : 'live state could not be read'}: ${errorMessage(e)}`;
    return done('blocked', reason, { target: t, error: errorMessage(e), ...retryOf(e, `${action.id}:plan`) });
  }
  const planned = {
    target: t,
    plan: { steps: plan.steps, summary: plan.summary, noop: plan.noop },
    before: plan.before,
  };
  if (plan.noop) return done('noop', plan.summary, planned);
  if (plan.needsApproval && !request.approvedBy) return done('awaiting-approval', plan.needsApproval, planned);
  if (!deps.apply) return done('planned', `dry-run spoke: plan recorded, nothing applied (${plan.summary})`, planned);
  const stop = await liveTagsNow(request, deps.tags, action);
  if (stop?.outcome === 'blocked') return done('blocked', stop.reason, { ...planned, ...stop.retry });
  const judged = stop?.judgedEnvironment !== undefined ? { judgedEnvironment: stop.judgedEnvironment } : {};
  if (stop?.outcome === 'awaiting-approval') return done('awaiting-approval', stop.reason, { ...planned, ...judged });
  try {
    const r = await action.apply(plan, ctx);
    return done('applied', `applied ${action.id}: ${plan.summary}`, {
      ...planned,
      ...judged,
      before: r.before,
      requestIds: r.requestIds,
      ...(r.after !== undefined ? { observed: r.after } : {}),
    });
  } catch (e) {
    const error = errorMessage(e);
    // The steps made before the failure, and a step that may have taken effect, go back to the hub: the
    // case records them, and its retry keeps this apply's before-state for rollback.
    const partial =
      e instanceof ApplyIncompleteError
        ? { requestIds: [...e.requestIds], ...(e.unconfirmed ? { unconfirmed: e.unconfirmed } : {}) }
        : {};
    return done('failed', `apply of ${action.id} failed: ${error}`, { ...planned, ...partial, error });
  }
}

/**
 * `resolve`: marks a finding the hub verified as resolved at this spoke's security tool. A dry-run spoke
 * changes nothing there either; a refusal is an outcome the hub records, never a throw.
 */
async function resolveUpstream(
  request: RemoteRequest,
  deps: ExecuteRemoteDeps,
  done: (outcome: RemoteOutcome, reason: string, extra?: Partial<RemoteResult>) => RemoteResult,
): Promise<RemoteResult> {
  const finding = request.finding;
  if (!finding) return done('not-resolved', 'no finding named to mark resolved');
  const none = (detail: string) =>
    done('not-resolved', detail, {
      findingKey: finding.key,
      upstream: { outcome: 'not-updated', api: null, requestId: null, detail },
    });
  if (!deps.upstream) return none(`this spoke marks no ${finding.source} finding resolved (no resolver configured)`);
  if (!deps.apply) return none(`dry-run spoke: ${finding.source} finding left as it is`);
  try {
    const r = await deps.upstream.resolve(finding, `Verified fixed by closeloop (${request.actor}).`);
    const upstream = { outcome: r.outcome, api: r.api, requestId: r.requestId, detail: r.detail };
    return done(r.outcome === 'updated' ? 'resolved' : 'not-resolved', r.detail, {
      findingKey: finding.key,
      upstream,
      ...(r.requestId ? { requestIds: [r.requestId] } : {}),
    });
  } catch (e) {
    const detail = errorMessage(e);
    return done('not-resolved', `marking ${finding.source} resolved failed: ${detail}`, {
      findingKey: finding.key,
      upstream: { outcome: 'failed', api: null, requestId: null, detail },
      error: detail,
    });
  }
}

/**
 * Why the apply must stop on the resource's live tags, read once: blocked when the skip tag is on it now, or the
 * tags cannot be read (fail closed, with `retry` when that read failed for the moment); awaiting approval when
 * the environment on them asks for a person ({@link environmentGate}: a resource decided `dev` and tagged
 * `env`=prod since) and the request's approval is not one that counts there (none, or from someone the hub's
 * `apply.approvers` does not list for it); `proceed` when the apply may go on. With the environment judged, for
 * the hub's approvers, when the tags were read. Nothing to check without a skip tag or a resource in the request.
 */
async function liveTagsNow(
  request: RemoteRequest,
  tags: OwnerLookup | undefined,
  action: Pick<Action, 'productionSafe'>,
): Promise<
  | { outcome: 'blocked'; reason: string; retry?: Pick<RemoteResult, 'retry'> }
  | { outcome: 'awaiting-approval' | 'proceed'; reason: string; judgedEnvironment?: Environment }
  | undefined
> {
  const { skipTag, resource } = request;
  if (!skipTag || !resource) return undefined;
  const read = await readSkipTag(tags, { provider: request.provider, ...resource }, skipTag);
  const gate = read?.gate;
  if (gate?.outcome === 'block') return { outcome: 'blocked', reason: `${gate.reason}: nothing applied` };
  if (gate?.outcome === 'unknown') {
    const retry = retryOf(read?.cause, 'tags:read');
    return { outcome: 'blocked', reason: `${gate.reason}: nothing applied (fail closed)`, retry };
  }
  // The hub's decided environment and rules travel with the request; one without them is judged by the defaults.
  const env = request.environment ?? RemoteEnvironmentSchema.parse({});
  const live = liveEnvironment(read?.tags, compileEnvironmentTag(env.tagKeys, env.words, env.placeholders));
  const input = { decided: env.decided, byRegistry: env.byRegistry, live };
  const judgedEnvironment = live === 'unread' ? undefined : judgedForApprovers(judgeEnvironment(input));
  // The approval the hub sent counts only from someone its approvers let approve fixes in the environment judged
  // here: the hub checked it against what it knew when the approval was given (decide's `dev`, say).
  const refused =
    request.approvedBy !== undefined && env.approvers !== undefined
      ? approverRefusalIn(env.approvers, approverEnvironment(env.decided, judgedEnvironment), request.approvedBy)
      : undefined;
  const judged = environmentGate(input, {
    // The spoke's own declaration of the action it runs.
    productionSafe: action.productionSafe,
    allowProductionAuto: env.allowProductionAuto,
    approved: request.approvedBy !== undefined && refused === undefined,
  });
  const recorded = judgedEnvironment !== undefined ? { judgedEnvironment } : {};
  // An approval that does not count here is not carried out, whatever asked for it (the hub's mode, the plan):
  // the spoke cannot tell, and fails closed; the case waits for one of those who may.
  if (refused) {
    const why =
      judged.outcome === 'approval' ? `${judged.reason} (${approvalLapsed(refused)})` : approvalLapsed(refused);
    return { outcome: 'awaiting-approval', reason: why, ...recorded };
  }
  return {
    outcome: judged.outcome === 'approval' ? 'awaiting-approval' : 'proceed',
    reason: judged.reason,
    ...recorded,
  };
}

/**
 * `retry` for a result blocked by a live read that failed for the moment (throttled, 5xx, reset, timeout), so
 * the hub reads again later instead of blocking the case for good; nothing for a refusal (denied, gone, invalid).
 */
function retryOf(e: unknown, what: string): Pick<RemoteResult, 'retry'> {
  const classified = classifyCloudError(e, what);
  if (!isRetryable(classified)) return {};
  const kind = classified.kind === 'throttled' ? 'throttled' : 'transient';
  const after = classified.retryAfterSeconds;
  return { retry: { kind, ...(after !== undefined ? { afterSeconds: after } : {}) } };
}
