/**
 * EventBridge adapters: the hub's EventBus (closeloop's own events on the custom bus) and the
 * bounded-retry PutEvents the spokes use to forward findings.
 *
 * PutEvents is not all-or-nothing: it answers 200 with `FailedEntryCount` and an `ErrorCode` per failed
 * entry (throttling, internal failure), so a caller that only checks for exceptions silently loses events.
 * Only `InternalFailure` and `ThrottlingException` are worth another try; the other codes (access denied,
 * not authorized for the source or detail type, malformed detail, invalid argument) fail the same way
 * every time.
 * @see https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutEvents.html
 */
import { type EventBridgeClient, PutEventsCommand, type PutEventsRequestEntry } from '@aws-sdk/client-eventbridge';
import { AdapterError } from '../../core/errors.js';
import type { PipelineEvent } from '../../core/model/events.js';
import type { EventBus } from '../../core/ports.js';
import { batchesOf } from '../../core/util/batches.js';

/** PutEvents accepts at most 10 entries per call. */
export const MAX_ENTRIES_PER_CALL = 10;
/** PutEvents rejects a request whose entries total more than 256 KB (each entry counts its fields). */
export const MAX_REQUEST_BYTES = 256 * 1024;

/** The `source` of closeloop's own events on the hub bus (serverless.yml rules match on it). */
export const CLOSELOOP_SOURCE = 'closeloop';

export interface PutEventsOptions {
  /** Total tries per entry, the first included (FailedEntryCount retries are bounded by this). */
  maxAttempts?: number;
  /** Base back-off between tries in ms (doubles each time). */
  backoffMs?: number;
}

/** Size of an entry as EventBridge counts it (Source, DetailType, Detail, Resources as UTF-8, Time as 14). */
export function entrySize(entry: PutEventsRequestEntry): number {
  let size = entry.Time ? 14 : 0;
  for (const text of [entry.Source, entry.DetailType, entry.Detail, ...(entry.Resources ?? [])]) {
    if (text) size += Buffer.byteLength(text, 'utf8');
  }
  return size;
}

/** Splits entries into PutEvents calls of ≤ 10 entries and ≤ 256 KB each. */
export function chunkEntries(entries: readonly PutEventsRequestEntry[]): PutEventsRequestEntry[][] {
  for (const entry of entries) {
    const size = entrySize(entry);
    if (size > MAX_REQUEST_BYTES) {
      throw new AdapterError('invalid', `event ${entry.DetailType ?? ''} is ${size} bytes; EventBridge allows 256 KB`);
    }
  }
  return batchesOf(entries, entrySize, { maxItems: MAX_ENTRIES_PER_CALL, maxBytes: MAX_REQUEST_BYTES });
}

/**
 * Puts every entry, retrying only the entries PutEvents reported as failed, with capped back-off.
 * Throws a `transient` AdapterError naming the error codes when entries still fail after `maxAttempts`, and
 * a `denied` or `invalid` one, without retrying them, when entries fail with a code retrying cannot fix.
 *
 * @example
 * await putEvents(new EventBridgeClient({}), [{ EventBusName: 'closeloop-dev', Source: 'closeloop', DetailType: 'case.decided', Detail: '{}' }]);
 */
export async function putEvents(
  client: EventBridgeClient,
  entries: readonly PutEventsRequestEntry[],
  options: PutEventsOptions = {},
): Promise<void> {
  const maxAttempts = options.maxAttempts ?? 4;
  const backoffMs = options.backoffMs ?? 50;
  for (const chunk of chunkEntries(entries)) {
    let pending = chunk;
    let codes: string[] = [];
    // Entries refused for good (access denied, malformed): not sent again, reported once the others are settled.
    const refused: string[] = [];
    for (let attempt = 1; pending.length > 0; attempt++) {
      if (attempt > maxAttempts) throw (await failures()).stillFailing(pending.length, maxAttempts, codes);
      if (attempt > 1) await new Promise((r) => setTimeout(r, Math.min(2_000, backoffMs * 2 ** (attempt - 2))));
      const sent = pending;
      const out = await client.send(new PutEventsCommand({ Entries: sent })).catch(async (e: unknown) => {
        throw (await failures()).putEventsError(e);
      });
      if (!out.FailedEntryCount) {
        pending = [];
        continue;
      }
      ({ pending, codes } = (await failures()).triage(sent, out.Entries ?? [], refused));
    }
    if (refused.length > 0) throw (await failures()).refusal(refused);
  }
}

/**
 * What a failure means (shared/adapters/bus/eventbridge-failures.ts), loaded on the first failure: every
 * function that publishes carries this file in its cold start, the ingest function near its size budget.
 */
const failures = () => import('./eventbridge-failures.js');

/**
 * The hub's EventBus: each PipelineEvent becomes one entry on the closeloop custom bus with source
 * `closeloop` and detail-type = the event type, so serverless.yml rules route by type to each stage's queue.
 *
 * @example
 * const bus = new EventBridgeBus(new EventBridgeClient({}), process.env.CLOSELOOP_BUS ?? 'closeloop');
 * await bus.publish([{ type: 'case.decided', id: 'd-1', caseKey: 'k', at: '2026-01-01T00:00:00Z', isNewCase: true, recurrence: false, statusChanged: true }]);
 */
export class EventBridgeBus implements EventBus {
  constructor(
    private readonly client: EventBridgeClient,
    readonly busName: string,
    private readonly options: PutEventsOptions = {},
  ) {}

  async publish(events: readonly PipelineEvent[]): Promise<void> {
    if (events.length === 0) return;
    await putEvents(
      this.client,
      events.map((event) => ({
        EventBusName: this.busName,
        Source: CLOSELOOP_SOURCE,
        DetailType: event.type,
        Detail: JSON.stringify(event),
        Time: new Date(event.at),
      })),
      this.options,
    );
  }
}
