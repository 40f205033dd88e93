/**
 * Live Azure resource tags through ARM (`Microsoft.Resources/tags` at the resource's scope, the
 * `tagsOperations.getAtScope` call of @azure/arm-resources), and its resource group's the same way (the
 * Tags API at the group's scope, `/subscriptions/{sub}/resourceGroups/{rg}`). ARM does not copy a group's
 * tags onto its resources (only an Azure Policy "inherit a tag from the resource group" would), and many
 * estates tag the group alone (`owner`, `env`): read without it, their resources came out unowned and of
 * no known environment. Both reads need `Microsoft.Resources/tags/read` only (the spoke's tag role, at
 * subscription scope, covers the groups): the group itself (`resourceGroups/read`) is not read.
 * The answer keeps the two apart, as the GCP lookup does with a project's labels (`inherited`: the group's
 * tags the resource does not override). A group's tags are read once per `groupTtlMs` (default 15 minutes)
 * and shared by every resource of the group, concurrent asks included: a batch of 1,000 findings in one
 * group is one read of the group. Subscription tags are not read.
 *
 * @see https://learn.microsoft.com/rest/api/resources/tags/get-at-scope
 */
import type { ResourceManagementClient } from '@azure/arm-resources';
import { AdapterError, kindOfHttpStatus } from '../../core/errors.js';
import {
  type Clock,
  LOOKUP_CONCURRENCY,
  type LookupOutcome,
  type LookupTags,
  mapBounded,
  type OwnerLookup,
  type ResourceRef,
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
  /** Resource groups' tags by lower-cased scope (ARM ids are case-insensitive), with when they were read. */
  private readonly groupTags = new Map<string, { tags: Promise<Record<string, string>>; at: number }>();
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

  /** A resource group's tags, read at most once per ttl; a failed read is forgotten (the next ask retries). */
  private tagsOfGroup(client: AzureTagsClient, scope: string): Promise<Record<string, string>> {
    const key = scope.toLowerCase();
    const now = this.clock.now().getTime();
    const kept = this.groupTags.get(key);
    if (kept && now - kept.at < this.groupTtlMs) return kept.tags;
    const tags = this.tagsAt(client, scope).catch((e: unknown) => {
      if (this.groupTags.get(key)?.tags === tags) this.groupTags.delete(key);
      throw e;
    });
    this.groupTags.set(key, { tags, at: now });
    return tags;
  }

  /** The tags that apply to `r` (its own over its resource group's), and which of them are the group's. */
  async labelsFor(r: ResourceRef): Promise<Required<LookupTags>> {
    if (r.provider !== 'azure')
      throw new AdapterError('invalid', `AzureResourceTagsLookup cannot look up ${r.provider} resources`);
    const client = this.clientOf(r.account);
    const group = resourceGroupScopeOf(r.id);
    // Both reads at once. A group read that fails fails the whole lookup, as a failed project read does in
    // GcpLabelsLookup: the resource's own tags alone would read as "no owner tag" where the group may name
    // one (a guessed unowned, a name-pattern environment) and miss a skip tag set on the group. The caller
    // sees a failed lookup: owner unknown, environment not guessed, the skip-tag gate fails closed.
    const groupRead: Promise<Record<string, string>> = group ? this.tagsOfGroup(client, group) : Promise.resolve({});
    // Settled here too: when the resource's read fails first, nobody awaits the group's.
    groupRead.catch(() => {});
    const own = await this.tagsAt(client, r.id);
    const groupTags = await groupRead;
    // Azure tag names are case-insensitive: the resource's `Owner` overrides its group's `owner`.
    const ownNames = new Set(Object.keys(own).map((k) => k.toLowerCase()));
    const inherited: Record<string, string> = {};
    for (const [k, v] of Object.entries(groupTags)) if (!ownNames.has(k.toLowerCase())) inherited[k] = v;
    return { tags: { ...inherited, ...own }, inherited };
  }

  async tagsFor(r: ResourceRef): Promise<Record<string, string>> {
    return (await this.labelsFor(r)).tags;
  }

  /** Each resource's tags with its resource group's kept apart (`inherited`); the groups read once each. */
  tagsForMany(refs: readonly ResourceRef[]): Promise<LookupOutcome[]> {
    return mapBounded(refs, LOOKUP_CONCURRENCY, (r) =>
      this.labelsFor(r).then(
        (o): LookupOutcome => o,
        (error: unknown): LookupOutcome => ({ error }),
      ),
    );
  }
}
