/**
 * Clearing (DESIGN §8): turns the records intake holds into money, exactly once.
 *
 * A run takes up to `limit` pending payment records that lie within their terminal's acknowledged
 * (unbroken, authenticated) chain, and:
 *   1. outside any transaction: decodes each record's evidence (the code as scanned) and verifies the
 *      credential's issuer signature (cached per credential) and the code's device signature;
 *   2. in ONE transaction, with a fixed number of statements per run: re-reads which of them are
 *      still pending (another process may have cleared them), checks each against the terminal,
 *      the credential, the deny lists and revocations as they stood at the record's time, claims its
 *      code in `used_codes` (a code already claimed is a replay), links online-authorized payments
 *      instead of charging them twice, funds the rest in the order subsidy → cash → school credit
 *      line → operator's advance (the holder is then in arrears), posts one ledger entry per paid
 *      record (reference `record:<terminal>:<sequence>`, unique in the ledger: a second posting is
 *      impossible even if two processes raced), flags what needs a person, and marks the records.
 *
 * Who is paid (CLEARING_RULES): a merchant whose terminal followed the rules is always paid; a
 * replay at another terminal or a payment after a revocation the terminal could not yet know of is
 * paid from the loss reserve (or, for a holder deny-listed for arrears, charged to that holder);
 * a record whose terminal broke a rule it could check (an expired credential, a stale code, an
 * amount over the per-payment limit, a deny-listed credential on the list it held, a replay at the
 * same terminal) is not paid. Every flag keeps the record's bytes and, for a replay, the first use.
 */
import {
  type Code,
  type CryptoProvider,
  type CredentialCache,
  decodeCode,
  decodeRecord,
  fen,
  isProtocolError,
  type TerminalRecord,
  type TrustListBody,
  verifyCodeSignature,
  verifyCredentialSignature,
} from '@duet/protocol';
import type { Column, Db, Dialect, Migration, Queryable, Row } from './db/db.js';
import {
  credit,
  debit,
  type HolderAccounts,
  holderBalancesMany,
  int,
  merchantPayables,
  type EntryId,
  type NewEntry,
  type Posting,
  postMany,
  reverse,
  systemAccount,
} from './ledger.js';
import { ApiError } from './errors.js';
import { LEDGER_BATCH_ENTRIES_MAX } from './limits.js';
import { creditLimitsOf } from './purses.js';
import type { RiskSettings } from './settings.js';
import type { SigningKeys } from './signing-keys.js';

export const clearingMigrations: Migration[] = [
  {
    id: 'clearing/000-one-entry-per-record',
    // A record is paid once whichever way: as the holder's payment or from the loss reserve. The
    // ledger's own UNIQUE (kind, reference) cannot see across the two kinds; this index can.
    sql: () => [
      "CREATE UNIQUE INDEX ledger_entries_one_per_record ON ledger_entries (reference) WHERE kind IN ('offline_payment', 'loss_payment')",
    ],
  },
  {
    id: 'clearing/001-flags-and-links',
    sql: (d: Dialect) => [
      `CREATE TABLE clearing_flags (
        id ${d.serialKey},
        terminal_id ${d.int} NOT NULL,
        sequence ${d.int} NOT NULL,
        reason TEXT NOT NULL,
        paid ${d.int} NOT NULL CHECK (paid IN (0, 1)),
        bears TEXT NOT NULL,
        amount ${d.int} NOT NULL,
        holder_id ${d.int},
        detail TEXT NOT NULL,
        evidence ${d.bytes} NOT NULL,
        related_terminal ${d.int},
        related_sequence ${d.int},
        related_authorization ${d.int},
        at ${d.int} NOT NULL,
        resolved_at ${d.int},
        resolved_by TEXT,
        resolution TEXT,
        UNIQUE (terminal_id, sequence, reason)
      )`,
      'CREATE INDEX clearing_flags_by_reason ON clearing_flags (reason, id)',
      // Which record spent a code offline: the first use, kept as evidence for a replay.
      `ALTER TABLE used_codes ADD COLUMN sequence ${d.int}`,
      `ALTER TABLE records ADD COLUMN cleared_at ${d.int}`,
      `ALTER TABLE records ADD COLUMN holder_id ${d.int}`,
      'CREATE INDEX records_by_holder ON records (holder_id, time)',
      `ALTER TABLE credentials ADD COLUMN revoked_at ${d.int}`,
      `ALTER TABLE terminals ADD COLUMN revoked_at ${d.int}`,
      // Which record an online approval was linked to; an approval whose record never came is reversed.
      `ALTER TABLE online_authorizations ADD COLUMN record_sequence ${d.int}`,
      `ALTER TABLE online_authorizations ADD COLUMN reversed_at ${d.int}`,
      `ALTER TABLE online_authorizations ADD COLUMN reversal_entry ${d.int}`,
      `CREATE TABLE clearing_runs (
        id ${d.serialKey},
        started_at ${d.int} NOT NULL,
        finished_at ${d.int} NOT NULL,
        records ${d.int} NOT NULL,
        posted ${d.int} NOT NULL,
        linked ${d.int} NOT NULL,
        refused ${d.int} NOT NULL,
        flagged ${d.int} NOT NULL,
        paid_fen ${d.int} NOT NULL,
        loss_fen ${d.int} NOT NULL,
        advance_fen ${d.int} NOT NULL
      )`,
    ],
  },
  {
    id: 'clearing/002-unclaimed-approvals',
    // The approvals without a record, read every minute to reverse those long unclaimed: the
    // partial index holds only them, so the read stays small however many approvals were linked.
    sql: () => [
      'CREATE INDEX online_authorizations_unclaimed ON online_authorizations (authorized_at) WHERE record_sequence IS NULL AND reversed_at IS NULL',
    ],
  },
];

/** Record states in `records.cleared`. */
export const RECORD_STATES = ['pending', 'posted', 'linked', 'refused', 'access'] as const;
export type RecordState = (typeof RECORD_STATES)[number];

/** Who carries a flagged payment's cost. */
export type Bearer = 'holder' | 'loss_reserve' | 'none';

/**
 * Every clearing flag, whether the merchant is paid, and who bears the cost. English and Chinese
 * words for people (console, statements); the code is stable.
 */
export const CLEARING_RULES = {
  replay: {
    paid: true,
    bears: 'loss_reserve',
    en: 'The same code was already spent at another terminal or online (replay); the terminal could not know',
    zh: '同一付款码已在其他终端或联机使用过（重放）；本终端无从得知',
  },
  replay_same_terminal: {
    paid: false,
    bears: 'none',
    en: 'The same code was spent twice at one terminal, which should have refused it',
    zh: '同一付款码在同一终端使用两次，终端本应拒绝',
  },
  after_revocation: {
    paid: true,
    bears: 'loss_reserve',
    en: 'Paid after the credential or holder was revoked, before the terminal could hold that deny list',
    zh: '凭证或持卡人已被撤销，但终端尚未获得该黑名单时发生的支付',
  },
  deny_listed: {
    paid: false,
    bears: 'none',
    en: 'The deny list the terminal held already refused this credential or holder',
    zh: '终端持有的黑名单已包含该凭证或持卡人',
  },
  credential_expired: {
    paid: false,
    bears: 'none',
    en: "The credential was not valid at the payment's time",
    zh: '支付时凭证不在有效期内',
  },
  stale_code: {
    paid: false,
    bears: 'none',
    en: "The code's time is outside the freshness window around the payment's time",
    zh: '付款码时间超出支付时刻的有效窗口',
  },
  over_limit: {
    paid: false,
    bears: 'none',
    en: "The amount is over the credential's per-payment limit",
    zh: '金额超过凭证的单笔限额',
  },
  out_of_scope: {
    paid: false,
    bears: 'none',
    en: "The terminal's scene is not in the credential's scopes",
    zh: '终端场景不在凭证允许范围内',
  },
  wrong_merchant: {
    paid: false,
    bears: 'none',
    en: "The record names a merchant other than the terminal's",
    zh: '记录中的商户与终端所属商户不符',
  },
  terminal_revoked: {
    paid: false,
    bears: 'none',
    en: 'The record was made after its terminal was revoked',
    zh: '记录产生于终端被撤销之后',
  },
  bad_evidence: {
    paid: false,
    bears: 'none',
    en: 'The code in the record does not verify (forged, altered, or signed by an untrusted key)',
    zh: '记录中的付款码验证失败（伪造、篡改或签名密钥不受信任）',
  },
  unsupported_medium: {
    paid: false,
    bears: 'none',
    en: 'The medium of this record has no evidence verifier on this platform',
    zh: '本平台无法核验该介质的凭据',
  },
  unknown_holder: {
    paid: false,
    bears: 'none',
    en: "The credential's holder has no accounts on this platform",
    zh: '凭证对应的持卡人在本平台没有账户',
  },
  online_unmatched: {
    paid: false,
    bears: 'none',
    en: 'The record says the platform authorized it online, but there is no such authorization',
    zh: '记录声称已联机授权，但平台无此授权',
  },
  late_record: {
    paid: true,
    bears: 'holder',
    en: 'The record of an online approval arrived after the approval had been reversed as unclaimed; charged again now',
    zh: '联机授权因长期无记录已被冲正，之后记录才到达；现重新扣款',
  },
  amount_mismatch: {
    paid: true,
    bears: 'none',
    en: 'The amount differs from the online authorization; the authorized amount stands',
    zh: '金额与联机授权不一致，以授权金额为准',
  },
  time_future: {
    paid: true,
    bears: 'none',
    en: "The record's time is after it reached the platform: the terminal clock runs ahead",
    zh: '记录时间晚于上传时间：终端时钟偏快',
  },
  time_backwards: {
    paid: true,
    bears: 'none',
    en: "The record's time is earlier than the record before it by more than the allowed skew",
    zh: '记录时间比上一条记录早，且超过允许的时钟偏差',
  },
  advance: {
    paid: true,
    bears: 'holder',
    en: "The holder's purses and credit line fell short; the operator advanced the rest and the holder is in arrears",
    zh: '余额与授信不足，运营方垫付差额，持卡人欠款',
  },
} as const satisfies Record<string, { paid: boolean; bears: Bearer; en: string; zh: string }>;
export type ClearingReason = keyof typeof CLEARING_RULES;

export interface ClearingDeps {
  readonly crypto: CryptoProvider;
  /** The current trust list (it keeps retired keys until what they signed has expired). */
  readonly trust: () => Promise<TrustListBody>;
  readonly settings: () => Promise<RiskSettings>;
  /** Credentials whose issuer signature was verified; shared across runs. */
  readonly cache: CredentialCache;
  readonly nowS: () => number;
  /**
   * Called in the run's transaction with the holders whose arrears grew (recovery: case, deny list,
   * and a new signed deny list so terminals learn at once), with the signing keys read before it.
   */
  readonly onArrears?: (q: Queryable, holderIds: readonly number[], nowS: number, keys: SigningKeys | undefined) => Promise<void>;
  /** The signing keys, read before each run's transaction (the key store must not be read inside one). */
  readonly signingKeys?: () => Promise<SigningKeys>;
}

export interface ClearingResult {
  readonly records: number;
  readonly posted: number;
  readonly linked: number;
  readonly refused: number;
  readonly flagged: number;
  /** Paid to merchants in this run, fen (online-linked payments were paid when authorized). */
  readonly paidFen: number;
  readonly lossFen: number;
  readonly advanceFen: number;
}

const EMPTY: ClearingResult = { records: 0, posted: 0, linked: 0, refused: 0, flagged: 0, paidFen: 0, lossFen: 0, advanceFen: 0 };

/** How many records one run takes at most: one transaction, LEDGER_BATCH_ENTRIES_MAX entries. */
export const CLEARING_BATCH_MAX = LEDGER_BATCH_ENTRIES_MAX;

/** An online approval with no record after this many times the policy's longest offline window is reversed. */
export const UNCLAIMED_AFTER_OFFLINE_WINDOWS = 2;

interface Candidate {
  readonly terminalId: number;
  readonly sequence: number;
  readonly receivedAt: number;
  readonly record: TerminalRecord;
  readonly code: Code | undefined;
  /** Why the evidence failed, or undefined when it verified. */
  readonly evidenceError: string | undefined;
  readonly unsupported: boolean;
}

/** Where a run's reading starts: after this record (keyset order: terminal, then sequence). */
export interface ClearingCursor {
  readonly terminalId: number;
  readonly sequence: number;
}

const START: ClearingCursor = { terminalId: 0, sequence: 0 };

/** A run read and checked, not yet decided: what `commitRun` needs. */
export interface PreparedRun {
  readonly startedAt: number;
  readonly candidates: readonly Candidate[];
  /** The last record read: the next run reads after it. */
  readonly last: ClearingCursor | undefined;
}

/**
 * Reads up to `limit` pending records after `after` and checks their evidence (signatures on the
 * thread pool). No transaction: its result may be stale by the time it is committed, which
 * `commitRun` re-checks.
 */
export async function prepareRun(
  db: Db,
  deps: ClearingDeps,
  after: ClearingCursor = START,
  limit = CLEARING_BATCH_MAX,
): Promise<PreparedRun> {
  const startedAt = deps.nowS();
  const rows = await pendingRecords(db, Math.min(limit, CLEARING_BATCH_MAX), after);
  if (rows.length === 0) return { startedAt, candidates: [], last: undefined };
  const trust = await deps.trust();
  const candidates = await Promise.all(rows.map((r) => checkEvidence(r, trust, deps)));
  const end = candidates[candidates.length - 1];
  return { startedAt, candidates, last: end === undefined ? undefined : { terminalId: end.terminalId, sequence: end.sequence } };
}

/** Decides and posts a prepared run in one transaction (see the module comment). */
export async function commitRun(db: Db, deps: ClearingDeps, run: PreparedRun): Promise<ClearingResult> {
  if (run.candidates.length === 0) return EMPTY;
  const settings = await deps.settings();
  const keys = deps.signingKeys === undefined ? undefined : await deps.signingKeys();
  return db.tx(async (q) => {
    const result = await decideAndPost(q, db.dialect, run.candidates, settings, deps, keys);
    if (result.records > 0) {
      await q.run(
        'INSERT INTO clearing_runs (started_at, finished_at, records, posted, linked, refused, flagged, paid_fen, loss_fen, advance_fen) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
        [
          run.startedAt,
          deps.nowS(),
          result.records,
          result.posted,
          result.linked,
          result.refused,
          result.flagged,
          result.paidFen,
          result.lossFen,
          result.advanceFen,
        ],
      );
    }
    return result;
  });
}

/**
 * Clears everything pending from `from` on, wrapping round to the start once, as a pipeline: the
 * next run's records are read and their signatures checked on the thread pool while the current
 * run's transaction works on the event loop. Ends when a full pass from the start finds nothing.
 */
export async function clearAll(
  db: Db,
  deps: ClearingDeps,
  from: ClearingCursor = START,
  shouldStop: () => boolean = () => false,
): Promise<ClearingResult> {
  let total = EMPTY;
  let wrapped = from.terminalId === 0 && from.sequence === 0;
  let next = prepareRun(db, deps, from);
  for (;;) {
    const current = await next;
    if (current.candidates.length === 0 || current.last === undefined) {
      if (wrapped || shouldStop()) return total;
      wrapped = true;
      next = prepareRun(db, deps, START);
      continue;
    }
    // Read and check the next run before committing this one: on SQLite its read queues ahead of
    // the transaction, and its signatures are verified while the transaction runs.
    next = shouldStop() ? Promise.resolve({ startedAt: 0, candidates: [], last: undefined }) : prepareRun(db, deps, current.last);
    try {
      total = add(total, await commitRun(db, deps, current));
    } catch (e) {
      // The run read ahead is dropped with this one: its failure (storage down, most likely) must
      // not surface later as an unhandled rejection.
      next.catch(() => {});
      throw e;
    }
  }
}

/** Pending payment records within their terminal's acknowledged chain, after `after` in (terminal, sequence) order. */
async function pendingRecords(q: Queryable, limit: number, after: ClearingCursor): Promise<Row[]> {
  return q.all(
    `SELECT r.terminal_id, r.sequence, r.bytes, r.received_at FROM records r JOIN intake_acks a ON a.terminal_id = r.terminal_id
     WHERE r.cleared = 'pending' AND r.sequence <= a.acked_through AND (r.terminal_id > ? OR (r.terminal_id = ? AND r.sequence > ?))
     ORDER BY r.terminal_id, r.sequence LIMIT ?`,
    [after.terminalId, after.terminalId, after.sequence, limit],
  );
}

async function checkEvidence(row: Row, trust: TrustListBody, deps: ClearingDeps): Promise<Candidate> {
  const record = decodeRecord(row.bytes as Uint8Array);
  const base = {
    terminalId: int(row.terminal_id, 'terminal'),
    sequence: int(row.sequence, 'sequence'),
    receivedAt: int(row.received_at, 'received'),
    record,
  };
  if (record.medium !== 'qr' && record.medium !== 'tap') return { ...base, code: undefined, evidenceError: undefined, unsupported: true };
  let code: Code | undefined;
  try {
    code = decodeCode(record.evidence);
    await verifyCredentialSignature(code.credential, trust, deps.crypto, deps.cache);
    await verifyCodeSignature(code, deps.crypto);
    return { ...base, code, evidenceError: undefined, unsupported: false };
  } catch (e) {
    if (!isProtocolError(e)) throw e;
    return { ...base, code, evidenceError: `${e.code}: ${e.detail}`, unsupported: false };
  }
}

interface Decision {
  readonly c: Candidate;
  state: RecordState;
  /** Who pays: the holder's purses (funding order), the loss reserve, or nobody (refused or linked). */
  charge: 'holder' | 'loss_reserve' | 'none';
  /** The code's claim is already held by an online approval of this terminal that was reversed: charge without claiming. */
  reclaim: boolean;
  readonly flags: { reason: ClearingReason; detail: string; related?: { terminal?: number; sequence?: number; authorization?: number } }[];
  holderId: number | undefined;
}

const flagOf = (d: Decision, reason: ClearingReason, detail: string, related?: Decision['flags'][number]['related']): void => {
  d.flags.push(related === undefined ? { reason, detail } : { reason, detail, related });
};

/** Refuses the record (not paid) with `reason`. */
const refuse = (d: Decision, reason: ClearingReason, detail: string, related?: Decision['flags'][number]['related']): void => {
  d.state = 'refused';
  d.charge = 'none';
  flagOf(d, reason, detail, related);
};

async function decideAndPost(
  q: Queryable,
  dialect: Dialect,
  all: readonly Candidate[],
  s: RiskSettings,
  deps: ClearingDeps,
  keys: SigningKeys | undefined,
): Promise<ClearingResult> {
  const nowS = deps.nowS();
  const candidates = await stillPending(q, all);
  if (candidates.length === 0) return EMPTY;
  const decisions: Decision[] = candidates.map((c) => ({
    c,
    state: 'posted',
    charge: 'holder',
    reclaim: false,
    flags: [],
    holderId: c.code?.credential.holder,
  }));

  const terminals = await byId(
    q,
    'SELECT id, merchant_id, scene, revoked_at FROM terminals WHERE id IN',
    unique(candidates.map((c) => c.terminalId)),
  );
  const serials = unique(candidates.flatMap((c) => (c.code === undefined ? [] : [c.code.credential.serial])));
  const credentials = await byId(q, 'SELECT serial AS id, revoked_at FROM credentials WHERE serial IN', serials);
  const deny = await denyHistory(q, serials, unique(decisions.flatMap((d) => (d.holderId === undefined ? [] : [d.holderId]))));
  const previousTimes = await previousRecordTimes(q, candidates);

  // Per-record rules, in the order a terminal applies them, then time anomalies (flag only).
  for (const d of decisions) {
    const { c } = d;
    const r = c.record;
    const t = terminals.get(c.terminalId);
    if (c.unsupported) refuse(d, 'unsupported_medium', `medium ${r.medium}`);
    else if (c.evidenceError !== undefined || c.code === undefined) refuse(d, 'bad_evidence', c.evidenceError ?? 'no code');
    else if (t === undefined || int(t.merchant_id, 'merchant') !== r.merchantId)
      refuse(d, 'wrong_merchant', `record merchant ${r.merchantId}, terminal merchant ${String(t?.merchant_id)}`);
    else if (t.revoked_at !== null && int(t.revoked_at, 'revoked_at') <= r.time)
      refuse(d, 'terminal_revoked', `terminal revoked at ${String(t.revoked_at)}, record time ${r.time}`);
    else {
      const cred = c.code.credential;
      const scene = String(t.scene);
      if (r.time < cred.notBefore - s.clockSkewS || r.time > cred.notAfter + s.clockSkewS)
        refuse(d, 'credential_expired', `valid ${cred.notBefore}..${cred.notAfter}, record time ${r.time}`);
      else if (c.code.time > r.time + s.clockSkewS || c.code.time < r.time - s.codeWindowS - s.clockSkewS)
        refuse(d, 'stale_code', `code time ${c.code.time}, record time ${r.time}, window ${s.codeWindowS} s`);
      else if (r.amount > cred.limits.perPayment) refuse(d, 'over_limit', `amount ${r.amount} > per-payment ${cred.limits.perPayment}`);
      else if (!(cred.scopes as readonly string[]).includes(scene))
        refuse(d, 'out_of_scope', `scene ${scene}, scopes ${cred.scopes.join(',')}`);
      else {
        const revokedAt = credentials.get(cred.serial)?.revoked_at;
        const denial = deniedAt(deny, cred.serial, cred.holder, r.time);
        if (denial !== undefined && denial.publishedIn !== null && r.denyListVersion >= denial.publishedIn)
          refuse(
            d,
            'deny_listed',
            `${denial.type} ${denial.id} on deny list ${denial.publishedIn}; the terminal held ${r.denyListVersion}`,
          );
        else if (denial !== undefined || (revokedAt !== null && revokedAt !== undefined && int(revokedAt, 'revoked_at') <= r.time)) {
          // The terminal could not know yet. A holder deny-listed for arrears pays as usual (the debt grows).
          d.charge = denial?.reason === 'arrears' ? 'holder' : 'loss_reserve';
          flagOf(
            d,
            'after_revocation',
            denial === undefined
              ? `credential revoked at ${String(revokedAt)}`
              : `${denial.type} ${denial.id} denied at ${denial.at} (${denial.reason})`,
          );
        }
      }
    }
    if (d.state !== 'refused') {
      if (r.time > c.receivedAt + s.clockSkewS) flagOf(d, 'time_future', `record time ${r.time}, received ${c.receivedAt}`);
      const prev = previousTimes.get(`${c.terminalId}/${c.sequence - 1}`);
      if (prev !== undefined && r.time < prev - s.clockSkewS) flagOf(d, 'time_backwards', `record time ${r.time}, record before ${prev}`);
    }
  }

  await linkOnline(q, decisions);
  await claimCodes(q, decisions, nowS);
  const money = await fundAndPost(q, dialect, decisions, nowS);
  if (money.arrearsHolders.length > 0 && deps.onArrears !== undefined) await deps.onArrears(q, money.arrearsHolders, nowS, keys);
  const flagged = await writeFlags(q, decisions, nowS);
  await markRecords(q, decisions, nowS);
  const count = (st: RecordState) => decisions.filter((d) => d.state === st).length;
  return {
    records: decisions.length,
    posted: count('posted'),
    linked: count('linked'),
    refused: count('refused'),
    flagged,
    paidFen: money.paidFen,
    lossFen: money.lossFen,
    advanceFen: money.advanceFen,
  };
}

function unique(xs: readonly number[]): number[] {
  return [...new Set(xs)];
}

const IN_CHUNK = 500;

/** Rows keyed by their `id` column, for `sqlPrefix (?, ?, ...)` over `ids` in chunks. */
async function byId(q: Queryable, sqlPrefix: string, ids: readonly number[]): Promise<Map<number, Row>> {
  const out = new Map<number, Row>();
  for (let i = 0; i < ids.length; i += IN_CHUNK) {
    const part = ids.slice(i, i + IN_CHUNK);
    for (const r of await q.all(`${sqlPrefix} (${part.map(() => '?').join(', ')})`, part)) out.set(int(r.id, 'id'), r);
  }
  return out;
}

/** The candidates still pending inside this transaction (another process may have cleared some). */
async function stillPending(q: Queryable, all: readonly Candidate[]): Promise<Candidate[]> {
  const pending = new Set<string>();
  const byTerminal = new Map<number, number[]>();
  for (const c of all) {
    const seqs = byTerminal.get(c.terminalId);
    if (seqs === undefined) byTerminal.set(c.terminalId, [c.sequence]);
    else seqs.push(c.sequence);
  }
  for (const [terminal, seqs] of byTerminal) {
    let low = Number.POSITIVE_INFINITY;
    let high = 0;
    for (const x of seqs) {
      if (x < low) low = x;
      if (x > high) high = x;
    }
    const rows = await q.all("SELECT sequence FROM records WHERE terminal_id = ? AND sequence BETWEEN ? AND ? AND cleared = 'pending'", [
      terminal,
      low,
      high,
    ]);
    for (const r of rows) pending.add(`${terminal}/${int(r.sequence, 'sequence')}`);
  }
  return all.filter((c) => pending.has(`${c.terminalId}/${c.sequence}`));
}

interface Denial {
  readonly type: 'credential' | 'holder';
  readonly id: number;
  readonly at: number;
  /** The deny-list version that first carried it, or null while unpublished. */
  readonly publishedIn: number | null;
  /** A remove: the entry ended here, not denied from this change on. */
  readonly lifted: boolean;
  readonly reason: string;
}

/** The deny-list adds and removes of these credentials and holders, oldest first, with current reasons. */
async function denyHistory(q: Queryable, serials: readonly number[], holders: readonly number[]): Promise<Map<string, Denial[]>> {
  const out = new Map<string, Denial[]>();
  for (const [type, ids] of [
    ['credential', serials],
    ['holder', holders],
  ] as const) {
    for (let i = 0; i < ids.length; i += IN_CHUNK) {
      const part = ids.slice(i, i + IN_CHUNK);
      const marks = part.map(() => '?').join(', ');
      const changes = await q.all(`SELECT id, op, at, published_in FROM deny_changes WHERE type = ? AND id IN (${marks}) ORDER BY seq`, [
        type,
        ...part,
      ]);
      if (changes.length === 0) continue;
      const reasons = new Map<number, string>();
      for (const r of await q.all(`SELECT id, reason FROM deny_entries WHERE type = ? AND id IN (${marks})`, [type, ...part]))
        reasons.set(int(r.id, 'id'), String(r.reason));
      for (const ch of changes) {
        const id = int(ch.id, 'id');
        const key = `${type}/${id}`;
        const list = out.get(key) ?? [];
        list.push({
          type,
          id,
          at: int(ch.at, 'at'),
          publishedIn: ch.published_in === null ? null : int(ch.published_in, 'published_in'),
          lifted: ch.op !== 'add',
          reason: reasons.get(id) ?? 'unknown',
        });
        out.set(key, list);
      }
    }
  }
  return out;
}

/** The denial of this credential or holder in force at `time`, if any (the credential's first). */
function deniedAt(history: ReadonlyMap<string, Denial[]>, serial: number, holder: number, time: number): Denial | undefined {
  for (const key of [`credential/${serial}`, `holder/${holder}`]) {
    let current: Denial | undefined;
    for (const ch of history.get(key) ?? []) {
      if (ch.at > time) break;
      current = ch.lifted ? undefined : ch;
    }
    if (current !== undefined) return current;
  }
  return undefined;
}

/** The time of the record just before each candidate's, from the batch or the database. */
async function previousRecordTimes(q: Queryable, candidates: readonly Candidate[]): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const c of candidates) out.set(`${c.terminalId}/${c.sequence}`, c.record.time);
  const firsts = candidates.filter((c) => c.sequence > 1 && !out.has(`${c.terminalId}/${c.sequence - 1}`));
  for (const c of firsts) {
    const r = await q.one('SELECT time FROM records WHERE terminal_id = ? AND sequence = ?', [c.terminalId, c.sequence - 1]);
    if (r !== undefined) out.set(`${c.terminalId}/${c.sequence - 1}`, int(r.time, 'time'));
  }
  return out;
}

const codeKey = (serial: number, counter: number) => `${serial}/${counter}`;

/**
 * Online-authorized payments were charged when approved: the record is linked, not charged again.
 * The same terminal's offline record of a code it had approved online (the answer was lost, the
 * terminal went on offline) is linked the same way. A record that claims an online approval which
 * does not exist is refused.
 */
async function linkOnline(q: Queryable, decisions: Decision[]): Promise<void> {
  const open = decisions.filter((d) => d.state !== 'refused' && d.c.code !== undefined);
  const approvals = new Map<string, Row>();
  for (let i = 0; i < open.length; i += IN_CHUNK) {
    const part = open.slice(i, i + IN_CHUNK);
    const rows = await q.all(
      `SELECT id, terminal_id, serial, counter, amount, reversed_at FROM online_authorizations WHERE ${part.map(() => '(serial = ? AND counter = ?)').join(' OR ')}`,
      part.flatMap((d) => [d.c.code?.credential.serial ?? 0, d.c.code?.counter ?? 0]),
    );
    for (const r of rows) approvals.set(codeKey(int(r.serial, 'serial'), int(r.counter, 'counter')), r);
  }
  const links: [number, number][] = [];
  for (const d of decisions) {
    if (d.state === 'refused' || d.c.code === undefined) continue;
    const a = approvals.get(codeKey(d.c.code.credential.serial, d.c.code.counter));
    const mine = a !== undefined && int(a.terminal_id, 'terminal') === d.c.terminalId;
    if (mine && a.reversed_at !== null) {
      d.reclaim = true;
      flagOf(d, 'late_record', `authorization ${String(a.id)} reversed at ${String(a.reversed_at)}`, { authorization: int(a.id, 'id') });
    } else if (mine) {
      d.state = 'linked';
      d.charge = 'none';
      links.push([int(a.id, 'id'), d.c.sequence]);
      const amount = int(a.amount, 'amount');
      if (amount !== d.c.record.amount)
        flagOf(d, 'amount_mismatch', `record ${d.c.record.amount} fen, authorized ${amount} fen`, { authorization: int(a.id, 'id') });
    } else if (d.c.record.path === 'online') {
      refuse(
        d,
        'online_unmatched',
        'no online authorization of this code by this terminal',
        a === undefined ? undefined : { authorization: int(a.id, 'id') },
      );
    }
  }
  for (const [id, sequence] of links) await q.run('UPDATE online_authorizations SET record_sequence = ? WHERE id = ?', [sequence, id]);
}

/**
 * Claims each paid record's code in used_codes, in one statement; a code already claimed (by an
 * earlier record, another terminal, or online) makes the later record a replay.
 */
async function claimCodes(q: Queryable, decisions: Decision[], nowS: number): Promise<void> {
  const toClaim: Decision[] = [];
  const inBatch = new Map<string, Decision>();
  for (const d of decisions) {
    if (d.state !== 'posted' || d.c.code === undefined || d.reclaim) continue;
    const key = codeKey(d.c.code.credential.serial, d.c.code.counter);
    const first = inBatch.get(key);
    if (first !== undefined) replay(d, first.c.terminalId, first.c.sequence, undefined);
    else {
      inBatch.set(key, d);
      toClaim.push(d);
    }
  }
  const won = new Set<string>();
  for (let i = 0; i < toClaim.length; i += IN_CHUNK) {
    const part = toClaim.slice(i, i + IN_CHUNK);
    const rows = await q.all(
      `INSERT INTO used_codes (serial, counter, via, terminal_id, used_at, sequence) VALUES ${part.map(() => "(?, ?, 'offline', ?, ?, ?)").join(', ')}
       ON CONFLICT (serial, counter) DO NOTHING RETURNING serial, counter`,
      part.flatMap((d) => [d.c.code?.credential.serial ?? 0, d.c.code?.counter ?? 0, d.c.terminalId, nowS, d.c.sequence]),
    );
    for (const r of rows) won.add(codeKey(int(r.serial, 'serial'), int(r.counter, 'counter')));
  }
  const lost = toClaim.filter((d) => !won.has(codeKey(d.c.code?.credential.serial ?? 0, d.c.code?.counter ?? 0)));
  // A reversed approval's code is taken over once by its late record; any other record of it is a replay.
  for (const d of decisions) {
    if (d.state !== 'posted' || !d.reclaim || d.c.code === undefined) continue;
    const n = await q.run(
      "UPDATE used_codes SET via = 'offline', sequence = ? WHERE serial = ? AND counter = ? AND via = 'online' AND terminal_id = ?",
      [d.c.sequence, d.c.code.credential.serial, d.c.code.counter, d.c.terminalId],
    );
    if (n === 0) {
      // Another record of this terminal took the code over first: this one is a replay, not the late record.
      const late = d.flags.findIndex((f) => f.reason === 'late_record');
      if (late >= 0) d.flags.splice(late, 1);
      lost.push(d);
    }
  }
  for (const d of lost) {
    const code = d.c.code;
    if (code === undefined) continue;
    const first = await q.one('SELECT via, terminal_id, sequence FROM used_codes WHERE serial = ? AND counter = ?', [
      code.credential.serial,
      code.counter,
    ]);
    const auth =
      first?.via === 'online'
        ? await q.one('SELECT id FROM online_authorizations WHERE serial = ? AND counter = ?', [code.credential.serial, code.counter])
        : undefined;
    replay(
      d,
      first === undefined ? undefined : int(first.terminal_id, 'terminal'),
      first?.sequence === null || first?.sequence === undefined ? undefined : int(first.sequence, 'sequence'),
      auth === undefined ? undefined : int(auth.id, 'id'),
    );
  }
}

function replay(d: Decision, terminal: number | undefined, sequence: number | undefined, authorization: number | undefined): void {
  const related = {
    ...(terminal === undefined ? {} : { terminal }),
    ...(sequence === undefined ? {} : { sequence }),
    ...(authorization === undefined ? {} : { authorization }),
  };
  const where =
    authorization !== undefined ? `online (authorization ${authorization})` : `terminal ${String(terminal)} record ${String(sequence)}`;
  if (terminal === d.c.terminalId && authorization === undefined) refuse(d, 'replay_same_terminal', `first spent in ${where}`, related);
  else {
    d.charge = 'loss_reserve';
    flagOf(d, 'replay', `first spent ${where}`, related);
  }
}

interface Money {
  readonly paidFen: number;
  readonly lossFen: number;
  readonly advanceFen: number;
  readonly arrearsHolders: number[];
}

/** Funds and posts every paid record, one entry each, in chunks of at most LEDGER_BATCH_ENTRIES_MAX. */
async function fundAndPost(q: Queryable, dialect: Dialect, decisions: Decision[], nowS: number): Promise<Money> {
  const paid = decisions.filter((d) => d.state === 'posted');
  if (paid.length === 0) return { paidFen: 0, lossFen: 0, advanceFen: 0, arrearsHolders: [] };
  const payables = await merchantPayables(q, unique(paid.map((d) => d.c.record.merchantId)));
  const lossReserve = await systemAccount(q, 'loss_reserve');
  const charged = paid.filter((d) => d.charge === 'holder');
  const holderIds = unique(charged.map((d) => d.holderId ?? 0));
  const balances = await holderBalancesMany(q, holderIds, { lockFor: dialect });
  const limits = await creditLimitsOf(q, holderIds);
  const running = new Map<number, { subsidy: number; cash: number; creditUsed: number }>();
  const entries: NewEntry[] = [];
  let paidFen = 0;
  let lossFen = 0;
  let advanceFen = 0;
  const arrears = new Set<number>();
  for (const d of paid) {
    const r = d.c.record;
    const payable = payables.get(r.merchantId);
    if (payable === undefined) throw new Error(`clearing: no payable for merchant ${r.merchantId}`);
    const postings: Posting[] = [];
    if (d.charge === 'loss_reserve') {
      postings.push(debit(lossReserve, fen(r.amount)));
      lossFen += r.amount;
    } else {
      const holder = d.holderId ?? 0;
      const b = balances.get(holder);
      const accounts: HolderAccounts | undefined = b?.accounts;
      if (b === undefined || accounts === undefined) {
        refuse(d, 'unknown_holder', `holder ${holder}`);
        continue;
      }
      const now = running.get(holder) ?? { subsidy: b.subsidy, cash: b.cash, creditUsed: b.creditUsed };
      const headroom = Math.max(0, (limits.get(holder) ?? 0) - now.creditUsed);
      let left: number = r.amount;
      const take = (have: number) => {
        const x = Math.min(have, left);
        left -= x;
        return x;
      };
      const fromSubsidy = take(now.subsidy);
      const fromCash = take(now.cash);
      const fromCredit = take(headroom);
      const fromAdvance = left;
      if (fromSubsidy > 0) postings.push(debit(accounts.subsidy, fen(fromSubsidy)));
      if (fromCash > 0) postings.push(debit(accounts.cash, fen(fromCash)));
      if (fromCredit > 0) postings.push(debit(accounts.creditUsed, fen(fromCredit)));
      if (fromAdvance > 0) {
        postings.push(debit(accounts.arrears, fen(fromAdvance)));
        advanceFen += fromAdvance;
        arrears.add(holder);
        flagOf(d, 'advance', `${fromAdvance} fen advanced by the operator`);
      }
      running.set(holder, { subsidy: now.subsidy - fromSubsidy, cash: now.cash - fromCash, creditUsed: now.creditUsed + fromCredit });
    }
    postings.push(credit(payable, fen(r.amount)));
    paidFen += r.amount;
    entries.push({
      kind: d.charge === 'loss_reserve' ? 'loss_payment' : 'offline_payment',
      reference: `record:${d.c.terminalId}:${d.c.sequence}`,
      postedAtS: nowS,
      effectiveAtS: r.time,
      createdBy: 'clearing',
      postings,
    });
  }
  for (let i = 0; i < entries.length; i += LEDGER_BATCH_ENTRIES_MAX) await postMany(q, entries.slice(i, i + LEDGER_BATCH_ENTRIES_MAX));
  return { paidFen, lossFen, advanceFen, arrearsHolders: [...arrears] };
}

const FLAG_COLUMNS: readonly Column[] = [
  { name: 'terminal_id', type: 'int' },
  { name: 'sequence', type: 'int' },
  { name: 'reason', type: 'text' },
  { name: 'paid', type: 'int' },
  { name: 'bears', type: 'text' },
  { name: 'amount', type: 'int' },
  { name: 'holder_id', type: 'int' },
  { name: 'detail', type: 'text' },
  { name: 'evidence', type: 'bytes' },
  { name: 'related_terminal', type: 'int' },
  { name: 'related_sequence', type: 'int' },
  { name: 'related_authorization', type: 'int' },
  { name: 'at', type: 'int' },
];

async function writeFlags(q: Queryable, decisions: readonly Decision[], nowS: number): Promise<number> {
  const rows = decisions.flatMap((d) =>
    d.flags.map((f) => {
      const rule = CLEARING_RULES[f.reason];
      const bears: Bearer =
        f.reason === 'advance' ? 'holder' : d.state === 'refused' ? 'none' : d.charge === 'loss_reserve' ? 'loss_reserve' : rule.bears;
      return [
        d.c.terminalId,
        d.c.sequence,
        f.reason,
        d.state === 'refused' ? 0 : 1,
        bears,
        d.c.record.amount,
        d.holderId ?? null,
        f.detail,
        d.c.record.bytes,
        f.related?.terminal ?? null,
        f.related?.sequence ?? null,
        f.related?.authorization ?? null,
        nowS,
      ];
    }),
  );
  if (rows.length === 0) return 0;
  return q.insertMany('clearing_flags', FLAG_COLUMNS, rows, { onConflict: 'ignore' });
}

/** Marks the records with their outcome: one statement per outcome and terminal run of sequences. */
async function markRecords(q: Queryable, decisions: readonly Decision[], nowS: number): Promise<void> {
  const sorted = [...decisions].sort((a, b) => a.c.terminalId - b.c.terminalId || a.c.sequence - b.c.sequence);
  let i = 0;
  while (i < sorted.length) {
    const first = sorted[i];
    if (first === undefined) break;
    let j = i + 1;
    while (j < sorted.length) {
      const next = sorted[j];
      const prev = sorted[j - 1];
      if (
        next === undefined ||
        prev === undefined ||
        next.c.terminalId !== first.c.terminalId ||
        next.state !== first.state ||
        next.c.sequence !== prev.c.sequence + 1
      )
        break;
      j++;
    }
    const last = sorted[j - 1] ?? first;
    await q.run(
      "UPDATE records SET cleared = ?, cleared_at = ? WHERE terminal_id = ? AND sequence BETWEEN ? AND ? AND cleared = 'pending'",
      [first.state, nowS, first.c.terminalId, first.c.sequence, last.c.sequence],
    );
    i = j;
  }
}

/**
 * Reverses online approvals whose record never came: the terminal journals a payment before it
 * accepts, so an approval without a record after `afterS` (twice the longest a terminal may stay
 * offline) means the answer was lost and the payer was not served. The holder gets the money back
 * (a reversing entry); a record that still arrives later is charged again (`late_record`). Each
 * approval in its own transaction; one the ledger refuses to reverse is left for a person.
 */
export async function reverseUnclaimedApprovals(db: Db, nowS: number, afterS: number, limit = 200): Promise<number> {
  const rows = await db.all(
    'SELECT id, entry_id FROM online_authorizations WHERE record_sequence IS NULL AND reversed_at IS NULL AND authorized_at < ? ORDER BY id LIMIT ?',
    [nowS - afterS, limit],
  );
  let reversed = 0;
  for (const r of rows) {
    const id = int(r.id, 'id');
    try {
      const done = await db.tx(async (q) => {
        const still = await q.one('SELECT id FROM online_authorizations WHERE id = ? AND record_sequence IS NULL AND reversed_at IS NULL', [
          id,
        ]);
        if (still === undefined) return false;
        const entry = await reverse(q, int(r.entry_id, 'entry') as EntryId, {
          reason: `online approval ${id}: no record from the terminal within ${afterS} s; the payer was not served`,
          by: 'clearing',
          postedAtS: nowS,
        });
        await q.run('UPDATE online_authorizations SET reversed_at = ?, reversal_entry = ? WHERE id = ?', [nowS, entry, id]);
        return true;
      });
      if (done) reversed++;
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
    }
  }
  return reversed;
}

/**
 * Runs clearing in the background: as long as records are pending, run after run; then it waits
 * `intervalMs` or until kicked (an upload arrived). One run at a time per process; several
 * processes may each run one.
 */
export class Clearer {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  /** Background runs happen only between start() and stop() (a platform opened with `clearing: false` never clears by itself); drain() works either way. */
  private stopped = true;
  private again = false;
  private lastError: unknown;
  private lastReversalS = 0;

  constructor(
    private readonly db: Db,
    private readonly deps: ClearingDeps,
    private readonly opts: {
      readonly intervalMs?: number;
      readonly onError?: (e: unknown) => void;
      readonly onRun?: (r: ClearingResult) => void;
    } = {},
  ) {}

  start(): void {
    this.stopped = false;
    this.schedule(0);
  }

  /** Asks for a run soon (an upload arrived). */
  kick(): void {
    if (this.stopped) return;
    if (this.running !== undefined) this.again = true;
    else this.schedule(0);
  }

  /** Clears until nothing is pending, then reverses unclaimed online approvals; resolves with the totals. */
  async drain(): Promise<ClearingResult & { readonly reversedApprovals: number }> {
    // From the first terminal, so an explicit run decides in one stable order (tests, tools).
    const total = await clearAll(this.db, this.deps);
    return { ...total, reversedApprovals: await this.reverseUnclaimed() };
  }

  /** Several processes start from different terminals, so they mostly clear different records. */
  private async spreadStart(): Promise<ClearingCursor> {
    const top = await this.db.one('SELECT MAX(terminal_id) AS t FROM intake_acks');
    const terminals = top?.t === null || top?.t === undefined ? 0 : int(top.t, 'terminal');
    return { terminalId: Math.floor(Math.random() * (terminals + 1)), sequence: 0 };
  }

  private async reverseUnclaimed(): Promise<number> {
    const s = await this.deps.settings();
    return reverseUnclaimedApprovals(this.db, this.deps.nowS(), UNCLAIMED_AFTER_OFFLINE_WINDOWS * s.maxOfflineS);
  }

  get error(): unknown {
    return this.lastError;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.again = false;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.running = this.loop().finally(() => {
        this.running = undefined;
        if (this.again) {
          this.again = false;
          this.schedule(0);
        } else this.schedule(this.opts.intervalMs ?? 2_000);
      });
    }, ms);
    this.timer.unref?.();
  }

  private async loop(): Promise<void> {
    if (this.stopped) return;
    try {
      const r = await clearAll(this.db, this.deps, await this.spreadStart(), () => this.stopped);
      this.lastError = undefined;
      if (r.records > 0) this.opts.onRun?.(r);
      // Idle: at most once a minute, give back approvals whose record never came.
      const now = this.deps.nowS();
      if (!this.stopped && now - this.lastReversalS >= 60) {
        this.lastReversalS = now;
        await this.reverseUnclaimed();
      }
    } catch (e) {
      this.lastError = e;
      this.opts.onError?.(e);
    }
  }
}

function add(a: ClearingResult, b: ClearingResult): ClearingResult {
  return {
    records: a.records + b.records,
    posted: a.posted + b.posted,
    linked: a.linked + b.linked,
    refused: a.refused + b.refused,
    flagged: a.flagged + b.flagged,
    paidFen: a.paidFen + b.paidFen,
    lossFen: a.lossFen + b.lossFen,
    advanceFen: a.advanceFen + b.advanceFen,
  };
}
