/**
 * The console and wallet API (console.ts, routes-console.ts) over real HTTP, on SQLite and on
 * PostgreSQL: the dashboard after real signed uploads (numbers, merchant scoping, online/offline by
 * last seen with the test clock, waiting from the reported journal head, alerts after a replay),
 * a lost card, a holder's status and the opt-in holder top-up.
 */
import { type Code, encodeUploadBatch, fen, GENESIS_HASH, makeCode, type Signer, signRecord, type TerminalRecord } from '@duet/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ONLINE_WITHIN_S, TerminalActivity } from '../src/console.js';
import { ALL_MIGRATIONS } from '../src/platform.js';
import { expectError, HttpPlatform, idemKey, ok, type Session, TestTerminal, unb64 } from './http-harness.js';
import { databases, type TestDatabase } from './pg-harness.js';

/** A terminal's journal as the test writes it: records chained and signed, appended one by one. */
class Journal {
  readonly records: TerminalRecord[] = [];
  private previousHash: Uint8Array = GENESIS_HASH;

  constructor(
    private readonly p: HttpPlatform,
    readonly t: TestTerminal,
  ) {}

  async pay(code: Code, amount: number, time = this.p.clock.nowS()): Promise<TerminalRecord> {
    const rec = await signRecord(
      {
        terminalId: this.t.id,
        sequence: this.records.length + 1,
        previousHash: this.previousHash,
        time,
        kind: 'payment',
        path: 'offline',
        medium: 'qr',
        outcome: 'accepted',
        amount: fen(amount),
        merchantId: this.t.merchantId,
        trustListVersion: 1,
        denyListVersion: 1,
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

  /** A lists sync reporting the journal head, as @duet/terminal's syncLists does. */
  sync(head = this.records.length) {
    return this.p.get(`/v1/terminal/lists?deny=0&policy=0&head=${head}`, this.t);
  }
}

interface Dashboard {
  at: string;
  paymentsPerMinute: { minute: string; count: number; amountFen: number }[];
  today: { count: number; amountFen: number };
  terminals: {
    id: number;
    merchantId: number;
    merchant: string;
    location: string;
    scene: string;
    status: string;
    online: boolean;
    lastSeenAt: string | null;
    lastSyncAt: string | null;
    reportedHead: number | null;
    uploadedHead: number | null;
    waiting: number;
  }[];
  terminalsOnline: number;
  terminalsOffline: number;
  recordsWaiting: number;
  clearing: { pending: number; lastRunAt: string | null; openFlags: number; clearedToday: number };
  arrears: { holders: number; amountFen: number };
  alerts: {
    id: string;
    kind: string;
    at: string;
    terminalId: number | null;
    holderId: number | null;
    amountFen: number | null;
    en: string;
    zh: string;
  }[];
}

interface HolderStatus {
  holderId: number;
  name: string;
  blocked: boolean;
  agreement: { accepted: boolean; version: number | null; current: number };
  purses: { kind: string; balanceFen: number }[];
  creditLineFen: number;
  arrearsFen: number;
  devices: { id: number; label: string; status: string; registeredAt: string }[];
  credentials: {
    id: number;
    serial: number;
    deviceId: number;
    status: string;
    notBefore: string;
    notAfter: string;
    offlineLimitFen: number;
  }[];
  topUpAvailable: boolean;
}

const iso = (s: number) => new Date(s * 1000).toISOString();

function consoleSuite(d: TestDatabase): void {
  describe.skipIf(!d.available)(`console API (${d.name})`, () => {
    let h: HttpPlatform | undefined;
    beforeAll(async () => {
      h = await HttpPlatform.on(d, { clearing: false, holderTopUp: true });
    });
    afterAll(async () => {
      await h?.close();
    });
    const p = (): HttpPlatform => {
      if (h === undefined) throw new Error('no platform');
      return h;
    };

    async function payer(topUpFen: number) {
      const holder = await p().enrolHolder({ topUpFen });
      const { credential } = await p().issueCredential(holder.session, holder.deviceId);
      let counter = 0;
      return {
        holder,
        credential,
        code: (time?: number) => makeCode(credential, holder.device as Signer, time ?? p().clock.nowS(), ++counter),
      };
    }

    const dash = async (as?: Session): Promise<Dashboard> => ok<Dashboard>(await p().get('/v1/dashboard', as ?? (await p().admin())));

    /** A second merchant with its own activated terminal. */
    async function otherMerchantTerminal(): Promise<TestTerminal> {
      const admin = await p().admin();
      const m = ok<{ id: number }>(await p().post('/v1/merchants', { name: '二食堂 Canteen 2', category: 'canteen' }, admin)).id;
      const r = ok<{ terminal: { id: number }; activationCode: string }>(
        await p().post('/v1/terminals', { merchantId: m, scene: 'shop', campus: 1, location: 'Till 1' }, admin),
      );
      const signer = await p().crypto.suite('p256').generate();
      const a = ok<{ terminalId: number; certificate: string }>(await p().activation(r.activationCode, signer));
      return new TestTerminal(a.terminalId, m, signer, unb64(a.certificate), p().clock, p().crypto);
    }

    it('dashboard: payments per minute and today from uploaded records, terminals, waiting, merchant scoping, online by last seen', async () => {
      const before = await dash();
      expect(before.paymentsPerMinute).toHaveLength(60);
      const a = await payer(20_000);
      const j1 = new Journal(p(), await p().newTerminal());
      const j2 = new Journal(p(), await otherMerchantTerminal());
      const now = p().clock.nowS();
      const minute = now - (now % 60);
      await j1.pay(await a.code(), 1_200);
      await j1.pay(await a.code(), 300);
      await j1.pay(await a.code(now - 120), 500, now - 120);
      await j2.pay(await a.code(), 700);
      // Made but not uploaded yet: the terminal reports it through its journal head.
      await j1.pay(await a.code(), 900);
      expect(ok(await j1.upload(j1.records.slice(0, 3)))).toMatchObject({ ackedThrough: 3, stored: 3 });
      expect(ok(await j2.upload())).toMatchObject({ ackedThrough: 1, stored: 1 });
      ok(await j1.sync());

      const all = await dash();
      expect(all.at).toBe(new Date(p().clock.nowMs()).toISOString());
      expect(all.paymentsPerMinute).toHaveLength(60);
      // Oldest first, zero-filled, one minute apart, the current minute last.
      expect(all.paymentsPerMinute.at(-1)?.minute).toBe(iso(minute));
      expect(all.paymentsPerMinute[0]?.minute).toBe(iso(minute - 59 * 60));
      for (let i = 1; i < 60; i++)
        expect(Date.parse(all.paymentsPerMinute[i]?.minute ?? '') - Date.parse(all.paymentsPerMinute[i - 1]?.minute ?? '')).toBe(60_000);
      const delta = (x: Dashboard, i: number) => {
        const b = before.paymentsPerMinute.find((m) => m.minute === x.paymentsPerMinute[i]?.minute) ?? { count: 0, amountFen: 0 };
        return [(x.paymentsPerMinute[i]?.count ?? 0) - b.count, (x.paymentsPerMinute[i]?.amountFen ?? 0) - b.amountFen];
      };
      expect(delta(all, 59)).toEqual([3, 2_200]);
      expect(delta(all, 57)).toEqual([1, 500]);
      expect(all.today.count - before.today.count).toBe(4);
      expect(all.today.amountFen - before.today.amountFen).toBe(2_700);
      expect(all.clearing.pending - before.clearing.pending).toBe(4);

      const t1 = all.terminals.find((t) => t.id === j1.t.id);
      expect(t1).toMatchObject({
        merchantId: j1.t.merchantId,
        merchant: 'Canteen 1',
        location: 'Window 3',
        scene: 'canteen',
        status: 'active',
        online: true,
        lastSeenAt: iso(now),
        lastSyncAt: iso(now),
        reportedHead: 4,
        uploadedHead: 3,
        waiting: 1,
      });
      expect(all.terminals.find((t) => t.id === j2.t.id)).toMatchObject({ reportedHead: null, uploadedHead: 1, waiting: 0, scene: 'shop' });
      expect(all.recordsWaiting).toBe(all.terminals.reduce((s, t) => s + t.waiting, 0));
      expect(all.recordsWaiting).toBeGreaterThanOrEqual(1);

      // A merchant sees only its own terminals and payments, and no arrears.
      const m = await p().staff('merchant', `merchant-${d.name}`);
      const mine = await dash(m);
      expect(mine.terminals.every((t) => t.merchantId === j1.t.merchantId)).toBe(true);
      expect(mine.terminals.some((t) => t.id === j2.t.id)).toBe(false);
      expect(mine.today.amountFen).toBe(all.today.amountFen - 700);
      expect(mine.arrears).toEqual({ holders: 0, amountFen: 0 });

      // Online by last seen: past 120 s without a call, offline; an online authorization (no write on that path) brings it back.
      p().clock.advance(ONLINE_WITHIN_S + 1);
      const later = await dash();
      expect(later.terminals.find((t) => t.id === j1.t.id)).toMatchObject({ online: false, lastSeenAt: iso(now) });
      expect(later.terminalsOnline).toBe(later.terminals.filter((t) => t.online).length);
      expect(later.terminalsOffline).toBe(later.terminals.filter((t) => !t.online && t.status === 'active').length);
      const auth = await p().request('POST', '/v1/terminal/authorize', {
        as: j2.t,
        json: { code: 'AAAA', amount: 100, time: p().clock.nowS() },
      });
      expect(auth.status).toBe(200);
      const back = await dash();
      expect(back.terminals.find((t) => t.id === j2.t.id)).toMatchObject({ online: true, lastSeenAt: iso(p().clock.nowS()) });
      expect(back.terminals.find((t) => t.id === j2.t.id)?.lastSyncAt).toBe(iso(now));
      // Written in the background, at most once a second: the stored time catches up after a flush.
      const stored = async () => (await p().db.one('SELECT last_seen_at FROM terminals WHERE id = ?', [j2.t.id]))?.last_seen_at;
      for (let i = 0; i < 50 && (await stored()) !== p().clock.nowS(); i++) await new Promise((r) => setTimeout(r, 100));
      expect(await stored()).toBe(p().clock.nowS());

      // The rest of the journal comes in: nothing waits any more.
      ok(await j1.upload());
      expect((await dash()).terminals.find((t) => t.id === j1.t.id)).toMatchObject({ uploadedHead: 4, waiting: 0 });
    });

    it('dashboard: alerts after a replay, newest first with words in both languages; cleared today; staff only', async () => {
      const a = await payer(10_000);
      const j1 = new Journal(p(), await p().newTerminal());
      const j2 = new Journal(p(), await p().newTerminal());
      const code = await a.code();
      await j1.pay(code, 400);
      await j2.pay(code, 400);
      ok(await j1.upload());
      ok(await j2.upload());
      const before = await dash();
      ok(await p().post('/v1/clearing/run', {}, await p().admin()));
      const after = await dash();
      expect(after.clearing.openFlags).toBe(before.clearing.openFlags + 1);
      expect(after.clearing.lastRunAt).toBe(iso(p().clock.nowS()));
      expect(after.clearing.pending).toBe(0);
      expect(after.clearing.clearedToday).toBeGreaterThan(before.clearing.clearedToday);
      const replay = after.alerts.find((x) => x.kind === 'replay');
      expect(replay).toMatchObject({ terminalId: j2.t.id, holderId: a.holder.id, amountFen: 400 });
      expect(replay?.id).toMatch(/^clearing-\d+$/);
      expect(replay?.en).toMatch(/replay/);
      expect(replay?.zh).toMatch(/重放/);
      expect(after.alerts.length).toBeLessThanOrEqual(20);
      const times = after.alerts.map((x) => Date.parse(x.at));
      expect([...times].sort((x, y) => y - x)).toEqual(times);

      // A tampered record is an intake alarm, listed too.
      const j3 = new Journal(p(), await p().newTerminal());
      const rec = await j3.pay(await a.code(), 250);
      const bytes = new Uint8Array(rec.bytes);
      bytes[bytes.length - 1] = (bytes.at(-1) ?? 0) ^ 1;
      p().clock.advance(5);
      const bad = await p().request('POST', '/v1/terminal/upload', {
        as: j3.t,
        raw: encodeUploadBatch(j3.t.id, [{ ...rec, bytes, signature: bytes.slice(-64) }]),
      });
      expect(bad.status).toBe(200);
      const withAlarm = await dash();
      expect(withAlarm.alerts[0]).toMatchObject({ kind: 'bad_signature', terminalId: j3.t.id, holderId: null });
      expect(withAlarm.alerts[0]?.zh).toMatch(/终端/);

      expectError(await p().get('/v1/dashboard'), 401, 'unauthenticated');
      expectError(await p().get('/v1/dashboard', a.holder.session), 403, 'forbidden');
      ok(await p().get('/v1/dashboard', await p().staff('school_finance', `finance-${d.name}`)));
    });

    it('lost card: credentials revoked and deny-listed, devices lost, sessions ended, new credential refused; idempotent', async () => {
      const a = await payer(5_000);
      const admin = await p().admin();
      const lists0 = ok<{ deny: { version: number } }>(await new Journal(p(), await p().newTerminal()).sync(0)).deny.version;
      const r = ok<{ holderId: number; credentialsRevoked: number; devicesLost: number; denyListVersion: number }>(
        await p().post(`/v1/holders/${a.holder.id}/lost-card`, { reason: 'phone stolen in the library' }, admin),
      );
      expect(r).toEqual({ holderId: a.holder.id, credentialsRevoked: 1, devicesLost: 1, denyListVersion: lists0 + 1 });
      const entries = ok<{ entries: { type: string; id: number; reason: string }[] }>(await p().get('/v1/deny-entries', admin)).entries;
      expect(entries).toContainEqual(expect.objectContaining({ type: 'credential', id: a.credential.serial, reason: 'lost' }));
      expect(await p().sessionValid(a.holder.session)).toBe(false);
      const session = await p().loginHolder(a.holder.id, a.holder.password);
      const status = ok<HolderStatus>(await p().get('/v1/holder/status', session));
      expect(status.devices).toEqual([expect.objectContaining({ id: a.holder.deviceId, status: 'lost' })]);
      expect(status.credentials).toEqual([expect.objectContaining({ serial: a.credential.serial, status: 'revoked' })]);
      // The lost phone's device can no longer get a credential.
      expectError(await p().credentialReply(session, a.holder.deviceId), 404, 'not_found');
      // Again: nothing changes, nothing is published.
      expect(ok(await p().post(`/v1/holders/${a.holder.id}/lost-card`, {}, admin))).toEqual({
        holderId: a.holder.id,
        credentialsRevoked: 0,
        devicesLost: 0,
        denyListVersion: lists0 + 1,
      });
      // A new phone can enrol and get a credential.
      const phone = await p().newDeviceKey();
      const deviceId = await p().registerDevice(session, phone);
      ok(await p().credentialReply(session, deviceId));
      // Bounds and access.
      expectError(await p().post(`/v1/holders/${a.holder.id}/lost-card`, { reason: 'x'.repeat(201) }, admin), 400, 'validation_failed');
      expectError(await p().post(`/v1/holders/${a.holder.id}/lost-card`, { other: 1 }, admin), 400, 'validation_failed');
      expectError(await p().post('/v1/holders/999999999/lost-card', {}, admin), 404, 'not_found');
      expectError(await p().post(`/v1/holders/${a.holder.id}/lost-card`, {}, session), 403, 'forbidden');
    });

    it('holder status and the staff view of a holder', async () => {
      const a = await payer(3_000);
      const s = ok<HolderStatus>(await p().get('/v1/holder/status', a.holder.session));
      expect(s).toMatchObject({
        holderId: a.holder.id,
        name: `Holder ${a.holder.id}`,
        blocked: false,
        agreement: { accepted: true, version: 1, current: 1 },
        purses: [
          { kind: 'subsidy', balanceFen: 0 },
          { kind: 'cash', balanceFen: 3_000 },
        ],
        creditLineFen: 0,
        arrearsFen: 0,
        topUpAvailable: true,
      });
      expect(s.devices).toEqual([{ id: a.holder.deviceId, label: 'test phone', status: 'active', registeredAt: iso(p().clock.nowS()) }]);
      expect(s.credentials).toEqual([
        {
          id: a.credential.serial,
          serial: a.credential.serial,
          deviceId: a.holder.deviceId,
          status: 'active',
          notBefore: iso(a.credential.notBefore),
          notAfter: iso(a.credential.notAfter),
          offlineLimitFen: a.credential.limits.offlineTotal,
        },
      ]);
      const staffView = ok<Record<string, unknown>>(await p().get(`/v1/holders/${a.holder.id}`, await p().admin()));
      expect(staffView).toMatchObject({
        blocked: false,
        agreement: { version: 1 },
        devices: s.devices,
        credentials: s.credentials,
      });
      ok(await p().post(`/v1/holders/${a.holder.id}/block`, { reason: 'test' }, await p().admin()));
      const blocked = ok<HolderStatus>(await p().get('/v1/holder/status', a.holder.session));
      expect(blocked.blocked).toBe(true);
      expect(blocked.credentials[0]?.status).toBe('revoked');
      expectError(await p().get('/v1/holder/status'), 401, 'unauthenticated');
      expectError(await p().get('/v1/holder/status', await p().admin()), 403, 'forbidden');
    });

    it('holder top-up: credits the cash purse, idempotent per key, bounded', async () => {
      const a = await payer(1_000);
      const key = idemKey('wallet');
      const r = ok<{ purse: string; balanceFen: number; topupId: number }>(
        await p().post('/v1/holder/topups', { amountFen: 2_500, idempotencyKey: key }, a.holder.session),
      );
      expect(r).toMatchObject({ purse: 'cash', balanceFen: 3_500 });
      expect(typeof r.topupId).toBe('number');
      expect(ok(await p().post('/v1/holder/topups', { amountFen: 2_500, idempotencyKey: key }, a.holder.session))).toEqual(r);
      expect((await p().purses(a.holder.session)).cash).toBe(3_500);
      expectError(
        await p().post('/v1/holder/topups', { amountFen: 100, idempotencyKey: key }, a.holder.session),
        409,
        'idempotency_mismatch',
      );
      // Another holder's same key is their own.
      const b = await p().enrolHolder();
      expect(ok(await p().post('/v1/holder/topups', { amountFen: 100, idempotencyKey: key }, b.session))).toMatchObject({
        balanceFen: 100,
      });
      for (const bad of [
        { amountFen: 0, idempotencyKey: idemKey() },
        { amountFen: 500_001, idempotencyKey: idemKey() },
        { amountFen: 1.5, idempotencyKey: idemKey() },
        { amountFen: 100, idempotencyKey: 'short' },
        { amountFen: 100, idempotencyKey: 'x'.repeat(65) },
        { amountFen: 100, idempotencyKey: 'bad key with spaces' },
        { amountFen: 100 },
        { amountFen: 100, idempotencyKey: idemKey(), extra: true },
      ])
        expectError(await p().post('/v1/holder/topups', bad, a.holder.session), 400, 'validation_failed');
      expect(ok(await p().post('/v1/holder/topups', { amountFen: 500_000, idempotencyKey: idemKey() }, a.holder.session))).toMatchObject({
        balanceFen: 503_500,
      });
      expectError(await p().post('/v1/holder/topups', { amountFen: 100, idempotencyKey: idemKey() }, await p().admin()), 403, 'forbidden');
    });

    it('lists sync: head is bounded', async () => {
      const j = new Journal(p(), await p().newTerminal());
      for (const head of ['-1', '1.5', 'abc', String(2 ** 53)])
        expectError(await p().get(`/v1/terminal/lists?deny=0&head=${head}`, j.t), 400, 'validation_failed');
      ok(await j.sync(7));
      const t = (await dash()).terminals.find((x) => x.id === j.t.id);
      expect(t).toMatchObject({ reportedHead: 7, uploadedHead: null, waiting: 7 });
    });
  });

  describe.skipIf(!d.available)(`terminal last seen (${d.name})`, () => {
    it('is noted in memory, written only by a flush, never moved back, and written when stopped', async () => {
      const db = await d.open();
      await db.migrate(ALL_MIGRATIONS);
      await db.run("INSERT INTO merchants (name, category, created_at) VALUES ('m', 'canteen', 0)");
      const ids: number[] = [];
      for (let i = 0; i < 2; i++) {
        const r = await db.one(
          "INSERT INTO terminals (merchant_id, scene, campus, location, status, created_at) VALUES (1, 'canteen', 1, 'x', 'active', 0) RETURNING id",
        );
        ids.push(Number(r?.id));
      }
      const [t1 = 0, t2 = 0] = ids;
      const stored = async (id: number) => (await db.one('SELECT last_seen_at FROM terminals WHERE id = ?', [id]))?.last_seen_at;
      const a = new TerminalActivity(db, { flushMs: 60_000 });
      a.start();
      a.seen(t1, 1_000);
      a.seen(t1, 990);
      expect(a.lastSeen(t1)).toBe(1_000);
      expect(await stored(t1)).toBeNull();
      await a.flush();
      expect(await stored(t1)).toBe(1_000);
      // Another process wrote a newer time: an older one noted here does not move it back.
      await db.run('UPDATE terminals SET last_seen_at = ? WHERE id = ?', [2_000, t1]);
      a.seen(t1, 1_500);
      a.seen(t2, 1_600);
      await a.stop();
      expect([await stored(t1), await stored(t2)]).toEqual([2_000, 1_600]);
    });
  });

  describe.skipIf(!d.available)(`holder top-up turned off (${d.name})`, () => {
    let h: HttpPlatform | undefined;
    beforeAll(async () => {
      h = await HttpPlatform.on(d, { clearing: false });
    });
    afterAll(async () => {
      await h?.close();
    });
    it('refuses with topup_unavailable and says so in the status', async () => {
      if (h === undefined) throw new Error('no platform');
      const a = await h.enrolHolder({ topUpFen: 100 });
      const e = expectError(
        await h.post('/v1/holder/topups', { amountFen: 100, idempotencyKey: idemKey() }, a.session),
        403,
        'topup_unavailable',
      );
      expect(e.zh.length).toBeGreaterThan(0);
      expect(ok<HolderStatus>(await h.get('/v1/holder/status', a.session)).topUpAvailable).toBe(false);
      expect((await h.purses(a.session)).cash).toBe(100);
    });
  });
}

for (const d of databases) consoleSuite(d);
