/**
 * Which storage `duet serve` uses: `--db` absent keeps everything in one SQLite file under the data
 * directory; `--db sqlite:PATH` or a plain path names another SQLite file; `--db postgres://...`
 * (or postgresql://) uses PostgreSQL. Anything else is refused with a typed error, and no error
 * ever repeats a password from the URL.
 */
import { join } from 'node:path';
import type { Db } from './db.js';
import { openPostgres, type PostgresOptions } from './postgres.js';
import { openSqlite, type SqliteOptions } from './sqlite.js';

/** The SQLite file inside the data directory when no database is named. */
export const DEFAULT_SQLITE_FILE = 'duet.db';

export type DatabaseTarget = { readonly kind: 'sqlite'; readonly path: string } | { readonly kind: 'postgres'; readonly url: string };

/** A --db value we cannot use. */
export class DatabaseUrlError extends Error {
  override readonly name = 'DatabaseUrlError';
  readonly code = 'bad_database_url';
  readonly en: string;
  readonly zh: string;

  constructor(shown: string, why: { readonly en: string; readonly zh: string }) {
    const en = `--db ${shown}: ${why.en}. Use postgres://user:password@host/db, sqlite:PATH, or a file path.`;
    super(en);
    this.en = en;
    this.zh = `--db ${shown}：${why.zh}。请使用 postgres://用户:密码@主机/库、sqlite:路径，或文件路径。`;
  }
}

/** The URL with any password replaced by ***, for messages and logs. */
export function redactUrl(url: string): string {
  return url.replace(/^([A-Za-z][A-Za-z0-9+.-]*:\/\/[^/@:]*):[^/]*@/, '$1:***@').replace(/([?&]password=)[^&]*/gi, '$1***');
}

/** Parses a --db value (undefined: the default file in `dataDir`). Relative SQLite paths are relative to the working directory. */
export function parseDatabaseUrl(url: string | undefined, dataDir: string): DatabaseTarget {
  if (url === undefined) return { kind: 'sqlite', path: join(dataDir, DEFAULT_SQLITE_FILE) };
  const shown = JSON.stringify(redactUrl(url));
  if (url.trim() === '') throw new DatabaseUrlError(shown, { en: 'is empty', zh: '为空' });
  if (/^postgres(ql)?:\/\//i.test(url)) return { kind: 'postgres', url };
  const sqlite = /^sqlite:(.*)$/is.exec(url);
  if (sqlite !== null) {
    // sqlite:///abs/file.db and sqlite://rel.db as URL habits allow; sqlite:PATH as written.
    const path = (sqlite[1] ?? '').replace(/^\/\//, '');
    if (path === '') throw new DatabaseUrlError(shown, { en: 'names no SQLite file', zh: '未指定 SQLite 文件' });
    return { kind: 'sqlite', path };
  }
  // A scheme of two letters or more (one letter could be a Windows drive) that we do not speak.
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]+):/.exec(url);
  if (scheme !== null) {
    throw new DatabaseUrlError(shown, { en: `the scheme "${scheme[1]}:" is not supported`, zh: `不支持 "${scheme[1]}:" 协议` });
  }
  return { kind: 'sqlite', path: url };
}

export interface OpenDatabaseOptions {
  readonly sqlite?: SqliteOptions;
  readonly postgres?: PostgresOptions;
}

/** Opens the storage a --db value names; see parseDatabaseUrl. */
export async function openDatabase(url: string | undefined, dataDir: string, options: OpenDatabaseOptions = {}): Promise<Db> {
  const target = parseDatabaseUrl(url, dataDir);
  return target.kind === 'sqlite' ? openSqlite(target.path, options.sqlite) : openPostgres(target.url, options.postgres);
}
