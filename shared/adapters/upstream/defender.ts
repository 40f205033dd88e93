/**
 * Defender for Cloud: an alert is resolved through ARM (`POST …/locations/{ascLocation}/alerts/{alertName}/resolve`),
 * through @azure/arm-security's `alerts` operations (inject `new SecurityCenter(credential, subscriptionId).alerts`).
 * Assessments have no settable state: Defender re-evaluates them on its own schedule, so nothing is set.
 *
 * Note: @azure/arm-security 5.0.0 sends api-version 2021-11-01 for these operations; the resolve
 * operation and its path are the same in 2022-01-01 (alerts.json).
 * @see https://learn.microsoft.com/rest/api/defenderforcloud/alerts/update-subscription-level-state-to-resolve
 */
import * as z from 'zod';
import { AdapterError } from '../../core/errors.js';
import type { Finding } from '../../core/model/finding.js';
import type { AlertRef } from '../../core/remediation/remote.js';
import type { UpstreamResult, UpstreamStatus } from '../../core/verify/ports.js';

/** The response hook @azure/core-client calls (`OperationOptions.onResponse`), reduced to what we read. */
type OnResponse = (raw: { headers: { get(name: string): string | undefined } }) => void;

/** The two calls made, as `SecurityCenter.alerts` declares them. */
export interface DefenderAlertsClient {
  updateSubscriptionLevelStateToResolve(
    ascLocation: string,
    alertName: string,
    options?: { onResponse?: OnResponse; abortSignal?: AbortSignal },
  ): Promise<void>;
  updateResourceGroupLevelStateToResolve(
    ascLocation: string,
    alertName: string,
    resourceGroupName: string,
    options?: { onResponse?: OnResponse; abortSignal?: AbortSignal },
  ): Promise<void>;
}

const ARM_ALERT_ID =
  /^\/subscriptions\/([^/]+)(?:\/resourceGroups\/([^/]+))?\/providers\/Microsoft\.Security\/locations\/([^/]+)\/alerts\/([^/]+)$/i;

const ArmAlertSchema = z.looseObject({ id: z.string(), properties: z.looseObject({ alertType: z.string() }) });
const WorkflowAlertSchema = z.looseObject({ SystemAlertId: z.string(), AlertUri: z.string().optional() });
const AssessmentSchema = z.looseObject({ properties: z.looseObject({ status: z.looseObject({ code: z.string() }) }) });

/** Where the alert lives: from the ARM id, else from the workflow payload's portal link. */
export function alertRef(raw: unknown): AlertRef | 'assessment' | undefined {
  const arm = ArmAlertSchema.safeParse(raw);
  if (arm.success) {
    const m = ARM_ALERT_ID.exec(arm.data.id);
    if (m?.[1] && m[3] && m[4])
      return { subscriptionId: m[1], resourceGroup: m[2], ascLocation: m[3], alertName: m[4] };
    return undefined;
  }
  const wf = WorkflowAlertSchema.safeParse(raw);
  if (wf.success) {
    // AlertUri: …/alertId/{id}/subscriptionId/{sub}/resourceGroup/{rg}/referencedFrom/…/location/{loc}
    const part = (name: string) => new RegExp(`/${name}/([^/?#]+)`).exec(wf.data.AlertUri ?? '')?.[1];
    const sub = part('subscriptionId');
    const loc = part('location');
    if (sub && loc)
      return {
        subscriptionId: sub,
        resourceGroup: part('resourceGroup'),
        ascLocation: loc,
        alertName: wf.data.SystemAlertId,
      };
    return undefined;
  }
  return AssessmentSchema.safeParse(raw).success ? 'assessment' : undefined;
}

/** Why nothing is set for a Defender finding that is not an alert with a known place. */
export const unsettable = (
  ref: 'assessment' | undefined,
): { outcome: 'not-applicable' | 'not-updated'; detail: string } =>
  ref === 'assessment'
    ? {
        outcome: 'not-applicable',
        detail: 'Defender assessments have no settable state; Defender re-evaluates them itself',
      }
    : { outcome: 'not-updated', detail: 'alert location (ascLocation) not found in the event' };

/**
 * How long resolving one alert may take. The ARM pipeline sleeps whatever Retry-After a throttled call is
 * given, uncapped: without a deadline a throttled resolve held the spoke's request until its host killed it.
 */
export const DEFENDER_RESOLVE_TIMEOUT_MS = 30_000;

export class DefenderUpstream implements UpstreamStatus {
  constructor(
    private readonly opts: {
      alertsFor: (subscriptionId: string) => DefenderAlertsClient;
      /** Deadline of one resolve, the SDK's retries and waits included (default {@link DEFENDER_RESOLVE_TIMEOUT_MS}). */
      timeoutMs?: number;
    },
  ) {}

  async markResolved(finding: Finding): Promise<UpstreamResult> {
    const ref = alertRef(finding.raw);
    if (ref === undefined || ref === 'assessment')
      return { source: finding.source, api: null, requestId: null, ...unsettable(ref) };
    return this.resolveAlert(ref, finding.source);
  }

  /** Resolves the alert at its place (the spoke, given the place by the hub). */
  async resolveAlert(ref: AlertRef, source: Finding['source'] = 'defender') {
    let requestId: string | null = null;
    const onResponse: OnResponse = (raw) => {
      requestId = raw.headers.get('x-ms-request-id') ?? null;
    };
    const alerts = this.opts.alertsFor(ref.subscriptionId);
    // A deadline over the SDK's own retries: its throttling policy sleeps whatever Retry-After ARM sends.
    const timeoutMs = this.opts.timeoutMs ?? DEFENDER_RESOLVE_TIMEOUT_MS;
    const options = { onResponse, abortSignal: AbortSignal.timeout(timeoutMs) };
    try {
      if (ref.resourceGroup) {
        await alerts.updateResourceGroupLevelStateToResolve(ref.ascLocation, ref.alertName, ref.resourceGroup, options);
      } else {
        await alerts.updateSubscriptionLevelStateToResolve(ref.ascLocation, ref.alertName, options);
      }
    } catch (e) {
      if (e instanceof Error && e.name === 'AbortError')
        throw new AdapterError('transient', `resolve alert ${ref.alertName}: no answer within ${timeoutMs} ms`, {
          cause: e,
        });
      throw e;
    }
    return {
      source,
      outcome: 'updated' as const,
      api: 'Microsoft.Security/locations/alerts/resolve',
      requestId,
      detail: `alert ${ref.alertName} resolved in ${ref.ascLocation}`,
    };
  }
}
