/**
 * Every object starts with one header byte: the object type in the high nibble and its format
 * version in the low nibble. One byte, because every byte of a code counts (see docs/protocol.md).
 */
import { ProtocolError } from './errors.js';
import type { Reader, Writer } from './bytes.js';

export const OBJECT_TYPE = {
  trustList: 1,
  credential: 2,
  code: 3,
  terminalCertificate: 4,
  record: 5,
  uploadBatch: 6,
  denyList: 7,
  riskPolicy: 8,
} as const;
export type ObjectType = keyof typeof OBJECT_TYPE;

/** The one format version of every object this build speaks. */
export const FORMAT_VERSION = 1;

export function writeHeader(w: Writer, type: ObjectType): void {
  w.u8((OBJECT_TYPE[type] << 4) | FORMAT_VERSION, 'header');
}

export function readHeader(r: Reader, type: ObjectType): void {
  const b = r.u8('header');
  if (b >> 4 !== OBJECT_TYPE[type]) {
    throw new ProtocolError('unknown_type', `expected ${type} (type ${OBJECT_TYPE[type]}), got type ${b >> 4}`);
  }
  if ((b & 0x0f) !== FORMAT_VERSION) {
    throw new ProtocolError('unknown_version', `${type}: version ${b & 0x0f}, this build speaks ${FORMAT_VERSION}`);
  }
}

/** Reads a u32 time in seconds and an end time that must come after it. */
export function readValidity(r: Reader, what: string): { notBefore: number; notAfter: number } {
  const notBefore = r.u32('not_before');
  const notAfter = r.u32('not_after');
  if (notAfter <= notBefore) throw new ProtocolError('bad_value', `${what}: not_after ${notAfter} <= not_before ${notBefore}`);
  return { notBefore, notAfter };
}

/** Checks a validity window against a time, with a tolerance for clock skew. */
export function checkValidity(
  v: { readonly notBefore: number; readonly notAfter: number },
  nowS: number,
  skewS: number,
  what: string,
): void {
  if (nowS + skewS < v.notBefore) throw new ProtocolError('not_yet_valid', `${what}: valid from ${v.notBefore}, now ${nowS}`);
  if (nowS - skewS >= v.notAfter) throw new ProtocolError('expired', `${what}: valid until ${v.notAfter}, now ${nowS}`);
}

/** Which list-signing (or CA) key signed an object: its suite and key id, inside the signed bytes. */
export interface SignerRef {
  readonly suite: import('./suites.js').SuiteName;
  readonly keyId: number;
}
