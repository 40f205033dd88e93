/**
 * Claim check for the Azure spoke's remediation queue. A Storage queue message holds at most 64 KiB, and the
 * Functions host base64-encodes what an output binding adds (host.json leaves `extensions.queues.messageEncoding`
 * at its default, `base64`), so about 48 KB of request JSON fits. A larger request (a rollback's big
 * before-state, long settings) failed the binding's write: the endpoint answered 500, the hub dead-lettered the
 * hand-over and paged, and every redrive failed the same way. Such a request is now stored as a blob in the
 * app's own storage, and the queue carries a pointer to it with the blob's SHA-256, which the worker checks
 * before it trusts what it read.
 *
 * @see https://learn.microsoft.com/azure/storage/queues/storage-queues-introduction (64 KiB messages)
 */
import { createHash } from 'node:crypto';
import type { BlobServiceClient } from '@azure/storage-blob';
import * as z from 'zod';
import { errorMessage } from '../../core/errors.js';
import { sha256Hex } from '../../core/util/hash.js';
import { azureAdapterError } from '../lookup/azure-tags.js';

/** What Azure Storage keeps of one queue message at most: 64 KiB of message text. */
export const QUEUE_MESSAGE_MAX_BYTES = 64 * 1024;
/**
 * Room left under that cap: the host serializes the binding's value itself, and its JSON may escape a few
 * characters differently from JSON.stringify.
 */
export const QUEUE_MESSAGE_MARGIN_BYTES = 4 * 1024;

/** The bytes the queue stores for a message whose JSON is `json`: its UTF-8 bytes, base64-encoded. */
export const queuedBytes = (json: string): number => 4 * Math.ceil(Buffer.byteLength(json, 'utf8') / 3);

/** Whether `json` goes on the queue as it is (else by claim check). */
export const fitsQueueMessage = (json: string): boolean =>
  queuedBytes(json) <= QUEUE_MESSAGE_MAX_BYTES - QUEUE_MESSAGE_MARGIN_BYTES;

/**
 * The queue message that stands for a stored request.
 * @example { "claimCheck": { "container": "remediate-requests-large", "blob": "rq-3f2a….json", "sha256": "<64 hex>" } }
 */
export const ClaimCheckSchema = z.strictObject({
  claimCheck: z.strictObject({
    container: z.string().min(3).max(63),
    blob: z.string().min(1).max(1024),
    sha256: z.string().regex(/^[0-9a-f]{64}$/, 'a lower-case hex SHA-256'),
  }),
});
export type ClaimCheck = z.infer<typeof ClaimCheckSchema>;

/** Where requests too large for a queue message are kept (the one call each side makes). */
export interface ClaimCheckBlobs {
  /** The container; pointers naming any other are refused. */
  readonly container: string;
  /** Writes (or overwrites) the blob. */
  put(blob: string, body: string): Promise<void>;
  /** The blob's bytes; undefined when there is no such blob. */
  get(blob: string): Promise<Buffer | undefined>;
}

/**
 * The blob of a request, from its requestId: the hub sends the same id when it hands the same request over
 * again (an API destination's retry, a redrive), so a retried hand-over overwrites its own blob instead of
 * adding one. An id a blob name should not carry as it is goes by its hash.
 */
export function claimCheckBlobName(requestId: string): string {
  return /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/.test(requestId)
    ? `${requestId}.json`
    : `sha256-${sha256Hex(requestId)}.json`;
}

/**
 * What the endpoint puts on the queue for `request`: the request itself when its message fits, else a
 * {@link ClaimCheck} once its JSON is stored (a throw when it could not be: the endpoint answers 5xx).
 *
 * @example context.extraOutputs.set(queued, await queueMessageFor(request, blobs));
 */
export async function queueMessageFor<T extends { requestId: string }>(
  request: T,
  blobs: ClaimCheckBlobs,
): Promise<T | ClaimCheck> {
  const json = JSON.stringify(request);
  if (fitsQueueMessage(json)) return request;
  const blob = claimCheckBlobName(request.requestId);
  await blobs.put(blob, json);
  return { claimCheck: { container: blobs.container, blob, sha256: sha256Hex(json) } };
}

/** A queue message as the worker runs it: the request's JSON value (read from its blob for a claim check), or why not. */
export type Redeemed = { value: unknown; claimCheck?: ClaimCheck['claimCheck'] } | { unrunnable: string };

/**
 * The request a queue message carries: the message itself, or for a claim check the stored request, once its
 * SHA-256 matches the pointer's and it names the blob it was read from. A pointer that is malformed, names
 * another container, or whose blob is missing, altered or unreadable is `unrunnable` (set aside with the
 * reason: retrying cannot fix it); a failed read throws, for the queue to retry.
 */
export async function redeemClaimCheck(message: unknown, blobs: ClaimCheckBlobs): Promise<Redeemed> {
  if (typeof message !== 'object' || message === null || !('claimCheck' in message)) return { value: message };
  const parsed = ClaimCheckSchema.safeParse(message);
  if (!parsed.success) return { unrunnable: `claim check: ${z.prettifyError(parsed.error)}` };
  const pointer = parsed.data.claimCheck;
  const where = `claim check ${pointer.container}/${pointer.blob}`;
  // The app's identity may read the whole account: a pointer is followed into its own container only.
  if (pointer.container !== blobs.container)
    return { unrunnable: `${where}: refused, requests are kept in ${blobs.container} only` };
  const body = await blobs.get(pointer.blob);
  if (body === undefined)
    return {
      unrunnable: `${where}: the blob is missing (expired by the container's lifecycle rule, or deleted); not run`,
    };
  const sha256 = createHash('sha256').update(body).digest('hex');
  if (sha256 !== pointer.sha256)
    return {
      unrunnable: `${where}: the blob's sha256 is ${sha256}, the queued pointer says ${pointer.sha256}: altered since it was queued; not run`,
    };
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch (e) {
    return { unrunnable: `${where}: not JSON (${errorMessage(e)}); not run` };
  }
  const requestId = z.object({ requestId: z.string() }).safeParse(value).data?.requestId;
  if (requestId === undefined || claimCheckBlobName(requestId) !== pointer.blob)
    return { unrunnable: `${where}: holds request ${JSON.stringify(requestId)}, not this blob's; not run` };
  return { value, claimCheck: pointer };
}

/**
 * {@link ClaimCheckBlobs} in an Azure blob container (the app's own storage, reached with its identity).
 * A write gives up after `putTimeoutMs` (the endpoint answers within an API destination's 5 seconds).
 *
 * @example azureClaimCheckBlobs('remediate-requests-large', () => clients.azureBlob(account))
 */
export function azureClaimCheckBlobs(
  container: string,
  service: () => Promise<BlobServiceClient>,
  { putTimeoutMs = 3_000, getTimeoutMs = 30_000 }: { putTimeoutMs?: number; getTimeoutMs?: number } = {},
): ClaimCheckBlobs {
  const client = async (blob: string) => (await service()).getContainerClient(container).getBlockBlobClient(blob);
  return {
    container,
    async put(blob, body) {
      const bytes = Buffer.from(body, 'utf8');
      try {
        await (await client(blob)).uploadData(bytes, {
          blobHTTPHeaders: { blobContentType: 'application/json' },
          abortSignal: AbortSignal.timeout(putTimeoutMs),
        });
      } catch (e) {
        throw azureAdapterError(e, `writing ${container}/${blob}`);
      }
    },
    async get(blob) {
      try {
        return await (await client(blob)).downloadToBuffer(0, undefined, {
          abortSignal: AbortSignal.timeout(getTimeoutMs),
        });
      } catch (e) {
        const status = (e as { statusCode?: unknown } | null)?.statusCode;
        if (status === 404) return undefined;
        throw azureAdapterError(e, `reading ${container}/${blob}`);
      }
    },
  };
}
