/**
 * The spoke side of the hand-off: what a spoke received is normalized there, so only documents that
 * yield findings go to the hub. Apart from spoke.ts so the hub's functions, which import spoke.ts for
 * the remote-remediation messages, do not load the normalizers with it.
 */
import type { Rejected } from '../../core/model/finding.js';
import { normalize } from '../../core/pipeline/normalize.js';
import type { ReceivedDocument, Spoke, SpokeDetail } from './spoke.js';

/**
 * Normalizes each received document on the spoke: documents yielding at least one finding become
 * hub-bound details; the rest are returned as rejections (logged at the edge, never forwarded).
 *
 * @example
 * const { details, rejected } = acceptDocuments('gcp', [{ input: 'pubsub:1', value: notification }]);
 */
export function acceptDocuments(
  spoke: Spoke,
  docs: readonly ReceivedDocument[],
): { details: SpokeDetail[]; rejected: Rejected[] } {
  const details: SpokeDetail[] = [];
  const rejected: Rejected[] = [];
  for (const doc of docs) {
    const out = normalize(doc.value, `${spoke}:${doc.input}`);
    rejected.push(...out.rejected);
    if (out.findings.length > 0) {
      details.push({ spoke, input: doc.input, document: doc.value, findingKeys: out.findings.map((f) => f.key) });
    }
  }
  return { details, rejected };
}
