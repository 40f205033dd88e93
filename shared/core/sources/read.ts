/**
 * Turns input text into JSON documents: one JSON document, or JSON lines (one document per line,
 * blank lines skipped). Bad text never throws: each unparsable document becomes a rejection naming
 * the input, the line/column and the parser's message.
 */
import type { Rejected } from '../model/finding.js';
import { rejected } from './common.js';

/** One parsed document and where it came from (`events/gd.json`, `stdin:12`). */
export interface ReadDocument {
  input: string;
  value: unknown;
  /** The length of the JSON text it was parsed from (normalize's `textChars`). */
  textChars: number;
}

export interface ReadOptions {
  /**
   * Largest document (a whole file, or one JSON line) parsed, in UTF-16 characters. Larger documents are
   * rejected unparsed, so a runaway file cannot exhaust memory. Default 64 Mi characters: far above any
   * upstream limit (EventBridge 256 KB, Event Grid 1 MB, Pub/Sub 10 MB) yet below V8's string ceiling.
   */
  maxDocumentChars?: number;
}

export const DEFAULT_MAX_DOCUMENT_CHARS = 64 * 1024 * 1024;

const POSITION = /position (\d+)/;
const LINE_BREAK = /\r?\n/;

/**
 * Reads one JSON document or JSON lines.
 *
 * @example
 * readDocuments('{"a":1}\n\n{"b":', 'stdin');
 * // → { docs: [{ input: 'stdin:1', value: { a: 1 }, textChars: 7 }],
 * //     rejected: [{ input: 'stdin:3', source: 'unknown', path: '$', reason: 'invalid JSON at line 3, column 6: …' }] }
 */
export function readDocuments(
  text: string,
  origin: string,
  options: ReadOptions = {},
): { docs: ReadDocument[]; rejected: Rejected[] } {
  const max = options.maxDocumentChars ?? DEFAULT_MAX_DOCUMENT_CHARS;
  // A UTF-8 byte order mark is not JSON whitespace; editors on Windows add it.
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  if (body.trim() === '')
    return { docs: [], rejected: [rejected(origin, 'unknown', '$', 'empty input: no JSON document')] };

  // Parse the whole text first only when it is small enough; a huge file may still be JSON lines.
  const whole: ParseResult = body.length <= max ? tryParse(body) : { ok: false, error: undefined };
  if (whole.ok) return { docs: [{ input: origin, value: whole.value, textChars: body.length }], rejected: [] };

  const lines = body.split(LINE_BREAK);
  if (looksLikeJsonLines(lines, max)) return readLines(lines, origin, max);
  if (body.length > max) return { docs: [], rejected: [tooLarge(origin, body.length, max)] };
  return { docs: [], rejected: [rejected(origin, 'unknown', '$', describeError(whole.error, body, 0))] };
}

function readLines(lines: readonly string[], origin: string, max: number) {
  const docs: ReadDocument[] = [];
  const bad: Rejected[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? '';
    if (line.trim() === '') continue;
    const input = `${origin}:${i + 1}`;
    if (line.length > max) {
      bad.push(tooLarge(input, line.length, max));
      continue;
    }
    const parsed = tryParse(line);
    if (parsed.ok) docs.push({ input, value: parsed.value, textChars: line.length });
    else bad.push(rejected(input, 'unknown', '$', describeError(parsed.error, line, i)));
  }
  return { docs, rejected: bad };
}

/**
 * The whole text failed to parse: JSON lines, or one broken document? Lines mode when at least half of
 * the non-blank lines are complete JSON objects/arrays on their own. A pretty-printed (and truncated)
 * document almost never has such lines, so it yields one rejection instead of one per line.
 */
function looksLikeJsonLines(lines: readonly string[], max: number): boolean {
  let nonBlank = 0;
  let complete = 0;
  for (const line of lines) {
    const t = line.trim();
    if (t === '') continue;
    nonBlank++;
    const first = t[0];
    const last = t[t.length - 1];
    if (t.length <= max && ((first === '{' && last === '}') || (first === '[' && last === ']'))) {
      if (tryParse(t).ok) complete++;
    }
  }
  return nonBlank > 1 && complete > 0 && complete * 2 >= nonBlank;
}

type ParseResult = { ok: true; value: unknown } | { ok: false; error: unknown };

function tryParse(text: string): ParseResult {
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (error) {
    return { ok: false, error };
  }
}

/** "invalid JSON at line 3, column 17: Unexpected end of JSON input" (line numbers are 1-based, in the input). */
function describeError(error: unknown, text: string, lineOffset: number): string {
  const message = error instanceof Error ? error.message : String(error);
  const m = POSITION.exec(message);
  // V8 names a position for some errors only ("Unexpected token … is not valid JSON" has none): find it ourselves.
  const pos = m ? Number(m[1]) : message.includes('end of JSON') ? text.length : locateJsonError(text);
  let line = 1;
  let lineStart = 0;
  for (let i = text.indexOf('\n'); i !== -1 && i < pos; i = text.indexOf('\n', i + 1)) {
    line++;
    lineStart = i + 1;
  }
  const what = message.includes('end of JSON') ? 'truncated JSON (the input ends early)' : message;
  return `invalid JSON at line ${line + lineOffset}, column ${pos - lineStart + 1}: ${what}`;
}

const tooLarge = (input: string, chars: number, max: number): Rejected =>
  rejected(input, 'unknown', '$', `document of ${chars} characters exceeds the ${max}-character limit; not parsed`);

const WS = new Set([' ', '\t', '\n', '\r']);
const LITERALS = ['true', 'false', 'null'];
const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;

/**
 * Offset of the first JSON syntax error (only called after JSON.parse failed, to name a line and column
 * when V8's message has no position). One linear pass with an explicit stack: no recursion on deep input
 * (opening a container loops on to its first member instead of calling itself, so a bad token a million
 * levels down is found, not a stack overflow).
 */
export function locateJsonError(text: string): number {
  const stack: Array<'{' | '['> = [];
  let i = 0;
  const skip = () => {
    while (i < text.length && WS.has(text.charAt(i))) i++;
  };
  const value = (): boolean => {
    for (;;) {
      skip();
      const c = text.charAt(i);
      if (c !== '{' && c !== '[') return scalar();
      stack.push(c);
      i++;
      skip();
      if (text.charAt(i) === (c === '{' ? '}' : ']')) {
        stack.pop();
        i++;
        return true;
      }
      // The container's first member: a key first in an object, then (next turn) its value.
      if (c === '{' && !name()) return false;
    }
  };
  const scalar = (): boolean => {
    const c = text.charAt(i);
    if (c === '"') return string();
    for (const lit of LITERALS) {
      if (text.startsWith(lit, i)) {
        i += lit.length;
        return true;
      }
    }
    NUMBER.lastIndex = i;
    if (!NUMBER.test(text)) return false;
    i = NUMBER.lastIndex;
    return true;
  };
  const string = (): boolean => {
    i++;
    while (i < text.length) {
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return true;
      }
      if (c < 0x20) return false;
      i += c === 0x5c ? 2 : 1;
    }
    return false;
  };
  /** A member's name and its colon. */
  const name = (): boolean => {
    skip();
    if (text.charAt(i) !== '"' || !string()) return false;
    skip();
    if (text.charAt(i) !== ':') return false;
    i++;
    return true;
  };
  const key = (): boolean => name() && value();
  if (!value()) return i;
  for (;;) {
    skip();
    const top = stack[stack.length - 1];
    if (!top) return Math.min(i, text.length);
    const c = text.charAt(i);
    if (c === ',') {
      i++;
      if (!(top === '{' ? key() : value())) return i;
    } else if (c === (top === '{' ? '}' : ']')) {
      stack.pop();
      i++;
    } else return i;
  }
}
