/**
 * The code (the second certificate): made offline by the device, it carries the whole credential,
 * the code time and a counter that never repeats for that credential, signed by the device key.
 * With P-256 it is 208 bytes. Its QR text form is `DU1:` + Base45 (see qr.ts).
 */
import { concatBytes, equalBytes, label, Reader, Writer } from './bytes.js';
import { ProtocolError } from './errors.js';
import { readHeader, writeHeader } from './header.js';
import { CODE_COUNTER_MAX } from './limits.js';
import { checkCredentialValidity, type Credential, readCredential, verifyCredentialSignature } from './credential.js';
import type { CryptoProvider, Signer } from './suites.js';
import { SIGNATURE_BYTES } from './suites.js';
import type { TrustListBody } from './trust-list.js';

export interface Code {
  readonly credential: Credential;
  /** When the device made the code, seconds since the epoch, by the device's clock. */
  readonly time: number;
  /** Strictly increasing per credential; (serial, counter) is used at most once. */
  readonly counter: number;
  readonly signature: Uint8Array;
  readonly bytes: Uint8Array;
  readonly signed: Uint8Array;
}

export const CODE_LABEL = label('duet/code/v1');

/** The largest code this build can produce or accept (P-256/SM2 device key): 208 bytes. */
export const CODE_MAX_BYTES = 1 + 135 + 8 + SIGNATURE_BYTES;

export async function makeCode(credential: Credential, device: Signer, time: number, counter: number): Promise<Code> {
  if (device.suite !== credential.deviceSuite)
    throw new ProtocolError('unknown_suite', 'code: device signer suite differs from the credential');
  if (counter < 0 || counter > CODE_COUNTER_MAX) throw new ProtocolError('bad_value', `code: counter ${counter}`);
  const w = new Writer(CODE_MAX_BYTES);
  writeHeader(w, 'code');
  w.bytes(credential.bytes, undefined, 'credential');
  w.u32(time, 'time').u32(counter, 'counter');
  const signed = w.finish();
  const signature = await device.sign(concatBytes(CODE_LABEL, signed));
  const bytes = concatBytes(signed, signature);
  const r = new Reader(bytes, 'code');
  r.u8('header');
  const cred = readCredential(r);
  return { credential: cred, time, counter, signature: bytes.subarray(signed.length), bytes, signed: bytes.subarray(0, signed.length) };
}

/** Parses a code strictly: exact header, exact lengths for the suites it names, no trailing bytes. */
export function decodeCode(input: Uint8Array): Code {
  if (input.length > CODE_MAX_BYTES) throw new ProtocolError('too_large', `code: ${input.length} bytes > ${CODE_MAX_BYTES}`);
  const bytes = input.slice();
  const r = new Reader(bytes, 'code');
  readHeader(r, 'code');
  const credential = readCredential(r);
  const time = r.u32('time');
  const counter = r.u32('counter');
  const signed = r.since(0);
  const signature = r.bytesView(SIGNATURE_BYTES, 'signature');
  r.end();
  return { credential, time, counter, signature, bytes, signed };
}

/** Checks the device's signature on the code against the device key inside its credential. */
export async function verifyCodeSignature(code: Code, crypto: CryptoProvider): Promise<void> {
  const c = code.credential;
  const ok = await crypto.suite(c.deviceSuite).verify(c.devicePublicKey, concatBytes(CODE_LABEL, code.signed), code.signature);
  if (!ok) throw new ProtocolError('bad_signature', `code ${c.serial}/${code.counter}: device signature`);
}

export interface Freshness {
  /** How long a code stays good after its time (DESIGN §5: for example 60 s). */
  readonly windowS: number;
  /** Tolerance for the difference between the device's and the terminal's clocks. */
  readonly skewS: number;
}

/**
 * A code is fresh when its time is no later than now + skew and no earlier than now − window − skew,
 * and it was made while its credential was valid (an expired credential produces no codes).
 */
export function checkCodeFreshness(code: Code, nowS: number, f: Freshness): void {
  const c = code.credential;
  if (code.time > nowS + f.skewS) throw new ProtocolError('not_yet_valid', `code time ${code.time} is ahead of now ${nowS}`);
  if (code.time < nowS - f.windowS - f.skewS)
    throw new ProtocolError('expired', `code time ${code.time} is older than the window at ${nowS}`);
  if (code.time < c.notBefore - f.skewS || code.time >= c.notAfter) {
    throw new ProtocolError('expired', `code time ${code.time} is outside credential ${c.serial} validity`);
  }
}

/** Remembers credentials whose issuer signature already verified, so a repeat payer costs one verify. */
export interface VerifiedCredentials {
  has(credentialBytes: Uint8Array): boolean;
  add(credentialBytes: Uint8Array): void;
}

export interface CodeCheck extends Freshness {
  readonly trust: TrustListBody;
  readonly crypto: CryptoProvider;
  readonly nowS: number;
  readonly cache?: VerifiedCredentials;
}

/**
 * Every protocol-level check of a code, in the documented order (docs/protocol.md §Verification):
 * trust → credential signature → device signature → credential validity → code freshness.
 * Terminal rules (replay, deny lists, scene, limits) come after, in the terminal package.
 */
export async function verifyCode(code: Code, check: CodeCheck): Promise<void> {
  await verifyCredentialSignature(code.credential, check.trust, check.crypto, check.cache);
  await verifyCodeSignature(code, check.crypto);
  checkCredentialValidity(code.credential, check.nowS, check.skewS);
  checkCodeFreshness(code, check.nowS, check);
}

/**
 * A bounded set of credentials already verified, keyed by their exact bytes (never by signature
 * alone: a forged body with a copied signature must not hit). Oldest entries go first when full.
 * Looked up by a number read from the signature's last bytes, then compared byte for byte, so a
 * lookup allocates nothing (clearing does one per record).
 */
export class CredentialCache implements VerifiedCredentials {
  private readonly seen = new Map<number, Uint8Array[]>();
  private count = 0;
  constructor(private readonly capacity = 100_000) {}

  /** Up to 40 bits of the credential's last bytes (its signature) and its length: spreads well; equality decides. */
  private static key(bytes: Uint8Array): number {
    const n = bytes.length;
    let k = 0;
    for (let i = Math.max(0, n - 5); i < n; i++) k = k * 256 + (bytes[i] ?? 0);
    return k * 1024 + (n % 1024);
  }

  has(bytes: Uint8Array): boolean {
    const held = this.seen.get(CredentialCache.key(bytes));
    return held?.some((b) => equalBytes(b, bytes)) === true;
  }

  add(bytes: Uint8Array): void {
    if (this.has(bytes)) return;
    if (this.count >= this.capacity) {
      const oldest = this.seen.keys().next();
      if (oldest.done !== true) {
        this.count -= this.seen.get(oldest.value)?.length ?? 0;
        this.seen.delete(oldest.value);
      }
    }
    const k = CredentialCache.key(bytes);
    const held = this.seen.get(k);
    if (held === undefined) this.seen.set(k, [bytes.slice()]);
    else held.push(bytes.slice());
    this.count++;
  }

  clear(): void {
    this.seen.clear();
    this.count = 0;
  }

  get size(): number {
    return this.count;
  }
}
