/**
 * Evidence over a real store that never writes to it: reads see the real records and those written here,
 * writes stay in memory. For `closeloop plan`, which runs the whole pipeline and must write nothing (a record
 * on disk without its chain head, which the read-only document store keeps in memory, reads as tampering).
 */
import { type EvidenceStore, orderStored, type StoredEvidence } from '../../core/evidence/ports.js';
import type { EvidenceRecord } from '../../core/evidence/record.js';
import { MemoryEvidenceStore } from './memory.js';

export class OverlayEvidenceStore implements EvidenceStore {
  private readonly mem = new MemoryEvidenceStore();

  constructor(private readonly base: EvidenceStore) {}

  async put(record: EvidenceRecord): Promise<'stored' | 'exists'> {
    if (await this.base.get(record.hash)) return 'exists';
    return this.mem.put(record);
  }

  async get(hash: string): Promise<StoredEvidence | undefined> {
    return (await this.mem.get(hash)) ?? this.base.get(hash);
  }

  async listByCase(caseKey: string): Promise<StoredEvidence[]> {
    return orderStored([...(await this.base.listByCase(caseKey)), ...(await this.mem.listByCase(caseKey))], 'caseSeq');
  }

  async listAll(): Promise<StoredEvidence[]> {
    return orderStored([...(await this.base.listAll()), ...(await this.mem.listAll())], 'seq');
  }
}
