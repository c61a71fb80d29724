/**
 * P-256 between the node provider, the WebCrypto provider and @noble/curves in every direction;
 * the low-S rule (signers normalise, verifiers refuse the high-S twin); SEC1 compressed keys; key
 * import and export; malformed keys; and the RFC 6979 A.2.5 key pair and signature as an outside
 * vector (vectors/rfc6979-p256.json).
 */
import { readFileSync } from 'node:fs';
import { p256 } from '@noble/curves/nist.js';
import { describe, expect, it } from 'vitest';
import { compressPoint, isCanonicalP256Signature, normaliseP256Signature, P256_N } from '../src/ecdsa.js';
import { concatBytes, fromHex, type Signer, toHex } from '../src/index.js';
import { at, expectCodeAsync, hex, PROVIDER_NAMES, PROVIDERS, type ProviderName, utf8 } from './fixtures.js';

type Impl = ProviderName | 'noble';
const IMPLS: readonly Impl[] = ['node', 'web', 'noble'];
const HALF_N = P256_N >> 1n;

const big = (b: Uint8Array): bigint => BigInt(`0x${toHex(b) || '0'}`);
const bytes32 = (v: bigint): Uint8Array => fromHex(v.toString(16).padStart(64, '0'));

/** A signer that lives in the given implementation. */
async function signerIn(impl: Impl, d: Uint8Array): Promise<Signer> {
  if (impl !== 'noble') return PROVIDERS[impl].suite('p256').importPrivateKey(d);
  return {
    suite: 'p256',
    publicKey: p256.getPublicKey(d, true),
    sign: async (m) => p256.sign(m, d, { lowS: true }),
    exportPrivateKey: async () => d.slice(),
  };
}

async function verifyIn(impl: Impl, pub: Uint8Array, msg: Uint8Array, sig: Uint8Array): Promise<boolean> {
  if (impl !== 'noble') return PROVIDERS[impl].suite('p256').verify(pub, msg, sig);
  try {
    return p256.verify(sig, msg, pub, { lowS: true });
  } catch {
    return false;
  }
}

/** The other signature of the same (r, s) pair: (r, n - s). */
function highSTwin(sig: Uint8Array): Uint8Array {
  return concatBytes(sig.subarray(0, 32), bytes32(P256_N - big(sig.subarray(32))));
}

const KEYS = [
  'a3f1c0de5b7e9a1122334455667788990011223344556677889900aabbccddee',
  '0000000000000000000000000000000000000000000000000000000000000001',
  'ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632550', // n - 1
  '7fffffff800000007fffffffffffffffde737d56d38bcf4279dce5617e3192a8', // about n/2
].map(hex);

describe('P-256 interop: node, WebCrypto and @noble/curves', () => {
  for (const from of IMPLS) {
    it(`signatures made by ${from} verify in node, web and noble, and are low-S`, async () => {
      for (const [k, d] of KEYS.entries()) {
        const signer = await signerIn(from, d);
        expect(toHex(signer.publicKey)).toBe(toHex(p256.getPublicKey(d, true)));
        for (let i = 0; i < 6; i++) {
          const msg = utf8(`duet p256 interop ${from} ${k} ${i}`);
          const sig = await signer.sign(msg);
          expect(sig.length).toBe(64);
          expect(isCanonicalP256Signature(sig)).toBe(true);
          for (const to of IMPLS) expect(await verifyIn(to, signer.publicKey, msg, sig), `${from} -> ${to}`).toBe(true);
          for (const to of IMPLS) expect(await verifyIn(to, signer.publicKey, utf8('other message'), sig), `${from} -> ${to}`).toBe(false);
        }
      }
    });
  }

  for (const provider of PROVIDER_NAMES) {
    it(`${provider}: the signer normalises: 64 signatures, every one with s <= n/2`, async () => {
      // Raw ECDSA gives a high s half the time; 64 low ones by chance would be 2^-64.
      const signer = await PROVIDERS[provider].suite('p256').generate();
      for (let i = 0; i < 64; i++) {
        const sig = await signer.sign(utf8(`m${i}`));
        expect(big(sig.subarray(32)) <= HALF_N).toBe(true);
      }
    });

    it(`${provider}: the high-S twin of a valid signature is rejected, though it is valid ECDSA`, async () => {
      const suite = PROVIDERS[provider].suite('p256');
      for (const d of KEYS) {
        const signer = await suite.importPrivateKey(d);
        const msg = utf8('twin');
        const sig = await signer.sign(msg);
        const twin = highSTwin(sig);
        expect(p256.verify(twin, msg, signer.publicKey, { lowS: false })).toBe(true);
        expect(isCanonicalP256Signature(twin)).toBe(false);
        expect(await suite.verify(signer.publicKey, msg, twin)).toBe(false);
        expect(normaliseP256Signature(twin)).toEqual(sig);
      }
    });

    it(`${provider}: public keys are 33-byte SEC1 compressed points`, async () => {
      const suite = PROVIDERS[provider].suite('p256');
      for (let i = 0; i < 8; i++) {
        const signer = await suite.generate();
        expect(signer.publicKey.length).toBe(33);
        expect([2, 3]).toContain(signer.publicKey[0]);
        expect(suite.isValidPublicKey(signer.publicKey)).toBe(true);
        const full = p256.Point.fromBytes(signer.publicKey).toBytes(false);
        expect(compressPoint(full)).toEqual(signer.publicKey);
      }
    });

    it(`${provider}: generate -> export -> import in either provider gives the same key`, async () => {
      const signer = await PROVIDERS[provider].suite('p256').generate();
      const d = await signer.exportPrivateKey();
      if (d === undefined) throw new Error('an extractable key must export');
      expect(d.length).toBe(32);
      expect(toHex(p256.getPublicKey(d, true))).toBe(toHex(signer.publicKey));
      for (const other of PROVIDER_NAMES) {
        const again = await PROVIDERS[other].suite('p256').importPrivateKey(d);
        expect(toHex(again.publicKey)).toBe(toHex(signer.publicKey));
        expect(await again.exportPrivateKey()).toEqual(d);
        const sig = await again.sign(utf8('round trip'));
        expect(await PROVIDERS[provider].suite('p256').verify(signer.publicKey, utf8('round trip'), sig)).toBe(true);
      }
    });

    it(`${provider}: a non-extractable key exports nothing and still signs`, async () => {
      const suite = PROVIDERS[provider].suite('p256');
      for (const s of [await suite.generate({ extractable: false }), await suite.importPrivateKey(at(KEYS, 0), { extractable: false })]) {
        expect(await s.exportPrivateKey()).toBeUndefined();
        const sig = await s.sign(utf8('x'));
        expect(await suite.verify(s.publicKey, utf8('x'), sig)).toBe(true);
      }
    });

    it(`${provider}: private keys outside [1, n-1] or of the wrong length are bad_key`, async () => {
      const suite = PROVIDERS[provider].suite('p256');
      const bad = [
        new Uint8Array(32),
        bytes32(P256_N),
        bytes32(P256_N + 1n),
        new Uint8Array(32).fill(0xff),
        new Uint8Array(31).fill(1),
        new Uint8Array(33).fill(1),
        new Uint8Array(0),
      ];
      for (const d of bad) await expectCodeAsync(() => suite.importPrivateKey(d), 'bad_key');
      expect((await suite.importPrivateKey(bytes32(P256_N - 1n))).publicKey.length).toBe(33);
    });

    it(`${provider}: malformed public keys are invalid and never verify (and never throw)`, async () => {
      const suite = PROVIDERS[provider].suite('p256');
      const signer = await suite.importPrivateKey(at(KEYS, 0));
      const msg = utf8('k');
      const sig = await signer.sign(msg);
      const pub = signer.publicKey;
      const x = pub.subarray(1);
      const bad: Record<string, Uint8Array> = {
        'prefix 0x04 with 33 bytes': concatBytes(Uint8Array.of(4), x),
        'prefix 0x00': concatBytes(Uint8Array.of(0), x),
        'prefix 0x05': concatBytes(Uint8Array.of(5), x),
        'x not on the curve': concatBytes(Uint8Array.of(2), offCurveX()),
        'x = p (not a field element)': concatBytes(
          Uint8Array.of(2),
          hex('ffffffff00000001000000000000000000000000ffffffffffffffffffffffff'),
        ),
        'x = 2^256 - 1': concatBytes(Uint8Array.of(3), new Uint8Array(32).fill(0xff)),
        'uncompressed form (65 bytes)': p256.Point.fromBytes(pub).toBytes(false),
        'too short (32 bytes)': pub.subarray(0, 32),
        'too long (34 bytes)': concatBytes(pub, Uint8Array.of(0)),
        empty: new Uint8Array(0),
        'other parity (valid point, other key)': concatBytes(Uint8Array.of(at(pub, 0) ^ 1), x),
      };
      for (const [what, key] of Object.entries(bad)) {
        const valid = what.startsWith('other parity');
        expect(suite.isValidPublicKey(key), what).toBe(valid);
        expect(await suite.verify(key, msg, sig), what).toBe(false);
      }
    });

    it(`${provider}: malformed signatures are false, never an exception`, async () => {
      const suite = PROVIDERS[provider].suite('p256');
      const signer = await suite.importPrivateKey(at(KEYS, 0));
      const msg = utf8('s');
      const sig = await signer.sign(msg);
      const r = sig.subarray(0, 32);
      const s = sig.subarray(32);
      const bad = [
        new Uint8Array(0),
        sig.subarray(0, 63),
        concatBytes(sig, Uint8Array.of(0)),
        concatBytes(new Uint8Array(32), s),
        concatBytes(r, new Uint8Array(32)),
        concatBytes(bytes32(P256_N), s),
        concatBytes(r, bytes32(HALF_N + 1n)),
        new Uint8Array(64).fill(0xff),
      ];
      for (const b of bad) expect(await suite.verify(signer.publicKey, msg, b)).toBe(false);
    });
  }
});

/** The first x (counting from 5) with no point on P-256, found with noble, so the test is not a guess. */
function offCurveX(): Uint8Array {
  for (let x = 5n; ; x++) {
    const candidate = concatBytes(Uint8Array.of(2), bytes32(x));
    try {
      p256.Point.fromBytes(candidate);
    } catch {
      return bytes32(x);
    }
  }
}

interface Rfc6979 {
  readonly privateKey: string;
  readonly publicKeyX: string;
  readonly publicKeyY: string;
  readonly signatures: readonly { hash: string; message: string; r: string; s: string }[];
}

const RFC6979: Rfc6979 = JSON.parse(readFileSync(new URL('./vectors/rfc6979-p256.json', import.meta.url), 'utf8'));

describe('RFC 6979 A.2.5 (P-256, SHA-256)', () => {
  const d = hex(RFC6979.privateKey);
  const uncompressed = concatBytes(Uint8Array.of(4), hex(RFC6979.publicKeyX), hex(RFC6979.publicKeyY));
  const sample = at(RFC6979.signatures, 0);
  const rfcSig = concatBytes(hex(sample.r), hex(sample.s));

  it('the vector file agrees with @noble/curves (key pair, and the deterministic signature)', () => {
    expect(toHex(p256.getPublicKey(d, false))).toBe(toHex(uncompressed));
    expect(toHex(p256.sign(utf8(sample.message), d, { lowS: false }))).toBe(toHex(rfcSig));
  });

  for (const provider of PROVIDER_NAMES) {
    it(`${provider}: importPrivateKey(d) gives the RFC public key, compressed`, async () => {
      const signer = await PROVIDERS[provider].suite('p256').importPrivateKey(d);
      expect(toHex(signer.publicKey)).toBe(toHex(compressPoint(uncompressed)));
      expect(toHex(signer.publicKey.subarray(1))).toBe(RFC6979.publicKeyX);
    });

    it(`${provider}: the RFC signature is high-S, so it is refused as is and accepted once normalised`, async () => {
      const suite = PROVIDERS[provider].suite('p256');
      const pub = compressPoint(uncompressed);
      expect(big(hex(sample.s)) > HALF_N).toBe(true);
      expect(isCanonicalP256Signature(rfcSig)).toBe(false);
      expect(await suite.verify(pub, utf8(sample.message), rfcSig)).toBe(false);
      const low = normaliseP256Signature(rfcSig);
      expect(isCanonicalP256Signature(low)).toBe(true);
      expect(toHex(low.subarray(0, 32))).toBe(sample.r);
      expect(big(low.subarray(32))).toBe(P256_N - big(hex(sample.s)));
      expect(await suite.verify(pub, utf8(sample.message), low)).toBe(true);
      expect(await suite.verify(pub, utf8('samplf'), low)).toBe(false);
    });
  }
});
