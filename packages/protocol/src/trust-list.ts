/**
 * The trust list: the root-signed set of issuer, terminal-CA and list-signing keys a terminal may
 * rely on. Terminals are provisioned with the root public key(s) and accept a list only if a root
 * signed it, it has not expired, and its version is not older than the one they hold.
 */
import { concatBytes, label, Reader, Writer } from './bytes.js';
import { ProtocolError } from './errors.js';
import { checkValidity, readHeader, readValidity, writeHeader } from './header.js';
import { TRUST_LIST_KEYS_MAX } from './limits.js';
import type { CryptoProvider, Signer, SuiteName } from './suites.js';
import { PUBLIC_KEY_BYTES, SIGNATURE_BYTES, SUITE_ID, suiteFromId } from './suites.js';

export const KEY_ROLES = ['issuer', 'terminal_ca', 'list_signer'] as const;
export type KeyRole = (typeof KEY_ROLES)[number];
const ROLE_ID: { readonly [R in KeyRole]: number } = { issuer: 1, terminal_ca: 2, list_signer: 3 };

export interface TrustedKey {
  readonly keyId: number;
  readonly role: KeyRole;
  readonly suite: SuiteName;
  /** Seconds since the epoch. Objects are accepted only if made inside this window. */
  readonly notBefore: number;
  readonly notAfter: number;
  readonly publicKey: Uint8Array;
}

/** A root key as pinned in a terminal or wallet at provisioning. */
export interface RootKey {
  readonly keyId: number;
  readonly suite: SuiteName;
  readonly publicKey: Uint8Array;
}

export interface TrustListBody {
  readonly listVersion: number;
  readonly issuedAt: number;
  readonly expiresAt: number;
  readonly rootKeyId: number;
  readonly rootSuite: SuiteName;
  readonly keys: readonly TrustedKey[];
}

export interface TrustList extends TrustListBody {
  readonly signature: Uint8Array;
  /** The exact bytes this list was decoded from or encoded to. */
  readonly bytes: Uint8Array;
  /** The bytes the root signature covers (everything before it). */
  readonly signed: Uint8Array;
}

export const TRUST_LIST_LABEL = label('duet/trust-list/v1');

function encodeBody(body: TrustListBody): Uint8Array {
  if (body.keys.length > TRUST_LIST_KEYS_MAX) throw new ProtocolError('too_large', `trust list: ${body.keys.length} keys`);
  // The decoder's rules, so the root never signs a list that every terminal would refuse.
  if (body.expiresAt <= body.issuedAt) throw new ProtocolError('bad_value', 'trust list: expires_at <= issued_at');
  const w = new Writer(32 + body.keys.length * 48);
  writeHeader(w, 'trustList');
  w.u32(body.listVersion, 'list_version').u32(body.issuedAt, 'issued_at').u32(body.expiresAt, 'expires_at');
  w.u8(SUITE_ID[body.rootSuite], 'root_suite').u16(body.rootKeyId, 'root_key_id');
  w.u8(body.keys.length, 'key_count');
  let previous = -1;
  for (const k of body.keys) {
    if (k.keyId <= previous) throw new ProtocolError('not_canonical', `trust list: key ids must ascend (${k.keyId})`);
    previous = k.keyId;
    if (k.notAfter <= k.notBefore) throw new ProtocolError('bad_value', `trust list key ${k.keyId}: not_after <= not_before`);
    w.u16(k.keyId, 'key_id').u8(ROLE_ID[k.role], 'role').u8(SUITE_ID[k.suite], 'suite');
    w.u32(k.notBefore, 'not_before').u32(k.notAfter, 'not_after');
    w.bytes(k.publicKey, PUBLIC_KEY_BYTES[k.suite], 'public_key');
  }
  return w.finish();
}

export async function signTrustList(body: TrustListBody, root: Signer): Promise<TrustList> {
  if (root.suite !== body.rootSuite) throw new ProtocolError('unknown_suite', 'trust list: root signer suite differs from root_suite');
  const signed = encodeBody(body);
  const signature = await root.sign(concatBytes(TRUST_LIST_LABEL, signed));
  const bytes = concatBytes(signed, signature);
  return { ...body, signature, bytes, signed };
}

export function decodeTrustList(bytes: Uint8Array): TrustList {
  const r = new Reader(bytes, 'trust_list');
  readHeader(r, 'trustList');
  const listVersion = r.u32('list_version');
  const issuedAt = r.u32('issued_at');
  const expiresAt = r.u32('expires_at');
  if (expiresAt <= issuedAt) throw new ProtocolError('bad_value', 'trust list: expires_at <= issued_at');
  const rootSuite = suiteFromId(r.u8('root_suite'), 'root_suite');
  const rootKeyId = r.u16('root_key_id');
  const count = r.u8('key_count');
  if (count > TRUST_LIST_KEYS_MAX) throw new ProtocolError('too_large', `trust list: ${count} keys`);
  const keys: TrustedKey[] = [];
  let previous = -1;
  for (let i = 0; i < count; i++) {
    const keyId = r.u16('key_id');
    if (keyId <= previous) throw new ProtocolError('not_canonical', `trust list: key ids must ascend (${keyId})`);
    previous = keyId;
    const roleId = r.u8('role');
    const role = KEY_ROLES[roleId - 1];
    if (role === undefined) throw new ProtocolError('bad_value', `trust list: role ${roleId}`);
    const suite = suiteFromId(r.u8('suite'), 'suite');
    const { notBefore, notAfter } = readValidity(r, `trust list key ${keyId}`);
    const publicKey = r.bytesCopy(PUBLIC_KEY_BYTES[suite], 'public_key');
    keys.push({ keyId, role, suite, notBefore, notAfter, publicKey });
  }
  const signedEnd = r.position;
  const signature = r.bytesCopy(SIGNATURE_BYTES, 'signature');
  r.end();
  const copy = bytes.slice();
  return {
    listVersion,
    issuedAt,
    expiresAt,
    rootKeyId,
    rootSuite,
    keys,
    signature,
    bytes: copy,
    signed: copy.subarray(0, signedEnd),
  };
}

/**
 * Verifies a decoded trust list against the pinned roots: the root is known, the signature holds,
 * the list is current at `nowS`, and (if given) its version is not older than the one held.
 */
export async function verifyTrustList(
  list: TrustList,
  roots: readonly RootKey[],
  crypto: CryptoProvider,
  nowS: number,
  heldVersion?: number,
): Promise<void> {
  const root = roots.find((k) => k.keyId === list.rootKeyId && k.suite === list.rootSuite);
  if (root === undefined) throw new ProtocolError('unknown_key', `trust list: root key ${list.rootKeyId} is not pinned`);
  const ok = await crypto.suite(root.suite).verify(root.publicKey, concatBytes(TRUST_LIST_LABEL, list.signed), list.signature);
  if (!ok) throw new ProtocolError('bad_signature', 'trust list: root signature');
  checkValidity({ notBefore: list.issuedAt, notAfter: list.expiresAt }, nowS, 0, 'trust list');
  if (heldVersion !== undefined && list.listVersion < heldVersion) {
    throw new ProtocolError('version_regressed', `trust list: version ${list.listVersion} < held ${heldVersion}`);
  }
}

/**
 * Finds the key that signed an object: right id, right role, right suite, and an object whose whole
 * life lies inside the key's: made (`fromS`) while the key was valid and ending (`untilS`) no later
 * than the key does. So a retired key, or one leaked after retirement, cannot sign a backdated
 * object that is still valid today; and rotation (DESIGN §4) keeps an old key listed exactly until
 * everything it signed has expired. Each failure has its own code, so a terminal can say which.
 */
export function findTrustedKey(
  list: TrustListBody,
  keyId: number,
  role: KeyRole,
  suite: SuiteName,
  fromS: number,
  untilS: number,
): TrustedKey {
  const key = list.keys.find((k) => k.keyId === keyId);
  if (key === undefined) throw new ProtocolError('unknown_key', `${role} key ${keyId} is not in trust list v${list.listVersion}`);
  if (key.role !== role) throw new ProtocolError('wrong_key_role', `key ${keyId} is a ${key.role} key, not ${role}`);
  if (key.suite !== suite) throw new ProtocolError('unknown_suite', `key ${keyId} is ${key.suite}, object says ${suite}`);
  checkValidity(key, fromS, 0, `${role} key ${keyId}`);
  if (untilS > key.notAfter) {
    throw new ProtocolError('expired', `${role} key ${keyId} expires at ${key.notAfter}, before the object it signed (${untilS})`);
  }
  return key;
}
