/**
 * Microsoft Defender for Cloud security alerts and recommendations (assessments) → the closeloop Finding
 * (finding-formats §2–§5, §8). Alerts come in the ARM/REST shape (`properties.alertType`, also what
 * continuous export sends) or the flat PascalCase workflow-automation (Logic App) shape (`SystemAlertId`,
 * `AlertType`); both are read into one {@link AlertFields} first. Defender carries no resource tags.
 *
 * `resource.details` keys: `subscriptionId`, `resourceGroup`, `storageAccount` (storage accounts),
 * `vmName` (virtual machines), and for alerts `alertName` (= systemAlertId, the `{alertName}` of the
 * resolve/dismiss API), `ascLocation`, `alertId` (ARM id, when given), `compromisedEntity`; for assessments
 * `assessmentKey`, `assessmentId`, `policyDefinitionId`.
 *
 * @see https://learn.microsoft.com/rest/api/defenderforcloud/alerts
 * @see https://learn.microsoft.com/rest/api/defenderforcloud/assessments
 * @see https://learn.microsoft.com/connectors/ascalert/
 */
import * as z from 'zod';
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
  reject,
  severityFromLabel,
  str,
  toIso,
} from './common.js';

const Time = z.string().optional();

/**
 * A Defender alert, ARM/REST shape (Alerts API 2022-01-01).
 *
 * @example
 * { "id": "/subscriptions/6c1f…/resourceGroups/rg-media/providers/Microsoft.Security/locations/westeurope/alerts/2517…_3c1d…",
 *   "name": "2517…_3c1d…", "type": "Microsoft.Security/Locations/alerts",
 *   "properties": { "alertType": "VM_MinerInContainerImage", "systemAlertId": "2517…_3c1d…", "severity": "High",
 *     "status": "Active", "startTimeUtc": "…", "resourceIdentifiers": [{ "type": "AzureResource", "azureResourceId": "/subscriptions/…" }] } }
 * @see https://github.com/Azure/azure-rest-api-specs/blob/main/specification/security/resource-manager/Microsoft.Security/stable/2022-01-01/alerts.json
 */
export const DefenderAlertSchema = z.looseObject({
  id: z.string().optional(),
  name: z.string().optional(),
  type: z.string().optional(),
  properties: z.looseObject({
    alertType: z.string().min(1).max(512),
    systemAlertId: z.string().min(1).optional(),
    alertDisplayName: z.string().optional(),
    description: z.string().optional(),
    severity: z.string(),
    status: z.string().optional(),
    startTimeUtc: Time,
    endTimeUtc: Time,
    timeGeneratedUtc: Time,
    processingEndTimeUtc: Time,
    compromisedEntity: z.string().optional(),
    alertUri: z.string().optional(),
    remediationSteps: z.array(z.string()).optional(),
    resourceIdentifiers: z
      .array(z.looseObject({ type: z.string().optional(), azureResourceId: z.string().optional() }))
      .optional(),
    entities: z.array(z.unknown()).optional(),
  }),
});

/**
 * A Defender alert as the workflow-automation trigger (connector `ascalert`) posts it: flat PascalCase.
 *
 * @example
 * { "SystemAlertId": "2517…_3c1d…", "AlertType": "Storage.Blob_OpenACL", "Severity": "Medium", "Status": "Active",
 *   "AzureResourceId": "/subscriptions/6c1f…/resourceGroups/rg-media/providers/Microsoft.Storage/storageAccounts/stacmemedia01",
 *   "StartTimeUtc": "…", "ResourceIdentifiers": [{ "Type": "AzureResource", "AzureResourceId": "…" }] }
 * @see https://learn.microsoft.com/connectors/ascalert/
 */
export const DefenderWorkflowAlertSchema = z.looseObject({
  SystemAlertId: z.string().min(1),
  AlertType: z.string().min(1).max(512),
  AlertDisplayName: z.string().optional(),
  Description: z.string().optional(),
  Severity: z.string(),
  Status: z.string().optional(),
  StartTimeUtc: Time,
  EndTimeUtc: Time,
  TimeGenerated: Time,
  ProcessingEndTime: Time,
  CompromisedEntity: z.string().optional(),
  AzureResourceId: z.string().optional(),
  AlertUri: z.string().optional(),
  RemediationSteps: z.array(z.string()).optional(),
  ResourceIdentifiers: z
    .array(z.looseObject({ Type: z.string().optional(), AzureResourceId: z.string().optional() }))
    .optional(),
  Entities: z.array(z.unknown()).optional(),
});

/**
 * A Defender recommendation (assessment), ARM/REST shape (Assessments API 2021-06-01), also with the
 * continuous-export `AssessmentEventDataEnrichment` member. `resourceDetails` keys are read in either case.
 *
 * @example
 * { "id": "/subscriptions/6c1f…/…/storageAccounts/stacmeshared01/providers/Microsoft.Security/assessments/0000…",
 *   "name": "0000…", "type": "Microsoft.Security/assessments",
 *   "properties": { "resourceDetails": { "source": "Azure", "id": "/subscriptions/6c1f…/…/storageAccounts/stacmeshared01" },
 *     "displayName": "Storage account public access should be disallowed", "status": { "code": "Unhealthy", … },
 *     "metadata": { "policyDefinitionId": "/providers/Microsoft.Authorization/policyDefinitions/4fa4b6c0-…", "severity": "Medium" } } }
 * @see https://learn.microsoft.com/rest/api/defenderforcloud/assessments/get
 */
export const DefenderAssessmentSchema = z.looseObject({
  id: z.string().optional(),
  name: z.string().optional(),
  type: z.string().optional(),
  properties: z.looseObject({
    resourceDetails: JsonObjectSchema,
    displayName: z.string().optional(),
    status: z.looseObject({
      code: z.string(),
      cause: z.string().optional(),
      description: z.string().optional(),
      firstEvaluationDate: Time,
      statusChangeDate: Time,
    }),
    metadata: z
      .looseObject({
        displayName: z.string().optional(),
        policyDefinitionId: z.string().optional(),
        description: z.string().optional(),
        remediationDescription: z.string().optional(),
        severity: z.string().optional(),
      })
      .optional(),
    links: z.looseObject({ azurePortalUri: z.string().optional(), azurePortal: z.string().optional() }).optional(),
  }),
});

/** The alert fields closeloop reads, whichever shape they came in. */
interface AlertFields {
  armId: string | undefined;
  systemAlertId: string;
  alertType: string;
  displayName: string | undefined;
  description: string | undefined;
  severity: string;
  status: string | undefined;
  start: string | undefined;
  end: string | undefined;
  processed: string | undefined;
  generated: string | undefined;
  compromisedEntity: string | undefined;
  resourceId: string | undefined;
  alertUri: string | undefined;
  remediationSteps: string[];
  /** Field paths, for rejections, relative to the alert. */
  paths: { id: string; resource: string; severity: string; start: string; end: string; updated: string };
}

const SUBSCRIPTION = /\/subscriptions\/([^/]+)/i;
const RESOURCE_GROUP = /\/resourceGroups\/([^/]+)/i;
const ASC_LOCATION = /\/locations\/([^/]+)\/alerts\//i;
const URI_LOCATION = /\/location\/([^/?#]+)/i;
const ASSESSMENT_SUFFIX = /\/providers\/Microsoft\.Security\/assessments\/[^/]+$/i;

/** The ARM resource type from an id: `…/providers/Microsoft.Storage/storageAccounts/x` → `Microsoft.Storage/storageAccounts`. */
export function armType(id: string): string {
  const lower = id.toLowerCase();
  const at = lower.lastIndexOf('/providers/');
  if (at === -1)
    return lower.includes('/resourcegroups/')
      ? 'Microsoft.Resources/resourceGroups'
      : 'Microsoft.Resources/subscriptions';
  const parts = id.slice(at + '/providers/'.length).split('/');
  // namespace / type / name / subtype / subname …: keep the namespace and every type segment.
  const types = parts.filter((_, i) => i === 0 || i % 2 === 1);
  return types.join('/');
}

function entityResourceId(entities: readonly unknown[] | undefined): string | undefined {
  for (const e of entities ?? []) {
    if (!isRecord(e)) continue;
    const type = str(e, 'Type') ?? str(e, 'type');
    if (type?.toLowerCase() === 'azure-resource') {
      const id = str(e, 'ResourceId') ?? str(e, 'resourceId');
      if (id) return id;
    }
  }
  return undefined;
}

function readArmAlert(value: unknown, prefix: string, pre: string): AlertFields {
  const a = parseOrReject(DefenderAlertSchema, value, prefix);
  const p = a.properties;
  const ident = p.resourceIdentifiers?.find((r) => r.type === 'AzureResource' && r.azureResourceId);
  const systemAlertId = p.systemAlertId ?? a.name;
  if (!systemAlertId) return reject(`${pre}properties.systemAlertId`, 'missing required field (expected string)');
  return {
    armId: a.id,
    systemAlertId,
    alertType: p.alertType,
    displayName: p.alertDisplayName,
    description: p.description,
    severity: p.severity,
    status: p.status,
    start: p.startTimeUtc,
    end: p.endTimeUtc,
    processed: p.processingEndTimeUtc,
    generated: p.timeGeneratedUtc,
    compromisedEntity: p.compromisedEntity,
    resourceId: ident?.azureResourceId ?? entityResourceId(p.entities),
    alertUri: p.alertUri,
    remediationSteps: p.remediationSteps ?? [],
    paths: {
      id: `${pre}properties.systemAlertId`,
      resource: `${pre}properties.resourceIdentifiers`,
      severity: `${pre}properties.severity`,
      start: `${pre}properties.startTimeUtc`,
      end: `${pre}properties.endTimeUtc`,
      updated: `${pre}properties.processingEndTimeUtc`,
    },
  };
}

function readWorkflowAlert(value: unknown, prefix: string, pre: string): AlertFields {
  const a = parseOrReject(DefenderWorkflowAlertSchema, value, prefix);
  const ident = a.ResourceIdentifiers?.find((r) => r.Type === 'AzureResource' && r.AzureResourceId);
  return {
    armId: undefined,
    systemAlertId: a.SystemAlertId,
    alertType: a.AlertType,
    displayName: a.AlertDisplayName,
    description: a.Description,
    severity: a.Severity,
    status: a.Status,
    start: a.StartTimeUtc,
    end: a.EndTimeUtc,
    processed: a.ProcessingEndTime,
    generated: a.TimeGenerated,
    compromisedEntity: a.CompromisedEntity,
    resourceId: ident?.AzureResourceId ?? a.AzureResourceId ?? entityResourceId(a.Entities),
    alertUri: a.AlertUri,
    remediationSteps: a.RemediationSteps ?? [],
    paths: {
      id: `${pre}SystemAlertId`,
      resource: `${pre}ResourceIdentifiers`,
      severity: `${pre}Severity`,
      start: `${pre}StartTimeUtc`,
      end: `${pre}EndTimeUtc`,
      updated: `${pre}ProcessingEndTime`,
    },
  };
}

function severityOf(label: string | undefined, path: string): Severity {
  if (label === undefined) return 'informational';
  const s = severityFromLabel(label);
  if (!s)
    return reject(
      path,
      `unknown severity "${clip(label, 40)}" (expected Informational, Low, Medium, High or Critical)`,
    );
  return s;
}

/** Subscription, resource group and the names actions need, from an Azure resource id. */
function azureResource(id: string, path: string) {
  checkId(id, path);
  const sub = SUBSCRIPTION.exec(id)?.[1];
  if (!sub) return reject(path, 'not an Azure resource id: no /subscriptions/{id} segment');
  const type = armType(id);
  const name = lastSegment(id);
  const lowerType = type.toLowerCase();
  const details: Record<string, unknown> = {
    subscriptionId: sub.toLowerCase(),
    resourceGroup: RESOURCE_GROUP.exec(id)?.[1] ?? null,
  };
  if (lowerType === 'microsoft.storage/storageaccounts') details.storageAccount = name;
  if (lowerType === 'microsoft.compute/virtualmachines') details.vmName = name;
  return { account: sub.toLowerCase(), type, name, details };
}

/**
 * Maps one Defender alert (ARM or workflow-automation shape); throws FindingRejectedError naming the field.
 *
 * @example
 * const f = mapDefenderAlert(body, '');
 * f.type === 'Storage.Blob_OpenACL'; f.resource.account === '6c1f3d2a-9b4e-4f7a-8d2c-5e0b1a7c9f36';
 */
export function mapDefenderAlert(value: unknown, prefix: string): Finding {
  const pre = prefix ? `${prefix}.` : '';
  const workflow = isRecord(value) && Object.hasOwn(value, 'SystemAlertId');
  const a = workflow ? readWorkflowAlert(value, prefix, pre) : readArmAlert(value, prefix, pre);
  const alertId = checkId(a.systemAlertId, a.paths.id, 256);
  if (!a.resourceId) return reject(a.paths.resource, 'missing resource: no AzureResource identifier in the alert');
  const res = azureResource(a.resourceId, a.paths.resource);
  const severity = severityOf(a.severity, a.paths.severity);
  const statusText = a.status ?? 'Active';
  const resolved = statusText === 'Resolved' || statusText === 'Dismissed';
  // Dismissed is Defender's "false positive or not relevant": closed there, but an accepted risk, not a fix
  // (as Security Hub SUPPRESSED and SCC MUTED are), so its case is suppressed rather than verified as fixed.
  const muted = statusText === 'Dismissed';
  const status = resolved ? 'resolved' : 'active';
  const ascLocation =
    (a.armId && ASC_LOCATION.exec(a.armId)?.[1]) || (a.alertUri && URI_LOCATION.exec(a.alertUri)?.[1]);
  const firstSeen = firstTime([
    [a.start, a.paths.start],
    [a.generated, a.paths.updated],
  ]);
  const lastSeen = a.end ? toIso(a.end, a.paths.end) : firstSeen;
  const updatedAt = a.processed
    ? toIso(a.processed, a.paths.updated)
    : a.generated
      ? toIso(a.generated, a.paths.updated)
      : lastSeen;
  const finding: Finding = {
    key: findingKey('azure', alertId.toLowerCase()),
    source: 'defender',
    product: 'Defender for Cloud',
    sourceId: alertId,
    type: a.alertType,
    title: clip(a.displayName ?? a.alertType, 4096),
    description: clip(a.description ?? '', 65536),
    severity,
    sourceSeverity: a.severity,
    status,
    muted,
    sample: false,
    kind: 'detection',
    firstSeen,
    lastSeen,
    updatedAt,
    occurrences: 1,
    resource: {
      provider: 'azure',
      id: a.resourceId,
      type: res.type,
      name: clip(a.compromisedEntity || res.name, 1024),
      account: res.account,
      region: null,
      tags: EMPTY_TAGS,
      altIds: EMPTY_LIST,
      details: Object.assign(res.details, {
        alertName: alertId,
        ascLocation: ascLocation || null,
        alertId: a.armId ?? null,
        compromisedEntity: a.compromisedEntity ?? null,
      }),
    },
    compliance: { controls: EMPTY_LIST, standards: EMPTY_LIST },
    ocsf: ocsfOf('detection', severity, status, muted, 1, statusText === 'InProgress'),
    raw: value,
  };
  if (resolved) finding.statusReason = `alert status ${statusText}`;
  if (a.alertUri) finding.link = a.alertUri;
  if (a.remediationSteps.length > 0) finding.recommendation = a.remediationSteps.join('\n');
  return finding;
}

/**
 * Maps one Defender assessment; throws FindingRejectedError naming the field.
 *
 * @example
 * const f = mapDefenderAssessment(assessment, '');
 * f.type === '/providers/Microsoft.Authorization/policyDefinitions/4fa4b6c0-31ca-4c0d-b10d-24b96f62a751'; f.kind === 'compliance';
 */
export function mapDefenderAssessment(value: unknown, prefix: string): Finding {
  const pre = prefix ? `${prefix}.` : '';
  const a = parseOrReject(DefenderAssessmentSchema, value, prefix);
  const p = a.properties;
  const rd = p.resourceDetails;
  const detailSource = str(rd, 'source') ?? str(rd, 'Source');
  if (detailSource && detailSource.toLowerCase() !== 'azure')
    reject(
      `${pre}properties.resourceDetails.source`,
      `unsupported: multicloud connector assessment (source ${clip(detailSource, 40)})`,
    );
  const resourceId = str(rd, 'id') ?? str(rd, 'Id') ?? (a.id ? a.id.replace(ASSESSMENT_SUFFIX, '') : undefined);
  if (!resourceId || resourceId === a.id)
    return reject(`${pre}properties.resourceDetails.id`, 'missing resource: no resourceDetails.id');
  const res = azureResource(resourceId, `${pre}properties.resourceDetails.id`);
  const assessmentKey = a.name ?? (a.id ? lastSegment(a.id) : undefined);
  const armId =
    a.id ?? (assessmentKey ? `${resourceId}/providers/Microsoft.Security/assessments/${assessmentKey}` : undefined);
  if (!armId) return reject(`${pre}id`, 'missing required field: neither id nor name');
  checkId(armId, `${pre}id`);

  const code = p.status.code;
  let status: Finding['status'];
  let statusReason: string | undefined;
  if (code === 'Unhealthy') status = 'active';
  else if (code === 'Healthy') {
    status = 'resolved';
    statusReason = 'assessment Healthy';
  } else if (code === 'NotApplicable') {
    status = 'resolved';
    statusReason = `not applicable${p.status.cause ? ` (${p.status.cause})` : ''}`;
  } else
    return reject(
      `${pre}properties.status.code`,
      `unknown status "${clip(code, 40)}" (expected Healthy, Unhealthy or NotApplicable)`,
    );

  // An exemption (waiver or mitigated elsewhere) accepts the risk on this resource: it is not fixed, so its
  // case is suppressed as a muted finding is, never verified by re-reading a resource nobody will change.
  const muted = code === 'NotApplicable' && p.status.cause === 'Exempt';
  const severity = severityOf(p.metadata?.severity, `${pre}properties.metadata.severity`);
  const policy = p.metadata?.policyDefinitionId;
  const type = policy ?? p.metadata?.displayName ?? p.displayName ?? assessmentKey;
  if (!type)
    return reject(
      `${pre}properties.metadata.policyDefinitionId`,
      'missing required field: no policy definition or name',
    );
  const firstSeen = firstTime([
    [p.status.firstEvaluationDate, `${pre}properties.status.firstEvaluationDate`],
    [p.status.statusChangeDate, `${pre}properties.status.statusChangeDate`],
  ]);
  const changed = p.status.statusChangeDate
    ? toIso(p.status.statusChangeDate, `${pre}properties.status.statusChangeDate`)
    : firstSeen;
  const finding: Finding = {
    key: findingKey('azure', armId.toLowerCase()),
    source: 'defender',
    product: 'Defender for Cloud',
    sourceId: armId,
    type: clip(type, 512),
    title: clip(p.displayName ?? p.metadata?.displayName ?? type, 4096),
    description: clip(p.metadata?.description ?? p.status.description ?? '', 65536),
    severity,
    sourceSeverity: p.metadata?.severity ?? 'unspecified',
    status,
    muted,
    sample: false,
    kind: 'compliance',
    firstSeen,
    lastSeen: changed,
    updatedAt: changed,
    occurrences: 1,
    resource: {
      provider: 'azure',
      id: resourceId,
      type: res.type,
      name: clip(res.name, 1024),
      account: res.account,
      region: null,
      tags: EMPTY_TAGS,
      altIds: EMPTY_LIST,
      details: Object.assign(res.details, {
        assessmentKey: assessmentKey ?? null,
        assessmentId: armId,
        policyDefinitionId: policy ?? null,
      }),
    },
    compliance: { controls: policy ? [policy] : EMPTY_LIST, standards: EMPTY_LIST, status: code },
    ocsf: ocsfOf('compliance', severity, status, muted, 1),
    raw: value,
  };
  if (statusReason) finding.statusReason = statusReason;
  const link = p.links?.azurePortalUri ?? p.links?.azurePortal;
  if (link) finding.link = link.startsWith('http') ? link : `https://${link}`;
  if (p.metadata?.remediationDescription) finding.recommendation = p.metadata.remediationDescription;
  return finding;
}
