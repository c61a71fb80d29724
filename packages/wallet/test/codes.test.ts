/**
 * Codes: they verify as a terminal verifies them, their counter never repeats (across reopen,
 * crashes, concurrency and renewal), and no code is made without a usable credential.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CODE_COUNTER_MAX, type SuiteName, textToCode, verifyCode } from '@duet/protocol';
import { nodeCrypto } from '@duet/protocol/node';
import { afterAll, describe, expect, it } from 'vitest';
import {
  COUNTER_BLOCK,
  type KeyVault,
  MemoryKeyVault,
  MemoryWalletStore,
  openFileWallet,
  Wallet,
  type WalletOptions,
  type WalletStore,
  walletFiles,
} from '../src/node.js';
import { FlakyStore, HOUR_S, makePlatform, type Platform, ProcessStore, SlowStore, T0_S, TestClock, walletErrorCode } from './fixture.js';

const crypto = nodeCrypto();
const dirs: string[] = [];
async function freshDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'duet-wallet-codes-'));
  dirs.push(d);
  return d;
}
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

interface Setup {
  readonly platform: Platform;
  readonly clock: TestClock;
  readonly vault: KeyVault;
  readonly store: WalletStore;
  readonly wallet: Wallet;
  open(over?: Partial<WalletOptions>): Promise<Wallet>;
}

async function setup(o: { suite?: SuiteName; store?: WalletStore; counterBlock?: number; install?: boolean } = {}): Promise<Setup> {
  const platform = await makePlatform();
  const clock = new TestClock();
  const vault = new MemoryKeyVault(crypto);
  const store = o.store ?? new MemoryWalletStore();
  const open = (over: Partial<WalletOptions> = {}) =>
    Wallet.open({
      crypto,
      clock,
      vault,
      store,
      trust: platform.trust,
      ...(o.suite !== undefined ? { suite: o.suite } : {}),
      ...(o.counterBlock !== undefined ? { counterBlock: o.counterBlock } : {}),
      ...over,
    });
  const wallet = await open();
  if (o.install !== false) await wallet.installCredential((await platform.issue(wallet)).bytes);
  return { platform, clock, vault, store, wallet, open };
}

function expectStrictlyIncreasing(counters: readonly number[]): void {
  for (let i = 1; i < counters.length; i++) expect(counters[i]).toBeGreaterThan(counters[i - 1] as number);
}

describe('codes verify as a terminal verifies them', () => {
  it.each(['p256', 'ed25519', 'sm2'] as const)(
    'a %s device code passes verifyCode and its QR text decodes to the same bytes',
    async (suite) => {
      const { platform, clock, wallet } = await setup({ suite });
      const { code, text } = await wallet.nextCode();
      expect(code.credential.deviceSuite).toBe(suite);
      expect(code.time).toBe(clock.s);
      await verifyCode(code, { trust: platform.trust, crypto, nowS: clock.s, windowS: 60, skewS: 120 });
      expect(text.startsWith('DU1:')).toBe(true);
      const scanned = textToCode(text);
      expect(scanned.bytes).toEqual(code.bytes);
      await verifyCode(scanned, { trust: platform.trust, crypto, nowS: clock.s + 30, windowS: 60, skewS: 120 });
    },
  );

  it('a code is signed at the clock time: a terminal 10 minutes later finds it stale', async () => {
    const { platform, clock, wallet } = await setup();
    const { code } = await wallet.nextCode();
    await expect(verifyCode(code, { trust: platform.trust, crypto, nowS: clock.s + 600, windowS: 60, skewS: 120 })).rejects.toThrow(
      /expired/,
    );
  });
});

describe('the counter never repeats', () => {
  it('strictly increases over many codes and across clean reopens (memory store)', async () => {
    const s = await setup();
    const counters: number[] = [];
    let wallet = s.wallet;
    for (let round = 0; round < 4; round++) {
      for (let i = 0; i < 150; i++) counters.push((await wallet.nextCode()).code.counter);
      await wallet.close();
      wallet = await s.open();
    }
    expectStrictlyIncreasing(counters);
    expect(counters[0]).toBe(1);
  });

  it('strictly increases across reopen with the file store; a clean close gives back the unused block', async () => {
    const dir = await freshDir();
    const platform = await makePlatform();
    const clock = new TestClock();
    let w = await openFileWallet({ crypto, clock, dir, trust: platform.trust });
    await w.installCredential((await platform.issue(w)).bytes);
    const counters: number[] = [];
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 100; i++) counters.push((await w.nextCode()).code.counter);
      await w.close();
      expect((await walletFiles(dir, crypto).store.load())?.reservedThrough).toBe(counters.at(-1));
      w = await openFileWallet({ crypto, clock, dir, trust: platform.trust });
      const next = (await w.nextCode()).code.counter;
      expect(next).toBe((counters.at(-1) as number) + 1);
      counters.push(next);
    }
    expectStrictlyIncreasing(counters);
  });

  it('without a clean close, a reopen skips the rest of the reserved block and reuses nothing', async () => {
    const store = new MemoryWalletStore();
    const s = await setup({ store });
    const last = (await s.wallet.nextCode()).code.counter;
    const reserved = (await store.load())?.reservedThrough ?? 0;
    expect(reserved).toBeGreaterThan(last);
    const reopened = await s.open(); // the first object is abandoned, as a killed app would be
    expect((await reopened.nextCode()).code.counter).toBe(reserved + 1);
  });

  it('after a crash (no close, background writes lost) nothing handed out is reused', async () => {
    const durable = new MemoryWalletStore();
    let handle = new ProcessStore(durable);
    const s = await setup({ store: handle, counterBlock: 8 });
    const counters: number[] = [];
    let wallet = s.wallet;
    for (let crash = 0; crash < 20; crash++) {
      for (let i = 0; i < 1 + (crash % 11); i++) counters.push((await wallet.nextCode()).code.counter);
      handle.crash();
      handle = new ProcessStore(durable);
      wallet = await Wallet.open({ crypto, clock: s.clock, vault: s.vault, store: handle, counterBlock: 8 });
    }
    expectStrictlyIncreasing(counters);
  });

  it('reserves durably before use: every counter handed out is at or below the stored reservation', async () => {
    const store = new MemoryWalletStore();
    const { wallet } = await setup({ store: new SlowStore(store), counterBlock: 5 });
    for (let i = 0; i < 60; i++) {
      const { code } = await wallet.nextCode();
      expect((await store.load())?.reservedThrough).toBeGreaterThanOrEqual(code.counter);
    }
  });

  it('concurrent nextCode calls all get different counters', async () => {
    const { wallet } = await setup({ counterBlock: 3 });
    const codes = await Promise.all(Array.from({ length: 300 }, () => wallet.nextCode()));
    const counters = codes.map((c) => c.code.counter);
    expect(new Set(counters).size).toBe(300);
    expectStrictlyIncreasing(counters); // served in call order
  });

  it(`writes the store about once per ${COUNTER_BLOCK} codes, not once per code`, async () => {
    const store = new MemoryWalletStore();
    const { wallet } = await setup({ store });
    const before = store.saves;
    for (let i = 0; i < 2000; i++) await wallet.nextCode();
    await wallet.close();
    const writes = store.saves - before;
    expect(writes).toBeGreaterThanOrEqual(Math.floor(2000 / COUNTER_BLOCK));
    expect(writes).toBeLessThanOrEqual(Math.ceil(2000 / COUNTER_BLOCK) + 3);
  });

  it('is one counter for the wallet: a renewed credential continues it, never restarts it', async () => {
    const { platform, clock, wallet } = await setup();
    const first = (await wallet.nextCode()).code;
    const renewed = await platform.issue(wallet, { notBefore: clock.s + 10, notAfter: clock.s + 100 * HOUR_S });
    await wallet.installCredential(renewed.bytes);
    clock.advance(20);
    const second = (await wallet.nextCode()).code;
    expect(second.credential.serial).toBe(renewed.serial);
    expect(second.counter).toBe(first.counter + 1);
  });

  it('a refused code uses no counter', async () => {
    const { platform, clock, wallet } = await setup();
    const a = (await wallet.nextCode()).code.counter;
    clock.advance(100 * HOUR_S);
    expect(await walletErrorCode(wallet.nextCode())).toBe('credential_expired');
    await wallet.installCredential((await platform.issue(wallet, { notBefore: clock.s - 60, notAfter: clock.s + HOUR_S })).bytes);
    expect((await wallet.nextCode()).code.counter).toBe(a + 1);
  });

  it('stops with counter_exhausted at CODE_COUNTER_MAX, and a reopen does not wrap', async () => {
    const platform = await makePlatform();
    const clock = new TestClock();
    const vault = new MemoryKeyVault(crypto);
    const key = await vault.create('p256');
    const store = new MemoryWalletStore({
      version: 1,
      device: { suite: 'p256', publicKey: key.publicKey },
      reservedThrough: CODE_COUNTER_MAX - 2,
      credentials: [{ bytes: (await platform.issue(key)).bytes }],
    });
    const w = await Wallet.open({ crypto, clock, vault, store });
    expect(w.status().countersLeft).toBe(2);
    expect((await w.nextCode()).code.counter).toBe(CODE_COUNTER_MAX - 1);
    expect((await w.nextCode()).code.counter).toBe(CODE_COUNTER_MAX);
    expect(await walletErrorCode(w.nextCode())).toBe('counter_exhausted');
    expect(w.status()).toMatchObject({ countersLeft: 0, canMakeCodes: false, reason: 'counter_exhausted' });
    const again = await Wallet.open({ crypto, clock, vault, store });
    expect(await walletErrorCode(again.nextCode())).toBe('counter_exhausted');
  });

  it('a failed reservation write refuses the code (store_failed) and reuses nothing once the store recovers', async () => {
    const flaky = new FlakyStore(new MemoryWalletStore());
    const { wallet } = await setup({ store: flaky, counterBlock: 4 });
    const counters: number[] = [];
    for (let i = 0; i < 3; i++) counters.push((await wallet.nextCode()).code.counter);
    flaky.failSaves = true;
    let refused = 0;
    for (let i = 0; i < 10; i++) {
      try {
        counters.push((await wallet.nextCode()).code.counter);
      } catch (e) {
        expect(await walletErrorCode(Promise.reject(e))).toBe('store_failed');
        refused++;
      }
    }
    expect(refused).toBeGreaterThan(0);
    flaky.failSaves = false;
    for (let i = 0; i < 10; i++) counters.push((await wallet.nextCode()).code.counter);
    expectStrictlyIncreasing(counters);
  });
});

describe('no usable credential, no code', () => {
  it('no_credential before any credential is installed', async () => {
    const { wallet } = await setup({ install: false });
    expect(await walletErrorCode(wallet.nextCode())).toBe('no_credential');
  });

  it('credential_expired from notAfter on (the last second before still works)', async () => {
    const { platform, clock, wallet } = await setup({ install: false });
    const c = await platform.issue(wallet, { notBefore: T0_S - 60, notAfter: T0_S + 60 });
    await wallet.installCredential(c.bytes);
    clock.ms = (c.notAfter - 1) * 1000 + 999;
    expect((await wallet.nextCode()).code.time).toBe(c.notAfter - 1);
    clock.ms = c.notAfter * 1000;
    expect(await walletErrorCode(wallet.nextCode())).toBe('credential_expired');
  });

  it('credential_not_yet_valid before notBefore', async () => {
    const { platform, clock, wallet } = await setup({ install: false });
    await wallet.installCredential((await platform.issue(wallet, { notBefore: T0_S + 600, notAfter: T0_S + 7200 })).bytes);
    expect(await walletErrorCode(wallet.nextCode())).toBe('credential_not_yet_valid');
    clock.advance(600);
    expect((await wallet.nextCode()).code.time).toBe(T0_S + 600);
  });
});

describe('installing credentials', () => {
  it('refuses a credential for another device key (wrong_device)', async () => {
    const { platform, wallet } = await setup({ install: false });
    const other = await crypto.suite('p256').generate();
    expect(await walletErrorCode(wallet.installCredential((await platform.issue(other)).bytes))).toBe('wrong_device');
  });

  it('refuses a credential naming the same key bytes under another suite (wrong_device)', async () => {
    const { platform, wallet } = await setup({ install: false });
    const sm2Lookalike = { suite: 'sm2' as const, publicKey: (await crypto.suite('sm2').generate()).publicKey };
    expect(await walletErrorCode(wallet.installCredential((await platform.issue(sm2Lookalike)).bytes))).toBe('wrong_device');
  });

  it('refuses bytes that are not a credential, and a forged issuer signature when it has a trust list', async () => {
    const { platform, wallet } = await setup({ install: false });
    expect(await walletErrorCode(wallet.installCredential(new Uint8Array([0x21, 1, 2, 3])))).toBe('credential_invalid');
    const forger = await crypto.suite('p256').generate();
    const forged = await platform.issue(wallet, { signer: forger });
    expect(await walletErrorCode(wallet.installCredential(forged.bytes))).toBe('credential_invalid');
    const unknownKey = await platform.issue(wallet, { issuerKeyId: 99 });
    expect(await walletErrorCode(wallet.installCredential(unknownKey.bytes))).toBe('credential_invalid');
    expect(wallet.status().enrolled).toBe(false);
  });

  it('refuses a credential that has already expired', async () => {
    const { platform, wallet } = await setup({ install: false });
    const old = await platform.issue(wallet, { notBefore: T0_S - 10 * HOUR_S, notAfter: T0_S - HOUR_S });
    expect(await walletErrorCode(wallet.installCredential(old.bytes))).toBe('credential_expired');
  });

  it('is idempotent for the same bytes; a different credential with a held serial is invalid', async () => {
    const { platform, wallet } = await setup({ install: false });
    const c = await platform.issue(wallet, { serial: 777 });
    await wallet.installCredential(c.bytes);
    await wallet.installCredential(c.bytes);
    const clash = await platform.issue(wallet, { serial: 777, notAfter: c.notAfter + 60 });
    expect(await walletErrorCode(wallet.installCredential(clash.bytes))).toBe('credential_invalid');
  });

  it('holds the current and the next credential during a renewal overlap and uses the newest valid one', async () => {
    const { platform, clock, wallet } = await setup({ install: false });
    const current = await platform.issue(wallet, { notBefore: T0_S - HOUR_S, notAfter: T0_S + 2 * HOUR_S });
    const next = await platform.issue(wallet, { notBefore: T0_S + HOUR_S, notAfter: T0_S + 74 * HOUR_S });
    await wallet.installCredential(current.bytes);
    await wallet.installCredential(next.bytes);
    expect((await wallet.nextCode()).code.credential.serial).toBe(current.serial);
    expect(wallet.status().pending?.serial).toBe(next.serial);
    clock.advance(HOUR_S);
    expect((await wallet.nextCode()).code.credential.serial).toBe(next.serial);
    expect(wallet.status().pending).toBeUndefined();
    // A third, newer one pushes out the oldest; one older than both is refused.
    const third = await platform.issue(wallet, { notBefore: T0_S + 2 * HOUR_S, notAfter: T0_S + 76 * HOUR_S });
    await wallet.installCredential(third.bytes);
    const older = await platform.issue(wallet, { notBefore: T0_S - HOUR_S, notAfter: T0_S + 3 * HOUR_S });
    expect(await walletErrorCode(wallet.installCredential(older.bytes))).toBe('credential_outdated');
  });

  it('without a trust list it still checks the device key, and leaves the issuer check to terminals', async () => {
    const { platform, clock, vault, store, wallet } = await setup({ install: false });
    await wallet.close();
    const w = await Wallet.open({ crypto, clock, vault, store }); // no trust list
    const forged = await platform.issue(w, { signer: await crypto.suite('p256').generate() });
    await w.installCredential(forged.bytes); // a terminal will refuse its codes: credential_forged
    const other = await platform.issue(await crypto.suite('p256').generate());
    expect(await walletErrorCode(w.installCredential(other.bytes))).toBe('wrong_device');
  });

  it('a failed save leaves the credential uninstalled, and a retry installs it', async () => {
    const flaky = new FlakyStore(new MemoryWalletStore());
    const { platform, wallet } = await setup({ store: flaky, install: false });
    const c = await platform.issue(wallet);
    flaky.failSaves = true;
    expect(await walletErrorCode(wallet.installCredential(c.bytes))).toBe('store_failed');
    expect(wallet.status().enrolled).toBe(false);
    flaky.failSaves = false;
    await wallet.installCredential(c.bytes);
    expect((await flaky.load())?.credentials).toHaveLength(1);
  });
});

describe('key and state belong together', () => {
  it('state_lost: a key without wallet state is refused, not given a fresh counter', async () => {
    const { vault, wallet, clock } = await setup();
    await wallet.nextCode();
    expect(await walletErrorCode(Wallet.open({ crypto, clock, vault, store: new MemoryWalletStore() }))).toBe('state_lost');
  });

  it('key_lost: wallet state without its key is refused', async () => {
    const { store, clock } = await setup();
    expect(await walletErrorCode(Wallet.open({ crypto, clock, vault: new MemoryKeyVault(crypto), store }))).toBe('key_lost');
  });

  it('key_mismatch: a different key in the vault is refused', async () => {
    const { store, clock } = await setup();
    const vault = new MemoryKeyVault(crypto);
    await vault.create('p256');
    expect(await walletErrorCode(Wallet.open({ crypto, clock, vault, store }))).toBe('key_mismatch');
  });

  it('a crash between saving the first state and making the key is recovered by adopting or making the key', async () => {
    const clock = new TestClock();
    const store = new MemoryWalletStore({ version: 1, reservedThrough: 0, credentials: [] });
    const vault = new MemoryKeyVault(crypto);
    const w = await Wallet.open({ crypto, clock, vault, store });
    expect((await store.load())?.device?.publicKey).toEqual(w.publicKey);
  });

  it('reset forgets key and credentials, keeps the counter high-water mark, and the wallet starts over', async () => {
    const { vault, store, clock, wallet, platform } = await setup();
    let last = 0;
    for (let i = 0; i < 5; i++) last = (await wallet.nextCode()).code.counter;
    await wallet.close();
    await Wallet.reset({ vault, store });
    expect(await vault.load()).toBeUndefined();
    const fresh = await Wallet.open({ crypto, clock, vault, store, trust: platform.trust });
    expect(fresh.publicKey).not.toEqual(wallet.publicKey);
    expect(fresh.status().enrolled).toBe(false);
    await fresh.installCredential((await platform.issue(fresh)).bytes);
    expect((await fresh.nextCode()).code.counter).toBeGreaterThan(last);
  });

  it('a closed wallet refuses further calls', async () => {
    const { wallet } = await setup();
    await wallet.close();
    expect(await walletErrorCode(() => wallet.nextCode())).toBe('wallet_closed');
  });

  it('rejects a counterBlock outside 1..COUNTER_BLOCK_MAX as a programming error', async () => {
    const { open } = await setup();
    await expect(open({ counterBlock: 0 })).rejects.toThrow(RangeError);
  });
});
