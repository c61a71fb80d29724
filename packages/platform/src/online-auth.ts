/**
 * Online authorization (issue 4): a terminal that reaches the platform within its budget asks for a
 * real-time check and debit instead of deciding offline (DESIGN §6). Everything happens in ONE
 * transaction: the code is checked unused and marked used, the holder's balances are read under a
 * lock, the funds are taken in order subsidy → cash → credit-line headroom, and the debit to the
 * merchant's payable is posted. Two authorizations of the same holder, or of the same code, can
 * therefore never both spend the same money ("check spent and mark pending in one step", DESIGN §16).
 *
 * Online authorization never creates arrears: the operator's advance is for offline payments that
 * were already accepted (clearing, issue 5); online, a payer without funds is simply declined.
 *
 * The caller (the HTTP layer) has already verified the code (signatures, freshness, trust list,
 * deny lists, the terminal's scene) and mapped the credential's pseudonymous holder to `holderId`.
 *
 * For clearing (issue 5): `used_codes` holds every (serial, counter) spent, online now and offline
 * later; an uploaded record whose code has an approved row in `online_authorizations` was already
 * charged here and must be linked, not charged again. An approval whose record never arrives (the
 * answer was lost and the terminal declined offline) is undone with ledger.reverse.
 */
import { type Fen, fen, TIME_MAX_S } from '@duet/protocol';
import type { Db, Dialect, Migration, Queryable } from './db/db.js';
import { ApiError } from './errors.js';
import { credit, debit, type HolderAccounts, holderBalances, int, merchantPayable, type Posting, post } from './ledger.js';
import { ONLINE_AUTH_AMOUNT_MAX_FEN, ONLINE_AUTH_TIME_SKEW_MAX_S, PLATFORM_ID_MAX } from './limits.js';
import { creditLimitOf } from './purses.js';

export interface OnlineAuthRequest {
  readonly terminalId: number;
  readonly merchantId: number;
  readonly holderId: number;
  /** The credential serial and code counter: single use, platform-wide. */
  readonly serial: number;
  readonly counter: number;
  readonly amount: number;
  /** The payment's own time (the terminal's clock), seconds: the entry's effective time. */
  readonly time: number;
}

/** The shape of the terminal's OnlineAnswer (packages/terminal/src/ports.ts), matched, not imported. */
export type OnlineAnswer =
  | { readonly approved: true; readonly authorization: string }
  | { readonly approved: false; readonly reason: 'insufficient_funds' | 'declined_online'; readonly detail: string };

/** Whether a holder may pay right now. Supplied by the holders module, read in the same transaction. */
export type HolderCheck = (
  q: Queryable,
  holderId: number,
) => Promise<{ readonly active: true } | { readonly active: false; readonly detail: string }>;

export interface OnlineAuthOptions {
  readonly holderCheck: HolderCheck;
}

/** Stable detail codes of online declines: the first word of `detail`, before the colon. */
export const ONLINE_DECLINE_DETAILS = ['code_used', 'time_skew', 'holder_inactive', 'in_arrears', 'insufficient_funds'] as const;

export const onlineAuthMigrations: Migration[] = [
  {
    id: 'online-auth/001-used-codes-authorizations-declines',
    sql: (d: Dialect) => [
      // Every code spent, whichever path spent it. The primary key is what makes a code single use.
      `CREATE TABLE used_codes (
        serial ${d.int} NOT NULL,
        counter ${d.int} NOT NULL,
        via TEXT NOT NULL CHECK (via IN ('online', 'offline')),
        terminal_id ${d.int} NOT NULL,
        used_at ${d.int} NOT NULL,
        PRIMARY KEY (serial, counter)
      )`,
      `CREATE TABLE online_authorizations (
        id ${d.serialKey},
        terminal_id ${d.int} NOT NULL,
        merchant_id ${d.int} NOT NULL,
        holder_id ${d.int} NOT NULL,
        serial ${d.int} NOT NULL,
        counter ${d.int} NOT NULL,
        amount ${d.int} NOT NULL CHECK (amount > 0),
        from_subsidy ${d.int} NOT NULL,
        from_cash ${d.int} NOT NULL,
        from_credit ${d.int} NOT NULL,
        payment_time ${d.int} NOT NULL,
        authorized_at ${d.int} NOT NULL,
        entry_id ${d.int} NOT NULL REFERENCES ledger_entries (id),
        UNIQUE (serial, counter),
        CHECK (from_subsidy + from_cash + from_credit = amount)
      )`,
      'CREATE INDEX online_authorizations_by_holder ON online_authorizations (holder_id, id)',
      // Declines move no money, but each is kept with its reason so it can be explained (DESIGN §15).
      `CREATE TABLE online_declines (
        id ${d.serialKey},
        terminal_id ${d.int} NOT NULL,
        merchant_id ${d.int} NOT NULL,
        holder_id ${d.int} NOT NULL,
        serial ${d.int} NOT NULL,
        counter ${d.int} NOT NULL,
        amount ${d.int} NOT NULL,
        payment_time ${d.int} NOT NULL,
        declined_at ${d.int} NOT NULL,
        reason TEXT NOT NULL,
        detail TEXT NOT NULL
      )`,
      'CREATE INDEX online_declines_by_holder ON online_declines (holder_id, id)',
    ],
  },
];

/**
 * Authorizes one payment online and answers as the terminal expects. Malformed input throws
 * ApiError(validation_failed); a decision (approve or decline) is always an answer.
 */
export async function authorizeOnline(db: Db, r: OnlineAuthRequest, nowS: number, opts: OnlineAuthOptions): Promise<OnlineAnswer> {
  checkRequest(r, nowS);
  const amount = fen(r.amount);
  return db.tx(async (q) => {
    const decided = await decide(q, db.dialect, r, amount, nowS, opts);
    const answer = 'split' in decided ? await approve(q, r, amount, decided, nowS) : decided;
    if (answer.approved) return answer;
    await q.run(
      'INSERT INTO online_declines (terminal_id, merchant_id, holder_id, serial, counter, amount, payment_time, declined_at, reason, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      [r.terminalId, r.merchantId, r.holderId, r.serial, r.counter, amount, r.time, nowS, answer.reason, answer.detail],
    );
    return answer;
  });
}

interface Split {
  readonly subsidy: Fen;
  readonly cash: Fen;
  readonly credit: Fen;
}

type Decline = Extract<OnlineAnswer, { approved: false }>;
interface Approval {
  readonly split: Split;
  readonly accounts: HolderAccounts;
}

/**
 * Every check on state read inside the transaction, the holder's balance rows locked. Reading
 * used_codes is left to the claim in `approve` (an insert that does nothing on a used code): on
 * PostgreSQL a plain read of its index pages, which every other authorization inserts into, would
 * make SERIALIZABLE abort unrelated payments. Only a decline looks there, to report a replay first.
 */
async function decide(
  q: Queryable,
  dialect: Dialect,
  r: OnlineAuthRequest,
  amount: Fen,
  nowS: number,
  opts: OnlineAuthOptions,
): Promise<Decline | Approval> {
  const decline = async (reason: Decline['reason'], detail: string): Promise<Decline> => {
    const used = await q.one('SELECT via FROM used_codes WHERE serial = ? AND counter = ?', [r.serial, r.counter]);
    return used === undefined ? { approved: false, reason, detail } : codeUsed(r);
  };
  if (Math.abs(r.time - nowS) > ONLINE_AUTH_TIME_SKEW_MAX_S) {
    return decline('declined_online', `time_skew: payment time ${r.time} is ${r.time - nowS} s from the platform clock`);
  }
  const standing = await opts.holderCheck(q, r.holderId);
  if (!standing.active) return decline('declined_online', `holder_inactive: ${standing.detail}`);
  const b = await holderBalances(q, r.holderId, { lockFor: dialect });
  if (b.arrears > 0) return decline('declined_online', `in_arrears: the holder owes ${b.arrears} fen; repay first`);
  // The credit line is read only when the purses alone fall short: most payments never need it.
  const limit = b.subsidy + b.cash >= amount ? fen(0) : await creditLimitOf(q, r.holderId);
  const split = fund(b, limit, amount);
  if (split === undefined || b.accounts === undefined) {
    return decline('insufficient_funds', 'insufficient_funds: balance and credit line do not cover the amount');
  }
  return { split, accounts: b.accounts };
}

function codeUsed(r: OnlineAuthRequest): Decline {
  return { approved: false, reason: 'declined_online', detail: `code_used: code ${r.serial}/${r.counter} was already used` };
}

/** Funding order subsidy → cash → unused credit line; undefined when they do not cover the amount. */
export function fund(b: { subsidy: Fen; cash: Fen; creditUsed: Fen }, creditLimit: Fen, amount: Fen): Split | undefined {
  const subsidy = Math.min(b.subsidy, amount);
  const cash = Math.min(b.cash, amount - subsidy);
  const headroom = Math.max(0, creditLimit - b.creditUsed);
  const fromCredit = Math.min(headroom, amount - subsidy - cash);
  if (subsidy + cash + fromCredit < amount) return undefined;
  return { subsidy: fen(subsidy), cash: fen(cash), credit: fen(fromCredit) };
}

async function approve(
  q: Queryable,
  r: OnlineAuthRequest,
  amount: Fen,
  { split, accounts }: Approval,
  nowS: number,
): Promise<OnlineAnswer> {
  // The claim is the first write: a used code inserts nothing and is declined with nothing written.
  const claimed = await q.run(
    'INSERT INTO used_codes (serial, counter, via, terminal_id, used_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (serial, counter) DO NOTHING',
    [r.serial, r.counter, 'online', r.terminalId, nowS],
  );
  if (claimed !== 1) return codeUsed(r);
  const payable = await merchantPayable(q, r.merchantId);
  const postings: Posting[] = [];
  if (split.subsidy > 0) postings.push(debit(accounts.subsidy, split.subsidy));
  if (split.cash > 0) postings.push(debit(accounts.cash, split.cash));
  if (split.credit > 0) postings.push(debit(accounts.creditUsed, split.credit));
  postings.push(credit(payable, amount));
  const entryId = await post(q, {
    kind: 'online_payment',
    reference: `code:${r.serial}/${r.counter}`,
    postedAtS: nowS,
    effectiveAtS: r.time,
    createdBy: `terminal:${r.terminalId}`,
    postings,
  });
  const row = await q.one(
    `INSERT INTO online_authorizations (terminal_id, merchant_id, holder_id, serial, counter, amount, from_subsidy, from_cash, from_credit, payment_time, authorized_at, entry_id)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
    [r.terminalId, r.merchantId, r.holderId, r.serial, r.counter, amount, split.subsidy, split.cash, split.credit, r.time, nowS, entryId],
  );
  return { approved: true, authorization: String(int(row?.id, 'authorization id')) };
}

function checkRequest(r: OnlineAuthRequest, nowS: number): void {
  const id = (v: number, field: string, max: number, min = 1) => {
    if (!Number.isSafeInteger(v) || v < min || v > max)
      throw new ApiError('validation_failed', `${field} ${String(v)}: an integer from ${min} to ${max}`);
  };
  id(r.terminalId, 'terminalId', PLATFORM_ID_MAX);
  id(r.merchantId, 'merchantId', PLATFORM_ID_MAX);
  id(r.holderId, 'holderId', PLATFORM_ID_MAX);
  id(r.serial, 'serial', PLATFORM_ID_MAX);
  id(r.counter, 'counter', 0xffff_ffff, 0);
  id(r.amount, 'amount (fen)', ONLINE_AUTH_AMOUNT_MAX_FEN);
  id(r.time, 'time', TIME_MAX_S, 0);
  id(nowS, 'nowS', TIME_MAX_S, 0);
}
