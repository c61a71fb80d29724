/**
 * @duet/sim: the lunch-rush simulator. It runs the real wallet, terminal, platform and clearing
 * code in one process on a virtual clock, with seeded faults and attackers, and checks the
 * invariants (docs/sim.md).
 */
export * from './result.js';
export * from './report.js';
export { type BreakClearing, type RunOptions, runSeeds, runSim } from './run.js';
export { checkScenario, defaultScenario, replayCommand, SCENARIO_LIMITS, smallScenario } from './scenario.js';
export { type Random, sfc32 } from './random.js';
export { EventQueue, SimStalledError, STALL_MS, watchProgress } from './scheduler.js';
export { BlockedThreadGuard, blockedThreadGuard } from './blocked.js';
