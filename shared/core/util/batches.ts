/**
 * Greedy batching under an API's per-call limits (entries and payload bytes), in order: PutEvents, SQS
 * SendMessageBatch. An item larger than `maxBytes` goes in a batch of its own (the caller decides whether
 * that is an error).
 *
 * @example batchesOf(entries, entrySize, { maxItems: 10, maxBytes: 256 * 1024 })
 */
export function batchesOf<T>(
  items: readonly T[],
  sizeOf: (item: T) => number,
  limits: { maxItems: number; maxBytes: number },
): T[][] {
  const batches: T[][] = [];
  let current: T[] = [];
  let bytes = 0;
  for (const item of items) {
    const size = sizeOf(item);
    if (current.length > 0 && (current.length === limits.maxItems || bytes + size > limits.maxBytes)) {
      batches.push(current);
      current = [];
      bytes = 0;
    }
    current.push(item);
    bytes += size;
  }
  if (current.length > 0) batches.push(current);
  return batches;
}
