/**
 * GCP spoke remediation: the hub's API destination posts a `Remediation Requested` event; this runs the
 * named GCP action (plan → apply, verify or rollback), or sets a verified SCC finding INACTIVE, under the function's service account (the custom
 * role of infra/gcp/main.tf) and reports the result to the hub bus. The caller is authenticated by
 * `x-closeloop-secret` (constant time, against the Secret Manager-backed env var).
 */
import { http } from '@google-cloud/functions-framework';
import { createCloudClients } from '../../shared/actions/clients.js';
import { actionRegistry } from '../../shared/actions/registry.js';
import { REMOTE_SECRET_HEADER } from '../../shared/adapters/bus/spoke.js';
import { handleRemoteRequest } from '../../shared/adapters/bus/spoke-remote.js';
import { lazyResolver, sccResolver } from '../../shared/adapters/upstream/spoke.js';
import { createGcpSpoke } from '../../shared/adapters/wiring/gcp.js';
import { liveOwnerLookup } from '../../shared/adapters/wiring/lookup.js';
import { systemClock } from '../../shared/core/ports.js';

const spoke = createGcpSpoke(process.env);
// Clients are built on first use, with Application Default Credentials = the function's service account.
const clients = createCloudClients({});
// The skip tag re-read from the live resource just before an apply, under the same identity; fresh: the
// project's labels are read again too (a project-level skip label set a minute ago stops the fix).
const tags = liveOwnerLookup(['gcp'], { fresh: true });
// SCC findings the hub verified fixed are set INACTIVE here, under the same identity (SCC client loaded on
// the first such request).
const upstream = lazyResolver(async () => {
  const { SecurityCenterClient } = await import('@google-cloud/security-center');
  return sccResolver(new SecurityCenterClient(), systemClock);
});

/** The Functions Framework's request/response, as far as this handler uses them (Express underneath). */
interface HttpIn {
  method: string;
  body: unknown;
  get(header: string): string | undefined;
}
interface HttpOut {
  status(code: number): { json(body: unknown): void };
}

export async function remediate(req: HttpIn, res: HttpOut): Promise<void> {
  if (req.method !== 'POST') {
    res.status(405).json({ error: 'POST only' });
    return;
  }
  const answer = await handleRemoteRequest(req.body, req.get(REMOTE_SECRET_HEADER), {
    spoke: 'gcp',
    env: process.env,
    log: spoke.log,
    actions: actionRegistry,
    ctx: { clients, clock: systemClock, log: spoke.log },
    clock: systemClock,
    actor: 'closeloop@gcp-spoke',
    report: (result) => spoke.hub.report(result),
    tags,
    upstream,
  });
  res.status(answer.status).json(answer.body);
}

http('remediate', remediate);
