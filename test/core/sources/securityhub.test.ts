import { describe, expect, it } from 'vitest';
import { caseKeyOf } from '../../../shared/core/pipeline/decide.js';
import { normalize } from '../../../shared/core/pipeline/normalize.js';
import { selectPlaybook } from '../../../shared/core/policy/playbooks.js';
import { severityFromNormalized } from '../../../shared/core/sources/common.js';
import { recoverGuardDutyType } from '../../../shared/core/sources/securityhub.js';
import { sha256Hex } from '../../../shared/core/util/hash.js';
import { loadFixture, pick, variant } from '../../helpers/fixtures.js';
import { one, oneFixture } from './util.js';

const S38 = 'securityhub/s3.8-failed.eventbridge.json';

describe('Security Hub (ASFF) normalizer', () => {
  it('maps the S3.8 FAILED control finding to an active compliance finding typed by its control', () => {
    // Act
    const f = oneFixture(S38);
    // Assess
    const id =
      'arn:aws:securityhub:eu-west-1:111122223333:security-control/S3.8/finding/b9126bb2-9bf1-5de1-b04d-45907a939a1d';
    expect(f).toMatchObject({
      key: sha256Hex(`aws:${id}`),
      source: 'securityhub',
      product: 'Security Hub',
      sourceId: id,
      type: 'S3.8',
      severity: 'high',
      sourceSeverity: 'HIGH',
      status: 'active',
      kind: 'compliance',
      occurrences: 1,
      firstSeen: '2026-11-17T06:40:12.118Z',
      lastSeen: '2026-11-18T06:41:51.090Z',
      resource: {
        provider: 'aws',
        id: 'arn:aws:s3:::acme-data-lake-raw',
        type: 'AwsS3Bucket',
        name: 'acme-data-lake-raw',
        account: '111122223333',
        region: 'eu-west-1',
        tags: { owner: 'data-platform@acme.example', env: 'prod', app: 'lakehouse' },
        details: { bucket: 'acme-data-lake-raw' },
      },
      compliance: {
        controls: ['S3.8'],
        standards: ['standards/aws-foundational-security-best-practices/v/1.0.0'],
        status: 'FAILED',
      },
      ocsf: { class_uid: 2003, type_uid: 200301, severity_id: 4, status_id: 1 },
    });
    expect(f.recommendation).toContain('https://docs.aws.amazon.com/console/securityhub/S3.8/remediation');
  });

  it('types a legacy CIS 1.2.0 rule finding by its rule, so two rules on one resource are two cases', () => {
    // Prepare: per-standard CIS findings name the rule in GeneratorId (`…/rule/1.4`) and ProductFields.RuleId.
    const cis = (rule: string, withRuleId: boolean) =>
      variant(loadFixture(S38), {
        'detail.findings.0.Id': `arn:aws:securityhub:us-east-1:111122223333:subscription/cis-aws-foundations-benchmark/v/1.2.0/${rule}/finding/0000`,
        'detail.findings.0.GeneratorId': `arn:aws:securityhub:::ruleset/cis-aws-foundations-benchmark/v/1.2.0/rule/${rule}`,
        'detail.findings.0.Compliance.SecurityControlId': undefined,
        'detail.findings.0.ProductFields.ControlId': undefined,
        'detail.findings.0.ProductFields.RuleId': withRuleId ? rule : undefined,
      });
    // Act
    const a = one(cis('1.4', true));
    const b = one(cis('2.1', false));
    // Assess
    expect([a.type, b.type]).toEqual(['1.4', '2.1']);
    expect(caseKeyOf(a)).not.toBe(caseKeyOf(b));
    expect(a.kind).toBe('compliance');
  });

  it('resolves a control finding whose compliance status is PASSED', () => {
    // Act
    const f = oneFixture('securityhub/s3.2-passed.eventbridge.json');
    // Assess
    expect(f).toMatchObject({
      type: 'S3.2',
      status: 'resolved',
      statusReason: 'Compliance.Status PASSED',
      severity: 'informational',
    });
  });

  it('resolves on Workflow.Status RESOLVED and on RecordState ARCHIVED, and mutes on SUPPRESSED', () => {
    // Act
    const resolved = oneFixture('securityhub/workflow-resolved.eventbridge.json');
    const archived = oneFixture('securityhub/archived.eventbridge.json');
    const suppressed = one(variant(loadFixture(S38), { 'detail.findings[0].Workflow.Status': 'SUPPRESSED' }));
    // Assess
    expect(resolved).toMatchObject({ status: 'resolved', statusReason: 'Workflow.Status RESOLVED', muted: false });
    expect(archived).toMatchObject({ status: 'resolved', statusReason: 'RecordState ARCHIVED' });
    expect(suppressed).toMatchObject({ status: 'resolved', muted: true });
    expect(suppressed.ocsf.status_id).toBe(3);
  });

  it('gives a finding whose owner was NOTIFIED OCSF status In Progress (2), and keeps it active', () => {
    // Act
    const notified = one(variant(loadFixture(S38), { 'detail.findings[0].Workflow.Status': 'NOTIFIED' }));
    const fresh = oneFixture(S38);
    // Assess
    expect(notified).toMatchObject({ status: 'active', muted: false });
    expect(notified.ocsf).toMatchObject({ status_id: 2, activity_id: 1 });
    expect(fresh.ocsf.status_id).toBe(1);
  });

  it('keeps the key of a control finding when it moves from FAILED to PASSED', () => {
    // Prepare
    const passed = variant(loadFixture(S38), {
      'detail.findings[0].Compliance.Status': 'PASSED',
      'detail.findings[0].Workflow.Status': 'RESOLVED',
    });
    // Act
    const a = oneFixture(S38);
    const b = one(passed);
    // Assess
    expect(b.key).toBe(a.key);
    expect(b.status).toBe('resolved');
  });

  it('maps IAM.3 on an IAM user with the user name for the key action', () => {
    // Act
    const f = oneFixture('securityhub/iam.3.eventbridge.json');
    // Assess
    expect(f).toMatchObject({
      type: 'IAM.3',
      severity: 'medium',
      resource: {
        id: 'arn:aws:iam::111122223333:user/reporting-svc',
        type: 'AwsIamUser',
        details: { userName: 'reporting-svc' },
      },
    });
  });

  it('gives a GuardDuty copy the key, type, resource and count of the native GuardDuty finding', () => {
    // Act
    const copy = oneFixture('securityhub/guardduty-copy.eventbridge.json');
    const native = oneFixture('guardduty/instance-crypto.eventbridge.json');
    // Assess
    expect(copy.source).toBe('securityhub');
    expect(copy.product).toBe('GuardDuty');
    expect(copy.kind).toBe('detection');
    expect(copy.key).toBe(native.key);
    expect(copy.type).toBe(native.type);
    expect(copy.resource.id).toBe(native.resource.id);
    expect(copy.occurrences).toBe(3);
    expect(copy.resource.details).toMatchObject({ instanceId: 'i-0a1b2c3d4e5f67890', vpcId: 'vpc-0a1b2c3d4e5f60718' });
  });

  it('knows a GuardDuty copy by its ProductArn alone (arn:…::product/aws/guardduty) when ProductName is absent', () => {
    // Prepare
    const event = variant(loadFixture('securityhub/guardduty-copy.eventbridge.json'), {
      'detail.findings.0.ProductName': undefined,
    });
    // Act
    const copy = one(event);
    // Assess
    expect(copy.key).toBe(oneFixture('guardduty/instance-crypto.eventbridge.json').key);
    expect(copy.kind).toBe('detection');
  });

  it('maps a GuardDuty copy on an access key to the IAM principal, as the native finding does', () => {
    // Prepare
    const native = loadFixture('guardduty/accesskey-iamuser-malicious-ip.eventbridge.json');
    const copy = variant(loadFixture('securityhub/guardduty-copy.eventbridge.json'), {
      'detail.findings[0].Id': pick(native, 'detail.arn'),
      'detail.findings[0].Types': ['TTPs/Discovery/UnauthorizedAccess:IAMUser-MaliciousIPCaller'],
      'detail.findings[0].Resources': [
        {
          Type: 'AwsIamAccessKey',
          Id: 'AWS::IAM::AccessKey:AKIAIOSFODNN7EXAMPLE',
          Partition: 'aws',
          Region: 'us-east-1',
          Details: {
            AwsIamAccessKey: {
              PrincipalName: 'ci-deployer',
              PrincipalType: 'IAMUser',
              AccessKeyId: 'AKIAIOSFODNN7EXAMPLE',
            },
          },
        },
      ],
    });
    // Act
    const a = one(native);
    const b = one(copy);
    // Assess
    expect(b.key).toBe(a.key);
    expect(b.type).toBe(a.type);
    expect(b.resource.id).toBe(a.resource.id);
    expect(b.resource.details).toMatchObject({ userName: 'ci-deployer', accessKeyId: 'AKIAIOSFODNN7EXAMPLE' });
  });

  it('keeps a GovCloud GuardDuty copy on an access key in aws-us-gov, as the native finding, with or without Partition', () => {
    // Prepare: the documented shapes moved to us-gov-west-1
    const gov = (text: string) =>
      text
        .replaceAll('arn:aws:', 'arn:aws-us-gov:')
        .replaceAll('us-east-1', 'us-gov-west-1')
        .replaceAll('"partition":"aws"', '"partition":"aws-us-gov"');
    const native = JSON.parse(
      gov(JSON.stringify(loadFixture('guardduty/accesskey-iamuser-malicious-ip.eventbridge.json'))),
    );
    const base = JSON.parse(gov(JSON.stringify(loadFixture('securityhub/guardduty-copy.eventbridge.json'))));
    const copy = (partition: string | undefined) =>
      variant(base, {
        'detail.findings[0].Id': pick(native, 'detail.arn'),
        'detail.findings[0].Types': ['TTPs/Discovery/UnauthorizedAccess:IAMUser-MaliciousIPCaller'],
        'detail.findings[0].Resources': [
          {
            Type: 'AwsIamAccessKey',
            Id: 'AWS::IAM::AccessKey:AKIAIOSFODNN7EXAMPLE',
            ...(partition ? { Partition: partition } : {}),
            Region: 'us-gov-west-1',
            Details: { AwsIamAccessKey: { PrincipalName: 'ci-deployer', PrincipalType: 'IAMUser' } },
          },
        ],
      });
    // Act
    const a = one(native);
    const stated = one(copy('aws-us-gov'));
    const fromProduct = one(copy(undefined));
    // Assess: one case for the three; the copy without Partition named arn:aws:iam::… before
    expect(a.resource.id).toBe('arn:aws-us-gov:iam::111122223333:user/ci-deployer');
    expect(stated.resource.id).toBe(a.resource.id);
    expect(fromProduct.resource.id).toBe(a.resource.id);
    expect(fromProduct.key).toBe(a.key);
  });

  it('recovers the GuardDuty type from the last Types segment', () => {
    // Act + Assess
    expect(recoverGuardDutyType(['TTPs/Command and Control/CryptoCurrency:EC2-BitcoinTool.B!DNS'])).toBe(
      'CryptoCurrency:EC2/BitcoinTool.B!DNS',
    );
    expect(recoverGuardDutyType(['Effects/Data Exposure/Policy:S3-BucketAnonymousAccessGranted'])).toBe(
      'Policy:S3/BucketAnonymousAccessGranted',
    );
    expect(recoverGuardDutyType(['Software and Configuration Checks'])).toBeUndefined();
  });

  it('normalizes a bare ASFF finding and every item of a Findings list', () => {
    // Act
    const bare = oneFixture('securityhub/bare.json');
    const list = normalize(loadFixture('securityhub/findings-list.json'), 'list.json');
    // Assess
    expect(bare).toMatchObject({ type: 'S3.8', resource: { account: '444455556666', tags: { env: 'dev' } } });
    expect(list.rejected).toEqual([]);
    expect(list.findings.map((f) => [f.type, f.resource.type, f.resource.id])).toEqual([
      ['S3.8', 'AwsS3Bucket', 'arn:aws:s3:::acme-web-dev-assets'],
      ['S3.1', 'AwsAccount', 'AWS::::Account:444455556666'],
    ]);
  });

  it('reads the control from ProductFields.ControlId or the GeneratorId of a legacy per-standard finding', () => {
    // Prepare
    const legacy = variant(loadFixture('securityhub/bare.json'), {
      'Compliance.SecurityControlId': undefined,
      GeneratorId: 'aws-foundational-security-best-practices/v/1.0.0/S3.8',
    });
    const fromFields = variant(legacy, { 'ProductFields.ControlId': 'S3.8', GeneratorId: 'x' });
    // Act + Assess
    expect(one(legacy).type).toBe('S3.8');
    expect(one(fromFields).type).toBe('S3.8');
  });

  it('maps the deprecated Normalized severity when no Label is present, at every band boundary', () => {
    // Prepare
    const cases: Array<[number, string]> = [
      [0, 'informational'],
      [1, 'low'],
      [39, 'low'],
      [40, 'medium'],
      [69, 'medium'],
      [70, 'high'],
      [89, 'high'],
      [90, 'critical'],
      [100, 'critical'],
    ];
    // Act + Assess
    for (const [n, expected] of cases) {
      expect(severityFromNormalized(n)).toBe(expected);
      const f = one(variant(loadFixture('securityhub/bare.json'), { Severity: { Normalized: n } }));
      expect(f.severity).toBe(expected);
    }
  });

  it('maps every ASFF label one to one', () => {
    // Act + Assess
    for (const label of ['INFORMATIONAL', 'LOW', 'MEDIUM', 'HIGH', 'CRITICAL']) {
      const f = one(variant(loadFixture('securityhub/bare.json'), { 'Severity.Label': label }));
      expect(f.severity).toBe(label.toLowerCase());
    }
  });

  it('marks the finding as a sample when ASFF Sample is true', () => {
    // Act
    const f = one(variant(loadFixture('securityhub/bare.json'), { Sample: true }));
    // Assess
    expect(f.sample).toBe(true);
  });
});

describe('a GuardDuty copy of an access-key finding', () => {
  /** The Security Hub copy of the native AssumedRole exfiltration fixture, as GuardDuty sends it (§6.5). */
  const copyOf = (details: Record<string, string>) => {
    const native = loadFixture('guardduty/assumedrole-exfiltration.eventbridge.json') as {
      detail: { arn: string; accountId: string; region: string; updatedAt: string; createdAt: string; title: string };
    };
    const d = native.detail;
    return {
      version: '0',
      id: 'copy-1',
      'detail-type': 'Security Hub Findings - Imported',
      source: 'aws.securityhub',
      account: d.accountId,
      time: d.updatedAt,
      region: d.region,
      resources: [],
      detail: {
        findings: [
          {
            SchemaVersion: '2018-10-08',
            Id: d.arn,
            ProductArn: `arn:aws:securityhub:${d.region}::product/aws/guardduty`,
            ProductName: 'GuardDuty',
            GeneratorId: `arn:aws:guardduty:${d.region}:${d.accountId}:detector/e3e3a90d0f125cce54f587d33c863830`,
            AwsAccountId: d.accountId,
            Types: ['TTPs/Initial Access/UnauthorizedAccess:IAMUser-InstanceCredentialExfiltration.OutsideAWS'],
            CreatedAt: d.createdAt,
            UpdatedAt: d.updatedAt,
            Severity: { Label: 'HIGH', Normalized: 80 },
            Title: d.title,
            Description: d.title,
            ProductFields: { 'aws/guardduty/service/archived': 'false', 'aws/guardduty/service/count': '1' },
            Resources: [
              {
                Type: 'AwsIamAccessKey',
                Id: 'AWS::IAM::AccessKey:ASIAIOSFODNN7EXAMPLE',
                Partition: 'aws',
                Region: d.region,
                Details: { AwsIamAccessKey: details },
              },
            ],
          },
        ],
      },
    };
  };

  it('names the principal as the native finding does, so both choose the same action for their one case', () => {
    // Prepare
    const native = oneFixture('guardduty/assumedrole-exfiltration.eventbridge.json');
    // Act
    const copy = one(
      copyOf({
        PrincipalName: 'web-app',
        PrincipalType: 'AssumedRole',
        AccessKeyId: 'ASIAIOSFODNN7EXAMPLE',
        PrincipalId: 'AROAEXAMPLEROLEID0001:i-0a1b2c3d4e5f67890',
      }),
    );
    // Assess
    expect(caseKeyOf(copy)).toBe(caseKeyOf(native));
    expect(copy.actor).toEqual(native.actor);
    expect(selectPlaybook(copy).action).toBe('iam.revoke-role-sessions');
    expect(selectPlaybook(native).action).toBe('iam.revoke-role-sessions');
  });

  it('leaves the user type unknown (no automatic response) when the copy does not say it', () => {
    // Act
    const copy = one(copyOf({ PrincipalName: 'web-app', AccessKeyId: 'ASIAIOSFODNN7EXAMPLE' }));
    // Assess
    expect(copy.actor).toEqual({ userName: 'web-app', accessKeyId: 'ASIAIOSFODNN7EXAMPLE' });
    expect(selectPlaybook(copy).action).toBeNull();
  });
});
