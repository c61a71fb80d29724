/**
 * Terminal request signatures: how a terminal authenticates an HTTP request to the platform with its
 * own key (the PSAM role, DESIGN §4 and §12), without sessions or passwords.
 *
 * The signed bytes are
 *
 *     "duet/request/v1\0" || method || "\n" || path-with-query || "\n" || time (u32 s) ||
 *     terminal id (u32) || SHA-256(body)
 *
 * Method and path are ASCII without "\n" (checked), and everything after them has a fixed length, so
 * the encoding is unambiguous: no two different requests give the same bytes. The label keeps a
 * request signature from ever being taken for a record or any other signed object.
 *
 * The headers carry the terminal id, the time, and the signature (base64url, no padding). What this
 * file does NOT do, because it needs state: look up the terminal's certified key and remember which
 * requests were seen (the replay cache). The platform does both (packages/platform/src/auth.ts).
 */
import { label, Writer } from './bytes.js';
import { ProtocolError } from './errors.js';
import type { CryptoProvider, Signer, SuiteName } from './suites.js';
import { SIGNATURE_BYTES } from './suites.js';

export const REQUEST_LABEL = label('duet/request/v1');

/** Header names, lower case as Node presents them. */
export const REQUEST_HEADER = {
  terminal: 'x-duet-terminal',
  time: 'x-duet-time',
  signature: 'x-duet-signature',
} as const;

/** A type alias, not an interface, so it passes wherever a `HeaderBag` is asked for. */
export type RequestAuthHeaders = {
  readonly 'x-duet-terminal': string;
  readonly 'x-duet-time': string;
  readonly 'x-duet-signature': string;
};

/** How far a request's time may be from the verifier's clock, either way: 5 minutes, as Kerberos and AWS SigV4 allow. */
export const REQUEST_TIME_WINDOW_S = 300;

/** HTTP methods are short tokens; 16 covers every registered one and stops abuse. */
export const REQUEST_METHOD_MAX_CHARS = 16;

/** The request target (path and query) we will sign or check: longer than any Duet route needs. */
export const REQUEST_PATH_MAX_CHARS = 2048;

/** A 64-byte signature in base64url without padding. */
const SIGNATURE_B64_CHARS = 86;

const METHOD_RE = /^[A-Z]+$/;
/** Visible ASCII only: no spaces, no control characters (so no "\n"), nothing a proxy might rewrite. */
const PATH_RE = /^\/[\x21-\x7e]*$/;

function checkMethod(method: string): void {
  if (method.length === 0 || method.length > REQUEST_METHOD_MAX_CHARS || !METHOD_RE.test(method)) {
    throw new ProtocolError('bad_value', `request method: must be 1..${REQUEST_METHOD_MAX_CHARS} upper-case letters`);
  }
}

function checkPath(path: string): void {
  if (path.length > REQUEST_PATH_MAX_CHARS) throw new ProtocolError('too_large', `request path: ${path.length} characters`);
  if (!PATH_RE.test(path)) throw new ProtocolError('bad_value', 'request path: must start with "/" and be visible ASCII');
}

/** The exact bytes a terminal signs for one request (see the file comment for the layout). */
export function requestSigningBytes(
  method: string,
  pathWithQuery: string,
  timeS: number,
  terminalId: number,
  bodySha256: Uint8Array,
): Uint8Array {
  checkMethod(method);
  checkPath(pathWithQuery);
  if (terminalId < 1) throw new ProtocolError('bad_value', 'request: terminal id 0');
  const text = new TextEncoder().encode(`${method}\n${pathWithQuery}\n`);
  const w = new Writer(REQUEST_LABEL.length + text.length + 40);
  w.bytes(REQUEST_LABEL, undefined, 'label').bytes(text, undefined, 'method_path');
  w.u32(timeS, 'time').u32(terminalId, 'terminal_id').bytes(bodySha256, 32, 'body_sha256');
  return w.finish();
}

/** Signs a request at `nowS` and returns the three headers to send with it. */
export async function signRequest(
  signer: Signer,
  terminalId: number,
  method: string,
  pathWithQuery: string,
  body: Uint8Array,
  nowS: number,
  sha256: (data: Uint8Array) => Uint8Array,
): Promise<RequestAuthHeaders> {
  const signature = await signer.sign(requestSigningBytes(method, pathWithQuery, nowS, terminalId, sha256(body)));
  return {
    'x-duet-terminal': String(terminalId),
    'x-duet-time': String(nowS),
    'x-duet-signature': base64urlEncode(signature),
  };
}

/** The three headers, parsed. */
export interface SignedRequestHeaders {
  readonly terminalId: number;
  readonly timeS: number;
  readonly signature: Uint8Array;
}

/** Headers as Node (or any framework) hands them over: a value may be missing or repeated. */
export type HeaderBag = { readonly [name: string]: string | readonly string[] | undefined };

/** True when the request carries any of the terminal headers (so it claims to be a terminal). */
export function hasRequestAuthHeaders(headers: HeaderBag): boolean {
  return (
    headers[REQUEST_HEADER.terminal] !== undefined ||
    headers[REQUEST_HEADER.time] !== undefined ||
    headers[REQUEST_HEADER.signature] !== undefined
  );
}

function header(headers: HeaderBag, name: string): string {
  const v = headers[name];
  if (v === undefined) throw new ProtocolError('bad_length', `header ${name} is missing`);
  // A repeated header is ambiguous (which one was signed?), so it is refused rather than picked.
  if (typeof v !== 'string') throw new ProtocolError('not_canonical', `header ${name} is repeated`);
  return v;
}

/** A u32 in canonical decimal: no sign, no leading zeros, no spaces. */
function u32Decimal(text: string, name: string, min: number): number {
  if (!/^(0|[1-9][0-9]{0,9})$/.test(text)) throw new ProtocolError('not_canonical', `header ${name}: not a canonical decimal`);
  const n = Number(text);
  if (n < min || n > 0xffff_ffff) throw new ProtocolError('bad_value', `header ${name}: ${text} out of range`);
  return n;
}

/**
 * Parses the terminal headers strictly. Throws ProtocolError: `bad_length` when one is missing,
 * `not_canonical` / `bad_value` / `bad_encoding` when one is malformed.
 */
export function parseRequestAuthHeaders(headers: HeaderBag): SignedRequestHeaders {
  const terminalId = u32Decimal(header(headers, REQUEST_HEADER.terminal), REQUEST_HEADER.terminal, 1);
  const timeS = u32Decimal(header(headers, REQUEST_HEADER.time), REQUEST_HEADER.time, 0);
  const sig = header(headers, REQUEST_HEADER.signature);
  if (sig.length !== SIGNATURE_B64_CHARS) {
    throw new ProtocolError('bad_length', `header ${REQUEST_HEADER.signature}: ${sig.length} characters, expected ${SIGNATURE_B64_CHARS}`);
  }
  return { terminalId, timeS, signature: base64urlDecode(sig, SIGNATURE_BYTES, REQUEST_HEADER.signature) };
}

/** The key a request must verify under: the terminal's certified key. */
export interface RequestKey {
  readonly suite: SuiteName;
  readonly publicKey: Uint8Array;
}

/**
 * Verifies a parsed request signature: the time first (cheap, and a stale request is refused
 * whatever its signature), then the signature under the terminal's key. Throws ProtocolError
 * `expired` / `not_yet_valid` for a time outside `nowS ± windowS`, `bad_signature` otherwise.
 *
 * Returns SHA-256 of the signed bytes: one value per distinct request whatever the signature's
 * encoding (ECDSA signatures are randomised, so the signature itself would be a poor replay key).
 * The caller remembers it for `windowS` to refuse a replay.
 */
export async function verifyRequestSignature(
  crypto: CryptoProvider,
  key: RequestKey,
  request: SignedRequestHeaders,
  method: string,
  pathWithQuery: string,
  body: Uint8Array,
  nowS: number,
  windowS: number = REQUEST_TIME_WINDOW_S,
): Promise<Uint8Array> {
  if (request.timeS < nowS - windowS) {
    throw new ProtocolError('expired', `request time ${request.timeS} is more than ${windowS} s before ${nowS}`);
  }
  if (request.timeS > nowS + windowS) {
    throw new ProtocolError('not_yet_valid', `request time ${request.timeS} is more than ${windowS} s after ${nowS}`);
  }
  const signed = requestSigningBytes(method, pathWithQuery, request.timeS, request.terminalId, crypto.sha256(body));
  const ok = await crypto.suite(key.suite).verify(key.publicKey, signed, request.signature);
  if (!ok) throw new ProtocolError('bad_signature', `request from terminal ${request.terminalId}`);
  return crypto.sha256(signed);
}

const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const B64URL_VALUE = new Map<string, number>(Array.from(B64URL, (c, i) => [c, i]));

/** Base64url without padding (RFC 4648 §5). */
export function base64urlEncode(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; i += 3) {
    const a = bytes[i] as number;
    const b = bytes[i + 1];
    const c = bytes[i + 2];
    const n = (a << 16) | ((b ?? 0) << 8) | (c ?? 0);
    out += (B64URL[(n >> 18) & 63] as string) + (B64URL[(n >> 12) & 63] as string);
    if (b !== undefined) out += B64URL[(n >> 6) & 63] as string;
    if (c !== undefined) out += B64URL[n & 63] as string;
  }
  return out;
}

/**
 * Strict base64url decoding to exactly `length` bytes: no padding, no other alphabet, and the unused
 * low bits of the last character must be zero, so every byte string has exactly one text form.
 */
export function base64urlDecode(text: string, length: number, field: string): Uint8Array {
  if (text.length !== Math.ceil((length * 4) / 3)) throw new ProtocolError('bad_length', `${field}: ${text.length} characters`);
  const out = new Uint8Array(length);
  let acc = 0;
  let bits = 0;
  let o = 0;
  for (const ch of text) {
    const v = B64URL_VALUE.get(ch);
    if (v === undefined) throw new ProtocolError('bad_encoding', `${field}: not base64url`);
    acc = ((acc << 6) | v) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
    }
  }
  if ((acc & ((1 << bits) - 1)) !== 0) throw new ProtocolError('not_canonical', `${field}: non-zero padding bits`);
  return out;
}
