/**
 * Remote verify: the AWS hub carries no GCP/Azure SDK, so the verify stage asks the spoke to re-read
 * (`op: 'verify'`), and records the verdict when the answer comes back. The spoke's side is the real
 * `executeRemote` with the real gcs.remove-public-access verify against the GCP JSON API double.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { CloudClients } from '../../shared/actions/clients.js';
import gcsPublic from '../../shared/actions/gcs.remove-public-access.js';
import { MemoryEvidenceStore } from '../../shared/adapters/evidence/memory.js';
import { MemoryDocStore } from '../../shared/adapters/store/memory.js';
import { LocalUpstreamStatus } from '../../shared/adapters/upstream/local.js';
import { RoutingUpstreamStatus } from '../../shared/adapters/upstream/route.js';
import { RemoteUpstream, sccResolver } from '../../shared/adapters/upstream/spoke.js';
import { EvidenceRecordSchema } from '../../shared/core/evidence/record.js';
import { type Case, CaseSchema } from '../../shared/core/model/case.js';
import type { PipelineEvent } from '../../shared/core/model/events.js';
import { caseKeyOf } from '../../shared/core/pipeline/decide.js';
import { silentLogger } from '../../shared/core/ports.js';
import {
  executeRemote,
  type RemoteExecutor,
  type RemoteRequest,
  type RemoteResult,
} from '../../shared/core/remediation/remote.js';
import { VerificationPolicySchema } from '../../shared/core/verify/policy.js';
import {
  createVerifyStage,
  REMOTE_VERIFY_COLLECTION,
  recordRemoteVerification,
  reverifyRecent,
  UNPUBLISHED,
  type VerifyDeps,
} from '../../shared/core/verify/stage.js';
import { recordUpstreamAnswer } from '../../shared/core/verify/upstream-answer.js';
import { testContext } from '../helpers/action-context.js';
import { type GcpDouble, startGcpDouble } from '../helpers/gcp-double.js';
import { appliedCase, applyRequested, CASE_KEY, fixedClock, makeFinding, putCase, putFinding } from './helpers.js';

const BUCKET = 'acme-public-exports';
const OWNERS = { role: 'roles/storage.legacyBucketOwner', members: ['projectOwner:acme-prod'] };
const PUBLIC_VIEWERS = { role: 'roles/storage.objectViewer', members: ['allUsers'] };

/** A RemoteExecutor that records what the hub hands over (and can refuse it). */
function recordingExecutor(providers: readonly string[] = ['gcp', 'azure']) {
  const sent: RemoteRequest[] = [];
  let refuse: Error | undefined;
  const executor: RemoteExecutor = {
    runs: (p) => providers.includes(p),
    async dispatch(request) {
      if (refuse) throw refuse;
      sent.push(request);
    },
  };
  return { executor, sent, refuseWith: (e: Error | undefined) => (refuse = e) };
}

/** The GCS double holding only BUCKET, fixed: owners alone, public access prevention enforced. */
function fixedBucket(gcp: GcpDouble) {
  gcp.buckets.clear();
  gcp.buckets.set(BUCKET, {
    iam: { bindings: [OWNERS], etag: 'BwE2', version: 3 },
    metadata: { metageneration: '5', iamConfiguration: { publicAccessPrevention: 'enforced' } },
  });
}

/** The hub has the action registered but no GCP SDK: any local re-read would fail loudly. */
const hubClients: Partial<CloudClients> = {
  gcsStorage: () => {
    throw new Error('the AWS hub carries no GCP SDK');
  },
};

describe('verify stage: re-reads in the spoke when the hub cannot read the provider', () => {
  let gcp: GcpDouble;
  let store: MemoryDocStore;
  let evidence: MemoryEvidenceStore;
  let clock: ReturnType<typeof fixedClock>;
  let remote: ReturnType<typeof recordingExecutor>;

  beforeAll(async () => {
    gcp = await startGcpDouble();
  });
  afterAll(async () => gcp?.stop());
  beforeEach(async () => {
    fixedBucket(gcp);
    store = new MemoryDocStore();
    evidence = new MemoryEvidenceStore();
    clock = fixedClock();
    remote = recordingExecutor();
    await putFinding(store, makeFinding());
    await putCase(store, gcsCase());
  });

  function gcsCase(over: Parameters<typeof appliedCase>[2] = {}): Case {
    return appliedCase(gcsPublic.id, { bucket: BUCKET }, { provider: 'gcp', ...over });
  }
  const deps = (over: Partial<VerifyDeps> = {}, withRemote = true): VerifyDeps => ({
    store,
    evidence,
    actions: { get: (id) => (id === gcsPublic.id ? gcsPublic : undefined) },
    ctx: testContext({ clients: hubClients }),
    upstream: new LocalUpstreamStatus(),
    clock,
    log: silentLogger,
    policy: VerificationPolicySchema.parse({ attempts: 2, backoffMs: 0, remoteWindowSeconds: 600 }),
    sleep: async () => {},
    ...(withRemote ? { remote: remote.executor } : {}),
    ...over,
  });
  /** The spoke: the real executeRemote with the real action against the GCP double. */
  const spokeAnswers = (request: RemoteRequest): Promise<RemoteResult> =>
    executeRemote(request, {
      actions: { get: (id) => (id === gcsPublic.id ? gcsPublic : undefined) },
      ctx: testContext({ cloud: { gcp: gcp.options } }),
      clock,
      apply: true,
      actor: 'closeloop@gcp-spoke',
    });
  const readCase = async () => CaseSchema.parse((await store.get('cases', CASE_KEY))?.value);
  const verifyRecords = async () =>
    (await evidence.listAll()).map((s) => EvidenceRecordSchema.parse(s.raw)).filter((r) => r.step === 'verify');
  const lastSent = () => {
    const r = remote.sent.at(-1);
    if (!r) throw new Error('nothing was dispatched');
    return r;
  };

  it('ends inconclusive without a remote executor when the hub cannot re-read a GCP resource', async () => {
    // Act
    await createVerifyStage(deps({}, false)).handle(applyRequested());
    // Assess
    expect((await readCase()).verification?.verdict).toBe('inconclusive');
  });

  it('sends an op verify request to the spoke and waits pending-verification when the provider is remote', async () => {
    // Act
    const events = await createVerifyStage(deps()).handle(applyRequested());
    // Assess
    expect(events).toEqual([]);
    expect(remote.sent).toHaveLength(1);
    expect(lastSent()).toMatchObject({
      caseKey: CASE_KEY,
      provider: 'gcp',
      action: 'gcs.remove-public-access',
      op: 'verify',
      target: { bucket: BUCKET },
      actor: 'closeloop:verify',
    });
    expect(lastSent().applyToken).toMatch(/^[0-9a-f]{32}$/);
    const c = await readCase();
    expect(c.status).toBe('pending-verification');
    expect(c.statusReason).toContain('re-read requested from the gcp spoke');
    expect(await verifyRecords()).toEqual([]);
    expect(gcp.requests).toEqual([]);
  });

  it('sends one request when the same claim of fixedness is delivered twice', async () => {
    // Prepare
    const stage = createVerifyStage(deps());
    const applied: PipelineEvent = {
      id: 'rem-applied-1',
      type: 'case.remediation',
      caseKey: CASE_KEY,
      at: '2026-11-20T09:59:00.000Z',
      state: 'applied',
      actor: 'closeloop@gcp-spoke',
      detail: {},
    };
    // Act
    await Promise.all([stage.handle(applyRequested()), stage.handle(applied), stage.handle(applyRequested())]);
    // Assess
    expect(remote.sent).toHaveLength(1);
  });

  it('records verified with the spoke observation when the answer says the fix holds', async () => {
    // Prepare
    await createVerifyStage(deps()).handle(applyRequested());
    const answer = await spokeAnswers(lastSent());
    // Act
    const out = await recordRemoteVerification(deps(), answer);
    // Assess
    expect(answer.outcome).toBe('verified');
    expect(out.verdict).toBe('verified');
    expect(out.events.map((e) => e.type)).toEqual(['case.verified']);
    const c = await readCase();
    expect(c.status).toBe('verified');
    expect(c.verification).toMatchObject({ verdict: 'verified', trigger: 'apply', attempts: 1 });
    expect(c.verification?.observed).toEqual(answer.observed);
    const [record, ...more] = await verifyRecords();
    expect(more).toEqual([]);
    expect(record?.detail).toMatchObject({ basis: 're-read', trigger: 'apply' });
    expect(record?.calls).toEqual([
      { api: 'gcs.remove-public-access:verify@gcp-spoke', requestId: answer.requestId, outcome: 'holds' },
    ]);
    expect(await store.get(REMOTE_VERIFY_COLLECTION, CASE_KEY)).toBeUndefined();
  });

  it('records the answer once when it is delivered twice', async () => {
    // Prepare
    await createVerifyStage(deps()).handle(applyRequested());
    const answer = await spokeAnswers(lastSent());
    // Act
    const outs = await Promise.all([
      recordRemoteVerification(deps(), answer),
      recordRemoteVerification(deps(), answer),
    ]);
    // Assess
    expect(outs.map((o) => o.verdict).sort()).toEqual(['duplicate', 'verified']);
    expect(await verifyRecords()).toHaveLength(1);
  });

  it('ignores an answer whose token does not match the outstanding request', async () => {
    // Prepare
    await createVerifyStage(deps()).handle(applyRequested());
    const answer = await spokeAnswers(lastSent());
    // Act
    const out = await recordRemoteVerification(deps(), { ...answer, applyToken: 'forged-token-0000' });
    // Assess
    expect(out).toEqual({ verdict: 'duplicate', events: [] });
    expect((await readCase()).status).toBe('pending-verification');
    expect(await verifyRecords()).toEqual([]);
  });

  it('asks again and then records failed with what was observed when the fix never holds', async () => {
    // Prepare: the bucket is public again.
    gcp.buckets.set(BUCKET, {
      iam: { bindings: [OWNERS, PUBLIC_VIEWERS], etag: 'BwE3', version: 3 },
      metadata: { metageneration: '6', iamConfiguration: { publicAccessPrevention: 'inherited' } },
    });
    await createVerifyStage(deps()).handle(applyRequested());
    // Act
    const first = await recordRemoteVerification(deps(), await spokeAnswers(lastSent()));
    const second = await recordRemoteVerification(deps(), await spokeAnswers(lastSent()));
    // Assess
    expect(first.verdict).toBe('pending');
    expect(remote.sent).toHaveLength(2);
    expect(remote.sent[0]?.requestId).not.toBe(remote.sent[1]?.requestId);
    expect(second.verdict).toBe('failed');
    const c = await readCase();
    expect(c.status).toBe('failed');
    expect(c.verification?.reason).toContain('after 2 re-reads by the gcp spoke');
    expect(c.verification?.observed).toBeDefined();
    expect((await verifyRecords())[0]?.calls).toHaveLength(2);
  });

  it('records inconclusive when the spoke cannot re-read the target', async () => {
    // Prepare
    await createVerifyStage(deps()).handle(applyRequested());
    gcp.buckets.clear();
    const answer = await spokeAnswers({ ...lastSent(), target: { bucket: '' } });
    // Act
    const out = await recordRemoteVerification(deps(), answer);
    // Assess
    expect(answer.outcome).toBe('blocked');
    expect(out.verdict).toBe('inconclusive');
    expect((await readCase()).status).toBe('pending-verification');
  });

  it('asks again on the schedule and then gives up inconclusive when the spoke never answers', async () => {
    // Prepare
    await createVerifyStage(deps()).handle(applyRequested());
    // Act: inside the window nothing happens; after it, a second request; after that, the verdict.
    const early = await reverifyRecent(deps(), new Date('2026-11-20T10:05:00.000Z'));
    clock.set('2026-11-20T10:11:00.000Z');
    const resent = await reverifyRecent(deps(), clock.now());
    clock.set('2026-11-20T10:22:00.000Z');
    const expired = await reverifyRecent(deps(), clock.now());
    // Assess
    expect(early.remote).toEqual({ resent: 0, expired: 0 });
    expect(resent.remote).toEqual({ resent: 1, expired: 0 });
    expect(remote.sent).toHaveLength(2);
    expect(expired.remote).toEqual({ resent: 0, expired: 1 });
    expect(expired.events.map((e) => e.type)).toEqual(['case.verified']);
    const c = await readCase();
    expect(c.status).toBe('pending-verification');
    expect(c.verification).toMatchObject({ verdict: 'inconclusive', attempts: 2 });
    expect(c.verification?.reason).toContain('did not answer 2 re-read request(s)');
    expect(await store.get(REMOTE_VERIFY_COLLECTION, CASE_KEY)).toBeUndefined();
  });

  it('ignores the answer to a request that was already replaced', async () => {
    // Prepare
    await createVerifyStage(deps()).handle(applyRequested());
    const stale = lastSent();
    clock.set('2026-11-20T10:11:00.000Z');
    await reverifyRecent(deps(), clock.now());
    // Act
    const out = await recordRemoteVerification(deps(), await spokeAnswers(stale));
    // Assess
    expect(out.verdict).toBe('duplicate');
    expect((await readCase()).status).toBe('pending-verification');
  });

  it('throws and keeps nothing outstanding when the hand-over fails, so the retry sends it again', async () => {
    // Prepare
    remote.refuseWith(new Error('PutEvents failed: throttled'));
    // Act
    await expect(createVerifyStage(deps()).handle(applyRequested())).rejects.toThrow('throttled');
    remote.refuseWith(undefined);
    await createVerifyStage(deps()).handle(applyRequested());
    // Assess
    expect(remote.sent).toHaveLength(1);
    expect((await readCase()).status).toBe('pending-verification');
  });

  describe('a process that dies after the answer is claimed', () => {
    /** A step that never returns (the process died there), and a promise settled when it is reached. */
    function deathAt() {
      let reached: () => void = () => {};
      const died = new Promise<void>((resolve) => {
        reached = resolve;
      });
      const die = (): Promise<never> => {
        reached();
        return new Promise<never>(() => {});
      };
      return { died, die };
    }
    const publishedTo = (into: PipelineEvent[]) => async (events: readonly PipelineEvent[]) => {
      into.push(...events);
    };

    it('publishes the verdict on the redelivery of the answer, once and under the same id, when it died between the case write and the publish', async () => {
      // Prepare: the answer's delivery records the verdict and writes the case, then dies publishing
      await createVerifyStage(deps()).handle(applyRequested());
      const answer = await spokeAnswers(lastSent());
      const { died, die } = deathAt();
      let lost: PipelineEvent[] = [];
      const dying = (events: readonly PipelineEvent[]) => {
        lost = [...events];
        return die();
      };
      await Promise.race([died, recordRemoteVerification(deps(), answer, { publish: dying })]);
      const stranded = await readCase();
      const published: PipelineEvent[] = [];
      // Act: the answer comes back (SQS), then the sweep runs
      const redelivered = await recordRemoteVerification(deps(), answer, { publish: publishedTo(published) });
      const afterRedelivery = published.length;
      clock.set('2026-11-20T16:00:00.000Z');
      const sweep = await reverifyRecent(deps(), clock.now(), { publish: publishedTo(published) });
      await reverifyRecent(deps(), clock.now(), { publish: publishedTo(published) });
      // Assess
      const [record] = await verifyRecords();
      expect(stranded.status).toBe('verified');
      expect(redelivered.verdict).toBe('duplicate');
      expect(afterRedelivery).toBe(1);
      expect(published).toEqual([
        expect.objectContaining({
          type: 'case.verified',
          verdict: 'verified',
          detail: expect.objectContaining({ evidenceHash: record?.hash }),
        }),
      ]);
      expect(published).toEqual(lost);
      expect(sweep.republished).toBe(0);
      expect(await store.list(UNPUBLISHED)).toEqual([]);
    });

    it('writes the case from the record before the redelivered answer publishes the verdict, when it died at the case write', async () => {
      // Prepare: the answer's delivery records the verdict, then dies writing the case
      await createVerifyStage(deps()).handle(applyRequested());
      const answer = await spokeAnswers(lastSent());
      const { died, die } = deathAt();
      const dyingStore = Object.create(store) as MemoryDocStore;
      dyingStore.put = (collection, id, value, options) =>
        collection === 'cases' && CaseSchema.parse(value).status === 'verified'
          ? die()
          : store.put(collection, id, value, options);
      await Promise.race([
        died,
        recordRemoteVerification(deps({ store: dyingStore }), answer, { publish: async () => {} }),
      ]);
      const stranded = await readCase();
      const published: Array<{ event: PipelineEvent; caseStatus: string }> = [];
      const publish = async (events: readonly PipelineEvent[]) => {
        for (const event of events) published.push({ event, caseStatus: (await readCase()).status });
      };
      // Act: the answer comes back (SQS), then the sweep runs
      const redelivered = await recordRemoteVerification(deps(), answer, { publish });
      clock.set('2026-11-20T16:00:00.000Z');
      const sweep = await reverifyRecent(deps(), clock.now(), { publish });
      // Assess: the case follows the record, and only then is the verdict announced
      const [record, ...more] = await verifyRecords();
      expect(stranded.status).toBe('pending-verification');
      expect(redelivered.verdict).toBe('duplicate');
      expect(more).toEqual([]);
      expect(await readCase()).toMatchObject({ status: 'verified', evidenceHead: record?.hash });
      expect(published).toEqual([
        {
          event: expect.objectContaining({
            type: 'case.verified',
            detail: expect.objectContaining({ evidenceHash: record?.hash }),
          }),
          caseStatus: 'verified',
        },
      ]);
      expect(sweep).toMatchObject({ republished: 0, errors: 0 });
    });

    it('records and announces the verdict on the redelivery of the answer when it died before anything was kept', async () => {
      // Prepare: the answer's delivery dies as it keeps the verdict's events (before any case write)
      await createVerifyStage(deps()).handle(applyRequested());
      const answer = await spokeAnswers(lastSent());
      const { died, die } = deathAt();
      const dyingStore = Object.create(store) as MemoryDocStore;
      dyingStore.put = (collection, id, value, options) =>
        collection === UNPUBLISHED ? die() : store.put(collection, id, value, options);
      await Promise.race([
        died,
        recordRemoteVerification(deps({ store: dyingStore }), answer, { publish: async () => {} }),
      ]);
      const stranded = await readCase();
      const published: PipelineEvent[] = [];
      // Act: the answer comes back (SQS)
      await recordRemoteVerification(deps(), answer, { publish: publishedTo(published) });
      // Assess: one record, the case verified, the verdict announced once; nothing left waiting
      const records = await verifyRecords();
      expect(stranded.status).toBe('pending-verification');
      expect(records).toHaveLength(1);
      expect(await readCase()).toMatchObject({ status: 'verified', evidenceHead: records[0]?.hash });
      expect(published.map((e) => e.type)).toEqual(['case.verified']);
      expect(await store.list(REMOTE_VERIFY_COLLECTION)).toEqual([]);
      expect(await store.list(UNPUBLISHED)).toEqual([]);
    });
  });

  it('re-reads locally when the case provider is one the hub reads itself', async () => {
    // Prepare
    const awsOnly = recordingExecutor(['azure']);
    // Act
    await createVerifyStage(deps({ remote: awsOnly.executor })).handle(applyRequested());
    // Assess
    expect(awsOnly.sent).toEqual([]);
    expect((await readCase()).verification?.reason).toContain('the AWS hub carries no GCP SDK');
  });
});

describe('verify stage: a verified SCC finding is marked resolved by its spoke', () => {
  const FINDING_NAME = 'organizations/123456789012/sources/5678/findings/f0000000000000000000000000000001';
  const scc = makeFinding({
    key: 'd'.repeat(64),
    source: 'scc',
    product: 'Security Command Center',
    sourceId: FINDING_NAME,
    type: 'PUBLIC_BUCKET_ACL',
    resource: {
      provider: 'gcp',
      id: `//storage.googleapis.com/${BUCKET}`,
      type: 'google.cloud.storage.Bucket',
      name: BUCKET,
      account: 'acme-prod',
      region: null,
      tags: {},
      altIds: [],
      details: { bucket: BUCKET },
    },
  });
  const caseKey = caseKeyOf(scc);
  let gcp: GcpDouble;
  let store: MemoryDocStore;
  let evidence: MemoryEvidenceStore;
  let remote: ReturnType<typeof recordingExecutor>;
  const setState: Array<{ name: string; state: string }> = [];
  const clock = fixedClock();

  beforeAll(async () => {
    gcp = await startGcpDouble();
  });
  afterAll(async () => gcp?.stop());
  beforeEach(async () => {
    fixedBucket(gcp);
    setState.length = 0;
    store = new MemoryDocStore();
    evidence = new MemoryEvidenceStore();
    remote = recordingExecutor();
    await putFinding(store, scc);
    await putCase(
      store,
      appliedCase(gcsPublic.id, { bucket: BUCKET }, { key: caseKey, provider: 'gcp', findingKeys: [scc.key] }),
    );
  });

  const hub = (): VerifyDeps => ({
    store,
    evidence,
    actions: { get: (id) => (id === gcsPublic.id ? gcsPublic : undefined) },
    ctx: testContext({ clients: hubClients }),
    upstream: new RoutingUpstreamStatus({
      scc: new RemoteUpstream({ executor: remote.executor, actor: 'closeloop@aws-hub-test', clock }),
    }),
    clock,
    log: silentLogger,
    policy: VerificationPolicySchema.parse({ attempts: 2, backoffMs: 0, remoteWindowSeconds: 600 }),
    sleep: async () => {},
    remote: remote.executor,
  });
  /** The GCP spoke: the real executeRemote, the action against the GCS double, SCC's setState recorded. */
  const spoke = (request: RemoteRequest, apply = true): Promise<RemoteResult> =>
    executeRemote(request, {
      actions: { get: (id) => (id === gcsPublic.id ? gcsPublic : undefined) },
      ctx: testContext({ cloud: { gcp: gcp.options } }),
      clock,
      apply,
      actor: 'closeloop@gcp-spoke',
      upstream: sccResolver(
        {
          async setFindingState(r) {
            setState.push({ name: r.name, state: r.state });
            return [{}];
          },
        },
        clock,
      ),
    });
  const upstreamRecords = async () =>
    (await evidence.listAll()).map((s) => EvidenceRecordSchema.parse(s.raw)).filter((r) => r.step === 'upstream');

  /** The hub asks the spoke to re-read, records its answer (the fix holds): returns the resolve request sent. */
  async function verifiedBySpoke(): Promise<RemoteRequest> {
    await createVerifyStage(hub()).handle(applyRequested(caseKey));
    const verify = remote.sent.at(-1);
    if (!verify) throw new Error('no re-read requested');
    await recordRemoteVerification(hub(), await spoke(verify));
    const resolve = remote.sent.at(-1);
    if (resolve?.op !== 'resolve') throw new Error('no resolve requested');
    return resolve;
  }

  it('asks the spoke once after the re-read holds, and records its answer once however often it comes', async () => {
    // Prepare: the re-read by the spoke, answered
    const resolve = await verifiedBySpoke();
    // Act: the spoke marks the finding resolved; its answer is delivered twice
    const answer = await spoke(resolve);
    await recordUpstreamAnswer(hub(), answer);
    await recordUpstreamAnswer(hub(), answer);
    // Assess
    expect(resolve).toMatchObject({
      op: 'resolve',
      provider: 'gcp',
      caseKey,
      finding: { key: scc.key, source: 'scc', sourceId: FINDING_NAME },
    });
    expect(setState).toEqual([{ name: FINDING_NAME, state: 'INACTIVE' }]);
    expect(answer).toMatchObject({ outcome: 'resolved', upstream: { outcome: 'updated' } });
    const records = await upstreamRecords();
    expect(records.map((r) => r.verdict)).toEqual(['requested', 'updated']);
    expect(records[1]?.summary).toContain('by the gcp spoke');
    const c = CaseSchema.parse((await store.get('cases', caseKey))?.value);
    expect(c.status).toBe('verified');
    expect(c.verification?.upstream).toEqual([
      {
        source: 'scc',
        findingKey: scc.key,
        outcome: `updated: state set to INACTIVE on ${FINDING_NAME} (gcp spoke)`,
        at: answer.at,
      },
    ]);
  });

  it('leaves the finding as it is when the spoke is deployed in dry-run, and says so', async () => {
    // Prepare
    const resolve = await verifiedBySpoke();
    // Act
    const answer = await spoke(resolve, false);
    await recordUpstreamAnswer(hub(), answer);
    // Assess
    expect(setState).toEqual([]);
    expect(answer).toMatchObject({ outcome: 'not-resolved', upstream: { outcome: 'not-updated' } });
    expect((await upstreamRecords()).at(-1)?.summary).toContain('dry-run spoke');
  });
});
