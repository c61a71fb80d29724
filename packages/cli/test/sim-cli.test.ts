/**
 * `duet sim`: its flags parse into bounded typed values or a typed bilingual error, its outputs
 * (table, --json, --report, --seeds with failures) come out right over a stand-in simulator, and the
 * built command runs the real simulator end to end on the small campus.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { reportBody, type Scenario, type SimResult } from '@duet/sim';
import { afterAll, describe, expect, it } from 'vitest';
import { benchHtml } from '../src/bench/report.js';
import { CliError } from '../src/command.js';
import { parseSimArgs, runSimCommand, type SimEngine, type SimIo, scenarioFor } from '../src/commands/sim.js';
import { simEngine } from '../src/sim-engine.js';
import { fixtureResult } from '../../sim/test/fixture.js';

/** The summary keys the issue asks `--json` for. */
const ISSUE_KEYS = [
  'seed',
  'payments_accepted',
  'payments_cleared',
  'lost',
  'double_counted',
  'attacks_attempted',
  'attacks_caught',
  'books_balanced',
  'invariants_ok',
] as const;

const bin = join(import.meta.dirname, '../dist/main.js');
const dir = mkdtempSync(join(tmpdir(), 'duet-sim-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function duet(...args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function cliError(f: () => unknown): CliError {
  try {
    f();
  } catch (e) {
    if (e instanceof CliError) return e;
    throw e;
  }
  throw new Error('no error thrown');
}

describe('duet sim flags', () => {
  it('parse into typed values', () => {
    const a = parseSimArgs([
      ...['--seed', '9', '--holders', '500', '--windows', '6', '--minutes', '30', '--outage', '2-10', '--outage', '20-25'],
      ...['--loss', '0.1', '--duplicate', '.02', '--reorder', '1', '--delay-ms', '250', '--crash', '0', '--no-attacks'],
      ...['--seeds', '3', '--json', '--report', 'r.html'],
    ]);
    expect(a).toEqual({
      seed: 9,
      small: false,
      holders: 500,
      windows: 6,
      minutes: 30,
      outages: [
        { from: 2, to: 10 },
        { from: 20, to: 25 },
      ],
      loss: 0.1,
      duplicate: 0.02,
      reorder: 1,
      delayMs: 250,
      crash: 0,
      attacks: false,
      seeds: 3,
      json: true,
      report: 'r.html',
    });
    expect(parseSimArgs([])).toEqual({ seed: 1, small: false, attacks: true, json: false });
    expect(parseSimArgs(['--outage', 'none']).outages).toEqual([]);
    expect(parseSimArgs(['--seeds', '8', '--jobs', '3']).jobs).toBe(3);
    expect(parseSimArgs(['--seeds', '8', '--jobs', 'all']).jobs).toBe(Math.min(64, availableParallelism()));
    expect(parseSimArgs(['--loss', '1e-7']).loss).toBe(1e-7);
    expect(parseSimArgs(['--holders', '5', '--no-attacks'])).toMatchObject({ holders: 5, attacks: false });
  });

  it.each([
    [['--seed', '-1']],
    [['--seed', '4294967296']],
    [['--seed', '1e3']],
    [['--holders', '0']],
    [['--holders', '19']],
    [['--windows', '1001']],
    [['--minutes', '1441']],
    [['--loss', '1.5']],
    [['--loss', 'NaN']],
    [['--crash', '-0.1']],
    [['--delay-ms', '60001']],
    [['--seeds', '0']],
    [['--seed', '4294967295', '--seeds', '2']],
    [['--outage', '40-5']],
    [['--outage', '5-5']],
    [['--outage', 'noon']],
    [['--outage', 'none', '--outage', '1-2']],
    [['--minutes', '30', '--outage', '5-40']],
    [['--report', ' ']],
    [['--trace', ' ']],
    [['--trace', 't.txt', '--seeds', '2']],
    [['--jobs', '2']],
    [['--seeds', '4', '--jobs', '0']],
    [['--seeds', '4', '--jobs', '65']],
    [['--seeds', '4', '--jobs', 'many']],
    [['--frobnicate']],
    [['--json=yes']],
    [['stray']],
  ])('refuse %j with a typed bilingual error', (args) => {
    const e = cliError(() => parseSimArgs(args));
    expect(e.code).toBe('bad_arguments');
    expect(e.words.en.length).toBeGreaterThan(0);
    expect(e.words.zh).toMatch(/[\u4e00-\u9fff]/);
  });

  it('lay over the base scenario, outages clipped to a shorter run', () => {
    const base = fixtureResult().scenario;
    const s = scenarioFor(parseSimArgs(['--minutes', '20', '--loss', '0.5', '--no-attacks']), base);
    expect(s.minutes).toBe(20);
    expect(s.outages).toEqual([{ from: 5, to: 20 }]);
    expect(s.faults).toEqual({ ...base.faults, loss: 0.5 });
    expect(s.attacks).toBe(false);
    expect(scenarioFor(parseSimArgs([]), base)).toEqual(base);
  });
});

/** A stand-in simulator: the fixture result for the scenario it is given; `failing` seeds fail. */
function fakeEngine(failing: readonly number[] = []): SimEngine & { runs: Scenario[] } {
  const runs: Scenario[] = [];
  return {
    runs,
    defaultScenario: (seed) => ({ ...fixtureResult({ seed }).scenario }),
    smallScenario: (seed) => ({ ...fixtureResult({ seed }).scenario, holders: 50, windows: 2, minutes: 10, outages: [{ from: 2, to: 6 }] }),
    replayCommand: (s) => `npm run sim -- --seed ${s.seed}`,
    async run(scenario, onMinute) {
      runs.push(scenario);
      for (let m = 1; m <= scenario.minutes; m++) onMinute(m, scenario.minutes);
      const base = fixtureResult({ seed: scenario.seed, invariantsOk: !failing.includes(scenario.seed) });
      return {
        ...base,
        scenario,
        summary: { ...base.summary, replay: `npm run sim -- --small --seed ${scenario.seed}` },
      } satisfies SimResult;
    },
  };
}

function capture(isTTY = false): SimIo & { stdout: () => string; stderr: () => string; files: Map<string, string> } {
  let out = '';
  let err = '';
  const files = new Map<string, string>();
  return {
    out: (t) => {
      out += t;
    },
    err: {
      isTTY,
      write: (t) => {
        err += t;
      },
    },
    writeFile: (p, t) => files.set(p, t),
    stdout: () => out,
    stderr: () => err,
    files,
  };
}

describe('replay commands', () => {
  /** The scenario `duet sim` runs for a replay command's arguments. */
  const replayed = (s: Scenario): Scenario => {
    const [npx, duetBin, sim, ...args] = simEngine.replayCommand(s).split(' ');
    expect([npx, duetBin, sim]).toEqual(['npx', 'duet', 'sim']);
    return scenarioFor(parseSimArgs(args), simEngine.defaultScenario(Number(args[1])));
  };

  it.each([
    ['the default rush', simEngine.defaultScenario(5)],
    ['the small campus', simEngine.smallScenario(4711)],
    [
      'no attackers, two outages, odd faults',
      {
        ...simEngine.smallScenario(9),
        attacks: false,
        outages: [
          { from: 1, to: 3 },
          { from: 8, to: 19 },
        ],
        faults: { loss: 0.125, duplicate: 1e-7, reorder: 1, delayMs: 0, crash: 1 / 3 },
      },
    ],
  ])('parse back into the very scenario they came from: %s', (_name, s) => {
    expect(replayed(s)).toEqual(s);
  });

  // A scenario without outages says `--outage none`, or its replay would get the default outage.
  it('parse back a scenario without outages', () => {
    const s = { ...simEngine.smallScenario(3), outages: [] };
    expect(replayed(s)).toEqual(s);
  });
});

describe('duet sim over a stand-in simulator', () => {
  it('--json prints only the summary JSON with the issue keys; exit 0 when the invariants hold', async () => {
    const io = capture();
    const code = await runSimCommand(parseSimArgs(['--small', '--seed', '4', '--json']), fakeEngine(), io);
    expect(code).toBe(0);
    const s = JSON.parse(io.stdout()) as Record<string, unknown>;
    for (const k of ISSUE_KEYS) expect(s).toHaveProperty(k);
    expect(s.seed).toBe(4);
    // Not a terminal: a plain progress line per tenth, none of the bar's control characters.
    expect(io.stderr()).not.toContain('\r');
    expect(io.stderr().trim().split('\n').length).toBeLessThanOrEqual(11);
    expect(io.stderr()).toContain('10/10');
  });

  it('draws a redrawn bar on a terminal', async () => {
    const io = capture(true);
    await runSimCommand(parseSimArgs(['--small']), fakeEngine(), io);
    expect(io.stderr()).toContain('\r');
    expect(io.stderr()).toContain('█');
    expect(io.stderr()).toContain('10/10 100%');
  });

  it('prints a bilingual table without --json, and --report writes the HTML report', async () => {
    const io = capture();
    const code = await runSimCommand(parseSimArgs(['--report', 'out.html']), fakeEngine(), io);
    expect(code).toBe(0);
    expect(io.stdout()).toContain('Invariants ok / 不变量成立');
    expect(io.stdout()).toMatch(/Payments accepted \/ 已受理支付\s+1,481/);
    expect(io.stdout()).toContain('Replay / 重放: npm run sim -- --small --seed 1');
    expect(io.files.get('out.html')).toContain('<svg');
  });

  it('a failing run exits 1 and prints what failed and its replay command', async () => {
    const io = capture();
    const code = await runSimCommand(parseSimArgs(['--seed', '3', '--json']), fakeEngine([3]), io);
    expect(code).toBe(1);
    expect(io.stderr()).toContain('books_balance: purse 17 off by 250 fen');
    expect(io.stderr()).toContain('replay / 重放: npm run sim -- --small --seed 3');
  });

  it("--seeds runs each seed with the flags, prints every failing seed's replay command and exits 1", async () => {
    const engine = fakeEngine([12, 14]);
    const io = capture();
    const code = await runSimCommand(
      parseSimArgs(['--small', '--seed', '10', '--seeds', '5', '--loss', '0.3', '--report', 'f.html']),
      engine,
      io,
    );
    expect(code).toBe(1);
    expect(engine.runs.map((s) => s.seed)).toEqual([10, 11, 12, 13, 14]);
    expect(engine.runs.every((s) => s.faults.loss === 0.3 && s.holders === 50)).toBe(true);
    expect(io.stdout()).toContain('3 passed / 通过, 2 failed / 失败');
    expect(io.stdout()).toContain('seed / 种子 12: npm run sim -- --small --seed 12');
    expect(io.stderr()).toContain('replay / 重放: npm run sim -- --small --seed 14');
    expect(io.files.get('f.html')).toContain('种子 12');
  });

  it('--jobs hands the seeds to the engine at once and, whatever order they end in, lists failures by seed and reports the first failing one', async () => {
    const engine = fakeEngine([13, 11]);
    let jobsAsked = 0;
    engine.runMany = async (scenarios, jobs, ended) => {
      jobsAsked = jobs;
      // They end in reverse order, as threads may finish them.
      for (let i = scenarios.length - 1; i >= 0; i--) {
        const s = scenarios[i] as Scenario;
        if (s.seed === 12) ended(i, { error: 'thread died' });
        else ended(i, { result: await engine.run(s, () => {}) });
      }
    };
    const io = capture();
    const code = await runSimCommand(
      parseSimArgs(['--small', '--seed', '10', '--seeds', '5', '--jobs', '2', '--json', '--report', 'j.html']),
      engine,
      io,
    );
    expect(code).toBe(1);
    expect(jobsAsked).toBe(2);
    const s = JSON.parse(io.stdout()) as { seeds_failed: number; failures: { seed: number; failed: string[] }[] };
    expect(s.seeds_failed).toBe(3);
    expect(s.failures.map((f) => f.seed)).toEqual([11, 12, 13]);
    expect(s.failures[1]?.failed).toEqual(['crashed: thread died']);
    expect(io.files.get('j.html')).toContain('种子 11');
    expect(io.stderr()).toContain('5/5');
  });

  it('--seeds --json sums the figures and lists the failures', async () => {
    const io = capture();
    const code = await runSimCommand(parseSimArgs(['--seeds', '3', '--json']), fakeEngine(), io);
    expect(code).toBe(0);
    const s = JSON.parse(io.stdout()) as {
      seeds: number;
      seeds_failed: number;
      invariants_ok: boolean;
      payments_accepted: number;
      failures: unknown[];
    };
    expect(s).toMatchObject({ seeds: 3, seeds_failed: 0, invariants_ok: true, payments_accepted: 3 * 1_481, failures: [] });
  });

  it('a single run that crashes the simulator exits 1 with the stack and its replay command', async () => {
    const crashing: SimEngine = { ...fakeEngine(), run: () => Promise.reject(new Error('boom')) };
    const io = capture();
    expect(await runSimCommand(parseSimArgs(['--seed', '6']), crashing, io)).toBe(1);
    expect(io.stderr()).toContain('CRASHED / 崩溃: Error: boom');
    expect(io.stderr()).toContain('replay / 重放: npm run sim -- --seed 6');
    expect(io.stdout()).toBe('');
  });

  it('a seed that crashes the simulator is a failure with its replay command, and the others still run', async () => {
    const engine = fakeEngine();
    const crashing: SimEngine = {
      ...engine,
      run: (s, m) => (s.seed === 2 ? Promise.reject(new Error('boom')) : engine.run(s, m)),
    };
    const io = capture();
    expect(await runSimCommand(parseSimArgs(['--seeds', '3']), crashing, io)).toBe(1);
    expect(engine.runs.map((s) => s.seed)).toEqual([1, 3]);
    expect(io.stderr()).toContain('CRASHED / 崩溃: boom');
    expect(io.stderr()).toContain('npm run sim -- --seed 2');
  });
});

describe('the bench page', () => {
  it('carries the simulation report, charts and styles, under the figures when the sim group ran', () => {
    const page = benchHtml({ sim_default_wall_s: 12.5 }, reportBody(fixtureResult()));
    expect(page).toContain('sim_default_wall_s');
    expect(page).toContain('<svg');
    expect(page).toContain('.duet-sim');
    expect(page.indexOf('sim_default_wall_s')).toBeLessThan(page.indexOf('<svg'));
    expect(benchHtml({ x: 1 })).not.toContain('duet-sim');
  });
});

describe('the built duet sim', () => {
  it('a bad flag is a typed error on stderr and exit 2', () => {
    const r = duet('sim', '--loss', '2');
    expect(r.code).toBe(2);
    const e = JSON.parse(r.err) as { error: { code: string; en: string; zh: string } };
    expect(e.error.code).toBe('bad_arguments');
    expect(e.error.en).toContain('--loss');
    expect(e.error.zh).toContain('概率');
  });

  it.each(['--report', '--trace'])('a %s into a folder that does not exist is refused before the run', (flag) => {
    const r = duet('sim', '--small', flag, join(dir, 'no-such-folder', 'r.html'));
    expect(r.code).toBe(2);
    expect(JSON.parse(r.err)).toMatchObject({ error: { code: 'bad_arguments' } });
    expect((JSON.parse(r.err) as { error: { en: string } }).error.en).toContain(flag);
  });

  it('--help shows the options in both languages', () => {
    const r = duet('sim', '--help');
    expect(r.code).toBe(0);
    expect(r.out).toContain('--outage A-B');
    expect(r.out).toContain('不变量');
  });

  it('--small --seed 1 --json prints only a parseable summary with the issue keys, --report writes the charts, --trace the hashed trace', () => {
    const file = join(dir, 'seed1.html');
    const traceFile = join(dir, 'seed1.trace');
    const r = duet('sim', '--small', '--seed', '1', '--json', '--report', file, '--trace', traceFile);
    expect(r.code).toBe(0);
    const s = JSON.parse(r.out) as Record<string, unknown>;
    // The trace file is exactly what the trace hash covers: one line each, newline-terminated.
    const trace = readFileSync(traceFile);
    expect(createHash('sha256').update(trace).digest('hex')).toBe(s.trace_hash);
    expect(trace.toString('utf8')).toMatch(/^-?\d+:\d\d sync t\d+ deny=/m);
    for (const k of ISSUE_KEYS) expect(s).toHaveProperty(k);
    expect(s).toMatchObject({ seed: 1, lost: 0, double_counted: 0, books_balanced: true, invariants_ok: true });
    expect(String(s.replay)).toContain('--seed 1');
    const html = readFileSync(file, 'utf8');
    expect(html).toContain('<svg');
    expect(html).toContain('class="outage"');
    expect(html).not.toContain('<script');
  });

  it('--jobs 2 runs the seeds on two threads with the same figures as one after another', () => {
    const args = ['sim', '--seeds', '4', '--small', '--seed', '5', '--json'];
    const one = duet(...args);
    const two = duet(...args, '--jobs', '2');
    expect(one.code).toBe(0);
    expect(two.code).toBe(0);
    const figures = (out: string) => {
      const { wall_ms: _wall, ...rest } = JSON.parse(out) as Record<string, unknown>;
      return rest;
    };
    expect(figures(two.out)).toEqual(figures(one.out));
    expect(figures(one.out)).toMatchObject({ seeds: 4, seeds_failed: 0, invariants_ok: true, lost: 0, double_counted: 0 });
  });

  it('--seeds 3 --small runs three seeds of the small campus and exits 0', () => {
    const r = duet('sim', '--seeds', '3', '--small', '--seed', '2', '--json');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toMatchObject({ from_seed: 2, seeds: 3, seeds_failed: 0, invariants_ok: true, lost: 0, double_counted: 0 });
  });

  it('is listed in duet --help', () => {
    expect(duet('--help').out).toMatch(/^ {2}sim /m);
  });
});
