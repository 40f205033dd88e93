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

/**
 * Cloud Storage names a bucket two ways: `//storage.googleapis.com/NAME` (Security Command Center, Cloud Asset
 * Inventory) and `//storage.googleapis.com/projects/_/buckets/NAME` (the Storage API's own resource names, and
 * tools built on it; the project segment is always `_`, bucket names being global). One bucket is one
 * resource: the first spelling is closeloop's, used for finding resource ids (so both spellings make one case)
 * and for every glob a person writes (registry rules, exceptions, the never-touch allowlist), so a rule written
 * either way matches the bucket however the finding spelled it.
 */
const GCS_PROJECT_BUCKET = /^\/\/storage\.googleapis\.com\/projects\/[^/]+\/buckets\/(?=[^/]+$)/;

/** `id` in closeloop's spelling: a Cloud Storage bucket as `//storage.googleapis.com/NAME`; anything else as is. */
export const canonicalResourceId = (id: string): string =>
  id.startsWith('//storage.googleapis.com/projects/')
    ? id.replace(GCS_PROJECT_BUCKET, '//storage.googleapis.com/')
    : id;

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
export function compileGlob(written: string): CompiledGlob {
  // Matched against ids in closeloop's spelling (see canonicalResourceId); `source` stays as written.
  const glob = canonicalResourceId(written);
  if (!/[*?]/.test(glob)) {
    const lower = glob.toLowerCase();
    return {
      source: written,
      test: (value, caseInsensitive = false) => (caseInsensitive ? value.toLowerCase() === lower : value === glob),
    };
  }
  const body = glob
    .split(/([*?])/)
    .map((part) => (part === '*' ? '.*' : part === '?' ? '.' : escapeRe(part)))
    .join('');
  const exact = new RegExp(`^${body}$`, 's');
  const folded = new RegExp(`^${body}$`, 'is');
  return { source: written, test: (value, caseInsensitive = false) => (caseInsensitive ? folded : exact).test(value) };
}

/** True when any of the compiled globs matches. */
export const anyGlob = (globs: readonly CompiledGlob[], value: string, caseInsensitive = false): boolean => {
  for (const g of globs) if (g.test(value, caseInsensitive)) return true;
  return false;
};
