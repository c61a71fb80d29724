/**
 * The one migration runner both storages use (Db.migrate calls it).
 *
 * Applied ids are recorded in `schema_migrations`. Each pending migration runs in its own
 * transaction together with the row that records it, so a migration is either applied and recorded
 * or neither. Every such transaction first takes a database-wide lock (PostgreSQL:
 * pg_advisory_xact_lock; SQLite: BEGIN IMMEDIATE) and only then reads what is applied, so two
 * processes starting at once apply each migration exactly once: the second waits, then sees the
 * first one's work. A database holding an id this build does not know was migrated by a newer
 * build; running old code on it could corrupt it, so that is refused.
 */
import { type Dialect, type Migration, type Queryable, StorageUnavailableError } from './db.js';

/** Migration ids are short stable names such as "ledger/001-accounts"; the bound keeps the table sane. */
const MIGRATION_ID_MAX_CHARS = 200;

/** A Queryable that can also run a raw migration statement (DDL, possibly several statements). */
export interface MigrationQueryable extends Queryable {
  exec(sql: string): Promise<void>;
}

/** What a storage gives the runner. */
export interface MigrationHost {
  readonly dialect: Dialect;
  /**
   * Runs `fn` in a transaction that holds the database-wide migration lock before its first read,
   * so what `fn` reads is what every earlier migrating transaction committed.
   */
  migrationTx<T>(fn: (q: MigrationQueryable) => Promise<T>): Promise<T>;
}

/** The database was migrated by a newer build of Duet. */
export class SchemaNewerError extends Error {
  override readonly name = 'SchemaNewerError';
  readonly code = 'schema_newer';
  readonly en: string;
  readonly zh = '数据库结构比本程序新：请运行更新版本的 Duet，或恢复与本版本匹配的数据库备份';

  constructor(readonly unknownIds: readonly string[]) {
    const en =
      `The database schema is newer than this build: it has migration(s) ${unknownIds.join(', ')} applied, ` +
      'which this build does not know. Run a newer build of Duet, or restore a backup made by this version.';
    super(en);
    this.en = en;
  }
}

/** Refuses a migration list a programmer got wrong, before the database is touched. */
function checkMigrations(migrations: readonly Migration[]): void {
  const seen = new Set<string>();
  for (const m of migrations) {
    if (m.id.length === 0 || m.id.length > MIGRATION_ID_MAX_CHARS || m.id.trim() !== m.id) {
      throw new RangeError(`migration id ${JSON.stringify(m.id)}: 1-${MIGRATION_ID_MAX_CHARS} characters, no outer spaces`);
    }
    if (seen.has(m.id)) throw new RangeError(`migration id ${m.id} appears twice`);
    seen.add(m.id);
  }
}

export function schemaMigrationsTable(d: Dialect): string {
  return `CREATE TABLE IF NOT EXISTS schema_migrations (id TEXT PRIMARY KEY, applied_at ${d.int} NOT NULL)`;
}

/**
 * Applies the pending migrations in the given order and resolves with the ids it applied (empty
 * when the database is up to date). `nowMs` stamps applied_at; bookkeeping only.
 */
export async function runMigrations(
  host: MigrationHost,
  migrations: readonly Migration[],
  nowMs: () => number = Date.now,
): Promise<string[]> {
  checkMigrations(migrations);
  const known = new Set(migrations.map((m) => m.id));
  const applied: string[] = [];
  // One transaction per migration plus one that finds nothing left: the loop is bounded.
  for (let step = 0; step <= migrations.length; step++) {
    const id = await host.migrationTx(async (q) => {
      await q.exec(schemaMigrationsTable(host.dialect));
      const rows = await q.all('SELECT id FROM schema_migrations');
      const done = new Set(rows.map((r) => String(r.id)));
      const unknown = [...done].filter((x) => !known.has(x)).sort();
      if (unknown.length > 0) throw new SchemaNewerError(unknown);
      const next = migrations.find((m) => !done.has(m.id));
      if (next === undefined) return undefined;
      for (const [i, statement] of next.sql(host.dialect).entries()) {
        try {
          await q.exec(statement);
        } catch (e) {
          if (e instanceof StorageUnavailableError) throw e;
          throw new Error(`migration ${next.id}, statement ${i + 1}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
        }
      }
      await q.run('INSERT INTO schema_migrations (id, applied_at) VALUES (?, ?)', [next.id, nowMs()]);
      return next.id;
    });
    if (id === undefined) return applied;
    applied.push(id);
  }
  throw new Error(`migrate: still pending after ${migrations.length} migrations were applied (a bug)`);
}
