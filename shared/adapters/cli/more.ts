/** CLI commands of the later stages: tickets, evidence, verification. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError } from '../../core/errors.js';
import { caseStory, exportCase, verifyChains } from '../../core/evidence/audit.js';
import { reverifyRecent } from '../../core/verify/stage.js';
import { LocalFolderEvidenceStore } from '../evidence/local-folder.js';
import { listTickets, triedTimes } from '../tickets/index.js';
import { createLocalRuntime } from '../wiring/local.js';
import { caseId, resolveCase } from './cases.js';
import type { GlobalOptions, Io } from './commands.js';
import { oneLine, renderTable } from './table.js';
import { sayTicketsWaiting } from './waiting.js';

export async function cmdTickets(_args: readonly string[], opts: GlobalOptions, io: Io): Promise<number> {
  const rt = await createLocalRuntime({ ...opts, readOnly: true });
  try {
    const t = await listTickets(rt.store);
    if (opts.json) io.out(JSON.stringify(t, null, 2));
    else {
      io.out(
        renderTable(
          ['CASE', 'TICKET', 'SINK', 'PARENT', 'TICKET STATUS', 'CASE STATUS', 'SUMMARY'],
          t.rows.map((r) => [
            caseId(r.caseKey),
            r.key,
            r.sink,
            r.parentKey ?? '-',
            r.status,
            r.caseStatus,
            r.summary ?? r.url ?? '',
          ]),
          70,
        ),
      );
      io.out(
        `\n${t.rows.length} tickets; ${t.pending} requests waiting in the outbox; ${t.deadLetters} refused (see deadletters)`,
      );
      const o = t.outbox.oldest;
      if (o)
        io.out(
          oneLine(
            `the oldest waits since ${o.since}, ${triedTimes(o.attempts)}${o.lastError ? `: ${o.lastError}` : ''}`,
          ),
        );
    }
    return 0;
  } finally {
    await rt.close();
  }
}

export async function cmdEvidence(
  args: readonly string[],
  opts: GlobalOptions & { format?: string },
  io: Io,
): Promise<number> {
  const [sub, ref] = args;
  const rt = await createLocalRuntime({ ...opts, readOnly: true });
  const evidence = new LocalFolderEvidenceStore(join(rt.home, 'evidence'));
  try {
    switch (sub) {
      case 'verify': {
        const check = await verifyChains(evidence, { store: rt.store });
        if (opts.json) io.out(JSON.stringify(check, null, 2));
        else if (check.ok) io.out(`evidence chains intact: ${check.records} records`);
        // JSON escapes C0 controls, not DEL or the C1 ones (U+009B starts a terminal escape sequence too).
        else
          io.out(`evidence chain BROKEN after ${check.records} records: ${oneLine(JSON.stringify(check.firstBroken))}`);
        return check.ok ? 0 : 1;
      }
      case 'show': {
        if (!ref) throw new UsageError('evidence show <case>');
        const c = await resolveCase(rt.store, ref);
        // --json: the records and the chain check as the JSON bundle (what export --format json writes).
        io.out(
          opts.json ? await exportCase(evidence, c.key, 'json', rt.store) : await caseStory(evidence, c.key, rt.store),
        );
        return 0;
      }
      case 'export': {
        if (!ref) throw new UsageError('evidence export <case> [--format json|md]');
        const format = opts.format ?? (opts.json ? 'json' : 'md');
        if (format !== 'json' && format !== 'md') throw new UsageError(`--format must be json or md, not ${format}`);
        const c = await resolveCase(rt.store, ref);
        const bundle = await exportCase(evidence, c.key, format, rt.store);
        if (args[2]) {
          writeFileSync(args[2], bundle);
          io.out(`written: ${args[2]}`);
        } else io.out(bundle);
        return 0;
      }
      default:
        throw new UsageError('evidence verify | show <case> | export <case> [--format json|md] [file]');
    }
  } finally {
    await rt.close();
  }
}

/** Re-verifies cases closed recently (the local counterpart of the hub's schedule). */
export async function cmdVerify(_args: readonly string[], opts: GlobalOptions, io: Io): Promise<number> {
  const rt = await createLocalRuntime(opts);
  try {
    // Published case by case to the durable bus: the events of a run killed part-way are kept, and the
    // next run publishes them first (returned at the end instead, they would be lost with the run).
    const { events: _published, ...out } = await reverifyRecent(rt.verify, rt.clock.now(), {
      publish: (events) => rt.bus.publish(events),
    });
    await rt.settle();
    await sayTicketsWaiting(rt, io);
    io.out(
      opts.json
        ? JSON.stringify(out, null, 2)
        : `re-verified ${out.checked} recently closed cases and ${out.rechecked} pending after an inconclusive verdict: ${out.holding} hold, ${out.reopened} reopened, ${out.inconclusive} inconclusive${out.reconciled > 0 ? `; ${out.reconciled} verified case(s) whose ticket close was never delivered sent to the ticket again` : ''}${out.errors > 0 ? `; ${out.errors} could not be re-checked (see the log) and wait for the next run` : ''}`,
    );
    // A case that could not be re-checked no longer stops the others, but the command still says it failed.
    return out.errors > 0 ? 3 : 0;
  } finally {
    await rt.close();
  }
}
