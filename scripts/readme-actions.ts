/**
 * Regenerates README.md's actions table (between `<!-- actions:start -->` and `<!-- actions:end -->`) from the
 * action registry's declarations: `npm run docs`. test/contract/registry.test.ts fails when they differ.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderActionsTable } from '../shared/actions/registry.js';

const file = join(import.meta.dirname, '..', 'README.md');
const text = readFileSync(file, 'utf8');
const start = '<!-- actions:start -->';
const end = '<!-- actions:end -->';
const a = text.indexOf(start);
const b = text.indexOf(end);
if (a < 0 || b < a) throw new Error(`README.md lacks the ${start} … ${end} markers`);
const next = `${text.slice(0, a + start.length)}\n${renderActionsTable()}\n${text.slice(b)}`;
if (next !== text) writeFileSync(file, next);
console.log(next === text ? 'README.md actions table already current' : 'README.md actions table updated');
