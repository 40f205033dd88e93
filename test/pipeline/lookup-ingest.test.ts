/**
 * Live tag lookups in the ingest: findings whose event carries no tags are looked up together per chunk
 * (each resource once, the AWS adapter's batches of 100), and the hub wiring builds the lookup only when
 * the policy turns it on.
 */
import { join } from 'node:path';
import {
  GetResourcesCommand,
  ResourceGroupsTaggingAPIClient,
  ResourceGroupsTaggingAPIServiceException,
} from '@aws-sdk/client-resource-groups-tagging-api';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { loadConfig } from '../../shared/adapters/config/load.js';
import { MemoryDocStore } from '../../shared/adapters/store/memory.js';
import { type AwsPorts, createAwsPorts } from '../../shared/adapters/wiring/aws.js';
import { createAwsIngest } from '../../shared/adapters/wiring/aws-ingest.js';
import type { Config } from '../../shared/core/config.js';
import { createEnricher } from '../../shared/core/pipeline/enrich.js';
import { createIngest, type IngestDoc } from '../../shared/core/pipeline/ingest.js';
import { type OwnerLookup, type ResourceRef, silentLogger } from '../../shared/core/ports.js';
import { loadFixture, variant } from '../helpers/fixtures.js';

const clock = { now: () => new Date('2026-12-07T12:00:00Z') };
const tagging = mockClient(ResourceGroupsTaggingAPIClient);

/** A Security Hub event of `n` S3.8 findings on `buckets` distinct untagged buckets (round robin). */
function untaggedBatch(n: number, buckets: number, from = 0): IngestDoc {
  const base = loadFixture('securityhub/s3.8-failed.eventbridge.json') as {
    detail: { findings: Array<Record<string, unknown>> };
  };
  const one = base.detail.findings[0] as Record<string, unknown> & { Resources: Array<Record<string, unknown>> };
  const findings = Array.from({ length: n }, (_, i) => {
    const bucket = `arn:aws:s3:::acme-untagged-${(from + i) % buckets}`;
    const { Tags: _tags, ...resource } = one.Resources[0] as Record<string, unknown>;
    return { ...one, Id: `${String(one.Id)}-${from + i}`, Resources: [{ ...resource, Id: bucket }] };
  });
  return { input: `batch-${from}`, value: variant(base, { 'detail.findings': findings }) };
}

async function withLookup(enabled: boolean): Promise<Config> {
  const config = await loadConfig(join(import.meta.dirname, '../../examples/config'));
  config.policy.enrichment.lookup = { enabled, ttlSeconds: 900, maxEntries: 10_000 };
  return config;
}

/** The core ingest on a memory store, enriching through `lookup`. */
function ingestWith(config: Config, lookup: OwnerLookup, chunkSize?: number) {
  return createIngest({
    store: new MemoryDocStore(),
    bus: { publish: async () => {} },
    enricher: createEnricher({
      registry: config.registry,
      policy: config.policy.enrichment,
      lookup,
      log: silentLogger,
    }),
    config,
    exceptions: async () => [],
    clock,
    log: silentLogger,
    ...(chunkSize ? { chunkSize } : {}),
  });
}

describe('ingest with live lookups', () => {
  it('looks up each untagged resource once per chunk, in batches, and keeps the order of the findings', async () => {
    // Prepare: 1,000 findings on 300 buckets, chunks of 400.
    const config = await withLookup(true);
    const tagsForMany = vi.fn(async (refs: readonly ResourceRef[]) =>
      refs.map((r) => ({ tags: { owner: `${r.id.slice('arn:aws:s3:::'.length)}@acme.example` } })),
    );
    const tagsFor = vi.fn();
    const lookup: OwnerLookup = { tagsFor, tagsForMany };
    const ingest = ingestWith(config, lookup, 400);
    // Act
    const out = await ingest.ingest([untaggedBatch(1_000, 300)]);
    // Assess
    expect(out.results).toHaveLength(1_000);
    expect(tagsFor).not.toHaveBeenCalled();
    expect(tagsForMany.mock.calls.map(([refs]) => refs.length)).toEqual([300, 300, 200]);
    for (const r of out.results) {
      expect(r.enrichment.owner).toBe(`${r.finding.resource.id.slice('arn:aws:s3:::'.length)}@acme.example`);
      expect(r.enrichment.provenance.owner.via).toBe('lookup');
    }
  });
});

describe('decide on looked-up tags', () => {
  it('gates the skip tag a lookup found, and fails the gate closed where the lookup failed', async () => {
    // Prepare: three untagged buckets; the lookup finds the skip tag on one and cannot read another.
    const config = await withLookup(true);
    const lookup: OwnerLookup = {
      tagsFor: vi.fn(),
      tagsForMany: async (refs) =>
        refs.map((r) =>
          r.id.endsWith('-1')
            ? { tags: { owner: 'x@acme.example', 'closeloop:skip': 'change-42' } }
            : r.id.endsWith('-2')
              ? { error: new Error('ThrottlingException') }
              : { tags: { owner: 'x@acme.example' } },
        ),
    };
    const ingest = ingestWith(config, lookup);
    // Act
    const out = await ingest.ingest([untaggedBatch(3, 3)]);
    // Assess
    const skipGate = (suffix: string) =>
      out.results
        .find((r) => r.finding.resource.id.endsWith(suffix))
        ?.decision.remediation.gates.find((g) => g.gate === 'skip-tag');
    expect(skipGate('-0')?.outcome).toBe('pass');
    expect(skipGate('-1')).toMatchObject({ outcome: 'block' });
    expect(skipGate('-2')?.outcome).toBe('unknown');
  });
});

describe('the hub ingest wiring', () => {
  beforeEach(() => tagging.reset());

  const hubPorts = (config: Config, account = '111122223333'): AwsPorts => ({
    ...createAwsPorts(
      {
        CLOSELOOP_TABLE: 'closeloop-test',
        CLOSELOOP_BUS: 'closeloop-test',
        AWS_REGION: 'eu-west-1',
        CLOSELOOP_ACCOUNT_ID: account,
      },
      { loadConfig: async () => config, clock },
    ),
    store: new MemoryDocStore(),
    bus: { publish: async () => {} },
    log: silentLogger,
  });

  it('reads the live tags through the Tagging API, 100 ARNs a call, when the policy turns lookups on', async () => {
    // Prepare
    tagging.on(GetResourcesCommand).callsFake((input: { ResourceARNList?: string[] }) => ({
      ResourceTagMappingList: (input.ResourceARNList ?? []).map((arn) => ({
        ResourceARN: arn,
        Tags: [
          { Key: 'owner', Value: 'lake@acme.example' },
          { Key: 'env', Value: 'dev' },
        ],
      })),
    }));
    const config = await withLookup(true);
    const ports = { ...hubPorts(config), config: async () => config };
    const ingest = await createAwsIngest(ports);
    // Act
    const out = await ingest.ingest([untaggedBatch(250, 250)]);
    // Assess
    const lists = tagging.commandCalls(GetResourcesCommand).map((c) => c.args[0].input.ResourceARNList?.length);
    expect(lists).toEqual([100, 100, 50]);
    expect(new Set(out.results.map((r) => r.enrichment.owner))).toEqual(new Set(['lake@acme.example']));
    expect(out.results[0]?.enrichment.environment).toBe('dev');
  });

  it('fails closed per finding when the Tagging API refuses: enrichment incomplete, the refusal named', async () => {
    // Prepare
    tagging.on(GetResourcesCommand).rejects(
      new ResourceGroupsTaggingAPIServiceException({
        name: 'AccessDeniedException',
        $fault: 'client',
        $metadata: { httpStatusCode: 403 },
        message: 'not authorized to perform tag:GetResources',
      }),
    );
    const config = await withLookup(true);
    const ingest = await createAwsIngest({ ...hubPorts(config), config: async () => config });
    // Act
    const out = await ingest.ingest([untaggedBatch(3, 3)]);
    // Assess
    expect(out.results).toHaveLength(3);
    for (const r of out.results) {
      expect(r.enrichment.complete).toBe(false);
      expect(r.enrichment.warnings[0]).toContain('live tag lookup failed');
      expect(r.enrichment.warnings[0]).toContain('AccessDeniedException');
    }
  });

  it("names a resource of another account as not readable from the hub's, and asks the API nothing for it", async () => {
    // Prepare
    tagging.on(GetResourcesCommand).resolves({ ResourceTagMappingList: [] });
    const config = await withLookup(true);
    const ingest = await createAwsIngest({ ...hubPorts(config, '999988887777'), config: async () => config });
    // Act
    const out = await ingest.ingest([untaggedBatch(2, 2)]);
    // Assess
    expect(tagging.commandCalls(GetResourcesCommand)).toHaveLength(0);
    for (const r of out.results) {
      expect(r.enrichment.complete).toBe(false);
      expect(r.enrichment.warnings[0]).toContain('answers for account 999988887777 only');
    }
  });

  it('calls no cloud when lookups are off, and never looks up a resource the hub cannot read', async () => {
    // Prepare
    tagging.on(GetResourcesCommand).resolves({ ResourceTagMappingList: [] });
    const off = await withLookup(false);
    const on = await withLookup(true);
    const gcp: IngestDoc = { input: 'scc', value: loadFixture('scc/public-bucket-acl.notification.json') };
    // Act
    const fromOff = await (await createAwsIngest({ ...hubPorts(off), config: async () => off })).ingest([
      untaggedBatch(5, 5),
    ]);
    const fromGcp = await (await createAwsIngest({ ...hubPorts(on), config: async () => on })).ingest([gcp]);
    // Assess
    expect(tagging.commandCalls(GetResourcesCommand)).toHaveLength(0);
    expect(fromOff.results.every((r) => r.enrichment.complete && r.enrichment.provenance.owner.via !== 'lookup')).toBe(
      true,
    );
    expect(fromGcp.results).toHaveLength(1);
    expect(fromGcp.results[0]?.enrichment.complete).toBe(true);
  });
});
