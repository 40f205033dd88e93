/**
 * Ticket wiring: configuration from the environment, the sink choice (Jira when configured, else the
 * local sink in the embedded store), and the case ↔ ticket listing behind `closeloop tickets`.
 */
import * as z from 'zod';
import { ConfigError } from '../../core/errors.js';
import { CaseSchema } from '../../core/model/case.js';
import { type Clock, type DocStore, type Logger, silentLogger, systemClock } from '../../core/ports.js';
import type { TicketSink } from '../../core/tickets/ports.js';
import { COLLECTIONS, OutboxEntrySchema } from '../../core/tickets/store.js';
import type { RetryOptions } from '../../core/util/retry.js';
import { type JiraConfig, JiraConfigSchema, JiraTicketSink } from './jira.js';
import { LOCAL_COLLECTIONS, LocalTicketSchema, LocalTicketSink } from './local.js';

export { type JiraConfig, JiraTicketSink } from './jira.js';
export { LocalTicketSink } from './local.js';

/**
 * Reads `JIRA_BASE_URL`, `JIRA_EMAIL` + `JIRA_API_TOKEN` (or `JIRA_BEARER_TOKEN`), `JIRA_PROJECT`,
 * `JIRA_WEBHOOK_SECRET` (and `JIRA_TIMEOUT_MS`). Returns undefined when Jira is not configured at all
 * (no base URL); throws a ConfigError naming the variable when it is half configured. The message
 * never contains a token.
 *
 * @example
 * const jira = jiraConfigFromEnv(process.env); // undefined → local tickets
 */
export function jiraConfigFromEnv(env: Record<string, string | undefined>): JiraConfig | undefined {
  const baseUrl = env.JIRA_BASE_URL?.trim();
  if (!baseUrl) return undefined;
  const bearer = env.JIRA_BEARER_TOKEN?.trim();
  const email = env.JIRA_EMAIL?.trim();
  const apiToken = env.JIRA_API_TOKEN?.trim();
  if (!bearer && !(email && apiToken)) {
    throw new ConfigError('JIRA_BASE_URL is set but neither JIRA_EMAIL + JIRA_API_TOKEN nor JIRA_BEARER_TOKEN is');
  }
  const timeout = env.JIRA_TIMEOUT_MS ? Number(env.JIRA_TIMEOUT_MS) : undefined;
  const parsed = JiraConfigSchema.safeParse({
    baseUrl,
    auth: bearer ? { kind: 'bearer', token: bearer } : { kind: 'basic', email, apiToken },
    project: env.JIRA_PROJECT?.trim(),
    ...(env.JIRA_WEBHOOK_SECRET ? { webhookSecret: env.JIRA_WEBHOOK_SECRET } : {}),
    ...(timeout !== undefined ? { timeoutMs: timeout } : {}),
  });
  if (!parsed.success) {
    // Name the fields, never echo values (tokens).
    const fields = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new ConfigError(`Jira configuration from the environment is invalid: ${fields}`);
  }
  return parsed.data;
}

/**
 * The sink for this environment: Jira when `JIRA_BASE_URL` (and credentials) are set, else local.
 * @example
 * const sink = createTicketSink(process.env, store);
 */
export function createTicketSink(
  env: Record<string, string | undefined>,
  store: DocStore,
  options: { clock?: Clock; log?: Logger; retry?: Partial<RetryOptions> } = {},
): TicketSink {
  const config = jiraConfigFromEnv(env);
  if (!config) return new LocalTicketSink(store, options.clock ?? systemClock);
  (options.log ?? silentLogger).info('tickets go to Jira', {
    baseUrl: config.baseUrl,
    project: config.project,
    auth: config.auth.kind,
  });
  return new JiraTicketSink({
    config,
    log: options.log ?? silentLogger,
    ...(options.retry ? { retry: options.retry } : {}),
  });
}

export const TicketRowSchema = z.object({
  caseKey: z.string(),
  key: z.string(),
  url: z.string().optional(),
  sink: z.enum(['jira', 'local']),
  parentKey: z.string().optional(),
  /** What closeloop last knew of the ticket (open, done, reopened). */
  status: z.string(),
  caseStatus: z.string(),
  /** Local tickets only: what the ticket says. */
  summary: z.string().optional(),
  comments: z.array(z.object({ at: z.string(), text: z.string() })).optional(),
});
export type TicketRow = z.infer<typeof TicketRowSchema>;

/** What waits in the ticket outbox: how many requests, and the one waiting longest (since, tries, last error). */
export interface OutboxSummary {
  waiting: number;
  oldest?: { since: string; attempts: number; lastError?: string };
}

export async function outboxSummary(store: DocStore): Promise<OutboxSummary> {
  const entries = await store.list(COLLECTIONS.outbox);
  const first = entries[0] ? OutboxEntrySchema.safeParse(entries[0].value) : undefined;
  if (!first?.success) return { waiting: entries.length };
  const { enqueuedAt: since, attempts, lastError } = first.data;
  return { waiting: entries.length, oldest: { since, attempts, ...(lastError ? { lastError } : {}) } };
}

/** `not tried yet`, `tried once`, `tried 3 times`. */
export const triedTimes = (n: number): string =>
  n === 0 ? 'not tried yet' : n === 1 ? 'tried once' : `tried ${n} times`;

/** One line for people about what waits in the outbox, or undefined when nothing does. */
export function outboxLine(summary: OutboxSummary): string | undefined {
  if (summary.waiting === 0) return undefined;
  const o = summary.oldest;
  const why = o?.lastError ? `; last answer: ${o.lastError}` : '';
  const since = o ? ` (the oldest since ${o.since}, ${triedTimes(o.attempts)}${why})` : '';
  return `${summary.waiting} ticket requests wait in the outbox${since}: the next run sends them (closeloop tickets lists the tickets)`;
}

/**
 * The case ↔ ticket map for `closeloop tickets`, in case-key order; `pending` counts requests still in
 * the outbox and `deadLetters` those Jira refused; `outbox` says since when the oldest waits and why.
 */
export async function listTickets(
  store: DocStore,
): Promise<{ rows: TicketRow[]; pending: number; deadLetters: number; outbox: OutboxSummary }> {
  const rows: TicketRow[] = [];
  let after: string | undefined;
  for (;;) {
    const page = await store.list(COLLECTIONS.cases, { limit: 500, ...(after !== undefined ? { after } : {}) });
    const withTicket = page.flatMap((d) => {
      const c = CaseSchema.safeParse(d.value);
      return c.success && c.data.ticket ? [c.data] : [];
    });
    const locals = await store.getMany(
      LOCAL_COLLECTIONS.tickets,
      withTicket.filter((c) => c.ticket?.sink === 'local').map((c) => c.ticket?.key ?? ''),
    );
    for (const c of withTicket) {
      const t = c.ticket;
      if (!t) continue;
      const local = locals.get(t.key);
      const lt = local ? LocalTicketSchema.safeParse(local.value) : undefined;
      rows.push({
        caseKey: c.key,
        key: t.key,
        ...(t.url ? { url: t.url } : {}),
        sink: t.sink,
        ...(t.parentKey ? { parentKey: t.parentKey } : {}),
        status: lt?.success ? lt.data.status : t.status,
        caseStatus: c.status,
        ...(lt?.success
          ? { summary: lt.data.summary, comments: lt.data.comments.map((x) => ({ at: x.at, text: x.text })) }
          : {}),
      });
    }
    const last = page.at(-1);
    if (page.length < 500 || !last) break;
    after = last.id;
  }
  const outbox = await outboxSummary(store);
  const deadLetters = (await store.list(COLLECTIONS.deadletters, { prefix: 'tickets-' })).length;
  return { rows, pending: outbox.waiting, deadLetters, outbox };
}
