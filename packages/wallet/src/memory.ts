/**
 * In-memory key vault and store: for tests, the simulator, and a wallet that should leave no trace.
 * They keep their contents across `Wallet.open` calls on the same object, so a test can restart a
 * wallet without losing what was "durable".
 */
import type { CryptoProvider, Signer, SuiteName } from '@duet/protocol';
import { WalletError } from './errors.js';
import type { HeldCredentialState, KeyVault, WalletState, WalletStore } from './ports.js';
import { checkWalletState } from './state.js';

export class MemoryKeyVault implements KeyVault {
  private signer: Signer | undefined;
  constructor(private readonly crypto: CryptoProvider) {}

  async load(): Promise<Signer | undefined> {
    return this.signer;
  }

  async create(suite: SuiteName): Promise<Signer> {
    if (this.signer !== undefined) throw new WalletError('key_exists', 'memory vault already holds a key');
    this.signer = await this.crypto.suite(suite).generate({ extractable: false });
    return this.signer;
  }

  async destroy(): Promise<void> {
    this.signer = undefined;
  }
}

function copyState(s: WalletState): WalletState {
  const credentials = s.credentials.map((c): HeldCredentialState => ({ ...c, bytes: c.bytes.slice() }));
  const device = s.device === undefined ? {} : { device: { suite: s.device.suite, publicKey: s.device.publicKey.slice() } };
  return { version: 1, ...device, reservedThrough: s.reservedThrough, credentials };
}

/** A store whose save is "durable" the moment it is called: exactly what a crash would leave. */
export class MemoryWalletStore implements WalletStore {
  private state: WalletState | undefined;
  /** How many saves were made, for tests and measurements of write amplification. */
  saves = 0;

  constructor(initial?: WalletState) {
    if (initial !== undefined) this.state = copyState(checkWalletState(initial));
  }

  async load(): Promise<WalletState | undefined> {
    return this.state === undefined ? undefined : copyState(this.state);
  }

  async save(state: WalletState): Promise<void> {
    this.state = copyState(checkWalletState(state));
    this.saves++;
  }
}
