/**
 * Issue 7, concurrency: the same events delivered three times by concurrent workers sharing one store
 * → one case, one ticket and at most one apply per case.
 */
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { generate } from '../../bench/generate.js';
import type { ActionContext } from '../../shared/actions/define.js';
import { listCases } from '../../shared/adapters/cli/cases.js';
import { LocalFolderEvidenceStore } from '../../shared/adapters/evidence/local-folder.js';
import { listTickets } from '../../shared/adapters/tickets/index.js';
import { LOCAL_COLLECTIONS, LocalTicketSchema } from '../../shared/adapters/tickets/local.js';
import { createLocalRuntime, type LocalRuntime } from '../../shared/adapters/wiring/local.js';
import { verifyChains } from '../../shared/core/evidence/audit.js';
import { type DocStore, silentLogger, systemClock } from '../../shared/core/ports.js';
import { caseLabelOf, draftForCase } from '../../shared/core/tickets/content.js';
import { contextOf } from '../../shared/core/tickets/context.js';
import { ensureTicket } from '../../shared/core/tickets/ledger.js';
import { standInS3Action } from '../helpers/stand-in-action.js';
import { tempDir } from '../helpers/tmp.js';
import { jiraHarness, makeCase, NO_GROUPING } from '../tickets/helpers.js';

const CONFIG = join(import.meta.dirname, '../../examples/config');

/** The stand-in s3.block-public-access, counting applies per bucket. */
const countingAction = (applies: Map<string, number>) =>
  standInS3Action({
    apply: async (plan) => {
      // Yield so concurrent claimers really interleave with this apply.
      await new Promise((r) => setTimeout(r, 5));
      applies.set(plan.target.bucket, (applies.get(plan.target.bucket) ?? 0) + 1);
      return { before: plan.before, requestIds: [`req-${plan.target.bucket}`] };
    },
  });

describe('three concurrent workers on one store', () => {
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => {
    tmp = tempDir();
  });
  afterEach(() => tmp.cleanup());

  it('makes one case, one ticket and at most one apply per case when every event arrives three times', async () => {
    // Prepare: 500 generated events (the bench mix), three workers with their own store connection.
    const events = generate(500, 7).filter((e) => !e.bad);
    const docs = events.map((e, i) => ({ input: `gen#${i}`, value: JSON.parse(e.text) as unknown }));
    const applies = new Map<string, number>();
    const action = countingAction(applies);
    // Acts in every generated account (as through a member role in each).
    const ctx: ActionContext = {
      clients: {} as ActionContext['clients'],
      clock: systemClock,
      log: silentLogger,
      awsAccount: async () => '000000000000',
      inAwsAccount: () => ctx,
    };
    const home = join(tmp.dir, 'home');
    const workers: LocalRuntime[] = [];
    for (let i = 0; i < 3; i++) {
      workers.push(
        await createLocalRuntime({
          home,
          configDir: CONFIG,
          apply: true,
          actionContext: ctx,
          actions: { get: (id) => (id === action.id ? action : undefined) },
          env: {},
          actor: `worker-${i}`,
        }),
      );
    }
    // The queue delivers at least once, possibly to two consumers at the same moment: every event reaching a
    // worker's remediation stage is also handed, at once, to the other two workers' (as two Lambda invocations
    // polling one SQS queue each get a copy). The three ingests alone never race an apply: the first worker's
    // case write leaves the others nothing new to publish, so without this each apply had one claimant.
    const remediators = workers.map((w) => w.stages.find((s) => s.name === 'remediate'));
    let fannedOut = 0;
    for (const [k, w] of workers.entries()) {
      const own = remediators[k];
      if (!own) throw new Error('no remediate stage');
      w.stages.splice(w.stages.indexOf(own), 1, {
        name: own.name,
        handles: own.handles,
        handle: async (event) => {
          fannedOut++;
          const all = await Promise.all(remediators.map((s) => s?.handle(event) ?? []));
          return all.flat();
        },
      });
    }
    // Act: each worker takes the whole stream, in slices, at the same time.
    await Promise.all(
      workers.map(async (w) => {
        for (let i = 0; i < docs.length; i += 50) {
          await w.ingest.ingest(docs.slice(i, i + 50));
          await w.settle();
        }
      }),
    );
    // Assess
    const store = workers[0]?.store;
    if (!store) throw new Error('no worker');
    const cases = await listCases(store);
    const single = await createLocalRuntime({ home: join(tmp.dir, 'single'), configDir: CONFIG, env: {} });
    await single.ingest.ingest(docs);
    const expected = await listCases(single.store);
    await single.close();
    expect(cases.map((c) => c.key).sort()).toEqual(expected.map((c) => c.key).sort());
    for (const c of cases) expect(c.occurrences).toBe(expected.find((e) => e.key === c.key)?.occurrences);

    const tickets = await listTickets(store);
    const perCase = new Map<string, number>();
    for (const row of tickets.rows) perCase.set(row.caseKey, (perCase.get(row.caseKey) ?? 0) + 1);
    expect([...perCase.values()].every((n) => n === 1)).toBe(true);
    expect(tickets.rows.length).toBeGreaterThan(0);
    // Ticket storms are grouped: several cases may share one parent ticket. What must never happen is two
    // tickets created for one case (or one group) — every stored ticket names a distinct case or group.
    const stored = (await store.list(LOCAL_COLLECTIONS.tickets)).map((d) => LocalTicketSchema.parse(d.value));
    expect(new Set(stored.map((t) => t.caseKey)).size).toBe(stored.length);
    const ownTickets = tickets.rows.filter((r) => !r.parentKey).map((r) => r.key);
    expect(new Set(ownTickets).size).toBe(ownTickets.length);

    expect(fannedOut).toBeGreaterThan(0);
    expect(applies.size).toBeGreaterThan(0);
    for (const [bucket, n] of applies) expect(n, bucket).toBe(1);

    const chain = await verifyChains(new LocalFolderEvidenceStore(join(home, 'evidence')), { store });
    expect(chain.problems).toEqual([]);
    expect(chain.ok).toBe(true);
    await Promise.all(workers.map((w) => w.close()));
  }, 180_000);
});

/**
 * The store as a networked one (DynamoDB, a shared SQLite file) answers: every call after a short, varying
 * delay, so concurrent workers read the same state before either writes, as they do in production. Over the
 * in-memory store each call resolves in order, and a race between two claims never happened.
 */
function laggingStore(store: DocStore): DocStore {
  return new Proxy(store, {
    get(target, prop, receiver) {
      const member: unknown = Reflect.get(target, prop, receiver);
      if (typeof member !== 'function') return member;
      return async (...args: unknown[]) => {
        await new Promise((r) => setTimeout(r, Math.random() * 3));
        return Reflect.apply(member, target, args);
      };
    },
  });
}

describe('three concurrent ticket workers on one store and one Jira', () => {
  it('creates one issue when three workers claim the same ticket at the same moment', async () => {
    // Prepare: three outbox workers each hold a create for one key (as the cases of one storm each create
    // their group's parent), over a store that answers after a delay so that all three read "no ticket yet"
    // before any writes. The same event delivered three times is stopped earlier (one outbox request per
    // event id); these are different requests, and only the ledger's claim keeps them to one issue.
    const h = await jiraHarness(NO_GROUPING);
    try {
      const c = makeCase({ n: 1 });
      const draft = draftForCase(c, h.deps.policy, { now: h.clock.now(), assigneeId: undefined });
      let drafts = 0;
      // Act
      const results = await Promise.all(
        [0, 1, 2].map(() =>
          ensureTicket(
            contextOf({ ...h.deps, store: laggingStore(h.store) }),
            c.key,
            'case',
            async () => {
              drafts++;
              return draft;
            },
            { searchFirst: false },
          ),
        ),
      );
      // Assess: one claim won and created; the others waited for its ticket
      expect(h.double.withLabel(caseLabelOf(c.key))).toHaveLength(1);
      expect(drafts).toBe(1);
      expect(results.map((r) => r.status).sort()).toEqual(['created', 'existing', 'existing']);
      const keys = new Set(results.map((r) => (r.status === 'waiting' ? undefined : r.ref.key)));
      expect(keys.size).toBe(1);
    } finally {
      await h.close();
    }
  });
});
