/**
 * The GCP spoke wiring: forwards accepted SCC documents to the hub with AWS credentials obtained from the
 * function's service account ID token (metadata server → AssumeRoleWithWebIdentity; `accounts.google.com`
 * is built into AWS IAM), and logs structured JSON lines Cloud Logging understands.
 */
import * as z from 'zod';
import { ConfigError } from '../../core/errors.js';
import type { Logger, OwnerLookup } from '../../core/ports.js';
import { createSpokeForwarder, type SpokeForwarderOptions } from '../bus/spoke-forwarder.js';
import { spokeTagLookup } from './lookup.js';

/** Environment of the Cloud Function (infra/gcp/main.tf sets it). */
export const GcpSpokeEnvSchema = z.object({
  CLOSELOOP_HUB_BUS_ARN: z.string().startsWith('arn:'),
  CLOSELOOP_HUB_REGION: z.string().min(1).default('us-east-1'),
  CLOSELOOP_FORWARDER_ROLE_ARN: z.string().startsWith('arn:'),
  /**
   * Read the live tags of resources whose event carries none, under the spoke's identity, and send them with
   * the document (the hub cannot read them). Off by default, like the policy's `enrichment.lookup`.
   */
  CLOSELOOP_TAG_LOOKUP: z.enum(['true', 'false']).default('false'),
  /** Audience of the ID token; the hub role's trust policy checks the service account's unique id. */
  CLOSELOOP_FEDERATION_AUDIENCE: z.string().min(1).default('closeloop-hub'),
});
export type GcpSpokeEnv = z.infer<typeof GcpSpokeEnvSchema>;

type Fetch = (
  url: string,
  init: { headers: Record<string, string> },
) => Promise<{ ok: boolean; status: number; text(): Promise<string> }>;

/**
 * An ID token of the function's service account from the metadata server.
 * @see https://cloud.google.com/compute/docs/instances/verifying-instance-identity#request_signature
 */
export async function gcpIdToken(audience: string, fetchFn: Fetch = fetch): Promise<string> {
  const url = new URL('http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/identity');
  url.searchParams.set('audience', audience);
  url.searchParams.set('format', 'full');
  const res = await fetchFn(url.toString(), { headers: { 'Metadata-Flavor': 'Google' } });
  if (!res.ok) throw new ConfigError(`metadata server answered ${res.status} for an ID token`);
  const token = (await res.text()).trim();
  if (!token) throw new ConfigError('metadata server returned an empty ID token');
  return token;
}

/**
 * An OAuth access token of the function's service account from the metadata server, kept until a minute
 * before it expires (the metadata server hands out the same token until then anyway).
 * @see https://cloud.google.com/compute/docs/access/authenticate-workloads#applications
 */
export function gcpAccessTokens(fetchFn: Fetch = fetch, now: () => number = Date.now): () => Promise<string> {
  let held: { token: string; until: number } | undefined;
  return async () => {
    if (held && now() < held.until) return held.token;
    const url = 'http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token';
    const res = await fetchFn(url, { headers: { 'Metadata-Flavor': 'Google' } });
    if (!res.ok) throw new ConfigError(`metadata server answered ${res.status} for an access token`);
    const parsed = z
      .object({ access_token: z.string().min(1), expires_in: z.number() })
      .safeParse(JSON.parse(await res.text()));
    if (!parsed.success) throw new ConfigError('metadata server returned no access token');
    held = { token: parsed.data.access_token, until: now() + (parsed.data.expires_in - 60) * 1000 };
    return held.token;
  };
}

/** Severity-tagged JSON lines on stdout/stderr: Cloud Logging's structured logging. */
export function cloudLogger(write: (line: string, error: boolean) => void = defaultWrite): Logger {
  const at = (severity: string) => (message: string, data?: Record<string, unknown>) =>
    write(JSON.stringify({ severity, message, ...data }), severity === 'ERROR');
  return { debug: at('DEBUG'), info: at('INFO'), warn: at('WARNING'), error: at('ERROR') };
}
const defaultWrite = (line: string, error: boolean) => (error ? process.stderr : process.stdout).write(`${line}\n`);

export interface GcpSpokeOptions extends Partial<Pick<SpokeForwarderOptions, 'sts' | 'eventBridge' | 'clock'>> {
  /** The tag lookup (tests inject one); default: the cloud's own, when CLOSELOOP_TAG_LOOKUP is on. */
  tags?: OwnerLookup;
  fetch?: Fetch;
  log?: Logger;
}

/**
 * Builds the GCP spoke once per instance.
 * @example
 * const spoke = createGcpSpoke(process.env);
 */
export function createGcpSpoke(env: NodeJS.ProcessEnv, options: GcpSpokeOptions = {}) {
  // Parsed once per instance, at cold start: interpreting is cheaper than generating a parser (jitless).
  const parsed = GcpSpokeEnvSchema.safeParse(env, { jitless: true });
  if (!parsed.success) throw new ConfigError(`GCP spoke environment: ${z.prettifyError(parsed.error)}`);
  const settings = parsed.data;
  const hub = createSpokeForwarder({
    spoke: 'gcp',
    busArn: settings.CLOSELOOP_HUB_BUS_ARN,
    region: settings.CLOSELOOP_HUB_REGION,
    roleArn: settings.CLOSELOOP_FORWARDER_ROLE_ARN,
    token: () => gcpIdToken(settings.CLOSELOOP_FEDERATION_AUDIENCE, options.fetch),
    ...(options.sts ? { sts: options.sts } : {}),
    ...(options.eventBridge ? { eventBridge: options.eventBridge } : {}),
    ...(options.clock ? { clock: options.clock } : {}),
  });
  const tags = options.tags ?? (settings.CLOSELOOP_TAG_LOOKUP === 'true' ? spokeTagLookup('gcp') : undefined);
  return { settings, hub, tags, log: options.log ?? cloudLogger() };
}
