/**
 * The one finding model every source is normalized into, aligned with OCSF Detection Finding
 * (class_uid 2004) and Compliance Finding (class_uid 2003).
 *
 * @see ../shared/reference/finding-formats.md §2 (field table), §3 (severity), §4 (status), §5 (identity)
 * @see https://schema.ocsf.io/1.3.0/classes/detection_finding
 */
import * as z from 'zod';

export const SourceSchema = z.enum(['guardduty', 'securityhub', 'defender', 'scc']);
export type Source = z.infer<typeof SourceSchema>;

export const ProviderSchema = z.enum(['aws', 'azure', 'gcp']);
export type Provider = z.infer<typeof ProviderSchema>;

export const SeveritySchema = z.enum(['informational', 'low', 'medium', 'high', 'critical']);
export type Severity = z.infer<typeof SeveritySchema>;
/** Ordered from least to most severe; index = rank. */
export const SEVERITY_ORDER: readonly Severity[] = SeveritySchema.options;

export const FindingStatusSchema = z.enum(['active', 'resolved']);
export type FindingStatus = z.infer<typeof FindingStatusSchema>;

/** RFC 3339 timestamp kept as a string (OCSF `_dt` fields); always normalized to UTC `Z` form. */
export const TimestampSchema = z.iso.datetime({ offset: true });

export const ResourceSchema = z.object({
  provider: ProviderSchema,
  /** ARN, Azure resource id, or GCP full resource name, as the source gives it (never lower-cased here). */
  id: z.string().min(1).max(2048),
  /** The source's resource type (`S3Bucket`, `AwsS3Bucket`, `Microsoft.Storage/storageAccounts`, `google.cloud.storage.Bucket`). */
  type: z.string().min(1).max(256),
  name: z.string().min(1).max(1024),
  /** AWS account id, Azure subscription id (lower-case GUID), or GCP project id as the source gives it. */
  account: z.string().min(1).max(256),
  /** GCP project number when the source gives it besides the project id. */
  accountNumber: z.string().max(64).optional(),
  region: z.string().max(64).nullable(),
  tags: z.record(z.string(), z.string()),
  /** Other ids of the same resource (e.g. an access key id beside the IAM user ARN). */
  altIds: z.array(z.string()).default([]),
  /**
   * Source facts an action needs to act on the resource (instance id, VPC id, security groups, NICs,
   * bucket name…). Keys are documented per normalizer; values are plain JSON.
   */
  details: z.record(z.string(), z.unknown()).default({}),
});
export type Resource = z.infer<typeof ResourceSchema>;

/** Who acted, for identity findings (GuardDuty `accessKeyDetails`). */
export const ActorSchema = z.object({
  accessKeyId: z.string().optional(),
  principalId: z.string().optional(),
  userName: z.string().optional(),
  userType: z.string().optional(),
});
export type Actor = z.infer<typeof ActorSchema>;

export const ComplianceSchema = z.object({
  /** Control ids (`S3.8`, `IAM.3`) or policy definition ids. */
  controls: z.array(z.string()),
  /** Standards (`standards/aws-foundational-security-best-practices/v/1.0.0`, `CIS 1.4`…). */
  standards: z.array(z.string()),
  /** The source's compliance status when it has one (`PASSED`, `FAILED`, `Healthy`, …). */
  status: z.string().optional(),
});
export type Compliance = z.infer<typeof ComplianceSchema>;

/** OCSF classification carried for consumers that speak OCSF. */
export const OcsfSchema = z.object({
  class_uid: z.union([z.literal(2003), z.literal(2004)]),
  category_uid: z.literal(2),
  activity_id: z.union([z.literal(1), z.literal(2), z.literal(3)]),
  type_uid: z.number().int(),
  /** 1 Informational … 5 Critical */
  severity_id: z.number().int().min(0).max(6),
  /** 1 New, 2 In Progress (Defender InProgress, ASFF NOTIFIED), 3 Suppressed (muted), 4 Resolved */
  status_id: z.number().int().min(0).max(99),
});
export type Ocsf = z.infer<typeof OcsfSchema>;

export const FindingSchema = z.object({
  /** sha256(provider + ":" + canonicalSourceId), hex. Same finding → same key across repeats and state changes. */
  key: z.string().regex(/^[0-9a-f]{64}$/),
  source: SourceSchema,
  /** The product that produced it when it differs from the channel (GuardDuty copies inside Security Hub). */
  product: z.string().min(1).max(256),
  sourceId: z.string().min(1).max(2048),
  /** GuardDuty type, ASFF control id (or recovered GuardDuty type), Defender alertType / policy definition id, SCC category. */
  type: z.string().min(1).max(512),
  title: z.string().max(4096),
  description: z.string().max(65536),
  severity: SeveritySchema,
  /** The source's own severity value (GuardDuty number, ASFF label, Defender/SCC string). */
  sourceSeverity: z.union([z.string(), z.number()]),
  status: FindingStatusSchema,
  /** Why the status is what it is ("Compliance.Status PASSED", "state INACTIVE", "muted", "not applicable"). */
  statusReason: z.string().optional(),
  muted: z.boolean(),
  sample: z.boolean(),
  /** detection (threat) or compliance (posture / control) */
  kind: z.enum(['detection', 'compliance']),
  firstSeen: TimestampSchema,
  lastSeen: TimestampSchema,
  /** When the source last changed the finding; orders repeat/update events. */
  updatedAt: TimestampSchema,
  occurrences: z.number().int().min(1),
  resource: ResourceSchema,
  actor: ActorSchema.optional(),
  compliance: ComplianceSchema,
  /** Deep link to the finding in the source's console, when the source gives or implies one. */
  link: z.string().optional(),
  /** Remediation text from the source, if any. */
  recommendation: z.string().optional(),
  ocsf: OcsfSchema,
  /** The whole source finding, untouched. */
  raw: z.unknown(),
});
export type Finding = z.infer<typeof FindingSchema>;

/** A rejected input: never a throw for one bad record (house style §5). */
export const RejectedSchema = z.object({
  /** Where it came from: `events/gd.json#3`, `stdin:12`, `sqs:<messageId>`. */
  input: z.string(),
  source: z.union([SourceSchema, z.literal('unknown')]),
  /** Field path inside the input (`detail.resource.resourceType`), or `$` for the whole input. */
  path: z.string(),
  reason: z.string(),
});
export type Rejected = z.infer<typeof RejectedSchema>;

export const severityRank = (s: Severity): number => SEVERITY_ORDER.indexOf(s);
export const maxSeverity = (a: Severity, b: Severity): Severity => (severityRank(a) >= severityRank(b) ? a : b);
