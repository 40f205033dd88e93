/**
 * Live AWS tags through the Resource Groups Tagging API (`tag:GetResources` with `ResourceARNList`).
 * The API is regional: the call goes to the ARN's region, else the finding's, else us-east-1 (IAM and
 * other global resources answer there). Many resources go per region in calls of up to 100 ARNs (the
 * API's limit for `ResourceARNList`, which takes no pagination: one call answers its list). A resource
 * the answer leaves out is untagged or gone: no tags, not an error.
 *
 * @see https://docs.aws.amazon.com/resourcegroupstagging/latest/APIReference/API_GetResources.html
 */
import {
  GetResourcesCommand,
  type GetResourcesCommandOutput,
  type ResourceGroupsTaggingAPIClient,
  ResourceGroupsTaggingAPIServiceException,
} from '@aws-sdk/client-resource-groups-tagging-api';
import { AdapterError, type ErrorKind } from '../../core/errors.js';
import { type LookupOutcome, mapBounded, type OwnerLookup, type ResourceRef } from '../../core/ports.js';

/** The one call made, so aws-sdk-client-mock (or any stub) can stand in. */
export type TaggingClient = Pick<ResourceGroupsTaggingAPIClient, 'send'>;

const AWS_ERROR_KINDS: Record<string, ErrorKind> = {
  ThrottlingException: 'throttled',
  ThrottledException: 'throttled',
  TooManyRequestsException: 'throttled',
  AccessDeniedException: 'denied',
  UnauthorizedException: 'denied',
  InvalidParameterException: 'invalid',
  PaginationTokenExpiredException: 'invalid',
};

/** Classifies a Tagging API error by its name and HTTP status (5xx and unknown → transient). */
export function awsAdapterError(e: unknown, what: string): AdapterError {
  const name = e instanceof Error ? e.name : 'Error';
  const meta = e instanceof ResourceGroupsTaggingAPIServiceException ? e.$metadata : {};
  const status = meta.httpStatusCode ?? 0;
  const kind: ErrorKind =
    AWS_ERROR_KINDS[name] ??
    (status === 403
      ? 'denied'
      : status === 429
        ? 'throttled'
        : status >= 400 && status < 500
          ? 'invalid'
          : 'transient');
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
  private own: Promise<string | undefined> | undefined;

  /**
   * @param options.account the account the clients' credentials are in (e.g. STS GetCallerIdentity). The API
   *   answers for that account only, leaving any other account's ARN out as if it were untagged: with it
   *   given, a resource of another account is an error ("not readable from here"), not a resource without
   *   tags. A failed resolution leaves every resource to the API.
   */
  constructor(
    private readonly clientFor: (region: string) => TaggingClient,
    private readonly options: { account?: () => Promise<string | undefined> } = {},
  ) {}

  private ownAccount(): Promise<string | undefined> {
    this.own ??= (this.options.account?.() ?? Promise.resolve(undefined)).catch(() => {
      this.own = undefined; // asked again next time
      return undefined;
    });
    return this.own;
  }

  /** Why `r` cannot be read with these credentials, or undefined when it can (as far as is known). */
  private elsewhere(r: ResourceRef, own: string | undefined): AdapterError | undefined {
    if (r.provider !== 'aws')
      return new AdapterError('invalid', `AwsTaggingOwnerLookup cannot look up ${r.provider} resources`);
    if (own && /^\d{12}$/.test(r.account) && r.account !== own)
      return new AdapterError(
        'denied',
        `tag:GetResources answers for account ${own} only; ${r.id} is in account ${r.account}`,
      );
    return undefined;
  }

  private client(region: string): TaggingClient {
    let c = this.clients.get(region);
    if (!c) {
      c = this.clientFor(region);
      this.clients.set(region, c);
    }
    return c;
  }

  handles(provider: ResourceRef['provider']): boolean {
    return provider === 'aws';
  }

  async tagsFor(r: ResourceRef): Promise<Record<string, string>> {
    const refused = this.elsewhere(r, await this.ownAccount());
    if (refused) throw refused;
    const region = regionOf(r);
    let out: GetResourcesCommandOutput;
    try {
      out = await this.client(region).send(new GetResourcesCommand({ ResourceARNList: [r.id] }));
    } catch (e) {
      throw awsAdapterError(e, `tag:GetResources for ${r.id} in ${region}`);
    }
    const mapping = out.ResourceTagMappingList?.find((m) => m.ResourceARN === r.id) ?? out.ResourceTagMappingList?.[0];
    return tagsOf(mapping?.Tags);
  }

  async tagsForMany(refs: readonly ResourceRef[]): Promise<LookupOutcome[]> {
    const out = new Array<LookupOutcome>(refs.length);
    const own = await this.ownAccount();
    // region → ARN → the positions asking for it
    const byRegion = new Map<string, Map<string, number[]>>();
    refs.forEach((r, i) => {
      const refused = this.elsewhere(r, own);
      if (refused) {
        out[i] = { error: refused };
        return;
      }
      const region = regionOf(r);
      let arns = byRegion.get(region);
      if (!arns) {
        arns = new Map();
        byRegion.set(region, arns);
      }
      const at = arns.get(r.id);
      if (at) at.push(i);
      else arns.set(r.id, [i]);
    });
    const calls: Array<{ region: string; arns: string[]; positions: Map<string, number[]> }> = [];
    for (const [region, positions] of byRegion) {
      const arns = [...positions.keys()];
      for (let at = 0; at < arns.length; at += ARNS_PER_CALL)
        calls.push({ region, arns: arns.slice(at, at + ARNS_PER_CALL), positions });
    }
    await mapBounded(calls, CALLS_IN_FLIGHT, async ({ region, arns, positions }) => {
      let answer: LookupOutcome | undefined;
      let found = new Map<string, Record<string, string>>();
      try {
        const res = await this.client(region).send(new GetResourcesCommand({ ResourceARNList: arns }));
        found = new Map((res.ResourceTagMappingList ?? []).map((m) => [m.ResourceARN ?? '', tagsOf(m.Tags)]));
      } catch (e) {
        answer = { error: awsAdapterError(e, `tag:GetResources for ${arns.length} resources in ${region}`) };
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

const regionOf = (r: ResourceRef): string => arnRegion(r.id) ?? r.region ?? 'us-east-1';

function tagsOf(list: ReadonlyArray<{ Key?: string | undefined; Value?: string | undefined }> | undefined) {
  const tags: Record<string, string> = {};
  for (const t of list ?? []) if (t.Key !== undefined && t.Value !== undefined) tags[t.Key] = t.Value;
  return tags;
}
