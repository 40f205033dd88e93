#!/usr/bin/env node
// The published entry: the CLI is bundled by `npm run build` (run on install by `prepare`).
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const cli = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'cli', 'closeloop.mjs');
if (!existsSync(cli)) {
  process.stderr.write('closeloop: the CLI is not built yet; run `npm run build` first.\n');
  process.exit(2);
}
const { main } = await import(pathToFileURL(cli).href);
process.exitCode = await main(process.argv.slice(2));
