/**
 * The simulator (@duet/sim) as `duet sim` and the bench use it. Loaded on first use so that other
 * commands do not pay for importing it.
 */
import { CliError } from './command.js';
import type { SimEngine } from './commands/sim.js';

export async function loadSimEngine(): Promise<SimEngine> {
  // The runner lands with issue 7's simulator core; until then the command says so plainly.
  throw new CliError('sim_unavailable', {
    en: 'The simulator core is not built into this version yet',
    zh: '此版本尚未包含模拟器核心',
  });
}
