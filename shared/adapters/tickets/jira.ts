/**
 * JiraTicketSink: the ticket port over Jira Cloud REST v3 with jira.js `Version3Client`.
 * Basic auth (e-mail + API token) or an OAuth 2.0 bearer token. Errors become AdapterErrors by kind
 * (429 and 425 → throttled with Retry-After / X-RateLimit-Reset, 5xx, 408 and timeouts/resets → transient with
 * a 503's Retry-After, 400 → invalid with Jira's own message, 401/403 → denied, 404 → gone). Idempotent calls are retried
 * here; creates are not (the core decides: a 5xx after a create may mean the issue exists).
 *
 * @see https://developer.atlassian.com/cloud/jira/platform/rest/v3/intro/
 * @see https://developer.atlassian.com/cloud/jira/platform/rate-limiting/
 */
import { type Config, HttpException, type RequestConfig, Version3Client } from 'jira.js';
import * as z from 'zod';
import { AdapterError, isRetryable, isThrottled, isTransient, kindOfHttpStatus } from '../../core/errors.js';
import type { TicketRef } from '../../core/model/case.js';
import { type Logger, silentLogger } from '../../core/ports.js';
import type { AdfDoc } from '../../core/tickets/adf.js';
import { CASE_LABEL_PATTERN } from '../../core/tickets/content.js';
import { PROJECT_KEY_PATTERN } from '../../core/tickets/policy.js';
import {
  AssigneeRejectedError,
  type CommentOnce,
  type IssueFields,
  SinkUnavailableError,
  type TicketDraft,
  type TicketSink,
  UserSearchRefusedError,
} from '../../core/tickets/ports.js';
import { type RetryOptions, realSleep, type Sleep, withRetry } from '../../core/util/retry.js';
import type { JiraConfig } from './jira-config.js';

/** The entity property holding the case key on every closeloop issue. */
export const CASE_PROPERTY_KEY = 'closeloop.case';
/** The comment property holding the id of the request that posted it (see {@link CommentOnce}). */
export const COMMENT_PROPERTY_KEY = 'closeloop.request';
/** How many of the issue's newest comments a retried comment looks through for itself. */
const RECENT_COMMENTS = 100;
const ISSUE_KEY = /^[A-Z][A-Z0-9_]+-[0-9]+$/;

// The config schema lives apart so the wiring can validate the Jira settings without pulling jira.js
// (with axios and mime-db) into every bundle that reads them.
export { type JiraConfig, JiraConfigSchema } from './jira-config.js';

export interface JiraSinkOptions {
  config: JiraConfig;
  retry?: Partial<RetryOptions>;
  sleep?: Sleep;
  log?: Logger;
}

/**
 * Six tries, waits of up to 30 s (a Retry-After above that is left to the outbox), and at most 45 s of one
 * call's retrying before it is left to the outbox too: without that bound a throttling Jira (Retry-After 30 s
 * on every answer) kept one call waiting 150 s, and a request of three calls (status, transitions, the move)
 * outlived the ticket function's 300 s, whose timeout sends the whole batch back, finished records included.
 */
const DEFAULT_RETRY = { maxAttempts: 6, baseDelayMs: 500, maxDelayMs: 30_000, maxElapsedMs: 45_000 };

const TransitionsSchema = z.looseObject({
  transitions: z
    .array(
      z.looseObject({
        id: z.string().optional(),
        name: z.string().optional(),
        to: z.looseObject({ name: z.string().optional() }).optional(),
      }),
    )
    .default([]),
});
const SearchSchema = z.looseObject({
  issues: z
    .array(
      z.looseObject({
        key: z.string(),
        fields: z.looseObject({ labels: z.array(z.string()).optional() }).optional(),
      }),
    )
    .default([]),
});
const UsersSchema = z.array(
  z.looseObject({ accountId: z.string(), emailAddress: z.string().optional(), active: z.boolean().optional() }),
);
const CommentsPageSchema = z.looseObject({
  comments: z.array(z.looseObject({ id: z.string() })).default([]),
});
const CommentListSchema = z.looseObject({
  values: z
    .array(
      z.looseObject({
        id: z.string(),
        properties: z.array(z.looseObject({ key: z.string(), value: z.unknown() })).optional(),
      }),
    )
    .default([]),
});
const StatusOfSchema = z.looseObject({
  fields: z.looseObject({ status: z.looseObject({ name: z.string().optional() }).nullish() }).optional(),
});
const CreatedSchema = z.looseObject({ key: z.string().regex(ISSUE_KEY) });
const AssigneeSchema = z.looseObject({
  fields: z.looseObject({ assignee: z.looseObject({ accountId: z.string() }).nullish() }).optional(),
});

/**
 * jira.js's client with a deadline on every request, headers and body. axios's Node adapter takes `timeout`
 * as the socket's idle time only: an answer dribbled out (a byte every few seconds, by a Jira under load or a
 * proxy in front of it) never timed out and held the call, its record and the batch behind it. The abort
 * ends the exchange at twice `timeoutMs` whatever arrives; the adapter (and any proxy it is set up with) stays.
 */
class DeadlineClient extends Version3Client {
  constructor(
    config: Config,
    private readonly timeoutMs: number,
  ) {
    super(config);
  }

  override sendRequestFullResponse<T>(requestConfig: RequestConfig) {
    // Twice the idle timeout: that one stays the first to fire on a silent connection; this one ends the rest.
    return super.sendRequestFullResponse<T>({ ...requestConfig, signal: AbortSignal.timeout(2 * this.timeoutMs) });
  }
}

export class JiraTicketSink implements TicketSink {
  readonly kind = 'jira' as const;
  private readonly client: Version3Client;
  private readonly retry: RetryOptions;
  private readonly log: Logger;

  constructor(private readonly options: JiraSinkOptions) {
    const { config } = options;
    const baseRequestConfig = { timeout: config.timeoutMs };
    this.client =
      config.auth.kind === 'basic'
        ? new DeadlineClient(
            {
              host: config.baseUrl,
              authentication: { basic: { email: config.auth.email, apiToken: config.auth.apiToken } },
              baseRequestConfig,
            },
            config.timeoutMs,
          )
        : new DeadlineClient(
            {
              host: config.baseUrl,
              authentication: { oauth2: { accessToken: config.auth.token } },
              baseRequestConfig,
            },
            config.timeoutMs,
          );
    this.log = options.log ?? silentLogger;
    this.retry = {
      ...DEFAULT_RETRY,
      ...options.retry,
      sleep: options.sleep ?? options.retry?.sleep ?? realSleep,
      onRetry: ({ error, attempt, delayMs }) =>
        this.log.debug('jira call retried', { attempt, delayMs, error: error instanceof Error ? error.message : '' }),
    };
  }

  private url(key: string): string {
    return `${this.options.config.baseUrl.replace(/\/+$/, '')}/browse/${key}`;
  }

  private ref(key: string, parentKey?: string): TicketRef {
    return { key, url: this.url(key), sink: 'jira', ...(parentKey ? { parentKey } : {}) };
  }

  /**
   * Runs an idempotent call with bounded retries; errors come out as AdapterErrors. One that still fails
   * through its retries for a reason of Jira's (unreachable, a 5xx, a timeout), or is throttled (Jira's rate
   * limits are the account's, not the request's), comes out as a SinkUnavailableError: every other request
   * would fare the same, and the outbox holds them back for a while instead of spending these retries on each.
   */
  private async call<T>(what: string, fn: () => Promise<T>, retryable = isRetryable): Promise<T> {
    let tries = 0;
    try {
      return await withRetry(
        async () => {
          tries++;
          try {
            return await fn();
          } catch (e) {
            throw toAdapterError(what, e);
          }
        },
        { ...this.retry, retryable },
      );
    } catch (e) {
      if (e instanceof AdapterError && (isThrottled(e) || (tries > 1 && isTransient(e))))
        throw new SinkUnavailableError(e);
      throw e;
    }
  }

  async createTicket(draft: TicketDraft): Promise<TicketRef> {
    const project = draft.project ?? this.options.config.project;
    if (!PROJECT_KEY_PATTERN.test(project))
      throw new AdapterError('invalid', `invalid project key ${JSON.stringify(project)}`);
    const fields: Parameters<Version3Client['issues']['createIssue']>[0]['fields'] = {
      project: { key: project },
      issuetype: { name: draft.issueType },
      summary: draft.summary,
      description: draft.description,
      labels: draft.labels,
      ...(draft.priority ? { priority: { name: draft.priority } } : {}),
      ...(draft.dueDate ? { duedate: draft.dueDate } : {}),
      ...(draft.assigneeId ? { assignee: { accountId: draft.assigneeId } } : {}),
      ...(draft.components.length > 0 ? { components: draft.components.map((name) => ({ name })) } : {}),
      ...(draft.parentKey ? { parent: { key: checkKey(draft.parentKey) } } : {}),
    };
    let created: unknown;
    try {
      // The case key travels as an entity property in the same request (no second call).
      created = await this.client.issues.createIssue({
        fields,
        properties: [{ key: CASE_PROPERTY_KEY, value: { caseKey: draft.caseKey, label: draft.caseLabel } }],
      });
    } catch (e) {
      const error = toAdapterError('create issue', e);
      // Jira names the refused field: `errors.assignee` ("User '…' cannot be assigned issues.").
      if (draft.assigneeId && refusesAssignee(e)) throw new AssigneeRejectedError(error.message);
      throw error;
    }
    const { key } = CreatedSchema.parse(created);
    return this.ref(key, draft.parentKey);
  }

  async findTicket(caseLabel: string): Promise<TicketRef | undefined> {
    // The only value ever placed in JQL, and only after this check: `closeloop-` + 32 hex digits.
    if (!CASE_LABEL_PATTERN.test(caseLabel)) throw new AdapterError('invalid', 'refusing a non-derived label in JQL');
    const res = await this.call('search issues', () =>
      this.client.issueSearch.searchForIssuesUsingJqlEnhancedSearchPost({
        jql: `labels = "${caseLabel}" ORDER BY created ASC`,
        fields: ['labels', 'parent'],
        maxResults: 5,
      }),
    );
    const issue = SearchSchema.parse(res).issues.find((i) => i.fields?.labels?.includes(caseLabel) ?? true);
    return issue ? this.ref(issue.key) : undefined;
  }

  async comment(ref: TicketRef, body: AdfDoc, once?: CommentOnce): Promise<void> {
    const issueIdOrKey = checkKey(ref.key);
    // A comment is not idempotent: a timeout or a 5xx may come after Jira stored it. With `once`, the
    // comment carries its request's id, and every attempt that may follow a stored one looks for it first
    // (the issue's comment list is read from the database, not a lagging search index).
    let maybeSent = once?.maybeSent ?? false;
    await this.call('add comment', async () => {
      if (once && maybeSent && (await this.hasComment(issueIdOrKey, once.id))) return;
      maybeSent = true;
      await this.client.issueComments.addComment({
        issueIdOrKey,
        comment: body,
        ...(once ? { properties: [{ key: COMMENT_PROPERTY_KEY, value: { id: once.id } }] } : {}),
      });
    });
  }

  /** Whether one of the issue's newest comments carries the request id `id`. */
  private async hasComment(issueIdOrKey: string, id: string): Promise<boolean> {
    const page = CommentsPageSchema.parse(
      await this.client.issueComments.getComments({ issueIdOrKey, orderBy: '-created', maxResults: RECENT_COMMENTS }),
    );
    const ids = page.comments.map((c) => Number(c.id)).filter((n) => Number.isSafeInteger(n));
    if (ids.length === 0) return false;
    // Comment properties come back only from the comment list by ids, with `expand=properties`.
    const listed = CommentListSchema.parse(
      await this.client.issueComments.getCommentsByIds({ ids, expand: 'properties' }),
    );
    return listed.values.some((c) =>
      (c.properties ?? []).some((p) => p.key === COMMENT_PROPERTY_KEY && prop(p.value, 'id') === id),
    );
  }

  async transition(
    ref: TicketRef,
    names: readonly string[],
    comment: AdfDoc,
    once?: CommentOnce,
  ): Promise<string | undefined> {
    const issueIdOrKey = checkKey(ref.key);
    // An earlier attempt of this request may have moved the issue, its comment with it, and failed before it
    // could tell (the sink's retries ran out reading the status back): the transition is then no longer
    // offered, and the comment fallback below posted the comment a second time. A retry that finds the issue
    // already in a status it names stops: the move and its comment are done. (The transition's comment is
    // not given the request id: Jira documents comment properties on the comment endpoint only.)
    // A transition listed without its target may lead to a status none of the names match ("Resolve Issue"
    // to Closed) and be offered there again (a global or looping one): the status an earlier attempt read
    // before moving the issue with it, kept with the request, tells whether that move went through.
    let status: string | undefined;
    if (once?.maybeSent) {
      const now = await this.call('get status', () => this.statusOf(issueIdOrKey));
      const left = once.statusBefore !== undefined && now !== undefined && !sameStatus(now, once.statusBefore);
      if (now !== undefined && (left || names.some((n) => sameStatus(n, now)))) return now;
      status = now;
    }
    const listed = await this.call('get transitions', () => this.client.issues.getTransitions({ issueIdOrKey }));
    const transitions = TransitionsSchema.parse(listed).transitions;
    for (const name of names) {
      const wanted = name.toLowerCase();
      const t = transitions.find((x) => x.name?.toLowerCase() === wanted || x.to?.name?.toLowerCase() === wanted);
      if (!t?.id) continue;
      const id = t.id;
      const target = t.to?.name;
      // A timeout or a 5xx may come after Jira moved the issue: the same transition again is then a 400
      // (not available from the new status), and the request was dead-lettered though the issue had moved.
      // So every attempt after the first reads the issue's status first (not a search: read-after-write).
      // A transition listed without its target is judged by the status it leaves: "no longer offered" was
      // wrong for one the new status offers again (a global or looping transition), which ran twice, its
      // comment with it.
      const from =
        target === undefined
          ? (status ?? (await this.call('get status', () => this.statusOf(issueIdOrKey))))
          : undefined;
      // Kept with the request before the move is sent (a worker may die, or the retries run out, after it):
      // a later attempt judges the move by it, as the retries below do. The first status read is the one kept.
      if (from !== undefined && once?.statusBefore === undefined) await once?.recordStatus?.(from);
      let maybeMoved = false;
      await this.call('transition issue', async () => {
        if (maybeMoved && (await this.movedTo(issueIdOrKey, id, target, from))) return;
        maybeMoved = true;
        // The comment goes with the transition (one call, and the history shows why it moved).
        await this.client.issues.doTransition({
          issueIdOrKey,
          transition: { id },
          update: { comment: [{ add: { body: comment } }] },
        });
      });
      return t.name ?? name;
    }
    // No transition applies (a status the names do not reach): the comment goes on its own, once.
    await this.comment(ref, comment, once);
    return undefined;
  }

  /** The issue's status name, read from the issue (not a search: read-after-write). */
  private async statusOf(issueIdOrKey: string): Promise<string | undefined> {
    const issue = StatusOfSchema.parse(await this.client.issues.getIssue({ issueIdOrKey, fields: ['status'] }));
    return issue.fields?.status?.name;
  }

  /**
   * Whether an earlier attempt of transition `id` took the issue to `target`: its status is that status now.
   * Without a target name, its status is no longer `from`, the one it had before the first attempt; without
   * either, the transition is no longer offered.
   */
  private async movedTo(
    issueIdOrKey: string,
    id: string,
    target: string | undefined,
    from: string | undefined,
  ): Promise<boolean> {
    if (target !== undefined) return (await this.statusOf(issueIdOrKey))?.toLowerCase() === target.toLowerCase();
    if (from !== undefined) return (await this.statusOf(issueIdOrKey))?.toLowerCase() !== from.toLowerCase();
    const listed = TransitionsSchema.parse(await this.client.issues.getTransitions({ issueIdOrKey }));
    return !listed.transitions.some((x) => x.id === id);
  }

  async addLabels(ref: TicketRef, labels: readonly string[]): Promise<void> {
    const issueIdOrKey = checkKey(ref.key);
    await this.call('edit labels', () =>
      this.client.issues.editIssue({ issueIdOrKey, update: { labels: labels.map((add) => ({ add })) } }),
    );
  }

  async removeLabels(ref: TicketRef, labels: readonly string[]): Promise<void> {
    const issueIdOrKey = checkKey(ref.key);
    await this.call('edit labels', () =>
      this.client.issues.editIssue({ issueIdOrKey, update: { labels: labels.map((remove) => ({ remove })) } }),
    );
  }

  async setDescription(ref: TicketRef, description: AdfDoc, fields: IssueFields = {}): Promise<void> {
    const issueIdOrKey = checkKey(ref.key);
    const edit = {
      description,
      ...(fields.priority ? { priority: { name: fields.priority } } : {}),
      ...(fields.dueDate ? { duedate: fields.dueDate } : {}),
    };
    await this.call('edit description', () =>
      this.client.issues.editIssue({ issueIdOrKey, fields: edit, notifyUsers: false }),
    );
  }

  async assigneeOf(ref: TicketRef): Promise<string | null> {
    const issueIdOrKey = checkKey(ref.key);
    const issue = AssigneeSchema.parse(
      await this.call('get assignee', () => this.client.issues.getIssue({ issueIdOrKey, fields: ['assignee'] })),
    );
    return issue.fields?.assignee?.accountId ?? null;
  }

  async assign(ref: TicketRef, accountId: string | null): Promise<void> {
    const issueIdOrKey = checkKey(ref.key);
    // Setting the assignee is idempotent: a retry after a lost answer sets the same value again.
    await this.call('assign issue', async () => {
      try {
        await this.client.issues.assignIssue({ issueIdOrKey, accountId });
      } catch (e) {
        // The person has an account Jira will not assign in this project: said as on create (`errors.assignee`).
        if (accountId !== null && refusesAssignee(e))
          throw new AssigneeRejectedError(toAdapterError('assign issue', e).message);
        throw e;
      }
    });
  }

  async findUser(email: string): Promise<string | undefined> {
    const users = UsersSchema.parse(
      await this.call('search users', async () => {
        try {
          return await this.client.userSearch.findUsers({ query: email, maxResults: 10 });
        } catch (e) {
          // A refusal of the search itself is closeloop's configuration, not the person's absence. (Jira Cloud
          // answers a search by an account without the Browse users and groups permission 200 with no users,
          // which cannot be told from "no such user"; only an outright 401 or 403 can.)
          if (e instanceof HttpException && (e.status === 401 || e.status === 403))
            throw userSearchRefused(e.status, toAdapterError('search users', e).message);
          throw e;
        }
      }),
    ).filter((u) => u.active !== false);
    const exact = users.find((u) => u.emailAddress?.toLowerCase() === email.toLowerCase());
    if (exact) return exact.accountId;
    // Jira hides e-mails by profile visibility: a single match on the query whose e-mail is hidden is the
    // person. One whose e-mail shows, and is another, is someone else the query matched by a prefix
    // (`ops@acme.example` finds `ops@acme.example.au`): the owner has no account, and the ticket goes to
    // the team's default assignee or triage, never to a stranger.
    const only = users.length === 1 ? users[0] : undefined;
    return only && !only.emailAddress ? only.accountId : undefined;
  }
}

/** A user search Jira refused (401, 403), with what it likely means and what fixes it. */
function userSearchRefused(status: 401 | 403, message: string): UserSearchRefusedError {
  return status === 401
    ? new UserSearchRefusedError(
        message,
        "HTTP 401: Jira did not accept closeloop's credentials for it",
        "check closeloop's Jira API token (or that its OAuth app has the read:jira-user scope)",
      )
    : new UserSearchRefusedError(
        message,
        "HTTP 403: closeloop's Jira account may lack the Browse users and groups permission",
        "grant closeloop's Jira account the Browse users and groups global permission (Jira settings, System, Global permissions)",
      );
}

function sameStatus(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}

function checkKey(key: string): string {
  if (!ISSUE_KEY.test(key)) throw new AdapterError('invalid', `not a Jira issue key: ${JSON.stringify(key)}`);
  return key;
}

const NETWORK_CODES = new Set([
  'ECONNABORTED',
  'ETIMEDOUT',
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'EAI_AGAIN',
  'ERR_NETWORK',
  'ERR_SOCKET_CONNECTION_TIMEOUT',
  // Only the DeadlineClient's abort cancels a request: its deadline passed.
  'ERR_CANCELED',
]);

const ErrorBodySchema = z.looseObject({
  errorMessages: z.array(z.string()).optional(),
  errors: z.record(z.string(), z.string()).optional(),
  message: z.string().optional(),
});

/** Whether `e` is Jira's 400 naming the assignee field among its per-field errors. */
function refusesAssignee(e: unknown): boolean {
  if (!(e instanceof HttpException) || e.status !== 400) return false;
  const data = typeof e.response === 'object' && 'data' in e.response ? e.response.data : undefined;
  const parsed = ErrorBodySchema.safeParse(data);
  return parsed.success && parsed.data.errors?.assignee !== undefined;
}

/** What Jira said, in its own words: `errorMessages` and per-field `errors`. */
function jiraMessage(data: unknown): string | undefined {
  const parsed = ErrorBodySchema.safeParse(data);
  if (!parsed.success) return typeof data === 'string' && data.length > 0 ? data.slice(0, 500) : undefined;
  const parts = [
    ...(parsed.data.errorMessages ?? []),
    ...Object.entries(parsed.data.errors ?? {}).map(([field, msg]) => `${field}: ${msg}`),
    ...(parsed.data.message ? [parsed.data.message] : []),
  ];
  return parts.length > 0 ? parts.join('; ') : undefined;
}

/** A property of an unknown value (axios errors and headers are class instances, not plain records). */
function prop(v: unknown, key: string): unknown {
  if (v === null || typeof v !== 'object' || !(key in v)) return undefined;
  const value: unknown = Reflect.get(v, key);
  return value;
}

/**
 * Seconds to wait, from `Retry-After` (seconds or HTTP date) or `X-RateLimit-Reset` (ISO timestamp).
 * @see https://developer.atlassian.com/cloud/jira/platform/rate-limiting/#rate-limit-responses
 */
export function retryAfterSeconds(headers: unknown, now = Date.now()): number | undefined {
  const entries = headers !== null && typeof headers === 'object' ? Object.entries(headers) : [];
  const get = (name: string): string | undefined => {
    for (const [k, v] of entries)
      if (k.toLowerCase() === name) return v === undefined || v === null ? undefined : String(v);
    return undefined;
  };
  const ra = get('retry-after');
  if (ra !== undefined) {
    const secs = Number(ra);
    if (Number.isFinite(secs)) return Math.max(0, secs);
    const date = Date.parse(ra);
    if (!Number.isNaN(date)) return Math.max(0, (date - now) / 1000);
  }
  const reset = get('x-ratelimit-reset');
  if (reset !== undefined) {
    const date = Date.parse(reset);
    if (!Number.isNaN(date)) return Math.max(0, (date - now) / 1000);
  }
  return undefined;
}

/**
 * Jira's reading of a status: the shared one (a 408 there is a proxy's idle timeout in front of Jira), but a
 * 410, a 412 and a status below 400 are invalid, as the sink has read them since it was written: only a 404
 * says the issue is gone (Jira Cloud answers 410 for an API it has removed, which neither a retry nor a new
 * ticket mends).
 */
const JIRA_STATUS_KINDS = { 410: 'invalid', 412: 'invalid', none: 'invalid' } as const;

/** Classifies what jira.js threw. Never includes request headers (they carry the token). */
export function toAdapterError(what: string, e: unknown): AdapterError {
  if (e instanceof AdapterError) return e;
  if (e instanceof HttpException) {
    const headers = prop(prop(e.cause, 'response'), 'headers');
    // jira.js keeps the body on `response.data` (HttpException) and the headers on its axios cause.
    const data = typeof e.response === 'object' && 'data' in e.response ? e.response.data : undefined;
    // A 503 (Jira under maintenance or load) may say when to come back as a 429 does: honoured, not guessed.
    const kind = kindOfHttpStatus(e.status, JIRA_STATUS_KINDS);
    const asked = kind === 'throttled' || kind === 'transient' ? retryAfterSeconds(headers) : undefined;
    const retryAfter = asked ?? (e.status === 429 ? 5 : undefined);
    const message = `jira ${what}: HTTP ${e.status}${jiraMessage(data) ? ` ${jiraMessage(data)}` : ''}`;
    return new AdapterError(kind, message, retryAfter !== undefined ? { retryAfterSeconds: retryAfter } : {});
  }
  const code = prop(e, 'code');
  if (typeof code === 'string' && NETWORK_CODES.has(code))
    return new AdapterError('transient', `jira ${what}: ${code}`);
  const msg = e instanceof Error ? e.message : String(e);
  if (/timeout|socket hang up|ECONNRESET|network/i.test(msg))
    return new AdapterError('transient', `jira ${what}: ${msg}`);
  return new AdapterError('invalid', `jira ${what}: ${msg}`);
}
