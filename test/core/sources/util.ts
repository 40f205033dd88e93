/** Shared assertions for the normalizer tests. */
import { expect } from 'vitest';
import { type Finding, FindingSchema } from '../../../shared/core/model/finding.js';
import { normalize } from '../../../shared/core/pipeline/normalize.js';
import { loadFixture } from '../../helpers/fixtures.js';

/** Normalizes an input that must yield exactly one finding and no rejection; checks it against the model. */
export function one(input: unknown, origin = 'test'): Finding {
  const out = normalize(input, origin);
  expect(out.rejected).toEqual([]);
  expect(out.findings).toHaveLength(1);
  const finding = out.findings[0];
  if (!finding) throw new Error('no finding');
  FindingSchema.parse(finding);
  return finding;
}

/** `one` over a fixture file. */
export const oneFixture = (path: string): Finding => one(loadFixture(path), path);
