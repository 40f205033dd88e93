/** Sends each lookup to the adapter of its provider; a provider without one has no live tags to offer. */
import type { OwnerLookup, ResourceRef } from '../../core/ports.js';

/**
 * @example new RoutingOwnerLookup({ aws: new AwsTaggingOwnerLookup(...), gcp: new GcpLabelsLookup(...) })
 */
export class RoutingOwnerLookup implements OwnerLookup {
  constructor(private readonly byProvider: Partial<Record<ResourceRef['provider'], OwnerLookup>>) {}

  async tagsFor(r: ResourceRef): Promise<Record<string, string>> {
    const target = this.byProvider[r.provider];
    return target ? target.tagsFor(r) : {};
  }
}
