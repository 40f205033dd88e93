/**
 * GCP spoke: SCC notifications on Pub/Sub are normalized here and forwarded to the AWS hub bus. They come
 * by the push subscription of infra/gcp/main.tf, whose body the Functions Framework turns into the
 * CloudEvent `google.cloud.pubsub.topic.v1.messagePublished`. A throw answers an error, so Pub/Sub
 * redelivers, and after the subscription's max_delivery_attempts moves the message to the dead-letter
 * topic; an unusable message is logged and acknowledged (retrying cannot fix it).
 */
import { type CloudEvent, cloudEvent } from '@google-cloud/functions-framework';
import { documentFromPubSub, UnreadableMessageError } from '../../shared/adapters/bus/pubsub.js';
import { acceptDocuments } from '../../shared/adapters/bus/spoke-accept.js';
import { createGcpSpoke } from '../../shared/adapters/wiring/gcp.js';
import { errorMessage, isInvalid } from '../../shared/core/errors.js';

const spoke = createGcpSpoke(process.env);

export async function sccIngest(event: CloudEvent<unknown>): Promise<void> {
  let doc: ReturnType<typeof documentFromPubSub>;
  try {
    doc = documentFromPubSub(event.data, event.id);
  } catch (e) {
    // Retrying cannot fix a malformed message: acknowledge it and say why.
    if (!isInvalid(e)) throw e;
    const { input, path, reason } =
      e instanceof UnreadableMessageError ? e : { input: `cloudevent:${event.id}`, path: '$', reason: errorMessage(e) };
    spoke.log.warn('rejected message', { input: `gcp:${input}`, source: 'unknown', path, reason });
    return;
  }
  const { details, rejected } = await acceptDocuments('gcp', [doc], spoke.tags);
  for (const r of rejected)
    spoke.log.warn('rejected input', { input: r.input, source: r.source, path: r.path, reason: r.reason });
  await spoke.hub.forward(details);
  spoke.log.info('forwarded', { input: doc.input, findings: details.flatMap((d) => d.findingKeys).length });
}

cloudEvent('sccIngest', sccIngest);
