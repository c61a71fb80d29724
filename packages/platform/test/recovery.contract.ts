/**
 * Advance and recovery (DESIGN §8, docs/recovery.md) over real HTTP against a real database:
 * recovery.test.ts runs it once on SQLite and once on PostgreSQL.
 *
 * Arrears are made the way clearing will make them (an offline_payment entry debiting the payer's
 * holder_arrears, then noteArrears and the deny-list publication in the same transaction), and
 * everything after goes through the API as staff, holders and terminals use it: the deny list a
 * terminal downloads, a credential renewal refused with in_arrears, top-ups that repay, operator
 * blocks that outlive a repaid debt, the graduation-clearance list, and the third-party collection
 * export under an injected clock. A property test walks random sequences of debts, top-ups, blocks
 * and unblocks and checks the one invariant: denied iff owing or blocked by an operator.
 */
import { fen } from '@duet/protocol';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { beijingTime } from '../src/csv.js';
import { ApiError, type ApiErrorCode } from '../src/errors.js';
import { setHolderStatus } from '../src/holders.js';
import { RECOVERY_NOTE_HOLDERS_MAX } from '../src/limits.js';
import {
  type ArrearsCase,
  arrearsOf,
  CLEARANCE_CSV_COLUMNS,
  COLLECTION_CSV_COLUMNS,
  type ClearanceRow,
  clearanceList,
  type CollectionBatch,
  listCases,
  noteArrears,
} from '../src/recovery.js';
import { DEFAULT_SETTINGS, parseSettings } from '../src/settings.js';
import { csvObjects, parseCsv } from './csv-parse.js';
import { DAY_S, expectError, type HolderAccount, type HttpPlatform, idemKey, ok, type Session } from './http-harness.js';
import type { TestDatabase } from './pg-harness.js';
import {
  credit,
  debit,
  denyReason,
  expectCsv,
  fetchCsv,
  owe,
  postEntry,
  staffAccount,
  terminalDenyView,
  withPlatform,
} from './recovery-helpers.js';

interface TopUpAnswer {
  readonly repaidArrears: number;
  readonly cashAfter: number;
}

async function topUp(p: HttpPlatform, holderId: number, amount: number): Promise<TopUpAnswer> {
  return ok<TopUpAnswer>(
    await p.post(`/v1/holders/${holderId}/topups`, { amount, channel: 'cashier', idempotencyKey: idemKey('t') }, await p.admin()),
  );
}

async function cases(p: HttpPlatform, finance: () => Promise<Session>, holderId: number): Promise<ArrearsCase[]> {
  return ok<{ cases: ArrearsCase[] }>(await p.get(`/v1/recovery/cases?holderId=${holderId}`, await finance())).cases;
}

async function apiError(run: () => Promise<unknown>): Promise<ApiErrorCode> {
  const e = await run().then(
    () => undefined,
    (x: unknown) => x,
  );
  if (!(e instanceof ApiError)) throw new Error(`expected an ApiError, got ${String(e)}`);
  return e.code;
}

export function recoveryContract(d: TestDatabase): void {
  describe.skipIf(!d.available)(`recovery over HTTP on ${d.name}`, () => {
    describe('the life of a debt', () => {
      const h = withPlatform(d);

      it('denies a payer in arrears and refuses renewal (in_arrears); a partial top-up keeps the block; a full one lifts it and renewal works', async () => {
        const p = h();
        const finance = await staffAccount(p, 'school_finance', 'finance-life');
        const holder = await p.enrolHolder({ topUpFen: 3_000 });
        await p.issueCredential(holder.session, holder.deviceId);
        const terminal = await p.newTerminal();
        const start = await terminalDenyView(p, terminal, 0);
        expect(start.entries).toEqual([]);

        const change = await owe(p, holder.id, 1_500);
        expect(change).toEqual({ opened: [holder.id], denied: [holder.id], closed: [], lifted: [] });
        expect(await denyReason(p, holder.id)).toBe('arrears');
        const added = await terminalDenyView(p, terminal, start.version);
        expect(added.entries).toEqual([`add holder:${holder.id}`]);
        const refused = expectError(await p.credentialReply(holder.session, holder.deviceId), 403, 'in_arrears');
        expect(refused.detail).toBe('owes 1500 fen');
        // Nothing else was revoked: the credential issued before is still active (terminals deny the holder).
        expect(
          ok<{ credentials: Array<{ status: string }> }>(await p.get(`/v1/holders/${holder.id}`, await finance())).credentials,
        ).toEqual([expect.objectContaining({ status: 'active' })]);
        const [opened] = await cases(p, finance, holder.id);
        expect(opened).toMatchObject({
          holderId: holder.id,
          status: 'open',
          openedAmountFen: 1_500,
          openedAt: p.clock.nowS(),
          closedAt: null,
        });

        p.clock.advance(3_600);
        expect(await topUp(p, holder.id, 1_000)).toMatchObject({ repaidArrears: 1_000, cashAfter: 3_000 });
        expect(await denyReason(p, holder.id)).toBe('arrears');
        expectError(await p.credentialReply(holder.session, holder.deviceId), 403, 'in_arrears');
        expect(await cases(p, finance, holder.id)).toEqual([opened]);
        expect((await terminalDenyView(p, terminal, added.version)).entries).toEqual([]);

        p.clock.advance(3_600);
        expect(await topUp(p, holder.id, 700)).toMatchObject({ repaidArrears: 500, cashAfter: 3_200 });
        expect(await denyReason(p, holder.id)).toBeUndefined();
        expect(await cases(p, finance, holder.id)).toEqual([{ ...opened, status: 'repaid', closedAt: p.clock.nowS() }]);
        // The top-up published the lifted block at once: the terminal's next sync removes the holder.
        expect((await terminalDenyView(p, terminal, added.version)).entries).toEqual([`remove holder:${holder.id}`]);
        await p.issueCredential(holder.session, holder.deviceId);
        expect(await p.purses(holder.session)).toMatchObject({ arrears: 0, cash: 3_200, available: 3_200 });
      });

      it('keeps one case per debt however often arrears grow or noteArrears is repeated, and bounds its input', async () => {
        const p = h();
        const finance = await staffAccount(p, 'school_finance', 'finance-idem');
        const a = await p.createHolder();
        const b = await p.createHolder();
        expect(await owe(p, a.id, 300)).toMatchObject({ opened: [a.id], denied: [a.id] });
        expect(await owe(p, a.id, 200)).toEqual({ opened: [], denied: [], closed: [], lifted: [] });
        const t = p.clock.nowS();
        expect(await p.db.tx((q) => noteArrears(q, [a.id, b.id, a.id], t))).toEqual({ opened: [], denied: [], closed: [], lifted: [] });
        expect(await arrearsOf(p.db, [a.id, b.id])).toEqual(
          new Map([
            [a.id, 500],
            [b.id, 0],
          ]),
        );
        expect((await cases(p, finance, a.id)).map((c) => [c.status, c.openedAmountFen])).toEqual([['open', 300]]);
        expect(await cases(p, finance, b.id)).toEqual([]);
        expect(await denyReason(p, b.id)).toBeUndefined();

        // The database itself refuses a second case still owed for one holder.
        await expect(
          p.db.run("INSERT INTO arrears_cases (holder_id, opened_at, opened_amount, status) VALUES (?, ?, 1, 'open')", [a.id, t]),
        ).rejects.toThrow();
        const many = Array.from({ length: RECOVERY_NOTE_HOLDERS_MAX + 1 }, (_, i) => i + 1);
        expect(await apiError(() => p.db.tx((q) => noteArrears(q, many, t)))).toBe('validation_failed');
        expect(await apiError(() => p.db.tx((q) => noteArrears(q, [0], t)))).toBe('validation_failed');
        expect(await apiError(() => p.db.tx((q) => noteArrears(q, [a.id], -1)))).toBe('validation_failed');
        expect(await apiError(() => listCases(p.db, { offset: 0, limit: 501 }))).toBe('validation_failed');
        expect(await apiError(() => clearanceList(p.db, {}, { offset: -1, limit: 10 }))).toBe('validation_failed');
      });

      it('never lifts a block an operator put there: a blocked payer who repays stays denied until unblocked', async () => {
        const p = h();
        const admin = await p.admin();
        const finance = await staffAccount(p, 'school_finance', 'finance-ops');
        // Blocked while in arrears: the deny entry is kept, repaid or not, until the operator unblocks.
        const x = await p.createHolder();
        await owe(p, x.id, 500);
        ok(await p.post(`/v1/holders/${x.id}/block`, { reason: 'card misuse' }, admin));
        expect(await topUp(p, x.id, 500)).toMatchObject({ repaidArrears: 500 });
        expect((await cases(p, finance, x.id))[0]?.status).toBe('repaid');
        expect(await denyReason(p, x.id)).toBe('arrears');
        ok(await p.post(`/v1/holders/${x.id}/unblock`, { reason: 'resolved' }, admin));
        expect(await denyReason(p, x.id)).toBeUndefined();

        // Blocked first, in arrears after: the operator's reason stays on the entry throughout.
        const y = await p.createHolder();
        ok(await p.post(`/v1/holders/${y.id}/block`, { reason: 'lost phone' }, admin));
        expect(await owe(p, y.id, 400)).toEqual({ opened: [y.id], denied: [], closed: [], lifted: [] });
        await topUp(p, y.id, 400);
        expect(await denyReason(p, y.id)).toBe('lost phone');

        // Denied by hand (no status change), for another reason: repaying does not lift it either.
        const w = await p.createHolder();
        ok(await p.post('/v1/deny-entries', { type: 'holder', id: w.id, denied: true, reason: 'suspected fraud' }, admin));
        await owe(p, w.id, 100);
        await topUp(p, w.id, 100);
        expect(await denyReason(p, w.id)).toBe('suspected fraud');

        // Unblocked while still in arrears: the operator's block goes, the debt's does not.
        const z = await p.createHolder();
        await owe(p, z.id, 300);
        ok(await p.post(`/v1/holders/${z.id}/block`, { reason: 'check' }, admin));
        ok(await p.post(`/v1/holders/${z.id}/unblock`, { reason: 'checked' }, admin));
        expect(await denyReason(p, z.id)).toBe('arrears');
        await topUp(p, z.id, 300);
        expect(await denyReason(p, z.id)).toBeUndefined();
      });
    });

    describe('third-party collection', () => {
      const h = withPlatform(d);

      it('exports open cases once they are collectionAfterDays old, once; the same key returns the same file; repayment after export still lifts the block', async () => {
        const p = h();
        const finance = await staffAccount(p, 'school_finance', 'finance-coll');
        const exportCsv = async (key: string) =>
          fetchCsv(p, '/v1/recovery/collection-exports?format=csv', await finance(), { method: 'POST', json: { idempotencyKey: key } });
        const t0 = p.clock.nowS();
        const a = await p.createHolder();
        await owe(p, a.id, 1_234);
        await topUp(p, a.id, 234);
        p.clock.advance(20 * DAY_S);
        const b = await p.createHolder();
        await owe(p, b.id, 99);
        const c = await p.createHolder();
        await owe(p, c.id, 500);
        await topUp(p, c.id, 500);

        // One second short of 90 days: nothing is due.
        p.clock.advance(70 * DAY_S - 1);
        const early = ok<CollectionBatch>(
          await p.post('/v1/recovery/collection-exports', { idempotencyKey: idemKey('x') }, await finance()),
        );
        expect(early).toMatchObject({ cases: 0, owedTotalFen: 0, rows: [], afterDays: 90, cutoffAt: p.clock.nowS() - 90 * DAY_S });
        p.clock.advance(1);

        const k1 = idemKey('collect');
        const file = expectCsv(await exportCsv(k1), /^attachment; filename="collection-\d+\.csv"$/);
        const { header, rows } = parseCsv(file);
        expect(header).toEqual([...COLLECTION_CSV_COLUMNS]);
        const [caseA] = await cases(p, finance, a.id);
        const batchId = caseA?.exportBatch;
        expect(caseA).toMatchObject({ status: 'exported', exportedAt: p.clock.nowS(), openedAt: t0 });
        expect(csvObjects(file)).toEqual([
          {
            batch_id: String(batchId),
            case_id: String(caseA?.id),
            holder_id: String(a.id),
            name: `Holder ${a.id}`,
            role: 'student',
            campus: '1',
            holder_status: 'active',
            opened_at: beijingTime(t0),
            opened_amount_fen: '1234',
            opened_amount_yuan: '12.34',
            owed_fen: '1000',
            owed_yuan: '10.00',
            days_open: '90',
          },
        ]);
        expect(rows).toHaveLength(1);

        // Again with the same key, later: the same file byte for byte, and nothing more exported.
        p.clock.advance(60);
        expect(expectCsv(await exportCsv(k1), /collection-/)).toBe(file);
        expect(expectCsv(await fetchCsv(p, `/v1/recovery/collection-exports/${batchId}?format=csv`, await finance()), /collection-/)).toBe(
          file,
        );
        const asJson = ok<CollectionBatch>(await p.post('/v1/recovery/collection-exports', { idempotencyKey: k1 }, await finance()));
        expect(asJson).toMatchObject({ id: batchId, cases: 1, owedTotalFen: 1_000, afterDays: 90 });
        expect(asJson.rows.map((r) => r.holderId)).toEqual([a.id]);
        // A new key: A is not exported twice and B is not due yet.
        expect(
          ok<CollectionBatch>(await p.post('/v1/recovery/collection-exports', { idempotencyKey: idemKey('y') }, await finance())).rows,
        ).toEqual([]);

        p.clock.advance(20 * DAY_S);
        const later = ok<CollectionBatch>(
          await p.post('/v1/recovery/collection-exports', { idempotencyKey: idemKey('z') }, await finance()),
        );
        expect(later.rows.map((r) => [r.holderId, r.owedFen, r.daysOpen])).toEqual([[b.id, 99, 90]]);
        // C repaid long ago: never exported.
        expect((await cases(p, finance, c.id)).map((x) => x.status)).toEqual(['repaid']);

        // A repays after the export: the case closes (the agency is told by the case list) and the block lifts.
        expect(await denyReason(p, a.id)).toBe('arrears');
        await topUp(p, a.id, 1_000);
        expect(await cases(p, finance, a.id)).toEqual([
          expect.objectContaining({ status: 'repaid', exportBatch: batchId, exportedAt: caseA?.exportedAt, closedAt: p.clock.nowS() }),
        ]);
        expect(await denyReason(p, a.id)).toBeUndefined();
        const repaid = ok<{ cases: ArrearsCase[] }>(await p.get('/v1/recovery/cases?status=repaid', await finance())).cases;
        expect(repaid.map((x) => x.holderId).sort()).toEqual([a.id, c.id].sort());

        const listed = ok<{ exports: Array<{ id: number; cases: number }> }>(
          await p.get('/v1/recovery/collection-exports', await finance()),
        ).exports;
        expect(listed.map((x) => x.cases)).toEqual([1, 0, 1, 0]);
        expectError(
          await p.post('/v1/recovery/collection-exports', { idempotencyKey: 'short' }, await finance()),
          400,
          'validation_failed',
        );
        expectError(await p.get('/v1/recovery/collection-exports/999999', await finance()), 404, 'not_found');
        expectError(await p.get('/v1/recovery/collection-exports', await p.staff('merchant', 'merchant-coll')), 403, 'forbidden');
      });

      it('takes collectionAfterDays from the settings, bounded, 90 by default and for settings saved before it existed', async () => {
        const p = h();
        const admin = await p.admin();
        const finance = await staffAccount(p, 'school_finance', 'finance-set');
        const { collectionAfterDays: _absent, ...older } = DEFAULT_SETTINGS;
        expect(parseSettings(older).collectionAfterDays).toBe(90);
        for (const bad of [13, 1_096, 30.5, '30']) {
          expectError(
            await p.request('PUT', '/v1/settings', { as: admin, json: { settings: { ...DEFAULT_SETTINGS, collectionAfterDays: bad } } }),
            400,
            'validation_failed',
          );
        }
        ok(await p.request('PUT', '/v1/settings', { as: admin, json: { settings: { ...DEFAULT_SETTINGS, collectionAfterDays: 30 } } }));
        expect(
          ok<{ settings: { collectionAfterDays: number } }>(await p.get('/v1/settings', await finance())).settings.collectionAfterDays,
        ).toBe(30);
        const x = await p.createHolder();
        await owe(p, x.id, 700);
        p.clock.advance(30 * DAY_S);
        const batch = ok<CollectionBatch>(
          await p.post('/v1/recovery/collection-exports', { idempotencyKey: idemKey('s') }, await finance()),
        );
        expect(batch).toMatchObject({ afterDays: 30, cases: 1, owedTotalFen: 700 });
      });
    });

    describe('graduation clearance', () => {
      const h = withPlatform(d);

      it('lists who owes arrears or credit-line use, filtered by campus, role and status, with totals over the filter, as JSON and CSV', async () => {
        const p = h();
        const finance = await staffAccount(p, 'school_finance', 'finance-grad');
        const admin = await p.admin();
        const newHolder = async (campus: number, role = 'student'): Promise<HolderAccount> => {
          const id = 200_000 + campus;
          ok(await p.post('/v1/holders', { id, name: `测试 ${id}`, role, campus, password: 'holder-pass-1' }, admin));
          return { id, password: 'holder-pass-1' };
        };
        const merchant = await p.merchant();
        const useCredit = (holderId: number, amount: number, n: number) =>
          postEntry(p, {
            kind: 'online_payment',
            reference: `code:${holderId}/${n}`,
            postedAtS: p.clock.nowS(),
            postings: async (x) => [
              debit((await x.holder(holderId)).creditUsed, fen(amount)),
              credit(await x.payable(merchant), fen(amount)),
            ],
          });
        const h1 = await newHolder(1);
        await owe(p, h1.id, 500);
        const h2 = await newHolder(2, 'teacher');
        await useCredit(h2.id, 700, 1);
        const h3 = await newHolder(3);
        await owe(p, h3.id, 100);
        await useCredit(h3.id, 200, 1);
        await p.db.tx((q) => setHolderStatus(q, h3.id, 'graduated', 'class of 2026', 'registrar', p.clock.nowS()));
        const h4 = await newHolder(4);
        await p.topUp(h4.id, 1_000);

        type Answer = { rows: ClearanceRow[]; totals: { holders: number; arrearsFen: number; creditUsedFen: number; owedFen: number } };
        const all = ok<Answer>(await p.get('/v1/recovery/clearance', await finance()));
        expect(all.rows.map((r) => [r.holderId, r.arrearsFen, r.creditUsedFen, r.owedFen, r.caseStatus])).toEqual([
          [h1.id, 500, 0, 500, 'open'],
          [h2.id, 0, 700, 700, null],
          [h3.id, 100, 200, 300, 'open'],
        ]);
        expect(all.totals).toEqual({ holders: 3, arrearsFen: 600, creditUsedFen: 900, owedFen: 1_500 });
        const ids = async (query: string) => ok<Answer>(await p.get(`/v1/recovery/clearance?${query}`, await finance()));
        expect((await ids('campus=3')).rows.map((r) => r.holderId)).toEqual([h3.id]);
        expect((await ids('role=teacher')).totals).toEqual({ holders: 1, arrearsFen: 0, creditUsedFen: 700, owedFen: 700 });
        expect((await ids('status=graduated')).rows).toEqual([expect.objectContaining({ holderId: h3.id, status: 'graduated' })]);
        expect((await ids('status=active&campus=1')).rows.map((r) => r.holderId)).toEqual([h1.id]);
        const page = await ids('limit=1&offset=1');
        expect(page.rows.map((r) => r.holderId)).toEqual([h2.id]);
        expect(page.totals).toEqual(all.totals);
        expectError(await p.get('/v1/recovery/clearance?limit=501', await finance()), 400, 'validation_failed');
        expectError(await p.get('/v1/recovery/clearance?campus=x', await finance()), 400, 'validation_failed');
        expectError(await p.get('/v1/recovery/clearance?secret=1', await finance()), 400, 'validation_failed');

        const file = expectCsv(
          await fetchCsv(p, '/v1/recovery/clearance?format=csv', await finance()),
          /^attachment; filename="clearance\.csv"$/,
        );
        expect(parseCsv(file).header).toEqual([...CLEARANCE_CSV_COLUMNS]);
        expect(csvObjects(file)).toEqual(
          all.rows.map((r) => ({
            holder_id: String(r.holderId),
            name: r.name,
            role: r.role,
            campus: String(r.campus),
            status: r.status,
            arrears_fen: String(r.arrearsFen),
            arrears_yuan: (r.arrearsFen / 100).toFixed(2),
            credit_used_fen: String(r.creditUsedFen),
            credit_used_yuan: (r.creditUsedFen / 100).toFixed(2),
            owed_fen: String(r.owedFen),
            owed_yuan: (r.owedFen / 100).toFixed(2),
            case_status: r.caseStatus ?? '',
            case_opened_at: r.caseOpenedAt === null ? '' : beijingTime(r.caseOpenedAt),
          })),
        );
        expect(file).toContain(`测试 ${h1.id}`);
      });
    });

    describe('the block follows the debt (property)', () => {
      const h = withPlatform(d);

      it('for any sequence of debts, top-ups, blocks and unblocks: denied iff owing or operator-blocked; a case is open iff owing', async () => {
        const p = h();
        const admin = await p.admin();
        const finance = await staffAccount(p, 'school_finance', 'finance-prop');
        type Op = { readonly k: 'owe' | 'topup'; readonly fen: number } | { readonly k: 'block' | 'unblock' };
        const op: fc.Arbitrary<Op> = fc.oneof(
          fc.record({ k: fc.constantFrom('owe' as const, 'topup' as const), fen: fc.integer({ min: 1, max: 2_000 }) }),
          fc.record({ k: fc.constantFrom('block' as const, 'unblock' as const) }),
        );
        await fc.assert(
          fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 8 }), async (ops) => {
            const x = await p.createHolder();
            let owed = 0;
            let blocked = false;
            for (const o of ops) {
              p.clock.advance(1);
              if (o.k === 'owe') {
                await owe(p, x.id, o.fen);
                owed += o.fen;
              } else if (o.k === 'topup') {
                expect((await topUp(p, x.id, o.fen)).repaidArrears).toBe(Math.min(owed, o.fen));
                owed = Math.max(0, owed - o.fen);
              } else {
                ok(await p.post(`/v1/holders/${x.id}/${o.k}`, { reason: `property ${o.k}` }, admin));
                blocked = o.k === 'block';
              }
              expect((await arrearsOf(p.db, [x.id])).get(x.id)).toBe(owed);
              expect((await denyReason(p, x.id)) !== undefined, JSON.stringify(ops)).toBe(owed > 0 || blocked);
              const active = (await cases(p, finance, x.id)).filter((c) => c.status === 'open' || c.status === 'exported');
              expect(active.length, JSON.stringify(ops)).toBe(owed > 0 ? 1 : 0);
            }
          }),
          { numRuns: 25 },
        );
      });
    });
  });
}
