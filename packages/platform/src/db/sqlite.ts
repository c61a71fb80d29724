/**
 * The embedded storage: the whole platform in one SQLite file (better-sqlite3), the default of
 * `duet serve`.
 *
 * Durability: WAL with synchronous=FULL, so every commit is fsynced before its promise resolves; a
 * killed process or a power cut loses nothing that was acknowledged. The file holds accounts and
 * keys, so it and its -wal/-shm companions are mode 0600, in a directory created 0700.
 *
 * Concurrency: better-sqlite3 is synchronous and this Db has one connection, so every call goes
 * through one queue: a transaction that awaits between statements keeps the connection to itself
 * until it ends, and no other call's statement can land inside it. Across processes, a transaction
 * starts with BEGIN IMMEDIATE (it takes the write lock first, so it never fails half-way on a lock).
 * Waiting for another process's lock is done in short blocking slices with async sleeps between,
 * so the event loop is never blocked for long; after `busyTimeoutMs` the call fails with
 * StorageUnavailableError (HTTP 503).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { chmodSync, closeSync, constants, existsSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import {
  type Column,
  type ConstraintKind,
  checkInsertMany,
  checkParam,
  type Db,
  type Dialect,
  type InsertManyOptions,
  type Migration,
  type Queryable,
  type Row,
  type SqlValue,
  StorageConstraintError,
  StorageUnavailableError,
} from './db.js';
import { type MigrationHost, type MigrationQueryable, runMigrations } from './migrate.js';

/** The database holds account data and key material: owner-only. */
const FILE_MODE = 0o600;
const DIR_MODE = 0o700;
/** Total wait for another process's write lock: long enough for any one transaction of ours. */
const BUSY_TIMEOUT_MS = 5_000;
/** One blocking wait inside SQLite (its busy handler); between slices the event loop runs. */
const BUSY_SLICE_MS = 20;
/** Async pause between lock attempts, at most; jittered so two processes do not retry in step. */
const BUSY_BACKOFF_MS_MAX = 50;
/** Prepared statements kept per connection; the platform's SQL is a few hundred fixed strings. */
const STATEMENT_CACHE_MAX = 500;
/** Rows in one insertMany: bounds the memory of one call (clearing inserts tens of thousands). */
const INSERT_MANY_ROWS_MAX = 1_000_000;

export const SQLITE_DIALECT: Dialect = {
  name: 'sqlite',
  int: 'INTEGER',
  bytes: 'BLOB',
  // AUTOINCREMENT: an id is never reused, even after the newest row is deleted (as a PostgreSQL identity).
  serialKey: 'INTEGER PRIMARY KEY AUTOINCREMENT',
};

export interface SqliteOptions {
  /** How long a write waits for another process's write lock before StorageUnavailableError. */
  readonly busyTimeoutMs?: number;
}

type Bound = bigint | string | Uint8Array | null;

/** Opens (creating if needed) the SQLite database at `path`; `:memory:` gives a private in-memory one. */
export async function openSqlite(path: string, options: SqliteOptions = {}): Promise<Db> {
  const busyTimeoutMs = options.busyTimeoutMs ?? BUSY_TIMEOUT_MS;
  if (!Number.isSafeInteger(busyTimeoutMs) || busyTimeoutMs < 0)
    throw new RangeError(`busyTimeoutMs ${busyTimeoutMs}: a whole number of ms >= 0`);
  const memory = path === ':memory:';
  let conn: Database.Database | undefined;
  try {
    if (!memory) createPrivately(path);
    conn = new Database(path, { timeout: Math.min(BUSY_SLICE_MS, busyTimeoutMs) });
    if (!memory) {
      const mode = conn.pragma('journal_mode = WAL', { simple: true });
      if (mode !== 'wal') throw new Error(`WAL mode refused (journal_mode is ${String(mode)})`);
    }
    conn.pragma('synchronous = FULL');
    conn.pragma('foreign_keys = ON');
    if (conn.pragma('synchronous', { simple: true }) !== 2) throw new Error('synchronous=FULL refused');
    if (conn.pragma('foreign_keys', { simple: true }) !== 1) throw new Error('foreign_keys=ON refused');
    // Every INTEGER comes back as a BigInt, so a value beyond 2^53 is seen and refused, never rounded.
    conn.defaultSafeIntegers(true);
    if (!memory) for (const suffix of ['-wal', '-shm']) if (existsSync(path + suffix)) chmodSync(path + suffix, FILE_MODE);
  } catch (e) {
    conn?.close();
    const mapped = storageError(e);
    if (mapped instanceof StorageUnavailableError) throw mapped;
    throw new Error(`SQLite database ${path}: cannot open (${e instanceof Error ? e.message : String(e)})`, { cause: e });
  }
  return new SqliteDb(conn, busyTimeoutMs);
}

/** Creates the file mode 0600 (and its directory 0700) before SQLite touches it; tightens an existing file. */
function createPrivately(path: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: DIR_MODE });
  closeSync(openSync(path, constants.O_RDWR | constants.O_CREAT, FILE_MODE));
  chmodSync(path, FILE_MODE);
}

/** A transaction in progress: its statements are allowed while `active`; `failed` poisons it. */
interface TxScope {
  active: boolean;
  failed: unknown;
}

class SqliteDb implements Db, MigrationHost {
  readonly dialect = SQLITE_DIALECT;
  private conn: Database.Database | undefined;
  private readonly statements = new Map<string, Database.Statement<unknown[], unknown>>();
  /** The queue: each call starts when the previous one has finished. */
  private tail: Promise<unknown> = Promise.resolve();
  private readonly inTx = new AsyncLocalStorage<TxScope>();
  private closing: Promise<void> | undefined;

  constructor(
    conn: Database.Database,
    private readonly busyTimeoutMs: number,
  ) {
    this.conn = conn;
  }

  async all<R extends Row = Row>(sql: string, params: readonly SqlValue[] = []): Promise<R[]> {
    this.refuseInsideTx('all');
    return this.exclusive(() => this.retryBusy(() => this.allNow<R>(sql, params)));
  }

  async one<R extends Row = Row>(sql: string, params: readonly SqlValue[] = []): Promise<R | undefined> {
    this.refuseInsideTx('one');
    return this.exclusive(() => this.retryBusy(() => this.oneNow<R>(sql, params)));
  }

  async run(sql: string, params: readonly SqlValue[] = []): Promise<number> {
    this.refuseInsideTx('run');
    return this.exclusive(() => this.retryBusy(() => this.runNow(sql, params)));
  }

  async insertMany(
    table: string,
    columns: readonly Column[],
    rows: readonly (readonly SqlValue[])[],
    options: InsertManyOptions = {},
  ): Promise<number> {
    this.refuseInsideTx('insertMany');
    checkInsertMany(table, columns, rows, INSERT_MANY_ROWS_MAX);
    if (rows.length === 0) return 0;
    return this.exclusive(() =>
      this.retryBusy(() => {
        this.execNow('BEGIN IMMEDIATE');
        try {
          const n = this.insertManyNow(table, columns, rows, options);
          this.execNow('COMMIT');
          return n;
        } catch (e) {
          this.rollbackQuietly();
          throw e;
        }
      }),
    );
  }

  async tx<T>(fn: (q: Queryable) => Promise<T>): Promise<T> {
    this.refuseInsideTx('tx');
    return this.exclusive(() => this.transaction(fn));
  }

  async migrationTx<T>(fn: (q: MigrationQueryable) => Promise<T>): Promise<T> {
    this.refuseInsideTx('migrate');
    // BEGIN IMMEDIATE is the migration lock: it excludes every other writer, in any process.
    return this.exclusive(() => this.transaction(fn));
  }

  async migrate(migrations: readonly Migration[]): Promise<string[]> {
    return runMigrations(this, migrations);
  }

  async close(): Promise<void> {
    this.closing ??= this.exclusive(async () => {
      const conn = this.conn;
      this.conn = undefined;
      this.statements.clear();
      conn?.close();
    });
    return this.closing;
  }

  // -------------------------------------------------------------------------------------------
  // Synchronous core, run only from inside the queue.

  /** @internal Statement calls of a transaction: only while it is active; a failure poisons it. */
  inScope<T>(scope: TxScope, what: string, fn: () => T): Promise<T> {
    try {
      if (!scope.active) throw new Error(`${what}: the transaction has already ended; use its Queryable only inside tx`);
      if (scope.failed !== undefined) throw new Error(`${what}: an earlier statement of this transaction failed`, { cause: scope.failed });
      return Promise.resolve(fn());
    } catch (e) {
      const mapped = storageError(e);
      if (scope.active && scope.failed === undefined) scope.failed = mapped;
      return Promise.reject(mapped);
    }
  }

  /** @internal */
  allNow<R extends Row>(sql: string, params: readonly SqlValue[]): R[] {
    const st = this.prepare(sql);
    const bound = bind(params);
    if (!st.reader) {
      st.run(bound);
      return [];
    }
    return st.all(bound).map((r) => fromSqliteRow<R>(r));
  }

  /** @internal */
  oneNow<R extends Row>(sql: string, params: readonly SqlValue[]): R | undefined {
    const st = this.prepare(sql);
    const bound = bind(params);
    if (!st.reader) {
      st.run(bound);
      return undefined;
    }
    const r = st.get(bound);
    return r === undefined ? undefined : fromSqliteRow<R>(r);
  }

  /** @internal */
  runNow(sql: string, params: readonly SqlValue[]): number {
    return this.prepare(sql).run(bind(params)).changes;
  }

  /** @internal Inserts rows inside the current transaction with one prepared statement. */
  insertManyNow(table: string, columns: readonly Column[], rows: readonly (readonly SqlValue[])[], options: InsertManyOptions): number {
    const names = columns.map((c) => c.name).join(', ');
    const marks = columns.map(() => '?').join(', ');
    const ignore = options.onConflict === 'ignore' ? ' ON CONFLICT DO NOTHING' : '';
    const st = this.prepare(`INSERT INTO ${table} (${names}) VALUES (${marks})${ignore}`);
    let n = 0;
    for (const row of rows) n += st.run(row.map((v) => (typeof v === 'number' ? BigInt(v) : v))).changes;
    return n;
  }

  /** @internal Raw SQL, possibly several statements (migrations). */
  execNow(sql: string): void {
    this.connection().exec(sql);
  }

  private async transaction<T>(fn: (q: TxQueryable) => Promise<T>): Promise<T> {
    await this.retryBusy(() => this.execNow('BEGIN IMMEDIATE'));
    const scope: TxScope = { active: true, failed: undefined };
    try {
      const result = await this.inTx.run(scope, () => fn(new TxQueryable(this, scope)));
      if (scope.failed !== undefined) throw scope.failed;
      scope.active = false;
      this.execNow('COMMIT');
      return result;
    } catch (e) {
      scope.active = false;
      this.rollbackQuietly();
      throw storageError(e);
    } finally {
      scope.active = false;
    }
  }

  private rollbackQuietly(): void {
    const conn = this.conn;
    if (conn?.inTransaction !== true) return;
    try {
      conn.exec('ROLLBACK');
    } catch {
      // Nothing more to do: SQLite rolls back a transaction whose ROLLBACK failed when the connection closes.
    }
  }

  private connection(): Database.Database {
    if (this.conn === undefined) throw new Error('the SQLite database is closed');
    return this.conn;
  }

  private prepare(sql: string): Database.Statement<unknown[], unknown> {
    const cached = this.statements.get(sql);
    if (cached !== undefined) {
      // Least recently used goes first: move this one to the end.
      this.statements.delete(sql);
      this.statements.set(sql, cached);
      return cached;
    }
    const st = this.connection().prepare<unknown[], unknown>(sql);
    this.statements.set(sql, st);
    if (this.statements.size > STATEMENT_CACHE_MAX) {
      const oldest = this.statements.keys().next();
      if (oldest.done !== true) this.statements.delete(oldest.value);
    }
    return st;
  }

  /** Calls on the Db from inside its own transaction would wait for that transaction forever. */
  private refuseInsideTx(what: string): void {
    if (this.inTx.getStore()?.active === true) {
      throw new Error(`db.${what}() called inside a transaction of the same Db: use the Queryable passed to tx()`);
    }
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.tail.then(fn);
    this.tail = run.catch(() => undefined);
    return run;
  }

  /**
   * Runs a statement (or a whole BEGIN IMMEDIATE ... COMMIT) that may meet another process's write
   * lock: SQLITE_BUSY means it changed nothing, so it is tried again after an async pause.
   */
  private async retryBusy<T>(fn: () => T): Promise<T> {
    const deadline = performance.now() + this.busyTimeoutMs;
    for (let attempt = 1; ; attempt++) {
      try {
        return fn();
      } catch (e) {
        if (!isBusy(e) || performance.now() >= deadline) throw storageError(e);
      }
      await sleep(Math.random() * Math.min(BUSY_BACKOFF_MS_MAX, 2 ** attempt));
    }
  }
}

/** The Queryable a transaction's `fn` gets: statements run inside that transaction, in order. */
class TxQueryable implements MigrationQueryable {
  constructor(
    private readonly db: SqliteDb,
    private readonly scope: TxScope,
  ) {}

  all<R extends Row = Row>(sql: string, params: readonly SqlValue[] = []): Promise<R[]> {
    return this.db.inScope(this.scope, 'all', () => this.db.allNow<R>(sql, params));
  }

  one<R extends Row = Row>(sql: string, params: readonly SqlValue[] = []): Promise<R | undefined> {
    return this.db.inScope(this.scope, 'one', () => this.db.oneNow<R>(sql, params));
  }

  run(sql: string, params: readonly SqlValue[] = []): Promise<number> {
    return this.db.inScope(this.scope, 'run', () => this.db.runNow(sql, params));
  }

  insertMany(
    table: string,
    columns: readonly Column[],
    rows: readonly (readonly SqlValue[])[],
    options: InsertManyOptions = {},
  ): Promise<number> {
    return this.db.inScope(this.scope, 'insertMany', () => {
      checkInsertMany(table, columns, rows, INSERT_MANY_ROWS_MAX);
      return rows.length === 0 ? 0 : this.db.insertManyNow(table, columns, rows, options);
    });
  }

  exec(sql: string): Promise<void> {
    return this.db.inScope(this.scope, 'exec', () => this.db.execNow(sql));
  }
}

// ---------------------------------------------------------------------------------------------
// Values in and out.

function bind(params: readonly SqlValue[]): Bound[] {
  return params.map((v, i) => {
    const c = checkParam(v, `parameter ${i + 1}`);
    // As int64: bound as a double, 2^53-1 would turn REAL in an expression without a column.
    return typeof c === 'number' ? BigInt(c) : c;
  });
}

const SAFE_MAX = BigInt(Number.MAX_SAFE_INTEGER);

function fromSqliteRow<R extends Row>(raw: unknown): R {
  const row = raw as Record<string, unknown>;
  for (const key of Object.keys(row)) row[key] = fromSqlite(row[key], key);
  return row as R;
}

function fromSqlite(v: unknown, column: string): SqlValue {
  if (v === null || typeof v === 'string' || typeof v === 'number') return v;
  if (typeof v === 'bigint') {
    if (v > SAFE_MAX || v < -SAFE_MAX) throw new RangeError(`column ${column}: ${v} is not a safe integer (|n| <= 2^53-1)`);
    return Number(v);
  }
  // A plain copy: callers get a Uint8Array they own, not a Buffer.
  if (v instanceof Uint8Array) return new Uint8Array(v);
  throw new TypeError(`column ${column}: unexpected ${typeof v} from SQLite`);
}

// ---------------------------------------------------------------------------------------------
// Errors.

function sqliteCode(e: unknown): string | undefined {
  return e instanceof Database.SqliteError ? e.code : undefined;
}

function isBusy(e: unknown): boolean {
  return sqliteCode(e)?.startsWith('SQLITE_BUSY') === true;
}

const CONSTRAINTS: Readonly<Record<string, ConstraintKind>> = {
  SQLITE_CONSTRAINT_PRIMARYKEY: 'unique',
  SQLITE_CONSTRAINT_UNIQUE: 'unique',
  SQLITE_CONSTRAINT_FOREIGNKEY: 'foreign_key',
  SQLITE_CONSTRAINT_NOTNULL: 'not_null',
  SQLITE_CONSTRAINT_CHECK: 'check',
};

/** Conditions that pass: another process's lock, a full or failing disk, a file we cannot open. */
const UNAVAILABLE = /^SQLITE_(BUSY|LOCKED|FULL|IOERR|CANTOPEN|READONLY|NOMEM|PROTOCOL)/;

function recovery(code: string): { hint: string; retryAfterS: number } {
  if (code.startsWith('SQLITE_FULL')) return { hint: 'the disk is full: free space', retryAfterS: 30 };
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'))
    return { hint: 'another process holds the database', retryAfterS: 1 };
  return { hint: 'check the storage device', retryAfterS: 5 };
}

/** SQLite's errors as the interface's: unavailable, constraint, or passed through unchanged. */
function storageError(e: unknown): unknown {
  const code = sqliteCode(e);
  if (code === undefined || !(e instanceof Error)) return e;
  if (UNAVAILABLE.test(code)) {
    const r = recovery(code);
    return new StorageUnavailableError(`SQLite ${code}: ${e.message} (${r.hint}; nothing was written)`, {
      cause: e,
      retryAfterS: r.retryAfterS,
    });
  }
  const kind = CONSTRAINTS[code];
  if (kind !== undefined) return new StorageConstraintError(kind, e.message, { cause: e });
  return e;
}
