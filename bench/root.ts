import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The project root, found upward from a bench module: the bench runs both from its sources (tsx) and
 * from its bundle in dist/bench (`npm run bench`), so a fixed `..` would be wrong for one of them.
 */
export function projectRoot(moduleUrl: string): string {
  let dir = dirname(fileURLToPath(moduleUrl));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'closeloop')
      return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error(`no closeloop package.json above ${fileURLToPath(moduleUrl)}`);
    dir = up;
  }
}

/**
 * True when the bench module `name` (`e2e`, `ticket-storm`) is the script node was started with. Not an
 * `import.meta.url` comparison: bundled into dist/bench/run.mjs, every module shares the bundle's URL.
 */
export function ranAsScript(name: string): boolean {
  return basename(process.argv[1] ?? '').replace(/\.(ts|mjs|js)$/, '') === name;
}
