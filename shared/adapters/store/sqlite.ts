/**
 * The embedded default store: one SQLite database file (through `libsql`, the SQLite-compatible engine whose
 * native binary ships as an npm package), WAL mode so several local workers can share it, conditional
 * writes on a version column.
 */
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Database from 'libsql';
import {
  type Clock,
  type DocStore,
  type PutOptions,
  type StoredDoc,
  systemClock,
  type WriteBatch,
} from '../../core/ports.js';
import { putOptionsOf } from '../../core/store/docs.js';

/**
 * `documents` is an ordinary rowid table with a unique (coll, id) index, not a WITHOUT ROWID table: documents
 * are kilobytes of JSON (a finding keeps its raw event), and SQLite stores WITHOUT ROWID rows inside the
 * primary-key B-tree, where rows over ~1/20 of a page spill to overflow pages and every insert moves them
 * around. Measured here on 3 KB documents: ~2.6× the insert rate of the WITHOUT ROWID layout.
 */
const DOCS_TABLE = `CREATE TABLE IF NOT EXISTS documents (
     coll TEXT NOT NULL, id TEXT NOT NULL, value TEXT NOT NULL, version INTEGER NOT NULL, expires INTEGER,
     UNIQUE (coll, id))`;
/**
 * `documents.expires`: when the document expires (ms since the epoch; NULL: never). Only the few documents
 * with an expiry are in this index, so pruning finds them without reading the others.
 */
const EXPIRY_INDEX = 'CREATE INDEX IF NOT EXISTS documents_by_expiry ON documents (expires) WHERE expires IS NOT NULL';
const SCHEMA = [
  DOCS_TABLE,
  `CREATE TABLE IF NOT EXISTS logs (
     seq INTEGER PRIMARY KEY AUTOINCREMENT, log TEXT NOT NULL, id TEXT NOT NULL, value TEXT NOT NULL,
     UNIQUE (log, id))`,
  'CREATE INDEX IF NOT EXISTS logs_by_log ON logs (log, seq)',
];

/**
 * Page size of a new database file. Documents are 1–6 KB of JSON (a finding with its raw event, a case
 * with its enrichment and gates); with SQLite's default 4 KB pages any row over ~2 KB takes a page of
 * its own, and each insert pays a page allocation and a B-tree rebalance. Measured here (libsql, WAL,
 * multi-row inserts of 2.9 KB rows): 44 µs per row with 4 KB pages, 20 µs with 16 KB. A database made
 * with another page size keeps it (SQLite changes it only by VACUUM outside WAL mode).
 */
const PAGE_SIZE = 16384;

/**
 * Every PRUNE_EVERY-th write with an expiry also deletes up to PRUNE_BATCH expired documents: more than one per
 * such write, so the expired ones never pile up, and a bounded delete, so no write waits on a long one. Opening
 * the database deletes every expired one (see {@link SqliteDocStore.open}).
 */
const PRUNE_EVERY = 64;
const PRUNE_BATCH = 256;

/** Ids per `IN (…)` list of a read. */
const ROWS_PER_READ = 500;

/** `list` in consecutive slices of at most `size`. */
function* slices<T>(list: readonly T[], size: number): Generator<T[]> {
  for (let at = 0; at < list.length; at += size) yield list.slice(at, at + size);
}

type Db = Database.Database;
type Statement = Database.Statement;
type Row = Record<string, unknown>;

/** Of a read, an update or a delete: the document has not expired (`?`: now, in ms since the epoch). */
const LIVE = '(expires IS NULL OR expires > ?)';

const SQL = {
  get: `SELECT value, version FROM documents WHERE coll = ? AND id = ? AND ${LIVE}`,
  // An expired document's id is free: the create takes it, at version 1.
  create: `INSERT INTO documents (coll, id, value, version, expires) VALUES (?, ?, ?, 1, ?)
           ON CONFLICT (coll, id) DO UPDATE SET value = excluded.value, version = 1, expires = excluded.expires
           WHERE documents.expires <= ?`,
  update: `UPDATE documents SET value = ?, version = version + 1, expires = ? WHERE coll = ? AND id = ? AND version = ?
           AND ${LIVE}`,
  upsert: `INSERT INTO documents (coll, id, value, version, expires) VALUES (?, ?, ?, 1, ?)
           ON CONFLICT (coll, id) DO UPDATE SET value = excluded.value, version = documents.version + 1,
           expires = excluded.expires
           RETURNING version`,
  delete: `DELETE FROM documents WHERE coll = ? AND id = ? AND ${LIVE}`,
  deleteAt: `DELETE FROM documents WHERE coll = ? AND id = ? AND version = ? AND ${LIVE}`,
  // A few expired documents at a time (see PRUNE_EVERY), through the partial index.
  prune: `DELETE FROM documents WHERE rowid IN
           (SELECT rowid FROM documents WHERE expires IS NOT NULL AND expires <= ? LIMIT ${PRUNE_BATCH})`,
  append: 'INSERT INTO logs (log, id, value) VALUES (?, ?, ?) ON CONFLICT (log, id) DO NOTHING',
  readLog: 'SELECT seq, id, value FROM logs WHERE log = ? AND seq > ? ORDER BY seq',
} as const;

/**
 * Databases made before the rowid layout keep their documents in a WITHOUT ROWID `docs` table: they are
 * copied into `documents` once, in one write transaction. A concurrent opener that lost the race finds
 * `docs` gone.
 */
function migrateDocsTable(db: Db): void {
  const exists = () =>
    db.prepare("SELECT 1 AS one FROM sqlite_master WHERE type = 'table' AND name = 'docs'").get() !== undefined;
  if (!exists()) return;
  try {
    db.transaction(() => {
      db.exec(DOCS_TABLE);
      db.exec('INSERT OR IGNORE INTO documents (coll, id, value, version) SELECT coll, id, value, version FROM docs');
      db.exec('DROP TABLE docs');
    }).immediate();
  } catch (e) {
    if (exists()) throw e;
  }
}

/**
 * Database files made before documents could expire have no `expires` column: it is added once (NULL: every
 * existing document stays permanent). A concurrent opener that lost the race finds the column there.
 */
function addExpiresColumn(db: Db): void {
  const has = () =>
    (db.prepare('PRAGMA table_info(documents)').all() as Row[]).some((column) => column.name === 'expires');
  if (has()) return;
  try {
    db.transaction(() => {
      if (!has()) db.exec('ALTER TABLE documents ADD COLUMN expires INTEGER');
    }).immediate();
  } catch (e) {
    if (!has()) throw e;
  }
}

export interface SqliteDocStoreOptions {
  /** What expiries are compared with (default: the system clock). */
  clock?: Clock;
}

export class SqliteDocStore implements DocStore {
  /**
   * Prepared statements by SQL text: the fixed ones above, one `IN (…)` read per list length in use (at most
   * ROWS_PER_READ), and `list`'s eight shapes. Each is reset after it runs, so none holds a read snapshot.
   */
  private readonly statements = new Map<string, Statement>();

  /** Writes with an expiry since the last prune. */
  private expiringWrites = 0;

  private constructor(
    private readonly db: Db,
    readonly path: string,
    private readonly clock: Clock,
  ) {}

  /**
   * Opens (creating if needed) the database file at `path`, and deletes the documents that expired (one delete
   * through the expiry index: a long-running deployment's markers are a small share of its documents).
   */
  static async open(path: string, options: SqliteDocStoreOptions = {}): Promise<SqliteDocStore> {
    const clock = options.clock ?? systemClock;
    const file = resolve(path);
    mkdirSync(dirname(file), { recursive: true });
    const db = new Database(file);
    try {
      // busy_timeout first: another worker may hold the write lock while we switch to WAL.
      db.exec('PRAGMA busy_timeout = 15000');
      // Before the first write (switching to WAL writes the header): ignored by an existing database.
      db.exec(`PRAGMA page_size = ${PAGE_SIZE}`);
      db.exec('PRAGMA journal_mode = WAL');
      db.exec('PRAGMA synchronous = NORMAL');
      // Checkpoint every 32768 pages (512 MB of WAL at 16 KB pages) instead of 1000: B-tree pages rewritten
      // by many batches in between are copied into the database (and fsynced) once, not once per batch.
      // Measured here on the bench's ingest (4 KB pages, 40k findings): 1000 → 8192 pages gave ~1.4× the
      // insert rate, 8192 → 32768 ~1.2× more; again with 16 KB pages (100k findings): 8192 → 32768 ~1.15×.
      db.exec('PRAGMA wal_autocheckpoint = 32768');
      // A checkpointed WAL is reused from its start but keeps its size: cut it back to 64 MB so an idle
      // database does not hold half a gigabyte of spent log on disk.
      db.exec('PRAGMA journal_size_limit = 67108864');
      // 64 MiB of page cache per connection instead of SQLite's 2 MiB (128 pages of 16 KB): an ingest chunk
      // reads and rewrites thousands of documents. Measured on the bench's ingest (100k findings): ~8% less
      // time per finding in SQLite.
      db.exec('PRAGMA cache_size = -65536');
      migrateDocsTable(db);
      for (const sql of SCHEMA) db.exec(sql);
      addExpiresColumn(db);
      db.exec(EXPIRY_INDEX);
      db.prepare('DELETE FROM documents WHERE expires IS NOT NULL AND expires <= ?').run(clock.now().getTime());
    } catch (e) {
      db.close();
      throw e;
    }
    return new SqliteDocStore(db, file, clock);
  }

  private now(): number {
    return this.clock.now().getTime();
  }

  private statement(sql: string): Statement {
    let st = this.statements.get(sql);
    if (!st) {
      st = this.db.prepare(sql);
      this.statements.set(sql, st);
    }
    return st;
  }

  private doc(id: string, row: Row): StoredDoc {
    return { id, value: JSON.parse(String(row.value)), version: Number(row.version) };
  }

  async get(collection: string, id: string): Promise<StoredDoc | undefined> {
    const row = this.statement(SQL.get).get(collection, id, this.now()) as Row | undefined;
    return row ? this.doc(id, row) : undefined;
  }

  async put(collection: string, id: string, value: unknown, options: PutOptions = {}): Promise<number | null> {
    return this.putNow(collection, id, value, options);
  }

  /** One put, in whatever transaction is open: the new version, or null when its condition failed. */
  private putNow(collection: string, id: string, value: unknown, options: PutOptions): number | null {
    const json = JSON.stringify(value);
    const expect = options.expectVersion;
    const expires = options.expiresAt?.getTime() ?? null;
    const now = this.now();
    if (expires !== null && ++this.expiringWrites >= PRUNE_EVERY) {
      this.expiringWrites = 0;
      this.statement(SQL.prune).run(now);
    }
    if (expect === 0)
      return this.statement(SQL.create).run(collection, id, json, expires, now).changes === 1 ? 1 : null;
    if (expect !== undefined)
      return this.statement(SQL.update).run(json, expires, collection, id, expect, now).changes === 1
        ? expect + 1
        : null;
    const row = this.statement(SQL.upsert).get(collection, id, json, expires) as Row | undefined;
    return Number(row?.version ?? 1);
  }

  async getMany(collection: string, ids: readonly string[]): Promise<Map<string, StoredDoc>> {
    const out = new Map<string, StoredDoc>();
    // SQLite's default host-parameter limit is 32766; stay well under it.
    for (const chunk of slices(ids, ROWS_PER_READ)) {
      const rows = this.statement(
        `SELECT id, value, version FROM documents WHERE coll = ? AND ${LIVE} AND id IN (${chunk.map(() => '?').join(',')})`,
      ).all(collection, this.now(), ...chunk) as Row[];
      for (const row of rows) {
        const id = String(row.id);
        out.set(id, this.doc(id, row));
      }
    }
    return out;
  }

  /**
   * One write transaction (`BEGIN IMMEDIATE`: it waits for the write lock up to the busy timeout, then holds
   * it), one prepared statement per write in the order given, each with its own outcome: a create goes in
   * when the id is absent, an update when the version matches, an append when its id is new to the log; a
   * document or log id named twice in one batch sees its earlier write. Any error rolls the whole batch
   * back. One statement per row through a statement prepared once beats multi-row `INSERT … VALUES` and
   * `UPDATE … FROM (VALUES …)` here (measured on the bench's ingest of 100k findings: ~1.2× the rate),
   * and each row's JSON is garbage as soon as it is written instead of a chunk's worth held until the end.
   */
  async writeBatch(batch: WriteBatch): Promise<{ puts: Array<number | null>; appends: boolean[] }> {
    if (batch.puts.length === 0 && batch.appends.length === 0) return { puts: [], appends: [] };
    return this.db
      .transaction(() => {
        const puts = batch.puts.map((p) => this.putNow(p.collection, p.id, p.value, putOptionsOf(p)));
        const append = this.statement(SQL.append);
        const appends = batch.appends.map((a) => append.run(a.log, a.id, JSON.stringify(a.value)).changes === 1);
        return { puts, appends: batch.appendsUnread ? [] : appends };
      })
      .immediate();
  }

  async delete(collection: string, id: string, options: PutOptions = {}): Promise<boolean> {
    const result =
      options.expectVersion !== undefined
        ? this.statement(SQL.deleteAt).run(collection, id, options.expectVersion, this.now())
        : this.statement(SQL.delete).run(collection, id, this.now());
    return result.changes === 1;
  }

  async list(
    collection: string,
    options: { prefix?: string; after?: string; limit?: number } = {},
  ): Promise<StoredDoc[]> {
    const where = ['coll = ?', LIVE];
    const args: Array<string | number> = [collection, this.now()];
    if (options.prefix !== undefined) {
      // Range instead of LIKE: ids may contain % and _ and are compared bytewise.
      where.push('id >= ? AND id < ?');
      args.push(options.prefix, `${options.prefix}\uffff`);
    }
    if (options.after !== undefined) {
      where.push('id > ?');
      args.push(options.after);
    }
    let limit = '';
    if (options.limit !== undefined) {
      limit = ' LIMIT ?';
      args.push(Math.max(0, Math.floor(options.limit)));
    }
    const rows = this.statement(
      `SELECT id, value, version FROM documents WHERE ${where.join(' AND ')} ORDER BY id${limit}`,
    ).all(...args) as Row[];
    return rows.map((row) => this.doc(String(row.id), row));
  }

  async append(log: string, id: string, value: unknown): Promise<boolean> {
    return this.statement(SQL.append).run(log, id, JSON.stringify(value)).changes === 1;
  }

  async readLog(
    log: string,
    options: { after?: number; limit?: number } = {},
  ): Promise<Array<{ seq: number; id: string; value: unknown }>> {
    const args: Array<string | number> = [log, options.after ?? 0];
    let sql: string = SQL.readLog;
    if (options.limit !== undefined) {
      sql += ' LIMIT ?';
      args.push(Math.max(0, Math.floor(options.limit)));
    }
    const rows = this.statement(sql).all(...args) as Row[];
    return rows.map((row) => ({ seq: Number(row.seq), id: String(row.id), value: JSON.parse(String(row.value)) }));
  }

  async close(): Promise<void> {
    this.statements.clear();
    this.db.close();
  }
}
