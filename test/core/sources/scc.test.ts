import { describe, expect, it } from 'vitest';
import { normalize } from '../../../shared/core/pipeline/normalize.js';
import { sha256Hex } from '../../../shared/core/util/hash.js';
import { loadFixture, variant } from '../../helpers/fixtures.js';
import { one, oneFixture } from './util.js';

const RAW = 'scc/public-bucket-acl.notification.json';

describe('Security Command Center normalizer', () => {
  it('maps the PUBLIC_BUCKET_ACL notification with project id and number', () => {
    // Act
    const f = oneFixture(RAW);
    // Assess
    const name = 'organizations/605118234777/sources/7319642508813370215/findings/6231489d7f6339e4445895fba66db11c';
    expect(f).toMatchObject({
      key: sha256Hex('gcp:sources/7319642508813370215/findings/6231489d7f6339e4445895fba66db11c'),
      source: 'scc',
      sourceId: name,
      type: 'PUBLIC_BUCKET_ACL',
      severity: 'high',
      sourceSeverity: 'HIGH',
      status: 'active',
      muted: false,
      kind: 'compliance',
      firstSeen: '2026-11-18T15:20:07.331Z',
      lastSeen: '2026-11-18T15:20:07.331Z',
      resource: {
        provider: 'gcp',
        id: '//storage.googleapis.com/acme-web-uploads',
        type: 'google.cloud.storage.Bucket',
        name: 'acme-web-uploads',
        account: 'acme-web-prod',
        accountNumber: '318274659012',
        region: null,
        tags: {},
        details: { bucket: 'acme-web-uploads', project: 'acme-web-prod', projectNumber: '318274659012' },
      },
    });
    expect(f.recommendation).toContain('allUsers');
  });

  it('never shows a finding first seen after it was last seen: the detection before SCC created the finding is its first sighting', () => {
    // Prepare: the first message of a finding (SCC creates it moments after the eventTime it detected) and a later update
    const base = loadFixture(RAW);
    const update = variant(base, { 'finding.eventTime': '2026-11-19T08:00:00.000Z' });
    // Act
    const first = one(base);
    const later = one(update);
    // Assess
    expect(first).toMatchObject({ firstSeen: '2026-11-18T15:20:07.331Z', lastSeen: '2026-11-18T15:20:07.331Z' });
    expect(first.firstSeen <= first.lastSeen).toBe(true);
    expect(later).toMatchObject({
      firstSeen: '2026-11-18T15:20:09.004Z',
      lastSeen: '2026-11-19T08:00:00.000Z',
      updatedAt: '2026-11-19T08:00:00.000Z',
    });
  });

  it('titles the finding with its category and what it means (category + description, §2), not the bare category', () => {
    // Prepare
    const base = loadFixture(RAW);
    // Act
    const f = one(base);
    const noText = one(variant(base, { 'finding.description': undefined, 'finding.sourceProperties': undefined }));
    // Assess
    expect(f.title).toBe('PUBLIC_BUCKET_ACL — Cloud Storage bucket is publicly accessible.');
    expect(f.type).toBe('PUBLIC_BUCKET_ACL');
    expect(noText.title).toBe('PUBLIC_BUCKET_ACL');
  });

  it('gives the raw message, the Pub/Sub push body and the CloudEvent the same key and mapping', () => {
    // Act
    const raw = oneFixture(RAW);
    const push = oneFixture('scc/public-bucket-acl.pubsub-push.json');
    const ce = oneFixture('scc/public-bucket-acl.cloudevent.json');
    // Assess
    expect(push.key).toBe(raw.key);
    expect(ce.key).toBe(raw.key);
    expect({ ...push, raw: null }).toEqual({ ...raw, raw: null });
    expect({ ...ce, raw: null }).toEqual({ ...raw, raw: null });
  });

  it("names a bucket spelled //storage.googleapis.com/projects/_/buckets/NAME as //storage.googleapis.com/NAME (one bucket, one case), keeping the message's spelling", () => {
    // Prepare: the same finding, its bucket written the Storage API's way
    const spelled = '//storage.googleapis.com/projects/_/buckets/acme-web-uploads';
    const base = loadFixture(RAW);
    const other = variant(base, { 'finding.resourceName': spelled, 'resource.name': spelled });
    // Act
    const f = one(base);
    const g = one(other);
    // Assess
    expect(g.resource.id).toBe('//storage.googleapis.com/acme-web-uploads');
    expect(g.resource.id).toBe(f.resource.id);
    expect(g.resource).toMatchObject({ name: 'acme-web-uploads', details: { bucket: 'acme-web-uploads' } });
    expect(g.resource.altIds).toEqual([spelled]);
    expect(f.resource.altIds).toEqual([]);
  });

  it('leaves an object inside a bucket, and other services, as they are spelled', () => {
    // Prepare
    const object = '//storage.googleapis.com/projects/_/buckets/acme-web-uploads/objects/a.txt';
    // Act
    const f = one(variant(loadFixture(RAW), { 'finding.resourceName': object, 'resource.name': object }));
    // Assess
    expect(f.resource.id).toBe(object);
    expect(f.resource.altIds).toEqual([]);
  });

  it('maps a v2 message with locations: same key scheme, project from gcpMetadata, region from location', () => {
    // Act
    const f = oneFixture('scc/notification-v2.json');
    // Assess
    expect(f.key).toBe(sha256Hex('gcp:sources/7319642508813370215/findings/9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e'));
    expect(f.resource).toMatchObject({
      account: 'acme-web-prod',
      accountNumber: '318274659012',
      region: 'europe-west1',
    });
  });

  it('treats empty resource type, display name and project name as not given (found by the fuzz test)', () => {
    // Prepare
    const event = variant(loadFixture(RAW), {
      'resource.type': '',
      'resource.displayName': '',
      'resource.projectDisplayName': '',
    });
    // Act
    const f = one(event);
    // Assess
    expect(f.resource.type).not.toBe('');
    expect(f.resource.name).not.toBe('');
    expect(f.resource.account).not.toBe('');
  });

  it('gives a v1 and a v2 name of the same finding the same key', () => {
    // Prepare
    const v1 = variant(loadFixture(RAW), {});
    const v2 = variant(loadFixture(RAW), {
      'finding.name':
        'organizations/605118234777/sources/7319642508813370215/locations/global/findings/6231489d7f6339e4445895fba66db11c',
    });
    // Act + Assess
    expect(one(v2).key).toBe(one(v1).key);
  });

  it('accepts proto-style snake_case field names', () => {
    // Act
    const f = oneFixture('scc/notification.proto-names.json');
    // Assess
    expect(f.key).toBe(oneFixture(RAW).key);
    expect(f.resource).toMatchObject({
      id: '//storage.googleapis.com/acme-web-uploads',
      account: 'acme-web-prod',
      name: 'acme-web-uploads',
    });
  });

  it('resolves an INACTIVE finding and a muted one, recording muted', () => {
    // Act
    const inactive = oneFixture('scc/inactive.notification.json');
    const muted = oneFixture('scc/muted.notification.json');
    // Assess
    expect(inactive).toMatchObject({ status: 'resolved', statusReason: 'state INACTIVE', muted: false });
    expect(muted).toMatchObject({ status: 'resolved', statusReason: 'muted', muted: true });
    expect(muted.ocsf.status_id).toBe(3);
    expect(inactive.key).toBe(muted.key);
  });

  it('gives OPEN_FIREWALL the firewall name and numeric id the action needs', () => {
    // Act
    const f = oneFixture('scc/open-firewall.notification.json');
    // Assess
    expect(f).toMatchObject({
      type: 'OPEN_FIREWALL',
      resource: {
        id: '//compute.googleapis.com/projects/acme-sandbox/global/firewalls/6042983750138837711',
        type: 'google.compute.Firewall',
        name: 'allow-all-ingress',
        account: 'acme-sandbox',
        accountNumber: '555000111222',
        details: { firewall: 'allow-all-ingress', firewallId: '6042983750138837711', project: 'acme-sandbox' },
      },
      compliance: { controls: ['3.6', '3.7'], standards: ['cis 1.3'] },
    });
  });

  it('maps CRITICAL/HIGH/MEDIUM/LOW one to one and unspecified or absent to informational', () => {
    // Prepare
    const base = loadFixture(RAW);
    const cases: Array<[string | undefined, string]> = [
      ['CRITICAL', 'critical'],
      ['HIGH', 'high'],
      ['MEDIUM', 'medium'],
      ['LOW', 'low'],
      ['SEVERITY_UNSPECIFIED', 'informational'],
      [undefined, 'informational'],
    ];
    // Act + Assess
    for (const [label, expected] of cases)
      expect(one(variant(base, { 'finding.severity': label })).severity).toBe(expected);
  });

  it('classifies THREAT findings as detections', () => {
    // Act
    const f = one(
      variant(loadFixture(RAW), {
        'finding.findingClass': 'THREAT',
        'finding.category': 'Persistence: IAM Anomalous Grant',
      }),
    );
    // Assess
    expect(f).toMatchObject({ kind: 'detection', type: 'Persistence: IAM Anomalous Grant', ocsf: { class_uid: 2004 } });
  });

  it('rejects a Pub/Sub push whose data is not base64 JSON, naming message.data', () => {
    // Prepare
    const push = loadFixture('scc/public-bucket-acl.pubsub-push.json');
    const notBase64 = variant(push, { 'message.data': 'not base64 !!' });
    const notJson = variant(push, { 'message.data': Buffer.from('{"finding": ').toString('base64') });
    // Act
    const a = normalize(notBase64, 'push.json');
    const b = normalize(notJson, 'push.json');
    // Assess
    expect(a.rejected).toEqual([
      { input: 'push.json', source: 'scc', path: 'message.data', reason: 'not valid base64' },
    ]);
    expect(b.rejected[0]).toMatchObject({ source: 'scc', path: 'message.data' });
    expect(b.rejected[0]?.reason).toMatch(/^base64 data is not JSON/);
  });
});
