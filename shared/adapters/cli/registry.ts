/** The command table of the `closeloop` CLI. */
import { cmdCases, cmdDeadLetters, cmdNormalize, cmdPlan, cmdRun, type GlobalOptions, type Io } from './commands.js';
import { cmdEvidence, cmdTickets, cmdVerify } from './more.js';
import { cmdActions, cmdApprove, cmdExceptions, cmdReport, cmdRollback, type OpsOptions } from './ops.js';

export type Command = (
  args: readonly string[],
  opts: GlobalOptions & OpsOptions & { format?: string },
  io: Io,
) => Promise<number>;

export const commands: Record<string, Command> = {
  normalize: cmdNormalize,
  plan: cmdPlan,
  run: cmdRun,
  cases: cmdCases,
  deadletters: cmdDeadLetters,
  tickets: cmdTickets,
  evidence: cmdEvidence,
  verify: cmdVerify,
  actions: cmdActions,
  approve: cmdApprove,
  rollback: cmdRollback,
  exceptions: cmdExceptions,
  report: cmdReport,
};

export const USAGE = `closeloop — closes the loop on cloud security findings

usage: closeloop <command> [inputs…] [options]

commands
  normalize <file|dir|->   print the normalized findings (nothing stored)
  plan <file|dir|->        normalize, enrich, decide and plan remediations; writes nothing
  run <file|dir|->         the whole pipeline on the embedded store (dry-run unless --apply)
  cases [case]             list cases (or show one by key or short id)
  deadletters              rejected inputs and failed stage deliveries, with reasons
  tickets                  the case ↔ ticket map (Jira when JIRA_BASE_URL is set, else the local sink)
  evidence verify          check every evidence chain; names the first broken link
  evidence show <case>     the case's story from its evidence records
  evidence export <case>   a bundle an auditor reads without closeloop (--format json|md, optional file)
  verify                   re-verify cases closed recently (reopens what no longer holds)
  actions                  the registered remediation actions: provider, permissions, risk, production-safe
  approve <case> --by NAME approve a case's remediation (applied now with --apply, else at the next run --apply)
  rollback <case> --by NAME restore the before-state recorded when the fix was applied (live credentials)
  exceptions [list]        risk exceptions from exceptions.yaml and the store, with their state
  exceptions add --id ID --owner EMAIL --reason TEXT --expires DATE [--control C] [--type GLOB]
                 [--resource GLOB] [--account ID]   accept a risk (re-evaluates every case)
  exceptions revoke <id> --by NAME                  end an exception early (its cases re-open)
  report                   time to ticket / fix / verified closure by severity, owner, team, environment;
                           open cases past SLA; owner gaps

options
  --json                   machine-readable output
  --config DIR             registry.yaml, policy.yaml, exceptions.yaml (default: $CLOSELOOP_CONFIG, else
                           the folder the store's last run, verify, approve, rollback or exceptions add|revoke
                           was given)
  --home DIR               the embedded store's folder (default: $CLOSELOOP_HOME or .closeloop)
  --apply                  execute remediations (run, approve) with the ambient cloud credentials
  --live                   read live resources for plans (ambient credentials) without applying
  --by NAME                who is acting (approve, rollback, exceptions; default: $CLOSELOOP_ACTOR)
  -h, --help

exit codes: 0 all inputs accepted, 1 some rejected (kept as dead letters), 2 usage error, 3 the command failed`;
