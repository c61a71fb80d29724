import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EventQueue, SimStalledError, watchProgress } from '../src/scheduler.js';

describe('EventQueue: virtual time, one event at a time', () => {
  it('runs events by time, then in the order they were scheduled', async () => {
    fc.assert(
      fc.asyncProperty(fc.array(fc.integer({ min: 0, max: 50 }), { maxLength: 200 }), async (times) => {
        const q = new EventQueue(1_000);
        const ran: [number, number][] = [];
        for (const [i, t] of times.entries()) q.at(1_000 + t, () => void ran.push([q.nowMs(), i]));
        await q.runUntil(2_000);
        const expected = times.map((t, i) => [1_000 + t, i] as [number, number]).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
        expect(ran).toEqual(expected);
        expect(q.nowMs()).toBe(2_000);
      }),
    );
  });

  it('awaits each event to its end before the next starts', async () => {
    const q = new EventQueue(0);
    const log: string[] = [];
    q.at(10, async () => {
      log.push('a start');
      await new Promise((r) => setTimeout(r, 5));
      log.push('a end');
    });
    q.at(10, () => void log.push('b'));
    await q.runUntil(10);
    expect(log).toEqual(['a start', 'a end', 'b']);
  });

  it('leaves events after the horizon for later, and a cancelled event never runs', async () => {
    const q = new EventQueue(0);
    const log: number[] = [];
    q.at(5, () => void log.push(5));
    const cancel = q.after(6, () => void log.push(6));
    q.at(20, () => void log.push(20));
    cancel();
    await q.runUntil(10);
    expect(log).toEqual([5]);
    expect(q.nowMs()).toBe(10);
    await q.runUntil(30);
    expect(log).toEqual([5, 20]);
  });

  it('events scheduled by events run in the same pass when due, never in the past', async () => {
    const q = new EventQueue(0);
    const log: number[] = [];
    q.at(5, () => {
      q.after(0, () => void log.push(q.nowMs()));
      q.at(1, () => void log.push(q.nowMs()));
    });
    await q.runUntil(10);
    expect(log).toEqual([5, 5]);
  });

  it('fails a run whose event waits on virtual time (a deadlock) instead of hanging, and lets a slow event finish', async () => {
    const q = new EventQueue(0);
    q.stallMs = 200;
    // Waits for a later event, which cannot run while this one holds the queue.
    q.at(5, () => new Promise<void>((resolve) => q.after(10, resolve)));
    const stuck = await q.runUntil(100).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(stuck).toBeInstanceOf(SimStalledError);
    expect((stuck as SimStalledError).atMs).toBe(5);
    const slow = new EventQueue(0);
    slow.stallMs = 2_000;
    const log: number[] = [];
    slow.at(1, () => new Promise<void>((resolve) => setTimeout(() => resolve(void log.push(1)), 50)));
    await slow.runUntil(10);
    expect(log).toEqual([1]);
  });

  it('fails work that stops making progress outside any event, and lets work that keeps moving run long', async () => {
    const never = new Promise<void>(() => {});
    const stuck = await watchProgress(
      never,
      () => 7,
      () => 42,
      100,
      () => ['-5:00 sync t3 deny=1'],
    ).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(stuck).toBeInstanceOf(SimStalledError);
    expect((stuck as SimStalledError).atMs).toBe(42);
    // It says where the run stopped: the last trace lines.
    expect((stuck as SimStalledError).message).toContain('-5:00 sync t3 deny=1');
    let ticks = 0;
    const moving = setInterval(() => ticks++, 20);
    try {
      const slow = new Promise<string>((resolve) => setTimeout(() => resolve('done'), 400));
      expect(
        await watchProgress(
          slow,
          () => ticks,
          () => 0,
          150,
        ),
      ).toBe('done');
    } finally {
      clearInterval(moving);
    }
  });
});
