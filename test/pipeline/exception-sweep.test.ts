import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../shared/adapters/config/load.js';
import { MemoryDocStore } from '../../shared/adapters/store/memory.js';
import type { Config } from '../../shared/core/config.js';
import { type Case, CaseSchema } from '../../shared/core/model/case.js';
import type { PipelineEvent } from '../../shared/core/model/events.js';
import { createEnricher } from '../../shared/core/pipeline/enrich.js';
import { COLLECTIONS, createIngest } from '../../shared/core/pipeline/ingest.js';
import type { RiskException } from '../../shared/core/policy/exceptions.js';
import { type DocStore, type EventBus, type PutOptions, silentLogger } from '../../shared/core/ports.js';
import { loadFixture } from '../helpers/fixtures.js';

/** Three open cases on three resources. */
const FIXTURES = [
  'guardduty/instance-crypto.eventbridge.json',
  'securityhub/iam.3.eventbridge.json',
  'guardduty/rds.eventbridge.json',
];

/** A clock the test moves; `tick` ms are added at every reading (a run whose steps take time). */
class TestClock {
  tick = 0;
  constructor(private t: number) {}
  now() {
    const d = new Date(this.t);
    this.t += this.tick;
    return d;
  }
  set(iso: string) {
    this.t = Date.parse(iso);
  }
}

/** A process that dies where it stands: `die()` makes the run in progress stop, and `dead` resolves. */
function mortal() {
  let die: () => void = () => {};
  const dead = new Promise<void>((resolve) => {
    die = resolve;
  });
  return { dead, die, never: () => new Promise<never>(() => {}) };
}

/** A store whose next write of `stuck` (a case) never returns: the process dies just before that write. */
class DyingStore extends MemoryDocStore {
  stuck: string | undefined;
  onStuck: () => void = () => {};
  override async put(collection: string, id: string, value: unknown, options?: PutOptions) {
    if (collection === COLLECTIONS.cases && id === this.stuck) {
      this.stuck = undefined;
      this.onStuck();
      return new Promise<never>(() => {});
    }
    return super.put(collection, id, value, options);
  }
}

/** A dying store where another run writes `raced` (the same value) just before this run's conditional write of it. */
class RacedStore extends DyingStore {
  raced: string | undefined;
  override async put(collection: string, id: string, value: unknown, options?: PutOptions) {
    if (collection === COLLECTIONS.cases && id === this.raced && options?.expectVersion !== undefined) {
      this.raced = undefined;
      await super.put(collection, id, value);
    }
    return super.put(collection, id, value, options);
  }
}

describe('exception sweep', () => {
  let config: Config;
  let clock: TestClock;
  let exceptions: RiskException[];
  beforeEach(async () => {
    config = await loadConfig(join(import.meta.dirname, '../../examples/config'));
    clock = new TestClock(Date.parse('2026-11-23T12:00:00Z'));
    exceptions = [];
  });

  const sweeper = (store: DocStore, bus: EventBus) =>
    createIngest({
      store,
      bus,
      enricher: createEnricher({ registry: config.registry, policy: config.policy.enrichment, log: silentLogger }),
      config,
      exceptions: async () => exceptions,
      clock,
      log: silentLogger,
    });
  const recorder = (published: PipelineEvent[]): EventBus => ({
    publish: async (events) => void published.push(...events),
  });
  const caseOf = async (store: DocStore, key: string): Promise<Case> =>
    CaseSchema.parse((await store.get(COLLECTIONS.cases, key))?.value);
  const exceptionFor = (id: string, c: Case, expires: string): RiskException => ({
    id,
    owner: 'ciso@example.com',
    justification: 'accepted for the test',
    scope: { resources: [c.resourceId] },
    expires,
  });

  /** The three cases (in id order: the order the sweep takes them), each suppressed by an exception of its own. */
  async function suppressedCases(store: DocStore, expires = '2026-11-30'): Promise<Case[]> {
    const ingest = sweeper(store, recorder([]));
    await ingest.ingest(FIXTURES.map((p) => ({ input: p, value: loadFixture(p) })));
    const cases = (await store.list(COLLECTIONS.cases)).map((d) => CaseSchema.parse(d.value));
    exceptions = cases.map((c, i) => exceptionFor(`EXC-${i + 1}`, c, expires));
    await ingest.sweepExceptions();
    return Promise.all(cases.map((c) => caseOf(store, c.key)));
  }

  /** The owner extends an exception past the end of the test. */
  const extend = (id: string) => {
    exceptions = exceptions.map((e) => (e.id === id ? { ...e, expires: '2027-06-30' } : e));
  };
  const reopens = (events: readonly PipelineEvent[]) => events.filter((e) => e.type === 'case.reopened');

  /**
   * The first two cases' exceptions have expired (the third's is extended); a sweep dies just before writing
   * the second case: the first case written, its events not yet published, the second's kept.
   */
  async function killedBeforeSecondCaseWrite() {
    const store = new DyingStore();
    const [first, second] = await suppressedCases(store);
    if (!first || !second) throw new Error('two cases expected');
    extend('EXC-3');
    clock.set('2026-12-02T12:00:00Z');
    const { dead, die } = mortal();
    store.stuck = second.key;
    store.onStuck = die;
    const before: PipelineEvent[] = [];
    await Promise.race([dead, sweeper(store, recorder(before)).sweepExceptions()]);
    return { store, first, second, before };
  }

  it('publishes in the next run, once and under the same ids, the events of a run whose publish failed', async () => {
    // Prepare: three suppressed cases whose exceptions have expired; the bus refuses every publish
    const store = new MemoryDocStore();
    const cases = await suppressedCases(store);
    clock.set('2026-12-02T12:00:00Z');
    const refused: PipelineEvent[] = [];
    const refusing: EventBus = {
      publish: async (events) => {
        refused.push(...events);
        throw new Error('PutEvents: throttled');
      },
    };
    const published: PipelineEvent[] = [];
    // Act: the failing run, then the next one an hour later, and the one after it
    const failed = await sweeper(store, refusing)
      .sweepExceptions()
      .then(
        () => 'resolved',
        (e: unknown) => String(e),
      );
    const afterFailed = await Promise.all(cases.map((c) => caseOf(store, c.key)));
    clock.set('2026-12-02T13:00:00Z');
    const next = await sweeper(store, recorder(published)).sweepExceptions();
    clock.set('2026-12-02T14:00:00Z');
    await sweeper(store, recorder(published)).sweepExceptions();
    // Assess: the cases the failed run wrote are announced by the next one, every event once, same ids
    expect(failed).toContain('throttled');
    const written = afterFailed.filter((c) => c.status === 'reopened').map((c) => c.key);
    expect(written.length).toBeGreaterThanOrEqual(1);
    expect(refused.map((e) => e.caseKey)).toEqual(expect.arrayContaining(written));
    // (each case once; kept entries of one run go out in id order, not case order)
    expect(
      reopens(published)
        .map((e) => e.caseKey)
        .sort(),
    ).toEqual(cases.map((c) => c.key).sort());
    expect(published.map((e) => e.id)).toEqual(expect.arrayContaining(refused.map((e) => e.id)));
    expect(new Set(published.map((e) => e.id)).size).toBe(published.length);
    expect(next.republished).toBeGreaterThan(0);
    for (const c of cases) expect(await caseOf(store, c.key)).toMatchObject({ status: 'reopened', reopenCount: 1 });
  });

  it('publishes in the next run, under the same ids, what a run killed between its case writes and its publish owed', async () => {
    // Prepare: three suppressed cases whose exceptions have expired; the process dies in its first publish
    const store = new MemoryDocStore();
    const cases = await suppressedCases(store);
    clock.set('2026-12-02T12:00:00Z');
    const { dead, die, never } = mortal();
    const lost: PipelineEvent[] = [];
    const dying: EventBus = {
      publish: async (events) => {
        lost.push(...events);
        die();
        await never();
      },
    };
    await Promise.race([dead, sweeper(store, dying).sweepExceptions()]);
    const stranded = await Promise.all(cases.map((c) => caseOf(store, c.key)));
    const published: PipelineEvent[] = [];
    // Act: a fresh process sweeps the same store an hour later, and again an hour after that
    clock.set('2026-12-02T13:00:00Z');
    await sweeper(store, recorder(published)).sweepExceptions();
    clock.set('2026-12-02T14:00:00Z');
    await sweeper(store, recorder(published)).sweepExceptions();
    // Assess: what the dead run wrote (and was publishing) is announced once, under the ids it had
    const written = stranded.filter((c) => c.status === 'reopened').map((c) => c.key);
    expect(written.length).toBeGreaterThanOrEqual(1);
    expect(reopens(lost).map((e) => e.caseKey)).toEqual(written);
    expect(published.map((e) => e.id)).toEqual(expect.arrayContaining(lost.map((e) => e.id)));
    // (each case once; kept entries of one run go out in id order, not case order)
    expect(
      reopens(published)
        .map((e) => e.caseKey)
        .sort(),
    ).toEqual(cases.map((c) => c.key).sort());
    expect(new Set(published.map((e) => e.id)).size).toBe(published.length);
  });

  it('does not announce the reopen of a case a killed run kept but never wrote, its exception extended since', async () => {
    // Prepare: the first two cases' exceptions have expired; the process dies just before writing the second
    // case (its events kept, the first case written, its events not yet published)
    const { store, first, second, before } = await killedBeforeSecondCaseWrite();
    // The owner extends the second exception before the next run
    extend('EXC-2');
    const published: PipelineEvent[] = [];
    // Act
    clock.set('2026-12-02T13:00:00Z');
    const next = await sweeper(store, recorder(published)).sweepExceptions();
    // Assess: the first case's reopen is announced; the second stays suppressed, nothing announces its reopen,
    // and it names the exception's new expiry (announced as such)
    expect(await caseOf(store, first.key)).toMatchObject({ status: 'reopened' });
    expect(await caseOf(store, second.key)).toMatchObject({
      status: 'suppressed',
      exception: { id: 'EXC-2', expires: '2027-06-30' },
    });
    expect(reopens([...before, ...published]).map((e) => e.caseKey)).toEqual([first.key]);
    expect(published.filter((e) => e.caseKey === second.key).map((e) => e.type)).toEqual([
      'case.decided',
      'case.exception',
    ]);
    expect(next.reopened).toBe(0);
  });

  it('writes the case a killed run kept but never wrote before announcing its reopen', async () => {
    // Prepare: as above, the exceptions left as they are
    const { store, first, second, before } = await killedBeforeSecondCaseWrite();
    // What each case says when its events go out
    const published: Array<{ event: PipelineEvent; status: string }> = [];
    const checking: EventBus = {
      publish: async (events) => {
        for (const event of events) published.push({ event, status: (await caseOf(store, event.caseKey)).status });
      },
    };
    // Act: the next run, and the one after it
    clock.set('2026-12-02T13:00:00Z');
    await sweeper(store, checking).sweepExceptions();
    clock.set('2026-12-02T14:00:00Z');
    await sweeper(store, checking).sweepExceptions();
    // Assess: both reopens announced once, each after its case was written reopened
    const announced = reopens([...before, ...published.map((p) => p.event)]);
    expect(announced.map((e) => e.caseKey).sort()).toEqual([first.key, second.key].sort());
    expect(published.filter((p) => p.event.type === 'case.reopened').map((p) => p.status)).toEqual([
      'reopened',
      'reopened',
    ]);
    expect(await caseOf(store, second.key)).toMatchObject({ status: 'reopened', reopenCount: 1 });
  });

  it('leaves the cases it did not reach within its time budget to the next run, which starts where it stopped', async () => {
    // Prepare: only the last case (in the order the sweep takes them) has an expired exception; every reading
    // of the clock takes a second, and the budget lets a run re-evaluate two cases
    const store = new MemoryDocStore();
    const cases = await suppressedCases(store, '2027-06-30');
    const last = cases.at(-1) as Case;
    exceptions = exceptions.map((e, i) => (i === cases.length - 1 ? { ...e, expires: '2026-11-30' } : e));
    clock.set('2026-12-02T12:00:00Z');
    clock.tick = 1000;
    const published: PipelineEvent[] = [];
    // Act: two runs with the same budget
    // The sweep reads the clock when it starts, then before each case: three readings fit after this one.
    const budget = () => clock.now().getTime() + 4000;
    const first = await sweeper(store, recorder(published)).sweepExceptions({ until: budget() });
    const afterFirst = await caseOf(store, last.key);
    const second = await sweeper(store, recorder(published)).sweepExceptions({ until: budget() });
    // Assess: the first run stopped before the last case; the second went on from there and reopened it
    expect(first).toMatchObject({ reopened: 0, stopped: true });
    expect(afterFirst.status).toBe('suppressed');
    expect(second).toMatchObject({ reopened: 1 });
    expect(await caseOf(store, last.key)).toMatchObject({ status: 'reopened' });
    expect(reopens(published).map((e) => e.caseKey)).toEqual([last.key]);
  });

  it('re-evaluates every case in a run after a stopped one, the case it stopped at included', async () => {
    // Prepare: a run stopped by its budget after two cases (the cursor at the second)
    const store = new MemoryDocStore();
    const cases = await suppressedCases(store, '2027-06-30');
    const middle = cases[1] as Case;
    clock.set('2026-12-02T12:00:00Z');
    clock.tick = 1000;
    const stopped = await sweeper(store, recorder([])).sweepExceptions({ until: clock.now().getTime() + 4000 });
    clock.tick = 0;
    // The second case's exception is revoked
    exceptions = exceptions.map((e) =>
      e.id === 'EXC-2' ? { ...e, revokedBy: 'secops@example.com', revokedAt: '2026-12-02T12:30:00Z' } : e,
    );
    const published: PipelineEvent[] = [];
    // Act
    const next = await sweeper(store, recorder(published)).sweepExceptions();
    // Assess
    expect(stopped).toMatchObject({ stopped: true });
    expect(next).toMatchObject({ reopened: 1, stopped: false });
    expect(await caseOf(store, middle.key)).toMatchObject({ status: 'open', exception: null });
    expect(published.filter((e) => e.type === 'case.decided').map((e) => e.caseKey)).toEqual([middle.key]);
  });

  it('announces a kept change whose case another run wrote while this one re-evaluated it (its write lost the race)', async () => {
    // Prepare: the second case's exception has expired; a run keeps its reopen and has not written it yet
    // (it stands still before its write, as a run still alive would), and the others are extended
    const store = new RacedStore();
    const [, second] = await suppressedCases(store);
    if (!second) throw new Error('two cases expected');
    extend('EXC-1');
    extend('EXC-3');
    clock.set('2026-12-02T12:00:00Z');
    const { dead, die } = mortal();
    store.stuck = second.key;
    store.onStuck = die;
    await Promise.race([dead, sweeper(store, recorder([])).sweepExceptions()]);
    // That run's write lands just before this run's own
    store.raced = second.key;
    const published: PipelineEvent[] = [];
    // Act
    clock.set('2026-12-02T12:00:05Z');
    await sweeper(store, recorder(published)).sweepExceptions();
    // Assess: the reopen is announced (by this run: the other may die before it publishes), and the case
    // written once
    expect(reopens(published).map((e) => e.caseKey)).toEqual([second.key]);
    expect(await caseOf(store, second.key)).toMatchObject({ status: 'reopened', reopenCount: 1 });
  });

  it('announces an exception extended after it expired, and its second expiry, under ids of their own', async () => {
    // Prepare: three suppressed cases; EXC-1's expiry passes (its case re-opens), then its owner extends it
    const store = new MemoryDocStore();
    const [first] = await suppressedCases(store);
    if (!first) throw new Error('no case');
    const published: PipelineEvent[] = [];
    const sweep = () => sweeper(store, recorder(published)).sweepExceptions();
    clock.set('2026-12-02T12:00:00Z');
    await sweep();
    const firstExpiry = published.filter((e) => e.caseKey === first.key);
    published.length = 0;
    extend('EXC-1');
    // Act: the extension suppresses the case again; past the new expiry it re-opens again
    await sweep();
    const extension = published.filter((e) => e.caseKey === first.key);
    published.length = 0;
    clock.set('2027-07-01T12:00:00Z');
    await sweep();
    const secondExpiry = published.filter((e) => e.caseKey === first.key);
    // Assess: each change is announced, none under an id an earlier change used (a consumer handles an id once)
    expect(reopens(firstExpiry)).toHaveLength(1);
    expect(extension.map((e) => e.type)).toEqual(['case.decided', 'case.exception']);
    expect(reopens(secondExpiry)).toHaveLength(1);
    const ids = [...firstExpiry, ...extension, ...secondExpiry].map((e) => e.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(await caseOf(store, first.key)).toMatchObject({ status: 'reopened', reopenCount: 2 });
  });
});
