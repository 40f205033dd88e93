import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { hashRecord } from '../../../shared/core/evidence/record.js';
import { canonicalJson, canonicalJsonV1, compareCodePoints, sha256Hex } from '../../../shared/core/util/hash.js';

/** A stored verify record (without `hash`), as written before keys named `__proto__` were hashed. */
const STORED = {
  v: 1,
  seq: 7,
  caseSeq: 3,
  recordedAt: '2026-11-20T10:00:01.000Z',
  prevCaseHash: null,
  prevGlobalHash: 'a'.repeat(64),
  caseKey: 'aws|arn:aws:s3:::acme-marketing-exports|Policy:S3/BucketAnonymousAccessGranted',
  findingIds: ['0'.repeat(64)],
  owner: 'web-lead@acme.example',
  step: 'verify',
  actor: { kind: 'function', id: 'closeloop:verify' },
  eventId: 'e-1',
  at: '2026-11-20T10:00:00.000Z',
  summary: 'verified: holds',
  calls: [{ api: 's3:GetPublicAccessBlock', requestId: 'REQ1', outcome: 'holds' }],
  before: { blockPublicAcls: false, ports: { '22': 'open', '3389': 'open' } },
  after: { blockPublicAcls: true, note: 'ünïcode ✓' },
  verdict: 'verified',
  detail: { trigger: 'apply', attempts: 1, upstream: [] },
};

/**
 * A stored record (without `hash`) written before canonical form 2: no `canon`, tags and properties with
 * integer-like keys, an astral and a high-BMP key, a DEL in a value — everything form 2 prints differently.
 */
const STORED_V1_INTEGER_KEYS = {
  v: 1,
  seq: 8,
  caseSeq: 4,
  recordedAt: '2026-11-21T09:00:01.000Z',
  prevCaseHash: 'b'.repeat(64),
  prevGlobalHash: 'c'.repeat(64),
  caseKey:
    'azure|/subscriptions/0000/resourceGroups/web/providers/Microsoft.Storage/storageAccounts/acmeweb|assessment-1',
  findingIds: ['1'.repeat(64)],
  owner: 'web-lead@acme.example',
  step: 'verify',
  actor: { kind: 'function', id: 'closeloop:verify' },
  eventId: 'e-2',
  at: '2026-11-21T09:00:00.000Z',
  summary: 'verified: holds',
  calls: [{ api: 'Microsoft.Storage/storageAccounts/read', requestId: 'REQ2', outcome: 'holds' }],
  before: { allowBlobPublicAccess: true, tags: { '2024': 'budget', '9': 'nine', '10': 'ten', env: 'prod' } },
  after: {
    allowBlobPublicAccess: false,
    note: 'label\x7f',
    tags: { '2024': 'budget', '9': 'nine', '10': 'ten', env: 'prod' },
  },
  verdict: 'verified',
  detail: { trigger: 'apply', properties: { '10': 'b', '9': 'a', '\u{1F600}': 'astral', '\uFB01': 'ligature' } },
};

// jq is a machine tool, not an npm package: the comparisons with it run where it exists (it does on CI here).
const hasJq = (() => {
  try {
    execFileSync('sh', ['-c', 'command -v jq'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
const jqSorted = (json: string): string => execFileSync('jq', ['-cjS', '.'], { input: json, encoding: 'utf8' });

describe('canonicalJson', () => {
  it('sorts integer-like keys as strings, as jq -S does, not in numeric order', () => {
    // Act
    const text = canonicalJson({ '10': 1, '9': 2, a: 3, tags: { '2024': 'x', '100': 'y', '7': 'z' } });
    // Assess: jq -S compares keys by code point: "10" < "9"
    expect(text).toBe('{"10":1,"9":2,"a":3,"tags":{"100":"y","2024":"x","7":"z"}}');
  });

  it('sorts keys above U+FFFF after keys in E000–FFFF, by code point as jq -S does', () => {
    // Prepare: UTF-16 code units put the surrogate pair of U+1F600 (D83D DE00) before U+E000 and U+FFFF
    const value = { '\u{1F600}': 1, '\uFFFF': 2, '\uE000': 3, z: 4, '\u00E9': 5 };
    // Act
    const text = canonicalJson(value);
    // Assess
    expect(text).toBe('{"z":4,"\u00E9":5,"\uE000":3,"\uFFFF":2,"\u{1F600}":1}');
    expect(['\u{1F600}', '\uFFFF', '\uE000', '\u{10000}', 'a'].sort(compareCodePoints)).toEqual([
      'a',
      '\uE000',
      '\uFFFF',
      '\u{10000}',
      '\u{1F600}',
    ]);
  });

  it('escapes DEL (U+007F) as jq prints it', () => {
    // Act
    const text = canonicalJson({ note: 'label\x7f', '\x7f': true });
    // Assess
    expect(text).toBe('{"note":"label\\u007f","\\u007f":true}');
  });

  it.runIf(hasJq)(
    'prints what jq -cS prints for JSON with integer-like, astral, __proto__ and control-character keys',
    () => {
      // Prepare
      const json = JSON.stringify({
        '10': { '9': [1, { '2024': null, '03': 'x', '-1': true, '4294967295': 0 }], b: 'tab\there' },
        '9': 'ünïcode ✓ \u2028',
        a: [],
        '\u{1F600}': { '\uFFFD': 1, '\u{10FFFF}': 2 },
        '\uFB01': 'del\x7f nul\u0000 esc\u001b',
        '': {},
      }).replace('"a":[]', '"a":[],"__proto__":{"z":1,"y":[2,3]}');
      // Act
      const mine = canonicalJson(JSON.parse(json));
      // Assess
      expect(mine).toBe(jqSorted(json));
    },
  );

  it('prints the same text in both forms for data without integer-like keys, astral keys or DEL', () => {
    // Prepare: every other key and value the two forms share, including __proto__, undefined, holes and a Date
    const plain = { ...STORED, before: { blockPublicAcls: false, ports: { p22: 'open' } } };
    const holey: unknown[] = [undefined, 1];
    holey[3] = 2;
    const values: unknown[] = [
      plain,
      JSON.parse('{"__proto__":{"b":1,"a":2},"Z":[1,null,"x"],"é":{"ü":true},"\uFFFF":0,"a b":-0.5}'),
      { when: new Date('2026-11-20T10:00:00.000Z'), gone: undefined, list: holey, fn: () => 1 },
      ['9', 10, { k: 'v' }],
      'text',
      42,
      null,
    ];
    // Act
    const pairs = values.map((v) => [canonicalJson(v), canonicalJsonV1(v)]);
    // Assess
    for (const [v2, v1] of pairs) expect(v2).toBe(v1);
  });

  it('keeps the form-1 hash of a stored record with integer-like keys that was written before form 2', () => {
    // Act
    const hash = hashRecord(structuredClone(STORED_V1_INTEGER_KEYS));
    // Assess: computed by the code that sealed the stored records (canonicalJson before form 2)
    expect(hash).toBe('1637daef6ec26014fdda158454c4d8850f60a40c61bb94da454a059d8f2e1106');
    expect(canonicalJson(STORED_V1_INTEGER_KEYS)).not.toBe(canonicalJsonV1(STORED_V1_INTEGER_KEYS));
  });

  it('hashes a record naming form 2 with form 2, and refuses a form it does not know', () => {
    // Prepare
    const v2 = { ...STORED_V1_INTEGER_KEYS, canon: 2 };
    // Act
    const hash = hashRecord(v2);
    // Assess
    expect(hash).toBe(sha256Hex(canonicalJson(v2)));
    expect(() => hashRecord({ ...STORED_V1_INTEGER_KEYS, canon: 3 })).toThrow(/canonical form 3/);
    expect(() => hashRecord({ ...STORED_V1_INTEGER_KEYS, canon: null })).toThrow(/canonical form null/);
  });

  it('keeps the hash of a stored record that has no key named __proto__', () => {
    // Act
    const hash = hashRecord(structuredClone(STORED));
    // Assess: computed by the code that sealed the stored records
    expect(hash).toBe('36652fe2447bb8c3c1df7766e0ffc3c620026df848c447910e000adcbf8f59a6');
  });

  it('prints a member named __proto__ like any other key when parsed JSON carries one', () => {
    // Prepare
    const parsed = JSON.parse('{"public":false,"__proto__":{"public":true,"note":"forged"}}');
    // Act
    const text = canonicalJson(parsed);
    // Assess: what `jq -cS .` prints for the same text
    expect(text).toBe('{"__proto__":{"note":"forged","public":true},"public":false}');
  });

  it('changes the record hash when an edit adds a __proto__ member to after or detail', () => {
    // Prepare
    const text = JSON.stringify(STORED);
    const edited = [
      text.replace('"after":{', '"after":{"__proto__":{"blockPublicAcls":false},'),
      text.replace('"detail":{', '"detail":{"__proto__":{"trigger":"forged"},'),
    ];
    // Act
    const hashes = edited.map((t) => hashRecord(JSON.parse(t)));
    // Assess
    expect(hashes).not.toContain(hashRecord(JSON.parse(text)));
  });
});
