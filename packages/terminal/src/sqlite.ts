/**
 * @duet/terminal/sqlite: the durable journal of a Linux POS terminal, in one SQLite file.
 *
 * Durability: WAL mode with synchronous=FULL, so every commit fsyncs the WAL before it returns; an
 * append is one transaction (record + seen code + spend row), so after a power cut or kill -9 the
 * file holds either all of a payment or none of it. The file holds the terminal's private key (in
 * meta), so it and its -wal/-shm companions are mode 0600.
 *
 * Failures: a file that is not a readable journal is refused at open with a ProtocolError; a
 * storage failure later (disk full, I/O error) rejects the call with a JournalStorageError after
 * rolling back, so nothing is ever half-applied and the process never crashes on it.
 */
import { chmodSync, closeSync, constants, existsSync, openSync } from 'node:fs';
import { fenNonNegative, ProtocolError } from '@duet/protocol';
import Database from 'better-sqlite3';
import type { AppendEntry, JournalSnapshot, JournalStore, SpendRow } from './ports.js';

/** Why the file is mode 0600: it holds the terminal's private key and the payment records. */
const FILE_MODE = 0o600;

/** How long a write waits for another connection's lock before failing (a second process on the file). */
const BUSY_TIMEOUT_MS = 2_000;

/**
 * Schema versions, applied in order by `PRAGMA user_version`. Never edit a shipped step: add one.
 * The head record is never pruned (acknowledge keeps it), so the head's sequence, hash and time
 * survive even when every record has been acknowledged.
 */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE records (
     sequence INTEGER PRIMARY KEY,
     time     INTEGER NOT NULL,
     bytes    BLOB    NOT NULL,
     hash     BLOB    NOT NULL
   );
   CREATE TABLE seen (
     serial    INTEGER NOT NULL,
     counter   INTEGER NOT NULL,
     not_after INTEGER NOT NULL,
     PRIMARY KEY (serial, counter)
   ) WITHOUT ROWID;
   CREATE TABLE spend (
     serial    INTEGER PRIMARY KEY,
     total     INTEGER NOT NULL,
     count     INTEGER NOT NULL,
     day       INTEGER NOT NULL,
     day_total INTEGER NOT NULL,
     day_count INTEGER NOT NULL,
     not_after INTEGER NOT NULL
   );
   CREATE TABLE ack (
     id      INTEGER PRIMARY KEY CHECK (id = 1),
     through INTEGER NOT NULL
   );
   INSERT INTO ack (id, through) VALUES (1, 0);
   CREATE TABLE meta (
     key   TEXT PRIMARY KEY,
     value BLOB NOT NULL
   ) WITHOUT ROWID;`,
];

export const SQLITE_SCHEMA_VERSION = MIGRATIONS.length;

/** A storage failure under the journal (disk full, I/O error, corruption found late). Nothing was changed. */
export class JournalStorageError extends Error {
  override readonly name = 'JournalStorageError';
  /** SQLite's extended result code, e.g. SQLITE_FULL or SQLITE_IOERR_FSYNC. */
  readonly sqliteCode: string;

  constructor(operation: string, sqliteCode: string, message: string, options: { cause: unknown }) {
    super(`journal ${operation}: ${message} (${sqliteCode}); nothing was changed. ${recovery(sqliteCode)}`, options);
    this.sqliteCode = sqliteCode;
  }
}

function recovery(code: string): string {
  if (code.startsWith('SQLITE_FULL')) return 'Free disk space, then retry.';
  if (code.startsWith('SQLITE_IOERR')) return 'Check the storage device, then retry.';
  if (code.startsWith('SQLITE_CORRUPT') || code.startsWith('SQLITE_NOTADB'))
    return 'The journal file is damaged: restore it, do not delete it.';
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) return 'Another process holds the journal: stop it.';
  return 'Retry; if it persists, check the storage.';
}

function sqliteCodeOf(e: unknown): string | undefined {
  return e instanceof Database.SqliteError ? e.code : undefined;
}

export interface SqliteJournalOptions {
  /** Connection busy timeout; the default suits one terminal process per file. */
  readonly busyTimeoutMs?: number;
}

/** The statements of the hot path and of every other call, prepared once at open. */
interface Statements {
  readonly begin: Database.Statement;
  readonly commit: Database.Statement;
  readonly rollback: Database.Statement;
  readonly head: Database.Statement;
  readonly headSequence: Database.Statement;
  readonly acked: Database.Statement;
  readonly insertRecord: Database.Statement;
  readonly insertSeen: Database.Statement;
  readonly upsertSpend: Database.Statement;
  readonly pending: Database.Statement;
  readonly setAcked: Database.Statement;
  readonly pruneRecords: Database.Statement;
  readonly pruneSeen: Database.Statement;
  readonly pruneSpend: Database.Statement;
  readonly getMeta: Database.Statement;
  readonly setMeta: Database.Statement;
  readonly allSeen: Database.Statement;
  readonly allSpend: Database.Statement;
}

interface Head {
  readonly sequence: number;
  readonly time: number;
  readonly hash: Uint8Array;
}

export class SqliteJournal implements JournalStore {
  private db: Database.Database | undefined;
  private s: Statements | undefined;

  constructor(
    readonly path: string,
    private readonly options: SqliteJournalOptions = {},
  ) {}

  async open(): Promise<JournalSnapshot> {
    if (this.db === undefined) this.connect();
    return this.read('open', () => this.snapshot());
  }

  async append(e: AppendEntry): Promise<void> {
    this.write('append', (s) => {
      const expected = headSequence(s) + 1;
      if (e.sequence !== expected) throw new ProtocolError('bad_value', `journal: sequence ${e.sequence}, expected ${expected}`);
      if (e.seen !== undefined && s.insertSeen.run(e.seen.serial, e.seen.counter, e.seen.notAfter).changes === 0) {
        throw new ProtocolError('bad_value', `journal: code ${e.seen.serial}:${e.seen.counter} already seen`);
      }
      s.insertRecord.run(e.sequence, e.time, e.bytes, e.hash);
      const p = e.spend;
      if (p !== undefined) s.upsertSpend.run(p.serial, p.total, p.count, p.day, p.dayTotal, p.dayCount, p.notAfter);
    });
  }

  async pending(afterSequence: number, max: number): Promise<Uint8Array[]> {
    return this.read('pending', (s) => {
      // LIMIT -1 means "no limit" to SQLite: clamp so a bad max can only ever return less.
      const limit = Number.isSafeInteger(max) && max > 0 ? max : 0;
      const from = Math.max(afterSequence, int(s.acked.get(), 'ack.through'));
      return s.pending.all(from, limit).map((v) => blob(v, 'records.bytes'));
    });
  }

  async acknowledge(throughSequence: number, pruneBeforeS: number): Promise<void> {
    if (!Number.isSafeInteger(throughSequence) || !Number.isSafeInteger(pruneBeforeS)) {
      throw new ProtocolError('bad_value', `journal: acknowledge(${throughSequence}, ${pruneBeforeS}) needs whole numbers`);
    }
    this.write('acknowledge', (s) => {
      const acked = int(s.acked.get(), 'ack.through');
      const head = headSequence(s);
      const through = Math.min(throughSequence, head);
      const next = Math.max(through, acked);
      if (next !== acked) s.setAcked.run(next);
      // The head record stays: it carries the chain's hash and time for the next append.
      s.pruneRecords.run(next, head);
      s.pruneSeen.run(pruneBeforeS);
      s.pruneSpend.run(pruneBeforeS);
    });
  }

  async getMeta(key: string): Promise<Uint8Array | undefined> {
    return this.read('getMeta', (s) => {
      const v = s.getMeta.get(key);
      return v === undefined ? undefined : blob(v, `meta.${key}`);
    });
  }

  async setMeta(key: string, value: Uint8Array): Promise<void> {
    this.write('setMeta', (s) => {
      s.setMeta.run(key, value);
    });
  }

  async setMetaMany(entries: ReadonlyArray<readonly [string, Uint8Array]>): Promise<void> {
    this.write('setMetaMany', (s) => {
      for (const [key, value] of entries) s.setMeta.run(key, value);
    });
  }

  async close(): Promise<void> {
    const db = this.db;
    this.db = undefined;
    this.s = undefined;
    if (db?.open === true) db.close();
  }

  /**
   * Runs one PRAGMA on the journal's own connection and returns its first value (diagnostics and
   * tests: journal_mode, synchronous, page_count, max_page_count).
   */
  pragma(source: string): unknown {
    return this.connection().pragma(source, { simple: true });
  }

  private connection(): Database.Database {
    if (this.db === undefined) throw new ProtocolError('bad_value', 'journal: not open (never opened, or closed)');
    return this.db;
  }

  private statements(): Statements {
    if (this.s === undefined) throw new ProtocolError('bad_value', 'journal: not open (never opened, or closed)');
    return this.s;
  }

  /** Opens the file, checks it is a healthy journal, brings the schema up to date, prepares statements. */
  private connect(): void {
    let db: Database.Database | undefined;
    try {
      createPrivately(this.path);
      db = new Database(this.path, { timeout: this.options.busyTimeoutMs ?? BUSY_TIMEOUT_MS });
      const mode = db.pragma('journal_mode = WAL', { simple: true });
      if (mode !== 'wal') throw new ProtocolError('bad_value', `journal ${this.path}: WAL mode refused (got ${String(mode)})`);
      db.pragma('synchronous = FULL');
      if (db.pragma('synchronous', { simple: true }) !== 2)
        throw new ProtocolError('bad_value', `journal ${this.path}: synchronous=FULL refused`);
      // Reads every page once: a few milliseconds at boot for a journal that is pruned as it uploads,
      // and a damaged file is named here rather than discovered mid-payment.
      const check = db.pragma('quick_check(1)', { simple: true });
      if (check !== 'ok')
        throw new ProtocolError('bad_value', `journal ${this.path} is corrupted: ${String(check)}; restore it, do not delete it`);
      migrate(db, this.path);
      for (const suffix of ['-wal', '-shm']) if (existsSync(this.path + suffix)) chmodSync(this.path + suffix, FILE_MODE);
      this.s = prepare(db);
      this.db = db;
    } catch (e) {
      db?.close();
      throw openError(this.path, e);
    }
  }

  /** One write transaction. Either all of `fn` commits (durably: WAL + synchronous=FULL) or none of it. */
  private write(operation: string, fn: (s: Statements) => void): void {
    const s = this.statements();
    const db = this.connection();
    // A connection left inside a transaction (a rollback that itself failed) would make every later
    // BEGIN fail: clear it first, or refuse with a clear error.
    if (db.inTransaction) rollbackQuietly(s);
    if (db.inTransaction)
      throw new JournalStorageError(operation, 'SQLITE_ERROR', 'the connection is stuck in a transaction', { cause: undefined });
    try {
      s.begin.run();
      fn(s);
      s.commit.run();
    } catch (e) {
      if (db.inTransaction) rollbackQuietly(s);
      throw storageError(operation, e);
    }
    if (db.inTransaction)
      throw new JournalStorageError(operation, 'SQLITE_ERROR', 'commit did not end the transaction', { cause: undefined });
  }

  private read<T>(operation: string, fn: (s: Statements) => T): T {
    const s = this.statements();
    try {
      return fn(s);
    } catch (e) {
      throw storageError(operation, e);
    }
  }

  private head(s: Statements): Head | undefined {
    const row = s.head.get();
    if (row === undefined) return undefined;
    const [sequence, time, hash] = tuple(row, 3, 'records');
    return { sequence: int(sequence, 'records.sequence'), time: int(time, 'records.time'), hash: blob(hash, 'records.hash') };
  }

  private snapshot(): JournalSnapshot {
    const s = this.statements();
    const head = this.head(s);
    const seen = s.allSeen.all().map((r) => {
      const [serial, counter, notAfter] = tuple(r, 3, 'seen');
      return [int(serial, 'seen.serial'), int(counter, 'seen.counter'), int(notAfter, 'seen.not_after')] as const;
    });
    return {
      headSequence: head?.sequence ?? 0,
      headHash: head?.hash ?? new Uint8Array(32),
      headTime: head?.time ?? 0,
      ackedSequence: int(s.acked.get(), 'ack.through'),
      seen,
      spend: s.allSpend.all().map(spendRow),
    };
  }
}

/** Creates the file mode 0600 before SQLite touches it, and tightens an existing one. */
function createPrivately(path: string): void {
  closeSync(openSync(path, constants.O_RDWR | constants.O_CREAT, FILE_MODE));
  chmodSync(path, FILE_MODE);
}

function migrate(db: Database.Database, path: string): void {
  const version = db.pragma('user_version', { simple: true });
  if (typeof version !== 'number' || version > MIGRATIONS.length) {
    throw new ProtocolError('bad_value', `journal ${path}: schema v${String(version)} is newer than this build (v${MIGRATIONS.length})`);
  }
  for (let v = version; v < MIGRATIONS.length; v++) {
    const step = MIGRATIONS[v] ?? '';
    db.transaction(() => {
      db.exec(step);
      db.pragma(`user_version = ${v + 1}`);
    }).immediate();
  }
}

function prepare(db: Database.Database): Statements {
  const raw = (sql: string) => db.prepare(sql).raw();
  const pluck = (sql: string) => db.prepare(sql).pluck();
  return {
    begin: db.prepare('BEGIN IMMEDIATE'),
    commit: db.prepare('COMMIT'),
    rollback: db.prepare('ROLLBACK'),
    head: raw('SELECT sequence, time, hash FROM records ORDER BY sequence DESC LIMIT 1'),
    headSequence: pluck('SELECT max(sequence) FROM records'),
    acked: pluck('SELECT through FROM ack WHERE id = 1'),
    insertRecord: db.prepare('INSERT INTO records (sequence, time, bytes, hash) VALUES (?, ?, ?, ?)'),
    insertSeen: db.prepare('INSERT OR IGNORE INTO seen (serial, counter, not_after) VALUES (?, ?, ?)'),
    upsertSpend: db.prepare(
      'INSERT OR REPLACE INTO spend (serial, total, count, day, day_total, day_count, not_after) VALUES (?, ?, ?, ?, ?, ?, ?)',
    ),
    pending: pluck('SELECT bytes FROM records WHERE sequence > ? ORDER BY sequence LIMIT ?'),
    setAcked: db.prepare('UPDATE ack SET through = ? WHERE id = 1'),
    pruneRecords: db.prepare('DELETE FROM records WHERE sequence <= ? AND sequence < ?'),
    pruneSeen: db.prepare('DELETE FROM seen WHERE not_after < ?'),
    pruneSpend: db.prepare('DELETE FROM spend WHERE not_after < ?'),
    getMeta: pluck('SELECT value FROM meta WHERE key = ?'),
    setMeta: db.prepare('INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)'),
    allSeen: raw('SELECT serial, counter, not_after FROM seen'),
    allSpend: raw('SELECT serial, total, count, day, day_total, day_count, not_after FROM spend ORDER BY serial'),
  };
}

/** The newest sequence, 0 for an empty journal: max() on the primary key is one b-tree descent. */
function headSequence(s: Statements): number {
  const v = s.headSequence.get();
  return v === null ? 0 : int(v, 'records.sequence');
}

function rollbackQuietly(s: Statements): void {
  try {
    s.rollback.run();
  } catch {
    // The caller checks inTransaction afterwards and refuses to go on if the rollback did not take.
  }
}

/** Our own contract errors pass through; SQLite's become JournalStorageError with a recovery hint. */
function storageError(operation: string, e: unknown): unknown {
  const code = sqliteCodeOf(e);
  if (code === undefined || !(e instanceof Error)) return e;
  return new JournalStorageError(operation, code, e.message, { cause: e });
}

function openError(path: string, e: unknown): ProtocolError {
  if (e instanceof ProtocolError) return e;
  const code = sqliteCodeOf(e);
  const message = e instanceof Error ? e.message : String(e);
  if (code === 'SQLITE_NOTADB' || code?.startsWith('SQLITE_CORRUPT') === true) {
    return new ProtocolError(
      'bad_value',
      `journal ${path} is not a SQLite journal or is corrupted (${code}: ${message}); restore it, do not delete it`,
      {
        cause: e,
      },
    );
  }
  return new ProtocolError('bad_value', `journal ${path}: cannot open (${code ?? 'error'}: ${message})`, { cause: e });
}

// Parsing what SQLite hands back: a damaged or foreign file gives a typed error, not a wrong value.

function tuple(v: unknown, n: number, what: string): unknown[] {
  if (!Array.isArray(v) || v.length !== n) throw new ProtocolError('bad_value', `journal: ${what} row has the wrong shape`);
  return v;
}

function int(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw new ProtocolError('bad_value', `journal: ${what} is not an integer`);
  return v;
}

function blob(v: unknown, what: string): Uint8Array {
  if (!(v instanceof Uint8Array)) throw new ProtocolError('bad_value', `journal: ${what} is not a blob`);
  // A plain copy: callers get a Uint8Array they own, not a Buffer view.
  return new Uint8Array(v);
}

function spendRow(r: unknown): SpendRow {
  const [serial, total, count, day, dayTotal, dayCount, notAfter] = tuple(r, 7, 'spend');
  return {
    serial: int(serial, 'spend.serial'),
    total: fenNonNegative(int(total, 'spend.total')),
    count: int(count, 'spend.count'),
    day: int(day, 'spend.day'),
    dayTotal: fenNonNegative(int(dayTotal, 'spend.day_total')),
    dayCount: int(dayCount, 'spend.day_count'),
    notAfter: int(notAfter, 'spend.not_after'),
  };
}
