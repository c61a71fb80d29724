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

export class EventQueue implements Clock, Scheduler {
  private heap: Event[] = [];
  private order = 0;
  private now: number;
  /** Events run so far (a bound for runaway loops). */
  ran = 0;
  /** Real milliseconds one event may take before the run is declared stuck (see `guard`). */
  stallMs = 120_000;

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
  private async guard(work: Promise<void>, atMs: number): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const stalled = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new SimStalledError(atMs, this.stallMs)), this.stallMs);
    });
    try {
      await Promise.race([work, stalled]);
    } finally {
      clearTimeout(timer);
    }
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
  ) {
    super(
      `the simulation is stuck: an event at virtual time ${new Date(atMs).toISOString()} has not finished after ${stallMs} ms of real time / 模拟卡住：虚拟时刻 ${new Date(atMs).toISOString()} 的事件在 ${stallMs} 毫秒（真实时间）后仍未完成`,
    );
    this.name = 'SimStalledError';
  }
}
