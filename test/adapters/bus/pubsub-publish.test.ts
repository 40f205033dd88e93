/**
 * The GCP spoke's Pub/Sub publisher (REST, no client library) and the access token it sends, from the
 * metadata server: what the remediate endpoint relies on to answer within an API destination's 5 seconds
 * or fail so the hub dead-letters the hand-over.
 */
import { describe, expect, it } from 'vitest';
import { pubsubPublisher } from '../../../shared/adapters/bus/pubsub.js';
import { gcpAccessTokens } from '../../../shared/adapters/wiring/gcp.js';
import { kindOf } from '../../../shared/core/errors.js';

const TOPIC = 'projects/acme-sec/topics/closeloop-remediate-requests';

/** A fetch answering `status` with `body`, recording what it was asked. */
function answering(status: number, body: string) {
  const calls: { url: string; init: { method?: string; headers: Record<string, string>; body?: string } }[] = [];
  const fetch = async (url: string, init: { method?: string; headers: Record<string, string>; body?: string }) => {
    calls.push({ url, init });
    return { ok: status >= 200 && status < 300, status, text: async () => body };
  };
  return { fetch, calls };
}

describe('pubsubPublisher', () => {
  it('publishes base64 data with its attributes to the topic, with the bearer token, and returns the message id', async () => {
    // Prepare
    const pubsub = answering(200, '{"messageIds":["4711"]}');
    const topic = pubsubPublisher(TOPIC, { token: async () => 'ya29.t', fetch: pubsub.fetch });
    // Act
    const id = await topic.publish('{"requestId":"rq-1"}', { requestId: 'rq-1' });
    // Assess
    expect(id).toBe('4711');
    const [call] = pubsub.calls;
    expect(call?.url).toBe(`https://pubsub.googleapis.com/v1/${TOPIC}:publish`);
    expect(call?.init.headers.authorization).toBe('Bearer ya29.t');
    expect(JSON.parse(call?.init.body ?? '{}')).toEqual({
      messages: [{ data: Buffer.from('{"requestId":"rq-1"}').toString('base64'), attributes: { requestId: 'rq-1' } }],
    });
  });

  it.each([
    [403, 'denied'],
    [404, 'gone'],
    [429, 'throttled'],
    [503, 'transient'],
  ])('throws a %s answer as %s, so the endpoint answers 5xx', async (status, kind) => {
    // Prepare
    const topic = pubsubPublisher(TOPIC, { token: async () => 't', fetch: answering(status, '{}').fetch });
    // Act
    const publishing = topic.publish('{}');
    // Assess
    await expect(publishing).rejects.toSatisfy((e) => kindOf(e) === kind);
  });

  it('throws a publish that got no answer (the deadline, a reset) as transient, naming the topic', async () => {
    // Prepare: the signal's deadline passes before any answer
    const hanging = (_url: string, init: { signal?: AbortSignal }) =>
      new Promise<never>((_, reject) => init.signal?.addEventListener('abort', () => reject(init.signal?.reason)));
    const topic = pubsubPublisher(TOPIC, { token: async () => 't', fetch: hanging as never, timeoutMs: 20 });
    // Act
    const publishing = topic.publish('{}');
    // Assess
    await expect(publishing).rejects.toSatisfy(
      (e) =>
        kindOf(e) === 'transient' && String((e as Error).message).includes(`Pub/Sub publish to ${TOPIC}: no answer`),
    );
  });

  it('throws "no message id", not a JSON error, when Pub/Sub answers 200 with a body that is no JSON', async () => {
    // Prepare
    const topic = pubsubPublisher(TOPIC, { token: async () => 't', fetch: answering(200, '<html>').fetch });
    // Act / Assess
    await expect(topic.publish('{}')).rejects.toThrow('returned no message id');
  });

  it('throws when Pub/Sub answers 200 without a message id', async () => {
    // Prepare
    const topic = pubsubPublisher(TOPIC, { token: async () => 't', fetch: answering(200, '{}').fetch });
    // Act / Assess
    await expect(topic.publish('{}')).rejects.toThrow('returned no message id');
  });
});

describe('gcpAccessTokens', () => {
  it('asks the metadata server once and keeps the token until a minute before it expires', async () => {
    // Prepare
    const metadata = answering(200, '{"access_token":"ya29.a","expires_in":3599,"token_type":"Bearer"}');
    let now = 0;
    const token = gcpAccessTokens(metadata.fetch, () => now);
    // Act
    const first = await token();
    now = 3_500_000;
    const kept = await token();
    now = 3_540_000;
    await token();
    // Assess
    expect([first, kept]).toEqual(['ya29.a', 'ya29.a']);
    expect(metadata.calls).toHaveLength(2);
    expect(metadata.calls[0]?.url).toBe(
      'http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token',
    );
    expect(metadata.calls[0]?.init.headers).toEqual({ 'Metadata-Flavor': 'Google' });
  });

  it('fails with a configuration error when the metadata server answers an error', async () => {
    // Prepare
    const token = gcpAccessTokens(answering(404, 'not here').fetch);
    // Act / Assess
    await expect(token()).rejects.toThrow('metadata server answered 404 for an access token');
  });
});
