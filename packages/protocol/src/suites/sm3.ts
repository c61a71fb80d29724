/**
 * SM3, the hash of the `sm2` suite (GB/T 32905-2016, identical to GM/T 0004-2012).
 *
 * The default is pure JS so the suite runs in the browser: the implementation is sm-crypto-v2's
 * (a Merkle–Damgård class in the style of noble-hashes; noble-hashes itself has no SM3). Node can
 * inject OpenSSL's native SM3 instead through `sm2Suite({ sm3 })`; this file never imports
 * node:crypto.
 */
import { sm3 as sm3Hex } from 'sm-crypto-v2';
import { equalBytes, fromHex } from '../bytes.js';

/** An SM3 function: the whole message in, the 32-byte digest out. */
export type Sm3 = (data: Uint8Array) => Uint8Array;

export const SM3_DIGEST_BYTES = 32;

/** SM3 of `data`, pure JS. */
export function sm3(data: Uint8Array): Uint8Array {
  // sm-crypto-v2 hashes a string argument as UTF-8 and checks `instanceof Uint8Array`; a view
  // from another realm (an iframe, jsdom) is copied so it is hashed as bytes, never refused.
  const bytes = data instanceof Uint8Array ? data : Uint8Array.from(data);
  return fromHex(sm3Hex(bytes));
}

/** GB/T 32905-2016 Annex A, example 1: SM3("abc"). */
const EXAMPLE_1_MESSAGE = new Uint8Array([0x61, 0x62, 0x63]);
const EXAMPLE_1_DIGEST = '66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0';

/**
 * True when `hash` gives the standard's first example. A cheap guard for injected functions: a
 * SHA-256 passed by mistake would otherwise sign happily and verify nowhere else.
 */
export function isSm3(hash: Sm3): boolean {
  try {
    const out = hash(EXAMPLE_1_MESSAGE.slice());
    return out.length === SM3_DIGEST_BYTES && equalBytes(out, fromHex(EXAMPLE_1_DIGEST));
  } catch {
    return false;
  }
}
