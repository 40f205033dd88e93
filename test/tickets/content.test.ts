import { describe, expect, it } from 'vitest';
import { MemoryDocStore } from '../../shared/adapters/store/memory.js';
import {
  createTicketSink,
  JiraTicketSink,
  jiraConfigFromEnv,
  LocalTicketSink,
} from '../../shared/adapters/tickets/index.js';
import { retryAfterSeconds } from '../../shared/adapters/tickets/jira.js';
import { AdapterError } from '../../shared/core/errors.js';
import { adfToText } from '../../shared/core/tickets/adf.js';
import {
  CASE_LABEL_PATTERN,
  caseLabelOf,
  consoleLink,
  draftForCase,
  dueDateFor,
  priorityFor,
  remediationComment,
  summaryFor,
} from '../../shared/core/tickets/content.js';
import { withRetry } from '../../shared/core/util/retry.js';
import { makeCase, policy, recordingSleep, T0 } from './helpers.js';

describe('ticket content', () => {
  it('writes the summary as [SEVERITY] short type on resource (environment) and caps its length', () => {
    // Prepare
    const c = makeCase({ severity: 'high' });
    const long = makeCase({ bucket: 'b'.repeat(200) });
    // Act
    const s = summaryFor(c, policy());
    const capped = summaryFor(long, policy({ summaryMaxLength: 60 }));
    // Assess
    expect(s).toBe('[HIGH] BucketBlockPublicAccessDisabled on logs-111122223333-1 (prod)');
    expect(capped).toHaveLength(60);
    expect(capped.endsWith('…')).toBe(true);
  });

  it('derives a hex-only label from the case key whatever the key holds', () => {
    // Act
    const label = caseLabelOf('aws|" OR project = SEC OR summary ~ "|x');
    // Assess
    expect(label).toMatch(CASE_LABEL_PATTERN);
    expect(label).toBe(caseLabelOf('aws|" OR project = SEC OR summary ~ "|x'));
  });

  it('takes priority from severity × environment and the due date from the SLA table', () => {
    // Prepare
    const p = policy({ slaDays: { critical: 2, high: 7, medium: 30, low: 90, informational: 180 } });
    const now = new Date(T0);
    // Assess
    expect(priorityFor('critical', 'prod', p)).toBe('Highest');
    expect(priorityFor('critical', 'dev', p)).toBe('High');
    expect(priorityFor('low', 'staging', p)).toBe('Lowest');
    expect(dueDateFor('critical', now, p)).toBe('2026-03-03');
    expect(dueDateFor('high', now, policy())).toBe('2026-03-08');
    expect(dueDateFor('medium', now, policy())).toBe('2026-03-31');
    expect(dueDateFor('low', now, policy())).toBe('2026-05-30');
  });

  it('links each provider’s console', () => {
    // Prepare
    const base = makeCase();
    // Assess
    expect(consoleLink(base)).toBe('https://s3.console.aws.amazon.com/s3/buckets/logs-111122223333-1');
    expect(consoleLink({ ...base, resourceId: 'arn:aws:iam::111122223333:user/deploy' })).toBe(
      'https://console.aws.amazon.com/iam/home#/users/deploy',
    );
    expect(
      consoleLink({ ...base, resourceId: 'arn:aws:ec2:eu-west-1:111122223333:instance/i-0000000000000000a' }),
    ).toBe(
      'https://eu-west-1.console.aws.amazon.com/ec2/home?region=eu-west-1#InstanceDetails:instanceId=i-0000000000000000a',
    );
    const azureId =
      '/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/st0';
    expect(consoleLink({ ...base, provider: 'azure', resourceId: azureId })).toBe(
      `https://portal.azure.com/#@/resource${azureId}`,
    );
    expect(
      consoleLink({ ...base, provider: 'gcp', account: 'proj-1', resourceId: '//storage.googleapis.com/bucket-1' }),
    ).toBe('https://console.cloud.google.com/storage/browser/bucket-1?project=proj-1');
  });

  it('describes what, where, whose, how bad, compliance, remediation plan and exception in ADF', () => {
    // Prepare
    const c = makeCase({}, { occurrences: 4, evidenceHead: 'c'.repeat(64) });
    // Act
    const draft = draftForCase(c, policy(), { now: new Date(T0), assigneeId: undefined });
    const text = adfToText(draft.description);
    // Assess
    expect(draft.description.type).toBe('doc');
    for (const expected of [
      'Finding type: Policy:S3/BucketBlockPublicAccessDisabled',
      'Source: guardduty',
      'AWS account: 111122223333',
      'Region: us-east-1',
      'Resource: arn:aws:s3:::logs-111122223333-1',
      'Owner: alice@example.com',
      'How the owner was found: owner from tag `owner` on the resource',
      'Environment: prod (environment from account 111122223333 in the registry)',
      'Severity: high',
      'Priority: High',
      `First seen: ${T0}`,
      'Occurrences: 4',
      'control S3.8',
      's3.block-public-access — mode approval, state awaiting-approval',
      'turn on all four Block Public Access flags on logs-111122223333-1 s3:PutPublicAccessBlock',
      'Exception\nnone',
      `Evidence record: ${'c'.repeat(64)}`,
    ]) {
      expect(text).toContain(expected);
    }
    expect(JSON.stringify(draft.description)).toContain(
      '"href":"https://s3.console.aws.amazon.com/s3/buckets/logs-111122223333-1"',
    );
    expect(draft.components).toEqual(['triage']);
    expect(draft.project).toBe('SEC');
  });

  it('says an owner a failed lookup left to triage is unknown, not that none was found', () => {
    // Prepare: the live lookup failed and nothing in the registry names an owner
    const base = makeCase({ owner: 'secops-triage@acme.example' });
    const c = {
      ...base,
      enrichment: {
        ...base.enrichment,
        unowned: true,
        complete: false,
        provenance: { ...base.enrichment.provenance, owner: { via: 'triage' as const, detail: 'owner unknown: …' } },
        warnings: ['live tag lookup failed for arn:aws:s3:::logs-111122223333-1: ThrottlingException'],
      },
    };
    // Act
    const text = adfToText(draftForCase(c, policy(), { now: new Date(T0), assigneeId: undefined }).description);
    // Assess
    expect(text).toContain(
      'Owner: secops-triage@acme.example (owner unknown: the resource’s own tags could not be read; triage, unassigned)',
    );
    expect(text).not.toContain('no owner found');
  });

  it("links the source's page only on a cloud console; another host is shown, not linked", () => {
    // Prepare: SCC's externalUri and Defender's links come from the finding (a third-party source names any)
    const c = makeCase();
    const draft = (href: string) =>
      draftForCase(c, policy(), {
        now: new Date(T0),
        assigneeId: 'acc-1',
        finding: { product: 'Security Command Center', description: 'd', link: href },
      }).description;
    // Act
    const console = JSON.stringify(draft('https://console.cloud.google.com/security/command-center/findings?x=1'));
    const other = draft('https://console.cloud.google.com.evil.example/x');
    // Assess
    expect(console).toContain('"href":"https://console.cloud.google.com/security/command-center/findings?x=1"');
    expect(JSON.stringify(other)).not.toContain('"href":"https://console.cloud.google.com.evil.example');
    expect(adfToText(other)).toContain('At the source: https://console.cloud.google.com.evil.example/x');
  });

  it("keeps a source's long explanation and recommendation within what Jira's description takes", () => {
    // Prepare: SCC bounds neither; Jira refuses a description over 32,767 characters (the ticket would be lost)
    const long = Array.from({ length: 20 }, (_, i) => `paragraph ${i} ${'x'.repeat(3990)}`).join('\n\n');
    // Act
    const draft = draftForCase(makeCase(), policy(), {
      now: new Date(T0),
      assigneeId: 'acc-1',
      finding: { product: 'Security Command Center', description: long, recommendation: long },
    });
    // Assess
    expect(JSON.stringify(draft.description).length).toBeLessThan(32_767);
    expect(adfToText(draft.description)).toContain('paragraph 0 xxx');
  });

  it('keeps bidirectional controls from a finding out of the ticket (they reorder what Jira shows)', () => {
    // Prepare: a title and an explanation carrying a right-to-left override
    const c = makeCase({}, { title: 'Bucket acme-\u202edorp\u202c is public' });
    // Act
    const text = adfToText(
      draftForCase(c, policy(), {
        now: new Date(T0),
        assigneeId: 'acc-1',
        finding: { product: 'Security Hub', description: 'see \u2067owner\u2069 notes' },
      }).description,
    );
    // Assess
    expect(text).not.toMatch(/[\u202a-\u202e\u2066-\u2069]/);
    expect(text).toContain('Bucket acme- dorp is public');
  });

  it('names the approval transition beside the label when the workflow has one', () => {
    // Act
    const text = adfToText(
      remediationComment(makeCase(), 'awaiting-approval', 'closeloop', policy({ approvalTransition: 'Approve fix' })),
    );
    // Assess
    expect(text).toContain('add the label closeloop-approve to this ticket or move it through Approve fix.');
  });

  it('names the action that applied, not the one decide chose since, in an apply state (description and comments)', () => {
    // Prepare: test.close-bucket applied, then rolled back; decide chooses s3.block-public-access now
    const base = makeCase();
    const applied = {
      ...base,
      remediation: { ...base.remediation, state: 'applied' as const, applyAction: 'test.close-bucket' },
    };
    const rolledBack = { ...applied, remediation: { ...applied.remediation, state: 'rolled-back' as const } };
    const replanned = { ...applied, remediation: { ...applied.remediation, state: 'awaiting-approval' as const } };
    // Act
    const description = adfToText(
      draftForCase(applied, policy(), { now: new Date(T0), assigneeId: 'acc-1' }).description,
    );
    const comment = adfToText(remediationComment(rolledBack, 'rolled-back', 'bob', policy()));
    const waiting = adfToText(remediationComment(replanned, 'awaiting-approval', 'closeloop', policy()));
    // Assess
    expect(description).toContain('test.close-bucket — state applied (decide now chooses s3.block-public-access, mode');
    expect(comment).toContain('test.close-bucket — state rolled-back (decide now chooses s3.block-public-access');
    // A plan of decide's current action waits: its state is that action's.
    expect(waiting).toContain('s3.block-public-access — mode');
    expect(waiting).not.toContain('test.close-bucket');
  });

  it('puts nothing after a value whose optional suffix is empty (the owned owner, the environment)', () => {
    // Prepare: an owned case, whose owner line has no "(no owner found: triage)"
    const c = makeCase();
    // Act
    const lines = adfToText(draftForCase(c, policy(), { now: new Date(T0), assigneeId: 'acc-1' }).description).split(
      '\n',
    );
    // Assess: the line is the owner alone (an empty suffix was a text node of its own, shown as "-")
    expect(lines).toContain('Owner: alice@example.com');
    expect(lines.filter((l) => /-$/.test(l))).toEqual([]);
  });
});

describe('withRetry', () => {
  it('waits what Retry-After says, retries transient errors with capped backoff and stops at maxAttempts', async () => {
    // Prepare
    const { sleep, waits } = recordingSleep();
    let calls = 0;
    // Act
    const run = withRetry(
      async () => {
        calls++;
        throw calls === 1
          ? new AdapterError('throttled', '429', { retryAfterSeconds: 3 })
          : new AdapterError('transient', '503');
      },
      { maxAttempts: 4, baseDelayMs: 100, maxDelayMs: 10_000, sleep, random: () => 0.999 },
    );
    // Assess
    await expect(run).rejects.toThrow('503');
    expect(calls).toBe(4);
    expect(waits).toEqual([3_000, 199, 399]);
  });

  it('does not retry a 4xx about the request', async () => {
    // Prepare
    const { sleep, waits } = recordingSleep();
    let calls = 0;
    // Act
    const run = withRetry(
      async () => {
        calls++;
        throw new AdapterError('invalid', 'HTTP 400 priority: not valid');
      },
      { maxAttempts: 5, baseDelayMs: 100, maxDelayMs: 1_000, sleep },
    );
    // Assess
    await expect(run).rejects.toThrow('priority');
    expect(calls).toBe(1);
    expect(waits).toEqual([]);
  });

  it('reads Retry-After in seconds or as a date, else X-RateLimit-Reset', () => {
    const now = Date.parse(T0);
    expect(retryAfterSeconds({ 'Retry-After': '7' }, now)).toBe(7);
    expect(retryAfterSeconds({ 'retry-after': new Date(now + 4_000).toUTCString() }, now)).toBe(4);
    expect(retryAfterSeconds({ 'x-ratelimit-reset': new Date(now + 9_000).toISOString() }, now)).toBe(9);
    expect(retryAfterSeconds({}, now)).toBeUndefined();
  });
});

describe('ticket configuration from the environment', () => {
  it('uses the local sink when Jira is not configured and Jira when it is', () => {
    // Prepare
    const store = new MemoryDocStore();
    // Act
    const local = createTicketSink({}, store);
    const jira = createTicketSink(
      {
        JIRA_BASE_URL: 'https://example.atlassian.net',
        JIRA_EMAIL: 'bot@example.com',
        JIRA_API_TOKEN: 'tok-secret-1',
        JIRA_PROJECT: 'SEC',
      },
      store,
    );
    const bearer = jiraConfigFromEnv({
      JIRA_BASE_URL: 'https://example.atlassian.net',
      JIRA_BEARER_TOKEN: 'oauth-secret',
      JIRA_PROJECT: 'OPS',
    });
    // Assess
    expect(local).toBeInstanceOf(LocalTicketSink);
    expect(jira).toBeInstanceOf(JiraTicketSink);
    expect(bearer?.auth).toEqual({ kind: 'bearer', token: 'oauth-secret' });
  });

  it('refuses a half configuration or a bad project key without echoing the token', () => {
    // Act
    const half = () =>
      jiraConfigFromEnv({ JIRA_BASE_URL: 'https://example.atlassian.net', JIRA_EMAIL: 'bot@example.com' });
    const badProject = () =>
      jiraConfigFromEnv({
        JIRA_BASE_URL: 'https://example.atlassian.net',
        JIRA_BEARER_TOKEN: 'very-secret-token',
        JIRA_PROJECT: 'sec" OR 1=1',
      });
    // Assess
    expect(half).toThrow('JIRA_API_TOKEN');
    expect(badProject).toThrow('project');
    expect(badProject).not.toThrow('very-secret-token');
  });

  it('refuses a Jira URL that holds a user name or password, without echoing it', () => {
    // Act
    const withPassword = () =>
      jiraConfigFromEnv({
        JIRA_BASE_URL: 'https://bot:url-secret-1@example.atlassian.net',
        JIRA_BEARER_TOKEN: 'very-secret-token',
        JIRA_PROJECT: 'SEC',
      });
    // Assess: the URL is logged and put into ticket links; its credentials would go with it
    expect(withPassword).toThrow('baseUrl: must not hold a user name or password');
    expect(withPassword).not.toThrow('url-secret-1');
  });
});
