import { describe, expect, it } from 'vitest';
import type { Enrichment } from '../../../shared/core/model/enrichment.js';
import { evaluateGates, type GateInput, gcpLabelKey } from '../../../shared/core/policy/gates.js';
import { DecidePolicySchema } from '../../../shared/core/policy/policy.js';

const enrichment = (o: Partial<Enrichment> = {}): Enrichment => ({
  owner: 'web-team@acme.example',
  ownerEmail: 'web-team@acme.example',
  team: 'web',
  application: null,
  environment: 'dev',
  criticality: null,
  unowned: false,
  provenance: {
    owner: { via: 'registry-team', detail: 'owner is the default owner of team `web` in the registry' },
    environment: { via: 'registry-account', detail: 'environment from account 444455556666 in the registry' },
  },
  warnings: [],
  complete: true,
  ...o,
});

const input = (o: Partial<GateInput> = {}): GateInput => ({
  action: 's3.block-public-access',
  playbookReason: 'Policy:S3/BucketAnonymousAccessGranted: block public access on the bucket',
  playbookMode: undefined,
  sample: false,
  status: 'active',
  muted: false,
  exception: undefined,
  tags: {},
  previousGates: undefined,
  provider: 'aws',
  resourceId: 'arn:aws:s3:::acme-web-uploads',
  account: '444455556666',
  accountNumber: undefined,
  enrichment: enrichment(),
  policy: DecidePolicySchema.parse({ allowlist: { resources: ['arn:aws:s3:::acme-audit-logs*'] } }),
  actionInfo: undefined,
  ...o,
});

describe('gates', () => {
  it('allows auto in dev and records every gate as passed when nothing objects', () => {
    // Act
    const v = evaluateGates(input());
    // Assess
    expect(v.mode).toBe('auto');
    expect(v.reason).toBe('dev: auto (policy decide.environments.dev)');
    expect(v.gates.map((g) => [g.gate, g.outcome])).toEqual([
      ['skip-tag', 'pass'],
      ['allowlist', 'pass'],
      ['owner', 'pass'],
      ['environment', 'pass'],
    ]);
  });

  it.each<[string, Partial<GateInput>, string]>([
    ['sample', { sample: true }, 'sample'],
    ['resolved', { status: 'resolved' }, 'status'],
    ['muted', { status: 'resolved', muted: true }, 'status'],
    ['no action', { action: null, playbookReason: 'Recon:EC2/PortProbeUnprotectedPort is reconnaissance' }, 'playbook'],
    [
      'an active exception',
      {
        exception: {
          id: 'EXC-001',
          owner: 'web-lead@acme.example',
          justification: 'public by design',
          scope: { controls: ['S3.8'] },
          expires: '2027-06-30',
        },
      },
      'exception',
    ],
  ])('stops with mode none when the finding is %s', (_name, o, gate) => {
    // Act
    const v = evaluateGates(input(o));
    // Assess
    expect(v.mode).toBe('none');
    expect(v.gates).toHaveLength(1);
    expect(v.gates[0]).toMatchObject({ gate, outcome: 'block' });
    expect(v.reason).toBe(v.gates[0]?.reason);
  });

  it('falls to manual when the resource carries the skip tag', () => {
    // Act
    const v = evaluateGates(input({ tags: { 'closeloop:skip': 'true' } }));
    // Assess
    expect(v.mode).toBe('manual');
    expect(v.reason).toBe('resource carries the skip tag `closeloop:skip`: a person fixes it');
  });

  it('ignores the skip tag when its value is "false" and honours a configured tag key', () => {
    // Prepare
    const policy = DecidePolicySchema.parse({ skipTag: 'no-autofix' });
    // Act
    const falseValue = evaluateGates(input({ tags: { 'closeloop:skip': 'false' } }));
    const custom = evaluateGates(input({ tags: { 'no-autofix': 'yes' }, policy }));
    // Assess
    expect(falseValue.mode).toBe('auto');
    expect(custom.mode).toBe('manual');
  });

  it('reads the skip tag in its label form (GCP labels cannot hold ":"), on every cloud', () => {
    // Act
    const gcp = evaluateGates(input({ provider: 'gcp', tags: { 'closeloop-skip': 'true' } }));
    const aws = evaluateGates(input({ provider: 'aws', tags: { 'closeloop-skip': 'true' } }));
    // Assess: on AWS too, a person who wrote it meant it
    expect(gcp.mode).toBe('manual');
    expect(aws.mode).toBe('manual');
    expect(gcpLabelKey('Closeloop:Skip.now')).toBe('closeloop-skip-now');
  });

  it('reads a skip tag written by hand in another casing or with spaces around its key, and fails towards skipping', () => {
    // Act
    const cased = evaluateGates(input({ tags: { 'Closeloop:Skip': 'true' } }));
    const spaced = evaluateGates(input({ provider: 'azure', tags: { ' closeloop:skip ': 'yes' } }));
    const gcp = evaluateGates(input({ provider: 'gcp', tags: { 'Closeloop-Skip': 'true' } }));
    const eitherSays = evaluateGates(input({ tags: { 'CLOSELOOP:SKIP': 'false', 'closeloop:skip ': 'true' } }));
    const exactFalse = evaluateGates(input({ tags: { 'closeloop:skip': 'false', 'Closeloop:Skip': 'true' } }));
    const allFalse = evaluateGates(input({ tags: { 'closeloop:skip': 'false', 'Closeloop:Skip ': 'FALSE' } }));
    const other = evaluateGates(input({ tags: { 'closeloop:skipped': 'true', 'x-closeloop:skip': 'true' } }));
    // Assess: any spelling that does not say false stops the fix.
    expect([cased.mode, spaced.mode, gcp.mode, eitherSays.mode, exactFalse.mode]).toEqual(Array(5).fill('manual'));
    expect(allFalse.mode).toBe('auto');
    expect(other.mode).toBe('auto');
  });

  it('falls to manual when the resource is on the never-touch allowlist', () => {
    // Act
    const v = evaluateGates(input({ resourceId: 'arn:aws:s3:::acme-audit-logs-2026' }));
    // Assess
    expect(v.mode).toBe('manual');
    expect(v.reason).toBe('resource matches allowlist entry `arn:aws:s3:::acme-audit-logs*`: never touched');
  });

  it('matches Azure allowlist entries case-insensitively', () => {
    // Prepare
    const policy = DecidePolicySchema.parse({
      allowlist: { resources: ['/subscriptions/*/resourcegroups/rg-audit/*'] },
    });
    // Act
    const v = evaluateGates(
      input({ provider: 'azure', resourceId: '/subscriptions/X/resourceGroups/RG-AUDIT/providers/y', policy }),
    );
    // Assess
    expect(v.mode).toBe('manual');
  });

  it('matches an AWS allowlist entry without regard to case (IAM names are unique without it)', () => {
    // Prepare
    const policy = DecidePolicySchema.parse({ allowlist: { resources: ['arn:aws:iam::*:role/BreakGlass*'] } });
    // Act
    const v = evaluateGates(
      input({
        action: 'iam.revoke-role-sessions',
        resourceId: 'arn:aws:iam::444455556666:role/breakglass-admin',
        policy,
      }),
    );
    // Assess
    expect(v.mode).toBe('manual');
    expect(v.gates.find((g) => g.gate === 'allowlist')?.outcome).toBe('block');
  });

  it('matches a Cloud Storage allowlist entry written either way against the bucket (never-touch holds for both spellings)', () => {
    // Prepare: one entry in the Storage API's spelling, one in SCC's
    const policy = DecidePolicySchema.parse({
      allowlist: {
        resources: ['//storage.googleapis.com/projects/_/buckets/acme-audit-*', '//storage.googleapis.com/acme-legal'],
      },
    });
    const gcs = (name: string) =>
      evaluateGates(input({ provider: 'gcp', resourceId: `//storage.googleapis.com/${name}`, policy }));
    // Act
    const audit = gcs('acme-audit-logs');
    const legal = gcs('acme-legal');
    const other = gcs('acme-web-uploads');
    // Assess: the entry is named as written
    expect(audit.mode).toBe('manual');
    expect(audit.reason).toBe(
      'resource matches allowlist entry `//storage.googleapis.com/projects/_/buckets/acme-audit-*`: never touched',
    );
    expect(legal.mode).toBe('manual');
    expect(other.mode).toBe('auto');
  });

  it('falls to manual when the account is on the denylist', () => {
    // Prepare
    const policy = DecidePolicySchema.parse({ denylist: { accounts: ['444455556666'] } });
    // Act
    const v = evaluateGates(input({ policy }));
    // Assess
    expect(v.mode).toBe('manual');
    expect(v.gates.find((g) => g.gate === 'denylist')?.outcome).toBe('block');
  });

  it('fails closed to manual when the owner is unknown', () => {
    // Act
    const v = evaluateGates(input({ enrichment: enrichment({ unowned: true, owner: 'secops-triage@acme.example' }) }));
    // Assess
    expect(v.mode).toBe('manual');
    expect(v.reason).toBe('no owner known (triage owner secops-triage@acme.example stands in)');
  });

  it('fails closed to manual with outcome unknown when enrichment is incomplete', () => {
    // Act
    const v = evaluateGates(
      input({ enrichment: enrichment({ complete: false, warnings: ['live tag lookup failed'] }) }),
    );
    // Assess
    expect(v.mode).toBe('manual');
    expect(v.gates.find((g) => g.gate === 'owner')).toMatchObject({ outcome: 'unknown' });
  });

  it('asks for approval in prod and manual in an unknown environment', () => {
    // Act
    const prod = evaluateGates(input({ enrichment: enrichment({ environment: 'prod' }) }));
    const unknown = evaluateGates(input({ enrichment: enrichment({ environment: 'unknown' }) }));
    // Assess
    expect(prod.mode).toBe('approval');
    expect(prod.gates.at(-1)).toMatchObject({ gate: 'environment', outcome: 'approval' });
    expect(unknown.mode).toBe('manual');
    expect(unknown.reason).toBe('unknown: manual (policy decide.environments.unknown)');
  });

  it('allows auto in prod only when the action is production-safe and policy allows it', () => {
    // Prepare
    const prod = enrichment({ environment: 'prod' });
    const safe = () => ({ productionSafe: true });
    const allowing = DecidePolicySchema.parse({ productionSafeAuto: true });
    // Act
    const both = evaluateGates(input({ enrichment: prod, actionInfo: safe, policy: allowing }));
    const policyOnly = evaluateGates(
      input({ enrichment: prod, actionInfo: () => ({ productionSafe: false }), policy: allowing }),
    );
    const safeOnly = evaluateGates(input({ enrichment: prod, actionInfo: safe }));
    // Assess
    expect(both.mode).toBe('auto');
    expect(both.reason).toContain('production-safe');
    expect(policyOnly.mode).toBe('approval');
    expect(safeOnly.mode).toBe('approval');
  });

  it('lets decide.actionModes override the playbook default and the environment policy', () => {
    // Prepare
    const policy = DecidePolicySchema.parse({ actionModes: { 's3.block-public-access': { dev: 'approval' } } });
    // Act
    const overridden = evaluateGates(input({ policy }));
    const lineDefault = evaluateGates(input({ playbookMode: { dev: 'manual' } }));
    // Assess
    expect(overridden.mode).toBe('approval');
    expect(overridden.reason).toBe('dev: approval for s3.block-public-access (policy decide.actionModes)');
    expect(lineDefault.mode).toBe('manual');
  });

  it('keeps the previous skip-tag outcome, or fails closed, when tags are unknown', () => {
    // Act
    const withPrevious = evaluateGates(
      input({ tags: undefined, previousGates: [{ gate: 'skip-tag', outcome: 'pass', reason: 'no tag' }] }),
    );
    const without = evaluateGates(input({ tags: undefined }));
    // Assess
    expect(withPrevious.mode).toBe('auto');
    expect(without.mode).toBe('manual');
    expect(without.gates[0]).toMatchObject({ gate: 'skip-tag', outcome: 'unknown' });
  });

  it('shares equal results and lists between cases, frozen, and keeps different ones apart', () => {
    // Prepare
    const policy = DecidePolicySchema.parse({});
    // Act
    const a = evaluateGates(input({ policy, resourceId: 'arn:aws:s3:::one' }));
    const b = evaluateGates(input({ policy, resourceId: 'arn:aws:s3:::two' }));
    const other = evaluateGates(input({ policy, enrichment: enrichment({ owner: 'data-team@acme.example' }) }));
    // Assess
    expect(b.gates).toBe(a.gates);
    expect(Object.isFrozen(a.gates) && a.gates.every((g) => Object.isFrozen(g))).toBe(true);
    expect(() => {
      (a.gates[0] as { reason: string }).reason = 'changed';
    }).toThrow(TypeError);
    expect(() => a.gates.push({ gate: 'x', outcome: 'pass', reason: 'x' })).toThrow(TypeError);
    expect(other.gates).not.toBe(a.gates);
    expect(other.gates.find((g) => g.gate === 'owner')?.reason).toBe('owner data-team@acme.example');
    expect(other.gates[0]).toBe(a.gates[0]);
  });
  it('shares the blocking results too (triage owner, allowlist entry, denylist account); a warning keeps its list apart', () => {
    // Prepare
    const policy = DecidePolicySchema.parse({
      allowlist: { resources: ['arn:aws:s3:::acme-audit-logs*'] },
      denylist: { accounts: ['999900001111'] },
    });
    const unowned = enrichment({ owner: 'secops-triage@acme.example', unowned: true });
    const blocked = (resourceId: string) =>
      evaluateGates(input({ policy, resourceId, account: '999900001111', enrichment: unowned }));
    // Act
    const a = blocked('arn:aws:s3:::acme-audit-logs-1');
    const b = blocked('arn:aws:s3:::acme-audit-logs-2');
    const incomplete = (warning: string) =>
      evaluateGates(input({ policy, enrichment: enrichment({ complete: false, warnings: [warning] }) }));
    const w1 = incomplete('owner lookup failed: throttled');
    const w2 = incomplete('owner lookup failed: throttled');
    // Assess
    expect(a.gates.map((g) => [g.gate, g.outcome])).toEqual([
      ['skip-tag', 'pass'],
      ['allowlist', 'block'],
      ['denylist', 'block'],
      ['owner', 'block'],
      ['environment', 'pass'],
    ]);
    expect(b.gates).toBe(a.gates);
    expect(Object.isFrozen(a.gates)).toBe(true);
    expect(a.gates.find((g) => g.gate === 'owner')?.reason).toBe(
      'no owner known (triage owner secops-triage@acme.example stands in)',
    );
    expect(w1.gates.find((g) => g.gate === 'owner')?.reason).toBe(
      'enrichment incomplete (owner lookup failed: throttled): fail closed',
    );
    expect(w2.gates).not.toBe(w1.gates);
    expect(Object.isFrozen(w1.gates)).toBe(false);
    expect(w2.gates[0]).toBe(w1.gates[0]);
  });
});
