/**
 * Playbooks: which action (if any) answers a finding type, control or category — exactly the table in
 * finding-formats.md §10. `null` means nothing safe to automate: the case is ticketed for a person.
 * The playbook line is policy (what to run); the action's declaration is capability (what it can do).
 * Sample findings always get `null`; resolved findings keep their id (verification only, never an apply).
 *
 * Each line may carry a default mode per environment; `policy.yaml decide.actionModes` overrides it, and
 * `decide.environments` applies where neither says anything.
 */
import type { RemediationMode } from '../model/decision.js';
import type { Finding } from '../model/finding.js';
import type { ModeByEnvironment } from './policy.js';

/** Every action id a playbook line can choose (the contract test checks each one is registered). */
export const PLAYBOOK_ACTION_IDS = [
  's3.block-public-access',
  'iam.deactivate-access-key',
  'iam.revoke-role-sessions',
  'ec2.quarantine-instance',
  'azure.storage.disallow-public-access',
  'azure.vm.isolate',
  'gcs.remove-public-access',
  'gcp.firewall.disable-rule',
] as const;
export type PlaybookActionId = (typeof PLAYBOOK_ACTION_IDS)[number];

/** The chosen playbook line for one finding. */
export interface PlaybookChoice {
  action: PlaybookActionId | null;
  /** Id of the playbook line that decided (`guardduty.s3-bucket-public`, `default`). */
  line: string;
  /** Why, in a sentence for the ticket. */
  reason: string;
  /** The line's default mode per environment, when it has one. */
  mode?: ModeByEnvironment;
}

interface PlaybookLine {
  id: string;
  /** What the line covers, for documentation (`closeloop playbooks`). */
  covers: string;
  match(f: Finding): boolean;
  choose(f: Finding): { action: PlaybookActionId | null; reason: string };
  /** The action ids `choose` can return (documentation, re-evaluation). */
  actions: readonly PlaybookActionId[];
  mode?: ModeByEnvironment;
}

// GuardDuty type format: ThreatPurpose:ResourceTypeAffected/ThreatFamilyName.DetectionMechanism!Artifact.
// Copies received through Security Hub carry the recovered GuardDuty type, so both channels match alike.
const GD_TYPE = /^([A-Za-z]+):([A-Za-z0-9]+)\/(.+)$/;
const gd = (f: Finding): { purpose: string; resource: string; family: string } | undefined => {
  if (f.resource.provider !== 'aws') return undefined;
  const m = GD_TYPE.exec(f.type);
  return m?.[1] && m[2] && m[3] ? { purpose: m[1], resource: m[2], family: m[3] } : undefined;
};

const S3_BUCKET_TYPES = new Set([
  'Policy:S3/BucketAnonymousAccessGranted',
  'Policy:S3/BucketPublicAccessGranted',
  'Policy:S3/BucketBlockPublicAccessDisabled',
]);
const EC2_PURPOSES = new Set(['CryptoCurrency', 'Backdoor', 'Trojan']);
const isBucketArn = (id: string): boolean => /^arn:aws[a-z-]*:s3:::[^/]+$/.test(id);
const isInstance = (f: Finding): boolean =>
  /:instance\/i-[0-9a-f]+$/.test(f.resource.id) ||
  f.resource.type === 'Instance' ||
  f.resource.type === 'AwsEc2Instance';

const S3_PUBLIC_CONTROLS: ReadonlySet<string> = new Set(['S3.2', 'S3.3', 'S3.8']);
const S3_ACCOUNT_CONTROLS: ReadonlySet<string> = new Set(['S3.1']);
const IAM_KEY_CONTROLS: ReadonlySet<string> = new Set(['IAM.3', 'IAM.8']);

/** Control ids of a Security Hub finding: its type (the control) and its compliance controls. */
const hasControl = (f: Finding, ids: ReadonlySet<string>): boolean =>
  f.resource.provider === 'aws' && (ids.has(f.type) || f.compliance.controls.some((c) => ids.has(c)));

// Defender: "Storage account public access should be disallowed" — matched by its Azure Policy definition
// GUID or its display name, never by the assessment key (undocumented; fixtures use a placeholder).
const STORAGE_PUBLIC_POLICY = '4fa4b6c0-31ca-4c0d-b10d-24b96f62a751';
const STORAGE_PUBLIC_NAME = 'storage account public access should be disallowed';
const STORAGE_ALERTS = new Set(['Storage.Blob_OpenACL', 'Storage.Blob_AnonymousAccessAnomaly']);
// VM_MinerInContainerImage, VM_DigitalCurrencyMining and the other "digital currency mining" alert types.
const VM_MINING_ALERT = /^VM_.*(Miner|Mining)/i;
const AZURE_VM_ID = /\/providers\/Microsoft\.Compute\/virtualMachines\/[^/]+$/i;

const defenderStoragePublic = (f: Finding): boolean => {
  if (f.source !== 'defender') return false;
  const byPolicy = (s: string) => s.toLowerCase().endsWith(STORAGE_PUBLIC_POLICY);
  return (
    byPolicy(f.type) ||
    f.compliance.controls.some(byPolicy) ||
    f.type.toLowerCase() === STORAGE_PUBLIC_NAME ||
    f.title.trim().toLowerCase() === STORAGE_PUBLIC_NAME
  );
};

const ALL_APPROVAL: ModeByEnvironment = {
  dev: 'approval',
  test: 'approval',
  sandbox: 'approval',
  staging: 'approval',
  prod: 'approval',
};

/** The playbook table, in evaluation order (first line that matches decides). */
export const PLAYBOOK_LINES: readonly PlaybookLine[] = [
  {
    id: 'sample',
    actions: [],
    covers: 'sample findings (GuardDuty CreateSampleFindings, ASFF Sample)',
    match: (f) => f.sample,
    choose: () => ({ action: null, reason: 'sample finding: its resources do not exist, nothing to fix' }),
  },
  {
    id: 'guardduty.s3-account-bpa',
    actions: [],
    covers: 'GuardDuty Policy:S3/AccountBlockPublicAccessDisabled',
    match: (f) => f.type === 'Policy:S3/AccountBlockPublicAccessDisabled',
    choose: () => ({ action: null, reason: 'account-wide S3 Block Public Access: too broad to change automatically' }),
  },
  {
    id: 'guardduty.s3-bucket-public',
    actions: ['s3.block-public-access'],
    covers:
      'GuardDuty Policy:S3/BucketAnonymousAccessGranted, BucketPublicAccessGranted, BucketBlockPublicAccessDisabled',
    match: (f) => S3_BUCKET_TYPES.has(f.type),
    choose: (f) =>
      isBucketArn(f.resource.id)
        ? { action: 's3.block-public-access', reason: `${f.type}: block public access on the bucket` }
        : { action: null, reason: `${f.type} without a bucket resource: nothing to act on` },
    mode: { dev: 'auto', test: 'auto', sandbox: 'auto', staging: 'approval', prod: 'approval' },
  },
  {
    id: 'guardduty.recon',
    actions: [],
    covers: 'GuardDuty Recon:*',
    match: (f) => gd(f)?.purpose === 'Recon',
    choose: (f) => ({ action: null, reason: `${f.type} is reconnaissance: no safe automatic response` }),
  },
  {
    id: 'guardduty.iam',
    actions: ['iam.deactivate-access-key', 'iam.revoke-role-sessions'],
    covers:
      'GuardDuty *:IAMUser/* (by actor.userType: IAMUser → deactivate key, AssumedRole → revoke sessions, Root → none)',
    match: (f) => gd(f)?.resource === 'IAMUser',
    choose: (f) => {
      const userType = f.actor?.userType;
      if (userType === 'IAMUser')
        return { action: 'iam.deactivate-access-key', reason: `${f.type} on a long-term IAM user key: deactivate it` };
      if (userType === 'AssumedRole')
        return { action: 'iam.revoke-role-sessions', reason: `${f.type} on role credentials: revoke older sessions` };
      if (userType === 'Root')
        return { action: null, reason: `${f.type} on the root user: never automated, a person responds` };
      return { action: null, reason: `${f.type} with user type ${userType ?? 'unknown'}: no safe automatic response` };
    },
  },
  {
    id: 'guardduty.ec2-compromise',
    actions: ['ec2.quarantine-instance'],
    covers: 'GuardDuty CryptoCurrency:EC2/*, Backdoor:EC2/*, Trojan:EC2/* on an instance',
    match: (f) => {
      const t = gd(f);
      return t !== undefined && t.resource === 'EC2' && EC2_PURPOSES.has(t.purpose);
    },
    choose: (f) =>
      isInstance(f)
        ? { action: 'ec2.quarantine-instance', reason: `${f.type}: isolate the instance and snapshot its volumes` }
        : { action: null, reason: `${f.type} without an instance resource: nothing to isolate` },
  },
  {
    id: 'guardduty.other',
    actions: [],
    covers: 'any other GuardDuty type (Lambda, EKS, RDS, runtime, …)',
    match: (f) => gd(f) !== undefined,
    choose: (f) => ({ action: null, reason: `no safe automatic response for ${f.type}` }),
  },
  {
    id: 'securityhub.s3-bucket-public',
    actions: ['s3.block-public-access'],
    covers: 'Security Hub controls S3.2, S3.3, S3.8',
    match: (f) => hasControl(f, S3_PUBLIC_CONTROLS),
    choose: (f) =>
      isBucketArn(f.resource.id)
        ? { action: 's3.block-public-access', reason: `control ${f.type} failed: block public access on the bucket` }
        : { action: null, reason: `control ${f.type} without a bucket resource: nothing to act on` },
    mode: { dev: 'auto', test: 'auto', sandbox: 'auto', staging: 'approval', prod: 'approval' },
  },
  {
    id: 'securityhub.s3-account',
    actions: [],
    covers: 'Security Hub control S3.1 (account level)',
    match: (f) => hasControl(f, S3_ACCOUNT_CONTROLS),
    choose: () => ({
      action: null,
      reason: 'S3.1 is account-wide Block Public Access: too broad to change automatically',
    }),
  },
  {
    id: 'securityhub.iam-keys',
    actions: ['iam.deactivate-access-key'],
    covers: 'Security Hub controls IAM.3 (keys older than 90 days), IAM.8 (unused credentials)',
    match: (f) => hasControl(f, IAM_KEY_CONTROLS),
    choose: (f) => ({
      action: 'iam.deactivate-access-key',
      reason: `control ${f.type}: deactivate the offending keys`,
    }),
    // Disabling a key someone still uses breaks their workload: always a person's call.
    mode: ALL_APPROVAL,
  },
  {
    id: 'defender.storage-public',
    actions: ['azure.storage.disallow-public-access'],
    covers: `Defender assessment "Storage account public access should be disallowed" (policy ${STORAGE_PUBLIC_POLICY}), alerts Storage.Blob_OpenACL, Storage.Blob_AnonymousAccessAnomaly`,
    match: (f) => defenderStoragePublic(f) || (f.source === 'defender' && STORAGE_ALERTS.has(f.type)),
    choose: (f) => ({
      action: 'azure.storage.disallow-public-access',
      reason: `${f.title || f.type}: disallow blob public access on the storage account`,
    }),
  },
  {
    id: 'defender.vm-mining',
    actions: ['azure.vm.isolate'],
    covers: 'Defender VM mining alerts (VM_MinerInContainerImage, digital currency mining) on a virtual machine',
    match: (f) => f.source === 'defender' && VM_MINING_ALERT.test(f.type),
    choose: (f) =>
      AZURE_VM_ID.test(f.resource.id)
        ? { action: 'azure.vm.isolate', reason: `${f.type}: isolate the VM behind a deny-all NSG` }
        : { action: null, reason: `${f.type} is not on a virtual machine: nothing to isolate` },
  },
  {
    id: 'defender.key-vault',
    actions: [],
    covers: 'Defender Key Vault alerts (KV_*)',
    match: (f) => f.source === 'defender' && f.type.startsWith('KV_'),
    choose: (f) => ({ action: null, reason: `${f.type}: Key Vault alerts need a person (no safe automatic response)` }),
  },
  {
    id: 'scc.public-bucket-acl',
    actions: ['gcs.remove-public-access'],
    covers: 'SCC PUBLIC_BUCKET_ACL',
    match: (f) => f.resource.provider === 'gcp' && f.type === 'PUBLIC_BUCKET_ACL',
    choose: () => ({
      action: 'gcs.remove-public-access',
      reason: 'PUBLIC_BUCKET_ACL: remove public members from the bucket',
    }),
  },
  {
    id: 'scc.open-firewall',
    actions: ['gcp.firewall.disable-rule'],
    covers: 'SCC OPEN_FIREWALL',
    match: (f) => f.resource.provider === 'gcp' && f.type === 'OPEN_FIREWALL',
    choose: () => ({
      action: 'gcp.firewall.disable-rule',
      reason: 'OPEN_FIREWALL: disable the rule open to the internet',
    }),
  },
];

/**
 * Chooses the playbook line for a finding (first match wins; no match → `null` with the reason).
 *
 * @example selectPlaybook(finding).action // 's3.block-public-access'
 */
export function selectPlaybook(f: Finding): PlaybookChoice {
  for (const line of PLAYBOOK_LINES) {
    if (!line.match(f)) continue;
    const { action, reason } = line.choose(f);
    const choice: PlaybookChoice = { action, line: line.id, reason };
    if (line.mode && action !== null) choice.mode = line.mode;
    return choice;
  }
  return { action: null, line: 'default', reason: `no playbook for ${f.type}: ticket only` };
}

const MODE_RANK = { auto: 0, approval: 1, manual: 2, none: 3 } as const;

/**
 * The most restrictive default mode per environment among the lines that choose `action` — for
 * re-evaluating a stored case whose finding (and so its exact line) is not at hand. Fails safe.
 */
export function strictestModeFor(action: string): ModeByEnvironment | undefined {
  let out: ModeByEnvironment | undefined;
  for (const line of PLAYBOOK_LINES) {
    if (!line.mode || !line.actions.some((a) => a === action)) continue;
    out ??= {};
    for (const [env, mode] of Object.entries(line.mode) as Array<[keyof ModeByEnvironment, RemediationMode]>) {
      const current = out[env];
      if (current === undefined || MODE_RANK[mode] > MODE_RANK[current]) out[env] = mode;
    }
  }
  return out;
}
