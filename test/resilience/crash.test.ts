/**
 * Issue 7, crash: kill the local run mid-batch (a child process, SIGKILL) and run it again → no case
 * lost, none duplicated, no ticket twice, the evidence chain intact.
 */
import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, cpSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { generate } from '../../bench/generate.js';
import { listCases } from '../../shared/adapters/cli/cases.js';
import { LocalFolderEvidenceStore } from '../../shared/adapters/evidence/local-folder.js';
import { SqliteDocStore } from '../../shared/adapters/store/sqlite.js';
import { LOCAL_COLLECTIONS, LocalTicketSchema } from '../../shared/adapters/tickets/local.js';
import { verifyChains } from '../../shared/core/evidence/audit.js';
import { OutboxEntrySchema, COLLECTIONS as TICKET_COLLECTIONS } from '../../shared/core/tickets/store.js';
import { tempDir } from '../helpers/tmp.js';

const ROOT = join(import.meta.dirname, '../..');
const CLI = join(ROOT, 'bin/closeloop.mjs');

/** A CLI run to its end: its exit status and what it wrote on stderr. */
const runCli = (args: string[]) =>
  new Promise<{ status: number | null; stderr: string }>((resolve, reject) => {
    const run = spawn(process.execPath, [CLI, ...args], {
      cwd: ROOT,
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, JIRA_BASE_URL: '' },
    });
    let stderr = '';
    run.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    run.on('error', reject);
    run.on('close', (status) => resolve({ status, stderr }));
  });

const phase = (status: string | undefined) =>
  status === 'verified' || status === 'suppressed' || status === 'pending-verification' ? status : 'active';

describe('crash and resume', () => {
  let tmp: ReturnType<typeof tempDir>;
  beforeAll(() => {
    const built = spawnSync(process.execPath, [join(ROOT, 'scripts/build.mjs'), '--cli'], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    expect(built.status, built.stderr).toBe(0);
  });
  beforeEach(() => {
    tmp = tempDir();
  });
  afterEach(() => tmp.cleanup());

  it('loses and duplicates nothing when the run is killed mid-batch and run again', async () => {
    // Prepare: the example config with a ticket budget no run reaches, so ticket presence compares exactly
    // (with the default 60 creates a minute, a run spanning two minutes legitimately creates more).
    const CONFIG = join(tmp.dir, 'config');
    cpSync(join(ROOT, 'examples/config'), CONFIG, { recursive: true });
    appendFileSync(join(CONFIG, 'policy.yaml'), '\ntickets:\n  budget: { createsPerMinute: 100000 }\n');
    const input = join(tmp.dir, 'events.jsonl');
    writeFileSync(
      input,
      `${generate(1500, 11)
        .filter((e) => !e.bad)
        .map((e) => e.text)
        .join('\n')}\n`,
    );
    const crashed = join(tmp.dir, 'crashed');
    const clean = join(tmp.dir, 'clean');

    // Act 1: start a run and SIGKILL it once it has written some cases.
    const child = spawn(process.execPath, [CLI, 'run', input, '--config', CONFIG, '--home', crashed], {
      cwd: ROOT,
      stdio: 'ignore',
    });
    const exited = new Promise<NodeJS.Signals | null>((resolve) =>
      child.on('exit', (_code, signal) => resolve(signal)),
    );
    const deadline = Date.now() + 60_000;
    let seen = 0;
    while (Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      try {
        const probe = await SqliteDocStore.open(join(crashed, 'closeloop.db'));
        seen = (await probe.list('cases', { limit: 50 })).length;
        await probe.close();
      } catch {
        seen = 0;
      }
      if (seen >= 50 || child.exitCode !== null) break;
    }
    child.kill('SIGKILL');
    // Killed, not finished: a run that ended before the kill would prove nothing about resuming.
    expect(await exited, 'the run should have been killed, not have finished').toBe('SIGKILL');
    expect(seen, 'the run should have been killed mid-batch').toBeGreaterThan(0);

    // Act 2: run again to completion, and a clean run for comparison (side by side: separate homes).
    const [resumed, reference] = await Promise.all([
      runCli(['run', input, '--config', CONFIG, '--home', crashed]),
      runCli(['run', input, '--config', CONFIG, '--home', clean]),
    ]);
    expect(resumed.status, resumed.stderr).toBe(0);
    expect(reference.status, reference.stderr).toBe(0);

    // Assess
    const a = await SqliteDocStore.open(join(crashed, 'closeloop.db'));
    const b = await SqliteDocStore.open(join(clean, 'closeloop.db'));
    const casesA = await listCases(a);
    const casesB = await listCases(b);
    expect(casesA.map((c) => c.key).sort()).toEqual(casesB.map((c) => c.key).sort());
    const owedCreates = new Set(
      (await a.list(TICKET_COLLECTIONS.outbox))
        .map((d) => OutboxEntrySchema.parse(d.value).op)
        .filter((op) => op.op === 'create')
        .map((op) => op.caseKey),
    );
    for (const c of casesA) {
      const ref = casesB.find((x) => x.key === c.key);
      expect(c.occurrences, c.key).toBe(ref?.occurrences);
      // The resumed run first finishes the killed run's queued events (e.g. a source resolution verified),
      // then ingests the rest, so a later repeat may reopen what the clean run never closed: both are
      // active. Closed, suppressed and active must still agree.
      expect(phase(c.status), c.key).toBe(phase(ref?.status));
      // A ticket create the kill cut off mid-send stays with the dead run's send lease (2 minutes) and is then
      // taken over, looked for first and made once (test/tickets/outbox-takeover.test.ts): right after the
      // resume such a case may have no ticket yet, but its create is still owed, never lost.
      if (ref?.ticket && !c.ticket) expect(owedCreates.has(c.key), `${c.key}: no ticket and none owed`).toBe(true);
      else expect(c.ticket === null, c.key).toBe(ref?.ticket === null);
    }
    const tickets = (await a.list(LOCAL_COLLECTIONS.tickets)).map((d) => LocalTicketSchema.parse(d.value));
    expect(new Set(tickets.map((t) => t.caseKey)).size).toBe(tickets.length);
    const chain = await verifyChains(new LocalFolderEvidenceStore(join(crashed, 'evidence')), { store: a });
    expect(chain.problems).toEqual([]);
    await a.close();
    await b.close();
  }, 300_000);
});
