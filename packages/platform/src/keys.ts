/**
 * The platform's key store (DESIGN §4): the root, issuer, terminal-CA and list-signing keys, made at
 * first start, kept encrypted at rest, rotated by the rule below, and published in versioned,
 * root-signed trust lists.
 *
 * At rest. Each private key is sealed with AES-256-GCM under a key derived by scrypt (N = 2^15,
 * r = 8, p = 1: 32 MiB and tens of milliseconds, the RFC 7914 interactive setting, which OWASP also
 * lists) from a passphrase the operator gives in DUET_KEY_PASSPHRASE, with a fresh salt and nonce
 * per key. The additional data binds the ciphertext to its role, suite and public key, so a sealed
 * key moved to another row does not open. A wrong passphrase (or a changed row) fails the GCM tag,
 * so the service refuses to start instead of signing with garbage. Decrypted keys live only in this
 * process's memory, imported non-extractable.
 *
 * Rotation (issuer, terminal CA, list signer; see `rotate`, `activatePending`, `prune`):
 *   1. `rotate(role)` makes a new key in state `pending` and publishes a trust list that lists it
 *      next to the active one. Nothing is signed with it yet.
 *   2. `activatePending(role)` is allowed once every trust list published without the new key has
 *      expired, so every terminal that can still verify anything already holds the new key. The new
 *      key becomes `active`; the old one becomes `retired`, its sealed private key is erased (it
 *      will never sign again), and its `not_after` is shortened to
 *          min(old not_after, retired_at + SIGNED_LIFETIME_MAX_S[role] + RETIRE_MARGIN_S),
 *      the latest end of anything it can have signed. (Objects must end no later than their key's
 *      `not_after`, protocol §9, so it cannot simply be set to "now".) A new trust list is published.
 *   3. `prune(now)` marks `removed` every retired key whose `not_after` has passed: nothing it signed
 *      is valid any more, so the next published list drops it.
 * Active keys get a long `not_after` (KEY_LIFETIME_S, 5 years) because everything they sign must end
 * before it; rotate well before that. The price of the shortened window: for up to
 * SIGNED_LIFETIME_MAX_S after retirement a retired key still verifies objects dated inside its
 * window, which is why its private half is erased at retirement. A key suspected of compromise must
 * not be retired but removed at once (a later feature: it ends what it signed with it).
 *
 * The root is made and stored the same way but not rotated here: a new root must first be pinned in
 * every terminal and wallet (re-provisioning), protocol §9.
 */
import { createCipheriv, createDecipheriv, randomBytes, scrypt } from 'node:crypto';
import {
  CREDENTIAL_LIFETIME_MAX_S,
  type CryptoProvider,
  decodeTrustList,
  equalBytes,
  type KeyRole,
  PRIVATE_KEY_BYTES,
  type RootKey,
  type Signer,
  type SuiteName,
  SUITES,
  signTrustList,
  toHex,
  type TrustedKey,
  type TrustList,
  verifyTrustList,
} from '@duet/protocol';
import { type Db, type Dialect, type Migration, type Queryable, type Row, StorageConstraintError } from './db/db.js';
import { ApiError } from './errors.js';

const DAY_S = 86_400;

// ---------------------------------------------------------------------------------------------
// Limits

/** Scrypt cost as log2(N): 2^15 is the floor (RFC 7914 interactive); raising it later only needs new seals. */
export const SCRYPT_LOG2_N = 15;
/** Highest cost we agree to open: a changed row cannot make start-up allocate gigabytes. */
const SCRYPT_LOG2_N_MAX = 20;
const SCRYPT_R = 8;
const SCRYPT_P = 1;
/** 128·N·r is 32 MiB at N = 2^15; Node's default cap is exactly 32 MiB, too tight, so allow twice the need. */
const scryptMaxmem = (log2N: number, r: number): number => 2 * 128 * 2 ** log2N * r + 1024 * 1024;

/** Shortest passphrase accepted: 12 characters, as NIST SP 800-63B suggests for secrets no one else checks. */
export const PASSPHRASE_MIN_CHARS = 12;
/** Longest passphrase accepted: bounds the work scrypt does on it. */
export const PASSPHRASE_MAX_CHARS = 1024;

/** An active key's validity: long, since everything it signs must end before it; shortened at retirement. */
export const KEY_LIFETIME_S = 5 * 365 * DAY_S;
/** A new key's window starts this long before it is made, so objects backdated for clock skew (issuance uses 60 s) fall inside. */
export const KEY_BACKDATE_S = 3_600;
/** Added to the retirement bound for clock differences between API processes and their callers. */
export const RETIRE_MARGIN_S = 3_600;

/**
 * The longest an object signed by a key of each role can last after it was signed: the retired
 * key's `not_after` is shortened to its retirement time plus this.
 *  - issuer: credentials, bounded by the protocol (CREDENTIAL_LIFETIME_MAX_S, 31 days);
 *  - terminal_ca: terminal certificates, issued for 365 days by this platform (registry.ts);
 *  - list_signer: deny lists, whose expiry settings.ts caps at 30 days; risk policies have no
 *    expiry and stay valid while their key does, so publish the policy again after activating a new
 *    list signer (it must be re-signed within this bound).
 */
export const SIGNED_LIFETIME_MAX_S: { readonly [R in KeyRole]: number } = {
  issuer: CREDENTIAL_LIFETIME_MAX_S,
  terminal_ca: 365 * DAY_S,
  list_signer: 30 * DAY_S,
};

/** How long a trust list is valid: a terminal must fetch a newer one within a week (it syncs daily). */
export const TRUST_LIST_LIFETIME_S = 7 * DAY_S;

/** Key ids are u16 on the wire and never reused, so at most 65,535 keys ever. */
const KEY_ID_MAX = 0xffff;

// ---------------------------------------------------------------------------------------------
// Names, errors

export const STORE_ROLES = ['root', 'issuer', 'terminal_ca', 'list_signer'] as const;
export type StoreRole = (typeof STORE_ROLES)[number];
export const KEY_STATES = ['pending', 'active', 'retired', 'removed'] as const;
export type KeyState = (typeof KEY_STATES)[number];

/**
 * A passphrase for development only (`duet demo`), used by `passphraseFromEnv` only when asked.
 * Anyone can read it here: keys sealed under it are not protected at all.
 */
export const DEV_KEY_PASSPHRASE = 'duet-development-only-passphrase';
export const PASSPHRASE_ENV = 'DUET_KEY_PASSPHRASE';

export const KEY_STORE_ERRORS = {
  passphrase_missing: {
    en: `${PASSPHRASE_ENV} is not set: the platform keys are encrypted under it. Set it (at least ${PASSPHRASE_MIN_CHARS} characters) and start again`,
    zh: `未设置 ${PASSPHRASE_ENV}：平台密钥以它加密保存。请设置（至少 ${PASSPHRASE_MIN_CHARS} 个字符）后重新启动`,
  },
  passphrase_too_short: {
    en: `${PASSPHRASE_ENV} is too short: use at least ${PASSPHRASE_MIN_CHARS} (and at most ${PASSPHRASE_MAX_CHARS}) characters`,
    zh: `${PASSPHRASE_ENV} 太短：请使用至少 ${PASSPHRASE_MIN_CHARS} 个（至多 ${PASSPHRASE_MAX_CHARS} 个）字符`,
  },
  wrong_passphrase: {
    en: `The stored keys do not open with this ${PASSPHRASE_ENV}: the passphrase is wrong or the key table was altered`,
    zh: `无法用当前 ${PASSPHRASE_ENV} 解开已保存的密钥：口令错误或密钥表被改动`,
  },
  corrupt_key: { en: 'A stored key is damaged or in an unknown format', zh: '已保存的密钥已损坏或格式未知' },
  key_ids_exhausted: { en: 'All 65,535 key ids have been used', zh: '65535 个密钥编号已全部用完' },
} as const;
export type KeyStoreErrorCode = keyof typeof KEY_STORE_ERRORS;

/** Start-up and storage failures of the key store; the service logs `en` and `zh` and stops. */
export class KeyStoreError extends Error {
  override readonly name = 'KeyStoreError';
  readonly en: string;
  readonly zh: string;
  constructor(
    readonly code: KeyStoreErrorCode,
    readonly detail = '',
    options?: { cause?: unknown },
  ) {
    const w = KEY_STORE_ERRORS[code];
    super(`${code}: ${w.en} / ${w.zh}${detail === '' ? '' : ` (${detail})`}`, options);
    this.en = w.en;
    this.zh = w.zh;
  }
}

function checkPassphrase(p: string): void {
  if (p.length === 0) throw new KeyStoreError('passphrase_missing');
  const chars = [...p].length;
  if (chars < PASSPHRASE_MIN_CHARS || chars > PASSPHRASE_MAX_CHARS) throw new KeyStoreError('passphrase_too_short', `${chars} characters`);
}

/**
 * The passphrase from the environment, or a KeyStoreError saying what to set. The development
 * default is used only with `allowDevPassphrase` (the demo) and only when the variable is unset.
 */
export function passphraseFromEnv(
  env: { readonly [name: string]: string | undefined },
  options: { readonly allowDevPassphrase?: boolean } = {},
): { readonly passphrase: string; readonly isDevDefault: boolean } {
  const v = env[PASSPHRASE_ENV];
  if (v === undefined || v === '') {
    if (options.allowDevPassphrase === true) return { passphrase: DEV_KEY_PASSPHRASE, isDevDefault: true };
    throw new KeyStoreError('passphrase_missing');
  }
  checkPassphrase(v);
  return { passphrase: v, isDevDefault: false };
}

// ---------------------------------------------------------------------------------------------
// Sealing

const SEAL_VERSION = 1;
const SALT_BYTES = 16;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
/** version, log2N, r, p, salt, nonce, ciphertext, tag. */
const SEALED_BYTES = 4 + SALT_BYTES + NONCE_BYTES + PRIVATE_KEY_BYTES + TAG_BYTES;
const SEAL_AAD_LABEL = 'duet/keystore/v1\0';

function sealAad(role: StoreRole, suite: SuiteName, publicKey: Uint8Array): Uint8Array {
  const head = new TextEncoder().encode(`${SEAL_AAD_LABEL}${role}\0${suite}\0`);
  const out = new Uint8Array(head.length + publicKey.length);
  out.set(head);
  out.set(publicKey, head.length);
  return out;
}

function deriveKey(passphrase: string, salt: Uint8Array, log2N: number, r: number, p: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const options = { N: 2 ** log2N, r, p, maxmem: scryptMaxmem(log2N, r) };
    scrypt(passphrase.normalize('NFC'), salt, 32, options, (e, key) => (e === null ? resolve(key) : reject(e)));
  });
}

/** Seals a raw private key under the passphrase (internal; exported for the key store's tests). */
export async function sealPrivateKey(
  passphrase: string,
  raw: Uint8Array,
  aad: { role: StoreRole; suite: SuiteName; publicKey: Uint8Array },
): Promise<Uint8Array> {
  if (raw.length !== PRIVATE_KEY_BYTES) throw new RangeError(`private key: ${raw.length} bytes`);
  const salt = randomBytes(SALT_BYTES);
  const nonce = randomBytes(NONCE_BYTES);
  const key = await deriveKey(passphrase, salt, SCRYPT_LOG2_N, SCRYPT_R, SCRYPT_P);
  const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(sealAad(aad.role, aad.suite, aad.publicKey));
  const ct = Buffer.concat([cipher.update(raw), cipher.final()]);
  key.fill(0);
  const out = new Uint8Array(SEALED_BYTES);
  out.set([SEAL_VERSION, SCRYPT_LOG2_N, SCRYPT_R, SCRYPT_P]);
  out.set(salt, 4);
  out.set(nonce, 4 + SALT_BYTES);
  out.set(ct, 4 + SALT_BYTES + NONCE_BYTES);
  out.set(cipher.getAuthTag(), SEALED_BYTES - TAG_BYTES);
  return out;
}

/** Opens a sealed key; KeyStoreError(wrong_passphrase) when the tag fails, corrupt_key when malformed. */
export async function unsealPrivateKey(
  passphrase: string,
  sealed: Uint8Array,
  aad: { role: StoreRole; suite: SuiteName; publicKey: Uint8Array },
): Promise<Uint8Array> {
  if (sealed.length !== SEALED_BYTES || sealed[0] !== SEAL_VERSION)
    throw new KeyStoreError('corrupt_key', `sealed key: ${sealed.length} bytes`);
  const [log2N, r, p] = [sealed[1] as number, sealed[2] as number, sealed[3] as number];
  if (log2N < SCRYPT_LOG2_N || log2N > SCRYPT_LOG2_N_MAX || r < 1 || r > 16 || p < 1 || p > 4) {
    throw new KeyStoreError('corrupt_key', `scrypt parameters 2^${log2N}, r=${r}, p=${p}`);
  }
  const salt = sealed.subarray(4, 4 + SALT_BYTES);
  const nonce = sealed.subarray(4 + SALT_BYTES, 4 + SALT_BYTES + NONCE_BYTES);
  const ct = sealed.subarray(4 + SALT_BYTES + NONCE_BYTES, SEALED_BYTES - TAG_BYTES);
  const key = await deriveKey(passphrase, salt, log2N, r, p);
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES });
    decipher.setAAD(sealAad(aad.role, aad.suite, aad.publicKey));
    decipher.setAuthTag(sealed.subarray(SEALED_BYTES - TAG_BYTES));
    return new Uint8Array(Buffer.concat([decipher.update(ct), decipher.final()]));
  } catch (e) {
    throw new KeyStoreError('wrong_passphrase', `${aad.role} key`, { cause: e });
  } finally {
    key.fill(0);
  }
}

// ---------------------------------------------------------------------------------------------
// Schema

export const keysMigrations: Migration[] = [
  {
    id: 'keys/001-platform-keys-and-trust-lists',
    sql: (d: Dialect) => [
      // key_id: the u16 id in trust lists and objects; never reused, so rows are never deleted
      // (a removed key keeps its row, without its private half).
      `CREATE TABLE platform_keys (
        key_id ${d.int} PRIMARY KEY CHECK (key_id BETWEEN 1 AND ${KEY_ID_MAX}),
        role TEXT NOT NULL CHECK (role IN ('root', 'issuer', 'terminal_ca', 'list_signer')),
        suite TEXT NOT NULL CHECK (suite IN ('p256', 'ed25519', 'sm2')),
        public_key ${d.bytes} NOT NULL,
        sealed_private_key ${d.bytes},
        not_before ${d.int} NOT NULL,
        not_after ${d.int} NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'active', 'retired', 'removed')),
        created_at ${d.int} NOT NULL,
        activated_at ${d.int},
        retired_at ${d.int},
        removed_at ${d.int},
        listed_in_version ${d.int},
        CHECK (not_after > not_before),
        CHECK (state IN ('retired', 'removed') OR sealed_private_key IS NOT NULL)
      )`,
      // At most one key of a role signs at a time, and at most one waits to.
      `CREATE UNIQUE INDEX platform_keys_one_active ON platform_keys (role) WHERE state = 'active'`,
      `CREATE UNIQUE INDEX platform_keys_one_pending ON platform_keys (role) WHERE state = 'pending'`,
      `CREATE TABLE trust_lists (
        version ${d.int} PRIMARY KEY CHECK (version >= 1),
        bytes ${d.bytes} NOT NULL,
        issued_at ${d.int} NOT NULL,
        expires_at ${d.int} NOT NULL
      )`,
    ],
  },
];

// ---------------------------------------------------------------------------------------------
// Rows

function int(row: Row, col: string): number {
  const v = row[col];
  const n = typeof v === 'string' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isSafeInteger(n)) throw new KeyStoreError('corrupt_key', `${col}: not an integer`);
  return n;
}

function intOrNull(row: Row, col: string): number | null {
  return row[col] === null ? null : int(row, col);
}

function bytesOf(row: Row, col: string): Uint8Array {
  const v = row[col];
  if (!(v instanceof Uint8Array)) throw new KeyStoreError('corrupt_key', `${col}: not bytes`);
  return new Uint8Array(v);
}

function oneOf<T extends string>(row: Row, col: string, allowed: readonly T[]): T {
  const v = row[col];
  const hit = allowed.find((a) => a === v);
  if (hit === undefined) throw new KeyStoreError('corrupt_key', `${col}: ${String(v)}`);
  return hit;
}

/** One key as stored, without its private half. */
export interface KeyInfo {
  readonly keyId: number;
  readonly role: StoreRole;
  readonly suite: SuiteName;
  readonly publicKey: Uint8Array;
  readonly notBefore: number;
  readonly notAfter: number;
  readonly state: KeyState;
  readonly createdAt: number;
  readonly activatedAt: number | null;
  readonly retiredAt: number | null;
  readonly removedAt: number | null;
  /** The first trust list version that listed it (null for the root and for keys not yet listed). */
  readonly listedInVersion: number | null;
}

function keyInfo(r: Row): KeyInfo {
  return {
    keyId: int(r, 'key_id'),
    role: oneOf(r, 'role', STORE_ROLES),
    suite: oneOf(r, 'suite', SUITES),
    publicKey: bytesOf(r, 'public_key'),
    notBefore: int(r, 'not_before'),
    notAfter: int(r, 'not_after'),
    state: oneOf(r, 'state', KEY_STATES),
    createdAt: int(r, 'created_at'),
    activatedAt: intOrNull(r, 'activated_at'),
    retiredAt: intOrNull(r, 'retired_at'),
    removedAt: intOrNull(r, 'removed_at'),
    listedInVersion: intOrNull(r, 'listed_in_version'),
  };
}

const INFO_COLUMNS =
  'key_id, role, suite, public_key, not_before, not_after, state, created_at, activated_at, retired_at, removed_at, listed_in_version';

/** The key of a role that signs now, with what an object signed by it must respect. */
export interface ActiveKey {
  readonly keyId: number;
  readonly role: StoreRole;
  readonly suite: SuiteName;
  readonly notBefore: number;
  /** Everything this key signs must end no later than this. */
  readonly notAfter: number;
  readonly signer: Signer;
}

/** A Signer that also says which key it is (the id goes into the objects it signs). */
export interface KeySigner extends Signer {
  readonly keyId: number;
  readonly notBefore: number;
  readonly notAfter: number;
}

export interface Clock {
  nowMs(): number;
}

export interface KeyStoreOptions {
  readonly passphrase: string;
  readonly crypto: CryptoProvider;
  readonly clock: Clock;
  /** The suite of keys made from now on (first start and rotations); existing keys keep theirs. Default p256. */
  readonly suite?: SuiteName;
  /** How long each published trust list is valid. Default TRUST_LIST_LIFETIME_S. */
  readonly trustListLifetimeS?: number;
  /** false when the caller has applied every migration already (platform.ts). Default true. */
  readonly migrate?: boolean;
  /**
   * Signers already decrypted by other key stores of this process, shared (the simulator opens a
   * fresh platform on a copy of one campus for every seed: scrypt once per key, not per seed). A
   * signer is taken from it only for the same key id, suite and public key, so a key that is not
   * the one the row names is never used. Undefined (the default, and what a server uses): none.
   */
  readonly unsealed?: UnsealedKeys;
}

/** Decrypted signers shared between key stores of one process (KeyStoreOptions.unsealed). */
export class UnsealedKeys {
  readonly #signers = new Map<string, { readonly passphrase: string; readonly signer: Promise<Signer> }>();

  /**
   * The signer of key `k`, decrypting it with `open` unless a store of this process with the same
   * passphrase already has (a store with another passphrase proves its own by decrypting).
   */
  get(k: KeyInfo, passphrase: string, open: () => Promise<Signer>): Promise<Signer> {
    const id = `${k.keyId}:${k.suite}:${toHex(k.publicKey)}`;
    const hit = this.#signers.get(id);
    if (hit !== undefined) return hit.passphrase === passphrase ? hit.signer : open();
    const signer = open();
    this.#signers.set(id, { passphrase, signer });
    signer.catch(() => {
      if (this.#signers.get(id)?.signer === signer) this.#signers.delete(id);
    });
    return signer;
  }
}

const LISTED_STATES = "('pending', 'active', 'retired')";

export class KeyStore {
  readonly #db: Db;
  readonly #passphrase: string;
  readonly #crypto: CryptoProvider;
  readonly #suite: SuiteName;
  readonly #listLifetimeS: number;
  /** Decrypted signers by key id; only active keys and the root are ever decrypted. */
  readonly #signers = new Map<number, { readonly role: StoreRole; readonly signer: Promise<Signer> }>();
  readonly #unsealed: UnsealedKeys | undefined;

  private constructor(db: Db, o: KeyStoreOptions) {
    this.#db = db;
    this.#passphrase = o.passphrase;
    this.#crypto = o.crypto;
    this.#suite = o.suite ?? 'p256';
    this.#listLifetimeS = o.trustListLifetimeS ?? TRUST_LIST_LIFETIME_S;
    this.#unsealed = o.unsealed;
  }

  /**
   * Opens the key store: applies its migrations, makes the four keys on first start (and publishes
   * trust list version 1), then opens the root and every active key, so a wrong passphrase stops
   * start-up here rather than at the first signature, and refreshes the trust list if it is old.
   * Throws KeyStoreError.
   */
  static async open(db: Db, o: KeyStoreOptions): Promise<KeyStore> {
    checkPassphrase(o.passphrase);
    if (!Number.isInteger(o.trustListLifetimeS ?? 1) || (o.trustListLifetimeS ?? 1) < 1) throw new RangeError('trustListLifetimeS');
    const store = new KeyStore(db, o);
    // The platform migrates every module at once (platform.ts); a KeyStore used alone migrates its own tables.
    if (o.migrate !== false) await db.migrate(keysMigrations);
    const nowS = Math.floor(o.clock.nowMs() / 1000);
    await store.#firstStart(nowS);
    const rows = await db.all(`SELECT ${INFO_COLUMNS} FROM platform_keys WHERE state = 'active'`);
    await Promise.all(rows.map((r) => store.#open(keyInfo(r))));
    // A first start publishes version 1; a restart after a long stop publishes a fresh list if
    // the current one is past half its life (the server should also call refreshTrustList hourly).
    if ((await db.one('SELECT version FROM trust_lists LIMIT 1')) === undefined) await store.publishTrustList(nowS);
    else await store.refreshTrustList(nowS);
    return store;
  }

  /** Makes an active key for every role that has none (all four on first start), in one transaction. */
  async #firstStart(nowS: number): Promise<void> {
    const missing = async (q: Queryable) => {
      const rows = await q.all("SELECT role FROM platform_keys WHERE state = 'active'");
      return STORE_ROLES.filter((role) => !rows.some((r) => r.role === role));
    };
    const need = await missing(this.#db);
    if (need.length === 0) return;
    // Keys are made and sealed outside the transaction (scrypt is slow); a concurrent first start
    // in another process may win, and then these are simply dropped.
    const made = await Promise.all(need.map((role) => this.#make(role, nowS, 'active')));
    await retryOnDuplicate(() =>
      this.#db.tx(async (q) => {
        const still = await missing(q);
        for (const k of made) if (still.includes(k.role)) await insertKey(q, k);
      }),
    );
  }

  /** A new key of this store's suite, sealed, ready to insert (its id is given at insert time). */
  async #make(role: StoreRole, nowS: number, state: 'active' | 'pending'): Promise<NewKey> {
    const signer = await this.#crypto.suite(this.#suite).generate({ extractable: true });
    const raw = await signer.exportPrivateKey();
    if (raw === undefined) throw new Error(`the ${this.#suite} provider made a non-extractable key`);
    const sealed = await sealPrivateKey(this.#passphrase, raw, { role, suite: this.#suite, publicKey: signer.publicKey });
    raw.fill(0);
    const notBefore = Math.max(0, nowS - KEY_BACKDATE_S);
    return {
      role,
      suite: this.#suite,
      publicKey: signer.publicKey,
      sealed,
      notBefore,
      notAfter: nowS + KEY_LIFETIME_S,
      state,
      createdAt: nowS,
    };
  }

  /** Decrypts a key (once per process) and checks that it is the key its row says. */
  #open(k: KeyInfo): Promise<Signer> {
    let hit = this.#signers.get(k.keyId)?.signer;
    if (hit === undefined) {
      const unseal = async (): Promise<Signer> => {
        const row = await this.#db.one('SELECT sealed_private_key FROM platform_keys WHERE key_id = ?', [k.keyId]);
        if (row === undefined || row.sealed_private_key === null)
          throw new KeyStoreError('corrupt_key', `key ${k.keyId} has no private half`);
        const raw = await unsealPrivateKey(this.#passphrase, bytesOf(row, 'sealed_private_key'), k);
        const signer = await this.#crypto.suite(k.suite).importPrivateKey(raw, { extractable: false });
        raw.fill(0);
        if (!equalBytes(signer.publicKey, k.publicKey))
          throw new KeyStoreError('corrupt_key', `key ${k.keyId}: private and public halves differ`);
        return signer;
      };
      hit = this.#unsealed === undefined ? unseal() : this.#unsealed.get(k, this.#passphrase, unseal);
      this.#signers.set(k.keyId, { role: k.role, signer: hit });
      hit.catch(() => this.#signers.delete(k.keyId));
    }
    return hit;
  }

  /**
   * The active key of a role, read from the database on every call, so a rotation made by another
   * API process is followed at once.
   */
  async active(role: StoreRole): Promise<ActiveKey> {
    const row = await this.#db.one(`SELECT ${INFO_COLUMNS} FROM platform_keys WHERE role = ? AND state = 'active'`, [role]);
    if (row === undefined) throw new ApiError('unavailable', `no active ${role} key`);
    const k = keyInfo(row);
    const signer = await this.#open(k);
    // Another process may have rotated: forget this role's older keys, which will never sign again.
    for (const [id, e] of this.#signers) if (e.role === role && id !== k.keyId) this.#signers.delete(id);
    return { keyId: k.keyId, role: k.role, suite: k.suite, notBefore: k.notBefore, notAfter: k.notAfter, signer };
  }

  /** The Signer of the active key of a role, carrying its key id and validity. */
  async signer(role: StoreRole): Promise<KeySigner> {
    const a = await this.active(role);
    return {
      suite: a.signer.suite,
      publicKey: a.signer.publicKey,
      sign: (m) => a.signer.sign(m),
      exportPrivateKey: async () => undefined,
      keyId: a.keyId,
      notBefore: a.notBefore,
      notAfter: a.notAfter,
    };
  }

  /** The root public keys terminals and wallets pin at provisioning. */
  async rootKeys(): Promise<RootKey[]> {
    const rows = await this.#db.all(`SELECT ${INFO_COLUMNS} FROM platform_keys WHERE role = 'root' AND state = 'active' ORDER BY key_id`);
    return rows.map(keyInfo).map((k) => ({ keyId: k.keyId, suite: k.suite, publicKey: k.publicKey }));
  }

  /** Every key ever made, without private halves, by id (for the console and the audit). */
  async listKeys(): Promise<KeyInfo[]> {
    return (await this.#db.all(`SELECT ${INFO_COLUMNS} FROM platform_keys ORDER BY key_id`)).map(keyInfo);
  }

  /**
   * Signs and stores the next trust list version: every issuer, CA and list-signing key that is
   * pending, active or retired, valid from `nowS` for the store's list lifetime. Versions never
   * repeat or go back, across restarts and processes (the version is the table's primary key).
   */
  async publishTrustList(nowS: number): Promise<TrustList> {
    const root = await this.active('root');
    const roots = await this.rootKeys();
    return retryOnDuplicate(() =>
      this.#db.tx(async (q) => {
        const last = await q.one('SELECT MAX(version) AS v FROM trust_lists');
        const version = (last === undefined || last.v === null ? 0 : int(last, 'v')) + 1;
        const rows = await q.all(
          `SELECT ${INFO_COLUMNS} FROM platform_keys WHERE role <> 'root' AND state IN ${LISTED_STATES} ORDER BY key_id`,
        );
        const keys: TrustedKey[] = rows.map(keyInfo).map((k) => ({
          keyId: k.keyId,
          role: k.role as KeyRole,
          suite: k.suite,
          notBefore: k.notBefore,
          notAfter: k.notAfter,
          publicKey: k.publicKey,
        }));
        const body = {
          listVersion: version,
          issuedAt: nowS,
          expiresAt: nowS + this.#listLifetimeS,
          rootKeyId: root.keyId,
          rootSuite: root.suite,
          keys,
        };
        const list = await signTrustList(body, root.signer);
        // What every terminal will do with it, done once here: a list that would be refused is never stored.
        await verifyTrustList(decodeTrustList(list.bytes), roots, this.#crypto, nowS);
        await q.run('INSERT INTO trust_lists (version, bytes, issued_at, expires_at) VALUES (?, ?, ?, ?)', [
          version,
          list.bytes,
          nowS,
          body.expiresAt,
        ]);
        await q.run(
          `UPDATE platform_keys SET listed_in_version = ? WHERE listed_in_version IS NULL AND role <> 'root' AND state IN ${LISTED_STATES}`,
          [version],
        );
        return list;
      }),
    );
  }

  /** Publishes a new version when the current one is past half its life (call it from a timer). */
  async refreshTrustList(nowS: number): Promise<TrustList> {
    const current = await this.currentTrustList();
    if (nowS < current.issuedAt + Math.floor((current.expiresAt - current.issuedAt) / 2)) return current;
    return this.publishTrustList(nowS);
  }

  /** The newest published trust list. */
  async currentTrustList(): Promise<TrustList> {
    const row = await this.#db.one('SELECT bytes FROM trust_lists ORDER BY version DESC LIMIT 1');
    if (row === undefined) throw new ApiError('unavailable', 'no trust list published yet');
    return decodeTrustList(bytesOf(row, 'bytes'));
  }

  /** The newest trust list as the HTTP layer serves it (context.ts TrustListSource). */
  async current(): Promise<{ version: number; bytes: Uint8Array }> {
    const t = await this.currentTrustList();
    return { version: t.listVersion, bytes: t.bytes };
  }

  /** Same as rootKeys (context.ts TrustListSource). */
  roots(): Promise<RootKey[]> {
    return this.rootKeys();
  }

  /**
   * Rotation step 1: makes a pending key for the role and publishes a trust list that lists it.
   * Nothing signs with it until `activatePending`. ApiError(conflict) if one is already pending.
   */
  async rotate(role: KeyRole, nowS: number): Promise<{ key: KeyInfo; trustList: TrustList }> {
    if ((role as StoreRole) === 'root')
      throw new ApiError('conflict', 'the root is not rotated here: pin a new root in every terminal first');
    const made = await this.#make(role, nowS, 'pending');
    const keyId = await retryOnDuplicate(() =>
      this.#db.tx(async (q) => {
        if ((await q.one("SELECT key_id FROM platform_keys WHERE role = ? AND state = 'pending'", [role])) !== undefined) {
          throw new ApiError('conflict', `a ${role} key is already pending: activate it first`);
        }
        return insertKey(q, made);
      }),
    );
    const trustList = await this.publishTrustList(nowS);
    return { key: await this.#info(keyId), trustList };
  }

  /**
   * The earliest time the pending key of a role may be activated: when every trust list published
   * before the one that first listed it has expired (so every terminal still working holds it).
   */
  async activationTime(role: KeyRole): Promise<number> {
    const p = await this.#db.one(`SELECT ${INFO_COLUMNS} FROM platform_keys WHERE role = ? AND state = 'pending'`, [role]);
    if (p === undefined) throw new ApiError('conflict', `no ${role} key is pending: rotate first`);
    const k = keyInfo(p);
    if (k.listedInVersion === null) throw new ApiError('conflict', `the pending ${role} key ${k.keyId} is not published yet`);
    const before = await this.#db.one('SELECT MAX(expires_at) AS t FROM trust_lists WHERE version < ?', [k.listedInVersion]);
    return before === undefined || before.t === null ? k.createdAt : int(before, 't');
  }

  /**
   * Rotation step 2: the pending key becomes active, the active one retired (see the file comment
   * for its new not_after), and a new trust list is published. Refused before `activationTime`
   * unless `force` (an emergency: terminals with older lists then refuse the new key's objects).
   */
  async activatePending(
    role: KeyRole,
    nowS: number,
    options: { readonly force?: boolean } = {},
  ): Promise<{ active: KeyInfo; retired: KeyInfo | undefined; trustList: TrustList }> {
    const earliest = await this.activationTime(role);
    if (nowS < earliest && options.force !== true) {
      throw new ApiError(
        'conflict',
        `the new ${role} key may be used from ${earliest}, when the last trust list without it expires`,
        earliest - nowS,
      );
    }
    const retireUntil = nowS + SIGNED_LIFETIME_MAX_S[role] + RETIRE_MARGIN_S;
    const ids = await this.#db.tx(async (q) => {
      const pending = await q.one("SELECT key_id FROM platform_keys WHERE role = ? AND state = 'pending'", [role]);
      if (pending === undefined) throw new ApiError('conflict', `no ${role} key is pending`);
      const old = await q.one("SELECT key_id, not_after FROM platform_keys WHERE role = ? AND state = 'active'", [role]);
      if (old !== undefined) {
        const notAfter = Math.min(int(old, 'not_after'), retireUntil);
        await q.run(
          "UPDATE platform_keys SET state = 'retired', retired_at = ?, not_after = ?, sealed_private_key = NULL WHERE key_id = ?",
          [nowS, notAfter, int(old, 'key_id')],
        );
      }
      await q.run("UPDATE platform_keys SET state = 'active', activated_at = ? WHERE key_id = ?", [nowS, int(pending, 'key_id')]);
      return { active: int(pending, 'key_id'), retired: old === undefined ? undefined : int(old, 'key_id') };
    });
    if (ids.retired !== undefined) this.#signers.delete(ids.retired);
    const trustList = await this.publishTrustList(nowS);
    return {
      active: await this.#info(ids.active),
      retired: ids.retired === undefined ? undefined : await this.#info(ids.retired),
      trustList,
    };
  }

  /**
   * Rotation step 3: every retired key whose not_after has passed (nothing it signed is valid any
   * more) becomes `removed`, and leaves the next published list. Returns the ids removed; publish
   * a new list afterwards when it is not empty.
   */
  async prune(nowS: number): Promise<number[]> {
    return this.#db.tx(async (q) => {
      const rows = await q.all("SELECT key_id FROM platform_keys WHERE state = 'retired' AND not_after <= ? ORDER BY key_id", [nowS]);
      await q.run(
        "UPDATE platform_keys SET state = 'removed', removed_at = ?, sealed_private_key = NULL WHERE state = 'retired' AND not_after <= ?",
        [nowS, nowS],
      );
      return rows.map((r) => int(r, 'key_id'));
    });
  }

  async #info(keyId: number): Promise<KeyInfo> {
    const row = await this.#db.one(`SELECT ${INFO_COLUMNS} FROM platform_keys WHERE key_id = ?`, [keyId]);
    if (row === undefined) throw new KeyStoreError('corrupt_key', `key ${keyId} vanished`);
    return keyInfo(row);
  }
}

interface NewKey {
  readonly role: StoreRole;
  readonly suite: SuiteName;
  readonly publicKey: Uint8Array;
  readonly sealed: Uint8Array;
  readonly notBefore: number;
  readonly notAfter: number;
  readonly state: 'active' | 'pending';
  readonly createdAt: number;
}

/**
 * Key ids and list versions are "the largest so far plus one", read and written in one
 * transaction; two API processes doing it at once on PostgreSQL can collide on the primary key.
 * The loser simply runs again (it then reads the winner's row).
 */
async function retryOnDuplicate<T>(fn: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (e) {
      if (!(e instanceof StorageConstraintError && e.kind === 'unique') || attempt >= 3) throw e;
    }
  }
}

/** Inserts a key under the next id (ids only grow: removed keys keep their rows). */
async function insertKey(q: Queryable, k: NewKey): Promise<number> {
  const last = await q.one('SELECT MAX(key_id) AS id FROM platform_keys');
  const keyId = (last === undefined || last.id === null ? 0 : int(last, 'id')) + 1;
  if (keyId > KEY_ID_MAX) throw new KeyStoreError('key_ids_exhausted');
  await q.run(
    `INSERT INTO platform_keys (key_id, role, suite, public_key, sealed_private_key, not_before, not_after, state, created_at, activated_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    [
      keyId,
      k.role,
      k.suite,
      k.publicKey,
      k.sealed,
      k.notBefore,
      k.notAfter,
      k.state,
      k.createdAt,
      k.state === 'active' ? k.createdAt : null,
    ],
  );
  return keyId;
}
