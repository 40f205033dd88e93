/**
 * AWS Security Hub (CSPM) ASFF findings → the closeloop Finding (finding-formats §2–§5, §6.5, §7).
 *
 * Control findings (consolidated or per-standard) become `kind: compliance` with `type` = the control id
 * (`S3.8`). GuardDuty copies (`ProductName` GuardDuty) keep `source: securityhub` (the channel) but recover
 * the GuardDuty type and resource so that key and case key equal those of the native GuardDuty finding.
 *
 * `resource.details` keys, by `Resources[].Type`:
 * - `AwsS3Bucket`: `bucket`
 * - `AwsIamUser`: `userName`
 * - `AwsIamAccessKey`: `userName`, `accessKeyId`, `userType` (the principal becomes the resource id)
 * - `AwsEc2Instance`: `instanceId`, `vpcId`, `subnetId`, `networkInterfaces[{id}]`
 * - `AwsAccount`: `accountId`
 * - always: `productArn`, `generatorId`
 *
 * @see https://docs.aws.amazon.com/securityhub/1.0/APIReference/API_AwsSecurityFinding.html
 * @see https://docs.aws.amazon.com/guardduty/latest/ug/securityhub-integration.html
 */
import * as z from 'zod';
import type { Finding, Severity } from '../model/finding.js';
import { arnPartition } from '../util/aws-partition.js';
import { EMPTY_LIST } from '../util/intern.js';
import {
  checkId,
  clip,
  findingKey,
  firstTime,
  isRecord,
  JsonObjectSchema,
  lastSegment,
  ocsfOf,
  parseOrReject,
  rec,
  reject,
  severityFromLabel,
  severityFromNormalized,
  str,
  tagsFromMap,
  toIso,
} from './common.js';

const ResourceSchema = z.looseObject({
  Type: z.string().min(1).max(256),
  Id: z.string().min(1),
  Partition: z.string().optional(),
  Region: z.string().max(64).optional(),
  Tags: JsonObjectSchema.optional(),
  Details: JsonObjectSchema.optional(),
});

/**
 * One ASFF finding. Lenient: unknown fields are kept, only what closeloop reads is typed.
 *
 * @example
 * { "SchemaVersion": "2018-10-08",
 *   "Id": "arn:aws:securityhub:eu-west-1:111122223333:security-control/S3.8/finding/b912…",
 *   "ProductArn": "arn:aws:securityhub:eu-west-1::product/aws/securityhub", "GeneratorId": "security-control/S3.8",
 *   "AwsAccountId": "111122223333", "Types": ["Software and Configuration Checks/Industry and Regulatory Standards"],
 *   "CreatedAt": "…", "UpdatedAt": "…", "Severity": { "Label": "HIGH" }, "Title": "…", "Description": "…",
 *   "Resources": [{ "Type": "AwsS3Bucket", "Id": "arn:aws:s3:::acme-data-lake-raw", "Region": "eu-west-1" }],
 *   "Compliance": { "Status": "FAILED", "SecurityControlId": "S3.8" }, "Workflow": { "Status": "NEW" }, "RecordState": "ACTIVE" }
 * @see https://docs.aws.amazon.com/securityhub/latest/userguide/securityhub-findings-format-syntax.html
 */
export const AsffFindingSchema = z.looseObject({
  SchemaVersion: z.string(),
  Id: z.string().min(1),
  ProductArn: z.string().min(1),
  ProductName: z.string().optional(),
  GeneratorId: z.string().optional(),
  AwsAccountId: z.string().regex(/^\d{12}$/, 'expected a 12-digit AWS account id'),
  Region: z.string().max(64).optional(),
  Types: z.array(z.string()).optional(),
  Title: z.string(),
  Description: z.string().optional(),
  CreatedAt: z.string(),
  UpdatedAt: z.string(),
  FirstObservedAt: z.string().optional(),
  LastObservedAt: z.string().optional(),
  Severity: z.looseObject({
    Label: z.string().optional(),
    Normalized: z.number().optional(),
    Original: z.string().optional(),
  }),
  Resources: z.array(ResourceSchema).min(1, 'expected at least one resource'),
  Compliance: z
    .looseObject({
      Status: z.string().optional(),
      SecurityControlId: z.string().optional(),
      AssociatedStandards: z.array(z.looseObject({ StandardsId: z.string().optional() })).optional(),
      RelatedRequirements: z.array(z.string()).optional(),
    })
    .optional(),
  Workflow: z.looseObject({ Status: z.string().optional() }).optional(),
  RecordState: z.string().optional(),
  ProductFields: JsonObjectSchema.optional(),
  Sample: z.boolean().optional(),
  Remediation: z
    .looseObject({
      Recommendation: z.looseObject({ Text: z.string().optional(), Url: z.string().optional() }).optional(),
    })
    .optional(),
});
export type AsffFinding = z.infer<typeof AsffFindingSchema>;

// `arn:aws:securityhub:us-east-1::product/aws/guardduty`: `product` follows the ARN's empty account field.
const GUARDDUTY_PRODUCT = /:product\/aws\/guardduty$/;
const SECURITY_HUB_PRODUCT = /:product\/aws\/securityhub$/;
const CONTROL_GENERATOR = /(?:^|\/)security-control\/([^/]+)$|\/v\/[^/]+\/([^/]+)$/;

/** `TTPs/Command and Control/CryptoCurrency:EC2-BitcoinTool.B!DNS` → `CryptoCurrency:EC2/BitcoinTool.B!DNS` (§6.5). */
export function recoverGuardDutyType(types: readonly string[]): string | undefined {
  for (const t of types) {
    const last = lastSlashSegment(t);
    if (last.includes(':') && last.includes('-')) return last.replace('-', '/');
  }
  return undefined;
}

const lastSlashSegment = (s: string): string => s.slice(s.lastIndexOf('/') + 1);

function severityOf(f: AsffFinding, prefix: string): { severity: Severity; source: string | number } {
  const label = f.Severity.Label;
  if (label !== undefined) {
    const s = severityFromLabel(label);
    if (!s) return reject(`${prefix}Severity.Label`, `unknown severity label "${clip(label, 40)}"`);
    return { severity: s, source: label };
  }
  if (f.Severity.Normalized !== undefined)
    return { severity: severityFromNormalized(f.Severity.Normalized), source: f.Severity.Normalized };
  return reject(`${prefix}Severity`, 'missing required field: Severity.Label or Severity.Normalized');
}

function statusOf(f: AsffFinding, guardDutyArchived: boolean): { resolved: boolean; reason?: string; muted: boolean } {
  const workflow = f.Workflow?.Status;
  if (f.Compliance?.Status === 'PASSED') return { resolved: true, reason: 'Compliance.Status PASSED', muted: false };
  if (workflow === 'RESOLVED') return { resolved: true, reason: 'Workflow.Status RESOLVED', muted: false };
  // Suppressed is an accepted risk, not a fix: resolved for the pipeline, recorded as muted.
  if (workflow === 'SUPPRESSED') return { resolved: true, reason: 'Workflow.Status SUPPRESSED', muted: true };
  if (f.RecordState === 'ARCHIVED') return { resolved: true, reason: 'RecordState ARCHIVED', muted: false };
  if (guardDutyArchived) return { resolved: true, reason: 'archived in GuardDuty (ProductFields)', muted: false };
  return { resolved: false, muted: false };
}

/**
 * Control id: `Compliance.SecurityControlId`, else `ProductFields.ControlId` (or `RuleId`, legacy CIS 1.2.0),
 * else the GeneratorId's last segment (§7.2) — for Security Hub's own findings any GeneratorId
 * (`…/cis-aws-foundations-benchmark/v/1.2.0/rule/1.4`), for other products only the control forms: a
 * generic `Types[0]` must never become the case type of two different controls on one resource.
 */
function controlOf(f: AsffFinding): string | undefined {
  if (f.Compliance?.SecurityControlId) return f.Compliance.SecurityControlId;
  for (const field of ['ControlId', 'RuleId']) {
    const fromFields = f.ProductFields?.[field];
    if (typeof fromFields === 'string' && fromFields !== '') return fromFields;
  }
  const m = f.GeneratorId ? CONTROL_GENERATOR.exec(f.GeneratorId) : null;
  if (m) return m[1] ?? m[2];
  if (f.GeneratorId && SECURITY_HUB_PRODUCT.test(f.ProductArn)) return lastSlashSegment(f.GeneratorId) || undefined;
  return undefined;
}

/**
 * Maps one ASFF finding to a Finding; throws FindingRejectedError naming the field when it cannot.
 *
 * @example
 * const f = mapAsff(event.detail.findings[0], 'detail.findings[0]');
 * f.type === 'S3.8'; f.kind === 'compliance'; f.status === 'active';
 */
export function mapAsff(value: unknown, prefix: string): Finding {
  const f = parseOrReject(AsffFindingSchema, value, prefix);
  const pre = prefix ? `${prefix}.` : '';
  if (f.SchemaVersion !== '2018-10-08')
    reject(`${pre}SchemaVersion`, `unsupported ASFF schema version "${clip(f.SchemaVersion, 40)}"`);
  const sourceId = checkId(f.Id, `${pre}Id`, 512);
  const fields = f.ProductFields ?? {};
  const isGuardDuty = f.ProductName === 'GuardDuty' || GUARDDUTY_PRODUCT.test(f.ProductArn);
  const control = isGuardDuty ? undefined : controlOf(f);
  const gdType = isGuardDuty ? recoverGuardDutyType(f.Types ?? []) : undefined;
  const type = gdType ?? control ?? f.Types?.[0] ?? f.GeneratorId;
  if (!type) return reject(`${pre}Types`, 'missing required field: no control id, Types or GeneratorId');
  const isCompliance = !isGuardDuty && (control !== undefined || f.Compliance !== undefined);

  const { severity, source: sourceSeverity } = severityOf(f, pre);
  const gdCount = isGuardDuty ? Number.parseInt(String(fields['aws/guardduty/service/count'] ?? ''), 10) : Number.NaN;
  const occurrences = Number.isFinite(gdCount) && gdCount > 0 ? gdCount : 1;
  const gdArchived = isGuardDuty && String(fields['aws/guardduty/service/archived']) === 'true';
  const st = statusOf(f, gdArchived);
  const status = st.resolved ? 'resolved' : 'active';
  const kind = isCompliance ? 'compliance' : 'detection';
  const sample =
    f.Sample === true || (isGuardDuty && String(fields['aws/guardduty/service/additionalInfo/sample']) === 'true');

  const { index, resource } = pickResource(f, isGuardDuty, pre);
  const resourcePath = `${pre}Resources[${index}]`;
  const mapped = mapResource(resource, f, isGuardDuty, resourcePath);
  const region = resource.Region ?? f.Region ?? null;
  const standards: string[] = [];
  for (const s of f.Compliance?.AssociatedStandards ?? []) if (s.StandardsId) standards.push(s.StandardsId);
  const advice = f.Remediation?.Recommendation;

  const finding: Finding = {
    key: findingKey('aws', sourceId),
    source: 'securityhub',
    product: f.ProductName ?? lastSlashSegment(f.ProductArn),
    sourceId,
    type: clip(type, 512),
    title: clip(f.Title, 4096),
    description: clip(f.Description ?? '', 65536),
    severity,
    sourceSeverity,
    status,
    muted: st.muted,
    sample,
    kind,
    firstSeen: firstTime([
      [f.FirstObservedAt, `${pre}FirstObservedAt`],
      [f.CreatedAt, `${pre}CreatedAt`],
    ]),
    lastSeen: firstTime([
      [f.LastObservedAt, `${pre}LastObservedAt`],
      [f.UpdatedAt, `${pre}UpdatedAt`],
    ]),
    updatedAt: toIso(f.UpdatedAt, `${pre}UpdatedAt`),
    occurrences,
    resource: {
      provider: 'aws',
      id: mapped.id,
      type: resource.Type,
      name: clip(mapped.name, 1024),
      account: f.AwsAccountId,
      region,
      tags: tagsFromMap(resource.Tags),
      altIds: mapped.altIds,
      details: Object.assign(mapped.details, { productArn: f.ProductArn, generatorId: f.GeneratorId ?? null }),
    },
    compliance: {
      controls: control ? [control] : EMPTY_LIST,
      standards: standards.length === 0 ? EMPTY_LIST : standards,
      ...(f.Compliance?.Status ? { status: f.Compliance.Status } : {}),
    },
    // Joined into one flat string (a template literal keeps a rope of its pieces in every stored finding).
    link: [
      'https://console.aws.amazon.com/securityhub/home?region=',
      encodeURIComponent(region ?? 'us-east-1'),
      '#/findings?search=Id%3D%255Coperator%255C%253AEQUALS%255C%253A',
      encodeURIComponent(encodeURIComponent(sourceId)),
    ].join(''),
    ocsf: ocsfOf(kind, severity, status, st.muted, occurrences, f.Workflow?.Status === 'NOTIFIED'),
    raw: value,
  };
  if (resource.Type === 'AwsIamAccessKey') {
    const actor = keyActor(resource);
    if (actor) finding.actor = actor;
  }
  if (st.reason) finding.statusReason = st.reason;
  if (advice?.Text || advice?.Url) finding.recommendation = [advice.Text, advice.Url].filter(Boolean).join(' ');
  return finding;
}

type AsffResource = AsffFinding['Resources'][number];

/** `Resources[0]`, except GuardDuty copies prefer the bucket, as the native mapping does (§5.3). */
function pickResource(f: AsffFinding, isGuardDuty: boolean, pre: string): { index: number; resource: AsffResource } {
  const index = isGuardDuty
    ? Math.max(
        0,
        f.Resources.findIndex((r) => r.Type === 'AwsS3Bucket'),
      )
    : 0;
  const resource = f.Resources[index];
  if (!resource) return reject(`${pre}Resources`, 'missing resource');
  return { index, resource };
}

/**
 * The principal behind an access key, as GuardDuty's own `accessKeyDetails` names it: a GuardDuty copy
 * without it chose no action for a finding the native event answers (the playbook chooses by user type),
 * and whichever of the two arrived last set the shared case's action. The user type only when the source
 * says it: a guessed one could deactivate a key where sessions were to be revoked.
 */
function keyActor(r: AsffResource): Finding['actor'] {
  const d = rec(r.Details ?? {}, 'AwsIamAccessKey');
  if (!d) return undefined;
  const actor: NonNullable<Finding['actor']> = {};
  const userName = str(d, 'PrincipalName') ?? str(d, 'UserName');
  const userType = str(d, 'PrincipalType');
  const principalId = str(d, 'PrincipalId');
  const accessKeyId = str(d, 'AccessKeyId') ?? accessKeyFromId(r.Id);
  if (accessKeyId) actor.accessKeyId = accessKeyId;
  if (principalId) actor.principalId = principalId;
  if (userName) actor.userName = userName;
  if (userType) actor.userType = userType;
  return Object.keys(actor).length > 0 ? actor : undefined;
}

function mapResource(
  r: AsffResource,
  f: AsffFinding,
  isGuardDuty: boolean,
  path: string,
): { id: string; name: string; altIds: string[]; details: Record<string, unknown> } {
  const details = r.Details ?? {};
  // `Partition` is optional; the finding's ProductArn names it too (arn:aws-us-gov:securityhub:…).
  const partition = r.Partition ?? arnPartition(f.ProductArn) ?? 'aws';
  switch (r.Type) {
    case 'AwsS3Bucket': {
      const id = checkId(r.Id, `${path}.Id`);
      return { id, name: lastSegment(id), altIds: EMPTY_LIST, details: { bucket: lastSegment(id) } };
    }
    case 'AwsIamAccessKey': {
      const d = rec(details, 'AwsIamAccessKey');
      const userName = str(d, 'PrincipalName') ?? str(d, 'UserName');
      const userType = str(d, 'PrincipalType') ?? 'IAMUser';
      const accessKeyId = str(d, 'AccessKeyId') ?? accessKeyFromId(r.Id);
      const base = { userName: userName ?? null, accessKeyId: accessKeyId ?? null, userType };
      // The GuardDuty native mapping names the principal (§5.3); do the same so both share a case.
      if (isGuardDuty && userName) {
        const id =
          userType === 'Root'
            ? `arn:${partition}:iam::${f.AwsAccountId}:root`
            : `arn:${partition}:iam::${f.AwsAccountId}:${userType === 'AssumedRole' ? 'role' : 'user'}/${userName}`;
        checkId(id, `${path}.Details.AwsIamAccessKey.PrincipalName`);
        return { id, name: userName, altIds: accessKeyId ? [accessKeyId] : EMPTY_LIST, details: base };
      }
      const id = checkId(r.Id, `${path}.Id`);
      return { id, name: userName ?? lastSegment(id), altIds: EMPTY_LIST, details: base };
    }
    case 'AwsIamUser': {
      const id = checkId(r.Id, `${path}.Id`);
      const userName = str(rec(details, 'AwsIamUser'), 'UserName') ?? lastSegment(id);
      return { id, name: userName, altIds: EMPTY_LIST, details: { userName } };
    }
    case 'AwsEc2Instance': {
      const id = checkId(r.Id, `${path}.Id`);
      const d = rec(details, 'AwsEc2Instance');
      const instanceId = lastSegment(id);
      const nics = Array.isArray(d?.NetworkInterfaces) ? d.NetworkInterfaces : [];
      return {
        id,
        name: instanceId,
        altIds: [instanceId],
        details: {
          instanceId,
          vpcId: str(d, 'VpcId') ?? null,
          subnetId: str(d, 'SubnetId') ?? null,
          networkInterfaces: nics.flatMap((n: unknown) => {
            const nicId = isRecord(n) ? str(n, 'NetworkInterfaceId') : undefined;
            return nicId ? [{ id: nicId }] : [];
          }),
        },
      };
    }
    case 'AwsAccount': {
      const id = checkId(r.Id, `${path}.Id`);
      return { id, name: f.AwsAccountId, altIds: EMPTY_LIST, details: { accountId: f.AwsAccountId } };
    }
    default: {
      const id = checkId(r.Id, `${path}.Id`);
      return { id, name: lastSegment(id), altIds: EMPTY_LIST, details: {} };
    }
  }
}

const ACCESS_KEY = /(?:AKIA|ASIA)[A-Z0-9]{12,}/;
const accessKeyFromId = (id: string): string | undefined => ACCESS_KEY.exec(id)?.[0];
