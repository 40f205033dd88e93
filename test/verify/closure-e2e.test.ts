/**
 * Verified closure end to end through the stages on one store: evidence, remediation (the real
 * s3.block-public-access action), tickets (local sink), verify (the real S3 re-read) and upstream
 * (GuardDuty archive), with the S3 and GuardDuty APIs doubled by aws-sdk-client-mock.
 */
import { ArchiveFindingsCommand, GuardDutyClient } from '@aws-sdk/client-guardduty';
import {
  GetBucketAclCommand,
  GetBucketPolicyCommand,
  GetBucketPolicyStatusCommand,
  GetBucketTaggingCommand,
  GetPublicAccessBlockCommand,
  PutPublicAccessBlockCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import s3BlockPublicAccess from '../../shared/actions/s3.block-public-access.js';
import { MemoryEvidenceStore } from '../../shared/adapters/evidence/memory.js';
import { MemoryDocStore } from '../../shared/adapters/store/memory.js';
import { LocalTicketSink } from '../../shared/adapters/tickets/local.js';
import { GuardDutyUpstream } from '../../shared/adapters/upstream/guardduty.js';
import { RoutingUpstreamStatus } from '../../shared/adapters/upstream/route.js';
import { caseStory, verifyChains } from '../../shared/core/evidence/audit.js';
import { EvidenceRecordSchema } from '../../shared/core/evidence/record.js';
import { createEvidenceStage } from '../../shared/core/evidence/stage.js';
import { type Case, CaseSchema } from '../../shared/core/model/case.js';
import type { PipelineEvent } from '../../shared/core/model/events.js';
import { reevaluate } from '../../shared/core/pipeline/decide.js';
import { InProcessBus } from '../../shared/core/pipeline/stage.js';
import type { RiskException } from '../../shared/core/policy/exceptions.js';
import { DecidePolicySchema } from '../../shared/core/policy/policy.js';
import { silentLogger } from '../../shared/core/ports.js';
import { ApplyPolicySchema } from '../../shared/core/remediation/policy.js';
import { createRemediationStage } from '../../shared/core/remediation/stage.js';
import { createTicketStage } from '../../shared/core/tickets/stage.js';
import { handleJiraWebhook, signJiraBody } from '../../shared/core/tickets/webhook.js';
import { VerificationPolicySchema } from '../../shared/core/verify/policy.js';
import { createVerifyStage, reverifyRecent, type VerifyDeps } from '../../shared/core/verify/stage.js';
import { testContext } from '../helpers/action-context.js';
import { policy as ticketPolicy } from '../tickets/helpers.js';
import { BUCKET_ARN, CASE_KEY, fixedClock, makeCase, makeFinding, putCase, putFinding } from './helpers.js';

const s3 = mockClient(S3Client);
const guardduty = mockClient(GuardDutyClient);
const ALL_ON = { BlockPublicAcls: true, IgnorePublicAcls: true, BlockPublicPolicy: true, RestrictPublicBuckets: true };
const SECRET = 'whsec-0000000000000000';

describe('verified closure end to end on one store', () => {
  let store: MemoryDocStore;
  let evidence: MemoryEvidenceStore;
  let sink: LocalTicketSink;
  let bus: InProcessBus;
  let verifyDeps: VerifyDeps;
  /** The bucket's live Block Public Access flags, as S3 answers them. */
  let flags: typeof ALL_ON | undefined;
  const clock = fixedClock('2026-11-20T10:00:00.000Z');

  beforeEach(async () => {
    s3.reset();
    guardduty.reset();
    flags = undefined;
    s3.on(GetPublicAccessBlockCommand).callsFake(() => {
      if (flags) return { PublicAccessBlockConfiguration: flags };
      throw Object.assign(new Error('NoSuchPublicAccessBlockConfiguration'), {
        name: 'NoSuchPublicAccessBlockConfiguration',
        $metadata: { httpStatusCode: 404 },
      });
    });
    s3.on(PutPublicAccessBlockCommand).callsFake((input: { PublicAccessBlockConfiguration: typeof ALL_ON }) => {
      flags = input.PublicAccessBlockConfiguration;
      return { $metadata: { requestId: 'S3-PUT-1' } };
    });
    s3.on(GetBucketAclCommand).resolves({ Owner: { ID: '0'.repeat(64) }, Grants: [] });
    const none = (name: string) => Object.assign(new Error(name), { name, $metadata: { httpStatusCode: 404 } });
    s3.on(GetBucketPolicyCommand).rejects(none('NoSuchBucketPolicy'));
    s3.on(GetBucketPolicyStatusCommand).rejects(none('NoSuchBucketPolicy'));
    s3.on(GetBucketTaggingCommand).rejects(none('NoSuchTagSet'));
    guardduty.on(ArchiveFindingsCommand).resolves({ $metadata: { requestId: 'GD-ARCHIVE-1' } });

    store = new MemoryDocStore({ clock });
    evidence = new MemoryEvidenceStore();
    sink = new LocalTicketSink(store, clock);
    const ctx = testContext({ clock });
    const actions = { get: (id: string) => (id === s3BlockPublicAccess.id ? s3BlockPublicAccess : undefined) };
    verifyDeps = {
      store,
      evidence,
      actions,
      ctx,
      upstream: new RoutingUpstreamStatus({
        guardduty: new GuardDutyUpstream({ client: () => new GuardDutyClient({ region: 'us-east-1' }), archive: true }),
      }),
      clock,
      log: silentLogger,
      policy: VerificationPolicySchema.parse({ attempts: 2, backoffMs: 1 }),
      sleep: async () => {},
    };
    bus = new InProcessBus(
      [
        createEvidenceStage({ store, evidence, clock, log: silentLogger }),
        createRemediationStage({
          store,
          actions,
          ctx,
          clock,
          log: silentLogger,
          policy: ApplyPolicySchema.parse({}),
          apply: true,
          actor: 'arn:aws:iam::111122223333:role/closeloop-remediate',
        }),
        createTicketStage({ store, sink, clock, log: silentLogger, policy: ticketPolicy() }),
        createVerifyStage(verifyDeps),
      ],
      silentLogger,
    );
    await putFinding(store, makeFinding());
  });

  const readCase = async (): Promise<Case> => CaseSchema.parse((await store.get('cases', CASE_KEY))?.value);
  const records = async () => (await evidence.listAll()).map((s) => EvidenceRecordSchema.parse(s.raw));
  const ticket = async () => {
    const t = await sink.get('LOCAL-1');
    if (!t) throw new Error('no ticket');
    return t;
  };
  const decided: PipelineEvent = {
    id: 'decided:1',
    type: 'case.decided',
    caseKey: CASE_KEY,
    at: '2026-11-20T10:00:00.000Z',
    isNewCase: true,
    recurrence: false,
    statusChanged: true,
  };

  it('applies, verifies by re-reading, archives upstream, closes the ticket with the evidence, and reopens both on a regression', async () => {
    // Prepare
    await putCase(
      store,
      makeCase({ remediation: { mode: 'auto', state: 'none' }, enrichment: { environment: 'dev' } }),
    );
    // Act 1: the decision runs through every stage.
    await bus.publish([decided]);
    await bus.drain();
    // Assess 1
    const closed = await readCase();
    expect(closed).toMatchObject({ status: 'verified', verification: { verdict: 'verified', trigger: 'apply' } });
    expect(guardduty).toHaveReceivedCommandWith(ArchiveFindingsCommand, {
      DetectorId: '00000000000000000000000000000000',
      FindingIds: ['11111111111111111111111111111111'],
    });
    const rs = await records();
    expect(rs.map((r) => r.step)).toEqual(['decision', 'plan', 'apply', 'upstream', 'verify']);
    expect(rs[2]?.calls).toEqual([{ api: 's3:PutPublicAccessBlock', requestId: 'S3-PUT-1', outcome: 'made' }]);
    expect(rs[3]?.calls).toEqual([{ api: 'guardduty:ArchiveFindings', requestId: 'GD-ARCHIVE-1', outcome: 'updated' }]);
    const verifyRecord = rs[4];
    const done = await ticket();
    expect(done.status).toBe('Done');
    expect(done.comments.at(-1)?.text).toContain(`Verified fixed. Verdict verified on re-read of the resource`);
    expect(done.comments.at(-1)?.text).toContain(verifyRecord?.hash);

    // Act 2: someone turns the flags off; the scheduled re-verification runs a day later.
    flags = { ...ALL_ON, BlockPublicPolicy: false, RestrictPublicBuckets: false };
    clock.set('2026-11-21T10:00:00.000Z');
    const result = await reverifyRecent(verifyDeps, clock.now());
    await bus.publish(result.events);
    await bus.drain();
    // Assess 2
    expect(result).toMatchObject({ checked: 1, reopened: 1 });
    const reopened = await readCase();
    expect(reopened).toMatchObject({ status: 'reopened', reopenCount: 1, closedAt: null });
    expect(reopened.statusReason).toContain('regression: the fix no longer holds');
    expect(reopened.statusReason).toContain('publicAccessBlock: ');
    const again = await ticket();
    expect(again.status).toBe('Reopened');
    const comment = again.comments.at(-1)?.text ?? '';
    expect(comment).toContain('Reopened: regression: the fix no longer holds');
    expect(comment).toContain('"BlockPublicPolicy":true');
    const regression = (await records()).filter((r) => r.step === 'verify').at(-1);
    expect(regression).toMatchObject({ verdict: 'failed', detail: { trigger: 'scheduled' } });
    expect(comment).toContain(regression?.hash);
    expect((await records()).at(-1)?.step).toBe('reopen');
    expect(await verifyChains(evidence, { store })).toMatchObject({ ok: true });
  });

  it('reopens the case when a person reopens its closed ticket, and closes both with new evidence when they close it again', async () => {
    // Prepare: applied, verified, ticket Done
    await putCase(
      store,
      makeCase({ remediation: { mode: 'auto', state: 'none' }, enrichment: { environment: 'dev' } }),
    );
    await bus.publish([decided]);
    await bus.drain();
    const person = { accountId: '000000:00000000-0000-0000-0000-000000000009' };
    const webhook = async (timestamp: number, from: string, to: string, category: string) => {
      const raw = JSON.stringify({
        webhookEvent: 'jira:issue_updated',
        timestamp,
        user: person,
        issue: { key: 'LOCAL-1', fields: { status: { name: to, statusCategory: { key: category } } } },
        changelog: { items: [{ field: 'status', fromString: from, toString: to }] },
      });
      const hook = await handleJiraWebhook(
        { headers: { 'X-Hub-Signature': signJiraBody(raw, SECRET) }, rawBody: raw },
        { store, clock, log: silentLogger, policy: ticketPolicy(), secret: SECRET },
      );
      // Delivered twice: the second changes nothing
      await bus.publish([...hook.events, ...hook.events]);
      await bus.drain();
    };
    const firstProof = (await records()).filter((r) => r.step === 'verify').at(-1);
    // Act 1: the person reopens the ticket in Jira
    clock.set('2026-11-21T09:00:00.000Z');
    await sink.transition({ key: 'LOCAL-1', sink: 'local' }, ['Reopen'], { type: 'doc', version: 1, content: [] });
    await webhook(clock.now().getTime() - 60_000, 'Done', 'In Progress', 'indeterminate');
    const reopened = await readCase();
    // Act 2: the person closes it again
    clock.set('2026-11-21T10:00:00.000Z');
    await sink.transition({ key: 'LOCAL-1', sink: 'local' }, ['Done'], { type: 'doc', version: 1, content: [] });
    await webhook(clock.now().getTime() - 60_000, 'In Progress', 'Done', 'done');
    // Assess
    expect(reopened).toMatchObject({
      status: 'reopened',
      closedAt: null,
      reopenCount: 1,
      ticket: { status: 'reopened' },
    });
    expect(reopened.statusReason).toBe(
      'reopened in Jira (LOCAL-1 → In Progress) by jira:000000:00000000-0000-0000-0000-000000000009: the verified closure no longer stands',
    );
    const closed = await readCase();
    expect(closed).toMatchObject({
      status: 'verified',
      closedAt: '2026-11-21T10:00:00.000Z',
      reopenCount: 1,
      verification: { verdict: 'verified', trigger: 'ticket-closed' },
    });
    const proof = (await records()).filter((r) => r.step === 'verify').at(-1);
    expect(proof?.hash).not.toBe(firstProof?.hash);
    const t = await ticket();
    expect(t.status).toBe('Done');
    expect(t.comments.at(-1)?.text).toContain('Verified fixed.');
    expect(t.comments.at(-1)?.text).toContain(proof?.hash);
    expect(await verifyChains(evidence, { store })).toMatchObject({ ok: true });
  });

  it('reopens a ticket a person closed in Jira when the bucket is still public, with the evidence', async () => {
    // Prepare: a manual case (no apply); the ticket exists; a person closes it in Jira.
    await putCase(store, makeCase({ remediation: { mode: 'manual', state: 'none' } }));
    await bus.publish([decided]);
    await bus.drain();
    await sink.transition({ key: 'LOCAL-1', sink: 'local' }, ['Done'], { type: 'doc', version: 1, content: [] });
    const raw = JSON.stringify({
      webhookEvent: 'jira:issue_updated',
      timestamp: clock.now().getTime() - 60_000, // signed a minute ago
      user: { accountId: '000000:00000000-0000-0000-0000-000000000009' },
      issue: { key: 'LOCAL-1', fields: { status: { name: 'Done', statusCategory: { key: 'done' } } } },
      changelog: { items: [{ field: 'status', fromString: 'To Do', toString: 'Done' }] },
    });
    // Act
    const hook = await handleJiraWebhook(
      { headers: { 'X-Hub-Signature': signJiraBody(raw, SECRET) }, rawBody: raw },
      { store, clock, log: silentLogger, policy: ticketPolicy(), secret: SECRET },
    );
    await bus.publish(hook.events);
    await bus.drain();
    // Assess
    expect(hook.events).toEqual([expect.objectContaining({ type: 'case.verify-requested', trigger: 'ticket-closed' })]);
    const c = await readCase();
    expect(c).toMatchObject({ status: 'reopened', reopenCount: 1, verification: { verdict: 'failed' } });
    expect(c.statusReason).toMatch(
      /^ticket closed by jira:000000:00000000-0000-0000-0000-000000000009 but the fix does not hold: not all four Block Public Access flags are on/,
    );
    expect(guardduty).toHaveReceivedCommandTimes(ArchiveFindingsCommand, 0);
    const rs = await records();
    expect(rs.map((r) => r.step)).toEqual(['decision', 'ticket', 'verify', 'reopen']);
    expect(rs[1]?.actor).toEqual({ kind: 'function', id: 'jira:000000:00000000-0000-0000-0000-000000000009' });
    const t = await ticket();
    expect(t.status).toBe('Reopened');
    const comment = t.comments.at(-1)?.text ?? '';
    expect(comment).toContain('Reopened: ticket closed by jira:');
    expect(comment).toContain(`Evidence record hash: ${rs[2]?.hash}`);
    expect(await caseStory(evidence, CASE_KEY)).toContain('4 evidence records; chain intact');
  });

  it('leaves a risk-accepted case and its ticket closed when a person closes the ticket, and re-opens both at the expiry', async () => {
    // Prepare: a manual case ticketed, then its risk accepted (the exception sweep suppresses it)
    await putCase(store, makeCase({ remediation: { mode: 'manual', state: 'none' } }));
    await bus.publish([decided]);
    await bus.drain();
    const exception: RiskException = {
      id: 'EXC-042',
      owner: 'marketing-lead@acme.example',
      justification: 'campaign assets are public by design until the launch',
      scope: { resources: [BUCKET_ARN] },
      expires: '2026-12-31',
    };
    const policy = DecidePolicySchema.parse({});
    const swept = reevaluate(await readCase(), [exception], policy, new Date('2026-11-20T11:00:00.000Z'));
    if (!swept) throw new Error('the exception should suppress the case');
    await putCase(store, swept.next);
    await bus.publish([
      { ...decided, id: 'sweep:1', isNewCase: false, statusChanged: true, detail: { decision: swept.decision } },
    ]);
    await bus.drain();
    // Act: the person closes the risk-accepted ticket in Jira
    await sink.transition({ key: 'LOCAL-1', sink: 'local' }, ['Done'], { type: 'doc', version: 1, content: [] });
    const raw = JSON.stringify({
      webhookEvent: 'jira:issue_updated',
      timestamp: clock.now().getTime() - 60_000, // signed a minute ago
      user: { accountId: '000000:00000000-0000-0000-0000-000000000009' },
      issue: { key: 'LOCAL-1', fields: { status: { name: 'Done', statusCategory: { key: 'done' } } } },
      changelog: { items: [{ field: 'status', fromString: 'To Do', toString: 'Done' }] },
    });
    const hook = await handleJiraWebhook(
      { headers: { 'X-Hub-Signature': signJiraBody(raw, SECRET) }, rawBody: raw },
      { store, clock, log: silentLogger, policy: ticketPolicy(), secret: SECRET },
    );
    await bus.publish(hook.events);
    await bus.drain();
    // Assess: nothing claims a fix of an accepted risk; the case stays suppressed and the ticket closed …
    const closed = await readCase();
    expect(closed).toMatchObject({ status: 'suppressed', exception: { id: 'EXC-042' }, ticket: { status: 'done' } });
    expect((await ticket()).status).toBe('Done');
    // … until the exception expires: the sweep re-opens the case (and the ticket with it)
    const expired = reevaluate(closed, [exception], policy, new Date('2027-01-01T00:00:00.000Z'));
    if (!expired) throw new Error('the expiry should re-open the case');
    await putCase(store, expired.next);
    await bus.publish([
      { ...decided, id: 'sweep:2', isNewCase: false, statusChanged: true, detail: { decision: expired.decision } },
    ]);
    await bus.drain();
    expect(await readCase()).toMatchObject({ status: 'reopened', exception: null, ticket: { status: 'reopened' } });
    expect((await ticket()).status).toBe('Reopened');
    expect((await ticket()).comments.at(-1)?.text).toContain('EXC-042');
  });
});
