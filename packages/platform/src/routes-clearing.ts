/**
 * Clearing as operators and finance see it: the state of the backlog, gaps in terminals' chains,
 * the flags with their evidence (the record's signed bytes, and for a replay the first use), the
 * intake alarms, and a run on demand. Reading is for the operator and school finance; running and
 * resolving are for the operator.
 */
import { decodeRecord, ID48_MAX, isProtocolError } from '@duet/protocol';
import { type Static, Type } from '@sinclair/typebox';
import { CLEARING_RULES, type ClearingReason } from './clearing.js';
import { nowS } from './context.js';
import type { Row } from './db/db.js';
import { ApiError } from './errors.js';
import { b64, type Route, staffOf } from './http.js';
import { INTAKE_FLAG_REASONS, intakeGaps } from './intake.js';
import { int } from './ledger.js';

const READERS = ['operator_admin', 'school_finance'] as const;
const ADMIN = ['operator_admin'] as const;

/** A gap reported by the status once it has lasted this long (uploads may arrive out of order before). */
export const GAP_ALARM_AFTER_S = 600;

const Reasons = Object.keys(CLEARING_RULES) as ClearingReason[];
const IdParams = Type.Object({ id: Type.String({ pattern: '^[1-9][0-9]{0,14}$' }) }, { additionalProperties: false });
const FlagQuery = Type.Object(
  {
    reason: Type.Optional(Type.Union(Reasons.map((r) => Type.Literal(r)))),
    terminal: Type.Optional(Type.Integer({ minimum: 1, maximum: ID48_MAX })),
    open: Type.Optional(Type.Union([Type.Literal('true'), Type.Literal('false')])),
    offset: Type.Optional(Type.Integer({ minimum: 0, maximum: 10_000_000 })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500 })),
  },
  { additionalProperties: false },
);
const IntakeFlagQuery = Type.Object(
  {
    terminal: Type.Optional(Type.Integer({ minimum: 1, maximum: ID48_MAX })),
    offset: Type.Optional(Type.Integer({ minimum: 0, maximum: 10_000_000 })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500 })),
  },
  { additionalProperties: false },
);
const ResolveBody = Type.Object({ resolution: Type.String({ minLength: 1, maxLength: 500 }) }, { additionalProperties: false });

function flagView(r: Row) {
  const reason = String(r.reason) as ClearingReason;
  const rule = CLEARING_RULES[reason];
  return {
    id: int(r.id, 'id'),
    terminalId: int(r.terminal_id, 'terminal'),
    sequence: int(r.sequence, 'sequence'),
    reason,
    en: rule?.en ?? reason,
    zh: rule?.zh ?? reason,
    paid: int(r.paid, 'paid') === 1,
    bears: String(r.bears),
    amount: int(r.amount, 'amount'),
    holderId: r.holder_id === null ? null : int(r.holder_id, 'holder'),
    detail: String(r.detail),
    related: {
      terminalId: r.related_terminal === null ? null : int(r.related_terminal, 'terminal'),
      sequence: r.related_sequence === null ? null : int(r.related_sequence, 'sequence'),
      authorizationId: r.related_authorization === null ? null : int(r.related_authorization, 'authorization'),
    },
    at: int(r.at, 'at'),
    resolvedAt: r.resolved_at === null ? null : int(r.resolved_at, 'resolved_at'),
    resolvedBy: r.resolved_by === null ? null : String(r.resolved_by),
    resolution: r.resolution === null ? null : String(r.resolution),
  };
}

/** A record's signed bytes and what they say, for a person settling a dispute. */
function recordEvidence(bytes: Uint8Array) {
  try {
    const r = decodeRecord(bytes);
    return {
      bytes: b64(bytes),
      terminalId: r.terminalId,
      sequence: r.sequence,
      time: r.time,
      kind: r.kind,
      path: r.path,
      medium: r.medium,
      amount: r.amount,
      merchantId: r.merchantId,
      versions: { trustList: r.trustListVersion, denyList: r.denyListVersion, policy: r.policyVersion },
      evidence: b64(r.evidence),
      signature: b64(r.signature),
    };
  } catch (e) {
    if (!isProtocolError(e)) throw e;
    return { bytes: b64(bytes), undecodable: `${e.code}: ${e.detail}` };
  }
}

export function clearingRoutes(): Route[] {
  return [
    {
      method: 'GET',
      url: '/v1/clearing/status',
      access: { kind: 'staff', roles: READERS },
      summary: 'Clearing backlog, runs, open flags and chain gaps / 清分状态',
      tags: ['clearing'],
      handle: async (call) => {
        const db = call.ctx.db;
        // Bounded by the backlog, never by all records ever held: pending rows through their partial
        // index, and what clearing decided from its run log (one row per run of up to 1,000).
        const pending = await db.one("SELECT COUNT(*) AS n, COALESCE(SUM(amount), 0) AS amount FROM records WHERE cleared = 'pending'");
        const decided = await db.one(
          'SELECT COALESCE(SUM(records), 0) AS records, COALESCE(SUM(posted), 0) AS posted, COALESCE(SUM(linked), 0) AS linked, COALESCE(SUM(refused), 0) AS refused, COALESCE(SUM(paid_fen), 0) AS paid FROM clearing_runs',
        );
        const unacked = await db.one(
          `SELECT COUNT(*) AS n FROM records r LEFT JOIN intake_acks a ON a.terminal_id = r.terminal_id
           WHERE r.cleared = 'pending' AND (a.acked_through IS NULL OR r.sequence > a.acked_through)`,
        );
        const flags = await db.all(
          'SELECT reason, COUNT(*) AS n, COALESCE(SUM(amount), 0) AS amount FROM clearing_flags WHERE resolved_at IS NULL GROUP BY reason',
        );
        const intake = await db.all('SELECT reason, COUNT(*) AS n FROM intake_flags GROUP BY reason');
        const runs = await db.all('SELECT * FROM clearing_runs ORDER BY id DESC LIMIT 10');
        return {
          pending: { count: int(pending?.n ?? 0, 'n'), amount: int(pending?.amount ?? 0, 'amount') },
          decided: {
            records: int(decided?.records ?? 0, 'records'),
            posted: int(decided?.posted ?? 0, 'posted'),
            linked: int(decided?.linked ?? 0, 'linked'),
            refused: int(decided?.refused ?? 0, 'refused'),
            paidFen: int(decided?.paid ?? 0, 'paid'),
          },
          pendingBeyondChain: int(unacked?.n ?? 0, 'n'),
          openFlags: Object.fromEntries(flags.map((f) => [String(f.reason), { count: int(f.n, 'n'), amount: int(f.amount, 'amount') }])),
          intakeAlarms: Object.fromEntries(intake.map((f) => [String(f.reason), int(f.n, 'n')])),
          gaps: await intakeGaps(db, nowS(call.ctx), GAP_ALARM_AFTER_S),
          runs: runs.map((r) => ({
            id: int(r.id, 'id'),
            startedAt: int(r.started_at, 'started_at'),
            finishedAt: int(r.finished_at, 'finished_at'),
            records: int(r.records, 'records'),
            posted: int(r.posted, 'posted'),
            linked: int(r.linked, 'linked'),
            refused: int(r.refused, 'refused'),
            flagged: int(r.flagged, 'flagged'),
            paidFen: int(r.paid_fen, 'paid'),
            lossFen: int(r.loss_fen, 'loss'),
            advanceFen: int(r.advance_fen, 'advance'),
          })),
        };
      },
    },
    {
      method: 'POST',
      url: '/v1/clearing/run',
      access: { kind: 'staff', roles: ADMIN },
      summary: 'Clear every pending record now / 立即清分',
      tags: ['clearing'],
      handle: async (call) => call.ctx.clearing.drain(),
    },
    {
      method: 'GET',
      url: '/v1/clearing/flags',
      access: { kind: 'staff', roles: READERS },
      summary: 'Clearing flags, newest first / 清分异常列表',
      tags: ['clearing'],
      query: FlagQuery,
      handle: async (call) => {
        const q = call.query as Static<typeof FlagQuery>;
        const where: string[] = [];
        const params: (number | string)[] = [];
        if (q.reason !== undefined) {
          where.push('reason = ?');
          params.push(q.reason);
        }
        if (q.terminal !== undefined) {
          where.push('terminal_id = ?');
          params.push(q.terminal);
        }
        if (q.open === 'true') where.push('resolved_at IS NULL');
        const rows = await call.ctx.db.all(
          `SELECT id, terminal_id, sequence, reason, paid, bears, amount, holder_id, detail, related_terminal, related_sequence,
                  related_authorization, at, resolved_at, resolved_by, resolution
           FROM clearing_flags ${where.length === 0 ? '' : `WHERE ${where.join(' AND ')}`} ORDER BY id DESC LIMIT ? OFFSET ?`,
          [...params, q.limit ?? 100, q.offset ?? 0],
        );
        return { flags: rows.map(flagView) };
      },
    },
    {
      method: 'GET',
      url: '/v1/clearing/flags/:id',
      access: { kind: 'staff', roles: READERS },
      summary: 'One flag with its evidence: the signed record, and the first use for a replay / 清分异常及证据',
      tags: ['clearing'],
      params: IdParams,
      handle: async (call) => {
        const db = call.ctx.db;
        const r = await db.one('SELECT * FROM clearing_flags WHERE id = ?', [Number(call.params.id)]);
        if (r === undefined) throw new ApiError('not_found', `flag ${String(call.params.id)}`);
        const view = flagView(r);
        let related: unknown = null;
        if (view.related.terminalId !== null && view.related.sequence !== null) {
          const rec = await db.one('SELECT bytes, cleared FROM records WHERE terminal_id = ? AND sequence = ?', [
            view.related.terminalId,
            view.related.sequence,
          ]);
          if (rec !== undefined) related = { record: recordEvidence(rec.bytes as Uint8Array), state: String(rec.cleared) };
        } else if (view.related.authorizationId !== null) {
          const a = await db.one('SELECT * FROM online_authorizations WHERE id = ?', [view.related.authorizationId]);
          if (a !== undefined)
            related = {
              authorization: {
                id: int(a.id, 'id'),
                terminalId: int(a.terminal_id, 'terminal'),
                amount: int(a.amount, 'amount'),
                paymentTime: int(a.payment_time, 'time'),
                authorizedAt: int(a.authorized_at, 'authorized_at'),
              },
            };
        }
        return { ...view, record: recordEvidence(r.evidence as Uint8Array), related };
      },
    },
    {
      method: 'POST',
      url: '/v1/clearing/flags/:id/resolve',
      access: { kind: 'staff', roles: ADMIN },
      summary: 'Close a flag with a recorded resolution / 处理清分异常',
      tags: ['clearing'],
      params: IdParams,
      body: ResolveBody,
      handle: async (call) => {
        const staff = staffOf(call);
        const id = Number(call.params.id);
        const b = call.body as Static<typeof ResolveBody>;
        const n = await call.ctx.db.run(
          'UPDATE clearing_flags SET resolved_at = ?, resolved_by = ?, resolution = ? WHERE id = ? AND resolved_at IS NULL',
          [nowS(call.ctx), staff.username, b.resolution, id],
        );
        if (n === 0) {
          const exists = await call.ctx.db.one('SELECT id FROM clearing_flags WHERE id = ?', [id]);
          throw exists === undefined ? new ApiError('not_found', `flag ${id}`) : new ApiError('conflict', `flag ${id} is already resolved`);
        }
        return { id, resolved: true };
      },
    },
    {
      method: 'GET',
      url: '/v1/intake/flags',
      access: { kind: 'staff', roles: READERS },
      summary: `Intake alarms (${INTAKE_FLAG_REASONS.join(', ')}) with the refused record / 上传告警`,
      tags: ['clearing'],
      query: IntakeFlagQuery,
      handle: async (call) => {
        const q = call.query as Static<typeof IntakeFlagQuery>;
        const rows = await call.ctx.db.all(
          `SELECT id, terminal_id, sequence, reason, detail, evidence, at FROM intake_flags ${q.terminal === undefined ? '' : 'WHERE terminal_id = ?'}
           ORDER BY id DESC LIMIT ? OFFSET ?`,
          [...(q.terminal === undefined ? [] : [q.terminal]), q.limit ?? 100, q.offset ?? 0],
        );
        return {
          alarms: rows.map((r) => ({
            id: int(r.id, 'id'),
            terminalId: int(r.terminal_id, 'terminal'),
            sequence: int(r.sequence, 'sequence'),
            reason: String(r.reason),
            detail: String(r.detail),
            at: int(r.at, 'at'),
            record: recordEvidence(r.evidence as Uint8Array),
          })),
        };
      },
    },
  ];
}
