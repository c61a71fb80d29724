/**
 * Campus traffic: makes the demo campus look and behave like a living one, so whoever opens the
 * console sees payments per minute, terminals going offline and coming back with records waiting
 * for upload, clearing at work and now and then an alert.
 *
 * It runs the real cores in the demo's own process, and talks to the platform only through its
 * HTTP API, like the devices it stands in for:
 *
 * - Terminals: about half the windows of each canteen and the second shop till and bus (by
 *   default; the dorm gate and the first windows stay waiting for activation, so the POS links
 *   `duet demo` prints keep working for people). Each is activated with a fresh one-time code
 *   (`@duet/terminal/platform` `activate`) and keeps its journal, key and lists in a SQLite file
 *   under `<dataDir>/traffic/terminal-<id>/journal.db`.
 * - Wallets: a dozen holders from the upper part of those with a password (from 2026000030 on, so
 *   the low numbers stay free for people), each enrolled like a phone (sign-in, agreement, device
 *   key with proof, credential) and kept under `<dataDir>/traffic/wallet-<holder>/`.
 * - Payments: every 2–5 s (by default) a holder pays at one of the terminals, offline, an amount
 *   fit for the place (a canteen meal, a shop basket, a bus fare).
 * - Connectivity: a terminal syncs its lists every ~15 s and uploads every ~30 s, so a few records
 *   are usually waiting. Now and then (a quarter of them at most at once) one goes through an
 *   offline spell: its uplink fades first (lists still sync, reporting the journal's head, but
 *   uploads stall for 20–45 s), then it goes silent for 2.5 to 5 minutes (the console calls a
 *   terminal offline after two minutes without a call) while it goes on taking payments; back, it
 *   syncs first and uploads 10–25 s later. So the console sees it offline with records waiting,
 *   then its backlog arriving and clearing.
 * - Replays: every ~100 payments (~6 min) a code just used is shown again at another terminal,
 *   which cannot know; clearing catches it and raises a replay flag (an alert on the console).
 * - Renewals and top-ups: a wallet renews its credential once it has spent the credential's offline
 *   total, when a terminal refuses a code for its limits or a deny list, and near its end; before a
 *   renewal the holder looks at the balance and, when it runs low (or the platform will not issue a
 *   credential), tops up at the cashier (the demo's `admin`), so the traffic seldom runs anyone
 *   into arrears (a traffic holder the seed put in arrears is topped up at its first enrolment).
 * - A terminal the platform refuses (revoked from the console) is left alone from then on.
 *
 * Restarting continues: terminals and wallets reopen their files and nothing is activated or
 * enrolled twice. Choices (who pays where, how much, when a terminal drops off) follow a seeded
 * generator, so a seed gives the same story up to timing. Errors are logged and the loop goes
 * on: the traffic never takes the platform down. `stop()` resolves once the loop has finished its
 * current step and every file is closed.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { seededRandom } from '@duet/platform';
import { SCENES, type Scene } from '@duet/protocol';
import { PlatformCallError, PlatformClient, field, isNum, isStr } from '@duet/protocol/client';
import { nodeCrypto } from '@duet/protocol/node';
import { type Decision, Terminal } from '@duet/terminal';
import { activate, syncLists, upload } from '@duet/terminal/platform';
import { SqliteJournal } from '@duet/terminal/sqlite';
import type { Wallet } from '@duet/wallet';
import { openFileWallet } from '@duet/wallet/node';
import { acceptAgreement, currentAgreement, holderLogin, platformRenewal } from '@duet/wallet/platform';

/** A range of milliseconds, min ≤ max. */
export interface MsRange {
  readonly min: number;
  readonly max: number;
}

export interface TrafficOptions {
  /** Where terminals and wallets keep their files; default `<demo dataDir>/traffic`. */
  readonly dir?: string;
  /** The same seed tells the same story (up to timing); default the demo seed. */
  readonly seed?: number;
  /** Time between two payments across the whole campus; default 2–5 s. */
  readonly paymentEveryMs?: MsRange;
  /** Wallets paying (1 to 20); default 12. */
  readonly wallets?: number;
  /** The first holder used; default the 30th holder with a password. */
  readonly firstHolder?: number;
  /** Terminal ids the traffic runs; default about half the canteen windows, the second shop till and bus. */
  readonly terminals?: readonly number[];
  /** Time between list syncs of a connected terminal; default 12–18 s. */
  readonly syncEveryMs?: MsRange;
  /** Time between uploads of a connected terminal; default 20–40 s. */
  readonly uploadEveryMs?: MsRange;
  /**
   * Length of an offline spell; default 2.5–5 min, since the console calls a terminal offline once
   * it has not been heard from for two minutes.
   */
  readonly offlineMs?: MsRange;
  /** Chance that a terminal plans an offline spell at one of its syncs (0 to 1); default 0.03. */
  readonly offlineChance?: number;
  /** Before an offline spell, how long the uplink fades (lists sync, uploads stall); default 20–45 s. */
  readonly fadeMs?: MsRange;
  /** After an offline spell, how long the terminal waits after its first sync before uploading; default 10–25 s. */
  readonly backlogMs?: MsRange;
  /** A replay attempt about every N payments (0 = never); default 100 (one every ~6 min). */
  readonly replayEvery?: number;
  /** Where to say what went wrong (never thrown); default nowhere. */
  readonly log?: (line: string) => void;
}

/** What the traffic did since it started (this process). */
export interface TrafficStats {
  readonly payments: number;
  readonly declined: number;
  readonly replays: number;
  readonly uploads: number;
  readonly uploadedRecords: number;
  readonly renewals: number;
  readonly topUps: number;
  readonly offlineSpells: number;
  readonly errors: number;
  /** Terminals this start activated (0 after a restart). */
  readonly activated: number;
  /** Wallets this start enrolled (0 after a restart). */
  readonly enrolled: number;
}

export interface TrafficTerminalStatus {
  readonly id: number;
  readonly scene: Scene;
  readonly online: boolean;
  /** The platform refused it (revoked): the traffic no longer uses it. */
  readonly retired: boolean;
  readonly head: number;
  readonly acked: number;
}

export interface Traffic {
  readonly terminals: readonly number[];
  readonly holders: readonly number[];
  stats(): TrafficStats;
  status(): readonly TrafficTerminalStatus[];
  /** Stops the loop and closes every file; resolves when it has. Safe to call twice. */
  stop(): Promise<void>;
}

/** What the traffic needs of the demo (a subset of `Demo`, so tests can pass their own). */
export interface TrafficDemo {
  readonly url: string;
  readonly password: string;
  readonly dataDir: string;
  readonly holders: { readonly first: number; readonly withPassword: number };
  readonly terminals: readonly { readonly id: number; readonly merchantId: number; readonly scene: string; readonly location: string }[];
}

export const TRAFFIC_DEFAULTS = {
  seed: 20_260_901,
  paymentEveryMs: { min: 2_000, max: 5_000 },
  wallets: 12,
  syncEveryMs: { min: 12_000, max: 18_000 },
  uploadEveryMs: { min: 20_000, max: 40_000 },
  offlineMs: { min: 150_000, max: 300_000 },
  offlineChance: 0.03,
  backlogMs: { min: 10_000, max: 25_000 },
  fadeMs: { min: 20_000, max: 45_000 },
  replayEvery: 100,
} as const;

/** The holder with a password the traffic starts from, so 1..29 stay free for people. */
const FIRST_TRAFFIC_OFFSET = 29;
const WALLETS_MAX = 20;
/** A wallet renews at most this often (a credential refused for limits asks for a new one). */
const RENEW_GAP_MS = 5_000;
/** After a renewal failed (a holder blocked from the console, say), the wallet waits this long. */
const RENEW_RETRY_MS = 60_000;
/**
 * A holder tops up at the cashier before a renewal when less than this is left (cleared money
 * only: payments still on their way are not in it), so the traffic seldom runs anyone into arrears.
 */
const LOW_BALANCE_FEN = 30_000;
/** What a top-up brings: 300–600 yuan. */
const TOPUP_FEN = { min: 30_000, max: 60_000 };
/**
 * The platform refuses a signed request it has already seen, and a request is signed to the
 * second: the same terminal call twice within a second (a fast tempo) would be refused.
 */
const SAME_CALL_GAP_MS = 1_100;
/** A replay needs a code still inside its freshness window. */
const REPLAY_CODE_AGE_MS = 30_000;

const LIMIT_REASONS = new Set([
  'over_payment_limit',
  'over_day_total',
  'over_day_count',
  'over_offline_total',
  'over_offline_count',
  'credential_denied',
  'holder_denied',
  'credential_expired',
  'credential_not_yet_valid',
  // A credential of an issuer key the terminals no longer trust (a key rotation, a campus made again).
  'issuer_unknown',
]);

interface SimTerminal {
  readonly id: number;
  readonly scene: Scene;
  readonly t: Terminal;
  /** Wall-clock ms of the next list sync and upload; Infinity while offline. */
  nextSync: number;
  nextUpload: number;
  /** An offline spell: uploads stall from when it is planned, and from quietFrom to quietUntil no call at all. */
  quietFrom: number;
  quietUntil: number;
  /** Back from a spell, the backlog goes up before the next spell may start. */
  calmUntil: number;
  /** The platform refused it (revoked from the console): the traffic leaves it alone. */
  retired: boolean;
  lastSync: number;
  lastUpload: number;
}

interface SimWallet {
  readonly holderId: number;
  readonly wallet: Wallet;
  renewDue: boolean;
  lastRenew: number;
  /** Spent with the current credential, across all terminals; at its offline total, the holder renews. */
  spent: number;
}

/** In the silent part of an offline spell: the terminal makes no call. */
function silent(s: SimTerminal, now: number): boolean {
  return s.quietFrom <= now && now < s.quietUntil;
}

function checkRange(r: MsRange, what: string): MsRange {
  if (!Number.isFinite(r.min) || !Number.isFinite(r.max) || r.min < 0 || r.max < r.min || r.max > 86_400_000)
    throw new RangeError(`traffic ${what}: ${r.min}..${r.max} ms must be 0 ≤ min ≤ max ≤ one day`);
  return r;
}

/** The default terminals: per merchant (not the gate), the later half of its terminals. */
export function defaultTrafficTerminals(terminals: TrafficDemo['terminals']): number[] {
  const byMerchant = new Map<number, TrafficDemo['terminals'][number][]>();
  for (const t of terminals) {
    if (t.scene === 'gate') continue;
    byMerchant.set(t.merchantId, [...(byMerchant.get(t.merchantId) ?? []), t]);
  }
  const ids: number[] = [];
  for (const list of byMerchant.values()) {
    if (list.length < 2) continue;
    const sorted = [...list].sort((a, b) => a.id - b.id);
    ids.push(...sorted.slice(Math.floor(sorted.length / 2)).map((t) => t.id));
  }
  return ids.sort((a, b) => a - b);
}

/** The amount a holder pays at a place, in fen. */
function amountFor(scene: Scene, random: () => number): number {
  if (scene === 'bus') return random() < 0.7 ? 100 : 200;
  if (scene === 'shop') return (3 + Math.floor(random() * 45)) * 100 + (random() < 0.5 ? 50 : 0);
  return (6 + Math.floor(random() * 16)) * 100 + (random() < 0.4 ? 50 : 0);
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * Starts the traffic against a running demo. Resolves once its terminals are activated (or
 * reopened) and its wallets enrolled; the payments then go on in the background until `stop()`.
 */
export async function startTraffic(demo: TrafficDemo, o: TrafficOptions = {}): Promise<Traffic> {
  const paymentEvery = checkRange(o.paymentEveryMs ?? TRAFFIC_DEFAULTS.paymentEveryMs, 'paymentEveryMs');
  const syncEvery = checkRange(o.syncEveryMs ?? TRAFFIC_DEFAULTS.syncEveryMs, 'syncEveryMs');
  const uploadEvery = checkRange(o.uploadEveryMs ?? TRAFFIC_DEFAULTS.uploadEveryMs, 'uploadEveryMs');
  const offlineMs = checkRange(o.offlineMs ?? TRAFFIC_DEFAULTS.offlineMs, 'offlineMs');
  const backlogMs = checkRange(o.backlogMs ?? TRAFFIC_DEFAULTS.backlogMs, 'backlogMs');
  const fadeMs = checkRange(o.fadeMs ?? TRAFFIC_DEFAULTS.fadeMs, 'fadeMs');
  const offlineChance = o.offlineChance ?? TRAFFIC_DEFAULTS.offlineChance;
  if (!(offlineChance >= 0 && offlineChance <= 1)) throw new RangeError(`traffic offlineChance ${offlineChance}: 0 to 1`);
  const replayEvery = o.replayEvery ?? TRAFFIC_DEFAULTS.replayEvery;
  if (!Number.isSafeInteger(replayEvery) || replayEvery < 0) throw new RangeError(`traffic replayEvery ${replayEvery}: a whole number ≥ 0`);
  const walletCount = o.wallets ?? TRAFFIC_DEFAULTS.wallets;
  if (!Number.isSafeInteger(walletCount) || walletCount < 1 || walletCount > WALLETS_MAX)
    throw new RangeError(`traffic wallets ${walletCount}: 1 to ${WALLETS_MAX}`);

  const log = o.log ?? (() => {});
  const random = seededRandom(o.seed ?? TRAFFIC_DEFAULTS.seed);
  const between = (r: MsRange): number => r.min + Math.floor(random() * (r.max - r.min + 1));
  const dir = o.dir ?? join(demo.dataDir, 'traffic');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const crypto = nodeCrypto();
  const client = new PlatformClient(demo.url, crypto);
  const clock = { nowMs: () => Date.now() };
  const nowS = (): number => Math.floor(Date.now() / 1000);
  const stats = {
    payments: 0,
    declined: 0,
    replays: 0,
    uploads: 0,
    uploadedRecords: 0,
    renewals: 0,
    topUps: 0,
    offlineSpells: 0,
    errors: 0,
    activated: 0,
    enrolled: 0,
  };
  const fail = (what: string, e: unknown): void => {
    stats.errors++;
    log(`traffic: ${what}: ${message(e)}`);
  };

  // The cashier: the demo's admin, signed in when a top-up or an activation code is needed.
  let adminToken: string | undefined;
  const asAdmin = async (method: string, path: string, json?: unknown): Promise<unknown> => {
    for (let attempt = 0; ; attempt++) {
      adminToken ??= field(
        await client.call('POST', '/v1/staff/login', { json: { username: 'admin', password: demo.password } }),
        'token',
        isStr,
      );
      try {
        return await client.call(method, path, { token: adminToken, ...(json !== undefined ? { json } : {}) });
      } catch (e) {
        if (attempt === 0 && e instanceof PlatformCallError && e.status === 401) {
          adminToken = undefined;
          continue;
        }
        throw e;
      }
    }
  };

  // Terminals: reopen the ones made before, activate the rest that are still waiting.
  const wanted = o.terminals ?? defaultTrafficTerminals(demo.terminals);
  const listed = field(await asAdmin('GET', '/v1/terminals'), 'terminals', Array.isArray) as unknown[];
  const platformStatus = new Map<number, string>();
  for (const r of listed) platformStatus.set(field(r, 'id', isNum), field(r, 'status', isStr));
  const terminals: SimTerminal[] = [];
  const closing: (() => Promise<void>)[] = [];
  for (const id of wanted) {
    const info = demo.terminals.find((t) => t.id === id);
    const scene = SCENES.find((x) => x === info?.scene);
    if (info === undefined || scene === undefined) {
      log(`traffic: terminal ${id} is not in the campus; skipped`);
      continue;
    }
    const tdir = join(dir, `terminal-${id}`);
    try {
      let t = await openTerminal(tdir, crypto, clock);
      const status = platformStatus.get(id);
      if (t.state.snapshot.identity !== undefined && status === 'pending') {
        // A journal from another campus (the database was made again): start this terminal over.
        await t.journal.close();
        rmSync(tdir, { recursive: true, force: true });
        t = await openTerminal(tdir, crypto, clock);
      }
      if (t.state.snapshot.identity === undefined) {
        if (status !== 'pending') {
          await t.journal.close();
          log(`traffic: terminal ${id} is ${status ?? 'unknown'} and not ours; skipped`);
          continue;
        }
        const code = field(await asAdmin('POST', `/v1/terminals/${id}/activation-code`), 'activationCode', isStr);
        await activate(t, client, crypto, code, nowS());
        stats.activated++;
      } else if (status !== 'active') {
        await t.journal.close();
        log(`traffic: terminal ${id} is ${status ?? 'unknown'} on the platform; skipped`);
        continue;
      }
      const now = Date.now();
      terminals.push({
        id,
        scene,
        t,
        nextSync: now + between(syncEvery),
        nextUpload: now + between(uploadEvery),
        quietFrom: 0,
        quietUntil: 0,
        calmUntil: 0,
        retired: false,
        lastSync: 0,
        lastUpload: 0,
      });
      closing.push(() => t.journal.close());
    } catch (e) {
      fail(`terminal ${id} not started`, e);
    }
  }

  // Wallets: a dozen holders from the upper part of those with a password.
  const lastWithPassword = demo.holders.first + demo.holders.withPassword - 1;
  const firstHolder =
    o.firstHolder ??
    (demo.holders.withPassword > FIRST_TRAFFIC_OFFSET + walletCount
      ? demo.holders.first + FIRST_TRAFFIC_OFFSET
      : Math.max(demo.holders.first, lastWithPassword - walletCount + 1));
  const wallets: SimWallet[] = [];

  const topUp = async (holderId: number): Promise<void> => {
    const amount = TOPUP_FEN.min + Math.floor(random() * ((TOPUP_FEN.max - TOPUP_FEN.min) / 100 + 1)) * 100;
    await asAdmin('POST', `/v1/holders/${holderId}/topups`, {
      amount,
      channel: 'cashier',
      idempotencyKey: `traffic-${holderId}-${Date.now()}-${stats.topUps}`,
    });
    stats.topUps++;
  };

  /**
   * A new credential, as a sensible holder gets one: a look at the balance first and a top-up at the
   * cashier when it runs low (or when the platform will not issue a credential for lack of money).
   */
  const renew = async (w: Wallet, holderId: number): Promise<void> => {
    const label = 'campus traffic (demo)';
    for (let attempt = 0; ; attempt++) {
      const session = await holderLogin(client, holderId, demo.password);
      try {
        if (attempt === 0) {
          const money = await client.call('GET', '/v1/holder/purses', { token: session.token });
          if (field(money, 'available', isNum) < LOW_BALANCE_FEN) await topUp(holderId);
        }
        await w.renew(platformRenewal(client, session, label));
        stats.renewals++;
        return;
      } catch (e) {
        const cause = (e as { cause?: unknown }).cause;
        const code = e instanceof PlatformCallError ? e.code : cause instanceof PlatformCallError ? cause.code : '';
        if (attempt === 0 && (code === 'insufficient_funds' || code === 'in_arrears')) {
          await topUp(holderId);
          continue;
        }
        if (attempt === 0 && code === 'agreement_required') {
          await acceptAgreement(client, session, (await currentAgreement(client, session)).version, label);
          continue;
        }
        throw e;
      } finally {
        // One sign-in per renewal, ended at once: the session list stays short.
        await client.call('POST', '/v1/logout', { token: session.token }).catch(() => undefined);
      }
    }
  };

  for (let holderId = firstHolder; holderId < firstHolder + walletCount && holderId <= lastWithPassword; holderId++) {
    try {
      const w = await openFileWallet({ dir: join(dir, `wallet-${holderId}`), crypto, clock });
      closing.push(() => w.close());
      // A fresh credential on every start: what was spent with the old one is not known here.
      const enrolled = w.status().enrolled;
      await renew(w, holderId);
      if (!enrolled) stats.enrolled++;
      wallets.push({ holderId, wallet: w, renewDue: false, lastRenew: Date.now(), spent: 0 });
    } catch (e) {
      fail(`wallet of holder ${holderId} not started`, e);
    }
  }

  // The loop: one step at a time (a payment, a sync, an upload, a renewal), never two at once.
  let stopped = false;
  let wake: (() => void) | undefined;
  let nextPayment = Date.now() + between(paymentEvery);
  let sinceReplay = 0;
  const recent: { text: string; terminal: number; at: number }[] = [];

  const pay = async (): Promise<void> => {
    const live = wallets.filter((w) => !w.renewDue);
    const open = terminals.filter((s) => !s.retired);
    const term = open[Math.floor(random() * open.length)];
    const w = live[Math.floor(random() * live.length)];
    if (term === undefined || w === undefined) return;
    if (w.wallet.status().needsRenewal) {
      // Its credential nears its end (or has ended): renew before the next payment.
      w.renewDue = true;
      return;
    }
    sinceReplay++;
    const replay =
      replayEvery > 0 && sinceReplay >= replayEvery
        ? recent.find((r) => r.terminal !== term.id && Date.now() - r.at < REPLAY_CODE_AGE_MS)
        : undefined;
    if (replay !== undefined) {
      sinceReplay = 0;
      recent.splice(recent.indexOf(replay), 1);
      const d = await term.t.pay(amountFor(term.scene, random), replay.text);
      stats.replays++;
      log(`traffic: replayed a code of terminal ${replay.terminal} at terminal ${term.id}: ${d.accepted ? 'accepted offline' : d.reason}`);
      return;
    }
    let code: Awaited<ReturnType<Wallet['nextCode']>>;
    try {
      code = await w.wallet.nextCode();
    } catch (e) {
      w.renewDue = true;
      throw e;
    }
    const d: Decision = await term.t.pay(amountFor(term.scene, random), code.text);
    if (d.accepted) {
      stats.payments++;
      w.spent += d.amount ?? 0;
      if (w.spent >= (w.wallet.status().credential?.limits.offlineTotal ?? 0)) w.renewDue = true;
      const now = Date.now();
      recent.push({ text: code.text, terminal: term.id, at: now });
      while (recent.length > 0 && (recent.length > 20 || now - (recent[0]?.at ?? now) > REPLAY_CODE_AGE_MS)) recent.shift();
    } else {
      stats.declined++;
      if (d.reason !== undefined && LIMIT_REASONS.has(d.reason)) w.renewDue = true;
    }
  };

  const sync = async (s: SimTerminal): Promise<void> => {
    await syncLists(s.t, client, nowS());
  };
  const send = async (s: SimTerminal): Promise<void> => {
    const { uploaded } = await upload(s.t, client);
    stats.uploads++;
    stats.uploadedRecords += uploaded;
  };

  /** A failed terminal call: logged; a terminal the platform no longer accepts is left alone from now on. */
  const refused = (s: SimTerminal, e: unknown, what: string): void => {
    fail(`terminal ${s.id} ${what}`, e);
    if (e instanceof PlatformCallError && (e.status === 401 || e.status === 403)) {
      s.retired = true;
      log(`traffic: terminal ${s.id} is refused by the platform (revoked?): the traffic leaves it`);
    }
  };

  const step = async (): Promise<number> => {
    const now = Date.now();
    // Renewals first: a wallet that was refused should not wait behind payments.
    for (const w of wallets) {
      if (!w.renewDue || now - w.lastRenew < RENEW_GAP_MS) continue;
      w.lastRenew = now;
      try {
        await renew(w.wallet, w.holderId);
        w.renewDue = false;
        w.spent = 0;
      } catch (e) {
        w.lastRenew = now + RENEW_RETRY_MS;
        fail(`renewal of holder ${w.holderId}`, e);
      }
      return Date.now();
    }
    for (const s of terminals) {
      if (s.retired || silent(s, now)) continue;
      if (s.quietUntil > 0 && s.quietUntil <= now) {
        // Back from an offline spell: lists first (the console sees the records waiting), upload later.
        s.quietFrom = 0;
        s.quietUntil = 0;
        s.nextSync = Math.max(now, s.lastSync + SAME_CALL_GAP_MS);
        s.nextUpload = Math.max(now + between(backlogMs), s.lastUpload + SAME_CALL_GAP_MS);
        s.calmUntil = s.nextUpload + 1;
      }
      // Before a spell the uplink fades: lists still sync (and report the journal's head), uploads stall.
      const fading = s.quietUntil > now;
      if (s.nextSync <= now) {
        s.nextSync = now + Math.max(between(syncEvery), SAME_CALL_GAP_MS);
        // At most a quarter of the terminals (at least one) are in a spell at once.
        const busy = terminals.filter((x) => x.quietUntil > now).length;
        if (!fading && now > s.calmUntil && random() < offlineChance && busy < Math.max(1, Math.floor(terminals.length / 4))) {
          s.quietFrom = now + between(fadeMs);
          s.quietUntil = s.quietFrom + between(offlineMs);
          stats.offlineSpells++;
        }
        s.lastSync = now;
        try {
          await sync(s);
        } catch (e) {
          refused(s, e, 'list sync');
        }
        return Date.now();
      }
      if (s.nextUpload <= now) {
        if (fading) {
          s.nextUpload = s.quietUntil;
          continue;
        }
        s.nextUpload = now + Math.max(between(uploadEvery), SAME_CALL_GAP_MS);
        s.lastUpload = now;
        try {
          await send(s);
        } catch (e) {
          refused(s, e, 'upload');
        }
        return Date.now();
      }
    }
    if (nextPayment <= now) {
      nextPayment = now + between(paymentEvery);
      try {
        await pay();
      } catch (e) {
        fail('payment', e);
      }
      return Date.now();
    }
    // Nothing due: sleep until the next thing is.
    let next = nextPayment;
    for (const s of terminals) {
      if (s.retired) continue;
      if (silent(s, now)) next = Math.min(next, s.quietUntil);
      else if (s.quietUntil > now) next = Math.min(next, s.nextSync, s.quietFrom);
      else next = Math.min(next, s.nextSync, s.nextUpload);
    }
    for (const w of wallets) if (w.renewDue) next = Math.min(next, w.lastRenew + RENEW_GAP_MS);
    return next;
  };

  const loop = (async () => {
    while (!stopped) {
      let until: number;
      try {
        until = await step();
      } catch (e) {
        fail('step', e);
        until = Date.now() + 1_000;
      }
      const waitMs = until - Date.now();
      if (waitMs > 0 && !stopped) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, Math.min(waitMs, 60_000));
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        wake = undefined;
      } else {
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    }
  })();

  let stopping: Promise<void> | undefined;
  return {
    terminals: terminals.map((s) => s.id),
    holders: wallets.map((w) => w.holderId),
    stats: () => ({ ...stats }),
    status: () =>
      terminals.map((s) => ({
        id: s.id,
        scene: s.scene,
        online: !s.retired && !silent(s, Date.now()),
        retired: s.retired,
        head: s.t.headSequence,
        acked: s.t.ackedSequence,
      })),
    stop: () => {
      stopping ??= (async () => {
        stopped = true;
        wake?.();
        await loop;
        for (const close of closing) {
          try {
            await close();
          } catch (e) {
            fail('closing', e);
          }
        }
      })();
      return stopping;
    },
  };
}

async function openTerminal(dir: string, crypto: ReturnType<typeof nodeCrypto>, clock: { nowMs(): number }): Promise<Terminal> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return Terminal.open({ journal: new SqliteJournal(join(dir, 'journal.db')), crypto, clock });
}
