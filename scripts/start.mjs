#!/usr/bin/env node
// `npm start`: the embedded default over the bundled examples. The examples hold one bad event on
// purpose (examples/events/zz-bad-truncated.json) to show a rejection kept as a dead letter, so the CLI's
// exit code 1 ("some inputs rejected") is expected here and explained rather than reported as a failure.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const run = (args) => spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' }).status ?? 1;

if (run([join(root, 'scripts/build.mjs'), '--cli']) !== 0) process.exit(1);
const code = run([
  join(root, 'bin/closeloop.mjs'),
  'run',
  'examples/events',
  '--config',
  'examples/config',
  ...process.argv.slice(2),
]);
if (code === 1) {
  console.log('\n(exit code 1 means some inputs were rejected: the examples include one truncated event on purpose.)');
  console.log('Next: npx closeloop tickets · npx closeloop evidence verify · npx closeloop plan examples/events');
  process.exit(0);
}
process.exit(code);
