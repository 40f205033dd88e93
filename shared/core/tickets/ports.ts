/**
 * The ticket port: exactly the calls the ticket stage makes. Adapters: `JiraTicketSink`
 * (shared/adapters/tickets/jira.ts) and `LocalTicketSink` (shared/adapters/tickets/local.ts).
 *
 * Idempotency ("one ticket per case") is the core's job (tickets/ledger.ts), not the sink's: the sink
 * creates when told and finds by the derived label when asked, so a create costs one remote call.
 */
import { AdapterError, standingFor } from '../errors.js';
import type { TicketRef } from '../model/case.js';
import type { AdfDoc } from './adf.js';

/**
 * The sink refused the draft's assignee (Jira: the person has an account but not the Assignable User
 * permission in the team's project). The ticket is then created unassigned, for triage: never dropped.
 */
export class AssigneeRejectedError extends AdapterError {
  constructor(message: string) {
    super('invalid', message);
    this.name = 'AssigneeRejectedError';
  }
}

/**
 * The sink refused to search its users at all (Jira: 401 or 403 on the user search): not "no such user",
 * and not something a retry in a minute fixes. `why` says it in a ticket's words ("HTTP 403: …"); `fix`
 * says what an operator changes on closeloop's side. The core assigns by the fallback rule and says so.
 */
export class UserSearchRefusedError extends AdapterError {
  constructor(
    message: string,
    readonly why: string,
    readonly fix: string,
  ) {
    super('denied', message);
    this.name = 'UserSearchRefusedError';
  }
}

/**
 * A sink call that still failed after the sink's own retries, for a reason of the sink's (unreachable, a
 * 5xx, throttled): Jira is down or saturated, not refusing this request. Every other request would spend
 * the same retries, so the outbox lets them wait untried for a while (outbox.ts `SINK_PAUSE_MS`). Keeps the
 * cause's kind and Retry-After: it is retried like any transient or throttled error.
 */
export class SinkUnavailableError extends AdapterError {
  constructor(cause: AdapterError) {
    super(cause.kind, cause.message, standingFor(cause));
    this.name = 'SinkUnavailableError';
  }
}

/** Everything needed to create one ticket. Built by tickets/content.ts from the stored case. */
export interface TicketDraft {
  /** The case key (or a group key `group|…`), stored on the issue as an entity property. */
  caseKey: string;
  /** `closeloop-<hex>`: the label that finds the issue again when the ledger is lost. */
  caseLabel: string;
  /** Jira project key; undefined → the sink's default (`JIRA_PROJECT`). */
  project: string | undefined;
  issueType: string;
  summary: string;
  description: AdfDoc;
  labels: string[];
  priority: string | undefined;
  /** `YYYY-MM-DD` */
  dueDate: string | undefined;
  /** Jira account id; undefined → unassigned. */
  assigneeId: string | undefined;
  components: string[];
  /** Parent issue key when the ticket is a sub-task of a grouped parent. */
  parentKey: string | undefined;
}

/** Fields a grouped parent's refresh may change besides its description. */
export interface IssueFields {
  priority?: string | undefined;
  /** `YYYY-MM-DD` */
  dueDate?: string | undefined;
}

/** A comment's idempotency: the id of the request that posts it, and whether it may have been posted. */
export interface CommentOnce {
  id: string;
  maybeSent: boolean;
  /**
   * The issue's status as an earlier attempt of this request read it before moving the issue with a
   * transition the sink could not see the target of (see `recordStatus`); undefined when none did.
   */
  statusBefore?: string | undefined;
  /**
   * Keeps `status` with the request (the outbox entry) before that move is sent: a later attempt (the
   * outbox's next drain, a worker taking the entry over) is then given it as `statusBefore`, and can tell an
   * issue the lost move took elsewhere from one still waiting for it.
   */
  recordStatus?: ((status: string) => Promise<void>) | undefined;
}

export interface TicketSink {
  readonly kind: 'jira' | 'local';
  /** Creates the issue with the case key as an entity property and the case label. One remote call. */
  createTicket(draft: TicketDraft): Promise<TicketRef>;
  /** Finds the issue carrying `caseLabel` (validated `closeloop-<hex>`), for recovery after a lost ledger or crash. */
  findTicket(caseLabel: string): Promise<TicketRef | undefined>;
  /**
   * Adds a comment. With `once`, the comment carries `once.id`, and an attempt that may follow one Jira
   * made without answering (a retry after a timeout or a 5xx, here or by the outbox: `once.maybeSent`)
   * first looks for it on the issue: a comment is posted once however often its request is sent.
   */
  comment(ref: TicketRef, body: AdfDoc, once?: CommentOnce): Promise<void>;
  /**
   * Moves the issue with the first available transition whose name (or target status name) matches one
   * of `names`, case-insensitively, adding `comment` in the same call. Returns the transition used, or
   * undefined when none matched (the comment is then added on its own, once: see `comment`). With
   * `once.maybeSent`, an issue already in a status named in `names`, or no longer in `once.statusBefore`,
   * was moved by an earlier attempt of the same request: nothing is sent, and the status is returned.
   */
  transition(
    ref: TicketRef,
    names: readonly string[],
    comment: AdfDoc,
    once?: CommentOnce,
  ): Promise<string | undefined>;
  addLabels(ref: TicketRef, labels: readonly string[]): Promise<void>;
  /** Removes these labels where present (absent ones are no error). */
  removeLabels(ref: TicketRef, labels: readonly string[]): Promise<void>;
  /** Rewrites the description and, when given, the priority and due date, in one edit. */
  setDescription(ref: TicketRef, description: AdfDoc, fields?: IssueFields): Promise<void>;
  /**
   * The account id of the user with this e-mail, or undefined when nobody has it. Throws
   * UserSearchRefusedError when the sink refuses the search itself (closeloop's credentials or permissions).
   */
  findUser(email: string): Promise<string | undefined>;
  /** The issue's assignee now (account id), null when unassigned. */
  assigneeOf(ref: TicketRef): Promise<string | null>;
  /** Assigns the issue (null: unassigns it). Throws AssigneeRejectedError when the sink refuses that person. */
  assign(ref: TicketRef, accountId: string | null): Promise<void>;
}
