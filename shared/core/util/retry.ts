/**
 * Bounded retries with capped exponential backoff and full jitter, honouring the remote's
 * `Retry-After` (carried on AdapterError.retryAfterSeconds). Only `throttled` and `transient`
 * errors are retried by default: a 4xx describes the request, not the moment (house style §6).
 *
 * @see https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/ (full jitter)
 * @see https://developer.atlassian.com/cloud/jira/platform/rate-limiting/ (Retry-After, X-RateLimit-Reset)
 */
import { AdapterError, isRetryable } from '../errors.js';

/** Waits `ms` milliseconds; injectable so tests do not wait. */
export type Sleep = (ms: number) => Promise<void>;
export const realSleep: Sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export interface RetryOptions {
  /** Total attempts including the first (≥ 1). */
  maxAttempts: number;
  baseDelayMs: number;
  /** Upper bound of one wait. A Retry-After longer than this stops retrying (the caller reschedules). */
  maxDelayMs: number;
  /**
   * Upper bound of the whole run, attempts and waits together: a wait that would end past it is not started
   * (the caller reschedules). A run can still last this plus one attempt. Without it, `maxAttempts` waits of
   * up to `maxDelayMs` each add up past a function's timeout once a caller makes a few calls in a row.
   */
  maxElapsedMs?: number;
  /** Milliseconds now, for `maxElapsedMs`; injectable so tests that do not wait still see time pass. */
  now?: () => number;
  sleep?: Sleep;
  /** Source of randomness for jitter, in [0, 1); injectable for deterministic tests. */
  random?: () => number;
  /** Which errors are worth another attempt; default: throttled or transient. */
  retryable?: (e: unknown, attempt: number) => boolean;
  /** Called before each wait (logging, metrics, or a check such as "was it created after all?"). */
  onRetry?: (info: { error: unknown; attempt: number; delayMs: number }) => void | Promise<void>;
}

/**
 * The wait before attempt `attempt + 1`: Retry-After when the remote said so, else full jitter over
 * `min(maxDelayMs, baseDelayMs · 2^(attempt-1))`. Returns undefined when the remote asked for longer
 * than `maxDelayMs` (waiting that long inside one invocation would block everything behind it).
 */
export function backoffDelay(
  error: unknown,
  attempt: number,
  options: Pick<RetryOptions, 'baseDelayMs' | 'maxDelayMs' | 'random'>,
): number | undefined {
  const retryAfter = error instanceof AdapterError ? error.retryAfterSeconds : undefined;
  if (retryAfter !== undefined) {
    const ms = Math.max(0, Math.ceil(retryAfter * 1000));
    return ms > options.maxDelayMs ? undefined : ms;
  }
  const cap = Math.min(options.maxDelayMs, options.baseDelayMs * 2 ** Math.max(0, attempt - 1));
  return Math.floor((options.random ?? Math.random)() * cap);
}

/**
 * Runs `fn` until it succeeds, a non-retryable error occurs, or attempts run out; rethrows the last error.
 *
 * @example
 * const issue = await withRetry(() => jira.issues.getIssue({ issueIdOrKey: 'SEC-1' }), {
 *   maxAttempts: 5, baseDelayMs: 200, maxDelayMs: 10_000,
 * });
 */
export async function withRetry<T>(fn: (attempt: number) => Promise<T>, options: RetryOptions): Promise<T> {
  const sleep = options.sleep ?? realSleep;
  const retryable = options.retryable ?? ((e: unknown) => isRetryable(e));
  const now = options.now ?? Date.now;
  const started = now();
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (error) {
      if (attempt >= options.maxAttempts || !retryable(error, attempt)) throw error;
      const delayMs = backoffDelay(error, attempt, options);
      if (delayMs === undefined) throw error;
      if (options.maxElapsedMs !== undefined && now() - started + delayMs > options.maxElapsedMs) throw error;
      await options.onRetry?.({ error, attempt, delayMs });
      await sleep(delayMs);
    }
  }
}
