/**
 * Appends evidence records to the per-case chain and the global chain without ever forking either.
 *
 * The global head document (DocStore `evidence-heads/global`) holds the whole newest record. A writer:
 *  1. reads the global head and *completes* it — stores the record (idempotent: same hash) and moves its
 *     case head to it — so every record before the head is complete;
 *  2. reads its own case head (now current), builds and seals the next record;
 *  3. swaps the global head with a conditional write (`expectVersion`); on a lost race it starts over;
 *  4. completes its own record.
 * A crash between 3 and 4 loses nothing: the next writer (or `verifyChains`' caller) completes it.
 * Idempotency: a record may carry an idempotency key; the key is indexed when the record is completed,
 * and checked after step 1, so the same key never produces two records even under concurrency.
 */
import * as z from 'zod';
import { ConflictError } from '../errors.js';
import type { Clock, DocStore } from '../ports.js';
import { getDoc } from '../store/docs.js';
import type { EvidenceStore } from './ports.js';
import { type EvidenceDraft, type EvidenceRecord, EvidenceRecordSchema, sealRecord } from './record.js';

export const HEADS = 'evidence-heads';
export const INDEX = 'evidence-index';
export const GLOBAL_HEAD_ID = 'global';
export const caseHeadId = (caseKey: string): string => `case:${caseKey}`;

const GlobalHeadSchema = z.object({ record: EvidenceRecordSchema, idempotencyKey: z.string().nullable() });
const CaseHeadSchema = z.object({ hash: z.string(), caseSeq: z.number().int() });
export type CaseHead = z.infer<typeof CaseHeadSchema>;
const IndexSchema = z.object({ hash: z.string() });

export interface ChainDeps {
  /** Heads and the idempotency index (conditional writes). */
  store: DocStore;
  evidence: EvidenceStore;
  clock: Clock;
}

export interface AppendResult {
  record: EvidenceRecord;
  /** false when the idempotency key had already produced this record (a duplicate delivery). */
  created: boolean;
}

/**
 * Appends one record. `idempotencyKey` (e.g. `<event id>:plan`) makes a retried or duplicated write
 * return the record written the first time.
 *
 * @example
 * const { record } = await appendEvidence(deps, draft, `${event.id}:decision`);
 * record.prevCaseHash; // the case's previous record, or null for its first
 */
export async function appendEvidence(
  deps: ChainDeps,
  draft: EvidenceDraft,
  idempotencyKey: string | null = null,
  options: { maxAttempts?: number } = {},
): Promise<AppendResult> {
  const maxAttempts = options.maxAttempts ?? 200;
  for (let attempt = 1; attempt <= maxAttempts; attempt++) {
    const head = await getDoc(deps.store, HEADS, GLOBAL_HEAD_ID, GlobalHeadSchema);
    if (head) await completeRecord(deps, head.value.record, head.value.idempotencyKey);
    if (idempotencyKey !== null) {
      const existing = await findByIdempotencyKey(deps, idempotencyKey);
      if (existing) return { record: existing, created: false };
    }
    const caseHead = await readCaseHead(deps.store, draft.caseKey);
    const prev = head?.value.record;
    const record = sealRecord({
      ...draft,
      v: 1,
      seq: (prev?.seq ?? 0) + 1,
      caseSeq: (caseHead?.caseSeq ?? 0) + 1,
      recordedAt: deps.clock.now().toISOString(),
      prevCaseHash: caseHead?.hash ?? null,
      prevGlobalHash: prev?.hash ?? null,
    });
    const won = await deps.store.put(
      HEADS,
      GLOBAL_HEAD_ID,
      { record, idempotencyKey },
      { expectVersion: head?.version ?? 0 },
    );
    if (won !== null) {
      await completeRecord(deps, record, idempotencyKey);
      return { record, created: true };
    }
    // Lost the race: another record became the head. Back off briefly so writers interleave.
    await new Promise((r) => setTimeout(r, Math.random() * Math.min(20, attempt)));
  }
  throw new ConflictError(`evidence chain: gave up after ${maxAttempts} conflicting appends`);
}

/** Looks up the record an idempotency key produced, if any. */
export async function findByIdempotencyKey(deps: ChainDeps, key: string): Promise<EvidenceRecord | undefined> {
  const idx = await getDoc(deps.store, INDEX, key, IndexSchema);
  if (!idx) return undefined;
  const stored = await deps.evidence.get(idx.value.hash);
  const parsed = EvidenceRecordSchema.safeParse(stored?.raw);
  return parsed.success ? parsed.data : undefined;
}

/** The case's chain head as the heads collection knows it. */
export async function readCaseHead(store: DocStore, caseKey: string): Promise<CaseHead | undefined> {
  return (await getDoc(store, HEADS, caseHeadId(caseKey), CaseHeadSchema))?.value;
}

/** The global chain head's hash and sequence number, if any record exists. */
export async function readGlobalHead(store: DocStore): Promise<{ hash: string; seq: number } | undefined> {
  const head = await getDoc(store, HEADS, GLOBAL_HEAD_ID, GlobalHeadSchema);
  return head ? { hash: head.value.record.hash, seq: head.value.record.seq } : undefined;
}

/** Stores the record (idempotently), moves its case head to it and indexes its idempotency key. */
async function completeRecord(deps: ChainDeps, record: EvidenceRecord, idempotencyKey: string | null): Promise<void> {
  await deps.evidence.put(record);
  const id = caseHeadId(record.caseKey);
  for (let attempt = 1; attempt <= 50; attempt++) {
    const current = await getDoc(deps.store, HEADS, id, CaseHeadSchema);
    const currentHash = current?.value.hash ?? null;
    // Done already (possibly by a helper, and later records of the case may have followed).
    if (currentHash === record.hash || (current?.value.caseSeq ?? 0) > record.caseSeq) break;
    if (currentHash !== record.prevCaseHash) {
      // Only the global head can be incomplete, so the case head is its predecessor, itself or a successor.
      throw new ConflictError(
        `evidence chain: case head of ${record.caseKey} is ${currentHash}, expected ${record.prevCaseHash} or ${record.hash}`,
      );
    }
    const next: CaseHead = { hash: record.hash, caseSeq: record.caseSeq };
    const ok = await deps.store.put(HEADS, id, next, { expectVersion: current?.version ?? 0 });
    if (ok !== null) break;
  }
  // Losing this race is fine: the key can only ever point to this one record.
  if (idempotencyKey !== null) await deps.store.put(INDEX, idempotencyKey, { hash: record.hash }, { expectVersion: 0 });
}
