import { describe, expect, it } from 'vitest';
import { oneLine } from '../../../shared/core/util/text.js';

describe('oneLine', () => {
  it('drops the bidirectional controls that reorder what a terminal shows, with the control characters', () => {
    // Prepare: an override that shows "payments-prod" as something else, an isolate, a mark, a CSI
    const spoofed = 'acme-\u202edorp-stnemyap\u202c bucket\u2066x\u2069\u200f \u009b31m';
    // Act
    const shown = oneLine(spoofed);
    // Assess
    expect(shown).not.toMatch(/[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\p{Cc}]/u);
    expect(shown).toBe('acme- dorp-stnemyap  bucket x   31m');
  });
});
