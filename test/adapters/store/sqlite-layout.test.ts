/**
 * The SQLite store's layout and write batches: the rowid `documents` table (with the one-time move out of
 * the older WITHOUT ROWID `docs` table), the page size, and writeBatch's outcomes, one per write, in order.
 */
import { join } from 'node:path';
import Database from 'libsql';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteDocStore } from '../../../shared/adapters/store/sqlite.js';
import type { Clock } from '../../../shared/core/ports.js';
import { movableClock } from '../../helpers/docstore-contract.js';
import { tempDir } from '../../helpers/tmp.js';

const inAnHour = (clock: Clock) => new Date(clock.now().getTime() + 3_600_000);

/** The documents in the file, expired or not (what is on disk, not what the store reads). */
function rowsIn(file: string): number {
  const db = new Database(file);
  try {
    return Number((db.prepare('SELECT count(*) AS n FROM documents').get() as { n: unknown }).n);
  } finally {
    db.close();
  }
}

describe('SqliteDocStore layout', () => {
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => {
    tmp = tempDir();
  });
  afterEach(() => tmp.cleanup());

  it('keeps every document and version when the database has the older WITHOUT ROWID table', async () => {
    // Prepare: a database as the previous layout wrote it.
    const file = join(tmp.dir, 'old.db');
    const old = new Database(file);
    old.exec(`CREATE TABLE docs (coll TEXT NOT NULL, id TEXT NOT NULL, value TEXT NOT NULL,
      version INTEGER NOT NULL, PRIMARY KEY (coll, id)) WITHOUT ROWID`);
    old.prepare('INSERT INTO docs VALUES (?, ?, ?, ?)').run('cases', 'c1', '{"a":1}', 3);
    old.prepare('INSERT INTO docs VALUES (?, ?, ?, ?)').run('findings', 'f1', '{"b":2}', 1);
    old.close();
    // Act
    const store = await SqliteDocStore.open(file);
    const again = await SqliteDocStore.open(file);
    // Assess
    expect(await store.get('cases', 'c1')).toEqual({ id: 'c1', value: { a: 1 }, version: 3 });
    expect(await again.get('findings', 'f1')).toEqual({ id: 'f1', value: { b: 2 }, version: 1 });
    expect(await store.put('cases', 'c1', { a: 2 }, { expectVersion: 3 })).toBe(4);
    const check = new Database(file);
    const tables = check.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all();
    check.close();
    expect(tables.map((r) => String((r as { name: unknown }).name))).not.toContain('docs');
    await store.close();
    await again.close();
  });

  it('opens a database file made before documents could expire, keeps its documents permanent and expires new ones', async () => {
    // Prepare: the `documents` table as the previous layout made it (no expires column), from two openers at once
    const file = join(tmp.dir, 'before-expiry.db');
    const old = new Database(file);
    old.exec(`CREATE TABLE documents (coll TEXT NOT NULL, id TEXT NOT NULL, value TEXT NOT NULL,
      version INTEGER NOT NULL, UNIQUE (coll, id))`);
    old.prepare('INSERT INTO documents VALUES (?, ?, ?, ?)').run('ticket-once', 'old-marker', '{"a":1}', 2);
    old.close();
    const clock = movableClock();
    // Act
    const [store, again] = await Promise.all([
      SqliteDocStore.open(file, { clock }),
      SqliteDocStore.open(file, { clock }),
    ]);
    const created = await store.put(
      'ticket-once',
      'new-marker',
      { b: 1 },
      { expectVersion: 0, expiresAt: inAnHour(clock) },
    );
    clock.advance(2 * 3_600_000);
    // Assess
    expect(await again.get('ticket-once', 'old-marker')).toEqual({ id: 'old-marker', value: { a: 1 }, version: 2 });
    expect(created).toBe(1);
    expect(await store.get('ticket-once', 'new-marker')).toBeUndefined();
    expect((await again.list('ticket-once')).map((d) => d.id)).toEqual(['old-marker']);
    await store.close();
    await again.close();
  });

  it('deletes the expired documents when the file is opened, and a few at a time as documents with an expiry are written', async () => {
    // Prepare: 300 markers that expire in an hour, and one document that never does
    const file = join(tmp.dir, 'prune.db');
    const clock = movableClock();
    const store = await SqliteDocStore.open(file, { clock });
    for (let i = 0; i < 300; i++) await store.put('ticket-once', `m-${i}`, {}, { expiresAt: inAnHour(clock) });
    await store.put('cases', 'kept', {});
    clock.advance(2 * 3_600_000);
    // Act: 64 more markers (the writes that prune), then the file opened again
    for (let i = 0; i < 64; i++) await store.put('ticket-once', `n-${i}`, {}, { expiresAt: inAnHour(clock) });
    const afterWrites = rowsIn(file);
    clock.advance(2 * 3_600_000);
    const reopened = await SqliteDocStore.open(file, { clock });
    // Assess: the 64th expiring write deleted 256 of the 300; opening, the other 44 and the 64
    expect(afterWrites).toBe(301 + 64 - 256);
    expect(rowsIn(file)).toBe(1);
    expect(await reopened.get('cases', 'kept')).toMatchObject({ version: 1 });
    await store.close();
    await reopened.close();
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

  it('writes every document of a batch of 450 creates', async () => {
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

  it('updates exactly the documents whose version matches in a batch of 461 conditional updates', async () => {
    // Prepare: 450 cases and 10 findings at version 1; every third case is then bumped to version 2.
    const store = await SqliteDocStore.open(join(tmp.dir, 'updates.db'));
    const ids = Array.from({ length: 450 }, (_, i) => `c-${i}`);
    await store.writeBatch({
      puts: [
        ...ids.map((id) => ({ collection: 'cases', id, value: { n: 0 }, expectVersion: 0 })),
        ...ids.slice(0, 10).map((id) => ({ collection: 'findings', id, value: { n: 0 }, expectVersion: 0 })),
      ],
      appends: [],
    });
    for (const id of ids.filter((_, i) => i % 3 === 0)) await store.put('cases', id, { n: 1 }, { expectVersion: 1 });
    // Act: updates expecting version 1 everywhere, and one for a document that does not exist.
    const out = await store.writeBatch({
      puts: [
        ...ids.map((id) => ({ collection: 'cases', id, value: { n: 9 }, expectVersion: 1 })),
        ...ids.slice(0, 10).map((id) => ({ collection: 'findings', id, value: { n: 9 }, expectVersion: 1 })),
        { collection: 'cases', id: 'never-made', value: { n: 9 }, expectVersion: 1 },
      ],
      appends: [],
    });
    // Assess: the bumped third lost (null) and kept its value; the rest went to version 2.
    expect(out.puts.slice(0, 450)).toEqual(ids.map((_, i) => (i % 3 === 0 ? null : 2)));
    expect(out.puts.slice(450)).toEqual([...Array.from({ length: 10 }, () => 2), null]);
    const after = await store.getMany('cases', ['c-0', 'c-1', 'c-449']);
    expect(after.get('c-0')).toMatchObject({ value: { n: 1 }, version: 2 });
    expect(after.get('c-1')).toMatchObject({ value: { n: 9 }, version: 2 });
    expect(after.get('c-449')).toMatchObject({ value: { n: 9 }, version: 2 });
    expect((await store.get('findings', 'c-9'))?.value).toEqual({ n: 9 });
    expect(await store.get('cases', 'never-made')).toBeUndefined();
    await store.close();
  });

  it('writes the rest of a batch and fails only the conflicting writes when a create or append meets an existing id', async () => {
    // Prepare: a document and a log entry another writer made.
    const store = await SqliteDocStore.open(join(tmp.dir, 'conflict.db'));
    await store.put('findings', 'theirs', { by: 'them' });
    await store.append('events', 'theirs', { by: 'them' });
    // Act
    const out = await store.writeBatch({
      puts: [
        { collection: 'findings', id: 'mine-1', value: { by: 'me' }, expectVersion: 0 },
        { collection: 'findings', id: 'theirs', value: { by: 'me' }, expectVersion: 0 },
        { collection: 'findings', id: 'mine-2', value: { by: 'me' }, expectVersion: 0 },
      ],
      appends: [
        { log: 'events', id: 'theirs', value: { by: 'me' } },
        { log: 'events', id: 'mine', value: { by: 'me' } },
      ],
    });
    // Assess
    expect(out).toEqual({ puts: [1, null, 1], appends: [false, true] });
    const docs = await store.getMany('findings', ['mine-1', 'theirs', 'mine-2']);
    expect([...docs.values()].map((d) => [d.id, d.value, d.version])).toEqual(
      expect.arrayContaining([
        ['mine-1', { by: 'me' }, 1],
        ['theirs', { by: 'them' }, 1],
        ['mine-2', { by: 'me' }, 1],
      ]),
    );
    expect((await store.readLog('events')).map((e) => [e.id, e.value])).toEqual([
      ['theirs', { by: 'them' }],
      ['mine', { by: 'me' }],
    ]);
    await store.close();
  });

  it('appends once per id and reports no outcomes when the caller says it does not read them', async () => {
    // Prepare
    const store = await SqliteDocStore.open(join(tmp.dir, 'quiet.db'));
    await store.append('events', 'seen', { v: 0 });
    // Act
    const out = await store.writeBatch({
      puts: [],
      appends: [
        { log: 'events', id: 'seen', value: { v: 1 } },
        { log: 'events', id: 'new', value: { v: 1 } },
        { log: 'events', id: 'new', value: { v: 2 } },
      ],
      appendsUnread: true,
    });
    // Assess
    expect(out.appends).toEqual([]);
    expect((await store.readLog('events')).map((e) => [e.id, e.value])).toEqual([
      ['seen', { v: 0 }],
      ['new', { v: 1 }],
    ]);
    await store.close();
  });

  it("reads another connection's later writes through the statements it prepared and ran before", async () => {
    // Prepare: two stores on one file (two local workers); the first reads through each of its statements.
    const file = join(tmp.dir, 'shared.db');
    const mine = await SqliteDocStore.open(file);
    const theirs = await SqliteDocStore.open(file);
    await mine.put('cases', 'a', { v: 1 });
    await mine.put('cases', 'b', { v: 1 });
    await mine.append('events', 'e1', 1);
    await mine.get('cases', 'a');
    await mine.getMany('cases', ['a', 'b']);
    await mine.list('cases', { limit: 1 });
    await mine.readLog('events', { limit: 1 });
    // Act
    await theirs.put('cases', 'a', { v: 2 }, { expectVersion: 1 });
    await theirs.append('events', 'e2', 2);
    // Assess: no statement kept the snapshot it first read.
    expect((await mine.get('cases', 'a'))?.version).toBe(2);
    expect((await mine.getMany('cases', ['a', 'b'])).get('a')?.version).toBe(2);
    expect((await mine.list('cases', { limit: 1 }))[0]?.value).toEqual({ v: 2 });
    expect((await mine.readLog('events')).map((e) => e.id)).toEqual(['e1', 'e2']);
    expect(await mine.put('cases', 'a', { v: 3 }, { expectVersion: 2 })).toBe(3);
    await mine.close();
    await theirs.close();
  });

  it('makes a new database with 16 KB pages and leaves the page size of an existing one alone', async () => {
    // Prepare: a database another writer made with the default 4 KB pages.
    const oldFile = join(tmp.dir, 'old-pages.db');
    const old = new Database(oldFile);
    old.exec('CREATE TABLE t (x)');
    old.close();
    // Act
    const fresh = await SqliteDocStore.open(join(tmp.dir, 'fresh.db'));
    const existing = await SqliteDocStore.open(oldFile);
    await existing.put('cases', 'c', { ok: true });
    // Assess
    const pageSize = (file: string) => {
      const c = new Database(file);
      const row = c.prepare('PRAGMA page_size').get() as { page_size: unknown };
      c.close();
      return Number(row.page_size);
    };
    expect(pageSize(join(tmp.dir, 'fresh.db'))).toBe(16384);
    expect(pageSize(oldFile)).toBe(4096);
    expect((await existing.get('cases', 'c'))?.value).toEqual({ ok: true });
    await fresh.close();
    await existing.close();
  });
});
