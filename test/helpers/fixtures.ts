/**
 * Fixture loading for tests (house style §8): one base fixture per shape under `test/fixtures/`, and
 * variants made in the test with `variant(base, { 'detail.service.count': 5 })` (a structuredClone plus
 * small edits), so a reader sees exactly what differs from the documented shape.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../fixtures/', import.meta.url));

/** A fixture's text, e.g. `loadFixtureText('bad/truncated.json')`. */
export function loadFixtureText(path: string): string {
  return readFileSync(`${ROOT}${path}`, 'utf8');
}

/** A parsed fixture, e.g. `loadFixture('guardduty/instance-crypto.eventbridge.json')`. */
export function loadFixture(path: string): unknown {
  return JSON.parse(loadFixtureText(path));
}

const SEGMENT = /([^.[\]]+)|\[(\d+)\]/g;

/** `detail.findings[0].Resources` → `['detail', 'findings', 0, 'Resources']`. */
function segments(path: string): Array<string | number> {
  return [...path.matchAll(SEGMENT)].map((m) => (m[2] !== undefined ? Number(m[2]) : (m[1] ?? '')));
}

function isContainer(v: unknown): v is Record<string, unknown> | unknown[] {
  return typeof v === 'object' && v !== null;
}

/**
 * A deep copy of `base` with edits applied: each key is a field path (`detail.resource.instanceDetails.instanceId`,
 * `detail.findings[0].Compliance.Status`), each value the new value; `undefined` deletes the field.
 * Throws when a path does not exist in the base, so a variant cannot silently edit nothing.
 */
export function variant<T>(base: T, edits: Record<string, unknown> = {}): T {
  const copy = structuredClone(base);
  for (const [path, value] of Object.entries(edits)) {
    const segs = segments(path);
    const last = segs.pop();
    let node: unknown = copy;
    for (const seg of segs) {
      if (!isContainer(node)) throw new Error(`variant: ${path} does not exist in the fixture`);
      node = Array.isArray(node) ? node[Number(seg)] : node[String(seg)];
    }
    if (!isContainer(node) || last === undefined) throw new Error(`variant: ${path} does not exist in the fixture`);
    if (Array.isArray(node)) {
      if (value === undefined) node.splice(Number(last), 1);
      else node[Number(last)] = value;
    } else if (value === undefined) delete node[String(last)];
    else Object.defineProperty(node, String(last), { value, enumerable: true, writable: true, configurable: true });
  }
  return copy;
}

/** Reads a field of a parsed fixture by path (`detail.service.count`); undefined when absent. */
export function pick(value: unknown, path: string): unknown {
  let node: unknown = value;
  for (const seg of segments(path)) {
    if (!isContainer(node)) return undefined;
    node = Array.isArray(node) ? node[Number(seg)] : node[String(seg)];
  }
  return node;
}
