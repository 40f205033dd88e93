/**
 * The ingest's slow, always-correct path (pipeline/ingest.ts), loaded with the first conflict: the function's
 * cold start reads every module imported statically (the ingest bundle's budget), and a conflict (a concurrent
 * worker, the same event delivered twice at once) is the exception. One finding, read-modify-write with
 * retries on both documents: its case re-decided on fresh state, then the finding, never over a newer state.
 */
import { type Case, CaseSchema } from '../model/case.js';
import type { Decision } from '../model/decision.js';
import { type Finding, FindingSchema } from '../model/finding.js';
import type { DocStore } from '../ports.js';
import { mutateDoc } from '../store/docs.js';
import { parseWithoutCopy } from '../util/accept.js';
import { CASES } from './announced.js';
import { compareTime } from './decide.js';

/** Decides the finding being redone against its previous state and its case as stored (ingest's decideOne). */
type DecideAgainst = (
  previous: Finding | undefined,
  current: Case | undefined,
) => { decision: Decision; next: Case; caseChanged: boolean };

/**
 * `ours` holds the version at which this chunk's batch wrote a finding, `before` what that finding was before
 * the batch: while the stored finding is still our own write, it is not the previous state of itself (read as
 * such, a re-detection was no recurrence and counted no occurrence).
 */
export async function redo(
  store: DocStore,
  decideAgainst: DecideAgainst,
  finding: Finding,
  caseKey: string,
  ours: ReadonlyMap<string, number>,
  before: Map<string, Finding | undefined>,
): Promise<{ decision: Decision; statusChanged: boolean }> {
  let outcome: { decision: Decision; statusChanged: boolean } | undefined;
  const key = finding.key;
  const stored = await store.get(FINDINGS, key);
  const own = stored !== undefined && before.has(key) && ours.get(key) === stored.version;
  const previous = own ? before.get(key) : stored ? parseWithoutCopy(FindingSchema, stored.value) : undefined;
  await mutateDoc(store, CASES, caseKey, CaseSchema, (current) => {
    const out = decideAgainst(previous, current);
    outcome = { decision: out.decision, statusChanged: current?.status !== out.next.status };
    return out.caseChanged ? out.next : undefined;
  });
  // The next state of this finding in the chunk follows this one (unless this one was the older).
  if (own && (previous === undefined || compareTime(finding.updatedAt, previous.updatedAt) >= 0))
    before.set(key, finding);
  // Never over a newer state: an older finding written over a newer one (another worker's resolution)
  // made a later redelivery of the older one look new, and reopened the case.
  await mutateDoc(store, FINDINGS, key, FindingSchema, (current) => {
    if (!current) return finding;
    const order = compareTime(current.updatedAt, finding.updatedAt);
    const keep =
      order > 0 || (order === 0 && current.status === finding.status && current.occurrences >= finding.occurrences);
    return keep ? undefined : finding;
  });
  if (!outcome) throw new Error(`case ${caseKey}: no decision reached`);
  return outcome;
}

/** ingest.ts COLLECTIONS.findings (not imported from there: this module loads apart from it). */
const FINDINGS = 'findings';
