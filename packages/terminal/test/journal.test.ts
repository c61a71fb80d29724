/**
 * Journals: the shared contract (journal.contract.ts) against every implementation, a differential
 * test of SQLite against the memory model, and what only the durable SQLite journal must prove:
 * the durability settings are really in force, a damaged file is refused with a typed error, a
 * terminal restarted from disk carries on where it stopped, and a full disk declines a payment
 * without harming the journal.
 */
import { chmodSync, closeSync, mkdtempSync, openSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeRecord, GENESIS_HASH, ProtocolError, verifyChain, verifyRecordSignature } from '@duet/protocol';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { type JournalStore, MemoryJournal, Terminal } from '../src/index.js';
import { JournalStorageError, SQLITE_SCHEMA_VERSION, SqliteJournal } from '../src/sqlite.js';
import { entry, journalContract, normal, spendRow } from './journal.contract.js';
import { makeWorld, payer, readyTerminal, TestClock, type World } from './fixture.js';

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'duet-journal-'));
  dirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

journalContract('MemoryJournal', () => ({
  create: async () => new MemoryJournal(),
  // The memory journal's "storage" is the instance itself: a restart is close + open.
  reopen: async (j) => {
    await j.close();
    return j;
  },
}));

journalContract('SqliteJournal', () => {
  const dir = tempDir();
  let n = 0;
  return {
    create: async () => new SqliteJournal(join(dir, `journal-${++n}.db`)),
    reopen: async (j) => {
      await j.close();
      if (!(j instanceof SqliteJournal)) throw new TypeError('expected a SqliteJournal');
      return new SqliteJournal(j.path);
    },
  };
});

/** Runs `p` and returns what it threw (or undefined). */
async function thrown(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => undefined,
    (e: unknown) => e,
  );
}

describe('SqliteJournal against the memory model (differential)', () => {
  type Op =
    | { op: 'append'; delta: number; serial: number; counter: number; notAfter: number; spend: boolean }
    | { op: 'ack'; through: number; pruneBefore: number }
    | { op: 'pending'; after: number; max: number }
    | { op: 'meta'; key: string; value: number[] }
    | { op: 'restart' };
  const op: fc.Arbitrary<Op> = fc.oneof(
    {
      weight: 6,
      arbitrary: fc.record({
        op: fc.constant('append' as const),
        // Mostly the right next sequence; sometimes a repeat or a gap, which both must refuse alike.
        delta: fc.constantFrom(1, 1, 1, 1, 0, 2),
        serial: fc.integer({ min: 1, max: 3 }),
        counter: fc.integer({ min: 1, max: 6 }),
        notAfter: fc.constantFrom(100, 200, 300),
        spend: fc.boolean(),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        op: fc.constant('ack' as const),
        through: fc.integer({ min: 0, max: 30 }),
        pruneBefore: fc.constantFrom(0, 150, 250, 400),
      }),
    },
    {
      weight: 2,
      arbitrary: fc.record({
        op: fc.constant('pending' as const),
        after: fc.integer({ min: 0, max: 30 }),
        max: fc.integer({ min: 0, max: 8 }),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        op: fc.constant('meta' as const),
        key: fc.constantFrom('a', 'b'),
        value: fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 4 }),
      }),
    },
    { weight: 1, arbitrary: fc.constant({ op: 'restart' as const }) },
  );

  /** Applies one op; returns what a caller could observe, so the two journals can be compared. */
  async function apply(j: JournalStore, o: Op, head: number): Promise<unknown> {
    switch (o.op) {
      case 'append': {
        const e = entry(head + o.delta, {
          seen: { serial: o.serial, counter: o.counter, notAfter: o.notAfter },
          ...(o.spend ? { spend: spendRow(o.serial, { count: o.counter, notAfter: o.notAfter }) } : {}),
        });
        const error = await thrown(j.append(e));
        return error instanceof ProtocolError ? error.code : error;
      }
      case 'ack':
        return j.acknowledge(o.through, o.pruneBefore);
      case 'pending':
        return (await j.pending(o.after, o.max)).map((b) => Array.from(b));
      case 'meta':
        await j.setMeta(o.key, Uint8Array.from(o.value));
        return Array.from((await j.getMeta(o.key)) ?? []);
      case 'restart':
        return undefined;
    }
  }

  it('agrees with MemoryJournal on every outcome and snapshot, across restarts', async () => {
    const dir = tempDir();
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 40 }), async (ops) => {
        const memory = new MemoryJournal();
        const path = join(dir, `diff-${++run}.db`);
        let sqlite = new SqliteJournal(path);
        await memory.open();
        await sqlite.open();
        try {
          for (const o of ops) {
            if (o.op === 'restart') {
              await sqlite.close();
              sqlite = new SqliteJournal(path);
              await memory.close();
            }
            const head = (await memory.open()).headSequence;
            const [m, s] = [await apply(memory, o, head), await apply(sqlite, o, head)];
            expect(s, JSON.stringify(o)).toEqual(m);
            expect(normal(await sqlite.open())).toEqual(normal(await memory.open()));
          }
        } finally {
          await sqlite.close();
        }
      }),
      { numRuns: 40 },
    );
  });
});

describe('SqliteJournal: durability settings', () => {
  it('runs in WAL mode with synchronous=FULL on its own connection, schema versioned, file mode 0600', async () => {
    const path = join(tempDir(), 'journal.db');
    const j = new SqliteJournal(path);
    await j.open();
    expect(j.pragma('journal_mode')).toBe('wal');
    expect(j.pragma('synchronous')).toBe(2); // FULL: the WAL is fsynced at every commit
    expect(j.pragma('user_version')).toBe(SQLITE_SCHEMA_VERSION);
    await j.append(entry(1));
    for (const suffix of ['', '-wal', '-shm']) expect(statSync(path + suffix).mode & 0o777, `journal.db${suffix}`).toBe(0o600);
    await j.close();
  });

  it('tightens a journal file that was left readable by others', async () => {
    const path = join(tempDir(), 'journal.db');
    writeFileSync(path, '');
    chmodSync(path, 0o644);
    const j = new SqliteJournal(path);
    await j.open();
    expect(statSync(path).mode & 0o777).toBe(0o600);
    await j.close();
  });

  it('prunes acknowledged records from the file itself, keeping only the head', async () => {
    const path = join(tempDir(), 'journal.db');
    const j = new SqliteJournal(path);
    await j.open();
    for (let i = 1; i <= 5; i++) await j.append(entry(i));
    const raw = new Database(path, { readonly: true });
    const sequences = () => raw.prepare('SELECT sequence FROM records ORDER BY sequence').pluck().all();
    try {
      await j.acknowledge(3, 0);
      expect(sequences()).toEqual([4, 5]);
      await j.acknowledge(5, 0);
      expect(sequences()).toEqual([5]);
    } finally {
      raw.close();
      await j.close();
    }
  });
});

describe('SqliteJournal: a file that is not a healthy journal is refused with a typed error', () => {
  async function openError(path: string): Promise<ProtocolError> {
    const e = await thrown(new SqliteJournal(path).open());
    expect(e).toBeInstanceOf(ProtocolError);
    return e as ProtocolError;
  }

  it('refuses a file that is not SQLite at all', async () => {
    const path = join(tempDir(), 'journal.db');
    writeFileSync(path, 'these are the minutes of the canteen committee, not a database\n'.repeat(100));
    const e = await openError(path);
    expect(e.code).toBe('bad_value');
    expect(e.detail).toMatch(/is not a SQLite journal or is corrupted \(SQLITE_NOTADB/);
  });

  it('refuses a journal whose pages were damaged', async () => {
    const path = join(tempDir(), 'journal.db');
    const j = new SqliteJournal(path);
    await j.open();
    for (let i = 1; i <= 60; i++) await j.append(entry(i, { bytes: new Uint8Array(400).fill(i) }));
    await j.close(); // checkpoints the WAL into the main file
    const fd = openSync(path, 'r+');
    const size = statSync(path).size;
    expect(size).toBeGreaterThan(4 * 4096);
    // Garbage over every page but the first (the header and schema page stays readable).
    const junk = new Uint8Array(size - 4096).map((_, i) => (i * 7919) & 0xff);
    writeSync(fd, junk, 0, junk.length, 4096);
    closeSync(fd);
    const e = await openError(path);
    expect(e.code).toBe('bad_value');
    expect(e.detail).toMatch(/corrupted/);
  });

  it('refuses a journal written by a newer build instead of guessing at its schema', async () => {
    const path = join(tempDir(), 'journal.db');
    const j = new SqliteJournal(path);
    await j.open();
    await j.close();
    const raw = new Database(path);
    raw.pragma(`user_version = ${SQLITE_SCHEMA_VERSION + 1}`);
    raw.close();
    expect((await openError(path)).detail).toMatch(/is newer than this build/);
  });

  it('refuses a path it cannot create, and refuses calls once closed', async () => {
    expect((await openError(join(tempDir(), 'no-such-dir', 'journal.db'))).detail).toMatch(/cannot open/);
    const j = new SqliteJournal(join(tempDir(), 'journal.db'));
    await j.open();
    await j.close();
    expect(await thrown(j.pending(0, 1))).toBeInstanceOf(ProtocolError);
    expect(await thrown(j.setMeta('k', new Uint8Array(1)))).toBeInstanceOf(ProtocolError);
  });
});

describe('a terminal on SqliteJournal, restarted from disk', () => {
  async function verifiedChain(j: SqliteJournal, w: World, t: Terminal): Promise<number> {
    const key = t.state.snapshot.identity?.certificate.terminalPublicKey;
    if (key === undefined) throw new Error('terminal has no identity');
    const records = (await j.pending(0, 1_000)).map((b) => decodeRecord(b));
    verifyChain(records, 0, GENESIS_HASH, w.crypto);
    for (const r of records) await verifyRecordSignature(r, key, w.crypto);
    return records.length;
  }

  it('keeps its chain, seen codes, spend rows, lists and key, and carries on', async () => {
    const w = await makeWorld();
    const clock = new TestClock();
    const path = join(tempDir(), 'journal.db');
    const first = await readyTerminal(w, clock, { journal: new SqliteJournal(path) });
    const p = await payer(w);
    const texts: string[] = [];
    for (let i = 0; i < 3; i++) {
      texts.push(await p.text(clock.s));
      expect(await first.pay(1_000, texts[i] ?? '')).toMatchObject({ accepted: true, sequence: i + 1 });
    }
    const before = first.state.snapshot;
    await first.journal.close();

    const journal = new SqliteJournal(path);
    const again = await Terminal.open({ journal, crypto: w.crypto, clock });
    expect(again.headSequence).toBe(3);
    const after = again.state.snapshot;
    expect(after.trust?.listVersion).toBe(before.trust?.listVersion);
    expect(after.deny.version).toBe(before.deny.version);
    expect(after.policy?.policyVersion).toBe(before.policy?.policyVersion);
    expect(after.identity?.certificate.terminalId).toBe(before.identity?.certificate.terminalId);
    expect(after.lastSyncS).toBe(before.lastSyncS);
    // The key came back from disk: it still signs, and the chain continues from the stored head.
    expect(await again.pay(1_000, texts[1] ?? '')).toMatchObject({ accepted: false, reason: 'replay' });
    expect(await again.pay(1_000, await p.text(clock.s))).toMatchObject({ accepted: true, sequence: 4 });
    expect(await verifiedChain(journal, w, again)).toBe(4);
    const snapshot = await journal.open();
    expect(snapshot.spend).toEqual([expect.objectContaining({ serial: p.credential.serial, total: 4_000, count: 4, dayCount: 4 })]);
    await journal.close();
  });

  it('keeps per-day limits across a restart', async () => {
    const w = await makeWorld();
    const clock = new TestClock();
    const path = join(tempDir(), 'journal.db');
    const first = await readyTerminal(w, clock, { journal: new SqliteJournal(path) });
    const p = await payer(w);
    // The fixture's policy allows 10 payments a day per credential at one terminal.
    for (let i = 0; i < 10; i++) expect((await first.pay(100, await p.text(clock.s))).accepted).toBe(true);
    await first.journal.close();
    const again = await Terminal.open({ journal: new SqliteJournal(path), crypto: w.crypto, clock });
    expect(await again.pay(100, await p.text(clock.s))).toMatchObject({ accepted: false, reason: 'over_day_count' });
    expect((await again.pay(100, await (await payer(w)).text(clock.s))).accepted).toBe(true);
    await again.journal.close();
  });
});

describe('a full disk (SQLITE_FULL, made portably with max_page_count)', () => {
  it('rejects the append with a typed error and changes nothing', async () => {
    const j = new SqliteJournal(join(tempDir(), 'journal.db'));
    await j.open();
    await j.append(entry(1, { seen: { serial: 1, counter: 1, notAfter: 9 } }));
    const before = normal(await j.open());
    j.pragma(`max_page_count = ${String(j.pragma('page_count'))}`);
    const big = entry(2, { bytes: new Uint8Array(20_000), seen: { serial: 1, counter: 2, notAfter: 9 }, spend: spendRow(1) });
    const e = await thrown(j.append(big));
    expect(e).toBeInstanceOf(JournalStorageError);
    expect((e as JournalStorageError).sqliteCode).toBe('SQLITE_FULL');
    expect((e as Error).message).toMatch(/Free disk space/);
    expect(normal(await j.open())).toEqual(before);
    j.pragma('max_page_count = 1000000');
    await j.append(big);
    expect((await j.open()).headSequence).toBe(2);
    await j.close();
  });

  it('declines the payment as journal_unavailable, keeps the journal intact, and pays once space returns', async () => {
    const w = await makeWorld();
    const clock = new TestClock();
    const journal = new SqliteJournal(join(tempDir(), 'journal.db'));
    const t = await readyTerminal(w, clock, { journal });
    expect((await t.pay(500, await (await payer(w)).text(clock.s))).accepted).toBe(true);
    journal.pragma(`max_page_count = ${String(journal.pragma('page_count'))}`);
    let declined: { text: string; reason: string | undefined } | undefined;
    for (let i = 0; i < 50 && declined === undefined; i++) {
      const text = await (await payer(w)).text(clock.s);
      const d = await t.pay(500, text);
      if (!d.accepted) declined = { text, reason: d.reason };
    }
    expect(declined?.reason).toBe('journal_unavailable');
    const head = t.headSequence;
    expect((await journal.open()).headSequence).toBe(head);
    expect(journal.pragma('quick_check')).toBe('ok');
    journal.pragma('max_page_count = 1000000');
    // The customer tries the same code again: it was never marked seen, so it pays now.
    expect(await t.pay(500, declined?.text ?? '')).toMatchObject({ accepted: true, sequence: head + 1 });
    const records = (await journal.pending(0, 1_000)).map((b) => decodeRecord(b));
    expect(records.length).toBe(head + 1);
    verifyChain(records, 0, GENESIS_HASH, w.crypto);
    await journal.close();
  });
});
