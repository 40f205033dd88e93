import { oneLine } from '../../core/util/text.js';

/** Plain-text tables for people (the `--json` flag is for scripts). */
export function renderTable(headers: readonly string[], rows: ReadonlyArray<readonly string[]>, maxWidth = 48): string {
  const clip = (s: string) => (s.length > maxWidth ? `${s.slice(0, maxWidth - 1)}…` : s);
  const cells = rows.map((r) => r.map((c) => clip(oneLine(c))));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: readonly string[]) =>
    r
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(headers), line(widths.map((w) => '-'.repeat(w))), ...cells.map(line)].join('\n');
}

/** Control characters from findings never reach the terminal (no escape-sequence injection). */
export { oneLine } from '../../core/util/text.js';
