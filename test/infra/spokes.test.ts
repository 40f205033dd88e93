// biome-ignore-all lint/suspicious/noTemplateCurlyInString: Bicep and HCL interpolations are matched as text
/**
 * The spokes' infrastructure, checked as far as this machine allows (no bicep/az CLI; terraform without
 * its registry): the role grants come from the generated permission files, which equal the action
 * registry; the identities, triggers, runtimes and settings the spoke code needs are declared.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import * as bundler from '../../scripts/bundle-functions.mjs';
import { AzureSpokeEnvSchema } from '../../shared/adapters/wiring/azure.js';
import { GcpSpokeEnvSchema } from '../../shared/adapters/wiring/gcp.js';
import { root } from './helpers.js';

const run = promisify(execFile);
const read = (path: string) => readFileSync(join(root, path), 'utf8');
const main = read('infra/azure/main.bicep');
const spoke = read('infra/azure/spoke.bicep');
const tf = ['main.tf', 'variables.tf', 'outputs.tf'].map((f) => read(`infra/gcp/${f}`)).join('\n');

/** The body of a Bicep/HCL block starting at `header`, by brace matching (comments hold no braces here). */
function block(text: string, header: string): string {
  const start = text.indexOf(header);
  if (start < 0) throw new Error(`no block ${header}`);
  let depth = 0;
  for (let i = text.indexOf('{', start); i < text.length; i++) {
    if (text[i] === '{') depth++;
    if (text[i] === '}' && --depth === 0) return text.slice(start, i + 1);
  }
  throw new Error(`unbalanced block ${header}`);
}

/** Every block whose header starts with `prefix` (e.g. all resources of one type), with its name. */
function blocks(text: string, prefix: string): { name: string; body: string }[] {
  const found: { name: string; body: string }[] = [];
  for (let at = text.indexOf(prefix); at >= 0; at = text.indexOf(prefix, at + 1)) {
    const header = text.slice(at, text.indexOf('{', at)).trim();
    found.push({ name: header.slice(prefix.length).replace(/^\W+|\W+$/g, ''), body: block(text.slice(at), header) });
  }
  return found;
}

/** The value of `key = …` / `key: …` on one line of a block, or undefined. */
const attr = (body: string, key: string) => new RegExp(`^\\s*${key}\\s*[=:]\\s*(.+?)\\s*$`, 'm').exec(body)?.[1];

describe('Azure spoke Bicep', () => {
  it('grants the custom role exactly the Azure actions the registry declares, loaded from the generated file', async () => {
    // Prepare
    const declared = await bundler.registryPermissions(root);
    const file = z
      .object({ actions: z.array(z.string()) })
      .parse(JSON.parse(read('infra/azure/action-permissions.json')));
    const role = block(main, "resource remediationRole 'Microsoft.Authorization/roleDefinitions@");
    // Assess
    expect(file.actions).toEqual(declared?.azure);
    expect(main).toContain("var actionPermissions = loadJsonContent('action-permissions.json')");
    expect(role).toMatch(/actions: actionPermissions\.actions\s/);
    expect(role).toContain("type: 'CustomRole'");
    expect(role).not.toMatch(/'\*'/);
  });

  it("sets the function's boolean switches as 'true'/'false' (ARM's string() of a bool is 'True')", () => {
    // Prepare
    const app = block(spoke, "resource functionApp 'Microsoft.Web/sites@");
    // Assess
    for (const name of ['CLOSELOOP_APPLY', 'CLOSELOOP_TAG_LOOKUP']) {
      const setting = new RegExp(`name: '${name}'\\s+value: ([^\\n]+)`).exec(app)?.[1];
      expect(setting, name).toMatch(/^toLower\(string\(\w+\)\)$/);
    }
  });

  it('lets the spoke read resource tags, and nothing more, for the skip-tag re-check before an apply', () => {
    // Prepare
    const role = block(main, "resource tagReadRole 'Microsoft.Authorization/roleDefinitions@");
    const assignment = block(main, "resource tagReadAssignment 'Microsoft.Authorization/roleAssignments@");
    // Assess
    const actions = /\bactions: \[([^\]]*)\]/.exec(role)?.[1] ?? '';
    expect(actions.match(/'[^']+'/g)).toEqual(["'Microsoft.Resources/tags/read'"]);
    expect(role).toContain("type: 'CustomRole'");
    expect(assignment).toContain('roleDefinitionId: tagReadRole.id');
    expect(assignment).toContain('principalId: spoke.outputs.principalId');
  });

  it('assigns the role at subscription scope to the function app system-assigned identity', () => {
    // Prepare
    const assignment = block(main, "resource remediationAssignment 'Microsoft.Authorization/roleAssignments@");
    // Assess
    expect(main).toMatch(/^targetScope = 'subscription'/m);
    expect(assignment).toContain('roleDefinitionId: remediationRole.id');
    expect(assignment).toContain('principalId: spoke.outputs.principalId');
    expect(assignment).not.toMatch(/scope:/); // subscription scope = the deployment's own scope
    expect(block(spoke, "resource functionApp 'Microsoft.Web/sites@")).toMatch(/identity: \{\s+type: 'SystemAssigned'/);
    expect(spoke).toContain('output principalId string = functionApp.identity.principalId');
  });

  it('runs a Linux Flex Consumption app on Node 20 or 22 with storage and Application Insights', () => {
    // Prepare
    const app = block(spoke, "resource functionApp 'Microsoft.Web/sites@");
    // Assess
    expect(app).toContain("kind: 'functionapp,linux'");
    expect(block(spoke, "resource plan 'Microsoft.Web/serverfarms@")).toContain("tier: 'FlexConsumption'");
    expect(app).toMatch(/runtime: \{\s+name: 'node'\s+version: nodeVersion/);
    expect(block(main, 'param nodeVersion string')).toBeDefined();
    expect(main).toMatch(/@allowed\(\[\s+'20'\s+'22'\s+\]\)\s+param nodeVersion string = '20'/);
    expect(spoke).toContain("resource storage 'Microsoft.Storage/storageAccounts@");
    expect(spoke).toContain('allowSharedKeyAccess: false');
    expect(app).toContain('APPLICATIONINSIGHTS_CONNECTION_STRING');
  });

  it('sets every app setting the spoke requires, with secrets only as Key Vault references', () => {
    // Prepare
    const app = block(spoke, "resource functionApp 'Microsoft.Web/sites@");
    const names = [...app.matchAll(/name: '([A-Za-z_]+)'/g)].map((m) => m[1]);
    const required = Object.entries(AzureSpokeEnvSchema.shape)
      .filter(([, s]) => !s.safeParse(undefined).success)
      .map(([k]) => k);
    // Assess
    for (const name of [...required, 'CLOSELOOP_REMEDIATE_SECRET', 'CLOSELOOP_SPOKE_SECRET'])
      expect(names).toContain(name);
    for (const secret of ['CLOSELOOP_SPOKE_SECRET', 'CLOSELOOP_REMEDIATE_SECRET']) {
      expect(app).toMatch(
        new RegExp(
          `name: '${secret}'\\s+value: '@Microsoft\\.KeyVault\\(VaultName=\\$\\{vault\\.name\\};SecretName=[a-z-]+\\)'`,
        ),
      );
    }
    expect(`${main}\n${spoke}`).not.toMatch(/@secure\(\)|^output .*(secret|key)\b/im);
  });

  it('delivers Defender documents by Event Grid and by workflow automation to the functions that exist', () => {
    // Prepare
    const ingest = read('functions/azure/defender-ingest.ts');
    // Assess
    expect(spoke).toContain("endpointType: 'AzureFunction'");
    expect(spoke).toContain("resourceId: '${functionApp.id}/functions/defenderEventGrid'");
    expect(ingest).toContain("app.eventGrid('defenderEventGrid'");
    expect(spoke).toContain("id: '${functionApp.id}/functions/defenderHttp'");
    expect(ingest).toContain("app.http('defenderHttp'");
    expect(block(spoke, "resource automation 'Microsoft.Security/automations@")).toContain("actionType: 'LogicApp'");
    expect(spoke).toContain(
      "output remediateUrl string = 'https://${functionApp.properties.defaultHostName}/api/remediate'",
    );
    expect(read('functions/azure/remediate.ts')).toContain("route: 'remediate'");
  });

  it('dead-letters the Defender events Event Grid could not deliver into a container the template creates, after a bounded retry', () => {
    // Prepare
    const subscription = block(spoke, "resource defenderSubscription 'Microsoft.EventGrid/topics/eventSubscriptions@");
    const retry = block(subscription, 'retryPolicy:');
    const withIdentity = block(subscription, 'deadLetterWithResourceIdentity:');
    const destination = block(withIdentity, 'deadLetterDestination:');
    const containerRef = /blobContainerName: (\w+)\.name\b/.exec(destination)?.[1];
    const container = blocks(spoke, 'resource ').find((r) => r.name.startsWith(`${containerRef} `))?.body ?? '';
    const writer = blocks(spoke, 'resource ').find((r) =>
      /principalId: defenderTopic\.identity\.principalId/.test(r.body),
    );
    // Assess: bounded retries (Event Grid's limits: 30 attempts, 1440 minutes), then the container
    expect(Number(attr(retry, 'maxDeliveryAttempts'))).toBeLessThanOrEqual(30);
    expect(Number(attr(retry, 'eventTimeToLiveInMinutes'))).toBeLessThanOrEqual(1440);
    expect(attr(destination, 'endpointType')).toBe("'StorageBlob'");
    expect(attr(destination, 'resourceId')).toBe('storage.id');
    expect(container).toMatch(/^resource \w+ 'Microsoft\.Storage\/storageAccounts\/blobServices\/containers@/);
    expect(attr(container, 'parent')).toBe('blobService');
    expect(attr(container, 'publicAccess')).toBe("'None'");
    // The account takes no shared key: the topic writes with its own identity, allowed on that container only
    expect(attr(block(withIdentity, 'identity:'), 'type')).toBe("'SystemAssigned'");
    expect(block(spoke, "resource defenderTopic 'Microsoft.EventGrid/topics@")).toMatch(
      /identity: \{\s+type: 'SystemAssigned'/,
    );
    expect(writer?.body).toContain(`scope: ${containerRef}\n`);
    expect(writer?.body).toContain(
      "roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributor)",
    );
    expect(spoke).toContain("var storageBlobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'");
    expect(subscription).toMatch(new RegExp(`dependsOn: \\[\\s+${writer?.name.split(' ')[0]}\\s+\\]`));
    // And the operator is told where to look
    expect(main).toContain('output deadLetterContainerUrl string = spoke.outputs.deadLetterContainerUrl');
  });

  it('alerts when Event Grid dead-letters a Defender event, to the action group the deployer names (none: no action)', () => {
    // Prepare
    const alert = blocks(spoke, 'resource ').find((r) => r.body.includes("'Microsoft.Insights/metricAlerts@"));
    const body = alert?.body ?? '';
    const criterion = block(body, 'allOf:');
    const scope = /scopes: \[\s+(\w+)\.id\s+\]/.exec(body)?.[1];
    const scopeType = new RegExp(`^resource ${scope} '([^@']+)@`, 'm').exec(spoke)?.[1];
    // Assess: on the topic whose subscription dead-letters, in the metric namespace of its own type
    expect(scope).toBe('defenderTopic');
    expect(scopeType).toBe('Microsoft.EventGrid/topics');
    expect(attr(body, "'odata.type'")).toBe("'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'");
    expect(attr(criterion, 'metricNamespace')).toBe(`'${scopeType}'`);
    expect(attr(criterion, 'metricName')).toBe("'DeadLetteredCount'");
    expect(attr(criterion, 'timeAggregation')).toBe("'Total'");
    expect(attr(criterion, 'operator')).toBe("'GreaterThan'");
    expect(attr(criterion, 'threshold')).toBe('0');
    expect(['PT1M', 'PT5M', 'PT15M']).toContain(attr(body, 'windowSize')?.replace(/'/g, ''));
    expect(attr(body, 'enabled')).toBe('true');
    // Notified through the parameter's action group, passed down from main.bicep; empty means no action
    expect(body).toMatch(
      /actions: empty\(deadLetterActionGroupId\) \? \[\] : \[\s+\{\s+actionGroupId: deadLetterActionGroupId\s+\}\s+\]/,
    );
    expect(spoke).toMatch(/^param deadLetterActionGroupId string = ''$/m);
    expect(main).toMatch(/^param deadLetterActionGroupId string = ''$/m);
    expect(attr(block(main, "module spoke 'spoke.bicep'"), 'deadLetterActionGroupId')).toBe('deadLetterActionGroupId');
  });

  it('queues remediation requests in the app storage for the worker, under queue-scoped roles of the app identity', () => {
    // Prepare
    const fn = read('functions/azure/remediate.ts');
    const queues = blocks(spoke, 'resource ').filter((r) =>
      r.body.includes("'Microsoft.Storage/storageAccounts/queueServices/queues@"),
    );
    const queueName = /^var remediateQueueName = '([\w-]+)'$/m.exec(spoke)?.[1];
    // A name is the variable itself, or a string interpolating it
    const names = queues.map((q) =>
      (attr(q.body, 'name') ?? '').replace(/^remediateQueueName$|\$\{remediateQueueName\}/, queueName ?? '?'),
    );
    const grants = blocks(spoke, 'resource ').filter((r) => r.body.includes('storageQueueDataContributor)'));
    // Assess: the queue the functions bind, and the host's `<queue>-poison`, in the app's own account
    expect(fn).toContain(`REMEDIATE_QUEUE = '${queueName}'`);
    expect(fn).toContain('REMEDIATE_POISON_QUEUE = `${REMEDIATE_QUEUE}-poison`');
    expect(fn).toContain("app.storageQueue('remediateQueued'");
    expect(fn).toContain("connection = 'AzureWebJobsStorage'");
    expect(names.map((n) => n.replace(/'/g, '')).sort()).toEqual([queueName, `${queueName}-poison`]);
    expect(block(spoke, "resource queueService 'Microsoft.Storage/storageAccounts/queueServices@")).toContain(
      'parent: storage\n',
    );
    // The app's identity on those two queues only (never the account), with the built-in queue role
    expect(spoke).toContain("var storageQueueDataContributor = '974c5e8b-45b9-4653-ba55-5f855dd0fb88'");
    expect(grants.map((g) => attr(g.body, 'scope')).sort()).toEqual(queues.map((q) => q.name.split(' ')[0]).sort());
    for (const g of grants) expect(attr(g.body, 'principalId')).toBe('functionApp.identity.principalId');
  });

  it('keeps requests too large for a queue message in a private container of the app storage, whose blobs expire after both queues let go of their pointers', () => {
    // Prepare
    const fn = read('functions/azure/remediate.ts');
    const container = block(
      spoke,
      "resource remediateLarge 'Microsoft.Storage/storageAccounts/blobServices/containers@",
    );
    const policy = block(spoke, "resource lifecycle 'Microsoft.Storage/storageAccounts/managementPolicies@");
    const owner = block(spoke, "resource blobOwner 'Microsoft.Authorization/roleAssignments@");
    // Assess: the container the function names, in the account of its queues, never public
    expect(fn).toContain('REMEDIATE_LARGE_CONTAINER = `${REMEDIATE_QUEUE}-large`');
    expect(attr(container, 'name')).toBe("'${remediateQueueName}-large'");
    expect(attr(container, 'parent')).toBe('blobService');
    expect(attr(container, 'publicAccess')).toBe("'None'");
    // One lifecycle policy per account, named default, on the account itself
    expect(attr(policy, 'name')).toBe("'default'");
    expect(attr(policy, 'parent')).toBe('storage');
    // Its blobs deleted after the 7 days a pointer may wait on remediate-requests and 7 more on the poison queue
    expect(policy).toMatch(/prefixMatch: \[\s+'\$\{remediateLarge\.name\}\/'\s+\]/);
    expect(policy).toMatch(/baseBlob: \{\s+delete: \{\s+daysAfterModificationGreaterThan: 14\s+\}/);
    expect(policy).toContain('enabled: true');
    // The app's identity writes and reads it through its Blob Data Owner role on the account (which the host
    // needs for AzureWebJobsStorage): narrowing that role must grant this container instead
    expect(attr(owner, 'scope')).toBe('storage');
    expect(attr(owner, 'principalId')).toBe('functionApp.identity.principalId');
  });

  it('alerts when a remediation request lands in the poison queue, to the same action group as the dead letters', () => {
    // Prepare
    const alert = blocks(spoke, 'resource ').find((r) => r.body.includes("'Microsoft.Insights/scheduledQueryRules@"));
    const body = alert?.body ?? '';
    const query = attr(block(body, 'allOf:'), 'query') ?? '';
    const worker = read('functions/azure/remediate.ts');
    // Assess: on the app's own log lines naming the poison queue (the host's move, the worker's set-aside)
    expect(/scopes: \[\s+(\w+)\.id\s+\]/.exec(body)?.[1]).toBe('insights');
    expect(query).toBe(`'traces | where message contains "\${remediatePoisonQueue.name}"'`);
    expect(worker).toContain('log.error(`remediation message moved to ${REMEDIATE_POISON_QUEUE}`');
    expect(attr(body, 'operator')).toBe("'GreaterThan'");
    expect(attr(body, 'threshold')).toBe('0');
    expect(attr(body, 'enabled')).toBe('true');
    expect(body).toMatch(/actionGroups: empty\(deadLetterActionGroupId\) \? \[\] : \[\s+deadLetterActionGroupId\s+\]/);
    expect(main).toContain('output remediatePoisonQueueUrl string = spoke.outputs.remediatePoisonQueueUrl');
  });

  it('merges the Azure function zips into one app package whose main loads every module', async () => {
    // Prepare
    await bundler.bundleFunctions({ root, only: ['azure/defender-ingest', 'azure/remediate'] });
    const { azureAppZip } = await import('../../infra/azure/app-zip.mjs');
    // Act
    const { zip } = azureAppZip(root);
    const entries = bundler.readZip(zip);
    // Assess
    // Both functions' lazily loaded chunks ride along under chunks/ (content-hashed names: one name, one content)
    const names = [...entries.keys()].sort();
    expect(names.filter((n) => !n.startsWith('chunks/'))).toEqual([
      'defender-ingest.mjs',
      'host.json',
      'package.json',
      'remediate.mjs',
    ]);
    expect(names.filter((n) => n.startsWith('chunks/')).every((n) => /^chunks\/[\w.-]+\.mjs$/.test(n))).toBe(true);
    expect(JSON.parse(entries.get('package.json')?.toString() ?? '{}')).toMatchObject({
      type: 'module',
      main: '*.mjs',
    });
    // The remediation queue's retries before its poison queue (functions/azure/remediate.ts)
    expect(JSON.parse(entries.get('host.json')?.toString() ?? '{}')).toMatchObject({
      extensions: { queues: { maxDequeueCount: 5 } },
    });
  }, 120_000);
});

describe('GCP spoke Terraform', () => {
  it('grants the custom role exactly the GCP permissions the registry declares, read from the generated file', async () => {
    // Prepare
    const declared = await bundler.registryPermissions(root);
    const file = z
      .object({ permissions: z.array(z.string()) })
      .parse(JSON.parse(read('infra/gcp/action-permissions.json')));
    const role = block(tf, 'resource "google_project_iam_custom_role" "remediation"');
    const binding = block(tf, 'resource "google_project_iam_member" "remediation"');
    // Assess
    expect(file.permissions).toEqual(declared?.gcp);
    expect(tf).toContain('jsondecode(file("${path.module}/action-permissions.json")).permissions');
    expect(role).toMatch(/permissions\s+= local\.action_permissions/);
    expect(binding).toContain('role    = google_project_iam_custom_role.remediation.id');
    expect(binding).toContain('member  = "serviceAccount:${google_service_account.spoke.email}"');
  });

  it('lets the spoke read the project labels, and nothing more, for the skip-label re-check before an apply', () => {
    // Prepare
    const role = block(tf, 'resource "google_project_iam_custom_role" "label_read"');
    const binding = block(tf, 'resource "google_project_iam_member" "label_read"');
    // Assess
    expect(role).toMatch(/permissions\s+= \["resourcemanager\.projects\.get"\]/);
    expect(binding).toContain('role    = google_project_iam_custom_role.label_read.id');
    expect(binding).toContain('member  = "serviceAccount:${google_service_account.spoke.email}"');
  });

  it('publishes SCC notifications to the topic whose subscription pushes to the gen2 function under its own service account', () => {
    // Prepare
    const scc = block(tf, 'resource "google_scc_notification_config" "findings"');
    const fn = block(tf, 'resource "google_cloudfunctions2_function" "ingest"');
    const subs = blocks(tf, 'resource "google_pubsub_subscription"').filter(
      (s) => attr(s.body, 'topic') === 'google_pubsub_topic.findings.id',
    );
    const push = block(subs[0]?.body ?? '', 'push_config');
    const invoker = block(tf, 'resource "google_cloud_run_service_iam_member" "ingest_invoker"');
    // Assess
    expect(scc).toContain('pubsub_topic = google_pubsub_topic.findings.id');
    expect(fn).toContain('entry_point = "sccIngest"');
    expect(read('functions/gcp/scc-ingest.ts')).toContain("cloudEvent('sccIngest'");
    expect(fn).toContain('runtime     = var.node_runtime');
    expect(block(tf, 'variable "node_runtime"')).toContain('contains(["nodejs20", "nodejs22"], var.node_runtime)');
    expect(block(fn, 'service_config')).toContain(
      'service_account_email            = google_service_account.ingest.email',
    );
    // One delivery path: the push subscription (the Functions Framework makes its body the CloudEvent; the
    // topic comes from the endpoint's path), authenticated as the ingest account, which may invoke it
    expect(subs).toHaveLength(1);
    expect(attr(push, 'push_endpoint')).toBe(
      '"${google_cloudfunctions2_function.ingest.service_config[0].uri}/${google_pubsub_topic.findings.id}"',
    );
    expect(attr(block(push, 'oidc_token'), 'service_account_email')).toBe('google_service_account.ingest.email');
    expect(attr(invoker, 'service')).toBe('google_cloudfunctions2_function.ingest.service_config[0].service');
    expect(attr(invoker, 'role')).toBe('"roles/run.invoker"');
    expect(attr(invoker, 'member')).toBe('"serviceAccount:${google_service_account.ingest.email}"');
  });

  it("runs sccIngest, which parses what the findings carry, under an account holding none of remediate's grants", () => {
    // Prepare: every IAM member binding of the template, with the account it names.
    const ingestFn = block(tf, 'resource "google_cloudfunctions2_function" "ingest"');
    const remediateFn = block(tf, 'resource "google_cloudfunctions2_function" "remediate"');
    const bindings = blocks(tf, 'resource "google_').filter((b) => /_iam_member$/.test(b.name.split('" "')[0] ?? ''));
    const naming = (account: string) =>
      bindings.filter((b) => (attr(b.body, 'member') ?? '').includes(`google_service_account.${account}.email`));
    const grants = (b: { body: string }) => `${attr(b.body, 'role')} on ${attr(b.body, 'service') ?? 'the project'}`;
    // Assess: an account of its own, not the one of remediate (which has its own too, below)
    expect(attr(block(ingestFn, 'service_config'), 'service_account_email')).toBe(
      'google_service_account.ingest.email',
    );
    expect(attr(block(remediateFn, 'service_config'), 'service_account_email')).not.toBe(
      'google_service_account.ingest.email',
    );
    // The ingest account may be invoked by the push and read labels (tag_lookup), nothing else: no action
    // permission, no finding state, no secret.
    expect(naming('ingest').map(grants).sort()).toEqual([
      '"roles/run.invoker" on google_cloudfunctions2_function.ingest.service_config[0].service',
      'google_project_iam_custom_role.ingest_label_read.id on the project',
    ]);
    expect(block(tf, 'resource "google_project_iam_member" "ingest_label_read"')).toContain(
      'count   = var.tag_lookup ? 1 : 0',
    );
    expect(block(tf, 'resource "google_project_iam_custom_role" "ingest_label_read"')).toMatch(
      /permissions\s+= \["resourcemanager\.projects\.get", "storage\.buckets\.get"\]/,
    );
    for (const writer of ['remediation', 'finding_state'])
      expect(
        naming('spoke').some((b) => b.name.split('" "')[1] === writer),
        writer,
      ).toBe(true);
    // Both forward to the hub, whose forwarder role trusts the unique ids of the two.
    expect(attr(block(tf, 'output "service_account_unique_ids"'), 'value')).toBe(
      '"${google_service_account.ingest.unique_id},${google_service_account.spoke.unique_id}"',
    );
  });

  it('dead-letters what sccIngest could not take after bounded attempts to a topic the template defines and keeps', () => {
    // Prepare: the subscription of the findings topic (an Eventarc trigger's own subscription takes no
    // dead-letter policy, so none may deliver beside it)
    const fn = block(tf, 'resource "google_cloudfunctions2_function" "ingest"');
    const [ingest] = blocks(tf, 'resource "google_pubsub_subscription"').filter(
      (s) => attr(s.body, 'topic') === 'google_pubsub_topic.findings.id',
    );
    const policy = block(ingest?.body ?? '', 'dead_letter_policy');
    const topic = /^google_pubsub_topic\.(\w+)\.id$/.exec(attr(policy, 'dead_letter_topic') ?? '')?.[1];
    const agent = 'local.pubsub_agent';
    const iam = (type: string) => blocks(tf, `resource "${type}"`).map((b) => b.body);
    // Assess: bounded attempts (Pub/Sub allows 5 to 100), to a topic of this template other than the source
    expect(fn).not.toMatch(/^\s*event_trigger\s*\{/m);
    expect(topic).toBeDefined();
    expect(topic).not.toBe('findings');
    expect(tf).toContain(`resource "google_pubsub_topic" "${topic}"`);
    const attempts = Number(attr(policy, 'max_delivery_attempts'));
    expect(attempts).toBeGreaterThanOrEqual(5);
    expect(attempts).toBeLessThanOrEqual(100);
    expect(block(ingest?.body ?? '', 'retry_policy')).toContain('maximum_backoff');
    // Pub/Sub's service agent publishes to the dead-letter topic and acknowledges on the source subscription
    expect(tf).toContain(
      'pubsub_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"',
    );
    expect(
      iam('google_pubsub_topic_iam_member').some(
        (b) =>
          attr(b, 'topic') === `google_pubsub_topic.${topic}.name` &&
          attr(b, 'role') === '"roles/pubsub.publisher"' &&
          attr(b, 'member') === agent,
      ),
    ).toBe(true);
    expect(
      iam('google_pubsub_subscription_iam_member').some(
        (b) =>
          attr(b, 'subscription') === `google_pubsub_subscription.${ingest?.name}.name` &&
          attr(b, 'role') === '"roles/pubsub.subscriber"' &&
          attr(b, 'member') === agent,
      ),
    ).toBe(true);
    // A message published to a topic without a subscription is lost: the dead letters have one, never
    // expiring, that the operator is pointed at
    const kept = blocks(tf, 'resource "google_pubsub_subscription"').find(
      (s) => attr(s.body, 'topic') === `google_pubsub_topic.${topic}.id`,
    );
    expect(kept?.body).toMatch(/expiration_policy \{\s+ttl = ""\s+\}/);
    expect(block(tf, 'output "dead_letter_subscription"')).toContain(`google_pubsub_subscription.${kept?.name}.id`);
    // The README no longer leaves it to a manual step after the first apply
    expect(read('infra/README.md')).not.toContain('gcloud pubsub subscriptions update');
  });

  it('alerts while the dead-letter subscription holds messages, to the notification channels the deployer names', () => {
    // Prepare: the dead-letter subscription, as the ingest subscription's dead_letter_policy leads to it
    const [ingest] = blocks(tf, 'resource "google_pubsub_subscription"').filter(
      (s) => attr(s.body, 'topic') === 'google_pubsub_topic.findings.id',
    );
    const topic = attr(block(ingest?.body ?? '', 'dead_letter_policy'), 'dead_letter_topic');
    const kept = blocks(tf, 'resource "google_pubsub_subscription"').find((s) => attr(s.body, 'topic') === topic);
    const policies = blocks(tf, 'resource "google_monitoring_alert_policy"');
    const policy = policies.find((p) => p.body.includes(`google_pubsub_subscription.${kept?.name}.name`))?.body ?? '';
    const threshold = block(policy, 'condition_threshold');
    const filter = JSON.parse(attr(threshold, 'filter') ?? '""') as string;
    const variable = block(tf, 'variable "dead_letter_notification_channels"');
    // Assess: Pub/Sub's undelivered-messages gauge of that subscription, above 0
    expect(kept?.name).toBeDefined();
    expect(filter.split(/\s+AND\s+/).sort()).toEqual(
      [
        'metric.type = "pubsub.googleapis.com/subscription/num_undelivered_messages"',
        'resource.type = "pubsub_subscription"',
        `resource.labels.subscription_id = "\${google_pubsub_subscription.${kept?.name}.name}"`,
      ].sort(),
    );
    expect(attr(threshold, 'comparison')).toBe('"COMPARISON_GT"');
    expect(attr(threshold, 'threshold_value')).toBe('0');
    // Notified through the optional variable (empty: the policy still opens incidents in the console)
    expect(attr(policy, 'notification_channels')).toBe('var.dead_letter_notification_channels');
    expect(attr(variable, 'type')).toBe('list(string)');
    expect(attr(variable, 'default')).toBe('[]');
    // Cloud Monitoring's API is enabled with the others, before the policy is created
    expect(block(tf, 'resource "google_project_service" "apis"')).toContain('"monitoring.googleapis.com",');
    expect(attr(policy, 'depends_on')).toBe('[google_project_service.apis]');
  });

  it('queues remediation requests on a topic whose push subscription delivers them to the worker and dead-letters what it could not run, with an alert', () => {
    // Prepare
    const endpoint = block(tf, 'resource "google_cloudfunctions2_function" "remediate"');
    const worker = block(tf, 'resource "google_cloudfunctions2_function" "remediate_worker"');
    const [sub, ...more] = blocks(tf, 'resource "google_pubsub_subscription"').filter(
      (s) => attr(s.body, 'topic') === 'google_pubsub_topic.remediate.id',
    );
    const push = block(sub?.body ?? '', 'push_config');
    const policy = block(sub?.body ?? '', 'dead_letter_policy');
    const deadTopic = /^google_pubsub_topic\.(\w+)\.id$/.exec(attr(policy, 'dead_letter_topic') ?? '')?.[1];
    const kept = blocks(tf, 'resource "google_pubsub_subscription"').find(
      (s) => attr(s.body, 'topic') === `google_pubsub_topic.${deadTopic}.id`,
    );
    const alert = blocks(tf, 'resource "google_monitoring_alert_policy"').find((p) =>
      p.body.includes(`resource.labels.subscription_id = \\"\${google_pubsub_subscription.${kept?.name}.name}\\"`),
    );
    const iam = (type: string) => blocks(tf, `resource "${type}"`).map((b) => b.body);
    const spokeMember = '"serviceAccount:${google_service_account.spoke.email}"';
    const fn = read('functions/gcp/remediate.ts');
    // Assess: the endpoint publishes, the worker (same bundle, its own entry point) runs
    expect(attr(endpoint, 'entry_point')).toBe('"remediate"');
    expect(block(endpoint, 'environment_variables')).toContain(
      'CLOSELOOP_REMEDIATE_TOPIC = google_pubsub_topic.remediate.id',
    );
    expect(attr(worker, 'entry_point')).toBe('"remediateQueued"');
    expect(fn).toContain("cloudEvent('remediateQueued'");
    expect(attr(block(worker, 'service_config'), 'service_account_email')).toBe('google_service_account.spoke.email');
    expect(attr(worker, 'ingress_settings')).toBe('"ALLOW_INTERNAL_ONLY"');
    expect(worker).not.toMatch(/^\s*event_trigger\s*\{/m);
    expect(block(worker, 'environment_variables')).toMatch(
      new RegExp(`CLOSELOOP_REMEDIATE_DEAD_LETTER_TOPIC = google_pubsub_topic\\.${deadTopic}\\.id`),
    );
    expect(block(worker, 'environment_variables')).toContain('CLOSELOOP_APPLY');
    // One push subscription, authenticated as the spoke account, which may invoke the worker
    expect(more).toEqual([]);
    expect(attr(push, 'push_endpoint')).toBe(
      '"${google_cloudfunctions2_function.remediate_worker[0].service_config[0].uri}/${google_pubsub_topic.remediate.id}"',
    );
    expect(attr(block(push, 'oidc_token'), 'service_account_email')).toBe('google_service_account.spoke.email');
    const invoker = block(tf, 'resource "google_cloud_run_service_iam_member" "remediate_worker_invoker"');
    expect(attr(invoker, 'service')).toBe(
      'google_cloudfunctions2_function.remediate_worker[0].service_config[0].service',
    );
    expect(attr(invoker, 'member')).toBe(spokeMember);
    // Bounded attempts to a kept dead-letter topic, Pub/Sub's agent allowed to move them there
    const attempts = Number(attr(policy, 'max_delivery_attempts'));
    expect(attempts).toBeGreaterThanOrEqual(5);
    expect(attempts).toBeLessThanOrEqual(100);
    expect(deadTopic).not.toBe('remediate');
    expect(kept?.body).toMatch(/expiration_policy \{\s+ttl = ""\s+\}/);
    expect(
      iam('google_pubsub_subscription_iam_member').some(
        (b) =>
          attr(b, 'subscription') === `google_pubsub_subscription.${sub?.name}[0].name` &&
          attr(b, 'role') === '"roles/pubsub.subscriber"' &&
          attr(b, 'member') === 'local.pubsub_agent',
      ),
    ).toBe(true);
    // The spoke account publishes to the dead letters, and holds no Pub/Sub role beyond that (the endpoint
    // publishes to the queue under its own account)
    const spokePubSub = [...iam('google_pubsub_topic_iam_member'), ...iam('google_pubsub_subscription_iam_member')]
      .filter((b) => attr(b, 'member') === spokeMember)
      .map((b) => `${attr(b, 'role')} on ${attr(b, 'topic') ?? attr(b, 'subscription')}`)
      .sort();
    expect(spokePubSub).toEqual([`"roles/pubsub.publisher" on google_pubsub_topic.${deadTopic}.name`]);
    // An incident while the dead letters hold any, to the same channels as the findings'
    expect(attr(alert?.body ?? '', 'notification_channels')).toBe('var.dead_letter_notification_channels');
    expect(block(tf, 'output "remediate_dead_letter_subscription"')).toContain(
      `google_pubsub_subscription.${kept?.name}.id`,
    );
  });

  it('runs the public remediate endpoint under an account of its own that may read its secret and publish to the queue, nothing else', () => {
    // Prepare: every IAM member binding of the template naming an account, with what it grants on what
    const endpoint = block(tf, 'resource "google_cloudfunctions2_function" "remediate"');
    const bindings = blocks(tf, 'resource "google_').filter((b) => /_iam_member$/.test(b.name.split('" "')[0] ?? ''));
    const grantsOf = (account: string) =>
      bindings
        .filter((b) => attr(b.body, 'member') === `"serviceAccount:\${google_service_account.${account}.email}"`)
        .map(
          (b) =>
            `${attr(b.body, 'role')} on ${attr(b.body, 'topic') ?? attr(b.body, 'secret_id') ?? attr(b.body, 'service') ?? attr(b.body, 'org_id') ?? 'the project'}`,
        )
        .sort();
    const account = block(tf, 'resource "google_service_account" "endpoint"');
    // Assess: the function open to the internet runs under its own account (the worker under the spoke's,
    // as the queue's test checks)
    expect(attr(block(endpoint, 'service_config'), 'service_account_email')).toBe(
      'google_service_account.endpoint.email',
    );
    expect(attr(account, 'account_id')).toBe('"${var.prefix}-endpoint"');
    // Exactly its secret and the queue: no action role, label read, finding state, invoker or token creator
    // (its logs are stdout, which Cloud Run sends on with no role of the account's)
    expect(grantsOf('endpoint')).toEqual(
      [
        '"roles/pubsub.publisher" on google_pubsub_topic.remediate.name',
        '"roles/secretmanager.secretAccessor" on google_secret_manager_secret.remediate.secret_id',
      ].sort(),
    );
    // The spoke account no longer reads the secret nor publishes to the queue: only the endpoint did
    expect(grantsOf('spoke').filter((g) => /secret|google_pubsub_topic\.remediate\.name/.test(g))).toEqual([]);
    // None of the hub's settings: it forwards nothing (the hub's trust names the ingest and spoke accounts)
    expect(block(block(endpoint, 'service_config'), 'environment_variables').replace(/\s+/g, ' ')).toBe(
      'environment_variables = { CLOSELOOP_REMEDIATE_TOPIC = google_pubsub_topic.remediate.id }',
    );
    expect(attr(block(tf, 'output "endpoint_service_account_email"'), 'value')).toBe(
      'google_service_account.endpoint.email',
    );
  });

  it('sets the environment the spoke requires and outputs the unique id the hub trusts', () => {
    // Prepare
    const env = block(tf, 'hub_environment = {');
    const required = Object.keys(GcpSpokeEnvSchema.shape);
    // Assess
    for (const name of required) expect(env).toContain(name);
    expect(block(tf, 'output "service_account_unique_ids"')).toContain('google_service_account.spoke.unique_id');
    expect(block(tf, 'resource "google_cloudfunctions2_function" "remediate"')).toContain(
      'key        = "CLOSELOOP_REMEDIATE_SECRET"',
    );
    expect(read('functions/gcp/remediate.ts')).toContain("http('remediate'");
  });

  it('is formatted and parses when terraform is installed', async (ctx) => {
    // Prepare
    const has = await run('sh', ['-c', 'command -v terraform']).then(
      () => true,
      () => false,
    );
    if (!has) return ctx.skip('terraform is not installed here: HCL syntax not checked');
    // Act
    const result = await run('terraform', ['fmt', '-check', '-diff', join(root, 'infra/gcp')]).then(
      () => ({ code: 0, out: '' }),
      (e: { code?: unknown; stdout?: unknown }) => ({ code: Number(e.code), out: String(e.stdout) }),
    );
    // Assess
    expect(result.code, result.out).toBe(0);
  });
});
