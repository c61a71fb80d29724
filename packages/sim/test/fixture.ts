/** A hand-made SimResult for the report and CLI tests: shaped like a real run, every field filled. */
import type { SimResult } from '../src/result.js';

export function fixtureResult(overrides: { readonly seed?: number; readonly invariantsOk?: boolean } = {}): SimResult {
  const seed = overrides.seed ?? 42;
  const ok = overrides.invariantsOk ?? true;
  const minutes = 60;
  const perMinute = Array.from({ length: minutes }, (_v, i) => 20 + ((i * 7) % 13));
  return {
    scenario: {
      seed,
      holders: 3_000,
      windows: 24,
      minutes,
      startsAt: '12:00',
      outages: [{ from: 5, to: 40 }],
      faults: { loss: 0.05, duplicate: 0.02, reorder: 0.1, delayMs: 200, crash: 0.001 },
      attacks: true,
    },
    summary: {
      seed,
      payments_attempted: 1_520,
      payments_accepted: 1_481,
      payments_declined: 39,
      payments_recovered_after_power_cut: 2,
      payments_cleared: 1_481,
      lost: 0,
      double_counted: 0,
      attacks_attempted: 27,
      attacks_caught: 27,
      books_balanced: true,
      audit_ok: true,
      invariants_ok: ok,
      trace_hash: 'a1b2c3d4e5f60718',
      sim_minutes: minutes,
      wall_ms: 8_123,
      replay: `npm run sim -- --seed ${seed}`,
    },
    invariants: [
      { name: 'accepted_cleared_once', ok: true, detail: '' },
      { name: 'books_balance', ok, detail: ok ? '' : 'purse 17 off by 250 fen' },
    ],
    attacks: {
      forged_code: { attempted: 10, declined: 10, flagged: 0, missed: 0, unrecoveredFen: 0 },
      overspend_offline: { attempted: 17, declined: 9, flagged: 8, missed: 0, unrecoveredFen: 1_200 },
    },
    series: {
      paymentsPerMinute: perMinute,
      queueLength: perMinute.map((v) => Math.round(v / 3)),
      uploadBacklog: perMinute.map((_v, i) => (i < 5 ? 3 : i < 40 ? (i - 5) * 30 : Math.max(0, 1_050 - (i - 40) * 120))),
      latencyMs: { bucketsMs: [1, 2, 5, 10, 20, 50], counts: [10, 400, 900, 150, 15, 5, 1], p50: 3.2, p99: 14.5 },
      lossesByCause: { overspend_recovered: 4_800, overspend_written_off: 1_200 },
    },
  };
}
