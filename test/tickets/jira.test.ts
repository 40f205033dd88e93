import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { JiraTicketSink } from '../../shared/adapters/tickets/jira.js';
import { AdapterError, isThrottled } from '../../shared/core/errors.js';
import { type AdfDoc, adfToText, doc, p } from '../../shared/core/tickets/adf.js';
import { caseLabelOf } from '../../shared/core/tickets/content.js';
import { drainOutbox } from '../../shared/core/tickets/outbox.js';
import { SinkUnavailableError, UserSearchRefusedError } from '../../shared/core/tickets/ports.js';
import { createTicketStage } from '../../shared/core/tickets/stage.js';
import {
  decided,
  decisionOf,
  type Harness,
  jiraHarness,
  makeCase,
  NO_GROUPING,
  putCase,
  quietLog,
  readCase,
  verified,
} from './helpers.js';

let h: (Harness & { double: NonNullable<Harness['double']> }) | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const CREATE = /^POST \/rest\/api\/3\/issue$/;
const SEARCH = /^(GET|POST) \/rest\/api\/3\/search\/jql$/;
const USER_SEARCH = /^GET \/rest\/api\/3\/user\/search$/;
/** The harness's users: alice (the cases' owner) and the team's default assignee. */
const ALICE = '000000:00000000-0000-0000-0000-000000000001';
const DEFAULT_USERS = [
  { accountId: ALICE, emailAddress: 'alice@example.com', displayName: 'Alice' },
  {
    accountId: '000000:00000000-0000-0000-0000-000000000002',
    emailAddress: 'secops-lead@example.com',
    displayName: 'Lead',
  },
];

/** Runs the outbox an hour apart until it is empty (at most five times), as the scheduled drain does. */
async function drainHourly(h: Harness): Promise<void> {
  for (let i = 0; i < 5 && (await h.store.list('ticket-outbox')).length > 0; i++) {
    h.clock.advance(3_600_000);
    await drainOutbox(h.deps);
  }
}

/** SEC-1 moved once (by `transition`), the resolution said on it once, nothing dead-lettered or left waiting. */
async function expectResolvedOnce(
  h: Harness & { double: NonNullable<Harness['double']> },
  transition: string,
): Promise<void> {
  const issue = h.double.issues.get('SEC-1');
  expect(issue?.history).toEqual([transition]);
  expect((issue?.comments ?? []).filter((x) => adfToText(x.body).includes('Verified fixed'))).toHaveLength(1);
  expect(await h.store.list('deadletters')).toHaveLength(0);
  expect(await h.store.list('ticket-outbox')).toHaveLength(0);
}

/**
 * Jira stores the next comment without answering in time, then fails the next seven reads of the comment
 * list: the sink's retries run out and the outbox keeps the request.
 */
function commentStoredUnanswered(h: Harness & { double: NonNullable<Harness['double']> }): void {
  h.double.faults = [
    { kind: 'timeout', ratio: 1, match: /^POST .*\/comment$/, when: 'after', times: 1 },
    { kind: '503', ratio: 1, match: /^GET .*\/comment$/, times: 7 },
  ];
}

describe('JiraTicketSink through jira.js against the double', () => {
  it("lets an owner's cached Jira account expire once it is too old to be used, instead of keeping one per address forever", async () => {
    // Prepare
    h = await jiraHarness();
    const c = makeCase();
    await putCase(h.store, c);
    await h.stage.handle(decided(c));
    const cached = await h.store.list('ticket-users');
    // Act: a day on, the cache entry is no longer used (a new lookup is made)
    h.clock.advance(24 * 3_600_000);
    // Assess
    expect(cached).toHaveLength(1);
    expect(await h.store.list('ticket-users')).toEqual([]);
  });

  it('creates the issue with the case key as entity property, derived label, priority, due date, assignee and ADF description', async () => {
    // Prepare
    h = await jiraHarness();
    const c = makeCase({ severity: 'critical' });
    await putCase(h.store, c);
    // Act
    await h.stage.handle(decided(c));
    // Assess
    const issue = h.double.issues.get('SEC-1');
    expect(issue?.properties['closeloop.case']).toEqual({ caseKey: c.key, label: caseLabelOf(c.key) });
    expect(issue?.fields).toMatchObject({
      summary: '[CRITICAL] BucketBlockPublicAccessDisabled on logs-111122223333-1 (prod)',
      priority: { name: 'Highest' },
      duedate: '2026-03-02',
      assignee: { accountId: '000000:00000000-0000-0000-0000-000000000001' },
      issuetype: { name: 'Task' },
      components: [],
    });
    expect(issue?.fields.labels).toEqual(
      expect.arrayContaining([
        'closeloop',
        caseLabelOf(c.key),
        'guardduty',
        'bucketblockpublicaccessdisabled',
        'env-prod',
      ]),
    );
    expect(issue?.fields.description).toMatchObject({ type: 'doc', version: 1 });
    expect((await readCase(h.store, c.key)).ticket).toMatchObject({
      key: 'SEC-1',
      sink: 'jira',
      url: `${h.double.url}/browse/SEC-1`,
    });
    // one create and one user search: the case costs one call
    expect(h.double.count(CREATE)).toBe(1);
    expect(h.double.calls).toHaveLength(2);
  });

  it('looks each owner up once and falls back to the team default, else unassigned with the triage component', async () => {
    // Prepare
    h = await jiraHarness();
    const known = [1, 2, 3].map((n) => makeCase({ n }));
    const teamDefault = makeCase({ n: 4, owner: 'nobody@example.com' });
    const unknown = makeCase({ n: 5, owner: 'ghost@example.com' }, {});
    const unassigned = { ...unknown, enrichment: { ...unknown.enrichment, jira: { project: 'SEC' } } };
    for (const c of [...known, teamDefault, unassigned]) await putCase(h.store, c);
    // Act
    for (const c of [...known, teamDefault, unassigned]) await h.stage.handle(decided(c));
    // Assess
    expect(h.double.count(/user\/search/)).toBe(4); // alice (once for three cases), nobody, the team lead, ghost
    expect(h.double.issues.get('SEC-4')?.fields.assignee).toEqual({
      accountId: '000000:00000000-0000-0000-0000-000000000002',
    });
    expect(h.double.issues.get('SEC-5')?.fields.assignee).toBeUndefined();
    expect(h.double.issues.get('SEC-5')?.fields.components).toEqual([{ name: 'triage' }]);
  });

  it("says on the ticket when it goes to the team's default assignee or triage because the owner has no Jira account", async () => {
    // Prepare: one owner with no account, one owner tag that is a name and no address, one with neither
    // the owner nor the team's default assignee findable
    h = await jiraHarness();
    const noAccount = makeCase({ n: 1, owner: 'nobody@example.com' });
    const named = makeCase({ n: 2 }, {});
    const byName = { ...named, enrichment: { ...named.enrichment, owner: 'jdoe', ownerEmail: null } };
    const ghost = makeCase({ n: 3, owner: 'ghost@example.com' });
    const alone = { ...ghost, enrichment: { ...ghost.enrichment, jira: { project: 'SEC' } } };
    const owned = makeCase({ n: 4 });
    for (const c of [noAccount, byName, alone, owned]) await putCase(h.store, c);
    // Act
    for (const c of [noAccount, byName, alone, owned]) await h.stage.handle(decided(c));
    // Assess
    const description = (key: string) => adfToText(h?.double.issues.get(key)?.fields.description as AdfDoc);
    expect(h.double.issues.get('SEC-1')?.fields.assignee).toEqual({
      accountId: '000000:00000000-0000-0000-0000-000000000002',
    });
    expect(description('SEC-1')).toContain(
      "Assignee: closeloop cannot find a Jira account for the owner nobody@example.com: assigned to the team's default assignee secops-lead@example.com.",
    );
    expect(description('SEC-2')).toContain(
      "Assignee: the owner jdoe is not an e-mail address closeloop can look up in Jira: assigned to the team's default assignee secops-lead@example.com.",
    );
    expect(h.double.issues.get('SEC-3')?.fields.assignee).toBeUndefined();
    expect(description('SEC-3')).toContain(
      'Assignee: closeloop cannot find a Jira account for the owner ghost@example.com: unassigned, for triage.',
    );
    expect(description('SEC-4')).not.toContain('Assignee:');
  });

  it("says in the owner-change comment when the issue goes to the team's default assignee, not the new owner", async () => {
    // Prepare: an issue assigned to alice by closeloop
    h = await jiraHarness();
    const c = makeCase({ n: 1 });
    await putCase(h.store, c);
    await h.stage.handle(decided(c));
    // Act: the owner becomes someone without a Jira account
    const now = await readCase(h.store, c.key);
    const moved = {
      ...now,
      enrichment: { ...now.enrichment, owner: 'nobody@example.com', ownerEmail: 'nobody@example.com' },
    };
    await putCase(h.store, moved);
    await h.stage.handle(decided(moved, { isNewCase: false }));
    // Assess
    expect(h.double.issues.get('SEC-1')?.fields.assignee).toEqual({
      accountId: '000000:00000000-0000-0000-0000-000000000002',
    });
    const said = adfToText(h.double.issues.get('SEC-1')?.comments.at(-1)?.body as AdfDoc);
    expect(said).toContain(
      "The issue is not the new owner's: closeloop cannot find a Jira account for the owner nobody@example.com: assigned to the team's default assignee secops-lead@example.com.",
    );
    expect(said).not.toContain('assigned to the new owner');
  });

  it("assigns the issue to the owner, not the team's default assignee, when the owner's user search failed with 503s for a while", async () => {
    // Prepare: Jira answers the user search 503 through every one of the sink's eight tries, then recovers
    h = await jiraHarness();
    h.double.faults = [{ kind: '503', ratio: 1, match: USER_SEARCH, times: 8 }];
    const c = makeCase({ n: 1 });
    await putCase(h.store, c);
    // Act: the stage's attempt meets the outage; the scheduled drain sends the create once Jira answers
    await h.stage.handle(decided(c));
    const createdDuringOutage = h.double.issues.size;
    await drainHourly(h);
    // Assess: one issue, the owner's, nothing on it saying the owner has no account, nothing left over
    expect(createdDuringOutage).toBe(0);
    expect(h.double.issues.size).toBe(1);
    expect(h.double.count(CREATE)).toBe(1);
    const issue = h.double.issues.get('SEC-1');
    expect(issue?.fields.assignee).toEqual({ accountId: ALICE });
    expect(adfToText(issue?.fields.description as AdfDoc)).not.toContain('Assignee:');
    expect(issue?.comments).toEqual([]);
    expect((await readCase(h.store, c.key)).ticket).toMatchObject({ key: 'SEC-1', assigneeId: ALICE });
    expect(await h.store.list('deadletters')).toHaveLength(0);
    expect(await h.store.list('ticket-outbox')).toHaveLength(0);
  });

  it("waits what a throttled user search says in Retry-After, then assigns the issue to the owner, not the team's default assignee", async () => {
    // Prepare: Jira throttles the owner's user search once, asking for two minutes
    h = await jiraHarness();
    h.double.faults = [{ kind: '429', ratio: 1, match: USER_SEARCH, times: 1, retryAfter: 120 }];
    const c = makeCase({ n: 1 });
    await putCase(h.store, c);
    // Act: the stage's attempt is throttled; a drain a minute on, then one past the two minutes
    await h.stage.handle(decided(c));
    h.clock.advance(60_000);
    await drainOutbox(h.deps);
    const searchesTooSoon = h.double.count(USER_SEARCH, false);
    const issuesTooSoon = h.double.issues.size;
    h.clock.advance(61_000);
    await drainOutbox(h.deps);
    // Assess: nothing asked of Jira before its two minutes, then one issue, the owner's
    expect(searchesTooSoon).toBe(1);
    expect(issuesTooSoon).toBe(0);
    expect(h.double.issues.size).toBe(1);
    const issue = h.double.issues.get('SEC-1');
    expect(issue?.fields.assignee).toEqual({ accountId: ALICE });
    expect(adfToText(issue?.fields.description as AdfDoc)).not.toContain('Assignee:');
    expect(await h.store.list('ticket-outbox')).toHaveLength(0);
  });

  it("reassigns the issue to the new owner, said in one comment, when the new owner's user search failed with 503s for a while", async () => {
    // Prepare: an issue assigned to alice by closeloop; bob, the next owner, has an account
    const bob = { accountId: 'acc-bob', emailAddress: 'bob@example.com', displayName: 'Bob' };
    h = await jiraHarness({}, { users: [...DEFAULT_USERS, bob] });
    const c = makeCase({ n: 1 });
    await putCase(h.store, c);
    await h.stage.handle(decided(c));
    // Act: the owner becomes bob while Jira answers the user search 503 through the sink's tries; then it recovers
    h.double.faults = [{ kind: '503', ratio: 1, match: USER_SEARCH, times: 8 }];
    const now = await readCase(h.store, c.key);
    const moved = {
      ...now,
      enrichment: { ...now.enrichment, owner: 'bob@example.com', ownerEmail: 'bob@example.com' },
    };
    await putCase(h.store, moved);
    await h.stage.handle(decided(moved, { isNewCase: false }));
    const assigneeDuringOutage = h.double.issues.get('SEC-1')?.fields.assignee;
    await drainHourly(h);
    // Assess: still alice's during the outage (not the lead's), then bob's, with one comment saying so
    expect(assigneeDuringOutage).toEqual({ accountId: ALICE });
    expect(h.double.issues.size).toBe(1);
    const issue = h.double.issues.get('SEC-1');
    expect(issue?.fields.assignee).toEqual({ accountId: 'acc-bob' });
    const said = (issue?.comments ?? []).map((x) => adfToText(x.body as AdfDoc));
    expect(said.filter((x) => x.includes('Owner changed'))).toHaveLength(1);
    expect(said.at(-1)).toContain('The issue is assigned to the new owner.');
    expect(said.at(-1)).not.toContain('cannot find a Jira account');
    expect((await readCase(h.store, c.key)).ticket).toMatchObject({ assigneeId: 'acc-bob' });
    expect(await h.store.list('ticket-outbox')).toHaveLength(0);
  });

  it("never assigns another person the user search matched by a prefix when the owner's e-mail has no Jira account", async () => {
    // Prepare: `ops@example.com` (a mailing list) has no account; the one user the query matches shows
    // another e-mail. A user whose e-mail Jira hides is still taken when the query matches only them.
    h = await jiraHarness(
      {},
      {
        users: [
          { accountId: 'acc-ops-au', emailAddress: 'ops@example.com.au', displayName: 'Ops Australia' },
          { accountId: 'acc-lead', emailAddress: 'secops-lead@example.com', displayName: 'Lead' },
          { accountId: 'acc-hidden', displayName: 'hidden@example.com' },
        ],
      },
    );
    const list = makeCase({ n: 1, owner: 'ops@example.com' });
    const hidden = makeCase({ n: 2, owner: 'hidden@example.com' });
    for (const c of [list, hidden]) await putCase(h.store, c);
    // Act
    for (const c of [list, hidden]) await h.stage.handle(decided(c));
    // Assess: the list's case goes to the team's default assignee, not to the Australian ops user
    expect(h.double.issues.get('SEC-1')?.fields.assignee).toEqual({ accountId: 'acc-lead' });
    expect(h.double.issues.get('SEC-2')?.fields.assignee).toEqual({ accountId: 'acc-hidden' });
  });

  it('creates the issue unassigned for triage, not dead-lettered, when Jira refuses the owner as an assignee in the project', async () => {
    // Prepare: the owner has a Jira account, but not the Assignable User permission in SEC
    h = await jiraHarness(
      {},
      {
        users: [
          { accountId: 'acc-contractor', emailAddress: 'contractor@example.com', displayName: 'C', assignable: false },
        ],
      },
    );
    const c = makeCase({ n: 1, owner: 'contractor@example.com' });
    await putCase(h.store, c);
    // Act
    await h.stage.handle(decided(c));
    await drainOutbox(h.deps);
    // Assess
    const issue = h.double.issues.get('SEC-1');
    expect(issue?.fields.assignee).toBeUndefined();
    expect(issue?.fields.components).toEqual([{ name: 'triage' }]);
    expect((await readCase(h.store, c.key)).ticket).toMatchObject({ key: 'SEC-1', assigneeId: null });
    expect(await h.store.list('deadletters')).toHaveLength(0);
  });

  it('leaves the issue unassigned with the triage component and says why when a failed lookup left the owner a fallback', async () => {
    // Prepare: the live tag lookup was throttled; the owner is the team's default, a findable user
    h = await jiraHarness();
    const base = makeCase({ n: 1 });
    const why = 'live tag lookup failed for arn:aws:s3:::logs-111122223333-1: Rate exceeded';
    const c = {
      ...base,
      enrichment: {
        ...base.enrichment,
        provenance: {
          ...base.enrichment.provenance,
          owner: {
            via: 'registry-team' as const,
            detail: 'owner is the default owner of team `payments` in the registry',
          },
        },
        jira: { project: 'SEC', component: 'security', assigneeEmail: 'secops-lead@example.com' },
        warnings: [why],
        complete: false,
      },
    };
    await putCase(h.store, c);
    // Act
    await h.stage.handle(decided(c));
    // Assess
    const issue = h.double.issues.get('SEC-1');
    expect(issue?.fields.assignee).toBeUndefined();
    expect(issue?.fields.components).toEqual([{ name: 'security' }, { name: 'triage' }]);
    const description = adfToText(issue?.fields.description as AdfDoc);
    expect(description).toContain('not confirmed: the resource’s own tags could not be read');
    expect(description).toContain(`Enrichment warnings: ${why}`);
    expect(h.double.count(/user\/search/)).toBe(0);
  });

  it('reassigns the issue to the new owner when the owner changes, unless a person reassigned it', async () => {
    // Prepare: two issues assigned to alice by closeloop; a person moves the second to someone else
    h = await jiraHarness();
    const [a, b] = [makeCase({ n: 1 }), makeCase({ n: 2 })];
    for (const c of [a, b]) {
      await putCase(h.store, c);
      await h.stage.handle(decided(c));
    }
    const person = '000000:00000000-0000-0000-0000-0000000000ff';
    const second = h.double.issues.get('SEC-2');
    if (second) second.fields.assignee = { accountId: person };
    // Act: the owner of both becomes the security lead (a Jira user)
    for (const c of [a, b]) {
      const now = await readCase(h.store, c.key);
      const moved = {
        ...now,
        enrichment: { ...now.enrichment, owner: 'secops-lead@example.com', ownerEmail: 'secops-lead@example.com' },
      };
      await putCase(h.store, moved);
      await h.stage.handle(decided(moved, { isNewCase: false }));
    }
    // Assess
    expect(h.double.issues.get('SEC-1')?.fields.assignee).toEqual({
      accountId: '000000:00000000-0000-0000-0000-000000000002',
    });
    expect(h.double.issues.get('SEC-2')?.fields.assignee).toEqual({ accountId: person });
    const said = (key: string) => adfToText(h?.double.issues.get(key)?.comments.at(-1)?.body as AdfDoc);
    expect(said('SEC-1')).toContain('The issue is assigned to the new owner.');
    expect(said('SEC-2')).toContain('A person assigned the issue since');
    expect(h.double.calls.filter((x) => x.method === 'PUT' && x.path.endsWith('/assignee'))).toHaveLength(1);
  });

  it('unassigns the issue for triage and says so, not dead-lettered, when Jira refuses the new owner as assignee', async () => {
    // Prepare: an issue assigned to alice by closeloop; the new owner has an account Jira will not assign
    h = await jiraHarness(
      {},
      {
        users: [
          {
            accountId: '000000:00000000-0000-0000-0000-000000000001',
            emailAddress: 'alice@example.com',
            displayName: 'Alice',
          },
          { accountId: 'acc-contractor', emailAddress: 'contractor@example.com', displayName: 'C', assignable: false },
        ],
      },
    );
    const c = makeCase({ n: 1 });
    await putCase(h.store, c);
    await h.stage.handle(decided(c));
    // Act: the owner becomes the contractor
    const now = await readCase(h.store, c.key);
    const moved = {
      ...now,
      enrichment: { ...now.enrichment, owner: 'contractor@example.com', ownerEmail: 'contractor@example.com' },
    };
    await putCase(h.store, moved);
    await h.stage.handle(decided(moved, { isNewCase: false }));
    await drainOutbox(h.deps);
    // Assess: not left on the former owner, the change said with what was done, nothing for an operator
    const issue = h.double.issues.get('SEC-1');
    expect(await h.store.list('deadletters')).toHaveLength(0);
    expect(issue?.fields.assignee).toBeUndefined();
    const said = adfToText(issue?.comments.at(-1)?.body as AdfDoc);
    expect(said).toContain('Owner changed. Now contractor@example.com');
    expect(said).toContain('Jira will not assign');
    expect((await readCase(h.store, c.key)).ticket).toMatchObject({ assigneeId: null });
    expect(await h.store.list('ticket-outbox')).toHaveLength(0);
  });

  it('takes the risk-accepted label off and says why when the exception is revoked', async () => {
    // Prepare: an issue labelled risk-accepted, then its exception lifted
    h = await jiraHarness();
    const c = makeCase();
    await putCase(h.store, c);
    await h.stage.handle(decided(c));
    h.double.issues.get('SEC-1')?.fields.labels.push('risk-accepted');
    const stored = await readCase(h.store, c.key);
    const lifted = { id: 'EXC-9', owner: 'ciso@example.com', justification: 'temporary', expires: '2027-02-01' };
    const open = { ...stored, lastDecision: { ...decisionOf(stored), exceptionLifted: lifted } };
    await putCase(h.store, open);
    // Act
    await h.stage.handle(decided(open, { isNewCase: false }));
    // Assess
    const issue = h.double.issues.get('SEC-1');
    expect(issue?.fields.labels).not.toContain('risk-accepted');
    expect(adfToText(issue?.comments.at(-1)?.body as AdfDoc)).toContain('exception EXC-9 no longer applies');
  });

  it('creates one issue per case when events are replayed three times concurrently', async () => {
    // Prepare
    h = await jiraHarness({}, { faults: [{ kind: 'latency', ratio: 1, latencyMs: 5 }] });
    const cases = Array.from({ length: 8 }, (_, i) => makeCase({ n: i }));
    for (const c of cases) await putCase(h.store, c);
    // Act
    await Promise.all(cases.flatMap((c) => [1, 2, 3].map(() => h?.stage.handle(decided(c)))));
    // Assess
    expect(h.double.issues.size).toBe(8);
    for (const c of cases) expect(h.double.withLabel(caseLabelOf(c.key))).toHaveLength(1);
  });

  it('tickets every case exactly once when Jira answers 429 or 5xx to half of the calls', async () => {
    // Prepare: faults before and after processing (an "after" 5xx on create means the issue exists)
    h = await jiraHarness(NO_GROUPING, {
      seed: 7,
      faults: [
        { kind: '429', ratio: 0.25, retryAfter: 2 },
        { kind: '503', ratio: 0.2, when: 'after' },
        { kind: '500', ratio: 0.1 },
      ],
    });
    const cases = Array.from({ length: 40 }, (_, i) => makeCase({ n: i }));
    for (const c of cases) await putCase(h.store, c);
    // Act
    await Promise.all(cases.map((c) => h?.stage.handle(decided(c))));
    for (let i = 0; i < 10 && (await h.store.list('ticket-outbox')).length > 0; i++) {
      h.clock.advance(3_600_000);
      await drainOutbox(h.deps);
    }
    // Assess
    const failed = h.double.calls.filter((c) => c.status >= 400).length;
    expect(failed / h.double.calls.length).toBeGreaterThan(0.3);
    expect(h.double.issues.size).toBe(40);
    for (const c of cases) {
      expect(h.double.withLabel(caseLabelOf(c.key))).toHaveLength(1);
      expect((await readCase(h.store, c.key)).ticket?.key).toMatch(/^SEC-\d+$/);
    }
    expect(await h.store.list('ticket-outbox')).toHaveLength(0);
    expect(await h.store.list('deadletters')).toHaveLength(0);
    // Retry-After (2 s) was honoured
    expect(h.waits).toContain(2_000);
  });

  it('recovers from timeouts and connection resets without duplicates', async () => {
    // Prepare
    h = await jiraHarness(
      {},
      {
        seed: 3,
        faults: [
          { kind: 'timeout', ratio: 0.2, match: /issue$/, when: 'after' },
          { kind: 'reset', ratio: 0.2 },
        ],
      },
      { timeoutMs: 300 },
    );
    const cases = Array.from({ length: 10 }, (_, i) => makeCase({ n: i }));
    for (const c of cases) await putCase(h.store, c);
    // Act
    for (const c of cases) await h.stage.handle(decided(c));
    for (let i = 0; i < 10 && (await h.store.list('ticket-outbox')).length > 0; i++) {
      h.clock.advance(3_600_000);
      await drainOutbox(h.deps);
    }
    // Assess
    expect(h.double.calls.some((c) => c.fault === 'timeout')).toBe(true);
    expect(h.double.calls.some((c) => c.fault === 'reset')).toBe(true);
    expect(h.double.issues.size).toBe(10);
    for (const c of cases) expect(h.double.withLabel(caseLabelOf(c.key))).toHaveLength(1);
  });

  it('dead-letters a field error with Jira’s message and does not retry it', async () => {
    // Prepare: a project the double does not know
    h = await jiraHarness();
    const c = makeCase({ project: 'NOPE' });
    await putCase(h.store, c);
    // Act
    await h.stage.handle(decided(c));
    await drainOutbox(h.deps);
    // Assess
    expect(h.double.count(CREATE, false)).toBe(1);
    const letters = await h.store.list('deadletters');
    expect(letters).toHaveLength(1);
    expect(letters[0]?.value).toMatchObject({
      stage: 'tickets',
      caseKey: c.key,
      reason: expect.stringContaining('project: valid project is required'),
    });
    expect(await h.store.list('ticket-outbox')).toHaveLength(0);
  });

  it('recovers the existing issue through the label search when the ledger is lost', async () => {
    // Prepare
    h = await jiraHarness();
    const c = makeCase();
    await putCase(h.store, c);
    await h.stage.handle(decided(c));
    // the ledger and the case's ticket are lost (a new table, a restore), the issue is still in Jira
    for (const d of await h.store.list('ticket-ledger')) await h.store.delete('ticket-ledger', d.id);
    await putCase(h.store, { ...(await readCase(h.store, c.key)), ticket: null });
    // Act: the case comes again (not new for the pipeline)
    await h.stage.handle(decided(c, { isNewCase: false, recurrence: true }));
    // Assess
    expect(h.double.issues.size).toBe(1);
    expect(h.double.count(SEARCH)).toBe(1);
    expect((await readCase(h.store, c.key)).ticket?.key).toBe('SEC-1');
  });

  it('recovers a crashed claim after the lease by searching first', async () => {
    // Prepare: a claim taken and never finished (the worker died after creating the issue)
    h = await jiraHarness({ claimLeaseSeconds: 60 });
    const c = makeCase();
    await putCase(h.store, c);
    await h.stage.handle(decided(c));
    const [ledger] = await h.store.list('ticket-ledger');
    await h.store.put('ticket-ledger', ledger?.id ?? '', {
      key: c.key,
      label: caseLabelOf(c.key),
      state: 'claimed',
      claimId: 'crashed',
      claimedAt: h.clock.now().toISOString(),
    });
    await putCase(h.store, { ...(await readCase(h.store, c.key)), ticket: null });
    // Act: inside the lease the request waits; after it, it is taken over
    await h.stage.handle(decided(c, { isNewCase: true }));
    const during = (await readCase(h.store, c.key)).ticket;
    h.clock.advance(61_000);
    await drainOutbox(h.deps);
    // Assess
    expect(during).toBeNull();
    expect(h.double.issues.size).toBe(1);
    expect((await readCase(h.store, c.key)).ticket?.key).toBe('SEC-1');
  }, 20_000);

  it('never splices finding text into JQL, even a finding id built to inject', async () => {
    // Prepare
    h = await jiraHarness();
    const evil = '" OR project = SEC OR summary ~ "';
    const c = makeCase({ bucket: `x${evil}` }, {});
    const hostile = { ...c, key: `aws|${evil}|${evil}`, findingKeys: [evil], title: evil };
    await putCase(h.store, hostile);
    await h.stage.handle(decided(hostile));
    for (const d of await h.store.list('ticket-ledger')) await h.store.delete('ticket-ledger', d.id);
    await putCase(h.store, { ...(await readCase(h.store, hostile.key)), ticket: null });
    // Act
    await h.stage.handle(decided(hostile, { isNewCase: false }));
    // Assess
    expect(h.double.jqls).toEqual([`labels = "${caseLabelOf(hostile.key)}" ORDER BY created ASC`]);
    expect(h.double.jqls.join()).not.toContain('OR project');
    expect(h.double.issues.size).toBe(1);
  });

  it('discovers the done and reopen transitions by name and comments in the same call', async () => {
    // Prepare
    h = await jiraHarness();
    const c = makeCase();
    await putCase(h.store, c);
    await h.stage.handle(decided(c));
    h.double.setStatus('SEC-1', 'In Progress');
    // Act
    await h.stage.handle(verified(c));
    const afterDone = h.double.issues.get('SEC-1')?.fields.status.name;
    await h.stage.handle({
      id: 'r',
      type: 'case.reopened',
      caseKey: c.key,
      at: c.updatedAt,
      reason: 'regression: the bucket is public again',
      actor: 'closeloop',
    });
    // Assess
    const issue = h.double.issues.get('SEC-1');
    expect(afterDone).toBe('Done');
    expect(issue?.history).toEqual(['Done', 'Reopen']);
    expect(issue?.fields.status.name).toBe('Reopened');
    expect(JSON.stringify(issue?.comments)).toContain('b'.repeat(64));
    expect(JSON.stringify(issue?.comments)).toContain('regression: the bucket is public again');
    expect(h.double.count(/\/comment$/)).toBe(0); // comments travelled with the transitions
  });

  it('posts a comment once when Jira made it but the answer timed out, on the retry and on the next drain', async () => {
    // Prepare: a ticketed case; Jira stores the next comment without answering in time, then fails the
    // next seven reads of the comment list (the sink's retries run out: the outbox keeps the request)
    h = await jiraHarness({}, {}, { timeoutMs: 300 });
    const c = makeCase();
    await putCase(h.store, c);
    await h.stage.handle(decided(c));
    commentStoredUnanswered(h);
    // Act
    await h.stage.handle({
      id: 'r1',
      type: 'case.remediation',
      caseKey: c.key,
      at: c.updatedAt,
      state: 'awaiting-approval',
      actor: 'closeloop',
    });
    const keptForTheDrain = (await h.store.list('ticket-outbox')).length;
    await h.stage.handle({
      id: 'r2',
      type: 'case.remediation',
      caseKey: c.key,
      at: c.updatedAt,
      state: 'approved',
      actor: 'jira:alice',
    });
    await drainHourly(h);
    // Assess: each remediation state said once, in order
    const texts = (h.double.issues.get('SEC-1')?.comments ?? []).map((x) => adfToText(x.body));
    expect(h.double.calls.filter((x) => x.fault === 'timeout')).toHaveLength(1);
    expect(texts.filter((t) => t.includes('Remediation awaiting-approval'))).toHaveLength(1);
    expect(texts.filter((t) => t.includes('Remediation approved'))).toHaveLength(1);
    expect(texts).toHaveLength(2);
    expect(texts[0]).toContain('Remediation awaiting-approval');
    expect(keptForTheDrain).toBe(1); // the first comment's request went through the outbox's retry
    expect(h.double.count(/^GET .*\/comment$/, false)).toBeGreaterThanOrEqual(8);
    expect(await h.store.list('ticket-outbox')).toHaveLength(0);
  });

  it('closes the issue once, without a dead letter, when Jira moved it but the answer timed out', async () => {
    // Prepare: a ticketed case; Jira applies the next transition and never answers in time
    h = await jiraHarness({}, {}, { timeoutMs: 300 });
    const c = makeCase();
    await putCase(h.store, c);
    await h.stage.handle(decided(c));
    h.double.faults = [{ kind: 'timeout', ratio: 1, match: /^POST .*\/transitions$/, when: 'after', times: 1 }];
    // Act
    await h.stage.handle(verified(c));
    await drainHourly(h);
    // Assess: moved once, the resolution said once, nothing left for an operator
    const issue = h.double.issues.get('SEC-1');
    expect(h.double.calls.filter((x) => x.fault === 'timeout')).toHaveLength(1);
    expect(issue?.history).toEqual(['Done']);
    expect((issue?.comments ?? []).filter((x) => adfToText(x.body).includes('Verified fixed'))).toHaveLength(1);
    expect(await h.store.list('deadletters')).toHaveLength(0);
    expect(await h.store.list('ticket-outbox')).toHaveLength(0);
  });

  it('applies a transition whose target Jira does not name once, when it moved the issue but the answer timed out and the new status offers it again', async () => {
    // Prepare: a workflow where `Triage` is offered from To Do and again from In Progress, its target, and
    // transitions listed without their `to`; Jira applies the move and never answers in time
    const triage = { id: '51', name: 'Triage', to: 'In Progress' as const };
    const j = await jiraHarness(
      {},
      { transitionTargets: false, workflow: { 'To Do': [triage], 'In Progress': [triage] } },
      { timeoutMs: 300 },
    );
    h = j;
    const c = makeCase();
    await putCase(j.store, c);
    await j.stage.handle(decided(c));
    j.double.faults = [{ kind: 'timeout', ratio: 1, match: /^POST .*\/transitions$/, when: 'after', times: 1 }];
    const ref = { key: 'SEC-1', url: `${j.double.url}/browse/SEC-1`, sink: 'jira' as const };
    // Act
    const moved = await j.jira.transition(ref, ['Triage'], doc(p('triaged by closeloop')));
    // Assess: moved once, its comment once (the retry saw the status change, not the still-offered move)
    const issue = j.double.issues.get('SEC-1');
    expect(moved).toBe('Triage');
    expect(j.double.calls.filter((x) => x.fault === 'timeout')).toHaveLength(1);
    expect(issue?.history).toEqual(['Triage']);
    expect((issue?.comments ?? []).filter((x) => adfToText(x.body).includes('triaged by closeloop'))).toHaveLength(1);
  });

  it('applies a transition whose target Jira does not name once, when it moved the issue and the sink ran out of retries before it could tell', async () => {
    // Prepare: a workflow whose `Resolve Issue` leads to Done and is offered from every status (a global
    // transition), listed without its `to`; Jira applies the move without answering in time, then fails the
    // next seven reads of the issue's status after the one before the move (the outbox keeps the request)
    const resolve = { id: '61', name: 'Resolve Issue', to: 'Done' as const };
    const j = await jiraHarness(
      { transitions: { done: ['Resolve Issue'], reopen: ['Reopen'] } },
      { transitionTargets: false, workflow: { 'To Do': [resolve], Done: [resolve] } },
      { timeoutMs: 300 },
    );
    h = j;
    const c = makeCase();
    await putCase(j.store, c);
    await j.stage.handle(decided(c));
    j.double.faults = [
      { kind: 'timeout', ratio: 1, match: /^POST .*\/transitions$/, when: 'after', times: 1 },
      { kind: '503', ratio: 1, match: /^GET \/rest\/api\/3\/issue\/SEC-1$/, skip: 1, times: 7 },
    ];
    // Act
    await j.stage.handle(verified(c));
    const keptForTheDrain = (await j.store.list('ticket-outbox')).length;
    await drainHourly(j);
    // Assess: moved once, the resolution said once, nothing left over
    expect(keptForTheDrain).toBe(1);
    await expectResolvedOnce(j, 'Resolve Issue');
  });

  it('applies a transition whose target Jira does not name once, when the worker that moved the issue died before it could tell', async () => {
    // Prepare: the same global `Resolve Issue`, listed without its `to`; the first worker's move reaches Jira,
    // then its process dies (the call never returns) and leaves the request `sending`
    const resolve = { id: '61', name: 'Resolve Issue', to: 'Done' as const };
    const j = await jiraHarness(
      { transitions: { done: ['Resolve Issue'], reopen: ['Reopen'] } },
      { transitionTargets: false, workflow: { 'To Do': [resolve], Done: [resolve] } },
    );
    h = j;
    const c = makeCase();
    await putCase(j.store, c);
    await j.stage.handle(decided(c));
    const dying: JiraTicketSink = Object.create(j.jira, {
      transition: {
        value: async (...args: Parameters<JiraTicketSink['transition']>) => {
          await j.jira.transition(...args);
          return new Promise<never>(() => {});
        },
      },
    });
    void createTicketStage({ ...j.deps, sink: dying }).handle(verified(c));
    await vi.waitFor(() => expect(j.double.issues.get('SEC-1')?.history).toHaveLength(1));
    // Act: the next run drains once the send lease ran out
    j.clock.advance(3 * 60_000);
    await drainOutbox(j.deps);
    // Assess: moved once, the resolution said once, nothing left over
    await expectResolvedOnce(j, 'Resolve Issue');
  });

  it('says the resolution once when Jira moved the issue but the sink ran out of retries before it could tell', async () => {
    // Prepare: a ticketed case; Jira applies the next transition without answering in time, then fails the
    // next seven reads of the issue's status (the sink's retries run out: the outbox keeps the request)
    h = await jiraHarness({}, {}, { timeoutMs: 300 });
    const c = makeCase();
    await putCase(h.store, c);
    await h.stage.handle(decided(c));
    h.double.faults = [
      { kind: 'timeout', ratio: 1, match: /^POST .*\/transitions$/, when: 'after', times: 1 },
      { kind: '503', ratio: 1, match: /^GET \/rest\/api\/3\/issue\/SEC-1$/, times: 7 },
    ];
    // Act
    await h.stage.handle(verified(c));
    const keptForTheDrain = (await h.store.list('ticket-outbox')).length;
    await drainHourly(h);
    // Assess: moved once, the resolution said once (no fallback comment after the move), nothing left over
    expect(keptForTheDrain).toBe(1);
    await expectResolvedOnce(h, 'Done');
  });

  it('posts the comment of a transition that does not apply once, when Jira stored it but the answer timed out', async () => {
    // Prepare: a ticketed case whose issue is open, in a workflow where only `Reopen` reopens; Jira stores
    // the reopen's comment (no transition applies) without answering in time, then fails the next seven
    // reads of the comment list (the sink's retries run out: the outbox keeps the request)
    h = await jiraHarness({ transitions: { done: ['Done'], reopen: ['Reopen'] } }, {}, { timeoutMs: 300 });
    const c = makeCase();
    await putCase(h.store, c);
    await h.stage.handle(decided(c));
    commentStoredUnanswered(h);
    // Act
    await h.stage.handle({
      id: 'r',
      type: 'case.reopened',
      caseKey: c.key,
      at: c.updatedAt,
      reason: 'regression: the bucket is public again',
      actor: 'closeloop',
    });
    const keptForTheDrain = (await h.store.list('ticket-outbox')).length;
    await drainHourly(h);
    // Assess: not moved, the reason said once, nothing left over
    const issue = h.double.issues.get('SEC-1');
    const texts = (issue?.comments ?? []).map((x) => adfToText(x.body));
    expect(texts.filter((t) => t.includes('regression: the bucket is public again'))).toHaveLength(1);
    expect(issue?.history).toEqual([]);
    expect(keptForTheDrain).toBe(1);
    expect(await h.store.list('deadletters')).toHaveLength(0);
    expect(await h.store.list('ticket-outbox')).toHaveLength(0);
  });

  it('retries what Jira refused for the moment (408, 425) and waits what a 503 says in Retry-After', async () => {
    // Prepare: a ticketed issue; its next edits meet a proxy's 408, a 425, then a 503 asking for 3 s
    const j = await jiraHarness();
    h = j;
    const c = makeCase();
    await putCase(j.store, c);
    await j.stage.handle(decided(c));
    const EDIT = /^PUT \/rest\/api\/3\/issue\/SEC-1$/;
    j.double.faults = [
      { kind: '408', ratio: 1, match: EDIT, times: 1 },
      { kind: '425', ratio: 1, match: EDIT, times: 1 },
      { kind: '503', ratio: 1, match: EDIT, times: 1, retryAfter: 3 },
    ];
    const waited = j.waits.length;
    // Act
    await j.jira.addLabels({ key: 'SEC-1', url: `${j.double.url}/browse/SEC-1`, sink: 'jira' }, ['checked']);
    // Assess: labelled on the fourth try, after the wait the 503 asked for
    expect(j.double.issues.get('SEC-1')?.fields.labels).toContain('checked');
    expect(j.double.count(EDIT, false)).toBe(4);
    expect(j.waits.slice(waited)).toHaveLength(3);
    expect(j.waits.at(-1)).toBe(3_000);
  });

  it("gives up one call's retrying after its time budget when Jira throttles every answer, for the outbox to go on", async () => {
    // Prepare: Jira asks for 20 s on every search; a sink whose clock moves with its waits (none is real)
    const j = await jiraHarness();
    h = j;
    j.double.faults = [{ kind: '429', ratio: 1, match: SEARCH, retryAfter: 20 }];
    let now = Date.parse('2026-11-18T10:00:00Z');
    const waits: number[] = [];
    const sink = new JiraTicketSink({
      config: {
        baseUrl: j.double.url,
        auth: { kind: 'basic', email: 'closeloop@example.com', apiToken: 'test-token-0000' },
        project: 'SEC',
        timeoutMs: 2_000,
      },
      retry: { now: () => now },
      sleep: async (ms) => {
        waits.push(ms);
        now += ms;
      },
    });
    // Act
    const error = await sink.findTicket(caseLabelOf('aws:111122223333:acme-logs')).catch((e: unknown) => e);
    // Assess: throttled, with Jira's wait on it (the outbox keeps the request that long); 45 s at most spent
    expect(isThrottled(error)).toBe(true);
    expect(error).toMatchObject({ retryAfterSeconds: 20 });
    expect(waits.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(45_000);
    expect(j.double.count(SEARCH, false)).toBe(waits.length + 1);
  });

  it('leaves a create Jira keeps throttling to the outbox after its time budget, not waiting it out in the function', async () => {
    // Prepare: Jira asks for 20 s on every create; twenty attempts allowed; the clock moves with the waits
    const j = await jiraHarness({ retry: { maxAttempts: 20, baseDelayMs: 10, maxDelayMs: 30_000 } });
    h = j;
    j.double.faults = [{ kind: '429', ratio: 1, match: CREATE, retryAfter: 20 }];
    const waits: number[] = [];
    const stage = createTicketStage({
      ...j.deps,
      sleep: async (ms) => {
        waits.push(ms);
        j.clock.advance(ms);
      },
    });
    const c = makeCase();
    await putCase(j.store, c);
    // Act
    await stage.handle(decided(c));
    // Assess: 45 s of waiting at most, then the request waits in the outbox for Jira's 20 s
    expect(waits.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(45_000);
    expect(j.double.count(CREATE, false)).toBe(waits.length + 1);
    expect(await j.store.list('ticket-outbox')).toHaveLength(1);
    expect(j.double.issues.size).toBe(0);
  });

  it('makes no second issue, comment or move when Jira did each and then reset the connection', async () => {
    // Prepare: Jira processes the first create, comment and transition, then drops the connection unanswered
    h = await jiraHarness();
    h.double.faults = [
      { kind: 'reset', ratio: 1, match: CREATE, when: 'after', times: 1 },
      { kind: 'reset', ratio: 1, match: /^POST .*\/comment$/, when: 'after', times: 1 },
      { kind: 'reset', ratio: 1, match: /^POST .*\/transitions$/, when: 'after', times: 1 },
    ];
    const c = makeCase();
    await putCase(h.store, c);
    // Act: ticket, comment (a remediation state), close (verified), each sent again as the outbox decides
    await h.stage.handle(decided(c));
    await drainHourly(h);
    await h.stage.handle({
      id: 'r1',
      type: 'case.remediation',
      caseKey: c.key,
      at: c.updatedAt,
      state: 'awaiting-approval',
      actor: 'closeloop',
    });
    await drainHourly(h);
    await h.stage.handle(verified(c));
    await drainHourly(h);
    // Assess: every reset happened, and each side effect is there once
    expect(h.double.calls.filter((x) => x.fault === 'reset')).toHaveLength(3);
    expect(h.double.issues.size).toBe(1);
    const issue = h.double.issues.get('SEC-1');
    expect(issue?.history).toEqual(['Done']);
    const texts = (issue?.comments ?? []).map((x) => adfToText(x.body));
    expect(texts.filter((t) => t.includes('Remediation awaiting-approval'))).toHaveLength(1);
    expect(texts.filter((t) => t.includes('Verified fixed'))).toHaveLength(1);
    expect(await h.store.list('deadletters')).toHaveLength(0);
    expect(await h.store.list('ticket-outbox')).toHaveLength(0);
  });

  it('gives up on an answer Jira dribbles out past the request timeout, though the connection is never idle', async () => {
    // Prepare: the next search is answered a byte every 100 ms for 3 s; the sink's timeout is 300 ms
    const j = await jiraHarness({}, {}, { timeoutMs: 300 });
    h = j;
    j.double.faults = [{ kind: 'trickle', ratio: 1, match: SEARCH, latencyMs: 3_000, times: 1 }];
    // Act
    const started = Date.now();
    const found = await j.jira.findTicket(caseLabelOf('aws:111122223333:acme-logs'));
    // Assess: the dribbled answer was dropped at the timeout and the search sent again
    expect(found).toBeUndefined();
    expect(j.double.calls.filter((x) => x.fault === 'trickle')).toHaveLength(1);
    expect(j.double.count(SEARCH)).toBe(2);
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('labels risk-accepted through an issue edit', async () => {
    // Prepare
    h = await jiraHarness();
    const c = makeCase();
    await putCase(h.store, c);
    await h.stage.handle(decided(c));
    const exception = {
      id: 'EXC-1',
      owner: 'ciso@example.com',
      justification: 'static website',
      expires: '2026-12-31',
    };
    await putCase(h.store, { ...(await readCase(h.store, c.key)), exception });
    // Act
    await h.stage.handle({
      id: 'e',
      type: 'case.exception',
      caseKey: c.key,
      at: c.updatedAt,
      exceptionId: 'EXC-1',
      active: true,
    });
    // Assess
    expect(h.double.issues.get('SEC-1')?.fields.labels).toContain('risk-accepted');
    expect(h.double.issues.get('SEC-1')?.comments).toHaveLength(1);
  });
});

describe('JiraTicketSink telling Jira down from a request refused', () => {
  it('fails a call as the sink unavailable only when it failed through its retries or was throttled', async () => {
    // Prepare: Jira unreachable (a port nothing listens on), Jira answering 503 once, Jira refusing the JQL
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const sinkAt = (baseUrl: string) =>
      new JiraTicketSink({
        config: {
          baseUrl,
          auth: { kind: 'basic', email: 'closeloop@example.com', apiToken: 'test-token-0000' },
          project: 'SEC',
          timeoutMs: 2_000,
        },
        retry: { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 5 },
      });
    h = await jiraHarness();
    h.double.faults = [{ kind: '503', ratio: 1, match: SEARCH, times: 1 }];
    const label = caseLabelOf(makeCase({ n: 1 }).key);
    // Act
    const down = await sinkAt(`http://127.0.0.1:${port}`)
      .findTicket(label)
      .catch((e: unknown) => e);
    const once = await sinkAt(h.double.url).findTicket(label);
    h.double.faults = [{ kind: '429', ratio: 1, match: SEARCH, retryAfter: 7200, times: 1 }];
    const throttled = await sinkAt(h.double.url)
      .findTicket(label)
      .catch((e: unknown) => e);
    const refused = await sinkAt(h.double.url)
      .findTicket('not-a-derived-label')
      .catch((e: unknown) => e);
    // Assess: down and throttled hold the outbox back; a 503 that passed and a refused request do not
    expect(down).toBeInstanceOf(SinkUnavailableError);
    // Its message is the call's, said once (it keeps the call's error as its cause)
    expect((down as Error).message).toMatch(/^jira search issues: ECONNREFUSED$/);
    expect(once).toBeUndefined();
    expect(throttled).toBeInstanceOf(SinkUnavailableError);
    expect(isThrottled(throttled)).toBe(true);
    expect(refused).toBeInstanceOf(AdapterError);
    expect(refused).not.toBeInstanceOf(SinkUnavailableError);
  });
});

describe('JiraTicketSink when Jira refuses closeloop the user search (401, 403)', () => {
  const LEAD = '000000:00000000-0000-0000-0000-000000000002';
  const REFUSED_NOTE =
    "closeloop could not look up Jira users (HTTP 403: closeloop's Jira account may lack the Browse users and groups permission)";
  const description = (key: string) => adfToText(h?.double.issues.get(key)?.fields.description as AdfDoc);

  it("creates the issue for the team's default assignee and says the search was refused and why, not that the owner has no account", async () => {
    // Prepare: the lead's account was looked up (and cached) before closeloop's Jira account lost the
    // Browse users and groups permission; from then on Jira answers every user search 403
    h = await jiraHarness(NO_GROUPING);
    const before = makeCase({ n: 1, owner: 'secops-lead@example.com' });
    await putCase(h.store, before);
    await h.stage.handle(decided(before));
    h.double.faults = [{ kind: '403', ratio: 1, match: USER_SEARCH }];
    const c = makeCase({ n: 2 });
    await putCase(h.store, c);
    // Act
    await h.stage.handle(decided(c));
    // Assess: the issue exists, with the lead, and its description tells the truth
    const issue = h.double.issues.get('SEC-2');
    expect(issue?.fields.assignee).toEqual({ accountId: LEAD });
    expect(description('SEC-2')).toContain(
      `Assignee: ${REFUSED_NOTE}: assigned to the team's default assignee secops-lead@example.com instead of the owner alice@example.com.`,
    );
    expect(description('SEC-2')).not.toContain('cannot find a Jira account');
    // The refusal is never remembered as "alice has no account": only the lead's answer is cached
    const cached = (await h.store.list('ticket-users')).map((d) => d.value as { accountId: string | null });
    expect(cached).toEqual([expect.objectContaining({ accountId: LEAD })]);
    expect((await readCase(h.store, c.key)).ticket).toMatchObject({ assigneeId: LEAD, ownerLookupRefused: true });
    expect(await h.store.list('ticket-outbox')).toHaveLength(0);
  });

  it("says so in a grouped parent's description too, and keeps it when the table is rewritten", async () => {
    // Prepare: the lead's account cached before the refusal, as above; a storm of alice's cases past a
    // threshold of 2 goes under one parent ticket
    h = await jiraHarness({
      grouping: {
        enabled: true,
        threshold: 2,
        windowMinutes: 60,
        mode: 'table',
        subtaskIssueType: 'Subtask',
        refreshSeconds: 60,
      },
    });
    const before = makeCase({ n: 1, owner: 'secops-lead@example.com' });
    await putCase(h.store, before);
    await h.stage.handle(decided(before));
    h.double.faults = [{ kind: '403', ratio: 1, match: USER_SEARCH }];
    const storm = [2, 3, 4, 5].map((n) => makeCase({ n }));
    for (const c of storm) await putCase(h.store, c);
    // Act: the third of alice's cases creates the parent; the fourth joins it a minute later (table rewritten)
    for (const c of storm.slice(0, 3)) await h.stage.handle(decided(c));
    await drainOutbox(h.deps);
    h.clock.advance(60_000);
    await h.stage.handle(decided(storm[3] as (typeof storm)[number]));
    await drainOutbox(h.deps);
    // Assess: the parent is the lead's, and its description says why, as a single ticket's does
    const parent = [...h.double.issues.entries()].find(([, i]) => i.fields.labels.includes('closeloop-group'));
    expect(parent?.[1].fields.assignee).toEqual({ accountId: LEAD });
    const text = description(parent?.[0] ?? '');
    expect(text).toContain(
      `Assignee: ${REFUSED_NOTE}: assigned to the team's default assignee secops-lead@example.com instead of the owner alice@example.com.`,
    );
    expect(text).toContain('logs-111122223333-5');
  });

  it('searches once for a storm of 20 cases while the refusal is remembered, says it once in the log, then searches again', async () => {
    // Prepare: Jira answers every user search 403; nobody's account is cached
    const errors = vi.spyOn(quietLog, 'error');
    h = await jiraHarness(NO_GROUPING);
    h.double.faults = [{ kind: '403', ratio: 1, match: USER_SEARCH }];
    const storm = Array.from({ length: 20 }, (_, i) => makeCase({ n: i + 1 }));
    for (const c of storm) await putCase(h.store, c);
    // Act: the storm, then one of its cases seen again within the ten minutes
    for (const c of storm) await h.stage.handle(decided(c));
    const first = storm[0] as (typeof storm)[number];
    await h.stage.handle(decided(await readCase(h.store, first.key), { isNewCase: false }));
    const searchesInWindow = h.double.count(USER_SEARCH, false);
    const said = (errors.mock.calls as unknown as Array<[string, Record<string, unknown>]>).filter(([m]) =>
      m.includes('refused the user search'),
    );
    // …and a new case after the ten minutes
    h.clock.advance(10 * 60_000 + 1_000);
    const late = makeCase({ n: 21 });
    await putCase(h.store, late);
    await h.stage.handle(decided(late));
    const searchesAfterWindow = h.double.count(USER_SEARCH, false);
    errors.mockRestore();
    // Assess: 21 issues, none lost; one search for the storm, one more once the window passed
    expect(h.double.issues.size).toBe(21);
    expect(searchesInWindow).toBe(1);
    expect(said).toHaveLength(1);
    expect(said[0]?.[1]).toMatchObject({
      fix: expect.stringContaining('Browse users and groups global permission'),
    });
    expect(searchesAfterWindow).toBe(2);
    expect(h.double.issues.get('SEC-1')?.fields.assignee).toBeUndefined();
    expect(description('SEC-20')).toContain(
      `Assignee: ${REFUSED_NOTE}: unassigned, for triage, instead of assigned to the owner alice@example.com.`,
    );
    expect(await h.store.list('ticket-users')).toEqual([]);
  });

  it("assigns the owner on the case's next event once Jira answers the user search again, said in one comment", async () => {
    // Prepare: an issue created while Jira refused the user search (unassigned, for triage)
    h = await jiraHarness(NO_GROUPING);
    h.double.faults = [{ kind: '403', ratio: 1, match: USER_SEARCH }];
    const c = makeCase({ n: 1 });
    await putCase(h.store, c);
    await h.stage.handle(decided(c));
    const assigneeWhileRefused = h.double.issues.get('SEC-1')?.fields.assignee;
    // Act: the permission is granted; the case's next event comes after the ten minutes
    h.double.faults = [];
    h.clock.advance(10 * 60_000 + 1_000);
    await h.stage.handle(decided(await readCase(h.store, c.key), { isNewCase: false }));
    await h.stage.handle(decided(await readCase(h.store, c.key), { isNewCase: false }));
    // Assess: alice's now, told once; the mark is gone and alice's account is cached
    expect(assigneeWhileRefused).toBeUndefined();
    const issue = h.double.issues.get('SEC-1');
    expect(issue?.fields.assignee).toEqual({ accountId: ALICE });
    const comments = (issue?.comments ?? []).map((x) => adfToText(x.body as AdfDoc));
    expect(comments).toHaveLength(1);
    expect(comments[0]).toContain('Owner looked up.');
    expect(comments[0]).toContain('The issue is assigned to the owner.');
    const ticket = (await readCase(h.store, c.key)).ticket;
    expect(ticket).toMatchObject({ assigneeId: ALICE });
    expect(ticket?.ownerLookupRefused).toBeUndefined();
    expect(await h.store.list('ticket-users')).toEqual([
      expect.objectContaining({ value: expect.objectContaining({ accountId: ALICE }) }),
    ]);
  });

  it('tells a token Jira does not accept (401) from a missing permission (403) in what it says', async () => {
    // Prepare
    const jh = await jiraHarness();
    h = jh;
    h.double.faults = [
      { kind: '401', ratio: 1, match: USER_SEARCH, times: 1 },
      { kind: '403', ratio: 1, match: USER_SEARCH, times: 1 },
    ];
    // Act
    const unauthorized = await jh.jira.findUser('alice@example.com').catch((e: unknown) => e);
    const forbidden = await jh.jira.findUser('alice@example.com').catch((e: unknown) => e);
    const answered = await jh.jira.findUser('alice@example.com');
    // Assess: each refused once (no retries), then the account
    expect(unauthorized).toBeInstanceOf(UserSearchRefusedError);
    expect((unauthorized as UserSearchRefusedError).why).toMatch(/^HTTP 401: /);
    expect((unauthorized as UserSearchRefusedError).fix).toContain('API token');
    expect((forbidden as UserSearchRefusedError).why).toContain('Browse users and groups');
    expect(answered).toBe(ALICE);
    expect(h.double.count(USER_SEARCH, false)).toBe(3);
  });
});
