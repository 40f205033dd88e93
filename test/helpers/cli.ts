/** Runs the `closeloop` CLI in process and captures its output and exit code. */
import { main } from '../../functions/cli/closeloop.js';

export async function cli(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, { out: (t) => out.push(t), err: (t) => err.push(t) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}
