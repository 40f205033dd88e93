/**
 * Issue 7, crash with --apply: kill the local run (a child process, SIGKILL) in the middle of an apply, after
 * the change reached the "cloud" and before closeloop recorded it, then run it again, and again once the
 * claim counts as abandoned → no case lost, no action applied twice (checked against the action's own call
 * log, not closeloop's records), the interrupted apply recorded, the evidence chain intact.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { generate } from '../../bench/generate.js';
import { listCases } from '../../shared/adapters/cli/cases.js';
import { LocalFolderEvidenceStore } from '../../shared/adapters/evidence/local-folder.js';
import { SqliteDocStore } from '../../shared/adapters/store/sqlite.js';
import { verifyChains } from '../../shared/core/evidence/audit.js';
import type { Case } from '../../shared/core/model/case.js';
import { tempDir } from '../helpers/tmp.js';

const ROOT = join(import.meta.dirname, '../..');
/** `node --import tsx`: one process (the tsx binary would run the entry in a grandchild, out of reach of the kill). */
const NODE_TSX = [process.execPath, '--import', 'tsx'] as const;
const ENTRY = join(ROOT, 'test/resilience/apply-run.ts');
const CONFIG = join(ROOT, 'examples/config');
/** The apply the first run dies in (a few applies in, with more events still to ingest). */
const HANG_AT = 4;

const bucketOf = (c: Case): string | undefined => {
  const t = c.remediation.target;
  return t !== null && typeof t === 'object' && 'bucket' in t && typeof t.bucket === 'string' ? t.bucket : undefined;
};

describe('crash in the middle of an apply, and resume', () => {
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => {
    tmp = tempDir();
  });
  afterEach(() => tmp.cleanup());

  it('applies no action twice and records the interrupted one when the run is killed mid-apply and run again', async () => {
    // Prepare
    const input = join(tmp.dir, 'events.jsonl');
    writeFileSync(
      input,
      `${generate(400, 11)
        .filter((e) => !e.bad)
        .map((e) => e.text)
        .join('\n')}\n`,
    );
    const home = join(tmp.dir, 'home');
    const callLog = join(tmp.dir, 'applies.log');
    const applied = () => (existsSync(callLog) ? readFileSync(callLog, 'utf8').split('\n').filter(Boolean) : []);
    const run = (hangAt: number, aheadMinutes = 0) =>
      spawnSync(
        NODE_TSX[0],
        [...NODE_TSX.slice(1), ENTRY, input, home, CONFIG, callLog, String(hangAt), String(aheadMinutes)],
        {
          cwd: ROOT,
          encoding: 'utf8',
          stdio: ['ignore', 'ignore', 'pipe'],
        },
      );

    // Act 1: the run hangs in its HANG_AT-th apply, after the change was made; kill it there.
    const child = spawn(NODE_TSX[0], [...NODE_TSX.slice(1), ENTRY, input, home, CONFIG, callLog, String(HANG_AT)], {
      cwd: ROOT,
      stdio: 'ignore',
    });
    const exited = new Promise<NodeJS.Signals | null>((resolve) =>
      child.on('exit', (_code, signal) => resolve(signal)),
    );
    // Generous: a loaded 2-core machine runs the first applies within seconds; the kill must still come mid-apply.
    const deadline = Date.now() + 60_000;
    while (applied().length < HANG_AT && child.exitCode === null && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 50));
    child.kill('SIGKILL');
    const signal = await exited;
    expect(signal, 'the run should have been killed, not have finished').toBe('SIGKILL');
    const atKill = applied();
    expect(atKill).toHaveLength(HANG_AT);
    const interrupted = atKill[HANG_AT - 1];

    // Act 2: run again to completion right away (the dead run's claim is still young), then again once it
    // counts as abandoned (policy apply.abandonAfter: 15 minutes).
    const resumed = run(0);
    const afterResume = applied();
    const later = run(0, 20);

    // Assess: each bucket changed at most once, by the action's own log
    expect(resumed.status, resumed.stderr).not.toBeNull();
    expect(later.status, later.stderr).not.toBeNull();
    const log = applied();
    expect(log.length).toBeGreaterThan(HANG_AT);
    expect(log.filter((b, i) => log.indexOf(b) !== i)).toEqual([]);
    expect(afterResume.slice(0, HANG_AT)).toEqual(atKill);

    const store = await SqliteDocStore.open(join(home, 'closeloop.db'));
    try {
      const cases = await listCases(store);
      const byBucket = new Map(cases.filter((c) => c.remediation.action).map((c) => [bucketOf(c), c]));
      // Every apply the log shows is on its case: applied, or the interrupted one settled with its outcome unknown
      for (const bucket of log) {
        const c = byBucket.get(bucket);
        expect(c, bucket).toBeDefined();
        if (bucket === interrupted) {
          expect(c?.remediation.state, bucket).toBe('failed');
          expect(c?.remediation.interruptedAt, bucket).toBeDefined();
        } else expect(c?.remediation.state, bucket).toBe('applied');
      }
      // …and no case says applied without the log showing the apply
      const appliedCases = cases.filter((c) => c.remediation.state === 'applied').map(bucketOf);
      expect(appliedCases.filter((b) => !b || !log.includes(b))).toEqual([]);
      const chain = await verifyChains(new LocalFolderEvidenceStore(join(home, 'evidence')), { store });
      expect(chain.problems).toEqual([]);
    } finally {
      await store.close();
    }
  }, 120_000);
});
