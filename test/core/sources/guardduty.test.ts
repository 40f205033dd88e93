import { describe, expect, it } from 'vitest';
import { normalize } from '../../../shared/core/pipeline/normalize.js';
import { severityFromNumber } from '../../../shared/core/sources/common.js';
import { sha256Hex } from '../../../shared/core/util/hash.js';
import { loadFixture, pick, variant } from '../../helpers/fixtures.js';
import { one, oneFixture } from './util.js';

const S3 = 'guardduty/s3-bucket-anonymous-access.eventbridge.json';
const INSTANCE = 'guardduty/instance-crypto.eventbridge.json';

describe('GuardDuty normalizer', () => {
  it('maps the S3 anonymous-access EventBridge event to the documented Finding', () => {
    // Act
    const f = oneFixture(S3);
    // Assess
    const arn =
      'arn:aws:guardduty:us-east-1:111122223333:detector/e3e3a90d0f125cce54f587d33c863830/finding/60c49b80f9a4f01d8c9f8f4a4789ee4b';
    expect(f).toMatchObject({
      key: sha256Hex(`aws:${arn}`),
      source: 'guardduty',
      product: 'GuardDuty',
      sourceId: arn,
      type: 'Policy:S3/BucketAnonymousAccessGranted',
      severity: 'high',
      sourceSeverity: 8,
      status: 'active',
      muted: false,
      sample: false,
      kind: 'detection',
      occurrences: 1,
      firstSeen: '2026-11-18T09:07:02.000Z',
      lastSeen: '2026-11-18T09:07:02.000Z',
      updatedAt: '2026-11-18T09:12:44.601Z',
      resource: {
        provider: 'aws',
        id: 'arn:aws:s3:::acme-marketing-exports',
        type: 'S3Bucket',
        name: 'acme-marketing-exports',
        account: '111122223333',
        region: 'us-east-1',
        tags: { owner: 'marketing-data@acme.example', env: 'prod', app: 'campaign-exports' },
        details: { bucket: 'acme-marketing-exports', effectivePermission: 'PUBLIC' },
      },
      actor: { accessKeyId: 'AKIAIOSFODNN7SAMPLE1', userName: 'deploy-bot', userType: 'IAMUser' },
      ocsf: { class_uid: 2004, category_uid: 2, activity_id: 1, type_uid: 200401, severity_id: 4, status_id: 1 },
    });
  });

  it('keeps the parsed finding by reference as raw, not a copy', () => {
    // Prepare
    const event = loadFixture(S3);
    // Act
    const f = one(event);
    // Assess
    expect(f.raw).toBe(pick(event, 'detail'));
  });

  it('gives an EC2 instance ARN, tags and the network facts quarantine needs when the resource is an Instance', () => {
    // Act
    const f = oneFixture(INSTANCE);
    // Assess
    expect(f.type).toBe('CryptoCurrency:EC2/BitcoinTool.B!DNS');
    expect(f.resource).toMatchObject({
      id: 'arn:aws:ec2:us-east-1:111122223333:instance/i-0a1b2c3d4e5f67890',
      type: 'Instance',
      name: 'i-0a1b2c3d4e5f67890',
      tags: { Name: 'web-prod-3', owner: 'data-platform@acme.example', env: 'prod', app: 'storefront' },
      details: {
        instanceId: 'i-0a1b2c3d4e5f67890',
        vpcId: 'vpc-0a1b2c3d4e5f60718',
        availabilityZone: 'us-east-1a',
        networkInterfaces: [
          {
            id: 'eni-0f1e2d3c4b5a69788',
            vpcId: 'vpc-0a1b2c3d4e5f60718',
            subnetId: 'subnet-0123456789abcdef0',
            securityGroups: [{ id: 'sg-0aa11bb22cc33dd44', name: 'web-prod' }],
          },
        ],
      },
    });
    expect(f.occurrences).toBe(3);
    expect(f.firstSeen).toBe('2026-11-18T07:55:10.000Z');
    expect(f.lastSeen).toBe('2026-11-18T08:41:12.000Z');
    expect(f.ocsf.activity_id).toBe(2);
  });

  it('names the IAM user as the resource and the key as actor when an IAMUser access key is involved', () => {
    // Act
    const f = oneFixture('guardduty/accesskey-iamuser-malicious-ip.eventbridge.json');
    // Assess
    expect(f.severity).toBe('medium');
    expect(f.resource).toMatchObject({
      id: 'arn:aws:iam::111122223333:user/ci-deployer',
      type: 'AccessKey',
      name: 'ci-deployer',
      altIds: ['AKIAIOSFODNN7EXAMPLE'],
      details: { userName: 'ci-deployer', accessKeyId: 'AKIAIOSFODNN7EXAMPLE', userType: 'IAMUser' },
    });
    expect(f.actor).toEqual({
      accessKeyId: 'AKIAIOSFODNN7EXAMPLE',
      principalId: 'AIDACKCEVSQ6C2EXAMPLE',
      userName: 'ci-deployer',
      userType: 'IAMUser',
    });
  });

  it('names the role as the resource when temporary credentials of an AssumedRole were exfiltrated', () => {
    // Act
    const f = oneFixture('guardduty/assumedrole-exfiltration.eventbridge.json');
    // Assess
    expect(f.type).toBe('UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS');
    expect(f.resource.id).toBe('arn:aws:iam::111122223333:role/web-app');
    expect(f.resource.details).toMatchObject({ userType: 'AssumedRole', accessKeyId: 'ASIAIOSFODNN7EXAMPLE' });
  });

  it('reads null in an optional field as absent, as GuardDuty sends it (sample findings, partial details)', () => {
    // Prepare
    const event = variant(loadFixture(INSTANCE), {
      'detail.resource.instanceDetails.instanceType': null,
      'detail.resource.instanceDetails.imageId': null,
      'detail.resource.instanceDetails.availabilityZone': null,
      'detail.resource.instanceDetails.iamInstanceProfile': null,
      'detail.resource.instanceDetails.tags': null,
      'detail.resource.instanceDetails.networkInterfaces.0.publicIp': null,
      'detail.service.additionalInfo': null,
    });
    // Act
    const f = one(event);
    // Assess
    expect(f.resource).toMatchObject({
      id: 'arn:aws:ec2:us-east-1:111122223333:instance/i-0a1b2c3d4e5f67890',
      type: 'Instance',
      tags: {},
    });
    // Absent values read as the documented null in details, as when the field is missing.
    expect(f.resource.details).toMatchObject({ instanceType: null, imageId: null, iamInstanceProfileArn: null });
  });

  it('names the root ARN when the access key belongs to Root', () => {
    // Prepare
    const event = variant(loadFixture('guardduty/accesskey-iamuser-malicious-ip.eventbridge.json'), {
      'detail.resource.accessKeyDetails.userType': 'Root',
      'detail.resource.accessKeyDetails.userName': undefined,
    });
    // Act
    const f = one(event);
    // Assess
    expect(f.resource.id).toBe('arn:aws:iam::111122223333:root');
  });

  it('names the root key root when the event sends an empty user name', () => {
    // Prepare
    const event = variant(loadFixture('guardduty/accesskey-iamuser-malicious-ip.eventbridge.json'), {
      'detail.resource.accessKeyDetails.userType': 'Root',
      'detail.resource.accessKeyDetails.userName': '',
    });
    // Act
    const f = one(event);
    // Assess
    expect(f.resource).toMatchObject({ id: 'arn:aws:iam::111122223333:root', name: 'root' });
  });

  it('names the cluster, not its node, when a cluster finding also carries the node instanceDetails', () => {
    // Prepare: runtime monitoring findings on EKS may describe the worker node beside the cluster.
    const node = loadFixture(INSTANCE) as { detail: { resource: { instanceDetails: unknown } } };
    const event = variant(loadFixture('guardduty/eks.eventbridge.json'), {
      'detail.resource.instanceDetails': node.detail.resource.instanceDetails,
    });
    // Act
    const f = one(event);
    // Assess
    expect(f.resource).toMatchObject({
      id: 'arn:aws:eks:us-east-1:111122223333:cluster/payments-prod',
      type: 'EKSCluster',
    });
  });

  it('uses the ARN from the matching details object for Lambda, EKS and RDS resources', () => {
    // Act
    const lambda = oneFixture('guardduty/lambda.eventbridge.json');
    const eks = oneFixture('guardduty/eks.eventbridge.json');
    const rds = oneFixture('guardduty/rds.eventbridge.json');
    // Assess
    expect(lambda.resource).toMatchObject({
      id: 'arn:aws:lambda:eu-west-1:111122223333:function:thumbnailer',
      type: 'Lambda',
      name: 'thumbnailer',
      region: 'eu-west-1',
      tags: { owner: 'data-platform@acme.example', env: 'prod' },
      details: { functionName: 'thumbnailer', role: 'arn:aws:iam::111122223333:role/thumbnailer-exec' },
    });
    expect(eks.resource).toMatchObject({
      id: 'arn:aws:eks:us-east-1:111122223333:cluster/payments-prod',
      type: 'EKSCluster',
      name: 'payments-prod',
      tags: { env: 'prod', team: 'data-platform' },
      details: { clusterName: 'payments-prod' },
    });
    expect(rds.resource).toMatchObject({
      id: 'arn:aws:rds:us-east-1:111122223333:db:orders-db',
      type: 'RDSDBInstance',
      name: 'orders-db',
      details: { dbInstanceIdentifier: 'orders-db', engine: 'aurora-postgresql' },
    });
  });

  it('marks a sample finding as sample when additionalInfo carries sample: true', () => {
    // Prepare
    const base = loadFixture('guardduty/sample.eventbridge.json');
    const onlyInValue = variant(base, {
      'detail.service.additionalInfo': { value: '{"sample":true}', type: 'default' },
      'detail.title': 'Block Public Access was disabled',
    });
    // Act
    const f = one(base);
    const g = one(onlyInValue);
    const real = oneFixture(S3);
    // Assess
    expect(f.sample).toBe(true);
    expect(g.sample).toBe(true);
    expect(real.sample).toBe(false);
  });

  it('keeps the key and raises occurrences when the same finding repeats with a higher service.count', () => {
    // Prepare
    const first = loadFixture(S3);
    const repeat = variant(first, {
      'detail.service.count': 4,
      'detail.updatedAt': '2026-11-18T15:12:44.601Z',
      'detail.service.eventLastSeen': '2026-11-18T15:02:00.000Z',
    });
    // Act
    const a = one(first);
    const b = one(repeat);
    // Assess
    expect(b.key).toBe(a.key);
    expect(b.occurrences).toBe(4);
    expect(b.lastSeen).toBe('2026-11-18T15:02:00.000Z');
    expect(b.updatedAt > a.updatedAt).toBe(true);
  });

  it('resolves the finding when GuardDuty archived it', () => {
    // Prepare
    const event = variant(loadFixture(S3), { 'detail.service.archived': true });
    // Act
    const f = one(event);
    // Assess
    expect(f.status).toBe('resolved');
    expect(f.statusReason).toMatch(/archived/);
    expect(f.ocsf).toMatchObject({ activity_id: 3, status_id: 4 });
  });

  it('builds the finding ARN from region, account, detector and id when arn is absent', () => {
    // Prepare
    const event = variant(loadFixture(S3), { 'detail.arn': undefined });
    // Act
    const f = one(event);
    // Assess
    expect(f.key).toBe(oneFixture(S3).key);
  });

  it('normalizes PascalCase SDK/CLI output exactly like the camelCase event', () => {
    // Act
    const pascal = normalize(loadFixture('guardduty/get-findings.pascal.json'), 'cli.json');
    const native = oneFixture(INSTANCE);
    // Assess
    expect(pascal.rejected).toEqual([]);
    expect(pascal.findings).toHaveLength(2);
    const [crypto, iam] = pascal.findings;
    expect(crypto?.key).toBe(native.key);
    expect(crypto?.resource).toEqual(native.resource);
    expect(crypto?.occurrences).toBe(3);
    expect(iam?.resource.id).toBe('arn:aws:iam::111122223333:user/ci-deployer');
  });

  it('normalizes every item of a REST GetFindings list', () => {
    // Act
    const out = normalize(loadFixture('guardduty/get-findings.rest.json'), 'rest.json');
    // Assess
    expect(out.rejected).toEqual([]);
    expect(out.findings.map((f) => [f.type, f.severity, f.occurrences])).toEqual([
      ['UnauthorizedAccess:IAMUser/MaliciousIPCaller', 'medium', 1],
      ['Recon:EC2/PortProbeUnprotectedPort', 'low', 12],
    ]);
  });

  it('maps every severity band boundary per the GuardDuty table', () => {
    // Prepare
    const cases: Array<[number, string]> = [
      [0, 'informational'],
      [0.9, 'informational'],
      [1, 'low'],
      [3.9, 'low'],
      [4, 'medium'],
      [6.9, 'medium'],
      [7, 'high'],
      [8.9, 'high'],
      [9, 'critical'],
      [10, 'critical'],
    ];
    // Act + Assess
    for (const [n, expected] of cases) {
      expect(severityFromNumber(n)).toBe(expected);
      expect(one(variant(loadFixture(S3), { 'detail.severity': n })).severity).toBe(expected);
    }
  });

  it('takes the account from the finding, not the EventBridge envelope, when an administrator account receives it', () => {
    // Prepare
    const event = variant(loadFixture(S3), { account: '999988887777' });
    // Act
    const f = one(event);
    // Assess
    expect(f.resource.account).toBe('111122223333');
  });
});

describe('GuardDuty normalizer outside the aws partition', () => {
  const KEY = 'guardduty/accesskey-iamuser-malicious-ip.eventbridge.json';
  const govArn = (native: unknown) => String(pick(native, 'detail.arn')).replace('arn:aws:', 'arn:aws-us-gov:');
  const inGovCloud = (partition: string | undefined) => {
    const native = loadFixture(KEY);
    return variant(native, {
      region: 'us-gov-west-1',
      'detail.region': 'us-gov-west-1',
      'detail.partition': partition,
      'detail.arn': govArn(native),
    });
  };

  it("names a GovCloud key finding's principal in aws-us-gov, also when `partition` is left out (the ARN says it)", () => {
    // Act
    const stated = one(inGovCloud('aws-us-gov'));
    const fromArn = one(inGovCloud(undefined));
    // Assess: arn:aws:iam::… before, for the finding without `partition`: an ARN no GovCloud call answers for
    for (const f of [stated, fromArn]) {
      expect(f.resource.id).toBe('arn:aws-us-gov:iam::111122223333:user/ci-deployer');
      expect(f.resource.details).toMatchObject({ partition: 'aws-us-gov' });
    }
  });

  it("builds a GovCloud instance's ARN in aws-us-gov from the finding's ARN", () => {
    // Prepare
    const native = loadFixture(INSTANCE);
    const event = variant(native, {
      'detail.region': 'us-gov-west-1',
      'detail.partition': undefined,
      'detail.arn': govArn(native).replace(':us-east-1:', ':us-gov-west-1:'),
    });
    // Act
    const f = one(event);
    // Assess
    expect(f.resource.id).toMatch(/^arn:aws-us-gov:ec2:us-gov-west-1:111122223333:instance\/i-/);
  });
});
