/**
 * Statements (issue 5): what the books say to a merchant and to a payer, read from the ledger's
 * postings and nothing else, so a statement can always be re-derived and audited.
 *
 * Merchant statement: per merchant per Beijing calendar day (days.ts), the movement of the
 * merchant's payable account, split by what moved it. The day of an entry is the day it was POSTED
 * (booked), not the day the payment happened: an offline payment uploaded a day late is on the
 * statement of the day clearing booked it, so a statement for a past day never changes. Figures:
 * - online / offline / lossPaid: entries of kind online_payment, offline_payment, loss_payment (a
 *   replay or revoked-credential payment the loss reserve paid): their count and gross, what they
 *   added to the payable;
 * - reversals: entries of kind reversal on the payable: count, and what they took off it;
 * - otherFen: any other entry on the payable (none today; a payout to the merchant later), as added;
 * - netFen: the payable's whole movement that day, what the operator owes the merchant more (or, if
 *   negative, less) at the end of the day than at its start.
 *   netFen = online.fen + offline.fen + lossPaid.fen − reversals.fen + otherFen, always.
 *
 * Holder history: every entry touching the holder's own accounts (cash, subsidy, credit used,
 * arrears), newest first, a page at a time, with what it did to each, the merchant it paid and a
 * state (docs/recovery.md):
 * - `settled`: in the books for good;
 * - `pending`: an online payment whose terminal has not yet had its record of it uploaded and
 *   cleared. The money moved at authorization, but if the record never comes (the answer was lost
 *   and the terminal declined offline), clearing reverses the approval. Derived from the terminal's
 *   upload progress: the newest record of its contiguous chain (intake_acks) is cleared and no
 *   older than the payment.
 * An offline record uploaded but not cleared is not shown: it names a credential, not a holder,
 * until clearing verifies it and posts it, and then it appears as settled.
 */
import { type Fen, fen } from '@duet/protocol';
import { type Cell, toCsv, typed, yuan } from './csv.js';
import type { Migration, Queryable, Row } from './db/db.js';
import { BEIJING_OFFSET_S, beijingDay, beijingDayStartS, DAY_S } from './days.js';
import { ApiError } from './errors.js';
import { findHolderAccounts, int } from './ledger.js';
import { HISTORY_PAGE_MAX, PLATFORM_ID_MAX, STATEMENT_DAYS_MAX } from './limits.js';

export const statementsMigrations: Migration[] = [
  {
    id: 'statements/001-entries-by-posted-time',
    // A statement reads the entries of a range of days by the time they were posted.
    sql: () => ['CREATE INDEX ledger_entries_by_posted ON ledger_entries (posted_at)'],
  },
];

// ---------------------------------------------------------------------------------------------
// Merchant statements

export interface Figures {
  readonly count: number;
  readonly fen: Fen;
}

export interface StatementFigures {
  readonly online: Figures;
  readonly offline: Figures;
  readonly lossPaid: Figures;
  readonly reversals: Figures;
  readonly otherFen: Fen;
  readonly netFen: Fen;
}

export interface StatementDay extends StatementFigures {
  /** The Beijing calendar day, YYYY-MM-DD. */
  readonly date: string;
  readonly merchantId: number;
}

export interface MerchantStatement {
  readonly timeZone: 'Asia/Shanghai (UTC+08:00)';
  /** Entries are put on the day they were posted (booked). */
  readonly dayBasis: 'posted';
  readonly from: string;
  readonly to: string;
  /** The merchant asked for, or null for every merchant. */
  readonly merchantId: number | null;
  /** One row per merchant and day with any movement, by day then merchant. */
  readonly days: readonly StatementDay[];
  readonly totals: StatementFigures;
}

type Bucket = 'online' | 'offline' | 'lossPaid' | 'reversals' | 'other';
const BUCKET_OF_KIND: Readonly<Record<string, Bucket>> = {
  online_payment: 'online',
  offline_payment: 'offline',
  loss_payment: 'lossPaid',
  reversal: 'reversals',
};

/**
 * The statement of one merchant (not_found if there is none), or of every merchant (merchantId
 * undefined), for the Beijing days from `from` to `to` inclusive (at most STATEMENT_DAYS_MAX days).
 * Never writes.
 */
export async function merchantStatement(
  q: Queryable,
  o: { readonly merchantId?: number; readonly from: string; readonly to: string },
): Promise<MerchantStatement> {
  const startS = beijingDayStartS(o.from, 'from');
  const endS = beijingDayStartS(o.to, 'to') + DAY_S;
  const days = (endS - startS) / DAY_S;
  if (days < 1 || days > STATEMENT_DAYS_MAX) throw new ApiError('validation_failed', `from..to: 1 to ${STATEMENT_DAYS_MAX} days`);
  if (o.merchantId !== undefined) {
    checkId(o.merchantId, 'merchant id');
    if ((await q.one('SELECT id FROM merchants WHERE id = ?', [o.merchantId])) === undefined)
      throw new ApiError('not_found', `merchant ${o.merchantId}`);
  }
  const byMerchant = o.merchantId === undefined ? '' : 'AND a.owner = ?';
  // Day number in Beijing time: whole days since 1970-01-01 Beijing; postings credit negative.
  const rows = await q.all(
    `SELECT a.owner AS merchant, (e.posted_at + ${BEIJING_OFFSET_S}) / ${DAY_S} AS day, e.kind AS kind,
       COUNT(DISTINCT e.id) AS n, CAST(SUM(p.amount) AS BIGINT) AS total
     FROM ledger_entries e
     JOIN ledger_postings p ON p.entry_id = e.id
     JOIN ledger_accounts a ON a.id = p.account_id
     WHERE a.kind = 'merchant_payable' ${byMerchant} AND e.posted_at >= ? AND e.posted_at < ?
     GROUP BY a.owner, (e.posted_at + ${BEIJING_OFFSET_S}) / ${DAY_S}, e.kind`,
    o.merchantId === undefined ? [startS, endS] : [o.merchantId, startS, endS],
  );
  const acc = new Map<string, Mutable>();
  const totals = emptyFigures();
  for (const r of rows) {
    const merchant = int(r.merchant, 'merchant');
    const day = int(r.day, 'day');
    const key = `${day}/${merchant}`;
    const m = acc.get(key) ?? { day, merchant, figures: emptyFigures() };
    acc.set(key, m);
    for (const f of [m.figures, totals]) add(f, String(r.kind), int(r.n, 'count'), int(r.total, 'total'));
  }
  const sorted = [...acc.values()].sort((a, b) => a.day - b.day || a.merchant - b.merchant);
  return {
    timeZone: 'Asia/Shanghai (UTC+08:00)',
    dayBasis: 'posted',
    from: o.from,
    to: o.to,
    merchantId: o.merchantId ?? null,
    days: sorted.map((m) => ({ date: beijingDay(m.day * DAY_S), merchantId: m.merchant, ...freeze(m.figures) })),
    totals: freeze(totals),
  };
}

interface MutableFigures {
  online: { count: number; fen: number };
  offline: { count: number; fen: number };
  lossPaid: { count: number; fen: number };
  reversals: { count: number; fen: number };
  otherFen: number;
  netFen: number;
}

interface Mutable {
  readonly day: number;
  readonly merchant: number;
  readonly figures: MutableFigures;
}

function emptyFigures(): MutableFigures {
  return {
    online: { count: 0, fen: 0 },
    offline: { count: 0, fen: 0 },
    lossPaid: { count: 0, fen: 0 },
    reversals: { count: 0, fen: 0 },
    otherFen: 0,
    netFen: 0,
  };
}

/** Adds one (kind, count, raw sum) group: the payable is credit-normal, so what it owes more is −raw. */
function add(f: MutableFigures, kind: string, count: number, raw: number): void {
  const bucket = BUCKET_OF_KIND[kind] ?? 'other';
  f.netFen -= raw;
  if (bucket === 'other') f.otherFen -= raw;
  else if (bucket === 'reversals') {
    f.reversals.count += count;
    f.reversals.fen += raw;
  } else {
    f[bucket].count += count;
    f[bucket].fen -= raw;
  }
}

function freeze(f: MutableFigures): StatementFigures {
  const figures = (x: { count: number; fen: number }): Figures => ({ count: x.count, fen: fen(x.fen) });
  return {
    online: figures(f.online),
    offline: figures(f.offline),
    lossPaid: figures(f.lossPaid),
    reversals: figures(f.reversals),
    otherFen: fen(f.otherFen),
    netFen: fen(f.netFen),
  };
}

/** The CSV columns of a merchant statement, in order (docs/recovery.md describes each). */
export const STATEMENT_CSV_COLUMNS = [
  'date',
  'merchant_id',
  'merchant_name',
  'online_count',
  'online_fen',
  'online_yuan',
  'offline_count',
  'offline_fen',
  'offline_yuan',
  'loss_paid_count',
  'loss_paid_fen',
  'loss_paid_yuan',
  'reversal_count',
  'reversal_fen',
  'reversal_yuan',
  'other_fen',
  'other_yuan',
  'net_fen',
  'net_yuan',
] as const;

/**
 * The statement as CSV: one row per merchant and day, then a last row with `date` "total" and no
 * merchant. Names come from `names` (merchant id to name).
 */
export function statementCsv(s: MerchantStatement, names: ReadonlyMap<number, string>): string {
  const cells = (f: StatementFigures): Cell[] => [
    ...[f.online, f.offline, f.lossPaid, f.reversals].flatMap((x): Cell[] => [x.count, x.fen, yuan(x.fen)]),
    f.otherFen,
    yuan(f.otherFen),
    f.netFen,
    yuan(f.netFen),
  ];
  return toCsv(STATEMENT_CSV_COLUMNS, [
    ...s.days.map((d): Cell[] => [d.date, d.merchantId, typed(names.get(d.merchantId) ?? ''), ...cells(d)]),
    ['total', s.merchantId, s.merchantId === null ? null : typed(names.get(s.merchantId) ?? ''), ...cells(s.totals)],
  ]);
}

// ---------------------------------------------------------------------------------------------
// Holder history

export type HistoryState = 'settled' | 'pending';

export interface HistoryItem {
  readonly entryId: number;
  readonly postedAt: number;
  /** When the payment or event itself happened. */
  readonly effectiveAt: number;
  readonly kind: string;
  readonly reference: string | null;
  /** What the entry did to the holder's worth: negative for a payment, positive for a top-up or subsidy. */
  readonly amountFen: Fen;
  /** Each account's change, read on its own side: cash −300 is 3 yuan spent; arrears +500 is 5 yuan more owed. */
  readonly legs: { readonly cash: Fen; readonly subsidy: Fen; readonly creditUsed: Fen; readonly arrears: Fen };
  /** The merchant paid, when the entry credits or debits a merchant's payable. */
  readonly merchantId: number | null;
  readonly state: HistoryState;
}

/** A payment a terminal has uploaded that clearing has not decided yet (it moves no money until then). */
export interface AwaitingClearing {
  readonly terminalId: number;
  readonly sequence: number;
  readonly time: number;
  readonly amountFen: Fen;
  readonly merchantId: number;
  readonly receivedAt: number;
}

/** Uploaded payments awaiting clearing shown on a history's first page, newest first. */
export const HISTORY_AWAITING_MAX = 50;

export interface HistoryPage {
  /** On the first page: the holder's uploaded payments clearing has not decided yet (state pending, no entry yet). */
  readonly awaitingClearing: readonly AwaitingClearing[];
  readonly items: readonly HistoryItem[];
  /** Pass as `before` for the next (older) page; null when this is the last. */
  readonly next: number | null;
}

/**
 * A page of a holder's history, newest first: entries with id below `before` (all when absent), at
 * most `limit` (1..HISTORY_PAGE_MAX). A holder with no accounts has an empty history. Never writes.
 */
export async function holderHistory(
  q: Queryable,
  holderId: number,
  page: { readonly before?: number; readonly limit: number },
): Promise<HistoryPage> {
  checkId(holderId, 'holder id');
  if (!Number.isSafeInteger(page.limit) || page.limit < 1 || page.limit > HISTORY_PAGE_MAX)
    throw new ApiError('validation_failed', `limit: 1 to ${HISTORY_PAGE_MAX}`);
  const accounts = await findHolderAccounts(q, holderId);
  if (accounts === undefined) return { awaitingClearing: [], items: [], next: null };
  // Intake names the payer from the record's code (records.holder_id), so an uploaded payment shows before clearing.
  const awaitingClearing =
    page.before !== undefined
      ? []
      : (
          await q.all(
            "SELECT terminal_id, sequence, time, amount, merchant_id, received_at FROM records WHERE holder_id = ? AND cleared = 'pending' ORDER BY time DESC LIMIT ?",
            [holderId, HISTORY_AWAITING_MAX],
          )
        ).map((r) => ({
          terminalId: int(r.terminal_id, 'terminal'),
          sequence: int(r.sequence, 'sequence'),
          time: int(r.time, 'time'),
          amountFen: fen(int(r.amount, 'amount')),
          merchantId: int(r.merchant_id, 'merchant'),
          receivedAt: int(r.received_at, 'received_at'),
        }));
  const own = [accounts.cash, accounts.subsidy, accounts.creditUsed, accounts.arrears];
  const ids = await q.all(
    `SELECT entry_id FROM ledger_postings WHERE account_id IN (?, ?, ?, ?) AND entry_id < ?
     GROUP BY entry_id ORDER BY entry_id DESC LIMIT ?`,
    [...own, page.before ?? Number.MAX_SAFE_INTEGER, page.limit + 1],
  );
  const more = ids.length > page.limit;
  const entryIds = ids.slice(0, page.limit).map((r) => int(r.entry_id, 'entry id'));
  if (entryIds.length === 0) return { awaitingClearing, items: [], next: null };
  const legs = await q.all(
    `SELECT e.id, e.posted_at, e.effective_at, e.kind, e.reference, p.account_id, p.amount, a.kind AS account_kind, a.owner
     FROM ledger_entries e JOIN ledger_postings p ON p.entry_id = e.id JOIN ledger_accounts a ON a.id = p.account_id
     WHERE e.id IN (${entryIds.map(() => '?').join(', ')}) ORDER BY e.id DESC, p.line`,
    entryIds,
  );
  const items = new Map<number, MutableItem>();
  for (const r of legs) {
    const id = int(r.id, 'entry id');
    const item = items.get(id) ?? newItem(r);
    items.set(id, item);
    const raw = int(r.amount, 'amount');
    const accountId = int(r.account_id, 'account id');
    if (r.account_kind === 'merchant_payable') item.merchantId = int(r.owner, 'owner');
    else if (accountId === accounts.cash) item.legs.cash -= raw;
    else if (accountId === accounts.subsidy) item.legs.subsidy -= raw;
    else if (accountId === accounts.creditUsed) item.legs.creditUsed += raw;
    else if (accountId === accounts.arrears) item.legs.arrears += raw;
  }
  const pending = await pendingOnline(
    [...items.values()].filter((i) => i.kind === 'online_payment'),
    q,
  );
  const list = entryIds.flatMap((id) => {
    const i = items.get(id);
    if (i === undefined) return [];
    const l = i.legs;
    // The holder's worth: what the operator owes them (cash, subsidy) less what they owe (credit, arrears).
    const amount = l.cash + l.subsidy - l.creditUsed - l.arrears;
    return [
      {
        entryId: id,
        postedAt: i.postedAt,
        effectiveAt: i.effectiveAt,
        kind: i.kind,
        reference: i.reference,
        amountFen: fen(amount),
        legs: { cash: fen(l.cash), subsidy: fen(l.subsidy), creditUsed: fen(l.creditUsed), arrears: fen(l.arrears) },
        merchantId: i.merchantId,
        state: pending.has(id) ? ('pending' as const) : ('settled' as const),
      },
    ];
  });
  return { awaitingClearing, items: list, next: more ? (entryIds[entryIds.length - 1] ?? null) : null };
}

interface MutableItem {
  readonly id: number;
  readonly postedAt: number;
  readonly effectiveAt: number;
  readonly kind: string;
  readonly reference: string | null;
  merchantId: number | null;
  readonly legs: { cash: number; subsidy: number; creditUsed: number; arrears: number };
}

function newItem(r: Row): MutableItem {
  return {
    id: int(r.id, 'entry id'),
    postedAt: int(r.posted_at, 'posted_at'),
    effectiveAt: int(r.effective_at, 'effective_at'),
    kind: String(r.kind),
    reference: r.reference === null || r.reference === undefined ? null : String(r.reference),
    merchantId: null,
    legs: { cash: 0, subsidy: 0, creditUsed: 0, arrears: 0 },
  };
}

/**
 * The online payments among `items` still pending: clearing has not yet linked the terminal's record
 * of the payment to its authorization (`online_authorizations.record_sequence`), and the approval
 * was not reversed as unclaimed (a reversal is its own entry, and the payment then settled at nothing).
 * Online payments reference their code as `code:<serial>/<counter>`, which finds the authorization.
 */
async function pendingOnline(items: readonly MutableItem[], q: Queryable): Promise<Set<number>> {
  const codes = items.flatMap((i) => {
    const m = /^code:(\d{1,15})\/(\d{1,10})$/.exec(i.reference ?? '');
    return m === null ? [] : [{ entry: i.id, serial: Number(m[1]), counter: Number(m[2]) }];
  });
  const pending = new Set<number>();
  if (codes.length === 0) return pending;
  const auths = await q.all(
    `SELECT serial, counter, record_sequence, reversed_at FROM online_authorizations WHERE ${codes.map(() => '(serial = ? AND counter = ?)').join(' OR ')}`,
    codes.flatMap((c) => [c.serial, c.counter]),
  );
  const open = new Set(
    auths
      .filter((a) => a.record_sequence === null && a.reversed_at === null)
      .map((a) => `${int(a.serial, 'serial')}/${int(a.counter, 'counter')}`),
  );
  for (const c of codes) if (open.has(`${c.serial}/${c.counter}`)) pending.add(c.entry);
  return pending;
}

function checkId(id: number, field: string): void {
  if (!Number.isSafeInteger(id) || id < 1 || id > PLATFORM_ID_MAX) throw new ApiError('validation_failed', `${field} ${String(id)}`);
}
