/**
 * Live tag lookups as the deployments build them: each cloud's adapter on its SDK's ambient credentials
 * (AWS default chain or the function's role, Azure DefaultAzureCredential, Google ADC), behind a router.
 * Each SDK is imported when its adapter is built, so a run that looks nothing up loads none of them.
 *
 * Two uses: enrichment (cached per `policy.enrichment.lookup`: ttl, entries) and the skip-tag re-check
 * just before an apply (`fresh`, uncached: a tag set a minute ago must stop the fix — on GCP a label set on
 * the project too, on Azure a tag set on the resource group or the subscription, which an enrichment lookup
 * shares across the project's, group's or subscription's resources for 15 minutes).
 */
import type { EnrichmentPolicy } from '../../core/policy/policy.js';
import { type Clock, type LookupOutcome, lookupMany, type OwnerLookup, type ResourceRef } from '../../core/ports.js';
import { CachedOwnerLookup } from '../lookup/cached.js';
import { RoutingOwnerLookup } from '../lookup/routing.js';
import type { AwsEnv } from './aws.js';
import type { MemberAccess } from './member-role.js';

export type LookupCloud = ResourceRef['provider'];

/**
 * A lookup for `clouds` (the others are not handled: their findings keep their event's tags), caching
 * nothing per resource; GCP project labels and Azure resource group and subscription tags are shared by the
 * project's, group's or subscription's resources for 15 minutes unless `fresh`.
 * Each cloud's SDK client is built on the first lookup of one of its resources, not here: a client built
 * ahead probes for its credentials (Google's for a metadata server) even in a run that never asks it.
 */
export function liveOwnerLookup(
  clouds: readonly LookupCloud[],
  options: {
    /**
     * The AWS account the ambient credentials are in (the hub: its deployment's; locally: STS), so that a
     * resource of another account is "not readable from here", not "untagged" (see AwsTaggingOwnerLookup).
     */
    awsAccount?: () => Promise<string | undefined>;
    /** The member role, assumed to read another account's tags (with `awsAccount` known). */
    awsMember?: MemberAccess;
    /**
     * Every ask reads the cloud, GCP project labels and Azure resource group and subscription tags included:
     * the lookup of the skip-tag re-check just before an apply (a skip label or tag set on the project, group
     * or subscription since the last read must stop the fix).
     */
    fresh?: boolean;
  } = {},
): RoutingOwnerLookup {
  const byProvider: Partial<Record<LookupCloud, OwnerLookup>> = {};
  if (clouds.includes('aws'))
    byProvider.aws = new LazyOwnerLookup('aws', async () => {
      const [{ ResourceGroupsTaggingAPIClient }, { IAMClient }, { AwsTaggingOwnerLookup }] = await Promise.all([
        import('@aws-sdk/client-resource-groups-tagging-api'),
        import('@aws-sdk/client-iam'),
        import('../lookup/aws-tagging.js'),
      ]);
      const member = options.awsMember;
      const where = (region: string, account: string | undefined) =>
        account && member ? { region, credentials: member.credentials(account) } : { region };
      return new AwsTaggingOwnerLookup(
        (region, account) => new ResourceGroupsTaggingAPIClient(where(region, account)),
        {
          ...(options.awsAccount ? { account: options.awsAccount } : {}),
          ...(member ? { reaches: () => true } : {}),
          // IAM users' and roles' tags (GetResources does not read them), from the IAM of the principal's
          // partition (us-east-1, us-gov-west-1, cn-north-1): always us-east-1 before, outside the aws partition.
          iam: (region, account) => new IAMClient(where(region, account)),
        },
      );
    });
  if (clouds.includes('azure'))
    byProvider.azure = new LazyOwnerLookup('azure', async () => {
      const [{ DefaultAzureCredential }, { ResourceManagementClient }, { AzureResourceTagsLookup }] = await Promise.all(
        [import('@azure/identity'), import('@azure/arm-resources'), import('../lookup/azure-tags.js')],
      );
      const credential = new DefaultAzureCredential();
      // A resource's tags over its resource group's, over its subscription's; `fresh`: the group's and the
      // subscription's read again at every ask too.
      return new AzureResourceTagsLookup(
        (sub) => new ResourceManagementClient(credential, sub),
        options.fresh ? { groupTtlMs: 0 } : {},
      );
    });
  if (clouds.includes('gcp'))
    byProvider.gcp = new LazyOwnerLookup('gcp', async () => {
      const [{ ProjectsClient }, { Storage }, { GcpLabelsLookup, gcsBucketOf }, { GCP_CALL_TIMEOUT_MS }] =
        await Promise.all([
          import('@google-cloud/resource-manager'),
          import('@google-cloud/storage'),
          import('../lookup/gcp-labels.js'),
          import('../../actions/retry.js'),
        ]);
      // One try, bounded: the client's own retry (3 more tries, up to 600 s) and 60 s per request outlived the
      // ingest function's 60 s; a failed read is the lookup's caller's to retry (project labels: GCP_CALL_OPTIONS).
      const storage = new Storage({ retryOptions: { autoRetry: false }, timeout: GCP_CALL_TIMEOUT_MS });
      // A bucket's own labels (storage.buckets.get) over its project's; other resources: the project's.
      return new GcpLabelsLookup(
        new ProjectsClient(),
        async (name) => {
          const bucket = gcsBucketOf(name);
          if (!bucket) return undefined;
          const [meta] = await storage.bucket(bucket).getMetadata();
          const labels: Record<string, string> = {};
          for (const [k, v] of Object.entries(meta.labels ?? {})) if (typeof v === 'string') labels[k] = v;
          return labels;
        },
        options.fresh ? { projectTtlMs: 0 } : {},
      );
    });
  return new RoutingOwnerLookup(byProvider);
}

/**
 * The hub's AWS lookup under the function's role: its own account (`CLOSELOOP_ACCOUNT_ID`), and each
 * member account under `member` (the function's {@link hubMemberAccess}) when the deployment names one.
 */
export function hubAwsLookup(env: AwsEnv, member: MemberAccess | undefined): RoutingOwnerLookup {
  return liveOwnerLookup(['aws'], {
    awsAccount: async () => env.CLOSELOOP_ACCOUNT_ID,
    ...(member ? { awsMember: member } : {}),
  });
}

/** One cloud's lookup, built on first use (a failed build is retried by the next lookup). */
class LazyOwnerLookup implements OwnerLookup {
  private built: Promise<OwnerLookup> | undefined;
  constructor(
    private readonly provider: LookupCloud,
    private readonly build: () => Promise<OwnerLookup>,
  ) {}

  private inner(): Promise<OwnerLookup> {
    if (!this.built) {
      const building = this.build();
      building.catch(() => {
        if (this.built === building) this.built = undefined;
      });
      this.built = building;
    }
    return this.built;
  }

  handles(provider: LookupCloud): boolean {
    return provider === this.provider;
  }

  async tagsFor(r: ResourceRef): Promise<Record<string, string>> {
    return (await this.inner()).tagsFor(r);
  }

  async tagsForMany(refs: readonly ResourceRef[]): Promise<LookupOutcome[]> {
    return lookupMany(await this.inner(), refs);
  }
}

/** The enrichment's lookup: `inner` cached as the policy says; undefined when lookups are off. */
export function enrichmentLookup(
  policy: EnrichmentPolicy['lookup'],
  inner: OwnerLookup,
  clock?: Clock,
): CachedOwnerLookup | undefined {
  if (!policy.enabled) return undefined;
  return new CachedOwnerLookup(inner, {
    ttlMs: policy.ttlSeconds * 1000,
    maxEntries: policy.maxEntries,
    ...(clock ? { clock } : {}),
  });
}

/**
 * A spoke's tag lookup for the documents it forwards: its own cloud, on its own identity, each resource
 * cached for 15 minutes (a burst of findings on one resource is one read).
 */
export function spokeTagLookup(cloud: 'azure' | 'gcp'): CachedOwnerLookup {
  return new CachedOwnerLookup(liveOwnerLookup([cloud]), { ttlMs: 15 * 60_000, maxEntries: 10_000 });
}
