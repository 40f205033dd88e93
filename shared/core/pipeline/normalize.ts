/**
 * normalize: one parsed input (any of the shapes in finding-formats §1) → closeloop Findings and
 * rejections. Detection unwraps envelopes; each vendor finding is then validated (§12: sizes, ids,
 * types) and mapped by its source module. One bad finding rejects only itself; nothing throws.
 *
 * @see ../../../../shared/reference/finding-formats.md §1–§9, §12
 */
import { type Finding, FindingSchema, type Rejected } from '../model/finding.js';
import { FindingRejectedError, rejected, rejectOversized, type SourceMapper } from '../sources/common.js';
import { mapDefenderAlert, mapDefenderAssessment } from '../sources/defender.js';
import { detect, SOURCE_OF, type UnitFormat } from '../sources/detect.js';
import { mapGuardDuty } from '../sources/guardduty.js';
import { mapScc } from '../sources/scc.js';
import { mapAsff } from '../sources/securityhub.js';
import { acceptsWithoutCopy } from '../util/accept.js';

const MAPPERS: Readonly<Record<UnitFormat, SourceMapper>> = {
  guardduty: mapGuardDuty,
  asff: mapAsff,
  'defender-alert': mapDefenderAlert,
  'defender-assessment': mapDefenderAssessment,
  scc: mapScc,
};

export interface NormalizeResult {
  findings: Finding[];
  rejected: Rejected[];
}

export interface NormalizeOptions {
  /**
   * Re-check every mapped finding against `FindingSchema`, so that a mapping bug becomes a rejection
   * instead of a bad record downstream. Off by default: the mappers build findings that satisfy the schema
   * by construction (ids, sizes and timestamps are checked, free text is clipped), the tests parse every
   * output with the schema, including a property test over arbitrary JSON, and the check costs about a
   * quarter of normalize (~4 µs per finding through the compiled predicate, three ISO date-time patterns
   * among it; zod's own parse cost ~11 µs). Stored findings are checked again when they are read back.
   */
  validate?: boolean;
}

/**
 * Normalizes one parsed input. `origin` names the input in rejections (`events/gd.json`, `stdin:12`).
 *
 * @example
 * const { findings, rejected } = normalize(JSON.parse(text), 'events/01-guardduty.json');
 * // findings[0].source === 'guardduty'; rejected: [{ input, source, path: 'detail.resource', reason }]
 */
export function normalize(input: unknown, origin: string, options: NormalizeOptions = {}): NormalizeResult {
  const validate = options.validate ?? false;
  const detected = detect(input, origin);
  const out: NormalizeResult = { findings: [], rejected: detected.rejected };
  for (const unit of detected.units) {
    const source = SOURCE_OF[unit.format];
    try {
      rejectOversized(unit.value, unit.path);
      const finding = MAPPERS[unit.format](unit.value, unit.path);
      if (validate && !acceptsWithoutCopy(FindingSchema, finding)) {
        const check = FindingSchema.safeParse(finding);
        if (!check.success) {
          const issue = check.error.issues[0];
          out.rejected.push(
            rejected(
              origin,
              source,
              unit.path,
              `normalized finding is invalid at ${issue?.path.join('.') ?? '?'}: ${issue?.message ?? 'unknown'}`,
            ),
          );
          continue;
        }
      }
      out.findings.push(finding);
    } catch (e) {
      // FindingRejectedError is the mappers' way to name a field; anything else (a hostile shape we did not
      // foresee, deep nesting) still rejects only this finding.
      if (e instanceof FindingRejectedError) out.rejected.push(rejected(origin, source, e.path, e.reason));
      else
        out.rejected.push(
          rejected(origin, source, unit.path, `cannot normalize: ${e instanceof Error ? e.message : String(e)}`),
        );
    }
  }
  return out;
}
