/**
 * The claim check between the Azure spoke's remediate endpoint and its queue worker, over an in-memory
 * container: when a request goes by blob, and what the worker refuses to run from one (the Azurite-backed
 * way through the functions is in test/functions/azure/remediate.test.ts).
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  type ClaimCheckBlobs,
  claimCheckBlobName,
  queueMessageFor,
  redeemClaimCheck,
} from '../../../shared/adapters/bus/claim-check.js';

const CONTAINER = 'remediate-requests-large';

/** A container in memory, recording the writes. */
function memoryBlobs(): ClaimCheckBlobs & { blobs: Map<string, Buffer>; puts: string[] } {
  const blobs = new Map<string, Buffer>();
  const puts: string[] = [];
  return {
    container: CONTAINER,
    blobs,
    puts,
    async put(name, body) {
      puts.push(name);
      blobs.set(name, Buffer.from(body, 'utf8'));
    },
    async get(name) {
      return blobs.get(name);
    },
  };
}

/** A request whose JSON is `bytes` long (UTF-8), its padding made of `char`. */
function sized(bytes: number, char = 'b', requestId = 'rq-1') {
  const base = { requestId, settings: { note: '' } };
  const room = bytes - Buffer.byteLength(JSON.stringify(base), 'utf8');
  const width = Buffer.byteLength(char, 'utf8');
  return { requestId, settings: { note: char.repeat(Math.floor(room / width)) + 'b'.repeat(room % width) } };
}

describe('queueMessageFor', () => {
  it('counts UTF-8 bytes, not characters: a request of 46,080 characters of two-byte text goes by blob', async () => {
    // Prepare: 46,080 bytes of JSON fit (base64 of them leaves 4 KiB of the 64 KiB); the same length in
    // characters, most of them two bytes each, does not
    const blobs = memoryBlobs();
    const ascii = sized(46_080);
    const accented = sized(46_080 + 20_000, 'é', 'rq-2');
    expect(JSON.stringify(accented).length).toBeLessThan(46_080);
    // Act
    const inline = await queueMessageFor(ascii, blobs);
    const pointer = await queueMessageFor(accented, blobs);
    // Assess
    expect(inline).toBe(ascii);
    expect(pointer).toEqual({
      claimCheck: {
        container: CONTAINER,
        blob: 'rq-2.json',
        sha256: createHash('sha256').update(JSON.stringify(accented)).digest('hex'),
      },
    });
    expect(blobs.puts).toEqual(['rq-2.json']);
  });

  it('names the blob of a requestId a blob name should not carry by its hash', () => {
    // Assess
    expect(claimCheckBlobName('rq-00000000000000a1')).toBe('rq-00000000000000a1.json');
    expect(claimCheckBlobName('../other/x')).toMatch(/^sha256-[0-9a-f]{64}\.json$/);
    expect(claimCheckBlobName('.hidden')).toMatch(/^sha256-[0-9a-f]{64}\.json$/);
  });
});

describe('redeemClaimCheck', () => {
  it('refuses a blob holding another request than the one its name stands for', async () => {
    // Prepare: rq-1's blob overwritten, hash and all, with rq-2's request
    const blobs = memoryBlobs();
    const pointer = await queueMessageFor(sized(100_000, 'b', 'rq-2'), blobs);
    const body = blobs.blobs.get('rq-2.json') as Buffer;
    blobs.blobs.set('rq-1.json', body);
    const moved = { claimCheck: { ...(pointer as { claimCheck: object }).claimCheck, blob: 'rq-1.json' } };
    // Act
    const redeemed = await redeemClaimCheck(moved, blobs);
    // Assess
    expect(redeemed).toEqual({
      unrunnable: `claim check ${CONTAINER}/rq-1.json: holds request "rq-2", not this blob's; not run`,
    });
  });

  it('refuses a malformed pointer, and passes any other message through untouched', async () => {
    // Prepare
    const blobs = memoryBlobs();
    // Act
    const malformed = await redeemClaimCheck({ claimCheck: { container: CONTAINER, blob: 'rq-1.json' } }, blobs);
    const plain = await redeemClaimCheck({ requestId: 'rq-1' }, blobs);
    // Assess
    expect(malformed).toMatchObject({ unrunnable: expect.stringContaining('claim check: ') });
    expect(malformed).toMatchObject({ unrunnable: expect.stringContaining('sha256') });
    expect(plain).toEqual({ value: { requestId: 'rq-1' } });
  });
});
