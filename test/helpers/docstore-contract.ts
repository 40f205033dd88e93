/** One behavioural contract for every DocStore adapter (memory, SQLite, DynamoDB). */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { DocStore } from '../../shared/core/ports.js';
import { mutateDoc } from '../../shared/core/store/docs.js';

export function docStoreContract(name: string, open: () => Promise<{ store: DocStore; done: () => Promise<void> }>) {
  describe(`DocStore contract: ${name}`, () => {
    const withStore = async (fn: (s: DocStore) => Promise<void>) => {
      const { store, done } = await open();
      try {
        await fn(store);
      } finally {
        await done();
      }
    };

    it('creates only when absent and updates only at the expected version', () =>
      withStore(async (s) => {
        expect(await s.put('c', 'a', { n: 1 }, { expectVersion: 0 })).toBe(1);
        expect(await s.put('c', 'a', { n: 2 }, { expectVersion: 0 })).toBeNull();
        expect(await s.put('c', 'a', { n: 2 }, { expectVersion: 5 })).toBeNull();
        expect(await s.put('c', 'a', { n: 2 }, { expectVersion: 1 })).toBe(2);
        expect(await s.get('c', 'a')).toEqual({ id: 'a', value: { n: 2 }, version: 2 });
        expect(await s.put('c', 'a', { n: 3 })).toBe(3);
        expect(await s.get('c', 'missing')).toBeUndefined();
      }));

    it('lists by prefix in id order and pages with after/limit', () =>
      withStore(async (s) => {
        for (const id of ['b:2', 'a:1', 'b:1', 'b:3', 'b%x']) await s.put('c', id, { id });
        await s.put('other', 'b:9', {});
        expect((await s.list('c', { prefix: 'b:' })).map((d) => d.id)).toEqual(['b:1', 'b:2', 'b:3']);
        expect((await s.list('c', { after: 'b:1', limit: 2 })).map((d) => d.id)).toEqual(['b:2', 'b:3']);
        expect((await s.list('c')).length).toBe(5);
      }));

    it('deletes conditionally', () =>
      withStore(async (s) => {
        await s.put('c', 'a', {});
        expect(await s.delete('c', 'a', { expectVersion: 7 })).toBe(false);
        expect(await s.delete('c', 'a', { expectVersion: 1 })).toBe(true);
        expect(await s.delete('c', 'a')).toBe(false);
      }));

    it('appends to a log once per id and reads in order', () =>
      withStore(async (s) => {
        expect(await s.append('events', 'e1', { n: 1 })).toBe(true);
        expect(await s.append('events', 'e1', { n: 1 })).toBe(false);
        expect(await s.append('events', 'e2', { n: 2 })).toBe(true);
        const all = await s.readLog('events');
        expect(all.map((e) => e.id)).toEqual(['e1', 'e2']);
        expect((await s.readLog('events', { after: all[0]?.seq ?? 0 })).map((e) => e.id)).toEqual(['e2']);
      }));

    it('gets many and writes a batch where each put stands on its own condition', () =>
      withStore(async (s) => {
        await s.put('c', 'x', { v: 1 });
        const got = await s.getMany('c', ['x', 'y']);
        expect([...got.keys()]).toEqual(['x']);
        const r = await s.writeBatch({
          puts: [
            { collection: 'c', id: 'x', value: { v: 2 }, expectVersion: 9 },
            { collection: 'c', id: 'y', value: { v: 1 }, expectVersion: 0 },
          ],
          appends: [{ log: 'l', id: 'once', value: {} }],
        });
        expect(r).toEqual({ puts: [null, 1], appends: [true] });
        expect((await s.get('c', 'x'))?.value).toEqual({ v: 1 });
      }));

    it('writes a batch create at version 1 and a batch update of version n at n + 1, as getMany then reads them', () =>
      withStore(async (s) => {
        // The ingest names this version on the events it publishes ahead of the batch (pipeline/announced.ts).
        const created = await s.writeBatch({
          puts: [{ collection: 'c', id: 'x', value: { n: 1 }, expectVersion: 0 }],
          appends: [],
        });
        const read = (await s.getMany('c', ['x'])).get('x')?.version ?? 0;
        const updated = await s.writeBatch({
          puts: [{ collection: 'c', id: 'x', value: { n: 2 }, expectVersion: read }],
          appends: [],
        });
        expect(created.puts).toEqual([1]);
        expect(updated.puts).toEqual([read + 1]);
        expect((await s.getMany('c', ['x'])).get('x')?.version).toBe(2);
      }));

    it('serializes concurrent read-modify-write through mutateDoc (no lost update)', () =>
      withStore(async (s) => {
        const schema = z.object({ n: z.number() });
        await Promise.all(
          Array.from({ length: 20 }, () => mutateDoc(s, 'c', 'counter', schema, (cur) => ({ n: (cur?.n ?? 0) + 1 }))),
        );
        expect((await s.get('c', 'counter'))?.value).toEqual({ n: 20 });
      }));
  });
}
