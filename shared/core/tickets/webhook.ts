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
 * @see https://developer.atlassian.com/cloud/jira/platform/webhooks/#secure-admin-webhooks
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import type { PipelineEvent } from '../model/events.js';
import type { Clock, DocStore, Logger } from '../ports.js';
import { getDoc } from '../store/docs.js';
import { shortHash } from '../util/hash.js';
import { ledgerIdOf } from './content.js';
import { updateCaseTicket } from './context.js';
import type { TicketPolicy } from './policy.js';
import { COLLECTIONS, GroupSchema, TicketIndexSchema } from './store.js';

export interface JiraWebhookRequest {
  headers: Record<string, string | undefined>;
  rawBody: string;
}
export interface JiraWebhookResponse {
  status: number;
  body: unknown;
  /** Events to publish (verify-requested, reopened). */
  events: PipelineEvent[];
}
export interface JiraWebhookDeps {
  store: DocStore;
  clock: Clock;
  log: Logger;
  policy: TicketPolicy;
  /** `JIRA_WEBHOOK_SECRET`; without one every call is refused. */
  secret: string | undefined;
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
});

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
  let json: unknown;
  try {
    json = JSON.parse(req.rawBody);
  } catch {
    return { status: 400, body: { error: 'body is not JSON' }, events: [] };
  }
  const parsed = WebhookSchema.safeParse(json);
  if (!parsed.success) return { status: 400, body: { error: 'not a Jira webhook payload' }, events: [] };
  const hook = parsed.data;
  const statusChange = hook.changelog?.items?.find((i) => i.field.toLowerCase() === 'status');
  const issueKey = hook.issue?.key;
  if (hook.webhookEvent !== 'jira:issue_updated' || !statusChange || !issueKey || !ISSUE_KEY.test(issueKey)) {
    return { status: 200, body: { ignored: 'not a status change' }, events: [] };
  }
  const index = await getDoc(deps.store, COLLECTIONS.index, issueKey, TicketIndexSchema);
  if (!index) return { status: 200, body: { ignored: 'not a closeloop ticket' }, events: [] };

  const caseKeys = index.value.kind === 'case' ? [index.value.key] : await groupMembers(deps.store, index.value.key);
  const toName = (statusChange.toString ?? hook.issue?.fields?.status?.name ?? '').toLowerCase();
  const doneNames = new Set(deps.policy.transitions.done.map((n) => n.toLowerCase()));
  const nowDone = hook.issue?.fields?.status?.statusCategory?.key === 'done' || doneNames.has(toName);
  const actor = `jira:${hook.user?.accountId ?? hook.user?.displayName ?? 'unknown'}`;
  const at = deps.clock.now().toISOString();
  const delivery = header(req.headers, 'x-atlassian-webhook-identifier') ?? String(hook.timestamp ?? at);
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
    const id = `jira-webhook:${shortHash(`${delivery}|${issueKey}|${caseKey}`, 24)}`;
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
  deps.log.info('jira webhook handled', { issueKey, events: events.length });
  return { status: 200, body: { accepted: events.length }, events };
}

async function groupMembers(store: DocStore, parentKey: string): Promise<string[]> {
  // parentKey = `<group key>|<generation>`; the group document is stored under the group key's hash.
  const groupKey = parentKey.slice(0, parentKey.lastIndexOf('|'));
  const doc = await getDoc(store, COLLECTIONS.groups, ledgerIdOf(groupKey), GroupSchema);
  return doc?.value.members.map((m) => m.caseKey) ?? [];
}
