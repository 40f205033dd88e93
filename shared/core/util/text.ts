/** Untrusted text (finding titles, resource ids, reasons, people's comments) made safe where it is shown. */

/**
 * Unicode's bidirectional controls (embeddings, overrides, isolates, the marks): shown, they reorder the text
 * around them, so `payments-prod` can read as another name (the "Trojan Source" trick) in a terminal or a ticket.
 */
const BIDI_CONTROLS = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]+/g;

/** Control characters never reach a terminal or a one-line field (no escape-sequence injection, no reordering). */
export function oneLine(s: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: stripping control characters is the point
  return s.replace(/[\u0000-\u001f\u007f-\u009f]+/g, ' ').replace(BIDI_CONTROLS, ' ');
}

/**
 * Inline Markdown that renders as the text itself: every ASCII punctuation character is backslash-escaped
 * (CommonMark allows it for each), so no link, image, HTML, emphasis, table pipe or autolink survives.
 */
export function markdownText(s: string): string {
  return oneLine(s).replace(/[!-/:-@[-`{-~]/g, '\\$&');
}

/** A Markdown code span holding the text as is: its fence is longer than any run of backticks inside. */
export function markdownCode(s: string): string {
  const text = oneLine(s);
  const longest = Math.max(0, ...(text.match(/`+/g) ?? []).map((run) => run.length));
  const fence = '`'.repeat(longest + 1);
  // One space each side is stripped by the renderer, so text starting or ending with a backtick stays whole.
  return `${fence} ${text} ${fence}`;
}
