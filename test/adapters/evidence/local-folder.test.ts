/**
 * The local evidence folder makes a record durable before `put` returns: the record's text is synced before
 * the rename that names it, and the folder after the rename (a power loss cannot leave an empty file under a
 * record's name). A power loss cannot be staged in a test; the order of the file-system calls is what makes
 * the write durable, so that order is what is checked, through the real file system.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

const calls: string[] = [];

vi.mock('node:fs/promises', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs/promises')>();
  const name = (p: unknown) => String(p).split('/').pop() ?? '';
  return {
    ...fs,
    open: async (...args: Parameters<typeof fs.open>) => {
      const handle = await fs.open(...args);
      const sync = handle.sync.bind(handle);
      handle.sync = async () => {
        calls.push(`sync ${name(args[0])}`);
        return sync();
      };
      return handle;
    },
    rename: async (from: string, to: string) => {
      calls.push(`rename ${name(from)} -> ${name(to)}`);
      return fs.rename(from, to);
    },
  };
});

const { readFile, readdir } = await import('node:fs/promises');
const { LocalFolderEvidenceStore } = await import('../../../shared/adapters/evidence/local-folder.js');
const { tempDir } = await import('../../helpers/tmp.js');

const record = (hash: string) =>
  ({ hash, kind: 'test', caseKey: 'aws|r|t', at: '2026-12-07T00:00:00.000Z' }) as unknown as Parameters<
    InstanceType<typeof LocalFolderEvidenceStore>['put']
  >[0];

describe('local evidence folder durability', () => {
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => {
    tmp = tempDir();
    calls.length = 0;
  });
  afterEach(() => tmp.cleanup());

  it('syncs the record before renaming it into place and syncs the folder after, when a record is put', async () => {
    // Prepare
    const hash = 'a'.repeat(64);
    const store = new LocalFolderEvidenceStore(`${tmp.dir}/evidence`);
    // Act
    expect(await store.put(record(hash))).toBe('stored');
    // Assess: temporary file synced → renamed to <hash>.json → folder synced, in that order.
    const rename = calls.findIndex((c) => c.startsWith('rename ') && c.endsWith(`-> ${hash}.json`));
    expect(rename).toBeGreaterThan(0);
    const temporary = calls[rename]?.split(' ')[1] ?? '';
    expect(calls.slice(0, rename)).toContain(`sync ${temporary}`);
    expect(calls.slice(rename + 1)).toContain('sync evidence');
    expect(JSON.parse(await readFile(store.pathOf(hash), 'utf8'))).toMatchObject({ hash });
    expect((await readdir(`${tmp.dir}/evidence`)).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });

  it('syncs nothing when the record is already stored', async () => {
    // Prepare
    const hash = 'b'.repeat(64);
    const store = new LocalFolderEvidenceStore(`${tmp.dir}/evidence`);
    await store.put(record(hash));
    calls.length = 0;
    // Act
    expect(await store.put(record(hash))).toBe('exists');
    // Assess
    expect(calls).toEqual([]);
  });
});
