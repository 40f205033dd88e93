/**
 * Google Security Command Center `NotificationMessage` (v1 and v2) → the closeloop Finding
 * (finding-formats §2–§5, §9). The same message reaches us raw, as a Pub/Sub push body or as a
 * CloudEvent; `detect` unwraps those, so this module only sees the decoded message and all three give
 * the same key. Proto-style snake_case field names (`resource_name`, `project_display_name`) are
 * accepted beside the JSON camelCase ones.
 *
 * `resource.details` keys: `project` (project id), `projectNumber`, `bucket` (Cloud Storage buckets),
 * `firewall` (firewall rule name, from `displayName`) and `firewallId` (numeric id from the resource name),
 * `instance` / `instanceId` / `zone` (Compute instances), `findingClass`, `findingName`, `sourceId`.
 *
 * @see https://cloud.google.com/security-command-center/docs/how-to-notifications
 * @see https://cloud.google.com/security-command-center/docs/reference/rest/v1/organizations.sources.findings
 */
import * as z from 'zod';
import { canonicalResourceId } from '../enrich/glob.js';
import type { Finding, Severity } from '../model/finding.js';
import { EMPTY_LIST, EMPTY_TAGS } from '../util/intern.js';
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
  str,
  toIso,
} from './common.js';

const Time = z.string().optional();

const GcpResourceSchema = z.looseObject({
  name: z.string().optional(),
  displayName: z.string().optional(),
  type: z.string().optional(),
  project: z.string().optional(),
  projectDisplayName: z.string().optional(),
  location: z.string().optional(),
  gcpMetadata: JsonObjectSchema.optional(),
});

/**
 * A SCC NotificationMessage (after camel-casing proto-style names).
 *
 * @example
 * { "notificationConfigName": "organizations/605118234777/notificationConfigs/closeloop-findings",
 *   "finding": { "name": "organizations/605118234777/sources/7319…/findings/6231…", "resourceName": "//storage.googleapis.com/acme-web-uploads",
 *     "state": "ACTIVE", "category": "PUBLIC_BUCKET_ACL", "severity": "HIGH", "eventTime": "…", "createTime": "…", "mute": "UNDEFINED" },
 *   "resource": { "name": "//storage.googleapis.com/acme-web-uploads", "type": "google.cloud.storage.Bucket",
 *     "project": "//cloudresourcemanager.googleapis.com/projects/318274659012", "projectDisplayName": "acme-web-prod" } }
 * @see https://cloud.google.com/ruby/docs/reference/google-cloud-security_center-v2/latest/Google-Cloud-SecurityCenter-V2-NotificationMessage
 */
export const SccNotificationSchema = z.looseObject({
  notificationConfigName: z.string().optional(),
  finding: z.looseObject({
    name: z.string().min(1),
    parent: z.string().optional(),
    resourceName: z.string().min(1),
    state: z.string().optional(),
    category: z.string().min(1).max(512),
    externalUri: z.string().optional(),
    sourceProperties: JsonObjectSchema.optional(),
    eventTime: Time,
    createTime: Time,
    severity: z.string().optional(),
    canonicalName: z.string().optional(),
    mute: z.string().optional(),
    muteUpdateTime: Time,
    findingClass: z.string().optional(),
    description: z.string().optional(),
    compliances: z
      .array(
        z.looseObject({
          standard: z.string().optional(),
          version: z.string().optional(),
          ids: z.array(z.string()).optional(),
        }),
      )
      .optional(),
  }),
  resource: GcpResourceSchema.optional(),
});
type SccNotification = z.infer<typeof SccNotificationSchema>;

const SNAKE = /_([a-z0-9])/g;
const FINDING_TAIL = /(?:^|\/)sources\/([^/]+)\/(?:locations\/[^/]+\/)?findings\/([^/]+)$/;
const PROJECT_NUMBER = /\/projects\/(\d+)$/;
const PROJECT_IN_NAME = /\/projects\/([^/]+)\//;
const ZONE = /\/zones\/([^/]+)\//;
const REGION = /\/regions\/([^/]+)\//;
const STORAGE_BUCKET = /^\/\/storage\.googleapis\.com\/(?:projects\/[^/]+\/buckets\/)?([^/]+)$/;
const FIREWALL = /^\/\/compute\.googleapis\.com\/projects\/[^/]+\/global\/firewalls\/([^/]+)$/;
const INSTANCE = /^\/\/compute\.googleapis\.com\/projects\/[^/]+\/zones\/[^/]+\/instances\/([^/]+)$/;
const SERVICE_HOST = /^\/\/([^/]+)\//;
const ZONE_SUFFIX = /-[a-z]$/;

/**
 * Proto-style names → JSON names, one level: `resource_name` → `resourceName`. Nothing to do (the
 * common case) returns the object itself; otherwise a new object is built with Object.fromEntries (no
 * prototype setter), and a camelCase key already present wins over its snake_case twin.
 */
export function camelTop(obj: Record<string, unknown>): Record<string, unknown> {
  const keys = Object.keys(obj);
  if (!keys.some((k) => k.includes('_'))) return obj;
  const entries: Array<[string, unknown]> = [];
  for (const k of keys) {
    const camel = k.replace(SNAKE, (_, c: string) => c.toUpperCase());
    if (camel !== k && Object.hasOwn(obj, camel)) continue;
    entries.push([camel, obj[k]]);
  }
  return Object.fromEntries(entries);
}

/** Camel-cases the message, its `finding`, its `resource` and `resource.gcpMetadata`, leaving values alone. */
export function camelMessage(value: unknown): unknown {
  if (!isRecord(value)) return value;
  const msg = camelTop(value);
  const finding = rec(msg, 'finding');
  const resource = rec(msg, 'resource');
  const fixedFinding = finding ? camelTop(finding) : undefined;
  const fixedResource = resource ? camelTop(resource) : undefined;
  const meta = rec(fixedResource, 'gcpMetadata');
  const fixedMeta = meta ? camelTop(meta) : undefined;
  if (msg === value && fixedFinding === finding && fixedResource === resource && fixedMeta === meta) return value;
  const entries: Array<[string, unknown]> = [];
  for (const k of Object.keys(msg)) {
    if (k === 'finding') entries.push([k, fixedFinding]);
    else if (k === 'resource')
      entries.push([
        k,
        fixedResource && fixedMeta !== meta
          ? Object.fromEntries([...Object.entries(fixedResource), ['gcpMetadata', fixedMeta]])
          : fixedResource,
      ]);
    else entries.push([k, msg[k]]);
  }
  return Object.fromEntries(entries);
}

function severityOf(label: string | undefined, path: string): Severity {
  if (label === undefined || label === 'SEVERITY_UNSPECIFIED' || label === '') return 'informational';
  const s = severityFromLabel(label);
  if (!s) return reject(path, `unknown severity "${clip(label, 40)}"`);
  return s;
}

const DETECTION_CLASSES = new Set(['THREAT', 'OBSERVATION', 'TOXIC_COMBINATION', 'SCC_ERROR']);

function regionOf(resourceName: string, location: string | undefined): string | null {
  if (location && location !== 'global') return clip(location, 64);
  const zone = ZONE.exec(resourceName)?.[1];
  if (zone) return clip(zone.replace(ZONE_SUFFIX, ''), 64);
  return REGION.exec(resourceName)?.[1] ?? null;
}

/** Project id (§5.4): `projectDisplayName` (v1, v2 under gcpMetadata), else `sourceProperties.ProjectId`, else from the name. */
function projectOf(m: SccNotification): { id: string | undefined; number: string | undefined } {
  const r = m.resource;
  const meta = r?.gcpMetadata;
  const number = PROJECT_NUMBER.exec(r?.project ?? str(meta, 'project') ?? '')?.[1];
  const fromName = PROJECT_IN_NAME.exec(m.finding.resourceName)?.[1];
  // `||`, not `??`: an empty string names nothing (the project id becomes the finding's account).
  const id =
    r?.projectDisplayName ||
    str(meta, 'projectDisplayName') ||
    str(m.finding.sourceProperties, 'ProjectId') ||
    (fromName && fromName !== '_' ? fromName : undefined) ||
    number;
  return { id, number };
}

function detailsOf(
  resourceName: string,
  displayName: string | undefined,
  projectId: string,
  projectNumber: string | undefined,
) {
  const d: Record<string, unknown> = { project: projectId, projectNumber: projectNumber ?? null };
  const bucket = STORAGE_BUCKET.exec(resourceName)?.[1];
  if (bucket) d.bucket = bucket;
  const firewall = FIREWALL.exec(resourceName)?.[1];
  if (firewall) {
    d.firewall = displayName ?? firewall;
    d.firewallId = firewall;
  }
  const instance = INSTANCE.exec(resourceName)?.[1];
  if (instance) {
    d.instance = displayName ?? instance;
    d.instanceId = instance;
    d.zone = ZONE.exec(resourceName)?.[1] ?? null;
  }
  return d;
}

/**
 * When the finding last changed: its `eventTime`, or its `muteUpdateTime` when later. Muting or unmuting a
 * finding leaves `eventTime` where it was: with `eventTime` alone, the message that muted a finding and the
 * one before it bore the same time, and the earlier one delivered again (Pub/Sub delivers at least once)
 * made the case active again — a ticket for a finding its owner had muted.
 */
function updatedAtOf(eventTime: string, muteUpdateTime: string | undefined, pre: string): string {
  if (!muteUpdateTime) return eventTime;
  const muteAt = toIso(muteUpdateTime, `${pre}finding.muteUpdateTime`);
  // Canonical UTC strings (toIso) compare as their instants do.
  return muteAt > eventTime ? muteAt : eventTime;
}

/**
 * Maps one decoded SCC NotificationMessage; throws FindingRejectedError naming the field.
 *
 * @example
 * const f = mapScc(message, '');
 * f.type === 'PUBLIC_BUCKET_ACL'; f.resource.account === 'acme-web-prod'; f.resource.accountNumber === '318274659012';
 */
export function mapScc(value: unknown, prefix: string): Finding {
  const pre = prefix ? `${prefix}.` : '';
  const m = parseOrReject(SccNotificationSchema, camelMessage(value), prefix);
  const f = m.finding;
  const name = checkId(f.name, `${pre}finding.name`);
  const tail = FINDING_TAIL.exec(name);
  if (!tail) return reject(`${pre}finding.name`, 'not an SCC finding name (…/sources/{source}/findings/{finding})');
  const canonical = `sources/${tail[1]}/findings/${tail[2]}`;
  const resourceName = checkId(f.resourceName, `${pre}finding.resourceName`);
  // One spelling per bucket (see canonicalResourceId); the one the message used stays beside it.
  const resourceId = canonicalResourceId(resourceName);
  const project = projectOf(m);
  if (!project.id)
    return reject(`${pre}resource.projectDisplayName`, 'missing project: no project id or number in the message');

  const severity = severityOf(f.severity, `${pre}finding.severity`);
  const muted = f.mute === 'MUTED';
  const inactive = f.state === 'INACTIVE';
  const status = inactive || muted ? 'resolved' : 'active';
  const kind = f.findingClass && DETECTION_CLASSES.has(f.findingClass) ? 'detection' : 'compliance';
  // Empty means not given: the name falls back to the resource name's last segment.
  const displayName = m.resource?.displayName || undefined;
  const created = firstTime([
    [f.createTime, `${pre}finding.createTime`],
    [f.eventTime, `${pre}finding.eventTime`],
  ]);
  const eventTime = f.eventTime ? toIso(f.eventTime, `${pre}finding.eventTime`) : created;
  // createTime is when SCC created the finding, moments after the detection it records: the first message's
  // eventTime is earlier, and is the first sighting (a ticket must not say first seen after last seen).
  // Canonical UTC strings compare as their instants do.
  const firstSeen = eventTime < created ? eventTime : created;
  const compliances = f.compliances ?? [];
  const explanation = str(f.sourceProperties, 'Explanation');
  const recommendation = str(f.sourceProperties, 'Recommendation');
  const description = f.description ?? explanation ?? '';
  // A category alone (PUBLIC_BUCKET_ACL) tells the ticket's reader little: §2 titles SCC findings by category
  // plus description. A dash, not a colon: ETD categories have colons of their own.
  const title = description === '' ? f.category : [f.category, ' — ', description].join('');
  const finding: Finding = {
    key: findingKey('gcp', canonical),
    source: 'scc',
    product: 'Security Command Center',
    sourceId: name,
    type: f.category,
    title: clip(title, 4096),
    description: clip(description, 65536),
    severity,
    sourceSeverity: f.severity ?? 'SEVERITY_UNSPECIFIED',
    status,
    muted,
    sample: false,
    kind,
    firstSeen,
    lastSeen: eventTime,
    updatedAt: updatedAtOf(eventTime, f.muteUpdateTime, pre),
    occurrences: 1,
    resource: {
      provider: 'gcp',
      id: resourceId,
      type: clip(m.resource?.type || SERVICE_HOST.exec(resourceId)?.[1] || 'unknown', 256),
      name: clip(displayName ?? lastSegment(resourceId), 1024),
      account: clip(project.id, 256),
      region: regionOf(resourceId, m.resource?.location),
      tags: EMPTY_TAGS,
      altIds: resourceId === resourceName ? EMPTY_LIST : [resourceName],
      details: Object.assign(detailsOf(resourceId, displayName, project.id, project.number), {
        findingClass: f.findingClass ?? null,
        findingName: name,
        sourceId: tail[1],
      }),
    },
    compliance: {
      controls: compliances.length === 0 ? EMPTY_LIST : compliances.flatMap((c) => c.ids ?? []),
      standards:
        compliances.length === 0
          ? EMPTY_LIST
          : compliances.flatMap((c) => (c.standard ? [c.version ? `${c.standard} ${c.version}` : c.standard] : [])),
    },
    ocsf: ocsfOf(kind, severity, status, muted, 1),
    raw: value,
  };
  if (project.number) finding.resource.accountNumber = project.number;
  if (muted) finding.statusReason = inactive ? 'state INACTIVE; muted' : 'muted';
  else if (inactive) finding.statusReason = 'state INACTIVE';
  if (f.externalUri) finding.link = f.externalUri;
  if (recommendation) finding.recommendation = recommendation;
  return finding;
}
