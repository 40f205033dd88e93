/**
 * One error family. Adapter errors carry a kind, checked with predicates rather than instanceof
 * (house style §6). Only `transient` and `throttled` are retried.
 */
export type ErrorKind = 'denied' | 'throttled' | 'gone' | 'conflict' | 'transient' | 'invalid';

export class CloseloopError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    const cause = options?.cause;
    // The cause's message is added unless this one already says it (a wrapper keeping its cause's words).
    const causeMsg = cause instanceof Error && cause.message !== message ? `: ${cause.message}` : '';
    super(message + (causeMsg && !message.endsWith(causeMsg) ? causeMsg : ''), options);
    this.name = 'CloseloopError';
  }
}

/** An error from the outside world (cloud API, Jira, store), classified by kind. */
export class AdapterError extends CloseloopError {
  readonly kind: ErrorKind;
  /** Seconds the remote asked us to wait (Retry-After), when it said. */
  readonly retryAfterSeconds: number | undefined;
  /** The remote's request id, for evidence and support. */
  readonly requestId: string | undefined;
  constructor(
    kind: ErrorKind,
    message: string,
    options?: { cause?: unknown; retryAfterSeconds?: number; requestId?: string },
  ) {
    super(message, options);
    this.name = 'AdapterError';
    this.kind = kind;
    this.retryAfterSeconds = options?.retryAfterSeconds;
    this.requestId = options?.requestId;
  }
}

/**
 * An apply that stopped part-way: the first `requestIds.length` of `stepsTotal` planned steps were made,
 * then one failed (the cause, whose kind this keeps so `isDenied`/`isRetryable` still answer). The
 * remediation stage records the steps made, so no half-applied fix goes unrecorded. `unconfirmed` names the
 * failed step when its call got no definite answer (a timeout, a reset connection, a 5xx after the retries):
 * it may have taken effect, so even with no step known to be made the resource may have changed.
 */
export class ApplyIncompleteError extends AdapterError {
  /** Request ids of the steps that were made, in order. */
  readonly requestIds: readonly string[];
  readonly stepsTotal: number;
  /** The failed step, when it may have taken effect. */
  readonly unconfirmed: string | undefined;
  constructor(
    cause: AdapterError,
    requestIds: readonly string[],
    stepsTotal: number,
    failedStep: string,
    unconfirmed = false,
  ) {
    const how = unconfirmed ? ' without a definite answer (it may have taken effect)' : '';
    super(cause.kind, `${requestIds.length} of ${stepsTotal} step(s) applied, then "${failedStep}" failed${how}`, {
      cause,
      ...(cause.requestId !== undefined ? { requestId: cause.requestId } : {}),
    });
    this.name = 'ApplyIncompleteError';
    this.requestIds = [...requestIds];
    this.stepsTotal = stepsTotal;
    this.unconfirmed = unconfirmed ? failedStep : undefined;
  }
}

/**
 * A change the cloud accepted whose end was not seen: a long-running operation still running after the waits
 * allowed, or the wait for it failing (timed out, refused, the operation not found). The change may have taken
 * effect, whatever the kind of the failure that ended the watch (which this keeps), so `applyPlanned` names
 * the step as unconfirmed rather than recording a clean failure.
 */
export class OutcomeUnknownError extends AdapterError {
  constructor(cause: AdapterError, message: string) {
    super(cause.kind, message, standingFor(cause));
    this.name = 'OutcomeUnknownError';
  }
}

/**
 * The options of an AdapterError that stands for `cause` (same kind, another name or message): the cause
 * itself, and its Retry-After and request id, so that waits and evidence read the same as on the cause.
 */
export const standingFor = (
  cause: AdapterError,
): { cause: AdapterError; retryAfterSeconds?: number; requestId?: string } => ({
  cause,
  ...(cause.retryAfterSeconds !== undefined ? { retryAfterSeconds: cause.retryAfterSeconds } : {}),
  ...(cause.requestId !== undefined ? { requestId: cause.requestId } : {}),
});

/** Our own configuration (registry, policy, exceptions) is invalid: names the file and the field. */
export class ConfigError extends CloseloopError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ConfigError';
  }
}

/** A command or request was used wrongly (CLI usage, unknown case key). */
export class UsageError extends CloseloopError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'UsageError';
  }
}

/** A conditional write lost a race more times than the retry budget allows. */
export class ConflictError extends AdapterError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('conflict', message, options);
    this.name = 'ConflictError';
  }
}

/**
 * The live state no longer matches the before-state of the plan being applied (someone changed the resource
 * since it was planned): nothing was called. The remediation stage tells it from other conflicts: an
 * approval of that plan does not carry over to the resource as it is now.
 */
export class PlanOutdatedError extends AdapterError {
  constructor(message: string) {
    super('conflict', message);
    this.name = 'PlanOutdatedError';
  }
}

export const kindOf = (e: unknown): ErrorKind | undefined =>
  e instanceof Error && 'kind' in e && typeof (e as { kind: unknown }).kind === 'string'
    ? (e as { kind: ErrorKind }).kind
    : undefined;

export const isThrottled = (e: unknown): boolean => kindOf(e) === 'throttled';
export const isTransient = (e: unknown): boolean => kindOf(e) === 'transient';
export const isDenied = (e: unknown): boolean => kindOf(e) === 'denied';
export const isGone = (e: unknown): boolean => kindOf(e) === 'gone';
export const isConflict = (e: unknown): boolean => kindOf(e) === 'conflict';
export const isInvalid = (e: unknown): boolean => kindOf(e) === 'invalid';
export const isRetryable = (e: unknown): boolean => isThrottled(e) || isTransient(e);

/**
 * How an adapter reads some statuses otherwise than {@link kindOfHttpStatus}: a status's own kind; `4xx`, the
 * kind of every 4xx not named here; `none`, the kind when there is no status or one below 400 (no HTTP error
 * answer: a reset socket, a network failure).
 */
export type HttpStatusKinds = Readonly<Partial<Record<number | '4xx' | 'none', ErrorKind>>>;

/** The 4xx statuses that do not describe a bad request. */
const KIND_OF_4XX: Readonly<Record<number, ErrorKind>> = {
  401: 'denied',
  403: 'denied',
  404: 'gone',
  410: 'gone',
  409: 'conflict',
  412: 'conflict',
  // 408: the server gave up waiting for the request; 425 Too Early: not processed, send it later. The moment,
  // not the request, though a 4xx (GCS answers 408 under load and documents it as retryable).
  408: 'transient',
  425: 'throttled',
  429: 'throttled',
};

/**
 * The kind of an HTTP status: 401/403 denied, 404/410 gone, 409/412 conflict, 429/425 throttled, 408 and 5xx
 * transient, any other 4xx invalid; no status (or one below 400) transient: no answer is the moment, not the
 * request. An adapter's deliberate differences go in `overrides`, written and explained where it calls.
 *
 * @example kindOfHttpStatus(410) // 'gone'
 * @example kindOfHttpStatus(410, { 410: 'invalid' }) // 'invalid'
 */
export function kindOfHttpStatus(status: number | undefined, overrides: HttpStatusKinds = {}): ErrorKind {
  if (status === undefined || !(status >= 400)) return overrides.none ?? 'transient';
  return overrides[status] ?? (status < 500 ? (overrides['4xx'] ?? KIND_OF_4XX[status] ?? 'invalid') : 'transient');
}

export const errorMessage = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** True when `e` is a system error with this `code` (`ENOENT`, `EEXIST`…), as Node's fs calls throw. */
export const hasErrorCode = (e: unknown, code: string): boolean => e instanceof Error && 'code' in e && e.code === code;

/**
 * The wait (seconds) a retryable error asks for after the `attempt`-th failure of its work (1 = the first): the
 * entry of its `retryAfterSchedule` for that attempt, the last entry repeating. Undefined for an error without a
 * schedule, one that only carries a remote's Retry-After included: a queue that delivered such a message again
 * after the remote's few seconds would spend its receives (then the DLQ) within a minute of a lasting throttle,
 * where its visibility timeout spreads them over hours.
 *
 * @example scheduledRetryAfterSeconds(new CaseNotWrittenError('k', 2, 1), 3) // 60
 */
export function scheduledRetryAfterSeconds(e: unknown, attempt: number): number | undefined {
  if (!isRetryable(e) || !(e instanceof Error) || !('retryAfterSchedule' in e)) return undefined;
  const schedule = e.retryAfterSchedule;
  if (!Array.isArray(schedule) || schedule.length === 0) return undefined;
  const n = Number.isFinite(attempt) && attempt >= 1 ? Math.floor(attempt) : 1;
  const wait: unknown = schedule[Math.min(n, schedule.length) - 1];
  return typeof wait === 'number' && Number.isFinite(wait) && wait >= 0 ? wait : undefined;
}
