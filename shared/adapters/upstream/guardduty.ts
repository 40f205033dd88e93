/**
 * GuardDuty has no "resolved" state; archiving is its triage action. Configurable, because archived
 * findings leave the console's default view. Only the administrator account can archive member findings.
 *
 * @see https://docs.aws.amazon.com/guardduty/latest/APIReference/API_ArchiveFindings.html
 */
import { ArchiveFindingsCommand, type GuardDutyClient } from '@aws-sdk/client-guardduty';
import type { Finding } from '../../core/model/finding.js';
import type { UpstreamResult, UpstreamStatus } from '../../core/verify/ports.js';

export interface GuardDutyUpstreamOptions {
  client: (region: string) => Pick<GuardDutyClient, 'send'>;
  /** policy `verification.upstream.guarddutyArchive` */
  archive: boolean;
}

/** `arn:aws:guardduty:{region}:{account}:detector/{detectorId}/finding/{id}` (finding-formats.md §5.1) */
const ARN = /^arn:[^:]+:guardduty:([^:]+):\d{12}:detector\/([^/]+)\/finding\/([^/]+)$/;

export class GuardDutyUpstream implements UpstreamStatus {
  constructor(private readonly opts: GuardDutyUpstreamOptions) {}

  async markResolved(finding: Finding): Promise<UpstreamResult> {
    const base = { source: finding.source, api: null, requestId: null };
    if (!this.opts.archive)
      return { ...base, outcome: 'not-updated', detail: 'GuardDuty archiving disabled by policy' };
    const m = ARN.exec(finding.sourceId);
    const region = m?.[1];
    const detectorId = m?.[2];
    const findingId = m?.[3];
    if (!region || !detectorId || !findingId) {
      return { ...base, outcome: 'not-updated', detail: `no detector id in ${finding.sourceId}` };
    }
    const api = 'guardduty:ArchiveFindings';
    const out = await this.opts
      .client(region)
      .send(new ArchiveFindingsCommand({ DetectorId: detectorId, FindingIds: [findingId] }));
    return {
      source: finding.source,
      outcome: 'updated',
      api,
      requestId: out.$metadata?.requestId ?? null,
      detail: `archived finding ${findingId} in detector ${detectorId}`,
    };
  }
}
