/**
 * The QR text form of a code: the scheme prefix `DU1:` and the code's bytes in Base45. Every
 * character is in the QR alphanumeric set, so a 208-byte code is 316 characters and fits a
 * version-11 symbol at error-correction level M: a cheap scanner reads it at once.
 */
import { base45Decode, base45Encode } from './base45.js';
import { type Code, decodeCode } from './code.js';
import { ProtocolError } from './errors.js';
import { QR_TEXT_MAX_CHARS } from './limits.js';

/** "DU" for Duet, "1" for the first text form. Upper case: the QR alphanumeric set has no lower case. */
export const QR_PREFIX = 'DU1:';

export function codeToText(code: { readonly bytes: Uint8Array }): string {
  return QR_PREFIX + base45Encode(code.bytes);
}

/**
 * Parses scanned text. A keyboard-wedge scanner may end a scan with CR or LF; those are dropped,
 * and nothing else is forgiven.
 */
export function textToCodeBytes(scanned: string): Uint8Array {
  if (scanned.length > QR_TEXT_MAX_CHARS) throw new ProtocolError('too_large', `QR text: ${scanned.length} characters`);
  const text = scanned.replace(/[\r\n]+$/, '');
  if (!text.startsWith(QR_PREFIX)) throw new ProtocolError('bad_prefix', `QR text starts ${JSON.stringify(text.slice(0, 8))}`);
  return base45Decode(text.slice(QR_PREFIX.length));
}

export function textToCode(scanned: string): Code {
  return decodeCode(textToCodeBytes(scanned));
}
