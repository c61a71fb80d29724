/**
 * `duet bench` (what `npm run bench` runs): every headline figure of the project in one JSON object
 * on stdout, each with the floor it is compared against measured in the same run (this machine is
 * shared and noisy, so absolute numbers from another run are not a fair comparison).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { reportBody } from '@duet/sim';
import { benchClearing } from '../bench/clearing.js';
import { benchPlatform } from '../bench/platform.js';
import { benchProtocol } from '../bench/protocol.js';
import { benchSim } from '../bench/sim.js';
import { benchTerminal } from '../bench/terminal.js';
import { benchWallet } from '../bench/wallet.js';
import { benchHtml } from '../bench/report.js';
import { CliError, type Command, flag, intOption, parseOptions, str } from '../command.js';
import { simEngine } from '../sim-engine.js';

/**
 * Records per terminal in the upload storm by default. The issue asks for 2,000 (1,000,000 records
 * from 500 terminals); on this 2-core machine clearing runs at about 2,000 records/s, so that run
 * takes over eight minutes. 200 (100,000 records) keeps `npm run bench` short; `--storm-records 2000`
 * runs the full size.
 */
const STORM_RECORDS_PER_TERMINAL = 200;

function gitCommit(): string {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return 'unknown';
  }
}

export const benchCommand: Command = {
  name: 'bench',
  summary: { en: 'Measure every headline figure against its same-run floor (JSON)', zh: '测量各项核心指标及同次运行的物理下限（JSON）' },
  usage:
    'duet bench [--only protocol|terminal|wallet|platform|clearing|web|sim] [--seconds N] [--decisions N] [--storm-records N] [--sim-small] [--html FILE]\n' +
    '  Prints one JSON object; progress goes to stderr. --seconds: time per measurement (default 2).\n' +
    '  --storm-records: records per terminal in the upload storm (500 terminals; default 200; the issue asks for 2000).\n' +
    '  --sim-small: the sim group runs the small CI campus instead of the default lunch rush (quicker).\n' +
    "  --html FILE: the same figures as a page, with the simulated lunch rush's charts.",
  async run(args) {
    const o = parseOptions(args, {
      seconds: { type: 'string' },
      html: { type: 'string' },
      decisions: { type: 'string' },
      only: { type: 'string' },
      'storm-records': { type: 'string' },
      'sim-small': { type: 'boolean' },
      // Internal: where the sim group's child process leaves its report for the parent's --html page.
      'sim-report-part': { type: 'string' },
    });
    const seconds = intOption(str(o, 'seconds'), 'seconds', 2, 60);
    const html = str(o, 'html');
    const progress = (msg: string): void => {
      process.stderr.write(`[bench] ${msg}\n`);
    };
    const only = str(o, 'only');
    const groups = ['protocol', 'terminal', 'wallet', 'platform', 'clearing', 'web', 'sim'];
    if (only !== undefined && !groups.includes(only)) {
      throw new CliError('bad_arguments', {
        en: `--only must be one of ${groups.join(', ')}`,
        zh: `--only 须为 ${groups.join('、')} 之一`,
      });
    }
    if (only === undefined) return runAllGroups(groups, args, html, seconds, progress);
    const want = (g: string): boolean => only === g;
    const protocol = want('protocol') ? await benchProtocol(seconds, progress) : {};
    const wallet = want('wallet') ? await benchWallet(2_000, progress) : {};
    const platform = want('platform') ? await benchPlatform(1_000, 5, progress) : {};
    const clearing = want('clearing')
      ? await benchClearing(
          {
            seconds,
            terminals: 100,
            recordsPerTerminal: 200,
            stormTerminals: 500,
            stormRecordsPerTerminal: intOption(str(o, 'storm-records'), 'storm-records', STORM_RECORDS_PER_TERMINAL, 10_000),
            seed: 5,
          },
          progress,
        )
      : {};
    const web = want('web')
      ? await (await import('../bench/web.js')).benchWeb({ loads: 10, refreshes: 200, decisions: 200 }, progress)
      : {};
    const terminal = want('terminal') ? await benchTerminal(intOption(str(o, 'decisions'), 'decisions', 2_000, 100_000), progress) : {};
    const sim = want('sim') ? await benchSim(simEngine, { small: flag(o, 'sim-small'), seed: 1, seconds }, progress) : undefined;
    const simBody = sim === undefined ? '' : reportBody(sim.result);
    const part = str(o, 'sim-report-part');
    if (part !== undefined) writeFileSync(part, simBody);
    const figures = {
      meta: benchMeta(seconds),
      ...protocol,
      ...terminal,
      ...wallet,
      ...platform,
      ...clearing,
      ...web,
      ...sim?.figures,
    };
    process.stdout.write(`${JSON.stringify(figures, null, 2)}\n`);
    if (html !== undefined) writeFileSync(html, benchHtml(figures, simBody));
    return 0;
  },
};

/**
 * Runs every group in its own process, one after the other, and merges their figures: a group's
 * JIT, heap and open handles cannot then disturb another's measurements.
 */
async function runAllGroups(
  groups: readonly string[],
  args: readonly string[],
  html: string | undefined,
  seconds: number,
  progress: (m: string) => void,
): Promise<number> {
  const passOn = args.filter((a, i) => !(a === '--html' || args[i - 1] === '--html'));
  const merged: Record<string, unknown> = {};
  // The sim group's child leaves its report here for the page (its result is too big for the JSON).
  const partDir = mkdtempSync(join(tmpdir(), 'duet-bench-'));
  const simPart = join(partDir, 'sim-report.html');
  try {
    for (const g of groups) {
      progress(`group ${g} (own process)`);
      const extra = g === 'sim' && html !== undefined ? ['--sim-report-part', simPart] : [];
      const r = spawnSync(process.execPath, [process.argv[1] ?? '', 'bench', ...passOn, '--only', g, ...extra], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'inherit'],
        timeout: 900_000,
      });
      if (r.status !== 0)
        throw new CliError('bench_failed', {
          en: `bench group ${g} failed (exit ${String(r.status)})`,
          zh: `基准测试组 ${g} 失败（退出码 ${String(r.status)}）`,
        });
      const { meta: _meta, ...figures } = JSON.parse(r.stdout) as Record<string, unknown>;
      Object.assign(merged, figures);
    }
    const figures = {
      meta: benchMeta(seconds),
      ...merged,
    };
    process.stdout.write(`${JSON.stringify(figures, null, 2)}\n`);
    if (html !== undefined) {
      const simBody = groups.includes('sim') ? readFileSync(simPart, 'utf8') : '';
      writeFileSync(html, benchHtml(figures as Parameters<typeof benchHtml>[0], simBody));
    }
  } finally {
    rmSync(partDir, { recursive: true, force: true });
  }
  return 0;
}

/** Where and when the figures were measured: one block for every bench JSON. */
function benchMeta(seconds: number) {
  return {
    date: new Date().toISOString(),
    commit: gitCommit(),
    node: process.version,
    cpus: cpus().length,
    cpu: cpus()[0]?.model ?? 'unknown',
    seconds_per_measurement: seconds,
  };
}
