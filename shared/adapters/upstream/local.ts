/** The embedded default has no cloud access: nothing is marked upstream, and the evidence says so. */
import type { Finding } from '../../core/model/finding.js';
import type { UpstreamResult, UpstreamStatus } from '../../core/verify/ports.js';

export class LocalUpstreamStatus implements UpstreamStatus {
  async markResolved(finding: Finding): Promise<UpstreamResult> {
    return {
      source: finding.source,
      outcome: 'not-updated',
      api: null,
      requestId: null,
      detail: 'not updated: local run',
    };
  }
}
