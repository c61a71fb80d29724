/**
 * What a simulation run answers: the summary (`duet sim --json`), the series the report draws, and
 * the invariant verdicts. Shared by the runner (which fills it) and the report (which draws it).
 * Keys of the summary are snake_case because they are the figures, read by people and CI.
 */

/** A window of simulated time, minutes from the start of the run (12:00 is minute 0 by default). */
export interface MinuteWindow {
  readonly from: number;
  readonly to: number;
}

export interface Scenario {
  readonly seed: number;
  readonly holders: number;
  readonly windows: number;
  /** Simulated minutes of the rush (default 60). */
  readonly minutes: number;
  /** Wall-clock label of minute 0, "12:00". */
  readonly startsAt: string;
  /** Internet down for the terminals (default [{ from: 5, to: 40 }], 12:05 to 12:40). */
  readonly outages: readonly MinuteWindow[];
  readonly faults: {
    /** Probabilities per network call, 0..1. */
    readonly loss: number;
    readonly duplicate: number;
    readonly reorder: number;
    /** Added delay, ms, up to this many. */
    readonly delayMs: number;
    /** Chance per simulated minute that a terminal crashes (losing unsynced writes) and restarts. */
    readonly crash: number;
  };
  /** Whether attackers run. */
  readonly attacks: boolean;
}

export type AttackKind =
  | 'replay_other_window'
  | 'forged_code'
  | 'tampered_code'
  | 'expired_credential'
  | 'revoked_credential'
  | 'skewed_terminal_clock'
  | 'journal_record_deleted'
  | 'journal_record_altered'
  | 'overspend_offline';

export interface AttackTally {
  readonly attempted: number;
  /** Refused at the counter. */
  readonly declined: number;
  /** Accepted offline, then flagged (or refused) at clearing/intake. */
  readonly flagged: number;
  /** Neither: each one is an invariant violation unless the loss is within the policy's bound. */
  readonly missed: number;
  /** Loss this kind caused that the platform did not recover, fen. */
  readonly unrecoveredFen: number;
}

export interface Invariant {
  readonly name: string;
  readonly ok: boolean;
  /** Words for people when not ok (first few offending items). */
  readonly detail: string;
}

export interface SimSeries {
  /** One entry per simulated minute. */
  readonly paymentsPerMinute: readonly number[];
  /** People waiting in all window queues at the end of each minute. */
  readonly queueLength: readonly number[];
  /** Records decided on terminals but not yet acknowledged by the platform, end of each minute. */
  readonly uploadBacklog: readonly number[];
  /** Decision latency histogram of the real terminal code (wall-clock, not part of the trace hash). */
  readonly latencyMs: {
    readonly bucketsMs: readonly number[];
    readonly counts: readonly number[];
    readonly p50: number;
    readonly p99: number;
  };
  /** Losses by cause, fen (e.g. overspend recovered later vs written off). */
  readonly lossesByCause: { readonly [cause: string]: number };
}

export interface SimSummary {
  readonly seed: number;
  readonly payments_attempted: number;
  readonly payments_accepted: number;
  readonly payments_declined: number;
  readonly payments_cleared: number;
  /**
   * Decisions a power cut hid whose record had landed, shown by the restarted terminal (they count
   * as accepted and must clear once like any other).
   */
  readonly payments_recovered_after_power_cut: number;
  /** Accepted payments not cleared at the end (must be 0). */
  readonly lost: number;
  /** Records counted more than once (must be 0). */
  readonly double_counted: number;
  readonly attacks_attempted: number;
  readonly attacks_caught: number;
  readonly books_balanced: boolean;
  readonly audit_ok: boolean;
  readonly invariants_ok: boolean;
  /** Hash of the run's event trace: the same seed and options give the same hash. */
  readonly trace_hash: string;
  readonly sim_minutes: number;
  /** Wall-clock milliseconds the run took (not part of the trace). */
  readonly wall_ms: number;
  /** The command that replays this run. */
  readonly replay: string;
}

export interface SimResult {
  readonly scenario: Scenario;
  readonly summary: SimSummary;
  readonly invariants: readonly Invariant[];
  readonly attacks: { readonly [K in AttackKind]?: AttackTally };
  readonly series: SimSeries;
}
