/**
 * Enrichment: whose is the resource, what is it part of, which environment — and how each value was found.
 *
 * Chain per value (first source that knows wins; each value carries its provenance as a sentence):
 * 1. tags in the event, through the configured key aliases (`owner`, `Owner`, `owner-email`, …);
 * 2. live lookup tags of the resource itself (only when the event carries no tags and a lookup is
 *    configured; a failed lookup is a warning and `complete: false`, never a throw);
 * 3. the first registry rule whose resource glob matches (its account by id, or GCP project number);
 * 4. the labels the resource takes from its GCP project, the tags from its Azure resource group, then from its
 *    subscription (read by the live lookup, kept apart from its own: a project-, group- or subscription-wide
 *    label says less about one resource than a rule naming it), then the registry entry of
 *    the account / subscription / project (id, or GCP project number);
 *    (owner: a team found for the resource other than its project's or account's takes its own default owner
 *    before their owner, who is the other team's person);
 * 5. owner only: the team's default owner; environment only: name patterns on the resource name and account
 *    (`unknown` when the two name different environments; not asked after a failed lookup: the unread tags
 *    may name another);
 * 6. owner: the triage owner with `unowned: true` (an owner gap is reported, never dropped);
 *    environment: `unknown`.
 * Jira routing follows the team (registry `teams[].jira`), else the triage routing.
 *
 * Hot path: everything that can be computed from configuration alone (globs, alias tables, provenance
 * sentences of registry entries) is compiled once in `createEnricher`.
 */

import { compileEnvironmentWords, type EnvironmentReading } from '../enrich/environment.js';
import { type CompiledGlob, compileGlob } from '../enrich/glob.js';
import type { Registry, RegistryAccount, RegistryRule, RegistryTeam } from '../enrich/registry.js';
import { compileTagReader, TAG_FIELDS, type TagField, type TagHit, type TagHits } from '../enrich/tags.js';
import { errorMessage } from '../errors.js';
import type { Enrichment, Environment, JiraRouting, Provenance } from '../model/enrichment.js';
import type { Finding, Provider } from '../model/finding.js';
import type { EnrichmentPolicy } from '../policy/policy.js';
import {
  canRead,
  type Logger,
  type LookupOutcome,
  type LookupTags,
  lookupMany,
  type OwnerLookup,
  type ResourceRef,
  refOf,
  resourceKey,
} from '../ports.js';
import { EMPTY_LIST, IdentityTrie, SharedTable } from '../util/intern.js';
import { hasEnumerableKey } from '../util/objects.js';

export interface EnricherOptions {
  registry: Registry;
  policy: EnrichmentPolicy;
  /**
   * Live tag lookup. Passing one means "configured": the wiring builds it only when
   * `policy.enrichment.lookup.enabled` is true (wrapped in a CachedOwnerLookup with its ttl/maxEntries).
   */
  lookup?: OwnerLookup;
  log: Logger;
}

export interface Enricher {
  /** Full chain, including a live lookup when one is needed. Never throws for a lookup failure. */
  enrich(f: Finding): Promise<Enrichment>;
  /** Same result without a promise; undefined only when a live lookup is needed (no tags, lookup configured). */
  enrichSync(f: Finding): Enrichment | undefined;
  /**
   * `enrich` over many findings, in order, with their live lookups made together: each resource once,
   * through the lookup's batch call when it has one (AWS: 100 ARNs a call), else a bounded fan-out.
   */
  enrichMany(fs: readonly Finding[]): Promise<Enriched[]>;
  /**
   * The enrichment from tags (or a failure) a lookup elsewhere produced — a spoke reads Azure and GCP tags
   * the hub cannot — exactly as if this enricher's own lookup had answered so.
   */
  enrichFrom(f: Finding, outcome: LookupOutcome): Enriched;
}

/** One finding's enrichment, and the live tags its lookup read (decide's skip-tag gate reads them). */
export interface Enriched {
  enrichment: Enrichment;
  /** Absent: no lookup (the event's tags stand); null: the lookup failed (tags unknown); else what it read. */
  liveTags?: Record<string, string> | null;
}

interface CompiledRule {
  rule: RegistryRule;
  provider: Provider | undefined;
  resource: CompiledGlob;
  type: string | undefined;
  /** The ARM type lower-cased: ARM types are case-insensitive, and Defender may send them lower-cased. */
  typeLower: string | undefined;
  account: string | undefined;
  /**
   * The registry entry `account` names (by id, or GCP project number): a finding of that project matches
   * whichever of the two it carries (finding-formats §5.4, "registries should accept either").
   */
  accountEntry: CompiledAccount | undefined;
  /** Its provenance sentence per field, made once. */
  provenance: Record<TagField, Provenance>;
}

interface CompiledAccount {
  entry: RegistryAccount;
  /** "account 111122223333" / "subscription 6c1f…" / "project acme-web-prod" */
  label: string;
  /** Its provenance sentence per field, made once. */
  provenance: Record<TagField, Provenance>;
}

const ACCOUNT_WORD: Record<Provider, string> = { aws: 'account', azure: 'subscription', gcp: 'project' };
const EMAIL = /^[^@\s]+@[^@\s]+\.[^@\s]+$/;
/** `tag \`owner\`=TBD is a placeholder, read as no owner`: a placeholder the tag reader set aside. */
const placeholderWarning = (p: NonNullable<TagHits['placeholders']>[number], word: string): string =>
  `${word} \`${p.key}\`=${p.value} is a placeholder, read as no ${p.field}`;

/** What a tag the resource takes from its container is called (GCP and Azure lookups report them). */
const CONTAINER_WORD: Record<Provider, string> = {
  aws: 'account tag',
  azure: 'resource group tag',
  gcp: 'project label',
};
/** What an inherited tag is called in a warning: an Azure subscription's, else as its container's. */
const containerWord = (provider: Provider, from: LookupTags['inheritedFrom'], key: string): string =>
  from?.[key] === 'subscription' ? 'subscription tag' : CONTAINER_WORD[provider];
const NO_HITS: TagHits = Object.freeze({});
/** An Azure resource's group in its id (`/subscriptions/…/resourceGroups/<rg>/…`): where its inherited tags are from. */
const RESOURCE_GROUP = /\/resourceGroups\/([^/]+)\//i;

// The provenance sentences; createEnricher makes each one once and shares it (util/intern.ts).
function tagProvenance(field: string, key: string, via: 'tag' | 'lookup', word: string): Provenance {
  const where = via === 'tag' ? 'on the resource' : 'found by a live lookup of the resource';
  return { via, detail: `${field} from ${word} \`${key}\` ${where}`, ref: key };
}
function ruleProvenance(field: string, sentence: string, id: string): Provenance {
  return { via: 'registry-rule', detail: `${field} from ${sentence}`, ref: id };
}
function accountProvenance(field: string, label: string, id: string): Provenance {
  return { via: 'registry-account', detail: `${field} from ${label} in the registry`, ref: id };
}
/** One frozen sentence per field. */
function sentences(make: (field: TagField) => Provenance): Record<TagField, Provenance> {
  const out = {} as Record<TagField, Provenance>;
  for (const f of TAG_FIELDS) out[f] = Object.freeze(make(f));
  return out;
}
/** `\`test\`, \`prod\`` */
const quoted = (words: readonly string[]): string => words.map((w) => `\`${w}\``).join(', ');
const DEFAULT_ENVIRONMENT: Provenance = Object.freeze({
  via: 'default',
  detail: 'environment unknown: no tag, registry entry or name pattern says which',
});

/**
 * Builds the enricher once per configuration.
 *
 * @example
 * const enricher = createEnricher({ registry: config.registry, policy: config.policy.enrichment, log });
 * const enrichment = enricher.enrichSync(finding) ?? (await enricher.enrich(finding));
 */
export function createEnricher(opts: EnricherOptions): Enricher {
  const { registry, policy, lookup, log } = opts;
  const env = compileEnvironmentWords(policy.environmentWords);

  const readTags = compileTagReader(policy.tagAliases, policy.placeholderValues);

  const teams = new Map<string, RegistryTeam>(registry.teams.map((t) => [t.id, t]));
  // A team tag or label typed in another casing (`Web` for the registry's `web`) names the team; ids that
  // differ only in casing name none (a warning, triage routing, as an unknown team).
  const teamsAnyCase = new Map<string, RegistryTeam | undefined>();
  for (const t of registry.teams) {
    const k = t.id.toLowerCase();
    teamsAnyCase.set(k, teamsAnyCase.has(k) ? undefined : t);
  }
  // provider → lower-cased id (and GCP project number) → entry; nested so lookups build no key strings.
  const accounts: Record<Provider, Map<string, CompiledAccount>> = { aws: new Map(), azure: new Map(), gcp: new Map() };
  for (const a of registry.accounts) {
    const label = `${ACCOUNT_WORD[a.provider]} ${a.id}`;
    const c: CompiledAccount = { entry: a, label, provenance: sentences((f) => accountProvenance(f, label, a.id)) };
    accounts[a.provider].set(a.id.toLowerCase(), c);
    if (a.number) accounts[a.provider].set(a.number, c);
  }
  const accountNamed = (provider: Provider | undefined, name: string): CompiledAccount | undefined => {
    for (const p of provider ? [provider] : (['aws', 'azure', 'gcp'] as const)) {
      const c = accounts[p].get(name) ?? accounts[p].get(name.toLowerCase());
      if (c) return c;
    }
    return undefined;
  };
  const rules: CompiledRule[] = registry.rules.map((r) => {
    const sentence = `registry rule \`${r.id}\` (resource ${r.match.resource})`;
    return {
      rule: r,
      provider: r.match.provider,
      resource: compileGlob(r.match.resource),
      type: r.match.type,
      typeLower: r.match.type?.toLowerCase(),
      account: r.match.account?.toLowerCase(),
      accountEntry: r.match.account === undefined ? undefined : accountNamed(r.match.provider, r.match.account),
      provenance: sentences((f) => ruleProvenance(f, sentence, r.id)),
    };
  });
  const triageJira: JiraRouting = registry.triage.jira;
  const triageTeam = registry.triage.team ?? null;
  const provenanceSets = new IdentityTrie<Provenance | undefined, Enrichment['provenance']>();
  const enrichments = new IdentityTrie<unknown, Enrichment>();
  // Provenance sentences made once and shared: per tag key (by field, tag or lookup, tag or label), per
  // registry rule and account (by field), per team (its default owner).
  const byField = () =>
    Object.fromEntries(TAG_FIELDS.map((f) => [f, new SharedTable<string, Provenance>()])) as Record<
      TagField,
      SharedTable<string, Provenance>
    >;
  const tagSentences = { tag: { tag: byField(), label: byField() }, lookup: { tag: byField(), label: byField() } };
  const fromTag = (field: TagField, hit: TagHit, via: 'tag' | 'lookup', word: 'tag' | 'label'): Provenance => {
    const table = tagSentences[via][word][field];
    return table.get(hit.key) ?? table.set(hit.key, tagProvenance(field, hit.key, via, word));
  };
  // Keyed by the label key (GCP: the finding's own project), or by Azure resource group or subscription and
  // tag key (the resources of one subscription sit in many groups): `its resource group rg/key` (GCP label keys
  // hold no `/`).
  const containerSentences = byField();
  /**
   * A value from a tag of the resource's container: its GCP project, its Azure resource group, or (`from`
   * says so) its Azure subscription.
   */
  const fromContainer = (field: TagField, hit: TagHit, f: Finding, from: LookupTags['inheritedFrom']): Provenance => {
    const { provider, id, account } = f.resource;
    const table = containerSentences[field];
    const group = provider === 'azure' ? RESOURCE_GROUP.exec(id)?.[1] : undefined;
    const where =
      from?.[hit.key] === 'subscription'
        ? `its subscription ${account}`
        : group === undefined
          ? undefined
          : `its resource group ${group}`;
    const key = where === undefined ? hit.key : `${where}/${hit.key}`;
    return (
      table.get(key) ??
      table.set(key, {
        via: 'lookup',
        detail: `${field} from ${where === undefined ? CONTAINER_WORD[provider] : 'tag'} \`${hit.key}\` found by a live lookup of ${where ?? `the resource's ${ACCOUNT_WORD[provider]}`}`,
        ref: hit.key,
      })
    );
  };
  const fromRule = (field: TagField, c: CompiledRule): Provenance => c.provenance[field];
  const fromAccount = (field: TagField, c: CompiledAccount): Provenance => c.provenance[field];
  const teamOwnerSentences = new SharedTable<RegistryTeam, Provenance>();
  const fromTeamOwner = (t: RegistryTeam): Provenance =>
    teamOwnerSentences.get(t) ??
    teamOwnerSentences.set(t, {
      via: 'registry-team',
      detail: `owner is the default owner of team \`${t.id}\` in the registry`,
      ref: t.id,
    });
  const triageTeamProvenance: Provenance | undefined =
    triageTeam === null
      ? undefined
      : Object.freeze({ via: 'triage', detail: 'team is the triage team (no owner found)', ref: triageTeam });

  function findRule(f: Finding, account: CompiledAccount | undefined): CompiledRule | undefined {
    const r = f.resource;
    const azure = r.provider === 'azure';
    let typeLower: string | undefined;
    let accountLower: string | undefined;
    for (const c of rules) {
      if (c.provider !== undefined && c.provider !== r.provider) continue;
      if (c.type !== undefined && c.type !== r.type) {
        if (!azure) continue;
        typeLower ??= r.type.toLowerCase();
        if (c.typeLower !== typeLower) continue;
      }
      if (c.account !== undefined && (c.accountEntry === undefined || c.accountEntry !== account)) {
        accountLower ??= r.account.toLowerCase();
        if (c.account !== accountLower && c.account !== (r.accountNumber ?? '').toLowerCase()) continue;
      }
      if (c.resource.test(r.id, azure)) return c;
    }
    return undefined;
  }

  function findAccount(f: Finding): CompiledAccount | undefined {
    const r = f.resource;
    const byId = accounts[r.provider];
    return (
      byId.get(r.account) ??
      byId.get(r.account.toLowerCase()) ??
      (r.accountNumber ? byId.get(r.accountNumber) : undefined)
    );
  }

  /**
   * Why an environment tag gives no environment, as a warning; and when its words disagree (`uat/prod`), the
   * provenance of `unknown` — final: not read as the laxer word, nor overruled by the registry. Undefined when
   * it names no environment at all (the chain goes on, without name patterns).
   */
  function environmentTagProblem(
    hit: TagHit,
    reading: EnvironmentReading | undefined,
    what: string,
    via: 'tag' | 'lookup',
    warnings: string[],
  ): Provenance | undefined {
    if (reading === undefined) {
      warnings.push(`${what} \`${hit.key}\`=${hit.value} names no known environment`);
      return undefined;
    }
    const words = reading.environment === 'unknown' ? reading.words : [reading.word];
    const why = `${what} \`${hit.key}\`=${hit.value} names more than one environment (${quoted(words)})`;
    warnings.push(why);
    return { via, detail: `environment unknown: ${why}`, ref: hit.key };
  }

  function compute(
    f: Finding,
    tagHits: TagHits,
    via: 'tag' | 'lookup',
    extra: string[],
    complete: boolean,
    /**
     * Tags the resource takes from its container (GCP project labels, Azure resource group and subscription
     * tags): ranked after rules, not with its own.
     */
    inherited: TagHits = NO_HITS,
    /** Azure: which inherited tags are the subscription's (LookupTags.inheritedFrom); else the group's. */
    from?: LookupTags['inheritedFrom'],
  ): Enrichment {
    const warnings = extra;
    const { provider } = f.resource;
    const word: 'tag' | 'label' = provider === 'gcp' ? 'label' : 'tag';
    for (const p of tagHits.placeholders ?? EMPTY_LIST) warnings.push(placeholderWarning(p, word));
    for (const p of inherited.placeholders ?? EMPTY_LIST)
      warnings.push(placeholderWarning(p, containerWord(provider, from, p.key)));
    const account = findAccount(f);
    const rule = findRule(f, account);

    // team
    let team: string | null = null;
    let teamProv: Provenance | undefined;
    if (tagHits.team) {
      team = tagHits.team.value;
      teamProv = fromTag('team', tagHits.team, via, word);
    } else if (rule?.rule.team) {
      team = rule.rule.team;
      teamProv = fromRule('team', rule);
    } else if (inherited.team) {
      team = inherited.team.value;
      teamProv = fromContainer('team', inherited.team, f, from);
    } else if (account?.entry.team) {
      team = account.entry.team;
      teamProv = fromAccount('team', account);
    }
    const teamEntry = team === null ? undefined : (teams.get(team) ?? teamsAnyCase.get(team.toLowerCase()));
    if (teamEntry) team = teamEntry.id;
    if (team !== null && !teamEntry)
      warnings.push(`team \`${team}\` is not in the registry: tickets use the triage routing`);

    // owner
    let owner: string;
    let ownerProv: Provenance;
    let unowned = false;
    if (tagHits.owner) {
      owner = tagHits.owner.value;
      ownerProv = fromTag('owner', tagHits.owner, via, word);
    } else if (rule?.rule.owner) {
      owner = rule.rule.owner;
      ownerProv = fromRule('owner', rule);
    } else if (
      teamEntry?.owner &&
      // The team's default owner follows the container's owner (a project label, the account's entry) only
      // when the team is the container's (the project's team label, else its account's). A team named for
      // the resource (its tag, a rule) is another team's: the container's owner is the other team's person,
      // and the ticket, in this team's project, would have been assigned to them.
      (team !== (inherited.team?.value ?? account?.entry.team) || !(inherited.owner || account?.entry.owner))
    ) {
      owner = teamEntry.owner;
      ownerProv = fromTeamOwner(teamEntry);
    } else if (inherited.owner) {
      owner = inherited.owner.value;
      ownerProv = fromContainer('owner', inherited.owner, f, from);
    } else if (account?.entry.owner) {
      owner = account.entry.owner;
      ownerProv = fromAccount('owner', account);
    } else {
      owner = registry.triage.owner;
      unowned = true;
      // With the live lookup failed the resource's own tags were never read: its owner is unknown, not
      // absent, and the sentence (the ticket's, the report's) says so rather than "no owner in tags".
      ownerProv = {
        via: 'triage',
        detail: `${complete ? `no owner in ${word}s or the registry` : `owner unknown (the live ${word} lookup failed) and none in the registry`} for ${f.resource.id}: the triage owner stands in`,
      };
      if (team === null && triageTeam !== null) {
        team = triageTeam;
        teamProv = triageTeamProvenance;
      }
    }

    // environment
    let environment: Environment = 'unknown';
    let envProv: Provenance | undefined;
    // An environment tag we cannot read (`prd01`) still says the resource has one: its name is no guide to
    // which, so the name patterns are not asked (a `dev` in the name would have allowed an automatic fix).
    let unreadableTag: TagHit | undefined;
    const envTag = tagHits.environment;
    if (envTag) {
      const e = env.normalize(envTag.value);
      if (e !== undefined && e.environment !== 'unknown') {
        environment = e.environment;
        envProv = fromTag('environment', envTag, via, word);
      } else {
        envProv = environmentTagProblem(envTag, e, word, via, warnings);
        if (!envProv) unreadableTag = envTag;
      }
    }
    if (!envProv && rule?.rule.environment) {
      environment = rule.rule.environment;
      envProv = fromRule('environment', rule);
    }
    const envInherited = inherited.environment;
    if (!envProv && envInherited) {
      const e = env.normalize(envInherited.value);
      if (e !== undefined && e.environment !== 'unknown') {
        environment = e.environment;
        envProv = fromContainer('environment', envInherited, f, from);
      } else {
        envProv = environmentTagProblem(
          envInherited,
          e,
          containerWord(provider, from, envInherited.key),
          via,
          warnings,
        );
        if (!envProv) unreadableTag ??= envInherited;
      }
    }
    if (!envProv && account) {
      environment = account.entry.environment;
      envProv = fromAccount('environment', account);
    }
    // Nor when the live lookup failed: the resource's tags, unread, may name its environment (`env`=prod on
    // `acme-dev-exports`), and a `dev` in the name would have made the failed read an automatic fix's licence.
    if (!envProv && policy.namePatterns && unreadableTag === undefined && complete) {
      // The resource's name, and its account's beside it (here never in the registry: its id, a GCP project
      // id such as `acme-payments-prod`). Two that name different environments are read together, as two
      // words of one name: `unknown`, never the laxer one (`acme-dev-exports` of a production project).
      let named = f.resource.name;
      let what = 'resource';
      let byName = env.inferFromName(named);
      const accountId = f.resource.account;
      const byAccount = env.inferFromName(accountId);
      if (!byName) {
        named = accountId;
        what = ACCOUNT_WORD[provider];
        byName = byAccount;
      } else if (byAccount && byAccount.environment !== byName.environment) {
        named += ` ${accountId}`;
        what += ` and ${ACCOUNT_WORD[provider]}`;
        byName = env.inferFromName(named);
      }
      if (byName?.environment === 'unknown')
        envProv = {
          via: 'name-pattern',
          detail: `environment unknown: the ${what} name \`${named}\` names more than one environment (${quoted(byName.words)})`,
          ref: byName.words.join(','),
        };
      else if (byName) {
        environment = byName.environment;
        envProv = {
          via: 'name-pattern',
          detail: `environment from the word \`${byName.word}\` in the ${what} name \`${named}\``,
          ref: byName.word,
        };
      }
    }
    if (!envProv && (unreadableTag || !complete))
      envProv = {
        via: 'default',
        detail: `environment unknown: ${unreadableTag ? `${unreadableTag === envTag ? word : containerWord(provider, from, unreadableTag.key)} \`${unreadableTag.key}\`=${unreadableTag.value} names no known environment` : `the live ${word} lookup failed`} and no registry entry says which (the resource name is not guessed from)`,
      };
    envProv ??= DEFAULT_ENVIRONMENT;

    // application, criticality
    let application: string | null = null;
    let appProv: Provenance | undefined;
    if (tagHits.application) {
      application = tagHits.application.value;
      appProv = fromTag('application', tagHits.application, via, word);
    } else if (rule?.rule.application) {
      application = rule.rule.application;
      appProv = fromRule('application', rule);
    } else if (inherited.application) {
      application = inherited.application.value;
      appProv = fromContainer('application', inherited.application, f, from);
    }
    let criticality: string | null = null;
    let critProv: Provenance | undefined;
    if (tagHits.criticality) {
      criticality = tagHits.criticality.value;
      critProv = fromTag('criticality', tagHits.criticality, via, word);
    } else if (rule?.rule.criticality) {
      criticality = rule.rule.criticality;
      critProv = fromRule('criticality', rule);
    } else if (inherited.criticality) {
      criticality = inherited.criticality.value;
      critProv = fromContainer('criticality', inherited.criticality, f, from);
    } else if (account?.entry.criticality) {
      criticality = account.entry.criticality;
      critProv = fromAccount('criticality', account);
    }

    // The provenance set is shared between the findings whose sentences are the same shared objects (see
    // the builders above): most resources of a team tagged the same way. A sentence naming the resource
    // (the triage owner, an environment read from its name) is its own, and so is its set.
    const ids = [ownerProv, envProv, teamProv, appProv, critProv] as const;
    const shareable = Object.isFrozen(ownerProv) && Object.isFrozen(envProv);
    let provenance = shareable ? provenanceSets.get(ids) : undefined;
    if (provenance === undefined) {
      const p: Enrichment['provenance'] = { owner: ownerProv, environment: envProv };
      if (teamProv) p.team = teamProv;
      if (appProv) p.application = appProv;
      if (critProv) p.criticality = critProv;
      provenance = shareable ? provenanceSets.set(ids, p) : p;
    }
    const jira = teamEntry ? teamEntry.jira : triageJira;
    const make = (): Enrichment => ({
      owner,
      ownerEmail: EMAIL.test(owner) ? owner : null,
      team,
      application,
      environment,
      criticality,
      unowned,
      provenance,
      jira,
      warnings: warnings.length === 0 ? EMPTY_LIST : warnings,
      complete,
    });
    if (warnings.length > 0 || !shareable) return make();
    // Without warnings, the enrichment itself is shared between the findings that come out alike.
    const parts = [provenance, jira, team, application, environment, criticality, unowned, complete, owner];
    return enrichments.get(parts) ?? enrichments.set(parts, make());
  }

  // A provider the lookup cannot read (the AWS hub reads AWS tags only) is enriched as without a lookup.
  const needsLookup = (f: Finding): boolean =>
    lookup !== undefined && !hasEnumerableKey(f.resource.tags) && canRead(lookup, f.resource.provider);
  const fromOutcome = (f: Finding, outcome: LookupOutcome): Enriched => {
    if ('tags' in outcome) {
      const { tags, inherited, inheritedFrom: from } = outcome;
      if (inherited === undefined || !hasEnumerableKey(inherited))
        return { enrichment: compute(f, readTags(tags), 'lookup', [], true), liveTags: tags };
      // The resource's own labels are those the project did not give it (or that it overrides).
      const own: Record<string, string> = {};
      for (const k of Object.keys(tags))
        if (!Object.hasOwn(inherited, k) || inherited[k] !== tags[k]) own[k] = tags[k] as string;
      // An Azure group's tags over its subscription's, field by field (`environment` on the group, `env` on the
      // subscription: the group's).
      const group: Record<string, string> = {};
      const subscription: Record<string, string> = {};
      for (const k of Object.keys(inherited))
        (from?.[k] === 'subscription' ? subscription : group)[k] = inherited[k] as string;
      const [bySubscription, byGroup] = [readTags(subscription), readTags(group)];
      const hits = { ...bySubscription, ...byGroup };
      if (bySubscription.placeholders && byGroup.placeholders)
        hits.placeholders = [...byGroup.placeholders, ...bySubscription.placeholders];
      return { enrichment: compute(f, readTags(own), 'lookup', [], true, hits, from), liveTags: tags };
    }
    const r = f.resource;
    const why = `live tag lookup failed for ${r.id}: ${errorMessage(outcome.error)}`;
    log.warn(why, { resource: r.id, provider: r.provider });
    return { enrichment: compute(f, {}, 'lookup', [why], false), liveTags: null };
  };
  const enrichSync = (f: Finding): Enrichment | undefined =>
    needsLookup(f) ? undefined : compute(f, readTags(f.resource.tags), 'tag', [], true);

  const enrichMany = async (fs: readonly Finding[]): Promise<Enriched[]> => {
    const out: Array<Enriched | undefined> = fs.map((f) => {
      const enrichment = enrichSync(f);
      return enrichment && { enrichment };
    });
    if (!lookup) return out as Enriched[];
    // One ref per resource, however many findings name it.
    const slot = new Map<string, number>();
    const refs: ResourceRef[] = [];
    const which: number[] = [];
    fs.forEach((f, i) => {
      if (out[i]) return;
      const key = resourceKey(f.resource);
      let at = slot.get(key);
      if (at === undefined) {
        at = refs.push(refOf(f.resource)) - 1;
        slot.set(key, at);
      }
      which[i] = at;
    });
    const outcomes = await lookupMany(lookup, refs);
    return fs.map((f, i) => out[i] ?? fromOutcome(f, outcomes[which[i] as number] as LookupOutcome));
  };

  return {
    enrichSync,
    enrichFrom: fromOutcome,
    enrichMany,
    async enrich(f) {
      return enrichSync(f) ?? ((await enrichMany([f]))[0] as Enriched).enrichment;
    },
  };
}
