#!/usr/bin/env node
// Builds what runs outside the test runner.
//   --cli        only the local CLI (dist/cli/closeloop.mjs); dependencies stay external (node_modules).
//   (no flag)    the CLI and every deployed function (see scripts/bundle-functions.mjs when present).
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { NODE_BUNDLE } from './node-bundle.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const cliOnly = process.argv.includes('--cli');

await build({
  entryPoints: [join(root, 'functions/cli/closeloop.ts')],
  outfile: join(root, 'dist/cli/closeloop.mjs'),
  ...NODE_BUNDLE,
  sourcemap: 'linked',
});

if (!cliOnly) {
  const functions = join(root, 'scripts/bundle-functions.mjs');
  if (existsSync(functions)) {
    const { bundleFunctions } = await import(functions);
    await bundleFunctions({ root });
  }
}
