/**
 * Two `closeloop run`s on one home: the second one's recovery must not re-queue an event the first, still
 * alive, is delivering (a lease per queued event), while a crashed run's events still come back.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Action, ActionContext } from '../../shared/actions/define.js';
import { LocalFolderEvidenceStore } from '../../shared/adapters/evidence/local-folder.js';
import { MemoryDocStore } from '../../shared/adapters/store/memory.js';
import { LOCAL_COLLECTIONS, LocalTicketSchema } from '../../shared/adapters/tickets/local.js';
import { createLocalRuntime, type LocalRuntime } from '../../shared/adapters/wiring/local.js';
import { processGone, processScope, UNKNOWN_PID_NAMESPACE } from '../../shared/adapters/wiring/local-process.js';
import { verifyChains } from '../../shared/core/evidence/audit.js';
import type { PipelineEvent } from '../../shared/core/model/events.js';
import { EVENT_QUEUE, InProcessBus, QUEUE_LEASE_MS, type Stage } from '../../shared/core/pipeline/stage.js';
import { type Clock, silentLogger, systemClock } from '../../shared/core/ports.js';
import { standInS3Action } from '../helpers/stand-in-action.js';
import { tempDir } from '../helpers/tmp.js';

const CONFIG = join(import.meta.dirname, '../../examples/config');
const S3_8 = join(import.meta.dirname, '../../examples/events/02-securityhub-s3.8-failed-data-lake.json');

/** The stand-in s3.block-public-access whose live read (`plan`) runs `onPlan` first. */
const planningAction = (onPlan: () => Promise<void>) => standInS3Action({ onPlan });

const readEvent = () => [{ input: 'data-lake', value: JSON.parse(readFileSync(S3_8, 'utf8')) as unknown }];

/** A clock the test moves. */
function steppedClock(): Clock & { advance(ms: number): void } {
  let t = Date.now();
  return {
    now: () => new Date(t),
    advance: (ms) => {
      t += ms;
    },
  };
}

/** The pid of a process that has ended (and been reaped). */
const endedPid = () => {
  const child = spawnSync(process.execPath, ['-e', '']);
  if (!child.pid) throw new Error('no child process');
  return child.pid;
};

const decided = (id: string): PipelineEvent => ({
  id,
  type: 'case.decided',
  caseKey: `case-${id}`,
  at: new Date().toISOString(),
  isNewCase: true,
  recurrence: false,
  statusChanged: true,
});

/** A stage that records each delivery and waits `ms` in it. */
function slowStage(seen: string[], ms: number): Stage {
  return {
    name: 'slow',
    handles: ['case.decided'],
    async handle(e) {
      seen.push(e.id);
      await new Promise((r) => setTimeout(r, ms));
      return [];
    },
  };
}

const ctx: ActionContext = {
  clients: {} as ActionContext['clients'],
  clock: systemClock,
  log: silentLogger,
  awsAccount: async () => '000000000000',
  inAwsAccount: () => ctx,
};

describe('the event queue of two runs on one home', () => {
  let tmp: ReturnType<typeof tempDir>;
  const open: LocalRuntime[] = [];
  beforeEach(() => {
    tmp = tempDir();
  });
  afterEach(async () => {
    await Promise.all(open.splice(0).map((rt) => rt.close()));
    tmp.cleanup();
  });

  const runtime = async (home: string, action: Action, actor: string, clock: Clock = systemClock) => {
    const rt = await createLocalRuntime({
      home,
      clock,
      configDir: CONFIG,
      actionContext: ctx,
      actions: { get: (id) => (id === action.id ? action : undefined) },
      env: {},
      actor,
    });
    open.push(rt);
    return rt;
  };

  it('does not deliver an event again while the run delivering it is alive', async () => {
    // Prepare: the first run's remediation stage stops in the live read of its plan until released.
    const home = join(tmp.dir, 'home');
    let plans = 0;
    let entered: () => void = () => {};
    const inPlan = new Promise<void>((resolve) => {
      entered = resolve;
    });
    let release: () => void = () => {};
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    const action = planningAction(async () => {
      plans++;
      if (plans === 1) {
        entered();
        await released;
      }
    });
    const first = await runtime(home, action, 'first');
    await first.ingest.ingest(readEvent());
    const firstSettled = first.settle();
    await inPlan;

    // Act: a second run on the same home starts and settles (its recovery reads the queue) meanwhile.
    const second = await runtime(home, action, 'second');
    await second.settle();
    const plansWhileFirstDelivers = plans;
    release();
    await firstSettled;
    await second.settle();

    // Assess: one delivery, so one plan, one plan record and one ticket comment about it.
    expect(plansWhileFirstDelivers).toBe(1);
    expect(plans).toBe(1);
    const tickets = (await first.store.list(LOCAL_COLLECTIONS.tickets)).map((d) => LocalTicketSchema.parse(d.value));
    expect(tickets).toHaveLength(1);
    const planComments = tickets[0]?.comments.filter((c) => c.text.startsWith('Remediation ')) ?? [];
    expect(planComments).toHaveLength(1);
    const evidence = new LocalFolderEvidenceStore(join(home, 'evidence'));
    const planRecords = (await evidence.listAll()).filter(
      (s) => (s.raw as { step?: string; verdict?: string }).step === 'plan',
    );
    expect(planRecords).toHaveLength(1);
    expect((await verifyChains(evidence, { store: first.store })).problems).toEqual([]);
  }, 60_000);

  it('recovers the events of a run that stopped renewing once their lease has run out', async () => {
    // Prepare: the first run queues the event, then stops (hung, or killed where its process cannot be seen).
    const home = join(tmp.dir, 'home');
    const clock = steppedClock();
    let plans = 0;
    const action = planningAction(async () => {
      plans++;
    });
    const first = await runtime(home, action, 'first', clock);
    await first.ingest.ingest(readEvent());
    const second = await runtime(home, action, 'second', clock);

    // Act: the second run settles within the lease, and again after it ran out.
    await second.settle();
    const plansWithinLease = plans;
    clock.advance(QUEUE_LEASE_MS + 1);
    await second.settle();

    // Assess
    expect(plansWithinLease).toBe(0);
    expect(plans).toBe(1);
    expect(await second.store.list(EVENT_QUEUE)).toEqual([]);
    const tickets = (await second.store.list(LOCAL_COLLECTIONS.tickets)).map((d) => LocalTicketSchema.parse(d.value));
    expect(tickets).toHaveLength(1);
  }, 60_000);

  it('keeps as a dead letter, unhandled, the event of a run killed before its case write, and handles it when the input runs again', async () => {
    // Prepare: a run that queued its events and was killed before it wrote the case they announce (its
    // writes undone here; its process ended)
    const home = join(tmp.dir, 'home');
    let plans = 0;
    const action = planningAction(async () => {
      plans++;
    });
    const second = await runtime(home, action, 'second');
    const crashed = await runtime(home, action, 'crashed');
    await crashed.ingest.ingest(readEvent());
    for (const collection of ['cases', 'findings'])
      for (const doc of await crashed.store.list(collection)) await crashed.store.delete(collection, doc.id);
    const pid = endedPid();
    for (const entry of await crashed.store.list(EVENT_QUEUE)) {
      const value = entry.value as { lease: { process: { pid: number } } };
      value.lease.process.pid = pid;
      await crashed.store.put(EVENT_QUEUE, entry.id, value);
    }

    // Act: the next run settles (recovering the events), then ingests the same input again
    await second.settle();
    const failures = second.bus.failures.map((f) => `${f.stage}: ${f.error}`);
    const letters = (await second.store.list('deadletters')).map((d) => d.value as { stage: string; reason: string });
    const ticketsBefore = await second.store.list(LOCAL_COLLECTIONS.tickets);
    const recordsBefore = await new LocalFolderEvidenceStore(join(home, 'evidence')).listAll();
    await second.ingest.ingest(readEvent());
    await second.settle();

    // Assess: every stage said why and did nothing; the second ingest's write and events did the work once
    const [caseKey] = (await second.store.list('cases')).map((d) => d.id);
    const why = `case ${caseKey} not written yet at version 1 (stored: none)`;
    expect(failures).toEqual(['evidence', 'remediate', 'tickets', 'verify'].map((stage) => `${stage}: ${why}`));
    expect(letters.map((l) => `${l.stage}: ${l.reason}`)).toEqual(failures);
    expect(ticketsBefore).toEqual([]);
    expect(recordsBefore).toEqual([]);
    expect(plans).toBe(1);
    expect(await second.store.list(LOCAL_COLLECTIONS.tickets)).toHaveLength(1);
    expect(await second.store.list(EVENT_QUEUE)).toEqual([]);
    const evidence = new LocalFolderEvidenceStore(join(home, 'evidence'));
    expect((await verifyChains(evidence, { store: second.store })).problems).toEqual([]);
  }, 60_000);

  it('recovers at once the events of a run whose process has ended, before their lease runs out', async () => {
    // Prepare: an event queued under the lease of a process of this machine that has ended since.
    const home = join(tmp.dir, 'home');
    let plans = 0;
    const action = planningAction(async () => {
      plans++;
    });
    const second = await runtime(home, action, 'second');
    const crashed = await runtime(home, action, 'crashed');
    await crashed.ingest.ingest(readEvent());
    const [entry] = await crashed.store.list(EVENT_QUEUE);
    if (!entry) throw new Error('nothing queued');
    const value = entry.value as { lease: { process: { pid: number } } };
    value.lease.process.pid = endedPid();
    await crashed.store.put(EVENT_QUEUE, entry.id, value);

    // Act
    await second.settle();

    // Assess
    expect(plans).toBe(1);
    expect(await second.store.list(EVENT_QUEUE)).toEqual([]);
  }, 60_000);
});

describe('the leases of the durable in-process bus', () => {
  it('renews the lease of an event while its delivery runs longer than the lease', async () => {
    // Prepare: a 300 ms lease, and a delivery of 1.2 s in the first bus.
    const store = new MemoryDocStore();
    const seen: string[] = [];
    const first = new InProcessBus([slowStage(seen, 1200)], silentLogger, undefined, store, { leaseMs: 300 });
    const second = new InProcessBus([slowStage(seen, 0)], silentLogger, undefined, store, { leaseMs: 300 });
    await first.publish([decided('a')]);
    const delivering = first.drain();

    // Act: the second bus recovers twice while the first one still delivers, long after the first lease.
    await new Promise((r) => setTimeout(r, 500));
    const early = await second.recover();
    await new Promise((r) => setTimeout(r, 400));
    const late = await second.recover();
    await second.drain();
    await delivering;

    // Assess
    expect([early, late]).toEqual([0, 0]);
    expect(seen).toEqual(['a']);
    expect(await store.list(EVENT_QUEUE)).toEqual([]);
  });

  it('gives an expired event to one of two buses recovering it at once', async () => {
    // Prepare: an event whose lease has run out.
    const store = new MemoryDocStore();
    const clock = steppedClock();
    const seen: string[] = [];
    const options = { clock, leaseMs: 1000 };
    const crashed = new InProcessBus([], silentLogger, undefined, store, options);
    await crashed.publish([decided('a')]);
    clock.advance(1001);
    const a = new InProcessBus([slowStage(seen, 0)], silentLogger, undefined, store, options);
    const b = new InProcessBus([slowStage(seen, 0)], silentLogger, undefined, store, options);

    // Act
    const taken = await Promise.all([a.recover(), b.recover()]);
    await Promise.all([a.drain(), b.drain()]);

    // Assess
    expect(taken.sort()).toEqual([0, 1]);
    expect(seen).toEqual(['a']);
  });

  it('leaves an event announced again to the bus holding it, and takes it once that lease ran out', async () => {
    // Prepare: the first bus queued event a (a deterministic id, announced again by the second).
    const store = new MemoryDocStore();
    const clock = steppedClock();
    const seen: string[] = [];
    const options = { clock, leaseMs: 1000 };
    const first = new InProcessBus([slowStage(seen, 0)], silentLogger, undefined, store, options);
    const second = new InProcessBus([slowStage(seen, 0)], silentLogger, undefined, store, options);
    const third = new InProcessBus([slowStage(seen, 0)], silentLogger, undefined, store, options);
    await first.publish([decided('a')]);

    // Act: the second bus announces it while the first holds it; the third once the first one's lease ran out.
    await second.publish([decided('a')]);
    await second.drain();
    const whileHeld = [...seen];
    clock.advance(1001);
    await third.publish([decided('a')]);
    await third.drain();
    await first.drain();

    // Assess: delivered once, by the third bus (the first one's lease was gone by its turn).
    expect(whileHeld).toEqual([]);
    expect(seen).toEqual(['a']);
    expect(await store.list(EVENT_QUEUE)).toEqual([]);
  });

  it('gives the events it did not deliver back when closed', async () => {
    // Prepare: a bus holding a queued event it never delivers.
    const store = new MemoryDocStore();
    const seen: string[] = [];
    const closing = new InProcessBus([], silentLogger, undefined, store);
    await closing.publish([decided('a')]);
    const next = new InProcessBus([slowStage(seen, 0)], silentLogger, undefined, store);

    // Act
    const whileHeld = await next.recover();
    await closing.close();
    const afterClose = await next.recover();
    await next.drain();

    // Assess
    expect([whileHeld, afterClose]).toEqual([0, 1]);
    expect(seen).toEqual(['a']);
  });
});

describe('the process check of the local event queue', () => {
  it('calls a process gone only when it ran here and its pid no longer exists', () => {
    // Prepare
    const scope = processScope();
    const ended = endedPid();

    // Act
    const outcomes = {
      ended: processGone({ scope, pid: ended }, scope),
      elsewhere: processGone({ scope: `${scope}-elsewhere`, pid: ended }, scope),
      parent: processGone({ scope, pid: process.ppid }, scope),
      self: processGone({ scope, pid: process.pid }, scope),
    };

    // Assess
    expect(outcomes).toEqual({ ended: true, elsewhere: false, parent: false, self: false });
  });

  it('never calls a process gone on Linux when the pid namespace cannot be read: another container of the same host name may own that pid', () => {
    // Prepare: two containers with one host name, neither able to read /proc/self/ns/pid
    const unreadable = () => {
      throw Object.assign(new Error("ENOENT: no such file or directory, readlink '/proc/self/ns/pid'"), {
        code: 'ENOENT',
      });
    };
    const here = processScope('linux', unreadable);
    const there = processScope('linux', unreadable);
    const ended = endedPid();

    // Act
    const gone = processGone({ scope: there, pid: ended }, here);

    // Assess: the scope says the namespace is unknown, and a pid that does not exist here is not taken as ended
    expect(here).toContain(UNKNOWN_PID_NAMESPACE);
    expect(gone).toBe(false);
    expect(processScope('darwin', unreadable)).not.toContain(UNKNOWN_PID_NAMESPACE);
  });
});
