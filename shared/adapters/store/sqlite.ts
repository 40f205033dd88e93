/**
 * The embedded default store: one SQLite database file (through @libsql/client, whose native binary
 * ships as an npm package), WAL mode so several local workers can share it, conditional writes on a
 * version column.
 */
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { type Client, createClient, type InStatement, type InValue } from '@libsql/client';
import type { DocStore, PutOptions, StoredDoc, WriteBatch } from '../../core/ports.js';

const SCHEMA = [
  `CREATE TABLE IF NOT EXISTS docs (
     coll TEXT NOT NULL, id TEXT NOT NULL, value TEXT NOT NULL, version INTEGER NOT NULL,
     PRIMARY KEY (coll, id)) WITHOUT ROWID`,
  `CREATE TABLE IF NOT EXISTS logs (
     seq INTEGER PRIMARY KEY AUTOINCREMENT, log TEXT NOT NULL, id TEXT NOT NULL, value TEXT NOT NULL,
     UNIQUE (log, id))`,
  'CREATE INDEX IF NOT EXISTS logs_by_log ON logs (log, seq)',
];

function putStatement(collection: string, id: string, value: unknown, expect: number | undefined): InStatement {
  const json = JSON.stringify(value);
  if (expect === 0) {
    return {
      sql: 'INSERT INTO docs (coll, id, value, version) VALUES (?, ?, ?, 1) ON CONFLICT (coll, id) DO NOTHING',
      args: [collection, id, json],
    };
  }
  if (expect !== undefined) {
    return {
      sql: 'UPDATE docs SET value = ?, version = version + 1 WHERE coll = ? AND id = ? AND version = ?',
      args: [json, collection, id, expect],
    };
  }
  return {
    sql: `INSERT INTO docs (coll, id, value, version) VALUES (?, ?, ?, 1)
          ON CONFLICT (coll, id) DO UPDATE SET value = excluded.value, version = docs.version + 1
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
    for (const sql of SCHEMA) await client.execute(sql);
    return new SqliteDocStore(client, file);
  }

  private async run(sql: string, args: InValue[]) {
    return this.client.execute({ sql, args });
  }

  async get(collection: string, id: string): Promise<StoredDoc | undefined> {
    const rs = await this.run('SELECT value, version FROM docs WHERE coll = ? AND id = ?', [collection, id]);
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
        `SELECT id, value, version FROM docs WHERE coll = ? AND id IN (${chunk.map(() => '?').join(',')})`,
        [collection, ...chunk],
      );
      for (const row of rs.rows) {
        const id = String(row.id);
        out.set(id, { id, value: JSON.parse(String(row.value)), version: Number(row.version) });
      }
    }
    return out;
  }

  async writeBatch(batch: WriteBatch): Promise<{ puts: Array<number | null>; appends: boolean[] }> {
    const statements: InStatement[] = [
      ...batch.puts.map((p) => putStatement(p.collection, p.id, p.value, p.expectVersion)),
      ...batch.appends.map((a) => ({
        sql: 'INSERT INTO logs (log, id, value) VALUES (?, ?, ?) ON CONFLICT (log, id) DO NOTHING',
        args: [a.log, a.id, JSON.stringify(a.value)],
      })),
    ];
    if (statements.length === 0) return { puts: [], appends: [] };
    const results = await this.client.batch(statements, 'write');
    return {
      puts: batch.puts.map((p, i) => putOutcome(results[i], p.expectVersion)),
      appends: batch.appends.map((_, i) => results[batch.puts.length + i]?.rowsAffected === 1),
    };
  }

  async delete(collection: string, id: string, options: PutOptions = {}): Promise<boolean> {
    const rs =
      options.expectVersion !== undefined
        ? await this.run('DELETE FROM docs WHERE coll = ? AND id = ? AND version = ?', [
            collection,
            id,
            options.expectVersion,
          ])
        : await this.run('DELETE FROM docs WHERE coll = ? AND id = ?', [collection, id]);
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
      `SELECT id, value, version FROM docs WHERE ${where.join(' AND ')} ORDER BY id${limit}`,
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
