/**
 * The whole dual-offline story in a real browser, the way an operator tries it in the first five
 * minutes: the student's wallet shows its code; the phone and the POS both lose the network; the
 * POS reads the code from the real pixels of the wallet page (a screenshot of the phone fed to the
 * POS camera, decoded by the POS's own QR decoder); the payment is accepted offline; back online the
 * record uploads, clearing settles it, and the console and the wallet both show it settled.
 * Screenshots of every step go to artifacts/browser/e2e-*.png.
 */
import { PlatformClient } from '@duet/protocol/client';
import { nodeCrypto } from '@duet/protocol/node';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import decodeQR from 'qr/decode.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HAVE_CHROMIUM, launchBrowser, snap, startTestDemo, type TestDemo, watchErrors } from './browser.js';
import { fakeCameraScript } from './pos-camera.js';
import { decodePng } from './wallet-png.js';

const D = (id: string) => `[data-testid="${id}"]`;
const AMOUNT_FEN = 1_250;

describe.skipIf(!HAVE_CHROMIUM)('dual offline, end to end in Chromium', () => {
  let t: TestDemo;
  let browser: Browser;
  const contexts: BrowserContext[] = [];

  beforeAll(async () => {
    t = await startTestDemo({ holders: 10 });
    browser = await launchBrowser();
  }, 60_000);
  afterAll(async () => {
    for (const c of contexts) await c.close().catch(() => undefined);
    await browser?.close();
    await t?.close();
  });

  async function context(viewport: { width: number; height: number }): Promise<{ ctx: BrowserContext; page: Page; errors: string[] }> {
    const ctx = await browser.newContext({ viewport, deviceScaleFactor: 1, locale: 'zh-CN' });
    contexts.push(ctx);
    const page = await ctx.newPage();
    page.on('dialog', (d) => void d.accept());
    return { ctx, page, errors: watchErrors(page) };
  }

  it('pays with both the phone and the POS offline, and the payment comes home and clears', async () => {
    const holder = t.demo.holders.first;
    const terminal = t.demo.terminals.find((x) => x.scene === 'canteen' && x.activationCode !== undefined);
    if (terminal?.activationCode === undefined) throw new Error('the demo has no canteen window waiting for activation');

    // 1. The student signs in on the phone; the wallet shows its offline code.
    const phone = await context({ width: 390, height: 844 });
    await phone.page.goto(`${t.demo.url}/wallet/`);
    await phone.page.fill(D('wallet-holder'), String(holder));
    await phone.page.fill(D('wallet-password'), t.demo.password);
    await phone.page.click(D('wallet-login'));
    const agree = phone.page.locator(D('wallet-agree'));
    await Promise.race([
      agree.waitFor({ timeout: 30_000 }).then(() => agree.click()),
      phone.page.waitForSelector(D('wallet-ready'), { timeout: 30_000 }),
    ]);
    await phone.page.waitForSelector(D('wallet-ready'), { timeout: 30_000 });
    await phone.page.waitForFunction(async () => (await navigator.serviceWorker.getRegistration())?.active != null, null, {
      timeout: 15_000,
    });
    await snap(phone.page, 'e2e-1-wallet-code-online');

    // 2. The cashier opens the POS from the activation link the demo prints.
    const pos = await context({ width: 480, height: 860 });
    await pos.page.goto(`${t.demo.url}/pos/#activate=${terminal.activationCode}`);
    await pos.page.waitForSelector(D('pos-keypad'), { timeout: 30_000 });
    await pos.page.waitForFunction(async () => (await navigator.serviceWorker.getRegistration())?.active != null, null, {
      timeout: 15_000,
    });
    await snap(pos.page, 'e2e-2-pos-activated');

    // 3. Both lose the network. The phone makes a fresh code with no network at all.
    await phone.ctx.setOffline(true);
    await pos.ctx.setOffline(true);
    expect(await phone.page.evaluate(() => navigator.onLine)).toBe(false);
    await phone.page.evaluate(() => (window as unknown as { __duetWalletRefresh(): Promise<number> }).__duetWalletRefresh());
    const qr = phone.page.locator(D('wallet-qr'));
    const shownText = (await qr.getAttribute('data-code')) ?? '';
    expect(shownText).toMatch(/^DU1:/);
    await snap(phone.page, 'e2e-3-wallet-code-offline');

    // The phone's pixels: a screenshot of the whole phone screen, and (as a check on the picture,
    // not on the POS) the QR element's own pixels decode to exactly the code the page holds.
    const screen = await phone.page.screenshot();
    expect(decodeQR(decodePng(await qr.screenshot()))).toBe(shownText);

    // 4. The cashier types ¥12.50 and charges; the POS camera sees the phone's screen.
    await pos.page.evaluate(fakeCameraScript(`data:image/png;base64,${screen.toString('base64')}`));
    await pos.page.click(D('pos-key-clear'));
    for (const k of ['1', '2', 'dot', '5', '0']) await pos.page.click(D(`pos-key-${k}`));
    expect(await pos.page.locator(D('pos-amount')).textContent()).toContain('12.50');
    await pos.page.click(D('pos-charge'));
    await pos.page.waitForSelector(D('pos-waiting'));
    await snap(pos.page, 'e2e-4-pos-waiting-for-scan');
    await pos.page.click(D('pos-camera'));
    const decision = pos.page.locator(D('pos-decision'));
    await decision.waitFor({ timeout: 20_000 });
    expect(await decision.getAttribute('data-accepted')).toBe('true');
    expect(await decision.getAttribute('data-path')).toBe('offline');
    expect(await decision.textContent()).toContain('12.50');
    await snap(pos.page, 'e2e-5-pos-accepted-offline');
    await pos.page.click(D('pos-decision'));
    await pos.page.waitForSelector(D('pos-keypad'));
    expect(await pos.page.locator(D('pos-queue')).getAttribute('data-waiting')).toBe('1');
    expect(await t.demo.platform.db.one('SELECT COUNT(*) AS n FROM records WHERE terminal_id = ?', [terminal.id])).toMatchObject({ n: 0 });
    await snap(pos.page, 'e2e-6-pos-queue-offline');

    // 5. Back online: the record uploads by itself and the queue empties.
    await pos.ctx.setOffline(false);
    await phone.ctx.setOffline(false);
    await pos.page.waitForSelector(`${D('pos-queue')}[data-waiting="0"]`, { timeout: 45_000 });
    const row = await t.demo.platform.db.one('SELECT COUNT(*) AS n, SUM(amount) AS fen FROM records WHERE terminal_id = ?', [terminal.id]);
    expect({ n: Number(row?.n), fen: Number(row?.fen) }).toEqual({ n: 1, fen: AMOUNT_FEN });
    await snap(pos.page, 'e2e-7-pos-uploaded');

    // 6. Clearing settles it: the platform's history says so, and the console shows it settled.
    const client = new PlatformClient(t.demo.url, nodeCrypto());
    const { token } = (await client.call('POST', '/v1/staff/login', { json: { username: 'admin', password: t.demo.password } })) as {
      token: string;
    };
    await expect
      .poll(
        async () => {
          const h = (await client.call('GET', `/v1/holders/${holder}/history`, { token })) as {
            items: { kind: string; amountFen: number; state: string }[];
          };
          return h.items.some((i) => i.kind === 'offline_payment' && i.amountFen === -AMOUNT_FEN && i.state === 'settled');
        },
        { timeout: 30_000, interval: 300 },
      )
      .toBe(true);
    const operator = await context({ width: 1280, height: 900 });
    await operator.page.goto(`${t.demo.url}/console/`);
    await operator.page.fill('input[name=username]', 'admin');
    await operator.page.fill('input[name=password]', t.demo.password);
    await operator.page.click('[data-testid=signin-submit]');
    await operator.page.waitForSelector(D('dashboard-ready'), { timeout: 30_000 });
    await snap(operator.page, 'e2e-8-console-dashboard');
    await operator.page.goto(`${t.demo.url}/console/#/holders/${holder}`);
    await operator.page.waitForSelector(`${D('history-item')}[data-state="settled"][data-amount="${-AMOUNT_FEN}"]`, { timeout: 20_000 });
    await snap(operator.page, 'e2e-9-console-holder-settled');

    // 7. The student's wallet shows the payment settled too.
    await phone.page.waitForSelector(D('wallet-ready'));
    await phone.page.click(D('tab-history'));
    await phone.page.waitForSelector(`${D('history-row')}[data-state="settled"][data-amount="${-AMOUNT_FEN}"]`, { timeout: 20_000 });
    await snap(phone.page, 'e2e-10-wallet-history-settled');

    expect([...phone.errors, ...pos.errors, ...operator.errors]).toEqual([]);
  }, 180_000);
});
