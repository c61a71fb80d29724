/**
 * One thread of `duet sim --seeds N --jobs J`: it runs each scenario the main thread sends, one at
 * a time, and sends back the result (or the error that crashed the run). Each thread keeps its own
 * campus templates, so only its first run pays for making the campus.
 */
import { parentPort } from 'node:worker_threads';
import { runSim, type Scenario, type SimResult } from '@duet/sim';

export type SimJob = { readonly index: number; readonly scenario: Scenario };
export type SimJobDone = { readonly index: number; readonly result: SimResult } | { readonly index: number; readonly error: string };

const port = parentPort;
if (port === null) throw new Error('sim-worker runs as a worker thread of duet sim');
port.on('message', (job: SimJob) => {
  runSim({ ...job.scenario }).then(
    (result) => port.postMessage({ index: job.index, result } satisfies SimJobDone),
    (e: unknown) => port.postMessage({ index: job.index, error: e instanceof Error ? e.message : String(e) } satisfies SimJobDone),
  );
});
