/**
 * Purses and money in (issue 4): each holder's cash and subsidy purses, top-up through a cashier or
 * a bank with an idempotency key, subsidy grants by the school, and the school's credit line per
 * holder. Every movement is a ledger entry (ledger.ts); this file decides which entry and guards
 * the inputs.
 *
 * Idempotency: a request carries a key; the first request with that key in its scope runs and its
 * result is stored with a hash of the request. A repeat with the same request gets the stored
 * result (nothing is posted twice); the same key with another request is refused
 * (idempotency_mismatch). The key is claimed by an INSERT ... ON CONFLICT DO NOTHING in the same
 * transaction as the posting, so two identical requests in flight at once post exactly once: the
 * second waits for the first (or, under snapshot isolation, is retried by Db.tx) and then reads its
 * result. A refused request (over a cap, say) stores nothing, so it may be retried with the same key.
 *
 * The caller (the HTTP layer) has already checked that the holder exists and that the staff member
 * may do this; here the holder id is only an owner of ledger accounts.
 */
import { createHash } from 'node:crypto';
import { type Fen, fen, TIME_MAX_S } from '@duet/protocol';
import type { Db, Dialect, Migration, Queryable } from './db/db.js';
import { ApiError } from './errors.js';
import { credit, debit, type HolderAccounts, holderAccounts, holderBalances, int, type Posting, post, systemAccount } from './ledger.js';
import {
  CREDIT_LINE_MAX_FEN,
  LEDGER_CREATED_BY_MAX_CHARS,
  IDEMPOTENCY_KEY_MAX_CHARS,
  IDEMPOTENCY_KEY_PATTERN,
  PLATFORM_ID_MAX,
  PURSE_BALANCE_MAX_FEN,
  SUBSIDY_GRANT_MAX_FEN,
  TOPUP_MAX_FEN,
} from './limits.js';
import { publishDenyList } from './lists.js';
import { noteRepayment } from './recovery.js';
import type { SigningKeys } from './signing-keys.js';

export const pursesMigrations: Migration[] = [
  {
    id: 'purses/001-idempotency-operations-credit-lines',
    sql: (d: Dialect) => [
      // result is the first result as JSON. It is NULL only inside the transaction that claimed the
      // key, which fills it before committing, so a committed row always has it.
      `CREATE TABLE idempotency_keys (
        scope TEXT NOT NULL,
        idem_key TEXT NOT NULL,
        request_hash TEXT NOT NULL,
        result TEXT,
        created_at ${d.int} NOT NULL,
        PRIMARY KEY (scope, idem_key)
      )`,
      // One row per top-up or grant: the business object a ledger entry references (`topup:17`).
      `CREATE TABLE purse_operations (
        id ${d.serialKey},
        kind TEXT NOT NULL CHECK (kind IN ('topup', 'subsidy_grant')),
        holder_id ${d.int} NOT NULL,
        amount ${d.int} NOT NULL CHECK (amount > 0),
        channel TEXT CHECK (channel IN ('cashier', 'bank')),
        created_by TEXT NOT NULL,
        created_at ${d.int} NOT NULL,
        idem_key TEXT NOT NULL
      )`,
      'CREATE INDEX purse_operations_by_holder ON purse_operations (holder_id, id)',
      // Append-only history of each holder's line; the newest row is the line in force.
      `CREATE TABLE credit_lines (
        id ${d.serialKey},
        holder_id ${d.int} NOT NULL,
        credit_limit ${d.int} NOT NULL CHECK (credit_limit >= 0),
        set_by TEXT NOT NULL,
        set_at ${d.int} NOT NULL
      )`,
      'CREATE INDEX credit_lines_by_holder ON credit_lines (holder_id, id)',
    ],
  },
  {
    id: 'purses/002-idempotency-by-age',
    sql: () => ['CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at)'],
  },
];

// ---------------------------------------------------------------------------------------------
// Reading

export interface Purses {
  readonly cash: Fen;
  readonly subsidy: Fen;
  /** The school's credit line in force (0 when none was granted). */
  readonly creditLimit: Fen;
  /** How much of the line is drawn (the holder_credit_used account). */
  readonly creditUsed: Fen;
  /** What the holder owes after an operator advance (the holder_arrears account). */
  readonly arrears: Fen;
  /**
   * What online authorization would approve right now: subsidy + cash + unused credit, or 0 while
   * the holder is in arrears (online authorization never spends for a holder who owes).
   */
  readonly available: Fen;
}

/** A holder's purses; all zero for a holder with no ledger accounts yet. Never writes. */
export async function purses(q: Queryable, holderId: number): Promise<Purses> {
  checkHolderId(holderId);
  const b = await holderBalances(q, holderId);
  const creditLimit = await creditLimitOf(q, holderId);
  return {
    cash: b.cash,
    subsidy: b.subsidy,
    creditLimit,
    creditUsed: b.creditUsed,
    arrears: b.arrears,
    available: available(b, creditLimit),
  };
}

/** subsidy + cash + max(0, limit − used), or 0 in arrears. Shared with online authorization. */
export function available(b: { cash: Fen; subsidy: Fen; creditUsed: Fen; arrears: Fen }, creditLimit: Fen): Fen {
  if (b.arrears > 0) return fen(0);
  return fen(b.subsidy + b.cash + Math.max(0, creditLimit - b.creditUsed));
}

/** The credit line in force for a holder, 0 when none. */
export async function creditLimitOf(q: Queryable, holderId: number): Promise<Fen> {
  const row = await q.one('SELECT credit_limit FROM credit_lines WHERE holder_id = ? ORDER BY id DESC LIMIT 1', [holderId]);
  return fen(row === undefined ? 0 : int(row.credit_limit, 'credit_limit'));
}

/** creditLimitOf for several holders in one statement; a holder without a line is absent (0). */
export async function creditLimitsOf(q: Queryable, holderIds: readonly number[]): Promise<Map<number, Fen>> {
  const unique = [...new Set(holderIds)];
  if (unique.length === 0) return new Map();
  const rows = await q.all(
    `SELECT holder_id, credit_limit FROM credit_lines WHERE id IN
     (SELECT MAX(id) FROM credit_lines WHERE holder_id IN (${unique.map(() => '?').join(', ')}) GROUP BY holder_id)`,
    unique,
  );
  return new Map(rows.map((r) => [int(r.holder_id, 'holder_id'), fen(int(r.credit_limit, 'credit_limit'))]));
}

// ---------------------------------------------------------------------------------------------
// Top-up

export type TopUpChannel = 'cashier' | 'bank';

export interface TopUpRequest {
  readonly holderId: number;
  readonly amount: number;
  readonly channel: TopUpChannel;
  readonly idempotencyKey: string;
  /** The staff member or bank connector that took the money in. */
  readonly by: string;
}

export interface TopUpResult {
  readonly topUpId: number;
  readonly entryId: number;
  readonly holderId: number;
  readonly amount: Fen;
  readonly channel: TopUpChannel;
  /** The part of the top-up that repaid arrears before reaching the cash purse. */
  readonly repaidArrears: Fen;
  /** The cash purse right after this top-up (a repeat returns this same figure). */
  readonly cashAfter: Fen;
  readonly postedAtS: number;
}

/**
 * Puts money into a holder's cash purse: debit topup_clearing, credit the purse (arrears first, see
 * repayArrearsFirst). Idempotent on (topup, idempotencyKey); amount 1..TOPUP_MAX_FEN fen; the
 * purse may not pass PURSE_BALANCE_MAX_FEN. A top-up that repays arrears tells recovery in the same
 * transaction (noteRepayment): a debt repaid in full closes its case and lifts the arrears block.
 * With `keys`, a deny-list change that follows is published in the same transaction, so terminals
 * accept the payer again at their next sync; without, it waits for the next publication.
 */
export async function topUp(db: Db, r: TopUpRequest, nowS: number, opts: { readonly keys?: SigningKeys } = {}): Promise<TopUpResult> {
  const amount = checkAmount(r.amount, TOPUP_MAX_FEN, 'top-up');
  checkHolderId(r.holderId);
  if (r.channel !== 'cashier' && r.channel !== 'bank')
    throw new ApiError('validation_failed', `channel ${String(r.channel)}: cashier or bank`);
  checkBy(r.by);
  checkNow(nowS);
  const request = ['topup', r.holderId, amount, r.channel, r.by];
  return db.tx((q) =>
    idempotent(q, 'topup', r.idempotencyKey, request, nowS, parseTopUpResult, async () => {
      const accounts = await holderAccounts(q, r.holderId);
      const opId = await recordOperation(q, 'topup', r.holderId, amount, r.channel, r.by, r.idempotencyKey, nowS);
      const clearing = await systemAccount(q, 'topup_clearing');
      const split = await repayArrearsFirst(q, accounts, amount);
      const postings: Posting[] = [debit(clearing, amount)];
      if (split.toArrears > 0) postings.push(credit(accounts.arrears, split.toArrears));
      if (split.toCash > 0) postings.push(credit(accounts.cash, split.toCash));
      const entryId = await post(q, {
        kind: 'topup',
        reference: `topup:${opId}`,
        postedAtS: nowS,
        effectiveAtS: nowS,
        createdBy: r.by,
        memo: `top-up via ${r.channel}`,
        postings,
      });
      const cashAfter = await checkPurseCap(q, r.holderId, 'cash');
      if (split.toArrears > 0) {
        const change = await noteRepayment(q, r.holderId, nowS);
        if (opts.keys !== undefined && change.lifted.length + change.denied.length > 0) await publishDenyList(q, opts.keys, nowS);
      }
      return {
        topUpId: opId,
        entryId,
        holderId: r.holderId,
        amount,
        channel: r.channel,
        repaidArrears: split.toArrears,
        cashAfter,
        postedAtS: nowS,
      };
    }),
  );
}

/**
 * Repay arrears first. DESIGN §8: a holder in arrears has the debt deducted automatically at the
 * next top-up: the top-up credits holder_arrears before holder_cash, in the same entry. What follows
 * a repaid debt (closing the arrears case, lifting the deny entry) is recovery.ts noteRepayment,
 * which topUp calls right after posting.
 */
export async function repayArrearsFirst(q: Queryable, accounts: HolderAccounts, amount: Fen): Promise<{ toArrears: Fen; toCash: Fen }> {
  const row = await q.one('SELECT balance FROM ledger_balances WHERE account_id = ? AND shard = 0', [accounts.arrears]);
  const owed = Math.max(0, int(row?.balance ?? 0, 'arrears balance'));
  const toArrears = Math.min(owed, amount);
  return { toArrears: fen(toArrears), toCash: fen(amount - toArrears) };
}

// ---------------------------------------------------------------------------------------------
// Subsidy

export interface SubsidyGrantRequest {
  readonly holderId: number;
  readonly amount: number;
  /** The school finance staff member granting it. */
  readonly by: string;
  readonly idempotencyKey: string;
}

export interface SubsidyGrantResult {
  readonly grantId: number;
  readonly entryId: number;
  readonly holderId: number;
  readonly amount: Fen;
  readonly subsidyAfter: Fen;
  readonly postedAtS: number;
}

/**
 * The school grants a subsidy: debit subsidy_pool (funded from the school's budget), credit the
 * holder's subsidy purse. Idempotent on (subsidy_grant, idempotencyKey); 1..SUBSIDY_GRANT_MAX_FEN.
 * A subsidy does not repay arrears: it is earmarked by the school for meals.
 */
export async function grantSubsidy(db: Db, r: SubsidyGrantRequest, nowS: number): Promise<SubsidyGrantResult> {
  const amount = checkAmount(r.amount, SUBSIDY_GRANT_MAX_FEN, 'subsidy grant');
  checkHolderId(r.holderId);
  checkBy(r.by);
  checkNow(nowS);
  const request = ['subsidy_grant', r.holderId, amount, r.by];
  return db.tx((q) =>
    idempotent(q, 'subsidy_grant', r.idempotencyKey, request, nowS, parseSubsidyResult, async () => {
      const accounts = await holderAccounts(q, r.holderId);
      const opId = await recordOperation(q, 'subsidy_grant', r.holderId, amount, null, r.by, r.idempotencyKey, nowS);
      const pool = await systemAccount(q, 'subsidy_pool');
      const entryId = await post(q, {
        kind: 'subsidy_grant',
        reference: `subsidy_grant:${opId}`,
        postedAtS: nowS,
        effectiveAtS: nowS,
        createdBy: r.by,
        memo: 'school subsidy',
        postings: [debit(pool, amount), credit(accounts.subsidy, amount)],
      });
      const subsidyAfter = await checkPurseCap(q, r.holderId, 'subsidy');
      return { grantId: opId, entryId, holderId: r.holderId, amount, subsidyAfter, postedAtS: nowS };
    }),
  );
}

// ---------------------------------------------------------------------------------------------
// Credit line

export interface CreditLineRequest {
  readonly holderId: number;
  /** The new line, 0..CREDIT_LINE_MAX_FEN; 0 withdraws it. */
  readonly limit: number;
  readonly by: string;
}

/**
 * The school sets a holder's credit line. Setting the same value again changes nothing that
 * matters, so no idempotency key is needed; every change is kept (credit_lines is a history).
 * A line set below what is already drawn leaves no headroom: nothing more is lent, and nothing
 * already lent is called back here.
 */
export async function setCreditLine(db: Db, r: CreditLineRequest, nowS: number): Promise<Purses> {
  checkHolderId(r.holderId);
  if (!Number.isSafeInteger(r.limit) || r.limit < 0 || r.limit > CREDIT_LINE_MAX_FEN) {
    throw new ApiError('validation_failed', `credit line ${String(r.limit)} fen: 0 to ${CREDIT_LINE_MAX_FEN}`);
  }
  checkBy(r.by);
  checkNow(nowS);
  return db.tx(async (q) => {
    await holderAccounts(q, r.holderId);
    await q.run('INSERT INTO credit_lines (holder_id, credit_limit, set_by, set_at) VALUES (?, ?, ?, ?)', [
      r.holderId,
      r.limit,
      r.by,
      nowS,
    ]);
    return purses(q, r.holderId);
  });
}

// ---------------------------------------------------------------------------------------------
// Idempotency

/**
 * How long an idempotency key is remembered: a cashier's or bank's retry comes within minutes or
 * days, never months; after this a key may be used again as a new request. The table would
 * otherwise grow by a row per top-up forever.
 */
export const IDEMPOTENCY_KEEP_S = 90 * 86_400;

/** Rows one purge deletes at most (one short transaction); the next purge takes the rest. */
export const IDEMPOTENCY_PURGE_MAX = 10_000;

/**
 * Forgets idempotency keys older than `keepS` whose request finished (a key still in progress is
 * kept whatever its age). Resolves with the number forgotten. The purse operations and ledger
 * entries they produced stay: only the replay memory goes.
 */
export async function purgeIdempotencyKeys(db: Db, nowS: number, keepS = IDEMPOTENCY_KEEP_S): Promise<number> {
  checkNow(nowS);
  if (!Number.isSafeInteger(keepS) || keepS < 0) throw new RangeError(`keepS ${keepS}: a whole number of seconds >= 0`);
  return db.tx((q) =>
    q.run(
      `DELETE FROM idempotency_keys WHERE (scope, idem_key) IN (
         SELECT scope, idem_key FROM idempotency_keys WHERE created_at < ? AND result IS NOT NULL ORDER BY created_at LIMIT ?)`,
      [nowS - keepS, IDEMPOTENCY_PURGE_MAX],
    ),
  );
}

/**
 * Runs `first` once per (scope, key): stores its result with a hash of `request`, and answers a
 * repeat from the store. Exported so other money-moving endpoints can use the same table.
 */
export async function idempotent<T>(
  q: Queryable,
  scope: string,
  key: string,
  request: readonly unknown[],
  nowS: number,
  parse: (stored: unknown) => T,
  first: () => Promise<T>,
): Promise<T> {
  checkKey(key);
  const hash = createHash('sha256').update(JSON.stringify(request)).digest('hex');
  const claimed = await q.run(
    'INSERT INTO idempotency_keys (scope, idem_key, request_hash, result, created_at) VALUES (?, ?, ?, NULL, ?) ON CONFLICT (scope, idem_key) DO NOTHING',
    [scope, key, hash, nowS],
  );
  if (claimed === 1) {
    const result = await first();
    await q.run('UPDATE idempotency_keys SET result = ? WHERE scope = ? AND idem_key = ?', [JSON.stringify(result), scope, key]);
    return result;
  }
  const row = await q.one('SELECT request_hash, result FROM idempotency_keys WHERE scope = ? AND idem_key = ?', [scope, key]);
  if (row === undefined || row.result === null)
    throw new ApiError('conflict', `the request with idempotency key ${key} is still in progress`);
  if (row.request_hash !== hash) throw new ApiError('idempotency_mismatch', `key ${key} was first used for a different ${scope}`);
  return parse(JSON.parse(String(row.result)));
}

function checkKey(key: string): void {
  if (typeof key !== 'string' || key.length < 1 || key.length > IDEMPOTENCY_KEY_MAX_CHARS || !IDEMPOTENCY_KEY_PATTERN.test(key)) {
    throw new ApiError(
      'validation_failed',
      `idempotency key: 1 to ${IDEMPOTENCY_KEY_MAX_CHARS} characters of ${String(IDEMPOTENCY_KEY_PATTERN)}`,
    );
  }
}

function parseTopUpResult(v: unknown): TopUpResult {
  const o = record(v);
  const channel = o.channel === 'bank' ? 'bank' : 'cashier';
  return {
    topUpId: num(o.topUpId),
    entryId: num(o.entryId),
    holderId: num(o.holderId),
    amount: fen(num(o.amount)),
    channel,
    repaidArrears: fen(num(o.repaidArrears)),
    cashAfter: fen(num(o.cashAfter)),
    postedAtS: num(o.postedAtS),
  };
}

function parseSubsidyResult(v: unknown): SubsidyGrantResult {
  const o = record(v);
  return {
    grantId: num(o.grantId),
    entryId: num(o.entryId),
    holderId: num(o.holderId),
    amount: fen(num(o.amount)),
    subsidyAfter: fen(num(o.subsidyAfter)),
    postedAtS: num(o.postedAtS),
  };
}

function record(v: unknown): Record<string, unknown> {
  if (typeof v !== 'object' || v === null) throw new Error('idempotency: stored result is not an object');
  return v as Record<string, unknown>;
}

function num(v: unknown): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw new Error(`idempotency: stored field ${String(v)} is not an integer`);
  return v;
}

// ---------------------------------------------------------------------------------------------
// Helpers

async function recordOperation(
  q: Queryable,
  kind: 'topup' | 'subsidy_grant',
  holderId: number,
  amount: Fen,
  channel: TopUpChannel | null,
  by: string,
  key: string,
  nowS: number,
): Promise<number> {
  const row = await q.one(
    'INSERT INTO purse_operations (kind, holder_id, amount, channel, created_by, created_at, idem_key) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id',
    [kind, holderId, amount, channel, by, nowS, key],
  );
  return int(row?.id, 'operation id');
}

/** Reads a purse after a credit and refuses (rolling the transaction back) past PURSE_BALANCE_MAX_FEN. */
async function checkPurseCap(q: Queryable, holderId: number, purse: 'cash' | 'subsidy'): Promise<Fen> {
  const b = await holderBalances(q, holderId);
  const after = b[purse];
  if (after > PURSE_BALANCE_MAX_FEN) {
    throw new ApiError('validation_failed', `the ${purse} purse would hold ${after} fen, above the ${PURSE_BALANCE_MAX_FEN} fen cap`);
  }
  return after;
}

function checkAmount(amount: number, maxFen: number, what: string): Fen {
  if (!Number.isSafeInteger(amount) || amount < 1 || amount > maxFen) {
    throw new ApiError('validation_failed', `${what} amount ${String(amount)}: an integer number of fen from 1 to ${maxFen}`);
  }
  return fen(amount);
}

function checkHolderId(id: number): void {
  if (!Number.isSafeInteger(id) || id < 1 || id > PLATFORM_ID_MAX) throw new ApiError('validation_failed', `holder id ${String(id)}`);
}

function checkBy(by: string): void {
  if (typeof by !== 'string' || by.length < 1 || by.length > LEDGER_CREATED_BY_MAX_CHARS)
    throw new ApiError('validation_failed', 'by: who did it');
}

function checkNow(nowS: number): void {
  if (!Number.isSafeInteger(nowS) || nowS < 0 || nowS > TIME_MAX_S) throw new ApiError('validation_failed', `time ${String(nowS)}`);
}
