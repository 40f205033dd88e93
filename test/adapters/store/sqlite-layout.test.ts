/**
 * The SQLite store's performance layout: the rowid `documents` table (with the one-time move out of the
 * older WITHOUT ROWID `docs` table) and multi-row inserts in writeBatch, which must give exactly the
 * outcomes one statement per write would.
 */
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createClient } from '@libsql/client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteDocStore } from '../../../shared/adapters/store/sqlite.js';
import { tempDir } from '../../helpers/tmp.js';

describe('SqliteDocStore layout', () => {
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => {
    tmp = tempDir();
  });
  afterEach(() => tmp.cleanup());

  it('keeps every document and version when the database has the older WITHOUT ROWID table', async () => {
    // Prepare: a database as the previous layout wrote it.
    const file = join(tmp.dir, 'old.db');
    const old = createClient({ url: pathToFileURL(file).href });
    await old.execute(`CREATE TABLE docs (coll TEXT NOT NULL, id TEXT NOT NULL, value TEXT NOT NULL,
      version INTEGER NOT NULL, PRIMARY KEY (coll, id)) WITHOUT ROWID`);
    await old.execute({ sql: 'INSERT INTO docs VALUES (?, ?, ?, ?)', args: ['cases', 'c1', '{"a":1}', 3] });
    await old.execute({ sql: 'INSERT INTO docs VALUES (?, ?, ?, ?)', args: ['findings', 'f1', '{"b":2}', 1] });
    old.close();
    // Act
    const store = await SqliteDocStore.open(file);
    const again = await SqliteDocStore.open(file);
    // Assess
    expect(await store.get('cases', 'c1')).toEqual({ id: 'c1', value: { a: 1 }, version: 3 });
    expect(await again.get('findings', 'f1')).toEqual({ id: 'f1', value: { b: 2 }, version: 1 });
    expect(await store.put('cases', 'c1', { a: 2 }, { expectVersion: 3 })).toBe(4);
    const check = createClient({ url: pathToFileURL(file).href });
    const tables = await check.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name");
    check.close();
    expect(tables.rows.map((r) => String(r.name))).not.toContain('docs');
    await store.close();
    await again.close();
  });

  it('gives one outcome per write in order when creates, updates and appends are mixed and repeated', async () => {
    // Prepare
    const store = await SqliteDocStore.open(join(tmp.dir, 'batch.db'));
    await store.put('cases', 'taken', { v: 0 });
    await store.append('events', 'seen', { v: 0 });
    // Act
    const out = await store.writeBatch({
      puts: [
        { collection: 'cases', id: 'new-1', value: { v: 1 }, expectVersion: 0 },
        { collection: 'cases', id: 'taken', value: { v: 1 }, expectVersion: 0 },
        { collection: 'findings', id: 'new-1', value: { v: 1 }, expectVersion: 0 },
        { collection: 'cases', id: 'twice', value: { v: 1 }, expectVersion: 0 },
        { collection: 'cases', id: 'twice', value: { v: 2 }, expectVersion: 0 },
        { collection: 'cases', id: 'taken', value: { v: 2 }, expectVersion: 1 },
        { collection: 'cases', id: 'absent', value: { v: 1 }, expectVersion: 5 },
      ],
      appends: [
        { log: 'events', id: 'a', value: 1 },
        { log: 'events', id: 'seen', value: 1 },
        { log: 'events', id: 'b', value: 1 },
        { log: 'events', id: 'b', value: 2 },
        { log: 'other', id: 'a', value: 1 },
      ],
    });
    // Assess
    expect(out.puts).toEqual([1, null, 1, 1, null, 2, null]);
    expect(out.appends).toEqual([true, false, true, false, true]);
    expect((await store.get('cases', 'twice'))?.value).toEqual({ v: 1 });
    expect((await store.get('cases', 'taken'))?.value).toEqual({ v: 2 });
    expect(await store.get('cases', 'absent')).toBeUndefined();
    expect((await store.readLog('events')).map((e) => [e.id, e.value])).toEqual([
      ['seen', { v: 0 }],
      ['a', 1],
      ['b', 1],
    ]);
    await store.close();
  });

  it('writes every document when one batch holds more creates than one statement takes', async () => {
    // Prepare
    const store = await SqliteDocStore.open(join(tmp.dir, 'many.db'));
    const puts = Array.from({ length: 450 }, (_, i) => ({
      collection: 'findings',
      id: `f-${i}`,
      value: { i },
      expectVersion: 0,
    }));
    // Act
    const out = await store.writeBatch({ puts, appends: [] });
    // Assess
    expect(out.puts.every((v) => v === 1)).toBe(true);
    expect((await store.getMany('findings', ['f-0', 'f-449'])).size).toBe(2);
    await store.close();
  });
});
