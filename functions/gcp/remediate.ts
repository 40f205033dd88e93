/**
 * GCP spoke remediation: the hub's API destination posts a `Remediation Requested` event to `remediate`,
 * which checks it and publishes it to the Pub/Sub topic `CLOSELOOP_REMEDIATE_TOPIC`, answering 202 at once
 * (an API destination gives up after 5 seconds; an apply with its Compute operation wait takes longer).
 * The topic's push subscription (infra/gcp/main.tf) delivers it to `remediateQueued`, which runs the named
 * GCP action (plan → apply, verify or rollback), or sets a verified SCC finding INACTIVE, under the
 * spoke's service account (the custom role of infra/gcp/main.tf) and reports the result to the hub bus.
 * `remediate`, open to the internet, runs as an account of its own that may read its secret and publish to
 * that topic, nothing else: it builds nothing at load that needs the spoke's settings or identity.
 * A run that throws answers an error, so Pub/Sub redelivers, and after the subscription's
 * max_delivery_attempts moves it to the dead-letter topic; a message that is no request for this spoke is
 * published there at once with its reason (attribute `reason`) and acknowledged. The caller of `remediate`
 * is authenticated by `x-closeloop-secret` (constant time, against the Secret Manager-backed env var).
 */
import { type CloudEvent, cloudEvent, http } from '@google-cloud/functions-framework';
import * as z from 'zod';
import { createCloudClients } from '../../shared/actions/clients.js';
import { actionRegistry } from '../../shared/actions/registry.js';
import { documentFromPubSub, pubsubPublisher, UnreadableMessageError } from '../../shared/adapters/bus/pubsub.js';
import { REMOTE_SECRET_HEADER } from '../../shared/adapters/bus/spoke.js';
import { queueRemoteRequest, runRemoteRequest } from '../../shared/adapters/bus/spoke-remote.js';
import { lazyResolver, sccResolver } from '../../shared/adapters/upstream/spoke.js';
import { cloudLogger, createGcpSpoke, gcpAccessTokens } from '../../shared/adapters/wiring/gcp.js';
import { liveOwnerLookup } from '../../shared/adapters/wiring/lookup.js';
import { ConfigError } from '../../shared/core/errors.js';
import { systemClock } from '../../shared/core/ports.js';

const log = cloudLogger();
// The worker's spoke (its settings, the hub forwarder), built on its first message: `remediate` is deployed
// without the hub's settings, under an account the hub does not trust, and must load without them.
let built: ReturnType<typeof createGcpSpoke> | undefined;
const workerSpoke = () => {
  built ??= createGcpSpoke(process.env, { log });
  return built;
};
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

/**
 * A topic infra/gcp/main.tf names (`projects/<project>/topics/<name>`), read when first needed: each entry
 * point is deployed with its own (remediate: CLOSELOOP_REMEDIATE_TOPIC, where it queues what it accepted;
 * remediateQueued: CLOSELOOP_REMEDIATE_DEAD_LETTER_TOPIC, where it sets aside what it can never run).
 */
function topicFrom(name: 'CLOSELOOP_REMEDIATE_TOPIC' | 'CLOSELOOP_REMEDIATE_DEAD_LETTER_TOPIC'): string {
  const parsed = z
    .string()
    .regex(/^projects\/[^/]+\/topics\/[^/]+$/)
    .safeParse(process.env[name]);
  if (!parsed.success) throw new ConfigError(`${name}: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
}
// Pub/Sub's REST API with the service account's access token (no client library: a lighter cold start).
const token = gcpAccessTokens();

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
  const answer = await queueRemoteRequest(req.body, req.get(REMOTE_SECRET_HEADER), {
    spoke: 'gcp',
    env: process.env,
    log,
    actions: actionRegistry,
    enqueue: async (request) => {
      const topic = pubsubPublisher(topicFrom('CLOSELOOP_REMEDIATE_TOPIC'), { token });
      await topic.publish(JSON.stringify(request), { requestId: request.requestId });
    },
  });
  res.status(answer.status).json(answer.body);
}

/** The message's data as Pub/Sub carried it, to set aside what documentFromPubSub could not read. */
const MessageDataSchema = z.object({ message: z.object({ data: z.string() }) });

/** Sets a message the worker can never run aside on the dead-letter topic, with why (attribute `reason`). */
async function setAside(data: string, reason: string, input: string): Promise<void> {
  log.error('remediation message moved to the dead-letter topic', { input, reason });
  const deadLetters = pubsubPublisher(topicFrom('CLOSELOOP_REMEDIATE_DEAD_LETTER_TOPIC'), { token });
  await deadLetters.publish(data, { reason: reason.slice(0, 1024), input });
}

export async function remediateQueued(event: CloudEvent<unknown>): Promise<void> {
  // A spoke environment that does not parse throws here: the message is retried, then dead-lettered.
  const spoke = workerSpoke();
  let message: ReturnType<typeof documentFromPubSub>;
  try {
    message = documentFromPubSub(event.data, event.id);
  } catch (e) {
    if (!(e instanceof UnreadableMessageError)) throw e;
    const raw = MessageDataSchema.safeParse(event.data).data?.message.data ?? '';
    await setAside(Buffer.from(raw, 'base64').toString('utf8'), `${e.path}: ${e.reason}`, e.input);
    return;
  }
  const run = await runRemoteRequest(message.value, {
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
  if ('unrunnable' in run) await setAside(JSON.stringify(message.value), run.unrunnable, message.input);
}

http('remediate', remediate);
cloudEvent('remediateQueued', remediateQueued);
