/**
 * The spoke side of the hand-off: what a spoke received is normalized there, so only documents that
 * yield findings go to the hub. Apart from spoke.ts so the hub's functions, which import spoke.ts for
 * the remote-remediation messages, do not load the normalizers with it.
 */
import { errorMessage } from '../../core/errors.js';
import type { Finding, Rejected } from '../../core/model/finding.js';
import { normalize } from '../../core/pipeline/normalize.js';
import {
  canRead,
  type LookupOutcome,
  lookupMany,
  type OwnerLookup,
  type ResourceRef,
  refOf,
} from '../../core/ports.js';
import { hasEnumerableKey } from '../../core/util/objects.js';
import { entrySize, MAX_REQUEST_BYTES } from './eventbridge.js';
import { type ReceivedDocument, type Spoke, type SpokeDetail, type SpokeLiveTag, spokeDocumentEntry } from './spoke.js';

/**
 * Normalizes each received document on the spoke, accepting only the spoke's own cloud's formats
 * (Azure: Defender; GCP: SCC): documents yielding at least one finding become
 * hub-bound details; the rest are returned as rejections (logged at the edge, never forwarded). With a
 * `lookup` (the spoke's tag lookup is on), the live tags of every resource whose event carried none are
 * read here, under the spoke's identity, each resource once, and travel with the document.
 *
 * @example
 * const { details, rejected } = await acceptDocuments('gcp', [{ input: 'pubsub:1', value: notification }]);
 */
export async function acceptDocuments(
  spoke: Spoke,
  docs: readonly ReceivedDocument[],
  lookup?: OwnerLookup,
): Promise<{ details: SpokeDetail[]; rejected: Rejected[] }> {
  const details: SpokeDetail[] = [];
  const rejected: Rejected[] = [];
  const untagged: Array<{ detail: SpokeDetail; findings: Finding[] }> = [];
  const sources = new Map<SpokeDetail, Finding['source']>();
  for (const doc of docs) {
    // Only this spoke's cloud: an AWS (or other spoke's) finding fed to it is rejected here, not forwarded.
    const out = normalize(doc.value, `${spoke}:${doc.input}`, {
      channel: { provider: spoke, name: `the ${spoke} spoke` },
    });
    rejected.push(...out.rejected);
    if (out.findings.length === 0) continue;
    const detail: SpokeDetail = {
      spoke,
      input: doc.input,
      document: doc.value,
      findingKeys: out.findings.map((f) => f.key),
    };
    details.push(detail);
    sources.set(detail, (out.findings[0] as Finding).source);
    const bare = out.findings.filter(
      (f) => !hasEnumerableKey(f.resource.tags) && (!lookup || canRead(lookup, f.resource.provider)),
    );
    if (lookup && bare.length > 0) untagged.push({ detail, findings: bare });
  }
  if (lookup && untagged.length > 0) await attachLiveTags(lookup, untagged);
  // One hub event takes 256 KB, where Pub/Sub takes 10 MB and Event Grid 1 MB: a document over it (live tags
  // included) is rejected here, and the others still go. Left in, it failed the whole forward on every
  // redelivery, holding back the documents delivered with it until the message was dead-lettered.
  const fits = details.filter((detail) => {
    const size = entrySize(spokeDocumentEntry('', detail));
    if (size <= MAX_REQUEST_BYTES) return true;
    rejected.push({
      input: `${spoke}:${detail.input}`,
      source: sources.get(detail) ?? 'unknown',
      path: '$',
      reason: `document is ${size} bytes as a hub event; the hub bus (EventBridge) takes at most ${MAX_REQUEST_BYTES} bytes`,
    });
    return false;
  });
  return { details: fits, rejected };
}

/** Reads each untagged resource's live tags once and puts them (or why not) on the details naming it. */
async function attachLiveTags(
  lookup: OwnerLookup,
  untagged: ReadonlyArray<{ detail: SpokeDetail; findings: Finding[] }>,
): Promise<void> {
  const refs = new Map<string, ResourceRef>();
  for (const { findings } of untagged)
    for (const { resource: r } of findings) if (!refs.has(r.id)) refs.set(r.id, refOf(r));
  const ids = [...refs.keys()];
  const outcomes = await lookupMany(lookup, [...refs.values()]);
  const read = new Map(
    ids.map((id, i) => {
      const o = outcomes[i] as LookupOutcome;
      let wire: SpokeLiveTag;
      if (!('tags' in o)) wire = { error: errorMessage(o.error).slice(0, 1024) };
      else {
        wire = { tags: o.tags };
        if (o.inherited) wire.inherited = o.inherited;
        if (o.inheritedFrom) wire.inheritedFrom = o.inheritedFrom;
      }
      return [id, wire] as const;
    }),
  );
  for (const { detail, findings } of untagged) {
    detail.liveTags = {};
    for (const f of findings) {
      const tags = read.get(f.resource.id);
      if (tags) detail.liveTags[f.resource.id] = tags;
    }
  }
}
