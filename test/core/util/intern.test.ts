/**
 * The shared-value tables behind gates, provenance and OCSF blocks: values are frozen, handed out again for
 * the same key, and the tables stay bounded.
 */
import { describe, expect, it } from 'vitest';
import { EMPTY_LIST, IdentityTrie, SharedTable } from '../../../shared/core/util/intern.js';

describe('SharedTable', () => {
  it('hands out the frozen value it recorded for a key and starts over at its limit', () => {
    // Prepare
    const table = new SharedTable<string, { n: number }>(2);
    // Act
    const one = table.set('a', { n: 1 });
    table.set('b', { n: 2 });
    const again = table.get('a');
    table.set('c', { n: 3 }); // the limit: the table starts over
    // Assess
    expect(again).toBe(one);
    expect(Object.isFrozen(one)).toBe(true);
    expect(table.get('a')).toBeUndefined();
    expect(table.get('c')).toEqual({ n: 3 });
    expect(one).toEqual({ n: 1 }); // values handed out stay valid
  });
});

describe('IdentityTrie', () => {
  it('finds a value by the identities of a list, not by equal contents', () => {
    // Prepare
    const trie = new IdentityTrie<object | undefined, { v: string }>();
    const x = { id: 1 };
    const y = { id: 2 };
    // Act
    const xy = trie.set([x, y], { v: 'xy' });
    trie.set([x, undefined], { v: 'x-' });
    // Assess
    expect(trie.get([x, y])).toBe(xy);
    expect(trie.get([x, undefined])).toEqual({ v: 'x-' });
    expect(trie.get([y, x])).toBeUndefined();
    expect(trie.get([x, { id: 2 }])).toBeUndefined();
    expect(trie.get([x])).toBeUndefined();
  });

  it('keeps many children of one node apart (the first few scanned, the rest hashed)', () => {
    // Prepare
    const trie = new IdentityTrie<object, { i: number }>();
    const items = Array.from({ length: 20 }, () => ({}));
    // Act
    for (const [i, item] of items.entries()) trie.set([item], { i });
    // Assess
    expect(items.map((item) => trie.get([item])?.i)).toEqual(items.map((_, i) => i));
    expect(trie.get([{}])).toBeUndefined();
  });

  it('starts over at its limit of nodes', () => {
    // Prepare
    const trie = new IdentityTrie<object, { v: number }>(3);
    const items = [{}, {}, {}, {}];
    // Act
    trie.set(items.slice(0, 3), { v: 1 });
    trie.set([items[3] as object], { v: 2 }); // three nodes recorded: the trie starts over first
    // Assess
    expect(trie.get(items.slice(0, 3))).toBeUndefined();
    expect(trie.get([items[3] as object])).toEqual({ v: 2 });
  });
});

describe('EMPTY_LIST', () => {
  it('is empty and refuses additions', () => {
    expect(EMPTY_LIST).toEqual([]);
    expect(() => (EMPTY_LIST as string[]).push('x')).toThrow(TypeError);
  });
});
