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
import {
  credit,
  debit,
  type HolderAccounts,
  type HolderPurseState,
  holderBalancesMany,
  int,
  merchantPayables,
  type Posting,
  postMany,
} from './ledger.js';
import {
  ONLINE_AUTH_AMOUNT_MAX_FEN,
  ONLINE_AUTH_BATCH_MAX,
  ONLINE_AUTH_BATCH_WINDOW_MS,
  ONLINE_AUTH_QUEUE_MAX,
  ONLINE_AUTH_TIME_SKEW_MAX_S,
  PLATFORM_ID_MAX,
} from './limits.js';
import { creditLimitsOf } from './purses.js';

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

export type HolderStanding = { readonly active: true } | { readonly active: false; readonly detail: string };

/**
 * Whether holders may pay right now (not blocked, not graduated...). Supplied by the holders
 * module and read in the authorization's own transaction, for a whole batch at once; a holder
 * missing from the answer is declined as unknown.
 */
export type HolderCheck = (q: Queryable, holderIds: readonly number[]) => Promise<ReadonlyMap<number, HolderStanding>>;

/** Whether credentials are still good (not revoked), for a whole batch at once; a serial missing from the answer is declined. */
export type CredentialCheck = (q: Queryable, serials: readonly number[]) => Promise<ReadonlyMap<number, HolderStanding>>;

export interface OnlineAuthOptions {
  readonly holderCheck: HolderCheck;
  /** Read in the batch's transaction, like holderCheck; absent: credentials are not checked here. */
  readonly credentialCheck?: CredentialCheck;
}

/** Stable detail codes of online declines: the first word of `detail`, before the colon. */
export const ONLINE_DECLINE_DETAILS = [
  'code_used',
  'time_skew',
  'holder_inactive',
  'credential_inactive',
  'in_arrears',
  'insufficient_funds',
  'internal',
] as const;

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
 * Authorizes one payment online, in its own transaction, and answers as the terminal expects.
 * Malformed input throws ApiError(validation_failed); a decision (approve or decline) is always an
 * answer. For the request path under load use OnlineAuthorizer, which batches.
 */
export async function authorizeOnline(db: Db, r: OnlineAuthRequest, nowS: number, opts: OnlineAuthOptions): Promise<OnlineAnswer> {
  checkRequest(r, nowS);
  const [answer] = await db.tx((q) => authorizeBatch(q, db.dialect, [{ request: r, nowS }], opts));
  if (answer === undefined) throw new Error('online-auth: the batch lost its answer');
  return answer;
}

/**
 * Online authorization with group commit: requests that arrive while a transaction is running wait
 * and go together in the next one (at most ONLINE_AUTH_BATCH_MAX). At low load a request starts at
 * once; at lunch, one commit (one fsync) and a fixed number of statements serve a whole batch, and
 * the requests of one process never conflict with each other on PostgreSQL. Each request is still
 * decided on its own, in arrival order, seeing the earlier ones of its batch. If a batch fails for
 * a reason other than a decision, each of its requests is tried again alone, so one bad request
 * cannot fail its neighbours. One instance per Db per process.
 */
export class OnlineAuthorizer {
  private readonly queue: Waiting[] = [];
  private draining = false;
  private readonly batchMax: number;

  constructor(
    private readonly db: Db,
    private readonly opts: OnlineAuthOptions & { readonly batchMax?: number },
  ) {
    this.batchMax = opts.batchMax ?? ONLINE_AUTH_BATCH_MAX;
    if (!Number.isSafeInteger(this.batchMax) || this.batchMax < 1 || this.batchMax > ONLINE_AUTH_BATCH_MAX) {
      throw new RangeError(`batchMax ${String(opts.batchMax)}: 1 to ${ONLINE_AUTH_BATCH_MAX}`);
    }
  }

  /** Requests waiting for a transaction (for metrics). */
  get waiting(): number {
    return this.queue.length;
  }

  authorize(r: OnlineAuthRequest, nowS: number): Promise<OnlineAnswer> {
    checkRequest(r, nowS);
    if (this.queue.length >= ONLINE_AUTH_QUEUE_MAX) {
      // The terminal's budget is long gone for anything this far back: say so at once, and it decides offline.
      return Promise.reject(new ApiError('unavailable', `${this.queue.length} online authorizations waiting`, 1));
    }
    return new Promise<OnlineAnswer>((resolve, reject) => {
      this.queue.push({ request: r, nowS, resolve, reject });
      if (!this.draining) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.draining = true;
    try {
      while (this.queue.length > 0) {
        // Wait a moment before closing a batch: the requests whose bytes arrived while the last
        // (synchronous, on SQLite) commit held the loop are parsed now and join it, and at 1,000/s
        // a millisecond gathers the next arrivals too, so fewer commits serve the same requests.
        await new Promise<void>((resolve) => setTimeout(resolve, ONLINE_AUTH_BATCH_WINDOW_MS));
        await this.run(this.queue.splice(0, this.batchMax));
      }
    } finally {
      this.draining = false;
    }
  }

  private async run(batch: readonly Waiting[]): Promise<void> {
    let answers: OnlineAnswer[];
    try {
      answers = await this.db.tx((q) => authorizeBatch(q, this.db.dialect, batch, this.opts));
    } catch (e) {
      if (batch.length === 1) batch[0]?.reject(e);
      else for (const w of batch) await this.run([w]);
      return;
    }
    batch.forEach((w, i) => {
      const a = answers[i];
      if (a === undefined) w.reject(new Error('online-auth: the batch lost an answer'));
      else w.resolve(a);
    });
  }
}

interface Item {
  readonly request: OnlineAuthRequest;
  readonly nowS: number;
}

interface Waiting extends Item {
  readonly resolve: (a: OnlineAnswer) => void;
  readonly reject: (e: unknown) => void;
}

interface Split {
  readonly subsidy: Fen;
  readonly cash: Fen;
  readonly credit: Fen;
}

type Decline = Extract<OnlineAnswer, { approved: false }>;

const decline = (reason: Decline['reason'], detail: string): Decline => ({ approved: false, reason, detail });
const codeUsed = (r: OnlineAuthRequest): Decline => decline('declined_online', `code_used: code ${r.serial}/${r.counter} was already used`);
const codeKey = (r: OnlineAuthRequest) => `${r.serial}/${r.counter}`;

/**
 * Decides and records a batch inside one transaction, with a fixed number of statements: holder
 * standings, balances (rows locked on PostgreSQL), credit lines where needed, the code claims, the
 * ledger entries, the authorizations and the declines. Nothing reads used_codes on the way to an
 * approval: the claim (an insert that does nothing on a used code) is the check, because on
 * PostgreSQL a plain read of its index pages, which every other authorization inserts into, would
 * make SERIALIZABLE abort unrelated payments. Only declines look there, to report a replay first.
 */
async function authorizeBatch(q: Queryable, dialect: Dialect, items: readonly Item[], opts: OnlineAuthOptions): Promise<OnlineAnswer[]> {
  const answers: (OnlineAnswer | undefined)[] = items.map(() => undefined);
  const seen = new Set<string>();
  items.forEach(({ request: r, nowS }, i) => {
    if (Math.abs(r.time - nowS) > ONLINE_AUTH_TIME_SKEW_MAX_S) {
      answers[i] = decline('declined_online', `time_skew: payment time ${r.time} is ${r.time - nowS} s from the platform clock`);
    } else if (seen.has(codeKey(r))) answers[i] = codeUsed(r);
    seen.add(codeKey(r));
  });
  const open = () => items.flatMap((_it, i) => (answers[i] === undefined ? [i] : []));
  const holders = [...new Set(open().map((i) => items[i]?.request.holderId ?? 0))];
  const standings = holders.length === 0 ? new Map<number, HolderStanding>() : await opts.holderCheck(q, holders);
  for (const i of open()) {
    const s = standings.get(items[i]?.request.holderId ?? 0);
    if (s === undefined) answers[i] = decline('declined_online', 'holder_inactive: unknown holder');
    else if (!s.active) answers[i] = decline('declined_online', `holder_inactive: ${s.detail}`);
  }
  if (opts.credentialCheck !== undefined) {
    const serials = [...new Set(open().map((i) => items[i]?.request.serial ?? 0))];
    const credentials = serials.length === 0 ? new Map<number, HolderStanding>() : await opts.credentialCheck(q, serials);
    for (const i of open()) {
      const serial = items[i]?.request.serial ?? 0;
      const c = credentials.get(serial);
      if (c === undefined) answers[i] = decline('declined_online', `credential_inactive: credential ${serial} is unknown`);
      else if (!c.active) answers[i] = decline('declined_online', `credential_inactive: ${c.detail}`);
    }
  }
  const approved = await fundAndClaim(q, dialect, items, answers);
  await recordDeclines(q, items, answers);
  await recordApprovals(q, items, approved, answers);
  return answers.map((a) => a ?? decline('declined_online', 'internal: no decision'));
}

interface Approved {
  readonly index: number;
  readonly split: Split;
  readonly accounts: HolderAccounts;
}

/**
 * Funds the open requests in order against the holders' locked balances, then claims the codes of
 * those funded. A claim that fails (a used code) is declined and the funding done again without it
 * (only ever freeing money for later requests): at most one round per request.
 */
async function fundAndClaim(
  q: Queryable,
  dialect: Dialect,
  items: readonly Item[],
  answers: (OnlineAnswer | undefined)[],
): Promise<Approved[]> {
  const open = items.flatMap((_it, i) => (answers[i] === undefined ? [i] : []));
  if (open.length === 0) return [];
  const holderIds = open.map((i) => items[i]?.request.holderId ?? 0);
  const balances = await holderBalancesMany(q, holderIds, { lockFor: dialect });
  // Credit lines are read only for holders whose purses alone fall short in this batch.
  const need = new Map<number, number>();
  for (const i of open) {
    const r = items[i]?.request;
    if (r !== undefined) need.set(r.holderId, (need.get(r.holderId) ?? 0) + r.amount);
  }
  const short = [...need].filter(([h, total]) => {
    const b = balances.get(h);
    return b === undefined || b.subsidy + b.cash < total;
  });
  const limits = await creditLimitsOf(
    q,
    short.map(([h]) => h),
  );
  const claimed = new Set<string>();
  const rounds = open.length;
  for (let round = 0; round <= rounds; round++) {
    const outcome = fundInOrder(items, open, balances, limits);
    const toClaim = outcome.approved.filter((a) => !claimed.has(codeKey(items[a.index]?.request ?? NO_REQUEST)));
    const lost = await claimCodes(q, items, toClaim);
    for (const a of toClaim) if (!lost.has(a.index)) claimed.add(codeKey(items[a.index]?.request ?? NO_REQUEST));
    for (const i of lost) answers[i] = codeUsed(items[i]?.request ?? NO_REQUEST);
    if (lost.size === 0) {
      for (const [i, d] of outcome.declined) answers[i] = d;
      return outcome.approved;
    }
    open.splice(0, open.length, ...open.filter((i) => !lost.has(i)));
  }
  throw new Error('online-auth: claiming did not settle (a bug)');
}

const NO_REQUEST: OnlineAuthRequest = { terminalId: 0, merchantId: 0, holderId: 0, serial: 0, counter: 0, amount: 0, time: 0 };

function fundInOrder(
  items: readonly Item[],
  open: readonly number[],
  balances: ReadonlyMap<number, HolderPurseState>,
  limits: ReadonlyMap<number, Fen>,
): { approved: Approved[]; declined: Map<number, Decline> } {
  const running = new Map<number, { subsidy: Fen; cash: Fen; creditUsed: Fen }>();
  const approved: Approved[] = [];
  const declined = new Map<number, Decline>();
  for (const i of open) {
    const r = items[i]?.request;
    const b = r === undefined ? undefined : balances.get(r.holderId);
    if (r === undefined || b === undefined) continue;
    if (b.arrears > 0) {
      declined.set(i, decline('declined_online', `in_arrears: the holder owes ${b.arrears} fen; repay first`));
      continue;
    }
    const now = running.get(r.holderId) ?? b;
    const split = fund(now, limits.get(r.holderId) ?? fen(0), fen(r.amount));
    if (split === undefined || b.accounts === undefined) {
      declined.set(i, decline('insufficient_funds', 'insufficient_funds: balance and credit line do not cover the amount'));
      continue;
    }
    running.set(r.holderId, {
      subsidy: fen(now.subsidy - split.subsidy),
      cash: fen(now.cash - split.cash),
      creditUsed: fen(now.creditUsed + split.credit),
    });
    approved.push({ index: i, split, accounts: b.accounts });
  }
  return { approved, declined };
}

/** Claims codes in one statement; resolves with the indexes whose code was already used. */
async function claimCodes(q: Queryable, items: readonly Item[], approved: readonly Approved[]): Promise<Set<number>> {
  if (approved.length === 0) return new Set();
  const rows = await q.all(
    `INSERT INTO used_codes (serial, counter, via, terminal_id, used_at) VALUES ${approved.map(() => "(?, ?, 'online', ?, ?)").join(', ')}
     ON CONFLICT (serial, counter) DO NOTHING RETURNING serial, counter`,
    approved.flatMap(({ index }) => {
      const it = items[index];
      return it === undefined ? [] : [it.request.serial, it.request.counter, it.request.terminalId, it.nowS];
    }),
  );
  const won = new Set(rows.map((r) => `${int(r.serial, 'serial')}/${int(r.counter, 'counter')}`));
  return new Set(approved.filter(({ index }) => !won.has(codeKey(items[index]?.request ?? NO_REQUEST))).map((a) => a.index));
}

/** Posts the approved payments (one entry each) and records their authorizations. */
async function recordApprovals(
  q: Queryable,
  items: readonly Item[],
  approved: readonly Approved[],
  answers: (OnlineAnswer | undefined)[],
): Promise<void> {
  if (approved.length === 0) return;
  const payables = await merchantPayables(
    q,
    approved.map((a) => items[a.index]?.request.merchantId ?? 0),
  );
  const entries = approved.map(({ index, split, accounts }) => {
    const it = items[index];
    const payable = it === undefined ? undefined : payables.get(it.request.merchantId);
    if (it === undefined || payable === undefined) throw new Error('online-auth: lost a merchant payable');
    const r = it.request;
    const postings: Posting[] = [];
    if (split.subsidy > 0) postings.push(debit(accounts.subsidy, split.subsidy));
    if (split.cash > 0) postings.push(debit(accounts.cash, split.cash));
    if (split.credit > 0) postings.push(debit(accounts.creditUsed, split.credit));
    postings.push(credit(payable, fen(r.amount)));
    return {
      kind: 'online_payment',
      reference: `code:${codeKey(r)}`,
      postedAtS: it.nowS,
      effectiveAtS: r.time,
      createdBy: `terminal:${r.terminalId}`,
      postings,
    };
  });
  const entryIds = await postMany(q, entries);
  const rows = await q.all(
    `INSERT INTO online_authorizations (terminal_id, merchant_id, holder_id, serial, counter, amount, from_subsidy, from_cash, from_credit, payment_time, authorized_at, entry_id)
     VALUES ${approved.map(() => '(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)').join(', ')} RETURNING id, serial, counter`,
    approved.flatMap(({ index, split }, k) => {
      const it = items[index];
      if (it === undefined) return [];
      const r = it.request;
      return [
        r.terminalId,
        r.merchantId,
        r.holderId,
        r.serial,
        r.counter,
        r.amount,
        split.subsidy,
        split.cash,
        split.credit,
        r.time,
        it.nowS,
        entryIds[k] ?? 0,
      ];
    }),
  );
  const ids = new Map(rows.map((row) => [`${int(row.serial, 'serial')}/${int(row.counter, 'counter')}`, int(row.id, 'authorization id')]));
  for (const { index } of approved) {
    const id = ids.get(codeKey(items[index]?.request ?? NO_REQUEST));
    if (id === undefined) throw new Error('online-auth: an authorization row went missing');
    answers[index] = { approved: true, authorization: String(id) };
  }
}

/** Keeps every decline with its reason; a declined request whose code was used is reported as a replay. */
async function recordDeclines(q: Queryable, items: readonly Item[], answers: (OnlineAnswer | undefined)[]): Promise<void> {
  const declined = items.flatMap((_it, i) => {
    const a = answers[i];
    return a !== undefined && !a.approved ? [i] : [];
  });
  if (declined.length === 0) return;
  const check = declined.filter((i) => !(answers[i]?.approved === false && answers[i].detail.startsWith('code_used')));
  if (check.length > 0) {
    const used = await q.all(
      `SELECT serial, counter FROM used_codes WHERE ${check.map(() => '(serial = ? AND counter = ?)').join(' OR ')}`,
      check.flatMap((i) => [items[i]?.request.serial ?? 0, items[i]?.request.counter ?? 0]),
    );
    const set = new Set(used.map((r) => `${int(r.serial, 'serial')}/${int(r.counter, 'counter')}`));
    for (const i of check) if (set.has(codeKey(items[i]?.request ?? NO_REQUEST))) answers[i] = codeUsed(items[i]?.request ?? NO_REQUEST);
  }
  await q.run(
    `INSERT INTO online_declines (terminal_id, merchant_id, holder_id, serial, counter, amount, payment_time, declined_at, reason, detail) VALUES ${declined.map(() => '(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)').join(', ')}`,
    declined.flatMap((i) => {
      const it = items[i];
      const a = answers[i];
      if (it === undefined || a === undefined || a.approved) return [];
      const r = it.request;
      return [r.terminalId, r.merchantId, r.holderId, r.serial, r.counter, r.amount, r.time, it.nowS, a.reason, a.detail];
    }),
  );
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
