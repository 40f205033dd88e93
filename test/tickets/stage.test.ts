import { describe, expect, it } from 'vitest';
import { LocalTicketSink } from '../../shared/adapters/tickets/local.js';
import { AdapterError, errorMessage, isRetryable } from '../../shared/core/errors.js';
import { caseIdOf } from '../../shared/core/model/case.js';
import { CaseNotWrittenError } from '../../shared/core/pipeline/announced.js';
import { adfToText } from '../../shared/core/tickets/adf.js';
import { drainOutbox, SINK_PAUSE_MS } from '../../shared/core/tickets/outbox.js';
import { SinkUnavailableError, type TicketSink } from '../../shared/core/tickets/ports.js';
import { createTicketStage } from '../../shared/core/tickets/stage.js';
import { ONCE_MARKER_TTL_MS, OutboxEntrySchema } from '../../shared/core/tickets/store.js';
import { decided, decisionOf, jiraHarness, localHarness, makeCase, NO_GROUPING, putCase, readCase } from './helpers.js';

async function localTicket(h: ReturnType<typeof localHarness>, key: string) {
  if (!(h.sink instanceof LocalTicketSink)) throw new Error('local harness expected');
  const t = await h.sink.get(key);
  if (!t) throw new Error(`no local ticket ${key}`);
  return t;
}

/** A local harness and one case whose ticket is made (LOCAL-1). */
async function ticketedCase() {
  const h = localHarness();
  const c = makeCase();
  await putCase(h.store, c);
  await h.stage.handle(decided(c));
  return { h, c };
}

describe('ticket stage (local sink)', () => {
  it('creates exactly one ticket per case when each event is replayed three times concurrently', async () => {
    // Prepare
    const h = localHarness();
    const cases = Array.from({ length: 5 }, (_, i) => makeCase({ n: i }));
    for (const c of cases) await putCase(h.store, c);
    // Act: three deliveries of each event (different event ids: the ledger must hold, not the once-marker)
    await Promise.all(cases.flatMap((c) => [0, 1, 2].map(() => h.stage.handle(decided(c)))));
    // Assess
    const tickets = await h.store.list('local-tickets');
    expect(tickets).toHaveLength(5);
    const keys = new Set<string>();
    for (const c of cases) {
      const stored = await readCase(h.store, c.key);
      expect(stored.ticket?.key).toMatch(/^LOCAL-\d+$/);
      keys.add(stored.ticket?.key ?? '');
    }
    expect(keys.size).toBe(5);
    expect(await h.store.list('ticket-outbox')).toHaveLength(0);
  });

  it('creates no ticket when the decision does not want one', async () => {
    // Prepare
    const h = localHarness();
    const base = makeCase();
    const c = makeCase(
      {},
      { lastDecision: { ...decisionOf(base), ticket: { wanted: false, reason: 'sample finding' } } },
    );
    await putCase(h.store, c);
    // Act
    await h.stage.handle(decided(c));
    // Assess
    expect(await h.store.list('local-tickets')).toHaveLength(0);
    expect((await readCase(h.store, c.key)).ticket).toBeNull();
  });

  it('writes only the ticket section of the case when it records the ticket', async () => {
    // Prepare
    const h = localHarness();
    const c = makeCase();
    await putCase(h.store, c);
    // Act
    await h.stage.handle(decided(c));
    // Assess
    const { ticket, ...rest } = await readCase(h.store, c.key);
    const { ticket: before, ...restBefore } = c;
    expect(before).toBeNull();
    expect(rest).toEqual(restBefore);
    expect(ticket).toMatchObject({ key: 'LOCAL-1', sink: 'local', status: 'open', reportedOccurrences: 1 });
  });

  it('comments on a recurrence at most once per window and says the new count when it recurs', async () => {
    // Prepare
    const h = localHarness({ recurrence: { commentWindowMinutes: 60 } });
    const c = makeCase();
    await putCase(h.store, c);
    await h.stage.handle(decided(c));
    // Act: 5 recurrences inside the window, then one after it
    for (let i = 2; i <= 6; i++) {
      h.clock.advance(60_000);
      const stored = await readCase(h.store, c.key);
      await putCase(h.store, { ...stored, occurrences: i, lastSeen: h.clock.now().toISOString() });
      await h.stage.handle(decided(stored, { isNewCase: false, recurrence: true }));
    }
    const inWindow = (await localTicket(h, 'LOCAL-1')).comments.length;
    h.clock.advance(60 * 60_000);
    const stored = await readCase(h.store, c.key);
    await putCase(h.store, { ...stored, occurrences: 9, lastSeen: h.clock.now().toISOString() });
    await Promise.all([1, 2, 3].map(() => h.stage.handle(decided(stored, { isNewCase: false, recurrence: true }))));
    // Assess
    expect(inWindow).toBe(0);
    const comments = (await localTicket(h, 'LOCAL-1')).comments;
    expect(comments).toHaveLength(1);
    expect(comments[0]?.text).toContain('Occurrences: 9 (was 1)');
  });

  it('says once on the ticket who the owner is now when a later event finds the real owner, and not for a fallback', async () => {
    // Prepare: the ticket was made while the lookup failed (owner: the team default)
    const h = localHarness();
    const base = makeCase();
    const fallback = {
      ...base,
      enrichment: {
        ...base.enrichment,
        owner: 'payments-team@example.com',
        ownerEmail: 'payments-team@example.com',
        provenance: {
          ...base.enrichment.provenance,
          owner: {
            via: 'registry-team' as const,
            detail: 'owner is the default owner of team `payments` in the registry',
          },
        },
        warnings: ['live tag lookup failed for arn:aws:s3:::logs-111122223333-1: Rate exceeded'],
        complete: false,
      },
    };
    await putCase(h.store, fallback);
    await h.stage.handle(decided(fallback));
    const found = {
      ...(await readCase(h.store, base.key)),
      enrichment: {
        ...base.enrichment,
        provenance: {
          ...base.enrichment.provenance,
          owner: { via: 'lookup' as const, detail: 'owner from tag `owner` found by a live lookup of the resource' },
        },
      },
    };
    // Act: the real owner, delivered three times at once; then the lookup fails again (fallback); then the same owner
    await putCase(h.store, found);
    await Promise.all([1, 2, 3].map(() => h.stage.handle(decided(found, { isNewCase: false }))));
    await putCase(h.store, { ...(await readCase(h.store, base.key)), enrichment: fallback.enrichment });
    await h.stage.handle(decided(found, { isNewCase: false }));
    await putCase(h.store, { ...(await readCase(h.store, base.key)), enrichment: found.enrichment });
    await h.stage.handle(decided(found, { isNewCase: false }));
    // Assess: one comment; the issue, left unassigned for triage while the owner was unconfirmed, follows it
    const ticket = await localTicket(h, 'LOCAL-1');
    expect(ticket.comments).toHaveLength(1);
    expect(ticket.comments[0]?.text).toContain(
      'Owner changed. Now alice@example.com (owner from tag `owner` found by a live lookup of the resource); was payments-team@example.com. The issue is assigned to the new owner.',
    );
    expect(ticket.assignee).toBe('alice@example.com');
    expect((await readCase(h.store, base.key)).ticket).toMatchObject({
      reportedOwner: 'alice@example.com',
      assigneeId: 'alice@example.com',
    });
  });

  it("leaves a person's reassignment alone when the owner changes, and an issue closeloop did not assign", async () => {
    // Prepare: two tickets assigned to their owner by closeloop; a person reassigns the first; the second
    // is an issue closeloop found again (no assignee recorded)
    const h = localHarness();
    const [a, b] = [makeCase({ n: 1 }), makeCase({ n: 2 })];
    for (const c of [a, b]) {
      await putCase(h.store, c);
      await h.stage.handle(decided(c));
    }
    await h.sink.assign({ key: 'LOCAL-1', sink: 'local' }, 'carol@example.com');
    const stored = await readCase(h.store, b.key);
    await putCase(h.store, { ...stored, ticket: stored.ticket ? { ...stored.ticket, assigneeId: undefined } : null });
    // Act: both owners change
    for (const c of [a, b]) {
      const now = await readCase(h.store, c.key);
      const moved = {
        ...now,
        enrichment: { ...now.enrichment, owner: 'dave@example.com', ownerEmail: 'dave@example.com' },
      };
      await putCase(h.store, moved);
      await h.stage.handle(decided(moved, { isNewCase: false }));
    }
    // Assess
    const first = await localTicket(h, 'LOCAL-1');
    const second = await localTicket(h, 'LOCAL-2');
    expect(first.assignee).toBe('carol@example.com');
    expect(first.comments.at(-1)?.text).toContain('A person assigned the issue since: its assignee is left as it is.');
    expect(second.assignee).toBe(b.enrichment.ownerEmail);
    expect(second.comments.at(-1)?.text).toContain('closeloop did not assign this issue');
  });

  it('says nothing and reassigns nobody when the owner only changes the casing of its e-mail', async () => {
    // Prepare: a ticket assigned to its owner alice@example.com
    const h = localHarness();
    const c = makeCase();
    await putCase(h.store, c);
    await h.stage.handle(decided(c));
    const before = await localTicket(h, 'LOCAL-1');
    // Act: the owner tag now reads Alice@Example.com (the same mailbox)
    const now = await readCase(h.store, c.key);
    const recased = {
      ...now,
      enrichment: { ...now.enrichment, owner: 'Alice@Example.com', ownerEmail: 'Alice@Example.com' },
    };
    await putCase(h.store, recased);
    await h.stage.handle(decided(recased, { isNewCase: false }));
    // Assess: no owner-change comment, the same assignee, nothing queued
    const after = await localTicket(h, 'LOCAL-1');
    expect(after.comments.map((x) => x.text)).toEqual(before.comments.map((x) => x.text));
    expect(after.assignee).toBe('alice@example.com');
    expect(await h.store.list('ticket-outbox')).toEqual([]);
  });

  it('comments and labels risk-accepted once when an exception suppresses the case', async () => {
    // Prepare
    const { h, c } = await ticketedCase();
    const exception = {
      id: 'EXC-7',
      owner: 'ciso@example.com',
      justification: 'public website bucket',
      expires: '2026-12-31',
    };
    const stored = await readCase(h.store, c.key);
    const suppressed = {
      ...stored,
      status: 'suppressed' as const,
      exception,
      lastDecision: { ...decisionOf(stored), exception },
    };
    await putCase(h.store, suppressed);
    // Act: decided and exception events both say it (decide emits both)
    await h.stage.handle(decided(suppressed, { isNewCase: false }));
    await h.stage.handle({
      id: 'x1',
      type: 'case.exception',
      caseKey: c.key,
      at: suppressed.updatedAt,
      exceptionId: 'EXC-7',
      active: true,
    });
    // Assess
    const t = await localTicket(h, 'LOCAL-1');
    expect(t.labels).toContain('risk-accepted');
    expect(t.comments).toHaveLength(1);
    expect(t.comments[0]?.text).toContain('Risk accepted. risk accepted under exception EXC-7 by ciso@example.com');
  });

  it('keeps the once-marker of a ticket request long enough to outlast any redelivery, then lets it expire', async () => {
    // Prepare: an exception accepts the risk (a comment and a label, once per exception and expiry)
    const { h, c } = await ticketedCase();
    const exception = { id: 'EXC-8', owner: 'ciso@example.com', justification: 'public site', expires: '2026-12-31' };
    const stored = await readCase(h.store, c.key);
    await putCase(h.store, {
      ...stored,
      status: 'suppressed',
      exception,
      lastDecision: { ...decisionOf(stored), exception },
    });
    const event = {
      id: 'x8',
      type: 'case.exception',
      caseKey: c.key,
      at: c.updatedAt,
      exceptionId: 'EXC-8',
      active: true,
    };
    await h.stage.handle({ ...event, type: 'case.exception' });
    const markers = await h.store.list('ticket-once');
    // Act: the same event redelivered from a DLQ two weeks and more later, then the marker's time runs out
    h.clock.advance((ONCE_MARKER_TTL_MS * 2) / 3);
    await h.stage.handle({ ...event, type: 'case.exception' });
    const redelivered = await localTicket(h, 'LOCAL-1');
    h.clock.advance(ONCE_MARKER_TTL_MS / 3);
    // Assess: one comment for both deliveries; the markers are gone after their 30 days
    expect(ONCE_MARKER_TTL_MS).toBeGreaterThanOrEqual(15 * 86_400_000); // EventBridge's 24 h + a DLQ's 14 days
    expect(markers.length).toBeGreaterThan(0);
    expect(redelivered.comments).toHaveLength(1);
    expect(await h.store.list('ticket-once')).toEqual([]);
  });

  it('tells the ticket once when the source mutes the finding, and once when it no longer does', async () => {
    // Prepare: a ticketed case whose finding the source mutes (Security Hub SUPPRESSED, SCC MUTED)
    const { h, c } = await ticketedCase();
    const stored = await readCase(h.store, c.key);
    const muted = {
      ...stored,
      status: 'suppressed' as const,
      statusReason: 'muted at the source (mute MUTED): risk accepted there',
      muted: true,
      updatedAt: '2026-03-02T10:00:00.000Z',
    };
    await putCase(h.store, muted);
    // Act: the decision delivered twice (at least once), then the finding active again
    const mutedEvent = decided(muted, { isNewCase: false, statusChanged: true });
    await h.stage.handle(mutedEvent);
    await h.stage.handle(mutedEvent);
    const whileMuted = await localTicket(h, 'LOCAL-1');
    const unmuted = {
      ...(await readCase(h.store, c.key)),
      status: 'open' as const,
      statusReason: 'active again at the source (no longer muted)',
      muted: false,
      updatedAt: '2026-03-03T10:00:00.000Z',
    };
    await putCase(h.store, unmuted);
    await h.stage.handle(decided(unmuted, { isNewCase: false, statusChanged: true }));
    // Assess
    expect(whileMuted.labels).toContain('risk-accepted');
    expect(whileMuted.comments.map((x) => x.text)).toEqual([
      expect.stringContaining('Muted at the source. muted at the source (mute MUTED): risk accepted there'),
    ]);
    const after = await localTicket(h, 'LOCAL-1');
    expect(after.labels).not.toContain('risk-accepted');
    expect(after.comments).toHaveLength(2);
    expect(after.comments[1]?.text).toContain(
      'No longer muted at the source. Now: open, active again at the source (no longer muted).',
    );
  });

  it('reopens the ticket when the exception has expired', async () => {
    // Prepare
    const { h, c } = await ticketedCase();
    await h.stage.handle({ id: 'v1', type: 'case.verified', caseKey: c.key, at: c.updatedAt, verdict: 'verified' });
    await h.sink.addLabels({ key: 'LOCAL-1', sink: 'local' }, ['risk-accepted']);
    const expired = { id: 'EXC-7', owner: 'ciso@example.com', justification: 'temporary', expires: '2026-02-01' };
    const stored = await readCase(h.store, c.key);
    await putCase(h.store, { ...stored, lastDecision: { ...decisionOf(stored), exceptionExpired: expired } });
    // Act
    await h.stage.handle(decided(stored, { isNewCase: false }));
    // Assess
    const t = await localTicket(h, 'LOCAL-1');
    expect(t.status).toBe('Reopened');
    expect(t.comments.at(-1)?.text).toContain('Reopened: exception EXC-7 expired on 2026-02-01');
    expect(t.labels).not.toContain('risk-accepted');
    expect((await readCase(h.store, c.key)).ticket?.status).toBe('reopened');
  });

  it('tells the ticket again when an exception extended after it expired accepts the risk, and when it expires again', async () => {
    // Prepare: a ticketed case suppressed by EXC-7 (until 2026-02-01), which then expires
    const { h, c } = await ticketedCase();
    const until = (expires: string) => ({
      id: 'EXC-7',
      owner: 'ciso@example.com',
      justification: 'temporary',
      expires,
    });
    const suppress = async (expires: string) => {
      const stored = await readCase(h.store, c.key);
      const x = until(expires);
      const next = {
        ...stored,
        status: 'suppressed' as const,
        exception: x,
        lastDecision: { ...decisionOf(stored), exception: x, exceptionExpired: null },
      };
      await putCase(h.store, next);
      await h.stage.handle(decided(next, { isNewCase: false }));
    };
    const expire = async (expires: string) => {
      const stored = await readCase(h.store, c.key);
      const next = {
        ...stored,
        status: 'reopened' as const,
        exception: null,
        lastDecision: { ...decisionOf(stored), exceptionExpired: until(expires) },
      };
      await putCase(h.store, next);
      await h.stage.handle(decided(next, { isNewCase: false }));
    };
    await suppress('2026-02-01');
    await expire('2026-02-01');
    // Act: the owner extends EXC-7 to 2026-06-01 (the case is suppressed again), and that expires too
    await suppress('2026-06-01');
    const extended = await localTicket(h, 'LOCAL-1');
    const labelsWhileExtended = [...extended.labels];
    await expire('2026-06-01');
    // Assess: two acceptances and two expiries said, the label back while the extension held, gone after
    const t = await localTicket(h, 'LOCAL-1');
    const texts = t.comments.map((x) => x.text);
    expect(texts.filter((x) => x.includes('Risk accepted. risk accepted under exception EXC-7'))).toHaveLength(2);
    expect(texts.filter((x) => x.includes('exception EXC-7 expired on 2026-02-01'))).toHaveLength(1);
    expect(texts.filter((x) => x.includes('exception EXC-7 expired on 2026-06-01'))).toHaveLength(1);
    expect(labelsWhileExtended).toContain('risk-accepted');
    expect(t.labels).not.toContain('risk-accepted');
  });

  it('says once on the ticket that the risk is no longer accepted when an exception is revoked', async () => {
    // Prepare: a ticketed case, then suppressed by an exception (risk-accepted comment), then the exception revoked
    const { h, c } = await ticketedCase();
    await h.sink.addLabels({ key: 'LOCAL-1', sink: 'local' }, ['risk-accepted']);
    const lifted = { id: 'EXC-8', owner: 'ciso@example.com', justification: 'temporary', expires: '2027-02-01' };
    const stored = await readCase(h.store, c.key);
    const open = {
      ...stored,
      status: 'open' as const,
      lastDecision: { ...decisionOf(stored), exceptionLifted: lifted },
    };
    await putCase(h.store, open);
    // Act: delivered twice, the second time after the case was written again (a late delivery)
    await h.stage.handle(decided(open, { isNewCase: false }));
    const later = { ...open, updatedAt: '2026-12-01T09:00:00.000Z' };
    await putCase(h.store, later);
    await h.stage.handle(decided(later, { isNewCase: false }));
    // Assess
    const t = await localTicket(h, 'LOCAL-1');
    const said = t.comments.filter((x) => x.text.includes('EXC-8'));
    expect(said).toHaveLength(1);
    expect(said[0]?.text).toContain('exception EXC-8 no longer applies');
    expect(said[0]?.text).toContain('the risk is no longer accepted');
    expect(t.labels).not.toContain('risk-accepted');
  });

  it('reopens the closed ticket once, saying why, when the source reports a verified case active again', async () => {
    // Prepare
    const { h, c } = await ticketedCase();
    await h.stage.handle({ id: 'v1', type: 'case.verified', caseKey: c.key, at: c.updatedAt, verdict: 'verified' });
    const stored = await readCase(h.store, c.key);
    const regressed = {
      ...stored,
      status: 'reopened' as const,
      statusReason: 'active again at the source after verified closure (regression)',
      occurrences: 2,
      closedAt: null,
      reopenCount: 1,
      lastDecision: { ...decisionOf(stored), isNewCase: false, recurrence: true },
    };
    await putCase(h.store, regressed);
    const event = decided(regressed, {
      isNewCase: false,
      recurrence: true,
      statusChanged: true,
      detail: { source: 'securityhub' },
    });
    // Act: the decision delivered twice at once, then a later recurrence of the reopened case
    await Promise.all([h.stage.handle(event), h.stage.handle(event)]);
    h.clock.advance(24 * 3_600_000);
    await h.stage.handle(decided(regressed, { isNewCase: false, recurrence: true }));
    // Assess
    const t = await localTicket(h, 'LOCAL-1');
    expect(t.status).toBe('Reopened');
    const reopens = t.comments.filter((m) => m.text.includes('Reopened: '));
    expect(reopens).toHaveLength(1);
    expect(reopens[0]?.text).toContain(
      'Reopened: securityhub reports the finding active again after its verified closure (regression)',
    );
    expect((await readCase(h.store, c.key)).ticket?.status).toBe('reopened');
  });

  it('tells how to approve when remediation awaits approval', async () => {
    // Prepare
    const { h, c } = await ticketedCase();
    // Act
    const ev = {
      id: 'r1',
      type: 'case.remediation' as const,
      caseKey: c.key,
      at: c.updatedAt,
      state: 'awaiting-approval',
      actor: 'closeloop',
    };
    await h.stage.handle(ev);
    await h.stage.handle(ev); // the same event again: one comment
    // Assess
    const t = await localTicket(h, 'LOCAL-1');
    expect(t.comments).toHaveLength(1);
    // The short id a shell takes as it is (the key's `|` would be read as a pipe)
    expect(t.comments[0]?.text).toContain(
      `run closeloop approve ${caseIdOf(c.key)} --by NAME or add the label closeloop-approve to this ticket.`,
    );
    expect(t.comments[0]?.text).toContain('turn on all four Block Public Access flags on logs-111122223333-1');
  });

  it('moves the ticket to done with the evidence summary and hash when verified', async () => {
    // Prepare
    const { h, c } = await ticketedCase();
    // Act
    await h.stage.handle({
      id: 'v1',
      type: 'case.verified',
      caseKey: c.key,
      at: c.updatedAt,
      verdict: 'verified',
      detail: { evidenceHash: 'a'.repeat(64), evidenceSummary: 'all four Block Public Access flags are on' },
    });
    // Assess
    const t = await localTicket(h, 'LOCAL-1');
    expect(t.status).toBe('Done');
    const text = t.comments.at(-1)?.text ?? '';
    expect(text).toContain('Verified fixed. all four Block Public Access flags are on');
    expect(text).toContain('a'.repeat(64));
    expect((await readCase(h.store, c.key)).ticket?.status).toBe('done');
  });

  it.each([
    ['the verifier first', ['verified:1', 'reconcile:1']],
    ['the reconciliation first', ['reconcile:1', 'verified:1']],
  ])('closes the ticket once for one closure told twice, %s', async (_order, ids) => {
    // Prepare: a verified closure; its close comes from the verifier and from the sweep's reconciliation
    const { h, c } = await ticketedCase();
    const closedAt = new Date(Date.parse(c.updatedAt) + 3_600_000).toISOString();
    await putCase(h.store, { ...(await readCase(h.store, c.key)), status: 'verified', closedAt });
    // Act
    for (const id of ids)
      await h.stage.handle({
        id,
        type: 'case.verified',
        caseKey: c.key,
        at: closedAt,
        verdict: 'verified',
        detail: {
          evidenceSummary: 'all four flags on',
          ...(id.startsWith('reconcile') ? { reconciledClose: true } : {}),
        },
      });
    // Assess
    const t = await localTicket(h, 'LOCAL-1');
    expect(t.status).toBe('Done');
    expect(t.comments.filter((x) => x.text.includes('Verified fixed.'))).toHaveLength(1);
  });

  it('leaves the ticket open when a verified event arrives after the case reopened', async () => {
    // Prepare: the case regressed (reopened) before the earlier verification's event was delivered
    const { h, c } = await ticketedCase();
    await putCase(h.store, { ...(await readCase(h.store, c.key)), status: 'reopened' });
    // Act
    await h.stage.handle({ id: 'v-late', type: 'case.verified', caseKey: c.key, at: c.updatedAt, verdict: 'verified' });
    // Assess
    expect((await localTicket(h, 'LOCAL-1')).status).toBe('To Do');
    expect((await readCase(h.store, c.key)).ticket?.status).toBe('open');
  });

  it("leaves the closed ticket closed when the verifier's reopen arrives after a later verdict closed the case again", async () => {
    // Prepare: a regression's reopen (kept by a run that died before publishing it) comes with the next
    // sweep, after a new apply was verified and closed the case and the ticket again
    const { h, c } = await ticketedCase();
    await h.stage.handle({ id: 'v2', type: 'case.verified', caseKey: c.key, at: c.updatedAt, verdict: 'verified' });
    const verifiedAt = new Date(Date.parse(c.updatedAt) + 3 * 3_600_000).toISOString();
    await putCase(h.store, {
      ...(await readCase(h.store, c.key)),
      status: 'verified',
      closedAt: verifiedAt,
      reopenCount: 1,
      verification: {
        verdict: 'verified',
        at: verifiedAt,
        reason: 'all four flags on',
        attempts: 1,
        trigger: 'apply',
        upstream: [],
      },
    });
    const regression = {
      id: 'reopened-late',
      type: 'case.reopened' as const,
      caseKey: c.key,
      at: new Date(Date.parse(c.updatedAt) + 3_600_000).toISOString(),
      reason: 'regression: the fix no longer holds',
      actor: 'closeloop:verify',
    };
    // Act
    await h.stage.handle(regression);
    // Assess
    expect((await localTicket(h, 'LOCAL-1')).status).toBe('Done');
    expect((await readCase(h.store, c.key)).ticket?.status).toBe('done');
  });

  it('reopens with the reason when verification fails after the ticket was closed', async () => {
    // Prepare
    const { h, c } = await ticketedCase();
    await h.stage.handle({ id: 'v1', type: 'case.verified', caseKey: c.key, at: c.updatedAt, verdict: 'verified' });
    const stored = await readCase(h.store, c.key);
    await putCase(h.store, {
      ...stored,
      verification: {
        verdict: 'failed',
        at: c.updatedAt,
        reason: 'BlockPublicAcls is off again',
        attempts: 1,
        trigger: 'scheduled',
        upstream: [],
      },
    });
    // Act
    await h.stage.handle({ id: 'v2', type: 'case.verified', caseKey: c.key, at: c.updatedAt, verdict: 'failed' });
    // Assess
    const t = await localTicket(h, 'LOCAL-1');
    expect(t.status).toBe('Reopened');
    expect(t.comments.at(-1)?.text).toContain('verification failed: BlockPublicAcls is off again');
  });

  it('keeps creates over the budget in the outbox and sends them in order when drained', async () => {
    // Prepare
    const h = localHarness({
      budget: { createsPerMinute: 2 },
      ...NO_GROUPING,
    });
    const cases = Array.from({ length: 5 }, (_, i) => makeCase({ n: i }));
    for (const c of cases) await putCase(h.store, c);
    // Act
    for (const c of cases) await h.stage.handle(decided(c));
    const afterStage = (await h.store.list('local-tickets')).length;
    const sameMinute = await drainOutbox(h.deps);
    h.clock.advance(60_000);
    const nextMinute = await drainOutbox(h.deps);
    h.clock.advance(60_000);
    const last = await drainOutbox(h.deps);
    // Assess
    expect(afterStage).toBe(2);
    expect(sameMinute.sent).toBe(0);
    expect(nextMinute).toMatchObject({ sent: 2, remaining: 1 });
    expect(last).toMatchObject({ sent: 1, remaining: 0 });
    // How long the oldest request has waited (what the AWS alarm reads): a minute, then none is left
    expect(sameMinute.oldestWaitingMinutes).toBe(0);
    expect(nextMinute.oldestWaitingMinutes).toBe(1);
    expect(last.oldestWaitingMinutes).toBeNull();
    const order = [];
    for (const c of cases) order.push((await readCase(h.store, c.key)).ticket?.key);
    expect(order).toEqual(['LOCAL-1', 'LOCAL-2', 'LOCAL-3', 'LOCAL-4', 'LOCAL-5']);
  });

  it('waits a Retry-After longer than an hour as Jira asks, and dead-letters a request after three days of failures', async () => {
    // Prepare: Jira answers every create with 429 Retry-After: 2 h, then with 503.
    const h = localHarness(NO_GROUPING);
    let creates = 0;
    const failing: TicketSink = Object.assign(Object.create(h.sink), {
      createTicket: async () => {
        creates++;
        throw creates === 1
          ? new AdapterError('throttled', '429', { retryAfterSeconds: 7200 })
          : new AdapterError('transient', '503 Service Unavailable');
      },
      findTicket: async () => undefined,
    });
    const deps = { ...h.deps, sink: failing };
    const c = makeCase({ n: 1 });
    await putCase(h.store, c);
    const start = h.clock.now().getTime();
    // Act
    await createTicketStage(deps).handle(decided(c));
    const [entry] = (await h.store.list('ticket-outbox')).map((d) => d.value as { notBefore?: string });
    let hours = 0;
    while ((await h.store.list('ticket-outbox')).length > 0 && hours < 200) {
      h.clock.advance(3_600_000);
      hours++;
      await drainOutbox(deps);
    }
    // Assess
    expect(Date.parse(entry?.notBefore ?? '') - start).toBeGreaterThanOrEqual(7_200_000);
    expect(hours).toBeGreaterThanOrEqual(72);
    expect(hours).toBeLessThanOrEqual(73);
    const dead = (await h.store.list('deadletters')).map((d) => (d.value as { reason: string }).reason);
    expect(dead).toEqual([expect.stringMatching(/^create: gave up after \d+ attempts over 7\d h: /)]);
    expect((await readCase(h.store, c.key)).ticket).toBeNull();
  });

  it('lets one request find Jira down and the others wait untried for a minute, instead of each spending the retries', async () => {
    // Prepare: Jira unreachable: a create fails at once (never retried blind), the search for the issue it
    // may have made fails through the sink's own retries; five new cases
    const h = localHarness(NO_GROUPING);
    let calls = 0;
    const down: TicketSink = Object.assign(Object.create(h.sink), {
      createTicket: async () => {
        calls++;
        throw new AdapterError('transient', 'jira create issue: ECONNREFUSED');
      },
      findTicket: async () => {
        calls++;
        throw new SinkUnavailableError(new AdapterError('transient', 'jira search issues: ECONNREFUSED'));
      },
    });
    const deps = { ...h.deps, sink: down };
    const stage = createTicketStage(deps);
    const cases = Array.from({ length: 5 }, (_, i) => makeCase({ n: i }));
    for (const c of cases) await putCase(h.store, c);
    // Act: the five events and the drain of the same run, then a drain after the pause
    for (const c of cases) await stage.handle(decided(c));
    const sameRun = await drainOutbox(deps);
    const callsInRun = calls;
    h.clock.advance(SINK_PAUSE_MS);
    await drainOutbox(deps);
    // Assess: one request tried in the run (its create, then the search), one more after the pause (the
    // first waits out its own backoff); nothing lost, the others not counted as tried
    expect(callsInRun).toBe(2);
    expect(calls).toBe(4);
    expect(sameRun).toMatchObject({ sent: 0, remaining: 5, deadLettered: 0 });
    const entries = (await h.store.list('ticket-outbox')).map((d) => OutboxEntrySchema.parse(d.value));
    expect(entries).toHaveLength(5);
    expect(entries.filter((e) => e.attempts > 0)).toHaveLength(2);
  });

  it('makes no second issue when a create times out after Jira made it and its search lags behind', async () => {
    // Prepare: the first create reaches Jira but its answer is lost; Jira's search shows an issue only a
    // minute after it was made ("search and reconcile": writes show up after seconds to minutes).
    const h = localHarness(NO_GROUPING);
    if (!(h.sink instanceof LocalTicketSink)) throw new Error('local harness expected');
    const local = h.sink;
    const madeAt = new Map<string, number>();
    let creates = 0;
    const lagging: TicketSink = Object.assign(Object.create(local), {
      createTicket: async (draft: Parameters<TicketSink['createTicket']>[0]) => {
        creates++;
        const ref = await local.createTicket(draft);
        madeAt.set(draft.caseLabel, h.clock.now().getTime());
        if (creates === 1) throw new AdapterError('transient', 'ETIMEDOUT');
        return ref;
      },
      findTicket: async (label: string) => {
        const at = madeAt.get(label);
        return at !== undefined && h.clock.now().getTime() - at >= 60_000 ? local.findTicket(label) : undefined;
      },
    });
    const deps = { ...h.deps, sink: lagging };
    const c = makeCase({ n: 1 });
    await putCase(h.store, c);
    // Act: the event, then a drain every 10 seconds for 10 minutes
    await createTicketStage(deps).handle(decided(c));
    for (let i = 0; i < 60; i++) {
      h.clock.advance(10_000);
      await drainOutbox(deps);
    }
    // Assess
    expect((await h.store.list('local-tickets')).length).toBe(1);
    expect((await readCase(h.store, c.key)).ticket?.key).toBe('LOCAL-1');
  });

  it('persists a comment for a case whose create waits and sends it after the ticket exists', async () => {
    // Prepare
    const h = localHarness({ budget: { createsPerMinute: 1 } });
    const a = makeCase({ n: 1 });
    const b = makeCase({ n: 2 });
    await putCase(h.store, a);
    await putCase(h.store, b);
    await h.stage.handle(decided(a));
    await h.stage.handle(decided(b)); // deferred: budget spent
    // Act
    await h.stage.handle({
      id: 'r-b',
      type: 'case.remediation',
      caseKey: b.key,
      at: b.updatedAt,
      state: 'planned',
      actor: 'closeloop',
    });
    const pendingBefore = (await h.store.list('ticket-outbox')).length;
    h.clock.advance(60_000);
    await drainOutbox(h.deps);
    h.clock.advance(60_000);
    await drainOutbox(h.deps);
    // Assess
    expect(pendingBefore).toBe(2);
    const t = await localTicket(h, 'LOCAL-2');
    expect(t.caseKey).toBe(b.key);
    expect(adfToText(t.comments[0]?.body)).toContain('Remediation planned');
    expect(await h.store.list('ticket-outbox')).toHaveLength(0);
  });
});

describe('ticket stage and events published ahead of their case write', () => {
  it('neither acts on nor drops an event whose case is not written yet, and makes one ticket once it is', async () => {
    // Prepare: a new case's decision, announced at version 1 before the ingest's write has landed
    const h = await jiraHarness(NO_GROUPING);
    try {
      const c = makeCase();
      const event = { ...decided(c), caseVersion: 1 };
      // Act 1: the early delivery
      const early = await h.stage.handle(event).then(
        () => undefined,
        (e: unknown) => e,
      );
      const callsBefore = h.double.calls.length;
      const outboxBefore = await h.store.list('ticket-outbox');
      // Act 2: the write lands; the same event is delivered again, twice (at least once)
      await putCase(h.store, c);
      await h.stage.handle(event);
      await h.stage.handle(event);
      // Assess
      expect(early).toBeInstanceOf(CaseNotWrittenError);
      expect(isRetryable(early)).toBe(true);
      expect(errorMessage(early)).toBe(`case ${c.key} not written yet at version 1 (stored: none)`);
      expect(callsBefore).toBe(0);
      expect(outboxBefore).toEqual([]);
      expect(h.double.issues.size).toBe(1);
      expect((await readCase(h.store, c.key)).ticket?.key).toBe('SEC-1');
    } finally {
      await h.close();
    }
  });

  it('waits for a later write of an existing case, and leaves a missing case alone as before when the event names no version', async () => {
    // Prepare: a ticketed case at version 2; an event announcing version 3; another case never written
    const { h, c } = await ticketedCase();
    const stored = await h.store.get('cases', c.key);
    const ghost = makeCase({ n: 9 });
    // Act
    const early = await h.stage.handle({ ...decided(c), caseVersion: (stored?.version ?? 0) + 1 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    const unversioned = await h.stage.handle(decided(ghost));
    // Assess
    expect(stored?.version).toBe(2);
    expect(errorMessage(early)).toBe(`case ${c.key} not written yet at version 3 (stored: 2)`);
    expect(unversioned).toEqual([]);
    expect(await h.store.list('local-tickets')).toHaveLength(1);
  });
});
