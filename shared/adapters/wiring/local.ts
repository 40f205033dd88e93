/**
 * The embedded default: a local SQLite store under the home folder, config from a folder, dry-run
 * remediation, the local ticket sink unless Jira is configured in the environment. Builds every port
 * once; the CLI and the tests use it.
 */
import { join, resolve } from 'node:path';
import type { Action, ActionContext } from '../../actions/define.js';
import { actionRegistry } from '../../actions/registry.js';
import { memberContexts } from '../../actions/scope.js';
import { type Config, defaultConfig } from '../../core/config.js';
import { createEvidenceStage } from '../../core/evidence/stage.js';
import type { PipelineEvent } from '../../core/model/events.js';
import { createEnricher } from '../../core/pipeline/enrich.js';
import { createIngest, type IngestDeps } from '../../core/pipeline/ingest.js';
import { InProcessBus, type Stage } from '../../core/pipeline/stage.js';
import { combineExceptions, exceptionsRepo, type RiskException } from '../../core/policy/exceptions.js';
import {
  type Clock,
  type DocStore,
  type Logger,
  type OwnerLookup,
  silentLogger,
  systemClock,
} from '../../core/ports.js';
import { createRemediationStage, type RemediationDeps } from '../../core/remediation/stage.js';
import type { TicketDeps } from '../../core/tickets/context.js';
import { drainOutbox } from '../../core/tickets/outbox.js';
import { createTicketStage } from '../../core/tickets/stage.js';
import { createVerifyStage, type VerifyDeps } from '../../core/verify/stage.js';
import { loadConfig } from '../config/load.js';
import { LocalFolderEvidenceStore } from '../evidence/local-folder.js';
import { OverlayEvidenceStore } from '../evidence/overlay.js';
import { OverlayDocStore } from '../store/overlay.js';
import { SqliteDocStore } from '../store/sqlite.js';
import { createTicketSink, LocalTicketSink } from '../tickets/index.js';
import { LocalUpstreamStatus } from '../upstream/local.js';
import { processGone, processScope } from './local-process.js';
import { memberAccessFromEnv } from './member-role.js';

export interface LocalOptions {
  /** The embedded home folder (store, evidence). Default: $CLOSELOOP_HOME or `.closeloop`. */
  home?: string;
  /** Config folder (registry.yaml, policy.yaml, exceptions.yaml). Default: $CLOSELOOP_CONFIG, else built-in defaults. */
  configDir?: string;
  /** Execute remediations (default: dry-run). */
  apply?: boolean;
  /** Read the store but write nothing (closeloop plan). */
  readOnly?: boolean;
  env?: NodeJS.ProcessEnv;
  log?: Logger;
  clock?: Clock;
  /** Who is acting (recorded in evidence): a person on the CLI. */
  actor?: string;
  /** Cloud clients for live reads and applies; undefined (the default) keeps the run off every cloud. */
  actionContext?: ActionContext;
  /**
   * Read (and with `apply`, change) live resources with the ambient credentials of each cloud (AWS default
   * chain, Azure DefaultAzureCredential, Google ADC). Ignored when `actionContext` is given.
   */
  live?: boolean;
  /** The action registry (injectable for tests). */
  actions?: { get(id: string): Action | undefined };
  /**
   * Live tags (injectable for tests). Default: each cloud's adapter on ambient credentials, built only
   * when used — for enrichment when `policy.enrichment.lookup.enabled` (cached per that policy), and for
   * the skip-tag re-check before an apply whenever live resources are read (`live`, `apply`).
   */
  lookup?: OwnerLookup;
}

export interface LocalRuntime {
  home: string;
  store: DocStore;
  config: Config;
  bus: InProcessBus;
  ingest: ReturnType<typeof createIngest>;
  stages: Stage[];
  clock: Clock;
  log: Logger;
  actor: string;
  apply: boolean;
  exceptions: () => Promise<RiskException[]>;
  tickets: TicketDeps;
  verify: VerifyDeps;
  remediation: RemediationDeps;
  /** Delivers every queued event (and its follow-ups), then sends what the ticket outbox holds. */
  settle(): Promise<void>;
  close(): Promise<void>;
}

export function resolveHome(opts: Pick<LocalOptions, 'home' | 'env'>): string {
  const env = opts.env ?? process.env;
  return resolve(opts.home ?? env.CLOSELOOP_HOME ?? '.closeloop');
}

export async function createLocalRuntime(opts: LocalOptions = {}): Promise<LocalRuntime> {
  const env = opts.env ?? process.env;
  const log = opts.log ?? silentLogger;
  const clock = opts.clock ?? systemClock;
  const home = resolveHome(opts);
  const configDir = opts.configDir ?? env.CLOSELOOP_CONFIG;
  const config = configDir ? await loadConfig(configDir) : defaultConfig();
  const base = await SqliteDocStore.open(join(home, 'closeloop.db'), { clock });
  const store: DocStore = opts.readOnly ? new OverlayDocStore(base, { clock }) : base;
  const actor = opts.actor ?? env.CLOSELOOP_ACTOR ?? `cli:${env.USER ?? 'local'}`;
  const apply = opts.apply ?? false;

  const repo = exceptionsRepo(store);
  // A stored exception wins over the file's copy of the same id (e.g. revoked from the CLI).
  const exceptions = async () => combineExceptions(config.exceptions, await repo.list());
  const actions = opts.actions ?? actionRegistry;
  // The AWS account of the ambient credentials, asked once (a failure is asked again next time).
  let caller: Promise<string | undefined> | undefined;
  const callerAccount = () =>
    (caller ??= stsCallerAccount().catch((e: unknown) => {
      caller = undefined;
      throw e;
    }));
  // Cloud SDKs load only when a run reads live resources: the offline default stays fast to start.
  // With CLOSELOOP_MEMBER_ROLE, a member account's resources are read and fixed under that role there.
  const member = memberAccessFromEnv(env, 'closeloop-cli');
  let ctx = opts.actionContext;
  if (!ctx && (opts.live || opts.apply)) {
    const { createCloudClients } = await import('../../actions/clients.js');
    const own: ActionContext = { clients: createCloudClients({}), clock, log, awsAccount: callerAccount };
    ctx = member ? { ...own, inAwsAccount: memberContexts(own, member) } : own;
  }
  // Live tags, built on first need: enrichment (when the policy turns lookups on) and the skip-tag re-check
  // of a run that reads live resources (an injected action context keeps it off unless a lookup is injected).
  const readsLive = opts.actionContext === undefined && (opts.live || opts.apply);
  const lookupPolicy = config.policy.enrichment.lookup;
  const wiring = lookupPolicy.enabled || readsLive ? await import('./lookup.js') : undefined;
  const liveOptions = { awsAccount: callerAccount, ...(member ? { awsMember: member } : {}) };
  const live = opts.lookup ?? wiring?.liveOwnerLookup(['aws', 'azure', 'gcp'], liveOptions);
  // The re-check reads everything fresh (GCP project labels, Azure resource group and subscription tags too):
  // enrichment's lookup shares those for 15 min.
  const recheck = opts.lookup ?? wiring?.liveOwnerLookup(['aws', 'azure', 'gcp'], { ...liveOptions, fresh: true });
  // Undefined while the policy keeps lookups off.
  const enrichmentTags = live && wiring?.enrichmentLookup(lookupPolicy, live, clock);
  // Read-only (`plan`): nothing written anywhere — evidence stays in memory over the folder, and tickets go
  // to the local sink over the in-memory store, never to Jira.
  const folder = new LocalFolderEvidenceStore(join(home, 'evidence'));
  const evidence = opts.readOnly ? new OverlayEvidenceStore(folder) : folder;
  const tickets: TicketDeps = {
    store,
    sink: opts.readOnly ? new LocalTicketSink(store, clock) : createTicketSink(env, store, { clock, log }),
    clock,
    log,
    policy: config.policy.tickets,
  };
  const verify: VerifyDeps = {
    store,
    evidence,
    actions,
    ctx,
    upstream: new LocalUpstreamStatus(),
    clock,
    log,
    policy: config.policy.verification,
  };
  const remediation: RemediationDeps = {
    store,
    actions,
    ctx,
    clock,
    log,
    policy: config.policy.apply,
    // The environment on the live tags is read with enrichment's tag keys and words.
    enrichment: config.policy.enrichment,
    apply,
    actor,
    exceptions,
    ...(ctx && recheck ? { tags: recheck } : {}),
  };
  // Order matters for one event: evidence first (the event that caused a step is recorded before the
  // records of what the step did), remediation before tickets (the ticket carries the plan), verify last.
  const stages: Stage[] = [
    createEvidenceStage({ store, evidence, clock, log }),
    createRemediationStage(remediation),
    createTicketStage(tickets),
    createVerifyStage(verify),
  ];
  const scope = processScope();
  const bus = new InProcessBus(
    stages,
    log,
    async (failure) => {
      await store.put('deadletters', `stage:${failure.stage}:${failure.event.id}`, {
        stage: failure.stage,
        caseKey: failure.event.caseKey,
        event: failure.event,
        reason: failure.error,
        at: clock.now().toISOString(),
      });
    },
    // Durable: a killed run's undelivered events are recovered by the next one (settle()); another live
    // run's are left to it (a lease per queued event, given back at once when its process is gone).
    store,
    { clock, process: { scope, pid: process.pid }, processGone: (p) => processGone(p, scope) },
  );
  const deps: IngestDeps = {
    store,
    bus,
    enricher: createEnricher({
      registry: config.registry,
      policy: config.policy.enrichment,
      log,
      ...(enrichmentTags ? { lookup: enrichmentTags } : {}),
    }),
    config,
    exceptions,
    clock,
    log,
  };
  const ingest = createIngest(deps);

  return {
    home,
    store,
    config,
    bus,
    ingest,
    stages,
    clock,
    log,
    actor,
    apply,
    exceptions,
    tickets,
    verify,
    remediation,
    settle: async () => {
      await bus.recover();
      await bus.drain();
      await drainOutbox(tickets);
    },
    close: async () => {
      await bus.close();
      await base.close();
    },
  };
}

export type { PipelineEvent };

/**
 * The AWS account of the ambient credentials (sts:GetCallerIdentity needs no permission), asked once when
 * the first AWS resource is looked up or acted on. (The hub's functions know theirs: CLOSELOOP_ACCOUNT_ID.)
 */
async function stsCallerAccount(): Promise<string | undefined> {
  const { GetCallerIdentityCommand, STSClient } = await import('@aws-sdk/client-sts');
  return (await new STSClient({}).send(new GetCallerIdentityCommand({}))).Account;
}
