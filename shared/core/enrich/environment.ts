/**
 * Environment words: normalize tag/registry values (`Production` → prod) and infer an environment from a
 * name on word boundaries (`acme-prd-logs` → prod, but `product-catalog` → nothing). Compiled once.
 */
import type { Environment } from '../model/enrichment.js';
import type { EnvironmentWords } from '../policy/policy.js';

export interface EnvironmentMatcher {
  /** A tag or registry value → environment; undefined when the value names none. */
  normalize(value: string): Exclude<Environment, 'unknown'> | undefined;
  /** The first environment word found on word boundaries of `name`, with the word itself. */
  inferFromName(name: string): { environment: Exclude<Environment, 'unknown'>; word: string } | undefined;
}

const escapeRe = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

export function compileEnvironmentWords(words: EnvironmentWords): EnvironmentMatcher {
  const byWord = new Map<string, Exclude<Environment, 'unknown'>>();
  const envs = ['prod', 'staging', 'test', 'dev', 'sandbox'] as const;
  for (const env of envs) {
    byWord.set(env, env);
    for (const w of words[env]) byWord.set(w.toLowerCase(), env);
  }
  // Longest words first so `production` wins over `prod` and `staging` over `stage`.
  const alternatives = [...byWord.keys()].sort((a, b) => b.length - a.length).map(escapeRe);
  // A word boundary here is anything but a letter or digit: `-`, `_`, `.`, `/`, `:` and the string ends.
  const pattern = new RegExp(`(?:^|[^a-z0-9])(${alternatives.join('|')})(?![a-z0-9])`, 'i');
  return {
    normalize(value) {
      const v = value.trim().toLowerCase();
      const exact = byWord.get(v);
      if (exact) return exact;
      const m = pattern.exec(v);
      return m?.[1] ? byWord.get(m[1].toLowerCase()) : undefined;
    },
    inferFromName(name) {
      const m = pattern.exec(name);
      const word = m?.[1];
      if (!word) return undefined;
      const environment = byWord.get(word.toLowerCase());
      return environment ? { environment, word } : undefined;
    },
  };
}
