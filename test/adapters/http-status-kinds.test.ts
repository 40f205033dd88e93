/**
 * What each adapter that reads an HTTP status makes of it, pinned for every status from 100 to 599 and for an
 * error without one: the tables below were taken from the adapters as they stood before their mappings were
 * folded into `kindOfHttpStatus` (shared/core/errors.ts), and are data, not computed, so that the fold (or any
 * later edit of the shared mapping) cannot move an adapter's answer unseen. A row `[from, to, outcome]` covers
 * the statuses from `from` to `to`; the outcome is the error's kind, or what the call did without an error.
 */
import { HttpException } from 'jira.js';
import { describe, expect, it } from 'vitest';
import { classifyCloudError } from '../../shared/actions/retry.js';
import { putEventsError } from '../../shared/adapters/bus/eventbridge-failures.js';
import { pubsubPublisher } from '../../shared/adapters/bus/pubsub.js';
import { S3ObjectLockEvidenceStore } from '../../shared/adapters/evidence/s3-object-lock.js';
import { awsAdapterError } from '../../shared/adapters/lookup/aws-tagging.js';
import { azureAdapterError } from '../../shared/adapters/lookup/azure-tags.js';
import { gcpAdapterError } from '../../shared/adapters/lookup/gcp-labels.js';
import { toAdapterError } from '../../shared/adapters/tickets/jira.js';
import type { EvidenceRecord } from '../../shared/core/evidence/record.js';
import { fixedClock } from '../verify/helpers.js';

type Outcome = string;

/** An AWS SDK v3 error as the SDK throws it: a name, and the HTTP status in `$metadata` when there was one. */
const awsSdkError = (status: number | undefined): Error =>
  Object.assign(new Error('refused'), status === undefined ? {} : { $metadata: { httpStatusCode: status } });

const kindOrThrown = async (call: () => Promise<unknown>, done: (value: unknown) => Outcome): Promise<Outcome> => {
  try {
    return done(await call());
  } catch (e) {
    return (e as { kind?: string }).kind ?? `not an AdapterError: ${String(e)}`;
  }
};

const evidenceStore = (status: number | undefined) =>
  new S3ObjectLockEvidenceStore({
    client: { send: () => Promise.reject(awsSdkError(status)) },
    bucket: 'closeloop-evidence-111122223333',
    retentionDays: 10,
    clock: fixedClock('2026-11-20T10:00:00.000Z'),
  });

/** `put` reads the record's hash and writes the record as JSON: no more is needed to reach the call. */
const record = { hash: 'ab'.repeat(32) } as EvidenceRecord;

/** Each adapter's outcome for a remote's answer with this status (undefined: no status, e.g. a reset socket). */
const OBSERVE: Record<string, (status: number | undefined) => Outcome | Promise<Outcome>> = {
  'actions/retry.ts classifyCloudError': (status) => classifyCloudError(awsSdkError(status), 'op').kind,
  'tickets/jira.ts toAdapterError': (status) =>
    toAdapterError('op', status === undefined ? new HttpException('refused') : new HttpException('refused', status))
      .kind,
  'lookup/azure-tags.ts azureAdapterError': (status) =>
    azureAdapterError(status === undefined ? new Error('refused') : { statusCode: status }, 'op').kind,
  'lookup/aws-tagging.ts awsAdapterError': (status) => awsAdapterError(awsSdkError(status), 'op').kind,
  'lookup/gcp-labels.ts gcpAdapterError': (status) =>
    gcpAdapterError(status === undefined ? new Error('refused') : { code: status }, 'op').kind,
  'bus/pubsub.ts publish': (status) =>
    kindOrThrown(
      () =>
        pubsubPublisher('projects/p/topics/t', {
          token: async () => 'token',
          fetch: async () => ({
            ok: status !== undefined && status >= 200 && status < 300,
            status: status as number,
            text: async () => '{"messageIds":["m-1"]}',
          }),
        }).publish('{}'),
      () => 'published',
    ),
  'bus/eventbridge-failures.ts putEventsError': (status) => putEventsError(awsSdkError(status)).kind,
  'evidence/s3-object-lock.ts get': (status) =>
    kindOrThrown(
      () => evidenceStore(status).get(record.hash),
      (got) => (got === undefined ? 'absent' : 'found'),
    ),
  'evidence/s3-object-lock.ts put': (status) =>
    kindOrThrown(
      () => evidenceStore(status).put(record),
      (put) => String(put),
    ),
};

/** Run-length rows `[from, to, outcome]` over 100..599, then the outcome without a status. */
const EXPECTED: Record<string, { statuses: [number, number, Outcome][]; missing: Outcome }> = {
  'actions/retry.ts classifyCloudError': {
    statuses: [
      [100, 400, 'invalid'],
      [401, 401, 'denied'],
      [402, 402, 'invalid'],
      [403, 403, 'denied'],
      [404, 404, 'gone'],
      [405, 407, 'invalid'],
      [408, 408, 'transient'],
      [409, 409, 'conflict'],
      [410, 410, 'gone'],
      [411, 411, 'invalid'],
      [412, 412, 'conflict'],
      [413, 424, 'invalid'],
      [425, 425, 'throttled'],
      [426, 428, 'invalid'],
      [429, 429, 'throttled'],
      [430, 499, 'invalid'],
      [500, 599, 'transient'],
    ],
    missing: 'invalid',
  },
  'tickets/jira.ts toAdapterError': {
    statuses: [
      [100, 400, 'invalid'],
      [401, 401, 'denied'],
      [402, 402, 'invalid'],
      [403, 403, 'denied'],
      [404, 404, 'gone'],
      [405, 407, 'invalid'],
      [408, 408, 'transient'],
      [409, 409, 'conflict'],
      [410, 424, 'invalid'],
      [425, 425, 'throttled'],
      [426, 428, 'invalid'],
      [429, 429, 'throttled'],
      [430, 499, 'invalid'],
      [500, 599, 'transient'],
    ],
    missing: 'transient',
  },
  'lookup/azure-tags.ts azureAdapterError': {
    statuses: [
      [100, 399, 'transient'],
      [400, 400, 'invalid'],
      [401, 401, 'denied'],
      [402, 402, 'invalid'],
      [403, 403, 'denied'],
      [404, 404, 'gone'],
      [405, 407, 'invalid'],
      [408, 408, 'transient'],
      [409, 428, 'invalid'],
      [429, 429, 'throttled'],
      [430, 499, 'invalid'],
      [500, 599, 'transient'],
    ],
    missing: 'transient',
  },
  'lookup/aws-tagging.ts awsAdapterError': {
    statuses: [
      [100, 399, 'transient'],
      [400, 402, 'invalid'],
      [403, 403, 'denied'],
      [404, 407, 'invalid'],
      [408, 408, 'transient'],
      [409, 428, 'invalid'],
      [429, 429, 'throttled'],
      [430, 499, 'invalid'],
      [500, 599, 'transient'],
    ],
    missing: 'transient',
  },
  'lookup/gcp-labels.ts gcpAdapterError': {
    statuses: [
      [100, 399, 'transient'],
      [400, 400, 'invalid'],
      [401, 401, 'denied'],
      [402, 402, 'transient'],
      [403, 403, 'denied'],
      [404, 404, 'gone'],
      [405, 428, 'transient'],
      [429, 429, 'throttled'],
      [430, 599, 'transient'],
    ],
    missing: 'transient',
  },
  'bus/pubsub.ts publish': {
    statuses: [
      [100, 199, 'transient'],
      [200, 299, 'published'],
      [300, 400, 'transient'],
      [401, 401, 'denied'],
      [402, 402, 'transient'],
      [403, 403, 'denied'],
      [404, 404, 'gone'],
      [405, 428, 'transient'],
      [429, 429, 'throttled'],
      [430, 599, 'transient'],
    ],
    missing: 'transient',
  },
  'bus/eventbridge-failures.ts putEventsError': {
    statuses: [
      [100, 399, 'transient'],
      [400, 400, 'invalid'],
      [401, 401, 'denied'],
      [402, 402, 'invalid'],
      [403, 403, 'denied'],
      [404, 407, 'invalid'],
      [408, 408, 'transient'],
      [409, 428, 'invalid'],
      [429, 429, 'throttled'],
      [430, 499, 'invalid'],
      [500, 599, 'transient'],
    ],
    missing: 'transient',
  },
  // No status and 408 were `invalid` here before (a timed-out evidence write logged as failed for good).
  'evidence/s3-object-lock.ts get': {
    statuses: [
      [100, 399, 'transient'],
      [400, 402, 'invalid'],
      [403, 403, 'denied'],
      [404, 404, 'absent'],
      [405, 407, 'invalid'],
      [408, 408, 'transient'],
      [409, 428, 'invalid'],
      [429, 429, 'throttled'],
      [430, 499, 'invalid'],
      [500, 599, 'transient'],
    ],
    missing: 'transient',
  },
  'evidence/s3-object-lock.ts put': {
    statuses: [
      [100, 399, 'transient'],
      [400, 402, 'invalid'],
      [403, 403, 'denied'],
      [404, 407, 'invalid'],
      [408, 408, 'transient'],
      [409, 409, 'exists'],
      [410, 411, 'invalid'],
      [412, 412, 'exists'],
      [413, 428, 'invalid'],
      [429, 429, 'throttled'],
      [430, 499, 'invalid'],
      [500, 599, 'transient'],
    ],
    missing: 'transient',
  },
};

describe('the kind each adapter gives an HTTP status', () => {
  it('covers every adapter pinned, and every status from 100 to 599 in each table', () => {
    // Assess
    expect(Object.keys(EXPECTED).sort()).toEqual(Object.keys(OBSERVE).sort());
    for (const { statuses } of Object.values(EXPECTED)) {
      expect(statuses[0]?.[0]).toBe(100);
      expect(statuses.at(-1)?.[1]).toBe(599);
      expect(statuses.slice(1).map(([from]) => from)).toEqual(statuses.slice(0, -1).map(([, to]) => to + 1));
    }
  });

  it.each(Object.keys(OBSERVE))('%s answers as it did before the shared mapping', async (name) => {
    // Prepare
    const observe = OBSERVE[name];
    const expected = EXPECTED[name];
    if (!observe || !expected) throw new Error(`no table for ${name}`);
    const want: Record<string, Outcome> = { missing: expected.missing };
    for (const [from, to, outcome] of expected.statuses) for (let s = from; s <= to; s++) want[s] = outcome;
    // Act
    const got: Record<string, Outcome> = { missing: await observe(undefined) };
    for (let s = 100; s <= 599; s++) got[s] = await observe(s);
    // Assess
    expect(got).toEqual(want);
  });
});
