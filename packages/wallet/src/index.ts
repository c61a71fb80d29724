/**
 * @duet/wallet: the wallet core. Device key, credential storage and renewal, offline codes with a
 * counter that never repeats, and the figures the wallet screen shows. Runs in Node and the
 * browser: nothing here imports `node:` (file storage is in `@duet/wallet/node`).
 */
export { Wallet, type WalletCode, type WalletOptions } from './wallet.js';
export {
  type CredentialStatus,
  STATUS_REASONS,
  STATUS_WORDS,
  type StatusReason,
  type WalletStatus,
  renewalDue,
} from './status.js';
export * from './errors.js';
export * from './limits.js';
export { MemoryKeyVault, MemoryWalletStore } from './memory.js';
export { type Clock, type HeldCredentialState, type KeyVault, systemClock, type WalletState, type WalletStore } from './ports.js';
export {
  DEVICE_PROOF_LABEL,
  deviceProofMessage,
  type RenewalRequest,
  type RenewalTransport,
  signDeviceProof,
  verifyDeviceProof,
} from './proof.js';
export { checkWalletState, decodeWalletState, encodeWalletState, STATE_FORMAT, type Sha256 } from './state.js';
