/**
 * The ingest's dead letters (pipeline/ingest.ts keepRejected), loaded with the first rejection: the ingest
 * function's cold start reads every module imported statically (the bundle budget). It imports nothing,
 * so that no module moves out of the ingest's entry into a chunk of its own.
 */
import type { Rejected } from '../model/finding.js';
import type { WriteBatch } from '../ports.js';

/**
 * A dead letter per rejection, under its id (`ids[i]`, of its content: a redelivery writes the same letters
 * again). What was received is kept once per document: with the first of its rejections' letters (`raw`),
 * which the others name (`rawIn`). Kept with each, a Security Hub event of 100 rejected findings (up to
 * EventBridge's 256 KB) was written 100 times. A document's rejections come together, in the order normalize
 * found them; the same rejection twice is one letter written twice, the same both times.
 */
export function deadLetterPuts(
  letters: ReadonlyArray<{ r: Rejected; raw: unknown }>,
  ids: readonly string[],
  at: string,
  collection: string,
): WriteBatch['puts'] {
  let last: unknown;
  let holder = '';
  return letters.map(({ r, raw }, i) => {
    const id = ids[i] as string;
    if (raw !== last) {
      last = raw;
      holder = id;
    }
    const kept = raw === undefined ? {} : holder === id ? { raw } : { rawIn: holder };
    return { collection, id, value: { stage: 'ingest', ...r, at, ...kept } };
  });
}
