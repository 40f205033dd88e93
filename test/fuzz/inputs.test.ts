import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expandInputs, readInputs } from '../../shared/adapters/cli/inputs.js';
import { RejectedSchema } from '../../shared/core/model/finding.js';
import type { readDocuments } from '../../shared/core/sources/read.js';
import { tempDir } from '../helpers/tmp.js';
import {
  bounded,
  expectNoPollution,
  HANG_MS,
  MAX_REASON,
  normalizeChecked,
  prototypeSnapshot,
  readBounded,
} from './helpers.js';

const LINE_LOCATION = /^invalid JSON at line \d+, column \d+: /;

/** Every rejection of the reader: the Rejected shape, `$` path, input named, short reason. */
function expectClearRejections(rejected: readonly unknown[], origins: readonly string[]): void {
  const unclear = rejected.filter((r) => {
    const p = RejectedSchema.safeParse(r);
    return (
      !p.success ||
      p.data.path !== '$' ||
      !origins.some((o) => p.data.input === o || p.data.input.startsWith(`${o}:`)) ||
      p.data.reason.length === 0 ||
      p.data.reason.length > MAX_REASON
    );
  });
  expect(unclear.slice(0, 3)).toEqual([]);
}

/** A line that is not JSON, has no line break, and cannot be mistaken for a complete object. */
const garbageLine = fc
  .string({ unit: 'grapheme', maxLength: 40 })
  .map((s) => `{${s.replace(/[\r\n]/g, ' ')}`)
  .filter((s) => {
    try {
      JSON.parse(s);
      return false;
    } catch {
      return true;
    }
  });
/** Deep nesting, closed or cut off or with a bad token at the bottom (V8 names no position for some). */
const deepText = fc
  .tuple(
    fc.integer({ min: 1, max: 40_000 }),
    fc.constantFrom('[', '{"a":', '[{"k":'),
    fc.constantFrom('x', '1,,', 'tru}', '"s"', '', '1'),
    fc.boolean(),
  )
  .map(([depth, open, bottom, closed]) => {
    const close = closed ? (open === '[' ? ']' : open === '{"a":' ? '}' : '}]').repeat(depth) : '';
    return `${open.repeat(depth)}${bottom}${close}`;
  });
const objectLine = fc
  .dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }))
  .map((o) => JSON.stringify(o));

describe('fuzz: CLI input reader (readDocuments, files, folders, JSON lines, stdin)', () => {
  let protoBefore = '';
  let tmp: ReturnType<typeof tempDir>;
  beforeAll(() => {
    protoBefore = prototypeSnapshot();
    tmp = tempDir('closeloop-fuzz-inputs-');
  });
  afterAll(() => tmp.cleanup());

  it('returns documents or rejections naming the input and line, never throwing, for arbitrary text', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ unit: 'binary', maxLength: 300 }),
          fc.jsonValue().map((v) => JSON.stringify(v, null, 2)),
          fc.jsonValue().map((v) => JSON.stringify(v).slice(0, -1)),
          fc.array(fc.oneof(objectLine, garbageLine, fc.constant('')), { maxLength: 12 }).map((l) => l.join('\n')),
          deepText,
        ),
        fc.boolean(),
        (text, bom) => {
          const out = readBounded(bom ? `\uFEFF${text}` : text, 'fuzz.jsonl');
          expect(out.docs.length + out.rejected.length).toBeGreaterThan(0);
          expectClearRejections(out.rejected, ['fuzz.jsonl']);
          for (const d of out.docs) normalizeChecked(d.value, d.input);
          expectNoPollution(protoBefore);
        },
      ),
      { numRuns: 400 },
    );
  });

  it('reads every complete JSON line with its own line number when most lines are JSON', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof({ weight: 3, arbitrary: objectLine }, garbageLine, fc.constant('   ')), {
          minLength: 2,
          maxLength: 30,
        }),
        fc.constantFrom('\n', '\r\n'),
        (lines, eol) => {
          const indexed = lines.map((line, i) => ({ line, at: `events.jsonl:${i + 1}` }));
          const nonBlank = indexed.filter((x) => x.line.trim() !== '');
          const complete = nonBlank.filter((x) => !garbage(x.line));
          const broken = nonBlank.filter((x) => garbage(x.line));
          fc.pre(nonBlank.length > 1 && complete.length > 0 && complete.length * 2 >= nonBlank.length);
          // Act
          const out = readBounded(lines.join(eol), 'events.jsonl');
          // Assess: one document per complete line, one rejection per broken line, each at its line
          expect(out.docs.map((d) => d.input)).toEqual(complete.map((x) => x.at));
          expect(out.rejected.map((r) => r.input)).toEqual(broken.map((x) => x.at));
          for (const r of out.rejected) expect(r.reason).toMatch(LINE_LOCATION);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('parses 10,000 and 1,000,000 levels of nesting and locates errors in them without overflowing', () => {
    for (const depth of [10_000, 1_000_000]) {
      // Prepare
      const whole = `${'['.repeat(depth)}${']'.repeat(depth)}`;
      const broken = `${'{"a":['.repeat(depth)}1`;
      // Act
      const started = performance.now();
      const ok = readBounded(whole, 'deep.json');
      const bad = readBounded(broken, 'broken.json');
      // Assess
      expect(performance.now() - started).toBeLessThan(HANG_MS);
      expect(ok.docs).toHaveLength(1);
      expect(bad.rejected).toEqual([
        expect.objectContaining({ input: 'broken.json', path: '$', reason: expect.stringMatching(LINE_LOCATION) }),
      ]);
      const normalized = normalizeChecked(ok.docs[0]?.value, 'deep.json');
      expect(normalized.rejected).toHaveLength(1);
    }
  });

  it('locates a bad token 1,000,000 levels deep, where V8 names no position, without overflowing', () => {
    // V8 gives a position for an early end ("end of JSON input", above) but not for an unexpected token
    // ("Unexpected token 'x', \"[[[…\" is not valid JSON"): the reader then finds the spot itself.
    for (const depth of [20_000, 1_000_000]) {
      // Prepare: whole documents, and a JSON line after a good one (rejected at its own line)
      const inputs = [
        { text: `${'['.repeat(depth)}x`, docs: [], at: 'deep.json', line: 1, column: depth + 1 },
        { text: `${'{"a":'.repeat(depth)}x`, docs: [], at: 'deep.json', line: 1, column: 5 * depth + 1 },
        { text: `${'['.repeat(depth)}1,,`, docs: [], at: 'deep.json', line: 1, column: depth + 3 },
        {
          text: `{"ok":1}\n${'[{"a":'.repeat(depth)}tru}`,
          docs: ['deep.json:1'],
          at: 'deep.json:2',
          line: 2,
          column: 6 * depth + 1,
        },
      ];
      for (const { text, docs, at, line, column } of inputs) {
        // Act
        const started = performance.now();
        let out: ReturnType<typeof readDocuments> | undefined;
        expect(() => {
          out = readBounded(text, 'deep.json');
        }).not.toThrow();
        // Assess
        expect(performance.now() - started).toBeLessThan(HANG_MS);
        expect(out?.docs.map((d) => d.input)).toEqual(docs);
        expect(out?.rejected).toEqual([
          expect.objectContaining({
            input: at,
            path: '$',
            reason: expect.stringMatching(new RegExp(`^invalid JSON at line ${line}, column ${column}: `)),
          }),
        ]);
      }
    }
  });

  it('reads multi-megabyte strings and 100,000 JSON lines, and rejects documents over the limit unparsed', () => {
    // Prepare
    const huge = JSON.stringify({ description: 'é'.repeat(4 * 1024 * 1024) });
    const many = Array.from({ length: 100_000 }, (_, i) => `{"n":${i}}`).join('\n');
    // Act
    const started = performance.now();
    const hugeOut = readBounded(huge, 'huge.json');
    const manyOut = readBounded(many, 'many.jsonl');
    const limited = readBounded(`${huge}\n{"a":1}\n{"b":2}`, 'limited.jsonl', { maxDocumentChars: 1024 });
    // Assess
    expect(performance.now() - started).toBeLessThan(HANG_MS);
    expect(hugeOut.docs).toHaveLength(1);
    expect(manyOut.docs).toHaveLength(100_000);
    expect(manyOut.docs[99_999]?.input).toBe('many.jsonl:100000');
    expect(limited.docs.map((d) => d.input)).toEqual(['limited.jsonl:2', 'limited.jsonl:3']);
    expect(limited.rejected).toEqual([
      expect.objectContaining({
        input: 'limited.jsonl:1',
        reason: expect.stringMatching(/exceeds the 1024-character limit/),
      }),
    ]);
  });

  it('keeps __proto__, constructor and prototype keys as own data when reading text', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('__proto__', 'constructor', 'prototype'),
        fc.integer({ min: 0, max: 20 }),
        (key, depth) => {
          // Prepare
          const inner = `{"${key}":{"polluted":"yes","prototype":{"polluted":"yes"}}}`;
          const text = `${'{"x":'.repeat(depth)}${inner}${'}'.repeat(depth)}`;
          // Act
          const out = readBounded(`${text}\n${text}`, 'proto.jsonl');
          // Assess
          expect(out.docs).toHaveLength(2);
          for (const d of out.docs) normalizeChecked(d.value, d.input);
          expectNoPollution(protoBefore);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('reads folders recursively in a stable order, only JSON files, each into documents or rejections', async () => {
    // Prepare: random trees of files with random contents
    const contents = fc.oneof(
      fc.jsonValue().map((v) => JSON.stringify(v)),
      fc.array(objectLine, { minLength: 2, maxLength: 5 }).map((l) => l.join('\n')),
      fc.string({ unit: 'binary', maxLength: 200 }),
      fc.constant(''),
    );
    const fileArb = fc.record({
      dir: fc.constantFrom('', 'a', 'a/b', 'c'),
      name: fc.stringMatching(/^[a-z0-9-]{1,8}$/),
      ext: fc.constantFrom('.json', '.jsonl', '.ndjson', '.txt', '.json.bak'),
      text: contents,
    });
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(fileArb, { minLength: 1, maxLength: 8, selector: (f) => `${f.dir}/${f.name}` }),
        async (files) => {
          const root = join(tmp.dir, `tree-${++run}`);
          for (const f of files) {
            mkdirSync(join(root, f.dir), { recursive: true });
            writeFileSync(join(root, f.dir, `${f.name}${f.ext}`), f.text);
          }
          // Act
          const expanded = expandInputs([root], tmp.dir);
          const out = await bounded(() => readInputs(expanded.map((p) => join(tmp.dir, p))), `readInputs on ${root}`);
          // Assess
          const wanted = files
            .filter((f) => ['.json', '.jsonl', '.ndjson'].includes(f.ext))
            .map((f) => relative(tmp.dir, join(root, f.dir, `${f.name}${f.ext}`)));
          expect([...expanded].sort()).toEqual([...wanted].sort());
          expect(expandInputs([root], tmp.dir)).toEqual(expanded);
          const paths = expanded.map((p) => join(tmp.dir, p));
          expectClearRejections(out.rejected, paths);
          for (const p of paths) {
            const hits = [...out.docs, ...out.rejected].filter((x) => x.input === p || x.input.startsWith(`${p}:`));
            expect(hits.length, p).toBeGreaterThan(0);
          }
          for (const d of out.docs) normalizeChecked(d.value, d.input);
        },
      ),
      { numRuns: 25 },
    );
  });

  it('rejects an unreadable entry and never blocks on a FIFO inside a folder', async () => {
    // Prepare
    const root = join(tmp.dir, 'special');
    mkdirSync(root, { recursive: true });
    writeFileSync(join(root, 'a.json'), '{"a":1}');
    symlinkSync(join(root, 'missing-target.json'), join(root, 'dangling.json'));
    const fifo = spawnSync('mkfifo', [join(root, 'pipe.json')]);
    // Act
    const files = expandInputs([root], tmp.dir).map((p) => join(tmp.dir, p));
    const out = await readInputs(files);
    // Assess
    if (fifo.status === 0) expect(files.some((f) => f.endsWith('pipe.json'))).toBe(false);
    expect(out.docs.map((d) => d.input)).toEqual([join(root, 'a.json')]);
    expect(out.rejected).toEqual([
      expect.objectContaining({ input: join(root, 'dangling.json'), reason: expect.stringMatching(/^cannot read/) }),
    ]);
  });

  it('reads stdin ("-") as JSON lines in a child process, naming each line', async () => {
    // Prepare: `node --import tsx` (one process: the tsx binary runs the entry in a grandchild the kill misses)
    const run = (input: string) =>
      new Promise<{ docs: string[]; digests: string[]; rejected: unknown[]; polluted: boolean }>((resolve, reject) => {
        const child = spawn(process.execPath, ['--import', 'tsx', 'test/fuzz/read-stdin.ts'], {
          stdio: ['pipe', 'pipe', 'inherit'],
        });
        let out = '';
        let killed = false;
        const timer = setTimeout(() => {
          killed = true;
          child.kill('SIGKILL');
        }, HANG_MS);
        child.stdout.on('data', (c) => {
          out += c;
        });
        child.on('error', reject);
        child.on('close', () => {
          clearTimeout(timer);
          if (killed) reject(new Error(`hang: reading stdin still running after ${HANG_MS} ms`));
          else resolve(JSON.parse(out));
        });
        child.stdin.end(input);
      });
    const lines = ['{"a":1}', '', '{"__proto__":{"polluted":1}}', '{"b":', '[1,2]'].join('\n');
    // Act
    const [mixed, empty, junk] = await Promise.all([run(lines), run(''), run('\u0000\u0001 not json')]);
    // Assess
    expect(mixed.docs).toEqual(['stdin:1', 'stdin:3', 'stdin:5']);
    expect(mixed.rejected).toEqual([
      expect.objectContaining({ input: 'stdin:4', reason: expect.stringMatching(LINE_LOCATION) }),
    ]);
    expect(mixed.polluted).toBe(false);
    expect(empty.rejected).toEqual([
      expect.objectContaining({ input: 'stdin', reason: 'empty input: no JSON document' }),
    ]);
    expect(junk.docs).toEqual([]);
    expectClearRejections(junk.rejected, ['stdin']);
  });

  it("reads a multi-megabyte line of multi-byte text from stdin intact, across the pipe's chunks", async () => {
    // Prepare: 3 MiB of two- and three-byte characters (5 bytes a pair, so chunk edges fall inside them)
    // arrive in many 64 KiB chunks
    const huge = JSON.stringify({ description: 'é€'.repeat(600 * 1024) });
    const input = `${huge}\n{"n":2}\n`;
    const digest = (text: string) =>
      createHash('sha256')
        .update(JSON.stringify(JSON.parse(text)))
        .digest('hex');
    // Act
    const out = await new Promise<{ docs: string[]; digests: string[] }>((resolve, reject) => {
      const child = spawn(process.execPath, ['--import', 'tsx', 'test/fuzz/read-stdin.ts'], {
        stdio: ['pipe', 'pipe', 'inherit'],
      });
      let text = '';
      const timer = setTimeout(() => child.kill('SIGKILL'), HANG_MS);
      child.stdout.on('data', (c) => {
        text += c;
      });
      child.on('error', reject);
      child.on('close', (code) => {
        clearTimeout(timer);
        if (code === 0) resolve(JSON.parse(text));
        else reject(new Error(`the reader exited with ${code}`));
      });
      child.stdin.end(input);
    });
    // Assess: both lines, the long one unchanged (a chunk decoded alone would break the split characters)
    expect(out.docs).toEqual(['stdin:1', 'stdin:2']);
    expect(out.digests).toEqual([digest(huge), digest('{"n":2}')]);
  });
});

function garbage(line: string): boolean {
  try {
    JSON.parse(line);
    return false;
  } catch {
    return true;
  }
}
