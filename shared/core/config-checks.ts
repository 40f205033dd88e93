/**
 * Checks of a parsed config that the schemas leave out: what is well-formed but can never take effect (a
 * resource glob that matches no id, an action id no playbook chooses, an owner e-mail that is no e-mail).
 * Each such entry was accepted and silently did nothing: a never-touch allowlist or a deny list that
 * protects nothing, an override never applied, tickets left unassigned.
 *
 * Kept apart from the schemas, which every function's cold start imports: only the config loaders import
 * this module (loadConfig, the bundled config.json read, `closeloop exceptions add`).
 */
import type { PolicyFile } from './config.js';
import type { Registry } from './enrich/registry.js';
import type { RiskException } from './policy/exceptions.js';

export interface ConfigProblem {
  path: (string | number)[];
  message: string;
}

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

const globProblems = (
  globs: readonly string[],
  at: (string | number)[],
  opts: { caseInsensitive?: boolean } = {},
): ConfigProblem[] =>
  globs.flatMap((glob, i) => {
    const problem = resourceGlobProblem(glob, opts);
    return problem ? [{ path: [...at, i], message: `"${glob}" can never match a resource id: ${problem}` }] : [];
  });

// Local part, one @, a dotted domain; no spaces. Looser than zod's z.email(), which pulls more into the bundle
// than this check is worth: the point is the typo (`web-lead@acme`, `a@@b.c`), not RFC 5322.
const EMAIL = /^[^\s@]+@[^\s@.]+(?:\.[^\s@.]+)+$/;

/**
 * An owner is a name (`security-triage`) or an e-mail; tickets are assigned only by e-mail (tickets/context.ts
 * `assignmentFor` tries any owner with an `@`). One with an `@` that is no e-mail (`web-lead@acme`, a space, a
 * doubled `@`) left every ticket of its resources unassigned without a word.
 */
const ownerProblems = (owner: string | undefined, path: (string | number)[]): ConfigProblem[] =>
  owner?.includes('@') && !EMAIL.test(owner)
    ? [{ path, message: `an owner with "@" must be an e-mail address (name@example.com), not "${owner}"` }]
    : [];

/** A policy key naming an action that no playbook line chooses is never read. */
const actionIdProblems = (ids: readonly string[], known: readonly string[], at: string[]): ConfigProblem[] =>
  ids.flatMap((id) =>
    known.includes(id)
      ? []
      : [{ path: [...at, id], message: `unknown action "${id}" (expected one of ${known.join(', ')})` }],
  );

/** registry.yaml: rule globs (matched with case, except Azure ids), owners. */
export function registryProblems(reg: Registry): ConfigProblem[] {
  const out = ownerProblems(reg.triage.owner, ['triage', 'owner']);
  reg.accounts.forEach((a, i) => {
    out.push(...ownerProblems(a.owner, ['accounts', i, 'owner']));
  });
  reg.teams.forEach((t, i) => {
    out.push(...ownerProblems(t.owner, ['teams', i, 'owner']));
  });
  reg.rules.forEach((r, i) => {
    const g = r.match.resource;
    out.push(...globProblems([g], ['rules', i, 'match', 'resource']).map((p) => ({ ...p, path: p.path.slice(0, -1) })));
    out.push(...ownerProblems(r.owner, ['rules', i, 'owner']));
    // A rule for one provider whose glob is written in another's id form matches nothing.
    const family = g.startsWith('arn:') ? 'aws' : g.startsWith('//') ? 'gcp' : g.startsWith('/') ? 'azure' : undefined;
    if (r.match.provider && family && family !== r.match.provider)
      out.push({
        path: ['rules', i, 'match', 'resource'],
        message: `"${g}" is written as a resource id of ${family} but match.provider is ${r.match.provider}: it can never match`,
      });
  });
  return out;
}

/**
 * policy.yaml: the never-touch and deny globs (matched without case) and, given `actionIds` (the playbooks'
 * PLAYBOOK_ACTION_IDS: passed in, so a function reading its bundled config does not load the playbook table
 * for it; the build already checked them), the action ids `decide.actionModes` and `apply.actions` name.
 */
export function policyProblems(policy: PolicyFile, actionIds?: readonly string[]): ConfigProblem[] {
  const ids = (keys: object, at: string[]) => (actionIds ? actionIdProblems(Object.keys(keys), actionIds, at) : []);
  return [
    ...globProblems(policy.decide.allowlist.resources, ['decide', 'allowlist', 'resources'], { caseInsensitive: true }),
    ...globProblems(policy.apply.resources.deny, ['apply', 'resources', 'deny'], { caseInsensitive: true }),
    ...ids(policy.decide.actionModes, ['decide', 'actionModes']),
    ...ids(policy.apply.actions, ['apply', 'actions']),
    ...skipTagProblems(policy),
  ];
}

/**
 * `decide.skipTag` holds a case for a person; `apply.skipTag` is the one re-read on the live resource just
 * before an apply (and by a spoke). Set apart, a tag of the first kind put on a resource after its finding
 * no longer stops the fix, which the README promises: the two must name one tag (compared without case,
 * as the gates read keys).
 */
function skipTagProblems(policy: PolicyFile): ConfigProblem[] {
  const key = (k: string) => k.toLowerCase();
  const { skipTag: decided } = policy.decide;
  const { skipTag: applied } = policy.apply;
  if (key(decided) === key(applied)) return [];
  return [
    {
      path: ['apply', 'skipTag'],
      message: `"${applied}" is not decide.skipTag "${decided}": the tag re-read just before an apply must be the one that holds a case (a "${decided}" tag set after the finding would not stop the fix); set both to one tag`,
    },
  ];
}

/** One exception (exceptions.yaml, `exceptions add`): its resource globs and owner. */
export const exceptionProblems = (e: RiskException, at: (string | number)[] = []): ConfigProblem[] => [
  ...globProblems(e.scope.resources ?? [], [...at, 'scope', 'resources']),
  ...ownerProblems(e.owner, [...at, 'owner']),
];
