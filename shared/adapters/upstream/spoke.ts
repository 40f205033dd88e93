/**
 * Marking Defender alerts and SCC findings resolved from the AWS hub: the hub holds no Azure or Google
 * credentials, so its verifier hands the finding to the spoke of that cloud (`resolve`, through the same
 * remote executor as remediation), which sets the state under its own identity and answers on the hub bus.
 *
 * - Hub: {@link RemoteUpstream} (an `UpstreamStatus` for the `defender` and `scc` sources): `requested`.
 * - Spokes: {@link defenderResolver}, {@link sccResolver} (an `UpstreamResolver` for `executeRemote`).
 */
import type { Finding } from '../../core/model/finding.js';
import { caseKeyOf } from '../../core/pipeline/decide.js';
import type { Clock } from '../../core/ports.js';
import type { RemoteExecutor, UpstreamRef, UpstreamResolver } from '../../core/remediation/remote.js';
import { shortHash } from '../../core/util/hash.js';
import type { UpstreamResult, UpstreamStatus } from '../../core/verify/ports.js';
import { alertRef, type DefenderAlertsClient, DefenderUpstream, unsettable } from './defender.js';
import { type SccFindingStateClient, SccUpstream } from './scc.js';

/** The placeholder action name of a `resolve` request (it runs no remediation action). */
export const RESOLVE_ACTION = 'upstream.resolve';

/**
 * The hub's side: asks the spoke of the finding's cloud to mark it resolved. A Defender assessment (no
 * settable state) or an alert without its place is answered here, without asking. The request id derives
 * from the finding's state and the day, so re-checks of the same state ask at most once a day (the spoke's
 * answer is recorded by the verifier, idempotently, when it comes back).
 */
export class RemoteUpstream implements UpstreamStatus {
  constructor(private readonly opts: { executor: RemoteExecutor; actor: string; clock: Clock }) {}

  async markResolved(finding: Finding): Promise<UpstreamResult> {
    const provider = finding.resource.provider;
    if ((finding.source !== 'defender' && finding.source !== 'scc') || !this.opts.executor.runs(provider)) {
      return {
        source: finding.source,
        outcome: 'not-updated',
        api: null,
        requestId: null,
        detail: `no ${provider} spoke marks ${finding.source} findings resolved`,
      };
    }
    const ref: UpstreamRef = { key: finding.key, source: finding.source, sourceId: finding.sourceId };
    if (finding.source === 'defender') {
      const alert = alertRef(finding.raw);
      if (alert === undefined || alert === 'assessment')
        return { source: finding.source, api: null, requestId: null, ...unsettable(alert) };
      ref.alert = alert;
    }
    const requestId = `up-${shortHash(`${finding.key}|${finding.updatedAt}|${this.opts.clock.now().toISOString().slice(0, 10)}`)}`;
    await this.opts.executor.dispatch({
      requestId,
      caseKey: caseKeyOf(finding),
      provider,
      action: RESOLVE_ACTION,
      op: 'resolve',
      target: null,
      finding: ref,
      actor: this.opts.actor,
    });
    return {
      source: finding.source,
      outcome: 'requested',
      api: null,
      requestId,
      detail: `asked the ${provider} spoke to mark it resolved (${requestId}); its answer is recorded when it comes`,
    };
  }
}

/** The Azure spoke's side: resolves the alert at the place the hub read from the event. */
export function defenderResolver(alertsFor: (subscriptionId: string) => DefenderAlertsClient): UpstreamResolver {
  const defender = new DefenderUpstream({ alertsFor });
  return {
    async resolve(finding) {
      if (finding.source !== 'defender' || !finding.alert)
        return { source: finding.source, api: null, requestId: null, ...unsettable(undefined) };
      return defender.resolveAlert(finding.alert);
    },
  };
}

/** The GCP spoke's side: sets the SCC finding INACTIVE by its name. */
export function sccResolver(client: SccFindingStateClient, clock: Clock): UpstreamResolver {
  const scc = new SccUpstream({ client, clock });
  return {
    async resolve(finding) {
      if (finding.source !== 'scc')
        return {
          source: finding.source,
          outcome: 'not-updated',
          api: null,
          requestId: null,
          detail: `the GCP spoke marks only SCC findings resolved, not ${finding.source}`,
        };
      return scc.markResolved(finding);
    },
  };
}

/**
 * A resolver whose SDK is loaded on its first use (a `resolve` request), not in the spoke's cold start;
 * a failed load is tried again on the next request.
 */
export function lazyResolver(load: () => Promise<UpstreamResolver>): UpstreamResolver {
  let loaded: Promise<UpstreamResolver> | undefined;
  return {
    async resolve(finding, note) {
      loaded ??= load().catch((e: unknown) => {
        loaded = undefined;
        throw e;
      });
      return (await loaded).resolve(finding, note);
    },
  };
}
