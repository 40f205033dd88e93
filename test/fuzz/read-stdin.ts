/**
 * Child-process entry for the stdin fuzz test: reads `-` through the CLI input reader exactly as
 * `closeloop run -` does, and prints what it got as one JSON line (each document's input and a digest of
 * its value, the rejections).
 */
import { createHash } from 'node:crypto';
import { readInputs } from '../../shared/adapters/cli/inputs.js';

const out = await readInputs(['-']);
process.stdout.write(
  `${JSON.stringify({
    docs: out.docs.map((d) => d.input),
    digests: out.docs.map((d) => createHash('sha256').update(JSON.stringify(d.value)).digest('hex')),
    rejected: out.rejected,
    polluted: Object.hasOwn(Object.prototype, 'polluted'),
  })}\n`,
);
