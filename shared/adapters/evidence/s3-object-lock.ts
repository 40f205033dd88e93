/**
 * Evidence in an S3 bucket with Object Lock in compliance mode (the AWS deployment): each record is
 * one object `<prefix><hash>.json`, written with `If-None-Match: *` (never overwritten), a SHA-256
 * checksum S3 verifies on receipt, and a retention date before which nobody — root included — can
 * delete or overwrite it.
 *
 * @see https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-lock.html
 * @see https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html
 */
import { createHash } from 'node:crypto';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { AdapterError, kindOfHttpStatus } from '../../core/errors.js';
import { type EvidenceStore, orderStored, type StoredEvidence, storedCaseKey } from '../../core/evidence/ports.js';
import type { EvidenceRecord } from '../../core/evidence/record.js';
import type { Clock } from '../../core/ports.js';

export interface S3EvidenceOptions {
  client: Pick<S3Client, 'send'>;
  bucket: string;
  /** Key prefix, e.g. `evidence/` (kept as given). */
  prefix?: string;
  /** Days each record is locked (policy `verification.evidence.retentionDays`). */
  retentionDays: number;
  clock: Clock;
}

const DAY_MS = 86_400_000;

export class S3ObjectLockEvidenceStore implements EvidenceStore {
  private readonly prefix: string;

  constructor(private readonly opts: S3EvidenceOptions) {
    this.prefix = opts.prefix ?? 'evidence/';
  }

  keyOf(hash: string): string {
    return `${this.prefix}${hash}.json`;
  }

  async put(record: EvidenceRecord): Promise<'stored' | 'exists'> {
    const body = `${JSON.stringify(record)}\n`;
    try {
      await this.opts.client.send(
        new PutObjectCommand({
          Bucket: this.opts.bucket,
          Key: this.keyOf(record.hash),
          Body: body,
          ContentType: 'application/json',
          ChecksumSHA256: createHash('sha256').update(body, 'utf8').digest('base64'),
          ObjectLockMode: 'COMPLIANCE',
          ObjectLockRetainUntilDate: new Date(this.opts.clock.now().getTime() + this.opts.retentionDays * DAY_MS),
          IfNoneMatch: '*',
        }),
      );
      return 'stored';
    } catch (e) {
      // 412: the key exists (same key = same hash = same record); 409: a concurrent write of it is in flight.
      if (statusOf(e) === 412 || statusOf(e) === 409) return 'exists';
      throw classify(e, `put evidence ${record.hash}`);
    }
  }

  async get(hash: string): Promise<StoredEvidence | undefined> {
    try {
      const out = await this.opts.client.send(
        new GetObjectCommand({ Bucket: this.opts.bucket, Key: this.keyOf(hash) }),
      );
      return { key: hash, raw: parse((await out.Body?.transformToString('utf-8')) ?? '') };
    } catch (e) {
      if (statusOf(e) === 404) return undefined;
      throw classify(e, `get evidence ${hash}`);
    }
  }

  async listByCase(caseKey: string): Promise<StoredEvidence[]> {
    // Records are addressed by hash only; a case index would be a second, mutable object. Listing all
    // is fine for audits and `evidence show`, which are rare.
    return orderStored(
      (await this.listAll()).filter((s) => storedCaseKey(s) === caseKey),
      'caseSeq',
    );
  }

  async listAll(): Promise<StoredEvidence[]> {
    const out: StoredEvidence[] = [];
    let token: string | undefined;
    do {
      const page = await this.opts.client.send(
        new ListObjectsV2Command({
          Bucket: this.opts.bucket,
          Prefix: this.prefix,
          ...(token ? { ContinuationToken: token } : {}),
        }),
      );
      for (const o of page.Contents ?? []) {
        const m = o.Key ? /([0-9a-f]{64})\.json$/.exec(o.Key) : null;
        const hash = m?.[1];
        if (!hash) continue;
        const got = await this.get(hash);
        if (got) out.push(got);
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return orderStored(out, 'seq');
  }
}

function statusOf(e: unknown): number | undefined {
  if (!e || typeof e !== 'object' || !('$metadata' in e)) return undefined;
  const meta = e.$metadata;
  return meta && typeof meta === 'object' && 'httpStatusCode' in meta && typeof meta.httpStatusCode === 'number'
    ? meta.httpStatusCode
    : undefined;
}

/**
 * S3's reading of a status, after a 403 and the error's name: a 4xx is invalid but for 408 and 429; 5xx and no
 * status at all (a timeout or a reset connection after the SDK's own retries) are transient, as everywhere. No
 * status and 408 were read as invalid before: the evidence function logged a write that timed out as failed
 * for good and left it out of RecordsRetryable, though the message was delivered again and went through. The
 * callers answer a 404 (get) and a 409/412 (put) before.
 */
const S3_STATUS_KINDS = { '4xx': 'invalid', 408: 'transient', 429: 'throttled' } as const;

function classify(e: unknown, what: string): AdapterError {
  const status = statusOf(e);
  const name = e instanceof Error ? e.name : '';
  const kind =
    status === 403 || name === 'AccessDenied'
      ? 'denied'
      : name === 'SlowDown' || name === 'Throttling'
        ? 'throttled'
        : kindOfHttpStatus(status, S3_STATUS_KINDS);
  return new AdapterError(kind, `S3 ${what}`, { cause: e });
}

function parse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return { unparseable: text.slice(0, 200) };
  }
}
