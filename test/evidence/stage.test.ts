import { beforeEach, describe, expect, it } from 'vitest';
import { MemoryEvidenceStore } from '../../shared/adapters/evidence/memory.js';
import { MemoryDocStore } from '../../shared/adapters/store/memory.js';
import { verifyChains } from '../../shared/core/evidence/audit.js';
import { EvidenceRecordSchema } from '../../shared/core/evidence/record.js';
import { createEvidenceStage } from '../../shared/core/evidence/stage.js';
import { CaseSchema } from '../../shared/core/model/case.js';
import type { Decision } from '../../shared/core/model/decision.js';
import type { PipelineEvent } from '../../shared/core/model/events.js';
import { CaseNotWrittenError } from '../../shared/core/pipeline/announced.js';
import { silentLogger } from '../../shared/core/ports.js';
import { CASE_KEY, fixedClock, makeCase, putCase } from '../verify/helpers.js';

describe('evidence stage', () => {
  let store: MemoryDocStore;
  let evidence: MemoryEvidenceStore;
  const stage = () => createEvidenceStage({ store, evidence, clock: fixedClock(), log: silentLogger });
  const records = async () => (await evidence.listAll()).map((s) => EvidenceRecordSchema.parse(s.raw));
  const at = '2026-11-20T10:00:00.000Z';

  beforeEach(async () => {
    store = new MemoryDocStore();
    evidence = new MemoryEvidenceStore();
    await putCase(store, makeCase());
  });

  it('writes one record when the same event is delivered twice, even at once', async () => {
    // Prepare
    const event: PipelineEvent = {
      id: 'decided:1',
      type: 'case.decided',
      caseKey: CASE_KEY,
      at,
      isNewCase: true,
      recurrence: false,
      statusChanged: true,
    };
    // Act
    await Promise.all([stage().handle(event), stage().handle(event)]);
    await stage().handle(event);
    // Assess
    const rs = await records();
    expect(rs).toHaveLength(1);
    expect(rs[0]).toMatchObject({
      step: 'decision',
      caseKey: CASE_KEY,
      owner: 'marketing-data@acme.example',
      eventId: 'decided:1',
    });
    expect(CaseSchema.parse((await store.get('cases', CASE_KEY))?.value).evidenceHead).toBe(rs[0]?.hash);
  });

  it("records a decision only once its case write has landed, with the new case's owner and findings", async () => {
    // Prepare: a new case's decision, announced at version 1 before the ingest wrote it
    await store.delete('cases', CASE_KEY);
    const event: PipelineEvent = {
      id: 'decided:early',
      type: 'case.decided',
      caseKey: CASE_KEY,
      caseVersion: 1,
      at,
      isNewCase: true,
      recurrence: false,
      statusChanged: true,
    };
    // Act
    const early = await stage()
      .handle(event)
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    const before = await records();
    await store.put('cases', CASE_KEY, makeCase(), { expectVersion: 0 });
    await stage().handle(event);
    await stage().handle(event);
    // Assess
    expect(early).toBeInstanceOf(CaseNotWrittenError);
    expect(before).toEqual([]);
    const rs = await records();
    expect(rs).toHaveLength(1);
    expect(rs[0]).toMatchObject({
      step: 'decision',
      owner: 'marketing-data@acme.example',
      findingIds: makeCase().findingKeys,
    });
  });

  it('records plan, apply with request ids and rollback steps from remediation events', async () => {
    // Prepare: the plan waited for approval (approveCase writes approvedBy before the apply).
    await putCase(store, makeCase({ remediation: { approvedBy: 'web-lead@acme.example' } }));
    const plan = {
      steps: [
        {
          say: 'turn on BPA',
          call: { api: 's3:PutPublicAccessBlock', permission: 's3:PutBucketPublicAccessBlock', input: {} },
        },
      ],
    };
    const events: PipelineEvent[] = [
      {
        id: 'r1',
        type: 'case.remediation',
        caseKey: CASE_KEY,
        at,
        state: 'planned',
        actor: 'closeloop:remediate',
        detail: { plan },
      },
      { id: 'r2', type: 'case.remediation', caseKey: CASE_KEY, at, state: 'approved', actor: 'web-lead@acme.example' },
      {
        id: 'r3',
        type: 'case.remediation',
        caseKey: CASE_KEY,
        at,
        state: 'applied',
        actor: 'arn:aws:iam::111122223333:role/closeloop-remediate',
        detail: { plan, requestIds: ['REQ-1'], before: { pab: null } },
      },
      {
        id: 'r4',
        type: 'case.remediation',
        caseKey: CASE_KEY,
        at,
        state: 'rolled-back',
        actor: 'web-lead@acme.example',
        detail: { requestIds: ['REQ-2'] },
      },
    ];
    // Act
    for (const e of events) await stage().handle(e);
    // Assess
    const rs = await records();
    expect(rs.map((r) => [r.step, r.actor.kind])).toEqual([
      ['plan', 'function'],
      ['approval', 'person'],
      ['apply', 'principal'],
      ['rollback', 'person'],
    ]);
    expect(rs[0]?.calls).toEqual([{ api: 's3:PutPublicAccessBlock', requestId: null, outcome: 'planned' }]);
    expect(rs[2]).toMatchObject({
      calls: [{ api: 's3:PutPublicAccessBlock', requestId: 'REQ-1', outcome: 'made' }],
      before: { pab: null },
    });
    expect(rs.map((r) => r.caseSeq)).toEqual([1, 2, 3, 4]);
  });

  it('records exceptions, reopenings and human ticket closures but not verdicts the verifier records itself', async () => {
    // Prepare
    const events: PipelineEvent[] = [
      { id: 'x1', type: 'case.exception', caseKey: CASE_KEY, at, exceptionId: 'EXC-001', active: true },
      {
        id: 'x2',
        type: 'case.verify-requested',
        caseKey: CASE_KEY,
        at,
        trigger: 'ticket-closed',
        actor: 'web-lead@acme.example',
      },
      {
        id: 'x3',
        type: 'case.verify-requested',
        caseKey: CASE_KEY,
        at,
        trigger: 'apply',
        actor: 'closeloop:remediate',
      },
      { id: 'x4', type: 'case.verified', caseKey: CASE_KEY, at, verdict: 'verified' },
      { id: 'x5', type: 'case.reopened', caseKey: CASE_KEY, at, reason: 'regression', actor: 'closeloop:verify' },
    ];
    // Act
    for (const e of events) await stage().handle(e);
    // Assess
    expect((await records()).map((r) => r.step)).toEqual(['exception', 'ticket', 'reopen']);
    expect(await verifyChains(evidence, { store })).toMatchObject({ ok: true, records: 3 });
  });

  const decision = (over: Partial<Decision> = {}): Decision => ({
    caseKey: CASE_KEY,
    isNewCase: false,
    recurrence: false,
    unchanged: false,
    exception: null,
    exceptionExpired: null,
    remediation: { action: 's3.block-public-access', mode: 'approval', reason: 'prod needs approval', gates: [] },
    ticket: { wanted: true, reason: 'high in prod' },
    verify: false,
    ...over,
  });
  const decidedWith = (id: string, d: Decision): PipelineEvent => ({
    id,
    type: 'case.decided',
    caseKey: CASE_KEY,
    at,
    isNewCase: false,
    recurrence: false,
    statusChanged: true,
    detail: { decision: d },
  });
  const exception = {
    id: 'EXC-007',
    owner: 'ciso@acme.example',
    justification: 'public marketing site',
    expires: '2027-01-31',
  };

  it("records the event's decision, not a later one the case already holds", async () => {
    // Prepare: the case was decided again (manual) after the event being recorded (auto).
    await putCase(
      store,
      makeCase({
        lastDecision: decision({ remediation: { action: null, mode: 'manual', reason: 'later', gates: [] } }),
      }),
    );
    const made = decision({
      remediation: { action: 's3.block-public-access', mode: 'auto', reason: 'dev', gates: [] },
    });
    // Act
    await stage().handle(decidedWith('d-auto', made));
    // Assess
    const [r] = await records();
    expect(r?.summary).toBe('decided: action s3.block-public-access, mode auto (dev); ticket wanted');
    expect(r?.detail.decision).toEqual(made);
  });

  it('records an exception once when ingest, repeats and the sweep all announce it', async () => {
    // Prepare
    await putCase(store, makeCase({ status: 'suppressed', exception }));
    const suppressed = decision({ exception });
    // Act: the ingest decision, a repeat of the finding, then the sweep's pair of events.
    await stage().handle(decidedWith('d-1', suppressed));
    await stage().handle(decidedWith('d-2', suppressed));
    await stage().handle(decidedWith('sweep:1', suppressed));
    await stage().handle({
      id: 'sweep:1:exception',
      type: 'case.exception',
      caseKey: CASE_KEY,
      at,
      exceptionId: 'EXC-007',
      active: true,
    });
    // Assess
    const rs = await records();
    expect(rs.map((r) => r.step)).toEqual(['decision', 'exception', 'decision', 'decision']);
    expect(rs[1]).toMatchObject({
      actor: { kind: 'person', id: 'ciso@acme.example' },
      verdict: 'risk-accepted',
      summary: 'exception EXC-007 active: public marketing site (accepted by ciso@acme.example until 2027-01-31)',
      detail: { exceptionId: 'EXC-007', active: true, exception },
    });
  });

  it('records the end of an exception when a decision finds it expired', async () => {
    // Prepare
    await putCase(store, makeCase({ status: 'reopened' }));
    // Act
    await stage().handle(decidedWith('sweep:2', decision({ exceptionExpired: exception })));
    await stage().handle({
      id: 'sweep:2:reopened',
      type: 'case.reopened',
      caseKey: CASE_KEY,
      at,
      reason: 'exception EXC-007 expired on 2027-01-31',
      actor: 'closeloop:exceptions',
    });
    // Assess
    const rs = await records();
    expect(rs.map((r) => [r.step, r.verdict])).toEqual([
      ['decision', null],
      ['exception', 'exception-ended'],
      ['reopen', 'reopened'],
    ]);
    expect(rs[1]?.actor).toEqual({ kind: 'function', id: 'closeloop:exceptions' });
  });

  it('records the plan of an automatic apply before the apply when no approval recorded it', async () => {
    // Prepare
    const plan = {
      steps: [{ say: 'turn on BPA', call: { api: 's3:PutPublicAccessBlock', permission: 'p', input: {} } }],
    };
    const applied: PipelineEvent = {
      id: 'auto-1',
      type: 'case.remediation',
      caseKey: CASE_KEY,
      at,
      state: 'applied',
      actor: 'closeloop',
      detail: { plan, requestIds: ['REQ-9'] },
    };
    // Act
    await stage().handle(applied);
    await stage().handle(applied);
    // Assess
    const rs = await records();
    expect(rs.map((r) => [r.step, r.verdict])).toEqual([
      ['plan', 'planned'],
      ['apply', 'applied'],
    ]);
    expect(rs[0]?.calls).toEqual([{ api: 's3:PutPublicAccessBlock', requestId: null, outcome: 'planned' }]);
    expect(rs[1]?.calls).toEqual([{ api: 's3:PutPublicAccessBlock', requestId: 'REQ-9', outcome: 'made' }]);
  });

  it('names rollback calls after the action when the rollback has no plan of its own', async () => {
    // Prepare
    await putCase(store, makeCase({ remediation: { state: 'rolled-back' } }));
    // Act
    await stage().handle({
      id: 'rb',
      type: 'case.remediation',
      caseKey: CASE_KEY,
      at,
      state: 'rolled-back',
      actor: 'oncall@acme.example',
      detail: { requestIds: ['RB-1'] },
    });
    // Assess
    expect((await records())[0]?.calls).toEqual([
      { api: 's3.block-public-access:rollback', requestId: 'RB-1', outcome: 'made' },
    ]);
  });
});
