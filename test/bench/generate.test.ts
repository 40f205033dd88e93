/**
 * The bench generator has the mix issue 7 asks for, and every valid input normalizes to the finding it
 * promises (the bench's throughput figures count those findings).
 */
import { describe, expect, it } from 'vitest';
import { percentile } from '../../bench/e2e.js';
import { type GeneratedShape, generate, mixOf } from '../../bench/generate.js';
import { normalize } from '../../shared/core/pipeline/normalize.js';
import { loadFixture } from '../helpers/fixtures.js';

/** The documented shape each generated shape renders (the samples, and the fixtures made like them). */
const DOCUMENTED: Record<GeneratedShape, string> = {
  'gd-s3': 'guardduty/s3-bucket-anonymous-access.eventbridge.json',
  'gd-ec2': 'guardduty/instance-crypto.eventbridge.json',
  'gd-key': 'guardduty/accesskey-iamuser-malicious-ip.eventbridge.json',
  'sh-s3': 'securityhub/s3.8-failed.eventbridge.json',
  'sh-iam': 'securityhub/iam.3.eventbridge.json',
  'def-assessment': 'defender/assessment-storage-public-access.json',
  'def-alert': 'defender/alert-storage-open-acl.workflow-automation.json',
  'scc-bucket': 'scc/public-bucket-acl.notification.json',
  'scc-firewall': 'scc/open-firewall.notification.json',
};

/** Every field path of a JSON value (`detail.resource.s3BucketDetails[].owner.id`); array items merged. */
function fieldPaths(value: unknown, at = '', out = new Set<string>()): Set<string> {
  if (Array.isArray(value)) for (const item of value) fieldPaths(item, `${at}[]`, out);
  else if (typeof value === 'object' && value !== null)
    for (const [k, v] of Object.entries(value)) {
      out.add(`${at}.${k}`);
      fieldPaths(v, `${at}.${k}`, out);
    }
  return out;
}

/** The SCC notification inside a Pub/Sub push body; anything else as it is. */
function unwrapped(value: unknown): unknown {
  const data = (value as { message?: { data?: string } }).message?.data;
  return data === undefined ? value : JSON.parse(Buffer.from(data, 'base64').toString('utf8'));
}

describe('bench generator', () => {
  it('has all four sources, ~20% repeats, ~5% resolutions, ~60% tagged resources and ~1% bad inputs when generating 20k', () => {
    // Prepare + Act
    const mix = mixOf(generate(20_000));
    // Assess
    for (const share of Object.values(mix.sources)) expect(share).toBeGreaterThan(0.1);
    expect(mix.repeats).toBeGreaterThan(0.18);
    expect(mix.repeats).toBeLessThan(0.22);
    expect(mix.resolutions).toBeGreaterThan(0.04);
    expect(mix.resolutions).toBeLessThan(0.06);
    expect(mix.taggedResources).toBeGreaterThan(0.55);
    expect(mix.taggedResources).toBeLessThan(0.65);
    expect(mix.bad).toBeGreaterThan(0.005);
    expect(mix.bad).toBeLessThan(0.015);
  });

  it('yields exactly the promised findings when each generated input is normalized', () => {
    // Prepare
    const inputs = generate(2_000, 3);
    let findings = 0;
    let parseFailures = 0;
    let tagged = 0;
    // Act
    for (const input of inputs) {
      let value: unknown;
      try {
        value = JSON.parse(input.text);
      } catch {
        parseFailures++;
        continue;
      }
      const out = normalize(value, 'gen', { validate: true });
      expect(out.rejected).toEqual([]);
      findings += out.findings.length;
      if (input.tagged && out.findings[0] && Object.keys(out.findings[0].resource.tags).length > 0) tagged++;
    }
    // Assess
    expect(parseFailures).toBe(inputs.filter((i) => i.bad).length);
    expect(findings).toBe(inputs.reduce((n, i) => n + i.findings, 0));
    expect(tagged).toBe(inputs.filter((i) => !i.bad && i.tagged).length);
  });

  it('renders every field of each documented shape, so the JSON.parse baseline parses what a reader gets', () => {
    // Prepare: the first new, active, tagged (where the shape carries tags) input of each shape.
    const inputs = generate(2_000, 3).filter((i) => !i.bad && !i.repeat && !i.resolution);
    for (const [shape, fixture] of Object.entries(DOCUMENTED)) {
      const input = inputs.find(
        (i) => i.shape === shape && (i.tagged || !inputs.some((j) => j.shape === shape && j.tagged)),
      );
      // Act
      const generated = fieldPaths(unwrapped(JSON.parse(input?.text ?? 'null')));
      const documented = fieldPaths(loadFixture(fixture));
      // Assess
      expect(
        [...documented].filter((p) => !generated.has(p)),
        `${shape} lacks fields of ${fixture}`,
      ).toEqual([]);
    }
  });

  it('is the same stream when generated twice with one seed', () => {
    expect(generate(300, 9).map((i) => i.text)).toEqual(generate(300, 9).map((i) => i.text));
  });
});

describe('percentile', () => {
  it('takes the nearest rank when the list is sorted ascending', () => {
    const xs = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(xs, 50)).toBe(50);
    expect(percentile(xs, 99)).toBe(99);
    expect(percentile([7], 99)).toBe(7);
    expect(Number.isNaN(percentile([], 50))).toBe(true);
  });
});
