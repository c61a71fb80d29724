/**
 * The seed sweep shared by the two seed test files (vitest runs files in parallel, so the sweep is
 * split in halves across the CI's two cores). DUET_SIM_SEEDS sets the total (default 200).
 */
import { expect, it } from 'vitest';
import { runSeeds, smallScenario } from '../src/index.js';

export const SEEDS = Number(process.env.DUET_SIM_SEEDS ?? 200);
/** A small campus takes about 1.5 s; this leaves room for a slow machine. */
const SECONDS_PER_SEED_MAX = 15;

export function sweep(half: 0 | 1): void {
  const first = half === 0 ? 1 : 1 + Math.ceil(SEEDS / 2);
  const count = half === 0 ? Math.ceil(SEEDS / 2) : Math.floor(SEEDS / 2);
  it(
    `seeds ${first} to ${first + count - 1} of the small campus keep every invariant`,
    async () => {
      const failures: string[] = [];
      await runSeeds(
        first,
        count,
        (r) => {
          if (!r.summary.invariants_ok) {
            const broken = r.invariants.filter((i) => !i.ok).map((i) => `${i.name}: ${i.detail}`);
            failures.push(`seed ${r.summary.seed} broke ${broken.join('; ')}\n  replay: ${r.summary.replay}`);
          }
        },
        smallScenario,
      );
      expect(failures, failures.join('\n')).toEqual([]);
    },
    Math.max(60_000, count * SECONDS_PER_SEED_MAX * 1000),
  );
}
