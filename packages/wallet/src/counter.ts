/**
 * Internal. The code counter with write-ahead reservation: a counter is handed out only when a
 * durable state already says `reservedThrough >= counter`. After a crash, counting resumes at
 * reservedThrough + 1, so a counter is never handed out twice, whatever the crash point; the price
 * is skipping the unused rest of the block.
 *
 * Reservations are made a block at a time, and the next block is reserved in the background when
 * half of the current one is used, so a code waits for a store write only when codes are made
 * faster than the store can write.
 */
import { CODE_COUNTER_MAX } from '@duet/protocol';
import { WalletError } from './errors.js';

const noop = (): void => {};

/** Runs async critical sections one at a time, in call order. */
export class Mutex {
  private tail: Promise<void> = Promise.resolve();

  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(fn);
    this.tail = result.then(noop, noop);
    return result;
  }
}

export class CounterReservation {
  /** The next counter to hand out. */
  private next: number;
  /** What the next state write will reserve through (in memory; at least `durable`). */
  private reserved: number;
  /** The highest reservedThrough a completed store write holds. */
  private durable: number;
  private prefetch: Promise<void> | undefined;
  private released = false;
  private readonly lock = new Mutex();

  /**
   * @param reservedThrough what the loaded state holds; counting resumes after it.
   * @param persist writes the whole wallet state (which reads `reservedThrough`) and calls `markDurable`.
   */
  constructor(
    reservedThrough: number,
    private readonly block: number,
    private readonly persist: () => Promise<void>,
  ) {
    this.next = reservedThrough + 1;
    this.reserved = reservedThrough;
    this.durable = reservedThrough;
  }

  /** Goes into every state write: everything at or below it may have been handed out. */
  get reservedThrough(): number {
    return this.reserved;
  }

  /** The last counter handed out by this instance or before the last restart (0 when none). */
  get lastTaken(): number {
    return this.next - 1;
  }

  /** Counters this wallet can still hand out, ever. */
  get left(): number {
    return Math.max(0, CODE_COUNTER_MAX - this.next + 1);
  }

  markDurable(reservedThrough: number): void {
    if (reservedThrough > this.durable) this.durable = reservedThrough;
  }

  /** The next counter, durably reserved. Concurrent calls are served one at a time. */
  take(): Promise<number> {
    return this.lock.run(async () => {
      // The wallet refuses calls once closed; this guards the invariant should that ever change.
      if (this.released) throw new WalletError('wallet_closed', 'counters were released');
      while (this.next > this.durable) {
        if (this.next > CODE_COUNTER_MAX) throw new WalletError('counter_exhausted', `counter ${this.next} > ${CODE_COUNTER_MAX}`);
        if (this.prefetch !== undefined && this.reserved >= this.next) {
          await this.prefetch;
          continue;
        }
        if (this.reserved < this.next) this.reserved = Math.min(CODE_COUNTER_MAX, this.next + this.block - 1);
        await this.persist();
      }
      const counter = this.next++;
      this.reserveAhead();
      return counter;
    });
  }

  private reserveAhead(): void {
    if (this.prefetch !== undefined || this.reserved >= CODE_COUNTER_MAX) return;
    if (this.reserved - this.next + 1 >= Math.ceil(this.block / 2)) return;
    this.reserved = Math.min(CODE_COUNTER_MAX, this.reserved + this.block);
    // A failed background write is not lost: the next take() that needs it writes again and reports.
    this.prefetch = this.persist()
      .then(noop, noop)
      .finally(() => {
        this.prefetch = undefined;
      });
  }

  /**
   * For a clean shutdown: after every take already queued, gives back the reserved counters not
   * handed out (the write stores lastTaken), so a clean restart skips nothing. Nothing can be taken
   * afterwards: `durable` still names the old reservation, which the store no longer holds.
   */
  release(): Promise<void> {
    return this.lock.run(async () => {
      this.released = true;
      this.reserved = this.next - 1; // a background write still queued will store this too: writes run in order
      await this.persist();
    });
  }
}
