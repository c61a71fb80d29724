/**
 * Signature suites. Every signed object names its suite in one byte; the implementations come from a
 * `CryptoProvider` that the caller injects (node:crypto in Node, WebCrypto in the browser, a
 * deterministic one in the simulator), so this file holds only names, sizes and the interfaces.
 */
import { ProtocolError } from './errors.js';

export const SUITES = ['p256', 'ed25519', 'sm2'] as const;
export type SuiteName = (typeof SUITES)[number];

/** Wire ids. Never renumber. 0 is reserved as "none". */
export const SUITE_ID: { readonly [S in SuiteName]: number } = { p256: 1, ed25519: 2, sm2: 3 };

export function suiteFromId(id: number, field: string): SuiteName {
  switch (id) {
    case 1:
      return 'p256';
    case 2:
      return 'ed25519';
    case 3:
      return 'sm2';
    default:
      throw new ProtocolError('unknown_suite', `${field}: suite id ${id}`);
  }
}

/**
 * Public key sizes on the wire. P-256 and SM2 keys are SEC1 compressed points (33 bytes: 0x02/0x03
 * and x), which keeps a code under 210 bytes; Ed25519 keys are their 32-byte RFC 8032 encoding.
 */
export const PUBLIC_KEY_BYTES: { readonly [S in SuiteName]: number } = { p256: 33, ed25519: 32, sm2: 33 };

/** Every suite's signature is 64 bytes: r||s (P-256 as IEEE P1363, SM2 likewise) or R||S (Ed25519). */
export const SIGNATURE_BYTES = 64;

/** Raw private keys are 32 bytes for every suite: the scalar d (P-256, SM2) or the seed (Ed25519). */
export const PRIVATE_KEY_BYTES = 32;

/** Something that can sign: a private key held in whatever form its provider likes. */
export interface Signer {
  readonly suite: SuiteName;
  /** Wire form of the public key (see PUBLIC_KEY_BYTES). */
  readonly publicKey: Uint8Array;
  /** Signs the message (the suite hashes it: SHA-256, SHA-512 inside Ed25519, or SM3 with Z_A). */
  sign(message: Uint8Array): Promise<Uint8Array>;
  /** The 32-byte raw private key, or undefined when the key was made non-extractable. */
  exportPrivateKey(): Promise<Uint8Array | undefined>;
}

export interface GenerateOptions {
  /** false keeps the private key inside the platform's keystore (WebCrypto non-extractable). */
  readonly extractable?: boolean;
}

export interface SuiteImpl {
  readonly name: SuiteName;
  generate(options?: GenerateOptions): Promise<Signer>;
  /** Imports a 32-byte raw private key. Throws ProtocolError(bad_key) when it is out of range. */
  importPrivateKey(raw: Uint8Array, options?: GenerateOptions): Promise<Signer>;
  /**
   * True only when `signature` is a valid signature of `message` under `publicKey`. Never throws
   * for malformed keys or signatures: those simply do not verify.
   */
  verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): Promise<boolean>;
  /** True when the bytes are a valid public key of this suite (on the curve, right form). */
  isValidPublicKey(publicKey: Uint8Array): boolean;
}

export interface CryptoProvider {
  /** Which implementation this is, for logs and benchmarks ("node", "webcrypto", ...). */
  readonly name: string;
  suite(name: SuiteName): SuiteImpl;
  /** SHA-256, synchronous (record chains and ids are hashed on the hot path). */
  sha256(data: Uint8Array): Uint8Array;
  /** Cryptographically secure random bytes (DESIGN §16: every nonce unpredictable). */
  randomBytes(length: number): Uint8Array;
}
