/**
 * A spoke speaks for its own cloud only: the Azure spoke forwards Defender documents, the GCP spoke SCC
 * notifications, and the hub re-checks both what a forwarded document normalizes to and that the
 * spoke it names is the one its event source (fixed by the forwarder role's `events:source`) says.
 */
import { describe, expect, it } from 'vitest';
import {
  type HubIngestDoc,
  hubIngestDoc,
  type RefusedIngestDoc,
  SPOKE_DETAIL_TYPE,
  type Spoke,
  spokeSource,
} from '../../../shared/adapters/bus/spoke.js';
import { acceptDocuments } from '../../../shared/adapters/bus/spoke-accept.js';
import { normalize } from '../../../shared/core/pipeline/normalize.js';
import { loadFixture } from '../../helpers/fixtures.js';

const guardDuty = loadFixture('guardduty/accesskey-iamuser-malicious-ip.eventbridge.json');
const securityHub = loadFixture('securityhub/s3.8-failed.eventbridge.json');
const defender = loadFixture('defender/alert.arm.json');
const scc = loadFixture('scc/public-bucket-acl.notification.json');

function spokeEvent(source: string, spoke: Spoke, document: unknown) {
  return {
    version: '0',
    id: '00000000-0000-0000-0000-000000000007',
    'detail-type': SPOKE_DETAIL_TYPE,
    source,
    account: '111122223333',
    time: '2026-12-07T10:00:00Z',
    region: 'us-east-1',
    resources: [],
    detail: { spoke, input: 'http:1', document, findingKeys: [] },
  };
}

const accepted = (doc: HubIngestDoc | RefusedIngestDoc): HubIngestDoc => {
  if ('refused' in doc) throw new Error(`unexpectedly refused: ${doc.refused.reason}`);
  return doc;
};

describe('a spoke accepts only its own cloud’s formats', () => {
  it('forwards nothing and names the spoke when the Azure spoke is fed AWS or GCP findings', async () => {
    // Prepare
    const docs = [
      { input: 'http:1', value: guardDuty },
      { input: 'http:2', value: securityHub },
      { input: 'http:3', value: scc },
    ];
    // Act
    const { details, rejected } = await acceptDocuments('azure', docs);
    // Assess
    expect(details).toEqual([]);
    expect(rejected.map((r) => [r.input, r.source])).toEqual([
      ['azure:http:1', 'guardduty'],
      ['azure:http:2', 'securityhub'],
      ['azure:http:3', 'scc'],
    ]);
    expect(rejected[0]?.reason).toBe(
      'refused: a guardduty finding (aws) came through the azure spoke, which accepts only azure findings',
    );
  });

  it('forwards nothing when the GCP spoke is fed GuardDuty or Defender documents', async () => {
    // Act
    const { details, rejected } = await acceptDocuments('gcp', [
      { input: 'pubsub:1', value: guardDuty },
      { input: 'pubsub:2', value: defender },
    ]);
    // Assess
    expect(details).toEqual([]);
    expect(rejected.map((r) => r.reason)).toEqual([
      'refused: a guardduty finding (aws) came through the gcp spoke, which accepts only gcp findings',
      'refused: a defender finding (azure) came through the gcp spoke, which accepts only gcp findings',
    ]);
  });

  it('forwards its own cloud’s documents when each spoke receives them', async () => {
    // Act
    const azure = await acceptDocuments('azure', [{ input: 'eventgrid:1', value: defender }]);
    const gcp = await acceptDocuments('gcp', [{ input: 'pubsub:1', value: scc }]);
    // Assess
    expect([azure.details.length, azure.rejected]).toEqual([1, []]);
    expect([gcp.details.length, gcp.rejected]).toEqual([1, []]);
  });
});

describe('the hub re-checks what a spoke forwarded', () => {
  it('refuses the event, naming both, when detail.spoke is not the spoke of the event source', () => {
    // Act
    const doc = hubIngestDoc(spokeEvent(spokeSource('azure'), 'gcp', scc));
    // Assess
    expect(doc).toEqual({
      input: 'eventbridge:00000000-0000-0000-0000-000000000007',
      refused: {
        input: 'eventbridge:00000000-0000-0000-0000-000000000007',
        source: 'unknown',
        path: 'detail.spoke',
        reason:
          'refused: detail.spoke "gcp" does not match the event source "closeloop.spoke.azure" (a spoke forwards only under its own source)',
      },
    });
  });

  it('refuses an event whose source names no spoke even when its detail names one', () => {
    // Act
    const doc = hubIngestDoc(spokeEvent('closeloop.spoke.aws', 'azure', defender));
    // Assess
    expect('refused' in doc && doc.refused.path).toBe('detail.spoke');
  });

  it('binds a forwarded document to its spoke’s cloud, so a GuardDuty finding through the Azure spoke normalizes to nothing', () => {
    // Prepare
    const doc = accepted(hubIngestDoc(spokeEvent(spokeSource('azure'), 'azure', guardDuty)));
    // Act
    const out = normalize(doc.value, doc.input, { channel: doc.channel });
    // Assess
    expect(doc.channel).toEqual({ provider: 'azure', name: 'closeloop.spoke.azure' });
    expect(out.findings).toEqual([]);
    expect(out.rejected).toEqual([
      {
        input: 'azure:http:1',
        source: 'guardduty',
        path: 'detail',
        reason:
          'refused: a guardduty finding (aws) came through closeloop.spoke.azure, which accepts only azure findings',
      },
    ]);
  });

  it('keeps its own cloud’s document, and binds the AWS services’ events to AWS', () => {
    // Prepare
    const gcp = accepted(hubIngestDoc(spokeEvent(spokeSource('gcp'), 'gcp', scc)));
    const aws = accepted(hubIngestDoc(guardDuty as Parameters<typeof hubIngestDoc>[0]));
    // Act
    const fromGcp = normalize(gcp.value, gcp.input, { channel: gcp.channel });
    const fromAws = normalize(aws.value, aws.input, { channel: aws.channel });
    // Assess
    expect(fromGcp.findings.map((f) => f.resource.provider)).toEqual(['gcp']);
    expect(fromAws.findings.map((f) => f.resource.provider)).toEqual(['aws']);
    expect(aws.channel.provider).toBe('aws');
  });
});
