/**
 * Keeps the case document's `evidenceHead` equal to its chain head. Only that field is written.
 */
import { type Case, CaseSchema } from '../model/case.js';
import { CASES } from '../pipeline/announced.js';
import type { DocStore } from '../ports.js';
import { getDoc, mutateDoc } from '../store/docs.js';
import { type AppendResult, appendEvidence, type ChainDeps, readCaseHead } from './chain.js';
import type { EvidenceDraft } from './record.js';

// The collection of cases, named once (pipeline/announced.ts: the lightest module every stage reads cases through).
export { CASES };

/**
 * Sets `case.evidenceHead` to the case's chain head. Concurrent writers may read heads in any order, so
 * it re-reads the head after writing and repeats until the two agree: the last writer always leaves
 * the newest head.
 */
export async function syncCaseEvidenceHead(store: DocStore, caseKey: string): Promise<string | null> {
  for (let i = 0; i < 10; i++) {
    const head = (await readCaseHead(store, caseKey))?.hash ?? null;
    await mutateDoc(store, CASES, caseKey, CaseSchema, (c) =>
      c && c.evidenceHead !== head ? { ...c, evidenceHead: head } : undefined,
    );
    if (((await readCaseHead(store, caseKey))?.hash ?? null) === head) return head;
  }
  return (await getDoc(store, CASES, caseKey, CaseSchema))?.value.evidenceHead ?? null;
}

/** The fields every record takes from its case (finding ids, owner). */
export function caseFields(c: Case | undefined): Pick<EvidenceDraft, 'findingIds' | 'owner'> {
  return { findingIds: c?.findingKeys ?? [], owner: c?.enrichment.owner ?? null };
}

/** Appends a record and points the case document at the new head. */
export async function recordEvidence(
  deps: ChainDeps,
  draft: EvidenceDraft,
  idempotencyKey: string | null,
): Promise<AppendResult> {
  const result = await appendEvidence(deps, draft, idempotencyKey);
  await syncCaseEvidenceHead(deps.store, draft.caseKey);
  return result;
}
