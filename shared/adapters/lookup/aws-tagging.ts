/**
 * Live AWS tags through the Resource Groups Tagging API (`tag:GetResources` with `ResourceARNList`).
 * The API is regional: the call goes to the ARN's region, else the finding's, else us-east-1 (IAM and
 * other global resources answer there).
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
import type { OwnerLookup, ResourceRef } from '../../core/ports.js';

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
  constructor(private readonly clientFor: (region: string) => TaggingClient) {}

  private client(region: string): TaggingClient {
    let c = this.clients.get(region);
    if (!c) {
      c = this.clientFor(region);
      this.clients.set(region, c);
    }
    return c;
  }

  async tagsFor(r: ResourceRef): Promise<Record<string, string>> {
    if (r.provider !== 'aws')
      throw new AdapterError('invalid', `AwsTaggingOwnerLookup cannot look up ${r.provider} resources`);
    const region = arnRegion(r.id) ?? r.region ?? 'us-east-1';
    let out: GetResourcesCommandOutput;
    try {
      out = await this.client(region).send(new GetResourcesCommand({ ResourceARNList: [r.id] }));
    } catch (e) {
      throw awsAdapterError(e, `tag:GetResources for ${r.id} in ${region}`);
    }
    const mapping = out.ResourceTagMappingList?.find((m) => m.ResourceARN === r.id) ?? out.ResourceTagMappingList?.[0];
    const tags: Record<string, string> = {};
    for (const t of mapping?.Tags ?? []) if (t.Key !== undefined && t.Value !== undefined) tags[t.Key] = t.Value;
    return tags;
  }
}
