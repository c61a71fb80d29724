/**
 * The wallet app in Chromium against the real demo campus, on a phone-sized screen: sign-in,
 * agreement, a QR whose pixels decode to a code that verifies, refresh, the non-extractable key in
 * IndexedDB, one tab only, history pending → settled after a real terminal takes a payment, top-up,
 * working offline after a reload, and an expired credential offline.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeTrustList, PUBLIC_KEY_BYTES, textToCode, verifyCode, webCryptoNative, webCryptoSigner } from '@duet/protocol';
import { nodeCrypto } from '@duet/protocol/node';
import { PlatformClient } from '@duet/protocol/client';
import { MemoryJournal, type OnlineAuthorizer, Terminal } from '@duet/terminal';
import { activate, onlineAuthorizer, upload } from '@duet/terminal/platform';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import decodeQR from 'qr/decode.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signDeviceProof, verifyDeviceProof, Wallet } from '@duet/wallet';
import { walletStoreContract } from '../../wallet/test/store.contract.js';
import { HAVE_CHROMIUM, launchBrowser, snap, startTestDemo, type TestDemo, watchErrors } from './browser.js';
import { BridgedStore, BridgedVault, idbEntryScript } from './wallet-idb-bridge.js';
import { decodePng } from './wallet-png.js';

/** A holder made for this test (demo holders have all accepted the agreement already). */
const HOLDER = 2026009001;
const PHONE = { width: 390, height: 844 };
const crypto = nodeCrypto();

async function shownCode(page: Page): Promise<{ text: string; counter: number }> {
  const qr = page.getByTestId('wallet-qr');
  await page.getByTestId('wallet-ready').waitFor();
  return { text: (await qr.getAttribute('data-code')) ?? '', counter: Number(await qr.getAttribute('data-counter')) };
}

/** The language switch names the other language: "English" while Chinese is shown, "中文" while English is. */
async function setLang(page: Page, lang: 'en' | 'zh'): Promise<void> {
  const sw = page.getByTestId('lang-switch');
  const want = lang === 'en' ? '中文' : 'English';
  if (((await sw.textContent()) ?? '').trim() !== want) await sw.click();
  await expect.poll(async () => ((await sw.textContent()) ?? '').trim()).toBe(want);
}

/** A real terminal (in memory) activated with one of the demo's codes, online first. */
async function headlessTerminal(t: TestDemo): Promise<Terminal> {
  const code = t.demo.terminals.find((x) => x.activationCode !== undefined && x.scene === 'canteen')?.activationCode;
  if (code === undefined) throw new Error('the demo has no canteen terminal waiting for activation');
  const client = new PlatformClient(t.demo.url, crypto);
  let self: Terminal | undefined;
  const online: OnlineAuthorizer = {
    authorize: (request, signal) => {
      if (self === undefined) throw new Error('not yet open');
      return onlineAuthorizer(self, client).authorize(request, signal);
    },
  };
  self = await Terminal.open({ journal: new MemoryJournal(), crypto, clock: { nowMs: () => Date.now() }, online });
  await activate(self, client, crypto, code, Math.floor(Date.now() / 1000));
  return self;
}

describe.skipIf(!HAVE_CHROMIUM)('the wallet app in Chromium', () => {
  let t: TestDemo;
  let browser: Browser;
  let ctx: BrowserContext;
  let page: Page;
  let errors: string[];

  beforeAll(async () => {
    t = await startTestDemo({ holders: 5 });
    const admin = new PlatformClient(t.demo.url, crypto);
    const { token } = (await admin.call('POST', '/v1/staff/login', { json: { username: 'admin', password: t.demo.password } })) as {
      token: string;
    };
    await admin.call('POST', '/v1/holders', {
      token,
      json: { id: HOLDER, name: '测试 Wallet', role: 'student', campus: 1, password: t.demo.password },
    });
    // The platform issues no credential to a holder with nothing to spend.
    await admin.call('POST', `/v1/holders/${HOLDER}/topups`, {
      token,
      json: { amount: 5_000, channel: 'cashier', idempotencyKey: 'wallet-test-first-cash' },
    });
    browser = await launchBrowser();
    ctx = await browser.newContext({ viewport: PHONE, deviceScaleFactor: 1 });
    page = await ctx.newPage();
    errors = watchErrors(page);
    page.on('dialog', (d) => void d.accept());
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await t?.close();
  });

  it('refuses a wrong password, signs in with the right one, and shows the agreement in both languages', async () => {
    await page.goto(`${t.demo.url}/wallet/`);
    await snap(page, 'wallet-signin-zh');
    await page.getByTestId('wallet-holder').fill(String(HOLDER));
    await page.getByTestId('wallet-password').fill('not-the-password');
    await page.getByTestId('wallet-login').click();
    await page.getByTestId('error').waitFor();
    expect(await page.getByTestId('wallet-agree').count()).toBe(0);
    await page.getByTestId('wallet-password').fill(t.demo.password);
    await page.getByTestId('wallet-login').click();
    await page.getByTestId('wallet-agree').waitFor();
    expect(((await page.getByTestId('agreement-zh').textContent()) ?? '').length).toBeGreaterThan(10);
    expect(((await page.getByTestId('agreement-en').textContent()) ?? '').length).toBeGreaterThan(10);
    await setLang(page, 'en');
    await snap(page, 'wallet-agreement-en');
    await page.getByTestId('wallet-agree').click();
    await page.getByTestId('wallet-ready').waitFor({ timeout: 15_000 });
  }, 60_000);

  it('draws a QR whose pixels decode to exactly the code shown, and that code verifies', async () => {
    const { text, counter } = await shownCode(page);
    expect(text).toMatch(/^DU1:/);
    expect(Number.isSafeInteger(counter)).toBe(true);
    const image = decodePng(await page.getByTestId('wallet-qr').screenshot());
    expect(decodeQR(image)).toBe(text);
    const code = textToCode(text);
    expect(code.counter).toBe(counter);
    expect(code.credential.holder).toBe(HOLDER);
    const trust = (await (await fetch(`${t.demo.url}/v1/trust-list`)).json()) as { trustList: string };
    const body = decodeTrustList(Buffer.from(trust.trustList, 'base64'));
    await verifyCode(code, { trust: body, crypto, nowS: Math.floor(Date.now() / 1000), windowS: 120, skewS: 30 });
    expect(await page.getByTestId('wallet-limit').textContent()).toMatch(/¥/);
    // Online, the figure is synced from the history by itself.
    await expect.poll(() => page.getByTestId('wallet-limit').textContent()).toMatch(/last sync|截至上次同步/);
    expect(await page.getByTestId('wallet-expiry').textContent()).toMatch(/\d/);
    await snap(page, 'wallet-main-en');
    await setLang(page, 'zh');
    await snap(page, 'wallet-main-zh');
  });

  it('makes a fresh code with a higher counter on refresh and on tap', async () => {
    const before = await shownCode(page);
    const ms = await page.evaluate(() => window.__duetWalletRefresh?.());
    expect(typeof ms).toBe('number');
    const after = await shownCode(page);
    expect(after.counter).toBeGreaterThan(before.counter);
    expect(after.text).not.toBe(before.text);
    await page.getByTestId('wallet-qr').click();
    await page.waitForFunction(
      (c) => Number(document.querySelector('[data-testid="wallet-qr"]')?.getAttribute('data-counter')) > c,
      after.counter,
    );
    // The pixels follow the code: the new drawing decodes to the new text.
    const again = await shownCode(page);
    expect(decodeQR(decodePng(await page.getByTestId('wallet-qr').screenshot()))).toBe(again.text);
  });

  it('keeps the device key in IndexedDB as a CryptoKey that cannot be extracted', async () => {
    const key = await page.evaluate(
      () =>
        new Promise<{ isKey: boolean; extractable: boolean; type: string; alg: string; exported: string }>((resolve, reject) => {
          const req = indexedDB.open('duet-wallet');
          req.onerror = () => reject(req.error);
          req.onsuccess = () => {
            const get = req.result.transaction('keys').objectStore('keys').get('device');
            get.onsuccess = async () => {
              const k = (get.result as { pair: CryptoKeyPair }).pair.privateKey;
              let exported = 'exported';
              try {
                await globalThis.crypto.subtle.exportKey('pkcs8', k);
              } catch (e) {
                exported = (e as Error).name;
              }
              resolve({ isKey: k instanceof CryptoKey, extractable: k.extractable, type: k.type, alg: k.algorithm.name, exported });
            };
          };
        }),
    );
    expect(key).toEqual({ isKey: true, extractable: false, type: 'private', alg: 'ECDSA', exported: 'InvalidAccessError' });
  });

  it('lets only one tab drive the wallet, and hands it over when that tab closes', async () => {
    const second = await ctx.newPage();
    await second.goto(`${t.demo.url}/wallet/`);
    await second.getByTestId('wallet-other-tab').waitFor();
    expect(await second.getByTestId('wallet-qr').count()).toBe(0);
    await snap(second, 'wallet-other-tab-zh');
    // Closing the first tab hands the wallet to the second, which then shows a code.
    const counter = (await shownCode(page)).counter;
    await page.close();
    page = second;
    errors = watchErrors(page);
    page.on('dialog', (d) => void d.accept());
    expect((await shownCode(page)).counter).toBeGreaterThan(counter);
  });

  it('tops up the cash purse once per idempotency key, with the keypad bounded', async () => {
    await page.getByTestId('tab-topup').click();
    const token = await page.evaluate(() => (JSON.parse(localStorage.getItem('duet.wallet.session') ?? '{}') as { token: string }).token);
    const status = await fetch(`${t.demo.url}/v1/holder/status`, { headers: { authorization: `Bearer ${token}` } });
    const available = status.ok && ((await status.json()) as { topUpAvailable: boolean }).topUpAvailable;
    if (!available) {
      await page.getByTestId('topup-unavailable').waitFor();
      expect(await page.getByTestId('topup-submit').isDisabled()).toBe(true);
      await snap(page, 'wallet-topup-unavailable-zh');
      return;
    }
    await page.getByTestId('topup-balance').waitFor();
    for (const k of ['9', '9', '9', '9', '9', '9', '9']) await page.getByTestId(`key-${k}`).click();
    expect(await page.getByTestId('topup-submit').isDisabled()).toBe(true); // above the bound
    for (let i = 0; i < 7; i++) await page.getByTestId('key-back').click();
    for (const k of ['2', '5', 'dot', '5']) await page.getByTestId(`key-${k}`).click();
    const before = await page.getByTestId('topup-balance').textContent();
    await page.getByTestId('topup-submit').click();
    await page.getByTestId('topup-done').waitFor();
    expect(await page.getByTestId('topup-balance').textContent()).not.toBe(before);
    await snap(page, 'wallet-topup-zh');
    // The same key twice tops up once.
    const call = (key: string) =>
      fetch(`${t.demo.url}/v1/holder/topups`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ amountFen: 100, idempotencyKey: key }),
      }).then((r) => r.json() as Promise<{ balanceFen: number }>);
    const a = await call('wallet-test-key-1');
    const b = await call('wallet-test-key-1');
    expect(b.balanceFen).toBe(a.balanceFen);
  }, 30_000);

  it('shows a payment taken by a real terminal as pending, then settled once the terminal uploads', async () => {
    const terminal = await headlessTerminal(t);
    await page.getByTestId('tab-pay').click();
    const { text } = await shownCode(page);
    const decision = await terminal.pay(350, text);
    // Online first: the platform posts the payment now, pending until the terminal's record arrives.
    expect(decision).toMatchObject({ accepted: true, path: 'online', amount: 350 });
    await page.getByTestId('tab-history').click();
    const row = page.locator('[data-testid="history-row"][data-amount="-350"]');
    await row.first().waitFor();
    expect(await row.first().getAttribute('data-state')).toBe('pending');
    await snap(page, 'wallet-history-pending-zh');
    expect((await upload(terminal, new PlatformClient(t.demo.url, crypto))).uploaded).toBeGreaterThan(0);
    // Clearing runs in the background (every 300 ms in the test demo): reload until it settled.
    await expect
      .poll(
        async () => {
          await page.getByTestId('history-reload').click();
          await page.waitForTimeout(300);
          return row.first().getAttribute('data-state');
        },
        { timeout: 15_000 },
      )
      .toBe('settled');
    await setLang(page, 'en');
    await snap(page, 'wallet-history-en');
    await setLang(page, 'zh');
  }, 60_000);

  it('signs out after a confirm, wiping the key, and a new sign-in skips the accepted agreement', async () => {
    await page.getByTestId('tab-pay').click();
    const oldKey = textToCode((await shownCode(page)).text).credential.devicePublicKey;
    await page.getByTestId('wallet-signout').click(); // the dialog is accepted by the handler above
    await page.getByTestId('wallet-login').waitFor();
    const left = await page.evaluate(
      () =>
        new Promise<number>((resolve) => {
          const req = indexedDB.open('duet-wallet');
          req.onsuccess = () => {
            const c = req.result.transaction('state').objectStore('state').get('current');
            c.onsuccess = () => resolve((c.result as { credentials: unknown[] }).credentials.length);
          };
        }),
    );
    expect(left).toBe(0);
    expect(await page.evaluate(() => localStorage.getItem('duet.wallet.session'))).toBeNull();
    await page.getByTestId('wallet-holder').fill(String(HOLDER));
    await page.getByTestId('wallet-password').fill(t.demo.password);
    await page.getByTestId('wallet-login').click();
    const { text } = await shownCode(page);
    expect(await page.getByTestId('wallet-agree').count()).toBe(0);
    expect(textToCode(text).credential.devicePublicKey).not.toEqual(oldKey);
  }, 30_000);

  it('asks the platform for a new credential by itself, online, when the credential nears its end', async () => {
    await page.getByTestId('tab-pay').click();
    const before = textToCode((await shownCode(page)).text).credential;
    const asked: string[] = [];
    const watch = (r: { url(): string; method(): string }) => {
      if (r.method() === 'POST' && /\/v1\/holder\/(challenge|credentials)$/.test(r.url())) asked.push(new URL(r.url()).pathname);
    };
    page.on('request', watch);
    // The page's clock jumps to a few hours before the credential ends: renewal is due. (The
    // platform, on its own clock, answers with the credential still live, so only the ask shows.)
    await page.clock.install({ time: (before.notAfter - 4 * 3600) * 1000 });
    await page.reload();
    await expect.poll(() => asked, { timeout: 15_000 }).toEqual(['/v1/holder/challenge', '/v1/holder/credentials']);
    page.off('request', watch);
    await shownCode(page);
    expect(await page.getByTestId('wallet-expiry').textContent()).toMatch(/剩 [34] 小时|in [34] h/);
  }, 30_000);

  it('still shows a code after a reload with no network, with the offline banner', async () => {
    await page.getByTestId('tab-pay').click();
    await page.waitForFunction(async () => (await navigator.serviceWorker.getRegistration())?.active !== undefined, null, {
      timeout: 10_000,
    });
    await ctx.setOffline(true);
    await page.reload();
    await page.getByTestId('wallet-offline').waitFor();
    const { text } = await shownCode(page);
    expect(await page.getByTestId('wallet-offline').textContent()).toMatch(/codes still work|付款码仍可使用/);
    expect(decodeQR(decodePng(await page.getByTestId('wallet-qr').screenshot()))).toBe(text);
    await snap(page, 'wallet-offline-zh');
    await setLang(page, 'en');
    await snap(page, 'wallet-offline-en');
  }, 30_000);

  it('says plainly that no code can be shown when the credential expired and the phone is offline', async () => {
    // A year on: every credential the demo issues has expired by then.
    await page.clock.setSystemTime(Date.now() + 365 * 86_400_000);
    await page.reload();
    await page.getByTestId('wallet-expired').waitFor();
    expect(await page.getByTestId('wallet-qr').count()).toBe(0);
    expect(await page.getByTestId('wallet-expired').textContent()).toMatch(/expired/);
    expect(await page.getByTestId('wallet-offline').textContent()).not.toMatch(/codes still work/);
    await snap(page, 'wallet-expired-en');
    await setLang(page, 'zh');
    expect(await page.getByTestId('wallet-expired').textContent()).toMatch(/过期/);
    await snap(page, 'wallet-expired-zh');
    expect(errors).toEqual([]);
  }, 30_000);
  it('says the device key is missing instead of guessing, and resets to a fresh sign-in', async () => {
    await ctx.setOffline(false);
    await page.evaluate(
      () =>
        new Promise<void>((resolve) => {
          const req = indexedDB.open('duet-wallet');
          req.onsuccess = () => {
            const tx = req.result.transaction('keys', 'readwrite');
            tx.objectStore('keys').delete('device');
            tx.oncomplete = () => {
              req.result.close();
              resolve();
            };
          };
        }),
    );
    await page.reload();
    await page.getByTestId('wallet-reset').waitFor();
    expect(await page.getByTestId('error').textContent()).toMatch(/设备密钥丢失|device key is missing/);
    await snap(page, 'wallet-key-lost-zh');
    await page.getByTestId('wallet-reset').click();
    await page.getByTestId('wallet-login').waitFor();
    expect(errors).toEqual([]);
  }, 30_000);
});

/** The app's IndexedDB KeyVault and WalletStore held to the wallet core's contracts, inside Chromium. */
describe.skipIf(!HAVE_CHROMIUM)('the wallet app’s IndexedDB vault and store, in Chromium', () => {
  let server: Server;
  let browser: Browser;
  let page: Page;
  let n = 0;
  const fresh = () => `contract-${++n}`;

  beforeAll(async () => {
    // Any http origin on 127.0.0.1 is a secure context with IndexedDB and WebCrypto.
    server = createServer((_q, r) => r.end('<!doctype html><title>idb</title>'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    browser = await launchBrowser();
    page = await (await browser.newContext()).newPage();
    await page.goto(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
    await page.addScriptTag({ content: await idbEntryScript() });
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await new Promise((resolve) => server?.close(resolve));
  });

  walletStoreContract('IdbWalletStore', async () => new BridgedStore(page, fresh()));

  it('reports a damaged state record as store_corrupt, never as empty', async () => {
    for (const damage of [
      'garbage',
      null,
      { version: 1, reservedThrough: -1, credentials: [] },
      { version: 2, reservedThrough: 0, credentials: [] },
    ]) {
      const store = new BridgedStore(page, fresh());
      await store.damage(damage);
      await expect(store.load()).rejects.toMatchObject({ name: 'WalletError', code: 'store_corrupt' });
    }
  });

  it.each(['p256', 'ed25519'] as const)('makes a %s key that signs, survives a reload and is not extractable', async (suite) => {
    const vault = new BridgedVault(page, fresh());
    expect(await vault.load()).toBeUndefined();
    const key = await vault.create(suite);
    expect(key.suite).toBe(suite);
    expect(key.publicKey).toHaveLength(PUBLIC_KEY_BYTES[suite]);
    expect(await key.exportPrivateKey()).toBeUndefined();
    const again = await new BridgedVault(page, vault.db).load();
    expect(again?.publicKey).toEqual(key.publicKey);
    const challenge = new Uint8Array(32).fill(7);
    const proof = await signDeviceProof(again ?? key, challenge);
    expect(await verifyDeviceProof(crypto, suite, key.publicKey, challenge, proof)).toBe(true);
  });

  it('never replaces a key, forgets it on destroy (idempotent), and refuses sm2 (no WebCrypto keystore for it)', async () => {
    const vault = new BridgedVault(page, fresh());
    const key = await vault.create('p256');
    await expect(vault.create('p256')).rejects.toMatchObject({ code: 'key_exists' });
    expect((await vault.load())?.publicKey).toEqual(key.publicKey);
    await vault.destroy();
    await vault.destroy();
    expect(await vault.load()).toBeUndefined();
    expect((await vault.create('p256')).publicKey).not.toEqual(key.publicKey);
    await expect(new BridgedVault(page, fresh()).create('sm2')).rejects.toMatchObject({ name: 'RangeError' });
  });

  it('opens the wallet core on them, which finds the same key after a restart', async () => {
    const db = fresh();
    const o = {
      crypto,
      clock: { nowMs: () => Date.now() },
      vault: new BridgedVault(page, db),
      store: new BridgedStore(page, db),
      counterBlock: 4,
    };
    const w1 = await Wallet.open(o);
    const w2 = await Wallet.open({ ...o, vault: new BridgedVault(page, db), store: new BridgedStore(page, db) });
    expect(w2.publicKey).toEqual(w1.publicKey);
    expect((await o.store.load())?.device?.suite).toBe('p256');
  });
});

describe('the crypto the wallet page uses (protocol web provider, here on Node’s WebCrypto)', () => {
  it('webCryptoSigner signs with a non-extractable pair made elsewhere, verifiably, and never exports it', async () => {
    const algs: [suite: 'p256' | 'ed25519', alg: EcKeyGenParams | Algorithm][] = [
      ['p256', { name: 'ECDSA', namedCurve: 'P-256' }],
      ['ed25519', { name: 'Ed25519' }],
    ];
    for (const [suite, alg] of algs) {
      const pair = (await globalThis.crypto.subtle.generateKey(alg, false, ['sign', 'verify'])) as CryptoKeyPair;
      const signer = await webCryptoSigner(suite, pair);
      expect(signer.publicKey).toHaveLength(PUBLIC_KEY_BYTES[suite]);
      expect(await signer.exportPrivateKey()).toBeUndefined();
      const message = new TextEncoder().encode('duet');
      const signature = await signer.sign(message);
      expect(await crypto.suite(suite).verify(signer.publicKey, message, signature)).toBe(true);
      expect(await crypto.suite(suite).verify(signer.publicKey, new TextEncoder().encode('duel'), signature)).toBe(false);
    }
  });

  it('webCryptoNative has P-256 and Ed25519 and refuses SM2 with unknown_suite', async () => {
    const native = webCryptoNative();
    const key = await native.suite('p256').generate({ extractable: false });
    const m = new Uint8Array([1, 2, 3]);
    expect(await native.suite('p256').verify(key.publicKey, m, await key.sign(m))).toBe(true);
    expect(() => native.suite('sm2')).toThrow(expect.objectContaining({ code: 'unknown_suite' }));
  });
});
