/**
 * Store-and-forward upload for one terminal (DESIGN §7). It sends the records the platform has not
 * acknowledged, oldest first, in contiguous bounded batches, one request at a time. The terminal
 * prunes only what the platform acknowledges. After a failure it retries with capped exponential
 * backoff and full jitter.
 *
 * It never gets in a decision's way. It reads the journal outside the terminal's serial queue and
 * joins that queue only for the short acknowledge step. Time, timers and randomness are injected,
 * so the simulator runs this same code on virtual time.
 *
 * It is idempotent and resumable by construction. Records never change once appended, so a batch
 * depends only on the range it covers, and a resend after a lost answer carries the same bytes.
 * The platform answers with the highest contiguous sequence it holds. Every batch starts right
 * after the terminal's acknowledged sequence, so when the platform acknowledges less than it was
 * sent, the next batch starts again from there.
 */
import { BATCH_MAX_BYTES, decodeRecord, encodeUploadBatch, type TerminalRecord } from '@duet/protocol';
import {
  UPLOAD_BACKOFF_BASE_MS,
  UPLOAD_BACKOFF_MAX_MS,
  UPLOAD_BATCH_RECORDS,
  UPLOAD_FLUSH_MAX_FAILURES_DEFAULT,
  UPLOAD_IDLE_POLL_MS_DEFAULT,
  UPLOAD_TIMEOUT_MS_DEFAULT,
} from './limits.js';
import { type Scheduler, systemScheduler } from './scheduler.js';
import { type Clock, type JournalStore, systemClock, type UploadTransport } from './ports.js';

/** An upload batch's framing before its records: header byte, u32 terminal id, u16 count (protocol record.ts). */
const BATCH_FRAME_BYTES = 7;
/** Each record in a batch carries a u16 length prefix. */
const RECORD_FRAME_BYTES = 2;

/** What the uploader needs from a terminal. `Terminal` provides all of it. */
export interface UploadSource {
  readonly journal: JournalStore;
  readonly headSequence: number;
  /** The highest sequence the platform has acknowledged. Upload sends what follows it. */
  readonly ackedSequence: number;
  /** Records the platform's acknowledgement durably and prunes what it covers (a short step in the serial queue). */
  acknowledge(throughSequence: number): Promise<void>;
}

export const UPLOAD_FAILURE_CODES = [
  'timeout',
  'transport',
  'bad_answer',
  'no_progress',
  'ack_regressed',
  'journal',
  'acknowledge',
  'internal',
] as const;
export type UploadFailureCode = (typeof UPLOAD_FAILURE_CODES)[number];

/** What the terminal's status screen shows, in both languages. */
export const UPLOAD_FAILURE_WORDS: { readonly [C in UploadFailureCode]: { readonly en: string; readonly zh: string } } = {
  timeout: { en: 'The platform did not answer in time', zh: '平台未在规定时间内应答' },
  transport: { en: 'The platform could not be reached or is overloaded', zh: '无法连接平台或平台繁忙' },
  bad_answer: { en: 'The platform sent an answer that makes no sense', zh: '平台应答格式错误' },
  no_progress: { en: 'The platform accepted none of the records sent', zh: '平台未接收所发送的记录' },
  ack_regressed: {
    en: 'The platform acknowledged less than it had before: records it confirmed may be lost',
    zh: '平台确认序号倒退，已确认的记录可能丢失',
  },
  journal: { en: 'The records waiting for upload could not be read', zh: '无法读取待上传记录' },
  acknowledge: { en: 'The acknowledgement could not be saved', zh: '无法保存平台确认' },
  internal: { en: 'Upload stopped on a software fault; restart it', zh: '上传程序故障已停止，请重新启动' },
};

export interface UploadFailure {
  readonly code: UploadFailureCode;
  readonly detail: string;
  /** When it happened, by the uploader's clock. */
  readonly atMs: number;
}

export interface UploadStatus {
  /** A loop is running: started, or draining for a flush. */
  readonly running: boolean;
  /** Records journaled and not yet acknowledged. */
  readonly pending: number;
  readonly ackedThrough: number;
  /** The sequence range of the request being sent, if any. */
  readonly inFlight: { readonly from: number; readonly through: number } | undefined;
  /** The latest failure. Cleared when the platform next acknowledges something. */
  readonly lastError: UploadFailure | undefined;
  /** When the next retry is due (uploader clock, ms), while waiting out a backoff. */
  readonly nextRetryAt: number | undefined;
  readonly consecutiveFailures: number;
}

/** Why a flush() did not complete. `failure` is the last attempt's, when it gave up. */
export class UploadError extends Error {
  override readonly name = 'UploadError';
  constructor(
    readonly code: 'stopped' | 'gave_up',
    message: string,
    readonly failure?: UploadFailure,
  ) {
    super(message);
  }
}

export interface UploaderOptions {
  readonly transport: UploadTransport;
  readonly clock?: Clock;
  readonly scheduler?: Scheduler;
  /** Uniform in [0, 1), for backoff jitter. It spreads retries and needs no cryptographic strength. */
  readonly random?: () => number;
  readonly timeoutMs?: number;
  readonly idlePollMs?: number;
  /** At most UPLOAD_BATCH_RECORDS. Smaller values are for tests and the simulator. */
  readonly batchRecords?: number;
  /** At most BATCH_MAX_BYTES. */
  readonly batchMaxBytes?: number;
}

/** Full jitter draws each delay uniformly below this ceiling, so terminals that failed together do not retry together. */
export function backoffCeilingMs(consecutiveFailures: number): number {
  return Math.min(UPLOAD_BACKOFF_MAX_MS, UPLOAD_BACKOFF_BASE_MS * 2 ** Math.max(0, consecutiveFailures - 1));
}

type Round = 'progress' | 'idle' | 'failed' | 'stopped';
type Sent =
  | { readonly ok: true; readonly ackedThrough: unknown }
  | { readonly ok: false; readonly code: UploadFailureCode; readonly detail: string };

interface Batch {
  /** The acknowledged sequence the batch follows. */
  readonly after: number;
  readonly from: number;
  readonly through: number;
  readonly bytes: Uint8Array;
}

interface Waiter {
  readonly target: number;
  readonly maxFailures: number;
  failures: number;
  resolve(): void;
  reject(e: Error): void;
}

export class Uploader {
  private readonly transport: UploadTransport;
  private readonly clock: Clock;
  private readonly scheduler: Scheduler;
  private readonly random: () => number;
  private readonly timeoutMs: number;
  private readonly idlePollMs: number;
  private readonly batchRecords: number;
  private readonly batchMaxBytes: number;
  private started = false;
  /** Present while a loop should run; stop() aborts it, which also aborts the request in flight. */
  private session: AbortController | undefined;
  /** The current (or last) loop. A new loop always starts after the previous one has finished, so only one ever runs. */
  private loop: Promise<void> = Promise.resolve();
  private waiters: Waiter[] = [];
  private sleeper: { readonly kind: 'idle' | 'backoff'; readonly wake: () => void } | undefined;
  private inFlight: { readonly from: number; readonly through: number } | undefined;
  private failures = 0;
  private lastError: UploadFailure | undefined;
  private nextRetryAt: number | undefined;

  constructor(
    private readonly source: UploadSource,
    o: UploaderOptions,
  ) {
    this.transport = o.transport;
    this.clock = o.clock ?? systemClock;
    this.scheduler = o.scheduler ?? systemScheduler;
    this.random = o.random ?? Math.random;
    this.timeoutMs = whole('timeoutMs', o.timeoutMs ?? UPLOAD_TIMEOUT_MS_DEFAULT, 1, 3_600_000);
    this.idlePollMs = whole('idlePollMs', o.idlePollMs ?? UPLOAD_IDLE_POLL_MS_DEFAULT, 1, 3_600_000);
    this.batchRecords = whole('batchRecords', o.batchRecords ?? UPLOAD_BATCH_RECORDS, 1, UPLOAD_BATCH_RECORDS);
    this.batchMaxBytes = whole('batchMaxBytes', o.batchMaxBytes ?? BATCH_MAX_BYTES, BATCH_FRAME_BYTES + 1, BATCH_MAX_BYTES);
  }

  /** Keeps uploading in the background until stop(): whatever is pending now, and whatever is journaled later. */
  start(): void {
    this.started = true;
    this.spin();
  }

  /**
   * Stops the loop. It aborts the request in flight and the wait in progress, and rejects pending
   * flushes with `stopped`. Resolves once the loop has exited. An answer that already arrived is
   * still acknowledged first (a short step), so nothing is left half-done: every record is either
   * acknowledged and pruned, or still in the journal.
   */
  async stop(): Promise<void> {
    this.started = false;
    const session = this.session;
    this.session = undefined;
    session?.abort();
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.reject(new UploadError('stopped', 'upload stopped before everything was acknowledged'));
    await this.loop;
  }

  /** Something was journaled: if the loop is idle, look now instead of at the next poll. A backoff is never cut short by this. */
  wake(): void {
    if (this.sleeper?.kind === 'idle') this.sleeper.wake();
  }

  /**
   * Uploads now, cutting short any backoff. Resolves once the platform has acknowledged every record
   * journaled before this call. Rejects with `gave_up` after `maxFailures` failed attempts in a row,
   * or with `stopped`. Works whether or not start() was called, and never runs a second loop.
   */
  flush(o: { readonly maxFailures?: number } = {}): Promise<void> {
    let maxFailures: number;
    try {
      maxFailures =
        o.maxFailures === Number.POSITIVE_INFINITY
          ? o.maxFailures
          : whole('maxFailures', o.maxFailures ?? UPLOAD_FLUSH_MAX_FAILURES_DEFAULT, 1, 1e9);
    } catch (e) {
      return Promise.reject(e);
    }
    const target = this.source.headSequence;
    if (this.source.ackedSequence >= target) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.waiters.push({ target, maxFailures, failures: 0, resolve, reject });
      this.sleeper?.wake();
      this.spin();
    });
  }

  status(): UploadStatus {
    const acked = this.source.ackedSequence;
    return {
      running: this.session !== undefined,
      pending: Math.max(0, this.source.headSequence - acked),
      ackedThrough: acked,
      inFlight: this.inFlight,
      lastError: this.lastError,
      nextRetryAt: this.nextRetryAt,
      consecutiveFailures: this.failures,
    };
  }

  /** Starts a loop unless one is meant to be running already. */
  private spin(): void {
    if (this.session !== undefined) return;
    const session = new AbortController();
    this.session = session;
    this.loop = this.loop.then(() => this.run(session));
  }

  private async run(session: AbortController): Promise<void> {
    const signal = session.signal;
    try {
      while (!signal.aborted && (this.started || this.waiters.length > 0)) {
        const round = await this.round(signal);
        if (round === 'stopped') break;
        this.settle(round);
        if (round === 'progress') continue;
        if (!this.started && this.waiters.length === 0) break;
        if (round === 'idle') await this.sleep('idle', this.idlePollMs, signal);
        else await this.sleep('backoff', this.backoffMs(), signal);
      }
    } catch (e) {
      // A bug, not an operating error (round() handles those): stop, say so, and fail the flushes rather than leave them hanging.
      const waiters = this.waiters;
      this.waiters = [];
      for (const w of waiters) w.reject(e instanceof Error ? e : new Error(String(e)));
      this.started = false;
      this.lastError = { code: 'internal', detail: message(e), atMs: this.clock.nowMs() };
    } finally {
      if (this.session === session) this.session = undefined;
    }
  }

  /** One attempt: read and frame what follows the acknowledged sequence, send it, act on the answer. Never throws. */
  private async round(signal: AbortSignal): Promise<Round> {
    let batch: Batch | undefined;
    try {
      batch = await this.frame(this.source.ackedSequence);
    } catch (e) {
      return this.fail('journal', message(e));
    }
    if (signal.aborted) return 'stopped';
    if (batch === undefined) return 'idle';
    this.inFlight = { from: batch.from, through: batch.through };
    try {
      const sent = await this.send(batch.bytes, signal);
      if (sent === 'stopped') return 'stopped';
      if (!sent.ok) return this.fail(sent.code, sent.detail);
      return await this.accept(sent.ackedThrough, batch);
    } finally {
      this.inFlight = undefined;
    }
  }

  /** The next batch: records after `after`, contiguous from after + 1, bounded in count and bytes. */
  private async frame(after: number): Promise<Batch | undefined> {
    const raw = await this.source.journal.pending(after, this.batchRecords);
    if (raw.length === 0) return undefined;
    const records: TerminalRecord[] = [];
    let size = BATCH_FRAME_BYTES;
    for (const bytes of raw.slice(0, this.batchRecords)) {
      if (size + RECORD_FRAME_BYTES + bytes.length > this.batchMaxBytes) break;
      const rec = decodeRecord(bytes);
      const due = after + records.length + 1;
      if (rec.sequence !== due) throw new Error(`journal gave record ${rec.sequence} where ${due} was due; a gap is never sent`);
      size += RECORD_FRAME_BYTES + bytes.length;
      records.push(rec);
    }
    const first = records[0];
    const last = records[records.length - 1];
    if (first === undefined || last === undefined) {
      throw new Error(`record ${after + 1} alone exceeds the batch bound of ${this.batchMaxBytes} bytes`);
    }
    return { after, from: first.sequence, through: last.sequence, bytes: encodeUploadBatch(first.terminalId, records) };
  }

  /** Sends one batch. The request gives up at the timeout, or at once when the session stops. */
  private async send(bytes: Uint8Array, session: AbortSignal): Promise<Sent | 'stopped'> {
    const request = new AbortController();
    let timedOut = false;
    const cancelTimer = this.scheduler.after(this.timeoutMs, () => {
      timedOut = true;
      request.abort();
    });
    const onStop = (): void => request.abort();
    session.addEventListener('abort', onStop, { once: true });
    try {
      // Raced against the signal: a transport that ignores abort must not hold the loop.
      const answer: unknown = await untilAborted(this.transport.upload(bytes, request.signal), request.signal);
      const ackedThrough = typeof answer === 'object' && answer !== null && 'ackedThrough' in answer ? answer.ackedThrough : undefined;
      return { ok: true, ackedThrough };
    } catch (e) {
      if (session.aborted) return 'stopped';
      if (timedOut) return { ok: false, code: 'timeout', detail: `no answer within ${this.timeoutMs} ms` };
      return { ok: false, code: 'transport', detail: message(e) };
    } finally {
      cancelTimer();
      session.removeEventListener('abort', onStop);
    }
  }

  /** Acts on the platform's acknowledgement. This is the only step that enters the terminal's serial queue. */
  private async accept(ack: unknown, batch: Batch): Promise<Round> {
    if (typeof ack !== 'number' || !Number.isSafeInteger(ack) || ack < 0) {
      return this.fail('bad_answer', `ackedThrough ${String(ack)} is not a sequence number`);
    }
    if (ack < batch.after) {
      return this.fail('ack_regressed', `platform holds through ${ack}, but had acknowledged ${batch.after}`);
    }
    if (ack === batch.after) {
      return this.fail('no_progress', `platform holds through ${ack}; sent ${batch.from}-${batch.through}`);
    }
    try {
      // Beyond the head is clamped by the journal. Short of batch.through, the next round resends from ack + 1.
      await this.source.acknowledge(ack);
    } catch (e) {
      return this.fail('acknowledge', message(e));
    }
    this.failures = 0;
    this.lastError = undefined;
    return 'progress';
  }

  private fail(code: UploadFailureCode, detail: string): Round {
    this.failures++;
    this.lastError = { code, detail, atMs: this.clock.nowMs() };
    return 'failed';
  }

  /** Settles the flushes this round decided: resolved once acknowledged through their target, rejected after too many failures. */
  private settle(round: Round): void {
    const acked = this.source.ackedSequence;
    this.waiters = this.waiters.filter((w) => {
      if (acked >= w.target) {
        w.resolve();
        return false;
      }
      if (round === 'progress') w.failures = 0;
      if (round !== 'failed' || ++w.failures < w.maxFailures) return true;
      const why = this.lastError === undefined ? '' : `: ${this.lastError.code}, ${this.lastError.detail}`;
      w.reject(new UploadError('gave_up', `upload failed ${w.failures} times in a row${why}`, this.lastError));
      return false;
    });
  }

  /** Full jitter: uniform in [0, ceiling). A random() outside [0, 1) is clamped, so a bad source cannot stall upload. */
  private backoffMs(): number {
    const r = this.random();
    const unit = Number.isFinite(r) ? Math.min(Math.max(r, 0), 1) : 1;
    return Math.floor(unit * backoffCeilingMs(this.failures));
  }

  /** Waits `ms` on the scheduler. Ends early on stop, on flush(), and for an idle wait on wake(). */
  private sleep(kind: 'idle' | 'backoff', ms: number, signal: AbortSignal): Promise<void> {
    if (kind === 'backoff') this.nextRetryAt = this.clock.nowMs() + ms;
    return new Promise<void>((resolve) => {
      let settled = false;
      let cancel: (() => void) | undefined;
      const done = (): void => {
        if (settled) return;
        settled = true;
        cancel?.();
        signal.removeEventListener('abort', done);
        this.sleeper = undefined;
        this.nextRetryAt = undefined;
        resolve();
      };
      this.sleeper = { kind, wake: done };
      signal.addEventListener('abort', done, { once: true });
      cancel = this.scheduler.after(ms, done);
      if (settled || signal.aborted) done();
    });
  }
}

/** Settles with `work`, or rejects as soon as `signal` aborts. Either way, a later rejection of `work` is handled. */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(new Error('aborted'));
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

function whole(name: string, v: number, min: number, max: number): number {
  if (!Number.isSafeInteger(v) || v < min || v > max)
    throw new RangeError(`uploader: ${name} ${v} must be a whole number from ${min} to ${max}`);
  return v;
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
