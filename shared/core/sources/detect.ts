/**
 * Source detection and envelope unwrapping, in the order of finding-formats §1 (the first rule that
 * matches decides; nothing is guessed). Envelopes (Event Grid arrays, CloudEvents, Pub/Sub push bodies,
 * EventBridge events, API list outputs) are kept apart from payloads: detection yields one
 * {@link DetectedUnit} per vendor finding, and the source modules map payloads.
 *
 * @see ../../../../shared/reference/finding-formats.md §1
 */
import type { Rejected, Source } from '../model/finding.js';
import { isRecord, joinPath, MAX_STRING_BYTES, preview, rejected, str } from './common.js';
import { isPascalGuardDuty } from './guardduty.js';

/** The payload formats the source modules map. */
export type UnitFormat = 'guardduty' | 'asff' | 'defender-alert' | 'defender-assessment' | 'scc';

/** One vendor finding found in an input, with its field path (`detail.findings[2]`, `[0].data`, `` for the root). */
export interface DetectedUnit {
  format: UnitFormat;
  path: string;
  value: unknown;
}

export const SOURCE_OF: Readonly<Record<UnitFormat, Source>> = {
  guardduty: 'guardduty',
  asff: 'securityhub',
  'defender-alert': 'defender',
  'defender-assessment': 'defender',
  scc: 'scc',
};

const PUBSUB_PUBLISHED = 'google.cloud.pubsub.topic.v1.messagePublished';
const EVENT_GRID_VALIDATION = 'Microsoft.EventGrid.SubscriptionValidationEvent';
const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

interface Sink {
  units: DetectedUnit[];
  rejected: Rejected[];
  input: string;
}

/**
 * Finds every vendor finding in one parsed input. Never throws; what it cannot place becomes a rejection.
 *
 * @example
 * detect(JSON.parse(eventBridgeSecurityHubEvent), 'events/sh.json');
 * // → { units: [{ format: 'asff', path: 'detail.findings[0]', value: {…} }], rejected: [] }
 */
export function detect(input: unknown, origin: string): { units: DetectedUnit[]; rejected: Rejected[] } {
  const sink: Sink = { units: [], rejected: [], input: origin };
  detectAt(input, '', sink);
  return { units: sink.units, rejected: sink.rejected };
}

const has = (o: Record<string, unknown>, key: string): boolean => Object.hasOwn(o, key);
// Both return undefined so that every branch can end in `return fail(…)` / `return emit(…)`.
const fail = (sink: Sink, source: Source | 'unknown', path: string, reason: string): undefined => {
  sink.rejected.push(rejected(sink.input, source, path, reason));
};
const emit = (sink: Sink, format: UnitFormat, path: string, value: unknown): undefined => {
  sink.units.push({ format, path, value });
};

function detectAt(value: unknown, path: string, sink: Sink): undefined {
  if (Array.isArray(value)) return detectArray(value, path, sink);
  if (!isRecord(value)) {
    const got = value === null ? 'null' : typeof value;
    return fail(sink, 'unknown', path, `unknown source: expected a JSON object or array, got ${got}`);
  }
  // Rule 2: CloudEvent (structured JSON).
  if (has(value, 'specversion')) return detectCloudEvent(value, path, sink);
  // Rule 3: Pub/Sub push body.
  const message = isRecord(value.message) ? value.message : undefined;
  if (message && typeof message.data === 'string' && has(value, 'subscription'))
    return detectPubSub(message.data, joinPath(path, 'message.data'), sink);
  // Rule 4: EventBridge.
  if (has(value, 'source') && has(value, 'detail-type') && has(value, 'detail'))
    return detectEventBridge(value, path, sink);
  // Rule 5: API / CLI list output.
  if (Array.isArray(value.Findings)) return detectList(value.Findings, joinPath(path, 'Findings'), sink);
  if (Array.isArray(value.findings)) return detectList(value.findings, joinPath(path, 'findings'), sink);
  return detectBare(value, path, sink, true);
}

/** Rules 6–9 on one object; `any` allows Defender/SCC (false inside an AWS list). Rejects when nothing matches. */
function detectBare(value: Record<string, unknown>, path: string, sink: Sink, any: boolean): undefined {
  if (value.SchemaVersion === '2018-10-08' && has(value, 'ProductArn')) return emit(sink, 'asff', path, value);
  if (isGuardDutyBare(value)) return emit(sink, 'guardduty', path, value);
  if (isOcsf(value)) return fail(sink, 'securityhub', path, 'unsupported: Security Hub V2 (OCSF) finding');
  if (any) {
    const format = defenderFormat(value) ?? (isSccMessage(value) ? 'scc' : undefined);
    if (format) return emit(sink, format, path, value);
  }
  fail(
    sink,
    'unknown',
    path,
    `unknown source: no rule of the detection order matches (top-level keys: ${describeKeys(value)})`,
  );
}

/** Rule 6b: `schemaVersion`/`SchemaVersion` "2.0" and an ARN containing `:guardduty:`, camel or Pascal. */
function isGuardDutyBare(value: Record<string, unknown>): boolean {
  const pascal = isPascalGuardDuty(value);
  const version = pascal ? value.SchemaVersion : value.schemaVersion;
  const arn = pascal ? value.Arn : value.arn;
  return version === '2.0' && typeof arn === 'string' && arn.includes(':guardduty:');
}

const isOcsf = (value: Record<string, unknown>): boolean => has(value, 'class_uid') && isRecord(value.metadata);

/** Rules 7 (assessment) and 8 (alert, ARM or workflow-automation shape). */
function defenderFormat(value: Record<string, unknown>): UnitFormat | undefined {
  const type = typeof value.type === 'string' ? value.type.toLowerCase() : '';
  const props = isRecord(value.properties) ? value.properties : undefined;
  if (type === 'microsoft.security/assessments') return 'defender-assessment';
  if (props && isRecord(props.status) && has(props.status, 'code') && has(props, 'resourceDetails'))
    return 'defender-assessment';
  if (type === 'microsoft.security/locations/alerts') return 'defender-alert';
  if (props && has(props, 'alertType')) return 'defender-alert';
  if (has(value, 'SystemAlertId') && has(value, 'AlertType')) return 'defender-alert';
  return undefined;
}

/** Rule 9: `finding` object plus `notificationConfigName` (or proto-style `notification_config_name`) or `resource`. */
const isSccMessage = (value: Record<string, unknown>): boolean =>
  isRecord(value.finding) &&
  (has(value, 'notificationConfigName') || has(value, 'notification_config_name') || has(value, 'resource'));

/** Rule 1 (Event Grid batch) and arrays of CloudEvents; anything else in an array is rejected item by item. */
function detectArray(items: readonly unknown[], path: string, sink: Sink): undefined {
  if (items.length === 0) return fail(sink, 'unknown', path, 'empty array: no findings');
  for (const [i, item] of items.entries()) {
    const at = joinPath(path, `[${i}]`);
    if (!isRecord(item)) fail(sink, 'unknown', at, 'unknown source: array item is not an object');
    else if (has(item, 'eventType') && has(item, 'data') && has(item, 'dataVersion') && has(item, 'subject'))
      detectEventGridItem(item, at, sink);
    else if (has(item, 'specversion')) detectCloudEvent(item, at, sink);
    else fail(sink, 'unknown', at, 'unknown source: array item is neither an Event Grid event nor a CloudEvent');
  }
}

function detectEventGridItem(item: Record<string, unknown>, path: string, sink: Sink): undefined {
  // The webhook handshake is not a finding: the HTTP endpoint must answer it with data.validationCode.
  if (item.eventType === EVENT_GRID_VALIDATION)
    return fail(
      sink,
      'defender',
      joinPath(path, 'eventType'),
      'Event Grid subscription validation event, not a finding: answer the handshake with data.validationCode',
    );
  // Defender reaches Event Grid through a deployment-defined topic: detect by the shape of data, never by eventType.
  return detectDefenderPayload(item.data, joinPath(path, 'data'), sink);
}

function detectDefenderPayload(data: unknown, path: string, sink: Sink): undefined {
  const format = isRecord(data) ? defenderFormat(data) : undefined;
  if (format) return emit(sink, format, path, data);
  fail(sink, 'unknown', path, 'unknown source: event data is neither a Defender alert nor a Defender assessment');
}

/** Rule 2: Pub/Sub messagePublished → decoded SCC message; any other type (Event Grid in CloudEvents schema) → data. */
function detectCloudEvent(event: Record<string, unknown>, path: string, sink: Sink): undefined {
  if (event.specversion !== '1.0')
    return fail(
      sink,
      'unknown',
      joinPath(path, 'specversion'),
      `unsupported CloudEvents version ${preview(event.specversion)}`,
    );
  if (event.type === PUBSUB_PUBLISHED) {
    const data = isRecord(event.data) ? event.data : undefined;
    const message = data && isRecord(data.message) ? data.message : undefined;
    const encoded = str(message, 'data');
    if (encoded === undefined)
      return fail(
        sink,
        'scc',
        joinPath(path, 'data.message.data'),
        'missing required field: base64 Pub/Sub message data',
      );
    return detectPubSub(encoded, joinPath(path, 'data.message.data'), sink);
  }
  if (!has(event, 'data'))
    return fail(sink, 'unknown', joinPath(path, 'data'), 'missing required field: CloudEvent data');
  return detectDefenderPayload(event.data, joinPath(path, 'data'), sink);
}

/** Rule 3 (and the CloudEvent form): base64 → JSON → rule 9. */
function detectPubSub(encoded: string, path: string, sink: Sink): undefined {
  if (encoded.length >= MAX_STRING_BYTES) return fail(sink, 'scc', path, 'string field of 1 MB or more');
  if (!BASE64.test(encoded)) return fail(sink, 'scc', path, 'not valid base64');
  let message: unknown;
  try {
    message = JSON.parse(Buffer.from(encoded, 'base64').toString('utf8'));
  } catch (e) {
    return fail(sink, 'scc', path, `base64 data is not JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (isRecord(message) && isSccMessage(message)) return emit(sink, 'scc', path, message);
  fail(sink, 'unknown', path, 'unknown source: the Pub/Sub message is not an SCC NotificationMessage');
}

/** Rule 4. */
function detectEventBridge(event: Record<string, unknown>, path: string, sink: Sink): undefined {
  const source = event.source;
  const detailType = event['detail-type'];
  const detailPath = joinPath(path, 'detail');
  if (source === 'aws.guardduty') {
    if (detailType !== 'GuardDuty Finding')
      return fail(
        sink,
        'guardduty',
        joinPath(path, 'detail-type'),
        `unsupported GuardDuty event ${preview(detailType)}`,
      );
    return emit(sink, 'guardduty', detailPath, event.detail);
  }
  if (source === 'aws.securityhub') {
    if (detailType === 'Findings Imported V2')
      return fail(sink, 'securityhub', joinPath(path, 'detail-type'), 'unsupported: Security Hub V2 (OCSF)');
    if (detailType !== 'Security Hub Findings - Imported' && detailType !== 'Security Hub Findings - Custom Action')
      return fail(
        sink,
        'securityhub',
        joinPath(path, 'detail-type'),
        `unsupported Security Hub event ${preview(detailType)}`,
      );
    const detail = isRecord(event.detail) ? event.detail : undefined;
    const findings = detail?.findings;
    if (!Array.isArray(findings))
      return fail(
        sink,
        'securityhub',
        joinPath(detailPath, 'findings'),
        'missing required field (expected an array of ASFF findings)',
      );
    if (findings.length === 0)
      return fail(sink, 'securityhub', joinPath(detailPath, 'findings'), 'empty findings array');
    for (const [i, f] of findings.entries()) emit(sink, 'asff', joinPath(detailPath, `findings[${i}]`), f);
    return;
  }
  fail(
    sink,
    'unknown',
    joinPath(path, 'source'),
    `unknown source: EventBridge source ${preview(source)} is not aws.guardduty or aws.securityhub`,
  );
}

/** Rule 5: decide per item with rules 6 and 6b. */
function detectList(items: readonly unknown[], path: string, sink: Sink): undefined {
  if (items.length === 0) return fail(sink, 'unknown', path, 'empty findings list');
  for (const [i, item] of items.entries()) {
    const at = joinPath(path, `[${i}]`);
    if (isRecord(item)) detectBare(item, at, sink, false);
    else fail(sink, 'unknown', at, 'unknown source: list item is not an object');
  }
}

function describeKeys(value: Record<string, unknown>): string {
  const keys = Object.keys(value);
  const shown = keys.slice(0, 6).map((k) => JSON.stringify(k.slice(0, 40)));
  return keys.length === 0 ? 'none' : `${shown.join(', ')}${keys.length > 6 ? ', …' : ''}`;
}
