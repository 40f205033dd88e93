import { ArchiveFindingsCommand, GuardDutyClient, ListDetectorsCommand } from '@aws-sdk/client-guardduty';
import { BatchUpdateFindingsCommand, SecurityHubClient } from '@aws-sdk/client-securityhub';
import { SecurityCenter } from '@azure/arm-security';
import type { SecurityCenterClient } from '@google-cloud/security-center';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, expectTypeOf, it } from 'vitest';
import { type DefenderAlertsClient, DefenderUpstream } from '../../../shared/adapters/upstream/defender.js';
import { GuardDutyUpstream } from '../../../shared/adapters/upstream/guardduty.js';
import { LocalUpstreamStatus } from '../../../shared/adapters/upstream/local.js';
import { RoutingUpstreamStatus } from '../../../shared/adapters/upstream/route.js';
import { type SccFindingStateClient, SccUpstream } from '../../../shared/adapters/upstream/scc.js';
import { SecurityHubUpstream } from '../../../shared/adapters/upstream/securityhub.js';
import { isRetryable } from '../../../shared/core/errors.js';
import { armAnswering, armCredential } from '../../helpers/arm-double.js';
import { fixedClock, makeFinding } from '../../verify/helpers.js';

const sh = mockClient(SecurityHubClient);
const gd = mockClient(GuardDutyClient);
const ASFF_ID =
  'arn:aws:securityhub:eu-west-1:111122223333:security-control/S3.8/finding/00000000-0000-0000-0000-000000000000';
const PRODUCT_ARN = 'arn:aws:securityhub:eu-west-1::product/aws/securityhub';

describe('Upstream: Security Hub', () => {
  beforeEach(() => sh.reset());

  it('sets Workflow RESOLVED with a note on the ASFF Id and ProductArn when verified', async () => {
    // Prepare
    sh.on(BatchUpdateFindingsCommand).resolves({
      ProcessedFindings: [{ Id: ASFF_ID, ProductArn: PRODUCT_ARN }],
      UnprocessedFindings: [],
      $metadata: { requestId: 'req-sh-1' },
    });
    const f = makeFinding({
      source: 'securityhub',
      sourceId: ASFF_ID,
      raw: { Id: ASFF_ID, ProductArn: PRODUCT_ARN, SchemaVersion: '2018-10-08' },
    });
    const up = new SecurityHubUpstream({ client: () => new SecurityHubClient({}) });
    // Act
    const r = await up.markResolved(f, 'Fixed and verified by closeloop.');
    // Assess
    expect(sh).toHaveReceivedCommandWith(BatchUpdateFindingsCommand, {
      FindingIdentifiers: [{ Id: ASFF_ID, ProductArn: PRODUCT_ARN }],
      Workflow: { Status: 'RESOLVED' },
      Note: { Text: 'Fixed and verified by closeloop.', UpdatedBy: 'closeloop' },
    });
    expect(r).toMatchObject({ outcome: 'updated', api: 'securityhub:BatchUpdateFindings', requestId: 'req-sh-1' });
  });

  it('reports failed when Security Hub leaves the finding unprocessed', async () => {
    // Prepare
    sh.on(BatchUpdateFindingsCommand).resolves({
      ProcessedFindings: [],
      UnprocessedFindings: [
        {
          FindingIdentifier: { Id: ASFF_ID, ProductArn: PRODUCT_ARN },
          ErrorCode: 'FindingNotFound',
          ErrorMessage: 'gone',
        },
      ],
    });
    const f = makeFinding({ source: 'securityhub', raw: { Id: ASFF_ID, ProductArn: PRODUCT_ARN } });
    // Act
    const r = await new SecurityHubUpstream({ client: () => new SecurityHubClient({}) }).markResolved(f, 'n');
    // Assess
    expect(r).toMatchObject({ outcome: 'failed', detail: 'Security Hub refused: FindingNotFound gone' });
  });
});

describe('Upstream: GuardDuty', () => {
  beforeEach(() => gd.reset());

  it('archives the finding in its detector when archiving is on', async () => {
    // Prepare
    gd.on(ArchiveFindingsCommand).resolves({ $metadata: { requestId: 'req-gd-1' } });
    const up = new GuardDutyUpstream({ client: () => new GuardDutyClient({}), archive: true });
    // Act
    const r = await up.markResolved(makeFinding());
    // Assess
    expect(gd).toHaveReceivedCommandWith(ArchiveFindingsCommand, {
      DetectorId: '00000000000000000000000000000000',
      FindingIds: ['11111111111111111111111111111111'],
    });
    expect(r).toMatchObject({ outcome: 'updated', requestId: 'req-gd-1' });
  });

  it("archives a member account's finding through the administrator's own detector in that region", async () => {
    // Prepare: the hub (GuardDuty's delegated administrator, account 999988887777) and a member's finding.
    gd.on(ListDetectorsCommand).resolves({ DetectorIds: ['adminadminadminadminadminadmin00'] });
    gd.on(ArchiveFindingsCommand).resolves({ $metadata: { requestId: 'req-gd-2' } });
    const regions: string[] = [];
    const up = new GuardDutyUpstream({
      client: (region) => {
        regions.push(region);
        return new GuardDutyClient({ region });
      },
      archive: true,
      account: '999988887777',
    });
    // Act
    const first = await up.markResolved(makeFinding());
    await up.markResolved(makeFinding());
    // Assess
    expect(gd).toHaveReceivedCommandWith(ArchiveFindingsCommand, {
      DetectorId: 'adminadminadminadminadminadmin00',
      FindingIds: ['11111111111111111111111111111111'],
    });
    expect(gd).toReceiveCommandTimes(ListDetectorsCommand, 1); // one per region, kept
    expect(regions.every((r) => r === 'us-east-1')).toBe(true);
    expect(first).toMatchObject({ outcome: 'updated', detail: expect.stringContaining('for member account') });
  });

  it("archives the hub's own finding in the finding's detector, with no lookup", async () => {
    // Prepare
    gd.on(ArchiveFindingsCommand).resolves({ $metadata: { requestId: 'req-gd-3' } });
    const up = new GuardDutyUpstream({ client: () => new GuardDutyClient({}), archive: true, account: '111122223333' });
    // Act
    await up.markResolved(makeFinding());
    // Assess
    expect(gd).toReceiveCommandTimes(ListDetectorsCommand, 0);
    expect(gd).toHaveReceivedCommandWith(ArchiveFindingsCommand, { DetectorId: '00000000000000000000000000000000' });
  });

  it('calls nothing when archiving is off by policy', async () => {
    // Act
    const r = await new GuardDutyUpstream({ client: () => new GuardDutyClient({}), archive: false }).markResolved(
      makeFinding(),
    );
    // Assess
    expect(gd).toReceiveCommandTimes(ArchiveFindingsCommand, 0);
    expect(r).toMatchObject({ outcome: 'not-updated', detail: 'GuardDuty archiving disabled by policy' });
  });
});

describe('Upstream: SCC', () => {
  it('sets the finding state INACTIVE with a start time when verified', async () => {
    // Prepare
    const calls: unknown[] = [];
    const options: unknown[] = [];
    const client: SccFindingStateClient = {
      setFindingState: async (req, opts) => {
        calls.push(req);
        options.push(opts);
      },
    };
    const name = 'organizations/605118234777/sources/7319642508813370215/findings/6231489d7f6339e4445895fba66db11c';
    // Act
    const r = await new SccUpstream({ client, clock: fixedClock('2026-11-20T10:00:00.000Z') }).markResolved(
      makeFinding({ source: 'scc', sourceId: name }),
    );
    // Assess
    expect(calls).toEqual([{ name, state: 'INACTIVE', startTime: { seconds: 1795168800 } }]);
    // One try with a deadline inside the remediate function's 120 s (the client's defaults: 60 s, retried).
    expect(options).toEqual([{ timeout: 20_000, retry: null }]);
    expect(r.outcome).toBe('updated');
  });

  it('accepts the real SecurityCenterClient where the port is declared', () => {
    expectTypeOf<SecurityCenterClient>().toMatchTypeOf<SccFindingStateClient>();
  });
});

describe('Upstream: Defender', () => {
  const SUB = '6c1f3d2a-9b4e-4f7a-8d2c-5e0b1a7c9f36';
  function stubAlerts() {
    const calls: unknown[][] = [];
    const client: DefenderAlertsClient = {
      updateSubscriptionLevelStateToResolve: async (loc, name, options) => {
        calls.push(['subscription', loc, name]);
        options?.onResponse?.({ headers: { get: (h) => (h === 'x-ms-request-id' ? 'req-az-1' : undefined) } });
      },
      updateResourceGroupLevelStateToResolve: async (loc, name, rg) => {
        calls.push(['resourceGroup', loc, name, rg]);
      },
    };
    return { calls, client };
  }

  it('resolves an ARM-shaped alert at subscription scope with its request id', async () => {
    // Prepare
    const { calls, client } = stubAlerts();
    const subs: string[] = [];
    const raw = {
      id: `/subscriptions/${SUB}/providers/Microsoft.Security/locations/westeurope/alerts/2517494421189999999_00000000-0000-0000-0000-000000000000`,
      properties: { alertType: 'Storage.Blob_OpenACL' },
    };
    // Act
    const r = await new DefenderUpstream({
      alertsFor: (s) => {
        subs.push(s);
        return client;
      },
    }).markResolved(makeFinding({ source: 'defender', raw }));
    // Assess
    expect(subs).toEqual([SUB]);
    expect(calls).toEqual([['subscription', 'westeurope', '2517494421189999999_00000000-0000-0000-0000-000000000000']]);
    expect(r).toMatchObject({ outcome: 'updated', requestId: 'req-az-1' });
  });

  it('resolves a workflow-automation alert at resource-group scope from its portal link', async () => {
    // Prepare
    const { calls, client } = stubAlerts();
    const raw = {
      SystemAlertId: '2517494421189999999_00000000-0000-0000-0000-000000000000',
      AlertUri: `https://portal.azure.com/#blade/X/AlertBlade/alertId/2517494421189999999_00000000-0000-0000-0000-000000000000/subscriptionId/${SUB}/resourceGroup/rg-media/referencedFrom/alertDeepLink/location/westeurope`,
    };
    // Act
    await new DefenderUpstream({ alertsFor: () => client }).markResolved(makeFinding({ source: 'defender', raw }));
    // Assess
    expect(calls).toEqual([
      ['resourceGroup', 'westeurope', '2517494421189999999_00000000-0000-0000-0000-000000000000', 'rg-media'],
    ]);
  });

  it('sets nothing for an assessment and says why', async () => {
    // Prepare
    const { calls, client } = stubAlerts();
    const raw = {
      id: '/subscriptions/x/providers/Microsoft.Security/assessments/0',
      properties: { status: { code: 'Healthy' } },
    };
    // Act
    const r = await new DefenderUpstream({ alertsFor: () => client }).markResolved(
      makeFinding({ source: 'defender', raw }),
    );
    // Assess
    expect(calls).toEqual([]);
    expect(r.outcome).toBe('not-applicable');
  });

  it('gives up within its deadline when ARM throttles the resolve with a long Retry-After (the SDK would sleep it out)', async () => {
    // Prepare: the real Security Center client, whose pipeline retries a 429 after its Retry-After (an hour)
    const { sent, httpClient } = armAnswering(429, 'TooManyRequests', { 'retry-after': '3600' });
    const credential = armCredential;
    const upstream = new DefenderUpstream({
      alertsFor: (sub) => new SecurityCenter(credential, sub, { httpClient }).alerts,
      timeoutMs: 200,
    });
    // Act
    const started = Date.now();
    const error = await upstream
      .resolveAlert({ subscriptionId: SUB, resourceGroup: undefined, ascLocation: 'westeurope', alertName: 'a-1' })
      .catch((e: unknown) => e);
    // Assess: a retryable failure (the hub asks again), well inside the test's 5 s
    expect(isRetryable(error)).toBe(true);
    expect(sent).toHaveLength(1);
    expect(Date.now() - started).toBeLessThan(2_000);
  }, 5_000);

  it('accepts the real SecurityCenter.alerts where the port is declared', () => {
    expectTypeOf<SecurityCenter['alerts']>().toMatchTypeOf<DefenderAlertsClient>();
  });
});

describe('Upstream: routing and local', () => {
  it('routes by source and records the local run when no adapter applies', async () => {
    // Prepare
    const route = new RoutingUpstreamStatus({ guardduty: new LocalUpstreamStatus() });
    // Act
    const local = await route.markResolved(makeFinding(), 'n');
    const missing = await route.markResolved(makeFinding({ source: 'scc' }), 'n');
    // Assess
    expect(local).toMatchObject({ outcome: 'not-updated', detail: 'not updated: local run' });
    expect(missing).toMatchObject({ outcome: 'not-updated', detail: 'no upstream adapter configured for scc' });
  });

  it('updates the Security Hub copy of a GuardDuty finding too when the case came through both', async () => {
    // Prepare: the native finding (makeFinding: a GuardDuty ARN in us-east-1) and its copy as Security Hub sends it
    gd.reset();
    sh.reset();
    gd.on(ArchiveFindingsCommand).resolves({ $metadata: { requestId: 'req-gd-9' } });
    sh.on(BatchUpdateFindingsCommand).resolves({ UnprocessedFindings: [], $metadata: { requestId: 'req-sh-9' } });
    const route = new RoutingUpstreamStatus({
      guardduty: new GuardDutyUpstream({ client: () => new GuardDutyClient({}), archive: true }),
      securityhub: new SecurityHubUpstream({ client: () => new SecurityHubClient({}) }),
    });
    const native = makeFinding();
    const gdProduct = 'arn:aws:securityhub:us-east-1::product/aws/guardduty';
    const copy = makeFinding({
      source: 'securityhub',
      product: 'GuardDuty',
      raw: { Id: native.sourceId, ProductArn: gdProduct, SchemaVersion: '2018-10-08' },
    });
    // Act
    const fromNative = await route.markResolved(native, 'n', ['guardduty', 'securityhub']);
    const fromCopy = await route.markResolved(copy, 'n', ['securityhub', 'guardduty']);
    const alone = await route.markResolved(native, 'n', ['guardduty']);
    // Assess: each way both are updated (archiving one does not update the other, §6.5); alone, only its own
    expect(sh).toHaveReceivedCommandWith(BatchUpdateFindingsCommand, {
      FindingIdentifiers: [{ Id: native.sourceId, ProductArn: gdProduct }],
    });
    expect(fromNative).toMatchObject({
      source: 'guardduty',
      outcome: 'updated',
      also: [{ source: 'securityhub', outcome: 'updated', requestId: 'req-sh-9' }],
    });
    expect(fromCopy).toMatchObject({
      source: 'securityhub',
      outcome: 'updated',
      also: [{ source: 'guardduty', outcome: 'updated', requestId: 'req-gd-9' }],
    });
    expect(alone.also).toBeUndefined();
    expect(gd).toHaveReceivedCommandTimes(ArchiveFindingsCommand, 3);
    expect(sh).toHaveReceivedCommandTimes(BatchUpdateFindingsCommand, 2);
  });

  it('updates only what an earlier verification left undone: the copy alone, its failure its own', async () => {
    // Prepare: GuardDuty archived the finding earlier; Security Hub refuses once, then accepts
    gd.reset();
    sh.reset();
    sh.on(BatchUpdateFindingsCommand)
      .rejectsOnce(Object.assign(new Error('denied'), { name: 'AccessDeniedException' }))
      .resolves({ UnprocessedFindings: [], $metadata: { requestId: 'req-sh-10' } });
    const route = new RoutingUpstreamStatus({
      guardduty: new GuardDutyUpstream({ client: () => new GuardDutyClient({}), archive: true }),
      securityhub: new SecurityHubUpstream({ client: () => new SecurityHubClient({}) }),
    });
    const native = makeFinding();
    // Act
    const refused = await route.markResolved(native, 'n', ['guardduty', 'securityhub'], ['guardduty']);
    const made = await route.markResolved(native, 'n', ['guardduty', 'securityhub'], ['guardduty']);
    const nothingLeft = await route.markResolved(
      native,
      'n',
      ['guardduty', 'securityhub'],
      ['guardduty', 'securityhub'],
    );
    // Assess
    expect(gd).toHaveReceivedCommandTimes(ArchiveFindingsCommand, 0);
    expect(sh).toHaveReceivedCommandTimes(BatchUpdateFindingsCommand, 2);
    expect(refused).toMatchObject({ source: 'securityhub', outcome: 'failed' });
    expect(refused.also).toBeUndefined();
    expect(made).toMatchObject({ source: 'securityhub', outcome: 'updated', requestId: 'req-sh-10' });
    expect(nothingLeft).toMatchObject({ source: 'guardduty', outcome: 'not-updated', api: null });
  });
});
