/** Reads CLI inputs: files, folders (recursively, sorted), and `-` for stdin; JSON or JSON lines. */
import { type Dirent, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { errorMessage, UsageError } from '../../core/errors.js';
import type { Rejected } from '../../core/model/finding.js';
import type { IngestDoc } from '../../core/pipeline/ingest.js';
import { readDocuments } from '../../core/sources/read.js';

const EXTENSIONS = ['.json', '.jsonl', '.ndjson'];

/** Expands the arguments into the files to read, in a stable order (folders: sorted, recursive). */
export function expandInputs(args: readonly string[], cwd = process.cwd()): string[] {
  const out: string[] = [];
  for (const arg of args) {
    if (arg === '-') {
      out.push('-');
      continue;
    }
    let st: ReturnType<typeof statSync>;
    try {
      st = statSync(arg);
    } catch {
      throw new UsageError(`input not found: ${arg}`);
    }
    if (st.isDirectory()) out.push(...walk(arg).map((f) => relative(cwd, f) || f));
    else out.push(arg);
  }
  return out;
}

function walk(dir: string): string[] {
  const files: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) files.push(...walk(path));
    else if (EXTENSIONS.some((ext) => entry.name.endsWith(ext)) && isReadableFile(entry, path)) files.push(path);
  }
  return files;
}

/**
 * A regular file, or a symlink to one. A FIFO, socket or device named `*.json` in a folder is skipped:
 * reading a FIFO blocks until a writer appears, so one stray pipe would hang the whole run. A dangling
 * symlink is kept, so the read names it in a rejection instead of dropping it silently. (A FIFO given
 * explicitly, e.g. `closeloop run <(zcat events.gz)`, is read as asked.)
 */
function isReadableFile(entry: Dirent, path: string): boolean {
  if (entry.isFile()) return true;
  if (!entry.isSymbolicLink()) return false;
  try {
    return statSync(path).isFile();
  } catch {
    return true;
  }
}

export async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  return Buffer.concat(chunks).toString('utf8');
}

/** Reads every input into documents; unreadable or unparsable input becomes a rejection, never a crash. */
export async function readInputs(files: readonly string[]): Promise<{ docs: IngestDoc[]; rejected: Rejected[] }> {
  const docs: IngestDoc[] = [];
  const rejected: Rejected[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = file === '-' ? await readStdin() : readFileSync(file, 'utf8');
    } catch (e) {
      rejected.push({ input: file, source: 'unknown', path: '$', reason: `cannot read: ${errorMessage(e)}` });
      continue;
    }
    const out = readDocuments(text, file === '-' ? 'stdin' : file);
    docs.push(...out.docs);
    rejected.push(...out.rejected);
  }
  return { docs, rejected };
}
