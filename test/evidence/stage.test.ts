import { beforeEach, describe, expect, it } from 'vitest';
import { MemoryEvidenceStore } from '../../shared/adapters/evidence/memory.js';
import { MemoryDocStore } from '../../shared/adapters/store/memory.js';
import { verifyChains } from '../../shared/core/evidence/audit.js';
import { EvidenceRecordSchema } from '../../shared/core/evidence/record.js';
import { createEvidenceStage } from '../../shared/core/evidence/stage.js';
import { CaseSchema } from '../../shared/core/model/case.js';
import type { PipelineEvent } from '../../shared/core/model/events.js';
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

  it('records plan, apply with request ids and rollback steps from remediation events', async () => {
    // Prepare
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
});
