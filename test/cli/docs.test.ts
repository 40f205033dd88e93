/**
 * The README's CLI section and the usage text name exactly the commands and options the CLI accepts: a
 * documented flag the parser refuses is a usage error for whoever follows the README, an accepted one that
 * no document names is a feature nobody finds.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { OPTIONS } from '../../functions/cli/closeloop.js';
import { commands, USAGE } from '../../shared/adapters/cli/registry.js';
import { PolicyFileSchema } from '../../shared/core/config.js';

const readme = readFileSync(join(import.meta.dirname, '../../README.md'), 'utf8');
/** From `## The CLI` to the next section (its `###` subsections are about running, not the interface). */
const section = readme.slice(readme.indexOf('## The CLI'), readme.indexOf('\n### ', readme.indexOf('## The CLI')));
const flags = (text: string) => new Set([...text.matchAll(/(?<![\w-])--([a-z][a-z-]*)/g)].map((m) => m[1] ?? ''));
const options = Object.keys(OPTIONS);

describe('the CLI as the README and the usage describe it', () => {
  it('documents exactly the commands the CLI has', () => {
    // Prepare: the first word of each row of the command table
    const rows = [...section.matchAll(/^\| `([a-z]+)[ `]/gm)].map((m) => m[1] ?? '');
    // Assess
    expect([...new Set(rows)].sort()).toEqual(Object.keys(commands).sort());
    for (const name of Object.keys(commands)) expect(USAGE, name).toMatch(new RegExp(`^ {2}${name}\\b`, 'm'));
  });

  it('names only options the parser accepts, and every one it accepts', () => {
    // Assess: README
    expect([...flags(section)].filter((f) => !options.includes(f))).toEqual([]);
    expect(options.filter((o) => !flags(section).has(o))).toEqual([]);
    // and the usage text
    expect([...flags(USAGE)].filter((f) => !options.includes(f))).toEqual([]);
    expect(options.filter((o) => !flags(USAGE).has(o))).toEqual([]);
  });

  it('gives the same exit codes in both', () => {
    // Prepare
    const codes = (text: string) =>
      [...text.matchAll(/`?([0-3])`? (?:every|all|some|usage|the command)/g)].map((m) => m[1]);
    // Assess
    expect(codes(section)).toEqual(['0', '1', '2', '3']);
    expect(codes(USAGE)).toEqual(['0', '1', '2', '3']);
  });

  it("names the Node version package.json's engines require", () => {
    // Prepare
    const pkg = JSON.parse(readFileSync(join(import.meta.dirname, '../../package.json'), 'utf8')) as {
      engines: { node: string };
    };
    // Assess
    expect(readme).toContain(`Node ${pkg.engines.node.replace(/^>=/, '')} or newer`);
  });
});

describe("the README's policy defaults", () => {
  it("are the schemas' defaults", () => {
    // Prepare
    const { enrichment, decide, apply, verification } = PolicyFileSchema.parse({});
    const { applyMinutes, spokeMinutes } = apply.abandonAfter;
    const { times, afterMinutes } = verification.recheckInconclusive;
    // Assess
    expect(readme).toContain(`\`apply.abandonAfter\` (${applyMinutes} minutes, ${spokeMinutes} for a spoke)`);
    expect(readme).toContain(`\`verification.recheckInconclusive.times\` (${times}) times`);
    expect(readme).toContain(`\`afterMinutes\` (${afterMinutes})`);
    expect(readme).toContain(`enrichment shares them for ${enrichment.lookup.ttlSeconds / 60} minutes`);
    expect(decide.requireOwner).toBe(true); // "`decide.requireOwner` (the default)"
    expect(readme).toContain('`decide.requireOwner` (the default)');
  });
});
