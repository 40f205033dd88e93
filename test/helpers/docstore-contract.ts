/** One behavioural contract for every DocStore adapter (memory, SQLite, DynamoDB). */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { Clock, DocStore } from '../../shared/core/ports.js';
import { mutateDoc } from '../../shared/core/store/docs.js';

/** A clock the test moves: the store compares expiries with it. */
export interface MovableClock extends Clock {
  advance(ms: number): void;
}

export const movableClock = (iso = '2026-11-20T10:00:00.000Z'): MovableClock => {
  let now = Date.parse(iso);
  return {
    now: () => new Date(now),
    advance: (ms) => {
      now += ms;
    },
  };
};

const HOUR = 3_600_000;

/** `open` makes an empty store that compares expiries with `clock`. */
export function docStoreContract(
  name: string,
  open: (clock: Clock) => Promise<{ store: DocStore; done: () => Promise<void> }>,
) {
  describe(`DocStore contract: ${name}`, () => {
    const withStore = async (fn: (s: DocStore, clock: MovableClock) => Promise<void>) => {
      const clock = movableClock();
      const { store, done } = await open(clock);
      try {
        await fn(store, clock);
      } finally {
        await done();
      }
    };
    const inHours = (clock: Clock, hours: number) => new Date(clock.now().getTime() + hours * HOUR);

    it('reads a document as absent once it expired, from get, getMany and list alike', () =>
      withStore(async (s, clock) => {
        // Prepare: a marker that expires in an hour, one that never does
        expect(await s.put('c', 'marker', { n: 1 }, { expectVersion: 0, expiresAt: inHours(clock, 1) })).toBe(1);
        await s.put('c', 'kept', { n: 2 });
        expect((await s.get('c', 'marker'))?.value).toEqual({ n: 1 });
        // Act
        clock.advance(2 * HOUR);
        // Assess
        expect(await s.get('c', 'marker')).toBeUndefined();
        expect([...(await s.getMany('c', ['marker', 'kept'])).keys()]).toEqual(['kept']);
        expect((await s.list('c')).map((d) => d.id)).toEqual(['kept']);
        expect((await s.list('c', { prefix: 'm' })).map((d) => d.id)).toEqual([]);
        expect((await s.list('c', { limit: 1 })).map((d) => d.id)).toEqual(['kept']);
      }));

    it('lets a create take an expired id again, at version 1, and refuses an update or a delete of it', () =>
      withStore(async (s, clock) => {
        // Prepare
        await s.put('c', 'm', { n: 1 }, { expectVersion: 0, expiresAt: inHours(clock, 1) });
        await s.put('c', 'm', { n: 2 }, { expectVersion: 1, expiresAt: inHours(clock, 1) });
        clock.advance(2 * HOUR);
        // Act / Assess: it is gone for a conditional update and a delete…
        expect(await s.put('c', 'm', { n: 3 }, { expectVersion: 2 })).toBeNull();
        expect(await s.delete('c', 'm', { expectVersion: 2 })).toBe(false);
        expect(await s.delete('c', 'm')).toBe(false);
        // …and a create makes it anew, unexpired
        expect(await s.put('c', 'm', { n: 4 }, { expectVersion: 0, expiresAt: inHours(clock, 1) })).toBe(1);
        expect(await s.get('c', 'm')).toEqual({ id: 'm', value: { n: 4 }, version: 1 });
        expect(await s.put('c', 'm', { n: 5 }, { expectVersion: 0 })).toBeNull();
      }));

    it('sets the expiry anew with every put: a later one extends it, one without it makes the document permanent', () =>
      withStore(async (s, clock) => {
        // Prepare
        await s.put('c', 'extended', {}, { expiresAt: inHours(clock, 1) });
        await s.put('c', 'extended', {}, { expiresAt: inHours(clock, 3) });
        await s.put('c', 'permanent', {}, { expectVersion: 0, expiresAt: inHours(clock, 1) });
        await s.put('c', 'permanent', {}, { expectVersion: 1 });
        await s.put('c', 'unconditional', {}, { expiresAt: inHours(clock, 1) });
        await s.put('c', 'unconditional', { again: true });
        await s.writeBatch({
          puts: [{ collection: 'c', id: 'batched', value: {}, expectVersion: 0, expiresAt: inHours(clock, 1) }],
          appends: [],
        });
        // Act
        clock.advance(2 * HOUR);
        // Assess
        expect((await s.list('c')).map((d) => d.id)).toEqual(['extended', 'permanent', 'unconditional']);
        clock.advance(2 * HOUR);
        expect((await s.list('c')).map((d) => d.id)).toEqual(['permanent', 'unconditional']);
      }));

    it('gives a marker written through mutateDoc its expiry', () =>
      withStore(async (s, clock) => {
        const schema = z.object({ n: z.number() });
        await mutateDoc(s, 'c', 'm', schema, () => ({ n: 1 }), { expiresAt: inHours(clock, 1) });
        clock.advance(2 * HOUR);
        const again = await mutateDoc(s, 'c', 'm', schema, (cur) => ({ n: (cur?.n ?? 0) + 1 }));
        expect(again).toMatchObject({ previous: undefined, value: { n: 1 }, version: 1 });
      }));

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
