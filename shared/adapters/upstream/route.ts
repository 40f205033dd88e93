/** Routes `markResolved` by the finding's source; a source without an adapter is recorded, not guessed. */
import type { Finding, Source } from '../../core/model/finding.js';
import type { UpstreamResult, UpstreamStatus } from '../../core/verify/ports.js';

export class RoutingUpstreamStatus implements UpstreamStatus {
  constructor(private readonly bySource: Partial<Record<Source, UpstreamStatus>>) {}

  async markResolved(finding: Finding, note: string): Promise<UpstreamResult> {
    const adapter = this.bySource[finding.source];
    if (!adapter) {
      return {
        source: finding.source,
        outcome: 'not-updated',
        api: null,
        requestId: null,
        detail: `no upstream adapter configured for ${finding.source}`,
      };
    }
    return adapter.markResolved(finding, note);
  }
}
