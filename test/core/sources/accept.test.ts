/**
 * The compiled acceptance predicate behind `parseOrReject`: it may only ever accept what the zod schema
 * accepts, with zod's result equal to the input (so the input can stand in for the parse result), and it
 * must accept every documented shape (or the hot path would silently fall back to zod's copying parse).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { acceptsWithoutCopy, parseOrReject } from '../../../shared/core/sources/common.js';
import { DefenderAlertSchema, DefenderAssessmentSchema } from '../../../shared/core/sources/defender.js';
import { detect, type UnitFormat } from '../../../shared/core/sources/detect.js';
import { camelizeKeys, GuardDutyFindingSchema, isPascalGuardDuty } from '../../../shared/core/sources/guardduty.js';
import { camelMessage, SccNotificationSchema } from '../../../shared/core/sources/scc.js';
import { AsffFindingSchema } from '../../../shared/core/sources/securityhub.js';
import { allShapes, mutate, mutationArb } from '../../fuzz/helpers.js';

const SCHEMAS: Readonly<Record<UnitFormat, z.ZodType>> = {
  guardduty: GuardDutyFindingSchema,
  asff: AsffFindingSchema,
  'defender-alert': DefenderAlertSchema,
  'defender-assessment': DefenderAssessmentSchema,
  scc: SccNotificationSchema,
};

/** Every vendor finding of every fixture, as its mapper hands it to its schema (Pascal GuardDuty and proto-style SCC camelCased first). */
function units(): Array<{ name: string; schema: z.ZodType; value: unknown }> {
  return allShapes().flatMap((shape) =>
    detect(shape.value, shape.name).units.flatMap((u) => {
      if (u.format === 'scc')
        return [{ name: `${shape.name} ${u.path}`, schema: SCHEMAS.scc, value: camelMessage(u.value) }];
      const value =
        u.format === 'guardduty' && isRecord(u.value) && isPascalGuardDuty(u.value) ? camelizeKeys(u.value) : u.value;
      return [{ name: `${shape.name} ${u.path}`, schema: SCHEMAS[u.format], value }];
    }),
  );
}
const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

describe('acceptsWithoutCopy', () => {
  it('accepts every documented vendor finding when zod accepts it too', () => {
    // Prepare
    const all = units();
    // Act
    const verdicts = all.map((u) => ({
      name: u.name,
      fast: acceptsWithoutCopy(u.schema, u.value),
      zod: u.schema.safeParse(u.value).success,
    }));
    // Assess
    expect(all.length).toBeGreaterThan(10);
    for (const v of verdicts) expect(v, v.name).toEqual({ name: v.name, fast: v.zod, zod: v.zod });
  });

  it('never accepts what zod rejects, and zod returns the input unchanged when it does accept, over mutated shapes', () => {
    // Prepare
    const all = units();
    fc.assert(
      fc.property(fc.nat(), fc.array(mutationArb, { minLength: 1, maxLength: 4 }), (pick, mutations) => {
        const unit = all[pick % all.length];
        if (!unit) return;
        const value = mutate(unit.value, mutations);
        // Act
        const fast = acceptsWithoutCopy(unit.schema, value);
        const parsed = unit.schema.safeParse(value);
        // Assess
        if (fast) {
          expect(parsed.success).toBe(true);
          expect(parsed.data).toStrictEqual(value);
        }
      }),
      { numRuns: 1000 },
    );
  });

  it('refuses schemas whose parse differs from the input when they strip, transform or default', () => {
    // Prepare
    const stripping = z.object({ a: z.string() });
    const transforming = z.looseObject({ a: z.string().transform((s) => s.trim()) });
    const defaulting = z.looseObject({ a: z.string().default('x') });
    // Act / Assess
    expect(acceptsWithoutCopy(stripping, { a: 'x', b: 1 })).toBe(false);
    expect(acceptsWithoutCopy(transforming, { a: ' x ' })).toBe(false);
    expect(acceptsWithoutCopy(defaulting, {})).toBe(false);
  });

  it('applies length, regex and integer checks when the schema has them', () => {
    // Prepare
    const schema = z.looseObject({
      id: z.string().min(2).max(4).regex(/^a/),
      n: z.number().int().optional(),
      list: z.array(z.string()).min(1).optional(),
      either: z.union([z.string(), z.number()]).nullish(),
    });
    // Act / Assess
    expect(acceptsWithoutCopy(schema, { id: 'ab', n: 3, list: ['x'], either: null, extra: { kept: true } })).toBe(true);
    expect(acceptsWithoutCopy(schema, { id: 'a' })).toBe(false);
    expect(acceptsWithoutCopy(schema, { id: 'abcde' })).toBe(false);
    expect(acceptsWithoutCopy(schema, { id: 'bb' })).toBe(false);
    expect(acceptsWithoutCopy(schema, { id: 'ab', n: 1.5 })).toBe(false);
    expect(acceptsWithoutCopy(schema, { id: 'ab', list: [] })).toBe(false);
    expect(acceptsWithoutCopy(schema, { id: 'ab', either: true })).toBe(false);
    expect(acceptsWithoutCopy(schema, ['ab'])).toBe(false);
  });
});

describe('parseOrReject', () => {
  it('returns the input itself when the predicate accepts it', () => {
    // Prepare
    const [unit] = units();
    if (!unit) throw new Error('no fixture');
    // Act
    const out = parseOrReject(unit.schema, unit.value, 'detail');
    // Assess
    expect(out).toBe(unit.value);
  });

  it("rejects with zod's field path and message when the predicate does not accept", () => {
    // Prepare
    const schema = z.looseObject({ resource: z.looseObject({ id: z.string().min(1) }) });
    // Act / Assess
    expect(() => parseOrReject(schema, { resource: { id: '' } }, 'detail')).toThrow(/^detail\.resource\.id: /);
    expect(() => parseOrReject(schema, { resource: {} }, 'detail')).toThrow(
      'detail.resource.id: missing required field (expected string)',
    );
  });
});
