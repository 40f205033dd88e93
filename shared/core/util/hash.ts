import { createHash } from 'node:crypto';

/**
 * Canonical JSON: object keys sorted, no whitespace, `undefined` members dropped (RFC 8785 in spirit).
 * A key named `__proto__` (JSON.parse makes it an own member) is an ordinary member, as `jq -S` prints it.
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map((v) => (v === undefined ? null : sortKeys(v)));
  if (value && typeof value === 'object' && !(value instanceof Date)) {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[k];
      if (v === undefined) continue;
      // `out.__proto__ = v` would set the prototype and drop the member from the hashed text (an edit adding
      // one would go unnoticed): define it as an own member. Only this key takes the slower path.
      if (k === '__proto__') Object.defineProperty(out, k, { value: sortKeys(v), enumerable: true, writable: true });
      else out[k] = sortKeys(v);
    }
    return out;
  }
  return value;
}

export const sha256Hex = (text: string): string => createHash('sha256').update(text, 'utf8').digest('hex');

/** A short, stable, query-safe token derived from any string (hex only: safe in JQL labels, ids, file names). */
export const shortHash = (text: string, length = 16): string => sha256Hex(text).slice(0, length);
