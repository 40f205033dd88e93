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
 * Ends the scope of a Linux process whose pid namespace could not be read: its process ids may be another
 * container's (same host name, shared volume), so a scope carrying it never matches, its own included.
 */
export const UNKNOWN_PID_NAMESPACE = 'pid-namespace-unknown';

/**
 * Where process ids mean the same process: the host name and, on Linux, the pid namespace (two containers
 * sharing a volume, and a host name with host networking, still each have their own process ids). On Linux
 * without a readable namespace (no /proc mounted, access refused), the scope says so ({@link UNKNOWN_PID_NAMESPACE}).
 */
export function processScope(
  platform: NodeJS.Platform = process.platform,
  pidNamespace: () => string = () => readlinkSync('/proc/self/ns/pid'),
): string {
  let ns = '';
  try {
    ns = pidNamespace();
  } catch {
    // Read below: unknown on Linux, none elsewhere.
  }
  if (ns) return `${hostname()} ${ns}`;
  // Not Linux: no pid namespaces (a container there runs a Linux of its own, which has /proc): the host name.
  return platform === 'linux' ? `${hostname()} ${UNKNOWN_PID_NAMESPACE}` : hostname();
}

/**
 * True only when sure the process has ended: it ran where this one runs (same scope, its pid namespace known)
 * and its pid no longer exists (ESRCH). Another scope, an unknown namespace, a live pid (or one reused since),
 * no permission to ask: false, and the lease runs out on its own.
 */
export function processGone(p: LeaseProcess, scope: string = processScope()): boolean {
  if (p.scope !== scope || scope.endsWith(UNKNOWN_PID_NAMESPACE) || p.pid === process.pid) return false;
  try {
    process.kill(p.pid, 0);
    return false;
  } catch (e) {
    return hasErrorCode(e, 'ESRCH');
  }
}
