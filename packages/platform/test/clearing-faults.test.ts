/**
 * Clearing is exactly once under scale-out and faults (issue 5). Real terminals' records (real
 * device-signed codes as evidence, terminal-signed records, signed HTTP uploads) reach real
 * platforms, and at the end the books are checked against what the terminals made:
 *
 *   every record acknowledged is held, cleared and posted exactly once (one ledger entry per
 *   record reference, as many entries as posted records); every merchant's payable is the sum of
 *   its paid records; every holder has its starting money less what it paid; the ledger audits
 *   clean (every entry balances, every stored balance is the sum of its postings, the total is 0).
 *
 * - Two `duet serve` processes on one PostgreSQL, both clearing in the background, take thousands
 *   of records concurrently, the same batches to both (duplicates), overlapping and reordered.
 * - A `duet serve` SIGKILLed again and again while it clears a backlog (SQLite and PostgreSQL),
 *   restarted on the same data each time.
 * - PostgreSQL unreachable while clearing has a backlog: the Clearer records the error, retries
 *   on its interval, and clears everything exactly once when the database is back, with no upload
 *   to kick it.
 * - Bad input: duplicated, reordered and partial batches; a body cut off in transit; records with a
 *   valid signature but an amount over the credential's per-payment limit or a time in the future.
 *
 * Randomness comes from one seeded PRNG (DUET_TEST_SEED to replay a run; the seed is printed).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type Credential,
  encodeUploadBatch,
  fen,
  GENESIS_HASH,
  makeCode,
  type Signer,
  signRecord,
  signRequest,
  type TerminalRecord,
} from '@duet/protocol';
import { nodeCrypto } from '@duet/protocol/node';
import { afterAll, describe, expect, it } from 'vitest';
import { CLEARING_RULES } from '../src/clearing.js';
import type { Db, Queryable } from '../src/db/db.js';
import { openSqlite } from '../src/db/sqlite.js';
import { StorageUnavailableError } from '../src/db/db.js';
import { auditLedger, holderBalances, merchantPayables, normalBalance, rawBalance } from '../src/ledger.js';
import { openPlatform, type Platform } from '../src/platform.js';
import { seedCredential, seedHolder, seedTerminal } from '../src/seed.js';
import { PASSPHRASE } from './http-harness.js';
import { databases, freshPostgres, pgAvailable, type TestDatabase, type TestStorage } from './pg-harness.js';
import { serve, type Served } from './serve-harness.js';
import { seededRandom } from '../src/random.js';
import { TcpProxy } from './tcp-proxy.js';

const SEED = Number(process.env.DUET_TEST_SEED ?? 20_260_301);
console.log(`clearing-faults: seed ${SEED} (DUET_TEST_SEED=${SEED} replays it)`);

/** The shared seeded generator, with whole numbers below n. */
function prng(seed: number): { next(): number; int(n: number): number } {
  const next = seededRandom(seed);
  return { next, int: (n: number) => Math.floor(next() * n) };
}

const crypto = nodeCrypto();
/** The process suites take 30-45 s alone; the margin is for a machine running every test file at once. */
const HEAVY_TIMEOUT_MS = 150_000;
const nowS = () => Math.floor(Date.now() / 1000);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'duet-clearing-'));
  dirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------
// A campus: payers with money and credentials, terminals that make signed records

interface Payer {
  readonly id: number;
  readonly device: Signer;
  readonly credential: Credential;
  readonly startFen: number;
  counter: number;
}

interface Made {
  readonly record: TerminalRecord;
  readonly holder: number;
  /** False for a record clearing must refuse (the merchant is not paid, the holder not charged). */
  readonly pays: boolean;
}

interface Till {
  readonly id: number;
  readonly merchantId: number;
  readonly signer: Signer;
  readonly made: Made[];
  lastHash: Uint8Array;
}

interface Campus {
  readonly payers: Payer[];
  readonly tills: Till[];
}

const CASH_FEN = 1_000_000;
const SUBSIDY_FEN = 30_000;

/** Seeds holders, credentials and terminals (one merchant each) through the same functions the API uses. */
async function seedCampus(
  p: Platform,
  o: { readonly tills: number; readonly payers: number; readonly firstHolder: number },
): Promise<Campus> {
  const t = nowS();
  const payers: Payer[] = [];
  for (let i = 0; i < o.payers; i++) {
    const id = o.firstHolder + i;
    await seedHolder(p.db, { id, name: `payer ${id}`, role: 'student', campus: 1, cashFen: CASH_FEN, subsidyFen: SUBSIDY_FEN }, t);
    const device = await crypto.suite('p256').generate();
    payers.push({
      id,
      device,
      credential: await seedCredential(p.db, p.keys, id, device, t),
      startFen: CASH_FEN + SUBSIDY_FEN,
      counter: 0,
    });
  }
  const tills: Till[] = [];
  for (let i = 0; i < o.tills; i++) {
    const signer = await crypto.suite('p256').generate();
    const { terminalId, merchantId } = await seedTerminal(
      p.db,
      crypto,
      p.keys,
      { merchantName: `canteen ${i}`, scene: 'canteen', campus: 1, location: `window ${i}`, key: signer },
      t,
    );
    tills.push({ id: terminalId, merchantId, signer, made: [], lastHash: GENESIS_HASH });
  }
  return { payers, tills };
}

/** Opens a platform in this process on `dbUrl` (or SQLite in `dataDir`), seeds, and closes it. */
async function seedOn(
  storage: { readonly dbUrl?: string; readonly dataDir: string },
  o: Parameters<typeof seedCampus>[1],
): Promise<Campus> {
  const p = await openPlatform({
    ...(storage.dbUrl !== undefined ? { dbUrl: storage.dbUrl } : {}),
    dataDir: storage.dataDir,
    passphrase: PASSPHRASE,
    crypto,
    clock: { nowMs: () => Date.now() },
    logger: false,
    clearing: false,
  });
  try {
    return await seedCampus(p, o);
  } finally {
    await p.close();
  }
}

interface RecordOptions {
  readonly amount?: number;
  /** Seconds the terminal's clock (record time) runs ahead of the real one. */
  readonly recordAheadS?: number;
  /** Seconds the phone's clock (code time) runs ahead of the real one. */
  readonly codeAheadS?: number;
  readonly pays?: boolean;
}

/** The till makes its next record: a payment by `payer`, with a fresh code as evidence. */
async function makeRecord(till: Till, payer: Payer, amount: number, o: RecordOptions = {}): Promise<Made> {
  const t = nowS();
  const code = await makeCode(payer.credential, payer.device, t + (o.codeAheadS ?? 0), ++payer.counter);
  const record = await signRecord(
    {
      terminalId: till.id,
      sequence: till.made.length + 1,
      previousHash: till.lastHash,
      time: t + (o.recordAheadS ?? 0),
      kind: 'payment',
      path: 'offline',
      medium: 'qr',
      outcome: 'accepted',
      amount: fen(amount),
      merchantId: till.merchantId,
      trustListVersion: 1,
      denyListVersion: 1,
      policyVersion: 1,
      evidence: code.bytes,
      terminalSuite: 'p256',
    },
    till.signer,
  );
  till.lastHash = crypto.sha256(record.bytes);
  const made = { record, holder: payer.id, pays: o.pays ?? true };
  till.made.push(made);
  return made;
}

/** `n` payments at every till, by random payers, of 1 to 20 yuan. */
async function makeRecords(campus: Campus, perTill: number, rng: ReturnType<typeof prng>): Promise<void> {
  for (const till of campus.tills) {
    for (let i = 0; i < perTill; i++) {
      const payer = campus.payers[rng.int(campus.payers.length)];
      if (payer === undefined) throw new Error('no payer');
      await makeRecord(till, payer, 100 + rng.int(1_901));
    }
  }
}

/** The upload batch of records from..to (1-based, inclusive). */
function batchOf(till: Till, from: number, to: number): Uint8Array {
  return encodeUploadBatch(
    till.id,
    till.made.slice(from - 1, to).map((m) => m.record),
  );
}

// ---------------------------------------------------------------------------------------------
// Terminals talking to platforms over HTTP

interface UploadAnswer {
  readonly ackedThrough: number;
  readonly stored: number;
  readonly duplicates: number;
  readonly flagged: number;
}

type Upload = { readonly status: number; readonly body: UploadAnswer & { error?: { code: string } } };

/**
 * Signs every request at a distinct second per terminal and platform, from a little in the past
 * (within the platform's window): the platform refuses a signed request it has seen before.
 */
class Uplink {
  readonly #last = new Map<string, number>();
  /** 503 answers the terminals retried. */
  busy = 0;

  async post(url: string, till: Till, body: Uint8Array, signedBody = body): Promise<Upload> {
    const key = `${url} ${till.id}`;
    const t = Math.max(nowS() - 200, (this.#last.get(key) ?? 0) + 1);
    this.#last.set(key, t);
    const headers = await signRequest(till.signer, till.id, 'POST', '/v1/terminal/upload', signedBody, t, crypto.sha256);
    const res = await fetch(`${url}/v1/terminal/upload`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream', ...headers },
      body: new Uint8Array(body),
    });
    return { status: res.status, body: (await res.json()) as Upload['body'] };
  }

  /** As a terminal uploads: a 503 (storage busy or down) is retried after a pause; anything else is returned. */
  async upload(url: string, till: Till, body: Uint8Array): Promise<Upload> {
    for (let attempt = 0; ; attempt++) {
      const r = await this.post(url, till, body);
      if (r.status !== 503 || attempt >= 20) return r;
      this.busy++;
      await sleep(50 + attempt * 50);
    }
  }
}

function expectAcked(r: Upload): UploadAnswer {
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  return r.body;
}

// ---------------------------------------------------------------------------------------------
// What the books must say

const count = async (q: Queryable, sql: string, params: (number | string)[] = []): Promise<number> =>
  Number((await q.one<{ n: number }>(sql, params))?.n ?? -1);

async function pendingCount(q: Queryable): Promise<number> {
  return count(q, "SELECT COUNT(*) AS n FROM records WHERE cleared = 'pending'");
}

/** Waits until every record the tills made is held and none is pending. */
async function waitCleared(q: Queryable, campus: Campus, timeoutMs: number): Promise<void> {
  const made = campus.tills.reduce((s, t) => s + t.made.length, 0);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const held = await count(q, 'SELECT COUNT(*) AS n FROM records');
    const pending = await pendingCount(q);
    if (held === made && pending === 0) return;
    if (Date.now() > deadline) throw new Error(`not cleared in ${timeoutMs} ms: ${held}/${made} held, ${pending} pending`);
    await sleep(100);
  }
}

/**
 * Nothing posted twice, nothing half-done: one ledger entry per posted record and none for any
 * other record, and the ledger audits clean. Holds at every moment, even right after a kill.
 */
async function expectNoDoublePosting(q: Queryable): Promise<void> {
  const twice = await q.all(
    "SELECT reference, COUNT(*) AS n FROM ledger_entries WHERE reference LIKE 'record:%' GROUP BY reference HAVING COUNT(*) <> 1",
  );
  expect(twice, 'a record posted more than once').toEqual([]);
  const entries = await count(q, "SELECT COUNT(*) AS n FROM ledger_entries WHERE reference LIKE 'record:%'");
  const posted = await count(q, "SELECT COUNT(*) AS n FROM records WHERE cleared = 'posted'");
  expect(entries, 'ledger entries for records vs records posted').toBe(posted);
  const unmatched = await q.all(
    `SELECT r.terminal_id, r.sequence, r.cleared FROM records r
     WHERE (r.cleared = 'posted') <> EXISTS (SELECT 1 FROM ledger_entries e WHERE e.reference = 'record:' || r.terminal_id || ':' || r.sequence)
     LIMIT 10`,
  );
  expect(unmatched, 'records whose state and ledger entry disagree').toEqual([]);
  const audit = await auditLedger(q);
  expect({ unbalanced: audit.unbalancedEntries, mismatches: audit.balanceMismatches, total: audit.totalBalance }).toEqual({
    unbalanced: [],
    mismatches: [],
    total: 0,
  });
}

/** Everything the tills made is held, acknowledged and cleared as expected, and the money adds up. */
async function expectBooks(q: Queryable, campus: Campus): Promise<void> {
  await expectNoDoublePosting(q);
  for (const till of campus.tills) {
    const ack = await q.one<{ acked_through: number }>('SELECT acked_through FROM intake_acks WHERE terminal_id = ?', [till.id]);
    expect(ack?.acked_through, `terminal ${till.id} acknowledged`).toBe(till.made.length);
    const rows = await q.all('SELECT sequence, cleared, bytes FROM records WHERE terminal_id = ? ORDER BY sequence', [till.id]);
    const got = rows.map((r) => ({ sequence: Number(r.sequence), cleared: String(r.cleared) }));
    const want = till.made.map((m, i) => ({ sequence: i + 1, cleared: m.pays ? 'posted' : 'refused' }));
    expect(got, `terminal ${till.id} records`).toEqual(want);
    for (const [i, r] of rows.entries()) expect(r.bytes, `terminal ${till.id} record ${i + 1} bytes`).toEqual(till.made[i]?.record.bytes);
  }
  const posted = await count(q, "SELECT COUNT(*) AS n FROM records WHERE cleared = 'posted'");
  expect(posted).toBe(campus.tills.reduce((s, t) => s + t.made.filter((m) => m.pays).length, 0));

  const owed = new Map<number, number>();
  const paid = new Map<number, number>();
  for (const till of campus.tills)
    for (const m of till.made) {
      if (!m.pays) continue;
      owed.set(till.merchantId, (owed.get(till.merchantId) ?? 0) + m.record.amount);
      paid.set(m.holder, (paid.get(m.holder) ?? 0) + m.record.amount);
    }
  const payables = await merchantPayables(
    q,
    campus.tills.map((t) => t.merchantId),
  );
  for (const till of campus.tills) {
    const account = payables.get(till.merchantId);
    if (account === undefined) throw new Error(`no payable for merchant ${till.merchantId}`);
    const balance = normalBalance(await rawBalance(q, account), 'credit');
    expect(balance, `merchant ${till.merchantId} payable`).toBe(owed.get(till.merchantId) ?? 0);
  }
  for (const payer of campus.payers) {
    const b = await holderBalances(q, payer.id);
    expect(
      { money: b.cash + b.subsidy, creditUsed: b.creditUsed, arrears: b.arrears },
      `holder ${payer.id}: started with ${payer.startFen}, paid ${paid.get(payer.id) ?? 0}`,
    ).toEqual({ money: payer.startFen - (paid.get(payer.id) ?? 0), creditUsed: 0, arrears: 0 });
  }
}

// ---------------------------------------------------------------------------------------------
// 1. Two processes, one PostgreSQL

describe.skipIf(!pgAvailable)('two duet serve processes on one PostgreSQL', () => {
  const running: Served[] = [];
  afterAll(async () => {
    for (const s of running) {
      s.child.kill('SIGKILL');
      await s.exited;
    }
  });

  it(
    'post every record exactly once, whatever each process receives (duplicates to both, overlaps, reordering)',
    async () => {
      const rng = prng(SEED);
      const storage = await freshPostgres();
      let t0 = Date.now();
      const campus = await seedOn({ dbUrl: storage.location, dataDir: tempDir() }, { tills: 8, payers: 40, firstHolder: 510_001 });
      console.log(`two processes: seeded in ${Date.now() - t0} ms`);
      t0 = Date.now();
      await makeRecords(campus, 400, rng);
      console.log(`two processes: made records in ${Date.now() - t0} ms`);
      const a = await serve(['--db', storage.location, '--data', tempDir()]);
      running.push(a);
      const b = await serve(['--db', storage.location, '--data', tempDir()]);
      running.push(b);
      const urls = [a.url, b.url];
      const link = new Uplink();

      // Each till's batches: 20..80 records, each overlapping the one before by up to 10; a third
      // go to both processes at once, about one in six is sent before the batch ahead of it.
      let both = 0;
      let swapped = 0;
      const sendAll = async (till: Till) => {
        const batches: [number, number][] = [];
        for (let from = 1; from <= till.made.length; ) {
          const to = Math.min(till.made.length, from + 19 + rng.int(61));
          batches.push([Math.max(1, from - rng.int(11)), to]);
          from = to + 1;
        }
        for (let i = 0; i + 1 < batches.length; i++) {
          if (rng.next() < 1 / 6) {
            const x = batches[i];
            const y = batches[i + 1];
            if (x === undefined || y === undefined) continue;
            batches[i] = y;
            batches[i + 1] = x;
            swapped++;
            i++;
          }
        }
        for (const [from, to] of batches) {
          const body = batchOf(till, from, to);
          const targets = rng.next() < 1 / 3 ? urls : [urls[rng.int(2)] ?? a.url];
          if (targets.length === 2) both++;
          const answers = await Promise.all(targets.map((url) => link.upload(url, till, body)));
          for (const r of answers) expect(expectAcked(r).ackedThrough).toBeLessThanOrEqual(till.made.length);
        }
        // The terminal's last upload: both processes acknowledge the whole chain.
        for (const url of urls)
          expect(expectAcked(await link.upload(url, till, batchOf(till, till.made.length, till.made.length))).ackedThrough).toBe(
            till.made.length,
          );
      };
      const started = Date.now();
      await Promise.all(campus.tills.map(sendAll));
      const uploadedMs = Date.now() - started;

      const db = await storage.open();
      await waitCleared(db, campus, 45_000);
      console.log(
        `two processes: ${campus.tills.length * 400} records uploaded in ${uploadedMs} ms (${both} batches to both, ${swapped} swapped, ${link.busy} busy retries), cleared after ${Date.now() - started} ms in ${await count(db, 'SELECT COUNT(*) AS n FROM clearing_runs')} runs`,
      );
      expect(both).toBeGreaterThan(0);
      expect(swapped).toBeGreaterThan(0);
      await expectBooks(db, campus);
      expect(await count(db, 'SELECT COUNT(*) AS n FROM clearing_flags')).toBe(0);
      expect(await count(db, 'SELECT COUNT(*) AS n FROM intake_flags')).toBe(0);
    },
    HEAVY_TIMEOUT_MS,
  );
});

// ---------------------------------------------------------------------------------------------
// 2. SIGKILL in the middle of clearing

function killTest(d: TestDatabase, seedOffset: number): void {
  it.skipIf(!d.available)(
    `${d.name}: a duet serve SIGKILLed again and again while clearing a backlog posts each record once and loses none`,
    async () => {
      const rng = prng(SEED + seedOffset);
      const dataDir = tempDir();
      let storage: TestStorage | undefined;
      if (d.name === 'postgres') storage = await freshPostgres();
      const args = storage === undefined ? ['--data', dataDir] : ['--db', storage.location, '--data', dataDir];
      const openDirect = async (): Promise<Db> => (storage === undefined ? openSqlite(join(dataDir, 'duet.db')) : storage.open());
      const closeDirect = async (db: Db) => {
        if (storage === undefined) await db.close();
      };
      const campus = await seedOn(
        { ...(storage !== undefined ? { dbUrl: storage.location } : {}), dataDir },
        { tills: 4, payers: 20, firstHolder: 520_001 },
      );
      const KILLS = 4;
      const PER_PHASE = 250;
      const t0 = Date.now();
      await makeRecords(campus, PER_PHASE * (KILLS + 1), rng);
      console.log(`${d.name}: made ${campus.tills.length * PER_PHASE * (KILLS + 1)} records in ${Date.now() - t0} ms`);
      const link = new Uplink();
      const acked = new Map<number, number>();
      let killedMidBacklog = 0;

      /** Each till uploads, from what the platform holds, its records up to `through`, 100 at a time, until the process dies. */
      const uploadUpTo = async (url: string, through: number) => {
        await Promise.all(
          campus.tills.map(async (till) => {
            for (;;) {
              const from = (acked.get(till.id) ?? 0) + 1;
              if (from > through) return;
              let r: Upload;
              try {
                r = await link.upload(url, till, batchOf(till, from, Math.min(through, from + 99)));
              } catch {
                return; // the process is gone
              }
              acked.set(till.id, Math.max(acked.get(till.id) ?? 0, expectAcked(r).ackedThrough));
            }
          }),
        );
      };

      for (let k = 0; k < KILLS; k++) {
        const s = await serve(args);
        const direct = await openDirect();
        try {
          const postedBefore = await count(direct, "SELECT COUNT(*) AS n FROM records WHERE cleared = 'posted'");
          const uploading = uploadUpTo(s.url, PER_PHASE * (k + 1));
          // A random moment once clearing is under way in this process.
          const deadline = Date.now() + 20_000;
          while (Date.now() < deadline) {
            if ((await count(direct, "SELECT COUNT(*) AS n FROM records WHERE cleared = 'posted'")) > postedBefore) break;
            await sleep(5);
          }
          // Soon: clearing is fast enough to finish a phase's backlog within a few hundred ms.
          await sleep(rng.int(40));
          s.child.kill('SIGKILL');
          expect(await s.exited).toEqual({ code: null, signal: 'SIGKILL' });
          await uploading;
        } finally {
          s.child.kill('SIGKILL');
          await closeDirect(direct);
        }
        // Right after the kill: everything acknowledged is held, nothing is posted twice or half.
        const db = await openDirect();
        try {
          for (const till of campus.tills) {
            const ack = await db.one<{ acked_through: number }>('SELECT acked_through FROM intake_acks WHERE terminal_id = ?', [till.id]);
            expect(ack?.acked_through ?? 0, `terminal ${till.id}`).toBeGreaterThanOrEqual(acked.get(till.id) ?? 0);
          }
          await expectNoDoublePosting(db);
          const pending = await pendingCount(db);
          const posted = await count(db, "SELECT COUNT(*) AS n FROM records WHERE cleared = 'posted'");
          if (pending > 0 && posted > 0) killedMidBacklog++;
          console.log(`${d.name} kill ${k + 1}: ${posted} posted, ${pending} pending`);
        } finally {
          await closeDirect(db);
        }
      }
      // The kills must have landed while clearing had work left, or this test proves nothing.
      expect(killedMidBacklog).toBeGreaterThan(0);

      const last = await serve(args);
      try {
        await uploadUpTo(last.url, PER_PHASE * (KILLS + 1));
        for (const till of campus.tills) expect(acked.get(till.id)).toBe(till.made.length);
        const db = await openDirect();
        try {
          await waitCleared(db, campus, 45_000);
          await expectBooks(db, campus);
        } finally {
          await closeDirect(db);
        }
      } finally {
        last.child.kill('SIGTERM');
        await last.exited;
      }
    },
    HEAVY_TIMEOUT_MS,
  );
}

describe('a duet serve killed in the middle of clearing', () => {
  for (const [i, d] of databases.entries()) killTest(d, 1_000 * (i + 1));
});

// ---------------------------------------------------------------------------------------------
// 3. PostgreSQL unreachable while clearing

describe.skipIf(!pgAvailable)('PostgreSQL unreachable while clearing', () => {
  it('clearing survives the outage (records the error, retries on its interval) and clears everything once when the database is back', async () => {
    const rng = prng(SEED + 3_000);
    const storage = await freshPostgres();
    const target = new URL(storage.location);
    const proxy = await TcpProxy.start(target.hostname, Number(target.port));
    const p = await openPlatform({
      dbUrl: proxy.via(storage.location),
      dataDir: tempDir(),
      passphrase: PASSPHRASE,
      crypto,
      clock: { nowMs: () => Date.now() },
      logger: false,
      clearing: { intervalMs: 200 },
    });
    try {
      const url = await p.app.listen({ host: '127.0.0.1', port: 0 });
      const campus = await seedCampus(p, { tills: 4, payers: 20, firstHolder: 530_001 });
      await makeRecords(campus, 600, rng);
      const direct = await storage.open();
      const link = new Uplink();
      // Everything acknowledged, then the database goes away before clearing can finish.
      await Promise.all(
        campus.tills.map(async (till) => {
          for (let from = 1; from <= till.made.length; from += 200)
            expectAcked(await link.upload(url, till, batchOf(till, from, Math.min(till.made.length, from + 199))));
        }),
      );
      await proxy.cut();
      const pendingAtCut = await pendingCount(direct);
      expect(pendingAtCut, 'the outage must begin with a backlog').toBeGreaterThan(0);

      // Several intervals without a database: the Clearer records the storage error and goes on.
      const deadline = Date.now() + 10_000;
      while (!(p.clearer.error instanceof StorageUnavailableError) && Date.now() < deadline) await sleep(50);
      expect(p.clearer.error).toBeInstanceOf(StorageUnavailableError);
      const refused = await link.post(url, campus.tills[0] as Till, batchOf(campus.tills[0] as Till, 1, 1));
      expect(refused.status).toBe(503);
      await sleep(1_500);
      expect(p.clearer.error).toBeInstanceOf(StorageUnavailableError);
      expect(await pendingCount(direct)).toBeGreaterThan(0);
      await expectNoDoublePosting(direct);

      // Back: no upload kicks it; the Clearer's own interval clears the backlog, each record once.
      await proxy.restore();
      await waitCleared(direct, campus, 30_000);
      console.log(`outage: ${pendingAtCut} pending when the database went away, all cleared after it came back`);
      await expectBooks(direct, campus);
      await sleep(300);
      expect(p.clearer.error).toBeUndefined();
    } finally {
      await proxy.restore().catch(() => {});
      await p.close();
      await proxy.cut();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// 4. Bad input

/** An in-process platform with background clearing off: the test drains when it wants. */
async function platformOn(d: TestDatabase): Promise<{ p: Platform; url: string }> {
  const storage = await d.fresh();
  const p = await openPlatform({
    dbUrl: d.name === 'sqlite' ? `sqlite:${storage.location}` : storage.location,
    dataDir: tempDir(),
    passphrase: PASSPHRASE,
    crypto,
    clock: { nowMs: () => Date.now() },
    logger: false,
    clearing: false,
  });
  return { p, url: await p.app.listen({ host: '127.0.0.1', port: 0 }) };
}

/** Sends `body` with a Content-Length of `declared` and closes the connection after it: a body cut off in transit. */
async function cutOffUpload(url: string, till: Till, full: Uint8Array, sent: number): Promise<string> {
  const headers = await signRequest(till.signer, till.id, 'POST', '/v1/terminal/upload', full, nowS() - 250, crypto.sha256);
  const u = new URL(url);
  return new Promise((resolve) => {
    let answer = '';
    const s = connect(Number(u.port), u.hostname, () => {
      const head = [
        'POST /v1/terminal/upload HTTP/1.1',
        `Host: ${u.host}`,
        'Content-Type: application/octet-stream',
        `Content-Length: ${full.length}`,
        ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
        '',
        '',
      ].join('\r\n');
      s.write(head);
      s.end(full.subarray(0, sent));
    });
    s.setEncoding('utf8');
    s.on('data', (c: string) => {
      answer += c;
    });
    s.on('close', () => resolve(answer));
    s.on('error', () => resolve(answer));
  });
}

function badInputTests(d: TestDatabase): void {
  describe.skipIf(!d.available)(`${d.name}: bad input`, () => {
    const open: Platform[] = [];
    afterAll(async () => {
      for (const p of open) await p.close();
    });

    it('duplicated, reordered and partial batches: only the unbroken chain clears, each record once', async () => {
      const { p, url } = await platformOn(d);
      open.push(p);
      const campus = await seedCampus(p, { tills: 1, payers: 3, firstHolder: 540_001 });
      await makeRecords(campus, 30, prng(SEED + 4_000));
      const till = campus.tills[0] as Till;
      const link = new Uplink();
      // Records 11..30 before 1..10: held, not acknowledged, not cleared.
      expect(expectAcked(await link.upload(url, till, batchOf(till, 11, 20)))).toEqual({
        ackedThrough: 0,
        stored: 10,
        duplicates: 0,
        flagged: 0,
      });
      expect(expectAcked(await link.upload(url, till, batchOf(till, 21, 30)))).toEqual({
        ackedThrough: 0,
        stored: 10,
        duplicates: 0,
        flagged: 0,
      });
      expect((await p.clearer.drain()).records).toBe(0);
      expect(await pendingCount(p.db)).toBe(20);
      // The gap filled by a batch overlapping what is held: the whole chain is acknowledged.
      expect(expectAcked(await link.upload(url, till, batchOf(till, 1, 12)))).toEqual({
        ackedThrough: 30,
        stored: 10,
        duplicates: 2,
        flagged: 0,
      });
      expect(expectAcked(await link.upload(url, till, batchOf(till, 1, 30)))).toEqual({
        ackedThrough: 30,
        stored: 0,
        duplicates: 30,
        flagged: 0,
      });
      // Background clearing is off (`clearing: false`): an upload's kick must not start it.
      await sleep(500);
      expect(await pendingCount(p.db)).toBe(30);
      expect((await p.clearer.drain()).posted).toBe(30);
      // The same batches after clearing change nothing.
      expect(expectAcked(await link.upload(url, till, batchOf(till, 5, 25)))).toEqual({
        ackedThrough: 30,
        stored: 0,
        duplicates: 21,
        flagged: 0,
      });
      expect((await p.clearer.drain()).records).toBe(0);
      await expectBooks(p.db, campus);
    });

    it('a batch cut off in transit stores nothing, and the terminal’s retry is acknowledged whole', async () => {
      const { p, url } = await platformOn(d);
      open.push(p);
      const campus = await seedCampus(p, { tills: 1, payers: 2, firstHolder: 541_001 });
      await makeRecords(campus, 20, prng(SEED + 5_000));
      const till = campus.tills[0] as Till;
      const link = new Uplink();
      const full = batchOf(till, 1, 20);
      const cut = full.subarray(0, Math.floor(full.length * 0.6));
      // The body ends early and the terminal signed what it sent: it does not parse.
      const short = await link.post(url, till, cut);
      expect({ status: short.status, code: short.body.error?.code }).toEqual({ status: 400, code: 'validation_failed' });
      // Cut between the terminal and the platform (signed whole, arrived short): the signature fails.
      const tampered = await link.post(url, till, cut, full);
      expect({ status: tampered.status, code: tampered.body.error?.code }).toEqual({ status: 401, code: 'bad_signature' });
      // The connection closed before the declared length arrived: no answer, nothing taken.
      const answer = await cutOffUpload(url, till, full, Math.floor(full.length / 2));
      expect(answer.startsWith('HTTP/1.1 2')).toBe(false);
      expect(await count(p.db, 'SELECT COUNT(*) AS n FROM records')).toBe(0);
      expect(await count(p.db, 'SELECT COUNT(*) AS n FROM intake_flags')).toBe(0);
      // The retry of the whole batch.
      expect(expectAcked(await link.upload(url, till, full))).toEqual({ ackedThrough: 20, stored: 20, duplicates: 0, flagged: 0 });
      expect((await p.clearer.drain()).posted).toBe(20);
      await expectBooks(p.db, campus);
    });

    it('a validly signed record over the per-payment limit, or with a code from the future, is refused and not paid; a terminal clock ahead is flagged and paid', async () => {
      const { p, url } = await platformOn(d);
      open.push(p);
      const campus = await seedCampus(p, { tills: 1, payers: 1, firstHolder: 542_001 });
      const till = campus.tills[0] as Till;
      const payer = campus.payers[0] as Payer;
      const limit = payer.credential.limits.perPayment;
      await makeRecord(till, payer, 500);
      const over = await makeRecord(till, payer, limit + 1, { pays: false });
      await makeRecord(till, payer, limit); // at the limit: paid
      // The terminal's clock an hour ahead, the phone's too: the code fits the record, the time is flagged.
      const ahead = await makeRecord(till, payer, 300, { recordAheadS: 3_600, codeAheadS: 3_600 });
      // The terminal's clock an hour ahead, the phone's right: the code is stale at the record's time.
      const stale = await makeRecord(till, payer, 400, { recordAheadS: 3_600, pays: false });
      const after = await makeRecord(till, payer, 200);
      expect(expectAcked(await new Uplink().upload(url, till, batchOf(till, 1, till.made.length))).ackedThrough).toBe(6);
      const run = await p.clearer.drain();
      expect({ posted: run.posted, refused: run.refused }).toEqual({ posted: 4, refused: 2 });
      const flags = await p.db.all('SELECT sequence, reason, paid, bears, amount, evidence FROM clearing_flags ORDER BY sequence, reason');
      const flagOf = (m: Made, reason: keyof typeof CLEARING_RULES) => ({
        sequence: m.record.sequence,
        reason,
        paid: CLEARING_RULES[reason].paid ? 1 : 0,
        bears: CLEARING_RULES[reason].bears,
        amount: m.record.amount,
        evidence: m.record.bytes,
      });
      expect(flags).toEqual([
        flagOf(over, 'over_limit'),
        flagOf(ahead, 'time_future'),
        flagOf(stale, 'stale_code'),
        flagOf(after, 'time_backwards'),
      ]);
      await expectBooks(p.db, campus);
    });
  });
}

for (const d of databases) badInputTests(d);
