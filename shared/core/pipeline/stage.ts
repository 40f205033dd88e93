/**
 * A stage consumes closeloop events and returns the follow-up events. The same stage runs behind an
 * SQS queue in AWS (one event per message) and inside `InProcessBus` locally.
 */
import * as z from 'zod';
import { errorMessage } from '../errors.js';
import { type PipelineEvent, PipelineEventSchema, type PipelineEventType } from '../model/events.js';
import type { DocStore, EventBus, Logger } from '../ports.js';

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

/** One queued event; `order` (publish time, then a per-run sequence) replays them as they were published. */
const QueuedEventSchema = z.object({ order: z.string(), event: PipelineEventSchema });

/**
 * Runs stages in process: every published event goes to each stage that handles its type, in the
 * order the stages were given; follow-ups are queued (FIFO) until nothing is left. A failing stage
 * is recorded and does not stop the others.
 *
 * With a `store`, the bus is durable: an event is written to `event-queue` when published (before the
 * state it announces is written, by the ingest stage), and removed only after every stage handled it
 * and its follow-ups were queued. `recover()` re-queues what a killed run left behind; stages are
 * idempotent (they re-read the case), so a redelivery changes nothing twice.
 */
export class InProcessBus implements EventBus {
  private readonly queue: PipelineEvent[] = [];
  private readonly queued = new Set<string>();
  private seq = 0;
  readonly failures: StageFailure[] = [];

  constructor(
    private readonly stages: readonly Stage[],
    private readonly log: Logger,
    private readonly onFailure?: (f: StageFailure) => Promise<void>,
    private readonly store?: DocStore,
  ) {}

  async publish(events: readonly PipelineEvent[]): Promise<void> {
    const fresh = events.filter((e) => !this.queued.has(e.id));
    if (fresh.length === 0) return;
    if (this.store) {
      const base = Date.now();
      await this.store.writeBatch({
        puts: fresh.map((event) => ({
          collection: EVENT_QUEUE,
          id: event.id,
          value: { order: `${String(base).padStart(15, '0')}:${String(this.seq++).padStart(9, '0')}`, event },
        })),
        appends: [],
      });
    }
    for (const e of fresh) {
      this.queued.add(e.id);
      this.queue.push(e);
    }
  }

  /** Re-queues the events a previous run published but did not finish delivering. */
  async recover(): Promise<number> {
    if (!this.store) return 0;
    const entries = (await this.store.list(EVENT_QUEUE)).flatMap((d) => {
      const parsed = QueuedEventSchema.safeParse(d.value);
      if (parsed.success) return [parsed.data];
      // Not ours to drop silently: it stays in the queue, and the log says which and why.
      this.log.error(`unreadable queued event ${d.id}`, { error: parsed.error.message });
      return [];
    });
    entries.sort((a, b) => (a.order < b.order ? -1 : a.order > b.order ? 1 : 0));
    let n = 0;
    for (const { event } of entries) {
      if (this.queued.has(event.id)) continue;
      this.queued.add(event.id);
      this.queue.push(event);
      n++;
    }
    return n;
  }

  /** Delivers everything queued, and what that produces, until the queue is empty. */
  async drain(maxEvents = 1_000_000): Promise<number> {
    let count = 0;
    for (let event = this.queue.shift(); event; event = this.queue.shift()) {
      if (++count > maxEvents) throw new Error(`event loop exceeded ${maxEvents} events: a stage keeps re-emitting`);
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
      this.queued.delete(event.id);
      if (this.store) await this.store.delete(EVENT_QUEUE, event.id);
    }
    return count;
  }
}
