/**
 * What a failed PutEvents means, loaded by shared/adapters/bus/eventbridge.ts on its first failure.
 *
 * Only `InternalFailure` and `ThrottlingException` are worth another try (the API's PutEventsResultEntry
 * says so); the other codes (access denied, not authorized for the source or detail type, malformed detail,
 * invalid argument) fail the same way every time. Reporting them all as transient re-sent a denied publish
 * on every redelivery of its message until the queue dead-lettered it, logged as retryable all along.
 * @see https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutEventsResultEntry.html
 */
import type { PutEventsRequestEntry, PutEventsResultEntry } from '@aws-sdk/client-eventbridge';
import { AdapterError, type ErrorKind, kindOfHttpStatus } from '../../core/errors.js';

/** The kind of a failed entry's `ErrorCode`: throttled, transient, denied, or (any other code) invalid. */
export function entryErrorKind(code: string): ErrorKind {
  if (/^(ThrottlingException|Throttling|TooManyRequestsException)$/.test(code)) return 'throttled';
  if (/^(InternalFailure|InternalException|ServiceUnavailable)$/.test(code)) return 'transient';
  if (/^(AccessDenied|AccessDeniedException|NotAuthorized\w*)$/.test(code)) return 'denied';
  return 'invalid';
}

/**
 * PutEvents' reading of a status, after a 429 and the error's name: a 4xx is invalid but for 401/403 and 408
 * (a 404, 409/412, 410 or 425 too, not as the shared reading has them), as this adapter has read them from
 * the start.
 */
const PUT_EVENTS_STATUS_KINDS = { '4xx': 'invalid', 401: 'denied', 403: 'denied', 408: 'transient' } as const;

/**
 * A PutEvents call that threw, by the SDK's error name and HTTP status: throttling → throttled, a refusal
 * (AccessDeniedException comes with a 400) → denied, another 4xx → invalid; a 5xx, a 408 and an error
 * EventBridge did not answer with (a socket error, no status) → transient.
 */
export function putEventsError(e: unknown): AdapterError {
  const name = e instanceof Error ? e.name : '';
  const status = (e as { $metadata?: { httpStatusCode?: unknown } } | null)?.$metadata?.httpStatusCode;
  const kind: ErrorKind =
    /^(ThrottlingException|Throttling|TooManyRequestsException)$/.test(name) || status === 429
      ? 'throttled'
      : /^(AccessDenied\w*|NotAuthorized\w*|UnrecognizedClientException|InvalidClientTokenId|ExpiredToken\w*)$/.test(
            name,
          )
        ? 'denied'
        : kindOfHttpStatus(typeof status === 'number' ? status : undefined, PUT_EVENTS_STATUS_KINDS);
  return new AdapterError(kind, `PutEvents failed (${kind}${name && name !== 'Error' ? `: ${name}` : ''})`, {
    cause: e,
  });
}

/**
 * Splits the entries of a call with failures (results are positional: entry i ↔ result i) into those to
 * send again (throttled, internal failure, no result) with their codes, and adds the others' codes to `refused`.
 */
export function triage(
  sent: readonly PutEventsRequestEntry[],
  results: readonly PutEventsResultEntry[],
  refused: string[],
): { pending: PutEventsRequestEntry[]; codes: string[] } {
  const pending: PutEventsRequestEntry[] = [];
  const codes: string[] = [];
  sent.forEach((entry, i) => {
    const result = results[i];
    const code = result === undefined ? 'NoResult' : result.ErrorCode;
    if (code === undefined) return;
    const kind = code === 'NoResult' ? 'transient' : entryErrorKind(code);
    if (kind === 'throttled' || kind === 'transient') {
      pending.push(entry);
      codes.push(code);
    } else refused.push(code);
  });
  return { pending, codes };
}

/** Entries still failing, for a retryable reason, after every try. */
export const stillFailing = (count: number, maxAttempts: number, codes: readonly string[]): AdapterError =>
  new AdapterError(
    'transient',
    `PutEvents: ${count} entries still failing after ${maxAttempts} tries (${[...new Set(codes)].join(', ')})`,
  );

/** Entries refused for good: denied when one was refused access, else invalid. */
export const refusal = (refused: readonly string[]): AdapterError =>
  new AdapterError(
    refused.some((c) => entryErrorKind(c) === 'denied') ? 'denied' : 'invalid',
    `PutEvents: ${refused.length} entries refused (${[...new Set(refused)].join(', ')}), not retried`,
  );
