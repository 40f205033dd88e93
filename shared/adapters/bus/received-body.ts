/** What the AWS hub ingest keeps of a queue message it dead-letters (loaded on the first rejection, off the hot path). */

/**
 * A body kept whole with its dead letter up to this many bytes (an EventBridge event takes 256 KB; one store
 * item 400 KB, and the store keeps a value as JSON text). Above it, or not JSON, its first
 * {@link UNREADABLE_BODY_KEPT} characters are kept (each may take up to six as JSON text, `\u0000`).
 */
export const BODY_KEPT_WHOLE = 300_000;
export const UNREADABLE_BODY_KEPT = 32_768;

/** The body as received: its JSON value (`parsed` when read already), or the start of its text (see BODY_KEPT_WHOLE). */
export function receivedBody(body: string, parsed?: unknown): unknown {
  if (Buffer.byteLength(body, 'utf8') > BODY_KEPT_WHOLE) return body.slice(0, UNREADABLE_BODY_KEPT);
  if (parsed !== undefined) return parsed;
  try {
    return JSON.parse(body);
  } catch {
    return body.slice(0, UNREADABLE_BODY_KEPT);
  }
}
