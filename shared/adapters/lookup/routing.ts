/** Sends each lookup to the adapter of its provider; a provider without one has no live tags to offer. */
import { canRead, type LookupOutcome, lookupMany, type OwnerLookup, type ResourceRef } from '../../core/ports.js';

/**
 * @example new RoutingOwnerLookup({ aws: new AwsTaggingOwnerLookup(...), gcp: new GcpLabelsLookup(...) })
 */
export class RoutingOwnerLookup implements OwnerLookup {
  constructor(private readonly byProvider: Partial<Record<ResourceRef['provider'], OwnerLookup>>) {}

  handles(provider: ResourceRef['provider']): boolean {
    const target = this.byProvider[provider];
    return target !== undefined && canRead(target, provider);
  }

  async tagsFor(r: ResourceRef): Promise<Record<string, string>> {
    const target = this.byProvider[r.provider];
    return target ? target.tagsFor(r) : {};
  }

  /** Each provider's refs as one batch of its adapter, the providers side by side. */
  async tagsForMany(refs: readonly ResourceRef[]): Promise<LookupOutcome[]> {
    const out = new Array<LookupOutcome>(refs.length);
    const groups = new Map<OwnerLookup, number[]>();
    refs.forEach((r, i) => {
      const target = this.byProvider[r.provider];
      if (!target) {
        out[i] = { tags: {} };
        return;
      }
      const group = groups.get(target);
      if (group) group.push(i);
      else groups.set(target, [i]);
    });
    await Promise.all(
      [...groups].map(async ([target, positions]) => {
        const outcomes = await lookupMany(
          target,
          positions.map((i) => refs[i] as ResourceRef),
        );
        positions.forEach((at, k) => {
          out[at] = outcomes[k] as LookupOutcome;
        });
      }),
    );
    return out;
  }
}
