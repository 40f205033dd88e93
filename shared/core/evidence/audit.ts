/**
 * Reading the evidence back: the chain check (`closeloop evidence verify`), a case's story
 * (`closeloop evidence show <case>`) and an auditor's bundle (`closeloop evidence export <case>`).
 * Everything here re-hashes what storage holds now; nothing trusts a stored hash.
 */
import * as z from 'zod';
import type { DocStore } from '../ports.js';
import { getDoc } from '../store/docs.js';
import { markdownCode, markdownText, oneLine } from '../util/text.js';
import { caseHeadId, GLOBAL_HEAD_ID, HEADS } from './chain.js';
import { type EvidenceStore, type StoredEvidence, storedCaseKey } from './ports.js';
import { type EvidenceRecord, EvidenceRecordSchema, hashRecord } from './record.js';

export interface BrokenLink {
  /** The hash the broken record is stored under (or the head's hash when a head dangles). */
  hash: string;
  caseKey: string;
  reason: string;
}

export interface ChainCheck {
  ok: boolean;
  records: number;
  cases: number;
  firstBroken?: BrokenLink;
  /** Every problem found, in global order, heads last. */
  problems: BrokenLink[];
}

const HeadSchema = z.object({ record: z.object({ hash: z.string(), seq: z.number() }) });
const CaseHeadSchema = z.object({ hash: z.string(), caseSeq: z.number() });

/**
 * Checks every record and both chains: each record re-hashes to its `hash` and is stored under it;
 * global sequence numbers run 1..n with each `prevGlobalHash` naming the record before; each case's
 * records link through `prevCaseHash`; and, given the heads store, the heads name the newest records
 * (which catches deleting the last record). Edits, deletions and reorderings all break one of these.
 *
 * @example
 * const check = await verifyChains(evidence, { store });
 * if (!check.ok) console.log(`broken at ${check.firstBroken?.hash}: ${check.firstBroken?.reason}`);
 */
export async function verifyChains(evidence: EvidenceStore, options: { store?: DocStore } = {}): Promise<ChainCheck> {
  const stored = await evidence.listAll();
  const problems: BrokenLink[] = [];
  const lastOfCase = new Map<string, EvidenceRecord>();
  let prev: EvidenceRecord | undefined;
  let expectedSeq = 1;

  for (const s of stored) {
    const caseKey = storedCaseKey(s) ?? '(unknown)';
    const broken = (reason: string) => problems.push({ hash: s.key, caseKey, reason });
    const parsed = EvidenceRecordSchema.safeParse(s.raw);
    if (!parsed.success || !s.raw || typeof s.raw !== 'object') {
      broken(`unreadable record: ${parsed.success ? 'not an object' : (parsed.error.issues[0]?.message ?? 'invalid')}`);
      continue;
    }
    const r = parsed.data;
    const actual = hashRecord(s.raw);
    if (actual !== r.hash) broken(`edited: content hashes to ${actual}, record says ${r.hash}`);
    else if (s.key !== r.hash) broken(`stored under ${s.key} but its content is record ${r.hash}`);

    if (r.seq > expectedSeq) broken(`records ${expectedSeq}..${r.seq - 1} of the global chain are missing (deleted)`);
    else if (r.seq < expectedSeq) broken(`sequence ${r.seq} appears twice (forked or copied record)`);
    if (r.prevGlobalHash !== (prev?.hash ?? null)) {
      broken(
        `prevGlobalHash ${r.prevGlobalHash ?? 'null'} does not name the record before it (${prev?.hash ?? 'none'}): deleted, inserted or reordered`,
      );
    }
    const before = lastOfCase.get(r.caseKey);
    if (r.prevCaseHash !== (before?.hash ?? null) || r.caseSeq !== (before?.caseSeq ?? 0) + 1) {
      broken(
        `prevCaseHash ${r.prevCaseHash ?? 'null'} (case record #${r.caseSeq}) does not follow the case's previous record (${before?.hash ?? 'none'}, #${before?.caseSeq ?? 0})`,
      );
    }
    lastOfCase.set(r.caseKey, r);
    prev = r;
    expectedSeq = Math.max(expectedSeq, r.seq) + 1;
  }

  if (options.store) problems.push(...(await checkHeads(options.store, prev, lastOfCase)));
  const first = problems[0];
  return {
    ok: problems.length === 0,
    records: stored.length,
    cases: lastOfCase.size,
    ...(first ? { firstBroken: first } : {}),
    problems,
  };
}

/** The heads must name the newest records: otherwise records were deleted from the end. */
async function checkHeads(
  store: DocStore,
  last: EvidenceRecord | undefined,
  lastOfCase: Map<string, EvidenceRecord>,
): Promise<BrokenLink[]> {
  const problems: BrokenLink[] = [];
  const head = (await getDoc(store, HEADS, GLOBAL_HEAD_ID, HeadSchema))?.value.record;
  if (head && head.hash !== last?.hash) {
    problems.push({
      hash: head.hash,
      caseKey: last?.caseKey ?? '(unknown)',
      reason: `global head is record #${head.seq} ${head.hash} but the newest stored record is ${last ? `#${last.seq} ${last.hash}` : 'none'} (deleted)`,
    });
  }
  if (!head && last)
    problems.push({
      hash: last.hash,
      caseKey: last.caseKey,
      reason: 'records exist but no global head was ever written',
    });
  for (const doc of await store.list(HEADS, { prefix: 'case:' })) {
    const parsed = CaseHeadSchema.safeParse(doc.value);
    const caseKey = doc.id.slice('case:'.length);
    const newest = lastOfCase.get(caseKey);
    if (parsed.success && parsed.data.hash !== newest?.hash && doc.id === caseHeadId(caseKey)) {
      problems.push({
        hash: parsed.data.hash,
        caseKey,
        reason: `case head is record #${parsed.data.caseSeq} ${parsed.data.hash} but the case's newest stored record is ${newest ? `#${newest.caseSeq} ${newest.hash}` : 'none'} (deleted)`,
      });
    }
  }
  return problems;
}

/**
 * Checks one case's chain only (for `show` and `export`): each record's hash, its link to the one before,
 * its place (`caseSeq` 1, 2, …: a deleted record in the middle leaves a gap), and, given the case head the
 * store keeps, that the newest record is that head (a deleted newest record leaves the links intact).
 */
export function checkCase(
  stored: readonly StoredEvidence[],
  head?: { hash: string; caseSeq: number } | null,
): { ok: boolean; problems: string[] } {
  const problems: string[] = [];
  let before: EvidenceRecord | undefined;
  for (const s of stored) {
    const parsed = EvidenceRecordSchema.safeParse(s.raw);
    if (!parsed.success || !s.raw || typeof s.raw !== 'object') {
      problems.push(`${s.key}: unreadable record`);
      continue;
    }
    const r = parsed.data;
    const actual = hashRecord(s.raw);
    if (actual !== r.hash || s.key !== r.hash) problems.push(`${s.key}: edited (content hashes to ${actual})`);
    if (r.prevCaseHash !== (before?.hash ?? null))
      problems.push(`${s.key}: does not follow ${before?.hash ?? 'the start'}`);
    const expected = (before?.caseSeq ?? 0) + 1;
    if (r.caseSeq !== expected)
      problems.push(`${s.key}: is case record #${r.caseSeq}, #${expected} expected (missing)`);
    before = r;
  }
  if (head && head.hash !== before?.hash)
    problems.push(
      `case head is record #${head.caseSeq} ${head.hash} but the newest stored record is ${before ? `#${before.caseSeq} ${before.hash}` : 'none'} (deleted)`,
    );
  return { ok: problems.length === 0, problems };
}

/** The case head the store keeps (the newest record's hash and place), when a store is given. */
async function caseHead(store: DocStore | undefined, caseKey: string) {
  return store ? ((await getDoc(store, HEADS, caseHeadId(caseKey), CaseHeadSchema))?.value ?? null) : undefined;
}

function records(stored: readonly StoredEvidence[]): EvidenceRecord[] {
  return stored.flatMap((s) => {
    const p = EvidenceRecordSchema.safeParse(s.raw);
    return p.success ? [p.data] : [];
  });
}

/**
 * The case's story: one line per step, oldest first, with actor, calls, verdict and hash.
 *
 * @example console.log(await caseStory(evidence, 'aws|arn:aws:s3:::acme-marketing-exports|Policy:S3/…'));
 */
export async function caseStory(evidence: EvidenceStore, caseKey: string, store?: DocStore): Promise<string> {
  const stored = await evidence.listByCase(caseKey);
  const head = await caseHead(store, caseKey);
  // What a finding or a person wrote (summaries, actors, outcomes) reaches a terminal: no control characters.
  if (stored.length === 0 && !head) return `Case ${oneLine(caseKey)}: no evidence recorded.`;
  const check = checkCase(stored, head);
  const lines = [
    `Case ${oneLine(caseKey)}`,
    `${stored.length} evidence record${stored.length === 1 ? '' : 's'}; chain ${check.ok ? 'intact' : `BROKEN: ${oneLine(check.problems[0] ?? '')}`}`,
    '',
  ];
  for (const r of records(stored)) {
    lines.push(`#${r.caseSeq}  ${r.at}  ${r.step.padEnd(9)} ${r.actor.kind} ${oneLine(r.actor.id)}`);
    lines.push(`    ${oneLine(r.summary)}`);
    for (const c of r.calls)
      lines.push(
        `    call ${oneLine(c.api)}${c.requestId ? ` request ${oneLine(c.requestId)}` : ''}: ${oneLine(c.outcome)}`,
      );
    if (r.verdict) lines.push(`    verdict ${oneLine(r.verdict)}`);
    lines.push(
      `    hash ${r.hash.slice(0, 16)}… prev ${r.prevCaseHash ? `${r.prevCaseHash.slice(0, 16)}…` : '(first)'}`,
    );
  }
  return lines.join('\n');
}

export const BUNDLE_FORMAT = 'closeloop-evidence-bundle/1';

/**
 * A bundle an auditor reads without closeloop: every record of the case as stored, the chain check,
 * and (in Markdown) how to re-check the hashes and links with `jq` and `sha256sum`.
 *
 * @example await writeFile('case.md', await exportCase(evidence, key, 'md'));
 */
export async function exportCase(
  evidence: EvidenceStore,
  caseKey: string,
  format: 'json' | 'md',
  /** Where the case head is kept: with it, a deleted newest record is found too. */
  store?: DocStore,
): Promise<string> {
  const stored = await evidence.listByCase(caseKey);
  const check = checkCase(stored, await caseHead(store, caseKey));
  const raw = stored.map((s) => s.raw);
  if (format === 'json') {
    return `${JSON.stringify({ format: BUNDLE_FORMAT, caseKey, chain: check, howToVerify: HOW_TO_VERIFY, records: raw }, null, 2)}\n`;
  }
  const rs = records(stored);
  const out = [
    `# Evidence for case ${markdownCode(caseKey)}`,
    '',
    `${stored.length} record(s). Chain check by closeloop: **${check.ok ? 'intact' : 'BROKEN'}**${check.ok ? '' : ` — ${markdownText(check.problems.join('; '))}`}.`,
    '',
    '| # | when (UTC) | step | actor | summary | verdict | hash |',
    '|---|---|---|---|---|---|---|',
    ...rs.map(
      (r) =>
        `| ${r.caseSeq} | ${r.at} | ${r.step} | ${markdownText(`${r.actor.kind} ${r.actor.id}`)} | ${markdownText(r.summary)} | ${markdownText(r.verdict ?? '')} | \`${r.hash.slice(0, 12)}\` |`,
    ),
    '',
    '## How to re-check without closeloop',
    '',
    ...HOW_TO_VERIFY.map((l) => l),
    '',
    '## Records',
    '',
    'Each record exactly as stored (one JSON line each; a file per record re-hashes as described above).',
    '',
    ...raw.flatMap((r, i) => [`### Record ${i + 1}`, '', '```json', JSON.stringify(r), '```', '']),
  ];
  return `${out.join('\n')}\n`;
}

const HOW_TO_VERIFY = [
  "Each record's `hash` is the SHA-256 (hex) of the record without its `hash` field, serialized as canonical JSON:",
  'keys sorted by Unicode code point, no whitespace, UTF-8 — exactly what `jq -cS` prints (`canon: 2` in the record).',
  "`prevCaseHash` names the case's previous record (null for the first) and `prevGlobalHash` the previous record",
  'of all cases, so an edited, deleted or reordered record breaks a link.',
  '',
  'With the JSON bundle (`closeloop evidence export <case> --format json > case.json`):',
  '',
  '```sh',
  "jq -c '.records[]' case.json | while IFS= read -r r; do",
  '  want=$(printf \'%s\' "$r" | jq -r .hash)',
  "  got=$(printf '%s' \"$r\" | jq -jcS 'del(.hash)' | sha256sum | cut -d' ' -f1)",
  '  [ "$want" = "$got" ] && echo "ok $want" || echo "MISMATCH $want (content hashes to $got)"',
  'done',
  "jq -r '.records[] | [.caseSeq, .hash, (.prevCaseHash // \"-\")] | @tsv' case.json   # each prev = the line above's hash",
  '```',
  '',
  'Records without a `canon` field were written before that form, in form 1, which differed in three ways:',
  'integer-like keys ("9", "10", "2024") came first in numeric order, a key above U+FFFF sorted before one in',
  'U+E000–U+FFFF, and DEL (U+007F) was not escaped. Such a record shows MISMATCH above though intact; Node.js',
  '(12 or later) serializes form 1 itself and re-checks every form-1 record of the bundle:',
  '',
  '```sh',
  "node -e '",
  'const sort = (v) => Array.isArray(v) ? v.map(sort) : v && typeof v === "object"',
  '  ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, sort(v[k])])) : v;',
  'for (const { hash, ...rest } of JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).records) {',
  '  if ("canon" in rest) continue;',
  '  const got = require("crypto").createHash("sha256").update(JSON.stringify(sort(rest))).digest("hex");',
  '  console.log(got === hash ? "ok " + hash : "MISMATCH " + hash + " (content hashes to " + got + ")");',
  "}' case.json",
  '```',
  '',
  'Caveat: `jq` may print very large or fractional numbers differently from JavaScript (jq 1.6 prints 0.1 as',
  '0.10000000000000001). Should observed cloud state ever hold such values, a MISMATCH here is a serialization',
  'difference, not tampering: compare with `closeloop evidence verify`, which re-hashes with the exact algorithm.',
];
