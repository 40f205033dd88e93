/** Case listing and lookup helpers shared by CLI commands. */
import { UsageError } from '../../core/errors.js';
import { applyingAction, type Case, type CaseRemediation, CaseSchema, caseIdOf } from '../../core/model/case.js';
import type { GateResult } from '../../core/model/decision.js';
import type { Enrichment } from '../../core/model/enrichment.js';
import { COLLECTIONS } from '../../core/pipeline/ingest.js';
import type { DocStore } from '../../core/ports.js';
import { sha256Hex } from '../../core/util/hash.js';
import { oneLine, renderTable } from './table.js';

/** A case's short id (`caseIdOf`): shown in tables, accepted by commands. */
export const caseId = caseIdOf;

export async function listCases(store: DocStore): Promise<Case[]> {
  return (await store.list(COLLECTIONS.cases)).map((d) => CaseSchema.parse(d.value));
}

/** Finds a case by its full key or its short id (a unique prefix of at least 6 hex characters). */
export async function resolveCase(store: DocStore, ref: string): Promise<Case> {
  const exact = await store.get(COLLECTIONS.cases, ref);
  if (exact) return CaseSchema.parse(exact.value);
  const id = ref.replace(/^(#|closeloop-)/, '');
  if (!/^[0-9a-f]{6,}$/.test(id)) throw new UsageError(`no case with key ${JSON.stringify(ref)}`);
  // Any prefix of the key's sha256: the 10-hex id of the tables and tickets, the 16-hex one a source's note
  // names (`closeloop case …`), the 32-hex one of the ticket's `closeloop-…` label.
  const matches = (await listCases(store)).filter((c) => sha256Hex(c.key).startsWith(id));
  if (matches.length === 1 && matches[0]) return matches[0];
  throw new UsageError(
    matches.length === 0 ? `no case with id ${id}` : `case id ${id} is ambiguous (${matches.length} cases)`,
  );
}

const SEVERITY_RANK = { critical: 0, high: 1, medium: 2, low: 3, informational: 4 } as const;

/** The OWNER column of `cases` and `plan`: the owner, and whether it is a gap (none found, or unknown after a failed lookup). */
export const ownerCell = (e: Pick<Enrichment, 'owner' | 'unowned' | 'complete'>): string =>
  e.unowned ? `${e.owner} (${e.complete ? 'unowned' : 'owner unknown'})` : e.owner;

export function renderCases(cases: readonly Case[]): string {
  const sorted = [...cases].sort(
    (a, b) => SEVERITY_RANK[a.severity] - SEVERITY_RANK[b.severity] || a.key.localeCompare(b.key),
  );
  return renderTable(
    ['CASE', 'SEVERITY', 'STATUS', 'ENV', 'OWNER', 'TYPE', 'RESOURCE', 'REMEDIATION', 'TICKET', 'SEEN'],
    sorted.map((c) => [
      caseId(c.key),
      c.severity,
      c.status,
      c.enrichment.environment,
      ownerCell(c.enrichment),
      c.type,
      c.resourceName,
      remediationCell(c.remediation),
      c.ticket?.key ?? '-',
      String(c.occurrences),
    ]),
    40,
  );
}

/** The table's remediation cell: decide's action, mode and state, or the action an apply's state is of. */
function remediationCell(r: CaseRemediation): string {
  const applying = applyingAction(r);
  if (applying) return `${applying} [${r.state}; now ${r.action ?? 'none'}, ${r.mode}]`;
  return r.action ? `${r.action} [${r.mode}${r.state !== 'none' ? `, ${r.state}` : ''}]` : '-';
}

/**
 * One case for a person (`closeloop cases <case>`): what it is, why it is in its state, who owns it and
 * how that was found, the gates and the plan, the ticket, the verification and where its evidence is.
 * `--json` prints the stored case instead. Text from findings is put on one line (no escape sequences).
 */
export function renderCase(c: Case): string {
  const out: string[] = [];
  const row = (label: string, value: string) => out.push(`${label.padEnd(13)}${oneLine(value)}`);
  const more = (value: string) => out.push(`${' '.repeat(13)}${oneLine(value)}`);
  const e = c.enrichment;
  const r = c.remediation;
  out.push(`case ${caseId(c.key)}  ${oneLine(c.key)}`);
  out.push(`[${c.severity.toUpperCase()}] ${oneLine(c.title)}`);
  out.push('');
  row('status', `${c.status}: ${c.statusReason}${c.reopenCount ? ` (re-opened ${c.reopenCount}×)` : ''}`);
  row(
    'source',
    `${c.sourceStatus} at ${c.sources.join(', ')}${c.muted ? ' (muted)' : ''}${c.sample ? ' (sample finding)' : ''}; ` +
      `${c.occurrences} occurrence${c.occurrences === 1 ? '' : 's'} of ${c.findingKeys.length} finding${c.findingKeys.length === 1 ? '' : 's'}, ` +
      `first ${c.firstSeen}, last ${c.lastSeen}`,
  );
  row(
    'resource',
    `${c.resourceName} (${c.resourceType}), ${c.provider} ${c.account}${c.region ? `, ${c.region}` : ''}`,
  );
  more(c.resourceId);
  if (c.compliance.controls.length) row('controls', c.compliance.controls.join(', '));
  const gap = !e.unowned ? '' : e.complete ? ' (UNOWNED: triage)' : ' (OWNER UNKNOWN: lookup failed; triage)';
  row('owner', `${e.owner}${gap}${provenance(e.provenance.owner)}`);
  row('team', `${e.team ?? '-'}${provenance(e.provenance.team)}`);
  row('application', `${e.application ?? '-'}${provenance(e.provenance.application)}`);
  row('environment', `${e.environment}${provenance(e.provenance.environment)}`);
  for (const w of e.warnings) more(`warning: ${w}`);
  if (c.exception)
    row(
      'exception',
      `${c.exception.id} (owner ${c.exception.owner}) until ${c.exception.expires}: ${c.exception.justification}`,
    );
  out.push('');
  const applying = applyingAction(r);
  row(
    'remediation',
    applying
      ? `${applying}, state ${r.state} (decide now chooses ${r.action ?? 'no action'}, mode ${r.mode})`
      : r.action
        ? `${r.action}, mode ${r.mode}, state ${r.state}`
        : `none (${r.reason})`,
  );
  if (r.action || applying) more(`why: ${r.stateReason ?? r.reason}`);
  const gates = (when: string, list: readonly GateResult[]) => {
    if (list.length) more(when);
    for (const g of list) more(`  ${g.outcome.padEnd(8)} ${g.gate}: ${g.reason}`);
  };
  gates('gates when decided:', r.gates);
  gates('gates at apply time:', r.applyGates ?? []);
  if (r.plan) {
    more(`plan: ${r.plan.summary}`);
    for (const [i, s] of r.plan.steps.entries()) more(`  ${i + 1}. ${s.say} [${s.call.api}]`);
  }
  if (r.approvedBy) more(`approved by ${r.approvedBy} at ${r.approvedAt ?? '?'}`);
  if (r.appliedAt)
    more(`applied at ${r.appliedAt}${r.before === undefined ? '' : ' (before-state kept for rollback)'}`);
  if (r.rolledBackBy) more(`rolled back by ${r.rolledBackBy} at ${r.rolledBackAt ?? '?'}`);
  if (r.error) more(`error: ${r.error}`);
  if (r.unconfirmed) more(`unconfirmed: ${r.unconfirmed}`);
  out.push('');
  const t = c.ticket;
  row(
    'ticket',
    t
      ? `${t.key} (${t.sink}, ${t.status})${t.parentKey ? ` in ${t.parentKey}` : ''}${t.url ? ` ${t.url}` : ''}`
      : `none${c.lastDecision ? ` (${c.lastDecision.ticket.reason})` : ''}`,
  );
  const v = c.verification;
  row(
    'verification',
    v
      ? `${v.verdict} at ${v.at} (${v.trigger}, ${v.attempts} attempt${v.attempts === 1 ? '' : 's'}): ${v.reason}`
      : '-',
  );
  for (const u of v?.upstream ?? []) more(`${u.source}: ${u.outcome} at ${u.at}`);
  row(
    'evidence',
    c.evidenceHead ? `head ${c.evidenceHead.slice(0, 16)}…  (closeloop evidence show ${caseId(c.key)})` : '-',
  );
  row('updated', `${c.updatedAt}${c.closedAt ? `, closed ${c.closedAt}` : ''}`);
  return out.join('\n');
}

const provenance = (p: { detail: string } | undefined): string => (p ? `  (${p.detail})` : '');
