/**
 * The simulator's virtual time: a discrete-event queue ordered by time, then by insertion. Events
 * run strictly one at a time and each is awaited to its end before the next starts, so async code
 * in the real cores cannot interleave differently from one run to the next.
 */
import type { Scheduler } from '@duet/terminal';

export interface Clock {
  nowMs(): number;
}

interface Event {
  readonly atMs: number;
  readonly order: number;
  readonly run: () => void | Promise<void>;
  cancelled: boolean;
}

/** Real time without any progress after which a run is stuck, not slow. */
export const STALL_MS = 600_000;

export class EventQueue implements Clock, Scheduler {
  private heap: Event[] = [];
  private order = 0;
  private now: number;
  /** Events run so far (a bound for runaway loops). */
  ran = 0;
  /**
   * Real milliseconds one event may take before the run is declared stuck (see `guard`): long
   * enough for the longest honest event (clearing a whole backlog) on a loaded machine.
   */
  stallMs = STALL_MS;

  constructor(startMs: number) {
    this.now = startMs;
  }

  nowMs(): number {
    return this.now;
  }

  get size(): number {
    return this.heap.length;
  }

  /** Schedules `run` at absolute virtual time `atMs` (never before now). Returns a cancel function. */
  at(atMs: number, run: () => void | Promise<void>): () => void {
    if (!Number.isFinite(atMs)) throw new RangeError(`event time must be finite, got ${atMs}`);
    const e: Event = { atMs: Math.max(atMs, this.now), order: this.order++, run, cancelled: false };
    this.push(e);
    return () => {
      e.cancelled = true;
    };
  }

  /** The terminal's Scheduler port: `fn` runs `ms` from now on virtual time. */
  after(ms: number, fn: () => void): () => void {
    return this.at(this.now + Math.max(0, ms), fn);
  }

  /** Runs events in order until none is due at or before `untilMs`; the clock then stands at `untilMs`. */
  async runUntil(untilMs: number): Promise<void> {
    for (;;) {
      const top = this.heap[0];
      if (top === undefined || top.atMs > untilMs) break;
      this.pop();
      if (top.cancelled) continue;
      this.now = top.atMs;
      this.ran++;
      const done = top.run();
      if (done !== undefined) await this.guard(done, top.atMs);
    }
    if (untilMs > this.now) this.now = untilMs;
  }

  /**
   * Waits for an event's work, but not forever: work that waits on virtual time (which cannot move
   * while the event holds the queue) or on something that never answers would hang the run
   * silently. After `stallMs` of real time the run fails instead, naming the virtual moment.
   */
  private guard(work: Promise<void>, atMs: number): Promise<void> {
    // No progress counter inside one event: any `stallMs` of real time is a stall.
    return watchProgress(
      work,
      () => 0,
      () => atMs,
      this.stallMs,
    );
  }

  private less(x: Event, y: Event): boolean {
    return x.atMs < y.atMs || (x.atMs === y.atMs && x.order < y.order);
  }

  private push(e: Event): void {
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const pe = h[p] as Event;
      if (!this.less(e, pe)) break;
      h[i] = pe;
      i = p;
    }
    h[i] = e;
  }

  private pop(): void {
    const h = this.heap;
    const last = h.pop();
    if (last === undefined || h.length === 0) return;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      let me = last;
      const le = h[l];
      const re = h[r];
      if (le !== undefined && this.less(le, me)) {
        m = l;
        me = le;
      }
      if (re !== undefined && this.less(re, me)) m = r;
      if (m === i) break;
      h[i] = h[m] as Event;
      i = m;
    }
    h[i] = last;
  }
}

/** One event's work took longer than the queue allows in real time: the run is stuck, not slow. */
export class SimStalledError extends Error {
  constructor(
    readonly atMs: number,
    readonly stallMs: number,
    /** The last trace lines before the stall (what the run was doing), oldest first. */
    readonly lastTrace: readonly string[] = [],
  ) {
    const at = new Date(atMs).toISOString();
    const tail = lastTrace.length === 0 ? '' : `\nlast trace lines / 最后的轨迹行:\n  ${lastTrace.join('\n  ')}`;
    super(
      `the simulation is stuck: nothing moved for ${stallMs} ms of real time at virtual time ${at} / 模拟卡住：虚拟时刻 ${at} 起 ${stallMs} 毫秒（真实时间）毫无进展${tail}`,
    );
    this.name = 'SimStalledError';
  }
}

/**
 * Waits for `work`, but fails with SimStalledError when `progress()` (a count that grows with every
 * event and every network call) has not moved for `stallMs` of real time. It covers what runs
 * outside queue events too (making the campus, the morning list syncs, the final audit).
 */
export async function watchProgress<T>(
  work: Promise<T>,
  progress: () => number,
  atMs: () => number,
  stallMs: number = STALL_MS,
  lastTrace: () => readonly string[] = () => [],
): Promise<T> {
  let timer: ReturnType<typeof setInterval> | undefined;
  let last = progress();
  let since = performance.now();
  const stalled = new Promise<never>((_, reject) => {
    timer = setInterval(
      () => {
        const now = progress();
        if (now !== last) {
          last = now;
          since = performance.now();
        } else if (performance.now() - since >= stallMs) reject(new SimStalledError(atMs(), stallMs, lastTrace()));
      },
      Math.max(10, Math.min(5_000, Math.floor(stallMs / 10))),
    );
  });
  try {
    return await Promise.race([work, stalled]);
  } finally {
    clearInterval(timer);
  }
}
