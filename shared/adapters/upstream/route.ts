/**
 * Routes `markResolved` by the finding's source; a source without an adapter is recorded, not guessed. A
 * GuardDuty finding whose case also came through Security Hub (or the reverse) has its copy updated in the
 * same step: archiving in GuardDuty does not update the Security Hub copy (finding-formats §6.5), and both
 * share one finding key, so only the one that arrived last is stored.
 */
import { errorMessage } from '../../core/errors.js';
import type { Finding, Source } from '../../core/model/finding.js';
import type { UpstreamResult, UpstreamStatus } from '../../core/verify/ports.js';
import { guardDutyArn } from './guardduty.js';

/**
 * The same GuardDuty finding as the other channel carries it: the native finding for a Security Hub copy
 * (its Id is the GuardDuty finding ARN), or the Security Hub copy of a native finding (Id and the GuardDuty
 * integration's ProductArn, §6.5). Undefined for anything else.
 */
export function twinOf(f: Finding): Finding | undefined {
  const arn = guardDutyArn(f.sourceId);
  if (!arn) return undefined;
  if (f.source === 'securityhub' && f.product.toLowerCase() === 'guardduty') return { ...f, source: 'guardduty' };
  if (f.source !== 'guardduty') return undefined;
  const productArn = `arn:${arn.partition}:securityhub:${arn.region}::product/aws/guardduty`;
  return { ...f, source: 'securityhub', raw: { Id: f.sourceId, ProductArn: productArn } };
}

export class RoutingUpstreamStatus implements UpstreamStatus {
  constructor(private readonly bySource: Partial<Record<Source, UpstreamStatus>>) {}

  async markResolved(
    finding: Finding,
    note: string,
    sources: readonly Source[] = [],
    done: readonly Source[] = [],
  ): Promise<UpstreamResult> {
    const found = twinOf(finding);
    const twin =
      found && sources.includes(found.source) && this.bySource[found.source] && !done.includes(found.source)
        ? found
        : undefined;
    // The finding's own source took the update in an earlier verification; what is left is its copy's
    // (that update failed then): retried alone, and its failure is its own, not the finding's source's.
    if (done.includes(finding.source)) {
      if (twin) return this.copy(twin, note);
      return {
        source: finding.source,
        outcome: 'not-updated',
        api: null,
        requestId: null,
        detail: 'already updated by an earlier verification',
      };
    }
    const main = await this.one(finding, note);
    return twin ? { ...main, also: [await this.copy(twin, note)] } : main;
  }

  /** The copy's update: a failure is recorded as its outcome, never thrown (the finding's own update stands). */
  private async copy(twin: Finding, note: string): Promise<UpstreamResult> {
    try {
      return await this.one(twin, note);
    } catch (e) {
      return { source: twin.source, outcome: 'failed', api: null, requestId: null, detail: errorMessage(e) };
    }
  }

  private one(finding: Finding, note: string): Promise<UpstreamResult> {
    const adapter = this.bySource[finding.source];
    if (!adapter) {
      return Promise.resolve({
        source: finding.source,
        outcome: 'not-updated',
        api: null,
        requestId: null,
        detail: `no upstream adapter configured for ${finding.source}`,
      });
    }
    return adapter.markResolved(finding, note);
  }
}
