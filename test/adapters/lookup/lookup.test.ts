import { IAMClient, ListRoleTagsCommand, ListUserTagsCommand } from '@aws-sdk/client-iam';
import {
  GetResourcesCommand,
  ResourceGroupsTaggingAPIClient,
  ResourceGroupsTaggingAPIServiceException,
} from '@aws-sdk/client-resource-groups-tagging-api';
import { ResourceManagementClient } from '@azure/arm-resources';
import type { ProjectsClient } from '@google-cloud/resource-manager';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeEach, describe, expect, expectTypeOf, it, vi } from 'vitest';
import { AwsTaggingOwnerLookup } from '../../../shared/adapters/lookup/aws-tagging.js';
import {
  AzureResourceTagsLookup,
  type AzureTagsClient,
  resourceGroupScopeOf,
  subscriptionScopeOf,
} from '../../../shared/adapters/lookup/azure-tags.js';
import { CachedOwnerLookup } from '../../../shared/adapters/lookup/cached.js';
import { GcpLabelsLookup, type GcpProjectsClient, gcsBucketOf } from '../../../shared/adapters/lookup/gcp-labels.js';
import { RoutingOwnerLookup } from '../../../shared/adapters/lookup/routing.js';
import { liveOwnerLookup } from '../../../shared/adapters/wiring/lookup.js';
import { isDenied, isGone, isRetryable, isThrottled, isTransient } from '../../../shared/core/errors.js';
import type { OwnerLookup, ResourceRef } from '../../../shared/core/ports.js';
import { readSkipTag } from '../../../shared/core/remediation/gates.js';
import { armAnswering, armCredential, armHeaders } from '../../helpers/arm-double.js';

// The real SDK clients satisfy the narrow interfaces the adapters take (checked by `npm run typecheck`).
it('the real Azure and GCP SDK clients fit the adapters interfaces', () => {
  expectTypeOf<ResourceManagementClient>().toExtend<AzureTagsClient>();
  expectTypeOf<ProjectsClient>().toExtend<GcpProjectsClient>();
});

const tagging = mockClient(ResourceGroupsTaggingAPIClient);
/** What `lookup.tagsFor(r)` throws (or, if it does not throw, its answer). */
const refusalOf = (lookup: OwnerLookup, r: ResourceRef) => lookup.tagsFor(r).catch((e: unknown) => e);
const BUCKET: ResourceRef = {
  provider: 'aws',
  id: 'arn:aws:s3:::acme-data',
  account: '111122223333',
  region: 'eu-west-1',
};
const INSTANCE: ResourceRef = {
  provider: 'aws',
  id: 'arn:aws:ec2:us-east-2:111122223333:instance/i-0abc1234def567890',
  account: '111122223333',
  region: 'us-east-2',
};
const AZURE_ID =
  '/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/st1';

describe('AwsTaggingOwnerLookup', () => {
  beforeEach(() => tagging.reset());

  it('calls GetResources with exactly the resource ARN in its region and maps the tags', async () => {
    // Prepare
    tagging.on(GetResourcesCommand).resolves({
      ResourceTagMappingList: [{ ResourceARN: INSTANCE.id, Tags: [{ Key: 'owner', Value: 'ops@acme.example' }] }],
    });
    const regions: string[] = [];
    const lookup = new AwsTaggingOwnerLookup((region) => {
      regions.push(region);
      return new ResourceGroupsTaggingAPIClient({ region });
    });
    // Act
    const tags = await lookup.tagsFor(INSTANCE);
    // Assess
    expect(tags).toEqual({ owner: 'ops@acme.example' });
    expect(tagging).toHaveReceivedCommandWith(GetResourcesCommand, { ResourceARNList: [INSTANCE.id] });
    expect(tagging).toHaveReceivedCommandTimes(GetResourcesCommand, 1);
    expect(regions).toEqual(['us-east-2']);
  });

  it("uses the finding's region for region-less ARNs and returns no tags for an untagged resource", async () => {
    // Prepare
    tagging.on(GetResourcesCommand).resolves({ ResourceTagMappingList: [] });
    const regions: string[] = [];
    const lookup = new AwsTaggingOwnerLookup((region) => {
      regions.push(region);
      return new ResourceGroupsTaggingAPIClient({ region });
    });
    // Act
    const tags = await lookup.tagsFor(BUCKET);
    // Assess
    expect(tags).toEqual({});
    expect(regions).toEqual(['eu-west-1']);
  });

  it.each([
    ['ThrottlingException', 429, isThrottled],
    ['AccessDeniedException', 403, isDenied],
    // 408: the server gave up waiting for the request; the next try may well go through.
    ['RequestTimeout', 408, isTransient],
  ])('throws a classified AdapterError when AWS answers %s', async (name, status, predicate) => {
    // Prepare
    tagging.on(GetResourcesCommand).rejects(
      new ResourceGroupsTaggingAPIServiceException({
        name,
        $fault: 'client',
        $metadata: { httpStatusCode: status, requestId: 'req-0001' },
        message: name,
      }),
    );
    const lookup = new AwsTaggingOwnerLookup((region) => new ResourceGroupsTaggingAPIClient({ region }));
    // Act
    const error = await lookup.tagsFor(BUCKET).catch((e: unknown) => e);
    // Assess
    expect(predicate(error)).toBe(true);
    expect(String(error)).toContain(`tag:GetResources for ${BUCKET.id} in eu-west-1: ${name}`);
  });
});

describe('AzureResourceTagsLookup', () => {
  it('reads the tags at the resource scope with a client for its subscription', async () => {
    // Prepare
    const getAtScope = vi.fn(async (_scope: string) => ({ properties: { tags: { Owner: 'media-ops@acme.example' } } }));
    const subs: string[] = [];
    const lookup = new AzureResourceTagsLookup((sub) => {
      subs.push(sub);
      return { tagsOperations: { getAtScope } };
    });
    // Act
    const tags = await lookup.tagsFor({
      provider: 'azure',
      id: AZURE_ID,
      account: '00000000-0000-0000-0000-000000000000',
      region: null,
    });
    // Assess
    expect(tags).toEqual({ Owner: 'media-ops@acme.example' });
    expect(getAtScope).toHaveBeenCalledWith(AZURE_ID.slice(1), expect.anything());
    expect(subs).toEqual(['00000000-0000-0000-0000-000000000000']);
  });

  it('gives up within its deadline when ARM throttles with a long Retry-After (the SDK would sleep it out)', async () => {
    // Prepare: the real ARM client, whose pipeline retries a 429 after its Retry-After (an hour here)
    const { sent, httpClient } = armAnswering(429, 'TooManyRequests', { 'retry-after': '3600' });
    const credential = armCredential;
    const lookup = new AzureResourceTagsLookup((sub) => new ResourceManagementClient(credential, sub, { httpClient }), {
      timeoutMs: 200,
    });
    // Act
    const started = Date.now();
    const error = await refusalOf(lookup, {
      provider: 'azure',
      id: AZURE_ID,
      account: '00000000-0000-0000-0000-000000000000',
      region: null,
    });
    // Assess: a retryable failure (the finding is looked up again later), well inside the test's 5 s
    expect(isRetryable(error)).toBe(true);
    // One try of each scope read (the resource's tags, its group's, its subscription's), none waited out
    expect(sent).toHaveLength(3);
    expect(Date.now() - started).toBeLessThan(2_000);
  }, 5_000);

  it('classifies 403 as denied, 404 as gone and 408 as transient when ARM refuses', async () => {
    // Prepare
    const failing = (statusCode: number) =>
      new AzureResourceTagsLookup(() => ({
        tagsOperations: {
          getAtScope: async () => {
            throw Object.assign(new Error('ARM error'), { statusCode });
          },
        },
      }));
    const ref: ResourceRef = {
      provider: 'azure',
      id: AZURE_ID,
      account: '00000000-0000-0000-0000-000000000000',
      region: null,
    };
    // Act
    const denied = await refusalOf(failing(403), ref);
    const gone = await refusalOf(failing(404), ref);
    const timedOut = await refusalOf(failing(408), ref);
    // Assess
    expect(isDenied(denied)).toBe(true);
    expect(isGone(gone)).toBe(true);
    // 408: the server gave up waiting for the request (the moment, not the request): retried, not dropped.
    expect(isTransient(timedOut)).toBe(true);
  });
});

describe('AzureResourceTagsLookup and the resource group', () => {
  const SUB = '9d2e5f1a-3b4c-4d5e-8f6a-7b8c9d0e1f2a';
  const RG = `/subscriptions/${SUB}/resourceGroups/rg-payments-prod`;
  const azure = (id: string): ResourceRef => ({ provider: 'azure', id, account: SUB, region: null });
  const LEDGER = azure(`${RG}/providers/Microsoft.Storage/storageAccounts/stpayledger01`);
  const EXPORTS = azure(`${RG}/providers/Microsoft.Storage/storageAccounts/stpayexports01`);
  /** ARM's Tags API answering by scope (ids compared lower-cased, as ARM does); an Error is thrown. */
  const tagsByScope = (byScope: Record<string, Record<string, string> | Error>) =>
    vi.fn(async (scope: string) => {
      const found = Object.entries(byScope).find(([k]) => k.toLowerCase() === `/${scope}`.toLowerCase())?.[1];
      if (found instanceof Error) throw found;
      return { properties: { tags: found ?? {} } };
    });

  it("reads the resource group's and the subscription's tags through the real ARM client and keeps those the resource does not override apart", async () => {
    // Prepare: the group says owner, env and cost centre; the account has its own `Env` (Azure tag names are
    // case-insensitive: it overrides the group's `env`); the subscription says owner, cost centre and data
    // class (only its data class is left to it)
    const sent: string[] = [];
    const httpClient = {
      sendRequest: async (request: { url: string; method: string }) => {
        sent.push(`${request.method} ${request.url}`);
        const tags = request.url.includes('/storageAccounts/')
          ? { Env: 'staging' }
          : request.url.includes('/resourceGroups/')
            ? { owner: 'alice@acme.example', env: 'prod', costCentre: 'cc-42' }
            : { Owner: 'platform@acme.example', COSTCENTRE: 'cc-1', dataClass: 'internal' };
        return {
          request,
          status: 200,
          headers: armHeaders({ 'content-type': 'application/json' }),
          bodyAsText: JSON.stringify({ id: 'x', name: 'default', properties: { tags } }),
        };
      },
    };
    const lookup = new AzureResourceTagsLookup(
      (sub) => new ResourceManagementClient(armCredential, sub, { httpClient: httpClient as never }),
    );
    // Act
    const [answer] = await lookup.tagsForMany([LEDGER]);
    // Assess
    expect(answer).toEqual({
      tags: { owner: 'alice@acme.example', costCentre: 'cc-42', dataClass: 'internal', Env: 'staging' },
      inherited: { owner: 'alice@acme.example', costCentre: 'cc-42', dataClass: 'internal' },
      inheritedFrom: { owner: 'group', costCentre: 'group', dataClass: 'subscription' },
    });
    // Each scope's Tags API, one slash after the host (the SDK's path is `/{scope}`: an id's own leading slash
    // made it `.com//subscriptions`)
    expect(sent.map((r) => r.replace(/\?api-version=.*$/, '')).sort()).toEqual(
      [
        `GET https://management.azure.com${LEDGER.id}/providers/Microsoft.Resources/tags/default`,
        `GET https://management.azure.com${RG}/providers/Microsoft.Resources/tags/default`,
        `GET https://management.azure.com/subscriptions/${SUB}/providers/Microsoft.Resources/tags/default`,
      ].sort(),
    );
  });

  it('reads a resource group once for the resources of a batch and of later batches within its ttl, through the cache', async () => {
    // Prepare
    let now = Date.parse('2026-11-20T00:00:00Z');
    const getAtScope = tagsByScope({ [RG]: { owner: 'alice@acme.example' } });
    const azureLookup = new AzureResourceTagsLookup(() => ({ tagsOperations: { getAtScope } }), {
      clock: { now: () => new Date(now) },
    });
    const chain = new CachedOwnerLookup(new RoutingOwnerLookup({ azure: azureLookup }), {
      ttlMs: 60_000,
      maxEntries: 10,
    });
    const groupReads = () => getAtScope.mock.calls.filter(([scope]) => `/${scope}` === RG).length;
    // Act
    const batch = await chain.tagsForMany([LEDGER, EXPORTS]);
    const later = await chain.tagsForMany([azure(`${RG.toLowerCase()}/providers/Microsoft.Sql/servers/sql-pay`)]);
    const readsWithinTtl = groupReads();
    now += 15 * 60_000;
    await azureLookup.tagsFor(LEDGER);
    // Assess
    const fromGroup = {
      tags: { owner: 'alice@acme.example' },
      inherited: { owner: 'alice@acme.example' },
      inheritedFrom: { owner: 'group' },
    };
    expect(batch).toEqual([fromGroup, fromGroup]);
    expect(later).toEqual([fromGroup]);
    expect(readsWithinTtl).toBe(1);
    expect(groupReads()).toBe(2);
  });

  it("fails the whole lookup, classified, when the resource group's tags cannot be read, and reads the group again next time", async () => {
    // Prepare: the account's own tags read fine (no owner among them); the group's read is refused
    let refuse = true;
    const getAtScope = vi.fn(async (scope: string) => {
      if (`/${scope}` === RG && refuse) throw Object.assign(new Error('AuthorizationFailed'), { statusCode: 403 });
      return { properties: { tags: `/${scope}` === RG ? { owner: 'alice@acme.example' } : { app: 'ledger' } } };
    });
    const lookup = new AzureResourceTagsLookup(() => ({ tagsOperations: { getAtScope } }));
    // Act
    const [failed] = await lookup.tagsForMany([LEDGER]);
    const single = await refusalOf(lookup, LEDGER);
    refuse = false;
    const [retried] = await lookup.tagsForMany([LEDGER]);
    // Assess: never the account's own tags alone (they would read as "no owner tag")
    expect(failed && 'error' in failed && isDenied(failed.error)).toBe(true);
    expect(String(failed && 'error' in failed && failed.error)).toContain(`tags at scope ${RG}: HTTP 403`);
    expect(isDenied(single)).toBe(true);
    expect(retried).toEqual({
      tags: { owner: 'alice@acme.example', app: 'ledger' },
      inherited: { owner: 'alice@acme.example' },
      inheritedFrom: { owner: 'group' },
    });
  });

  it('finds the group of a resource in either casing, and none for the group itself or a subscription-level resource', () => {
    // Assess
    expect(resourceGroupScopeOf(LEDGER.id)).toBe(RG);
    expect(resourceGroupScopeOf(LEDGER.id.toLowerCase())).toBe(RG.toLowerCase());
    expect(resourceGroupScopeOf(RG)).toBeUndefined();
    expect(resourceGroupScopeOf(`/subscriptions/${SUB}/providers/Microsoft.Security/pricings/VirtualMachines`)).toBe(
      undefined,
    );
  });

  it('stops a fix at the skip tag on the resource group: the pre-apply re-check reads it on an untagged resource', async () => {
    // Prepare
    const getAtScope = tagsByScope({ [RG]: { 'closeloop:skip': 'quarter-end freeze' } });
    const lookup = new AzureResourceTagsLookup(() => ({ tagsOperations: { getAtScope } }), { groupTtlMs: 0 });
    // Act
    const gate = await readSkipTag(lookup, LEDGER, 'closeloop:skip');
    // Assess
    expect(gate?.gate).toEqual({
      gate: 'skip-tag',
      outcome: 'block',
      reason: 'resource carries the skip tag `closeloop:skip` now',
    });
  });
});

describe('AzureResourceTagsLookup and the subscription', () => {
  const SUB = '9d2e5f1a-3b4c-4d5e-8f6a-7b8c9d0e1f2a';
  const SUB_SCOPE = `/subscriptions/${SUB}`;
  const RG = `${SUB_SCOPE}/resourceGroups/rg-payments-prod`;
  const azure = (id: string): ResourceRef => ({ provider: 'azure', id, account: SUB, region: null });
  const LEDGER = azure(`${RG}/providers/Microsoft.Storage/storageAccounts/stpayledger01`);
  /** ARM's Tags API answering by scope, the scope as the SDK takes it (no leading slash); an Error is thrown. */
  const tagsByScope = (byScope: Record<string, Record<string, string> | Error>) =>
    vi.fn(async (scope: string) => {
      const found = Object.entries(byScope).find(([k]) => k.toLowerCase() === `/${scope}`.toLowerCase())?.[1];
      if (found instanceof Error) throw found;
      return { properties: { tags: found ?? {} } };
    });

  it("gives a resource its subscription's tags below its group's and its own, and says which are the subscription's", async () => {
    // Prepare: env on all three levels, owner on the group (`Owner`) and the subscription (`owner`), cost centre
    // on the subscription alone
    const getAtScope = tagsByScope({
      [LEDGER.id]: { env: 'test' },
      [RG]: { Owner: 'alice@acme.example', ENV: 'dev' },
      [SUB_SCOPE]: { env: 'prod', owner: 'platform@acme.example', costCenter: 'cc-7' },
    });
    const lookup = new AzureResourceTagsLookup(() => ({ tagsOperations: { getAtScope } }));
    // Act
    const [answer] = await lookup.tagsForMany([LEDGER]);
    // Assess
    expect(answer).toEqual({
      tags: { Owner: 'alice@acme.example', costCenter: 'cc-7', env: 'test' },
      inherited: { Owner: 'alice@acme.example', costCenter: 'cc-7' },
      inheritedFrom: { Owner: 'group', costCenter: 'subscription' },
    });
    expect(getAtScope).toHaveBeenCalledWith(SUB_SCOPE.slice(1), expect.anything());
  });

  it('reads a subscription once for the resources of a batch in many groups, and again after its ttl', async () => {
    // Prepare
    let now = Date.parse('2026-11-20T00:00:00Z');
    const getAtScope = tagsByScope({ [SUB_SCOPE]: { env: 'prod' } });
    const lookup = new AzureResourceTagsLookup(() => ({ tagsOperations: { getAtScope } }), {
      clock: { now: () => new Date(now) },
    });
    const refs = ['rg-a', 'rg-b', 'rg-c'].flatMap((rg) =>
      ['st1', 'st2'].map((st) =>
        azure(`${SUB_SCOPE}/resourceGroups/${rg}/providers/Microsoft.Storage/storageAccounts/${rg}${st}`),
      ),
    );
    // A resource of the subscription in no group, and a group itself, both sit in the subscription
    refs.push(azure(`${SUB_SCOPE}/providers/Microsoft.Security/pricings/VirtualMachines`), azure(RG.toUpperCase()));
    const subscriptionReads = () =>
      getAtScope.mock.calls.filter(([scope]) => `/${scope}`.toLowerCase() === SUB_SCOPE).length;
    // Act
    const batch = await lookup.tagsForMany(refs);
    const readsWithinTtl = subscriptionReads();
    now += 15 * 60_000;
    await lookup.tagsFor(LEDGER);
    // Assess
    expect(batch).toHaveLength(8);
    for (const answer of batch)
      expect(answer).toEqual({
        tags: { env: 'prod' },
        inherited: { env: 'prod' },
        inheritedFrom: { env: 'subscription' },
      });
    expect(readsWithinTtl).toBe(1);
    expect(subscriptionReads()).toBe(2);
  });

  it("reads no subscription above the subscription's own tags", async () => {
    // Prepare
    const getAtScope = tagsByScope({ [SUB_SCOPE]: { env: 'prod' } });
    const lookup = new AzureResourceTagsLookup(() => ({ tagsOperations: { getAtScope } }));
    // Act
    const [answer] = await lookup.tagsForMany([azure(SUB_SCOPE)]);
    // Assess
    expect(answer).toEqual({ tags: { env: 'prod' }, inherited: {}, inheritedFrom: {} });
    expect(getAtScope).toHaveBeenCalledOnce();
    expect(subscriptionScopeOf(SUB_SCOPE)).toBeUndefined();
    expect(subscriptionScopeOf(RG)).toBe(SUB_SCOPE);
  });

  it("fails the whole lookup, classified, when the subscription's tags cannot be read, and reads it again next time", async () => {
    // Prepare: the account's and the group's tags read fine; the subscription's read is refused
    let refuse = true;
    const getAtScope = vi.fn(async (scope: string) => {
      if (`/${scope}` === SUB_SCOPE && refuse)
        throw Object.assign(new Error('AuthorizationFailed'), { statusCode: 403 });
      return { properties: { tags: `/${scope}` === SUB_SCOPE ? { owner: 'platform@acme.example' } : {} } };
    });
    const lookup = new AzureResourceTagsLookup(() => ({ tagsOperations: { getAtScope } }));
    // Act
    const [failed] = await lookup.tagsForMany([LEDGER]);
    refuse = false;
    const [retried] = await lookup.tagsForMany([LEDGER]);
    // Assess: never the resource's and group's tags alone (they would read as "no owner tag")
    expect(failed && 'error' in failed && isDenied(failed.error)).toBe(true);
    expect(String(failed && 'error' in failed && failed.error)).toContain(`tags at scope ${SUB_SCOPE}: HTTP 403`);
    expect(retried).toEqual({
      tags: { owner: 'platform@acme.example' },
      inherited: { owner: 'platform@acme.example' },
      inheritedFrom: { owner: 'subscription' },
    });
  });

  it('stops a fix at the skip tag on the subscription: the pre-apply re-check reads it on an untagged resource', async () => {
    // Prepare
    const getAtScope = tagsByScope({ [SUB_SCOPE]: { 'Closeloop:Skip': 'subscription freeze' } });
    const lookup = new AzureResourceTagsLookup(() => ({ tagsOperations: { getAtScope } }), { groupTtlMs: 0 });
    // Act
    const gate = await readSkipTag(lookup, LEDGER, 'closeloop:skip');
    // Assess
    expect(gate?.gate).toEqual({
      gate: 'skip-tag',
      outcome: 'block',
      reason: 'resource carries the skip tag `closeloop:skip` now',
    });
  });
});

describe('GcpLabelsLookup', () => {
  const ref: ResourceRef = {
    provider: 'gcp',
    id: '//storage.googleapis.com/acme-web-uploads',
    account: 'acme-web-prod',
    region: null,
  };

  it('merges project labels with resource labels, the resource winning', async () => {
    // Prepare
    const getProject = vi.fn(
      async (_req: { name: string }): Promise<[{ labels: Record<string, string> }]> => [
        { labels: { team: 'web', env: 'prod' } },
      ],
    );
    const projects: GcpProjectsClient = { getProject };
    const resourceLabels = vi.fn(async () => ({ env: 'staging', owner: 'uploads@acme.example' }));
    const lookup = new GcpLabelsLookup(projects, resourceLabels);
    // Act
    const labels = await lookup.tagsFor(ref);
    // Assess
    expect(labels).toEqual({ team: 'web', env: 'staging', owner: 'uploads@acme.example' });
    // One try with a deadline well inside the ingest function's 60 s: not gax's own retry of UNAVAILABLE.
    expect(getProject).toHaveBeenCalledWith({ name: 'projects/acme-web-prod' }, { timeout: 20_000, retry: null });
    expect(resourceLabels).toHaveBeenCalledWith('//storage.googleapis.com/acme-web-uploads');
  });

  it("keeps the project's labels apart from the resource's own, through the cache and the router, when asked in a batch", async () => {
    // Prepare: the project says owner and skip; the bucket overrides env
    const projects: GcpProjectsClient = {
      getProject: async () => [{ labels: { owner: 'platform-team', env: 'prod', 'closeloop-skip': 'true' } }],
    };
    const gcp = new GcpLabelsLookup(projects, async () => ({ env: 'staging' }));
    const chain = new CachedOwnerLookup(new RoutingOwnerLookup({ gcp }), { ttlMs: 60_000, maxEntries: 10 });
    // Act
    const [first] = await chain.tagsForMany([ref]);
    const [cached] = await chain.tagsForMany([ref]);
    const single = await chain.tagsFor(ref);
    // Assess
    const whole = {
      tags: { owner: 'platform-team', env: 'staging', 'closeloop-skip': 'true' },
      inherited: { owner: 'platform-team', 'closeloop-skip': 'true' },
    };
    expect(first).toEqual(whole);
    expect(cached).toEqual(whole);
    expect(single).toEqual(whole.tags); // the skip-tag re-check reads every label that applies
  });

  it("classifies a bucket's HTTP refusal as denied, and a gone bucket as gone, when its labels are read", async () => {
    // Prepare
    const projects: GcpProjectsClient = { getProject: async () => [{ labels: {} }] };
    const failing = (code: number) =>
      new GcpLabelsLookup(projects, async () => {
        throw Object.assign(new Error(`HTTP ${code}`), { code });
      });
    // Act
    const denied = await refusalOf(failing(403), ref);
    const gone = await refusalOf(failing(404), ref);
    // Assess
    expect(isDenied(denied)).toBe(true);
    expect(String(denied)).toContain('labels of //storage.googleapis.com/acme-web-uploads: HTTP 403');
    expect(isGone(gone)).toBe(true);
  });

  it('names the bucket of a Cloud Storage full resource name, and nothing else', () => {
    // Assess
    expect(gcsBucketOf('//storage.googleapis.com/acme-web-uploads')).toBe('acme-web-uploads');
    expect(gcsBucketOf('//storage.googleapis.com/projects/_/buckets/acme.logs')).toBe('acme.logs');
    expect(gcsBucketOf('//compute.googleapis.com/projects/p/global/firewalls/allow-ssh')).toBeUndefined();
    expect(gcsBucketOf('//storage.googleapis.com/acme/objects/x')).toBeUndefined();
  });

  it('classifies PERMISSION_DENIED as denied when Resource Manager refuses', async () => {
    // Prepare
    const projects: GcpProjectsClient = {
      getProject: async () => {
        throw Object.assign(new Error('7 PERMISSION_DENIED'), { code: 7 });
      },
    };
    // Act
    const error = await new GcpLabelsLookup(projects).tagsFor(ref).catch((e: unknown) => e);
    // Assess
    expect(isDenied(error)).toBe(true);
  });
});

describe('CachedOwnerLookup', () => {
  const ref = (id: string): ResourceRef => ({ provider: 'aws', id, account: '111122223333', region: 'us-east-1' });
  const counting = (impl?: (r: ResourceRef) => Promise<Record<string, string>>) => {
    const tagsFor = vi.fn(impl ?? (async (r: ResourceRef) => ({ id: r.id })));
    return { tagsFor } satisfies OwnerLookup;
  };

  it('serves repeats from the cache until the TTL passes', async () => {
    // Prepare
    let now = Date.parse('2026-11-20T00:00:00Z');
    const inner = counting();
    const cached = new CachedOwnerLookup(inner, { ttlMs: 1000, maxEntries: 10, clock: { now: () => new Date(now) } });
    // Act
    await cached.tagsFor(ref('a'));
    await cached.tagsFor(ref('a'));
    now += 1001;
    const afterTtl = await cached.tagsFor(ref('a'));
    // Assess
    expect(inner.tagsFor).toHaveBeenCalledTimes(2);
    expect(afterTtl).toEqual({ id: 'a' });
  });

  it('shares one call among concurrent asks for the same resource', async () => {
    // Prepare
    let release: (v: Record<string, string>) => void = () => {};
    const inner = counting(() => new Promise((resolve) => (release = resolve)));
    const cached = new CachedOwnerLookup(inner, { ttlMs: 60_000, maxEntries: 10 });
    // Act
    const all = Promise.all([cached.tagsFor(ref('a')), cached.tagsFor(ref('a')), cached.tagsFor(ref('a'))]);
    release({ owner: 'x@acme.example' });
    const results = await all;
    // Assess
    expect(inner.tagsFor).toHaveBeenCalledTimes(1);
    expect(results).toEqual([{ owner: 'x@acme.example' }, { owner: 'x@acme.example' }, { owner: 'x@acme.example' }]);
  });

  it('evicts the oldest entry beyond maxEntries and does not cache failures', async () => {
    // Prepare
    let fail = true;
    const inner = counting(async (r) => {
      if (r.id === 'bad' && fail) throw new Error('throttled');
      return { id: r.id };
    });
    const cached = new CachedOwnerLookup(inner, { ttlMs: 60_000, maxEntries: 2 });
    // Act
    await cached.tagsFor(ref('a'));
    await cached.tagsFor(ref('b'));
    await cached.tagsFor(ref('c'));
    await cached.tagsFor(ref('a'));
    const failed = await cached.tagsFor(ref('bad')).catch((e: unknown) => e);
    fail = false;
    const retried = await cached.tagsFor(ref('bad'));
    // Assess
    expect(cached.size).toBe(2);
    expect(inner.tagsFor.mock.calls.map(([r]) => r.id)).toEqual(['a', 'b', 'c', 'a', 'bad', 'bad']);
    expect(failed).toBeInstanceOf(Error);
    expect(retried).toEqual({ id: 'bad' });
  });
});

describe('RoutingOwnerLookup', () => {
  it('routes by provider and answers no tags for a provider without a lookup', async () => {
    // Prepare
    const aws = { tagsFor: vi.fn(async () => ({ owner: 'aws@acme.example' })) };
    const routing = new RoutingOwnerLookup({ aws });
    // Act
    const fromAws = await routing.tagsFor({
      provider: 'aws',
      id: 'arn:aws:s3:::b',
      account: '111122223333',
      region: null,
    });
    const fromGcp = await routing.tagsFor({ provider: 'gcp', id: '//x', account: 'p', region: null });
    // Assess
    expect(fromAws).toEqual({ owner: 'aws@acme.example' });
    expect(fromGcp).toEqual({});
    expect(aws.tagsFor).toHaveBeenCalledOnce();
  });
});

describe('batched lookups', () => {
  const arn = (region: string, n: number) =>
    `arn:aws:ec2:${region}:111122223333:instance/i-${String(n).padStart(17, '0')}`;
  const awsRef = (id: string, region: string | null = null): ResourceRef => ({
    provider: 'aws',
    id,
    account: '111122223333',
    region,
  });
  const throttled = () =>
    new ResourceGroupsTaggingAPIServiceException({
      name: 'ThrottlingException',
      $fault: 'client',
      $metadata: { httpStatusCode: 400 },
      message: 'Rate exceeded',
    });

  beforeEach(() => tagging.reset());

  it('asks GetResources for at most 100 ARNs a call, per region, each ARN once, and maps every answer back', async () => {
    // Prepare: 230 instances in us-east-2 (one named twice), 40 in eu-west-1; every third one untagged.
    const east = Array.from({ length: 230 }, (_, i) => arn('us-east-2', i));
    const west = Array.from({ length: 40 }, (_, i) => arn('eu-west-1', i));
    const tagged = (id: string) => Number(id.slice(-3)) % 3 !== 0;
    tagging.on(GetResourcesCommand).callsFake((input: { ResourceARNList?: string[] }) => ({
      ResourceTagMappingList: (input.ResourceARNList ?? [])
        .filter(tagged)
        .map((id) => ({ ResourceARN: id, Tags: [{ Key: 'owner', Value: `owner-of-${id.slice(-3)}` }] })),
    }));
    const regions: string[] = [];
    const lookup = new AwsTaggingOwnerLookup((region) => {
      regions.push(region);
      return new ResourceGroupsTaggingAPIClient({ region });
    });
    const refs = [...east, east[5] as string, ...west].map((id) => awsRef(id));
    // Act
    const outcomes = await lookup.tagsForMany(refs);
    // Assess
    const lists = tagging.commandCalls(GetResourcesCommand).map((c) => c.args[0].input.ResourceARNList ?? []);
    expect(lists.map((l) => l.length).sort((a, b) => a - b)).toEqual([30, 40, 100, 100]);
    expect(new Set(lists.flat()).size).toBe(270);
    expect(regions.sort()).toEqual(['eu-west-1', 'us-east-2']);
    expect(outcomes).toHaveLength(refs.length);
    refs.forEach((r, i) => {
      expect(outcomes[i]).toEqual({ tags: tagged(r.id) ? { owner: `owner-of-${r.id.slice(-3)}` } : {} });
    });
  });

  it('gives the refs of a failed call its classified error and the others their tags', async () => {
    // Prepare
    const east = Array.from({ length: 150 }, (_, i) => arn('us-east-2', i));
    tagging.on(GetResourcesCommand).callsFake((input: { ResourceARNList?: string[] }) => {
      if ((input.ResourceARNList ?? []).includes(east[120] as string)) throw throttled();
      return {
        ResourceTagMappingList: (input.ResourceARNList ?? []).map((id) => ({
          ResourceARN: id,
          Tags: [{ Key: 'team', Value: 'web' }],
        })),
      };
    });
    const lookup = new AwsTaggingOwnerLookup((region) => new ResourceGroupsTaggingAPIClient({ region }));
    // Act
    const outcomes = await lookup.tagsForMany(east.map((id) => awsRef(id)));
    // Assess
    expect(outcomes.slice(0, 100).every((o) => 'tags' in o && o.tags.team === 'web')).toBe(true);
    const failed = outcomes.slice(100);
    expect(failed.every((o) => 'error' in o && isThrottled(o.error))).toBe(true);
    expect(String((failed[0] as { error: unknown }).error)).toContain('tag:GetResources for 50 resources in us-east-2');
  });

  it('refuses the resources of another account than the credentials, and every resource when the account cannot be read', async () => {
    // Prepare
    tagging.on(GetResourcesCommand).callsFake((input: { ResourceARNList?: string[] }) => ({
      ResourceTagMappingList: (input.ResourceARNList ?? []).map((id) => ({
        ResourceARN: id,
        Tags: [{ Key: 'k', Value: 'v' }],
      })),
    }));
    const mine = awsRef(arn('us-east-2', 1));
    const theirs: ResourceRef = { ...awsRef('arn:aws:s3:::their-bucket', 'us-east-2'), account: '999988887777' };
    let resolutions = 0;
    const known = new AwsTaggingOwnerLookup((region) => new ResourceGroupsTaggingAPIClient({ region }), {
      account: async () => {
        resolutions++;
        return '111122223333';
      },
    });
    const unknown = new AwsTaggingOwnerLookup((region) => new ResourceGroupsTaggingAPIClient({ region }), {
      account: async () => {
        throw new Error('no credentials for sts');
      },
    });
    // Act
    const fromKnown = await known.tagsForMany([mine, theirs]);
    const single = await known.tagsFor(theirs).catch((e: unknown) => e);
    const fromUnknown = await unknown.tagsForMany([mine, theirs]);
    // Assess
    expect(fromKnown[0]).toEqual({ tags: { k: 'v' } });
    expect('error' in (fromKnown[1] as object) && isDenied((fromKnown[1] as { error: unknown }).error)).toBe(true);
    expect(String(single)).toContain(
      'answers for account 111122223333 only; arn:aws:s3:::their-bucket is in account 999988887777',
    );
    expect(resolutions).toBe(1);
    // Read anyway, the other account's bucket would come back untagged (the API leaves it out): unknown, not "no tags"
    for (const o of fromUnknown) {
      expect(String((o as { error?: unknown }).error)).toContain("the credentials' own account could not be read");
      expect(isRetryable((o as { error: unknown }).error)).toBe(true);
    }
  });

  it('the cache answers what it holds, asks the rest in one batch, and keeps no failure', async () => {
    // Prepare
    let failB = true;
    const tagsForMany = vi.fn(async (refs: readonly ResourceRef[]) =>
      refs.map((r) => (r.id === 'b' && failB ? { error: new Error('throttled') } : { tags: { id: r.id } })),
    );
    const inner: OwnerLookup = { tagsFor: vi.fn(async (r: ResourceRef) => ({ id: r.id })), tagsForMany };
    const cached = new CachedOwnerLookup(inner, { ttlMs: 60_000, maxEntries: 100 });
    const ref = (id: string) => awsRef(id, 'us-east-1');
    await cached.tagsFor(ref('a'));
    // Act
    const first = await cached.tagsForMany([ref('a'), ref('b'), ref('c'), ref('c')]);
    failB = false;
    const second = await cached.tagsForMany([ref('a'), ref('b'), ref('c')]);
    // Assess
    expect(first).toEqual([
      { tags: { id: 'a' } },
      { error: new Error('throttled') },
      { tags: { id: 'c' } },
      { tags: { id: 'c' } },
    ]);
    expect(second).toEqual([{ tags: { id: 'a' } }, { tags: { id: 'b' } }, { tags: { id: 'c' } }]);
    // The first 'a', before the batches, went through the batch call too: its answer is kept whole.
    expect(tagsForMany.mock.calls.map(([refs]) => refs.map((r) => r.id))).toEqual([['a'], ['b', 'c'], ['b']]);
    expect(inner.tagsFor).not.toHaveBeenCalled();
  });

  it('a single ask during a batch waits for the batch instead of calling again', async () => {
    // Prepare
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    const tagsFor = vi.fn(async () => ({ single: 'yes' }));
    const tagsForMany = vi.fn(async (refs: readonly ResourceRef[]) => {
      await gate;
      return refs.map(() => ({ tags: { batch: 'yes' } }));
    });
    const cached = new CachedOwnerLookup({ tagsFor, tagsForMany }, { ttlMs: 60_000, maxEntries: 100 });
    // Act
    const batch = cached.tagsForMany([awsRef('x', 'us-east-1')]);
    const single = cached.tagsFor(awsRef('x', 'us-east-1'));
    release();
    // Assess
    expect(await batch).toEqual([{ tags: { batch: 'yes' } }]);
    expect(await single).toEqual({ batch: 'yes' });
    expect(tagsFor).not.toHaveBeenCalled();
  });

  it('fans out tagsFor at most 8 at a time when the adapter has no batch call', async () => {
    // Prepare
    let inFlight = 0;
    let peak = 0;
    const tagsFor = vi.fn(async (r: ResourceRef) => {
      inFlight++;
      peak = Math.max(peak, inFlight);
      await new Promise((resolve) => setTimeout(resolve, 2));
      inFlight--;
      if (r.id.endsWith('7')) throw new Error(`no tags for ${r.id}`);
      return { id: r.id };
    });
    const cached = new CachedOwnerLookup({ tagsFor }, { ttlMs: 60_000, maxEntries: 100 });
    const refs = Array.from({ length: 40 }, (_, i) => awsRef(`r${i}`, 'us-east-1'));
    // Act
    const outcomes = await cached.tagsForMany(refs);
    // Assess
    expect(tagsFor).toHaveBeenCalledTimes(40);
    expect(peak).toBe(8);
    expect(outcomes[3]).toEqual({ tags: { id: 'r3' } });
    expect(outcomes[17]).toEqual({ error: new Error('no tags for r17') });
  });

  it('the router sends each provider its own batch and says which providers it can read', async () => {
    // Prepare
    const aws: OwnerLookup = {
      tagsFor: vi.fn(),
      tagsForMany: vi.fn(async (refs: readonly ResourceRef[]) => refs.map((r) => ({ tags: { aws: r.id } }))),
      handles: (p) => p === 'aws',
    };
    const gcp: OwnerLookup = { tagsFor: vi.fn(async (r: ResourceRef) => ({ gcp: r.id })) };
    const routing = new RoutingOwnerLookup({ aws, gcp });
    // Act
    const outcomes = await routing.tagsForMany([
      awsRef('a1'),
      { provider: 'gcp', id: '//g1', account: 'p', region: null },
      { provider: 'azure', id: '/subscriptions/s/x', account: 's', region: null },
      awsRef('a2'),
    ]);
    // Assess
    expect(outcomes).toEqual([
      { tags: { aws: 'a1' } },
      { tags: { gcp: '//g1' } },
      { tags: {} },
      { tags: { aws: 'a2' } },
    ]);
    expect(aws.tagsForMany).toHaveBeenCalledOnce();
    expect([routing.handles('aws'), routing.handles('gcp'), routing.handles('azure')]).toEqual([true, true, false]);
  });

  it('GCP: one projects.get serves every resource of a project until its ttl passes, and a failure is retried', async () => {
    // Prepare
    let now = Date.parse('2026-12-07T00:00:00Z');
    let fail = true;
    const getProject = vi.fn(async (req: { name: string }): Promise<[{ labels: Record<string, string> }]> => {
      await new Promise((resolve) => setTimeout(resolve, 1));
      if (req.name === 'projects/flaky' && fail) throw Object.assign(new Error('14 UNAVAILABLE'), { code: 14 });
      return [{ labels: { team: req.name.slice('projects/'.length) } }];
    });
    const lookup = new GcpLabelsLookup({ getProject }, undefined, {
      projectTtlMs: 60_000,
      clock: { now: () => new Date(now) },
    });
    const gcpRef = (project: string, n: number): ResourceRef => ({
      provider: 'gcp',
      id: `//storage.googleapis.com/b${n}`,
      account: project,
      region: null,
    });
    // Act
    const together = await Promise.all(Array.from({ length: 20 }, (_, i) => lookup.tagsFor(gcpRef('web', i))));
    const flaky = await lookup.tagsFor(gcpRef('flaky', 1)).catch((e: unknown) => e);
    fail = false;
    const flakyAgain = await lookup.tagsFor(gcpRef('flaky', 2));
    now += 60_001;
    await lookup.tagsFor(gcpRef('web', 99));
    // Assess
    expect(together.every((l) => l.team === 'web')).toBe(true);
    expect(flaky).toBeInstanceOf(Error);
    expect(flakyAgain).toEqual({ team: 'flaky' });
    expect(getProject.mock.calls.map(([r]) => r.name)).toEqual([
      'projects/web',
      'projects/flaky',
      'projects/flaky',
      'projects/web',
    ]);
  });
});

describe('the live AWS lookup of IAM users and roles', () => {
  const iam = mockClient(IAMClient);
  beforeEach(() => {
    tagging.reset();
    iam.reset();
    // GetResources does not read IAM users and roles: it leaves them out of its answer, as if untagged.
    tagging.on(GetResourcesCommand).resolves({ ResourceTagMappingList: [] });
  });
  afterAll(() => iam.restore());
  const ref = (id: string): ResourceRef => ({ provider: 'aws', id, account: '111122223333', region: null });

  it("reads an IAM role's and an IAM user's tags from IAM, so a skip tag on them is seen before an apply", async () => {
    // Prepare: the break-glass role and a CI user (with a path) carry the skip tag
    iam
      .on(ListRoleTagsCommand, { RoleName: 'BreakGlass' })
      .resolves({ Tags: [{ Key: 'closeloop:skip', Value: 'true' }] });
    iam
      .on(ListUserTagsCommand, { UserName: 'deploy' })
      .resolves({ Tags: [{ Key: 'owner', Value: 'ci@acme.example' }] });
    const lookup = liveOwnerLookup(['aws'], { awsAccount: async () => '111122223333', fresh: true });
    // Act
    const role = await lookup.tagsFor(ref('arn:aws:iam::111122223333:role/BreakGlass'));
    const [user] = await lookup.tagsForMany(['arn:aws:iam::111122223333:user/ci/deploy'].map(ref));
    const gate = await readSkipTag(lookup, ref('arn:aws:iam::111122223333:role/BreakGlass'), 'closeloop:skip');
    // Assess
    expect(role).toEqual({ 'closeloop:skip': 'true' });
    expect(user).toEqual({ tags: { owner: 'ci@acme.example' } });
    expect(gate?.gate.outcome).toBe('block');
  });

  it('reads a role gone since as untagged and classifies a throttled IAM read as throttled', async () => {
    // Prepare
    const fault = (name: string, status: number) =>
      Object.assign(new Error(name), { name, $fault: 'client', $metadata: { httpStatusCode: status } });
    iam.on(ListRoleTagsCommand, { RoleName: 'Gone' }).rejects(fault('NoSuchEntity', 404));
    iam.on(ListRoleTagsCommand, { RoleName: 'Busy' }).rejects(fault('Throttling', 400));
    const lookup = liveOwnerLookup(['aws'], { awsAccount: async () => '111122223333', fresh: true });
    // Act
    const gone = await lookup.tagsFor(ref('arn:aws:iam::111122223333:role/Gone'));
    const busy = await lookup.tagsFor(ref('arn:aws:iam::111122223333:role/Busy')).catch((e: unknown) => e);
    // Assess
    expect(gone).toEqual({});
    expect(isThrottled(busy)).toBe(true);
  });

  it("reads a GovCloud or China principal's tags from its own partition's IAM, a regionless ARN's from its partition", async () => {
    // Prepare: the break-glass role of a GovCloud account and a user and a bucket of a China account, none with
    // a region on the finding; each answers only at its partition's endpoint
    iam.on(ListRoleTagsCommand).resolves({ Tags: [{ Key: 'closeloop:skip', Value: 'true' }] });
    iam.on(ListUserTagsCommand).resolves({ Tags: [{ Key: 'owner', Value: 'ci@acme.example' }] });
    const lookup = liveOwnerLookup(['aws'], { awsAccount: async () => '111122223333', fresh: true });
    const at = async (calls: ReturnType<typeof iam.calls>) =>
      Promise.all(calls.map(async (c) => (c.thisValue as { config: { region(): Promise<string> } }).config.region()));
    // Act
    const gate = await readSkipTag(lookup, ref('arn:aws-us-gov:iam::111122223333:role/BreakGlass'), 'closeloop:skip');
    await lookup.tagsFor(ref('arn:aws-cn:iam::111122223333:user/ci/deploy'));
    await lookup.tagsFor(ref('arn:aws:iam::111122223333:user/ci/deploy'));
    await lookup.tagsFor(ref('arn:aws-cn:s3:::acme-cn-data'));
    // Assess: us-east-1 for all of them before
    expect(gate?.gate.outcome).toBe('block');
    expect(await at(iam.calls())).toEqual(['us-gov-west-1', 'cn-north-1', 'us-east-1']);
    expect(await at(tagging.calls())).toEqual(['cn-north-1']);
  });
});
