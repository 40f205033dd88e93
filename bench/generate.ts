/**
 * A realistic finding generator for the benchmark: all four sources in their documented shapes, every field
 * of the samples in ../shared/reference/samples and the test fixtures (EventBridge GuardDuty / Security Hub,
 * Defender alerts and assessments, SCC notifications as Pub/Sub push bodies; see {@link GeneratedShape}),
 * ~20% repeats of an earlier finding, ~5% resolutions, tags on ~60% of resources and ~1% bad inputs
 * (truncated JSON). Deterministic for a given seed.
 *
 * Tags: only the AWS shapes carry resource tags (Defender and SCC notifications never do, finding-formats
 * §1 table, nor does a GuardDuty access key finding), so 15 of 16 of the others are tagged: ~60% of all.
 */

/** Mulberry32: small, fast, seedable. */
function rng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ACCOUNTS = ['111122223333', '444455556666', '777788889999'];
const SUBS = ['6c1f3d2a-9b4e-4f7a-8d2c-5e0b1a7c9f36', '0b7e4c1a-2d3f-4a5b-9c6d-7e8f9a0b1c2d'];
const PROJECTS = [
  { id: 'acme-web-prod', number: '318274659012' },
  { id: 'acme-sandbox', number: '555000111222' },
];

/**
 * The text as a reader gets it: decoded from bytes (a file, a request body, a queue message) into one flat
 * string. `JSON.stringify`'s own result is a rope of the parts it was built from, which the first
 * `JSON.parse` over it flattens, copying the text and leaving the parts as garbage; left so, the baseline's
 * turn, which parses each slice first, paid that copy for the pipeline and ran about a fifth slower than
 * over flat text, and the ratio looked better by two to three points.
 */
const asRead = (text: string): string => Buffer.from(text, 'utf8').toString('utf8');

export interface GeneratedInput {
  /** One flat string, as decoded from bytes. */
  text: string;
  /** How many findings the input should yield when valid (0 for a bad input). */
  findings: number;
  bad: boolean;
  /** Which source the input renders (bad inputs are truncated GuardDuty events). */
  kind: 'gd' | 'sh' | 'def' | 'scc';
  /** Which of that source's shapes. */
  shape: GeneratedShape;
  /** A later sighting of an earlier finding (count + 1). */
  repeat: boolean;
  /** An earlier finding resolved at the source (archived, PASSED, Healthy, INACTIVE). */
  resolution: boolean;
  /** The resource carries tags in the event. */
  tagged: boolean;
}

/** The generated mix, as fractions of all inputs (tags: of distinct resources). */
export interface GeneratedMix {
  inputs: number;
  sources: Record<GeneratedInput['kind'], number>;
  repeats: number;
  resolutions: number;
  taggedResources: number;
  bad: number;
}

/** Measures the mix a generated stream really has (the bench prints it beside its figures). */
export function mixOf(inputs: readonly GeneratedInput[]): GeneratedMix {
  const frac = (n: number, of: number) => Math.round((n / Math.max(1, of)) * 1000) / 1000;
  const good = inputs.filter((i) => !i.bad);
  const fresh = good.filter((i) => !i.repeat && !i.resolution);
  const count = (k: GeneratedInput['kind']) => frac(good.filter((i) => i.kind === k).length, good.length);
  return {
    inputs: inputs.length,
    sources: { gd: count('gd'), sh: count('sh'), def: count('def'), scc: count('scc') },
    repeats: frac(good.filter((i) => i.repeat).length, inputs.length),
    resolutions: frac(good.filter((i) => i.resolution).length, inputs.length),
    taggedResources: frac(fresh.filter((i) => i.tagged).length, fresh.length),
    bad: frac(inputs.length - good.length, inputs.length),
  };
}

/**
 * The shapes rendered, each as its documented sample or fixture has it (every field, not only those the
 * normalizers read: the baseline parses what a reader gets, and a trimmed event made parsing look cheaper
 * beside the pipeline than it is): GuardDuty S3, EC2 and IAM access key findings (EventBridge), Security Hub
 * S3.8 and IAM.3 controls (`Security Hub Findings - Imported`), Defender assessments (ARM) and alerts
 * (workflow automation), SCC public bucket and open firewall findings (Pub/Sub push bodies).
 */
export type GeneratedShape =
  | 'gd-s3'
  | 'gd-ec2'
  | 'gd-key'
  | 'sh-s3'
  | 'sh-iam'
  | 'def-assessment'
  | 'def-alert'
  | 'scc-bucket'
  | 'scc-firewall';

interface Base {
  kind: GeneratedInput['kind'];
  shape: GeneratedShape;
  n: number;
  count: number;
  resolved: boolean;
}

/** A new finding's shape: the source first (40/30/15/15), then a shape of that source. */
function shapeOf(r: () => number): Pick<Base, 'kind' | 'shape'> {
  const k = r();
  const s = r();
  if (k < 0.4) return { kind: 'gd', shape: s < 0.6 ? 'gd-s3' : s < 0.85 ? 'gd-ec2' : 'gd-key' };
  if (k < 0.7) return { kind: 'sh', shape: s < 0.75 ? 'sh-s3' : 'sh-iam' };
  if (k < 0.85) return { kind: 'def', shape: s < 0.6 ? 'def-assessment' : 'def-alert' };
  return { kind: 'scc', shape: s < 0.7 ? 'scc-bucket' : 'scc-firewall' };
}

export function generate(total: number, seed = 42): GeneratedInput[] {
  const r = rng(seed);
  const out: GeneratedInput[] = [];
  const seen: Base[] = [];
  const t0 = Date.parse('2026-11-01T00:00:00Z');
  for (let i = 0; i < total; i++) {
    const roll = r();
    if (roll < 0.01) {
      const text = render({ kind: 'gd', shape: 'gd-s3', n: i, count: 1, resolved: false }, t0 + i * 1000);
      out.push({
        text: asRead(text.slice(0, Math.floor(text.length / 2))),
        findings: 0,
        bad: true,
        kind: 'gd',
        shape: 'gd-s3',
        repeat: false,
        resolution: false,
        tagged: false,
      });
      continue;
    }
    let base: Base;
    let repeat = false;
    let resolution = false;
    if (roll < 0.21 && seen.length > 0) {
      repeat = true;
      const prev = seen[Math.floor(r() * seen.length)] as Base;
      base = { ...prev, count: prev.count + 1, resolved: false };
    } else if (roll < 0.26 && seen.length > 0) {
      resolution = true;
      const prev = seen[Math.floor(r() * seen.length)] as Base;
      base = { ...prev, count: prev.count, resolved: true };
    } else {
      base = { ...shapeOf(r), n: i, count: 1, resolved: false };
      seen.push(base);
    }
    out.push({
      text: asRead(render(base, t0 + i * 1000)),
      findings: 1,
      bad: false,
      kind: base.kind,
      shape: base.shape,
      repeat,
      resolution,
      tagged: isTagged(base),
    });
  }
  return out;
}

/**
 * 15 of 16 resources of the shapes whose events carry tags (GuardDuty S3 and EC2, Security Hub): ~60% of
 * all resources. A GuardDuty access key finding carries none (the user's tags are not in the event), nor do
 * Defender and SCC notifications (see the header).
 */
const TAGGABLE: ReadonlySet<GeneratedShape> = new Set(['gd-s3', 'gd-ec2', 'sh-s3', 'sh-iam']);
const isTagged = (b: Base): boolean => TAGGABLE.has(b.shape) && b.n % 16 < 15;

/** A value that varies with n but stays the same for every event of one finding. */
const hexOf = (n: number, width: number) => n.toString(16).padStart(width, '0').slice(-width);
const ipOf = (n: number) => `198.51.100.${n % 250}`;
const APPS = ['storefront', 'lakehouse', 'campaign-exports', 'billing', 'search'];

function awsTags(b: Base): Array<{ key: string; value: string }> {
  return [
    { key: 'owner', value: `team${b.n % 20}@acme.example` },
    { key: 'env', value: b.n % 2 === 0 ? 'prod' : 'dev' },
    { key: 'app', value: APPS[b.n % APPS.length] as string },
  ];
}

function render(b: Base, at: number): string {
  const when = new Date(at).toISOString();
  switch (b.kind) {
    case 'gd':
      return JSON.stringify(guardDuty(b, when));
    case 'sh':
      return JSON.stringify(securityHub(b, when));
    case 'def':
      return JSON.stringify(b.shape === 'def-alert' ? defenderAlert(b, when) : defenderAssessment(b, when));
    case 'scc': {
      const p = PROJECTS[b.n % PROJECTS.length] as (typeof PROJECTS)[number];
      return JSON.stringify({
        message: {
          attributes: {},
          data: Buffer.from(JSON.stringify(scc(b, when, p))).toString('base64'),
          messageId: String(b.n),
          publishTime: when,
        },
        subscription: `projects/${p.id}/subscriptions/closeloop-scc-push`,
      });
    }
  }
}

/** The remote caller of an API call finding (GuardDuty `awsApiCallAction`). */
const apiCall = (api: string, service: string, n: number, affected: Record<string, string>) => ({
  actionType: 'AWS_API_CALL',
  awsApiCallAction: {
    api,
    serviceName: service,
    callerType: 'Remote IP',
    remoteIpDetails: {
      ipAddressV4: ipOf(n),
      organization: {
        asn: String(64500 + (n % 10)),
        asnOrg: 'Example Transit LLC',
        isp: 'Example Transit LLC',
        org: 'Example Transit LLC',
      },
      country: { countryName: 'United States' },
      city: { cityName: 'Ashburn' },
      geoLocation: { lat: 39.04, lon: -77.49 },
    },
    affectedResources: affected,
  },
});

function guardDuty(b: Base, when: string) {
  const account = ACCOUNTS[b.n % ACCOUNTS.length] as string;
  const id = `${hexOf(b.n, 8)}f9a4f01d8c9f8f4a4789ee4b`;
  const tags = isTagged(b) ? awsTags(b) : [];
  let type: string;
  let severity: number;
  let resource: Record<string, unknown>;
  let action: Record<string, unknown>;
  let title: string;
  let description: string;
  if (b.shape === 'gd-ec2') {
    const instance = `i-0${hexOf(b.n, 16)}`;
    type = 'CryptoCurrency:EC2/BitcoinTool.B!DNS';
    severity = 8;
    resource = {
      resourceType: 'Instance',
      instanceDetails: {
        instanceId: instance,
        instanceType: 'm5.large',
        availabilityZone: 'us-east-1a',
        imageId: 'ami-0abcdef1234567890',
        imageDescription: 'Amazon Linux 2023 AMI',
        instanceState: 'running',
        launchTime: '2026-10-02T08:14:55.000Z',
        platform: null,
        iamInstanceProfile: {
          arn: `arn:aws:iam::${account}:instance-profile/web-app`,
          id: 'AIPAEXAMPLEPROFILE001',
        },
        networkInterfaces: [
          {
            networkInterfaceId: `eni-0${hexOf(b.n, 16)}`,
            privateIpAddress: `10.20.${(b.n >> 8) % 256}.${b.n % 256}`,
            privateDnsName: `ip-10-20-${(b.n >> 8) % 256}-${b.n % 256}.ec2.internal`,
            publicIp: ipOf(b.n + 1),
            subnetId: 'subnet-0123456789abcdef0',
            vpcId: 'vpc-0a1b2c3d4e5f60718',
            securityGroups: [{ groupId: 'sg-0aa11bb22cc33dd44', groupName: 'web-prod' }],
            ipv6Addresses: [],
            privateIpAddresses: [
              {
                privateIpAddress: `10.20.${(b.n >> 8) % 256}.${b.n % 256}`,
                privateDnsName: `ip-10-20-${(b.n >> 8) % 256}-${b.n % 256}.ec2.internal`,
              },
            ],
          },
        ],
        productCodes: [],
        tags: tags.length > 0 ? [{ key: 'Name', value: `web-${b.n}` }, ...tags] : [],
      },
    };
    action = {
      actionType: 'DNS_REQUEST',
      dnsRequestAction: { domain: 'pool.minexmr.example', protocol: 'UDP', blocked: false },
    };
    title = `Bitcoin-related domain name queried by EC2 instance ${instance}.`;
    description = `EC2 instance ${instance} is querying a domain name that is associated with Bitcoin-related activity.`;
  } else if (b.shape === 'gd-key') {
    const user = `ci-deployer-${b.n}`;
    type = 'UnauthorizedAccess:IAMUser/MaliciousIPCaller';
    severity = 5;
    resource = {
      resourceType: 'AccessKey',
      accessKeyDetails: {
        accessKeyId: `AKIA${hexOf(b.n, 16).toUpperCase()}`,
        principalId: `AIDA${hexOf(b.n, 17).toUpperCase()}`,
        userName: user,
        userType: 'IAMUser',
      },
    };
    action = apiCall('ListAccessKeys', 'iam.amazonaws.com', b.n, {});
    title = 'API ListAccessKeys was invoked from a known malicious IP address.';
    description = `API ListAccessKeys, commonly used in Discovery tactics, was invoked by user ${user} from known malicious IP address ${ipOf(b.n)}.`;
  } else {
    const bucket = `acme-bucket-${b.n}`;
    type = 'Policy:S3/BucketAnonymousAccessGranted';
    severity = 8;
    const closed = {
      ignorePublicAcls: false,
      restrictPublicBuckets: false,
      blockPublicAcls: false,
      blockPublicPolicy: false,
    };
    resource = {
      resourceType: 'S3Bucket',
      accessKeyDetails: {
        accessKeyId: `AKIA${hexOf(b.n, 16).toUpperCase()}`,
        principalId: `AIDA${hexOf(b.n, 17).toUpperCase()}`,
        userName: 'deploy-bot',
        userType: 'IAMUser',
      },
      s3BucketDetails: [
        {
          arn: `arn:aws:s3:::${bucket}`,
          name: bucket,
          type: 'Destination',
          createdAt: 1741687211.512,
          owner: { id: `8c1f0e2d9a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f${hexOf(b.n, 8)}` },
          tags,
          defaultServerSideEncryption: { encryptionType: 'AES256' },
          publicAccess: {
            permissionConfiguration: {
              bucketLevelPermissions: {
                accessControlList: { allowsPublicReadAccess: true, allowsPublicWriteAccess: false },
                bucketPolicy: { allowsPublicReadAccess: false, allowsPublicWriteAccess: false },
                blockPublicAccess: closed,
              },
              accountLevelPermissions: { blockPublicAccess: closed },
            },
            effectivePermission: 'PUBLIC',
          },
        },
      ],
    };
    action = apiCall('PutBucketAcl', 's3.amazonaws.com', b.n, { 'AWS::S3::Bucket': bucket });
    title = `Amazon S3 Public Anonymous Access was granted for the S3 bucket ${bucket}.`;
    description = `The S3 bucket ${bucket} was made publicly accessible to anonymous users by the IAM entity deploy-bot calling PutBucketAcl. If this change was not intended, review the bucket ACL and policy.`;
  }
  return {
    version: '0',
    id: `cb2bcce8-6859-5ba8-aca4-${hexOf(b.n * 8 + b.count, 12)}`,
    'detail-type': 'GuardDuty Finding',
    source: 'aws.guardduty',
    account,
    time: when,
    region: 'us-east-1',
    resources: [],
    detail: {
      schemaVersion: '2.0',
      accountId: account,
      region: 'us-east-1',
      partition: 'aws',
      id,
      arn: `arn:aws:guardduty:us-east-1:${account}:detector/e3e3a90d0f125cce54f587d33c863830/finding/${id}`,
      type,
      resource,
      service: {
        serviceName: 'guardduty',
        detectorId: 'e3e3a90d0f125cce54f587d33c863830',
        action,
        resourceRole: 'TARGET',
        additionalInfo: { value: '{}', type: 'default' },
        eventFirstSeen: '2026-11-01T00:00:00.000Z',
        eventLastSeen: when,
        archived: b.resolved,
        count: b.count,
      },
      severity,
      createdAt: '2026-11-01T00:00:00.000Z',
      updatedAt: when,
      title,
      description,
    },
  };
}

function securityHub(b: Base, when: string) {
  const account = ACCOUNTS[b.n % ACCOUNTS.length] as string;
  const iam = b.shape === 'sh-iam';
  const region = iam ? 'us-east-1' : 'eu-west-1';
  const control = iam ? 'IAM.3' : 'S3.8';
  const findingId = `arn:aws:securityhub:${region}:${account}:security-control/${control}/finding/b9126bb2-9bf1-5de1-b04d-${String(b.n).padStart(12, '0')}`;
  const product = `arn:aws:securityhub:${region}::product/aws/securityhub`;
  const bucket = `acme-lake-${b.n}`;
  const user = `reporting-svc-${b.n}`;
  const resourceId = iam ? `arn:aws:iam::${account}:user/${user}` : `arn:aws:s3:::${bucket}`;
  const severity = iam
    ? { Label: 'MEDIUM', Normalized: 40, Original: 'MEDIUM' }
    : { Label: 'HIGH', Normalized: 70, Original: 'HIGH' };
  const types = ['Software and Configuration Checks/Industry and Regulatory Standards'];
  const tags = isTagged(b) ? Object.fromEntries(awsTags(b).map((t) => [t.key, t.value])) : undefined;
  const details = iam
    ? {
        AwsIamUser: {
          UserName: user,
          UserId: `AIDA${hexOf(b.n, 17).toUpperCase()}`,
          Path: '/',
          CreateDate: '2024-01-10T09:00:00.000Z',
        },
      }
    : {
        AwsS3Bucket: {
          OwnerId: `2b7e1c9d0a8f6e5d4c3b2a190817263544536271809a8b7c6d5e4f3a${hexOf(b.n, 8)}`,
          CreatedAt: '2025-04-02T10:31:17.000Z',
          PublicAccessBlockConfiguration: {
            BlockPublicAcls: b.resolved,
            BlockPublicPolicy: b.resolved,
            IgnorePublicAcls: b.resolved,
            RestrictPublicBuckets: b.resolved,
          },
        },
      };
  return {
    version: '0',
    id: `4752884a-8596-5375-b4e5-${hexOf(b.n * 8 + b.count, 12)}`,
    'detail-type': 'Security Hub Findings - Imported',
    source: 'aws.securityhub',
    account,
    time: when,
    region,
    resources: [`${product}/${findingId}`],
    detail: {
      findings: [
        {
          SchemaVersion: '2018-10-08',
          Id: findingId,
          ProductArn: product,
          ProductName: 'Security Hub',
          CompanyName: 'AWS',
          Region: region,
          GeneratorId: `security-control/${control}`,
          AwsAccountId: account,
          Types: types,
          FirstObservedAt: '2026-11-01T00:00:00.000Z',
          LastObservedAt: when,
          CreatedAt: '2026-11-01T00:00:00.000Z',
          UpdatedAt: when,
          Severity: severity,
          Title: iam
            ? "IAM users' access keys should be rotated every 90 days or less"
            : 'S3 general purpose buckets should block public access',
          Description: iam
            ? 'This control checks whether active IAM access keys are rotated within 90 days.'
            : 'This control checks whether an Amazon S3 general purpose bucket blocks public access at the bucket level. The control fails if any of the bucket-level Block Public Access settings are false.',
          Remediation: {
            Recommendation: {
              Text: 'For information on how to correct this issue, consult the AWS Security Hub controls documentation.',
              Url: `https://docs.aws.amazon.com/console/securityhub/${control}/remediation`,
            },
          },
          ProductFields: {
            'RelatedAWSResources:0/name': `securityhub-${iam ? 'iam-3' : 's3-bucket-level-public-access-prohibited'}-1f2e3d4c`,
            'RelatedAWSResources:0/type': 'AWS::Config::ConfigRule',
            'aws/securityhub/ProductName': 'Security Hub',
            'aws/securityhub/CompanyName': 'AWS',
            'Resources:0/Id': resourceId,
            'aws/securityhub/FindingId': `${product}/${findingId}`,
          },
          Resources: [
            {
              Type: iam ? 'AwsIamUser' : 'AwsS3Bucket',
              Id: resourceId,
              Partition: 'aws',
              Region: region,
              ...(tags ? { Tags: tags } : {}),
              Details: details,
            },
          ],
          Compliance: {
            Status: b.resolved ? 'PASSED' : 'FAILED',
            SecurityControlId: control,
            AssociatedStandards: [{ StandardsId: 'standards/aws-foundational-security-best-practices/v/1.0.0' }],
          },
          WorkflowState: b.resolved ? 'RESOLVED' : 'NEW',
          Workflow: { Status: b.resolved ? 'RESOLVED' : 'NEW' },
          RecordState: 'ACTIVE',
          FindingProviderFields: { Severity: { Label: severity.Label, Original: severity.Original }, Types: types },
          ProcessedAt: when,
        },
      ],
    },
  };
}

const storageAccountId = (b: Base) => {
  const sub = SUBS[b.n % SUBS.length] as string;
  return `/subscriptions/${sub}/resourceGroups/rg-${b.n % 7}/providers/Microsoft.Storage/storageAccounts/stacme${b.n}`;
};

function defenderAssessment(b: Base, when: string) {
  const rid = storageAccountId(b);
  return {
    id: `${rid}/providers/Microsoft.Security/assessments/00000000-0000-0000-0000-5a3b1c0d9e01`,
    name: '00000000-0000-0000-0000-5a3b1c0d9e01',
    type: 'Microsoft.Security/assessments',
    properties: {
      resourceDetails: { source: 'Azure', id: rid },
      displayName: 'Storage account public access should be disallowed',
      status: {
        code: b.resolved ? 'Healthy' : 'Unhealthy',
        firstEvaluationDate: '2026-11-01T00:00:00.0000000Z',
        statusChangeDate: when,
      },
      additionalData: {},
      metadata: {
        displayName: 'Storage account public access should be disallowed',
        assessmentType: 'BuiltIn',
        policyDefinitionId: '/providers/Microsoft.Authorization/policyDefinitions/4fa4b6c0-31ca-4c0d-b10d-24b96f62a751',
        severity: 'Medium',
        categories: ['Data'],
        description:
          'Anonymous public read access to containers and blobs in Azure Storage is a convenient way to share data but might present security risks.',
        remediationDescription: 'Set the storage account property allowBlobPublicAccess to false.',
      },
      links: {
        azurePortalUri:
          'https://portal.azure.com/#blade/Microsoft_Azure_Security/RecommendationsBlade/assessmentKey/00000000-0000-0000-0000-5a3b1c0d9e01',
      },
    },
  };
}

function defenderAlert(b: Base, when: string) {
  const rid = storageAccountId(b);
  const sub = SUBS[b.n % SUBS.length] as string;
  const account = `stacme${b.n}`;
  const alertId = `2517494421189999999_3c1d7f9e-2a4b-4c6d-8e0f-${hexOf(b.n, 12)}`;
  return {
    SystemAlertId: alertId,
    AlertType: 'Storage.Blob_OpenACL',
    AlertDisplayName:
      'The access level of a potentially sensitive storage blob container was changed to allow unauthenticated public access',
    Description: `Someone changed the access level of blob container 'invoices' in storage account '${account}' to 'Container', allowing anonymous public access.`,
    Severity: 'Medium',
    Status: b.resolved ? 'Resolved' : 'Active',
    Intent: 'Collection',
    CompromisedEntity: account,
    AzureResourceId: rid,
    ResourceIdentifiers: [
      {
        $id: '1',
        AzureResourceId: rid,
        Type: 'AzureResource',
        AzureResourceTenantId: 'e3a1f5c2-7b9d-4e60-a8c4-1d2f3b4c5a69',
      },
    ],
    StartTimeUtc: '2026-11-01T00:00:00.000Z',
    EndTimeUtc: when,
    TimeGenerated: '2026-11-01T00:00:00.000Z',
    ProcessingEndTime: when,
    VendorName: 'Microsoft',
    ProductName: 'Microsoft Defender for Cloud',
    ProductComponentName: 'Storage',
    IsIncident: false,
    AlertUri: `https://portal.azure.com/#blade/Microsoft_Azure_Security_AzureDefenderForData/AlertBlade/alertId/${alertId}/subscriptionId/${sub}/resourceGroup/rg-${b.n % 7}/referencedFrom/alertDeepLink/location/westeurope`,
    RemediationSteps: [
      "Set the container access level back to 'Private (no anonymous access)'.",
      "Consider setting 'Allow Blob anonymous access' to disabled on the storage account.",
    ],
    Entities: [
      { $id: '2', ResourceId: rid, Type: 'azure-resource' },
      { $id: '3', Name: 'invoices', Type: 'blob-container' },
    ],
    ExtendedProperties: { Container: 'invoices', Operation: 'SetContainerAcl', resourceType: 'Storage' },
  };
}

function scc(b: Base, when: string, p: (typeof PROJECTS)[number]) {
  const fid = `6231489d7f6339e4${hexOf(b.n, 16)}`;
  const org = 'organizations/605118234777';
  const source = `${org}/sources/7319642508813370215`;
  const project = `//cloudresourcemanager.googleapis.com/projects/${p.number}`;
  const firewall = b.shape === 'scc-firewall';
  const bucket = `acme-web-${b.n}`;
  const rule = `allow-all-ingress-${b.n}`;
  const resourceName = firewall
    ? `//compute.googleapis.com/projects/${p.id}/global/firewalls/${6042983750138837711n + BigInt(b.n)}`
    : `//storage.googleapis.com/${bucket}`;
  const finding: Record<string, unknown> = {
    name: `${source}/findings/${fid}`,
    parent: source,
    resourceName,
    state: b.resolved ? 'INACTIVE' : 'ACTIVE',
    category: firewall ? 'OPEN_FIREWALL' : 'PUBLIC_BUCKET_ACL',
    externalUri: firewall
      ? `https://console.cloud.google.com/networking/firewalls/details/${rule}?project=${p.id}`
      : `https://console.cloud.google.com/storage/browser/${bucket}`,
    sourceProperties: firewall
      ? {
          ReactivationCount: 0,
          ScannerName: 'FIREWALL_SCANNER',
          AllowedIpRange: 'All',
          ExternallyAccessibleProtocolsAndPorts: [{ IPProtocol: 'tcp', ports: ['0-65535'] }],
          ExternalSourceRanges: ['0.0.0.0/0'],
          ActivationTrigger: 'Allows all IP addresses',
          ProjectId: p.id,
          Recommendation: `Restrict the source ranges of firewall rule ${rule}.`,
        }
      : {
          ReactivationCount: 0,
          ExceptionInstructions:
            'Add the security mark "allow_public_bucket_acl" to the asset with a value of "true" to prevent this finding from being activated again.',
          Explanation:
            'This bucket grants a role to allUsers or allAuthenticatedUsers, so anyone on the internet can access its data.',
          Recommendation: `Remove the allUsers and allAuthenticatedUsers members from the IAM policy of gs://${bucket}.`,
          ScannerName: 'STORAGE_SCANNER',
          ResourcePath: [`projects/${p.id}/`, `${org}/`],
        },
    securityMarks: { name: `${source}/findings/${fid}/securityMarks` },
    eventTime: when,
    createTime: '2026-11-01T00:00:00.000Z',
    severity: 'HIGH',
    canonicalName: `projects/${p.number}/sources/7319642508813370215/findings/${fid}`,
    mute: 'UNDEFINED',
    findingClass: 'MISCONFIGURATION',
    description: firewall
      ? 'Firewall rule allows ingress from 0.0.0.0/0.'
      : 'Cloud Storage bucket is publicly accessible.',
  };
  if (firewall) finding.compliances = [{ standard: 'cis', version: '1.3', ids: ['3.6', '3.7'] }];
  return {
    notificationConfigName: `${org}/notificationConfigs/closeloop-findings`,
    finding,
    resource: {
      name: resourceName,
      displayName: firewall ? rule : bucket,
      type: firewall ? 'google.compute.Firewall' : 'google.cloud.storage.Bucket',
      project,
      projectDisplayName: p.id,
      parent: project,
      parentDisplayName: p.id,
    },
  };
}
