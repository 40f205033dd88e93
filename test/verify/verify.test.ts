import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { VerifyResult } from '../../shared/actions/define.js';
import { MemoryEvidenceStore } from '../../shared/adapters/evidence/memory.js';
import { MemoryDocStore } from '../../shared/adapters/store/memory.js';
import { LocalTicketSink } from '../../shared/adapters/tickets/local.js';
import { LocalUpstreamStatus } from '../../shared/adapters/upstream/local.js';
import { RoutingUpstreamStatus } from '../../shared/adapters/upstream/route.js';
import { AdapterError, errorMessage } from '../../shared/core/errors.js';
import { verifyChains } from '../../shared/core/evidence/audit.js';
import { EvidenceRecordSchema } from '../../shared/core/evidence/record.js';
import { type Case, CaseSchema } from '../../shared/core/model/case.js';
import type { PipelineEvent } from '../../shared/core/model/events.js';
import { CaseNotWrittenError } from '../../shared/core/pipeline/announced.js';
import { InProcessBus, QUEUE_LEASE_MS, type Stage } from '../../shared/core/pipeline/stage.js';
import { silentLogger } from '../../shared/core/ports.js';
import { createTicketStage } from '../../shared/core/tickets/stage.js';
import { shortHash } from '../../shared/core/util/hash.js';
import type { VerifiableAction } from '../../shared/core/verify/assess.js';
import { VerificationPolicySchema } from '../../shared/core/verify/policy.js';
import type { UpstreamResult, UpstreamStatus } from '../../shared/core/verify/ports.js';
import { createVerifyStage, reverifyRecent, UNPUBLISHED, type VerifyDeps } from '../../shared/core/verify/stage.js';
import { testContext } from '../helpers/action-context.js';
import { policy as ticketPolicy } from '../tickets/helpers.js';
import { CASE_KEY, fixedClock, makeCase, makeFinding, putCase, putFinding } from './helpers.js';

/** A stand-in action whose re-reads answer from a script (results or thrown errors), last one repeating. */
function scriptedAction(script: Array<VerifyResult | Error>): VerifiableAction & { reads: number } {
  const action = {
    id: 's3.block-public-access',
    reads: 0,
    target: z.object({ bucket: z.string(), region: z.string() }),
    selectTarget: (f: { resource: { name: string; region: string | null } }) => ({
      bucket: f.resource.name,
      region: f.resource.region ?? 'us-east-1',
    }),
    async verify(): Promise<VerifyResult> {
      const next = script[Math.min(action.reads, script.length - 1)];
      action.reads++;
      if (!next) throw new Error('empty script');
      if (next instanceof Error) throw next;
      return next;
    },
  };
  return action;
}

const HOLDS: VerifyResult = {
  holds: true,
  observed: { public: false },
  reason: 'acme-marketing-exports blocks all public access',
};
const PUBLIC: VerifyResult = {
  holds: false,
  observed: { public: true },
  reason: 'not all four Block Public Access flags are on',
};

class RecordingUpstream implements UpstreamStatus {
  readonly calls: string[] = [];
  async markResolved(finding: { source: UpstreamResult['source']; key: string }): Promise<UpstreamResult> {
    this.calls.push(finding.key);
    return {
      source: finding.source,
      outcome: 'updated',
      api: 'guardduty:ArchiveFindings',
      requestId: 'req-up-1',
      detail: 'archived',
    };
  }
}

describe('verify stage', () => {
  let store: MemoryDocStore;
  let evidence: MemoryEvidenceStore;
  let upstream: RecordingUpstream;
  let sleeps: number[];
  const clock = fixedClock('2026-11-20T10:00:00.000Z');

  function deps(action: VerifiableAction | undefined, over: Partial<VerifyDeps> = {}): VerifyDeps {
    return {
      store,
      evidence,
      actions: { get: (id) => (action && id === action.id ? action : undefined) },
      ctx: testContext(),
      upstream,
      clock,
      log: silentLogger,
      policy: VerificationPolicySchema.parse({ attempts: 3, backoffMs: 100 }),
      sleep: async (ms) => {
        sleeps.push(ms);
      },
      ...over,
    };
  }

  const applied = (over: Parameters<typeof makeCase>[0] = {}) =>
    makeCase({
      status: 'remediated',
      remediation: {
        state: 'applied',
        appliedAt: '2026-11-20T09:59:00.000Z',
        target: { bucket: 'acme-marketing-exports', region: 'us-east-1' },
        before: { public: true },
      },
      ...over,
    });
  const appliedEvent: PipelineEvent = {
    id: 'rem-1',
    type: 'case.remediation',
    caseKey: CASE_KEY,
    at: '2026-11-20T09:59:00.000Z',
    state: 'applied',
    actor: 'closeloop:remediate',
  };
  const readCase = async (): Promise<Case> => CaseSchema.parse((await store.get('cases', CASE_KEY))?.value);
  /** A case whose finding the source resolved (`statusReason`), pending verification, with no action to re-read it. */
  const resolvedWithoutAction = async (statusReason: string) => {
    await putFinding(store, makeFinding({ status: 'resolved', statusReason }));
    await putCase(
      store,
      makeCase({
        sourceStatus: 'resolved',
        status: 'pending-verification',
        remediation: { action: null, mode: 'none', state: 'none' },
      }),
    );
  };
  const records = async () => (await evidence.listAll()).map((s) => EvidenceRecordSchema.parse(s.raw));

  beforeEach(async () => {
    store = new MemoryDocStore({ clock });
    evidence = new MemoryEvidenceStore();
    upstream = new RecordingUpstream();
    sleeps = [];
    clock.set('2026-11-20T10:00:00.000Z');
    await putFinding(store, makeFinding());
  });
  afterEach(async () => store.close());

  it('verifies, marks upstream, closes the case and emits the evidence hash when the re-read holds after an apply', async () => {
    // Prepare
    await putCase(store, applied());
    const stage = createVerifyStage(deps(scriptedAction([HOLDS])));
    // Act
    const events = await stage.handle(appliedEvent);
    // Assess
    const c = await readCase();
    expect(c).toMatchObject({
      status: 'verified',
      closedAt: '2026-11-20T10:00:00.000Z',
      verification: { verdict: 'verified', attempts: 1, trigger: 'apply' },
    });
    expect(upstream.calls).toEqual([makeFinding().key]);
    const rs = await records();
    // The automatic apply that caused the check (its plan, then the apply) is recorded first, whatever
    // the order of the stages on the bus.
    expect(rs.map((r) => r.step)).toEqual(['plan', 'apply', 'upstream', 'verify']);
    expect(rs[2]?.calls).toEqual([{ api: 'guardduty:ArchiveFindings', requestId: 'req-up-1', outcome: 'updated' }]);
    expect(rs[3]).toMatchObject({ verdict: 'verified', before: { public: true }, after: { public: false } });
    expect(events).toEqual([
      expect.objectContaining({
        type: 'case.verified',
        verdict: 'verified',
        detail: expect.objectContaining({ evidenceHash: rs[3]?.hash }),
      }),
    ]);
    expect(String(events[0]?.detail?.evidenceSummary)).toContain(`Evidence record ${rs[3]?.hash}`);
    expect(c.evidenceHead).toBe(rs[3]?.hash);
  });

  it('retries with backoff and verifies when the change propagates on the third re-read', async () => {
    // Prepare
    await putCase(store, applied());
    const action = scriptedAction([PUBLIC, new AdapterError('throttled', 'slow down'), HOLDS]);
    // Act
    await createVerifyStage(deps(action)).handle(appliedEvent);
    // Assess
    expect(action.reads).toBe(3);
    expect(sleeps).toEqual([100, 200]);
    expect((await readCase()).verification).toMatchObject({ verdict: 'verified', attempts: 3 });
  });

  it('fails with what was observed when the fix never holds', async () => {
    // Prepare
    await putCase(store, applied());
    // Act
    const events = await createVerifyStage(deps(scriptedAction([PUBLIC]))).handle(appliedEvent);
    // Assess
    const c = await readCase();
    expect(c).toMatchObject({
      status: 'failed',
      closedAt: null,
      verification: { verdict: 'failed', observed: { public: true }, attempts: 3 },
    });
    expect(c.statusReason).toContain('not all four Block Public Access flags are on (after 3 re-reads)');
    expect(upstream.calls).toEqual([]);
    expect(events).toEqual([
      expect.objectContaining({
        type: 'case.verified',
        verdict: 'failed',
        detail: expect.objectContaining({ observed: { public: true } }),
      }),
    ]);
  });

  it('is inconclusive with the last error after every re-read failed transiently', async () => {
    // Prepare
    await putCase(store, applied());
    // Act
    const events = await createVerifyStage(deps(scriptedAction([new AdapterError('transient', 'S3 503')]))).handle(
      appliedEvent,
    );
    // Assess
    const c = await readCase();
    expect(c.status).toBe('pending-verification');
    expect(c.verification).toMatchObject({
      verdict: 'inconclusive',
      attempts: 3,
      reason: 'no verdict after 3 re-reads: error: S3 503',
    });
    expect(events).toEqual([expect.objectContaining({ type: 'case.verified', verdict: 'inconclusive' })]);
  });

  it('verifies a case left pending by throttled re-reads at the first sweep after the backoff', async () => {
    // Prepare: three throttled re-reads after the apply, then the bucket answers
    await putCase(store, applied());
    const throttled = new AdapterError('throttled', 'SlowDown');
    const action = scriptedAction([throttled, throttled, throttled, HOLDS]);
    await createVerifyStage(deps(action)).handle(appliedEvent);
    const pending = await readCase();
    // Act: a sweep before the first re-check is due (60 minutes), then one after
    clock.set('2026-11-20T10:30:00.000Z');
    const early = await reverifyRecent(deps(action), clock.now());
    clock.set('2026-11-20T11:00:00.000Z');
    const due = await reverifyRecent(deps(action), clock.now());
    // Assess
    expect(pending).toMatchObject({ status: 'pending-verification', verification: { verdict: 'inconclusive' } });
    expect(early).toMatchObject({ rechecked: 0, checked: 0 });
    expect(due).toMatchObject({ rechecked: 1, holding: 1 });
    expect(await readCase()).toMatchObject({
      status: 'verified',
      closedAt: '2026-11-20T11:00:00.000Z',
      verification: { verdict: 'verified', trigger: 'scheduled', rechecks: 1 },
    });
    expect(due.events).toEqual([expect.objectContaining({ type: 'case.verified', verdict: 'verified' })]);
    expect(action.reads).toBe(4);
  });

  it('re-checks an inconclusive verdict with doubling waits, silently, and says so when it gives up', async () => {
    // Prepare
    await putCase(store, applied());
    const action = scriptedAction([new AdapterError('throttled', 'SlowDown')]);
    const policy = VerificationPolicySchema.parse({
      attempts: 1,
      recheckInconclusive: { times: 2, afterMinutes: 60 },
    });
    const d = deps(action, { policy });
    await createVerifyStage(d).handle(appliedEvent);
    // Act: sweeps at +1 h (1st due), +2 h (2nd not due: 2 h after the 1st), +3 h (2nd due), +5 days
    const sweeps = [];
    for (const at of ['11:00', '12:00', '13:00']) {
      clock.set(`2026-11-20T${at}:00.000Z`);
      sweeps.push(await reverifyRecent(d, clock.now()));
    }
    clock.set('2026-11-25T10:00:00.000Z');
    sweeps.push(await reverifyRecent(d, clock.now()));
    // Assess
    expect(sweeps.map((r) => r.rechecked)).toEqual([1, 0, 1, 0]);
    expect(sweeps.map((r) => r.events.length)).toEqual([0, 0, 1, 0]);
    expect(sweeps[2]?.events[0]).toMatchObject({ type: 'case.verified', verdict: 'inconclusive' });
    const c = await readCase();
    expect(c).toMatchObject({ status: 'pending-verification', verification: { rechecks: 2 } });
    expect(c.statusReason).toContain('no further scheduled re-checks (2 made): a person must look');
    expect(action.reads).toBe(3);
  });

  it('stops at once and is inconclusive when the re-read is denied', async () => {
    // Prepare
    await putCase(store, applied());
    const action = scriptedAction([new AdapterError('denied', 'AccessDenied on s3:GetBucketAcl')]);
    // Act
    await createVerifyStage(deps(action)).handle(appliedEvent);
    // Assess
    expect(action.reads).toBe(1);
    expect((await readCase()).verification?.reason).toBe(
      're-read failed and is not retried: AccessDenied on s3:GetBucketAcl',
    );
  });

  it('verifies once when both the remediation event and the verify request of one apply arrive, twice each', async () => {
    // Prepare
    await putCase(store, applied());
    const action = scriptedAction([HOLDS]);
    const stage = createVerifyStage(deps(action));
    const request: PipelineEvent = {
      id: 'vr-1',
      type: 'case.verify-requested',
      caseKey: CASE_KEY,
      at: '2026-11-20T09:59:00.000Z',
      trigger: 'apply',
      actor: 'closeloop:remediate',
    };
    // Act
    const out = [
      await stage.handle(appliedEvent),
      await stage.handle(request),
      await stage.handle(appliedEvent),
      await stage.handle(request),
    ];
    // Assess: one read, one record; a repeat hands back the same event (same id: downstream sees it once).
    expect(action.reads).toBe(1);
    expect(new Set(out.flat().map((e) => `${e.type} ${e.id}`))).toEqual(new Set([`case.verified ${out[0]?.[0]?.id}`]));
    expect((await records()).filter((r) => r.step === 'verify')).toHaveLength(1);
  });

  it('finishes the case and the events from the record when the first run stopped right after recording', async () => {
    // Prepare: the first delivery records the verdict, then its case write fails (the function died).
    await putCase(store, applied());
    const action = scriptedAction([HOLDS]);
    let failCaseWrite = true;
    const flaky = Object.create(store) as MemoryDocStore;
    flaky.put = async (collection, id, value, options) => {
      if (collection === 'cases' && failCaseWrite) {
        failCaseWrite = false;
        throw new Error('function timed out');
      }
      return store.put(collection, id, value, options);
    };
    const stage = createVerifyStage(deps(action, { store: flaky }));
    await expect(stage.handle(appliedEvent)).rejects.toThrow('function timed out');
    const stranded = await readCase();
    // Act: the message comes back.
    const out = await stage.handle(appliedEvent);
    // Assess
    expect(stranded.status).toBe('remediated');
    expect(action.reads).toBe(1);
    expect((await records()).filter((r) => r.step === 'verify')).toHaveLength(1);
    expect(await readCase()).toMatchObject({ status: 'verified', verification: { verdict: 'verified' } });
    expect(out).toHaveLength(1);
    expect(out[0]).toMatchObject({ type: 'case.verified', verdict: 'verified' });
    expect(upstream.calls).toHaveLength(1);
  });

  it('announces the verdict under the same id when the run died between the case write and the publish and the event comes back', async () => {
    // Prepare: a local run (durable bus) whose process dies once the verify stage has written the case and
    // before its events are queued: the stage's answer never returns to the bus
    await putCase(store, applied());
    const action = scriptedAction([HOLDS]);
    const stage = createVerifyStage(deps(action));
    let lost: PipelineEvent[] = [];
    let kill: () => void = () => {};
    const killed = new Promise<void>((resolve) => {
      kill = resolve;
    });
    const dying: Stage = {
      ...stage,
      async handle(event) {
        lost = await stage.handle(event);
        kill();
        return new Promise<never>(() => {});
      },
    };
    const dead = new InProcessBus([dying], silentLogger, undefined, store, { clock });
    await dead.publish([appliedEvent]);
    await Promise.race([killed, dead.drain()]);
    await dead.close(); // its lease renewals end with the process
    const stranded = await readCase();
    // Act: the next run takes the event back once its lease has run out
    clock.set(new Date(clock.now().getTime() + QUEUE_LEASE_MS + 1_000).toISOString());
    const announced: PipelineEvent[] = [];
    const ticketStage: Stage = {
      name: 'tickets',
      handles: ['case.verified', 'case.reopened'],
      async handle(event) {
        announced.push(event);
        return [];
      },
    };
    const next = new InProcessBus([stage, ticketStage], silentLogger, undefined, store, { clock });
    const recovered = await next.recover();
    await next.drain();
    // Assess: the redelivery finished from the evidence record: one re-read, the same event
    expect(stranded.status).toBe('verified');
    expect(lost).toEqual([expect.objectContaining({ type: 'case.verified', verdict: 'verified' })]);
    expect(recovered).toBe(1);
    expect(announced).toEqual(lost);
    expect(action.reads).toBe(1);
  });

  it('reopens a verified case with what changed when scheduled re-verification finds a regression', async () => {
    // Prepare
    await putCase(
      store,
      applied({
        status: 'verified',
        closedAt: '2026-11-10T10:00:00.000Z',
        verification: {
          verdict: 'verified',
          at: '2026-11-10T10:00:00.000Z',
          reason: 'ok',
          observed: { public: false },
          attempts: 1,
          trigger: 'apply',
          upstream: [],
        },
      }),
    );
    // Act
    const r = await reverifyRecent(deps(scriptedAction([PUBLIC])), clock.now());
    // Assess
    expect(r).toMatchObject({ checked: 1, reopened: 1, holding: 0 });
    const c = await readCase();
    expect(c).toMatchObject({ status: 'reopened', closedAt: null, reopenCount: 1 });
    expect(c.statusReason).toContain('regression: the fix no longer holds');
    expect(c.statusReason).toContain('changed: public: false → true');
    expect(r.events).toEqual([
      expect.objectContaining({
        type: 'case.reopened',
        actor: 'closeloop:verify',
        detail: expect.objectContaining({ evidenceHash: c.evidenceHead }),
      }),
    ]);
  });

  it('counts one reopen when the source reports the regression while the scheduled re-check is reading it', async () => {
    // Prepare: a verified case; while the re-check reads the bucket, decide re-opens the case on the finding
    // active again (its own write, with its own reopen)
    await putCase(
      store,
      applied({
        status: 'verified',
        closedAt: '2026-11-10T10:00:00.000Z',
        verification: {
          verdict: 'verified',
          at: '2026-11-10T10:00:00.000Z',
          reason: 'ok',
          observed: { public: false },
          attempts: 1,
          trigger: 'apply',
          upstream: [],
        },
      }),
    );
    const action = scriptedAction([PUBLIC]);
    const read = action.verify.bind(action);
    action.verify = async (...args) => {
      const c = await readCase();
      if (c.status === 'verified')
        await putCase(store, {
          ...c,
          status: 'reopened',
          statusReason: 'active again at the source after verified closure (regression)',
          closedAt: null,
          reopenCount: c.reopenCount + 1,
        });
      return read(...args);
    };
    // Act
    await reverifyRecent(deps(action), clock.now());
    // Assess: one regression, one reopen
    const c = await readCase();
    expect(c).toMatchObject({
      status: 'reopened',
      closedAt: null,
      reopenCount: 1,
      verification: { verdict: 'failed' },
    });
  });

  it('updates a finding at its source once when scheduled re-checks find the fix still holding', async () => {
    // Prepare
    await putCase(store, applied());
    const d = deps(scriptedAction([HOLDS]));
    await createVerifyStage(d).handle(appliedEvent);
    // Act: four sweeps, six hours apart
    for (let i = 1; i <= 4; i++) {
      clock.set(new Date(Date.parse('2026-11-20T10:00:00.000Z') + i * 6 * 3_600_000).toISOString());
      await reverifyRecent(d, clock.now());
    }
    // Assess
    expect(upstream.calls).toEqual([makeFinding().key]);
    const steps = (await records()).map((r) => r.step);
    expect(steps.filter((s) => s === 'upstream')).toHaveLength(1);
    expect(steps.filter((s) => s === 'verify')).toHaveLength(5);
    const c = await readCase();
    expect(c).toMatchObject({ status: 'verified', closedAt: '2026-11-20T10:00:00.000Z' });
    expect(c.verification?.at).toBe('2026-11-21T10:00:00.000Z');
    expect(c.verification?.upstream).toEqual([
      {
        source: 'guardduty',
        findingKey: makeFinding().key,
        outcome: 'updated: archived',
        at: '2026-11-20T10:00:00.000Z',
      },
    ]);
  });

  it('tries a failed source update again at the next re-check, and only that one', async () => {
    // Prepare
    await putCase(store, applied());
    const failing: UpstreamStatus = {
      async markResolved(f) {
        upstream.calls.push(f.key);
        return {
          source: f.source,
          outcome: 'failed',
          api: 'guardduty:ArchiveFindings',
          requestId: null,
          detail: 'AccessDenied',
        };
      },
    };
    await createVerifyStage(deps(scriptedAction([HOLDS]), { upstream: failing })).handle(appliedEvent);
    clock.set('2026-11-20T16:00:00.000Z');
    // Act
    await reverifyRecent(deps(scriptedAction([HOLDS])), clock.now());
    clock.set('2026-11-20T22:00:00.000Z');
    await reverifyRecent(deps(scriptedAction([HOLDS])), clock.now());
    // Assess
    expect(upstream.calls).toEqual([makeFinding().key, makeFinding().key]);
    expect((await readCase()).verification?.upstream).toEqual([
      {
        source: 'guardduty',
        findingKey: makeFinding().key,
        outcome: 'updated: archived',
        at: '2026-11-20T16:00:00.000Z',
      },
    ]);
  });

  describe('a sweep with a time budget', () => {
    const BucketTarget = z.object({ bucket: z.string() });
    /** Five closed cases; case-5 was checked longest ago, case-1 last. */
    const KEYS = ['case-1', 'case-2', 'case-3', 'case-4', 'case-5'];
    async function putClosedCases(): Promise<void> {
      for (const [i, key] of KEYS.entries()) {
        const at = `2026-11-15T1${5 - i}:00:00.000Z`;
        await putCase(
          store,
          applied({
            key,
            status: 'verified',
            closedAt: '2026-11-15T09:00:00.000Z',
            remediation: { target: { bucket: key, region: 'us-east-1' } },
            verification: { verdict: 'verified', at, reason: 'ok', attempts: 1, trigger: 'apply', upstream: [] },
          }),
        );
      }
    }
    /** Re-reads that take a second of the clock each; `case-4`'s bucket is public again. */
    function slowAction(reads: string[]): VerifiableAction {
      return {
        ...scriptedAction([HOLDS]),
        async verify(target: unknown): Promise<VerifyResult> {
          const { bucket } = BucketTarget.parse(target);
          reads.push(bucket);
          clock.set(new Date(clock.now().getTime() + 1_000).toISOString());
          return bucket === 'case-4' ? PUBLIC : HOLDS;
        },
      };
    }

    it('stops before its budget with the rest left, publishes what it found, and the next run starts with the rest', async () => {
      // Prepare
      await putClosedCases();
      const reads: string[] = [];
      const policy = VerificationPolicySchema.parse({ attempts: 1 });
      const d = deps(slowAction(reads), { policy });
      const published: PipelineEvent[] = [];
      const publish = async (events: readonly PipelineEvent[]) => {
        published.push(...events);
      };
      // Act: two runs six hours apart, each with 3.5 s
      const until1 = clock.now().getTime() + 3_500;
      const first = await reverifyRecent(d, clock.now(), { until: until1, publish });
      const firstEnded = clock.now().getTime();
      clock.set('2026-11-20T16:00:00.000Z');
      const second = await reverifyRecent(d, clock.now(), { until: clock.now().getTime() + 3_500, publish });
      // Assess: the oldest checks first; every case once before any twice
      expect(first).toMatchObject({ due: 5, checked: 3, holding: 2, reopened: 1, remaining: 2, events: [] });
      expect(firstEnded).toBeLessThanOrEqual(until1);
      expect(published).toEqual([expect.objectContaining({ type: 'case.reopened', caseKey: 'case-4' })]);
      expect(second).toMatchObject({ due: 4, checked: 3, holding: 3, remaining: 1 });
      expect(reads).toEqual(['case-5', 'case-4', 'case-3', 'case-2', 'case-1', 'case-5']);
    });

    it('leaves to an overlapping run the cases it checked first, instead of reading and acting again', async () => {
      // Prepare: while run A re-reads its first case, run B (the schedule delivered twice) runs whole
      await putClosedCases();
      const reads: string[] = [];
      const policy = VerificationPolicySchema.parse({ attempts: 1 });
      const slow = slowAction(reads);
      let runB: Awaited<ReturnType<typeof reverifyRecent>> | undefined;
      const overlapping: VerifiableAction = {
        ...slow,
        async verify(target, ctx) {
          runB ??= await reverifyRecent(deps(slow, { policy }), clock.now());
          return slow.verify(target, ctx);
        },
      };
      // Act
      const runA = await reverifyRecent(deps(overlapping, { policy }), clock.now());
      // Assess: B checked everything; A only finished the case both were reading, on B's record
      expect(runB).toMatchObject({ due: 5, checked: 5, reopened: 1 });
      expect(runA).toMatchObject({ due: 5, checked: 1, overtaken: 4, reopened: 0, events: [] });
      expect(reads.filter((bucket) => bucket !== 'case-5')).toEqual(['case-4', 'case-3', 'case-2', 'case-1']);
      const case4 = CaseSchema.parse((await store.get('cases', 'case-4'))?.value);
      expect(case4).toMatchObject({ status: 'reopened', reopenCount: 1 });
      const verifies = (await records()).filter((r) => r.step === 'verify');
      expect(verifies).toHaveLength(5);
    });

    it("keeps the overlapping run's verdict when both re-read the same case at once and saw it differently", async () => {
      // Prepare: run A re-reads case-5 (holding, to A); meanwhile run B re-reads it too and sees it public
      await putClosedCases();
      const policy = VerificationPolicySchema.parse({ attempts: 1 });
      const seesPublic: VerifiableAction = { ...scriptedAction([HOLDS]), verify: async () => PUBLIC };
      let runB: Awaited<ReturnType<typeof reverifyRecent>> | undefined;
      const overlapping: VerifiableAction = {
        ...scriptedAction([HOLDS]),
        async verify(target) {
          if (BucketTarget.parse(target).bucket === 'case-5')
            runB ??= await reverifyRecent(deps(seesPublic, { policy }), clock.now());
          return HOLDS;
        },
      };
      // Act
      const runA = await reverifyRecent(deps(overlapping, { policy }), clock.now());
      // Assess: one verify record for case-5 (B's, failed) and the case as that record says, reopened once
      const case5 = CaseSchema.parse((await store.get('cases', 'case-5'))?.value);
      const verifies = (await records()).filter((r) => r.step === 'verify' && r.caseKey === 'case-5');
      expect(verifies.map((r) => r.verdict)).toEqual(['failed']);
      expect(case5).toMatchObject({ status: 'reopened', reopenCount: 1, closedAt: null });
      expect(case5.verification?.verdict).toBe('failed');
      expect(runB?.reopened).toBe(5); // B sees every bucket public
      // A finished the case from B's record: whatever it announces has the ids B's announcement had
      const ids = (r: { events: readonly PipelineEvent[] } | undefined) => (r?.events ?? []).map((e) => e.id);
      expect(ids(runB)).toEqual(expect.arrayContaining(ids(runA)));
    });

    it('keeps what it could not publish and publishes it first in the next run (the cases are already written)', async () => {
      // Prepare: case-4 regressed; the bus refuses the first publish
      await putClosedCases();
      const policy = VerificationPolicySchema.parse({ attempts: 1 });
      const d = deps(slowAction([]), { policy });
      const published: PipelineEvent[] = [];
      let refusals = 1;
      const publish = async (events: readonly PipelineEvent[]) => {
        if (events.some((e) => e.type === 'case.reopened') && refusals-- > 0) throw new Error('PutEvents: throttled');
        published.push(...events);
      };
      // Act: a run whose publish of the regression fails, then the next run six hours later
      const first = await reverifyRecent(d, clock.now(), { publish });
      const keptAfterFirst = await store.list(UNPUBLISHED);
      clock.set('2026-11-20T16:00:00.000Z');
      const second = await reverifyRecent(d, clock.now(), { publish });
      // Assess
      expect(first).toMatchObject({ reopened: 1, errors: 1 });
      expect(keptAfterFirst).toHaveLength(1);
      expect(second).toMatchObject({ republished: 1 });
      expect(published.filter((e) => e.type === 'case.reopened').map((e) => e.caseKey)).toEqual(['case-4']);
      expect(await store.list(UNPUBLISHED)).toEqual([]);
    });

    it('publishes in the next run, once and under the same ids, the regression of a run killed between its case write and its publish', async () => {
      // Prepare: case-4 regressed; the process dies while publishing its case.reopened (a publish that never
      // returns: nothing after it runs), its case already written reopened
      await putClosedCases();
      const policy = VerificationPolicySchema.parse({ attempts: 1 });
      const d = deps(slowAction([]), { policy });
      let lost: PipelineEvent[] = [];
      let kill: () => void = () => {};
      const killed = new Promise<void>((resolve) => {
        kill = resolve;
      });
      const dying = async (events: readonly PipelineEvent[]) => {
        if (!events.some((e) => e.type === 'case.reopened')) return;
        lost = [...events];
        kill();
        await new Promise<never>(() => {});
      };
      await Promise.race([killed, reverifyRecent(d, clock.now(), { publish: dying })]);
      const stranded = CaseSchema.parse((await store.get('cases', 'case-4'))?.value);
      const published: PipelineEvent[] = [];
      const publish = async (events: readonly PipelineEvent[]) => {
        published.push(...events);
      };
      // Act: the next run six hours later, and the one after it
      clock.set('2026-11-20T16:00:00.000Z');
      const next = await reverifyRecent(d, clock.now(), { publish });
      clock.set('2026-11-20T22:00:00.000Z');
      await reverifyRecent(d, clock.now(), { publish });
      // Assess
      expect(stranded).toMatchObject({ status: 'reopened', reopenCount: 1 });
      expect(lost).toEqual([expect.objectContaining({ type: 'case.reopened', caseKey: 'case-4' })]);
      expect(published.filter((e) => e.type === 'case.reopened')).toEqual(lost);
      expect(next).toMatchObject({ republished: 1, errors: 0 });
      expect(await store.list(UNPUBLISHED)).toEqual([]);
      expect(CaseSchema.parse((await store.get('cases', 'case-4'))?.value)).toMatchObject({ reopenCount: 1 });
    });

    it('checks every due case in one run without a budget', async () => {
      // Prepare
      await putClosedCases();
      const reads: string[] = [];
      // Act
      const r = await reverifyRecent(
        deps(slowAction(reads), { policy: VerificationPolicySchema.parse({ attempts: 1 }) }),
        clock.now(),
      );
      // Assess
      expect(r).toMatchObject({ due: 5, checked: 5, remaining: 0, reopened: 1 });
      expect(r.events).toEqual([expect.objectContaining({ type: 'case.reopened', caseKey: 'case-4' })]);
      expect(reads).toHaveLength(5);
    });

    it('goes on past a case whose re-check throws; a repeated run finishes that one from its record and re-reads nothing', async () => {
      // Prepare: case-4's case write fails once (the verdict is recorded first)
      await putClosedCases();
      const reads: string[] = [];
      let failCaseWrite = true;
      const flaky = Object.create(store) as MemoryDocStore;
      flaky.put = async (collection, id, value, options) => {
        if (collection === 'cases' && id === 'case-4' && failCaseWrite) {
          failCaseWrite = false;
          throw new Error('DynamoDB 500');
        }
        return store.put(collection, id, value, options);
      };
      const d = deps(slowAction(reads), { store: flaky, policy: VerificationPolicySchema.parse({ attempts: 1 }) });
      // Act: the run, then the schedule's repeat (an at-least-once delivery) six minutes later, which
      // leaves what was checked within the hour alone
      const first = await reverifyRecent(d, clock.now());
      clock.set('2026-11-20T10:06:00.000Z');
      const repeat = await reverifyRecent(d, clock.now(), { minAgeMs: 3_600_000 });
      // Assess
      expect(first).toMatchObject({ due: 5, checked: 4, errors: 1, reopened: 0 });
      expect(reads.slice(0, 5)).toEqual(['case-5', 'case-4', 'case-3', 'case-2', 'case-1']);
      expect(repeat).toMatchObject({ due: 1, checked: 1, errors: 0, reopened: 1 });
      expect(reads).toHaveLength(5);
      const regression = (await records()).filter((r) => r.step === 'verify' && r.caseKey === 'case-4');
      expect(regression).toHaveLength(1);
      expect(repeat.events).toEqual([
        expect.objectContaining({
          type: 'case.reopened',
          caseKey: 'case-4',
          detail: expect.objectContaining({ evidenceHash: regression[0]?.hash }),
        }),
      ]);
      expect(CaseSchema.parse((await store.get('cases', 'case-4'))?.value)).toMatchObject({
        status: 'reopened',
        reopenCount: 1,
      });
    });
  });

  it("retries a failed update of the finding's Security Hub copy at the next re-check, alone, until it is made", async () => {
    // Prepare: a case that came through GuardDuty and its Security Hub copy; the copy's update is refused once
    const calls: string[] = [];
    const guardduty: UpstreamStatus = {
      async markResolved(f) {
        calls.push(f.source);
        return {
          source: f.source,
          outcome: 'updated',
          api: 'guardduty:ArchiveFindings',
          requestId: 'req-gd',
          detail: 'archived',
        };
      },
    };
    let refusals = 1;
    const securityhub: UpstreamStatus = {
      async markResolved(f) {
        calls.push(f.source);
        if (refusals-- > 0)
          throw new AdapterError('denied', 'securityhub:BatchUpdateFindings failed (denied: AccessDeniedException)');
        return {
          source: f.source,
          outcome: 'updated',
          api: 'securityhub:BatchUpdateFindings',
          requestId: 'req-sh',
          detail: 'workflow set to RESOLVED',
        };
      },
    };
    const d = deps(scriptedAction([HOLDS]), { upstream: new RoutingUpstreamStatus({ guardduty, securityhub }) });
    await putCase(store, applied({ sources: ['guardduty', 'securityhub'] }));
    const key = makeFinding().key;
    // Act: the verification after the apply
    await createVerifyStage(d).handle(appliedEvent);
    const first = await readCase();
    // Assess: the finding's own source updated, its copy's failure recorded as such
    expect(calls).toEqual(['guardduty', 'securityhub']);
    expect(first.verification?.upstream).toEqual([
      { source: 'guardduty', findingKey: key, outcome: 'updated: archived', at: '2026-11-20T10:00:00.000Z' },
      {
        source: 'securityhub',
        findingKey: key,
        outcome: 'failed: securityhub:BatchUpdateFindings failed (denied: AccessDeniedException)',
        at: '2026-11-20T10:00:00.000Z',
      },
    ]);
    // Act: the next scheduled re-check
    clock.set('2026-11-20T16:00:00.000Z');
    await reverifyRecent(d, clock.now());
    const second = await readCase();
    // Assess: only the copy tried again, and its record says only that
    expect(calls).toEqual(['guardduty', 'securityhub', 'securityhub']);
    expect(second.verification?.upstream).toEqual([
      { source: 'guardduty', findingKey: key, outcome: 'updated: archived', at: '2026-11-20T10:00:00.000Z' },
      {
        source: 'securityhub',
        findingKey: key,
        outcome: 'updated: workflow set to RESOLVED',
        at: '2026-11-20T16:00:00.000Z',
      },
    ]);
    const upstreamRecords = (await records()).filter((r) => r.step === 'upstream');
    expect(upstreamRecords.map((r) => r.summary)).toEqual([
      'guardduty: updated: archived; securityhub: failed: securityhub:BatchUpdateFindings failed (denied: AccessDeniedException)',
      'securityhub: updated: workflow set to RESOLVED',
    ]);
    // Act: a third re-check
    clock.set('2026-11-20T22:00:00.000Z');
    await reverifyRecent(d, clock.now());
    // Assess: nothing more upstream
    expect(calls).toHaveLength(3);
    expect((await records()).filter((r) => r.step === 'upstream')).toHaveLength(2);
    expect((await readCase()).verification?.upstream).toEqual(second.verification?.upstream);
  });

  describe('a verified case whose ticket close was never delivered', () => {
    const CLOSED_AT = '2026-11-20T08:00:00.000Z'; // two hours before the clock: past the grace period
    const OTHER = `${CASE_KEY}#control`;
    let sink: LocalTicketSink;
    let tickets: Stage;

    /** A ticket in the local sink for `caseKey`, and the case's record of it (`status` as closeloop knows it). */
    async function ticketFor(caseKey: string, status: 'open' | 'done' | 'reopened' = 'open') {
      const ref = await sink.createTicket({
        caseKey,
        caseLabel: `closeloop-${shortHash(caseKey)}`,
        project: undefined,
        issueType: 'Bug',
        summary: 'S3 bucket public',
        description: { type: 'doc', version: 1, content: [] },
        labels: [],
        priority: undefined,
        dueDate: undefined,
        assigneeId: undefined,
        components: [],
        parentKey: undefined,
      });
      return { ...ref, createdAt: '2026-11-19T10:00:00.000Z', status };
    }
    /** A case closed on a verified verdict at `closedAt` whose ticket is recorded `status`. */
    async function putVerified(key: string, closedAt = CLOSED_AT, status: 'open' | 'done' | 'reopened' = 'open') {
      await putCase(
        store,
        applied({
          key,
          status: 'verified',
          closedAt,
          evidenceHead: 'a'.repeat(64),
          ticket: await ticketFor(key, status),
          verification: {
            verdict: 'verified',
            at: closedAt,
            reason: 'ok',
            attempts: 1,
            trigger: 'apply',
            upstream: [],
          },
        }),
      );
    }
    const caseOf = async (key: string): Promise<Case> => CaseSchema.parse((await store.get('cases', key))?.value);
    /** Runs a sweep that publishes into `into`. */
    const sweep = (into: PipelineEvent[]) =>
      reverifyRecent(deps(scriptedAction([HOLDS])), clock.now(), {
        publish: async (events) => {
          into.push(...events);
        },
      });
    const verifiedIn = (events: readonly PipelineEvent[]) => events.filter((e) => e.type === 'case.verified');

    beforeEach(() => {
      sink = new LocalTicketSink(store, clock);
      tickets = createTicketStage({ store, sink, clock, log: silentLogger, policy: ticketPolicy() });
    });

    it('sends its close again under one id, sweep after sweep, and the ticket stage closes the ticket once', async () => {
      // Prepare
      await putVerified(CASE_KEY);
      const first: PipelineEvent[] = [];
      const second: PipelineEvent[] = [];
      // Act: two sweeps six hours apart (the first re-check moves the verification's time), then the ticket stage
      // gets both events, the second twice (a redelivery)
      const r1 = await sweep(first);
      clock.set('2026-11-20T16:00:00.000Z');
      const r2 = await sweep(second);
      for (const e of [...first, ...second, ...second]) await tickets.handle(e);
      const third: PipelineEvent[] = [];
      clock.set('2026-11-20T22:00:00.000Z');
      const r3 = await sweep(third);
      // Assess
      expect(r1).toMatchObject({ reconciled: 1, holding: 1 });
      expect(first).toEqual([
        expect.objectContaining({
          id: expect.stringMatching(/^reconcile:[0-9a-f]{32}$/),
          type: 'case.verified',
          caseKey: CASE_KEY,
          at: CLOSED_AT,
          verdict: 'verified',
          detail: expect.objectContaining({
            evidenceHash: 'a'.repeat(64),
            evidenceSummary: expect.stringContaining('not delivered'),
          }),
        }),
      ]);
      expect(r2.reconciled).toBe(1);
      expect(second.map((e) => e.id)).toEqual(first.map((e) => e.id));
      const t = await sink.get('LOCAL-1');
      expect(t?.status).toBe('Done');
      expect(t?.comments.filter((c) => c.text.startsWith('Verified fixed'))).toHaveLength(1);
      expect(t?.comments[0]?.text).toContain('not necessarily the verify record');
      expect((await caseOf(CASE_KEY)).ticket?.status).toBe('done');
      expect(r3.reconciled).toBe(0);
      expect(verifiedIn(third)).toEqual([]);
    });

    it.each([
      ['closed within the grace period', () => putVerified(CASE_KEY, '2026-11-20T09:30:00.000Z')],
      ['whose ticket is recorded done', () => putVerified(CASE_KEY, CLOSED_AT, 'done')],
      ['whose ticket was reopened', () => putVerified(CASE_KEY, CLOSED_AT, 'reopened')],
      [
        'a person reopened (the case reopened, its ticket not marked yet)',
        async () => {
          await putVerified(CASE_KEY);
          const c = await caseOf(CASE_KEY);
          await putCase(store, { ...c, status: 'reopened', closedAt: null, reopenCount: 1 });
        },
      ],
      [
        'without a ticket',
        async () => {
          await putVerified(CASE_KEY);
          await putCase(store, { ...(await caseOf(CASE_KEY)), ticket: null });
        },
      ],
      [
        'whose kept verdict events are not out yet',
        async () => {
          await putVerified(CASE_KEY);
          // Kept by a run that died; their record cannot be found, so they stay kept this run.
          const kept: PipelineEvent = {
            id: 'verified:kept',
            type: 'case.verified',
            caseKey: CASE_KEY,
            at: CLOSED_AT,
            verdict: 'verified',
            detail: { evidenceHash: 'f'.repeat(64) },
          };
          await store.put(UNPUBLISHED, kept.id, { events: [kept], at: CLOSED_AT });
        },
      ],
    ])('sends nothing for a case %s', async (_name, prepare) => {
      // Prepare: the case, and a control case whose close is owed (created first: it has LOCAL-1)
      await putVerified(OTHER);
      await prepare();
      const published: PipelineEvent[] = [];
      // Act
      const r = await sweep(published);
      // Assess: only the control's close
      expect(r.reconciled).toBe(1);
      expect(verifiedIn(published)).toEqual([expect.objectContaining({ caseKey: OTHER, verdict: 'verified' })]);
    });

    it('leaves a ticket a person reopened after the sweep read the case open', async () => {
      // Prepare: the sweep sends the close; the person's reopen reaches the ticket stage first
      await putVerified(CASE_KEY);
      const published: PipelineEvent[] = [];
      await sweep(published);
      await tickets.handle({
        id: 'jira-reopen-1',
        type: 'case.reopened',
        caseKey: CASE_KEY,
        at: '2026-11-20T10:00:30.000Z',
        reason: 'ticket reopened in Jira',
        actor: 'jira:alice@acme.example',
      });
      // Act
      for (const e of verifiedIn(published)) await tickets.handle(e);
      // Assess
      expect(verifiedIn(published)).toHaveLength(1);
      const t = await sink.get('LOCAL-1');
      expect(t?.status).toBe('To Do');
      expect(t?.comments).toEqual([]);
      expect((await caseOf(CASE_KEY)).ticket?.status).toBe('reopened');
    });
  });

  it('leaves cases verified before the re-verification window alone', async () => {
    // Prepare
    await putCase(store, applied({ status: 'verified', closedAt: '2026-09-01T10:00:00.000Z' }));
    const action = scriptedAction([PUBLIC]);
    // Act
    const r = await reverifyRecent(deps(action), clock.now());
    // Assess
    expect(r.checked).toBe(0);
    expect(action.reads).toBe(0);
  });

  it('reopens with the evidence when a person closes the ticket and the bucket is still public', async () => {
    // Prepare
    await putCase(store, makeCase({ status: 'open', remediation: { mode: 'manual', state: 'none' } }));
    const closed: PipelineEvent = {
      id: 'jira-1',
      type: 'case.verify-requested',
      caseKey: CASE_KEY,
      at: '2026-11-20T09:00:00.000Z',
      trigger: 'ticket-closed',
      actor: 'web-lead@acme.example',
    };
    // Act
    const events = await createVerifyStage(deps(scriptedAction([PUBLIC]))).handle(closed);
    // Assess
    const c = await readCase();
    expect(c).toMatchObject({ status: 'reopened', reopenCount: 1 });
    expect(c.statusReason).toMatch(/^ticket closed by web-lead@acme.example but the fix does not hold/);
    const [verify] = (await records()).filter((r) => r.step === 'verify');
    expect(verify).toMatchObject({
      verdict: 'failed',
      after: { public: true },
      detail: expect.objectContaining({ requestedBy: 'web-lead@acme.example' }),
    });
    expect(events).toEqual([
      expect.objectContaining({
        type: 'case.reopened',
        detail: expect.objectContaining({ evidenceHash: verify?.hash, observed: { public: true } }),
      }),
    ]);
  });

  it('writes only the fields the verifier owns', async () => {
    // Prepare
    const before = applied();
    await putCase(store, before);
    // Act
    await createVerifyStage(deps(scriptedAction([HOLDS]))).handle(appliedEvent);
    // Assess
    const after = await readCase();
    const owned = ['verification', 'status', 'statusReason', 'closedAt', 'reopenCount', 'evidenceHead'];
    const strip = (c: Case) => Object.fromEntries(Object.entries(c).filter(([k]) => !owned.includes(k)));
    expect(strip(after)).toEqual(strip(before));
  });

  it("verifies a source resolution only once the decision's case write has landed, then once", async () => {
    // Prepare: the case open at version 1; the ingest announced its resolution (version 2) ahead of the write
    await putCase(store, makeCase({ remediation: { action: null, mode: 'none', state: 'none' } }));
    const stage = createVerifyStage(deps(undefined));
    const request: PipelineEvent = {
      id: 'verify:early',
      type: 'case.verify-requested',
      caseKey: CASE_KEY,
      caseVersion: 2,
      at: '2026-11-20T09:00:00.000Z',
      trigger: 'source-resolved',
      actor: 'source:guardduty',
    };
    // Act 1: the early delivery
    const early = await stage.handle(request).then(
      () => undefined,
      (e: unknown) => e,
    );
    const before = {
      records: await records(),
      stored: await store.get('cases', CASE_KEY),
      upstream: [...upstream.calls],
    };
    // Act 2: the ingest's writes land; the request is delivered again, twice
    await putFinding(store, makeFinding({ status: 'resolved', statusReason: 'service.archived' }));
    const resolved = {
      ...(await readCase()),
      sourceStatus: 'resolved' as const,
      status: 'pending-verification' as const,
    };
    await store.put('cases', CASE_KEY, { ...resolved, updatedAt: '2026-11-20T09:00:00.000Z' }, { expectVersion: 1 });
    const events = [...(await stage.handle(request)), ...(await stage.handle(request))];
    // Assess
    expect(early).toBeInstanceOf(CaseNotWrittenError);
    expect(errorMessage(early)).toBe(`case ${CASE_KEY} not written yet at version 2 (stored: 1)`);
    expect(before.records).toEqual([]);
    expect(before.stored?.version).toBe(1);
    expect(before.upstream).toEqual([]);
    expect(await readCase()).toMatchObject({ status: 'verified', verification: { verdict: 'verified' } });
    expect((await records()).filter((r) => r.step === 'verify')).toHaveLength(1);
    expect(new Set(events.map((e) => `${e.type} ${e.id}`)).size).toBe(1);
  });

  it("announces the first attempt's verdict again when the request comes back after decide wrote the case again", async () => {
    // Prepare: a resolved case; its verification is recorded, but the process dies before publishing the
    // events (its SQS message comes back); meanwhile a repeat of the resolved finding makes decide write the case
    await resolvedWithoutAction('service.archived');
    const stage = createVerifyStage(deps(undefined));
    const request: PipelineEvent = {
      id: 'verify:0123456789abcdef0123456789abcdef',
      type: 'case.verify-requested',
      caseKey: CASE_KEY,
      at: '2026-11-20T09:00:00.000Z',
      trigger: 'source-resolved',
      actor: 'source:guardduty',
    };
    const lost = await stage.handle(request);
    const verified = await readCase();
    await putCase(store, { ...verified, occurrences: verified.occurrences + 1, updatedAt: '2026-11-20T09:05:00.000Z' });
    // Act: the redelivery
    const again = await stage.handle(request);
    // Assess: the same verdict under the same id (the ticket closes once), one verify record
    expect(lost.map((e) => e.type)).toEqual(['case.verified']);
    expect(again).toEqual(lost);
    expect((await records()).filter((r) => r.step === 'verify')).toHaveLength(1);
  });

  it("stays inconclusive, never verified on the source's word, when the own account cannot be read for the re-read", async () => {
    // Prepare: an applied fix the source already reports resolved; STS is throttled when the verifier asks
    // which account its credentials are in, so the re-read the fix is owed cannot be made now.
    await putFinding(store, makeFinding({ status: 'resolved', statusReason: 'Workflow.Status RESOLVED' }));
    await putCase(store, applied({ sourceStatus: 'resolved' }));
    const action = scriptedAction([HOLDS]);
    const ctx = {
      ...testContext(),
      awsAccount: async () => {
        throw new AdapterError('throttled', 'sts:GetCallerIdentity failed (throttled: Throttling)');
      },
    };
    // Act
    const events = await createVerifyStage(deps(action, { ctx })).handle({
      id: 'vr-sts',
      type: 'case.verify-requested',
      caseKey: CASE_KEY,
      at: '2026-11-20T10:00:00.000Z',
      trigger: 'source-resolved',
      actor: 'closeloop:decide',
    });
    // Assess
    const c = await readCase();
    expect(c).toMatchObject({
      status: 'pending-verification',
      closedAt: null,
      verification: { verdict: 'inconclusive' },
    });
    expect(c.verification?.reason).toContain(
      "no live re-read: the AWS account of this run's credentials could not be read",
    );
    expect(upstream.calls).toEqual([]);
    expect(events).toEqual([expect.objectContaining({ type: 'case.verified', verdict: 'inconclusive' })]);
    const verify = (await records()).find((r) => r.step === 'verify');
    expect(verify).toMatchObject({ verdict: 'inconclusive', detail: { basis: 'none' } });
    expect(verify?.calls).toEqual([
      expect.objectContaining({ api: 's3.block-public-access:verify', outcome: expect.stringContaining('throttled') }),
    ]);
  });

  describe('findings with no action (cloud access present)', () => {
    it("verifies on the source's own state and says that no action can re-read the resource", async () => {
      // Prepare
      await resolvedWithoutAction('Workflow.Status RESOLVED');
      // Act
      await createVerifyStage(deps(undefined)).handle({
        id: 'vr-1',
        type: 'case.verify-requested',
        caseKey: CASE_KEY,
        at: '2026-11-20T09:00:00.000Z',
        trigger: 'source-resolved',
        actor: 'source:guardduty',
      });
      // Assess
      const c = await readCase();
      expect(c).toMatchObject({ status: 'verified', verification: { verdict: 'verified', attempts: 0 } });
      expect(c.verification?.reason).toBe(
        'source reports resolved (Workflow.Status RESOLVED); no action can re-read this resource',
      );
      expect((await records()).find((r) => r.step === 'verify')?.detail.basis).toBe('source-state');
    });

    it('reopens, inconclusive, when a person closes the ticket while the source still reports it active', async () => {
      // Prepare
      await putCase(
        store,
        makeCase({
          status: 'open',
          remediation: { action: null, mode: 'none' },
          ticket: { key: 'SEC-1', sink: 'jira', createdAt: '2026-11-18T09:10:00.000Z', status: 'done' },
        }),
      );
      // Act
      const events = await createVerifyStage(deps(undefined)).handle({
        id: 'vr-2',
        type: 'case.verify-requested',
        caseKey: CASE_KEY,
        at: '2026-11-20T09:00:00.000Z',
        trigger: 'ticket-closed',
        actor: 'web-lead@acme.example',
      });
      // Assess
      const c = await readCase();
      expect(c).toMatchObject({ status: 'reopened', verification: { verdict: 'inconclusive' } });
      expect(c.statusReason).toBe(
        'ticket closed by web-lead@acme.example but the closure could not be verified: no action can re-read this resource, and the source reports the finding active',
      );
      expect(events).toEqual([expect.objectContaining({ type: 'case.reopened', actor: 'closeloop:verify' })]);
      expect(upstream.calls).toEqual([]);
    });
  });

  describe('in the local run (no cloud)', () => {
    it('verifies on the source state and says so when the source reports resolved', async () => {
      // Prepare
      await putFinding(store, makeFinding({ status: 'resolved', statusReason: 'service.archived' }));
      await putCase(store, makeCase({ sourceStatus: 'resolved', status: 'pending-verification' }));
      const decided: PipelineEvent = {
        id: 'd-1',
        type: 'case.decided',
        caseKey: CASE_KEY,
        at: '2026-11-20T09:00:00.000Z',
        isNewCase: false,
        recurrence: true,
        statusChanged: true,
        detail: { decision: { verify: true } },
      };
      // Act
      const events = await createVerifyStage(
        deps(scriptedAction([PUBLIC]), { ctx: undefined, upstream: new LocalUpstreamStatus() }),
      ).handle(decided);
      // Assess
      const c = await readCase();
      expect(c.status).toBe('verified');
      expect(c.verification?.reason).toBe(
        'source reports resolved (service.archived); no live re-read in the local run',
      );
      expect(c.verification?.upstream).toEqual([
        {
          source: 'guardduty',
          findingKey: makeFinding().key,
          outcome: 'not-updated: already resolved at the source (service.archived)',
          at: '2026-11-20T10:00:00.000Z',
        },
      ]);
      expect(events).toEqual([expect.objectContaining({ type: 'case.verified', verdict: 'verified' })]);
      // decision, upstream, verify
      expect((await records()).map((r) => r.step)).toEqual(['decision', 'upstream', 'verify']);
      expect(await verifyChains(evidence, { store })).toMatchObject({ ok: true, records: 3 });
    });

    it('verifies a second resolution of the finding when the source did not move its last-seen time', async () => {
      // Prepare: resolved and verified once, then NEW and RESOLVED again with LastObservedAt unchanged
      const stage = createVerifyStage(deps(undefined, { ctx: undefined, upstream: new LocalUpstreamStatus() }));
      const resolution = (id: string): PipelineEvent[] => [
        {
          id: `decided:${id}`,
          type: 'case.decided',
          caseKey: CASE_KEY,
          at: '2026-11-20T09:00:00.000Z',
          isNewCase: false,
          recurrence: false,
          statusChanged: true,
          detail: { decision: { verify: true } },
        },
        {
          id: `verify:${id}`,
          type: 'case.verify-requested',
          caseKey: CASE_KEY,
          at: '2026-11-20T09:00:00.000Z',
          trigger: 'source-resolved',
          actor: 'source:securityhub',
        },
      ];
      await putFinding(store, makeFinding({ status: 'resolved', statusReason: 'Workflow.Status RESOLVED' }));
      const resolved = { sourceStatus: 'resolved' as const, status: 'pending-verification' as const };
      await putCase(store, makeCase({ ...resolved, updatedAt: '2026-11-20T09:00:00.000Z' }));
      // (ids in the ingest's shape: the hash of the decided finding state)
      for (const e of resolution('1'.repeat(32))) await stage.handle(e);
      const first = await readCase();
      await putCase(store, {
        ...first,
        status: 'reopened',
        sourceStatus: 'active',
        closedAt: null,
        reopenCount: 1,
        updatedAt: '2026-11-20T09:30:00.000Z',
      });
      await putCase(store, { ...(await readCase()), ...resolved, updatedAt: '2026-11-20T09:45:00.000Z' });
      clock.set('2026-11-20T10:05:00.000Z');
      // Act: the second resolution's two events, each delivered twice
      const events = [];
      const two = '2'.repeat(32);
      for (const e of [...resolution(two), ...resolution(two)]) events.push(...(await stage.handle(e)));
      // Assess
      const c = await readCase();
      expect(first.status).toBe('verified');
      expect(c).toMatchObject({ status: 'verified', closedAt: '2026-11-20T10:05:00.000Z' });
      expect((await records()).filter((r) => r.step === 'verify')).toHaveLength(2);
      // One case.verified for the second resolution: its redeliveries finish it again under the same id.
      expect(new Set(events.map((e) => `${e.type} ${e.id}`)).size).toBe(1);
      expect(events[0]?.type).toBe('case.verified');
    });

    it('leaves a dry-run plan planned without verifying it', async () => {
      // Prepare
      await putCase(store, makeCase({ status: 'planned', remediation: { state: 'planned' } }));
      const req: PipelineEvent = {
        id: 's-1',
        type: 'case.verify-requested',
        caseKey: CASE_KEY,
        at: '2026-11-20T09:00:00.000Z',
        trigger: 'scheduled',
        actor: 'closeloop:schedule',
      };
      // Act
      const events = await createVerifyStage(deps(undefined, { ctx: undefined })).handle(req);
      // Assess
      expect(events).toEqual([]);
      expect((await readCase()).status).toBe('planned');
      expect(await evidence.listAll()).toEqual([]);
    });

    it('is inconclusive with the reason when nothing says the finding is fixed', async () => {
      // Prepare
      await putCase(store, makeCase({ remediation: { action: null, mode: 'none', state: 'none' } }));
      const req: PipelineEvent = {
        id: 'm-1',
        type: 'case.verify-requested',
        caseKey: CASE_KEY,
        at: '2026-11-20T09:00:00.000Z',
        trigger: 'manual',
        actor: 'secops@acme.example',
      };
      // Act
      await createVerifyStage(deps(undefined, { ctx: undefined })).handle(req);
      // Assess
      expect((await readCase()).verification).toMatchObject({
        verdict: 'inconclusive',
        reason: 'no live re-read in the local run (no cloud access) and the source reports the finding active',
      });
    });
  });
});
