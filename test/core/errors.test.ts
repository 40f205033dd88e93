import { describe, expect, it } from 'vitest';
import { AdapterError, scheduledRetryAfterSeconds } from '../../shared/core/errors.js';
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
