/**
 * After a power cut in mid-append (docs/terminal.md, "After a power cut"): the record may have
 * landed although no screen showed the decision. `recoverDecision` rebuilds that decision from the
 * journal after the restart, so the cashier sees that the holder has paid and does not charge twice.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { type AppendEntry, MemoryJournal, Terminal } from '../src/index.js';
import { makeWorld, payer, readyTerminal, TestClock, type World } from './fixture.js';

/** A journal whose next append meets a power cut: it lands whole (`land`) or not at all, and the call fails either way. */
class CutJournal extends MemoryJournal {
  cut: { land: boolean } | undefined;

  override async append(entry: AppendEntry): Promise<void> {
    const cut = this.cut;
    if (cut === undefined) return super.append(entry);
    this.cut = undefined;
    if (cut.land) await super.append(entry);
    throw new Error('power cut during append');
  }
}

let w: World;
beforeAll(async () => {
  w = await makeWorld();
});

async function setup(scene?: 'gate') {
  const clock = new TestClock();
  const journal = new CutJournal();
  const t = await readyTerminal(w, clock, { journal, ...(scene !== undefined ? { scene } : {}) });
  /** The restart: a new core over what the journal kept. */
  const restart = () => Terminal.open({ journal, crypto: w.crypto, clock });
  return { clock, journal, t, restart };
}

describe('recoverDecision: the decision a power cut hid', () => {
  it('rebuilds an accepted payment whose record landed, and the same code is then a replay, never a second charge', async () => {
    const { clock, journal, t, restart } = await setup();
    const p = await payer(w);
    expect((await t.pay(800, await p.text(clock.s))).accepted).toBe(true);
    const headBefore = t.headSequence;
    const text = await p.text(clock.s);
    journal.cut = { land: true };
    const shown = await t.pay(1_250, text);
    expect(shown).toMatchObject({ accepted: false, reason: 'journal_unavailable' });
    const after = await restart();
    expect(after.headSequence).toBe(headBefore + 1);
    const d = await after.recoverDecision(headBefore);
    expect(d).toEqual({
      accepted: true,
      kind: 'payment',
      path: 'offline',
      amount: 1_250,
      sequence: headBefore + 1,
      recovered: true,
      words: { en: 'Paid 12.50', zh: '支付成功 12.50 元' },
    });
    // The cashier who tries again anyway is stopped: the code is marked seen by the record that landed.
    expect(await after.pay(1_250, text)).toMatchObject({ accepted: false, reason: 'replay' });
  });

  it('is undefined when nothing landed, and the holder can simply pay again', async () => {
    const { clock, journal, t, restart } = await setup();
    const p = await payer(w);
    const headBefore = t.headSequence;
    const text = await p.text(clock.s);
    journal.cut = { land: false };
    expect((await t.pay(900, text)).accepted).toBe(false);
    const after = await restart();
    expect(await after.recoverDecision(headBefore)).toBeUndefined();
    expect(await after.pay(900, text)).toMatchObject({ accepted: true, sequence: headBefore + 1 });
  });

  it('names a refused identity check without inventing a reason, and takes only the record right after the head', async () => {
    const { clock, journal, t, restart } = await setup('gate');
    const teacher = await payer(w, { role: 'teacher' });
    const headBefore = t.headSequence;
    journal.cut = { land: true };
    expect((await t.checkIdentity(await teacher.text(clock.s))).accepted).toBe(false);
    const after = await restart();
    expect(await after.recoverDecision(headBefore)).toMatchObject({
      accepted: false,
      kind: 'access',
      reason: 'refused_before_restart',
      sequence: headBefore + 1,
      recovered: true,
      words: { en: 'Refused before the terminal restarted', zh: '终端重启前已拒绝' },
    });
    // A head that is the current one, or not a head at all, recovers nothing.
    for (const bad of [after.headSequence, after.headSequence + 5, -1, 0.5, Number.NaN]) {
      expect(await after.recoverDecision(bad)).toBeUndefined();
    }
  });

  it('is undefined once the record was acknowledged and pruned (the caller that saw the head move still knows it went through)', async () => {
    const { clock, journal, t, restart } = await setup();
    const p = await payer(w);
    const headBefore = t.headSequence;
    journal.cut = { land: true };
    await t.pay(700, await p.text(clock.s));
    const after = await restart();
    clock.advance(30 * 86_400);
    await after.acknowledge(after.headSequence);
    expect(await after.recoverDecision(headBefore)).toBeUndefined();
  });
});
