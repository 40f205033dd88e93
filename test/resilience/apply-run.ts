/**
 * Child-process entry for the crash test with --apply: `closeloop run <input> --apply` as the CLI runs it
 * (cmdRun), with the stand-in s3.block-public-access whose apply appends the bucket to a call log first
 * (synchronously: the change is made in the "cloud" before closeloop hears back), so the log is the action's
 * own record of every apply, whatever happens to the process after.
 *
 * argv: <input> <home> <config> <call log> [hang at the Nth apply: after logging it, never return; 0 never]
 * [clock ahead by this many minutes]
 */
import { appendFileSync } from 'node:fs';
import type { ActionContext } from '../../shared/actions/define.js';
import { cmdRun } from '../../shared/adapters/cli/commands.js';
import { type Clock, silentLogger } from '../../shared/core/ports.js';
import { standInS3Action } from '../helpers/stand-in-action.js';

const [input = '', home = '', configDir = '', callLog = '', hangAt = '0', aheadMinutes = '0'] = process.argv.slice(2);
const clock: Clock = { now: () => new Date(Date.now() + Number(aheadMinutes) * 60_000) };
let applies = 0;
const action = standInS3Action({
  apply: async (plan) => {
    appendFileSync(callLog, `${plan.target.bucket}\n`);
    applies++;
    // The parent kills the run here: the bucket changed, closeloop has not recorded the outcome.
    if (applies === Number(hangAt)) await new Promise(() => setInterval(() => {}, 1_000));
    return { before: plan.before, requestIds: [`req-${plan.target.bucket}`] };
  },
});
// Acts in every generated account (as through a member role in each).
const ctx: ActionContext = {
  clients: {} as ActionContext['clients'],
  clock,
  log: silentLogger,
  awsAccount: async () => '000000000000',
  inAwsAccount: () => ctx,
};
const code = await cmdRun(
  [input],
  {
    home,
    configDir,
    apply: true,
    clock,
    actionContext: ctx,
    actions: { get: (id) => (id === action.id ? action : undefined) },
    env: { ...process.env, JIRA_BASE_URL: '' },
    json: false,
  },
  { out: () => {}, err: (t) => process.stderr.write(`${t}\n`) },
);
process.exit(code);
