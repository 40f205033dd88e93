import { describe, expect, it } from 'vitest';
import { MemoryDocStore } from '../../shared/adapters/store/memory.js';
import { buildReport, durations, renderReport } from '../../shared/core/report/report.js';
import { makeCase, putCase } from '../verify/helpers.js';

const NOW = new Date('2026-12-20T00:00:00.000Z');
const ticket = (createdAt: string) => ({ key: 'DATA-1', sink: 'local' as const, createdAt, status: 'open' as const });

async function seed(store: MemoryDocStore) {
  // Verified by apply: ticket after 2 h, fix after 10 h, verified after 11 h.
  await putCase(
    store,
    makeCase({
      key: 'c1',
      firstSeen: '2026-12-01T00:00:00.000Z',
      status: 'verified',
      closedAt: '2026-12-01T11:00:00.000Z',
      ticket: ticket('2026-12-01T02:00:00.000Z'),
      remediation: { state: 'applied', appliedAt: '2026-12-01T10:00:00.000Z' },
    }),
  );
  // Open high in prod, 19 days old: past the 7-day SLA.
  await putCase(
    store,
    makeCase({ key: 'c2', firstSeen: '2026-12-01T00:00:00.000Z', ticket: ticket('2026-12-01T04:00:00.000Z') }),
  );
  // Open medium in dev, 19 days old: within 30 days; and unowned.
  await putCase(
    store,
    makeCase({
      key: 'c3',
      severity: 'medium',
      resourceId: 'arn:aws:s3:::unowned-bucket',
      account: '777788889999',
      firstSeen: '2026-12-01T00:00:00.000Z',
      enrichment: {
        owner: 'secops-triage@acme.example',
        team: null,
        environment: 'dev',
        unowned: true,
        provenance: {
          owner: { via: 'triage', detail: 'no owner tag and no registry entry for account 777788889999' },
          environment: { via: 'default', detail: 'x' },
        },
      },
    }),
  );
  // A sample finding never counts.
  await putCase(store, makeCase({ key: 'c4', sample: true, firstSeen: '2026-01-01T00:00:00.000Z' }));
}

describe('closure report', () => {
  it('measures times to ticket, fix and verified closure per group and lists SLA breaches and owner gaps', async () => {
    // Prepare
    const store = new MemoryDocStore();
    await seed(store);
    // Act
    const r = await buildReport(store, NOW);
    // Assess
    expect(r).toMatchObject({ cases: 3, samplesExcluded: 1 });
    expect(r.bySeverity.high).toMatchObject({
      cases: 2,
      open: 1,
      verified: 1,
      pastSla: 1,
      timeToTicket: { n: 2, medianHours: 2, p90Hours: 4 },
      timeToFix: { n: 1, medianHours: 10 },
      timeToVerifiedClosure: { n: 1, medianHours: 11, p90Hours: 11 },
    });
    expect(Object.keys(r.bySeverity)).toEqual(['high', 'medium']);
    expect(r.byTeam['(no team)']?.cases).toBe(1);
    expect(r.byEnvironment.dev?.pastSla).toBe(0);
    expect(r.openPastSla).toEqual([
      expect.objectContaining({ caseKey: 'c2', ageDays: 19, slaDays: 7, ticket: 'DATA-1' }),
    ]);
    expect(r.ownerGaps).toEqual([
      expect.objectContaining({
        caseKey: 'c3',
        owner: 'secops-triage@acme.example',
        reason: 'no owner found: no owner tag and no registry entry for account 777788889999',
      }),
    ]);
  });

  it("gives unowned cases a row of their own by owner, apart from the triage owner's own cases", async () => {
    // Prepare: the seed's unowned case (triaged by secops-triage) and one the triage owner owns by a tag
    const store = new MemoryDocStore();
    await seed(store);
    await putCase(
      store,
      makeCase({
        key: 'c5',
        firstSeen: '2026-12-10T00:00:00.000Z',
        enrichment: { owner: 'secops-triage@acme.example', unowned: false },
      }),
    );
    // Act
    const r = await buildReport(store, NOW);
    // Assess
    expect(r.byOwner['(unowned: secops-triage@acme.example triages)']?.cases).toBe(1);
    expect(r.byOwner['secops-triage@acme.example']?.cases).toBe(1);
  });

  it('honours a configured SLA table when one is given', async () => {
    // Prepare
    const store = new MemoryDocStore();
    await seed(store);
    // Act
    const r = await buildReport(store, NOW, {
      slaDays: { critical: 1, high: 30, medium: 10, low: 90, informational: null },
    });
    // Assess
    expect(r.openPastSla.map((p) => p.caseKey)).toEqual(['c3']);
  });

  it('renders readable tables with median/p90 figures', async () => {
    // Prepare
    const store = new MemoryDocStore();
    await seed(store);
    // Act
    const text = renderReport(await buildReport(store, NOW));
    // Assess
    expect(text).toContain('3 case(s), 1 sample(s) excluded');
    // cases = open + verified + suppressed: the columns add up
    expect(text).toMatch(
      /severity\s+cases\s+open\s+verified\s+suppressed\s+past SLA\s+to ticket h\s+to fix h\s+to verified h/,
    );
    expect(text).toMatch(/high\s+2\s+1\s+1\s+0\s+1\s+2\/4\s+10\/10\s+11\/11/);
    expect(text).toContain('Open past SLA: 1');
    expect(text).toContain('arn:aws:s3:::unowned-bucket (account 777788889999) → secops-triage@acme.example');
  });

  it('dates a fix made by people at its verified closure, not at a later re-check, and counts no rolled-back apply', async () => {
    // Prepare
    const store = new MemoryDocStore();
    // Fixed by a person, verified (closed) after 5 h; the scheduled re-check 3 days later held.
    await putCase(
      store,
      makeCase({
        key: 'human',
        firstSeen: '2026-12-01T00:00:00.000Z',
        status: 'verified',
        closedAt: '2026-12-01T05:00:00.000Z',
        verification: {
          at: '2026-12-04T05:00:00.000Z',
          verdict: 'verified',
          trigger: 'scheduled',
          reason: 're-read',
          attempts: 1,
          upstream: [],
        },
      }),
    );
    // Fixed by a person, verified after 8 h; the later re-check was inconclusive (the case stays verified).
    await putCase(
      store,
      makeCase({
        key: 'human-inconclusive',
        firstSeen: '2026-12-01T00:00:00.000Z',
        status: 'verified',
        closedAt: '2026-12-01T08:00:00.000Z',
        verification: {
          at: '2026-12-05T00:00:00.000Z',
          verdict: 'inconclusive',
          trigger: 'scheduled',
          reason: 're-read',
          attempts: 1,
          upstream: [],
        },
      }),
    );
    // Applied after 1 h, rolled back after 2 h: still open, nothing fixed.
    await putCase(
      store,
      makeCase({
        key: 'rolled-back',
        firstSeen: '2026-12-01T00:00:00.000Z',
        remediation: {
          state: 'rolled-back',
          appliedAt: '2026-12-01T01:00:00.000Z',
          rolledBackAt: '2026-12-01T02:00:00.000Z',
        },
      }),
    );
    // Act
    const r = await buildReport(store, NOW);
    // Assess
    expect(r.totals.timeToFix).toEqual({ n: 2, medianHours: 5, p90Hours: 8 });
    expect(r.totals.timeToVerifiedClosure).toEqual({ n: 2, medianHours: 5, p90Hours: 8 });
  });

  it('lists an owner gap a failed lookup left as enrichment incomplete, not as no owner found', async () => {
    // Prepare: the lookup failed and no registry entry names an owner: the triage owner stands in
    const store = new MemoryDocStore();
    await putCase(
      store,
      makeCase({
        key: 'c5',
        firstSeen: '2026-12-01T00:00:00.000Z',
        enrichment: {
          owner: 'secops-triage@acme.example',
          unowned: true,
          complete: false,
          warnings: ['live tag lookup failed for arn:aws:s3:::b: ThrottlingException'],
          provenance: {
            owner: { via: 'triage', detail: 'owner unknown: the live tag lookup of arn:aws:s3:::b failed' },
            environment: { via: 'default', detail: 'x' },
          },
        },
      }),
    );
    // Act
    const r = await buildReport(store, NOW);
    // Assess
    expect(r.ownerGaps).toEqual([
      expect.objectContaining({
        caseKey: 'c5',
        reason: 'enrichment incomplete: live tag lookup failed for arn:aws:s3:::b: ThrottlingException',
      }),
    ]);
  });

  it('keeps control characters of owners, teams and reasons out of the terminal', async () => {
    // Prepare: an owner and team from tags, and an owner gap whose reason quotes a tag value
    const store = new MemoryDocStore();
    await putCase(
      store,
      makeCase({
        key: 'c\u009b2J',
        firstSeen: '2026-12-01T00:00:00.000Z',
        enrichment: {
          owner: 'ops\u001b]0;pwned\u0007',
          team: 'web\u001b[2J',
          unowned: true,
          provenance: {
            owner: { via: 'triage', detail: 'owner tag `x\u001b[31m` is not an address' },
            environment: { via: 'default', detail: 'x' },
          },
        },
      }),
    );
    // Act
    const text = renderReport(await buildReport(store, NOW));
    // Assess
    // biome-ignore lint/suspicious/noControlCharactersInRegex: the test looks for control characters
    expect(text).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
    expect(text).toContain('ops ]0;pwned');
  });

  it('takes the nearest-rank median and p90 when given durations', () => {
    expect(durations([5, 1, null, 3, 2, 4, 6, 7, 8, 9, 10])).toEqual({ n: 10, medianHours: 5, p90Hours: 9 });
    expect(durations([null])).toEqual({ n: 0, medianHours: null, p90Hours: null });
  });
});
