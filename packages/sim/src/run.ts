/**
 * One simulated lunch rush: the campus is made, people arrive and queue at windows, the real
 * terminals decide, upload and sync over the simulated network, the real platform clears, the
 * attackers try their tricks; then healing (faults stop, every queue drains, clearing runs until
 * quiet) and the invariants are checked.
 */
import { createHash } from 'node:crypto';
import { decodeRecord, encodeUploadBatch, type TerminalRecord } from '@duet/protocol';
import { field, isNum } from '@duet/protocol/client';
import { nodeCrypto } from '@duet/protocol/node';
import { syncLists } from '@duet/terminal/platform';
import { Attackers } from './attacks.js';
import { checkInvariants } from './invariants.js';
import { SimNetwork } from './network.js';
import { type Random, sfc32 } from './random.js';
import type { AttackKind, AttackTally, Scenario, SimResult, SimSeries } from './result.js';
import { checkScenario, defaultScenario, replayCommand, smallScenario } from './scenario.js';
import { blockedThreadGuard } from './blocked.js';
import { EventQueue, STALL_MS, watchProgress } from './scheduler.js';
import { enrolWallet, openWorld, type SimTerminal, type World } from './world.js';

/** A deliberately broken clearing rule, to prove the invariant checks can fail. */
export type BreakClearing = 'double_count' | 'drop_replays' | 'lose_record';

export interface RunOptions extends Partial<Scenario> {
  readonly onProgress?: (doneMinutes: number, totalMinutes: number) => void;
  readonly breakClearing?: BreakClearing;
  /** Runs the scenario a second time and adds the `deterministic` invariant (same trace hash). */
  readonly checkDeterminism?: boolean;
  /** Each line of the trace as it is hashed (for `duet sim --trace` and debugging a seed). */
  readonly onTrace?: (line: string) => void;
  /** Real milliseconds without progress after which the run fails with SimStalledError (default STALL_MS). */
  readonly stallMs?: number;
}

/** 12:00 campus time (UTC+8) on a September weekday: minute 0 of every run. */
const DAY_START_MS = Date.UTC(2026, 8, 14, 0, 0, 0) - 8 * 3_600_000;
const MINUTE_MS = 60_000;
/** One crypto provider for every run: the real Node one. */
const CRYPTO = nodeCrypto();
/**
 * The campus (platform, keys, terminals) is made four days before the rush, so a credential issued
 * then has expired by lunch (credentials last 72 h): the expired-credential attacker's.
 */
const CAMPUS_MADE_BEFORE_MS = 4 * 86_400_000;
/** Lists are published and synced, and wallets enrolled, this long before minute 0. */
const MORNING_BEFORE_MS = 30 * MINUTE_MS;
/** Each terminal tries an upload this often while it has records waiting (plus jitter and network delay). */
const UPLOAD_EVERY_MS = 20_000;
/** Each terminal syncs its lists this often when it can reach the platform. */
const SYNC_EVERY_MS = 60_000;
/** The platform clears this often. */
const CLEAR_EVERY_MS = 30_000;
/** Serving one person at a window: showing the code, the beep, the tray moving on; 4 to 12 s. */
const SERVICE_MIN_MS = 4_000;
const SERVICE_SPREAD_MS = 8_000;
/** Records per upload request. */
const UPLOAD_BATCH = 50;
/** Healing rounds at most before the run gives up waiting for quiet (each: sync, upload all, clear). */
const HEAL_ROUNDS_MAX = 200;
/** Latency histogram bucket upper bounds, ms. */
const LATENCY_BUCKETS_MS = [0.5, 1, 2, 5, 10, 20, 50, 100, 1_000, 10_000];

export interface Accepted {
  readonly terminalId: number;
  readonly sequence: number;
  readonly holder: number;
  readonly amount: number;
  readonly kind: 'payment' | 'access';
}

/** What the run keeps as it goes, for the invariants and the result. */
export class Tally {
  attempted = 0;
  accepted: Accepted[] = [];
  declined = 0;
  readonly declineReasons = new Map<string, number>();
  readonly perMinute: number[] = [];
  readonly queueLength: number[] = [];
  readonly backlog: number[] = [];
  readonly latencies: number[] = [];
  /** Power cut during the append, the record landed, and the restarted terminal showed it (`recoverDecision`). */
  recoveredAfterPowerCut = 0;
  /** Power cut during the append, the record landed, and nothing showed it: the holder is charged unseen. */
  chargedAfterPowerCutFen = 0;
  private readonly hash = createHash('sha256');
  events = 0;

  constructor(
    minutes: number,
    private readonly onTrace?: (line: string) => void,
  ) {
    this.perMinute = new Array<number>(minutes).fill(0);
  }

  /** One line of the trace: semantic events only (no signature bytes, no wall-clock times). */
  trace(line: string): void {
    this.onTrace?.(line);
    this.hash.update(line);
    this.hash.update('\n');
    this.events++;
  }

  traceHash(): string {
    return this.hash.copy().digest('hex');
  }
}

export interface Sim {
  readonly scenario: Scenario;
  readonly queue: EventQueue;
  readonly network: SimNetwork;
  readonly world: World;
  readonly tally: Tally;
  readonly random: Random;
  readonly startMs: number;
  healing: boolean;
  /** Codes shown at windows lately (the replay attacker's pick). */
  readonly recentCodes: { text: string; window: number; amount: number; holder: number; terminalId?: number; sequence?: number }[];
  /** The minute of virtual time `ms` falls in, and "mm:ss" for the trace. */
  minuteOf(ms: number): number;
  stamp(): string;
  /** Checks for a crash after any terminal operation and reopens the terminal from its journal. */
  afterOp(t: SimTerminal): Promise<void>;
  pay(t: SimTerminal, amount: number, text: string): Promise<{ accepted: boolean; reason?: string; sequence?: number }>;
}

export async function runSim(options: RunOptions = {}): Promise<SimResult> {
  const { onProgress, breakClearing, checkDeterminism, onTrace, stallMs = STALL_MS, ...overrides } = options;
  if (!Number.isSafeInteger(stallMs) || stallMs < 1) throw new RangeError(`stallMs ${stallMs}: a whole number of ms >= 1`);
  const scenario = checkScenario(defaultScenario(overrides));
  const result = await watchedRun(scenario, onProgress, breakClearing, onTrace, stallMs);
  if (checkDeterminism !== true) return result;
  const again = await watchedRun(scenario, undefined, breakClearing, undefined, stallMs);
  const same = again.summary.trace_hash === result.summary.trace_hash;
  const invariants = [
    ...result.invariants,
    {
      name: 'deterministic',
      ok: same,
      detail: same
        ? ''
        : `the same seed gave trace ${result.summary.trace_hash.slice(0, 16)} then ${again.summary.trace_hash.slice(0, 16)}`,
    },
  ];
  return { ...result, invariants, summary: { ...result.summary, invariants_ok: invariants.every((i) => i.ok) } };
}

/**
 * Runs seeds `from` to `from + count - 1` one after another, reporting each; the scenario of a seed
 * is the small campus unless `make` says otherwise (e.g. `(seed) => ({ seed })` for the default one).
 */
export async function runSeeds(
  from: number,
  count: number,
  onEach: (result: SimResult) => void,
  make: (seed: number) => Partial<Scenario> = smallScenario,
): Promise<{ readonly failed: readonly SimResult[] }> {
  const failed: SimResult[] = [];
  for (let seed = from; seed < from + count; seed++) {
    const r = await runSim(make(seed));
    if (!r.summary.invariants_ok) failed.push(r);
    onEach(r);
  }
  return { failed };
}

/** Trace lines a SimStalledError carries. */
const STALL_TRACE_LINES = 12;

/** One run under a progress watchdog: a run that stops moving fails instead of hanging. */
async function watchedRun(
  scenario: Scenario,
  onProgress: RunOptions['onProgress'],
  breakClearing: BreakClearing | undefined,
  onTrace: ((line: string) => void) | undefined,
  stallMs: number = STALL_MS,
): Promise<SimResult> {
  let probe: { queue: EventQueue; network: SimNetwork } | undefined;
  // The last few trace lines say where a stuck run stopped.
  const tail: string[] = [];
  const traced = (line: string): void => {
    if (tail.push(line) > STALL_TRACE_LINES) tail.shift();
    onTrace?.(line);
  };
  // A main thread blocked in native code stops every timer here: the guard's own thread ends the process then.
  const guard = blockedThreadGuard(stallMs);
  guard.arm(`seed ${scenario.seed}; replay / 重放: ${replayCommand(scenario)}`);
  try {
    const work = runOnce(scenario, onProgress, breakClearing, traced, (queue, network) => {
      probe = { queue, network };
    });
    return await watchProgress(
      work,
      () => (probe === undefined ? 0 : probe.queue.ran + probe.network.stats.calls),
      () => probe?.queue.nowMs() ?? 0,
      stallMs,
      () => tail.slice(),
    );
  } finally {
    guard.disarm();
  }
}

async function runOnce(
  scenario: Scenario,
  onProgress: RunOptions['onProgress'],
  breakClearing: BreakClearing | undefined,
  onTrace: ((line: string) => void) | undefined,
  expose: (queue: EventQueue, network: SimNetwork) => void,
): Promise<SimResult> {
  const wallStart = performance.now();
  const random = sfc32(scenario.seed);
  const startMs = DAY_START_MS + minutesOf(scenario.startsAt) * MINUTE_MS;
  const queue = new EventQueue(startMs - CAMPUS_MADE_BEFORE_MS);
  const tally = new Tally(scenario.minutes, onTrace);
  const netRandom = random.fork('network');
  const network = new SimNetwork(scenario.faults, netRandom, (ms, run) => {
    queue.after(ms, async () => {
      await run().catch(() => {});
    });
  });
  network.faultsOn = false;
  expose(queue, network);
  const rogueTills = scenario.attacks ? 2 : 0;
  const world: World = await openWorld({
    crypto: CRYPTO,
    queue,
    network,
    random: random.fork('campus'),
    seed: scenario.seed,
    holders: scenario.holders,
    windows: scenario.windows,
    rogueTills,
  });
  try {
    const sim = makeSim(scenario, queue, network, world, tally, random, startMs);
    const attackers = scenario.attacks ? new Attackers(sim, random.fork('attacks')) : undefined;
    await attackers?.issueEarly();
    // The morning of the rush: the operator publishes fresh lists and every terminal syncs them.
    await queue.runUntil(startMs - MORNING_BEFORE_MS);
    await world.op('POST', '/v1/lists/publish');
    for (const t of world.terminals) await syncOnce(sim, t);
    const arrivals = planArrivals(scenario, world, random.fork('arrivals'), attackers?.reserved ?? new Set());
    for (const a of arrivals) {
      const w = await enrolWallet(world, queue, a.holder);
      if (w !== undefined) world.wallets.set(a.holder, w);
    }
    await attackers?.prepare();
    tally.trace(`campus holders=${world.holders.length} terminals=${world.terminals.map((t) => `${t.id}:${t.scene}`).join(',')}`);
    tally.trace(`wallets ${world.wallets.size} arrivals ${arrivals.length}`);
    await queue.runUntil(startMs);
    network.faultsOn = true;
    scheduleAll(sim, arrivals, random, breakClearing);
    attackers?.schedule();
    for (let m = 0; m < scenario.minutes; m++) {
      await queue.runUntil(startMs + (m + 1) * MINUTE_MS - 1);
      tally.queueLength.push(world.terminals.reduce((n, t) => n + t.queue.length, 0));
      tally.backlog.push(world.terminals.reduce((n, t) => n + (t.terminal.headSequence - t.terminal.ackedSequence), 0));
      onProgress?.(m + 1, scenario.minutes);
    }
    await heal(sim, breakClearing);
    const attacks = attackers === undefined ? {} : await attackers.resolve();
    const invariants = await checkInvariants(sim, attacks, breakClearing);
    return buildResult(sim, attacks, invariants, performance.now() - wallStart);
  } finally {
    await world.close();
  }
}

function minutesOf(hhmm: string): number {
  const [h, m] = hhmm.split(':').map(Number);
  return ((h ?? 12) - 12) * 60 + (m ?? 0);
}

function makeSim(
  scenario: Scenario,
  queue: EventQueue,
  network: SimNetwork,
  world: World,
  tally: Tally,
  random: Random,
  startMs: number,
): Sim {
  const sim: Sim = {
    scenario,
    queue,
    network,
    world,
    tally,
    random,
    startMs,
    healing: false,
    recentCodes: [],
    minuteOf: (ms) => Math.floor((ms - startMs) / MINUTE_MS),
    stamp: () => {
      const s = Math.floor((queue.nowMs() - startMs) / 1000);
      return `${Math.floor(s / 60)}:${String(((s % 60) + 60) % 60).padStart(2, '0')}`;
    },
    async afterOp(t) {
      if (t.journal.crashes === t.crashesHandled) return;
      t.crashesHandled = t.journal.crashes;
      await t.reopen(world.options);
      tally.trace(`${sim.stamp()} crash t${t.id} reopened head=${t.terminal.headSequence} acked=${t.terminal.ackedSequence}`);
    },
    async pay(t, amount, text) {
      const began = performance.now();
      const headBefore = t.terminal.headSequence;
      let d = t.scene === 'gate' ? await t.terminal.checkIdentity(text) : await t.terminal.pay(amount, text);
      tally.latencies.push(performance.now() - began);
      await sim.afterOp(t);
      if (!d.accepted && t.terminal.headSequence > headBefore) {
        // The power went in mid-append and the record landed: after the restart the terminal shows
        // the decision rebuilt from it, as the POS does, so the holder is not charged a second time.
        const recovered = await t.terminal.recoverDecision(headBefore);
        if (recovered === undefined) {
          tally.chargedAfterPowerCutFen += amount;
          tally.trace(`${sim.stamp()} t${t.id} record ${t.terminal.headSequence} landed though the decision failed`);
        } else {
          tally.recoveredAfterPowerCut++;
          tally.trace(
            `${sim.stamp()} t${t.id} record ${recovered.sequence} recovered after the power cut: ${recovered.accepted ? 'ok' : 'no'}`,
          );
          d = recovered;
        }
      }
      const out: { accepted: boolean; reason?: string; sequence?: number } = { accepted: d.accepted };
      if (d.reason !== undefined) out.reason = d.reason;
      if (d.sequence !== undefined) out.sequence = d.sequence;
      return out;
    },
  };
  return sim;
}

interface Arrival {
  readonly atMs: number;
  readonly holder: number;
  readonly window: number;
}

/** Who comes to eat and when: a lunch peak at 40% of the rush, a share of holders once each, at the shortest of three windows of their place. */
function planArrivals(s: Scenario, world: World, r: Random, reserved: ReadonlySet<number>): Arrival[] {
  const share = Math.min(0.9, 0.6 * (s.minutes / 60));
  const weights: number[] = [];
  for (let m = 0; m < s.minutes; m++) weights.push(0.3 + Math.exp(-(((m - 0.4 * s.minutes) / (0.2 * s.minutes)) ** 2)));
  const total = weights.reduce((a, b) => a + b, 0);
  const out: Arrival[] = [];
  const canteens = world.terminals.filter((t) => t.scene === 'canteen' && !t.rogue).map((t) => t.index);
  const bus = world.terminals.filter((t) => t.scene === 'bus').map((t) => t.index);
  const gate = world.terminals.filter((t) => t.scene === 'gate').map((t) => t.index);
  for (const h of world.holders) {
    if (reserved.has(h.id) || !r.chance(share)) continue;
    let x = r.next() * total;
    let m = 0;
    for (; m < s.minutes - 1; m++) {
      x -= weights[m] ?? 0;
      if (x < 0) break;
    }
    const p = r.next();
    const place = p < 0.08 && bus.length > 0 ? bus : p < 0.12 && gate.length > 0 ? gate : canteens.length > 0 ? canteens : bus;
    const window = place.length === 0 ? 0 : r.pick(place);
    out.push({ atMs: m * MINUTE_MS + r.int(MINUTE_MS), holder: h.id, window });
  }
  return out.sort((a, b) => a.atMs - b.atMs || a.holder - b.holder);
}

function scheduleAll(sim: Sim, arrivals: readonly Arrival[], random: Random, breakClearing: BreakClearing | undefined): void {
  const { queue, world, scenario, startMs, network } = sim;
  const service = random.fork('service');
  const jitter = random.fork('timers');
  const crash = random.fork('crash');
  const partition = random.fork('partition');
  const serveNext = (t: SimTerminal): void => {
    const holder = t.queue.shift();
    if (holder === undefined) {
      t.busy = false;
      return;
    }
    t.busy = true;
    queue.after(0, async () => {
      await serve(sim, t, holder, service);
      queue.after(SERVICE_MIN_MS + service.int(SERVICE_SPREAD_MS), () => serveNext(t));
    });
  };
  for (const a of arrivals) {
    queue.at(startMs + a.atMs, () => {
      const t = world.terminals[a.window];
      if (t === undefined) return;
      t.queue.push(a.holder);
      if (!t.busy) serveNext(t);
    });
  }
  for (const w of scenario.outages) {
    queue.at(startMs + w.from * MINUTE_MS, () => {
      if (sim.healing) return;
      network.setOutage(true);
      sim.tally.trace(`${sim.stamp()} outage begins`);
    });
    queue.at(startMs + w.to * MINUTE_MS, () => {
      if (sim.healing) return;
      network.setOutage(false);
      sim.tally.trace(`${sim.stamp()} outage ends`);
    });
  }
  for (const t of world.terminals) {
    const upload = async (): Promise<void> => {
      if (sim.healing) return;
      await uploadOnce(sim, t);
      const delay = network.faultsOn && scenario.faults.delayMs > 0 ? jitter.int(scenario.faults.delayMs + 1) : 0;
      queue.after(UPLOAD_EVERY_MS + jitter.int(5_000) + delay, upload);
    };
    queue.after(jitter.int(UPLOAD_EVERY_MS), upload);
    const sync = async (): Promise<void> => {
      if (sim.healing) return;
      await syncOnce(sim, t);
      queue.after(SYNC_EVERY_MS + jitter.int(10_000), sync);
    };
    queue.after(jitter.int(SYNC_EVERY_MS), sync);
  }
  for (let m = 0; m < scenario.minutes; m++) {
    queue.at(startMs + m * MINUTE_MS, () => {
      if (sim.healing) return;
      for (const t of world.terminals) {
        if (crash.chance(scenario.faults.crash)) {
          const land = crash.chance(0.5);
          t.journal.armCrash(land);
          sim.tally.trace(`${sim.stamp()} crash armed t${t.id} land=${land}`);
        }
        // A terminal's own link fails now and then, for a few minutes (a partition), at a rate tied to the loss rate.
        if (partition.chance(scenario.faults.loss / 4)) {
          network.partition(t.index + 1, true);
          sim.tally.trace(`${sim.stamp()} partition t${t.id}`);
          queue.after((1 + partition.int(5)) * MINUTE_MS, () => network.partition(t.index + 1, false));
        }
      }
    });
  }
  const clear = async (): Promise<void> => {
    if (sim.healing) return;
    await clearOnce(sim, breakClearing);
    queue.after(CLEAR_EVERY_MS, clear);
  };
  queue.at(startMs + CLEAR_EVERY_MS, clear);
}

const SCENE_AMOUNTS: { readonly [scene: string]: readonly [number, number] } = {
  canteen: [800, 2_500],
  shop: [500, 6_000],
  bus: [100, 200],
  gate: [0, 0],
};

async function serve(sim: Sim, t: SimTerminal, holder: number, r: Random): Promise<void> {
  const wallet = sim.world.wallets.get(holder);
  const [lo, hi] = SCENE_AMOUNTS[t.scene] ?? [800, 2_500];
  const amount = t.scene === 'gate' ? 0 : Math.round((lo + r.int(hi - lo + 1)) / 10) * 10;
  if (wallet === undefined) {
    sim.tally.trace(`${sim.stamp()} t${t.id} h${holder} has no credential, walks away`);
    return;
  }
  const code = await wallet.nextCode();
  const d = await sim.pay(t, amount, code.text);
  const tally = sim.tally;
  tally.attempted++;
  if (d.accepted && d.sequence !== undefined) {
    tally.accepted.push({ terminalId: t.id, sequence: d.sequence, holder, amount, kind: t.scene === 'gate' ? 'access' : 'payment' });
    const m = sim.minuteOf(sim.queue.nowMs());
    if (m >= 0 && m < tally.perMinute.length) tally.perMinute[m] = (tally.perMinute[m] ?? 0) + 1;
  } else {
    tally.declined++;
    const reason = d.reason ?? 'unknown';
    tally.declineReasons.set(reason, (tally.declineReasons.get(reason) ?? 0) + 1);
  }
  tally.trace(`${sim.stamp()} t${t.id} h${holder} ${amount} ${d.accepted ? `ok ${d.sequence}` : `no ${d.reason}`}`);
  if (d.accepted && t.scene === 'canteen' && d.sequence !== undefined) {
    sim.recentCodes.push({ text: code.text, window: t.index, amount, holder, terminalId: t.id, sequence: d.sequence });
    if (sim.recentCodes.length > 50) sim.recentCodes.shift();
  }
}

/** One upload request: the first contiguous run of records after the acknowledged ones. */
export async function uploadOnce(sim: Sim, t: SimTerminal): Promise<void> {
  const identity = t.terminal.state.snapshot.identity;
  if (identity === undefined || t.terminal.headSequence <= t.terminal.ackedSequence) return;
  let records: TerminalRecord[];
  try {
    const raw = await t.journal.pending(t.terminal.ackedSequence, UPLOAD_BATCH);
    records = [];
    for (const bytes of raw) {
      const rec = decodeRecord(bytes);
      const prev = records[records.length - 1];
      if (prev !== undefined && rec.sequence !== prev.sequence + 1) break;
      records.push(rec);
    }
  } catch {
    return;
  }
  if (records.length === 0) return;
  try {
    const answer = await t.client.call('POST', '/v1/terminal/upload', {
      bytes: encodeUploadBatch(t.id, records),
      terminal: { id: t.id, signer: identity.signer },
    });
    const acked = field(answer, 'ackedThrough', isNum);
    t.ackedSeen = Math.max(t.ackedSeen, Math.min(acked, t.terminal.headSequence));
    await t.terminal.acknowledge(acked);
    sim.tally.trace(`${sim.stamp()} upload t${t.id} ${records[0]?.sequence}-${records[records.length - 1]?.sequence} acked=${acked}`);
  } catch (e) {
    sim.tally.trace(`${sim.stamp()} upload t${t.id} failed ${e instanceof Error ? e.name : 'error'}`);
  }
  await sim.afterOp(t);
}

async function syncOnce(sim: Sim, t: SimTerminal): Promise<void> {
  try {
    const d = await syncLists(t.terminal, t.client, Math.floor(t.clock.nowMs() / 1000));
    sim.tally.trace(`${sim.stamp()} sync t${t.id} deny=${d.denyVersion}`);
  } catch (e) {
    sim.tally.trace(`${sim.stamp()} sync t${t.id} failed ${e instanceof Error ? e.name : 'error'}`);
  }
  await sim.afterOp(t);
}

/** One clearing run on the platform, and the broken rule when the run asks for one. */
async function clearOnce(sim: Sim, breakClearing: BreakClearing | undefined): Promise<number> {
  const r = await sim.world.platform.clearer.drain();
  sim.tally.trace(
    `${sim.stamp()} clear records=${r.records} posted=${r.posted} linked=${r.linked} refused=${r.refused} flagged=${r.flagged} loss=${r.lossFen} advance=${r.advanceFen}`,
  );
  if (breakClearing !== undefined) await breakRule(sim, breakClearing);
  return r.records;
}

/** The broken clearing rules: each does what a buggy clearing would, straight in the platform's tables. */
async function breakRule(sim: Sim, mode: BreakClearing): Promise<void> {
  const db = sim.world.platform.db;
  const nowS = Math.floor(sim.queue.nowMs() / 1000);
  if (mode === 'drop_replays') {
    await db.run("DELETE FROM clearing_flags WHERE reason = 'replay'");
    return;
  }
  // The rule breaks on a payment a window accepted from an honest holder, the first one cleared.
  let row: { terminal_id: number; sequence: number } | undefined;
  for (const a of sim.tally.accepted) {
    if (a.kind !== 'payment') continue;
    const r = await db.one('SELECT cleared FROM records WHERE terminal_id = ? AND sequence = ?', [a.terminalId, a.sequence]);
    if (r?.cleared === 'posted') {
      row = { terminal_id: a.terminalId, sequence: a.sequence };
      break;
    }
  }
  if (row === undefined) return;
  if (mode === 'double_count') {
    const ref = `record:${row.terminal_id}:${row.sequence}:again`;
    if ((await db.one('SELECT id FROM ledger_entries WHERE reference = ?', [ref])) !== undefined) return;
    await db.run(
      "INSERT INTO ledger_entries (posted_at, effective_at, kind, reference, created_by, memo) VALUES (?, ?, 'offline_payment', ?, 'broken-clearing', 'counted twice')",
      [nowS, nowS, ref],
    );
    return;
  }
  await db.run('DELETE FROM clearing_flags WHERE terminal_id = ? AND sequence = ?', [row.terminal_id, row.sequence]);
  await db.run('DELETE FROM records WHERE terminal_id = ? AND sequence = ?', [row.terminal_id, row.sequence]);
}

/** Healing: faults stop, clocks are set right, every queue drains, clearing runs until quiet. */
async function heal(sim: Sim, breakClearing: BreakClearing | undefined): Promise<void> {
  const { network, world, queue, tally } = sim;
  sim.healing = true;
  network.heal();
  for (const t of world.terminals) {
    t.skewMs = 0;
    t.journal.disarm();
  }
  tally.trace(`${sim.stamp()} healing`);
  // People still in line are served (the terminals are online now), and late packets land.
  for (let i = 0; i < 10_000 && (queue.size > 0 || world.terminals.some((t) => t.busy)); i++) {
    await queue.runUntil(queue.nowMs() + MINUTE_MS);
  }
  for (let round = 0; round < HEAL_ROUNDS_MAX; round++) {
    let waiting = 0;
    for (const t of world.terminals) {
      await syncOnce(sim, t);
      for (let k = 0; k < 1_000 && t.terminal.headSequence > t.terminal.ackedSequence; k++) {
        const before = t.terminal.ackedSequence;
        await uploadOnce(sim, t);
        if (t.terminal.ackedSequence === before) break;
      }
      if (!t.rogue) waiting += t.terminal.headSequence - t.terminal.ackedSequence;
    }
    const cleared = await clearOnce(sim, breakClearing);
    await queue.runUntil(queue.nowMs() + CLEAR_EVERY_MS);
    if (waiting === 0 && cleared === 0) break;
  }
  tally.trace(`${sim.stamp()} quiet`);
}

function buildResult(
  sim: Sim,
  attacks: { readonly [K in AttackKind]?: AttackTally },
  invariants: Awaited<ReturnType<typeof checkInvariants>>,
  wallMs: number,
): SimResult {
  const { tally, scenario } = sim;
  const list = invariants.list;
  const attempted = Object.values(attacks).reduce((n, a) => n + a.attempted, 0);
  const caught = Object.values(attacks).reduce((n, a) => n + a.declined + a.flagged, 0);
  const series: SimSeries = {
    paymentsPerMinute: tally.perMinute,
    queueLength: tally.queueLength,
    uploadBacklog: tally.backlog,
    latencyMs: latencyHistogram(tally.latencies),
    lossesByCause: { ...invariants.lossesByCause, holder_charged_after_power_cut: tally.chargedAfterPowerCutFen },
  };
  return {
    scenario,
    summary: {
      seed: scenario.seed,
      payments_attempted: tally.attempted,
      payments_accepted: tally.accepted.length,
      payments_declined: tally.declined,
      payments_recovered_after_power_cut: tally.recoveredAfterPowerCut,
      payments_cleared: invariants.cleared,
      lost: invariants.lost,
      double_counted: invariants.doubleCounted,
      attacks_attempted: attempted,
      attacks_caught: caught,
      books_balanced: invariants.booksBalanced,
      audit_ok: invariants.auditOk,
      invariants_ok: list.every((i) => i.ok),
      trace_hash: tally.traceHash(),
      sim_minutes: scenario.minutes,
      wall_ms: Math.round(wallMs),
      replay: replayCommand(scenario),
    },
    invariants: list,
    attacks,
    series,
  };
}

function latencyHistogram(ms: readonly number[]): SimSeries['latencyMs'] {
  // Each bucket counts decisions up to its bound; the last one also takes everything slower.
  const counts = new Array<number>(LATENCY_BUCKETS_MS.length).fill(0);
  for (const v of ms) {
    let i = LATENCY_BUCKETS_MS.findIndex((b) => v <= b);
    if (i < 0) i = LATENCY_BUCKETS_MS.length - 1;
    counts[i] = (counts[i] ?? 0) + 1;
  }
  const sorted = [...ms].sort((a, b) => a - b);
  const q = (p: number) => Math.round((sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0) * 1000) / 1000;
  return { bucketsMs: LATENCY_BUCKETS_MS, counts, p50: q(0.5), p99: q(0.99) };
}
