/**
 * Storm control: when more than `threshold` new cases of one finding type for one owner arrive within
 * the window, the next ones go under one parent ticket (rows of a table in its description, or
 * sub-tasks) instead of one ticket each. The parent's table is rewritten coalesced: the group is
 * marked dirty as cases join, and refreshed at most every `refreshSeconds` from the stage and always
 * at the end of `drainOutbox`.
 */
import type { Case } from '../model/case.js';
import { type Severity, SeveritySchema, severityRank } from '../model/finding.js';
import { getDoc, mutateDoc } from '../store/docs.js';
import { type AdfDoc, code, doc, h, p, strong, table, text } from './adf.js';
import {
  caseLabelOf,
  dueDateFor,
  ledgerIdOf,
  ownerUncertain,
  priorityFor,
  projectFor,
  shortType,
  slug,
} from './content.js';
import { type Assignment, nowIso, type TicketContext } from './context.js';
import { ledgerTicket } from './ledger.js';
import type { TicketPolicy } from './policy.js';
import type { IssueFields, TicketDraft } from './ports.js';
import { COLLECTIONS, type Group, type GroupMember, GroupSchema, TicketIndexSchema } from './store.js';

/** Rows shown in the parent's description; Jira caps a description at 32 767 characters. */
const MAX_TABLE_ROWS = 100;

export type GroupJoin = { grouped: false } | { grouped: true; groupId: string; group: Group };

/**
 * One group per owner, finding type and project; an owner that is a fallback after a failed lookup
 * ({@link ownerUncertain}) groups apart: its parent is unassigned, as its own ticket would be. Grouped with
 * the confirmed owner's cases, a storm of throttled lookups went under that person's parent ticket.
 */
const groupKeyOf = (c: Case, project: string | undefined): string =>
  `group|${c.enrichment.owner.toLowerCase()}|${c.type}|${project ?? ''}${ownerUncertain(c) ? '|unconfirmed' : ''}`;

/** The ledger key of a group's parent ticket (a finished group starts a new generation). */
export const parentKeyOf = (g: Group): string => `${g.key}|${g.generation}`;

const memberOf = (c: Case, policy: TicketPolicy, now: Date): GroupMember => ({
  caseKey: c.key,
  resourceName: c.resourceName,
  resourceId: c.resourceId,
  account: c.account,
  region: c.region,
  severity: c.severity,
  environment: c.enrichment.environment,
  due: dueDateFor(c.severity, now, policy),
  occurrences: c.occurrences,
  lastSeen: c.lastSeen,
  status: 'open',
});

/** Records the case as a new case of its owner and type; says whether it goes under the group's parent. */
export async function joinGroup(ctx: TicketContext, c: Case): Promise<GroupJoin> {
  const g = ctx.policy.grouping;
  if (!g.enabled) return { grouped: false };
  const key = groupKeyOf(c, projectFor(c, ctx.policy));
  const groupId = ledgerIdOf(key);
  const now = ctx.clock.now();
  const since = now.getTime() - g.windowMinutes * 60_000;
  const res = await mutateDoc(ctx.store, COLLECTIONS.groups, groupId, GroupSchema, (cur) => {
    let group: Group = cur ?? {
      key,
      owner: c.enrichment.owner,
      type: c.type,
      title: c.title,
      recent: [],
      members: [],
      dirty: false,
      parentStatus: 'open',
      generation: 0,
    };
    if (group.members.some((m) => m.caseKey === c.key) || group.recent.some((r) => r.caseKey === c.key)) {
      return undefined; // already decided for this case: same answer again
    }
    if (group.parentStatus === 'done' && group.members.length > 0) {
      group = {
        ...group,
        members: [],
        recent: [],
        parentStatus: 'open',
        generation: group.generation + 1,
        parentFields: undefined,
        assigneeNote: undefined,
      };
    }
    const recent = group.recent.filter((r) => Date.parse(r.at) >= since);
    if (recent.length >= g.threshold) {
      return {
        ...group,
        recent,
        members: [...group.members, memberOf(c, ctx.policy, now)],
        sampleCaseKey: group.sampleCaseKey ?? c.key,
        dirty: true,
      };
    }
    return { ...group, recent: [...recent, { caseKey: c.key, at: now.toISOString() }] };
  });
  const group = res.value;
  if (!group?.members.some((m) => m.caseKey === c.key)) return { grouped: false };
  return { grouped: true, groupId, group };
}

/**
 * The parent ticket's create request, assigned as `assignment` says (the sample case's: see assignmentFor).
 * An assignment that fell back because the sink refused the user search is said in the description.
 */
export function groupDraft(ctx: TicketContext, group: Group, sample: Case, assignment: Assignment): TicketDraft {
  const policy = ctx.policy;
  const assigneeId = assignment.id;
  const key = parentKeyOf(group);
  const routing = sample.enrichment.jira;
  const components = routing?.component ? [routing.component] : [];
  if (!assigneeId) components.push(policy.triageComponent);
  const summary = `[${sample.severity.toUpperCase()}] ${shortType(sample)} on many resources of ${sample.enrichment.owner} (${sample.enrichment.environment})`;
  return {
    caseKey: key,
    caseLabel: caseLabelOf(key),
    project: projectFor(sample, policy),
    issueType: routing?.issueType ?? policy.defaultIssueType,
    summary: summary.length <= policy.summaryMaxLength ? summary : `${summary.slice(0, policy.summaryMaxLength - 1)}…`,
    description: groupDescription({ ...group, assigneeNote: refusedLookupNote(assignment) }),
    labels: [
      ...new Set([
        'closeloop',
        'closeloop-group',
        caseLabelOf(key),
        ...sample.sources,
        slug(shortType(sample)),
        `env-${sample.enrichment.environment}`,
        ...policy.labels,
      ]),
    ],
    ...parentFieldsOf(group, policy, {
      priority: priorityFor(sample.severity, sample.enrichment.environment, policy),
      dueDate: undefined,
    }),
    assigneeId,
    components: [...new Set(components)],
    parentKey: undefined,
  };
}

/** Jira's default priorities, most urgent first: how two priority names of the policy compare. */
const PRIORITY_ORDER = ['highest', 'high', 'medium', 'low', 'lowest'];

/**
 * The parent's priority and due date: those of its most urgent row still open (the rows have no tickets of
 * their own, so the parent carries their SLA): the highest severity (then the more urgent priority of the
 * policy's table, by environment) and the earliest due date. `fallback` when no row tells.
 */
export function parentFieldsOf(
  group: Pick<Group, 'members'>,
  policy: TicketPolicy,
  fallback: Required<IssueFields>,
): Required<IssueFields> {
  const open = group.members.filter((m) => m.status !== 'done');
  const rows = open.length > 0 ? open : group.members;
  const rank = (name: string | undefined) => {
    const i = PRIORITY_ORDER.indexOf((name ?? '').toLowerCase());
    return i === -1 ? PRIORITY_ORDER.length : i;
  };
  let best: { severity: number; priority: string | undefined } | undefined;
  for (const m of rows) {
    const parsed = SeveritySchema.safeParse(m.severity);
    if (!parsed.success) continue;
    const severity: Severity = parsed.data;
    const priority = priorityFor(severity, m.environment ?? 'unknown', policy);
    const r = severityRank(severity);
    if (!best || r > best.severity || (r === best.severity && rank(priority) < rank(best.priority)))
      best = { severity: r, priority };
  }
  const dues = rows.map((m) => m.due).filter((d): d is string => d !== undefined);
  return {
    priority: best ? best.priority : fallback.priority,
    dueDate: dues.length > 0 ? dues.reduce((a, b) => (b < a ? b : a)) : fallback.dueDate,
  };
}

/** The note of an assignment that fell back because the sink refused the user search, which a parent keeps. */
export const refusedLookupNote = (a: Assignment): string | undefined => (a.ownerLookupRefused ? a.note : undefined);

/** The parent's description: what, whose, and a table of the resources. */
export function groupDescription(group: Group): AdfDoc {
  const shown = group.members.slice(0, MAX_TABLE_ROWS);
  const rest = group.members.length - shown.length;
  return doc(
    h(3, 'Many resources, one finding type'),
    p(
      strong(`${group.members.length} resources `),
      'of ',
      code(group.owner),
      ' have ',
      code(group.type),
      `: ${group.title}`,
    ),
    // Without it the parent sat with the team's lead (or unassigned) and nobody knew why: see assignmentFor.
    ...(group.assigneeNote ? [p(strong('Assignee: '), group.assigneeNote)] : []),
    p('Each row is one closeloop case; closeloop updates this table as cases join and as they are fixed.'),
    table(
      ['Resource', 'Resource id', 'Account', 'Region', 'Severity', 'Occurrences', 'Last seen', 'Status'],
      shown.map((m) => [
        m.resourceName,
        p(code(m.resourceId)),
        m.account,
        m.region ?? 'global',
        m.severity,
        String(m.occurrences),
        m.lastSeen,
        m.status,
      ]),
    ),
    ...(rest > 0 ? [p(text(`…and ${rest} more: run closeloop tickets for the full list.`, { type: 'em' }))] : []),
  );
}

/** Records on the group (its generation `generation`, the parent just created) why the parent is not its owner's. */
export async function keepAssigneeNote(
  ctx: TicketContext,
  groupId: string,
  generation: number,
  note: string,
): Promise<void> {
  await mutateDoc(ctx.store, COLLECTIONS.groups, groupId, GroupSchema, (g) =>
    g && g.generation === generation && g.assigneeNote !== note ? { ...g, assigneeNote: note } : undefined,
  );
}

/**
 * Rewrites the parent's table when the group changed. `force`: ignore `refreshSeconds` (drain).
 * Returns true when a request was sent.
 */
export async function refreshGroup(ctx: TicketContext, groupId: string, force: boolean): Promise<boolean> {
  const current = await ctx.store.get(COLLECTIONS.groups, groupId);
  if (!current) return false;
  const group = GroupSchema.parse(current.value);
  if (!group.dirty) return false;
  const last = group.lastRefreshAt ? Date.parse(group.lastRefreshAt) : 0;
  if (!force && ctx.clock.now().getTime() - last < ctx.policy.grouping.refreshSeconds * 1000) return false;
  const ref = await ledgerTicket(ctx, parentKeyOf(group));
  if (!ref) return false;
  // A more urgent row raises the parent's priority and brings its due date forward, in the same edit; the
  // values are sent only when they change (a person's edit of the parent otherwise stands).
  const fields = parentFieldsOf(group, ctx.policy, {
    priority: group.parentFields?.priority,
    dueDate: group.parentFields?.dueDate,
  });
  const changed = fields.priority !== group.parentFields?.priority || fields.dueDate !== group.parentFields?.dueDate;
  await ctx.sink.setDescription(ref, groupDescription(group), changed ? fields : {});
  const rendered = group.members.length;
  await mutateDoc(ctx.store, COLLECTIONS.groups, groupId, GroupSchema, (g) =>
    g
      ? {
          ...g,
          dirty: g.members.length !== rendered || g.generation !== group.generation,
          lastRefreshAt: nowIso(ctx),
          parentFields: fields,
        }
      : undefined,
  );
  return true;
}

/** Sets one member's status; returns the group after the change (to see whether all are done). */
export async function setMemberStatus(
  ctx: TicketContext,
  groupId: string,
  caseKey: string,
  status: GroupMember['status'],
): Promise<Group | undefined> {
  const res = await mutateDoc(ctx.store, COLLECTIONS.groups, groupId, GroupSchema, (g) => {
    if (!g) return undefined;
    return { ...g, dirty: true, members: g.members.map((m) => (m.caseKey === caseKey ? { ...m, status } : m)) };
  });
  return res.value;
}

export async function setParentStatus(
  ctx: Pick<TicketContext, 'store'>,
  groupId: string,
  status: Group['parentStatus'],
): Promise<void> {
  await mutateDoc(ctx.store, COLLECTIONS.groups, groupId, GroupSchema, (g) =>
    g && g.parentStatus !== status ? { ...g, parentStatus: status } : undefined,
  );
}

/**
 * Finds the group whose member this case is (table mode: the case's ticket is the parent): the group of the
 * parent ticket, as the ticket index names it (`…|generation`), as the webhook finds it. Not made again from
 * the case: an owner that changed since it joined (an owner tag added to an unowned resource) made another
 * key, found no group, and the row's closure closed the parent over the rows still open.
 */
export async function groupOfMember(ctx: TicketContext, c: Case): Promise<string | undefined> {
  const parent = c.ticket && (await getDoc(ctx.store, COLLECTIONS.index, c.ticket.key, TicketIndexSchema))?.value;
  const groupId = ledgerIdOf(
    parent?.kind === 'group'
      ? parent.key.slice(0, parent.key.lastIndexOf('|'))
      : groupKeyOf(c, projectFor(c, ctx.policy)),
  );
  const doc = await ctx.store.get(COLLECTIONS.groups, groupId);
  if (!doc) return undefined;
  const g = GroupSchema.parse(doc.value);
  return g.members.some((m) => m.caseKey === c.key) ? groupId : undefined;
}
