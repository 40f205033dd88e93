/**
 * Resource-id globs for the registry, exceptions and policy lists, compiled once to a RegExp.
 *
 * Semantics (documented in registry.yaml / exceptions.yaml comments too):
 * - `*` matches any run of characters, including `/` and `:` (ARNs and Azure ids are flat strings to us);
 * - `?` matches exactly one character;
 * - everything else matches itself literally (regex metacharacters are escaped, never interpreted);
 * - the glob must match the whole id (anchored at both ends).
 * Azure resource ids are case-insensitive (ARM treats them so), so callers match them with `caseInsensitive`.
 */

/** A compiled glob: keep it and call `test` many times. */
export interface CompiledGlob {
  readonly source: string;
  test(value: string, caseInsensitive?: boolean): boolean;
}

const escapeRe = (s: string): string => s.replace(/[.+^${}()|[\]\\]/g, '\\$&');

/**
 * Compiles a glob once. Plain strings without wildcards compare directly (no regex at all), which is
 * the common case for control ids and account ids and keeps the hot path allocation-free.
 *
 * @example compileGlob('arn:aws:s3:::acme-public-website*').test('arn:aws:s3:::acme-public-website-eu') // true
 */
export function compileGlob(glob: string): CompiledGlob {
  if (!/[*?]/.test(glob)) {
    const lower = glob.toLowerCase();
    return {
      source: glob,
      test: (value, caseInsensitive = false) => (caseInsensitive ? value.toLowerCase() === lower : value === glob),
    };
  }
  const body = glob
    .split(/([*?])/)
    .map((part) => (part === '*' ? '.*' : part === '?' ? '.' : escapeRe(part)))
    .join('');
  const exact = new RegExp(`^${body}$`, 's');
  const folded = new RegExp(`^${body}$`, 'is');
  return { source: glob, test: (value, caseInsensitive = false) => (caseInsensitive ? folded : exact).test(value) };
}

/** True when any of the compiled globs matches. */
export const anyGlob = (globs: readonly CompiledGlob[], value: string, caseInsensitive = false): boolean => {
  for (const g of globs) if (g.test(value, caseInsensitive)) return true;
  return false;
};
