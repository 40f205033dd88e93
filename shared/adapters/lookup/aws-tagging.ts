/**
 * Live AWS tags through the Resource Groups Tagging API (`tag:GetResources` with `ResourceARNList`).
 * The API is regional: the call goes to the ARN's region, else the finding's, else the ARN's partition's
 * us-east-1 (us-gov-west-1, cn-north-1: IAM and other global resources answer there). Many resources go per region in calls of up to 100 ARNs (the
 * API's limit for `ResourceARNList`, which takes no pagination: one call answers its list). A resource
 * the answer leaves out is untagged or gone: no tags, not an error.
 *
 * IAM users and roles are the exception: GetResources does not read them (it leaves them out, as if untagged),
 * so their tags are read from IAM (`iam:ListUserTags`, `iam:ListRoleTags`) when an IAM client is given. Before,
 * a skip tag on a role or a user (a break-glass role) was never seen, and its sessions were revoked or its key
 * deactivated all the same.
 *
 * @see https://docs.aws.amazon.com/resourcegroupstagging/latest/APIReference/API_GetResources.html
 * @see https://docs.aws.amazon.com/resourcegroupstagging/latest/APIReference/supported-services.html
 */
import type { IAMClient } from '@aws-sdk/client-iam';
import {
  GetResourcesCommand,
  type GetResourcesCommandOutput,
  type ResourceGroupsTaggingAPIClient,
  ResourceGroupsTaggingAPIServiceException,
} from '@aws-sdk/client-resource-groups-tagging-api';
import { AdapterError, type ErrorKind, kindOfHttpStatus } from '../../core/errors.js';
import { type LookupOutcome, mapBounded, type OwnerLookup, type ResourceRef } from '../../core/ports.js';
import { iamRegion } from '../../core/util/aws-partition.js';

/** The one call made, so aws-sdk-client-mock (or any stub) can stand in. */
export type TaggingClient = Pick<ResourceGroupsTaggingAPIClient, 'send'>;
/** IAM's tag reads (ListUserTags, ListRoleTags); an IAMClient satisfies it. */
export type IamTagsClient = Pick<IAMClient, 'send'>;

/** An IAM user or role ARN (any path): its kind and name. */
const IAM_PRINCIPAL = /^arn:aws[\w-]*:iam::\d{12}:(user|role)\/(?:.*\/)?([^/]+)$/;

const AWS_ERROR_KINDS: Record<string, ErrorKind> = {
  ThrottlingException: 'throttled',
  ThrottledException: 'throttled',
  Throttling: 'throttled', // IAM's name for it (HTTP 400)
  TooManyRequestsException: 'throttled',
  AccessDeniedException: 'denied',
  UnauthorizedException: 'denied',
  InvalidParameterException: 'invalid',
  PaginationTokenExpiredException: 'invalid',
};

/**
 * The Tagging API's reading of a status, when the error's name says nothing: a 4xx is invalid but for 403,
 * 408 and 429 (a 401, 404, 409/412, 410 or 425 too, not as the shared reading has them), as this adapter has
 * read them from the start; a refusal is also told by its name, above. A 408 is the server giving up waiting:
 * as `invalid` the finding lost its owner for good instead of a retry. 5xx and no status are transient.
 */
const AWS_STATUS_KINDS = { '4xx': 'invalid', 403: 'denied', 408: 'transient', 429: 'throttled' } as const;

/** Classifies a Tagging API error by its name, else its HTTP status. */
export function awsAdapterError(e: unknown, what: string): AdapterError {
  // Raised before the call (the member role's credentials could not be had): its kind stands.
  if (e instanceof AdapterError) return new AdapterError(e.kind, `${what}: ${e.message}`, { cause: e });
  const name = e instanceof Error ? e.name : 'Error';
  const meta =
    e instanceof ResourceGroupsTaggingAPIServiceException
      ? e.$metadata
      : ((e as { $metadata?: { httpStatusCode?: number; requestId?: string } } | undefined)?.$metadata ?? {});
  const kind = AWS_ERROR_KINDS[name] ?? kindOfHttpStatus(meta.httpStatusCode, AWS_STATUS_KINDS);
  return new AdapterError(kind, `${what}: ${name}`, {
    cause: e,
    ...(meta.requestId ? { requestId: meta.requestId } : {}),
  });
}

const arnRegion = (arn: string): string | undefined => {
  const region = arn.split(':')[3];
  return region ? region : undefined;
};

/**
 * @example new AwsTaggingOwnerLookup((region) => new ResourceGroupsTaggingAPIClient({ region }))
 */
export class AwsTaggingOwnerLookup implements OwnerLookup {
  private readonly clients = new Map<string, TaggingClient>();
  private readonly iamClients = new Map<string, IamTagsClient>();
  /** The credentials' own account; an Error when it was asked for and could not be read. */
  private own: Promise<string | Error | undefined> | undefined;

  /**
   * @param clientFor a client for a region, under the own credentials, or with `account` given, under the
   *   member role in that account (only asked for accounts `options.reaches`).
   * @param options.account the account the clients' credentials are in (e.g. STS GetCallerIdentity). The API
   *   answers for that account only, leaving any other account's ARN out as if it were untagged: with it
   *   given, a resource of another account is an error ("not readable from here"), not a resource without
   *   tags, unless `reaches` says a member role reads there. A failed resolution is an error for every
   *   resource (asked again next time): read anyway, another account's resource would come back as
   *   untagged, and a skip tag on it would pass unseen.
   * @param options.iam an IAM client for `region` (the IAM region of the user's or role's partition), under the
   *   own credentials, or with `account` given under the member role there: IAM users' and roles' tags are read
   *   with it (without it, as GetResources answers: none).
   */
  constructor(
    private readonly clientFor: (region: string, account?: string) => TaggingClient,
    private readonly options: {
      account?: () => Promise<string | undefined>;
      reaches?: (account: string) => boolean;
      iam?: (region: string, account?: string) => IamTagsClient;
    } = {},
  ) {}

  private ownAccount(): Promise<string | Error | undefined> {
    this.own ??= (this.options.account?.() ?? Promise.resolve(undefined)).catch((e: unknown) => {
      this.own = undefined; // asked again next time
      return e instanceof Error ? e : new Error(String(e));
    });
    return this.own;
  }

  /**
   * Where `r` is read: `{ account }` under the member role there, `{}` under the own credentials, or why
   * it cannot be read from here.
   */
  private whereFrom(r: ResourceRef, own: string | Error | undefined): { account?: string } | { error: AdapterError } {
    if (r.provider !== 'aws')
      return { error: new AdapterError('invalid', `AwsTaggingOwnerLookup cannot look up ${r.provider} resources`) };
    if (own instanceof Error)
      return {
        error: new AdapterError(
          'transient',
          `the credentials' own account could not be read, so whether ${r.id} is readable from here is unknown`,
          { cause: own },
        ),
      };
    if (!own || !/^\d{12}$/.test(r.account) || r.account === own) return {};
    if (this.options.reaches?.(r.account)) return { account: r.account };
    return {
      error: new AdapterError(
        'denied',
        `tag:GetResources answers for account ${own} only; ${r.id} is in account ${r.account}`,
      ),
    };
  }

  private client(region: string, account: string | undefined): TaggingClient {
    const key = callKey(region, account);
    let c = this.clients.get(key);
    if (!c) {
      c = account ? this.clientFor(region, account) : this.clientFor(region);
      this.clients.set(key, c);
    }
    return c;
  }

  handles(provider: ResourceRef['provider']): boolean {
    return provider === 'aws';
  }

  /** The tags of an IAM user or role, read from IAM; undefined for any other resource (or without an IAM client). */
  private async iamTags(r: ResourceRef, account: string | undefined): Promise<Record<string, string> | undefined> {
    const m = IAM_PRINCIPAL.exec(r.id);
    const make = this.options.iam;
    if (!m?.[1] || !m[2] || !make) return undefined;
    const [kind, name] = [m[1], m[2]];
    // The principal's partition's IAM (us-gov-west-1 for arn:aws-us-gov:iam::…), not always the aws partition's.
    const region = iamRegion({ arn: r.id });
    const key = callKey(region, account);
    let client = this.iamClients.get(key);
    if (!client) {
      client = account ? make(region, account) : make(region);
      this.iamClients.set(key, client);
    }
    const sdk = await import('@aws-sdk/client-iam');
    const what = kind === 'user' ? `iam:ListUserTags ${name}` : `iam:ListRoleTags ${name}`;
    try {
      // At most 50 tags on an IAM user or role: one page.
      const out =
        kind === 'user'
          ? await client.send(new sdk.ListUserTagsCommand({ UserName: name, MaxItems: 100 }))
          : await client.send(new sdk.ListRoleTagsCommand({ RoleName: name, MaxItems: 100 }));
      return tagsOf(out.Tags);
    } catch (e) {
      // Gone: no tags, as GetResources answers for a resource gone.
      if (e instanceof Error && (e.name === 'NoSuchEntity' || e.name === 'NoSuchEntityException')) return {};
      throw awsAdapterError(e, `${what} (${r.id})`);
    }
  }

  async tagsFor(r: ResourceRef): Promise<Record<string, string>> {
    const from = this.whereFrom(r, await this.ownAccount());
    if ('error' in from) throw from.error;
    const principal = await this.iamTags(r, from.account);
    if (principal) return principal;
    const region = regionOf(r);
    let out: GetResourcesCommandOutput;
    try {
      out = await this.client(region, from.account).send(new GetResourcesCommand({ ResourceARNList: [r.id] }));
    } catch (e) {
      throw awsAdapterError(e, `tag:GetResources for ${r.id} in ${region}`);
    }
    const mapping = out.ResourceTagMappingList?.find((m) => m.ResourceARN === r.id) ?? out.ResourceTagMappingList?.[0];
    return tagsOf(mapping?.Tags);
  }

  async tagsForMany(refs: readonly ResourceRef[]): Promise<LookupOutcome[]> {
    const out = new Array<LookupOutcome>(refs.length);
    const own = await this.ownAccount();
    // (member account, region) → ARN → the positions asking for it
    const byRegion = new Map<string, { region: string; account: string | undefined; arns: Map<string, number[]> }>();
    const principals: Array<{ r: ResourceRef; i: number; account: string | undefined }> = [];
    refs.forEach((r, i) => {
      const from = this.whereFrom(r, own);
      if ('error' in from) {
        out[i] = from;
        return;
      }
      if (this.options.iam && IAM_PRINCIPAL.test(r.id)) {
        principals.push({ r, i, account: from.account });
        return;
      }
      const region = regionOf(r);
      const key = callKey(region, from.account);
      let group = byRegion.get(key);
      if (!group) {
        group = { region, account: from.account, arns: new Map() };
        byRegion.set(key, group);
      }
      const arns = group.arns;
      const at = arns.get(r.id);
      if (at) at.push(i);
      else arns.set(r.id, [i]);
    });
    const calls: Array<{
      region: string;
      account: string | undefined;
      arns: string[];
      positions: Map<string, number[]>;
    }> = [];
    for (const { region, account, arns: positions } of byRegion.values()) {
      const arns = [...positions.keys()];
      for (let at = 0; at < arns.length; at += ARNS_PER_CALL)
        calls.push({ region, account, arns: arns.slice(at, at + ARNS_PER_CALL), positions });
    }
    await mapBounded(principals, CALLS_IN_FLIGHT, async ({ r, i, account }) => {
      try {
        out[i] = { tags: (await this.iamTags(r, account)) ?? {} };
      } catch (e) {
        out[i] = { error: e };
      }
    });
    await mapBounded(calls, CALLS_IN_FLIGHT, async ({ region, account, arns, positions }) => {
      let answer: LookupOutcome | undefined;
      let found = new Map<string, Record<string, string>>();
      try {
        const res = await this.client(region, account).send(new GetResourcesCommand({ ResourceARNList: arns }));
        found = new Map((res.ResourceTagMappingList ?? []).map((m) => [m.ResourceARN ?? '', tagsOf(m.Tags)]));
      } catch (e) {
        const where = account ? `${region} of account ${account}` : region;
        answer = { error: awsAdapterError(e, `tag:GetResources for ${arns.length} resources in ${where}`) };
      }
      for (const arn of arns)
        for (const i of positions.get(arn) ?? []) out[i] = answer ?? { tags: { ...found.get(arn) } };
    });
    return out;
  }
}

/** The API's limit on `ResourceARNList`. */
const ARNS_PER_CALL = 100;
/** Calls of one batch in flight at once (GetResources is rate limited per account and region). */
const CALLS_IN_FLIGHT = 4;

/** An ARN without a region (IAM, S3) and a finding without one: the ARN's partition's us-east-1 (cn-north-1, …). */
const regionOf = (r: ResourceRef): string => arnRegion(r.id) ?? r.region ?? iamRegion({ arn: r.id });

/** Where a call goes: a region, under the own credentials or a member account's role (one client, one batch each). */
const callKey = (region: string, account: string | undefined): string => `${account ?? ''}|${region}`;

function tagsOf(list: ReadonlyArray<{ Key?: string | undefined; Value?: string | undefined }> | undefined) {
  const tags: Record<string, string> = {};
  for (const t of list ?? []) if (t.Key !== undefined && t.Value !== undefined) tags[t.Key] = t.Value;
  return tags;
}
