/**
 * Where evidence records live. Records are immutable and addressed by their hash; adapters refuse to
 * overwrite (a local folder opened with `wx`, S3 with Object Lock and `If-None-Match: *`).
 */
import type { EvidenceRecord } from './record.js';

/**
 * A record as found in storage: `key` is the hash it was stored under, `raw` whatever the storage
 * now holds (possibly edited by hand: the chain check parses and re-hashes it, never trusts it).
 */
export interface StoredEvidence {
  key: string;
  raw: unknown;
}

export interface EvidenceStore {
  /** Writes once. `exists` when a record with that hash is already stored (a retried write). */
  put(record: EvidenceRecord): Promise<'stored' | 'exists'>;
  get(hash: string): Promise<StoredEvidence | undefined>;
  /** The case's records in chain order (by `caseSeq`; unreadable records last). */
  listByCase(caseKey: string): Promise<StoredEvidence[]>;
  /** Every record in global chain order (by `seq`; unreadable records last). */
  listAll(): Promise<StoredEvidence[]>;
}

/** Sort helper shared by adapters: global order by `seq`, case order by `caseSeq`, unreadable last. */
export function orderStored(items: StoredEvidence[], field: 'seq' | 'caseSeq'): StoredEvidence[] {
  const pos = (s: StoredEvidence): number => {
    const v = s.raw && typeof s.raw === 'object' && field in s.raw ? Reflect.get(s.raw, field) : undefined;
    return typeof v === 'number' ? v : Number.MAX_SAFE_INTEGER;
  };
  return [...items].sort((a, b) => pos(a) - pos(b) || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/** The case key of a stored record, if it can be read. */
export function storedCaseKey(s: StoredEvidence): string | undefined {
  const v = s.raw && typeof s.raw === 'object' && 'caseKey' in s.raw ? Reflect.get(s.raw, 'caseKey') : undefined;
  return typeof v === 'string' ? v : undefined;
}
