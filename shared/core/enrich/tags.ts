/**
 * Reading owner, team, application, environment and criticality from resource tags through the configured
 * key aliases (`owner`, `Owner`, `owner-email`, …).
 *
 * Per field: a key spelled exactly as an alias wins, the alias listed first among those present; without
 * one, any casing of an alias, with or without white space around it (`OWNER`, `ENV`, `owner ` written by
 * hand: AWS and Azure keep a key's spaces, and read as nothing, `Env ` = prod let a `dev` in the resource's
 * name make a production bucket dev), again the alias listed first, and the first such key in the tags'
 * order between two spellings of one alias. A blank value counts as absent, and so does a placeholder
 * (`TBD`, `n/a`: `enrichment.placeholderValues`), which the reader names. Values are trimmed.
 */
import type { TagAliases } from '../policy/policy.js';
import { hasEnumerableKey } from '../util/objects.js';

export type TagField = keyof TagAliases;
export const TAG_FIELDS: readonly TagField[] = ['owner', 'team', 'application', 'environment', 'criticality'];

export interface TagHit {
  value: string;
  /** The tag key it was read from, as the resource spells it. */
  key: string;
}
export type TagHits = Partial<Record<TagField, TagHit>> & {
  /** Tags of an alias key whose value is a placeholder (`TBD`, `n/a`): read as absent, named in a warning. */
  placeholders?: ReadonlyArray<TagHit & { field: TagField }>;
};

interface AliasOf {
  /** Index of the field in TAG_FIELDS. */
  field: number;
  rank: number;
}

/**
 * Compiles the aliases into one reader: a single pass over the tags (one Map lookup per key, exact then
 * lower-cased), instead of a lookup per field and alias followed, nearly always, by a case-insensitive
 * pass over every key.
 *
 * @example const read = compileTagReader(policy.tagAliases); read({ Owner: 'web@acme.example' }).owner?.value
 */
export function compileTagReader(
  aliases: TagAliases,
  placeholderValues: readonly string[] = [],
): (tags: Record<string, string>) => TagHits {
  const placeholders = new Set(placeholderValues.map((p) => p.trim().toLowerCase()));
  // Placeholders are short: a longer value (every e-mail address) is never lower-cased to be looked up.
  let longest = 0;
  for (const p of placeholders) longest = Math.max(longest, p.length);
  // Exact spellings: one key may be an alias of several fields. Lower-cased: the first field and rank to
  // claim a spelling keeps it.
  const exact = new Map<string, AliasOf[]>();
  const lower = new Map<string, AliasOf>();
  TAG_FIELDS.forEach((field, f) => {
    aliases[field].forEach((a, rank) => {
      const list = exact.get(a) ?? [];
      if (!list.some((x) => x.field === f)) list.push({ field: f, rank });
      exact.set(a, list);
      if (!lower.has(a.toLowerCase())) lower.set(a.toLowerCase(), { field: f, rank });
    });
  });
  const n = TAG_FIELDS.length;
  // Per field: the best exact and the best any-casing key, by rank; the first key met keeps a tie. Reused
  // by every call (the reader is synchronous), reset at its start.
  const exactKey: Array<string | undefined> = new Array(n);
  const exactRank: number[] = new Array(n);
  const looseKey: Array<string | undefined> = new Array(n);
  const looseRank: number[] = new Array(n);

  return (tags) => {
    const hits: TagHits = {};
    if (!hasEnumerableKey(tags)) return hits;
    for (let f = 0; f < n; f++) {
      exactKey[f] = undefined;
      looseKey[f] = undefined;
      exactRank[f] = Number.POSITIVE_INFINITY;
      looseRank[f] = Number.POSITIVE_INFINITY;
    }
    let ignored: Array<TagHit & { field: TagField }> | undefined;
    for (const key of Object.keys(tags)) {
      const v = tags[key];
      if (typeof v !== 'string' || v.trim() === '') continue;
      const spelled = exact.get(key);
      if (v.length <= longest + 8 && placeholders.has(v.trim().toLowerCase())) {
        // As a blank value (absent), named: the next alias, the registry or the team still give the field.
        const of = spelled?.[0] ?? lower.get(key.trim().toLowerCase());
        if (of) {
          ignored ??= [];
          ignored.push({ field: TAG_FIELDS[of.field] as TagField, key, value: v.trim() });
        }
        continue;
      }
      if (spelled)
        for (const a of spelled)
          if (a.rank < (exactRank[a.field] as number)) {
            exactRank[a.field] = a.rank;
            exactKey[a.field] = key;
          }
      const a = lower.get(key.trim().toLowerCase());
      if (a && a.rank < (looseRank[a.field] as number)) {
        looseRank[a.field] = a.rank;
        looseKey[a.field] = key;
      }
    }
    for (let f = 0; f < n; f++) {
      const key = exactKey[f] ?? looseKey[f];
      if (key !== undefined) hits[TAG_FIELDS[f] as TagField] = { value: (tags[key] as string).trim(), key };
    }
    if (ignored) hits.placeholders = ignored;
    return hits;
  };
}
