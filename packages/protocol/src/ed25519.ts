import { ed25519 } from '@noble/curves/ed25519.js';

/** True when 32 bytes decode to a point on Ed25519 (RFC 8032 §5.1.3). */
export function isValidEd25519PublicKey(pub: Uint8Array): boolean {
  if (pub.length !== 32) return false;
  try {
    ed25519.Point.fromBytes(pub);
    return true;
  } catch {
    return false;
  }
}
