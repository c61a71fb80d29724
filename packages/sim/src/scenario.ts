/**
 * Scenarios: the default lunch rush, the small campus CI runs by the hundred, and the command that
 * replays any of them.
 */
import type { Scenario } from './result.js';

/** The default: 20,000 holders, 60 windows, one hour from 12:00, the internet down 12:05–12:40. */
export function defaultScenario(overrides: Partial<Scenario> = {}): Scenario {
  return checkScenario({
    seed: 1,
    holders: 20_000,
    windows: 60,
    minutes: 60,
    startsAt: '12:00',
    outages: [{ from: 5, to: 40 }],
    faults: { loss: 0.05, duplicate: 0.02, reorder: 0.02, delayMs: 2_000, crash: 0.002 },
    attacks: true,
    ...overrides,
  });
}

/** A small campus with every fault and attacker on, for CI seeds: 200 holders, 6 windows, 20 minutes, an outage in the middle. */
export function smallScenario(seed: number): Scenario {
  return defaultScenario({
    seed,
    holders: 200,
    windows: 6,
    minutes: 20,
    outages: [{ from: 5, to: 12 }],
    faults: { loss: 0.05, duplicate: 0.05, reorder: 0.05, delayMs: 2_000, crash: 0.01 },
  });
}

/** Bounds of a scenario, with the reason for each. */
export const SCENARIO_LIMITS = {
  /** seedCampus numbers holders from 2026000001; the id space and memory hold this many comfortably. */
  holdersMax: 200_000,
  /** Terminal ids and per-window state; a campus has hundreds of windows, not thousands. */
  windowsMax: 1_000,
  /** The attackers use four holders of their own, out of the lunch crowd; fewer holders leave no crowd. */
  holdersWithAttacksMin: 20,
  /** One simulated day at most: credentials last 72 h, so no renewal model is needed. */
  minutesMax: 24 * 60,
} as const;

export function checkScenario(s: Scenario): Scenario {
  const int = (v: number, name: string, min: number, max: number) => {
    if (!Number.isSafeInteger(v) || v < min || v > max) throw new RangeError(`${name} must be an integer in ${min}..${max}, got ${v}`);
  };
  int(s.seed, 'seed', 0, 0xffff_ffff);
  int(s.holders, 'holders', 1, SCENARIO_LIMITS.holdersMax);
  int(s.windows, 'windows', 1, SCENARIO_LIMITS.windowsMax);
  if (s.attacks && s.holders < SCENARIO_LIMITS.holdersWithAttacksMin)
    throw new RangeError(`attacks need at least ${SCENARIO_LIMITS.holdersWithAttacksMin} holders, got ${s.holders} (or turn attacks off)`);
  int(s.minutes, 'minutes', 1, SCENARIO_LIMITS.minutesMax);
  for (const w of s.outages) {
    if (!Number.isFinite(w.from) || !Number.isFinite(w.to) || w.from < 0 || w.to < w.from)
      throw new RangeError(`outage ${w.from}-${w.to}: minutes, from ≤ to`);
  }
  for (const [k, p] of Object.entries({
    loss: s.faults.loss,
    duplicate: s.faults.duplicate,
    reorder: s.faults.reorder,
    crash: s.faults.crash,
  })) {
    if (!(p >= 0 && p <= 1)) throw new RangeError(`${k} must be a probability in 0..1, got ${p}`);
  }
  if (!(s.faults.delayMs >= 0 && s.faults.delayMs <= 600_000))
    throw new RangeError(`delayMs must be in 0..600000, got ${s.faults.delayMs}`);
  if (!/^\d{1,2}:\d{2}$/.test(s.startsAt)) throw new RangeError(`startsAt must be HH:MM, got ${s.startsAt}`);
  return s;
}

/** The `duet sim` command that replays `s` exactly. */
export function replayCommand(s: Scenario): string {
  const parts = [
    'npx duet sim',
    `--seed ${s.seed}`,
    `--holders ${s.holders}`,
    `--windows ${s.windows}`,
    `--minutes ${s.minutes}`,
    ...(s.outages.length === 0 ? ['--outage none'] : s.outages.map((w) => `--outage ${w.from}-${w.to}`)),
    `--loss ${s.faults.loss}`,
    `--duplicate ${s.faults.duplicate}`,
    `--reorder ${s.faults.reorder}`,
    `--delay-ms ${s.faults.delayMs}`,
    `--crash ${s.faults.crash}`,
  ];
  if (!s.attacks) parts.push('--no-attacks');
  return parts.join(' ');
}
