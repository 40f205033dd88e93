import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { FindingSchema } from '../../../shared/core/model/finding.js';
import { normalize } from '../../../shared/core/pipeline/normalize.js';
import { detect } from '../../../shared/core/sources/detect.js';
import { loadFixture } from '../../helpers/fixtures.js';

const FIXTURES = fileURLToPath(new URL('../../fixtures/', import.meta.url));
const SOURCES = ['guardduty', 'securityhub', 'defender', 'scc'] as const;

describe('source detection', () => {
  it('normalizes every documented fixture to schema-valid findings with no rejection', () => {
    // Prepare
    const files = SOURCES.flatMap((dir) => readdirSync(`${FIXTURES}${dir}`).map((f) => `${dir}/${f}`));
    // Act + Assess
    expect(files.length).toBeGreaterThanOrEqual(34);
    for (const file of files) {
      const out = normalize(loadFixture(file), file);
      expect(out.rejected, file).toEqual([]);
      expect(out.findings.length, file).toBeGreaterThan(0);
      for (const f of out.findings) {
        expect(() => FindingSchema.parse(f), file).not.toThrow();
        expect(f.source, file).toBe(file.split('/')[0]);
      }
    }
  });

  it('unwraps each channel to the expected payload format and path', () => {
    // Act
    const cases = [
      ['guardduty/s3-bucket-anonymous-access.eventbridge.json', 'guardduty', 'detail'],
      ['guardduty/get-findings.pascal.json', 'guardduty', 'Findings[0]'],
      ['guardduty/get-findings.rest.json', 'guardduty', 'findings[0]'],
      ['securityhub/s3.8-failed.eventbridge.json', 'asff', 'detail.findings[0]'],
      ['securityhub/bare.json', 'asff', ''],
      ['securityhub/findings-list.json', 'asff', 'Findings[0]'],
      ['defender/assessment-storage-public-access.json', 'defender-assessment', ''],
      ['defender/alert.arm.json', 'defender-alert', ''],
      ['defender/alert-storage-open-acl.workflow-automation.json', 'defender-alert', ''],
      ['defender/eventgrid-envelope.json', 'defender-alert', '[0].data'],
      ['defender/eventgrid-cloudevent.json', 'defender-assessment', 'data'],
      ['scc/public-bucket-acl.notification.json', 'scc', ''],
      ['scc/public-bucket-acl.pubsub-push.json', 'scc', 'message.data'],
      ['scc/public-bucket-acl.cloudevent.json', 'scc', 'data.message.data'],
    ] as const;
    // Assess
    for (const [file, format, path] of cases) {
      const { units, rejected } = detect(loadFixture(file), file);
      expect(rejected, file).toEqual([]);
      expect(units[0], file).toMatchObject({ format, path });
    }
  });

  it('handles an array of several CloudEvents and Event Grid events, rejecting foreign items individually', () => {
    // Prepare
    const ce = loadFixture('scc/public-bucket-acl.cloudevent.json');
    const grid = loadFixture('defender/eventgrid-envelope.json');
    const gridItem = Array.isArray(grid) ? grid[0] : undefined;
    // Act
    const out = normalize([ce, gridItem, { foo: 1 }, 'x'], 'mixed.json');
    // Assess
    expect(out.findings.map((f) => f.source)).toEqual(['scc', 'defender']);
    expect(out.rejected.map((r) => r.path)).toEqual(['[2]', '[3]']);
  });

  it('rejects an EventBridge GuardDuty event of another detail-type and a Security Hub event without findings', () => {
    // Act
    const gd = normalize(
      { source: 'aws.guardduty', 'detail-type': 'GuardDuty Malware Protection Object Scan Result', detail: {} },
      'a',
    );
    const sh = normalize(
      { source: 'aws.securityhub', 'detail-type': 'Security Hub Findings - Imported', detail: {} },
      'b',
    );
    // Assess
    expect(gd.rejected[0]).toMatchObject({ source: 'guardduty', path: 'detail-type' });
    expect(sh.rejected[0]).toMatchObject({ source: 'securityhub', path: 'detail.findings' });
  });

  it('rejects items of an AWS list that are neither ASFF nor GuardDuty', () => {
    // Act
    const out = normalize({ Findings: [{ Id: 'x' }, 3] }, 'l');
    // Assess
    expect(out.rejected.map((r) => [r.path, r.source])).toEqual([
      ['Findings[0]', 'unknown'],
      ['Findings[1]', 'unknown'],
    ]);
  });
});
