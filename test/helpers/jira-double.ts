/**
 * A Jira Cloud REST v3 double over real HTTP on 127.0.0.1 (node:http), speaking the paths jira.js 5
 * `Version3Client` calls: create issue, search/jql (GET and POST), comment (add with properties, list,
 * list by ids with `expand=properties`), transitions (GET, POST),
 * issue properties (PUT, GET), user search, get issue, edit issue, assign issue. Everything is kept in memory and
 * every call is counted. Faults are injected per path by ratio, deterministically from a seed:
 * 401 and 403 (closeloop's own account refused), 429 (with Retry-After and X-RateLimit-Reset), 408, 425, 5xx (a 503 with Retry-After when asked), timeouts (no
 * answer), connection resets, latency, an answer dribbled out slowly,
 * either before the request is processed or after (the issue exists, the answer is an error).
 *
 * Only the JQL closeloop needs is understood: `labels = "<label>"` with an optional ORDER BY. Anything
 * else is a 400, as a JQL syntax error is on Jira, and every JQL string received is recorded.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

export interface Fault {
  /** Matched against `METHOD /path` (e.g. `POST /rest/api/3/issue`); omitted → every call. */
  match?: RegExp;
  /** Share of matching calls that get the fault, in [0, 1]. */
  ratio: number;
  kind: '401' | '403' | '408' | '425' | '429' | '500' | '502' | '503' | 'timeout' | 'reset' | 'latency' | 'trickle';
  /** Seconds in Retry-After for 429 (default 1); on a 503 only when given. */
  retryAfter?: number;
  /**
   * How a 429 says when to come back: `seconds` (default) sends Retry-After in seconds with Jira's
   * X-RateLimit-Reset; `date` sends only Retry-After as an HTTP date (RFC 9110), as a gateway in front of
   * Jira may, so nothing but the date tells the client how long to wait.
   */
  retryAfterForm?: 'seconds' | 'date';
  /** `latency`: the delay before answering (default 50). `trickle`: how long the answer is dribbled out (default 3000). */
  latencyMs?: number;
  /** `after`: process the request, then answer with the fault (the side effect happened). Default before. */
  when?: 'before' | 'after';
  /** How many calls get this fault at most (then it is spent); omitted → no limit. */
  times?: number;
  /** How many matching calls pass untouched before the fault starts (e.g. a read before the write it follows). */
  skip?: number;
}

export interface DoubleUser {
  accountId: string;
  emailAddress?: string;
  displayName: string;
  active?: boolean;
  /** False: the user lacks the Assignable User permission (Jira refuses them as an assignee, 400). */
  assignable?: boolean;
}

export interface DoubleIssue {
  id: string;
  key: string;
  fields: {
    summary: string;
    description: unknown;
    labels: string[];
    project: { key: string };
    issuetype: { name: string };
    priority?: { name: string };
    duedate?: string;
    assignee?: { accountId: string };
    components: Array<{ name: string }>;
    parent?: { key: string };
    status: { name: StatusName; statusCategory: { key: 'new' | 'indeterminate' | 'done' } };
  };
  properties: Record<string, unknown>;
  /** Comments, oldest first; `properties` as given on create (`key` → value). */
  comments: Array<{ id: string; body: unknown; properties?: Record<string, unknown> }>;
  /** Transition names applied, in order. */
  history: string[];
}

export interface JiraDoubleOptions {
  seed?: number;
  faults?: Fault[];
  users?: DoubleUser[];
  /** Projects that exist (default SEC, OPS, APP). */
  projects?: string[];
  priorities?: string[];
  /** Expected Authorization header value; omitted → any Basic/Bearer header is accepted. */
  authorization?: string;
  /** Transitions offered from a status, in place of the default workflow's (e.g. one offered from its own target). */
  workflow?: Partial<Record<StatusName, Array<{ id: string; name: string; to: StatusName }>>>;
  /** False: GET transitions leaves out each transition's `to` (a client cannot tell where one leads). */
  transitionTargets?: boolean;
}

export interface CallRecord {
  method: string;
  path: string;
  status: number;
  fault?: Fault['kind'];
}

export const STATUSES = {
  'To Do': 'new',
  'In Progress': 'indeterminate',
  Done: 'done',
  Reopened: 'new',
} as const;
export type StatusName = keyof typeof STATUSES;

/** The workflow: transitions available from each status. */
const WORKFLOW: Record<StatusName, Array<{ id: string; name: string; to: StatusName }>> = {
  'To Do': [
    { id: '21', name: 'Start Progress', to: 'In Progress' },
    { id: '31', name: 'Done', to: 'Done' },
  ],
  'In Progress': [
    { id: '11', name: 'Stop Progress', to: 'To Do' },
    { id: '31', name: 'Done', to: 'Done' },
  ],
  Done: [{ id: '41', name: 'Reopen', to: 'Reopened' }],
  Reopened: [
    { id: '21', name: 'Start Progress', to: 'In Progress' },
    { id: '31', name: 'Done', to: 'Done' },
  ],
};

/** mulberry32: small, seeded, good enough to pick faults deterministically. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class JiraDouble {
  readonly issues = new Map<string, DoubleIssue>();
  readonly calls: CallRecord[] = [];
  readonly jqls: string[] = [];
  faults: Fault[];
  users: DoubleUser[];
  private readonly random: () => number;
  private readonly projects: Set<string>;
  private readonly priorities: Set<string>;
  private readonly counters = new Map<string, number>();
  /** Comment ids are unique across issues, as on Jira (`/comment/list` finds them by id alone). */
  private commentSeq = 10_000;
  private readonly sockets = new Set<Socket>();
  private server: Server | undefined;
  url = '';

  constructor(private readonly options: JiraDoubleOptions = {}) {
    this.random = prng(options.seed ?? 42);
    this.faults = options.faults ?? [];
    this.users = options.users ?? [];
    this.projects = new Set(options.projects ?? ['SEC', 'OPS', 'APP']);
    this.priorities = new Set(options.priorities ?? ['Highest', 'High', 'Medium', 'Low', 'Lowest']);
  }

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((e: unknown) => {
        if (!res.headersSent) this.send(res, req, 500, { errorMessages: [String(e)] });
      });
    });
    this.server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    const address = this.server.address();
    if (!address || typeof address === 'string') throw new Error('the double is not listening on TCP');
    this.url = `http://127.0.0.1:${address.port}`;
    return this;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  /** Calls answered successfully (2xx), optionally only those matching. */
  count(match?: RegExp, onlyOk = true): number {
    return this.calls.filter(
      (c) => (!onlyOk || (c.status >= 200 && c.status < 300)) && (!match || match.test(`${c.method} ${c.path}`)),
    ).length;
  }

  /** Issues carrying a label. */
  withLabel(label: string): DoubleIssue[] {
    return [...this.issues.values()].filter((i) => i.fields.labels.includes(label));
  }

  /** Moves an issue as a person would (no call recorded). */
  setStatus(key: string, status: StatusName): void {
    const issue = this.issues.get(key);
    if (issue) issue.fields.status = { name: status, statusCategory: { key: STATUSES[status] } };
  }

  private readonly spent = new Map<Fault, number>();
  private readonly skipped = new Map<Fault, number>();

  private pickFault(route: string): Fault | undefined {
    for (const f of this.faults) {
      if (f.match && !f.match.test(route)) continue;
      const passed = this.skipped.get(f) ?? 0;
      if (f.skip !== undefined && passed < f.skip) {
        this.skipped.set(f, passed + 1);
        continue;
      }
      const used = this.spent.get(f) ?? 0;
      if (f.times !== undefined && used >= f.times) continue;
      if (this.random() < f.ratio) {
        this.spent.set(f, used + 1);
        return f;
      }
    }
    return undefined;
  }

  private send(
    res: ServerResponse,
    req: IncomingMessage,
    status: number,
    body?: unknown,
    headers: Record<string, string> = {},
  ): void {
    this.calls.push({ method: req.method ?? '', path: (req.url ?? '').split('?')[0] ?? '', status });
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(body === undefined ? '' : JSON.stringify(body));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(Buffer.from(c));
    const raw = Buffer.concat(chunks).toString('utf8');
    const url = new URL(req.url ?? '/', 'http://double');
    const route = `${req.method} ${url.pathname}`;
    const auth = req.headers.authorization;
    if (
      !auth ||
      !/^(Basic|Bearer) \S+$/.test(auth) ||
      (this.options.authorization && auth !== this.options.authorization)
    ) {
      this.send(res, req, 401, { errorMessages: ['You are not authenticated.'] });
      return;
    }
    const fault = this.pickFault(route);
    if (fault?.kind === 'latency') await new Promise((r) => setTimeout(r, fault.latencyMs ?? 50));
    if (fault && fault.kind !== 'latency' && fault.kind !== 'trickle' && fault.when !== 'after') {
      this.fail(req, res, fault);
      return;
    }
    const body: unknown = raw ? JSON.parse(raw) : undefined;
    const out = this.route(req.method ?? 'GET', url, body);
    if (fault?.kind === 'trickle') {
      await this.trickle(req, res, out, fault.latencyMs ?? 3_000);
      return;
    }
    if (fault && fault.kind !== 'latency' && fault.when === 'after') {
      this.fail(req, res, fault);
      return;
    }
    this.send(res, req, out.status, out.body);
  }

  /**
   * Answers after processing, but dribbles the answer: its headers at once, then a space every 100 ms for
   * `ms`, then the body (JSON allows the leading white space). The connection is never idle for long.
   */
  private async trickle(
    req: IncomingMessage,
    res: ServerResponse,
    out: { status: number; body?: unknown },
    ms: number,
  ): Promise<void> {
    this.calls.push({
      method: req.method ?? '',
      path: (req.url ?? '').split('?')[0] ?? '',
      status: out.status,
      fault: 'trickle',
    });
    res.writeHead(out.status, { 'content-type': 'application/json' });
    for (let waited = 0; waited < ms && !res.destroyed; waited += 100) {
      res.write(' ');
      await new Promise((r) => setTimeout(r, 100));
    }
    if (!res.destroyed) res.end(out.body === undefined ? '' : JSON.stringify(out.body));
  }

  private fail(req: IncomingMessage, res: ServerResponse, fault: Fault): void {
    const path = (req.url ?? '').split('?')[0] ?? '';
    if (fault.kind === 'timeout') {
      this.calls.push({ method: req.method ?? '', path, status: 0, fault: 'timeout' });
      return; // never answer; the client's timeout fires
    }
    if (fault.kind === 'reset') {
      this.calls.push({ method: req.method ?? '', path, status: 0, fault: 'reset' });
      req.socket.destroy();
      return;
    }
    if (fault.kind === '401' || fault.kind === '403') {
      // A refusal of closeloop's own account: a token Jira does not accept, or a permission it lacks.
      this.send(res, req, Number(fault.kind), {
        errorMessages: [fault.kind === '401' ? 'You are not authenticated.' : 'You do not have permission to do this.'],
      });
      return;
    }
    if (fault.kind === '429') {
      const secs = fault.retryAfter ?? 1;
      const at = new Date(Date.now() + secs * 1000);
      this.send(
        res,
        req,
        429,
        { errorMessages: ['Rate limit exceeded.'] },
        fault.retryAfterForm === 'date'
          ? { 'retry-after': at.toUTCString() }
          : {
              'retry-after': String(secs),
              'x-ratelimit-reset': at.toISOString(),
              'x-ratelimit-remaining': '0',
            },
      );
      return;
    }
    const retryAfter = fault.kind === '503' && fault.retryAfter !== undefined ? String(fault.retryAfter) : undefined;
    this.send(
      res,
      req,
      Number(fault.kind),
      { errorMessages: ['Internal server error'] },
      retryAfter !== undefined ? { 'retry-after': retryAfter } : {},
    );
  }

  private route(method: string, url: URL, body: unknown): { status: number; body?: unknown } {
    const p = url.pathname;
    const commentPath = /^\/rest\/api\/3\/issue\/([^/]+)\/comment$/.exec(p);
    const transitionsPath = /^\/rest\/api\/3\/issue\/([^/]+)\/transitions$/.exec(p);
    const propertyPath = /^\/rest\/api\/3\/issue\/([^/]+)\/properties\/([^/]+)$/.exec(p);
    const issuePath = /^\/rest\/api\/3\/issue\/([^/]+)$/.exec(p);
    const assigneePath = /^\/rest\/api\/3\/issue\/([^/]+)\/assignee$/.exec(p);
    if (method === 'POST' && p === '/rest/api/3/issue') return this.create(body);
    if (p === '/rest/api/3/search/jql' && (method === 'GET' || method === 'POST')) {
      const jql = method === 'GET' ? (url.searchParams.get('jql') ?? '') : String(field(body, 'jql') ?? '');
      return this.search(jql);
    }
    if (method === 'GET' && p === '/rest/api/3/user/search') {
      const q = (url.searchParams.get('query') ?? '').toLowerCase();
      return {
        status: 200,
        body: this.users.filter(
          (u) => q && (u.emailAddress?.toLowerCase().includes(q) || u.displayName.toLowerCase().includes(q)),
        ),
      };
    }
    if (assigneePath && method === 'PUT') {
      // Jira: `accountId` null unassigns; an unknown, inactive or unassignable account is a 400 naming the
      // assignee field, as on create.
      const issue = this.issues.get(decodeURIComponent(assigneePath[1] ?? ''));
      if (!issue) return notFound();
      const accountId = field(body, 'accountId');
      if (accountId === null) delete issue.fields.assignee;
      else if (
        typeof accountId === 'string' &&
        this.users.some((u) => u.accountId === accountId && u.active !== false && u.assignable !== false)
      )
        issue.fields.assignee = { accountId };
      else
        return {
          status: 400,
          body: { errorMessages: [], errors: { assignee: `User '${String(accountId)}' cannot be assigned issues.` } },
        };
      return { status: 204 };
    }
    if (commentPath && method === 'POST') {
      const issue = this.issues.get(decodeURIComponent(commentPath[1] ?? ''));
      if (!issue) return notFound();
      const properties: Record<string, unknown> = {};
      for (const pr of arrayOf(field(body, 'properties'))) properties[String(field(pr, 'key'))] = field(pr, 'value');
      const c = {
        id: String(++this.commentSeq),
        body: field(body, 'body'),
        ...(Object.keys(properties).length > 0 ? { properties } : {}),
      };
      issue.comments.push(c);
      return { status: 201, body: { id: c.id, body: c.body } };
    }
    if (commentPath && method === 'GET') {
      // Jira's page of comments (`orderBy` created / -created, `startAt`, `maxResults`); properties only
      // through `/comment/list` with `expand=properties`, as documented.
      const issue = this.issues.get(decodeURIComponent(commentPath[1] ?? ''));
      if (!issue) return notFound();
      const ordered = url.searchParams.get('orderBy') === '-created' ? [...issue.comments].reverse() : issue.comments;
      const startAt = Number(url.searchParams.get('startAt') ?? 0);
      const maxResults = Number(url.searchParams.get('maxResults') ?? 50);
      const page = ordered.slice(startAt, startAt + maxResults).map((c) => ({ id: c.id, body: c.body }));
      return { status: 200, body: { startAt, maxResults, total: issue.comments.length, comments: page } };
    }
    if (method === 'POST' && p === '/rest/api/3/comment/list') {
      const ids = new Set(arrayOf(field(body, 'ids')).map(String));
      const expand = (url.searchParams.get('expand') ?? '').split(',');
      const values = [...this.issues.values()]
        .flatMap((i) => i.comments)
        .filter((c) => ids.has(c.id))
        .map((c) => ({
          id: c.id,
          body: c.body,
          ...(expand.includes('properties')
            ? { properties: Object.entries(c.properties ?? {}).map(([key, value]) => ({ key, value })) }
            : {}),
        }));
      return { status: 200, body: { startAt: 0, maxResults: 1000, total: values.length, isLast: true, values } };
    }
    if (transitionsPath) {
      const issue = this.issues.get(decodeURIComponent(transitionsPath[1] ?? ''));
      if (!issue) return notFound();
      const available = this.options.workflow?.[issue.fields.status.name] ?? WORKFLOW[issue.fields.status.name];
      if (method === 'GET') {
        return {
          status: 200,
          body: {
            transitions: available.map((t) => ({
              id: t.id,
              name: t.name,
              ...(this.options.transitionTargets === false
                ? {}
                : { to: { name: t.to, statusCategory: { key: STATUSES[t.to] } } }),
            })),
          },
        };
      }
      const id = String(field(field(body, 'transition'), 'id') ?? '');
      const t = available.find((x) => x.id === id);
      if (!t)
        return {
          status: 400,
          body: { errorMessages: [`Transition id '${id}' is not valid for this issue.`], errors: {} },
        };
      this.setStatus(issue.key, t.to);
      issue.history.push(t.name);
      const comments = field(field(body, 'update'), 'comment');
      if (Array.isArray(comments))
        for (const c of comments)
          issue.comments.push({ id: String(++this.commentSeq), body: field(field(c, 'add'), 'body') });
      return { status: 204 };
    }
    if (propertyPath) {
      const issue = this.issues.get(decodeURIComponent(propertyPath[1] ?? ''));
      if (!issue) return notFound();
      const key = decodeURIComponent(propertyPath[2] ?? '');
      if (method === 'PUT') {
        const existed = key in issue.properties;
        issue.properties[key] = body;
        return { status: existed ? 200 : 201 };
      }
      return key in issue.properties ? { status: 200, body: { key, value: issue.properties[key] } } : notFound();
    }
    if (issuePath) {
      const issue = this.issues.get(decodeURIComponent(issuePath[1] ?? ''));
      if (!issue) return notFound();
      if (method === 'GET')
        return {
          status: 200,
          body: { id: issue.id, key: issue.key, fields: issue.fields, properties: issue.properties },
        };
      if (method === 'PUT') {
        const fields = field(body, 'fields');
        const description = field(fields, 'description');
        if (description !== undefined) issue.fields.description = description;
        const priority = field(field(fields, 'priority'), 'name');
        if (priority !== undefined) {
          if (!this.priorities.has(String(priority)))
            return {
              status: 400,
              body: { errorMessages: [], errors: { priority: `Priority name '${String(priority)}' is not valid` } },
            };
          issue.fields.priority = { name: String(priority) };
        }
        const due = field(fields, 'duedate');
        if (typeof due === 'string') issue.fields.duedate = due;
        const labels = field(field(body, 'update'), 'labels');
        if (Array.isArray(labels)) {
          for (const op of labels) {
            const add = field(op, 'add');
            if (typeof add === 'string' && !issue.fields.labels.includes(add)) issue.fields.labels.push(add);
            const remove = field(op, 'remove');
            if (typeof remove === 'string') issue.fields.labels = issue.fields.labels.filter((l) => l !== remove);
          }
        }
        return { status: 204 };
      }
    }
    return { status: 404, body: { errorMessages: [`No route ${method} ${p}`] } };
  }

  private create(body: unknown): { status: number; body?: unknown } {
    const f = field(body, 'fields');
    const project = String(field(field(f, 'project'), 'key') ?? '');
    const errors: Record<string, string> = {};
    if (!this.projects.has(project)) errors.project = 'valid project is required';
    const summary = field(f, 'summary');
    if (typeof summary !== 'string' || summary.length === 0)
      errors.summary = 'You must specify a summary of the issue.';
    else if (summary.length > 255) errors.summary = 'Summary must be less than 255 characters.';
    const priority = field(field(f, 'priority'), 'name');
    if (priority !== undefined && !this.priorities.has(String(priority)))
      errors.priority = `Priority name '${String(priority)}' is not valid`;
    const labels = field(f, 'labels');
    if (Array.isArray(labels) && labels.some((l) => typeof l !== 'string' || /\s/.test(l)))
      errors.labels = 'Labels cannot contain spaces';
    const parent = field(field(f, 'parent'), 'key');
    if (parent !== undefined && !this.issues.has(String(parent))) errors.parent = 'Parent issue does not exist';
    const wanted = field(field(f, 'assignee'), 'accountId');
    if (
      typeof wanted === 'string' &&
      !this.users.some((u) => u.accountId === wanted && u.active !== false && u.assignable !== false)
    )
      errors.assignee = `User '${wanted}' cannot be assigned issues.`;
    if (Object.keys(errors).length > 0) return { status: 400, body: { errorMessages: [], errors } };
    const n = (this.counters.get(project) ?? 0) + 1;
    this.counters.set(project, n);
    const key = `${project}-${n}`;
    const properties: Record<string, unknown> = {};
    const props = field(body, 'properties');
    if (Array.isArray(props)) for (const pr of props) properties[String(field(pr, 'key'))] = field(pr, 'value');
    const assignee = field(field(f, 'assignee'), 'accountId');
    const due = field(f, 'duedate');
    const issue: DoubleIssue = {
      id: String(10_000 + this.issues.size),
      key,
      fields: {
        summary: String(summary),
        description: field(f, 'description'),
        labels: Array.isArray(labels) ? labels.map(String) : [],
        project: { key: project },
        issuetype: { name: String(field(field(f, 'issuetype'), 'name') ?? 'Task') },
        ...(priority !== undefined ? { priority: { name: String(priority) } } : {}),
        ...(typeof due === 'string' ? { duedate: due } : {}),
        ...(typeof assignee === 'string' ? { assignee: { accountId: assignee } } : {}),
        components: arrayOf(field(f, 'components')).map((c) => ({ name: String(field(c, 'name')) })),
        ...(parent !== undefined ? { parent: { key: String(parent) } } : {}),
        status: { name: 'To Do', statusCategory: { key: 'new' } },
      },
      properties,
      comments: [],
      history: [],
    };
    this.issues.set(key, issue);
    return { status: 201, body: { id: issue.id, key, self: `${this.url}/rest/api/3/issue/${issue.id}` } };
  }

  private search(jql: string): { status: number; body?: unknown } {
    this.jqls.push(jql);
    const m = /^labels\s*=\s*"([A-Za-z0-9_.:-]+)"(\s+ORDER\s+BY\s+created\s+(ASC|DESC))?\s*$/i.exec(jql);
    if (!m?.[1])
      return {
        status: 400,
        body: { errorMessages: [`The JQL query is not supported by the double: ${jql}`], errors: {} },
      };
    const found = this.withLabel(m[1]);
    return {
      status: 200,
      body: {
        issues: found.map((i) => ({
          id: i.id,
          key: i.key,
          fields: { labels: i.fields.labels, parent: i.fields.parent },
        })),
      },
    };
  }
}

const notFound = () => ({
  status: 404,
  body: { errorMessages: ['Issue does not exist or you do not have permission to see it.'], errors: {} },
});

function field(v: unknown, k: string): unknown {
  if (v === null || typeof v !== 'object' || !(k in v)) return undefined;
  const value: unknown = Reflect.get(v, k);
  return value;
}

const arrayOf = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

/** Starts a double; remember to `close()` it (afterAll). */
export async function startJiraDouble(options: JiraDoubleOptions = {}): Promise<JiraDouble> {
  return new JiraDouble(options).start();
}
