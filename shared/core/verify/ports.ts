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
  /**
   * The same finding's copy in another source, updated in the same step: a GuardDuty finding's Security Hub
   * copy, or the GuardDuty finding behind a copy (archiving one does not update the other, finding-formats
   * §6.5). Informational: `outcome` is the finding's own source's.
   */
  also?: UpstreamResult[];
}

/** Marks a verified finding resolved at its source. Adapters: shared/adapters/upstream/. */
export interface UpstreamStatus {
  /**
   * `sources`: every source the finding's case came through (a copy elsewhere is updated too, see `also`).
   * `done`: sources an earlier verification already updated for this finding, not called again: when the
   * finding's own source is among them, the result is that of the first source updated now (its copy's).
   */
  markResolved(
    finding: Finding,
    note: string,
    sources?: readonly Source[],
    done?: readonly Source[],
  ): Promise<UpstreamResult>;
}
