/**
 * A stage consumes closeloop events and returns the follow-up events. The same stage runs behind an
 * SQS queue in AWS (one event per message) and inside `InProcessBus` locally.
 */
import { errorMessage } from '../errors.js';
import type { PipelineEvent, PipelineEventType } from '../model/events.js';
import type { EventBus, Logger } from '../ports.js';

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

/**
 * Runs stages in process: every published event goes to each stage that handles its type, in the
 * order the stages were given; follow-ups are queued (FIFO) until nothing is left. A failing stage
 * is recorded and does not stop the others.
 */
export class InProcessBus implements EventBus {
  private readonly queue: PipelineEvent[] = [];
  readonly failures: StageFailure[] = [];
  readonly delivered: PipelineEvent[] = [];

  constructor(
    private readonly stages: readonly Stage[],
    private readonly log: Logger,
    private readonly onFailure?: (f: StageFailure) => Promise<void>,
  ) {}

  async publish(events: readonly PipelineEvent[]): Promise<void> {
    this.queue.push(...events);
  }

  /** Delivers everything queued, and what that produces, until the queue is empty. */
  async drain(maxEvents = 1_000_000): Promise<number> {
    let count = 0;
    for (let event = this.queue.shift(); event; event = this.queue.shift()) {
      if (++count > maxEvents) throw new Error(`event loop exceeded ${maxEvents} events: a stage keeps re-emitting`);
      this.delivered.push(event);
      for (const stage of this.stages) {
        if (!stage.handles.includes(event.type)) continue;
        try {
          this.queue.push(...(await stage.handle(event)));
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
    return count;
  }
}
