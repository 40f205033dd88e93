/**
 * One import per action (file name = action id). esbuild bundles this list; `test/contract/registry.test.ts`
 * compares it with the folder, so a new action file without a line here fails the build's tests.
 */
import azureStorageDisallowPublicAccess from './azure.storage.disallow-public-access.js';
import azureVmIsolate from './azure.vm.isolate.js';
import type { Action } from './define.js';
import ec2QuarantineInstance from './ec2.quarantine-instance.js';
import gcpFirewallDisableRule from './gcp.firewall.disable-rule.js';
import gcsRemovePublicAccess from './gcs.remove-public-access.js';
import iamDeactivateAccessKey from './iam.deactivate-access-key.js';
import iamRevokeRoleSessions from './iam.revoke-role-sessions.js';
import s3BlockPublicAccess from './s3.block-public-access.js';

export const ALL_ACTIONS: readonly Action[] = [
  s3BlockPublicAccess,
  iamDeactivateAccessKey,
  iamRevokeRoleSessions,
  ec2QuarantineInstance,
  azureStorageDisallowPublicAccess,
  azureVmIsolate,
  gcsRemovePublicAccess,
  gcpFirewallDisableRule,
];
