import { describe, expect, it } from 'vitest';
import { runSim, smallScenario } from '../src/index.js';

describe('determinism: a seed replays the same run', () => {
  it('the same seed gives the same trace hash (and the deterministic invariant holds)', async () => {
    const r = await runSim({ ...smallScenario(7), checkDeterminism: true });
    const inv = r.invariants.find((i) => i.name === 'deterministic');
    expect(inv?.ok, inv?.detail).toBe(true);
    expect(r.summary.invariants_ok).toBe(true);
    expect(r.summary.trace_hash).toMatch(/^[0-9a-f]{64}$/);
  });

  it('different seeds give different runs', async () => {
    const a = await runSim(smallScenario(8));
    const b = await runSim(smallScenario(9));
    expect(a.summary.trace_hash).not.toBe(b.summary.trace_hash);
  });

  it('the replay command names every option of the scenario', async () => {
    const s = {
      ...smallScenario(3),
      attacks: false,
      outages: [
        { from: 2, to: 4 },
        { from: 8, to: 9 },
      ],
    };
    const r = await runSim({ ...s, minutes: 10 });
    expect(r.summary.replay).toBe(
      'npx duet sim --seed 3 --holders 200 --windows 6 --minutes 10 --outage 2-4 --outage 8-9 --loss 0.05 --duplicate 0.05 --reorder 0.05 --delay-ms 2000 --crash 0.01 --no-attacks',
    );
    expect(r.attacks).toEqual({});
    expect(r.summary.invariants_ok).toBe(true);
  });
});

describe('scenarios', () => {
  it('refuses options out of bounds with words that name them', async () => {
    await expect(runSim({ ...smallScenario(1), holders: 0 })).rejects.toThrow(/holders/);
    await expect(runSim({ ...smallScenario(1), holders: 10 })).rejects.toThrow(/attacks need at least 20 holders/);
    await expect(runSim({ ...smallScenario(1), faults: { ...smallScenario(1).faults, loss: 2 } })).rejects.toThrow(/loss/);
    await expect(runSim({ ...smallScenario(1), outages: [{ from: 5, to: 2 }] })).rejects.toThrow(/outage/);
  });

  it('a tiny campus without attacks, one window and no outage still keeps every invariant', async () => {
    const r = await runSim({ ...smallScenario(2), holders: 10, windows: 1, minutes: 5, outages: [], attacks: false });
    expect(r.invariants.filter((i) => !i.ok)).toEqual([]);
    expect(r.series.paymentsPerMinute).toHaveLength(5);
  });
});
