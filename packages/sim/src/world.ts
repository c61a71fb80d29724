/**
 * The simulated campus: a platform in this process (in-memory SQLite, virtual clock, clearing run
 * by the simulator), its operator, terminals at windows, and wallets for the holders who come to
 * eat. Everything is made through the real code: the operator's HTTP API, terminal activation
 * with the real adapter, credentials issued by the platform's issuance code.
 */
import { copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openPlatform, type Platform, seedCampus, seedCredential, seedHolder, UnsealedKeys } from '@duet/platform';
import type { CryptoProvider, Scene } from '@duet/protocol';
import { field, isNum, isStr, PlatformCallError, PlatformClient } from '@duet/protocol/client';
import { ONLINE_BUDGET_MS_DEFAULT, Terminal, UPLOAD_TIMEOUT_MS_DEFAULT } from '@duet/terminal';
import { activate, onlineAuthorizer } from '@duet/terminal/platform';
import { MemoryKeyVault, MemoryWalletStore, Wallet } from '@duet/wallet';
import type { SimNetwork } from './network.js';
import { type Random, sfc32 } from './random.js';
import type { EventQueue } from './scheduler.js';
import { CrashJournal } from './storage.js';

export const PLATFORM_URL = 'http://platform.sim';
const OPERATOR = { username: 'sim-operator', password: 'sim-operator-password' };
/** seedCampus makes at most this many holders; the rest are made the same way without arrears. */
const CAMPUS_SEED_MAX = 5_000;

/** One window's terminal, as the simulator holds it across crashes and restarts. */
export class SimTerminal {
  /** The highest sequence the platform has acknowledged to this terminal, as the terminal saw it. */
  ackedSeen = 0;
  /** Crashes the simulator has reopened the terminal after. */
  crashesHandled = 0;
  /** People waiting at this window (holder ids), and whether one is being served. */
  readonly queue: number[] = [];
  busy = false;
  private constructor(
    readonly index: number,
    readonly id: number,
    readonly scene: Scene,
    readonly label: string,
    /** A dishonest merchant's till: its records are attack records. */
    readonly rogue: boolean,
    public terminal: Terminal,
    readonly journal: CrashJournal,
    readonly client: PlatformClient,
    readonly clock: { nowMs(): number },
    private readonly skew: { ms: number },
  ) {}

  /** Clock skew of this terminal, ms (the skewed-clock attacker); healing sets it back to 0. */
  get skewMs(): number {
    return this.skew.ms;
  }

  set skewMs(ms: number) {
    this.skew.ms = ms;
  }

  /** Makes the terminal's journal and core, and activates it with the real adapter over the simulated network. */
  static async activate(o: WorldOptions, index: number, scene: Scene, label: string, rogue: boolean, code: string): Promise<SimTerminal> {
    const skew = { ms: 0 };
    const clock = { nowMs: () => o.queue.nowMs() + skew.ms };
    const client = new PlatformClient(
      PLATFORM_URL,
      o.crypto,
      () => Math.floor(clock.nowMs() / 1000),
      o.network.fetchFor(index + 1, waitsMs),
    );
    const journal = new CrashJournal();
    const terminal = await openTerminal(o, journal, clock, client);
    const { terminalId } = await activate(terminal, client, o.crypto, code, Math.floor(clock.nowMs() / 1000));
    return new SimTerminal(index, terminalId, scene, label, rogue, terminal, journal, client, clock, skew);
  }

  /** After a crash: the terminal is reopened from what its journal kept. */
  async reopen(o: WorldOptions): Promise<void> {
    this.terminal = await openTerminal(o, this.journal, this.clock, this.client);
  }
}

/** How long a terminal waits for an answer: its online budget for an authorization, its upload timeout for anything else. */
const waitsMs = (path: string): number => (path === '/v1/terminal/authorize' ? ONLINE_BUDGET_MS_DEFAULT : UPLOAD_TIMEOUT_MS_DEFAULT);

async function openTerminal(o: WorldOptions, journal: CrashJournal, clock: { nowMs(): number }, client: PlatformClient): Promise<Terminal> {
  const online: { t: Terminal | undefined } = { t: undefined };
  const t = await Terminal.open({
    journal,
    crypto: o.crypto,
    clock,
    scheduler: o.queue,
    online: {
      authorize: (request, signal) => {
        if (online.t === undefined) throw new Error('terminal not open');
        return onlineAuthorizer(online.t, client).authorize(request, signal);
      },
    },
  });
  online.t = t;
  return t;
}

export interface SimHolder {
  readonly id: number;
  readonly cashFen: number;
  readonly subsidyFen: number;
  readonly creditLineFen: number;
  readonly arrearsFen: number;
}

export interface World {
  readonly platform: Platform;
  /** The operator's call to the platform's API, signing in again when the session has run out. */
  op(method: string, path: string, json?: unknown): Promise<unknown>;
  readonly terminals: SimTerminal[];
  readonly holders: SimHolder[];
  readonly wallets: Map<number, Wallet>;
  readonly crypto: CryptoProvider;
  /** What the world was made with (a terminal reopens with it after a crash). */
  readonly options: WorldOptions;
  close(): Promise<void>;
}

export interface WorldOptions {
  readonly crypto: CryptoProvider;
  readonly queue: EventQueue;
  readonly network: SimNetwork;
  readonly random: Random;
  readonly seed: number;
  readonly holders: number;
  readonly windows: number;
  /** Extra tills of dishonest merchants (journal attackers). */
  readonly rogueTills: number;
}

/** Which place window `i` of `n` is: canteen windows, then a bus and a gate when there are enough. */
export function placeOf(i: number, n: number): Scene {
  if (n >= 5 && i === n - 1) return 'gate';
  if (n >= 3 && i === n - (n >= 5 ? 2 : 1)) return 'bus';
  return 'canteen';
}

/**
 * Campuses made in this process, by size and time of making. A run copies one instead of making it
 * again: the platform's key seals (scrypt) and the staff accounts (argon2) are most of a small run's
 * cost. The campus is the same for every seed of a size (made from CAMPUS_SEED); the run's seed
 * drives everything that happens on it.
 */
const templates = new Map<string, Promise<{ readonly file: string; readonly holders: SimHolder[] }>>();
/** Memory-backed when there is one: the platform's SQLite fsyncs every commit, which tmpfs makes free. */
const SCRATCH_DIR = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
const CAMPUS_SEED = 1;
/**
 * Every run of a size opens a platform on a copy of the same campus, so its keys are the same:
 * decrypted once per process (scrypt, most of a small run's set-up) and shared, not once per run.
 */
const UNSEALED = new UnsealedKeys();
const PASSPHRASE = 'duet-sim-passphrase';

function campusTemplate(o: WorldOptions): Promise<{ readonly file: string; readonly holders: SimHolder[] }> {
  const key = `${o.holders}:${o.queue.nowMs()}`;
  const known = templates.get(key);
  if (known !== undefined) return known;
  const made = makeTemplate(o);
  templates.set(key, made);
  made.catch(() => templates.delete(key));
  return made;
}

async function makeTemplate(o: WorldOptions): Promise<{ readonly file: string; readonly holders: SimHolder[] }> {
  const dir = mkdtempSync(join(SCRATCH_DIR, 'duet-sim-campus-'));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'campus.db');
  const at = o.queue.nowMs();
  const platform = await openPlatform({
    dbUrl: `sqlite:${file}`,
    dataDir: dir,
    passphrase: PASSPHRASE,
    crypto: o.crypto,
    clock: { nowMs: () => at },
    logger: false,
    clearing: false,
    ledgerSealer: false,
    firstAdmin: OPERATOR,
    unsealedKeys: UNSEALED,
  });
  try {
    return { file, holders: await makeHolders(platform, o) };
  } finally {
    await platform.close();
  }
}

export async function openWorld(o: WorldOptions): Promise<World> {
  const campus = await campusTemplate(o);
  const dir = mkdtempSync(join(SCRATCH_DIR, 'duet-sim-'));
  const file = join(dir, 'campus.db');
  copyFileSync(campus.file, file);
  const holders = campus.holders;
  const nowS = () => Math.floor(o.queue.nowMs() / 1000);
  const platform = await openPlatform({
    dbUrl: `sqlite:${file}`,
    dataDir: dir,
    passphrase: PASSPHRASE,
    crypto: o.crypto,
    clock: o.queue,
    logger: false,
    clearing: false,
    ledgerSealer: false,
    firstAdmin: OPERATOR,
    unsealedKeys: UNSEALED,
  });
  o.network.attach({ inject: (req) => platform.app.inject(req) });
  const operator = new PlatformClient(PLATFORM_URL, o.crypto, nowS, o.network.fetchFor(0));
  let token = field(await operator.call('POST', '/v1/staff/login', { json: OPERATOR }), 'token', isStr);
  const op = async (method: string, path: string, json?: unknown): Promise<unknown> => {
    const call = () => operator.call(method, path, { token, ...(json !== undefined ? { json } : {}) });
    try {
      return await call();
    } catch (e) {
      if (!(e instanceof PlatformCallError) || e.status !== 401) throw e;
      token = field(await operator.call('POST', '/v1/staff/login', { json: OPERATOR }), 'token', isStr);
      return call();
    }
  };
  const terminals = await makeTerminals(op, o);
  return {
    platform,
    op,
    terminals,
    holders,
    wallets: new Map(),
    crypto: o.crypto,
    options: o,
    async close() {
      for (const t of terminals) await t.terminal.journal.close().catch(() => {});
      await platform.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function makeHolders(platform: Platform, o: WorldOptions): Promise<SimHolder[]> {
  const nowS = Math.floor(o.queue.nowMs() / 1000);
  const first = Math.min(o.holders, CAMPUS_SEED_MAX);
  const campus = await seedCampus(
    platform.ctx,
    { holders: first, seed: CAMPUS_SEED, withPasswords: 0, password: OPERATOR.password, campus: 1 },
    nowS,
  );
  const holders: SimHolder[] = campus.holders.map((h) => ({
    id: h.id,
    cashFen: h.cashFen,
    subsidyFen: h.subsidyFen,
    creditLineFen: h.creditLineFen,
    arrearsFen: h.arrearsFen,
  }));
  const r = sfc32(CAMPUS_SEED).fork('holders');
  const lastId = holders[holders.length - 1]?.id ?? 0;
  for (let k = first; k < o.holders; k++) {
    const id = lastId + 1 + (k - first);
    const student = r.chance(0.85);
    const h: SimHolder = {
      id,
      cashFen: (20 + r.int(280)) * 100,
      subsidyFen: student && r.chance(0.6) ? (50 + r.int(150)) * 100 : 0,
      creditLineFen: student && r.chance(0.1) ? 10_000 : 0,
      arrearsFen: 0,
    };
    await seedHolder(
      platform.db,
      {
        id,
        name: `Holder ${id}`,
        role: student ? 'student' : 'teacher',
        campus: 1,
        cashFen: h.cashFen,
        subsidyFen: h.subsidyFen,
        creditLineFen: h.creditLineFen,
      },
      nowS,
    );
    holders.push(h);
  }
  return holders;
}

async function makeTerminals(op: World['op'], o: WorldOptions): Promise<SimTerminal[]> {
  const merchants = new Map<Scene, number>();
  const merchantOf = async (scene: Scene): Promise<number> => {
    const known = merchants.get(scene);
    if (known !== undefined) return known;
    const m = await op('POST', '/v1/merchants', { name: `Sim ${scene}`, category: scene });
    const id = field(m, 'id', isNum);
    merchants.set(scene, id);
    return id;
  };
  const out: SimTerminal[] = [];
  const total = o.windows + o.rogueTills;
  for (let i = 0; i < total; i++) {
    const rogue = i >= o.windows;
    const scene: Scene = rogue ? 'shop' : placeOf(i, o.windows);
    const label = rogue ? `rogue till ${i - o.windows + 1}` : `${scene} ${i + 1}`;
    const made = await op('POST', '/v1/terminals', { merchantId: await merchantOf(scene), scene, campus: 1, location: label });
    const code = field(made, 'activationCode', isStr);
    out.push(await SimTerminal.activate(o, i, scene, label, rogue, code));
  }
  return out;
}

/** A holder's phone: the real wallet on in-memory storage, with a credential the platform issued. Undefined when the platform will not issue one (e.g. in arrears). */
export async function enrolWallet(world: World, queue: EventQueue, holderId: number): Promise<Wallet | undefined> {
  const vault = new MemoryKeyVault(world.crypto);
  const wallet = await Wallet.open({ crypto: world.crypto, clock: queue, vault, store: new MemoryWalletStore() });
  const device = await vault.load();
  if (device === undefined) throw new Error('a wallet just opened holds its device key');
  try {
    const credential = await seedCredential(world.platform.db, world.platform.keys, holderId, device, Math.floor(queue.nowMs() / 1000));
    await wallet.installCredential(credential.bytes);
  } catch {
    return undefined;
  }
  return wallet;
}
