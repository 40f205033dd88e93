import { createHash } from 'node:crypto';

/**
 * The canonical JSON forms. Evidence records name the form their hash was computed over (`canon`), so a
 * newer form never changes how an older record verifies.
 *  - 1: built through a JS object and `JSON.stringify`. A JS object enumerates integer-like keys ("9", "10",
 *    "2024") first in numeric order, so such keys did not come out sorted; keys are otherwise sorted by
 *    UTF-16 code unit. Kept only to re-hash records written with it.
 *  - 2: the string is written directly, keys sorted by code point and DEL escaped: exactly what `jq -cS`
 *    prints for the same JSON (jq sorts keys by their UTF-8 bytes and always escapes U+007F).
 */
export type CanonVersion = 1 | 2;
export const CURRENT_CANON = 2 satisfies CanonVersion;

/**
 * Canonical JSON (the current form, 2): object keys sorted by Unicode code point, no whitespace,
 * `undefined` members dropped (RFC 8785 in spirit); for JSON data it is what `jq -cS .` prints, except for
 * numbers jq prints differently (fractions and very large numbers in jq 1.6). A key named `__proto__`
 * (JSON.parse makes it an own member) is an ordinary member, as `jq -S` prints it. Like `JSON.stringify`,
 * `undefined` (or a function) at the top gives `undefined`.
 *
 * @example canonicalJson({ '10': 1, '9': 2, a: 3 }) // '{"10":1,"9":2,"a":3}'
 */
export function canonicalJson(value: unknown): string {
  return write(value) as string;
}

/** The canonical JSON of `value` in the given form (see {@link CanonVersion}). */
export function canonicalJsonOf(version: CanonVersion, value: unknown): string {
  return version === 1 ? canonicalJsonV1(value) : canonicalJson(value);
}

/** Form 1, unchanged: records hashed with it must keep re-hashing to the same value. */
export function canonicalJsonV1(value: unknown): string {
  return JSON.stringify(sortKeysV1(value));
}

function sortKeysV1(value: unknown): unknown {
  if (Array.isArray(value)) return value.map((v) => (v === undefined ? null : sortKeysV1(v)));
  if (value && typeof value === 'object' && !(value instanceof Date)) {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[k];
      if (v === undefined) continue;
      // `out.__proto__ = v` would set the prototype and drop the member from the hashed text (an edit adding
      // one would go unnoticed): define it as an own member. Only this key takes the slower path.
      if (k === '__proto__') Object.defineProperty(out, k, { value: sortKeysV1(v), enumerable: true, writable: true });
      else out[k] = sortKeysV1(v);
    }
    return out;
  }
  return value;
}

/**
 * Form 2. Takes the same values form 1 does and treats them alike (a Date as its ISO string, other objects by
 * their own enumerable keys, `undefined` and functions dropped from objects and null in arrays); only the key
 * order and the DEL escape differ. Returns undefined where JSON.stringify would.
 */
function write(value: unknown): string | undefined {
  if (value === undefined || typeof value === 'function' || typeof value === 'symbol') return undefined;
  if (typeof value === 'string') return quote(value);
  if (value === null || typeof value !== 'object' || value instanceof Date) return JSON.stringify(value);
  if (Array.isArray(value)) {
    const items: string[] = [];
    // An index loop, not map: a hole must print as null, as JSON.stringify prints it.
    for (let i = 0; i < value.length; i++) items.push(write(value[i]) ?? 'null');
    return `[${items.join(',')}]`;
  }
  const members: string[] = [];
  for (const k of Object.keys(value).sort(compareCodePoints)) {
    const v = write((value as Record<string, unknown>)[k]);
    if (v !== undefined) members.push(`${quote(k)}:${v}`);
  }
  return `{${members.join(',')}}`;
}

/** JSON.stringify's escaping plus U+007F as `\u007f`, which jq (1.6 and 1.7) always escapes. */
function quote(s: string): string {
  const text = JSON.stringify(s);
  return text.includes('\x7f') ? text.replaceAll('\x7f', '\\u007f') : text;
}

/**
 * Orders strings by Unicode code point (= by UTF-8 bytes, as jq sorts keys). The default sort compares UTF-16
 * code units, which puts a character above U+FFFF (a surrogate pair, D800–DFFF) before one in E000–FFFF.
 */
export function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return codePointRank(x) - codePointRank(y);
  }
  return a.length - b.length;
}

/** Moves surrogates above E000–FFFF and keeps every other order: code unit order becomes code point order. */
const codePointRank = (unit: number): number => (unit >= 0xe000 ? unit - 0x800 : unit >= 0xd800 ? unit + 0x2000 : unit);

export const sha256Hex = (text: string): string => createHash('sha256').update(text, 'utf8').digest('hex');

/** A short, stable, query-safe token derived from any string (hex only: safe in JQL labels, ids, file names). */
export const shortHash = (text: string, length = 16): string => sha256Hex(text).slice(0, length);
