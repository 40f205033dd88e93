/**
 * The ingest stage: raw documents → findings → enrichment → store → decision → `case.decided`.
 *
 * Works in chunks: one `getMany` per collection and one `writeBatch` per chunk keep the store's
 * round trips off the hot path. Every write is conditional on the version read, so concurrent workers
 * (or the same event delivered twice at once) never lose an update: a put that loses its race is
 * redone one case at a time with `mutateDoc`, re-deciding on fresh state.
 */
import type { Config } from '../config.js';
import { type Case, CaseSchema } from '../model/case.js';
import type { Decision } from '../model/decision.js';
import type { Enrichment } from '../model/enrichment.js';
import type { PipelineEvent } from '../model/events.js';
import { type Finding, FindingSchema, type Rejected } from '../model/finding.js';
import type { RiskException } from '../policy/exceptions.js';
import type { Clock, DocStore, EventBus, Logger, LookupOutcome, StoredDoc, WriteBatch } from '../ports.js';
import { parseWithoutCopy } from '../util/accept.js';
import { shortHash } from '../util/hash.js';
import { hasEnumerableKey } from '../util/objects.js';
import { CASES } from './announced.js';
import { caseKeyOf, type DecideInput, decide } from './decide.js';
import type { Enriched, Enricher as FullEnricher } from './enrich.js';
import type { SweepOptions, SweepResult } from './exception-sweep.js';
import { type Channel, normalize } from './normalize.js';

export const COLLECTIONS = {
  findings: 'findings',
  cases: CASES,
  deadLetters: 'deadletters',
} as const;
export const EVENT_LOG = 'events';

/**
 * What the ingest asks of the enricher: a synchronous answer where no live lookup is needed, the rest
 * together per chunk (`enrichMany`), and the findings whose live tags came with their document (`enrichFrom`).
 */
export type Enricher = Pick<FullEnricher, 'enrichSync' | 'enrichMany' | 'enrichFrom'>;

export interface IngestDeps {
  store: DocStore;
  bus: EventBus;
  enricher: Enricher;
  config: Config;
  /** Exceptions from the config file and from the store, merged (called once per ingest call). */
  exceptions: () => Promise<RiskException[]>;
  clock: Clock;
  log: Logger;
  actionInfo?: (id: string) => { productionSafe: boolean } | undefined;
  /**
   * Findings per store round trip (default {@link INGEST_CHUNK}). Each chunk is one write transaction: SQLite rewrites
   * every index page a chunk touches, and finding and case ids are hashes spread over the whole index, so
   * fewer, larger chunks write fewer pages per finding (measured on the bench's ingest: 500 → 2000 cut the
   * bytes written from ~22 KB to ~18 KB per finding; with 16 KB pages over 100k findings, 2,000 → 10,000
   * cut them from ~21 KB to ~14 KB and gave ~1.12× the rate). A chunk's findings, raw events included, are
   * in memory at once: tens of megabytes.
   */
  chunkSize?: number;
}

/** Findings per ingest transaction by default (see IngestDeps.chunkSize); callers slicing their inputs use it too. */
export const INGEST_CHUNK = 10_000;

export interface IngestDoc {
  /** Where it came from: `examples/events/01-gd.json`, `stdin:3`, `sqs:<id>`. */
  input: string;
  value: unknown;
  /**
   * Live tags read where the document was received (an Azure or GCP spoke, under its own identity), by
   * resource id: used for the findings whose event carries no tags, instead of a lookup here.
   */
  liveTags?: Readonly<Record<string, LookupOutcome>>;
  /** The one cloud the document's channel speaks for: findings of another cloud are rejected (normalize's `channel`). */
  channel?: Channel;
  /** The length of the JSON text `value` was parsed from, when known (normalize's `textChars`). */
  textChars?: number;
  /**
   * What was received, kept with the dead letters of the document's rejections: a queue message is deleted
   * once acknowledged, so without it a rejection names a message nobody can read any more. Not given for a
   * file or stdin (the caller still has it).
   */
  raw?: unknown;
}

export interface IngestResultItem {
  input: string;
  finding: Finding;
  enrichment: Enrichment;
  decision: Decision;
}

export interface IngestResult {
  results: IngestResultItem[];
  rejected: Rejected[];
  stats: {
    documents: number;
    findings: number;
    rejected: number;
    newCases: number;
    changedCases: number;
    unchanged: number;
  };
}

interface Pending {
  input: string;
  finding: Finding;
  enrichment: Enrichment;
  caseKey: string;
  /** What a live lookup read (null: it failed), for decide's skip-tag gate; absent: the event's tags. */
  liveTags?: Record<string, string> | null;
}

export function createIngest(deps: IngestDeps) {
  const chunkSize = deps.chunkSize ?? INGEST_CHUNK;

  /**
   * Rejections are kept: a dead letter per rejection, idempotent on its content, with what was received
   * (`raw`) when the input is not kept elsewhere (see IngestDoc.raw).
   */
  async function deadLetter(rejected: readonly Rejected[], at: string, raw?: unknown): Promise<void> {
    await keepRejected(
      rejected.map((r) => ({ r, raw })),
      at,
    );
  }

  /** Writes the dead letters (pipeline/dead-letters.ts: `raw` kept once per document), loaded with the first. */
  async function keepRejected(letters: ReadonlyArray<{ r: Rejected; raw: unknown }>, at: string): Promise<void> {
    if (letters.length === 0) return;
    const { deadLetterPuts } = await import('./dead-letters.js');
    // Idempotent on its content: the same rejection received again is the same letter.
    const ids = letters.map(({ r }) => `ingest:${shortHash(`${r.input}\n${r.path}\n${r.reason}`, 24)}`);
    await deps.store.writeBatch({ puts: deadLetterPuts(letters, ids, at, COLLECTIONS.deadLetters), appends: [] });
  }

  async function ingest(docs: readonly IngestDoc[]): Promise<IngestResult> {
    const now = deps.clock.now();
    const at = now.toISOString();
    const exceptions = await deps.exceptions();
    const result: IngestResult = {
      results: [],
      rejected: [],
      stats: { documents: docs.length, findings: 0, rejected: 0, newCases: 0, changedCases: 0, unchanged: 0 },
    };

    let pending: Pending[] = [];
    // Findings whose enrichment needs a live lookup: looked up together when their chunk is flushed
    // (one batch call per 100 AWS resources, not one call per finding in turn).
    let unenriched: Array<{ at: number; finding: Finding }> = [];
    const flush = async () => {
      if (pending.length === 0) return;
      const chunk = pending;
      const lookups = unenriched;
      pending = [];
      unenriched = [];
      if (lookups.length > 0) {
        const enriched = await deps.enricher.enrichMany(lookups.map((u) => u.finding));
        lookups.forEach((u, i) => {
          const p = chunk[u.at] as Pending;
          const e = enriched[i] as Enriched;
          p.enrichment = e.enrichment;
          if (e.liveTags !== undefined) p.liveTags = e.liveTags;
        });
      }
      await processChunk(chunk, exceptions, now, result);
    };

    const letters: Array<{ r: Rejected; raw: unknown }> = [];
    for (const doc of docs) {
      // The document is normalize's options too: its `channel` and `textChars`.
      const { findings, rejected } = normalize(doc.value, doc.input, doc);
      result.rejected.push(...rejected);
      for (const r of rejected) letters.push({ r, raw: doc.raw });
      for (const finding of findings) {
        const id = finding.resource.id;
        const read =
          doc.liveTags && !hasEnumerableKey(finding.resource.tags) && Object.hasOwn(doc.liveTags, id)
            ? doc.liveTags[id]
            : undefined;
        if (read) {
          const { enrichment, liveTags } = deps.enricher.enrichFrom(finding, read);
          const p: Pending = { input: doc.input, finding, enrichment, caseKey: caseKeyOf(finding) };
          if (liveTags !== undefined) p.liveTags = liveTags;
          pending.push(p);
        } else {
          const enrichment = deps.enricher.enrichSync(finding);
          if (enrichment === undefined) unenriched.push({ at: pending.length, finding });
          // Completed by flush() before the chunk is processed.
          pending.push({
            input: doc.input,
            finding,
            enrichment: enrichment as Enrichment,
            caseKey: caseKeyOf(finding),
          });
        }
        if (pending.length >= chunkSize) await flush();
      }
    }
    await flush();
    await keepRejected(letters, at);
    result.stats.findings = result.results.length;
    result.stats.rejected = result.rejected.length;
    return result;
  }

  function decideOne(
    p: Pending,
    previous: Finding | undefined,
    existing: Case | undefined,
    exceptions: RiskException[],
    now: Date,
  ) {
    // Built then completed: spreading `{ previous }`-or-`{}` objects in costs a copy per member per finding.
    const input: DecideInput = {
      finding: p.finding,
      enrichment: p.enrichment,
      exceptions,
      policy: deps.config.policy.decide,
      now,
    };
    if (previous) input.previous = previous;
    if (existing) input.existing = existing;
    if (deps.actionInfo) input.actionInfo = deps.actionInfo;
    if (p.liveTags !== undefined) input.liveTags = p.liveTags;
    return decide(input);
  }

  async function processChunk(chunk: Pending[], exceptions: RiskException[], now: Date, result: IngestResult) {
    const findingDocs = await deps.store.getMany(COLLECTIONS.findings, unique(chunk.map((p) => p.finding.key)));
    const caseDocs = await deps.store.getMany(COLLECTIONS.cases, unique(chunk.map((p) => p.caseKey)));

    // Working state: what each finding/case will be after this chunk, and the version it was read at.
    const findings = new Map<string, { value: Finding | undefined; version: number; dirty: boolean }>();
    const cases = new Map<string, { value: Case | undefined; version: number; dirty: boolean; isNew: boolean }>();
    const read = (doc: StoredDoc | undefined) => ({ version: doc?.version ?? 0 });
    for (const p of chunk) {
      if (!findings.has(p.finding.key)) {
        const doc = findingDocs.get(p.finding.key);
        findings.set(p.finding.key, {
          value: doc ? parseWithoutCopy(FindingSchema, doc.value) : undefined,
          ...read(doc),
          dirty: false,
        });
      }
      if (!cases.has(p.caseKey)) {
        const doc = caseDocs.get(p.caseKey);
        cases.set(p.caseKey, {
          value: doc ? parseWithoutCopy(CaseSchema, doc.value) : undefined,
          ...read(doc),
          dirty: false,
          isNew: !doc,
        });
      }
    }

    // Each finding as stored before this chunk (read again only when a redo needs it).
    const priors = new Map<string, Finding | undefined>();
    for (const [key, f] of findings) priors.set(key, f.value);
    const decided: Array<{ p: Pending; decision: Decision; statusChanged: boolean }> = [];
    for (const p of chunk) {
      const f = findings.get(p.finding.key);
      const c = cases.get(p.caseKey);
      if (!f || !c) continue;
      const before = c.value?.status;
      const out = decideOne(p, f.value, c.value, exceptions, now);
      if (out.findingChanged) Object.assign(f, { value: p.finding, dirty: true });
      if (out.caseChanged) Object.assign(c, { value: out.next, dirty: true });
      decided.push({ p, decision: out.decision, statusChanged: before !== out.next.status });
    }

    const batch: WriteBatch = { puts: [], appends: [] };
    const putOwners: Array<{ kind: 'finding' | 'case'; key: string }> = [];
    for (const [key, f] of findings) {
      if (!f.dirty) continue;
      batch.puts.push({ collection: COLLECTIONS.findings, id: key, value: f.value, expectVersion: f.version });
      putOwners.push({ kind: 'finding', key });
    }
    for (const [key, c] of cases) {
      if (!c.dirty) continue;
      batch.puts.push({ collection: COLLECTIONS.cases, id: key, value: c.value, expectVersion: c.version });
      putOwners.push({ kind: 'case', key });
    }
    // Write-ahead: the events are queued (durably, on a durable bus) before the state they announce is
    // written, so a run killed in between redelivers them; stages re-read the case, so a repeated delivery
    // does no harm. Each names the version this batch writes its case at (read + 1; every DocStore counts
    // so), and a stage that finds an older one waits for the write (pipeline/announced.ts): on a bus
    // that delivers at once an event can arrive before it.
    const announced = decided.map((d) => {
      const c = cases.get(d.p.caseKey);
      const version = c ? c.version + (c.dirty ? 1 : 0) : 0;
      return announce(d.p, d.decision, d.statusChanged, version > 0 ? version : undefined);
    });
    await deps.bus.publish(announced.flatMap((a) => a.events));
    const written = await deps.store.writeBatch(batch);

    // A lost race on any finding or case of a case key: redo that case's findings one by one on fresh state.
    const conflicted = new Set<string>();
    // The findings this batch did write (the batch is not all-or-nothing), at the version written.
    const ours = new Map<string, number>();
    written.puts.forEach((version, i) => {
      const owner = putOwners[i];
      if (!owner) return;
      if (version !== null) {
        if (owner.kind === 'finding') ours.set(owner.key, version);
        return;
      }
      if (owner.kind === 'case') conflicted.add(owner.key);
      else for (const p of chunk) if (p.finding.key === owner.key) conflicted.add(p.caseKey);
    });

    const logEntries: WriteBatch['appends'] = [];
    decided.forEach((d, i) => {
      if (conflicted.has(d.p.caseKey)) return;
      count(d.p, d.decision, result);
      logEntries.push(...(announced[i]?.log ?? []));
    });
    // Where this batch wrote a finding whose case it could not write, the stored finding is our own: the
    // redo decides against what the finding was before it (and the chunk's earlier states of it).
    const before = new Map<string, Finding | undefined>();
    for (const [key, prior] of priors) if (ours.has(key)) before.set(key, prior);
    for (const caseKey of conflicted) {
      for (const p of chunk.filter((x) => x.caseKey === caseKey)) {
        // The conflict path, loaded with the first conflict (redo.ts): not on a cold start's path.
        const { redo } = await import('./redo.js');
        const redone = await redo(
          deps.store,
          (previous, current) => decideOne(p, previous, current, exceptions, now),
          p.finding,
          p.caseKey,
          ours,
          before,
        );
        // Published after its write: nothing for a stage to wait for (no version named).
        const a = announce(p, redone.decision, redone.statusChanged);
        await deps.bus.publish(a.events);
        count(p, redone.decision, result);
        logEntries.push(...a.log);
      }
    }
    if (logEntries.length > 0) await deps.store.writeBatch({ puts: [], appends: logEntries, appendsUnread: true });
  }

  function count(p: Pending, decision: Decision, result: IngestResult) {
    result.results.push({ input: p.input, finding: p.finding, enrichment: p.enrichment, decision });
    if (decision.unchanged) result.stats.unchanged++;
    else if (decision.isNewCase) result.stats.newCases++;
    else result.stats.changedCases++;
  }

  /**
   * The events (and event-log entries) a decision announces; none for an unchanged replay. `caseVersion`:
   * the version of the case they announce, when published before it is written.
   */
  function announce(
    p: Pending,
    decision: Decision,
    statusChanged: boolean,
    caseVersion?: number,
  ): { events: PipelineEvent[]; log: WriteBatch['appends'] } {
    if (decision.unchanged) return { events: [], log: [] };
    // Deterministic id: the same finding state decided twice is one event (at-least-once delivery).
    const id = `decided:${shortHash(`${p.caseKey}\n${p.finding.key}\n${p.finding.updatedAt}\n${p.finding.status}\n${p.finding.occurrences}`, 32)}`;
    const at = deps.clock.now().toISOString();
    const written = caseVersion !== undefined ? { caseVersion } : {};
    const events: PipelineEvent[] = [
      {
        id,
        type: 'case.decided',
        caseKey: p.caseKey,
        ...written,
        at,
        isNewCase: decision.isNewCase,
        recurrence: decision.recurrence,
        statusChanged,
        detail: { findingKey: p.finding.key, source: p.finding.source, decision },
      },
    ];
    if (decision.verify) {
      // The source says resolved: verification is owed (never a silent close).
      events.push({
        id: `verify:${id.slice('decided:'.length)}`,
        type: 'case.verify-requested',
        caseKey: p.caseKey,
        ...written,
        at,
        trigger: 'source-resolved',
        actor: `source:${p.finding.source}`,
        detail: { findingKey: p.finding.key },
      });
    }
    const log = [
      {
        log: EVENT_LOG,
        id,
        value: {
          type: 'case.decided',
          caseKey: p.caseKey,
          findingKey: p.finding.key,
          at,
          mode: decision.remediation.mode,
          action: decision.remediation.action,
        },
      },
    ];
    return { events, log };
  }

  /**
   * Re-evaluates stored cases against the exceptions as they are now, without a new finding: a case
   * whose exception expired re-opens, a case an exception newly covers is suppressed. Run at the start
   * of each local run and on the hub's schedule (see `exception-sweep.ts`: each change's events are kept
   * ahead of its case write until published). Loaded on first use: the ingest function's queue path never
   * runs it, and its cold start reads every module imported statically (the bundle budget).
   */
  async function sweepExceptions(options: SweepOptions = {}): Promise<SweepResult> {
    const { sweepExceptions: sweep } = await import('./exception-sweep.js');
    return sweep(deps, options);
  }

  return { ingest, deadLetter, sweepExceptions };
}

function unique(xs: readonly string[]): string[] {
  return [...new Set(xs)];
}
