/**
 * Base45 (RFC 9285): bytes as text in the 45 characters of the QR alphanumeric mode. Text, not raw
 * bytes, because keyboard-wedge scanners type what they read and mangle bytes outside ASCII; the
 * alphanumeric mode keeps the symbol almost as small as byte mode would. Decoding is strict: only
 * the one canonical text of each byte string is accepted.
 */
import { ProtocolError } from './errors.js';

export const BASE45_ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:';

const DECODE = new Int8Array(128).fill(-1);
for (let i = 0; i < BASE45_ALPHABET.length; i++) DECODE[BASE45_ALPHABET.charCodeAt(i)] = i;

export function base45Encode(bytes: Uint8Array): string {
  let out = '';
  const A = BASE45_ALPHABET;
  let i = 0;
  for (; i + 1 < bytes.length; i += 2) {
    let n = (bytes[i] as number) * 256 + (bytes[i + 1] as number);
    const c = n % 45;
    n = (n - c) / 45;
    const d = n % 45;
    const e = (n - d) / 45;
    out += A[c] as string;
    out += A[d] as string;
    out += A[e] as string;
  }
  if (i < bytes.length) {
    const n = bytes[i] as number;
    out += A[n % 45] as string;
    out += A[Math.floor(n / 45)] as string;
  }
  return out;
}

function digit(text: string, i: number): number {
  const code = text.charCodeAt(i);
  const v = code < 128 ? (DECODE[code] as number) : -1;
  if (v < 0) throw new ProtocolError('bad_encoding', `base45: character ${JSON.stringify(text[i])} at ${i}`);
  return v;
}

export function base45Decode(text: string): Uint8Array {
  const rem = text.length % 3;
  if (rem === 1) throw new ProtocolError('bad_encoding', `base45: length ${text.length} leaves one character over`);
  const out = new Uint8Array(Math.floor(text.length / 3) * 2 + (rem === 2 ? 1 : 0));
  let o = 0;
  let i = 0;
  for (; i + 2 < text.length; i += 3) {
    const n = digit(text, i) + digit(text, i + 1) * 45 + digit(text, i + 2) * 2025;
    if (n > 0xffff) throw new ProtocolError('bad_encoding', `base45: group at ${i} is ${n} > 65535`);
    out[o++] = n >>> 8;
    out[o++] = n & 0xff;
  }
  if (rem === 2) {
    const n = digit(text, i) + digit(text, i + 1) * 45;
    if (n > 0xff) throw new ProtocolError('bad_encoding', `base45: last group at ${i} is ${n} > 255`);
    out[o] = n;
  }
  return out;
}
