/**
 * The production storage: PostgreSQL through a bounded `pg` pool. Several stateless API processes
 * can share one database (DESIGN §12).
 *
 * Isolation: every `tx` runs at SERIALIZABLE. Code written for SQLite (where writers are
 * serialised) reads a balance, checks it and writes it; SERIALIZABLE keeps that correct here
 * without per-query locks that SQLite does not have. The price is that conflicting transactions
 * fail with serialization_failure (40001) or deadlock_detected (40P01); those are retried whole,
 * with jittered exponential backoff, up to TX_ATTEMPTS_MAX times, then reported as
 * StorageUnavailableError (busy: 503, retry). PostgreSQL validates a serializable transaction's
 * reads only when it commits, so an error `fn` throws may rest on a snapshot no serial order
 * produces; that can only turn a write into a refusal, never write anything.
 *
 * Values: `?` placeholders become $1..$n (never inside literals, quoted identifiers or comments);
 * queries always use the extended protocol (one statement per call, as on SQLite). Type parsers
 * are per pool, not global: int8 and integral numeric become numbers (refused if not exact), bytea
 * becomes Uint8Array, bool becomes 1/0 as on SQLite, and any other type arrives as its text form.
 *
 * Failures: a refused, reset or timed-out connection, a server shutting down or out of resources,
 * becomes StorageUnavailableError; the transaction it interrupted is rolled back by the server.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import type { CustomTypesConfig, PoolClient, QueryConfig, QueryResult } from 'pg';
import {
  type Column,
  type ColumnType,
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

/** Connections per process: several API processes share the server's max_connections (default 100). */
const POOL_MAX = 10;
/** A server that does not accept a connection this fast is treated as unavailable (503), not waited on. */
const CONNECT_TIMEOUT_MS = 5_000;
/** Idle connections are closed after this, so a quiet process does not hold server slots. */
const IDLE_TIMEOUT_MS = 30_000;
/** No API statement should run this long; bounding it frees the connection and the locks. */
const STATEMENT_TIMEOUT_MS = 30_000;
/** Client-side bound: a server that stopped answering (a network partition) fails the query. */
const QUERY_TIMEOUT_MARGIN_MS = 5_000;
/** Migrations may build indexes on big tables and wait for another process's migration. */
const MIGRATION_TIMEOUT_MS = 3_600_000;
/** Attempts of one transaction under serialization conflicts (two hot writers conflict about half the time). */
const TX_ATTEMPTS_MAX = 20;
/** Backoff between attempts: full jitter over min(cap, base * 2^attempt). */
const TX_BACKOFF_MS_BASE = 2;
const TX_BACKOFF_MS_MAX = 200;
/** Rows per INSERT ... unnest statement: one round trip, and a parameter message of a few MB. */
const INSERT_CHUNK_ROWS = 50_000;
/** Rows in one insertMany: bounds the memory of one call. */
const INSERT_MANY_ROWS_MAX = 1_000_000;
/** Converted SQL strings kept; the platform's SQL is a few hundred fixed strings. */
const SQL_CACHE_MAX = 1_000;
/** pg_advisory_xact_lock key of the migration lock ("duetmg" in ASCII, below 2^53). */
const MIGRATION_LOCK_KEY = 0x6475_6574_6d67;

export const POSTGRES_DIALECT: Dialect = {
  name: 'postgres',
  int: 'BIGINT',
  bytes: 'BYTEA',
  serialKey: 'BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY',
};

const ARRAY_TYPE: Readonly<Record<ColumnType, string>> = { int: 'bigint[]', text: 'text[]', bytes: 'bytea[]' };

export interface PostgresOptions {
  /** Most connections this process opens. */
  readonly poolMax?: number;
  readonly connectTimeoutMs?: number;
  readonly statementTimeoutMs?: number;
  /** Attempts of one transaction under serialization conflicts before StorageUnavailableError. */
  readonly txAttemptsMax?: number;
  /**
   * Errors of idle pooled connections (the server restarted, the network dropped). The pool drops
   * such a connection by itself; without a listener they would crash the process, so the default
   * ignores them: the next query reports the outage as StorageUnavailableError.
   */
  readonly onIdleError?: (e: Error) => void;
}

/** Opens a pool on `url` (postgres:// or postgresql://). Connects lazily: an unreachable server fails queries, not this. */
export async function openPostgres(url: string, options: PostgresOptions = {}): Promise<Db> {
  const poolMax = options.poolMax ?? POOL_MAX;
  const statementTimeoutMs = options.statementTimeoutMs ?? STATEMENT_TIMEOUT_MS;
  const txAttemptsMax = options.txAttemptsMax ?? TX_ATTEMPTS_MAX;
  for (const [name, v, min] of [
    ['poolMax', poolMax, 1],
    ['statementTimeoutMs', statementTimeoutMs, 1],
    ['txAttemptsMax', txAttemptsMax, 1],
    ['connectTimeoutMs', options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS, 1],
  ] as const) {
    if (!Number.isSafeInteger(v) || v < min) throw new RangeError(`${name} ${v}: a whole number >= ${min}`);
  }
  const pool = new pg.Pool({
    connectionString: url,
    max: poolMax,
    connectionTimeoutMillis: options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS,
    idleTimeoutMillis: IDLE_TIMEOUT_MS,
    statement_timeout: statementTimeoutMs,
    query_timeout: statementTimeoutMs + QUERY_TIMEOUT_MARGIN_MS,
    keepAlive: true,
    application_name: 'duet',
    types: TYPES,
  });
  pool.on('error', options.onIdleError ?? (() => {}));
  return new PostgresDb(pool, txAttemptsMax);
}

interface TxScope {
  active: boolean;
  failed: unknown;
}

/**
 * A query as pg takes it. `queryMode: 'extended'` (pg supports it; its types do not list it) sends
 * even a parameterless query as one prepared statement, so a second statement is refused as on
 * SQLite; without it (migrations only) the simple protocol runs several. `query_timeout` overrides
 * the pool's client-side bound for one query.
 */
type PgQuery = QueryConfig & { readonly queryMode?: 'extended'; readonly query_timeout?: number };

/** The client-side bound of migration statements, which may wait for another process's migration. */
const MIGRATION_QUERY_TIMEOUT_MS = MIGRATION_TIMEOUT_MS + QUERY_TIMEOUT_MARGIN_MS;

class PostgresDb implements Db, MigrationHost {
  readonly dialect = POSTGRES_DIALECT;
  private readonly inTx = new AsyncLocalStorage<TxScope>();
  private closed = false;

  constructor(
    private readonly pool: pg.Pool,
    private readonly txAttemptsMax: number,
  ) {}

  async all<R extends Row = Row>(sql: string, params: readonly SqlValue[] = []): Promise<R[]> {
    return (await this.query(sql, params, 'all')).rows as R[];
  }

  async one<R extends Row = Row>(sql: string, params: readonly SqlValue[] = []): Promise<R | undefined> {
    return (await this.query(sql, params, 'one')).rows[0] as R | undefined;
  }

  async run(sql: string, params: readonly SqlValue[] = []): Promise<number> {
    return (await this.query(sql, params, 'run')).rowCount ?? 0;
  }

  async insertMany(
    table: string,
    columns: readonly Column[],
    rows: readonly (readonly SqlValue[])[],
    options: InsertManyOptions = {},
  ): Promise<number> {
    this.refuse('insertMany');
    checkInsertMany(table, columns, rows, INSERT_MANY_ROWS_MAX);
    if (rows.length === 0) return 0;
    // One statement is atomic by itself; several need a transaction so the call stays all-or-none.
    if (rows.length <= INSERT_CHUNK_ROWS) return (await this.send(this.pool, insertManyQuery(table, columns, rows, options))).rowCount ?? 0;
    return this.tx((q) => q.insertMany(table, columns, rows, options));
  }

  async tx<T>(fn: (q: Queryable) => Promise<T>): Promise<T> {
    this.refuse('tx');
    return this.transaction('BEGIN ISOLATION LEVEL SERIALIZABLE', undefined, this.txAttemptsMax, fn);
  }

  async migrationTx<T>(fn: (q: MigrationQueryable) => Promise<T>): Promise<T> {
    this.refuse('migrate');
    // READ COMMITTED: each statement sees what committed before it, so after the lock is granted the
    // reads see every earlier migration (a serializable snapshot would be taken before the wait).
    const lock = [`SET LOCAL statement_timeout = ${MIGRATION_TIMEOUT_MS}`, `SELECT pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})`].map(
      (text): PgQuery => ({ text, query_timeout: MIGRATION_QUERY_TIMEOUT_MS }),
    );
    return this.transaction('BEGIN ISOLATION LEVEL READ COMMITTED', lock, 1, fn);
  }

  async migrate(migrations: readonly Migration[]): Promise<string[]> {
    return runMigrations(this, migrations);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }

  // -------------------------------------------------------------------------------------------

  /** @internal Sends one query on the pool or on a transaction's client, with errors converted. */
  async send(on: pg.Pool | PoolClient, query: PgQuery, inTx = false): Promise<QueryResult> {
    if (this.closed) throw new Error('the PostgreSQL database is closed');
    try {
      return await (on instanceof pg.Pool ? on.query(query) : on.query(query));
    } catch (e) {
      throw pgError(e, inTx);
    }
  }

  private async query(sql: string, params: readonly SqlValue[], what: string): Promise<QueryResult> {
    this.refuse(what);
    return this.send(this.pool, statement(sql, params));
  }

  private refuse(what: string): void {
    if (this.inTx.getStore()?.active === true) {
      throw new Error(`db.${what}() called inside a transaction of the same Db: use the Queryable passed to tx()`);
    }
  }

  private async transaction<T>(
    begin: string,
    lock: readonly PgQuery[] | undefined,
    attemptsMax: number,
    fn: (q: TxQueryable) => Promise<T>,
  ): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.attempt(begin, lock, fn);
      } catch (e) {
        if (!isConflict(e)) throw pgError(e, false);
        if (attempt >= attemptsMax) {
          throw new StorageUnavailableError(`PostgreSQL busy: the transaction conflicted ${attempt} times in a row (${errorCode(e)})`, {
            cause: e,
            retryAfterS: 1,
          });
        }
        await sleep(Math.random() * Math.min(TX_BACKOFF_MS_MAX, TX_BACKOFF_MS_BASE * 2 ** attempt));
      }
    }
  }

  /** One try: BEGIN, fn, COMMIT; any failure rolls back. Throws the conflict itself when there was one. */
  private async attempt<T>(begin: string, lock: readonly PgQuery[] | undefined, fn: (q: TxQueryable) => Promise<T>): Promise<T> {
    if (this.closed) throw new Error('the PostgreSQL database is closed');
    let client: PoolClient;
    try {
      client = await this.pool.connect();
    } catch (e) {
      throw pgError(e, false);
    }
    const scope: TxScope = { active: true, failed: undefined };
    let broken = false;
    // A checked-out client has no error listener of the pool's: without ours, a connection dropped
    // mid-transaction would be an uncaught exception. Its query then rejects, and we discard it.
    const onError = () => {
      broken = true;
    };
    client.on('error', onError);
    try {
      await client.query(begin);
      for (const query of lock ?? []) await client.query(query);
      const result = await this.inTx.run(scope, () => fn(new TxQueryable(this, client, scope)));
      if (scope.failed !== undefined) throw scope.failed;
      scope.active = false;
      await client.query('COMMIT');
      return result;
    } catch (e) {
      scope.active = false;
      try {
        await client.query('ROLLBACK');
      } catch {
        broken = true; // the connection is gone; the server rolled the transaction back
      }
      // A conflict anywhere in the transaction (even one fn caught) means: run it again.
      const conflict = [scope.failed, e].find(isConflict);
      throw conflict ?? e;
    } finally {
      scope.active = false;
      client.removeListener('error', onError);
      client.release(broken);
    }
  }
}

/** The Queryable a transaction's `fn` gets: statements go to the transaction's own connection. */
class TxQueryable implements MigrationQueryable {
  constructor(
    private readonly db: PostgresDb,
    private readonly client: PoolClient,
    private readonly scope: TxScope,
  ) {}

  async all<R extends Row = Row>(sql: string, params: readonly SqlValue[] = []): Promise<R[]> {
    return (await this.send('all', () => statement(sql, params))).rows as R[];
  }

  async one<R extends Row = Row>(sql: string, params: readonly SqlValue[] = []): Promise<R | undefined> {
    return (await this.send('one', () => statement(sql, params))).rows[0] as R | undefined;
  }

  async run(sql: string, params: readonly SqlValue[] = []): Promise<number> {
    return (await this.send('run', () => statement(sql, params))).rowCount ?? 0;
  }

  async insertMany(
    table: string,
    columns: readonly Column[],
    rows: readonly (readonly SqlValue[])[],
    options: InsertManyOptions = {},
  ): Promise<number> {
    let n = 0;
    const first = await this.send('insertMany', () => {
      checkInsertMany(table, columns, rows, INSERT_MANY_ROWS_MAX);
      return rows.length === 0 ? undefined : insertManyQuery(table, columns, rows.slice(0, INSERT_CHUNK_ROWS), options);
    });
    n += first.rowCount ?? 0;
    for (let from = INSERT_CHUNK_ROWS; from < rows.length; from += INSERT_CHUNK_ROWS) {
      const chunk = rows.slice(from, from + INSERT_CHUNK_ROWS);
      n += (await this.send('insertMany', () => insertManyQuery(table, columns, chunk, options))).rowCount ?? 0;
    }
    return n;
  }

  async exec(sql: string): Promise<void> {
    // The simple protocol: a migration step may hold several statements. Bounded like the lock wait.
    await this.send('exec', () => ({ text: sql, query_timeout: MIGRATION_QUERY_TIMEOUT_MS }));
  }

  /** Builds and sends one query in the transaction; any failure poisons the transaction. */
  private async send(what: string, build: () => PgQuery | undefined): Promise<QueryResult | EmptyResult> {
    try {
      if (!this.scope.active) throw new Error(`${what}: the transaction has already ended; use its Queryable only inside tx`);
      if (this.scope.failed !== undefined)
        throw new Error(`${what}: an earlier statement of this transaction failed`, { cause: this.scope.failed });
      const query = build();
      if (query === undefined) return EMPTY;
      return await this.db.send(this.client, query, true);
    } catch (e) {
      if (this.scope.active && this.scope.failed === undefined) this.scope.failed = e;
      throw e;
    }
  }
}

type EmptyResult = { readonly rows: never[]; readonly rowCount: 0 };
const EMPTY: EmptyResult = { rows: [], rowCount: 0 };

// ---------------------------------------------------------------------------------------------
// SQL and values.

const converted = new Map<string, { readonly text: string; readonly count: number }>();

/** `?` → `$n` once per distinct SQL string (the platform's SQL is fixed text, so this cache stays small). */
function convert(sql: string): { readonly text: string; readonly count: number } {
  const hit = converted.get(sql);
  if (hit !== undefined) return hit;
  const c = convertPlaceholders(sql);
  if (converted.size >= SQL_CACHE_MAX) converted.clear();
  converted.set(sql, c);
  return c;
}

function statement(sql: string, params: readonly SqlValue[]): PgQuery {
  const { text, count } = convert(sql);
  if (count !== params.length) throw new RangeError(`the SQL has ${count} placeholder(s) but ${params.length} parameter(s) were given`);
  return { text, values: params.map((v, i) => checkParam(v, `parameter ${i + 1}`)), queryMode: 'extended' };
}

function insertManyQuery(
  table: string,
  columns: readonly Column[],
  rows: readonly (readonly SqlValue[])[],
  options: InsertManyOptions,
): PgQuery {
  const names = columns.map((c) => c.name).join(', ');
  const arrays = columns.map((c, i) => `$${i + 1}::${ARRAY_TYPE[c.type]}`).join(', ');
  const ignore = options.onConflict === 'ignore' ? ' ON CONFLICT DO NOTHING' : '';
  return {
    text: `INSERT INTO ${table} (${names}) SELECT * FROM unnest(${arrays})${ignore}`,
    // pg writes each array as an array literal: numbers as text, bytes as \x hex, null as NULL.
    values: columns.map((_, j) => rows.map((r) => r[j] ?? null)),
    queryMode: 'extended',
  };
}

/**
 * Rewrites `?` to `$1..$n`, leaving alone string literals ('...', E'...' with backslash escapes,
 * $tag$...$tag$), quoted identifiers and comments. A `$n` already in the SQL is not supported.
 * @internal exported for tests.
 */
export function convertPlaceholders(sql: string): { text: string; count: number } {
  let out = '';
  let count = 0;
  let i = 0;
  const n = sql.length;
  const isWord = (ch: string | undefined) => ch !== undefined && /[A-Za-z0-9_$]/.test(ch);
  while (i < n) {
    const ch = sql[i] ?? '';
    const next = sql[i + 1];
    let end = i + 1;
    if (ch === '?') {
      out += `$${++count}`;
      i++;
      continue;
    }
    if (ch === "'") {
      const escapes = (sql[i - 1] === 'E' || sql[i - 1] === 'e') && !isWord(sql[i - 2]);
      end = quoted(sql, i, "'", escapes);
    } else if (ch === '"') {
      end = quoted(sql, i, '"', false);
    } else if (ch === '-' && next === '-') {
      const nl = sql.indexOf('\n', i);
      end = nl < 0 ? n : nl + 1;
    } else if (ch === '/' && next === '*') {
      end = blockComment(sql, i);
    } else if (ch === '$' && !isWord(sql[i - 1])) {
      const tag = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(i, i + 64));
      if (tag !== null) {
        const close = sql.indexOf(tag[0], i + tag[0].length);
        end = close < 0 ? n : close + tag[0].length;
      }
    }
    out += sql.slice(i, end);
    i = end;
  }
  return { text: out, count };
}

/** The index just past a quoted run starting at `start`; a doubled quote is an escaped quote. */
function quoted(sql: string, start: number, q: string, backslashEscapes: boolean): number {
  let i = start + 1;
  while (i < sql.length) {
    const ch = sql[i];
    if (backslashEscapes && ch === '\\') i += 2;
    else if (ch === q && sql[i + 1] === q) i += 2;
    else if (ch === q) return i + 1;
    else i++;
  }
  return sql.length;
}

/** The index just past a block comment starting at `start`; PostgreSQL block comments nest. */
function blockComment(sql: string, start: number): number {
  let depth = 0;
  let i = start;
  while (i < sql.length) {
    if (sql[i] === '/' && sql[i + 1] === '*') {
      depth++;
      i += 2;
    } else if (sql[i] === '*' && sql[i + 1] === '/') {
      depth--;
      i += 2;
      if (depth === 0) return i;
    } else i++;
  }
  return sql.length;
}

function int8(s: string): number {
  const v = Number(s);
  if (!/^-?\d+$/.test(s) || !Number.isSafeInteger(v)) throw new RangeError(`PostgreSQL returned ${s}, not a safe integer (|n| <= 2^53-1)`);
  return v;
}

/** sum() of bigints is numeric: integral values are integers (checked); a fraction (avg) is a float, as SQLite's REAL. */
function numeric(s: string): number {
  return /^-?\d+$/.test(s) ? int8(s) : Number(s);
}

function bytea(s: string): Uint8Array {
  if (s.startsWith('\\x')) return new Uint8Array(Buffer.from(s.slice(2), 'hex'));
  return new Uint8Array(pg.types.getTypeParser(17, 'text')(s) as Buffer);
}

const OID = { bool: 16, bytea: 17, int8: 20, int2: 21, int4: 23, oid: 26, float4: 700, float8: 701, numeric: 1700 } as const;
const asText = (s: string) => s;
const asBool = (s: string) => (s === 't' ? 1 : 0);

/** Every type maps to a SqlValue: the numeric and byte types converted, everything else its text. */
const TYPES: CustomTypesConfig = {
  getTypeParser: (oid: number, format?: string) => {
    if (format === 'binary') return pg.types.getTypeParser(oid, 'binary');
    switch (oid) {
      case OID.int8:
        return int8;
      case OID.numeric:
        return numeric;
      case OID.bytea:
        return bytea;
      case OID.bool:
        return asBool;
      case OID.int2:
      case OID.int4:
      case OID.oid:
      case OID.float4:
      case OID.float8:
        return pg.types.getTypeParser(oid, 'text');
      default:
        return asText;
    }
  },
};

// ---------------------------------------------------------------------------------------------
// Errors.

function errorCode(e: unknown): string | undefined {
  if (typeof e !== 'object' || e === null || !('code' in e)) return undefined;
  return typeof e.code === 'string' ? e.code : undefined;
}

function isConflict(e: unknown): boolean {
  const code = errorCode(e);
  return code === '40001' || code === '40P01';
}

/** Network failures reported by Node when connecting or talking to the server. */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EPIPE',
  'ENOENT',
  'ECONNABORTED',
]);
/** pg's own words for a lost or never-made connection (it gives these errors no code). */
const NETWORK_MESSAGES =
  /Connection terminated|timeout exceeded when trying to connect|Query read timeout|Client has encountered a connection error|not queryable/;

const CONSTRAINTS: Readonly<Record<string, ConstraintKind>> = {
  '23505': 'unique',
  '23503': 'foreign_key',
  '23502': 'not_null',
  '23514': 'check',
};

/** Retry-After for a server-side condition, or undefined when the error is not about availability. */
function unavailableRetryS(code: string): number | undefined {
  if (code.startsWith('08')) return 5; // connection exception
  if (code === '57P01' || code === '57P02' || code === '57P03') return 5; // shutdown, crash, starting up
  if (code === '53100') return 30; // disk full
  if (code.startsWith('53') || code.startsWith('58')) return 5; // out of memory or connections; I/O error
  if (code === '57014' || code === '55P03') return 1; // statement timeout, lock not available
  if (code === '25006') return 5; // read-only: a standby after a failover
  return undefined;
}

function isNetworkError(e: unknown): boolean {
  const code = errorCode(e);
  if (code !== undefined && NETWORK_CODES.has(code)) return true;
  if (e instanceof AggregateError) return e.errors.some(isNetworkError);
  return e instanceof Error && NETWORK_MESSAGES.test(e.message);
}

/** pg's errors as the interface's. Inside a transaction a conflict passes through, for the retry loop. */
function pgError(e: unknown, inTx: boolean): unknown {
  if (e instanceof StorageUnavailableError || e instanceof StorageConstraintError || !(e instanceof Error)) return e;
  const code = errorCode(e);
  if (isNetworkError(e)) {
    return new StorageUnavailableError(`PostgreSQL unreachable: ${e.message || code} (nothing was written; retry shortly)`, {
      cause: e,
      retryAfterS: 5,
    });
  }
  if (code === undefined) return e;
  if (isConflict(e)) {
    return inTx ? e : new StorageUnavailableError(`PostgreSQL busy (${code}): ${e.message}`, { cause: e, retryAfterS: 1 });
  }
  const retryAfterS = unavailableRetryS(code);
  if (retryAfterS !== undefined)
    return new StorageUnavailableError(`PostgreSQL unavailable (${code}): ${e.message}`, { cause: e, retryAfterS });
  const kind = CONSTRAINTS[code];
  if (kind !== undefined) return new StorageConstraintError(kind, e.message, { cause: e });
  return e;
}
