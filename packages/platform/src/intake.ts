/**
 * Intake: where terminal records come home. Idempotent on (terminal, sequence): the same record
 * again changes nothing; a different record under a held sequence is kept as tampering evidence and
 * never replaces the first. Records are verified (terminal signature under its certified key, chain
 * continuity) before they are stored; the answer is the highest contiguous sequence held, so a
 * terminal resends from there. Clearing (issue 5) reads what intake stored.
 */
import {
  type CryptoProvider,
  decodeUploadBatch,
  equalBytes,
  GENESIS_HASH,
  isProtocolError,
  type TerminalRecord,
  toHex,
  verifyRecordSignature,
} from '@duet/protocol';
import type { Dialect, Migration, Queryable } from './db/db.js';
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
];

export interface IntakeResult {
  readonly ackedThrough: number;
  readonly stored: number;
  readonly duplicates: number;
  readonly flagged: number;
}

/** Records a flag once per (terminal, sequence, reason, evidence): a resent batch does not repeat the alarm. */
async function flag(
  q: Queryable,
  terminalId: number,
  sequence: number,
  reason: string,
  detail: string,
  evidence: Uint8Array,
  nowS: number,
): Promise<void> {
  const again = await q.one('SELECT 1 AS x FROM intake_flags WHERE terminal_id = ? AND sequence = ? AND reason = ? AND evidence = ?', [
    terminalId,
    sequence,
    reason,
    evidence,
  ]);
  if (again !== undefined) return;
  await q.run('INSERT INTO intake_flags (terminal_id, sequence, reason, detail, evidence, at) VALUES (?, ?, ?, ?, ?, ?)', [
    terminalId,
    sequence,
    reason,
    detail,
    evidence,
    nowS,
  ]);
}

/**
 * Takes one upload batch from terminal `terminalId` (the authenticated caller), whose certified
 * public key is `publicKey`. Runs inside the caller's transaction.
 */
export async function takeBatch(
  q: Queryable,
  crypto: CryptoProvider,
  terminalId: number,
  publicKey: Uint8Array,
  batchBytes: Uint8Array,
  nowS: number,
): Promise<IntakeResult> {
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
  const ack = await q.one('SELECT acked_through, last_hash FROM intake_acks WHERE terminal_id = ?', [terminalId]);
  let acked = ack === undefined ? 0 : Number(ack.acked_through);
  let lastHash = ack === undefined ? GENESIS_HASH : (ack.last_hash as Uint8Array);
  let stored = 0;
  let duplicates = 0;
  let flagged = 0;
  for (const rec of records) {
    try {
      await verifyRecordSignature(rec, publicKey, crypto);
    } catch (e) {
      if (!isProtocolError(e)) throw e;
      await flag(q, terminalId, rec.sequence, 'bad_signature', e.detail, rec.bytes, nowS);
      flagged++;
      continue;
    }
    const held = await q.one('SELECT bytes FROM records WHERE terminal_id = ? AND sequence = ?', [terminalId, rec.sequence]);
    if (held !== undefined) {
      if (equalBytes(held.bytes as Uint8Array, rec.bytes)) duplicates++;
      else {
        // Two different records signed by one terminal under one sequence: a fork. Keep both as evidence.
        await flag(q, terminalId, rec.sequence, 'fork', 'a different record under a sequence already held', rec.bytes, nowS);
        flagged++;
      }
      continue;
    }
    const hash = crypto.sha256(rec.bytes);
    await q.run(
      'INSERT INTO records (terminal_id, sequence, hash, previous_hash, time, kind, path, amount, merchant_id, bytes, received_at, cleared) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      [
        terminalId,
        rec.sequence,
        hash,
        rec.previousHash,
        rec.time,
        rec.kind,
        rec.path,
        rec.amount,
        rec.merchantId,
        rec.bytes,
        nowS,
        'pending',
      ],
    );
    stored++;
  }
  // Advance the acknowledgement over every contiguous record whose chain links to the one before.
  for (;;) {
    const next = await q.one('SELECT hash, previous_hash, bytes FROM records WHERE terminal_id = ? AND sequence = ?', [
      terminalId,
      acked + 1,
    ]);
    if (next === undefined) break;
    if (!equalBytes(next.previous_hash as Uint8Array, lastHash)) {
      await flag(
        q,
        terminalId,
        acked + 1,
        'chain_break',
        `previous hash ${toHex(next.previous_hash as Uint8Array).slice(0, 16)}… does not match`,
        next.bytes as Uint8Array,
        nowS,
      );
      flagged++;
      break;
    }
    acked++;
    lastHash = next.hash as Uint8Array;
  }
  if (ack === undefined)
    await q.run('INSERT INTO intake_acks (terminal_id, acked_through, last_hash) VALUES (?, ?, ?)', [terminalId, acked, lastHash]);
  else await q.run('UPDATE intake_acks SET acked_through = ?, last_hash = ? WHERE terminal_id = ?', [acked, lastHash, terminalId]);
  return { ackedThrough: acked, stored, duplicates, flagged };
}
