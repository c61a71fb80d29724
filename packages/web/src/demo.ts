/**
 * The demo campus (`npm start`, `duet demo`): the platform on the embedded SQLite with the web apps
 * mounted, a campus made on first start (two canteens, a shop, a bus, a dorm gate, holders with
 * cash, subsidies, credit lines and some in arrears) and kept across restarts; `reset` starts over.
 * The browser tests and the benchmark start the very same thing. With `traffic`, the campus comes
 * alive: simulated terminals and wallets pay, drop offline and upload in the background (traffic.ts).
 */
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { nodeCrypto } from '@duet/protocol/node';
import { CAMPUS_FIRST_HOLDER_ID, DEV_KEY_PASSPHRASE, issueActivationCode, openPlatform, type Platform, seedCampus } from '@duet/platform';
import { serveWebApps, WEB_DIST } from './index.js';
import { startTraffic, type Traffic, type TrafficOptions } from './traffic.js';

export type { Traffic, TrafficOptions } from './traffic.js';

export interface DemoOptions {
  readonly dataDir: string;
  /** Delete the demo's data first and make a new campus. */
  readonly reset?: boolean;
  readonly port?: number;
  readonly host?: string;
  /** Holders of a new campus (1 to 5,000); default 400. */
  readonly holders?: number;
  readonly seed?: number;
  /** The password of every demo sign-in. */
  readonly password?: string;
  /** Seals the platform keys; default the development passphrase (a demo is not production). */
  readonly passphrase?: string;
  readonly logger?: boolean;
  /** Background clearing interval; default 2 s. */
  readonly clearingIntervalMs?: number;
  /** Where the built apps are (default: this package's dist/apps). */
  readonly webDir?: string;
  readonly clock?: { nowMs(): number };
  /**
   * Background campus traffic (payments, offline spells, uploads, a replay now and then); off by
   * default, `duet demo` turns it on. Needs the real clock.
   */
  readonly traffic?: boolean | TrafficOptions;
}

export interface DemoTerminal {
  readonly id: number;
  readonly merchantId: number;
  readonly merchant: string;
  readonly location: string;
  readonly scene: string;
  /** A fresh one-time code when the terminal is still waiting for activation; undefined once active. */
  readonly activationCode?: string;
}

export interface Demo {
  readonly platform: Platform;
  readonly url: string;
  readonly password: string;
  /** True when this start made the campus (first start or reset). */
  readonly created: boolean;
  readonly holders: { readonly first: number; readonly last: number; readonly withPassword: number };
  readonly staff: readonly { readonly username: string; readonly role: string; readonly merchant?: string }[];
  readonly terminals: readonly DemoTerminal[];
  readonly webMounted: boolean;
  readonly dataDir: string;
  /** The running campus traffic, when asked for. */
  readonly traffic?: Traffic;
  close(): Promise<void>;
}

export const DEMO_PASSWORD = 'duet-demo-2026';
export const DEMO_SEED = 20_260_901;

export async function startDemo(o: DemoOptions): Promise<Demo> {
  if (o.reset === true && existsSync(o.dataDir)) rmSync(o.dataDir, { recursive: true, force: true });
  const password = o.password ?? DEMO_PASSWORD;
  const clock = o.clock ?? { nowMs: () => Date.now() };
  let webMounted = false;
  const platform = await openPlatform({
    dataDir: o.dataDir,
    passphrase: o.passphrase ?? DEV_KEY_PASSPHRASE,
    crypto: nodeCrypto({ verifyOn: 'pool' }),
    clock,
    logger: o.logger ?? false,
    firstAdmin: { username: 'admin', password },
    clearing: { intervalMs: o.clearingIntervalMs ?? 2_000 },
    holderTopUp: true,
    extend: (app) => {
      webMounted = serveWebApps(app, o.webDir ?? WEB_DIST);
    },
  });
  let traffic: Traffic | undefined;
  try {
    const nowS = Math.floor(clock.nowMs() / 1000);
    const { db, crypto, keys, auth } = platform.ctx;
    const holdersWanted = o.holders ?? 400;
    const withPassword = Math.min(holdersWanted, 50);
    let created = false;
    if ((await db.one('SELECT id FROM holders WHERE id = ?', [CAMPUS_FIRST_HOLDER_ID])) === undefined) {
      await seedCampus(
        { db, crypto, keys, auth },
        { holders: holdersWanted, seed: o.seed ?? DEMO_SEED, withPasswords: withPassword, password, campus: 1 },
        nowS,
      );
      created = true;
    }
    const count = await db.one('SELECT COUNT(*) AS n, MAX(id) AS last FROM holders WHERE id >= ?', [CAMPUS_FIRST_HOLDER_ID]);
    const staffRows = await db.all(
      'SELECT s.username, s.role, m.name AS merchant FROM staff_accounts s LEFT JOIN merchants m ON m.id = s.merchant_id ORDER BY s.id',
      [],
    );
    const address = await platform.app.listen({ port: o.port ?? 8080, host: o.host ?? '127.0.0.1' });
    const url = address.replace('://[::1]', '://localhost');
    const holders = {
      first: CAMPUS_FIRST_HOLDER_ID,
      last: Number(count?.last ?? CAMPUS_FIRST_HOLDER_ID),
      withPassword: Math.min(withPassword, Number(count?.n ?? 0)),
    };
    if (o.traffic !== undefined && o.traffic !== false) {
      const options: TrafficOptions = o.traffic === true ? {} : o.traffic;
      try {
        const campus = await demoTerminals(db, crypto, nowS, false);
        traffic = await startTraffic({ url, password, dataDir: o.dataDir, holders, terminals: campus }, options);
      } catch (e) {
        // The traffic is decoration: without it the campus still runs.
        const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
        log(`traffic: not started: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    // Activation codes are shown once and kept hashed: each start hands out fresh ones for the
    // terminals still waiting (after the traffic took its own), so the printed links always work.
    const terminals = await demoTerminals(db, crypto, nowS, true);
    return {
      platform,
      url,
      password,
      created,
      holders,
      staff: staffRows.map((s) => ({
        username: String(s.username),
        role: String(s.role),
        ...(s.merchant !== null && s.merchant !== undefined ? { merchant: String(s.merchant) } : {}),
      })),
      terminals,
      webMounted,
      dataDir: o.dataDir,
      ...(traffic !== undefined ? { traffic } : {}),
      close: async () => {
        await traffic?.stop();
        await platform.close();
      },
    };
  } catch (e) {
    await traffic?.stop();
    await platform.close();
    throw e;
  }
}

/** The demo's database file, for messages. */
export function demoDatabase(dataDir: string): string {
  return join(dataDir, 'duet.db');
}

/** The campus's terminals; with `codes`, a fresh activation code for each one still waiting. */
async function demoTerminals(
  db: Platform['ctx']['db'],
  crypto: Platform['ctx']['crypto'],
  nowS: number,
  codes: boolean,
): Promise<DemoTerminal[]> {
  const rows = await db.all(
    'SELECT t.id, t.merchant_id, t.location, t.scene, t.status, m.name AS merchant FROM terminals t JOIN merchants m ON m.id = t.merchant_id ORDER BY t.id',
    [],
  );
  const terminals: DemoTerminal[] = [];
  for (const r of rows) {
    const base = {
      id: Number(r.id),
      merchantId: Number(r.merchant_id),
      merchant: String(r.merchant),
      location: String(r.location),
      scene: String(r.scene),
    };
    if (codes && r.status === 'pending') {
      const code = await db.tx((q) => issueActivationCode(q, crypto, base.id, nowS));
      terminals.push({ ...base, activationCode: code });
    } else terminals.push(base);
  }
  return terminals;
}
