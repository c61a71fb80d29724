/**
 * The full ledger audit (DESIGN §9): everything `duet audit` and GET /v1/ledger/audit check, in
 * order, stopping at the first break and naming it precisely (position, entry, root or account,
 * and what was expected against what was found):
 *
 *   1. every entry balances (postings sum to zero, at least two)            ledger.ts auditLedger
 *   2. every account's balance (its balance rows) equals the sum of its postings   auditLedger
 *   3. the hash chain recomputes from position 1: positions contiguous, every sealed entry present,
 *      every stored hash equal to the one recomputed from the entry as it is now (content changed
 *      after sealing is caught here)
 *   4. no entry posted more than the sealing grace ago is missing from the chain
 *   5. every root: contiguous ids and ranges, its Merkle root recomputes from the chain, it links to
 *      the previous root, its hash recomputes, its platform signature verifies under the platform's
 *      list-signing key (platform_keys), and its witness countersignature, if any, verifies under a
 *      registered witness key (and one of the pinned keys, when the auditor pins them).
 *
 * Unwitnessed roots, unsealed entries younger than the grace and sealed positions not under a root
 * yet are warnings, not breaks: they are the normal state of a live ledger for a while.
 *
 * Reads only, and never in one long transaction (on SQLite that would hold the write lock): every
 * check is one statement or reads immutable rows, and the chain and roots are checked up to the
 * tip read at the start, so a platform that keeps posting and sealing meanwhile is audited
 * consistently. Memory is bounded: the chain is read a page at a time.
 */
import { type CryptoProvider, equalBytes, SUITES, type SuiteName, toHex } from '@duet/protocol';
import type { Queryable } from './db/db.js';
import { auditLedger } from './ledger.js';
import {
  chainHashes,
  entryHash,
  LedgerRowError,
  type LedgerRoot,
  merkleRoot,
  ROOT_COLUMNS,
  readChainEntries,
  rootHash,
  rootOf,
  rowBytes,
  rowInt,
  rowText,
  rootSigningMessage,
  witnessMessage,
  ZERO_HASH,
} from './ledger-seal.js';
import { LEDGER_CHAIN_PAGE_MAX, LEDGER_ROOTS_PAGE_MAX, LEDGER_SEAL_GRACE_S } from './limits.js';

/** The checks, in the order they run. */
export const AUDIT_CHECKS = {
  entries_balance: { en: 'every entry balances', zh: '每笔分录借贷平衡' },
  balances_match_postings: { en: "every account's balance equals the sum of its postings", zh: '每个账户余额等于其过账合计' },
  chain_recomputes: { en: 'the hash chain recomputes from position 1', zh: '哈希链自第 1 位起可复算' },
  entries_sealed: { en: 'no entry older than the sealing grace is outside the chain', zh: '超过封存宽限期的分录均已入链' },
  roots_verify: { en: 'every root recomputes, links and carries valid signatures', zh: '每个根可复算、前后相连且签名有效' },
} as const;
export type AuditCheck = keyof typeof AUDIT_CHECKS;

/** Every kind of break, with words in both languages. */
export const AUDIT_BREAKS = {
  entry_unbalanced: {
    check: 'entries_balance',
    en: 'An entry does not balance: its postings must sum to zero, with at least two',
    zh: '分录借贷不平：至少两笔过账且合计为零',
  },
  balance_mismatch: {
    check: 'balances_match_postings',
    en: "An account's stored balance differs from the sum of its postings",
    zh: '账户的存储余额与其过账合计不符',
  },
  chain_gap: { check: 'chain_recomputes', en: 'The hash chain has a missing position', zh: '哈希链缺少位置' },
  chain_entry_missing: { check: 'chain_recomputes', en: 'A sealed entry is missing from the ledger', zh: '已封存的分录在账本中缺失' },
  chain_hash_mismatch: {
    check: 'chain_recomputes',
    en: 'A sealed entry or its chain hash was changed after sealing: the hash does not recompute',
    zh: '已封存的分录或其链哈希在封存后被改动：哈希无法复算',
  },
  entry_unsealed: {
    check: 'entries_sealed',
    en: 'An entry posted longer ago than the sealing grace is not in the hash chain',
    zh: '超过封存宽限期的分录不在哈希链中',
  },
  root_sequence: {
    check: 'roots_verify',
    en: 'The roots do not follow each other: an id or a position range is missing, overlaps or goes past the chain',
    zh: '根不连续：编号或位置区间缺失、重叠或超出哈希链',
  },
  merkle_mismatch: {
    check: 'roots_verify',
    en: "A root's Merkle root does not recompute from the chain",
    zh: '根的默克尔根无法由哈希链复算',
  },
  root_link: { check: 'roots_verify', en: 'A root does not link to the previous root', zh: '根未与前一个根相连' },
  root_hash_mismatch: { check: 'roots_verify', en: "A root's hash does not recompute from its fields", zh: '根的哈希无法由其字段复算' },
  root_key_unknown: {
    check: 'roots_verify',
    en: 'A root names a signing key that is not a platform list-signing key',
    zh: '根所指的签名密钥不是平台的名单签名密钥',
  },
  root_signature: {
    check: 'roots_verify',
    en: "A root's platform signature does not verify (or was made outside its key's validity)",
    zh: '根的平台签名验证失败（或不在密钥有效期内签署）',
  },
  witness_key_unknown: { check: 'roots_verify', en: 'A root names a witness key that is not registered', zh: '根所指的见证密钥未登记' },
  witness_not_pinned: {
    check: 'roots_verify',
    en: 'A root is countersigned by a witness key the auditor did not pin',
    zh: '根的副署密钥不在审计人指定的见证密钥之中',
  },
  witness_signature: {
    check: 'roots_verify',
    en: "A root's witness countersignature does not verify",
    zh: '根的见证副署签名验证失败',
  },
  row_unreadable: {
    check: 'chain_recomputes',
    en: 'A stored row holds a value of the wrong type or size',
    zh: '存储的某行数据类型或长度不对',
  },
} as const satisfies Record<string, { check: AuditCheck; en: string; zh: string }>;
export type AuditBreakCode = keyof typeof AUDIT_BREAKS;

export const AUDIT_WARNINGS = {
  unsealed_tail: {
    en: 'Entries posted within the sealing grace are not sealed yet',
    zh: '宽限期内过账的分录尚未封存',
  },
  unrooted_tail: { en: 'Sealed positions are not under a signed root yet', zh: '已封存的位置尚未纳入签名根' },
  unwitnessed_roots: { en: 'Roots not countersigned by the witness yet', zh: '尚未经见证方副署的根' },
} as const;
export type AuditWarningCode = keyof typeof AUDIT_WARNINGS;

export interface AuditBreak {
  readonly code: AuditBreakCode;
  readonly check: AuditCheck;
  readonly en: string;
  readonly zh: string;
  readonly position?: number;
  readonly entryId?: number;
  readonly rootId?: number;
  readonly accountId?: number;
  readonly expected: string;
  readonly found: string;
}

export interface AuditWarning {
  readonly code: AuditWarningCode;
  readonly en: string;
  readonly zh: string;
  readonly count: number;
  /** The first few ids or positions concerned, e.g. "entries 41, 42" or "roots 3..5". */
  readonly detail: string;
}

export interface LedgerAuditReport {
  /** True when no check found a break (warnings allowed). */
  readonly ok: boolean;
  readonly auditedAtS: number;
  readonly graceS: number;
  readonly counts: {
    readonly entries: number;
    readonly postings: number;
    /** Chain positions audited (the tip read at the start). */
    readonly sealed: number;
    readonly roots: number;
    readonly witnessedRoots: number;
  };
  readonly checks: ReadonlyArray<{ readonly check: AuditCheck; readonly status: 'passed' | 'failed' | 'not_run' }>;
  /** The first break found, or null. */
  readonly break: AuditBreak | null;
  readonly warnings: readonly AuditWarning[];
}

/** A witness public key an auditor trusts from outside the database (the finance office's own copy). */
export interface PinnedWitnessKey {
  readonly suite: SuiteName;
  readonly publicKey: Uint8Array;
}

export interface AuditOptions {
  /** When given, a countersignature counts only if its key is one of these (a rewritten key table cannot fool the audit). */
  readonly pinnedWitnessKeys?: readonly PinnedWitnessKey[];
  /** The audit's "now", seconds (default: the wall clock); entries posted before now − graceS must be sealed. */
  readonly nowS?: number;
  /** Default LEDGER_SEAL_GRACE_S. */
  readonly graceS?: number;
}

class Break extends Error {
  constructor(readonly found: AuditBreak) {
    super(found.code);
  }
}

function fail(code: AuditBreakCode, at: Omit<AuditBreak, 'code' | 'check' | 'en' | 'zh'>): never {
  const w = AUDIT_BREAKS[code];
  throw new Break({ code, check: w.check, en: w.en, zh: w.zh, ...at });
}

const hex = (b: Uint8Array): string => toHex(b);

/**
 * Runs every check in order and returns the report; the first break stops the audit. Storage
 * errors (unreachable, missing tables) are thrown, not reported: they say nothing about the books.
 */
export async function auditLedgerFull(q: Queryable, crypto: CryptoProvider, o: AuditOptions = {}): Promise<LedgerAuditReport> {
  const auditedAtS = o.nowS ?? Math.floor(Date.now() / 1000);
  const graceS = o.graceS ?? LEDGER_SEAL_GRACE_S;
  const warnings: AuditWarning[] = [];
  const counts = { entries: 0, postings: 0, sealed: 0, roots: 0, witnessedRoots: 0 };
  const order = Object.keys(AUDIT_CHECKS) as AuditCheck[];
  const passed: AuditCheck[] = [];
  const step = async (check: AuditCheck, run: () => Promise<void>) => {
    await run();
    passed.push(check);
  };
  let found: AuditBreak | null = null;
  try {
    // The horizon: what was sealed and rooted when the audit began.
    const tip = await q.one('SELECT COALESCE(MAX(position), 0) AS p FROM ledger_chain');
    counts.sealed = rowInt(tip?.p ?? 0, 'position');
    const rootsTop = await q.one('SELECT COALESCE(MAX(id), 0) AS r FROM ledger_roots');
    const rootHorizon = rowInt(rootsTop?.r ?? 0, 'root id');

    const books = await auditLedger(q);
    counts.entries = books.entries;
    counts.postings = books.postings;
    await step('entries_balance', () => checkEntriesBalance(q, books.unbalancedEntries[0]));
    await step('balances_match_postings', async () => {
      const m = books.balanceMismatches[0];
      if (m !== undefined)
        fail('balance_mismatch', {
          accountId: m.account,
          expected: `${m.sum} fen (the sum of its postings)`,
          found: `${m.stored} fen (the sum of its balance rows)`,
        });
    });
    await step('chain_recomputes', () => checkChain(q, crypto, counts.sealed));
    await step('entries_sealed', () => checkAllSealed(q, auditedAtS, graceS, warnings));
    await step('roots_verify', async () => {
      const r = await checkRoots(q, crypto, counts.sealed, rootHorizon, o.pinnedWitnessKeys, warnings);
      counts.roots = r.roots;
      counts.witnessedRoots = r.witnessed;
    });
  } catch (e) {
    if (e instanceof Break) found = e.found;
    else if (e instanceof LedgerRowError) {
      const w = AUDIT_BREAKS.row_unreadable;
      const check = order.find((c) => !passed.includes(c)) ?? 'chain_recomputes';
      found = { code: 'row_unreadable', check, en: w.en, zh: w.zh, expected: 'a value of the schema type', found: e.message };
    } else throw e;
  }
  const failed = found?.check;
  return {
    ok: found === null,
    auditedAtS,
    graceS,
    counts,
    checks: order.map((check) => ({ check, status: passed.includes(check) ? 'passed' : check === failed ? 'failed' : 'not_run' })),
    break: found,
    warnings,
  };
}

async function checkEntriesBalance(q: Queryable, entryId: number | undefined): Promise<void> {
  if (entryId === undefined) return;
  const r = await q.one('SELECT COUNT(*) AS n, CAST(COALESCE(SUM(amount), 0) AS BIGINT) AS s FROM ledger_postings WHERE entry_id = ?', [
    entryId,
  ]);
  fail('entry_unbalanced', {
    entryId,
    expected: 'at least 2 postings summing to 0 fen',
    found: `${rowInt(r?.n ?? 0, 'count')} posting(s) summing to ${rowInt(r?.s ?? 0, 'sum')} fen`,
  });
}

/** Recomputes positions 1..tip a page at a time; every stored hash must equal the recomputed one. */
async function checkChain(q: Queryable, crypto: CryptoProvider, tip: number): Promise<void> {
  let previous = ZERO_HASH;
  for (let from = 1; from <= tip; from += LEDGER_CHAIN_PAGE_MAX) {
    const to = Math.min(tip, from + LEDGER_CHAIN_PAGE_MAX - 1);
    const page = await q.all('SELECT position, entry_id, hash FROM ledger_chain WHERE position >= ? AND position <= ? ORDER BY position', [
      from,
      to,
    ]);
    const entries = await readChainEntries(
      q,
      page.map((r) => rowInt(r.entry_id, 'entry id')),
    );
    let expected = from;
    for (const r of page) {
      const position = rowInt(r.position, 'position');
      if (position !== expected)
        fail('chain_gap', { position: expected, expected: `position ${expected}`, found: `position ${position} follows ${expected - 1}` });
      const entryId = rowInt(r.entry_id, 'entry id');
      const entry = entries.get(entryId);
      if (entry === undefined)
        fail('chain_entry_missing', { position, entryId, expected: `entry ${entryId} in ledger_entries`, found: 'no such entry' });
      const stored = rowBytes(r.hash, 'hash');
      const recomputed = entryHash(crypto, previous, entry);
      if (!equalBytes(stored, recomputed))
        fail('chain_hash_mismatch', {
          position,
          entryId,
          expected: `${hex(stored)} (stored when sealed)`,
          found: `${hex(recomputed)} (recomputed from the entry as stored now)`,
        });
      previous = stored;
      expected += 1;
    }
    if (expected !== to + 1)
      fail('chain_gap', { position: expected, expected: `positions up to ${to}`, found: `the chain stops at ${expected - 1}` });
  }
}

/** Unsealed entries: a break when posted before now − grace, a warning otherwise. The counts decide first (cheap). */
async function checkAllSealed(q: Queryable, nowS: number, graceS: number, warnings: AuditWarning[]): Promise<void> {
  const n = await q.one('SELECT (SELECT COUNT(*) FROM ledger_entries) AS entries, (SELECT COUNT(*) FROM ledger_chain) AS chained');
  // Every chain row names a distinct existing entry (checked above, and UNIQUE + foreign key), so equal counts mean all are sealed.
  if (rowInt(n?.entries ?? 0, 'count') === rowInt(n?.chained ?? 0, 'count')) return;
  const unsealed = await q.all(
    `SELECT e.id, e.posted_at FROM ledger_entries e LEFT JOIN ledger_chain c ON c.entry_id = e.id
     WHERE c.entry_id IS NULL ORDER BY e.posted_at, e.id LIMIT ?`,
    [LEDGER_CHAIN_PAGE_MAX],
  );
  const old = unsealed.find((r) => rowInt(r.posted_at, 'posted_at') <= nowS - graceS);
  if (old !== undefined) {
    const postedAt = rowInt(old.posted_at, 'posted_at');
    fail('entry_unsealed', {
      entryId: rowInt(old.id, 'entry id'),
      expected: `sealed within ${graceS} s of posting`,
      found: `unsealed, posted at ${postedAt} (${nowS - postedAt} s before the audit)`,
    });
  }
  const total = await q.one(
    'SELECT COUNT(*) AS n FROM ledger_entries e LEFT JOIN ledger_chain c ON c.entry_id = e.id WHERE c.entry_id IS NULL',
  );
  const ids = unsealed.slice(0, 10).map((r) => rowInt(r.id, 'entry id'));
  if (ids.length > 0) warnings.push(warning('unsealed_tail', rowInt(total?.n ?? 0, 'count'), `entries ${ids.join(', ')}`));
}

function warning(code: AuditWarningCode, count: number, detail: string): AuditWarning {
  return { code, ...AUDIT_WARNINGS[code], count, detail };
}

interface PlatformKey {
  readonly role: string;
  readonly suite: SuiteName;
  readonly publicKey: Uint8Array;
  readonly notBefore: number;
  readonly notAfter: number;
}

interface WitnessKey {
  readonly suite: SuiteName;
  readonly publicKey: Uint8Array;
}

async function checkRoots(
  q: Queryable,
  crypto: CryptoProvider,
  tip: number,
  horizon: number,
  pinned: readonly PinnedWitnessKey[] | undefined,
  warnings: AuditWarning[],
): Promise<{ roots: number; witnessed: number }> {
  const platformKeys = new Map<number, PlatformKey>();
  for (const r of await q.all('SELECT key_id, role, suite, public_key, not_before, not_after FROM platform_keys')) {
    platformKeys.set(rowInt(r.key_id, 'key_id'), {
      role: rowText(r.role, 'role'),
      suite: suiteOf(r.suite),
      publicKey: rowBytes(r.public_key, 'public_key'),
      notBefore: rowInt(r.not_before, 'not_before'),
      notAfter: rowInt(r.not_after, 'not_after'),
    });
  }
  const witnessKeys = new Map<number, WitnessKey>();
  for (const r of await q.all('SELECT id, suite, public_key FROM ledger_witness_keys'))
    witnessKeys.set(rowInt(r.id, 'witness key id'), { suite: suiteOf(r.suite), publicKey: rowBytes(r.public_key, 'public_key') });

  let previous: LedgerRoot | undefined;
  let witnessed = 0;
  const unwitnessed: number[] = [];
  for (let from = 1; from <= horizon; from += LEDGER_ROOTS_PAGE_MAX) {
    const to = Math.min(horizon, from + LEDGER_ROOTS_PAGE_MAX - 1);
    const page = await q.all(
      `SELECT ${ROOT_COLUMNS} FROM ledger_roots r LEFT JOIN platform_keys k ON k.key_id = r.key_id WHERE r.id >= ? AND r.id <= ? ORDER BY r.id`,
      [from, to],
    );
    if (page.length !== to - from + 1) fail('root_sequence', { expected: `roots ${from}..${to}`, found: `${page.length} of them` });
    for (const row of page) {
      const id = rowInt(row.id, 'root id');
      if (!platformKeys.has(rowInt(row.key_id, 'key_id')))
        fail('root_key_unknown', { rootId: id, expected: 'a key in platform_keys', found: `key ${String(row.key_id)}` });
      const root = rootOf(row);
      await checkRoot(q, crypto, root, previous, tip, platformKeys);
      if (root.witnessSignature === null) unwitnessed.push(root.id);
      else {
        await checkWitness(crypto, root, witnessKeys, pinned);
        witnessed += 1;
      }
      previous = root;
    }
  }
  if (unwitnessed.length > 0)
    warnings.push(
      warning(
        'unwitnessed_roots',
        unwitnessed.length,
        `roots ${unwitnessed.slice(0, 10).join(', ')}${unwitnessed.length > 10 ? ', ...' : ''}`,
      ),
    );
  const rooted = previous?.lastPosition ?? 0;
  if (rooted < tip) warnings.push(warning('unrooted_tail', tip - rooted, `positions ${rooted + 1}..${tip}`));
  return { roots: horizon, witnessed };
}

async function checkRoot(
  q: Queryable,
  crypto: CryptoProvider,
  root: LedgerRoot,
  previous: LedgerRoot | undefined,
  tip: number,
  platformKeys: ReadonlyMap<number, PlatformKey>,
): Promise<void> {
  const id = root.id;
  const expectedId = (previous?.id ?? 0) + 1;
  const first = (previous?.lastPosition ?? 0) + 1;
  if (id !== expectedId) fail('root_sequence', { rootId: id, expected: `root ${expectedId}`, found: `root ${id}` });
  if (root.firstPosition !== first || root.lastPosition < root.firstPosition || root.lastPosition > tip)
    fail('root_sequence', {
      rootId: id,
      expected: `positions ${first}..(at most ${tip})`,
      found: `positions ${root.firstPosition}..${root.lastPosition}`,
    });
  const merkle = merkleRoot(crypto, await chainHashes(q, root.firstPosition, root.lastPosition));
  if (!equalBytes(merkle, root.merkleRoot))
    fail('merkle_mismatch', { rootId: id, expected: `${hex(merkle)} (recomputed)`, found: `${hex(root.merkleRoot)} (stored)` });
  const link = previous?.rootHash ?? ZERO_HASH;
  if (!equalBytes(link, root.prevRootHash))
    fail('root_link', {
      rootId: id,
      expected: `${hex(link)} (hash of root ${id - 1})`,
      found: `${hex(root.prevRootHash)} (prev_root_hash)`,
    });
  const hash = rootHash(crypto, root);
  if (!equalBytes(hash, root.rootHash))
    fail('root_hash_mismatch', { rootId: id, expected: `${hex(hash)} (recomputed)`, found: `${hex(root.rootHash)} (stored)` });
  const key = platformKeys.get(root.keyId);
  if (key === undefined || key.role !== 'list_signer')
    fail('root_key_unknown', { rootId: id, expected: 'a list_signer key', found: `key ${root.keyId} (${key?.role ?? 'absent'})` });
  const inWindow = root.signedAtS >= key.notBefore && root.signedAtS <= key.notAfter;
  if (!inWindow || !(await crypto.suite(key.suite).verify(key.publicKey, rootSigningMessage(root), root.signature)))
    fail('root_signature', {
      rootId: id,
      expected: `a signature by platform key ${root.keyId}, made between ${key.notBefore} and ${key.notAfter}`,
      found: inWindow ? 'a signature that does not verify' : `signed at ${root.signedAtS}`,
    });
}

async function checkWitness(
  crypto: CryptoProvider,
  root: LedgerRoot,
  witnessKeys: ReadonlyMap<number, WitnessKey>,
  pinned: readonly PinnedWitnessKey[] | undefined,
): Promise<void> {
  const keyId = root.witnessKeyId ?? 0;
  const key = witnessKeys.get(keyId);
  if (key === undefined) fail('witness_key_unknown', { rootId: root.id, expected: 'a registered witness key', found: `key ${keyId}` });
  if (pinned !== undefined && !pinned.some((p) => p.suite === key.suite && equalBytes(p.publicKey, key.publicKey)))
    fail('witness_not_pinned', {
      rootId: root.id,
      expected: `one of ${pinned.length} pinned witness key(s)`,
      found: `witness key ${keyId} (${hex(key.publicKey)})`,
    });
  const signature = root.witnessSignature ?? new Uint8Array(0);
  if (!(await crypto.suite(key.suite).verify(key.publicKey, witnessMessage(root.rootHash), signature)))
    fail('witness_signature', {
      rootId: root.id,
      expected: `a countersignature by witness key ${keyId} over root hash ${hex(root.rootHash)}`,
      found: 'a signature that does not verify',
    });
}

function suiteOf(v: unknown): SuiteName {
  const s = SUITES.find((x) => x === v);
  if (s === undefined) throw new LedgerRowError(`suite ${String(v)}`);
  return s;
}
