/** The hub's ingest pipeline, built on the AWS ports (the ingest function's only; kept out of aws.ts so other functions do not load it). */
import { createEnricher } from '../../core/pipeline/enrich.js';
import { createIngest } from '../../core/pipeline/ingest.js';
import { exceptionsRepo } from '../../core/policy/exceptions.js';
import type { AwsPorts } from './aws.js';

/**
 * The ingest pipeline on the hub's ports (normalize → enrich → store → decide → publish `case.decided`).
 * Exceptions are the config file's plus the store's, re-read on every call.
 */
export async function createAwsIngest(ports: AwsPorts) {
  const config = await ports.config();
  const repo = exceptionsRepo(ports.store, ports.clock);
  return createIngest({
    store: ports.store,
    bus: ports.bus,
    enricher: createEnricher({ registry: config.registry, policy: config.policy.enrichment, log: ports.log }),
    config,
    exceptions: async () => [...config.exceptions, ...(await repo.list())],
    clock: ports.clock,
    log: ports.log,
  });
}
