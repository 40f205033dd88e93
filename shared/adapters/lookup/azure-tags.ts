/**
 * Live Azure resource tags through ARM (`Microsoft.Resources/tags` at the resource's scope, the
 * `tagsOperations.getAtScope` call of @azure/arm-resources), and its resource group's and subscription's the
 * same way (the Tags API at `/subscriptions/{sub}/resourceGroups/{rg}` and at `/subscriptions/{sub}`). ARM
 * does not copy a group's or a subscription's tags onto its resources (only an Azure Policy "inherit a tag
 * from the resource group / subscription" would), and many estates tag the group or the subscription alone
 * (`owner`, `env`, `costCenter`): read without them, their resources came out unowned and of no known
 * environment. Every read needs `Microsoft.Resources/tags/read` only (the spoke's tag role, at subscription
 * scope, covers the subscription and its groups): neither the group (`resourceGroups/read`) nor the
 * subscription itself is read.
 * The answer keeps them apart, as the GCP lookup does with a project's labels (`inherited`: the group's and
 * the subscription's tags the resource does not override, a group's over its subscription's; `inheritedFrom`:
 * which of the two each came from). A group's or subscription's tags are read once per `groupTtlMs` (default
 * 15 minutes) and shared by every resource in it, concurrent asks included: a batch of 1,000 findings in one
 * group is one read of the group and one of its subscription.
 *
 * @see https://learn.microsoft.com/rest/api/resources/tags/get-at-scope
 */
import type { ResourceManagementClient } from '@azure/arm-resources';
import { AdapterError, kindOfHttpStatus } from '../../core/errors.js';
import {
  type Clock,
  type LookupOutcome,
  type LookupTags,
  type OwnerLookup,
  type ResourceRef,
  settledLookups,
  systemClock,
} from '../../core/ports.js';

/** The one call made; a ResourceManagementClient satisfies it. */
export interface AzureTagsClient {
  tagsOperations: Pick<ResourceManagementClient['tagsOperations'], 'getAtScope'>;
}

/**
 * Azure's reading of a status, for the Tags API and the claim-check blobs: the shared one (a 408, the server
 * giving up waiting, is transient like a 5xx; no status is transient) but for 409, 410, 412 and 425, which are
 * invalid as this adapter has read them from the start: only 401/403, 404, 408 and 429 are told from a bad
 * request here.
 */
const AZURE_STATUS_KINDS = { 409: 'invalid', 410: 'invalid', 412: 'invalid', 425: 'invalid' } as const;

/** Classifies an Azure RestError by HTTP status. */
export function azureAdapterError(e: unknown, what: string): AdapterError {
  const status = e && typeof e === 'object' && 'statusCode' in e && typeof e.statusCode === 'number' ? e.statusCode : 0;
  const kind = kindOfHttpStatus(status, AZURE_STATUS_KINDS);
  return new AdapterError(kind, `${what}: HTTP ${status || 'error'}`, { cause: e });
}

/**
 * The ARM scope of an Azure resource id's resource group (`/subscriptions/{sub}/resourceGroups/{rg}`, either
 * casing). Undefined for an id in no group (a subscription-level resource) and for the group itself (its own
 * tags are the group's).
 */
export function resourceGroupScopeOf(id: string): string | undefined {
  return /^(\/subscriptions\/[^/]+\/resourceGroups\/[^/]+)\/./i.exec(id)?.[1];
}

/**
 * The ARM scope of an Azure resource id's subscription (`/subscriptions/{sub}`): a resource group's too.
 * Undefined for the subscription itself (its own tags are the subscription's) and an id outside one.
 */
export function subscriptionScopeOf(id: string): string | undefined {
  return /^(\/subscriptions\/[^/]+)\/./i.exec(id)?.[1];
}

/**
 * How long one lookup may take, the ARM pipeline's own retries and waits included. Its throttling policy
 * sleeps whatever Retry-After ARM sends, uncapped: without a deadline a throttled subscription held the
 * finding (and the function) for as long as ARM asked.
 */
export const AZURE_LOOKUP_TIMEOUT_MS = 30_000;

/**
 * @example new AzureResourceTagsLookup((subscriptionId) => new ResourceManagementClient(credential, subscriptionId))
 */
export class AzureResourceTagsLookup implements OwnerLookup {
  private readonly clients = new Map<string, AzureTagsClient>();
  /**
   * Resource groups' and subscriptions' tags by lower-cased scope (ARM ids are case-insensitive), with when
   * they were read.
   */
  private readonly containerTags = new Map<string, { tags: Promise<Record<string, string>>; at: number }>();
  private readonly groupTtlMs: number;
  private readonly clock: Clock;

  constructor(
    private readonly clientFor: (subscriptionId: string) => AzureTagsClient,
    private readonly options: { timeoutMs?: number; groupTtlMs?: number; clock?: Clock } = {},
  ) {
    this.groupTtlMs = options.groupTtlMs ?? 15 * 60_000;
    this.clock = options.clock ?? systemClock;
  }

  handles(provider: ResourceRef['provider']): boolean {
    return provider === 'azure';
  }

  private clientOf(subscription: string): AzureTagsClient {
    const sub = subscription.toLowerCase();
    let client = this.clients.get(sub);
    if (!client) {
      client = this.clientFor(sub);
      this.clients.set(sub, client);
    }
    return client;
  }

  /** The tags at one ARM scope, within the deadline, errors classified. */
  private async tagsAt(client: AzureTagsClient, scope: string): Promise<Record<string, string>> {
    const timeoutMs = this.options.timeoutMs ?? AZURE_LOOKUP_TIMEOUT_MS;
    try {
      // The SDK's path is `/{scope}/providers/…` with the scope as given: an ARM id's own leading slash made it
      // `https://management.azure.com//subscriptions/…`. Its scope is written without one (as in Azure's samples).
      const res = await client.tagsOperations.getAtScope(scope.replace(/^\/+/, ''), {
        abortSignal: AbortSignal.timeout(timeoutMs),
      });
      return { ...res.properties.tags };
    } catch (e) {
      // The deadline passed (the SDK throws its own AbortError, in a request or in a wait): try again later.
      if (e instanceof Error && e.name === 'AbortError')
        throw new AdapterError('transient', `tags at scope ${scope}: no answer within ${timeoutMs} ms`, { cause: e });
      throw azureAdapterError(e, `tags at scope ${scope}`);
    }
  }

  /**
   * A resource group's or subscription's tags, read at most once per ttl; a failed read is forgotten (the
   * next ask retries). None when `scope` is undefined (the resource is in no group, or is the subscription).
   */
  private tagsOfContainer(client: AzureTagsClient, scope: string | undefined): Promise<Record<string, string>> {
    if (scope === undefined) return Promise.resolve({});
    const key = scope.toLowerCase();
    const now = this.clock.now().getTime();
    const kept = this.containerTags.get(key);
    if (kept && now - kept.at < this.groupTtlMs) return kept.tags;
    const tags = this.tagsAt(client, scope).catch((e: unknown) => {
      if (this.containerTags.get(key)?.tags === tags) this.containerTags.delete(key);
      throw e;
    });
    // Settled here too: when another read of the lookup fails first, nobody awaits this one.
    tags.catch(() => {});
    this.containerTags.set(key, { tags, at: now });
    return tags;
  }

  /**
   * The tags that apply to `r` (its own over its resource group's, over its subscription's), which of them
   * it inherits, and from where.
   */
  async labelsFor(r: ResourceRef): Promise<Required<LookupTags>> {
    if (r.provider !== 'azure')
      throw new AdapterError('invalid', `AzureResourceTagsLookup cannot look up ${r.provider} resources`);
    const client = this.clientOf(r.account);
    // The three reads at once. A group or subscription read that fails fails the whole lookup, as a failed
    // project read does in GcpLabelsLookup: the resource's own tags alone would read as "no owner tag" where
    // the group or subscription may name one (a guessed unowned, a name-pattern environment) and miss a skip
    // tag set on either. The caller sees a failed lookup: owner unknown, environment not guessed, the skip-tag
    // gate fails closed.
    const groupRead = this.tagsOfContainer(client, resourceGroupScopeOf(r.id));
    const subscriptionRead = this.tagsOfContainer(client, subscriptionScopeOf(r.id));
    const own = await this.tagsAt(client, r.id);
    const levels = [
      ['group', await groupRead],
      ['subscription', await subscriptionRead],
    ] as const;
    // Azure tag names are case-insensitive: the resource's `Owner` overrides its group's `owner`, and the
    // group's its subscription's.
    const taken = new Set(Object.keys(own).map((k) => k.toLowerCase()));
    const inherited: Record<string, string> = {};
    const inheritedFrom: Record<string, 'group' | 'subscription'> = {};
    for (const [level, tags] of levels) {
      const names = Object.keys(tags);
      for (const k of names)
        if (!taken.has(k.toLowerCase())) {
          inherited[k] = tags[k] as string;
          inheritedFrom[k] = level;
        }
      for (const k of names) taken.add(k.toLowerCase());
    }
    return { tags: { ...inherited, ...own }, inherited, inheritedFrom };
  }

  async tagsFor(r: ResourceRef): Promise<Record<string, string>> {
    return (await this.labelsFor(r)).tags;
  }

  /**
   * Each resource's tags with its resource group's and subscription's kept apart (`inherited`); the groups
   * and subscriptions read once each.
   */
  tagsForMany(refs: readonly ResourceRef[]): Promise<LookupOutcome[]> {
    return settledLookups(refs, (r) => this.labelsFor(r));
  }
}
