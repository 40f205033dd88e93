/**
 * An applied fix is re-read by the action that applied it, not by the one decide chose for the case since (a
 * playbook or registry change): that one's check is not of the fix made, and the stored target is not its own.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { MemoryEvidenceStore } from '../../shared/adapters/evidence/memory.js';
import { MemoryDocStore } from '../../shared/adapters/store/memory.js';
import { LocalUpstreamStatus } from '../../shared/adapters/upstream/local.js';
import { silentLogger } from '../../shared/core/ports.js';
import type { RemoteRequest } from '../../shared/core/remediation/remote.js';
import { assessCase, type VerifiableAction } from '../../shared/core/verify/assess.js';
import { VerificationPolicySchema } from '../../shared/core/verify/policy.js';
import { createVerifyStage } from '../../shared/core/verify/stage.js';
import { testContext } from '../helpers/action-context.js';
import { appliedCase, applyRequested, fixedClock, makeFinding, putCase, putFinding } from './helpers.js';

const BUCKET = 'acme-marketing-exports';

/** An action whose re-read records what it was asked to read and says whether the fix holds. */
function reader(id: string, target: z.ZodType, holds: boolean) {
  const read: unknown[] = [];
  const action: VerifiableAction = {
    id,
    target,
    selectTarget: (f) =>
      target.parse(id === 'test.close-bucket' ? { name: f.resource.name } : { bucket: f.resource.name }),
    verify: async (t) => {
      read.push(t);
      return { holds, observed: { by: id }, reason: holds ? 'closed' : 'grants still there' };
    },
  };
  return { action, read };
}

describe('verification of a fix whose action decide changed after the apply', () => {
  // The fix was made by test.close-bucket; decide now chooses test.remove-grants for the case.
  let a: ReturnType<typeof reader>;
  let b: ReturnType<typeof reader>;
  const lookup = () => ({
    get: (id: string) => (id === a.action.id ? a.action : id === b.action.id ? b.action : undefined),
  });
  const changed = () =>
    appliedCase('test.remove-grants', { name: BUCKET }, { remediation: { applyAction: 'test.close-bucket' } });

  beforeEach(() => {
    a = reader('test.close-bucket', z.object({ name: z.string() }), true);
    b = reader('test.remove-grants', z.object({ bucket: z.string() }), false);
  });

  it('re-reads with the action that applied the fix', async () => {
    // Act
    const out = await assessCase(
      {
        actions: lookup(),
        ctx: testContext(),
        policy: { attempts: 1, backoffMs: 0, maxBackoffMs: 0 },
        sleep: async () => {},
      },
      changed(),
      [makeFinding()],
      'apply',
    );
    // Assess
    expect(out).toMatchObject({ verdict: 'verified', basis: 're-read', observed: { by: 'test.close-bucket' } });
    expect(a.read).toEqual([{ name: BUCKET }]);
    expect(b.read).toEqual([]);
  });

  it('asks the spoke to re-read with the action that applied the fix', async () => {
    // Prepare
    const store = new MemoryDocStore();
    const sent: RemoteRequest[] = [];
    await putFinding(store, makeFinding());
    await putCase(store, changed());
    const stage = createVerifyStage({
      store,
      evidence: new MemoryEvidenceStore(),
      actions: lookup(),
      ctx: testContext(),
      upstream: new LocalUpstreamStatus(),
      clock: fixedClock(),
      log: silentLogger,
      policy: VerificationPolicySchema.parse({ attempts: 2, backoffMs: 0, remoteWindowSeconds: 600 }),
      sleep: async () => {},
      remote: { runs: () => true, dispatch: async (r) => void sent.push(r) },
    });
    // Act
    await stage.handle(applyRequested());
    // Assess
    expect(sent).toHaveLength(1);
    expect(sent[0]).toMatchObject({ op: 'verify', action: 'test.close-bucket', target: { name: BUCKET } });
  });
});
