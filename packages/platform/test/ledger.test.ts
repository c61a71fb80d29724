/**
 * The ledger (DESIGN §9) on SQLite and PostgreSQL: every entry balances, a balance equals the sum of
 * its postings, all balances sum to zero, bad entries are refused with nothing written, entries
 * and postings cannot be changed (triggers, and no code that tries), corrections are reversals.
 * The property test drives random top-ups, grants, credit lines, online payments and reversals
 * against a model of the purses and audits the books after each sequence.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FEN_MAX, type Fen, fen } from '@duet/protocol';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Db, Queryable } from '../src/db/db.js';
import { ApiError, type ApiErrorCode } from '../src/errors.js';
import {
  type AccountId,
  auditLedger,
  credit,
  debit,
  type EntryId,
  getEntry,
  holderAccounts,
  ledgerMigrations,
  merchantPayable,
  type NewEntry,
  post,
  postMany,
  rawBalance,
  reverse,
  SYSTEM_ACCOUNT_KINDS,
  systemAccount,
} from '../src/ledger.js';
import { LEDGER_BALANCE_SHARDS, LEDGER_POSTINGS_PER_ENTRY_MAX } from '../src/limits.js';
import { type HolderCheck, onlineAuthMigrations, authorizeOnline } from '../src/online-auth.js';
import { grantSubsidy, purses, pursesMigrations, setCreditLine, topUp } from '../src/purses.js';
import { databases } from './pg-harness.js';

const MIGRATIONS = [...ledgerMigrations, ...pursesMigrations, ...onlineAuthMigrations];
const T0 = 1_800_000_000;
const ALL_ACTIVE: HolderCheck = async (_q, ids) => new Map(ids.map((id) => [id, { active: true as const }]));

async function ready(open: () => Promise<Db>): Promise<Db> {
  const db = await open();
  await db.migrate(MIGRATIONS);
  return db;
}

async function apiError(p: Promise<unknown>): Promise<ApiErrorCode> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  if (!(e instanceof ApiError)) throw new Error(`expected an ApiError, got ${String(e)}`);
  return e.code;
}

/** What the books hold, to show a refused operation wrote nothing. */
async function snapshot(q: Queryable) {
  const rows = (sql: string) => q.all(sql);
  return {
    entries: await rows('SELECT * FROM ledger_entries ORDER BY id'),
    postings: await rows('SELECT * FROM ledger_postings ORDER BY entry_id, line'),
    balances: await rows('SELECT * FROM ledger_balances ORDER BY account_id, shard'),
    accounts: await rows('SELECT * FROM ledger_accounts ORDER BY id'),
  };
}

async function expectSound(q: Queryable): Promise<void> {
  const audit = await auditLedger(q);
  expect(audit.unbalancedEntries).toEqual([]);
  expect(audit.balanceMismatches).toEqual([]);
  expect(audit.totalBalance).toBe(0);
}

function entry(postings: NewEntry['postings'], over: Partial<NewEntry> = {}): NewEntry {
  return { kind: 'adjustment', reference: null, postedAtS: T0, effectiveAtS: T0, createdBy: 'test', postings, ...over };
}

let nextHolder = 1;
const freshHolder = () => nextHolder++;

for (const d of databases) {
  describe.skipIf(!d.available)(`ledger on ${d.name}`, () => {
    let db: Db;
    beforeAll(async () => {
      db = await ready(() => d.open());
    });

    it('has the operator accounts after migration, and makes holder and merchant accounts once, on demand', async () => {
      for (const k of SYSTEM_ACCOUNT_KINDS) expect(await systemAccount(db, k)).toBeGreaterThan(0);
      const h = freshHolder();
      const a = await db.tx((q) => holderAccounts(q, h));
      expect(new Set(Object.values(a)).size).toBe(4);
      expect(await db.tx((q) => holderAccounts(q, h))).toEqual(a);
      const m = await db.tx((q) => merchantPayable(q, 900 + h));
      expect(await db.tx((q) => merchantPayable(q, 900 + h))).toBe(m);
      const sides = await db.all('SELECT kind, normal_side FROM ledger_accounts WHERE owner = ? ORDER BY kind', [h]);
      expect(sides).toEqual([
        { kind: 'holder_arrears', normal_side: 'debit' },
        { kind: 'holder_cash', normal_side: 'credit' },
        { kind: 'holder_credit_used', normal_side: 'debit' },
        { kind: 'holder_subsidy', normal_side: 'credit' },
      ]);
    });

    it('posts a balanced entry: postings debit-positive, balances in the same transaction, payment time kept apart from posting time', async () => {
      const h = freshHolder();
      const clearing = await systemAccount(db, 'topup_clearing');
      const before = await rawBalance(db, clearing);
      const { cash } = await db.tx((q) => holderAccounts(q, h));
      const id = await db.tx((q) =>
        post(
          q,
          entry([debit(clearing, fen(1234)), credit(cash, fen(1234))], {
            kind: 'topup',
            postedAtS: T0 + 86_400,
            effectiveAtS: T0,
            memo: 'late',
          }),
        ),
      );
      const e = await getEntry(db, id);
      expect(e).toMatchObject({ kind: 'topup', postedAtS: T0 + 86_400, effectiveAtS: T0, memo: 'late', reverses: null });
      expect(e?.postings).toEqual([
        { account: clearing, amount: 1234 },
        { account: cash, amount: -1234 },
      ]);
      expect(await rawBalance(db, cash)).toBe(-1234);
      expect(await rawBalance(db, clearing)).toBe(before + 1234);
      expect((await purses(db, h)).cash).toBe(1234);
      await expectSound(db);
    });

    it('refuses bad entries with a typed error and writes nothing, even when the caller catches and goes on', async () => {
      const h = freshHolder();
      const { cash, subsidy } = await db.tx((q) => holderAccounts(q, h));
      const pool = await systemAccount(db, 'subsidy_pool');
      await db.tx((q) => post(q, entry([debit(pool, fen(500)), credit(subsidy, fen(500))])));
      const bad: Array<[string, NewEntry, ApiErrorCode]> = [
        ['unbalanced', entry([debit(pool, fen(100)), credit(cash, fen(99))]), 'validation_failed'],
        ['a zero amount', entry([debit(pool, fen(0)), credit(cash, fen(0))]), 'validation_failed'],
        [
          'a fraction of a fen',
          entry([
            { account: pool, amount: 1.5 as Fen },
            { account: cash, amount: -1.5 as Fen },
          ]),
          'validation_failed',
        ],
        [
          'NaN',
          entry([
            { account: pool, amount: Number.NaN as Fen },
            { account: cash, amount: Number.NaN as Fen },
          ]),
          'validation_failed',
        ],
        [
          'beyond FEN_MAX',
          entry([
            { account: pool, amount: (FEN_MAX + 1) as Fen },
            { account: cash, amount: -(FEN_MAX + 1) as Fen },
          ]),
          'validation_failed',
        ],
        ['an unknown account', entry([debit(pool, fen(100)), credit(987_654_321 as AccountId, fen(100))]), 'validation_failed'],
        ['one account twice', entry([debit(pool, fen(100)), credit(pool, fen(100))]), 'validation_failed'],
        ['a single posting', entry([debit(pool, fen(100))]), 'validation_failed'],
        [
          'too many postings',
          entry(
            Array.from({ length: LEDGER_POSTINGS_PER_ENTRY_MAX + 1 }, (_, i) => ({
              account: (i + 1) as AccountId,
              amount: fen(i === 0 ? LEDGER_POSTINGS_PER_ENTRY_MAX : -1),
            })),
          ),
          'validation_failed',
        ],
        ['a kind that is not a tag', entry([debit(pool, fen(100)), credit(cash, fen(100))], { kind: 'Top Up!' }), 'validation_failed'],
        ['no author', entry([debit(pool, fen(100)), credit(cash, fen(100))], { createdBy: '' }), 'validation_failed'],
        ['a time that is not seconds', entry([debit(pool, fen(100)), credit(cash, fen(100))], { effectiveAtS: -1 }), 'validation_failed'],
        ['an overdrawn purse', entry([debit(subsidy, fen(501)), credit(pool, fen(501))]), 'insufficient_funds'],
        ['an overdraft in a later posting of a batch', entry([debit(subsidy, fen(300)), credit(pool, fen(300))]), 'insufficient_funds'],
      ];
      for (const [why, e, code] of bad) {
        const before = await snapshot(db);
        const batch = why.includes('batch') ? [e, e] : [e];
        expect(await apiError(db.tx((q) => postMany(q, batch))), why).toBe(code);
        let caught: unknown;
        await db.tx(async (q) => {
          caught = await postMany(q, batch).catch((x: unknown) => x);
        });
        expect(caught, why).toBeInstanceOf(ApiError);
        expect(await snapshot(db), why).toEqual(before);
      }
      await expectSound(db);
    });

    it('posts an entry for a (kind, reference) once', async () => {
      const h = freshHolder();
      const { cash } = await db.tx((q) => holderAccounts(q, h));
      const clearing = await systemAccount(db, 'topup_clearing');
      const e = entry([debit(clearing, fen(10)), credit(cash, fen(10))], { kind: 'topup', reference: `test:${h}` });
      await db.tx((q) => post(q, e));
      const before = await snapshot(db);
      expect(await apiError(db.tx((q) => post(q, e)))).toBe('conflict');
      expect(
        await apiError(
          db.tx((q) =>
            postMany(q, [
              { ...e, reference: `test:${h}:2` },
              { ...e, reference: `test:${h}:2` },
            ]),
          ),
        ),
      ).toBe('conflict');
      expect(await snapshot(db)).toEqual(before);
    });

    it('corrects by reversal: the mirror entry, once, never of a reversal, never overdrawing a purse', async () => {
      const h = freshHolder();
      const { cash } = await db.tx((q) => holderAccounts(q, h));
      const clearing = await systemAccount(db, 'topup_clearing');
      const first = await db.tx((q) => post(q, entry([debit(clearing, fen(700)), credit(cash, fen(700))], { kind: 'topup' })));
      const second = await db.tx((q) => post(q, entry([debit(clearing, fen(300)), credit(cash, fen(300))], { kind: 'topup' })));
      const undo = await db.tx((q) => reverse(q, second, { reason: 'keyed twice by the cashier', by: 'finance', postedAtS: T0 + 60 }));
      const mirror = await getEntry(db, undo);
      expect(mirror).toMatchObject({
        kind: 'reversal',
        reference: `entry:${second}`,
        reverses: second,
        memo: 'keyed twice by the cashier',
        effectiveAtS: T0 + 60,
      });
      expect(mirror?.postings).toEqual([
        { account: clearing, amount: -300 },
        { account: cash, amount: 300 },
      ]);
      expect((await purses(db, h)).cash).toBe(700);
      expect(await apiError(db.tx((q) => reverse(q, second, { reason: 'again', by: 'finance', postedAtS: T0 })))).toBe('conflict');
      expect(await apiError(db.tx((q) => reverse(q, undo, { reason: 'undo the undo', by: 'finance', postedAtS: T0 })))).toBe('conflict');
      expect(await apiError(db.tx((q) => reverse(q, 987_654_321 as EntryId, { reason: 'x', by: 'finance', postedAtS: T0 })))).toBe(
        'not_found',
      );
      expect(await apiError(db.tx((q) => reverse(q, first, { reason: '', by: 'finance', postedAtS: T0 })))).toBe('validation_failed');
      // Spend part of the first top-up: it can no longer be taken back whole.
      const payable = await db.tx((q) => merchantPayable(q, 77));
      await db.tx((q) => post(q, entry([debit(cash, fen(100)), credit(payable, fen(100))], { kind: 'payment' })));
      expect(await apiError(db.tx((q) => reverse(q, first, { reason: 'refund', by: 'finance', postedAtS: T0 })))).toBe(
        'insufficient_funds',
      );
      await expectSound(db);
    });

    it('refuses any UPDATE, DELETE (and TRUNCATE on PostgreSQL) of entries and postings in the database itself', async () => {
      const h = freshHolder();
      const { cash } = await db.tx((q) => holderAccounts(q, h));
      const clearing = await systemAccount(db, 'topup_clearing');
      const id = await db.tx((q) => post(q, entry([debit(clearing, fen(5)), credit(cash, fen(5))])));
      const statements = [
        ['UPDATE ledger_entries SET memo = ? WHERE id = ?', ['rewritten', id]],
        ['DELETE FROM ledger_entries WHERE id = ?', [id]],
        ['UPDATE ledger_postings SET amount = amount * 2 WHERE entry_id = ?', [id]],
        ['DELETE FROM ledger_postings WHERE entry_id = ?', [id]],
      ] as const;
      for (const [sql, params] of statements) await expect(db.run(sql, params), sql).rejects.toThrow(/append-only/);
      if (d.name === 'postgres') {
        await expect(db.run('TRUNCATE ledger_postings')).rejects.toThrow(/append-only/);
        await expect(db.run('TRUNCATE ledger_entries CASCADE')).rejects.toThrow(/append-only/);
      }
      expect((await getEntry(db, id))?.postings).toHaveLength(2);
      await expectSound(db);
    });

    it('spreads a busy account over balance rows and still reads one balance, equal to its postings', async () => {
      const payable = await db.tx((q) => merchantPayable(q, 5_000 + freshHolder()));
      const pool = await systemAccount(db, 'subsidy_pool');
      await Promise.all(
        Array.from({ length: 40 }, (_, i) => db.tx((q) => post(q, entry([debit(pool, fen(i + 1)), credit(payable, fen(i + 1))])))),
      );
      expect(await rawBalance(db, payable)).toBe(-820);
      const rows = await db.all('SELECT shard FROM ledger_balances WHERE account_id = ?', [payable]);
      expect(rows.length).toBeGreaterThan(1);
      expect(rows.length).toBeLessThanOrEqual(LEDGER_BALANCE_SHARDS);
      await expectSound(db);
    });

    it('keeps every entry balanced, every balance equal to its postings and the purses equal to a model, whatever happens', async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(operation, { minLength: 1, maxLength: 25 }), async (ops) => {
          await runAgainstModel(db, ops);
          await expectSound(db);
        }),
        { numRuns: d.name === 'sqlite' ? 60 : 15 },
      );
    });
  });
}

describe('the platform source', () => {
  it('never updates or deletes ledger entries or postings (corrections are reversals)', () => {
    const src = join(dirname(fileURLToPath(import.meta.url)), '../src');
    const files = readdirSync(src, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts'));
    expect(files).toContain('ledger.ts');
    const offending = /\b(UPDATE|DELETE\s+FROM|TRUNCATE(\s+TABLE)?)\s+(ONLY\s+)?ledger_(entries|postings)\b/i;
    for (const f of files) {
      const text = readFileSync(join(src, f), 'utf8');
      expect(offending.test(text), `${f} changes ledger rows`).toBe(false);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// The model-based property.

type Op =
  | { t: 'topup'; h: number; amount: number }
  | { t: 'grant'; h: number; amount: number }
  | { t: 'credit'; h: number; limit: number }
  | { t: 'pay'; h: number; amount: number }
  | { t: 'reverse'; pick: number }
  | { t: 'bad'; h: number; amount: number };

const holderIndex = fc.integer({ min: 0, max: 1 });
const operation: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ t: fc.constant('topup' as const), h: holderIndex, amount: fc.integer({ min: 1, max: 5_000 }) }),
  fc.record({ t: fc.constant('grant' as const), h: holderIndex, amount: fc.integer({ min: 1, max: 3_000 }) }),
  fc.record({ t: fc.constant('credit' as const), h: holderIndex, limit: fc.integer({ min: 0, max: 4_000 }) }),
  fc.record({ t: fc.constant('pay' as const), h: holderIndex, amount: fc.integer({ min: 1, max: 6_000 }) }),
  fc.record({ t: fc.constant('reverse' as const), pick: fc.nat() }),
  fc.record({ t: fc.constant('bad' as const), h: holderIndex, amount: fc.integer({ min: 1, max: 100 }) }),
);

interface ModelPurse {
  cash: number;
  subsidy: number;
  creditUsed: number;
  limit: number;
}

/** The effect of one posted entry on a holder's purses, so its reversal can be predicted. */
interface Effect {
  readonly entry: EntryId;
  readonly h: number;
  readonly cash: number;
  readonly subsidy: number;
  readonly creditUsed: number;
  reversed: boolean;
}

let nextKey = 0;
let nextCounter = 0;

async function runAgainstModel(db: Db, ops: readonly Op[]): Promise<void> {
  const ids = [freshHolder(), freshHolder()];
  const model = ids.map((): ModelPurse => ({ cash: 0, subsidy: 0, creditUsed: 0, limit: 0 }));
  const effects: Effect[] = [];
  const at = (i: number) => {
    const h = ids[i];
    const m = model[i];
    if (h === undefined || m === undefined) throw new Error('model: no such holder');
    return { h, m };
  };
  const check = async () => {
    for (let i = 0; i < ids.length; i++) {
      const { h, m } = at(i);
      const p = await purses(db, h);
      expect({ cash: p.cash, subsidy: p.subsidy, creditUsed: p.creditUsed, creditLimit: p.creditLimit, arrears: p.arrears }).toEqual({
        cash: m.cash,
        subsidy: m.subsidy,
        creditUsed: m.creditUsed,
        creditLimit: m.limit,
        arrears: 0,
      });
    }
  };
  for (const op of ops) {
    await apply(op);
    await check();
  }
  async function apply(op: Op): Promise<void> {
    if (op.t === 'topup' || op.t === 'grant') {
      const { h, m } = at(op.h);
      const key = `prop-${nextKey++}`;
      const r =
        op.t === 'topup'
          ? await topUp(db, { holderId: h, amount: op.amount, channel: 'cashier', idempotencyKey: key, by: 'prop' }, T0)
          : await grantSubsidy(db, { holderId: h, amount: op.amount, by: 'prop', idempotencyKey: key }, T0);
      if (op.t === 'topup') m.cash += op.amount;
      else m.subsidy += op.amount;
      effects.push({
        entry: r.entryId as EntryId,
        h: op.h,
        cash: op.t === 'topup' ? op.amount : 0,
        subsidy: op.t === 'grant' ? op.amount : 0,
        creditUsed: 0,
        reversed: false,
      });
    } else if (op.t === 'credit') {
      const { h, m } = at(op.h);
      await setCreditLine(db, { holderId: h, limit: op.limit, by: 'prop' }, T0);
      m.limit = op.limit;
    } else if (op.t === 'pay') {
      const { h, m } = at(op.h);
      const counter = nextCounter++;
      const answer = await authorizeOnline(
        db,
        { terminalId: 1, merchantId: 1, holderId: h, serial: 1_000_000 + h, counter, amount: op.amount, time: T0 },
        T0,
        {
          holderCheck: ALL_ACTIVE,
        },
      );
      const headroom = Math.max(0, m.limit - m.creditUsed);
      expect(answer.approved).toBe(m.subsidy + m.cash + headroom >= op.amount);
      if (!answer.approved) return;
      const subsidy = Math.min(m.subsidy, op.amount);
      const cash = Math.min(m.cash, op.amount - subsidy);
      const creditUsed = op.amount - subsidy - cash;
      m.subsidy -= subsidy;
      m.cash -= cash;
      m.creditUsed += creditUsed;
      const row = await db.one('SELECT entry_id FROM online_authorizations WHERE id = ?', [Number(answer.authorization)]);
      effects.push({ entry: Number(row?.entry_id) as EntryId, h: op.h, cash: -cash, subsidy: -subsidy, creditUsed, reversed: false });
    } else if (op.t === 'reverse') {
      const open = effects.filter((x) => !x.reversed);
      const e = open[op.pick % Math.max(1, open.length)];
      if (e === undefined) return;
      const { m } = at(e.h);
      const ok = m.cash - e.cash >= 0 && m.subsidy - e.subsidy >= 0 && m.creditUsed - e.creditUsed >= 0;
      const result = db.tx((q) => reverse(q, e.entry, { reason: 'property', by: 'prop', postedAtS: T0 }));
      if (!ok) {
        expect(await apiError(result)).toBe('insufficient_funds');
        return;
      }
      await result;
      e.reversed = true;
      m.cash -= e.cash;
      m.subsidy -= e.subsidy;
      m.creditUsed -= e.creditUsed;
    } else {
      const { h } = at(op.h);
      const { cash } = await db.tx((q) => holderAccounts(q, h));
      const pool = await systemAccount(db, 'subsidy_pool');
      expect(await apiError(db.tx((q) => post(q, entry([debit(pool, fen(op.amount)), credit(cash, fen(op.amount + 1))]))))).toBe(
        'validation_failed',
      );
    }
  }
}
