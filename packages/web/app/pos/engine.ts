/**
 * The POS app's engine: the real terminal core (@duet/terminal) with its journal in IndexedDB, the
 * platform adapters (@duet/terminal/platform) for activation, list sync and online authorization,
 * and the core's Uploader in the background. No decision logic lives here: a scan goes to
 * `Terminal.pay`, which journals durably before it answers; this file only keeps the cashier's
 * screen state beside it so a reload mid-payment comes back to the same payment, never deciding it
 * twice.
 */
import type { Fen } from '@duet/protocol';
import { AMOUNT_MAX_FEN, type OnlineAuthorizer, systemClock, Terminal, Uploader, UPLOAD_FAILURE_WORDS } from '@duet/terminal';
import { activate, onlineAuthorizer, syncLists } from '@duet/terminal/platform';
import { browserCrypto, errorWords, platformClient } from '../shared/api.js';
import { IdbJournal } from './idb-journal.js';

export const JOURNAL_DB = 'duet-pos-journal';
/** How often lists are fetched and the uploader looks for records, while online. */
export const SYNC_EVERY_MS = 10_000;

export interface Words {
  readonly en: string;
  readonly zh: string;
}

/** A decision as the cashier's screen shows it. */
export interface Shown {
  readonly accepted: boolean;
  /** A stable reason code of @duet/terminal (reasons.ts), or "accepted". */
  readonly reason: string;
  readonly words: Words;
  readonly path: 'offline' | 'online';
  readonly amount: number;
  readonly sequence?: number;
  /** True when this decision was recovered after a reload, not decided just now. */
  readonly recovered?: boolean;
}

/** The payment in progress, kept in IndexedDB beside the journal. */
export type Payment =
  | { readonly phase: 'waiting'; readonly amount: number; readonly head: number }
  | { readonly phase: 'decided'; readonly shown: Shown };

export interface QueueState {
  readonly waiting: number;
  readonly ackedThrough: number;
  readonly uploading: boolean;
  readonly error: Words | undefined;
  readonly nextRetryAt: number | undefined;
  readonly lastSyncS: number;
  readonly syncError: string | undefined;
  /** The deny list held: its version, when it was issued, and whether it is past the policy's age limit. */
  readonly lists: { readonly version: number; readonly issuedS: number; readonly stale: boolean };
}

const PAYMENT = 'payment';
const CODE_RE = /^[A-Z2-9]{5}(-[A-Z2-9]{5}){3}$/;

/** An activation code as typed or linked: case and spacing forgiven, then the exact form is required. */
export function parseActivationCode(text: string): { ok: true; code: string } | { ok: false; words: Words } {
  const raw = text.toUpperCase().replace(/[\s-]/g, '');
  const code = raw.length === 20 ? (raw.match(/.{5}/g) ?? []).join('-') : raw;
  if (!CODE_RE.test(code)) {
    return {
      ok: false,
      words: { en: 'An activation code is four groups of five letters or digits', zh: '激活码为四组、每组五个字母或数字' },
    };
  }
  return { ok: true, code };
}

export class PosEngine {
  private uploader: Uploader | undefined;
  private timer: ReturnType<typeof setInterval> | undefined;
  private readonly listeners = new Set<() => void>();
  private syncError: string | undefined;
  private syncing = false;

  private constructor(
    readonly journal: IdbJournal,
    readonly terminal: Terminal,
  ) {}

  /**
   * Opens the terminal once this tab holds the POS lock: two tabs deciding on one journal would
   * fight over its sequence (the journal would refuse the loser's records, so nothing is lost, but
   * that tab could take no payment). `onBlocked` is called when another tab holds it.
   */
  static async open(onBlocked: () => void = () => undefined): Promise<PosEngine> {
    await holdLock(onBlocked);
    const journal = new IdbJournal(JOURNAL_DB);
    const crypto = browserCrypto();
    const client = platformClient();
    let self: Terminal | undefined;
    // Online first when the platform answers within the policy's budget; the core falls back by itself.
    const online: OnlineAuthorizer = {
      authorize: (request, signal) => {
        if (self === undefined || !navigator.onLine) return Promise.reject(new Error('offline'));
        return onlineAuthorizer(self, client).authorize(request, signal);
      },
    };
    self = await Terminal.open({ journal, crypto, clock: systemClock, online });
    const engine = new PosEngine(journal, self);
    if (engine.activated) engine.startBackground();
    return engine;
  }

  get activated(): boolean {
    return this.terminal.state.snapshot.identity !== undefined;
  }

  get terminalId(): number | undefined {
    return this.terminal.state.snapshot.identity?.certificate.terminalId;
  }

  /** The largest amount the keypad takes: the policy's single-payment cap (and the core's bound). */
  get maxFen(): number {
    const p = this.terminal.state.snapshot.policy;
    return Math.min(AMOUNT_MAX_FEN, p?.perPaymentMax ?? AMOUNT_MAX_FEN);
  }

  subscribe(f: () => void): () => void {
    this.listeners.add(f);
    return () => this.listeners.delete(f);
  }

  private changed(): void {
    for (const f of this.listeners) f();
  }

  /** Activates with a one-time code: a new terminal key is made here, its public half certified. */
  async activate(text: string): Promise<{ ok: true } | { ok: false; words: string }> {
    const parsed = parseActivationCode(text);
    if (!parsed.ok) return { ok: false, words: errorWords(parsed.words) };
    try {
      await activate(this.terminal, platformClient(), browserCrypto(), parsed.code, nowS());
    } catch (e) {
      return { ok: false, words: errorWords(e) };
    }
    this.startBackground();
    this.changed();
    return { ok: true };
  }

  /** The payment in progress after a (re)load. A payment decided before the reload is shown, never decided again. */
  async recover(): Promise<Payment | undefined> {
    const p = await this.journal.getUi<Payment>(PAYMENT);
    if (p === undefined || p.phase === 'decided') return p;
    if (this.terminal.headSequence <= p.head) return p;
    // The record was journaled but the screen never saw it: the core rebuilds the decision from it.
    const d = await this.terminal.recoverDecision(p.head);
    const shown: Shown =
      d === undefined
        ? // Already acknowledged and pruned: the head moved, so the payment went through.
          {
            accepted: true,
            reason: 'accepted',
            words: paidWords(p.amount),
            path: 'offline',
            amount: p.amount,
            sequence: p.head + 1,
            recovered: true,
          }
        : {
            accepted: d.accepted,
            reason: d.accepted ? 'accepted' : (d.reason ?? 'refused_before_restart'),
            words: d.words,
            path: d.path ?? 'offline',
            amount: d.amount ?? p.amount,
            ...(d.sequence !== undefined ? { sequence: d.sequence } : {}),
            recovered: true,
          };
    const decided: Payment = { phase: 'decided', shown };
    await this.journal.setUi(PAYMENT, decided);
    return decided;
  }

  /** The cashier charged an amount: the app now waits for a scan (kept across a reload). */
  async startPayment(amount: Fen): Promise<Payment> {
    const p: Payment = { phase: 'waiting', amount, head: this.terminal.headSequence };
    await this.journal.setUi(PAYMENT, p);
    return p;
  }

  /** Back to the keypad: the payment is over (shown) or cancelled before any scan. */
  async endPayment(): Promise<void> {
    await this.journal.setUi(PAYMENT, undefined);
  }

  /**
   * One scan: the terminal core decides (and journals durably before answering), then the screen
   * state is saved. The camera, the wedge, the typed field and window.__duetPosDecide all come here.
   */
  async decide(text: string, amount: number): Promise<Shown> {
    const d = await this.terminal.pay(amount, text.trim());
    const shown: Shown = {
      accepted: d.accepted,
      reason: d.accepted ? 'accepted' : (d.reason ?? 'declined_online'),
      words: d.words,
      path: d.path ?? (d.reason === 'declined_online' || d.reason === 'insufficient_funds' ? 'online' : 'offline'),
      amount,
      ...(d.sequence !== undefined ? { sequence: d.sequence } : {}),
    };
    await this.journal.setUi(PAYMENT, { phase: 'decided', shown } satisfies Payment);
    if (d.accepted) this.uploader?.wake();
    this.changed();
    return shown;
  }

  queue(): QueueState {
    const s = this.uploader?.status();
    const failure = s?.lastError;
    return {
      waiting: Math.max(0, this.terminal.headSequence - this.terminal.ackedSequence),
      ackedThrough: this.terminal.ackedSequence,
      uploading: s?.inFlight !== undefined,
      error: failure === undefined ? undefined : UPLOAD_FAILURE_WORDS[failure.code],
      nextRetryAt: s?.nextRetryAt,
      lastSyncS: this.terminal.state.snapshot.lastSyncS,
      syncError: this.syncError,
      lists: this.lists(),
    };
  }

  private lists(): QueueState['lists'] {
    const s = this.terminal.state.snapshot;
    const issuedS = s.deny.issuedAt;
    const maxAge = s.policy?.maxListAgeS;
    const now = nowS();
    const stale = s.deny.version === 0 || (maxAge !== undefined && now - issuedS > maxAge) || now >= s.deny.expiresAt;
    return { version: s.deny.version, issuedS, stale };
  }

  /** Lists now and an upload now (cutting any backoff short). Failures are shown, never thrown. */
  async syncNow(): Promise<void> {
    if (!this.activated || this.syncing) return;
    this.syncing = true;
    try {
      await syncLists(this.terminal, platformClient(), nowS());
      this.syncError = undefined;
    } catch (e) {
      this.syncError = errorWords(e);
    } finally {
      this.syncing = false;
    }
    this.uploader?.flush({ maxFailures: Number.POSITIVE_INFINITY }).catch(() => undefined);
    this.changed();
  }

  private startBackground(): void {
    if (this.uploader !== undefined) return;
    const t = this.terminal;
    const client = platformClient();
    this.uploader = new Uploader(t, {
      idlePollMs: SYNC_EVERY_MS,
      transport: {
        upload: async (batch, signal) => {
          const id = t.state.snapshot.identity;
          if (id === undefined) throw new Error('not activated');
          const answer = (await client.call('POST', '/v1/terminal/upload', {
            bytes: batch,
            terminal: { id: id.certificate.terminalId, signer: id.signer },
            signal,
          })) as { ackedThrough?: unknown };
          if (typeof answer.ackedThrough !== 'number') throw new Error('upload answer without ackedThrough');
          const result = { ackedThrough: answer.ackedThrough };
          queueMicrotask(() => this.changed());
          return result;
        },
      },
    });
    this.uploader.start();
    this.timer = setInterval(() => {
      if (navigator.onLine) void this.syncNow();
      else this.changed();
    }, SYNC_EVERY_MS);
    addEventListener('online', () => void this.syncNow());
    void this.syncNow();
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.uploader?.stop();
    await this.journal.close();
  }
}

/** Waits for the page-lifetime Web Lock of the POS (released when the tab closes or reloads). */
function holdLock(onBlocked: () => void): Promise<void> {
  const locks = (navigator as Navigator & { locks?: LockManager }).locks;
  if (locks === undefined) return Promise.resolve();
  return new Promise((resolve) => {
    let granted = false;
    const timer = setTimeout(() => {
      if (!granted) onBlocked();
    }, 1_500);
    void locks.request('duet-pos-terminal', () => {
      granted = true;
      clearTimeout(timer);
      resolve();
      return new Promise<never>(() => undefined);
    });
  });
}

function nowS(): number {
  return Math.floor(Date.now() / 1000);
}

function paidWords(amount: number): Words {
  const y = `${Math.trunc(amount / 100)}.${String(amount % 100).padStart(2, '0')}`;
  return { en: `Paid ${y}`, zh: `支付成功 ${y} 元` };
}
