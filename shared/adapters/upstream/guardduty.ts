/**
 * GuardDuty has no "resolved" state; archiving is its triage action. Configurable, because archived
 * findings leave the console's default view. Only the administrator account can archive member findings.
 *
 * @see https://docs.aws.amazon.com/guardduty/latest/APIReference/API_ArchiveFindings.html
 */
import { ArchiveFindingsCommand, type GuardDutyClient, ListDetectorsCommand } from '@aws-sdk/client-guardduty';
import { AdapterError } from '../../core/errors.js';
import type { Finding } from '../../core/model/finding.js';
import type { UpstreamResult, UpstreamStatus } from '../../core/verify/ports.js';

export interface GuardDutyUpstreamOptions {
  client: (region: string) => Pick<GuardDutyClient, 'send'>;
  /** policy `verification.upstream.guarddutyArchive` */
  archive: boolean;
  /**
   * The account the client acts in (the hub, GuardDuty's delegated administrator). A member account's
   * finding names the member's detector, which does not exist here: the administrator archives it through
   * its own detector in that region (`ListDetectors`, one per region, asked once).
   */
  account?: string;
}

/** `arn:{partition}:guardduty:{region}:{account}:detector/{detectorId}/finding/{id}` (finding-formats.md §5.1) */
const ARN = /^arn:([^:]+):guardduty:([^:]+):(\d{12}):detector\/([^/]+)\/finding\/([^/]+)$/;

/** The parts of a GuardDuty finding ARN, or undefined when `arn` is not one. */
export function guardDutyArn(
  arn: string,
): { partition: string; region: string; account: string; detectorId: string; findingId: string } | undefined {
  const m = ARN.exec(arn);
  if (!m?.[1] || !m[2] || !m[3] || !m[4] || !m[5]) return undefined;
  return { partition: m[1], region: m[2], account: m[3], detectorId: m[4], findingId: m[5] };
}

export class GuardDutyUpstream implements UpstreamStatus {
  private readonly ownDetectors = new Map<string, Promise<string>>();

  constructor(private readonly opts: GuardDutyUpstreamOptions) {}

  /** This account's detector in `region` (a failure is asked again next time). */
  private ownDetector(region: string): Promise<string> {
    let d = this.ownDetectors.get(region);
    if (!d) {
      d = this.opts
        .client(region)
        .send(new ListDetectorsCommand({}))
        .then((out) => {
          const id = out.DetectorIds?.[0];
          if (!id) throw new AdapterError('gone', `no GuardDuty detector in ${region} of account ${this.opts.account}`);
          return id;
        });
      d.catch(() => this.ownDetectors.delete(region));
      this.ownDetectors.set(region, d);
    }
    return d;
  }

  async markResolved(finding: Finding): Promise<UpstreamResult> {
    const base = { source: finding.source, api: null, requestId: null };
    if (!this.opts.archive)
      return { ...base, outcome: 'not-updated', detail: 'GuardDuty archiving disabled by policy' };
    const arn = guardDutyArn(finding.sourceId);
    if (!arn) return { ...base, outcome: 'not-updated', detail: `no detector id in ${finding.sourceId}` };
    const { region, account, findingId } = arn;
    const member = this.opts.account !== undefined && account !== this.opts.account;
    const detectorId = member ? await this.ownDetector(region) : arn.detectorId;
    const api = 'guardduty:ArchiveFindings';
    const out = await this.opts
      .client(region)
      .send(new ArchiveFindingsCommand({ DetectorId: detectorId, FindingIds: [findingId] }));
    return {
      source: finding.source,
      outcome: 'updated',
      api,
      requestId: out.$metadata?.requestId ?? null,
      detail: `archived finding ${findingId} in detector ${detectorId}${member ? ` (the administrator's, for member account ${account})` : ''}`,
    };
  }
}
