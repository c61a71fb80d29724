import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createServer, createServerModuleRunner } from 'vite';
const root = '/work/main';
const server = await createServer({
  root,
  configFile: false,
  logLevel: 'error',
  appType: 'custom',
  resolve: { conditions: ['duet-source'] },
  server: { middlewareMode: true, hmr: false, ws: false, watch: null },
});
const runner = createServerModuleRunner(server.environments.ssr, { hmr: false });
const load = (p) => runner.import(join(root, p));
const { openPostgres } = await load('packages/platform/src/db/postgres.ts');
const { ledgerMigrations } = await load('packages/platform/src/ledger.ts');
const { pursesMigrations, topUp } = await load('packages/platform/src/purses.ts');
const { onlineAuthMigrations, authorizeOnline } = await load('packages/platform/src/online-auth.ts');
const { startCluster } = await load('packages/platform/test/global-setup.ts');
const cluster = await startCluster();
const db = await openPostgres(cluster.url);
const HOLDERS = 500;
try {
  await db.migrate([...ledgerMigrations, ...pursesMigrations, ...onlineAuthMigrations]);
  for (let h = 1; h <= HOLDERS; h++)
    await topUp(db, { holderId: h, amount: 1000000, channel: 'bank', idempotencyKey: `b${h}`, by: 'b' }, 1800000000);
  await db.run('SELECT pg_stat_reset()');
  let c = 0;
  const W = Number(process.argv[2] ?? 8),
    N = 2000;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: W }, async () => {
      while (c < N) {
        const i = c++;
        const h = 1 + Math.floor(Math.random() * HOLDERS);
        await authorizeOnline(
          db,
          { terminalId: 1, merchantId: 1, holderId: h, serial: h, counter: i, amount: 100, time: 1800000000 },
          1800000000,
          { holderCheck: async () => ({ active: true }) },
        );
      }
    }),
  );
  const ms = performance.now() - t0;
  await new Promise((r) => setTimeout(r, 600));
  const st = await db.one('SELECT xact_commit, xact_rollback FROM pg_stat_database WHERE datname = current_database()');
  console.log({ W, perSec: Math.round((N / ms) * 1000), ...st });
} finally {
  await db.close();
}
const logdir = cluster.url;
const { execSync } = await import('node:child_process');
console.log(
  execSync(
    "grep -h -A2 'could not serialize' /tmp/duet-pg-*/server.log 2>/dev/null | grep -E 'DETAIL|STATEMENT|HINT' | sed -E 's/^.*(DETAIL|STATEMENT)/\\1/' | sort | uniq -c | sort -rn | head -20",
  ).toString(),
);
cluster.stop();
await runner.close();
await server.close();
