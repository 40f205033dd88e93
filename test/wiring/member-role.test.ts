/**
 * The member role: the hub assumes it per member account (STS AssumeRole, aws-sdk-client-mock), keeps the
 * credentials until shortly before they expire, and builds that account's action clients and tag reads on them.
 */
import { GetResourcesCommand, ResourceGroupsTaggingAPIClient } from '@aws-sdk/client-resource-groups-tagging-api';
import type { S3Client } from '@aws-sdk/client-s3';
import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { awsActionContext } from '../../functions/aws/middleware/action-context.js';
import { contextFor } from '../../shared/actions/scope.js';
import { AwsTaggingOwnerLookup } from '../../shared/adapters/lookup/aws-tagging.js';
import { type AwsPorts, parseAwsEnv } from '../../shared/adapters/wiring/aws.js';
import { hubAwsLookup } from '../../shared/adapters/wiring/lookup.js';
import {
  type AssumeRoleClient,
  hubMemberAccess,
  memberAccess,
  memberAccessFromEnv,
} from '../../shared/adapters/wiring/member-role.js';
import { AdapterError, ConfigError, errorMessage } from '../../shared/core/errors.js';
import { type Clock, lookupMany, silentLogger } from '../../shared/core/ports.js';
import { awsError } from '../helpers/action-context.js';

const sts = mockClient(STSClient);
const tagging = mockClient(ResourceGroupsTaggingAPIClient);
const HUB = '111122223333';
const MEMBER = '444455556666';

/** A clock the test moves. */
const movable = (at: string) => {
  let now = new Date(at);
  const clock: Clock = { now: () => now };
  return { clock, set: (t: string) => (now = new Date(t)) };
};

/** A stub STS that counts its calls and hands out numbered credentials valid for 15 minutes from `clock`. */
function countingSts(clock: Clock, fail?: Error) {
  const calls: Array<{ RoleArn: string; RoleSessionName: string; DurationSeconds: number }> = [];
  const client: AssumeRoleClient = {
    async assumeRole(input) {
      calls.push(input);
      await new Promise((r) => setTimeout(r, 5));
      if (fail) throw fail;
      return {
        Credentials: {
          AccessKeyId: `ASIA${calls.length}`,
          SecretAccessKey: 'secret',
          SessionToken: 'token',
          Expiration: new Date(clock.now().getTime() + 15 * 60_000),
        },
      };
    },
  };
  return { calls, client };
}

describe('member role', () => {
  beforeEach(() => {
    sts.reset();
    tagging.reset();
  });

  it('assumes the role once per account, shares a burst of asks and renews five minutes before expiry', async () => {
    // Prepare
    const t = movable('2026-12-07T10:00:00Z');
    const stub = countingSts(t.clock);
    const access = memberAccess({
      roleName: 'closeloop-member',
      partition: 'aws-us-gov',
      session: 'closeloop-prod-remediate',
      sts: async () => stub.client,
      clock: t.clock,
    });
    const creds = access.credentials(MEMBER);
    // Act
    const burst = await Promise.all([creds(), creds(), access.credentials(MEMBER)()]);
    t.set('2026-12-07T10:09:00Z'); // 6 minutes left: still good
    const later = await creds();
    t.set('2026-12-07T10:10:30Z'); // 4.5 minutes left: renewed
    const renewed = await creds();
    // Assess
    expect(stub.calls).toHaveLength(2);
    expect(stub.calls[0]).toEqual({
      RoleArn: `arn:aws-us-gov:iam::${MEMBER}:role/closeloop-member`,
      RoleSessionName: 'closeloop-prod-remediate',
      DurationSeconds: 900,
    });
    expect(burst.map((c) => c.accessKeyId)).toEqual(['ASIA1', 'ASIA1', 'ASIA1']);
    expect(burst[0]).toMatchObject({ sessionToken: 'token', accountId: MEMBER });
    expect(later.accessKeyId).toBe('ASIA1');
    expect(renewed.accessKeyId).toBe('ASIA2');
  });

  it('names the role when it cannot be assumed, and asks again next time', async () => {
    // Prepare
    const t = movable('2026-12-07T10:00:00Z');
    const stub = countingSts(t.clock, awsError('AccessDenied', 403));
    const access = memberAccess({
      roleName: 'closeloop-member',
      partition: 'aws',
      session: 's',
      sts: async () => stub.client,
      clock: t.clock,
    });
    // Act
    const first = access.credentials(MEMBER)();
    const second = access
      .credentials(MEMBER)()
      .catch((e: unknown) => e);
    // Assess
    await expect(first).rejects.toThrow(AdapterError);
    await expect(first).rejects.toMatchObject({ kind: 'denied' });
    await expect(first).rejects.toThrow(
      `sts:AssumeRole arn:aws:iam::${MEMBER}:role/closeloop-member failed (AccessDenied): is the member role deployed there?`,
    );
    expect(await second).toBeInstanceOf(AdapterError);
    await access
      .credentials(MEMBER)()
      .catch(() => undefined);
    expect(stub.calls).toHaveLength(2); // the shared first ask, then a new one: a refusal is not kept
  });

  it('is off without CLOSELOOP_MEMBER_ROLE and refuses a role name with a path', () => {
    // Act / Assess
    expect(memberAccessFromEnv({}, 's')).toBeUndefined();
    expect(memberAccessFromEnv({ CLOSELOOP_MEMBER_ROLE: '  ' }, 's')).toBeUndefined();
    expect(() => memberAccessFromEnv({ CLOSELOOP_MEMBER_ROLE: 'team/closeloop' }, 's')).toThrow(ConfigError);
    expect(() => parseAwsEnv({ CLOSELOOP_TABLE: 't', CLOSELOOP_BUS: 'b', CLOSELOOP_MEMBER_ROLE: 'a/b' })).toThrow(
      /CLOSELOOP_MEMBER_ROLE/,
    );
    expect(
      parseAwsEnv({ CLOSELOOP_TABLE: 't', CLOSELOOP_BUS: 'b', CLOSELOOP_MEMBER_ROLE: '' }).CLOSELOOP_MEMBER_ROLE,
    ).toBeUndefined();
  });

  it("gives the hub's remediate context the member's credentials for that account's resources", async () => {
    // Prepare: the hub function's environment as serverless.yml sets it, STS answered in process.
    sts.on(AssumeRoleCommand).resolves({
      Credentials: {
        AccessKeyId: 'ASIAMEMBER',
        SecretAccessKey: 'member-secret',
        SessionToken: 'member-token',
        Expiration: new Date(Date.now() + 15 * 60_000),
      },
    });
    const env = parseAwsEnv({
      CLOSELOOP_TABLE: 't',
      CLOSELOOP_BUS: 'b',
      CLOSELOOP_STAGE: 'prod',
      CLOSELOOP_ACCOUNT_ID: HUB,
      CLOSELOOP_MEMBER_ROLE: 'closeloop-member',
      CLOSELOOP_PARTITION: 'aws',
      AWS_REGION: 'eu-west-1',
    });
    const ports = { env, clock: { now: () => new Date() }, log: silentLogger } as unknown as AwsPorts;
    const ctx = awsActionContext(ports, hubMemberAccess(env, 'remediate'));
    // Act
    const own = await contextFor(ctx, 'aws', HUB);
    const member = await contextFor(ctx, 'aws', MEMBER);
    if (!('ctx' in member) || !('ctx' in own)) throw new Error('both accounts must be reachable');
    const s3 = (await member.ctx.clients.s3('eu-west-1')) as S3Client;
    const creds = await s3.config.credentials();
    // Assess
    expect(own.ctx).toBe(ctx);
    expect(await member.ctx.awsAccount?.()).toBe(MEMBER);
    expect(member.ctx.inAwsAccount).toBeUndefined(); // a member context reaches no further
    expect(creds).toMatchObject({ accessKeyId: 'ASIAMEMBER', sessionToken: 'member-token' });
    expect(sts).toHaveReceivedCommandWith(AssumeRoleCommand, {
      RoleArn: `arn:aws:iam::${MEMBER}:role/closeloop-member`,
      RoleSessionName: 'closeloop-prod-remediate',
    });
    expect((await contextFor(ctx, 'aws', MEMBER)) as { ctx: unknown }).toEqual({ ctx: member.ctx }); // one per account
  });

  it("reads a member account's tags under its role, in one call per account and region", async () => {
    // Prepare
    const built: Array<[string, string | undefined]> = [];
    tagging.on(GetResourcesCommand).callsFake((input: { ResourceARNList?: string[] }) => ({
      ResourceTagMappingList: (input.ResourceARNList ?? []).map((arn) => ({
        ResourceARN: arn,
        Tags: [{ Key: 'owner', Value: arn.includes(MEMBER) ? 'member-team' : 'hub-team' }],
      })),
    }));
    const lookup = new AwsTaggingOwnerLookup(
      (region, account) => {
        built.push([region, account]);
        return new ResourceGroupsTaggingAPIClient({ region });
      },
      { account: async () => HUB, reaches: (a) => a === MEMBER },
    );
    const ref = (account: string, id: string) => ({ provider: 'aws' as const, id, account, region: 'eu-west-1' });
    // Act
    const out = await lookup.tagsForMany([
      ref(MEMBER, `arn:aws:ec2:eu-west-1:${MEMBER}:instance/i-1`),
      ref(HUB, `arn:aws:ec2:eu-west-1:${HUB}:instance/i-2`),
      ref(MEMBER, `arn:aws:ec2:eu-west-1:${MEMBER}:instance/i-3`),
      ref('777788889999', 'arn:aws:ec2:eu-west-1:777788889999:instance/i-4'),
    ]);
    // Assess
    expect(out.slice(0, 3)).toEqual([
      { tags: { owner: 'member-team' } },
      { tags: { owner: 'hub-team' } },
      { tags: { owner: 'member-team' } },
    ]);
    expect(out[3]).toMatchObject({ error: { kind: 'denied' } });
    expect(built).toHaveLength(2);
    expect(built).toEqual(
      expect.arrayContaining([
        ['eu-west-1', MEMBER],
        ['eu-west-1', undefined],
      ]),
    );
    expect(tagging).toHaveReceivedCommandTimes(GetResourcesCommand, 2);
  });

  it("makes the hub's lookup report a member role it cannot assume as 'denied', not as untagged", async () => {
    // Prepare
    sts.on(AssumeRoleCommand).rejects(awsError('AccessDenied', 403));
    // As the SDK does before it sends: the client's credentials are resolved first (here they fail).
    tagging.on(GetResourcesCommand).callsFake(async (_input, getClient) => {
      await getClient().config.credentials();
      return { ResourceTagMappingList: [] };
    });
    const env = parseAwsEnv({
      CLOSELOOP_TABLE: 't',
      CLOSELOOP_BUS: 'b',
      CLOSELOOP_ACCOUNT_ID: HUB,
      CLOSELOOP_MEMBER_ROLE: 'closeloop-member-read',
    });
    const lookup = hubAwsLookup(env, hubMemberAccess(env, 'ingest'));
    // Act
    const [outcome] = await lookupMany(lookup, [
      { provider: 'aws', id: 'arn:aws:s3:::member-bucket', account: MEMBER, region: 'us-east-1' },
    ]);
    // Assess
    expect(outcome).toMatchObject({ error: { kind: 'denied' } });
    expect(outcome && 'error' in outcome ? errorMessage(outcome.error) : '').toContain(
      `arn:aws:iam::${MEMBER}:role/closeloop-member-read`,
    );
  });
});
