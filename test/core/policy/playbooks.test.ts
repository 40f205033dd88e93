import { describe, expect, it } from 'vitest';
import type { Finding } from '../../../shared/core/model/finding.js';
import {
  PLAYBOOK_ACTION_IDS,
  PLAYBOOK_LINES,
  selectPlaybook,
  strictestModeFor,
} from '../../../shared/core/policy/playbooks.js';
import { type FindingOverrides, makeControlFinding, makeFinding } from '../../helpers/findings.js';

const BUCKET = { id: 'arn:aws:s3:::acme-data', name: 'acme-data', type: 'S3Bucket' };
const INSTANCE = {
  id: 'arn:aws:ec2:us-east-1:111122223333:instance/i-0abc1234def567890',
  name: 'i-0abc1234def567890',
  type: 'Instance',
};
const USER = { id: 'arn:aws:iam::111122223333:user/alice', name: 'alice', type: 'AccessKey' };
const VM =
  '/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1';
const STORAGE =
  '/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/st1';

const gd = (type: string, o: FindingOverrides = {}): Finding =>
  makeFinding({ type, ...o, resource: { ...BUCKET, ...o.resource } });
const defender = (type: string, resourceId: string, o: FindingOverrides = {}): Finding =>
  makeFinding({
    source: 'defender',
    product: 'Defender for Cloud',
    type,
    ...o,
    resource: {
      provider: 'azure',
      id: resourceId,
      name: resourceId.split('/').pop() ?? 'x',
      account: '00000000-0000-0000-0000-000000000000',
      region: null,
      type: 'Microsoft.Storage/storageAccounts',
    },
  });
const scc = (category: string): Finding =>
  makeFinding({
    source: 'scc',
    type: category,
    resource: {
      provider: 'gcp',
      id: '//storage.googleapis.com/acme-web-uploads',
      name: 'acme-web-uploads',
      account: 'acme-web-prod',
      region: null,
      type: 'google.cloud.storage.Bucket',
    },
  });

describe('playbook selection (finding-formats §10)', () => {
  it.each<[string, () => Finding, string | null]>([
    [
      'GuardDuty BucketAnonymousAccessGranted',
      () => gd('Policy:S3/BucketAnonymousAccessGranted'),
      's3.block-public-access',
    ],
    ['GuardDuty BucketPublicAccessGranted', () => gd('Policy:S3/BucketPublicAccessGranted'), 's3.block-public-access'],
    [
      'GuardDuty BucketBlockPublicAccessDisabled',
      () => gd('Policy:S3/BucketBlockPublicAccessDisabled'),
      's3.block-public-access',
    ],
    [
      'GuardDuty AccountBlockPublicAccessDisabled',
      () => gd('Policy:S3/AccountBlockPublicAccessDisabled', { resource: USER }),
      null,
    ],
    [
      'InstanceCredentialExfiltration.OutsideAWS on AssumedRole',
      () =>
        gd('UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS', {
          actor: { userType: 'AssumedRole', accessKeyId: 'ASIA00000000EXAMPLE' },
          resource: USER,
        }),
      'iam.revoke-role-sessions',
    ],
    [
      'InstanceCredentialExfiltration.InsideAWS on AssumedRole',
      () =>
        gd('UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.InsideAWS', {
          actor: { userType: 'AssumedRole' },
          resource: USER,
        }),
      'iam.revoke-role-sessions',
    ],
    [
      'legacy InstanceCredentialExfiltration on AssumedRole',
      () =>
        gd('UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration', {
          actor: { userType: 'AssumedRole' },
          resource: USER,
        }),
      'iam.revoke-role-sessions',
    ],
    [
      'MaliciousIPCaller on IAMUser',
      () =>
        gd('UnauthorizedAccess:IAMUser/MaliciousIPCaller', {
          actor: { userType: 'IAMUser', accessKeyId: 'AKIA00000000EXAMPLE' },
          resource: USER,
        }),
      'iam.deactivate-access-key',
    ],
    [
      'MaliciousIPCaller.Custom on IAMUser',
      () =>
        gd('UnauthorizedAccess:IAMUser/MaliciousIPCaller.Custom', { actor: { userType: 'IAMUser' }, resource: USER }),
      'iam.deactivate-access-key',
    ],
    [
      'TorIPCaller on IAMUser',
      () => gd('UnauthorizedAccess:IAMUser/TorIPCaller', { actor: { userType: 'IAMUser' }, resource: USER }),
      'iam.deactivate-access-key',
    ],
    [
      'AnomalousBehavior on IAMUser',
      () => gd('CredentialAccess:IAMUser/AnomalousBehavior', { actor: { userType: 'IAMUser' }, resource: USER }),
      'iam.deactivate-access-key',
    ],
    [
      'MaliciousIPCaller on AssumedRole',
      () => gd('UnauthorizedAccess:IAMUser/MaliciousIPCaller', { actor: { userType: 'AssumedRole' }, resource: USER }),
      'iam.revoke-role-sessions',
    ],
    [
      'MaliciousIPCaller on Root',
      () => gd('UnauthorizedAccess:IAMUser/MaliciousIPCaller', { actor: { userType: 'Root' }, resource: USER }),
      null,
    ],
    ['IAM finding without actor', () => gd('UnauthorizedAccess:IAMUser/TorIPCaller', { resource: USER }), null],
    [
      'CryptoCurrency:EC2 on an instance',
      () => gd('CryptoCurrency:EC2/BitcoinTool.B!DNS', { resource: INSTANCE }),
      'ec2.quarantine-instance',
    ],
    [
      'Backdoor:EC2 on an instance',
      () => gd('Backdoor:EC2/C&CActivity.B', { resource: INSTANCE }),
      'ec2.quarantine-instance',
    ],
    [
      'Trojan:EC2 on an instance',
      () => gd('Trojan:EC2/DNSDataExfiltration', { resource: INSTANCE }),
      'ec2.quarantine-instance',
    ],
    ['Recon:EC2 port probe', () => gd('Recon:EC2/PortProbeUnprotectedPort', { resource: INSTANCE }), null],
    [
      'Recon:IAMUser',
      () => gd('Recon:IAMUser/MaliciousIPCaller', { actor: { userType: 'IAMUser' }, resource: USER }),
      null,
    ],
    [
      'CryptoCurrency:Lambda',
      () =>
        gd('CryptoCurrency:Lambda/BitcoinTool.B', {
          resource: { id: 'arn:aws:lambda:us-east-1:111122223333:function:f', type: 'Lambda', name: 'f' },
        }),
      null,
    ],
    [
      'Backdoor:Lambda',
      () =>
        gd('Backdoor:Lambda/C&CActivity.B', {
          resource: { id: 'arn:aws:lambda:us-east-1:111122223333:function:f', type: 'Lambda', name: 'f' },
        }),
      null,
    ],
    [
      'EKS finding',
      () =>
        gd('Persistence:Kubernetes/ContainerWithSensitiveMount', {
          resource: { id: 'arn:aws:eks:us-east-1:111122223333:cluster/c', type: 'EKSCluster', name: 'c' },
        }),
      null,
    ],
    [
      'RDS finding',
      () =>
        gd('CredentialAccess:RDS/AnomalousBehavior.SuccessfulLogin', {
          resource: { id: 'arn:aws:rds:us-east-1:111122223333:db:d', type: 'RDSDBInstance', name: 'd' },
        }),
      null,
    ],
    ['Security Hub S3.2', () => makeControlFinding('S3.2', { resource: BUCKET }), 's3.block-public-access'],
    ['Security Hub S3.3', () => makeControlFinding('S3.3', { resource: BUCKET }), 's3.block-public-access'],
    ['Security Hub S3.8', () => makeControlFinding('S3.8', { resource: BUCKET }), 's3.block-public-access'],
    [
      'Security Hub S3.1 (account)',
      () =>
        makeControlFinding('S3.1', {
          resource: { id: 'AWS::::Account:111122223333', name: '111122223333', type: 'AwsAccount' },
        }),
      null,
    ],
    [
      'Security Hub IAM.3',
      () =>
        makeControlFinding('IAM.3', {
          resource: { id: 'arn:aws:iam::111122223333:user/alice', name: 'alice', type: 'AwsIamUser' },
        }),
      'iam.deactivate-access-key',
    ],
    [
      'Security Hub IAM.8',
      () =>
        makeControlFinding('IAM.8', {
          resource: { id: 'arn:aws:iam::111122223333:user/alice', name: 'alice', type: 'AwsIamUser' },
        }),
      'iam.deactivate-access-key',
    ],
    [
      'GuardDuty copy in Security Hub',
      () =>
        gd('CryptoCurrency:EC2/BitcoinTool.B!DNS', {
          source: 'securityhub',
          product: 'GuardDuty',
          resource: { ...INSTANCE, type: 'AwsEc2Instance' },
        }),
      'ec2.quarantine-instance',
    ],
    [
      'Defender assessment by policy definition id',
      () =>
        defender('/providers/Microsoft.Authorization/policyDefinitions/4fa4b6c0-31ca-4c0d-b10d-24b96f62a751', STORAGE, {
          kind: 'compliance',
          title: 'x',
        }),
      'azure.storage.disallow-public-access',
    ],
    [
      'Defender assessment by display name',
      () =>
        defender('Storage account public access should be disallowed', STORAGE, {
          kind: 'compliance',
          title: 'Storage account public access should be disallowed',
        }),
      'azure.storage.disallow-public-access',
    ],
    [
      'Defender assessment by its key alone',
      () =>
        defender('00000000-0000-0000-0000-5a3b1c0d9e01', STORAGE, {
          kind: 'compliance',
          title: 'Some other recommendation',
        }),
      null,
    ],
    [
      'Defender alert Storage.Blob_OpenACL',
      () => defender('Storage.Blob_OpenACL', STORAGE),
      'azure.storage.disallow-public-access',
    ],
    [
      'Defender alert Storage.Blob_AnonymousAccessAnomaly',
      () => defender('Storage.Blob_AnonymousAccessAnomaly', STORAGE),
      'azure.storage.disallow-public-access',
    ],
    ['Defender VM_MinerInContainerImage on a VM', () => defender('VM_MinerInContainerImage', VM), 'azure.vm.isolate'],
    ['Defender VM_DigitalCurrencyMining on a VM', () => defender('VM_DigitalCurrencyMining', VM), 'azure.vm.isolate'],
    ['Defender mining alert not on a VM', () => defender('VM_MinerInContainerImage', STORAGE), null],
    ['Defender KV_SuspiciousIPAccess', () => defender('KV_SuspiciousIPAccess', STORAGE), null],
    ['Defender KV_TORAccess', () => defender('KV_TORAccess', STORAGE), null],
    ['SCC PUBLIC_BUCKET_ACL', () => scc('PUBLIC_BUCKET_ACL'), 'gcs.remove-public-access'],
    ['SCC OPEN_FIREWALL', () => scc('OPEN_FIREWALL'), 'gcp.firewall.disable-rule'],
    ['SCC BUCKET_POLICY_ONLY_DISABLED', () => scc('BUCKET_POLICY_ONLY_DISABLED'), null],
    ['SCC PUBLIC_IP_ADDRESS', () => scc('PUBLIC_IP_ADDRESS'), null],
    ['SCC Persistence: IAM Anomalous Grant', () => scc('Persistence: IAM Anomalous Grant'), null],
  ])('chooses the right action when the finding is %s', (_name, build, action) => {
    // Prepare
    const f = build();
    // Act
    const choice = selectPlaybook(f);
    // Assess
    expect(choice.action).toBe(action);
    expect(choice.reason.length).toBeGreaterThan(10);
  });

  it('chooses no action for a sample finding whatever its type', () => {
    // Prepare
    const f = gd('Policy:S3/BucketAnonymousAccessGranted', {
      sample: true,
      resource: { id: 'arn:aws:s3:::GeneratedFindingS3Bucket', name: 'GeneratedFindingS3Bucket' },
    });
    // Act
    const choice = selectPlaybook(f);
    // Assess
    expect(choice).toMatchObject({ action: null, line: 'sample' });
  });

  it('keeps the action id when the finding is resolved (verification only)', () => {
    // Prepare
    const f = makeControlFinding('S3.8', { status: 'resolved', resource: BUCKET });
    // Act
    const choice = selectPlaybook(f);
    // Assess
    expect(choice.action).toBe('s3.block-public-access');
  });

  it('names exactly the action ids the lines can choose when listing PLAYBOOK_ACTION_IDS', () => {
    // Prepare
    const fromLines = new Set(PLAYBOOK_LINES.flatMap((l) => l.actions));
    // Act
    const listed = new Set(PLAYBOOK_ACTION_IDS);
    // Assess
    expect(fromLines).toEqual(listed);
    expect(listed.size).toBe(8);
  });

  it('gives IAM.3/IAM.8 approval in every environment and the strictest default per action', () => {
    // Prepare
    const f = makeControlFinding('IAM.3', {
      resource: { id: 'arn:aws:iam::111122223333:user/alice', name: 'alice', type: 'AwsIamUser' },
    });
    // Act
    const choice = selectPlaybook(f);
    const strictest = strictestModeFor('iam.deactivate-access-key');
    // Assess
    expect(choice.mode?.dev).toBe('approval');
    expect(strictest?.dev).toBe('approval');
    expect(strictestModeFor('gcs.remove-public-access')).toBeUndefined();
  });
});
