/**
 * Validation without a copy: a zod schema compiled into a predicate that accepts a value only when zod
 * would, and only when zod's parse of it would be structurally equal to it, so the value itself can stand
 * in for the parse result. zod's object parse copies every object of a value, which cost about 40% of
 * normalize and most of its garbage, and as much again to re-read stored findings and cases. zod still
 * parses (and words the error for) every value the predicate does not accept.
 */
import * as z from 'zod';
import * as zc from 'zod/v4/core';

/** A compiled, allocation-free acceptance test for a JSON value (see {@link compileAcceptor}). */
type Acceptor = (value: unknown) => boolean;

/**
 * The code being generated for one schema: helper functions (one per object, array and record schema,
 * shared by every place the same schema object appears) and the values the code refers to by index
 * (patterns, sets, custom predicates). Nothing in the code comes from a value being checked: it is made
 * of closeloop's own schemas, keys quoted with JSON.stringify and numbers only when finite.
 */
interface Gen {
  fns: string[];
  externals: unknown[];
  named: Map<zc.$ZodType, string>;
}

const external = (g: Gen, value: unknown): string => `x[${g.externals.push(value) - 1}]`;
/** A finite number as a literal; anything else as an external. */
const num = (g: Gen, n: number): string => (Number.isFinite(n) ? String(n) : external(g, n));
const PRIMITIVE_LITERAL = (v: unknown): boolean =>
  typeof v === 'string' || typeof v === 'boolean' || v === null || (typeof v === 'number' && Number.isFinite(v));

/** `m === "a" || m === "b"` for a few plain values, a Set lookup for more or for others. */
function oneOf(g: Gen, values: readonly unknown[], m: string): string {
  if (values.length > 0 && values.length <= 8 && values.every(PRIMITIVE_LITERAL))
    return `(${values.map((v) => `${m} === ${JSON.stringify(v)}`).join(' || ')})`;
  return `${external(g, new Set(values))}.has(${m})`;
}

/** The checks of a string/array/number schema as conditions over `m`, or null when one is not understood. */
function checksOf(g: Gen, checks: readonly zc.$ZodCheck<never>[] | undefined, m: string): string[] | null {
  const out: string[] = [];
  for (const check of checks ?? []) {
    if (check instanceof zc.$ZodCheckMinLength) out.push(`${m}.length >= ${num(g, check._zod.def.minimum)}`);
    else if (check instanceof zc.$ZodCheckMaxLength) out.push(`${m}.length <= ${num(g, check._zod.def.maximum)}`);
    else if (check instanceof zc.$ZodCheckRegex && check._zod.def.format === 'regex')
      out.push(test(g, check._zod.def.pattern, m));
    else if (check instanceof zc.$ZodCheckNumberFormat && check._zod.def.format === 'safeint')
      out.push(`Number.isSafeInteger(${m})`);
    else if (check instanceof zc.$ZodCheckGreaterThan && typeof check._zod.def.value === 'number')
      out.push(`${m} ${check._zod.def.inclusive ? '>=' : '>'} ${num(g, check._zod.def.value)}`);
    else if (check instanceof zc.$ZodCheckLessThan && typeof check._zod.def.value === 'number')
      out.push(`${m} ${check._zod.def.inclusive ? '<=' : '<'} ${num(g, check._zod.def.value)}`);
    else return null;
  }
  return out;
}

/** `(first && c1 && c2)`: a type test followed by a schema's checks. */
const all = (first: string, checks: readonly string[]): string => `(${[first, ...checks].join(' && ')})`;

/** A pattern test; a global or sticky pattern starts from 0 each time, as zod's does. */
function test(g: Gen, pattern: RegExp, m: string): string {
  const re = external(g, pattern);
  return pattern.global || pattern.sticky ? `(${re}.lastIndex = 0, ${re}.test(${m}))` : `${re}.test(${m})`;
}

/** String formats whose whole check is their pattern (others, such as `url`, run code of their own). */
const PATTERN_FORMATS = new Set(['datetime', 'date', 'time']);

/** A helper function for `schema` (made once per schema object), called as `name(m)`. */
function helper(g: Gen, schema: zc.$ZodType, make: (name: string) => string | null, m: string): string | null {
  let name = g.named.get(schema);
  if (name === undefined) {
    name = `f${g.named.size}`;
    g.named.set(schema, name);
    const code = make(name);
    if (code === null) return null;
    g.fns.push(code);
  }
  return `${name}(${m})`;
}

/**
 * The helper of a container (array or record): `guard` over the parameter, then every member, bound to `m`
 * by `loop` (a loop head and the reads that open its body), must pass `element`'s test.
 */
function eachHelper(
  g: Gen,
  schema: zc.$ZodType,
  element: zc.$ZodType,
  m: string,
  param: string,
  guard: string,
  loop: string,
): string | null {
  return helper(
    g,
    schema,
    (name) => {
      const accept = expr(g, element, 'm');
      return (
        accept &&
        `function ${name}(${param}) {\n  if (!(${guard})) return false;\n  ${loop}\n    if (!(${accept})) return false;\n  }\n  return true;\n}`
      );
    },
    m,
  );
}

/** An object member read: `o.key` for an identifier, `o["key"]` otherwise. */
const member = (key: string): string => (/^[A-Za-z_$][\w$]*$/.test(key) ? `o.${key}` : `o[${JSON.stringify(key)}]`);

/**
 * The object test. Members are read directly: the object's prototype must be Object.prototype or none
 * (what JSON.parse and closeloop make; any other value goes to zod) and a key Object.prototype does not
 * have is then own exactly when it reads as something (an own `undefined` is told apart by `hasOwn`).
 * zod drops an own `__proto__` member (JSON.parse makes one) from its copy: such a rare input goes to zod.
 * Loose objects (catchall unknown) keep every member; z.object() strips and z.strictObject() refuses
 * other members, so those are accepted only without any.
 */
function objectHelper(g: Gen, schema: z.ZodObject, name: string): string | null {
  const catchall = schema._zod.def.catchall;
  const loose = catchall instanceof z.ZodUnknown;
  if (!loose && catchall !== undefined && !(catchall instanceof z.ZodNever)) return null;
  let body = '';
  for (const [key, value] of Object.entries(schema.shape)) {
    const accept = expr(g, value, 'm');
    if (accept === null) return null;
    const k = JSON.stringify(key);
    const required = !(value instanceof z.ZodOptional);
    const count = loose ? '' : 'p++; ';
    if (key in Object.prototype)
      body += `  if (hasOwn(o, ${k})) { m = o[${k}]; ${count}if (!(${accept})) return false; }${required ? ' else return false;' : ` else if (${k} in o) return false;`}\n`;
    else
      body += `  m = ${member(key)};\n  if (m !== undefined || hasOwn(o, ${k})) { ${count}if (!(${accept})) return false; }${required ? ' else return false;' : ''}\n`;
  }
  const tail = loose
    ? '  return true;\n'
    : '  let c = 0;\n  for (const k in o) if (hasOwn(o, k)) c++;\n  return c === p;\n';
  return (
    `function ${name}(o) {\n` +
    `  if (typeof o !== "object" || o === null || isArray(o)) return false;\n` +
    `  const proto = getProto(o);\n` +
    `  if ((proto !== OP && proto !== null) || hasOwn(o, "__proto__")) return false;\n` +
    `  let m;${loose ? '' : ' let p = 0;'}\n${body}${tail}}`
  );
}

/**
 * A JavaScript expression that is true exactly when the value in variable `m` is accepted, for the subset
 * of zod the vendor and model schemas use (objects, strings, ISO date-time strings, finite numbers,
 * booleans, enums, literals, arrays, records, unions, optional/nullable, defaults, unknown, custom
 * predicates; length, regex, integer and range checks). Null for anything else (a transform, an unknown
 * check): such a schema always goes through zod.
 */
function expr(g: Gen, schema: zc.$ZodType, m: string): string | null {
  if (schema instanceof z.ZodObject) return helper(g, schema, (name) => objectHelper(g, schema, name), m);
  if (schema instanceof z.ZodOptional) {
    const inner = expr(g, schema.unwrap(), m);
    return inner && `(${m} === undefined || ${inner})`;
  }
  if (schema instanceof z.ZodNullable) {
    const inner = expr(g, schema.unwrap(), m);
    return inner && `(${m} === null || ${inner})`;
  }
  if (schema instanceof z.ZodString) {
    const checks = checksOf(g, schema._zod.def.checks, m);
    return checks && all(`typeof ${m} === "string"`, checks);
  }
  if (schema instanceof zc.$ZodStringFormat) {
    const { format, pattern } = schema._zod.def;
    const checks = checksOf(g, schema._zod.def.checks, m);
    if (!PATTERN_FORMATS.has(format) || !pattern || checks === null) return null;
    return all(`typeof ${m} === "string"`, [test(g, pattern, m), ...checks]);
  }
  if (schema instanceof z.ZodEnum) return oneOf(g, schema.options, m);
  if (schema instanceof z.ZodLiteral) return oneOf(g, [...schema._zod.def.values], m);
  if (schema instanceof z.ZodDefault) {
    // zod fills a missing value in: only a value that is there parses to itself.
    const inner = expr(g, schema.unwrap(), m);
    return inner && `(${m} !== undefined && ${inner})`;
  }
  if (schema instanceof z.ZodRecord) {
    const keyType = schema._zod.def.keyType;
    if (!(keyType instanceof z.ZodString) || keyType._zod.def.checks?.length) return null;
    return eachHelper(
      g,
      schema,
      schema._zod.def.valueType,
      m,
      'o',
      'typeof o === "object" && o !== null && !isArray(o) && !hasOwn(o, "__proto__")',
      'for (const k in o) {\n    if (!hasOwn(o, k)) continue;\n    const m = o[k];',
    );
  }
  if (schema instanceof z.ZodNumber) {
    const checks = checksOf(g, schema._zod.def.checks, m);
    return checks && all(`typeof ${m} === "number" && Number.isFinite(${m})`, checks);
  }
  if (schema instanceof z.ZodBoolean) return schema._zod.def.checks?.length ? null : `(typeof ${m} === "boolean")`;
  if (schema instanceof z.ZodArray) {
    const checks = checksOf(g, schema._zod.def.checks, 'a');
    if (checks === null) return null;
    return eachHelper(
      g,
      schema,
      schema.element,
      m,
      'a',
      all('isArray(a)', checks),
      'for (let i = 0; i < a.length; i++) {\n    const m = a[i];',
    );
  }
  if (schema instanceof z.ZodUnion) {
    const options: string[] = [];
    for (const option of schema.options) {
      const accept = expr(g, option, m);
      if (accept === null) return null;
      options.push(accept);
    }
    return `(${options.join(' || ')})`;
  }
  if (schema instanceof z.ZodUnknown) return 'true';
  if (schema instanceof z.ZodCustom)
    return schema._zod.def.checks?.length ? null : `!!${external(g, schema._zod.def.fn)}(${m})`;
  return null;
}

/** Whether this process lets code be generated from strings (`--disallow-code-generation-from-strings` does not). */
let codegen: boolean | undefined;

/**
 * Compiles a schema into a predicate that accepts a value only when the schema would, without building a
 * copy, or returns null (the schema then always goes through zod). An accepted value is one zod parses to
 * a value structurally equal to it, so it can stand in for the parse result: a loose object keeps every
 * member; a stripping or strict object is accepted only without members beyond its shape; a default
 * only when its value is there. The predicate is generated as JavaScript (straight-line member checks
 * V8 optimizes as one function, three to four times the speed of a tree of closures), as zod 4 does for
 * its own object parse; where the process forbids that, every value goes through zod.
 */
function compileAcceptor(schema: zc.$ZodType): Acceptor | null {
  if (codegen === false) return null;
  const g: Gen = { fns: [], externals: [], named: new Map() };
  const root = expr(g, schema, 'm');
  if (root === null) return null;
  const source =
    '"use strict";\n' +
    'const hasOwn = Object.hasOwn, getProto = Object.getPrototypeOf, OP = Object.prototype, isArray = Array.isArray;\n' +
    `${g.fns.join('\n')}\nreturn function accept(m) { return ${root}; };`;
  try {
    // closeloop's own schemas compiled to code (see Gen): nothing of a checked value reaches the source.
    const accept = new Function('x', source)(g.externals) as Acceptor;
    codegen = true;
    return accept;
  } catch (err) {
    if (codegen === undefined && err instanceof EvalError) {
      codegen = false;
      return null;
    }
    throw err;
  }
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
