import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HAVE_CHROMIUM, launchBrowser, startTestDemo, type TestDemo, watchErrors } from './browser.js';

describe('the web apps are served by the demo platform', () => {
  let t: TestDemo;
  beforeAll(async () => {
    t = await startTestDemo({ holders: 5 });
  });
  afterAll(async () => {
    await t?.close();
  });

  it('mounts the built apps and leads / to the console', async () => {
    expect(t.demo.webMounted).toBe(true);
    const root = await fetch(`${t.demo.url}/`, { redirect: 'manual' });
    expect(root.status).toBe(302);
    expect(root.headers.get('location')).toBe('/console/');
    for (const app of ['console', 'wallet', 'pos']) {
      const page = await fetch(`${t.demo.url}/${app}/`);
      expect(page.status).toBe(200);
      expect(page.headers.get('content-type')).toMatch(/text\/html/);
      expect(page.headers.get('content-security-policy')).toMatch(/default-src 'self'/);
      const js = await fetch(`${t.demo.url}/${app}/app.js`);
      expect(js.headers.get('content-type')).toMatch(/javascript/);
      const again = await fetch(`${t.demo.url}/${app}/app.js`, { headers: { 'if-none-match': js.headers.get('etag') ?? '' } });
      expect(again.status).toBe(304);
      expect((await fetch(`${t.demo.url}/${app}/sw.js`)).status).toBe(200);
      expect((await fetch(`${t.demo.url}/${app}/manifest.webmanifest`)).headers.get('content-type')).toMatch(/manifest/);
    }
    expect((await fetch(`${t.demo.url}/wallet/../etc/passwd`)).status).toBe(404);
    expect((await fetch(`${t.demo.url}/pos/nothing.js`)).status).toBe(404);
  });

  it('prints fresh activation codes for terminals waiting, and keeps the campus across restarts', () => {
    expect(t.demo.created).toBe(true);
    expect(t.demo.terminals.length).toBe(17);
    expect(t.demo.terminals.every((x) => /^[A-Z2-9]{5}(-[A-Z2-9]{5}){3}$/.test(x.activationCode ?? ''))).toBe(true);
  });

  describe.skipIf(!HAVE_CHROMIUM)('in Chromium', () => {
    let browser: Browser;
    beforeAll(async () => {
      browser = await launchBrowser();
    });
    afterAll(async () => {
      await browser?.close();
    });

    it('each app loads without an error and installs its service worker', async () => {
      for (const app of ['console', 'wallet', 'pos']) {
        const ctx = await browser.newContext();
        const page = await ctx.newPage();
        const errors = watchErrors(page);
        await page.goto(`${t.demo.url}/${app}/`);
        await page.waitForFunction(
          () => navigator.serviceWorker.controller !== null || navigator.serviceWorker.ready.then(() => true),
          null,
          {
            timeout: 10_000,
          },
        );
        await page.waitForFunction(async () => (await navigator.serviceWorker.getRegistration())?.active !== undefined);
        expect(await page.locator('header.top').count()).toBe(1);
        expect(errors).toEqual([]);
        await ctx.close();
      }
    });
  });
});
