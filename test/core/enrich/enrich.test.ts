import { beforeAll, describe, expect, it, vi } from 'vitest';
import { loadConfig } from '../../../shared/adapters/config/load.js';
import { AzureResourceTagsLookup } from '../../../shared/adapters/lookup/azure-tags.js';
import type { Config } from '../../../shared/core/config.js';
import { RegistrySchema } from '../../../shared/core/enrich/registry.js';
import { AdapterError } from '../../../shared/core/errors.js';
import { createEnricher, type Enricher } from '../../../shared/core/pipeline/enrich.js';
import { EnrichmentPolicySchema } from '../../../shared/core/policy/policy.js';
import { type LookupOutcome, type OwnerLookup, type ResourceRef, silentLogger } from '../../../shared/core/ports.js';
import { makeFinding } from '../../helpers/findings.js';

let config: Config;
let enricher: Enricher;
beforeAll(async () => {
  config = await loadConfig('examples/config');
  enricher = createEnricher({ registry: config.registry, policy: config.policy.enrichment, log: silentLogger });
});

const sync = (e: Enricher, f: ReturnType<typeof makeFinding>) => {
  const out = e.enrichSync(f);
  if (!out) throw new Error('expected a synchronous enrichment');
  return out;
};

describe('enrichment chain', () => {
  it('takes owner, application and environment from event tags and says which tag when tags are present', () => {
    // Prepare
    const f = makeFinding({
      resource: { tags: { owner: 'marketing-data@acme.example', env: 'prod', app: 'campaign-exports' } },
    });
    // Act
    const e = sync(enricher, f);
    // Assess
    expect(e.owner).toBe('marketing-data@acme.example');
    expect(e.ownerEmail).toBe('marketing-data@acme.example');
    expect(e.unowned).toBe(false);
    expect(e.provenance.owner).toEqual({ via: 'tag', detail: 'owner from tag `owner` on the resource', ref: 'owner' });
    expect(e.application).toBe('campaign-exports');
    expect(e.environment).toBe('prod');
    expect(e.provenance.environment.detail).toBe('environment from tag `env` on the resource');
    // team still comes from the account in the registry, and the routing follows the team
    expect(e.team).toBe('data-platform');
    expect(e.provenance.team?.detail).toBe('team from account 111122223333 in the registry');
    expect(e.jira).toEqual({ project: 'DATA', component: 'security', assigneeEmail: 'data-lead@acme.example' });
  });

  it('reads aliased and differently cased tag keys and normalizes environment values when tags use aliases', () => {
    // Prepare
    const f = makeFinding({
      resource: { tags: { 'owner-email': 'ops@acme.example', Environment: 'Production', CRITICALITY: 'tier-1' } },
    });
    // Act
    const e = sync(enricher, f);
    // Assess
    expect(e.owner).toBe('ops@acme.example');
    expect(e.provenance.owner.ref).toBe('owner-email');
    expect(e.environment).toBe('prod');
    expect(e.provenance.environment.ref).toBe('Environment');
    expect(e.criticality).toBe('tier-1');
    expect(e.provenance.criticality?.detail).toBe('criticality from tag `CRITICALITY` on the resource');
  });

  it('reads owner and environment tags whose keys were typed with a trailing space, not the name or triage', () => {
    // Prepare: AWS keeps a key's spaces; the account is not in the registry and the name says `dev`
    const f = makeFinding({
      resource: {
        id: 'arn:aws:s3:::acme-dev-exports',
        name: 'acme-dev-exports',
        account: '777788889999',
        tags: { 'owner ': 'web@acme.example', 'Env ': 'prod' },
      },
    });
    // Act
    const e = sync(enricher, f);
    // Assess
    expect(e.owner).toBe('web@acme.example');
    expect(e.unowned).toBe(false);
    expect(e.provenance.owner.detail).toBe('owner from tag `owner ` on the resource');
    expect(e.environment).toBe('prod');
    expect(e.provenance.environment.via).toBe('tag');
  });

  it('prefers the first alias in the configured order when several alias keys are present', () => {
    // Prepare
    const f = makeFinding({ resource: { tags: { Owner: 'second@acme.example', owner: 'first@acme.example' } } });
    // Act
    const e = sync(enricher, f);
    // Assess
    expect(e.owner).toBe('first@acme.example');
  });

  it('reads a placeholder owner tag as no owner and takes the registry rule, naming the tag in a warning', () => {
    // Prepare: `owner=TBD` on a resource a registry rule knows (web's public website)
    const f = makeFinding({
      resource: {
        id: 'arn:aws:s3:::acme-public-website-eu',
        name: 'acme-public-website-eu',
        account: '444455556666',
        tags: { owner: ' TBD ', team: 'n/a' },
      },
    });
    // Act
    const e = sync(enricher, f);
    // Assess: the rule's owner and team, not a person called TBD nor a team called n/a
    expect(e.owner).toBe('web-lead@acme.example');
    expect(e.provenance.owner.via).toBe('registry-rule');
    expect(e.team).toBe('web');
    expect(e.unowned).toBe(false);
    expect(e.warnings).toEqual([
      'tag `owner`=TBD is a placeholder, read as no owner',
      'tag `team`=n/a is a placeholder, read as no team',
    ]);
  });

  it('takes the next owner alias when the first one holds a placeholder', () => {
    // Prepare
    const f = makeFinding({ resource: { tags: { owner: 'Unassigned', 'owner-email': 'jo@acme.example' } } });
    // Act
    const e = sync(enricher, f);
    // Assess
    expect(e.owner).toBe('jo@acme.example');
    expect(e.provenance.owner.ref).toBe('owner-email');
  });

  it('flags the resource unowned when its only owner tag is a placeholder and nothing else knows the owner', () => {
    // Prepare: the account nobody owns in the registry (see the unowned test below)
    const f = makeFinding({
      resource: {
        id: 'arn:aws:s3:::acme-prod-scratch',
        name: 'acme-prod-scratch',
        account: '777788889999',
        tags: { Owner: 'todo' },
      },
    });
    // Act
    const e = sync(enricher, f);
    // Assess
    expect(e.unowned).toBe(true);
    expect(e.owner).toBe('secops-triage@acme.example');
    expect(e.warnings).toContain('tag `Owner`=todo is a placeholder, read as no owner');
  });

  it('keeps a placeholder-looking value when the configuration lists no placeholders', () => {
    // Prepare
    const policy = EnrichmentPolicySchema.parse({ placeholderValues: [] });
    const plain = createEnricher({ registry: config.registry, policy, log: silentLogger });
    // Act
    const e = sync(plain, makeFinding({ resource: { tags: { owner: 'TBD' } } }));
    // Assess
    expect(e.owner).toBe('TBD');
  });

  it('warns and falls back to the registry when the environment tag names no known environment', () => {
    // Prepare
    const f = makeFinding({ resource: { tags: { env: 'perf' } } });
    // Act
    const e = sync(enricher, f);
    // Assess
    expect(e.environment).toBe('prod');
    expect(e.provenance.environment.via).toBe('registry-account');
    expect(e.warnings).toEqual(['tag `env`=perf names no known environment']);
  });

  it('uses the first matching registry rule when the resource id matches its glob', () => {
    // Prepare
    const f = makeFinding({
      resource: { id: 'arn:aws:s3:::acme-public-website-eu', name: 'acme-public-website-eu', account: '444455556666' },
    });
    // Act
    const e = sync(enricher, f);
    // Assess
    expect(e.owner).toBe('web-lead@acme.example');
    expect(e.team).toBe('web');
    expect(e.application).toBe('public-website');
    expect(e.provenance.owner).toEqual({
      via: 'registry-rule',
      detail: 'owner from registry rule `public-website` (resource arn:aws:s3:::acme-public-website*)',
      ref: 'public-website',
    });
    expect(e.environment).toBe('dev');
    expect(e.provenance.environment.detail).toBe('environment from account 444455556666 in the registry');
    expect(e.jira).toEqual({ project: 'WEB', assigneeEmail: 'web-lead@acme.example' });
  });

  it("gives a resource of another team than its account's that team's default owner, not the account's owner", () => {
    // Prepare: a shared account of data-platform with an on-call owner; a rule and a tag name web's resources
    const registry = RegistrySchema.parse({
      accounts: [
        {
          provider: 'aws',
          id: '111122223333',
          environment: 'prod',
          team: 'data-platform',
          owner: 'dp-oncall@acme.example',
        },
      ],
      rules: [{ id: 'website', match: { resource: 'arn:aws:s3:::acme-public-website*' }, team: 'web' }],
      teams: [
        { id: 'data-platform', owner: 'data-platform@acme.example', jira: { project: 'DATA' } },
        { id: 'web', owner: 'web-team@acme.example', jira: { project: 'WEB', assigneeEmail: 'web-lead@acme.example' } },
      ],
    });
    const e2 = createEnricher({ registry, policy: config.policy.enrichment, log: silentLogger });
    const bucket = (name: string, tags: Record<string, string> = {}) =>
      makeFinding({ resource: { id: `arn:aws:s3:::${name}`, name, account: '111122223333', tags } });
    // Act
    const byRule = sync(e2, bucket('acme-public-website-eu'));
    const byTag = sync(e2, bucket('web-assets', { team: 'web' }));
    const byTypedTag = sync(e2, bucket('web-uploads', { Team: 'Web' }));
    const own = sync(e2, bucket('data-lake-raw'));
    // Assess: web's tickets go to web's people (a tag typed `Web` names team `web`); the account's owner still
    // owns the account's own resources
    expect(byTypedTag.warnings).toEqual([]);
    for (const e of [byRule, byTag, byTypedTag]) {
      expect(e.team).toBe('web');
      expect(e.owner).toBe('web-team@acme.example');
      expect(e.provenance.owner.detail).toBe('owner is the default owner of team `web` in the registry');
      expect(e.jira?.project).toBe('WEB');
    }
    expect(own.owner).toBe('dp-oncall@acme.example');
    expect(own.team).toBe('data-platform');
  });

  it("falls back to the team's default owner when the account names a team but no owner", () => {
    // Prepare
    const f = makeFinding({ resource: { id: 'arn:aws:s3:::acme-data-lake-raw', name: 'acme-data-lake-raw' } });
    // Act
    const e = sync(enricher, f);
    // Assess
    expect(e.owner).toBe('data-platform@acme.example');
    expect(e.provenance.owner).toEqual({
      via: 'registry-team',
      detail: 'owner is the default owner of team `data-platform` in the registry',
      ref: 'data-platform',
    });
  });

  it('matches an Azure subscription case-insensitively when the finding has no tags', () => {
    // Prepare
    const f = makeFinding({
      source: 'defender',
      resource: {
        provider: 'azure',
        id: '/subscriptions/6C1F3D2A-9B4E-4F7A-8D2C-5E0B1A7C9F36/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/stacmemedia01',
        type: 'Microsoft.Storage/storageAccounts',
        name: 'stacmemedia01',
        account: '6C1F3D2A-9B4E-4F7A-8D2C-5E0B1A7C9F36',
        region: null,
      },
    });
    // Act
    const e = sync(enricher, f);
    // Assess
    expect(e).toMatchObject({ owner: 'media-ops@acme.example', team: 'media', environment: 'prod', unowned: false });
    expect(e.provenance.environment.detail).toBe(
      'environment from subscription 6c1f3d2a-9b4e-4f7a-8d2c-5e0b1a7c9f36 in the registry',
    );
    expect(e.jira).toEqual({ project: 'MEDIA' });
  });

  it('matches a GCP project by its number when the finding carries only the number', () => {
    // Prepare
    const f = makeFinding({
      source: 'scc',
      resource: {
        provider: 'gcp',
        id: '//storage.googleapis.com/acme-web-uploads',
        type: 'google.cloud.storage.Bucket',
        name: 'acme-web-uploads',
        account: '318274659012',
        region: null,
      },
    });
    // Act
    const e = sync(enricher, f);
    // Assess
    expect(e).toMatchObject({ team: 'web', environment: 'prod', owner: 'web-team@acme.example' });
    expect(e.provenance.environment.ref).toBe('acme-web-prod');
  });

  it('matches a GCP project by its id when the finding carries the id and the number', () => {
    // Prepare
    const f = makeFinding({
      source: 'scc',
      resource: {
        provider: 'gcp',
        id: '//compute.googleapis.com/projects/acme-sandbox/global/firewalls/1234567890',
        type: 'google.compute.Firewall',
        name: 'allow-all',
        account: 'acme-sandbox',
        accountNumber: '555000111222',
        region: null,
      },
    });
    // Act
    const e = sync(enricher, f);
    // Assess
    expect(e).toMatchObject({ team: 'web', environment: 'dev' });
    expect(e.provenance.environment.detail).toBe('environment from project acme-sandbox in the registry');
  });

  it('matches an Azure rule type without case when Defender sends the resource id lower-cased', () => {
    // Prepare: the rule spells the ARM type as documented; the alert's resource id is all lower case
    const registry = RegistrySchema.parse({
      ...config.registry,
      rules: [
        {
          id: 'media-storage',
          match: {
            provider: 'azure',
            type: 'Microsoft.Storage/storageAccounts',
            resource: '*/resourceGroups/rg-media/*',
          },
          owner: 'storage-owner@acme.example',
        },
      ],
    });
    const e2 = createEnricher({ registry, policy: config.policy.enrichment, log: silentLogger });
    const id =
      '/subscriptions/6c1f3d2a-9b4e-4f7a-8d2c-5e0b1a7c9f36/resourcegroups/rg-media/providers/microsoft.storage/storageaccounts/stacmemedia01';
    const azure = (type: string, provider: 'azure' | 'aws' = 'azure') =>
      makeFinding({
        source: 'defender',
        resource: { provider, id, type, name: 'stacmemedia01', account: '6c1f3d2a-9b4e-4f7a-8d2c-5e0b1a7c9f36' },
      });
    // Act
    const lower = sync(e2, azure('microsoft.storage/storageaccounts'));
    const other = sync(e2, azure('microsoft.storage/storageaccounts/blobservices'));
    // Assess
    expect(lower.owner).toBe('storage-owner@acme.example');
    expect(lower.provenance.owner.ref).toBe('media-storage');
    expect(other.owner).toBe('media-ops@acme.example');
  });

  it('keeps an AWS rule type exact when the finding spells the type in another case', () => {
    // Prepare
    const registry = RegistrySchema.parse({
      ...config.registry,
      rules: [{ id: 'buckets', match: { provider: 'aws', type: 'S3Bucket', resource: '*' }, owner: 'b@acme.example' }],
    });
    const e2 = createEnricher({ registry, policy: config.policy.enrichment, log: silentLogger });
    // Act
    const e = sync(e2, makeFinding({ resource: { type: 's3bucket' } }));
    // Assess
    expect(e.owner).toBe('data-platform@acme.example');
  });

  it.each([
    ['the id and the number', 'acme-web-prod', '318274659012'],
    ['only the number', '318274659012', undefined],
  ] as const)(
    'matches a GCP rule naming the project id when the finding carries %s',
    (_carries, account, accountNumber) => {
      // Prepare: the rule names the project id; the registry maps it to its number
      const registry = RegistrySchema.parse({
        ...config.registry,
        rules: [
          {
            id: 'web-buckets',
            match: { provider: 'gcp', account: 'acme-web-prod', resource: '//storage.googleapis.com/*' },
            owner: 'uploads-owner@acme.example',
          },
        ],
      });
      const e2 = createEnricher({ registry, policy: config.policy.enrichment, log: silentLogger });
      const f = makeFinding({
        source: 'scc',
        resource: {
          provider: 'gcp',
          id: '//storage.googleapis.com/acme-web-uploads',
          type: 'google.cloud.storage.Bucket',
          name: 'acme-web-uploads',
          account,
          ...(accountNumber ? { accountNumber } : {}),
          region: null,
        },
      });
      // Act
      const e = sync(e2, f);
      // Assess
      expect(e.owner).toBe('uploads-owner@acme.example');
      expect(e.provenance.owner.ref).toBe('web-buckets');
    },
  );

  it('matches a GCP rule naming the project number when the finding carries only the project id', () => {
    // Prepare
    const registry = RegistrySchema.parse({
      ...config.registry,
      rules: [
        {
          id: 'web-buckets',
          match: { provider: 'gcp', account: '318274659012', resource: '//storage.googleapis.com/*' },
          owner: 'uploads-owner@acme.example',
        },
      ],
    });
    const e2 = createEnricher({ registry, policy: config.policy.enrichment, log: silentLogger });
    const f = makeFinding({
      source: 'scc',
      resource: {
        provider: 'gcp',
        id: '//storage.googleapis.com/b1',
        name: 'b1',
        account: 'acme-web-prod',
        region: null,
      },
    });
    // Act
    const e = sync(e2, f);
    const elsewhere = sync(e2, { ...f, resource: { ...f.resource, account: 'acme-sandbox' } });
    // Assess
    expect(e.owner).toBe('uploads-owner@acme.example');
    expect(elsewhere.owner).toBe('web-team@acme.example');
  });

  it('flags the case unowned with the triage owner and routing when nothing knows the owner', () => {
    // Prepare
    const f = makeFinding({
      resource: { id: 'arn:aws:s3:::acme-prod-scratch', name: 'acme-prod-scratch', account: '777788889999' },
    });
    // Act
    const e = sync(enricher, f);
    // Assess
    expect(e.owner).toBe('secops-triage@acme.example');
    expect(e.unowned).toBe(true);
    expect(e.provenance.owner.via).toBe('triage');
    expect(e.provenance.owner.detail).toContain('the triage owner stands in');
    expect(e.team).toBeNull();
    expect(e.jira).toEqual({ project: 'SEC', component: 'triage' });
    // environment from the name on word boundaries
    expect(e.environment).toBe('prod');
    expect(e.provenance.environment).toEqual({
      via: 'name-pattern',
      detail: 'environment from the word `prod` in the resource name `acme-prod-scratch`',
      ref: 'prod',
    });
  });

  it.each([
    ['acme-prd-logs', 'prod'],
    ['orders_production', 'prod'],
    ['web.stg.assets', 'staging'],
    ['qa-runner', 'test'],
    ['uat', 'test'],
    ['acme-development-bucket', 'dev'],
    ['team-sbx-01', 'sandbox'],
    ['product-catalog', 'unknown'],
    ['devices-inventory', 'unknown'],
    ['reproduction', 'unknown'],
  ] as const)(
    'infers %s → %s from name patterns on word boundaries when neither tags nor registry say',
    (name, env) => {
      // Prepare
      const f = makeFinding({ resource: { id: `arn:aws:s3:::${name}`, name, account: '777788889999' } });
      // Act
      const e = sync(enricher, f);
      // Assess
      expect(e.environment).toBe(env);
      expect(e.provenance.environment.via).toBe(env === 'unknown' ? 'default' : 'name-pattern');
    },
  );

  it.each([
    ['acme-test-results-prod', ['`test`', '`prod`']],
    ['dev-tools-production', ['`dev`', '`production`']],
    ['qa-reports-live', ['`qa`', '`live`']],
  ] as const)('keeps %s unknown, never the first word, when the words of its name disagree', (name, words) => {
    // Prepare: an account the registry does not know, an owner tag, no environment tag
    const f = makeFinding({
      resource: { id: `arn:aws:s3:::${name}`, name, account: '777788889999', tags: { owner: 'o@acme.example' } },
    });
    // Act
    const e = sync(enricher, f);
    // Assess
    expect(e.environment).toBe('unknown');
    expect(e.provenance.environment).toMatchObject({
      via: 'name-pattern',
      detail: `environment unknown: the resource name \`${name}\` names more than one environment (${words.join(', ')})`,
    });
  });

  it('reads an environment named twice in a name as that environment when the words agree', () => {
    // Prepare
    const name = 'prod-exports-production';
    const f = makeFinding({ resource: { id: `arn:aws:s3:::${name}`, name, account: '777788889999' } });
    // Act
    const e = sync(enricher, f);
    // Assess
    expect(e.environment).toBe('prod');
    expect(e.provenance.environment.ref).toBe('prod');
  });

  it('makes the environment unknown with a warning, whatever the registry says, when the environment tag names two', () => {
    // Prepare: the registry calls account 444455556666 dev
    const tagged = (account: string) =>
      makeFinding({ resource: { account, tags: { owner: 'o@acme.example', env: 'uat/prod' } } });
    // Act
    const out = ['777788889999', '444455556666'].map((a) => sync(enricher, tagged(a)));
    // Assess
    for (const e of out) {
      expect(e.environment).toBe('unknown');
      expect(e.warnings).toEqual(['tag `env`=uat/prod names more than one environment (`uat`, `prod`)']);
      expect(e.provenance.environment).toEqual({
        via: 'tag',
        detail: 'environment unknown: tag `env`=uat/prod names more than one environment (`uat`, `prod`)',
        ref: 'env',
      });
    }
  });

  it('keeps the environment unknown and does not guess from the name when the environment tag is unreadable', () => {
    // Prepare: `prd01` names no known environment; the name says `dev`; the account is not in the registry
    const f = makeFinding({
      resource: {
        id: 'arn:aws:s3:::dev-tools-exports',
        name: 'dev-tools-exports',
        account: '777788889999',
        tags: { owner: 'o@acme.example', env: 'prd01' },
      },
    });
    // Act
    const e = sync(enricher, f);
    // Assess
    expect(e.environment).toBe('unknown');
    expect(e.warnings).toEqual(['tag `env`=prd01 names no known environment']);
    expect(e.provenance.environment).toEqual({
      via: 'default',
      detail:
        'environment unknown: tag `env`=prd01 names no known environment and no registry entry says which (the resource name is not guessed from)',
    });
  });

  it('infers the environment from the project id when the resource name says nothing', () => {
    // Prepare
    const f = makeFinding({
      source: 'scc',
      resource: {
        provider: 'gcp',
        id: '//storage.googleapis.com/uploads-0001',
        name: 'uploads-0001',
        account: 'acme-stg-data',
        region: null,
      },
    });
    // Act
    const e = sync(enricher, f);
    // Assess
    expect(e.environment).toBe('staging');
    expect(e.provenance.environment.detail).toBe('environment from the word `stg` in the project name `acme-stg-data`');
  });

  it.each([
    [
      'acme-dev-exports',
      'acme-payments-prod',
      'environment unknown: the resource and project name `acme-dev-exports acme-payments-prod` names more than one environment (`dev`, `prod`)',
    ],
    [
      'acme-prod-exports',
      'acme-sbx-tools',
      'environment unknown: the resource and project name `acme-prod-exports acme-sbx-tools` names more than one environment (`prod`, `sbx`)',
    ],
  ] as const)(
    'keeps %s in project %s unknown, never the laxer word, when the resource and project names disagree',
    (name, project, detail) => {
      // Prepare: a project the registry does not know, an owner tag, no environment tag
      const f = makeFinding({
        source: 'scc',
        resource: {
          provider: 'gcp',
          id: `//storage.googleapis.com/${name}`,
          name,
          account: project,
          region: null,
          tags: { owner: 'o@acme.example' },
        },
      });
      // Act
      const e = sync(enricher, f);
      // Assess
      expect(e.environment).toBe('unknown');
      expect(e.provenance.environment).toMatchObject({ via: 'name-pattern', detail });
    },
  );

  it('reads the resource name when the project name agrees with it or names no environment', () => {
    // Prepare
    const gcp = (name: string, project: string) =>
      makeFinding({
        source: 'scc',
        resource: { provider: 'gcp', id: `//storage.googleapis.com/${name}`, name, account: project, region: null },
      });
    // Act
    const agree = sync(enricher, gcp('orders-production-eu', 'acme-prd-data'));
    const silent = sync(enricher, gcp('acme-dev-exports', 'acme-payments'));
    // Assess
    expect(agree.environment).toBe('prod');
    expect(agree.provenance.environment.detail).toBe(
      'environment from the word `production` in the resource name `orders-production-eu`',
    );
    expect(silent.environment).toBe('dev');
  });

  it('keeps environment unknown when name patterns are turned off', () => {
    // Prepare
    const e2 = createEnricher({
      registry: RegistrySchema.parse({}),
      policy: EnrichmentPolicySchema.parse({ namePatterns: false }),
      log: silentLogger,
    });
    // Act
    const e = sync(e2, makeFinding({ resource: { name: 'acme-prod-logs', account: '777788889999' } }));
    // Assess
    expect(e.environment).toBe('unknown');
    expect(e.owner).toBe('security-triage');
    expect(e.ownerEmail).toBeNull();
  });

  it('warns and routes to triage when a tag names a team the registry does not know', () => {
    // Prepare
    const f = makeFinding({ resource: { tags: { team: 'ghosts' }, account: '777788889999' } });
    // Act
    const e = sync(enricher, f);
    // Assess
    expect(e.team).toBe('ghosts');
    expect(e.jira).toEqual({ project: 'SEC', component: 'triage' });
    expect(e.warnings).toContain('team `ghosts` is not in the registry: tickets use the triage routing');
  });
});

describe('shared provenance', () => {
  it('shares frozen provenance between resources enriched alike and keeps the sentences apart otherwise', () => {
    // Prepare
    const tagged = (id: string, tags: Record<string, string>) =>
      makeFinding({ resource: { id: `arn:aws:s3:::${id}`, tags: { owner: 'ops@acme.example', ...tags } } });
    // Act
    const a = sync(enricher, tagged('one', { env: 'prod' }));
    const b = sync(enricher, tagged('two', { env: 'dev' })); // the same sentences: `env` says which
    const c = sync(enricher, tagged('three', { Environment: 'dev' }));
    // Assess
    expect(b.provenance).toBe(a.provenance);
    expect(Object.isFrozen(a.provenance) && Object.isFrozen(a.provenance.owner)).toBe(true);
    expect(c.provenance).not.toBe(a.provenance);
    expect(c.provenance.owner).toBe(a.provenance.owner); // the same sentence: owner from tag `owner`
    expect([a.environment, b.environment, c.environment]).toEqual(['prod', 'dev', 'dev']);
    expect(c.provenance.environment.detail).toBe('environment from tag `Environment` on the resource');
    expect(() => {
      (a.provenance.owner as { detail: string }).detail = 'changed';
    }).toThrow(TypeError);
    expect(a.warnings).toEqual([]);
  });

  it('keeps sentences that name the resource to its own enrichment', () => {
    // Prepare: nothing knows the owner; the environment comes from each resource's name
    const unowned = (name: string) =>
      makeFinding({ resource: { id: `arn:aws:s3:::${name}`, name, account: '777788889999' } });
    // Act
    const a = sync(enricher, unowned('acme-prod-one'));
    const b = sync(enricher, unowned('acme-prod-two'));
    // Assess
    expect(b.provenance).not.toBe(a.provenance);
    expect(b).not.toBe(a);
    expect(a.provenance.owner.detail).toContain('arn:aws:s3:::acme-prod-one');
    expect(b.provenance.owner.detail).toContain('arn:aws:s3:::acme-prod-two');
    expect(b.provenance.environment.detail).toContain('`acme-prod-two`');
  });
});

describe('live lookups in the enrichment chain', () => {
  const lookupOf = (impl: () => Promise<Record<string, string>>) => ({ tagsFor: vi.fn(impl) });

  it('returns undefined from enrichSync and uses the lookup tags when the event has no tags', async () => {
    // Prepare
    const lookup = lookupOf(async () => ({ Owner: 'looked-up@acme.example', stage: 'staging' }));
    const e2 = createEnricher({
      registry: config.registry,
      policy: config.policy.enrichment,
      lookup,
      log: silentLogger,
    });
    const f = makeFinding({ resource: { account: '777788889999' } });
    // Act
    const syncResult = e2.enrichSync(f);
    const e = await e2.enrich(f);
    // Assess
    expect(syncResult).toBeUndefined();
    expect(lookup.tagsFor).toHaveBeenCalledWith({
      provider: 'aws',
      id: 'arn:aws:s3:::acme-marketing-exports',
      account: '777788889999',
      region: 'us-east-1',
    });
    expect(e.owner).toBe('looked-up@acme.example');
    expect(e.provenance.owner).toEqual({
      via: 'lookup',
      detail: 'owner from tag `Owner` found by a live lookup of the resource',
      ref: 'Owner',
    });
    expect(e.environment).toBe('staging');
    expect(e.complete).toBe(true);
  });

  it('never calls the lookup when the event carries tags', async () => {
    // Prepare
    const lookup = lookupOf(async () => ({}));
    const e2 = createEnricher({
      registry: config.registry,
      policy: config.policy.enrichment,
      lookup,
      log: silentLogger,
    });
    const f = makeFinding({ resource: { tags: { owner: 'a@acme.example' } } });
    // Act
    const fromSync = e2.enrichSync(f);
    const fromAsync = await e2.enrich(f);
    // Assess
    expect(fromSync?.owner).toBe('a@acme.example');
    expect(fromAsync.owner).toBe('a@acme.example');
    expect(lookup.tagsFor).not.toHaveBeenCalled();
  });

  it('warns, marks the enrichment incomplete and continues with the registry when the lookup fails', async () => {
    // Prepare
    const lookup = lookupOf(async () => {
      throw new AdapterError('denied', 'AccessDeniedException: not authorized to perform tag:GetResources');
    });
    const warn = vi.fn();
    const e2 = createEnricher({
      registry: config.registry,
      policy: config.policy.enrichment,
      lookup,
      log: { ...silentLogger, warn },
    });
    // Act
    const e = await e2.enrich(makeFinding());
    // Assess
    expect(e.complete).toBe(false);
    expect(e.warnings[0]).toContain('live tag lookup failed for arn:aws:s3:::acme-marketing-exports');
    expect(e.owner).toBe('data-platform@acme.example');
    expect(e.environment).toBe('prod');
    expect(warn).toHaveBeenCalledOnce();
  });

  it('says the owner is unknown because the lookup failed, not that the tags name none, when nothing else knows it', async () => {
    // Prepare: 777788889999 is not in the registry, so the triage owner stands in
    const lookup = lookupOf(async () => {
      throw new AdapterError('throttled', 'ThrottlingException');
    });
    const e2 = createEnricher({
      registry: config.registry,
      policy: config.policy.enrichment,
      lookup,
      log: silentLogger,
    });
    // Act
    const e = await e2.enrich(makeFinding({ resource: { account: '777788889999' } }));
    // Assess: still an owner gap for triage, and fail-closed, but never "no owner in tags" (none were read)
    expect(e.unowned).toBe(true);
    expect(e.complete).toBe(false);
    expect(e.owner).toBe('secops-triage@acme.example');
    expect(e.provenance.owner).toEqual({
      via: 'triage',
      detail:
        'owner unknown (the live tag lookup failed) and none in the registry for arn:aws:s3:::acme-marketing-exports: the triage owner stands in',
    });
  });

  it('keeps the environment unknown, not guessed from the name, when the lookup failed and the registry says nothing', async () => {
    // Prepare: the name says `dev`; the unread tags might say prod; 777788889999 is not in the registry
    const lookup = lookupOf(async () => {
      throw new AdapterError('transient', 'tag:GetResources: InternalFailure');
    });
    const e2 = createEnricher({
      registry: config.registry,
      policy: config.policy.enrichment,
      lookup,
      log: silentLogger,
    });
    const f = makeFinding({
      resource: { id: 'arn:aws:s3:::acme-dev-exports', name: 'acme-dev-exports', account: '777788889999' },
    });
    // Act
    const e = await e2.enrich(f);
    // Assess
    expect(e.complete).toBe(false);
    expect(e.environment).toBe('unknown');
    expect(e.provenance.environment).toEqual({
      via: 'default',
      detail:
        'environment unknown: the live tag lookup failed and no registry entry says which (the resource name is not guessed from)',
    });
  });

  it('calls GCP values labels in provenance when the provider is gcp', async () => {
    // Prepare
    const lookup = lookupOf(async () => ({ owner: 'gcp-owner@acme.example' }));
    const e2 = createEnricher({
      registry: config.registry,
      policy: config.policy.enrichment,
      lookup,
      log: silentLogger,
    });
    const f = makeFinding({
      source: 'scc',
      resource: {
        provider: 'gcp',
        id: '//storage.googleapis.com/b1',
        name: 'b1',
        account: 'acme-web-prod',
        region: null,
      },
    });
    // Act
    const e = await e2.enrich(f);
    // Assess
    expect(e.provenance.owner.detail).toBe('owner from label `owner` found by a live lookup of the resource');
  });
  describe('Azure resource group tags (ARM does not copy them onto the resources)', () => {
    // A subscription the registry does not know: without the group's tags, nobody owns the account.
    const SUB = '9d2e5f1a-3b4c-4d5e-8f6a-7b8c9d0e1f2a';
    const RG = `/subscriptions/${SUB}/resourceGroups/rg-payments-prod`;
    const account = makeFinding({
      source: 'defender',
      resource: {
        provider: 'azure',
        id: `${RG}/providers/Microsoft.Storage/storageAccounts/stpayledger01`,
        type: 'Microsoft.Storage/storageAccounts',
        name: 'stpayledger01',
        account: SUB,
        region: 'westeurope',
      },
    });
    /** The live Azure lookup over ARM answering each scope's tags (an Error: that read is refused). */
    const armLookup = (byScope: Record<string, Record<string, string> | Error>) =>
      new AzureResourceTagsLookup(() => ({
        tagsOperations: {
          getAtScope: async (scope: string) => {
            const found = byScope[`/${scope}`];
            if (found instanceof Error) throw found;
            return { properties: { tags: found ?? {} } };
          },
        },
      }));
    const enricherOver = (lookup: OwnerLookup) =>
      createEnricher({ registry: config.registry, policy: config.policy.enrichment, lookup, log: silentLogger });

    it("gives a resource without an owner tag its resource group's owner and environment, and says they came from the group", async () => {
      // Prepare: the group is tagged owner and env; the account carries only its app tag
      const group = { owner: 'alice@acme.com', env: 'prod' };
      const e2 = enricherOver(armLookup({ [RG]: group, [account.resource.id]: { app: 'ledger' } }));
      // Act
      const [out] = await e2.enrichMany([account]);
      // Assess
      expect(out?.enrichment.owner).toBe('alice@acme.com');
      expect(out?.enrichment.unowned).toBe(false);
      expect(out?.enrichment.provenance.owner).toEqual({
        via: 'lookup',
        detail: 'owner from tag `owner` found by a live lookup of its resource group rg-payments-prod',
        ref: 'owner',
      });
      expect(out?.enrichment.environment).toBe('prod');
      expect(out?.enrichment.provenance.environment.detail).toBe(
        'environment from tag `env` found by a live lookup of its resource group rg-payments-prod',
      );
      expect(out?.enrichment.application).toBe('ledger');
      expect(out?.liveTags).toEqual({ ...group, app: 'ledger' });
    });

    it("lets the resource's own owner tag outrank its group's, the group still saying the environment", async () => {
      // Prepare
      const e2 = enricherOver(
        armLookup({ [RG]: { owner: 'alice@acme.com', env: 'prod' }, [account.resource.id]: { Owner: 'bob@acme.com' } }),
      );
      // Act
      const e = await e2.enrich(account);
      // Assess
      expect(e.owner).toBe('bob@acme.com');
      expect(e.provenance.owner.detail).toBe('owner from tag `Owner` found by a live lookup of the resource');
      expect(e.environment).toBe('prod');
      expect(e.provenance.environment.via).toBe('lookup');
    });

    it("marks the owner unknown, not absent, when the group's tags cannot be read, though the resource's could", async () => {
      // Prepare: the account's own tags (no owner among them) read fine; the group's read is refused
      const refused = Object.assign(new Error('AuthorizationFailed'), { statusCode: 403 });
      const e2 = enricherOver(armLookup({ [RG]: refused, [account.resource.id]: { app: 'ledger' } }));
      // Act
      const [out] = await e2.enrichMany([account]);
      // Assess: the failed-lookup path, never a guessed owner or environment
      expect(out?.enrichment.unowned).toBe(true);
      expect(out?.enrichment.complete).toBe(false);
      expect(out?.enrichment.provenance.owner.detail).toContain('owner unknown (the live tag lookup failed)');
      expect(out?.enrichment.environment).toBe('unknown');
      expect(out?.enrichment.warnings[0]).toContain(`tags at scope ${RG}: HTTP 403`);
      expect(out?.liveTags).toBeNull();
    });

    describe('and subscription tags (ARM copies them onto neither groups nor resources)', () => {
      const SUB_SCOPE = `/subscriptions/${SUB}`;

      it('gives a resource in an untagged group of a subscription tagged env=prod its environment and owner, and names the subscription', async () => {
        // Prepare: neither the account nor its group carry a tag; the subscription does
        const e2 = enricherOver(armLookup({ [SUB_SCOPE]: { env: 'prod', owner: 'platform@acme.com' } }));
        // Act
        const [out] = await e2.enrichMany([account]);
        // Assess
        expect(out?.enrichment.environment).toBe('prod');
        expect(out?.enrichment.provenance.environment).toEqual({
          via: 'lookup',
          detail: `environment from tag \`env\` found by a live lookup of its subscription ${SUB}`,
          ref: 'env',
        });
        expect(out?.enrichment.owner).toBe('platform@acme.com');
        expect(out?.enrichment.unowned).toBe(false);
        expect(out?.enrichment.provenance.owner.detail).toBe(
          `owner from tag \`owner\` found by a live lookup of its subscription ${SUB}`,
        );
        expect(out?.liveTags).toEqual({ env: 'prod', owner: 'platform@acme.com' });
      });

      it("lets the group's tags outrank its subscription's, by key in any casing and by field through another alias", async () => {
        // Prepare: the group says `stage`=dev (an environment alias after `env`) and `Owner`; the subscription
        // says `env`=prod, `owner` (the group's `Owner` in another casing) and a criticality nobody else says
        const e2 = enricherOver(
          armLookup({
            [RG]: { stage: 'dev', Owner: 'alice@acme.com' },
            [SUB_SCOPE]: { env: 'prod', owner: 'platform@acme.com', criticality: 'high' },
          }),
        );
        // Act
        const [out] = await e2.enrichMany([account]);
        // Assess
        expect(out?.enrichment.environment).toBe('dev');
        expect(out?.enrichment.provenance.environment.detail).toBe(
          'environment from tag `stage` found by a live lookup of its resource group rg-payments-prod',
        );
        expect(out?.enrichment.owner).toBe('alice@acme.com');
        expect(out?.enrichment.provenance.owner.detail).toBe(
          'owner from tag `Owner` found by a live lookup of its resource group rg-payments-prod',
        );
        expect(out?.enrichment.criticality).toBe('high');
        expect(out?.enrichment.provenance.criticality?.detail).toBe(
          `criticality from tag \`criticality\` found by a live lookup of its subscription ${SUB}`,
        );
        // The skip-tag gate reads what applies: the subscription's `owner` is the group's `Owner`'s
        expect(out?.liveTags).toEqual({ stage: 'dev', Owner: 'alice@acme.com', env: 'prod', criticality: 'high' });
      });

      it("lets the resource's own tags outrank its group's and its subscription's", async () => {
        // Prepare
        const e2 = enricherOver(
          armLookup({
            [account.resource.id]: { env: 'test', owner: 'bob@acme.com' },
            [RG]: { env: 'dev', owner: 'alice@acme.com' },
            [SUB_SCOPE]: { env: 'prod', owner: 'platform@acme.com', app: 'payments' },
          }),
        );
        // Act
        const e = await e2.enrich(account);
        // Assess
        expect(e.environment).toBe('test');
        expect(e.provenance.environment.detail).toBe(
          'environment from tag `env` found by a live lookup of the resource',
        );
        expect(e.owner).toBe('bob@acme.com');
        expect(e.provenance.owner.detail).toBe('owner from tag `owner` found by a live lookup of the resource');
        expect(e.application).toBe('payments');
        expect(e.provenance.application?.detail).toBe(
          `application from tag \`app\` found by a live lookup of its subscription ${SUB}`,
        );
      });

      it("marks the owner unknown and guesses no environment from the name when the subscription's tags cannot be read", async () => {
        // Prepare: a resource named `ledger-dev` (a name pattern would say dev); the subscription's read is refused
        const refused = Object.assign(new Error('AuthorizationFailed'), { statusCode: 403 });
        const named = makeFinding({
          source: 'defender',
          resource: {
            ...account.resource,
            id: `${RG}/providers/Microsoft.Storage/storageAccounts/ledger-dev`,
            name: 'ledger-dev',
          },
        });
        const e2 = enricherOver(armLookup({ [SUB_SCOPE]: refused, [RG]: { app: 'ledger' } }));
        // Act
        const [out] = await e2.enrichMany([named]);
        // Assess: the failed-lookup path, as for a group's failed read
        expect(out?.enrichment.unowned).toBe(true);
        expect(out?.enrichment.complete).toBe(false);
        expect(out?.enrichment.provenance.owner.detail).toContain('owner unknown (the live tag lookup failed)');
        expect(out?.enrichment.environment).toBe('unknown');
        expect(out?.enrichment.provenance.environment.detail).toContain('the live tag lookup failed');
        expect(out?.enrichment.warnings[0]).toContain(`tags at scope ${SUB_SCOPE}: HTTP 403`);
        expect(out?.liveTags).toBeNull();
      });

      it("names the level each inherited tag came from as the answer says, and reads an answer without it as the group's", async () => {
        // Prepare: the answers of a spoke that read subscription tags, and of an older one that did not say
        const inherited = { env: 'prod', owner: 'platform@acme.com', criticality: 'TBD' };
        const answering = (outcome: LookupOutcome): OwnerLookup => ({
          tagsFor: vi.fn(),
          tagsForMany: vi.fn(async () => [outcome]),
        });
        const withLevels = enricherOver(
          answering({
            tags: inherited,
            inherited,
            inheritedFrom: { env: 'subscription', owner: 'group', criticality: 'subscription' },
          }),
        );
        const older = enricherOver(
          answering({ tags: { owner: 'platform@acme.com' }, inherited: { owner: 'platform@acme.com' } }),
        );
        // Act
        const e = await withLevels.enrich(account);
        const old = await older.enrich(account);
        // Assess
        expect(e.provenance.environment.detail).toBe(
          `environment from tag \`env\` found by a live lookup of its subscription ${SUB}`,
        );
        expect(e.provenance.owner.detail).toBe(
          'owner from tag `owner` found by a live lookup of its resource group rg-payments-prod',
        );
        expect(e.warnings).toContain('subscription tag `criticality`=TBD is a placeholder, read as no criticality');
        expect(old.provenance.owner.detail).toBe(
          'owner from tag `owner` found by a live lookup of its resource group rg-payments-prod',
        );
      });
    });
  });
  describe('GCP project labels (inherited by every resource of the project)', () => {
    const bucket = makeFinding({
      source: 'scc',
      resource: {
        provider: 'gcp',
        id: '//storage.googleapis.com/acme-web-uploads',
        type: 'google.cloud.storage.Bucket',
        name: 'acme-web-uploads',
        account: 'acme-web-prod',
        region: null,
      },
    });
    const withRule = () =>
      RegistrySchema.parse({
        ...config.registry,
        rules: [
          {
            id: 'uploads',
            match: { provider: 'gcp', resource: '//storage.googleapis.com/acme-web-uploads' },
            owner: 'uploads-owner@acme.example',
          },
        ],
      });
    const answering = (outcome: LookupOutcome) => ({ tagsFor: vi.fn(), tagsForMany: vi.fn(async () => [outcome]) });

    it('lets a registry rule naming the resource outrank a project label, and keeps the skip label in the live tags', async () => {
      // Prepare: the project says owner=platform-team and carries the skip label; the bucket has no labels
      const project = { owner: 'platform-team', env: 'prod', 'closeloop-skip': 'true' };
      const e2 = createEnricher({
        registry: withRule(),
        policy: config.policy.enrichment,
        lookup: answering({ tags: project, inherited: project }),
        log: silentLogger,
      });
      // Act
      const [out] = await e2.enrichMany([bucket]);
      // Assess
      expect(out?.enrichment.owner).toBe('uploads-owner@acme.example');
      expect(out?.enrichment.provenance.owner.via).toBe('registry-rule');
      expect(out?.enrichment.environment).toBe('prod');
      expect(out?.enrichment.provenance.environment.detail).toBe(
        "environment from project label `env` found by a live lookup of the resource's project",
      );
      expect(out?.liveTags).toEqual(project);
    });

    it('names a project label as such, and ranks it over the registry project entry, when no rule names the resource', async () => {
      // Prepare
      const e2 = createEnricher({
        registry: config.registry,
        policy: config.policy.enrichment,
        lookup: answering({ tags: { owner: 'platform-team' }, inherited: { owner: 'platform-team' } }),
        log: silentLogger,
      });
      // Act
      const e = await e2.enrich(bucket);
      // Assess
      expect(e.owner).toBe('platform-team');
      expect(e.provenance.owner).toEqual({
        via: 'lookup',
        detail: "owner from project label `owner` found by a live lookup of the resource's project",
        ref: 'owner',
      });
    });

    it("gives a bucket a rule puts in another team than its project's that team's default owner, not the project's owner label", async () => {
      // Prepare: the project is data-platform's, with its on-call as owner; a rule puts the bucket in web
      const project = { owner: 'data-oncall@acme.example', team: 'data-platform' };
      const registry = RegistrySchema.parse({
        ...config.registry,
        rules: [{ id: 'uploads', match: { provider: 'gcp', resource: bucket.resource.id }, team: 'web' }],
      });
      const e2 = createEnricher({
        registry,
        policy: config.policy.enrichment,
        lookup: answering({ tags: project, inherited: project }),
        log: silentLogger,
      });
      // Act
      const e = await e2.enrich(bucket);
      // Assess
      expect(e.team).toBe('web');
      expect(e.owner).toBe('web-team@acme.example');
      expect(e.provenance.owner.via).toBe('registry-team');
    });

    it("lets the resource's own label outrank the rule, and a project label it overrides count as its own", async () => {
      // Prepare: the bucket's own owner label overrides the project's
      const e2 = createEnricher({
        registry: withRule(),
        policy: config.policy.enrichment,
        lookup: answering({ tags: { owner: 'bucket-owner@acme.example' }, inherited: { owner: 'platform-team' } }),
        log: silentLogger,
      });
      // Act
      const e = await e2.enrich(bucket);
      // Assess
      expect(e.owner).toBe('bucket-owner@acme.example');
      expect(e.provenance.owner.detail).toBe('owner from label `owner` found by a live lookup of the resource');
    });
  });

  it('enrichMany looks each resource up once, keeps the order, and marks only the failed ones incomplete', async () => {
    // Prepare
    const tagsForMany = vi.fn(
      async (refs: readonly ResourceRef[]): Promise<LookupOutcome[]> =>
        refs.map((r) =>
          r.id.endsWith('broken')
            ? { error: new AdapterError('throttled', 'ThrottlingException') }
            : { tags: { owner: `${r.id.slice(-1)}@acme.example` } },
        ),
    );
    const warn = vi.fn();
    const e2 = createEnricher({
      registry: config.registry,
      policy: config.policy.enrichment,
      lookup: { tagsFor: vi.fn(), tagsForMany },
      log: { ...silentLogger, warn },
    });
    const on = (id: string) => makeFinding({ resource: { id } });
    const fs = [
      on('arn:aws:s3:::bucket-a'),
      makeFinding({ resource: { id: 'arn:aws:s3:::tagged', tags: { owner: 't@acme.example' } } }),
      on('arn:aws:s3:::bucket-b'),
      on('arn:aws:s3:::bucket-a'),
      on('arn:aws:s3:::bucket-broken'),
    ];
    // Act
    const out = await e2.enrichMany(fs);
    // Assess
    expect(tagsForMany).toHaveBeenCalledOnce();
    expect(tagsForMany.mock.calls[0]?.[0].map((r) => r.id)).toEqual([
      'arn:aws:s3:::bucket-a',
      'arn:aws:s3:::bucket-b',
      'arn:aws:s3:::bucket-broken',
    ]);
    const enrichments = out.map((e) => e.enrichment);
    expect(enrichments.slice(0, 4).map((e) => e.owner)).toEqual([
      'a@acme.example',
      't@acme.example',
      'b@acme.example',
      'a@acme.example',
    ]);
    expect(enrichments[4]?.provenance.owner.via).not.toBe('lookup');
    expect(enrichments.map((e) => e.complete)).toEqual([true, true, true, true, false]);
    expect(enrichments[4]?.warnings[0]).toContain(
      'live tag lookup failed for arn:aws:s3:::bucket-broken: ThrottlingException',
    );
    expect(warn).toHaveBeenCalledOnce();
    // The tags read go with them (decide's skip-tag gate); none for the tagged event; null where the read failed.
    expect(out.map((e) => e.liveTags)).toEqual([
      { owner: 'a@acme.example' },
      undefined,
      { owner: 'b@acme.example' },
      { owner: 'a@acme.example' },
      null,
    ]);
  });

  it('enriches without a lookup the findings of a cloud the lookup cannot read', async () => {
    // Prepare
    const tagsFor = vi.fn(async () => ({ owner: 'never@acme.example' }));
    const e2 = createEnricher({
      registry: config.registry,
      policy: config.policy.enrichment,
      lookup: { tagsFor, handles: (p) => p === 'azure' },
      log: silentLogger,
    });
    const f = makeFinding();
    // Act
    const fromSync = e2.enrichSync(f);
    const many = await e2.enrichMany([f]);
    // Assess
    expect(fromSync?.complete).toBe(true);
    expect(many[0]).toEqual({ enrichment: fromSync });
    expect(tagsFor).not.toHaveBeenCalled();
  });
});
