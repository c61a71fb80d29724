/**
 * The composition root of the platform: opens storage (SQLite by default, PostgreSQL by URL),
 * applies migrations, opens the key store (keys made at first start, encrypted at rest), bootstraps
 * a first start (agreement, policy, deny list, the first operator account), and builds the server.
 */
import { CredentialCache, type CryptoProvider, decodeTrustList, type TrustListBody } from '@duet/protocol';
import type { FastifyInstance } from 'fastify';
import { memoryReplayStore, PlatformAuth } from './auth.js';
import { authMigrations } from './auth.js';
import type { Clock, PlatformContext } from './context.js';
import type { Db, Migration } from './db/db.js';
import { openDatabase } from './db/open.js';
import { ApiError } from './errors.js';
import { holdersMigrations, publishAgreement } from './holders.js';
import { intakeMigrations } from './intake.js';
import { Clearer, type ClearingDeps, type ClearingResult, clearingMigrations } from './clearing.js';
import { issuanceMigrations } from './issuance.js';
import { KeyStore, keysMigrations, type UnsealedKeys } from './keys.js';
import { ledgerMigrations } from './ledger.js';
import { LedgerSealer, type LedgerSealerOptions, ledgerSealMigrations } from './ledger-seal.js';
import { latestDenyList, latestPolicy, listsMigrations, publishDenyList, publishPolicy } from './lists.js';
import { onlineAuthMigrations } from './online-auth.js';
import { purgeIdempotencyKeys, pursesMigrations } from './purses.js';
import { noteArrears, publishDenyChanges, recoveryMigrations } from './recovery.js';
import { getTerminal, registryMigrations } from './registry.js';
import { coreRoutes } from './routes.js';
import { clearingRoutes } from './routes-clearing.js';
import { consoleMigrations, TerminalActivity } from './console.js';
import { type ConsoleOptions, consoleRoutes } from './routes-console.js';
import { nowS } from './context.js';
import type { Route } from './http.js';
import { moneyRoutes } from './routes-money.js';
import { ledgerRoutes } from './routes-ledger.js';
import { recoveryRoutes } from './routes-recovery.js';
import { buildServer, type ServerOptions } from './server.js';
import { prefetchKeys } from './signing-keys.js';
import { currentSettings, settingsMigrations } from './settings.js';
import { statementsMigrations } from './statements.js';

/** Every migration, in the one order both databases apply them. */
export const ALL_MIGRATIONS: readonly Migration[] = [
  ...holdersMigrations,
  ...authMigrations,
  ...keysMigrations,
  ...settingsMigrations,
  ...issuanceMigrations,
  ...registryMigrations,
  ...listsMigrations,
  ...ledgerMigrations,
  ...ledgerSealMigrations,
  ...pursesMigrations,
  ...onlineAuthMigrations,
  ...intakeMigrations,
  ...clearingMigrations,
  ...recoveryMigrations,
  ...statementsMigrations,
  ...consoleMigrations,
];

export const DEFAULT_AGREEMENT = {
  en:
    'Offline payment and withholding agreement. I authorise the campus card operator to debit my subsidy purse, my cash purse and, ' +
    'if the school granted one, my credit line for payments I make offline with my phone, card or face, when the records reach the ' +
    'platform. If my balance is short, the operator pays the merchant in advance and I owe the difference, which my next top-up repays ' +
    'first; until it is repaid I cannot pay offline. I can see every record, why I am blocked and what I owe, and dispute any record.',
  zh:
    '离线支付与代扣协议。本人授权校园卡运营方在交易记录上传至平台后，从本人的补贴钱包、现金钱包及学校授予的信用额度中扣除本人使用手机、卡片或刷脸离线支付的款项。' +
    '余额不足时，由运营方先行垫付给商户，差额计为本人欠款，下次充值优先偿还；欠款还清前本人不能离线支付。本人可以查看每一笔记录、被冻结的原因及欠款明细，并可对任何记录提出异议。',
};

export interface PlatformOptions {
  /** undefined: SQLite in `dataDir`; or sqlite:PATH, a path, postgres://… */
  readonly dbUrl?: string;
  readonly dataDir: string;
  readonly passphrase: string;
  readonly crypto: CryptoProvider;
  readonly clock: Clock;
  readonly logger?: boolean;
  readonly metricsToken?: string;
  /** The first operator account, made only if no staff account exists yet. */
  readonly firstAdmin?: { readonly username: string; readonly password: string };
  /** Background clearing: false to leave it to explicit `clearer.drain()` calls (tests, tools). Default on, every 2 s and after each upload. */
  readonly clearing?: false | { readonly intervalMs?: number };
  /**
   * The background ledger sealer (ledger-seal.ts): hash chain, signed roots. On by default; false
   * turns it off (tests that seal by hand with sealLedger/closeRoot); or its interval and root size.
   */
  readonly ledgerSealer?: false | Omit<LedgerSealerOptions, 'onError'>;
  /**
   * Holders may top up their own cash purse from the wallet (POST /v1/holder/topups), standing in
   * for a bank or payment-app transfer: for demos only. Off unless true.
   */
  readonly holderTopUp?: boolean;
  /** Routes of an outer layer, added before the server is ready (ServerOptions.extend). */
  readonly extend?: ServerOptions['extend'];
  /** Decrypted keys shared with other platforms of this process (KeyStoreOptions.unsealed; the simulator's). */
  readonly unsealedKeys?: UnsealedKeys;
}

export interface Platform {
  readonly ctx: PlatformContext;
  readonly keys: KeyStore;
  readonly app: FastifyInstance;
  readonly db: Db;
  readonly clearer: Clearer;
  /** The background ledger sealer, undefined when turned off; runOnce() seals now. */
  readonly sealer: LedgerSealer | undefined;
  /** The OpenAPI document the server serves at /openapi.json. */
  openApi(): unknown;
  close(): Promise<void>;
}

export async function openPlatform(o: PlatformOptions): Promise<Platform> {
  const db = await openDatabase(o.dbUrl, o.dataDir);
  try {
    await db.migrate(ALL_MIGRATIONS);
    const keys = await KeyStore.open(db, {
      passphrase: o.passphrase,
      crypto: o.crypto,
      clock: o.clock,
      migrate: false,
      ...(o.unsealedKeys !== undefined ? { unsealed: o.unsealedKeys } : {}),
    });
    const auth = new PlatformAuth({
      db,
      crypto: o.crypto,
      clock: o.clock,
      replay: memoryReplayStore(),
      terminals: {
        publicKey: async (terminalId) => {
          // Only "no such terminal" means no key; storage being down must stay a 503, not a 401
          // that would tell a terminal it is unknown.
          const t = await getTerminal(db, terminalId).catch((e: unknown) => {
            if (e instanceof ApiError && e.code === 'not_found') return undefined;
            throw e;
          });
          if (t === undefined || t.publicKey === null || t.suite === null) return undefined;
          return { suite: t.suite, publicKey: t.publicKey, status: t.status, merchantId: t.merchantId };
        },
      },
    });
    // The server's logger exists only once the server is built; clearing errors before that go nowhere.
    let logError: (e: unknown) => void = () => {};
    let logRun: (r: ClearingResult) => void = () => {};
    const clearer = new Clearer(db, clearingDeps(db, o, keys), {
      ...(o.clearing === false || o.clearing?.intervalMs === undefined ? {} : { intervalMs: o.clearing.intervalMs }),
      onError: (e) => logError(e),
      onRun: (r) => logRun(r),
    });
    const ctx: PlatformContext = { db, crypto: o.crypto, clock: o.clock, keys, trust: keys, auth, clearing: clearer };
    await bootstrap(ctx, o.firstAdmin);
    let logActivityError: (e: unknown) => void = () => {};
    const activity = new TerminalActivity(db, { onError: (e) => logActivityError(e) });
    const app = await buildServer(ctx, platformRoutes(keys, { activity, holderTopUp: o.holderTopUp === true }), {
      ...(o.logger !== undefined ? { logger: o.logger } : {}),
      ...(o.metricsToken !== undefined ? { metricsToken: o.metricsToken } : {}),
      ...(o.extend !== undefined ? { extend: o.extend } : {}),
    });
    const sealer =
      o.ledgerSealer === false
        ? undefined
        : new LedgerSealer(db, o.crypto, keys, o.clock, {
            ...o.ledgerSealer,
            onError: (e) => app.log.warn({ err: e }, 'ledger sealer: run failed; retrying at the next interval'),
          });
    sealer?.start();
    logError = (e) => app.log.error({ err: e }, 'clearing run failed; retrying at the next interval');
    logRun = (r) =>
      app.log.info({ clearing: r }, `cleared ${r.records} records: ${r.posted} posted, ${r.linked} linked, ${r.refused} refused`);
    // Housekeeping: idempotency keys past their keeping time are forgotten, hourly (and soon after start).
    const housekeeping = async () => {
      try {
        const n = await purgeIdempotencyKeys(db, Math.floor(o.clock.nowMs() / 1000));
        if (n > 0) app.log.info({ forgotten: n }, 'idempotency keys past their keeping time forgotten');
      } catch (e) {
        app.log.warn({ err: e }, 'housekeeping failed; retrying in an hour');
      }
    };
    const housekeepingTimer = setInterval(() => void housekeeping(), HOUSEKEEPING_INTERVAL_MS);
    housekeepingTimer.unref();
    const firstHousekeeping = setTimeout(() => void housekeeping(), 10_000);
    firstHousekeeping.unref();
    logActivityError = (e) => app.log.warn({ err: e }, 'terminal last-seen times not written; retrying in a second');
    activity.start();
    if (o.clearing !== false) clearer.start();
    return {
      ctx,
      keys,
      app,
      db,
      clearer,
      sealer,
      openApi: () => app.swagger(),
      async close() {
        clearInterval(housekeepingTimer);
        clearTimeout(firstHousekeeping);
        await app.close();
        await activity.stop().catch((e: unknown) => app.log.warn({ err: e }, 'terminal last-seen times not written at close'));
        await clearer.stop();
        // A last run seals what the server posted, so a cleanly stopped platform leaves no unsealed tail.
        await sealer?.finish();
        await db.close();
      },
    };
  } catch (e) {
    await db.close();
    throw e;
  }
}

/** Every route of the API, in one table: the server registers it, and test/authz.test.ts walks it. */
export function platformRoutes(keys: KeyStore, o: ConsoleOptions = { holderTopUp: false }): Route[] {
  const routes = [...coreRoutes, ...moneyRoutes(keys), ...clearingRoutes(), ...ledgerRoutes(), ...recoveryRoutes(), ...consoleRoutes(o)];
  const activity = o.activity;
  if (activity === undefined) return routes;
  // Every authenticated terminal call is noted as the terminal's last seen time, in memory (no write on the hot path).
  return routes.map((r) =>
    r.access.kind !== 'terminal'
      ? r
      : {
          ...r,
          handle: (call) => {
            if (call.principal?.kind === 'terminal') activity.seen(call.principal.id, nowS(call.ctx));
            return r.handle(call);
          },
        },
  );
}

/** What clearing needs from the platform: the trust list (decoded once per version), settings, a credential cache. */
function clearingDeps(db: Db, o: PlatformOptions, keys: KeyStore): ClearingDeps {
  let trust: { version: number; body: TrustListBody } | undefined;
  return {
    crypto: o.crypto,
    cache: new CredentialCache(CLEARING_CREDENTIAL_CACHE),
    nowS: () => Math.floor(o.clock.nowMs() / 1000),
    settings: async () => (await currentSettings(db)).settings,
    signingKeys: () => prefetchKeys(keys),
    // A payer who now owes: an arrears case, the deny list, and a signed deny list at once.
    onArrears: async (q, holderIds, nowS, signing) => {
      await noteArrears(q, holderIds, nowS);
      if (signing !== undefined) await publishDenyChanges(q, signing, nowS);
    },
    trust: async () => {
      const t = await keys.current();
      if (trust?.version !== t.version) trust = { version: t.version, body: decodeTrustList(t.bytes) };
      return trust.body;
    },
  };
}

/** How often a platform process does its housekeeping (forgetting old idempotency keys). */
const HOUSEKEEPING_INTERVAL_MS = 3_600_000;

/** Verified credentials clearing remembers: a campus's active credentials fit. */
const CLEARING_CREDENTIAL_CACHE = 200_000;

/** First start: what a platform needs before any terminal or wallet can use it. Each step runs once. */
async function bootstrap(ctx: PlatformContext, firstAdmin: PlatformOptions['firstAdmin']): Promise<void> {
  const t = Math.floor(ctx.clock.nowMs() / 1000);
  const keys = await prefetchKeys(ctx.keys);
  await ctx.db.tx(async (q) => {
    if ((await q.one('SELECT version FROM agreements LIMIT 1')) === undefined)
      await publishAgreement(q, DEFAULT_AGREEMENT.en, DEFAULT_AGREEMENT.zh, t);
    await currentSettings(q);
    if ((await latestPolicy(q)) === undefined) await publishPolicy(q, keys, t);
    if ((await latestDenyList(q)) === undefined) await publishDenyList(q, keys, t);
  });
  if (firstAdmin !== undefined && (await ctx.db.one('SELECT id FROM staff_accounts LIMIT 1')) === undefined) {
    await ctx.auth.createStaff(firstAdmin.username, firstAdmin.password, 'operator_admin', null);
  }
}
