/** CLI commands for people operating closeloop: actions, approve, rollback, exceptions, report. */
import type * as z from 'zod';
import { declarations } from '../../actions/registry.js';
import { exceptionProblems } from '../../core/config-checks.js';
import { UsageError } from '../../core/errors.js';
import {
  ExceptionSchema,
  exceptionsRepo,
  expiryInstant,
  isActive,
  type RiskException,
} from '../../core/policy/exceptions.js';
import { approveCase, rollbackCase } from '../../core/remediation/stage.js';
import { buildReport, renderReport } from '../../core/report/report.js';
import { createLocalRuntime } from '../wiring/local.js';
import { caseId, resolveCase } from './cases.js';
import type { GlobalOptions, Io } from './commands.js';
import { renderTable } from './table.js';
import { sayTicketsWaiting } from './waiting.js';

/** Options only some commands read (parsed by functions/cli/closeloop.ts). */
export interface OpsOptions {
  id?: string;
  owner?: string;
  reason?: string;
  expires?: string;
  control?: string[];
  type?: string[];
  resource?: string[];
  account?: string[];
}

/** `closeloop actions`: every registered action's declaration (id, provider, permissions, risk, production-safe). */
export async function cmdActions(_args: readonly string[], opts: GlobalOptions, io: Io): Promise<number> {
  const list = declarations();
  if (opts.json) io.out(JSON.stringify(list, null, 2));
  else
    io.out(
      renderTable(
        ['ID', 'PROVIDER', 'RISK', 'PROD-SAFE', 'PERMISSIONS', 'TITLE'],
        list.map((a) => [a.id, a.provider, a.risk, a.productionSafe ? 'yes' : 'no', a.permissions.join(' '), a.title]),
        80,
      ),
    );
  return 0;
}

/**
 * `closeloop approve <case> --by NAME`: records the approver; with `--apply` the approved plan is applied
 * now (the action re-reads the live resource first and refuses if it moved), else at the next `run --apply`.
 */
export async function cmdApprove(args: readonly string[], opts: GlobalOptions, io: Io): Promise<number> {
  const [ref] = args;
  if (!ref) throw new UsageError('approve <case> --by NAME');
  if (!opts.actor) throw new UsageError('approve needs --by NAME (or CLOSELOOP_ACTOR): the approver is recorded');
  const rt = await createLocalRuntime(opts);
  try {
    const c = await resolveCase(rt.store, ref);
    const out = await approveCase(rt.remediation, c.key, opts.actor);
    await rt.bus.publish(out.events);
    await rt.settle();
    await sayTicketsWaiting(rt, io);
    if (out.state === 'approval-refused') {
      const detail = out.events[0]?.detail;
      const why = typeof detail?.reason === 'string' ? detail.reason : 'not an approver here';
      // Who may approve it instead: the person refused needs to know whom to ask.
      const who = typeof detail?.mayApprove === 'string' ? detail.mayApprove : undefined;
      if (opts.json) io.out(JSON.stringify({ case: c.key, state: out.state, reason: why, mayApprove: who }, null, 2));
      else io.err(`${caseId(c.key)} not approved: ${why}${who ? `; ${who}` : ''}`);
      return 1;
    }
    const after = await resolveCase(rt.store, c.key);
    if (opts.json)
      io.out(JSON.stringify({ case: c.key, state: after.remediation.state, status: after.status }, null, 2));
    else
      io.out(
        `${caseId(c.key)} approved by ${opts.actor}: remediation ${after.remediation.state} (${after.remediation.stateReason})`,
      );
    return 0;
  } finally {
    await rt.close();
  }
}

/** `closeloop rollback <case> --by NAME`: restores the recorded before-state with the ambient cloud credentials. */
export async function cmdRollback(args: readonly string[], opts: GlobalOptions, io: Io): Promise<number> {
  const [ref] = args;
  if (!ref) throw new UsageError('rollback <case> --by NAME');
  if (!opts.actor) throw new UsageError('rollback needs --by NAME (or CLOSELOOP_ACTOR): who rolled back is recorded');
  const rt = await createLocalRuntime({ ...opts, live: true });
  try {
    const c = await resolveCase(rt.store, ref);
    const out = await rollbackCase(rt.remediation, c.key, opts.actor);
    await rt.bus.publish(out.events);
    await rt.settle();
    await sayTicketsWaiting(rt, io);
    if (opts.json) io.out(JSON.stringify({ case: c.key, requestIds: out.requestIds }, null, 2));
    else io.out(`${caseId(c.key)} rolled back by ${opts.actor} (${out.requestIds.length} API calls)`);
    return 0;
  } finally {
    await rt.close();
  }
}

const exceptionRows = (list: readonly RiskException[], now: Date) =>
  list.map((e) => [
    e.id,
    e.revokedAt ? `revoked by ${e.revokedBy ?? '?'}` : isActive(e, now) ? 'active' : 'expired',
    e.owner,
    e.expires,
    Object.entries(e.scope)
      .map(([k, v]) => `${k}=${(v ?? []).join(',')}`)
      .join(' '),
    e.justification,
  ]);

/**
 * `closeloop exceptions list | add --id … --owner … --reason … --expires … [--control|--type|--resource|--account …]
 * | revoke <id> --by NAME`. Adding or revoking re-evaluates every case at once (suppress or re-open).
 */
export async function cmdExceptions(
  args: readonly string[],
  opts: GlobalOptions & OpsOptions,
  io: Io,
): Promise<number> {
  const [sub, id] = args;
  const rt = await createLocalRuntime({ ...opts, readOnly: sub === 'list' || sub === undefined });
  const repo = exceptionsRepo(rt.store, rt.clock);
  try {
    const now = rt.clock.now();
    if (sub === undefined || sub === 'list') {
      const list = await rt.exceptions();
      if (opts.json) io.out(JSON.stringify(list, null, 2));
      else io.out(renderTable(['ID', 'STATE', 'OWNER', 'EXPIRES', 'SCOPE', 'WHY'], exceptionRows(list, now), 60));
      return 0;
    }
    let changed: boolean;
    let exception: RiskException;
    if (sub === 'add') {
      if (!opts.id || !opts.owner || !opts.reason || !opts.expires)
        throw new UsageError(
          'exceptions add needs --id, --owner, --reason and --expires (and at least one scope flag)',
        );
      const scope = {
        ...(opts.control?.length ? { controls: opts.control } : {}),
        ...(opts.type?.length ? { types: opts.type } : {}),
        ...(opts.resource?.length ? { resources: opts.resource } : {}),
        ...(opts.account?.length ? { accounts: opts.account } : {}),
      };
      const input = {
        id: opts.id,
        owner: opts.owner,
        justification: opts.reason,
        expires: opts.expires,
        scope,
        createdBy: opts.actor ?? rt.actor,
      };
      const parsed = ExceptionSchema.safeParse(input);
      if (!parsed.success) throw new UsageError(`exceptions add: ${flagErrors(parsed.error)}`);
      // A glob that can never match or a malformed owner e-mail would store an exception that does nothing.
      const problems = exceptionProblems(parsed.data);
      if (problems.length > 0)
        throw new UsageError(
          `exceptions add: ${problems.map((p) => `${FLAG_OF[String(p.path[0])] ?? '--resource'}: ${p.message}`).join('; ')}`,
        );
      // An acceptance that has already lapsed accepts nothing: said, not stored.
      if (expiryInstant(parsed.data.expires) <= now.getTime())
        throw new UsageError(`exceptions add: --expires ${opts.expires} is not in the future`);
      ({ changed, exception } = await repo.add(parsed.data));
    } else if (sub === 'revoke') {
      if (!id) throw new UsageError('exceptions revoke <id> --by NAME');
      const by = opts.actor ?? rt.actor;
      // An exception of exceptions.yaml is revoked by storing a revoked copy (a stored copy wins over the file's).
      const fromFile = rt.config.exceptions.find((e) => e.id === id);
      const stored = (await repo.list()).some((e) => e.id === id);
      if (fromFile && !stored) {
        ({ changed, exception } = await repo.add({ ...fromFile, revokedBy: by, revokedAt: now.toISOString() }));
      } else ({ changed, exception } = await repo.revoke(id, by));
    } else throw new UsageError('exceptions list | add … | revoke <id>');
    const swept = await rt.ingest.sweepExceptions();
    await rt.settle();
    await sayTicketsWaiting(rt, io);
    if (opts.json) io.out(JSON.stringify({ changed, exception, ...swept }, null, 2));
    else
      io.out(
        `exception ${exception.id} ${sub === 'add' ? (changed ? 'stored' : 'unchanged') : changed ? 'revoked' : 'already revoked'}; ` +
          `${swept.suppressed} cases newly suppressed, ${swept.reopened} re-opened`,
      );
    return 0;
  } finally {
    await rt.close();
  }
}

/** The CLI flag of each exception field, for errors that name what the user typed. */
const FLAG_OF: Record<string, string> = {
  id: '--id',
  owner: '--owner',
  justification: '--reason',
  expires: '--expires',
  scope: 'a scope flag (--control, --type, --resource, --account)',
};

/** One line per problem, naming the flag (`--reason: too short …`), not the schema's field path. */
function flagErrors(error: z.ZodError): string {
  return error.issues.map((i) => `${FLAG_OF[String(i.path[0] ?? '')] ?? i.path.join('.')}: ${i.message}`).join('; ');
}

/** `closeloop report`: time to ticket, fix and verified closure by severity, owner, team and environment. */
export async function cmdReport(_args: readonly string[], opts: GlobalOptions, io: Io): Promise<number> {
  const rt = await createLocalRuntime({ ...opts, readOnly: true });
  try {
    const report = await buildReport(rt.store, rt.clock.now(), { slaDays: rt.config.policy.verification.slaDays });
    io.out(opts.json ? JSON.stringify(report, null, 2) : renderReport(report));
    return 0;
  } finally {
    await rt.close();
  }
}
