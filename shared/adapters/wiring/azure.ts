/**
 * The Azure spoke wiring: forwards accepted Defender documents to the hub with AWS credentials obtained
 * from the function app's managed identity token (AssumeRoleWithWebIdentity), and logs through the
 * invocation context (the Logic App's shared secret is checked by shared-secret.ts).
 */
import * as z from 'zod';
import { ConfigError } from '../../core/errors.js';
import type { Logger, OwnerLookup } from '../../core/ports.js';
import { createSpokeForwarder, type SpokeForwarderOptions } from '../bus/spoke-forwarder.js';
import { spokeTagLookup } from './lookup.js';

/** App settings of the spoke's function app (infra/azure/main.bicep sets them). */
export const AzureSpokeEnvSchema = z.object({
  CLOSELOOP_HUB_BUS_ARN: z.string().startsWith('arn:'),
  CLOSELOOP_HUB_REGION: z.string().min(1).default('us-east-1'),
  CLOSELOOP_FORWARDER_ROLE_ARN: z.string().startsWith('arn:'),
  /**
   * Read the live tags of resources whose event carries none, under the spoke's identity, and send them with
   * the document (the hub cannot read them). Off by default, like the policy's `enrichment.lookup`.
   */
  CLOSELOOP_TAG_LOOKUP: z.enum(['true', 'false']).default('false'),
  /** The audience (Entra app ID URI) the hub's IAM OIDC provider trusts. */
  CLOSELOOP_FEDERATION_AUDIENCE: z.string().min(1).default('api://closeloop-hub'),
  /** Shared secret a Logic App sends in `x-closeloop-secret` (a Key Vault reference in the app settings). */
  CLOSELOOP_SPOKE_SECRET: z.string().min(16).optional(),
  /** Set by App Service / Functions when a managed identity is assigned. */
  IDENTITY_ENDPOINT: z.url().optional(),
  IDENTITY_HEADER: z.string().optional(),
  /** Client id of the user-assigned managed identity. */
  AZURE_CLIENT_ID: z.string().optional(),
});
export type AzureSpokeEnv = z.infer<typeof AzureSpokeEnvSchema>;

type Fetch = (
  url: string,
  init: { headers: Record<string, string> },
) => Promise<{ ok: boolean; status: number; json(): Promise<unknown> }>;

/**
 * A token for `resource` from the App Service managed identity endpoint (what @azure/identity's
 * ManagedIdentityCredential calls; done directly to keep MSAL out of the bundle).
 * @see https://learn.microsoft.com/azure/app-service/overview-managed-identity#rest-endpoint-reference
 */
export async function managedIdentityToken(
  env: AzureSpokeEnv,
  resource: string,
  fetchFn: Fetch = fetch,
): Promise<string> {
  if (!env.IDENTITY_ENDPOINT || !env.IDENTITY_HEADER)
    throw new ConfigError('no managed identity: IDENTITY_ENDPOINT/IDENTITY_HEADER unset');
  const url = new URL(env.IDENTITY_ENDPOINT);
  url.searchParams.set('resource', resource);
  url.searchParams.set('api-version', '2019-08-01');
  if (env.AZURE_CLIENT_ID) url.searchParams.set('client_id', env.AZURE_CLIENT_ID);
  const res = await fetchFn(url.toString(), { headers: { 'X-IDENTITY-HEADER': env.IDENTITY_HEADER } });
  if (!res.ok) throw new ConfigError(`managed identity endpoint answered ${res.status}`);
  const body = z.object({ access_token: z.string().min(1) }).safeParse(await res.json());
  if (!body.success) throw new ConfigError('managed identity endpoint returned no access_token');
  return body.data.access_token;
}

/** An invocation context's log methods (the part of @azure/functions' InvocationContext we use). */
export interface ContextLog {
  debug(...args: unknown[]): void;
  info(...args: unknown[]): void;
  warn(...args: unknown[]): void;
  error(...args: unknown[]): void;
}

/** The core Logger on an Azure Functions invocation context (lines go to Application Insights). */
export const contextLogger = (ctx: ContextLog): Logger => ({
  debug: (m, d) => ctx.debug(m, d ?? {}),
  info: (m, d) => ctx.info(m, d ?? {}),
  warn: (m, d) => ctx.warn(m, d ?? {}),
  error: (m, d) => ctx.error(m, d ?? {}),
});

export interface AzureSpokeOptions extends Partial<Pick<SpokeForwarderOptions, 'sts' | 'eventBridge' | 'clock'>> {
  /** The tag lookup (tests inject one); default: the cloud's own, when CLOSELOOP_TAG_LOOKUP is on. */
  tags?: OwnerLookup;
  fetch?: Fetch;
}

/**
 * Builds the Azure spoke once per worker.
 * @example
 * const spoke = createAzureSpoke(process.env);
 * await spoke.hub.forward(details);
 */
export function createAzureSpoke(env: NodeJS.ProcessEnv, options: AzureSpokeOptions = {}) {
  // Parsed once per worker, at cold start: interpreting is cheaper than generating a parser (jitless).
  const parsed = AzureSpokeEnvSchema.safeParse(env, { jitless: true });
  if (!parsed.success) throw new ConfigError(`Azure spoke settings: ${z.prettifyError(parsed.error)}`);
  const settings = parsed.data;
  const hub = createSpokeForwarder({
    spoke: 'azure',
    busArn: settings.CLOSELOOP_HUB_BUS_ARN,
    region: settings.CLOSELOOP_HUB_REGION,
    roleArn: settings.CLOSELOOP_FORWARDER_ROLE_ARN,
    token: () => managedIdentityToken(settings, settings.CLOSELOOP_FEDERATION_AUDIENCE, options.fetch),
    ...(options.sts ? { sts: options.sts } : {}),
    ...(options.eventBridge ? { eventBridge: options.eventBridge } : {}),
    ...(options.clock ? { clock: options.clock } : {}),
  });
  const tags = options.tags ?? (settings.CLOSELOOP_TAG_LOOKUP === 'true' ? spokeTagLookup('azure') : undefined);
  return { settings, hub, tags };
}
