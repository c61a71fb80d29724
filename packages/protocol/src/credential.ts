/**
 * The credential (the first certificate): the platform's issuer key binds a device public key to a
 * pseudonymous holder, a campus, a role, scopes and offline limits, for a short validity. Terminals
 * verify it with nothing but the trust list. It is sized for the QR code: see docs/protocol.md.
 */
import { concatBytes, label, Reader, Writer } from './bytes.js';
import { ProtocolError } from './errors.js';
import { checkValidity, readHeader, readValidity, writeHeader } from './header.js';
import { ID48_MAX } from './limits.js';
import { type Fen, fenNonNegative } from './money.js';
import type { CryptoProvider, Signer, SuiteName } from './suites.js';
import { PUBLIC_KEY_BYTES, SIGNATURE_BYTES, SUITE_ID, suiteFromId } from './suites.js';
import { findTrustedKey, type TrustListBody } from './trust-list.js';

export const ROLES = ['student', 'teacher', 'staff'] as const;
export type Role = (typeof ROLES)[number];

/** Scopes are bits: where a credential may be used. A terminal's scene needs the matching bit. */
export const SCOPES = ['canteen', 'shop', 'bus', 'gate'] as const;
export type Scope = (typeof SCOPES)[number];

/** The longest validity a credential may claim: 31 days. The platform's policy issues far shorter (72 h). */
export const CREDENTIAL_LIFETIME_MAX_S = 31 * 86_400;

export interface OfflineLimits {
  /** The most one offline payment may be. */
  readonly perPayment: Fen;
  /** The most this credential may spend offline in all (across terminals, as far as each can tell). */
  readonly offlineTotal: Fen;
  /** The most offline payments this credential may make (EMV-style count bound, DESIGN §16). */
  readonly offlineCount: number;
}

export interface CredentialBody {
  readonly issuerSuite: SuiteName;
  readonly deviceSuite: SuiteName;
  readonly issuerKeyId: number;
  /** Unique per issued credential (u48, never 0). Replay and deny lists key on it. */
  readonly serial: number;
  /** Pseudonymous holder id (u48, never 0): the platform maps it to a person; terminals never see a name. */
  readonly holder: number;
  readonly campus: number;
  readonly role: Role;
  readonly scopes: readonly Scope[];
  readonly devicePublicKey: Uint8Array;
  readonly limits: OfflineLimits;
  readonly notBefore: number;
  readonly notAfter: number;
}

export interface Credential extends CredentialBody {
  readonly signature: Uint8Array;
  readonly bytes: Uint8Array;
  readonly signed: Uint8Array;
}

export const CREDENTIAL_LABEL = label('duet/credential/v1');

/** Size of an encoded credential for a pair of suites (71 or 70 bytes of body, plus 64 of signature). */
export function credentialLength(deviceSuite: SuiteName): number {
  return 38 + PUBLIC_KEY_BYTES[deviceSuite] + SIGNATURE_BYTES;
}

export function scopesToBits(scopes: readonly Scope[]): number {
  let bits = 0;
  for (const s of scopes) bits |= 1 << SCOPES.indexOf(s);
  return bits;
}

export function bitsToScopes(bits: number, field: string): Scope[] {
  if (bits >>> SCOPES.length !== 0) throw new ProtocolError('bad_value', `${field}: unknown scope bits ${bits.toString(2)}`);
  return SCOPES.filter((_, i) => (bits & (1 << i)) !== 0);
}

export function roleFromId(id: number, field: string): Role {
  const role = ROLES[id - 1];
  if (role === undefined) throw new ProtocolError('bad_value', `${field}: role ${id}`);
  return role;
}

export function roleId(role: Role): number {
  return ROLES.indexOf(role) + 1;
}

function checkBody(b: CredentialBody): void {
  if (b.serial < 1 || b.serial > ID48_MAX) throw new ProtocolError('bad_value', `credential: serial ${b.serial}`);
  if (b.holder < 1 || b.holder > ID48_MAX) throw new ProtocolError('bad_value', `credential: holder ${b.holder}`);
  if (b.limits.perPayment > b.limits.offlineTotal) throw new ProtocolError('bad_value', 'credential: per_payment > offline_total');
  if (b.limits.offlineCount < 1) throw new ProtocolError('bad_value', 'credential: offline_count is 0');
  if (b.notAfter - b.notBefore > CREDENTIAL_LIFETIME_MAX_S)
    throw new ProtocolError('bad_value', 'credential: validity longer than 31 days');
  if (b.notAfter <= b.notBefore) throw new ProtocolError('bad_value', 'credential: not_after <= not_before');
  if (b.scopes.length === 0) throw new ProtocolError('bad_value', 'credential: no scope');
}

export function encodeCredentialBody(b: CredentialBody): Uint8Array {
  checkBody(b);
  const w = new Writer(80);
  writeHeader(w, 'credential');
  w.u8((SUITE_ID[b.issuerSuite] << 4) | SUITE_ID[b.deviceSuite], 'suites');
  w.u16(b.issuerKeyId, 'issuer_key_id').u48(b.serial, 'serial').u48(b.holder, 'holder');
  w.u16(b.campus, 'campus').u8(roleId(b.role), 'role').u8(scopesToBits(b.scopes), 'scopes');
  w.bytes(b.devicePublicKey, PUBLIC_KEY_BYTES[b.deviceSuite], 'device_public_key');
  w.u32(b.limits.perPayment, 'per_payment').u32(b.limits.offlineTotal, 'offline_total').u16(b.limits.offlineCount, 'offline_count');
  w.u32(b.notBefore, 'not_before').u32(b.notAfter, 'not_after');
  return w.finish();
}

export async function signCredential(body: CredentialBody, issuer: Signer): Promise<Credential> {
  if (issuer.suite !== body.issuerSuite)
    throw new ProtocolError('unknown_suite', 'credential: issuer signer suite differs from issuer_suite');
  const signed = encodeCredentialBody(body);
  const signature = await issuer.sign(concatBytes(CREDENTIAL_LABEL, signed));
  const bytes = concatBytes(signed, signature);
  return { ...body, signature, bytes, signed: bytes.subarray(0, signed.length) };
}

/** Reads a credential from inside a larger object (a code). The views it returns alias `r`'s input. */
export function readCredential(r: Reader): Credential {
  const start = r.position;
  readHeader(r, 'credential');
  const suites = r.u8('suites');
  const issuerSuite = suiteFromId(suites >> 4, 'issuer_suite');
  const deviceSuite = suiteFromId(suites & 0x0f, 'device_suite');
  const issuerKeyId = r.u16('issuer_key_id');
  const serial = r.u48('serial');
  const holder = r.u48('holder');
  const campus = r.u16('campus');
  const role = roleFromId(r.u8('role'), 'role');
  const scopes = bitsToScopes(r.u8('scopes'), 'scopes');
  const devicePublicKey = r.bytesView(PUBLIC_KEY_BYTES[deviceSuite], 'device_public_key');
  const perPayment = fenNonNegative(r.u32('per_payment'));
  const offlineTotal = fenNonNegative(r.u32('offline_total'));
  const offlineCount = r.u16('offline_count');
  const { notBefore, notAfter } = readValidity(r, 'credential');
  const signed = r.since(start);
  const signature = r.bytesView(SIGNATURE_BYTES, 'signature');
  const body: CredentialBody = {
    issuerSuite,
    deviceSuite,
    issuerKeyId,
    serial,
    holder,
    campus,
    role,
    scopes,
    devicePublicKey,
    limits: { perPayment, offlineTotal, offlineCount },
    notBefore,
    notAfter,
  };
  checkBody(body);
  return { ...body, signature, bytes: r.since(start), signed };
}

export function decodeCredential(bytes: Uint8Array): Credential {
  const copy = bytes.slice();
  const r = new Reader(copy, 'credential');
  const c = readCredential(r);
  r.end();
  return c;
}

/**
 * Checks the issuer's signature on a credential: the issuer key must be in the trust list, be an
 * issuer key of the credential's suite, and have been valid when the credential became valid.
 */
export async function verifyCredentialSignature(
  c: Credential,
  trust: TrustListBody,
  crypto: CryptoProvider,
  cache?: { has(bytes: Uint8Array): boolean; add(bytes: Uint8Array): void },
): Promise<void> {
  // The key lookup runs every time, so a key dropped from a newer trust list stops a cached credential.
  const key = findTrustedKey(trust, c.issuerKeyId, 'issuer', c.issuerSuite, c.notBefore, c.notAfter);
  if (cache?.has(c.bytes) === true) return;
  const ok = await crypto.suite(c.issuerSuite).verify(key.publicKey, concatBytes(CREDENTIAL_LABEL, c.signed), c.signature);
  if (!ok) throw new ProtocolError('bad_signature', `credential ${c.serial}: issuer signature`);
  cache?.add(c.bytes);
}

/** Checks the credential's validity window at `nowS`, with a tolerance for clock skew. */
export function checkCredentialValidity(c: CredentialBody, nowS: number, skewS: number): void {
  checkValidity(c, nowS, skewS, `credential ${c.serial}`);
}
