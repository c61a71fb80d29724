/**
 * One test per decline reason (DESIGN §6): each builds the situation for real (signed lists, real
 * keys, a real journal) and checks the terminal refuses with exactly that reason, says it in both
 * languages, and journals nothing. The last test fails if a reason is added without a test here.
 */
import { codeToText, decodeRecord, fen, makeCode, signCredential } from '@duet/protocol';
import { describe, expect, it } from 'vitest';
import { DECLINE_REASONS, type DeclineReason, MemoryJournal, type OnlineAuthorizer, Terminal } from '../src/index.js';
import { makeWorld, payer, policy, readyTerminal, T0_S, TestClock, type World } from './fixture.js';

const tested = new Set<DeclineReason>();

async function setup(o: Parameters<typeof readyTerminal>[2] = {}) {
  const w = await makeWorld();
  const clock = new TestClock();
  const journal = new MemoryJournal();
  const t = await readyTerminal(w, clock, { journal, ...o });
  return { w, clock, journal, t };
}

async function expectDecline(t: Terminal, journal: MemoryJournal, reason: DeclineReason, amount: number, text: string) {
  const before = (await journal.pending(0, 10_000)).length;
  const d = await t.pay(amount, text);
  expect(d.accepted).toBe(false);
  expect(d.reason).toBe(reason);
  expect(d.words).toEqual(DECLINE_REASONS[reason]);
  expect(d.words.zh).not.toBe(d.words.en);
  expect((await journal.pending(0, 10_000)).length).toBe(before);
  tested.add(reason);
  return d;
}

async function useInstalledPolicy(w: World, t: Terminal, over: Parameters<typeof policy>[1]) {
  await t.state.installPolicy(await policy(w, over), T0_S);
}

describe('the offline decision refuses with one stable reason per cause', () => {
  it('accepts a good payment and journals a signed, chained record that says offline', async () => {
    const { w, clock, journal, t } = await setup();
    const p = await payer(w);
    const d = await t.pay(1250, await p.text(clock.s));
    expect(d).toMatchObject({ accepted: true, kind: 'payment', path: 'offline', amount: 1250, sequence: 1, serial: p.credential.serial });
    expect(d.words.en).toBe('Paid 12.50');
    const [bytes] = await journal.pending(0, 10);
    const rec = decodeRecord(bytes ?? new Uint8Array());
    expect(rec).toMatchObject({ kind: 'payment', path: 'offline', outcome: 'accepted', amount: 1250, sequence: 1, merchantId: 7 });
  });

  it('amount_invalid: zero, negative, fractional, absurd', async () => {
    const { w, clock, journal, t } = await setup();
    const p = await payer(w);
    for (const amount of [0, -100, 12.5, Number.NaN, 10_000_000, Number.MAX_SAFE_INTEGER + 2]) {
      await expectDecline(t, journal, 'amount_invalid', amount, await p.text(clock.s));
    }
  });

  it('not_a_code: some other QR code', async () => {
    const { journal, t } = await setup();
    await expectDecline(t, journal, 'not_a_code', 100, 'https://example.com/menu');
    await expectDecline(t, journal, 'not_a_code', 100, '');
  });

  it('code_malformed: truncated, oversized, bad characters', async () => {
    const { w, clock, journal, t } = await setup();
    const text = await (await payer(w)).text(clock.s);
    await expectDecline(t, journal, 'code_malformed', 100, text.slice(0, 200));
    await expectDecline(t, journal, 'code_malformed', 100, `${text}${'0'.repeat(3000)}`);
    await expectDecline(t, journal, 'code_malformed', 100, `DU1:${'a'.repeat(300)}`);
  });

  it('issuer_unknown: a credential naming a key not in the trust list', async () => {
    const { w, clock, journal, t } = await setup();
    const p = await payer(w, { issuerKeyId: 99 });
    await expectDecline(t, journal, 'issuer_unknown', 100, await p.text(clock.s));
  });

  it('credential_forged: a credential signed by a key that is not the issuer', async () => {
    const { w, clock, journal, t } = await setup();
    const p = await payer(w);
    const forger = await w.crypto.suite(w.suite).generate();
    const { signature: _s, bytes: _b, signed: _x, ...body } = p.credential;
    const forged = await signCredential({ ...body, limits: { ...body.limits } }, forger);
    const code = await makeCode(forged, p.device, clock.s, 1);
    await expectDecline(t, journal, 'credential_forged', 100, codeToText(code));
  });

  it('code_forged: a code signed by some other device key', async () => {
    const { w, clock, journal, t } = await setup();
    const p = await payer(w);
    const thief = await w.crypto.suite('p256').generate();
    const code = await makeCode(p.credential, thief, clock.s, 1);
    await expectDecline(t, journal, 'code_forged', 100, codeToText(code));
  });

  it('credential_expired and credential_not_yet_valid', async () => {
    const { w, clock, journal, t } = await setup();
    const old = await payer(w, { notBefore: T0_S - 80 * 3600, notAfter: T0_S - 3600 });
    await expectDecline(t, journal, 'credential_expired', 100, await old.text(clock.s));
    const early = await payer(w, { notBefore: T0_S + 3600, notAfter: T0_S + 70 * 3600 });
    await expectDecline(t, journal, 'credential_not_yet_valid', 100, await early.text(clock.s));
  });

  it('code_expired and code_from_future, with the policy window and skew', async () => {
    const { w, clock, journal, t } = await setup();
    const p = await payer(w);
    // window 60 s + skew 120 s: 181 s old is too old, 121 s ahead is too far ahead; the edges pass.
    await expectDecline(t, journal, 'code_expired', 100, await p.text(clock.s - 181));
    await expectDecline(t, journal, 'code_from_future', 100, await p.text(clock.s + 121));
    expect((await t.pay(100, await p.text(clock.s - 180))).accepted).toBe(true);
    expect((await t.pay(100, await p.text(clock.s + 120))).accepted).toBe(true);
  });

  it('replay: the same code twice at one terminal', async () => {
    const { w, clock, journal, t } = await setup();
    const text = await (await payer(w)).text(clock.s);
    expect((await t.pay(300, text)).accepted).toBe(true);
    await expectDecline(t, journal, 'replay', 300, text);
  });

  it('credential_denied and holder_denied, from a full list and from a delta swapped in mid-stream', async () => {
    const bad = 424_242;
    const { w, clock, journal, t } = await setup({ deny: [{ type: 'credential', id: bad, op: 'add' }] });
    await expectDecline(t, journal, 'credential_denied', 100, await (await payer(w, { serial: bad })).text(clock.s));
    const p = await payer(w, { holder: 31_337 });
    expect((await t.pay(100, await p.text(clock.s))).accepted).toBe(true);
    const { denyDelta } = await import('./fixture.js');
    await t.state.installDenyList(await denyDelta(w, [{ type: 'holder', id: 31_337, op: 'add' }]), clock.s);
    await expectDecline(t, journal, 'holder_denied', 100, await p.text(clock.s));
  });

  it('scope_not_allowed, role_not_allowed, campus_not_allowed', async () => {
    const canteen = await setup();
    const noCanteen = await payer(canteen.w, { scopes: ['bus', 'gate'] });
    await expectDecline(canteen.t, canteen.journal, 'scope_not_allowed', 100, await noCanteen.text(canteen.clock.s));

    const gate = await setup({ scene: 'gate' });
    const teacher = await payer(gate.w, { role: 'teacher' });
    const d = await gate.t.checkIdentity(await teacher.text(gate.clock.s));
    expect(d).toMatchObject({ accepted: false, reason: 'role_not_allowed', kind: 'access' });
    tested.add('role_not_allowed');

    const bus = await setup({ scene: 'bus', campus: 1 });
    const visitor = await payer(bus.w, { campus: 2 });
    await expectDecline(bus.t, bus.journal, 'campus_not_allowed', 100, await visitor.text(bus.clock.s));
  });

  it('over_payment_limit: the lowest of credential, policy and scene caps', async () => {
    const { w, clock, journal, t } = await setup();
    const p = await payer(w, { perPayment: 4_000 });
    await expectDecline(t, journal, 'over_payment_limit', 4_001, await p.text(clock.s));
    expect((await t.pay(4_000, await p.text(clock.s))).accepted).toBe(true);
    const rich = await payer(w, { perPayment: 20_000, offlineTotal: 40_000 });
    await expectDecline(t, journal, 'over_payment_limit', 5_001, await rich.text(clock.s)); // canteen rule: 50 yuan
  });

  it('over_day_total and over_day_count at this terminal, reset the next campus day', async () => {
    const { w, clock, journal, t } = await setup();
    await useInstalledPolicy(w, t, { perPaymentMax: fen(5_000), dayTotalMax: fen(9_000), dayCountMax: 3 });
    const p = await payer(w, { offlineTotal: 100_000, offlineCount: 100 });
    expect((await t.pay(5_000, await p.text(clock.s))).accepted).toBe(true);
    await expectDecline(t, journal, 'over_day_total', 4_001, await p.text(clock.s));
    expect((await t.pay(2_000, await p.text(clock.s))).accepted).toBe(true);
    expect((await t.pay(100, await p.text(clock.s))).accepted).toBe(true);
    await expectDecline(t, journal, 'over_day_count', 100, await p.text(clock.s));
    clock.advance(86_400);
    await t.state.markSynced(clock.s);
    await t.state.installDenyList(await (await import('./fixture.js')).denyList(w, [], clock.s), clock.s);
    expect((await t.pay(100, await p.text(clock.s))).accepted).toBe(true);
  });

  it('over_offline_total and over_offline_count of the credential', async () => {
    const { w, clock, journal, t } = await setup();
    const p = await payer(w, { perPayment: 5_000, offlineTotal: 6_000, offlineCount: 20 });
    expect((await t.pay(5_000, await p.text(clock.s))).accepted).toBe(true);
    await expectDecline(t, journal, 'over_offline_total', 1_001, await p.text(clock.s));
    const q = await payer(w, { offlineCount: 2 });
    expect((await t.pay(100, await q.text(clock.s))).accepted).toBe(true);
    expect((await t.pay(100, await q.text(clock.s))).accepted).toBe(true);
    await expectDecline(t, journal, 'over_offline_count', 100, await q.text(clock.s));
  });

  it('sync_overdue: offline longer than the policy allows', async () => {
    const { w, clock, journal, t } = await setup();
    clock.advance(24 * 3600 + 1);
    const p = await payer(w, { notAfter: T0_S + 100 * 3600 });
    await expectDecline(t, journal, 'sync_overdue', 100, await p.text(clock.s));
  });

  it('lists_stale: a deny list older than the policy allows (DESIGN §16), even if synced', async () => {
    const { w, clock, journal, t } = await setup();
    clock.advance(36 * 3600 + 61);
    await t.state.markSynced(clock.s);
    const p = await payer(w, { notAfter: T0_S + 100 * 3600 });
    await expectDecline(t, journal, 'lists_stale', 100, await p.text(clock.s));
  });

  it('terminal_not_ready: never enrolled, or no lists yet', async () => {
    const w = await makeWorld();
    const clock = new TestClock();
    const journal = new MemoryJournal();
    const { Terminal } = await import('../src/index.js');
    const t = await Terminal.open({ journal, crypto: w.crypto, clock });
    await expectDecline(t, journal, 'terminal_not_ready', 100, await (await payer(w)).text(clock.s));
  });

  it('terminal_certificate_expired', async () => {
    const { w, clock, journal, t } = await setup({ certNotAfter: T0_S + 10 });
    clock.advance(11);
    await expectDecline(t, journal, 'terminal_certificate_expired', 100, await (await payer(w)).text(clock.s));
  });

  it('clock_regressed: the terminal clock jumps back hours behind its last record', async () => {
    const { w, clock, journal, t } = await setup();
    const p = await payer(w);
    expect((await t.pay(100, await p.text(clock.s))).accepted).toBe(true);
    clock.advance(-2 * 3600);
    await expectDecline(t, journal, 'clock_regressed', 100, await p.text(clock.s));
    clock.advance(2 * 3600);
    expect((await t.pay(100, await p.text(clock.s))).accepted).toBe(true);
  });

  it('a clock that jumps forward by hours refuses codes as stale rather than accepting them', async () => {
    const { w, clock, journal, t } = await setup();
    const p = await payer(w);
    const text = await p.text(clock.s);
    clock.advance(3 * 3600);
    await expectDecline(t, journal, 'code_expired', 100, text);
  });

  it('journal_unavailable: the record cannot be made durable, so the payment is not taken', async () => {
    class FullDisk extends MemoryJournal {
      full = false;
      override async append(e: Parameters<MemoryJournal['append']>[0]): Promise<void> {
        if (this.full) throw new Error('SQLITE_FULL: database or disk is full');
        return super.append(e);
      }
    }
    const journal = new FullDisk();
    const { w, clock, t } = await setup({ journal });
    const p = await payer(w);
    journal.full = true;
    const text = await p.text(clock.s);
    await expectDecline(t, journal, 'journal_unavailable', 100, text);
    journal.full = false;
    // Nothing was marked seen: the same code pays once the disk has room again.
    expect((await t.pay(100, text)).accepted).toBe(true);
  });

  it('insufficient_funds and declined_online come from an online platform that answered in time', async () => {
    for (const reason of ['insufficient_funds', 'declined_online'] as const) {
      const online: OnlineAuthorizer = { authorize: async () => ({ approved: false, reason, detail: 'platform says no' }) };
      const { w, clock, journal, t } = await setup({ online });
      await expectDecline(t, journal, reason, 100, await (await payer(w)).text(clock.s));
    }
  });

  it('identity checks journal access events, granted and refused, without an amount', async () => {
    const { w, clock, journal, t } = await setup({ scene: 'gate' });
    const student = await payer(w);
    const ok = await t.checkIdentity(await student.text(clock.s));
    expect(ok).toMatchObject({ accepted: true, kind: 'access', sequence: 1 });
    const teacher = await payer(w, { role: 'teacher' });
    const no = await t.checkIdentity(await teacher.text(clock.s));
    expect(no).toMatchObject({ accepted: false, reason: 'role_not_allowed' });
    const records = (await journal.pending(0, 10)).map((b) => decodeRecord(b));
    expect(records.map((r) => [r.kind, r.outcome, r.amount])).toEqual([
      ['access', 'accepted', 0],
      ['access', 'denied', 0],
    ]);
    // Garbage at the gate is refused without a record.
    expect((await t.checkIdentity('hello')).reason).toBe('not_a_code');
    expect((await journal.pending(0, 10)).length).toBe(2);
  });

  it('a refusal journaled before a restart is shown again as refused_before_restart (its first reason is not in the record)', async () => {
    const { w, clock, journal, t } = await setup({ scene: 'gate' });
    const teacher = await payer(w, { role: 'teacher' });
    expect((await t.checkIdentity(await teacher.text(clock.s))).reason).toBe('role_not_allowed');
    const restarted = await Terminal.open({ journal, crypto: w.crypto, clock });
    const d = await restarted.recoverDecision(0);
    expect(d).toMatchObject({ accepted: false, kind: 'access', reason: 'refused_before_restart', recovered: true });
    tested.add('refused_before_restart');
  });

  it('every decline reason has a test above', () => {
    expect([...tested].sort()).toEqual(Object.keys(DECLINE_REASONS).sort());
  });
});
