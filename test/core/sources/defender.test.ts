import { describe, expect, it } from 'vitest';
import { normalize } from '../../../shared/core/pipeline/normalize.js';
import { armType } from '../../../shared/core/sources/defender.js';
import { sha256Hex } from '../../../shared/core/util/hash.js';
import { loadFixture, variant } from '../../helpers/fixtures.js';
import { one, oneFixture } from './util.js';

const SUB = '6c1f3d2a-9b4e-4f7a-8d2c-5e0b1a7c9f36';
const ASSESSMENT = 'defender/assessment-storage-public-access.json';
const WORKFLOW = 'defender/alert-storage-open-acl.workflow-automation.json';
const POLICY = '/providers/Microsoft.Authorization/policyDefinitions/4fa4b6c0-31ca-4c0d-b10d-24b96f62a751';

describe('Defender for Cloud normalizer', () => {
  it('maps the storage public-access assessment to an active compliance finding typed by its policy', () => {
    // Act
    const f = oneFixture(ASSESSMENT);
    // Assess
    const resourceId = `/subscriptions/${SUB}/resourceGroups/rg-shared-services/providers/Microsoft.Storage/storageAccounts/stacmeshared01`;
    const id = `${resourceId}/providers/Microsoft.Security/assessments/00000000-0000-0000-0000-5a3b1c0d9e01`;
    expect(f).toMatchObject({
      key: sha256Hex(`azure:${id.toLowerCase()}`),
      source: 'defender',
      sourceId: id,
      type: POLICY,
      title: 'Storage account public access should be disallowed',
      severity: 'medium',
      sourceSeverity: 'Medium',
      status: 'active',
      kind: 'compliance',
      firstSeen: '2026-11-16T22:05:41.000Z',
      resource: {
        provider: 'azure',
        id: resourceId,
        type: 'Microsoft.Storage/storageAccounts',
        name: 'stacmeshared01',
        account: SUB,
        region: null,
        tags: {},
        details: { subscriptionId: SUB, resourceGroup: 'rg-shared-services', storageAccount: 'stacmeshared01' },
      },
      compliance: { controls: [POLICY], status: 'Unhealthy' },
    });
  });

  it('resolves an assessment that turns Healthy, keeping its key', () => {
    // Act
    const unhealthy = oneFixture(ASSESSMENT);
    const healthy = oneFixture('defender/assessment-healthy.json');
    // Assess
    expect(healthy).toMatchObject({ status: 'resolved', statusReason: 'assessment Healthy', key: unhealthy.key });
    expect(healthy.lastSeen).toBe('2026-11-19T03:10:12.000Z');
  });

  it('resolves a NotApplicable assessment as not applicable', () => {
    // Act
    const f = oneFixture('defender/assessment-not-applicable.json');
    // Assess
    expect(f).toMatchObject({ status: 'resolved', statusReason: 'not applicable (Exempt)' });
  });

  it('records an exempted assessment as muted (an exemption accepts the risk, the resource is not fixed), other NotApplicable causes not', () => {
    // Act
    const exempt = oneFixture('defender/assessment-not-applicable.json');
    const offByPolicy = one(
      variant(loadFixture('defender/assessment-not-applicable.json'), { 'properties.status.cause': 'OffByPolicy' }),
    );
    // Assess: like a Dismissed alert or an SCC mute, so its case is suppressed instead of verified (and failed) as a fix
    expect(exempt).toMatchObject({ status: 'resolved', muted: true });
    expect(exempt.ocsf.status_id).toBe(3);
    expect(offByPolicy).toMatchObject({
      status: 'resolved',
      muted: false,
      statusReason: 'not applicable (OffByPolicy)',
    });
  });

  it('reads resourceDetails case-insensitively and rejects multicloud connector assessments', () => {
    // Prepare
    const base = loadFixture(ASSESSMENT);
    const capital = variant(base, {
      'properties.resourceDetails': {
        Source: 'Azure',
        Id: `/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/x1`,
      },
    });
    const aws = variant(base, { 'properties.resourceDetails': { Source: 'Aws', Id: 'arn:aws:s3:::acme-x' } });
    // Act
    const f = one(capital);
    const out = normalize(aws, 'aws.json');
    // Assess
    expect(f.resource.name).toBe('x1');
    expect(out.findings).toEqual([]);
    expect(out.rejected[0]).toMatchObject({ source: 'defender', path: 'properties.resourceDetails.source' });
  });

  it('maps the workflow-automation (PascalCase) alert with the ids the resolve API needs', () => {
    // Act
    const f = oneFixture(WORKFLOW);
    // Assess
    const alertId = '2517494421189999999_3c1d7f9e-2a4b-4c6d-8e0f-1a2b3c4d5e6f';
    expect(f).toMatchObject({
      key: sha256Hex(`azure:${alertId}`),
      source: 'defender',
      sourceId: alertId,
      type: 'Storage.Blob_OpenACL',
      severity: 'medium',
      status: 'active',
      kind: 'detection',
      firstSeen: '2026-11-18T13:02:10.000Z',
      updatedAt: '2026-11-18T13:09:47.201Z',
      resource: {
        id: `/subscriptions/${SUB}/resourceGroups/rg-media/providers/Microsoft.Storage/storageAccounts/stacmemedia01`,
        type: 'Microsoft.Storage/storageAccounts',
        name: 'stacmemedia01',
        account: SUB,
        details: {
          storageAccount: 'stacmemedia01',
          resourceGroup: 'rg-media',
          alertName: alertId,
          ascLocation: 'westeurope',
        },
      },
    });
    expect(f.recommendation).toContain('Private (no anonymous access)');
  });

  it('maps the ARM alert shape, taking the ASC location from the alert id', () => {
    // Act
    const kv = oneFixture('defender/alert.arm.json');
    const miner = oneFixture('defender/vm-miner-alert.arm.json');
    // Assess
    expect(kv).toMatchObject({
      type: 'KV_SuspiciousIPAccess',
      severity: 'medium',
      resource: { type: 'Microsoft.KeyVault/vaults', name: 'kv-media-prod', details: { ascLocation: 'westeurope' } },
    });
    expect(miner).toMatchObject({
      type: 'VM_MinerInContainerImage',
      severity: 'high',
      resource: {
        type: 'Microsoft.Compute/virtualMachines',
        details: { vmName: 'vm-render-01', resourceGroup: 'rg-media-render' },
      },
    });
  });

  it('gives an ARM alert and its workflow-automation twin the same key', () => {
    // Prepare
    const workflow = loadFixture(WORKFLOW);
    const arm = variant(loadFixture('defender/alert.arm.json'), {
      name: '2517494421189999999_3C1D7F9E-2A4B-4C6D-8E0F-1A2B3C4D5E6F',
      'properties.systemAlertId': '2517494421189999999_3C1D7F9E-2A4B-4C6D-8E0F-1A2B3C4D5E6F',
    });
    // Act + Assess
    expect(one(arm).key).toBe(one(workflow).key);
  });

  it('resolves alerts whose status is Resolved or Dismissed and keeps Active/InProgress/New active', () => {
    // Prepare
    const base = loadFixture('defender/alert.arm.json');
    // Act + Assess
    for (const status of ['Resolved', 'Dismissed'])
      expect(one(variant(base, { 'properties.status': status }))).toMatchObject({
        status: 'resolved',
        statusReason: `alert status ${status}`,
      });
    for (const status of ['Active', 'InProgress', 'New'])
      expect(one(variant(base, { 'properties.status': status })).status).toBe('active');
    expect(one(variant(loadFixture(WORKFLOW), { Status: 'Dismissed' })).status).toBe('resolved');
  });

  it('records a Dismissed alert as muted (a false positive or accepted risk, not a fix) and a Resolved one as not', () => {
    // Prepare
    const base = loadFixture('defender/alert.arm.json');
    // Act
    const dismissed = one(variant(base, { 'properties.status': 'Dismissed' }));
    const workflowDismissed = one(variant(loadFixture(WORKFLOW), { Status: 'Dismissed' }));
    const resolved = one(variant(base, { 'properties.status': 'Resolved' }));
    // Assess: like Security Hub SUPPRESSED and SCC MUTED, so the case is suppressed instead of "verified fixed"
    expect(dismissed).toMatchObject({ status: 'resolved', muted: true, statusReason: 'alert status Dismissed' });
    expect(dismissed.ocsf).toMatchObject({ status_id: 3, activity_id: 3 });
    expect(workflowDismissed.muted).toBe(true);
    expect(resolved).toMatchObject({ status: 'resolved', muted: false });
    expect(resolved.ocsf.status_id).toBe(4);
  });

  it('gives an InProgress alert OCSF status In Progress (2), an Active or New one New (1)', () => {
    // Prepare
    const base = loadFixture('defender/alert.arm.json');
    // Act + Assess
    expect(one(variant(base, { 'properties.status': 'InProgress' })).ocsf.status_id).toBe(2);
    expect(one(variant(loadFixture(WORKFLOW), { Status: 'InProgress' })).ocsf.status_id).toBe(2);
    for (const status of ['Active', 'New'])
      expect(one(variant(base, { 'properties.status': status })).ocsf.status_id).toBe(1);
  });

  it('maps Informational, Low, Medium, High and Critical one to one and rejects anything else', () => {
    // Prepare
    const base = loadFixture('defender/alert.arm.json');
    // Act + Assess
    for (const s of ['Informational', 'Low', 'Medium', 'High', 'Critical'])
      expect(one(variant(base, { 'properties.severity': s })).severity).toBe(s.toLowerCase());
    const out = normalize(variant(base, { 'properties.severity': 'Severe' }), 'x.json');
    expect(out.rejected[0]).toMatchObject({ source: 'defender', path: 'properties.severity' });
  });

  it('finds the resource in entities when resourceIdentifiers has none', () => {
    // Prepare
    const alert = variant(loadFixture(WORKFLOW), { ResourceIdentifiers: [], AzureResourceId: undefined });
    // Act
    const f = one(alert);
    // Assess
    expect(f.resource.name).toBe('stacmemedia01');
  });

  it('unwraps an Event Grid envelope and an Event Grid CloudEvent by the shape of data', () => {
    // Act
    const grid = normalize(loadFixture('defender/eventgrid-envelope.json'), 'grid.json');
    const ce = normalize(loadFixture('defender/eventgrid-cloudevent.json'), 'ce.json');
    // Assess
    expect(grid.rejected).toEqual([]);
    expect(grid.findings.map((f) => [f.type, f.resource.account])).toEqual([
      ['Storage.Blob_OpenACL', '0b7e4c1a-2d3f-4a5b-9c6d-7e8f9a0b1c2d'],
    ]);
    expect(ce.rejected).toEqual([]);
    expect(ce.findings.map((f) => [f.type, f.resource.name])).toEqual([[POLICY, 'stacmewebdev02']]);
  });

  it('parses ARM resource types, including nested and resource-group ids', () => {
    // Act + Assess
    expect(
      armType(`/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1/extensions/e1`),
    ).toBe('Microsoft.Compute/virtualMachines/extensions');
    expect(armType(`/subscriptions/${SUB}/resourceGroups/rg`)).toBe('Microsoft.Resources/resourceGroups');
    expect(armType(`/subscriptions/${SUB}`)).toBe('Microsoft.Resources/subscriptions');
  });
});
