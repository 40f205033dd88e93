// What the function bundles take for `mnemonist/lru-cache` (see `smallLruCache` in bundle-functions.mjs): the
// AWS SDK's endpoint cache (`@aws-sdk/endpoint-cache`, built by every DynamoDB client for endpoint
// discovery) is its one user, and asks for `new LRUCache(capacity)`, `get`, `set`, `has`, `peek` and `clear`.
// mnemonist's typed-array cache and the iterator library it brings weigh ~7 KB in every cold start; a Map
// keeps insertion order, which is all a least-recently-used cache needs. test/infra/lru-cache-shim.test.ts
// holds it to mnemonist's behaviour.

/** A least-recently-used cache of at most `capacity` entries: `get` and `set` make an entry the newest. */
export default class LRUCache {
  /** @param {number} capacity */
  constructor(capacity) {
    if (typeof capacity !== 'number' || capacity <= 0)
      throw new Error('mnemonist/LRUCache.constructor: capacity should be positive number.');
    this.capacity = capacity;
    /** @type {Map<unknown, unknown>} */
    this.items = new Map();
  }

  get size() {
    return this.items.size;
  }

  has(key) {
    return this.items.has(key);
  }

  /** The value, without making it the newest. */
  peek(key) {
    return this.items.get(key);
  }

  get(key) {
    if (!this.items.has(key)) return undefined;
    const value = this.items.get(key);
    this.items.delete(key);
    this.items.set(key, value);
    return value;
  }

  set(key, value) {
    if (this.items.has(key)) this.items.delete(key);
    else if (this.items.size >= this.capacity) this.items.delete(this.items.keys().next().value);
    this.items.set(key, value);
    return this;
  }

  clear() {
    this.items.clear();
  }
}
