/**
 * Ed25519 against RFC 8032 §7.1 (vectors/rfc8032-ed25519.json), on both providers, with
 * @noble/curves as a third, independent implementation that checks the vector file itself.
 * Ed25519 is deterministic, so the RFC's signatures must come out byte for byte.
 */
import { readFileSync } from 'node:fs';
import { ed25519 } from '@noble/curves/ed25519.js';
import { describe, expect, it } from 'vitest';
import { toHex } from '../src/index.js';
import { hex, PROVIDER_NAMES, PROVIDERS } from './fixtures.js';

interface Rfc8032Vector {
  readonly name: string;
  readonly secretKey: string;
  readonly publicKey: string;
  readonly message: string;
  readonly signature: string;
}

const VECTORS: readonly Rfc8032Vector[] = JSON.parse(
  readFileSync(new URL('./vectors/rfc8032-ed25519.json', import.meta.url), 'utf8'),
).vectors;

describe('RFC 8032 §7.1 vector file', () => {
  it('holds TEST 1, 2, 3 and SHA(abc)', () => {
    expect(VECTORS.map((v) => v.name)).toEqual(['TEST 1', 'TEST 2', 'TEST 3', 'TEST SHA(abc)']);
  });

  for (const v of VECTORS) {
    it(`${v.name}: @noble/curves agrees with the file (public key, signature, verify)`, () => {
      expect(toHex(ed25519.getPublicKey(hex(v.secretKey)))).toBe(v.publicKey);
      expect(toHex(ed25519.sign(hex(v.message), hex(v.secretKey)))).toBe(v.signature);
      expect(ed25519.verify(hex(v.signature), hex(v.message), hex(v.publicKey))).toBe(true);
    });
  }
});

for (const provider of PROVIDER_NAMES) {
  describe(`RFC 8032 §7.1 with the ${provider} provider`, () => {
    const suite = PROVIDERS[provider].suite('ed25519');

    for (const v of VECTORS) {
      it(`${v.name}: the seed gives the RFC public key and signature, and it verifies`, async () => {
        const signer = await suite.importPrivateKey(hex(v.secretKey));
        expect(signer.suite).toBe('ed25519');
        expect(toHex(signer.publicKey)).toBe(v.publicKey);
        expect(suite.isValidPublicKey(hex(v.publicKey))).toBe(true);
        const sig = await signer.sign(hex(v.message));
        expect(toHex(sig)).toBe(v.signature);
        expect(await suite.verify(hex(v.publicKey), hex(v.message), hex(v.signature))).toBe(true);
        expect(toHex((await signer.exportPrivateKey()) ?? new Uint8Array(0))).toBe(v.secretKey);
      });

      it(`${v.name}: every single-bit flip of the signature is rejected`, async () => {
        const sig = hex(v.signature);
        const accepted: number[] = [];
        for (let bit = 0; bit < sig.length * 8; bit++) {
          const bad = sig.slice();
          bad[bit >> 3] = (bad[bit >> 3] ?? 0) ^ (0x80 >> (bit & 7));
          if (await suite.verify(hex(v.publicKey), hex(v.message), bad)) accepted.push(bit);
        }
        expect(accepted).toEqual([]);
      });

      it(`${v.name}: a flipped message bit, another key, or a wrong length is rejected`, async () => {
        const msg = hex(v.message);
        const pub = hex(v.publicKey);
        const sig = hex(v.signature);
        const longer = Uint8Array.of(...msg, 0);
        expect(await suite.verify(pub, longer, sig)).toBe(false);
        for (let bit = 0; bit < Math.min(msg.length * 8, 64); bit++) {
          const bad = msg.slice();
          bad[bit >> 3] = (bad[bit >> 3] ?? 0) ^ (0x80 >> (bit & 7));
          expect(await suite.verify(pub, bad, sig)).toBe(false);
        }
        const other = VECTORS.find((o) => o.publicKey !== v.publicKey);
        expect(await suite.verify(hex(other?.publicKey ?? ''), msg, sig)).toBe(false);
        expect(await suite.verify(pub, msg, sig.subarray(0, 63))).toBe(false);
        expect(await suite.verify(pub, msg, Uint8Array.of(...sig, 0))).toBe(false);
        expect(await suite.verify(pub.subarray(0, 31), msg, sig)).toBe(false);
      });
    }

    it('a non-extractable key exports nothing and still signs the RFC signature', async () => {
      const v = VECTORS[2];
      if (v === undefined) throw new Error('TEST 3 missing');
      const signer = await suite.importPrivateKey(hex(v.secretKey), { extractable: false });
      expect(await signer.exportPrivateKey()).toBeUndefined();
      expect(toHex(signer.publicKey)).toBe(v.publicKey);
      expect(toHex(await signer.sign(hex(v.message)))).toBe(v.signature);
    });
  });
}
