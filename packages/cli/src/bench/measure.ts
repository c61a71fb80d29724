/** Timing helpers for benchmarks: wall-clock rates and latency percentiles, nothing else. */

export interface Rate {
  readonly ops: number;
  readonly seconds: number;
  readonly perSecond: number;
}

/** Runs `op` sequentially for about `seconds` (after a short warm-up) and returns its rate. */
export async function rate(op: () => Promise<unknown> | unknown, seconds: number): Promise<Rate> {
  const warmUntil = performance.now() + Math.min(200, seconds * 200);
  while (performance.now() < warmUntil) await op();
  const start = performance.now();
  const end = start + seconds * 1000;
  let ops = 0;
  let now = start;
  while (now < end) {
    // Check the clock every 16 operations: reading it costs more than a cheap operation.
    for (let i = 0; i < 16; i++) await op();
    ops += 16;
    now = performance.now();
  }
  const s = (now - start) / 1000;
  return { ops, seconds: s, perSecond: Math.round(ops / s) };
}

/** Latency percentiles in milliseconds over `count` sequential runs of `op`. */
export async function latency(op: (i: number) => Promise<unknown>, count: number): Promise<{ p50: number; p99: number; max: number }> {
  const samples = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    const t = performance.now();
    await op(i);
    samples[i] = performance.now() - t;
  }
  samples.sort();
  const at = (q: number): number => round3(samples[Math.min(count - 1, Math.floor(q * count))] ?? 0);
  return { p50: at(0.5), p99: at(0.99), max: round3(samples[count - 1] ?? 0) };
}

export function round3(v: number): number {
  return Math.round(v * 1000) / 1000;
}
