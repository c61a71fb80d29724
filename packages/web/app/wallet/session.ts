/**
 * The wallet page's link to the wallet core and the platform: one tab holds the wallet (a Web Lock,
 * so two tabs never hand out the same counter), the core opens on the IndexedDB vault and store,
 * and sign-in, agreement and renewal are the shared enrolment calls of @duet/wallet/platform.
 */
import { type CryptoProvider, fen, webCryptoNative } from '@duet/protocol';
import { field, isNum, isStr, PlatformClient } from '@duet/protocol/client';
import { systemClock, Wallet, type WalletCode } from '@duet/wallet';
import { acceptAgreement, currentAgreement, type HolderSession, holderLogin, platformRenewal } from '@duet/wallet/platform';
import { errorWords, PlatformCallError, Session } from '../shared/api.js';
import { forgetOfflineSpent } from './spent.js';
import { IdbKeyVault, IdbWalletStore, openWalletDb } from './vault.js';

export const LOCK_NAME = 'duet-wallet';
const DEVICE_LABEL = 'browser wallet / 浏览器钱包';
/** Top-up bounds of the platform's contract (POST /v1/holder/topups), in fen. */
export const TOPUP_MIN_FEN = 1;
export const TOPUP_MAX_FEN = 500_000;

/** What is kept in localStorage: the session token and the device id the platform gave this key. */
export interface StoredSession {
  readonly token: string;
  readonly holderId: number;
  readonly deviceId?: number;
}
export const session = new Session<StoredSession>('wallet');

/**
 * The wallet signs with its own P-256 key and verifies nothing, so it takes the native WebCrypto
 * provider: the shared browserCrypto() would add the pure-JS SM2 code (~60 KB) for nothing.
 */
let walletCrypto: CryptoProvider | undefined;
function cryptoProvider(): CryptoProvider {
  walletCrypto ??= webCryptoNative();
  return walletCrypto;
}

function platformClient(): PlatformClient {
  return new PlatformClient(location.origin, cryptoProvider());
}

/**
 * Holds the wallet for this tab until the tab closes. Resolves false at once when another tab
 * holds it. Browsers without Web Locks get the wallet (nothing to coordinate with).
 */
export function takeWalletLock(): Promise<boolean> {
  if (navigator.locks === undefined) return Promise.resolve(true);
  return new Promise((resolve) => {
    navigator.locks
      .request(LOCK_NAME, { ifAvailable: true }, (lock) => {
        resolve(lock !== null);
        // Held for the tab's lifetime: the promise never settles.
        return lock === null ? undefined : new Promise<never>(() => {});
      })
      .catch(() => resolve(false));
  });
}

/**
 * For a tab that was told another one is active: waits in line for the wallet and, once the other
 * tab closed, reloads so this one takes over (the lock it waited for goes with the old page).
 */
export function takeOverWhenFree(): void {
  navigator.locks
    ?.request(LOCK_NAME, () => {
      location.reload();
      return new Promise<never>(() => {});
    })
    .catch(() => undefined);
}

export interface Opened {
  readonly wallet: Wallet;
  readonly db: IDBDatabase;
  readonly vault: IdbKeyVault;
  readonly crypto: CryptoProvider;
}

/** Opens the wallet core on IndexedDB; the device key is made on first start (P-256, non-extractable). */
export async function openWallet(): Promise<Opened> {
  const db = await openWalletDb();
  const vault = new IdbKeyVault(db);
  const crypto = cryptoProvider();
  const wallet = await Wallet.open({ crypto, clock: systemClock, vault, store: new IdbWalletStore(db) });
  return { wallet, db, vault, crypto };
}

/**
 * Forgets the key and every credential (the core's reset, which keeps the counter high-water mark)
 * and the session. The caller reloads the page afterwards.
 */
export async function signOut(o: Opened): Promise<void> {
  await o.wallet.close().catch(() => undefined);
  await Wallet.reset({ vault: o.vault, store: new IdbWalletStore(o.db) });
  session.set(undefined);
  forgetOfflineSpent();
}

/** A typed copy of a holder session that the renewal transport can update (the device id). */
function live(s: StoredSession): HolderSession {
  return { holderId: s.holderId, token: s.token, ...(s.deviceId !== undefined ? { deviceId: s.deviceId } : {}) };
}

/** Parses the holder number typed on the sign-in screen: 1..2^48−1 digits only. */
export function parseHolderId(text: string): number | { en: string; zh: string } {
  const t = text.trim();
  if (!/^[0-9]{1,15}$/.test(t) || Number(t) < 1) return { en: 'Enter your holder number (digits only)', zh: '请输入持卡人编号（仅数字）' };
  return Number(t);
}

export async function login(holderId: number, password: string): Promise<StoredSession> {
  const old = session.get();
  const s = await holderLogin(platformClient(), holderId, password);
  // The same key on the same holder keeps its device registration across sign-ins.
  const keep = old !== undefined && old.holderId === holderId && old.deviceId !== undefined ? { deviceId: old.deviceId } : {};
  const stored: StoredSession = { token: s.token, holderId, ...keep };
  session.set(stored);
  return stored;
}

export interface AgreementText {
  readonly version: number;
  readonly en: string;
  readonly zh: string;
}

export function agreement(s: StoredSession): Promise<AgreementText> {
  return currentAgreement(platformClient(), live(s));
}

/** Whether the holder already accepted the agreement in force (GET /v1/holder/status), undefined when unknown. */
export async function agreementAccepted(s: StoredSession): Promise<boolean | undefined> {
  try {
    const status = await holderStatus(s);
    return status.agreementAccepted;
  } catch (e) {
    if (e instanceof PlatformCallError && (e.status === 404 || e.code === 'not_found')) return undefined;
    throw e;
  }
}

export async function accept(s: StoredSession, version: number): Promise<void> {
  await acceptAgreement(platformClient(), live(s), version, DEVICE_LABEL);
}

/** Asks the platform for a credential for this device key (registering the key once). */
export async function renew(o: Opened, s: StoredSession): Promise<void> {
  const h = live(s);
  await o.wallet.renew(platformRenewal(platformClient(), h, DEVICE_LABEL));
  if (h.deviceId !== undefined && h.deviceId !== s.deviceId) session.set({ ...s, deviceId: h.deviceId });
}

export function nextCode(o: Opened): Promise<WalletCode> {
  return o.wallet.nextCode();
}

/**
 * The words for a failure: the platform's own reason when a wallet renewal failed because the
 * platform said no (arrears, blocked, agreement), else the error's words.
 */
export function why(e: unknown): string {
  if (e instanceof Error && e.cause instanceof PlatformCallError && e.cause.code !== 'unreachable') return errorWords(e.cause);
  return errorWords(e);
}

// --- holder status, history, top-up ---------------------------------------------------------

export interface HolderStatus {
  readonly name: string;
  readonly agreementAccepted: boolean;
  readonly purses: readonly { readonly kind: string; readonly balanceFen: number }[];
  readonly creditLineFen: number;
  readonly arrearsFen: number;
  readonly topUpAvailable: boolean;
}

const isBool = (v: unknown): v is boolean => typeof v === 'boolean';
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;
const isFen = isNum;

export async function holderStatus(s: StoredSession): Promise<HolderStatus> {
  const a = await platformClient().call('GET', '/v1/holder/status', { token: s.token });
  const agreementBody = field(a, 'agreement', isObj);
  return {
    name: field(a, 'name', isStr),
    agreementAccepted: field(agreementBody, 'accepted', isBool),
    purses: field(a, 'purses', Array.isArray).map((p: unknown) => ({
      kind: field(p, 'kind', isStr),
      balanceFen: fen(field(p, 'balanceFen', isFen)),
    })),
    creditLineFen: field(a, 'creditLineFen', isFen),
    arrearsFen: field(a, 'arrearsFen', isFen),
    topUpAvailable: field(a, 'topUpAvailable', isBool),
  };
}

export interface HistoryRow {
  /** Stable key for the list. */
  readonly key: string;
  /** Seconds since the epoch the payment or event happened. */
  readonly time: number;
  readonly kind: string;
  /** Change of the holder's worth in fen: negative for a payment. */
  readonly amountFen: number;
  readonly merchantId: number | null;
  readonly state: 'pending' | 'settled';
}

/** GET /v1/holder/history: uploaded payments awaiting clearing (pending) and ledger entries (pending or settled), newest first. */
export async function history(s: StoredSession): Promise<HistoryRow[]> {
  const a = await platformClient().call('GET', '/v1/holder/history?limit=50', { token: s.token });
  const waiting = field(a, 'awaitingClearing', Array.isArray).map(
    (r: unknown): HistoryRow => ({
      key: `w${field(r, 'terminalId', isNum)}-${field(r, 'sequence', isNum)}`,
      time: field(r, 'time', isNum),
      kind: 'offline_payment',
      amountFen: -field(r, 'amountFen', isFen),
      merchantId: field(r, 'merchantId', isNum),
      state: 'pending',
    }),
  );
  const items = field(a, 'items', Array.isArray).map((r: unknown): HistoryRow => {
    const state = field(r, 'state', isStr);
    const merchant = (r as { merchantId?: unknown }).merchantId;
    return {
      key: `e${field(r, 'entryId', isNum)}`,
      time: field(r, 'effectiveAt', isNum),
      kind: field(r, 'kind', isStr),
      amountFen: field(r, 'amountFen', isFen),
      merchantId: isNum(merchant) ? merchant : null,
      state: state === 'pending' ? 'pending' : 'settled',
    };
  });
  return [...waiting, ...items].sort((x, y) => y.time - x.time);
}

/** A fresh idempotency key for one top-up attempt (kept across retries of that attempt). */
export function idempotencyKey(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  return `wallet-${Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('')}`;
}

export async function topUp(s: StoredSession, amountFen: number, key: string): Promise<{ balanceFen: number }> {
  if (!Number.isSafeInteger(amountFen) || amountFen < TOPUP_MIN_FEN || amountFen > TOPUP_MAX_FEN)
    throw new RangeError(`amount ${amountFen}`);
  const a = await platformClient().call('POST', '/v1/holder/topups', { token: s.token, json: { amountFen, idempotencyKey: key } });
  return { balanceFen: field(a, 'balanceFen', isFen) };
}
