/** `closeloop actions`, `exceptions` and `report` on the embedded store. */
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { declarations } from '../../shared/actions/registry.js';
import { CaseSchema } from '../../shared/core/model/case.js';
import { cli } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

const EVENTS = join(import.meta.dirname, '../../examples/events');
const CONFIG = join(import.meta.dirname, '../../examples/config');
const DEV_BATCH = join(EVENTS, '33-securityhub-findings-batch-dev.json');

describe('closeloop operator commands', () => {
  let tmp: ReturnType<typeof tempDir>;
  let home: string;
  beforeEach(() => {
    tmp = tempDir();
    home = join(tmp.dir, 'home');
  });
  afterEach(() => tmp.cleanup());
  const cases = async () =>
    CaseSchema.array().parse(JSON.parse((await cli(['cases', '--json', '--home', home, '--config', CONFIG])).out));

  it('prints every registered declaration when actions --json is given', async () => {
    // Act
    const r = await cli(['actions', '--json']);
    // Assess
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toEqual(declarations());
    expect(declarations().length).toBeGreaterThanOrEqual(8);
  });

  it('suppresses the matching case when an exception is added and re-opens it when revoked', async () => {
    // Prepare
    expect((await cli(['run', DEV_BATCH, '--config', CONFIG, '--home', home])).code).toBe(0);
    const before = (await cases()).find((c) => c.type === 'S3.8');
    expect(before?.status).toBe('planned');
    // Act 1
    const add = await cli([
      'exceptions',
      'add',
      '--id',
      'EXC-900',
      '--owner',
      'web-lead@example.com',
      '--reason',
      'public assets bucket for the dev site',
      '--expires',
      '2099-01-01',
      '--control',
      'S3.8',
      '--resource',
      'arn:aws:s3:::acme-web-dev-*',
      '--by',
      'secops@example.com',
      '--config',
      CONFIG,
      '--home',
      home,
    ]);
    // Assess 1
    expect(add.code, add.err).toBe(0);
    expect(add.out).toContain('1 cases newly suppressed');
    const suppressed = (await cases()).find((c) => c.type === 'S3.8');
    expect(suppressed?.status).toBe('suppressed');
    const list = await cli(['exceptions', '--json', '--config', CONFIG, '--home', home]);
    const ids = z
      .array(z.object({ id: z.string() }))
      .parse(JSON.parse(list.out))
      .map((e) => e.id);
    expect(ids).toContain('EXC-900');
    // Act 2
    const revoke = await cli([
      'exceptions',
      'revoke',
      'EXC-900',
      '--by',
      'secops@example.com',
      '--config',
      CONFIG,
      '--home',
      home,
    ]);
    // Assess 2
    expect(revoke.code, revoke.err).toBe(0);
    expect(revoke.out).toContain('1 re-opened');
    const reopened = (await cases()).find((c) => c.type === 'S3.8');
    expect(reopened?.status).not.toBe('suppressed');
  });

  it('says the new expiry on the case when an exception is extended, without counting it newly suppressed', async () => {
    // Prepare: the dev S3.8 case suppressed by EXC-900 until 2099-01-01
    expect((await cli(['run', DEV_BATCH, '--config', CONFIG, '--home', home])).code).toBe(0);
    const add = (expires: string) =>
      cli([
        'exceptions',
        'add',
        '--id',
        'EXC-900',
        '--owner',
        'web-lead@example.com',
        '--reason',
        'public assets bucket for the dev site',
        '--expires',
        expires,
        '--control',
        'S3.8',
        '--resource',
        'arn:aws:s3:::acme-web-dev-*',
        '--config',
        CONFIG,
        '--home',
        home,
      ]);
    expect((await add('2099-01-01')).out).toContain('1 cases newly suppressed');
    // Act: the owner extends it
    const extended = await add('2099-06-30');
    // Assess
    expect(extended.code, extended.err).toBe(0);
    expect(extended.out).toBe('exception EXC-900 stored; 0 cases newly suppressed, 0 re-opened');
    const c = (await cases()).find((x) => x.type === 'S3.8');
    expect(c).toMatchObject({ status: 'suppressed', exception: { id: 'EXC-900', expires: '2099-06-30' } });
    expect(c?.statusReason).toBe('risk accepted: exception EXC-900 (owner web-lead@example.com) until 2099-06-30');
  });

  it('revokes an exception of exceptions.yaml by storing a revoked copy, and re-opens its case', async () => {
    // Prepare: the examples' website bucket is suppressed by EXC-001 from exceptions.yaml
    await cli(['run', EVENTS, '--config', CONFIG, '--home', home]);
    const isWebsite = (c: { resourceId: string }) => c.resourceId.endsWith('acme-public-website');
    expect((await cases()).find(isWebsite)?.status).toBe('suppressed');
    // Act
    const r = await cli([
      'exceptions',
      'revoke',
      'EXC-001',
      '--by',
      'ciso@example.com',
      '--config',
      CONFIG,
      '--home',
      home,
    ]);
    // Assess
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain('exception EXC-001 revoked');
    expect((await cases()).find(isWebsite)?.status).not.toBe('suppressed');
    const list = await cli(['exceptions', '--json', '--config', CONFIG, '--home', home]);
    const exc = z
      .array(z.object({ id: z.string(), revokedBy: z.string().optional() }))
      .parse(JSON.parse(list.out))
      .filter((e) => e.id === 'EXC-001');
    expect(exc).toEqual([expect.objectContaining({ revokedBy: 'ciso@example.com' })]);
  });

  it('refuses an exception that has already expired, and names the flag of a field it refuses', async () => {
    // Prepare
    const add = (expires: string, reason: string) =>
      cli([
        'exceptions',
        'add',
        '--id',
        'EXC-901',
        '--owner',
        'web-lead@example.com',
        '--reason',
        reason,
        '--expires',
        expires,
        '--control',
        'S3.8',
        '--home',
        home,
      ]);
    // Act
    const past = await add('2020-01-01', 'public assets bucket for the dev site');
    const short = await add('2099-01-01', 'short');
    // Assess
    expect(past.code).toBe(2);
    expect(past.err).toContain('--expires 2020-01-01 is not in the future');
    expect(short.code).toBe(2);
    expect(short.err).toContain('--reason: say why the risk is accepted');
    expect((await cli(['exceptions', '--json', '--home', home])).out).not.toContain('EXC-901');
  });

  it('refuses an exception whose --resource glob can never match, instead of storing one that accepts nothing', async () => {
    // Act
    const r = await cli([
      'exceptions',
      'add',
      '--id',
      'EXC-902',
      '--owner',
      'web-lead@example.com',
      '--reason',
      'public assets bucket for the dev site',
      '--expires',
      '2099-01-01',
      '--resource',
      'arn:aws:s3::acme-web-dev-*',
      '--home',
      home,
    ]);
    // Assess
    expect(r.code).toBe(2);
    expect(r.err).toContain('can never match a resource id');
    expect((await cli(['exceptions', '--json', '--home', home])).out).not.toContain('EXC-902');
  });

  it('names the missing flags when an exception is added without them', async () => {
    // Act
    const r = await cli(['exceptions', 'add', '--id', 'EXC-1', '--home', home]);
    // Assess
    expect(r.code).toBe(2);
    expect(r.err).toContain('--owner');
  });

  it('reports closure times per severity, owner, team and environment as JSON', async () => {
    // Prepare
    await cli(['run', EVENTS, '--config', CONFIG, '--home', home]);
    // Act
    const r = await cli(['report', '--json', '--config', CONFIG, '--home', home]);
    // Assess
    expect(r.code, r.err).toBe(0);
    const report = z
      .object({
        cases: z.number(),
        bySeverity: z.record(z.string(), z.unknown()),
        byOwner: z.record(z.string(), z.unknown()),
        byTeam: z.record(z.string(), z.unknown()),
        byEnvironment: z.record(z.string(), z.unknown()),
        openPastSla: z.array(z.unknown()),
        ownerGaps: z.array(z.object({ owner: z.string() }).loose()),
      })
      .parse(JSON.parse(r.out));
    expect(report.cases).toBeGreaterThan(20);
    expect(Object.keys(report.bySeverity)).toContain('high');
    expect(report.ownerGaps.map((g) => g.owner)).toContain('secops-triage@acme.example');
  });
});
