/**
 * The terminal: one cashier's window. It decides each payment (online first when the platform
 * answers within budget, else offline by itself), makes the record durable, and only then says yes.
 * Decisions are serialised: the replay check and the "now seen" mark happen in one step.
 */
import {
  CredentialCache,
  type CryptoProvider,
  decodeRecord,
  type Fen,
  fenNonNegative,
  GENESIS_HASH,
  ZERO_FEN,
  type RecordBody,
  type RootKey,
  signRecord,
  type TerminalRecord,
} from '@duet/protocol';
import { CircuitBreaker } from './breaker.js';
import { type Check, type Failure, checkAmount, checkCode, checkLimits, checkReady, type Lookups } from './decision.js';
import { CREDENTIAL_CACHE_ENTRIES, DAY_OFFSET_S_DEFAULT, ONLINE_BUDGET_MS_DEFAULT } from './limits.js';
import type { Clock, JournalStore, OnlineAnswer, OnlineAuthorizer, SpendRow } from './ports.js';
import { type DeclineReason, reasonWords } from './reasons.js';
import { type Scheduler, systemScheduler } from './scheduler.js';
import { type Snapshot, TerminalState } from './state.js';

export interface TerminalOptions {
  readonly journal: JournalStore;
  readonly crypto: CryptoProvider;
  readonly clock: Clock;
  readonly online?: OnlineAuthorizer;
  /** Campus-local day offset from UTC in seconds, for per-day limits. */
  readonly dayOffsetS?: number;
  /** Timers for the online budget; the simulator passes virtual ones. */
  readonly scheduler?: Scheduler;
}

export interface Decision {
  readonly accepted: boolean;
  readonly kind: 'payment' | 'access';
  readonly reason?: DeclineReason;
  /** What the cashier reads: "Paid 12.50" / the decline in words. */
  readonly words: { readonly en: string; readonly zh: string };
  readonly detail?: string;
  readonly path?: 'offline' | 'online';
  readonly amount?: number;
  readonly sequence?: number;
  readonly serial?: number;
  readonly holder?: number;
  readonly counter?: number;
  /** Rebuilt after a restart from the journaled record (see `recoverDecision`), not decided just now. */
  readonly recovered?: true;
}

export class Terminal {
  readonly state: TerminalState;
  private readonly cache = new CredentialCache(CREDENTIAL_CACHE_ENTRIES);
  private readonly breaker = new CircuitBreaker();
  /** (serial:counter) → its credential's expiry, after which the entry may go. */
  private readonly seenCodes = new Map<string, number>();
  private readonly spendRows = new Map<number, SpendRow>();
  private head: { sequence: number; hash: Uint8Array; time: number };
  private acked: number;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly dayOffsetS: number;

  private constructor(
    private readonly o: TerminalOptions,
    state: TerminalState,
    snapshot: Awaited<ReturnType<JournalStore['open']>>,
  ) {
    this.state = state;
    this.head = { sequence: snapshot.headSequence, hash: snapshot.headHash, time: snapshot.headTime };
    this.acked = snapshot.ackedSequence;
    for (const [serial, counter, notAfter] of snapshot.seen) this.seenCodes.set(`${serial}:${counter}`, notAfter);
    for (const row of snapshot.spend) this.spendRows.set(row.serial, row);
    this.dayOffsetS = o.dayOffsetS ?? DAY_OFFSET_S_DEFAULT;
  }

  /** Opens the journal, rebuilds memory from it, and re-verifies every stored list and the certificate. */
  static async open(o: TerminalOptions): Promise<Terminal> {
    const snapshot = await o.journal.open();
    const state = await TerminalState.load(o.journal, o.crypto);
    return new Terminal(o, state, snapshot);
  }

  get headSequence(): number {
    return this.head.sequence;
  }

  /** The highest sequence the platform has acknowledged (everything after it waits for upload). */
  get ackedSequence(): number {
    return this.acked;
  }

  get journal(): JournalStore {
    return this.o.journal;
  }

  /** Pins root keys at enrolment. */
  pinRoots(roots: readonly RootKey[]): Promise<void> {
    return this.serial(() => this.state.pinRoots(roots));
  }

  /** Takes a payment of `amount` fen for the scanned `text`. Resolves only once the record is durable. */
  pay(amount: number, text: string): Promise<Decision> {
    return this.serial(() => this.decide('payment', amount, text));
  }

  /** Identity check (gates, exam rooms): the same checks without an amount; journaled as an access event. */
  checkIdentity(text: string): Promise<Decision> {
    return this.serial(() => this.decide('access', 0, text));
  }

  /** Runs `fn` after every earlier decision or update has finished. */
  serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private lookups(): Lookups {
    return {
      seen: (serial, counter) => this.seenCodes.has(`${serial}:${counter}`),
      spend: (serial) => this.spendRows.get(serial),
      headTime: this.head.time,
    };
  }

  private async decide(kind: 'payment' | 'access', amount: number, text: string): Promise<Decision> {
    const nowS = Math.floor(this.o.clock.nowMs() / 1000);
    const s = this.state.snapshot;
    const look = this.lookups();
    const early = (kind === 'payment' ? checkAmount(amount) : undefined) ?? checkReady(s, nowS, look.headTime);
    if (early !== undefined) return declined(kind, early);
    const checked = await checkCode(s, text, nowS, look, this.o.crypto, this.cache);
    if (!checked.ok) {
      // An access attempt with a genuine code is journaled even when refused (who tried the gate).
      if (kind === 'access' && checked.code !== undefined && isPolicyReason(checked.reason)) {
        return this.commit(s, checked, 'access', ZERO_FEN, 'offline', nowS);
      }
      return declined(kind, checked);
    }
    if (kind === 'access') return this.commit(s, checked, 'access', ZERO_FEN, 'offline', nowS);
    const fen = fenNonNegative(amount);
    const online = await this.tryOnline(s, checked, fen, nowS);
    if (online !== undefined) {
      if (!online.approved) return declined(kind, { reason: online.reason, detail: online.detail, code: checked.code });
      return this.commit(s, checked, 'payment', fen, 'online', nowS);
    }
    const limits = checkLimits(s, checked.code, fen, nowS, look, this.dayOffsetS);
    if (!limits.ok) return declined(kind, { ...limits, code: checked.code });
    return this.commit(s, checked, 'payment', fen, 'offline', nowS, limits.spend);
  }

  /** Online first, within the budget; undefined means "decide offline" (no authorizer, breaker open, timeout, error). */
  private async tryOnline(s: Snapshot, checked: Check & { ok: true }, amount: Fen, nowS: number): Promise<OnlineAnswer | undefined> {
    const online = this.o.online;
    const terminalId = s.identity?.certificate.terminalId;
    if (online === undefined || terminalId === undefined || !this.breaker.allow(this.o.clock.nowMs())) return undefined;
    const budgetMs = s.policy?.onlineBudgetMs ?? ONLINE_BUDGET_MS_DEFAULT;
    const controller = new AbortController();
    let cancel: (() => void) | undefined;
    const timeout = new Promise<undefined>((resolve) => {
      cancel = (this.o.scheduler ?? systemScheduler).after(budgetMs, () => {
        controller.abort();
        resolve(undefined);
      });
    });
    try {
      const answer = await Promise.race([
        online.authorize({ terminalId, amount, code: checked.code.bytes, time: nowS }, controller.signal),
        timeout,
      ]);
      if (answer === undefined) this.breaker.failure(this.o.clock.nowMs());
      else this.breaker.success();
      return answer;
    } catch {
      this.breaker.failure(this.o.clock.nowMs());
      return undefined;
    } finally {
      cancel?.();
    }
  }

  private async commit(
    s: Snapshot,
    checked: Check,
    kind: 'payment' | 'access',
    amount: Fen,
    path: 'offline' | 'online',
    nowS: number,
    spend?: SpendRow,
  ): Promise<Decision> {
    const identity = s.identity;
    const code = checked.code;
    if (identity === undefined || s.trust === undefined || s.policy === undefined || code === undefined) {
      return declined(kind, { reason: 'terminal_not_ready', detail: 'not set up' });
    }
    const c = code.credential;
    const body: RecordBody = {
      terminalId: identity.certificate.terminalId,
      sequence: this.head.sequence + 1,
      previousHash: this.head.sequence === 0 ? GENESIS_HASH : this.head.hash,
      // A record never carries a time earlier than the one before it: the chain's times only go forward.
      time: Math.max(nowS, this.head.time),
      kind,
      path,
      medium: 'qr',
      outcome: checked.ok ? 'accepted' : 'denied',
      amount,
      merchantId: identity.certificate.merchantId,
      trustListVersion: s.trust.listVersion,
      denyListVersion: s.deny.version,
      policyVersion: s.policy.policyVersion,
      evidence: code.bytes,
      terminalSuite: identity.certificate.terminalSuite,
    };
    let record: TerminalRecord;
    const hash: { value: Uint8Array } = { value: new Uint8Array(0) };
    try {
      record = await signRecord(body, identity.signer);
      hash.value = this.o.crypto.sha256(record.bytes);
      await this.o.journal.append({
        sequence: record.sequence,
        time: record.time,
        bytes: record.bytes,
        hash: hash.value,
        ...(checked.ok ? { seen: { serial: c.serial, counter: code.counter, notAfter: c.notAfter } } : {}),
        ...(spend !== undefined ? { spend } : {}),
      });
    } catch (e) {
      const detail = e instanceof Error ? e.message : String(e);
      return declined(kind, { reason: 'journal_unavailable', detail, code });
    }
    this.head = { sequence: record.sequence, hash: hash.value, time: record.time };
    if (checked.ok) this.seenCodes.set(`${c.serial}:${code.counter}`, c.notAfter);
    if (spend !== undefined) this.spendRows.set(spend.serial, spend);
    if (!checked.ok) return declined(kind, checked);
    return {
      accepted: true,
      kind,
      words: acceptedWords(kind, amount),
      path,
      amount,
      sequence: record.sequence,
      serial: c.serial,
      holder: c.holder,
      counter: code.counter,
    };
  }

  /**
   * After a restart: what became of the decision in progress when the power went. `headBefore` is
   * the journal head when that decision began. A record journaled after it is that decision, made
   * durable though no screen showed it (the holder has paid, and clearing will charge it), so it
   * is returned as decided, marked `recovered`. Undefined when nothing landed, or when the record
   * is no longer held (acknowledged and pruned); a caller that knows the head moved can still say
   * the payment went through.
   */
  recoverDecision(headBefore: number): Promise<Decision | undefined> {
    return this.serial(async () => {
      if (!Number.isSafeInteger(headBefore) || headBefore < 0 || this.head.sequence <= headBefore) return undefined;
      const [bytes] = await this.o.journal.pending(headBefore, 1);
      if (bytes === undefined) return undefined;
      const r = decodeRecord(bytes);
      if (r.sequence !== headBefore + 1) return undefined;
      const common = { kind: r.kind, path: r.path, amount: r.amount, sequence: r.sequence, recovered: true } as const;
      // Only an identity check journals a refusal (who tried the gate); its reason is not in the record.
      if (r.outcome !== 'accepted')
        return { ...common, accepted: false, reason: 'refused_before_restart', words: reasonWords('refused_before_restart') };
      return { ...common, accepted: true, words: acceptedWords(r.kind, r.amount) };
    });
  }

  /** The platform acknowledged records through `sequence`: prune them and expired seen/spend rows. */
  acknowledge(throughSequence: number): Promise<void> {
    return this.serial(async () => {
      const nowS = Math.floor(this.o.clock.nowMs() / 1000);
      const skew = this.state.snapshot.policy?.clockSkewS ?? 0;
      await this.o.journal.acknowledge(throughSequence, nowS - skew);
      this.acked = Math.max(this.acked, Math.min(throughSequence, this.head.sequence));
      await this.state.markSynced(nowS);
      for (const [serial, row] of this.spendRows) if (row.notAfter < nowS - skew) this.spendRows.delete(serial);
      for (const [k, notAfter] of this.seenCodes) if (notAfter < nowS - skew) this.seenCodes.delete(k);
    });
  }
}

const POLICY_REASONS: ReadonlySet<DeclineReason> = new Set([
  'replay',
  'credential_denied',
  'holder_denied',
  'scope_not_allowed',
  'role_not_allowed',
  'campus_not_allowed',
]);

function isPolicyReason(r: DeclineReason): boolean {
  return POLICY_REASONS.has(r);
}

/** What the cashier reads for a yes. */
function acceptedWords(kind: 'payment' | 'access', amount: number): { readonly en: string; readonly zh: string } {
  if (kind === 'access') return { en: 'Access granted', zh: '验证通过' };
  const yuan = `${Math.trunc(amount / 100)}.${String(amount % 100).padStart(2, '0')}`;
  return { en: `Paid ${yuan}`, zh: `支付成功 ${yuan} 元` };
}

function declined(kind: 'payment' | 'access', c: Omit<Failure, 'ok'>): Decision {
  const base = { accepted: false, kind, reason: c.reason, words: reasonWords(c.reason), detail: c.detail } as const;
  if (c.code === undefined) return base;
  return { ...base, serial: c.code.credential.serial, holder: c.code.credential.holder, counter: c.code.counter };
}
