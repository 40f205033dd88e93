#!/usr/bin/env node
// One Azure Functions app holds every Azure function, but scripts/bundle-functions.mjs zips each function
// alone (dist/functions/azure/<name>.zip). This merges them into the app's deployment package:
//   dist/functions/azure-app.zip = every <name>.mjs + host.json + package.json whose `main` is the glob
//   "*.mjs" (the v4 Node.js programming model loads every file the glob matches).
// Usage (after `npm run build`): node infra/azure/app-zip.mjs   → prints the zip path
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readZip, writeZip } from '../../scripts/bundle-functions.mjs';

/** Builds the merged zip from the per-function zips under `dist/functions/azure`; returns its path and file names. */
export function azureAppZip(root) {
  const dir = join(root, 'dist/functions/azure');
  const zips = existsSync(dir)
    ? readdirSync(dir)
        .filter((f) => f.endsWith('.zip'))
        .sort()
    : [];
  if (zips.length === 0) throw new Error(`no Azure function zips in ${dir}: run npm run build first`);
  const files = new Map();
  for (const zip of zips) {
    for (const [name, data] of readZip(join(dir, zip))) {
      // Each zip carries the same host.json; its package.json names only its own module, so it is replaced.
      if (name.endsWith('.mjs') || name === 'host.json') files.set(name, data);
    }
  }
  const pkg = { name: 'closeloop-azure-spoke', private: true, type: 'module', main: '*.mjs' };
  files.set('package.json', Buffer.from(`${JSON.stringify(pkg, null, 2)}\n`));
  const target = join(root, 'dist/functions/azure-app.zip');
  writeZip(
    target,
    [...files.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([name, data]) => ({ name, data })),
  );
  return { zip: target, files: [...files.keys()].sort() };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { zip, files } = azureAppZip(join(dirname(fileURLToPath(import.meta.url)), '../..'));
  console.log(`${zip}: ${files.join(', ')}`);
}
