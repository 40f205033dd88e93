/**
 * What the READMEs tell a user to type is what the templates accept: every `--param` a deploy command
 * passes is a serverless.yml param, every `-p` of a Bicep deployment a parameter of main.bicep, every
 * `-var` of a Terraform apply a variable of infra/gcp, every output a command takes its value from exists;
 * and every parameter a template takes is documented (infra/README.md promises "every parameter").
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
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
const bicepParams = (text: string) => [...text.matchAll(/^param (\w+) /gm)].map((m) => m[1]);
const bicepOutputs = (text: string) => [...text.matchAll(/^output (\w+) /gm)].map((m) => m[1]);

describe('the Azure spoke as the docs deploy it', () => {
  const deployments = shellCommands(docs).filter((c) => c.includes('infra/azure/main.bicep'));

  it('passes only parameters main.bicep declares', () => {
    // Prepare
    const declared = bicepParams(bicepMain);
    const named = deployments.flatMap((c) =>
      [...(c.split(/\s-p\s/)[1] ?? '').matchAll(/(?:^|\s)([A-Za-z]\w*)=/g)].map((m) => m[1]),
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
