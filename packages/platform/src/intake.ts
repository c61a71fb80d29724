/**
 * Intake: where terminal records come home (DESIGN §7). Idempotent on (terminal, sequence): the same
 * record again changes nothing; a different record under a held sequence is kept as tampering
 * evidence (a fork) and never replaces the first. The answer is the highest sequence up to which the
 * platform holds an unbroken chain, so a terminal resends from there and prunes only below it.
 *
 * Authenticity at the cost of one signature per upload, not one per record: within a batch, the
 * records whose `previous_hash` links to the record before form runs; a valid terminal signature on
 * a run's LAST record authenticates every record of the run, because it covers that record's
 * previous_hash, which fixes the previous record's full bytes (signature included), and so on back
 * (SHA-256 preimage and second-preimage resistance). Only when a run's last signature fails are its
 * records verified one by one, so a tampered record is named exactly and the good ones are kept.
 * Verification runs before the transaction, so a batch's signature checks never hold the writer.
 *
 * Alarms (intake_flags, once per terminal, sequence, reason and evidence): `bad_signature`, `fork`,
 * `chain_break` (a held record whose previous_hash does not match the chain: records deleted or
 * altered on the terminal). Records held beyond a missing sequence are a gap: not an alarm while
 * uploads may still be arriving out of order, reported by `intakeGaps` once it has lasted.
 * Clearing (clearing.ts) reads the records up to the acknowledged sequence.
 */
import {
  type CryptoProvider,
  decodeCode,
  decodeUploadBatch,
  equalBytes,
  GENESIS_HASH,
  isProtocolError,
  type TerminalRecord,
  toHex,
  verifyRecordSignature,
} from '@duet/protocol';
import type { Column, Dialect, Migration, Queryable } from './db/db.js';
import { ApiError } from './errors.js';

export const intakeMigrations: Migration[] = [
  {
    id: 'intake/001-records',
    sql: (d: Dialect) => [
      `CREATE TABLE records (
        terminal_id ${d.int} NOT NULL,
        sequence ${d.int} NOT NULL,
        hash ${d.bytes} NOT NULL,
        previous_hash ${d.bytes} NOT NULL,
        time ${d.int} NOT NULL,
        kind TEXT NOT NULL,
        path TEXT NOT NULL,
        amount ${d.int} NOT NULL,
        merchant_id ${d.int} NOT NULL,
        bytes ${d.bytes} NOT NULL,
        received_at ${d.int} NOT NULL,
        cleared TEXT NOT NULL,
        PRIMARY KEY (terminal_id, sequence)
      )`,
      `CREATE TABLE intake_acks (terminal_id ${d.int} PRIMARY KEY, acked_through ${d.int} NOT NULL, last_hash ${d.bytes} NOT NULL)`,
      `CREATE TABLE intake_flags (
        id ${d.serialKey},
        terminal_id ${d.int} NOT NULL,
        sequence ${d.int} NOT NULL,
        reason TEXT NOT NULL,
        detail TEXT NOT NULL,
        evidence ${d.bytes} NOT NULL,
        at ${d.int} NOT NULL
      )`,
    ],
  },
  {
    id: 'intake/002-pending-index',
    // Clearing reads pending records by terminal and sequence; the partial index stays as small as the backlog.
    sql: () => [
      "CREATE INDEX records_pending ON records (terminal_id, sequence) WHERE cleared = 'pending'",
      'CREATE INDEX intake_flags_by_terminal ON intake_flags (terminal_id, sequence)',
    ],
  },
];

export interface IntakeResult {
  readonly ackedThrough: number;
  readonly stored: number;
  readonly duplicates: number;
  readonly flagged: number;
}

export const INTAKE_FLAG_REASONS = ['bad_signature', 'fork', 'chain_break'] as const;
export type IntakeFlagReason = (typeof INTAKE_FLAG_REASONS)[number];

/** Records a flag once per (terminal, sequence, reason, evidence): a resent batch does not repeat the alarm. */
async function flag(
  q: Queryable,
  terminalId: number,
  sequence: number,
  reason: IntakeFlagReason,
  detail: string,
  evidence: Uint8Array,
  nowS: number,
): Promise<boolean> {
  const again = await q.one('SELECT 1 AS x FROM intake_flags WHERE terminal_id = ? AND sequence = ? AND reason = ? AND evidence = ?', [
    terminalId,
    sequence,
    reason,
    evidence,
  ]);
  if (again !== undefined) return false;
  await q.run('INSERT INTO intake_flags (terminal_id, sequence, reason, detail, evidence, at) VALUES (?, ?, ?, ?, ?, ?)', [
    terminalId,
    sequence,
    reason,
    detail,
    evidence,
    nowS,
  ]);
  return true;
}

/** A decoded, hashed record and whether its terminal signature is established. */
export interface CheckedRecord {
  readonly record: TerminalRecord;
  readonly hash: Uint8Array;
  /** Why its signature was refused, or undefined when it is authentic. */
  readonly badSignature: string | undefined;
}

/** A decoded upload batch whose signatures have been checked, ready for `storeBatch`. */
export interface CheckedBatch {
  readonly terminalId: number;
  readonly records: readonly CheckedRecord[];
}

/**
 * Decodes an upload batch of `terminalId` (the authenticated caller) and checks its records'
 * signatures with the terminal's certified `publicKey`: one verification per linked run (see the
 * module comment), every record of a run whose last signature fails. Pure: no database.
 */
export async function checkBatch(
  crypto: CryptoProvider,
  terminalId: number,
  publicKey: Uint8Array,
  batchBytes: Uint8Array,
): Promise<CheckedBatch> {
  let records: readonly TerminalRecord[];
  try {
    const batch = decodeUploadBatch(batchBytes);
    if (batch.terminalId !== terminalId)
      throw new ApiError('forbidden', `batch of terminal ${batch.terminalId} sent by terminal ${terminalId}`);
    records = batch.records;
  } catch (e) {
    if (isProtocolError(e)) throw new ApiError('validation_failed', `${e.code}: ${e.detail}`);
    throw e;
  }
  const hashes = records.map((r) => crypto.sha256(r.bytes));
  const bad: (string | undefined)[] = records.map(() => undefined);
  const verifyOne = async (i: number): Promise<boolean> => {
    const rec = records[i];
    if (rec === undefined) return false;
    try {
      await verifyRecordSignature(rec, publicKey, crypto);
      return true;
    } catch (e) {
      if (!isProtocolError(e)) throw e;
      bad[i] = e.detail;
      return false;
    }
  };
  // Runs [start, end): each record after the first links to the one before it.
  const runs: [number, number][] = [];
  let start = 0;
  for (let i = 1; i <= records.length; i++) {
    const linked = i < records.length && equalBytes(records[i]?.previousHash ?? GENESIS_HASH, hashes[i - 1] ?? GENESIS_HASH);
    if (!linked) {
      runs.push([start, i]);
      start = i;
    }
  }
  await Promise.all(
    runs.map(async ([from, to]) => {
      if (await verifyOne(to - 1)) return;
      const rest = [];
      for (let i = from; i < to - 1; i++) rest.push(verifyOne(i));
      await Promise.all(rest);
    }),
  );
  return {
    terminalId,
    records: records.map((record, i) => ({ record, hash: hashes[i] ?? GENESIS_HASH, badSignature: bad[i] })),
  };
}

const RECORD_COLUMNS: readonly Column[] = [
  { name: 'terminal_id', type: 'int' },
  { name: 'sequence', type: 'int' },
  { name: 'hash', type: 'bytes' },
  { name: 'previous_hash', type: 'bytes' },
  { name: 'time', type: 'int' },
  { name: 'kind', type: 'text' },
  { name: 'path', type: 'text' },
  { name: 'amount', type: 'int' },
  { name: 'merchant_id', type: 'int' },
  { name: 'bytes', type: 'bytes' },
  { name: 'received_at', type: 'int' },
  { name: 'cleared', type: 'text' },
  { name: 'holder_id', type: 'int' },
];

/** The payer named by a record's evidence (a code's credential), for the holder's history before clearing; null if none. */
function holderOf(r: TerminalRecord): number | null {
  if (r.kind !== 'payment' || (r.medium !== 'qr' && r.medium !== 'tap')) return null;
  try {
    return decodeCode(r.evidence).credential.holder;
  } catch (e) {
    if (isProtocolError(e)) return null;
    throw e;
  }
}

/**
 * Stores a checked batch inside the caller's transaction: new authentic records are inserted in one
 * statement, duplicates counted, forks and bad signatures flagged, then the acknowledgement advances
 * over the unbroken chain. A fixed number of statements per batch, plus one per alarm.
 */
export async function storeBatch(q: Queryable, batch: CheckedBatch, nowS: number): Promise<IntakeResult> {
  const { terminalId, records } = batch;
  let flagged = 0;
  let duplicates = 0;
  const first = records[0]?.record.sequence;
  const last = records[records.length - 1]?.record.sequence;
  const held = new Map<number, Uint8Array>();
  if (first !== undefined && last !== undefined) {
    const rows = await q.all('SELECT sequence, bytes FROM records WHERE terminal_id = ? AND sequence BETWEEN ? AND ?', [
      terminalId,
      first,
      last,
    ]);
    for (const r of rows) held.set(Number(r.sequence), r.bytes as Uint8Array);
  }
  const fresh: CheckedRecord[] = [];
  for (const c of records) {
    const rec = c.record;
    if (c.badSignature !== undefined) {
      await flag(q, terminalId, rec.sequence, 'bad_signature', c.badSignature, rec.bytes, nowS);
      flagged++;
      continue;
    }
    const h = held.get(rec.sequence);
    if (h === undefined) fresh.push(c);
    else if (equalBytes(h, rec.bytes)) duplicates++;
    // Two different records signed by one terminal under one sequence: a fork. Keep both as evidence.
    else {
      await flag(q, terminalId, rec.sequence, 'fork', 'a different record under a sequence already held', rec.bytes, nowS);
      flagged++;
    }
  }
  if (fresh.length > 0) {
    await q.insertMany(
      'records',
      RECORD_COLUMNS,
      fresh.map(({ record: r, hash }) => [
        terminalId,
        r.sequence,
        hash,
        r.previousHash,
        r.time,
        r.kind,
        r.path,
        r.amount,
        r.merchantId,
        r.bytes,
        nowS,
        r.kind === 'payment' ? 'pending' : 'access',
        holderOf(r),
      ]),
    );
  }
  const advanced = await advanceAck(q, terminalId, nowS);
  return { ackedThrough: advanced.ackedThrough, stored: fresh.length, duplicates, flagged: flagged + advanced.flagged };
}

/** How many held records the acknowledgement walks in one query. */
const ACK_WALK_PAGE = 2_000;

/** Advances the acknowledgement over every contiguous held record whose chain links to the one before. */
async function advanceAck(q: Queryable, terminalId: number, nowS: number): Promise<{ ackedThrough: number; flagged: number }> {
  const ack = await q.one('SELECT acked_through, last_hash FROM intake_acks WHERE terminal_id = ?', [terminalId]);
  const before = ack === undefined ? 0 : Number(ack.acked_through);
  let acked = before;
  let lastHash = ack === undefined ? GENESIS_HASH : (ack.last_hash as Uint8Array);
  let flagged = 0;
  for (;;) {
    const rows = await q.all(
      'SELECT sequence, hash, previous_hash FROM records WHERE terminal_id = ? AND sequence > ? ORDER BY sequence LIMIT ?',
      [terminalId, acked, ACK_WALK_PAGE],
    );
    let broken = false;
    for (const r of rows) {
      const seq = Number(r.sequence);
      if (seq !== acked + 1) {
        // Records held beyond a missing sequence: still on their way, or deleted on the terminal.
        // Not an alarm yet (uploads may arrive out of order); `intakeGaps` reports gaps that last.
        broken = true;
        break;
      }
      if (!equalBytes(r.previous_hash as Uint8Array, lastHash)) {
        const detail = `previous hash ${toHex(r.previous_hash as Uint8Array).slice(0, 16)}… does not match the record before (${toHex(lastHash).slice(0, 16)}…)`;
        const held = await q.one('SELECT bytes FROM records WHERE terminal_id = ? AND sequence = ?', [terminalId, seq]);
        await flag(q, terminalId, seq, 'chain_break', detail, (held?.bytes as Uint8Array | undefined) ?? new Uint8Array(0), nowS);
        flagged++;
        broken = true;
        break;
      }
      acked = seq;
      lastHash = r.hash as Uint8Array;
    }
    if (broken || rows.length < ACK_WALK_PAGE) break;
  }
  if (ack === undefined)
    await q.run('INSERT INTO intake_acks (terminal_id, acked_through, last_hash) VALUES (?, ?, ?)', [terminalId, acked, lastHash]);
  else if (acked !== before)
    await q.run('UPDATE intake_acks SET acked_through = ?, last_hash = ? WHERE terminal_id = ?', [acked, lastHash, terminalId]);
  return { ackedThrough: acked, flagged };
}

export interface IntakeGap {
  readonly terminalId: number;
  /** The first and last missing sequence. */
  readonly from: number;
  readonly to: number;
  /** When the first record beyond the gap arrived. */
  readonly since: number;
}

/**
 * Terminals holding records beyond their acknowledged chain for at least `minAgeS`: deleted records
 * (a terminal's journal tampered with) or uploads lost on the way. One row per terminal, first gap.
 */
export async function intakeGaps(q: Queryable, nowS: number, minAgeS: number, limit = 100): Promise<IntakeGap[]> {
  const rows = await q.all(
    `SELECT r.terminal_id, a.acked_through, MIN(r.sequence) AS next, MIN(r.received_at) AS since
     FROM records r JOIN intake_acks a ON a.terminal_id = r.terminal_id
     WHERE r.sequence > a.acked_through + 1
       AND NOT EXISTS (SELECT 1 FROM records x WHERE x.terminal_id = r.terminal_id AND x.sequence = a.acked_through + 1)
     GROUP BY r.terminal_id, a.acked_through ORDER BY r.terminal_id LIMIT ?`,
    [limit],
  );
  return rows
    .map((r) => ({ terminalId: Number(r.terminal_id), from: Number(r.acked_through) + 1, to: Number(r.next) - 1, since: Number(r.since) }))
    .filter((g) => nowS - g.since >= minAgeS);
}

/**
 * Takes one upload batch from terminal `terminalId`: checks it (no transaction held) and stores it
 * in one transaction. The same batch again changes nothing.
 */
export async function takeBatch(
  db: { tx<T>(fn: (q: Queryable) => Promise<T>): Promise<T> },
  crypto: CryptoProvider,
  terminalId: number,
  publicKey: Uint8Array,
  batchBytes: Uint8Array,
  nowS: number,
): Promise<IntakeResult> {
  const checked = await checkBatch(crypto, terminalId, publicKey, batchBytes);
  return db.tx((q) => storeBatch(q, checked, nowS));
}
