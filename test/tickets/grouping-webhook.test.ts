import { afterEach, describe, expect, it } from 'vitest';
import { LocalTicketSink } from '../../shared/adapters/tickets/local.js';
import type { DocStore } from '../../shared/core/ports.js';
import { adfToText } from '../../shared/core/tickets/adf.js';
import { drainOutbox } from '../../shared/core/tickets/outbox.js';
import {
  DELIVERY_CLOCK_SKEW_MS,
  DELIVERY_MAX_AGE_MS,
  DELIVERY_RECORD_TTL_MS,
  handleJiraWebhook,
  markDelivered,
  signJiraBody,
} from '../../shared/core/tickets/webhook.js';
import {
  decided,
  type Harness,
  jiraHarness,
  localHarness,
  makeCase,
  putCase,
  quietLog,
  readCase,
  T0,
} from './helpers.js';

let h: (Harness & { double: NonNullable<Harness['double']> }) | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const grouping = (mode: 'table' | 'subtasks') => ({
  grouping: { enabled: true, threshold: 10, windowMinutes: 60, mode, subtaskIssueType: 'Subtask', refreshSeconds: 60 },
  budget: { createsPerMinute: 10_000 },
});

describe('storm grouping', () => {
  it('puts a storm of 1,000 cases of one owner under one parent ticket with a table of resources', async () => {
    // Prepare
    h = await jiraHarness(grouping('table'));
    const cases = Array.from({ length: 1000 }, (_, i) => makeCase({ n: i }));
    for (const c of cases) await putCase(h.store, c);
    // Act
    for (const c of cases) await h.stage.handle(decided(c));
    const result = await drainOutbox(h.deps);
    // Assess: 10 individual tickets (the threshold), then one parent for the other 990
    expect(h.double.issues.size).toBe(11);
    const parent = [...h.double.issues.values()].find((i) => i.fields.labels.includes('closeloop-group'));
    expect(parent?.fields.summary).toBe(
      '[HIGH] BucketBlockPublicAccessDisabled on many resources of alice@example.com (prod)',
    );
    const table = adfToText(parent?.fields.description);
    expect(table).toContain('990 resources');
    expect(table).toContain('logs-111122223333-10 | arn:aws:s3:::logs-111122223333-10');
    expect(table).toContain('and 890 more'); // the description stays under Jira's size limit
    expect(result.groupsRefreshed).toBe(1);
    const last = await readCase(h.store, cases[999]?.key ?? '');
    expect(last.ticket).toMatchObject({ key: parent?.key, parentKey: parent?.key });
    // a storm costs far fewer calls than one ticket per case
    expect(h.double.calls.length).toBeLessThan(100);
  });

  it("raises the parent's priority and due date to its most urgent row when a more severe case joins", async () => {
    // Prepare: two dev cases get their own tickets, the third (medium, dev) starts the parent
    h = await jiraHarness({ ...grouping('table'), grouping: { ...grouping('table').grouping, threshold: 2 } });
    const dev = [0, 1, 2].map((n) => makeCase({ n, severity: 'medium', environment: 'dev' }));
    const prod = makeCase({ n: 3, severity: 'critical', environment: 'prod' });
    for (const c of [...dev, prod]) await putCase(h.store, c);
    for (const c of dev) await h.stage.handle(decided(c));
    await drainOutbox(h.deps);
    const parent = () => [...h!.double.issues.values()].find((i) => i.fields.labels.includes('closeloop-group'));
    const before = { ...parent()?.fields };
    // Act: a critical production case of the same owner and type joins the parent
    h.clock.advance(60_000);
    await h.stage.handle(decided(prod));
    await drainOutbox(h.deps);
    // Assess: the parent was created for the dev row; it now carries the production row's priority and SLA
    expect(before).toMatchObject({ priority: { name: 'Low' }, duedate: '2026-03-31' });
    expect(h.double.issues.size).toBe(3);
    expect((await readCase(h.store, prod.key)).ticket?.key).toBe(parent()?.key);
    expect(parent()?.fields).toMatchObject({ priority: { name: 'Highest' }, duedate: '2026-03-02' });
    // a person's priority on the parent stands while no more urgent row joins
    const issue = parent();
    if (issue) issue.fields.priority = { name: 'Medium' };
    const later = makeCase({ n: 4, severity: 'medium', environment: 'dev' });
    await putCase(h.store, later);
    await h.stage.handle(decided(later));
    await drainOutbox(h.deps);
    expect(adfToText(parent()?.fields.description)).toContain('logs-111122223333-4');
    expect(parent()?.fields.priority).toEqual({ name: 'Medium' });
  });

  it("keeps cases whose owner a failed lookup left unconfirmed out of the owner's parent ticket, under an unassigned one", async () => {
    // Prepare: a threshold of 2; three cases alice owns by a tag, then three whose owner, alice too, is the
    // team's default after a throttled lookup (not confirmed: the resource's own tags were never read)
    h = await jiraHarness({ ...grouping('table'), grouping: { ...grouping('table').grouping, threshold: 2 } });
    const confirmed = [0, 1, 2].map((n) => makeCase({ n }));
    const unconfirmed = [3, 4, 5].map((n) => {
      const c = makeCase({ n });
      return {
        ...c,
        enrichment: {
          ...c.enrichment,
          provenance: {
            ...c.enrichment.provenance,
            owner: { via: 'registry-team' as const, detail: 'owner is the default owner of team `payments`' },
          },
          warnings: ['live tag lookup failed: Rate exceeded'],
          complete: false,
        },
      };
    });
    for (const c of [...confirmed, ...unconfirmed]) await putCase(h.store, c);
    // Act
    for (const c of [...confirmed, ...unconfirmed]) await h.stage.handle(decided(c));
    await drainOutbox(h.deps);
    // Assess: alice's parent holds her confirmed case only; the unconfirmed ones are never assigned to her
    const ticketOf = async (c: { key: string }) => (await readCase(h!.store, c.key)).ticket?.key ?? '';
    const aliceParent = await ticketOf(confirmed[2] as { key: string });
    for (const c of unconfirmed) {
      const key = await ticketOf(c);
      expect(key).not.toBe(aliceParent);
      expect(h.double.issues.get(key)?.fields.assignee).toBeUndefined();
    }
    expect(h.double.issues.get(aliceParent)?.fields.assignee).toEqual({
      accountId: '000000:00000000-0000-0000-0000-000000000001',
    });
  });

  it('creates sub-tasks under the parent when the grouping mode is subtasks', async () => {
    // Prepare
    h = await jiraHarness(grouping('subtasks'));
    const cases = Array.from({ length: 15 }, (_, i) => makeCase({ n: i }));
    for (const c of cases) await putCase(h.store, c);
    // Act
    for (const c of cases) await h.stage.handle(decided(c));
    // Assess
    const subtasks = [...h.double.issues.values()].filter((i) => i.fields.parent);
    expect(subtasks).toHaveLength(5);
    expect(new Set(subtasks.map((s) => s.fields.parent?.key)).size).toBe(1);
    expect(subtasks[0]?.fields.issuetype.name).toBe('Subtask');
  });

  it('closes the parent only when every row is verified', async () => {
    // Prepare
    const l = localHarness({ ...grouping('table'), grouping: { ...grouping('table').grouping, threshold: 1 } });
    const [a, b, c] = [1, 2, 3].map((n) => makeCase({ n }));
    for (const x of [a, b, c]) if (x) await putCase(l.store, x);
    for (const x of [a, b, c]) if (x) await l.stage.handle(decided(x));
    const verify = (key: string) =>
      l.stage.handle({
        id: `v-${key}`,
        type: 'case.verified',
        caseKey: key,
        at: a?.updatedAt ?? '',
        verdict: 'verified',
      });
    if (!(l.sink instanceof LocalTicketSink) || !b || !c) throw new Error('setup');
    // Act
    await verify(b.key);
    const afterOne = (await l.sink.get('LOCAL-2'))?.status;
    await verify(c.key);
    // Assess
    expect(afterOne).toBe('To Do');
    expect((await l.sink.get('LOCAL-2'))?.status).toBe('Done');
    expect((await l.sink.get('LOCAL-2'))?.comments.map((x) => x.text.split(':')[0])).toEqual([
      'logs-111122223333-2',
      'logs-111122223333-3',
    ]);
  });

  it("keeps a row in its group when the row's owner changed after it joined, and closes the parent only with the last row", async () => {
    // Prepare: three unowned buckets of one type, grouped under the triage owner's parent; then the
    // second one's owner tag is added, and its case enriched again names the new owner
    const l = localHarness({ ...grouping('table'), grouping: { ...grouping('table').grouping, threshold: 1 } });
    const [a, b, c] = [1, 2, 3].map((n) => makeCase({ n, owner: 'security-triage' }));
    if (!a || !b || !c || !(l.sink instanceof LocalTicketSink)) throw new Error('setup');
    for (const x of [a, b, c]) await putCase(l.store, x);
    for (const x of [a, b, c]) await l.stage.handle(decided(x));
    const grouped = await readCase(l.store, b.key);
    await putCase(l.store, {
      ...grouped,
      enrichment: { ...grouped.enrichment, owner: 'bob@example.com', ownerEmail: 'bob@example.com' },
    });
    const verify = (key: string) =>
      l.stage.handle({ id: `v-${key}`, type: 'case.verified', caseKey: key, at: a.updatedAt, verdict: 'verified' });
    // Act
    await verify(b.key);
    const afterOne = await l.sink.get('LOCAL-2');
    await verify(c.key);
    // Assess: the row's closure is a row's (named, parent still open), not the parent's
    expect(afterOne?.status).toBe('To Do');
    expect(afterOne?.comments.map((x) => x.text.split(':')[0])).toEqual(['logs-111122223333-2']);
    expect((await l.sink.get('LOCAL-2'))?.status).toBe('Done');
  });
});

describe('group parent echoes', () => {
  it("takes Jira's echo of closeloop reopening a parent for its own, not as a person reopening every row", async () => {
    // Prepare: rows b and c under parent LOCAL-2, both verified (the parent is Done); then b regresses.
    const l = localHarness({ ...grouping('table'), grouping: { ...grouping('table').grouping, threshold: 1 } });
    const [a, b, c] = [1, 2, 3].map((n) => makeCase({ n }));
    if (!a || !b || !c || !(l.sink instanceof LocalTicketSink)) throw new Error('setup');
    for (const x of [a, b, c]) await putCase(l.store, x);
    for (const x of [a, b, c]) await l.stage.handle(decided(x));
    const verified = (key: string, verdict: 'verified' | 'failed') =>
      l.stage.handle({ id: `v-${key}-${verdict}`, type: 'case.verified', caseKey: key, at: a.updatedAt, verdict });
    await verified(b.key, 'verified');
    await verified(c.key, 'verified');
    const closed = (await l.sink.get('LOCAL-2'))?.status;
    await verified(b.key, 'failed');
    const secret = 'whsec-0000000000000000';
    const deps = { store: l.store, clock: l.clock, log: quietLog, policy: l.deps.policy, secret };
    const echo = JSON.stringify({
      webhookEvent: 'jira:issue_updated',
      timestamp: l.clock.now().getTime() - 60_000, // signed a minute ago
      user: { accountId: '000000:00000000-0000-0000-0000-0000000000b0' },
      issue: { key: 'LOCAL-2', fields: { status: { name: 'To Do', statusCategory: { key: 'new' } } } },
      changelog: { items: [{ field: 'status', fromString: 'Done', toString: 'To Do' }] },
    });
    // Act
    const res = await handleJiraWebhook(
      { headers: { 'x-hub-signature': signJiraBody(echo, secret) }, rawBody: echo },
      deps,
    );
    // Assess: the parent was closed, then reopened by closeloop; c (still verified) stays done.
    expect(closed).toBe('Done');
    expect((await l.sink.get('LOCAL-2'))?.status).not.toBe('Done');
    expect(res.events).toEqual([]);
    expect((await readCase(l.store, c.key)).ticket?.status).toBe('done');
  });
});

describe('Jira webhook', () => {
  const secret = 'whsec-0000000000000000';
  async function ticketed() {
    const l = localHarness();
    const c = makeCase();
    await putCase(l.store, c);
    await l.stage.handle(decided(c));
    const deps = { store: l.store, clock: l.clock, log: quietLog, policy: l.deps.policy, secret };
    return { l, c, deps };
  }
  /** When the deliveries below were signed: a minute before the harness's clock. */
  const SIGNED = Date.parse(T0) - 60_000;
  const body = (key: string, to: string, category: string) =>
    JSON.stringify({
      webhookEvent: 'jira:issue_updated',
      timestamp: SIGNED,
      user: { accountId: '000000:00000000-0000-0000-0000-000000000009' },
      issue: { key, fields: { status: { name: to, statusCategory: { key: category } }, summary: 'ignored text' } },
      changelog: { items: [{ field: 'status', fromString: 'To Do', toString: to }] },
    });

  it('answers 401 and changes nothing when the signature is wrong or missing', async () => {
    // Prepare
    const { l, c, deps } = await ticketed();
    const raw = body('LOCAL-1', 'Done', 'done');
    const before = await l.store.get('cases', c.key);
    // Act
    const wrong = await handleJiraWebhook(
      { headers: { 'X-Hub-Signature': signJiraBody(raw, 'another-secret-000000') }, rawBody: raw },
      deps,
    );
    const unsigned = await handleJiraWebhook({ headers: {}, rawBody: raw }, deps);
    const tampered = await handleJiraWebhook(
      { headers: { 'x-hub-signature': signJiraBody(raw, secret) }, rawBody: raw.replace('Done', 'Dune') },
      deps,
    );
    // Assess
    for (const r of [wrong, unsigned, tampered])
      expect(r).toEqual({ status: 401, body: { error: 'invalid signature' }, events: [] });
    expect(await l.store.get('cases', c.key)).toEqual(before);
  });

  it('asks for verification when a person moves the ticket to done, and ignores the echo of its own close', async () => {
    // Prepare
    const { c, deps, l } = await ticketed();
    const raw = body('LOCAL-1', 'Done', 'done');
    // Act
    const first = await handleJiraWebhook(
      { headers: { 'X-Hub-Signature': signJiraBody(raw, secret) }, rawBody: raw },
      deps,
    );
    // Jira's echo of the same move (another delivery: its own timestamp)
    const echo = raw.replace(`"timestamp":${SIGNED},`, `"timestamp":${SIGNED + 1},`);
    const again = await handleJiraWebhook(
      { headers: { 'X-Hub-Signature': signJiraBody(echo, secret) }, rawBody: echo },
      deps,
    );
    // Assess
    expect(echo).not.toBe(raw);
    expect(first.status).toBe(200);
    expect(first.events).toEqual([
      expect.objectContaining({
        type: 'case.verify-requested',
        caseKey: c.key,
        trigger: 'ticket-closed',
        actor: 'jira:000000:00000000-0000-0000-0000-000000000009',
      }),
    ]);
    expect(again.events).toEqual([]);
    expect((await readCase(l.store, c.key)).ticket?.status).toBe('done');
  });

  it('reopens the case when a person reopens a closed ticket', async () => {
    // Prepare
    const { c, deps, l } = await ticketed();
    await l.stage.handle({ id: 'v', type: 'case.verified', caseKey: c.key, at: c.updatedAt, verdict: 'verified' });
    const raw = body('LOCAL-1', 'Reopened', 'new');
    // Act
    const res = await handleJiraWebhook(
      { headers: { 'X-Hub-Signature': signJiraBody(raw, secret) }, rawBody: raw },
      deps,
    );
    // Assess
    expect(res.events).toEqual([expect.objectContaining({ type: 'case.reopened', caseKey: c.key })]);
    expect((await readCase(l.store, c.key)).ticket?.status).toBe('reopened');
    // the stage does not transition the ticket again for a reopen that came from Jira
    const ev = res.events[0];
    if (ev) await l.stage.handle(ev);
    if (!(l.sink instanceof LocalTicketSink)) throw new Error('local');
    expect((await l.sink.get('LOCAL-1'))?.status).toBe('Done');
  });

  /** Sets the case's ticket status as closeloop's own writes would (a verification closing it, a reopen). */
  const setTicketStatus = async (store: DocStore, key: string, status: 'open' | 'done' | 'reopened') => {
    const cur = await readCase(store, key);
    if (!cur.ticket) throw new Error('no ticket');
    await putCase(store, { ...cur, ticket: { ...cur.ticket, status } });
  };

  it.each([
    { change: 'closed in Jira', to: 'Done', category: 'done', before: 'open', between: 'reopened' },
    { change: 'reopened in Jira', to: 'Reopened', category: 'new', before: 'done', between: 'done' },
  ] as const)(
    'refuses a captured delivery ($change) replayed once its record has expired, the case having moved on since',
    async ({ to, category, before, between }) => {
      // Prepare: the delivery handled, its events published and the delivery recorded
      const { c, deps, l } = await ticketed();
      await setTicketStatus(l.store, c.key, before);
      const raw = body('LOCAL-1', to, category);
      const request = { headers: { 'X-Hub-Signature': signJiraBody(raw, secret) }, rawBody: raw };
      const first = await handleJiraWebhook(request, deps);
      if (first.delivery) await markDelivered(deps, first.delivery);
      // …then the case moved on (closeloop reopened or closed the ticket again), and the record's time ran out
      await setTicketStatus(l.store, c.key, between);
      l.clock.advance(DELIVERY_RECORD_TTL_MS + 60_000);
      // Act: someone who captured the signed body sends it again
      const replay = await handleJiraWebhook(request, deps);
      // Assess: acted on the first time; the record is gone, and the replay changes nothing all the same
      expect(first.events).toHaveLength(1);
      expect(await l.store.get('ticket-webhook-deliveries', first.delivery ?? '')).toBeUndefined();
      expect(replay).toEqual({ status: 200, body: { ignored: 'delivery not recent' }, events: [] });
      expect((await readCase(l.store, c.key)).ticket?.status).toBe(between);
    },
  );

  it('keeps the record of a delivery for longer than a delivery is acted on, skew and all', () => {
    expect(DELIVERY_RECORD_TTL_MS).toBeGreaterThan(DELIVERY_MAX_AGE_MS + DELIVERY_CLOCK_SKEW_MS);
  });

  it('acts on no delivery signed too long ago, too far ahead, or without its signed time', async () => {
    // Prepare
    const { c, deps, l } = await ticketed();
    const now = l.clock.now().getTime();
    const signedAt = (timestamp: number | undefined) => {
      const raw = JSON.stringify({ ...JSON.parse(body('LOCAL-1', 'Done', 'done')), timestamp });
      return { headers: { 'X-Hub-Signature': signJiraBody(raw, secret) }, rawBody: raw };
    };
    // Act
    const answers = [];
    for (const t of [now - DELIVERY_MAX_AGE_MS - 1, now + DELIVERY_CLOCK_SKEW_MS + 1, undefined]) {
      answers.push(await handleJiraWebhook(signedAt(t), deps));
    }
    const recent = await handleJiraWebhook(signedAt(now - DELIVERY_MAX_AGE_MS + 60_000), deps);
    // Assess
    for (const a of answers) expect(a).toEqual({ status: 200, body: { ignored: 'delivery not recent' }, events: [] });
    expect(recent.events).toEqual([expect.objectContaining({ type: 'case.verify-requested', caseKey: c.key })]);
  });

  it('ignores issues closeloop does not know, mapping only through its own index', async () => {
    // Prepare
    const { deps } = await ticketed();
    const raw = body('SEC-999', 'Done', 'done');
    // Act
    const res = await handleJiraWebhook(
      { headers: { 'X-Hub-Signature': signJiraBody(raw, secret) }, rawBody: raw },
      deps,
    );
    // Assess
    expect(res).toEqual({ status: 200, body: { ignored: 'not a closeloop ticket' }, events: [] });
  });
});
