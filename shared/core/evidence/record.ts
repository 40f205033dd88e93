/**
 * One evidence record per pipeline step: what happened to which case, who did it, which API calls were
 * made (with their request ids), the state before and after, and the verdict. Records are chained twice —
 * to the previous record of the same case and to the previous record of all cases (the global chain) —
 * and sealed with SHA-256 over their canonical JSON, so editing, deleting or reordering one is detectable.
 */
import * as z from 'zod';
import { TimestampSchema } from '../model/finding.js';
import { type CanonVersion, CURRENT_CANON, canonicalJsonOf, sha256Hex } from '../util/hash.js';

export const EvidenceStepSchema = z.enum([
  'decision',
  'approval',
  'plan',
  'apply',
  'verify',
  'rollback',
  'upstream',
  'exception',
  'ticket',
  'reopen',
]);
export type EvidenceStep = z.infer<typeof EvidenceStepSchema>;

/** Who acted: a closeloop function (role), a cloud principal (ARN, object id) or a person (e-mail). */
export const EvidenceActorSchema = z.object({
  kind: z.enum(['function', 'principal', 'person']),
  id: z.string().min(1),
});
export type EvidenceActor = z.infer<typeof EvidenceActorSchema>;

/** One API call made in the step; the request id is what the cloud's support and audit logs know it by. */
export const EvidenceCallSchema = z.object({
  api: z.string(),
  requestId: z.string().nullable(),
  outcome: z.string(),
});
export type EvidenceCall = z.infer<typeof EvidenceCallSchema>;

const HashSchema = z.string().regex(/^[0-9a-f]{64}$/);

/** What a writer supplies; the chain fields and the hash are added by `appendEvidence`. */
export const EvidenceDraftSchema = z.object({
  caseKey: z.string().min(1),
  findingIds: z.array(z.string()),
  owner: z.string().nullable(),
  step: EvidenceStepSchema,
  actor: EvidenceActorSchema,
  /** The closeloop event that caused the record, when there was one. */
  eventId: z.string().nullable(),
  /** When the step happened (the event's time). */
  at: TimestampSchema,
  /** One sentence a person reads in the case story and the ticket. */
  summary: z.string(),
  calls: z.array(EvidenceCallSchema),
  before: z.unknown().optional(),
  after: z.unknown().optional(),
  verdict: z.string().nullable(),
  /** Step-specific facts (the decision, the plan, the exception, the trigger), plain JSON. */
  detail: z.record(z.string(), z.unknown()),
});
export type EvidenceDraft = z.infer<typeof EvidenceDraftSchema>;

export const EvidenceRecordSchema = EvidenceDraftSchema.extend({
  /** Format version of the record, part of the hashed content. */
  v: z.literal(1),
  /**
   * The canonical JSON form the hash is computed over (util/hash.ts), part of the hashed content. Absent on
   * records written before form 2: those re-hash with form 1, so stored chains keep verifying.
   */
  canon: z.literal(2).optional(),
  /** Position in the global chain, from 1. */
  seq: z.number().int().min(1),
  /** Position in the case's chain, from 1. */
  caseSeq: z.number().int().min(1),
  /** When the record was written. */
  recordedAt: TimestampSchema,
  prevCaseHash: HashSchema.nullable(),
  prevGlobalHash: HashSchema.nullable(),
  /** sha256 of the canonical JSON of this record without `hash`. */
  hash: HashSchema,
});
export type EvidenceRecord = z.infer<typeof EvidenceRecordSchema>;
export type UnsealedRecord = Omit<EvidenceRecord, 'hash'>;

/**
 * The hash of a record: SHA-256 (hex) of the canonical JSON (sorted keys, no whitespace) of every
 * field except `hash`, in the form the record names (`canon`; form 1 when absent). An auditor recomputes it
 * with `jq -jcS 'del(.hash)' r.json | sha256sum` (form 2 is what that prints).
 *
 * @example hashRecord(record) === record.hash // true for an untouched record
 */
export function hashRecord(record: object): string {
  // Works on raw (possibly tampered) JSON too: verifyChains recomputes hashes of what is stored.
  const rest = Object.fromEntries(Object.entries(record).filter(([k]) => k !== 'hash'));
  return sha256Hex(canonicalJsonOf(canonOf(rest), rest));
}

/** The form a record names; one closeloop does not know cannot be re-hashed (fail closed, never guess). */
function canonOf(record: Record<string, unknown>): CanonVersion {
  if (record.canon === undefined) return 1;
  if (record.canon === 2) return 2;
  throw new Error(
    `evidence record names canonical form ${JSON.stringify(record.canon)}, which this closeloop does not know`,
  );
}

/**
 * Seals a record in the current canonical form: drops anything JSON cannot carry (so the stored file
 * re-hashes to the same value), names the form and adds the hash.
 */
export function sealRecord(unsealed: UnsealedRecord): EvidenceRecord {
  const plain = EvidenceRecordSchema.omit({ hash: true }).parse(
    JSON.parse(JSON.stringify({ ...unsealed, canon: CURRENT_CANON })),
  );
  return EvidenceRecordSchema.parse({ ...plain, hash: hashRecord(plain) });
}

/**
 * Classifies an actor string as closeloop events carry it: an e-mail is a person, an ARN / Azure id /
 * GCP service account is a principal, anything else (e.g. `closeloop:verify`) a function role.
 *
 * @example actorFrom('web-lead@acme.example') // { kind: 'person', id: 'web-lead@acme.example' }
 */
export function actorFrom(actor: string): EvidenceActor {
  const id = actor.trim() || 'closeloop';
  if (/^arn:|^\/subscriptions\/|\.iam\.gserviceaccount\.com$|^serviceAccount:/.test(id))
    return { kind: 'principal', id };
  if (/^[^@\s]+@[^@\s]+$/.test(id)) return { kind: 'person', id };
  return { kind: 'function', id };
}
