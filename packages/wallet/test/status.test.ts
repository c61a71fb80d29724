/** status(): the figures the wallet screen shows, and when it asks to renew (DESIGN §16 "Offline capacity runs out"). */
import { CODE_COUNTER_MAX, fen } from '@duet/protocol';
import { nodeCrypto } from '@duet/protocol/node';
import { describe, expect, it } from 'vitest';
import { MemoryKeyVault, MemoryWalletStore, RENEW_AHEAD_S, STATUS_REASONS, STATUS_WORDS, Wallet } from '../src/index.js';
import { HOUR_S, makePlatform, T0_S, TestClock } from './fixture.js';

const crypto = nodeCrypto();

async function fresh() {
  const platform = await makePlatform();
  const clock = new TestClock();
  const vault = new MemoryKeyVault(crypto);
  const store = new MemoryWalletStore();
  const wallet = await Wallet.open({ crypto, clock, vault, store, trust: platform.trust });
  return { platform, clock, vault, store, wallet };
}

describe('status()', () => {
  it('before enrolment: nothing held, no codes, renew now', async () => {
    const { wallet } = await fresh();
    const s = wallet.status();
    expect(s).toMatchObject({
      nowS: T0_S,
      enrolled: false,
      canMakeCodes: false,
      needsRenewal: true,
      reason: 'no_credential',
      countersLeft: CODE_COUNTER_MAX,
    });
    expect(s.credential).toBeUndefined();
    expect(s.device).toEqual({ suite: 'p256', publicKey: wallet.publicKey });
  });

  it('with a fresh 72 h credential: serial, expiry, seconds left, limits, codes made', async () => {
    const { platform, wallet } = await fresh();
    const c = await platform.issue(wallet, {
      notBefore: T0_S - HOUR_S,
      notAfter: T0_S + 72 * HOUR_S,
      perPayment: 1_500,
      offlineTotal: 9_000,
      offlineCount: 12,
    });
    await wallet.installCredential(c.bytes);
    let s = wallet.status();
    expect(s).toMatchObject({ enrolled: true, canMakeCodes: true, needsRenewal: false, reason: 'ready' });
    expect(s.credential).toEqual({
      serial: c.serial,
      holder: c.holder,
      campus: 1,
      role: 'student',
      scopes: ['canteen', 'bus'],
      notBefore: c.notBefore,
      notAfter: c.notAfter,
      secondsLeft: 72 * HOUR_S,
      limits: { perPayment: fen(1_500), offlineTotal: fen(9_000), offlineCount: 12 },
      codesMade: 0,
    });
    for (let i = 0; i < 3; i++) await wallet.nextCode();
    s = wallet.status();
    expect(s.credential?.codesMade).toBe(3);
    expect(s.countersLeft).toBe(CODE_COUNTER_MAX - 3);
  });

  it('asks to renew when less than 24 h is left, and keeps making codes until expiry', async () => {
    const { platform, clock, wallet } = await fresh();
    const c = await platform.issue(wallet, { notBefore: T0_S, notAfter: T0_S + 72 * HOUR_S });
    await wallet.installCredential(c.bytes);
    clock.ms = (c.notAfter - RENEW_AHEAD_S) * 1000;
    expect(wallet.status()).toMatchObject({ needsRenewal: false, reason: 'ready' });
    clock.advance(1);
    expect(wallet.status()).toMatchObject({ needsRenewal: true, reason: 'renewal_due', canMakeCodes: true });
    expect(wallet.status().credential?.secondsLeft).toBe(RENEW_AHEAD_S - 1);
    clock.ms = c.notAfter * 1000;
    const s = wallet.status();
    expect(s).toMatchObject({ enrolled: true, canMakeCodes: false, needsRenewal: true, reason: 'credential_expired' });
    expect(s.credential?.secondsLeft).toBe(0);
  });

  it('asks to renew when less than 25 % of a long validity is left', async () => {
    const { platform, clock, wallet } = await fresh();
    const c = await platform.issue(wallet, { notBefore: T0_S, notAfter: T0_S + 8 * 24 * HOUR_S }); // 25 % = 48 h
    await wallet.installCredential(c.bytes);
    clock.ms = (c.notAfter - 48 * HOUR_S) * 1000;
    expect(wallet.status().needsRenewal).toBe(false);
    clock.advance(1);
    expect(wallet.status().needsRenewal).toBe(true);
  });

  it('a held next credential ends the renewal request even while the current one runs out', async () => {
    const { platform, clock, wallet } = await fresh();
    const current = await platform.issue(wallet, { notBefore: T0_S - 70 * HOUR_S, notAfter: T0_S + 2 * HOUR_S });
    await wallet.installCredential(current.bytes);
    expect(wallet.status().needsRenewal).toBe(true);
    const next = await platform.issue(wallet, { notBefore: T0_S + HOUR_S, notAfter: T0_S + 73 * HOUR_S });
    await wallet.installCredential(next.bytes);
    const s = wallet.status();
    expect(s).toMatchObject({ needsRenewal: false, reason: 'ready' });
    expect(s.credential?.serial).toBe(current.serial);
    expect(s.pending?.serial).toBe(next.serial);
    clock.advance(HOUR_S);
    expect(wallet.status().credential?.serial).toBe(next.serial);
  });

  it('says not-yet-valid (a phone clock behind the platform) rather than expired', async () => {
    const { platform, wallet } = await fresh();
    await wallet.installCredential((await platform.issue(wallet, { notBefore: T0_S + 300, notAfter: T0_S + 72 * HOUR_S })).bytes);
    expect(wallet.status()).toMatchObject({ canMakeCodes: false, reason: 'credential_not_yet_valid' });
  });

  it('codes made survive a clean restart exactly', async () => {
    const { platform, clock, vault, store, wallet } = await fresh();
    await wallet.installCredential((await platform.issue(wallet)).bytes);
    for (let i = 0; i < 5; i++) await wallet.nextCode();
    await wallet.close();
    const again = await Wallet.open({ crypto, clock, vault, store });
    expect(again.status().credential?.codesMade).toBe(5);
  });

  it('every reason has words in English and Chinese', () => {
    for (const r of STATUS_REASONS) {
      expect(STATUS_WORDS[r].en.length).toBeGreaterThan(5);
      expect(STATUS_WORDS[r].zh).toMatch(/[\u4e00-\u9fff]/);
    }
  });
});
