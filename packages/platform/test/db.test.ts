/**
 * Storage: the Db contract on SQLite and on PostgreSQL (db.contract.ts), then what each does that
 * the other need not: SQLite's file, durability and lock behaviour, including a SIGKILL crash
 * test; PostgreSQL's outage handling ("database unreachable: 503 with a retry hint, no partial
 * writes") and serialization retries; the --db parser.
 *
 * The crash test runs the BUILT storage (dist/) in a child process: `npm run build` first (npm test does).
 */
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { type Db, StorageUnavailableError } from '../src/db/db.js';
import { DatabaseUrlError, openDatabase, parseDatabaseUrl, redactUrl } from '../src/db/open.js';
import { convertPlaceholders, openPostgres } from '../src/db/postgres.js';
import { openSqlite } from '../src/db/sqlite.js';
import { dbContract, thrown } from './db.contract.js';
import { databases, freshPostgres, freshSqlite, pgAvailable } from './pg-harness.js';

for (const d of databases) dbContract(d);

const HERE = dirname(fileURLToPath(import.meta.url));
const BUILT_SQLITE = join(HERE, '../dist/db/sqlite.js');

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'duet-db-'));
  dirs.push(d);
  return d;
}
const toClose: Db[] = [];
afterAll(async () => {
  await Promise.allSettled(toClose.map((d) => d.close()));
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve = () => {};
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

describe('SQLite: the file', () => {
  it('creates the file 0600 (and -wal, -shm) in a new directory 0700, in WAL with synchronous=FULL and foreign keys on', async () => {
    const s = freshSqlite();
    const db = await s.open();
    await db.run('CREATE TABLE x (n INTEGER)');
    await db.run('INSERT INTO x (n) VALUES (1)');
    for (const suffix of ['', '-wal', '-shm']) expect(statSync(s.location + suffix).mode & 0o777, `duet.db${suffix}`).toBe(0o600);
    expect(statSync(dirname(s.location)).mode & 0o777).toBe(0o700);
    expect(await db.one('PRAGMA journal_mode')).toEqual({ journal_mode: 'wal' });
    expect(await db.one('PRAGMA synchronous')).toEqual({ synchronous: 2 });
    expect(await db.one('PRAGMA foreign_keys')).toEqual({ foreign_keys: 1 });
  });

  it('tightens an existing file that others could read', async () => {
    const path = join(tempDir(), 'duet.db');
    writeFileSync(path, '');
    chmodSync(path, 0o644);
    toClose.push(await openSqlite(path));
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });

  it('refuses a file that is not SQLite with a clear error', async () => {
    const path = join(tempDir(), 'duet.db');
    writeFileSync(path, 'minutes of the canteen committee\n'.repeat(200));
    expect(String(await thrown(openSqlite(path)))).toMatch(/cannot open|not a database/);
  });
});

describe('SQLite: another process holding the write lock', () => {
  it('waits without blocking the event loop, then fails with StorageUnavailableError, and works once the lock is free', async () => {
    const s = freshSqlite({ busyTimeoutMs: 300 });
    const holder = await s.open();
    const waiter = await s.open();
    await holder.run('CREATE TABLE x (n INTEGER)');
    const release = deferred();
    const held = holder.tx(async (q) => {
      await q.run('INSERT INTO x (n) VALUES (1)');
      await release.promise;
    });
    let ticks = 0;
    const timer = setInterval(() => ticks++, 10);
    const started = performance.now();
    const e = await thrown(waiter.run('INSERT INTO x (n) VALUES (2)'));
    clearInterval(timer);
    expect(e).toBeInstanceOf(StorageUnavailableError);
    expect((e as StorageUnavailableError).retryAfterS).toBeGreaterThan(0);
    expect(performance.now() - started).toBeGreaterThanOrEqual(250);
    expect(ticks).toBeGreaterThan(5); // timers kept firing while it waited
    expect(await thrown(waiter.tx(async (q) => q.run('INSERT INTO x (n) VALUES (3)')))).toBeInstanceOf(StorageUnavailableError);
    release.resolve();
    await held;
    await waiter.run('INSERT INTO x (n) VALUES (4)');
    expect(await waiter.all('SELECT n FROM x ORDER BY n')).toEqual([{ n: 1 }, { n: 4 }]);
  });

  it('a full disk (max_page_count) fails with StorageUnavailableError and writes nothing', async () => {
    const db = await freshSqlite().open();
    await db.run('CREATE TABLE x (b BLOB)');
    await db.run('INSERT INTO x (b) VALUES (?)', [new Uint8Array(100)]);
    const pages = (await db.one<{ page_count: number }>('PRAGMA page_count'))?.page_count ?? 0;
    await db.run(`PRAGMA max_page_count = ${pages}`);
    const e = await thrown(
      db.tx(async (q) => {
        await q.run('INSERT INTO x (b) VALUES (?)', [new Uint8Array(10)]);
        await q.run('INSERT INTO x (b) VALUES (?)', [new Uint8Array(50_000)]);
      }),
    );
    expect(e).toBeInstanceOf(StorageUnavailableError);
    expect((e as Error).message).toMatch(/SQLITE_FULL.*disk is full/);
    expect(await db.one('SELECT count(*) AS n FROM x')).toEqual({ n: 1 });
  });
});

/**
 * The child: opens the built SQLite storage, then commits rows in a loop (single inserts and
 * insertMany batches) and prints each id only after its commit resolved, i.e. once acknowledged.
 */
const CHILD = `
const [built, path, round] = process.argv.slice(1);
const { openSqlite } = await import(built);
const db = await openSqlite(path);
await db.migrate([{ id: 'crash/001', sql: (d) => ['CREATE TABLE acked (id ' + d.serialKey + ', tag TEXT NOT NULL, pad ' + d.bytes + ')'] }]);
const pad = new Uint8Array(512).fill(7);
process.stdout.write('ready\\n');
for (let k = 0; ; k++) {
  if (k % 10 === 9) {
    const tags = Array.from({ length: 50 }, (_, j) => round + '-' + k + '-' + j);
    await db.insertMany('acked', [{ name: 'tag', type: 'text' }, { name: 'pad', type: 'bytes' }], tags.map((t) => [t, pad]));
    process.stdout.write(tags.map((t) => 'tag ' + t + '\\n').join(''));
  } else {
    const tag = round + '-' + k;
    const row = await db.tx((q) => q.one('INSERT INTO acked (tag, pad) VALUES (?, ?) RETURNING id', [tag, pad]));
    process.stdout.write('tag ' + tag + ' ' + row.id + '\\n');
  }
}
`;

/** Runs the child until it has acknowledged a few commits and a random moment later, then SIGKILLs it. */
function runAndKill(path: string, round: number, killAfterMs: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--input-type=module', '-e', CHILD, pathToFileURL(BUILT_SQLITE).href, path, String(round)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    let armed = false;
    p.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
      if (!armed && out.split('\n').length > 20) {
        armed = true;
        setTimeout(() => p.kill('SIGKILL'), killAfterMs);
      }
    });
    p.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      err += chunk;
    });
    const timeout = setTimeout(() => p.kill('SIGKILL'), 20_000);
    p.on('error', reject);
    p.on('close', (code, signal) => {
      clearTimeout(timeout);
      if (signal !== 'SIGKILL') reject(new Error(`child exited ${String(code)} ${String(signal)}: ${err}`));
      // Only whole lines were acknowledged; a line cut by the kill is ignored.
      const lines = out.split('\n').slice(0, -1);
      resolve(lines.filter((l) => l.startsWith('tag ')).map((l) => l.split(' ')[1] ?? ''));
    });
  });
}

describe('SQLite: a killed process loses nothing it acknowledged', () => {
  it('SIGKILL at random moments, 8 times: every acknowledged row is there after reopening', async () => {
    expect(existsSync(BUILT_SQLITE), `${BUILT_SQLITE} missing: run \`npm run build\` first`).toBe(true);
    const path = join(tempDir(), 'data', 'duet.db');
    const acknowledged = new Set<string>();
    for (let round = 1; round <= 8; round++) {
      const tags = await runAndKill(path, round, 5 + Math.floor(Math.random() * 150));
      expect(tags.length).toBeGreaterThan(0);
      for (const t of tags) acknowledged.add(t);
      const db = await openSqlite(path);
      const stored = new Set((await db.all<{ tag: string }>('SELECT tag FROM acked')).map((r) => r.tag));
      await db.close();
      const lost = [...acknowledged].filter((t) => !stored.has(t));
      expect(lost, `round ${round}: acknowledged but missing`).toEqual([]);
    }
    expect(acknowledged.size).toBeGreaterThan(8 * 20);
  });
});

/** A loopback port with nothing listening on it. */
function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a !== null ? a.port : 1));
    });
  });
}

describe('PostgreSQL unreachable', () => {
  it('every call fails fast with StorageUnavailableError and a retry hint (the API answers 503)', async () => {
    const url = `postgres://duet:secret@127.0.0.1:${await closedPort()}/duet`;
    const db = await openPostgres(url, { connectTimeoutMs: 2_000 });
    toClose.push(db);
    const started = performance.now();
    const calls: Promise<unknown>[] = [
      db.all('SELECT 1 AS x'),
      db.one('SELECT 1 AS x'),
      db.run('SELECT 1'),
      db.insertMany('t', [{ name: 'i', type: 'int' }], [[1]]),
      db.tx(async (q) => q.run('SELECT 1')),
      db.migrate([{ id: 'x/001', sql: () => ['SELECT 1'] }]),
    ];
    for (const call of calls) {
      const e = await thrown(call);
      expect(e).toBeInstanceOf(StorageUnavailableError);
      expect((e as StorageUnavailableError).retryAfterS).toBeGreaterThan(0);
      expect((e as Error).message).not.toMatch(/secret/);
    }
    expect(performance.now() - started).toBeLessThan(5_000);
  });
});

describe.skipIf(!pgAvailable)('PostgreSQL: outages and conflicts', () => {
  it('a connection killed mid-transaction fails it with StorageUnavailableError, writes nothing, and the Db carries on', async () => {
    const s = await freshPostgres();
    const db = await s.open();
    const admin = await s.open();
    await db.run(`CREATE TABLE x (n ${db.dialect.int})`);
    const e = await thrown(
      db.tx(async (q) => {
        await q.run('INSERT INTO x (n) VALUES (1)');
        const me = await q.one<{ pid: number }>('SELECT pg_backend_pid() AS pid');
        await admin.one('SELECT pg_terminate_backend(?) AS ok', [me?.pid ?? 0]);
        await q.run('INSERT INTO x (n) VALUES (2)');
      }),
    );
    expect(e).toBeInstanceOf(StorageUnavailableError);
    expect(await db.all('SELECT n FROM x')).toEqual([]);
    await db.tx((q) => q.run('INSERT INTO x (n) VALUES (3)'));
    expect(await db.all('SELECT n FROM x')).toEqual([{ n: 3 }]);
  });

  /** Runs two read-then-write transactions on one row so that the first always loses to the second. */
  async function lostUpdate(db: Db): Promise<{ first: unknown; attempts: number }> {
    await db.run(`CREATE TABLE IF NOT EXISTS c (id ${db.dialect.int} PRIMARY KEY, n ${db.dialect.int} NOT NULL)`);
    await db.run('DELETE FROM c');
    await db.run('INSERT INTO c (id, n) VALUES (1, 0)');
    const read = deferred();
    const go = deferred();
    let attempts = 0;
    const first = thrown(
      db.tx(async (q) => {
        attempts++;
        const r = await q.one<{ n: number }>('SELECT n FROM c WHERE id = 1');
        read.resolve();
        await go.promise;
        await q.run('UPDATE c SET n = ? WHERE id = 1', [(r?.n ?? 0) + 1]);
      }),
    );
    await read.promise;
    await db.tx(async (q) => {
      const r = await q.one<{ n: number }>('SELECT n FROM c WHERE id = 1');
      await q.run('UPDATE c SET n = ? WHERE id = 1', [(r?.n ?? 0) + 1]);
    });
    go.resolve();
    return { first: await first, attempts };
  }

  it('retries a transaction that lost a serialization conflict, so no update is lost', async () => {
    const db = await (await freshPostgres()).open();
    const { first, attempts } = await lostUpdate(db);
    expect(first).toBeUndefined();
    expect(attempts).toBe(2);
    expect(await db.one('SELECT n FROM c')).toEqual({ n: 2 });
  });

  it('reports a conflict that outlasts its attempts as StorageUnavailableError (busy), writing nothing', async () => {
    const db = await (await freshPostgres({ txAttemptsMax: 1 })).open();
    const { first } = await lostUpdate(db);
    expect(first).toBeInstanceOf(StorageUnavailableError);
    expect((first as Error).message).toMatch(/busy.*40001/);
    expect(await db.one('SELECT n FROM c')).toEqual({ n: 1 });
  });

  it('runs transactions at SERIALIZABLE', async () => {
    const db = await (await freshPostgres()).open();
    expect(await db.tx((q) => q.one('SHOW transaction_isolation'))).toEqual({ transaction_isolation: 'serializable' });
  });
});

describe('PostgreSQL placeholders', () => {
  it.each([
    ['SELECT ?', 'SELECT $1', 1],
    ["SELECT '?', ?", "SELECT '?', $1", 1],
    ["SELECT 'it''s ?', ? FROM t WHERE a = ?", "SELECT 'it''s ?', $1 FROM t WHERE a = $2", 2],
    ["SELECT E'\\' ?', ?", "SELECT E'\\' ?', $1", 1],
    ["SELECT e'a\\\\', ?", "SELECT e'a\\\\', $1", 1],
    ['SELECT "col?" FROM t WHERE x = ?', 'SELECT "col?" FROM t WHERE x = $1', 1],
    ['SELECT 1 -- ?\n, ?', 'SELECT 1 -- ?\n, $1', 1],
    ['SELECT /* ? /* nested ? */ ? */ ?', 'SELECT /* ? /* nested ? */ ? */ $1', 1],
    ['SELECT $$ ? $$, $tag$ ? $$ ? $tag$, ?', 'SELECT $$ ? $$, $tag$ ? $$ ? $tag$, $1', 1],
    ['SELECT a$b, ? FROM t', 'SELECT a$b, $1 FROM t', 1],
    ["SELECT '?", "SELECT '?", 0],
  ])('%s', (sql, text, n) => {
    expect(convertPlaceholders(sql)).toEqual({ text, count: n });
  });
});

describe('openDatabase: the --db option', () => {
  it('keeps everything in one SQLite file under the data directory by default', async () => {
    const dataDir = join(tempDir(), 'data');
    const db = await openDatabase(undefined, dataDir);
    toClose.push(db);
    expect(db.dialect.name).toBe('sqlite');
    expect(statSync(join(dataDir, 'duet.db')).mode & 0o777).toBe(0o600);
    expect(statSync(dataDir).mode & 0o777).toBe(0o700);
  });

  it('takes sqlite:PATH or a plain path for SQLite, postgres:// or postgresql:// for PostgreSQL', async () => {
    expect(parseDatabaseUrl(undefined, 'data')).toEqual({ kind: 'sqlite', path: join('data', 'duet.db') });
    expect(parseDatabaseUrl('sqlite:/var/lib/duet/x.db', 'data')).toEqual({ kind: 'sqlite', path: '/var/lib/duet/x.db' });
    expect(parseDatabaseUrl('sqlite:///var/lib/duet/x.db', 'data')).toEqual({ kind: 'sqlite', path: '/var/lib/duet/x.db' });
    expect(parseDatabaseUrl('sqlite:rel/x.db', 'data')).toEqual({ kind: 'sqlite', path: 'rel/x.db' });
    expect(parseDatabaseUrl('./x.db', 'data')).toEqual({ kind: 'sqlite', path: './x.db' });
    expect(parseDatabaseUrl(':memory:', 'data')).toEqual({ kind: 'sqlite', path: ':memory:' });
    expect(parseDatabaseUrl('postgres://u:p@h:5432/duet', 'data')).toEqual({ kind: 'postgres', url: 'postgres://u:p@h:5432/duet' });
    expect(parseDatabaseUrl('PostgreSQL://h/duet', 'data')).toEqual({ kind: 'postgres', url: 'PostgreSQL://h/duet' });
    const dir = tempDir();
    mkdirSync(join(dir, 'sub'));
    const db = await openDatabase(`sqlite:${join(dir, 'sub', 'other.db')}`, dir);
    toClose.push(db);
    expect(existsSync(join(dir, 'sub', 'other.db'))).toBe(true);
    const pg = await openDatabase(`postgresql://u:p@127.0.0.1:${await closedPort()}/duet`, dir);
    toClose.push(pg);
    expect(pg.dialect.name).toBe('postgres');
  });

  it('refuses anything else with a typed error in English and Chinese that never shows the password', () => {
    for (const bad of ['mysql://root:hunter2@db/duet', 'http://x', 'file:///tmp/x.db', '', '   ', 'sqlite:']) {
      const e = (() => {
        try {
          parseDatabaseUrl(bad, 'data');
        } catch (err) {
          return err;
        }
        return undefined;
      })();
      expect(e, bad).toBeInstanceOf(DatabaseUrlError);
      const err = e as DatabaseUrlError;
      expect(err.code).toBe('bad_database_url');
      expect(err.en).toMatch(/--db/);
      expect(err.zh).toMatch(/请使用/);
      expect(`${err.message} ${err.zh}`).not.toMatch(/hunter2/);
    }
    expect(redactUrl('postgres://duet:s3cr@t@db:5432/x?sslmode=require')).toBe('postgres://duet:***@db:5432/x?sslmode=require');
    expect(redactUrl('postgres://db/x?password=abc&sslmode=require')).toBe('postgres://db/x?password=***&sslmode=require');
  });
});
