/**
 * Evidence in a folder of the embedded home (`<home>/evidence/<hash>.json`), one file per record,
 * written once and whole: the text goes to a temporary file first, which a hard link then names — `link`
 * refuses a name that exists, so a record is never overwritten and can only be changed by hand (which
 * `closeloop evidence verify` then reports), and a process killed mid-write leaves a temporary file that
 * every read ignores, never a record cut short under its own name.
 */
import { randomUUID } from 'node:crypto';
import { link, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
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
    const path = this.pathOf(record.hash);
    const text = `${JSON.stringify(record, null, 2)}\n`;
    // A name no record file has (HASH_FILE), unique to this write.
    const temporary = join(this.dir, `.${record.hash}.${process.pid}.${randomUUID()}.tmp`);
    await writeFile(temporary, text, { flag: 'wx' });
    try {
      await link(temporary, path);
      return 'stored';
    } catch (e) {
      if (!hasCode(e, 'EEXIST')) throw e;
      // Same name = same hash = same content: a retried write of a record already stored — or one cut
      // short by a crash of a version that wrote in place (its text a prefix of the record's), completed.
      const stored = await readFile(path, 'utf8').catch(() => undefined);
      if (stored === undefined || stored === text || !text.startsWith(stored)) return 'exists';
      await rename(temporary, path);
      return 'stored';
    } finally {
      await rm(temporary, { force: true });
    }
  }

  async get(hash: string): Promise<StoredEvidence | undefined> {
    if (!/^[0-9a-f]{64}$/.test(hash)) return undefined;
    try {
      return { key: hash, raw: parse(await readFile(this.pathOf(hash), 'utf8')) };
    } catch (e) {
      if (hasCode(e, 'ENOENT')) return undefined;
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
      if (hasCode(e, 'ENOENT')) return [];
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

const hasCode = (e: unknown, code: string): boolean => e instanceof Error && 'code' in e && e.code === code;

/** A file edited into invalid JSON is still evidence of tampering: keep its text for the chain check. */
function parse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return { unparseable: text.slice(0, 200) };
  }
}
