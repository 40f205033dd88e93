/**
 * AWS partitions and where a partition's global services answer. An account, its credentials and its ARNs
 * belong to one partition (`aws`, `aws-us-gov`, `aws-cn`, …), and IAM, a global service, has one endpoint per
 * partition, addressed through a region of it: a call made with the `aws` partition's region from GovCloud
 * or China goes to the wrong partition's endpoint with credentials it does not know.
 *
 * The IAM region of each partition is the one the AWS SDK's endpoint rules sign IAM calls for there
 * (`iam.amazonaws.com` for us-east-1, `iam.us-gov.amazonaws.com` for us-gov-west-1,
 * `iam.cn-north-1.amazonaws.com.cn` for cn-north-1).
 *
 * @see https://docs.aws.amazon.com/general/latest/gr/iam-service.html
 * @see https://docs.aws.amazon.com/govcloud-us/latest/UserGuide/using-govcloud.html
 */

/** The partition an ARN names (its second field), or undefined for what is no ARN. */
export const arnPartition = (arn: string): string | undefined => /^arn:(aws[\w-]*):/.exec(arn)?.[1];

/** The partition a region is in, by its name (`us-gov-west-1` → `aws-us-gov`, `cn-north-1` → `aws-cn`). */
export function regionPartition(region: string): string {
  if (region.startsWith('us-gov-')) return 'aws-us-gov';
  if (region.startsWith('cn-')) return 'aws-cn';
  if (region.startsWith('us-isob-')) return 'aws-iso-b';
  if (region.startsWith('us-iso-')) return 'aws-iso';
  return 'aws';
}

const IAM_REGIONS: Record<string, string> = {
  aws: 'us-east-1',
  'aws-us-gov': 'us-gov-west-1',
  'aws-cn': 'cn-north-1',
  'aws-iso': 'us-iso-east-1',
  'aws-iso-b': 'us-isob-east-1',
};

/**
 * The region an IAM client is built for to reach the IAM of the partition of `arn` (an ARN's own partition),
 * else of the region `region` (the deployment's `AWS_REGION`); the `aws` partition's us-east-1 when neither
 * names one.
 *
 * @example iamRegion({ arn: 'arn:aws-us-gov:iam::111122223333:user/deploy' }) // 'us-gov-west-1'
 * @example iamRegion({ region: 'cn-northwest-1' }) // 'cn-north-1'
 */
export function iamRegion(where: { arn?: string | undefined; region?: string | undefined }): string {
  const partition =
    (where.arn && arnPartition(where.arn)) || (where.region ? regionPartition(where.region) : undefined) || 'aws';
  // A partition not listed here (aws-iso-e, aws-eusc, …): the SDK's rules address its IAM through any of its
  // regions, so the deployment's own region, when given, reaches it.
  return IAM_REGIONS[partition] ?? where.region ?? 'us-east-1';
}
