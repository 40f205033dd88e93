/** The hub's ingest pipeline, built on the AWS ports (the ingest function's only; kept out of aws.ts so other functions do not load it). */
import { createEnricher } from '../../core/pipeline/enrich.js';
import { createIngest } from '../../core/pipeline/ingest.js';
import { exceptionsRepo } from '../../core/policy/exceptions.js';
import type { OwnerLookup } from '../../core/ports.js';
import type { AwsPorts } from './aws.js';

export interface AwsIngestOptions {
  /** The live lookup behind the cache (tests inject one); default: the Tagging API under the function's role. */
  lookup?: OwnerLookup;
}

/**
 * The ingest pipeline on the hub's ports (normalize → enrich → store → decide → publish `case.decided`).
 * Exceptions are the config file's plus the store's, re-read on every call. With
 * `policy.enrichment.lookup.enabled`, findings whose event carries no tags are enriched from the live
 * tags of their AWS resource (Resource Groups Tagging API, cached for the container's life per the
 * policy's ttl; a member account's through the member role, when one is deployed); Azure and GCP
 * resources are not readable from the hub and keep the registry's answer (or their spoke's lookup).
 */
export async function createAwsIngest(ports: AwsPorts, options: AwsIngestOptions = {}) {
  const config = await ports.config();
  const repo = exceptionsRepo(ports.store, ports.clock);
  const policy = config.policy.enrichment;
  let lookup: OwnerLookup | undefined;
  if (policy.lookup.enabled) {
    // Imported only when lookups are on: the Tagging API client and the member role's code stay out of the
    // cold start otherwise.
    const [{ enrichmentLookup, hubAwsLookup }, { hubMemberAccess }] = await Promise.all([
      import('./lookup.js'),
      import('./member-role.js'),
    ]);
    const live = options.lookup ?? hubAwsLookup(ports.env, hubMemberAccess(ports.env, 'ingest'));
    lookup = enrichmentLookup(policy.lookup, live, ports.clock);
  }
  return createIngest({
    store: ports.store,
    bus: ports.bus,
    enricher: createEnricher({
      registry: config.registry,
      policy,
      log: ports.log,
      ...(lookup ? { lookup } : {}),
    }),
    config,
    exceptions: async () => [...config.exceptions, ...(await repo.list())],
    clock: ports.clock,
    log: ports.log,
  });
}
