import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import zlib from 'node:zlib';
import { decodeBody } from '../../src/http/decode-body.js';
import { isMothershipError } from '../../src/lib/errors.js';

const LIMIT = { maxDecompressedBytes: 8 * 1024 * 1024 };

function json(bytes: number): Buffer {
  const unit = '{"host":"switch01","metric_name":"ifInOctets","value":1397151},';
  return Buffer.from(`[${unit.repeat(Math.ceil(bytes / unit.length))}{}]`);
}

async function refusal(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    assert.ok(isMothershipError(err), String(err));
    return err.code;
  }
  assert.fail('expected the body to be refused');
}

describe('decodeBody', () => {
  it('returns a body without Content-Encoding as it came', async () => {
    const raw = json(100);
    assert.equal(await decodeBody(raw, undefined, LIMIT), raw);
    assert.equal(await decodeBody(raw, 'identity', LIMIT), raw);
  });

  // Small bodies inflate inline, large ones on the thread pool: both must give the same bytes.
  for (const size of [200, 30_000, 900_000, 3_000_000]) {
    it(`inflates gzip, zlib deflate and raw deflate bodies of ${size} bytes`, async () => {
      const plain = json(size);
      assert.deepEqual(await decodeBody(zlib.gzipSync(plain), 'gzip', LIMIT), plain);
      assert.deepEqual(await decodeBody(zlib.gzipSync(plain), 'x-gzip', LIMIT), plain);
      assert.deepEqual(await decodeBody(zlib.deflateSync(plain), 'deflate', LIMIT), plain);
      assert.deepEqual(await decodeBody(zlib.deflateRawSync(plain), 'deflate', LIMIT), plain);
    });
  }

  it('inflates a gzip body whose trailer understates its size, and one of several members', async () => {
    const plain = json(3_000_000);
    const lying = Buffer.from(zlib.gzipSync(plain));
    lying.writeUInt32LE(100, lying.length - 4); // ISIZE is only a hint; the CRC and data are intact
    const inflated = await decodeBody(lying, 'gzip', LIMIT).catch((err: unknown) => err);
    // zlib checks ISIZE at the end: a lying trailer is invalid gzip, refused like any corruption.
    assert.ok(isMothershipError(inflated) && inflated.code === 'invalid_encoding', String(inflated));
    const members = Buffer.concat([zlib.gzipSync(json(2_000_000)), zlib.gzipSync(Buffer.from('{}'))]);
    assert.deepEqual(await decodeBody(members, 'gzip', LIMIT), Buffer.concat([json(2_000_000), Buffer.from('{}')]));
  });

  it('refuses a body that inflates past the limit, small on the wire or not', async () => {
    const bomb = zlib.gzipSync(Buffer.alloc(20 * 1024 * 1024, 0x20));
    assert.ok(bomb.length < 64 * 1024, `the bomb is ${bomb.length} bytes on the wire`);
    assert.equal(await refusal(decodeBody(bomb, 'gzip', LIMIT)), 'body_too_large');
    assert.equal(await refusal(decodeBody(zlib.deflateSync(Buffer.alloc(20 * 1024 * 1024)), 'deflate', LIMIT)), 'body_too_large');
    // A limit under the inline cap is enforced inline too.
    assert.equal(await refusal(decodeBody(zlib.gzipSync(json(5_000)), 'gzip', { maxDecompressedBytes: 1_000 })), 'body_too_large');
  });

  it('refuses bytes that are not what the header says, and encodings it does not know', async () => {
    assert.equal(await refusal(decodeBody(Buffer.from('{"messages":[]}'), 'gzip', LIMIT)), 'invalid_encoding');
    assert.equal(await refusal(decodeBody(zlib.gzipSync(json(100)).subarray(0, 30), 'gzip', LIMIT)), 'invalid_encoding');
    assert.equal(await refusal(decodeBody(Buffer.from([1, 2, 3, 4]), 'deflate', LIMIT)), 'invalid_encoding');
    assert.equal(await refusal(decodeBody(json(10), 'br', LIMIT)), 'unsupported_encoding');
  });
});
