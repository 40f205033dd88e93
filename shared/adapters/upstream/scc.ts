/**
 * Security Command Center: `setState` INACTIVE on the finding's name (never `setMute`, which is for
 * accepted risk, not fixes).
 *
 * @see https://cloud.google.com/security-command-center/docs/reference/rest/v1/organizations.sources.findings/setState
 */

import { GCP_CALL_OPTIONS } from '../../actions/retry.js';
import type { Finding } from '../../core/model/finding.js';
import type { Clock } from '../../core/ports.js';
import type { UpstreamStatus } from '../../core/verify/ports.js';

/** The one call made, as `SecurityCenterClient` (v1) declares it; inject `new SecurityCenterClient()`. */
export interface SccFindingStateClient {
  setFindingState(
    request: { name: string; state: 'INACTIVE'; startTime: { seconds: number } },
    options?: { timeout?: number; retry?: null },
  ): Promise<unknown>;
}

export class SccUpstream implements UpstreamStatus {
  constructor(private readonly opts: { client: SccFindingStateClient; clock: Clock }) {}

  async markResolved(finding: Pick<Finding, 'source' | 'sourceId'>) {
    // finding.sourceId is `finding.name` (organizations/{o}/sources/{s}[/locations/{l}]/findings/{f}).
    const name = finding.sourceId;
    if (!/^(organizations|folders|projects)\/[^/]+\/sources\/[^/]+\/(locations\/[^/]+\/)?findings\/[^/]+$/.test(name)) {
      return {
        source: finding.source,
        outcome: 'not-updated' as const,
        api: null,
        requestId: null,
        detail: `not an SCC finding name: ${name}`,
      };
    }
    // One try with a deadline (GCP_CALL_OPTIONS): the client's defaults allowed 60 s for it, half the
    // remediate function's time; a failure is retried by the hub (the remote result's `retry`).
    await this.opts.client.setFindingState(
      {
        name,
        state: 'INACTIVE',
        startTime: { seconds: Math.floor(this.opts.clock.now().getTime() / 1000) },
      },
      GCP_CALL_OPTIONS,
    );
    // gRPC responses carry no request id the client exposes; the finding name identifies the call.
    return {
      source: finding.source,
      outcome: 'updated' as const,
      api: 'securitycenter:findings.setState',
      requestId: null,
      detail: `state set to INACTIVE on ${name}`,
    };
  }
}
