/**
 * Online first (DESIGN §6): when the platform answers within the policy's budget the terminal
 * authorizes online. On timeout, error or overload it decides offline by itself. A circuit breaker
 * stops a sick platform from adding its timeout to every payment. The record says which path
 * decided.
 */
import { decodeRecord } from '@duet/protocol';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  BREAKER_FAILURES_TO_OPEN,
  BREAKER_OPEN_MS,
  CircuitBreaker,
  type OnlineAnswer,
  type OnlineAuthorizer,
  type OnlineRequest,
  type Terminal,
} from '../src/index.js';
import { makeWorld, type Payer, payer, policy, readyTerminal, TestClock, type World } from './fixture.js';

type Behaviour = 'approve' | 'insufficient' | 'hang' | 'throw';

/** A platform authorizer whose behaviour the test switches; it counts every call it gets. */
class Authorizer implements OnlineAuthorizer {
  calls = 0;
  readonly requests: OnlineRequest[] = [];
  readonly signals: AbortSignal[] = [];
  constructor(public behaviour: Behaviour) {}

  async authorize(request: OnlineRequest, signal: AbortSignal): Promise<OnlineAnswer> {
    this.calls++;
    this.requests.push(request);
    this.signals.push(signal);
    switch (this.behaviour) {
      case 'approve':
        await sleep(5);
        return { approved: true, authorization: `A-${this.calls}` };
      case 'insufficient':
        await sleep(5);
        return { approved: false, reason: 'insufficient_funds', detail: 'balance 3.20 yuan' };
      case 'hang':
        // Ignores its signal on purpose: the budget must hold even against a badly behaved client.
        return new Promise<OnlineAnswer>(() => undefined);
      case 'throw':
        throw new Error('503 Service Unavailable');
    }
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

let w: World;
beforeAll(async () => {
  w = await makeWorld();
});

async function setup(behaviour: Behaviour, onlineBudgetMs: number): Promise<{ t: Terminal; a: Authorizer; clock: TestClock; p: Payer }> {
  const clock = new TestClock();
  const a = new Authorizer(behaviour);
  const t = await readyTerminal(w, clock, { online: a });
  await t.state.installPolicy(await policy(w, { onlineBudgetMs }), clock.s);
  // Online payments skip the offline limits, but offline ones count: a generous payer keeps this test about paths.
  const p = await payer(w, { offlineCount: 50, offlineTotal: 100_000 });
  return { t, a, clock, p };
}

/** The path written in the newest journal record, decoded from its signed bytes. */
async function lastRecordPath(t: Terminal): Promise<string | undefined> {
  const records = await t.journal.pending(t.headSequence - 1, 1);
  const bytes = records[0];
  return bytes === undefined ? undefined : decodeRecord(bytes).path;
}

async function timedPay(t: Terminal, p: Payer, clock: TestClock, amount = 800) {
  const text = await p.text(clock.s);
  const started = performance.now();
  const decision = await t.pay(amount, text);
  return { decision, ms: performance.now() - started };
}

describe('online first', () => {
  it('authorizes online when the platform approves within budget, and the record says online', async () => {
    const { t, a, clock, p } = await setup('approve', 300);
    const { decision } = await timedPay(t, p, clock, 1250);
    expect(decision).toMatchObject({ accepted: true, path: 'online', amount: 1250, sequence: 1 });
    expect(await lastRecordPath(t)).toBe('online');
    expect(a.calls).toBe(1);
    expect(a.requests[0]).toMatchObject({ terminalId: 101, amount: 1250, time: clock.s });
  });

  it('declines with the platform reason and journals nothing', async () => {
    const { t, a, clock, p } = await setup('insufficient', 300);
    const { decision } = await timedPay(t, p, clock);
    expect(decision).toMatchObject({ accepted: false, reason: 'insufficient_funds', detail: 'balance 3.20 yuan' });
    expect(decision.words.en.length).toBeGreaterThan(0);
    expect(t.headSequence).toBe(0);
    expect(await t.journal.pending(0, 10)).toEqual([]);
    expect(a.calls).toBe(1);
  });

  it('counts a decline as an answer: declines never open the breaker', async () => {
    const { t, a, clock, p } = await setup('insufficient', 300);
    for (let i = 0; i < BREAKER_FAILURES_TO_OPEN + 2; i++) await timedPay(t, p, clock);
    expect(a.calls).toBe(BREAKER_FAILURES_TO_OPEN + 2);
  });

  it('decides offline after the budget when the platform hangs, and the record says offline', async () => {
    const { t, a, clock, p } = await setup('hang', 50);
    const { decision, ms } = await timedPay(t, p, clock);
    expect(decision).toMatchObject({ accepted: true, path: 'offline', sequence: 1 });
    expect(await lastRecordPath(t)).toBe('offline');
    expect(ms).toBeGreaterThanOrEqual(45);
    expect(ms).toBeLessThan(1_000);
    expect(a.signals[0]?.aborted).toBe(true);
  });

  it('decides offline at once when the authorizer throws, without waiting out the budget', async () => {
    const { t, a, clock, p } = await setup('throw', 5_000);
    const { decision, ms } = await timedPay(t, p, clock);
    expect(decision).toMatchObject({ accepted: true, path: 'offline' });
    expect(await lastRecordPath(t)).toBe('offline');
    expect(ms).toBeLessThan(1_000);
    expect(a.calls).toBe(1);
  });

  it('applies the offline limits when it falls back', async () => {
    const { t, clock } = await setup('throw', 300);
    const p = await payer(w, { perPayment: 1_000 });
    const { decision } = await timedPay(t, p, clock, 1_500);
    expect(decision).toMatchObject({ accepted: false, reason: 'over_payment_limit' });
  });
});

describe('circuit breaker in the terminal', () => {
  it(`opens after ${BREAKER_FAILURES_TO_OPEN} timeouts: later payments skip the platform and do not wait`, async () => {
    const budgetMs = 200;
    const { t, a, clock, p } = await setup('hang', budgetMs);
    for (let i = 0; i < BREAKER_FAILURES_TO_OPEN; i++) {
      const { decision, ms } = await timedPay(t, p, clock);
      expect(decision.path).toBe('offline');
      expect(ms).toBeGreaterThanOrEqual(budgetMs - 5);
    }
    expect(a.calls).toBe(BREAKER_FAILURES_TO_OPEN);
    for (let i = 0; i < 3; i++) {
      const { decision, ms } = await timedPay(t, p, clock);
      expect(decision).toMatchObject({ accepted: true, path: 'offline' });
      expect(ms).toBeLessThan(budgetMs);
    }
    expect(a.calls).toBe(BREAKER_FAILURES_TO_OPEN);
  });

  it('sends one trial online after BREAKER_OPEN_MS; its success closes the breaker', async () => {
    const { t, a, clock, p } = await setup('throw', 300);
    for (let i = 0; i < BREAKER_FAILURES_TO_OPEN; i++) await timedPay(t, p, clock);
    a.behaviour = 'approve';
    clock.advance(BREAKER_OPEN_MS / 1000 - 1);
    expect((await timedPay(t, p, clock)).decision.path).toBe('offline');
    expect(a.calls).toBe(BREAKER_FAILURES_TO_OPEN);

    clock.advance(1);
    const trial = await timedPay(t, p, clock);
    expect(trial.decision).toMatchObject({ accepted: true, path: 'online' });
    expect(await lastRecordPath(t)).toBe('online');
    expect(a.calls).toBe(BREAKER_FAILURES_TO_OPEN + 1);

    const after = await timedPay(t, p, clock);
    expect(after.decision.path).toBe('online');
    expect(a.calls).toBe(BREAKER_FAILURES_TO_OPEN + 2);
  });

  it('re-opens when the trial fails, for another full BREAKER_OPEN_MS', async () => {
    const { t, a, clock, p } = await setup('throw', 300);
    for (let i = 0; i < BREAKER_FAILURES_TO_OPEN; i++) await timedPay(t, p, clock);
    clock.advance(BREAKER_OPEN_MS / 1000);
    expect((await timedPay(t, p, clock)).decision.path).toBe('offline');
    expect(a.calls).toBe(BREAKER_FAILURES_TO_OPEN + 1);

    a.behaviour = 'approve';
    clock.advance(BREAKER_OPEN_MS / 1000 - 1);
    expect((await timedPay(t, p, clock)).decision.path).toBe('offline');
    expect(a.calls).toBe(BREAKER_FAILURES_TO_OPEN + 1);
    clock.advance(1);
    expect((await timedPay(t, p, clock)).decision.path).toBe('online');
  });

  it('opens only on consecutive failures: a success in between resets the count', async () => {
    const { t, a, clock, p } = await setup('throw', 300);
    for (let round = 0; round < 3; round++) {
      a.behaviour = 'throw';
      for (let i = 0; i < BREAKER_FAILURES_TO_OPEN - 1; i++) await timedPay(t, p, clock);
      a.behaviour = 'approve';
      expect((await timedPay(t, p, clock)).decision.path).toBe('online');
    }
    expect(a.calls).toBe(3 * BREAKER_FAILURES_TO_OPEN);
  });
});

describe('CircuitBreaker', () => {
  const T = 1_000_000;

  it('goes closed → open → half_open → closed', () => {
    const b = new CircuitBreaker(3, 30_000);
    expect(b.state(T)).toBe('closed');
    b.failure(T);
    b.failure(T + 1);
    expect(b.state(T + 2)).toBe('closed');
    expect(b.allow(T + 2)).toBe(true);
    b.failure(T + 2);
    expect(b.state(T + 2)).toBe('open');
    expect(b.allow(T + 3)).toBe(false);
    expect(b.state(T + 2 + 29_999)).toBe('open');
    expect(b.allow(T + 2 + 29_999)).toBe(false);
    expect(b.state(T + 2 + 30_000)).toBe('half_open');
    expect(b.allow(T + 2 + 30_000)).toBe(true);
    b.success();
    expect(b.state(T + 2 + 30_000)).toBe('closed');
    expect(b.allow(T + 2 + 30_001)).toBe(true);
  });

  it('lets only one trial through while half open', () => {
    const b = new CircuitBreaker(1, 1_000);
    b.failure(T);
    expect(b.allow(T + 1_000)).toBe(true);
    expect(b.allow(T + 1_000)).toBe(false);
    expect(b.allow(T + 5_000)).toBe(false);
    b.success();
    expect(b.allow(T + 5_000)).toBe(true);
    expect(b.allow(T + 5_000)).toBe(true);
  });

  it('re-opens from half open on a failed trial, timed from that failure', () => {
    const b = new CircuitBreaker(3, 1_000);
    for (let i = 0; i < 3; i++) b.failure(T);
    expect(b.allow(T + 1_000)).toBe(true);
    b.failure(T + 1_500);
    expect(b.state(T + 1_500)).toBe('open');
    expect(b.allow(T + 2_499)).toBe(false);
    expect(b.allow(T + 2_500)).toBe(true);
  });

  it('forgets failures on success while closed', () => {
    const b = new CircuitBreaker(2, 1_000);
    b.failure(T);
    b.success();
    b.failure(T);
    expect(b.state(T)).toBe('closed');
    b.failure(T);
    expect(b.state(T)).toBe('open');
  });

  it('uses the limits from limits.ts by default', () => {
    const b = new CircuitBreaker();
    for (let i = 0; i < BREAKER_FAILURES_TO_OPEN - 1; i++) b.failure(T);
    expect(b.state(T)).toBe('closed');
    b.failure(T);
    expect(b.state(T + BREAKER_OPEN_MS - 1)).toBe('open');
    expect(b.state(T + BREAKER_OPEN_MS)).toBe('half_open');
  });
});
