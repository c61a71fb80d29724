/**
 * The sealed ledger over real HTTP (http-harness.ts), on SQLite and PostgreSQL: the school finance
 * office registers its witness key, reads a root and the chain pages under it, recomputes them
 * with the documented formats, countersigns, and the audit counts it; the platform refuses a bad
 * countersignature, a second key, unknown roots and keys, and out-of-bound pages; the audit route
 * names a break; and the platform runs its sealer from open to close (a last run seals the rest).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Signer } from '@duet/protocol';
import { nodeCrypto } from '@duet/protocol/node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LedgerAuditReport } from '../src/audit.js';
import { type ChainEntry, entryHash, merkleRoot, witnessMessage, ZERO_HASH } from '../src/ledger-seal.js';
import { openPlatform } from '../src/platform.js';
import { allowTampering, count, postTopUps } from './ledger-seal-fixture.js';
import { b64, expectError, HttpPlatform, ok, PASSPHRASE, type Session, TestClock, T0_S, unb64 } from './http-harness.js';
import { databases, type TestDatabase } from './pg-harness.js';

interface RootJson {
  id: number;
  firstPosition: number;
  lastPosition: number;
  merkleRoot: string;
  prevRootHash: string;
  rootHash: string;
  keyId: number;
  witness: { keyId: number; signature: string; witnessedAt: number } | null;
}

interface ChainJson {
  previousHash: string | null;
  positions: Array<{
    position: number;
    entryId: number;
    hash: string;
    entry?: {
      id: number;
      postedAt: number;
      effectiveAt: number;
      kind: string;
      reference: string | null;
      createdBy: string;
      memo: string;
      reverses: number | null;
      postings: Array<{ line: number; account: number; amount: number }>;
    } | null;
  }>;
}

function chainEntry(e: NonNullable<ChainJson['positions'][number]['entry']>): ChainEntry {
  return { ...e, postedAtS: e.postedAt, effectiveAtS: e.effectiveAt };
}

for (const d of databases) {
  describe.skipIf(!d.available)(`the ledger routes over HTTP on ${d.name}`, () => {
    let h: HttpPlatform;
    let finance: Session;
    let witness: Signer;
    let witnessId: number;

    beforeAll(async () => {
      h = await HttpPlatform.on(d);
      finance = await h.staff('school_finance', 'finance1');
      const holder = await h.createHolder();
      for (const amount of [1_000, 250, 3_300, 45, 800]) await h.topUp(holder.id, amount);
      witness = await h.crypto.suite('p256').generate();
    });
    afterAll(async () => {
      await h?.close();
    });

    it('the operator seals and closes a root; the witness registers its key (idempotent), recomputes the root and countersigns it', async () => {
      const admin = await h.admin();
      const closed = ok<{ sealed: number; root: RootJson }>(await h.post('/v1/ledger/roots', {}, admin));
      const entries = await count(h.db, 'SELECT COUNT(*) AS n FROM ledger_entries');
      expect(entries).toBeGreaterThanOrEqual(5);
      expect(closed.root).toMatchObject({ id: 1, firstPosition: 1, lastPosition: entries, witness: null });
      expect(ok<{ root: RootJson | null }>(await h.post('/v1/ledger/roots', {}, admin)).root).toBeNull();

      const body = { name: 'Finance office 2026 / 财务处', suite: 'p256', publicKey: b64(witness.publicKey) };
      const key = ok<{ id: number; addedBy: string; status: string }>(await h.post('/v1/ledger/witness-keys', body, finance));
      expect(key).toMatchObject({ addedBy: 'finance1', status: 'active' });
      witnessId = key.id;
      expect(ok<{ id: number }>(await h.post('/v1/ledger/witness-keys', body, admin)).id).toBe(witnessId);
      expect(ok<{ keys: Array<{ id: number }> }>(await h.get('/v1/ledger/witness-keys', finance)).keys.map((k) => k.id)).toEqual([
        witnessId,
      ]);

      // The witness's own work: every hash from the entries, then the Merkle root.
      const [root] = ok<{ roots: RootJson[] }>(await h.get('/v1/ledger/roots?witnessed=false', finance)).roots;
      if (root === undefined) throw new Error('no root to witness');
      const page = ok<ChainJson>(await h.get(`/v1/ledger/chain?from=${root.firstPosition}&limit=${root.lastPosition}`, finance));
      expect(page.previousHash).toBe(b64(ZERO_HASH));
      let previous = ZERO_HASH;
      const leaves = page.positions.map((p) => {
        if (p.entry === undefined || p.entry === null) throw new Error(`no entry at ${p.position}`);
        previous = entryHash(h.crypto, previous, chainEntry(p.entry));
        expect(b64(previous), `position ${p.position}`).toBe(p.hash);
        return previous;
      });
      expect(b64(merkleRoot(h.crypto, leaves))).toBe(root.merkleRoot);

      const signature = await witness.sign(witnessMessage(unb64(root.rootHash)));
      const signed = ok<RootJson>(
        await h.post(`/v1/ledger/roots/${root.id}/witness`, { keyId: witnessId, signature: b64(signature) }, finance),
      );
      expect(signed.witness).toMatchObject({ keyId: witnessId, signature: b64(signature), witnessedAt: h.clock.nowS() });
      // Again with the same key (a new ECDSA signature): idempotent, the first countersignature stays.
      const again = await witness.sign(witnessMessage(unb64(root.rootHash)));
      expect(
        ok<RootJson>(await h.post(`/v1/ledger/roots/${root.id}/witness`, { keyId: witnessId, signature: b64(again) }, finance)).witness
          ?.signature,
      ).toBe(b64(signature));
      expect(ok<{ roots: RootJson[] }>(await h.get('/v1/ledger/roots?witnessed=false', finance)).roots).toEqual([]);
      expect(ok<{ roots: RootJson[] }>(await h.get('/v1/ledger/roots?witnessed=true', admin)).roots.map((r) => r.id)).toEqual([1]);

      const report = ok<LedgerAuditReport>(await h.get('/v1/ledger/audit', finance));
      expect(report).toMatchObject({ ok: true, break: null, counts: { entries, sealed: entries, roots: 1, witnessedRoots: 1 } });
    });

    it('refuses a countersignature that does not verify, by another key, for an unknown root or key, or from the operator', async () => {
      const root = ok<{ roots: RootJson[] }>(await h.get('/v1/ledger/roots', finance)).roots[0];
      if (root === undefined) throw new Error('no root');
      const message = witnessMessage(unb64(root.rootHash));
      const good = await witness.sign(message);
      const bad = Uint8Array.from(good, (v, i) => (i === 5 ? v ^ 1 : v));
      const url = `/v1/ledger/roots/${root.id}/witness`;
      expectError(await h.post(url, { keyId: witnessId, signature: b64(bad) }, finance), 400, 'bad_countersignature');
      expectError(await h.post(url, { keyId: 9_999, signature: b64(good) }, finance), 404, 'not_found');
      expectError(await h.post('/v1/ledger/roots/99/witness', { keyId: witnessId, signature: b64(good) }, finance), 404, 'not_found');
      expectError(await h.post(url, { keyId: witnessId, signature: b64(good) }, await h.admin()), 403, 'forbidden');
      const other = await h.crypto.suite('p256').generate();
      const second = ok<{ id: number }>(
        await h.post('/v1/ledger/witness-keys', { name: 'another', suite: 'p256', publicKey: b64(other.publicKey) }, finance),
      );
      const otherSig = await other.sign(message);
      expectError(await h.post(url, { keyId: second.id, signature: b64(otherSig) }, finance), 409, 'conflict');
      // The countersignature stored first is still there.
      expect(ok<RootJson>(await h.post(url, { keyId: witnessId, signature: b64(good) }, finance)).witness?.keyId).toBe(witnessId);
    });

    it('bounds its pages and checks every body: page sizes, positions, a public key that is not on the curve, unknown fields', async () => {
      const tip = await count(h.db, 'SELECT MAX(position) AS n FROM ledger_chain');
      expectError(await h.get('/v1/ledger/chain?from=1&limit=1001', finance), 400, 'validation_failed');
      expectError(await h.get('/v1/ledger/chain?from=0', finance), 400, 'validation_failed');
      expectError(await h.get('/v1/ledger/chain', finance), 400, 'validation_failed');
      expectError(await h.get('/v1/ledger/roots?limit=101', finance), 400, 'validation_failed');
      const hashes = ok<ChainJson>(await h.get('/v1/ledger/chain?from=2&limit=2&include=hashes', finance));
      const first = ok<ChainJson>(await h.get('/v1/ledger/chain?from=1&limit=1', finance));
      expect(hashes.previousHash).toBe(first.positions[0]?.hash);
      expect(hashes.positions.map((p) => [p.position, 'entry' in p])).toEqual([
        [2, false],
        [3, false],
      ]);
      expect(ok<ChainJson>(await h.get(`/v1/ledger/chain?from=${tip + 1}`, finance)).positions).toEqual([]);
      expect(ok<ChainJson>(await h.get(`/v1/ledger/chain?from=${tip + 5}`, finance)).previousHash).toBeNull();
      const notAPoint = b64(new Uint8Array(33).fill(5));
      expectError(
        await h.post('/v1/ledger/witness-keys', { name: 'x', suite: 'p256', publicKey: notAPoint }, finance),
        400,
        'validation_failed',
      );
      expectError(
        await h.post('/v1/ledger/witness-keys', { name: 'x'.repeat(101), suite: 'p256', publicKey: b64(witness.publicKey) }, finance),
        400,
        'validation_failed',
      );
      expectError(await h.post('/v1/ledger/roots', { extra: 1 }, await h.admin()), 400, 'validation_failed');
      expectError(await h.post('/v1/ledger/roots/1/witness', { keyId: witnessId }, finance), 400, 'validation_failed');
    });

    it('names the first break in the audit report once a sealed entry is rewritten in the database', async () => {
      await allowTampering(h.db);
      await h.db.run("UPDATE ledger_entries SET memo = 'rewritten' WHERE id = 1");
      const report = ok<LedgerAuditReport>(await h.get('/v1/ledger/audit', await h.admin()));
      expect(report.ok).toBe(false);
      expect(report.break).toMatchObject({ code: 'chain_hash_mismatch', check: 'chain_recomputes', position: 1, entryId: 1 });
    });
  });

  describe.skipIf(!d.available)(`the platform's own sealer on ${d.name}`, () => {
    const dirs: string[] = [];
    afterAll(() => {
      for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
    });

    async function open(dt: TestDatabase, location: string, ledgerSealer: Parameters<typeof openPlatform>[0]['ledgerSealer']) {
      const dataDir = mkdtempSync(join(tmpdir(), 'duet-seal-'));
      dirs.push(dataDir);
      return openPlatform({
        dbUrl: dt.name === 'sqlite' ? `sqlite:${location}` : location,
        dataDir,
        passphrase: PASSPHRASE,
        crypto: nodeCrypto(),
        clock: new TestClock(T0_S),
        logger: false,
        ...(ledgerSealer === undefined ? {} : { ledgerSealer }),
      });
    }

    it('starts on open, seals and closes roots in the background, can be turned off, and seals the rest on close', async () => {
      const storage = await d.fresh();
      const busy = await open(d, storage.location, { intervalMs: 10, rootEvery: 2 });
      expect(busy.sealer?.running).toBe(true);
      await postTopUps(busy.db, 5);
      for (let i = 0; i < 300 && (await count(busy.db, 'SELECT COUNT(*) AS n FROM ledger_roots')) < 2; i++)
        await new Promise((r) => setTimeout(r, 10));
      expect(await count(busy.db, 'SELECT COUNT(*) AS n FROM ledger_chain')).toBe(5);
      expect(await count(busy.db, 'SELECT COUNT(*) AS n FROM ledger_roots')).toBe(2);
      await busy.close();
      expect(busy.sealer?.running).toBe(false);

      const off = await open(d, storage.location, false);
      expect(off.sealer).toBeUndefined();
      await postTopUps(off.db, 2);
      await off.close();
      // Here the sealer runs at start and then only hourly: runOnce seals the two left by `off`, the close the last three.
      const slow = await open(d, storage.location, { intervalMs: 3_600_000 });
      await slow.sealer?.runOnce();
      expect(await count(slow.db, 'SELECT COUNT(*) AS n FROM ledger_chain')).toBe(7);
      await postTopUps(slow.db, 3);
      await slow.close();
      const check = await storage.open();
      expect(await count(check, 'SELECT COUNT(*) AS n FROM ledger_chain')).toBe(10);
    });
  });
}
