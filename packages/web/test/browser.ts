/**
 * Browser tests' harness: Debian's Chromium driven by playwright-core (no browser download), and
 * the demo campus started exactly as `npm start` starts it, on a throwaway directory and port.
 * Screenshots go to artifacts/browser/ (kept by CI as test artefacts).
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';
import { type Demo, startDemo } from '../src/index.js';

export const CHROMIUM = process.env.DUET_CHROMIUM ?? '/usr/bin/chromium';
/** CI installs Chromium (.ci/run) and must never skip these tests; elsewhere they skip without it. */
export const HAVE_CHROMIUM = existsSync(CHROMIUM) || process.env.CI === 'true';

export const ARTIFACTS = join(import.meta.dirname, '../../../artifacts/browser');

export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--lang=zh-CN',
    ],
  });
}

export interface TestDemo {
  readonly demo: Demo;
  close(): Promise<void>;
}

/** The demo campus on a temporary directory and a free port. */
export async function startTestDemo(o: { holders?: number } = {}): Promise<TestDemo> {
  const dir = mkdtempSync(join(tmpdir(), 'duet-web-'));
  const demo = await startDemo({ dataDir: dir, port: 0, holders: o.holders ?? 30, clearingIntervalMs: 300 });
  return {
    demo,
    close: async () => {
      await demo.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Saves a screenshot under artifacts/browser/<name>.png and returns its path. */
export async function snap(page: Page, name: string): Promise<string> {
  mkdirSync(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

/** Fails the test on any uncaught page error or console error, collected per page. */
export function watchErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/Failed to load resource|net::ERR_INTERNET_DISCONNECTED/.test(m.text()))
      errors.push(`console: ${m.text()}`);
  });
  return errors;
}
