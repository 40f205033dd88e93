import { execFileSync } from 'node:child_process';
import { readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalFolderEvidenceStore } from '../../shared/adapters/evidence/local-folder.js';
import { MemoryDocStore } from '../../shared/adapters/store/memory.js';
import { caseStory, exportCase, verifyChains } from '../../shared/core/evidence/audit.js';
import {
  appendEvidence,
  caseHeadId,
  GLOBAL_HEAD_ID,
  HEADS,
  readCaseHead,
  readGlobalHead,
} from '../../shared/core/evidence/chain.js';
import {
  type EvidenceDraft,
  type EvidenceRecord,
  hashRecord,
  sealRecord,
  type UnsealedRecord,
} from '../../shared/core/evidence/record.js';
import { canonicalJson, canonicalJsonV1, sha256Hex } from '../../shared/core/util/hash.js';
import { tempDir } from '../helpers/tmp.js';
import { fixedClock } from '../verify/helpers.js';

const draft = (caseKey: string, step: EvidenceDraft['step'], n = 0): EvidenceDraft => ({
  caseKey,
  findingIds: ['0'.repeat(64)],
  owner: 'web-lead@acme.example',
  step,
  actor: { kind: 'function', id: 'closeloop:test' },
  eventId: `e-${caseKey}-${step}-${n}`,
  at: '2026-11-20T10:00:00.000Z',
  summary: `${step} ${n}`,
  calls: [{ api: 's3:PutPublicAccessBlock', requestId: `REQ${n}`, outcome: 'made' }],
  before: { blockPublicAcls: false },
  after: { blockPublicAcls: true },
  verdict: null,
  detail: { n },
});

/** A draft whose objects have integer-like keys (tags, properties), astral and high-BMP keys and a DEL. */
const tagged = (caseKey: string, step: EvidenceDraft['step'], n = 0): EvidenceDraft => ({
  ...draft(caseKey, step, n),
  before: { allowBlobPublicAccess: true, tags: { '2024': 'budget', '9': 'nine', '10': 'ten', env: 'prod' } },
  after: { allowBlobPublicAccess: false, note: 'label\x7f', tags: { '2024': 'budget', '9': 'nine', '10': 'ten' } },
  detail: { n, properties: { '10': 'b', '9': 'a', '\u{1F600}': 'astral', '\uFB01': 'ligature' } },
});

const withoutHash = (r: EvidenceRecord): UnsealedRecord => {
  const { hash: _hash, ...rest } = r;
  return rest;
};

describe('evidence chain on a local folder', () => {
  let dir: string;
  let cleanup: () => void;
  let evidence: LocalFolderEvidenceStore;
  let store: MemoryDocStore;
  const deps = () => ({ store, evidence, clock: fixedClock() });

  beforeEach(() => {
    ({ dir, cleanup } = tempDir('closeloop-evidence-'));
    evidence = new LocalFolderEvidenceStore(dir);
    store = new MemoryDocStore();
  });
  afterEach(() => cleanup());

  async function writeSix(): Promise<EvidenceRecord[]> {
    const out: EvidenceRecord[] = [];
    for (let i = 0; i < 6; i++)
      out.push((await appendEvidence(deps(), draft(i % 2 ? 'case-b' : 'case-a', 'apply', i))).record);
    return out;
  }

  it('links each record to its case predecessor and the global predecessor when appended in turn', async () => {
    // Act
    const rs = await writeSix();
    // Assess
    expect(rs.map((r) => r.seq)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(rs[0]?.prevGlobalHash).toBeNull();
    expect(rs[1]?.prevGlobalHash).toBe(rs[0]?.hash);
    expect(rs[2]?.prevCaseHash).toBe(rs[0]?.hash);
    expect(rs[3]?.prevCaseHash).toBe(rs[1]?.hash);
    expect(rs.every((r) => hashRecord(r) === r.hash)).toBe(true);
    expect((await readCaseHead(store, 'case-a'))?.hash).toBe(rs[4]?.hash);
    expect((await readGlobalHead(store))?.hash).toBe(rs[5]?.hash);
    expect(await verifyChains(evidence, { store })).toMatchObject({ ok: true, records: 6, cases: 2 });
  });

  it('refuses to overwrite a stored record when the same hash is put again', async () => {
    // Prepare
    const [r] = await writeSix();
    if (!r) throw new Error('no record');
    // Act
    const second = await evidence.put(r);
    // Assess
    expect(second).toBe('exists');
  });

  it('names the edited record when a file is edited by hand', async () => {
    // Prepare
    const rs = await writeSix();
    const victim = rs[2];
    if (!victim) throw new Error('no record');
    const path = evidence.pathOf(victim.hash);
    const edited = JSON.parse(await readFile(path, 'utf8'));
    edited.verdict = 'verified';
    await writeFile(path, JSON.stringify(edited));
    // Act
    const check = await verifyChains(evidence, { store });
    // Assess
    expect(check.ok).toBe(false);
    expect(check.firstBroken).toMatchObject({ hash: victim.hash, caseKey: 'case-a' });
    expect(check.firstBroken?.reason).toMatch(/^edited/);
  });

  it('names the edited record when a hand edit adds members named __proto__', async () => {
    // Prepare
    const rs = await writeSix();
    const victim = rs[2];
    if (!victim) throw new Error('no record');
    const path = evidence.pathOf(victim.hash);
    const text = JSON.stringify(JSON.parse(await readFile(path, 'utf8')))
      .replace('"after":{', '"after":{"__proto__":{"blockPublicAcls":false},')
      .replace('"detail":{', '"detail":{"__proto__":{"n":0},');
    await writeFile(path, text);
    // Act
    const check = await verifyChains(evidence, { store });
    // Assess
    expect(check.ok).toBe(false);
    expect(check.firstBroken).toMatchObject({ hash: victim.hash, caseKey: 'case-a' });
    expect(check.firstBroken?.reason).toMatch(/^edited/);
  });

  it('detects a deleted record in the middle through the dangling links', async () => {
    // Prepare
    const rs = await writeSix();
    await rm(evidence.pathOf(rs[2]?.hash ?? ''));
    // Act
    const check = await verifyChains(evidence, { store });
    // Assess
    expect(check.ok).toBe(false);
    expect(check.firstBroken?.hash).toBe(rs[3]?.hash);
    expect(check.firstBroken?.reason).toMatch(/missing \(deleted\)/);
    expect(check.problems.some((p) => p.hash === rs[4]?.hash && /prevCaseHash/.test(p.reason))).toBe(true);
  });

  it('detects a deleted newest record through the heads', async () => {
    // Prepare
    const rs = await writeSix();
    await rm(evidence.pathOf(rs[5]?.hash ?? ''));
    // Act
    const check = await verifyChains(evidence, { store });
    // Assess
    expect(check.ok).toBe(false);
    expect(check.firstBroken).toMatchObject({ hash: rs[5]?.hash });
    expect(check.firstBroken?.reason).toMatch(/global head is record #6/);
  });

  it('detects a reordered pair even when the forger re-seals both records', async () => {
    // Prepare: swap the positions of records 3 and 4 and recompute their hashes (a forger who knows the algorithm).
    const rs = await writeSix();
    const [a, b] = [rs[2], rs[3]];
    if (!a || !b) throw new Error('no records');
    const { hash: _ha, ...ua } = a;
    const { hash: _hb, ...ub } = b;
    const fa = sealRecord({ ...ua, seq: b.seq });
    const fb = sealRecord({ ...ub, seq: a.seq });
    await rm(evidence.pathOf(a.hash));
    await rm(evidence.pathOf(b.hash));
    await evidence.put(fa);
    await evidence.put(fb);
    // Act
    const check = await verifyChains(evidence);
    // Assess
    expect(check.ok).toBe(false);
    expect(check.firstBroken?.hash).toBe(fb.hash);
    expect(check.firstBroken?.reason).toMatch(/prevGlobalHash .* does not name the record before it/);
  });

  it('detects a pair swapped between files when the records are not re-sealed', async () => {
    // Prepare
    const rs = await writeSix();
    const [pa, pb] = [evidence.pathOf(rs[1]?.hash ?? ''), evidence.pathOf(rs[2]?.hash ?? '')];
    const [ta, tb] = [await readFile(pa, 'utf8'), await readFile(pb, 'utf8')];
    await writeFile(pa, tb);
    await writeFile(pb, ta);
    // Act
    const check = await verifyChains(evidence);
    // Assess
    expect(check.ok).toBe(false);
    expect(check.firstBroken?.reason).toMatch(/stored under .* but its content is record/);
  });

  it('keeps one unforked chain per case and globally when 40 writers append at once', async () => {
    // Act
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) => appendEvidence(deps(), draft(`case-${i % 3}`, 'plan', i))),
    );
    // Assess
    const seqs = results.map((r) => r.record.seq).sort((x, y) => x - y);
    expect(seqs).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    const check = await verifyChains(evidence, { store });
    expect(check).toMatchObject({ ok: true, records: 40, cases: 3 });
  });

  it('writes one record when the same idempotency key is appended twice at once', async () => {
    // Act
    const [x, y] = await Promise.all([
      appendEvidence(deps(), draft('case-a', 'decision'), 'event-1:decision'),
      appendEvidence(deps(), draft('case-a', 'decision'), 'event-1:decision'),
    ]);
    // Assess
    expect(x?.record.hash).toBe(y?.record.hash);
    expect([x?.created, y?.created].sort()).toEqual([false, true]);
    expect((await evidence.listAll()).length).toBe(1);
  });

  it('completes a record whose writer crashed after taking the head when the next writer appends', async () => {
    // Prepare: a writer won the head but never stored its record (simulated by deleting it).
    const first = (await appendEvidence(deps(), draft('case-a', 'plan', 1))).record;
    await rm(evidence.pathOf(first.hash));
    await store.delete('evidence-heads', 'case:case-a');
    // Act
    await appendEvidence(deps(), draft('case-a', 'apply', 2));
    // Assess
    expect(await verifyChains(evidence, { store })).toMatchObject({ ok: true, records: 2 });
  });

  it('completes a record file a crash cut short, and keeps one edited otherwise for verify to report', async () => {
    // Prepare: files as a writer killed mid-write leaves them (empty, half), and one edited by hand
    const rs = await writeSix();
    const [empty, half, edited] = [rs[1], rs[3], rs[4]];
    if (!empty || !half || !edited) throw new Error('no records');
    const full = await readFile(evidence.pathOf(half.hash), 'utf8');
    await writeFile(evidence.pathOf(empty.hash), '');
    await writeFile(evidence.pathOf(half.hash), full.slice(0, full.length >> 1));
    const forged = (await readFile(evidence.pathOf(edited.hash), 'utf8')).replace('"apply 4"', '"apply 9"');
    await writeFile(evidence.pathOf(edited.hash), forged);
    // Act
    const outcomes = await Promise.all([empty, half, edited].map((r) => evidence.put(r)));
    // Assess
    expect(outcomes).toEqual(['stored', 'stored', 'exists']);
    expect(await readFile(evidence.pathOf(half.hash), 'utf8')).toBe(full);
    expect(await readFile(evidence.pathOf(edited.hash), 'utf8')).toBe(forged);
    const check = await verifyChains(evidence, { store });
    expect(check.problems.map((p) => p.hash)).toEqual([edited.hash]);
  });

  it('stores a record whole and leaves no temporary file when 20 writers put it at once', async () => {
    // Prepare
    const [r] = await writeSix();
    if (!r) throw new Error('no record');
    await rm(evidence.pathOf(r.hash));
    // Act
    await Promise.all(Array.from({ length: 20 }, () => evidence.put(r)));
    const again = await evidence.put(r);
    // Assess
    expect(again).toBe('exists');
    expect(JSON.parse(await readFile(evidence.pathOf(r.hash), 'utf8'))).toEqual(r);
    expect((await readdir(dir)).filter((name) => !/^[0-9a-f]{64}\.json$/.test(name))).toEqual([]);
    expect(await verifyChains(evidence, { store })).toMatchObject({ ok: true, records: 6 });
  });

  it("sweeps a killed writer's old temporary files on a new store's first write, and keeps a fresh one", async () => {
    // Prepare: two files as a writer killed between write and rename leaves them, an hour and a second old.
    const rs = await writeSix();
    const hash = rs[0]?.hash ?? '';
    const old = join(dir, `.${hash}.4242.0f8fad5b-d9cb-469f-a165-70867728950e.tmp`);
    const fresh = join(dir, `.${hash}.4243.7c9e6679-7425-40de-944b-e07fc1f90ae7.tmp`);
    const notOurs = join(dir, 'notes.tmp');
    for (const f of [old, fresh, notOurs]) await writeFile(f, '{"half":');
    const hourAgo = new Date(Date.now() - 3_600_000);
    await utimes(old, hourAgo, hourAgo);
    await utimes(notOurs, hourAgo, hourAgo);
    const next = new LocalFolderEvidenceStore(dir);
    // Act
    await next.put(rs[1] as EvidenceRecord);
    // Assess
    const names = await readdir(dir);
    expect(names).not.toContain(`.${hash}.4242.0f8fad5b-d9cb-469f-a165-70867728950e.tmp`);
    expect(names).toContain(`.${hash}.4243.7c9e6679-7425-40de-944b-e07fc1f90ae7.tmp`);
    expect(names).toContain('notes.tmp');
    expect(await next.sweep(0)).toBe(1);
    expect(await verifyChains(evidence, { store })).toMatchObject({ ok: true, records: 6 });
  });

  it('tells the story and exports a bundle an auditor can check with jq and sha256sum', async () => {
    // Prepare
    await writeSix();
    // Act
    const story = await caseStory(evidence, 'case-a');
    const json = JSON.parse(await exportCase(evidence, 'case-a', 'json'));
    const md = await exportCase(evidence, 'case-a', 'md');
    // Assess
    expect(story).toContain('3 evidence records; chain intact');
    expect(story).toContain('call s3:PutPublicAccessBlock request REQ0: made');
    expect(json.records).toHaveLength(3);
    expect(json.chain.ok).toBe(true);
    expect(md).toContain('jq -jcS');
    expect(md).toContain('| 3 |');
  });

  it("says BROKEN in the story and the export when a case's newest record is deleted (its links stay intact)", async () => {
    // Prepare: case-a holds records #1..#3
    const rs = await writeSix();
    // Act
    await rm(evidence.pathOf(rs[4]?.hash ?? ''));
    const story = await caseStory(evidence, 'case-a', store);
    const json = JSON.parse(await exportCase(evidence, 'case-a', 'json', store));
    const md = await exportCase(evidence, 'case-a', 'md', store);
    // Assess
    expect(story).toContain('chain BROKEN: case head is record #3');
    expect(json.chain.ok).toBe(false);
    expect(json.chain.problems.join(' ')).toContain('(deleted)');
    expect(md).toContain('**BROKEN**');
  });

  it('exports Markdown in which text from findings and people renders as text: no image, link, HTML or table break', async () => {
    // Prepare: a summary quoting a Jira comment, an actor and a verdict that try Markdown and HTML
    const hostile: EvidenceDraft = {
      ...draft('case-`x`|<b>', 'verify'),
      summary:
        'closed by ![t](https://evil.example/t.png?c=1) see [docs](https://evil.example) <img src=x onerror=alert(1)> | injected | cell\n# Heading',
      actor: { kind: 'person', id: 'jira:<a href="https://evil.example">me</a>' },
      verdict: '**verified** [x](y)',
    };
    const { record } = await appendEvidence(deps(), hostile);
    // Act
    const md = await exportCase(evidence, hostile.caseKey, 'md');
    const json = JSON.parse(await exportCase(evidence, hostile.caseKey, 'json'));
    // Assess: the table row keeps its 7 cells, no construct survives unescaped
    const row = md.split('\n').find((l) => l.startsWith('| 1 |')) ?? '';
    expect(row.split(/(?<!\\)\|/)).toHaveLength(9);
    expect(row).not.toMatch(/(?<!\\)!(?<!\\)\[/);
    expect(row).not.toMatch(/(?<!\\)\]\(/);
    expect(row).not.toMatch(/(?<!\\)</);
    expect(row).not.toMatch(/(?<!\\)\*\*/);
    expect(row).toContain('closed by \\!\\[t\\]\\(https\\:');
    expect(md.split('\n').filter((l) => l.startsWith('#'))).not.toContain('# Heading');
    // The case key heading is one code span whose fence is longer than the backticks inside
    expect(md).toContain('# Evidence for case `` case-`x`|<b> ``');
    // The records and their hashes are untouched: the JSON bundle holds the record as stored
    expect(json.records[0]).toEqual(record);
    expect(json.chain.ok).toBe(true);
    expect(md).toContain(JSON.stringify(record));
  });

  it('keeps control characters of a record out of the terminal in the case story', async () => {
    // Prepare: ESC (CSI) and the C1 CSI in a summary, an outcome and an actor
    await appendEvidence(deps(), {
      ...draft('case-a', 'verify'),
      summary: 'ok\u001b]0;pwned\u0007\u001b[2J',
      actor: { kind: 'person', id: 'jira:x\u009b31m' },
      calls: [{ api: 's3:GetBucketPolicy', requestId: 'R\u001b[1A', outcome: 'made\u007f' }],
      verdict: 'verified\u001b[0m',
    });
    // Act
    const story = await caseStory(evidence, 'case-a');
    // Assess
    // biome-ignore lint/suspicious/noControlCharactersInRegex: the test looks for control characters
    expect(story).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
    expect(story).toContain('ok ]0;pwned [2J');
  });

  // jq and sha256sum are machine tools, not npm packages: the check runs where they exist (they do on CI here).
  const hasTools = (() => {
    try {
      execFileSync('sh', ['-c', 'command -v jq && command -v sha256sum'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  })();

  it.runIf(hasTools)('re-checks with the documented jq and sha256sum commands when one record is edited', async () => {
    // Prepare
    const rs = await writeSix();
    const bundle = JSON.parse(await exportCase(evidence, 'case-a', 'json'));
    bundle.records[1].summary = 'edited by hand';
    const file = join(dir, 'case.json');
    await writeFile(file, JSON.stringify(bundle));
    const script = bundle.howToVerify.join('\n').split('```sh\n')[1].split('\n```')[0];
    // Act
    const out = execFileSync('sh', ['-c', script], { cwd: dir, encoding: 'utf8' });
    // Assess
    const lines = out.trim().split('\n');
    expect(lines.slice(0, 3)).toEqual([`ok ${rs[0]?.hash}`, expect.stringMatching(/^MISMATCH /), `ok ${rs[4]?.hash}`]);
    expect(lines[3]).toBe(`1\t${rs[0]?.hash}\t-`);
  });

  /**
   * Writes records as closeloop did before canonical form 2 — no `canon`, hashed with form 1 — and moves the
   * heads as appendEvidence does, so the chain looks like one stored by an older release.
   */
  async function writeFormOne(drafts: EvidenceDraft[]): Promise<EvidenceRecord[]> {
    const out: EvidenceRecord[] = [];
    const caseHeads = new Map<string, EvidenceRecord>();
    for (const d of drafts) {
      const before = caseHeads.get(d.caseKey);
      const plain = JSON.parse(
        JSON.stringify({
          ...d,
          v: 1,
          seq: out.length + 1,
          caseSeq: (before?.caseSeq ?? 0) + 1,
          recordedAt: '2026-11-19T10:00:00.000Z',
          prevCaseHash: before?.hash ?? null,
          prevGlobalHash: out.at(-1)?.hash ?? null,
        }),
      );
      const record: EvidenceRecord = { ...plain, hash: sha256Hex(canonicalJsonV1(plain)) };
      await evidence.put(record);
      await store.put(HEADS, caseHeadId(d.caseKey), { hash: record.hash, caseSeq: record.caseSeq });
      await store.put(HEADS, GLOBAL_HEAD_ID, { record, idempotencyKey: null });
      caseHeads.set(d.caseKey, record);
      out.push(record);
    }
    return out;
  }

  it('writes new records in canonical form 2 and names it in the hashed content', async () => {
    // Act
    const { record } = await appendEvidence(deps(), tagged('case-a', 'verify'));
    // Assess
    expect(record.canon).toBe(2);
    expect(record.hash).toBe(sha256Hex(canonicalJson(withoutHash(record))));
    expect(record.hash).not.toBe(sha256Hex(canonicalJsonV1(withoutHash(record))));
    expect(hashRecord(record)).toBe(record.hash);
  });

  it('verifies a chain of form-1 records written before form 2 followed by form-2 records', async () => {
    // Prepare: four records of an older release, whose integer-like keys hash differently in form 2
    const old = await writeFormOne([0, 1, 2, 3].map((n) => tagged(n % 2 ? 'case-b' : 'case-a', 'apply', n)));
    expect(old.every((r) => r.canon === undefined)).toBe(true);
    expect(old.every((r) => sha256Hex(canonicalJson(withoutHash(r))) !== r.hash)).toBe(true);
    // Act
    const added: EvidenceRecord[] = [];
    for (const n of [4, 5, 6, 7])
      added.push((await appendEvidence(deps(), tagged(n % 2 ? 'case-b' : 'case-a', 'verify', n))).record);
    const check = await verifyChains(evidence, { store });
    const story = await caseStory(evidence, 'case-a', store);
    const bundle = JSON.parse(await exportCase(evidence, 'case-b', 'json', store));
    // Assess
    expect(added.map((r) => [r.seq, r.canon])).toEqual([
      [5, 2],
      [6, 2],
      [7, 2],
      [8, 2],
    ]);
    expect(added[0]?.prevGlobalHash).toBe(old[3]?.hash);
    expect(added[0]?.prevCaseHash).toBe(old[2]?.hash);
    expect(check).toMatchObject({ ok: true, records: 8, cases: 2, problems: [] });
    expect(story).toContain('4 evidence records; chain intact');
    expect(bundle.chain).toEqual({ ok: true, problems: [] });
  });

  it('names an edited form-2 record, also when the edit drops its canon or names a form closeloop does not know', async () => {
    // Prepare: records 2, 3 and 4 of six (all form 2) edited by hand
    const rs: EvidenceRecord[] = [];
    for (let i = 0; i < 6; i++) rs.push((await appendEvidence(deps(), tagged('case-a', 'verify', i))).record);
    const edit = async (r: EvidenceRecord | undefined, change: (raw: Record<string, unknown>) => void) => {
      const path = evidence.pathOf(r?.hash ?? '');
      const raw = JSON.parse(await readFile(path, 'utf8'));
      change(raw);
      await writeFile(path, JSON.stringify(raw));
    };
    await edit(rs[1], (raw) => {
      (raw.after as { tags: Record<string, string> }).tags['10'] = 'eleven';
    });
    await edit(rs[2], (raw) => {
      delete raw.canon;
    });
    await edit(rs[3], (raw) => {
      raw.canon = 3;
    });
    // Act
    const check = await verifyChains(evidence, { store });
    const bundle = JSON.parse(await exportCase(evidence, 'case-a', 'json', store));
    // Assess
    expect(check.ok).toBe(false);
    const reasons = (r: EvidenceRecord | undefined) =>
      check.problems.filter((p) => p.hash === r?.hash).map((p) => p.reason.split(':')[0]);
    expect(reasons(rs[1])).toEqual(['edited']);
    expect(reasons(rs[2])).toEqual(['edited']);
    expect(reasons(rs[3])).toEqual(['unreadable record']);
    expect(reasons(rs[0])).toEqual([]);
    expect(bundle.chain.ok).toBe(false);
  });

  it.runIf(hasTools)(
    're-hashes a stored record file with integer-like keys with the command the README gives',
    async () => {
      // Prepare
      const readme = await readFile(fileURLToPath(new URL('../../README.md', import.meta.url)), 'utf8');
      const command = /`(jq -jcS '[^`]*' r\.json \| sha256sum)`/.exec(readme)?.[1];
      const { record } = await appendEvidence(deps(), tagged('case-a', 'verify'));
      await writeFile(join(dir, 'r.json'), await readFile(evidence.pathOf(record.hash), 'utf8'));
      // Act
      const out = execFileSync('sh', ['-c', command ?? 'false'], { cwd: dir, encoding: 'utf8' });
      // Assess
      expect(out.split(' ')[0]).toBe(record.hash);
    },
  );

  it.runIf(hasTools)(
    'confirms form-2 records with integer-like and astral keys with the documented jq commands, and form-1 ones with the Node.js commands',
    async () => {
      // Prepare: case-a holds two records of an older release, then two written now
      const old = await writeFormOne([tagged('case-a', 'apply', 0), tagged('case-a', 'verify', 1)]);
      const added: EvidenceRecord[] = [];
      for (const n of [2, 3]) added.push((await appendEvidence(deps(), tagged('case-a', 'verify', n))).record);
      const bundle = JSON.parse(await exportCase(evidence, 'case-a', 'json'));
      await writeFile(join(dir, 'case.json'), JSON.stringify(bundle));
      const [, jqScript, nodeScript] = bundle.howToVerify
        .join('\n')
        .split('```sh\n')
        .map((block: string) => block.split('\n```')[0]);
      // Act
      const jqOut = execFileSync('sh', ['-c', jqScript], { cwd: dir, encoding: 'utf8' }).trim().split('\n');
      const nodeOut = execFileSync('sh', ['-c', nodeScript], { cwd: dir, encoding: 'utf8' }).trim().split('\n');
      // Assess: jq prints form 2 exactly; form-1 records with integer-like keys are what the note sends to Node.js
      expect(jqOut.slice(0, 4)).toEqual([
        expect.stringMatching(`^MISMATCH ${old[0]?.hash}`),
        expect.stringMatching(`^MISMATCH ${old[1]?.hash}`),
        `ok ${added[0]?.hash}`,
        `ok ${added[1]?.hash}`,
      ]);
      expect(nodeOut).toEqual([`ok ${old[0]?.hash}`, `ok ${old[1]?.hash}`]);
    },
  );
});
