/**
 * The key store (src/keys.ts), run against every storage backend: first start makes the four keys
 * and they survive a restart; private keys are never stored in the clear; a wrong passphrase is a
 * typed refusal; trust list versions only grow; and rotation follows DESIGN §4 end to end, checked
 * the way a terminal checks (protocol verifiers against the trust list it holds).
 */
import { existsSync, readFileSync } from 'node:fs';
import {
  type Credential,
  CREDENTIAL_LIFETIME_MAX_S,
  checkCredentialValidity,
  decodeTrustList,
  fen,
  ProtocolError,
  type Signer,
  signCredential,
  signTerminalCertificate,
  type TrustList,
  toHex,
  verifyCredentialSignature,
  verifyTerminalCertificate,
  verifyTrustList,
} from '@duet/protocol';
import { nodeCrypto } from '@duet/protocol/node';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../src/db/db.js';
import {
  DEV_KEY_PASSPHRASE,
  KEY_BACKDATE_S,
  KEY_LIFETIME_S,
  KeyStore,
  KeyStoreError,
  type KeyStoreOptions,
  keysMigrations,
  PASSPHRASE_ENV,
  passphraseFromEnv,
  RETIRE_MARGIN_S,
  SIGNED_LIFETIME_MAX_S,
  TRUST_LIST_LIFETIME_S,
  UnsealedKeys,
  unsealPrivateKey,
} from '../src/keys.js';
import { TERMINAL_CERT_VALIDITY_S } from '../src/registry.js';
import { databases, type TestDatabase } from './pg-harness.js';

const crypto = nodeCrypto();
const DAY_S = 86_400;
/** 2026-03-01T00:00:00Z: fixed, so no test depends on the wall clock. */
const T0 = 1_772_323_200;
const PASSPHRASE = 'correct horse battery staple';

/** A storage backend the same tests run against: `open` reaches the same database every time. */
interface Backend {
  readonly name: string;
  open(): Promise<Db>;
  /** Every byte the backend wrote to disk, where the test can read it (SQLite: the file and its WAL). */
  diskBytes?(): Buffer;
}

async function backendOf(h: TestDatabase): Promise<Backend> {
  const storage = await h.fresh();
  const path = storage.location;
  return {
    name: h.name,
    open: () => storage.open(),
    ...(h.name === 'sqlite'
      ? { diskBytes: () => Buffer.concat([path, `${path}-wal`].filter((f) => existsSync(f)).map((f) => readFileSync(f))) }
      : {}),
  };
}

class FakeClock {
  constructor(public nowS: number) {}
  nowMs(): number {
    return this.nowS * 1000;
  }
}

function options(clock: FakeClock, o: Partial<KeyStoreOptions> = {}): KeyStoreOptions {
  return { passphrase: PASSPHRASE, crypto, clock, ...o };
}

async function credentialFrom(
  issuer: Awaited<ReturnType<KeyStore['active']>>,
  device: Signer,
  serial: number,
  fromS: number,
  lifetimeS: number,
): Promise<Credential> {
  return signCredential(
    {
      issuerSuite: issuer.suite,
      deviceSuite: device.suite,
      issuerKeyId: issuer.keyId,
      serial,
      holder: 77,
      campus: 1,
      role: 'student',
      scopes: ['canteen'],
      devicePublicKey: device.publicKey,
      limits: { perPayment: fen(2_000), offlineTotal: fen(10_000), offlineCount: 10 },
      notBefore: fromS,
      notAfter: fromS + lifetimeS,
    },
    issuer.signer,
  );
}

/** What a terminal does with a credential: the signature under the list it holds, then validity now. */
async function terminalAccepts(c: Credential, list: TrustList, nowS: number): Promise<true | string> {
  try {
    await verifyCredentialSignature(c, list, crypto);
    checkCredentialValidity(c, nowS, 0);
    return true;
  } catch (e) {
    if (e instanceof ProtocolError) return e.code;
    throw e;
  }
}

async function expectKeyStoreError(p: Promise<unknown>, code: KeyStoreError['code']): Promise<KeyStoreError> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(KeyStoreError);
  expect((e as KeyStoreError).code).toBe(code);
  return e as KeyStoreError;
}

describe('the passphrase', () => {
  it('comes from DUET_KEY_PASSPHRASE; missing or short is refused in both languages', () => {
    expect(passphraseFromEnv({ [PASSPHRASE_ENV]: PASSPHRASE })).toEqual({ passphrase: PASSPHRASE, isDevDefault: false });
    let e: unknown;
    try {
      passphraseFromEnv({});
    } catch (x) {
      e = x;
    }
    expect(e).toBeInstanceOf(KeyStoreError);
    expect((e as KeyStoreError).code).toBe('passphrase_missing');
    expect((e as KeyStoreError).message).toContain(PASSPHRASE_ENV);
    expect((e as KeyStoreError).zh).toContain('未设置');
    expect(() => passphraseFromEnv({ [PASSPHRASE_ENV]: 'short' })).toThrow(/passphrase_too_short/);
    // Twelve characters, counted as characters (not UTF-8 bytes).
    expect(() => passphraseFromEnv({ [PASSPHRASE_ENV]: '口令口令口令口令口令口' })).toThrow(/passphrase_too_short/);
    expect(passphraseFromEnv({ [PASSPHRASE_ENV]: '口令口令口令口令口令口令' }).passphrase).toHaveLength(12);
  });

  it('has a development default only when asked for, and never overrides a set value', () => {
    expect(passphraseFromEnv({}, { allowDevPassphrase: true })).toEqual({ passphrase: DEV_KEY_PASSPHRASE, isDevDefault: true });
    expect(passphraseFromEnv({ [PASSPHRASE_ENV]: '' }, { allowDevPassphrase: true }).isDevDefault).toBe(true);
    expect(passphraseFromEnv({ [PASSPHRASE_ENV]: PASSPHRASE }, { allowDevPassphrase: true }).isDevDefault).toBe(false);
    expect(() => passphraseFromEnv({ [PASSPHRASE_ENV]: 'short' }, { allowDevPassphrase: true })).toThrow(/passphrase_too_short/);
  });

  it('the retirement bounds cover what this platform actually signs', () => {
    expect(SIGNED_LIFETIME_MAX_S.issuer).toBe(CREDENTIAL_LIFETIME_MAX_S);
    expect(SIGNED_LIFETIME_MAX_S.terminal_ca).toBeGreaterThanOrEqual(TERMINAL_CERT_VALIDITY_S);
  });
});

for (const h of databases) {
  describe.skipIf(!h.available)(`KeyStore on ${h.name}`, () => {
    let backend: Backend;
    const open = (): Promise<Db> => backend.open();
    beforeAll(async () => {
      backend = await backendOf(h);
    });

    it('first start makes root, issuer, CA and list keys, publishes v1, and a restart finds the same keys', async () => {
      const clock = new FakeClock(T0);
      const db = await open();
      const store = await KeyStore.open(db, options(clock));
      const keys = await store.listKeys();
      expect(keys.map((k) => [k.keyId, k.role, k.suite, k.state])).toEqual([
        [1, 'root', 'p256', 'active'],
        [2, 'issuer', 'p256', 'active'],
        [3, 'terminal_ca', 'p256', 'active'],
        [4, 'list_signer', 'p256', 'active'],
      ]);
      for (const k of keys) {
        expect(k.notBefore).toBe(T0 - KEY_BACKDATE_S);
        expect(k.notAfter).toBe(T0 + KEY_LIFETIME_S);
      }
      const list = await store.currentTrustList();
      expect(list.listVersion).toBe(1);
      expect(list.keys.map((k) => [k.keyId, k.role])).toEqual([
        [2, 'issuer'],
        [3, 'terminal_ca'],
        [4, 'list_signer'],
      ]);
      expect(list.expiresAt - list.issuedAt).toBe(TRUST_LIST_LIFETIME_S);
      const roots = await store.rootKeys();
      expect(roots).toHaveLength(1);
      await verifyTrustList(decodeTrustList(list.bytes), roots, crypto, T0);

      await db.close();
      clock.nowS = T0 + DAY_S;
      const again = await KeyStore.open(await open(), options(clock));
      const after = await again.listKeys();
      expect(after.map((k) => [k.keyId, toHex(k.publicKey)])).toEqual(keys.map((k) => [k.keyId, toHex(k.publicKey)]));
      expect((await again.currentTrustList()).listVersion).toBe(1);
      // The reopened signer is the same key: its signature verifies under the stored public key.
      const issuer = await again.signer('issuer');
      expect(issuer.keyId).toBe(2);
      const message = new TextEncoder().encode('hello');
      expect(await crypto.suite('p256').verify(keys[1]?.publicKey ?? new Uint8Array(), message, await issuer.sign(message))).toBe(true);
      expect(await issuer.exportPrivateKey()).toBeUndefined();
    });

    it('keeps no private key in the clear, in any row or on disk', async () => {
      const db = await open();
      const rows = await db.all('SELECT * FROM platform_keys');
      const raws: Uint8Array[] = [];
      for (const r of rows) {
        const role = String(r.role) as 'root';
        const raw = await unsealPrivateKey(PASSPHRASE, r.sealed_private_key as Uint8Array, {
          role,
          suite: 'p256',
          publicKey: r.public_key as Uint8Array,
        });
        expect(raw).toHaveLength(32);
        raws.push(raw);
      }
      expect(raws).toHaveLength(4);
      const everything = Buffer.concat(
        rows.flatMap((r) => Object.values(r).map((v) => (v instanceof Uint8Array ? Buffer.from(v) : Buffer.from(String(v))))),
      );
      const disk = backend.diskBytes?.() ?? Buffer.alloc(0);
      for (const raw of raws) {
        for (const haystack of [everything, disk]) {
          expect(haystack.includes(Buffer.from(raw))).toBe(false);
          expect(haystack.includes(Buffer.from(toHex(raw)))).toBe(false);
          expect(haystack.includes(Buffer.from(Buffer.from(raw).toString('base64')))).toBe(false);
        }
      }
    });

    it('refuses a wrong passphrase with a typed error, and a sealed key moved to another row', async () => {
      const clock = new FakeClock(T0 + DAY_S);
      await expectKeyStoreError(
        KeyStore.open(await open(), options(clock, { passphrase: 'not the passphrase at all' })),
        'wrong_passphrase',
      );
      await expectKeyStoreError(KeyStore.open(await open(), options(clock, { passphrase: 'short' })), 'passphrase_too_short');
      // The seal is bound to its role and public key: the issuer's sealed key under the CA's row does not open.
      const db = await open();
      const issuer = await db.one('SELECT sealed_private_key FROM platform_keys WHERE key_id = 2');
      const ca = await db.one('SELECT sealed_private_key FROM platform_keys WHERE key_id = 3');
      await db.run('UPDATE platform_keys SET sealed_private_key = ? WHERE key_id = 3', [issuer?.sealed_private_key ?? null]);
      const e = await expectKeyStoreError(KeyStore.open(db, options(clock)), 'wrong_passphrase');
      expect(e.message).toContain('terminal_ca');
      await db.run('UPDATE platform_keys SET sealed_private_key = ? WHERE key_id = 3', [ca?.sealed_private_key ?? null]);
      await KeyStore.open(db, options(clock));
    });

    it('shares decrypted keys between stores only for the same key and passphrase (UnsealedKeys)', async () => {
      const clock = new FakeClock(T0 + DAY_S);
      const shared = new UnsealedKeys();
      const a = await KeyStore.open(await open(), options(clock, { unsealed: shared }));
      const issuerOf = async (s: KeyStore) => (await s.active('issuer')).signer;
      const b = await KeyStore.open(await open(), options(clock, { unsealed: shared }));
      expect(await issuerOf(b)).toBe(await issuerOf(a));
      // Without it, each store decrypts its own.
      const c = await KeyStore.open(await open(), options(clock));
      expect(await issuerOf(c)).not.toBe(await issuerOf(a));
      // A store with another passphrase must prove it by decrypting: the shared signers do not open it.
      await expectKeyStoreError(
        KeyStore.open(await open(), options(clock, { passphrase: 'not the passphrase at all', unsealed: shared })),
        'wrong_passphrase',
      );
      const d = await KeyStore.open(await open(), options(clock, { unsealed: shared }));
      expect(await issuerOf(d)).toBe(await issuerOf(a));
    });

    it('publishes strictly increasing versions, across restarts', async () => {
      const clock = new FakeClock(T0 + DAY_S);
      const seen: number[] = [(await KeyStore.open(await open(), options(clock)).then((s) => s.currentTrustList())).listVersion];
      for (let i = 0; i < 3; i++) {
        const store = await KeyStore.open(await open(), options(clock));
        seen.push((await store.publishTrustList(clock.nowS)).listVersion);
        seen.push((await store.publishTrustList(clock.nowS)).listVersion);
      }
      for (let i = 1; i < seen.length; i++) expect(seen[i]).toBe((seen[i - 1] as number) + 1);
      const store = await KeyStore.open(await open(), options(clock));
      expect((await store.currentTrustList()).listVersion).toBe(seen.at(-1));
      // refreshTrustList publishes only past half the current list's life.
      expect((await store.refreshTrustList(clock.nowS + 1)).listVersion).toBe(seen.at(-1));
      expect((await store.refreshTrustList(clock.nowS + TRUST_LIST_LIFETIME_S / 2)).listVersion).toBe((seen.at(-1) as number) + 1);
    });
  });
}

for (const h of databases) {
  describe.skipIf(!h.available)(`rotation (DESIGN §4), as terminals see it, on ${h.name}`, () => {
    let db: Db;
    beforeAll(async () => {
      db = await h.open();
    });

    it('issuer: listed before use, used after activation, old credentials good until they expire, then pruned', async () => {
      const clock = new FakeClock(T0);
      const store = await KeyStore.open(db, options(clock));
      const device = await crypto.suite('p256').generate();
      const v1 = await store.currentTrustList();
      const oldIssuer = await store.active('issuer');

      // A terminal holding the old list verifies credentials from the old key.
      const early = await credentialFrom(oldIssuer, device, 1, T0 + DAY_S, 3 * DAY_S);
      expect(await terminalAccepts(early, v1, T0 + DAY_S)).toBe(true);

      // Step 1: the new key is listed but unused.
      clock.nowS = T0 + 2 * DAY_S;
      const { key: pending, trustList: v2 } = await store.rotate('issuer', clock.nowS);
      expect(pending.state).toBe('pending');
      expect(v2.listVersion).toBe(v1.listVersion + 1);
      expect(v2.keys.map((k) => k.keyId)).toContain(pending.keyId);
      expect((await store.active('issuer')).keyId).toBe(oldIssuer.keyId);
      await expect(store.rotate('issuer', clock.nowS)).rejects.toMatchObject({ code: 'conflict' });

      // Activation waits until the last list without the new key (v1) has expired.
      const earliest = await store.activationTime('issuer');
      expect(earliest).toBe(v1.expiresAt);
      await expect(store.activatePending('issuer', earliest - 1)).rejects.toMatchObject({ code: 'conflict', retryAfterS: 1 });

      // A 31-day credential issued by the old key just before it is retired.
      const last = await credentialFrom(oldIssuer, device, 2, earliest - 1, CREDENTIAL_LIFETIME_MAX_S);
      expect(await terminalAccepts(last, v2, earliest - 1)).toBe(true);

      // Step 2: the new key signs; the old one is retired with a shortened not_after.
      clock.nowS = earliest;
      const { active, retired, trustList: v3 } = await store.activatePending('issuer', clock.nowS);
      expect(active.keyId).toBe(pending.keyId);
      expect(retired?.keyId).toBe(oldIssuer.keyId);
      expect(retired?.state).toBe('retired');
      expect(retired?.notAfter).toBe(earliest + CREDENTIAL_LIFETIME_MAX_S + RETIRE_MARGIN_S);
      expect(v3.listVersion).toBe(v2.listVersion + 1);
      const retiredRow = await db.one('SELECT sealed_private_key FROM platform_keys WHERE key_id = ?', [oldIssuer.keyId]);
      expect(retiredRow?.sealed_private_key).toBeNull();

      const newIssuer = await store.active('issuer');
      expect(newIssuer.keyId).toBe(pending.keyId);
      const fresh = await credentialFrom(newIssuer, device, 3, clock.nowS, 3 * DAY_S);
      expect(await terminalAccepts(fresh, v3, clock.nowS)).toBe(true);
      // A terminal that fetched v2 (which listed the pending key) also accepts it.
      expect(await terminalAccepts(fresh, v2, clock.nowS)).toBe(true);
      // The old credentials still verify against the newer list until they expire.
      expect(await terminalAccepts(last, v3, last.notAfter - 1)).toBe(true);
      expect(await terminalAccepts(last, v3, last.notAfter)).toBe('expired');

      // Step 3: prune removes the old key only once everything it signed has expired.
      expect(await store.prune(last.notAfter)).toEqual([]);
      const notAfter = retired?.notAfter ?? 0;
      expect(await store.prune(notAfter - 1)).toEqual([]);
      expect(await store.prune(notAfter)).toEqual([oldIssuer.keyId]);
      const v4 = await store.publishTrustList(notAfter);
      expect(v4.keys.map((k) => k.keyId)).not.toContain(oldIssuer.keyId);
      expect(await terminalAccepts(last, v4, last.notAfter - 1)).toBe('unknown_key');
      expect(await terminalAccepts(fresh, v4, clock.nowS)).toBe(true);
      expect((await store.listKeys()).find((k) => k.keyId === oldIssuer.keyId)?.state).toBe('removed');

      // Key ids are never reused.
      clock.nowS = notAfter;
      const { key: next } = await store.rotate('issuer', clock.nowS);
      expect(next.keyId).toBeGreaterThan(pending.keyId);
      expect(new Set((await store.listKeys()).map((k) => k.keyId)).size).toBe((await store.listKeys()).length);
    });

    it('terminal CA: a certificate signed just before rotation stays valid for its year', async () => {
      const clock = new FakeClock(T0 + 100 * DAY_S);
      const store = await KeyStore.open(db, options(clock));
      const oldCa = await store.active('terminal_ca');
      const terminal = await crypto.suite('p256').generate();
      const body = {
        caSuite: oldCa.suite,
        caKeyId: oldCa.keyId,
        terminalSuite: terminal.suite,
        terminalId: 9,
        merchantId: 4,
        scene: 'canteen' as const,
        campus: 1,
        location: 'North canteen, window 3',
        terminalPublicKey: terminal.publicKey,
      };
      await store.rotate('terminal_ca', clock.nowS);
      clock.nowS = await store.activationTime('terminal_ca');
      const cert = await signTerminalCertificate(
        { ...body, notBefore: clock.nowS - 1, notAfter: clock.nowS - 1 + TERMINAL_CERT_VALIDITY_S },
        oldCa.signer,
      );
      const { retired, trustList } = await store.activatePending('terminal_ca', clock.nowS);
      expect(retired?.notAfter).toBe(clock.nowS + SIGNED_LIFETIME_MAX_S.terminal_ca + RETIRE_MARGIN_S);
      await verifyTerminalCertificate(cert, trustList, crypto, cert.notAfter - 1);
      // A certificate the retired key "signs" after retirement for another full year does not verify.
      const late = await signTerminalCertificate(
        { ...body, notBefore: clock.nowS + DAY_S, notAfter: clock.nowS + DAY_S + TERMINAL_CERT_VALIDITY_S },
        oldCa.signer,
      );
      await expect(verifyTerminalCertificate(late, trustList, crypto)).rejects.toMatchObject({ code: 'expired' });
    });

    it('an emergency activation can be forced; the root is not rotated here', async () => {
      const clock = new FakeClock(T0 + 500 * DAY_S);
      const store = await KeyStore.open(db, options(clock));
      await expect(store.activatePending('list_signer', clock.nowS)).rejects.toMatchObject({ code: 'conflict' });
      const { key } = await store.rotate('list_signer', clock.nowS);
      const { active } = await store.activatePending('list_signer', clock.nowS, { force: true });
      expect(active.keyId).toBe(key.keyId);
      await expect(store.rotate('root' as 'issuer', clock.nowS)).rejects.toMatchObject({ code: 'conflict' });
    });

    it('makes keys of the configured suite', async () => {
      const store = await KeyStore.open(await h.open(), options(new FakeClock(T0), { suite: 'ed25519' }));
      expect(new Set((await store.listKeys()).map((k) => k.suite))).toEqual(new Set(['ed25519']));
      const list = await store.currentTrustList();
      expect(list.rootSuite).toBe('ed25519');
      await verifyTrustList(list, await store.rootKeys(), crypto, T0);
      expect(keysMigrations.map((m) => m.id)).toEqual(['keys/001-platform-keys-and-trust-lists']);
    });
  });
}
