import { readFile, writeFile } from 'node:fs/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalFolderEvidenceStore } from '../../shared/adapters/evidence/local-folder.js';
import { MemoryDocStore } from '../../shared/adapters/store/memory.js';
import { LocalUpstreamStatus } from '../../shared/adapters/upstream/local.js';
import { caseStory, verifyChains } from '../../shared/core/evidence/audit.js';
import { createEvidenceStage } from '../../shared/core/evidence/stage.js';
import { CaseSchema } from '../../shared/core/model/case.js';
import type { PipelineEvent } from '../../shared/core/model/events.js';
import { InProcessBus } from '../../shared/core/pipeline/stage.js';
import { silentLogger } from '../../shared/core/ports.js';
import { VerificationPolicySchema } from '../../shared/core/verify/policy.js';
import { createVerifyStage } from '../../shared/core/verify/stage.js';
import { tempDir } from '../helpers/tmp.js';
import { fixedClock, makeCase, makeFinding, putCase, putFinding } from './helpers.js';

describe('local run: verify and evidence stages on one bus', () => {
  let dir: string;
  let cleanup: () => void;
  beforeEach(() => {
    ({ dir, cleanup } = tempDir('closeloop-verify-'));
  });
  afterEach(() => cleanup());

  it('closes resolved cases with an intact chain, keeps dry-run plans planned, and fails the check after a hand edit', async () => {
    // Prepare
    const store = new MemoryDocStore();
    const evidence = new LocalFolderEvidenceStore(dir);
    const clock = fixedClock();
    // The evidence stage goes first so each step is recorded before the next stage acts on it.
    const stages = [
      createEvidenceStage({ store, evidence, clock, log: silentLogger }),
      createVerifyStage({
        store,
        evidence,
        actions: { get: () => undefined },
        ctx: undefined,
        upstream: new LocalUpstreamStatus(),
        clock,
        log: silentLogger,
        policy: VerificationPolicySchema.parse({}),
      }),
    ];
    const bus = new InProcessBus(stages, silentLogger);
    await putFinding(store, makeFinding());
    const keys = Array.from({ length: 10 }, (_, i) => `case-${i}`);
    for (const [i, key] of keys.entries()) {
      const resolved = i % 2 === 0;
      await putCase(
        store,
        makeCase({
          key,
          sourceStatus: resolved ? 'resolved' : 'active',
          status: resolved ? 'pending-verification' : 'planned',
        }),
      );
    }
    const decided = (key: string): PipelineEvent => ({
      id: `decided:${key}`,
      type: 'case.decided',
      caseKey: key,
      at: '2026-11-20T09:00:00.000Z',
      isNewCase: true,
      recurrence: false,
      statusChanged: true,
      detail: {
        decision: {
          verify: key.endsWith('0') || key.endsWith('2') || key.endsWith('4') || key.endsWith('6') || key.endsWith('8'),
        },
      },
    });
    // Act: every event delivered twice
    await bus.publish([...keys.map(decided), ...keys.map(decided)]);
    await bus.drain();
    // Assess
    expect(bus.failures).toEqual([]);
    const statuses = await Promise.all(
      keys.map(async (k) => CaseSchema.parse((await store.get('cases', k))?.value).status),
    );
    expect(statuses).toEqual(keys.map((_, i) => (i % 2 === 0 ? 'verified' : 'planned')));
    const check = await verifyChains(evidence, { store });
    // 10 decisions + 5 × (upstream + verify)
    expect(check).toMatchObject({ ok: true, records: 20, cases: 10 });
    const story = await caseStory(evidence, 'case-0');
    expect(story).toMatch(
      /decision[\s\S]*upstream[\s\S]*not updated: local run[\s\S]*verify[\s\S]*source reports resolved; no live re-read in the local run/,
    );

    // Act: a person edits one record by hand
    const head = CaseSchema.parse((await store.get('cases', 'case-0'))?.value).evidenceHead ?? '';
    const path = evidence.pathOf(head);
    await writeFile(path, (await readFile(path, 'utf8')).replace('"verified"', '"failed"'));
    // Assess
    const after = await verifyChains(evidence, { store });
    expect(after.ok).toBe(false);
    expect(after.firstBroken).toMatchObject({ hash: head, caseKey: 'case-0' });
  });
});
