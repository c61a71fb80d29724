/**
 * `duet audit` (the built command, as an operator runs it) against the database of a real platform
 * that posted top-ups over HTTP and sealed them, on SQLite (`--data DIR`) and PostgreSQL (`--db
 * URL`): exit 0 and a bilingual report on a sound ledger; exit 1 naming the first break after a
 * stored entry, a posting, a chain hash, a root signature or a balance row is rewritten behind the
 * platform's back, and 0 again once it is undone; exit 2 for usage, a missing file or a database
 * that is not a Duet ledger.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nodeCrypto } from '@duet/protocol/node';
import { type Db, type LedgerAuditReport, openDatabase, openPlatform } from '@duet/platform';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databases } from '../../platform/test/pg-harness.js';
import { callApi } from './api.js';

const bin = join(import.meta.dirname, '../dist/main.js');
const cwd = mkdtempSync(join(tmpdir(), 'duet-audit-cli-'));
afterAll(() => rmSync(cwd, { recursive: true, force: true }));

function duet(args: readonly string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [bin, ...args], { cwd, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** Switches the append-only triggers off: what someone with write access to the database can do. */
async function tamperable(db: Db): Promise<void> {
  if (db.dialect.name === 'postgres') {
    for (const t of ['ledger_entries', 'ledger_postings', 'ledger_chain', 'ledger_roots'])
      await db.run(`ALTER TABLE ${t} DISABLE TRIGGER USER`);
    return;
  }
  for (const r of await db.all("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name LIKE 'ledger_%'"))
    await db.run(`DROP TRIGGER ${String(r.name)}`);
}

for (const d of databases) {
  describe.skipIf(!d.available)(`duet audit on ${d.name}`, () => {
    let where: string[];
    let db: Db;

    beforeAll(async () => {
      const dataDir = mkdtempSync(join(cwd, 'platform-'));
      const storage = d.name === 'postgres' ? await d.fresh() : undefined;
      const p = await openPlatform({
        ...(storage !== undefined ? { dbUrl: storage.location } : {}),
        dataDir,
        passphrase: 'audit-test-passphrase',
        crypto: nodeCrypto(),
        clock: { nowMs: () => Date.now() },
        logger: false,
        firstAdmin: { username: 'admin', password: 'admin-password-1' },
        ledgerSealer: { intervalMs: 3_600_000, rootEvery: 4 },
      });
      try {
        const url = await p.app.listen({ host: '127.0.0.1', port: 0 });
        const admin = String((await callApi(url, 'POST', '/v1/staff/login', { username: 'admin', password: 'admin-password-1' })).token);
        await callApi(url, 'POST', '/v1/holders', { id: 31, name: '韩梅梅', role: 'student', campus: 1, password: 'holder-pass-1' }, admin);
        for (const [i, amount] of [500, 1_200, 80, 2_500, 60, 999].entries())
          await callApi(url, 'POST', '/v1/holders/31/topups', { amount, channel: 'cashier', idempotencyKey: `audit-cli-${i}` }, admin);
        expect((await p.sealer?.runOnce())?.roots.map((r) => [r.firstPosition, r.lastPosition])).toEqual([[1, 4]]);
      } finally {
        await p.close();
      }
      where = storage !== undefined ? ['--db', storage.location] : ['--data', dataDir];
      db = storage !== undefined ? await storage.open() : await openDatabase(undefined, dataDir);
    });
    afterAll(async () => {
      if (d.name === 'sqlite') await db?.close();
    });

    it('passes a sound ledger: exit 0, every check in both languages, and the same as JSON', () => {
      const r = duet(['audit', ...where]);
      expect(r.err).toBe('');
      expect(r.code).toBe(0);
      expect(r.out).toContain('[ok  ] every entry balances / 每笔分录借贷平衡');
      expect(r.out).toContain('[ok  ] the hash chain recomputes from position 1 / 哈希链自第 1 位起可复算');
      expect(r.out).toContain('unwitnessed_roots (1)');
      expect(r.out).toContain('RESULT: PASSED, the books verify / 结论：通过，账本可验证');
      const json = JSON.parse(duet(['audit', ...where, '--json']).out) as LedgerAuditReport;
      expect(json).toMatchObject({ ok: true, break: null, counts: { entries: 6, postings: 12, sealed: 6, roots: 1, witnessedRoots: 0 } });
    });

    it('fails with exit 1 naming the first break after each kind of rewrite, and passes again once it is undone', async () => {
      await tamperable(db);
      /** Each change returns its undo, made from the values it overwrote. */
      const value = async (sql: string) => (await db.one(sql))?.v ?? null;
      const cases: Array<{ name: string; code: string; at: string; change: () => Promise<() => Promise<unknown>> }> = [
        {
          name: 'a memo rewritten',
          code: 'chain_hash_mismatch',
          at: 'position 3, entry 3',
          change: async () => {
            const memo = await value('SELECT memo AS v FROM ledger_entries WHERE id = 3');
            await db.run("UPDATE ledger_entries SET memo = 'nothing to see' WHERE id = 3");
            return () => db.run('UPDATE ledger_entries SET memo = ? WHERE id = 3', [memo]);
          },
        },
        {
          name: 'an amount changed',
          code: 'entry_unbalanced',
          at: 'entry 5',
          change: async () => {
            await db.run('UPDATE ledger_postings SET amount = amount + 100 WHERE entry_id = 5 AND line = 1');
            return () => db.run('UPDATE ledger_postings SET amount = amount - 100 WHERE entry_id = 5 AND line = 1');
          },
        },
        {
          name: 'a chain hash overwritten',
          code: 'chain_hash_mismatch',
          at: 'position 2, entry 2',
          change: async () => {
            const hash = await value('SELECT hash AS v FROM ledger_chain WHERE position = 2');
            await db.run('UPDATE ledger_chain SET hash = (SELECT hash FROM ledger_chain WHERE position = 1) WHERE position = 2');
            return () => db.run('UPDATE ledger_chain SET hash = ? WHERE position = 2', [hash]);
          },
        },
        {
          name: 'a root signature replaced',
          code: 'root_signature',
          at: 'root 1',
          change: async () => {
            const signature = await value('SELECT signature AS v FROM ledger_roots WHERE id = 1');
            if (!(signature instanceof Uint8Array)) throw new Error('no signature');
            await db.run('UPDATE ledger_roots SET signature = ? WHERE id = 1', [
              Uint8Array.from(signature, (v, i) => (i === 7 ? v ^ 1 : v)),
            ]);
            return () => db.run('UPDATE ledger_roots SET signature = ? WHERE id = 1', [signature]);
          },
        },
        {
          name: 'a balance row changed',
          code: 'balance_mismatch',
          at: 'account',
          change: async () => {
            const cash = "(SELECT id FROM ledger_accounts WHERE kind = 'holder_cash')";
            await db.run(`UPDATE ledger_balances SET balance = balance - 1 WHERE account_id = ${cash}`);
            return () => db.run(`UPDATE ledger_balances SET balance = balance + 1 WHERE account_id = ${cash}`);
          },
        },
      ];
      for (const c of cases) {
        const undo = await c.change();
        const r = duet(['audit', ...where]);
        expect(r.code, `${c.name}: ${r.out}${r.err}`).toBe(1);
        expect(r.out).toContain(`BREAK / 断点: ${c.code} at ${c.at}`);
        expect(r.out).toContain('RESULT: FAILED');
        expect(r.out).toContain('结论：未通过');
        if (c === cases[0]) expect((JSON.parse(duet(['audit', ...where, '--json']).out) as LedgerAuditReport).break?.code).toBe(c.code);
        await undo();
        const again = duet(['audit', ...where]);
        expect(again.code, `${c.name} undone: ${again.out}`).toBe(0);
      }
    });
  });
}

describe('duet audit refuses what it cannot audit', () => {
  it('exits 2 on usage errors, a missing database and a file that is not a Duet ledger, with words in both languages', () => {
    const refuse = (args: string[], code: string) => {
      const r = duet(['audit', ...args]);
      expect(r.code, r.out + r.err).toBe(2);
      const e = JSON.parse(r.err) as { error: { code: string; en: string; zh: string } };
      expect(e.error.code).toBe(code);
      expect(e.error.zh.length).toBeGreaterThan(0);
      return e.error;
    };
    refuse(['--data', cwd, '--db', 'sqlite:x.db'], 'bad_arguments');
    refuse(['--frobnicate'], 'bad_arguments');
    refuse(['--grace-s', 'soon', '--data', cwd], 'bad_arguments');
    refuse(['extra'], 'bad_arguments');
    expect(refuse(['--data', join(cwd, 'nowhere')], 'not_found').en).toContain('nowhere');
    refuse(['--db', 'mysql://x'], 'bad_database_url');
    const junk = join(cwd, 'junk.db');
    writeFileSync(junk, '');
    refuse(['--db', `sqlite:${junk}`], 'storage_error');
    refuse(['--witness-key', join(cwd, 'no-such-key.json'), '--data', cwd], 'bad_key_file');
  });
});
