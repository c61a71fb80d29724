/**
 * The Node.js crypto provider: P-256 and Ed25519 on node:crypto (OpenSSL, native), SM2 on the pure
 * suite with node's native SM3 injected. Imported as `@duet/protocol/node`, so the browser bundle
 * of the main entry never pulls in node:crypto.
 */
import {
  createECDH,
  createHash,
  createPrivateKey,
  createPublicKey,
  KeyObject,
  randomBytes as nodeRandomBytes,
  sign as nodeSign,
  verify as nodeVerify,
  webcrypto,
} from 'node:crypto';
import { concatBytes, fromHex, toHex } from './bytes.js';
import { isValidEd25519PublicKey } from './ed25519.js';
import { isValidP256PublicKey } from './ecdsa.js';
import { compressPoint, isCanonicalP256Signature, normaliseP256Signature, P256_N } from './ecdsa.js';
import { ProtocolError } from './errors.js';
import { BoundedMap, PUBLIC_KEY_CACHE_ENTRIES } from './key-cache.js';
import { sm2Suite } from './suites/sm2.js';
import type { CryptoProvider, GenerateOptions, Signer, SuiteImpl, SuiteName } from './suites.js';
import { PRIVATE_KEY_BYTES } from './suites.js';

const ED25519_PKCS8_PREFIX = fromHex('302e020100300506032b657004220420');

function b64u(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64url');
}

/**
 * Imported public keys, cached. Import goes through WebCrypto's raw import (node's own, same
 * OpenSSL) and `KeyObject.from`, because `createPublicKey` on SPKI DER costs about twice a P-256
 * verification here (OpenSSL 3's decoder), and raw import half as much; verification then stays on
 * the synchronous KeyObject path.
 */
function publicKeyCache(algorithm: EcKeyImportParams | { name: 'Ed25519' }, length: number) {
  const cache = new BoundedMap<string, Promise<KeyObject | null>>(PUBLIC_KEY_CACHE_ENTRIES);
  return (raw: Uint8Array): Promise<KeyObject | null> => {
    if (raw.length !== length) return Promise.resolve(null);
    const hex = toHex(raw);
    let hit = cache.get(hex);
    if (hit === undefined) {
      hit = webcrypto.subtle.importKey('raw', new Uint8Array(raw), algorithm, true, ['verify']).then(
        (k) => KeyObject.from(k),
        () => null, // not a point on the curve, or not a valid encoding: it can never verify
      );
      cache.set(hex, hit);
    }
    return hit;
  };
}

export interface NodeCryptoOptions {
  /**
   * Where signatures are verified: on the event loop (the default: lowest latency for one decision,
   * as a terminal wants), or on libuv's thread pool (a busy server keeps parsing requests while
   * signatures are checked: measured here, online authorization p99 at 1,000/s fell from 66 to 38 ms,
   * while a terminal decision's p99 rose from about 1.5 to 2.7 ms with the extra thread hop).
   */
  readonly verifyOn?: 'loop' | 'pool';
}

/** node:crypto's callback form: runs on libuv's thread pool. */
function verifyOffThread(
  algorithm: string | null,
  message: Uint8Array,
  key: KeyObject | { key: KeyObject; dsaEncoding: 'ieee-p1363' },
  signature: Uint8Array,
): Promise<boolean> {
  return new Promise((resolve) => {
    nodeVerify(algorithm, message, key, signature, (err, ok) => resolve(err === null && ok));
  });
}

function makeSigner(
  suite: SuiteName,
  publicKey: Uint8Array,
  key: KeyObject,
  raw: Uint8Array | undefined,
  signFn: (key: KeyObject, m: Uint8Array) => Uint8Array,
): Signer {
  return {
    suite,
    publicKey,
    sign: async (m) => signFn(key, m),
    exportPrivateKey: async () => raw?.slice(),
  };
}

function p256Suite(o: NodeCryptoOptions): SuiteImpl {
  const publicKey = publicKeyCache({ name: 'ECDSA', namedCurve: 'P-256' }, 33);
  const signFn = (key: KeyObject, m: Uint8Array): Uint8Array =>
    normaliseP256Signature(new Uint8Array(nodeSign('sha256', m, { key, dsaEncoding: 'ieee-p1363' })));
  const fromRaw = (d: Uint8Array, options?: GenerateOptions): Signer => {
    if (d.length !== PRIVATE_KEY_BYTES) throw new ProtocolError('bad_key', `p256 private key: ${d.length} bytes`);
    const scalar = BigInt(`0x${toHex(d)}`);
    if (scalar < 1n || scalar >= P256_N) throw new ProtocolError('bad_key', 'p256 private key out of range');
    const ecdh = createECDH('prime256v1');
    ecdh.setPrivateKey(Buffer.from(d));
    const pub = new Uint8Array(ecdh.getPublicKey());
    const key = createPrivateKey({
      key: { kty: 'EC', crv: 'P-256', d: b64u(d), x: b64u(pub.subarray(1, 33)), y: b64u(pub.subarray(33, 65)) },
      format: 'jwk',
    });
    return makeSigner('p256', compressPoint(pub), key, options?.extractable === false ? undefined : d.slice(), signFn);
  };
  return {
    name: 'p256',
    async generate(options) {
      // The private key is a uniformly random scalar in [1, n-1], by rejection sampling (FIPS 186-5
      // A.2.2; a draw is rejected with odds of about 2^-32). Not generateKeyPairSync: on Node 20,
      // exporting a freshly generated EC key as JWK deadlocks the process when the garbage collector
      // runs during the export and collects the key-generation job (docs/decisions.md).
      for (;;) {
        const d = new Uint8Array(nodeRandomBytes(PRIVATE_KEY_BYTES));
        const scalar = BigInt(`0x${toHex(d)}`);
        if (scalar >= 1n && scalar < P256_N) return fromRaw(d, options);
      }
    },
    async importPrivateKey(raw, options) {
      return fromRaw(raw, options);
    },
    async verify(pub, message, signature) {
      if (!isCanonicalP256Signature(signature)) return false;
      const key = await publicKey(pub);
      if (key === null) return false;
      const k = { key, dsaEncoding: 'ieee-p1363' } as const;
      return o.verifyOn === 'pool' ? verifyOffThread('sha256', message, k, signature) : nodeVerify('sha256', message, k, signature);
    },
    isValidPublicKey: (pub) => isValidP256PublicKey(pub),
  };
}

function ed25519Suite(o: NodeCryptoOptions): SuiteImpl {
  const publicKey = publicKeyCache({ name: 'Ed25519' }, 32);
  const signFn = (key: KeyObject, m: Uint8Array): Uint8Array => new Uint8Array(nodeSign(null, m, key));
  const fromRaw = (seed: Uint8Array, options?: GenerateOptions): Signer => {
    if (seed.length !== PRIVATE_KEY_BYTES) throw new ProtocolError('bad_key', `ed25519 private key: ${seed.length} bytes`);
    const key = createPrivateKey({ key: Buffer.from(concatBytes(ED25519_PKCS8_PREFIX, seed)), format: 'der', type: 'pkcs8' });
    const spki = new Uint8Array(createPublicKey(key).export({ format: 'der', type: 'spki' }));
    return makeSigner('ed25519', spki.slice(-32), key, options?.extractable === false ? undefined : seed.slice(), signFn);
  };
  return {
    name: 'ed25519',
    async generate(options) {
      // The private key is 32 octets of cryptographically secure random data (RFC 8032 §5.1.5);
      // made here like the P-256 key's, without a key-generation job.
      return fromRaw(new Uint8Array(nodeRandomBytes(PRIVATE_KEY_BYTES)), options);
    },
    async importPrivateKey(raw, options) {
      return fromRaw(raw, options);
    },
    async verify(pub, message, signature) {
      if (signature.length !== 64) return false;
      const key = await publicKey(pub);
      if (key === null) return false;
      return o.verifyOn === 'pool' ? verifyOffThread(null, message, key, signature) : nodeVerify(null, message, key, signature);
    },
    isValidPublicKey: (pub) => isValidEd25519PublicKey(pub),
  };
}

export function nativeSm3(data: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sm3').update(data).digest());
}

/** The provider for Node.js: native wherever OpenSSL has the primitive. */
export function nodeCrypto(o: NodeCryptoOptions = {}): CryptoProvider {
  const suites: { readonly [S in SuiteName]: SuiteImpl } = {
    p256: p256Suite(o),
    ed25519: ed25519Suite(o),
    sm2: sm2Suite({ sm3: nativeSm3 }),
  };
  return {
    name: 'node',
    suite: (name) => suites[name],
    sha256: (data) => new Uint8Array(createHash('sha256').update(data).digest()),
    randomBytes: (n) => new Uint8Array(nodeRandomBytes(n)),
  };
}

export * from './index.js';
