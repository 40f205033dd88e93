import { beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../shared/adapters/config/load.js';
import type { Config } from '../../../shared/core/config.js';
import { type Case, CaseSchema } from '../../../shared/core/model/case.js';
import type { Finding } from '../../../shared/core/model/finding.js';
import { caseKeyOf, type DecideInput, decide, reevaluate } from '../../../shared/core/pipeline/decide.js';
import { createEnricher, type Enricher } from '../../../shared/core/pipeline/enrich.js';
import { normalize } from '../../../shared/core/pipeline/normalize.js';
import type { RiskException } from '../../../shared/core/policy/exceptions.js';
import { silentLogger } from '../../../shared/core/ports.js';
import { exceptionGate } from '../../../shared/core/remediation/gates.js';
import { parseWithoutCopy } from '../../../shared/core/util/accept.js';
import { laterCopy, makeControlFinding, makeFinding } from '../../helpers/findings.js';

let config: Config;
let enricher: Enricher;
const NOW = new Date('2026-11-20T12:00:00Z');
beforeAll(async () => {
  config = await loadConfig('examples/config');
  enricher = createEnricher({ registry: config.registry, policy: config.policy.enrichment, log: silentLogger });
});

/** Runs decide the way ingest does: enrich, then decide against the stored case and previous finding. */
function run(
  finding: Finding,
  state: { cases: Map<string, Case>; findings: Map<string, Finding> },
  extra: Partial<DecideInput> = {},
) {
  const enrichment = enricher.enrichSync(finding);
  if (!enrichment) throw new Error('no sync enrichment');
  const key = caseKeyOf(finding);
  const previous = state.findings.get(finding.key);
  const existing = state.cases.get(key);
  const out = decide({
    finding,
    enrichment,
    exceptions: config.exceptions,
    policy: config.policy.decide,
    now: NOW,
    ...(previous ? { previous } : {}),
    ...(existing ? { existing } : {}),
    ...extra,
  });
  if (out.findingChanged) state.findings.set(finding.key, finding);
  if (out.caseChanged) state.cases.set(key, out.next);
  return out;
}
const fresh = () => ({ cases: new Map<string, Case>(), findings: new Map<string, Finding>() });

describe('caseKeyOf', () => {
  it('joins provider, lower-cased resource id and type when given a finding', () => {
    // Prepare
    const f = makeFinding({
      resource: { provider: 'azure', id: '/subscriptions/ABC/rg/X', account: 'abc' },
      type: 'KV_TORAccess',
      source: 'defender',
    });
    // Act
    const key = caseKeyOf(f);
    // Assess
    expect(key).toBe('azure|/subscriptions/abc/rg/x|KV_TORAccess');
  });
});

describe('decide: cases and dedup', () => {
  it('opens a new case with the playbook action, gates and a wanted ticket when a finding is first seen', () => {
    // Prepare
    const state = fresh();
    const f = makeFinding({
      resource: { account: '444455556666', id: 'arn:aws:s3:::acme-web-uploads', name: 'acme-web-uploads' },
    });
    // Act
    const out = run(f, state);
    // Assess
    expect(out.caseChanged).toBe(true);
    expect(out.findingChanged).toBe(true);
    expect(out.decision).toMatchObject({
      caseKey: 'aws|arn:aws:s3:::acme-web-uploads|Policy:S3/BucketAnonymousAccessGranted',
      isNewCase: true,
      recurrence: false,
      unchanged: false,
      remediation: { action: 's3.block-public-access', mode: 'auto' },
      ticket: { wanted: true },
      verify: false,
    });
    expect(out.next).toMatchObject({
      status: 'open',
      occurrences: 1,
      sources: ['guardduty'],
      ticket: null,
      verification: null,
    });
    expect(out.next.remediation).toMatchObject({ action: 's3.block-public-access', mode: 'auto', state: 'none' });
    expect(out.next.remediation.gates.map((g) => g.gate)).toEqual(['skip-tag', 'allowlist', 'owner', 'environment']);
    // The case keeps the decision without what it holds itself: its key, and the verdict in `remediation`.
    const { caseKey, remediation, ...kept } = out.decision;
    expect(caseKey).toBe(out.next.key);
    expect(out.next.lastDecision).toEqual(kept);
    expect(out.next.remediation).toEqual({ ...remediation, state: 'none' });
    // Without an exception, one frozen object shared by every case decided alike.
    const other = run(makeFinding({ sourceId: `${f.sourceId}-other`, key: 'c'.repeat(64) }), fresh());
    expect(other.next.lastDecision).toBe(out.next.lastDecision);
    expect(Object.isFrozen(out.next.lastDecision)).toBe(true);
  });

  it('changes nothing and says unchanged when the same finding is replayed', () => {
    // Prepare
    const state = fresh();
    const f = makeFinding();
    const first = run(f, state);
    // Act
    const again = run(structuredClone(f), state);
    // Assess
    expect(again.caseChanged).toBe(false);
    expect(again.findingChanged).toBe(false);
    expect(again.decision.unchanged).toBe(true);
    expect(again.decision.recurrence).toBe(false);
    expect(again.next).toBe(state.cases.get(first.decision.caseKey));
    expect(again.next.occurrences).toBe(1);
  });

  it('keeps per-finding counts beside the keys, and reads them from a case stored in the older keyed form', () => {
    // Prepare: two findings of one case, then the case as a store written before findingOccurrences holds it
    const state = fresh();
    const a = makeFinding({ occurrences: 2 });
    const b = makeFinding({ sourceId: `${a.sourceId}-2`, key: 'b'.repeat(64), occurrences: 3 });
    run(a, state);
    const both = run(b, state);
    const { findingOccurrences: _counts, ...older } = both.next;
    const legacy: Case = { ...older, occurrencesByFinding: { [a.key]: 2, [b.key]: 3 } };
    state.cases.set(both.decision.caseKey, legacy);
    // Act
    const replay = run(b, state);
    const repeat = run(laterCopy(a, 60, { occurrences: 4 }), state);
    // Assess
    expect(both.next.findingKeys).toEqual([a.key, b.key]);
    expect(both.next.findingOccurrences).toEqual([2, 3]);
    expect(both.next.occurrences).toBe(5);
    expect(replay.caseChanged).toBe(false); // not rewritten for its form alone
    expect(repeat.next.findingOccurrences).toEqual([4, 3]);
    expect(repeat.next.occurrences).toBe(7);
    expect(repeat.next).not.toHaveProperty('occurrencesByFinding');
  });

  it('reads a case stored with the whole decision (before 2026-12-07) as the decision without key and verdict', () => {
    // Prepare: the case as a store written before holds it, its lastDecision the whole decision
    const state = fresh();
    const f = makeFinding();
    const first = run(f, state);
    const stored = JSON.stringify({ ...first.next, lastDecision: first.decision });
    // Act
    const viaZod = CaseSchema.parse(JSON.parse(stored));
    const viaAcceptor = parseWithoutCopy(CaseSchema, JSON.parse(stored));
    state.cases.set(first.decision.caseKey, viaAcceptor);
    const replay = run(f, state);
    // Assess
    for (const c of [viaZod, viaAcceptor]) {
      expect(c.lastDecision).not.toHaveProperty('caseKey');
      expect(c.lastDecision).not.toHaveProperty('remediation');
      expect(c.lastDecision?.ticket).toEqual(first.decision.ticket);
    }
    expect(replay.caseChanged).toBe(false); // not rewritten for its form alone
  });

  it('bumps occurrences and lastSeen without double counting when a GuardDuty repeat raises service.count', () => {
    // Prepare
    const state = fresh();
    const f = makeFinding({ occurrences: 2 });
    run(f, state);
    // Act
    const repeat = run(laterCopy(f, 60, { occurrences: 5 }), state);
    const replayOfRepeat = run(laterCopy(f, 60, { occurrences: 5 }), state);
    // Assess
    expect(repeat.decision.recurrence).toBe(true);
    expect(repeat.next.occurrences).toBe(5);
    expect(repeat.next.lastSeen).toBe('2026-11-18T10:07:02.000Z');
    expect(replayOfRepeat.caseChanged).toBe(false);
    expect(state.cases.size).toBe(1);
  });

  it('counts a re-detection as one more occurrence when the source keeps no count (SCC)', () => {
    // Prepare
    const state = fresh();
    const f = makeFinding({
      source: 'scc',
      sourceId: 'organizations/1/sources/2/findings/abc',
      type: 'PUBLIC_BUCKET_ACL',
      resource: {
        provider: 'gcp',
        id: '//storage.googleapis.com/acme-web-uploads',
        name: 'acme-web-uploads',
        account: 'acme-web-prod',
        region: null,
      },
    });
    run(f, state);
    // Act
    const out = run(laterCopy(f, 30), state);
    // Assess
    expect(out.next.occurrences).toBe(2);
    expect(out.decision.recurrence).toBe(true);
  });

  it('ignores a stale update when it is older than the stored finding', () => {
    // Prepare
    const state = fresh();
    const f = makeFinding();
    const newer = laterCopy(f, 60, { occurrences: 3 });
    run(newer, state);
    // Act
    const out = run(f, state);
    // Assess
    expect(out.findingChanged).toBe(false);
    expect(out.caseChanged).toBe(false);
    expect(out.decision.unchanged).toBe(true);
    expect(state.cases.get(out.decision.caseKey)?.occurrences).toBe(3);
  });

  it('compares stored timestamps by instant when a case was written with a UTC offset', () => {
    // Prepare: a case stored by another writer with `+02:00` times (canonical finding times are `…Z`).
    const state = fresh();
    const f = makeFinding({ lastSeen: '2026-11-18T10:00:00.000Z', updatedAt: '2026-11-18T10:00:00.000Z' });
    const first = run(f, state);
    const key = first.decision.caseKey;
    const stored = state.cases.get(key);
    if (!stored) throw new Error('no case');
    // 12:00+02:00 is 10:00Z: as text it sorts after 10:30Z, as an instant it is before.
    state.cases.set(key, { ...stored, lastSeen: '2026-11-18T12:00:00+02:00' });
    // Act
    const out = run(laterCopy(f, 30), state);
    // Assess
    expect(out.next.lastSeen).toBe('2026-11-18T10:30:00.000Z');
    expect(out.decision.recurrence).toBe(true);
  });

  it('gives the case key of the finding as it is now when the same finding object is changed between calls', () => {
    // Prepare
    const f = makeFinding({ resource: { id: 'arn:aws:s3:::Bucket-A' }, type: 'T1' });
    const before = caseKeyOf(f);
    // Act
    f.resource.id = 'arn:aws:s3:::Bucket-B';
    const after = caseKeyOf(f);
    // Assess
    expect(before).toBe('aws|arn:aws:s3:::bucket-a|T1');
    expect(after).toBe('aws|arn:aws:s3:::bucket-b|T1');
  });

  it('keeps a GuardDuty finding and its Security Hub copy in one case with both sources', () => {
    // Prepare
    const state = fresh();
    const native = makeFinding({
      type: 'CryptoCurrency:EC2/BitcoinTool.B!DNS',
      occurrences: 3,
      resource: {
        id: 'arn:aws:ec2:us-east-1:444455556666:instance/i-0abc1234def567890',
        type: 'Instance',
        name: 'i-0abc1234def567890',
        account: '444455556666',
      },
    });
    const copy = laterCopy(native, 5, {
      source: 'securityhub',
      product: 'GuardDuty',
      resource: { type: 'AwsEc2Instance' },
    });
    // Act
    run(native, state);
    const out = run(copy, state);
    // Assess
    expect(state.cases.size).toBe(1);
    expect(out.next.sources).toEqual(['guardduty', 'securityhub']);
    expect(out.next.findingKeys).toEqual([native.key]);
    expect(out.next.occurrences).toBe(3);
    expect(out.decision.remediation.action).toBe('ec2.quarantine-instance');
  });

  it('keeps S3.8 and a GuardDuty Policy:S3 finding on the same bucket as two cases', () => {
    // Prepare
    const state = fresh();
    const gd = makeFinding();
    const control = makeControlFinding('S3.8');
    // Act
    const a = run(gd, state);
    const b = run(control, state);
    // Assess
    expect(a.decision.caseKey).not.toBe(b.decision.caseKey);
    expect(state.cases.size).toBe(2);
    expect(b.decision.remediation.action).toBe('s3.block-public-access');
  });

  it('keeps the highest severity ever seen when a later event is milder', () => {
    // Prepare
    const state = fresh();
    const f = makeFinding({ severity: 'critical' });
    run(f, state);
    // Act
    const out = run(laterCopy(f, 10, { severity: 'low' }), state);
    // Assess
    expect(out.next.severity).toBe('critical');
  });
});

/** A ticket as the ticket stage records it on a case. */
const TICKET: NonNullable<Case['ticket']> = {
  key: 'SEC-1',
  sink: 'jira',
  createdAt: '2026-11-20T00:00:00.000Z',
  status: 'open',
};

describe('decide: status', () => {
  it('marks the case pending-verification and asks for verification when the source says resolved', () => {
    // Prepare
    const state = fresh();
    const f = makeFinding({ resource: { account: '444455556666' } });
    const first = run(f, state);
    state.cases.set(first.decision.caseKey, { ...first.next, ticket: TICKET });
    // Act
    const out = run(laterCopy(f, 10, { status: 'resolved', statusReason: 'service.archived true' }), state);
    // Assess
    expect(out.next.status).toBe('pending-verification');
    expect(out.next.statusReason).toContain('service.archived true');
    expect(out.next.closedAt).toBeNull();
    expect(out.decision.verify).toBe(true);
    expect(out.decision.remediation).toMatchObject({ action: 's3.block-public-access', mode: 'none' });
    expect(out.decision.remediation.gates).toEqual([
      { gate: 'status', outcome: 'block', reason: 'resolved at the source: verification only, nothing is applied' },
    ]);
    expect(out.decision.ticket.wanted).toBe(true);
  });

  it('wants no ticket when a resolved finding of a case without one is seen again (a passing control re-evaluated)', () => {
    // Prepare: S3.8 passing, first seen already resolved (no ticket), then its next evaluation, still passing
    const state = fresh();
    const passed = makeControlFinding('S3.8', { status: 'resolved', statusReason: 'Compliance.Status PASSED' });
    const first = run(passed, state);
    // Act
    const again = run(laterCopy(passed, 3600), state);
    state.cases.set(first.decision.caseKey, { ...again.next, status: 'verified' });
    const afterVerified = run(laterCopy(passed, 7200), state);
    // Assess: the case changes (lastSeen) but asks for no ticket, pending or verified
    expect(again.caseChanged).toBe(true);
    expect(again.decision.ticket).toEqual({
      wanted: false,
      reason: 'resolved at the source before any ticket was needed',
    });
    expect(afterVerified.caseChanged).toBe(true);
    expect(afterVerified.decision.ticket.wanted).toBe(false);
  });

  it('keeps a case open while another of its findings is active, and asks to verify when the last one resolves', () => {
    // Prepare: two findings of one case (two alerts of one type on one resource), both active
    const state = fresh();
    const a = makeFinding();
    const b = makeFinding({ sourceId: `${a.sourceId}-2`, key: 'b'.repeat(64) });
    run(a, state);
    const both = run(b, state);
    state.cases.set(both.decision.caseKey, { ...both.next, ticket: TICKET });
    // Act
    const aResolved = run(laterCopy(a, 10, { status: 'resolved', statusReason: 'service.archived true' }), state);
    const bResolved = run(laterCopy(b, 20, { status: 'resolved', statusReason: 'service.archived true' }), state);
    // Assess: one resolved leaves the case open and active at the source, nothing to verify
    expect(aResolved.next.status).toBe('open');
    expect(aResolved.next.sourceStatus).toBe('active');
    expect(aResolved.next.findingActive).toEqual([false, true]);
    expect(aResolved.decision.verify).toBe(false);
    // … the last one resolves the case at the source, and verification is owed
    expect(bResolved.next.status).toBe('pending-verification');
    expect(bResolved.next.sourceStatus).toBe('resolved');
    expect(bResolved.next.findingActive).toEqual([false, false]);
    expect(bResolved.decision.verify).toBe(true);
  });

  it('keeps a case unmuted while another of its findings is active, so a new exception suppresses it', () => {
    // Prepare: S3.8 on one bucket from two standards (legacy per-standard ids: two findings of one case), the
    // first then SUPPRESSED in Security Hub's workflow; the second still fails
    const state = fresh();
    const resource = { account: '444455556666', id: 'arn:aws:s3:::acme-web-uploads', name: 'acme-web-uploads' };
    const a = makeControlFinding('S3.8', { resource });
    const b = makeControlFinding('S3.8', { resource, sourceId: `${a.sourceId}-cis` });
    run(a, state);
    const both = run(b, state);
    const granted: RiskException = {
      id: 'EXC-002',
      owner: 'web-lead@acme.example',
      justification: 'uploads bucket is being retired next week',
      scope: { controls: ['S3.8'], resources: ['arn:aws:s3:::acme-web-uploads'] },
      expires: '2026-12-31',
    };
    // Act
    const aSuppressed = run(
      laterCopy(a, 10, { status: 'resolved', muted: true, statusReason: 'Workflow.Status SUPPRESSED' }),
      state,
    );
    const swept = reevaluate(aSuppressed.next, [granted], config.policy.decide, NOW);
    // Assess: the case is active and not muted; its fix is as before; the exception's sweep suppresses it
    expect(aSuppressed.next).toMatchObject({ status: 'open', sourceStatus: 'active', muted: false });
    expect(aSuppressed.next.remediation).toEqual(both.next.remediation);
    expect(swept?.next.status).toBe('suppressed');
    expect(swept?.next.exception?.id).toBe('EXC-002');
  });

  it('reads a case stored before per-finding flags by its status, without rewriting it on a replay', () => {
    // Prepare: a two-finding case as a store written before findingActive holds it
    const state = fresh();
    const a = makeFinding();
    const b = makeFinding({ sourceId: `${a.sourceId}-2`, key: 'b'.repeat(64) });
    run(a, state);
    const both = run(b, state);
    const { findingActive: _flags, ...older } = both.next;
    state.cases.set(both.decision.caseKey, older);
    // Act
    const replay = run(b, state);
    const aResolved = run(laterCopy(a, 10, { status: 'resolved' }), state);
    // Assess: both read as active (the case's status); one resolving keeps the case open
    expect(replay.caseChanged).toBe(false);
    expect(aResolved.next.findingActive).toEqual([false, true]);
    expect(aResolved.next.status).toBe('open');
  });

  it('wants no ticket when a finding is first seen already resolved', () => {
    // Prepare
    const state = fresh();
    // Act
    const out = run(
      makeControlFinding('S3.8', { status: 'resolved', statusReason: 'Compliance.Status PASSED' }),
      state,
    );
    // Assess
    expect(out.next.status).toBe('pending-verification');
    expect(out.decision.ticket).toEqual({
      wanted: false,
      reason: 'resolved at the source before any ticket was needed',
    });
  });

  it('reopens a verified case as a regression when the finding is active again', () => {
    // Prepare
    const state = fresh();
    const f = makeFinding();
    const first = run(f, state);
    state.cases.set(first.decision.caseKey, {
      ...first.next,
      status: 'verified',
      closedAt: '2026-11-19T00:00:00.000Z',
    });
    // Act
    const out = run(laterCopy(f, 120, { occurrences: 2 }), state);
    // Assess
    expect(out.next.status).toBe('reopened');
    expect(out.next.statusReason).toContain('regression');
    expect(out.next.closedAt).toBeNull();
    expect(out.next.reopenCount).toBe(1);
  });

  it('keeps a verified case closed when the active event from before the fix comes again or as its Security Hub copy', () => {
    // Prepare: a GuardDuty finding fixed by closeloop and verified; GuardDuty sends no event for the archive,
    // so the finding stored is still the active one
    const state = fresh();
    const f = makeFinding({ occurrences: 3 });
    const first = run(f, state);
    state.cases.set(first.decision.caseKey, {
      ...first.next,
      status: 'verified',
      statusReason: 'verified: all four Block Public Access flags are on',
      closedAt: '2026-11-20T11:00:00.000Z',
      ticket: { ...TICKET, status: 'done' },
    });
    // Act: the same event delivered again (at least once), then its Security Hub copy (same timestamps)
    const redelivered = run(f, state);
    const copy = run(makeFinding({ ...f, source: 'securityhub', product: 'GuardDuty' }), state);
    // Assess: nothing happened again at the source; the closure stands
    expect(redelivered.next.status).toBe('verified');
    expect(copy.next.status).toBe('verified');
    expect(copy.next).toMatchObject({ reopenCount: 0, closedAt: '2026-11-20T11:00:00.000Z' });
    expect(copy.decision.recurrence).toBe(false);
  });

  it('suppresses a muted SCC finding without a ticket', () => {
    // Prepare
    const state = fresh();
    const f = makeFinding({
      source: 'scc',
      type: 'PUBLIC_IP_ADDRESS',
      status: 'resolved',
      muted: true,
      resource: {
        provider: 'gcp',
        id: '//compute.googleapis.com/projects/acme-web-prod/zones/z/instances/1',
        name: 'vm',
        account: 'acme-web-prod',
        region: null,
      },
    });
    // Act
    const out = run(f, state);
    // Assess
    expect(out.next.status).toBe('suppressed');
    expect(out.decision.ticket.wanted).toBe(false);
    expect(out.decision.remediation.mode).toBe('none');
    expect(out.decision.verify).toBe(false);
  });

  it('shares what a repeat leaves as it was (remediation, compliance, counts of one, ticket verdict), frozen', () => {
    // Prepare
    const state = fresh();
    const f = makeFinding();
    const g = makeFinding({
      sourceId: 'other-finding',
      key: 'c'.repeat(64),
      resource: { id: 'arn:aws:s3:::acme-other' },
    });
    const first = run(f, state);
    const other = run(g, state);
    // Act
    const repeat = run(laterCopy(f, 30, { occurrences: 2 }), state);
    const otherRepeat = run(laterCopy(g, 30, { occurrences: 2 }), state);
    // Assess
    expect(first.next.findingOccurrences).toEqual([1]);
    expect(other.next.findingOccurrences).toBe(first.next.findingOccurrences);
    expect(() => first.next.findingOccurrences?.push(2)).toThrow(TypeError);
    expect(repeat.caseChanged).toBe(true);
    expect(repeat.next.findingOccurrences).toEqual([2]);
    expect(first.next.findingOccurrences).toEqual([1]);
    expect(repeat.next.remediation).toBe(first.next.remediation);
    expect(repeat.next.compliance).toBe(first.next.compliance);
    expect(repeat.decision.ticket).toEqual({ wanted: true, reason: 'case open' });
    expect(otherRepeat.decision.ticket).toBe(repeat.decision.ticket);
  });

  it('carries over ticket, verification, evidence and remediation progress set by other stages', () => {
    // Prepare
    const state = fresh();
    const f = makeFinding({ resource: { account: '444455556666' } });
    const first = run(f, state);
    const progressed: Case = {
      ...first.next,
      status: 'remediated',
      ticket: { key: 'WEB-1', sink: 'local', createdAt: '2026-11-18T10:00:00.000Z', status: 'open' },
      evidenceHead: 'ab'.repeat(32),
      remediation: {
        ...first.next.remediation,
        state: 'applied',
        approvedBy: 'web-lead@acme.example',
        before: { acl: 'public' },
      },
    };
    state.cases.set(first.decision.caseKey, progressed);
    // Act
    const out = run(laterCopy(f, 30, { occurrences: 2 }), state);
    // Assess
    expect(out.next.status).toBe('remediated');
    expect(out.next.ticket).toEqual(progressed.ticket);
    expect(out.next.evidenceHead).toBe(progressed.evidenceHead);
    expect(out.next.remediation).toMatchObject({
      state: 'applied',
      approvedBy: 'web-lead@acme.example',
      before: { acl: 'public' },
      action: 's3.block-public-access',
    });
    expect(out.next.occurrences).toBe(2);
  });
});

describe('decide: exceptions', () => {
  const website = () =>
    makeControlFinding('S3.8', {
      resource: { id: 'arn:aws:s3:::acme-public-website', name: 'acme-public-website', account: '444455556666' },
    });

  it('suppresses ticket and remediation and says so when an active exception matches', () => {
    // Prepare
    const state = fresh();
    // Act
    const out = run(website(), state);
    // Assess
    expect(out.next.status).toBe('suppressed');
    expect(out.next.exception).toEqual({
      id: 'EXC-001',
      owner: 'web-lead@acme.example',
      justification: 'static website bucket is public by design; CloudFront in front',
      expires: '2027-06-30',
    });
    expect(out.decision.exception?.id).toBe('EXC-001');
    expect(out.decision.ticket).toEqual({
      wanted: false,
      reason: 'suppressed by exception EXC-001 until 2027-06-30: no ticket while it is in force',
    });
    expect(out.decision.remediation.mode).toBe('none');
    expect(out.decision.remediation.reason).toContain('exception EXC-001');
    expect(out.next.lastDecision?.exception?.id).toBe('EXC-001'); // its own, not a shared one
  });

  it('reopens the case with exceptionExpired when the exception that covered it has expired', () => {
    // Prepare
    const state = fresh();
    const f = website();
    run(f, state);
    const later = new Date('2027-07-01T00:00:00Z');
    // Act
    const out = run(laterCopy(f, 60), state, { now: later });
    // Assess
    expect(out.next.status).toBe('reopened');
    expect(out.next.exception).toBeNull();
    expect(out.decision.exceptionExpired?.id).toBe('EXC-001');
    expect(out.decision.ticket.wanted).toBe(true);
    expect(out.decision.remediation.action).toBe('s3.block-public-access');
    expect(out.next.reopenCount).toBe(1);
  });

  it('re-opens a case of two findings whose exception expired when one of them resolves and the other stays active', () => {
    // Prepare: S3.8 on the website bucket from two standards (two findings of one case), suppressed by EXC-001
    const state = fresh();
    const a = website();
    const b = makeControlFinding('S3.8', { resource: a.resource, sourceId: `${a.sourceId}-cis` });
    run(a, state);
    run(b, state);
    const later = new Date('2027-07-01T00:00:00Z');
    // Act: after EXC-001 expired, the first finding is resolved (the second still fails)
    const out = run(laterCopy(a, 60, { status: 'resolved', statusReason: 'Compliance.Status PASSED' }), state, {
      now: later,
    });
    // Assess: re-opened once, as the sweep or the other finding would have; nothing says the risk is accepted
    expect(out.next).toMatchObject({ status: 'reopened', exception: null, sourceStatus: 'active', reopenCount: 1 });
    expect(out.decision.exceptionExpired?.id).toBe('EXC-001');
    expect(out.decision.ticket.wanted).toBe(true);
    expect(reevaluate(out.next, config.exceptions, config.policy.decide, later)).toBeUndefined();
    expect(run(laterCopy(b, 90), state, { now: later }).next).toMatchObject({ status: 'reopened', reopenCount: 1 });
  });

  it('suppresses a case of two findings a new exception covers when one of them resolves and the other stays active', () => {
    // Prepare: two findings of one case, both active, then an exception granted for the bucket
    const state = fresh();
    const resource = { account: '444455556666', id: 'arn:aws:s3:::acme-web-uploads', name: 'acme-web-uploads' };
    const a = makeControlFinding('S3.8', { resource });
    const b = makeControlFinding('S3.8', { resource, sourceId: `${a.sourceId}-cis` });
    run(a, state);
    run(b, state);
    const granted: RiskException = {
      id: 'EXC-002',
      owner: 'web-lead@acme.example',
      justification: 'uploads bucket is being retired next week',
      scope: { resources: ['arn:aws:s3:::acme-web-uploads'] },
      expires: '2026-12-31',
    };
    // Act: the first finding resolves before any sweep ran
    const out = run(laterCopy(a, 10, { status: 'resolved' }), state, { exceptions: [granted] });
    const expiry = reevaluate(out.next, [granted], config.policy.decide, new Date('2027-01-01T00:00:00Z'));
    // Assess: suppressed under the exception it names, so its expiry re-opens it
    expect(out.next).toMatchObject({ status: 'suppressed', exception: { id: 'EXC-002' } });
    expect(out.decision.ticket.wanted).toBe(false);
    expect(expiry?.next.status).toBe('reopened');
  });

  it('opens a new case and names the lapsed exception when the only matching exception already expired', () => {
    // Prepare
    const state = fresh();
    const f = makeFinding({
      source: 'scc',
      type: 'OPEN_FIREWALL',
      resource: {
        provider: 'gcp',
        id: '//compute.googleapis.com/projects/acme-sandbox/global/firewalls/4455667788',
        name: 'allow-all-ingress',
        account: 'acme-sandbox',
        accountNumber: '555000111222',
        region: null,
      },
    });
    // Act
    const out = run(f, state);
    // Assess
    expect(out.next.status).toBe('open');
    expect(out.decision.exception).toBeNull();
    expect(out.decision.exceptionExpired?.id).toBe('EXC-000');
    expect(out.decision.remediation).toMatchObject({ action: 'gcp.firewall.disable-rule', mode: 'auto' });
  });

  it('reopens via reevaluate without a new finding when the exception expires', () => {
    // Prepare
    const state = fresh();
    const first = run(website(), state);
    // Act
    const before = reevaluate(first.next, config.exceptions, config.policy.decide, NOW);
    const after = reevaluate(first.next, config.exceptions, config.policy.decide, new Date('2027-07-01T00:00:00Z'));
    // Assess
    expect(before).toBeUndefined();
    expect(after?.next.status).toBe('reopened');
    expect(after?.decision.exceptionExpired?.id).toBe('EXC-001');
    expect(after?.decision.ticket.wanted).toBe(true);
    // tags are unknown without the finding and the suppressed case never evaluated the skip tag: fail closed
    expect(after?.decision.remediation.mode).toBe('manual');
  });

  it('suppresses an open case via reevaluate when a new exception covers it', () => {
    // Prepare
    const state = fresh();
    const first = run(makeFinding({ resource: { account: '444455556666' } }), state);
    const granted: RiskException = {
      id: 'EXC-002',
      owner: 'web-lead@acme.example',
      justification: 'bucket is being retired next week',
      scope: { accounts: ['444455556666'] },
      expires: '2026-12-31',
    };
    // Act
    const out = reevaluate(first.next, [granted], config.policy.decide, NOW);
    // Assess
    expect(out?.next.status).toBe('suppressed');
    expect(out?.next.exception?.id).toBe('EXC-002');
    expect(out?.decision.ticket.wanted).toBe(false);
    expect(reevaluate(out?.next ?? first.next, [granted], config.policy.decide, NOW)).toBeUndefined();
  });

  it('leaves a verified case closed when a new exception covers it before its source caught up (reevaluate)', () => {
    // Prepare: fixed and verified; the source has not yet said resolved (Defender re-evaluates in hours)
    const state = fresh();
    const first = run(makeFinding({ resource: { account: '444455556666' } }), state);
    const verified: Case = {
      ...first.next,
      status: 'verified',
      statusReason: 'verified: all four Block Public Access flags are on',
      closedAt: '2026-11-20T11:00:00.000Z',
      ticket: { ...TICKET, status: 'done' },
    };
    const granted: RiskException = {
      id: 'EXC-003',
      owner: 'ciso@acme.example',
      justification: 'the whole account is being decommissioned',
      scope: { accounts: ['444455556666'] },
      expires: '2026-12-31',
    };
    // Act
    const out = reevaluate(verified, [granted], config.policy.decide, NOW);
    // Assess: nothing to accept on a fixed resource (its expiry would re-open a verified fix)
    expect(out).toBeUndefined();
  });

  it('says the new expiry and owner when the exception suppressing a case is extended or handed over (reevaluate)', () => {
    // Prepare: a case suppressed by EXC-002 until the end of the year
    const state = fresh();
    const first = run(makeFinding({ resource: { account: '444455556666' } }), state);
    const granted: RiskException = {
      id: 'EXC-002',
      owner: 'web-lead@acme.example',
      justification: 'bucket is being retired next week',
      scope: { accounts: ['444455556666'] },
      expires: '2026-12-31',
    };
    const suppressed = reevaluate(first.next, [granted], config.policy.decide, NOW)?.next ?? first.next;
    const extended = { ...granted, owner: 'platform-lead@acme.example', expires: '2027-03-31' };
    // Act
    const out = reevaluate(suppressed, [extended], config.policy.decide, NOW);
    // Assess: the case and its decision name the exception as it is now; the ticket stage is told (exception)
    expect(out?.next.status).toBe('suppressed');
    expect(out?.next.exception).toMatchObject({
      id: 'EXC-002',
      owner: 'platform-lead@acme.example',
      expires: '2027-03-31',
    });
    expect(out?.next.statusReason).toBe(
      'risk accepted: exception EXC-002 (owner platform-lead@acme.example) until 2027-03-31',
    );
    expect(out?.decision.exception?.expires).toBe('2027-03-31');
    expect(out?.decision.ticket.reason).toContain('until 2027-03-31');
    expect(reevaluate(out?.next ?? suppressed, [extended], config.policy.decide, NOW)).toBeUndefined();
  });

  it('matches an exception scoped by a GCP project number on the case as on its finding (reevaluate, apply gate)', async () => {
    // Prepare: an SCC finding naming the project by id and number; the exception names the number
    const state = fresh();
    const f = makeFinding({
      source: 'scc',
      type: 'PUBLIC_BUCKET_ACL',
      resource: {
        provider: 'gcp',
        id: '//storage.googleapis.com/acme-sandbox-scratch',
        name: 'acme-sandbox-scratch',
        account: 'acme-sandbox',
        accountNumber: '555000111222',
        region: null,
      },
    });
    const open = run(f, state);
    const byNumber: RiskException = {
      id: 'EXC-009',
      owner: 'sandbox-lead@acme.example',
      justification: 'scratch bucket, deleted nightly',
      scope: { accounts: ['555000111222'] },
      expires: '2026-12-31',
    };
    // Act
    const suppressed = reevaluate(open.next, [byNumber], config.policy.decide, NOW);
    const again = reevaluate(suppressed?.next ?? open.next, [byNumber], config.policy.decide, NOW);
    const gate = await exceptionGate({ ...open.next, exception: null }, async () => [byNumber], NOW);
    // Assess: suppressed, stays suppressed on the next sweep, and the apply-time gate blocks
    expect(open.next.accountNumber).toBe('555000111222');
    expect(suppressed?.next.status).toBe('suppressed');
    expect(suppressed?.next.exception?.id).toBe('EXC-009');
    expect(again).toBeUndefined();
    expect(gate).toMatchObject({ gate: 'exception', outcome: 'block' });
  });

  it('reopens to open when the covering exception is revoked', () => {
    // Prepare
    const state = fresh();
    const first = run(website(), state);
    const revoked = config.exceptions.map((e) =>
      e.id === 'EXC-001' ? { ...e, revokedAt: '2026-11-20T00:00:00Z', revokedBy: 'ciso@acme.example' } : e,
    );
    // Act
    const out = run(laterCopy(website(), 5), state, { exceptions: revoked });
    // Assess
    expect(first.next.status).toBe('suppressed');
    expect(out.next.status).toBe('open');
    expect(out.next.statusReason).toBe('exception EXC-001 no longer applies');
    expect(out.decision.exceptionLifted?.id).toBe('EXC-001');
    expect(out.next.lastDecision?.exceptionLifted?.id).toBe('EXC-001');
  });

  it('says which exception was lifted when the sweep finds it revoked, and none on later decisions', () => {
    // Prepare
    const state = fresh();
    const first = run(website(), state);
    const revoked = config.exceptions.map((e) =>
      e.id === 'EXC-001' ? { ...e, revokedAt: '2026-11-20T00:00:00Z', revokedBy: 'ciso@acme.example' } : e,
    );
    // Act
    const swept = reevaluate(first.next, revoked, config.policy.decide, NOW);
    if (swept) state.cases.set(swept.next.key, swept.next);
    const later = run(laterCopy(website(), 60, { occurrences: 2 }), state, { exceptions: revoked });
    // Assess
    expect(swept?.next.status).toBe('open');
    expect(swept?.decision.exceptionLifted?.id).toBe('EXC-001');
    expect(later.decision.exceptionLifted).toBeUndefined();
  });
});

describe('SCC mute changes', () => {
  it('keeps a finding muted when the message from before the mute is delivered again (same eventTime)', () => {
    // Prepare: SCC mutes a finding without moving its eventTime; Pub/Sub delivers at least once
    const message = (mute: 'UNDEFINED' | 'MUTED', muteUpdateTime?: string) =>
      normalize(
        {
          notificationConfigName: 'organizations/1/notificationConfigs/closeloop',
          finding: {
            name: 'organizations/1/sources/2/findings/f-mute-1',
            parent: 'organizations/1/sources/2',
            resourceName: '//storage.googleapis.com/acme-web-uploads',
            state: 'ACTIVE',
            category: 'PUBLIC_BUCKET_ACL',
            severity: 'HIGH',
            eventTime: '2026-11-19T10:00:00Z',
            createTime: '2026-11-19T10:00:01Z',
            mute,
            ...(muteUpdateTime ? { muteUpdateTime } : {}),
          },
          resource: {
            name: '//storage.googleapis.com/acme-web-uploads',
            project: '//cloudresourcemanager.googleapis.com/projects/1',
            projectDisplayName: 'acme-web-prod',
            type: 'google.cloud.storage.Bucket',
          },
        },
        'test',
      ).findings[0] as Finding;
    const state = fresh();
    run(message('UNDEFINED'), state);
    run(message('MUTED', '2026-11-19T11:00:00Z'), state);
    // Act
    const replayed = run(message('UNDEFINED'), state);
    // Assess
    expect(replayed.caseChanged).toBe(false);
    expect([...state.cases.values()][0]?.status).toBe('suppressed');
  });
});
