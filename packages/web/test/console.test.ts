/**
 * The operator console in Chromium against the real demo campus: sign-in, the live dashboard with
 * figures from real terminal traffic, both languages, holders and their actions, the policy
 * preview before saving, clearing flags with their evidence, the ledger audit, and what each role
 * may see.
 */
import { readFileSync } from 'node:fs';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HAVE_CHROMIUM, launchBrowser, snap, startTestDemo, type TestDemo, watchErrors } from './browser.js';
import { ApiFailure, failureWords } from '../app/console/api.js';
import { parseIntInput, parseYuanInput } from '../app/console/input.js';
import { lang } from '../app/shared/i18n.js';
import { api, makeTraffic, staffToken, type Traffic } from './console-fixture.js';

const PASSWORD = 'duet-demo-2026';

describe('what people type on the console', () => {
  it('parses yuan as text into integer fen (no float rounding), refusing anything else or out of bounds', () => {
    expect(parseYuanInput('0.29')).toBe(29);
    expect(parseYuanInput('12.5')).toBe(1_250);
    expect(parseYuanInput(' 150 ')).toBe(15_000);
    expect(parseYuanInput('1000000')).toBe(100_000_000);
    for (const bad of ['', '1.234', '-1', '1e3', '12,50', '¥5', '1000000.01', '0x10', '.5'])
      expect(parseYuanInput(bad), bad).toBeUndefined();
    expect(parseYuanInput('10.01', 1_000)).toBeUndefined();
  });

  it('parses whole numbers within bounds only', () => {
    expect(parseIntInput('2026000001', 1, 2 ** 48)).toBe(2_026_000_001);
    for (const bad of ['0', '-3', '1.5', '', '9999999999999999', 'abc']) expect(parseIntInput(bad, 1, 2 ** 48), bad).toBeUndefined();
  });

  it('shows the platform’s words for an error (in the current language) and keeps its detail', () => {
    const zh = lang() === 'zh';
    const invalid = new ApiFailure(
      'validation_failed',
      'A field is missing or out of range',
      '字段缺失或超出范围',
      400,
      'perPaymentCapFen',
    );
    expect(failureWords(invalid)).toBe(`${zh ? '字段缺失或超出范围' : 'A field is missing or out of range'} (perPaymentCapFen)`);
    const forbidden = new ApiFailure('forbidden', 'Not allowed for your role', '当前角色无权执行此操作', 403);
    expect(failureWords(forbidden)).toBe(zh ? '当前角色无权执行此操作' : 'Not allowed for your role');
  });
});

describe.skipIf(!HAVE_CHROMIUM)('the operator console', () => {
  let t: TestDemo;
  let browser: Browser;
  let traffic: Traffic;
  let admin: string;
  const contexts: BrowserContext[] = [];

  beforeAll(async () => {
    t = await startTestDemo({ holders: 30 });
    browser = await launchBrowser();
    traffic = await makeTraffic(t, 2026000001);
    admin = await staffToken(t.demo.url, 'admin', PASSWORD);
  }, 60_000);
  afterAll(async () => {
    for (const c of contexts) await c.close().catch(() => undefined);
    await browser?.close();
    await t?.close();
  });

  async function newPage(): Promise<{ page: Page; errors: string[] }> {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'zh-CN' });
    contexts.push(ctx);
    const page = await ctx.newPage();
    return { page, errors: watchErrors(page) };
  }

  /** Opens the console already signed in as `username` (the session stored as the benchmark stores it). */
  async function openAs(username: string, hash: string): Promise<{ page: Page; errors: string[]; session: { token: string } }> {
    const { page, errors } = await newPage();
    const res = await fetch(`${t.demo.url}/v1/staff/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username, password: PASSWORD }),
    });
    const text = await res.text();
    await page.goto(`${t.demo.url}/console/`);
    await page.evaluate((s) => localStorage.setItem('duet.console.session', s), text);
    await page.goto(`${t.demo.url}/console/#/${hash}`);
    await page.reload();
    return { page, errors, session: JSON.parse(text) as { token: string } };
  }

  const navItems = (page: Page) => page.locator('[data-testid=nav] a').evaluateAll((as) => as.map((a) => a.getAttribute('data-nav')));

  it('signs in: a wrong password shows the platform’s words, the right one stores the session and opens the dashboard', async () => {
    const { page, errors } = await newPage();
    await page.goto(`${t.demo.url}/console/#/dashboard`);
    await page.fill('input[name=username]', 'admin');
    await page.fill('input[name=password]', 'not-the-password');
    await page.click('[data-testid=signin-submit]');
    await expect.poll(() => page.locator('[data-testid=error]').textContent()).toContain('账号或密码错误');
    expect(await page.evaluate(() => localStorage.getItem('duet.console.session'))).toBeNull();
    await snap(page, 'console-signin-error-zh');
    await page.fill('input[name=password]', PASSWORD);
    await page.click('[data-testid=signin-submit]');
    await page.waitForSelector('[data-testid=dashboard-ready]', { timeout: 15_000 });
    const stored = JSON.parse((await page.evaluate(() => localStorage.getItem('duet.console.session'))) ?? '{}') as Record<string, unknown>;
    expect(Object.keys(stored).sort()).toEqual(['expiresAt', 'role', 'token']);
    expect(stored.role).toBe('operator_admin');
    expect(await navItems(page)).toEqual([
      'dashboard',
      'holders',
      'terminals',
      'deny',
      'policy',
      'clearing',
      'recovery',
      'statements',
      'ledger',
    ]);
    expect(errors).toEqual([]);
  });

  it('the dashboard shows the platform’s own figures from real terminal traffic, and the ready marker', async () => {
    // Clearing runs in the background every 300 ms: wait for it to have flagged the replay.
    await expect
      .poll(
        async () => ((await api(t.demo.url, admin, 'GET', '/v1/dashboard')) as { clearing: { openFlags: number } }).clearing.openFlags,
        {
          timeout: 15_000,
        },
      )
      .toBeGreaterThan(0);
    const { page, errors } = await openAs('admin', 'dashboard');
    await page.waitForSelector('[data-testid=dashboard-ready]', { timeout: 15_000 });
    const d = (await api(t.demo.url, admin, 'GET', '/v1/dashboard')) as {
      today: { count: number };
      terminalsOnline: number;
      terminalsOffline: number;
      recordsWaiting: number;
      clearing: { openFlags: number };
      arrears: { holders: number };
      alerts: { id: string; kind: string }[];
      paymentsPerMinute: { count: number }[];
    };
    expect(d.today.count).toBe(traffic.payments);
    expect(d.terminalsOnline).toBe(2);
    expect(d.recordsWaiting).toBe(1);
    const tile = (id: string) => page.locator(`[data-testid=${id}] .tile-value`).textContent();
    expect(await tile('tile-today')).toBe(String(d.today.count));
    expect(await tile('tile-terminals')).toBe(`${d.terminalsOnline} / ${d.terminalsOnline + d.terminalsOffline}`);
    expect(await tile('tile-waiting')).toBe('1');
    expect(await tile('tile-flags')).toBe(String(d.clearing.openFlags));
    expect(await page.locator('[data-testid=tile-today] .tile-sub').textContent()).toBe(`¥${(traffic.paidFen / 100).toFixed(2)}`);
    // One bar per minute, and the bars' counts add up to the payments the platform holds.
    expect(await page.locator('[data-testid=ppm-chart] rect.bar').count()).toBe(d.paymentsPerMinute.length);
    const dashTerminals = page.locator('[data-testid=dash-terminals] tbody tr');
    expect(await dashTerminals.count()).toBe(17);
    expect(await page.locator('[data-testid=dash-terminals] tr[data-terminal="1"] .dot.on').count()).toBe(1);
    // The replay shows as an alert leading to its evidence.
    const replay = d.alerts.find((a) => a.kind === 'replay');
    expect(replay).toBeDefined();
    const link = page.locator('[data-testid=alerts] a', { hasText: '证据' }).first();
    expect(await link.getAttribute('href')).toBe(`#/clearing/${replay?.id.replace('clearing-', '')}`);
    await snap(page, 'console-dashboard-zh');
    await link.click();
    await page.waitForSelector('[data-testid=evidence-first-use]');
    expect(errors).toEqual([]);
  });

  it('switches language: the visible words change and stay switched', async () => {
    const { page, errors } = await openAs('admin', 'dashboard');
    await page.waitForSelector('[data-testid=dashboard-ready]');
    expect(await page.locator('[data-testid=nav]').textContent()).toContain('总览');
    expect(await page.locator('[data-testid=tile-today] .tile-label').textContent()).toBe('今日支付');
    await page.click('[data-testid=lang-switch]');
    expect(await page.locator('[data-testid=nav]').textContent()).toContain('Dashboard');
    expect(await page.locator('[data-testid=nav]').textContent()).not.toContain('总览');
    expect(await page.locator('[data-testid=tile-today] .tile-label').textContent()).toBe('Payments today');
    await snap(page, 'console-dashboard-en');
    await page.reload();
    await page.waitForSelector('[data-testid=dashboard-ready]');
    expect(await page.locator('[data-testid=tile-today] .tile-label').textContent()).toBe('Payments today');
    expect(errors).toEqual([]);
  });

  it('shows a holder with agreement, purses, devices and credentials as the platform holds them', async () => {
    const id = traffic.holderId;
    const h = (await api(t.demo.url, admin, 'GET', `/v1/holders/${id}`)) as { purses: { cash: number; subsidy: number } };
    const { page, errors } = await openAs('admin', 'holders');
    await page.waitForSelector(`[data-testid=holders] a[href="#/holders/${id}"]`);
    await page.click(`[data-testid=holders] a[href="#/holders/${id}"]`);
    await page.waitForSelector('[data-testid=holder-detail]');
    const yuanOf = (f: number) => `¥${Math.trunc(f / 100)}.${String(f % 100).padStart(2, '0')}`;
    expect(await page.locator('[data-purse=cash]').textContent()).toBe(yuanOf(h.purses.cash));
    expect(await page.locator('[data-purse=subsidy]').textContent()).toBe(yuanOf(h.purses.subsidy));
    expect(await page.locator('[data-testid=agreement]').textContent()).toContain('第 1 版');
    expect(await page.locator('[data-testid=devices] tbody tr').count()).toBe(1);
    expect(await page.locator('[data-testid=credentials] tr[data-credential-status=active]').count()).toBe(1);
    expect(await page.locator('[data-testid=history] tbody tr').count()).toBeGreaterThan(0);
    await snap(page, 'console-holder-zh');
    expect(errors).toEqual([]);
  });

  it('blocks a holder only with a reason, after confirming, then unblocks', async () => {
    const id = 2026000002;
    const { page, errors } = await openAs('admin', `holders/${id}`);
    await page.waitForSelector('[data-testid=holder-detail]');
    await page.click('[data-testid=block]');
    expect(await page.locator('[data-testid=confirm-ok]').isDisabled()).toBe(true);
    await page.fill('[data-testid=confirm-reason]', 'card found at the gate, checking');
    await page.click('[data-testid=confirm-ok]');
    await expect.poll(() => page.locator('[data-testid=holder-status]').textContent()).toContain('已冻结');
    const blocked = (await api(t.demo.url, admin, 'GET', `/v1/holders/${id}`)) as { holder: { status: string; blockReason: string } };
    expect(blocked.holder).toMatchObject({ status: 'blocked', blockReason: 'card found at the gate, checking' });
    const deny = (await api(t.demo.url, admin, 'GET', '/v1/deny-entries')) as { entries: { type: string; id: number }[] };
    expect(deny.entries.some((e) => e.type === 'holder' && e.id === id)).toBe(true);
    await page.click('[data-testid=unblock]');
    await page.fill('[data-testid=confirm-reason]', 'owner confirmed');
    await page.click('[data-testid=confirm-ok]');
    await expect.poll(() => page.locator('[data-testid=holder-status]').textContent()).toContain('正常');
    expect(((await api(t.demo.url, admin, 'GET', `/v1/holders/${id}`)) as { holder: { status: string } }).holder.status).toBe('active');
    expect(errors).toEqual([]);
  });

  it('reports a lost card: the credentials are revoked and deny-listed and the page says so', async () => {
    const id = traffic.holderId;
    const { page, errors } = await openAs('admin', `holders/${id}`);
    await page.waitForSelector('[data-testid=credentials] tr[data-credential-status=active]');
    await page.click('[data-testid=lost-card]');
    await page.click('[data-testid=confirm-cancel]');
    expect(await page.locator('[data-testid=confirm]').count()).toBe(0);
    await page.click('[data-testid=lost-card]');
    await page.click('[data-testid=confirm-ok]');
    await expect.poll(() => page.locator('[data-testid=notice]').textContent()).toContain('吊销 1 个凭证');
    await page.waitForSelector('[data-testid=credentials] tr[data-credential-status=revoked]');
    expect(await page.locator('[data-testid=credentials] tr[data-credential-status=active]').count()).toBe(0);
    expect(await page.locator('[data-testid=devices] tbody').textContent()).toContain('已挂失');
    const h = (await api(t.demo.url, admin, 'GET', `/v1/holders/${id}`)) as { credentials: { status: string; serial: number }[] };
    expect(h.credentials.map((c) => c.status)).toEqual(['revoked']);
    const deny = (await api(t.demo.url, admin, 'GET', '/v1/deny-entries')) as { entries: { type: string; id: number; reason: string }[] };
    expect(deny.entries.some((e) => e.type === 'credential' && e.id === h.credentials[0]?.serial)).toBe(true);
    await snap(page, 'console-lost-card-zh');
    expect(errors).toEqual([]);
  });

  it('shows the worst-case offline loss per holder before saving, and saving publishes the policy', async () => {
    const before = (await api(t.demo.url, admin, 'GET', '/v1/settings')) as { version: number; settings: Record<string, unknown> };
    const { page, errors } = await openAs('admin', 'policy');
    await page.click('[data-testid=lang-switch]');
    await page.waitForSelector('[data-testid=policy-form]');
    expect(await page.locator('[data-testid=policy-save]').isDisabled()).toBe(true);
    await page.fill('input[name=offlineTotalCapFen]', '150');
    await page.click('[data-testid=policy-preview]');
    await page.waitForSelector('[data-testid=worst-total]');
    const expected = (await api(t.demo.url, admin, 'POST', '/v1/settings/preview', {
      settings: { ...before.settings, offlineTotalCapFen: 15_000 },
    })) as { worstCase: { totalFen: number } };
    expect(await page.locator('[data-testid=worst-total]').textContent()).toBe(`¥${(expected.worstCase.totalFen / 100).toFixed(2)}`);
    expect(await page.locator('[data-testid=policy-changes]').textContent()).toContain('¥200.00');
    expect(await page.locator('[data-testid=policy-changes]').textContent()).toContain('¥150.00');
    // An edit after the preview disables saving until previewed again.
    await page.fill('input[name=offlineTotalCapFen]', '140');
    expect(await page.locator('[data-testid=policy-save]').isDisabled()).toBe(true);
    await page.fill('input[name=offlineTotalCapFen]', '150');
    expect(await page.locator('[data-testid=policy-save]').isDisabled()).toBe(false);
    await snap(page, 'console-policy-preview-en');
    await page.click('[data-testid=policy-save]');
    await page.waitForSelector('[data-testid=policy-saved]');
    const after = (await api(t.demo.url, admin, 'GET', '/v1/settings')) as { version: number; settings: { offlineTotalCapFen: number } };
    expect(after.version).toBe(before.version + 1);
    expect(after.settings.offlineTotalCapFen).toBe(15_000);
    expect(await page.locator('[data-testid=policy-saved]').textContent()).toContain(`version ${after.version}`);
    expect(errors).toEqual([]);
  });

  it('runs clearing, lists the replay flag, shows both records as evidence and resolves it with a note', async () => {
    const { page, errors } = await openAs('admin', 'clearing');
    await page.waitForSelector('[data-testid=clearing-status]');
    await page.click('[data-testid=clearing-run]');
    await page.waitForSelector('[data-testid=clearing-ran]');
    await page.waitForSelector('[data-testid=flags]');
    const row = page.locator('[data-testid=flags] tbody tr', { hasText: 'replay' }).first();
    const flagId = await row.getAttribute('data-flag');
    await row.locator('a').first().click();
    await page.waitForSelector('[data-testid=evidence-record]');
    const [a, b] = traffic.terminals;
    expect(await page.locator('[data-testid=evidence-record]').textContent()).toContain(String(b?.id));
    expect(await page.locator('[data-testid=evidence-first-use]').textContent()).toContain(String(a?.id));
    await snap(page, 'console-flag-evidence-zh');
    await page.fill('[data-testid=resolve-note]', 'the same code at two windows; payer charged once');
    await page.click('[data-testid=resolve]');
    await expect.poll(() => page.locator('[data-testid=flag-state]').textContent()).toContain('payer charged once');
    const flag = (await api(t.demo.url, admin, 'GET', `/v1/clearing/flags/${flagId}`)) as { resolvedBy: string | null };
    expect(flag.resolvedBy).toBe('admin');
    expect(errors).toEqual([]);
  });

  it('shows the ledger audit with every check passing', async () => {
    const { page, errors } = await openAs('finance', 'ledger');
    await page.waitForSelector('[data-testid=audit]', { timeout: 20_000 });
    const statuses = await page.locator('ul.checks li').evaluateAll((li) => li.map((l) => l.getAttribute('data-status')));
    expect(statuses.length).toBe(5);
    expect(statuses.every((s) => s === 'passed')).toBe(true);
    expect(await page.locator('[data-testid=audit-result]').textContent()).toContain('全部检查通过');
    await snap(page, 'console-ledger-zh');
    expect(errors).toEqual([]);
  });

  it('the operator seals and signs a root; it is listed and the audit still passes', async () => {
    const { page, errors } = await openAs('admin', 'ledger');
    await page.waitForSelector('[data-testid=audit]', { timeout: 20_000 });
    expect(await page.locator('[data-testid=roots]').count()).toBe(0);
    await page.click('[data-testid=close-root]');
    await page.waitForSelector('[data-testid=roots] tbody tr', { timeout: 20_000 });
    const roots = (await api(t.demo.url, admin, 'GET', '/v1/ledger/roots')) as { roots: { id: number; lastPosition: number }[] };
    expect(await page.locator('[data-testid=roots] tbody tr').count()).toBe(roots.roots.length);
    expect(roots.roots.length).toBeGreaterThan(0);
    await expect.poll(() => page.locator('ul.checks li[data-status=passed]').count(), { timeout: 20_000 }).toBe(5);
    expect(errors).toEqual([]);
  });

  it('school finance sees money but not terminal registration, blocking or saving the policy', async () => {
    const { page, errors } = await openAs('finance', 'dashboard');
    await page.waitForSelector('[data-testid=dashboard-ready]');
    expect(await navItems(page)).toEqual(['dashboard', 'holders', 'policy', 'clearing', 'recovery', 'statements', 'ledger']);
    await page.goto(`${t.demo.url}/console/#/terminals`);
    await page.waitForSelector('[data-testid=error]');
    expect(await page.locator('[data-testid=register-terminal]').count()).toBe(0);
    await page.goto(`${t.demo.url}/console/#/holders/2026000003`);
    await page.waitForSelector('[data-testid=holder-detail]');
    expect(await page.locator('[data-testid=block]').count()).toBe(0);
    expect(await page.locator('[data-testid=form-subsidy]').count()).toBe(1);
    const before = (await api(t.demo.url, admin, 'GET', '/v1/holders/2026000003')) as { purses: { subsidy: number } };
    await page.fill('[data-testid=form-subsidy] input', '12.5');
    await page.click('[data-testid=form-subsidy] button[type=submit]');
    await page.waitForSelector('[data-testid=notice]');
    const after = (await api(t.demo.url, admin, 'GET', '/v1/holders/2026000003')) as { purses: { subsidy: number } };
    expect(after.purses.subsidy).toBe(before.purses.subsidy + 1_250);
    await expect.poll(() => page.locator('[data-purse=subsidy]').textContent()).toBe(`¥${(after.purses.subsidy / 100).toFixed(2)}`);
    await page.goto(`${t.demo.url}/console/#/policy`);
    await page.waitForSelector('[data-testid=policy-form]');
    expect(await page.locator('[data-testid=policy-save]').count()).toBe(0);
    await page.goto(`${t.demo.url}/console/#/clearing`);
    await page.waitForSelector('[data-testid=clearing-status]');
    expect(await page.locator('[data-testid=clearing-run]').count()).toBe(0);
    expect(errors).toEqual([]);
  });

  it('a merchant sees only its own terminals, dashboard and statements', async () => {
    const { page, errors } = await openAs('merchant1', 'dashboard');
    await page.waitForSelector('[data-testid=dashboard-ready]');
    expect(await navItems(page)).toEqual(['dashboard', 'terminals', 'statements']);
    const own = t.demo.terminals.filter((x) => x.merchantId === 1).map((x) => String(x.id));
    const dash = await page
      .locator('[data-testid=dash-terminals] tbody tr')
      .evaluateAll((rows) => rows.map((r) => r.getAttribute('data-terminal')));
    expect(dash).toEqual(own);
    expect(await page.locator('[data-testid=tile-arrears]').count()).toBe(0);
    await page.goto(`${t.demo.url}/console/#/terminals`);
    await page.waitForSelector('[data-testid=terminals]');
    const merchants = await page
      .locator('[data-testid=terminals] tbody tr')
      .evaluateAll((rows) => rows.map((r) => r.getAttribute('data-merchant')));
    expect(merchants.length).toBe(own.length);
    expect(new Set(merchants)).toEqual(new Set(['1']));
    // The live state beside each: the two terminals of the traffic are online, one record waiting at the second.
    expect(await page.locator('[data-testid=terminals] tr[data-terminal="1"] .dot.on').count()).toBe(1);
    expect(await page.locator('[data-testid=terminals] tr[data-terminal="2"] td.num').textContent()).toBe('1');
    expect(await page.locator('[data-testid=register-terminal]').count()).toBe(0);
    await page.goto(`${t.demo.url}/console/#/statements`);
    await page.waitForSelector('[data-testid=statement-days]');
    const days = await page
      .locator('[data-testid=statement-days] tbody tr')
      .evaluateAll((rows) => rows.map((r) => r.getAttribute('data-merchant')));
    expect(days.length).toBeGreaterThan(0);
    expect(new Set(days)).toEqual(new Set(['1']));
    await snap(page, 'console-merchant-statements-zh');
    expect(errors).toEqual([]);
  });

  it('registers a terminal and shows its one-time code, link and QR code', async () => {
    const { page, errors } = await openAs('admin', 'terminals');
    await page.waitForSelector('[data-testid=register-terminal]');
    await page.fill('[data-testid=register-terminal] input[name=location]', 'Test window / 测试窗口');
    await page.click('[data-testid=register-terminal] button[type=submit]');
    await page.waitForSelector('[data-testid=activation]');
    const code = (await page.locator('[data-testid=activation-code]').textContent()) ?? '';
    expect(code).toMatch(/^[A-Z2-9]{5}(-[A-Z2-9]{5}){3}$/);
    expect(await page.locator('[data-testid=activation-link]').getAttribute('href')).toBe(`/pos/#activate=${code}`);
    expect(await page.locator('[data-testid=activation-qr] path').count()).toBe(1);
    await snap(page, 'console-terminal-registered-zh');
    // A new code for the same terminal replaces the shown one.
    const id = (await page.locator('[data-testid=activation] h3').textContent())?.match(/#(\d+)/)?.[1];
    await page.click('[data-testid=activation] button');
    await page.click(`[data-testid=reissue-${id}]`);
    await page.waitForSelector('[data-testid=activation-code]');
    const again = (await page.locator('[data-testid=activation-code]').textContent()) ?? '';
    expect(again).toMatch(/^[A-Z2-9]{5}(-[A-Z2-9]{5}){3}$/);
    expect(again).not.toBe(code);
    expect(errors).toEqual([]);
  });

  it('adds a card to the deny list and removes it again with a reason', async () => {
    const { page, errors } = await openAs('admin', 'deny');
    await page.waitForSelector('[data-testid=deny-entries]');
    await page.selectOption('[data-testid=deny-add] select', 'card');
    await page.fill('[data-testid=deny-add] input >> nth=0', '88001234');
    await page.fill('[data-testid=deny-add] input >> nth=1', 'card reported stolen');
    await page.click('[data-testid=deny-add] button[type=submit]');
    const row = page.locator('[data-testid=deny-entries] tbody tr', { hasText: '88001234' });
    await row.waitFor();
    const listed = (await api(t.demo.url, admin, 'GET', '/v1/deny-entries')) as { entries: { type: string; id: number; reason: string }[] };
    expect(listed.entries).toContainEqual(expect.objectContaining({ type: 'card', id: 88001234, reason: 'card reported stolen' }));
    await row.locator('button').click();
    await page.fill('[data-testid=confirm-reason]', 'card found');
    await page.click('[data-testid=confirm-ok]');
    await expect.poll(() => row.count()).toBe(0);
    const after = (await api(t.demo.url, admin, 'GET', '/v1/deny-entries')) as { entries: { type: string; id: number }[] };
    expect(after.entries.some((e) => e.type === 'card' && e.id === 88001234)).toBe(false);
    expect(errors).toEqual([]);
  });

  it('lists arrears cases and clearance, makes a collection export and downloads its CSV', async () => {
    const { page, errors } = await openAs('finance', 'recovery');
    await page.waitForSelector('[data-testid=cases] tbody tr');
    const cases = (await api(t.demo.url, admin, 'GET', '/v1/recovery/cases')) as { cases: unknown[] };
    expect(await page.locator('[data-testid=cases] tbody tr').count()).toBe(cases.cases.length);
    const clearance = (await api(t.demo.url, admin, 'GET', '/v1/recovery/clearance')) as { totals: { holders: number; owedFen: number } };
    expect(await page.locator('[data-testid=clearance-total]').textContent()).toContain(`¥${(clearance.totals.owedFen / 100).toFixed(2)}`);
    await page.click('[data-testid=export-create]');
    await page.waitForSelector('[data-testid=exports] tbody tr');
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.locator('[data-testid=exports] button', { hasText: 'CSV' }).first().click(),
    ]);
    expect(download.suggestedFilename()).toMatch(/^collection-\d+\.csv$/);
    const path = await download.path();
    expect(readFileSync(path, 'utf8').split('\n')[0]?.length).toBeGreaterThan(10);
    await snap(page, 'console-recovery-zh');
    expect(errors).toEqual([]);
  });

  it('after sign-out the old session answers 401 and a dead session returns to sign-in', async () => {
    const { page, errors, session } = await openAs('admin', 'dashboard');
    await page.waitForSelector('[data-testid=dashboard-ready]');
    await page.click('[data-testid=signout]');
    await page.waitForSelector('[data-testid=signin]');
    expect(await page.evaluate(() => localStorage.getItem('duet.console.session'))).toBeNull();
    const res = await fetch(`${t.demo.url}/v1/dashboard`, { headers: { authorization: `Bearer ${session.token}` } });
    expect(res.status).toBe(401);
    // The same dead session put back: the first call answers 401 and the console asks to sign in again.
    await page.evaluate((s) => localStorage.setItem('duet.console.session', s), JSON.stringify(session));
    await page.reload();
    await page.waitForSelector('[data-testid=signin]');
    expect(await page.locator('[data-testid=error]').textContent()).toContain('请先登录');
    expect(await page.evaluate(() => localStorage.getItem('duet.console.session'))).toBeNull();
    expect(errors).toEqual([]);
  });
});
