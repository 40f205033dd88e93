import { describe, expect, it } from 'vitest';
import { hashRecord } from '../../../shared/core/evidence/record.js';
import { canonicalJson } from '../../../shared/core/util/hash.js';

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

describe('canonicalJson', () => {
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
