/**
 * `duet audit`: audits the platform's ledger straight from its database (docs/ledger.md): every
 * entry balances, every balance equals its postings, the hash chain recomputes, nothing old is left
 * unsealed, and every root recomputes, links and carries valid platform and witness signatures.
 * It only reads (it never migrates or writes), so it can run against a live platform.
 *
 * Exit codes: 0 the ledger is sound (warnings allowed), 1 a break was found (the first is named),
 * 2 usage, file or database error. Nothing else ever exits 1, so a script can trust it.
 */
import { existsSync } from 'node:fs';
import { nodeCrypto } from '@duet/protocol/node';
import {
  AUDIT_CHECKS,
  auditLedgerFull,
  type AuditOptions,
  type Db,
  DatabaseUrlError,
  type LedgerAuditReport,
  openDatabase,
  parseDatabaseUrl,
  redactUrl,
} from '@duet/platform';
import { CliError, type Command, flag, intOption, parseOptions, str, toJsonLine } from '../command.js';
import { dataDir } from '../files.js';
import { readWitnessKeyFile } from './witness.js';

/** The longest grace an auditor may give (a week): past it an unsealed entry is always a break. */
const GRACE_MAX_S = 7 * 86_400;

function usageError(en: string, zh: string): CliError {
  return new CliError('bad_arguments', { en, zh });
}

async function openLedger(dbUrl: string | undefined, dir: string): Promise<Db> {
  let target: ReturnType<typeof parseDatabaseUrl>;
  try {
    target = parseDatabaseUrl(dbUrl, dir);
  } catch (e) {
    if (e instanceof DatabaseUrlError) throw new CliError(e.code, { en: e.en, zh: e.zh });
    throw e;
  }
  // Opening a SQLite path that does not exist would create an empty database: refuse instead.
  if (target.kind === 'sqlite' && !existsSync(target.path))
    throw new CliError('not_found', { en: `No database at ${target.path}`, zh: `${target.path} 处没有数据库` });
  try {
    return await openDatabase(dbUrl, dir);
  } catch (e) {
    throw storageError(dbUrl ?? target.kind, e);
  }
}

function storageError(where: string, e: unknown): CliError {
  const why = redactUrl(e instanceof Error ? e.message : String(e));
  return new CliError('storage_error', {
    en: `Cannot read the ledger at ${redactUrl(where)}: ${why}. Is it a Duet database that \`duet serve\` has started on at least once?`,
    zh: `无法读取 ${redactUrl(where)} 处的账本：${why}。请确认这是已由 \`duet serve\` 启动过的 Duet 数据库`,
  });
}

/** The report for a person: each check, the break with what was expected and found, the warnings. */
export function auditText(r: LedgerAuditReport): string {
  const c = r.counts;
  const lines = [
    'Duet ledger audit / 账本审计',
    `  ${c.entries} entries, ${c.postings} postings, ${c.sealed} sealed, ${c.roots} roots (${c.witnessedRoots} witnessed)`,
    `  分录 ${c.entries} 笔，过账 ${c.postings} 笔，已封存 ${c.sealed} 笔，签名根 ${c.roots} 个（已见证 ${c.witnessedRoots} 个）`,
  ];
  const mark = { passed: 'ok  ', failed: 'FAIL', not_run: '--  ' } as const;
  for (const k of r.checks) lines.push(`  [${mark[k.status]}] ${AUDIT_CHECKS[k.check].en} / ${AUDIT_CHECKS[k.check].zh}`);
  const b = r.break;
  if (b !== null) {
    const at = [
      b.position !== undefined ? `position ${b.position}` : '',
      b.entryId !== undefined ? `entry ${b.entryId}` : '',
      b.rootId !== undefined ? `root ${b.rootId}` : '',
      b.accountId !== undefined ? `account ${b.accountId}` : '',
    ].filter((x) => x !== '');
    lines.push(
      '',
      `BREAK / 断点: ${b.code}${at.length > 0 ? ` at ${at.join(', ')}` : ''}`,
      `  ${b.en}`,
      `  ${b.zh}`,
      `  expected / 应为: ${b.expected}`,
      `  found / 实为:    ${b.found}`,
    );
  }
  if (r.warnings.length > 0) lines.push('', 'Warnings / 提示:');
  for (const w of r.warnings) lines.push(`  ${w.code} (${w.count}): ${w.en} / ${w.zh} — ${w.detail}`);
  lines.push(
    '',
    r.ok
      ? 'RESULT: PASSED, the books verify / 结论：通过，账本可验证'
      : `RESULT: FAILED at ${r.break?.code ?? '?'}, the books were changed or damaged / 结论：未通过，账本被改动或损坏`,
    '',
  );
  return lines.join('\n');
}

export const auditCommand: Command = {
  name: 'audit',
  summary: {
    en: 'Audit the ledger: balances, hash chain, signed roots, witness countersignatures',
    zh: '审计账本：余额、哈希链、签名根、见证副署',
  },
  usage: [
    'duet audit [--data DIR | --db URL] [--json] [--witness-key FILE] [--grace-s N]',
    '  --data DIR: the SQLite database of `duet serve --data DIR` (default ./data); --db: sqlite:PATH or postgres://…',
    '  --witness-key FILE: count a countersignature only if made by this key (a file from `duet witness keygen`,',
    '    or a copy holding only its suite and publicKey), so a rewritten key table cannot pass',
    '  --grace-s N: an entry posted more than N seconds ago must be sealed (default 600)',
    '  Exit: 0 sound, 1 a break (named), 2 usage, file or database error.',
  ].join('\n'),
  async run(args) {
    const o = parseOptions(args, {
      data: { type: 'string' },
      db: { type: 'string' },
      json: { type: 'boolean' },
      'witness-key': { type: 'string' },
      'grace-s': { type: 'string' },
    });
    if (o.positionals.length > 0) throw usageError(`Unexpected ${o.positionals.join(' ')}`, `多余的参数 ${o.positionals.join(' ')}`);
    const dbUrl = str(o, 'db');
    if (dbUrl !== undefined && str(o, 'data') !== undefined) throw usageError('Give --data or --db, not both', '--data 与 --db 只能二选一');
    const options: { -readonly [K in keyof AuditOptions]: AuditOptions[K] } = {};
    const keyFile = str(o, 'witness-key');
    if (keyFile !== undefined) {
      const k = readWitnessKeyFile(keyFile);
      options.pinnedWitnessKeys = [{ suite: k.suite, publicKey: k.publicKey }];
    }
    if (str(o, 'grace-s') !== undefined) options.graceS = intOption(str(o, 'grace-s'), 'grace-s', 0, GRACE_MAX_S);
    const db = await openLedger(dbUrl, dataDir(str(o, 'data'), ''));
    let report: LedgerAuditReport;
    try {
      report = await auditLedgerFull(db, nodeCrypto(), options);
    } catch (e) {
      throw storageError(dbUrl ?? str(o, 'data') ?? './data', e);
    } finally {
      await db.close();
    }
    process.stdout.write(flag(o, 'json') ? toJsonLine(report) : auditText(report));
    return report.ok ? 0 : 1;
  },
};
