/**
 * One contract, every implementation (STYLE: hono's shared router test): each CryptoProvider and
 * each of its suites must behave the same, so a terminal on node:crypto and a wallet on WebCrypto
 * agree on every signature. Also a differential check that the providers agree on which public
 * keys are valid, and that sha256 and randomBytes keep their promises.
 */
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PRIVATE_KEY_BYTES, PUBLIC_KEY_BYTES, SIGNATURE_BYTES } from '../src/index.js';
import { expectCodeAsync, PROVIDER_NAMES, PROVIDERS, SUITES, utf8 } from './fixtures.js';

describe.each(PROVIDER_NAMES)('%s provider contract', (name) => {
  const provider = PROVIDERS[name];

  describe.each(SUITES)('%s', (suite) => {
    const impl = provider.suite(suite);

    it('names itself, and generate → sign → verify works here and in the other provider', async () => {
      expect(impl.name).toBe(suite);
      const signer = await impl.generate();
      expect(signer.suite).toBe(suite);
      expect(signer.publicKey.length).toBe(PUBLIC_KEY_BYTES[suite]);
      expect(impl.isValidPublicKey(signer.publicKey)).toBe(true);
      const msg = utf8(`contract ${name} ${suite}`);
      const sig = await signer.sign(msg);
      expect(sig.length).toBe(SIGNATURE_BYTES);
      for (const other of PROVIDER_NAMES) {
        expect(await PROVIDERS[other].suite(suite).verify(signer.publicKey, msg, sig), other).toBe(true);
        expect(await PROVIDERS[other].suite(suite).verify(signer.publicKey, utf8('another'), sig), other).toBe(false);
      }
    });

    it('exported private keys import to the same public key in either provider', async () => {
      const signer = await impl.generate();
      const raw = await signer.exportPrivateKey();
      if (raw === undefined) throw new Error('extractable by default');
      expect(raw.length).toBe(PRIVATE_KEY_BYTES);
      for (const other of PROVIDER_NAMES) {
        expect((await PROVIDERS[other].suite(suite).importPrivateKey(raw)).publicKey).toEqual(signer.publicKey);
      }
      const sealed = await impl.generate({ extractable: false });
      expect(await sealed.exportPrivateKey()).toBeUndefined();
    });

    it('private keys of the wrong length or all zero are bad_key', async () => {
      for (const raw of [new Uint8Array(0), new Uint8Array(31).fill(1), new Uint8Array(33).fill(1)]) {
        await expectCodeAsync(() => impl.importPrivateKey(raw), 'bad_key');
      }
      if (suite !== 'ed25519') await expectCodeAsync(() => impl.importPrivateKey(new Uint8Array(32)), 'bad_key');
    });

    it('verify is false, never an exception, for garbage of any length', async () => {
      const signer = await impl.generate();
      const msg = utf8('garbage');
      const sig = await signer.sign(msg);
      await fc.assert(
        fc.asyncProperty(fc.uint8Array({ maxLength: 70 }), fc.uint8Array({ maxLength: 70 }), async (pub, s) => {
          expect(await impl.verify(pub, msg, s)).toBe(false);
          expect(await impl.verify(signer.publicKey, msg, s)).toBe(false);
          expect(await impl.verify(pub, msg, sig)).toBe(false);
        }),
        { seed: 77, numRuns: suite === 'sm2' ? 40 : 150 },
      );
    });
  });

  it('sha256 is SHA-256', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (data) => {
        expect(provider.sha256(data)).toEqual(new Uint8Array(createHash('sha256').update(data).digest()));
      }),
      { seed: 256, numRuns: 300 },
    );
  });

  it('randomBytes gives exactly the length asked, across the 65,536-byte getRandomValues limit', () => {
    for (const n of [0, 1, 32, 65_536, 65_537, 200_000]) {
      const r = provider.randomBytes(n);
      expect(r.length).toBe(n);
      if (n >= 32) expect(r.some((b) => b !== 0)).toBe(true);
    }
    // The tail past the first 65,536 bytes is filled too.
    expect(
      provider
        .randomBytes(131_072)
        .subarray(65_536)
        .some((b) => b !== 0),
    ).toBe(true);
    expect(provider.randomBytes(32)).not.toEqual(provider.randomBytes(32));
  });
});

describe('the providers agree on which public keys are valid', () => {
  for (const suite of SUITES) {
    it(suite, () => {
      const length = PUBLIC_KEY_BYTES[suite];
      const keyArb = fc.uint8Array({ minLength: length, maxLength: length }).map((k) => {
        // Half the time a plausible compressed prefix, so about half the x values are on the curve.
        if (length === 33 && (k[0] ?? 0) < 0x80) k[0] = 2 + ((k[1] ?? 0) & 1);
        return k;
      });
      let valid = 0;
      fc.assert(
        fc.property(keyArb, (k) => {
          const verdicts = PROVIDER_NAMES.map((p) => PROVIDERS[p].suite(suite).isValidPublicKey(k));
          expect(new Set(verdicts).size).toBe(1);
          if (verdicts[0] === true) valid++;
        }),
        { seed: 33, numRuns: 1_000 },
      );
      expect(valid).toBeGreaterThan(100);
    });
  }
});
