/**
 * A create that failed ambiguously (a timeout or a reset after which the issue may exist) must be known to
 * every later create for the case, not only to the request that failed: a later event queues its own create
 * once the pending marker is an hour old, and Jira's search lags a new issue by minutes.
 */
import { describe, expect, it } from 'vitest';
import { LocalTicketSchema } from '../../shared/adapters/tickets/local.js';
import { AdapterError } from '../../shared/core/errors.js';
import { AMBIGUOUS_CREATE_WAIT_MS, drainOutbox } from '../../shared/core/tickets/outbox.js';
import type { TicketSink } from '../../shared/core/tickets/ports.js';
import { createTicketStage } from '../../shared/core/tickets/stage.js';
import { decided, localHarness, makeCase, putCase, readCase } from './helpers.js';

/** Jira's search shows an issue this long after it was made (under the ambiguous-create wait). */
const SEARCH_LAG_MS = 4 * 60_000;

describe('a create that failed ambiguously', () => {
  it('is not made again by a create a later event queues after the pending marker aged: that create waits and searches first', async () => {
    // Prepare: creates time out; the first before Jira made the issue, the second after it made it; the
    // label search shows an issue only SEARCH_LAG_MS after it was made
    const h = localHarness();
    const c = makeCase();
    await putCase(h.store, c);
    let creates = 0;
    const lagging: TicketSink = Object.create(h.sink, {
      createTicket: {
        value: async (draft: Parameters<TicketSink['createTicket']>[0]) => {
          creates++;
          if (creates === 1) throw new AdapterError('transient', 'jira create issue: ECONNRESET');
          const ref = await h.sink.createTicket(draft);
          if (creates === 2) throw new AdapterError('transient', 'jira create issue: timeout of 2000ms exceeded');
          return ref;
        },
      },
      findTicket: {
        value: async (label: string) => {
          const ref = await h.sink.findTicket(label);
          if (!ref) return undefined;
          const made = LocalTicketSchema.parse((await h.store.get('local-tickets', ref.key))?.value).createdAt;
          return h.clock.now().getTime() - Date.parse(made) >= SEARCH_LAG_MS ? ref : undefined;
        },
      },
    });
    const deps = { ...h.deps, sink: lagging };
    const stage = createTicketStage(deps);
    await stage.handle(decided(c));
    // Act: the outbox's retry, 58 minutes on, times out after Jira made the issue; three minutes later (the
    // pending marker is an hour old) the next decision of the case queues a create; drains follow
    h.clock.advance(58 * 60_000);
    await drainOutbox(deps);
    h.clock.advance(3 * 60_000);
    await stage.handle(decided(c, { isNewCase: false }));
    const ticketsRightAfter = await h.store.list('local-tickets');
    h.clock.advance(AMBIGUOUS_CREATE_WAIT_MS);
    await drainOutbox(deps);
    // Assess: one issue, found and linked; nothing waits in the outbox
    expect(ticketsRightAfter).toHaveLength(1);
    expect(await h.store.list('local-tickets')).toHaveLength(1);
    expect((await readCase(h.store, c.key)).ticket?.key).toBe('LOCAL-1');
    expect(await h.store.list('ticket-outbox')).toEqual([]);
    expect((await h.store.list('ticket-ledger')).map((d) => (d.value as { state: string }).state)).toEqual(['created']);
  });
});
