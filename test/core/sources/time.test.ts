/**
 * Timestamps: every vendor instant becomes the canonical UTC form with milliseconds, and the shortcuts
 * for forms that are already (nearly) canonical give exactly what parsing the date would.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { toIso } from '../../../shared/core/sources/common.js';

/** The long way round: what toIso answered before it had shortcuts. */
const parsed = (s: string): string | 'rejected' => {
  const ms = Date.parse(s);
  return Number.isFinite(ms) ? new Date(ms).toISOString() : 'rejected';
};
const answer = (s: string): string => {
  try {
    return toIso(s, 'at');
  } catch {
    return 'rejected';
  }
};
const pad = (n: number, w: number) => String(n).padStart(w, '0');

describe('toIso', () => {
  it('gives what Date.parse gives for UTC times with any fraction, including fields out of range', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 9999 }),
        fc.integer({ min: 0, max: 13 }),
        fc.integer({ min: 0, max: 32 }),
        fc.integer({ min: 0, max: 24 }),
        fc.integer({ min: 0, max: 60 }),
        fc.integer({ min: 0, max: 60 }),
        fc.option(fc.stringMatching(/^[0-9]{0,9}$/)),
        (y, mo, d, h, mi, se, fraction) => {
          // Prepare
          const s = `${pad(y, 4)}-${pad(mo, 2)}-${pad(d, 2)}T${pad(h, 2)}:${pad(mi, 2)}:${pad(se, 2)}${fraction === null ? '' : `.${fraction}`}Z`;
          // Act / Assess
          expect(answer(s), s).toBe(parsed(s));
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('cuts Defender-style seven-digit fractions to milliseconds and fills short ones', () => {
    expect(toIso('2026-11-01T00:00:00.9999999Z', 'at')).toBe('2026-11-01T00:00:00.999Z');
    expect(toIso('2026-11-01T00:00:00Z', 'at')).toBe('2026-11-01T00:00:00.000Z');
    expect(toIso('2026-11-01T00:00:00.5Z', 'at')).toBe('2026-11-01T00:00:00.500Z');
    expect(toIso('2024-02-29T23:59:59.1234567Z', 'at')).toBe('2024-02-29T23:59:59.123Z');
    expect(toIso('2026-11-01T01:00:00+01:00', 'at')).toBe('2026-11-01T00:00:00.000Z');
    expect(() => toIso('2026-11-01T00:00:00.Z', 'detail.at')).toThrow(/^detail\.at: /);
  });
});
