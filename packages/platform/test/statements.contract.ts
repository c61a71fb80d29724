/**
 * Statements over real HTTP against a real database (statements.test.ts runs it on SQLite and
 * PostgreSQL): a merchant's day figures equal sums worked out by hand from entries posted on both
 * sides of a Beijing midnight, the CSV parses back to the same figures, a merchant's staff see only
 * their own merchant; a holder's history pages through every entry on their accounts, with an
 * online payment pending until its terminal's record is uploaded and cleared.
 */
import { encodeUploadBatch, fen, GENESIS_HASH, makeCode, signRecord } from '@duet/protocol';
import { describe, expect, it } from 'vitest';
import { type EntryId, merchantPayable, normalBalance, rawBalance, reverse } from '../src/ledger.js';
import { type HistoryItem, type MerchantStatement, STATEMENT_CSV_COLUMNS, type StatementFigures } from '../src/statements.js';
import { csvObjects, parseCsv } from './csv-parse.js';
import { expectError, idemKey, ok } from './http-harness.js';
import type { TestDatabase } from './pg-harness.js';
import { credit, debit, expectCsv, fetchCsv, otherMerchant, owe, postEntry, staffAccount, withPlatform } from './recovery-helpers.js';

/** Beijing midnight starting 2026-03-01: 2026-02-28T16:00:00Z. */
const MIDNIGHT = Date.UTC(2026, 1, 28, 16) / 1000;
const DAY = 86_400;

const figures = (
  online: [number, number],
  offline: [number, number],
  lossPaid: [number, number],
  reversals: [number, number],
  otherFen: number,
): StatementFigures => {
  const f = ([count, amount]: [number, number]) => ({ count, fen: fen(amount) });
  const net = online[1] + offline[1] + lossPaid[1] - reversals[1] + otherFen;
  return {
    online: f(online),
    offline: f(offline),
    lossPaid: f(lossPaid),
    reversals: f(reversals),
    otherFen: fen(otherFen),
    netFen: fen(net),
  };
};

const yuan = (n: number) => `${n < 0 ? '-' : ''}${(Math.abs(n) / 100).toFixed(2)}`;

type HistoryAnswer = {
  holderId: number;
  owed: { arrearsFen: number; creditUsedFen: number; case: { status: string } | null };
  items: HistoryItem[];
  next: number | null;
};

export function statementsContract(d: TestDatabase): void {
  describe.skipIf(!d.available)(`statements over HTTP on ${d.name}`, () => {
    const h = withPlatform(d);

    it('adds up each Beijing day of a merchant by hand: payments by path, reversals, other movements, net; across midnight; JSON and CSV', async () => {
      const p = h();
      const m1 = await p.merchant();
      const m2 = await otherMerchant(p, 'shop-two');
      const finance = await staffAccount(p, 'school_finance', 'finance-stmt');
      const payer = await p.createHolder();
      await p.topUp(payer.id, 100_000);
      let n = 0;
      const pay = (
        kind: string,
        merchant: number,
        amount: number,
        at: number,
        from: 'cash' | 'arrears' | 'loss' = 'cash',
      ): Promise<EntryId> =>
        postEntry(p, {
          kind,
          reference: `${kind === 'online_payment' ? 'code' : 'record'}:${++n}:${n}`,
          postedAtS: at,
          postings: async (x) => {
            const source = from === 'loss' ? await x.system('loss_reserve') : (await x.holder(payer.id))[from];
            return [debit(source, fen(amount)), credit(await x.payable(merchant), fen(amount))];
          },
        });
      await pay('online_payment', m1, 111, MIDNIGHT - DAY - 1); // 02-27: outside the range asked
      const early = await pay('online_payment', m1, 300, MIDNIGHT - 1); // 02-28 23:59:59
      await pay('offline_payment', m1, 500, MIDNIGHT - 1);
      await pay('online_payment', m1, 200, MIDNIGHT); // 03-01 00:00:00
      await pay('offline_payment', m1, 1_000, MIDNIGHT + 10, 'arrears');
      await pay('loss_payment', m1, 800, MIDNIGHT + 20, 'loss');
      await pay('online_payment', m2.id, 700, MIDNIGHT + 50);
      await p.db.tx((q) => reverse(q, early, { reason: 'answer lost, no record came', by: 'clearing', postedAtS: MIDNIGHT + 100 }));
      await pay('offline_payment', m1, 50, MIDNIGHT + DAY); // 03-02
      await postEntry(p, {
        kind: 'merchant_payout',
        reference: 'payout:1',
        postedAtS: MIDNIGHT + DAY + 5,
        postings: async (x) => [debit(await x.payable(m1), fen(100)), credit(await x.system('topup_clearing'), fen(100))],
      });
      await pay('online_payment', m1, 999, MIDNIGHT + 2 * DAY); // 03-03: outside

      const day0228 = figures([1, 300], [1, 500], [0, 0], [0, 0], 0);
      const day0301 = figures([1, 200], [1, 1_000], [1, 800], [1, 300], 0);
      const day0302 = figures([0, 0], [1, 50], [0, 0], [0, 0], -100);
      const want: MerchantStatement = {
        timeZone: 'Asia/Shanghai (UTC+08:00)',
        dayBasis: 'posted',
        from: '2026-02-28',
        to: '2026-03-02',
        merchantId: m1,
        days: [
          { date: '2026-02-28', merchantId: m1, ...day0228 },
          { date: '2026-03-01', merchantId: m1, ...day0301 },
          { date: '2026-03-02', merchantId: m1, ...day0302 },
        ],
        totals: figures([2, 500], [3, 1_550], [1, 800], [1, 300], -100),
      };
      const path = `/v1/statements/merchants?merchantId=${m1}&from=2026-02-28&to=2026-03-02`;
      expect(ok<MerchantStatement>(await p.get(path, await finance()))).toEqual(want);
      expect(want.totals.netFen).toBe(2_450);

      // Every merchant at once: M2's day appears between M1's, by day then merchant.
      const all = ok<MerchantStatement>(await p.get('/v1/statements/merchants?from=2026-02-28&to=2026-03-02', await finance()));
      expect(all.days.map((x) => [x.date, x.merchantId, x.netFen])).toEqual([
        ['2026-02-28', m1, 800],
        ['2026-03-01', m1, 1_700],
        ['2026-03-01', m2.id, 700],
        ['2026-03-02', m1, -50],
      ]);
      expect(all.totals.netFen).toBe(2_450 + 700);

      // Over every day with movement, the statement's net is the payable's balance.
      const whole = ok<MerchantStatement>(
        await p.get(`/v1/statements/merchants?merchantId=${m1}&from=2026-02-27&to=2026-03-03`, await finance()),
      );
      const payable = await p.db.tx((q) => merchantPayable(q, m1));
      expect(whole.totals.netFen).toBe(normalBalance(await rawBalance(p.db, payable), 'credit'));
      expect(whole.totals.netFen).toBe(2_450 + 111 + 999);

      const file = expectCsv(
        await fetchCsv(p, `${path}&format=csv`, await finance()),
        /^attachment; filename="statement-\d+-2026-02-28-2026-03-02\.csv"$/,
      );
      expect(parseCsv(file).header).toEqual([...STATEMENT_CSV_COLUMNS]);
      const rows = csvObjects(file);
      const asRow = (date: string, merchant: string, name: string, f: StatementFigures) => ({
        date,
        merchant_id: merchant,
        merchant_name: name,
        online_count: String(f.online.count),
        online_fen: String(f.online.fen),
        online_yuan: yuan(f.online.fen),
        offline_count: String(f.offline.count),
        offline_fen: String(f.offline.fen),
        offline_yuan: yuan(f.offline.fen),
        loss_paid_count: String(f.lossPaid.count),
        loss_paid_fen: String(f.lossPaid.fen),
        loss_paid_yuan: yuan(f.lossPaid.fen),
        reversal_count: String(f.reversals.count),
        reversal_fen: String(f.reversals.fen),
        reversal_yuan: yuan(f.reversals.fen),
        other_fen: String(f.otherFen),
        other_yuan: yuan(f.otherFen),
        net_fen: String(f.netFen),
        net_yuan: yuan(f.netFen),
      });
      expect(rows).toEqual([
        asRow('2026-02-28', String(m1), 'Canteen 1', day0228),
        asRow('2026-03-01', String(m1), 'Canteen 1', day0301),
        asRow('2026-03-02', String(m1), 'Canteen 1', day0302),
        asRow('total', String(m1), 'Canteen 1', want.totals),
      ]);
      expect(rows[2]?.net_yuan).toBe('-0.50');

      // A merchant's staff see their own merchant, asked for or not, and never another.
      const m1Staff = await p.staff('merchant', 'canteen-staff');
      const own = ok<MerchantStatement>(await p.get('/v1/statements/merchants?from=2026-02-28&to=2026-03-02', m1Staff));
      expect(own).toEqual(want);
      expect(ok<MerchantStatement>(await p.get(path, m1Staff))).toEqual(want);
      expectError(await p.get(`/v1/statements/merchants?merchantId=${m2.id}&from=2026-02-28&to=2026-03-02`, m1Staff), 403, 'forbidden');
      expectError(await p.get(`${path}&format=csv`, m2.session), 403, 'forbidden');
      const theirs = ok<MerchantStatement>(await p.get('/v1/statements/merchants?from=2026-02-28&to=2026-03-02', m2.session));
      expect(theirs.days.map((x) => [x.date, x.merchantId, x.online])).toEqual([['2026-03-01', m2.id, { count: 1, fen: 700 }]]);

      // Bounds: a real day, from before to, at most 31 days; nothing unknown.
      for (const q of [
        'from=2026-02-30&to=2026-03-01',
        'from=2026-03-02&to=2026-03-01',
        'from=2026-03-01&to=2026-04-01',
        'from=2026-03-01',
        'from=2026-03-01&to=2026-03-01&format=xlsx',
        'from=2026-03-01&to=2026-03-01&merchantId=0',
      ]) {
        expectError(await p.get(`/v1/statements/merchants?${q}`, await finance()), 400, 'validation_failed');
      }
      expect(
        ok<MerchantStatement>(await p.get('/v1/statements/merchants?from=2026-03-01&to=2026-03-31', await finance())).days,
      ).toHaveLength(4);
      expectError(
        await p.get('/v1/statements/merchants?from=2026-03-01&to=2026-03-01&merchantId=999999', await finance()),
        404,
        'not_found',
      );
    });

    it('pages a holder through every entry on their accounts, newest first, with what each did; an online payment is pending until its record is cleared', async () => {
      const p = h();
      const finance = await staffAccount(p, 'school_finance', 'finance-hist');
      const holder = await p.enrolHolder({ topUpFen: 5_000 });
      ok(await p.post(`/v1/holders/${holder.id}/subsidies`, { amount: 1_000, idempotencyKey: idemKey('s') }, await finance()));
      const { credential } = await p.issueCredential(holder.session, holder.deviceId);
      const terminal = await p.newTerminal();
      const paidAt = p.clock.nowS();
      const code = await makeCode(credential, holder.device, paidAt, 1);
      const answer = ok<{ approved: boolean }>(
        await p.post('/v1/terminal/authorize', { code: Buffer.from(code.bytes).toString('base64'), amount: 1_200, time: paidAt }, terminal),
      );
      expect(answer.approved).toBe(true);
      p.clock.advance(60);
      await owe(p, holder.id, 700);
      const whileOwing = ok<HistoryAnswer>(await p.get('/v1/holder/history', holder.session));
      expect(whileOwing.owed).toMatchObject({ arrearsFen: 700, creditUsedFen: 0, case: { status: 'open' } });
      p.clock.advance(60);
      await p.topUp(holder.id, 1_000);

      const full = ok<HistoryAnswer>(await p.get('/v1/holder/history', holder.session));
      expect(full.holderId).toBe(holder.id);
      expect(full.owed).toEqual({ arrearsFen: 0, creditUsedFen: 0, case: null });
      expect(full.next).toBeNull();
      const merchant = await p.merchant();
      const zero = { cash: 0, subsidy: 0, creditUsed: 0, arrears: 0 };
      expect(
        full.items.map((i) => ({ kind: i.kind, amountFen: i.amountFen, legs: i.legs, merchantId: i.merchantId, state: i.state })),
      ).toEqual([
        { kind: 'topup', amountFen: 1_000, legs: { ...zero, cash: 300, arrears: -700 }, merchantId: null, state: 'settled' },
        { kind: 'offline_payment', amountFen: -700, legs: { ...zero, arrears: 700 }, merchantId: merchant, state: 'settled' },
        {
          kind: 'online_payment',
          amountFen: -1_200,
          legs: { ...zero, subsidy: -1_000, cash: -200 },
          merchantId: merchant,
          state: 'pending',
        },
        { kind: 'subsidy_grant', amountFen: 1_000, legs: { ...zero, subsidy: 1_000 }, merchantId: null, state: 'settled' },
        { kind: 'topup', amountFen: 5_000, legs: { ...zero, cash: 5_000 }, merchantId: null, state: 'settled' },
      ]);
      const online = full.items[2];
      expect(online).toMatchObject({ reference: `code:${credential.serial}/1`, effectiveAt: paidAt, postedAt: paidAt });
      // The history adds up to what the holder has.
      const money = await p.purses(holder.session);
      expect(full.items.reduce((s, i) => s + i.amountFen, 0)).toBe(money.cash + money.subsidy - money.arrears);

      // Pages of two walk the same list, and end.
      const walked: HistoryItem[] = [];
      let before: number | null = null;
      for (let guard = 0; guard < 10; guard++) {
        const page: HistoryAnswer = ok<HistoryAnswer>(
          await p.get(`/v1/holder/history?limit=2${before === null ? '' : `&before=${before}`}`, holder.session),
        );
        expect(page.items.length).toBeLessThanOrEqual(2);
        walked.push(...page.items);
        before = page.next;
        if (before === null) break;
      }
      expect(walked).toEqual(full.items);

      // Staff see the same; a merchant and another holder do not; bounds hold.
      expect(ok<HistoryAnswer>(await p.get(`/v1/holders/${holder.id}/history`, await finance())).items).toEqual(full.items);
      expect(ok<HistoryAnswer>(await p.get(`/v1/holders/${holder.id}/history`, holder.session)).items).toEqual(full.items);
      expectError(await p.get(`/v1/holders/${holder.id}/history`, await p.staff('merchant', 'canteen-hist')), 403, 'forbidden');
      const other = await p.createHolder();
      expectError(await p.get(`/v1/holders/${holder.id}/history`, await p.loginHolder(other.id, other.password)), 403, 'forbidden');
      expectError(await p.get('/v1/holders/999999999/history', await finance()), 404, 'not_found');
      expectError(await p.get('/v1/holder/history?limit=101', holder.session), 400, 'validation_failed');
      expectError(await p.get('/v1/holder/history?before=0', holder.session), 400, 'validation_failed');

      // The terminal uploads its record of the online payment: held, not yet cleared, still pending.
      const record = await signRecord(
        {
          terminalId: terminal.id,
          sequence: 1,
          previousHash: GENESIS_HASH,
          time: paidAt,
          kind: 'payment',
          path: 'online',
          medium: 'qr',
          outcome: 'accepted',
          amount: fen(1_200),
          merchantId: terminal.merchantId,
          trustListVersion: 1,
          denyListVersion: 1,
          policyVersion: 1,
          evidence: code.bytes,
          terminalSuite: 'p256',
        },
        terminal.signer,
      );
      ok(await p.request('POST', '/v1/terminal/upload', { as: terminal, raw: encodeUploadBatch(terminal.id, [record]) }));
      const state = async () =>
        ok<HistoryAnswer>(await p.get('/v1/holder/history', holder.session)).items.find((i) => i.kind === 'online_payment')?.state;
      expect(await state()).toBe('pending');
      // Clearing links the record to the authorization: settled.
      await p.platform.clearer.drain();
      expect(await p.db.one('SELECT cleared FROM records WHERE terminal_id = ? AND sequence = 1', [terminal.id])).toEqual({
        cleared: 'linked',
      });
      expect(await state()).toBe('settled');
    });
  });
}
