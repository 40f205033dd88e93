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
import * as z from 'zod';

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

// AWS partitions (aws, aws-cn, aws-us-gov, aws-iso, aws-iso-b, …) and the parts of an ARN before its resource.
const PARTITION = /^aws(?:-[a-z]+)*$/;
const ARN_PART: Record<number, { whole: RegExp; what: string }> = {
  1: { whole: PARTITION, what: 'an AWS partition (aws, aws-cn, aws-us-gov)' },
  2: { whole: /^[a-z0-9][a-z0-9-]*$/, what: 'a service in lower case (s3, iam, ec2)' },
  3: { whole: /^(?:[a-z]{2,4}(?:-[a-z]+)+-\d{1,2})?$/, what: 'a region (us-east-1) or nothing (arn:aws:s3:::bucket)' },
  4: { whole: /^(?:\d{12}|aws)?$/, what: 'a 12-digit account id or nothing (arn:aws:s3:::bucket)' },
};
const ARN_PREFIX: Record<number, RegExp> = {
  1: /^a?$|^aw$|^aws/,
  2: /^[a-z0-9-]*$/,
  3: /^[a-z0-9-]*$/,
  4: /^\d{0,12}$|^a?w?s?$/,
};

/**
 * Why a resource glob can never match an id closeloop sees, or undefined. A typo in a never-touch list or
 * a deny list otherwise does nothing at all: `arn:asw:s3:::acme-audit-logs*` protected no bucket. Only
 * shapes that are certainly wrong are refused: an ARN whose partition, service, region or account part is
 * malformed or that has too few parts, an Azure id without its leading `/`, a GCP name without its `//`,
 * and whitespace (resource ids never carry any).
 *
 * @example resourceGlobProblem('arn:asw:s3:::b*') // '"asw" is not an AWS partition (aws, aws-cn, aws-us-gov) …'
 */
export function resourceGlobProblem(written: string, opts: { caseInsensitive?: boolean } = {}): string | undefined {
  if (/\s/.test(written)) return 'contains whitespace, which no resource id does';
  // Where ids are matched without case (the policy lists), `ARN:AWS:S3:::X` matches: only the shape counts.
  const glob = opts.caseInsensitive ? written.toLowerCase() : written;
  const wild = glob.search(/[*?]/);
  const literal = wild === -1 ? glob : glob.slice(0, wild);
  if (/^arn:/i.test(literal) || (wild === -1 && /^arn$/i.test(literal))) {
    const example = 'expected arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE, e.g. arn:aws:s3:::bucket*';
    const parts = literal.split(':');
    if (parts[0] !== 'arn') return `an ARN starts with "arn:" in lower case (${example})`;
    const complete = wild === -1 ? parts : parts.slice(0, -1);
    for (let i = 1; i < complete.length && i <= 4; i++) {
      const rule = ARN_PART[i];
      if (rule && !rule.whole.test(complete[i] ?? '')) return `"${complete[i]}" is not ${rule.what} (${example})`;
    }
    const partial = wild === -1 ? undefined : parts.length - 1;
    const pattern = partial !== undefined ? ARN_PREFIX[partial] : undefined;
    if (partial !== undefined && pattern && !pattern.test(parts[partial] ?? ''))
      return `"${parts[partial]}" cannot begin ${ARN_PART[partial]?.what} (${example})`;
    if (wild === -1 && parts.length < 6) return `an ARN has at least six parts separated by ":" (${example})`;
    return undefined;
  }
  if (wild !== 0 && /^subscriptions\//i.test(literal))
    return 'an Azure resource id starts with "/subscriptions/" (the leading "/" is missing)';
  if (wild !== 0 && /googleapis\.com\//.test(literal) && !literal.startsWith('//'))
    return 'a GCP resource name starts with "//" (e.g. //compute.googleapis.com/projects/p/global/firewalls/f)';
  return undefined;
}

/**
 * A resource glob in our own config: refused, naming why, when it can never match (see resourceGlobProblem).
 * `caseInsensitive`: the list is matched without case (decide.allowlist, apply.resources.deny).
 */
export const resourceGlobSchema = (opts: { caseInsensitive?: boolean } = {}) =>
  z
    .string()
    .min(1)
    .superRefine((glob, ctx) => {
      const problem = resourceGlobProblem(glob, opts);
      if (problem) ctx.addIssue({ code: 'custom', message: `"${glob}" can never match a resource id: ${problem}` });
    });
