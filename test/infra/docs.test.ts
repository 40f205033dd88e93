/**
 * What the READMEs tell a user to type is what the templates accept: every `--param` a deploy command
 * passes is a serverless.yml param, every `-p` of a Bicep deployment a parameter of main.bicep, every
 * `-var` of a Terraform apply a variable of infra/gcp, every output a command takes its value from exists;
 * and every parameter a template takes is documented (infra/README.md promises "every parameter").
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { z } from 'zod';
import { root } from './helpers.js';

const read = (path: string) => readFileSync(join(root, path), 'utf8');
const readme = read('README.md');
const infraReadme = read('infra/README.md');
const docs = `${readme}\n${infraReadme}`;
const bicepMain = read('infra/azure/main.bicep');
const bicepSpoke = read('infra/azure/spoke.bicep');

/**
 * The shell commands of the fenced `sh` blocks: comments cut off, `\`-continued lines joined, one entry a
 * command (a pipe's second half stays with its first).
 */
function shellCommands(markdown: string): string[] {
  const commands: string[] = [];
  for (const [, body = ''] of markdown.matchAll(/```sh\n([\s\S]*?)```/g)) {
    let current = '';
    for (const raw of body.split('\n')) {
      const line = raw.replace(/(^|\s)#.*$/, '').trimEnd();
      const continued = line.endsWith('\\') || line.trimStart().startsWith('|');
      current = `${current} ${line.replace(/\\$/, '')}`.trim();
      if (!continued && !/\|\s*$/.test(line)) {
        if (current) commands.push(current);
        current = '';
      }
    }
    if (current) commands.push(current);
  }
  return commands;
}

/** `param name type` declarations of a Bicep file. */
const bicepParams = (text: string) => [...text.matchAll(/^param (\w+) /gm)].map((m) => m[1] ?? '');
const bicepOutputs = (text: string) => [...text.matchAll(/^output (\w+) /gm)].map((m) => m[1] ?? '');

describe('the Azure spoke as the docs deploy it', () => {
  const deployments = shellCommands(docs).filter((c) => c.includes('infra/azure/main.bicep'));

  it('passes only parameters main.bicep declares', () => {
    // Prepare
    const declared = bicepParams(bicepMain);
    const named = deployments.flatMap((c) =>
      [...(c.split(/\s-p\s/)[1] ?? '').matchAll(/(?:^|\s)([A-Za-z]\w*)=/g)].map((m) => m[1] ?? ''),
    );
    // Assess: az refuses a parameter the template does not declare
    expect(named).toContain('subscribeEventGrid');
    expect(named.filter((n) => !declared.includes(n))).toEqual([]);
  });

  it('hands every parameter of the spoke module through main.bicep (a module parameter has no other way in)', () => {
    // Prepare
    const module = /module spoke 'spoke\.bicep' = \{[\s\S]*?params: \{([\s\S]*?)\n {2}\}/.exec(bicepMain)?.[1] ?? '';
    const passed = [...module.matchAll(/^\s*(\w+):/gm)].map((m) => m[1]);
    // Assess
    expect(bicepParams(bicepSpoke).filter((p) => !passed.includes(p))).toEqual([]);
  });
});

/** The first column of the markdown table that follows `heading` (a line starting with it): `name` cells. */
function tableNames(markdown: string, heading: string): string[] {
  const at = markdown.indexOf(heading);
  if (at < 0) throw new Error(`no table after ${heading}`);
  const rows = markdown.slice(at).split('\n').slice(1);
  const start = rows.findIndex((r) => r.startsWith('|'));
  const names: string[] = [];
  for (const row of rows.slice(start + 2)) {
    if (!row.startsWith('|')) break;
    names.push(...[...(row.split('|')[1] ?? '').matchAll(/`(\w+)`/g)].map((m) => m[1] ?? ''));
  }
  return names;
}

/** Backticked names of the paragraph starting with `Outputs:` after `section`. */
function outputsParagraph(markdown: string, section: string): string[] {
  const from = markdown.indexOf(section);
  const at = markdown.indexOf('\nOutputs:', from);
  const paragraph = markdown.slice(at, markdown.indexOf('\n\n', at + 1));
  return [...paragraph.matchAll(/`(\w+)`/g)].map((m) => m[1] ?? '');
}

describe('the parameters and outputs the docs name', () => {
  const sls = z
    .looseObject({
      params: z.object({ default: z.record(z.string(), z.unknown()) }),
      resources: z.looseObject({ Outputs: z.record(z.string(), z.unknown()) }),
    })
    .parse(parse(read('serverless.yml')));
  const slsParams = Object.keys(sls.params.default);
  const slsOutputs = Object.keys(sls.resources.Outputs);
  const tf = ['variables.tf', 'outputs.tf'].map((f) => read(`infra/gcp/${f}`)).join('\n');
  const tfVariables = [...tf.matchAll(/^variable "(\w+)"/gm)].map((m) => m[1] ?? '');
  const tfOutputs = [...tf.matchAll(/^output "(\w+)"/gm)].map((m) => m[1] ?? '');

  it('passes only serverless.yml params, and documents each of them with its default', () => {
    // Prepare
    const named = shellCommands(docs).flatMap((c) => [...c.matchAll(/--param="?(\w+)=/g)].map((m) => m[1] ?? ''));
    const documented = tableNames(infraReadme, 'Parameters (`--param="name=value"`');
    // Assess
    expect(named.filter((n) => !slsParams.includes(n))).toEqual([]);
    expect(documented.filter((n) => !slsParams.includes(n))).toEqual([]);
    expect(slsParams.filter((p) => !documented.includes(p))).toEqual([]);
    for (const [name, value] of Object.entries(sls.params.default)) {
      const row = infraReadme.split('\n').find((r) => r.startsWith(`| \`${name}\` |`)) ?? '';
      const cell = row.split('|')[2]?.trim();
      expect(cell, name).toBe(value === '' ? 'empty' : `\`${String(value)}\``);
    }
  });

  it('documents every hub output, and takes values only from outputs the templates have', () => {
    // Prepare
    const hubOutputs = outputsParagraph(infraReadme, '## AWS hub');
    const azureOutputs = outputsParagraph(infraReadme, '## Azure spoke');
    const gcpOutputs = outputsParagraph(infraReadme, '## GCP spoke');
    // In a command, `<HubBusArn>`, `<remediateUrl output>`: a value taken from an output (`<account>`, `<ou>` are the user's)
    const placeholders = [
      ...shellCommands(docs)
        .join('\n')
        .matchAll(/<(\w+) output>|<(\w*[A-Z_]\w*)>/g),
    ].map((m) => m[1] ?? m[2] ?? '');
    const outputs = [...slsOutputs, ...bicepOutputs(bicepMain), ...tfOutputs];
    // Assess: each Outputs list is exactly its template's (params and variables it points to are allowed)
    expect(slsOutputs.filter((o) => !hubOutputs.includes(o))).toEqual([]);
    expect(bicepOutputs(bicepMain).filter((o) => !azureOutputs.includes(o))).toEqual([]);
    expect(tfOutputs.filter((o) => !gcpOutputs.includes(o))).toEqual([]);
    const names = [...slsParams, ...bicepParams(bicepMain), ...tfVariables, ...outputs];
    expect([...hubOutputs, ...azureOutputs, ...gcpOutputs].filter((n) => !names.includes(n))).toEqual([]);
    expect(placeholders).toContain('HubBusArn');
    expect(placeholders.filter((p) => !outputs.includes(p))).toEqual([]);
  });
});

describe('the GCP spoke as the docs deploy it', () => {
  const tf = read('infra/gcp/variables.tf');
  const variables = [...tf.matchAll(/^variable "(\w+)"/gm)].map((m) => m[1] ?? '');

  it('passes only variables infra/gcp declares, and documents each of them', () => {
    // Prepare
    const applies = shellCommands(docs).filter((c) => c.includes('terraform apply'));
    const named = applies.flatMap((c) => [...c.matchAll(/-var '?(\w+)=/g)].map((m) => m[1] ?? ''));
    const documented = tableNames(infraReadme, 'Variables (`-var name=value`)');
    // Assess
    expect(named).toContain('remediate_enabled');
    expect(named.filter((n) => !variables.includes(n))).toEqual([]);
    expect(variables.filter((v) => !documented.includes(v))).toEqual([]);
  });
});

describe('the Azure spoke parameters', () => {
  it('documents each parameter of main.bicep', () => {
    // Prepare
    const documented = tableNames(infraReadme, 'Parameters (`-p name=value`)');
    // Assess
    expect(bicepParams(bicepMain).filter((p) => !documented.includes(p))).toEqual([]);
    expect(documented.filter((p) => !bicepParams(bicepMain).includes(p))).toEqual([]);
  });
});

describe('the environment variables the docs name', () => {
  const ENV_NAME = /\b((?:JIRA|CLOSELOOP)_[A-Z][A-Z_]*)\b/g;
  const names = (text: string) => new Set([...text.matchAll(ENV_NAME)].map((m) => m[1] ?? ''));
  const source = ['shared', 'functions', 'scripts', 'bin']
    .flatMap((dir) =>
      readdirSync(join(root, dir), { recursive: true, encoding: 'utf8' })
        .filter((f) => /\.(ts|mjs)$/.test(f))
        .map((f) => read(join(dir, f))),
    )
    .join('\n');
  const templates = ['serverless.yml', 'infra/azure/spoke.bicep', 'infra/azure/main.bicep', 'infra/gcp/main.tf']
    .map(read)
    .join('\n');
  // Constants that happen to share the prefix (`export const CLOSELOOP_SOURCE = 'closeloop'`) are no variables.
  const constants = new Set([...source.matchAll(/const ((?:JIRA|CLOSELOOP)_[A-Z_]+) =/g)].map((m) => m[1] ?? ''));
  const readByCode = [...names(source)].filter((n) => !constants.has(n));

  it('names only variables the code reads or the templates set', () => {
    // Prepare
    const known = new Set([...readByCode, ...names(templates)]);
    // Assess
    expect([...names(docs)].filter((n) => !known.has(n))).toEqual([]);
  });

  it('names every variable the code reads that no template sets (a user sets it)', () => {
    // Prepare
    const set = names(templates);
    const documented = names(docs);
    // Assess
    expect(readByCode).toContain('CLOSELOOP_CONFIG_DIR');
    expect(readByCode.filter((n) => !set.has(n) && !documented.has(n))).toEqual([]);
  });
});
