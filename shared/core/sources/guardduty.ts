/**
 * Amazon GuardDuty findings → the closeloop Finding (finding-formats §2–§6).
 *
 * Accepts one GuardDuty finding in its camelCase form (EventBridge `detail`, REST `GetFindings`) or the
 * PascalCase form of the SDK/CLI (`Findings[]` of `aws guardduty get-findings`); PascalCase keys are
 * converted once, here at the edge, and the rest of the code only knows camelCase.
 *
 * `resource.details` keys, by resource:
 * - S3 bucket: `bucket` (name), `bucketArn`, `relatedBuckets` (other buckets in `s3BucketDetails`),
 *   `effectivePermission` (`PUBLIC`/`NOT_PUBLIC`)
 * - IAM principal (resourceType `AccessKey`, no bucket): `userName`, `accessKeyId`, `userType`, `principalId`
 * - EC2 instance: `instanceId`, `vpcId`, `subnetId`, `availabilityZone`, `instanceType`, `imageId`,
 *   `iamInstanceProfileArn`, `networkInterfaces[{id, vpcId, subnetId, privateIpAddress, publicIp,
 *   securityGroups[{id, name}]}]`
 * - Lambda: `functionName`, `functionArn`, `role`
 * - EKS / ECS cluster: `clusterName`; RDS: `dbInstanceIdentifier`, `engine`
 * - always: `detectorId`, `findingId`, `partition`
 *
 * @see https://docs.aws.amazon.com/guardduty/latest/APIReference/API_Finding.html
 * @see https://docs.aws.amazon.com/guardduty/latest/ug/guardduty_finding-format.html
 */
import * as z from 'zod';
import type { Actor, Finding } from '../model/finding.js';
import { arnPartition } from '../util/aws-partition.js';
import { EMPTY_LIST, EMPTY_TAGS } from '../util/intern.js';
import {
  checkId,
  clip,
  findingKey,
  firstTime,
  isRecord,
  lastSegment,
  ocsfOf,
  parseOrReject,
  reject,
  severityFromNumber,
  str,
  tagsFromList,
  toIso,
} from './common.js';

const TagsSchema = z.array(z.looseObject({ key: z.string(), value: z.string().nullish() })).nullish();

const AccessKeyDetailsSchema = z.looseObject({
  accessKeyId: z.string().nullish(),
  principalId: z.string().nullish(),
  userName: z.string().nullish(),
  userType: z.string().nullish(),
});

const NetworkInterfaceSchema = z.looseObject({
  networkInterfaceId: z.string().nullish(),
  vpcId: z.string().nullish(),
  subnetId: z.string().nullish(),
  privateIpAddress: z.string().nullish(),
  publicIp: z.string().nullish(),
  securityGroups: z.array(z.looseObject({ groupId: z.string().nullish(), groupName: z.string().nullish() })).nullish(),
});

const InstanceDetailsSchema = z.looseObject({
  instanceId: z.string().min(1),
  instanceType: z.string().nullish(),
  availabilityZone: z.string().nullish(),
  imageId: z.string().nullish(),
  iamInstanceProfile: z.looseObject({ arn: z.string().nullish() }).nullish(),
  networkInterfaces: z.array(NetworkInterfaceSchema).nullish(),
  tags: TagsSchema,
});

const S3BucketDetailSchema = z.looseObject({
  arn: z.string().nullish(),
  name: z.string().nullish(),
  tags: TagsSchema,
  publicAccess: z.looseObject({ effectivePermission: z.string().nullish() }).nullish(),
});

/**
 * One GuardDuty finding (camelCase). Lenient: unknown fields are kept, only what closeloop reads is typed.
 *
 * @example
 * { "schemaVersion": "2.0", "accountId": "111122223333", "region": "us-east-1", "partition": "aws",
 *   "id": "60c49b80f9a4f01d8c9f8f4a4789ee4b",
 *   "arn": "arn:aws:guardduty:us-east-1:111122223333:detector/e3e3…/finding/60c4…",
 *   "type": "Policy:S3/BucketAnonymousAccessGranted", "severity": 8,
 *   "createdAt": "2026-11-18T09:12:44.601Z", "updatedAt": "2026-11-18T09:12:44.601Z",
 *   "resource": { "resourceType": "S3Bucket", "s3BucketDetails": [{ "arn": "arn:aws:s3:::acme-marketing-exports", … }] },
 *   "service": { "detectorId": "e3e3…", "count": 1, "archived": false, … } }
 * @see https://docs.aws.amazon.com/guardduty/latest/APIReference/API_Finding.html
 */
export const GuardDutyFindingSchema = z.looseObject({
  schemaVersion: z.string().nullish(),
  accountId: z.string().regex(/^\d{12}$/, 'expected a 12-digit AWS account id'),
  arn: z.string().nullish(),
  id: z.string().min(1),
  region: z.string().regex(/^[a-z0-9-]{1,64}$/, 'expected an AWS region such as us-east-1'),
  partition: z
    .string()
    .regex(/^aws(-[a-z]+)*$/, 'expected an AWS partition such as aws')
    .nullish(),
  type: z.string().min(1).max(512),
  severity: z.number(),
  createdAt: z.union([z.string(), z.number()]),
  updatedAt: z.union([z.string(), z.number()]),
  title: z.string().nullish(),
  description: z.string().nullish(),
  resource: z.looseObject({
    resourceType: z.string().min(1),
    accessKeyDetails: AccessKeyDetailsSchema.nullish(),
    instanceDetails: InstanceDetailsSchema.nullish(),
    s3BucketDetails: z.array(S3BucketDetailSchema).nullish(),
    lambdaDetails: z
      .looseObject({
        functionArn: z.string().nullish(),
        functionName: z.string().nullish(),
        role: z.string().nullish(),
        tags: TagsSchema,
      })
      .nullish(),
  }),
  service: z
    .looseObject({
      detectorId: z.string().nullish(),
      count: z.number().int().nullish(),
      archived: z.boolean().nullish(),
      eventFirstSeen: z.union([z.string(), z.number()]).nullish(),
      eventLastSeen: z.union([z.string(), z.number()]).nullish(),
      additionalInfo: z.looseObject({ sample: z.unknown().nullish(), value: z.unknown().nullish() }).nullish(),
    })
    .nullish(),
});
export type GuardDutyFinding = z.infer<typeof GuardDutyFindingSchema>;

const PASCAL_KEY = /^[A-Z][A-Za-z0-9]*$/;

/**
 * SDK/CLI PascalCase → camelCase, deeply (`AccountId` → `accountId`, `S3BucketDetails[].Tags[].Key` →
 * `s3BucketDetails[].tags[].key`). Keys that are not plain PascalCase words (`AWS::S3::Bucket` in
 * `affectedResources`) are kept. Objects are rebuilt with Object.fromEntries, so hostile keys such as
 * `__proto__` become plain own properties and never reach a prototype.
 */
export function camelizeKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(camelizeKeys);
  if (!isRecord(value)) return value;
  return Object.fromEntries(
    Object.keys(value).map((k) => [PASCAL_KEY.test(k) ? k[0]?.toLowerCase() + k.slice(1) : k, camelizeKeys(value[k])]),
  );
}

/** True for the SDK/CLI PascalCase form of a GuardDuty finding. */
export const isPascalGuardDuty = (value: Record<string, unknown>): boolean =>
  Object.hasOwn(value, 'SchemaVersion') || Object.hasOwn(value, 'Arn') || Object.hasOwn(value, 'AccountId');

/** Was this produced by CreateSampleFindings (§6.3)? `additionalInfo.sample`, or inside its JSON `value`. */
function isSample(f: GuardDutyFinding): boolean {
  const info = f.service?.additionalInfo;
  if (info?.sample === true || info?.sample === 'true') return true;
  const raw = info?.value;
  if (typeof raw === 'string' && raw.includes('sample')) {
    try {
      const parsed: unknown = JSON.parse(raw);
      if (isRecord(parsed) && (parsed.sample === true || parsed.sample === 'true')) return true;
    } catch {
      // additionalInfo.value is free-form; an unparsable value just is not a sample marker.
    }
  }
  return f.title?.startsWith('[SAMPLE]') === true;
}

interface MappedResource {
  id: string;
  type: string;
  name: string;
  tags: Record<string, string>;
  altIds: string[];
  details: Record<string, unknown>;
}

/** The affected resource per §5.3 (bucket first, then the principal, instance, function, other *Details). */
function mapResource(f: GuardDutyFinding, partition: string, prefix: string): MappedResource {
  const r = f.resource;
  const p = (sub: string) => (prefix ? `${prefix}.resource.${sub}` : `resource.${sub}`);
  const buckets = r.s3BucketDetails ?? [];
  const bucket = buckets[0];
  if (bucket) {
    const name = bucket.name ?? (bucket.arn ? lastSegment(bucket.arn) : undefined);
    if (!name) return reject(p('s3BucketDetails[0].arn'), 'missing resource: bucket has neither arn nor name');
    const id = checkId(bucket.arn ?? `arn:${partition}:s3:::${name}`, p('s3BucketDetails[0].arn'));
    const related =
      buckets.length < 2
        ? EMPTY_LIST
        : buckets.slice(1).flatMap((b) => (b.arn ? [b.arn] : b.name ? [`arn:${partition}:s3:::${b.name}`] : []));
    return {
      id,
      type: 'S3Bucket',
      name,
      tags: tagsFromList(bucket.tags),
      altIds: EMPTY_LIST,
      details: {
        bucket: name,
        bucketArn: id,
        relatedBuckets: related,
        ...(bucket.publicAccess?.effectivePermission
          ? { effectivePermission: bucket.publicAccess.effectivePermission }
          : {}),
      },
    };
  }
  const inst = r.instanceDetails;
  // The instance is the resource of an `Instance` finding, or of one with nothing else to name (a cluster
  // finding of runtime monitoring also carries its node's instanceDetails: the cluster is the resource).
  if (inst && (r.resourceType === 'Instance' || (!r.accessKeyDetails && !hasDetailsBesides(r, 'instanceDetails')))) {
    const instanceId = checkId(inst.instanceId, p('instanceDetails.instanceId'), 64);
    const nics = (inst.networkInterfaces ?? []).map((n) => ({
      id: n.networkInterfaceId ?? null,
      vpcId: n.vpcId ?? null,
      subnetId: n.subnetId ?? null,
      privateIpAddress: n.privateIpAddress ?? null,
      publicIp: n.publicIp ?? null,
      securityGroups: (n.securityGroups ?? []).map((g) => ({ id: g.groupId ?? null, name: g.groupName ?? null })),
    }));
    const first = nics[0];
    return {
      id: checkId(`arn:${partition}:ec2:${f.region}:${f.accountId}:instance/${instanceId}`, p('instanceDetails')),
      type: 'Instance',
      name: instanceId,
      tags: tagsFromList(inst.tags),
      altIds: [instanceId],
      details: {
        instanceId,
        vpcId: first?.vpcId ?? null,
        subnetId: first?.subnetId ?? null,
        availabilityZone: inst.availabilityZone ?? null,
        instanceType: inst.instanceType ?? null,
        imageId: inst.imageId ?? null,
        iamInstanceProfileArn: inst.iamInstanceProfile?.arn ?? null,
        networkInterfaces: nics,
      },
    };
  }
  const key = r.accessKeyDetails;
  if (key && (r.resourceType === 'AccessKey' || !hasOtherDetails(r))) {
    const userType = key.userType ?? 'IAMUser';
    const userName = key.userName;
    let id: string;
    if (userType === 'Root') id = `arn:${partition}:iam::${f.accountId}:root`;
    else if (!userName)
      return reject(p('accessKeyDetails.userName'), 'missing resource: no user name for the access key');
    else if (userType === 'AssumedRole') id = `arn:${partition}:iam::${f.accountId}:role/${userName}`;
    else id = `arn:${partition}:iam::${f.accountId}:user/${userName}`;
    checkId(id, p('accessKeyDetails.userName'));
    return {
      id,
      type: 'AccessKey',
      name: userName || 'root',
      tags: EMPTY_TAGS,
      altIds: key.accessKeyId ? [checkId(key.accessKeyId, p('accessKeyDetails.accessKeyId'), 128)] : EMPTY_LIST,
      details: {
        userName: userName ?? null,
        accessKeyId: key.accessKeyId ?? null,
        userType,
        principalId: key.principalId ?? null,
      },
    };
  }
  const lambda = r.lambdaDetails;
  if (lambda?.functionArn) {
    const id = checkId(lambda.functionArn, p('lambdaDetails.functionArn'));
    const name = lambda.functionName ?? lastSegment(id);
    return {
      id,
      type: r.resourceType,
      name,
      tags: tagsFromList(lambda.tags),
      altIds: EMPTY_LIST,
      details: { functionName: name, functionArn: id, role: lambda.role ?? null },
    };
  }
  return otherDetails(r, p);
}

const hasOtherDetails = (r: GuardDutyFinding['resource']): boolean => hasDetailsBesides(r);

/** Any `*Details` object other than the access key's and `also`'s. */
const hasDetailsBesides = (r: GuardDutyFinding['resource'], also?: string): boolean =>
  Object.keys(r).some((k) => k.endsWith('Details') && k !== 'accessKeyDetails' && k !== also && isRecord(r[k]));

/** Any other `*Details` object carrying an ARN (EKS, ECS, RDS, … and types not yet documented). */
function otherDetails(r: GuardDutyFinding['resource'], p: (sub: string) => string): MappedResource {
  for (const detailKey of Object.keys(r)) {
    if (!detailKey.endsWith('Details') || detailKey === 'accessKeyDetails') continue;
    const d = r[detailKey];
    if (!isRecord(d)) continue;
    const arnKey = Object.keys(d).find((k) => (k === 'arn' || k.endsWith('Arn')) && str(d, k)?.startsWith('arn:'));
    if (!arnKey) continue;
    const id = checkId(str(d, arnKey) ?? '', p(`${detailKey}.${arnKey}`));
    const name = str(d, 'name') ?? str(d, 'dbInstanceIdentifier') ?? str(d, 'dbClusterIdentifier') ?? lastSegment(id);
    return {
      id,
      type: r.resourceType,
      name,
      tags: tagsFromList(d.tags),
      altIds: EMPTY_LIST,
      details: {
        ...(detailKey.endsWith('ClusterDetails') ? { clusterName: name } : {}),
        ...(str(d, 'dbInstanceIdentifier') ? { dbInstanceIdentifier: str(d, 'dbInstanceIdentifier') } : {}),
        ...(str(d, 'engine') ? { engine: str(d, 'engine') } : {}),
      },
    };
  }
  return reject(
    p('resourceType'),
    `missing resource: no resource detail with an id for resourceType "${r.resourceType}"`,
  );
}

function actorOf(f: GuardDutyFinding): Actor | undefined {
  const k = f.resource.accessKeyDetails;
  if (!k) return undefined;
  const actor: Actor = {};
  if (k.accessKeyId) actor.accessKeyId = k.accessKeyId;
  if (k.principalId) actor.principalId = k.principalId;
  if (k.userName) actor.userName = k.userName;
  if (k.userType) actor.userType = k.userType;
  return actor;
}

/**
 * Maps one GuardDuty finding (camelCase or PascalCase) to a Finding; throws FindingRejectedError naming the
 * field when it cannot (caught by `normalize`).
 *
 * @example
 * const f = mapGuardDuty(event.detail, 'detail');
 * f.key === sha256Hex(`aws:${event.detail.arn}`); f.severity === 'high'; f.resource.id === 'arn:aws:s3:::acme-marketing-exports';
 */
export function mapGuardDuty(value: unknown, prefix: string): Finding {
  const pascal = isRecord(value) && isPascalGuardDuty(value);
  const f = parseOrReject(GuardDutyFindingSchema, pascal ? camelizeKeys(value) : value, prefix);
  const at = (sub: string) => (prefix ? `${prefix}.${sub}` : sub);
  // `partition` is optional; the finding's own ARN names it too (a GovCloud finding's resources are not `arn:aws:…`).
  const partition = f.partition ?? arnPartition(f.arn ?? '') ?? 'aws';
  const detectorId = f.service?.detectorId;
  const findingId = checkId(f.id, at('id'), 128);
  let arn = f.arn;
  if (!arn) {
    if (!detectorId) return reject(at('arn'), 'missing required field: neither arn nor service.detectorId to build it');
    arn = `arn:${partition}:guardduty:${f.region}:${f.accountId}:detector/${detectorId}/finding/${findingId}`;
  }
  checkId(arn, at('arn'));

  const severity = severityFromNumber(f.severity);
  const archived = f.service?.archived === true;
  const occurrences = Math.max(1, f.service?.count ?? 1);
  const resource = mapResource(f, partition, prefix);
  const actor = actorOf(f);
  const status = archived ? 'resolved' : 'active';
  const finding: Finding = {
    key: findingKey('aws', arn),
    source: 'guardduty',
    product: 'GuardDuty',
    sourceId: arn,
    type: f.type,
    title: clip(f.title ?? f.type, 4096),
    description: clip(f.description ?? '', 65536),
    severity,
    sourceSeverity: f.severity,
    status,
    muted: false,
    sample: isSample(f),
    kind: 'detection',
    firstSeen: firstTime([
      [f.service?.eventFirstSeen, at('service.eventFirstSeen')],
      [f.createdAt, at('createdAt')],
    ]),
    lastSeen: firstTime([
      [f.service?.eventLastSeen, at('service.eventLastSeen')],
      [f.updatedAt, at('updatedAt')],
    ]),
    updatedAt: toIso(f.updatedAt, at('updatedAt')),
    occurrences,
    resource: {
      provider: 'aws',
      id: resource.id,
      type: resource.type,
      name: clip(resource.name, 1024),
      account: f.accountId,
      region: f.region,
      tags: resource.tags,
      altIds: resource.altIds,
      // mapResource's details are this finding's own: extended in place (a spread re-copies every member).
      details: Object.assign(resource.details, { detectorId: detectorId ?? null, findingId, partition }),
    },
    compliance: { controls: EMPTY_LIST, standards: EMPTY_LIST },
    // Joined into one flat string (a template literal keeps a rope of its pieces in every stored finding).
    link: [
      'https://console.aws.amazon.com/guardduty/home?region=',
      encodeURIComponent(f.region),
      '#/findings?macros=current&fId=',
      encodeURIComponent(findingId),
    ].join(''),
    ocsf: ocsfOf('detection', severity, status, false, occurrences),
    raw: value,
  };
  if (archived) finding.statusReason = 'archived in GuardDuty (service.archived)';
  if (actor) finding.actor = actor;
  return finding;
}
