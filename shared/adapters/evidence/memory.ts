/** Evidence kept in memory: for tests and for `closeloop plan` (which must not write anything). */
import { type EvidenceStore, orderStored, type StoredEvidence, storedCaseKey } from '../../core/evidence/ports.js';
import type { EvidenceRecord } from '../../core/evidence/record.js';

export class MemoryEvidenceStore implements EvidenceStore {
  /** Exposed so tests can tamper with stored records the way a person with disk access could. */
  readonly items = new Map<string, unknown>();

  async put(record: EvidenceRecord): Promise<'stored' | 'exists'> {
    if (this.items.has(record.hash)) return 'exists';
    this.items.set(record.hash, structuredClone(record));
    return 'stored';
  }

  async get(hash: string): Promise<StoredEvidence | undefined> {
    return this.items.has(hash) ? { key: hash, raw: structuredClone(this.items.get(hash)) } : undefined;
  }

  async listByCase(caseKey: string): Promise<StoredEvidence[]> {
    return orderStored(
      (await this.listAll()).filter((s) => storedCaseKey(s) === caseKey),
      'caseSeq',
    );
  }

  async listAll(): Promise<StoredEvidence[]> {
    return orderStored(
      [...this.items].map(([key, raw]) => ({ key, raw: structuredClone(raw) })),
      'seq',
    );
  }
}
