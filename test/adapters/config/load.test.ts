import { cp, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../shared/adapters/config/load.js';
import { ConfigError } from '../../../shared/core/errors.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'closeloop-config-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const copyExamples = () => cp('examples/config', dir, { recursive: true });
const edit = async (file: string, from: string, to: string) => {
  const text = await readFile(join(dir, file), 'utf8');
  if (!text.includes(from)) throw new Error(`${file} does not contain ${from}`);
  await writeFile(join(dir, file), text.replace(from, to));
};

describe('loadConfig', () => {
  it('loads the example config with the ACME scenario when given examples/config', async () => {
    // Act
    const c = await loadConfig('examples/config');
    // Assess
    expect(c.origin).toBe('examples/config');
    expect(c.registry.triage.owner).toBe('secops-triage@acme.example');
    expect(c.registry.accounts.map((a) => a.id)).toContain('111122223333');
    expect(c.registry.accounts.map((a) => a.id)).not.toContain('777788889999');
    expect(c.policy.decide.skipTag).toBe('closeloop:skip');
    expect(c.policy.decide.allowlist.resources).toEqual(['arn:aws:s3:::acme-audit-logs*']);
    expect(c.policy.enrichment.lookup.enabled).toBe(false);
    expect(c.exceptions.map((e) => [e.id, e.expires])).toEqual([
      ['EXC-001', '2027-06-30'],
      ['EXC-000', '2026-10-01'],
    ]);
  });

  it('uses defaults for every file when the folder is empty', async () => {
    // Act
    const c = await loadConfig(dir);
    // Assess
    expect(c.registry.accounts).toEqual([]);
    expect(c.policy.decide.environments.unknown).toBe('manual');
    expect(c.exceptions).toEqual([]);
  });

  it('names the file and the field path when a value is not allowed', async () => {
    // Prepare
    await copyExamples();
    await edit(
      'registry.yaml',
      'name: acme-web-dev, environment: dev, team: web }',
      'environment: develop, team: web }',
    );
    // Act
    const error = await loadConfig(dir).catch((e: unknown) => e);
    // Assess
    expect(error).toBeInstanceOf(ConfigError);
    expect(String(error)).toMatch(/registry\.yaml: accounts\[1\]\.environment: .*expected one of/);
  });

  it('names an unknown key as a typo in policy.yaml', async () => {
    // Prepare
    await copyExamples();
    await edit('policy.yaml', 'skipTag:', 'skiptag:');
    // Act / Assess
    await expect(loadConfig(dir)).rejects.toThrow(/policy\.yaml: decide: Unrecognized key: "skiptag"/);
  });

  it('names a team reference the registry does not define', async () => {
    // Prepare
    await copyExamples();
    await edit('registry.yaml', 'team: media }', 'team: medias }');
    // Act / Assess
    await expect(loadConfig(dir)).rejects.toThrow(
      'registry.yaml: accounts[2].team: unknown team "medias" (not in teams[])',
    );
  });

  it('names the exception field when an exception has no justification', async () => {
    // Prepare
    await copyExamples();
    await edit(
      'exceptions.yaml',
      '    justification: temporary open firewall for a load test in the sandbox project\n',
      '',
    );
    // Act / Assess
    await expect(loadConfig(dir)).rejects.toThrow(/exceptions\.yaml: exceptions\[1\]\.justification/);
  });

  it('reports invalid YAML with the file name', async () => {
    // Prepare
    await writeFile(join(dir, 'registry.yaml'), 'accounts: [ { provider: aws\n');
    // Act / Assess
    await expect(loadConfig(dir)).rejects.toThrow(/^registry\.yaml: invalid YAML/);
  });

  it('refuses duplicate exception ids', async () => {
    // Prepare
    await copyExamples();
    await edit('exceptions.yaml', 'id: EXC-000', 'id: EXC-001');
    // Act / Assess
    await expect(loadConfig(dir)).rejects.toThrow('exceptions.yaml: exceptions[1].id: duplicate exception "EXC-001"');
  });

  it('refuses a config folder that does not exist instead of running on the defaults', async () => {
    // Act
    const error = await loadConfig(join(dir, 'confg')).catch((e: unknown) => e);
    // Assess
    expect(error).toBeInstanceOf(ConfigError);
    expect(String(error)).toMatch(/confg: no such config folder/);
  });

  it('refuses a config folder whose policy is written policy.yml (it would not be read)', async () => {
    // Prepare
    await copyExamples();
    await rename(join(dir, 'policy.yaml'), join(dir, 'policy.yml'));
    // Act / Assess
    await expect(loadConfig(dir)).rejects.toThrow(/policy\.yml: closeloop reads policy\.yaml/);
  });

  it('refuses a config path that is a file, not a folder', async () => {
    // Act / Assess
    await expect(loadConfig('examples/config/policy.yaml')).rejects.toThrow(/not a folder/);
  });

  it('refuses a never-touch allowlist entry whose ARN partition is mistyped (it would protect nothing)', async () => {
    // Prepare
    await copyExamples();
    await edit('policy.yaml', '"arn:aws:s3:::acme-audit-logs*"', '"arn:asw:s3:::acme-audit-logs*"');
    // Act / Assess
    await expect(loadConfig(dir)).rejects.toThrow(
      /policy\.yaml: decide\.allowlist\.resources\[0\]: "arn:asw:s3:::acme-audit-logs\*" can never match a resource id: "asw" is not an AWS partition/,
    );
  });

  it('refuses an apply deny glob with a missing ARN part', async () => {
    // Prepare
    await copyExamples();
    await edit('policy.yaml', 'decide:', 'apply:\n  resources: { deny: ["arn:aws:s3::acme-audit-*"] }\ndecide:');
    // Act / Assess
    await expect(loadConfig(dir)).rejects.toThrow(
      /policy\.yaml: apply\.resources\.deny\[0\]: .*"acme-audit-" cannot begin a 12-digit account id/,
    );
  });

  it('refuses an exception resource glob for GCP without its leading //', async () => {
    // Prepare
    await copyExamples();
    await edit('exceptions.yaml', '"//compute.googleapis.com/projects/', '"compute.googleapis.com/projects/');
    // Act / Assess
    await expect(loadConfig(dir)).rejects.toThrow(
      /exceptions\.yaml: exceptions\[1\]\.scope\.resources\[0\]: .*a GCP resource name starts with "\/\/"/,
    );
  });

  it("refuses a registry rule whose glob is another provider's id form", async () => {
    // Prepare
    await copyExamples();
    await edit('registry.yaml', 'match: { provider: aws,', 'match: { provider: azure,');
    // Act / Assess
    await expect(loadConfig(dir)).rejects.toThrow(
      /registry\.yaml: rules\[0\]\.match\.resource: .*match\.provider is azure: it can never match/,
    );
  });

  it('refuses a registry rule glob with an upper-case ARN service', async () => {
    // Prepare
    await copyExamples();
    await edit(
      'registry.yaml',
      'resource: "arn:aws:s3:::acme-public-website*"',
      'resource: "arn:aws:S3:::acme-public-website*"',
    );
    // Act / Assess
    await expect(loadConfig(dir)).rejects.toThrow(
      /registry\.yaml: rules\[0\]\.match\.resource: .*"S3" is not a service/,
    );
  });

  it('refuses decide.actionModes for an action id no playbook chooses (the override would never apply)', async () => {
    // Prepare
    await copyExamples();
    await edit(
      'policy.yaml',
      '  requireOwner: true',
      '  requireOwner: true\n  actionModes: { s3.block-public-acess: { prod: manual } }',
    );
    // Act / Assess
    await expect(loadConfig(dir)).rejects.toThrow(
      /policy\.yaml: decide\.actionModes\["s3\.block-public-acess"\]: unknown action "s3\.block-public-acess" \(expected one of s3\.block-public-access, /,
    );
  });

  it('refuses a decide.skipTag the apply-time re-check does not read (a tag set after the finding would not stop the fix)', async () => {
    // Prepare: the skip tag renamed where the README puts it, in decide only
    await copyExamples();
    await edit('policy.yaml', 'skipTag: "closeloop:skip"', 'skipTag: "do-not-fix"');
    // Act / Assess
    await expect(loadConfig(dir)).rejects.toThrow(
      /policy\.yaml: apply\.skipTag: "closeloop:skip" is not decide\.skipTag "do-not-fix"/,
    );
    // and set in both, the tag is one
    await writeFile(join(dir, 'policy.yaml'), 'decide:\n  skipTag: do-not-fix\napply:\n  skipTag: Do-Not-Fix\n');
    expect((await loadConfig(dir)).policy.apply.skipTag).toBe('Do-Not-Fix');
  });

  it('refuses apply.actions settings for an unknown action id (the settings would never be read)', async () => {
    // Prepare
    await copyExamples();
    await edit('policy.yaml', 'decide:', 'apply:\n  actions: { gcp.firewall.disable: { mode: narrow } }\ndecide:');
    // Act / Assess
    await expect(loadConfig(dir)).rejects.toThrow(
      /policy\.yaml: apply\.actions\["gcp\.firewall\.disable"\]: unknown action "gcp\.firewall\.disable"/,
    );
  });

  it('refuses a priority row keyed by an environment closeloop does not know (prod tickets took the default)', async () => {
    // Prepare
    await copyExamples();
    const row = '{ default: Medium }';
    await edit(
      'policy.yaml',
      'decide:',
      `tickets:\n  priorities: { critical: { production: Highest, default: High }, high: ${row}, medium: ${row}, low: ${row}, informational: ${row} }\ndecide:`,
    );
    // Act / Assess
    await expect(loadConfig(dir)).rejects.toThrow(
      /policy\.yaml: tickets\.priorities\.critical: Unrecognized key: "production"/,
    );
  });

  it('says what an exception expiry must look like when it is written another way', async () => {
    // Prepare
    await copyExamples();
    await edit('exceptions.yaml', 'expires: "2027-06-30"', 'expires: 30/06/2027');
    // Act / Assess
    await expect(loadConfig(dir)).rejects.toThrow(
      'exceptions.yaml: exceptions[0].expires: expected a date (2027-06-30, valid through that day, UTC) or a date-time with its zone',
    );
  });

  it('tells to quote an account id YAML read as a number (its leading zero lost)', async () => {
    // Prepare
    await copyExamples();
    await edit('registry.yaml', 'id: "111122223333"', 'id: 011122223333');
    // Act / Assess
    await expect(loadConfig(dir)).rejects.toThrow(
      /registry\.yaml: accounts\[0\]\.id: .*received number \(write it in quotes/,
    );
  });

  it('refuses a team owner with an @ that is not an e-mail (its tickets would go unassigned)', async () => {
    // Prepare
    await copyExamples();
    await edit('registry.yaml', 'owner: media-ops@acme.example', 'owner: media-ops@acme');
    // Act / Assess
    await expect(loadConfig(dir)).rejects.toThrow(
      'registry.yaml: teams[2].owner: an owner with "@" must be an e-mail address',
    );
  });

  it('refuses an exception owner with a doubled @', async () => {
    // Prepare
    await copyExamples();
    await edit('exceptions.yaml', 'owner: web-lead@acme.example', 'owner: web-lead@@acme.example');
    // Act / Assess
    await expect(loadConfig(dir)).rejects.toThrow('exceptions.yaml: exceptions[0].owner: an owner with "@" must be');
  });

  it('still takes an owner that is a plain name', async () => {
    // Prepare
    await copyExamples();
    await edit('registry.yaml', 'owner: media-ops@acme.example', 'owner: media-ops');
    // Act
    const c = await loadConfig(dir);
    // Assess
    expect(c.registry.teams.find((t) => t.id === 'media')?.owner).toBe('media-ops');
  });
});
