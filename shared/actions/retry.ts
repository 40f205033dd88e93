/**
 * Cloud SDK errors → AdapterError kinds, and a bounded retry for the two kinds that describe the moment
 * rather than the request (`throttled`, `transient`), honouring Retry-After (house style §6, jira.js
 * `withRetry`). AWS, Azure (RestError) and Google (ApiError with an HTTP code, GoogleError with a gRPC
 * code) all land in one family, so the stage reads `isDenied(e)` instead of knowing three SDKs.
 */
import { AdapterError, type ErrorKind, errorMessage, isRetryable, kindOfHttpStatus } from '../core/errors.js';

/** Error names/codes that mean "the caller may not do this" across the three clouds. */
const DENIED =
  /^(AccessDenied|AccessDeniedException|UnauthorizedOperation|AuthorizationFailed|Forbidden|AuthorizationPermissionMismatch|InvalidClientTokenId|UnrecognizedClientException|ExpiredToken|PERMISSION_DENIED)$/i;
/** … "slow down". */
const THROTTLED =
  /^(Throttling|ThrottlingException|ThrottledException|RequestLimitExceeded|SlowDown|TooManyRequests|TooManyRequestsException|RequestThrottled|RateExceeded|RESOURCE_EXHAUSTED)$/i;
/** … "it is not there" (any `NoSuch*`, EC2's `*.NotFound`, Azure `*NotFound`). */
const GONE = /^(NoSuch\w*|\w*NotFound|\w*\.NotFound|NOT_FOUND|ResourceNotFound)$/i;
const CONFLICT = /^(Conflict|ConcurrentModification|OperationAborted|PreconditionFailed|ABORTED|FAILED_PRECONDITION)$/;
/**
 * … "no answer, or no usable one, this time": the AWS SDK's own timeouts are errors named `TimeoutError`
 * whose message says "timed out" (@smithy/node-http-handler), Node's socket errors carry their code, Azure's
 * pipeline wraps a failed send as `REQUEST_SEND_ERROR`, and a service's own "try again" names.
 */
const TRANSIENT =
  /^(TimeoutError|RequestTimeout|RequestTimeoutException|ECONNRESET|ETIMEDOUT|EPIPE|ECONNREFUSED|EAI_AGAIN|REQUEST_SEND_ERROR|InternalError|InternalFailure|InternalServerError|ServiceUnavailable|ServiceUnavailableException)$/;

/** gRPC status codes used by google-gax (REST fallback included). */
const GRPC_KIND: Record<number, ErrorKind> = {
  3: 'invalid', // INVALID_ARGUMENT
  4: 'transient', // DEADLINE_EXCEEDED
  5: 'gone', // NOT_FOUND
  7: 'denied', // PERMISSION_DENIED
  8: 'throttled', // RESOURCE_EXHAUSTED
  9: 'conflict', // FAILED_PRECONDITION
  10: 'conflict', // ABORTED
  13: 'transient', // INTERNAL
  14: 'transient', // UNAVAILABLE
  16: 'denied', // UNAUTHENTICATED
};

const field = (o: unknown, key: string): unknown =>
  o !== null && typeof o === 'object' && key in o ? (o as Record<string, unknown>)[key] : undefined;

function headerOf(e: unknown, name: string): string | undefined {
  // AWS: e.$response.headers (plain object); Azure: e.response.headers.get(); Google: e.response.headers (object).
  for (const holder of [field(e, '$response'), field(e, 'response')]) {
    const headers = field(holder, 'headers');
    const get = field(headers, 'get');
    if (typeof get === 'function') {
      const v: unknown = get.call(headers, name);
      if (typeof v === 'string') return v;
    }
    const v = field(headers, name) ?? field(headers, name.toLowerCase());
    if (typeof v === 'string') return v;
  }
  return undefined;
}

function statusOf(e: unknown): number | undefined {
  const candidates = [
    field(field(e, '$metadata'), 'httpStatusCode'), // AWS SDK v3
    field(e, 'statusCode'), // Azure RestError
    field(field(e, 'response'), 'status'),
  ];
  const code = field(e, 'code');
  if (typeof code === 'number' && code >= 100) candidates.push(code); // Google ApiError: HTTP status
  return candidates.find((c): c is number => typeof c === 'number');
}

/** Seconds from a Retry-After header (delta-seconds or HTTP date); undefined when absent or unreadable. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, (at - now) / 1000);
}

/**
 * Classifies any SDK error into an AdapterError (kind, Retry-After, request id). An AdapterError passes
 * through unchanged. `what` names the call for the message (`s3:GetBucketAcl acme-logs`).
 *
 * @example classifyCloudError(Object.assign(new Error('no'), { name: 'AccessDenied' }), 's3:GetBucketAcl b').kind === 'denied'
 */
export function classifyCloudError(e: unknown, what: string): AdapterError {
  if (e instanceof AdapterError) return e;
  const names = [field(e, 'name'), field(e, 'Code'), field(e, 'code'), field(field(e, 'error'), 'code')].filter(
    (n): n is string => typeof n === 'string' && n !== 'Error',
  );
  const grpc = field(e, 'code');
  const status = statusOf(e);
  let kind: ErrorKind | undefined;
  for (const n of names) {
    if (DENIED.test(n)) kind = 'denied';
    else if (THROTTLED.test(n)) kind = 'throttled';
    else if (GONE.test(n)) kind = 'gone';
    else if (CONFLICT.test(n)) kind = 'conflict';
    else if (TRANSIENT.test(n)) kind = 'transient';
    if (kind) break;
  }
  // The shared reading, as it stands. Below 400 a status says nothing: a gRPC code or the message decides.
  kind ??= status !== undefined && status >= 400 ? kindOfHttpStatus(status) : undefined;
  if (!kind && typeof grpc === 'number' && grpc < 100) kind = GRPC_KIND[grpc];
  // A socket reset or timeout has no status: that is the moment, not the request.
  if (!kind && /ECONNRESET|ETIMEDOUT|ECONNREFUSED|EAI_AGAIN|socket hang up|TimeoutError/i.test(errorMessage(e))) {
    kind = 'transient';
  }
  kind ??= 'invalid';
  const requestId =
    field(field(e, '$metadata'), 'requestId') ?? headerOf(e, 'x-ms-request-id') ?? headerOf(e, 'x-amz-request-id');
  const retryAfterSeconds = parseRetryAfter(headerOf(e, 'retry-after'));
  return new AdapterError(kind, `${what} failed (${kind}${names[0] ? `: ${names[0]}` : ''})`, {
    cause: e,
    ...(retryAfterSeconds !== undefined ? { retryAfterSeconds } : {}),
    ...(typeof requestId === 'string' ? { requestId } : {}),
  });
}

export interface RetryOptions {
  /** Total attempts including the first (default 4). */
  attempts?: number;
  /** First backoff in ms, doubled each time with full jitter (default 200). */
  baseMs?: number;
  /** Cap of one wait; a Retry-After above it gives up rather than block a function for minutes (default 20 000). */
  maxMs?: number;
  sleep?: (ms: number) => Promise<void>;
}

const realSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Runs `fn`, classifying its errors; retries `throttled` and `transient` with capped exponential backoff
 * (or the server's Retry-After when it gave one). Everything else is thrown at once: a 4xx describes
 * the request, not the moment.
 */
export async function withRetry<R>(what: string, fn: () => Promise<R>, options: RetryOptions = {}): Promise<R> {
  const attempts = options.attempts ?? 4;
  const baseMs = options.baseMs ?? 200;
  const maxMs = options.maxMs ?? 20_000;
  const sleep = options.sleep ?? realSleep;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (raw) {
      const e = classifyCloudError(raw, what);
      if (!isRetryable(e) || attempt >= attempts) throw e;
      const asked = e.retryAfterSeconds !== undefined ? e.retryAfterSeconds * 1000 : undefined;
      if (asked !== undefined && asked > maxMs) throw e;
      await sleep(asked ?? Math.random() * Math.min(maxMs, baseMs * 2 ** (attempt - 1)));
    }
  }
}

/** Error names that say which class was thrown, not what the service answered. */
const GENERIC_NAMES = new Set(['Error', 'RestError']);

/**
 * The SDK's own error name/code behind a (classified) error, to tell one "not found" from another:
 * `NoSuchPublicAccessBlockConfiguration` is a state (no block configured), `NoSuchBucket` is a gone resource.
 */
export function sdkErrorCode(e: unknown): string | undefined {
  const inner = e instanceof AdapterError ? e.cause : e;
  for (const n of [field(inner, 'name'), field(inner, 'Code'), field(inner, 'code')]) {
    // Azure's RestError keeps the class name in `name` and the service's code (`ResourceNotFound`) in `code`.
    if (typeof n === 'string' && !GENERIC_NAMES.has(n)) return n;
  }
  return undefined;
}

/**
 * How long one Google API call may take before it fails as transient. The gax clients' own settings allow
 * 60 s per try and retry UNAVAILABLE (compute's reads DEADLINE_EXCEEDED too) for up to 600 s, ten times the
 * ingest function's 60 s and five times the remediate worker's 120 s (infra/gcp/main.tf): a Google outage
 * held a call until the function was killed, and its retries ran under `withRetry`'s, multiplying them.
 */
export const GCP_CALL_TIMEOUT_MS = 20_000;

/**
 * gax CallOptions for every Google API call closeloop makes: one try (`retry: null`: closeloop's bounded
 * retry is the only layer) with a deadline of {@link GCP_CALL_TIMEOUT_MS}. The deadline binds a gRPC call;
 * the REST transport (`fallback: true`) sends none, and needs {@link withDeadline} besides.
 */
export const GCP_CALL_OPTIONS: { timeout: number; retry: null } = { timeout: GCP_CALL_TIMEOUT_MS, retry: null };

/**
 * `call` settled within `ms`, or a `TimeoutError` (transient: retried by `withRetry`, and an outcome unknown
 * for a write). A gax promise's `cancel()` is called on timeout, which aborts the REST request.
 */
export function withDeadline<R>(call: Promise<R> & { cancel?: () => void }, ms: number, what: string): Promise<R> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      call.cancel?.();
      reject(Object.assign(new Error(`${what} timed out after ${ms} ms`), { name: 'TimeoutError' }));
    }, ms);
  });
  return Promise.race([call, expired]).finally(() => clearTimeout(timer));
}
