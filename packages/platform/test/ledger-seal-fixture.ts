/**
 * What the sealed-ledger suites share: a migrated database with the platform's real key store (so
 * roots are signed by a list-signing key recorded in platform_keys, as in production), entries
 * posted through the real ledger, witness keys, and the one deliberate act no platform code does:
 * switching the append-only triggers off so a test can play the attacker who rewrites rows.
 */
import { type CryptoProvider, fen, type Signer } from '@duet/protocol';
import { nodeCrypto } from '@duet/protocol/node';
import type { Db } from '../src/db/db.js';
import { KeyStore } from '../src/keys.js';
import { credit, debit, type EntryId, holderAccounts, type NewEntry, postMany, systemAccount } from '../src/ledger.js';
import { witnessMessage } from '../src/ledger-seal.js';
import { ALL_MIGRATIONS } from '../src/platform.js';
import { PASSPHRASE, TestClock } from './http-harness.js';
import type { TestDatabase, TestStorage } from './pg-harness.js';

/** 2027-01-15: far from the wall clock, so nothing depends on it. */
export const SEAL_T0 = 1_800_000_000;

export interface SealedLedger {
  readonly name: 'sqlite' | 'postgres';
  readonly storage: TestStorage;
  readonly db: Db;
  readonly keys: KeyStore;
  readonly crypto: CryptoProvider;
  readonly clock: TestClock;
}

/** Fresh storage, every platform migration, the key store's first start. */
export async function sealedLedger(d: TestDatabase): Promise<SealedLedger> {
  const storage = await d.fresh();
  const db = await storage.open();
  await db.migrate(ALL_MIGRATIONS);
  const crypto = nodeCrypto();
  const clock = new TestClock(SEAL_T0);
  const keys = await KeyStore.open(db, { passphrase: PASSPHRASE, crypto, clock, migrate: false });
  return { name: d.name, storage, db, keys, crypto, clock };
}

let nextHolder = 1;

/**
 * Posts `count` top-ups (one entry each, two postings) in one transaction, each to a holder of its
 * own, with Chinese and English in the memo so the canonical bytes carry multi-byte UTF-8.
 */
export async function postTopUps(db: Db, count: number, o: { readonly atS?: number; readonly memo?: string } = {}): Promise<EntryId[]> {
  const holders = Array.from({ length: count }, () => nextHolder++);
  return db.tx(async (q) => {
    const clearing = await systemAccount(q, 'topup_clearing');
    const entries: NewEntry[] = [];
    for (const [i, h] of holders.entries()) {
      const { cash } = await holderAccounts(q, h);
      const amount = fen(100 + ((h * 37) % 5_000));
      entries.push({
        kind: 'topup',
        reference: `test-topup:${h}`,
        postedAtS: o.atS ?? SEAL_T0,
        effectiveAtS: (o.atS ?? SEAL_T0) - i,
        createdBy: 'cashier-1',
        memo: o.memo ?? `top-up 充值 #${h}`,
        postings: [debit(clearing, amount), credit(cash, amount)],
      });
    }
    return postMany(q, entries);
  });
}

/** Every trigger that keeps the ledger append-only, off: the attacker with write access to the database. */
export async function allowTampering(db: Db): Promise<void> {
  const tables = ['ledger_entries', 'ledger_postings', 'ledger_chain', 'ledger_roots'];
  if (db.dialect.name === 'postgres') {
    for (const t of tables) await db.run(`ALTER TABLE ${t} DISABLE TRIGGER USER`);
    return;
  }
  const triggers = await db.all(
    `SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name IN (${tables.map(() => '?').join(', ')})`,
    tables,
  );
  if (triggers.length < 8) throw new Error(`expected the 8 append-only triggers, found ${triggers.length}`);
  for (const t of triggers) await db.run(`DROP TRIGGER ${String(t.name)}`);
}

/** A witness key registered straight in the table (the HTTP route is tested on its own). */
export async function addWitnessKey(s: SealedLedger, name = 'finance office'): Promise<{ id: number; signer: Signer }> {
  const signer = await s.crypto.suite('p256').generate();
  const row = await s.db.one(
    `INSERT INTO ledger_witness_keys (name, suite, public_key, added_by, added_at, status) VALUES (?, 'p256', ?, 'finance1', ?, 'active') RETURNING id`,
    [name, signer.publicKey, SEAL_T0],
  );
  return { id: Number(row?.id), signer };
}

/** Countersigns a stored root with a witness key, as the route would after checking the signature. */
export async function countersignRoot(s: SealedLedger, rootId: number, key: { id: number; signer: Signer }): Promise<void> {
  const r = await s.db.one('SELECT root_hash FROM ledger_roots WHERE id = ?', [rootId]);
  if (!(r?.root_hash instanceof Uint8Array)) throw new Error(`no root ${rootId}`);
  const signature = await key.signer.sign(witnessMessage(r.root_hash));
  await s.db.run('UPDATE ledger_roots SET witness_key_id = ?, witness_signature = ?, witnessed_at = ? WHERE id = ?', [
    key.id,
    signature,
    SEAL_T0,
    rootId,
  ]);
}

/** Number of rows of a query's `n` column. */
export async function count(db: Db, sql: string, params: readonly (number | string)[] = []): Promise<number> {
  const r = await db.one(sql, params);
  return Number(r?.n ?? Number.NaN);
}
