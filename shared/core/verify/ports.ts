/** The verifier's door to the sources: marking a finding resolved where the source's API allows it. */
import type { Finding, Source } from '../model/finding.js';

export interface UpstreamResult {
  source: Source;
  /**
   * `updated`: the source accepted the change. `not-updated`: deliberately not changed (local run,
   * disabled by policy, already resolved at the source). `not-applicable`: the source has no such
   * state (Defender assessments re-evaluate themselves). `failed`: the call was made and refused.
   * `requested`: handed to the spoke that holds the source's credentials; its answer is recorded apart.
   */
  outcome: 'updated' | 'not-updated' | 'not-applicable' | 'failed' | 'requested';
  /** The API called (`securityhub:BatchUpdateFindings`), null when none was. */
  api: string | null;
  requestId: string | null;
  /** One sentence for the evidence record and the ticket. */
  detail: string;
}

/** Marks a verified finding resolved at its source. Adapters: shared/adapters/upstream/. */
export interface UpstreamStatus {
  markResolved(finding: Finding, note: string): Promise<UpstreamResult>;
}
