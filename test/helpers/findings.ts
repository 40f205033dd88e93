/**
 * Test findings built directly in the normalized model (the normalizers have their own fixtures).
 * Defaults describe an active GuardDuty S3 finding on a bucket in account 111122223333; pass overrides
 * (resource fields merge) and the result is validated against FindingSchema, so a test cannot build a
 * finding the pipeline would never see.
 */
import { type Finding, FindingSchema, type Resource } from '../../shared/core/model/finding.js';
import { sha256Hex } from '../../shared/core/util/hash.js';

export type FindingOverrides = Partial<Omit<Finding, 'resource'>> & { resource?: Partial<Resource> };

const T0 = '2026-11-18T09:07:02.000Z';

export function makeFinding(o: FindingOverrides = {}): Finding {
  const { resource, ...rest } = o;
  const r: Resource = {
    provider: 'aws',
    id: 'arn:aws:s3:::acme-marketing-exports',
    type: 'S3Bucket',
    name: 'acme-marketing-exports',
    account: '111122223333',
    region: 'us-east-1',
    tags: {},
    altIds: [],
    details: {},
    ...resource,
  };
  const sourceId =
    rest.sourceId ?? 'arn:aws:guardduty:us-east-1:111122223333:detector/00000000000000000000000000000000/finding/0001';
  const base: Finding = {
    key: sha256Hex(`${r.provider}:${sourceId}`),
    source: 'guardduty',
    product: 'GuardDuty',
    sourceId,
    type: 'Policy:S3/BucketAnonymousAccessGranted',
    title: 'Amazon S3 bucket allows anonymous access',
    description: 'The bucket grants access to everyone.',
    severity: 'high',
    sourceSeverity: 8,
    status: 'active',
    muted: false,
    sample: false,
    kind: 'detection',
    firstSeen: T0,
    lastSeen: T0,
    updatedAt: T0,
    occurrences: 1,
    resource: r,
    compliance: { controls: [], standards: [] },
    ocsf: { class_uid: 2004, category_uid: 2, activity_id: 1, type_uid: 200401, severity_id: 4, status_id: 1 },
    raw: {},
    ...rest,
  };
  if (rest.sourceId !== undefined && rest.key === undefined) base.key = sha256Hex(`${r.provider}:${rest.sourceId}`);
  return FindingSchema.parse(base);
}

/** Security Hub control finding (consolidated control id as type). */
export const makeControlFinding = (control: string, o: FindingOverrides = {}): Finding =>
  makeFinding({
    source: 'securityhub',
    product: 'Security Hub',
    sourceId: `arn:aws:securityhub:us-east-1:111122223333:security-control/${control}/finding/00000000-0000-0000-0000-000000000001`,
    type: control,
    kind: 'compliance',
    compliance: { controls: [control], standards: ['standards/aws-foundational-security-best-practices/v/1.0.0'] },
    ...o,
    resource: { type: 'AwsS3Bucket', ...o.resource },
  });

/** Later copy of a finding: same key, later timestamps. */
export const laterCopy = (f: Finding, minutes: number, o: FindingOverrides = {}): Finding => {
  const t = new Date(Date.parse(f.updatedAt) + minutes * 60_000).toISOString();
  return makeFinding({ ...f, lastSeen: t, updatedAt: t, ...o, resource: { ...f.resource, ...o.resource } });
};
