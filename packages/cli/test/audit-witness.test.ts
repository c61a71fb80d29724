/**
 * The witness, end to end over real HTTP (the built `duet` against a live platform, SQLite and
 * PostgreSQL): `duet witness keygen` makes a key file only its owner can read; `duet witness sign`
 * signs in as school finance, registers the key, recomputes each unwitnessed root from the entries
 * and countersigns it, continuing the chain from the root it signed before; it refuses, naming the
 * position, a root whose entries were rewritten after sealing, and signs nothing after it; and
 * `duet audit --witness-key` accepts only countersignatures by the pinned key.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nodeCrypto } from '@duet/protocol/node';
import { type Db, type LedgerAuditReport, openDatabase, openPlatform, type Platform } from '@duet/platform';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databases } from '../../platform/test/pg-harness.js';
import { callApi } from './api.js';

const bin = join(import.meta.dirname, '../dist/main.js');
const cwd = mkdtempSync(join(tmpdir(), 'duet-witness-cli-'));
afterAll(() => rmSync(cwd, { recursive: true, force: true }));
const env = { ...process.env, FINANCE_PASSWORD: 'finance1-password-1' };

/** Runs the built command without blocking this process, which serves the platform it talks to. */
function duet(args: readonly string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { cwd, env, timeout: 120_000 });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString('utf8');
    });
    child.stderr.on('data', (b: Buffer) => {
      err += b.toString('utf8');
    });
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, out, err }));
  });
}

describe('duet witness keygen', () => {
  it('makes a P-256 key file of mode 0600 and never overwrites one', async () => {
    const file = join(cwd, 'keygen', 'witness.json');
    const r = await duet(['witness', 'keygen', '--out', file]);
    expect(r.code, r.err).toBe(0);
    const made = JSON.parse(r.out) as { public_key: string; en: string; zh: string };
    const key = JSON.parse(readFileSync(file, 'utf8')) as { format: string; suite: string; publicKey: string; privateKey: string };
    expect(key).toMatchObject({ format: 'duet-witness-key/v1', suite: 'p256', publicKey: made.public_key });
    expect(key.privateKey).toMatch(/^[0-9a-f]{64}$/);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const again = await duet(['witness', 'keygen', '--out', file]);
    expect(again.code).toBe(2);
    expect(JSON.parse(again.err)).toMatchObject({ error: { code: 'exists' } });
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual(key);
    expect((await duet(['witness', 'keygen'])).code).toBe(2);
    expect((await duet(['witness', 'frob'])).code).toBe(2);
  });
});

for (const d of databases) {
  describe.skipIf(!d.available)(`duet witness sign against a live platform on ${d.name}`, () => {
    let p: Platform;
    let url: string;
    let admin: string;
    let db: Db;
    let where: string[];
    let topups = 0;
    const keyFile = join(cwd, `${d.name}-witness.json`);

    const api = (method: string, path: string, body?: unknown, token?: string) => callApi(url, method, path, body, token);

    /** `n` more top-ups, then a seal; roots close every 3 positions. */
    async function post(n: number): Promise<void> {
      for (let i = 0; i < n; i++)
        await api(
          'POST',
          '/v1/holders/77/topups',
          { amount: 100 + topups, channel: 'bank', idempotencyKey: `witness-${d.name}-${topups++}` },
          admin,
        );
      await p.sealer?.runOnce();
    }

    const sign = (...extra: string[]) =>
      duet(['witness', 'sign', '--platform', url, '--user', 'finance1', '--password-env', 'FINANCE_PASSWORD', '--key', keyFile, ...extra]);

    beforeAll(async () => {
      const dataDir = mkdtempSync(join(cwd, 'platform-'));
      const storage = d.name === 'postgres' ? await d.fresh() : undefined;
      p = await openPlatform({
        ...(storage !== undefined ? { dbUrl: storage.location } : {}),
        dataDir,
        passphrase: 'witness-test-passphrase',
        crypto: nodeCrypto(),
        clock: { nowMs: () => Date.now() },
        logger: false,
        firstAdmin: { username: 'admin', password: 'admin-password-1' },
        ledgerSealer: { intervalMs: 3_600_000, rootEvery: 3 },
      });
      url = await p.app.listen({ host: '127.0.0.1', port: 0 });
      admin = String((await api('POST', '/v1/staff/login', { username: 'admin', password: 'admin-password-1' })).token);
      await api('POST', '/v1/staff', { username: 'finance1', password: 'finance1-password-1', role: 'school_finance' }, admin);
      await api('POST', '/v1/holders', { id: 77, name: 'Li Lei', role: 'student', campus: 1, password: 'holder-pass-1' }, admin);
      await post(4);
      expect((await duet(['witness', 'keygen', '--out', keyFile])).code).toBe(0);
      where = storage !== undefined ? ['--db', storage.location] : ['--data', dataDir];
      db = storage !== undefined ? await storage.open() : await openDatabase(undefined, dataDir);
    });
    afterAll(async () => {
      await p?.close();
      if (d.name === 'sqlite') await db?.close();
    });

    it('refuses to sign with a key the platform does not know; registers it with --register, recomputes and countersigns root 1', async () => {
      const unknown = await sign();
      expect(unknown.code).toBe(2);
      expect(JSON.parse(unknown.err)).toMatchObject({ error: { code: 'witness_key_unregistered' } });
      const r = await sign('--register');
      expect(r.err).toBe('');
      expect(r.code).toBe(0);
      expect(r.out).toMatch(/^Countersigned root 1: positions 1–3, Merkle root [0-9a-f]{64}, root hash [0-9a-f]{64}$/m);
      expect(r.out).toContain('已副署根 1：位置 1–3');
      expect(r.out).toContain('Done: 1 root(s) countersigned');
      const nothing = await sign('--json');
      expect(nothing.code).toBe(0);
      expect(JSON.parse(nothing.out.trim())).toMatchObject({ done: true, signed: 0 });
    });

    it('continues the chain: the next roots are recomputed from where the last countersigned one ended', async () => {
      await post(5);
      const r = await sign('--json');
      expect(r.code, r.out + r.err).toBe(0);
      const lines = r.out
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { witnessed?: number; positions?: string });
      expect(lines.filter((l) => l.witnessed !== undefined).map((l) => [l.witnessed, l.positions])).toEqual([
        [2, '4–6'],
        [3, '7–9'],
      ]);
      const audit = await duet(['audit', ...where, '--json', '--witness-key', keyFile]);
      expect(audit.code, audit.out).toBe(0);
      expect((JSON.parse(audit.out) as LedgerAuditReport).counts).toMatchObject({ roots: 3, witnessedRoots: 3 });
    });

    it('audits with a pinned witness key: a countersignature by any other key is a break', async () => {
      const other = join(cwd, `${d.name}-other.json`);
      expect((await duet(['witness', 'keygen', '--out', other])).code).toBe(0);
      const r = await duet(['audit', ...where, '--witness-key', other]);
      expect(r.code).toBe(1);
      expect(r.out).toContain('BREAK / 断点: witness_not_pinned at root 1');
    });

    it('refuses a root whose entries were rewritten after sealing, naming the position, and signs nothing after it', async () => {
      await post(6);
      const roots = await db.all('SELECT id, first_position FROM ledger_roots WHERE witness_signature IS NULL ORDER BY id');
      expect(roots.map((x) => Number(x.id))).toEqual([4, 5]);
      if (db.dialect.name === 'postgres') await db.run('ALTER TABLE ledger_entries DISABLE TRIGGER USER');
      else await db.run('DROP TRIGGER ledger_entries_no_update');
      const victim = await db.one('SELECT entry_id FROM ledger_chain WHERE position = 11');
      await db.run("UPDATE ledger_entries SET memo = 'refund reversed' WHERE id = ?", [Number(victim?.entry_id)]);
      const r = await sign();
      expect(r.code, r.out + r.err).toBe(1);
      expect(r.out).toContain(`REFUSED root 4: position 11 (entry ${Number(victim?.entry_id)}) hashes to`);
      expect(r.out).toContain('拒绝副署：根 4：位置 11');
      expect((await db.all('SELECT id FROM ledger_roots WHERE witness_signature IS NULL ORDER BY id')).map((x) => Number(x.id))).toEqual([
        4, 5,
      ]);
      const audit = await duet(['audit', ...where]);
      expect(audit.code).toBe(1);
      expect(audit.out).toContain('BREAK / 断点: chain_hash_mismatch at position 11');
    });
  });
}
