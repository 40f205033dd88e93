#!/usr/bin/env node
// `npm run bench`: bundles bench/run.ts the way the CLI is built (esbuild, dependencies external) and runs
// the bundle, so the figures are those of the code as it ships — dist/cli and the function bundles are
// esbuild output, never tsx's on-the-fly transform (which adds a `__name` call to every function it
// creates, keepNames, and costs a few percent on the hot paths). Arguments pass through
// (`npm run bench -- --quick`). `npx tsx bench/run.ts` still runs the sources directly.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { NODE_BUNDLE } from './node-bundle.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outfile = join(root, 'dist/bench/run.mjs');
await build({
  entryPoints: [join(root, 'bench/run.ts')],
  outfile,
  ...NODE_BUNDLE,
  sourcemap: 'linked',
  // The function bundler is a script of its own (it runs its CLI when it is node's main module, and the
  // bench bundle would be): imported from where it lies, not copied in.
  plugins: [
    {
      name: 'bundler-stays-a-script',
      setup(b) {
        b.onResolve({ filter: /\/scripts\/bundle-functions\.mjs$/ }, () => ({
          path: '../../scripts/bundle-functions.mjs',
          external: true,
        }));
      },
    },
  ],
});
const run = spawnSync(process.execPath, [outfile, ...process.argv.slice(2)], {
  cwd: root,
  stdio: 'inherit',
});
process.exit(run.status ?? 1);
