/**
 * Evidence in a folder of the embedded home (`<home>/evidence/<hash>.json`), one file per record,
 * written once: the `wx` flag refuses to overwrite, so a record can only be changed by hand — which
 * `closeloop evidence verify` then reports.
 */
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type EvidenceStore, orderStored, type StoredEvidence, storedCaseKey } from '../../core/evidence/ports.js';
import type { EvidenceRecord } from '../../core/evidence/record.js';

const HASH_FILE = /^([0-9a-f]{64})\.json$/;

export class LocalFolderEvidenceStore implements EvidenceStore {
  private ready: Promise<unknown> | undefined;

  /** @param dir the evidence folder, e.g. `join(home, 'evidence')`; created on first write. */
  constructor(readonly dir: string) {}

  /** Path of a record's file (for people and tests). */
  pathOf(hash: string): string {
    return join(this.dir, `${hash}.json`);
  }

  async put(record: EvidenceRecord): Promise<'stored' | 'exists'> {
    this.ready ??= mkdir(this.dir, { recursive: true });
    await this.ready;
    try {
      await writeFile(this.pathOf(record.hash), `${JSON.stringify(record, null, 2)}\n`, { flag: 'wx' });
      return 'stored';
    } catch (e) {
      // Same name = same hash = same content: a retried write of a record already stored.
      if (e instanceof Error && 'code' in e && e.code === 'EEXIST') return 'exists';
      throw e;
    }
  }

  async get(hash: string): Promise<StoredEvidence | undefined> {
    if (!/^[0-9a-f]{64}$/.test(hash)) return undefined;
    try {
      return { key: hash, raw: parse(await readFile(this.pathOf(hash), 'utf8')) };
    } catch (e) {
      if (e instanceof Error && 'code' in e && e.code === 'ENOENT') return undefined;
      throw e;
    }
  }

  async listByCase(caseKey: string): Promise<StoredEvidence[]> {
    return orderStored(
      (await this.listAll()).filter((s) => storedCaseKey(s) === caseKey),
      'caseSeq',
    );
  }

  async listAll(): Promise<StoredEvidence[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (e) {
      if (e instanceof Error && 'code' in e && e.code === 'ENOENT') return [];
      throw e;
    }
    const out: StoredEvidence[] = [];
    for (const name of names) {
      const m = HASH_FILE.exec(name);
      if (m?.[1]) out.push({ key: m[1], raw: parse(await readFile(join(this.dir, name), 'utf8')) });
    }
    return orderStored(out, 'seq');
  }
}

/** A file edited into invalid JSON is still evidence of tampering: keep its text for the chain check. */
function parse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return { unparseable: text.slice(0, 200) };
  }
}
