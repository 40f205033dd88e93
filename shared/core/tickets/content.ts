/**
 * What a ticket says: summary, ADF description, priority, labels, due date, console links, and the
 * lifecycle comments. Pure functions of the stored case and the policy.
 */
import { applyingAction, type Case, caseIdOf } from '../model/case.js';
import type { ExceptionRef } from '../model/decision.js';
import type { Environment } from '../model/enrichment.js';
import type { Severity } from '../model/finding.js';
import { shortHash } from '../util/hash.js';
import { oneLine as shownOnOneLine } from '../util/text.js';
import {
  type AdfBlock,
  type AdfDoc,
  type AdfParagraph,
  br,
  code,
  doc,
  h,
  link,
  ol,
  p,
  strong,
  text,
  ul,
} from './adf.js';
import { PROJECT_KEY_PATTERN, type TicketPolicy } from './policy.js';
import type { TicketDraft } from './ports.js';

/** The only shape of label ever placed in JQL: `closeloop-` and 32 lower-case hex digits. */
export const CASE_LABEL_PATTERN = /^closeloop-[0-9a-f]{32}$/;

/** Ledger id (hex) of a case or group key: query-safe, fixed length, whatever the key holds. */
export const ledgerIdOf = (key: string): string => shortHash(key, 32);
/** The label derived from a case key (never the key itself: keys hold ARNs, quotes, anything). */
export const caseLabelOf = (key: string): string => `closeloop-${ledgerIdOf(key)}`;

/** A Jira label: no spaces, lower-case, bounded. */
export function slug(s: string, max = 60): string {
  const out = s
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');
  return out.slice(0, max).replace(/-+$/, '') || 'unknown';
}

/** Text for one ticket line: no control or bidirectional characters (util/text.ts), white space collapsed. */
const oneLine = (s: string): string => shownOnOneLine(s).replace(/\s+/g, ' ').trim();

const GUIDISH = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A short, readable finding type: the last segment of `Policy:S3/BucketBlockPublicAccessDisabled`, `S3.8`, or the title for GUID-like ids. */
export function shortType(c: Pick<Case, 'type' | 'title'>): string {
  const last = c.type.split('/').filter(Boolean).pop() ?? c.type;
  if (GUIDISH.test(last) || last.length > 60) return oneLine(c.title).slice(0, 60) || 'finding';
  return oneLine(last);
}

/** `[HIGH] BucketBlockPublicAccessDisabled on logs-111122223333 (prod)`, capped at the policy length. */
export function summaryFor(c: Case, policy: TicketPolicy): string {
  const full = `[${c.severity.toUpperCase()}] ${shortType(c)} on ${oneLine(c.resourceName)} (${c.enrichment.environment})`;
  const max = policy.summaryMaxLength;
  return full.length <= max ? full : `${full.slice(0, max - 1)}…`;
}

export function priorityFor(severity: Severity, environment: Environment, policy: TicketPolicy): string | undefined {
  const row = policy.priorities[severity];
  return row[environment] ?? row.default;
}

/** The due date (`YYYY-MM-DD`, UTC) from the SLA table, counted from when the ticket is made. */
export function dueDateFor(severity: Severity, now: Date, policy: TicketPolicy): string {
  const days = policy.slaDays[severity];
  return new Date(now.getTime() + days * 86_400_000).toISOString().slice(0, 10);
}

export function labelsFor(c: Case, policy: TicketPolicy): string[] {
  const labels = [
    'closeloop',
    caseLabelOf(c.key),
    ...c.sources,
    slug(shortType(c)),
    `env-${c.enrichment.environment}`,
    ...policy.labels,
  ];
  return [...new Set(labels)];
}

/** The project for a case: the owner's routing when valid, else the policy default (else the sink's). */
export function projectFor(c: Case, policy: TicketPolicy): string | undefined {
  const routed = c.enrichment.jira?.project;
  if (routed !== undefined && PROJECT_KEY_PATTERN.test(routed)) return routed;
  return policy.defaultProject;
}

/** An AWS region's name (`us-east-1`, `us-gov-west-1`, `cn-north-1`, `us-isob-east-1`). */
const AWS_REGION = /^[a-z]{2}(?:-[a-z]+)+-\d{1,2}$/;

/** A console link for the resource, per provider (and per AWS service, from the ARN). */
export function consoleLink(c: Pick<Case, 'provider' | 'resourceId' | 'region' | 'account' | 'resourceName'>): string {
  const enc = encodeURIComponent;
  if (c.provider === 'azure') return `https://portal.azure.com/#@/resource${c.resourceId}`;
  if (c.provider === 'gcp') {
    const project = enc(c.account);
    const id = c.resourceId;
    if (id.startsWith('//storage.googleapis.com/')) {
      const bucket = id.split('/').pop() ?? c.resourceName;
      return `https://console.cloud.google.com/storage/browser/${enc(bucket)}?project=${project}`;
    }
    const fw = /\/global\/firewalls\/([^/]+)$/.exec(id);
    if (fw?.[1])
      return `https://console.cloud.google.com/net-security/firewall-manager/firewall-policies/details/${enc(c.resourceName)}?project=${project}`;
    const vm = /\/zones\/([^/]+)\/instances\/([^/]+)$/.exec(id);
    if (vm?.[1])
      return `https://console.cloud.google.com/compute/instancesDetail/zones/${enc(vm[1])}/instances/${enc(c.resourceName)}?project=${project}`;
    return `https://console.cloud.google.com/home/dashboard?project=${project}`;
  }
  const arn = /^arn:([^:]+):([^:]+):([^:]*):([^:]*):(.*)$/.exec(c.resourceId);
  if (!arn) return 'https://console.aws.amazon.com/';
  const [, , service, arnRegion, , rest = ''] = arn;
  const region = arnRegion || c.region || 'us-east-1';
  // The region becomes the link's host: one that is not a region's name (`evil.example#`, from a finding
  // anyone allowed to import one can write) would send the reader elsewhere. Such a link is the console's own.
  if (!AWS_REGION.test(region)) return `https://console.aws.amazon.com/go/view?arn=${enc(c.resourceId)}`;
  const regional = `https://${region}.console.aws.amazon.com`;
  switch (service) {
    case 's3':
      return `https://s3.console.aws.amazon.com/s3/buckets/${enc(rest.split('/')[0] ?? rest)}`;
    case 'iam': {
      const [kind, ...name] = rest.split('/');
      const last = name.pop() ?? '';
      if (kind === 'user') return `https://console.aws.amazon.com/iam/home#/users/${enc(last)}`;
      if (kind === 'role') return `https://console.aws.amazon.com/iam/home#/roles/${enc(last)}`;
      return 'https://console.aws.amazon.com/iam/home';
    }
    case 'ec2': {
      const [kind, id = ''] = rest.split('/');
      if (kind === 'instance') return `${regional}/ec2/home?region=${region}#InstanceDetails:instanceId=${enc(id)}`;
      if (kind === 'security-group') return `${regional}/ec2/home?region=${region}#SecurityGroup:groupId=${enc(id)}`;
      break;
    }
    case 'lambda': {
      const name = rest.split(':')[1] ?? '';
      return `${regional}/lambda/home?region=${region}#/functions/${enc(name)}`;
    }
  }
  // The console resolves any ARN to its page.
  return `https://console.aws.amazon.com/go/view?arn=${enc(c.resourceId)}`;
}

const accountNoun = { aws: 'AWS account', azure: 'Azure subscription', gcp: 'GCP project' } as const;

const row = (label: string, ...value: Array<string | ReturnType<typeof text>>): AdfParagraph =>
  p(strong(`${label}: `), ...value);

/**
 * Whether the owner is known well enough to assign the ticket to a person: not when enrichment could not
 * finish (a live lookup failed) and the owner came from a fallback (a registry entry, the team default),
 * not from the resource itself — its own tags, unread, might name someone else.
 */
export const ownerUncertain = (c: Case): boolean =>
  !c.enrichment.complete &&
  c.enrichment.provenance.owner.via !== 'tag' &&
  c.enrichment.provenance.owner.via !== 'lookup';

/**
 * What the source says about a finding, beyond the case's title: its explanation, what to do, and its own
 * page. Read from the case's stored finding when the ticket is made (the case keeps none of it).
 */
export interface FindingText {
  product: string;
  description: string;
  recommendation?: string | undefined;
  link?: string | undefined;
}

/** Consoles a source's own link may open; a finding naming another host (anyone importing one can) is shown, not linked. */
const SOURCE_HOSTS = /^(?:[a-z0-9-]+\.)*console\.aws\.amazon\.com$|^portal\.azure\.com$|^console\.cloud\.google\.com$/;

function sourceLink(product: string, href: string): ReturnType<typeof text> {
  let host = '';
  try {
    host = new URL(href).hostname;
  } catch {
    /* not a URL: shown as text */
  }
  return SOURCE_HOSTS.test(host) && href.startsWith('https://') ? link(`open in ${product}`, href) : code(href);
}

/**
 * A source's text, at most this many characters: the description field takes 32,767 in all (a create over it is
 * refused), and a source's explanation or recommendation has no bound of its own in some sources (SCC).
 */
const SOURCE_TEXT_MAX = 3000;

/** Paragraphs of a source's text (blank lines part them), at most `max` of them and SOURCE_TEXT_MAX characters. */
const paragraphs = (s: string, max = 8): AdfParagraph[] =>
  (s.length > SOURCE_TEXT_MAX ? `${s.slice(0, SOURCE_TEXT_MAX - 1)}…` : s)
    .split(/\n\s*\n/)
    .map((x) => oneLine(x))
    .filter((x) => x !== '')
    .slice(0, max)
    .map((x) => p(x));

/** The ADF description of a case's ticket (`finding`: what its source says, when it was read). */
export function describeCase(
  c: Case,
  policy: TicketPolicy,
  finding?: FindingText,
  /** Why the issue is not the owner's (see assignmentFor in context.ts). */
  assigneeNote?: string,
): AdfDoc {
  const e = c.enrichment;
  const said = finding?.description.trim() ?? '';
  const blocks: AdfBlock[] = [
    h(3, 'What was found'),
    p(oneLine(c.title)),
    // The source's explanation, unless it only repeats the title (GuardDuty's often does).
    ...(said !== '' && oneLine(said) !== oneLine(c.title) ? paragraphs(said) : []),
    row('Finding type', code(c.type)),
    row('Source', c.sources.join(', ')),
    ...(finding?.link ? [row('At the source', sourceLink(finding.product, finding.link))] : []),
    h(3, 'Where'),
    ul([
      row(accountNoun[c.provider], code(c.account)),
      row('Region', c.region ?? 'global'),
      row('Resource', code(c.resourceId)),
      row('Resource type', c.resourceType),
      row('Console', link('open in the console', consoleLink(c))),
    ]),
    h(3, 'Whose'),
    ul([
      row(
        'Owner',
        e.owner,
        // A failed lookup leaves the owner unknown, not absent: said as such (it is retried, and may name someone).
        e.unowned && e.complete
          ? ' (no owner found: triage)'
          : e.unowned
            ? ' (owner unknown: the resource’s own tags could not be read; triage, unassigned)'
            : ownerUncertain(c)
              ? ' (not confirmed: the resource’s own tags could not be read; triage, unassigned)'
              : '',
      ),
      row('How the owner was found', e.provenance.owner.detail),
      ...(assigneeNote ? [row('Assignee', assigneeNote)] : []),
      ...(e.warnings.length > 0 ? [row('Enrichment warnings', e.warnings.join('; '))] : []),
      ...(e.team ? [row('Team', e.team)] : []),
      ...(e.application ? [row('Application', e.application)] : []),
      row('Environment', e.environment, ` (${e.provenance.environment.detail})`),
    ]),
    h(3, 'How bad'),
    ul([
      row('Severity', c.severity),
      row('Priority', priorityFor(c.severity, e.environment, policy) ?? 'default'),
      row('First seen', c.firstSeen),
      row('Last seen', c.lastSeen),
      row('Occurrences', String(c.occurrences)),
    ]),
  ];
  if (c.compliance.controls.length + c.compliance.standards.length > 0) {
    blocks.push(
      h(3, 'Compliance'),
      ul([...c.compliance.controls.map((x) => `control ${x}`), ...c.compliance.standards.map((x) => `standard ${x}`)]),
    );
  }
  const todo = finding?.recommendation?.trim();
  if (todo) blocks.push(h(3, 'What to do'), ...paragraphs(todo));
  blocks.push(h(3, 'Remediation'), ...remediationBlocks(c));
  blocks.push(h(3, 'Exception'), p(c.exception ? exceptionLine(c.exception) : 'none'));
  if (c.evidenceHead || c.verification) {
    blocks.push(h(3, 'Evidence'));
    const items: AdfParagraph[] = [];
    if (c.verification) items.push(row('Verification', `${c.verification.verdict}: ${c.verification.reason}`));
    if (c.evidenceHead) items.push(row('Evidence record', code(c.evidenceHead)));
    blocks.push(ul(items));
  }
  blocks.push(p(text(`closeloop case ${c.key}`, { type: 'em' })));
  return doc(...blocks);
}

function remediationBlocks(c: Case): AdfBlock[] {
  const r = c.remediation;
  // An apply's state (applied, failed, rolled back) is of the action that applied, which decide may have
  // replaced since: the ticket names that one, not decide's current choice, as the case table does.
  const applying = applyingAction(r);
  const out: AdfBlock[] = [
    p(
      strong(applying ?? (r.action ? `${r.action}` : 'no automated action')),
      applying
        ? ` — state ${r.state} (decide now chooses ${r.action ?? 'no action'}, mode ${r.mode})`
        : ` — mode ${r.mode}, state ${r.state}`,
      br(),
      oneLine(r.reason) || '-',
    ),
  ];
  if (r.plan && r.plan.steps.length > 0) {
    out.push(p(strong('Plan: '), r.plan.summary || '-'), ol(r.plan.steps.map((s) => p(s.say, ' ', code(s.call.api)))));
  }
  if (r.requestIds && r.requestIds.length > 0) out.push(p(strong('Request ids: '), r.requestIds.join(', ')));
  if (r.error) out.push(p(strong('Error: '), r.error));
  return out;
}

const exceptionLine = (x: ExceptionRef): string =>
  `risk accepted under exception ${x.id} by ${x.owner} until ${x.expires}: ${oneLine(x.justification)}`;

/** Builds the create request for a case. */
export function draftForCase(
  c: Case,
  policy: TicketPolicy,
  opts: {
    now: Date;
    assigneeId: string | undefined;
    /** Why the issue is not the owner's, said in its description. */
    assigneeNote?: string | undefined;
    parentKey?: string | undefined;
    finding?: FindingText | undefined;
  },
): TicketDraft {
  const routing = c.enrichment.jira;
  const components = routing?.component ? [routing.component] : [];
  if (!opts.assigneeId) components.push(policy.triageComponent);
  return {
    caseKey: c.key,
    caseLabel: caseLabelOf(c.key),
    project: projectFor(c, policy),
    issueType: opts.parentKey ? policy.grouping.subtaskIssueType : (routing?.issueType ?? policy.defaultIssueType),
    summary: summaryFor(c, policy),
    description: describeCase(c, policy, opts.finding, opts.assigneeNote),
    labels: labelsFor(c, policy),
    priority: priorityFor(c.severity, c.enrichment.environment, policy),
    dueDate: dueDateFor(c.severity, opts.now, policy),
    assigneeId: opts.assigneeId,
    components: [...new Set(components)],
    parentKey: opts.parentKey,
  };
}

// ---- lifecycle comments -------------------------------------------------------------------------

/** What an owner change did to the issue's assignee (see runAssign in outbox.ts). */
export type OwnerChangeOutcome = 'reassigned' | 'unassigned' | 'refused' | 'kept' | 'not-ours';

const ASSIGNEE_AFTER: Record<OwnerChangeOutcome, string> = {
  reassigned: 'The issue is assigned to the new owner.',
  unassigned: 'The new owner has no Jira account closeloop can find: the issue is unassigned, for triage.',
  refused:
    'Jira will not assign the issue to the new owner in this project (no Assignable User permission): the issue is unassigned, for triage.',
  kept: 'A person assigned the issue since: its assignee is left as it is.',
  'not-ours':
    'closeloop did not assign this issue, so its assignee is left as it is: reassign it if it should follow the owner.',
};

/**
 * The case's owner is no longer the one the ticket named (a later event read the resource's own tags after
 * a failed lookup, or the registry changed), and what that did to the issue's assignee.
 */
export const ownerChangeComment = (
  c: Case,
  was: string,
  outcome: OwnerChangeOutcome,
  /** Why the issue is not the new owner's (see assignmentFor in context.ts): said instead of "assigned to the new owner". */
  assigneeNote?: string,
): AdfDoc =>
  doc(
    p(
      strong('Owner changed. '),
      `Now ${c.enrichment.owner} (${c.enrichment.provenance.owner.detail}); was ${was}. `,
      assigneeNote && (outcome === 'reassigned' || outcome === 'unassigned')
        ? `The issue is not the new owner's: ${assigneeNote}`
        : ASSIGNEE_AFTER[outcome],
    ),
  );

const ASSIGNEE_NOW: Record<OwnerChangeOutcome, string> = {
  ...ASSIGNEE_AFTER,
  reassigned: 'The issue is assigned to the owner.',
  unassigned: 'The owner has no Jira account closeloop can find: the issue is unassigned, for triage.',
  refused:
    'Jira will not assign the issue to the owner in this project (no Assignable User permission): the issue is unassigned, for triage.',
  'not-ours':
    "closeloop did not assign this issue, so its assignee is left as it is: reassign it if it should be the owner's.",
};

/**
 * The owner could not be looked up when the issue was assigned (the ticket sink refused the user search, and
 * the description says so); now they could, and this is what that did to the issue's assignee.
 */
export const ownerLookedUpComment = (c: Case, outcome: OwnerChangeOutcome, assigneeNote?: string): AdfDoc =>
  doc(
    p(
      strong('Owner looked up. '),
      `closeloop can look up Jira users again and looked up the owner ${c.enrichment.owner}. `,
      assigneeNote && (outcome === 'reassigned' || outcome === 'unassigned')
        ? `The issue is not the owner's: ${assigneeNote}`
        : ASSIGNEE_NOW[outcome],
    ),
  );

export const recurrenceComment = (c: Case, previous: number | undefined): AdfDoc =>
  doc(
    p(
      strong('Seen again. '),
      `Occurrences: ${c.occurrences}${previous !== undefined ? ` (was ${previous})` : ''}; last seen ${c.lastSeen}.`,
    ),
  );

export function remediationComment(
  c: Case,
  state: string,
  actor: string,
  policy: TicketPolicy,
  detail?: Record<string, unknown>,
): AdfDoc {
  if (state === 'approval-refused') {
    const why = typeof detail?.reason === 'string' ? detail.reason : 'not an approver for this environment';
    // Who may approve instead (absent from refusals recorded before 2026-12-08).
    const who = typeof detail?.mayApprove === 'string' ? `; ${oneLine(detail.mayApprove)}` : '';
    return doc(
      p(
        strong('Approval not accepted'),
        ` (from ${actor}): ${oneLine(why)}${who}. The fix still waits for an approver.`,
      ),
    );
  }
  const blocks: AdfBlock[] = [p(strong(`Remediation ${state}`), ` (by ${actor}).`)];
  if (state === 'awaiting-approval') {
    blocks.push(
      p(
        strong('Approval needed: '),
        'run ',
        // The short id: the key holds the finding's resource id (`|`, `$(…)`), and a person pastes this into a shell.
        code(`closeloop approve ${caseIdOf(c.key)} --by NAME`),
        ' or add the label ',
        code(policy.approvalLabel),
        ' to this ticket',
        ...(policy.approvalTransition ? [' or move it through ', code(policy.approvalTransition)] : []),
        '.',
      ),
    );
  }
  blocks.push(...remediationBlocks(c));
  return doc(...blocks);
}

export function resolutionComment(c: Case, detail: Record<string, unknown> | undefined): AdfDoc {
  const summary =
    (typeof detail?.evidenceSummary === 'string' ? detail.evidenceSummary : undefined) ??
    c.verification?.reason ??
    'verified by re-reading the resource';
  const hash = (typeof detail?.evidenceHash === 'string' ? detail.evidenceHash : undefined) ?? c.evidenceHead;
  const url = typeof detail?.evidenceUrl === 'string' ? detail.evidenceUrl : undefined;
  return doc(
    p(strong('Verified fixed. '), oneLine(summary)),
    ul([
      row('Verdict', c.verification?.verdict ?? 'verified'),
      row('Evidence record hash', code(hash ?? 'none')),
      ...(url ? [row('Evidence', link(url, url))] : []),
    ]),
  );
}

/**
 * Why the ticket is open again; when verification found it (a regression, a closure that does not hold),
 * the evidence it rests on: the verifier's summary and the record hash `closeloop evidence show` finds.
 */
export function reopenComment(reason: string, detail?: Record<string, unknown>): AdfDoc {
  const hash = typeof detail?.evidenceHash === 'string' ? detail.evidenceHash : undefined;
  const summary = typeof detail?.evidenceSummary === 'string' ? detail.evidenceSummary : undefined;
  const evidence = [
    ...(summary ? [row('Evidence', oneLine(summary))] : []),
    ...(hash ? [row('Evidence record hash', code(hash))] : []),
  ];
  return doc(p(strong('Reopened: '), oneLine(reason) || '-'), ...(evidence.length ? [ul(evidence)] : []));
}

export const exceptionComment = (x: ExceptionRef): AdfDoc =>
  doc(
    p(strong('Risk accepted. '), exceptionLine(x)),
    p('closeloop will reopen this ticket when the exception expires.'),
  );

/** The source muted the case's finding (Security Hub SUPPRESSED, SCC MUTED, Defender Dismissed or Exempt). */
export const mutedComment = (c: Case): AdfDoc =>
  doc(
    p(strong('Muted at the source. '), oneLine(c.statusReason)),
    p('closeloop plans no fix and asks for none while it stays muted; this ticket is labelled risk-accepted.'),
  );

/** The source no longer mutes the case's finding. */
export const unmutedComment = (c: Case): AdfDoc =>
  doc(p(strong('No longer muted at the source. '), `Now: ${c.status}, ${oneLine(c.statusReason)}.`));

export const exceptionExpiredReason = (x: ExceptionRef): string => `exception ${x.id} expired on ${x.expires}`;

/** Why a closed ticket reopens when the source reports its finding active again (decide's regression). */
export const regressionReason = (source: string): string =>
  `${source} reports the finding active again after its verified closure (regression)`;
