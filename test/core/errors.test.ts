import { describe, expect, it } from 'vitest';
import { AdapterError, kindOfHttpStatus, scheduledRetryAfterSeconds } from '../../shared/core/errors.js';
import { CaseNotWrittenError } from '../../shared/core/pipeline/announced.js';

describe('scheduledRetryAfterSeconds', () => {
  it('gives a pending case write 5 s after its first failed delivery, longer after each later one, capped', () => {
    // Prepare
    const e = new CaseNotWrittenError('aws|k', 2, 1);
    // Act
    const waits = [1, 2, 3, 4, 5, 6, 50].map((attempt) => scheduledRetryAfterSeconds(e, attempt));
    // Assess
    expect(waits).toEqual([5, 20, 60, 120, 180, 180, 180]);
    expect(e.retryAfterSeconds).toBe(5);
  });

  it('reads an unusable receive count as the first delivery', () => {
    // Prepare
    const e = new CaseNotWrittenError('aws|k', 1, undefined);
    // Act / Assess
    expect([0, -3, Number.NaN, 1.5].map((attempt) => scheduledRetryAfterSeconds(e, attempt))).toEqual([5, 5, 5, 5]);
  });

  it('asks for no scheduled wait when the error only carries a remote Retry-After, or is not retryable', () => {
    // Prepare
    const throttled = new AdapterError('throttled', 'Jira 429', { retryAfterSeconds: 2 });
    const denied = Object.assign(new AdapterError('denied', 'no'), { retryAfterSchedule: [5] });
    // Act / Assess
    expect(scheduledRetryAfterSeconds(throttled, 1)).toBeUndefined();
    expect(scheduledRetryAfterSeconds(denied, 1)).toBeUndefined();
    expect(scheduledRetryAfterSeconds(new Error('boom'), 1)).toBeUndefined();
    expect(scheduledRetryAfterSeconds('transient', 1)).toBeUndefined();
  });
});

describe('kindOfHttpStatus', () => {
  it('reads the statuses every adapter shares, and no status as the moment', () => {
    // Act
    const kinds = [401, 403, 404, 410, 409, 412, 408, 425, 429, 400, 422, 500, 503, 599, 302, undefined].map((s) =>
      kindOfHttpStatus(s),
    );
    // Assess
    expect(kinds).toEqual([
      'denied',
      'denied',
      'gone',
      'gone',
      'conflict',
      'conflict',
      'transient',
      'throttled',
      'throttled',
      'invalid',
      'invalid',
      'transient',
      'transient',
      'transient',
      'transient',
      'transient',
    ]);
  });

  it("takes an adapter's own kind for a status first, then its kind for every other 4xx, then its kind for none", () => {
    // Prepare
    const overrides = { '4xx': 'transient', 400: 'invalid', 503: 'throttled', none: 'invalid' } as const;
    // Act
    const kinds = [400, 404, 409, 418, 503, 500, undefined, 0].map((s) => kindOfHttpStatus(s, overrides));
    // Assess
    expect(kinds).toEqual([
      'invalid',
      'transient',
      'transient',
      'transient',
      'throttled',
      'transient',
      'invalid',
      'invalid',
    ]);
  });
});
