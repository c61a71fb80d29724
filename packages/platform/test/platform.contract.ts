/**
 * The platform's HTTP contract, over real HTTP against a real database: platform.test.ts runs it
 * once on SQLite and once on PostgreSQL, so the same behaviour is proved on both (DESIGN §12).
 *
 * Each group opens its own platform (http-harness.ts) and walks one story end to end the way the
 * outside world does: a wallet enrolling and getting a credential, the refusals on the way, a
 * terminal activating and syncing its lists, online authorization, record upload, idempotent
 * top-up, key rotation seen from a terminal that still holds the old trust list, and bad input.
 * Every signed object the platform hands out is checked with the protocol's own verifiers, as a
 * terminal would check it.
 */
import {
  checkCredentialValidity,
  decodeDenyList,
  decodeRiskPolicy,
  decodeTerminalCertificate,
  decodeTrustList,
  denyEntries,
  fen,
  GENESIS_HASH,
  makeCode,
  signRecord,
  type TerminalRecord,
  type TrustList,
  verifyCredentialSignature,
  verifyDenyList,
  verifyRiskPolicy,
  verifyTerminalCertificate,
  verifyTrustList,
  encodeUploadBatch,
} from '@duet/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOGIN_FAILURES_FREE } from '../src/auth.js';
import { JSON_BODY_MAX_BYTES } from '../src/server.js';
import { CHALLENGE_TTL_S } from '../src/issuance.js';
import { TRUST_LIST_LIFETIME_S } from '../src/keys.js';
import { activationProofMessage } from '@duet/protocol';
import { DEFAULT_SETTINGS } from '../src/settings.js';
import { b64, type EnrolledHolder, expectError, HttpPlatform, idemKey, ok, type Reply, type TestTerminal, unb64 } from './http-harness.js';
import type { TestDatabase } from './pg-harness.js';

interface ListsAnswer {
  readonly trustList: string;
  readonly deny: { readonly version: number; readonly kind: 'none' | 'delta' | 'full'; readonly lists: string[] };
  readonly policy: { readonly version: number; readonly bytes: string } | null;
  readonly terminal: { readonly id: number; readonly status: string };
}

type AuthorizeAnswer = { approved: true; authorization: string } | { approved: false; reason: string; detail: string };

/** A platform per group, opened before its tests and closed after. */
function withPlatform(d: TestDatabase): () => HttpPlatform {
  let h: HttpPlatform | undefined;
  beforeAll(async () => {
    h = await HttpPlatform.on(d);
  });
  afterAll(async () => {
    await h?.close();
  });
  return () => {
    if (h === undefined) throw new Error('the platform did not start');
    return h;
  };
}

async function count(h: HttpPlatform, sql: string, params: readonly (number | string)[] = []): Promise<number> {
  const r = await h.db.one<{ n: number }>(sql, params);
  return Number(r?.n ?? -1);
}

/** Every entry of the deny lists in a /v1/terminal/lists answer, each list verified against `trust`. */
async function denyIn(h: HttpPlatform, a: ListsAnswer, trust: TrustList): Promise<string[]> {
  const out: string[] = [];
  for (const text of a.deny.lists) {
    const list = decodeDenyList(unb64(text));
    await verifyDenyList(list, trust, h.crypto, h.clock.nowS());
    for (const e of denyEntries(list)) out.push(`${e.op} ${e.type}:${e.id}`);
  }
  return out;
}

async function authorize(h: HttpPlatform, t: TestTerminal, code: Uint8Array, amount: number): Promise<AuthorizeAnswer> {
  return ok<AuthorizeAnswer>(await h.post('/v1/terminal/authorize', { code: b64(code), amount, time: h.clock.nowS() }, t));
}

export function platformContract(d: TestDatabase): void {
  describe.skipIf(!d.available)(`platform over HTTP on ${d.name}`, () => {
    describe('enrolment to credential', () => {
      const h = withPlatform(d);

      it('takes a new holder to a credential that verifies against the public trust list, refusing each step taken too early', async () => {
        const p = h();
        const { id, password } = await p.createHolder();
        const session = await p.loginHolder(id, password);
        const agreement = ok<{ version: number; textEn: string; textZh: string }>(await p.get('/v1/holder/agreement', session));
        expect(agreement.textEn).toMatch(/withholding/i);
        expect(agreement.textZh).toMatch(/代扣/);

        expectError(await p.credentialReply(session, 1), 409, 'agreement_required');
        ok(await p.post('/v1/holder/agreement', { version: agreement.version, device: 'test phone' }, session));

        const device = await p.newDeviceKey();
        const deviceId = await p.registerDevice(session, device);
        expectError(await p.credentialReply(session, deviceId), 402, 'insufficient_funds');

        await p.topUp(id, 5_000);
        const issued = await p.issueCredential(session, deviceId);
        const c = issued.credential;
        const { list, roots } = await p.trustList();
        await verifyTrustList(list, roots, p.crypto, p.clock.nowS());
        await verifyCredentialSignature(c, list, p.crypto);
        checkCredentialValidity(c, p.clock.nowS(), 0);
        expect(c.serial).toBe(issued.serial);
        expect(c.holder).toBe(id);
        expect(c.devicePublicKey).toEqual(device.publicKey);
        expect(c.deviceSuite).toBe('p256');

        const money = await p.purses(session);
        expect(money.available).toBe(5_000);
        // A holder in the first week gets half the offline cap, and never more than the money held.
        expect(c.limits.offlineTotal).toBe(Math.min(money.available, DEFAULT_SETTINGS.offlineTotalCapFen / 2));
        expect(c.limits.offlineTotal).toBeLessThanOrEqual(money.available);
        expect(c.limits.offlineTotal).toBeLessThanOrEqual(DEFAULT_SETTINGS.offlineTotalCapFen);
        expect(c.limits.perPayment).toBeLessThanOrEqual(Math.min(c.limits.offlineTotal, DEFAULT_SETTINGS.perPaymentCapFen));
        expect(c.limits.offlineCount).toBe(DEFAULT_SETTINGS.offlineCountCap);
        expect(issued.limits).toEqual({
          perPayment: c.limits.perPayment,
          offlineTotal: c.limits.offlineTotal,
          offlineCount: c.limits.offlineCount,
        });

        // Staff see the same credential on the holder's page; so does the holder.
        const page = ok<{ credentials: Array<{ serial: number; status: string }> }>(await p.get(`/v1/holders/${id}`, await p.admin()));
        expect(page.credentials).toEqual([expect.objectContaining({ serial: issued.serial, status: 'active' })]);
        ok(await p.get(`/v1/holders/${id}`, session));
      });

      it('lets a holder sign out, after which the session is refused', async () => {
        const p = h();
        const { id, password } = await p.createHolder();
        const session = await p.loginHolder(id, password);
        ok(await p.get('/v1/holder/purses', session));
        ok(await p.post('/v1/logout', undefined, session));
        expectError(await p.get('/v1/holder/purses', session), 401, 'unauthenticated');
      });
    });

    describe('refusal paths', () => {
      const h = withPlatform(d);

      it('refuses a blocked holder a credential, and the next deny list a terminal fetches names the holder and the revoked credential', async () => {
        const p = h();
        const holder = await p.enrolHolder({ topUpFen: 3_000 });
        const before = await p.issueCredential(holder.session, holder.deviceId);
        const terminal = await p.newTerminal();
        const first = ok<ListsAnswer>(await p.get('/v1/terminal/lists', terminal));
        const trust = decodeTrustList(unb64(first.trustList));
        expect(await denyIn(p, first, trust)).toEqual([]);

        ok(await p.post(`/v1/holders/${holder.id}/block`, { reason: 'lost phone reported' }, await p.admin()));
        const refused = expectError(await p.credentialReply(holder.session, holder.deviceId), 403, 'account_blocked');
        expect(refused.detail).toBe('lost phone reported');
        // The holder can still sign in and see why (DESIGN §16).
        const page = ok<{ holder: { status: string; blockReason: string } }>(await p.get(`/v1/holders/${holder.id}`, holder.session));
        expect(page.holder).toMatchObject({ status: 'blocked', blockReason: 'lost phone reported' });

        const next = ok<ListsAnswer>(await p.get(`/v1/terminal/lists?deny=${first.deny.version}`, terminal));
        expect(next.deny.kind).toBe('delta');
        expect(next.deny.version).toBeGreaterThan(first.deny.version);
        expect(await denyIn(p, next, trust)).toEqual(
          expect.arrayContaining([`add holder:${holder.id}`, `add credential:${before.serial}`]),
        );

        ok(await p.post(`/v1/holders/${holder.id}/unblock`, { reason: 'phone found' }, await p.admin()));
        await p.issueCredential(holder.session, holder.deviceId);
        const after = ok<ListsAnswer>(await p.get(`/v1/terminal/lists?deny=${next.deny.version}`, terminal));
        expect(await denyIn(p, after, trust)).toEqual([`remove holder:${holder.id}`]);
      });

      it('refuses a challenge used twice, expired, or given to someone else with challenge_expired', async () => {
        const p = h();
        const a = await p.enrolHolder();
        const b = await p.enrolHolder();
        const used = await p.challenge(a.session);
        ok(await p.post('/v1/holder/devices', await p.deviceBody(await p.newDeviceKey(), used), a.session));
        expectError(
          await p.post('/v1/holder/devices', await p.deviceBody(await p.newDeviceKey(), used), a.session),
          400,
          'challenge_expired',
        );

        const theirs = await p.challenge(a.session);
        expectError(
          await p.post('/v1/holder/devices', await p.deviceBody(await p.newDeviceKey(), theirs), b.session),
          400,
          'challenge_expired',
        );

        const old = await p.challenge(a.session);
        p.clock.advance(CHALLENGE_TTL_S + 1);
        expectError(
          await p.post('/v1/holder/devices', await p.deviceBody(await p.newDeviceKey(), old), a.session),
          400,
          'challenge_expired',
        );
      });

      it('refuses a proof made with another key or over another challenge with bad_proof', async () => {
        const p = h();
        const a = await p.enrolHolder();
        const device = await p.newDeviceKey();
        const challenge = await p.challenge(a.session);
        const otherKey = await p.deviceBody(await p.newDeviceKey(), challenge);
        const forged = { ...(await p.deviceBody(device, challenge)), proof: otherKey.proof };
        expectError(await p.post('/v1/holder/devices', forged, a.session), 400, 'bad_proof');
        const otherChallenge = await p.deviceBody(device, await p.challenge(a.session));
        const swapped = { ...(await p.deviceBody(device, challenge)), proof: otherChallenge.proof };
        expectError(await p.post('/v1/holder/devices', swapped, a.session), 400, 'bad_proof');
        // A failed proof does not use up the challenge.
        ok(await p.post('/v1/holder/devices', await p.deviceBody(device, challenge), a.session));
      });

      it('refuses a device key another holder registered with conflict', async () => {
        const p = h();
        const a = await p.enrolHolder();
        const b = await p.enrolHolder();
        const body = await p.deviceBody(a.device, await p.challenge(b.session));
        expectError(await p.post('/v1/holder/devices', body, b.session), 409, 'conflict');
        // Registering one's own key again finds the same device.
        expect(await p.registerDevice(a.session, a.device)).toBe(a.deviceId);
      });

      it('refuses a wrong password or an unknown account with bad_credentials', async () => {
        const p = h();
        const a = await p.createHolder();
        expectError(await p.post('/v1/holder/login', { holderId: a.id, password: 'not-the-password' }), 401, 'bad_credentials');
        expectError(await p.post('/v1/holder/login', { holderId: 999_999_999, password: 'whatever-1' }), 401, 'bad_credentials');
        expectError(await p.post('/v1/staff/login', { username: 'admin', password: 'not-the-password' }), 401, 'bad_credentials');
        expectError(await p.post('/v1/staff/login', { username: 'nobody', password: 'not-the-password' }), 401, 'bad_credentials');
      });

      it('throttles repeated failures with 429 too_many_attempts and a Retry-After, even for the right password, until it passes', async () => {
        const p = h();
        const a = await p.createHolder();
        for (let i = 0; i < LOGIN_FAILURES_FREE; i++) {
          expectError(await p.post('/v1/holder/login', { holderId: a.id, password: `wrong-${i}-pass` }), 401, 'bad_credentials');
        }
        const locked = await p.post('/v1/holder/login', { holderId: a.id, password: a.password });
        expectError(locked, 429, 'too_many_attempts');
        const retryAfter = Number(locked.headers.get('retry-after'));
        expect(retryAfter).toBeGreaterThan(0);
        p.clock.advance(retryAfter);
        await p.loginHolder(a.id, a.password);
      });
    });

    describe('terminals', () => {
      const h = withPlatform(d);

      it('activates with a one-time code and a proof, and gets a certificate that verifies against the trust list', async () => {
        const p = h();
        const { terminalId, code } = await p.registerTerminal('canteen');
        const key = await p.crypto.suite('p256').generate();
        const r = ok<{ terminalId: number; certificate: string; roots: unknown[] }>(await p.activation(code, key));
        expect(r.terminalId).toBe(terminalId);
        const cert = decodeTerminalCertificate(unb64(r.certificate));
        const { list, roots } = await p.trustList();
        await verifyTerminalCertificate(cert, list, p.crypto, p.clock.nowS());
        expect(cert).toMatchObject({ terminalId, merchantId: await p.merchant(), scene: 'canteen', campus: 1, location: 'Window 3' });
        expect(cert.terminalPublicKey).toEqual(key.publicKey);
        expect(r.roots).toEqual(roots.map((k) => ({ keyId: k.keyId, suite: k.suite, publicKey: b64(k.publicKey) })));

        // The code is spent: not again, not with another key, not a made-up one.
        expectError(await p.activation(code, key), 400, 'activation_invalid');
        expectError(await p.activation(code, await p.crypto.suite('p256').generate()), 400, 'activation_invalid');
        expectError(await p.activation('AAAAA-BBBBB-CCCCC-DDDDD', key), 400, 'activation_invalid');
      });

      it('refuses an activation whose proof was made with another key, and leaves the code usable', async () => {
        const p = h();
        const { code } = await p.registerTerminal();
        const key = await p.crypto.suite('p256').generate();
        const other = await p.crypto.suite('p256').generate();
        const proof = await other.sign(activationProofMessage(code, 'p256', key.publicKey));
        const forged = { code, suite: 'p256', publicKey: b64(key.publicKey), proof: b64(proof) };
        expectError(await p.post('/v1/terminal/activate', forged), 400, 'bad_proof');
        ok(await p.activation(code, key));
      });

      it('serves signed lists: the trust list, the deny list in full the first time and as none or deltas after, and the policy', async () => {
        const p = h();
        const t = await p.newTerminal();
        const first = ok<ListsAnswer>(await p.get('/v1/terminal/lists', t));
        const { list: publicList, roots } = await p.trustList();
        expect(unb64(first.trustList)).toEqual(publicList.bytes);
        const trust = decodeTrustList(unb64(first.trustList));
        await verifyTrustList(trust, roots, p.crypto, p.clock.nowS());
        expect(first.deny.kind).toBe('full');
        expect(first.deny.lists).toHaveLength(1);
        await denyIn(p, first, trust);
        expect(first.terminal).toEqual({ id: t.id, status: 'active' });
        if (first.policy === null) throw new Error('no policy on first sync');
        const policy = decodeRiskPolicy(unb64(first.policy.bytes));
        await verifyRiskPolicy(policy, trust, p.crypto, p.clock.nowS());
        expect(policy.policyVersion).toBe(first.policy.version);

        const same = ok<ListsAnswer>(await p.get(`/v1/terminal/lists?deny=${first.deny.version}&policy=${first.policy.version}`, t));
        expect(same.deny).toEqual({ version: first.deny.version, kind: 'none', lists: [] });
        expect(same.policy).toBeNull();

        ok(await p.post('/v1/deny-entries', { type: 'card', id: 4242, denied: true, reason: 'card reported lost' }, await p.admin()));
        const changed = ok<ListsAnswer>(await p.get(`/v1/terminal/lists?deny=${first.deny.version}&policy=${first.policy.version}`, t));
        expect(changed.deny.kind).toBe('delta');
        expect(await denyIn(p, changed, trust)).toEqual(['add card:4242']);
      });

      it('refuses a tampered or replayed signed request, and a revoked terminal', async () => {
        const p = h();
        const t = await p.newTerminal();
        const signed = await t.sign('GET', '/v1/terminal/lists?deny=1', new Uint8Array(0));
        expectError(await p.request('GET', '/v1/terminal/lists', { headers: signed }), 401, 'bad_signature');
        const again = await t.sign('GET', '/v1/terminal/lists', new Uint8Array(0));
        ok(await p.request('GET', '/v1/terminal/lists', { headers: again }));
        expectError(await p.request('GET', '/v1/terminal/lists', { headers: again }), 409, 'conflict');

        ok(await p.post(`/v1/terminals/${t.id}/revoke`, undefined, await p.admin()));
        expectError(await p.get('/v1/terminal/lists', t), 403, 'forbidden');
      });
    });

    describe('online authorization', () => {
      const h = withPlatform(d);

      it('approves a real code once and debits the purse; declines the same code again and an amount above the balance', async () => {
        const p = h();
        const holder = await p.enrolHolder({ topUpFen: 10_000 });
        const { credential } = await p.issueCredential(holder.session, holder.deviceId);
        const t = await p.newTerminal();

        const code = await makeCode(credential, holder.device, p.clock.nowS(), 1);
        const approved = await authorize(p, t, code.bytes, 1_200);
        expect(approved).toEqual({ approved: true, authorization: expect.any(String) });
        expect((await p.purses(holder.session)).cash).toBe(8_800);

        const replay = await authorize(p, t, code.bytes, 1_200);
        expect(replay).toMatchObject({ approved: false, reason: 'declined_online' });
        expect(replay.approved === false && replay.detail).toMatch(/code_used/);

        const big = await makeCode(credential, holder.device, p.clock.nowS(), 2);
        expect(await authorize(p, t, big.bytes, 9_000)).toMatchObject({ approved: false, reason: 'insufficient_funds' });
        expect((await p.purses(holder.session)).cash).toBe(8_800);
        expect(await count(p, 'SELECT COUNT(*) AS n FROM online_authorizations WHERE holder_id = ?', [holder.id])).toBe(1);
      });

      it('declines a code signed by a key other than the credential’s device key', async () => {
        const p = h();
        const holder = await p.enrolHolder({ topUpFen: 2_000 });
        const { credential } = await p.issueCredential(holder.session, holder.deviceId);
        const t = await p.newTerminal();
        const thief = await p.newDeviceKey();
        const forged = await makeCode(credential, thief, p.clock.nowS(), 1);
        const a = await authorize(p, t, forged.bytes, 100);
        expect(a).toMatchObject({ approved: false, reason: 'declined_online' });
        expect(a.approved === false && a.detail).toMatch(/bad_signature/);
        expect((await p.purses(holder.session)).cash).toBe(2_000);
      });
    });

    describe('record upload', () => {
      const h = withPlatform(d);

      async function records(
        p: HttpPlatform,
        t: TestTerminal,
        holder: EnrolledHolder,
        credential: Parameters<typeof makeCode>[0],
        from: { sequence: number; previousHash: Uint8Array },
        amounts: readonly number[],
      ): Promise<TerminalRecord[]> {
        const out: TerminalRecord[] = [];
        let previousHash = from.previousHash;
        for (const [i, amount] of amounts.entries()) {
          const sequence = from.sequence + i;
          const code = await makeCode(credential, holder.device, p.clock.nowS(), 100 + sequence * 10 + amount);
          const rec = await signRecord(
            {
              terminalId: t.id,
              sequence,
              previousHash,
              time: p.clock.nowS(),
              kind: 'payment',
              path: 'offline',
              medium: 'qr',
              outcome: 'accepted',
              amount: fen(amount),
              merchantId: t.merchantId,
              trustListVersion: 1,
              denyListVersion: 1,
              policyVersion: 1,
              evidence: code.bytes,
              terminalSuite: 'p256',
            },
            t.signer,
          );
          out.push(rec);
          previousHash = p.crypto.sha256(rec.bytes);
        }
        return out;
      }

      function upload(p: HttpPlatform, t: TestTerminal, batch: Uint8Array): Promise<Reply> {
        return p.request('POST', '/v1/terminal/upload', { as: t, raw: batch });
      }

      it('acknowledges a signed batch, changes nothing when it comes again, and flags a different record under a held sequence', async () => {
        const p = h();
        const holder = await p.enrolHolder({ topUpFen: 5_000 });
        const { credential } = await p.issueCredential(holder.session, holder.deviceId);
        const t = await p.newTerminal();
        const recs = await records(p, t, holder, credential, { sequence: 1, previousHash: GENESIS_HASH }, [300, 450, 120]);
        const batch = encodeUploadBatch(t.id, recs);

        expect(ok(await upload(p, t, batch))).toEqual({ ackedThrough: 3, stored: 3, duplicates: 0, flagged: 0 });
        expect(ok(await upload(p, t, batch))).toEqual({ ackedThrough: 3, stored: 0, duplicates: 3, flagged: 0 });
        expect(await count(p, 'SELECT COUNT(*) AS n FROM records WHERE terminal_id = ?', [t.id])).toBe(3);

        const second = recs[1];
        if (second === undefined) throw new Error('no record 2');
        const [fork] = await records(p, t, holder, credential, { sequence: 2, previousHash: second.previousHash }, [999]);
        if (fork === undefined) throw new Error('no fork');
        expect(ok(await upload(p, t, encodeUploadBatch(t.id, [fork])))).toEqual({ ackedThrough: 3, stored: 0, duplicates: 0, flagged: 1 });
        const flags = await p.db.all('SELECT sequence, reason, evidence FROM intake_flags WHERE terminal_id = ?', [t.id]);
        expect(flags).toEqual([{ sequence: 2, reason: 'fork', evidence: fork.bytes }]);
        const held = await p.db.one('SELECT bytes FROM records WHERE terminal_id = ? AND sequence = 2', [t.id]);
        expect(held?.bytes).toEqual(second.bytes);
        // The same fork again raises no second alarm.
        expect(ok(await upload(p, t, encodeUploadBatch(t.id, [fork])))).toMatchObject({ flagged: 1 });
        expect(await count(p, 'SELECT COUNT(*) AS n FROM intake_flags WHERE terminal_id = ?', [t.id])).toBe(1);
      });

      it('acknowledges only the contiguous part, and catches up when the gap is filled', async () => {
        const p = h();
        const holder = await p.enrolHolder({ topUpFen: 5_000 });
        const { credential } = await p.issueCredential(holder.session, holder.deviceId);
        const t = await p.newTerminal();
        const recs = await records(p, t, holder, credential, { sequence: 1, previousHash: GENESIS_HASH }, [100, 200, 300]);
        const [r1, r2, r3] = recs;
        if (r1 === undefined || r2 === undefined || r3 === undefined) throw new Error('records');
        expect(ok(await upload(p, t, encodeUploadBatch(t.id, [r1])))).toMatchObject({ ackedThrough: 1, stored: 1 });
        expect(ok(await upload(p, t, encodeUploadBatch(t.id, [r3])))).toMatchObject({ ackedThrough: 1, stored: 1 });
        expect(ok(await upload(p, t, encodeUploadBatch(t.id, [r2])))).toMatchObject({ ackedThrough: 3, stored: 1 });
      });

      it("refuses a batch of another terminal's records, and a batch that does not parse", async () => {
        const p = h();
        const holder = await p.enrolHolder({ topUpFen: 1_000 });
        const { credential } = await p.issueCredential(holder.session, holder.deviceId);
        const mine = await p.newTerminal();
        const other = await p.newTerminal();
        const recs = await records(p, other, holder, credential, { sequence: 1, previousHash: GENESIS_HASH }, [100]);
        expectError(await upload(p, mine, encodeUploadBatch(other.id, recs)), 403, 'forbidden');
        expectError(await upload(p, mine, new Uint8Array([1, 2, 3, 4])), 400, 'validation_failed');
        expect(await count(p, 'SELECT COUNT(*) AS n FROM records WHERE terminal_id IN (?, ?)', [mine.id, other.id])).toBe(0);
      });
    });

    describe('idempotent top-up', () => {
      const h = withPlatform(d);

      async function postings(p: HttpPlatform, key: string): Promise<{ operations: number; entries: number }> {
        const ops = await p.db.all('SELECT id FROM purse_operations WHERE idem_key = ?', [key]);
        let entries = 0;
        for (const op of ops)
          entries += await count(p, "SELECT COUNT(*) AS n FROM ledger_entries WHERE kind = 'topup' AND reference = ?", [
            `topup:${Number(op.id)}`,
          ]);
        return { operations: ops.length, entries };
      }

      it('answers the same key and body with the same result and posts once; refuses the key with another amount', async () => {
        const p = h();
        const a = await p.createHolder();
        const session = await p.loginHolder(a.id, a.password);
        const key = idemKey('same');
        const first = await p.topUp(a.id, 700, key);
        const again = await p.topUp(a.id, 700, key);
        expect(again).toEqual(first);
        expect(await postings(p, key)).toEqual({ operations: 1, entries: 1 });
        expect((await p.purses(session)).cash).toBe(700);

        const other = await p.post(`/v1/holders/${a.id}/topups`, { amount: 800, channel: 'cashier', idempotencyKey: key }, await p.admin());
        expectError(other, 409, 'idempotency_mismatch');
        expect((await p.purses(session)).cash).toBe(700);
      });

      it('posts once for 20 identical requests in flight at the same time', async () => {
        const p = h();
        const a = await p.createHolder();
        const session = await p.loginHolder(a.id, a.password);
        const admin = await p.admin();
        const key = idemKey('burst');
        const body = { amount: 300, channel: 'bank', idempotencyKey: key };
        const replies = await Promise.all(Array.from({ length: 20 }, () => p.post(`/v1/holders/${a.id}/topups`, body, admin)));
        const answers = replies.map((r) => ok(r));
        for (const x of answers) expect(x).toEqual(answers[0]);
        expect(await postings(p, key)).toEqual({ operations: 1, entries: 1 });
        expect((await p.purses(session)).cash).toBe(300);
      });

      it('stores nothing for a refused top-up, so the same key can be used again', async () => {
        const p = h();
        const a = await p.createHolder();
        const key = idemKey('retry');
        const tooMuch = await p.post(
          `/v1/holders/${a.id}/topups`,
          { amount: 1_000_001, channel: 'cashier', idempotencyKey: key },
          await p.admin(),
        );
        expectError(tooMuch, 400, 'validation_failed');
        expect(await postings(p, key)).toEqual({ operations: 0, entries: 0 });
        expect((await p.topUp(a.id, 1_000, key)).amount).toBe(1_000);
      });
    });

    describe('key rotation with a terminal that holds the old trust list', () => {
      const h = withPlatform(d);

      it('lists the new issuer key before using it, keeps old credentials valid, and a terminal on the old list refuses new ones until it syncs', async () => {
        const p = h();
        const holder = await p.enrolHolder({ topUpFen: 5_000 });
        const before = await p.issueCredential(holder.session, holder.deviceId);
        const terminal = await p.newTerminal();
        const old = decodeTrustList(unb64(ok<ListsAnswer>(await p.get('/v1/terminal/lists', terminal)).trustList));

        const rotated = ok<{ keyId: number; trustListVersion: number }>(
          await p.post('/v1/keys/rotate', { role: 'issuer' }, await p.admin()),
        );
        expect(rotated.trustListVersion).toBe(old.listVersion + 1);
        const early = await p.post('/v1/keys/activate', { role: 'issuer' }, await p.admin());
        expectError(early, 409, 'conflict');
        const wait = Number(early.headers.get('retry-after'));
        expect(wait).toBeGreaterThan(0);
        expect(wait).toBeLessThanOrEqual(TRUST_LIST_LIFETIME_S);
        // A terminal that syncs during the rotation already holds the new key.
        const during = (await p.trustList()).list;
        expect(during.keys.map((k) => k.keyId)).toContain(rotated.keyId);
        // Still signed by the old key until activation.
        expect((await p.issueCredential(holder.session, holder.deviceId)).credential.issuerKeyId).toBe(before.credential.issuerKeyId);

        p.clock.advance(wait);
        const activated = ok<{ active: number; retired: number; trustListVersion: number }>(
          await p.post('/v1/keys/activate', { role: 'issuer' }, await p.admin()),
        );
        expect(activated).toMatchObject({ active: rotated.keyId, retired: before.credential.issuerKeyId });
        const { list: current, roots } = await p.trustList();
        await verifyTrustList(current, roots, p.crypto, p.clock.nowS());
        expect(current.listVersion).toBe(activated.trustListVersion);

        // The credential issued before rotation verifies on the old list and on the new one.
        await verifyCredentialSignature(before.credential, old, p.crypto);
        await verifyCredentialSignature(before.credential, current, p.crypto);

        // A new credential is signed by the new key: fine on the new list and the rotation-time list,
        // unknown_key on the list the terminal still holds.
        const session = await p.loginHolder(holder.id, holder.password); // the old session idled out
        const after = await p.issueCredential(session, holder.deviceId);
        expect(after.credential.issuerKeyId).toBe(rotated.keyId);
        await verifyCredentialSignature(after.credential, current, p.crypto);
        await verifyCredentialSignature(after.credential, during, p.crypto);
        await expect(verifyCredentialSignature(after.credential, old, p.crypto)).rejects.toMatchObject({ code: 'unknown_key' });

        // Until it syncs.
        const synced = decodeTrustList(unb64(ok<ListsAnswer>(await p.get('/v1/terminal/lists', terminal)).trustList));
        expect(synced.listVersion).toBe(current.listVersion);
        await verifyCredentialSignature(after.credential, synced, p.crypto);

        // And online authorization accepts a code under the new credential.
        const code = await makeCode(after.credential, holder.device, p.clock.nowS(), 1);
        expect(await authorize(p, terminal, code.bytes, 500)).toMatchObject({ approved: true });
        expect((await p.purses(session)).cash).toBe(4_500);
      });

      it('refuses a second rotation while one is pending', async () => {
        const p = h();
        ok(await p.post('/v1/keys/rotate', { role: 'list_signer' }, await p.admin()));
        expectError(await p.post('/v1/keys/rotate', { role: 'list_signer' }, await p.admin()), 409, 'conflict');
      });
    });

    describe('bad input', () => {
      const h = withPlatform(d);
      const holderBody = { id: 555_001, name: 'Valid Name', role: 'student', campus: 1 };

      it('takes a well-formed body (each case below differs from it in one thing only)', async () => {
        const p = h();
        ok(await p.post('/v1/holders', holderBody, await p.admin()));
      });

      it.each([
        ['an unknown field', { ...holderBody, extra: 1 }],
        ['a missing field', { id: 555_001, name: 'Valid Name', role: 'student' }],
        ['a string for a number', { ...holderBody, id: 'five' }],
        ['a number for a string', { ...holderBody, name: 12345 }],
        ['an object for a number', { ...holderBody, campus: { n: 1 } }],
        ['an oversized string', { ...holderBody, name: 'x'.repeat(101) }],
        ['an empty string', { ...holderBody, name: '' }],
        ['an id out of range', { ...holderBody, id: 2 ** 53 }],
        ['a fractional id', { ...holderBody, id: 1.5 }],
        ['an unknown role', { ...holderBody, role: 'dean' }],
        ['an array body', [holderBody]],
      ])('refuses %s with 400 validation_failed', async (_what, body) => {
        const p = h();
        expectError(await p.post('/v1/holders', body, await p.admin()), 400, 'validation_failed');
      });

      it.each([
        ['a negative amount', -5],
        ['a zero amount', 0],
        ['a fractional amount', 10.5],
        ['an amount as text', '100'],
        ['an amount as a boolean', true],
        ['an amount as null', null],
        ['an amount over the cap', 1_000_001],
      ])('refuses a top-up with %s', async (_what, amount) => {
        const p = h();
        const a = await p.createHolder();
        const r = await p.post(`/v1/holders/${a.id}/topups`, { amount, channel: 'cashier', idempotencyKey: idemKey() }, await p.admin());
        expectError(r, 400, 'validation_failed');
        expect(await count(p, 'SELECT COUNT(*) AS n FROM purse_operations WHERE holder_id = ?', [a.id])).toBe(0);
      });

      it('refuses a body that is not JSON, and a content type it does not take, with 400 bad_request', async () => {
        const p = h();
        const admin = await p.admin();
        expectError(
          await p.request('POST', '/v1/holders', { as: admin, raw: '{"id": 1,', contentType: 'application/json' }),
          400,
          'bad_request',
        );
        expectError(await p.request('POST', '/v1/holders', { as: admin, raw: 'id=1', contentType: 'text/plain' }), 400, 'bad_request');
      });

      it('refuses a body over the limit with 413 payload_too_large', async () => {
        const p = h();
        const huge = { ...holderBody, name: 'x'.repeat(JSON_BODY_MAX_BYTES + 1) };
        expectError(await p.post('/v1/holders', huge, await p.admin()), 413, 'payload_too_large');
        const t = await p.newTerminal();
        expectError(
          await p.request('POST', '/v1/terminal/upload', { as: t, raw: new Uint8Array(3 * 1024 * 1024) }),
          413,
          'payload_too_large',
        );
      });

      it.each([
        ['/v1/holders?limit=0'],
        ['/v1/holders?limit=501'],
        ['/v1/holders?limit=ten'],
        ['/v1/holders?offset=-1'],
        ['/v1/holders?status=asleep'],
        ['/v1/holders?colour=blue'],
        ['/v1/holders/0'],
        ['/v1/holders/abc'],
        ['/v1/holders/1234567890123456'],
      ])('refuses the query or path %s with 400 validation_failed', async (path) => {
        const p = h();
        expectError(await p.get(path, await p.admin()), 400, 'validation_failed');
      });

      it('answers an unknown route or method with a typed 404', async () => {
        const p = h();
        const e = expectError(await p.get('/v1/no-such-thing'), 404, 'not_found');
        expect(e.detail).toBe('GET /v1/no-such-thing');
        expectError(await p.request('DELETE', '/v1/holders'), 404, 'not_found');
      });
    });
  });
}
