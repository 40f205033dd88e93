/**
 * The hub's record of a spoke's answer to `resolve` (a Defender alert or SCC finding marked resolved at its
 * source under the spoke's identity, see adapters/upstream/spoke.ts): an `upstream` evidence record on the
 * case's chain, once per request however often the answer is delivered, and the outcome on the case's
 * verification beside those of the hub's own sources.
 */
import { CASES, caseFields, recordEvidence } from '../evidence/case-link.js';
import type { EvidenceStore } from '../evidence/ports.js';
import { actorFrom } from '../evidence/record.js';
import { CaseSchema } from '../model/case.js';
import type { Clock, DocStore, Logger } from '../ports.js';
import type { RemoteResult } from '../remediation/remote.js';
import { getDoc, mutateDoc } from '../store/docs.js';

export interface UpstreamAnswerDeps {
  store: DocStore;
  evidence: EvidenceStore;
  clock: Clock;
  log: Logger;
}

/**
 * @example if (message.result.op === 'resolve') await recordUpstreamAnswer(verifyDeps, message.result);
 */
export async function recordUpstreamAnswer(deps: UpstreamAnswerDeps, result: RemoteResult): Promise<void> {
  if (result.op !== 'resolve') return;
  const c = (await getDoc(deps.store, CASES, result.caseKey, CaseSchema))?.value;
  if (!c) {
    deps.log.warn('upstream answer for an unknown case', { caseKey: result.caseKey, requestId: result.requestId });
    return;
  }
  const source = result.provider === 'azure' ? 'defender' : 'scc';
  const up = result.upstream ?? { outcome: 'failed' as const, api: null, requestId: null, detail: result.reason };
  await recordEvidence(
    { store: deps.store, evidence: deps.evidence, clock: deps.clock },
    {
      caseKey: c.key,
      ...caseFields(c),
      step: 'upstream',
      actor: actorFrom(result.actor),
      eventId: null,
      at: result.at,
      summary: `${source}: ${up.outcome}: ${up.detail} (by the ${result.provider} spoke, ${result.requestId})`,
      calls: up.api ? [{ api: up.api, requestId: up.requestId, outcome: up.outcome }] : [],
      verdict: up.outcome,
      detail: { requestId: result.requestId, spoke: result.provider },
    },
    `${result.requestId}:answer`,
  );
  // Written after the record (a redelivery after a crash in between still writes it), once. The answer
  // takes the place of the finding's `requested` entry at that source: a failed one is then asked again by
  // the next re-check (the verifier leaves the updates that stand alone, see earlierUpstream in stage.ts).
  const entry = {
    source,
    ...(result.findingKey ? { findingKey: result.findingKey } : {}),
    outcome: `${up.outcome}: ${up.detail} (${result.provider} spoke)`,
    at: result.at,
  };
  await mutateDoc(deps.store, CASES, c.key, CaseSchema, (current) => {
    const v = current?.verification;
    if (!current || !v) return undefined;
    if (v.upstream.some((u) => u.source === source && u.at === entry.at && u.outcome === entry.outcome))
      return undefined;
    const others = v.upstream.filter(
      (u) => !(entry.findingKey && u.findingKey === entry.findingKey && u.source === source),
    );
    return { ...current, verification: { ...v, upstream: [...others, entry] } };
  });
}
