/**
 * Terminal state: everything verified before use, persisted, swapped whole, and never older than
 * what is held, across restarts too.
 */
import { ProtocolError } from '@duet/protocol';
import { describe, expect, it } from 'vitest';
import { MemoryJournal, Terminal } from '../src/index.js';
import { denyList, makeWorld, payer, policy, readyTerminal, rootKeys, TestClock, terminalIdentity } from './fixture.js';

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (e instanceof ProtocolError) return e.code;
    throw e;
  }
  return 'ok';
}

describe('terminal state', () => {
  it('refuses a trust list signed by an unpinned root, and one with a broken signature', async () => {
    const w = await makeWorld();
    const other = await makeWorld();
    const t = await Terminal.open({ journal: new MemoryJournal(), crypto: w.crypto, clock: new TestClock() });
    await t.pinRoots(rootKeys(w));
    expect(await codeOf(t.state.installTrustList(other.trust.bytes, new TestClock().s))).toBe('bad_signature');
    const broken = w.trust.bytes.slice();
    broken[broken.length - 1] = (broken[broken.length - 1] ?? 0) ^ 1;
    expect(await codeOf(t.state.installTrustList(broken, new TestClock().s))).toBe('bad_signature');
    expect(t.state.snapshot.trust).toBeUndefined();
  });

  it('never lets a deny list or policy version go backwards, and keeps the newer one', async () => {
    const w = await makeWorld();
    const clock = new TestClock();
    const t = await readyTerminal(w, clock);
    const older = await denyList(w, []);
    const newer = await denyList(w, [{ type: 'holder', id: 5, op: 'add' }]);
    await t.state.installDenyList(newer, clock.s);
    expect(await codeOf(t.state.installDenyList(older, clock.s))).toBe('version_regressed');
    expect(t.state.snapshot.deny.has('holder', 5)).toBe(true);
    const p1 = await policy(w);
    const p2 = await policy(w, { dayCountMax: 2 });
    await t.state.installPolicy(p2, clock.s);
    expect(await codeOf(t.state.installPolicy(p1, clock.s))).toBe('version_regressed');
    expect(t.state.snapshot.policy?.dayCountMax).toBe(2);
  });

  it('refuses a deny list signed by a key that is not a list-signing key', async () => {
    const w = await makeWorld();
    const clock = new TestClock();
    const t = await readyTerminal(w, clock);
    const impostor = { ...w, lists: w.issuer };
    const bytes = await denyList(impostor, [{ type: 'holder', id: 1, op: 'add' }]);
    expect(await codeOf(t.state.installDenyList(bytes, clock.s))).toBe('bad_signature');
  });

  it('refuses a certificate whose key is not the one offered', async () => {
    const w = await makeWorld();
    const clock = new TestClock();
    const t = await readyTerminal(w, clock);
    const a = await terminalIdentity(w);
    const b = await terminalIdentity(w);
    expect(await codeOf(t.state.installIdentity(a.cert, b.key))).toBe('bad_key');
  });

  it('reloads everything from the journal after a restart and keeps paying, versions intact', async () => {
    const w = await makeWorld();
    const clock = new TestClock();
    const journal = new MemoryJournal();
    const t = await readyTerminal(w, clock, { journal });
    const p = await payer(w);
    const first = await p.text(clock.s);
    expect((await t.pay(500, first)).accepted).toBe(true);
    await journal.close();
    const again = await Terminal.open({ journal, crypto: w.crypto, clock });
    expect(again.headSequence).toBe(1);
    expect(again.state.snapshot.deny.version).toBe(t.state.snapshot.deny.version);
    expect(again.state.snapshot.policy?.policyVersion).toBe(t.state.snapshot.policy?.policyVersion);
    expect((await again.pay(500, first)).reason).toBe('replay');
    expect((await again.pay(500, await p.text(clock.s))).accepted).toBe(true);
  });

  it('a decision in flight sees one whole snapshot while a new deny list is installed', async () => {
    const w = await makeWorld();
    const clock = new TestClock();
    const t = await readyTerminal(w, clock);
    const payers = await Promise.all(Array.from({ length: 20 }, (_, i) => payer(w, { holder: 900 + i })));
    const texts = await Promise.all(payers.map((p) => p.text(clock.s)));
    const swap = await denyList(
      w,
      payers.map((_, i) => ({ type: 'holder' as const, id: 900 + i, op: 'add' as const })),
    );
    // Payments and the swap are queued together: each payment is decided wholly before or after it.
    const results = await Promise.all([
      ...texts.slice(0, 10).map((x) => t.pay(100, x)),
      t.serial(() => t.state.installDenyList(swap, clock.s)),
      ...texts.slice(10).map((x) => t.pay(100, x)),
    ]);
    const decisions = results.filter(
      (r): r is Awaited<ReturnType<Terminal['pay']>> => typeof r === 'object' && r !== null && 'accepted' in r,
    );
    expect(decisions.slice(0, 10).every((d) => d.accepted)).toBe(true);
    expect(decisions.slice(10).every((d) => d.reason === 'holder_denied')).toBe(true);
  });
});
