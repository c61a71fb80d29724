/**
 * Deny lists: signed, versioned sets of credential serials, holders and card serials that terminals
 * must refuse. A full list replaces what a terminal holds; a delta adds and removes entries on top of
 * one exact base version. Entries are sorted and unique, so a list has one canonical encoding and a
 * terminal can hold a million entries as sorted typed arrays (8 bytes each).
 */
import { concatBytes, label, Reader, Writer } from './bytes.js';
import { ProtocolError } from './errors.js';
import { checkValidity, readHeader, type SignerRef, writeHeader } from './header.js';
import { DENY_LIST_ENTRIES_MAX, ID48_MAX } from './limits.js';
import type { CryptoProvider, Signer } from './suites.js';
import { SIGNATURE_BYTES, SUITE_ID, suiteFromId } from './suites.js';
import { findTrustedKey, type TrustListBody } from './trust-list.js';

export const DENY_TYPES = ['credential', 'holder', 'card'] as const;
export type DenyType = (typeof DENY_TYPES)[number];

export interface DenyEntry {
  readonly type: DenyType;
  readonly id: number;
  /** In a full list every entry is an add. */
  readonly op: 'add' | 'remove';
}

export interface DenyListBody {
  readonly signer: SignerRef;
  readonly kind: 'full' | 'delta';
  readonly listVersion: number;
  /** The version a delta applies to; 0 for a full list. */
  readonly baseVersion: number;
  readonly issuedAt: number;
  /** Past this a terminal treats the list as stale and refuses offline payments (DESIGN §16). */
  readonly expiresAt: number;
  /** Entries in columns: tag = type id | (remove ? 0x80 : 0), id = u48. Sorted by (type, id), unique. */
  readonly tags: Uint8Array;
  readonly ids: Float64Array;
}

export interface DenyList extends DenyListBody {
  readonly signature: Uint8Array;
  readonly bytes: Uint8Array;
  readonly signed: Uint8Array;
}

export const DENY_LIST_LABEL = label('duet/deny-list/v1');
const ENTRY_BYTES = 7;
const HEADER_BYTES = 1 + 3 + 1 + 16 + 4;

/** Builds the sorted columns from entries in any order; duplicates are refused. */
export function denyColumns(entries: readonly DenyEntry[]): { tags: Uint8Array; ids: Float64Array } {
  const sorted = [...entries].sort((a, b) => typeIdOf(a.type) - typeIdOf(b.type) || a.id - b.id);
  const tags = new Uint8Array(sorted.length);
  const ids = new Float64Array(sorted.length);
  sorted.forEach((e, i) => {
    tags[i] = typeIdOf(e.type) | (e.op === 'remove' ? 0x80 : 0);
    ids[i] = e.id;
  });
  return { tags, ids };
}

export function denyEntries(list: Pick<DenyListBody, 'tags' | 'ids'>): DenyEntry[] {
  const out: DenyEntry[] = [];
  for (let i = 0; i < list.tags.length; i++) {
    const tag = list.tags[i] as number;
    out.push({ type: DENY_TYPES[(tag & 0x7f) - 1] as DenyType, id: list.ids[i] as number, op: tag & 0x80 ? 'remove' : 'add' });
  }
  return out;
}

function typeIdOf(t: DenyType): number {
  return DENY_TYPES.indexOf(t) + 1;
}

function checkEntries(kind: 'full' | 'delta', tags: Uint8Array, ids: Float64Array): void {
  if (tags.length !== ids.length) throw new ProtocolError('bad_length', 'deny list: columns differ in length');
  if (tags.length > DENY_LIST_ENTRIES_MAX) throw new ProtocolError('too_large', `deny list: ${tags.length} entries`);
  let prevKey = -1;
  for (let i = 0; i < tags.length; i++) {
    const tag = tags[i] as number;
    const type = tag & 0x7f;
    const id = ids[i] as number;
    if (type < 1 || type > DENY_TYPES.length) throw new ProtocolError('bad_value', `deny list: entry ${i} type ${type}`);
    if (kind === 'full' && tag & 0x80) throw new ProtocolError('bad_value', `deny list: a full list cannot remove (entry ${i})`);
    if (!Number.isInteger(id) || id < 1 || id > ID48_MAX) throw new ProtocolError('bad_value', `deny list: entry ${i} id ${id}`);
    const key = type * 2 ** 48 + id;
    if (key <= prevKey) throw new ProtocolError('not_canonical', `deny list: entry ${i} is out of order or repeated`);
    prevKey = key;
  }
}

function checkHeader(b: Omit<DenyListBody, 'tags' | 'ids' | 'signer'>): void {
  if (b.kind === 'full' && b.baseVersion !== 0) throw new ProtocolError('bad_value', 'deny list: a full list has base version 0');
  if (b.kind === 'delta' && b.baseVersion >= b.listVersion)
    throw new ProtocolError('bad_value', 'deny list: delta base must be older than the list');
  if (b.expiresAt <= b.issuedAt) throw new ProtocolError('bad_value', 'deny list: expires_at <= issued_at');
}

export async function signDenyList(body: DenyListBody, signer: Signer): Promise<DenyList> {
  if (signer.suite !== body.signer.suite) throw new ProtocolError('unknown_suite', 'deny list: signer suite differs');
  checkHeader(body);
  checkEntries(body.kind, body.tags, body.ids);
  const w = new Writer(HEADER_BYTES + body.tags.length * ENTRY_BYTES);
  writeHeader(w, 'denyList');
  w.u8(SUITE_ID[body.signer.suite], 'signer_suite').u16(body.signer.keyId, 'signer_key_id');
  w.u8(body.kind === 'full' ? 1 : 2, 'kind');
  w.u32(body.listVersion, 'list_version').u32(body.baseVersion, 'base_version');
  w.u32(body.issuedAt, 'issued_at').u32(body.expiresAt, 'expires_at');
  w.u32(body.tags.length, 'count');
  for (let i = 0; i < body.tags.length; i++) w.u8(body.tags[i] as number, 'tag').u48(body.ids[i] as number, 'id');
  const signed = w.finish();
  const signature = await signer.sign(concatBytes(DENY_LIST_LABEL, signed));
  const bytes = concatBytes(signed, signature);
  return { ...body, signature, bytes, signed: bytes.subarray(0, signed.length) };
}

export function decodeDenyList(input: Uint8Array): DenyList {
  const bytes = input.slice();
  const r = new Reader(bytes, 'deny_list');
  readHeader(r, 'denyList');
  const signer: SignerRef = { suite: suiteFromId(r.u8('signer_suite'), 'signer_suite'), keyId: r.u16('signer_key_id') };
  const kindId = r.u8('kind');
  if (kindId !== 1 && kindId !== 2) throw new ProtocolError('bad_value', `deny list: kind ${kindId}`);
  const kind = kindId === 1 ? 'full' : 'delta';
  const listVersion = r.u32('list_version');
  const baseVersion = r.u32('base_version');
  const issuedAt = r.u32('issued_at');
  const expiresAt = r.u32('expires_at');
  checkHeader({ kind, listVersion, baseVersion, issuedAt, expiresAt });
  const count = r.u32('count');
  if (count > DENY_LIST_ENTRIES_MAX) throw new ProtocolError('too_large', `deny list: ${count} entries`);
  // Check the length before allocating columns: a hostile count cannot make us allocate.
  if (r.remaining !== count * ENTRY_BYTES + SIGNATURE_BYTES) {
    throw new ProtocolError(
      'bad_length',
      `deny list: ${count} entries need ${count * ENTRY_BYTES + SIGNATURE_BYTES} bytes, have ${r.remaining}`,
    );
  }
  const tags = new Uint8Array(count);
  const ids = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    tags[i] = r.u8('tag');
    ids[i] = r.u48('id');
  }
  checkEntries(kind, tags, ids);
  const signed = r.since(0);
  const signature = r.bytesView(SIGNATURE_BYTES, 'signature');
  r.end();
  return { signer, kind, listVersion, baseVersion, issuedAt, expiresAt, tags, ids, signature, bytes, signed };
}

/** Verifies the list-signing key's signature, and that the list is not past its expiry at `nowS`. */
export async function verifyDenyList(list: DenyList, trust: TrustListBody, crypto: CryptoProvider, nowS: number): Promise<void> {
  const key = findTrustedKey(trust, list.signer.keyId, 'list_signer', list.signer.suite, list.issuedAt, list.expiresAt);
  const ok = await crypto.suite(list.signer.suite).verify(key.publicKey, concatBytes(DENY_LIST_LABEL, list.signed), list.signature);
  if (!ok) throw new ProtocolError('bad_signature', `deny list v${list.listVersion}: signature`);
  checkValidity({ notBefore: list.issuedAt, notAfter: list.expiresAt }, nowS, 0, `deny list v${list.listVersion}`);
}
