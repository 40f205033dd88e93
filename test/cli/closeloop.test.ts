import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LocalFolderEvidenceStore } from '../../shared/adapters/evidence/local-folder.js';
import { MemoryDocStore } from '../../shared/adapters/store/memory.js';
import { SqliteDocStore } from '../../shared/adapters/store/sqlite.js';
import { LOCAL_COLLECTIONS, LocalTicketSchema } from '../../shared/adapters/tickets/local.js';
import { appendEvidence } from '../../shared/core/evidence/chain.js';
import { caseIdOf } from '../../shared/core/model/case.js';
import { FindingSchema } from '../../shared/core/model/finding.js';
import { adfToText } from '../../shared/core/tickets/adf.js';
import { caseLabelOf } from '../../shared/core/tickets/content.js';
import { shortHash } from '../../shared/core/util/hash.js';
import { cli } from '../helpers/cli.js';
import { startJiraDouble } from '../helpers/jira-double.js';
import { tempDir } from '../helpers/tmp.js';
import { fixedClock } from '../verify/helpers.js';

const FIXTURES = join(import.meta.dirname, '../fixtures');
const CONFIG = join(import.meta.dirname, '../../examples/config');

describe('closeloop CLI', () => {
  let tmp: ReturnType<typeof tempDir>;
  let home: string;
  beforeEach(() => {
    tmp = tempDir();
    home = join(tmp.dir, 'home');
  });
  afterEach(() => tmp.cleanup());

  it('prints the plan contract as one JSON object when --json is given', async () => {
    // Act
    const r = await cli(['plan', join(FIXTURES, 'guardduty'), '--json', '--config', CONFIG, '--home', home]);
    // Assess
    expect(r.code).toBe(0);
    const body = JSON.parse(r.out) as { results: Array<Record<string, unknown>>; rejected: unknown[] };
    expect(Object.keys(body).sort()).toEqual(['rejected', 'results']);
    expect(body.results.length).toBeGreaterThan(5);
    for (const result of body.results) {
      expect(() => FindingSchema.parse(result.finding)).not.toThrow();
      expect(result.enrichment).toMatchObject({
        owner: expect.any(String),
        environment: expect.any(String),
        provenance: expect.any(Object),
      });
      expect(result.decision).toMatchObject({
        caseKey: expect.any(String),
        remediation: { mode: expect.stringMatching(/^(auto|approval|manual|none)$/) },
      });
      expect(result.decision).toHaveProperty('remediation.action');
    }
  });

  it('writes nothing when planning', async () => {
    // Act
    await cli(['plan', join(FIXTURES, 'scc'), '--config', CONFIG, '--home', home]);
    const cases = await cli(['cases', '--json', '--home', home]);
    // Assess
    expect(JSON.parse(cases.out)).toEqual([]);
  });

  it('writes no evidence and calls no Jira when planning after a run, and the chain stays intact', async () => {
    // Prepare: a run made a chain on disk; Jira is configured in the environment
    await cli(['run', join(FIXTURES, 'scc'), '--config', CONFIG, '--home', home]);
    const files = () => readdirSync(join(home, 'evidence'), { recursive: true }).length;
    const before = files();
    const jira = await startJiraDouble();
    vi.stubEnv('JIRA_BASE_URL', jira.url);
    vi.stubEnv('JIRA_EMAIL', 'bot@example.com');
    vi.stubEnv('JIRA_API_TOKEN', 'test-token-0000');
    vi.stubEnv('JIRA_PROJECT', 'SEC');
    try {
      // Act
      const plan = await cli(['plan', join(FIXTURES, 'guardduty'), '--config', CONFIG, '--home', home]);
      const verify = await cli(['evidence', 'verify', '--home', home]);
      // Assess
      expect(plan.code).toBe(0);
      expect(files()).toBe(before);
      expect(jira.calls).toEqual([]);
      expect(verify.code).toBe(0);
    } finally {
      vi.unstubAllEnvs();
      await jira.close();
    }
  });

  it('says when its tickets did not all go out, how many wait and what Jira last answered', async () => {
    // Prepare: Jira refuses the credentials (a token revoked since the config was written)
    const jira = await startJiraDouble({ authorization: 'Basic someone-else' });
    vi.stubEnv('JIRA_BASE_URL', jira.url);
    vi.stubEnv('JIRA_EMAIL', 'bot@example.com');
    vi.stubEnv('JIRA_API_TOKEN', 'revoked-token-000');
    vi.stubEnv('JIRA_PROJECT', 'SEC');
    try {
      // Act
      const run = await cli(['run', join(FIXTURES, 'guardduty'), '--config', CONFIG, '--home', home]);
      const tickets = await cli(['tickets', '--home', home]);
      // Assess: the run finished, no issue was made, and both commands say why
      expect(run.code).toBe(0);
      expect(jira.issues.size).toBe(0);
      expect(run.err).toMatch(/\d+ ticket requests wait in the outbox \(the oldest since .*: .*401/);
      expect(run.err).toContain('the next run sends them');
      expect(tickets.out).toMatch(/the oldest waits since .*, tried (once|\d+ times): .*401/);
    } finally {
      vi.unstubAllEnvs();
      await jira.close();
    }
  });

  it('exits 3, not 1 (some inputs rejected), when the command fails', async () => {
    // Prepare: the home is a file, so the store cannot be opened
    const file = join(tmp.dir, 'not-a-folder');
    writeFileSync(file, 'x');
    // Act
    const r = await cli(['run', join(FIXTURES, 'scc'), '--config', CONFIG, '--home', file]);
    // Assess
    expect(r.code).toBe(3);
    expect(r.err).toContain('closeloop run:');
  });

  it('exits 1 and names input, source, field and reason when some inputs are rejected', async () => {
    // Prepare
    const dir = join(tmp.dir, 'in');
    mkdirSync(dir);
    writeFileSync(join(dir, 'a.json'), '{"source": "aws.guardduty", "detail-type": "GuardDuty Finding", "detail": {');
    // Act
    const r = await cli([
      'run',
      dir,
      join(FIXTURES, 'securityhub/s3.8-failed.eventbridge.json'),
      '--json',
      '--config',
      CONFIG,
      '--home',
      home,
    ]);
    // Assess
    expect(r.code).toBe(1);
    const body = JSON.parse(r.out) as {
      rejected: Array<{ input: string; source: string; path: string; reason: string }>;
      cases: unknown[];
    };
    expect(body.cases).toHaveLength(1);
    expect(body.rejected).toHaveLength(1);
    expect(body.rejected[0]?.input).toContain('a.json');
    const letters = await cli(['deadletters', '--json', '--home', home]);
    expect(JSON.parse(letters.out)).toHaveLength(1);
  });

  it('exits 2 on usage errors', async () => {
    expect((await cli(['frobnicate'])).code).toBe(2);
    expect((await cli(['run'])).code).toBe(2);
    expect((await cli(['run', '--no-such-flag'])).code).toBe(2);
    expect((await cli(['run', join(tmp.dir, 'missing.json')])).code).toBe(2);
  });

  it("uses the store's own config on later commands that name none, and says so", async () => {
    // Prepare: the run that made the store named its config
    await cli(['run', join(FIXTURES, 'guardduty'), '--config', CONFIG, '--home', home]);
    const named = await cli(['plan', join(FIXTURES, 'guardduty'), '--json', '--config', CONFIG, '--home', home]);
    // Act: what `npm start` suggests next, without --config
    const plan = await cli(['plan', join(FIXTURES, 'guardduty'), '--json', '--home', home]);
    const exceptions = await cli(['exceptions', '--json', '--home', home]);
    // Assess: the registry's owners and the file's exceptions, not the built-in defaults (every owner unknown)
    const owners = (r: { out: string }) =>
      (JSON.parse(r.out) as { results: Array<{ enrichment: { owner: string; unowned: boolean } }> }).results.map(
        (x) => x.enrichment,
      );
    expect(plan.code).toBe(0);
    expect(owners(plan)).toEqual(owners(named));
    expect(owners(plan).some((e) => !e.unowned)).toBe(true);
    expect(plan.err).toContain(`config: ${CONFIG} (this store's`);
    expect((JSON.parse(exceptions.out) as Array<{ id: string }>).map((e) => e.id)).toContain('EXC-001');
  });

  it('remembers the config of commands that write the store, not of a plan trying another', async () => {
    // Prepare
    const other = join(tmp.dir, 'other-config');
    mkdirSync(other);
    await cli(['run', join(FIXTURES, 'scc'), '--config', CONFIG, '--home', home]);
    // Act
    const tried = await cli(['plan', join(FIXTURES, 'scc'), '--config', other, '--home', home]);
    const after = await cli(['cases', '--home', home]);
    // Assess
    expect(tried.code).toBe(0);
    expect(JSON.parse(readFileSync(join(home, 'config.json'), 'utf8'))).toEqual({ configDir: CONFIG });
    expect(after.err).toContain(`config: ${CONFIG}`);
  });

  it('does not remember a --config folder that is not there (the command fails, the store keeps its config)', async () => {
    // Prepare
    await cli(['run', join(FIXTURES, 'scc'), '--config', CONFIG, '--home', home]);
    // Act
    const typo = await cli(['run', join(FIXTURES, 'scc'), '--config', `${CONFIG}-typo`, '--home', home]);
    const after = await cli(['cases', '--home', home]);
    // Assess
    expect(typo.code).toBe(2);
    expect(after.code).toBe(0);
    expect(after.err).toContain(`config: ${CONFIG} (this store's`);
  });

  it('refuses to fall back to the defaults when the remembered config folder is gone', async () => {
    // Prepare
    const gone = join(tmp.dir, 'moved-away');
    mkdirSync(gone);
    await cli(['run', join(FIXTURES, 'scc'), '--config', gone, '--home', home]);
    rmSync(gone, { recursive: true });
    // Act
    const r = await cli(['approve', 'abc123', '--by', 'ana', '--home', home]);
    // Assess: a usage error naming the folder, nothing decided under another policy
    expect(r.code).toBe(2);
    expect(r.err).toContain(`--config ${gone}, which is no longer a folder`);
  });

  it('shows one case to a person as a card, and as the stored case with --json', async () => {
    // Prepare
    await cli(['run', join(FIXTURES, 'guardduty'), '--config', CONFIG, '--home', home]);
    const listed = JSON.parse((await cli(['cases', '--json', '--home', home])).out) as Array<{
      key: string;
      status: string;
      statusReason: string;
      enrichment: { owner: string; provenance: { owner?: { detail: string } } };
      remediation: { action: string | null; gates: Array<{ gate: string; reason: string }> };
      ticket: { key: string } | null;
    }>;
    const c = listed.find((x) => x.remediation.action !== null && x.ticket !== null);
    if (!c?.ticket) throw new Error('the fixtures make a ticketed case with an action');
    // Act
    const card = await cli(['cases', c.key, '--home', home]);
    const json = await cli(['cases', c.key, '--json', '--home', home]);
    // Assess
    expect(card.code).toBe(0);
    expect(card.out).not.toMatch(/^\s*[{[]/);
    expect(card.out).toContain(`status       ${c.status}: ${c.statusReason}`);
    expect(card.out).toContain(`owner        ${c.enrichment.owner}  (${c.enrichment.provenance.owner?.detail}`);
    for (const g of c.remediation.gates) expect(card.out).toContain(`${g.gate}: ${g.reason}`);
    expect(card.out).toMatch(new RegExp(`ticket\\s+${c.ticket.key} \\(local, open\\)`));
    expect((JSON.parse(json.out) as { key: string }).key).toBe(c.key);
  });

  it("finds a case by any id closeloop prints: the short id, the source note's and the ticket label's", async () => {
    // Prepare
    await cli(['run', join(FIXTURES, 'scc'), '--config', CONFIG, '--home', home]);
    const [c] = JSON.parse((await cli(['cases', '--json', '--home', home])).out) as Array<{ key: string }>;
    if (!c) throw new Error('the fixtures make a case');
    // Act
    const shown = await Promise.all(
      [caseIdOf(c.key), shortHash(c.key), caseLabelOf(c.key)].map((ref) =>
        cli(['cases', ref, '--json', '--home', home]),
      ),
    );
    // Assess
    for (const r of shown) expect((JSON.parse(r.out) as { key: string }).key).toBe(c.key);
  });

  it('puts what the source says in the ticket: its explanation, what to do and its own page', async () => {
    // Prepare: a Security Hub control finding with a description, a recommendation and a console page
    const event = JSON.parse(readFileSync(join(FIXTURES, 'securityhub/s3.8-failed.eventbridge.json'), 'utf8')) as {
      detail: { findings: Array<Record<string, unknown>> };
    };
    const [f] = event.detail.findings;
    if (!f) throw new Error('the fixture holds a finding');
    const file = join(tmp.dir, 'sh.json');
    writeFileSync(file, JSON.stringify(event));
    // Act
    const r = await cli(['run', file, '--config', CONFIG, '--home', home]);
    const store = await SqliteDocStore.open(join(home, 'closeloop.db'));
    const tickets = (await store.list(LOCAL_COLLECTIONS.tickets)).map((d) => LocalTicketSchema.parse(d.value));
    await store.close();
    // Assess
    expect(r.code).toBe(0);
    expect(tickets).toHaveLength(1);
    const body = tickets[0]?.description;
    const text = adfToText(body);
    expect(text).toContain(String(f.Description));
    expect(text).toContain(
      `What to do\n${(f.Remediation as { Recommendation: { Text: string } }).Recommendation.Text}`,
    );
    expect(text).toContain('At the source: open in Security Hub');
    expect(JSON.stringify(body)).toMatch(/"href":"https:\/\/console\.aws\.amazon\.com\/securityhub\//);
  });

  it('reads JSON lines from several files and prints the case table', async () => {
    // Prepare
    const lines = join(tmp.dir, 'events.jsonl');
    const a = JSON.stringify(JSON.parse(readFileSync(join(FIXTURES, 'scc/open-firewall.notification.json'), 'utf8')));
    writeFileSync(lines, `${a}\n\n${a}\n`);
    // Act
    const r = await cli(['run', lines, '--config', CONFIG, '--home', home]);
    // Assess
    expect(r.code).toBe(0);
    expect(r.out).toContain('OPEN_FIREWALL');
    expect(r.out).toMatch(/2 findings: 1 new cases, 0 updated, 1 unchanged/);
  });

  it('keeps control characters of an edited evidence record out of the terminal when evidence verify names it', async () => {
    // Prepare: a record whose case key holds DEL and the C1 CSI (JSON.stringify escapes neither), then edited
    const evidence = new LocalFolderEvidenceStore(join(home, 'evidence'));
    const { record } = await appendEvidence(
      { store: new MemoryDocStore(), evidence, clock: fixedClock() },
      {
        caseKey: 'case\u009b2J\u007f',
        findingIds: [],
        owner: null,
        step: 'verify',
        actor: { kind: 'function', id: 'closeloop:test' },
        eventId: null,
        at: '2026-11-20T10:00:00.000Z',
        summary: 'verified',
        calls: [],
        verdict: 'verified',
        detail: {},
      },
    );
    const file = evidence.pathOf(record.hash);
    writeFileSync(file, readFileSync(file, 'utf8').replace('"verified"', '"edited"'));
    // Act
    const r = await cli(['evidence', 'verify', '--home', home]);
    // Assess
    expect(r.code).toBe(1);
    expect(r.out).toContain('evidence chain BROKEN');
    // biome-ignore lint/suspicious/noControlCharactersInRegex: the test looks for control characters
    expect(r.out).not.toMatch(/[\u0000-\u001f\u007f-\u009f]/);
  });
});
