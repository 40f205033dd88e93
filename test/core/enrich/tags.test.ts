import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compileTagReader, TAG_FIELDS, type TagField, type TagHits } from '../../../shared/core/enrich/tags.js';
import { type TagAliases, TagAliasesSchema } from '../../../shared/core/policy/policy.js';

/**
 * The two-pass reading the single pass replaced, kept as the oracle: exact keys per field in alias order,
 * then, for the fields still missing, any casing of an alias, white space around it or not (lowest rank;
 * first key met on a tie).
 */
function twoPass(aliases: TagAliases, tags: Record<string, string>): TagHits {
  const lowerAliases = new Map<string, { field: TagField; rank: number }>();
  for (const field of TAG_FIELDS)
    aliases[field].forEach((a, rank) => {
      if (!lowerAliases.has(a.toLowerCase())) lowerAliases.set(a.toLowerCase(), { field, rank });
    });
  const hits: TagHits = {};
  if (Object.keys(tags).length === 0) return hits;
  let missing = false;
  for (const field of TAG_FIELDS) {
    for (const key of aliases[field]) {
      const v = tags[key];
      if (v !== undefined && Object.hasOwn(tags, key) && v.trim() !== '') {
        hits[field] = { value: v.trim(), key };
        break;
      }
    }
    if (!hits[field]) missing = true;
  }
  if (missing) {
    const rankOf: Partial<Record<TagField, number>> = {};
    for (const key in tags) {
      if (!Object.hasOwn(tags, key)) continue;
      const a = lowerAliases.get(key.toLowerCase()) ?? lowerAliases.get(key.trim().toLowerCase());
      const v = tags[key];
      if (!a || v === undefined || v.trim() === '') continue;
      const rank = rankOf[a.field];
      if (hits[a.field] && rank === undefined) continue;
      if (rank === undefined || a.rank < rank) {
        rankOf[a.field] = a.rank;
        hits[a.field] = { value: v.trim(), key };
      }
    }
  }
  return hits;
}

const DEFAULTS = TagAliasesSchema.parse({});
const WORDS = ['owner', 'Owner', 'team', 'env', 'Environment', 'app', 'tier', 'stage', 'contact', 'squad', 'x'];

/** A word in a random casing. */
const cased = fc
  .tuple(fc.constantFrom(...WORDS), fc.array(fc.boolean(), { minLength: 12, maxLength: 12 }))
  .map(([w, ups]) => [...w].map((c, i) => (ups[i] ? c.toUpperCase() : c.toLowerCase())).join(''));
const spaced = fc
  .tuple(fc.constantFrom('', ' ', '\t'), cased, fc.constantFrom('', ' ', '  '))
  .map(([a, w, b]) => `${a}${w}${b}`);
const key = fc.oneof(fc.constantFrom(...WORDS), cased, spaced, fc.string({ maxLength: 8 }));
const value = fc.oneof(fc.constantFrom('', '  ', ' web@acme.example ', 'prod', 'dev'), fc.string({ maxLength: 6 }));
const tagsArb = fc.dictionary(key, value, { maxKeys: 8 });
const aliasesArb: fc.Arbitrary<TagAliases> = fc.oneof(
  fc.constant(DEFAULTS),
  fc.record({
    owner: fc.array(fc.oneof(fc.constantFrom(...WORDS), cased), { maxLength: 4 }),
    team: fc.array(fc.oneof(fc.constantFrom(...WORDS), cased), { maxLength: 4 }),
    application: fc.array(fc.oneof(fc.constantFrom(...WORDS), cased), { maxLength: 4 }),
    environment: fc.array(fc.oneof(fc.constantFrom(...WORDS), cased), { maxLength: 4 }),
    criticality: fc.array(fc.oneof(fc.constantFrom(...WORDS), cased), { maxLength: 4 }),
  }),
);

describe('tag reader', () => {
  it('prefers an exact alias by rank over any casing, and any casing by rank, reading values trimmed', () => {
    // Prepare
    const read = compileTagReader(DEFAULTS);
    // Act
    const hits = read({ OWNER: 'ops@acme.example', owner_email: ' web@acme.example ', ENV: 'dev', stage: 'prod' });
    // Assess
    expect(hits.owner).toEqual({ value: 'web@acme.example', key: 'owner_email' });
    expect(hits.environment).toEqual({ value: 'prod', key: 'stage' });
    expect(read({ TEAM: ' ', Team: 'web' }).team).toEqual({ value: 'web', key: 'Team' });
    expect(read({})).toEqual({});
  });

  it('reads a key typed with white space around an alias as that alias, after an exact one, and no longer key', () => {
    // Prepare
    const read = compileTagReader(DEFAULTS);
    // Act
    const hits = read({ 'owner ': 'web@acme.example', ' Env': 'prod', 'team-owner': 'ops', 'team ': '' });
    // Assess
    expect(hits.owner).toEqual({ value: 'web@acme.example', key: 'owner ' });
    expect(hits.environment).toEqual({ value: 'prod', key: ' Env' });
    expect(hits.team).toBeUndefined();
    expect(read({ 'owner ': 'spaced@acme.example', Owner: 'exact@acme.example' }).owner?.key).toBe('Owner');
  });

  it('reads what the two-pass reading read for any aliases and tags', () => {
    fc.assert(
      fc.property(aliasesArb, tagsArb, (aliases, tags) => {
        expect(compileTagReader(aliases)(tags)).toEqual(twoPass(aliases, tags));
      }),
      { numRuns: 3000 },
    );
  });
});
