/** What the ticket outbox still holds after a command that sends tickets, told on stderr. */
import type { DocStore } from '../../core/ports.js';
import { outboxLine, outboxSummary } from '../tickets/index.js';
import { oneLine } from './table.js';

/**
 * After a command that sends tickets: what is left in the outbox (Jira down, throttling or refusing; the
 * storm budget). The command finished; its tickets did not all go out, and a person should know why
 * without reading the store.
 */
export async function sayTicketsWaiting(rt: { store: DocStore }, io: { err(text: string): void }): Promise<void> {
  const line = outboxLine(await outboxSummary(rt.store));
  if (line) io.err(`\n${oneLine(line)}`);
}
