/**
 * Advance and recovery (DESIGN §8, issue 5): what happens to a payer who owes the operator.
 *
 * Clearing pays a merchant for an offline payment the payer's purses could not cover out of the
 * operator's advance, debiting the payer's holder_arrears account. From then on (docs/recovery.md):
 * - an arrears case is open for the holder (one at a time), with when and how much;
 * - the holder is on the deny list (reason `arrears`), so terminals refuse their codes offline;
 *   issuance refuses a new credential (`in_arrears`) and online authorization declines, both because
 *   they read the arrears balance themselves, so nothing else is revoked here;
 * - the next top-up repays the debt first (purses.ts repayArrearsFirst) and calls noteRepayment:
 *   a debt repaid in full closes the case as repaid and lifts the deny entry, unless an operator
 *   blocked the holder (holders.status 'blocked', or a deny entry with another reason), which only
 *   an operator lifts; a partial repayment keeps the block;
 * - finance sees who owes what before graduation (clearanceList) and, once a case has stayed open
 *   longer than the `collectionAfterDays` setting, exports it once for third-party collection
 *   (exportForCollection). A debt repaid after its export still closes and lifts the block.
 *
 * The block follows the books, not the events: `reconcile` compares the arrears balance with the
 * case and the deny entry and fixes whichever disagrees, so noteArrears and noteRepayment are the
 * same idempotent step and a missed call is mended by the next one. The invariant, checked by a
 * property test: a holder is on the deny list iff they owe arrears or an operator blocked them.
 *
 * Every function runs inside the caller's transaction (the Queryable), except exportForCollection,
 * which is its own transaction.
 */
import { type Fen, fen, type Role, ROLES, TIME_MAX_S } from '@duet/protocol';
import { beijingTime, type Cell, toCsv, typed, yuan } from './csv.js';
import type { Db, Dialect, Migration, Queryable, Row, SqlValue } from './db/db.js';
import { DAY_S } from './days.js';
import { ApiError } from './errors.js';
import { HOLDER_STATUSES, type HolderStatus } from './holders.js';
import { holderBalancesMany, int } from './ledger.js';
import {
  CLEARANCE_CSV_ROWS_MAX,
  COLLECTION_EXPORT_CASES_MAX,
  IDEMPOTENCY_KEY_MAX_CHARS,
  IDEMPOTENCY_KEY_PATTERN,
  LEDGER_CREATED_BY_MAX_CHARS,
  PLATFORM_ID_MAX,
  RECOVERY_NOTE_HOLDERS_MAX,
  RECOVERY_PAGE_MAX,
} from './limits.js';
import { publishDenyList, setDenied } from './lists.js';
import { currentSettings } from './settings.js';
import type { SigningKeys } from './signing-keys.js';

/** The reason on a deny entry put there for arrears; only entries with this reason are lifted on repayment. */
export const ARREARS_DENY_REASON = 'arrears';

export const CASE_STATUSES = ['open', 'exported', 'repaid', 'written_off'] as const;
export type CaseStatus = (typeof CASE_STATUSES)[number];
/** A case still owed: open, or handed to a collection agency. */
const ACTIVE_SQL = "('open', 'exported')";

export const recoveryMigrations: Migration[] = [
  {
    id: 'recovery/001-arrears-cases-collection-batches',
    sql: (d: Dialect) => [
      // One row per collection export; rows_json is the exact rows handed over, so asking again
      // (same idempotency key, or by id) returns the same file byte for byte.
      `CREATE TABLE collection_batches (
        id ${d.serialKey},
        idem_key TEXT NOT NULL UNIQUE,
        created_at ${d.int} NOT NULL,
        created_by TEXT NOT NULL,
        after_days ${d.int} NOT NULL,
        cutoff_at ${d.int} NOT NULL,
        cases ${d.int} NOT NULL CHECK (cases >= 0),
        owed_total ${d.int} NOT NULL CHECK (owed_total >= 0),
        rows_json TEXT NOT NULL
      )`,
      `CREATE TABLE arrears_cases (
        id ${d.serialKey},
        holder_id ${d.int} NOT NULL,
        opened_at ${d.int} NOT NULL,
        opened_amount ${d.int} NOT NULL CHECK (opened_amount > 0),
        status TEXT NOT NULL CHECK (status IN ('open', 'exported', 'repaid', 'written_off')),
        exported_at ${d.int},
        export_batch ${d.int} REFERENCES collection_batches (id),
        closed_at ${d.int},
        CHECK ((exported_at IS NULL) = (export_batch IS NULL)),
        CHECK ((closed_at IS NULL) = (status IN ${ACTIVE_SQL}))
      )`,
      // At most one case still owed per holder, in the database itself.
      `CREATE UNIQUE INDEX arrears_cases_one_active ON arrears_cases (holder_id) WHERE status IN ${ACTIVE_SQL}`,
      'CREATE INDEX arrears_cases_by_status ON arrears_cases (status, opened_at, id)',
      'CREATE INDEX arrears_cases_by_holder ON arrears_cases (holder_id, id)',
    ],
  },
];

export interface ArrearsCase {
  readonly id: number;
  readonly holderId: number;
  readonly openedAt: number;
  /** The arrears balance when the case opened. */
  readonly openedAmountFen: Fen;
  readonly status: CaseStatus;
  readonly exportedAt: number | null;
  readonly exportBatch: number | null;
  readonly closedAt: number | null;
}

/** What one reconciliation changed, by holder id. */
export interface ArrearsChange {
  /** Cases opened. */
  readonly opened: readonly number[];
  /** Holders put on the deny list for arrears. */
  readonly denied: readonly number[];
  /** Cases closed as repaid. */
  readonly closed: readonly number[];
  /** Holders whose arrears deny entry was lifted. */
  readonly lifted: readonly number[];
}

// ---------------------------------------------------------------------------------------------
// The hooks clearing and top-up call

/** The arrears balances of several holders (0 for a holder without accounts), keyed by holder id. Never writes. */
export async function arrearsOf(
  q: Queryable,
  holderIds: readonly number[],
  opts: { readonly lockFor?: Dialect } = {},
): Promise<Map<number, Fen>> {
  const ids = checkHolderIds(holderIds);
  const balances = await holderBalancesMany(q, ids, opts);
  return new Map(ids.map((h) => [h, balances.get(h)?.arrears ?? fen(0)]));
}

/**
 * Clearing calls this, in its own transaction, for the holders whose arrears it just increased.
 * For each holder who owes: opens a case if none is active and puts the holder on the deny list
 * with reason `arrears` (a holder already denied for another reason keeps that entry). A holder
 * who owes nothing is reconciled the other way (see noteRepayment). Idempotent. The deny changes
 * are recorded, not published: the caller publishes them in the same transaction
 * (publishDenyChanges) so terminals learn at once.
 */
export async function noteArrears(q: Queryable, holderIds: readonly number[], nowS: number): Promise<ArrearsChange> {
  return reconcile(q, checkHolderIds(holderIds), checkTime(nowS));
}

/**
 * Top-up calls this in its transaction after repaying arrears. Arrears now 0: the active case closes
 * as repaid and the deny entry is lifted if its reason is `arrears` and the holder is not blocked by
 * an operator. Arrears still above 0: the case stays and so does the block.
 */
export async function noteRepayment(q: Queryable, holderId: number, nowS: number): Promise<ArrearsChange> {
  return reconcile(q, checkHolderIds([holderId]), checkTime(nowS));
}

/** Signs and stores a new deny-list version if any deny change is not published yet; the version, or undefined. */
export async function publishDenyChanges(q: Queryable, keys: SigningKeys, nowS: number): Promise<number | undefined> {
  const waiting = await q.one('SELECT 1 AS x FROM deny_changes WHERE published_in IS NULL LIMIT 1');
  if (waiting === undefined) return undefined;
  return (await publishDenyList(q, keys, nowS)).version;
}

async function reconcile(q: Queryable, ids: readonly number[], nowS: number): Promise<ArrearsChange> {
  const change = { opened: [] as number[], denied: [] as number[], closed: [] as number[], lifted: [] as number[] };
  if (ids.length === 0) return change;
  const owed = await arrearsOf(q, ids);
  const marks = ids.map(() => '?').join(', ');
  const active = new Map(
    (await q.all(`SELECT id, holder_id FROM arrears_cases WHERE status IN ${ACTIVE_SQL} AND holder_id IN (${marks})`, ids)).map((r) => [
      int(r.holder_id, 'holder_id'),
      int(r.id, 'case id'),
    ]),
  );
  const deny = new Map(
    (await q.all(`SELECT id, reason FROM deny_entries WHERE type = 'holder' AND id IN (${marks})`, ids)).map((r) => [
      int(r.id, 'holder id'),
      String(r.reason),
    ]),
  );
  const blocked = new Set(
    (await q.all(`SELECT id FROM holders WHERE status = 'blocked' AND id IN (${marks})`, ids)).map((r) => int(r.id, 'holder id')),
  );
  for (const h of ids) {
    const amount = owed.get(h) ?? 0;
    if (amount > 0) {
      if (!active.has(h)) {
        await q.run("INSERT INTO arrears_cases (holder_id, opened_at, opened_amount, status) VALUES (?, ?, ?, 'open')", [h, nowS, amount]);
        change.opened.push(h);
      }
      if (!deny.has(h) && (await setDenied(q, 'holder', h, true, ARREARS_DENY_REASON, nowS))) change.denied.push(h);
      continue;
    }
    const open = active.get(h);
    if (open !== undefined) {
      await q.run("UPDATE arrears_cases SET status = 'repaid', closed_at = ? WHERE id = ?", [nowS, open]);
      change.closed.push(h);
    }
    if (deny.get(h) === ARREARS_DENY_REASON && !blocked.has(h) && (await setDenied(q, 'holder', h, false, ARREARS_DENY_REASON, nowS))) {
      change.lifted.push(h);
    }
  }
  return change;
}

// ---------------------------------------------------------------------------------------------
// Cases

const CASE_COLUMNS = 'id, holder_id, opened_at, opened_amount, status, exported_at, export_batch, closed_at';

function toCase(r: Row): ArrearsCase {
  const opt = (v: SqlValue | undefined, f: string) => (v === null || v === undefined ? null : int(v, f));
  const status = CASE_STATUSES.find((s) => s === r.status);
  if (status === undefined) throw new Error(`recovery: unknown case status ${String(r.status)} in the database`);
  return {
    id: int(r.id, 'case id'),
    holderId: int(r.holder_id, 'holder_id'),
    openedAt: int(r.opened_at, 'opened_at'),
    openedAmountFen: fen(int(r.opened_amount, 'opened_amount')),
    status,
    exportedAt: opt(r.exported_at, 'exported_at'),
    exportBatch: opt(r.export_batch, 'export_batch'),
    closedAt: opt(r.closed_at, 'closed_at'),
  };
}

/** The holder's case still owed (open or exported), if any. */
export async function activeCase(q: Queryable, holderId: number): Promise<ArrearsCase | undefined> {
  const r = await q.one(`SELECT ${CASE_COLUMNS} FROM arrears_cases WHERE holder_id = ? AND status IN ${ACTIVE_SQL}`, [holderId]);
  return r === undefined ? undefined : toCase(r);
}

export interface CaseFilter {
  readonly status?: CaseStatus;
  readonly holderId?: number;
  readonly offset: number;
  readonly limit: number;
}

/** Cases, newest first, filtered by status and holder. */
export async function listCases(q: Queryable, f: CaseFilter): Promise<ArrearsCase[]> {
  checkPage(f, RECOVERY_PAGE_MAX);
  const where: string[] = [];
  const params: (string | number)[] = [];
  if (f.status !== undefined) {
    where.push('status = ?');
    params.push(f.status);
  }
  if (f.holderId !== undefined) {
    where.push('holder_id = ?');
    params.push(f.holderId);
  }
  const rows = await q.all(
    `SELECT ${CASE_COLUMNS} FROM arrears_cases ${where.length === 0 ? '' : `WHERE ${where.join(' AND ')}`} ORDER BY id DESC LIMIT ? OFFSET ?`,
    [...params, f.limit, f.offset],
  );
  return rows.map(toCase);
}

// ---------------------------------------------------------------------------------------------
// Graduation clearance

export interface ClearanceFilter {
  readonly campus?: number;
  readonly role?: Role;
  readonly status?: HolderStatus;
}

export interface ClearanceRow {
  readonly holderId: number;
  readonly name: string;
  readonly role: Role;
  readonly campus: number;
  readonly status: HolderStatus;
  /** Owed to the operator after an advance (holder_arrears). */
  readonly arrearsFen: Fen;
  /** Drawn on the school's credit line (holder_credit_used). */
  readonly creditUsedFen: Fen;
  /** arrearsFen + creditUsedFen. */
  readonly owedFen: Fen;
  readonly caseStatus: CaseStatus | null;
  readonly caseOpenedAt: number | null;
}

export interface ClearanceTotals {
  readonly holders: number;
  readonly arrearsFen: Fen;
  readonly creditUsedFen: Fen;
  readonly owedFen: Fen;
}

/**
 * Holders matching the filter who owe anything (arrears or credit-line use), by holder id, a page at
 * a time, with the totals over every match (not just the page). Never writes.
 */
export async function clearanceList(
  q: Queryable,
  f: ClearanceFilter,
  page: { readonly offset: number; readonly limit: number },
): Promise<{ rows: ClearanceRow[]; totals: ClearanceTotals }> {
  checkPage(page, CLEARANCE_CSV_ROWS_MAX + 1);
  const where: string[] = [];
  const params: (string | number)[] = [];
  if (f.campus !== undefined) {
    where.push('h.campus = ?');
    params.push(f.campus);
  }
  if (f.role !== undefined) {
    where.push('h.role = ?');
    params.push(f.role);
  }
  if (f.status !== undefined) {
    where.push('h.status = ?');
    params.push(f.status);
  }
  // Both accounts are debit-normal purses (one balance row, shard 0): a positive raw balance is owed.
  const owing = `SELECT h.id, h.name, h.role, h.campus, h.status,
      CAST(SUM(CASE WHEN a.kind = 'holder_arrears' THEN b.balance ELSE 0 END) AS BIGINT) AS arrears,
      CAST(SUM(CASE WHEN a.kind = 'holder_credit_used' THEN b.balance ELSE 0 END) AS BIGINT) AS credit_used
    FROM holders h
    JOIN ledger_accounts a ON a.owner = h.id AND a.kind IN ('holder_arrears', 'holder_credit_used')
    JOIN ledger_balances b ON b.account_id = a.id AND b.shard = 0 AND b.balance > 0
    ${where.length === 0 ? '' : `WHERE ${where.join(' AND ')}`}
    GROUP BY h.id, h.name, h.role, h.campus, h.status`;
  const rows = await q.all(
    `SELECT o.*, c.status AS case_status, c.opened_at AS case_opened_at FROM (${owing}) o
     LEFT JOIN arrears_cases c ON c.holder_id = o.id AND c.status IN ${ACTIVE_SQL}
     ORDER BY o.id LIMIT ? OFFSET ?`,
    [...params, page.limit, page.offset],
  );
  const t = await q.one(
    `SELECT COUNT(*) AS n, CAST(COALESCE(SUM(arrears), 0) AS BIGINT) AS arrears, CAST(COALESCE(SUM(credit_used), 0) AS BIGINT) AS credit_used FROM (${owing}) o`,
    params,
  );
  const arrearsTotal = int(t?.arrears ?? 0, 'arrears total');
  const creditTotal = int(t?.credit_used ?? 0, 'credit total');
  return {
    rows: rows.map((r) => {
      const arrears = int(r.arrears, 'arrears');
      const creditUsed = int(r.credit_used, 'credit_used');
      return {
        holderId: int(r.id, 'holder id'),
        name: String(r.name),
        role: ROLES.find((x) => x === r.role) ?? 'student',
        campus: int(r.campus, 'campus'),
        status: HOLDER_STATUSES.find((x) => x === r.status) ?? 'blocked',
        arrearsFen: fen(arrears),
        creditUsedFen: fen(creditUsed),
        owedFen: fen(arrears + creditUsed),
        caseStatus: CASE_STATUSES.find((s) => s === r.case_status) ?? null,
        caseOpenedAt: r.case_opened_at === null || r.case_opened_at === undefined ? null : int(r.case_opened_at, 'case opened_at'),
      };
    }),
    totals: {
      holders: int(t?.n ?? 0, 'count'),
      arrearsFen: fen(arrearsTotal),
      creditUsedFen: fen(creditTotal),
      owedFen: fen(arrearsTotal + creditTotal),
    },
  };
}

/** The CSV columns of the graduation-clearance file, in order (docs/recovery.md describes each). */
export const CLEARANCE_CSV_COLUMNS = [
  'holder_id',
  'name',
  'role',
  'campus',
  'status',
  'arrears_fen',
  'arrears_yuan',
  'credit_used_fen',
  'credit_used_yuan',
  'owed_fen',
  'owed_yuan',
  'case_status',
  'case_opened_at',
] as const;

export function clearanceCsv(rows: readonly ClearanceRow[]): string {
  return toCsv(
    CLEARANCE_CSV_COLUMNS,
    rows.map((r): Cell[] => [
      r.holderId,
      typed(r.name),
      r.role,
      r.campus,
      r.status,
      r.arrearsFen,
      yuan(r.arrearsFen),
      r.creditUsedFen,
      yuan(r.creditUsedFen),
      r.owedFen,
      yuan(r.owedFen),
      r.caseStatus,
      r.caseOpenedAt === null ? null : beijingTime(r.caseOpenedAt),
    ]),
  );
}

// ---------------------------------------------------------------------------------------------
// Third-party collection

export interface CollectionRow {
  readonly caseId: number;
  readonly holderId: number;
  readonly name: string;
  readonly role: Role;
  readonly campus: number;
  readonly holderStatus: HolderStatus;
  readonly openedAt: number;
  readonly openedAmountFen: Fen;
  /** The arrears balance at the export. */
  readonly owedFen: Fen;
  /** Whole days from the case's opening to the export. */
  readonly daysOpen: number;
}

export interface CollectionBatchSummary {
  readonly id: number;
  readonly createdAt: number;
  readonly createdBy: string;
  /** The collectionAfterDays setting the export used. */
  readonly afterDays: number;
  /** Cases opened at or before this time were due. */
  readonly cutoffAt: number;
  readonly cases: number;
  readonly owedTotalFen: Fen;
}

export interface CollectionBatch extends CollectionBatchSummary {
  readonly rows: readonly CollectionRow[];
}

export interface CollectionExportRequest {
  readonly idempotencyKey: string;
  /** The staff member exporting. */
  readonly by: string;
}

/**
 * Exports every open case older than the `collectionAfterDays` setting (at most
 * COLLECTION_EXPORT_CASES_MAX, oldest first; the rest wait for the next export) and marks them
 * exported under a new batch, in one transaction. The same idempotency key returns the first
 * export's batch, rows unchanged, and exports nothing more; a case once exported is never exported
 * again (its status is no longer `open`). An export with nothing due is a batch of zero rows.
 */
export async function exportForCollection(db: Db, r: CollectionExportRequest, nowS: number): Promise<CollectionBatch> {
  checkKey(r.idempotencyKey);
  if (typeof r.by !== 'string' || r.by.length < 1 || r.by.length > LEDGER_CREATED_BY_MAX_CHARS)
    throw new ApiError('validation_failed', 'by: who exports');
  checkTime(nowS);
  return db.tx(async (q) => {
    const { settings } = await currentSettings(q);
    const afterDays = settings.collectionAfterDays;
    const cutoff = nowS - afterDays * DAY_S;
    // The key is claimed first: a repeat (or a concurrent twin, once the first commits) finds it taken.
    const claimed = await q.one(
      `INSERT INTO collection_batches (idem_key, created_at, created_by, after_days, cutoff_at, cases, owed_total, rows_json)
       VALUES (?, ?, ?, ?, ?, 0, 0, '[]') ON CONFLICT (idem_key) DO NOTHING RETURNING id`,
      [r.idempotencyKey, nowS, r.by, afterDays, cutoff],
    );
    if (claimed === undefined) {
      const first = await q.one('SELECT id FROM collection_batches WHERE idem_key = ?', [r.idempotencyKey]);
      if (first === undefined) throw new ApiError('conflict', `the export with idempotency key ${r.idempotencyKey} is still in progress`);
      return getCollectionBatch(q, int(first.id, 'batch id'));
    }
    const batchId = int(claimed.id, 'batch id');
    const rows = await dueCases(q, cutoff, nowS);
    if (rows.length > 0) {
      const marks = rows.map(() => '?').join(', ');
      const changed = await q.run(
        `UPDATE arrears_cases SET status = 'exported', exported_at = ?, export_batch = ? WHERE status = 'open' AND id IN (${marks})`,
        [nowS, batchId, ...rows.map((x) => x.caseId)],
      );
      if (changed !== rows.length) throw new Error(`recovery: marked ${changed} of ${rows.length} cases exported`);
    }
    const total = rows.reduce((s, x) => s + x.owedFen, 0);
    await q.run('UPDATE collection_batches SET cases = ?, owed_total = ?, rows_json = ? WHERE id = ?', [
      rows.length,
      total,
      JSON.stringify(rows),
      batchId,
    ]);
    return getCollectionBatch(q, batchId);
  });
}

/** Open cases opened at or before `cutoff` whose holder still owes, oldest first, with what is owed now. */
async function dueCases(q: Queryable, cutoff: number, nowS: number): Promise<CollectionRow[]> {
  const rows = await q.all(
    `SELECT c.id, c.holder_id, c.opened_at, c.opened_amount, h.name, h.role, h.campus, h.status, CAST(b.balance AS BIGINT) AS owed
     FROM arrears_cases c
     JOIN holders h ON h.id = c.holder_id
     JOIN ledger_accounts a ON a.kind = 'holder_arrears' AND a.owner = c.holder_id
     JOIN ledger_balances b ON b.account_id = a.id AND b.shard = 0
     WHERE c.status = 'open' AND c.opened_at <= ? AND b.balance > 0
     ORDER BY c.opened_at, c.id LIMIT ?`,
    [cutoff, COLLECTION_EXPORT_CASES_MAX],
  );
  return rows.map((r) => {
    const openedAt = int(r.opened_at, 'opened_at');
    return {
      caseId: int(r.id, 'case id'),
      holderId: int(r.holder_id, 'holder_id'),
      name: String(r.name),
      role: ROLES.find((x) => x === r.role) ?? 'student',
      campus: int(r.campus, 'campus'),
      holderStatus: HOLDER_STATUSES.find((x) => x === r.status) ?? 'blocked',
      openedAt,
      openedAmountFen: fen(int(r.opened_amount, 'opened_amount')),
      owedFen: fen(int(r.owed, 'owed')),
      daysOpen: Math.floor((nowS - openedAt) / DAY_S),
    };
  });
}

const BATCH_COLUMNS = 'id, created_at, created_by, after_days, cutoff_at, cases, owed_total';

function toBatchSummary(r: Row): CollectionBatchSummary {
  return {
    id: int(r.id, 'batch id'),
    createdAt: int(r.created_at, 'created_at'),
    createdBy: String(r.created_by),
    afterDays: int(r.after_days, 'after_days'),
    cutoffAt: int(r.cutoff_at, 'cutoff_at'),
    cases: int(r.cases, 'cases'),
    owedTotalFen: fen(int(r.owed_total, 'owed_total')),
  };
}

/** One export with its rows as handed over; not_found for an unknown id. */
export async function getCollectionBatch(q: Queryable, id: number): Promise<CollectionBatch> {
  const r = await q.one(`SELECT ${BATCH_COLUMNS}, rows_json FROM collection_batches WHERE id = ?`, [id]);
  if (r === undefined) throw new ApiError('not_found', `collection export ${id}`);
  return { ...toBatchSummary(r), rows: parseRows(String(r.rows_json)) };
}

/** Exports, newest first, without their rows. */
export async function listCollectionBatches(
  q: Queryable,
  page: { readonly offset: number; readonly limit: number },
): Promise<CollectionBatchSummary[]> {
  checkPage(page, RECOVERY_PAGE_MAX);
  const rows = await q.all(`SELECT ${BATCH_COLUMNS} FROM collection_batches ORDER BY id DESC LIMIT ? OFFSET ?`, [page.limit, page.offset]);
  return rows.map(toBatchSummary);
}

/** The CSV columns of a collection export, in order (docs/recovery.md describes each). */
export const COLLECTION_CSV_COLUMNS = [
  'batch_id',
  'case_id',
  'holder_id',
  'name',
  'role',
  'campus',
  'holder_status',
  'opened_at',
  'opened_amount_fen',
  'opened_amount_yuan',
  'owed_fen',
  'owed_yuan',
  'days_open',
] as const;

/** The file handed to the collection agency: a pure function of the stored batch, so every download is identical. */
export function collectionCsv(b: CollectionBatch): string {
  return toCsv(
    COLLECTION_CSV_COLUMNS,
    b.rows.map((r): Cell[] => [
      b.id,
      r.caseId,
      r.holderId,
      typed(r.name),
      r.role,
      r.campus,
      r.holderStatus,
      beijingTime(r.openedAt),
      r.openedAmountFen,
      yuan(r.openedAmountFen),
      r.owedFen,
      yuan(r.owedFen),
      r.daysOpen,
    ]),
  );
}

/** Rows stored by exportForCollection, read back; anything else is corruption (a programmer error). */
function parseRows(json: string): CollectionRow[] {
  const v: unknown = JSON.parse(json);
  if (!Array.isArray(v)) throw new Error('recovery: stored collection rows are not a list');
  return v.map((x: unknown) => {
    const o = (typeof x === 'object' && x !== null ? x : {}) as Record<string, unknown>;
    const n = (k: string) => {
      const value = o[k];
      if (typeof value !== 'number' || !Number.isSafeInteger(value)) throw new Error(`recovery: stored collection row field ${k}`);
      return value;
    };
    return {
      caseId: n('caseId'),
      holderId: n('holderId'),
      name: String(o.name),
      role: ROLES.find((r) => r === o.role) ?? 'student',
      campus: n('campus'),
      holderStatus: HOLDER_STATUSES.find((s) => s === o.holderStatus) ?? 'blocked',
      openedAt: n('openedAt'),
      openedAmountFen: fen(n('openedAmountFen')),
      owedFen: fen(n('owedFen')),
      daysOpen: n('daysOpen'),
    };
  });
}

// ---------------------------------------------------------------------------------------------
// Checks

function checkHolderIds(holderIds: readonly number[]): number[] {
  const ids = [...new Set(holderIds)];
  if (ids.length > RECOVERY_NOTE_HOLDERS_MAX)
    throw new ApiError('validation_failed', `${ids.length} holders at once, at most ${RECOVERY_NOTE_HOLDERS_MAX}`);
  for (const id of ids) {
    if (!Number.isSafeInteger(id) || id < 1 || id > PLATFORM_ID_MAX) throw new ApiError('validation_failed', `holder id ${String(id)}`);
  }
  return ids;
}

function checkPage(page: { readonly offset: number; readonly limit: number }, limitMax: number): void {
  if (!Number.isSafeInteger(page.offset) || page.offset < 0) throw new ApiError('validation_failed', `offset ${String(page.offset)}`);
  if (!Number.isSafeInteger(page.limit) || page.limit < 1 || page.limit > limitMax)
    throw new ApiError('validation_failed', `limit ${String(page.limit)}: 1 to ${limitMax}`);
}

function checkTime(nowS: number): number {
  if (!Number.isSafeInteger(nowS) || nowS < 0 || nowS > TIME_MAX_S) throw new ApiError('validation_failed', `time ${String(nowS)}`);
  return nowS;
}

function checkKey(key: string): void {
  if (typeof key !== 'string' || key.length < 1 || key.length > IDEMPOTENCY_KEY_MAX_CHARS || !IDEMPOTENCY_KEY_PATTERN.test(key)) {
    throw new ApiError(
      'validation_failed',
      `idempotency key: 1 to ${IDEMPOTENCY_KEY_MAX_CHARS} characters of ${String(IDEMPOTENCY_KEY_PATTERN)}`,
    );
  }
}
