/**
 * Online authorization (issue 4) on SQLite and PostgreSQL: funds taken subsidy → cash → credit
 * line, the debit posted to the merchant's payable with the payment's own time, declines with
 * stable reasons (and recorded), never arrears; and under concurrency, never an overdraft and never
 * a code spent twice: 50 payments of 10 yuan at once against 100 yuan approve exactly 10, the same
 * code twice at once approves once, through one transaction per request, through the batching
 * OnlineAuthorizer, and through two Db instances on one database (two processes).
 */
import { fen } from '@duet/protocol';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Db, Queryable } from '../src/db/db.js';
import { ApiError } from '../src/errors.js';
import {
  auditLedger,
  credit,
  debit,
  holderAccounts,
  ledgerMigrations,
  merchantPayable,
  post,
  rawBalance,
  systemAccount,
} from '../src/ledger.js';
import { ONLINE_AUTH_AMOUNT_MAX_FEN, ONLINE_AUTH_TIME_SKEW_MAX_S } from '../src/limits.js';
import {
  authorizeOnline,
  type HolderCheck,
  type HolderStanding,
  type OnlineAnswer,
  type OnlineAuthRequest,
  OnlineAuthorizer,
  onlineAuthMigrations,
} from '../src/online-auth.js';
import { grantSubsidy, purses, pursesMigrations, setCreditLine, topUp } from '../src/purses.js';
import { databases } from './pg-harness.js';

const MIGRATIONS = [...ledgerMigrations, ...pursesMigrations, ...onlineAuthMigrations];
const T0 = 1_800_000_000;

/** Holders are active unless listed here (as the holders module would answer from its table). */
const standing = new Map<number, HolderStanding>();
const CHECK: HolderCheck = async (_q, ids) => new Map(ids.map((id) => [id, standing.get(id) ?? { active: true as const }]));
const OPTS = { holderCheck: CHECK };

let nextHolder = 1;
const freshHolder = () => nextHolder++;
let nextKey = 0;
let nextCounter = 0;

function req(holderId: number, amount: number, over: Partial<OnlineAuthRequest> = {}): OnlineAuthRequest {
  return { terminalId: 7, merchantId: 3, holderId, serial: 10_000 + holderId, counter: nextCounter++, amount, time: T0, ...over };
}

async function fund(db: Db, h: number, m: { cash?: number; subsidy?: number; limit?: number }): Promise<void> {
  if (m.cash !== undefined)
    await topUp(db, { holderId: h, amount: m.cash, channel: 'cashier', idempotencyKey: `oa-${nextKey++}`, by: 'cashier' }, T0);
  if (m.subsidy !== undefined)
    await grantSubsidy(db, { holderId: h, amount: m.subsidy, by: 'finance', idempotencyKey: `oa-${nextKey++}` }, T0);
  if (m.limit !== undefined) await setCreditLine(db, { holderId: h, limit: m.limit, by: 'finance' }, T0);
}

async function expectSound(q: Queryable): Promise<void> {
  const audit = await auditLedger(q);
  expect(audit.unbalancedEntries).toEqual([]);
  expect(audit.balanceMismatches).toEqual([]);
  expect(audit.totalBalance).toBe(0);
}

function tally(answers: readonly OnlineAnswer[]) {
  return {
    approved: answers.filter((a) => a.approved).length,
    insufficient: answers.filter((a) => !a.approved && a.reason === 'insufficient_funds').length,
    codeUsed: answers.filter((a) => !a.approved && a.detail.startsWith('code_used')).length,
  };
}

for (const d of databases) {
  describe.skipIf(!d.available)(`online authorization on ${d.name}`, () => {
    let db: Db;
    beforeAll(async () => {
      db = await d.open();
      await db.migrate(MIGRATIONS);
    });

    it('takes funds subsidy first, then cash, then the credit line, and credits the merchant payable at the payment time', async () => {
      const h = freshHolder();
      await fund(db, h, { subsidy: 300, cash: 500, limit: 1_000 });
      const payable = await db.tx((q) => merchantPayable(q, 3));
      const payableBefore = await rawBalance(db, payable);
      const splits: unknown[] = [];
      for (const amount of [200, 400, 700]) {
        const a = await authorizeOnline(db, req(h, amount, { time: T0 - 20 }), T0, OPTS);
        if (!a.approved) throw new Error(`declined: ${a.detail}`);
        const row = await db.one(
          'SELECT from_subsidy, from_cash, from_credit, entry_id, payment_time, authorized_at FROM online_authorizations WHERE id = ?',
          [Number(a.authorization)],
        );
        splits.push([row?.from_subsidy, row?.from_cash, row?.from_credit]);
        const e = await db.one('SELECT kind, posted_at, effective_at FROM ledger_entries WHERE id = ?', [Number(row?.entry_id)]);
        expect(e).toEqual({ kind: 'online_payment', posted_at: T0, effective_at: T0 - 20 });
      }
      expect(splits).toEqual([
        [200, 0, 0],
        [100, 300, 0],
        [0, 200, 500],
      ]);
      expect(await purses(db, h)).toEqual({ cash: 0, subsidy: 0, creditLimit: 1_000, creditUsed: 500, arrears: 0, available: 500 });
      expect(await rawBalance(db, payable)).toBe(payableBefore - 1_300);
      await expectSound(db);
    });

    it('declines what the funds do not cover, moves nothing, records why, and never creates arrears', async () => {
      const h = freshHolder();
      await fund(db, h, { subsidy: 100, cash: 200, limit: 300 });
      const before = await purses(db, h);
      const a = await authorizeOnline(db, req(h, 601), T0, OPTS);
      expect(a).toMatchObject({ approved: false, reason: 'insufficient_funds' });
      expect(await purses(db, h)).toEqual(before);
      const logged = await db.all('SELECT reason, detail, amount FROM online_declines WHERE holder_id = ?', [h]);
      expect(logged).toEqual([{ reason: 'insufficient_funds', detail: expect.stringMatching(/^insufficient_funds/), amount: 601 }]);
      expect((await authorizeOnline(db, req(h, 600), T0, OPTS)).approved).toBe(true);
      expect(await authorizeOnline(db, req(h, 1), T0, OPTS)).toMatchObject({ approved: false, reason: 'insufficient_funds' });
      expect(await purses(db, h)).toMatchObject({ cash: 0, subsidy: 0, creditUsed: 300, arrears: 0, available: 0 });
      await expectSound(db);
    });

    it('declines blocked, unknown and indebted holders with a reason, before looking at funds', async () => {
      const blocked = freshHolder();
      await fund(db, blocked, { cash: 1_000 });
      standing.set(blocked, { active: false, detail: 'blocked: lost phone reported' });
      expect(await authorizeOnline(db, req(blocked, 100), T0, OPTS)).toEqual({
        approved: false,
        reason: 'declined_online',
        detail: 'holder_inactive: blocked: lost phone reported',
      });
      const nobody = freshHolder();
      const unknown: HolderCheck = async () => new Map();
      expect(await authorizeOnline(db, req(nobody, 100), T0, { holderCheck: unknown })).toMatchObject({
        approved: false,
        reason: 'declined_online',
        detail: expect.stringMatching(/^holder_inactive: unknown/),
      });
      const owes = freshHolder();
      await fund(db, owes, { subsidy: 5_000 });
      const { arrears } = await db.tx((q) => holderAccounts(q, owes));
      const advance = await systemAccount(db, 'operator_advance');
      await db.tx((q) =>
        post(q, {
          kind: 'test_advance',
          reference: null,
          postedAtS: T0,
          effectiveAtS: T0,
          createdBy: 'test',
          postings: [debit(arrears, fen(50)), credit(advance, fen(50))],
        }),
      );
      expect(await authorizeOnline(db, req(owes, 100), T0, OPTS)).toMatchObject({
        approved: false,
        reason: 'declined_online',
        detail: expect.stringMatching(/^in_arrears/),
      });
      expect((await purses(db, owes)).subsidy).toBe(5_000);
    });

    it('spends a code once; a declined code stays usable; a used code is reported as a replay before anything else', async () => {
      const h = freshHolder();
      await fund(db, h, { cash: 1_000 });
      const r = req(h, 400);
      expect((await authorizeOnline(db, r, T0, OPTS)).approved).toBe(true);
      expect(await authorizeOnline(db, r, T0, OPTS)).toMatchObject({
        approved: false,
        reason: 'declined_online',
        detail: expect.stringMatching(/^code_used/),
      });
      // Another holder presenting the same code (a forged mapping) is refused too.
      const other = freshHolder();
      await fund(db, other, { cash: 1_000 });
      expect(await authorizeOnline(db, { ...r, holderId: other }, T0, OPTS)).toMatchObject({ detail: expect.stringMatching(/^code_used/) });
      // Too much for the purse: declined, and the code is not used up.
      const big = req(h, 900);
      expect(await authorizeOnline(db, big, T0, OPTS)).toMatchObject({ reason: 'insufficient_funds' });
      await fund(db, h, { cash: 500 });
      expect((await authorizeOnline(db, big, T0, OPTS)).approved).toBe(true);
      // A replay that also lacks funds is reported as the replay.
      expect(await authorizeOnline(db, { ...r, amount: 1_000_000 }, T0, OPTS)).toMatchObject({
        detail: expect.stringMatching(/^code_used/),
      });
      const used = await db.one('SELECT via, terminal_id, used_at FROM used_codes WHERE serial = ? AND counter = ?', [r.serial, r.counter]);
      expect(used).toEqual({ via: 'online', terminal_id: 7, used_at: T0 });
    });

    it('declines a payment time far from the platform clock, and refuses malformed requests outright', async () => {
      const h = freshHolder();
      await fund(db, h, { cash: 1_000 });
      expect(await authorizeOnline(db, req(h, 100, { time: T0 - ONLINE_AUTH_TIME_SKEW_MAX_S - 1 }), T0, OPTS)).toMatchObject({
        reason: 'declined_online',
        detail: expect.stringMatching(/^time_skew/),
      });
      expect((await authorizeOnline(db, req(h, 100, { time: T0 - ONLINE_AUTH_TIME_SKEW_MAX_S }), T0, OPTS)).approved).toBe(true);
      const malformed: Array<Partial<OnlineAuthRequest>> = [
        { amount: 0 },
        { amount: -5 },
        { amount: 1.5 },
        { amount: ONLINE_AUTH_AMOUNT_MAX_FEN + 1 },
        { holderId: 0 },
        { merchantId: -1 },
        { terminalId: 2 ** 53 },
        { serial: 0 },
        { counter: -1 },
        { time: Number.NaN },
      ];
      for (const bad of malformed) {
        const e = await authorizeOnline(db, req(h, 100, bad), T0, OPTS).catch((x: unknown) => x);
        expect(e, JSON.stringify(bad)).toBeInstanceOf(ApiError);
        expect((e as ApiError).code).toBe('validation_failed');
      }
    });

    describe('under concurrency', () => {
      const ways: Array<[string, (db: Db) => (r: OnlineAuthRequest) => Promise<OnlineAnswer>]> = [
        ['one transaction per request', (db) => (r) => authorizeOnline(db, r, T0, OPTS)],
        [
          'the batching OnlineAuthorizer',
          (db) => {
            const a = new OnlineAuthorizer(db, OPTS);
            return (r) => a.authorize(r, T0);
          },
        ],
      ];
      for (const [way, make] of ways) {
        it(`approves exactly 10 of 50 simultaneous 10-yuan payments against 100 yuan (${way})`, async () => {
          const h = freshHolder();
          await fund(db, h, { cash: 10_000 });
          const authorize = make(db);
          const answers = await Promise.all(Array.from({ length: 50 }, () => authorize(req(h, 1_000))));
          expect(tally(answers)).toEqual({ approved: 10, insufficient: 40, codeUsed: 0 });
          expect(await purses(db, h)).toMatchObject({ cash: 0, arrears: 0 });
          await expectSound(db);
        });

        it(`approves the same code once when it arrives twice at once (${way})`, async () => {
          const h = freshHolder();
          await fund(db, h, { cash: 10_000 });
          const authorize = make(db);
          for (let round = 0; round < 5; round++) {
            const r = req(h, 100);
            const answers = await Promise.all([authorize(r), authorize(r)]);
            expect(tally(answers)).toEqual({ approved: 1, insufficient: 0, codeUsed: 1 });
          }
          expect((await purses(db, h)).cash).toBe(10_000 - 500);
        });

        it(`never overdraws across two Db instances (two processes) on one database (${way})`, async () => {
          const storage = await d.fresh();
          const [a, b] = [await storage.open(), await storage.open()];
          await a.migrate(MIGRATIONS);
          const h = freshHolder();
          await fund(a, h, { subsidy: 3_000, cash: 4_000, limit: 3_000 });
          const [viaA, viaB] = [make(a), make(b)];
          const shared = req(h, 1_000);
          const answers = await Promise.all(
            Array.from({ length: 30 }, (_, i) => (i % 2 === 0 ? viaA : viaB)(i < 2 ? shared : req(h, 1_000))),
          );
          expect(tally(answers)).toEqual({ approved: 10, insufficient: 19, codeUsed: 1 });
          expect(await purses(a, h)).toMatchObject({ subsidy: 0, cash: 0, creditUsed: 3_000, available: 0, arrears: 0 });
          await expectSound(a);
        });
      }
    });

    it('batches: later requests of a batch see the earlier ones, a code twice in a batch is spent once, one failing request does not fail its neighbours', async () => {
      const h = freshHolder();
      const poison = freshHolder();
      await fund(db, h, { cash: 1_000 });
      await fund(db, poison, { cash: 1_000 });
      const check: HolderCheck = async (q, ids) => {
        if (ids.includes(poison)) throw new Error('holder lookup failed');
        return CHECK(q, ids);
      };
      const authorizer = new OnlineAuthorizer(db, { holderCheck: check });
      const twice = req(h, 100);
      const pending = [req(h, 600), twice, twice, req(h, 400), req(poison, 10), req(h, 300)].map((r) =>
        authorizer.authorize(r, T0).catch((e: unknown) => e),
      );
      const [a, b, c, e, f, g] = await Promise.all(pending);
      expect(a).toMatchObject({ approved: true });
      expect(b).toMatchObject({ approved: true });
      expect(c).toMatchObject({ approved: false, detail: expect.stringMatching(/^code_used/) });
      expect(e).toMatchObject({ approved: false, reason: 'insufficient_funds' });
      expect(f).toBeInstanceOf(Error);
      expect(g).toMatchObject({ approved: true });
      expect(authorizer.waiting).toBe(0);
      expect((await purses(db, h)).cash).toBe(0);
      expect((await purses(db, poison)).cash).toBe(1_000);
      await expectSound(db);
    });
  });
}
