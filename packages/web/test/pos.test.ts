/**
 * The POS app in Chromium against the real demo campus: activation by link and by typing, the
 * keypad's bounds in words, offline decisions by the real terminal core (accepted, replay, a foreign
 * code, an expired credential), reloads offline and in the middle of a payment, the upload queue
 * draining to the platform (also after an upload cut off mid-way), wedge input, and the camera fed a
 * QR image through a fake camera.
 */
import type { Wallet } from '@duet/wallet';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enrolledWallet } from '../src/index.js';
import { HAVE_CHROMIUM, launchBrowser, snap, startTestDemo, type TestDemo, watchErrors } from './browser.js';
import { fakeCameraScript, qrDataUrl } from './pos-camera.js';

const D = (id: string) => `[data-testid="${id}"]`;

describe.skipIf(!HAVE_CHROMIUM)('the POS app in Chromium', () => {
  let t: TestDemo;
  let browser: Browser;
  let nextTerminal = 0;
  let nextHolder = 0;
  const contexts: BrowserContext[] = [];

  beforeAll(async () => {
    t = await startTestDemo({ holders: 12 });
    browser = await launchBrowser();
  }, 120_000);
  afterAll(async () => {
    for (const c of contexts) await c.close().catch(() => undefined);
    await browser?.close();
    await t?.close();
  });

  /** A terminal still waiting for activation, at a paying scene (not a gate). */
  function waitingTerminal() {
    const list = t.demo.terminals.filter((x) => x.activationCode !== undefined && !/gate|access|dorm/i.test(x.scene));
    const term = list[nextTerminal++];
    if (term?.activationCode === undefined) throw new Error('no terminal left to activate');
    return { id: term.id, code: term.activationCode };
  }

  async function wallet(): Promise<Wallet> {
    return enrolledWallet(t.demo.url, t.demo.holders.first + nextHolder++, t.demo.password);
  }

  async function newPage(init?: string): Promise<{ ctx: BrowserContext; page: Page; errors: string[] }> {
    const ctx = await browser.newContext({ viewport: { width: 480, height: 860 }, locale: 'zh-CN' });
    contexts.push(ctx);
    if (init !== undefined) await ctx.addInitScript(init);
    const page = await ctx.newPage();
    return { ctx, page, errors: watchErrors(page) };
  }

  /** Opens the activation link and waits for the keypad and the service worker. */
  async function activatedPos(init?: string) {
    const term = waitingTerminal();
    const p = await newPage(init);
    await p.page.goto(`${t.demo.url}/pos/#activate=${term.code}`);
    await p.page.waitForSelector(D('pos-keypad'), { timeout: 30_000 });
    await p.page.waitForFunction(async () => (await navigator.serviceWorker.getRegistration())?.active != null, null, { timeout: 15_000 });
    return { ...p, terminalId: term.id };
  }

  async function charge(page: Page, keys: string[]): Promise<void> {
    await page.click(D('pos-key-clear'));
    for (const k of keys) await page.click(D(`pos-key-${k}`));
    await page.click(D('pos-charge'));
  }

  async function typeCode(page: Page, text: string): Promise<void> {
    await page.waitForSelector(D('pos-waiting'));
    await page.fill(D('pos-code-input'), text);
    await page.click(D('pos-code-submit'));
  }

  async function decision(page: Page) {
    const d = page.locator(D('pos-decision'));
    await d.waitFor({ timeout: 15_000 });
    return {
      accepted: await d.getAttribute('data-accepted'),
      reason: await d.getAttribute('data-reason'),
      path: await d.getAttribute('data-path'),
      text: (await d.textContent()) ?? '',
    };
  }

  async function dismiss(page: Page): Promise<void> {
    await page.click(D('pos-decision'));
    await page.waitForSelector(D('pos-keypad'));
  }

  const waitingCount = async (page: Page) => Number(await page.locator(D('pos-queue')).getAttribute('data-waiting'));

  async function platformRecords(terminalId: number): Promise<number> {
    const row = await t.demo.platform.db.one('SELECT COUNT(*) AS n FROM records WHERE terminal_id = ?', [terminalId]);
    return Number(row?.n ?? 0);
  }

  it('activates from the link, refuses bad amounts in words (both languages), lets one tab hold the terminal, and activates by typed code', async () => {
    const { ctx, page, terminalId, errors } = await activatedPos();
    expect(await page.locator(D('pos-terminal')).textContent()).toContain(String(terminalId));
    expect(await page.locator(D('pos-lists')).getAttribute('data-stale')).toBe('false');
    const problem = page.locator(D('pos-amount-error'));
    await charge(page, []);
    expect(await problem.getAttribute('data-code')).toBe('empty');
    await charge(page, ['0', '0', '0']);
    expect(await problem.getAttribute('data-code')).toBe('zero');
    expect(await problem.textContent()).toContain('金额必须大于零');
    await charge(page, ['1', 'dot', '2', '3', '4']);
    expect(await problem.getAttribute('data-code')).toBe('decimals');
    expect(await problem.textContent()).toContain('最多两位小数');
    await charge(page, ['9', '9', '9', '9', '9', '9', '9']);
    expect(await problem.getAttribute('data-code')).toBe('over_max');
    expect(await problem.textContent()).toContain('超过单笔限额');
    await snap(page, 'pos-keypad-bad-amount-zh');
    await page.click(D('lang-switch'));
    expect(await problem.textContent()).toContain('Over the single payment limit');
    await page.click(D('pos-key-back'));
    expect(await page.locator(D('pos-amount')).textContent()).toBe('¥999999');
    await charge(page, ['1', 'dot', '0', '0']);
    await page.waitForSelector(D('pos-waiting'));
    expect(await page.locator(D('pos-waiting')).getAttribute('data-amount')).toBe('100');
    await page.click(D('pos-cancel'));
    await page.waitForSelector(D('pos-keypad'));
    await page.click(D('pos-key-1'));
    await page.click(D('pos-key-2'));
    await snap(page, 'pos-keypad-en');
    await page.click(D('lang-switch'));
    await snap(page, 'pos-keypad-zh');
    // The link opened again on an activated POS changes nothing and says so.
    await page.goto(`${t.demo.url}/pos/?again#activate=ABCDE-ABCDE-ABCDE-ABCDE`);
    await page.waitForSelector(D('pos-keypad'));
    expect(await page.locator(D('error')).textContent()).toContain(`已激活为终端 #${terminalId}`);
    expect(await page.evaluate(() => location.hash)).toBe('');
    // A second tab waits while the first holds the terminal, and takes over when it closes.
    const second = await ctx.newPage();
    await second.goto(`${t.demo.url}/pos/`);
    await second.waitForSelector(D('pos-other-tab'));
    expect(await second.locator(D('pos-keypad')).count()).toBe(0);
    await page.close();
    await second.waitForSelector(D('pos-keypad'));
    expect(await second.locator(D('pos-terminal')).textContent()).toContain(String(terminalId));

    // Typed activation: a wrong code is refused in words, a right one activates.
    const typed = await newPage();
    await typed.page.goto(`${t.demo.url}/pos/`);
    await typed.page.fill(D('pos-activate-code'), 'NOT-A-CODE');
    await typed.page.click(D('pos-activate-submit'));
    expect(await typed.page.locator(D('error')).textContent()).toContain('激活码为四组');
    const term = waitingTerminal();
    await typed.page.fill(D('pos-activate-code'), term.code.toLowerCase());
    await typed.page.click(D('pos-activate-submit'));
    await typed.page.waitForSelector(D('pos-keypad'), { timeout: 30_000 });
    expect(await typed.page.locator(D('pos-terminal')).textContent()).toContain(String(term.id));
    expect([...errors, ...typed.errors]).toEqual([]);
  });

  it('offline: accepts a code, refuses it again as a replay, refuses a foreign code; reloads keep app, journal and payment; back online the queue drains to the platform', async () => {
    const { ctx, page, terminalId, errors } = await activatedPos();
    const phone = await wallet();
    const first = (await phone.nextCode()).text;
    await ctx.setOffline(true);
    await page.waitForSelector(`${D('net-state')}.warn`);

    await charge(page, ['1', '2', 'dot', '5']);
    await typeCode(page, first);
    let d = await decision(page);
    expect(d).toMatchObject({ accepted: 'true', reason: 'accepted', path: 'offline' });
    expect(d.text).toContain('¥12.50');
    await snap(page, 'pos-green-zh');
    expect(await waitingCount(page)).toBe(1);
    await dismiss(page);

    await charge(page, ['3']);
    await typeCode(page, first);
    d = await decision(page);
    expect(d).toMatchObject({ accepted: 'false', reason: 'replay' });
    expect(d.text).toContain('付款码已使用');
    expect(d.text).toContain('Code already used');
    await snap(page, 'pos-red-replay');
    await dismiss(page);

    await page.click(D('lang-switch'));
    await charge(page, ['3']);
    await typeCode(page, 'https://example.com/some-other-qr');
    d = await decision(page);
    expect(d).toMatchObject({ accepted: 'false', reason: 'not_a_code' });
    expect(d.text).toContain('Not a Duet payment code');
    expect(d.text).toContain('不是 Duet 付款码');
    expect(d.text).toContain('Not paid');
    await snap(page, 'pos-red-foreign-en');
    await dismiss(page);
    await snap(page, 'pos-queue-offline-en');
    await page.click(D('lang-switch'));
    await snap(page, 'pos-queue-offline-zh');

    // Reload with no network: the service worker serves the app, the journal still knows the code.
    await page.reload();
    await page.waitForSelector(D('pos-keypad'));
    expect(await waitingCount(page)).toBe(1);
    await charge(page, ['5']);
    await typeCode(page, first);
    expect(await decision(page)).toMatchObject({ accepted: 'false', reason: 'replay' });
    await dismiss(page);

    // Reload in the middle of a payment: the amount waits for its scan again.
    await charge(page, ['7', 'dot', '2']);
    await page.waitForSelector(D('pos-waiting'));
    await page.reload();
    await page.waitForSelector(D('pos-waiting'));
    expect(await page.locator(D('pos-waiting')).getAttribute('data-amount')).toBe('720');
    await typeCode(page, (await phone.nextCode()).text);
    expect(await decision(page)).toMatchObject({ accepted: 'true', path: 'offline' });
    expect(await waitingCount(page)).toBe(2);
    await dismiss(page);

    // A reload after the record was journaled but before the screen state was saved (a crash between
    // the two writes): the record is shown again from the journal, never decided a second time.
    await charge(page, ['4']);
    await typeCode(page, (await phone.nextCode()).text);
    expect(await decision(page)).toMatchObject({ accepted: 'true' });
    await page.evaluate(async () => {
      const db = await new Promise<IDBDatabase>((ok, ko) => {
        const r = indexedDB.open('duet-pos-journal');
        r.onsuccess = () => ok(r.result);
        r.onerror = () => ko(r.error);
      });
      const tx = db.transaction('ui', 'readwrite');
      const store = tx.objectStore('ui');
      const got = await new Promise<{ shown: { sequence: number } }>((ok) => {
        const r = store.get('payment');
        r.onsuccess = () => ok(r.result);
      });
      store.put({ phase: 'waiting', amount: 400, head: got.shown.sequence - 1 }, 'payment');
      await new Promise((ok) => {
        tx.oncomplete = ok;
      });
      db.close();
    });
    await page.reload();
    d = await decision(page);
    expect(d).toMatchObject({ accepted: 'true', reason: 'accepted', path: 'offline' });
    expect(d.text).toContain('¥4.00');
    expect(d.text).toContain('重新载入后再次显示');
    expect(await waitingCount(page)).toBe(3);
    await dismiss(page);
    expect(await platformRecords(terminalId)).toBe(0);

    // Back online: the queue drains and the platform holds every accepted record.
    await ctx.setOffline(false);
    await page.waitForFunction((sel) => document.querySelector(sel)?.getAttribute('data-waiting') === '0', D('pos-queue'), {
      timeout: 30_000,
    });
    await snap(page, 'pos-queue-drained-zh');
    expect(await platformRecords(terminalId)).toBe(3);
    expect(errors).toEqual([]);
  });

  it('an upload cut off mid-way is retried and nothing is lost or counted twice', async () => {
    const { page, terminalId, errors } = await activatedPos();
    let attempts = 0;
    await page.route('**/v1/terminal/upload', async (route) => {
      attempts++;
      if (attempts === 1) {
        // The platform stores the batch but its answer never reaches the POS.
        await route.fetch();
        await route.abort('connectionreset');
      } else if (attempts === 2) await route.abort('internetdisconnected');
      else await route.continue();
    });
    const phone = await wallet();
    await charge(page, ['2']);
    await typeCode(page, (await phone.nextCode()).text);
    const d = await decision(page);
    expect(d.accepted).toBe('true');
    // Online first; the policy's 300 ms budget may send a slow answer on a busy machine offline instead.
    expect(['online', 'offline']).toContain(d.path);
    await dismiss(page);
    await charge(page, ['3']);
    await typeCode(page, (await phone.nextCode()).text);
    expect(await decision(page)).toMatchObject({ accepted: 'true' });
    await dismiss(page);
    await page.waitForFunction((sel) => document.querySelector(sel)?.getAttribute('data-waiting') === '0', D('pos-queue'), {
      timeout: 30_000,
    });
    expect(attempts).toBeGreaterThanOrEqual(3);
    expect(await platformRecords(terminalId)).toBe(2);
    expect(errors.filter((e) => !/ERR_CONNECTION_RESET|ERR_INTERNET_DISCONNECTED/.test(e))).toEqual([]);
  });

  it('takes a keyboard-wedge burst as a scan and ignores slow human typing; __duetPosDecide runs the same path', async () => {
    const { ctx, page } = await activatedPos();
    await ctx.setOffline(true);
    const phone = await wallet();
    await charge(page, ['6']);
    await page.waitForSelector(D('pos-waiting'));
    await page.keyboard.type('hello there', { delay: 120 });
    await page.keyboard.press('Enter');
    await page.keyboard.type('a quick typist', { delay: 70 });
    await page.keyboard.press('Enter');
    await page.waitForTimeout(400);
    expect(await page.locator(D('pos-decision')).count()).toBe(0);
    await page.keyboard.type((await phone.nextCode()).text, { delay: 0 });
    await page.keyboard.press('Enter');
    expect(await decision(page)).toMatchObject({ accepted: 'true', reason: 'accepted', path: 'offline' });
    await dismiss(page);

    const text = (await phone.nextCode()).text;
    const decide = (x: string) =>
      page.evaluate(
        ([c, a]) =>
          (
            window as unknown as { __duetPosDecide(t: string, a: number): Promise<{ ms: number; accepted: boolean; reason: string }> }
          ).__duetPosDecide(c, a),
        [x, 150] as const,
      );
    const r = await decide(text);
    expect(r.accepted).toBe(true);
    expect(r.ms).toBeGreaterThan(0);
    expect((await decision(page)).text).toContain('¥1.50');
    expect(await decide(text)).toMatchObject({ accepted: false, reason: 'replay' });
    expect(await decide('garbage')).toMatchObject({ accepted: false, reason: 'not_a_code' });
  });

  it('reads a code from the camera (fake camera showing a QR image) and stops the camera', async () => {
    const phone = await wallet();
    const text = (await phone.nextCode()).text;
    const { page, errors } = await activatedPos(fakeCameraScript(qrDataUrl(text)));
    await charge(page, ['8', '8']);
    await page.waitForSelector(D('pos-waiting'));
    await snap(page, 'pos-waiting-zh');
    await page.click(D('pos-camera'));
    expect(await decision(page)).toMatchObject({ accepted: 'true', reason: 'accepted' });
    expect(await page.evaluate(() => (window as unknown as { __duetFakeCameraCalls?: number }).__duetFakeCameraCalls)).toBe(1);
    expect(await page.evaluate(() => document.querySelector('video')?.srcObject ?? null)).toBeNull();
    expect(errors).toEqual([]);
  });

  it('reads a code from a phone-sized screenshot through the camera, as the end-to-end test feeds the wallet page', async () => {
    const phone = await wallet();
    const text = (await phone.nextCode()).text;
    const shot = await newPage();
    await shot.page.setViewportSize({ width: 390, height: 844 });
    await shot.page.setContent(
      `<body style="margin:0;font-family:sans-serif;background:#f4f6f9"><header style="background:#162033;color:#fff;padding:12px">Duet 钱包</header>` +
        `<p style="text-align:center">付款码 · Pay code</p><div style="text-align:center"><img src="${qrDataUrl(text, 2)}" ` +
        `style="width:300px;image-rendering:pixelated"></div><p style="text-align:center">离线额度 ¥200.00</p></body>`,
    );
    const png = await shot.page.screenshot();
    const { page } = await activatedPos(fakeCameraScript(`data:image/png;base64,${png.toString('base64')}`));
    await charge(page, ['9']);
    await page.click(D('pos-camera'));
    expect(await decision(page)).toMatchObject({ accepted: 'true', reason: 'accepted' });
  });

  it('refuses a wallet whose credential has expired, in words', async () => {
    const { ctx, page } = await activatedPos();
    const phone = await wallet();
    const text = (await phone.nextCode()).text;
    await ctx.setOffline(true);
    // The terminal's clock moves past the credential's end (72 h of validity in the demo).
    await page.clock.setFixedTime(Date.now() + 73 * 3600 * 1000);
    await charge(page, ['1']);
    await typeCode(page, text);
    const d = await decision(page);
    expect(d).toMatchObject({ accepted: 'false', reason: 'credential_expired' });
    expect(d.text).toContain('凭证已过期');
    expect(d.text).toContain('Credential expired');
    await snap(page, 'pos-red-expired-zh');
    // With the clock 73 h on and no network, the lists are shown as out of date too.
    await page.waitForSelector(`${D('pos-lists')}[data-stale="true"]`);
    expect(await page.locator(D('pos-lists')).textContent()).toContain('已过期');
  });
});
