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
import { classifyCloudError } from '../../actions/retry.js';
import { AdapterError, type ErrorKind } from '../../core/errors.js';
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

/**
 * The kind of a failed entry's `ErrorCode`: the two the API documents as retryable keep their kind, a
 * refusal is `denied`, and every other code (`MalformedDetail`, `InvalidArgument`, `ValidationException`,
 * …) is `invalid`. Reporting them all as transient re-sent a denied publish on every redelivery of its
 * message until the queue dead-lettered it, and the logs said "retryable" all along.
 */
export function entryErrorKind(code: string): ErrorKind {
  if (/^(ThrottlingException|Throttling|TooManyRequestsException)$/.test(code)) return 'throttled';
  if (/^(InternalFailure|InternalException|ServiceUnavailable)$/.test(code)) return 'transient';
  if (/^(AccessDenied|AccessDeniedException|NotAuthorized\w*)$/.test(code)) return 'denied';
  return 'invalid';
}

/**
 * A PutEvents call that threw, classified like any cloud error (AccessDenied → denied, throttling →
 * throttled, a 5xx → transient, another 4xx → invalid). An error EventBridge did not answer with (no
 * HTTP status: a socket the SDK names in its own words) says nothing about the request: transient.
 */
function putEventsError(e: unknown): AdapterError {
  const classified = classifyCloudError(e, 'PutEvents');
  const status = (e as { $metadata?: { httpStatusCode?: unknown } } | null)?.$metadata?.httpStatusCode;
  if (classified.kind === 'invalid' && typeof status !== 'number') {
    return new AdapterError('transient', classified.message.replace('(invalid', '(transient'), { cause: e });
  }
  return classified;
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
    // Entries refused for good: not sent again; reported once the retryable ones are settled.
    const refused: string[] = [];
    for (let attempt = 1; pending.length > 0; attempt++) {
      if (attempt > maxAttempts) {
        throw new AdapterError(
          'transient',
          `PutEvents: ${pending.length} entries still failing after ${maxAttempts} tries (${[...new Set(codes)].join(', ')})`,
        );
      }
      if (attempt > 1) await new Promise((r) => setTimeout(r, Math.min(2_000, backoffMs * 2 ** (attempt - 2))));
      const sent = pending;
      const out = await client.send(new PutEventsCommand({ Entries: sent })).catch((e: unknown) => {
        throw putEventsError(e);
      });
      if (!out.FailedEntryCount) {
        pending = [];
        continue;
      }
      // Results are positional: entry i of the request ↔ result i of the response.
      const results = out.Entries ?? [];
      const again: PutEventsRequestEntry[] = [];
      codes = [];
      sent.forEach((entry, i) => {
        const code = results[i] === undefined ? 'NoResult' : results[i].ErrorCode;
        if (code === undefined) return;
        if (code === 'NoResult' || isRetryableKind(entryErrorKind(code))) {
          again.push(entry);
          codes.push(code);
        } else refused.push(code);
      });
      pending = again;
    }
    if (refused.length > 0) {
      const kinds = refused.map(entryErrorKind);
      throw new AdapterError(
        kinds.includes('denied') ? 'denied' : 'invalid',
        `PutEvents: ${refused.length} entries refused (${[...new Set(refused)].join(', ')}), not retried`,
      );
    }
  }
}

const isRetryableKind = (kind: ErrorKind) => kind === 'throttled' || kind === 'transient';

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
