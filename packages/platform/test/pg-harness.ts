/**
 * How tests get storage: `databases` lists SQLite and PostgreSQL for contract suites, each able to
 * make fresh, empty storage that several Db instances can open (as several processes would).
 *
 * PostgreSQL, in order of preference:
 * 1. env DUET_TEST_PG_URL: a server you run (a superuser URL; CREATE DATABASE must be allowed);
 * 2. the private cluster vitest globalSetup started for the run (test/global-setup.ts);
 * 3. without that globalSetup, a private cluster this test file starts and stops itself;
 * 4. none: the PostgreSQL suites SKIP with a loud message, or fail if DUET_REQUIRE_PG=1 (CI sets it,
 *    so CI can never pass without having run them).
 * Each test file gets its own database (CREATE DATABASE with a random name, dropped after the
 * file), so files run in parallel; each fresh() is a new schema in it (search_path), so tests in a
 * file do not see each other's tables.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, inject } from 'vitest';
import type { Db } from '../src/db/db.js';
import { openPostgres, type PostgresOptions } from '../src/db/postgres.js';
import { openSqlite, type SqliteOptions } from '../src/db/sqlite.js';
import { type Cluster, findPgBin, startCluster } from './global-setup.js';

export interface TestStorage {
  /** Where it is: a file path (SQLite) or a URL (PostgreSQL). */
  readonly location: string;
  /** A new Db on this same storage; closed for you after the test file. */
  open(): Promise<Db>;
}

export interface TestDatabase {
  readonly name: 'sqlite' | 'postgres';
  /** False only for PostgreSQL when no server could be had (never when DUET_REQUIRE_PG=1). */
  readonly available: boolean;
  /** Fresh, empty storage. */
  fresh(): Promise<TestStorage>;
  /** A Db on fresh, empty storage. */
  open(): Promise<Db>;
}

const REQUIRE_PG = process.env.DUET_REQUIRE_PG === '1';
const opened: Db[] = [];
let ownCluster: Cluster | undefined;

async function findServer(): Promise<{ readonly url: string } | { readonly skip: string }> {
  const env = process.env.DUET_TEST_PG_URL ?? '';
  if (env !== '') return { url: env };
  const provided = inject('duetPgUrl');
  if (provided !== undefined && provided !== '') return { url: provided };
  const skip = inject('duetPgSkip');
  if (skip !== undefined && skip !== '') return { skip };
  // No globalSetup in this run's config: start a cluster for this file alone.
  if (findPgBin() === undefined)
    return { skip: 'no PostgreSQL server binaries under /usr/lib/postgresql/*/bin and DUET_TEST_PG_URL is not set' };
  try {
    const cluster = await startCluster();
    ownCluster = cluster;
    // A worker that dies without running afterAll still stops its server.
    process.once('exit', () => cluster.stop());
    return { url: cluster.url };
  } catch (e) {
    return { skip: `could not start a private PostgreSQL cluster: ${e instanceof Error ? e.message : String(e)}` };
  }
}

const server = await findServer();
if ('skip' in server) {
  if (REQUIRE_PG) throw new Error(`DUET_REQUIRE_PG=1, but there is no PostgreSQL for the tests: ${server.skip}`);
  console.warn(
    [
      '',
      '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!',
      `!!! PostgreSQL suites SKIPPED: ${server.skip}`,
      '!!! Install postgresql, or set DUET_TEST_PG_URL; CI sets DUET_REQUIRE_PG=1 and fails here.',
      '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!',
      '',
    ].join('\n'),
  );
}

/** True when the PostgreSQL suites run. */
export const pgAvailable = 'url' in server;
/** Superuser URL of the test server, when there is one. */
export const pgServerUrl: string | undefined = 'url' in server ? server.url : undefined;

function randomName(prefix: string): string {
  return `${prefix}_${randomBytes(6).toString('hex')}`;
}

/** The same server URL pointing at another database, with extra connection options. */
function withDatabase(url: string, database: string, options?: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  if (options !== undefined) u.searchParams.set('options', options);
  return u.toString();
}

async function adminQuery(url: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

let fileDatabase: Promise<{ readonly name: string; readonly url: string }> | undefined;

/** This test file's own database, created on first use. */
function ownDatabase(serverUrl: string): Promise<{ readonly name: string; readonly url: string }> {
  fileDatabase ??= (async () => {
    const name = randomName('duet_test');
    await adminQuery(serverUrl, `CREATE DATABASE ${name}`);
    return { name, url: withDatabase(serverUrl, name) };
  })();
  return fileDatabase;
}

async function track(db: Promise<Db>): Promise<Db> {
  const d = await db;
  opened.push(d);
  return d;
}

let sqliteDir: string | undefined;
let sqliteCount = 0;

function sqliteStorage(options: SqliteOptions = {}): TestStorage {
  sqliteDir ??= mkdtempSync(join(tmpdir(), 'duet-db-test-'));
  // A directory that does not exist yet: openSqlite creates it (0700).
  const path = join(sqliteDir, String(++sqliteCount), 'duet.db');
  return { location: path, open: () => track(openSqlite(path, options)) };
}

/** Fresh SQLite storage, with options for the Dbs opened on it. */
export function freshSqlite(options: SqliteOptions = {}): TestStorage {
  return sqliteStorage(options);
}

/** Fresh PostgreSQL storage (a new schema in this file's database), with options for its Dbs. */
export async function freshPostgres(options: PostgresOptions = {}): Promise<TestStorage> {
  if (pgServerUrl === undefined) throw new Error('no PostgreSQL server for the tests (check pgAvailable first)');
  const db = await ownDatabase(pgServerUrl);
  const schema = randomName('s');
  await adminQuery(db.url, `CREATE SCHEMA ${schema}`);
  const url = withDatabase(pgServerUrl, db.name, `-c search_path=${schema}`);
  // A small pool per Db: test files run in parallel against one server.
  return { location: url, open: () => track(openPostgres(url, { poolMax: 4, ...options })) };
}

export const databases: readonly TestDatabase[] = [
  {
    name: 'sqlite',
    available: true,
    fresh: async () => sqliteStorage(),
    open: () => sqliteStorage().open(),
  },
  {
    name: 'postgres',
    available: pgAvailable,
    fresh: () => freshPostgres(),
    open: async () => (await freshPostgres()).open(),
  },
];

afterAll(async () => {
  await Promise.allSettled(opened.map((d) => d.close()));
  opened.length = 0;
  try {
    const created = await fileDatabase?.catch(() => undefined);
    // WITH (FORCE): PostgreSQL 13 or newer; it ends connections a failed test left open.
    if (created !== undefined && pgServerUrl !== undefined)
      await adminQuery(pgServerUrl, `DROP DATABASE IF EXISTS ${created.name} WITH (FORCE)`);
  } finally {
    ownCluster?.stop();
    if (sqliteDir !== undefined) rmSync(sqliteDir, { recursive: true, force: true });
  }
});
