import { describe, expect, it } from 'vitest';
import { locateJsonError, readDocuments } from '../../../shared/core/sources/read.js';
import { loadFixtureText } from '../../helpers/fixtures.js';

describe('readDocuments', () => {
  it('returns one document named by its origin when the text is one JSON document', () => {
    // Prepare
    const text = loadFixtureText('guardduty/s3-bucket-anonymous-access.eventbridge.json');
    // Act
    const out = readDocuments(text, 'events/gd.json');
    // Assess
    expect(out.rejected).toEqual([]);
    expect(out.docs).toHaveLength(1);
    expect(out.docs[0]?.input).toBe('events/gd.json');
    expect(out.docs[0]?.value).toMatchObject({ source: 'aws.guardduty' });
  });

  it('returns one document per line, numbered, skipping blank lines when the text is JSON lines', () => {
    // Prepare
    const text = '{"a":1}\n\n  \n{"b":2}\r\n[3]\n';
    // Act
    const out = readDocuments(text, 'stdin');
    // Assess
    expect(out.rejected).toEqual([]);
    expect(out.docs).toEqual([
      { input: 'stdin:1', value: { a: 1 }, textChars: 7 },
      { input: 'stdin:4', value: { b: 2 }, textChars: 7 },
      { input: 'stdin:5', value: [3], textChars: 3 },
    ]);
  });

  it('rejects only the broken line and keeps the others when one JSON line is truncated', () => {
    // Prepare
    const text = '{"a":1}\n{"b":\n{"c":3}\n';
    // Act
    const out = readDocuments(text, 'stdin');
    // Assess
    expect(out.docs.map((d) => d.input)).toEqual(['stdin:1', 'stdin:3']);
    expect(out.rejected).toHaveLength(1);
    expect(out.rejected[0]).toMatchObject({ input: 'stdin:2', source: 'unknown', path: '$' });
    expect(out.rejected[0]?.reason).toMatch(/^invalid JSON at line 2, column \d+: truncated JSON/);
  });

  it('rejects a truncated pretty-printed document once, naming line and column, when the file ends early', () => {
    // Prepare
    const text = loadFixtureText('bad/truncated.json');
    // Act
    const out = readDocuments(text, 'bad/truncated.json');
    // Assess
    expect(out.docs).toEqual([]);
    expect(out.rejected).toHaveLength(1);
    expect(out.rejected[0]?.input).toBe('bad/truncated.json');
    expect(out.rejected[0]?.reason).toMatch(/^invalid JSON at line \d+, column \d+: /);
  });

  it('names the line of a syntax error inside a single document', () => {
    // Prepare
    const text = '{\n  "a": 1,\n  "b": }\n';
    // Act
    const out = readDocuments(text, 'f.json');
    // Assess
    expect(out.rejected[0]?.reason).toMatch(/^invalid JSON at line 3, column 8: /);
  });

  it('rejects empty input and strips a byte order mark', () => {
    // Act
    const empty = readDocuments(' \n\t', 'empty.json');
    const bom = readDocuments('\uFEFF{"a":1}', 'bom.json');
    // Assess
    expect(empty.rejected[0]?.reason).toMatch(/empty input/);
    expect(bom.docs).toEqual([{ input: 'bom.json', value: { a: 1 }, textChars: 7 }]);
  });

  it('rejects a document larger than the limit without parsing it', () => {
    // Prepare
    const big = JSON.stringify({ text: 'x'.repeat(2000) });
    // Act
    const single = readDocuments(big, 'big.json', { maxDocumentChars: 1000 });
    const lines = readDocuments(`{"a":1}\n${big}\n{"b":2}`, 'stdin', { maxDocumentChars: 1000 });
    // Assess
    expect(single.docs).toEqual([]);
    expect(single.rejected[0]?.reason).toMatch(/exceeds the 1000-character limit/);
    expect(lines.docs.map((d) => d.input)).toEqual(['stdin:1', 'stdin:3']);
    expect(lines.rejected[0]).toMatchObject({ input: 'stdin:2' });
  });

  it('never throws whatever the text when given arbitrary strings', () => {
    // Prepare
    const texts = ['', '{', ']', 'null', '"x"', '{"a":1}{"b":2}', '[[[[[[', '\u0000', '{"a":1}\n}'];
    // Act + Assess
    for (const t of texts) expect(() => readDocuments(t, 'x')).not.toThrow();
    expect(readDocuments('null', 'x').docs).toEqual([{ input: 'x', value: null, textChars: 4 }]);
  });
});

describe('locateJsonError', () => {
  it('points at the first offending character when JSON.parse names no position', () => {
    // Act + Assess
    expect(locateJsonError('{"a":1}{"b":2}')).toBe(7);
    expect(locateJsonError('[1,]')).toBe(3);
    expect(locateJsonError('{"a" 1}')).toBe(5);
    expect(locateJsonError('{"a":"x')).toBe(7);
    expect(locateJsonError('[true, nul]')).toBe(7);
  });
});
