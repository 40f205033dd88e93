import fc from 'fast-check';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { findOversizedString } from '../../shared/core/sources/common.js';
import {
  allPaths,
  allShapes,
  expectFieldsNamed,
  expectNoPollution,
  getAt,
  HANG_MS,
  HOSTILE_KEYS,
  mutate,
  mutationArb,
  normalizeChecked,
  POLLUTER,
  prototypeSnapshot,
  readBounded,
  renderSegments,
  type Segment,
  type Shape,
  setAt,
} from './helpers.js';

const SHAPES: Shape[] = allShapes();
const MB = 1024 * 1024;
const DEPTH = 10_000;
const MARKER = 'closeloop-fuzz-deep-marker';

/** `{"a":{"a":…}}` or `[[…]]` nested `depth` levels, built iteratively. */
function nested(depth: number, kind: 'object' | 'array'): unknown {
  let v: unknown = 'leaf';
  for (let i = 0; i < depth; i++) v = kind === 'object' ? { a: v } : [v];
  return v;
}

/** The JSON text of `nested(depth, kind)`, built as text (JSON.stringify itself overflows on it). */
const nestedText = (depth: number, kind: 'object' | 'array'): string =>
  kind === 'object'
    ? `${'{"a":'.repeat(depth)}"leaf"${'}'.repeat(depth)}`
    : `${'['.repeat(depth)}"leaf"${']'.repeat(depth)}`;

/**
 * Runs normalize on the value and on its JSON text read back (the path a CLI or queue input takes).
 * `text` is given when the value is too deep for JSON.stringify.
 */
function normalizeBothWays(value: unknown, origin: string, text = JSON.stringify(value)) {
  const direct = normalizeChecked(value, origin);
  const read = readBounded(text, origin);
  expect(read.docs.length + read.rejected.length).toBeGreaterThan(0);
  for (const d of read.docs) {
    // With the text's length (as the CLI and the queue entries give it) the size check walks the nesting
    // only: it must answer what the whole walk answers.
    const withLength = normalizeChecked(d.value, d.input, d);
    expect(withLength).toEqual(normalizeChecked(d.value, d.input));
  }
  return direct;
}

const timed = <T>(fn: () => T): T => {
  const started = performance.now();
  const out = fn();
  expect(performance.now() - started).toBeLessThan(HANG_MS);
  return out;
};

describe('fuzz: normalize over every source shape', () => {
  let protoBefore = '';
  beforeAll(() => {
    protoBefore = prototypeSnapshot();
  });
  afterEach(() => expectNoPollution(protoBefore));

  it('covers every documented shape of the four sources when the fixtures load', () => {
    // Assess: each fixture normalizes to at least one finding (the mutation properties start from real shapes)
    expect(SHAPES.length).toBeGreaterThanOrEqual(30);
    for (const shape of SHAPES) {
      const out = normalizeChecked(shape.value, shape.name);
      expect(out.findings.length + out.rejected.length, shape.name).toBeGreaterThan(0);
    }
    const names = SHAPES.map((s) => s.name).join(' ');
    for (const shape of ['eventbridge', 'get-findings', 'bare', 'findings-list', 'arm', 'workflow-automation'])
      expect(names).toContain(shape);
    for (const shape of ['assessment', 'eventgrid-envelope', 'eventgrid-cloudevent', 'notification', 'pubsub-push'])
      expect(names).toContain(shape);
  });

  it('yields findings or clear rejections and never throws when given arbitrary JSON', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (junk) => {
        const out = normalizeBothWays(junk, 'fuzz:json');
        expect(out.findings.length + out.rejected.length).toBeGreaterThan(0);
        expectNoPollution(protoBefore);
      }),
      { numRuns: 400 },
    );
  });

  it('yields schema-valid findings or rejections naming a field when real shapes are mutated', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...SHAPES),
        fc.array(mutationArb, { minLength: 1, maxLength: 6 }),
        (shape, mutations) => {
          const input = mutate(shape.value, mutations);
          const out = timed(() => normalizeBothWays(input, `fuzz:${shape.name}`));
          expect(out.findings.length + out.rejected.length).toBeGreaterThan(0);
          expectFieldsNamed(out);
          expectNoPollution(protoBefore);
        },
      ),
      { numRuns: 600 },
    );
  });

  it('rejects or normalizes mutated SCC messages inside Pub/Sub push bodies and CloudEvents (base64)', () => {
    // Prepare: the bare SCC messages, wrapped after mutation as the Pub/Sub channels deliver them
    const messages = SHAPES.filter((s) => s.name.startsWith('scc/') && s.name.includes('notification'));
    const push = SHAPES.find((s) => s.name === 'scc/public-bucket-acl.pubsub-push.json')?.value;
    const cloudEvent = SHAPES.find((s) => s.name === 'scc/public-bucket-acl.cloudevent.json')?.value;
    expect(messages.length).toBeGreaterThan(0);
    fc.assert(
      fc.property(
        fc.constantFrom(...messages),
        fc.array(mutationArb, { minLength: 1, maxLength: 4 }),
        fc.boolean(),
        (shape, mutations, asCloudEvent) => {
          const data = Buffer.from(JSON.stringify(mutate(shape.value, mutations))).toString('base64');
          const wrapped = structuredClone(asCloudEvent ? cloudEvent : push);
          setAt(wrapped, asCloudEvent ? ['data', 'message', 'data'] : ['message', 'data'], data);
          // Act
          const out = normalizeBothWays(wrapped, `fuzz:pubsub:${shape.name}`);
          // Assess: one finding or rejections, each naming the SCC source or the envelope
          expect(out.findings.length + out.rejected.length).toBeGreaterThan(0);
          expectFieldsNamed(out);
          for (const r of out.rejected) expect(r.source === 'scc' || r.source === 'unknown').toBe(true);
          expectNoPollution(protoBefore);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('never changes a prototype when __proto__, constructor or prototype keys sit at any depth', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...SHAPES),
        fc.array(fc.nat(), { minLength: 1, maxLength: 8 }),
        fc.constantFrom(...HOSTILE_KEYS),
        (shape, spots, key) => {
          const input = mutate(
            shape.value,
            spots.map((at) => ({ op: 'hostile-key', at, key, value: POLLUTER })),
          );
          // Also as text: JSON.parse makes `__proto__` an own key, exactly what a hostile sender posts.
          const text = JSON.stringify(input);
          expect(text).toContain(`"${key}"`);
          normalizeBothWays(input, `fuzz:${shape.name}`);
          for (const doc of readBounded(text, 'hostile').docs) normalizeChecked(doc.value, 'hostile');
          expectNoPollution(protoBefore);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('rejects or normalizes without overflowing the stack when 10,000 levels of nesting sit anywhere', () => {
    // Prepare: every shape, the deep value at a few spread-out paths (objects and arrays)
    for (const shape of SHAPES) {
      const paths = allPaths(shape.value);
      const picks = [0, Math.floor(paths.length / 3), Math.floor((2 * paths.length) / 3), paths.length - 1];
      for (const [n, i] of picks.entries()) {
        const path = paths[i];
        if (!path) continue;
        const kind = n % 2 === 0 ? 'object' : 'array';
        const input = structuredClone(shape.value);
        setAt(input, path, MARKER);
        const text = JSON.stringify(input).replace(`"${MARKER}"`, nestedText(DEPTH, kind));
        expect(text).toContain(nestedText(DEPTH, kind));
        setAt(input, path, nested(DEPTH, kind));
        // Act
        const out = timed(() => normalizeBothWays(input, `deep:${shape.name}`, text));
        // Assess: a finding only when it still serializes (checked in normalizeChecked); else a rejection
        expect(out.findings.length + out.rejected.length).toBeGreaterThan(0);
      }
    }
    // A whole input that is nothing but nesting
    for (const kind of ['object', 'array'] as const) {
      const out = timed(() =>
        normalizeBothWays(nested(DEPTH * 10, kind), `deep:${kind}`, nestedText(DEPTH * 10, kind)),
      );
      expect(out.findings).toEqual([]);
      expect(out.rejected).toHaveLength(1);
    }
  });

  it('rejects a vendor finding nested deeper than a store can serialize, naming the field', () => {
    // Prepare
    const shape = SHAPES.find((s) => s.name === 'guardduty/s3-bucket-anonymous-access.eventbridge.json');
    const input = structuredClone(shape?.value);
    setAt(input, ['detail', 'service', 'additionalInfo'], nested(DEPTH, 'object'));
    // Act
    const out = normalizeChecked(input, 'deep.json');
    // Assess
    expect(out.findings).toEqual([]);
    expect(out.rejected).toEqual([
      {
        input: 'deep.json',
        source: 'guardduty',
        path: expect.stringMatching(/^detail\.service\.additionalInfo(\.a)+$/),
        reason: expect.stringMatching(/nested more than \d+ levels/),
      },
    ]);
  });

  it('judges size and depth by own members only, also while Object.prototype carries an enumerable one', () => {
    // Prepare: a polluted prototype (something made a deep member of it enumerable) and a clean finding
    const shape = SHAPES.find((s) => s.name === 'guardduty/s3-bucket-anonymous-access.eventbridge.json');
    const input = structuredClone(shape?.value);
    const proto = Object.prototype as Record<string, unknown>;
    proto.closeloopPolluted = nested(200, 'object');
    let out: ReturnType<typeof normalizeChecked>;
    try {
      // Act
      out = normalizeChecked(input, 'polluted.json');
    } finally {
      delete proto.closeloopPolluted;
    }
    // Assess: the inherited member is neither scanned (it would be 'deep') nor copied
    expect(out.rejected).toEqual([]);
    expect(out.findings).toHaveLength(1);
  });

  it('names the field without throwing when an envelope value is an object that cannot become text', () => {
    // Prepare: JSON.parse makes `toString` an own non-function member, so String(value) would throw
    const hostile = JSON.parse('{"toString": 1, "valueOf": {}}');
    const deep = JSON.parse(nestedText(DEPTH, 'array'));
    const inputs: Array<[unknown, string]> = [
      [{ source: hostile, 'detail-type': 'GuardDuty Finding', detail: {} }, 'source'],
      [{ source: 'aws.guardduty', 'detail-type': hostile, detail: {} }, 'detail-type'],
      [{ source: 'aws.securityhub', 'detail-type': hostile, detail: {} }, 'detail-type'],
      [{ specversion: deep, type: 'x', data: {} }, 'specversion'],
      [{ specversion: 'A'.repeat(2 * MB), type: 'x', data: {} }, 'specversion'],
    ];
    for (const [input, path] of inputs) {
      // Act
      const out = normalizeChecked(input, 'hostile.json');
      // Assess
      expect(out.rejected).toEqual([expect.objectContaining({ input: 'hostile.json', path })]);
    }
  });

  it('rejects a tag whose value is an object that cannot become text, naming the tag', () => {
    // Prepare
    const gd = SHAPES.find((s) => s.name === 'guardduty/s3-bucket-anonymous-access.eventbridge.json')?.value;
    const input = structuredClone(gd);
    setAt(
      input,
      ['detail', 'resource', 's3BucketDetails', 0, 'tags'],
      [
        { key: 'owner', value: 'data@example.com' },
        { key: 'bad', value: JSON.parse('{"toString": 1}') },
      ],
    );
    // Act
    const out = normalizeChecked(input, 'tags.json');
    // Assess
    expect(out.rejected).toEqual([
      {
        input: 'tags.json',
        source: 'guardduty',
        path: 'detail.resource.s3BucketDetails[0].tags[1].value',
        reason: expect.stringMatching(/expected string/),
      },
    ]);
  });

  it('rejects multi-megabyte strings anywhere with the field named and never echoes them', () => {
    // Prepare
    const huge = 'A'.repeat(2 * MB);
    for (const shape of SHAPES) {
      const leaves = allPaths(shape.value).filter((p) => typeof getAt(shape.value, p) === 'string');
      for (const path of [leaves[0], leaves[Math.floor(leaves.length / 2)], leaves[leaves.length - 1]]) {
        if (!path) continue;
        const input = structuredClone(shape.value);
        setAt(input, path, huge);
        // Act
        const out = timed(() => normalizeChecked(input, `huge:${shape.name}`));
        // Assess: no finding carries the string; the string's own field is named unless an envelope rule
        // (source, detail-type, base64 data) rejected the input first.
        for (const f of out.findings) expect(findOversizedString(f)).toBeUndefined();
        const named = out.rejected.some((r) => r.path === renderSegments(path));
        const envelope = out.rejected.some((r) => renderSegments(path).startsWith(r.path) || r.path === '$');
        expect(named || envelope || out.findings.length > 0, `${shape.name} ${renderSegments(path)}`).toBe(true);
      }
    }
  });

  it('handles 100,000-item arrays in batches and inside one finding within the bound', () => {
    // Prepare
    const sh = SHAPES.find((s) => s.name === 'securityhub/s3.8-failed.eventbridge.json')?.value;
    const batch = structuredClone(sh);
    setAt(
      batch,
      ['detail', 'findings'],
      Array.from({ length: 100_000 }, (_, i) => i),
    );
    const eventGrid = Array.from({ length: 100_000 }, () => ({ eventType: 'x' }));
    const resources = structuredClone(sh);
    const resourcePath: Segment[] = ['detail', 'findings', 0, 'Resources'];
    const first = getAt(resources, [...resourcePath, 0]);
    setAt(
      resources,
      resourcePath,
      Array.from({ length: 100_000 }, () => structuredClone(first)),
    );
    const tags = structuredClone(SHAPES.find((s) => s.name === 'guardduty/instance-crypto.eventbridge.json')?.value);
    setAt(
      tags,
      ['detail', 'resource', 'instanceDetails', 'tags'],
      Array.from({ length: 100_000 }, (_, i) => ({ key: `k${i}`, value: 'v' })),
    );
    // Act
    const batchOut = timed(() => normalizeChecked(batch, 'batch.json'));
    const gridOut = timed(() => normalizeChecked(eventGrid, 'grid.json'));
    const resourcesOut = timed(() => normalizeChecked(resources, 'resources.json'));
    const tagsOut = timed(() => normalizeChecked(tags, 'tags.json'));
    // Assess
    expect(batchOut.rejected).toHaveLength(100_000);
    expect(batchOut.rejected[99_999]).toMatchObject({ source: 'securityhub', path: 'detail.findings[99999]' });
    expect(gridOut.rejected).toHaveLength(100_000);
    expect(resourcesOut.findings.length + resourcesOut.rejected.length).toBe(1);
    expect(tagsOut.findings.length + tagsOut.rejected.length).toBe(1);
  });
});
