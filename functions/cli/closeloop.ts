/** `closeloop`: the embedded default (local store, dry-run remediation, local tickets unless Jira is configured). */
import { parseArgs } from 'node:util';
import { chooseConfig } from '../../shared/adapters/cli/home-config.js';
import { commands, USAGE } from '../../shared/adapters/cli/registry.js';
import { resolveHome } from '../../shared/adapters/wiring/local.js';
import { errorMessage } from '../../shared/core/errors.js';

/** Exit code of a command that failed (an unexpected error, the store unusable): not a rejection (1). */
export const FAILED = 3;

export async function main(
  argv: string[],
  io = { out: (t: string) => console.log(t), err: (t: string) => console.error(t) },
): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (e) {
    io.err(`${errorMessage(e)}\n\n${USAGE}`);
    return 2;
  }
  const [name, ...rest] = parsed.positionals;
  const command = name ? commands[name] : undefined;
  if (parsed.values.help || !command) {
    (command || parsed.values.help ? io.out : io.err)(USAGE);
    return parsed.values.help ? 0 : 2;
  }
  const v = parsed.values;
  // The person acting: --by, else CLOSELOOP_ACTOR (both named by the user; approve and rollback refuse the
  // `cli:$USER` default the runtime falls back to, since the approver is checked against apply.approvers).
  const by = v.by || process.env.CLOSELOOP_ACTOR || undefined;
  const opts = {
    json: Boolean(v.json),
    apply: Boolean(v.apply),
    live: Boolean(v.live),
    ...(v.home ? { home: v.home } : {}),
    ...(by ? { actor: by } : {}),
    ...(v.format ? { format: v.format } : {}),
    ...(v.id ? { id: v.id } : {}),
    ...(v.owner ? { owner: v.owner } : {}),
    ...(v.reason ? { reason: v.reason } : {}),
    ...(v.expires ? { expires: v.expires } : {}),
    ...(v.control ? { control: v.control } : {}),
    ...(v.type ? { type: v.type } : {}),
    ...(v.resource ? { resource: v.resource } : {}),
    ...(v.account ? { account: v.account } : {}),
  };
  try {
    // The store's own config unless one is named (home-config.ts): not for the commands without a store.
    let configDir: string | undefined;
    if (name !== 'normalize' && name !== 'actions') {
      const choice = chooseConfig({
        home: resolveHome({ ...(v.home ? { home: v.home } : {}) }),
        named: v.config ?? process.env.CLOSELOOP_CONFIG,
        writes: writesStore(name ?? '', rest),
      });
      if (choice.notice) io.err(choice.notice);
      configDir = choice.configDir;
    }
    return await command(rest, configDir ? { ...opts, configDir } : opts, io);
  } catch (e) {
    const usage = e instanceof Error && (e.name === 'UsageError' || e.name === 'ConfigError');
    io.err(`closeloop ${name}: ${errorMessage(e)}`);
    // 3, not 1: a run that failed must not read as "some inputs rejected" (npm start explains a 1 away).
    return usage ? 2 : FAILED;
  }
}

/** Commands that change the store: they remember the config they were given (read-only ones try others). */
const writesStore = (name: string, rest: readonly string[]): boolean =>
  ['run', 'verify', 'approve', 'rollback'].includes(name) ||
  (name === 'exceptions' && (rest[0] === 'add' || rest[0] === 'revoke'));

/** Every option the CLI accepts (README's CLI section names each one: test/cli/docs.test.ts). */
export const OPTIONS = {
  json: { type: 'boolean' },
  apply: { type: 'boolean' },
  home: { type: 'string' },
  config: { type: 'string' },
  by: { type: 'string' },
  format: { type: 'string' },
  live: { type: 'boolean' },
  id: { type: 'string' },
  owner: { type: 'string' },
  reason: { type: 'string' },
  expires: { type: 'string' },
  control: { type: 'string', multiple: true },
  type: { type: 'string', multiple: true },
  resource: { type: 'string', multiple: true },
  account: { type: 'string', multiple: true },
  help: { type: 'boolean', short: 'h' },
} as const satisfies NonNullable<Parameters<typeof parseArgs>[0]>['options'];

function parse(argv: string[]) {
  return parseArgs({ args: argv, allowPositionals: true, strict: true, options: OPTIONS });
}
