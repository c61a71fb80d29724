/**
 * A small platform for wallet tests: a root, an issuer, a signed trust list and a settable clock.
 * Everything is real and signed. (Ideas from the terminal fixture; nothing imported from it: the
 * wallet must not depend on the terminal.)
 */
import {
  type Credential,
  type CryptoProvider,
  fen,
  type Signer,
  signCredential,
  signTrustList,
  type SuiteName,
  type TrustList,
} from '@duet/protocol';
import { nodeCrypto } from '@duet/protocol/node';
import type { Clock, WalletState, WalletStore } from '../src/index.js';

export const T0_S = 1_790_000_000; // 2026-09-21: a fixed "now", so tests never depend on the wall clock
export const HOUR_S = 3600;

export class TestClock implements Clock {
  constructor(public ms = T0_S * 1000) {}
  nowMs(): number {
    return this.ms;
  }
  get s(): number {
    return Math.floor(this.ms / 1000);
  }
  advance(seconds: number): void {
    this.ms += seconds * 1000;
  }
}

export interface IssueOptions {
  readonly serial?: number;
  readonly notBefore?: number;
  readonly notAfter?: number;
  readonly perPayment?: number;
  readonly offlineTotal?: number;
  readonly offlineCount?: number;
  readonly issuerKeyId?: number;
  /** Sign with this key instead of the trusted issuer (a forgery). */
  readonly signer?: Signer;
}

export interface Platform {
  readonly crypto: CryptoProvider;
  readonly suite: SuiteName;
  readonly root: Signer;
  readonly issuer: Signer;
  readonly trust: TrustList;
  issue(device: { readonly suite: SuiteName; readonly publicKey: Uint8Array }, o?: IssueOptions): Promise<Credential>;
}

let nextSerial = 9000;

export async function makePlatform(suite: SuiteName = 'p256', crypto: CryptoProvider = nodeCrypto()): Promise<Platform> {
  const s = crypto.suite(suite);
  const [root, issuer] = await Promise.all([s.generate(), s.generate()]);
  const trust = await signTrustList(
    {
      listVersion: 1,
      issuedAt: T0_S - HOUR_S,
      expiresAt: T0_S + 60 * 86_400,
      rootKeyId: 1,
      rootSuite: suite,
      keys: [
        { keyId: 10, role: 'issuer', suite, notBefore: T0_S - 30 * 86_400, notAfter: T0_S + 400 * 86_400, publicKey: issuer.publicKey },
      ],
    },
    root,
  );
  return {
    crypto,
    suite,
    root,
    issuer,
    trust,
    issue: (device, o = {}) =>
      signCredential(
        {
          issuerSuite: suite,
          deviceSuite: device.suite,
          issuerKeyId: o.issuerKeyId ?? 10,
          serial: o.serial ?? nextSerial++,
          holder: 424_242,
          campus: 1,
          role: 'student',
          scopes: ['canteen', 'bus'],
          devicePublicKey: device.publicKey,
          limits: {
            perPayment: fen(o.perPayment ?? 5_000),
            offlineTotal: fen(o.offlineTotal ?? 20_000),
            offlineCount: o.offlineCount ?? 20,
          },
          notBefore: o.notBefore ?? T0_S - HOUR_S,
          notAfter: o.notAfter ?? T0_S + 72 * HOUR_S,
        },
        o.signer ?? issuer,
      ),
  };
}

/**
 * A store as one process sees it. `crash()` is the process dying: writes already handed to the
 * inner store stay (they were durable), and nothing this handle is asked afterwards ever happens.
 */
export class ProcessStore implements WalletStore {
  private dead = false;
  saves = 0;
  constructor(readonly inner: WalletStore) {}

  load(): Promise<WalletState | undefined> {
    return this.dead ? new Promise(() => {}) : this.inner.load();
  }

  save(state: WalletState): Promise<void> {
    if (this.dead) return new Promise(() => {});
    this.saves++;
    return this.inner.save(state);
  }

  crash(): void {
    this.dead = true;
  }
}

/** A store whose writes land a timer tick after they are asked for, as a real disk's do. */
export class SlowStore implements WalletStore {
  constructor(readonly inner: WalletStore) {}
  load(): Promise<WalletState | undefined> {
    return this.inner.load();
  }
  async save(state: WalletState): Promise<void> {
    await new Promise((r) => setTimeout(r, 1));
    return this.inner.save(state);
  }
}

/** A store that fails on demand, for the "cannot save" paths. */
export class FlakyStore implements WalletStore {
  failSaves = false;
  constructor(readonly inner: WalletStore) {}
  load(): Promise<WalletState | undefined> {
    return this.inner.load();
  }
  async save(state: WalletState): Promise<void> {
    if (this.failSaves) throw new Error('disk full (simulated)');
    return this.inner.save(state);
  }
}

/** Rejects with a WalletError of `code`, or fails the test. */
export async function walletErrorCode(p: Promise<unknown> | (() => unknown)): Promise<string> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    if (typeof e === 'object' && e !== null && 'name' in e && e.name === 'WalletError' && 'code' in e) return String(e.code);
    throw e;
  }
  throw new Error('expected a WalletError, but nothing was thrown');
}
