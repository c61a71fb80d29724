/**
 * Clearing benchmarks (issue 5).
 *
 * Throughput, in process, durable settings (SQLite WAL synchronous=FULL; PostgreSQL fsync on):
 * intake (`takeBatch`: check the batch's signatures, store it) of pre-signed upload batches, then
 * clearing until nothing is pending (`clearer.drain()`), from the first upload to the end of the
 * drain. In the same run, the floor: P-256 verifications per second on every core (libuv's pool,
 * as `duet serve` verifies), divided by what clearing must verify per record: one (the code's
 * device signature; the credential's issuer signature is cached, and intake verifies one terminal
 * signature per linked run, see intake.ts).
 *
 * The upload storm, over real HTTP against a separate `duet serve` (SQLite): every terminal uploads
 * its whole journal at once in batches of up to UPLOAD_BATCH_RECORDS, a tenth of the requests are
 * dropped (never sent, or the answer thrown away after the server took it) and retried from the
 * last acknowledged sequence; measured until every record is acknowledged and cleared, then the
 * database is checked for records lost and ledger entries posted twice.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { type CryptoProvider, decodeUploadBatch, encodeUploadBatch, type Signer, signRequest } from '@duet/protocol';
import { nodeCrypto } from '@duet/protocol/node';
import {
  type Db,
  openDatabase,
  openPlatform,
  type Platform,
  seedCredential,
  seedHolder,
  seedTerminal,
  seededRandom,
  takeBatch,
} from '@duet/platform';
import { findPgBin, startCluster } from '@duet/platform/pg-cluster';
import type { JournalJob, SignedJournal } from './journal-worker.js';
import { KeepAlivePool, serialize } from './load.js';
import { round3 } from './measure.js';
import { PASSPHRASE, startServer } from './platform.js';

/** Each payment, fen: small enough for any credential's per-payment limit. */
const AMOUNT_FEN = 100;
/** Terminals sharing one merchant (a canteen's windows). */
const TERMINALS_PER_MERCHANT = 10;
/** Codes each holder pays with; holders hold ten times what they spend, so nothing is advanced. */
const CODES_PER_HOLDER = 1_000;
/** Uploads `takeBatch` works on at once in the throughput run (an API process takes many uploads concurrently). */
const INTAKE_CONCURRENCY = 8;
/** Records per upload request in the storm, as a terminal's sync sends them. */
const UPLOAD_BATCH_RECORDS = 1_000;
/** Keep-alive connections the storm's terminals share (a gateway's upstream pool). */
const STORM_CONNECTIONS = 16;
/** Share of storm requests dropped: half never sent, half with the answer thrown away. */
const STORM_DROP = 0.1;
/** How long a terminal waits before it retries a request it lost (its timeout, shortened). */
const STORM_RETRY_MS = 50;
/** How often the storm polls the database for records still pending. */
const STORM_POLL_MS = 100;
/** Retries of 5xx answers before the storm gives up on a terminal. */
const STORM_ERRORS_MAX = 1_000;
const UPLOAD_PATH = '/v1/terminal/upload';

interface ThroughputRun {
  records: number;
  terminals: number;
  seconds: number;
  intake_seconds: number;
  drain_seconds: number;
  posted: number;
}

export interface ClearingFigures {
  clearing_records_per_s: { sqlite: number; postgres: number | { skipped: string } };
  /** P-256 verifications per second on every core ÷ 1 verification per record. */
  clearing_floor_records_per_s: number;
  clearing_vs_floor: { sqlite: number; postgres?: number };
  clearing_runs: { sqlite: ThroughputRun; postgres?: ThroughputRun };
  upload_storm: StormFigures;
}

export interface StormFigures {
  terminals: number;
  records: number;
  seconds: number;
  records_per_s: number;
  lost: number;
  duplicates: number;
  requests: number;
  dropped_unsent: number;
  dropped_answers: number;
  retried_5xx: number;
  refused_records: number;
}

export interface ClearingOptions {
  readonly seconds: number;
  readonly terminals: number;
  readonly recordsPerTerminal: number;
  readonly stormTerminals: number;
  readonly stormRecordsPerTerminal: number;
  /** Seeds the storm's drops. */
  readonly seed: number;
}

export async function benchClearing(o: ClearingOptions, progress: (m: string) => void): Promise<ClearingFigures> {
  progress(`clearing: floor, P-256 verifications on the thread pool for ${o.seconds} s`);
  const floor = await verifyFloor(o.seconds);
  const sqlite = await throughputOn(undefined, o, progress);
  let postgres: ThroughputRun | { skipped: string };
  if (findPgBin() === undefined) postgres = { skipped: 'no PostgreSQL server binaries' };
  else {
    progress('clearing: starting a private PostgreSQL cluster (fsync on)');
    const cluster = await startCluster({ durable: true });
    try {
      postgres = await throughputOn(cluster.url, o, progress);
    } finally {
      cluster.stop();
    }
  }
  const perS = (r: ThroughputRun) => Math.round(r.records / r.seconds);
  const storm = await uploadStorm(o, progress);
  return {
    clearing_records_per_s: { sqlite: perS(sqlite), postgres: 'skipped' in postgres ? postgres : perS(postgres) },
    clearing_floor_records_per_s: floor,
    clearing_vs_floor: {
      sqlite: round2(perS(sqlite) / floor),
      ...('skipped' in postgres ? {} : { postgres: round2(perS(postgres) / floor) }),
    },
    clearing_runs: { sqlite, ...('skipped' in postgres ? {} : { postgres }) },
    upload_storm: storm,
  };
}

const round2 = (v: number) => Math.round(v * 100) / 100;

/** P-256 verifications per second with every core busy: batches of verifications in flight on libuv's pool. */
async function verifyFloor(seconds: number): Promise<number> {
  const crypto = nodeCrypto({ verifyOn: 'pool' });
  const p256 = crypto.suite('p256');
  const key = await p256.generate();
  const message = crypto.randomBytes(200);
  const signature = await key.sign(message);
  const inFlight = 64 * Math.max(1, cpus().length);
  const round = () => Promise.all(Array.from({ length: inFlight }, () => p256.verify(key.publicKey, message, signature)));
  await round();
  const start = performance.now();
  let n = 0;
  while (performance.now() - start < seconds * 1000) {
    const ok = await round();
    if (!ok.every(Boolean)) throw new Error('bench: a floor verification failed');
    n += inFlight;
  }
  return Math.round(n / ((performance.now() - start) / 1000));
}

interface World {
  /** Per terminal, in index order: its id and key. */
  readonly terminals: { readonly terminalId: number; readonly merchantId: number; readonly key: Signer }[];
  readonly journals: SignedJournal[];
}

/** Seeds holders, merchants and terminals into `p`, and signs every terminal's journal in worker threads. */
async function seedWorld(
  p: Platform,
  crypto: CryptoProvider,
  terminalCount: number,
  recordsPerTerminal: number,
  batchRecords: number,
  progress: (m: string) => void,
): Promise<World> {
  const nowS = Math.floor(Date.now() / 1000);
  const p256 = crypto.suite('p256');
  const holderCount = Math.max(1, Math.ceil((terminalCount * recordsPerTerminal) / CODES_PER_HOLDER));
  progress(`clearing: seeding ${holderCount} holders and ${terminalCount} terminals`);
  const holders: JournalJob['holders'][number][] = [];
  for (let h = 0; h < holderCount; h++) {
    const id = 200_000 + h;
    await seedHolder(p.db, { id, name: `bench ${h}`, role: 'student', campus: 1, cashFen: 10 * CODES_PER_HOLDER * AMOUNT_FEN }, nowS);
    const device = await p256.generate();
    const credential = await seedCredential(p.db, p.keys, id, device, nowS);
    const key = await device.exportPrivateKey();
    if (key === undefined) throw new Error('bench: device key not exportable');
    holders.push({ key, credential: credential.bytes });
  }
  const terminals: World['terminals'] = [];
  let merchantId: number | undefined;
  for (let t = 0; t < terminalCount; t++) {
    const key = await p256.generate();
    const seeded = await seedTerminal(
      p.db,
      crypto,
      p.keys,
      {
        ...(t % TERMINALS_PER_MERCHANT === 0 || merchantId === undefined ? {} : { merchantId }),
        merchantName: `Bench canteen ${Math.floor(t / TERMINALS_PER_MERCHANT)}`,
        scene: 'canteen',
        campus: 1,
        location: `window ${t}`,
        key,
      },
      nowS,
    );
    merchantId = seeded.merchantId;
    terminals.push({ terminalId: seeded.terminalId, merchantId: seeded.merchantId, key });
  }
  progress(`clearing: signing ${terminalCount * recordsPerTerminal} records and their codes in worker threads`);
  const jobs = await Promise.all(
    terminals.map(async (t, index) => {
      const key = await t.key.exportPrivateKey();
      if (key === undefined) throw new Error('bench: terminal key not exportable');
      return { index, terminalId: t.terminalId, merchantId: t.merchantId, key };
    }),
  );
  const workers = Math.max(1, Math.min(cpus().length, terminalCount));
  const parts = await Promise.all(
    Array.from({ length: workers }, (_, w) =>
      signInWorker({
        terminals: jobs.filter((_, i) => i % workers === w),
        holders,
        recordsPerTerminal,
        batchRecords,
        timeS: nowS,
        amountFen: AMOUNT_FEN,
      }),
    ),
  );
  const byId = new Map(parts.flat().map((j) => [j.terminalId, j]));
  const journals = terminals.map((t) => {
    const j = byId.get(t.terminalId);
    if (j === undefined) throw new Error(`bench: no journal for terminal ${t.terminalId}`);
    return j;
  });
  return { terminals, journals };
}

function signInWorker(job: JournalJob): Promise<SignedJournal[]> {
  return new Promise((resolve, reject) => {
    const w = new Worker(new URL('./journal-worker.js', import.meta.url), { workerData: job });
    w.once('message', (m: SignedJournal[]) => {
      resolve(m);
      void w.terminate();
    });
    w.once('error', reject);
    w.once('exit', (code) => {
      if (code !== 0) reject(new Error(`bench: journal worker exited ${code}`));
    });
  });
}

/** Runs `fn` over `items` with at most `limit` at once. */
async function eachLimited<T>(items: readonly T[], limit: number, fn: (x: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const x = items[next++] as T;
        await fn(x);
      }
    }),
  );
}

export async function throughputOn(dbUrl: string | undefined, o: ClearingOptions, progress: (m: string) => void): Promise<ThroughputRun> {
  const where = dbUrl === undefined ? 'SQLite' : 'PostgreSQL';
  // The platform's own provider, as `duet serve` builds it: verifications on the thread pool.
  const crypto = nodeCrypto({ verifyOn: 'pool' });
  const dir = mkdtempSync(join(tmpdir(), 'duet-bench-clearing-'));
  const p = await openPlatform({
    ...(dbUrl !== undefined ? { dbUrl } : {}),
    dataDir: dir,
    passphrase: PASSPHRASE,
    crypto,
    clock: { nowMs: () => Date.now() },
    logger: false,
    clearing: false,
  });
  try {
    // Each terminal uploads its backlog as its sync does: batches of up to UPLOAD_BATCH_RECORDS.
    const world = await seedWorld(
      p,
      crypto,
      o.terminals,
      o.recordsPerTerminal,
      Math.min(o.recordsPerTerminal, UPLOAD_BATCH_RECORDS),
      progress,
    );
    // Batches in the order terminals would send them: each terminal's in sequence order, terminals interleaved.
    const uploads: { terminalId: number; publicKey: Uint8Array; bytes: Uint8Array }[] = [];
    const most = Math.max(...world.journals.map((j) => j.batches.length));
    for (let b = 0; b < most; b++)
      world.journals.forEach((j, i) => {
        const bytes = j.batches[b];
        const t = world.terminals[i];
        if (bytes !== undefined && t !== undefined) uploads.push({ terminalId: j.terminalId, publicKey: t.key.publicKey, bytes });
      });
    const total = o.terminals * o.recordsPerTerminal;
    progress(`clearing (${where}): intake of ${uploads.length} batches (${total} records), then drain`);
    // Sequence b+1 of a terminal must not overtake b: per terminal, batches go one at a time.
    const queues = world.journals.map((j, i) => ({ j, t: world.terminals[i] }));
    const start = performance.now();
    await eachLimited(queues, INTAKE_CONCURRENCY, async ({ j, t }) => {
      if (t === undefined) return;
      for (const bytes of j.batches) {
        const r = await takeBatch(p.db, crypto, j.terminalId, t.key.publicKey, bytes, Math.floor(Date.now() / 1000));
        if (r.flagged > 0) throw new Error(`bench: intake flagged records of terminal ${j.terminalId}`);
      }
    });
    const intakeDone = performance.now();
    const drained = await p.clearer.drain();
    const end = performance.now();
    if (drained.posted !== total)
      throw new Error(`bench: clearing posted ${drained.posted} of ${total} records (${JSON.stringify(drained)})`);
    return {
      records: total,
      terminals: o.terminals,
      seconds: round3((end - start) / 1000),
      intake_seconds: round3((intakeDone - start) / 1000),
      drain_seconds: round3((end - intakeDone) / 1000),
      posted: drained.posted,
    };
  } finally {
    await p.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The body that uploads a journal from sequence `from` on: a pre-framed batch when `from` starts one, else re-framed. */
function batchFrom(journal: SignedJournal, from: number): Uint8Array {
  const k = Math.floor((from - 1) / UPLOAD_BATCH_RECORDS);
  const batch = journal.batches[k];
  if (batch === undefined) throw new Error(`bench: terminal ${journal.terminalId} has no record ${from}`);
  if ((from - 1) % UPLOAD_BATCH_RECORDS === 0) return batch;
  const records = decodeUploadBatch(batch).records.filter((r) => r.sequence >= from);
  return encodeUploadBatch(journal.terminalId, records);
}

async function uploadStorm(o: ClearingOptions, progress: (m: string) => void): Promise<StormFigures> {
  const crypto = nodeCrypto();
  const dir = mkdtempSync(join(tmpdir(), 'duet-bench-storm-'));
  const total = o.stormTerminals * o.stormRecordsPerTerminal;
  let server: Awaited<ReturnType<typeof startServer>>['child'] | undefined;
  let reader: Db | undefined;
  try {
    const p = await openPlatform({
      dataDir: dir,
      passphrase: PASSPHRASE,
      crypto,
      clock: { nowMs: () => Date.now() },
      logger: false,
      clearing: false,
    });
    let world: World;
    try {
      world = await seedWorld(p, crypto, o.stormTerminals, o.stormRecordsPerTerminal, UPLOAD_BATCH_RECORDS, progress);
    } finally {
      await p.close();
    }
    progress('storm: starting duet serve (SQLite)');
    const started = await startServer(dir, undefined);
    server = started.child;
    const host = new URL(started.url).host;
    const pool = await KeepAlivePool.open(started.url, STORM_CONNECTIONS);
    reader = await openDatabase(undefined, dir);
    const db = reader;
    const random = seededRandom(o.seed);
    const counts = { requests: 0, unsent: 0, answersLost: 0, errors: 0 };
    progress(`storm: ${o.stormTerminals} terminals upload ${total} records at once, ${STORM_DROP * 100}% of requests dropped`);
    const start = performance.now();
    const terminal = async (i: number): Promise<void> => {
      const journal = world.journals[i];
      const signer = world.terminals[i]?.key;
      if (journal === undefined || signer === undefined) return;
      let acked = 0;
      let errors = 0;
      // The platform refuses a signed request it has seen (same terminal, time and body): a retry
      // within the same second is signed one second on, as a terminal's clock would have moved.
      let lastTimeS = 0;
      while (acked < o.stormRecordsPerTerminal) {
        const body = batchFrom(journal, acked + 1);
        lastTimeS = Math.max(Math.floor(Date.now() / 1000), lastTimeS + 1);
        const auth = await signRequest(signer, journal.terminalId, 'POST', UPLOAD_PATH, body, lastTimeS, crypto.sha256);
        const wire = serialize(host, {
          method: 'POST',
          path: UPLOAD_PATH,
          headers: { 'content-type': 'application/octet-stream', ...auth },
          body,
        });
        counts.requests++;
        const roll = random();
        if (roll < STORM_DROP / 2) {
          counts.unsent++;
          await sleep(STORM_RETRY_MS);
          continue;
        }
        const answer = await pool.send(wire);
        if (roll < STORM_DROP) {
          counts.answersLost++;
          await sleep(STORM_RETRY_MS);
          continue;
        }
        if (answer.status !== 200) {
          counts.errors++;
          if (++errors > STORM_ERRORS_MAX || answer.status < 500)
            throw new Error(`bench: upload of terminal ${journal.terminalId} answered ${answer.status}: ${answer.body.toString()}`);
          await sleep(STORM_RETRY_MS);
          continue;
        }
        acked = (JSON.parse(answer.body.toString()) as { ackedThrough: number }).ackedThrough;
      }
    };
    await Promise.all(world.journals.map((_, i) => terminal(i)));
    const uploaded = performance.now();
    progress(`storm: every record acknowledged after ${round3((uploaded - start) / 1000)} s; waiting for clearing`);
    for (;;) {
      const r = await db.one<{ n: number }>("SELECT COUNT(*) AS n FROM records WHERE cleared = 'pending'");
      if (Number(r?.n) === 0) break;
      await sleep(STORM_POLL_MS);
    }
    const end = performance.now();
    pool.close();
    const seconds = (end - start) / 1000;
    const num = async (sql: string) => Number((await db.one<{ n: number }>(sql))?.n ?? Number.NaN);
    const posted = await num("SELECT COUNT(*) AS n FROM records WHERE cleared = 'posted'");
    const refused = await num("SELECT COUNT(*) AS n FROM records WHERE cleared NOT IN ('posted', 'linked')");
    const entries = await num("SELECT COUNT(*) AS n FROM ledger_entries WHERE kind IN ('offline_payment', 'loss_payment')");
    const twice = await num(
      "SELECT COUNT(*) AS n FROM (SELECT reference FROM ledger_entries WHERE kind IN ('offline_payment', 'loss_payment') GROUP BY reference HAVING COUNT(*) > 1) x",
    );
    return {
      terminals: o.stormTerminals,
      records: total,
      seconds: round3(seconds),
      records_per_s: Math.round(total / seconds),
      lost: total - posted,
      duplicates: twice + Math.max(0, entries - posted),
      requests: counts.requests,
      dropped_unsent: counts.unsent,
      dropped_answers: counts.answersLost,
      retried_5xx: counts.errors,
      refused_records: refused,
    };
  } finally {
    await reader?.close();
    server?.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}
