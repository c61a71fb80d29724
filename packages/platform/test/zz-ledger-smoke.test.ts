import { describe, expect, it } from 'vitest';
import { openPostgres } from '../src/db/postgres.js';
import { startCluster } from './global-setup.js';
import { ledgerMigrations, auditLedger } from '../src/ledger.js';
import { pursesMigrations, topUp, purses, grantSubsidy, setCreditLine } from '../src/purses.js';
import { onlineAuthMigrations, authorizeOnline } from '../src/online-auth.js';

describe('smoke pg', () => {
  it('works', async () => {
    const c = await startCluster();
    const db = await openPostgres(c.url);
    try {
      await db.migrate([...ledgerMigrations, ...pursesMigrations, ...onlineAuthMigrations]);
      const rs = await Promise.all(
        Array.from({ length: 20 }, () =>
          topUp(db, { holderId: 7, amount: 10000, channel: 'cashier', idempotencyKey: 'k1', by: 'alice' }, 1000),
        ),
      );
      console.log(new Set(rs.map((r) => JSON.stringify(r))).size, await purses(db, 7));
      await grantSubsidy(db, { holderId: 7, amount: 300, by: 'fin', idempotencyKey: 'g1' }, 1000);
      await setCreditLine(db, { holderId: 7, limit: 500, by: 'fin' }, 1000);
      const hc = { holderCheck: async () => ({ active: true as const }) };
      const t0 = performance.now();
      const res = await Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          authorizeOnline(db, { terminalId: 1, merchantId: 2, holderId: 7, serial: 5, counter: i, amount: 200, time: 1000 }, 1001, hc),
        ),
      );
      console.log(performance.now() - t0, res.filter((r) => r.approved).length, await purses(db, 7), await auditLedger(db));
      await expect(db.run('UPDATE ledger_entries SET memo = ?', ['x'])).rejects.toThrow(/append-only/);
      await expect(db.run('TRUNCATE ledger_postings')).rejects.toThrow(/append-only/);
    } finally {
      await db.close();
      c.stop();
    }
  });
});
