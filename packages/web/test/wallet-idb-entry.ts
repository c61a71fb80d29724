/**
 * Bundled into a test page (not the app): exposes the wallet app's IndexedDB vault and store to
 * the Node side of the tests, so the wallet core's shared contracts run against them in Chromium.
 * Each call names its own database; failures come back as data ({ error }) with the WalletError code.
 */
import type { Signer, SuiteName } from '@duet/protocol';
import type { WalletState } from '@duet/wallet';
import { IdbKeyVault, IdbWalletStore, openWalletDb } from '../app/wallet/vault.js';

type Result<T> = { ok: T } | { error: { name: string; code?: string; message: string } };

const dbs = new Map<string, IDBDatabase>();
const signers = new Map<string, Signer>();

async function db(name: string): Promise<IDBDatabase> {
  let d = dbs.get(name);
  if (d === undefined) {
    d = await openWalletDb(name);
    dbs.set(name, d);
  }
  return d;
}

async function run<T>(f: () => Promise<T>): Promise<Result<T>> {
  try {
    return { ok: await f() };
  } catch (e) {
    const err = e as { name?: string; code?: string; message?: string };
    return { error: { name: String(err.name), message: String(err.message), ...(err.code !== undefined ? { code: err.code } : {}) } };
  }
}

async function describeSigner(name: string, s: Signer | undefined) {
  if (s === undefined) return undefined;
  signers.set(name, s);
  return { suite: s.suite, publicKey: s.publicKey, exported: (await s.exportPrivateKey()) ?? null };
}

const api = {
  storeLoad: (name: string) => run(async () => new IdbWalletStore(await db(name)).load()),
  storeSave: (name: string, state: WalletState) => run(async () => new IdbWalletStore(await db(name)).save(state)),
  /** Writes anything at all where the state lives, to play damage. */
  storeDamage: (name: string, value: unknown) =>
    run(async () => {
      const tx = (await db(name)).transaction('state', 'readwrite');
      tx.objectStore('state').put(value, 'current');
      await new Promise((resolve) => {
        tx.oncomplete = resolve;
      });
    }),
  vaultLoad: (name: string) => run(async () => describeSigner(name, await new IdbKeyVault(await db(name)).load())),
  vaultCreate: (name: string, suite: SuiteName) =>
    run(async () => describeSigner(name, await new IdbKeyVault(await db(name)).create(suite))),
  vaultDestroy: (name: string) => run(async () => new IdbKeyVault(await db(name)).destroy()),
  sign: (name: string, message: Uint8Array) =>
    run(async () => {
      const s = signers.get(name);
      if (s === undefined) throw new Error('no signer loaded');
      return s.sign(message);
    }),
};

(globalThis as { __duetIdb?: typeof api }).__duetIdb = api;
export type IdbApi = typeof api;
