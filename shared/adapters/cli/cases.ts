/** Case listing and lookup helpers shared by CLI commands. */
import { UsageError } from '../../core/errors.js';
import { type Case, CaseSchema } from '../../core/model/case.js';
import { COLLECTIONS } from '../../core/pipeline/ingest.js';
import type { DocStore } from '../../core/ports.js';
import { shortHash } from '../../core/util/hash.js';
import { renderTable } from './table.js';

/** A short, stable handle for a case (case keys are long): shown in tables, accepted by commands. */
export const caseId = (key: string): string => shortHash(key, 10);

export async function listCases(store: DocStore): Promise<Case[]> {
  return (await store.list(COLLECTIONS.cases)).map((d) => CaseSchema.parse(d.value));
}

/** Finds a case by its full key or its short id (a unique prefix of at least 6 characters). */
export async function resolveCase(store: DocStore, ref: string): Promise<Case> {
  const exact = await store.get(COLLECTIONS.cases, ref);
  if (exact) return CaseSchema.parse(exact.value);
  const id = ref.replace(/^#/, '');
  if (!/^[0-9a-f]{6,}$/.test(id)) throw new UsageError(`no case with key ${JSON.stringify(ref)}`);
  const matches = (await listCases(store)).filter((c) => caseId(c.key).startsWith(id));
  if (matches.length === 1 && matches[0]) return matches[0];
  throw new UsageError(
    matches.length === 0 ? `no case with id ${id}` : `case id ${id} is ambiguous (${matches.length} cases)`,
  );
}

const SEVERITY_RANK = { critical: 0, high: 1, medium: 2, low: 3, informational: 4 } as const;

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
      c.enrichment.unowned ? `${c.enrichment.owner} (unowned)` : c.enrichment.owner,
      c.type,
      c.resourceName,
      c.remediation.action
        ? `${c.remediation.action} [${c.remediation.mode}${c.remediation.state !== 'none' ? `, ${c.remediation.state}` : ''}]`
        : '-',
      c.ticket?.key ?? '-',
      String(c.occurrences),
    ]),
    40,
  );
}
