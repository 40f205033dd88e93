/**
 * Live Azure resource tags through ARM (`Microsoft.Resources/tags` at the resource's scope, the
 * `tagsOperations.getAtScope` call of @azure/arm-resources). Needs `Microsoft.Resources/tags/read`.
 *
 * @see https://learn.microsoft.com/rest/api/resources/tags/get-at-scope
 */
import type { ResourceManagementClient } from '@azure/arm-resources';
import { AdapterError, type ErrorKind } from '../../core/errors.js';
import type { OwnerLookup, ResourceRef } from '../../core/ports.js';

/** The one call made; a ResourceManagementClient satisfies it. */
export interface AzureTagsClient {
  tagsOperations: Pick<ResourceManagementClient['tagsOperations'], 'getAtScope'>;
}

/** Classifies an Azure RestError by HTTP status. */
export function azureAdapterError(e: unknown, what: string): AdapterError {
  const status = e && typeof e === 'object' && 'statusCode' in e && typeof e.statusCode === 'number' ? e.statusCode : 0;
  const kind: ErrorKind =
    status === 401 || status === 403
      ? 'denied'
      : status === 404
        ? 'gone'
        : status === 429
          ? 'throttled'
          : status >= 400 && status < 500
            ? 'invalid'
            : 'transient';
  return new AdapterError(kind, `${what}: HTTP ${status || 'error'}`, { cause: e });
}

/**
 * @example new AzureResourceTagsLookup((subscriptionId) => new ResourceManagementClient(credential, subscriptionId))
 */
export class AzureResourceTagsLookup implements OwnerLookup {
  private readonly clients = new Map<string, AzureTagsClient>();
  constructor(private readonly clientFor: (subscriptionId: string) => AzureTagsClient) {}

  handles(provider: ResourceRef['provider']): boolean {
    return provider === 'azure';
  }

  async tagsFor(r: ResourceRef): Promise<Record<string, string>> {
    if (r.provider !== 'azure')
      throw new AdapterError('invalid', `AzureResourceTagsLookup cannot look up ${r.provider} resources`);
    const sub = r.account.toLowerCase();
    let client = this.clients.get(sub);
    if (!client) {
      client = this.clientFor(sub);
      this.clients.set(sub, client);
    }
    try {
      const res = await client.tagsOperations.getAtScope(r.id);
      return { ...res.properties.tags };
    } catch (e) {
      throw azureAdapterError(e, `tags at scope ${r.id}`);
    }
  }
}
