import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { type Finding, FindingSchema, type Rejected } from '../../../shared/core/model/finding.js';
import { normalize } from '../../../shared/core/pipeline/normalize.js';
import { readDocuments } from '../../../shared/core/sources/read.js';
import { oneFixture } from './util.js';

const DIR = fileURLToPath(new URL('../../../examples/events/', import.meta.url));

function loadExamples(): { byFile: Map<string, Finding[]>; rejected: Rejected[] } {
  const byFile = new Map<string, Finding[]>();
  const rejected: Rejected[] = [];
  for (const file of readdirSync(DIR).sort()) {
    const read = readDocuments(readFileSync(`${DIR}${file}`, 'utf8'), `examples/events/${file}`);
    rejected.push(...read.rejected);
    const found: Finding[] = [];
    for (const doc of read.docs) {
      const out = normalize(doc.value, doc.input);
      found.push(...out.findings);
      rejected.push(...out.rejected);
    }
    byFile.set(file, found);
  }
  return { byFile, rejected };
}

const first = (m: Map<string, Finding[]>, prefix: string): Finding => {
  const entry = [...m.entries()].find(([name]) => name.startsWith(prefix));
  const f = entry?.[1][0];
  if (!f) throw new Error(`no finding in example ${prefix}`);
  return f;
};

describe('bundled examples (npm start)', () => {
  it('normalizes several dozen events from all four sources with exactly one bad file rejected', () => {
    // Act
    const { byFile, rejected } = loadExamples();
    const all = [...byFile.values()].flat();
    // Assess
    expect(byFile.size).toBeGreaterThanOrEqual(30);
    expect(rejected).toHaveLength(1);
    expect(rejected[0]?.input).toBe('examples/events/zz-bad-truncated.json');
    expect(new Set(all.map((f) => f.source))).toEqual(new Set(['guardduty', 'securityhub', 'defender', 'scc']));
    for (const f of all) FindingSchema.parse(f);
  });

  it('carries repeats, a GuardDuty finding with its Security Hub copy, and resolutions of earlier findings', () => {
    // Act
    const { byFile } = loadExamples();
    // Assess
    const native = first(byFile, '06-');
    expect(first(byFile, '07-').key).toBe(native.key);
    expect(first(byFile, '21-')).toMatchObject({ key: native.key, occurrences: 7 });
    expect(first(byFile, '22-')).toMatchObject({ key: first(byFile, '01-').key, occurrences: 2 });
    expect(first(byFile, '25-')).toMatchObject({ key: first(byFile, '02-').key, status: 'resolved' });
    expect(first(byFile, '26-')).toMatchObject({ key: first(byFile, '12-').key, status: 'resolved' });
    expect(first(byFile, '27-')).toMatchObject({ key: first(byFile, '17-').key, status: 'resolved' });
    expect(first(byFile, '10-').sample).toBe(true);
    expect(first(byFile, '11-').resource.account).toBe('777788889999');
  });
});

describe('shared empty values in findings', () => {
  it('gives untagged resources and findings without controls one frozen empty tag set and list', () => {
    // Prepare
    const paths = [
      'guardduty/instance-crypto.eventbridge.json',
      'defender/alert.arm.json',
      'scc/public-bucket-acl.pubsub-push.json',
    ];
    // Act
    const findings = paths.map((p) => oneFixture(p));
    // Assess
    const untagged = findings.filter((f) => Object.keys(f.resource.tags).length === 0);
    expect(untagged.length).toBeGreaterThanOrEqual(2);
    for (const f of untagged) {
      expect(f.resource.tags).toBe(untagged[0]?.resource.tags);
      expect(Object.isFrozen(f.resource.tags)).toBe(true);
      expect(() => {
        f.resource.tags.owner = 'x';
      }).toThrow(TypeError);
    }
    const noControls = findings.filter((f) => f.compliance.controls.length === 0);
    expect(noControls.length).toBeGreaterThanOrEqual(1);
    for (const f of noControls) expect(Object.isFrozen(f.compliance.controls)).toBe(true);
  });
});
