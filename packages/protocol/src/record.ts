/**
 * The terminal record: one accepted payment or one access event, with a gap-free sequence number,
 * the hash of the previous record and the terminal's signature. Until upload, a terminal's chain of
 * records is the only proof that money is owed. Also the upload batch that carries them home.
 */
import { concatBytes, equalBytes, label, Reader, Writer } from './bytes.js';
import { ProtocolError } from './errors.js';
import { readHeader, writeHeader } from './header.js';
import { BATCH_MAX_BYTES, BATCH_RECORDS_MAX, RECORD_EVIDENCE_MAX_BYTES } from './limits.js';
import { type Fen, fenNonNegative } from './money.js';
import type { CryptoProvider, Signer, SuiteName } from './suites.js';
import { SIGNATURE_BYTES, SUITE_ID, suiteFromId } from './suites.js';

export const RECORD_KINDS = ['payment', 'access'] as const;
export type RecordKind = (typeof RECORD_KINDS)[number];
/** Which path decided: the terminal alone, or the platform online. */
export const DECISION_PATHS = ['offline', 'online'] as const;
export type DecisionPath = (typeof DECISION_PATHS)[number];
export const MEDIA = ['qr', 'card', 'face', 'tap'] as const;
export type Medium = (typeof MEDIA)[number];
/** Payments are journaled only when accepted; access events are journaled either way. */
export const OUTCOMES = ['accepted', 'denied'] as const;
export type Outcome = (typeof OUTCOMES)[number];

export const HASH_BYTES = 32;
/** The previous-record hash of a terminal's first record (sequence 1). */
export const GENESIS_HASH = new Uint8Array(HASH_BYTES);

export interface RecordBody {
  readonly terminalId: number;
  /** 1, 2, 3, ... with no gap, per terminal. */
  readonly sequence: number;
  /** SHA-256 of the previous record's full bytes; GENESIS_HASH for sequence 1. */
  readonly previousHash: Uint8Array;
  /** Terminal time, seconds since the epoch. */
  readonly time: number;
  readonly kind: RecordKind;
  readonly path: DecisionPath;
  readonly medium: Medium;
  readonly outcome: Outcome;
  readonly amount: Fen;
  readonly merchantId: number;
  /** The list versions in force when the terminal decided: the evidence that it followed the rules. */
  readonly trustListVersion: number;
  readonly denyListVersion: number;
  readonly policyVersion: number;
  /** The medium's evidence: for a QR payment, the whole code as scanned. */
  readonly evidence: Uint8Array;
  readonly terminalSuite: SuiteName;
}

export interface TerminalRecord extends RecordBody {
  readonly signature: Uint8Array;
  readonly bytes: Uint8Array;
  readonly signed: Uint8Array;
}

export const RECORD_LABEL = label('duet/record/v1');

const id = <T extends string>(list: readonly T[], v: T): number => list.indexOf(v) + 1;
function pick<T extends string>(list: readonly T[], n: number, field: string): T {
  const v = list[n - 1];
  if (v === undefined) throw new ProtocolError('bad_value', `record.${field}: ${n}`);
  return v;
}

function checkBody(b: RecordBody): void {
  if (b.terminalId < 1) throw new ProtocolError('bad_value', 'record: terminal_id 0');
  if (b.sequence < 1) throw new ProtocolError('bad_value', 'record: sequence 0');
  if (b.kind === 'payment' && (b.outcome !== 'accepted' || b.amount < 1)) {
    throw new ProtocolError('bad_value', 'record: a payment record must be accepted and have an amount of at least 1 fen');
  }
  if (b.kind === 'access' && b.amount !== 0) throw new ProtocolError('bad_value', 'record: an access record has no amount');
  if (b.sequence === 1 && !equalBytes(b.previousHash, GENESIS_HASH)) {
    throw new ProtocolError('bad_value', 'record: sequence 1 must follow the genesis hash');
  }
}

function encodeBody(b: RecordBody): Uint8Array {
  checkBody(b);
  if (b.evidence.length > RECORD_EVIDENCE_MAX_BYTES) throw new ProtocolError('too_large', `record: evidence ${b.evidence.length} bytes`);
  const w = new Writer(128 + b.evidence.length);
  writeHeader(w, 'record');
  w.u32(b.terminalId, 'terminal_id').u32(b.sequence, 'sequence').bytes(b.previousHash, HASH_BYTES, 'previous_hash');
  w.u32(b.time, 'time');
  w.u8(id(RECORD_KINDS, b.kind), 'kind').u8(id(DECISION_PATHS, b.path), 'path');
  w.u8(id(MEDIA, b.medium), 'medium').u8(id(OUTCOMES, b.outcome), 'outcome');
  w.u32(b.amount, 'amount').u32(b.merchantId, 'merchant_id');
  w.u32(b.trustListVersion, 'trust_list_version').u32(b.denyListVersion, 'deny_list_version').u32(b.policyVersion, 'policy_version');
  w.u16(b.evidence.length, 'evidence_length').bytes(b.evidence, undefined, 'evidence');
  w.u8(SUITE_ID[b.terminalSuite], 'terminal_suite');
  return w.finish();
}

export async function signRecord(body: RecordBody, terminal: Signer): Promise<TerminalRecord> {
  if (terminal.suite !== body.terminalSuite) throw new ProtocolError('unknown_suite', 'record: terminal signer suite differs');
  const signed = encodeBody(body);
  const signature = await terminal.sign(concatBytes(RECORD_LABEL, signed));
  const bytes = concatBytes(signed, signature);
  return { ...body, signature, bytes, signed: bytes.subarray(0, signed.length) };
}

function readRecord(r: Reader): TerminalRecord {
  const start = r.position;
  readHeader(r, 'record');
  const terminalId = r.u32('terminal_id');
  const sequence = r.u32('sequence');
  const previousHash = r.bytesView(HASH_BYTES, 'previous_hash');
  const time = r.u32('time');
  const kind = pick(RECORD_KINDS, r.u8('kind'), 'kind');
  const path = pick(DECISION_PATHS, r.u8('path'), 'path');
  const medium = pick(MEDIA, r.u8('medium'), 'medium');
  const outcome = pick(OUTCOMES, r.u8('outcome'), 'outcome');
  const amount = fenNonNegative(r.u32('amount'));
  const merchantId = r.u32('merchant_id');
  const trustListVersion = r.u32('trust_list_version');
  const denyListVersion = r.u32('deny_list_version');
  const policyVersion = r.u32('policy_version');
  const evidenceLength = r.u16('evidence_length');
  if (evidenceLength > RECORD_EVIDENCE_MAX_BYTES) throw new ProtocolError('too_large', `record: evidence ${evidenceLength} bytes`);
  const evidence = r.bytesView(evidenceLength, 'evidence');
  const terminalSuite = suiteFromId(r.u8('terminal_suite'), 'terminal_suite');
  const signed = r.since(start);
  const signature = r.bytesView(SIGNATURE_BYTES, 'signature');
  const body: RecordBody = {
    terminalId,
    sequence,
    previousHash,
    time,
    kind,
    path,
    medium,
    outcome,
    amount,
    merchantId,
    trustListVersion,
    denyListVersion,
    policyVersion,
    evidence,
    terminalSuite,
  };
  checkBody(body);
  return { ...body, signature, bytes: r.since(start), signed };
}

export function decodeRecord(input: Uint8Array): TerminalRecord {
  const bytes = input.slice();
  const r = new Reader(bytes, 'record');
  const rec = readRecord(r);
  r.end();
  return rec;
}

export async function verifyRecordSignature(rec: TerminalRecord, terminalPublicKey: Uint8Array, crypto: CryptoProvider): Promise<void> {
  const ok = await crypto.suite(rec.terminalSuite).verify(terminalPublicKey, concatBytes(RECORD_LABEL, rec.signed), rec.signature);
  if (!ok) throw new ProtocolError('bad_signature', `record ${rec.terminalId}/${rec.sequence}: terminal signature`);
}

/** The chain hash of a record: SHA-256 over its full bytes, signature included. */
export function recordHash(rec: { readonly bytes: Uint8Array }, crypto: CryptoProvider): Uint8Array {
  return crypto.sha256(rec.bytes);
}

/**
 * Checks that `records` continue a chain whose last known record had sequence `afterSequence` and
 * hash `afterHash`: consecutive sequences and each previous-hash equal to the hash before it.
 * Returns the hash of the last record.
 */
export function verifyChain(
  records: readonly TerminalRecord[],
  afterSequence: number,
  afterHash: Uint8Array,
  crypto: CryptoProvider,
): Uint8Array {
  let seq = afterSequence;
  let hash = afterHash;
  for (const rec of records) {
    if (rec.sequence !== seq + 1) throw new ProtocolError('bad_value', `chain: sequence ${rec.sequence} after ${seq}`);
    if (!equalBytes(rec.previousHash, hash))
      throw new ProtocolError('bad_value', `chain: record ${rec.sequence} does not follow its predecessor`);
    seq = rec.sequence;
    hash = recordHash(rec, crypto);
  }
  return hash;
}

export interface UploadBatch {
  readonly terminalId: number;
  readonly records: readonly TerminalRecord[];
  readonly bytes: Uint8Array;
}

/** Frames contiguous records of one terminal for upload. */
export function encodeUploadBatch(terminalId: number, records: readonly TerminalRecord[]): Uint8Array {
  checkBatch(terminalId, records);
  let size = 7;
  for (const rec of records) size += 2 + rec.bytes.length;
  if (size > BATCH_MAX_BYTES) throw new ProtocolError('too_large', `batch: ${size} bytes`);
  const w = new Writer(size);
  writeHeader(w, 'uploadBatch');
  w.u32(terminalId, 'terminal_id').u16(records.length, 'count');
  for (const rec of records) w.u16(rec.bytes.length, 'record_length').bytes(rec.bytes, undefined, 'record');
  return w.finish();
}

function checkBatch(terminalId: number, records: readonly TerminalRecord[]): void {
  if (records.length < 1 || records.length > BATCH_RECORDS_MAX) throw new ProtocolError('bad_value', `batch: ${records.length} records`);
  let previous: number | undefined;
  for (const rec of records) {
    if (rec.terminalId !== terminalId)
      throw new ProtocolError('bad_value', `batch: record of terminal ${rec.terminalId} in batch of ${terminalId}`);
    if (previous !== undefined && rec.sequence !== previous + 1) {
      throw new ProtocolError('bad_value', `batch: sequence ${rec.sequence} after ${previous} (batches are contiguous)`);
    }
    previous = rec.sequence;
  }
}

export function decodeUploadBatch(input: Uint8Array): UploadBatch {
  if (input.length > BATCH_MAX_BYTES) throw new ProtocolError('too_large', `batch: ${input.length} bytes`);
  const bytes = input.slice();
  const r = new Reader(bytes, 'batch');
  readHeader(r, 'uploadBatch');
  const terminalId = r.u32('terminal_id');
  const count = r.u16('count');
  if (count < 1 || count > BATCH_RECORDS_MAX) throw new ProtocolError('bad_value', `batch: ${count} records`);
  const records: TerminalRecord[] = [];
  for (let i = 0; i < count; i++) {
    const length = r.u16('record_length');
    const inner = new Reader(r.bytesView(length, 'record'), `batch.record[${i}]`);
    records.push(readRecord(inner));
    inner.end();
  }
  r.end();
  checkBatch(terminalId, records);
  return { terminalId, records, bytes };
}
