/** The embedded default's live lookups: built only when asked for, batched, and used by the enrichment. */
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createLocalRuntime } from '../../shared/adapters/wiring/local.js';
import type { OwnerLookup, ResourceRef } from '../../shared/core/ports.js';
import { loadFixture } from '../helpers/fixtures.js';
import { tempDir } from '../helpers/tmp.js';

const EXAMPLES = join(import.meta.dirname, '../../examples/config');

/** A Security Hub event of S3.8 findings on untagged buckets. */
function untagged(buckets: string[]) {
  const base = loadFixture('securityhub/s3.8-failed.eventbridge.json') as {
    detail: { findings: Array<Record<string, unknown> & { Resources: Array<Record<string, unknown>> }> };
  };
  const one = base.detail.findings[0] as (typeof base.detail.findings)[number];
  const { Tags: _tags, ...resource } = one.Resources[0] as Record<string, unknown>;
  base.detail.findings = buckets.map((b, i) => ({
    ...one,
    Id: `${String(one.Id)}-${i}`,
    Resources: [{ ...resource, Id: `arn:aws:s3:::${b}` }],
  }));
  return { input: 'untagged.json', value: base as unknown };
}

describe('local runtime, live lookups', () => {
  let tmp: ReturnType<typeof tempDir>;
  let configDir: string;
  let lookup: OwnerLookup & { tagsForMany: ReturnType<typeof vi.fn> };
  beforeEach(() => {
    tmp = tempDir();
    configDir = join(tmp.dir, 'config');
    cpSync(EXAMPLES, configDir, { recursive: true });
    lookup = {
      tagsFor: vi.fn(async () => ({})),
      tagsForMany: vi.fn(async (refs: readonly ResourceRef[]) =>
        refs.map((r) => ({ tags: { owner: `live-${r.id.split(':::')[1]}@acme.example` } })),
      ),
    };
  });
  afterEach(() => tmp.cleanup());

  const turnLookupsOn = () => {
    const file = join(configDir, 'policy.yaml');
    const text = readFileSync(file, 'utf8');
    expect(text).toContain('lookup: { enabled: false }');
    writeFileSync(file, text.replace('lookup: { enabled: false }', 'lookup: { enabled: true, ttlSeconds: 60 }'));
  };

  it('enriches untagged findings from one batched lookup when the policy turns lookups on', async () => {
    // Prepare
    turnLookupsOn();
    const rt = await createLocalRuntime({ home: join(tmp.dir, 'home'), configDir, env: {}, lookup });
    // Act
    const out = await rt.ingest.ingest([untagged(['one', 'two', 'one'])]);
    await rt.close();
    // Assess
    expect(lookup.tagsForMany).toHaveBeenCalledOnce();
    expect(out.results.map((r) => r.enrichment.owner)).toEqual([
      'live-one@acme.example',
      'live-two@acme.example',
      'live-one@acme.example',
    ]);
  });

  it('never consults the lookup for enrichment while the policy keeps lookups off (the default)', async () => {
    // Prepare
    const rt = await createLocalRuntime({ home: join(tmp.dir, 'home'), configDir, env: {}, lookup });
    // Act
    const out = await rt.ingest.ingest([untagged(['one'])]);
    await rt.close();
    // Assess
    expect(lookup.tagsForMany).not.toHaveBeenCalled();
    expect(lookup.tagsFor).not.toHaveBeenCalled();
    expect(out.results[0]?.enrichment.provenance.owner.via).not.toBe('lookup');
    expect(rt.remediation.tags).toBeUndefined();
  });
});
