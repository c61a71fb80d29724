import { describe, expect, it } from 'vitest';
import { type BreakClearing, runSim, smallScenario } from '../src/index.js';

/** Each deliberately broken clearing rule and the invariant that must catch it. */
const CASES: readonly [BreakClearing, string][] = [
  ['double_count', 'accepted_cleared_once'],
  ['drop_replays', 'attacks_caught'],
  ['lose_record', 'nothing_lost'],
];

describe('the invariant checks can fail: a broken clearing rule is caught', () => {
  for (const [mode, invariant] of CASES) {
    it(`${mode} breaks ${invariant}`, async () => {
      const r = await runSim({ ...smallScenario(11), breakClearing: mode });
      expect(r.summary.invariants_ok).toBe(false);
      const broken = r.invariants.filter((i) => !i.ok).map((i) => i.name);
      expect(broken).toContain(invariant);
      expect(r.invariants.find((i) => i.name === invariant)?.detail).not.toBe('');
    });
  }

  it('the same seed without a broken rule keeps every invariant', async () => {
    const r = await runSim(smallScenario(11));
    expect(r.invariants.filter((i) => !i.ok)).toEqual([]);
  });
});
