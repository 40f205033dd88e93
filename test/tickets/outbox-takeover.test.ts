/**
 * A ticket create whose sender died mid-send (a killed run, a Lambda timed out) leaves its outbox entry
 * `sending`; whoever takes it over once the send lease ran out cannot tell whether the issue was made, and
 * must look for it before creating one.
 */
import { describe, expect, it } from 'vitest';
import { AMBIGUOUS_CREATE_WAIT_MS, drainOutbox } from '../../shared/core/tickets/outbox.js';
import type { TicketSink } from '../../shared/core/tickets/ports.js';
import { createTicketStage } from '../../shared/core/tickets/stage.js';
import { decided, localHarness, makeCase, putCase, readCase } from './helpers.js';

describe('an outbox create whose sender died', () => {
  it('is not created twice by the run that takes it over once the send lease ran out: it finds the issue the dead sender made', async () => {
    // Prepare: the first sender's create reaches the sink, then its process dies (the call never returns)
    const h = localHarness();
    const c = makeCase();
    await putCase(h.store, c);
    const dying: TicketSink = Object.create(h.sink, {
      createTicket: {
        value: async (draft: Parameters<TicketSink['createTicket']>[0]) => {
          await h.sink.createTicket(draft);
          return new Promise<never>(() => {});
        },
      },
    });
    void createTicketStage({ ...h.deps, sink: dying }).handle(decided(c));
    await new Promise((r) => setTimeout(r, 50));
    const entriesAfterDeath = await h.store.list('ticket-outbox');
    // Act: the next run drains after the send lease ran out, and once more later
    h.clock.advance(3 * 60_000);
    await drainOutbox(h.deps);
    const ticketsEarly = await h.store.list('local-tickets');
    h.clock.advance(AMBIGUOUS_CREATE_WAIT_MS);
    await drainOutbox(h.deps);
    // Assess: one issue, found and linked, nothing left in the outbox
    expect(entriesAfterDeath).toHaveLength(1);
    expect(ticketsEarly).toHaveLength(1);
    expect(await h.store.list('local-tickets')).toHaveLength(1);
    expect((await readCase(h.store, c.key)).ticket?.key).toBe('LOCAL-1');
    expect(await h.store.list('ticket-outbox')).toEqual([]);
  });
});
