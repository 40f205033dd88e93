/**
 * Risk exceptions: a person accepts a risk for a scope until a date. Kept in `exceptions.yaml` (reviewed
 * with the code) and in the store (`closeloop` commands, the Jira workflow); the store wins on the same id.
 * An active exception suppresses ticketing and remediation and says so; an expired one re-opens the case.
 *
 * Scope semantics: the finding must match every dimension that is given (AND); within a dimension any
 * entry may match (OR). `types` (globs) and `controls` (exact ids) together form one "what" dimension and
 * are compared with the finding type and its control ids, case-insensitively. `resources` are globs on the
 * resource id (`*` any characters; Azure ids compare case-insensitively). `accounts` compare with the
 * account / subscription / project id and the GCP project number. An empty scope is refused: it would
 * silence everything.
 *
 * `expires` is a date (`2027-06-30`, valid through that whole day, UTC) or an RFC 3339 date-time.
 */
import * as z from 'zod';
import { anyGlob, type CompiledGlob, compileGlob } from '../enrich/glob.js';
import { UsageError } from '../errors.js';
import type { Case } from '../model/case.js';
import type { ExceptionRef } from '../model/decision.js';
import type { Finding, Provider } from '../model/finding.js';
import { type Clock, type DocStore, systemClock } from '../ports.js';
import { mutateDoc } from '../store/docs.js';
import { canonicalJson } from '../util/hash.js';

const NonEmpty = z.array(z.string().min(1)).min(1);

export const ExceptionScopeSchema = z
  .strictObject({
    /** Globs on the finding type or control (`Policy:S3/*`, `OPEN_FIREWALL`). */
    types: NonEmpty.optional(),
    /** Control ids (`S3.8`) matched exactly (case-insensitive) against the finding's type and controls. */
    controls: NonEmpty.optional(),
    /** Globs on the resource id. */
    resources: NonEmpty.optional(),
    /** Account / subscription / project ids (or GCP project numbers). */
    accounts: NonEmpty.optional(),
  })
  .refine((s) => s.types ?? s.controls ?? s.resources ?? s.accounts, {
    message:
      'an exception needs at least one of types, controls, resources, accounts (an empty scope matches everything)',
  });

export const ExceptionSchema = z.strictObject({
  id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/, 'letters, digits, . _ : - (e.g. EXC-001)'),
  /** Who carries the risk (an e-mail). */
  owner: z.string().min(1),
  justification: z.string().min(10, 'say why the risk is accepted (at least 10 characters)'),
  scope: ExceptionScopeSchema,
  expires: z.union([z.iso.date(), z.iso.datetime({ offset: true })]),
  createdBy: z.string().min(1).optional(),
  createdAt: z.iso.datetime({ offset: true }).optional(),
  /** Set by `revoke`: a revoked exception no longer matches (it is kept for the audit trail). */
  revokedBy: z.string().min(1).optional(),
  revokedAt: z.iso.datetime({ offset: true }).optional(),
});
export type RiskException = z.infer<typeof ExceptionSchema>;

/** What exceptions are matched against: a finding, or a case when re-evaluating without a new finding. */
interface Subject {
  provider: Provider;
  resourceId: string;
  account: string;
  accountNumber: string | undefined;
  type: string;
  controls: readonly string[];
}

const subjectOf = (x: Finding | Case): Subject =>
  'resource' in x
    ? {
        provider: x.resource.provider,
        resourceId: x.resource.id,
        account: x.resource.account,
        accountNumber: x.resource.accountNumber,
        type: x.type,
        controls: x.compliance.controls,
      }
    : {
        provider: x.provider,
        resourceId: x.resourceId,
        account: x.account,
        accountNumber: x.accountNumber,
        type: x.type,
        controls: x.compliance.controls,
      };

interface CompiledException {
  types: CompiledGlob[] | undefined;
  controls: Set<string> | undefined;
  resources: CompiledGlob[] | undefined;
  accounts: Set<string> | undefined;
  /** Epoch ms from which the exception no longer applies. */
  expiresAt: number;
}

// Exceptions are few and long-lived; compile each object once (keyed by identity, freed with it).
const compiled = new WeakMap<RiskException, CompiledException>();

const DAY_MS = 86_400_000;

/** The instant an exception stops applying: the end of the `expires` day, or the exact date-time. */
export function expiryInstant(expires: string): number {
  return expires.length === 10 ? Date.parse(`${expires}T00:00:00Z`) + DAY_MS : Date.parse(expires);
}

function compile(e: RiskException): CompiledException {
  let c = compiled.get(e);
  if (!c) {
    const lower = (xs: readonly string[] | undefined) => (xs ? new Set(xs.map((x) => x.toLowerCase())) : undefined);
    c = {
      types: e.scope.types?.map(compileGlob),
      controls: lower(e.scope.controls),
      resources: e.scope.resources?.map(compileGlob),
      accounts: lower(e.scope.accounts),
      expiresAt: expiryInstant(e.expires),
    };
    compiled.set(e, c);
  }
  return c;
}

function scopeMatches(c: CompiledException, s: Subject): boolean {
  if (c.types || c.controls) {
    let what = false;
    if (c.types) what = anyGlob(c.types, s.type, true) || s.controls.some((ctl) => anyGlob(c.types ?? [], ctl, true));
    if (!what && c.controls) {
      const controls = c.controls;
      what = controls.has(s.type.toLowerCase()) || s.controls.some((ctl) => controls.has(ctl.toLowerCase()));
    }
    if (!what) return false;
  }
  if (c.resources && !anyGlob(c.resources, s.resourceId, s.provider === 'azure')) return false;
  if (c.accounts && !namesAccount(c.accounts, s.account, s.accountNumber)) return false;
  return true;
}

/**
 * Whether a list of accounts (lower-cased) names `account` by its id or, a GCP project, by its number: the
 * console shows both, and the exceptions' scope, decide's denylist and apply's account lists each take either.
 */
export const namesAccount = (list: ReadonlySet<string>, account: string, accountNumber: string | undefined): boolean =>
  list.has(account.toLowerCase()) || (!!accountNumber && list.has(accountNumber.toLowerCase()));

/** Whether an exception is in force at `now` (not revoked, not expired). */
export const isActive = (e: RiskException, now: Date): boolean =>
  e.revokedAt === undefined && now.getTime() < compile(e).expiresAt;

/**
 * Finds the exception that covers a finding or case. `active` is the one in force (the one expiring last
 * when several apply); `expired` the most recently expired one whose scope matches (revoked ones are
 * neither: revoking is not expiry).
 *
 * @example matchException(finding, config.exceptions, clock.now()).active?.id // 'EXC-001'
 */
export function matchException(
  subject: Finding | Case,
  exceptions: readonly RiskException[],
  now: Date,
): { active?: RiskException; expired?: RiskException } {
  if (exceptions.length === 0) return {};
  const s = subjectOf(subject);
  const t = now.getTime();
  let active: RiskException | undefined;
  let expired: RiskException | undefined;
  for (const e of exceptions) {
    if (e.revokedAt !== undefined) continue;
    const c = compile(e);
    if (!scopeMatches(c, s)) continue;
    if (t < c.expiresAt) {
      if (!active || c.expiresAt > compile(active).expiresAt) active = e;
    } else if (!expired || c.expiresAt > compile(expired).expiresAt) expired = e;
  }
  const out: { active?: RiskException; expired?: RiskException } = {};
  if (active) out.active = active;
  if (expired) out.expired = expired;
  return out;
}

/** The part of an exception a case and a ticket carry. */
export const exceptionRef = (e: RiskException): ExceptionRef => ({
  id: e.id,
  owner: e.owner,
  justification: e.justification,
  expires: e.expires,
});

/** File exceptions plus stored ones; on the same id the stored one wins (it may be a revocation). */
export function combineExceptions(
  fromFile: readonly RiskException[],
  fromStore: readonly RiskException[],
): RiskException[] {
  const byId = new Map<string, RiskException>();
  for (const e of fromFile) byId.set(e.id, e);
  for (const e of fromStore) byId.set(e.id, e);
  return [...byId.values()];
}

export const EXCEPTIONS_COLLECTION = 'exceptions';

/** Exceptions kept in the store (collection `exceptions`, one document per id). Every call is idempotent. */
export interface ExceptionsRepo {
  /** Adds or updates an exception; adding the same one again changes nothing. */
  add(e: z.input<typeof ExceptionSchema>): Promise<{ changed: boolean; exception: RiskException }>;
  list(): Promise<RiskException[]>;
  /** Marks an exception revoked by `by` (kept for the audit trail); revoking twice changes nothing. */
  revoke(id: string, by: string): Promise<{ changed: boolean; exception: RiskException }>;
}

/**
 * @example
 * const repo = exceptionsRepo(store);
 * await repo.add({ id: 'EXC-002', owner: 'web-lead@acme.example', justification: 'vendor fix due in Q3',
 *   scope: { controls: ['S3.8'] }, expires: '2027-03-31' });
 */
export function exceptionsRepo(store: DocStore, clock: Clock = systemClock): ExceptionsRepo {
  return {
    async add(input) {
      const e = ExceptionSchema.parse(input);
      const withCreated: RiskException = { ...e, createdAt: e.createdAt ?? clock.now().toISOString() };
      const r = await mutateDoc(store, EXCEPTIONS_COLLECTION, e.id, ExceptionSchema, (current) => {
        if (!current) return withCreated;
        // Same content apart from the creation time we would stamp: a replay, nothing to write.
        const next = { ...e, createdAt: e.createdAt ?? current.createdAt };
        return canonicalJson(next) === canonicalJson(current) ? undefined : next;
      });
      if (!r.value) throw new UsageError(`exception ${e.id} could not be stored`);
      return { changed: r.changed, exception: r.value };
    },
    async list() {
      const docs = await store.list(EXCEPTIONS_COLLECTION);
      return docs.map((d) => ExceptionSchema.parse(d.value));
    },
    async revoke(id, by) {
      const r = await mutateDoc(store, EXCEPTIONS_COLLECTION, id, ExceptionSchema, (current) => {
        if (!current || current.revokedAt !== undefined) return undefined;
        return { ...current, revokedBy: by, revokedAt: clock.now().toISOString() };
      });
      if (!r.value) throw new UsageError(`no exception with id ${id}`);
      return { changed: r.changed, exception: r.value };
    },
  };
}
