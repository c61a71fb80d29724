/**
 * The wallet's durable home in the browser: the device key as a non-extractable WebCrypto CryptoKey
 * pair (structured-cloned into IndexedDB, so its private half never exists as bytes this page can
 * read) and the wallet state, each in its own object store of one database. Both keep the wallet
 * core's KeyVault / WalletStore contracts (packages/wallet/src/ports.ts).
 */
import { type Signer, type SuiteName, webCryptoSigner } from '@duet/protocol';
import { checkWalletState, type KeyVault, WalletError, type WalletState, type WalletStore } from '@duet/wallet';
import { inTransaction, openIdb, request } from '../shared/idb.js';

export const WALLET_DB = 'duet-wallet';
const DB_VERSION = 1;
const KEYS = 'keys';
const STATE = 'state';
const DEVICE = 'device';
const CURRENT = 'current';

/** Opens (creating on first use) the wallet database. */
export function openWalletDb(name = WALLET_DB): Promise<IDBDatabase> {
  return openIdb(name, DB_VERSION, (db) => {
    if (!db.objectStoreNames.contains(KEYS)) db.createObjectStore(KEYS);
    if (!db.objectStoreNames.contains(STATE)) db.createObjectStore(STATE);
  });
}

interface StoredKey {
  readonly suite: 'p256' | 'ed25519';
  readonly pair: CryptoKeyPair;
}

const WEB_SUITES = { p256: { name: 'ECDSA', namedCurve: 'P-256' }, ed25519: { name: 'Ed25519' } } as const;

function isStoredKey(v: unknown): v is StoredKey {
  if (typeof v !== 'object' || v === null) return false;
  const k = v as { suite?: unknown; pair?: unknown };
  if (k.suite !== 'p256' && k.suite !== 'ed25519') return false;
  const p = k.pair as { privateKey?: unknown; publicKey?: unknown } | undefined;
  return p?.privateKey instanceof CryptoKey && p.publicKey instanceof CryptoKey && p.privateKey.type === 'private';
}

/** The device key in IndexedDB. Only suites WebCrypto holds natively (P-256, Ed25519): SM2 would need raw bytes. */
export class IdbKeyVault implements KeyVault {
  constructor(private readonly db: IDBDatabase) {}

  async load(): Promise<Signer | undefined> {
    const v = await inTransaction(this.db, KEYS, 'readonly', (tx) => request(tx.objectStore(KEYS).get(DEVICE)));
    if (v === undefined) return undefined;
    if (!isStoredKey(v)) throw new WalletError('key_corrupt', 'the stored device key is not a WebCrypto key pair');
    try {
      return await webCryptoSigner(v.suite, v.pair);
    } catch (e) {
      throw new WalletError('key_corrupt', 'the stored device key cannot be used', { cause: e });
    }
  }

  async create(suite: SuiteName): Promise<Signer> {
    if (suite === 'sm2') throw new RangeError('the browser keystore holds p256 and ed25519 keys only; sm2 would need raw key bytes');
    const pair = (await crypto.subtle.generateKey(WEB_SUITES[suite], false, ['sign', 'verify'])) as CryptoKeyPair;
    const stored: StoredKey = { suite, pair };
    // add() (not put) fails on an existing key inside the same transaction: a key is never replaced.
    await inTransaction(this.db, KEYS, 'readwrite', async (tx) => {
      const store = tx.objectStore(KEYS);
      if ((await request(store.getKey(DEVICE))) !== undefined) throw new WalletError('key_exists', 'the browser vault already holds a key');
      await request(store.add(stored, DEVICE));
    });
    return webCryptoSigner(suite, pair);
  }

  async destroy(): Promise<void> {
    await inTransaction(this.db, KEYS, 'readwrite', (tx) => request(tx.objectStore(KEYS).delete(DEVICE)));
  }

  /** The stored private CryptoKey itself (for the screen that shows it is not extractable, and tests). */
  async privateKey(): Promise<CryptoKey | undefined> {
    const v = await inTransaction(this.db, KEYS, 'readonly', (tx) => request(tx.objectStore(KEYS).get(DEVICE)));
    return isStoredKey(v) ? v.pair.privateKey : undefined;
  }
}

/** The wallet state as one structured-cloned record, written whole in a strict-durability transaction. */
export class IdbWalletStore implements WalletStore {
  constructor(private readonly db: IDBDatabase) {}

  async load(): Promise<WalletState | undefined> {
    const v: unknown = await inTransaction(this.db, STATE, 'readonly', (tx) => request(tx.objectStore(STATE).get(CURRENT)));
    if (v === undefined) return undefined;
    if (typeof v !== 'object' || v === null || !Array.isArray((v as { credentials?: unknown }).credentials))
      throw new WalletError('store_corrupt', 'the stored wallet state is not a state record');
    try {
      return checkWalletState(v as WalletState);
    } catch (e) {
      if (e instanceof WalletError) throw e;
      throw new WalletError('store_corrupt', 'the stored wallet state is damaged', { cause: e });
    }
  }

  async save(state: WalletState): Promise<void> {
    const checked = checkWalletState(state);
    await inTransaction(this.db, STATE, 'readwrite', (tx) => request(tx.objectStore(STATE).put(checked, CURRENT)));
  }
}

/** Forgets the key and the state (sign-out): the next start is a new wallet. */
export async function wipeWallet(db: IDBDatabase): Promise<void> {
  await inTransaction(db, [KEYS, STATE], 'readwrite', async (tx) => {
    await request(tx.objectStore(KEYS).delete(DEVICE));
    await request(tx.objectStore(STATE).delete(CURRENT));
  });
}
