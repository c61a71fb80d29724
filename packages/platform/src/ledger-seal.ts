/**
 * The tamper-evident ledger (DESIGN §9): a hash chain over every committed entry, Merkle roots over
 * ranges of it signed by the platform and countersigned by a witness (the school's finance office),
 * so that anyone holding the audit command can prove the books were not rewritten. The formats are
 * written down in docs/ledger.md; this file is the one implementation of them (the witness command
 * and the audit import it, and the docs are enough to write a second one).
 *
 * Chain. `ledger_chain(position, entry_id, hash)`: position 1, 2, 3, ... in the order the SEALER
 * appended entries, which is not the order of entry ids. On PostgreSQL an entry's id is taken when
 * it is inserted and its transaction may commit after transactions holding higher ids, and a
 * rolled-back transaction leaves a hole in the ids; so the sealer never assumes "the next id",
 * it appends whatever committed entries are not chained yet, ordered by id among themselves:
 *   hash_n = SHA-256("duet/ledger-entry/v1\0" ‖ hash_(n-1) ‖ canonical bytes of the entry),
 * with hash_0 = 32 zero bytes. An entry that commits late is found because the sealer looks back
 * LEDGER_SEAL_WINDOW_IDS below the highest sealed id (and scans everything now and then), and it
 * simply takes the next position. Sealing runs in its own transactions, never inside a posting
 * transaction, so it adds nothing to the latency of a payment.
 *
 * Roots. Every N positions (or when asked, or when the oldest unrooted position waited a day) a
 * root covers the next contiguous range: its Merkle root (RFC 6962: leaf = H(0x00 ‖ entry hash),
 * node = H(0x01 ‖ left ‖ right), a range of n > 1 leaves splits at the largest power of two below
 * n, so no leaf is ever duplicated), the previous root's hash, the time and the signing key; the
 * platform signs "duet/ledger-root/v1\0" ‖ canonical root bytes with its list-signing key, and the
 * root's hash is SHA-256 of exactly those signed bytes, which the next root links to. The witness
 * signs "duet/ledger-witness/v1\0" ‖ root hash.
 *
 * Concurrency. Several processes may seal at once: each reads the chain's tip inside its
 * transaction and appends after it; the loser of a race hits a unique constraint (position, entry
 * id or root id), which only means another sealer won, and tries again. Signing happens before the
 * transaction (the key store reads the database, which a transaction's connection refuses).
 */
import { type CryptoProvider, concatBytes, equalBytes, SUITE_ID, SUITES, type SuiteName } from '@duet/protocol';
import type { Clock } from './context.js';
import { type Db, type Dialect, type Migration, type Queryable, type Row, type SqlValue, StorageConstraintError } from './db/db.js';
import {
  LEDGER_ROOT_ENTRIES_MAX,
  LEDGER_ROOT_EVERY_ENTRIES,
  LEDGER_ROOT_MAX_AGE_S,
  LEDGER_SEAL_ATTEMPTS_MAX,
  LEDGER_SEAL_BATCH_MAX,
  LEDGER_SEAL_FULL_SCAN_EVERY,
  LEDGER_SEAL_INTERVAL_MS,
  LEDGER_SEAL_TXS_PER_RUN_MAX,
  LEDGER_SEAL_WINDOW_IDS,
} from './limits.js';
import type { SigningKeys } from './signing-keys.js';

export const HASH_BYTES = 32;
/** hash_0 of the chain and prev_root_hash of the first root. */
export const ZERO_HASH: Uint8Array = new Uint8Array(HASH_BYTES);

const utf8 = new TextEncoder();
/** Domain labels (never stored or sent): a hash or signature made for one kind of object is never valid as another. */
export const LEDGER_ENTRY_LABEL: Uint8Array = utf8.encode('duet/ledger-entry/v1\0');
export const LEDGER_ROOT_LABEL: Uint8Array = utf8.encode('duet/ledger-root/v1\0');
export const LEDGER_WITNESS_LABEL: Uint8Array = utf8.encode('duet/ledger-witness/v1\0');
const MERKLE_LEAF = new Uint8Array([0]);
const MERKLE_NODE = new Uint8Array([1]);

// ---------------------------------------------------------------------------------------------
// Canonical bytes

/** One posting as it is chained: its line in the entry, account and signed amount (debit positive). */
export interface ChainPosting {
  readonly line: number;
  readonly account: number;
  readonly amount: number;
}

/** An entry exactly as stored, the input of its chain hash. */
export interface ChainEntry {
  readonly id: number;
  readonly postedAtS: number;
  readonly effectiveAtS: number;
  readonly kind: string;
  readonly reference: string | null;
  readonly createdBy: string;
  readonly memo: string;
  readonly reverses: number | null;
  /** In line order. */
  readonly postings: readonly ChainPosting[];
}

/** Canonical bytes that do not decode, or a stored value that cannot be encoded. */
export class CanonicalBytesError extends RangeError {
  override readonly name = 'CanonicalBytesError';
}

/** Big-endian writer: i64 for every integer, u32 for lengths and counts, u8 for presence flags. */
class CanonicalWriter {
  #buf = new Uint8Array(256);
  #view = new DataView(this.#buf.buffer);
  #at = 0;

  #room(n: number): void {
    if (this.#at + n <= this.#buf.length) return;
    const next = new Uint8Array(Math.max(this.#buf.length * 2, this.#at + n));
    next.set(this.#buf.subarray(0, this.#at));
    this.#buf = next;
    this.#view = new DataView(next.buffer);
  }

  u8(v: 0 | 1): this {
    this.#room(1);
    this.#view.setUint8(this.#at, v);
    this.#at += 1;
    return this;
  }

  u32(v: number, field: string): this {
    if (!Number.isSafeInteger(v) || v < 0 || v > 0xffff_ffff) throw new CanonicalBytesError(`${field}: ${String(v)} is not a u32`);
    this.#room(4);
    this.#view.setUint32(this.#at, v);
    this.#at += 4;
    return this;
  }

  i64(v: number, field: string): this {
    if (!Number.isSafeInteger(v)) throw new CanonicalBytesError(`${field}: ${String(v)} is not a safe integer`);
    this.#room(8);
    this.#view.setBigInt64(this.#at, BigInt(v));
    this.#at += 8;
    return this;
  }

  raw(b: Uint8Array): this {
    this.#room(b.length);
    this.#buf.set(b, this.#at);
    this.#at += b.length;
    return this;
  }

  text(s: string, field: string): this {
    const b = utf8.encode(s);
    return this.u32(b.length, field).raw(b);
  }

  finish(): Uint8Array {
    return this.#buf.slice(0, this.#at);
  }
}

class CanonicalReader {
  readonly #view: DataView;
  #at = 0;
  static readonly #decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

  constructor(readonly bytes: Uint8Array) {
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  #need(n: number, field: string): void {
    if (this.#at + n > this.bytes.length) throw new CanonicalBytesError(`${field}: ends early`);
  }

  flag(field: string): boolean {
    this.#need(1, field);
    const v = this.#view.getUint8(this.#at++);
    if (v > 1) throw new CanonicalBytesError(`${field}: presence flag ${v}`);
    return v === 1;
  }

  u32(field: string): number {
    this.#need(4, field);
    const v = this.#view.getUint32(this.#at);
    this.#at += 4;
    return v;
  }

  i64(field: string): number {
    this.#need(8, field);
    const v = this.#view.getBigInt64(this.#at);
    this.#at += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER))
      throw new CanonicalBytesError(`${field}: ${v} is beyond a safe integer`);
    return Number(v);
  }

  text(field: string): string {
    const n = this.u32(field);
    this.#need(n, field);
    const slice = this.bytes.subarray(this.#at, this.#at + n);
    this.#at += n;
    try {
      return CanonicalReader.#decoder.decode(slice);
    } catch {
      throw new CanonicalBytesError(`${field}: not UTF-8`);
    }
  }

  end(): void {
    if (this.#at !== this.bytes.length) throw new CanonicalBytesError(`${this.bytes.length - this.#at} bytes after the end`);
  }
}

/**
 * The canonical bytes of an entry (docs/ledger.md): id, posted_at, effective_at as i64; kind;
 * reference (flag, then text); created_by; memo; reverses (flag, then i64); the number of postings
 * (u32) and each posting's line, account id and amount as i64. Text is u32 length + UTF-8.
 */
export function encodeEntry(e: ChainEntry): Uint8Array {
  const w = new CanonicalWriter().i64(e.id, 'id').i64(e.postedAtS, 'posted_at').i64(e.effectiveAtS, 'effective_at').text(e.kind, 'kind');
  if (e.reference === null) w.u8(0);
  else w.u8(1).text(e.reference, 'reference');
  w.text(e.createdBy, 'created_by').text(e.memo, 'memo');
  if (e.reverses === null) w.u8(0);
  else w.u8(1).i64(e.reverses, 'reverses');
  w.u32(e.postings.length, 'postings');
  for (const p of e.postings) w.i64(p.line, 'line').i64(p.account, 'account_id').i64(p.amount, 'amount');
  return w.finish();
}

/**
 * The entry whose canonical bytes these are, or CanonicalBytesError. Strict: the result encodes
 * back to exactly these bytes (no trailing bytes, flags 0 or 1, valid UTF-8, safe integers), so
 * two different entries never share canonical bytes.
 */
export function decodeEntry(bytes: Uint8Array): ChainEntry {
  const r = new CanonicalReader(bytes);
  const id = r.i64('id');
  const postedAtS = r.i64('posted_at');
  const effectiveAtS = r.i64('effective_at');
  const kind = r.text('kind');
  const reference = r.flag('reference') ? r.text('reference') : null;
  const createdBy = r.text('created_by');
  const memo = r.text('memo');
  const reverses = r.flag('reverses') ? r.i64('reverses') : null;
  const n = r.u32('postings');
  // Each posting takes 24 bytes: a count the bytes cannot hold is refused before any allocation.
  if (n * 24 > bytes.length) throw new CanonicalBytesError(`postings: ${n} do not fit`);
  const postings: ChainPosting[] = [];
  for (let i = 0; i < n; i++) postings.push({ line: r.i64('line'), account: r.i64('account_id'), amount: r.i64('amount') });
  r.end();
  const e = { id, postedAtS, effectiveAtS, kind, reference, createdBy, memo, reverses, postings };
  if (!equalBytes(encodeEntry(e), bytes)) throw new CanonicalBytesError('does not encode back to the same bytes');
  return e;
}

/** hash_n = SHA-256(label ‖ hash_(n-1) ‖ canonical entry bytes). */
export function entryHash(crypto: CryptoProvider, previous: Uint8Array, e: ChainEntry): Uint8Array {
  return entryHashOfBytes(crypto, previous, encodeEntry(e));
}

/** entryHash over canonical bytes already made. */
export function entryHashOfBytes(crypto: CryptoProvider, previous: Uint8Array, canonical: Uint8Array): Uint8Array {
  if (previous.length !== HASH_BYTES) throw new RangeError(`previous hash: ${previous.length} bytes, expected ${HASH_BYTES}`);
  return crypto.sha256(concatBytes(LEDGER_ENTRY_LABEL, previous, canonical));
}

/**
 * RFC 6962 §2.1 Merkle tree hash of the entry hashes of one root, in position order. Odd counts:
 * a range of n > 1 leaves splits into the first k (the largest power of two below n) and the rest,
 * so an odd leaf is promoted, never duplicated (duplication, as in Bitcoin, lets two different
 * lists share a root).
 */
export function merkleRoot(crypto: CryptoProvider, leaves: readonly Uint8Array[]): Uint8Array {
  if (leaves.length === 0) throw new RangeError('a Merkle root covers at least one entry');
  const hashed = leaves.map((l) => crypto.sha256(concatBytes(MERKLE_LEAF, l)));
  const tree = (lo: number, hi: number): Uint8Array => {
    if (hi - lo === 1) {
      const leaf = hashed[lo];
      if (leaf === undefined) throw new Error('merkle: leaf out of range');
      return leaf;
    }
    let k = 1;
    while (k * 2 < hi - lo) k *= 2;
    return crypto.sha256(concatBytes(MERKLE_NODE, tree(lo, lo + k), tree(lo + k, hi)));
  };
  return tree(0, hashed.length);
}

/** What a root says, before it is signed. */
export interface RootBody {
  readonly id: number;
  readonly firstPosition: number;
  readonly lastPosition: number;
  readonly merkleRoot: Uint8Array;
  readonly prevRootHash: Uint8Array;
  readonly signedAtS: number;
  /** The platform's list-signing key (platform_keys.key_id) and its suite. */
  readonly keyId: number;
  readonly suite: SuiteName;
}

/** Canonical root bytes: id, first and last position (i64), Merkle root, previous root hash, signed_at, key id (i64), suite id (u8 as i64). */
export function encodeRoot(r: RootBody): Uint8Array {
  if (r.merkleRoot.length !== HASH_BYTES || r.prevRootHash.length !== HASH_BYTES)
    throw new CanonicalBytesError('root: hashes must be 32 bytes');
  return new CanonicalWriter()
    .i64(r.id, 'id')
    .i64(r.firstPosition, 'first_position')
    .i64(r.lastPosition, 'last_position')
    .raw(r.merkleRoot)
    .raw(r.prevRootHash)
    .i64(r.signedAtS, 'signed_at')
    .i64(r.keyId, 'key_id')
    .i64(SUITE_ID[r.suite], 'suite')
    .finish();
}

/** The bytes the platform signs: label ‖ canonical root bytes. */
export function rootSigningMessage(r: RootBody): Uint8Array {
  return concatBytes(LEDGER_ROOT_LABEL, encodeRoot(r));
}

/** A root's hash: SHA-256 of exactly what the platform signed; the next root's prev_root_hash. */
export function rootHash(crypto: CryptoProvider, r: RootBody): Uint8Array {
  return crypto.sha256(rootSigningMessage(r));
}

/** The bytes the witness signs for a root: label ‖ root hash. */
export function witnessMessage(rootHashBytes: Uint8Array): Uint8Array {
  if (rootHashBytes.length !== HASH_BYTES) throw new RangeError(`root hash: ${rootHashBytes.length} bytes`);
  return concatBytes(LEDGER_WITNESS_LABEL, rootHashBytes);
}

// ---------------------------------------------------------------------------------------------
// Schema

export const ledgerSealMigrations: Migration[] = [
  {
    id: 'ledger-seal/001-chain-roots-witness',
    sql: (d: Dialect) => [
      // sealed_at is bookkeeping (when the sealer appended it), not part of the hash.
      `CREATE TABLE ledger_chain (
        position ${d.int} PRIMARY KEY CHECK (position >= 1),
        entry_id ${d.int} NOT NULL UNIQUE REFERENCES ledger_entries (id),
        hash ${d.bytes} NOT NULL CHECK (length(hash) = ${HASH_BYTES}),
        sealed_at ${d.int} NOT NULL
      )`,
      `CREATE TABLE ledger_witness_keys (
        id ${d.serialKey},
        name TEXT NOT NULL,
        suite TEXT NOT NULL CHECK (suite IN (${SUITES.map((s) => `'${s}'`).join(', ')})),
        public_key ${d.bytes} NOT NULL UNIQUE,
        added_by TEXT NOT NULL,
        added_at ${d.int} NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('active', 'retired'))
      )`,
      // id is given by the sealer (previous + 1), not by the database: it is part of the signed bytes.
      `CREATE TABLE ledger_roots (
        id ${d.int} PRIMARY KEY CHECK (id >= 1),
        first_position ${d.int} NOT NULL UNIQUE,
        last_position ${d.int} NOT NULL,
        merkle_root ${d.bytes} NOT NULL,
        prev_root_hash ${d.bytes} NOT NULL,
        root_hash ${d.bytes} NOT NULL UNIQUE,
        signed_at ${d.int} NOT NULL,
        key_id ${d.int} NOT NULL,
        signature ${d.bytes} NOT NULL,
        witness_key_id ${d.int} REFERENCES ledger_witness_keys (id),
        witness_signature ${d.bytes},
        witnessed_at ${d.int},
        CHECK (last_position >= first_position AND first_position >= 1),
        CHECK ((witness_key_id IS NULL) = (witness_signature IS NULL) AND (witness_signature IS NULL) = (witnessed_at IS NULL))
      )`,
      ...sealTriggers(d),
    ],
  },
];

/** The chain is append-only; a root is too, except that its countersignature is added once. */
function sealTriggers(d: Dialect): string[] {
  const frozen = ['first_position', 'last_position', 'merkle_root', 'prev_root_hash', 'root_hash', 'signed_at', 'key_id', 'signature'];
  if (d.name === 'sqlite') {
    const refuse = (name: string, op: string, table: string, when = '') =>
      `CREATE TRIGGER ${name} BEFORE ${op} ON ${table} ${when}
       BEGIN SELECT RAISE(ABORT, 'ledger: ${table} is append-only'); END`;
    return [
      refuse('ledger_chain_no_update', 'UPDATE', 'ledger_chain'),
      refuse('ledger_chain_no_delete', 'DELETE', 'ledger_chain'),
      refuse('ledger_roots_no_delete', 'DELETE', 'ledger_roots'),
      refuse(
        'ledger_roots_witness_once',
        'UPDATE',
        'ledger_roots',
        `WHEN OLD.witness_signature IS NOT NULL OR NEW.id IS NOT OLD.id OR ${frozen.map((c) => `NEW.${c} IS NOT OLD.${c}`).join(' OR ')}`,
      ),
    ];
  }
  return [
    `CREATE FUNCTION ledger_seal_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN
       RAISE EXCEPTION 'ledger: % on % refused: % is append-only', TG_OP, TG_TABLE_NAME, TG_TABLE_NAME;
     END
     $$`,
    `CREATE FUNCTION ledger_roots_witness_once() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN
       IF OLD.witness_signature IS NOT NULL OR NEW.id IS DISTINCT FROM OLD.id
          ${frozen.map((c) => `OR NEW.${c} IS DISTINCT FROM OLD.${c}`).join(' ')} THEN
         RAISE EXCEPTION 'ledger: ledger_roots is append-only; only a countersignature may be added, once';
       END IF;
       RETURN NEW;
     END
     $$`,
    'CREATE TRIGGER ledger_chain_append_only BEFORE UPDATE OR DELETE ON ledger_chain FOR EACH ROW EXECUTE FUNCTION ledger_seal_refuse_change()',
    'CREATE TRIGGER ledger_chain_no_truncate BEFORE TRUNCATE ON ledger_chain FOR EACH STATEMENT EXECUTE FUNCTION ledger_seal_refuse_change()',
    'CREATE TRIGGER ledger_roots_no_delete BEFORE DELETE ON ledger_roots FOR EACH ROW EXECUTE FUNCTION ledger_seal_refuse_change()',
    'CREATE TRIGGER ledger_roots_no_truncate BEFORE TRUNCATE ON ledger_roots FOR EACH STATEMENT EXECUTE FUNCTION ledger_seal_refuse_change()',
    'CREATE TRIGGER ledger_roots_witness_once BEFORE UPDATE ON ledger_roots FOR EACH ROW EXECUTE FUNCTION ledger_roots_witness_once()',
  ];
}

// ---------------------------------------------------------------------------------------------
// Reading rows

/** A stored value that is not what the schema promises: the audit reports it as a break. */
export class LedgerRowError extends Error {
  override readonly name = 'LedgerRowError';
}

export function rowInt(v: SqlValue | undefined, field: string): number {
  if (typeof v === 'number' && Number.isSafeInteger(v)) return v;
  throw new LedgerRowError(`${field} is not an integer: ${String(v)}`);
}

export function rowText(v: SqlValue | undefined, field: string): string {
  if (typeof v === 'string') return v;
  throw new LedgerRowError(`${field} is not text`);
}

export function rowBytes(v: SqlValue | undefined, field: string): Uint8Array {
  if (v instanceof Uint8Array) return v;
  throw new LedgerRowError(`${field} is not bytes`);
}

const ENTRY_COLUMNS = 'e.id, e.posted_at, e.effective_at, e.kind, e.reference, e.created_by, e.memo, e.reverses';

function entryOf(r: Row, postings: readonly ChainPosting[]): ChainEntry {
  return {
    id: rowInt(r.id, 'entry id'),
    postedAtS: rowInt(r.posted_at, 'posted_at'),
    effectiveAtS: rowInt(r.effective_at, 'effective_at'),
    kind: rowText(r.kind, 'kind'),
    reference: r.reference === null ? null : rowText(r.reference, 'reference'),
    createdBy: rowText(r.created_by, 'created_by'),
    memo: rowText(r.memo, 'memo'),
    reverses: r.reverses === null ? null : rowInt(r.reverses, 'reverses'),
    postings,
  };
}

/** Entries (with their postings in line order) keyed by id; ids that do not exist are absent. At most LEDGER_CHAIN_PAGE_MAX ids. */
export async function readChainEntries(q: Queryable, ids: readonly number[]): Promise<Map<number, ChainEntry>> {
  const out = new Map<number, ChainEntry>();
  if (ids.length === 0) return out;
  const marks = ids.map(() => '?').join(', ');
  const rows = await q.all(`SELECT ${ENTRY_COLUMNS} FROM ledger_entries e WHERE e.id IN (${marks})`, ids);
  const legs = await postingsOf(q, ids);
  for (const r of rows) {
    const id = rowInt(r.id, 'entry id');
    out.set(id, entryOf(r, legs.get(id) ?? []));
  }
  return out;
}

async function postingsOf(q: Queryable, ids: readonly number[]): Promise<Map<number, ChainPosting[]>> {
  const rows = await q.all(
    `SELECT entry_id, line, account_id, amount FROM ledger_postings WHERE entry_id IN (${ids.map(() => '?').join(', ')}) ORDER BY entry_id, line`,
    ids,
  );
  const out = new Map<number, ChainPosting[]>();
  for (const r of rows) {
    const id = rowInt(r.entry_id, 'posting entry id');
    const list = out.get(id) ?? [];
    list.push({ line: rowInt(r.line, 'line'), account: rowInt(r.account_id, 'account id'), amount: rowInt(r.amount, 'amount') });
    out.set(id, list);
  }
  return out;
}

/** The chain's last position and hash (0 and zeros when empty). */
export async function chainTip(q: Queryable): Promise<{ position: number; hash: Uint8Array }> {
  const tip = await q.one('SELECT position, hash FROM ledger_chain ORDER BY position DESC LIMIT 1');
  return tip === undefined
    ? { position: 0, hash: ZERO_HASH }
    : { position: rowInt(tip.position, 'position'), hash: rowBytes(tip.hash, 'hash') };
}

/** The stored hashes of positions from..to, in order; refuses a range with a hole. */
export async function chainHashes(q: Queryable, from: number, to: number): Promise<Uint8Array[]> {
  const rows = await q.all('SELECT position, hash FROM ledger_chain WHERE position >= ? AND position <= ? ORDER BY position', [from, to]);
  if (rows.length !== to - from + 1) throw new LedgerRowError(`chain positions ${from}..${to}: ${rows.length} rows`);
  return rows.map((r, i) => {
    if (rowInt(r.position, 'position') !== from + i) throw new LedgerRowError(`chain position ${from + i} is missing`);
    return rowBytes(r.hash, 'hash');
  });
}

// ---------------------------------------------------------------------------------------------
// Sealing

export interface SealOptions {
  /** Entries to chain in this one transaction (1..LEDGER_SEAL_BATCH_MAX; default the maximum). */
  readonly max?: number;
  /** Look for unsealed entries in the whole ledger, not only the window below the highest sealed id. */
  readonly fullScan?: boolean;
  /** How far below the highest sealed id to look (default LEDGER_SEAL_WINDOW_IDS). */
  readonly windowIds?: number;
}

export interface SealResult {
  /** Entries this call appended (0 when every committed entry in view was chained already). */
  readonly sealed: number;
  /** The chain's last position after the call. */
  readonly lastPosition: number;
}

/**
 * Appends up to `max` committed entries that are not chained yet, ordered by id among themselves,
 * in one transaction of its own. NEVER call it inside a posting transaction (it opens its own and
 * must see committed entries only). Safe to run in several processes at once: a lost race is a
 * unique violation, after which it looks again (at most LEDGER_SEAL_ATTEMPTS_MAX times).
 *
 * Unsealed entries are looked for among ids above (highest sealed id − LEDGER_SEAL_WINDOW_IDS), an
 * index range scan; `fullScan` looks everywhere (the background sealer does it now and then).
 */
export async function sealLedger(db: Db, crypto: CryptoProvider, nowS: number, o: SealOptions = {}): Promise<SealResult> {
  const max = o.max ?? LEDGER_SEAL_BATCH_MAX;
  if (!Number.isSafeInteger(max) || max < 1 || max > LEDGER_SEAL_BATCH_MAX)
    throw new RangeError(`max ${String(max)}: 1 to ${LEDGER_SEAL_BATCH_MAX} entries per transaction`);
  for (let attempt = 1; ; attempt++) {
    // Committed entries never change (append-only), so they are read outside the transaction: the
    // sealing transaction then reads only the chain, and never a row a posting transaction writes.
    const candidates = await unsealedEntries(db, max, o.fullScan === true ? undefined : (o.windowIds ?? LEDGER_SEAL_WINDOW_IDS));
    if (candidates.length === 0) return { sealed: 0, lastPosition: (await chainTip(db)).position };
    try {
      return await db.tx((q) => appendToChain(q, crypto, candidates, nowS));
    } catch (e) {
      if (!(e instanceof StorageConstraintError && e.kind === 'unique') || attempt >= LEDGER_SEAL_ATTEMPTS_MAX) throw e;
    }
  }
}

/** Up to `max` committed entries outside the chain, lowest ids first, with their postings; all ids, or those above (highest sealed − windowIds). */
async function unsealedEntries(db: Db, max: number, windowIds: number | undefined): Promise<ChainEntry[]> {
  let above = 0;
  if (windowIds !== undefined) {
    const top = await db.one('SELECT MAX(entry_id) AS m FROM ledger_chain');
    above = Math.max(0, (top === undefined || top.m === null ? 0 : rowInt(top.m, 'entry id')) - windowIds);
  }
  const rows = await db.all(
    `SELECT ${ENTRY_COLUMNS} FROM ledger_entries e LEFT JOIN ledger_chain c ON c.entry_id = e.id
     WHERE e.id > ? AND c.entry_id IS NULL ORDER BY e.id LIMIT ?`,
    [above, max],
  );
  if (rows.length === 0) return [];
  const legs = await postingsOf(
    db,
    rows.map((r) => rowInt(r.id, 'entry id')),
  );
  return rows.map((r) => entryOf(r, legs.get(rowInt(r.id, 'entry id')) ?? []));
}

async function appendToChain(q: Queryable, crypto: CryptoProvider, candidates: readonly ChainEntry[], nowS: number): Promise<SealResult> {
  const tip = await chainTip(q);
  // Another sealer may have chained some of them since they were read.
  const taken = await q.all(
    `SELECT entry_id FROM ledger_chain WHERE entry_id IN (${candidates.map(() => '?').join(', ')})`,
    candidates.map((e) => e.id),
  );
  const skip = new Set(taken.map((r) => rowInt(r.entry_id, 'entry id')));
  let position = tip.position;
  let previous = tip.hash;
  const rows: SqlValue[][] = [];
  for (const e of candidates) {
    if (skip.has(e.id)) continue;
    position += 1;
    previous = entryHash(crypto, previous, e);
    rows.push([position, e.id, previous, nowS]);
  }
  if (rows.length > 0) {
    await q.insertMany(
      'ledger_chain',
      [
        { name: 'position', type: 'int' },
        { name: 'entry_id', type: 'int' },
        { name: 'hash', type: 'bytes' },
        { name: 'sealed_at', type: 'int' },
      ],
      rows,
    );
  }
  return { sealed: rows.length, lastPosition: position };
}

// ---------------------------------------------------------------------------------------------
// Roots

/** A stored root with its signatures. */
export interface LedgerRoot extends RootBody {
  readonly rootHash: Uint8Array;
  readonly signature: Uint8Array;
  readonly witnessKeyId: number | null;
  readonly witnessSignature: Uint8Array | null;
  readonly witnessedAtS: number | null;
}

export const ROOT_COLUMNS =
  'r.id, r.first_position, r.last_position, r.merkle_root, r.prev_root_hash, r.root_hash, r.signed_at, r.key_id, r.signature, ' +
  'r.witness_key_id, r.witness_signature, r.witnessed_at, k.suite';

/** Reads a root row joined with its platform key's suite (`LEFT JOIN platform_keys k ON k.key_id = r.key_id`). */
export function rootOf(r: Row): LedgerRoot {
  const suite = SUITES.find((s) => s === r.suite);
  if (suite === undefined) throw new LedgerRowError(`root ${String(r.id)}: signing key ${String(r.key_id)} is not a platform key`);
  return {
    id: rowInt(r.id, 'root id'),
    firstPosition: rowInt(r.first_position, 'first_position'),
    lastPosition: rowInt(r.last_position, 'last_position'),
    merkleRoot: rowBytes(r.merkle_root, 'merkle_root'),
    prevRootHash: rowBytes(r.prev_root_hash, 'prev_root_hash'),
    signedAtS: rowInt(r.signed_at, 'signed_at'),
    keyId: rowInt(r.key_id, 'key_id'),
    suite,
    rootHash: rowBytes(r.root_hash, 'root_hash'),
    signature: rowBytes(r.signature, 'signature'),
    witnessKeyId: r.witness_key_id === null ? null : rowInt(r.witness_key_id, 'witness_key_id'),
    witnessSignature: r.witness_signature === null ? null : rowBytes(r.witness_signature, 'witness_signature'),
    witnessedAtS: r.witnessed_at === null ? null : rowInt(r.witnessed_at, 'witnessed_at'),
  };
}

/** The newest root, or undefined before the first. */
export async function lastRoot(q: Queryable): Promise<LedgerRoot | undefined> {
  const r = await q.one(
    `SELECT ${ROOT_COLUMNS} FROM ledger_roots r LEFT JOIN platform_keys k ON k.key_id = r.key_id ORDER BY r.id DESC LIMIT 1`,
  );
  return r === undefined ? undefined : rootOf(r);
}

export interface CloseRootOptions {
  /** The most positions the root covers (default LEDGER_ROOT_EVERY_ENTRIES, at most LEDGER_ROOT_ENTRIES_MAX). */
  readonly maxEntries?: number;
  /** Close only a full root of maxEntries positions (the periodic rule); otherwise whatever is sealed and not rooted yet. */
  readonly onlyIfFull?: boolean;
}

/**
 * Closes the next root over the sealed positions after the last root (up to maxEntries of them),
 * signed with the platform's active list-signing key, and returns it; undefined when there is
 * nothing (or, with onlyIfFull, not enough) to cover. The key is read and the signature made
 * before the transaction; a root id another process took first means it closed this range, and
 * the call looks again.
 */
export async function closeRoot(
  db: Db,
  crypto: CryptoProvider,
  keys: SigningKeys,
  nowS: number,
  o: CloseRootOptions = {},
): Promise<LedgerRoot | undefined> {
  const maxEntries = o.maxEntries ?? LEDGER_ROOT_EVERY_ENTRIES;
  if (!Number.isSafeInteger(maxEntries) || maxEntries < 1 || maxEntries > LEDGER_ROOT_ENTRIES_MAX)
    throw new RangeError(`maxEntries ${String(maxEntries)}: 1 to ${LEDGER_ROOT_ENTRIES_MAX}`);
  for (let attempt = 1; ; attempt++) {
    const last = await lastRoot(db);
    const first = (last?.lastPosition ?? 0) + 1;
    const tip = (await chainTip(db)).position;
    const size = Math.min(tip - first + 1, maxEntries);
    if (size <= 0 || (o.onlyIfFull === true && size < maxEntries)) return undefined;
    const key = await keys.active('list_signer');
    const lastPosition = first + size - 1;
    const body: RootBody = {
      id: (last?.id ?? 0) + 1,
      firstPosition: first,
      lastPosition,
      merkleRoot: merkleRoot(crypto, await chainHashes(db, first, lastPosition)),
      prevRootHash: last?.rootHash ?? ZERO_HASH,
      signedAtS: nowS,
      keyId: key.keyId,
      suite: key.signer.suite,
    };
    const message = rootSigningMessage(body);
    const signature = await key.signer.sign(message);
    // What the audit will do, done once here: a root that would not verify is never stored.
    if (!(await crypto.suite(body.suite).verify(key.signer.publicKey, message, signature)))
      throw new Error(`ledger: the list-signing key ${key.keyId} made a signature that does not verify`);
    const root: LedgerRoot = {
      ...body,
      rootHash: crypto.sha256(message),
      signature,
      witnessKeyId: null,
      witnessSignature: null,
      witnessedAtS: null,
    };
    try {
      await db.run(
        `INSERT INTO ledger_roots (id, first_position, last_position, merkle_root, prev_root_hash, root_hash, signed_at, key_id, signature)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        [
          root.id,
          root.firstPosition,
          root.lastPosition,
          root.merkleRoot,
          root.prevRootHash,
          root.rootHash,
          root.signedAtS,
          root.keyId,
          signature,
        ],
      );
      return root;
    } catch (e) {
      if (!(e instanceof StorageConstraintError && e.kind === 'unique') || attempt >= LEDGER_SEAL_ATTEMPTS_MAX) throw e;
    }
  }
}

export interface RootSchedule {
  /** A root every this many positions (default LEDGER_ROOT_EVERY_ENTRIES). */
  readonly rootEvery?: number;
  /** Also close a shorter root once its oldest position was sealed this long ago (default LEDGER_ROOT_MAX_AGE_S). */
  readonly rootMaxAgeS?: number;
}

/** Closes every full root that is due, then a short one if the oldest unrooted position is older than rootMaxAgeS. */
export async function closeDueRoots(
  db: Db,
  crypto: CryptoProvider,
  keys: SigningKeys,
  nowS: number,
  o: RootSchedule = {},
): Promise<LedgerRoot[]> {
  const every = o.rootEvery ?? LEDGER_ROOT_EVERY_ENTRIES;
  const closed: LedgerRoot[] = [];
  // Bounded: one run closes at most the roots a full run of sealing can fill, and a few more.
  for (let i = 0; i < LEDGER_SEAL_TXS_PER_RUN_MAX + 10; i++) {
    const r = await closeRoot(db, crypto, keys, nowS, { maxEntries: every, onlyIfFull: true });
    if (r === undefined) break;
    closed.push(r);
  }
  const first = ((await lastRoot(db))?.lastPosition ?? 0) + 1;
  const oldest = await db.one('SELECT sealed_at FROM ledger_chain WHERE position = ?', [first]);
  if (oldest !== undefined && rowInt(oldest.sealed_at, 'sealed_at') <= nowS - (o.rootMaxAgeS ?? LEDGER_ROOT_MAX_AGE_S)) {
    const r = await closeRoot(db, crypto, keys, nowS, { maxEntries: every });
    if (r !== undefined) closed.push(r);
  }
  return closed;
}

// ---------------------------------------------------------------------------------------------
// The background sealer

export interface LedgerSealerOptions extends RootSchedule {
  /** Milliseconds between runs (default LEDGER_SEAL_INTERVAL_MS). */
  readonly intervalMs?: number;
  /** Entries per sealing transaction (default LEDGER_SEAL_BATCH_MAX). */
  readonly batch?: number;
  /** A run that failed (storage down): it is retried at the next interval. Default: ignored. */
  readonly onError?: (e: unknown) => void;
}

export interface SealRun {
  readonly sealed: number;
  readonly lastPosition: number;
  readonly roots: readonly LedgerRoot[];
}

/**
 * Seals the ledger in the background: a run at start (a full scan, catching up after a crash),
 * then one every intervalMs after the previous one ended. Timers are unref'd, so the sealer never
 * keeps a process alive. Runs never overlap: runOnce called while one runs waits for it and then
 * runs again (it must see what was committed before it was called).
 */
export class LedgerSealer {
  readonly #db: Db;
  readonly #crypto: CryptoProvider;
  readonly #keys: SigningKeys;
  readonly #clock: Clock;
  readonly #o: LedgerSealerOptions;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  #running = false;
  #runs = 0;
  #lastFailed = false;

  constructor(db: Db, crypto: CryptoProvider, keys: SigningKeys, clock: Clock, options: LedgerSealerOptions = {}) {
    const interval = options.intervalMs ?? LEDGER_SEAL_INTERVAL_MS;
    if (!Number.isSafeInteger(interval) || interval < 1) throw new RangeError(`intervalMs ${String(interval)}: a whole number of ms >= 1`);
    this.#db = db;
    this.#crypto = crypto;
    this.#keys = keys;
    this.#clock = clock;
    this.#o = options;
  }

  /** True between start and stop. */
  get running(): boolean {
    return this.#running;
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#schedule(0);
  }

  /** Stops the timer and waits for a run in progress to end. */
  async stop(): Promise<void> {
    this.#running = false;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#queue.catch(() => {});
  }

  /** Seals what is committed now and closes the roots that are due. */
  runOnce(): Promise<SealRun> {
    const run = this.#queue.catch(() => {}).then(() => this.#run());
    this.#queue = run;
    return run;
  }

  /** One last run at shutdown, skipped when the previous run failed (storage down: nothing to gain by waiting). */
  async finish(): Promise<void> {
    await this.stop();
    if (!this.#lastFailed) await this.runOnce().catch(() => {});
  }

  #schedule(ms: number): void {
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.runOnce()
        .catch((e: unknown) => this.#o.onError?.(e))
        .finally(() => {
          if (this.#running) this.#schedule(this.#o.intervalMs ?? LEDGER_SEAL_INTERVAL_MS);
        });
    }, ms);
    this.#timer.unref();
  }

  async #run(): Promise<SealRun> {
    const nowS = Math.floor(this.#clock.nowMs() / 1000);
    const fullScan = this.#runs % LEDGER_SEAL_FULL_SCAN_EVERY === 0;
    this.#runs += 1;
    const max = this.#o.batch ?? LEDGER_SEAL_BATCH_MAX;
    try {
      let sealed = 0;
      let lastPosition = 0;
      for (let i = 0; i < LEDGER_SEAL_TXS_PER_RUN_MAX; i++) {
        // On SQLite writers are serialised (BEGIN IMMEDIATE to COMMIT), so ids commit in order and
        // nothing below the highest sealed id can appear late: no look-back window, which on SQLite
        // would walk up to LEDGER_SEAL_WINDOW_IDS rows on the event loop every transaction.
        const r = await sealLedger(this.#db, this.#crypto, nowS, {
          max,
          fullScan,
          ...(this.#db.dialect.name === 'sqlite' ? { windowIds: 0 } : {}),
        });
        sealed += r.sealed;
        lastPosition = r.lastPosition;
        if (r.sealed < max) break;
        // Let requests in between sealing transactions: on SQLite each one holds the event loop.
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
      const roots = await closeDueRoots(this.#db, this.#crypto, this.#keys, nowS, this.#o);
      this.#lastFailed = false;
      return { sealed, lastPosition, roots };
    } catch (e) {
      this.#lastFailed = true;
      throw e;
    }
  }
}
