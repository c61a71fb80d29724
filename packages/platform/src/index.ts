/**
 * @duet/platform: the platform service. `openPlatform` wires storage, keys, auth and routes into a
 * Fastify server; the modules below are its parts, each usable on its own in tests and tools.
 */
export * from './context.js';
export type { Db, Dialect, Migration, Queryable, SqlValue } from './db/db.js';
export { openDatabase } from './db/open.js';
export { DatabaseUrlError, parseDatabaseUrl, redactUrl } from './db/open.js';
export * from './errors.js';
export { type IntakeResult, takeBatch } from './intake.js';
export { activationProofMessage } from '@duet/protocol';
export { ALL_MIGRATIONS, DEFAULT_AGREEMENT, openPlatform, type Platform, type PlatformOptions } from './platform.js';
export { DEV_KEY_PASSPHRASE, passphraseFromEnv, UnsealedKeys } from './keys.js';
export { seededRandom } from './random.js';
export { seedCredential, seedHolder, seedTerminal, type SeedHolder } from './seed.js';
export { ACTIVATION_TTL_S, issueActivationCode } from './registry.js';
export {
  type Campus,
  CAMPUS_FIRST_HOLDER_ID,
  CAMPUS_PLACES,
  type CampusHolder,
  type CampusOptions,
  type CampusTerminal,
  seedCampus,
} from './campus.js';
export * from './audit.js';
export {
  type ChainEntry,
  type ChainPosting,
  CanonicalBytesError,
  closeRoot,
  decodeEntry,
  encodeEntry,
  encodeRoot,
  entryHash,
  HASH_BYTES,
  LEDGER_ENTRY_LABEL,
  LEDGER_ROOT_LABEL,
  LEDGER_WITNESS_LABEL,
  LedgerSealer,
  type LedgerRoot,
  merkleRoot,
  type RootBody,
  rootHash,
  rootSigningMessage,
  sealLedger,
  witnessMessage,
  ZERO_HASH,
} from './ledger-seal.js';
