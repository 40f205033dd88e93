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

/** Classifies an Azure RestError by HTTP status; a 408 (the server gave up waiting) is transient, like a 5xx. */
export function azureAdapterError(e: unknown, what: string): AdapterError {
  const status = e && typeof e === 'object' && 'statusCode' in e && typeof e.statusCode === 'number' ? e.statusCode : 0;
  const kind: ErrorKind =
    status === 401 || status === 403
      ? 'denied'
      : status === 404
        ? 'gone'
        : status === 429
          ? 'throttled'
          : status >= 400 && status < 500 && status !== 408
            ? 'invalid'
            : 'transient';
  return new AdapterError(kind, `${what}: HTTP ${status || 'error'}`, { cause: e });
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
  constructor(
    private readonly clientFor: (subscriptionId: string) => AzureTagsClient,
    private readonly options: { timeoutMs?: number } = {},
  ) {}

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
    const timeoutMs = this.options.timeoutMs ?? AZURE_LOOKUP_TIMEOUT_MS;
    try {
      const res = await client.tagsOperations.getAtScope(r.id, { abortSignal: AbortSignal.timeout(timeoutMs) });
      return { ...res.properties.tags };
    } catch (e) {
      // The deadline passed (the SDK throws its own AbortError, in a request or in a wait): try again later.
      if (e instanceof Error && e.name === 'AbortError')
        throw new AdapterError('transient', `tags at scope ${r.id}: no answer within ${timeoutMs} ms`, { cause: e });
      throw azureAdapterError(e, `tags at scope ${r.id}`);
    }
  }
}
