/**
 * The config folder a local store was run with, remembered beside it (`<home>/config.json`). A store's cases
 * were decided with one registry, policy and exceptions: a later command on the same store without
 * `--config` (the commands `npm start` suggests next, an `approve --apply` typed a day later) used the
 * built-in defaults instead — no registry (every owner unknown), no exceptions, and the default apply policy
 * (without the user's deny lists) for a fix applied to these cases. It now uses the store's own config and
 * says so.
 *
 * Which config a command uses: `--config`, else `$CLOSELOOP_CONFIG`, else the remembered one, else the
 * built-in defaults (a store never run with a config). Commands that write the store remember the folder
 * they were given; read-only ones (`plan --config other/` to try another policy) do not.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as z from 'zod';
import { UsageError } from '../../core/errors.js';

const FILE = 'config.json';

const RememberedSchema = z.object({ configDir: z.string().min(1) });

export interface ConfigChoice {
  /** The folder to load; undefined: the built-in defaults. */
  configDir?: string;
  /** What to tell the user (stderr): set when the folder was not named on this command line or environment. */
  notice?: string;
}

/**
 * Chooses the config folder of a command on the store in `home` (see the module comment) and, when `writes`
 * and a folder was named, remembers it. A remembered folder that is gone is a usage error naming it: falling
 * back to the defaults would decide and apply under another policy without a word.
 */
export function chooseConfig(opts: { home: string; named?: string | undefined; writes: boolean }): ConfigChoice {
  const file = join(opts.home, FILE);
  if (opts.named !== undefined) {
    const dir = resolve(opts.named);
    // Only a folder that is there: a mistyped --config fails its command (loadConfig) and is not remembered.
    if (opts.writes && isDir(dir) && remembered(file) !== dir) remember(file, dir);
    return { configDir: dir };
  }
  const dir = remembered(file);
  if (dir === undefined) return {};
  if (!isDir(dir))
    throw new UsageError(
      `this store (${opts.home}) was run with --config ${dir}, which is no longer a folder: name its config with --config DIR`,
    );
  return { configDir: dir, notice: `config: ${dir} (this store's, from its last run; --config DIR for another)` };
}

function remembered(file: string): string | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = undefined;
  }
  const parsed = RememberedSchema.safeParse(value);
  if (!parsed.success)
    throw new UsageError(`${file} is not closeloop's remembered config ({"configDir": "…"}): remove it or fix it`);
  return parsed.data.configDir;
}

/** Written whole under a temporary name, then renamed: a reader never sees half a file. */
function remember(file: string, dir: string): void {
  mkdirSync(resolve(file, '..'), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify({ configDir: dir }, null, 2)}\n`);
  renameSync(tmp, file);
}

const isDir = (dir: string): boolean => existsSync(dir) && statSync(dir).isDirectory();
