/**
 * Who is calling (DESIGN §12): staff and account holders sign in with a password and get a session
 * token; terminals sign every request with their certified key and have no session.
 *
 * - Passwords: argon2id (@node-rs/argon2) at OWASP's first recommended setting, m = 19 MiB, t = 2,
 *   p = 1; the library compares in constant time. Hashes made with weaker settings are upgraded at
 *   the next successful sign-in. A sign-in for an unknown account costs the same hash, so timing
 *   does not tell which accounts exist.
 * - Sessions: an opaque 32-byte random token (base64url) given once to the caller; only its SHA-256
 *   is stored, so a copy of the database signs no one in. Each session has an absolute lifetime and
 *   an idle limit; logout, a password change or a disabled account revokes it.
 * - Throttling, persisted in the database (a restart or another API process does not reset it):
 *   per account and per client address (IPv6 by /64). Every attempt is counted BEFORE the password
 *   is checked, so a burst of parallel guesses cannot all slip in under the limit; a success takes
 *   its own count back. From the LOGIN_FAILURES_FREE-th failure on, the key is locked for
 *   2^k seconds (k = 1, 2, ...), at most LOCKOUT_MAX_S; a locked key is answered
 *   `too_many_attempts` with `retryAfterS` and its password is not even checked.
 * - Terminal requests: the headers of protocol/request-auth.ts, checked against the terminal's
 *   certified key (TerminalKeys, implemented by the terminal registry), within ±300 s of the
 *   platform clock, and never twice: the digest of every accepted request is kept in the database
 *   (table terminal_request_replay) until its time window has passed, so several API processes
 *   over one PostgreSQL share one replay cache.
 *
 * Errors (ApiError codes), so the HTTP layer and terminals can tell them apart:
 *   no or unknown bearer token, expired / revoked / idle session ...... unauthenticated (401)
 *   wrong account or password ......................................... bad_credentials (401)
 *   correct password, disabled staff account ............................ account_blocked (403)
 *   too many failures ................................................... too_many_attempts (429)
 *   terminal headers missing, unknown terminal, time outside ±300 s ..... unauthenticated (401)
 *   terminal headers malformed (not canonical decimal / base64url) ..... bad_request (400)
 *   terminal not active (pending or revoked) ............................ forbidden (403)
 *   signature does not verify (wrong key, tampered method/path/body) .. bad_signature (401)
 *   the same signed request seen before ................................. conflict (409)
 */
import { randomBytes } from 'node:crypto';
import { isIPv4, isIPv6 } from 'node:net';
import { hash as argon2Hash, verify as argon2Verify, parseOptions } from '@node-rs/argon2';
import {
  base64urlDecode,
  base64urlEncode,
  type CryptoProvider,
  type HeaderBag,
  hasRequestAuthHeaders,
  isProtocolError,
  parseRequestAuthHeaders,
  REQUEST_HEADER,
  REQUEST_TIME_WINDOW_S,
  type SignedRequestHeaders,
  type SuiteName,
  verifyRequestSignature,
} from '@duet/protocol';
import type { Authenticator, Principal, StaffRole } from './context.js';
import type { Db, Dialect, Migration, Queryable, Row } from './db/db.js';
import { ApiError } from './errors.js';

const HOUR_S = 3_600;
const DAY_S = 86_400;

// ---------------------------------------------------------------------------------------------
// Limits

/** argon2id at OWASP's password storage cheat sheet setting: 19 MiB, 2 passes, 1 lane. */
export const ARGON2_OPTIONS = { algorithm: 2, memoryCost: 19_456, timeCost: 2, parallelism: 1, outputLen: 32 } as const;
/** Staff hold money-moving roles: 12 characters at least (NIST SP 800-63B allows 8 with throttling; staff get more). */
export const STAFF_PASSWORD_MIN_CHARS = 12;
/** Holders (students) sign in on phones: 8 characters, NIST SP 800-63B's floor with throttling in place. */
export const HOLDER_PASSWORD_MIN_CHARS = 8;
/** Longest password in UTF-8 bytes: a passphrase fits; bounds the work a hash does on one request. */
export const PASSWORD_MAX_BYTES = 1_024;
/** Staff user names: lower-case letters, digits and . _ -, 3 to 64 characters (safe in logs and URLs). */
export const USERNAME_PATTERN = /^[a-z0-9][a-z0-9._-]{2,63}$/;

/** Session tokens: 256 random bits, as base64url (43 characters). */
export const SESSION_TOKEN_BYTES = 32;
/** A staff session lasts one working day at most, and ends after 30 idle minutes (OWASP session guidance). */
export const STAFF_SESSION_MAX_S = 12 * HOUR_S;
export const STAFF_SESSION_IDLE_S = 30 * 60;
/** A holder's wallet stays signed in for 30 days, or a week unused: it renews credentials in the background. */
export const HOLDER_SESSION_MAX_S = 30 * DAY_S;
export const HOLDER_SESSION_IDLE_S = 7 * DAY_S;
/** last_used_at is written at most once a minute per session, so reads do not all turn into writes. */
const SESSION_TOUCH_S = 60;

/** Failures an account may have before the lockout starts (OWASP: a small number such as 5). */
export const LOGIN_FAILURES_FREE = 5;
/**
 * Failures one client address may have: higher, because a whole campus may reach us through one
 * NAT address and one person's typos must not lock out everyone behind it.
 */
export const ADDRESS_FAILURES_FREE = 20;
/** The longest lockout: 15 minutes, so an attacker gets about 100 guesses a day per account, and a person is never locked out for long. */
export const LOCKOUT_MAX_S = 15 * 60;
/** A key with no failure for a day starts again from zero. */
export const THROTTLE_FORGET_S = DAY_S;

/** Accepted terminal request digests are kept this long past their window, for clock differences between processes. */
const REPLAY_KEEP_EXTRA_S = REQUEST_TIME_WINDOW_S;

// ---------------------------------------------------------------------------------------------
// Types

export const STAFF_ROLES = ['operator_admin', 'school_finance', 'merchant'] as const satisfies readonly StaffRole[];
export type { Principal, StaffRole };

export type TerminalStatus = 'pending' | 'active' | 'revoked';

/**
 * The terminal registry's answer for a terminal id: the suite and public key of its CURRENT
 * certificate, and its status. Only `active` terminals may call.
 */
export interface TerminalKeys {
  publicKey(
    terminalId: number,
  ): Promise<
    { readonly suite: SuiteName; readonly publicKey: Uint8Array; readonly status: TerminalStatus; readonly merchantId: number } | undefined
  >;
}

export interface Session {
  /** Give to the caller once; only its hash is kept. */
  readonly token: string;
  readonly expiresAt: number;
  readonly principal: Principal;
}

// ---------------------------------------------------------------------------------------------
// Schema

export const authMigrations: Migration[] = [
  {
    id: 'auth/001-accounts-sessions-throttle-replay',
    sql: (d: Dialect) => [
      `CREATE TABLE staff_accounts (
        id ${d.serialKey},
        username TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL CHECK (role IN ('operator_admin', 'school_finance', 'merchant')),
        merchant_id ${d.int},
        password_hash TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
        created_at ${d.int} NOT NULL,
        password_changed_at ${d.int} NOT NULL,
        CHECK ((role = 'merchant' AND merchant_id IS NOT NULL) OR (role <> 'merchant' AND merchant_id IS NULL))
      )`,
      // One row per holder with a password; holder_id is holders.id (no foreign key, so the two
      // migrations apply in either order).
      `CREATE TABLE holder_passwords (
        holder_id ${d.int} PRIMARY KEY,
        password_hash TEXT NOT NULL,
        changed_at ${d.int} NOT NULL
      )`,
      `CREATE TABLE sessions (
        token_hash ${d.bytes} PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('staff', 'holder')),
        subject_id ${d.int} NOT NULL,
        created_at ${d.int} NOT NULL,
        expires_at ${d.int} NOT NULL,
        last_used_at ${d.int} NOT NULL,
        revoked_at ${d.int}
      )`,
      'CREATE INDEX sessions_subject ON sessions (kind, subject_id)',
      'CREATE INDEX sessions_expiry ON sessions (expires_at)',
      // throttle_key: "staff:<username>", "holder:<id>" or "addr:<address>".
      `CREATE TABLE login_throttle (
        throttle_key TEXT PRIMARY KEY,
        failures ${d.int} NOT NULL,
        locked_until ${d.int} NOT NULL,
        last_failure_at ${d.int} NOT NULL
      )`,
      `CREATE TABLE terminal_request_replay (
        digest ${d.bytes} PRIMARY KEY,
        terminal_id ${d.int} NOT NULL,
        expires_at ${d.int} NOT NULL
      )`,
      'CREATE INDEX terminal_request_replay_expiry ON terminal_request_replay (terminal_id, expires_at)',
    ],
  },
];

// ---------------------------------------------------------------------------------------------
// Rows

function int(row: Row, col: string): number {
  const v = row[col];
  const n = typeof v === 'string' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isSafeInteger(n)) throw new ApiError('internal', `${col}: not an integer`);
  return n;
}

function str(row: Row, col: string): string {
  const v = row[col];
  if (typeof v !== 'string') throw new ApiError('internal', `${col}: not text`);
  return v;
}

// ---------------------------------------------------------------------------------------------
// Passwords

/** NFKC, so the same password typed on two keyboards (full-width vs half-width) is the same (NIST SP 800-63B). */
function normalisePassword(password: string): string {
  return password.normalize('NFKC');
}

function checkNewPassword(password: string, minChars: number): string {
  const p = normalisePassword(password);
  if ([...p].length < minChars) throw new ApiError('validation_failed', `the password needs at least ${minChars} characters`);
  if (Buffer.byteLength(p, 'utf8') > PASSWORD_MAX_BYTES)
    throw new ApiError('validation_failed', `the password is over ${PASSWORD_MAX_BYTES} bytes`);
  return p;
}

/** An argon2id hash in PHC form ($argon2id$v=19$m=19456,t=2,p=1$salt$hash). */
export function hashPassword(password: string): Promise<string> {
  return argon2Hash(normalisePassword(password), ARGON2_OPTIONS);
}

/** True when the password matches; false for a wrong one or an unreadable hash. */
export async function verifyPassword(hash: string, password: string): Promise<boolean> {
  const p = normalisePassword(password);
  if (Buffer.byteLength(p, 'utf8') > PASSWORD_MAX_BYTES) return false;
  try {
    return await argon2Verify(hash, p);
  } catch {
    return false;
  }
}

/** True when a stored hash is weaker than ARGON2_OPTIONS (it is re-made at the next sign-in). */
export function needsRehash(hash: string): boolean {
  try {
    const o = parseOptions(hash);
    return (
      o.algorithm !== ARGON2_OPTIONS.algorithm ||
      o.memoryCost < ARGON2_OPTIONS.memoryCost ||
      o.timeCost < ARGON2_OPTIONS.timeCost ||
      o.outputLen < ARGON2_OPTIONS.outputLen
    );
  } catch {
    return true;
  }
}

let dummyHash: Promise<string> | undefined;
/** A hash of nothing anyone knows, checked for unknown accounts so they take as long as known ones. */
function dummy(): Promise<string> {
  dummyHash ??= argon2Hash(randomBytes(16).toString('base64url'), ARGON2_OPTIONS);
  return dummyHash;
}

// ---------------------------------------------------------------------------------------------
// Accounts

function normaliseUsername(username: string): string {
  return username.normalize('NFKC').toLowerCase();
}

export interface NewStaff {
  readonly username: string;
  readonly password: string;
  readonly role: StaffRole;
  /** Required for merchant staff, absent (null) for the others. */
  readonly merchantId: number | null;
}

export async function createStaff(db: Db, s: NewStaff, nowS: number): Promise<{ id: number }> {
  const username = normaliseUsername(s.username);
  if (!USERNAME_PATTERN.test(username)) throw new ApiError('validation_failed', 'user name: 3-64 of a-z 0-9 . _ -');
  if (!STAFF_ROLES.includes(s.role)) throw new ApiError('validation_failed', `role ${String(s.role)}`);
  if ((s.role === 'merchant') !== (s.merchantId !== null))
    throw new ApiError('validation_failed', 'merchant staff, and only they, have a merchant id');
  const hash = await hashPassword(checkNewPassword(s.password, STAFF_PASSWORD_MIN_CHARS));
  return db.tx(async (q) => {
    if ((await q.one('SELECT id FROM staff_accounts WHERE username = ?', [username])) !== undefined) {
      throw new ApiError('conflict', `user name ${username} is taken`);
    }
    const row = await q.one(
      `INSERT INTO staff_accounts (username, role, merchant_id, password_hash, status, created_at, password_changed_at)
       VALUES (?, ?, ?, ?, 'active', ?, ?) RETURNING id`,
      [username, s.role, s.merchantId, hash, nowS, nowS],
    );
    if (row === undefined) throw new ApiError('internal', 'staff insert returned nothing');
    return { id: int(row, 'id') };
  });
}

/** Sets a staff password and signs the account out everywhere. */
export async function setStaffPassword(db: Db, staffId: number, password: string, nowS: number): Promise<void> {
  const hash = await hashPassword(checkNewPassword(password, STAFF_PASSWORD_MIN_CHARS));
  await db.tx(async (q) => {
    const n = await q.run('UPDATE staff_accounts SET password_hash = ?, password_changed_at = ? WHERE id = ?', [hash, nowS, staffId]);
    if (n === 0) throw new ApiError('not_found', `staff ${staffId}`);
    await revokeSessions(q, 'staff', staffId, nowS);
  });
}

/** Disables (signing the account out everywhere) or re-enables a staff account. */
export async function setStaffStatus(db: Db, staffId: number, status: 'active' | 'disabled', nowS: number): Promise<void> {
  await db.tx(async (q) => {
    const n = await q.run('UPDATE staff_accounts SET status = ? WHERE id = ?', [status, staffId]);
    if (n === 0) throw new ApiError('not_found', `staff ${staffId}`);
    if (status === 'disabled') await revokeSessions(q, 'staff', staffId, nowS);
  });
}

/** Sets a holder's password (first one, or a change) and signs the holder out everywhere. */
export async function setHolderPassword(db: Db, holderId: number, password: string, nowS: number): Promise<void> {
  if (!Number.isSafeInteger(holderId) || holderId < 1) throw new ApiError('validation_failed', `holder id ${holderId}`);
  const hash = await hashPassword(checkNewPassword(password, HOLDER_PASSWORD_MIN_CHARS));
  await db.tx(async (q) => {
    await q.run(
      `INSERT INTO holder_passwords (holder_id, password_hash, changed_at) VALUES (?, ?, ?)
       ON CONFLICT (holder_id) DO UPDATE SET password_hash = excluded.password_hash, changed_at = excluded.changed_at`,
      [holderId, hash, nowS],
    );
    await revokeSessions(q, 'holder', holderId, nowS);
  });
}

// ---------------------------------------------------------------------------------------------
// Throttling

/**
 * The throttle key of a client address: IPv4 as is (an IPv4-mapped IPv6 address as its IPv4), IPv6
 * by its /64, since one subscriber usually holds a whole /64.
 */
export function addressKey(address: string): string {
  const a = address.trim().toLowerCase();
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (mapped?.[1] !== undefined && isIPv4(mapped[1])) return `addr:${mapped[1]}`;
  if (isIPv4(a)) return `addr:${a}`;
  if (isIPv6(a)) return `addr:${ipv6Prefix64(a)}::/64`;
  // Unknown forms (a test harness, a socket path) are throttled as themselves, bounded in length.
  return `addr:${a.slice(0, 64)}`;
}

function ipv6Prefix64(a: string): string {
  const [head = '', tail] = a.split('::');
  const h = head === '' ? [] : head.split(':');
  const t = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return groups
    .slice(0, 4)
    .map((g) => Number.parseInt(g, 16).toString(16))
    .join(':');
}

/** The lockout after `failures` failures on a key allowed `free` of them. */
export function lockoutS(failures: number, free: number): number {
  if (failures < free) return 0;
  return Math.min(LOCKOUT_MAX_S, 2 ** Math.min(30, failures - free + 1));
}

interface ThrottleKey {
  readonly key: string;
  readonly free: number;
}

/**
 * Counts an attempt on every key before the password is checked, or refuses it if a key is locked.
 * One transaction, so parallel attempts are counted one by one.
 */
async function reserveAttempt(db: Db, keys: readonly ThrottleKey[], nowS: number): Promise<void> {
  const retryAfterS = await db.tx(async (q) => {
    let wait = 0;
    const next: { key: string; failures: number; lockedUntil: number }[] = [];
    for (const k of keys) {
      const r = await q.one('SELECT failures, locked_until, last_failure_at FROM login_throttle WHERE throttle_key = ?', [k.key]);
      const fresh = r === undefined || nowS - int(r, 'last_failure_at') >= THROTTLE_FORGET_S;
      const failures = fresh ? 0 : int(r, 'failures');
      const lockedUntil = fresh ? 0 : int(r, 'locked_until');
      if (lockedUntil > nowS) wait = Math.max(wait, lockedUntil - nowS);
      next.push({ key: k.key, failures: failures + 1, lockedUntil: nowS + lockoutS(failures + 1, k.free) });
    }
    if (wait > 0) return wait;
    for (const n of next) {
      await q.run(
        `INSERT INTO login_throttle (throttle_key, failures, locked_until, last_failure_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (throttle_key) DO UPDATE SET failures = excluded.failures, locked_until = excluded.locked_until, last_failure_at = excluded.last_failure_at`,
        [n.key, n.failures, n.lockedUntil, nowS],
      );
    }
    return 0;
  });
  if (retryAfterS > 0) throw new ApiError('too_many_attempts', `retry in ${retryAfterS} s`, retryAfterS);
}

/** A successful sign-in: the account starts again from zero; the address takes back this attempt. */
async function releaseAttempt(db: Db, account: ThrottleKey, address: ThrottleKey): Promise<void> {
  await db.tx(async (q) => {
    await q.run('DELETE FROM login_throttle WHERE throttle_key = ?', [account.key]);
    const r = await q.one('SELECT failures, locked_until FROM login_throttle WHERE throttle_key = ?', [address.key]);
    if (r === undefined) return;
    const failures = Math.max(0, int(r, 'failures') - 1);
    const lockedUntil = failures < address.free ? 0 : int(r, 'locked_until');
    await q.run('UPDATE login_throttle SET failures = ?, locked_until = ? WHERE throttle_key = ?', [failures, lockedUntil, address.key]);
  });
}

/** Runs one sign-in attempt under the throttle: `check` verifies the password and returns the subject, or undefined. */
async function throttled<T>(db: Db, accountKey: string, address: string, nowS: number, check: () => Promise<T | undefined>): Promise<T> {
  const account = { key: accountKey, free: LOGIN_FAILURES_FREE };
  const addr = { key: addressKey(address), free: ADDRESS_FAILURES_FREE };
  await reserveAttempt(db, [account, addr], nowS);
  const subject = await check();
  if (subject === undefined) throw new ApiError('bad_credentials');
  await releaseAttempt(db, account, addr);
  return subject;
}

// ---------------------------------------------------------------------------------------------
// Sessions

async function openSession(
  db: Queryable,
  crypto: CryptoProvider,
  principal: Principal & { kind: 'staff' | 'holder' },
  nowS: number,
): Promise<Session> {
  const raw = crypto.randomBytes(SESSION_TOKEN_BYTES);
  const token = base64urlEncode(raw);
  const expiresAt = nowS + (principal.kind === 'staff' ? STAFF_SESSION_MAX_S : HOLDER_SESSION_MAX_S);
  await db.run('INSERT INTO sessions (token_hash, kind, subject_id, created_at, expires_at, last_used_at) VALUES (?, ?, ?, ?, ?, ?)', [
    crypto.sha256(raw),
    principal.kind,
    principal.id,
    nowS,
    expiresAt,
    nowS,
  ]);
  return { token, expiresAt, principal };
}

/** The stored hash of a token, or undefined when it is not one of ours in form. */
function tokenHash(crypto: CryptoProvider, token: string): Uint8Array | undefined {
  if (token.length !== Math.ceil((SESSION_TOKEN_BYTES * 4) / 3)) return undefined;
  try {
    return crypto.sha256(base64urlDecode(token, SESSION_TOKEN_BYTES, 'token'));
  } catch {
    return undefined;
  }
}

async function staffPrincipal(q: Queryable, where: string, param: number | string): Promise<(Principal & { kind: 'staff' }) | undefined> {
  const r = await q.one(`SELECT id, username, role, merchant_id FROM staff_accounts WHERE ${where} = ? AND status = 'active'`, [param]);
  if (r === undefined) return undefined;
  const role = STAFF_ROLES.find((x) => x === r.role);
  if (role === undefined) throw new ApiError('internal', `staff role ${String(r.role)}`);
  return {
    kind: 'staff',
    id: int(r, 'id'),
    username: str(r, 'username'),
    role,
    merchantId: r.merchant_id === null ? null : int(r, 'merchant_id'),
  };
}

/** Signs a staff member in; returns a new session. */
export async function loginStaff(
  db: Db,
  crypto: CryptoProvider,
  username: string,
  password: string,
  address: string,
  nowS: number,
): Promise<Session> {
  const name = normaliseUsername(username).slice(0, 64);
  const principal = await throttled(db, `staff:${name}`, address, nowS, async () => {
    const row = await db.one('SELECT id, password_hash, status FROM staff_accounts WHERE username = ?', [name]);
    const hash = row === undefined ? await dummy() : str(row, 'password_hash');
    if (!(await verifyPassword(hash, password)) || row === undefined) return undefined;
    if (row.status !== 'active') throw new ApiError('account_blocked', 'this staff account is disabled');
    if (needsRehash(hash))
      await db.run('UPDATE staff_accounts SET password_hash = ? WHERE id = ?', [await hashPassword(password), int(row, 'id')]);
    return staffPrincipal(db, 'id', int(row, 'id'));
  });
  return openSession(db, crypto, principal, nowS);
}

/** Signs a holder in by holder id; returns a new session. A blocked holder may still sign in, to see why (DESIGN §16). */
export async function loginHolder(
  db: Db,
  crypto: CryptoProvider,
  holderId: number,
  password: string,
  address: string,
  nowS: number,
): Promise<Session> {
  const id = Number.isSafeInteger(holderId) && holderId > 0 ? holderId : 0;
  const principal = await throttled(db, `holder:${id}`, address, nowS, async () => {
    const row = await db.one('SELECT password_hash FROM holder_passwords WHERE holder_id = ?', [id]);
    const hash = row === undefined ? await dummy() : str(row, 'password_hash');
    if (!(await verifyPassword(hash, password)) || row === undefined) return undefined;
    if (needsRehash(hash))
      await db.run('UPDATE holder_passwords SET password_hash = ? WHERE holder_id = ?', [await hashPassword(password), id]);
    return { kind: 'holder', id } as const;
  });
  return openSession(db, crypto, principal, nowS);
}

/**
 * The principal a session token stands for at `nowS`, or undefined when the token is unknown,
 * revoked, expired, idle too long, or its staff account was disabled. Staff get their CURRENT role.
 */
export async function sessionPrincipal(db: Db, crypto: CryptoProvider, token: string, nowS: number): Promise<Principal | undefined> {
  const h = tokenHash(crypto, token);
  if (h === undefined) return undefined;
  const s = await db.one('SELECT kind, subject_id, expires_at, last_used_at, revoked_at FROM sessions WHERE token_hash = ?', [h]);
  if (s === undefined || s.revoked_at !== null || nowS >= int(s, 'expires_at')) return undefined;
  const idle = s.kind === 'staff' ? STAFF_SESSION_IDLE_S : HOLDER_SESSION_IDLE_S;
  const lastUsed = int(s, 'last_used_at');
  if (nowS - lastUsed >= idle) return undefined;
  const subject = int(s, 'subject_id');
  const principal: Principal | undefined = s.kind === 'staff' ? await staffPrincipal(db, 'id', subject) : { kind: 'holder', id: subject };
  if (principal !== undefined && nowS - lastUsed >= SESSION_TOUCH_S) {
    await db.run('UPDATE sessions SET last_used_at = ? WHERE token_hash = ? AND last_used_at < ?', [nowS, h, nowS]);
  }
  return principal;
}

/** `Authorization: Bearer <token>` → the principal, or ApiError(unauthenticated). */
export async function authenticateBearer(
  db: Db,
  crypto: CryptoProvider,
  authorization: string | readonly string[] | undefined,
  nowS: number,
): Promise<Principal> {
  const m = typeof authorization === 'string' ? /^Bearer ([A-Za-z0-9_-]{1,200})$/.exec(authorization.trim()) : null;
  const principal = m?.[1] === undefined ? undefined : await sessionPrincipal(db, crypto, m[1], nowS);
  if (principal === undefined) throw new ApiError('unauthenticated');
  return principal;
}

/** Ends one session (logout). Unknown tokens are ignored: logging out twice is not an error. */
export async function logout(db: Db, crypto: CryptoProvider, token: string, nowS: number): Promise<void> {
  const h = tokenHash(crypto, token);
  if (h !== undefined) await db.run('UPDATE sessions SET revoked_at = ? WHERE token_hash = ? AND revoked_at IS NULL', [nowS, h]);
}

/** Ends every session of an account (password change, disabled account). */
export async function revokeSessions(q: Queryable, kind: 'staff' | 'holder', subjectId: number, nowS: number): Promise<number> {
  return q.run('UPDATE sessions SET revoked_at = ? WHERE kind = ? AND subject_id = ? AND revoked_at IS NULL', [nowS, kind, subjectId]);
}

/** Throws ApiError(forbidden) unless the principal is staff with one of the roles. */
export function requireStaffRole(p: Principal | undefined, roles: readonly StaffRole[]): Principal & { kind: 'staff' } {
  if (p?.kind !== 'staff' || !roles.includes(p.role)) throw new ApiError('forbidden');
  return p;
}

// ---------------------------------------------------------------------------------------------
// Terminals

export interface SignedHttpRequest {
  readonly method: string;
  /** The request target exactly as sent: path and query (Node's req.url). */
  readonly path: string;
  readonly headers: HeaderBag;
  /** The raw body bytes as received (empty for none). */
  readonly body: Uint8Array;
}

function parseTerminalHeaders(headers: HeaderBag): SignedRequestHeaders {
  for (const name of Object.values(REQUEST_HEADER)) {
    if (headers[name] === undefined) throw new ApiError('unauthenticated', `header ${name} is missing`);
  }
  try {
    return parseRequestAuthHeaders(headers);
  } catch (e) {
    if (isProtocolError(e)) throw new ApiError('bad_request', e.detail);
    throw e;
  }
}

/**
 * Authenticates a terminal's signed request: canonical headers, time within ±300 s of `nowS`, an
 * active terminal, a signature under its certified key over method, path, time, id and body, and
 * a request not seen before. Returns the terminal principal, or throws ApiError (see the table at
 * the top of this file).
 */
/**
 * Where signed-request digests are remembered for the replay window. The database store is shared
 * by every process; the memory store costs no write, which matters on the online-authorization hot
 * path, and is safe because every terminal route is replay-safe by itself (an authorization spends a
 * single-use code, uploads are idempotent, list reads change nothing): the replay check is a second
 * line of defence, so a replay sent to another process is harmless.
 */
export interface ReplayStore {
  /** True if the digest was new (and is now remembered until expiresAtS), false if seen before. */
  remember(db: Db, digest: Uint8Array, terminalId: number, expiresAtS: number, nowS: number): Promise<boolean>;
}

export const databaseReplayStore: ReplayStore = {
  async remember(db, digest, terminalId, expiresAtS, nowS) {
    const fresh = await db.run(
      'INSERT INTO terminal_request_replay (digest, terminal_id, expires_at) VALUES (?, ?, ?) ON CONFLICT (digest) DO NOTHING',
      [digest, terminalId, expiresAtS],
    );
    // Housekeeping on about one request in 16 (the digest is uniformly random), so the hot path
    // usually costs one write; a terminal's stale digests are still cleared within a few requests.
    if (fresh !== 0 && ((digest[0] as number) & 0x0f) === 0) {
      await db.run('DELETE FROM terminal_request_replay WHERE terminal_id = ? AND expires_at < ?', [
        terminalId,
        nowS - REPLAY_KEEP_EXTRA_S,
      ]);
    }
    return fresh !== 0;
  },
};

/** Digests remembered in this process: at most this many (about 3 minutes at 10,000 requests/s within the window). */
export const MEMORY_REPLAY_ENTRIES_MAX = 2_000_000;

export function memoryReplayStore(max = MEMORY_REPLAY_ENTRIES_MAX): ReplayStore {
  const seen = new Map<string, number>();
  return {
    async remember(_db, digest, _terminalId, expiresAtS, nowS) {
      const key = Buffer.from(digest).toString('base64');
      const until = seen.get(key);
      if (until !== undefined && until >= nowS) return false;
      if (seen.size >= max) {
        for (const [k, t] of seen) {
          if (t < nowS || seen.size >= max) seen.delete(k);
          if (seen.size < max * 0.9) break;
        }
      }
      seen.set(key, expiresAtS);
      return true;
    },
  };
}

export async function verifyTerminalRequest(
  db: Db,
  terminals: TerminalKeys,
  crypto: CryptoProvider,
  req: SignedHttpRequest,
  nowS: number,
  replay: ReplayStore = databaseReplayStore,
  opts: { readonly revokedMayCall?: boolean } = {},
): Promise<Principal & { kind: 'terminal' }> {
  const h = parseTerminalHeaders(req.headers);
  if (Math.abs(h.timeS - nowS) > REQUEST_TIME_WINDOW_S) {
    throw new ApiError(
      'unauthenticated',
      `request time ${h.timeS} is more than ${REQUEST_TIME_WINDOW_S} s from the platform's ${nowS}: check the terminal clock`,
    );
  }
  const key = await terminals.publicKey(h.terminalId);
  if (key === undefined) throw new ApiError('unauthenticated', `unknown terminal ${h.terminalId}`);
  // A revoked terminal may still hand in its journal (routes that say so): clearing refuses the
  // records it made after its revocation, and keeps them as evidence.
  if (key.status !== 'active' && !(key.status === 'revoked' && opts.revokedMayCall === true))
    throw new ApiError('forbidden', `terminal ${h.terminalId} is ${key.status}`);
  let digest: Uint8Array;
  try {
    digest = await verifyRequestSignature(crypto, key, h, req.method, req.path, req.body, nowS);
  } catch (e) {
    if (!isProtocolError(e)) throw e;
    throw new ApiError(e.code === 'bad_signature' ? 'bad_signature' : 'bad_request', e.detail);
  }
  // The digest is remembered only after the signature holds, so no one can spend a terminal's
  // future request by guessing it.
  if (!(await replay.remember(db, digest, h.terminalId, h.timeS + REQUEST_TIME_WINDOW_S, nowS))) {
    throw new ApiError('conflict', 'this signed request was already received: sign it again with the current time');
  }
  return { kind: 'terminal', id: h.terminalId, merchantId: key.merchantId };
}

// ---------------------------------------------------------------------------------------------
// One entry point

export interface AuthDeps {
  readonly db: Db;
  readonly crypto: CryptoProvider;
  readonly terminals: TerminalKeys;
  /** Where signed-request digests are remembered; the database by default. */
  readonly replay?: ReplayStore;
}

/**
 * Authenticates any request: a request with terminal headers must be a valid terminal request;
 * otherwise it needs a bearer session token. Throws ApiError.
 */
export function authenticate(deps: AuthDeps, req: SignedHttpRequest, nowS: number): Promise<Principal> {
  if (hasRequestAuthHeaders(req.headers)) return verifyTerminalRequest(deps.db, deps.terminals, deps.crypto, req, nowS);
  return authenticateBearer(deps.db, deps.crypto, req.headers.authorization, nowS);
}

/** Deletes what no longer matters: ended sessions, forgotten throttle rows, replay digests past their window. */
export async function pruneAuth(db: Db, nowS: number): Promise<{ sessions: number; throttle: number; replay: number }> {
  const sessions = await db.run('DELETE FROM sessions WHERE expires_at <= ? OR revoked_at IS NOT NULL', [nowS]);
  const throttle = await db.run('DELETE FROM login_throttle WHERE last_failure_at <= ? AND locked_until <= ?', [
    nowS - THROTTLE_FORGET_S,
    nowS,
  ]);
  const replay = await db.run('DELETE FROM terminal_request_replay WHERE expires_at < ?', [nowS - REPLAY_KEEP_EXTRA_S]);
  return { sessions, throttle, replay };
}

/** The HTTP layer's Authenticator (context.ts) over the functions above, with the platform clock. */
export class PlatformAuth implements Authenticator {
  constructor(private readonly deps: AuthDeps & { readonly clock: { nowMs(): number } }) {
    // Made now, so the first sign-in for an unknown account is not slower than the rest.
    void dummy();
  }

  private nowS(): number {
    return Math.floor(this.deps.clock.nowMs() / 1000);
  }

  async staffLogin(username: string, password: string, address: string): Promise<{ token: string; expiresAt: number; role: StaffRole }> {
    const s = await loginStaff(this.deps.db, this.deps.crypto, username, password, address, this.nowS());
    if (s.principal.kind !== 'staff') throw new ApiError('internal', 'staff login gave another kind');
    return { token: s.token, expiresAt: s.expiresAt, role: s.principal.role };
  }

  async holderLogin(holderId: number, password: string, address: string): Promise<{ token: string; expiresAt: number }> {
    const s = await loginHolder(this.deps.db, this.deps.crypto, holderId, password, address, this.nowS());
    return { token: s.token, expiresAt: s.expiresAt };
  }

  bearer(token: string): Promise<Principal | undefined> {
    return sessionPrincipal(this.deps.db, this.deps.crypto, token, this.nowS());
  }

  logout(token: string): Promise<void> {
    return logout(this.deps.db, this.deps.crypto, token, this.nowS());
  }

  setHolderPassword(holderId: number, password: string): Promise<void> {
    return setHolderPassword(this.deps.db, holderId, password, this.nowS());
  }

  createStaff(username: string, password: string, role: StaffRole, merchantId: number | null): Promise<{ id: number }> {
    return createStaff(this.deps.db, { username, password, role, merchantId }, this.nowS());
  }

  terminal(
    headers: HeaderBag,
    method: string,
    path: string,
    body: Uint8Array,
    opts: { readonly revokedMayCall?: boolean } = {},
  ): Promise<Principal> {
    return verifyTerminalRequest(
      this.deps.db,
      this.deps.terminals,
      this.deps.crypto,
      { method, path, headers, body },
      this.nowS(),
      this.deps.replay,
      opts,
    );
  }
}
