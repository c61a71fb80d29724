/**
 * Issue 4's "done when": a headless wallet and terminal enrol against a real `duet serve` process
 * (its own process, real HTTP, SQLite) and pay, offline and online; records upload and are held.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callApi } from './api.js';

const bin = join(import.meta.dirname, '../dist/main.js');
const cwd = mkdtempSync(join(tmpdir(), 'duet-platform-headless-'));
const env = { ...process.env, DUET_KEY_PASSPHRASE: 'headless-test-passphrase', DUET_ADMIN_PASSWORD: 'admin-password-1' };
let server: ChildProcess | undefined;
let url = '';

beforeAll(async () => {
  server = spawn(process.execPath, [bin, 'serve', '--port', '0', '--data', join(cwd, 'platform'), '--quiet'], {
    cwd,
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  url = await new Promise<string>((resolve, reject) => {
    let err = '';
    server?.stderr?.on('data', (d: Buffer) => {
      err += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(err);
      if (m?.[1] !== undefined) resolve(m[1]);
    });
    server?.once('exit', (code) => reject(new Error(`serve exited ${String(code)}: ${err}`)));
  });
});
afterAll(() => {
  server?.kill('SIGTERM');
  rmSync(cwd, { recursive: true, force: true });
});

function duet(args: string[]): { code: number | null; json: Record<string, unknown>; err: string } {
  const r = spawnSync(process.execPath, [bin, ...args], { cwd, env, encoding: 'utf8', timeout: 60_000 });
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(r.stdout) as Record<string, unknown>;
  } catch {
    /* not JSON: the assertions below will say so */
  }
  return { code: r.status, json, err: r.stderr };
}

const api = (method: string, path: string, body?: unknown, token?: string) => callApi(url, method, path, body, token);

describe('headless wallet and terminal against the platform', () => {
  it('enrol for real, pay offline and online, refuse a replay, upload', async () => {
    const admin = String((await api('POST', '/v1/staff/login', { username: 'admin', password: 'admin-password-1' })).token);
    await api('POST', '/v1/holders', { id: 4242, name: 'Li Lei', role: 'student', campus: 1, password: 'student-pass' }, admin);
    await api('POST', '/v1/holders/4242/topups', { amount: 8000, channel: 'cashier', idempotencyKey: 'headless-topup-1' }, admin);
    const merchant = await api('POST', '/v1/merchants', { name: 'North canteen', category: 'canteen' }, admin);
    const terminal = await api(
      'POST',
      '/v1/terminals',
      { merchantId: merchant.id, scene: 'canteen', campus: 1, location: 'Window 3' },
      admin,
    );

    const enrolled = duet(['terminal', 'enroll', '--platform', url, '--code', String(terminal.activationCode)]);
    expect(enrolled.err).toBe('');
    expect(enrolled.json).toMatchObject({ enrolled: true, terminal_id: 1 });
    // The same one-time code again is refused.
    const again = duet([
      'terminal',
      'enroll',
      '--platform',
      url,
      '--code',
      String(terminal.activationCode),
      '--dir',
      join(cwd, 'other-terminal'),
    ]);
    expect(again.code).toBe(2);
    expect(again.err).toContain('activation_invalid');

    const wallet = duet(['wallet', 'enroll', '--platform', url, '--holder', '4242', '--password', 'student-pass']);
    expect(wallet.err).toBe('');
    expect(wallet.json).toMatchObject({ enrolled: true, holder: 4242, limits: { offlineTotal: 8000 } });

    const c1 = String(duet(['wallet', 'code']).json.text);
    const c2 = String(duet(['wallet', 'code']).json.text);
    const offline = duet(['terminal', 'pay', '--amount', '1250', '--code', c1, '--offline']);
    expect(offline.json).toMatchObject({ accepted: true, path: 'offline', amount: 1250 });
    const online = duet(['terminal', 'pay', '--amount', '300', '--code', c2]);
    expect(online.json).toMatchObject({ accepted: true, path: 'online', amount: 300 });
    expect(duet(['terminal', 'pay', '--amount', '300', '--code', c2]).json).toMatchObject({ accepted: false, reason: 'replay' });

    expect(duet(['terminal', 'sync']).json).toMatchObject({ synced: true, uploaded: 2, acked_through: 2 });
    expect(duet(['terminal', 'status']).json).toMatchObject({ records_waiting_upload: 0 });
    const holder = String((await api('POST', '/v1/holder/login', { holderId: 4242, password: 'student-pass' })).token);
    // The online payment was debited when authorized (8,000 − 300); the server clears the uploaded
    // offline one in the background right after the upload (− 1,250), and links the online record.
    await expect.poll(async () => (await api('GET', '/v1/holder/purses', undefined, holder)).cash, { timeout: 10_000 }).toBe(6450);
    const history = (await api('GET', '/v1/holder/history', undefined, holder)) as {
      awaitingClearing: unknown[];
      items: { kind: string }[];
    };
    expect(history.awaitingClearing).toEqual([]);
    expect(history.items.map((i) => i.kind).sort()).toEqual(['offline_payment', 'online_payment', 'topup']);
  });
});
