/**
 * Clearing end to end over real HTTP, run on SQLite and on PostgreSQL (clearing.test.ts): offline
 * payments at terminals → signed upload → clearing → the books, and every fraud and money path of
 * issue 5: a code replayed at a second terminal, a tampered record, a deleted record, a credential
 * used after revocation, an expired credential, an amount over the limit, an online approval and its
 * record, an overdraft carried by the operator's advance and repaid by the next top-up.
 */
import {
  type Credential,
  type Code,
  encodeUploadBatch,
  fen,
  GENESIS_HASH,
  makeCode,
  type Signer,
  signRecord,
  type TerminalRecord,
} from '@duet/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditLedgerFull } from '../src/audit.js';
import { type AccountId, auditLedger, credit, debit, postMany } from '../src/ledger.js';
import { UNCLAIMED_AFTER_OFFLINE_WINDOWS } from '../src/clearing.js';
import { GAP_ALARM_AFTER_S } from '../src/routes-clearing.js';
import { DEFAULT_SETTINGS } from '../src/settings.js';
import { b64, type EnrolledHolder, HttpPlatform, ok, type TestTerminal } from './http-harness.js';
import type { TestDatabase } from './pg-harness.js';

/** A terminal's journal as the test writes it: records chained and signed, appended one by one. */
class Journal {
  readonly records: TerminalRecord[] = [];
  private previousHash: Uint8Array = GENESIS_HASH;

  constructor(
    private readonly p: HttpPlatform,
    readonly t: TestTerminal,
  ) {}

  async pay(
    code: Code,
    amount: number,
    o: { time?: number; path?: 'offline' | 'online'; denyListVersion?: number } = {},
  ): Promise<TerminalRecord> {
    const rec = await signRecord(
      {
        terminalId: this.t.id,
        sequence: this.records.length + 1,
        previousHash: this.previousHash,
        time: o.time ?? this.p.clock.nowS(),
        kind: 'payment',
        path: o.path ?? 'offline',
        medium: 'qr',
        outcome: 'accepted',
        amount: fen(amount),
        merchantId: this.t.merchantId,
        trustListVersion: 1,
        denyListVersion: o.denyListVersion ?? 1,
        policyVersion: 1,
        evidence: code.bytes,
        terminalSuite: 'p256',
      },
      this.t.signer,
    );
    this.records.push(rec);
    this.previousHash = this.p.crypto.sha256(rec.bytes);
    return rec;
  }

  upload(records: readonly TerminalRecord[] = this.records) {
    return this.p.request('POST', '/v1/terminal/upload', { as: this.t, raw: encodeUploadBatch(this.t.id, records) });
  }
}

interface Payer {
  readonly holder: EnrolledHolder;
  readonly credential: Credential;
  counter: number;
  code(time?: number): Promise<Code>;
}

interface Flag {
  id: number;
  terminalId: number;
  sequence: number;
  reason: string;
  paid: boolean;
  bears: string;
  amount: number;
  related: { terminalId: number | null; sequence: number | null; authorizationId: number | null };
}

export function clearingContract(d: TestDatabase): void {
  describe(`clearing (${d.name})`, () => {
    let h: HttpPlatform | undefined;
    beforeAll(async () => {
      h = await HttpPlatform.on(d, { clearing: false });
    });
    afterAll(async () => {
      await h?.close();
    });
    const p = (): HttpPlatform => {
      if (h === undefined) throw new Error('no platform');
      return h;
    };

    async function payer(topUpFen: number): Promise<Payer> {
      const holder = await p().enrolHolder({ topUpFen });
      const { credential } = await p().issueCredential(holder.session, holder.deviceId);
      const me: Payer = {
        holder,
        credential,
        counter: 0,
        code: async (time) => makeCode(credential, holder.device as Signer, time ?? p().clock.nowS(), ++me.counter),
      };
      return me;
    }

    async function run(): Promise<{ records: number; posted: number; linked: number; refused: number; reversedApprovals: number }> {
      return ok(await p().post('/v1/clearing/run', {}, await p().admin()));
    }

    async function flagsOf(t: TestTerminal): Promise<Flag[]> {
      const r = ok<{ flags: Flag[] }>(await p().get(`/v1/clearing/flags?terminal=${t.id}`, await p().admin()));
      return r.flags.sort((a, b) => a.sequence - b.sequence || a.reason.localeCompare(b.reason));
    }

    async function state(t: TestTerminal, sequence: number): Promise<string | undefined> {
      const r = await p().db.one('SELECT cleared FROM records WHERE terminal_id = ? AND sequence = ?', [t.id, sequence]);
      return r === undefined ? undefined : String(r.cleared);
    }

    async function payable(t: TestTerminal): Promise<number> {
      const r = await p().db.one(
        "SELECT COALESCE(SUM(b.balance), 0) AS n FROM ledger_accounts a JOIN ledger_balances b ON b.account_id = a.id WHERE a.kind = 'merchant_payable' AND a.owner = ?",
        [t.merchantId],
      );
      // A payable is credit-normal: its raw balance is negative when the merchant is owed.
      return -Number(r?.n ?? 0);
    }

    async function booksBalance(): Promise<void> {
      const audit = await auditLedger(p().db);
      expect(audit).toMatchObject({ unbalancedEntries: [], balanceMismatches: [], totalBalance: 0 });
      // And the full audit `duet audit` runs: entries sealed into the chain, roots signed and linked.
      await p().platform.sealer?.runOnce();
      const full = await auditLedgerFull(p().db, p().crypto, { nowS: p().clock.nowS() });
      expect(full.break).toBeNull();
      expect(full.ok).toBe(true);
    }

    it('pays the merchant for offline payments at two terminals, charges each payer once, and a second run changes nothing', async () => {
      const a = await payer(5_000);
      const b = await payer(5_000);
      const t1 = new Journal(p(), await p().newTerminal());
      const t2 = new Journal(p(), await p().newTerminal());
      const before = await payable(t1.t);
      await t1.pay(await a.code(), 1_200);
      await t1.pay(await b.code(), 800);
      await t2.pay(await a.code(), 300);
      expect(ok(await t1.upload())).toMatchObject({ ackedThrough: 2, stored: 2, flagged: 0 });
      expect(ok(await t2.upload())).toMatchObject({ ackedThrough: 1, stored: 1, flagged: 0 });
      // Uploaded, not cleared yet: the payer already sees both payments as awaiting clearing.
      type History = { awaitingClearing: { terminalId: number; amountFen: number }[]; items: { kind: string; amountFen: number }[] };
      const waiting = ok<History>(await p().get('/v1/holder/history', a.holder.session));
      expect(waiting.awaitingClearing.map((x) => [x.terminalId, x.amountFen]).sort()).toEqual(
        [
          [t1.t.id, 1_200],
          [t2.t.id, 300],
        ].sort(),
      );
      const gauge = async () => /^duet_clearing_pending_records (\d+)$/m.exec((await p().get('/metrics', await p().admin())).text)?.[1];
      expect(await gauge()).toBe('3');
      type Status = { pending: { count: number; amount: number }; decided: { posted: number; paidFen: number } };
      const status = async () => ok<Status>(await p().get('/v1/clearing/status', await p().admin()));
      const s0 = await status();
      expect(s0.pending).toEqual({ count: 3, amount: 2_300 });
      expect(await run()).toMatchObject({ records: 3, posted: 3, refused: 0 });
      expect(await gauge()).toBe('0');
      const s1 = await status();
      expect(s1.pending).toEqual({ count: 0, amount: 0 });
      expect([s1.decided.posted - s0.decided.posted, s1.decided.paidFen - s0.decided.paidFen]).toEqual([3, 2_300]);
      const after = ok<History>(await p().get('/v1/holder/history', a.holder.session));
      expect(after.awaitingClearing).toEqual([]);
      expect(
        after.items
          .filter((i) => i.kind === 'offline_payment')
          .map((i) => i.amountFen)
          .sort(),
      ).toEqual([-1_200, -300]);
      expect(await payable(t1.t)).toBe(before + 2_300);
      expect((await p().purses(a.holder.session)).cash).toBe(5_000 - 1_500);
      expect((await p().purses(b.holder.session)).cash).toBe(5_000 - 800);
      for (const [j, n] of [
        [t1, 2],
        [t2, 1],
      ] as const)
        for (let s = 1; s <= n; s++) expect(await state(j.t, s)).toBe('posted');
      const entries = await p().db.all("SELECT reference FROM ledger_entries WHERE kind = 'offline_payment' AND reference LIKE ?", [
        `record:${t1.t.id}:%`,
      ]);
      expect(entries.map((e) => e.reference).sort()).toEqual([`record:${t1.t.id}:1`, `record:${t1.t.id}:2`]);
      // Uploading again and clearing again posts nothing more.
      expect(ok(await t1.upload())).toMatchObject({ stored: 0, duplicates: 2 });
      expect((await run()).records).toBe(0);
      expect(await payable(t1.t)).toBe(before + 2_300);
      // The database itself refuses paying a record a second time, under either kind of entry.
      const reserve = await p().db.one("SELECT id FROM ledger_accounts WHERE kind = 'loss_reserve' AND owner = 0");
      const payableId = await p().db.one("SELECT id FROM ledger_accounts WHERE kind = 'merchant_payable' AND owner = ?", [t1.t.merchantId]);
      const again = {
        kind: 'loss_payment',
        reference: `record:${t1.t.id}:1`,
        postedAtS: p().clock.nowS(),
        effectiveAtS: p().clock.nowS(),
        createdBy: 'test',
        postings: [debit(Number(reserve?.id) as AccountId, fen(1_200)), credit(Number(payableId?.id) as AccountId, fen(1_200))],
      };
      await expect(p().db.tx((q) => postMany(q, [again]))).rejects.toThrow();
      await booksBalance();
    });

    it('pays a code replayed at a second terminal from the loss reserve, keeps both records as evidence, and charges the payer once', async () => {
      const a = await payer(5_000);
      const t1 = new Journal(p(), await p().newTerminal());
      const t2 = new Journal(p(), await p().newTerminal());
      const code = await a.code();
      await t1.pay(code, 700);
      await t2.pay(code, 700);
      ok(await t1.upload());
      ok(await t2.upload());
      expect(await run()).toMatchObject({ records: 2, posted: 2 });
      expect((await p().purses(a.holder.session)).cash).toBe(5_000 - 700);
      const [flag] = await flagsOf(t2.t);
      expect(flag).toMatchObject({ sequence: 1, reason: 'replay', paid: true, bears: 'loss_reserve', amount: 700 });
      expect(flag?.related).toMatchObject({ terminalId: t1.t.id, sequence: 1 });
      const evidence = ok<{ record: { bytes: string }; related: { record: { bytes: string } } }>(
        await p().get(`/v1/clearing/flags/${flag?.id}`, await p().admin()),
      );
      expect(evidence.record.bytes).toBe(b64(t2.records[0]?.bytes ?? new Uint8Array()));
      expect(evidence.related.record.bytes).toBe(b64(t1.records[0]?.bytes ?? new Uint8Array()));
      const loss = await p().db.one("SELECT COUNT(*) AS n FROM ledger_entries WHERE kind = 'loss_payment' AND reference = ?", [
        `record:${t2.t.id}:1`,
      ]);
      expect(Number(loss?.n)).toBe(1);
      await booksBalance();
    });

    it('refuses the same code twice at one terminal (its own replay cache should have caught it)', async () => {
      const a = await payer(5_000);
      const t = new Journal(p(), await p().newTerminal());
      const code = await a.code();
      await t.pay(code, 500);
      await t.pay(code, 500);
      ok(await t.upload());
      expect(await run()).toMatchObject({ records: 2, posted: 1, refused: 1 });
      expect(await flagsOf(t.t)).toMatchObject([{ sequence: 2, reason: 'replay_same_terminal', paid: false }]);
      expect((await p().purses(a.holder.session)).cash).toBe(4_500);
    });

    it('names a tampered record exactly, keeps the authentic ones, and clears only the unbroken chain', async () => {
      const a = await payer(5_000);
      const t = new Journal(p(), await p().newTerminal());
      for (const amount of [100, 200, 300]) await t.pay(await a.code(), amount);
      const [r1, r2, r3] = t.records;
      if (r1 === undefined || r2 === undefined || r3 === undefined) throw new Error('records');
      const tampered = { ...r2, bytes: r2.bytes.slice() };
      // The amount is a big-endian u32 at offset 49 (docs/protocol.md §3.5): 200 fen becomes 65,736 fen.
      tampered.bytes[51] = 1;
      expect(ok(await t.upload([r1, tampered, r3]))).toMatchObject({ ackedThrough: 1, stored: 2, flagged: 1 });
      const alarms = ok<{ alarms: { sequence: number; reason: string }[] }>(
        await p().get(`/v1/intake/flags?terminal=${t.t.id}`, await p().admin()),
      );
      expect(alarms.alarms).toMatchObject([{ sequence: 2, reason: 'bad_signature' }]);
      expect(await run()).toMatchObject({ records: 1, posted: 1 });
      expect(await state(t.t, 3)).toBe('pending');
      // The genuine record 2 arrives: the chain is whole, record 3 clears too.
      expect(ok(await t.upload([r2]))).toMatchObject({ ackedThrough: 3 });
      expect(await run()).toMatchObject({ records: 2, posted: 2 });
      expect((await p().purses(a.holder.session)).cash).toBe(5_000 - 600);
    });

    it('reports a deleted record as a lasting gap, and never clears past it', async () => {
      const a = await payer(5_000);
      const t = new Journal(p(), await p().newTerminal());
      for (const amount of [100, 200, 300, 400]) await t.pay(await a.code(), amount);
      // Record 3 is deleted from the journal: the terminal uploads 1-2, then 4.
      expect(ok(await t.upload(t.records.slice(0, 2)))).toMatchObject({ ackedThrough: 2, stored: 2 });
      expect(ok(await t.upload(t.records.slice(3)))).toMatchObject({ ackedThrough: 2, stored: 1 });
      await run();
      expect(await state(t.t, 4)).toBe('pending');
      const gapsNow = ok<{ gaps: { terminalId: number }[] }>(await p().get('/v1/clearing/status', await p().admin())).gaps;
      expect(gapsNow.filter((g) => g.terminalId === t.t.id)).toEqual([]);
      p().clock.advance(GAP_ALARM_AFTER_S);
      const status = ok<{ gaps: { terminalId: number; from: number; to: number }[] }>(
        await p().get('/v1/clearing/status', await p().admin()),
      );
      expect(status.gaps.filter((g) => g.terminalId === t.t.id)).toEqual([
        { terminalId: t.t.id, from: 3, to: 3, since: expect.any(Number) },
      ]);
    });

    it('pays a payment after revocation that the terminal could not know of from the loss reserve, and refuses one its deny list already covered', async () => {
      const a = await payer(5_000);
      const t = new Journal(p(), await p().newTerminal());
      const before = await p().db.one('SELECT MAX(version) AS v FROM deny_lists');
      const code1 = await a.code();
      const code2 = await a.code();
      p().clock.advance(10);
      ok(await p().post(`/v1/holders/${a.holder.id}/block`, { reason: 'reported lost phone' }, await p().admin()));
      const after = await p().db.one('SELECT MAX(version) AS v FROM deny_lists');
      p().clock.advance(10);
      const t0 = p().clock.nowS();
      await t.pay(code1, 400, { time: t0, denyListVersion: Number(before?.v) });
      await t.pay(code2, 400, { time: t0, denyListVersion: Number(after?.v) });
      ok(await t.upload());
      expect(await run()).toMatchObject({ records: 2, posted: 1, refused: 1 });
      expect(await flagsOf(t.t)).toMatchObject([
        { sequence: 1, reason: 'after_revocation', paid: true, bears: 'loss_reserve' },
        { sequence: 2, reason: 'deny_listed', paid: false },
      ]);
      // The holder reported the phone lost: neither payment is theirs.
      const purse = await p().db.one(
        "SELECT b.balance FROM ledger_accounts a JOIN ledger_balances b ON b.account_id = a.id WHERE a.kind = 'holder_cash' AND a.owner = ?",
        [a.holder.id],
      );
      expect(-Number(purse?.balance)).toBe(5_000);
      await booksBalance();
    });

    it('refuses an expired credential, a stale code and an amount over the per-payment limit, and does not pay the merchant', async () => {
      const a = await payer(5_000);
      const t = new Journal(p(), await p().newTerminal());
      const before = await payable(t.t);
      const late = a.credential.notAfter + 3_600;
      await t.pay(await a.code(late), 100, { time: late });
      await t.pay(await a.code(p().clock.nowS() - 3_600), 100);
      await t.pay(await a.code(), a.credential.limits.perPayment + 1);
      ok(await t.upload());
      expect(await run()).toMatchObject({ records: 3, posted: 0, refused: 3 });
      expect((await flagsOf(t.t)).map((f) => [f.sequence, f.reason, f.paid])).toEqual([
        [1, 'credential_expired', false],
        [2, 'stale_code', false],
        [3, 'over_limit', false],
      ]);
      expect(await payable(t.t)).toBe(before);
      expect((await p().purses(a.holder.session)).cash).toBe(5_000);
    });

    it('links an online-authorized payment to its record instead of charging twice, and refuses a claimed online approval that never happened', async () => {
      const a = await payer(5_000);
      const t = new Journal(p(), await p().newTerminal());
      const code = await a.code();
      const answer = ok<{ approved: boolean }>(
        await p().request('POST', '/v1/terminal/authorize', {
          as: t.t,
          json: { code: b64(code.bytes), amount: 650, time: p().clock.nowS() },
        }),
      );
      expect(answer.approved).toBe(true);
      await t.pay(code, 650, { path: 'online' });
      await t.pay(await a.code(), 300, { path: 'online' });
      ok(await t.upload());
      expect(await run()).toMatchObject({ records: 2, linked: 1, refused: 1 });
      expect(await state(t.t, 1)).toBe('linked');
      expect(await flagsOf(t.t)).toMatchObject([{ sequence: 2, reason: 'online_unmatched', paid: false }]);
      expect((await p().purses(a.holder.session)).cash).toBe(5_000 - 650);
      await booksBalance();
    });

    it('gives back an online approval whose record never came, and charges a record that still arrives later once', async () => {
      const a = await payer(5_000);
      const t = new Journal(p(), await p().newTerminal());
      const code = await a.code();
      const t0 = p().clock.nowS();
      const answer = ok<{ approved: boolean }>(
        await p().request('POST', '/v1/terminal/authorize', { as: t.t, json: { code: b64(code.bytes), amount: 650, time: t0 } }),
      );
      expect(answer.approved).toBe(true);
      expect((await p().purses(a.holder.session)).cash).toBe(4_350);
      expect(await run()).toMatchObject({ records: 0, reversedApprovals: 0 });
      p().clock.advance(UNCLAIMED_AFTER_OFFLINE_WINDOWS * DEFAULT_SETTINGS.maxOfflineS + 1);
      expect(await run()).toMatchObject({ reversedApprovals: 1 });
      expect((await p().purses(a.holder.session)).cash).toBe(5_000);
      expect(await run()).toMatchObject({ reversedApprovals: 0 });
      // The terminal comes back after all, with the record of that payment.
      await t.pay(code, 650, { path: 'online', time: t0 });
      await t.pay(code, 650, { path: 'online', time: t0 });
      ok(await t.upload());
      expect(await run()).toMatchObject({ records: 2, posted: 1, refused: 1 });
      expect((await flagsOf(t.t)).map((f) => [f.sequence, f.reason, f.paid])).toEqual([
        [1, 'late_record', true],
        [2, 'replay_same_terminal', false],
      ]);
      expect((await p().purses(a.holder.session)).cash).toBe(4_350);
      await booksBalance();
    });

    it('declines online a credential revoked by a block even after the holder is unblocked', async () => {
      const a = await payer(5_000);
      const t = new Journal(p(), await p().newTerminal());
      ok(await p().post(`/v1/holders/${a.holder.id}/block`, { reason: 'phone reported lost' }, await p().admin()));
      ok(await p().post(`/v1/holders/${a.holder.id}/unblock`, { reason: 'phone found' }, await p().admin()));
      const answer = ok<{ approved: boolean; detail: string }>(
        await p().request('POST', '/v1/terminal/authorize', {
          as: t.t,
          json: { code: b64((await a.code()).bytes), amount: 100, time: p().clock.nowS() },
        }),
      );
      expect(answer).toMatchObject({ approved: false, detail: expect.stringMatching(/^credential_inactive: credential \d+ is revoked/) });
      expect((await p().purses(a.holder.session)).cash).toBe(5_000);
    });

    it('lets a revoked terminal hand in its journal: records from before the revocation are paid, later ones refused', async () => {
      const a = await payer(5_000);
      const t = new Journal(p(), await p().newTerminal());
      await t.pay(await a.code(), 250);
      p().clock.advance(5);
      ok(await p().post(`/v1/terminals/${t.t.id}/revoke`, {}, await p().admin()));
      p().clock.advance(5);
      await t.pay(await a.code(), 350);
      expect(ok(await t.upload())).toMatchObject({ ackedThrough: 2, stored: 2 });
      expect(await run()).toMatchObject({ records: 2, posted: 1, refused: 1 });
      expect(await flagsOf(t.t)).toMatchObject([{ sequence: 2, reason: 'terminal_revoked', paid: false }]);
      expect((await p().purses(a.holder.session)).cash).toBe(5_000 - 250);
      // Revoked, it may no longer ask for anything else.
      const lists = await p().request('POST', '/v1/terminal/authorize', {
        as: t.t,
        json: { code: b64((await a.code()).bytes), amount: 100, time: p().clock.nowS() },
      });
      expect(lists.status).toBe(403);
    });

    it('carries an overdraft with the operator advance, deny-lists the payer in arrears, and top-ups repay it first and lift the block', async () => {
      const a = await payer(1_000);
      const t1 = new Journal(p(), await p().newTerminal());
      const t2 = new Journal(p(), await p().newTerminal());
      const per = a.credential.limits.perPayment;
      await t1.pay(await a.code(), per);
      await t2.pay(await a.code(), per);
      ok(await t1.upload());
      ok(await t2.upload());
      expect(await run()).toMatchObject({ records: 2, posted: 2, refused: 0 });
      const owed = 2 * per - 1_000;
      expect(owed).toBeGreaterThan(0);
      const purses = await p().purses(a.holder.session);
      expect(purses).toMatchObject({ cash: 0, arrears: owed });
      expect((await flagsOf(t2.t)).map((f) => f.reason)).toContain('advance');
      // In arrears: on the deny list at once (a new signed list), an open case, and no renewal.
      const denied = () => p().db.one("SELECT reason FROM deny_entries WHERE type = 'holder' AND id = ?", [a.holder.id]);
      expect(await denied()).toEqual({ reason: 'arrears' });
      const unpublished = await p().db.one('SELECT COUNT(*) AS n FROM deny_changes WHERE published_in IS NULL');
      expect(Number(unpublished?.n)).toBe(0);
      expect((await p().credentialReply(a.holder.session, a.holder.deviceId)).status).toBe(403);
      // A top-up smaller than the debt repays part of it and keeps the block.
      await p().topUp(a.holder.id, owed - 1);
      expect(await p().purses(a.holder.session)).toMatchObject({ cash: 0, arrears: 1 });
      expect(await denied()).toEqual({ reason: 'arrears' });
      // The rest is repaid first from the next top-up, and the block lifts.
      await p().topUp(a.holder.id, 501);
      expect(await p().purses(a.holder.session)).toMatchObject({ cash: 500, arrears: 0 });
      expect(await denied()).toBeUndefined();
      expect((await p().credentialReply(a.holder.session, a.holder.deviceId)).status).toBe(200);
      await booksBalance();
    });
  });
}
