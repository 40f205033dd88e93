/**
 * Write-ahead events and the case state they announce. The ingest publishes a chunk's events before it
 * writes the cases they announce (a run killed in between has them delivered again), so where the bus
 * delivers at once (EventBridge → SQS → the stage functions) an event can reach a stage before its case
 * write lands: a throttled or retried write, a slow batch. Acting then, a stage finds no case (a new case
 * would never get its ticket or its fix) or the state before the write (and decides on that).
 *
 * Such an event names the case version the write produces (`caseVersion`): a create is version 1 and each
 * conditional update one more, on every DocStore, so versions compare with no clock (the clocks of two
 * functions differ). A stage reads the case through {@link readAnnouncedCase} (or checks with
 * {@link ensureCaseWritten}): a case missing, or stored at a lower version, is not acted on and the event
 * not acknowledged; the error is retryable. A higher version is a later write, and fine.
 *
 * Where it goes: the SQS-fed functions report the record as a batch item failure and make it visible again
 * after the error's wait for that receive ({@link CASE_WRITE_RETRY_SECONDS}), not the queue's visibility timeout
 * (30 min on the ticket, remediate and verify queues); the DLQ after maxReceiveCount. On the local bus, which
 * delivers only after the ingest wrote, it happens only to an event a killed run published and never
 * wrote: a stage failure kept as a dead letter; running the same input again writes the case and
 * announces the event again.
 */
import { AdapterError } from '../errors.js';
import { type Case, CaseSchema } from '../model/case.js';
import type { PipelineEvent } from '../model/events.js';
import type { DocStore } from '../ports.js';
import { getDoc } from '../store/docs.js';

/** The collection of cases (the ingest's `COLLECTIONS.cases`). */
export const CASES = 'cases';

/** What an event must say for the check: its case and, when written ahead, the version it announces. */
export type Announcing = Pick<PipelineEvent, 'caseKey' | 'caseVersion'>;

/**
 * The waits (seconds) before an event whose case write has not landed is delivered again, by failed delivery
 * (the first waits 5 s; the last entry repeats). The write usually lands within a second, a throttled or
 * retried one within a minute or two; an ingest run killed before its write is run again after the ingest
 * queue's visibility timeout (180 s), and writes and announces the case anew. With SQS's 5 receives the
 * deliveries come at 0, 5, 25, 85 and 205 s, and an event whose case is never written reaches the DLQ after
 * ~6.5 min instead of 2.5 h. No wait is longer than the shortest stage queue's visibility timeout (the evidence
 * queue's 180 s; test/infra/serverless.test.ts), so it only ever shortens the wait it replaces.
 */
export const CASE_WRITE_RETRY_SECONDS = [5, 20, 60, 120, 180] as const;

/**
 * The case an event announces is not stored yet at the version it names: retryable (kind `transient`), so
 * the event is delivered again once the write has had time to land, after the wait its schedule gives for
 * the delivery that failed ({@link CASE_WRITE_RETRY_SECONDS}; `retryAfterSeconds` is the first).
 */
export class CaseNotWrittenError extends AdapterError {
  readonly caseKey: string;
  /** The version the event names. */
  readonly expected: number;
  /** The version stored (undefined: no case). */
  readonly stored: number | undefined;
  /** The waits before the next delivery, by failed delivery (see `scheduledRetryAfterSeconds`). */
  readonly retryAfterSchedule: readonly number[] = CASE_WRITE_RETRY_SECONDS;
  constructor(caseKey: string, expected: number, stored: number | undefined) {
    super('transient', `case ${caseKey} not written yet at version ${expected} (stored: ${stored ?? 'none'})`, {
      retryAfterSeconds: CASE_WRITE_RETRY_SECONDS[0],
    });
    this.name = 'CaseNotWrittenError';
    this.caseKey = caseKey;
    this.expected = expected;
    this.stored = stored;
  }
}

/** Throws {@link CaseNotWrittenError} when the event names a version the stored one (if any) has not reached. */
export function assertCaseWritten(event: Announcing, stored: number | undefined): void {
  const expected = event.caseVersion;
  if (expected !== undefined && (stored === undefined || stored < expected))
    throw new CaseNotWrittenError(event.caseKey, expected, stored);
}

/**
 * The event's case as stored, once it holds the state the event announces (undefined: no case, for an
 * event that names no version); throws {@link CaseNotWrittenError} before that.
 *
 * @example const c = await readAnnouncedCase(store, event); // throws while the ingest's write is pending
 */
export async function readAnnouncedCase(store: DocStore, event: Announcing): Promise<Case | undefined> {
  const doc = await getDoc(store, CASES, event.caseKey, CaseSchema);
  assertCaseWritten(event, doc?.version);
  return doc?.value;
}

/** {@link readAnnouncedCase} for a stage that reads the case itself later: reads only when the event names a version. */
export async function ensureCaseWritten(store: DocStore, event: Announcing): Promise<void> {
  if (event.caseVersion !== undefined) await readAnnouncedCase(store, event);
}
