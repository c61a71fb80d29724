/**
 * Routes of recovery and statements (issue 5; docs/recovery.md): graduation clearance, arrears
 * cases, third-party collection exports, merchant statements, and a holder's history. Each answers
 * JSON, and the files finance opens in a spreadsheet also as CSV (`?format=csv`, text/csv, UTF-8
 * with a BOM), from the same figures.
 */
import { ID48_MAX, ROLES } from '@duet/protocol';
import { type Static, Type } from '@sinclair/typebox';
import { nowS } from './context.js';
import { CSV_CONTENT_TYPE } from './csv.js';
import { ApiError } from './errors.js';
import { getHolder, HOLDER_STATUSES } from './holders.js';
import { type Call, holderOf, type Route, staffOf } from './http.js';
import { CLEARANCE_CSV_ROWS_MAX, HISTORY_PAGE_MAX, RECOVERY_PAGE_MAX } from './limits.js';
import { purses } from './purses.js';
import {
  activeCase,
  CASE_STATUSES,
  clearanceCsv,
  clearanceList,
  collectionCsv,
  exportForCollection,
  getCollectionBatch,
  listCases,
  listCollectionBatches,
} from './recovery.js';
import { listMerchants } from './registry.js';
import { holderHistory, merchantStatement, statementCsv } from './statements.js';

const FINANCE = ['operator_admin', 'school_finance'] as const;

const IdParams = Type.Object({ id: Type.String({ pattern: '^[1-9][0-9]{0,14}$' }) }, { additionalProperties: false });
const IdemKey = Type.String({ minLength: 8, maxLength: 100, pattern: '^[A-Za-z0-9._:-]+$' });
const Format = Type.Optional(Type.Union([Type.Literal('json'), Type.Literal('csv')], { description: 'json (default) or csv' }));
const Offset = Type.Optional(Type.Integer({ minimum: 0, maximum: 10_000_000 }));
const Limit = (max: number) => Type.Optional(Type.Integer({ minimum: 1, maximum: max }));
const Day = Type.String({ pattern: '^[0-9]{4}-[0-9]{2}-[0-9]{2}$', description: 'a Beijing calendar day, YYYY-MM-DD' });

const ClearanceQuery = Type.Object(
  {
    campus: Type.Optional(Type.Integer({ minimum: 0, maximum: 0xffff })),
    role: Type.Optional(Type.Union(ROLES.map((r) => Type.Literal(r)))),
    status: Type.Optional(Type.Union(HOLDER_STATUSES.map((s) => Type.Literal(s)))),
    offset: Offset,
    limit: Limit(RECOVERY_PAGE_MAX),
    format: Format,
  },
  { additionalProperties: false },
);
const CasesQuery = Type.Object(
  {
    status: Type.Optional(Type.Union(CASE_STATUSES.map((s) => Type.Literal(s)))),
    holderId: Type.Optional(Type.Integer({ minimum: 1, maximum: ID48_MAX })),
    offset: Offset,
    limit: Limit(RECOVERY_PAGE_MAX),
  },
  { additionalProperties: false },
);
const ExportBody = Type.Object({ idempotencyKey: IdemKey }, { additionalProperties: false });
const FormatQuery = Type.Object({ format: Format }, { additionalProperties: false });
const PageQuery = Type.Object({ offset: Offset, limit: Limit(RECOVERY_PAGE_MAX) }, { additionalProperties: false });
const StatementQuery = Type.Object(
  {
    merchantId: Type.Optional(Type.Integer({ minimum: 1, maximum: ID48_MAX })),
    from: Day,
    to: Day,
    format: Format,
  },
  { additionalProperties: false },
);
const HistoryQuery = Type.Object(
  { before: Type.Optional(Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER })), limit: Limit(HISTORY_PAGE_MAX) },
  { additionalProperties: false },
);

const query = <T extends import('@sinclair/typebox').TSchema>(call: Call, _schema: T): Static<T> => call.query as Static<T>;

/** Answers a CSV file: the content type and a download name set on the reply, the text as the body. */
function csvFile(call: Call, filename: string, text: string): string {
  void call.reply.header('content-type', CSV_CONTENT_TYPE).header('content-disposition', `attachment; filename="${filename}"`);
  return text;
}

/** A holder's history page with what they owe now. */
async function history(call: Call, holderId: number) {
  const q = query(call, HistoryQuery);
  const db = call.ctx.db;
  await getHolder(db, holderId);
  const page = await holderHistory(db, holderId, { ...(q.before !== undefined ? { before: q.before } : {}), limit: q.limit ?? 50 });
  const money = await purses(db, holderId);
  return {
    holderId,
    owed: { arrearsFen: money.arrears, creditUsedFen: money.creditUsed, case: (await activeCase(db, holderId)) ?? null },
    ...page,
  };
}

export function recoveryRoutes(): Route[] {
  return [
    {
      method: 'GET',
      url: '/v1/recovery/clearance',
      access: { kind: 'staff', roles: FINANCE },
      summary: 'Graduation clearance: holders who owe arrears or credit-line use, with totals (JSON or CSV) / 离校结算：欠款与授信使用名单',
      tags: ['recovery'],
      query: ClearanceQuery,
      handle: async (call) => {
        const q = query(call, ClearanceQuery);
        const filter = {
          ...(q.campus !== undefined ? { campus: q.campus } : {}),
          ...(q.role !== undefined ? { role: q.role } : {}),
          ...(q.status !== undefined ? { status: q.status } : {}),
        };
        if (q.format === 'csv') {
          // The whole list in one file, bounded: past the bound the caller narrows the filter.
          const all = await clearanceList(call.ctx.db, filter, { offset: 0, limit: CLEARANCE_CSV_ROWS_MAX + 1 });
          if (all.rows.length > CLEARANCE_CSV_ROWS_MAX)
            throw new ApiError('validation_failed', `more than ${CLEARANCE_CSV_ROWS_MAX} holders owe: filter by campus, role or status`);
          return csvFile(call, 'clearance.csv', clearanceCsv(all.rows));
        }
        return clearanceList(call.ctx.db, filter, { offset: q.offset ?? 0, limit: q.limit ?? 100 });
      },
    },
    {
      method: 'GET',
      url: '/v1/recovery/cases',
      access: { kind: 'staff', roles: FINANCE },
      summary: 'Arrears cases, newest first, by status or holder / 欠款案件',
      tags: ['recovery'],
      query: CasesQuery,
      handle: async (call) => {
        const q = query(call, CasesQuery);
        return {
          cases: await listCases(call.ctx.db, {
            ...(q.status !== undefined ? { status: q.status } : {}),
            ...(q.holderId !== undefined ? { holderId: q.holderId } : {}),
            offset: q.offset ?? 0,
            limit: q.limit ?? 100,
          }),
        };
      },
    },
    {
      method: 'POST',
      url: '/v1/recovery/collection-exports',
      access: { kind: 'staff', roles: FINANCE },
      summary:
        'Export open cases older than collectionAfterDays for third-party collection, once; idempotent (JSON or CSV) / 导出逾期欠款交第三方催收（幂等）',
      tags: ['recovery'],
      query: FormatQuery,
      body: ExportBody,
      handle: async (call) => {
        const staff = staffOf(call);
        const b = call.body as Static<typeof ExportBody>;
        const batch = await exportForCollection(call.ctx.db, { idempotencyKey: b.idempotencyKey, by: staff.username }, nowS(call.ctx));
        if (query(call, FormatQuery).format === 'csv') return csvFile(call, `collection-${batch.id}.csv`, collectionCsv(batch));
        return batch;
      },
    },
    {
      method: 'GET',
      url: '/v1/recovery/collection-exports',
      access: { kind: 'staff', roles: FINANCE },
      summary: 'Collection exports made so far, newest first / 历次催收导出',
      tags: ['recovery'],
      query: PageQuery,
      handle: async (call) => {
        const q = query(call, PageQuery);
        return { exports: await listCollectionBatches(call.ctx.db, { offset: q.offset ?? 0, limit: q.limit ?? 100 }) };
      },
    },
    {
      method: 'GET',
      url: '/v1/recovery/collection-exports/:id',
      access: { kind: 'staff', roles: FINANCE },
      summary: 'One collection export again, exactly as first handed over (JSON or CSV) / 重新下载催收导出',
      tags: ['recovery'],
      params: IdParams,
      query: FormatQuery,
      handle: async (call) => {
        const batch = await getCollectionBatch(call.ctx.db, Number(call.params.id));
        if (query(call, FormatQuery).format === 'csv') return csvFile(call, `collection-${batch.id}.csv`, collectionCsv(batch));
        return batch;
      },
    },
    {
      method: 'GET',
      url: '/v1/statements/merchants',
      access: { kind: 'staff', roles: ['operator_admin', 'school_finance', 'merchant'] },
      summary:
        'Merchant statement per Beijing day: payments by path, reversals, net payable movement (a merchant sees only its own; JSON or CSV) / 商户日结单',
      tags: ['statements'],
      query: StatementQuery,
      handle: async (call) => {
        const staff = staffOf(call);
        const q = query(call, StatementQuery);
        let merchantId = q.merchantId;
        if (staff.role === 'merchant') {
          if (staff.merchantId === null || (merchantId !== undefined && merchantId !== staff.merchantId))
            throw new ApiError('forbidden', 'a merchant account sees only its own merchant’s statement');
          merchantId = staff.merchantId;
        }
        const statement = await merchantStatement(call.ctx.db, {
          ...(merchantId !== undefined ? { merchantId } : {}),
          from: q.from,
          to: q.to,
        });
        if (q.format === 'csv') {
          const name = `statement-${merchantId ?? 'all'}-${q.from}-${q.to}.csv`;
          const names = new Map((await listMerchants(call.ctx.db)).map((m) => [m.id, m.name]));
          return csvFile(call, name, statementCsv(statement, names));
        }
        return statement;
      },
    },
    {
      method: 'GET',
      url: '/v1/holder/history',
      access: { kind: 'holder' },
      summary: 'My payments, top-ups and what I owe, newest first / 我的账单与欠款',
      tags: ['statements'],
      query: HistoryQuery,
      handle: async (call) => history(call, holderOf(call)),
    },
    {
      method: 'GET',
      url: '/v1/holders/:id/history',
      access: { kind: 'staff_or_self', roles: FINANCE },
      summary: "A holder's history and what they owe, newest first / 持卡人账单与欠款",
      tags: ['statements'],
      params: IdParams,
      query: HistoryQuery,
      handle: async (call) => history(call, Number(call.params.id)),
    },
  ];
}
