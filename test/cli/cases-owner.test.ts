import { describe, expect, it } from 'vitest';
import { renderCase, renderCases } from '../../shared/adapters/cli/cases.js';
import type { Case } from '../../shared/core/model/case.js';
import { makeCase } from '../tickets/helpers.js';

/** A case whose owner the triage owner stands in for; `complete: false` when the live lookup failed. */
function triaged(complete: boolean): Case {
  const base = makeCase({ owner: 'triage@acme.example' });
  return {
    ...base,
    enrichment: {
      ...base.enrichment,
      unowned: true,
      complete,
      provenance: { ...base.enrichment.provenance, owner: { via: 'triage', detail: 'x' } },
    },
  };
}

describe('the owner in the case table and card', () => {
  it('says an owner a failed lookup left to triage is unknown, and one nothing names is unowned', () => {
    // Act
    const failedCard = renderCase(triaged(false));
    const failedRow = renderCases([triaged(false)]);
    const noneCard = renderCase(triaged(true));
    const noneRow = renderCases([triaged(true)]);
    // Assess
    expect(failedCard).toContain('triage@acme.example (OWNER UNKNOWN: lookup failed; triage)');
    expect(failedCard).not.toContain('UNOWNED');
    expect(failedRow).toContain('triage@acme.example (owner unknown)');
    expect(noneCard).toContain('triage@acme.example (UNOWNED: triage)');
    expect(noneRow).toContain('triage@acme.example (unowned)');
  });
});
