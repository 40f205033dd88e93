import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../shared/adapters/config/load.js';
import { MemoryDocStore } from '../../shared/adapters/store/memory.js';
import { SqliteDocStore } from '../../shared/adapters/store/sqlite.js';
import type { Config } from '../../shared/core/config.js';
import { CaseSchema } from '../../shared/core/model/case.js';
import type { PipelineEvent } from '../../shared/core/model/events.js';
import { createEnricher } from '../../shared/core/pipeline/enrich.js';
import { COLLECTIONS, createIngest, type IngestDoc } from '../../shared/core/pipeline/ingest.js';
import { type DocStore, type EventBus, silentLogger } from '../../shared/core/ports.js';
import { loadFixture, loadFixtureText, variant } from '../helpers/fixtures.js';
import { tempDir } from '../helpers/tmp.js';

const clock = { now: () => new Date('2026-11-23T12:00:00Z') };

function ingestOn(store: DocStore, config: Config, published: PipelineEvent[] | EventBus = []) {
  return createIngest({
    store,
    bus: Array.isArray(published) ? { publish: async (events) => void published.push(...events) } : published,
    enricher: createEnricher({ registry: config.registry, policy: config.policy.enrichment, log: silentLogger }),
    config,
    exceptions: async () => config.exceptions,
    clock,
    log: silentLogger,
    chunkSize: 3,
  });
}

const docs = (...paths: string[]): IngestDoc[] => paths.map((p) => ({ input: p, value: loadFixture(p) }));

/** The GuardDuty fixture at another moment of its life. */
const guardDutyAt = (at: string, archived: boolean, count: number): IngestDoc => {
  const e = loadFixture('guardduty/s3-bucket-anonymous-access.eventbridge.json') as {
    detail: { updatedAt: string; service: { eventLastSeen: string; archived: boolean; count: number } };
  };
  Object.assign(e.detail, { updatedAt: at });
  Object.assign(e.detail.service, { eventLastSeen: at, archived, count });
  return { input: `guardduty@${at}`, value: e };
};

async function snapshot(store: DocStore) {
  const out: Record<string, unknown> = {};
  for (const c of [COLLECTIONS.findings, COLLECTIONS.cases, COLLECTIONS.deadLetters]) out[c] = await store.list(c);
  out.events = await store.readLog('events');
  return out;
}

describe('ingest', () => {
  let config: Config;
  beforeEach(async () => {
    config = await loadConfig(join(import.meta.dirname, '../../examples/config'));
  });

  it('stores findings and cases and publishes case.decided once per state change when a batch arrives', async () => {
    // Prepare
    const store = new MemoryDocStore();
    const published: PipelineEvent[] = [];
    const input = docs(
      'guardduty/s3-bucket-anonymous-access.eventbridge.json',
      'securityhub/s3.8-failed.eventbridge.json',
      'scc/public-bucket-acl.notification.json',
      'scc/public-bucket-acl.pubsub-push.json',
      'defender/assessment-storage-public-access.json',
    );
    // Act
    const out = await ingestOn(store, config, published).ingest(input);
    // Assess
    expect(out.rejected).toEqual([]);
    expect(out.results).toHaveLength(5);
    expect(out.stats).toMatchObject({ newCases: 4, unchanged: 1 });
    expect(await store.list(COLLECTIONS.cases)).toHaveLength(4);
    expect(published.map((e) => e.type)).toEqual(Array(4).fill('case.decided'));
    expect(new Set(published.map((e) => e.id)).size).toBe(4);
  });

  it('changes nothing when the same input is ingested again', async () => {
    // Prepare
    const store = new MemoryDocStore();
    const input = docs('guardduty/instance-crypto.eventbridge.json', 'securityhub/iam.3.eventbridge.json');
    await ingestOn(store, config).ingest(input);
    const before = await snapshot(store);
    const published: PipelineEvent[] = [];
    // Act
    const out = await ingestOn(store, config, published).ingest(input);
    // Assess
    expect(out.stats.unchanged).toBe(2);
    expect(published).toEqual([]);
    expect(await snapshot(store)).toEqual(before);
  });

  it('keeps bad input as dead letters with the reason and still processes the rest of the batch', async () => {
    // Prepare
    const store = new MemoryDocStore();
    const input: IngestDoc[] = [
      ...docs(
        'guardduty/s3-bucket-anonymous-access.eventbridge.json',
        'bad/unknown-source.json',
        'bad/missing-resource.json',
      ),
      { input: 'bad/truncated.json', value: loadFixtureText('bad/truncated.json') },
      ...docs('scc/open-firewall.notification.json'),
    ];
    // Act
    const out = await ingestOn(store, config).ingest(input);
    // Assess
    expect(out.results.map((r) => r.input)).toEqual([
      'guardduty/s3-bucket-anonymous-access.eventbridge.json',
      'scc/open-firewall.notification.json',
    ]);
    expect(out.rejected.length).toBeGreaterThanOrEqual(3);
    for (const r of out.rejected) {
      expect(r.reason.length).toBeGreaterThan(0);
      expect(r.path.length).toBeGreaterThan(0);
    }
    const letters = await store.list(COLLECTIONS.deadLetters);
    expect(letters).toHaveLength(out.rejected.length);
    expect(letters.map((l) => (l.value as { input: string }).input)).toContain('bad/missing-resource.json');
  });

  it('merges a repeat of a finding into its case without double counting occurrences', async () => {
    // Prepare
    const store = new MemoryDocStore();
    const base = loadFixture('guardduty/instance-crypto.eventbridge.json') as {
      detail: { service: { count: number }; updatedAt: string };
    };
    const repeat = structuredClone(base);
    repeat.detail.service.count = 4;
    repeat.detail.updatedAt = '2026-11-22T10:00:00.000Z';
    // Act
    const ingest = ingestOn(store, config);
    await ingest.ingest([{ input: 'a', value: base }]);
    await ingest.ingest([{ input: 'b', value: repeat }]);
    await ingest.ingest([{ input: 'b-again', value: repeat }]);
    // Assess
    const cases = (await store.list(COLLECTIONS.cases)).map((d) => CaseSchema.parse(d.value));
    expect(cases).toHaveLength(1);
    expect(cases[0]?.occurrences).toBe(4);
  });

  it('keeps the fix of a case one of whose two alerts is dismissed while the other stays active', async () => {
    // Prepare: two Defender alerts of one type on one VM (each alert has its own systemAlertId), then the
    // first one dismissed in Defender; the second still reports a miner on the VM
    const store = new MemoryDocStore();
    const first = loadFixture('defender/vm-miner-alert.arm.json');
    const second = variant(first, {
      name: '2517494421184444444_7a8b9c0d-1e2f-4a3b-c4d5-e6f7a8b9c0d1',
      'properties.systemAlertId': '2517494421184444444_7a8b9c0d-1e2f-4a3b-c4d5-e6f7a8b9c0d1',
      'properties.processingEndTimeUtc': '2026-11-18T18:00:00.000Z',
    });
    const firstDismissed = variant(first, {
      'properties.status': 'Dismissed',
      'properties.processingEndTimeUtc': '2026-11-18T19:00:00.000Z',
    });
    const ingest = ingestOn(store, config);
    await ingest.ingest([{ input: 'first', value: first }]);
    await ingest.ingest([{ input: 'second', value: second }]);
    const before = CaseSchema.parse((await store.list(COLLECTIONS.cases))[0]?.value);
    // Act
    const out = await ingest.ingest([{ input: 'first-dismissed', value: firstDismissed }]);
    // Assess: the case is still active at the source, and its fix still waits for approval as before
    expect(out.rejected).toEqual([]);
    const cases = (await store.list(COLLECTIONS.cases)).map((d) => CaseSchema.parse(d.value));
    expect(cases).toHaveLength(1);
    expect(cases[0]).toMatchObject({ status: 'open', sourceStatus: 'active', findingActive: [false, true] });
    expect(before.remediation).toMatchObject({ action: 'azure.vm.isolate', mode: 'approval' });
    expect(cases[0]?.remediation).toMatchObject({
      action: 'azure.vm.isolate',
      mode: 'approval',
      reason: before.remediation.reason,
    });
    expect(cases[0]?.remediation.gates).toEqual(before.remediation.gates);
  });

  it('names on each event it publishes ahead of the case write the version that write then stores', async () => {
    // Prepare: a bus that notes the stored version of each event's case when the event is published
    const store = new MemoryDocStore();
    const published: Array<{ event: PipelineEvent; storedAtPublish: number | undefined }> = [];
    const ingest = ingestOn(store, config, {
      publish: async (events) => {
        for (const event of events)
          published.push({ event, storedAtPublish: (await store.get(COLLECTIONS.cases, event.caseKey))?.version });
      },
    });
    // Act: a new case seen twice in one chunk (one write), then its source resolution (a second write)
    await ingest.ingest([
      guardDutyAt('2026-11-20T08:00:00.000Z', false, 1),
      guardDutyAt('2026-11-20T09:00:00.000Z', false, 2),
    ]);
    const caseKey = published[0]?.event.caseKey ?? '';
    const created = await store.get(COLLECTIONS.cases, caseKey);
    const first = published.splice(0);
    await ingest.ingest([guardDutyAt('2026-11-20T10:00:00.000Z', true, 3)]);
    const resolved = await store.get(COLLECTIONS.cases, caseKey);
    // Assess: each event names the version its chunk's write stored, which was not there when it went out
    expect(created?.version).toBe(1);
    expect(first.map((p) => [p.event.type, p.event.caseVersion, p.storedAtPublish])).toEqual([
      ['case.decided', 1, undefined],
      ['case.decided', 1, undefined],
    ]);
    expect(resolved?.version).toBe(2);
    expect(CaseSchema.parse(resolved?.value).status).toBe('pending-verification');
    expect(published.map((p) => [p.event.type, p.event.caseVersion, p.storedAtPublish])).toEqual([
      ['case.decided', 2, 1],
      ['case.verify-requested', 2, 1],
    ]);
  });

  describe('when a write loses a race', () => {
    /** A memory store that lets another worker write just before its next batch lands. */
    class RacyStore extends MemoryDocStore {
      before: (() => Promise<void>) | undefined;
      override async writeBatch(batch: Parameters<MemoryDocStore['writeBatch']>[0]) {
        const first = this.before;
        this.before = undefined;
        if (first) await first();
        return super.writeBatch(batch);
      }
    }
    /** The SCC push fixture re-detected at `at` (SCC keeps no count: a later eventTime is one more occurrence). */
    const sccAt = (at: string): IngestDoc => {
      const push = loadFixture('scc/public-bucket-acl.pubsub-push.json') as { message: { data: string } };
      const n = JSON.parse(Buffer.from(push.message.data, 'base64').toString('utf8')) as {
        finding: { eventTime: string };
      };
      n.finding.eventTime = at;
      push.message.data = Buffer.from(JSON.stringify(n)).toString('base64');
      return { input: `scc@${at}`, value: push };
    };

    it('never writes an older finding over a newer one, so a redelivered older event does not reopen the case', async () => {
      // Prepare: the finding seen; then worker 1 ingests its archival while worker 2's batch with a late,
      // older active event is in flight (worker 2 loses the race and redoes it)
      const store = new RacyStore();
      const w1 = ingestOn(store, config);
      const w2 = ingestOn(store, config);
      const first = await w1.ingest([guardDutyAt('2026-11-20T08:00:00.000Z', false, 1)]);
      const caseKey = first.results[0]?.decision.caseKey ?? '';
      const findingKey = first.results[0]?.finding.key ?? '';
      store.before = async () => void (await w1.ingest([guardDutyAt('2026-11-20T10:00:00.000Z', true, 2)]));
      // Act
      await w2.ingest([guardDutyAt('2026-11-20T09:00:00.000Z', false, 2)]);
      const afterRace = CaseSchema.parse((await store.get(COLLECTIONS.cases, caseKey))?.value);
      const stored = (await store.get(COLLECTIONS.findings, findingKey))?.value as {
        updatedAt: string;
        status: string;
      };
      await w1.ingest([guardDutyAt('2026-11-20T09:00:00.000Z', false, 2)]); // at-least-once: delivered again
      const afterRedelivery = CaseSchema.parse((await store.get(COLLECTIONS.cases, caseKey))?.value);
      // Assess
      expect(afterRace.status).toBe('pending-verification');
      expect(stored).toMatchObject({ updatedAt: '2026-11-20T10:00:00.000Z', status: 'resolved' });
      expect(afterRedelivery.status).toBe('pending-verification');
    });

    it('counts a re-detection once when the case write loses a race and the finding write does not', async () => {
      // Prepare: an SCC finding; its re-detection is ingested while another stage writes the case
      const store = new RacyStore();
      const published: PipelineEvent[] = [];
      const ingest = ingestOn(store, config, published);
      const first = await ingest.ingest([sccAt('2026-11-20T09:58:00.000Z')]);
      const caseKey = first.results[0]?.decision.caseKey ?? '';
      store.before = async () => {
        const doc = await store.get(COLLECTIONS.cases, caseKey);
        if (doc) await store.put(COLLECTIONS.cases, caseKey, doc.value, { expectVersion: doc.version });
      };
      // Act
      const again = await ingest.ingest([sccAt('2026-11-21T09:58:00.000Z')]);
      // Assess: two occurrences and a recurrence, as without the race
      const c = CaseSchema.parse((await store.get(COLLECTIONS.cases, caseKey))?.value);
      expect(c.occurrences).toBe(2);
      expect(again.results[0]?.decision.recurrence).toBe(true);
    });
  });

  it.each([
    ['acme-test-results-prod', undefined],
    ['dev-tools-production', undefined],
    ['payments-exports', 'uat/prod'],
  ] as const)('never fixes %s automatically when its environment words disagree (env tag %s)', async (bucket, env) => {
    // Prepare: an account the registry does not know; an owner tag
    const raw = loadFixture('securityhub/s3.8-failed.eventbridge.json') as {
      detail: { findings: Array<{ AwsAccountId: string; Resources: Array<{ Id: string; Tags?: object }> }> };
    };
    const f = raw.detail.findings[0];
    if (!f?.Resources[0]) throw new Error('fixture without a resource');
    f.AwsAccountId = '777788889999';
    f.Resources[0].Id = `arn:aws:s3:::${bucket}`;
    f.Resources[0].Tags = { owner: 'payments@acme.example', ...(env ? { env } : {}) };
    // Act
    const out = await ingestOn(new MemoryDocStore(), config).ingest([{ input: bucket, value: raw }]);
    // Assess
    const r = out.results[0];
    expect(r?.enrichment.environment).toBe('unknown');
    expect(r?.decision.remediation.action).toBe('s3.block-public-access');
    expect(r?.decision.remediation.mode).toBe('manual');
  });

  describe('on a shared SQLite store', () => {
    let tmp: ReturnType<typeof tempDir>;
    beforeEach(() => {
      tmp = tempDir();
    });
    afterEach(() => tmp.cleanup());

    it('makes one case per case key when three workers ingest the same events at once', async () => {
      // Prepare: three stores on one file, as three worker processes would have.
      const file = join(tmp.dir, 'closeloop.db');
      const stores = await Promise.all([1, 2, 3].map(() => SqliteDocStore.open(file)));
      const input = docs(
        'guardduty/s3-bucket-anonymous-access.eventbridge.json',
        'securityhub/guardduty-copy.eventbridge.json',
        'guardduty/instance-crypto.eventbridge.json',
        'securityhub/s3.8-failed.eventbridge.json',
        'scc/public-bucket-acl.pubsub-push.json',
        'defender/alert.arm.json',
        'defender/vm-miner-alert.arm.json',
      );
      const published: PipelineEvent[] = [];
      // Act
      await Promise.all(stores.map((s) => ingestOn(s, config, published).ingest(input)));
      // Assess
      const first = stores[0] as SqliteDocStore;
      const cases = (await first.list(COLLECTIONS.cases)).map((d) => CaseSchema.parse(d.value));
      const single = new MemoryDocStore();
      await ingestOn(single, config).ingest(input);
      const expected = (await single.list(COLLECTIONS.cases)).map((d) => CaseSchema.parse(d.value));
      expect(cases.map((c) => c.key).sort()).toEqual(expected.map((c) => c.key).sort());
      for (const c of cases) {
        const e = expected.find((x) => x.key === c.key);
        expect(c.occurrences).toBe(e?.occurrences);
        expect(c.findingKeys.sort()).toEqual(e?.findingKeys.sort());
      }
      // Each finding state is announced under one deterministic event id, however many workers saw it
      // (the GuardDuty finding and its Security Hub copy are the same finding state).
      expect(new Set(published.map((e) => e.id)).size).toBe(expected.length);
      await Promise.all(stores.map((s) => s.close()));
    });
  });
});
