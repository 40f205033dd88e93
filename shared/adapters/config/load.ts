/**
 * Loads a config folder: `registry.yaml`, `policy.yaml`, `exceptions.yaml`, each optional (absent →
 * defaults). Every problem is a ConfigError naming the file and the field path, e.g.
 * `registry.yaml: accounts[2].environment: Invalid option: expected one of "prod"|"staging"|…`.
 * YAML is parsed with the core schema only (no custom tags, no timestamps: dates stay strings).
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseDocument } from 'yaml';
import type * as z from 'zod';
import { type Config, ExceptionsFileSchema, PolicyFileSchema } from '../../core/config.js';
import { type ConfigProblem, exceptionProblems, policyProblems, registryProblems } from '../../core/config-checks.js';
import { RegistrySchema } from '../../core/enrich/registry.js';
import { ConfigError, hasErrorCode } from '../../core/errors.js';
import { PLAYBOOK_ACTION_IDS } from '../../core/policy/playbooks.js';

/** `accounts[2].environment` from a zod issue path. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path)
    out +=
      typeof p === 'number'
        ? `[${p}]`
        : // A key that is not a plain name (an action id: `s3.block-public-access`) is quoted, so the path reads back.
          !/^[A-Za-z_$][\w$-]*$/.test(String(p))
          ? `[${JSON.stringify(String(p))}]`
          : out === ''
            ? String(p)
            : `.${String(p)}`;
  return out === '' ? '(top level)' : out;
}

async function readOptional(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    if (hasErrorCode(e, 'ENOENT')) return undefined;
    throw new ConfigError(`${file}: cannot read`, { cause: e });
  }
}

/**
 * Parses one YAML text against a schema; an empty file counts as `{}`.
 * @throws ConfigError naming `name` and each failing field path (up to five).
 */
export function parseConfigText<S extends z.ZodType>(name: string, text: string, schema: S): z.infer<S> {
  const doc = parseDocument(text, { schema: 'core', uniqueKeys: true, prettyErrors: true });
  const first = doc.errors[0];
  if (first) throw new ConfigError(`${name}: invalid YAML: ${first.message.split('\n')[0]}`);
  const data: unknown = doc.toJS({ maxAliasCount: 100 }) ?? {};
  const parsed = schema.safeParse(data);
  if (parsed.success) return parsed.data as z.infer<S>;
  // A record key that fails its schema comes wrapped ("Invalid key in record"): say the key's own problem.
  const message = (i: z.core.$ZodIssue): string => {
    if (i.code === 'invalid_key' && i.issues[0]) return i.issues[0].message;
    // Said here, not in the schema: the schema's text would weigh on every function's cold start.
    if (i.code === 'invalid_union' && i.path.at(-1) === 'expires')
      return 'expected a date (2027-06-30, valid through that day, UTC) or a date-time with its zone (2027-06-30T18:00:00Z), in quotes';
    // An unquoted id or number-like name is read by YAML as a number (011122223333 loses its leading zero).
    if (i.code === 'invalid_type' && i.expected === 'string' && /received (number|boolean)$/.test(i.message))
      return `${i.message} (write it in quotes: YAML reads unquoted digits as a number, dropping leading zeros, e.g. id: "011122223333")`;
    return i.message;
  };
  throw problemsError(
    name,
    parsed.error.issues.map((i) => ({ path: i.path, message: message(i) })),
  );
}

/** One ConfigError naming `name` and each problem's field path (up to five). */
export function problemsError(
  name: string,
  problems: readonly { path: readonly PropertyKey[]; message: string }[],
): ConfigError {
  const issues = problems.slice(0, 5).map((p) => `${name}: ${formatPath(p.path)}: ${p.message}`);
  const more = problems.length > 5 ? ` (and ${problems.length - 5} more)` : '';
  return new ConfigError(issues.join('; ') + more);
}

/** Throws when a parsed file has problems its schema leaves out (see core/config-checks.ts). */
function check(name: string, problems: ConfigProblem[]): void {
  if (problems.length > 0) throw problemsError(name, problems);
}

const FILES = ['registry.yaml', 'policy.yaml', 'exceptions.yaml'];

/**
 * The folder must exist, and hold no `.yml` spelling of our file names: each file is optional, so a mistyped
 * `--config` folder or a `policy.yml` was read as "no file" and closeloop ran on the built-in defaults (no
 * registry, no deny lists, no exceptions) without a word.
 */
async function checkFolder(dir: string): Promise<void> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (e) {
    if (hasErrorCode(e, 'ENOENT')) throw new ConfigError(`${dir}: no such config folder`);
    if (hasErrorCode(e, 'ENOTDIR'))
      throw new ConfigError(`${dir}: not a folder (the config is a folder holding ${FILES.join(', ')})`);
    throw new ConfigError(`${dir}: cannot read`, { cause: e });
  }
  for (const name of names) {
    const want = FILES.find((f) => f !== name && f.toLowerCase() === name.toLowerCase().replace(/\.yml$/, '.yaml'));
    if (want) throw new ConfigError(`${join(dir, name)}: closeloop reads ${want} (rename the file; it was not read)`);
  }
}

/**
 * @example const config = await loadConfig('examples/config');
 * @throws ConfigError when `dir` is not a folder, or a file or field is invalid
 */
export async function loadConfig(dir: string): Promise<Config> {
  await checkFolder(dir);
  const [registryText, policyText, exceptionsText] = await Promise.all(FILES.map((f) => readOptional(join(dir, f))));
  const registry = parseConfigText('registry.yaml', registryText ?? '', RegistrySchema);
  const policy = parseConfigText('policy.yaml', policyText ?? '', PolicyFileSchema);
  const exceptionsFile = parseConfigText('exceptions.yaml', exceptionsText ?? '', ExceptionsFileSchema);
  check('registry.yaml', registryProblems(registry));
  check('policy.yaml', policyProblems(policy, PLAYBOOK_ACTION_IDS));
  check(
    'exceptions.yaml',
    exceptionsFile.exceptions.flatMap((e, i) => exceptionProblems(e, ['exceptions', i])),
  );
  const ids = new Set<string>();
  exceptionsFile.exceptions.forEach((e, i) => {
    if (ids.has(e.id)) throw new ConfigError(`exceptions.yaml: exceptions[${i}].id: duplicate exception "${e.id}"`);
    ids.add(e.id);
  });
  return { registry, policy, exceptions: exceptionsFile.exceptions, origin: dir };
}
