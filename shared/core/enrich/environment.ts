/**
 * Environment words: normalize tag/registry values (`Production` → prod) and infer an environment from a
 * name on word boundaries (`acme-prd-logs` → prod, but `product-catalog` → nothing). Compiled once.
 *
 * Every environment word of a value or name is read, not only the first: `acme-test-results-prod` or a tag
 * `uat/prod` names two environments, and the first word alone would call a production bucket `test` and let
 * a fix run there automatically. Words that disagree make the reading `unknown` (the decide policy's fail-closed
 * mode, `manual` by default), never the laxer one.
 */
import type { Environment } from '../model/enrichment.js';
import type { EnvironmentWords } from '../policy/policy.js';
import { compileTagReader } from './tags.js';

/** What the words of one value or name say. */
export type EnvironmentReading =
  /** Every environment word found names this environment; `word` is the first of them. */
  | { environment: Exclude<Environment, 'unknown'>; word: string }
  /** The words found name different environments (each word once, in order). */
  | { environment: 'unknown'; words: readonly string[] };

export interface EnvironmentMatcher {
  /** A tag or registry value → environment; undefined when the value names none. */
  normalize(value: string): EnvironmentReading | undefined;
  /** The environment the words on word boundaries of `name` name; undefined when it has none. */
  inferFromName(name: string): EnvironmentReading | undefined;
}

const escapeRe = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

export function compileEnvironmentWords(words: EnvironmentWords): EnvironmentMatcher {
  const byWord = new Map<string, Exclude<Environment, 'unknown'>>();
  const envs = ['prod', 'staging', 'test', 'dev', 'sandbox'] as const;
  for (const env of envs) {
    byWord.set(env, env);
    for (const w of words[env]) byWord.set(w.toLowerCase(), env);
  }
  // A value that is exactly one word (`prod`, `Production`) reads as one shared answer, made here.
  const exactReading = new Map<string, EnvironmentReading>();
  for (const [w, environment] of byWord) exactReading.set(w, Object.freeze({ environment, word: w }));
  // Longest words first so `production` wins over `prod` and `staging` over `stage`.
  const alternatives = [...byWord.keys()].sort((a, b) => b.length - a.length).map(escapeRe);
  // A word boundary here is anything but a letter or digit: `-`, `_`, `.`, `/`, `:` and the string ends.
  // Global: `scan` walks every word (the separator before a word is consumed, the one after it is not).
  // Only ever used synchronously, with lastIndex reset first.
  const pattern = new RegExp(`(?:^|[^a-z0-9])(${alternatives.join('|')})(?![a-z0-9])`, 'gi');

  /** Every distinct environment word of `s`, in order (the rare path: the words disagree). */
  function wordsOf(s: string): string[] {
    const out: string[] = [];
    pattern.lastIndex = 0;
    for (let m = pattern.exec(s); m !== null; m = pattern.exec(s)) {
      const w = m[1] as string;
      if (!out.some((o) => o.toLowerCase() === w.toLowerCase())) out.push(w);
    }
    return out;
  }

  function scan(s: string): EnvironmentReading | undefined {
    let first: { environment: Exclude<Environment, 'unknown'>; word: string } | undefined;
    pattern.lastIndex = 0;
    for (let m = pattern.exec(s); m !== null; m = pattern.exec(s)) {
      const word = m[1] as string;
      const environment = byWord.get(word.toLowerCase());
      if (environment === undefined) continue;
      if (first === undefined) first = { environment, word };
      else if (environment !== first.environment) return { environment: 'unknown', words: wordsOf(s) };
    }
    return first;
  }

  return {
    normalize(value) {
      const v = value.trim().toLowerCase();
      return exactReading.get(v) ?? scan(v);
    },
    inferFromName: scan,
  };
}

/** A resource's environment tag, as enrichment finds it, and what its value says (undefined: no known environment). */
export interface EnvironmentTag {
  key: string;
  value: string;
  reading: EnvironmentReading | undefined;
}

/**
 * The environment tag of a resource's tags, read as enrichment reads it: the key through the policy's
 * environment aliases ({@link compileTagReader}), the value through its environment words. Undefined when no
 * such key carries a value, or only a placeholder (`env=TBD`: `enrichment.placeholderValues`, read as no tag as
 * enrichment reads it, not as a value naming no known environment). For the apply-time re-check of live tags
 * (hub and spokes): one reading, not two.
 *
 * @example compileEnvironmentTag(policy.tagAliases.environment, policy.environmentWords, policy.placeholderValues)({ env: 'Production' })?.reading
 */
export function compileEnvironmentTag(
  keys: readonly string[],
  words: EnvironmentWords,
  placeholders: readonly string[] = [],
): (tags: Record<string, string>) => EnvironmentTag | undefined {
  const read = compileTagReader(
    { owner: [], team: [], application: [], environment: [...keys], criticality: [] },
    placeholders,
  );
  const env = compileEnvironmentWords(words);
  return (tags) => {
    const hit = read(tags).environment;
    return hit && { key: hit.key, value: hit.value, reading: env.normalize(hit.value) };
  };
}
