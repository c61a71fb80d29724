/**
 * Simulator benchmark (issue 7): one lunch rush (the default scenario, or the small CI campus with
 * `--sim-small` for a quick run), its wall time, payments per wall-clock second and summary figures,
 * and in the same run the floor it is compared with: the signature verifications its terminal
 * decisions need at the very least (two per decision: issuer on the credential, device on the code),
 * timed alone. Everything else the simulator does (clearing, the ledger, the network, the faults, the
 * invariant checks) is what the ratio measures.
 */
import { nodeCrypto } from '@duet/protocol/node';
import type { SimResult } from '@duet/sim';
import type { SimEngine } from '../commands/sim.js';
import { rate, round3 } from './measure.js';

export interface SimFigures {
  sim_scenario: 'default' | 'small';
  sim_default_wall_s: number;
  sim_payments_per_wall_s: number;
  sim_summary: {
    seed: number;
    holders: number;
    windows: number;
    sim_minutes: number;
    payments_attempted: number;
    payments_accepted: number;
    payments_cleared: number;
    lost: number;
    double_counted: number;
    attacks_attempted: number;
    attacks_caught: number;
    books_balanced: boolean;
    invariants_ok: boolean;
    trace_hash: string;
  };
  sim_decision_p50_ms: number;
  sim_decision_p99_ms: number;
  /** Signature verifications per second, the floor's unit cost, measured in this run. */
  sim_floor_sig_verify_per_s: number;
  /** Seconds the decisions' signature verifications alone take: 2 × decisions ÷ verifies per second. */
  sim_floor_s: number;
  /** sim_default_wall_s ÷ sim_floor_s: how much the whole simulated campus costs over its bare crypto. */
  sim_wall_vs_floor: number;
}

export async function benchSim(
  engine: SimEngine,
  options: { readonly small: boolean; readonly seed: number; readonly seconds: number },
  progress: (m: string) => void,
): Promise<{ figures: SimFigures; result: SimResult }> {
  const scenario = options.small ? engine.smallScenario(options.seed) : engine.defaultScenario(options.seed);
  progress(`sim: ${options.small ? 'small' : 'default'} scenario, seed ${options.seed}, ${scenario.minutes} simulated minutes`);
  let lastTenth = -1;
  const started = performance.now();
  const result = await engine.run(scenario, (done, total) => {
    const tenth = Math.floor((done * 10) / Math.max(1, total));
    if (tenth !== lastTenth) progress(`sim: minute ${done}/${total}`);
    lastTenth = tenth;
  });
  const wallS = (performance.now() - started) / 1000;
  const s = result.summary;
  if (!s.invariants_ok) throw new Error(`bench: the simulation broke an invariant; replay with: ${s.replay}`);

  progress('sim: floor (signature verifications alone)');
  const crypto = nodeCrypto();
  const p256 = crypto.suite('p256');
  const signer = await p256.generate();
  const message = crypto.randomBytes(200);
  const signature = await signer.sign(message);
  const verifyPerS = (await rate(() => p256.verify(signer.publicKey, message, signature), options.seconds)).perSecond;
  // Every attempt reaches a terminal's decision; attacks are decisions too.
  const decisions = s.payments_attempted + s.attacks_attempted;
  const floorS = (2 * decisions) / verifyPerS;
  return {
    result,
    figures: {
      sim_scenario: options.small ? 'small' : 'default',
      sim_default_wall_s: round3(wallS),
      sim_payments_per_wall_s: Math.round(s.payments_attempted / wallS),
      sim_summary: {
        seed: s.seed,
        holders: scenario.holders,
        windows: scenario.windows,
        sim_minutes: s.sim_minutes,
        payments_attempted: s.payments_attempted,
        payments_accepted: s.payments_accepted,
        payments_cleared: s.payments_cleared,
        lost: s.lost,
        double_counted: s.double_counted,
        attacks_attempted: s.attacks_attempted,
        attacks_caught: s.attacks_caught,
        books_balanced: s.books_balanced,
        invariants_ok: s.invariants_ok,
        trace_hash: s.trace_hash,
      },
      sim_decision_p50_ms: result.series.latencyMs.p50,
      sim_decision_p99_ms: result.series.latencyMs.p99,
      sim_floor_sig_verify_per_s: verifyPerS,
      sim_floor_s: round3(floorS),
      sim_wall_vs_floor: floorS > 0 ? round3(wallS / floorS) : 0,
    },
  };
}
