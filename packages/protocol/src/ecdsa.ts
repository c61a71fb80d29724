/**
 * What the P-256 implementations share: the group order, the low-S rule and SEC1 point compression.
 * ECDSA signatures are malleable ((r, s) and (r, n − s) both verify); Duet accepts only s ≤ n/2, so
 * every signed object has exactly one valid encoding, and signers normalise before they return.
 */
import { p256 } from '@noble/curves/nist.js';
import { toHex } from './bytes.js';

export const P256_N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;
const P256_HALF_N = P256_N >> 1n;

function bigFrom(bytes: Uint8Array): bigint {
  return bytes.length === 0 ? 0n : BigInt(`0x${toHex(bytes)}`);
}

function bytes32(v: bigint): Uint8Array {
  const hex = v.toString(16).padStart(64, '0');
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) out[i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** True when r and s are in [1, n−1] and s ≤ n/2. */
export function isCanonicalP256Signature(sig: Uint8Array): boolean {
  if (sig.length !== 64) return false;
  const r = bigFrom(sig.subarray(0, 32));
  const s = bigFrom(sig.subarray(32));
  return r > 0n && r < P256_N && s > 0n && s <= P256_HALF_N;
}

/** Returns the low-S form of an r||s signature. */
export function normaliseP256Signature(sig: Uint8Array): Uint8Array {
  const s = bigFrom(sig.subarray(32, 64));
  if (s <= P256_HALF_N) return sig;
  const out = new Uint8Array(64);
  out.set(sig.subarray(0, 32), 0);
  out.set(bytes32(P256_N - s), 32);
  return out;
}

/** SEC1 compression of an uncompressed point (0x04||x||y) to 0x02/0x03||x. */
export function compressPoint(uncompressed: Uint8Array): Uint8Array {
  const out = new Uint8Array(33);
  out[0] = ((uncompressed[64] as number) & 1) === 1 ? 0x03 : 0x02;
  out.set(uncompressed.subarray(1, 33), 1);
  return out;
}

/** True when 33 bytes are a SEC1 compressed point on P-256 (prefix 02/03, x on the curve). */
export function isValidP256PublicKey(pub: Uint8Array): boolean {
  if (pub.length !== 33 || (pub[0] !== 2 && pub[0] !== 3)) return false;
  try {
    p256.Point.fromBytes(pub);
    return true;
  } catch {
    return false;
  }
}
