/**
 * The action registry's contract (house style §3; Custodian's test_policy / test_iamgen): the index
 * lists exactly the action modules of the folder, every id a playbook or the example policy can choose
 * is registered, each declaration is complete, and every declared permission is granted by the
 * deployment — nothing more — while the README table is generated from the same declarations.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import * as bundler from '../../scripts/bundle-functions.mjs';
import { ALL_ACTIONS } from '../../shared/actions/index.js';
import { getAction, listActions, renderActionsTable } from '../../shared/actions/registry.js';
import { loadConfig } from '../../shared/adapters/config/load.js';
import { PLAYBOOK_ACTION_IDS } from '../../shared/core/policy/playbooks.js';

const root = join(import.meta.dirname, '..', '..');
const ACTIONS_DIR = join(root, 'shared', 'actions');
const read = (path: string) => readFileSync(join(root, path), 'utf8');

/** What makes a module an action: a default export with an id and the four operations. */
const ActionModuleSchema = z.looseObject({
  default: z.looseObject({
    id: z.string(),
    plan: z.function(),
    apply: z.function(),
    verify: z.function(),
    rollback: z.function(),
  }),
});

/** Permission formats per provider: an IAM action, an Azure RBAC operation, a GCP permission. */
const PERMISSION_FORMAT = {
  aws: /^[a-z0-9-]+:[A-Z][A-Za-z0-9]+$/,
  azure: /^Microsoft\.[A-Za-z]+(\/[A-Za-z]+)+(\/action)?$/,
  gcp: /^[a-z]+\.[a-zA-Z]+\.[a-zA-Z]+$/,
} as const;

async function folderModules(): Promise<Array<{ file: string; isAction: boolean; id?: string }>> {
  const files = readdirSync(ACTIONS_DIR).filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'));
  return Promise.all(
    files.map(async (file) => {
      const parsed = ActionModuleSchema.safeParse(await import(pathToFileURL(join(ACTIONS_DIR, file)).href));
      return parsed.success ? { file, isAction: true, id: parsed.data.default.id } : { file, isAction: false };
    }),
  );
}

describe('action registry contract', () => {
  it('lists in index.ts exactly the modules of shared/actions whose default export is an action', async () => {
    // Prepare
    const modules = await folderModules();
    // Act
    const actionFiles = modules.filter((m) => m.isAction).map((m) => basename(m.file, '.ts'));
    // Assess
    expect(ALL_ACTIONS.map((a) => a.id).sort()).toEqual(actionFiles.sort());
    expect(new Set(ALL_ACTIONS.map((a) => a.id)).size).toBe(ALL_ACTIONS.length);
    expect(actionFiles.length).toBeGreaterThanOrEqual(8);
  });

  it('names each action module after its id', async () => {
    // Act
    const mismatched = (await folderModules()).filter((m) => m.isAction && m.id !== basename(m.file, '.ts'));
    // Assess
    expect(mismatched).toEqual([]);
  });

  it('registers every action id a playbook line can choose', () => {
    // Act
    const missing = PLAYBOOK_ACTION_IDS.filter((id) => getAction(id) === undefined);
    // Assess
    expect(missing).toEqual([]);
  });

  it('registers every action id the example policy names', async () => {
    // Prepare
    const config = await loadConfig(join(root, 'examples', 'config'));
    // Ids also appear in comments and values: any dotted word starting like a registered id counts.
    const prefixes = [...new Set(listActions().map((a) => a.id.split('.')[0]))].join('|');
    const mentioned = read('examples/config/policy.yaml').match(
      new RegExp(`\\b(?:${prefixes})\\.[a-z0-9.-]*[a-z0-9]`, 'g'),
    );
    // Act
    const named = [
      ...Object.keys(config.policy.decide.actionModes),
      ...Object.keys(config.policy.apply.actions),
      ...(mentioned ?? []),
    ];
    // Assess
    expect(named.filter((id) => getAction(id) === undefined)).toEqual([]);
  });

  it('declares each action completely: provider, handles, permissions in the provider format, risk, productionSafe', () => {
    for (const a of listActions()) {
      // Act
      const handled = [
        ...(a.handles.findingTypes ?? []),
        ...(a.handles.controls ?? []),
        ...(a.handles.categories ?? []),
      ];
      // Assess
      expect(a.title.trim(), a.id).not.toBe('');
      expect(['aws', 'azure', 'gcp'], a.id).toContain(a.provider);
      expect(handled.length, `${a.id} handles nothing`).toBeGreaterThan(0);
      expect(a.permissions.length, `${a.id} declares no permission`).toBeGreaterThan(0);
      expect(new Set(a.permissions).size, `${a.id} repeats a permission`).toBe(a.permissions.length);
      for (const p of a.permissions) expect(p, a.id).toMatch(PERMISSION_FORMAT[a.provider]);
      expect(['low', 'medium', 'high'], a.id).toContain(a.risk);
      expect(typeof a.productionSafe, a.id).toBe('boolean');
    }
  });

  it('outlines each action with steps whose permissions it declares (the offline dry-run shows them)', () => {
    for (const a of listActions()) {
      expect(a.outline?.length, a.id).toBeGreaterThan(0);
      for (const step of a.outline ?? []) {
        expect(a.permissions, `${a.id}: ${step.say}`).toContain(step.permission);
        expect(step.say.length, a.id).toBeGreaterThan(10);
      }
    }
  });

  it('keeps the generated permission files equal to the declarations, per provider', async () => {
    // Prepare
    const declared = await bundler.registryPermissions(root);
    if (!declared) throw new Error('shared/actions/registry.ts is missing: nothing to compare');
    // Act
    const expected = bundler.permissionFiles(declared);
    // Assess
    expect(Object.keys(expected).sort()).toEqual([
      'infra/aws/action-permissions.json',
      'infra/aws/member-role.json',
      'infra/aws/verify-permissions.json',
      'infra/azure/action-permissions.json',
      'infra/gcp/action-permissions.json',
    ]);
    for (const [path, content] of Object.entries(expected)) expect(JSON.parse(read(path)), path).toEqual(content);
    expect(declared.gcp).toContain('compute.globalOperations.get');
  });

  it('grants the AWS actions to the remediate role, and their verify reads to the verify role, through the generated files only', () => {
    // Prepare
    const yml = read('serverless.yml');
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a Serverless Framework ${file()} variable, not a JS template
    const reference = "Statement: '${file(./infra/aws/action-permissions.json):statements}'";
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a Serverless Framework ${file()} variable, not a JS template
    const verifyReference = "Statement: '${file(./infra/aws/verify-permissions.json):statements}'";
    // Act
    const granted = yml.split('\n').filter((l) => l.includes('action-permissions.json'));
    const verifyGranted = yml.split('\n').filter((l) => l.includes('verify-permissions.json'));
    const inline = listActions()
      .filter((a) => a.provider === 'aws')
      .flatMap((a) => a.permissions)
      .filter((p) => yml.includes(p));
    // Assess: remediate-actions loads the actions' file, verify-actions the verify file (once each); no action
    // permission is copied inline.
    expect(granted.filter((l) => l.includes(reference))).toHaveLength(1);
    expect(verifyGranted.filter((l) => l.includes(verifyReference))).toHaveLength(1);
    expect(inline).toEqual([]);
  });

  /**
   * Azure (Bicep) and GCP (Terraform) define one custom role each: its permission list must be the
   * generated file (loaded by the template and bound to the role) or an inline list equal to it.
   */
  const ROLE_TEMPLATES = [
    {
      provider: 'azure' as const,
      ext: '.bicep',
      role: /resource (\w+) 'Microsoft\.Authorization\/roleDefinitions@[^']+'[\s\S]*?\n\s*actions:\s*(\[[^\]]*\]|[\w.]+)/g,
      loads: (v: string) => new RegExp(`var ${v} = loadJsonContent\\('(?:\\./)?action-permissions\\.json'\\)`),
      bound: /^(\w+)\.actions$/,
    },
    {
      provider: 'gcp' as const,
      ext: '.tf',
      role: /resource "google_(?:project|organization)_iam_custom_role" "(\w+)" \{[\s\S]*?\n\s*permissions\s*=\s*(\[[^\]]*\]|[\w.]+)/g,
      loads: (v: string) =>
        new RegExp(`${v}\\s*=\\s*jsondecode\\(file\\("[^"]*action-permissions\\.json"\\)\\)\\.permissions`),
      bound: /^local\.(\w+)$/,
    },
  ];

  /**
   * The custom roles that are not the actions': each grants exactly what is listed here, reviewed one by one
   * (the skip-tag re-read before an apply, shared/core/remediation/remote.ts; resolving a verified Defender
   * alert, shared/adapters/upstream/spoke.ts).
   */
  const OTHER_ROLES: Record<'azure' | 'gcp', Record<string, string[]>> = {
    azure: {
      tagReadRole: ['Microsoft.Resources/tags/read'],
      alertResolveRole: ['Microsoft.Security/locations/alerts/resolve/action'],
    },
    gcp: {
      label_read: ['resourcemanager.projects.get'],
      ingest_label_read: ['resourcemanager.projects.get', 'storage.buckets.get'],
    },
  };

  it.each(ROLE_TEMPLATES)('has the $provider custom roles grant exactly the generated (or listed) permissions', (t) => {
    // Prepare
    const dir = join('infra', t.provider);
    const declared = [
      ...new Set(
        listActions()
          .filter((a) => a.provider === t.provider)
          .flatMap((a) => a.permissions),
      ),
    ].sort();
    const texts = readdirSync(join(root, dir))
      .filter((f) => f.endsWith(t.ext))
      .map((f) => ({ file: f, text: read(join(dir, f)) }));
    // Act: each custom role's permission expression, resolved to what it grants.
    const roles = texts.flatMap(({ file, text }) =>
      [...text.matchAll(t.role)].map((m) => {
        const name = m[1] ?? '';
        const expr = (m[2] ?? '').trim();
        const variable = t.bound.exec(expr)?.[1];
        if (variable) return { file, name, grants: t.loads(variable).test(text) ? declared : [`unresolved ${expr}`] };
        return { file, name, grants: [...expr.matchAll(/["']([^"']+)["']/g)].map((x) => x[1] ?? '').sort() };
      }),
    );
    // Assess
    const others = OTHER_ROLES[t.provider];
    expect(roles.filter((r) => !(r.name in others)).length, `no actions role in infra/${t.provider}`).toBe(1);
    expect(roles.map((r) => r.name).filter((n) => n in others)).toEqual(Object.keys(others));
    for (const r of roles) expect(r.grants, `${r.file} ${r.name}`).toEqual(others[r.name] ?? declared);
  });

  it('keeps the README actions table equal to renderActionsTable()', () => {
    // Prepare
    const readme = read('README.md');
    const block = /<!-- actions:start -->\n([\s\S]*?)\n<!-- actions:end -->/.exec(readme);
    // Act / Assess (regenerate: npx tsx -e "import('./shared/actions/registry.ts').then(m=>console.log(m.renderActionsTable()))")
    expect(block?.[1], 'README.md lacks the <!-- actions:start --> … <!-- actions:end --> block').toBe(
      renderActionsTable(),
    );
  });

  it('renders one README row per action with its permissions, risk and production safety', () => {
    // Act
    const rows = renderActionsTable().split('\n').slice(2);
    // Assess
    expect(rows).toHaveLength(listActions().length);
    const gcs = rows.find((r) => r.startsWith('| `gcs.remove-public-access` |'));
    expect(gcs).toContain('`storage.buckets.setIamPolicy`<br>`storage.buckets.update`');
    expect(gcs).toMatch(/\| medium \| no \|$/);
  });
});
