import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { S3ObjectLockEvidenceStore } from '../../../shared/adapters/evidence/s3-object-lock.js';
import { sealRecord } from '../../../shared/core/evidence/record.js';
import { awsError } from '../../helpers/action-context.js';
import { fixedClock } from '../../verify/helpers.js';

const s3 = mockClient(S3Client);
const record = sealRecord({
  v: 1,
  seq: 1,
  caseSeq: 1,
  recordedAt: '2026-11-20T10:00:00.000Z',
  prevCaseHash: null,
  prevGlobalHash: null,
  caseKey: 'case-a',
  findingIds: [],
  owner: null,
  step: 'verify',
  actor: { kind: 'function', id: 'closeloop:verify' },
  eventId: null,
  at: '2026-11-20T10:00:00.000Z',
  summary: 'verified',
  calls: [],
  verdict: 'verified',
  detail: {},
});

describe('S3ObjectLockEvidenceStore', () => {
  const store = () =>
    new S3ObjectLockEvidenceStore({
      client: new S3Client({}),
      bucket: 'closeloop-evidence-111122223333',
      retentionDays: 10,
      clock: fixedClock('2026-11-20T10:00:00.000Z'),
    });
  beforeEach(() => s3.reset());

  it('writes once under compliance-mode Object Lock with a SHA-256 checksum when a record is put', async () => {
    // Prepare
    s3.on(PutObjectCommand).resolves({});
    const body = `${JSON.stringify(record)}\n`;
    // Act
    const out = await store().put(record);
    // Assess
    expect(out).toBe('stored');
    expect(s3).toHaveReceivedCommandWith(PutObjectCommand, {
      Bucket: 'closeloop-evidence-111122223333',
      Key: `evidence/${record.hash}.json`,
      Body: body,
      ContentType: 'application/json',
      ChecksumSHA256: createHash('sha256').update(body).digest('base64'),
      ObjectLockMode: 'COMPLIANCE',
      ObjectLockRetainUntilDate: new Date('2026-11-30T10:00:00.000Z'),
      IfNoneMatch: '*',
    });
  });

  it('treats a 412 from If-None-Match as the record already stored', async () => {
    // Prepare
    s3.on(PutObjectCommand).rejects(awsError('PreconditionFailed', 412));
    // Act / Assess
    expect(await store().put(record)).toBe('exists');
  });

  it('classifies AccessDenied as denied when the bucket refuses the write', async () => {
    // Prepare
    s3.on(PutObjectCommand).rejects(awsError('AccessDenied', 403));
    // Act / Assess
    await expect(store().put(record)).rejects.toMatchObject({ kind: 'denied' });
  });

  it('lists every page and returns records in global order', async () => {
    // Prepare
    s3.on(ListObjectsV2Command, { ContinuationToken: undefined })
      .resolves({ Contents: [{ Key: `evidence/${record.hash}.json` }], IsTruncated: true, NextContinuationToken: 't2' })
      .on(ListObjectsV2Command, { ContinuationToken: 't2' })
      .resolves({ Contents: [{ Key: 'evidence/README.txt' }], IsTruncated: false });
    const body = Object.assign(Readable.from([JSON.stringify(record)]), {
      transformToString: async () => JSON.stringify(record),
      transformToByteArray: async () => new TextEncoder().encode(JSON.stringify(record)),
      transformToWebStream: () => new ReadableStream(),
    });
    s3.on(GetObjectCommand).resolves({ Body: body });
    // Act
    const all = await store().listAll();
    // Assess
    expect(all).toEqual([{ key: record.hash, raw: record }]);
    expect(s3).toReceiveCommandTimes(ListObjectsV2Command, 2);
  });
});
