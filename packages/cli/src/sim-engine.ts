/** The simulator (@duet/sim) as `duet sim` and the bench use it. */
import { defaultScenario, replayCommand, runSim, smallScenario } from '@duet/sim';
import type { SimEngine } from './commands/sim.js';

export const simEngine: SimEngine = {
  defaultScenario: (seed) => defaultScenario({ seed }),
  smallScenario,
  run: (scenario, onMinute, onTrace) => runSim({ ...scenario, onProgress: onMinute, ...(onTrace !== undefined ? { onTrace } : {}) }),
  replayCommand,
};
