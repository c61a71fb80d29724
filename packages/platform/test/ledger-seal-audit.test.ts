/**
 * The full audit (audit.ts) against a real attacker with write access to the database, on SQLite
 * and PostgreSQL: the append-only triggers are switched off, one thing is rewritten, and the audit
 * must stop at the first break and name it (check, position, entry, root or account, expected and
 * found). Each corruption is undone afterwards and the audit must pass again, which proves it was
 * that change and nothing else the audit reacted to. The property test makes any single-byte
 * change to an entry's canonical bytes, writes the entry those bytes describe into the database,
 * and requires the audit to catch it.
 */
import { toHex } from '@duet/protocol';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { type AuditBreakCode, auditLedgerFull, type LedgerAuditReport } from '../src/audit.js';
import type { Db, Queryable, SqlValue } from '../src/db/db.js';
import {
  type ChainEntry,
  closeDueRoots,
  decodeEntry,
  encodeEntry,
  entryHash,
  readChainEntries,
  sealLedger,
  ZERO_HASH,
} from '../src/ledger-seal.js';
import { LEDGER_SEAL_GRACE_S } from '../src/limits.js';
import {
  addWitnessKey,
  allowTampering,
  countersignRoot,
  postTopUps,
  SEAL_T0,
  type SealedLedger,
  sealedLedger,
} from './ledger-seal-fixture.js';
import { databases } from './pg-harness.js';

/** 12 entries sealed; roots over 1..5 (countersigned) and 6..10; positions 11..12 not rooted yet. */
async function books(s: SealedLedger): Promise<{ witness: Awaited<ReturnType<typeof addWitnessKey>> }> {
  await postTopUps(s.db, 12);
  await sealLedger(s.db, s.crypto, SEAL_T0);
  expect((await closeDueRoots(s.db, s.crypto, s.keys, SEAL_T0, { rootEvery: 5 })).map((r) => r.id)).toEqual([1, 2]);
  const witness = await addWitnessKey(s);
  await countersignRoot(s, 1, witness);
  return { witness };
}

const audit = (s: SealedLedger, nowS = SEAL_T0, o: Parameters<typeof auditLedgerFull>[2] = {}) =>
  auditLedgerFull(s.db, s.crypto, { nowS, ...o });

function expectBreak(r: LedgerAuditReport, code: AuditBreakCode, at: Record<string, number> = {}) {
  expect(r.ok, JSON.stringify(r.break)).toBe(false);
  expect(r.break).toMatchObject({ code, ...at });
  expect(r.break?.en.length).toBeGreaterThan(0);
  expect(r.break?.zh).not.toBe(r.break?.en);
  // Checks before the failed one passed; the failed one is named; none after it ran.
  const failed = r.checks.findIndex((c) => c.status === 'failed');
  expect(r.checks[failed]?.check).toBe(r.break?.check);
  expect(r.checks.slice(0, failed).every((c) => c.status === 'passed')).toBe(true);
  expect(r.checks.slice(failed + 1).every((c) => c.status === 'not_run')).toBe(true);
  return r.break;
}

async function entryAt(db: Db, position: number): Promise<ChainEntry> {
  const row = await db.one('SELECT entry_id FROM ledger_chain WHERE position = ?', [position]);
  const id = Number(row?.entry_id);
  const e = (await readChainEntries(db, [id])).get(id);
  if (e === undefined) throw new Error(`no entry at position ${position}`);
  return e;
}

async function one(db: Db, sql: string, params: readonly SqlValue[]): Promise<SqlValue> {
  const r = await db.one(sql, params);
  const v = r === undefined ? undefined : Object.values(r)[0];
  if (v === undefined) throw new Error(`no row: ${sql}`);
  return v;
}

for (const d of databases) {
  describe.skipIf(!d.available)(`the full audit on ${d.name}`, () => {
    let s: SealedLedger;
    let witness: Awaited<ReturnType<typeof addWitnessKey>>;

    beforeAll(async () => {
      s = await sealedLedger(d);
      ({ witness } = await books(s));
    });

    it('passes a sound ledger: every check passed, unwitnessed roots and the unrooted tail as warnings only', async () => {
      const r = await audit(s);
      expect(r).toMatchObject({ ok: true, break: null, counts: { entries: 12, postings: 24, sealed: 12, roots: 2, witnessedRoots: 1 } });
      expect(r.checks.map((c) => c.status)).toEqual(['passed', 'passed', 'passed', 'passed', 'passed']);
      expect(r.warnings.map((w) => [w.code, w.count, w.detail])).toEqual([
        ['unwitnessed_roots', 1, 'roots 2'],
        ['unrooted_tail', 2, 'positions 11..12'],
      ]);
      expect((await audit(s, SEAL_T0, { pinnedWitnessKeys: [{ suite: 'p256', publicKey: witness.signer.publicKey }] })).ok).toBe(true);
      await allowTampering(s.db);
      expect((await audit(s)).ok).toBe(true);
    });

    /** Applies a change, expects the audit's first break, undoes it and expects a clean audit again. */
    async function caught(change: () => Promise<void>, undo: () => Promise<void>, code: AuditBreakCode, at: Record<string, number>) {
      await change();
      try {
        return expectBreak(await audit(s), code, at);
      } finally {
        await undo();
        const again = await audit(s);
        expect(again.ok, JSON.stringify(again.break)).toBe(true);
      }
    }

    it('catches a memo rewritten after sealing, at its position, with the stored and recomputed hashes', async () => {
      const e = await entryAt(s.db, 7);
      const set = (memo: string) => s.db.run('UPDATE ledger_entries SET memo = ? WHERE id = ?', [memo, e.id]).then(() => {});
      const b = await caught(
        () => set('rewritten'),
        () => set(e.memo),
        'chain_hash_mismatch',
        { position: 7, entryId: e.id },
      );
      const stored = toHex((await one(s.db, 'SELECT hash FROM ledger_chain WHERE position = 7', [])) as Uint8Array);
      expect(b?.expected).toContain(stored);
      expect(b?.found).not.toContain(stored);
    });

    it('catches one posting amount changed: the entry no longer balances', async () => {
      const e = await entryAt(s.db, 4);
      const shift = (by: number) =>
        s.db.run('UPDATE ledger_postings SET amount = amount + ? WHERE entry_id = ? AND line = 0', [by, e.id]).then(() => {});
      const b = await caught(
        () => shift(1),
        () => shift(-1),
        'entry_unbalanced',
        { entryId: e.id },
      );
      expect(b?.found).toBe('2 posting(s) summing to 1 fen');
    });

    it('catches both postings moved together (still balanced): the accounts no longer equal their balances', async () => {
      const e = await entryAt(s.db, 9);
      const move = async (by: number) => {
        await s.db.run('UPDATE ledger_postings SET amount = amount + ? WHERE entry_id = ? AND line = 0', [by, e.id]);
        await s.db.run('UPDATE ledger_postings SET amount = amount - ? WHERE entry_id = ? AND line = 1', [by, e.id]);
      };
      const first = Math.min(...e.postings.map((p) => p.account));
      await caught(
        () => move(100),
        () => move(-100),
        'balance_mismatch',
        { accountId: first },
      );
    });

    it('catches both postings and both balances moved together: only the chain can tell', async () => {
      const e = await entryAt(s.db, 9);
      const [debitLeg, creditLeg] = e.postings;
      if (debitLeg === undefined || creditLeg === undefined) throw new Error('two postings expected');
      const move = async (by: number) => {
        await s.db.run('UPDATE ledger_postings SET amount = amount + ? WHERE entry_id = ? AND line = 0', [by, e.id]);
        await s.db.run('UPDATE ledger_postings SET amount = amount - ? WHERE entry_id = ? AND line = 1', [by, e.id]);
        for (const [account, delta] of [
          [debitLeg.account, by],
          [creditLeg.account, -by],
        ] as const)
          await s.db.run(
            'UPDATE ledger_balances SET balance = balance + ? WHERE account_id = ? AND shard = (SELECT MIN(shard) FROM ledger_balances WHERE account_id = ?)',
            [delta, account, account],
          );
      };
      await caught(
        () => move(100),
        () => move(-100),
        'chain_hash_mismatch',
        { position: 9, entryId: e.id },
      );
    });

    it('catches a balance row changed, naming the account, the sum of its postings and what the rows say', async () => {
      const e = await entryAt(s.db, 2);
      const cash = e.postings[1]?.account ?? 0;
      const shift = (by: number) =>
        s.db.run('UPDATE ledger_balances SET balance = balance + ? WHERE account_id = ? AND shard = 0', [by, cash]).then(() => {});
      const b = await caught(
        () => shift(-50),
        () => shift(50),
        'balance_mismatch',
        { accountId: cash },
      );
      const amount = e.postings[1]?.amount ?? 0;
      expect(b?.expected).toBe(`${amount} fen (the sum of its postings)`);
      expect(b?.found).toBe(`${amount - 50} fen (the sum of its balance rows)`);
    });

    it('catches a chain hash overwritten, at that position', async () => {
      const stored = (await one(s.db, 'SELECT hash FROM ledger_chain WHERE position = 3', [])) as Uint8Array;
      const set = (h: Uint8Array) => s.db.run('UPDATE ledger_chain SET hash = ? WHERE position = 3', [h]).then(() => {});
      await caught(
        () => set(new Uint8Array(32).fill(0xab)),
        () => set(stored),
        'chain_hash_mismatch',
        { position: 3 },
      );
    });

    it('catches an entry rewritten with the chain recomputed after it: the Merkle root of its root no longer matches', async () => {
      const e = await entryAt(s.db, 8);
      const hashes = await s.db.all('SELECT position, hash FROM ledger_chain WHERE position >= 8 ORDER BY position');
      const rewrite = async () => {
        await s.db.run('UPDATE ledger_entries SET memo = ? WHERE id = ?', ['quietly rewritten', e.id]);
        let previous = (await one(s.db, 'SELECT hash FROM ledger_chain WHERE position = 7', [])) as Uint8Array;
        for (let p = 8; p <= 12; p++) {
          previous = entryHash(s.crypto, previous, await entryAt(s.db, p));
          await s.db.run('UPDATE ledger_chain SET hash = ? WHERE position = ?', [previous, p]);
        }
      };
      const undo = async () => {
        await s.db.run('UPDATE ledger_entries SET memo = ? WHERE id = ?', [e.memo, e.id]);
        for (const h of hashes) await s.db.run('UPDATE ledger_chain SET hash = ? WHERE position = ?', [h.hash ?? null, Number(h.position)]);
      };
      await caught(rewrite, undo, 'merkle_mismatch', { rootId: 2 });
    });

    it('catches a missing chain position in the middle', async () => {
      const row = await s.db.one('SELECT * FROM ledger_chain WHERE position = 6');
      await caught(
        () => s.db.run('DELETE FROM ledger_chain WHERE position = 6').then(() => {}),
        () =>
          s.db
            .run('INSERT INTO ledger_chain (position, entry_id, hash, sealed_at) VALUES (?, ?, ?, ?)', [
              6,
              row?.entry_id ?? 0,
              row?.hash ?? null,
              SEAL_T0,
            ])
            .then(() => {}),
        'chain_gap',
        { position: 6 },
      );
    });

    it("catches a root's platform signature, link, hash and key, each named by root", async () => {
      const get = async (col: string, id: number) => (await one(s.db, `SELECT ${col} FROM ledger_roots WHERE id = ?`, [id])) as Uint8Array;
      const set = (col: string, id: number, v: SqlValue) =>
        s.db.run(`UPDATE ledger_roots SET ${col} = ? WHERE id = ?`, [v, id]).then(() => {});
      const flip = (b: Uint8Array) => Uint8Array.from(b, (v, i) => (i === 10 ? v ^ 1 : v));
      for (const [col, id, code] of [
        ['signature', 2, 'root_signature'],
        ['prev_root_hash', 2, 'root_link'],
        ['root_hash', 1, 'root_hash_mismatch'],
        ['merkle_root', 1, 'merkle_mismatch'],
      ] as const) {
        const was = await get(col, id);
        await caught(
          () => set(col, id, flip(was)),
          () => set(col, id, was),
          code,
          { rootId: id },
        );
      }
      const key = Number(await one(s.db, 'SELECT key_id FROM ledger_roots WHERE id = 1', []));
      await caught(
        () => set('key_id', 1, 999),
        () => set('key_id', 1, key),
        'root_key_unknown',
        { rootId: 1 },
      );
    });

    it('catches a witness countersignature that does not verify, and one by a key the auditor did not pin', async () => {
      const was = (await one(s.db, 'SELECT witness_signature FROM ledger_roots WHERE id = 1', [])) as Uint8Array;
      const set = (v: Uint8Array) => s.db.run('UPDATE ledger_roots SET witness_signature = ? WHERE id = 1', [v]).then(() => {});
      await caught(
        () => set(Uint8Array.from(was, (v, i) => (i === 40 ? v ^ 4 : v))),
        () => set(was),
        'witness_signature',
        { rootId: 1 },
      );
      const other = await s.crypto.suite('p256').generate();
      const r = await audit(s, SEAL_T0, { pinnedWitnessKeys: [{ suite: 'p256', publicKey: other.publicKey }] });
      expectBreak(r, 'witness_not_pinned', { rootId: 1 });
      const keyId = Number(await one(s.db, 'SELECT witness_key_id FROM ledger_roots WHERE id = 1', []));
      await caught(
        () => s.db.run('UPDATE ledger_witness_keys SET public_key = ? WHERE id = ?', [other.publicKey, keyId]).then(() => {}),
        () => s.db.run('UPDATE ledger_witness_keys SET public_key = ? WHERE id = ?', [witness.signer.publicKey, keyId]).then(() => {}),
        'witness_signature',
        { rootId: 1 },
      );
    });

    it.skipIf(d.name !== 'sqlite')('reports a stored value of the wrong type as unreadable, not as a crash', async () => {
      const was = (await one(s.db, 'SELECT hash FROM ledger_chain WHERE position = 5', [])) as Uint8Array;
      await caught(
        // SQLite's column affinity lets text into a BLOB column; the length CHECK counts its characters.
        () => s.db.run('UPDATE ledger_chain SET hash = ? WHERE position = 5', ['x'.repeat(32)]).then(() => {}),
        () => s.db.run('UPDATE ledger_chain SET hash = ? WHERE position = 5', [was]).then(() => {}),
        'row_unreadable',
        {},
      );
    });

    it('treats an unsealed entry as a warning within the sealing grace and as a break after it; a deleted tail the same', async () => {
      const [late] = await postTopUps(s.db, 1, { atS: SEAL_T0 + 100 });
      const within = await audit(s, SEAL_T0 + 100 + LEDGER_SEAL_GRACE_S - 1);
      expect(within.ok).toBe(true);
      expect(within.warnings.find((w) => w.code === 'unsealed_tail')).toMatchObject({ count: 1, detail: `entries ${late}` });
      const after = expectBreak(await audit(s, SEAL_T0 + 100 + LEDGER_SEAL_GRACE_S), 'entry_unsealed', { entryId: Number(late) });
      expect(after?.found).toBe(`unsealed, posted at ${SEAL_T0 + 100} (${LEDGER_SEAL_GRACE_S} s before the audit)`);
      expect((await audit(s, SEAL_T0 + 100 + LEDGER_SEAL_GRACE_S, { graceS: LEDGER_SEAL_GRACE_S + 1 })).ok).toBe(true);
      await sealLedger(s.db, s.crypto, SEAL_T0 + 101);
      expect((await audit(s, SEAL_T0 + 10_000)).ok).toBe(true);
      // Cutting the newest chain row off makes its entry unsealed again: a break once the grace has passed.
      const tail = await s.db.one('SELECT * FROM ledger_chain ORDER BY position DESC LIMIT 1');
      await s.db.run('DELETE FROM ledger_chain WHERE position = ?', [Number(tail?.position)]);
      expectBreak(await audit(s, SEAL_T0 + 10_000), 'entry_unsealed', { entryId: Number(late) });
      await s.db.run('INSERT INTO ledger_chain (position, entry_id, hash, sealed_at) VALUES (?, ?, ?, ?)', [
        Number(tail?.position),
        Number(tail?.entry_id),
        tail?.hash ?? null,
        SEAL_T0,
      ]);
      expect((await audit(s, SEAL_T0 + 10_000)).ok).toBe(true);
    });
  });

  describe.skipIf(!d.available)(`single-byte changes on ${d.name}`, () => {
    let s: SealedLedger;
    let entries: ChainEntry[];

    beforeAll(async () => {
      s = await sealedLedger(d);
      await books(s);
      await allowTampering(s.db);
      const ids = (await s.db.all('SELECT entry_id FROM ledger_chain ORDER BY position')).map((r) => Number(r.entry_id));
      const byId = await readChainEntries(s.db, ids);
      entries = ids.map((id) => byId.get(id)).filter((e): e is ChainEntry => e !== undefined);
    });

    /** Writes `to` in place of `from` (the attacker's edit), foreign keys off meanwhile. */
    async function replace(from: ChainEntry, to: ChainEntry): Promise<void> {
      const write = async (q: Queryable) => {
        await q.run('DELETE FROM ledger_postings WHERE entry_id = ?', [from.id]);
        await q.run('DELETE FROM ledger_entries WHERE id = ?', [from.id]);
        // Re-inserted under the id of the attacker's choosing (PostgreSQL: an identity needs OVERRIDING SYSTEM VALUE).
        await q.run(
          `INSERT INTO ledger_entries (id, posted_at, effective_at, kind, reference, created_by, memo, reverses)
           ${s.db.dialect.name === 'postgres' ? 'OVERRIDING SYSTEM VALUE ' : ''}VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
          [to.id, to.postedAtS, to.effectiveAtS, to.kind, to.reference, to.createdBy, to.memo, to.reverses],
        );
        for (const p of to.postings)
          await q.run('INSERT INTO ledger_postings (entry_id, line, account_id, amount) VALUES (?, ?, ?, ?)', [
            to.id,
            p.line,
            p.account,
            p.amount,
          ]);
      };
      if (s.db.dialect.name === 'postgres') {
        await s.db.tx(async (q) => {
          await q.run('SET LOCAL session_replication_role = replica');
          await write(q);
        });
        return;
      }
      // One connection on SQLite: the pragma holds until it is turned back on (it cannot change inside a transaction).
      await s.db.run('PRAGMA foreign_keys = OFF');
      try {
        await s.db.tx(write);
      } finally {
        await s.db.run('PRAGMA foreign_keys = ON');
      }
    }

    it('any single-byte change to an entry’s canonical bytes changes its hash, and the audit catches the entry it describes', async () => {
      const runs = d.name === 'sqlite' ? 120 : 30;
      let decodable = 0;
      let written = 0;
      await fc.assert(
        fc.asyncProperty(fc.nat(), fc.nat(), fc.integer({ min: 1, max: 255 }), async (pick, at, x) => {
          const e = entries[pick % entries.length];
          if (e === undefined) throw new Error('no entries');
          const bytes = encodeEntry(e);
          const changed = bytes.slice();
          const i = at % bytes.length;
          changed[i] = (changed[i] ?? 0) ^ x;
          expect(toHex(s.crypto.sha256(changed))).not.toBe(toHex(s.crypto.sha256(bytes)));
          let other: ChainEntry;
          try {
            other = decodeEntry(changed);
          } catch {
            return; // No entry has these bytes: nothing the database could hold.
          }
          decodable += 1;
          expect(toHex(entryHash(s.crypto, ZERO_HASH, other))).not.toBe(toHex(entryHash(s.crypto, ZERO_HASH, e)));
          try {
            await replace(e, other);
          } catch {
            return; // The schema itself refuses it (a zero amount, a duplicate id or line, NUL in text): also caught.
          }
          written += 1;
          try {
            const r = await audit(s);
            expect(r.ok, `byte ${i} ^ ${x}: ${JSON.stringify(other)}`).toBe(false);
          } finally {
            await replace(other, e);
          }
          expect((await audit(s)).ok).toBe(true);
        }),
        { numRuns: runs },
      );
      // The property must have exercised the audit, not only the decoder: about two runs in three do.
      expect(decodable).toBeGreaterThanOrEqual(written);
      expect(written).toBeGreaterThan(runs / 4);
    });
  });
}
