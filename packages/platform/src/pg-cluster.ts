/**
 * A private, throwaway PostgreSQL cluster for tests and benchmarks (a development tool, imported as
 * `@duet/platform/pg-cluster`; the service itself never starts a database).
 *
 * initdb into a temp dir, `pg_ctl start` on a free loopback port with the unix socket in the same
 * temp dir, trust authentication (nothing but loopback can reach it). Tests run with fsync off (the
 * cluster is deleted at the end, so durability buys nothing); benchmarks keep fsync on, as in
 * production. PostgreSQL refuses to run as root, so as root the binaries run as the `postgres` user
 * (Debian's package creates it) through runuser, or su. A detached watchdog stops the server when
 * the owning process dies, however it dies.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Where Debian's postgresql packages put the server binaries, one directory per major version. */
export const PG_LIB_DIR = '/usr/lib/postgresql';
/** initdb plus a start takes 1-3 s; a loaded CI machine gets far more before we call it failed. */
const PG_START_TIMEOUT_S = 60;
/** Test files run in parallel, each with pools and a few extra connections for migrations. */
const PG_MAX_CONNECTIONS = 400;

export interface ClusterOptions {
  /** Durable commits (fsync, synchronous_commit, full_page_writes), as in production. Default false: tests. */
  readonly durable?: boolean;
}
/** A free port found by binding 0 can be taken before pg_ctl binds it: try again with another. */
const PG_START_ATTEMPTS = 3;

export interface Cluster {
  /** Superuser URL (database `postgres`) over loopback TCP. */
  readonly url: string;
  /** Stops the server and deletes its files. Synchronous, so it can run from an exit handler. */
  stop(): void;
}

/** The newest PostgreSQL bin directory that holds both initdb and pg_ctl, if any. */
export function findPgBin(): string | undefined {
  if (!existsSync(PG_LIB_DIR)) return undefined;
  const versions = readdirSync(PG_LIB_DIR)
    .filter((v) => /^\d+(\.\d+)?$/.test(v))
    .sort((a, b) => Number(b) - Number(a));
  for (const v of versions) {
    const bin = join(PG_LIB_DIR, v, 'bin');
    if (existsSync(join(bin, 'initdb')) && existsSync(join(bin, 'pg_ctl'))) return bin;
  }
  return undefined;
}

function shellQuote(a: string): string {
  return `'${a.replaceAll("'", `'\\''`)}'`;
}

/** The command line that runs a PostgreSQL binary as a user PostgreSQL accepts: ourselves, or `postgres` when we are root. */
function asPgUser(asRoot: boolean, command: string, args: readonly string[]): [string, ...string[]] {
  if (!asRoot) return [command, ...args];
  if (existsSync('/usr/sbin/runuser') || existsSync('/sbin/runuser')) return ['runuser', '-u', 'postgres', '--', command, ...args];
  return ['su', '-s', '/bin/sh', 'postgres', '-c', [command, ...args].map(shellQuote).join(' ')];
}

function runPg(cwd: string, asRoot: boolean, command: string, args: readonly string[]): void {
  const [file, ...rest] = asPgUser(asRoot, command, args);
  const r = spawnSync(file, rest, { cwd, encoding: 'utf8', timeout: PG_START_TIMEOUT_S * 1000 });
  if (r.error !== undefined) throw new Error(`${command}: ${r.error.message}`, { cause: r.error });
  if (r.status !== 0)
    throw new Error(`${command} ${args.join(' ')} exited ${String(r.status ?? r.signal)}: ${String(r.stderr)} ${String(r.stdout)}`);
}

function postgresUser(): { uid: number; gid: number } {
  const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
  try {
    return { uid: id('-u'), gid: id('-g') };
  } catch (e) {
    throw new Error('running as root, and there is no `postgres` user to run PostgreSQL as (install the postgresql package)', { cause: e });
  }
}

/** A loopback TCP port free at the time of asking (a test or benchmark binds it soon after). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const address = s.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      s.close(() => (port > 0 ? resolve(port) : reject(new Error('no free port'))));
    });
  });
}

/**
 * A detached watchdog that stops the server and deletes its files once this process is gone, so a
 * test run that is killed (Ctrl-C, SIGKILL, a crashed worker) leaves no server behind. After a
 * normal stop() it finds nothing left to do.
 */
function watchOwner(root: string, stopCommand: readonly string[]): void {
  const script = `while kill -0 ${process.pid} 2>/dev/null; do sleep 1; done; ${stopCommand.map(shellQuote).join(' ')} >/dev/null 2>&1; rm -rf ${shellQuote(root)}`;
  spawn('sh', ['-c', script], { cwd: '/', detached: true, stdio: 'ignore' }).unref();
}

/** Starts a private cluster in a new temp dir; throws with the server log if it does not come up. */
export async function startCluster(options: ClusterOptions = {}): Promise<Cluster> {
  const bin = findPgBin();
  if (bin === undefined) throw new Error(`no PostgreSQL server binaries (initdb, pg_ctl) under ${PG_LIB_DIR}/*/bin`);
  const asRoot = process.getuid?.() === 0;
  const root = mkdtempSync(join(tmpdir(), 'duet-pg-'));
  const data = join(root, 'data');
  const socketDir = join(root, 'sock');
  const log = join(root, 'server.log');
  const remove = () => rmSync(root, { recursive: true, force: true });
  try {
    mkdirSync(socketDir);
    if (asRoot) {
      const { uid, gid } = postgresUser();
      chownSync(root, uid, gid);
      chownSync(socketDir, uid, gid);
    }
    runPg(root, asRoot, join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--no-locale', '-N']);
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const settings = [
        `-p ${port}`,
        `-k ${socketDir}`,
        '-c listen_addresses=127.0.0.1',
        `-c max_connections=${PG_MAX_CONNECTIONS}`,
        ...(options.durable === true ? [] : ['-c fsync=off', '-c synchronous_commit=off', '-c full_page_writes=off']),
      ].join(' ');
      try {
        runPg(root, asRoot, join(bin, 'pg_ctl'), ['-D', data, '-l', log, '-w', '-t', String(PG_START_TIMEOUT_S), '-o', settings, 'start']);
      } catch (e) {
        if (attempt < PG_START_ATTEMPTS) continue;
        const tail = existsSync(log) ? readFileSync(log, 'utf8').slice(-2_000) : '(no log)';
        throw new Error(`${e instanceof Error ? e.message : String(e)}\nserver log:\n${tail}`, { cause: e });
      }
      watchOwner(root, asPgUser(asRoot, join(bin, 'pg_ctl'), ['-D', data, '-m', 'immediate', 'stop']));
      let stopped = false;
      return {
        url: `postgres://postgres@127.0.0.1:${port}/postgres`,
        stop: () => {
          if (stopped) return;
          stopped = true;
          try {
            runPg(root, asRoot, join(bin, 'pg_ctl'), ['-D', data, '-m', 'immediate', '-w', 'stop']);
          } finally {
            remove();
          }
        },
      };
    }
  } catch (e) {
    remove();
    throw e;
  }
}
