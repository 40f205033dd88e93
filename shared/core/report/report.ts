/**
 * Closure metrics for `closeloop report`: time to ticket, time to fix and time to verified closure per
 * severity, owner, team and environment; open cases past their SLA; cases with owner gaps.
 *
 * Times are measured from the case's `firstSeen` (when the source first saw the problem: the exposure
 * window an auditor asks about) to: the ticket's creation; the fix (the apply, else — for fixes made by
 * people — the verified closure that observed it; a rolled-back apply is no fix); the verified closure (`closedAt`, else the first
 * `case.verified` in the event log).
 */
import { type Case, CaseSchema } from '../model/case.js';
import { SEVERITY_ORDER, type Severity } from '../model/finding.js';
import type { DocStore } from '../ports.js';
import { oneLine } from '../util/text.js';
import { type SlaDays, SlaDaysSchema } from '../verify/policy.js';

export interface DurationStats {
  /** How many cases have this measure. */
  n: number;
  medianHours: number | null;
  p90Hours: number | null;
}

export interface GroupStats {
  cases: number;
  open: number;
  verified: number;
  suppressed: number;
  reopened: number;
  pastSla: number;
  timeToTicket: DurationStats;
  timeToFix: DurationStats;
  timeToVerifiedClosure: DurationStats;
}

export interface PastSla {
  caseKey: string;
  title: string;
  severity: Severity;
  status: Case['status'];
  owner: string;
  team: string | null;
  environment: string;
  ageDays: number;
  slaDays: number;
  ticket: string | null;
}

export interface OwnerGap {
  caseKey: string;
  resourceId: string;
  account: string;
  /** Who stands in (the triage owner). */
  owner: string;
  reason: string;
}

export interface Report {
  generatedAt: string;
  cases: number;
  /** Sample findings (GuardDuty CreateSampleFindings…) are not real exposure and are left out. */
  samplesExcluded: number;
  totals: GroupStats;
  bySeverity: Record<string, GroupStats>;
  byOwner: Record<string, GroupStats>;
  byTeam: Record<string, GroupStats>;
  byEnvironment: Record<string, GroupStats>;
  openPastSla: PastSla[];
  ownerGaps: OwnerGap[];
}

const HOUR = 3_600_000;
const CLOSED = new Set<Case['status']>(['verified', 'suppressed']);
const EVENT_LOG = 'events';

interface Measured {
  c: Case;
  toTicket: number | null;
  toFix: number | null;
  toVerified: number | null;
  pastSla: PastSla | null;
}

/**
 * Builds the report from the `cases` collection and the event log.
 *
 * @example
 * const report = await buildReport(store, new Date(), { slaDays: config.policy.verification.slaDays });
 * console.log(renderReport(report));
 */
export async function buildReport(store: DocStore, now: Date, options: { slaDays?: SlaDays } = {}): Promise<Report> {
  const sla = options.slaDays ?? SlaDaysSchema.parse({});
  const firstVerified = await firstVerifiedFromLog(store);
  const all: Case[] = [];
  let after: string | undefined;
  for (;;) {
    const page = await store.list('cases', { limit: 1000, ...(after !== undefined ? { after } : {}) });
    if (page.length === 0) break;
    after = page.at(-1)?.id;
    for (const d of page) {
      const parsed = CaseSchema.safeParse(d.value);
      if (parsed.success) all.push(parsed.data);
    }
  }
  const real = all.filter((c) => !c.sample);
  const measured = real.map((c) => measure(c, now, sla, firstVerified.get(c.key)));
  const group = (keyOf: (c: Case) => string, order?: readonly string[]) => {
    const groups = new Map<string, Measured[]>();
    for (const m of measured) groups.set(keyOf(m.c), [...(groups.get(keyOf(m.c)) ?? []), m]);
    const keys = [...groups.keys()].sort((a, b) => (order ? order.indexOf(b) - order.indexOf(a) : a.localeCompare(b)));
    return Object.fromEntries(keys.map((k) => [k, stats(groups.get(k) ?? [])]));
  };
  return {
    generatedAt: now.toISOString(),
    cases: real.length,
    samplesExcluded: all.length - real.length,
    totals: stats(measured),
    bySeverity: group((c) => c.severity, SEVERITY_ORDER),
    // An unowned case is the triage owner's to route, not theirs to fix: a row of its own, not mixed into the
    // triage owner's own cases (which made the triage team look slow and hid how much has no owner).
    byOwner: group((c) => (c.enrichment.unowned ? `(unowned: ${c.enrichment.owner} triages)` : c.enrichment.owner)),
    byTeam: group((c) => c.enrichment.team ?? '(no team)'),
    byEnvironment: group((c) => c.enrichment.environment),
    openPastSla: measured
      .flatMap((m) => (m.pastSla ? [m.pastSla] : []))
      .sort((a, b) => b.ageDays - b.slaDays - (a.ageDays - a.slaDays)),
    ownerGaps: real
      .filter((c) => c.enrichment.unowned || !c.enrichment.complete)
      .map((c) => ({
        caseKey: c.key,
        resourceId: c.resourceId,
        account: c.account,
        owner: c.enrichment.owner,
        // Incomplete first: an owner a failed lookup could not read is unknown, not missing.
        reason: !c.enrichment.complete
          ? `enrichment incomplete: ${c.enrichment.warnings.join('; ') || 'a needed lookup failed'}`
          : `no owner found: ${c.enrichment.provenance.owner.detail}`,
      })),
  };
}

function measure(c: Case, now: Date, sla: SlaDays, loggedVerifiedAt: string | undefined): Measured {
  const start = Date.parse(c.firstSeen);
  const since = (iso: string | null | undefined) => (iso ? Math.max(0, (Date.parse(iso) - start) / HOUR) : null);
  const verifiedAt = c.status === 'verified' ? (c.closedAt ?? loggedVerifiedAt ?? null) : null;
  // An apply undone by a rollback fixed nothing. A fix made by people is dated by the verified closure, not
  // by `verification.at`: every scheduled re-check moves that (and an inconclusive one replaces the verdict).
  const { appliedAt, rolledBackAt } = c.remediation;
  const applied = appliedAt && !(rolledBackAt && Date.parse(rolledBackAt) >= Date.parse(appliedAt)) ? appliedAt : null;
  const fixedAt = applied ?? verifiedAt;
  const days = sla[c.severity];
  const ageDays = (now.getTime() - start) / (24 * HOUR);
  const overdue = !CLOSED.has(c.status) && days !== null && ageDays > days;
  return {
    c,
    toTicket: since(c.ticket?.createdAt),
    toFix: since(fixedAt),
    toVerified: since(verifiedAt),
    pastSla: overdue
      ? {
          caseKey: c.key,
          title: c.title,
          severity: c.severity,
          status: c.status,
          owner: c.enrichment.owner,
          team: c.enrichment.team,
          environment: c.enrichment.environment,
          ageDays: round(ageDays),
          slaDays: days,
          ticket: c.ticket?.key ?? null,
        }
      : null,
  };
}

function stats(ms: Measured[]): GroupStats {
  return {
    cases: ms.length,
    open: ms.filter((m) => !CLOSED.has(m.c.status)).length,
    verified: ms.filter((m) => m.c.status === 'verified').length,
    suppressed: ms.filter((m) => m.c.status === 'suppressed').length,
    reopened: ms.filter((m) => m.c.reopenCount > 0).length,
    pastSla: ms.filter((m) => m.pastSla).length,
    timeToTicket: durations(ms.map((m) => m.toTicket)),
    timeToFix: durations(ms.map((m) => m.toFix)),
    timeToVerifiedClosure: durations(ms.map((m) => m.toVerified)),
  };
}

/** Median and 90th percentile by nearest rank (no interpolation: every figure is a real case's). */
export function durations(values: ReadonlyArray<number | null>): DurationStats {
  const xs = values.filter((v): v is number => v !== null).sort((a, b) => a - b);
  const rank = (p: number) => xs[Math.max(0, Math.ceil(p * xs.length) - 1)];
  return {
    n: xs.length,
    medianHours: xs.length ? round(rank(0.5) ?? 0) : null,
    p90Hours: xs.length ? round(rank(0.9) ?? 0) : null,
  };
}

const round = (x: number) => Math.round(x * 10) / 10;

async function firstVerifiedFromLog(store: DocStore): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  let after = 0;
  for (;;) {
    const page = await store.readLog(EVENT_LOG, { after, limit: 5000 });
    if (page.length === 0) break;
    after = page.at(-1)?.seq ?? after;
    for (const e of page) {
      const v = e.value;
      if (!v || typeof v !== 'object') continue;
      const type = Reflect.get(v, 'type');
      const verdict = Reflect.get(v, 'verdict');
      const caseKey = Reflect.get(v, 'caseKey');
      const at = Reflect.get(v, 'at');
      if (
        type === 'case.verified' &&
        verdict === 'verified' &&
        typeof caseKey === 'string' &&
        typeof at === 'string' &&
        !out.has(caseKey)
      ) {
        out.set(caseKey, at);
      }
    }
  }
  return out;
}

/** A readable report: one table per grouping, then the SLA breaches and owner gaps. */
export function renderReport(r: Report): string {
  const h = (s: DurationStats) => (s.n === 0 ? '-' : `${s.medianHours}/${s.p90Hours}`);
  // cases = open + verified + suppressed (risk accepted): the columns add up.
  const header = [
    'group',
    'cases',
    'open',
    'verified',
    'suppressed',
    'past SLA',
    'to ticket h',
    'to fix h',
    'to verified h',
  ];
  const table = (title: string, groups: Record<string, GroupStats>) => {
    const rows = Object.entries(groups).map(([k, g]) =>
      [
        k,
        g.cases,
        g.open,
        g.verified,
        g.suppressed,
        g.pastSla,
        h(g.timeToTicket),
        h(g.timeToFix),
        h(g.timeToVerifiedClosure),
      ].map(String),
    );
    // The grouping's name heads the first column ("severity", "team"…).
    return columns([header.map((x, i) => (i === 0 ? title.toLowerCase().replace('by ', '') : x)), ...rows]);
  };
  const lines = [
    `closeloop report — ${r.generatedAt} — ${r.cases} case(s)${r.samplesExcluded ? `, ${r.samplesExcluded} sample(s) excluded` : ''}`,
    'times: median/p90 hours from first seen',
    '',
    ...table('By severity', r.bySeverity),
    '',
    ...table('By environment', r.byEnvironment),
    '',
    ...table('By team', r.byTeam),
    '',
    ...table('By owner', r.byOwner),
    '',
    `Open past SLA: ${r.openPastSla.length}`,
    ...(r.openPastSla.length
      ? columns(
          [
            ['severity', 'age d', 'SLA d', 'status', 'owner', 'ticket', 'case'],
            ...r.openPastSla.map((p) => [
              p.severity,
              String(p.ageDays),
              String(p.slaDays),
              p.status,
              p.owner,
              p.ticket ?? '-',
              p.caseKey,
            ]),
          ],
          [0, 3, 4, 5, 6],
        ).map((l) => `  ${l}`)
      : []),
    '',
    `Owner gaps: ${r.ownerGaps.length}`,
    ...r.ownerGaps.map((g) => oneLine(`  ${g.resourceId} (account ${g.account}) → ${g.owner}: ${g.reason}`)),
  ];
  return `${lines.join('\n')}\n`;
}

/**
 * Aligns columns: text columns (`left`) padded right, figures padded left. Owners, teams and case keys come
 * from tags and findings: their control characters never reach the terminal.
 */
function columns(raw: string[][], left: readonly number[] = [0]): string[] {
  const rows = raw.map((r) => r.map(oneLine));
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows.map((r) =>
    r
      .map((cell, i) => (left.includes(i) ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0)))
      .join('  ')
      .trimEnd(),
  );
}
