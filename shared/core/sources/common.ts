/**
 * Helpers every source normalizer shares: rejection plumbing, id and size validation (finding-formats
 * §12), timestamps, severity and OCSF classification. Pure functions; every regular expression is
 * compiled once at module load (normalize must sustain tens of thousands of findings per second).
 *
 * @see ../../../../shared/reference/finding-formats.md §2, §3, §12
 */

import { hash } from 'node:crypto';
import * as z from 'zod';
import type { Finding, FindingStatus, Ocsf, Provider, Rejected, Severity, Source } from '../model/finding.js';
import { acceptsWithoutCopy } from '../util/accept.js';
import { EMPTY_TAGS } from '../util/intern.js';
import { hasEnumerableKey } from '../util/objects.js';

// The vendor schemas' fast path lives with the model's (util/accept.ts); the tests reach it from here.
export { acceptsWithoutCopy };

/**
 * Thrown inside a source mapper when one finding cannot be normalized; caught once per finding by
 * `normalize`, which turns it into a {@link Rejected} value. It never escapes the public API: mappers
 * are deep call chains (resource id → details → account), and a throw lets each helper name the exact
 * field without threading result types through every call.
 */
export class FindingRejectedError extends Error {
  constructor(
    readonly path: string,
    readonly reason: string,
  ) {
    super(`${path}: ${reason}`);
    this.name = 'FindingRejectedError';
  }
}

/** Rejects the finding being mapped at `path` with `reason`. */
export function reject(path: string, reason: string): never {
  throw new FindingRejectedError(path, reason);
}

/** One unit of work found by detection: a single vendor finding and where it sits in the input. */
export interface SourceUnit {
  /** Field path of the finding inside the input (`detail`, `detail.findings[2]`, `[0].data`, or `` for the root). */
  path: string;
  value: unknown;
}

/** What a source mapper is: one vendor finding in, one normalized finding out (or a FindingRejectedError). */
export type SourceMapper = (value: unknown, path: string) => Finding;

/** Joins a field path prefix and a sub-path: `detail` + `findings[2]` → `detail.findings[2]`. */
export function joinPath(prefix: string, sub: string): string {
  if (prefix === '') return sub;
  if (sub === '') return prefix;
  return sub.startsWith('[') ? `${prefix}${sub}` : `${prefix}.${sub}`;
}

/** Renders a zod issue path (`['Resources', 0, 'Id']`) as `Resources[0].Id`. */
export function renderPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out === '' ? String(seg) : `.${String(seg)}`;
  }
  return out;
}

/**
 * Parses leniently with a zod schema or rejects naming the first failing field. A well-formed vendor
 * finding is accepted by the compiled predicate and returned as is: zod's loose-object parse copies every
 * object of the finding, which cost about 40% of normalize and most of its garbage. Zod still validates
 * every input the predicate does not accept, so rejections and their messages are zod's.
 */
export function parseOrReject<T extends z.ZodType>(schema: T, value: unknown, prefix: string): z.infer<T> {
  if (acceptsWithoutCopy(schema, value)) return value;
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  if (!issue) reject(prefix || '$', 'invalid input');
  const path = joinPath(prefix, renderPath(issue.path)) || '$';
  // zod says "expected string, received undefined" for a missing member: say what a person means.
  const missing = issue.code === 'invalid_type' && issue.message.endsWith('received undefined');
  reject(path, missing ? `missing required field (expected ${issue.expected})` : issue.message);
}

/**
 * A JSON object whose members closeloop reads one by one (ASFF `ProductFields`, SCC `sourceProperties`):
 * checked to be an object but kept by reference. `z.record` would copy every member on every finding.
 */
export const JsonObjectSchema = z.custom<Record<string, unknown>>((v) => isRecord(v), 'expected an object');

/** A plain JSON object (not an array, not null). */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Own string property, or undefined. Reads never walk the prototype (no `toString` surprises). */
export function str(obj: Record<string, unknown> | undefined, key: string): string | undefined {
  if (!obj || !Object.hasOwn(obj, key)) return undefined;
  const v = obj[key];
  return typeof v === 'string' ? v : undefined;
}

/** Own object property, or undefined. */
export function rec(obj: Record<string, unknown> | undefined, key: string): Record<string, unknown> | undefined {
  if (!obj || !Object.hasOwn(obj, key)) return undefined;
  const v = obj[key];
  return isRecord(v) ? v : undefined;
}

// Quotes, backslashes, whitespace and control characters never occur in real ids (§12) and are the
// characters that break out of JQL, SQL and shell quoting.
// (\x00-\x1f and \x7f-\x9f are exactly Unicode category Cc; no `u` flag keeps the scan on V8's fast path.)
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point: they are rejected in ids
const UNSAFE_ID = /["'`\\\s\x00-\x1f\x7f-\x9f]/;

/** Rejects a source or resource id that is empty, too long, or carries quote/backslash/space/control chars. */
export function checkId(value: string, path: string, max = 2048): string {
  if (value.length === 0) reject(path, 'empty id');
  if (value.length > max) reject(path, `id is ${value.length} characters, longer than the ${max} allowed`);
  const bad = UNSAFE_ID.exec(value);
  if (bad) {
    const code = (bad[0].codePointAt(0) ?? 0).toString(16).padStart(4, '0');
    reject(
      path,
      `id contains a forbidden character (U+${code}): quotes, backslashes, whitespace and control characters are not allowed in ids`,
    );
  }
  return value;
}

/** 1 MiB: any single string at or above this size is rejected (§12). */
export const MAX_STRING_BYTES = 1024 * 1024;
// A UTF-8 character takes at most 3 bytes per UTF-16 code unit, so shorter strings cannot reach the limit
// and need no byte count: the walk stays linear and mostly allocation-free.
const MAX_SAFE_CHARS = Math.floor(MAX_STRING_BYTES / 3);

const isOversized = (s: string): boolean =>
  s.length >= MAX_STRING_BYTES || (s.length >= MAX_SAFE_CHARS && Buffer.byteLength(s, 'utf8') >= MAX_STRING_BYTES);

/**
 * Deepest nesting of objects/arrays accepted inside one vendor finding. Real payloads nest about a dozen
 * levels (ASFF `Resources[].Details`, GuardDuty `service.action`); JSON.parse accepts millions, but the
 * finding's `raw` copy must still serialize (JSON.stringify and structuredClone recurse and overflow the
 * stack a few thousand levels down, less inside a deep handler), so hostile nesting is rejected here.
 */
export const MAX_DEPTH = 64;

type ScanHit = 'oversized' | 'deep' | undefined;

const SCAN_CLEAN = 0;
const SCAN_OVERSIZED = 1;
const SCAN_DEEP = 2;

/**
 * One linear pass over a parsed JSON value: `deep` as soon as a container sits more than
 * {@link MAX_DEPTH} levels down, else `oversized` when any string (value or key) is 1 MiB or more.
 */
function scan(value: unknown, strings = true): ScanHit {
  // Own membership is checked per key only while something made a member of Object.prototype enumerable
  // (pollution; asked once per scan): while it is clean the walk skips the per-key `Object.hasOwn` (a third
  // of its time). Objects of other prototypes (never from JSON.parse) then have their inherited members
  // scanned as well, which can only reject more.
  const checkOwn = hasEnumerableKey(Object.prototype);
  const hit = scanAt(value, 0, checkOwn, strings);
  return hit === SCAN_DEEP ? 'deep' : hit === SCAN_OVERSIZED ? 'oversized' : undefined;
}

/**
 * The walk behind {@link scan}. It recurses, but never more than MAX_DEPTH + 1 frames: a container below
 * that depth answers `deep` without being entered, so hostile nesting cannot exhaust the stack. Recursion
 * (rather than explicit stacks) keeps the common, shallow case free of allocations.
 */
function scanAt(v: unknown, depth: number, checkOwn: boolean, strings: boolean): number {
  if (typeof v === 'string') return isOversized(v) ? SCAN_OVERSIZED : SCAN_CLEAN;
  if (typeof v !== 'object' || v === null) return SCAN_CLEAN;
  if (depth > MAX_DEPTH) return SCAN_DEEP;
  // Without `strings` (small strings only, see rejectOversized) neither strings nor keys are looked at: two
  // fifths of the walk.
  const skip = strings ? 'string' : 'object';
  let hit = SCAN_CLEAN;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const item: unknown = v[i];
      if (typeof item !== 'object' && typeof item !== skip) continue;
      const h = scanAt(item, depth + 1, checkOwn, strings);
      if (h === SCAN_DEEP) return SCAN_DEEP;
      if (h === SCAN_OVERSIZED) hit = SCAN_OVERSIZED;
    }
    return hit;
  }
  const o = v as Record<string, unknown>;
  for (const key in o) {
    if (checkOwn && !Object.hasOwn(o, key)) continue;
    if (strings && isOversized(key)) hit = SCAN_OVERSIZED;
    const item = o[key];
    if (typeof item !== 'object' && typeof item !== skip) continue;
    const h = scanAt(item, depth + 1, checkOwn, strings);
    if (h === SCAN_DEEP) return SCAN_DEEP;
    if (h === SCAN_OVERSIZED) hit = SCAN_OVERSIZED;
  }
  return hit;
}

/**
 * Finds the first string (value or key) of 1 MiB or more in a parsed JSON value, iteratively (no
 * recursion limit on hostile nesting) and in one linear pass; the path is only built on the rare hit.
 * Returns the field path, or undefined when every string is small enough (or the value nests deeper than
 * {@link MAX_DEPTH}, which {@link rejectOversized} reports first).
 */
export function findOversizedString(value: unknown): string | undefined {
  return scan(value) === 'oversized' ? locate(value, '', 0, 'oversized') : undefined;
}

/**
 * The path of the first hit in document order. Only called after `scan` found one; recursion is bounded
 * by MAX_DEPTH + 1 levels, so it is safe on any input.
 */
function locate(value: unknown, path: string, depth: number, what: 'oversized' | 'deep'): string | undefined {
  if (typeof value === 'string') return what === 'oversized' && isOversized(value) ? path || '$' : undefined;
  if (typeof value !== 'object' || value === null) return undefined;
  if (what === 'deep' && depth > MAX_DEPTH) return path || '$';
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = locate(value[i], `${path}[${i}]`, depth + 1, what);
      if (found) return found;
    }
  } else if (isRecord(value)) {
    for (const key of Object.keys(value)) {
      if (what === 'oversized' && isOversized(key)) return joinPath(path, '<key>');
      const found = locate(value[key], joinPath(path, key), depth + 1, what);
      if (found) return found;
    }
  }
  return undefined;
}

/**
 * Rejects the unit when it nests deeper than {@link MAX_DEPTH} levels (naming the first too-deep field)
 * or when any string inside it is 1 MiB or larger. `textChars`: the length of the JSON text the unit was
 * parsed from (or one it lies inside), when the caller has it: below {@link MAX_SAFE_CHARS} no string or key
 * in it can reach 1 MiB in UTF-8 (JSON escapes only shrink when decoded, a base64 payload decodes to fewer
 * bytes than it has characters), so only the nesting is walked.
 */
export function rejectOversized(value: unknown, prefix: string, textChars?: number): void {
  const hit = textChars !== undefined && textChars < MAX_SAFE_CHARS ? scan(value, false) : scan(value);
  if (!hit) return;
  const at = locate(value, '', 0, hit) ?? '$';
  const path = joinPath(prefix, at === '$' ? '' : at) || '$';
  if (hit === 'deep') reject(path, `value nested more than ${MAX_DEPTH} levels deep`);
  reject(path, 'string field of 1 MB or more');
}

let lastCanonical = '';

/** The number `s` holds at [at, at + n) in decimal digits, or -1 when one of them is not a digit. */
function digitsAt(s: string, at: number, n: number): number {
  let v = 0;
  for (let i = at; i < at + n; i++) {
    const d = s.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return -1;
    v = v * 10 + d;
  }
  return v;
}

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/**
 * `YYYY-MM-DDTHH:MM:SS.mmmZ` naming a real instant (no February 31st, no hour 24, no leap second): the
 * form `toISOString` gives, so such a string is kept as is, and two of them compare as their instants do.
 * Checked by character codes: a regular expression plus `Date.parse` cost more than the rest of a
 * timestamp's handling.
 */
export function isCanonicalUtc(s: string): boolean {
  if (
    s.length !== 24 ||
    s.charCodeAt(4) !== 45 || // -
    s.charCodeAt(7) !== 45 ||
    s.charCodeAt(10) !== 84 || // T
    s.charCodeAt(13) !== 58 || // :
    s.charCodeAt(16) !== 58 ||
    s.charCodeAt(19) !== 46 || // .
    s.charCodeAt(23) !== 90 // Z
  )
    return false;
  const year = digitsAt(s, 0, 4);
  const month = digitsAt(s, 5, 2);
  const day = digitsAt(s, 8, 2);
  const hour = digitsAt(s, 11, 2);
  const minute = digitsAt(s, 14, 2);
  const second = digitsAt(s, 17, 2);
  if (year < 0 || digitsAt(s, 20, 3) < 0 || month < 1 || month > 12 || day < 1) return false;
  if (hour < 0 || hour > 23 || minute < 0 || minute > 59 || second < 0 || second > 59) return false;
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  return day <= (month === 2 && leap ? 29 : (DAYS_IN_MONTH[month - 1] ?? 0));
}

/**
 * An RFC 3339 string (any fraction length, any offset) or epoch seconds/milliseconds → UTC `Z` form.
 * Rejects values that are not a time.
 */
export function toIso(value: unknown, path: string): string {
  // Most sources already send the canonical form: validate it and keep the string (toISOString is costly).
  // A finding names the same instant two or three times (updatedAt is also lastSeen): the last canonical
  // string checked is remembered.
  // Other UTC forms with a fraction of another length (or none) are made canonical without a date parse.
  if (typeof value === 'string') {
    if (value === lastCanonical) return value;
    if (isCanonicalUtc(value)) {
      lastCanonical = value;
      return value;
    }
    const canonical = canonicalOfUtc(value);
    if (canonical !== undefined) return canonical;
  }
  let ms: number;
  if (typeof value === 'number') ms = value < 1e11 ? value * 1000 : value;
  else if (typeof value === 'string') ms = Date.parse(value);
  else return reject(path, `expected a timestamp, got ${value === undefined ? 'nothing' : typeof value}`);
  if (!Number.isFinite(ms)) reject(path, `not a valid timestamp: ${JSON.stringify(String(value).slice(0, 64))}`);
  const d = new Date(ms);
  if (Number.isNaN(d.getTime())) reject(path, 'timestamp out of range');
  return d.toISOString();
}

/**
 * `…T09:12:44Z` and `…T09:12:44.6010000Z` (Defender writes seven digits) as the canonical millisecond form
 * without parsing a date: the fraction is cut to milliseconds, as Date.parse does. Undefined for anything
 * else (offsets, other layouts, fields out of range), which goes through Date.parse.
 */
function canonicalOfUtc(s: string): string | undefined {
  const n = s.length;
  if (n < 20 || n > 40 || s.charCodeAt(n - 1) !== 90 /* Z */) return undefined;
  let fraction = '000';
  if (n > 20) {
    if (n === 21 || s.charCodeAt(19) !== 46 /* . */) return undefined;
    for (let i = 20; i < n - 1; i++) {
      const c = s.charCodeAt(i);
      if (c < 48 || c > 57) return undefined;
    }
    fraction = n >= 24 ? s.slice(20, 23) : `${s.slice(20, n - 1)}00`.slice(0, 3);
  }
  const candidate = [s.slice(0, 19), '.', fraction, 'Z'].join('');
  return isCanonicalUtc(candidate) ? candidate : undefined;
}

/** First defined timestamp among candidates, as ISO; rejects naming the first candidate when none is set. */
export function firstTime(candidates: ReadonlyArray<readonly [unknown, string]>): string {
  for (const [value, path] of candidates) if (value !== undefined && value !== null) return toIso(value, path);
  const first = candidates[0];
  return reject(first ? first[1] : '$', 'missing required timestamp');
}

/**
 * `key = sha256(provider + ":" + canonicalSourceId)` (finding-formats §5.1), hex: the same value as
 * `sha256Hex` in util/hash.ts, through the one-shot `crypto.hash` (Node ≥ 20.12), which skips the Hash
 * object and is markedly faster on the per-finding hot path.
 */
export const findingKey = (provider: Provider, canonicalId: string): string =>
  hash('sha256', `${provider}:${canonicalId}`, 'hex');

/** GuardDuty numeric severity → closeloop scale (§3): <1 informational, 1–3.9 low, 4–6.9 medium, 7–8.9 high, ≥9 critical. */
export function severityFromNumber(n: number): Severity {
  if (n >= 9) return 'critical';
  if (n >= 7) return 'high';
  if (n >= 4) return 'medium';
  if (n >= 1) return 'low';
  return 'informational';
}

/** ASFF `Severity.Normalized` (deprecated 0–100) → closeloop scale (§3). */
export function severityFromNormalized(n: number): Severity {
  if (n >= 90) return 'critical';
  if (n >= 70) return 'high';
  if (n >= 40) return 'medium';
  if (n >= 1) return 'low';
  return 'informational';
}

const LABELS: Readonly<Record<string, Severity>> = {
  informational: 'informational',
  low: 'low',
  medium: 'medium',
  high: 'high',
  critical: 'critical',
};

/** A vendor label (`HIGH`, `Medium`, `Informational`) → closeloop scale, or undefined when it is not one. */
export function severityFromLabel(label: string): Severity | undefined {
  const key = label.toLowerCase();
  return Object.hasOwn(LABELS, key) ? LABELS[key] : undefined;
}

const SEVERITY_ID: Readonly<Record<Severity, number>> = {
  informational: 1,
  low: 2,
  medium: 3,
  high: 4,
  critical: 5,
};

/**
 * OCSF classification: Detection Finding (2004) for threats, Compliance Finding (2003) for posture.
 * Activity 1 Create for a first active sighting, 2 Update for a repeat, 3 Close for a resolution;
 * status 1 New, 2 In Progress (an open finding someone at the source is already working on: Defender
 * `InProgress`, ASFF `NOTIFIED`), 3 Suppressed (muted), 4 Resolved.
 */
export function ocsfOf(
  kind: Finding['kind'],
  severity: Severity,
  status: FindingStatus,
  muted: boolean,
  occurrences: number,
  inProgress = false,
): Ocsf {
  const classUid = kind === 'detection' ? 2004 : 2003;
  const activity = status === 'resolved' ? 3 : occurrences > 1 ? 2 : 1;
  const severityId = SEVERITY_ID[severity];
  const statusId = muted ? 3 : status === 'resolved' ? 4 : inProgress ? 2 : 1;
  // One shared, frozen block per combination (there are 90), not one object per finding.
  const slot = ((classUid - 2003) * 4 + activity) * 64 + severityId * 8 + statusId;
  let block = OCSF_BLOCKS[slot];
  if (block === undefined) {
    block = Object.freeze({
      class_uid: classUid,
      category_uid: 2,
      activity_id: activity,
      type_uid: classUid * 100 + activity,
      severity_id: severityId,
      status_id: statusId,
    });
    OCSF_BLOCKS[slot] = block;
  }
  return block;
}
const OCSF_BLOCKS: Array<Ocsf | undefined> = [];

/**
 * A short, safe rendering of a vendor value for a rejection reason: strings quoted and clipped, other
 * scalars as JSON, containers by kind. Never throws and never echoes a large value (`String(value)` on a
 * parsed `{"toString": 1}` throws, and JSON.stringify of hostile nesting overflows the stack).
 */
export function preview(value: unknown, max = 80): string {
  if (typeof value === 'string') return JSON.stringify(clip(value, max));
  if (typeof value === 'number' || typeof value === 'boolean' || value === null) return String(value);
  if (Array.isArray(value)) return 'an array';
  return value === undefined ? 'nothing' : 'an object';
}

/** Clips free text to the model's limit: titles and descriptions are data, never a reason to reject. */
export const clip = (s: string, max: number): string => (s.length <= max ? s : `${s.slice(0, max - 1)}…`);

/**
 * `[{key, value}]` tag lists → a map of own data properties: a hostile `__proto__` key is dropped (the only
 * key an assignment would route to a setter), so no tag can change any prototype.
 */
export function tagsFromList(list: unknown, keyField = 'key', valueField = 'value'): Record<string, string> {
  if (!Array.isArray(list) || list.length === 0) return EMPTY_TAGS;
  const out: Record<string, string> = {};
  for (const item of list) {
    if (!isRecord(item)) continue;
    const k = str(item, keyField);
    const v = item[valueField];
    // Plain assignment is safe once `__proto__` (the one key with a setter on Object.prototype) is skipped.
    if (k === undefined || k === '__proto__') continue;
    out[k] = typeof v === 'string' ? v : v === null || v === undefined ? '' : String(v);
  }
  return out;
}

/** A string map from the vendor (ASFF `Tags`) copied safely: string values only, no `__proto__` key. */
export function tagsFromMap(map: Record<string, unknown> | undefined): Record<string, string> {
  let out: Record<string, string> | undefined;
  if (map)
    for (const k of Object.keys(map)) {
      const v = map[k];
      if (k === '__proto__' || typeof v !== 'string') continue;
      out ??= {};
      out[k] = v;
    }
  return out ?? EMPTY_TAGS;
}

/** The last segment of an ARN or path (`arn:aws:s3:::bucket` → `bucket`, `…/instance/i-1` → `i-1`). */
export function lastSegment(id: string): string {
  const cut = Math.max(id.lastIndexOf('/'), id.lastIndexOf(':'));
  const tail = id.slice(cut + 1);
  return tail === '' ? id : tail;
}

/** Builds a rejection value (the public shape). */
export const rejected = (input: string, source: Source | 'unknown', path: string, reason: string): Rejected => ({
  input,
  source,
  path: path === '' ? '$' : path,
  reason,
});
