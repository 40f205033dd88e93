/**
 * The AWS hub wiring: builds the ports once per Lambda container (module scope of each function) —
 * DynamoDocStore on the cases table, EventBridgeBus on the closeloop bus, a Powertools logger behind the
 * Logger port, the config folder bundled into the artifact, and the Jira secret read from Secrets Manager
 * (cached, never logged). Clients are injected so tests hand in mocked or dynalite-backed ones.
 */

import { readFile } from 'node:fs/promises';
import { Logger as PowertoolsLogger } from '@aws-lambda-powertools/logger';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { GetSecretValueCommand, type SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import * as z from 'zod';
import type { Config } from '../../core/config.js';
import { AdapterError, ConfigError } from '../../core/errors.js';
import { type Clock, type DocStore, type EventBus, type Logger, systemClock } from '../../core/ports.js';
import { EventBridgeBus } from '../bus/eventbridge.js';
import type { S3EvidenceOptions, S3ObjectLockEvidenceStore } from '../evidence/s3-object-lock.js';
import { DynamoDocStore } from '../store/dynamodb.js';
import { MEMBER_ROLE_NAME } from './member-role-name.js';

/**
 * The environment serverless.yml gives every hub function. Strict about what must be there: a
 * function deployed without its table or bus fails at cold start with the variable's name.
 */
export const AwsEnvSchema = z.object({
  CLOSELOOP_TABLE: z.string().min(1),
  CLOSELOOP_BUS: z.string().min(1),
  CLOSELOOP_STAGE: z.string().min(1).default('dev'),
  /**
   * The config inside the artifact: `config.json`, written by scripts/bundle-functions.mjs from the config
   * folder (validated at build time, so a typo fails the build, not a cold start). Unset = defaults.
   */
  CLOSELOOP_CONFIG: z.string().min(1).optional(),
  CLOSELOOP_EVIDENCE_BUCKET: z.string().min(1).optional(),
  /** Secrets Manager id of the Jira credentials (JSON: host, email, apiToken, webhookSecret). */
  CLOSELOOP_JIRA_SECRET: z.string().min(1).optional(),
  /** Jira project key tickets are created in. */
  CLOSELOOP_JIRA_PROJECT: z.string().min(1).default('SEC'),
  /** Whether the remediate function may apply (otherwise plans only: a dry-run deployment). */
  CLOSELOOP_APPLY: z
    .enum(['true', 'false'])
    .default('false')
    .transform((v) => v === 'true'),
  AWS_REGION: z.string().min(1).default('us-east-1'),
  /** The hub's account (serverless.yml: `Ref: AWS::AccountId`): the live tag lookups read this account only. */
  CLOSELOOP_ACCOUNT_ID: z
    .string()
    .regex(/^\d{12}$/)
    .optional(),
  /**
   * The role this function assumes to act or read in a member account (the same name in each; see
   * shared/adapters/wiring/member-role.ts). Empty or unset: the hub acts in its own account only.
   */
  CLOSELOOP_MEMBER_ROLE: z
    .string()
    .transform((v) => v.trim() || undefined)
    .pipe(z.string().regex(MEMBER_ROLE_NAME, 'an IAM role name (no path)').optional())
    .optional(),
  /** The hub's partition (serverless.yml: `Ref: AWS::Partition`), for the member role's ARN. */
  CLOSELOOP_PARTITION: z
    .string()
    .regex(/^aws[\w-]*$/)
    .default('aws'),
});
export type AwsEnv = z.infer<typeof AwsEnvSchema>;

/** Reads the environment, naming every missing or invalid variable. */
export function parseAwsEnv(env: NodeJS.ProcessEnv): AwsEnv {
  // Parsed once per container, at cold start: interpreting is cheaper than generating a parser (jitless).
  const parsed = AwsEnvSchema.safeParse(env, { jitless: true });
  if (!parsed.success) throw new ConfigError(`function environment: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
}

/** Adapts a Powertools logger (structured JSON to CloudWatch) to the core's Logger port. */
export function powertoolsLogger(logger: PowertoolsLogger): Logger {
  const at =
    (fn: (msg: string, ...extra: Array<Record<string, unknown>>) => void) =>
    (msg: string, data?: Record<string, unknown>) =>
      data ? fn(msg, data) : fn(msg);
  return {
    debug: at(logger.debug.bind(logger)),
    info: at(logger.info.bind(logger)),
    warn: at(logger.warn.bind(logger)),
    error: at(logger.error.bind(logger)),
  };
}

/** The Jira credentials kept in Secrets Manager (one JSON secret). */
export const JiraSecretSchema = z.object({
  host: z.url(),
  email: z.string().min(1),
  apiToken: z.string().min(1),
  /**
   * Shared secret Jira's webhook signs with (HMAC); optional until the webhook is registered. At least 16
   * characters, as JiraConfigSchema requires (test/wiring/jira-secret.test.ts keeps them equal): a short
   * HMAC key is guessable, and the webhook approves remediations.
   */
  webhookSecret: z.string().min(16, 'must be at least 16 characters').optional(),
});
export type JiraSecret = z.infer<typeof JiraSecretSchema>;

/**
 * A cached reader of one JSON secret. The value never reaches a log line: parse errors name the
 * fields that are wrong, not their content. Cached for `ttlMs` so a rotated token is picked up
 * without a redeploy, and a burst of invocations makes one call.
 *
 * @example
 * const jira = secretReader(new SecretsManagerClient({}), 'closeloop/dev/jira', JiraSecretSchema);
 * const { apiToken } = await jira();
 */
export function secretReader<S extends z.ZodType>(
  client: SecretsManagerClient,
  secretId: string,
  schema: S,
  options: { ttlMs?: number; clock?: Clock } = {},
): () => Promise<z.infer<S>> {
  const ttlMs = options.ttlMs ?? 5 * 60_000;
  const clock = options.clock ?? systemClock;
  let cached: { value: z.infer<S>; at: number } | undefined;
  let inflight: Promise<z.infer<S>> | undefined;
  return async function readSecret() {
    if (cached && clock.now().getTime() - cached.at < ttlMs) return cached.value;
    inflight ??= (async () => {
      try {
        const out = await client.send(new GetSecretValueCommand({ SecretId: secretId })).catch((e: unknown) => {
          const name = e instanceof Error ? e.name : 'Error';
          const kind =
            name === 'AccessDeniedException' ? 'denied' : name === 'ResourceNotFoundException' ? 'gone' : 'transient';
          throw new AdapterError(kind, `secret ${secretId}: GetSecretValue failed (${name})`);
        });
        let json: unknown;
        try {
          json = JSON.parse(out.SecretString ?? '');
        } catch {
          throw new ConfigError(`secret ${secretId}: SecretString is not JSON`);
        }
        const parsed = schema.safeParse(json);
        if (!parsed.success) {
          // Field names and the schema's messages (which never quote the input): values stay out.
          const fields = parsed.error.issues.map((i) => `${i.path.join('.') || '$'} (${i.message})`).join(', ');
          throw new ConfigError(`secret ${secretId}: invalid fields ${fields}`);
        }
        cached = { value: parsed.data, at: clock.now().getTime() };
        return parsed.data;
      } finally {
        inflight = undefined;
      }
    })();
    return inflight;
  };
}

/**
 * Reads the bundled `config.json` (the YAML config folder, loaded and validated at build time) and
 * re-validates it with the same schemas. JSON rather than YAML at run time keeps the YAML parser
 * (~110 KB) out of every function bundle. The schemas are imported with the first read (once per
 * container), so a cold start does not construct the whole config schema before the first invocation.
 */
export async function loadConfigJson(file: string): Promise<Config> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(file, 'utf8'));
  } catch (e) {
    throw new ConfigError(`${file}: cannot read the bundled config`, { cause: e });
  }
  const { parseBundledConfig } = await import('../config/bundled.js');
  return parseBundledConfig(json, file);
}

/** Clients the hub functions share; each is created once per container unless injected. */
export interface AwsClients {
  dynamodb: DynamoDBClient;
  eventbridge: EventBridgeClient;
}

/** What every hub function gets from the wiring. */
export interface AwsPorts {
  env: AwsEnv;
  clients: AwsClients;
  store: DocStore;
  bus: EventBus;
  clock: Clock;
  log: Logger;
  /** The Powertools logger itself, for middy's `injectLambdaContext`. */
  logger: PowertoolsLogger;
  /** The config, read once (first call) and cached for the container's life. */
  config(): Promise<Config>;
}

export interface AwsPortsOptions {
  clients?: Partial<AwsClients>;
  clock?: Clock;
  logger?: PowertoolsLogger;
  /** Loads the config file; defaults to {@link loadConfigJson} (tests inject a fixed Config). */
  loadConfig?: (dir: string) => Promise<Config>;
}

/**
 * Builds the hub's ports once. Call at module scope of a function file.
 *
 * @example
 * const ports = createAwsPorts(process.env, { logger: new Logger({ serviceName: 'closeloop-ingest' }) });
 */
export function createAwsPorts(env: NodeJS.ProcessEnv, options: AwsPortsOptions = {}): AwsPorts {
  const parsed = parseAwsEnv(env);
  const clients: AwsClients = {
    dynamodb: options.clients?.dynamodb ?? new DynamoDBClient({ region: parsed.AWS_REGION }),
    eventbridge: options.clients?.eventbridge ?? new EventBridgeClient({ region: parsed.AWS_REGION }),
  };
  const logger = options.logger ?? new PowertoolsLogger({ serviceName: 'closeloop' });
  const load = options.loadConfig ?? loadConfigJson;
  let config: Promise<Config> | undefined;
  const clock = options.clock ?? systemClock;
  return {
    env: parsed,
    clients,
    // The store's expiries count on the stages' clock (a test's fixed one too).
    store: new DynamoDocStore(clients.dynamodb, parsed.CLOSELOOP_TABLE, { clock }),
    bus: new EventBridgeBus(clients.eventbridge, parsed.CLOSELOOP_BUS),
    clock,
    log: powertoolsLogger(logger),
    logger,
    config() {
      if (config) return config;
      const loading = parsed.CLOSELOOP_CONFIG
        ? load(parsed.CLOSELOOP_CONFIG)
        : import('../../core/config.js').then((m) => m.defaultConfig());
      // A failed load is not cached: the next invocation tries again (and fails loudly again).
      loading.catch(() => {
        config = undefined;
      });
      config = loading;
      return loading;
    },
  };
}

/**
 * The evidence store on the hub's Object Lock bucket (evidence and verify functions), each record
 * locked for the policy's `verification.evidence.retentionDays`. The S3 client (a regional one unless
 * `s3` is given) and the adapter are imported when the store is first built, not at module load.
 */
export async function createAwsEvidenceStore(
  ports: AwsPorts,
  s3?: S3EvidenceOptions['client'],
): Promise<S3ObjectLockEvidenceStore> {
  const bucket = ports.env.CLOSELOOP_EVIDENCE_BUCKET;
  if (!bucket) throw new ConfigError('CLOSELOOP_EVIDENCE_BUCKET is not set');
  const [{ policy }, { S3Client }, { S3ObjectLockEvidenceStore }] = await Promise.all([
    ports.config(),
    import('@aws-sdk/client-s3'),
    import('../evidence/s3-object-lock.js'),
  ]);
  return new S3ObjectLockEvidenceStore({
    client: s3 ?? new S3Client({ region: ports.env.AWS_REGION }),
    bucket,
    retentionDays: policy.verification.evidence.retentionDays,
    clock: ports.clock,
  });
}
