/**
 * Security Hub: `BatchUpdateFindings` with Workflow RESOLVED and a note, identified by the ASFF `Id` and
 * `ProductArn` of the raw finding.
 *
 * @see https://docs.aws.amazon.com/securityhub/1.0/APIReference/API_BatchUpdateFindings.html
 */
import { BatchUpdateFindingsCommand, type SecurityHubClient } from '@aws-sdk/client-securityhub';
import * as z from 'zod';
import type { Finding } from '../../core/model/finding.js';
import type { UpstreamResult, UpstreamStatus } from '../../core/verify/ports.js';

const AsffIdSchema = z.looseObject({ Id: z.string().min(1), ProductArn: z.string().startsWith('arn:') });

export interface SecurityHubUpstreamOptions {
  /** A client per region (the finding's home region, taken from its ProductArn). */
  client: (region: string) => Pick<SecurityHubClient, 'send'>;
  /** `Note.UpdatedBy` */
  updatedBy?: string;
}

export class SecurityHubUpstream implements UpstreamStatus {
  constructor(private readonly opts: SecurityHubUpstreamOptions) {}

  async markResolved(finding: Finding, note: string): Promise<UpstreamResult> {
    const api = 'securityhub:BatchUpdateFindings';
    const ids = AsffIdSchema.safeParse(finding.raw);
    if (!ids.success) {
      return {
        source: finding.source,
        outcome: 'not-updated',
        api: null,
        requestId: null,
        detail: 'raw finding has no ASFF Id/ProductArn',
      };
    }
    const region = ids.data.ProductArn.split(':')[3] || finding.resource.region || 'us-east-1';
    const out = await this.opts.client(region).send(
      new BatchUpdateFindingsCommand({
        FindingIdentifiers: [{ Id: ids.data.Id, ProductArn: ids.data.ProductArn }],
        Workflow: { Status: 'RESOLVED' },
        // The API caps the note at 512 characters.
        Note: { Text: note.slice(0, 512), UpdatedBy: this.opts.updatedBy ?? 'closeloop' },
      }),
    );
    const requestId = out.$metadata?.requestId ?? null;
    const refused = out.UnprocessedFindings?.[0];
    if (refused) {
      return {
        source: finding.source,
        outcome: 'failed',
        api,
        requestId,
        detail: `Security Hub refused: ${refused.ErrorCode ?? ''} ${refused.ErrorMessage ?? ''}`.trim(),
      };
    }
    return {
      source: finding.source,
      outcome: 'updated',
      api,
      requestId,
      detail: `workflow set to RESOLVED on ${ids.data.Id}`,
    };
  }
}
