/**
 * normalize: one parsed input (any of the shapes in finding-formats §1) → closeloop Findings and
 * rejections. Detection unwraps envelopes; each vendor finding is then validated (§12: sizes, ids,
 * types) and mapped by its source module. One bad finding rejects only itself; nothing throws.
 *
 * @see ../../../../shared/reference/finding-formats.md §1–§9, §12
 */
import { type Finding, FindingSchema, type Provider, type Rejected, type Source } from '../model/finding.js';
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

/** The cloud each source speaks for (finding-formats §1): what a channel bound to one cloud may carry. */
export const PROVIDER_OF: Readonly<Record<Source, Provider>> = {
  guardduty: 'aws',
  securityhub: 'aws',
  defender: 'azure',
  scc: 'gcp',
};

/**
 * A channel that speaks for one cloud only: the Azure spoke (Defender), the GCP spoke (SCC), the hub's
 * AWS event rules (GuardDuty, Security Hub). Whoever can feed a spoke must not be able to put findings
 * about another cloud's resources through it, which that cloud's remediation would then act on.
 */
export interface Channel {
  provider: Provider;
  /** Named in the rejection: `the azure spoke`, `closeloop.spoke.gcp`. */
  name: string;
}

export interface NormalizeOptions {
  /** Accept only this channel's cloud: a finding of another cloud is rejected, naming the channel. */
  channel?: Channel;
  /**
   * Re-check every mapped finding against `FindingSchema`, so that a mapping bug becomes a rejection
   * instead of a bad record downstream. Off by default: the mappers build findings that satisfy the schema
   * by construction (ids, sizes and timestamps are checked, free text is clipped), the tests parse every
   * output with the schema, including a property test over arbitrary JSON, and the check costs about a
   * quarter of normalize (~4 µs per finding through the compiled predicate, three ISO date-time patterns
   * among it; zod's own parse cost ~11 µs). Stored findings are checked again when they are read back.
   */
  validate?: boolean;
  /**
   * The length of the JSON text `input` was parsed from, when the caller has it (the CLI's reader, a queue
   * message's body): a short text cannot hold a string of 1 MiB, so the size check walks the nesting only.
   */
  textChars?: number;
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
  const channel = options.channel;
  for (const unit of detected.units) {
    const source = SOURCE_OF[unit.format];
    if (channel && PROVIDER_OF[source] !== channel.provider) {
      out.rejected.push(rejected(origin, source, unit.path, foreign(channel, source, PROVIDER_OF[source])));
      continue;
    }
    try {
      rejectOversized(unit.value, unit.path, options.textChars);
      const finding = MAPPERS[unit.format](unit.value, unit.path);
      // Every mapper names its own cloud; checked again so that a mapping change cannot open the channel.
      if (channel && finding.resource.provider !== channel.provider) {
        out.rejected.push(rejected(origin, source, unit.path, foreign(channel, source, finding.resource.provider)));
        continue;
      }
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

const foreign = (channel: Channel, source: Source, provider: Provider): string =>
  `refused: a ${source} finding (${provider}) came through ${channel.name}, which accepts only ${channel.provider} findings`;
