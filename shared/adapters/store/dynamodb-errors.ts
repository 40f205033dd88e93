/** The DynamoDB store's error mapping, loaded by it on the first error (see `classify` in dynamodb.ts). */
import { AdapterError, type ErrorKind } from '../../core/errors.js';

const KIND_BY_NAME: Record<string, ErrorKind> = {
  ProvisionedThroughputExceededException: 'throttled',
  ThrottlingException: 'throttled',
  RequestLimitExceeded: 'throttled',
  AccessDeniedException: 'denied',
  UnrecognizedClientException: 'denied',
  ResourceNotFoundException: 'gone',
  ValidationException: 'invalid',
  ItemCollectionSizeLimitExceededException: 'invalid',
  TransactionConflictException: 'conflict',
};

/** Maps an SDK error to the AdapterError family (house style §6); unknown errors count as transient. */
export function classify(operation: string, e: unknown): AdapterError {
  const name = e instanceof Error ? e.name : 'Error';
  const requestId = requestIdOf(e);
  return new AdapterError(KIND_BY_NAME[name] ?? 'transient', `DynamoDB ${operation} failed (${name})`, {
    cause: e,
    ...(requestId ? { requestId } : {}),
  });
}

function requestIdOf(e: unknown): string | undefined {
  if (typeof e !== 'object' || e === null || !('$metadata' in e)) return undefined;
  const meta: unknown = e.$metadata;
  if (typeof meta !== 'object' || meta === null || !('requestId' in meta)) return undefined;
  return typeof meta.requestId === 'string' ? meta.requestId : undefined;
}
