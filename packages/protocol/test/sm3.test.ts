/**
 * SM3 (GB/T 32905-2016): the pure-JS default against the standard's examples, and against two
 * independent implementations (OpenSSL through node:crypto, and sm-crypto's own SM3) on random
 * input of every length around the padding boundaries.
 */
import { createHash, getHashes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import smCrypto from 'sm-crypto';
import { describe, expect, it } from 'vitest';
import { fromHex, toHex } from '../src/bytes.js';
import { isSm3, SM3_DIGEST_BYTES, sm3 } from '../src/suites/sm3.js';

interface Sm3Vector {
  readonly name: string;
  readonly messageHex: string;
  readonly digestHex: string;
}

function loadVectors(): { source: string; vectors: Sm3Vector[] } {
  const raw: unknown = JSON.parse(readFileSync(new URL('./vectors/sm3-gbt32905.json', import.meta.url), 'utf8'));
  const file = raw as { source?: unknown; vectors?: unknown };
  if (typeof file.source !== 'string' || !Array.isArray(file.vectors)) throw new Error('sm3 vector file: bad shape');
  return { source: file.source, vectors: file.vectors as Sm3Vector[] };
}

const hasNativeSm3 = getHashes().includes('sm3');
const nativeSm3 = (data: Uint8Array): Uint8Array => new Uint8Array(createHash('sm3').update(data).digest());
/** sm-crypto (v1) is a separate SM3 implementation (array based), unrelated to sm-crypto-v2's. */
const smCryptoSm3 = (data: Uint8Array): Uint8Array => fromHex(smCrypto.sm3(Array.from(data)));

const { source, vectors } = loadVectors();

describe('SM3 known answers, GB/T 32905-2016 Annex A', () => {
  it('the vector file names its source and has both examples', () => {
    expect(source).toMatch(/GB\/T 32905-2016/);
    expect(vectors).toHaveLength(2);
  });

  for (const v of vectors) {
    it(`pure JS: ${v.name}`, () => {
      expect(toHex(sm3(fromHex(v.messageHex)))).toBe(v.digestHex);
    });

    it.skipIf(!hasNativeSm3)(`node native (OpenSSL): ${v.name}`, () => {
      expect(toHex(nativeSm3(fromHex(v.messageHex)))).toBe(v.digestHex);
    });
  }

  it('returns 32 bytes and does not modify its input', () => {
    const input = fromHex(vectors[0]?.messageHex ?? '');
    const before = toHex(input);
    expect(sm3(input)).toHaveLength(SM3_DIGEST_BYTES);
    expect(toHex(input)).toBe(before);
  });

  it('hashes a subarray view as its own bytes, not the whole buffer', () => {
    const buffer = fromHex(`ffff${vectors[0]?.messageHex ?? ''}ffff`);
    expect(toHex(sm3(buffer.subarray(2, 5)))).toBe(vectors[0]?.digestHex);
  });
});

describe('SM3 agrees with independent implementations', () => {
  it.skipIf(!hasNativeSm3)('with OpenSSL on every length 0..300 (padding edges at 55/56/64/119/120/128 bytes)', () => {
    const data = new Uint8Array(300);
    for (let i = 0; i < data.length; i++) data[i] = (i * 131 + 7) & 0xff;
    for (let len = 0; len <= data.length; len++) {
      const m = data.subarray(0, len);
      expect(toHex(sm3(m)), `length ${len}`).toBe(toHex(nativeSm3(m)));
    }
  });

  it.skipIf(!hasNativeSm3)('with OpenSSL on random input (fast-check)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 1100 }), (m) => toHex(sm3(m)) === toHex(nativeSm3(m))),
      { numRuns: 300 },
    );
  });

  it('with sm-crypto (v1) on random input (fast-check)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (m) => toHex(sm3(m)) === toHex(smCryptoSm3(m))),
      { numRuns: 100 },
    );
  });

  it('a one-bit change of the input changes the digest', () => {
    const m = new TextEncoder().encode('message digest');
    const flipped = m.slice();
    flipped[3] = (flipped[3] as number) ^ 0x01;
    expect(toHex(sm3(flipped))).not.toBe(toHex(sm3(m)));
  });
});

describe('isSm3, the guard for an injected SM3', () => {
  it('accepts the pure-JS and the native SM3', () => {
    expect(isSm3(sm3)).toBe(true);
    if (hasNativeSm3) expect(isSm3(nativeSm3)).toBe(true);
  });

  it('rejects SHA-256, a truncated digest and a throwing function', () => {
    expect(isSm3((d) => new Uint8Array(createHash('sha256').update(d).digest()))).toBe(false);
    expect(isSm3((d) => sm3(d).subarray(0, 31))).toBe(false);
    expect(
      isSm3(() => {
        throw new Error('no');
      }),
    ).toBe(false);
  });
});
