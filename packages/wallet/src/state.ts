/**
 * The wallet state as text (JSON with a SHA-256 checksum), for stores that keep a string or a file:
 * the Node file store here and, later, the browser's IndexedDB store. Parsing is strict: anything
 * torn, truncated, edited or from another format is WalletError(store_corrupt), never "empty",
 * because an empty state would restart the code counter.
 */
import { CODE_COUNTER_MAX, decodeCredential, fromHex, PUBLIC_KEY_BYTES, SUITES, type SuiteName, toHex } from '@duet/protocol';
import { WalletError } from './errors.js';
import { CREDENTIALS_HELD_MAX, STATE_TEXT_MAX_BYTES } from './limits.js';
import type { HeldCredentialState, WalletState } from './ports.js';

export const STATE_FORMAT = 'duet-wallet-state/v1';

/** SHA-256 as the caller has it: `CryptoProvider.sha256`, or node:crypto. */
export type Sha256 = (data: Uint8Array) => Uint8Array;

const utf8 = new TextEncoder();

function corrupt(detail: string, cause?: unknown): WalletError {
  return new WalletError('store_corrupt', `wallet state: ${detail}`, cause === undefined ? undefined : { cause });
}

/** Checks what any store hands back, so a bad store cannot make the wallet reuse a counter. */
export function checkWalletState(s: WalletState): WalletState {
  if (s.version !== 1) throw corrupt(`version ${String(s.version)}`);
  if (!Number.isSafeInteger(s.reservedThrough) || s.reservedThrough < 0 || s.reservedThrough > CODE_COUNTER_MAX) {
    throw corrupt(`reservedThrough ${String(s.reservedThrough)}`);
  }
  if (s.device !== undefined) {
    if (!SUITES.includes(s.device.suite)) throw corrupt(`device suite ${String(s.device.suite)}`);
    if (s.device.publicKey.length !== PUBLIC_KEY_BYTES[s.device.suite]) throw corrupt('device public key length');
  }
  if (s.credentials.length > CREDENTIALS_HELD_MAX) throw corrupt(`${s.credentials.length} credentials`);
  if (s.credentials.length > 0 && s.device === undefined) throw corrupt('credentials without a device key');
  for (const c of s.credentials) {
    try {
      decodeCredential(c.bytes);
    } catch (e) {
      throw corrupt('a held credential does not decode', e);
    }
    const f = c.firstCounter;
    if (f !== undefined && (!Number.isSafeInteger(f) || f < 0 || f > s.reservedThrough)) throw corrupt(`firstCounter ${f}`);
  }
  return s;
}

export function encodeWalletState(state: WalletState, sha256: Sha256): string {
  checkWalletState(state);
  const body = {
    ...(state.device !== undefined ? { device: { suite: state.device.suite, publicKey: toHex(state.device.publicKey) } } : {}),
    reservedThrough: state.reservedThrough,
    credentials: state.credentials.map((c) => ({
      bytes: toHex(c.bytes),
      ...(c.firstCounter !== undefined ? { firstCounter: c.firstCounter } : {}),
    })),
  };
  const bodyText = JSON.stringify(body);
  return JSON.stringify({ format: STATE_FORMAT, sha256: toHex(sha256(utf8.encode(bodyText))), body });
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

function record(v: Json | undefined, what: string, keys: readonly string[], optional: readonly string[] = []): { [k: string]: Json } {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw corrupt(`${what} is not an object`);
  for (const k of Object.keys(v)) if (!keys.includes(k) && !optional.includes(k)) throw corrupt(`${what}.${k} is unexpected`);
  for (const k of keys) if (!(k in v)) throw corrupt(`${what}.${k} is missing`);
  return v;
}

function hex(v: Json | undefined, what: string): Uint8Array {
  if (typeof v !== 'string' || !/^(?:[0-9a-f]{2})*$/.test(v)) throw corrupt(`${what} is not lower-case hex`);
  return fromHex(v);
}

function int(v: Json | undefined, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw corrupt(`${what} is not an integer`);
  return v;
}

function suiteName(v: Json | undefined): SuiteName {
  const s = SUITES.find((x) => x === v);
  if (s === undefined) throw corrupt(`unknown suite ${JSON.stringify(v)}`);
  return s;
}

export function decodeWalletState(text: string, sha256: Sha256): WalletState {
  if (text.length > STATE_TEXT_MAX_BYTES) throw corrupt(`${text.length} characters > ${STATE_TEXT_MAX_BYTES}`);
  let parsed: Json;
  try {
    parsed = JSON.parse(text) as Json;
  } catch (e) {
    throw corrupt('not JSON (torn or overwritten)', e);
  }
  const outer = record(parsed, 'file', ['format', 'sha256', 'body']);
  if (outer.format !== STATE_FORMAT) throw corrupt(`format ${JSON.stringify(outer.format)}`);
  // JSON.stringify(JSON.parse(x)) === x for what encodeWalletState writes (integers, hex strings).
  const sum = toHex(sha256(utf8.encode(JSON.stringify(outer.body))));
  if (outer.sha256 !== sum) throw corrupt('checksum mismatch');
  const body = record(outer.body, 'body', ['reservedThrough', 'credentials'], ['device']);
  let device: WalletState['device'];
  if (body.device !== undefined) {
    const d = record(body.device, 'device', ['suite', 'publicKey']);
    device = { suite: suiteName(d.suite), publicKey: hex(d.publicKey, 'device.publicKey') };
  }
  const list = body.credentials;
  if (!Array.isArray(list)) throw corrupt('credentials is not a list');
  const credentials: HeldCredentialState[] = list.map((item, i) => {
    const c = record(item, `credentials[${i}]`, ['bytes'], ['firstCounter']);
    const bytes = hex(c.bytes, `credentials[${i}].bytes`);
    return c.firstCounter === undefined ? { bytes } : { bytes, firstCounter: int(c.firstCounter, `credentials[${i}].firstCounter`) };
  });
  const state: WalletState = {
    version: 1,
    ...(device !== undefined ? { device } : {}),
    reservedThrough: int(body.reservedThrough, 'reservedThrough'),
    credentials,
  };
  return checkWalletState(state);
}
