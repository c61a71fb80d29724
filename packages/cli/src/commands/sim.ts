/**
 * `duet sim` (what `npm run sim` runs): the lunch-rush simulator from the command line. One seed by
 * default, printing a short bilingual summary (or the summary JSON with --json) and optionally the
 * HTML report; --seeds N runs N seeds and prints the replay command of every failing one. The exit
 * code is 0 only when every invariant held, so CI can run it as a test.
 */
import { closeSync, existsSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { type MinuteWindow, renderReport, SCENARIO_LIMITS, type Scenario, type SimResult, type SimSummary } from '@duet/sim';
import { CliError, type Command, type Words } from '../command.js';
import { Progress, type ProgressSink } from '../progress.js';
import { simEngine } from '../sim-engine.js';

/** Seeds are 32-bit: the simulator's random generator takes a uint32. */
const SEED_MAX = 2 ** 32 - 1;
/** Campus size and length: the simulator's own bounds (each with its reason there). */
const HOLDERS_MAX = SCENARIO_LIMITS.holdersMax;
const WINDOWS_MAX = SCENARIO_LIMITS.windowsMax;
const MINUTES_MAX = SCENARIO_LIMITS.minutesMax;
/** Added network delay: beyond a minute a call is lost, which --loss models. */
const DELAY_MS_MAX = 60_000;
/** --seeds: a million small runs is days of CPU; more is a typo. */
const SEEDS_MAX = 1_000_000;
/** --jobs: threads running seeds at once; each holds a whole campus in memory. */
const JOBS_MAX = 64;
/** Longest option value read: numbers, "A-B" windows and file paths fit easily. */
const OPTION_VALUE_MAX_CHARS = 4_096;

/** What the command line asks for, every value parsed and bounded. */
export interface SimArgs {
  readonly seed: number;
  readonly small: boolean;
  readonly holders?: number;
  readonly windows?: number;
  readonly minutes?: number;
  /** Absent: the scenario's own; empty: `--outage none`. */
  readonly outages?: readonly MinuteWindow[];
  readonly loss?: number;
  readonly duplicate?: number;
  readonly reorder?: number;
  readonly delayMs?: number;
  readonly crash?: number;
  readonly attacks: boolean;
  /** Run this many seeds from `seed` (absent: one run). */
  readonly seeds?: number;
  /** With `seeds`: how many run at once, each on its own thread (absent: 1). */
  readonly jobs?: number;
  readonly json: boolean;
  readonly report?: string;
  /** Write every trace line (what the trace hash covers) to this file as the run goes. */
  readonly trace?: string;
}

function bad(en: string, zh: string): CliError {
  return new CliError('bad_arguments', { en, zh });
}

function intArg(v: string | undefined, name: string, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d{1,16}$/.test(v) || Number(v) < min || Number(v) > max) {
    throw bad(`--${name} must be an integer from ${min} to ${max}`, `--${name} 必须是 ${min} 到 ${max} 的整数`);
  }
  return Number(v);
}

function probabilityArg(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  // Exponents too: the replay command prints what JavaScript prints, and 0.0000001 prints as 1e-7.
  if (!/^(\d{1,3}(\.\d{1,17})?|\.\d{1,17})(e-\d{1,3})?$/i.test(v) || !(n >= 0 && n <= 1)) {
    throw bad(`--${name} must be a probability from 0 to 1 (e.g. 0.05)`, `--${name} 必须是 0 到 1 之间的概率（如 0.05）`);
  }
  return n;
}

/** `--outage A-B` (minutes from the start, A < B), repeatable; `--outage none` for no outage. */
export function parseOutages(values: readonly string[]): readonly MinuteWindow[] {
  if (values.length === 1 && values[0] === 'none') return [];
  return values.map((v) => {
    const m = /^(\d{1,4})-(\d{1,4})$/.exec(v);
    const from = Number(m?.[1]);
    const to = Number(m?.[2]);
    if (m === null || !(from < to) || to > MINUTES_MAX) {
      throw bad(
        `--outage must be A-B in minutes from the start with A < B ≤ ${MINUTES_MAX} (e.g. 5-40), or "none" alone; got "${v}"`,
        `--outage 须为以开始起算的分钟区间 A-B，且 A < B ≤ ${MINUTES_MAX}（如 5-40），或单独的 "none"；收到 "${v}"`,
      );
    }
    return { from, to };
  });
}

/** Parses `duet sim`'s arguments into typed values, or throws a typed bilingual CliError. */
export function parseSimArgs(args: readonly string[]): SimArgs {
  let parsed: ReturnType<typeof parseSimOptions>;
  try {
    parsed = parseSimOptions(args);
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    throw bad(`Bad arguments: ${msg}`, `参数错误：${msg}`);
  }
  const { values: v, positionals } = parsed;
  if (positionals.length > 0) throw bad(`Unexpected argument "${positionals[0]}"`, `多余的参数 "${positionals[0]}"`);
  for (const value of Object.values(v)) {
    const texts = Array.isArray(value) ? value : [value];
    if (texts.some((t) => typeof t === 'string' && t.length > OPTION_VALUE_MAX_CHARS)) {
      throw bad(`An option value is longer than ${OPTION_VALUE_MAX_CHARS} characters`, `选项值超过 ${OPTION_VALUE_MAX_CHARS} 个字符`);
    }
  }
  const minutes = intArg(v.minutes, 'minutes', 1, MINUTES_MAX);
  const outages = v.outage === undefined ? undefined : parseOutages(v.outage);
  const lastEnd = Math.max(0, ...(outages ?? []).map((w) => w.to));
  if (minutes !== undefined && lastEnd > minutes) {
    throw bad(`--outage ends after the run's ${minutes} minutes`, `--outage 结束于模拟的 ${minutes} 分钟之后`);
  }
  const seed = intArg(v.seed, 'seed', 0, SEED_MAX) ?? 1;
  const seeds = intArg(v.seeds, 'seeds', 1, SEEDS_MAX);
  if (seeds !== undefined && seed + seeds - 1 > SEED_MAX) {
    throw bad(`--seed + --seeds goes past the last seed, ${SEED_MAX}`, `--seed 加 --seeds 超出最大种子 ${SEED_MAX}`);
  }
  const holders = intArg(v.holders, 'holders', 1, HOLDERS_MAX);
  const attacks = v['no-attacks'] !== true;
  if (attacks && holders !== undefined && holders < SCENARIO_LIMITS.holdersWithAttacksMin) {
    const min = SCENARIO_LIMITS.holdersWithAttacksMin;
    throw bad(
      `The attackers need a crowd: --holders at least ${min}, or --no-attacks`,
      `攻击者需要人群掩护：--holders 至少 ${min}，或使用 --no-attacks`,
    );
  }
  const report = v.report;
  if (report !== undefined && report.trim() === '') throw bad('--report needs a file name', '--report 需要文件名');
  const trace = v.trace;
  if (trace !== undefined && trace.trim() === '') throw bad('--trace needs a file name', '--trace 需要文件名');
  const jobs = v.jobs === 'all' ? availableParallelism() : intArg(v.jobs, 'jobs', 1, JOBS_MAX);
  if (jobs !== undefined && seeds === undefined) throw bad('--jobs goes with --seeds', '--jobs 须与 --seeds 同用');
  if (trace !== undefined && seeds !== undefined)
    throw bad('--trace is for one run, not with --seeds', '--trace 只用于单次运行，不能与 --seeds 同用');
  const opt = <K extends string, T>(key: K, value: T | undefined): { [P in K]?: T } =>
    (value === undefined ? {} : { [key]: value }) as { [P in K]?: T };
  return {
    seed,
    small: v.small === true,
    attacks,
    json: v.json === true,
    ...opt('holders', holders),
    ...opt('windows', intArg(v.windows, 'windows', 1, WINDOWS_MAX)),
    ...opt('minutes', minutes),
    ...opt('outages', outages),
    ...opt('loss', probabilityArg(v.loss, 'loss')),
    ...opt('duplicate', probabilityArg(v.duplicate, 'duplicate')),
    ...opt('reorder', probabilityArg(v.reorder, 'reorder')),
    ...opt('delayMs', intArg(v['delay-ms'], 'delay-ms', 0, DELAY_MS_MAX)),
    ...opt('crash', probabilityArg(v.crash, 'crash')),
    ...opt('seeds', seeds),
    ...opt('jobs', jobs === undefined ? undefined : Math.min(jobs, JOBS_MAX)),
    ...opt('report', report),
    ...opt('trace', trace),
  };
}

function parseSimOptions(args: readonly string[]) {
  const s = { type: 'string' } as const;
  const b = { type: 'boolean' } as const;
  return parseArgs({
    args: [...args],
    strict: true,
    allowPositionals: true,
    options: {
      seed: s,
      holders: s,
      windows: s,
      minutes: s,
      outage: { type: 'string', multiple: true },
      loss: s,
      duplicate: s,
      reorder: s,
      'delay-ms': s,
      crash: s,
      'no-attacks': b,
      small: b,
      seeds: s,
      jobs: s,
      json: b,
      report: s,
      trace: s,
    },
  });
}

/** The scenario to run for one seed: the base (default or --small) with the flags laid over it. */
export function scenarioFor(a: SimArgs, base: Scenario): Scenario {
  const minutes = a.minutes ?? base.minutes;
  const outages = a.outages ?? base.outages.filter((w) => w.from < minutes).map((w) => ({ from: w.from, to: Math.min(w.to, minutes) }));
  return {
    ...base,
    holders: a.holders ?? base.holders,
    windows: a.windows ?? base.windows,
    minutes,
    outages,
    faults: {
      loss: a.loss ?? base.faults.loss,
      duplicate: a.duplicate ?? base.faults.duplicate,
      reorder: a.reorder ?? base.faults.reorder,
      delayMs: a.delayMs ?? base.faults.delayMs,
      crash: a.crash ?? base.faults.crash,
    },
    attacks: a.attacks && base.attacks,
  };
}

/** The simulator as the command uses it; the real one is in @duet/sim, tests may pass their own. */
export interface SimEngine {
  defaultScenario(seed: number): Scenario;
  smallScenario(seed: number): Scenario;
  run(scenario: Scenario, onMinute: (done: number, total: number) => void, onTrace?: (line: string) => void): Promise<SimResult>;
  /** The command that replays a scenario (the summary carries it too; this is for failures). */
  replayCommand(scenario: Scenario): string;
  /**
   * Runs scenarios on up to `jobs` threads at once, calling `ended` as each one ends, in any order
   * (`--seeds N --jobs J`). Without it, seeds run one after another.
   */
  runMany?(scenarios: readonly Scenario[], jobs: number, ended: (index: number, outcome: SeedOutcome) => void): Promise<void>;
}

export interface SimIo {
  readonly out: (text: string) => void;
  readonly err: ProgressSink;
  readonly writeFile: (path: string, text: string) => void;
  /** Opens a file for trace lines; each line is written before the run goes on (a hung run keeps its trace). */
  readonly openTrace?: (path: string) => { line(text: string): void; close(): void };
}

const yes = (b: boolean): string => (b ? 'yes / 是' : 'NO / 否');
const num = (n: number): string => n.toLocaleString('en-US');

/** The short bilingual table printed without --json. */
export function summaryTable(s: SimSummary, sc: Scenario): string {
  const rows: [Words, string][] = [
    [{ en: 'Payments attempted', zh: '尝试支付' }, num(s.payments_attempted)],
    [{ en: 'Payments accepted', zh: '已受理支付' }, num(s.payments_accepted)],
    [{ en: 'Payments declined', zh: '拒绝支付' }, num(s.payments_declined)],
    [{ en: 'Recovered after a power cut', zh: '断电后恢复' }, num(s.payments_recovered_after_power_cut)],
    [{ en: 'Payments cleared', zh: '已清算支付' }, num(s.payments_cleared)],
    [{ en: 'Lost', zh: '丢失' }, num(s.lost)],
    [{ en: 'Double counted', zh: '重复计入' }, num(s.double_counted)],
    [{ en: 'Attacks caught', zh: '拦截攻击' }, `${num(s.attacks_caught)} / ${num(s.attacks_attempted)}`],
    [{ en: 'Books balanced', zh: '账目平衡' }, yes(s.books_balanced)],
    [{ en: 'Audit ok', zh: '审计通过' }, yes(s.audit_ok)],
    [{ en: 'Invariants ok', zh: '不变量成立' }, yes(s.invariants_ok)],
    [{ en: 'Trace hash', zh: '轨迹哈希' }, s.trace_hash],
    [{ en: 'Wall time', zh: '实际耗时' }, `${(s.wall_ms / 1000).toFixed(1)} s`],
  ];
  const labels = rows.map(([w]) => `${w.en} / ${w.zh}`);
  // CJK characters take two columns on a terminal.
  const width = (t: string): number => [...t].reduce((n, c) => n + (/[\u3000-\u9fff\uff00-\uffef]/.test(c) ? 2 : 1), 0);
  const w = Math.max(...labels.map(width));
  const head =
    `Duet lunch rush / 午餐高峰 — seed / 种子 ${s.seed}, ${num(sc.holders)} holders / 持卡人, ` +
    `${num(sc.windows)} windows / 窗口, ${num(s.sim_minutes)} min / 分钟`;
  const body = rows.map(([, v], i) => `  ${labels[i] ?? ''}${' '.repeat(w - width(labels[i] ?? '') + 2)}${v}`);
  return `${[head, ...body, `Replay / 重放: ${s.replay}`].join('\n')}\n`;
}

/** Runs the command against an engine; returns the exit code (0 only when every invariant held). */
export async function runSimCommand(a: SimArgs, engine: SimEngine, io: SimIo): Promise<number> {
  const scenarioOf = (seed: number): Scenario => scenarioFor(a, a.small ? engine.smallScenario(seed) : engine.defaultScenario(seed));
  if (a.seeds !== undefined) return runManySeeds(a, a.seeds, scenarioOf, engine, io);
  const scenario = scenarioOf(a.seed);
  const bar = new Progress(io.err, 'sim / 模拟 minute / 分钟');
  const trace = a.trace === undefined ? undefined : io.openTrace?.(a.trace);
  let result: SimResult;
  try {
    result = await engine.run(
      scenario,
      (done, total) => bar.update(done, total),
      trace === undefined ? undefined : (line) => trace.line(line),
    );
  } catch (e) {
    // A crash is a failing seed too: say how to replay it, with the stack for whoever does.
    bar.log(`CRASHED / 崩溃: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    io.err.write(`replay / 重放: ${engine.replayCommand(scenario)}\n`);
    return 1;
  } finally {
    trace?.close();
  }
  bar.done();
  if (a.report !== undefined) io.writeFile(a.report, renderReport(result));
  io.out(a.json ? `${JSON.stringify(result.summary)}\n` : summaryTable(result.summary, result.scenario));
  if (!result.summary.invariants_ok) {
    for (const inv of result.invariants.filter((i) => !i.ok)) io.err.write(`FAILED / 不成立 ${inv.name}: ${inv.detail}\n`);
    io.err.write(`replay / 重放: ${result.summary.replay}\n`);
    return 1;
  }
  return 0;
}

interface Failure {
  readonly seed: number;
  readonly replay: string;
  readonly failed: readonly string[];
}

/** What ended one seed: its result, or the error that crashed it. */
export type SeedOutcome = { readonly result: SimResult } | { readonly error: string };

async function runManySeeds(
  a: SimArgs,
  count: number,
  scenarioOf: (seed: number) => Scenario,
  engine: SimEngine,
  io: SimIo,
): Promise<number> {
  const bar = new Progress(io.err, 'sim / 模拟 seed / 种子');
  const failures: Failure[] = [];
  const totals = { payments_accepted: 0, payments_cleared: 0, lost: 0, double_counted: 0, attacks_attempted: 0, attacks_caught: 0 };
  // The report shows the first failing seed, or the last one when all passed (whatever order they end in).
  let kept: SimResult | undefined;
  const keep = (r: SimResult): void => {
    const failing = !r.summary.invariants_ok;
    if (kept === undefined) kept = r;
    else if (failing && (kept.summary.invariants_ok || r.summary.seed < kept.summary.seed)) kept = r;
    else if (!failing && kept.summary.invariants_ok && r.summary.seed > kept.summary.seed) kept = r;
  };
  let finished = 0;
  const started = Date.now();
  const scenarios = Array.from({ length: count }, (_, i) => scenarioOf(a.seed + i));
  const ended = (i: number, outcome: SeedOutcome): void => {
    const seed = a.seed + i;
    const scenario = scenarios[i] as Scenario;
    finished++;
    if ('error' in outcome) {
      // A crash is a failure of this seed like any other: it gets its replay command too.
      failures.push({ seed, replay: engine.replayCommand(scenario), failed: [`crashed: ${outcome.error}`] });
      bar.log(`seed / 种子 ${seed} CRASHED / 崩溃: ${outcome.error}\nreplay / 重放: ${engine.replayCommand(scenario)}`);
      bar.update(finished, count);
      return;
    }
    const r = outcome.result;
    for (const k of Object.keys(totals) as (keyof typeof totals)[]) totals[k] += r.summary[k];
    if (!r.summary.invariants_ok) {
      const failed = r.invariants.filter((x) => !x.ok).map((x) => `${x.name}: ${x.detail}`);
      failures.push({ seed, replay: r.summary.replay, failed });
      bar.log(`seed / 种子 ${seed} FAILED / 失败: ${failed.join('; ')}\nreplay / 重放: ${r.summary.replay}`);
    }
    keep(r);
    bar.update(finished, count);
  };
  const jobs = a.jobs ?? 1;
  if (jobs > 1 && engine.runMany !== undefined) {
    await engine.runMany(scenarios, jobs, ended);
  } else {
    for (let i = 0; i < count; i++) {
      const seed = a.seed + i;
      try {
        const r = await engine.run(scenarios[i] as Scenario, (done, total) =>
          bar.update(i, count, `· seed / 种子 ${seed} minute / 分钟 ${done}/${total}`),
        );
        ended(i, { result: r });
      } catch (e) {
        ended(i, { error: e instanceof Error ? e.message : String(e) });
      }
    }
  }
  bar.done();
  failures.sort((x, y) => x.seed - y.seed);
  if (a.report !== undefined && kept !== undefined) io.writeFile(a.report, renderReport(kept));
  const summary = {
    from_seed: a.seed,
    seeds: count,
    seeds_failed: failures.length,
    invariants_ok: failures.length === 0,
    ...totals,
    wall_ms: Date.now() - started,
    failures,
  };
  if (a.json) io.out(`${JSON.stringify(summary)}\n`);
  else {
    io.out(
      `Duet lunch rush / 午餐高峰 — ${num(count)} seeds / 个种子 from / 起 ${a.seed}: ` +
        `${num(count - failures.length)} passed / 通过, ${num(failures.length)} failed / 失败; ` +
        `${num(totals.payments_accepted)} accepted / 受理, ${num(totals.payments_cleared)} cleared / 清算, ` +
        `${num(totals.lost)} lost / 丢失, ${num(totals.double_counted)} double counted / 重复, ` +
        `${num(totals.attacks_caught)}/${num(totals.attacks_attempted)} attacks caught / 攻击拦截 (${((Date.now() - started) / 1000).toFixed(1)} s)\n`,
    );
    for (const f of failures) io.out(`  FAILED / 失败 seed / 种子 ${f.seed}: ${f.replay}\n`);
  }
  return failures.length === 0 ? 0 : 1;
}

export const SIM_USAGE = [
  'duet sim [--seed N] [--small] [--holders N] [--windows N] [--minutes N] [--outage A-B]… [--loss P] [--duplicate P]',
  '         [--reorder P] [--delay-ms N] [--crash P] [--no-attacks] [--seeds N [--jobs J|all]] [--json] [--report FILE.html]',
  '         [--trace FILE]',
  '  The lunch rush: the real wallet, terminal and platform code on a virtual clock, with faults and attackers.',
  '  --outage A-B: internet down from minute A to B (repeatable; "none" for none). P: a probability 0..1.',
  '  --small: the small CI campus. --seeds N: run N seeds from --seed; prints the replay command of each failure.',
  '  --jobs J: run J seeds at once, each on its own thread (1-64, or "all": one per CPU); results do not depend on it.',
  '  --json: the summary as JSON only on stdout. --report: a self-contained HTML report with charts.',
  '  --trace: every line the trace hash covers, written as the run goes (one run only).',
  '  Exit code 0 only when every invariant held. Progress goes to stderr.',
  '  午餐高峰模拟：真实的钱包、终端与平台代码运行在虚拟时钟上，注入故障与攻击；所有不变量成立时退出码为 0。',
].join('\n');

/** `duet sim` over a given engine (main.ts passes the real simulator). */
export function makeSimCommand(engine: SimEngine): Command {
  return {
    name: 'sim',
    summary: { en: 'Simulate a lunch rush with faults and attackers; check the invariants', zh: '模拟带故障与攻击的午餐高峰并检查不变量' },
    usage: SIM_USAGE,
    async run(args) {
      const a = parseSimArgs(args);
      // A run can take minutes: find out now, not after it, that the report cannot be written.
      for (const [flag, file] of [
        ['--report', a.report],
        ['--trace', a.trace],
      ] as const) {
        if (file !== undefined && !existsSync(dirname(resolve(file)))) {
          throw new CliError('bad_arguments', {
            en: `${flag}: the folder of ${file} does not exist`,
            zh: `${flag}：${file} 所在的文件夹不存在`,
          });
        }
      }
      return runSimCommand(a, engine, {
        out: (t) => process.stdout.write(t),
        err: { isTTY: process.stderr.isTTY === true, write: (t) => process.stderr.write(t) },
        writeFile: (path, text) => {
          try {
            writeFileSync(path, text);
          } catch (e) {
            const msg = e instanceof Error ? e.message : String(e);
            throw new CliError('report_write_failed', { en: `Could not write the report: ${msg}`, zh: `无法写入报告：${msg}` });
          }
        },
        openTrace: (path) => {
          let fd: number;
          try {
            fd = openSync(path, 'w');
          } catch (e) {
            const msg = e instanceof Error ? e.message : String(e);
            throw new CliError('trace_write_failed', { en: `Could not open the trace file: ${msg}`, zh: `无法打开轨迹文件：${msg}` });
          }
          return {
            line: (text) => writeSync(fd, `${text}\n`),
            close: () => closeSync(fd),
          };
        },
      });
    },
  };
}

export const simCommand: Command = makeSimCommand(simEngine);
