/**
 * Jira webhook (issue updates) → closeloop events. Authenticated with the shared secret Jira admin
 * webhooks sign with: `X-Hub-Signature: sha256=<hex HMAC-SHA256 of the raw body>` (WebSub style),
 * compared in constant time. Unsigned or wrongly signed calls get 401 and change nothing.
 *
 * A person moving a ticket to done asks for verification (`case.verify-requested`, trigger
 * `ticket-closed`): a closed ticket is a claim, not proof. A person reopening it reopens the case.
 * The issue is mapped back to its case through the ticket index (written when the ticket was
 * created), never through the issue's text.
 *
 * A person approving a planned remediation in Jira — adding the approval label (`tickets.approvalLabel`)
 * or moving the issue through the approval transition (`tickets.approvalTransition`) — approves each
 * case awaiting approval through {@link approveCase}, with the Jira user recorded as approver. A claim
 * per case and plan version makes a replayed or concurrently delivered webhook approve once.
 *
 * @see https://developer.atlassian.com/cloud/jira/platform/webhooks/#secure-admin-webhooks
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import * as z from 'zod';
import { errorMessage, UsageError } from '../errors.js';
import { CaseSchema } from '../model/case.js';
import { type PipelineEvent, PipelineEventSchema } from '../model/events.js';
import type { Clock, DocStore, Logger } from '../ports.js';
import { approveCase, approverRefusal, type RemediationDeps } from '../remediation/stage.js';
import { getDoc, mutateDoc } from '../store/docs.js';
import { sha256Hex, shortHash } from '../util/hash.js';
import { ledgerIdOf } from './content.js';
import { updateCaseTicket } from './context.js';
import { setParentStatus } from './grouping.js';
import type { TicketPolicy } from './policy.js';
import { COLLECTIONS, GroupSchema, OnceSchema, onceMarkerExpiry, TicketIndexSchema } from './store.js';

export interface JiraWebhookRequest {
  headers: Record<string, string | undefined>;
  rawBody: string;
}
export interface JiraWebhookResponse {
  status: number;
  body: unknown;
  /** Events to publish (verify-requested, reopened, and what an approval produced). */
  events: PipelineEvent[];
  /**
   * The delivery's replay marker, to record with {@link markDelivered} once `events` are published: the
   * same signed body is then never handled again (a captured delivery replayed later approves nothing,
   * reopens nothing): while the record is kept ({@link DELIVERY_RECORD_TTL_MS}) by the record, after that by
   * the body's own signed time (older than {@link DELIVERY_MAX_AGE_MS}). Recorded after publishing, so Jira's retry of a delivery whose events were lost is
   * still handled.
   */
  delivery?: string;
}

/**
 * A delivery signed (its `timestamp`, ms since the epoch, inside the signed body) longer ago than this is not acted
 * on, whatever it says: an approval is of the plan the person saw, a status change of the issue as it was then.
 * Jira retries a delivery it could not make for about half an hour (up to 5 more attempts, with the retry count in
 * `X-Atlassian-Webhook-Retry`: developer.atlassian.com/cloud/jira/platform/webhooks/#retry-policy), so a genuine
 * delivery is never near a day old. It is also what lets a delivery's record expire (see
 * {@link DELIVERY_RECORD_TTL_MS}): a captured body replayed after its record is gone is older than this.
 */
export const DELIVERY_MAX_AGE_MS = 24 * 3_600_000;

/** How far ahead of this function's clock Jira's may be: a delivery signed further in the future is not acted on. */
export const DELIVERY_CLOCK_SKEW_MS = 5 * 60_000;

/**
 * How long a delivery's record (`ticket-webhook-deliveries`, the replay guard) is kept: longer than the delivery can
 * still be acted on. A delivery handled at t was signed at most DELIVERY_CLOCK_SKEW_MS after t and is acted on until
 * DELIVERY_MAX_AGE_MS after it was signed, so from t + DELIVERY_MAX_AGE_MS + DELIVERY_CLOCK_SKEW_MS on, the age check
 * alone refuses it; the record lives twice DELIVERY_MAX_AGE_MS, well past that. A constant, like the age it follows.
 */
export const DELIVERY_RECORD_TTL_MS = 2 * DELIVERY_MAX_AGE_MS;

/** The expiry of a delivery record written at `now` (see {@link DELIVERY_RECORD_TTL_MS}). */
const deliveryExpiry = (deps: Pick<JiraWebhookDeps, 'clock'>): Date =>
  new Date(deps.clock.now().getTime() + DELIVERY_RECORD_TTL_MS);

/**
 * A delivery's record: `handled` with the events it made (kept until they are published, so Jira's retry
 * after a failed publish sends them again, though the case already changed), then `done`.
 */
const DeliverySchema = z.object({
  at: z.string(),
  state: z.enum(['handled', 'done']),
  events: z.array(PipelineEventSchema).default([]),
});

/** Records a handled delivery's events as published (see {@link JiraWebhookResponse.delivery}). */
export async function markDelivered(deps: Pick<JiraWebhookDeps, 'store' | 'clock'>, delivery: string): Promise<void> {
  await deps.store.put(
    COLLECTIONS.deliveries,
    delivery,
    { at: deps.clock.now().toISOString(), state: 'done' },
    { expiresAt: deliveryExpiry(deps) },
  );
}
export interface JiraWebhookDeps {
  store: DocStore;
  clock: Clock;
  log: Logger;
  policy: TicketPolicy;
  /** `JIRA_WEBHOOK_SECRET`; without one every call is refused. */
  secret: string | undefined;
  /**
   * The remediation stage's dependencies, for approvals from Jira: {@link approveCase} records the
   * approver and applies at once where `apply` and a cloud context allow it (else the case waits,
   * approved, for the next run). Omitted: the approval label/transition is logged and not acted on.
   */
  remediation?: RemediationDeps;
}

/** Lenient: Jira's payloads carry much more (custom fields, apps); we read only these. */
const WebhookSchema = z.looseObject({
  webhookEvent: z.string(),
  timestamp: z.number().optional(),
  user: z.looseObject({ accountId: z.string().optional(), displayName: z.string().optional() }).optional(),
  issue: z
    .looseObject({
      key: z.string(),
      fields: z
        .looseObject({
          status: z
            .looseObject({
              name: z.string().optional(),
              statusCategory: z.looseObject({ key: z.string().optional() }).optional(),
            })
            .optional(),
        })
        .optional(),
    })
    .optional(),
  changelog: z
    .looseObject({
      items: z
        .array(z.looseObject({ field: z.string(), fromString: z.string().nullish(), toString: z.string().nullish() }))
        .optional(),
    })
    .optional(),
  /** Only in workflow post-function webhooks; `jira:issue_updated` names the target status in the changelog instead. */
  transition: z.looseObject({ transitionName: z.string().optional(), to_status: z.string().optional() }).optional(),
});
type Webhook = z.infer<typeof WebhookSchema>;
type Once = z.infer<typeof OnceSchema>;

const ISSUE_KEY = /^[A-Z][A-Z0-9_]+-[0-9]+$/;

function header(headers: Record<string, string | undefined>, name: string): string | undefined {
  const wanted = name.toLowerCase();
  for (const [k, v] of Object.entries(headers)) if (k.toLowerCase() === wanted) return v;
  return undefined;
}

/** Checks `sha256=<hex>` against the HMAC of the raw body, in constant time. */
export function verifyJiraSignature(rawBody: string, signature: string | undefined, secret: string): boolean {
  const m = /^sha256=([0-9a-fA-F]{64})$/.exec(signature?.trim() ?? '');
  if (!m?.[1]) return false;
  const expected = createHmac('sha256', secret).update(rawBody, 'utf8').digest();
  const given = Buffer.from(m[1], 'hex');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/** Signs a body the way Jira does (for tests and for a local relay). */
export const signJiraBody = (rawBody: string, secret: string): string =>
  `sha256=${createHmac('sha256', secret).update(rawBody, 'utf8').digest('hex')}`;

/**
 * Handles one Jira webhook call.
 * @example
 * const res = await handleJiraWebhook({ headers: req.headers, rawBody }, { store, clock, log, policy, secret });
 * await bus.publish(res.events);
 */
export async function handleJiraWebhook(req: JiraWebhookRequest, deps: JiraWebhookDeps): Promise<JiraWebhookResponse> {
  if (!deps.secret || !verifyJiraSignature(req.rawBody, header(req.headers, 'x-hub-signature'), deps.secret)) {
    deps.log.warn('jira webhook refused: missing or wrong signature');
    return { status: 401, body: { error: 'invalid signature' }, events: [] };
  }
  // The signature covers the body: the same body is the same delivery (a retry, or a replay).
  const delivery = `webhook|${sha256Hex(req.rawBody)}`;
  const seen = await getDoc(deps.store, COLLECTIONS.deliveries, delivery, DeliverySchema);
  if (seen?.value.state === 'done') {
    deps.log.warn('jira webhook ignored: this signed delivery was handled before');
    return { status: 200, body: { ignored: 'delivery already handled' }, events: [] };
  }
  if (seen) {
    // Handled, its events never confirmed published: the same events again (their ids make them once).
    return { status: 200, body: { resent: seen.value.events.length }, events: seen.value.events, delivery };
  }
  const res = await handleDelivery(req, deps, delivery);
  if (res.status === 200 && res.events.length > 0) {
    const record = { at: deps.clock.now().toISOString(), state: 'handled', events: res.events };
    await deps.store.put(COLLECTIONS.deliveries, delivery, record, {
      expectVersion: 0,
      expiresAt: deliveryExpiry(deps),
    });
  }
  return res;
}

/** One delivery, signature checked and not seen before. */
async function handleDelivery(
  req: JiraWebhookRequest,
  deps: JiraWebhookDeps,
  delivery: string,
): Promise<JiraWebhookResponse> {
  let json: unknown;
  try {
    json = JSON.parse(req.rawBody);
  } catch {
    deps.log.warn('jira webhook refused: body is not JSON', { field: '$' });
    return { status: 400, body: { error: 'body is not JSON', field: '$' }, events: [] };
  }
  const parsed = WebhookSchema.safeParse(json);
  if (!parsed.success) {
    // The first failing field and zod's message, never a value: the body is the signed payload of a Jira
    // admin, and whoever fixes the webhook (or its relay) needs the field, not the data.
    const issue = parsed.error.issues[0];
    const field = issue?.path.map(String).join('.') || '$';
    const reason = issue?.message ?? 'invalid';
    deps.log.warn('jira webhook refused: not a Jira webhook payload', { field, reason });
    return { status: 400, body: { error: 'not a Jira webhook payload', field, reason }, events: [] };
  }
  const hook = parsed.data;
  // Its record (the replay guard above) expires: a captured delivery replayed after that, of any kind, must still
  // change nothing. So none is acted on once older than its record is kept, nor without its signed time.
  const age = hook.timestamp === undefined ? undefined : deps.clock.now().getTime() - hook.timestamp;
  if (age === undefined || age > DELIVERY_MAX_AGE_MS || age < -DELIVERY_CLOCK_SKEW_MS) {
    deps.log.warn('jira webhook ignored: the delivery is not recent', {
      webhookEvent: hook.webhookEvent,
      ...(hook.timestamp !== undefined ? { signedAt: new Date(hook.timestamp).toISOString() } : {}),
    });
    return { status: 200, body: { ignored: 'delivery not recent' }, events: [] };
  }
  const statusChange = hook.changelog?.items?.find((i) => i.field.toLowerCase() === 'status');
  const issueKey = hook.issue?.key;
  const approval = approvalSignal(hook, deps.policy);
  if (
    hook.webhookEvent !== 'jira:issue_updated' ||
    (!statusChange && !approval) ||
    !issueKey ||
    !ISSUE_KEY.test(issueKey)
  ) {
    return { status: 200, body: { ignored: 'not a status change' }, events: [] };
  }
  const index = await getDoc(deps.store, COLLECTIONS.index, issueKey, TicketIndexSchema);
  if (!index) return { status: 200, body: { ignored: 'not a closeloop ticket' }, events: [] };

  const group = index.value.kind === 'case' ? undefined : await groupOf(deps.store, index.value.key);
  const caseKeys = index.value.kind === 'case' ? [index.value.key] : (group?.value.members.map((m) => m.caseKey) ?? []);
  const approved = approval ? await approveFromJira(deps, caseKeys, hook, approval, issueKey) : undefined;
  const nowDone = statusChange ? movedToDone(hook, statusChange, deps.policy) : false;
  const groupEcho = statusChange && group ? await groupStatusChange(deps, group, nowDone) : undefined;
  if (!statusChange || groupEcho === 'echo') {
    const events = approved?.events ?? [];
    const refused = approved?.refused.length ? { refused: approved.refused } : {};
    return {
      status: 200,
      body: { accepted: events.length, approved: approved?.cases ?? [], ...refused },
      events,
      delivery,
    };
  }
  const actor = `jira:${hook.user?.accountId ?? hook.user?.displayName ?? 'unknown'}`;
  const at = deps.clock.now().toISOString();
  const deliveryId = header(req.headers, 'x-atlassian-webhook-identifier') ?? String(hook.timestamp ?? at);
  // The webhook writes only the ticket section of the case, like the stage.
  const events: PipelineEvent[] = [];
  for (const caseKey of caseKeys) {
    const res = await updateCaseTicket(deps, caseKey, (t) => {
      if (!t) return undefined;
      if (nowDone) return t.status === 'done' ? undefined : { ...t, status: 'done' };
      return t.status === 'done' ? { ...t, status: 'reopened' } : undefined;
    });
    // Unchanged: the echo of closeloop's own transition (it marks the status before moving the issue).
    if (!res.changed) continue;
    const id = `jira-webhook:${shortHash(`${deliveryId}|${issueKey}|${caseKey}`, 24)}`;
    events.push(
      nowDone
        ? { id, type: 'case.verify-requested', caseKey, at, trigger: 'ticket-closed', actor }
        : {
            id,
            type: 'case.reopened',
            caseKey,
            at,
            reason: `reopened in Jira (${issueKey} → ${statusChange.toString ?? 'open'})`,
            actor,
          },
    );
  }
  if (approved) events.unshift(...approved.events);
  deps.log.info('jira webhook handled', { issueKey, events: events.length });
  return {
    status: 200,
    body: {
      accepted: events.length,
      ...(approved ? { approved: approved.cases } : {}),
      ...(approved?.refused.length ? { refused: approved.refused } : {}),
    },
    events,
    delivery,
  };
}

/** Labels in a changelog string: Jira writes them space-separated. */
const labelsOf = (s: string | null | undefined) => new Set((s ?? '').split(/\s+/).filter(Boolean));

/**
 * What in this update approves, if anything: the approval label newly added (present in `toString`,
 * absent from `fromString`, so an unrelated edit of a labelled issue does not approve again), or the
 * approval transition — its name in a post-function webhook, else the target status of the status change.
 */
function approvalSignal(hook: Webhook, policy: TicketPolicy): string | undefined {
  const items = hook.changelog?.items ?? [];
  const labels = items.find((i) => i.field.toLowerCase() === 'labels');
  if (
    labels &&
    labelsOf(labels.toString).has(policy.approvalLabel) &&
    !labelsOf(labels.fromString).has(policy.approvalLabel)
  ) {
    return `label ${policy.approvalLabel}`;
  }
  const wanted = policy.approvalTransition?.toLowerCase();
  if (!wanted) return undefined;
  const status = items.find((i) => i.field.toLowerCase() === 'status');
  const names = [hook.transition?.transitionName, status?.toString].map((n) => n?.toLowerCase());
  return names.includes(wanted) ? `transition ${policy.approvalTransition}` : undefined;
}

/** `jira:<accountId> (<displayName>)`: the account id is stable, the name is what an auditor reads. */
function approverOf(hook: Webhook): string {
  const id = hook.user?.accountId ?? hook.user?.displayName ?? 'unknown';
  const name = hook.user?.accountId && hook.user.displayName ? ` (${hook.user.displayName})` : '';
  return `jira:${id}${name}`;
}

/**
 * Approves every case of the issue that awaits approval. The once-marker is keyed by the case document's
 * version, so deliveries of the same webhook (replays, concurrent workers) race for one claim and only
 * the winner calls approveCase; a later plan awaiting approval again has another version and can be
 * approved again. A failed approveCase releases the claim so Jira's redelivery can retry it.
 */
async function approveFromJira(
  deps: JiraWebhookDeps,
  caseKeys: readonly string[],
  hook: Webhook,
  signal: string,
  issueKey: string,
): Promise<{ events: PipelineEvent[]; cases: string[]; refused: string[] }> {
  const remediation = deps.remediation;
  if (!remediation) {
    deps.log.warn('jira approval ignored: no remediation wiring in this function', { issueKey, signal });
    return { events: [], cases: [], refused: [] };
  }
  const approver = approverOf(hook);
  const events: PipelineEvent[] = [];
  const cases: string[] = [];
  const refused: string[] = [];
  for (const caseKey of caseKeys) {
    const doc = await getDoc(deps.store, COLLECTIONS.cases, caseKey, CaseSchema);
    const r = doc?.value.remediation;
    if (!doc || !r?.action || r.state !== 'awaiting-approval' || r.approvedBy !== undefined) continue;
    // A refusal leaves the case as it is: its claim names the approver, so a replay records it once and
    // an approver who may approve this version still can.
    const refusal = approverRefusal(remediation.policy, doc.value, approver);
    const claimId = refusal
      ? `approve-refused|${caseKey}|${doc.version}|${shortHash(approver)}`
      : `approve|${caseKey}|${doc.version}`;
    // Kept as long as any once-marker (ONCE_MARKER_TTL_MS), far longer than a delivery is acted on.
    const expiresAt = onceMarkerExpiry(deps.clock.now());
    const claim = await mutateDoc(
      deps.store,
      COLLECTIONS.once,
      claimId,
      OnceSchema,
      (cur): Once | undefined => (cur ? undefined : { at: deps.clock.now().toISOString(), state: 'enqueuing' }),
      { expiresAt },
    );
    if (!claim.changed) continue;
    const done = () => ({ at: deps.clock.now().toISOString(), state: 'done' });
    try {
      const out = await approveCase(remediation, caseKey, approver);
      await deps.store.put(COLLECTIONS.once, claimId, done(), { expiresAt });
      events.push(...out.events);
      if (out.state === 'approval-refused') {
        refused.push(caseKey);
        deps.log.warn('jira approval refused', { caseKey, issueKey, approver, signal, ...refusal });
        continue;
      }
      cases.push(caseKey);
      deps.log.info('case approved in jira', { caseKey, issueKey, approver, signal, state: out.state });
    } catch (e) {
      if (e instanceof UsageError) {
        // Nothing to approve (closed, suppressed, already applied): Jira's retries cannot change that.
        await deps.store.put(COLLECTIONS.once, claimId, done(), { expiresAt });
        deps.log.warn('jira approval ignored', { caseKey, issueKey, approver, reason: errorMessage(e) });
        continue;
      }
      await deps.store.delete(COLLECTIONS.once, claimId);
      deps.log.error('jira approval failed', { caseKey, issueKey, error: errorMessage(e) });
      throw e;
    }
  }
  return { events, cases, refused };
}

/** The group document of a parent ticket (`parentKey` = `<group key>|<generation>`, stored under the key's hash). */
async function groupOf(store: DocStore, parentKey: string) {
  const groupKey = parentKey.slice(0, parentKey.lastIndexOf('|'));
  const id = ledgerIdOf(groupKey);
  const doc = await getDoc(store, COLLECTIONS.groups, id, GroupSchema);
  return doc ? { id, value: doc.value } : undefined;
}

/**
 * A parent ticket moved: `echo` when it is where closeloop recorded it was moving it (its own transition,
 * recorded before it was made), else a person's move — recorded now as the parent's status.
 */
async function groupStatusChange(
  deps: JiraWebhookDeps,
  group: NonNullable<Awaited<ReturnType<typeof groupOf>>>,
  nowDone: boolean,
): Promise<'echo' | 'person'> {
  const status = nowDone ? 'done' : 'reopened';
  if (group.value.parentStatus === status) return 'echo';
  await setParentStatus(deps, group.id, status);
  return 'person';
}

/** Whether the issue moved to done: its status category, else a configured done transition's name. */
function movedToDone(hook: Webhook, statusChange: { toString?: string | null | undefined }, policy: TicketPolicy) {
  const toName = (statusChange.toString ?? hook.issue?.fields?.status?.name ?? '').toLowerCase();
  return (
    hook.issue?.fields?.status?.statusCategory?.key === 'done' ||
    policy.transitions.done.some((n) => n.toLowerCase() === toName)
  );
}
