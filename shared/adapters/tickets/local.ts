/**
 * LocalTicketSink: tickets kept in the embedded store (DocStore), used when Jira is not configured,
 * so `npm start` and `closeloop tickets` work offline. Keys `LOCAL-1`, `LOCAL-2`…; a small fixed
 * workflow (To Do → Done → Reopened) so transitions behave like Jira's, discovered by name.
 */
import * as z from 'zod';
import { AdapterError } from '../../core/errors.js';
import type { TicketRef } from '../../core/model/case.js';
import { TimestampSchema } from '../../core/model/finding.js';
import { type Clock, type DocStore, systemClock } from '../../core/ports.js';
import { getDoc, mutateDoc } from '../../core/store/docs.js';
import { type AdfDoc, AdfDocSchema, adfToText } from '../../core/tickets/adf.js';
import { CASE_LABEL_PATTERN } from '../../core/tickets/content.js';
import type { IssueFields, TicketDraft, TicketSink } from '../../core/tickets/ports.js';

export const LOCAL_COLLECTIONS = {
  tickets: 'local-tickets',
  seq: 'local-ticket-seq',
  labels: 'local-ticket-labels',
} as const;

export const LocalTicketSchema = z.object({
  key: z.string(),
  caseKey: z.string(),
  summary: z.string(),
  description: AdfDocSchema,
  labels: z.array(z.string()),
  priority: z.string().optional(),
  dueDate: z.string().optional(),
  assignee: z.string().optional(),
  components: z.array(z.string()),
  parentKey: z.string().optional(),
  project: z.string().optional(),
  issueType: z.string(),
  status: z.enum(['To Do', 'Done', 'Reopened']),
  comments: z.array(z.object({ at: TimestampSchema, text: z.string(), body: AdfDocSchema })),
  createdAt: TimestampSchema,
  updatedAt: TimestampSchema,
});
export type LocalTicket = z.infer<typeof LocalTicketSchema>;

/** The local workflow: transition name → target status, and where it is available from. */
const WORKFLOW: ReadonlyArray<{ name: string; to: LocalTicket['status']; from: ReadonlyArray<LocalTicket['status']> }> =
  [
    { name: 'Done', to: 'Done', from: ['To Do', 'Reopened'] },
    { name: 'Reopen', to: 'Reopened', from: ['Done'] },
  ];

const SeqSchema = z.object({ next: z.number().int() });
const LabelIndexSchema = z.object({ key: z.string() });

export class LocalTicketSink implements TicketSink {
  readonly kind = 'local' as const;

  constructor(
    private readonly store: DocStore,
    private readonly clock: Clock = systemClock,
  ) {}

  private ref(t: LocalTicket): TicketRef {
    return { key: t.key, sink: 'local', ...(t.parentKey ? { parentKey: t.parentKey } : {}) };
  }

  async createTicket(draft: TicketDraft): Promise<TicketRef> {
    const seq = await mutateDoc(this.store, LOCAL_COLLECTIONS.seq, 'seq', SeqSchema, (s) => ({
      next: (s?.next ?? 0) + 1,
    }));
    const key = `LOCAL-${seq.value?.next ?? 1}`;
    const at = this.clock.now().toISOString();
    const ticket: LocalTicket = {
      key,
      caseKey: draft.caseKey,
      summary: draft.summary,
      description: draft.description,
      labels: draft.labels,
      ...(draft.priority ? { priority: draft.priority } : {}),
      ...(draft.dueDate ? { dueDate: draft.dueDate } : {}),
      ...(draft.assigneeId ? { assignee: draft.assigneeId } : {}),
      components: draft.components,
      ...(draft.parentKey ? { parentKey: draft.parentKey } : {}),
      ...(draft.project ? { project: draft.project } : {}),
      issueType: draft.issueType,
      status: 'To Do',
      comments: [],
      createdAt: at,
      updatedAt: at,
    };
    await this.store.put(LOCAL_COLLECTIONS.tickets, key, ticket, { expectVersion: 0 });
    await this.store.put(LOCAL_COLLECTIONS.labels, draft.caseLabel, { key });
    return this.ref(ticket);
  }

  async findTicket(caseLabel: string): Promise<TicketRef | undefined> {
    if (!CASE_LABEL_PATTERN.test(caseLabel)) throw new AdapterError('invalid', 'not a derived case label');
    const idx = await getDoc(this.store, LOCAL_COLLECTIONS.labels, caseLabel, LabelIndexSchema);
    const t = idx ? await this.get(idx.value.key) : undefined;
    return t ? this.ref(t) : undefined;
  }

  /** One local ticket (for `closeloop tickets`). */
  async get(key: string): Promise<LocalTicket | undefined> {
    return (await getDoc(this.store, LOCAL_COLLECTIONS.tickets, key, LocalTicketSchema))?.value;
  }

  private async update(key: string, fn: (t: LocalTicket) => LocalTicket): Promise<void> {
    const res = await mutateDoc(this.store, LOCAL_COLLECTIONS.tickets, key, LocalTicketSchema, (t) =>
      t ? { ...fn(t), updatedAt: this.clock.now().toISOString() } : undefined,
    );
    if (!res.changed) throw new AdapterError('gone', `local ticket ${key} does not exist`);
  }

  private withComment(t: LocalTicket, body: AdfDoc): LocalTicket {
    return {
      ...t,
      comments: [...t.comments, { at: this.clock.now().toISOString(), text: adfToText(body).trim(), body }],
    };
  }

  async comment(ref: TicketRef, body: AdfDoc): Promise<void> {
    await this.update(ref.key, (t) => this.withComment(t, body));
  }

  async transition(ref: TicketRef, names: readonly string[], comment: AdfDoc): Promise<string | undefined> {
    const t = await this.get(ref.key);
    if (!t) throw new AdapterError('gone', `local ticket ${ref.key} does not exist`);
    const available = WORKFLOW.filter((w) => w.from.includes(t.status));
    const wanted = names.map((n) => n.toLowerCase());
    const match = wanted
      .map((n) => available.find((w) => w.name.toLowerCase() === n || w.to.toLowerCase() === n))
      .find((w) => w !== undefined);
    await this.update(ref.key, (cur) => ({
      ...this.withComment(cur, comment),
      ...(match ? { status: match.to } : {}),
    }));
    return match?.name;
  }

  async addLabels(ref: TicketRef, labels: readonly string[]): Promise<void> {
    await this.update(ref.key, (t) => ({ ...t, labels: [...new Set([...t.labels, ...labels])] }));
  }

  async removeLabels(ref: TicketRef, labels: readonly string[]): Promise<void> {
    await this.update(ref.key, (t) => ({ ...t, labels: t.labels.filter((l) => !labels.includes(l)) }));
  }

  async setDescription(ref: TicketRef, description: AdfDoc, fields: IssueFields = {}): Promise<void> {
    await this.update(ref.key, (t) => ({
      ...t,
      description,
      ...(fields.priority ? { priority: fields.priority } : {}),
      ...(fields.dueDate ? { dueDate: fields.dueDate } : {}),
    }));
  }

  async assigneeOf(ref: TicketRef): Promise<string | null> {
    const t = await this.get(ref.key);
    if (!t) throw new AdapterError('gone', `local ticket ${ref.key} does not exist`);
    return t.assignee ?? null;
  }

  async assign(ref: TicketRef, accountId: string | null): Promise<void> {
    await this.update(ref.key, ({ assignee: _was, ...t }) => (accountId ? { ...t, assignee: accountId } : t));
  }

  /** No accounts locally: the e-mail stands for the person. */
  async findUser(email: string): Promise<string | undefined> {
    return email;
  }
}
