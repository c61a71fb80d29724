/**
 * Purses and money in (issue 4), on SQLite and PostgreSQL: top-up with an idempotency key (a repeat
 * gets the first result and posts nothing; another request under the same key is refused; twenty
 * identical requests at once post once, also from two Db instances as two processes would), amount
 * bounds, subsidy grants, credit lines, and the arrears-first hook of top-up.
 */
import { fen } from '@duet/protocol';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Db, Queryable } from '../src/db/db.js';
import { ApiError, type ApiErrorCode } from '../src/errors.js';
import { auditLedger, credit, debit, holderAccounts, ledgerMigrations, post, systemAccount } from '../src/ledger.js';
import {
  CREDIT_LINE_MAX_FEN,
  IDEMPOTENCY_KEY_MAX_CHARS,
  PURSE_BALANCE_MAX_FEN,
  SUBSIDY_GRANT_MAX_FEN,
  TOPUP_MAX_FEN,
} from '../src/limits.js';
import { authorizeOnline, type HolderCheck, onlineAuthMigrations } from '../src/online-auth.js';
import {
  grantSubsidy,
  IDEMPOTENCY_KEEP_S,
  purgeIdempotencyKeys,
  purses,
  pursesMigrations,
  setCreditLine,
  type TopUpChannel,
  type TopUpRequest,
  topUp,
} from '../src/purses.js';
import { holdersMigrations } from '../src/holders.js';
import { listsMigrations } from '../src/lists.js';
import { recoveryMigrations } from '../src/recovery.js';
import { databases } from './pg-harness.js';

// A top-up that repays arrears tells recovery (holders, deny lists, arrears cases), so those tables are needed too.
const MIGRATIONS = [
  ...holdersMigrations,
  ...listsMigrations,
  ...ledgerMigrations,
  ...pursesMigrations,
  ...onlineAuthMigrations,
  ...recoveryMigrations,
];
const T0 = 1_800_000_000;
const ALL_ACTIVE: HolderCheck = async (_q, ids) => new Map(ids.map((id) => [id, { active: true as const }]));

async function apiError(p: Promise<unknown>): Promise<ApiErrorCode> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  if (!(e instanceof ApiError)) throw new Error(`expected an ApiError, got ${String(e)}`);
  return e.code;
}

async function entriesOfKind(q: Queryable, kind: string): Promise<number> {
  const row = await q.one('SELECT COUNT(*) AS n FROM ledger_entries WHERE kind = ?', [kind]);
  return Number(row?.n);
}

async function books(q: Queryable) {
  return {
    entries: await q.all('SELECT * FROM ledger_entries ORDER BY id'),
    balances: await q.all('SELECT * FROM ledger_balances ORDER BY account_id, shard'),
    keys: await q.all('SELECT * FROM idempotency_keys ORDER BY scope, idem_key'),
    lines: await q.all('SELECT * FROM credit_lines ORDER BY id'),
  };
}

async function expectSound(q: Queryable): Promise<void> {
  const audit = await auditLedger(q);
  expect(audit.unbalancedEntries).toEqual([]);
  expect(audit.balanceMismatches).toEqual([]);
  expect(audit.totalBalance).toBe(0);
}

let nextHolder = 1;
const freshHolder = () => nextHolder++;
let nextKey = 0;
const freshKey = () => `key-${nextKey++}`;

for (const d of databases) {
  describe.skipIf(!d.available)(`purses on ${d.name}`, () => {
    let db: Db;
    beforeAll(async () => {
      db = await d.open();
      await db.migrate(MIGRATIONS);
    });

    it('tops up the cash purse through a cashier or a bank: topup_clearing debited, the purse credited', async () => {
      const h = freshHolder();
      const empty = await purses(db, h);
      expect(empty).toEqual({ cash: 0, subsidy: 0, creditLimit: 0, creditUsed: 0, arrears: 0, available: 0 });
      const clearing = await systemAccount(db, 'topup_clearing');
      const r = await topUp(db, { holderId: h, amount: 5_000, channel: 'cashier', idempotencyKey: freshKey(), by: 'cashier-1' }, T0);
      expect(r).toMatchObject({ holderId: h, amount: 5_000, channel: 'cashier', repaidArrears: 0, cashAfter: 5_000, postedAtS: T0 });
      await topUp(db, { holderId: h, amount: 2_500, channel: 'bank', idempotencyKey: freshKey(), by: 'bank-connector' }, T0 + 1);
      expect(await purses(db, h)).toEqual({ cash: 7_500, subsidy: 0, creditLimit: 0, creditUsed: 0, arrears: 0, available: 7_500 });
      const legs = await db.all('SELECT account_id, amount FROM ledger_postings WHERE entry_id = ? ORDER BY line', [r.entryId]);
      const { cash } = await db.tx((q) => holderAccounts(q, h));
      expect(legs).toEqual([
        { account_id: clearing, amount: 5_000 },
        { account_id: cash, amount: -5_000 },
      ]);
      const op = await db.one('SELECT kind, channel, created_by FROM purse_operations WHERE id = ?', [r.topUpId]);
      expect(op).toEqual({ kind: 'topup', channel: 'cashier', created_by: 'cashier-1' });
      await expectSound(db);
    });

    it('refuses out-of-range top-ups with validation_failed and writes nothing', async () => {
      const h = freshHolder();
      const ok: TopUpRequest = { holderId: h, amount: 100, channel: 'cashier', idempotencyKey: freshKey(), by: 'cashier-1' };
      const bad: Array<[string, TopUpRequest]> = [
        ['zero', { ...ok, amount: 0 }],
        ['negative', { ...ok, amount: -100 }],
        ['a fraction of a fen', { ...ok, amount: 100.5 }],
        ['NaN', { ...ok, amount: Number.NaN }],
        ['over the cap', { ...ok, amount: TOPUP_MAX_FEN + 1 }],
        ['an unknown channel', { ...ok, channel: 'wechat' as TopUpChannel }],
        ['an empty key', { ...ok, idempotencyKey: '' }],
        ['a key with spaces', { ...ok, idempotencyKey: 'a b' }],
        ['a key too long', { ...ok, idempotencyKey: 'k'.repeat(IDEMPOTENCY_KEY_MAX_CHARS + 1) }],
        ['nobody', { ...ok, by: '' }],
        ['holder 0', { ...ok, holderId: 0 }],
      ];
      for (const [why, r] of bad) {
        const before = await books(db);
        expect(await apiError(topUp(db, r, T0)), why).toBe('validation_failed');
        expect(await books(db), why).toEqual(before);
      }
      expect((await topUp(db, { ...ok, amount: TOPUP_MAX_FEN }, T0)).cashAfter).toBe(TOPUP_MAX_FEN);
    });

    it('answers a repeated top-up with the first result and posts once; the same key with another request is refused', async () => {
      const h = freshHolder();
      const key = freshKey();
      const r: TopUpRequest = { holderId: h, amount: 1_000, channel: 'cashier', idempotencyKey: key, by: 'cashier-1' };
      const first = await topUp(db, r, T0);
      const before = await books(db);
      expect(await topUp(db, r, T0 + 30)).toEqual(first);
      expect(await books(db)).toEqual(before);
      for (const other of [{ amount: 1_001 }, { holderId: freshHolder() }, { channel: 'bank' as const }, { by: 'cashier-2' }]) {
        expect(await apiError(topUp(db, { ...r, ...other }, T0)), JSON.stringify(other)).toBe('idempotency_mismatch');
      }
      expect(await books(db)).toEqual(before);
      expect((await purses(db, h)).cash).toBe(1_000);
      // Keys are per operation: the same key may name a subsidy grant.
      const g = await grantSubsidy(db, { holderId: h, amount: 10, by: 'finance', idempotencyKey: key }, T0);
      expect(g.subsidyAfter).toBe(10);
    });

    it('remembers a key for IDEMPOTENCY_KEEP_S and then forgets it; a key whose request is still running is never forgotten', async () => {
      const h = freshHolder();
      const key = freshKey();
      const r: TopUpRequest = { holderId: h, amount: 700, channel: 'bank', idempotencyKey: key, by: 'bank' };
      const first = await topUp(db, r, T0);
      const remembered = () => db.one('SELECT 1 AS x FROM idempotency_keys WHERE scope = ? AND idem_key = ?', ['topup', key]);
      // A key claimed by a request that never finished (its process died mid-way): kept at any age.
      await db.run("INSERT INTO idempotency_keys (scope, idem_key, request_hash, result, created_at) VALUES ('topup', ?, 'x', NULL, ?)", [
        `${key}-running`,
        T0 - 10 * IDEMPOTENCY_KEEP_S,
      ]);
      await purgeIdempotencyKeys(db, T0 + IDEMPOTENCY_KEEP_S);
      expect(await remembered()).toBeDefined();
      expect(await topUp(db, r, T0 + IDEMPOTENCY_KEEP_S)).toEqual(first);
      expect(await purgeIdempotencyKeys(db, T0 + IDEMPOTENCY_KEEP_S + 1)).toBeGreaterThanOrEqual(1);
      expect(await remembered()).toBeUndefined();
      expect(await db.one('SELECT 1 AS x FROM idempotency_keys WHERE idem_key = ?', [`${key}-running`])).toBeDefined();
      // The money stays: only the memory of the key went.
      expect((await purses(db, h)).cash).toBe(700);
      await expect(purgeIdempotencyKeys(db, T0, -1)).rejects.toThrow(RangeError);
    });

    it('posts once when twenty identical top-ups arrive at once, and all twenty get the same result', async () => {
      const h = freshHolder();
      const r: TopUpRequest = { holderId: h, amount: 2_000, channel: 'bank', idempotencyKey: freshKey(), by: 'bank-connector' };
      const results = await Promise.all(Array.from({ length: 20 }, () => topUp(db, r, T0)));
      for (const x of results) expect(x).toEqual(results[0]);
      expect((await purses(db, h)).cash).toBe(2_000);
      const ops = await db.one('SELECT COUNT(*) AS n FROM purse_operations WHERE holder_id = ?', [h]);
      expect(Number(ops?.n)).toBe(1);
      await expectSound(db);
    });

    it('posts once when identical top-ups arrive at once through two Db instances (two processes) on one database', async () => {
      const storage = await d.fresh();
      const [a, b] = [await storage.open(), await storage.open()];
      await a.migrate(MIGRATIONS);
      const h = freshHolder();
      const r: TopUpRequest = { holderId: h, amount: 3_000, channel: 'cashier', idempotencyKey: freshKey(), by: 'cashier-1' };
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => topUp(i % 2 === 0 ? a : b, r, T0)));
      for (const x of results) expect(x).toEqual(results[0]);
      expect((await purses(a, h)).cash).toBe(3_000);
      expect(await entriesOfKind(a, 'topup')).toBe(1);
      await expectSound(a);
    });

    it('refuses a top-up past the purse cap without using up its key', async () => {
      const h = freshHolder();
      for (let i = 0; i < PURSE_BALANCE_MAX_FEN / TOPUP_MAX_FEN; i++) {
        await topUp(db, { holderId: h, amount: TOPUP_MAX_FEN, channel: 'bank', idempotencyKey: freshKey(), by: 'bank' }, T0);
      }
      const r: TopUpRequest = { holderId: h, amount: 100, channel: 'cashier', idempotencyKey: freshKey(), by: 'cashier-1' };
      const before = await books(db);
      expect(await apiError(topUp(db, r, T0))).toBe('validation_failed');
      expect(await books(db)).toEqual(before);
      // Spend a little: the same request under the same key now goes through.
      const paid = await authorizeOnline(
        db,
        { terminalId: 1, merchantId: 1, holderId: h, serial: h, counter: 1, amount: 500, time: T0 },
        T0,
        {
          holderCheck: ALL_ACTIVE,
        },
      );
      expect(paid.approved).toBe(true);
      expect((await topUp(db, r, T0)).cashAfter).toBe(PURSE_BALANCE_MAX_FEN - 400);
    });

    it('grants subsidies from the school: the subsidy purse, idempotent, bounded', async () => {
      const h = freshHolder();
      const key = freshKey();
      const g = await grantSubsidy(db, { holderId: h, amount: 3_000, by: 'finance', idempotencyKey: key }, T0);
      expect(g).toMatchObject({ holderId: h, amount: 3_000, subsidyAfter: 3_000 });
      expect(await grantSubsidy(db, { holderId: h, amount: 3_000, by: 'finance', idempotencyKey: key }, T0 + 5)).toEqual(g);
      expect(await apiError(grantSubsidy(db, { holderId: h, amount: 3_001, by: 'finance', idempotencyKey: key }, T0))).toBe(
        'idempotency_mismatch',
      );
      for (const amount of [0, -1, 0.5, SUBSIDY_GRANT_MAX_FEN + 1]) {
        expect(
          await apiError(grantSubsidy(db, { holderId: h, amount, by: 'finance', idempotencyKey: freshKey() }, T0)),
          String(amount),
        ).toBe('validation_failed');
      }
      const legs = await db.all('SELECT account_id, amount FROM ledger_postings WHERE entry_id = ? ORDER BY line', [g.entryId]);
      const { subsidy } = await db.tx((q) => holderAccounts(q, h));
      expect(legs).toEqual([
        { account_id: await systemAccount(db, 'subsidy_pool'), amount: 3_000 },
        { account_id: subsidy, amount: -3_000 },
      ]);
      expect(await purses(db, h)).toEqual({ cash: 0, subsidy: 3_000, creditLimit: 0, creditUsed: 0, arrears: 0, available: 3_000 });
      await expectSound(db);
    });

    it('sets school credit lines: the line in force, its history kept, bounded; used credit is the credit_used account', async () => {
      const h = freshHolder();
      expect(await setCreditLine(db, { holderId: h, limit: 2_000, by: 'finance' }, T0)).toMatchObject({
        creditLimit: 2_000,
        creditUsed: 0,
        available: 2_000,
      });
      for (const limit of [-1, 0.5, CREDIT_LINE_MAX_FEN + 1, Number.NaN]) {
        expect(await apiError(setCreditLine(db, { holderId: h, limit, by: 'finance' }, T0)), String(limit)).toBe('validation_failed');
      }
      const paid = await authorizeOnline(
        db,
        { terminalId: 1, merchantId: 1, holderId: h, serial: h, counter: 1, amount: 1_500, time: T0 },
        T0,
        {
          holderCheck: ALL_ACTIVE,
        },
      );
      expect(paid.approved).toBe(true);
      expect(await purses(db, h)).toMatchObject({ creditLimit: 2_000, creditUsed: 1_500, available: 500 });
      // Lowered below what is drawn: no headroom, nothing called back.
      expect(await setCreditLine(db, { holderId: h, limit: 1_000, by: 'finance' }, T0 + 1)).toMatchObject({
        creditLimit: 1_000,
        creditUsed: 1_500,
        available: 0,
      });
      expect(await setCreditLine(db, { holderId: h, limit: 0, by: 'finance' }, T0 + 2)).toMatchObject({ creditLimit: 0, available: 0 });
      const history = await db.all('SELECT credit_limit, set_by, set_at FROM credit_lines WHERE holder_id = ? ORDER BY id', [h]);
      expect(history.map((x) => x.credit_limit)).toEqual([2_000, 1_000, 0]);
      await expectSound(db);
    });

    it('repays arrears first at the next top-up (the issue 5 hook), and shows nothing available while in arrears', async () => {
      const h = freshHolder();
      const { arrears } = await db.tx((q) => holderAccounts(q, h));
      const advance = await systemAccount(db, 'operator_advance');
      // What clearing (issue 5) will post when an offline payment is funded by the operator's advance.
      await db.tx((q) =>
        post(q, {
          kind: 'test_advance',
          reference: null,
          postedAtS: T0,
          effectiveAtS: T0,
          createdBy: 'test',
          postings: [debit(arrears, fen(800)), credit(advance, fen(800))],
        }),
      );
      await grantSubsidy(db, { holderId: h, amount: 100, by: 'finance', idempotencyKey: freshKey() }, T0);
      expect(await purses(db, h)).toMatchObject({ arrears: 800, subsidy: 100, available: 0 });
      const small = await topUp(db, { holderId: h, amount: 300, channel: 'cashier', idempotencyKey: freshKey(), by: 'cashier-1' }, T0);
      expect(small).toMatchObject({ repaidArrears: 300, cashAfter: 0 });
      expect(await purses(db, h)).toMatchObject({ arrears: 500, cash: 0 });
      const big = await topUp(db, { holderId: h, amount: 2_000, channel: 'cashier', idempotencyKey: freshKey(), by: 'cashier-1' }, T0);
      expect(big).toMatchObject({ repaidArrears: 500, cashAfter: 1_500 });
      expect(await purses(db, h)).toEqual({ cash: 1_500, subsidy: 100, creditLimit: 0, creditUsed: 0, arrears: 0, available: 1_600 });
      await expectSound(db);
    });
  });
}
