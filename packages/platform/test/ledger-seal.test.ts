/**
 * The sealed ledger (DESIGN §9, docs/ledger.md): the formats, checked against an outside reference
 * (the RFC 6962 Certificate Transparency vectors) and against the documented layout written out
 * independently here; then, on SQLite and PostgreSQL, sealing: every committed entry chained
 * exactly once, by several sealers at once, an entry committed out of id order sealed after the
 * ones that committed before it, entries below the look-back window found by the full scan; roots
 * every N positions, signed, linked, closed once when two processes race; the append-only rules
 * in the database; and the background sealer's start, stop and runOnce.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { concatBytes, fen, fromHex, toHex } from '@duet/protocol';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { auditLedgerFull } from '../src/audit.js';
import type { Db } from '../src/db/db.js';
import { credit, debit, holderAccounts, postMany, systemAccount } from '../src/ledger.js';
import {
  CanonicalBytesError,
  type ChainEntry,
  chainTip,
  closeDueRoots,
  closeRoot,
  decodeEntry,
  encodeEntry,
  entryHash,
  LEDGER_ENTRY_LABEL,
  LedgerSealer,
  lastRoot,
  merkleRoot,
  type RootBody,
  readChainEntries,
  rootHash,
  rootSigningMessage,
  sealLedger,
  ZERO_HASH,
} from '../src/ledger-seal.js';
import { count, postTopUps, SEAL_T0, type SealedLedger, sealedLedger } from './ledger-seal-fixture.js';
import { databases } from './pg-harness.js';
import { nodeCrypto } from '@duet/protocol/node';

const crypto = nodeCrypto();
const sha256 = (b: Uint8Array) => crypto.sha256(b);

// ---------------------------------------------------------------------------------------------
// Formats

describe('RFC 6962 §2.1 Merkle Tree Hash', () => {
  const vectors = JSON.parse(readFileSync(join(import.meta.dirname, 'vectors/rfc6962-merkle-tree-hash.json'), 'utf8')) as {
    leaves: string[];
    roots: string[];
  };

  it('matches the Certificate Transparency reference roots for 1 to 8 leaves (odd sizes promote, never duplicate)', () => {
    expect(vectors.roots).toHaveLength(8);
    vectors.roots.forEach((root, i) => {
      expect(toHex(merkleRoot(crypto, vectors.leaves.slice(0, i + 1).map(fromHex))), `${i + 1} leaves`).toBe(root);
    });
  });

  it('gives [a, b, c] and [a, b, c, c] different roots (duplicating the odd leaf would not), and refuses an empty range', () => {
    const [a, b, c] = ['01', '02', '03'].map(fromHex) as [Uint8Array, Uint8Array, Uint8Array];
    expect(toHex(merkleRoot(crypto, [a, b, c]))).not.toBe(toHex(merkleRoot(crypto, [a, b, c, c])));
    expect(() => merkleRoot(crypto, [])).toThrow(RangeError);
  });
});

/** The documented layout (docs/ledger.md), written out with Buffer on its own, not with the code under test. */
function documentedBytes(e: ChainEntry): Uint8Array {
  const parts: Buffer[] = [];
  const i64 = (v: number) => {
    const b = Buffer.alloc(8);
    b.writeBigInt64BE(BigInt(v));
    parts.push(b);
  };
  const u32 = (v: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(v);
    parts.push(b);
  };
  const text = (s: string) => {
    const b = Buffer.from(s, 'utf8');
    u32(b.length);
    parts.push(b);
  };
  i64(e.id);
  i64(e.postedAtS);
  i64(e.effectiveAtS);
  text(e.kind);
  parts.push(Buffer.from([e.reference === null ? 0 : 1]));
  if (e.reference !== null) text(e.reference);
  text(e.createdBy);
  text(e.memo);
  parts.push(Buffer.from([e.reverses === null ? 0 : 1]));
  if (e.reverses !== null) i64(e.reverses);
  u32(e.postings.length);
  for (const p of e.postings) [p.line, p.account, p.amount].forEach(i64);
  return new Uint8Array(Buffer.concat(parts));
}

const safeInt = fc.integer({ min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER });
const text = fc.string({ unit: 'binary', maxLength: 24 });
const chainEntry: fc.Arbitrary<ChainEntry> = fc.record({
  id: safeInt,
  postedAtS: safeInt,
  effectiveAtS: safeInt,
  kind: text,
  reference: fc.option(text, { nil: null }),
  createdBy: text,
  memo: text,
  reverses: fc.option(safeInt, { nil: null }),
  postings: fc.array(fc.record({ line: safeInt, account: safeInt, amount: safeInt }), { maxLength: 5 }),
});

describe('canonical entry bytes (docs/ledger.md)', () => {
  it('are the documented layout, byte for byte: a worked example', () => {
    const e: ChainEntry = {
      id: 1,
      postedAtS: 2,
      effectiveAtS: 3,
      kind: 'a',
      reference: null,
      createdBy: 'b',
      memo: '',
      reverses: null,
      postings: [
        { line: 0, account: 5, amount: 7 },
        { line: 1, account: 6, amount: -7 },
      ],
    };
    const expected = [
      '0000000000000001 0000000000000002 0000000000000003', // id, posted_at, effective_at
      '00000001 61 00 00000001 62 00000000 00', // kind "a", no reference, created_by "b", memo "", no reverses
      '00000002', // two postings
      '0000000000000000 0000000000000005 0000000000000007', // line 0, account 5, +7
      '0000000000000001 0000000000000006 fffffffffffffff9', // line 1, account 6, -7
    ]
      .join('')
      .replace(/ /g, '');
    expect(toHex(encodeEntry(e))).toBe(expected);
    expect(toHex(entryHash(crypto, ZERO_HASH, e))).toBe(toHex(sha256(concatBytes(LEDGER_ENTRY_LABEL, ZERO_HASH, fromHex(expected)))));
    expect(new TextDecoder().decode(LEDGER_ENTRY_LABEL)).toBe('duet/ledger-entry/v1\0');
  });

  it('are the documented layout for any entry, and decode back to it', () => {
    fc.assert(
      fc.property(chainEntry, (e) => {
        const bytes = encodeEntry(e);
        expect(toHex(bytes)).toBe(toHex(documentedBytes(e)));
        expect(decodeEntry(bytes)).toEqual(e);
      }),
      { numRuns: 300 },
    );
  });

  it('any single-byte change changes the entry hash, and the changed bytes either do not decode or are another entry', () => {
    fc.assert(
      fc.property(
        chainEntry,
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        (e, at, x, prev) => {
          const bytes = encodeEntry(e);
          const changed = bytes.slice();
          const i = at % bytes.length;
          changed[i] = (changed[i] ?? 0) ^ x;
          const hash = (b: Uint8Array) => toHex(sha256(concatBytes(LEDGER_ENTRY_LABEL, prev, b)));
          expect(hash(changed)).not.toBe(hash(bytes));
          expect(hash(bytes)).toBe(toHex(entryHash(crypto, prev, e)));
          let other: ChainEntry;
          try {
            other = decodeEntry(changed);
          } catch (err) {
            expect(err).toBeInstanceOf(CanonicalBytesError);
            return;
          }
          expect(other).not.toEqual(e);
          expect(toHex(entryHash(crypto, prev, other))).toBe(hash(changed));
        },
      ),
      { numRuns: 500 },
    );
  });

  it('refuse bytes that are not exactly one entry: trailing, truncated, a bad flag, bad UTF-8, a count larger than the bytes', () => {
    const e: ChainEntry = {
      id: 9,
      postedAtS: SEAL_T0,
      effectiveAtS: SEAL_T0,
      kind: 'topup',
      reference: 'r',
      createdBy: 'x',
      memo: '充值',
      reverses: null,
      postings: [{ line: 0, account: 1, amount: 1 }],
    };
    const b = encodeEntry(e);
    const kindAt = 24;
    const flagAt = kindAt + 4 + 5;
    const memoAt = flagAt + 1 + 4 + 1 + 4 + 1 + 4;
    const cases: Array<[string, Uint8Array]> = [
      ['a trailing byte', concatBytes(b, new Uint8Array([0]))],
      ['one byte short', b.subarray(0, b.length - 1)],
      ['presence flag 2', Uint8Array.from(b, (v, i) => (i === flagAt ? 2 : v))],
      ['a lone UTF-8 continuation byte', Uint8Array.from(b, (v, i) => (i === memoAt ? 0x80 : v))],
      ['a posting count of 2^32 - 1', concatBytes(b.subarray(0, b.length - 28), fromHex('ffffffff'), b.subarray(b.length - 24))],
    ];
    expect(decodeEntry(b)).toEqual(e);
    for (const [what, bad] of cases) expect(() => decodeEntry(bad), what).toThrow(CanonicalBytesError);
  });
});

describe('canonical root bytes', () => {
  const body: RootBody = {
    id: 3,
    firstPosition: 2001,
    lastPosition: 3000,
    merkleRoot: new Uint8Array(32).fill(7),
    prevRootHash: new Uint8Array(32).fill(9),
    signedAtS: SEAL_T0,
    keyId: 4,
    suite: 'p256',
  };

  it('hash to SHA-256 of exactly the signed message, and every field changes the hash', () => {
    const message = rootSigningMessage(body);
    expect(new TextDecoder().decode(message.subarray(0, 20))).toBe('duet/ledger-root/v1\0');
    expect(toHex(rootHash(crypto, body))).toBe(toHex(sha256(message)));
    const changed: RootBody[] = [
      { ...body, id: 4 },
      { ...body, firstPosition: 2002 },
      { ...body, lastPosition: 2999 },
      { ...body, merkleRoot: new Uint8Array(32).fill(8) },
      { ...body, prevRootHash: new Uint8Array(32) },
      { ...body, signedAtS: SEAL_T0 + 1 },
      { ...body, keyId: 5 },
      { ...body, suite: 'ed25519' },
    ];
    const hashes = new Set([body, ...changed].map((r) => toHex(rootHash(crypto, r))));
    expect(hashes.size).toBe(changed.length + 1);
  });
});

// ---------------------------------------------------------------------------------------------
// Sealing, on both databases

/** Every chain row, in position order. */
async function chain(db: Db): Promise<Array<{ position: number; entryId: number; hash: string }>> {
  const rows = await db.all('SELECT position, entry_id, hash FROM ledger_chain ORDER BY position');
  return rows.map((r) => ({ position: Number(r.position), entryId: Number(r.entry_id), hash: toHex(r.hash as Uint8Array) }));
}

/** Recomputes the whole chain from the entries with the code's own hash, independently of the sealer's loop. */
async function expectChainRecomputes(db: Db): Promise<void> {
  const rows = await chain(db);
  const entries = await readChainEntries(
    db,
    rows.map((r) => r.entryId),
  );
  let previous = ZERO_HASH;
  rows.forEach((r, i) => {
    expect(r.position).toBe(i + 1);
    const e = entries.get(r.entryId);
    if (e === undefined) throw new Error(`entry ${r.entryId} missing`);
    const h = sha256(concatBytes(LEDGER_ENTRY_LABEL, previous, documentedBytes(e)));
    expect(r.hash, `position ${r.position}`).toBe(toHex(h));
    previous = h;
  });
}

async function sealAll(s: SealedLedger, db: Db = s.db): Promise<number> {
  let total = 0;
  for (;;) {
    const r = await sealLedger(db, s.crypto, s.clock.nowS(), { fullScan: true });
    total += r.sealed;
    if (r.sealed === 0) return total;
  }
}

for (const d of databases) {
  describe.skipIf(!d.available)(`sealing on ${d.name}`, () => {
    it('chains every committed entry once, in id order, max per transaction; sealing again adds nothing (idempotent)', async () => {
      const s = await sealedLedger(d);
      const ids = await postTopUps(s.db, 23);
      const first = await sealLedger(s.db, s.crypto, SEAL_T0, { max: 10 });
      expect(first).toEqual({ sealed: 10, lastPosition: 10 });
      expect(await sealAll(s)).toBe(13);
      expect((await chain(s.db)).map((r) => r.entryId)).toEqual(ids);
      await expectChainRecomputes(s.db);
      const before = await chain(s.db);
      expect(await sealLedger(s.db, s.crypto, SEAL_T0 + 5)).toEqual({ sealed: 0, lastPosition: 23 });
      expect(await sealLedger(s.db, s.crypto, SEAL_T0 + 5, { fullScan: true })).toEqual({ sealed: 0, lastPosition: 23 });
      expect(await chain(s.db)).toEqual(before);
      await expect(sealLedger(s.db, s.crypto, SEAL_T0, { max: 0 })).rejects.toThrow(RangeError);
      await expect(sealLedger(s.db, s.crypto, SEAL_T0, { max: 1_001 })).rejects.toThrow(RangeError);
    });

    it('several sealers on their own connections, while entries keep coming, never give one entry two positions nor skip one', async () => {
      const s = await sealedLedger(d);
      const sealers = [await s.storage.open(), await s.storage.open(), await s.storage.open()];
      let posting = true;
      const poster = (async () => {
        try {
          for (let i = 0; i < 15; i++) await postTopUps(s.db, 1 + (i % 4));
        } finally {
          posting = false;
        }
      })();
      const runs = sealers.map(async (db) => {
        let sealed = 0;
        while (posting) {
          sealed += (await sealLedger(db, s.crypto, SEAL_T0, { max: 3 })).sealed;
          await yieldToLoop();
        }
        return sealed;
      });
      await poster;
      const byEach = await Promise.all(runs);
      const last = await sealAll(s, sealers[0]);
      const entries = await count(s.db, 'SELECT COUNT(*) AS n FROM ledger_entries');
      // 1 + (i mod 4) entries for i = 0..14: three rounds of 1+2+3+4, then 1+2+3.
      expect(entries).toBe(36);
      expect(byEach.reduce((a, b) => a + b, 0) + last).toBe(entries);
      const rows = await chain(s.db);
      expect(rows.map((r) => r.position)).toEqual(Array.from({ length: entries }, (_, i) => i + 1));
      expect(new Set(rows.map((r) => r.entryId)).size).toBe(entries);
      await expectChainRecomputes(s.db);
      expect((await auditLedgerFull(s.db, s.crypto, { nowS: SEAL_T0 })).ok).toBe(true);
    });

    it.skipIf(d.name !== 'postgres')(
      'an entry whose transaction commits after a higher id committed is sealed after it, at the next position',
      async () => {
        const s = await sealedLedger(d);
        const slow = await s.storage.open();
        const fast = await s.storage.open();
        const [a, b] = [await s.db.tx((q) => holderAccounts(q, 90_001)), await s.db.tx((q) => holderAccounts(q, 90_002))];
        const pool = await systemAccount(s.db, 'subsidy_pool');
        const clearing = await systemAccount(s.db, 'topup_clearing');
        const entry = (kind: string, debitFrom: typeof pool, to: typeof a.cash) => ({
          kind,
          reference: null,
          postedAtS: SEAL_T0,
          effectiveAtS: SEAL_T0,
          createdBy: 'test',
          postings: [debit(debitFrom, fen(500)), credit(to, fen(500))],
        });
        await postTopUps(s.db, 2);
        let release!: () => void;
        const gate = new Promise<void>((r) => {
          release = r;
        });
        let posted!: (id: number) => void;
        const slowId = new Promise<number>((r) => {
          posted = r;
        });
        // The slow transaction takes its id, then waits before committing.
        const committed = slow.tx(async (q) => {
          const [id] = await postMany(q, [entry('subsidy_grant', pool, a.subsidy)]);
          posted(Number(id));
          await gate;
          return Number(id);
        });
        const early = await slowId;
        const [later] = await fast.tx((q) => postMany(q, [entry('topup', clearing, b.cash)]));
        expect(Number(later)).toBeGreaterThan(early);
        expect((await sealLedger(s.db, s.crypto, SEAL_T0)).sealed).toBe(3);
        expect((await chain(s.db)).map((r) => r.entryId)).toEqual([1, 2, Number(later)]);
        release();
        const id = await committed;
        expect(id).toBe(early);
        expect(await sealLedger(s.db, s.crypto, SEAL_T0)).toEqual({ sealed: 1, lastPosition: 4 });
        expect((await chain(s.db)).map((r) => r.entryId)).toEqual([1, 2, Number(later), early]);
        await expectChainRecomputes(s.db);
        expect((await auditLedgerFull(s.db, s.crypto, { nowS: SEAL_T0 })).ok).toBe(true);
      },
    );

    it('an entry that appears below the look-back window is missed by the windowed scan and found by the full scan', async () => {
      const s = await sealedLedger(d);
      await postTopUps(s.db, 3);
      await sealAll(s);
      // Entries written with ids of our choosing, as if a transaction holding a low id had committed very late.
      const legs = await s.db.all('SELECT line, account_id, amount FROM ledger_postings WHERE entry_id = 3 ORDER BY line');
      const overriding = s.name === 'postgres' ? 'OVERRIDING SYSTEM VALUE ' : '';
      /** Entries id and id + 1: the mirror of entry 3 and entry 3 again, so every account's sum is unchanged. */
      const insertPair = async (id: number) => {
        for (const [k, sign] of [
          [id, -1],
          [id + 1, 1],
        ] as const) {
          await s.db.run(
            `INSERT INTO ledger_entries (id, posted_at, effective_at, kind, reference, created_by, memo, reverses)
             ${overriding}VALUES (?, ?, ?, 'topup', ?, 'test', 'late', NULL)`,
            [k, SEAL_T0, SEAL_T0, `late:${k}`],
          );
          for (const l of legs)
            await s.db.run('INSERT INTO ledger_postings (entry_id, line, account_id, amount) VALUES (?, ?, ?, ?)', [
              k,
              Number(l.line),
              Number(l.account_id),
              sign * Number(l.amount),
            ]);
        }
      };
      await insertPair(60);
      expect((await sealLedger(s.db, s.crypto, SEAL_T0, { windowIds: 5 })).sealed).toBe(2);
      await insertPair(10);
      expect(await sealLedger(s.db, s.crypto, SEAL_T0, { windowIds: 5 })).toEqual({ sealed: 0, lastPosition: 5 });
      const audit = await auditLedgerFull(s.db, s.crypto, { nowS: SEAL_T0 });
      expect(audit.ok).toBe(true);
      expect(audit.warnings.find((w) => w.code === 'unsealed_tail')).toMatchObject({ count: 2, detail: 'entries 10, 11' });
      expect(await sealLedger(s.db, s.crypto, SEAL_T0, { fullScan: true })).toEqual({ sealed: 2, lastPosition: 7 });
      expect((await chain(s.db)).map((r) => r.entryId)).toEqual([1, 2, 3, 60, 61, 10, 11]);
      await expectChainRecomputes(s.db);
      const after = await auditLedgerFull(s.db, s.crypto, { nowS: SEAL_T0 });
      expect(after.ok).toBe(true);
      expect(after.warnings.map((w) => w.code)).toEqual(['unrooted_tail']);
    });

    it('closes a root every N positions over exactly the next N, signed by the list-signing key and linked to the one before', async () => {
      const s = await sealedLedger(d);
      await postTopUps(s.db, 10);
      await sealAll(s);
      const roots = await closeDueRoots(s.db, s.crypto, s.keys, SEAL_T0 + 60, { rootEvery: 4 });
      expect(roots.map((r) => [r.id, r.firstPosition, r.lastPosition])).toEqual([
        [1, 1, 4],
        [2, 5, 8],
      ]);
      expect(await closeDueRoots(s.db, s.crypto, s.keys, SEAL_T0 + 60, { rootEvery: 4 })).toEqual([]);
      const signer = await s.keys.active('list_signer');
      const hashes = (await chain(s.db)).map((r) => fromHex(r.hash));
      let previous = ZERO_HASH;
      for (const r of roots) {
        expect(toHex(r.merkleRoot)).toBe(toHex(merkleRoot(crypto, hashes.slice(r.firstPosition - 1, r.lastPosition))));
        expect(toHex(r.prevRootHash)).toBe(toHex(previous));
        expect(r.keyId).toBe(signer.keyId);
        expect(await crypto.suite(r.suite).verify(signer.signer.publicKey, rootSigningMessage(r), r.signature)).toBe(true);
        expect(toHex(r.rootHash)).toBe(toHex(rootHash(crypto, r)));
        previous = r.rootHash;
      }
      // The rest, when asked; and nothing when there is nothing new.
      const rest = await closeRoot(s.db, s.crypto, s.keys, SEAL_T0 + 61);
      expect([rest?.firstPosition, rest?.lastPosition, toHex(rest?.prevRootHash ?? ZERO_HASH)]).toEqual([9, 10, toHex(previous)]);
      expect(await closeRoot(s.db, s.crypto, s.keys, SEAL_T0 + 62)).toBeUndefined();
      // A short root once the oldest unrooted position waited the maximum age.
      await postTopUps(s.db, 2);
      await sealLedger(s.db, s.crypto, SEAL_T0 + 100);
      expect(await closeDueRoots(s.db, s.crypto, s.keys, SEAL_T0 + 199, { rootEvery: 4, rootMaxAgeS: 100 })).toEqual([]);
      const aged = await closeDueRoots(s.db, s.crypto, s.keys, SEAL_T0 + 200, { rootEvery: 4, rootMaxAgeS: 100 });
      expect(aged.map((r) => [r.id, r.firstPosition, r.lastPosition])).toEqual([[4, 11, 12]]);
      const audit = await auditLedgerFull(s.db, s.crypto, { nowS: SEAL_T0 + 200 });
      expect(audit).toMatchObject({ ok: true, counts: { entries: 12, sealed: 12, roots: 4, witnessedRoots: 0 } });
    });

    it('two processes closing roots at once close each range exactly once', async () => {
      const s = await sealedLedger(d);
      await postTopUps(s.db, 21);
      await sealAll(s);
      const [db2, db3] = [await s.storage.open(), await s.storage.open()];
      const both = await Promise.all([
        closeDueRoots(db2, s.crypto, s.keys, SEAL_T0, { rootEvery: 3 }),
        closeDueRoots(db3, s.crypto, s.keys, SEAL_T0, { rootEvery: 3 }),
      ]);
      expect(both[0].length + both[1].length).toBe(7);
      const rows = await s.db.all('SELECT id, first_position, last_position FROM ledger_roots ORDER BY id');
      expect(rows.map((r) => [Number(r.id), Number(r.first_position), Number(r.last_position)])).toEqual(
        Array.from({ length: 7 }, (_, i) => [i + 1, 3 * i + 1, 3 * i + 3]),
      );
      expect((await auditLedgerFull(s.db, s.crypto, { nowS: SEAL_T0 })).ok).toBe(true);
    });

    it('refuses in the database itself to change or delete the chain or a root; a countersignature may be added once', async () => {
      const s = await sealedLedger(d);
      await postTopUps(s.db, 2);
      await sealAll(s);
      await closeRoot(s.db, s.crypto, s.keys, SEAL_T0);
      const refused = [
        ['UPDATE ledger_chain SET hash = ? WHERE position = 1', [new Uint8Array(32)]],
        ['UPDATE ledger_chain SET entry_id = 2 WHERE position = 1', []],
        ['DELETE FROM ledger_chain WHERE position = 2', []],
        ['UPDATE ledger_roots SET merkle_root = ? WHERE id = 1', [new Uint8Array(32)]],
        ['UPDATE ledger_roots SET signed_at = signed_at + 1 WHERE id = 1', []],
        ['DELETE FROM ledger_roots WHERE id = 1', []],
      ] as const;
      for (const [sql, params] of refused) await expect(s.db.run(sql, params), sql).rejects.toThrow(/append-only/);
      if (s.name === 'postgres') await expect(s.db.run('TRUNCATE ledger_chain CASCADE')).rejects.toThrow(/append-only/);
      const key = await s.db.one(
        "INSERT INTO ledger_witness_keys (name, suite, public_key, added_by, added_at, status) VALUES ('w', 'p256', ?, 'f', 0, 'active') RETURNING id",
        [new Uint8Array(33).fill(2)],
      );
      const witness = 'UPDATE ledger_roots SET witness_key_id = ?, witness_signature = ?, witnessed_at = 1 WHERE id = 1';
      expect(await s.db.run(witness, [Number(key?.id), new Uint8Array(64)])).toBe(1);
      await expect(s.db.run(witness, [Number(key?.id), new Uint8Array(64).fill(1)])).rejects.toThrow(/append-only/);
      expect(await chain(s.db)).toHaveLength(2);
    });
  });

  describe.skipIf(!d.available)(`the background sealer on ${d.name}`, () => {
    let s: SealedLedger;
    beforeAll(async () => {
      s = await sealedLedger(d);
    });

    it('seals in the background from start, closes due roots, stops cleanly, and runOnce seals on demand', async () => {
      const errors: unknown[] = [];
      const sealer = new LedgerSealer(s.db, s.crypto, s.keys, s.clock, { intervalMs: 10, rootEvery: 5, onError: (e) => errors.push(e) });
      await postTopUps(s.db, 7);
      sealer.start();
      expect(sealer.running).toBe(true);
      for (let i = 0; i < 200 && (await chainTip(s.db)).position < 7; i++) await new Promise((r) => setTimeout(r, 10));
      expect((await chainTip(s.db)).position).toBe(7);
      expect((await lastRoot(s.db))?.lastPosition).toBe(5);
      await sealer.stop();
      expect(sealer.running).toBe(false);
      await postTopUps(s.db, 4);
      await new Promise((r) => setTimeout(r, 60));
      expect((await chainTip(s.db)).position).toBe(7);
      const run = await sealer.runOnce();
      expect(run.sealed).toBe(4);
      expect(run.roots.map((r) => [r.firstPosition, r.lastPosition])).toEqual([[6, 10]]);
      await postTopUps(s.db, 1);
      await sealer.finish();
      expect((await chainTip(s.db)).position).toBe(12);
      expect(errors).toEqual([]);
      expect(() => new LedgerSealer(s.db, s.crypto, s.keys, s.clock, { intervalMs: 0 })).toThrow(RangeError);
    });

    it('reports a failed run to onError and tries again at the next interval', async () => {
      const down = async (): Promise<never> => {
        throw new Error('storage down');
      };
      const broken: Db = {
        dialect: s.db.dialect,
        all: down,
        one: down,
        run: down,
        insertMany: down,
        tx: down,
        migrate: down,
        close: async () => {},
      };
      const errors: unknown[] = [];
      const sealer = new LedgerSealer(broken, s.crypto, s.keys, s.clock, { intervalMs: 5, onError: (e) => errors.push(e) });
      sealer.start();
      for (let i = 0; i < 100 && errors.length < 2; i++) await new Promise((r) => setTimeout(r, 5));
      await sealer.stop();
      expect(errors.length).toBeGreaterThanOrEqual(2);
      expect(String(errors[0])).toContain('storage down');
    });
  });
}
