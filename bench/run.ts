/**
 * `npm run bench` — prints a table and writes bench/results.json.
 *   --quick   a smoke run (5k findings, fewer repetitions) that CI may call.
 * Figures are measured here, never asserted in unit tests.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { loadConfig } from '../shared/adapters/config/load.js';
import { SqliteDocStore } from '../shared/adapters/store/sqlite.js';
import type { Case } from '../shared/core/model/case.js';
import type { Finding } from '../shared/core/model/finding.js';
import { caseKeyOf, decide } from '../shared/core/pipeline/decide.js';
import { createEnricher } from '../shared/core/pipeline/enrich.js';
import { createIngest } from '../shared/core/pipeline/ingest.js';
import { normalize } from '../shared/core/pipeline/normalize.js';
import { InProcessBus } from '../shared/core/pipeline/stage.js';
import { silentLogger, systemClock } from '../shared/core/ports.js';
import { generate } from './generate.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const quick = process.argv.includes('--quick');
const N = quick ? 5_000 : 100_000;

let peakRss = 0;
const sampler = setInterval(() => {
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
}, 25);

const results: Record<string, unknown> = {};
const rows: Array<[string, string, string]> = [];
const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

async function main() {
  const config = await loadConfig(join(root, 'examples/config'));
  const inputs = generate(N);
  const expected = inputs.reduce((s, i) => s + i.findings, 0);
  console.error(`bench: ${inputs.length} inputs, ${expected} findings expected (${quick ? 'quick' : 'full'})`);

  // 1. The physical floor: JSON.parse alone over the same input.
  let t = performance.now();
  let parsed = 0;
  for (const i of inputs) {
    try {
      JSON.parse(i.text);
      parsed++;
    } catch {
      /* the 1% bad inputs */
    }
  }
  const parseSec = (performance.now() - t) / 1000;
  results.jsonParseFindingsPerSec = Math.round(parsed / parseSec);
  rows.push(['JSON.parse baseline', `${fmt(parsed / parseSec)} findings/s`, '']);

  // 2. normalize + enrich + decide in memory (parse included, one core).
  const enricher = createEnricher({ registry: config.registry, policy: config.policy.enrichment, log: silentLogger });
  const cases = new Map<string, Case>();
  const findings = new Map<string, Finding>();
  const exceptions = config.exceptions;
  const now = new Date('2026-11-23T00:00:00Z');
  t = performance.now();
  let n = 0;
  let rejected = 0;
  for (const i of inputs) {
    let value: unknown;
    try {
      value = JSON.parse(i.text);
    } catch {
      rejected++;
      continue;
    }
    const out = normalize(value, 'bench');
    rejected += out.rejected.length;
    for (const f of out.findings) {
      const enrichment = enricher.enrichSync(f) ?? (await enricher.enrich(f));
      const key = caseKeyOf(f);
      const previous = findings.get(f.key);
      const existing = cases.get(key);
      const d = decide({
        finding: f,
        ...(previous ? { previous } : {}),
        enrichment,
        ...(existing ? { existing } : {}),
        exceptions,
        policy: config.policy.decide,
        now,
      });
      if (d.findingChanged) findings.set(f.key, f);
      if (d.caseChanged) cases.set(key, d.next);
      n++;
    }
  }
  const memSec = (performance.now() - t) / 1000;
  results.inMemoryFindingsPerSec = Math.round(n / memSec);
  results.inMemoryToParseRatio = Number((n / memSec / (parsed / parseSec)).toFixed(3));
  rows.push([
    'normalize+enrich+decide (memory)',
    `${fmt(n / memSec)} findings/s`,
    `${((n / memSec / (parsed / parseSec)) * 100).toFixed(1)}% of JSON.parse; ${cases.size} cases, ${rejected} rejected`,
  ]);

  // 3. The full ingest with the embedded store (SQLite file, WAL).
  const dir = mkdtempSync(join(tmpdir(), 'closeloop-bench-'));
  try {
    const store = await SqliteDocStore.open(join(dir, 'closeloop.db'));
    const bus = new InProcessBus([], silentLogger);
    const ingest = createIngest({
      store,
      bus,
      enricher,
      config,
      exceptions: async () => exceptions,
      clock: systemClock,
      log: silentLogger,
    });
    t = performance.now();
    let stored = 0;
    const slice = 2000;
    for (let i = 0; i < inputs.length; i += slice) {
      const docs = [];
      for (const [j, inp] of inputs.slice(i, i + slice).entries()) {
        try {
          docs.push({ input: `bench#${i + j}`, value: JSON.parse(inp.text) as unknown });
        } catch {
          /* counted as rejected by the reader in real runs */
        }
      }
      const out = await ingest.ingest(docs);
      stored += out.results.length;
      await bus.drain();
    }
    const storeSec = (performance.now() - t) / 1000;
    results.storeFindingsPerSec = Math.round(stored / storeSec);
    rows.push(['ingest with SQLite store', `${fmt(stored / storeSec)} findings/s`, `${stored} findings`]);
    await store.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  // 4. Later stages add their figures when their modules are present.
  const extra = [
    ['ticket storm', join(root, 'bench/ticket-storm.ts')],
    ['end to end', join(root, 'bench/e2e.ts')],
  ] as const;
  for (const [label, file] of extra) {
    if (!existsSync(file)) continue;
    const mod = (await import(pathToFileURL(file).href)) as {
      benchRows?: (
        quick: boolean,
      ) => Promise<{ results: Record<string, unknown>; rows: Array<[string, string, string]> }>;
    };
    if (!mod.benchRows) continue;
    const out = await mod.benchRows(quick);
    Object.assign(results, out.results);
    rows.push(...out.rows);
    console.error(`bench: ${label} done`);
  }
  const bundles = join(root, 'scripts/bundle-functions.mjs');
  if (existsSync(bundles)) {
    const mod = (await import(pathToFileURL(bundles).href)) as {
      bundleStats?: (o: {
        root: string;
        runs?: number;
      }) => Promise<Array<{ function: string; bytes: number; loadMs: number }>>;
    };
    if (mod.bundleStats) {
      const stats = await mod.bundleStats({ root, runs: quick ? 5 : 20 });
      results.bundles = stats;
      for (const s of stats)
        rows.push([
          `bundle ${s.function}`,
          `${(s.bytes / 1024).toFixed(0)} KB`,
          `load ${s.loadMs.toFixed(0)} ms (median)`,
        ]);
    }
  }

  clearInterval(sampler);
  peakRss = Math.max(peakRss, process.resourceUsage().maxRSS * 1024);
  results.peakRssMb = Math.round(peakRss / 1024 / 1024);
  rows.push(['peak RSS', `${results.peakRssMb} MB`, '']);
  results.findings = N;
  results.quick = quick;
  results.node = process.version;

  const out = join(root, 'bench/results.json');
  const previous = existsSync(out) ? (JSON.parse(readFileSync(out, 'utf8')) as Record<string, unknown>) : {};
  writeFileSync(out, `${JSON.stringify({ ...previous, ...results }, null, 2)}\n`);
  const w0 = Math.max(...rows.map((r) => r[0].length));
  const w1 = Math.max(...rows.map((r) => r[1].length));
  console.log(
    `closeloop bench (${N.toLocaleString('en-US')} findings${quick ? ', quick' : ''}, node ${process.version})`,
  );
  for (const [a, b, c] of rows) console.log(`${a.padEnd(w0)}  ${b.padStart(w1)}  ${c}`);
  console.log(`written: ${out}`);
}

await main();
