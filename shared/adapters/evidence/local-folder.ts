/**
 * Evidence in a folder of the embedded home (`<home>/evidence/<hash>.json`), one file per record,
 * written once and whole: the text goes to a temporary file first, which a rename then names, so a
 * process killed mid-write leaves a temporary file that every read ignores, never a record cut short under
 * its own name. The rename is durable before `put` returns (the file's data is synced before the rename,
 * the folder after it): the case store points at the record as soon as `put` returns, and after a power
 * loss a rename that reached the disk before the data it names would leave an empty record under its
 * name, a chain `evidence verify` can only call broken. A record that exists is left as it is (by its name, the hash, it holds the same text),
 * so a record can only be changed by hand — which `closeloop evidence verify` then reports. Temporary files
 * a killed process left behind are removed by the next process's first write (those older than
 * {@link ORPHAN_AGE_MS}: a live writer renames its own within milliseconds).
 */
import { randomUUID } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { hasErrorCode } from '../../core/errors.js';
import { type EvidenceStore, orderStored, type StoredEvidence, storedCaseKey } from '../../core/evidence/ports.js';
import type { EvidenceRecord } from '../../core/evidence/record.js';

const HASH_FILE = /^([0-9a-f]{64})\.json$/;
const TEMPORARY_FILE = /^\.[0-9a-f]{64}\.\d+\.[0-9a-f-]{36}\.tmp$/;
/** A temporary file this old is a killed writer's, never a live one's. */
export const ORPHAN_AGE_MS = 5 * 60_000;

export class LocalFolderEvidenceStore implements EvidenceStore {
  private ready: Promise<unknown> | undefined;

  /** @param dir the evidence folder, e.g. `join(home, 'evidence')`; created on first write. */
  constructor(readonly dir: string) {}

  /** Path of a record's file (for people and tests). */
  pathOf(hash: string): string {
    return join(this.dir, `${hash}.json`);
  }

  async put(record: EvidenceRecord): Promise<'stored' | 'exists'> {
    // Best effort: a sweep that fails (a file gone meanwhile, a permission) never fails the write.
    this.ready ??= mkdir(this.dir, { recursive: true }).then(() => this.sweep().catch(() => 0));
    await this.ready;
    const path = this.pathOf(record.hash);
    const text = `${JSON.stringify(record, null, 2)}\n`;
    // Most puts repeat a record already stored (every append first completes the chain's head): one stat
    // answers them.
    const size = await sizeOf(path);
    if (size === Buffer.byteLength(text)) return 'exists';
    if (size === undefined) {
      // Named by a rename: the record appears whole or not at all. A rename replaces a file that another
      // writer stored since the stat, which by its name (the hash) holds this same text.
      await this.whole(record.hash, path, text);
      return 'stored';
    }
    // Same name = same hash = same content: a record already stored — or one cut short by a crash of a
    // version that wrote in place (its text a prefix of the record's), completed. Any other text is an
    // edit, kept for `evidence verify` to report.
    // (A file gone since the stat is written as if it had been cut short to nothing.)
    const stored = await readFile(path, 'utf8').catch((e: unknown) => {
      if (hasErrorCode(e, 'ENOENT')) return '';
      throw e;
    });
    if (stored === text || !text.startsWith(stored)) return 'exists';
    await this.whole(record.hash, path, text);
    return 'stored';
  }

  /**
   * Writes `text` to a file of its own (a name no record has, unique to this write), syncs it, renames it to
   * `path` and syncs the folder (see the header).
   */
  private async whole(hash: string, path: string, text: string): Promise<void> {
    const temporary = join(this.dir, `.${hash}.${process.pid}.${randomUUID()}.tmp`);
    try {
      const file = await open(temporary, 'wx');
      try {
        await file.writeFile(text);
        await file.sync();
      } finally {
        await file.close();
      }
      await rename(temporary, path);
    } catch (e) {
      await rm(temporary, { force: true });
      throw e;
    }
    await syncFolder(this.dir);
  }

  /** Removes the temporary files of writes killed midway (older than `olderThanMs`); returns how many. */
  async sweep(olderThanMs = ORPHAN_AGE_MS, now = Date.now()): Promise<number> {
    let removed = 0;
    for (const name of await readdir(this.dir).catch(() => [] as string[])) {
      if (!TEMPORARY_FILE.test(name)) continue;
      const path = join(this.dir, name);
      const modified = await stat(path).then(
        (st) => st.mtimeMs,
        () => undefined,
      );
      if (modified === undefined || now - modified < olderThanMs) continue;
      await rm(path, { force: true });
      removed++;
    }
    return removed;
  }

  async get(hash: string): Promise<StoredEvidence | undefined> {
    if (!/^[0-9a-f]{64}$/.test(hash)) return undefined;
    try {
      return { key: hash, raw: parse(await readFile(this.pathOf(hash), 'utf8')) };
    } catch (e) {
      if (hasErrorCode(e, 'ENOENT')) return undefined;
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
      if (hasErrorCode(e, 'ENOENT')) return [];
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

/** A file's size in bytes, undefined when there is no such file. */
async function sizeOf(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).size;
  } catch (e) {
    if (hasErrorCode(e, 'ENOENT')) return undefined;
    throw e;
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

/**
 * Makes the folder's entries (a rename) durable. Where a folder cannot be opened or synced (Windows refuses
 * both), the rename is as durable as the platform makes it.
 */
async function syncFolder(dir: string): Promise<void> {
  let folder: Awaited<ReturnType<typeof open>> | undefined;
  try {
    folder = await open(dir, 'r');
    await folder.sync();
  } catch (e) {
    if (!hasErrorCode(e, 'EISDIR') && !hasErrorCode(e, 'EPERM') && !hasErrorCode(e, 'EINVAL')) throw e;
  } finally {
    await folder?.close();
  }
}
