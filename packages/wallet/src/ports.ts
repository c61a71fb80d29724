/**
 * What the wallet core needs from the outside world, as interfaces: time, the device key's home and
 * durable storage. Node, the browser and the simulator each plug in their own; one contract test
 * (test/store.contract.ts) holds every store to the same behaviour.
 */
import type { Signer, SuiteName } from '@duet/protocol';

/** Milliseconds since the epoch, from whatever clock the caller trusts (or simulates). */
export interface Clock {
  nowMs(): number;
}

export const systemClock: Clock = { nowMs: () => Date.now() };

/**
 * Where the device key lives. The private key never leaves it: `load` and `create` hand back a
 * Signer whose `exportPrivateKey()` resolves to undefined wherever the platform allows (WebCrypto
 * `extractable: false` in the browser; a Node file vault necessarily keeps raw bytes on disk).
 */
export interface KeyVault {
  /** The stored key, or undefined when there is none. Rejects with WalletError(key_corrupt) if it is damaged. */
  load(): Promise<Signer | undefined>;
  /**
   * Makes a new key of `suite` and stores it durably before resolving. Rejects with
   * WalletError(key_exists) when a key is already stored: a device key is never silently replaced.
   */
  create(suite: SuiteName): Promise<Signer>;
  /** Forgets the key for good (wallet reset). Resolves when it is gone; no-op when there is none. */
  destroy(): Promise<void>;
}

/** One credential the wallet holds, with the first counter it used (for the status figures). */
export interface HeldCredentialState {
  /** The credential's exact encoded bytes, as the platform signed them. */
  readonly bytes: Uint8Array;
  /** The first code counter made under this credential; absent until it made one. */
  readonly firstCounter?: number;
}

/** Everything the wallet keeps durably. Small, and written whole on every change. */
export interface WalletState {
  readonly version: 1;
  /** The device key this state belongs to; absent only between first start and key creation. */
  readonly device?: { readonly suite: SuiteName; readonly publicKey: Uint8Array };
  /**
   * Write-ahead bound of the code counter: no counter above it was ever handed out, and after a
   * restart counting resumes at reservedThrough + 1. It never drops below a counter handed out
   * (it shrinks only on a clean close, to the last counter used).
   */
  readonly reservedThrough: number;
  /** Newest first; at most CREDENTIALS_HELD_MAX. */
  readonly credentials: readonly HeldCredentialState[];
}

export interface WalletStore {
  /**
   * The last state saved, or undefined when none was ever saved. Rejects with
   * WalletError(store_corrupt) when what is stored is damaged: never treats damage as "empty".
   */
  load(): Promise<WalletState | undefined>;
  /**
   * Replaces the state. Resolves only when the new state would survive a crash or power cut; a
   * crash during the call leaves either the old or the new state, whole.
   */
  save(state: WalletState): Promise<void>;
}
