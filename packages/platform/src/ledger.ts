/**
 * The double-entry ledger (DESIGN §9): accounts, immutable entries, and their postings in integer
 * fen. Every other part of the platform that moves money (top-up, subsidy, online authorization,
 * and later clearing) does it through `post`, inside the caller's transaction.
 *
 * Sign convention: one signed amount per posting, DEBITS POSITIVE, CREDITS NEGATIVE. An entry
 * balances when its postings sum to zero; an account's raw balance is the sum of its postings, so
 * the raw balances of all accounts also sum to zero. An account's `normal_side` only says how a
 * person reads it: a credit-normal account (what the operator owes: a holder's cash, a merchant's
 * payable) shows its raw balance negated. `normalBalance` does that.
 *
 * What the operator's books say, account by account (raw sign in brackets):
 * - holder_cash, holder_subsidy (credit-normal): stored value owed to the holder.
 * - holder_credit_used (debit-normal): what the holder has drawn on the school's credit line.
 * - holder_arrears (debit-normal): what the holder owes after an operator advance (issue 5 posts it).
 * - merchant_payable (credit-normal): owed to the merchant for accepted payments.
 * - topup_clearing (debit-normal): money taken in by cashiers and banks, on its way to custody.
 * - subsidy_pool (debit-normal): subsidies granted, to be funded by the school's budget.
 * - school_credit_pool (credit-normal), operator_advance (debit-normal), loss_reserve
 *   (credit-normal): created now, posted to by clearing (issue 5).
 *
 * Balances: the balances table is updated by `post` in the same transaction as the postings. A
 * purse (an account that may never go below zero) has one balance row, which a check-then-debit
 * reads and locks. Any other account spreads its balance over up to LEDGER_BALANCE_SHARDS rows and
 * each entry adds to the row `entry id mod shards`: every payment of a canteen credits the same
 * payable, and on PostgreSQL (SERIALIZABLE) concurrent updates of one row abort all but one
 * transaction, so a single row would make one merchant's payable the bottleneck of the whole
 * platform at lunch. The balance is the sum of the rows, whatever the number of shards was when
 * they were written, so the number can change at any time.
 *
 * Immutability: entries and postings are only ever inserted. Triggers on both dialects refuse any
 * UPDATE or DELETE of them (and TRUNCATE on PostgreSQL); a correction is `reverse`, which posts the
 * mirror entry. The balances table is the one thing that changes: `post` updates it in the same
 * transaction as the postings, and `auditLedger` checks it against the sum of postings.
 *
 * Time: `posted_at` is when the platform wrote the entry; `effective_at` is when the payment itself
 * happened (a record uploaded a day late keeps its own time, DESIGN §16). Both are seconds.
 */
import { FEN_MAX, type Fen, fen, TIME_MAX_S } from '@duet/protocol';
import { type Dialect, type Migration, type Queryable, type Row, type SqlValue, StorageConstraintError } from './db/db.js';
import { ApiError } from './errors.js';
import {
  LEDGER_BALANCE_SHARDS,
  LEDGER_BATCH_ENTRIES_MAX,
  LEDGER_BATCH_POSTINGS_MAX,
  LEDGER_CREATED_BY_MAX_CHARS,
  LEDGER_KIND_MAX_CHARS,
  LEDGER_MEMO_MAX_CHARS,
  LEDGER_POSTINGS_PER_ENTRY_MAX,
  LEDGER_REFERENCE_MAX_CHARS,
  PLATFORM_ID_MAX,
} from './limits.js';

export type NormalSide = 'debit' | 'credit';
type Owner = 'holder' | 'merchant' | 'none';

/**
 * Every kind of account, with its normal side, whose it is, and whether its balance read on the
 * normal side may never go below zero (a purse cannot be overdrawn: an overdraft is an operator
 * advance posted to holder_arrears, never a negative purse).
 */
export const ACCOUNT_KINDS = {
  holder_cash: { normal: 'credit', owner: 'holder', nonNegative: true },
  holder_subsidy: { normal: 'credit', owner: 'holder', nonNegative: true },
  holder_credit_used: { normal: 'debit', owner: 'holder', nonNegative: true },
  holder_arrears: { normal: 'debit', owner: 'holder', nonNegative: true },
  merchant_payable: { normal: 'credit', owner: 'merchant', nonNegative: false },
  topup_clearing: { normal: 'debit', owner: 'none', nonNegative: false },
  subsidy_pool: { normal: 'debit', owner: 'none', nonNegative: false },
  school_credit_pool: { normal: 'credit', owner: 'none', nonNegative: false },
  operator_advance: { normal: 'debit', owner: 'none', nonNegative: false },
  loss_reserve: { normal: 'credit', owner: 'none', nonNegative: false },
} as const satisfies Record<string, { normal: NormalSide; owner: Owner; nonNegative: boolean }>;

export type AccountKind = keyof typeof ACCOUNT_KINDS;
export type SystemAccountKind = { [K in AccountKind]: (typeof ACCOUNT_KINDS)[K]['owner'] extends 'none' ? K : never }[AccountKind];
export const SYSTEM_ACCOUNT_KINDS = [
  'topup_clearing',
  'subsidy_pool',
  'school_credit_pool',
  'operator_advance',
  'loss_reserve',
] as const satisfies readonly SystemAccountKind[];
const HOLDER_KINDS = ['holder_cash', 'holder_subsidy', 'holder_credit_used', 'holder_arrears'] as const;

/** A ledger account id; branded so a holder or merchant id is never passed where an account is meant. */
export type AccountId = number & { readonly __ledger: 'account' };
/** A ledger entry id. */
export type EntryId = number & { readonly __ledger: 'entry' };

/** One leg of an entry: a signed amount, debit positive, credit negative. Build with `debit` / `credit`. */
export interface Posting {
  readonly account: AccountId;
  readonly amount: Fen;
}

export function debit(account: AccountId, amount: Fen): Posting {
  return { account, amount };
}

export function credit(account: AccountId, amount: Fen): Posting {
  return { account, amount: fen(-amount) };
}

export interface NewEntry {
  /** A short tag naming what happened: `topup`, `subsidy_grant`, `online_payment`, ... */
  readonly kind: string;
  /** The business object behind the entry (`topup:17`). With the kind, unique: one entry per object and kind. */
  readonly reference: string | null;
  /** When the platform posts it, seconds since the epoch. */
  readonly postedAtS: number;
  /** When the payment or event itself happened, seconds since the epoch (may be long before postedAtS). */
  readonly effectiveAtS: number;
  readonly createdBy: string;
  readonly memo?: string;
  readonly postings: readonly Posting[];
}

export const ledgerMigrations: Migration[] = [
  {
    id: 'ledger/001-accounts-entries-postings',
    sql: (d: Dialect) => [
      // owner is the holder or merchant id, or 0 for the operator's own accounts (0 is never an id,
      // and a NOT NULL column keeps UNIQUE (kind, owner) meaningful on both dialects).
      `CREATE TABLE ledger_accounts (
        id ${d.serialKey},
        kind TEXT NOT NULL,
        owner ${d.int} NOT NULL CHECK (owner >= 0),
        normal_side TEXT NOT NULL CHECK (normal_side IN ('debit', 'credit')),
        UNIQUE (kind, owner)
      )`,
      // An account's balance is the sum of its rows here (see BALANCE_SHARDS): one row, shard 0,
      // for a purse; up to LEDGER_BALANCE_SHARDS rows for a busy account such as a payable.
      `CREATE TABLE ledger_balances (
        account_id ${d.int} NOT NULL REFERENCES ledger_accounts (id),
        shard ${d.int} NOT NULL CHECK (shard >= 0),
        balance ${d.int} NOT NULL CHECK (balance BETWEEN ${-FEN_MAX} AND ${FEN_MAX}),
        PRIMARY KEY (account_id, shard)
      )`,
      `CREATE TABLE ledger_entries (
        id ${d.serialKey},
        posted_at ${d.int} NOT NULL,
        effective_at ${d.int} NOT NULL,
        kind TEXT NOT NULL,
        reference TEXT,
        created_by TEXT NOT NULL,
        memo TEXT NOT NULL,
        reverses ${d.int} UNIQUE REFERENCES ledger_entries (id),
        UNIQUE (kind, reference)
      )`,
      `CREATE TABLE ledger_postings (
        entry_id ${d.int} NOT NULL REFERENCES ledger_entries (id),
        line ${d.int} NOT NULL,
        account_id ${d.int} NOT NULL REFERENCES ledger_accounts (id),
        amount ${d.int} NOT NULL CHECK (amount <> 0 AND amount BETWEEN ${-FEN_MAX} AND ${FEN_MAX}),
        PRIMARY KEY (entry_id, line)
      )`,
      'CREATE INDEX ledger_postings_by_account ON ledger_postings (account_id, entry_id)',
      'CREATE INDEX ledger_entries_by_effective ON ledger_entries (effective_at)',
      ...SYSTEM_ACCOUNT_KINDS.map(
        (k) => `INSERT INTO ledger_accounts (kind, owner, normal_side) VALUES ('${k}', 0, '${ACCOUNT_KINDS[k].normal}')`,
      ),
      ...appendOnlyTriggers(d),
    ],
  },
];

/** Triggers that make ledger_entries and ledger_postings append-only in the database itself. */
function appendOnlyTriggers(d: Dialect): string[] {
  const tables = ['ledger_entries', 'ledger_postings'];
  if (d.name === 'sqlite') {
    return tables.flatMap((t) =>
      ['UPDATE', 'DELETE'].map(
        (op) =>
          `CREATE TRIGGER ${t}_no_${op.toLowerCase()} BEFORE ${op} ON ${t}
           BEGIN SELECT RAISE(ABORT, 'ledger: ${t} is append-only; post a reversing entry instead'); END`,
      ),
    );
  }
  return [
    `CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN
       RAISE EXCEPTION 'ledger: % on % refused: append-only; post a reversing entry instead', TG_OP, TG_TABLE_NAME;
     END
     $$`,
    ...tables.flatMap((t) => [
      `CREATE TRIGGER ${t}_append_only BEFORE UPDATE OR DELETE ON ${t} FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()`,
      `CREATE TRIGGER ${t}_no_truncate BEFORE TRUNCATE ON ${t} FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()`,
    ]),
  ];
}

// ---------------------------------------------------------------------------------------------
// Posting

/**
 * Posts one balanced entry inside the caller's transaction and returns its id. Everything is
 * checked before anything is written: at least two postings, at most LEDGER_POSTINGS_PER_ENTRY_MAX,
 * each a non-zero integer within ±FEN_MAX on a distinct, existing account; the sum is zero; no
 * balance leaves ±FEN_MAX; no purse goes below zero (ApiError insufficient_funds). Any refusal
 * throws ApiError, and the caller must let its transaction roll back (never catch and go on).
 * An entry whose (kind, reference) was posted before is refused (ApiError conflict).
 */
export async function post(q: Queryable, entry: NewEntry): Promise<EntryId> {
  const [id] = await postMany(q, [entry]);
  if (id === undefined) throw new Error('ledger: postMany returned no id');
  return id;
}

/**
 * Posts several entries, in order, with a fixed number of statements whatever their number (one
 * read of the accounts, one of the purse balances, one insert each for entries, postings and
 * balances): what online authorization batches and clearing need. All or nothing, with the checks
 * of `post` applied to each entry in turn (a later entry sees the earlier ones' effect on a purse).
 * Resolves with the entry ids in the order given.
 */
export async function postMany(q: Queryable, entries: readonly NewEntry[]): Promise<EntryId[]> {
  return insertEntries(
    q,
    entries.map((entry) => ({ entry, reverses: null })),
  );
}

interface Pending {
  readonly entry: NewEntry;
  readonly reverses: EntryId | null;
}

async function insertEntries(q: Queryable, batch: readonly Pending[]): Promise<EntryId[]> {
  const accounts = await checkBatch(q, batch);
  if (batch.length === 0) return [];
  const ids = await insertEntryRows(q, batch);
  const postings = batch.flatMap(({ entry }, i) => entry.postings.map((p, line) => [ids[i] ?? 0, line, p.account, p.amount]));
  await q.run(`INSERT INTO ledger_postings (entry_id, line, account_id, amount) VALUES ${marks(postings.length, 4)}`, postings.flat());
  // One balance row change per (account, shard): a busy account's entries of this batch all go to
  // the shard of the batch's first entry, so the batch touches one of its rows.
  const shard = (ids[0] ?? 0) % LEDGER_BALANCE_SHARDS;
  const deltas = new Map<string, { account: AccountState; shard: number; delta: number }>();
  for (const { entry } of batch) {
    for (const p of entry.postings) {
      const account = accounts.get(p.account);
      if (account === undefined) throw new Error(`ledger: account ${p.account} vanished`);
      const s = account.balance === undefined ? shard : 0;
      const key = `${p.account}/${s}`;
      const d = deltas.get(key);
      deltas.set(key, { account, shard: s, delta: (d?.delta ?? 0) + p.amount });
    }
  }
  const changes = [...deltas.values()].filter((d) => d.delta !== 0);
  if (changes.length === 0) return ids;
  const after = await q.all(
    `INSERT INTO ledger_balances (account_id, shard, balance) VALUES ${marks(changes.length, 3)}
     ON CONFLICT (account_id, shard) DO UPDATE SET balance = ledger_balances.balance + excluded.balance RETURNING account_id, balance`,
    changes.flatMap((d) => [d.account.id, d.shard, d.delta]),
  );
  // Re-check what was written: a purse row was read in checkBatch and, under SERIALIZABLE or on
  // SQLite, cannot have moved since, so this is an assertion. A violation throws; the caller's
  // transaction rolls back.
  for (const r of after) {
    const account = accounts.get(int(r.account_id, 'account id'));
    if (account?.balance !== undefined) checkNewBalance(account, int(r.balance, 'balance'));
  }
  return ids;
}

/**
 * Every check of a batch, before anything is written: shapes, accounts, and each purse's balance
 * entry after entry. Returns the accounts, with the purse balances as read.
 */
async function checkBatch(q: Queryable, batch: readonly Pending[]): Promise<Map<number, AccountState>> {
  if (batch.length > LEDGER_BATCH_ENTRIES_MAX) throw invalid(`${batch.length} entries in one batch, at most ${LEDGER_BATCH_ENTRIES_MAX}`);
  const references = new Set<string>();
  let postings = 0;
  for (const { entry } of batch) {
    checkEntryShape(entry);
    postings += entry.postings.length;
    if (entry.reference === null) continue;
    const key = `${entry.kind}\n${entry.reference}`;
    if (references.has(key)) throw new ApiError('conflict', `ledger: entry ${entry.kind} ${entry.reference} appears twice in one batch`);
    references.add(key);
  }
  if (postings > LEDGER_BATCH_POSTINGS_MAX) throw invalid(`${postings} postings in one batch, at most ${LEDGER_BATCH_POSTINGS_MAX}`);
  const ids = [...new Set(batch.flatMap(({ entry }) => entry.postings.map((p) => p.account)))];
  const accounts = ids.length === 0 ? new Map<number, AccountState>() : await readAccounts(q, ids);
  const running = new Map<number, number>();
  for (const { entry } of batch) {
    for (const p of entry.postings) {
      const a = accounts.get(p.account);
      if (a === undefined) throw invalid(`unknown account ${p.account}`);
      if (a.balance === undefined) continue;
      const next = (running.get(a.id) ?? a.balance) + p.amount;
      checkNewBalance(a, next);
      running.set(a.id, next);
    }
  }
  return accounts;
}

/** Inserts the entry rows in one statement; a (kind, reference) posted before is a conflict. */
async function insertEntryRows(q: Queryable, batch: readonly Pending[]): Promise<EntryId[]> {
  let rows: Row[];
  try {
    rows = await q.all(
      `INSERT INTO ledger_entries (posted_at, effective_at, kind, reference, created_by, memo, reverses) VALUES ${marks(batch.length, 7)} RETURNING id, kind, reference`,
      batch.flatMap(({ entry: e, reverses }) => [e.postedAtS, e.effectiveAtS, e.kind, e.reference, e.createdBy, e.memo ?? '', reverses]),
    );
  } catch (e) {
    // The failed statement has already poisoned the transaction on both dialects: nothing commits.
    if (e instanceof StorageConstraintError && e.kind === 'unique')
      throw new ApiError('conflict', 'ledger: an entry with this kind and reference was already posted');
    throw e;
  }
  // Ids are assigned in row order within one statement on both dialects, so ascending ids are the
  // given order; the kind and reference of each row prove it, or the batch is refused.
  const sorted = rows.map((r) => ({ id: int(r.id, 'entry id'), kind: r.kind, reference: r.reference })).sort((a, b) => a.id - b.id);
  if (sorted.length !== batch.length) throw new Error(`ledger: ${batch.length} entries inserted, ${sorted.length} ids returned`);
  return sorted.map((r, i) => {
    const e = batch[i]?.entry;
    if (e === undefined || r.kind !== e.kind || r.reference !== e.reference) throw new Error('ledger: entry ids came back out of order');
    return r.id as EntryId;
  });
}

/** `(?, ?, ?), (?, ?, ?)` for `rows` rows of `columns` placeholders. */
function marks(rows: number, columns: number): string {
  const one = `(${Array.from({ length: columns }, () => '?').join(', ')})`;
  return Array.from({ length: rows }, () => one).join(', ');
}

function checkEntryShape(e: NewEntry): void {
  checkText(e.kind, 'kind', LEDGER_KIND_MAX_CHARS, /^[a-z][a-z0-9_]*$/);
  if (e.reference !== null) checkText(e.reference, 'reference', LEDGER_REFERENCE_MAX_CHARS);
  checkText(e.createdBy, 'createdBy', LEDGER_CREATED_BY_MAX_CHARS);
  if (e.memo !== undefined && e.memo.length > LEDGER_MEMO_MAX_CHARS) throw invalid(`memo longer than ${LEDGER_MEMO_MAX_CHARS} characters`);
  checkTime(e.postedAtS, 'postedAtS');
  checkTime(e.effectiveAtS, 'effectiveAtS');
  const n = e.postings.length;
  if (n < 2 || n > LEDGER_POSTINGS_PER_ENTRY_MAX) throw invalid(`an entry has 2 to ${LEDGER_POSTINGS_PER_ENTRY_MAX} postings, not ${n}`);
  const seen = new Set<number>();
  let sum = 0;
  for (const p of e.postings) {
    if (!Number.isSafeInteger(p.amount) || p.amount === 0 || Math.abs(p.amount) > FEN_MAX) {
      throw invalid(`posting amount ${String(p.amount)} must be a non-zero integer number of fen within ±${FEN_MAX}`);
    }
    if (!Number.isSafeInteger(p.account) || p.account < 1) throw invalid(`account id ${String(p.account)}`);
    if (seen.has(p.account)) throw invalid(`account ${p.account} appears twice in one entry`);
    seen.add(p.account);
    // At most 16 terms of at most 1e13 each: the running sum stays an exact integer.
    sum += p.amount;
  }
  if (sum !== 0) throw invalid(`the entry does not balance: debits minus credits = ${sum} fen`);
}

interface AccountState {
  readonly id: AccountId;
  readonly kind: AccountKind;
  readonly normal: NormalSide;
  /** The balance row of a purse (a non-negative kind); undefined for sharded accounts, never read before a write. */
  readonly balance: number | undefined;
}

function checkNewBalance(a: AccountState, raw: number): void {
  if (Math.abs(raw) > FEN_MAX) throw invalid(`account ${a.id} would hold ${raw} fen, beyond ±${FEN_MAX}`);
  if (ACCOUNT_KINDS[a.kind].nonNegative && normalBalance(raw, a.normal) < 0) {
    throw new ApiError('insufficient_funds', `account ${a.id} (${a.kind}) would go below zero`);
  }
}

/**
 * Reads the accounts of an entry, keyed by id (missing ids are absent), with the balance of those
 * that are purses. Sharded accounts' balances are not read: on PostgreSQL a read of a row another
 * transaction writes is what makes SERIALIZABLE abort one of them.
 */
async function readAccounts(q: Queryable, ids: readonly number[]): Promise<Map<number, AccountState>> {
  const rows = await q.all(`SELECT id, kind, normal_side FROM ledger_accounts WHERE id IN (${ids.map(() => '?').join(', ')})`, ids);
  const purses = rows.filter((r) => ACCOUNT_KINDS[accountKind(r.kind)].nonNegative).map((r) => int(r.id, 'account id'));
  const balances = new Map<number, number>();
  if (purses.length > 0) {
    const bal = await q.all(
      `SELECT account_id, balance FROM ledger_balances WHERE shard = 0 AND account_id IN (${purses.map(() => '?').join(', ')})`,
      purses,
    );
    for (const b of bal) balances.set(int(b.account_id, 'account id'), int(b.balance, 'balance'));
  }
  const out = new Map<number, AccountState>();
  for (const r of rows) {
    const id = int(r.id, 'account id') as AccountId;
    const kind = accountKind(r.kind);
    const balance = ACCOUNT_KINDS[kind].nonNegative ? (balances.get(id) ?? 0) : undefined;
    out.set(id, { id, kind, normal: r.normal_side === 'debit' ? 'debit' : 'credit', balance });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Reversal

export interface Reversal {
  /** Why, in words a person reads in the audit (required). */
  readonly reason: string;
  readonly by: string;
  readonly postedAtS: number;
}

/**
 * Posts the mirror of an entry (every posting negated) as a new `reversal` entry and returns its
 * id. The reversal happens now: its effective time is its posting time, while the original keeps
 * its own. An entry is reversed at most once (ApiError conflict), a reversal itself is never
 * reversed (post the original again instead), and a reversal that would overdraw a purse is
 * refused like any other entry (insufficient_funds): money already spent cannot be taken back here.
 */
export async function reverse(q: Queryable, entryId: EntryId, r: Reversal): Promise<EntryId> {
  checkText(r.reason, 'reason', LEDGER_MEMO_MAX_CHARS);
  const original = await q.one('SELECT id, kind, reverses FROM ledger_entries WHERE id = ?', [entryId]);
  if (original === undefined) throw new ApiError('not_found', `ledger entry ${entryId}`);
  if (original.reverses !== null) throw new ApiError('conflict', `entry ${entryId} is itself a reversal; post the original again instead`);
  const already = await q.one('SELECT id FROM ledger_entries WHERE reverses = ?', [entryId]);
  if (already !== undefined) throw new ApiError('conflict', `entry ${entryId} was already reversed by entry ${String(already.id)}`);
  const legs = await q.all('SELECT account_id, amount FROM ledger_postings WHERE entry_id = ? ORDER BY line', [entryId]);
  const [id] = await insertEntries(q, [
    {
      entry: {
        kind: 'reversal',
        reference: `entry:${entryId}`,
        postedAtS: r.postedAtS,
        effectiveAtS: r.postedAtS,
        createdBy: r.by,
        memo: r.reason,
        postings: legs.map((l) => ({ account: int(l.account_id, 'account id') as AccountId, amount: fen(-int(l.amount, 'amount')) })),
      },
      reverses: entryId,
    },
  ]);
  if (id === undefined) throw new Error('ledger: reversal returned no id');
  return id;
}

// ---------------------------------------------------------------------------------------------
// Accounts

export interface HolderAccounts {
  readonly cash: AccountId;
  readonly subsidy: AccountId;
  readonly creditUsed: AccountId;
  readonly arrears: AccountId;
}

/** A holder's accounts, created on first use (cash, subsidy, credit used, arrears). */
export async function holderAccounts(q: Queryable, holderId: number): Promise<HolderAccounts> {
  checkOwnerId(holderId, 'holder id');
  const found = await findHolderAccounts(q, holderId);
  if (found !== undefined) return found;
  await createAccounts(q, HOLDER_KINDS, holderId);
  const made = await findHolderAccounts(q, holderId);
  if (made === undefined) throw new Error(`ledger: accounts of holder ${holderId} missing right after creation`);
  return made;
}

/** A holder's accounts if they exist; never writes. */
export async function findHolderAccounts(q: Queryable, holderId: number): Promise<HolderAccounts | undefined> {
  const rows = await q.all(`SELECT id, kind FROM ledger_accounts WHERE owner = ? AND kind IN (${HOLDER_KINDS.map(() => '?').join(', ')})`, [
    holderId,
    ...HOLDER_KINDS,
  ]);
  const by = new Map(rows.map((r) => [r.kind, int(r.id, 'account id') as AccountId]));
  const cash = by.get('holder_cash');
  const subsidy = by.get('holder_subsidy');
  const creditUsed = by.get('holder_credit_used');
  const arrears = by.get('holder_arrears');
  if (cash === undefined || subsidy === undefined || creditUsed === undefined || arrears === undefined) return undefined;
  return { cash, subsidy, creditUsed, arrears };
}

/** A merchant's payable account, created on first use. */
export async function merchantPayable(q: Queryable, merchantId: number): Promise<AccountId> {
  const id = (await merchantPayables(q, [merchantId])).get(merchantId);
  if (id === undefined) throw new Error(`ledger: payable of merchant ${merchantId} missing right after creation`);
  return id;
}

/** Several merchants' payable accounts, created on first use, keyed by merchant id. */
export async function merchantPayables(q: Queryable, merchantIds: readonly number[]): Promise<Map<number, AccountId>> {
  const unique = [...new Set(merchantIds)];
  for (const m of unique) checkOwnerId(m, 'merchant id');
  if (unique.length > LEDGER_BATCH_ENTRIES_MAX)
    throw invalid(`${unique.length} merchants in one read, at most ${LEDGER_BATCH_ENTRIES_MAX}`);
  const find = async () => {
    if (unique.length === 0) return new Map<number, AccountId>();
    const rows = await q.all(`SELECT id, owner FROM ledger_accounts WHERE kind = ? AND owner IN (${unique.map(() => '?').join(', ')})`, [
      'merchant_payable',
      ...unique,
    ]);
    return new Map(rows.map((r) => [int(r.owner, 'owner'), int(r.id, 'account id') as AccountId]));
  };
  const found = await find();
  const missing = unique.filter((m) => !found.has(m));
  if (missing.length === 0) return found;
  for (const m of missing) await createAccounts(q, ['merchant_payable'], m);
  return find();
}

/** One of the operator's own accounts (made by the migration). */
export async function systemAccount(q: Queryable, kind: SystemAccountKind): Promise<AccountId> {
  const row = await q.one('SELECT id FROM ledger_accounts WHERE kind = ? AND owner = 0', [kind]);
  if (row === undefined) throw new Error(`ledger: system account ${kind} missing; were ledgerMigrations applied?`);
  return int(row.id, 'account id') as AccountId;
}

async function createAccounts(q: Queryable, kinds: readonly AccountKind[], owner: number): Promise<void> {
  // ON CONFLICT DO NOTHING: two transactions creating the same holder's accounts at once both succeed.
  await q.run(
    `INSERT INTO ledger_accounts (kind, owner, normal_side) VALUES ${kinds.map(() => '(?, ?, ?)').join(', ')} ON CONFLICT (kind, owner) DO NOTHING`,
    kinds.flatMap((k) => [k, owner, ACCOUNT_KINDS[k].normal]),
  );
  // A purse gets its one balance row now, so a check-then-debit always has a row to lock; sharded
  // accounts get theirs on first posting.
  const purses = kinds.filter((k) => ACCOUNT_KINDS[k].nonNegative);
  if (purses.length === 0) return;
  await q.run(
    `INSERT INTO ledger_balances (account_id, shard, balance) SELECT id, 0, 0 FROM ledger_accounts WHERE owner = ? AND kind IN (${purses.map(() => '?').join(', ')}) ON CONFLICT (account_id, shard) DO NOTHING`,
    [owner, ...purses],
  );
}

// ---------------------------------------------------------------------------------------------
// Reading

/** An account's raw balance (debit positive): the sum of its rows in the balances table. */
export async function rawBalance(q: Queryable, account: AccountId): Promise<Fen> {
  const exists = await q.one('SELECT id FROM ledger_accounts WHERE id = ?', [account]);
  if (exists === undefined) throw new ApiError('not_found', `ledger account ${account}`);
  const row = await q.one('SELECT CAST(COALESCE(SUM(balance), 0) AS BIGINT) AS balance FROM ledger_balances WHERE account_id = ?', [
    account,
  ]);
  return fen(int(row?.balance, 'balance'));
}

/** A raw balance read on its account's normal side: a holder's cash purse of 12.00 yuan reads 1200. */
export function normalBalance(raw: number, side: NormalSide): Fen {
  return fen(side === 'debit' ? raw : -raw);
}

export interface HolderBalances {
  readonly cash: Fen;
  readonly subsidy: Fen;
  readonly creditUsed: Fen;
  readonly arrears: Fen;
}

/**
 * A holder's balances on their normal sides, with the account ids once they exist; zeros for a
 * holder with no accounts yet. Never writes. With `lockFor` a PostgreSQL dialect, the balance rows
 * are locked (FOR UPDATE) until the transaction ends, so a check-then-debit cannot interleave with
 * another; SQLite needs no lock, as its write transactions already run one at a time.
 */
export async function holderBalances(q: Queryable, holderId: number, opts: { readonly lockFor?: Dialect } = {}): Promise<HolderPurseState> {
  const one = (await holderBalancesMany(q, [holderId], opts)).get(holderId);
  if (one === undefined) throw new Error('ledger: holderBalancesMany lost a holder');
  return one;
}

export type HolderPurseState = HolderBalances & { readonly accounts?: HolderAccounts };

/** holderBalances for several holders in one statement (at most LEDGER_BATCH_ENTRIES_MAX), keyed by holder id. */
export async function holderBalancesMany(
  q: Queryable,
  holderIds: readonly number[],
  opts: { readonly lockFor?: Dialect } = {},
): Promise<Map<number, HolderPurseState>> {
  const unique = [...new Set(holderIds)];
  if (unique.length > LEDGER_BATCH_ENTRIES_MAX) throw invalid(`${unique.length} holders in one read, at most ${LEDGER_BATCH_ENTRIES_MAX}`);
  const lock = opts.lockFor?.name === 'postgres' ? ' FOR UPDATE OF b' : '';
  const rows =
    unique.length === 0
      ? []
      : await q.all(
          `SELECT a.id, a.kind, a.owner, b.balance FROM ledger_accounts a JOIN ledger_balances b ON b.account_id = a.id AND b.shard = 0
           WHERE a.kind IN (${HOLDER_KINDS.map(() => '?').join(', ')}) AND a.owner IN (${unique.map(() => '?').join(', ')})${lock}`,
          [...HOLDER_KINDS, ...unique],
        );
  const byHolder = new Map<number, Map<string, { id: AccountId; balance: Fen }>>();
  for (const r of rows) {
    const kind = accountKind(r.kind);
    const owner = int(r.owner, 'owner');
    const m = byHolder.get(owner) ?? new Map<string, { id: AccountId; balance: Fen }>();
    m.set(kind, {
      id: int(r.id, 'account id') as AccountId,
      balance: normalBalance(int(r.balance, 'balance'), ACCOUNT_KINDS[kind].normal),
    });
    byHolder.set(owner, m);
  }
  const zero = fen(0);
  const out = new Map<number, HolderPurseState>();
  for (const h of unique) {
    const m = byHolder.get(h);
    const cash = m?.get('holder_cash');
    const subsidy = m?.get('holder_subsidy');
    const creditUsed = m?.get('holder_credit_used');
    const arrears = m?.get('holder_arrears');
    const balances = {
      cash: cash?.balance ?? zero,
      subsidy: subsidy?.balance ?? zero,
      creditUsed: creditUsed?.balance ?? zero,
      arrears: arrears?.balance ?? zero,
    };
    const complete = cash !== undefined && subsidy !== undefined && creditUsed !== undefined && arrears !== undefined;
    out.set(
      h,
      complete
        ? { ...balances, accounts: { cash: cash.id, subsidy: subsidy.id, creditUsed: creditUsed.id, arrears: arrears.id } }
        : balances,
    );
  }
  return out;
}

export interface LedgerAudit {
  readonly entries: number;
  readonly postings: number;
  /** Entries whose postings do not sum to zero, or that have fewer than two postings. */
  readonly unbalancedEntries: readonly number[];
  /** Accounts whose stored balance (the sum of their balance rows) differs from the sum of their postings. */
  readonly balanceMismatches: ReadonlyArray<{ readonly account: number; readonly stored: number; readonly sum: number }>;
  /** Sum of every stored balance: zero in a sound ledger. */
  readonly totalBalance: number;
}

/**
 * Checks the invariants of DESIGN §9 over the whole ledger: every entry balances, every stored
 * balance equals the sum of its postings, and all balances sum to zero. A full scan: for audits and
 * tests, not for the request path. The hash chain and signed roots are audited by audit.ts auditLedgerFull.
 */
export async function auditLedger(q: Queryable): Promise<LedgerAudit> {
  const counts = await q.one('SELECT (SELECT COUNT(*) FROM ledger_entries) AS entries, (SELECT COUNT(*) FROM ledger_postings) AS postings');
  const unbalanced = await q.all(
    `SELECT e.id FROM ledger_entries e LEFT JOIN ledger_postings p ON p.entry_id = e.id
     GROUP BY e.id HAVING COUNT(p.line) < 2 OR COALESCE(SUM(p.amount), 0) <> 0 ORDER BY e.id`,
  );
  const mismatches = await q.all(
    `SELECT a.id, CAST(COALESCE(b.total, 0) AS BIGINT) AS stored, CAST(COALESCE(p.total, 0) AS BIGINT) AS summed FROM ledger_accounts a
     LEFT JOIN (SELECT account_id, SUM(balance) AS total FROM ledger_balances GROUP BY account_id) b ON b.account_id = a.id
     LEFT JOIN (SELECT account_id, SUM(amount) AS total FROM ledger_postings GROUP BY account_id) p ON p.account_id = a.id
     WHERE COALESCE(b.total, 0) <> COALESCE(p.total, 0) ORDER BY a.id`,
  );
  const total = await q.one('SELECT CAST(COALESCE(SUM(balance), 0) AS BIGINT) AS total FROM ledger_balances');
  return {
    entries: int(counts?.entries ?? 0, 'count'),
    postings: int(counts?.postings ?? 0, 'count'),
    unbalancedEntries: unbalanced.map((r) => int(r.id, 'entry id')),
    balanceMismatches: mismatches.map((r) => ({
      account: int(r.id, 'account id'),
      stored: int(r.stored, 'balance'),
      sum: int(r.summed, 'sum'),
    })),
    totalBalance: int(total?.total ?? 0, 'total'),
  };
}

export interface EntryView {
  readonly id: EntryId;
  readonly postedAtS: number;
  readonly effectiveAtS: number;
  readonly kind: string;
  readonly reference: string | null;
  readonly createdBy: string;
  readonly memo: string;
  readonly reverses: EntryId | null;
  readonly postings: readonly Posting[];
}

/** One entry with its postings, or undefined. */
export async function getEntry(q: Queryable, id: EntryId): Promise<EntryView | undefined> {
  const e = await q.one('SELECT * FROM ledger_entries WHERE id = ?', [id]);
  if (e === undefined) return undefined;
  const legs = await q.all('SELECT account_id, amount FROM ledger_postings WHERE entry_id = ? ORDER BY line', [id]);
  return {
    id,
    postedAtS: int(e.posted_at, 'posted_at'),
    effectiveAtS: int(e.effective_at, 'effective_at'),
    kind: String(e.kind),
    reference: e.reference === null ? null : String(e.reference),
    createdBy: String(e.created_by),
    memo: String(e.memo),
    reverses: e.reverses === null ? null : (int(e.reverses, 'reverses') as EntryId),
    postings: legs.map((l) => ({ account: int(l.account_id, 'account id') as AccountId, amount: fen(int(l.amount, 'amount')) })),
  };
}

// ---------------------------------------------------------------------------------------------
// Helpers

function invalid(detail: string): ApiError {
  return new ApiError('validation_failed', `ledger: ${detail}`);
}

function checkText(s: string, field: string, maxChars: number, pattern?: RegExp): void {
  if (typeof s !== 'string' || s.length < 1 || s.length > maxChars) throw invalid(`${field} must be 1 to ${maxChars} characters`);
  if (pattern !== undefined && !pattern.test(s)) throw invalid(`${field} "${s}" has characters outside ${String(pattern)}`);
}

function checkTime(t: number, field: string): void {
  if (!Number.isSafeInteger(t) || t < 0 || t > TIME_MAX_S) throw invalid(`${field} ${String(t)} is not a time in seconds`);
}

function checkOwnerId(id: number, field: string): void {
  if (!Number.isSafeInteger(id) || id < 1 || id > PLATFORM_ID_MAX) throw new ApiError('validation_failed', `${field} ${String(id)}`);
}

function accountKind(v: SqlValue | undefined): AccountKind {
  if (typeof v === 'string' && Object.hasOwn(ACCOUNT_KINDS, v)) return v as AccountKind;
  throw new Error(`ledger: unknown account kind ${String(v)} in the database`);
}

/**
 * An integer column as a JS number. PostgreSQL drivers may hand 64-bit values over as decimal text;
 * accept those when exact, and treat anything else as corruption (a programmer error, so it throws).
 */
export function int(v: SqlValue | undefined, field: string): number {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^-?\d{1,16}$/.test(v) ? Number(v) : Number.NaN;
  if (!Number.isSafeInteger(n)) throw new Error(`ledger: ${field} is not an exact integer: ${String(v)}`);
  return n;
}
