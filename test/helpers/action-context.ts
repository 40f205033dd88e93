/**
 * An ActionContext for action tests: real client factories (aws-sdk-client-mock intercepts the AWS
 * ones), fixed clock, fast retries, and per-test overrides for Azure ARM stubs, Azurite and the GCP double.
 */

import { type CloudClientOptions, type CloudClients, createCloudClients } from '../../shared/actions/clients.js';
import type { ActionContext } from '../../shared/actions/define.js';
import type { Clock } from '../../shared/core/ports.js';
import { silentLogger } from '../../shared/core/ports.js';

export const FIXED_NOW = new Date('2026-11-18T10:00:00.000Z');
export const fixedClock = (at: Date = FIXED_NOW): Clock => ({ now: () => at });

/** Synthetic AWS credentials: nothing leaves the process under aws-sdk-client-mock. */
export const FAKE_AWS = { credentials: { accessKeyId: 'AKIA0000000000EXAMPLE', secretAccessKey: 'test-secret' } };

export function testContext(
  options: {
    clients?: Partial<CloudClients>;
    cloud?: CloudClientOptions;
    settings?: Record<string, unknown>;
    clock?: Clock;
  } = {},
): ActionContext {
  const base = createCloudClients({ aws: FAKE_AWS, ...options.cloud });
  return {
    clients: { ...base, ...options.clients },
    clock: options.clock ?? fixedClock(),
    log: silentLogger,
    retry: { attempts: 3, baseMs: 1, maxMs: 50 },
    ...(options.settings ? { settings: options.settings } : {}),
  };
}

/** An SDK-shaped error (name + HTTP status), as the AWS SDK v3 throws them. */
export function awsError(name: string, status: number, extra: Record<string, unknown> = {}): Error {
  return Object.assign(new Error(name), {
    name,
    $fault: status >= 500 ? 'server' : 'client',
    $metadata: { httpStatusCode: status, requestId: `req-${name}` },
    ...extra,
  });
}
