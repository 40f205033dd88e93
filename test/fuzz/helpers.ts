/**
 * Shared pieces of the fuzz tests: every documented fixture of the four sources, field-path
 * enumeration and mutation of parsed fixtures, hostile-key insertion, and the one outcome check every
 * property ends with (a schema-valid finding or a clear rejection naming input, source and field; no
 * prototype changed).
 */
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createContext, Script } from 'node:vm';
import fc from 'fast-check';
import { expect } from 'vitest';
import { FindingSchema, RejectedSchema } from '../../shared/core/model/finding.js';
import { type NormalizeOptions, type NormalizeResult, normalize } from '../../shared/core/pipeline/normalize.js';
import { readDocuments } from '../../shared/core/sources/read.js';
import { loadFixture } from '../helpers/fixtures.js';

const FIXTURES = fileURLToPath(new URL('../fixtures/', import.meta.url));
export const SOURCE_DIRS = ['guardduty', 'securityhub', 'defender', 'scc'] as const;

/** One documented shape: its fixture path (`scc/public-bucket-acl.pubsub-push.json`) and parsed value. */
export interface Shape {
  name: string;
  value: unknown;
}

/** Every fixture of every source folder (bare, EventBridge, list, ARM, workflow, Event Grid, CloudEvent, Pub/Sub …). */
export function allShapes(): Shape[] {
  return SOURCE_DIRS.flatMap((dir) =>
    readdirSync(`${FIXTURES}${dir}`)
      .filter((f) => f.endsWith('.json'))
      .sort()
      .map((f) => ({ name: `${dir}/${f}`, value: loadFixture(`${dir}/${f}`) })),
  );
}

export type Segment = string | number;

const isContainer = (v: unknown): v is Record<string, unknown> | unknown[] => typeof v === 'object' && v !== null;
const isRecord = (v: unknown): v is Record<string, unknown> => isContainer(v) && !Array.isArray(v);

/** Every field path of a parsed JSON value (containers and leaves), root excluded, in document order. */
export function allPaths(value: unknown): Segment[][] {
  const out: Segment[][] = [];
  const stack: Array<{ v: unknown; path: Segment[] }> = [{ v: value, path: [] }];
  while (stack.length > 0) {
    const top = stack.pop();
    if (!top) break;
    if (top.path.length > 0) out.push(top.path);
    const v = top.v;
    if (Array.isArray(v)) {
      for (const [i, item] of v.entries()) stack.push({ v: item, path: [...top.path, i] });
    } else if (isRecord(v)) {
      for (const k of Object.keys(v)) stack.push({ v: v[k], path: [...top.path, k] });
    }
  }
  return out;
}

/** `['detail', 'findings', 0, 'Id']` → `detail.findings[0].Id` (the form rejections use). */
export const renderSegments = (path: readonly Segment[]): string =>
  path.reduce<string>((acc, s) => (typeof s === 'number' ? `${acc}[${s}]` : acc === '' ? s : `${acc}.${s}`), '');

/** An own, enumerable data property: works for `__proto__` too (an assignment would call the setter). */
function define(node: Record<string, unknown> | unknown[], key: Segment, value: unknown): void {
  Object.defineProperty(node, key, { value, enumerable: true, writable: true, configurable: true });
}

/** The container holding `path`'s last segment in `root`, or undefined when the path no longer exists. */
function parentOf(root: unknown, path: readonly Segment[]): Record<string, unknown> | unknown[] | undefined {
  let node: unknown = root;
  for (const seg of path.slice(0, -1)) {
    if (!isContainer(node) || !Object.hasOwn(node, seg)) return undefined;
    node = Array.isArray(node) ? node[Number(seg)] : node[String(seg)];
  }
  return isContainer(node) ? node : undefined;
}

/** Replaces the value at `path` (a no-op when an earlier edit removed the path). */
export function setAt(root: unknown, path: readonly Segment[], value: unknown): void {
  const parent = parentOf(root, path);
  const last = path[path.length - 1];
  if (parent && last !== undefined) define(parent, last, value);
}

/** Deletes the field at `path` (an array item is spliced out). */
export function deleteAt(root: unknown, path: readonly Segment[]): void {
  const parent = parentOf(root, path);
  const last = path[path.length - 1];
  if (!parent || last === undefined) return;
  if (Array.isArray(parent)) parent.splice(Number(last), 1);
  else delete parent[String(last)];
}

/** The value at `path`, or undefined. */
export function getAt(root: unknown, path: readonly Segment[]): unknown {
  let node: unknown = root;
  for (const seg of path) {
    if (!isContainer(node) || !Object.hasOwn(node, seg)) return undefined;
    node = Array.isArray(node) ? node[Number(seg)] : node[String(seg)];
  }
  return node;
}

/** The same value with another JSON type: what a producer bug or a hostile sender does to a field. */
export function retype(v: unknown): unknown {
  if (typeof v === 'string') return v.length > 0 && Number.isFinite(Number(v)) ? Number(v) : [v];
  if (typeof v === 'number') return String(v);
  if (typeof v === 'boolean') return v ? 1 : 'false';
  if (v === null) return {};
  if (Array.isArray(v)) return Object.fromEntries(v.map((x, i) => [String(i), x]));
  if (isContainer(v)) return Object.values(v);
  return null;
}

/** One edit of a mutated fixture. `at` picks a path by index (modulo the number of paths). */
export type Mutation =
  | { op: 'delete'; at: number }
  | { op: 'replace'; at: number; value: unknown }
  | { op: 'retype'; at: number }
  | { op: 'hostile-key'; at: number; key: string; value: unknown };

export const HOSTILE_KEYS = ['__proto__', 'constructor', 'prototype'] as const;

/** A polluting payload: what an attacker hopes a merge will copy onto Object.prototype. */
export const POLLUTER = { polluted: 'yes', toString: 'polluted', isAdmin: true };

export const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant('delete' as const), at: fc.nat() }),
  fc.record({ op: fc.constant('replace' as const), at: fc.nat(), value: fc.jsonValue({ maxDepth: 3 }) }),
  fc.record({ op: fc.constant('retype' as const), at: fc.nat() }),
  fc.record({
    op: fc.constant('hostile-key' as const),
    at: fc.nat(),
    key: fc.constantFrom(...HOSTILE_KEYS),
    value: fc.constantFrom<unknown>(POLLUTER, { prototype: POLLUTER }, 'polluted', [POLLUTER]),
  }),
);

/**
 * A deep copy of `base` with the mutations applied in order. Paths are recomputed after each edit, so
 * a later edit can land inside what an earlier one inserted. A hostile key is added as an own property of
 * the container at the path (or of its parent when the path ends on a scalar).
 */
export function mutate(base: unknown, mutations: readonly Mutation[]): unknown {
  const root = structuredClone(base);
  for (const m of mutations) {
    const paths = allPaths(root);
    const path = paths.length > 0 ? paths[m.at % paths.length] : undefined;
    if (!path) break;
    if (m.op === 'delete') deleteAt(root, path);
    else if (m.op === 'replace') setAt(root, path, structuredClone(m.value));
    else if (m.op === 'retype') setAt(root, path, retype(getAt(root, path)));
    else {
      // The nearest object at or above the path (arrays cannot carry the key in JSON).
      let holder: unknown;
      for (let n = path.length; n >= 0 && holder === undefined; n--) {
        const candidate = n === 0 ? root : getAt(root, path.slice(0, n));
        if (isContainer(candidate) && !Array.isArray(candidate)) holder = candidate;
      }
      if (isContainer(holder) && !Array.isArray(holder)) define(holder, m.key, structuredClone(m.value));
    }
  }
  return root;
}

/** Longest rejection reason accepted: a reason names the problem, it never echoes megabytes of input. */
export const MAX_REASON = 2_000;

/** Every own key of the built-in prototypes a polluting merge would touch, to compare after each run. */
export function prototypeSnapshot(): string {
  return [Object.prototype, Array.prototype, Function.prototype, String.prototype]
    .map((p) => Reflect.ownKeys(p).map(String).sort().join(','))
    .join('|');
}

/** Fails when any built-in prototype gained a key or a plain object sees a polluted member. */
export function expectNoPollution(before: string): void {
  const probe: Record<string, unknown> = {};
  expect(probe.polluted).toBeUndefined();
  expect(probe.isAdmin).toBeUndefined();
  expect(Reflect.get([], 'polluted')).toBeUndefined();
  expect(typeof probe.toString).toBe('function');
  expect(prototypeSnapshot()).toBe(before);
}

/**
 * The first object inside `value` whose prototype is not the plain one (Object.prototype, Array.prototype
 * or null), as a path, or undefined. A `__proto__` key that reached an assignment (`o[k] = v`) or
 * Object.assign swaps the prototype of that one object: no built-in prototype changes, yet the object
 * answers `polluted` and `isAdmin` through inheritance, and a later spread or merge carries them on.
 */
export function pollutedObjectIn(value: unknown): string | undefined {
  const plain = new Set<unknown>([Object.prototype, Array.prototype, null]);
  const seen = new Set<object>();
  const stack: Array<{ v: unknown; path: string }> = [{ v: value, path: '$' }];
  while (stack.length > 0) {
    const top = stack.pop();
    if (!top || typeof top.v !== 'object' || top.v === null || seen.has(top.v)) continue;
    seen.add(top.v);
    if (!plain.has(Object.getPrototypeOf(top.v))) return top.path;
    for (const k of Object.keys(top.v)) stack.push({ v: Reflect.get(top.v, k), path: `${top.path}.${k}` });
  }
  return undefined;
}

/**
 * The outcome every fuzzed input must have: each finding passes the Finding schema (and serializes, so a
 * store can keep it) and holds only plain objects (no prototype swapped by a hostile key), each rejection
 * passes the Rejected schema, names `origin`, a field path and a bounded reason.
 */
export function expectWellFormed(out: NormalizeResult, origin: string): void {
  for (const f of out.findings) {
    const check = FindingSchema.safeParse(f);
    expect(check.success, check.success ? '' : JSON.stringify(check.error.issues[0])).toBe(true);
    expect(() => JSON.stringify(f)).not.toThrow();
    expect(pollutedObjectIn(f), `an object with a foreign prototype in the finding from ${origin}`).toBeUndefined();
  }
  // One assertion over all rejections: a batch of 100,000 would otherwise cost 500,000 expect calls.
  const unclear = out.rejected.filter(
    (r) =>
      !RejectedSchema.safeParse(r).success ||
      !r.input.startsWith(origin) ||
      r.path.length === 0 ||
      r.reason.length === 0 ||
      r.reason.length > MAX_REASON,
  );
  expect(unclear.slice(0, 3).map((r) => ({ ...r, reason: r.reason.slice(0, 200) }))).toEqual([]);
}

/**
 * A rejection the normalizer could attribute to a source names the field it refused (`detail.findings[0].Id`):
 * only input no source recognizes is refused as a whole (`$`). Holds for every mutation of a real shape
 * (the root stays an object of its source; mutations edit fields below it).
 */
export function expectFieldsNamed(out: NormalizeResult): void {
  const unnamed = out.rejected.filter((r) => r.source !== 'unknown' && r.path === '$');
  expect(unnamed.slice(0, 3).map((r) => ({ ...r, reason: r.reason.slice(0, 200) }))).toEqual([]);
}

/** A generous bound per input: linear work on these sizes takes milliseconds; anything near this is a hang. */
export const HANG_MS = 10_000;

const RUN = new Script('run()');
const sandbox = createContext({ run: () => undefined });

/**
 * Runs `fn` and stops it once it has run `ms` milliseconds (vm's watchdog interrupts synchronous code too),
 * throwing an error that names `what`. A timer checked after the call returns never fires on an endless
 * loop: the test run would hang instead of failing.
 */
export function bounded<T>(fn: () => T, what: string, ms = HANG_MS): T {
  sandbox.run = fn;
  try {
    return RUN.runInContext(sandbox, { timeout: ms }) as T;
  } catch (e) {
    if (e instanceof Error && 'code' in e && e.code === 'ERR_SCRIPT_EXECUTION_TIMEOUT')
      throw new Error(`hang: ${what} still running after ${ms} ms`);
    throw e;
  } finally {
    sandbox.run = () => undefined;
  }
}

/** readDocuments, stopped as a hang past HANG_MS. */
export const readBounded = (text: string, origin: string, options?: Parameters<typeof readDocuments>[2]) =>
  bounded(() => readDocuments(text, origin, options), `readDocuments on ${origin}`);

/** normalize wrapped: a throw (or a run past HANG_MS) fails the property with the input's origin in the message. */
export function normalizeChecked(input: unknown, origin: string, options: NormalizeOptions = {}): NormalizeResult {
  let out: NormalizeResult | undefined;
  expect(() => {
    out = bounded(() => normalize(input, origin, options), `normalize on ${origin}`);
  }, `normalize threw on ${origin}`).not.toThrow();
  if (!out) throw new Error(`normalize returned nothing for ${origin}`);
  expectWellFormed(out, origin);
  return out;
}
