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

/** Rows per multi-row INSERT or UPDATE: 3–4 parameters each, far under SQLite's 32766 host-parameter limit. */
const ROWS_PER_INSERT = 200;

/**
 * Page size of a new database file. Documents are 1–6 KB of JSON (a finding with its raw event, a case
 * with its enrichment and gates); with SQLite's default 4 KB pages any row over ~2 KB takes a page of
 * its own, and each insert pays a page allocation and a B-tree rebalance. Measured here (libsql, WAL,
 * multi-row inserts of 2.9 KB rows): 44 µs per row with 4 KB pages, 20 µs with 16 KB. A database made
 * with another page size keeps it (SQLite changes it only by VACUUM outside WAL mode).
 */
const PAGE_SIZE = 16384;

/** One write batch as statements, what reads their results, and the outcomes they make. */
interface BatchPlan {
  statements: InStatement[];
  readers: Array<(rs: ResultSet | undefined) => void>;
  checks: Array<() => void>;
  /** Whether a grouped statement may fail on a conflict (the optimistic plan then has a careful twin). */
  grouped: boolean;
  outcome: () => { puts: Array<number | null>; appends: boolean[] };
}

/** Ids per `IN (…)` list of a read. */
const ROWS_PER_READ = 500;

/** `list` in consecutive slices of at most `size`. */
function* slices<T>(list: readonly T[], size: number): Generator<T[]> {
  for (let at = 0; at < list.length; at += size) yield list.slice(at, at + size);
}

function groupOf<T>(groups: Map<string, T[]>, key: string): T[] {
  let list = groups.get(key);
  if (!list) {
    list = [];
    groups.set(key, list);
  }
  return list;
}

/**
 * A grouped write must have written exactly the rows the read ahead said it would. It always does inside
 * one transaction; if it ever did not, the outcomes handed back would be wrong, so the batch fails loudly
 * (its writes are committed, and a caller retrying re-reads and finds them).
 */
function agree(rs: ResultSet | undefined, expected: number, what: string): void {
  if (rs && rs.rowsAffected !== expected)
    throw new Error(`sqlite store: ${what} wrote ${rs.rowsAffected} rows where ${expected} were expected`);
}

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
    // Before the first write (switching to WAL writes the header): ignored by an existing database.
    await client.execute(`PRAGMA page_size = ${PAGE_SIZE}`);
    await client.execute('PRAGMA journal_mode = WAL');
    await client.execute('PRAGMA synchronous = NORMAL');
    // Checkpoint every 32768 pages (512 MB of WAL at 16 KB pages) instead of 1000: B-tree pages rewritten
    // by many batches in between are copied into the database (and fsynced) once, not once per batch.
    // Measured here on the bench's ingest (4 KB pages, 40k findings): 1000 → 8192 pages gave ~1.4× the
    // insert rate, 8192 → 32768 ~1.2× more; again with 16 KB pages (100k findings): 8192 → 32768 ~1.15×.
    await client.execute('PRAGMA wal_autocheckpoint = 32768');
    // A checkpointed WAL is reused from its start but keeps its size: cut it back to 64 MB so an idle
    // database does not hold half a gigabyte of spent log on disk.
    await client.execute('PRAGMA journal_size_limit = 67108864');
    // 64 MiB of page cache per connection instead of SQLite's 2 MiB (128 pages of 16 KB): an ingest chunk
    // reads and rewrites thousands of documents. Measured on the bench's ingest (100k findings): ~8% less
    // time per finding in SQLite.
    await client.execute('PRAGMA cache_size = -65536');
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
    for (const chunk of slices(ids, ROWS_PER_READ)) {
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
   * One write transaction. Nearly every write of an ingest chunk is a create (`expectVersion: 0`), a
   * conditional update (`expectVersion: n`) or a log append; each kind goes as multi-row statements
   * (`INSERT … VALUES …`, `UPDATE … FROM (VALUES …)`): one statement for 200 updates instead of 200 cost
   * 22 instead of 48 µs per updated 2.9 KB row. Unconditional puts, and every put of a document named
   * twice in one batch, are one statement each, in the order given. Outcomes are the same as one
   * statement per write.
   *
   * Which rows a grouped statement wrote is known in one of two ways. First optimistically: every create
   * and append must go in and every update match its version — a conflicting create or append fails its
   * INSERT, and a guard after each UPDATE fails when it changed fewer rows — and any failure rolls the
   * whole transaction back. That is the ingest's case: it read the same ids just before. Then, after such
   * a rollback, carefully: the ids are read at the start of the transaction (nothing else can write in
   * between, and no grouped statement touches a row another one touches), so a create goes in exactly when
   * its id was absent and an update exactly when the version read is the one expected. Either way costs
   * less than `RETURNING`, which libsql hands back row by row (2.9 KB rows: 21 → 13 µs per insert).
   */
  async writeBatch(batch: WriteBatch): Promise<{ puts: Array<number | null>; appends: boolean[] }> {
    if (batch.puts.length === 0 && batch.appends.length === 0) return { puts: [], appends: [] };
    const optimistic = this.planBatch(batch, false);
    if (!optimistic.grouped) return this.runPlan(optimistic);
    try {
      return await this.runPlan(optimistic);
    } catch {
      // A conflict (or any other failure): nothing of the optimistic attempt was written.
      return this.runPlan(this.planBatch(batch, true));
    }
  }

  private async runPlan(plan: BatchPlan): Promise<{ puts: Array<number | null>; appends: boolean[] }> {
    const results = await this.client.batch(plan.statements, 'write');
    plan.readers.forEach((read, i) => {
      read(results[i]);
    });
    for (const check of plan.checks) check();
    return plan.outcome();
  }

  /** The statements of one write batch, `careful` (reading ahead) or optimistic (see writeBatch). */
  private planBatch(batch: WriteBatch, careful: boolean): BatchPlan {
    let grouped = false;
    const statements: InStatement[] = [];
    const readers: Array<(rs: ResultSet | undefined) => void> = [];
    const puts: Array<number | null> = batch.puts.map(() => null);
    const appends: boolean[] = batch.appends.map(() => false);
    const checks: Array<() => void> = [];
    const add = (statement: InStatement, read: (rs: ResultSet | undefined) => void) => {
      statements.push(statement);
      readers.push(read);
    };

    // Creates and conditional updates, grouped per collection. A document named by more than one put of
    // the batch keeps one statement per put, in order, so the second write of it succeeds or fails exactly
    // as it would on its own (a grouped statement would see neither the other's effect nor its order).
    const creates = new Map<string, number[]>();
    const updates = new Map<string, number[]>();
    const seen = new Set<string>();
    const repeated = new Set<string>();
    const putKeys = batch.puts.map((p) => `${p.collection}\u0000${p.id}`);
    for (const key of putKeys) {
      if (seen.has(key)) repeated.add(key);
      seen.add(key);
    }
    const singles: number[] = [];
    batch.puts.forEach((p, i) => {
      const single = repeated.has(putKeys[i] ?? '');
      if (!single && p.expectVersion === 0) groupOf(creates, p.collection).push(i);
      else if (!single && p.expectVersion !== undefined && p.expectVersion > 0) groupOf(updates, p.collection).push(i);
      else singles.push(i);
    });

    // 1. The reads ahead, before any write of the transaction.
    const versions = new Map<string, Map<string, number>>(); // collection → id → version
    for (const collection of careful ? new Set([...creates.keys(), ...updates.keys()]) : []) {
      const found = new Map<string, number>();
      versions.set(collection, found);
      const ids = [...(creates.get(collection) ?? []), ...(updates.get(collection) ?? [])].map(
        (i) => batch.puts[i]?.id ?? '',
      );
      for (const chunk of slices(ids, ROWS_PER_READ)) {
        add(
          {
            sql: `SELECT id, version FROM documents WHERE coll = ? AND id IN (${chunk.map(() => '?').join(',')})`,
            args: [collection, ...chunk],
          },
          (rs) => {
            for (const row of rs?.rows ?? []) found.set(String(row.id), Number(row.version));
          },
        );
      }
    }
    const appendKeys = batch.appends.map((a) => `${a.log}\u0000${a.id}`);
    const appendCount = new Map<string, number>();
    for (const k of appendKeys) appendCount.set(k, (appendCount.get(k) ?? 0) + 1);
    const logged = new Map<string, Set<string>>(); // log → ids present before the batch
    const groupedAppends = new Map<string, string[]>();
    batch.appends.forEach((a, i) => {
      if ((appendCount.get(appendKeys[i] ?? '') ?? 0) === 1) groupOf(groupedAppends, a.log).push(a.id);
    });
    for (const [log, ids] of careful && !batch.appendsUnread ? groupedAppends : []) {
      const present = new Set<string>();
      logged.set(log, present);
      for (const chunk of slices(ids, ROWS_PER_READ)) {
        add(
          {
            sql: `SELECT id FROM logs WHERE log = ? AND id IN (${chunk.map(() => '?').join(',')})`,
            args: [log, ...chunk],
          },
          (rs) => {
            for (const row of rs?.rows ?? []) present.add(String(row.id));
          },
        );
      }
    }

    // 2. The writes.
    for (const i of singles) {
      const p = batch.puts[i];
      if (!p) continue;
      add(putStatement(p.collection, p.id, p.value, p.expectVersion), (rs) => {
        puts[i] = putOutcome(rs, p.expectVersion);
      });
    }
    for (const [collection, indexes] of creates) {
      const found = versions.get(collection);
      for (const group of slices(indexes, ROWS_PER_INSERT)) {
        const args: InValue[] = [];
        for (const i of group) {
          const p = batch.puts[i];
          if (p) args.push(collection, p.id, JSON.stringify(p.value));
        }
        grouped = true;
        add(
          {
            // Optimistic: a conflict fails the statement (and the transaction) instead of being skipped.
            sql: `INSERT INTO documents (coll, id, value, version) VALUES ${group.map(() => '(?, ?, ?, 1)').join(', ')}
                  ${careful ? 'ON CONFLICT (coll, id) DO NOTHING' : ''}`,
            args,
          },
          (rs) => {
            let expected = 0;
            for (const i of group) {
              const absent = !careful || !found?.has(batch.puts[i]?.id ?? '');
              puts[i] = absent ? 1 : null;
              if (absent) expected++;
            }
            checks.push(() => agree(rs, expected, `creates in ${collection}`));
          },
        );
      }
    }
    for (const [collection, indexes] of updates) {
      const found = versions.get(collection);
      for (const group of slices(indexes, ROWS_PER_INSERT)) {
        const args: InValue[] = [];
        for (const i of group) {
          const p = batch.puts[i];
          if (p) args.push(p.id, JSON.stringify(p.value), p.expectVersion ?? 0);
        }
        args.push(collection); // the last `?`, after the VALUES rows
        // VALUES columns are column1… in SQLite; (coll, id) is unique, so each row matches at most once.
        add(
          {
            sql: `UPDATE documents SET value = v.column2, version = documents.version + 1
                  FROM (VALUES ${group.map(() => '(?, ?, ?)').join(', ')}) AS v
                  WHERE documents.coll = ? AND documents.id = v.column1 AND documents.version = v.column3`,
            args,
          },
          (rs) => {
            let expected = 0;
            for (const i of group) {
              const p = batch.puts[i];
              const matches = p !== undefined && (!careful || found?.get(p.id) === p.expectVersion);
              puts[i] = matches ? (p.expectVersion ?? 0) + 1 : null;
              if (matches) expected++;
            }
            checks.push(() => agree(rs, expected, `updates in ${collection}`));
          },
        );
        grouped = true;
        // Optimistic: every row must have matched its version, or this guard fails the transaction
        // (json() of a non-JSON text is an error; changes() counts the UPDATE just before).
        if (!careful)
          add(
            {
              sql: `SELECT CASE WHEN changes() = ? THEN 0 ELSE json('a conditional update lost its race') END`,
              args: [group.length],
            },
            () => {},
          );
      }
    }

    // Appends in the order given (a log's seq follows it): runs of one log go as one statement; a
    // repeated (log, id) in one batch keeps one statement per append, so only its first goes in.
    let run: number[] = [];
    const flushRun = () => {
      const group = run;
      run = [];
      const first = batch.appends[group[0] ?? -1];
      if (!first) return;
      const present = logged.get(first.log);
      const args: InValue[] = [];
      for (const i of group) {
        const a = batch.appends[i];
        if (a) args.push(a.log, a.id, JSON.stringify(a.value));
      }
      // Unread outcomes: an id already logged is skipped. Read ones: optimistic, a logged id fails the
      // statement; careful, skipped and known from the read ahead.
      const strict = !careful && !batch.appendsUnread;
      if (strict) grouped = true;
      add(
        {
          sql: `INSERT INTO logs (log, id, value) VALUES ${group.map(() => '(?, ?, ?)').join(', ')}
                ${strict ? '' : 'ON CONFLICT (log, id) DO NOTHING'}`,
          args,
        },
        (rs) => {
          if (batch.appendsUnread) return;
          let expected = 0;
          for (const i of group) {
            const absent = strict || !present?.has(batch.appends[i]?.id ?? '');
            appends[i] = absent;
            if (absent) expected++;
          }
          checks.push(() => agree(rs, expected, `appends to ${first.log}`));
        },
      );
    };
    batch.appends.forEach((a, i) => {
      if ((appendCount.get(appendKeys[i] ?? '') ?? 0) > 1) {
        flushRun();
        add(
          {
            sql: 'INSERT INTO logs (log, id, value) VALUES (?, ?, ?) ON CONFLICT (log, id) DO NOTHING',
            args: [a.log, a.id, JSON.stringify(a.value)],
          },
          (rs) => {
            appends[i] = rs?.rowsAffected === 1;
          },
        );
        return;
      }
      const runLog = batch.appends[run[0] ?? -1]?.log;
      if (runLog !== undefined && (runLog !== a.log || run.length >= ROWS_PER_INSERT)) flushRun();
      run.push(i);
    });
    flushRun();

    return {
      statements,
      readers,
      checks,
      grouped,
      outcome: () => ({ puts, appends: batch.appendsUnread ? [] : appends }),
    };
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
