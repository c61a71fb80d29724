/**
 * Authentication (src/auth.ts), run against every storage backend: argon2id hashes and their
 * upgrade; staff and holder sign-in; sessions that expire, idle out and are revoked; throttling that
 * locks after five failures, grows, survives a restart and holds under a parallel burst; and
 * terminal request signatures, each way to fail with its own ApiError code.
 */
import { hash as argon2Hash } from '@node-rs/argon2';
import { type Signer, type SuiteName, signRequest } from '@duet/protocol';
import { nodeCrypto } from '@duet/protocol/node';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  ADDRESS_FAILURES_FREE,
  addressKey,
  authenticate,
  authenticateBearer,
  authMigrations,
  createStaff,
  HOLDER_SESSION_IDLE_S,
  hashPassword,
  LOCKOUT_MAX_S,
  LOGIN_FAILURES_FREE,
  lockoutS,
  loginHolder,
  loginStaff,
  logout,
  needsRehash,
  PlatformAuth,
  pruneAuth,
  requireStaffRole,
  STAFF_SESSION_IDLE_S,
  STAFF_SESSION_MAX_S,
  sessionPrincipal,
  setHolderPassword,
  setStaffPassword,
  setStaffStatus,
  type TerminalKeys,
  type TerminalStatus,
  verifyPassword,
  verifyTerminalRequest,
} from '../src/auth.js';
import type { Db } from '../src/db/db.js';
import { ApiError, type ApiErrorCode } from '../src/errors.js';
import { databases, type TestStorage } from './pg-harness.js';

const crypto = nodeCrypto();
/** 2026-03-01T00:00:00Z. */
const T0 = 1_772_323_200;
const STAFF_PASSWORD = 'canteen-ledger-2026';
const HOLDER_PASSWORD = 'noodles88';

async function apiError(p: Promise<unknown>): Promise<ApiError> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e, 'expected an ApiError').toBeInstanceOf(ApiError);
  return e as ApiError;
}

async function expectApiError(p: Promise<unknown>, code: ApiErrorCode): Promise<ApiError> {
  const e = await apiError(p);
  expect(e.code, e.message).toBe(code);
  return e;
}

/** The registry's side, faked: terminal id → certified key and status. */
class FakeTerminals implements TerminalKeys {
  readonly rows = new Map<number, { suite: SuiteName; publicKey: Uint8Array; status: TerminalStatus; merchantId: number }>();
  async publicKey(id: number) {
    return this.rows.get(id);
  }
}

describe('passwords', () => {
  it('are argon2id at m=19 MiB, t=2, p=1, and a wrong one is refused', async () => {
    const h = await hashPassword(STAFF_PASSWORD);
    expect(h).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
    expect(await verifyPassword(h, STAFF_PASSWORD)).toBe(true);
    expect(await verifyPassword(h, `${STAFF_PASSWORD}x`)).toBe(false);
    expect(await verifyPassword(h, '')).toBe(false);
    expect(await verifyPassword('not a hash', STAFF_PASSWORD)).toBe(false);
    // Two hashes of one password differ (a fresh salt each).
    expect(await hashPassword(STAFF_PASSWORD)).not.toBe(h);
    // NFKC: a full-width form of the same password is the same password.
    expect(await verifyPassword(await hashPassword('ＡＢＣ１２３４５６７８'), 'ABC12345678')).toBe(true);
  });

  it('weaker hashes are flagged for upgrade', async () => {
    expect(needsRehash(await hashPassword('x'))).toBe(false);
    expect(needsRehash(await argon2Hash('x', { memoryCost: 4096, timeCost: 1 }))).toBe(true);
    expect(needsRehash(await argon2Hash('x', { algorithm: 1, memoryCost: 19_456, timeCost: 2 }))).toBe(true);
    expect(needsRehash('garbage')).toBe(true);
  });
});

describe('throttle arithmetic', () => {
  it('locks from the fifth failure for 2^k seconds, at most 15 minutes', () => {
    expect([1, 4, 5, 6, 7, 14, 40].map((n) => lockoutS(n, LOGIN_FAILURES_FREE))).toEqual([0, 0, 2, 4, 8, 900, 900]);
    expect(lockoutS(1_000_000, LOGIN_FAILURES_FREE)).toBe(LOCKOUT_MAX_S);
  });

  it('keys addresses by IPv4, mapped IPv4 and IPv6 /64', () => {
    expect(addressKey('10.1.2.3')).toBe('addr:10.1.2.3');
    expect(addressKey('::ffff:10.1.2.3')).toBe('addr:10.1.2.3');
    expect(addressKey('2001:db8:1:2:aaaa::1')).toBe('addr:2001:db8:1:2::/64');
    expect(addressKey('2001:DB8:1:2:bbbb:cccc:dddd:eeee')).toBe('addr:2001:db8:1:2::/64');
    expect(addressKey('2001:db8::1')).toBe('addr:2001:db8:0:0::/64');
    expect(addressKey('::1')).toBe('addr:0:0:0:0::/64');
  });
});

for (const h of databases) {
  describe.skipIf(!h.available)(`auth on ${h.name}`, () => {
    let backend: TestStorage;
    let db: Db;
    beforeAll(async () => {
      backend = await h.fresh();
      db = await backend.open();
      await db.migrate(authMigrations);
    });

    describe('staff accounts and sessions', () => {
      it('checks new accounts: name, role and merchant, password length, uniqueness', async () => {
        await expectApiError(
          createStaff(db, { username: 'ab', password: STAFF_PASSWORD, role: 'operator_admin', merchantId: null }, T0),
          'validation_failed',
        );
        await expectApiError(
          createStaff(db, { username: 'alice', password: 'short', role: 'operator_admin', merchantId: null }, T0),
          'validation_failed',
        );
        await expectApiError(
          createStaff(db, { username: 'till', password: STAFF_PASSWORD, role: 'merchant', merchantId: null }, T0),
          'validation_failed',
        );
        await expectApiError(
          createStaff(db, { username: 'fin', password: STAFF_PASSWORD, role: 'school_finance', merchantId: 3 }, T0),
          'validation_failed',
        );
        const a = await createStaff(db, { username: 'Alice', password: STAFF_PASSWORD, role: 'operator_admin', merchantId: null }, T0);
        expect(a.id).toBeGreaterThan(0);
        await expectApiError(
          createStaff(db, { username: 'alice', password: STAFF_PASSWORD, role: 'school_finance', merchantId: null }, T0),
          'conflict',
        );
        const stored = await db.one('SELECT username, password_hash FROM staff_accounts WHERE id = ?', [a.id]);
        expect(stored?.username).toBe('alice');
        expect(String(stored?.password_hash)).toMatch(/^\$argon2id\$/);
        expect(String(stored?.password_hash)).not.toContain(STAFF_PASSWORD);
      });

      it('signs in with a token stored only as its SHA-256, and refuses wrong passwords and unknown names alike', async () => {
        const { id } = await createStaff(db, { username: 'till.3', password: STAFF_PASSWORD, role: 'merchant', merchantId: 42 }, T0);
        const s = await loginStaff(db, crypto, 'TILL.3', STAFF_PASSWORD, '10.0.1.1', T0);
        expect(s.token).toMatch(/^[A-Za-z0-9_-]{43}$/);
        expect(s.expiresAt).toBe(T0 + STAFF_SESSION_MAX_S);
        expect(s.principal).toEqual({ kind: 'staff', id, username: 'till.3', role: 'merchant', merchantId: 42 });
        expect(await sessionPrincipal(db, crypto, s.token, T0 + 1)).toEqual(s.principal);
        const row = await db.one('SELECT token_hash FROM sessions WHERE subject_id = ? AND kind = ?', [id, 'staff']);
        const raw = Buffer.from(s.token, 'base64url');
        expect(Buffer.from(row?.token_hash as Uint8Array).equals(Buffer.from(crypto.sha256(raw)))).toBe(true);
        expect((await db.all('SELECT * FROM sessions')).some((r) => Object.values(r).some((v) => v === s.token))).toBe(false);

        await expectApiError(loginStaff(db, crypto, 'till.3', 'wrong password!!', '10.0.1.1', T0), 'bad_credentials');
        await expectApiError(loginStaff(db, crypto, 'nobody', STAFF_PASSWORD, '10.0.1.1', T0), 'bad_credentials');
        expect(await sessionPrincipal(db, crypto, 'A'.repeat(43), T0)).toBeUndefined();
        expect(await sessionPrincipal(db, crypto, 'not a token', T0)).toBeUndefined();
      });

      it('sessions expire, idle out, are revoked by logout, password change and disabling, and follow role changes', async () => {
        const { id } = await createStaff(db, { username: 'bob', password: STAFF_PASSWORD, role: 'school_finance', merchantId: null }, T0);
        const addr = '10.0.2.1';
        // Idle: used every 20 minutes it lives to its absolute end, never past it.
        const s = await loginStaff(db, crypto, 'bob', STAFF_PASSWORD, addr, T0);
        let t = T0;
        while (t + 20 * 60 < T0 + STAFF_SESSION_MAX_S) {
          t += 20 * 60;
          expect(await sessionPrincipal(db, crypto, s.token, t), `at +${t - T0} s`).toBeDefined();
        }
        expect(await sessionPrincipal(db, crypto, s.token, T0 + STAFF_SESSION_MAX_S)).toBeUndefined();
        // Left alone for 30 minutes, it is gone.
        const idle = await loginStaff(db, crypto, 'bob', STAFF_PASSWORD, addr, T0);
        expect(await sessionPrincipal(db, crypto, idle.token, T0 + STAFF_SESSION_IDLE_S - 1)).toBeDefined();
        const idle2 = await loginStaff(db, crypto, 'bob', STAFF_PASSWORD, addr, T0);
        expect(await sessionPrincipal(db, crypto, idle2.token, T0 + STAFF_SESSION_IDLE_S)).toBeUndefined();
        // Logout.
        const out = await loginStaff(db, crypto, 'bob', STAFF_PASSWORD, addr, T0);
        await logout(db, crypto, out.token, T0 + 5);
        await logout(db, crypto, out.token, T0 + 6);
        expect(await sessionPrincipal(db, crypto, out.token, T0 + 7)).toBeUndefined();
        // Role changes apply to open sessions.
        const live = await loginStaff(db, crypto, 'bob', STAFF_PASSWORD, addr, T0);
        await db.run("UPDATE staff_accounts SET role = 'operator_admin' WHERE id = ?", [id]);
        expect(await sessionPrincipal(db, crypto, live.token, T0 + 1)).toMatchObject({ role: 'operator_admin' });
        // A password change signs out everywhere.
        await setStaffPassword(db, id, 'a new and long password', T0 + 2);
        expect(await sessionPrincipal(db, crypto, live.token, T0 + 3)).toBeUndefined();
        await expectApiError(loginStaff(db, crypto, 'bob', STAFF_PASSWORD, addr, T0 + 3), 'bad_credentials');
        const again = await loginStaff(db, crypto, 'bob', 'a new and long password', addr, T0 + 3);
        // Disabled: sessions end, sign-in says blocked (only to someone who knows the password).
        await setStaffStatus(db, id, 'disabled', T0 + 4);
        expect(await sessionPrincipal(db, crypto, again.token, T0 + 5)).toBeUndefined();
        await expectApiError(loginStaff(db, crypto, 'bob', 'a new and long password', addr, T0 + 5), 'account_blocked');
        await setStaffStatus(db, id, 'active', T0 + 6);
        await loginStaff(db, crypto, 'bob', 'a new and long password', addr, T0 + 6);
      });

      it('upgrades a weak stored hash at the next sign-in', async () => {
        const { id } = await createStaff(db, { username: 'carol', password: STAFF_PASSWORD, role: 'operator_admin', merchantId: null }, T0);
        await db.run('UPDATE staff_accounts SET password_hash = ? WHERE id = ?', [
          await argon2Hash(STAFF_PASSWORD, { memoryCost: 4096, timeCost: 1 }),
          id,
        ]);
        await loginStaff(db, crypto, 'carol', STAFF_PASSWORD, '10.0.3.1', T0);
        const row = await db.one('SELECT password_hash FROM staff_accounts WHERE id = ?', [id]);
        expect(String(row?.password_hash)).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
      });

      it('authenticateBearer and requireStaffRole', async () => {
        const s = await loginStaff(db, crypto, 'alice', STAFF_PASSWORD, '10.0.4.1', T0);
        const p = await authenticateBearer(db, crypto, `Bearer ${s.token}`, T0 + 1);
        expect(requireStaffRole(p, ['operator_admin'])).toMatchObject({ username: 'alice' });
        expect(() => requireStaffRole(p, ['school_finance'])).toThrow(/forbidden/);
        expect(() => requireStaffRole(undefined, ['operator_admin'])).toThrow(/forbidden/);
        await expectApiError(authenticateBearer(db, crypto, undefined, T0), 'unauthenticated');
        await expectApiError(authenticateBearer(db, crypto, s.token, T0), 'unauthenticated');
        await expectApiError(authenticateBearer(db, crypto, `Basic ${s.token}`, T0), 'unauthenticated');
        await expectApiError(authenticateBearer(db, crypto, [`Bearer ${s.token}`, `Bearer ${s.token}`], T0), 'unauthenticated');
      });
    });

    describe('holders', () => {
      it('sign in by holder id with their own password; sessions last longer; a new password signs them out', async () => {
        await expectApiError(setHolderPassword(db, 501, 'short', T0), 'validation_failed');
        await setHolderPassword(db, 501, HOLDER_PASSWORD, T0);
        const s = await loginHolder(db, crypto, 501, HOLDER_PASSWORD, '10.0.5.1', T0);
        expect(s.principal).toEqual({ kind: 'holder', id: 501 });
        expect(await sessionPrincipal(db, crypto, s.token, T0 + HOLDER_SESSION_IDLE_S - 1)).toEqual({ kind: 'holder', id: 501 });
        await expectApiError(loginHolder(db, crypto, 501, 'noodles89', '10.0.5.1', T0), 'bad_credentials');
        await expectApiError(loginHolder(db, crypto, 502, HOLDER_PASSWORD, '10.0.5.1', T0), 'bad_credentials');
        await expectApiError(loginHolder(db, crypto, -1, HOLDER_PASSWORD, '10.0.5.1', T0), 'bad_credentials');
        await setHolderPassword(db, 501, 'dumplings99', T0 + 10);
        expect(await sessionPrincipal(db, crypto, s.token, T0 + 11)).toBeUndefined();
        await loginHolder(db, crypto, 501, 'dumplings99', '10.0.5.1', T0 + 11);
      });
    });

    describe('throttling', () => {
      it(`locks an account after ${LOGIN_FAILURES_FREE} failures, even for the right password, and the lock survives a restart`, async () => {
        await createStaff(db, { username: 'dave', password: STAFF_PASSWORD, role: 'operator_admin', merchantId: null }, T0);
        const addr = '10.0.6.1';
        for (let i = 0; i < LOGIN_FAILURES_FREE; i++)
          await expectApiError(loginStaff(db, crypto, 'dave', 'guess guess guess', addr, T0), 'bad_credentials');
        const locked = await expectApiError(loginStaff(db, crypto, 'dave', STAFF_PASSWORD, addr, T0), 'too_many_attempts');
        expect(locked.retryAfterS).toBe(2);
        expect(locked.status).toBe(429);
        // Another address does not help: the account itself is locked.
        await expectApiError(loginStaff(db, crypto, 'dave', STAFF_PASSWORD, '10.0.6.2', T0 + 1), 'too_many_attempts');

        // A restart (a new connection, as another process would have) still sees the lock.
        const other = await backend.open();
        await expectApiError(loginStaff(other, crypto, 'dave', STAFF_PASSWORD, addr, T0 + 1), 'too_many_attempts');

        // Each further failure doubles the wait.
        await expectApiError(loginStaff(other, crypto, 'dave', 'guess guess guess', addr, T0 + 2), 'bad_credentials');
        expect(
          (await expectApiError(loginStaff(other, crypto, 'dave', STAFF_PASSWORD, addr, T0 + 2), 'too_many_attempts')).retryAfterS,
        ).toBe(4);
        await expectApiError(loginStaff(other, crypto, 'dave', 'guess guess guess', addr, T0 + 6), 'bad_credentials');
        expect(
          (await expectApiError(loginStaff(other, crypto, 'dave', STAFF_PASSWORD, addr, T0 + 6), 'too_many_attempts')).retryAfterS,
        ).toBe(8);
        // Once the wait is over, the right password works and the account starts again from zero.
        await loginStaff(other, crypto, 'dave', STAFF_PASSWORD, addr, T0 + 14);
        for (let i = 0; i < LOGIN_FAILURES_FREE - 1; i++)
          await expectApiError(loginStaff(db, crypto, 'dave', 'guess guess guess', addr, T0 + 15), 'bad_credentials');
        await loginStaff(db, crypto, 'dave', STAFF_PASSWORD, addr, T0 + 15);
      });

      it('doubles the lockout with each failure up to 15 minutes', async () => {
        await setHolderPassword(db, 601, HOLDER_PASSWORD, T0);
        let t = T0;
        const waits: number[] = [];
        // A guesser who always waits exactly as long as told: every refusal says how long.
        for (let i = 0; waits.length < 12; i++) {
          const e = await apiError(loginHolder(db, crypto, 601, 'wrong-one', `10.1.${i}.1`, t));
          if (e.code === 'too_many_attempts') {
            waits.push(e.retryAfterS ?? 0);
            t += e.retryAfterS ?? 0;
          } else expect(e.code).toBe('bad_credentials');
        }
        expect(waits).toEqual([2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900, 900]);
        await loginHolder(db, crypto, 601, HOLDER_PASSWORD, '10.1.200.1', t);
      });

      it(`locks an address after ${ADDRESS_FAILURES_FREE} failures across accounts; other addresses are unaffected`, async () => {
        await setHolderPassword(db, 701, HOLDER_PASSWORD, T0);
        const addr = '2001:db8:77:1::5';
        for (let i = 0; i < ADDRESS_FAILURES_FREE; i++) {
          // Every attempt on another holder, from addresses in the same /64.
          await expectApiError(loginHolder(db, crypto, 10_000 + i, 'whatever1', `2001:db8:77:1::${i + 10}`, T0), 'bad_credentials');
        }
        await expectApiError(loginHolder(db, crypto, 701, HOLDER_PASSWORD, addr, T0), 'too_many_attempts');
        await loginHolder(db, crypto, 701, HOLDER_PASSWORD, '2001:db8:77:2::5', T0);
      });

      it('counts a parallel burst one by one: exactly five guesses reach the password check', async () => {
        await setHolderPassword(db, 801, HOLDER_PASSWORD, T0);
        const results = await Promise.all(
          Array.from({ length: 20 }, (_, i) => apiError(loginHolder(db, crypto, 801, `burst-guess-${i}`, `10.2.${i}.1`, T0))),
        );
        const codes = results.map((e) => e.code);
        expect(codes.filter((c) => c === 'bad_credentials')).toHaveLength(LOGIN_FAILURES_FREE);
        expect(codes.filter((c) => c === 'too_many_attempts')).toHaveLength(20 - LOGIN_FAILURES_FREE);
      });
    });

    describe('terminal requests', () => {
      const terminals = new FakeTerminals();
      let key: Signer;
      const PATH = '/v1/terminal/upload?batch=3';
      const BODY = new TextEncoder().encode('{"records":[]}');
      const T = T0 + 1_000;
      const sign = async (o: { signer?: Signer; id?: number; method?: string; path?: string; body?: Uint8Array; timeS?: number } = {}) =>
        signRequest(o.signer ?? key, o.id ?? 31, o.method ?? 'POST', o.path ?? PATH, o.body ?? BODY, o.timeS ?? T, crypto.sha256);
      const verify = (
        headers: Record<string, string | string[] | undefined>,
        o: { method?: string; path?: string; body?: Uint8Array; nowS?: number; on?: Db } = {},
      ) =>
        verifyTerminalRequest(
          o.on ?? db,
          terminals,
          crypto,
          { method: o.method ?? 'POST', path: o.path ?? PATH, headers, body: o.body ?? BODY },
          o.nowS ?? T,
        );

      beforeAll(async () => {
        key = await crypto.suite('p256').generate();
        terminals.rows.set(31, { suite: 'p256', publicKey: key.publicKey, status: 'active', merchantId: 1031 });
        const ed = await crypto.suite('ed25519').generate();
        terminals.rows.set(32, { suite: 'ed25519', publicKey: ed.publicKey, status: 'revoked', merchantId: 1032 });
        terminals.rows.set(33, { suite: 'ed25519', publicKey: ed.publicKey, status: 'pending', merchantId: 1033 });
      });

      it('accepts a valid request once', async () => {
        const h = await sign();
        expect(await verify(h)).toEqual({ kind: 'terminal', id: 31, merchantId: 1031 });
        await expectApiError(verify(h), 'conflict');
        // Another API process over the same database refuses the replay too.
        const other = await backend.open();
        await expectApiError(verify(h, { on: other }), 'conflict');
        // The same request signed again (a fresh ECDSA signature, same second) is still the same request.
        await expectApiError(verify(await sign()), 'conflict');
        // Signed again a second later, it is a new request.
        expect(await verify(await sign({ timeS: T + 1 }), { nowS: T + 1 })).toEqual({ kind: 'terminal', id: 31, merchantId: 1031 });
      });

      it('refuses a wrong key, a tampered method, path or body, and a borrowed terminal id', async () => {
        const stranger = await crypto.suite('p256').generate();
        await expectApiError(verify(await sign({ signer: stranger, timeS: T + 2 }), { nowS: T + 2 }), 'bad_signature');
        await expectApiError(
          verify(await sign({ timeS: T + 3 }), { nowS: T + 3, body: new TextEncoder().encode('{"records":[1]}') }),
          'bad_signature',
        );
        await expectApiError(verify(await sign({ timeS: T + 4 }), { nowS: T + 4, path: '/v1/terminal/upload?batch=4' }), 'bad_signature');
        await expectApiError(verify(await sign({ timeS: T + 5 }), { nowS: T + 5, method: 'PUT' }), 'bad_signature');
        const h = await sign({ timeS: T + 6 });
        await expectApiError(verify({ ...h, 'x-duet-time': String(T + 7) }, { nowS: T + 7 }), 'bad_signature');
        // Terminal 31's signature presented as terminal 34's (unknown) and as 33's (pending).
        await expectApiError(verify({ ...h, 'x-duet-terminal': '34' }, { nowS: T + 6 }), 'unauthenticated');
        await expectApiError(verify({ ...h, 'x-duet-terminal': '33' }, { nowS: T + 6 }), 'forbidden');
        // A failed attempt does not use the request up.
        expect(await verify(h, { nowS: T + 6 })).toEqual({ kind: 'terminal', id: 31, merchantId: 1031 });
      });

      it('refuses a stale or future time (±300 s), a revoked terminal, missing and malformed headers', async () => {
        const at = T + 100;
        expect(await verify(await sign({ timeS: at - 300 }), { nowS: at })).toEqual({ kind: 'terminal', id: 31, merchantId: 1031 });
        expect(await verify(await sign({ timeS: at + 300 }), { nowS: at })).toEqual({ kind: 'terminal', id: 31, merchantId: 1031 });
        const stale = await expectApiError(verify(await sign({ timeS: at - 301 }), { nowS: at }), 'unauthenticated');
        expect(stale.detail).toContain('clock');
        await expectApiError(verify(await sign({ timeS: at + 301 }), { nowS: at }), 'unauthenticated');
        await expectApiError(verify(await sign({ id: 32, timeS: at + 1 }), { nowS: at }), 'forbidden');
        const h = await sign({ timeS: at + 2 });
        const { 'x-duet-signature': _, ...unsigned } = h;
        await expectApiError(verify(unsigned, { nowS: at }), 'unauthenticated');
        await expectApiError(verify({ ...h, 'x-duet-time': `0${h['x-duet-time']}` }, { nowS: at }), 'bad_request');
        await expectApiError(verify({ ...h, 'x-duet-signature': `${h['x-duet-signature'].slice(1)}!` }, { nowS: at }), 'bad_request');
        await expectApiError(verify({ ...h, 'x-duet-terminal': ['31', '31'] }, { nowS: at }), 'bad_request');
        await expectApiError(verify(h, { nowS: at, method: 'post' }), 'bad_request');
      });

      it('authenticate() takes terminal headers or a bearer token; replay digests are pruned after their window', async () => {
        const deps = { db, crypto, terminals };
        const at = T + 10_000;
        const h = await sign({ timeS: at });
        expect(await authenticate(deps, { method: 'POST', path: PATH, headers: h, body: BODY }, at)).toEqual({
          kind: 'terminal',
          id: 31,
          merchantId: 1031,
        });
        // Terminal headers present but bad: no falling back to the bearer token.
        const s = await loginStaff(db, crypto, 'alice', STAFF_PASSWORD, '10.0.7.1', at);
        await expectApiError(
          authenticate(deps, { method: 'POST', path: PATH, headers: { ...h, authorization: `Bearer ${s.token}` }, body: BODY }, at),
          'conflict',
        );
        expect(
          await authenticate(
            deps,
            { method: 'GET', path: '/v1/me', headers: { authorization: `Bearer ${s.token}` }, body: new Uint8Array() },
            at,
          ),
        ).toMatchObject({
          kind: 'staff',
          username: 'alice',
        });
        await expectApiError(
          authenticate(deps, { method: 'GET', path: '/v1/me', headers: {}, body: new Uint8Array() }, at),
          'unauthenticated',
        );
        const before = await db.one('SELECT COUNT(*) AS n FROM terminal_request_replay');
        expect(Number(before?.n)).toBeGreaterThan(0);
        await pruneAuth(db, at + 10_000);
        expect(Number((await db.one('SELECT COUNT(*) AS n FROM terminal_request_replay'))?.n)).toBe(0);
      });
    });

    describe("PlatformAuth (the HTTP layer's Authenticator)", () => {
      it('wires the functions to the platform clock', async () => {
        const clock = { nowMs: () => (T0 + 50_000) * 1000 };
        const terminals = new FakeTerminals();
        const auth = new PlatformAuth({ db, crypto, terminals, clock });
        const { id } = await auth.createStaff('erin', STAFF_PASSWORD, 'school_finance', null);
        const s = await auth.staffLogin('erin', STAFF_PASSWORD, '10.0.8.1');
        expect(s.role).toBe('school_finance');
        expect(await auth.bearer(s.token)).toEqual({ kind: 'staff', id, username: 'erin', role: 'school_finance', merchantId: null });
        await auth.logout(s.token);
        expect(await auth.bearer(s.token)).toBeUndefined();
        await auth.setHolderPassword(901, HOLDER_PASSWORD);
        expect((await auth.holderLogin(901, HOLDER_PASSWORD, '10.0.8.1')).expiresAt).toBeGreaterThan(T0 + 50_000);
        const key = await crypto.suite('sm2').generate();
        terminals.rows.set(77, { suite: 'sm2', publicKey: key.publicKey, status: 'active', merchantId: 1077 });
        const h = await signRequest(key, 77, 'GET', '/v1/terminal/lists', new Uint8Array(), T0 + 50_000, crypto.sha256);
        expect(await auth.terminal(h, 'GET', '/v1/terminal/lists', new Uint8Array())).toEqual({
          kind: 'terminal',
          id: 77,
          merchantId: 1077,
        });
      });
    });
  });
}
