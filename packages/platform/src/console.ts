/**
 * What the web console and the wallet read and do beyond the core API (docs/platform.md, "Console
 * and wallet"): the dashboard (payments per minute, today, terminals online and waiting to upload,
 * clearing, arrears, alerts), a lost card, and a holder's own status.
 *
 * Terminal "last seen" is the time of a terminal's last authenticated call of any kind. Online
 * authorization is the hot path and must not gain a write, so calls are noted in memory
 * (TerminalActivity) and written at most once a second, and on close; the dashboard reads the
 * stored time and the newer one in memory.
 */
import { decodeRecord, isProtocolError } from '@duet/protocol';
import { revokeSessions } from './auth.js';
import { CLEARING_RULES, type ClearingReason } from './clearing.js';
import type { Db, Dialect, Migration, Queryable, Row } from './db/db.js';
import { beijingDay, beijingDayStartS } from './days.js';
import { ApiError } from './errors.js';
import { acceptedCurrent, currentAgreement, getHolder } from './holders.js';
import type { IntakeFlagReason } from './intake.js';
import { revokeCredentialsOf } from './issuance.js';
import { int } from './ledger.js';
import { latestDenyList, publishDenyList, setDenied } from './lists.js';
import { purses } from './purses.js';
import type { SigningKeys } from './signing-keys.js';

/** A terminal counts as online when its last authenticated call is at most this old. */
export const ONLINE_WITHIN_S = 120;
/** The dashboard's payments-per-minute window. */
export const DASHBOARD_MINUTES = 60;
/** The most alerts the dashboard lists. */
export const DASHBOARD_ALERTS_MAX = 20;
/** The reason on deny entries made by a lost-card report. */
export const LOST_REASON = 'lost';

export const consoleMigrations: Migration[] = [
  {
    id: 'console/001-terminal-sync-payment-times',
    sql: (d: Dialect) => [
      `ALTER TABLE terminals ADD COLUMN last_sync_at ${d.int}`,
      `ALTER TABLE terminals ADD COLUMN reported_head ${d.int}`,
      // Payments by decision time for the dashboard: covering (count and sum read the index only),
      // partial (access records never enter it).
      "CREATE INDEX records_payment_time ON records (time, merchant_id, amount) WHERE kind = 'payment'",
    ],
  },
];

/** ISO-8601 UTC of a time in seconds, or null. */
export function iso(s: number | null): string | null {
  return s === null ? null : new Date(s * 1000).toISOString();
}

const opt = (v: unknown, field: string): number | null => (v === null || v === undefined ? null : int(v as number, field));

// ---------------------------------------------------------------------------------------------
// Terminal activity

/** Last-seen times of terminals, noted in memory on every authenticated call and written in the background. */
export class TerminalActivity {
  readonly #latest = new Map<number, number>();
  #dirty = new Map<number, number>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly db: Db,
    private readonly o: { readonly flushMs?: number; readonly onError?: (e: unknown) => void } = {},
  ) {}

  /** Notes a call of terminal `id` at `nowS`: a Map write, nothing else. */
  seen(id: number, nowS: number): void {
    const prev = this.#latest.get(id);
    if (prev !== undefined && prev >= nowS) return;
    this.#latest.set(id, nowS);
    this.#dirty.set(id, nowS);
  }

  /** The newest time noted in this process for terminal `id`. */
  lastSeen(id: number): number | undefined {
    return this.#latest.get(id);
  }

  start(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setInterval(() => void this.flush().catch((e: unknown) => this.o.onError?.(e)), this.o.flushMs ?? 1_000);
    this.#timer.unref();
  }

  /** Writes what was noted since the last flush (one transaction; a time only ever moves forward). */
  flush(): Promise<void> {
    const run = this.#flushing.then(async () => {
      if (this.#dirty.size === 0) return;
      const batch = this.#dirty;
      this.#dirty = new Map();
      try {
        await this.db.tx(async (q) => {
          for (const [id, s] of batch)
            await q.run('UPDATE terminals SET last_seen_at = ? WHERE id = ? AND (last_seen_at IS NULL OR last_seen_at < ?)', [s, id, s]);
        });
      } catch (e) {
        // Kept for the next flush unless a newer time was noted meanwhile.
        for (const [id, s] of batch) if (!this.#dirty.has(id)) this.#dirty.set(id, s);
        throw e;
      }
    });
    this.#flushing = run.catch(() => {});
    return run;
  }

  /** Stops the timer and writes what is left. */
  async stop(): Promise<void> {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.flush();
  }
}

// ---------------------------------------------------------------------------------------------
// Dashboard

export interface DashboardScope {
  /** A merchant's staff see only its terminals and payments; undefined: the whole campus. */
  readonly merchantId?: number;
}

const INTAKE_WORDS: Record<IntakeFlagReason, { en: string; zh: string }> = {
  bad_signature: { en: 'An uploaded record does not verify under its terminal key', zh: '上传的记录无法用终端密钥验证' },
  fork: { en: 'Two different records under one sequence number (fork)', zh: '同一序号下出现两条不同记录（分叉）' },
  chain_break: { en: 'A record does not link to the one before: records deleted or altered', zh: '记录与前一条不衔接：记录被删除或篡改' },
};

export interface Alert {
  readonly id: string;
  readonly kind: string;
  readonly at: string;
  readonly terminalId: number | null;
  readonly holderId: number | null;
  readonly amountFen: number | null;
  readonly en: string;
  readonly zh: string;
}

function clearingAlert(r: Row): Alert & { readonly atS: number } {
  const reason = String(r.reason);
  const rule = (CLEARING_RULES as Record<string, { en: string; zh: string } | undefined>)[reason as ClearingReason];
  const terminalId = int(r.terminal_id, 'terminal');
  const sequence = int(r.sequence, 'sequence');
  const atS = int(r.at, 'at');
  return {
    id: `clearing-${int(r.id, 'id')}`,
    kind: reason,
    at: iso(atS) ?? '',
    atS,
    terminalId,
    holderId: opt(r.holder_id, 'holder'),
    amountFen: int(r.amount, 'amount'),
    en: `${rule?.en ?? reason} (terminal ${terminalId}, record ${sequence})`,
    zh: `${rule?.zh ?? reason}（终端 ${terminalId}，记录 ${sequence}）`,
  };
}

function intakeAlert(r: Row): Alert & { readonly atS: number } {
  const reason = String(r.reason) as IntakeFlagReason;
  const words = INTAKE_WORDS[reason] ?? { en: reason, zh: reason };
  const terminalId = int(r.terminal_id, 'terminal');
  const sequence = int(r.sequence, 'sequence');
  let amountFen: number | null = null;
  try {
    const rec = decodeRecord(r.evidence as Uint8Array);
    if (rec.kind === 'payment') amountFen = rec.amount;
  } catch (e) {
    if (!isProtocolError(e)) throw e;
  }
  const atS = int(r.at, 'at');
  return {
    id: `intake-${int(r.id, 'id')}`,
    kind: reason,
    at: iso(atS) ?? '',
    atS,
    terminalId,
    holderId: null,
    amountFen,
    en: `${words.en} (terminal ${terminalId}, record ${sequence})`,
    zh: `${words.zh}（终端 ${terminalId}，记录 ${sequence}）`,
  };
}

export async function dashboard(q: Queryable, nowMs: number, scope: DashboardScope, activity?: TerminalActivity) {
  const now = Math.floor(nowMs / 1000);
  const m = scope.merchantId;
  const byMerchant = m === undefined ? '' : ' AND merchant_id = ?';
  const mp = m === undefined ? [] : [m];
  const onTerminals = m === undefined ? '' : ' AND terminal_id IN (SELECT id FROM terminals WHERE merchant_id = ?)';

  // Payments per minute: the last 60 minutes, the current one last, by decision time.
  const lastMinute = now - (now % 60);
  const from = lastMinute - (DASHBOARD_MINUTES - 1) * 60;
  const perMinute = await q.all(
    `SELECT time - time % 60 AS minute, COUNT(*) AS n, COALESCE(SUM(amount), 0) AS amount FROM records
     WHERE kind = 'payment' AND time >= ? AND time < ?${byMerchant} GROUP BY time - time % 60`,
    [from, lastMinute + 60, ...mp],
  );
  const buckets = new Map(perMinute.map((r) => [int(r.minute, 'minute'), { count: int(r.n, 'n'), amountFen: int(r.amount, 'amount') }]));
  const paymentsPerMinute = Array.from({ length: DASHBOARD_MINUTES }, (_, i) => {
    const t = from + i * 60;
    return { minute: iso(t) ?? '', ...(buckets.get(t) ?? { count: 0, amountFen: 0 }) };
  });

  const dayStart = beijingDayStartS(beijingDay(now));
  const todayRow = await q.one(
    `SELECT COUNT(*) AS n, COALESCE(SUM(amount), 0) AS amount FROM records WHERE kind = 'payment' AND time >= ? AND time < ?${byMerchant}`,
    [dayStart, dayStart + 86_400, ...mp],
  );

  // Terminals, with what they reported and what the platform holds.
  const rows = await q.all(
    `SELECT t.id, t.merchant_id, t.location, t.scene, t.status, t.last_seen_at, t.last_sync_at, t.reported_head,
            mr.name AS merchant, a.acked_through
     FROM terminals t LEFT JOIN merchants mr ON mr.id = t.merchant_id LEFT JOIN intake_acks a ON a.terminal_id = t.id
     ${m === undefined ? '' : 'WHERE t.merchant_id = ?'} ORDER BY t.id`,
    mp,
  );
  const terminals = rows.map((r) => {
    const id = int(r.id, 'id');
    const stored = opt(r.last_seen_at, 'last_seen_at');
    const noted = activity?.lastSeen(id);
    const lastSeen = noted !== undefined && (stored === null || noted > stored) ? noted : stored;
    const reportedHead = opt(r.reported_head, 'reported_head');
    const uploadedHead = opt(r.acked_through, 'acked_through');
    const status = r.status === 'active' ? 'active' : r.status === 'revoked' ? 'revoked' : 'pending';
    return {
      id,
      merchantId: int(r.merchant_id, 'merchant'),
      merchant: r.merchant === null ? '' : String(r.merchant),
      location: String(r.location),
      scene: String(r.scene),
      status,
      online: lastSeen !== null && now - lastSeen <= ONLINE_WITHIN_S,
      lastSeenAt: iso(lastSeen),
      lastSyncAt: iso(opt(r.last_sync_at, 'last_sync_at')),
      reportedHead,
      uploadedHead,
      waiting: reportedHead === null ? 0 : Math.max(0, reportedHead - (uploadedHead ?? 0)),
    } as const;
  });
  const terminalsOnline = terminals.filter((t) => t.online).length;
  const terminalsOffline = terminals.filter((t) => !t.online && t.status === 'active').length;
  const recordsWaiting = terminals.reduce((s, t) => s + t.waiting, 0);

  // Clearing.
  const pending = await q.one(`SELECT COUNT(*) AS n FROM records WHERE cleared = 'pending'${byMerchant}`, mp);
  const lastRun = await q.one('SELECT MAX(finished_at) AS at FROM clearing_runs');
  const openFlags = await q.one(`SELECT COUNT(*) AS n FROM clearing_flags WHERE resolved_at IS NULL${onTerminals}`, mp);
  const cleared =
    m === undefined
      ? await q.one('SELECT COALESCE(SUM(posted + linked), 0) AS n FROM clearing_runs WHERE finished_at >= ?', [dayStart])
      : await q.one(
          "SELECT COUNT(*) AS n FROM records WHERE merchant_id = ? AND cleared IN ('posted', 'linked') AND cleared_at >= ? AND kind = 'payment' AND time >= ?",
          // A payment cleared today was made at most a few offline windows ago: the time bound keeps the read on the index.
          [m, dayStart, dayStart - 30 * 86_400],
        );

  // Arrears: a merchant sees none (they are the holders' business with the operator).
  const arrears =
    m === undefined
      ? await q.one(
          `SELECT COUNT(DISTINCT a.id) AS n, COALESCE(SUM(b.balance), 0) AS amount FROM ledger_accounts a
           JOIN ledger_balances b ON b.account_id = a.id WHERE a.kind = 'holder_arrears' AND b.balance <> 0`,
        )
      : undefined;

  // Alerts: open clearing flags and intake alarms, newest first.
  const flagRows = await q.all(
    `SELECT id, terminal_id, sequence, reason, amount, holder_id, at FROM clearing_flags WHERE resolved_at IS NULL${onTerminals}
     ORDER BY id DESC LIMIT ?`,
    [...mp, DASHBOARD_ALERTS_MAX],
  );
  const intakeRows = await q.all(
    `SELECT id, terminal_id, sequence, reason, evidence, at FROM intake_flags WHERE 1 = 1${onTerminals} ORDER BY id DESC LIMIT ?`,
    [...mp, DASHBOARD_ALERTS_MAX],
  );
  const alerts = [...flagRows.map(clearingAlert), ...intakeRows.map(intakeAlert)]
    .sort((a, b) => b.atS - a.atS || b.id.localeCompare(a.id))
    .slice(0, DASHBOARD_ALERTS_MAX)
    .map(({ atS: _, ...a }) => a);

  return {
    at: new Date(nowMs).toISOString(),
    paymentsPerMinute,
    today: { count: int(todayRow?.n ?? 0, 'n'), amountFen: int(todayRow?.amount ?? 0, 'amount') },
    terminals,
    terminalsOnline,
    terminalsOffline,
    recordsWaiting,
    clearing: {
      pending: int(pending?.n ?? 0, 'n'),
      lastRunAt: iso(opt(lastRun?.at, 'at')),
      openFlags: int(openFlags?.n ?? 0, 'n'),
      clearedToday: int(cleared?.n ?? 0, 'n'),
    },
    arrears: { holders: int(arrears?.n ?? 0, 'n'), amountFen: int(arrears?.amount ?? 0, 'amount') },
    alerts,
  };
}

// ---------------------------------------------------------------------------------------------
// Holders

export interface DeviceView {
  readonly id: number;
  readonly label: string;
  readonly status: string;
  readonly registeredAt: string | null;
}

export interface CredentialView {
  readonly id: number;
  readonly serial: number;
  readonly deviceId: number;
  readonly status: 'active' | 'revoked' | 'expired';
  readonly notBefore: string | null;
  readonly notAfter: string | null;
  readonly offlineLimitFen: number;
}

export async function holderDevices(q: Queryable, holderId: number): Promise<DeviceView[]> {
  const rows = await q.all('SELECT id, label, status, registered_at FROM devices WHERE holder_id = ? ORDER BY id', [holderId]);
  return rows.map((r) => ({
    id: int(r.id, 'id'),
    label: String(r.label),
    status: String(r.status),
    registeredAt: iso(int(r.registered_at, 'registered_at')),
  }));
}

/** The holder's 20 newest credentials (issued ones; a half-made row of a failed issuance is not one). */
export async function holderCredentials(q: Queryable, holderId: number, nowS: number): Promise<CredentialView[]> {
  const rows = await q.all(
    "SELECT serial, device_id, not_before, not_after, offline_total, status FROM credentials WHERE holder_id = ? AND status <> 'pending' ORDER BY serial DESC LIMIT 20",
    [holderId],
  );
  return rows.map((r) => {
    const notAfter = int(r.not_after, 'not_after');
    const serial = int(r.serial, 'serial');
    return {
      id: serial,
      serial,
      deviceId: int(r.device_id, 'device'),
      status: r.status === 'active' ? (notAfter < nowS ? 'expired' : 'active') : 'revoked',
      notBefore: iso(int(r.not_before, 'not_before')),
      notAfter: iso(notAfter),
      offlineLimitFen: int(r.offline_total, 'offline_total'),
    };
  });
}

/** A holder's own view (GET /v1/holder/status). */
export async function holderStatus(q: Queryable, holderId: number, nowS: number, topUpAvailable: boolean) {
  const h = await getHolder(q, holderId);
  const current = await currentAgreement(q);
  const accepted = await acceptedCurrent(q, holderId);
  const p = await purses(q, holderId);
  return {
    holderId: h.id,
    name: h.name,
    blocked: h.status !== 'active',
    agreement: { accepted: accepted !== undefined, version: accepted?.version ?? null, current: current.version },
    purses: [
      { kind: 'subsidy', balanceFen: p.subsidy },
      { kind: 'cash', balanceFen: p.cash },
    ],
    creditLineFen: p.creditLimit,
    arrearsFen: p.arrears,
    devices: await holderDevices(q, holderId),
    credentials: await holderCredentials(q, holderId, nowS),
    topUpAvailable,
  };
}

/**
 * A lost card or phone: every live credential of the holder is revoked and deny-listed (reason
 * `lost`), the holder's active devices are marked lost (issuance refuses them from now on), the
 * holder's sessions end, and a fresh deny list is published, when anything changed. Running it
 * again changes nothing, publishes nothing and ends no session.
 */
export async function reportLostCard(
  q: Queryable,
  keys: SigningKeys,
  o: { readonly holderId: number; readonly reason: string; readonly by: string },
  nowS: number,
): Promise<{ holderId: number; credentialsRevoked: number; devicesLost: number; denyListVersion: number }> {
  await getHolder(q, o.holderId);
  const serials = await revokeCredentialsOf(q, o.holderId, nowS);
  // Credentials revoked earlier for another reason may still be off the deny list: a lost card denies them all.
  const revoked = await q.all("SELECT serial FROM credentials WHERE holder_id = ? AND status = 'revoked' AND not_after >= ?", [
    o.holderId,
    nowS,
  ]);
  let denied = 0;
  for (const serial of new Set([...serials, ...revoked.map((r) => int(r.serial, 'serial'))]))
    if (await setDenied(q, 'credential', serial, true, LOST_REASON, nowS)) denied++;
  const devicesLost = await q.run("UPDATE devices SET status = 'lost' WHERE holder_id = ? AND status = 'active'", [o.holderId]);
  const changed = serials.length + denied + devicesLost > 0;
  if (changed) {
    // A repeated report (a double click) must not end the session of a holder already on a new phone.
    await revokeSessions(q, 'holder', o.holderId, nowS);
    await q.run('INSERT INTO holder_events (holder_id, at, kind, by_staff, reason) VALUES (?, ?, ?, ?, ?)', [
      o.holderId,
      nowS,
      'lost_card',
      o.by,
      o.reason,
    ]);
  }
  const version = changed ? (await publishDenyList(q, keys, nowS)).version : (await latestDenyList(q))?.version;
  if (version === undefined) throw new ApiError('internal', 'no deny list published');
  return { holderId: o.holderId, credentialsRevoked: serials.length, devicesLost, denyListVersion: version };
}
