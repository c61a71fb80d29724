/**
 * Online authorization (issue 4): terminals' signed POST /v1/terminal/authorize against a real
 * `duet serve` process on loopback (SQLite, synchronous=FULL), open loop at a fixed rate: request i
 * is due at t0 + i/rate and its latency counts from then, so queueing is not hidden. In the same
 * run, the floor: GET /healthz (an HTTP round trip and one database read) at the same rate.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { Agent, request as httpRequest } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeCode, signRequest } from '@duet/protocol';
import { nodeCrypto } from '@duet/protocol/node';
import { openPlatform, seedCredential, seedHolder, seedTerminal } from '@duet/platform';
import { round3 } from './measure.js';

export interface PlatformFigures {
  online_auth_ms: { p50: number; p99: number; max: number };
  online_auth_rps: number;
  online_auth_approved: number;
  online_auth_requests: number;
  online_auth_floor_ms: { p50: number; p99: number };
  /** The warm-up pass: every payer's first code (credential and device key seen for the first time), at half rate. */
  online_auth_cold_ms: { p50: number; p99: number };
}

const PASSPHRASE = 'bench-passphrase-only';

export async function benchPlatform(rate: number, seconds: number, progress: (m: string) => void): Promise<PlatformFigures> {
  const crypto = nodeCrypto();
  const dir = mkdtempSync(join(tmpdir(), 'duet-bench-platform-'));
  const total = rate * seconds;
  const holders = Math.max(1, Math.ceil(total / 10));
  // Each payer has 2,000 yuan and pays 10 yuan per code: the warm-up code and 10 measured ones fit easily.
  let server: ChildProcess | undefined;
  try {
    progress(`platform: seeding ${holders} holders with credentials`);
    const nowS = Math.floor(Date.now() / 1000);
    const p = await openPlatform({ dataDir: dir, passphrase: PASSPHRASE, crypto, clock: { nowMs: () => Date.now() }, logger: false });
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

    progress(`platform: starting duet serve and signing ${total} requests`);
    const { child, url } = await startServer(dir);
    server = child;
    const requests: { body: Uint8Array; headers: Record<string, string> }[] = [];
    // The first `holders` requests (counter 1 of each payer) are the warm-up; the measured run follows.
    for (let i = 0; i < total + holders; i++) {
      const d = devices[i % holders];
      if (d === undefined) throw new Error('bench: no device');
      const code = await makeCode(d.credential, d.device, nowS, 1 + Math.floor(i / holders));
      const body = new TextEncoder().encode(
        JSON.stringify({ code: Buffer.from(code.bytes).toString('base64'), amount: 1_000, time: nowS }),
      );
      const auth = await signRequest(terminalKey, terminalId, 'POST', '/v1/terminal/authorize', body, nowS, crypto.sha256);
      requests.push({ body, headers: { 'content-type': 'application/json', ...auth } });
    }

    // A fixed pool of keep-alive connections, as a fleet of terminals behind a gateway would hold.
    const agent = new Agent({ keepAlive: true, maxSockets: 64 });
    const send = (method: string, path: string, headers: Record<string, string>, body?: Uint8Array) =>
      new Promise<{ status: number; text: string }>((resolve, reject) => {
        const req = httpRequest(
          new URL(path, url),
          { method, headers: body === undefined ? headers : { ...headers, 'content-length': String(body.length) }, agent },
          (res) => {
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (c: string) => {
              text += c;
            });
            res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
          },
        );
        req.on('error', reject);
        req.end(body === undefined ? undefined : Buffer.from(body));
      });
    progress(`platform: floor, GET /healthz at ${rate}/s`);
    const floor = await openLoop(rate, Math.min(total, rate * 2), async () => (await send('GET', '/healthz', {})).status === 200);

    const authorize = async (i: number) => {
      const req = requests[i];
      if (req === undefined) return false;
      const r = await send('POST', '/v1/terminal/authorize', req.headers, req.body);
      return r.status === 200 && (JSON.parse(r.text) as { approved?: boolean }).approved === true;
    };
    progress(`platform: warm-up, ${holders} first codes at ${rate / 2}/s`);
    const cold = await openLoop(rate / 2, holders, authorize);
    progress(`platform: online authorization at ${rate}/s for ${seconds} s`);
    const run = await openLoop(rate, total, async (i) => {
      const req = requests[holders + i];
      if (req === undefined) return false;
      const r = await send('POST', '/v1/terminal/authorize', req.headers, req.body);
      return r.status === 200 && (JSON.parse(r.text) as { approved?: boolean }).approved === true;
    });
    agent.destroy();
    return {
      online_auth_ms: run.latency,
      online_auth_rps: run.achievedRps,
      online_auth_approved: run.ok,
      online_auth_requests: total,
      online_auth_floor_ms: { p50: floor.latency.p50, p99: floor.latency.p99 },
      online_auth_cold_ms: { p50: cold.latency.p50, p99: cold.latency.p99 },
    };
  } finally {
    server?.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}

async function startServer(dir: string): Promise<{ child: ChildProcess; url: string }> {
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

/** Fires `count` operations at `rate` per second without waiting for answers; latency counts from each one's due time. */
async function openLoop(rate: number, count: number, op: (i: number) => Promise<boolean>) {
  const samples = new Float64Array(count);
  let ok = 0;
  const start = performance.now();
  const inflight: Promise<void>[] = [];
  // Send in ticks of a few milliseconds: sleeping once per request would let timer granularity make
  // the generator itself fall behind its schedule, and that lag would be counted as server latency.
  let next = 0;
  while (next < count) {
    const now = performance.now();
    while (next < count && start + (next * 1000) / rate <= now) {
      const i = next++;
      const due = start + (i * 1000) / rate;
      inflight.push(
        op(i).then(
          (good) => {
            if (good) ok++;
            samples[i] = performance.now() - due;
          },
          () => {
            samples[i] = performance.now() - due;
          },
        ),
      );
    }
    await new Promise((r) => setTimeout(r, 4));
  }
  await Promise.all(inflight);
  const elapsedS = (performance.now() - start) / 1000;
  samples.sort();
  const at = (q: number) => round3(samples[Math.min(count - 1, Math.floor(q * count))] ?? 0);
  return { latency: { p50: at(0.5), p99: at(0.99), max: round3(samples[count - 1] ?? 0) }, ok, achievedRps: Math.round(count / elapsedS) };
}
