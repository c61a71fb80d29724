/**
 * What the terminal core needs from the outside world, as interfaces: storage (the journal), the
 * platform (upload and online authorization), time and randomness. Production, the browser and the
 * simulator each plug in their own; one contract test (test/journal.contract.ts) holds every
 * journal implementation to the same behaviour.
 */
import type { Fen } from '@duet/protocol';

/** Seconds and milliseconds since the epoch, from whatever clock the caller trusts (or simulates). */
export interface Clock {
  nowMs(): number;
}

export const systemClock: Clock = { nowMs: () => Date.now() };

/** What the journal keeps per credential, to apply per-credential and per-day limits across restarts. */
export interface SpendRow {
  readonly serial: number;
  /** Lifetime offline total and count of this credential at this terminal. */
  readonly total: Fen;
  readonly count: number;
  /** The campus-local day number these day figures belong to. */
  readonly day: number;
  readonly dayTotal: Fen;
  readonly dayCount: number;
  /** The credential's expiry: the row (and its seen codes) may be dropped after it. */
  readonly notAfter: number;
}

/** One durable append: the signed record plus the derived rows that must change with it, atomically. */
export interface AppendEntry {
  readonly sequence: number;
  readonly time: number;
  readonly bytes: Uint8Array;
  readonly hash: Uint8Array;
  /** The code this record consumed: (serial, counter) is never accepted again at this terminal. */
  readonly seen?: { readonly serial: number; readonly counter: number; readonly notAfter: number };
  /** The new spend row of the credential after this payment. */
  readonly spend?: SpendRow;
}

/** What a journal hands back when it opens: enough for the terminal to rebuild its memory. */
export interface JournalSnapshot {
  readonly headSequence: number;
  readonly headHash: Uint8Array;
  readonly headTime: number;
  readonly ackedSequence: number;
  readonly seen: ReadonlyArray<readonly [serial: number, counter: number, notAfter: number]>;
  readonly spend: readonly SpendRow[];
}

export interface JournalStore {
  /** Opens or creates the journal and reads what the terminal keeps in memory. */
  open(): Promise<JournalSnapshot>;
  /**
   * Appends one record durably and atomically with its seen and spend rows. Resolves only when all
   * of it would survive a power cut; rejects (and changes nothing) if it cannot, or if the sequence
   * does not follow the head, or if the code was already seen.
   */
  append(entry: AppendEntry): Promise<void>;
  /** Record bytes with sequence > afterSequence, in order, at most `max`. */
  pending(afterSequence: number, max: number): Promise<Uint8Array[]>;
  /**
   * The platform acknowledged every record through `throughSequence`: remember that durably and
   * prune those records. Seen and spend rows of credentials expired before `pruneBeforeS` go too.
   * Never moves the acknowledgement backwards.
   */
  acknowledge(throughSequence: number, pruneBeforeS: number): Promise<void>;
  /** Small named values kept durably beside the journal (lists, certificate, key, last sync). */
  getMeta(key: string): Promise<Uint8Array | undefined>;
  setMeta(key: string, value: Uint8Array): Promise<void>;
  /** Several meta values in one durable, atomic write: all of them or none survive a crash. */
  setMetaMany(entries: ReadonlyArray<readonly [string, Uint8Array]>): Promise<void>;
  close(): Promise<void>;
}

/** The platform as the terminal's uploader sees it. */
export interface UploadTransport {
  /**
   * Sends an encoded upload batch. Resolves with the highest sequence the platform now holds for
   * this terminal (its acknowledgement), which may be beyond or before the batch.
   */
  upload(batch: Uint8Array, signal: AbortSignal): Promise<{ readonly ackedThrough: number }>;
}

export interface OnlineRequest {
  readonly terminalId: number;
  readonly amount: Fen;
  /** The code bytes as scanned. */
  readonly code: Uint8Array;
  readonly time: number;
}

export type OnlineAnswer =
  | { readonly approved: true; readonly authorization: string }
  | { readonly approved: false; readonly reason: 'insufficient_funds' | 'declined_online'; readonly detail: string };

/** The platform's real-time authorization, as an online terminal calls it. */
export interface OnlineAuthorizer {
  authorize(request: OnlineRequest, signal: AbortSignal): Promise<OnlineAnswer>;
}
