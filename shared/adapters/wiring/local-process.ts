/**
 * The local event queue's process check: a run killed on this machine (SIGKILL, a crash, a closed
 * terminal) gives its queued events back at once instead of after their lease. The SQLite store in WAL mode
 * is shared only by processes of one machine, so a lease's holder is nearly always one this check can see.
 */
import { readlinkSync } from 'node:fs';
import { hostname } from 'node:os';
import { hasErrorCode } from '../../core/errors.js';
import type { LeaseProcess } from '../../core/pipeline/stage.js';

/**
 * Where process ids mean the same process: the host name and, on Linux, the pid namespace (two containers
 * sharing a volume, and a host name with host networking, still each have their own process ids).
 */
export function processScope(): string {
  let ns = '';
  try {
    ns = readlinkSync('/proc/self/ns/pid');
  } catch {
    // Not Linux (no /proc): the host name alone.
  }
  return ns ? `${hostname()} ${ns}` : hostname();
}

/**
 * True only when sure the process has ended: it ran where this one runs (same scope) and its pid no longer
 * exists (ESRCH). Another scope, a live pid (or one reused since), no permission to ask: false, and the
 * lease runs out on its own.
 */
export function processGone(p: LeaseProcess, scope: string = processScope()): boolean {
  if (p.scope !== scope || p.pid === process.pid) return false;
  try {
    process.kill(p.pid, 0);
    return false;
  } catch (e) {
    return hasErrorCode(e, 'ESRCH');
  }
}
