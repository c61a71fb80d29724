#!/usr/bin/env node
/**
 * Measures online authorization at the storage level (authorizeOnline straight on a Db, no HTTP),
 * on SQLite and on PostgreSQL. A measurement, not a test: it prints figures and never fails on them.
 *
 *   node packages/platform/test/bench-online-auth.mjs [--seconds 10] [--rate 1000] [--holders 2000]
 *        [--merchants 1] [--only sqlite|postgres] [--pg postgres://...]
 *
 * It loads the TypeScript sources through Vite's module runner (the same resolution vitest uses),
 * so no build is needed. SQLite is a temp file with the production settings (WAL, synchronous=FULL).
 * PostgreSQL is the URL given, or a private throwaway cluster started like the tests' (fsync off,
 * so commits cost less than on a production server with fsync on).
 *
 * Two ways of calling, each measured: `OnlineAuthorizer` (group commit: the requests that arrive
 * during a transaction go together in the next; what the HTTP route should use) and
 * `authorizeOnline` (one transaction per request). For each, two kinds of run:
 * - open loop: requests start on a fixed schedule (--rate per second) whether or not earlier ones
 *   finished, and each latency is measured from its scheduled start, so a stall shows in the
 *   figures instead of silently lowering the rate (no coordinated omission). This is the issue's
 *   target: p99 <= 20 ms at 1,000 requests/s on loopback.
 * - closed loop: N workers each send the next request as soon as the last is answered, for the
 *   saturation throughput.
 * Payers are drawn at random from --holders, all paying --merchants merchant(s) (1 = every payment
 * credits the same payable: the hot-account worst case of one canteen at lunch).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createServer, createServerModuleRunner } from 'vite';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../../..');

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    rate: { type: 'string', default: '1000' },
    holders: { type: 'string', default: '2000' },
    merchants: { type: 'string', default: '1' },
    workers: { type: 'string', default: '1,8,32' },
    only: { type: 'string' },
    pg: { type: 'string' },
  },
});
/** Every loop below is bounded by these: the bench stops by itself. */
const SECONDS = bounded(args.seconds, 1, 120, 'seconds');
const RATE = bounded(args.rate, 1, 20_000, 'rate');
const HOLDERS = bounded(args.holders, 1, 100_000, 'holders');
const MERCHANTS = bounded(args.merchants, 1, 1_000, 'merchants');
const WORKERS = args.workers.split(',').map((w) => bounded(w, 1, 256, 'workers'));
const BASE_TIME_S = 1_800_000_000;
/** Each holder gets enough cash for every payment the runs can make (at most 5 yuan each). */
const CASH_PER_HOLDER_FEN = 1_000_000;

function bounded(text, min, max, name) {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new RangeError(`--${name} ${text}: ${min}..${max}`);
  return n;
}

const server = await createServer({
  root,
  configFile: false,
  logLevel: 'error',
  appType: 'custom',
  resolve: { conditions: ['duet-source'] },
  server: { middlewareMode: true, hmr: false, ws: false, watch: null },
});
const runner = createServerModuleRunner(server.environments.ssr, { hmr: false });
const load = (path) => runner.import(join(root, path));

const { openSqlite } = await load('packages/platform/src/db/sqlite.ts');
const { openPostgres } = await load('packages/platform/src/db/postgres.ts');
const { ledgerMigrations, auditLedger } = await load('packages/platform/src/ledger.ts');
const { pursesMigrations, topUp } = await load('packages/platform/src/purses.ts');
const { onlineAuthMigrations, authorizeOnline, OnlineAuthorizer } = await load('packages/platform/src/online-auth.ts');
const MIGRATIONS = [...ledgerMigrations, ...pursesMigrations, ...onlineAuthMigrations];
/** A holder check that reads a table, as the real one reads `holders`, so its cost is counted. */
const HOLDER_CHECK = {
  holderCheck: async (q, ids) => {
    const rows = await q.all(`SELECT id, status FROM bench_holders WHERE id IN (${ids.map(() => '?').join(', ')})`, ids);
    return new Map(rows.map((r) => [r.id, r.status === 'active' ? { active: true } : { active: false, detail: String(r.status) }]));
  },
};

/** Sequential (serial, counter) pairs: every request uses a fresh code. */
let nextCounter = 0;
function request(nowS) {
  const holderId = 1 + Math.floor(Math.random() * HOLDERS);
  const counter = nextCounter++;
  return {
    terminalId: 1 + (counter % 40),
    merchantId: 1 + (counter % MERCHANTS),
    holderId,
    serial: holderId,
    counter,
    amount: 100 + Math.floor(Math.random() * 400),
    time: nowS,
  };
}

async function prepare(db) {
  await db.migrate(MIGRATIONS);
  await db.run('CREATE TABLE bench_holders (id BIGINT PRIMARY KEY, status TEXT NOT NULL)');
  for (let from = 1; from <= HOLDERS; from += 500) {
    const ids = Array.from({ length: Math.min(500, HOLDERS - from + 1) }, (_, k) => from + k);
    await db.run(`INSERT INTO bench_holders (id, status) VALUES ${ids.map(() => "(?, 'active')").join(', ')}`, ids);
  }
  for (let from = 1; from <= HOLDERS; from += 50) {
    const batch = [];
    for (let h = from; h < from + 50 && h <= HOLDERS; h++) {
      batch.push(
        topUp(db, { holderId: h, amount: CASH_PER_HOLDER_FEN, channel: 'bank', idempotencyKey: `bench-${h}`, by: 'bench' }, BASE_TIME_S),
      );
    }
    await Promise.all(batch);
  }
}

function summary(latenciesMs, elapsedMs, outcomes) {
  const sorted = Float64Array.from(latenciesMs).sort();
  const at = (p) => (sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]);
  return {
    requests: sorted.length,
    perSecond: Math.round((sorted.length / elapsedMs) * 1000),
    p50Ms: round(at(0.5)),
    p90Ms: round(at(0.9)),
    p99Ms: round(at(0.99)),
    p999Ms: round(at(0.999)),
    maxMs: round(sorted.length === 0 ? Number.NaN : sorted[sorted.length - 1]),
    ...outcomes,
  };
}

const round = (x) => Math.round(x * 100) / 100;

function tally(outcomes, answer) {
  if (answer instanceof Error) outcomes.errors++;
  else if (answer.approved) outcomes.approved++;
  else outcomes.declined++;
}

async function openLoop(authorize) {
  const total = SECONDS * RATE;
  const intervalMs = 1000 / RATE;
  const latencies = [];
  const outcomes = { approved: 0, declined: 0, errors: 0 };
  const inflight = new Set();
  const start = performance.now();
  for (let i = 0; i < total; i++) {
    const due = start + i * intervalMs;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    const nowS = BASE_TIME_S + Math.floor((due - start) / 1000);
    const p = authorize(request(nowS), nowS).then(
      (a) => a,
      (e) => (e instanceof Error ? e : new Error(String(e))),
    );
    const done = p.then((a) => {
      latencies.push(performance.now() - due);
      tally(outcomes, a);
      inflight.delete(done);
    });
    inflight.add(done);
  }
  await Promise.all(inflight);
  return summary(latencies, performance.now() - start, outcomes);
}

async function closedLoop(authorize, workers) {
  const latencies = [];
  const outcomes = { approved: 0, declined: 0, errors: 0 };
  const start = performance.now();
  const end = start + SECONDS * 1000;
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (performance.now() < end) {
        const t = performance.now();
        const nowS = BASE_TIME_S + Math.floor((t - start) / 1000);
        const a = await authorize(request(nowS), nowS).catch((e) => (e instanceof Error ? e : new Error(String(e))));
        latencies.push(performance.now() - t);
        tally(outcomes, a);
      }
    }),
  );
  return summary(latencies, performance.now() - start, outcomes);
}

async function benchOne(name, db) {
  const t = performance.now();
  await prepare(db);
  console.error(`${name}: ${HOLDERS} holders topped up in ${Math.round(performance.now() - t)} ms`);
  const batched = new OnlineAuthorizer(db, HOLDER_CHECK);
  const modes = [
    ['batched', (r, nowS) => batched.authorize(r, nowS)],
    ['one tx each', (r, nowS) => authorizeOnline(db, r, nowS, HOLDER_CHECK)],
  ];
  const rows = [];
  for (const [mode, authorize] of modes) {
    rows.push({ db: name, mode, run: `open loop ${RATE}/s`, ...(await openLoop(authorize)) });
    for (const w of WORKERS) rows.push({ db: name, mode, run: `closed loop, ${w} workers`, ...(await closedLoop(authorize, w)) });
  }
  const audit = await auditLedger(db);
  const sound = audit.unbalancedEntries.length === 0 && audit.balanceMismatches.length === 0 && audit.totalBalance === 0;
  console.error(`${name}: ledger audit after the runs: ${audit.entries} entries, ${sound ? 'balanced' : 'NOT BALANCED'}`);
  return rows;
}

const results = [];
const cleanups = [];
try {
  if (args.only !== 'postgres') {
    const dir = mkdtempSync(join(tmpdir(), 'duet-bench-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const db = await openSqlite(join(dir, 'bench.db'));
    cleanups.push(() => db.close());
    results.push(...(await benchOne('sqlite', db)));
  }
  if (args.only !== 'sqlite') {
    let url = args.pg;
    if (url === undefined) {
      const { startCluster } = await load('packages/platform/test/global-setup.ts');
      const cluster = await startCluster();
      cleanups.push(() => cluster.stop());
      url = cluster.url;
    }
    const db = await openPostgres(url);
    cleanups.push(() => db.close());
    results.push(...(await benchOne('postgres', db)));
  }
} finally {
  for (const c of cleanups.reverse()) await c();
  await runner.close();
  await server.close();
}

console.log(
  `authorizeOnline at the storage level: ${SECONDS} s per run, ${HOLDERS} payers, ${MERCHANTS} merchant(s), node ${process.version}`,
);
// Figures from a shared machine mean little without its load: print it beside them.
console.log(
  `machine: ${cpus().length} cores, load average ${loadavg()
    .map((x) => x.toFixed(2))
    .join(' ')} (1, 5, 15 min) at the end`,
);
console.table(results);
