import { describe, expect, it } from 'vitest';
import { renderCase, renderCases } from '../../shared/adapters/cli/cases.js';
import type { Case } from '../../shared/core/model/case.js';
import { makeCase } from '../tickets/helpers.js';

/** A case applied by `applyAction`, for which decide has chosen s3.block-public-access since. */
function appliedBy(applyAction: string, state: Case['remediation']['state'] = 'applied'): Case {
  const base = makeCase();
  return { ...base, remediation: { ...base.remediation, mode: 'auto', state, applyAction } };
}

describe('the action a case table and card name', () => {
  it('names the action that applied for an apply state, with the one decide chooses now beside it', () => {
    // Act
    const card = renderCase(appliedBy('test.close-bucket'));
    const row = renderCases([appliedBy('test.close-bucket', 'rolled-back')]);
    const same = renderCases([appliedBy('s3.block-public-access')]);
    const replanned = renderCase(appliedBy('test.close-bucket', 'awaiting-approval'));
    // Assess
    expect(card).toContain(
      'remediation  test.close-bucket, state applied (decide now chooses s3.block-public-access, mode auto)',
    );
    expect(row).toContain('test.close-bucket [rolled-back; now s3.…');
    expect(same).toContain('s3.block-public-access [auto, applied]');
    // A plan of decide's current action waits: its state is that action's.
    expect(replanned).toContain('remediation  s3.block-public-access, mode auto, state awaiting-approval');
  });
});
