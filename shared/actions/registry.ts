/**
 * The action registry: every action module listed in `index.ts`, looked up by id. It serves the
 * pipeline (`getAction`), `closeloop actions --json` (`declarations`), deployment policies
 * (`allPermissions`) and the README table (`renderActionsTable`).
 */
import type { Provider } from '../core/model/finding.js';
import type { Action, ActionDeclaration } from './define.js';
import { ALL_ACTIONS } from './index.js';

const BY_ID: ReadonlyMap<string, Action> = new Map(ALL_ACTIONS.map((a) => [a.id, a]));

/** @example getAction('s3.block-public-access')?.productionSafe // false */
export const getAction = (id: string): Action | undefined => BY_ID.get(id);

/** Every registered action, sorted by id. */
export const listActions = (): Action[] => [...ALL_ACTIONS].sort((a, b) => a.id.localeCompare(b.id));

/** The registry as the remediation stage's `actions` dependency. */
export const actionRegistry = { get: getAction };

/** Plain declarations (what `closeloop actions --json` prints). */
export const declarations = (): ActionDeclaration[] =>
  listActions().map(
    ({ id, title, provider, handles, permissions, verifyPermissions, risk, productionSafe, outline }) => ({
      id,
      title,
      provider,
      handles,
      permissions: [...permissions],
      verifyPermissions: [...verifyPermissions],
      risk,
      productionSafe,
      outline: outline ? [...outline] : [],
    }),
  );

/** The union of one list the actions of one provider declare, sorted. */
const unionOf = (provider: Provider, list: 'permissions' | 'verifyPermissions'): string[] =>
  [
    ...new Set(
      listActions()
        .filter((a) => a.provider === provider)
        .flatMap((a) => a[list]),
    ),
  ].sort();

/** The union of the permissions one provider's actions declare, sorted: what the deployment grants, nothing more. */
export const allPermissions = (provider: Provider): string[] => unionOf(provider, 'permissions');

/**
 * The union of the read-only permissions one provider's actions declare for `verify()`, sorted: all the
 * verify function's role holds for the actions (infra/aws/verify-permissions.json), no write among them.
 */
export const allVerifyPermissions = (provider: Provider): string[] => unionOf(provider, 'verifyPermissions');

const cell = (s: string) => s.replace(/\|/g, '\\|');

/**
 * The README's actions table (between `<!-- actions:start -->` and `<!-- actions:end -->`), generated
 * from the declarations so the docs cannot drift from the code.
 */
export function renderActionsTable(): string {
  const rows = listActions().map((a) =>
    [
      `\`${a.id}\``,
      cell(a.title),
      a.provider,
      a.permissions.map((p) => `\`${p}\``).join('<br>'),
      a.verifyPermissions.map((p) => `\`${p}\``).join('<br>'),
      a.risk,
      a.productionSafe ? 'yes' : 'no',
    ].join(' | '),
  );
  return [
    '| id | title | provider | permissions | verify permissions (read-only) | risk | production-safe |',
    '|---|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${r} |`),
  ].join('\n');
}
