/**
 * A tiny typed builder for the Atlassian Document Format (the body of Jira Cloud REST v3 descriptions
 * and comments). Only the nodes closeloop writes; text is always a `text` node, never markup, so
 * nothing from a finding can inject structure.
 *
 * @see https://developer.atlassian.com/cloud/jira/platform/apis/document/structure/
 */
import * as z from 'zod';

export interface AdfMark {
  type: 'strong' | 'code' | 'em' | 'link';
  attrs?: { href: string };
}
export interface AdfText {
  type: 'text';
  text: string;
  marks?: AdfMark[];
}
export interface AdfHardBreak {
  type: 'hardBreak';
}
export type AdfInline = AdfText | AdfHardBreak;
export interface AdfParagraph {
  type: 'paragraph';
  content: AdfInline[];
}
export interface AdfHeading {
  type: 'heading';
  attrs: { level: 1 | 2 | 3 | 4 | 5 | 6 };
  content: AdfInline[];
}
export interface AdfListItem {
  type: 'listItem';
  content: AdfParagraph[];
}
export interface AdfBulletList {
  type: 'bulletList';
  content: AdfListItem[];
}
export interface AdfOrderedList {
  type: 'orderedList';
  content: AdfListItem[];
}
export interface AdfTableCell {
  type: 'tableCell' | 'tableHeader';
  content: AdfParagraph[];
}
export interface AdfTableRow {
  type: 'tableRow';
  content: AdfTableCell[];
}
export interface AdfTable {
  type: 'table';
  content: AdfTableRow[];
}
export type AdfBlock = AdfParagraph | AdfHeading | AdfBulletList | AdfOrderedList | AdfTable;
export interface AdfDoc {
  type: 'doc';
  version: 1;
  content: AdfBlock[];
}

/** A document read back from storage (the outbox, the local sink): checked by shape, typed as AdfDoc. */
export const isAdfDoc = (v: unknown): v is AdfDoc =>
  typeof v === 'object' &&
  v !== null &&
  'type' in v &&
  v.type === 'doc' &&
  'version' in v &&
  v.version === 1 &&
  'content' in v &&
  Array.isArray(v.content);
export const AdfDocSchema = z.custom<AdfDoc>(isAdfDoc, 'an ADF document');

/** Jira rejects empty text nodes; ADF has no size limit per node, but Jira fields do (32 767 chars). */
const clean = (s: string): string => (s.length > 4000 ? `${s.slice(0, 3999)}…` : s);

/** Text, optionally marked. Empty strings become a dash so the node stays valid. */
export const text = (s: string, ...marks: AdfMark[]): AdfText =>
  marks.length > 0 ? { type: 'text', text: clean(s) || '-', marks } : { type: 'text', text: clean(s) || '-' };
export const strong = (s: string): AdfText => text(s, { type: 'strong' });
export const code = (s: string): AdfText => text(s, { type: 'code' });
/** A link; only http(s) URLs are linked, anything else is shown as plain text. */
export const link = (label: string, href: string): AdfText =>
  /^https?:\/\//.test(href) ? text(label, { type: 'link', attrs: { href } }) : text(label);
export const br = (): AdfHardBreak => ({ type: 'hardBreak' });

/**
 * A paragraph from strings and inline nodes. Empty strings are left out (an optional suffix such as the
 * owner's "(no owner found: triage)" when there is none): as text nodes they became a stray dash after the
 * value on every ticket. A paragraph of nothing but empty strings holds one dash.
 */
export const p = (...parts: Array<string | AdfInline>): AdfParagraph => {
  const content = parts.filter((x) => x !== '').map((x) => (typeof x === 'string' ? text(x) : x));
  return { type: 'paragraph', content: content.length > 0 ? content : [text('')] };
};
export const h = (level: 1 | 2 | 3 | 4 | 5 | 6, s: string): AdfHeading => ({
  type: 'heading',
  attrs: { level },
  content: [text(s)],
});
export const ul = (items: ReadonlyArray<AdfParagraph | string>): AdfBulletList => ({
  type: 'bulletList',
  content: items.map((i) => ({ type: 'listItem', content: [typeof i === 'string' ? p(i) : i] })),
});
export const ol = (items: ReadonlyArray<AdfParagraph | string>): AdfOrderedList => ({
  type: 'orderedList',
  content: items.map((i) => ({ type: 'listItem', content: [typeof i === 'string' ? p(i) : i] })),
});
/** A table with a header row; cells are strings or paragraphs. */
export const table = (
  header: readonly string[],
  rows: ReadonlyArray<ReadonlyArray<string | AdfParagraph>>,
): AdfTable => ({
  type: 'table',
  content: [
    { type: 'tableRow', content: header.map((c) => ({ type: 'tableHeader', content: [p(strong(c))] })) },
    ...rows.map(
      (r): AdfTableRow => ({
        type: 'tableRow',
        content: r.map((c) => ({ type: 'tableCell', content: [typeof c === 'string' ? p(c) : c] })),
      }),
    ),
  ],
});
export const doc = (...content: AdfBlock[]): AdfDoc => ({ type: 'doc', version: 1, content });

/** All text of a document, for logs, the local sink and tests. */
export function adfToText(node: unknown): string {
  if (!node || typeof node !== 'object' || !('type' in node)) return '';
  if (node.type === 'text' && 'text' in node && typeof node.text === 'string') return node.text;
  if (node.type === 'hardBreak') return '\n';
  const inner = 'content' in node && Array.isArray(node.content) ? node.content.map(adfToText) : [];
  const block = ['paragraph', 'heading', 'listItem', 'tableRow'].includes(String(node.type));
  const joined = node.type === 'tableRow' ? inner.map((c) => c.trim()).join(' | ') : inner.join('');
  return block ? `${joined}\n` : joined;
}
