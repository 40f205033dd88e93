import fc from 'fast-check';
import * as mnemonist from 'mnemonist/lru-cache.js';
import { describe, expect, it } from 'vitest';
// @ts-expect-error: a plain .mjs script without declarations
import ShimLru from '../../scripts/lru-cache-shim.mjs';

// The CommonJS module's `module.exports` is the class (its declarations say `export =`).
const MnemonistLru = ((mnemonist as { default?: unknown }).default ?? mnemonist) as unknown as new (
  capacity: number,
) => object;

type Op = ['get' | 'has' | 'peek', number] | ['set', number, number] | ['clear'];

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.tuple(fc.constantFrom('get' as const, 'has' as const, 'peek' as const), fc.integer({ min: 0, max: 9 })),
  fc.tuple(fc.constant('set' as const), fc.integer({ min: 0, max: 9 }), fc.integer()),
  fc.constant(['clear'] as ['clear']),
);

/** What a cache answers to a sequence of calls, and what it holds (by `has`) after each. */
function replay(cache: { [k: string]: (...a: number[]) => unknown }, ops: readonly Op[]): unknown[] {
  const seen: unknown[] = [];
  for (const [name, ...args] of ops) {
    const answer = cache[name]?.(...args);
    seen.push(
      name === 'set' ? null : answer,
      [...Array(10).keys()].filter((k) => cache.has?.(k)),
    );
  }
  return seen;
}

describe('the LRU cache the function bundles take for mnemonist/lru-cache', () => {
  it('answers every sequence of the calls the AWS SDK makes as mnemonist does, evictions included', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5 }), fc.array(op, { maxLength: 60 }), (capacity, ops) => {
        const real = new MnemonistLru(capacity) as unknown as {
          [k: string]: (...a: number[]) => unknown;
        };
        const shim = new ShimLru(capacity) as { [k: string]: (...a: number[]) => unknown };
        expect(replay(shim, ops)).toEqual(replay(real, ops));
      }),
      { numRuns: 300 },
    );
  });

  it('evicts the entry read least recently, not the one written first', () => {
    // Prepare
    const cache = new ShimLru(2);
    cache.set('a', 1);
    cache.set('b', 2);
    cache.get('a');
    // Act
    cache.set('c', 3);
    // Assess
    expect([cache.has('a'), cache.has('b'), cache.has('c'), cache.size]).toEqual([true, false, true, 2]);
  });

  it('refuses a capacity that is not a positive number, as mnemonist does', () => {
    expect(() => new ShimLru(0)).toThrow(/capacity should be positive number/);
    expect(() => new MnemonistLru(0)).toThrow(/capacity should be positive number/);
  });
});
