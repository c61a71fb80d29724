/**
 * Proof of possession of the device key (DESIGN §5: a credential is issued only after "the device
 * proved possession of its key"). The platform sends a fresh random challenge; the device signs
 *
 *   "duet/device-proof/v1\0" || suite id (u8) || device public key || challenge length (u8) || challenge
 *
 * with its device key. The domain label keeps the signature from ever being valid as a code or any
 * other Duet object; binding suite and public key inside the signed bytes stops a signature made for
 * one key from being presented for another (duplicate-signature key selection on ECDSA).
 */
import { concatBytes, type CryptoProvider, PUBLIC_KEY_BYTES, SUITE_ID, SUITES, type Signer, type SuiteName } from '@duet/protocol';
import { WalletError } from './errors.js';
import { CHALLENGE_MAX_BYTES, CHALLENGE_MIN_BYTES } from './limits.js';

export const DEVICE_PROOF_LABEL = new TextEncoder().encode('duet/device-proof/v1\0');

/** What the wallet sends to enrol or renew: who it is, and proof that it holds the key. */
export interface RenewalRequest {
  readonly suite: SuiteName;
  readonly devicePublicKey: Uint8Array;
  /** The platform's challenge, echoed so a stateless endpoint can find its session. */
  readonly challenge: Uint8Array;
  /** The device's signature over deviceProofMessage(suite, devicePublicKey, challenge). */
  readonly proof: Uint8Array;
  /** Serial of the newest credential held, if any: the one being renewed. */
  readonly currentSerial?: number;
}

/** The platform, as the renewal flow sees it. Errors thrown here come back as WalletError(renewal_failed). */
export interface RenewalTransport {
  /** A fresh challenge from the platform (CHALLENGE_MIN_BYTES to CHALLENGE_MAX_BYTES random bytes). */
  challenge(): Promise<Uint8Array>;
  /** Sends the request; resolves with the encoded credential the platform issued. */
  issue(request: RenewalRequest): Promise<Uint8Array>;
}

function challengeLengthOk(challenge: Uint8Array): boolean {
  return challenge.length >= CHALLENGE_MIN_BYTES && challenge.length <= CHALLENGE_MAX_BYTES;
}

/** The exact bytes a device proof signs. Throws WalletError(bad_challenge) for a challenge out of bounds. */
export function deviceProofMessage(suite: SuiteName, publicKey: Uint8Array, challenge: Uint8Array): Uint8Array {
  if (!challengeLengthOk(challenge)) {
    throw new WalletError('bad_challenge', `challenge of ${challenge.length} bytes, need ${CHALLENGE_MIN_BYTES}..${CHALLENGE_MAX_BYTES}`);
  }
  return concatBytes(DEVICE_PROOF_LABEL, Uint8Array.of(SUITE_ID[suite]), publicKey, Uint8Array.of(challenge.length), challenge);
}

export async function signDeviceProof(device: Signer, challenge: Uint8Array): Promise<Uint8Array> {
  return device.sign(deviceProofMessage(device.suite, device.publicKey, challenge));
}

/**
 * For the platform: true only when `signature` proves possession of `publicKey`'s private key for
 * this `challenge`. Never throws: an unknown suite, a malformed key or challenge simply fails.
 */
export async function verifyDeviceProof(
  crypto: CryptoProvider,
  suite: SuiteName,
  publicKey: Uint8Array,
  challenge: Uint8Array,
  signature: Uint8Array,
): Promise<boolean> {
  if (!SUITES.includes(suite) || publicKey.length !== PUBLIC_KEY_BYTES[suite] || !challengeLengthOk(challenge)) return false;
  return crypto.suite(suite).verify(publicKey, deviceProofMessage(suite, publicKey, challenge), signature);
}
