/**
 * Online authorization (issue 4): terminals' signed POST /v1/terminal/authorize against a real
 * `duet serve` process on loopback (SQLite, synchronous=FULL), open loop at a fixed rate: request i
 * is due at t0 + i/rate and its latency counts from then, so queueing is not hidden. In the same
 * run, the floor: GET /healthz (an HTTP round trip and one database read) at the same rate.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeCode, signRequest } from '@duet/protocol';
import { nodeCrypto } from '@duet/protocol/node';
import { openPlatform, seedCredential, seedHolder, seedTerminal } from '@duet/platform';
import { findPgBin, startCluster } from '@duet/platform/pg-cluster';
import { openLoopHttp, serialize } from './load.js';

const CONNECTIONS = 32;
const WARM_SECONDS = 1;

export interface PlatformFigures {
  online_auth_ms: { p50: number; p99: number; max: number };
  online_auth_rps: number;
  online_auth_approved: number;
  online_auth_requests: number;
  online_auth_floor_ms: { p50: number; p99: number };
  /** The cold pass: every payer's first code (credential and device key seen for the first time), at half rate. */
  online_auth_cold_ms: { p50: number; p99: number };
  /** The first WARM_SECONDS at full rate, before the measured run. */
  online_auth_warmup_ms: { p50: number; p99: number; max: number };
}

export const PASSPHRASE = 'bench-passphrase-only';

/** Online authorization on both storages: SQLite (the default) under the keys, PostgreSQL beside it. */
export async function benchPlatform(
  rate: number,
  seconds: number,
  progress: (m: string) => void,
): Promise<PlatformFigures & { online_auth_postgres?: PlatformFigures | { skipped: string } }> {
  const sqlite = await benchPlatformOn(undefined, rate, seconds, progress);
  if (findPgBin() === undefined) return { ...sqlite, online_auth_postgres: { skipped: 'no PostgreSQL server binaries' } };
  progress('platform: starting a private PostgreSQL cluster (fsync on)');
  const cluster = await startCluster({ durable: true });
  try {
    return { ...sqlite, online_auth_postgres: await benchPlatformOn(cluster.url, rate, seconds, progress) };
  } finally {
    cluster.stop();
  }
}

async function benchPlatformOn(
  dbUrl: string | undefined,
  rate: number,
  seconds: number,
  progress: (m: string) => void,
): Promise<PlatformFigures> {
  const crypto = nodeCrypto();
  const dir = mkdtempSync(join(tmpdir(), 'duet-bench-platform-'));
  const where = dbUrl === undefined ? 'SQLite' : 'PostgreSQL';
  const total = rate * seconds;
  const warm = rate * WARM_SECONDS;
  const holders = Math.max(1, Math.ceil(total / 10));
  // Each payer has 2,000 yuan and pays 10 yuan per code: the warm-up code and 10 measured ones fit easily.
  let server: ChildProcess | undefined;
  try {
    progress(`platform (${where}): seeding ${holders} holders with credentials`);
    const nowS = Math.floor(Date.now() / 1000);
    const p = await openPlatform({
      ...(dbUrl !== undefined ? { dbUrl } : {}),
      dataDir: dir,
      passphrase: PASSPHRASE,
      crypto,
      clock: { nowMs: () => Date.now() },
      logger: false,
    });
    const terminalKey = await crypto.suite('p256').generate();
    const { terminalId } = await seedTerminal(
      p.db,
      crypto,
      p.keys,
      { merchantName: 'Bench canteen', scene: 'canteen', campus: 1, location: 'bench', key: terminalKey },
      nowS,
    );
    const devices = [];
    for (let h = 0; h < holders; h++) {
      await seedHolder(p.db, { id: 100_000 + h, name: `bench ${h}`, role: 'student', campus: 1, cashFen: 200_000 }, nowS);
      const device = await crypto.suite('p256').generate();
      devices.push({ device, credential: await seedCredential(p.db, p.keys, 100_000 + h, device, nowS) });
    }
    await p.close();

    progress(`platform (${where}): starting duet serve and signing ${total} requests`);
    const { child, url } = await startServer(dir, dbUrl);
    server = child;
    const requests: { body: Uint8Array; headers: Record<string, string> }[] = [];
    // The first `holders` requests (counter 1 of each payer) are the cold pass, the next `warm` the
    // full-rate warm-up, and the measured run follows.
    for (let i = 0; i < holders + warm + total; i++) {
      const d = devices[i % holders];
      if (d === undefined) throw new Error('bench: no device');
      const code = await makeCode(d.credential, d.device, nowS, 1 + Math.floor(i / holders));
      const body = new TextEncoder().encode(
        JSON.stringify({ code: Buffer.from(code.bytes).toString('base64'), amount: 1_000, time: nowS }),
      );
      const auth = await signRequest(terminalKey, terminalId, 'POST', '/v1/terminal/authorize', body, nowS, crypto.sha256);
      requests.push({ body, headers: { 'content-type': 'application/json', ...auth } });
    }

    // A fixed pool of keep-alive connections, as a fleet of terminals behind a gateway would hold;
    // every request is bytes before the clock starts (load.ts).
    const host = new URL(url).host;
    const wire = requests.map((r) => serialize(host, { method: 'POST', path: '/v1/terminal/authorize', headers: r.headers, body: r.body }));
    const approved = (status: number, body: Buffer) =>
      status === 200 && (JSON.parse(body.toString()) as { approved?: boolean }).approved === true;
    progress(`platform (${where}): floor, GET /healthz at ${rate}/s (after ${WARM_SECONDS} s of warm-up)`);
    const healthz = (n: number) => new Array<Buffer>(n).fill(serialize(host, { method: 'GET', path: '/healthz' }));
    await openLoopHttp(url, healthz(warm), rate, CONNECTIONS, (s) => s === 200);
    const floor = await openLoopHttp(url, healthz(Math.min(total, rate * 2)), rate, CONNECTIONS, (s) => s === 200);
    progress(`platform (${where}): cold pass, ${holders} first codes at ${rate / 2}/s`);
    const cold = await openLoopHttp(url, wire.slice(0, holders), rate / 2, CONNECTIONS, approved);
    // Measured as a steady state, as wrk2 and every latency benchmark do: the first second at full
    // rate (JIT tier-up, caches, the jump from half rate) is reported on its own, not hidden.
    progress(`platform (${where}): warm-up, ${warm} authorizations at ${rate}/s`);
    const warmUp = await openLoopHttp(url, wire.slice(holders, holders + warm), rate, CONNECTIONS, approved);
    progress(`platform (${where}): online authorization at ${rate}/s for ${seconds} s`);
    const run = await openLoopHttp(url, wire.slice(holders + warm), rate, CONNECTIONS, approved);
    return {
      online_auth_ms: run.latency,
      online_auth_rps: run.achievedRps,
      online_auth_approved: run.ok,
      online_auth_requests: total,
      online_auth_floor_ms: { p50: floor.latency.p50, p99: floor.latency.p99 },
      online_auth_cold_ms: { p50: cold.latency.p50, p99: cold.latency.p99 },
      online_auth_warmup_ms: warmUp.latency,
    };
  } finally {
    server?.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Starts `duet serve` on a free loopback port over `dir` (SQLite) or `dbUrl`, and resolves with its URL once it listens. */
export async function startServer(dir: string, dbUrl: string | undefined): Promise<{ child: ChildProcess; url: string }> {
  const main = join(import.meta.dirname, '..', 'main.js');
  const child = spawn(
    process.execPath,
    [
      ...(process.env.DUET_BENCH_PROF !== undefined ? ['--cpu-prof', `--cpu-prof-dir=${process.env.DUET_BENCH_PROF}`] : []),
      main,
      'serve',
      '--port',
      '0',
      '--data',
      dir,
      ...(dbUrl !== undefined ? ['--db', dbUrl] : []),
      '--quiet',
    ],
    {
      env: { ...process.env, DUET_KEY_PASSPHRASE: PASSPHRASE },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  const url = await new Promise<string>((resolve, reject) => {
    let err = '';
    child.stderr?.on('data', (d: Buffer) => {
      err += d.toString();
      const m = /listening on (http:\/\/[^\s]+)/.exec(err);
      if (m?.[1] !== undefined) resolve(m[1]);
    });
    child.once('exit', (code) => reject(new Error(`duet serve exited ${String(code)}: ${err}`)));
  });
  return { child, url };
}
