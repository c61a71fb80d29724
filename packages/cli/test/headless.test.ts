/**
 * The headless wallet and terminal pay each other with no network at all (issue 3's "done when"),
 * through the built `duet` command, as a Linux POS and an operator would run it.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const bin = join(import.meta.dirname, '../dist/main.js');
const cwd = mkdtempSync(join(tmpdir(), 'duet-headless-'));
afterAll(() => rmSync(cwd, { recursive: true, force: true }));

function duet(args: string[], input?: string): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [bin, ...args], {
    cwd,
    encoding: 'utf8',
    timeout: 60_000,
    ...(input !== undefined ? { input } : {}),
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function json(r: { out: string }): Record<string, unknown> {
  return JSON.parse(r.out) as Record<string, unknown>;
}

function newCode(): string {
  const r = duet(['wallet', 'code']);
  expect(r.err).toBe('');
  return String(json(r).text);
}

describe('headless wallet and terminal', () => {
  it('enrol both, pay offline, refuse a replay, scan a batch, upload and prune', () => {
    expect(duet(['issuer', 'init']).code).toBe(0);
    expect(json(duet(['terminal', 'enroll', '--scene', 'canteen']))).toMatchObject({ enrolled: true, terminal_id: 1 });
    expect(json(duet(['wallet', 'enroll', '--holder', '4242']))).toMatchObject({ enrolled: true, serial: 1 });
    expect(statSync(join(cwd, 'data/wallet/device-key.json')).mode & 0o777).toBe(0o600);
    expect(statSync(join(cwd, 'data/terminal/journal.db')).mode & 0o777).toBe(0o600);

    const text = newCode();
    const paid = duet(['terminal', 'pay', '--amount', '1250', '--code', text]);
    expect(paid.code).toBe(0);
    expect(json(paid)).toMatchObject({ accepted: true, amount: 1250, path: 'offline', sequence: 1, holder: 4242 });

    const replay = duet(['terminal', 'pay', '--amount', '1250', '--code', text]);
    expect(replay.code).toBe(3);
    expect(json(replay)).toMatchObject({ accepted: false, reason: 'replay', words: { zh: '付款码已使用' } });

    const a = newCode();
    const b = newCode();
    const lines = [`300\t${a}`, 'garbage', `12x\t${b}`, `200\t${b}`, `200\t${b}`, 'A'.repeat(5000), '100\thttps://example.com', ''].join(
      '\n',
    );
    const scanned = duet(['terminal', 'scan'], lines);
    expect(scanned.code).toBe(0);
    const decisions = scanned.out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { accepted: boolean; reason?: string });
    expect(decisions.map((d) => d.reason ?? 'accepted')).toEqual([
      'accepted',
      'input_malformed',
      'amount_invalid',
      'accepted',
      'replay',
      'input_malformed',
      'not_a_code',
    ]);

    expect(json(duet(['terminal', 'status']))).toMatchObject({ head_sequence: 3, records_waiting_upload: 3 });
    expect(json(duet(['terminal', 'sync']))).toMatchObject({ synced: true, uploaded: 3, acked_through: 3 });
    expect(json(duet(['terminal', 'status']))).toMatchObject({ head_sequence: 3, acked_through: 3, records_waiting_upload: 0 });
    // Uploading again sends nothing new: idempotent.
    expect(json(duet(['terminal', 'sync']))).toMatchObject({ uploaded: 0, acked_through: 3 });
    expect(existsSync(join(cwd, 'data/issuer/records-1.jsonl'))).toBe(true);

    const status = json(duet(['wallet', 'status']));
    expect(status).toMatchObject({ enrolled: true, canMakeCodes: true, needsRenewal: false });
  });

  it('a wallet that was never enrolled makes no code and says why in both languages', () => {
    const r = duet(['wallet', 'code', '--dir', join(cwd, 'empty-wallet')]);
    expect(r.code).toBe(2);
    const e = JSON.parse(r.err) as { error: { code: string; en: string; zh: string } };
    expect(e.error.code).toBe('no_credential');
    expect(e.error.zh.length).toBeGreaterThan(0);
  });

  it('a terminal that was never enrolled declines with terminal_not_ready', () => {
    const r = duet(['terminal', 'pay', '--amount', '100', '--code', 'DU1:AAA', '--dir', join(cwd, 'fresh-terminal')]);
    expect(r.code).toBe(3);
    expect(json(r)).toMatchObject({ accepted: false, reason: 'terminal_not_ready' });
  });
});
