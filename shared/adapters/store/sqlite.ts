/**
 * The embedded default store: one SQLite database file (through @libsql/client, whose native binary
 * ships as an npm package), WAL mode so several local workers can share it, conditional writes on a
 * version column.
 */
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { type Client, createClient, type InStatement, type InValue, type ResultSet } from '@libsql/client';
import type { DocStore, PutOptions, StoredDoc, WriteBatch } from '../../core/ports.js';

/**
 * `documents` is an ordinary rowid table with a unique (coll, id) index, not a WITHOUT ROWID table: documents
 * are kilobytes of JSON (a finding keeps its raw event), and SQLite stores WITHOUT ROWID rows inside the
 * primary-key B-tree, where rows over ~1/20 of a page spill to overflow pages and every insert moves them
 * around. Measured here on 3 KB documents: ~2.6× the insert rate of the WITHOUT ROWID layout.
 */
const DOCS_TABLE = `CREATE TABLE IF NOT EXISTS documents (
     coll TEXT NOT NULL, id TEXT NOT NULL, value TEXT NOT NULL, version INTEGER NOT NULL,
     UNIQUE (coll, id))`;
const SCHEMA = [
  DOCS_TABLE,
  `CREATE TABLE IF NOT EXISTS logs (
     seq INTEGER PRIMARY KEY AUTOINCREMENT, log TEXT NOT NULL, id TEXT NOT NULL, value TEXT NOT NULL,
     UNIQUE (log, id))`,
  'CREATE INDEX IF NOT EXISTS logs_by_log ON logs (log, seq)',
];

/** Rows per multi-row INSERT: 3 parameters each, far under SQLite's 32766 host-parameter limit. */
const ROWS_PER_INSERT = 200;

function putStatement(collection: string, id: string, value: unknown, expect: number | undefined): InStatement {
  const json = JSON.stringify(value);
  if (expect === 0) {
    return {
      sql: 'INSERT INTO documents (coll, id, value, version) VALUES (?, ?, ?, 1) ON CONFLICT (coll, id) DO NOTHING',
      args: [collection, id, json],
    };
  }
  if (expect !== undefined) {
    return {
      sql: 'UPDATE documents SET value = ?, version = version + 1 WHERE coll = ? AND id = ? AND version = ?',
      args: [json, collection, id, expect],
    };
  }
  return {
    sql: `INSERT INTO documents (coll, id, value, version) VALUES (?, ?, ?, 1)
          ON CONFLICT (coll, id) DO UPDATE SET value = excluded.value, version = documents.version + 1
          RETURNING version`,
    args: [collection, id, json],
  };
}

function putOutcome(
  rs: { rowsAffected: number; rows: ArrayLike<Record<string, unknown>> } | undefined,
  expect: number | undefined,
): number | null {
  if (!rs) return null;
  if (expect === 0) return rs.rowsAffected === 1 ? 1 : null;
  if (expect !== undefined) return rs.rowsAffected === 1 ? expect + 1 : null;
  return Number(rs.rows[0]?.version ?? 1);
}

/**
 * Databases made before the rowid layout keep their documents in a WITHOUT ROWID `docs` table: they are
 * copied into `documents` once, in one write transaction (a batch: `client.transaction()` would hand
 * this connection, with its pragmas, away). A concurrent opener that lost the race finds `docs` gone.
 */
async function migrateDocsTable(client: Client): Promise<void> {
  const exists = async () =>
    (await client.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'docs'")).rows.length > 0;
  if (!(await exists())) return;
  try {
    await client.batch(
      [
        DOCS_TABLE,
        'INSERT OR IGNORE INTO documents (coll, id, value, version) SELECT coll, id, value, version FROM docs',
        'DROP TABLE docs',
      ],
      'write',
    );
  } catch (e) {
    if (await exists()) throw e;
  }
}

export class SqliteDocStore implements DocStore {
  private constructor(
    private readonly client: Client,
    readonly path: string,
  ) {}

  /** Opens (creating if needed) the database file at `path`. */
  static async open(path: string): Promise<SqliteDocStore> {
    const file = resolve(path);
    mkdirSync(dirname(file), { recursive: true });
    const client = createClient({ url: pathToFileURL(file).href });
    // busy_timeout first: another worker may hold the write lock while we switch to WAL.
    await client.execute('PRAGMA busy_timeout = 15000');
    await client.execute('PRAGMA journal_mode = WAL');
    await client.execute('PRAGMA synchronous = NORMAL');
    // Checkpoint every 32768 pages (128 MB of WAL) instead of 1000: B-tree pages rewritten by many
    // batches in between are copied into the database (and fsynced) once, not once per 4 MB. Measured
    // here on the bench's ingest (40k findings): 1000 → 8192 pages gave ~1.4× the insert rate, 8192 →
    // 32768 ~1.2× more; the WAL is truncated back at each checkpoint.
    await client.execute('PRAGMA wal_autocheckpoint = 32768');
    await migrateDocsTable(client);
    for (const sql of SCHEMA) await client.execute(sql);
    return new SqliteDocStore(client, file);
  }

  private async run(sql: string, args: InValue[]) {
    return this.client.execute({ sql, args });
  }

  async get(collection: string, id: string): Promise<StoredDoc | undefined> {
    const rs = await this.run('SELECT value, version FROM documents WHERE coll = ? AND id = ?', [collection, id]);
    const row = rs.rows[0];
    if (!row) return undefined;
    return { id, value: JSON.parse(String(row.value)), version: Number(row.version) };
  }

  async put(collection: string, id: string, value: unknown, options: PutOptions = {}): Promise<number | null> {
    const rs = await this.client.execute(putStatement(collection, id, value, options.expectVersion));
    return putOutcome(rs, options.expectVersion);
  }

  async getMany(collection: string, ids: readonly string[]): Promise<Map<string, StoredDoc>> {
    const out = new Map<string, StoredDoc>();
    // SQLite's default host-parameter limit is 32766; stay well under it.
    for (let i = 0; i < ids.length; i += 500) {
      const chunk = ids.slice(i, i + 500);
      const rs = await this.run(
        `SELECT id, value, version FROM documents WHERE coll = ? AND id IN (${chunk.map(() => '?').join(',')})`,
        [collection, ...chunk],
      );
      for (const row of rs.rows) {
        const id = String(row.id);
        out.set(id, { id, value: JSON.parse(String(row.value)), version: Number(row.version) });
      }
    }
    return out;
  }

  /**
   * One write transaction. Unconditional-create puts (`expectVersion: 0`) and log appends — nearly every
   * write of an ingest chunk — go as multi-row `INSERT … ON CONFLICT DO NOTHING RETURNING id` statements,
   * whose returned ids say which rows went in; the other puts are one statement each. Outcomes are the
   * same as one statement per write, in the order given.
   */
  async writeBatch(batch: WriteBatch): Promise<{ puts: Array<number | null>; appends: boolean[] }> {
    if (batch.puts.length === 0 && batch.appends.length === 0) return { puts: [], appends: [] };
    const statements: InStatement[] = [];
    const readers: Array<(rs: ResultSet | undefined) => void> = [];
    const puts: Array<number | null> = batch.puts.map(() => null);
    const appends: boolean[] = batch.appends.map(() => false);

    // Creates, grouped per collection; an id repeated in one batch keeps one statement per put, so the
    // second create of the same id fails exactly as it would on its own.
    const creates = new Map<string, number[]>();
    const seen = new Set<string>();
    const repeated = new Set<string>();
    for (const p of batch.puts) {
      if (p.expectVersion !== 0) continue;
      const key = `${p.collection}\u0000${p.id}`;
      if (seen.has(key)) repeated.add(key);
      seen.add(key);
    }
    batch.puts.forEach((p, i) => {
      if (p.expectVersion === 0 && !repeated.has(`${p.collection}\u0000${p.id}`)) {
        const list = creates.get(p.collection) ?? [];
        list.push(i);
        creates.set(p.collection, list);
        return;
      }
      statements.push(putStatement(p.collection, p.id, p.value, p.expectVersion));
      readers.push((rs) => {
        puts[i] = putOutcome(rs, p.expectVersion);
      });
    });
    for (const [collection, indexes] of creates) {
      for (let at = 0; at < indexes.length; at += ROWS_PER_INSERT) {
        const group = indexes.slice(at, at + ROWS_PER_INSERT);
        const args: InValue[] = [];
        for (const i of group) {
          const p = batch.puts[i];
          if (p) args.push(collection, p.id, JSON.stringify(p.value));
        }
        statements.push({
          sql: `INSERT INTO documents (coll, id, value, version) VALUES ${group.map(() => '(?, ?, ?, 1)').join(', ')}
                ON CONFLICT (coll, id) DO NOTHING RETURNING id`,
          args,
        });
        readers.push((rs) => {
          const inserted = new Set((rs?.rows ?? []).map((row) => String(row.id)));
          for (const i of group) puts[i] = inserted.has(batch.puts[i]?.id ?? '') ? 1 : null;
        });
      }
    }

    // Appends in the order given (a log's seq follows it): runs of one log go as one statement; a
    // repeated (log, id) in one batch keeps one statement per append, so only its first goes in.
    const appendKeys = batch.appends.map((a) => `${a.log}\u0000${a.id}`);
    const appendCount = new Map<string, number>();
    for (const k of appendKeys) appendCount.set(k, (appendCount.get(k) ?? 0) + 1);
    let run: number[] = [];
    const flushRun = () => {
      const group = run;
      run = [];
      const first = batch.appends[group[0] ?? -1];
      if (!first) return;
      const args: InValue[] = [];
      for (const i of group) {
        const a = batch.appends[i];
        if (a) args.push(a.log, a.id, JSON.stringify(a.value));
      }
      statements.push({
        sql: `INSERT INTO logs (log, id, value) VALUES ${group.map(() => '(?, ?, ?)').join(', ')}
              ON CONFLICT (log, id) DO NOTHING RETURNING id`,
        args,
      });
      readers.push((rs) => {
        const inserted = new Set((rs?.rows ?? []).map((row) => String(row.id)));
        for (const i of group) appends[i] = inserted.has(batch.appends[i]?.id ?? '');
      });
    };
    batch.appends.forEach((a, i) => {
      if ((appendCount.get(appendKeys[i] ?? '') ?? 0) > 1) {
        flushRun();
        statements.push({
          sql: 'INSERT INTO logs (log, id, value) VALUES (?, ?, ?) ON CONFLICT (log, id) DO NOTHING',
          args: [a.log, a.id, JSON.stringify(a.value)],
        });
        readers.push((rs) => {
          appends[i] = rs?.rowsAffected === 1;
        });
        return;
      }
      const runLog = batch.appends[run[0] ?? -1]?.log;
      if (runLog !== undefined && (runLog !== a.log || run.length >= ROWS_PER_INSERT)) flushRun();
      run.push(i);
    });
    flushRun();

    const results = await this.client.batch(statements, 'write');
    readers.forEach((read, i) => {
      read(results[i]);
    });
    return { puts, appends };
  }

  async delete(collection: string, id: string, options: PutOptions = {}): Promise<boolean> {
    const rs =
      options.expectVersion !== undefined
        ? await this.run('DELETE FROM documents WHERE coll = ? AND id = ? AND version = ?', [
            collection,
            id,
            options.expectVersion,
          ])
        : await this.run('DELETE FROM documents WHERE coll = ? AND id = ?', [collection, id]);
    return rs.rowsAffected === 1;
  }

  async list(
    collection: string,
    options: { prefix?: string; after?: string; limit?: number } = {},
  ): Promise<StoredDoc[]> {
    const where = ['coll = ?'];
    const args: InValue[] = [collection];
    if (options.prefix !== undefined) {
      // Range instead of LIKE: ids may contain % and _ and are compared bytewise.
      where.push('id >= ? AND id < ?');
      args.push(options.prefix, `${options.prefix}\uffff`);
    }
    if (options.after !== undefined) {
      where.push('id > ?');
      args.push(options.after);
    }
    const limit = options.limit !== undefined ? ` LIMIT ${Math.max(0, Math.floor(options.limit))}` : '';
    const rs = await this.run(
      `SELECT id, value, version FROM documents WHERE ${where.join(' AND ')} ORDER BY id${limit}`,
      args,
    );
    return rs.rows.map((row) => ({
      id: String(row.id),
      value: JSON.parse(String(row.value)),
      version: Number(row.version),
    }));
  }

  async append(log: string, id: string, value: unknown): Promise<boolean> {
    const rs = await this.run('INSERT INTO logs (log, id, value) VALUES (?, ?, ?) ON CONFLICT (log, id) DO NOTHING', [
      log,
      id,
      JSON.stringify(value),
    ]);
    return rs.rowsAffected === 1;
  }

  async readLog(
    log: string,
    options: { after?: number; limit?: number } = {},
  ): Promise<Array<{ seq: number; id: string; value: unknown }>> {
    const limit = options.limit !== undefined ? ` LIMIT ${Math.max(0, Math.floor(options.limit))}` : '';
    const rs = await this.run(`SELECT seq, id, value FROM logs WHERE log = ? AND seq > ? ORDER BY seq${limit}`, [
      log,
      options.after ?? 0,
    ]);
    return rs.rows.map((row) => ({ seq: Number(row.seq), id: String(row.id), value: JSON.parse(String(row.value)) }));
  }

  async close(): Promise<void> {
    this.client.close();
  }
}
