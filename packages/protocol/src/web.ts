/**
 * The WebCrypto provider, for browsers (and any runtime with `crypto.subtle`): P-256 and Ed25519 on
 * WebCrypto, so device keys can be non-extractable; SM2 and SHA-256 (needed synchronously) in pure
 * JS from audited libraries.
 */
import { p256 } from '@noble/curves/nist.js';
import { isValidEd25519PublicKey } from './ed25519.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { concatBytes, fromHex, toHex } from './bytes.js';
import { compressPoint, isCanonicalP256Signature, normaliseP256Signature, P256_N } from './ecdsa.js';
import { ProtocolError } from './errors.js';
import { BoundedMap, PUBLIC_KEY_CACHE_ENTRIES } from './key-cache.js';
import { sm2Suite } from './suites/sm2.js';
import type { CryptoProvider, GenerateOptions, Signer, SuiteImpl, SuiteName } from './suites.js';
import { PRIVATE_KEY_BYTES } from './suites.js';

const ED25519_PKCS8_PREFIX = fromHex('302e020100300506032b657004220420');
/** WebCrypto wants ArrayBuffer-backed views; a copy also keeps the caller's buffer out of reach. */
const ab = (u: Uint8Array): Uint8Array<ArrayBuffer> => new Uint8Array(u);
const ECDSA = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const ECDSA_SHA256 = { name: 'ECDSA', hash: 'SHA-256' } as const;

function b64u(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function keyCache(importer: (raw: Uint8Array) => Promise<CryptoKey | null>) {
  const cache = new BoundedMap<string, Promise<CryptoKey | null>>(PUBLIC_KEY_CACHE_ENTRIES);
  return (raw: Uint8Array): Promise<CryptoKey | null> => {
    const hex = toHex(raw);
    let hit = cache.get(hex);
    if (hit === undefined) {
      hit = importer(raw).catch(() => null);
      cache.set(hex, hit);
    }
    return hit;
  };
}

function uncompressP256(pub: Uint8Array): Uint8Array | null {
  if (pub.length !== 33 || (pub[0] !== 2 && pub[0] !== 3)) return null;
  try {
    return p256.Point.fromBytes(pub).toBytes(false);
  } catch {
    return null;
  }
}

function p256Suite(subtle: SubtleCrypto): SuiteImpl {
  const verifyKey = keyCache(async (raw) => {
    const full = uncompressP256(raw);
    return full === null ? null : subtle.importKey('raw', ab(full), ECDSA, false, ['verify']);
  });
  const signer = (key: CryptoKey, publicKey: Uint8Array, raw: Uint8Array | undefined): Signer => ({
    suite: 'p256',
    publicKey,
    sign: async (m) => normaliseP256Signature(new Uint8Array(await subtle.sign(ECDSA_SHA256, key, ab(m)))),
    exportPrivateKey: async () => raw?.slice(),
  });
  return {
    name: 'p256',
    async generate(options?: GenerateOptions) {
      const extractable = options?.extractable !== false;
      const pair = await subtle.generateKey(ECDSA, extractable, ['sign', 'verify']);
      const pub = compressPoint(new Uint8Array(await subtle.exportKey('raw', pair.publicKey)));
      let raw: Uint8Array | undefined;
      if (extractable) {
        const jwk = await subtle.exportKey('jwk', pair.privateKey);
        raw = fromB64u(jwk.d ?? '');
      }
      return signer(pair.privateKey, pub, raw);
    },
    async importPrivateKey(d, options) {
      if (d.length !== PRIVATE_KEY_BYTES) throw new ProtocolError('bad_key', `p256 private key: ${d.length} bytes`);
      const scalar = BigInt(`0x${toHex(d)}`);
      if (scalar < 1n || scalar >= P256_N) throw new ProtocolError('bad_key', 'p256 private key out of range');
      const full = p256.getPublicKey(d, false);
      const jwk = { kty: 'EC', crv: 'P-256', d: b64u(d), x: b64u(full.subarray(1, 33)), y: b64u(full.subarray(33, 65)) };
      const extractable = options?.extractable !== false;
      const key = await subtle.importKey('jwk', jwk, ECDSA, extractable, ['sign']);
      return signer(key, compressPoint(full), extractable ? d.slice() : undefined);
    },
    async verify(pub, message, signature) {
      if (!isCanonicalP256Signature(signature)) return false;
      const key = await verifyKey(pub);
      if (key === null) return false;
      return subtle.verify(ECDSA_SHA256, key, ab(signature), ab(message));
    },
    isValidPublicKey: (pub) => uncompressP256(pub) !== null,
  };
}

function fromB64u(s: string): Uint8Array {
  const bin = atob(s.replace(/-/g, '+').replace(/_/g, '/'));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function ed25519Suite(subtle: SubtleCrypto): SuiteImpl {
  const ALG = { name: 'Ed25519' } as const;
  const verifyKey = keyCache(async (raw) => (raw.length === 32 ? subtle.importKey('raw', ab(raw), ALG, false, ['verify']) : null));
  const fromSeed = async (seed: Uint8Array, extractable: boolean): Promise<Signer> => {
    if (seed.length !== PRIVATE_KEY_BYTES) throw new ProtocolError('bad_key', `ed25519 private key: ${seed.length} bytes`);
    // Import extractable once to read the public half, then keep only the handle the caller asked for.
    const full = await subtle.importKey('pkcs8', ab(concatBytes(ED25519_PKCS8_PREFIX, seed)), ALG, true, ['sign']);
    const jwk = await subtle.exportKey('jwk', full);
    const key = extractable ? full : await subtle.importKey('pkcs8', ab(concatBytes(ED25519_PKCS8_PREFIX, seed)), ALG, false, ['sign']);
    return {
      suite: 'ed25519',
      publicKey: fromB64u(jwk.x ?? ''),
      sign: async (m) => new Uint8Array(await subtle.sign(ALG, key, ab(m))),
      exportPrivateKey: async () => (extractable ? seed.slice() : undefined),
    };
  };
  return {
    name: 'ed25519',
    async generate(options) {
      const extractable = options?.extractable !== false;
      const pair = (await subtle.generateKey(ALG, extractable, ['sign', 'verify'])) as CryptoKeyPair;
      const pub = new Uint8Array(await subtle.exportKey('raw', pair.publicKey));
      let raw: Uint8Array | undefined;
      if (extractable) raw = new Uint8Array(await subtle.exportKey('pkcs8', pair.privateKey)).slice(-32);
      return {
        suite: 'ed25519',
        publicKey: pub,
        sign: async (m) => new Uint8Array(await subtle.sign(ALG, pair.privateKey, ab(m))),
        exportPrivateKey: async () => raw?.slice(),
      };
    },
    async importPrivateKey(raw, options) {
      return fromSeed(raw, options?.extractable !== false);
    },
    async verify(pub, message, signature) {
      if (signature.length !== 64) return false;
      const key = await verifyKey(pub);
      if (key === null) return false;
      return subtle.verify(ALG, key, ab(signature), ab(message));
    },
    isValidPublicKey: isValidEd25519PublicKey,
  };
}

/**
 * A Signer over a WebCrypto key pair made elsewhere (a wallet's key kept as a non-extractable
 * CryptoKey in IndexedDB): signs inside the browser's keystore and never exports the private key.
 */
export async function webCryptoSigner(
  suite: 'p256' | 'ed25519',
  pair: CryptoKeyPair,
  subtle: SubtleCrypto = globalThis.crypto.subtle,
): Promise<Signer> {
  const raw = new Uint8Array(await subtle.exportKey('raw', pair.publicKey));
  if (suite === 'ed25519') {
    return {
      suite,
      publicKey: raw,
      sign: async (m) => new Uint8Array(await subtle.sign({ name: 'Ed25519' }, pair.privateKey, ab(m))),
      exportPrivateKey: async () => undefined,
    };
  }
  return {
    suite,
    publicKey: compressPoint(raw),
    sign: async (m) => normaliseP256Signature(new Uint8Array(await subtle.sign(ECDSA_SHA256, pair.privateKey, ab(m)))),
    exportPrivateKey: async () => undefined,
  };
}

/** The provider for browsers and other WebCrypto runtimes: every suite, SM2 in pure JS. */
export function webCrypto(c: Crypto = globalThis.crypto): CryptoProvider {
  return provider(c, { p256: p256Suite(c.subtle), ed25519: ed25519Suite(c.subtle), sm2: sm2Suite() });
}

/**
 * Only the suites WebCrypto holds natively (P-256, Ed25519), without the pure-JS SM2 code: for a
 * page that only signs with its own P-256 or Ed25519 key (the wallet), whose bundle should stay
 * small. Asking it for SM2 throws ProtocolError(unknown_suite).
 */
export function webCryptoNative(c: Crypto = globalThis.crypto): CryptoProvider {
  const unsupported = (): never => {
    throw new ProtocolError('unknown_suite', 'sm2 is not in the native WebCrypto provider');
  };
  return provider(c, { p256: p256Suite(c.subtle), ed25519: ed25519Suite(c.subtle), sm2: undefined }, unsupported);
}

function provider(
  c: Crypto,
  suites: { readonly [S in SuiteName]: SuiteImpl | undefined },
  missing: (name: SuiteName) => never = () => {
    throw new ProtocolError('unknown_suite', 'suite missing');
  },
): CryptoProvider {
  return {
    name: 'webcrypto',
    suite: (name) => suites[name] ?? missing(name),
    sha256: (data) => sha256(data),
    randomBytes: (n) => {
      const out = new Uint8Array(n);
      // getRandomValues fills at most 65,536 bytes per call.
      for (let o = 0; o < n; o += 65_536) c.getRandomValues(out.subarray(o, Math.min(n, o + 65_536)));
      return out;
    },
  };
}
