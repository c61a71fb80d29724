/**
 * Crash test (DESIGN §7, §15 "no accepted payment is ever lost, no record counted twice"): a child
 * process running the built terminal on a SqliteJournal pays in a loop and is killed with SIGKILL at
 * a random moment, again and again. After every kill the journal file is audited against what the
 * child acknowledged (it prints a payment only after pay() resolved): every acknowledged payment is
 * there, the chain verifies from GENESIS_HASH with the terminal's signatures, sequences have no gap,
 * no code appears twice, and the seen codes and spend rows equal what the records imply. Each
 * restarted child also re-presents the last acknowledged code, which must be declined as a replay.
 *
 * It runs dist/ (the child is plain node), so build first: `npm run build` (npm test does).
 * Default: 200 kills. A long run: `CRASH_KILLS=2000 npx vitest run packages/terminal/test/crash.test.ts`.
 * A failure prints its seed; `CRASH_SEED=<seed>` replays the same kill delays and amounts.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { appendFileSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type CryptoProvider,
  decodeCode,
  decodeRecord,
  decodeTerminalCertificate,
  fen,
  GENESIS_HASH,
  signRecord,
  type TerminalRecord,
  toHex,
  verifyChain,
  verifyRecordSignature,
} from '@duet/protocol';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { DAY_OFFSET_S_DEFAULT, dayOf, type SpendRow } from '../src/index.js';
import { SqliteJournal } from '../src/sqlite.js';
import { denyList, makeWorld, type Payer, payer, policy, readyTerminal, rootKeys, T0_S, TestClock, terminalIdentity } from './fixture.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const CHILD = join(HERE, 'crash-child.mjs');
const KILLS = Number(process.env.CRASH_KILLS ?? 200);
const SEED = Number(process.env.CRASH_SEED ?? Math.floor(Math.random() * 2 ** 31));
/** Kill delay after the child reports ready: short, so 200 kills fit in a CI minute, and random. */
const KILL_DELAY_MS_MIN = 20;
const KILL_DELAY_MS_MAX = 150;
/** One kill in eight lands while the child opens the journal (WAL recovery, set-up, the replay check). */
const EARLY_KILL_EVERY = 8;
const EARLY_KILL_MS_MAX = 40;
/** Payers whose codes the child spends, round robin; each credential allows 65,535 offline payments. */
const PAYERS = 40;
const CHILD_STEP_TIMEOUT_MS = 30_000;
/**
 * Children started ahead of their turn: importing the modules (~150-300 ms) is most of a child's
 * life, so a few import while one pays. They touch the journal only after their "go".
 */
const WARM_CHILDREN = 2;

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'duet-crash-'));
  dirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------
// The audit: what a journal file must satisfy, given what the child acknowledged.

export interface RecordRow {
  readonly sequence: number;
  readonly hash: Uint8Array;
  /** Present for records after the `since` the image was read with. */
  readonly bytes: Uint8Array | undefined;
}

export interface JournalImage {
  readonly rows: readonly RecordRow[];
  readonly seen: readonly { readonly serial: number; readonly counter: number; readonly notAfter: number }[];
  readonly spend: readonly SpendRow[];
  readonly acked: number;
}

export interface Ack {
  readonly index: number;
  readonly sequence: number;
  readonly serial: number;
  readonly counter: number;
  readonly amount: number;
}

const EMPTY_IMAGE: JournalImage = { rows: [], seen: [], spend: [], acked: 0 };

/** Reads a journal file the way a forensic tool would: read-only, raw tables, no SqliteJournal code. */
export function readImage(path: string, since: number): JournalImage {
  if (!existsSync(path)) return EMPTY_IMAGE;
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    if (db.pragma('user_version', { simple: true }) === 0) return EMPTY_IMAGE;
    const rows = db
      .prepare<[number], { sequence: number; hash: Buffer; bytes: Buffer | null }>(
        'SELECT sequence, hash, CASE WHEN sequence > ? THEN bytes END AS bytes FROM records ORDER BY sequence',
      )
      .all(since)
      .map((r) => ({ sequence: r.sequence, hash: new Uint8Array(r.hash), bytes: r.bytes === null ? undefined : new Uint8Array(r.bytes) }));
    const seen = db
      .prepare<[], { serial: number; counter: number; notAfter: number }>('SELECT serial, counter, not_after AS notAfter FROM seen')
      .all();
    const spend = db
      .prepare<[], SpendRow>(
        'SELECT serial, total, count, day, day_total AS dayTotal, day_count AS dayCount, not_after AS notAfter FROM spend ORDER BY serial',
      )
      .all();
    const acked = db.prepare<[], number>('SELECT through FROM ack WHERE id = 1').pluck().get() ?? -1;
    return { rows, seen, spend, acked };
  } finally {
    db.close();
  }
}

/**
 * Audits successive images of one journal. It remembers the prefix it has verified, so each audit
 * checks old records by hash only and decodes and verifies just the new ones (the child writes
 * thousands of records; re-verifying all of them after every kill would be quadratic). After a
 * failed audit its memory is undefined: start a new one.
 */
export class ChainAudit {
  private head: { sequence: number; hash: Uint8Array } = { sequence: 0, hash: GENESIS_HASH };
  private readonly hashes: string[] = [];
  private readonly codeAt: string[] = [];
  private readonly amountAt: number[] = [];
  private readonly codes = new Map<string, { sequence: number; notAfter: number }>();
  private readonly spend = new Map<number, SpendRow>();

  constructor(
    private readonly terminalPublicKey: Uint8Array,
    private readonly crypto: CryptoProvider,
    private readonly dayOffsetS = DAY_OFFSET_S_DEFAULT,
  ) {}

  get verifiedHead(): number {
    return this.head.sequence;
  }

  async audit(image: JournalImage, acks: readonly Ack[]): Promise<string[]> {
    const problems: string[] = [];
    image.rows.forEach((r, i) => {
      if (r.sequence !== i + 1) problems.push(`gap: row ${i + 1} holds sequence ${r.sequence}`);
    });
    if (image.rows.length < this.head.sequence)
      problems.push(`lost records: head ${image.rows.length} < ${this.head.sequence} verified before`);
    for (const r of image.rows.slice(0, this.head.sequence)) {
      if (toHex(r.hash) !== this.hashes[r.sequence - 1]) problems.push(`record ${r.sequence} changed since it was verified`);
    }
    await this.verifyNew(image.rows.slice(this.head.sequence), problems);
    this.checkSeen(image, problems);
    this.checkSpend(image, problems);
    this.checkAcks(image, acks, problems);
    if (image.acked !== 0) problems.push(`acknowledged through ${image.acked}, but nothing was ever uploaded`);
    return problems;
  }

  private async verifyNew(rows: readonly RecordRow[], problems: string[]): Promise<void> {
    const records: TerminalRecord[] = [];
    for (const r of rows) {
      if (r.bytes === undefined) {
        problems.push(`record ${r.sequence}: bytes not read`);
        return;
      }
      if (toHex(this.crypto.sha256(r.bytes)) !== toHex(r.hash))
        problems.push(`record ${r.sequence}: stored hash is not the hash of its bytes`);
      try {
        const rec = decodeRecord(r.bytes);
        if (rec.sequence !== r.sequence) problems.push(`record ${r.sequence}: its bytes say sequence ${rec.sequence}`);
        await verifyRecordSignature(rec, this.terminalPublicKey, this.crypto);
        records.push(rec);
      } catch (e) {
        problems.push(`record ${r.sequence}: ${e instanceof Error ? e.message : String(e)}`);
        return;
      }
    }
    let hash: Uint8Array;
    try {
      hash = verifyChain(records, this.head.sequence, this.head.hash, this.crypto);
    } catch (e) {
      problems.push(`chain: ${e instanceof Error ? e.message : String(e)}`);
      return;
    }
    for (const rec of records) this.remember(rec, problems);
    const last = records.at(-1);
    if (last !== undefined) this.head = { sequence: last.sequence, hash };
  }

  private remember(rec: TerminalRecord, problems: string[]): void {
    const code = decodeCode(rec.evidence);
    const c = code.credential;
    const key = `${c.serial}:${code.counter}`;
    const earlier = this.codes.get(key);
    if (earlier !== undefined) problems.push(`duplicate: code ${key} in records ${earlier.sequence} and ${rec.sequence}`);
    else this.codes.set(key, { sequence: rec.sequence, notAfter: c.notAfter });
    this.hashes[rec.sequence - 1] = toHex(this.crypto.sha256(rec.bytes));
    this.codeAt[rec.sequence - 1] = key;
    this.amountAt[rec.sequence - 1] = rec.amount;
    if (rec.kind !== 'payment' || rec.path !== 'offline') return;
    // The same arithmetic as checkLimits, from the records alone (the child's clock is fixed, so a record's time is its decision time).
    const day = dayOf(rec.time, this.dayOffsetS);
    const prev = this.spend.get(c.serial);
    const sameDay = prev !== undefined && prev.day === day;
    this.spend.set(c.serial, {
      serial: c.serial,
      total: fen((prev?.total ?? 0) + rec.amount),
      count: (prev?.count ?? 0) + 1,
      day,
      dayTotal: fen((sameDay ? prev.dayTotal : 0) + rec.amount),
      dayCount: (sameDay ? prev.dayCount : 0) + 1,
      notAfter: c.notAfter,
    });
  }

  private checkSeen(image: JournalImage, problems: string[]): void {
    const inTable = new Set<string>();
    for (const s of image.seen) {
      const key = `${s.serial}:${s.counter}`;
      inTable.add(key);
      const code = this.codes.get(key);
      if (code === undefined) problems.push(`seen: code ${key} is marked seen but no record consumed it`);
      else if (code.notAfter !== s.notAfter)
        problems.push(`seen: code ${key} keeps not_after ${s.notAfter}, credential says ${code.notAfter}`);
    }
    for (const [key, code] of this.codes) {
      if (!inTable.has(key)) problems.push(`seen: code ${key} of record ${code.sequence} is not marked seen (it could be replayed)`);
    }
  }

  private checkSpend(image: JournalImage, problems: string[]): void {
    const inTable = new Map(image.spend.map((r) => [r.serial, r]));
    for (const [serial, want] of this.spend) {
      const got = inTable.get(serial);
      if (got === undefined) problems.push(`spend: credential ${serial} has payments but no spend row`);
      else if (JSON.stringify({ ...got }) !== JSON.stringify(want))
        problems.push(`spend: credential ${serial} row ${JSON.stringify(got)}, records say ${JSON.stringify(want)}`);
    }
    for (const serial of inTable.keys()) if (!this.spend.has(serial)) problems.push(`spend: row for ${serial} without a payment`);
  }

  private checkAcks(image: JournalImage, acks: readonly Ack[], problems: string[]): void {
    const keys = new Set<string>();
    for (const a of acks) {
      const key = `${a.serial}:${a.counter}`;
      if (keys.has(key)) problems.push(`acknowledged twice: code ${key}`);
      keys.add(key);
      if (a.sequence > image.rows.length) {
        problems.push(`lost: acknowledged payment ${key} at sequence ${a.sequence} is missing (head ${image.rows.length})`);
      } else if (this.codeAt[a.sequence - 1] !== key || this.amountAt[a.sequence - 1] !== a.amount) {
        problems.push(`lost: record ${a.sequence} is not the acknowledged payment ${key} of ${a.amount} fen`);
      } else if (!this.codes.has(key)) {
        problems.push(`lost: acknowledged code ${key} is not in the journal`);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The world the child pays in, and the child itself.

/** mulberry32: a tiny seeded generator, so a failing run can be replayed with CRASH_SEED. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

interface CrashWorld {
  readonly dir: string;
  readonly worldPath: string;
  readonly codesPath: string;
  readonly dbPath: string;
  readonly terminalPublicKey: Uint8Array;
  readonly crypto: CryptoProvider;
  /** Appends codes to the child's list until it holds at least `n`. */
  ensureCodes(n: number): Promise<void>;
}

async function crashWorld(rng: () => number): Promise<CrashWorld> {
  const dir = tempDir();
  const w = await makeWorld();
  const id = await terminalIdentity(w);
  const world = {
    t0S: T0_S,
    roots: rootKeys(w).map((r) => ({ ...r, publicKey: toHex(r.publicKey) })),
    trust: toHex(w.trust.bytes),
    deny: toHex(await denyList(w, [{ type: 'credential', id: 999_999, op: 'add' }])),
    policy: toHex(await policy(w, { dayCountMax: 65_535, dayTotalMax: fen(4_000_000_000) })),
    cert: toHex(id.cert),
    key: toHex(id.key),
  };
  const payers: Payer[] = [];
  for (let i = 0; i < PAYERS; i++) {
    payers.push(await payer(w, { offlineCount: 65_535, offlineTotal: 4_000_000_000, perPayment: 5_000, notAfter: T0_S + 72 * 3600 }));
  }
  const paths = { worldPath: join(dir, 'world.json'), codesPath: join(dir, 'codes.txt'), dbPath: join(dir, 'journal.db') };
  writeFileSync(paths.worldPath, JSON.stringify(world));
  writeFileSync(paths.codesPath, '');
  let made = 0;
  return {
    dir,
    ...paths,
    terminalPublicKey: decodeTerminalCertificate(id.cert).terminalPublicKey,
    crypto: w.crypto,
    async ensureCodes(n) {
      const lines: string[] = [];
      for (; made < n; made++) {
        const p = payers[made % PAYERS];
        if (p === undefined) throw new Error('unreachable: payer index');
        // Tab-separated: Base45 text may hold spaces.
        lines.push(`${await p.text(T0_S)}\t${1 + Math.floor(rng() * 2_000)}\n`);
      }
      appendFileSync(paths.codesPath, lines.join(''));
    },
  };
}

class Child {
  readonly proc: ChildProcess;
  readonly lines: string[] = [];
  stderr = '';
  exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  readonly closed: Promise<void>;
  private partial = '';
  private wake: (() => void) | undefined;

  constructor(w: CrashWorld) {
    // Plain node on dist/: no source conditions or loaders inherited from the test runner.
    const env = { ...process.env };
    delete env.NODE_OPTIONS;
    this.proc = spawn(process.execPath, [CHILD, w.worldPath, w.codesPath, w.dbPath], { stdio: ['pipe', 'pipe', 'pipe'], env });
    this.proc.stdout?.setEncoding('utf8');
    this.proc.stdout?.on('data', (chunk: string) => {
      const parts = (this.partial + chunk).split('\n');
      this.partial = parts.pop() ?? '';
      this.lines.push(...parts);
      this.wake?.();
    });
    this.proc.stderr?.setEncoding('utf8');
    this.proc.stderr?.on('data', (chunk: string) => {
      this.stderr += chunk;
    });
    this.closed = new Promise((resolve) => {
      this.proc.on('close', (code, signal) => {
        this.exit = { code, signal };
        this.wake?.();
        resolve();
      });
    });
  }

  /** The first line starting with `prefix`; throws if the child ends or stalls first. */
  async waitFor(prefix: string): Promise<string> {
    const deadline = Date.now() + CHILD_STEP_TIMEOUT_MS;
    for (;;) {
      const line = this.lines.find((l) => l.startsWith(prefix));
      if (line !== undefined) return line;
      if (this.exit !== undefined || Date.now() > deadline) throw new Error(`child never said "${prefix}": ${this.describe()}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 1_000);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  send(line: string): void {
    this.proc.stdin?.write(`${line}\n`);
  }

  async kill(): Promise<void> {
    this.proc.kill('SIGKILL');
    await this.closed;
  }

  describe(): string {
    return `exit ${JSON.stringify(this.exit)}, last lines ${JSON.stringify(this.lines.slice(-5))}, stderr ${this.stderr.slice(-2_000)}`;
  }
}

/**
 * The child runs dist/: refuse to test stale output rather than pass on yesterday's code. tsc -b
 * leaves a .js untouched when its output would not change, so the build's own stamp is what counts.
 */
function assertBuilt(): void {
  for (const pkg of ['protocol', 'terminal']) {
    const root = join(HERE, '..', '..', pkg);
    const stamp = join(root, 'dist', '.tsbuildinfo');
    const built = existsSync(stamp) ? statSync(stamp).mtimeMs : 0;
    for (const f of readdirSync(join(root, 'src'), { recursive: true })) {
      const name = String(f);
      if (name.endsWith('.ts') && statSync(join(root, 'src', name)).mtimeMs > built) {
        throw new Error(`crash test runs the built terminal, but ${pkg}/src/${name} is newer than ${pkg}/dist: run \`npm run build\``);
      }
    }
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------------------

describe('crash audit (the checker must catch what it is there to catch)', () => {
  async function goodJournal() {
    const w = await makeWorld();
    const clock = new TestClock();
    const path = join(tempDir(), 'journal.db');
    const journal = new SqliteJournal(path);
    const t = await readyTerminal(w, clock, { journal });
    const acks: Ack[] = [];
    for (let i = 0; i < 3; i++) {
      const p = await payer(w);
      for (let k = 0; k < 2; k++) {
        const d = await t.pay(100 + i * 10 + k, await p.text(clock.s));
        if (!d.accepted || d.sequence === undefined || d.serial === undefined || d.counter === undefined)
          throw new Error(`setup: ${d.reason}`);
        acks.push({ index: acks.length, sequence: d.sequence, serial: d.serial, counter: d.counter, amount: 100 + i * 10 + k });
      }
    }
    await journal.close();
    const identity = t.state.snapshot.identity;
    if (identity === undefined) throw new Error('setup: no identity');
    const image = readImage(path, 0);
    const audit = () => new ChainAudit(identity.certificate.terminalPublicKey, w.crypto);
    return { image, acks, audit, signer: identity.signer, crypto: w.crypto };
  }

  it('passes a journal written by a real terminal', async () => {
    const g = await goodJournal();
    expect(g.image.rows.length).toBe(6);
    expect(await g.audit().audit(g.image, g.acks)).toEqual([]);
  });

  it('complains about a record lost from the middle (a gap) and from the end (an acknowledged payment)', async () => {
    const g = await goodJournal();
    const middle = { ...g.image, rows: g.image.rows.filter((r) => r.sequence !== 3) };
    expect((await g.audit().audit(middle, g.acks)).join('\n')).toMatch(/gap/);
    const tail = { ...g.image, rows: g.image.rows.slice(0, 5) };
    expect((await g.audit().audit(tail, g.acks)).join('\n')).toMatch(/lost: acknowledged payment .* at sequence 6 is missing/);
  });

  it('complains about a payment recorded twice, even in a well-signed, well-chained record', async () => {
    const g = await goodJournal();
    const last = g.image.rows.at(-1);
    const second = decodeRecord(g.image.rows[1]?.bytes ?? new Uint8Array(0));
    if (last === undefined) throw new Error('no rows');
    const dup = await signRecord({ ...second, sequence: 7, previousHash: last.hash }, g.signer);
    const rows = [...g.image.rows, { sequence: 7, hash: g.crypto.sha256(dup.bytes), bytes: dup.bytes }];
    expect((await g.audit().audit({ ...g.image, rows }, g.acks)).join('\n')).toMatch(/duplicate: code .* in records 2 and 7/);
    const twice = [...g.acks, { ...(g.acks[1] as Ack), sequence: 7 }];
    expect((await g.audit().audit({ ...g.image, rows }, twice)).join('\n')).toMatch(/acknowledged twice/);
  });

  it('complains about a tampered record, a forged link and a record changed after it was verified', async () => {
    const g = await goodJournal();
    const flip = (b: Uint8Array) => b.map((v, i) => (i === 40 ? v ^ 1 : v));
    const tampered = g.image.rows.map((r) => {
      if (r.sequence !== 4 || r.bytes === undefined) return r;
      const bytes = flip(r.bytes);
      return { ...r, bytes, hash: g.crypto.sha256(bytes) };
    });
    expect((await g.audit().audit({ ...g.image, rows: tampered }, g.acks)).join('\n')).toMatch(/record 4: .*|chain/);
    const audit = g.audit();
    expect(await audit.audit(g.image, g.acks)).toEqual([]);
    const changed = g.image.rows.map((r) => (r.sequence === 2 ? { ...r, hash: new Uint8Array(32) } : r));
    expect((await audit.audit({ ...g.image, rows: changed }, g.acks)).join('\n')).toMatch(/record 2 changed/);
  });

  it('complains when the seen codes or spend rows disagree with the records', async () => {
    const g = await goodJournal();
    const seen = g.image.seen.slice(1);
    expect((await g.audit().audit({ ...g.image, seen }, g.acks)).join('\n')).toMatch(/not marked seen/);
    const extra = [...g.image.seen, { serial: 1, counter: 1, notAfter: 0 }];
    expect((await g.audit().audit({ ...g.image, seen: extra }, g.acks)).join('\n')).toMatch(/no record consumed it/);
    const spend = g.image.spend.map((r, i) => (i === 0 ? { ...r, count: r.count - 1 } : r));
    expect((await g.audit().audit({ ...g.image, spend }, g.acks)).join('\n')).toMatch(/spend: credential/);
    expect((await g.audit().audit({ ...g.image, spend: g.image.spend.slice(1) }, g.acks)).join('\n')).toMatch(/no spend row/);
  });
});

describe.skipIf(process.platform === 'win32')('crash: SIGKILL a paying terminal at random points', () => {
  it(
    `loses no acknowledged payment and duplicates none across ${KILLS} kills`,
    async () => {
      assertBuilt();
      const rng = random(SEED);
      const w = await crashWorld(rng);
      const audit = new ChainAudit(w.terminalPublicKey, w.crypto);
      const acks: Ack[] = [];
      let codeMargin = 2_000;
      let lastAckIndex = -1;
      let replaysChecked = 0;
      let exhausted = 0;
      const warm = Array.from({ length: WARM_CHILDREN }, () => new Child(w));
      let running: Child | undefined;
      const started = Date.now();
      try {
        for (let kill = 0; kill < KILLS; kill++) {
          const child = warm.shift() ?? new Child(w);
          running = child;
          warm.push(new Child(w));
          const where = `kill ${kill} (CRASH_SEED=${SEED})`;
          await child.waitFor('loaded');
          await w.ensureCodes(audit.verifiedHead + codeMargin);
          child.send(`go ${lastAckIndex}`);
          if (kill % EARLY_KILL_EVERY === EARLY_KILL_EVERY - 1) {
            await sleep(rng() * EARLY_KILL_MS_MAX);
          } else {
            await child.waitFor('ready');
            await sleep(KILL_DELAY_MS_MIN + rng() * (KILL_DELAY_MS_MAX - KILL_DELAY_MS_MIN));
          }
          await child.kill();
          expect(child.exit?.signal, `${where}: the child ended by itself: ${child.describe()}`).toBe('SIGKILL');
          let paid = 0;
          for (const line of child.lines) {
            const [tag, ...f] = line.split(' ');
            if (tag === 'E') throw new Error(`${where}: the child reported ${line}`);
            if (tag === 'exhausted') exhausted++;
            if (tag === 'R') {
              expect(line, `${where}: re-presented code ${lastAckIndex}`).toBe('R replay');
              replaysChecked++;
            }
            if (tag !== 'A') continue;
            const [index, sequence, serial, counter, amount] = f.map(Number);
            if (index === undefined || sequence === undefined || serial === undefined || counter === undefined || amount === undefined) {
              throw new Error(`${where}: bad line ${line}`);
            }
            acks.push({ index, sequence, serial, counter, amount });
            lastAckIndex = index;
            paid++;
          }
          if (3 * paid > codeMargin) codeMargin = 3 * paid;
          const problems = await audit.audit(readImage(w.dbPath, audit.verifiedHead), acks);
          expect(problems, where).toEqual([]);
        }
      } finally {
        await Promise.all([...warm, ...(running === undefined ? [] : [running])].map((c) => c.kill()));
      }
      // One last look through the production code path, from scratch: a full audit and a snapshot that agrees.
      const image = readImage(w.dbPath, 0);
      expect(await new ChainAudit(w.terminalPublicKey, w.crypto).audit(image, acks)).toEqual([]);
      const journal = new SqliteJournal(w.dbPath);
      const s = await journal.open();
      await journal.close();
      expect(s.headSequence).toBe(image.rows.length);
      expect(s.seen.length).toBe(image.seen.length);
      const seconds = ((Date.now() - started) / 1000).toFixed(1);
      console.info(
        `crash: ${KILLS} kills in ${seconds} s, ${acks.length} acknowledged payments, ${image.rows.length} records, ` +
          `${replaysChecked} replays declined, ${exhausted} runs out of codes, seed ${SEED}`,
      );
      expect(acks.length).toBeGreaterThanOrEqual(KILLS / 2);
      expect(replaysChecked).toBeGreaterThan(KILLS / 2);
      expect(exhausted).toBe(0);
    },
    120_000 + KILLS * 2_000,
  );
});
