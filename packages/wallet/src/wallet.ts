/**
 * The wallet core: one device key, the credentials the platform issued to it, and offline codes
 * whose counter never repeats, even across crashes. Time, crypto, the key's home and storage are
 * injected, so the same code runs in Node, in the browser and in the simulator.
 */
import {
  type Code,
  type Credential,
  type CryptoProvider,
  codeToText,
  decodeCredential,
  equalBytes,
  makeCode,
  ProtocolError,
  type Signer,
  type SuiteName,
  type TrustListBody,
  verifyCredentialSignature,
} from '@duet/protocol';
import { CounterReservation, Mutex } from './counter.js';
import { asWalletError, WalletError } from './errors.js';
import { COUNTER_BLOCK, COUNTER_BLOCK_MAX, CREDENTIALS_HELD_MAX } from './limits.js';
import type { Clock, KeyVault, WalletState, WalletStore } from './ports.js';
import { type RenewalRequest, type RenewalTransport, signDeviceProof } from './proof.js';
import { checkWalletState } from './state.js';
import { type Held, pickCredential, type WalletStatus, walletStatus } from './status.js';

export interface WalletOptions {
  readonly crypto: CryptoProvider;
  readonly clock: Clock;
  readonly vault: KeyVault;
  readonly store: WalletStore;
  /** Suite of a device key made now (default p256: what phone secure hardware supports). Ignored when a key exists. */
  readonly suite?: SuiteName;
  /** When given, a credential is installed only if its issuer signature verifies against this list. */
  readonly trust?: TrustListBody;
  /** Counters reserved per store write (default COUNTER_BLOCK). Tests use 1 to write on every code. */
  readonly counterBlock?: number;
}

export interface WalletCode {
  readonly code: Code;
  /** The QR text: `DU1:` + Base45. */
  readonly text: string;
}

/** Newest first: the later expiry wins, then the later start. */
function newestFirst(a: Held, b: Held): number {
  return b.credential.notAfter - a.credential.notAfter || b.credential.notBefore - a.credential.notBefore;
}

const noop = (): void => {};

export class Wallet {
  private held: Held[];
  private readonly counters: CounterReservation;
  private writes: Promise<void> = Promise.resolve();
  private readonly installs = new Mutex();
  private closed = false;

  private constructor(
    private readonly o: WalletOptions,
    private readonly device: Signer,
    state: WalletState,
    block: number,
  ) {
    this.held = state.credentials.map((h) => {
      let credential: Credential;
      try {
        credential = decodeCredential(h.bytes);
      } catch (e) {
        throw new WalletError('store_corrupt', 'a held credential does not decode', { cause: e });
      }
      if (!this.isForThisDevice(credential)) throw new WalletError('store_corrupt', `credential ${credential.serial} is for another key`);
      return { credential, firstCounter: h.firstCounter };
    });
    this.held.sort(newestFirst);
    this.counters = new CounterReservation(state.reservedThrough, block, () => this.persist());
  }

  /**
   * Opens the wallet on its vault and store, making the device key on first start. The state is
   * saved before the key is made, so a crash in between never leaves a key without a counter.
   * Rejects with state_lost / key_lost / key_mismatch when key and state do not belong together:
   * then only `Wallet.reset` and a new enrolment help, since guessing could reuse counters.
   */
  static async open(o: WalletOptions): Promise<Wallet> {
    const block = o.counterBlock ?? COUNTER_BLOCK;
    if (!Number.isSafeInteger(block) || block < 1 || block > COUNTER_BLOCK_MAX) {
      throw new RangeError(`counterBlock must be an integer in 1..${COUNTER_BLOCK_MAX}, got ${block}`);
    }
    let state = await loadState(o.store);
    let key = await loadKey(o.vault);
    if (state === undefined) {
      if (key !== undefined) throw new WalletError('state_lost', 'the vault holds a device key but the store holds no wallet state');
      state = { version: 1, reservedThrough: 0, credentials: [] };
      await saveState(o.store, state);
    }
    if (state.device === undefined) {
      // First start (or a crash during it): no credential can exist yet, so no counter is at stake.
      key ??= await o.vault.create(o.suite ?? 'p256');
      state = { ...state, device: { suite: key.suite, publicKey: key.publicKey.slice() } };
      await saveState(o.store, state);
    } else if (key === undefined) {
      throw new WalletError('key_lost', 'the wallet state names a device key that the vault no longer holds');
    } else if (key.suite !== state.device.suite || !equalBytes(key.publicKey, state.device.publicKey)) {
      throw new WalletError('key_mismatch', 'the vault key differs from the key in the wallet state');
    }
    return new Wallet(o, key, state, block);
  }

  /**
   * Forgets the device key and every credential, keeping the counter high-water mark when it can
   * be read. The key goes first: a crash in between leaves "key_lost", never an old key with a
   * fresh counter.
   */
  static async reset(o: Pick<WalletOptions, 'vault' | 'store'>): Promise<void> {
    let reservedThrough = 0;
    try {
      reservedThrough = (await o.store.load())?.reservedThrough ?? 0;
    } catch {
      // Damaged state: the new key makes the old counters irrelevant, since no credential will name it.
    }
    await o.vault.destroy();
    await saveState(o.store, { version: 1, reservedThrough, credentials: [] });
  }

  get suite(): SuiteName {
    return this.device.suite;
  }

  get publicKey(): Uint8Array {
    return this.device.publicKey.slice();
  }

  /**
   * Installs a credential from the platform: it must decode, name this device key and suite, carry
   * a trusted issuer signature (when a trust list was given) and not be expired. It may start in the
   * future (the next credential of a renewal overlap). Resolves once it is durable.
   */
  installCredential(bytes: Uint8Array): Promise<Credential> {
    this.assertOpen();
    return this.installs.run(() => this.install(bytes));
  }

  private async install(bytes: Uint8Array): Promise<Credential> {
    let c: Credential;
    try {
      c = decodeCredential(bytes);
    } catch (e) {
      throw new WalletError('credential_invalid', 'the credential does not decode', { cause: e });
    }
    if (!this.isForThisDevice(c)) throw new WalletError('wrong_device', `credential ${c.serial} names another device key or suite`);
    if (this.o.trust !== undefined) {
      try {
        await verifyCredentialSignature(c, this.o.trust, this.o.crypto);
      } catch (e) {
        if (e instanceof ProtocolError) throw new WalletError('credential_invalid', `credential ${c.serial}: ${e.message}`, { cause: e });
        throw e;
      }
    }
    const nowS = this.nowS();
    if (nowS >= c.notAfter) throw new WalletError('credential_expired', `credential ${c.serial} expired at ${c.notAfter}, now ${nowS}`);
    const same = this.held.find((h) => h.credential.serial === c.serial);
    if (same !== undefined) {
      if (equalBytes(same.credential.bytes, c.bytes)) return same.credential;
      throw new WalletError('credential_invalid', `credential ${c.serial} is already held with other content`);
    }
    const entry: Held = { credential: c, firstCounter: undefined };
    const kept = [...this.held.filter((h) => nowS < h.credential.notAfter), entry].sort(newestFirst).slice(0, CREDENTIALS_HELD_MAX);
    if (!kept.includes(entry)) throw new WalletError('credential_outdated', `credential ${c.serial} is older than the ones held`);
    const before = this.held;
    this.held = kept;
    try {
      await this.persist();
    } catch (e) {
      this.held = before;
      throw e;
    }
    return c;
  }

  /**
   * Makes the next offline code, signed by the device key at the clock's time, with a fresh counter.
   * Refuses (WalletError) when no credential is valid now: an expired credential produces no codes.
   */
  async nextCode(): Promise<WalletCode> {
    this.assertOpen();
    const nowS = this.nowS();
    const pick = pickCredential(this.held, nowS);
    if (!('held' in pick)) throw new WalletError(pick.reason, pick.detail);
    const counter = await this.counters.take();
    if (pick.held.firstCounter === undefined) {
      pick.held.firstCounter = counter;
      this.persist().then(noop, noop); // only a status figure: the next write carries it if this fails
    }
    const code = await makeCode(pick.held.credential, this.device, nowS, counter);
    return { code, text: codeToText(code) };
  }

  /** What the wallet screen shows: what is left, whether codes can be made, whether to renew. */
  status(): WalletStatus {
    return walletStatus(this.held, this.nowS(), this.counters, this.device);
  }

  /** The enrolment or renewal request for a platform challenge: device key, suite and proof of possession. */
  async renewalRequest(challenge: Uint8Array): Promise<RenewalRequest> {
    this.assertOpen();
    const proof = await signDeviceProof(this.device, challenge);
    const newest = this.held[0];
    return {
      suite: this.device.suite,
      devicePublicKey: this.device.publicKey.slice(),
      challenge: challenge.slice(),
      proof,
      ...(newest !== undefined ? { currentSerial: newest.credential.serial } : {}),
    };
  }

  /** Enrols or renews: challenge → signed request → credential, installed durably. */
  async renew(transport: RenewalTransport): Promise<Credential> {
    this.assertOpen();
    let challenge: Uint8Array;
    try {
      challenge = await transport.challenge();
    } catch (e) {
      throw asWalletError(e, 'renewal_failed', 'getting a challenge');
    }
    const request = await this.renewalRequest(challenge);
    let bytes: Uint8Array;
    try {
      bytes = await transport.issue(request);
    } catch (e) {
      throw asWalletError(e, 'renewal_failed', 'asking for a credential');
    }
    return this.installCredential(bytes);
  }

  /** Renews only when status() says so; call it whenever the device comes online. */
  async renewIfDue(transport: RenewalTransport): Promise<Credential | undefined> {
    return this.status().needsRenewal ? this.renew(transport) : undefined;
  }

  /**
   * Waits for every code and write in flight and gives back the unused reserved counters, so a clean
   * restart skips none; afterwards every call rejects with wallet_closed. A wallet that is never
   * closed (a crash, a killed app) loses only the rest of its block.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.counters.release();
    await this.writes;
  }

  private isForThisDevice(c: Credential): boolean {
    return c.deviceSuite === this.device.suite && equalBytes(c.devicePublicKey, this.device.publicKey);
  }

  private assertOpen(): void {
    if (this.closed) throw new WalletError('wallet_closed', 'this wallet object was closed');
  }

  private nowS(): number {
    const ms = this.o.clock.nowMs();
    if (!Number.isFinite(ms)) throw new TypeError(`clock.nowMs() returned ${ms}`);
    return Math.floor(ms / 1000);
  }

  private snapshot(): WalletState {
    return {
      version: 1,
      device: { suite: this.device.suite, publicKey: this.device.publicKey.slice() },
      reservedThrough: this.counters.reservedThrough,
      credentials: this.held.map((h) =>
        h.firstCounter === undefined ? { bytes: h.credential.bytes } : { bytes: h.credential.bytes, firstCounter: h.firstCounter },
      ),
    };
  }

  /** Writes the whole current state, after any write already queued; resolves when it is durable. */
  private persist(): Promise<void> {
    const run = this.writes.then(async () => {
      const state = this.snapshot();
      await saveState(this.o.store, state);
      this.counters.markDurable(state.reservedThrough);
    });
    this.writes = run.then(noop, noop);
    return run;
  }
}

async function loadState(store: WalletStore): Promise<WalletState | undefined> {
  let state: WalletState | undefined;
  try {
    state = await store.load();
  } catch (e) {
    throw asWalletError(e, 'store_failed', 'loading wallet state');
  }
  return state === undefined ? undefined : checkWalletState(state);
}

async function saveState(store: WalletStore, state: WalletState): Promise<void> {
  try {
    await store.save(state);
  } catch (e) {
    throw asWalletError(e, 'store_failed', 'saving wallet state');
  }
}

async function loadKey(vault: KeyVault): Promise<Signer | undefined> {
  try {
    return await vault.load();
  } catch (e) {
    throw asWalletError(e, 'store_failed', 'loading the device key');
  }
}
