/**
 * The `closeloop` commands. Each returns an exit code: 0 when every input was accepted, 1 when some
 * were rejected (kept as dead letters), 2 on usage errors; a command that throws exits 3 (closeloop.ts).
 */
import * as z from 'zod';
import { UsageError } from '../../core/errors.js';
import type { PipelineEvent } from '../../core/model/events.js';
import type { Rejected } from '../../core/model/finding.js';
import { INGEST_CHUNK } from '../../core/pipeline/ingest.js';
import { normalize } from '../../core/pipeline/normalize.js';
import { recoverAbandonedApplies, releaseApproved, releaseHeld } from '../../core/remediation/stage.js';
import { createLocalRuntime, type LocalOptions, type LocalRuntime } from '../wiring/local.js';
import { caseId, listCases, ownerCell, renderCase, renderCases, resolveCase } from './cases.js';
import { expandInputs, readInputs } from './inputs.js';
import { ProgressBar } from './progress.js';
import { renderTable } from './table.js';
import { sayTicketsWaiting } from './waiting.js';

export interface Io {
  out: (text: string) => void;
  err: (text: string) => void;
}

export interface GlobalOptions extends LocalOptions {
  json: boolean;
}

const rejectedTable = (rejected: readonly Rejected[]) =>
  renderTable(
    ['INPUT', 'SOURCE', 'FIELD', 'REASON'],
    rejected.map((r) => [r.input, r.source, r.path, r.reason]),
    70,
  );

async function load(args: readonly string[]) {
  if (args.length === 0) throw new UsageError('name at least one input: a file, a folder, or - for stdin');
  const files = expandInputs(args);
  return readInputs(files);
}

export async function cmdNormalize(args: readonly string[], opts: GlobalOptions, io: Io): Promise<number> {
  const { docs, rejected } = await load(args);
  const findings = [];
  for (const doc of docs) {
    const out = normalize(doc.value, doc.input, doc);
    findings.push(...out.findings);
    rejected.push(...out.rejected);
  }
  if (opts.json) io.out(JSON.stringify({ findings, rejected }, null, 2));
  else {
    io.out(
      renderTable(
        ['SOURCE', 'SEVERITY', 'STATUS', 'TYPE', 'RESOURCE', 'ACCOUNT', 'REGION'],
        findings.map((f) => [
          f.source,
          f.severity,
          f.status,
          f.type,
          f.resource.id,
          f.resource.account,
          f.resource.region ?? '-',
        ]),
        60,
      ),
    );
    if (rejected.length) io.err(`\n${rejected.length} rejected:\n${rejectedTable(rejected)}`);
  }
  return rejected.length ? 1 : 0;
}

/** Ingests in slices so long inputs show progress and memory stays flat. */
async function ingestAll(rt: LocalRuntime, docs: Awaited<ReturnType<typeof load>>['docs']) {
  const bar = new ProgressBar(docs.length, 'ingest');
  const results = [];
  const rejected: Rejected[] = [];
  const stats = { documents: 0, findings: 0, rejected: 0, newCases: 0, changedCases: 0, unchanged: 0 };
  const slice = INGEST_CHUNK; // one ingest transaction each
  for (let i = 0; i < docs.length; i += slice) {
    const out = await rt.ingest.ingest(docs.slice(i, i + slice));
    results.push(...out.results);
    rejected.push(...out.rejected);
    for (const k of Object.keys(stats) as Array<keyof typeof stats>) stats[k] += out.stats[k];
    await rt.settle();
    bar.tick(Math.min(docs.length, i + slice));
  }
  bar.done();
  return { results, rejected, stats };
}

export async function cmdPlan(args: readonly string[], opts: GlobalOptions, io: Io): Promise<number> {
  const { docs, rejected: unread } = await load(args);
  const rt = await createLocalRuntime({ ...opts, readOnly: true, apply: false });
  try {
    const out = await ingestAll(rt, docs);
    const rejected = [...unread, ...out.rejected];
    const casesByKey = new Map((await listCases(rt.store)).map((c) => [c.key, c]));
    const results = out.results.map((r) => {
      const c = casesByKey.get(r.decision.caseKey);
      return { ...r, plan: c?.remediation.plan ?? null };
    });
    if (opts.json) io.out(JSON.stringify({ results, rejected }, null, 2));
    else {
      io.out(
        renderTable(
          ['CASE', 'SEVERITY', 'ENV', 'OWNER', 'TYPE', 'RESOURCE', 'ACTION', 'MODE', 'WHY'],
          results.map((r) => [
            caseId(r.decision.caseKey),
            r.finding.severity,
            r.enrichment.environment,
            ownerCell(r.enrichment),
            r.finding.type,
            r.finding.resource.name,
            r.decision.remediation.action ?? '-',
            r.decision.remediation.mode,
            r.decision.remediation.reason,
          ]),
          44,
        ),
      );
      const planned = [...casesByKey.values()].filter((c) => c.remediation.plan);
      for (const c of planned) {
        io.out(
          `\nplan for ${caseId(c.key)} ${c.remediation.action} on ${c.resourceName}: ${c.remediation.plan?.summary ?? ''}`,
        );
        for (const step of c.remediation.plan?.steps ?? []) io.out(`  - ${step.say}  [${step.call.api}]`);
      }
      if (rejected.length) io.err(`\n${rejected.length} rejected:\n${rejectedTable(rejected)}`);
    }
    return rejected.length ? 1 : 0;
  } finally {
    await rt.close();
  }
}

export async function cmdRun(args: readonly string[], opts: GlobalOptions, io: Io): Promise<number> {
  const { docs, rejected: unread } = await load(args);
  const rt = await createLocalRuntime(opts);
  try {
    if (unread.length) await rt.ingest.deadLetter(unread, rt.clock.now().toISOString());
    const swept = await rt.ingest.sweepExceptions();
    const publish = (events: readonly PipelineEvent[]) => rt.bus.publish(events);
    // An apply whose run was killed (SIGKILL, a crash) left its claim: once older than policy
    // apply.abandonAfter it is settled failed, its outcome unknown, and its ticket told. Younger claims stay.
    await recoverAbandonedApplies(rt.remediation, rt.clock.now(), { publish });
    await rt.settle();
    // With --apply: approvals given in a dry-run, and fixes held by the budget or the breaker, go now.
    if (rt.apply) {
      await publish(await releaseApproved(rt.remediation));
      await releaseHeld(rt.remediation, { publish });
      await rt.settle();
    }
    const out = await ingestAll(rt, docs);
    const rejected = [...unread, ...out.rejected];
    const cases = await listCases(rt.store);
    const s = out.stats;
    if (opts.json) io.out(JSON.stringify({ stats: { ...s, rejected: rejected.length }, cases, rejected }, null, 2));
    else {
      io.out(renderCases(cases));
      io.out(
        `\n${docs.length} documents, ${s.findings} findings: ${s.newCases} new cases, ${s.changedCases} updated, ${s.unchanged} unchanged; ` +
          `${rejected.length} rejected (kept as dead letters). Remediation: ${rt.apply ? 'APPLY' : 'dry-run'}. Store: ${rt.home}` +
          (swept.reopened + swept.suppressed
            ? `\nexceptions: ${swept.reopened} cases re-opened, ${swept.suppressed} newly suppressed`
            : ''),
      );
      if (rejected.length) io.err(`\n${rejected.length} rejected:\n${rejectedTable(rejected)}`);
    }
    await sayTicketsWaiting(rt, io);
    return rejected.length ? 1 : 0;
  } finally {
    await rt.close();
  }
}

export async function cmdCases(args: readonly string[], opts: GlobalOptions, io: Io): Promise<number> {
  const rt = await createLocalRuntime({ ...opts, readOnly: true });
  try {
    if (args[0]) {
      const c = await resolveCase(rt.store, args[0]);
      io.out(opts.json ? JSON.stringify(c, null, 2) : renderCase(c));
      return 0;
    }
    const cases = await listCases(rt.store);
    io.out(opts.json ? JSON.stringify(cases, null, 2) : renderCases(cases));
    return 0;
  } finally {
    await rt.close();
  }
}

const DeadLetterView = z.record(z.string(), z.unknown());

export async function cmdDeadLetters(_args: readonly string[], opts: GlobalOptions, io: Io): Promise<number> {
  const rt = await createLocalRuntime({ ...opts, readOnly: true });
  try {
    // Dead letters come from several writers (ingest, stages, the ticket outbox): read as loose records.
    const letters = (await rt.store.list('deadletters')).map((d) => DeadLetterView.parse(d.value));
    if (opts.json) io.out(JSON.stringify(letters, null, 2));
    else
      io.out(
        renderTable(
          ['STAGE', 'INPUT / CASE', 'FIELD', 'REASON'],
          letters.map((l) => [
            String(l.stage ?? ''),
            String(l.input ?? l.caseKey ?? ''),
            String(l.path ?? ''),
            String(l.reason ?? ''),
          ]),
          70,
        ),
      );
    return 0;
  } finally {
    await rt.close();
  }
}
