/** The lookups the wiring builds: the pre-apply re-check reads GCP project labels fresh; enrichment may share them. */
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createLocalRuntime } from '../../shared/adapters/wiring/local.js';
import { liveOwnerLookup } from '../../shared/adapters/wiring/lookup.js';
import type { ResourceRef } from '../../shared/core/ports.js';
import { readSkipTag } from '../../shared/core/remediation/gates.js';
import { tempDir } from '../helpers/tmp.js';

/** The pre-apply skip-tag gate on `ref`'s live tags (undefined: the lookup cannot read its cloud). */
const skipGate = async (...args: Parameters<typeof readSkipTag>) => (await readSkipTag(...args))?.gate;

// The project's labels as Resource Manager answers them now; each test sets them.
const project = vi.hoisted(() => ({
  labels: {} as Record<string, string>,
  reads: 0,
  callOptions: [] as unknown[],
  storageOptions: [] as unknown[],
}));
vi.mock('@google-cloud/resource-manager', () => ({
  ProjectsClient: class {
    async getProject(_request: unknown, options?: unknown) {
      project.reads++;
      project.callOptions.push(options);
      return [{ labels: { ...project.labels } }];
    }
  },
}));
vi.mock('@google-cloud/storage', () => ({
  Storage: class {
    constructor(options?: unknown) {
      project.storageOptions.push(options);
    }
    bucket() {
      return { getMetadata: async () => [{ labels: {} }] };
    }
  },
}));

const FIREWALL: ResourceRef = {
  provider: 'gcp',
  id: '//compute.googleapis.com/projects/acme-web-prod/global/firewalls/1234567890',
  account: 'acme-web-prod',
  region: null,
};

describe('GCP project labels in the wired lookups', () => {
  beforeEach(() => {
    project.labels = { owner: 'web' };
    project.reads = 0;
  });

  it("gives each Google call one try and a deadline inside the ingest function's 60 s, not the clients' own retries", async () => {
    // Prepare
    const lookup = liveOwnerLookup(['gcp'], { fresh: true });
    // Act
    await lookup.tagsFor({ ...FIREWALL, id: '//storage.googleapis.com/acme-web-uploads' });
    // Assess: Resource Manager without gax's retry of UNAVAILABLE (up to 60 s), Cloud Storage without its
    // own 3 retries over up to 600 s and its 60 s per request
    expect(project.callOptions.at(-1)).toEqual({ timeout: 20_000, retry: null });
    expect(project.storageOptions.at(-1)).toMatchObject({ retryOptions: { autoRetry: false }, timeout: 20_000 });
  });

  it('the pre-apply re-check sees a skip label added to the project after a first read', async () => {
    // Prepare
    const recheck = liveOwnerLookup(['gcp'], { fresh: true });
    const before = await skipGate(recheck, FIREWALL, 'closeloop:skip');
    // Act: a person stops fixes in the project
    project.labels = { owner: 'web', 'closeloop-skip': 'true' };
    const after = await skipGate(recheck, FIREWALL, 'closeloop:skip');
    // Assess
    expect(before?.outcome).toBe('pass');
    expect(after).toEqual({
      gate: 'skip-tag',
      outcome: 'block',
      reason: 'resource carries the skip tag `closeloop:skip` now',
    });
    expect(project.reads).toBe(2);
  });

  it("enrichment's lookup keeps sharing the project's labels across reads", async () => {
    // Prepare
    const enrichment = liveOwnerLookup(['gcp']);
    await enrichment.tagsFor(FIREWALL);
    // Act
    project.labels = { owner: 'web', 'closeloop-skip': 'true' };
    const again = await enrichment.tagsFor(FIREWALL);
    // Assess
    expect(again).toEqual({ owner: 'web' });
    expect(project.reads).toBe(1);
  });

  describe('the embedded default', () => {
    let tmp: ReturnType<typeof tempDir>;
    beforeEach(() => {
      tmp = tempDir();
    });
    afterEach(() => tmp.cleanup());

    it('re-checks the skip tag before an apply with a lookup that reads project labels fresh', async () => {
      // Prepare
      const rt = await createLocalRuntime({
        home: join(tmp.dir, 'home'),
        configDir: join(import.meta.dirname, '../../examples/config'),
        env: {},
        live: true,
      });
      const tags = rt.remediation.tags;
      if (!tags) throw new Error('expected a re-check lookup in a live run');
      await skipGate(tags, FIREWALL, 'closeloop:skip');
      // Act
      project.labels = { owner: 'web', 'closeloop-skip': 'true' };
      const after = await skipGate(tags, FIREWALL, 'closeloop:skip');
      await rt.close();
      // Assess
      expect(after?.outcome).toBe('block');
    });
  });
});
