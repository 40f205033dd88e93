import { describe, expect, it } from 'vitest';
import { MemoryDocStore } from '../../../shared/adapters/store/memory.js';
import {
  combineExceptions,
  ExceptionSchema,
  exceptionsRepo,
  expiryInstant,
  matchException,
  type RiskException,
} from '../../../shared/core/policy/exceptions.js';
import { makeControlFinding, makeFinding } from '../../helpers/findings.js';

const EXC_001: RiskException = ExceptionSchema.parse({
  id: 'EXC-001',
  owner: 'web-lead@acme.example',
  justification: 'static website bucket is public by design; CloudFront in front',
  scope: { controls: ['S3.8', 'S3.2'], types: ['Policy:S3/*'], resources: ['arn:aws:s3:::acme-public-website*'] },
  expires: '2027-06-30',
});
const NOW = new Date('2026-11-20T12:00:00Z');
const website = { id: 'arn:aws:s3:::acme-public-website', name: 'acme-public-website' };

describe('matchException', () => {
  it('matches a control in scope on a resource in scope', () => {
    // Act
    const m = matchException(makeControlFinding('S3.8', { resource: website }), [EXC_001], NOW);
    // Assess
    expect(m.active?.id).toBe('EXC-001');
    expect(m.expired).toBeUndefined();
  });

  it('matches a finding type through the types glob', () => {
    // Act
    const m = matchException(
      makeFinding({ type: 'Policy:S3/BucketPublicAccessGranted', resource: website }),
      [EXC_001],
      NOW,
    );
    // Assess
    expect(m.active?.id).toBe('EXC-001');
  });

  it.each([
    ['another control', () => makeControlFinding('S3.3', { resource: website })],
    [
      'another bucket',
      () => makeControlFinding('S3.8', { resource: { id: 'arn:aws:s3:::acme-data', name: 'acme-data' } }),
    ],
    ['another type family', () => makeFinding({ type: 'CryptoCurrency:EC2/BitcoinTool.B', resource: website })],
  ])('does not match %s', (_n, build) => {
    // Act
    const m = matchException(build(), [EXC_001], NOW);
    // Assess
    expect(m).toEqual({});
  });

  it('reports the exception as expired the day after its expiry date', () => {
    // Prepare
    const f = makeControlFinding('S3.8', { resource: website });
    // Act
    const lastDay = matchException(f, [EXC_001], new Date('2027-06-30T23:59:59Z'));
    const dayAfter = matchException(f, [EXC_001], new Date('2027-07-01T00:00:00Z'));
    // Assess
    expect(lastDay.active?.id).toBe('EXC-001');
    expect(dayAfter).toEqual({ expired: EXC_001 });
    expect(expiryInstant('2027-06-30')).toBe(Date.parse('2027-07-01T00:00:00Z'));
    expect(expiryInstant('2027-06-30T08:00:00Z')).toBe(Date.parse('2027-06-30T08:00:00Z'));
  });

  it('matches Azure resource globs case-insensitively and accounts by GCP project number', () => {
    // Prepare
    const azure = ExceptionSchema.parse({
      id: 'EXC-AZ',
      owner: 'media-ops@acme.example',
      justification: 'legacy share until migration',
      scope: { resources: ['/subscriptions/*/resourcegroups/rg-legacy/*'] },
      expires: '2027-01-01',
    });
    const gcp = ExceptionSchema.parse({
      id: 'EXC-GCP',
      owner: 'web-lead@acme.example',
      justification: 'sandbox project, no data',
      scope: { accounts: ['555000111222'] },
      expires: '2027-01-01',
    });
    const af = makeFinding({
      source: 'defender',
      resource: {
        provider: 'azure',
        id: '/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/RG-Legacy/providers/x/y',
        account: '00000000-0000-0000-0000-000000000000',
      },
    });
    const gf = makeFinding({
      source: 'scc',
      type: 'OPEN_FIREWALL',
      resource: {
        provider: 'gcp',
        id: '//compute.googleapis.com/x',
        account: 'acme-sandbox',
        accountNumber: '555000111222',
      },
    });
    // Act / Assess
    expect(matchException(af, [azure], NOW).active?.id).toBe('EXC-AZ');
    expect(matchException(gf, [gcp], NOW).active?.id).toBe('EXC-GCP');
  });

  it('ignores a revoked exception', () => {
    // Prepare
    const revoked = { ...EXC_001, revokedAt: '2026-11-01T00:00:00Z', revokedBy: 'ciso@acme.example' };
    // Act
    const m = matchException(makeControlFinding('S3.8', { resource: website }), [revoked], NOW);
    // Assess
    expect(m).toEqual({});
  });

  it('refuses an exception whose scope is empty', () => {
    // Act
    const r = ExceptionSchema.safeParse({ ...EXC_001, scope: {} });
    // Assess
    expect(r.success).toBe(false);
  });

  it('lets a stored exception replace the file entry with the same id', () => {
    // Prepare
    const stored = { ...EXC_001, revokedAt: '2026-11-01T00:00:00Z', revokedBy: 'ciso@acme.example' };
    // Act
    const all = combineExceptions([EXC_001], [stored]);
    // Assess
    expect(all).toEqual([stored]);
  });
});

describe('exceptionsRepo', () => {
  const clock = { now: () => NOW };

  it('adds an exception once and changes nothing when the same one is added again', async () => {
    // Prepare
    const store = new MemoryDocStore();
    const repo = exceptionsRepo(store, clock);
    // Act
    const first = await repo.add(EXC_001);
    const again = await repo.add(EXC_001);
    // Assess
    expect(first.changed).toBe(true);
    expect(first.exception.createdAt).toBe('2026-11-20T12:00:00.000Z');
    expect(again.changed).toBe(false);
    expect(await repo.list()).toEqual([first.exception]);
    expect((await store.get('exceptions', 'EXC-001'))?.version).toBe(1);
  });

  it('revokes once, records who did it, and stops matching', async () => {
    // Prepare
    const repo = exceptionsRepo(new MemoryDocStore(), clock);
    await repo.add(EXC_001);
    // Act
    const first = await repo.revoke('EXC-001', 'ciso@acme.example');
    const again = await repo.revoke('EXC-001', 'someone-else@acme.example');
    // Assess
    expect(first.changed).toBe(true);
    expect(again.changed).toBe(false);
    expect(again.exception.revokedBy).toBe('ciso@acme.example');
    expect(matchException(makeControlFinding('S3.8', { resource: website }), await repo.list(), NOW)).toEqual({});
  });

  it('rejects revoking an unknown id and adding an invalid exception', async () => {
    // Prepare
    const repo = exceptionsRepo(new MemoryDocStore(), clock);
    // Act / Assess
    await expect(repo.revoke('EXC-404', 'x@acme.example')).rejects.toThrow('no exception with id EXC-404');
    await expect(repo.add({ ...EXC_001, justification: 'short' })).rejects.toThrow();
  });
});
