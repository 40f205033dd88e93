/**
 * A stage consumes closeloop events and returns the follow-up events. The same stage runs behind an
 * SQS queue in AWS (one event per message) and inside `InProcessBus` locally.
 */
import { randomUUID } from 'node:crypto';
import * as z from 'zod';
import { errorMessage } from '../errors.js';
import { type PipelineEvent, PipelineEventSchema, type PipelineEventType } from '../model/events.js';
import { type Clock, type DocStore, type EventBus, type Logger, systemClock } from '../ports.js';

export interface Stage {
  readonly name: string;
  readonly handles: readonly PipelineEventType[];
  handle(event: PipelineEvent): Promise<PipelineEvent[]>;
}

export interface StageFailure {
  stage: string;
  event: PipelineEvent;
  error: string;
}

/** The write-ahead queue of events not yet delivered to every stage (the local bus's durability). */
export const EVENT_QUEUE = 'event-queue';

/**
 * How long a queued event stays with the run that published or recovered it without a renewal (renewed
 * every sixth of it while the run delivers). A run killed on this machine gives its events back at once (the
 * wiring tells that its process is gone), so the length matters only where that cannot be told (its process
 * id reused since, another pid namespace): its events then wait up to this long, and the next settle after
 * that takes them (a run settles when it starts and after each ingest slice). Shorter brings those back
 * sooner; but a live run whose event loop stalls for most of the lease (a SQLite busy wait alone blocks it
 * for up to 15 s) loses the event it is delivering to another run, which delivers it a second time at
 * once. Longer keeps a crashed run's events waiting longer, for nothing on this machine.
 */
export const QUEUE_LEASE_MS = 30_000;

/** Queued events whose due leases are renewed in one write with the next one delivered. */
const RENEW_AHEAD = 500;

/** The process a lease was taken in, for telling a crashed holder before its lease runs out. */
const LeaseProcessSchema = z.object({ scope: z.string(), pid: z.number().int().positive() });
export type LeaseProcess = z.infer<typeof LeaseProcessSchema>;

/** Who may deliver a queued event until when: one bus (`owner`, random per bus), in `process` if known. */
const LeaseSchema = z.object({ owner: z.string(), process: LeaseProcessSchema.optional(), expiresAt: z.string() });
type Lease = z.infer<typeof LeaseSchema>;

/**
 * One queued event; `order` (publish time, then a per-run sequence) replays them as they were published.
 * No `lease`: written before leases existed, free to take.
 */
const QueuedEventSchema = z.object({ order: z.string(), event: PipelineEventSchema, lease: LeaseSchema.optional() });
type QueuedEvent = z.infer<typeof QueuedEventSchema>;

export interface QueueLeaseOptions {
  /** Lease times (default: the system clock). */
  clock?: Clock;
  /** Default {@link QUEUE_LEASE_MS}. */
  leaseMs?: number;
  /** This bus's process, recorded on its leases. */
  process?: LeaseProcess;
  /** Whether the process of a lease has ended (true only when sure): its events are then free at once. */
  processGone?: (p: LeaseProcess) => boolean;
}

/** A queued event this bus holds the lease of: the entry as written, its version, when the lease was taken. */
interface Held {
  entry: QueuedEvent;
  version: number;
  leasedAt: number;
}

/**
 * Runs stages in process: every published event goes to each stage that handles its type, in the
 * order the stages were given; follow-ups are queued (FIFO) until nothing is left. A failing stage
 * is recorded and does not stop the others.
 *
 * With a `store`, the bus is durable: an event is written to `event-queue` when published (before the
 * state it announces is written, by the ingest stage), and removed only after every stage handled it
 * and its follow-ups were queued. `recover()` re-queues what a killed run left behind; stages are
 * idempotent (they re-read the case), so a redelivery changes nothing twice.
 *
 * Several runs may share the store (two `closeloop run`s on one home), so each queued event carries a
 * lease: the run that published it (or recovered it) holds it, renews it while delivering, and removes
 * the event only under its own lease. Every lease is taken with a conditional write, so two runs never
 * hold one event at once; `recover()` takes only events whose lease ran out or whose process is gone,
 * never one a live run is about to deliver or delivering right now (a stage's side effects, such as a
 * ticket comment or an evidence record, would otherwise happen twice, at once).
 */
export class InProcessBus implements EventBus {
  private readonly queue: PipelineEvent[] = [];
  private readonly queued = new Set<string>();
  private seq = 0;
  readonly failures: StageFailure[] = [];
  private readonly owner = randomUUID();
  private readonly held = new Map<string, Held>();
  private readonly clock: Clock;
  private readonly leaseMs: number;
  /** A lease younger than this is not renewed: it has at least `leaseMs - renewMs` left. */
  private readonly renewMs: number;
  private delivering: string | undefined;
  private renewer: ReturnType<typeof setInterval> | undefined;
  /** Lease writes of held events, one at a time (the renewal timer and the delivery loop share them). */
  private leaseWork: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly stages: readonly Stage[],
    private readonly log: Logger,
    private readonly onFailure?: (f: StageFailure) => Promise<void>,
    private readonly store?: DocStore,
    private readonly leases: QueueLeaseOptions = {},
  ) {
    this.clock = leases.clock ?? systemClock;
    this.leaseMs = leases.leaseMs ?? QUEUE_LEASE_MS;
    this.renewMs = this.leaseMs / 6;
  }

  async publish(events: readonly PipelineEvent[]): Promise<void> {
    const fresh = events.filter((e) => !this.queued.has(e.id));
    if (fresh.length === 0) return;
    const ours = this.store ? await this.enqueue(this.store, fresh) : fresh;
    for (const e of ours) {
      this.queued.add(e.id);
      this.queue.push(e);
    }
  }

  /** Writes `events` to the queue under this bus's lease; returns those it holds (see `taken`). */
  private async enqueue(store: DocStore, events: readonly PipelineEvent[]): Promise<PipelineEvent[]> {
    const base = Date.now();
    const now = this.now();
    const entries = events.map((event) => ({
      order: `${String(base).padStart(15, '0')}:${String(this.seq++).padStart(9, '0')}`,
      event,
      lease: this.lease(now),
    }));
    const written = await store.writeBatch({
      puts: entries.map((entry) => ({ collection: EVENT_QUEUE, id: entry.event.id, value: entry, expectVersion: 0 })),
      appends: [],
    });
    const ours: PipelineEvent[] = [];
    for (const [i, entry] of entries.entries()) {
      const version = written.puts[i] ?? null;
      if (version !== null) this.held.set(entry.event.id, { entry, version, leasedAt: now });
      if (version !== null || (await this.taken(store, entry, now))) ours.push(entry.event);
    }
    return ours;
  }

  /**
   * The event is queued already: announced twice (its id is deterministic), by this run before or by
   * another. A live lease stays with its holder, which delivers it (after writing the state it announces);
   * a free one this bus takes over with its own entry.
   */
  private async taken(store: DocStore, entry: QueuedEvent, now: number): Promise<boolean> {
    const doc = await store.get(EVENT_QUEUE, entry.event.id);
    const current = doc ? QueuedEventSchema.safeParse(doc.value) : undefined;
    if (!doc || !current?.success || !this.free(current.data.lease, now)) return false;
    const version = await store.put(EVENT_QUEUE, doc.id, entry, { expectVersion: doc.version });
    if (version === null) return false;
    this.held.set(doc.id, { entry, version, leasedAt: now });
    return true;
  }

  /** Re-queues the events a previous (or another, crashed) run published but did not finish delivering. */
  async recover(): Promise<number> {
    if (!this.store) return 0;
    const now = this.now();
    const entries = (await this.store.list(EVENT_QUEUE)).flatMap((d) => {
      if (this.queued.has(d.id)) return [];
      const parsed = QueuedEventSchema.safeParse(d.value);
      if (!parsed.success) {
        // Not ours to drop silently: it stays in the queue, and the log says which and why.
        this.log.error(`unreadable queued event ${d.id}`, { error: parsed.error.message });
        return [];
      }
      // Another run's, delivering it or about to: left alone.
      if (!this.free(parsed.data.lease, now)) return [];
      return [{ entry: { ...parsed.data, lease: this.lease(now) }, version: d.version }];
    });
    if (entries.length === 0) return 0;
    entries.sort((a, b) => (a.entry.order < b.entry.order ? -1 : a.entry.order > b.entry.order ? 1 : 0));
    const written = await this.store.writeBatch({
      puts: entries.map(({ entry, version }) => ({
        collection: EVENT_QUEUE,
        id: entry.event.id,
        value: entry,
        expectVersion: version,
      })),
      appends: [],
    });
    let n = 0;
    for (const [i, { entry }] of entries.entries()) {
      const version = written.puts[i] ?? null;
      // null: another run took it first.
      if (version === null) continue;
      this.held.set(entry.event.id, { entry, version, leasedAt: now });
      this.queued.add(entry.event.id);
      this.queue.push(entry.event);
      n++;
    }
    return n;
  }

  /** Delivers everything queued, and what that produces, until the queue is empty. */
  async drain(maxEvents = 1_000_000): Promise<number> {
    let count = 0;
    if (this.store) this.startRenewing();
    try {
      for (let event = this.queue.shift(); event; event = this.queue.shift()) {
        if (++count > maxEvents) throw new Error(`event loop exceeded ${maxEvents} events: a stage keeps re-emitting`);
        if (this.store && !(await this.exclusive(() => this.renewAhead(event.id)))) {
          // Its lease ran out while it waited here and another run holds it now: that run delivers it.
          this.queued.delete(event.id);
          continue;
        }
        this.delivering = event.id;
        try {
          await this.deliver(event);
        } finally {
          this.delivering = undefined;
        }
        this.queued.delete(event.id);
        if (this.store) await this.exclusive(() => this.remove(event.id));
      }
    } finally {
      this.stopRenewing();
    }
    return count;
  }

  private async deliver(event: PipelineEvent): Promise<void> {
    for (const stage of this.stages) {
      if (!stage.handles.includes(event.type)) continue;
      try {
        await this.publish(await stage.handle(event));
      } catch (e) {
        const failure = { stage: stage.name, event, error: errorMessage(e) };
        this.failures.push(failure);
        this.log.error(`stage ${stage.name} failed on ${event.type}`, {
          caseKey: event.caseKey,
          error: failure.error,
        });
        await this.onFailure?.(failure);
      }
    }
  }

  /**
   * Stops renewing and gives back the leases of the events this bus holds but did not deliver, so the next
   * run takes them at once (the bus stays usable: a later `drain` takes them again).
   */
  async close(): Promise<void> {
    this.stopRenewing();
    const store = this.store;
    if (!store) return;
    await this.exclusive(async () => {
      const waiting = [...this.held].filter(([id]) => id !== this.delivering);
      if (waiting.length === 0) return;
      // A put that fails found the event taken by another run meanwhile: not this bus's either way.
      await store.writeBatch({
        puts: waiting.map(([id, h]) => ({
          collection: EVENT_QUEUE,
          id,
          value: { order: h.entry.order, event: h.entry.event },
          expectVersion: h.version,
        })),
        appends: [],
      });
      for (const [id] of waiting) {
        this.held.delete(id);
        this.queued.delete(id);
      }
      const ours = this.queue.filter((e) => this.held.has(e.id));
      this.queue.splice(0, this.queue.length, ...ours);
    });
  }

  private now(): number {
    return this.clock.now().getTime();
  }

  private lease(now: number): Lease {
    const p = this.leases.process;
    return { owner: this.owner, ...(p ? { process: p } : {}), expiresAt: new Date(now + this.leaseMs).toISOString() };
  }

  /** Whether a lease may be taken: none, run out, or its process is gone. */
  private free(lease: Lease | undefined, now: number): boolean {
    if (!lease) return true;
    if (Date.parse(lease.expiresAt) <= now) return true;
    return (
      lease.process !== undefined && lease.owner !== this.owner && (this.leases.processGone?.(lease.process) ?? false)
    );
  }

  /**
   * Renews the leases among `ids` that are due, in one write; false when `ids[0]` is no longer this bus's
   * (its lease ran out and another run took it).
   */
  private async renew(ids: readonly string[], when: string): Promise<boolean> {
    const store = this.store;
    if (!store) return false;
    const now = this.now();
    const due = ids.flatMap((id) => {
      const h = this.held.get(id);
      return h && now - h.leasedAt >= this.renewMs
        ? [{ id, version: h.version, entry: { ...h.entry, lease: this.lease(now) } }]
        : [];
    });
    if (due.length > 0) {
      const written = await store.writeBatch({
        puts: due.map(({ id, version, entry }) => ({
          collection: EVENT_QUEUE,
          id,
          value: entry,
          expectVersion: version,
        })),
        appends: [],
      });
      for (const [i, { id, entry }] of due.entries()) {
        const version = written.puts[i] ?? null;
        if (version !== null) {
          this.held.set(id, { entry, version, leasedAt: now });
          continue;
        }
        this.held.delete(id);
        this.log.warn(`queued event ${id} was taken over by another run ${when}: this run outlived its lease`);
      }
    }
    return ids[0] !== undefined && this.held.has(ids[0]);
  }

  /**
   * Before a delivery: renews the lease of `id` when due, with those of the events queued after it (one write
   * for many: an event waits in the queue about as long as those published with it).
   */
  private async renewAhead(id: string): Promise<boolean> {
    const h = this.held.get(id);
    if (!h) return false;
    if (this.now() - h.leasedAt < this.renewMs) return true;
    return this.renew([id, ...this.queue.slice(0, RENEW_AHEAD).map((e) => e.id)], 'before its delivery');
  }

  /** Removes a delivered event from the queue, unless another run took its lease meanwhile. */
  private async remove(id: string): Promise<void> {
    const h = this.held.get(id);
    this.held.delete(id);
    if (!this.store || !h) return;
    if (!(await this.store.delete(EVENT_QUEUE, id, { expectVersion: h.version })))
      this.log.warn(`queued event ${id} was taken over by another run while this one delivered it`);
  }

  /** Renews the lease of the event being delivered while a delivery runs (a stage may wait on the cloud). */
  private startRenewing(): void {
    if (this.renewer) return;
    this.renewer = setInterval(() => {
      const id = this.delivering;
      if (id === undefined) return;
      this.exclusive(() => this.renew([id], 'during its delivery')).catch((e: unknown) => {
        this.log.error(`renewing the lease of queued event ${id} failed`, { error: errorMessage(e) });
      });
    }, this.renewMs);
    // Never what keeps the process alive.
    this.renewer.unref();
  }

  private stopRenewing(): void {
    clearInterval(this.renewer);
    this.renewer = undefined;
  }

  private exclusive<T>(work: () => Promise<T>): Promise<T> {
    const next = this.leaseWork.then(work);
    this.leaseWork = next.catch(() => undefined);
    return next;
  }
}
