/**
 * Validation without a copy: a zod schema compiled into a predicate that accepts a value only when zod
 * would, and only when zod's parse of it would be structurally equal to it, so the value itself can stand
 * in for the parse result. zod's object parse copies every object of a value, which cost about 40% of
 * normalize and most of its garbage, and as much again to re-read stored findings and cases. zod still
 * parses (and words the error for) every value the predicate does not accept.
 */
import * as z from 'zod';
import * as zc from 'zod/v4/core';

/** A plain JSON object (not an array, not null). */
const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** A compiled, allocation-free acceptance test for a JSON value (see {@link compileAcceptor}). */
type Acceptor = (value: unknown) => boolean;

const ACCEPT_ANY: Acceptor = () => true;

/** The checks of a string/array/number schema as one predicate, or null when one of them is not understood. */
function compileChecks(checks: readonly zc.$ZodCheck<never>[] | undefined): Acceptor | null {
  const tests: Acceptor[] = [];
  for (const check of checks ?? []) {
    if (check instanceof zc.$ZodCheckMinLength) {
      const min = check._zod.def.minimum;
      tests.push((v) => (typeof v === 'string' || Array.isArray(v)) && v.length >= min);
    } else if (check instanceof zc.$ZodCheckMaxLength) {
      const max = check._zod.def.maximum;
      tests.push((v) => (typeof v === 'string' || Array.isArray(v)) && v.length <= max);
    } else if (check instanceof zc.$ZodCheckRegex && check._zod.def.format === 'regex') {
      const pattern = check._zod.def.pattern;
      tests.push((v) => {
        if (typeof v !== 'string') return false;
        pattern.lastIndex = 0;
        return pattern.test(v);
      });
    } else if (check instanceof zc.$ZodCheckNumberFormat && check._zod.def.format === 'safeint') {
      tests.push((v) => Number.isSafeInteger(v));
    } else if (check instanceof zc.$ZodCheckGreaterThan && typeof check._zod.def.value === 'number') {
      const { value: min, inclusive } = check._zod.def;
      tests.push((v) => typeof v === 'number' && (inclusive ? v >= min : v > min));
    } else if (check instanceof zc.$ZodCheckLessThan && typeof check._zod.def.value === 'number') {
      const { value: max, inclusive } = check._zod.def;
      tests.push((v) => typeof v === 'number' && (inclusive ? v <= max : v < max));
    } else return null;
  }
  if (tests.length === 0) return ACCEPT_ANY;
  if (tests.length === 1) return tests[0] as Acceptor;
  return (v) => {
    for (const t of tests) if (!t(v)) return false;
    return true;
  };
}

/** String formats whose whole check is their pattern (others, such as `url`, run code of their own). */
const PATTERN_FORMATS = new Set(['datetime', 'date', 'time']);

/**
 * Compiles the subset of zod the vendor and model schemas use (objects, strings, ISO date-time strings,
 * finite numbers, booleans, enums, literals, arrays, records, unions, optional/nullable, defaults, unknown,
 * custom predicates; length, regex, integer and range checks) into a predicate that accepts a value only
 * when the schema would, without building a copy. Returns null for anything else (a transform, an unknown
 * check): such a schema always goes through zod. An accepted value is one zod parses to a value
 * structurally equal to it, so it can stand in for the parse result: a loose object keeps every member;
 * a stripping or strict object is accepted only without members beyond its shape; a default only when
 * its value is there.
 */
function compileAcceptor(schema: zc.$ZodType): Acceptor | null {
  if (schema instanceof z.ZodObject) {
    const catchall = schema._zod.def.catchall;
    // Loose objects (catchall unknown) keep every member; z.object() strips and z.strictObject() refuses
    // other members, so those are accepted only without any.
    const loose = catchall instanceof z.ZodUnknown;
    if (!loose && catchall !== undefined && !(catchall instanceof z.ZodNever)) return null;
    // Parallel arrays, walked by index: the hot loop reads no tuples.
    const keys: string[] = [];
    const accepts: Acceptor[] = [];
    const optional: boolean[] = [];
    for (const [key, member] of Object.entries(schema.shape)) {
      const accept = compileAcceptor(member);
      if (!accept) return null;
      keys.push(key);
      accepts.push(accept);
      optional.push(member instanceof z.ZodOptional);
    }
    const n = keys.length;
    return (v) => {
      // zod drops an own `__proto__` member (JSON.parse makes one) from its copy: leave that rare input to zod.
      if (!isRecord(v) || Object.hasOwn(v, '__proto__')) return false;
      let present = 0;
      for (let i = 0; i < n; i++) {
        const key = keys[i] as string;
        // zod reads members with `in` semantics but only own JSON members exist here; a member only
        // reachable through the prototype (never from JSON.parse) is left to zod.
        if (!Object.hasOwn(v, key)) {
          if (key in v || !optional[i]) return false;
          continue;
        }
        present++;
        if (!(accepts[i] as Acceptor)(v[key])) return false;
      }
      if (loose) return true;
      let members = 0;
      for (const key in v) if (Object.hasOwn(v, key)) members++;
      return members === present;
    };
  }
  if (schema instanceof z.ZodOptional) {
    const inner = compileAcceptor(schema.unwrap());
    return inner && ((v) => v === undefined || inner(v));
  }
  if (schema instanceof z.ZodNullable) {
    const inner = compileAcceptor(schema.unwrap());
    return inner && ((v) => v === null || inner(v));
  }
  if (schema instanceof z.ZodString) {
    const checks = compileChecks(schema._zod.def.checks);
    return checks && ((v) => typeof v === 'string' && checks(v));
  }
  if (schema instanceof zc.$ZodStringFormat) {
    const { format, pattern } = schema._zod.def;
    const checks = compileChecks(schema._zod.def.checks);
    if (!PATTERN_FORMATS.has(format) || !pattern || !checks) return null;
    return (v) => {
      if (typeof v !== 'string') return false;
      pattern.lastIndex = 0;
      return pattern.test(v) && checks(v);
    };
  }
  if (schema instanceof z.ZodEnum) {
    const values = new Set<unknown>(schema.options);
    return (v) => values.has(v);
  }
  if (schema instanceof z.ZodLiteral) {
    const values = new Set<unknown>(schema._zod.def.values);
    return (v) => values.has(v);
  }
  if (schema instanceof z.ZodDefault) {
    // zod fills a missing value in: only a value that is there parses to itself.
    const inner = compileAcceptor(schema.unwrap());
    return inner && ((v) => v !== undefined && inner(v));
  }
  if (schema instanceof z.ZodRecord) {
    const keyType = schema._zod.def.keyType;
    if (!(keyType instanceof z.ZodString) || keyType._zod.def.checks?.length) return null;
    const value = compileAcceptor(schema._zod.def.valueType);
    if (!value) return null;
    return (v) => {
      if (!isRecord(v) || Object.hasOwn(v, '__proto__')) return false;
      for (const key in v) if (Object.hasOwn(v, key) && !value(v[key])) return false;
      return true;
    };
  }
  if (schema instanceof z.ZodNumber) {
    const checks = compileChecks(schema._zod.def.checks);
    return checks && ((v) => typeof v === 'number' && Number.isFinite(v) && checks(v));
  }
  if (schema instanceof z.ZodBoolean) return schema._zod.def.checks?.length ? null : (v) => typeof v === 'boolean';
  if (schema instanceof z.ZodArray) {
    const element = compileAcceptor(schema.element);
    const checks = compileChecks(schema._zod.def.checks);
    if (!element || !checks) return null;
    return (v) => {
      if (!Array.isArray(v) || !checks(v)) return false;
      for (const item of v) if (!element(item)) return false;
      return true;
    };
  }
  if (schema instanceof z.ZodUnion) {
    const options: Acceptor[] = [];
    for (const option of schema.options) {
      const accept = compileAcceptor(option);
      if (!accept) return null;
      options.push(accept);
    }
    return (v) => {
      for (const accept of options) if (accept(v)) return true;
      return false;
    };
  }
  if (schema instanceof z.ZodUnknown) return ACCEPT_ANY;
  if (schema instanceof z.ZodCustom) {
    if (schema._zod.def.checks?.length) return null;
    const fn = schema._zod.def.fn;
    return (v) => Boolean(fn(v));
  }
  return null;
}

const ACCEPTORS = new WeakMap<zc.$ZodType, Acceptor | null>();

/**
 * True when `value` certainly satisfies `schema` (checked by a compiled predicate, no copy made); false
 * when it may not, and zod must say (it then names the failing field). Exported for the tests that hold
 * the predicate to zod's own answer.
 */
export function acceptsWithoutCopy<T extends z.ZodType>(schema: T, value: unknown): value is z.infer<T> {
  let accept = ACCEPTORS.get(schema);
  if (accept === undefined) {
    accept = compileAcceptor(schema);
    ACCEPTORS.set(schema, accept);
  }
  return accept?.(value) === true;
}

/**
 * `schema.parse(value)`, returning `value` itself when the compiled predicate accepts it (see
 * {@link acceptsWithoutCopy}): for values closeloop wrote itself (stored findings and cases), which are
 * nearly always valid. Throws zod's error otherwise.
 */
export function parseWithoutCopy<T extends z.ZodType>(schema: T, value: unknown): z.infer<T> {
  return acceptsWithoutCopy(schema, value) ? value : schema.parse(value);
}
