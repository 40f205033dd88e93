/**
 * The compiled predicate over closeloop's own model (findings and cases as the store holds them): stored
 * documents are re-read through it instead of zod's copying parse, so it may only accept what zod accepts
 * and parses to an equal value, and it must accept every finding and case the pipeline writes.
 */
import { execFileSync } from 'node:child_process';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import * as z from 'zod';
import { loadConfig } from '../../../shared/adapters/config/load.js';
import { type Case, CaseSchema } from '../../../shared/core/model/case.js';
import { type Finding, FindingSchema } from '../../../shared/core/model/finding.js';
import { decide } from '../../../shared/core/pipeline/decide.js';
import { createEnricher } from '../../../shared/core/pipeline/enrich.js';
import { normalize } from '../../../shared/core/pipeline/normalize.js';
import { silentLogger } from '../../../shared/core/ports.js';
import { acceptsWithoutCopy, parseWithoutCopy } from '../../../shared/core/util/accept.js';
import { allShapes, mutate, mutationArb } from '../../fuzz/helpers.js';

/** Every finding of every fixture and its new case, as JSON round-trips them (what a store hands back). */
let stored: Array<{ finding: Finding; case: Case }> = [];
beforeAll(async () => {
  const config = await loadConfig('examples/config');
  const enricher = createEnricher({ registry: config.registry, policy: config.policy.enrichment, log: silentLogger });
  stored = allShapes().flatMap((shape) =>
    normalize(shape.value, shape.name).findings.map((f) => {
      const enrichment = enricher.enrichSync(f);
      if (!enrichment) throw new Error('no sync enrichment');
      const d = decide({
        finding: f,
        enrichment,
        exceptions: config.exceptions,
        policy: config.policy.decide,
        now: new Date('2026-11-20T12:00:00Z'),
      });
      return JSON.parse(JSON.stringify({ finding: f, case: d.next })) as { finding: Finding; case: Case };
    }),
  );
});

describe('acceptsWithoutCopy over the model', () => {
  it('accepts every stored finding and case, and zod parses each to an equal value', () => {
    // Act
    const verdicts = stored.map((s) => ({
      finding: acceptsWithoutCopy(FindingSchema, s.finding),
      case: acceptsWithoutCopy(CaseSchema, s.case),
    }));
    // Assess
    expect(stored.length).toBeGreaterThan(10);
    for (const [i, v] of verdicts.entries())
      expect(v, stored[i]?.finding.sourceId).toEqual({ finding: true, case: true });
    for (const s of stored) {
      expect(FindingSchema.parse(s.finding)).toStrictEqual(s.finding);
      expect(CaseSchema.parse(s.case)).toStrictEqual(s.case);
    }
  });

  it('never accepts a mutated finding or case that zod rejects or would change', () => {
    fc.assert(
      fc.property(
        fc.nat(),
        fc.boolean(),
        fc.array(mutationArb, { minLength: 1, maxLength: 4 }),
        (pick, asCase, mutations) => {
          // Prepare
          const s = stored[pick % stored.length];
          if (!s) return;
          const schema: z.ZodType = asCase ? CaseSchema : FindingSchema;
          const value = mutate(asCase ? s.case : s.finding, mutations);
          // Act
          const fast = acceptsWithoutCopy(schema, value);
          const parsed = schema.safeParse(value);
          // Assess
          if (fast) {
            expect(parsed.success).toBe(true);
            expect(parsed.data).toStrictEqual(value);
          }
        },
      ),
      { numRuns: 1500 },
    );
  });

  it('leaves to zod what its parse would change or refuse when objects strip, defaults fill or formats fail', () => {
    // Prepare
    const schema = z.object({
      at: z.iso.datetime({ offset: true }),
      kind: z.enum(['a', 'b']),
      one: z.literal(1),
      tags: z.record(z.string(), z.string()),
      list: z.array(z.string()).default([]),
      n: z.number().int().min(0).max(6),
    });
    const good = { at: '2026-11-20T12:00:00.000Z', kind: 'a', one: 1, tags: { k: 'v' }, list: [], n: 6 };
    // Act / Assess
    expect(acceptsWithoutCopy(schema, good)).toBe(true);
    expect(acceptsWithoutCopy(schema, { ...good, extra: true })).toBe(false); // zod would strip it
    expect(acceptsWithoutCopy(z.strictObject({ a: z.string() }), { a: 'x', b: 1 })).toBe(false);
    const { list: _list, ...noList } = good;
    expect(acceptsWithoutCopy(schema, noList)).toBe(false); // zod would fill the default in
    expect(acceptsWithoutCopy(schema, { ...good, at: '2026-02-30T12:00:00Z' })).toBe(false);
    expect(acceptsWithoutCopy(schema, { ...good, kind: 'c' })).toBe(false);
    expect(acceptsWithoutCopy(schema, { ...good, one: 2 })).toBe(false);
    expect(acceptsWithoutCopy(schema, { ...good, tags: { k: 1 } })).toBe(false);
    expect(acceptsWithoutCopy(schema, { ...good, n: 7 })).toBe(false);
    expect(acceptsWithoutCopy(schema, { ...good, n: -1 })).toBe(false);
    expect(acceptsWithoutCopy(z.string().url(), 'not a url')).toBe(false); // formats with code of their own
  });
});

describe('the generated predicate', () => {
  it('reads members the way zod does: prototype names, own undefined members, other prototypes', () => {
    // Prepare
    const schema = z.object({ constructor: z.string().optional(), toString: z.number(), a: z.string().optional() });
    class Holder {
      toString = 1;
    }
    const bare = Object.assign(Object.create(null) as object, { toString: 1 });
    const values: unknown[] = [
      { toString: 1 }, // zod reads the inherited constructor and refuses it
      { toString: 1, constructor: 'x' },
      { toString: 1, constructor: 2 },
      {},
      { toString: 1, constructor: 'x', a: undefined },
      new Holder(),
      bare,
      JSON.parse('{"toString":1,"constructor":"x","__proto__":{}}'),
    ];
    // Act
    const fast = values.map((v) => acceptsWithoutCopy(schema, v));
    // Assess
    expect(fast).toEqual([false, true, false, false, true, false, true, false]);
    for (const [i, v] of values.entries()) {
      if (!fast[i]) continue;
      const parsed = schema.safeParse(v);
      expect(parsed.success, String(i)).toBe(true);
      expect(parsed.data, String(i)).toStrictEqual({ ...(v as object) });
    }
  });

  it('leaves every value to zod where the process forbids code generation', () => {
    // Prepare: a child node that may not compile strings (as some hardened runtimes run)
    const script = [
      "import * as z from 'zod';",
      "import { acceptsWithoutCopy, parseWithoutCopy } from './shared/core/util/accept.ts';",
      'const s = z.object({ a: z.string() });',
      'console.log(JSON.stringify([acceptsWithoutCopy(s, { a: "x" }), parseWithoutCopy(s, { a: "x", b: 1 })]));',
    ].join('\n');
    // Act
    const out = execFileSync(
      process.execPath,
      ['--disallow-code-generation-from-strings', '--import', 'tsx', '--input-type=module', '-e', script],
      { encoding: 'utf8' },
    );
    // Assess
    expect(JSON.parse(out)).toEqual([false, { a: 'x' }]);
  });
});

describe('parseWithoutCopy', () => {
  it('returns the value itself when valid and what zod makes of it otherwise', () => {
    // Prepare
    const s = stored[0];
    if (!s) throw new Error('no fixture');
    const withExtra = { ...s.case, stray: 1 };
    // Act / Assess
    expect(parseWithoutCopy(CaseSchema, s.case)).toBe(s.case);
    expect(parseWithoutCopy(CaseSchema, withExtra)).toStrictEqual(s.case);
    expect(() => parseWithoutCopy(FindingSchema, { ...s.finding, key: 'nope' })).toThrow(z.ZodError);
  });
});
