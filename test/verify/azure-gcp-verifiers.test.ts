/**
 * The verify stage with the real Azure storage, GCS and GCP firewall verifiers against the same doubles
 * as the action tests: Azurite plus a stubbed ARM client, and the GCP JSON API double over HTTP.
 * Each verifier: verified, failed with what was observed, inconclusive with why.
 */
import type { StorageAccount } from '@azure/arm-storage';
import { BlobServiceClient } from '@azure/storage-blob';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import azureStorage from '../../shared/actions/azure.storage.disallow-public-access.js';
import type { AzureStorageAccounts } from '../../shared/actions/clients.js';
import type { Action, ActionContext } from '../../shared/actions/define.js';
import gcpFirewall from '../../shared/actions/gcp.firewall.disable-rule.js';
import gcsPublic from '../../shared/actions/gcs.remove-public-access.js';
import { MemoryEvidenceStore } from '../../shared/adapters/evidence/memory.js';
import { MemoryDocStore } from '../../shared/adapters/store/memory.js';
import { LocalUpstreamStatus } from '../../shared/adapters/upstream/local.js';
import { EvidenceRecordSchema } from '../../shared/core/evidence/record.js';
import { CaseSchema } from '../../shared/core/model/case.js';
import { silentLogger } from '../../shared/core/ports.js';
import { VerificationPolicySchema } from '../../shared/core/verify/policy.js';
import { createVerifyStage } from '../../shared/core/verify/stage.js';
import { testContext } from '../helpers/action-context.js';
import { AZURITE_ACCOUNT, type Azurite, startAzurite } from '../helpers/azurite.js';
import { type GcpDouble, startGcpDouble } from '../helpers/gcp-double.js';
import { appliedCase, applyRequested, CASE_KEY, fixedClock, makeFinding, putCase, putFinding } from './helpers.js';

async function verifyApplied(action: Action, target: unknown, ctx: ActionContext) {
  const store = new MemoryDocStore();
  const evidence = new MemoryEvidenceStore();
  await putFinding(store, makeFinding());
  await putCase(store, appliedCase(action.id, target));
  const events = await createVerifyStage({
    store,
    evidence,
    actions: { get: (id) => (id === action.id ? action : undefined) },
    ctx,
    upstream: new LocalUpstreamStatus(),
    clock: fixedClock(),
    log: silentLogger,
    policy: VerificationPolicySchema.parse({ attempts: 2, backoffMs: 1 }),
    sleep: async () => {},
  }).handle(applyRequested());
  const c = CaseSchema.parse((await store.get('cases', CASE_KEY))?.value);
  const records = (await evidence.listAll()).map((s) => EvidenceRecordSchema.parse(s.raw));
  return { c, events, verify: records.find((r) => r.step === 'verify') };
}

describe('verify stage with the real azure.storage.disallow-public-access verify (Azurite + ARM stub)', () => {
  const SUB = '00000000-0000-0000-0000-000000000000';
  const target = { subscriptionId: SUB, resourceGroup: 'rg-data', accountName: AZURITE_ACCOUNT };
  let azurite: Azurite;
  let blob: BlobServiceClient;
  let n = 0;
  let container: string;

  beforeAll(async () => {
    azurite = await startAzurite();
    blob = new BlobServiceClient(azurite.url, azurite.credential);
  });
  afterAll(async () => azurite?.stop());
  beforeEach(async () => {
    for await (const c of blob.listContainers()) await blob.deleteContainer(c.name);
    container = `exports-${++n}`;
    await blob.getContainerClient(container).create();
  });

  /** ARM answers the account flag (or fails); Azurite answers the containers. */
  const ctxWith = (allowBlobPublicAccess: boolean, fail?: Error) => {
    const arm: AzureStorageAccounts = {
      async getProperties(): Promise<StorageAccount> {
        if (fail) throw fail;
        return { location: 'westeurope', allowBlobPublicAccess };
      },
      async update(): Promise<StorageAccount> {
        throw new Error('verify must not write');
      },
    };
    return testContext({
      clients: { azureStorage: () => arm },
      cloud: { azure: { blobUrl: () => azurite.url, blobCredential: () => azurite.credential } },
    });
  };

  it('verifies when allowBlobPublicAccess is false and no container is public', async () => {
    // Act
    const { c, verify } = await verifyApplied(azureStorage, target, ctxWith(false));
    // Assess
    expect(c.verification).toMatchObject({ verdict: 'verified' });
    expect(verify?.after).toEqual({ allowBlobPublicAccess: false, publicContainers: [] });
  });

  it('fails naming the container when a container was made public again', async () => {
    // Prepare
    await blob.getContainerClient(container).setAccessPolicy('container');
    // Act
    const { c } = await verifyApplied(azureStorage, target, ctxWith(false));
    // Assess
    expect(c.verification).toMatchObject({
      verdict: 'failed',
      observed: { publicContainers: [{ name: container, access: 'container' }] },
    });
    expect(c.verification?.reason).toContain(`container ${container} is public (container)`);
  });

  it('fails when the account flag allows public access again', async () => {
    // Act
    const { c } = await verifyApplied(azureStorage, target, ctxWith(true));
    // Assess
    expect(c.verification?.verdict).toBe('failed');
    expect(c.verification?.reason).toContain('allowBlobPublicAccess is not false');
  });

  it('is inconclusive when ARM refuses the read', async () => {
    // Prepare
    const denied = Object.assign(new Error('no'), { name: 'RestError', code: 'AuthorizationFailed', statusCode: 403 });
    // Act
    const { c } = await verifyApplied(azureStorage, target, ctxWith(false, denied));
    // Assess
    expect(c.verification).toMatchObject({ verdict: 'inconclusive', attempts: 1 });
    expect(c.status).toBe('pending-verification');
  });
});

describe('verify stage with the real GCS and firewall verifies (GCP HTTP double)', () => {
  const BUCKET = 'acme-public-exports';
  const RULE = 'allow-ssh-from-anywhere';
  let gcp: GcpDouble;
  let ctx: ActionContext;

  beforeAll(async () => {
    gcp = await startGcpDouble();
    // One set of clients for the file: building a compute client costs about a second.
    ctx = testContext({ cloud: { gcp: gcp.options } });
  });
  afterAll(async () => gcp?.stop());
  beforeEach(() => {
    gcp.requests.length = 0;
    gcp.buckets.clear();
    gcp.firewalls.clear();
    gcp.buckets.set(BUCKET, {
      iam: {
        bindings: [{ role: 'roles/storage.legacyBucketOwner', members: ['projectOwner:acme-prod'] }],
        etag: 'BwE1',
        version: 3,
      },
      metadata: { iamConfiguration: { publicAccessPrevention: 'enforced' } },
    });
    gcp.firewalls.set(RULE, {
      name: RULE,
      network: 'projects/acme-prod/global/networks/default',
      direction: 'INGRESS',
      disabled: true,
      sourceRanges: ['0.0.0.0/0'],
      allowed: [{ IPProtocol: 'tcp', ports: ['22'] }],
    });
  });
  const bucket = () => {
    const b = gcp.buckets.get(BUCKET);
    if (!b) throw new Error(`double lost ${BUCKET}`);
    return b;
  };

  it('verifies a bucket with no public member and prevention enforced', async () => {
    // Act
    const { c } = await verifyApplied(gcsPublic, { bucket: BUCKET }, ctx);
    // Assess
    expect(c.verification).toMatchObject({ verdict: 'verified' });
    expect(gcp.requests.every((r) => r.method === 'GET')).toBe(true);
  });

  it('fails naming the public member when allUsers was granted again', async () => {
    // Prepare
    bucket().iam.bindings.push({ role: 'roles/storage.objectViewer', members: ['allUsers'] });
    // Act
    const { c } = await verifyApplied(gcsPublic, { bucket: BUCKET }, ctx);
    // Assess
    expect(c.verification?.verdict).toBe('failed');
    expect(c.verification?.reason).toContain('public members remain: allUsers');
  });

  it('fails when public access prevention is back to inherited', async () => {
    // Prepare
    bucket().metadata = { iamConfiguration: { publicAccessPrevention: 'inherited' } };
    // Act
    const { c } = await verifyApplied(gcsPublic, { bucket: BUCKET }, ctx);
    // Assess
    expect(c.verification?.reason).toContain('public access prevention is not enforced');
  });

  it('is inconclusive when the bucket read is forbidden', async () => {
    // Prepare
    gcp.failNext(`/storage/v1/b/${BUCKET}`, 403, { reason: 'forbidden' });
    // Act
    const { c } = await verifyApplied(gcsPublic, { bucket: BUCKET }, ctx);
    // Assess
    expect(c.verification).toMatchObject({ verdict: 'inconclusive', attempts: 1 });
    expect(c.verification?.reason).toMatch(/^re-read failed and is not retried/);
  });

  it('verifies a disabled firewall rule', async () => {
    // Act
    const { c, verify } = await verifyApplied(gcpFirewall, { project: 'acme-prod', firewall: RULE }, ctx);
    // Assess
    expect(c.verification).toMatchObject({ verdict: 'verified' });
    expect(c.verification?.reason).toBe(`firewall rule ${RULE} is closed`);
    expect(verify?.after).toMatchObject({ name: RULE, disabled: true });
  });

  it('fails when the rule was enabled again and still admits the internet', async () => {
    // Prepare
    gcp.firewalls.set(RULE, { ...gcp.firewalls.get(RULE), disabled: false });
    // Act
    const { c } = await verifyApplied(gcpFirewall, { project: 'acme-prod', firewall: RULE }, ctx);
    // Assess
    expect(c.verification).toMatchObject({ verdict: 'failed', observed: { disabled: false } });
    expect(c.verification?.reason).toBe(`${RULE} still admits the internet (after 2 re-reads)`);
  });

  it('is inconclusive, never a pass, when the rule is gone', async () => {
    // Prepare
    gcp.firewalls.delete(RULE);
    // Act
    const { c } = await verifyApplied(gcpFirewall, { project: 'acme-prod', firewall: RULE }, ctx);
    // Assess
    expect(c.verification?.verdict).toBe('inconclusive');
  });
});
