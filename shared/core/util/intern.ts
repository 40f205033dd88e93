/**
 * Shared, frozen copies of small values that many findings and cases hold alike: a gate's outcome and
 * reason, a provenance sentence and set, an enrichment, a remediation verdict, an OCSF block, an empty list. A run over 100k findings then
 * keeps one object where it kept one per case: less to allocate, to hold and for the garbage collector to
 * copy (the young generation copies every object a case keeps, and that copying was a fifth of the
 * in-memory pipeline's time).
 *
 * Lookups build no key strings (hashing a freshly built sentence cost more than the copy it saved): a
 * value is keyed by what fully determines it (a short string it is made from, or the identities of other
 * shared values). Shared values are frozen, so a mutation anywhere throws instead of changing every
 * holder. Bounded: a table at its limit starts over (values handed out stay valid; later ones are just not
 * shared with earlier ones).
 */

/**
 * A bounded table of shared, frozen values whose key fully determines them (a gate result by its owner,
 * a provenance sentence by its tag key): a value is made on the first miss and handed out after.
 *
 * @example const ownerPass = new SharedTable<string, GateResult>(); ownerPass.get(owner) ?? ownerPass.set(owner, {...})
 */
export class SharedTable<K, V extends object> {
  readonly #table = new Map<K, V>();
  constructor(readonly limit = 10_000) {}

  get(key: K): V | undefined {
    return this.#table.get(key);
  }

  /** Records `value` (frozen) for `key` and returns it. */
  set(key: K, value: V): V {
    if (this.#table.size >= this.limit) this.#table.clear();
    this.#table.set(key, Object.freeze(value));
    return value;
  }
}

/** The one empty list every holder of an empty list shares (frozen: a push throws). */
export const EMPTY_LIST: never[] = Object.freeze([]) as unknown as never[];

/** The one empty tag set untagged resources share (frozen: an assignment throws). */
export const EMPTY_TAGS: Record<string, string> = Object.freeze({}) as Record<string, string>;

/** A trie node: its first children in small arrays scanned by identity, the rest in a Map. */
interface ListNode<T, V> {
  keys: T[];
  children: ListNode<T, V>[];
  more: Map<T, ListNode<T, V>> | undefined;
  value: V | undefined;
}
const FEW = 8;
const newNode = <T, V>(): ListNode<T, V> => ({ keys: [], children: [], more: undefined, value: undefined });

/**
 * A value per list of parts, looked up part by part with `===` (objects by identity, strings and other
 * primitives by value; no key string is built): a verdict's gates, an enrichment's provenance set. Object
 * parts must themselves be shared (a {@link SharedTable}'s, a trie's or constants) for lookups to hit.
 *
 * @example const lists = new IdentityTrie<GateResult, GateResult[]>(); lists.get(gates) ?? lists.set(gates, gates)
 */
export class IdentityTrie<T, V extends object> {
  #root: ListNode<T, V> = newNode();
  #nodes = 0;
  constructor(readonly limit = 10_000) {}

  #node(items: readonly T[], create: boolean): ListNode<T, V> | undefined {
    let node = this.#root;
    for (const item of items) {
      // Most nodes have a child or two: an identity scan costs less than hashing the item (and a plain
      // loop less than indexOf over keys of mixed kinds).
      const keys = node.keys;
      let i = 0;
      while (i < keys.length && keys[i] !== item) i++;
      let child = i < keys.length ? node.children[i] : node.more?.get(item);
      if (child === undefined) {
        if (!create) return undefined;
        child = newNode();
        if (node.keys.length < FEW) {
          node.keys.push(item);
          node.children.push(child);
        } else {
          node.more ??= new Map();
          node.more.set(item, child);
        }
        this.#nodes++;
      }
      node = child;
    }
    return node;
  }

  get(items: readonly T[]): V | undefined {
    return this.#node(items, false)?.value;
  }

  /** Records `value` (frozen) for `items` and returns it. */
  set(items: readonly T[], value: V): V {
    if (this.#nodes >= this.limit) {
      this.#root = newNode();
      this.#nodes = 0;
    }
    const node = this.#node(items, true) as ListNode<T, V>;
    node.value = Object.freeze(value);
    return value;
  }
}
