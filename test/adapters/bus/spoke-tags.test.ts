/**
 * Live tags read by a spoke (the hub cannot read Azure or GCP tags): attached to the forwarded document,
 * carried by the hub's ingest event, and used by the hub's enrichment and skip-tag gate.
 */
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { hubIngestDoc, SPOKE_DETAIL_TYPE, SpokeDetailSchema, spokeSource } from '../../../shared/adapters/bus/spoke.js';
import { acceptDocuments } from '../../../shared/adapters/bus/spoke-accept.js';
import { loadConfig } from '../../../shared/adapters/config/load.js';
import { AzureResourceTagsLookup } from '../../../shared/adapters/lookup/azure-tags.js';
import { GcpLabelsLookup } from '../../../shared/adapters/lookup/gcp-labels.js';
import { MemoryDocStore } from '../../../shared/adapters/store/memory.js';
import { createAzureSpoke } from '../../../shared/adapters/wiring/azure.js';
import type { Config } from '../../../shared/core/config.js';
import { RegistrySchema } from '../../../shared/core/enrich/registry.js';
import { createEnricher } from '../../../shared/core/pipeline/enrich.js';
import { createIngest } from '../../../shared/core/pipeline/ingest.js';
import { type OwnerLookup, type ResourceRef, silentLogger } from '../../../shared/core/ports.js';
import { loadFixture } from '../../helpers/fixtures.js';

const STORAGE =
  '/subscriptions/6c1f3d2a-9b4e-4f7a-8d2c-5e0b1a7c9f36/resourceGroups/rg-shared-services/providers/Microsoft.Storage/storageAccounts/stacmeshared01';
const VAULT =
  '/subscriptions/6c1f3d2a-9b4e-4f7a-8d2c-5e0b1a7c9f36/resourceGroups/rg-media/providers/Microsoft.KeyVault/vaults/kv-media-prod';
const docs = [
  { input: 'eventgrid:1', value: loadFixture('defender/assessment-storage-public-access.json') },
  { input: 'eventgrid:2', value: loadFixture('defender/alert.arm.json') },
];

/** The hub's ingest event carrying one forwarded document's detail, as the spoke's forwarder puts it. */
const hubEvent = (spoke: 'azure' | 'gcp', id: string, detail: unknown) => ({
  version: '0',
  id,
  'detail-type': SPOKE_DETAIL_TYPE,
  source: spokeSource(spoke),
  account: '111122223333',
  time: '2026-12-07T10:00:00Z',
  region: 'us-east-1',
  resources: [],
  detail: JSON.parse(JSON.stringify(detail)) as unknown,
});

/** What the hub's ingest makes of one such event (the examples' configuration; `registry` instead of its own). */
async function hubIngestOne(event: ReturnType<typeof hubEvent>, registry?: Config['registry']) {
  const config = await loadConfig(join(import.meta.dirname, '../../../examples/config'));
  const ingest = createIngest({
    store: new MemoryDocStore(),
    bus: { publish: async () => {} },
    enricher: createEnricher({
      registry: registry ?? config.registry,
      policy: config.policy.enrichment,
      log: silentLogger,
    }),
    config,
    exceptions: async () => [],
    clock: { now: () => new Date('2026-12-07T12:00:00Z') },
    log: silentLogger,
  });
  const doc = hubIngestDoc(event);
  if (!('value' in doc)) throw new Error(`refused: ${JSON.stringify(doc.refused)}`);
  return (await ingest.ingest([doc])).results[0];
}

describe('a spoke reads live tags for what it forwards', () => {
  it('attaches each untagged resource’s tags, or why they could not be read, looking each up once', async () => {
    // Prepare
    const tagsForMany = vi.fn(async (refs: readonly ResourceRef[]) =>
      refs.map((r) =>
        r.id === VAULT
          ? { error: new Error('AuthorizationFailed: tags/read') }
          : { tags: { owner: 'ops@acme.example' } },
      ),
    );
    const lookup: OwnerLookup = { tagsFor: vi.fn(), tagsForMany, handles: (p) => p === 'azure' };
    // Act
    const { details } = await acceptDocuments('azure', [...docs, docs[0] as (typeof docs)[number]], lookup);
    // Assess
    expect(tagsForMany).toHaveBeenCalledOnce();
    expect(tagsForMany.mock.calls[0]?.[0].map((r) => r.id)).toEqual([STORAGE, VAULT]);
    expect(details.map((d) => d.liveTags)).toEqual([
      { [STORAGE]: { tags: { owner: 'ops@acme.example' } } },
      { [VAULT]: { error: 'AuthorizationFailed: tags/read' } },
      { [STORAGE]: { tags: { owner: 'ops@acme.example' } } },
    ]);
    for (const d of details) expect(SpokeDetailSchema.parse(d)).toEqual(d);
  });

  it('forwards no tags when its lookup is off (the default), and builds one for its own cloud when on', async () => {
    // Prepare
    const env = {
      CLOSELOOP_HUB_BUS_ARN: 'arn:aws:events:us-east-1:111122223333:event-bus/closeloop',
      CLOSELOOP_FORWARDER_ROLE_ARN: 'arn:aws:iam::111122223333:role/closeloop-dev-azure-spoke',
    };
    // Act
    const off = createAzureSpoke(env);
    const on = createAzureSpoke({ ...env, CLOSELOOP_TAG_LOOKUP: 'true' });
    const { details } = await acceptDocuments('azure', docs, off.tags);
    // Assess
    expect(off.tags).toBeUndefined();
    expect(details.every((d) => d.liveTags === undefined)).toBe(true);
    expect([on.tags?.handles?.('azure'), on.tags?.handles?.('aws')]).toEqual([true, false]);
  });

  it('the hub enriches from the tags the spoke read, gates their skip tag, and fails closed where the spoke could not read', async () => {
    // Prepare: the storage account carries the skip tag now; the vault's tags were unreadable.
    const lookup: OwnerLookup = {
      tagsFor: vi.fn(),
      tagsForMany: async (refs) =>
        refs.map((r) =>
          r.id === VAULT
            ? { error: new Error('AuthorizationFailed') }
            : { tags: { owner: 'storage-team@acme.example', 'closeloop:skip': 'migration' } },
        ),
    };
    const { details } = await acceptDocuments('azure', docs, lookup);
    const events = details.map((detail, i) => hubEvent('azure', `ev-${i}`, detail));
    const config = await loadConfig(join(import.meta.dirname, '../../../examples/config'));
    const hubLookup = { tagsFor: vi.fn(), tagsForMany: vi.fn() };
    const ingest = createIngest({
      store: new MemoryDocStore(),
      bus: { publish: async () => {} },
      // The hub's own lookup is never asked: the spoke already read these tags.
      enricher: createEnricher({
        registry: config.registry,
        policy: config.policy.enrichment,
        lookup: hubLookup,
        log: silentLogger,
      }),
      config,
      exceptions: async () => [],
      clock: { now: () => new Date('2026-12-07T12:00:00Z') },
      log: silentLogger,
    });
    // Act
    const hubDocs = events.map((e) => hubIngestDoc(e)).filter((d) => 'value' in d);
    const out = await ingest.ingest(hubDocs);
    // Assess
    const storage = out.results.find((r) => r.finding.resource.id === STORAGE);
    const vault = out.results.find((r) => r.finding.resource.id === VAULT);
    expect(storage?.enrichment.owner).toBe('storage-team@acme.example');
    expect(storage?.enrichment.provenance.owner.via).toBe('lookup');
    expect(storage?.decision.remediation.gates.find((g) => g.gate === 'skip-tag')?.outcome).toBe('block');
    expect(vault?.enrichment.complete).toBe(false);
    expect(vault?.enrichment.warnings[0]).toContain('AuthorizationFailed');
    // (no action applies to a Key Vault alert: no gate is evaluated; none passes)
    expect(vault?.decision.remediation.gates.find((g) => g.gate === 'skip-tag')?.outcome).not.toBe('pass');
    expect(hubDocs).toHaveLength(events.length);
    expect(hubLookup.tagsFor).not.toHaveBeenCalled();
    expect(hubLookup.tagsForMany).not.toHaveBeenCalled();
  });

  it("the hub takes an Azure resource's owner from its resource group's tags, read by the spoke, and gates the group's skip tag", async () => {
    // Prepare: rg-shared-services is tagged owner and closeloop:skip; the storage account has no tags of its own
    const group = '/subscriptions/6c1f3d2a-9b4e-4f7a-8d2c-5e0b1a7c9f36/resourceGroups/rg-shared-services';
    const azure = new AzureResourceTagsLookup(() => ({
      tagsOperations: {
        getAtScope: async (scope: string) => ({
          properties: {
            tags: `/${scope}` === group ? { owner: 'shared-services@acme.example', 'closeloop:skip': 'migration' } : {},
          },
        }),
      },
    }));
    const { details } = await acceptDocuments('azure', [docs[0] as (typeof docs)[number]], azure);
    // Act
    const storage = await hubIngestOne(hubEvent('azure', 'ev-azure', details[0]));
    // Assess: the group's owner before the subscription's team (media) in the registry, and its skip tag stops the fix
    expect(storage?.finding.resource.id).toBe(STORAGE);
    expect(storage?.enrichment.owner).toBe('shared-services@acme.example');
    expect(storage?.enrichment.provenance.owner.detail).toBe(
      'owner from tag `owner` found by a live lookup of its resource group rg-shared-services',
    );
    expect(storage?.decision.remediation.gates.find((g) => g.gate === 'skip-tag')?.outcome).toBe('block');
  });

  it("the hub takes an Azure resource's environment from its subscription's tags, read by the spoke, over the registry's entry, and gates the subscription's skip tag", async () => {
    // Prepare: the subscription (prod in the registry) is tagged env=staging and closeloop:skip; neither
    // rg-shared-services nor the storage account carry a tag
    const subscription = '/subscriptions/6c1f3d2a-9b4e-4f7a-8d2c-5e0b1a7c9f36';
    const azure = new AzureResourceTagsLookup(() => ({
      tagsOperations: {
        getAtScope: async (scope: string) => ({
          properties: { tags: `/${scope}` === subscription ? { env: 'staging', 'closeloop:skip': 'tenant move' } : {} },
        }),
      },
    }));
    const { details } = await acceptDocuments('azure', [docs[0] as (typeof docs)[number]], azure);
    // Act
    const storage = await hubIngestOne(hubEvent('azure', 'ev-azure-sub', details[0]));
    // Assess
    expect(storage?.finding.resource.id).toBe(STORAGE);
    expect(storage?.enrichment.environment).toBe('staging');
    expect(storage?.enrichment.provenance.environment.detail).toBe(
      'environment from tag `env` found by a live lookup of its subscription 6c1f3d2a-9b4e-4f7a-8d2c-5e0b1a7c9f36',
    );
    expect(storage?.decision.remediation.gates.find((g) => g.gate === 'skip-tag')?.outcome).toBe('block');
  });

  it("keeps which inherited tags are the subscription's on the wire, and still takes an older spoke's message without it", () => {
    // Prepare: a spoke's message saying the levels, and one from before subscription tags were read
    const withLevels = {
      tags: { owner: 'ops@acme.example', env: 'prod' },
      inherited: { owner: 'ops@acme.example', env: 'prod' },
      inheritedFrom: { owner: 'group', env: 'subscription' },
    };
    const older = { tags: { owner: 'ops@acme.example' }, inherited: { owner: 'ops@acme.example' } };
    const detail = (liveTag: unknown) => ({
      spoke: 'azure',
      input: 'eventgrid:1',
      document: {},
      findingKeys: [],
      liveTags: { [STORAGE]: liveTag },
    });
    // Act
    const parsed = SpokeDetailSchema.parse(detail(withLevels));
    const parsedOlder = SpokeDetailSchema.safeParse(detail(older));
    const unknownLevel = SpokeDetailSchema.safeParse(detail({ ...withLevels, inheritedFrom: { env: 'tenant' } }));
    // Assess
    expect(parsed.liveTags?.[STORAGE]).toEqual(withLevels);
    expect(parsedOlder.success && parsedOlder.data.liveTags?.[STORAGE]).toEqual(older);
    expect(unknownLevel.success).toBe(false);
  });

  it("the hub ranks a GCP project's labels, read by the spoke, after a registry rule naming the bucket, and still gates their skip label", async () => {
    // Prepare: the project is labelled owner=platform-team and closeloop-skip; the bucket has no labels
    const gcp = new GcpLabelsLookup(
      { getProject: async () => [{ labels: { owner: 'platform-team', 'closeloop-skip': 'true' } }] },
      async () => ({}),
    );
    const { details } = await acceptDocuments(
      'gcp',
      [{ input: 'pubsub:1', value: loadFixture('scc/public-bucket-acl.notification.json') }],
      gcp,
    );
    const config = await loadConfig(join(import.meta.dirname, '../../../examples/config'));
    const registry = RegistrySchema.parse({
      ...config.registry,
      rules: [
        {
          id: 'uploads',
          match: { provider: 'gcp', resource: '//storage.googleapis.com/acme-web-uploads' },
          owner: 'uploads-owner@acme.example',
        },
      ],
    });
    // Act
    const bucket = await hubIngestOne(hubEvent('gcp', 'ev-gcp', details[0]), registry);
    // Assess
    expect(bucket?.finding.resource.id).toBe('//storage.googleapis.com/acme-web-uploads');
    expect(bucket?.enrichment.owner).toBe('uploads-owner@acme.example');
    expect(bucket?.enrichment.provenance.owner.via).toBe('registry-rule');
    expect(bucket?.decision.remediation.gates.find((g) => g.gate === 'skip-tag')?.outcome).toBe('block');
  });
});
