/** The simulator (@duet/sim) as `duet sim` and the bench use it. */
import { Worker } from 'node:worker_threads';
import { defaultScenario, replayCommand, runSim, type Scenario, smallScenario } from '@duet/sim';
import type { SeedOutcome, SimEngine } from './commands/sim.js';
import type { SimJob, SimJobDone } from './sim-worker.js';

/**
 * Runs scenarios on `jobs` worker threads, handing the next one to whichever thread is free. A
 * thread that dies takes only its current seed with it (reported as crashed); a new one takes over.
 */
async function runMany(scenarios: readonly Scenario[], jobs: number, ended: (index: number, outcome: SeedOutcome) => void): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < scenarios.length) {
      const worker = new Worker(new URL('./sim-worker.js', import.meta.url));
      await new Promise<void>((resolve) => {
        let current = -1;
        const give = (): void => {
          if (next >= scenarios.length) {
            void worker.terminate().then(() => resolve());
            return;
          }
          current = next++;
          worker.postMessage({ index: current, scenario: scenarios[current] as Scenario } satisfies SimJob);
        };
        worker.on('message', (m: SimJobDone) => {
          ended(m.index, 'result' in m ? { result: m.result } : { error: m.error });
          current = -1;
          give();
        });
        worker.on('error', (e) => {
          if (current >= 0) ended(current, { error: `the thread running it died: ${e.message}` });
          current = -1;
          resolve();
        });
        worker.on('exit', (code) => {
          if (current >= 0) ended(current, { error: `the thread running it exited (code ${code})` });
          current = -1;
          resolve();
        });
        give();
      });
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(jobs, scenarios.length)) }, lane));
}

export const simEngine: SimEngine = {
  defaultScenario: (seed) => defaultScenario({ seed }),
  smallScenario,
  run: (scenario, onMinute, onTrace) => runSim({ ...scenario, onProgress: onMinute, ...(onTrace !== undefined ? { onTrace } : {}) }),
  replayCommand,
  runMany,
};
