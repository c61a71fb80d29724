/**
 * Web benchmarks (issue 6), in Debian's Chromium driven by playwright-core against the demo campus
 * on loopback, each beside a floor measured in the same run and the same browser:
 * - console_first_load_ms: a cold browser (no cache, no service worker) opening the console until
 *   the dashboard shows its first data; floor: the same browser loading one small static file.
 * - wallet_refresh_ms: making a fresh code and painting its QR; floor: one WebCrypto P-256 signature.
 * - pos_decision_ms_browser: an offline decision in the POS page, from the scanned text to the
 *   stored record; floor: the two WebCrypto P-256 verifications every decision needs.
 * - bundle_kb: each app's files as served (and gzipped), from the build.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { DEMO_PASSWORD, enrolledWallet, startDemo, WEB_APPS, WEB_DIST } from '@duet/web';
import { chromium, type Page } from 'playwright-core';
import { round3 } from './measure.js';

const CHROMIUM = process.env.DUET_CHROMIUM ?? '/usr/bin/chromium';
const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

interface Pct {
  p50: number;
  p99: number;
  max: number;
}

function percentiles(samples: number[]): Pct {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number): number => round3(s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? 0);
  return { p50: at(0.5), p99: at(0.99), max: round3(s[s.length - 1] ?? 0) };
}

export function bundleSizes(dir: string = WEB_DIST): Record<string, { kb: number; gzip_kb: number }> {
  const out: Record<string, { kb: number; gzip_kb: number }> = {};
  for (const app of WEB_APPS) {
    let raw = 0;
    let gz = 0;
    for (const f of readdirSync(join(dir, app))) {
      const p = join(dir, app, f);
      if (f.endsWith('.map') || f.endsWith('.txt') || !statSync(p).isFile()) continue;
      const body = readFileSync(p);
      raw += body.length;
      gz += gzipSync(body, { level: 9 }).length;
    }
    out[app] = { kb: round3(raw / 1024), gzip_kb: round3(gz / 1024) };
  }
  return out;
}

/**
 * Milliseconds per WebCrypto P-256 operation in the page (`verify2`: a pair of verifications), each
 * sample the mean of a batch of 10, because the page's clock ticks in 0.1 ms steps.
 */
async function pageCryptoFloor(page: Page, op: 'sign' | 'verify2', n: number): Promise<number[]> {
  return page.evaluate(
    async ({ op, n }) => {
      const alg = { name: 'ECDSA', namedCurve: 'P-256' } as const;
      const k = await crypto.subtle.generateKey(alg, false, ['sign', 'verify']);
      const msg = crypto.getRandomValues(new Uint8Array(150));
      const sig = await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, k.privateKey, msg);
      const out: number[] = [];
      for (let i = 0; i < Math.max(20, Math.ceil(n / 10)); i++) {
        const t = performance.now();
        for (let j = 0; j < 10; j++) {
          if (op === 'sign') await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, k.privateKey, msg);
          else {
            await crypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, k.publicKey, sig, msg);
            await crypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, k.publicKey, sig, msg);
          }
        }
        out.push((performance.now() - t) / 10);
      }
      return out;
    },
    { op, n },
  );
}

export async function benchWeb(o: { loads: number; refreshes: number; decisions: number }, progress: (m: string) => void) {
  const dir = mkdtempSync(join(tmpdir(), 'duet-bench-web-'));
  progress('web: demo campus on loopback, Chromium');
  const demo = await startDemo({ dataDir: dir, port: 0, holders: 60 });
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS });
  try {
    const url = demo.url;
    // Console: a cold context each time (no HTTP cache, no service worker).
    progress(`web: console first load ×${o.loads}`);
    const login = await fetch(`${url}/v1/staff/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'admin', password: DEMO_PASSWORD }),
    });
    const session = (await login.json()) as Record<string, unknown>;
    const loads: number[] = [];
    const floors: number[] = [];
    for (let i = 0; i < o.loads; i++) {
      const ctx = await browser.newContext();
      await ctx.addInitScript((s) => localStorage.setItem('duet.console.session', s), JSON.stringify(session));
      const page = await ctx.newPage();
      let t = performance.now();
      await page.goto(`${url}/console/icon.svg`);
      floors.push(performance.now() - t);
      t = performance.now();
      await page.goto(`${url}/console/#/dashboard`);
      await page.waitForSelector('[data-testid="dashboard-ready"]', { timeout: 30_000 });
      loads.push(performance.now() - t);
      await ctx.close();
    }

    progress(`web: wallet code refresh ×${o.refreshes}`);
    const wctx = await browser.newContext({ viewport: { width: 390, height: 844 } });
    const wallet = await wctx.newPage();
    await wallet.goto(`${url}/wallet/`);
    await signInWallet(wallet, demo.holders.first, DEMO_PASSWORD);
    const refresh: number[] = [];
    for (let i = 0; i < o.refreshes; i++) {
      refresh.push(await wallet.evaluate(() => (window as unknown as { __duetWalletRefresh(): Promise<number> }).__duetWalletRefresh()));
    }
    const signFloor = await pageCryptoFloor(wallet, 'sign', o.refreshes);
    await wctx.close();

    progress(`web: POS offline decisions ×${o.decisions}`);
    const terminal = demo.terminals.find((x) => x.activationCode !== undefined);
    if (terminal?.activationCode === undefined) throw new Error('no terminal waiting for activation in the demo');
    const pctx = await browser.newContext();
    const pos = await pctx.newPage();
    await pos.goto(`${url}/pos/#activate=${terminal.activationCode}`);
    await pos.waitForSelector('[data-testid="pos-keypad"]', { timeout: 30_000 });
    // Several phones, a few codes each, so every decision is a full acceptance (one phone would
    // soon meet its offline limits and measure declines instead).
    const texts: string[] = [];
    const perPhone = 5;
    const phones = Math.min(demo.holders.withPassword - 1, Math.ceil((o.decisions + 5) / perPhone));
    // Holders the demo put in arrears get no credential: the next holder stands in.
    for (let h = demo.holders.first + 1, enrolled = 0; enrolled < phones && h < demo.holders.first + demo.holders.withPassword; h++) {
      const phone = await enrolledWallet(url, h, DEMO_PASSWORD).catch(() => undefined);
      if (phone === undefined) continue;
      enrolled++;
      for (let i = 0; i < perPhone; i++) texts.push((await phone.nextCode()).text);
    }
    await pctx.setOffline(true);
    const decide: number[] = [];
    let accepted = 0;
    const declined: Record<string, number> = {};
    for (const [i, text] of texts.entries()) {
      const r = await pos.evaluate(
        ([t, a]) =>
          (
            window as unknown as { __duetPosDecide(t: string, a: number): Promise<{ ms: number; accepted: boolean; reason: string }> }
          ).__duetPosDecide(t, a),
        [text, 100] as const,
      );
      if (i >= 5) decide.push(r.ms); // the first few warm the page up
      if (r.accepted) accepted++;
      else declined[r.reason] = (declined[r.reason] ?? 0) + 1;
    }
    const verifyFloor = await pageCryptoFloor(pos, 'verify2', o.decisions);
    await pctx.close();

    const sizes = bundleSizes();
    return {
      console_first_load_ms: percentiles(loads),
      console_first_load_floor_ms: percentiles(floors),
      wallet_refresh_ms: percentiles(refresh),
      wallet_refresh_floor_ms: percentiles(signFloor),
      pos_decision_ms_browser: { ...percentiles(decide), accepted, decisions: texts.length, declined },
      pos_decision_floor_ms_browser: percentiles(verifyFloor),
      bundle_kb: Object.fromEntries(Object.entries(sizes).map(([k, v]) => [k, v.kb])),
      bundle_gzip_kb: Object.fromEntries(Object.entries(sizes).map(([k, v]) => [k, v.gzip_kb])),
    };
  } finally {
    await browser.close();
    await demo.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Signs the wallet page in and waits for its first code (the wallet app's own screens). */
async function signInWallet(page: Page, holderId: number, password: string): Promise<void> {
  await page.fill('[data-testid="wallet-holder"]', String(holderId));
  await page.fill('[data-testid="wallet-password"]', password);
  await page.click('[data-testid="wallet-login"]');
  const agree = page.locator('[data-testid="wallet-agree"]');
  await Promise.race([
    agree.waitFor({ timeout: 30_000 }).then(() => agree.click()),
    page.waitForSelector('[data-testid="wallet-ready"]', { timeout: 30_000 }),
  ]);
  await page.waitForSelector('[data-testid="wallet-ready"]', { timeout: 30_000 });
}
