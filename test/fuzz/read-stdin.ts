/**
 * Child-process entry for the stdin fuzz test: reads `-` through the CLI input reader exactly as
 * `closeloop run -` does, and prints what it got as one JSON line (counts and the rejections).
 */
import { readInputs } from '../../shared/adapters/cli/inputs.js';

const out = await readInputs(['-']);
process.stdout.write(
  `${JSON.stringify({
    docs: out.docs.map((d) => d.input),
    rejected: out.rejected,
    polluted: Object.hasOwn(Object.prototype, 'polluted'),
  })}\n`,
);
