/**
 * The Jira storm of issue 7 in one run: 60 cases through the ticket stage and drainOutbox against the
 * HTTP Jira double while a third of the calls fail: 429 with Retry-After, 5xx before and after the
 * side effect, timeouts after the issue was created, and connection resets (the double destroys the
 * socket) before and after processing. Every case is ticketed exactly once, retries stay bounded and
 * the outbox drains.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryDocStore } from '../../shared/adapters/store/memory.js';
import { JiraTicketSink } from '../../shared/adapters/tickets/jira.js';
import { caseLabelOf } from '../../shared/core/tickets/content.js';
import type { TicketDeps } from '../../shared/core/tickets/context.js';
import { drainOutbox } from '../../shared/core/tickets/outbox.js';
import { createTicketStage } from '../../shared/core/tickets/stage.js';
import { type JiraDouble, type JiraDoubleOptions, startJiraDouble } from '../helpers/jira-double.js';
import {
  decided,
  makeCase,
  NO_GROUPING,
  policy,
  putCase,
  quietLog,
  readCase,
  recordingSleep,
  TestClock,
} from '../tickets/helpers.js';

const CASES = 60;
/**
 * Few attempts per send, so that sends give up inside the stage and the outbox (drainOutbox) must finish
 * the work; waits capped at 5 s.
 */
const RETRY = { maxAttempts: 2, baseDelayMs: 10, maxDelayMs: 5_000 };

/** The ticket stage over JiraTicketSink (jira.js) against a fresh double, with the tight retry above. */
async function harness(options: JiraDoubleOptions) {
  const double: JiraDouble = await startJiraDouble({
    users: [
      {
        accountId: '000000:00000000-0000-0000-0000-000000000001',
        emailAddress: 'alice@example.com',
        displayName: 'Alice',
      },
    ],
    ...options,
  });
  const store = new MemoryDocStore();
  const clock = new TestClock();
  const { sleep, waits } = recordingSleep();
  const sink = new JiraTicketSink({
    config: {
      baseUrl: double.url,
      auth: { kind: 'basic', email: 'closeloop@example.com', apiToken: 'test-token-0000' },
      project: 'SEC',
      timeoutMs: 300,
    },
    retry: RETRY,
    sleep,
  });
  const deps: TicketDeps = {
    store,
    sink,
    clock,
    log: quietLog,
    policy: policy({ retry: RETRY, ...NO_GROUPING }),
    sleep,
    random: () => 0.5,
  };
  return { double, store, clock, deps, stage: createTicketStage(deps), waits, close: () => double.close() };
}

let h: Awaited<ReturnType<typeof harness>> | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

/** Slow creates take this long at the double: twice the client timeout, so the client gives up first. */
const SLOW_MS = 600;

/**
 * Waits (at most 10 s) until the double has answered no call for longer than a slow create takes, so
 * every request still in flight has landed.
 */
async function quiet(double: JiraDouble): Promise<void> {
  const deadline = Date.now() + 10_000;
  let seen = -1;
  while (seen !== double.calls.length && Date.now() < deadline) {
    seen = double.calls.length;
    await new Promise((r) => setTimeout(r, SLOW_MS + 400));
  }
}

/** Runs the stage for every case concurrently, then drains the outbox an hour later until it is empty. */
async function ticketAll(harness: NonNullable<typeof h>, cases: ReturnType<typeof makeCase>[]) {
  for (const c of cases) await putCase(harness.store, c);
  await Promise.all(cases.map((c) => harness.stage.handle(decided(c))));
  const pendingAfterStage = (await harness.store.list('ticket-outbox')).length;
  let drains = 0;
  while ((await harness.store.list('ticket-outbox')).length > 0 && drains < 10) {
    // The outbox runs later (an hour on the test clock): let creates still queued at the double land first,
    // as they would long before a real drain.
    await quiet(harness.double);
    harness.clock.advance(3_600_000);
    await drainOutbox(harness.deps);
    drains++;
  }
  // Late landings (a create the client gave up on) must be counted before any assertion.
  await quiet(harness.double);
  return { drains, pendingAfterStage };
}

describe('fault injection: Jira storm with connection resets on a third of the calls', () => {
  it('tickets every case exactly once with bounded retries and drains the outbox when a third of calls fail', async () => {
    // Prepare: the calls a clean run makes, for the retry bound
    h = await harness({ seed: 11 });
    await ticketAll(
      h,
      Array.from({ length: CASES }, (_, i) => makeCase({ n: i })),
    );
    const cleanCalls = h.double.calls.length;
    await h.close();
    h = await harness({
      seed: 11,
      faults: [
        { kind: 'reset', ratio: 0.1 },
        { kind: 'reset', ratio: 0.06, when: 'after' },
        { kind: '429', ratio: 0.08, retryAfter: 1 },
        { kind: '503', ratio: 0.06, when: 'after' },
        { kind: '502', ratio: 0.04 },
        { kind: 'latency', ratio: 0.04, latencyMs: SLOW_MS, match: /^POST \/rest\/api\/3\/issue$/ },
        { kind: 'timeout', ratio: 0.1, match: /^POST \/rest\/api\/3\/issue$/, when: 'after' },
      ],
    });
    const cases = Array.from({ length: CASES }, (_, i) => makeCase({ n: i }));
    // Act
    const { drains, pendingAfterStage } = await ticketAll(h, cases);
    // Assess: a third of the calls failed, every kind of fault happened
    const calls = h.double.calls;
    const failed = calls.filter((c) => c.status === 0 || c.status >= 400);
    expect(failed.length / calls.length).toBeGreaterThanOrEqual(0.25);
    for (const kind of ['reset', 'timeout']) expect(calls.some((c) => c.fault === kind)).toBe(true);
    for (const status of [429, 502, 503]) expect(calls.some((c) => c.status === status)).toBe(true);
    // Exactly once
    expect(h.double.issues.size).toBe(CASES);
    for (const c of cases) {
      expect(h.double.withLabel(caseLabelOf(c.key))).toHaveLength(1);
      expect((await readCase(h.store, c.key)).ticket?.key).toMatch(/^SEC-\d+$/);
    }
    // Drained, nothing dead-lettered
    expect(await h.store.list('ticket-outbox')).toHaveLength(0);
    expect(await h.store.list('deadletters')).toHaveLength(0);
    expect(pendingAfterStage).toBeGreaterThan(0);
    expect(drains).toBeGreaterThanOrEqual(1);
    expect(drains).toBeLessThanOrEqual(5);
    // Bounded: Retry-After honoured, no in-call wait above the cap, at most attempts × drains per clean call
    expect(h.waits).toContain(1_000);
    expect(Math.max(...h.waits)).toBeLessThanOrEqual(RETRY.maxDelayMs);
    expect(calls.length).toBeLessThanOrEqual(cleanCalls * RETRY.maxAttempts * (drains + 1));
    expect(calls.length / CASES).toBeLessThan((cleanCalls / CASES) * 3);
  });

  for (const form of ['seconds', 'date'] as const)
    it(`waits out a Retry-After (${form}) longer than the in-call bound in the outbox, not in the call, and creates once`, async () => {
      // Prepare: the first create is refused with 429 asking for 60 s, six times the in-call bound
      // (RETRY.maxDelayMs), as seconds or as an HTTP date (which has whole seconds: 59 s to 60 s remain)
      h = await harness({
        faults: [
          {
            kind: '429',
            ratio: 1,
            times: 1,
            retryAfter: 60,
            retryAfterForm: form,
            match: /^POST \/rest\/api\/3\/issue$/,
          },
        ],
      });
      const c = makeCase({ n: 1 });
      await putCase(h.store, c);
      const start = h.clock.now().getTime();
      const creates = () => h?.double.calls.filter((x) => x.method === 'POST' && x.path === '/rest/api/3/issue') ?? [];
      // Act
      await h.stage.handle(decided(c));
      // Assess: refused once, nobody slept on it inside the call, the outbox holds it for the asked time
      expect(creates().map((x) => x.status)).toEqual([429]);
      expect(h.waits.filter((ms) => ms > 0)).toEqual([]);
      const outbox = (await h.store.list('ticket-outbox')).map((d) => d.value as { notBefore?: string });
      expect(outbox).toHaveLength(1);
      expect(Date.parse(outbox[0]?.notBefore ?? '') - start).toBeGreaterThanOrEqual(58_000);
      // Act: a drain before the time Jira asked for sends nothing; one after it creates the issue
      h.clock.advance(30_000);
      await drainOutbox(h.deps);
      const early = creates().length;
      h.clock.advance(31_000);
      await drainOutbox(h.deps);
      // Assess
      expect(early).toBe(1);
      expect(creates().map((x) => x.status)).toEqual([429, 201]);
      expect(h.double.withLabel(caseLabelOf(c.key))).toHaveLength(1);
      expect((await readCase(h.store, c.key)).ticket?.key).toMatch(/^SEC-\d+$/);
      expect(await h.store.list('ticket-outbox')).toHaveLength(0);
    });

  for (const kind of ['503', '429'] as const)
    it(`keeps every request within its attempt bound while Jira answers nothing but ${kind}`, async () => {
      // Prepare: Jira refuses every call; five cases of one owner, the stage, then three drains an hour apart
      h = await harness({ faults: [{ kind, ratio: 1, retryAfter: 1 }] });
      const cases = Array.from({ length: 5 }, (_, i) => makeCase({ n: i }));
      for (const c of cases) await putCase(h.store, c);
      const count = (from: number, route: string) =>
        (h?.double.calls.slice(from) ?? []).filter((c) => `${c.method} ${c.path}` === route).length;
      const CREATE = 'POST /rest/api/3/issue';
      const SEARCH = 'POST /rest/api/3/search/jql';
      const USERS = 'GET /rest/api/3/user/search';
      // Act
      await Promise.all(cases.map((c) => h?.stage.handle(decided(c))));
      const stage = {
        creates: count(0, CREATE),
        searches: count(0, SEARCH),
        users: count(0, USERS),
        all: h.double.calls.length,
      };
      const drains: Array<{ creates: number; searches: number; all: number }> = [];
      for (let i = 0; i < 3; i++) {
        h.clock.advance(3_600_000);
        const from = h.double.calls.length;
        await drainOutbox(h.deps);
        drains.push({ creates: count(from, CREATE), searches: count(from, SEARCH), all: h.double.calls.length - from });
      }
      // Assess: in the stage, the owner's user search (one for the five cases) is sent within the bound and,
      // failing, leaves every create waiting untried (a failed search does not say whom the issue goes to).
      // Each drain searches first, within the bound, and creates nothing while it cannot tell whether the
      // issue exists; once one search has failed through its retries the others wait untried (Jira is down
      // for them all), so a drain costs one request's bound, not every request's. Nothing else.
      const { maxAttempts } = RETRY;
      expect(stage).toEqual({ creates: 0, searches: 0, users: maxAttempts, all: maxAttempts });
      for (const d of drains) expect(d).toEqual({ creates: 0, searches: maxAttempts, all: maxAttempts });
      expect(h.double.issues.size).toBe(0);
      expect(await h.store.list('ticket-outbox')).toHaveLength(cases.length);
    });

  it('creates no second issue when a create is still in flight after the client timed out', async () => {
    // Prepare: every create takes twice the client timeout, then lands (Jira busy, not down)
    h = await harness({
      faults: [{ kind: 'latency', ratio: 1, latencyMs: SLOW_MS, match: /^POST \/rest\/api\/3\/issue$/ }],
    });
    const cases = Array.from({ length: 5 }, (_, i) => makeCase({ n: i }));
    // Act
    const { pendingAfterStage } = await ticketAll(h, cases);
    // Assess: the stage left them to the outbox instead of creating blind; the drain found each issue
    expect(pendingAfterStage).toBe(5);
    expect(h.double.issues.size).toBe(5);
    for (const c of cases) {
      expect(h.double.withLabel(caseLabelOf(c.key))).toHaveLength(1);
      expect((await readCase(h.store, c.key)).ticket?.key).toMatch(/^SEC-\d+$/);
    }
    expect(await h.store.list('ticket-outbox')).toHaveLength(0);
  });
});
