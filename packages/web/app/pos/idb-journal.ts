/**
 * The terminal's journal (JournalStore, @duet/terminal ports.ts) on IndexedDB. One append is one
 * readwrite transaction over the record, the seen code, the spend row and the head, so all of it
 * survives or none does; the promise resolves only when the transaction has committed with
 * `durability: 'strict'`, so a decision is never shown before its record is on disk. The same
 * contract tests as the SQLite and memory journals run against it in Chromium (test/pos-journal.test.ts).
 *
 * Beside the journal, a small `ui` store keeps the cashier's screen state (the payment in progress),
 * so a reload in the middle of a payment comes back to it.
 */
import { ProtocolError } from '@duet/protocol';
import type { AppendEntry, JournalSnapshot, JournalStore, SpendRow } from '@duet/terminal';
import { inTransaction, openIdb, request } from '../shared/idb.js';

const RECORDS = 'records';
const SEEN = 'seen';
const SPEND = 'spend';
const META = 'meta';
const STATE = 'state';
const UI = 'ui';
const ALL = [RECORDS, SEEN, SPEND, META, STATE];

interface Head {
  readonly sequence: number;
  readonly hash: Uint8Array;
  readonly time: number;
}
interface SeenRow {
  readonly key: string;
  readonly serial: number;
  readonly counter: number;
  readonly notAfter: number;
}

const EMPTY_HEAD: Head = { sequence: 0, hash: new Uint8Array(32), time: 0 };

function bad(detail: string): ProtocolError {
  return new ProtocolError('bad_value', `journal: ${detail}`);
}

export class IdbJournal implements JournalStore {
  private db: IDBDatabase | undefined;
  private closed = false;

  constructor(readonly name: string) {}

  private async handle(): Promise<IDBDatabase> {
    if (this.closed) throw bad('closed');
    this.db ??= await openIdb(this.name, 1, (db) => {
      db.createObjectStore(RECORDS);
      db.createObjectStore(SEEN, { keyPath: 'key' });
      db.createObjectStore(SPEND, { keyPath: 'serial' });
      db.createObjectStore(META);
      db.createObjectStore(STATE);
      db.createObjectStore(UI);
    });
    return this.db;
  }

  async open(): Promise<JournalSnapshot> {
    this.closed = false;
    const db = await this.handle();
    return inTransaction(db, ALL, 'readonly', async (tx) => {
      const [head, acked, seen, spend] = await Promise.all([
        request(tx.objectStore(STATE).get('head')) as Promise<Head | undefined>,
        request(tx.objectStore(STATE).get('acked')) as Promise<number | undefined>,
        request(tx.objectStore(SEEN).getAll()) as Promise<SeenRow[]>,
        request(tx.objectStore(SPEND).getAll()) as Promise<SpendRow[]>,
      ]);
      const h = head ?? EMPTY_HEAD;
      return {
        headSequence: h.sequence,
        headHash: h.hash.slice(),
        headTime: h.time,
        ackedSequence: acked ?? 0,
        seen: seen.map((s) => [s.serial, s.counter, s.notAfter] as const),
        spend: spend.map((r) => ({ ...r })),
      };
    });
  }

  async append(e: AppendEntry): Promise<void> {
    const db = await this.handle();
    await inTransaction(db, ALL, 'readwrite', async (tx) => {
      const state = tx.objectStore(STATE);
      const head = ((await request(state.get('head'))) as Head | undefined) ?? EMPTY_HEAD;
      if (e.sequence !== head.sequence + 1) throw bad(`sequence ${e.sequence}, expected ${head.sequence + 1}`);
      if (e.seen !== undefined) {
        const key = `${e.seen.serial}:${e.seen.counter}`;
        if ((await request(tx.objectStore(SEEN).count(key))) > 0) throw bad(`code ${key} already seen`);
        tx.objectStore(SEEN).put({ key, serial: e.seen.serial, counter: e.seen.counter, notAfter: e.seen.notAfter } satisfies SeenRow);
      }
      if (e.spend !== undefined) tx.objectStore(SPEND).put({ ...e.spend });
      tx.objectStore(RECORDS).put(e.bytes.slice(), e.sequence);
      state.put({ sequence: e.sequence, hash: e.hash.slice(), time: e.time } satisfies Head, 'head');
    });
  }

  async pending(afterSequence: number, max: number): Promise<Uint8Array[]> {
    const db = await this.handle();
    if (max <= 0) return [];
    return inTransaction(db, [RECORDS, STATE], 'readonly', async (tx) => {
      const acked = ((await request(tx.objectStore(STATE).get('acked'))) as number | undefined) ?? 0;
      const from = Math.max(afterSequence, acked);
      const rows = (await request(tx.objectStore(RECORDS).getAll(IDBKeyRange.lowerBound(from, true), max))) as Uint8Array[];
      return rows.map((r) => new Uint8Array(r));
    });
  }

  async acknowledge(throughSequence: number, pruneBeforeS: number): Promise<void> {
    const db = await this.handle();
    await inTransaction(db, ALL, 'readwrite', async (tx) => {
      const state = tx.objectStore(STATE);
      const head = ((await request(state.get('head'))) as Head | undefined) ?? EMPTY_HEAD;
      const held = ((await request(state.get('acked'))) as number | undefined) ?? 0;
      const acked = Math.max(held, Math.min(throughSequence, head.sequence));
      if (acked > held) state.put(acked, 'acked');
      if (acked > 0) tx.objectStore(RECORDS).delete(IDBKeyRange.upperBound(acked));
      const seen = (await request(tx.objectStore(SEEN).getAll())) as SeenRow[];
      for (const s of seen) if (s.notAfter < pruneBeforeS) tx.objectStore(SEEN).delete(s.key);
      const spend = (await request(tx.objectStore(SPEND).getAll())) as SpendRow[];
      for (const r of spend) if (r.notAfter < pruneBeforeS) tx.objectStore(SPEND).delete(r.serial);
    });
  }

  async getMeta(key: string): Promise<Uint8Array | undefined> {
    const db = await this.handle();
    const v = await inTransaction(db, META, 'readonly', (tx) => request(tx.objectStore(META).get(key)) as Promise<Uint8Array | undefined>);
    return v === undefined ? undefined : new Uint8Array(v);
  }

  setMeta(key: string, value: Uint8Array): Promise<void> {
    return this.setMetaMany([[key, value]]);
  }

  async setMetaMany(entries: ReadonlyArray<readonly [string, Uint8Array]>): Promise<void> {
    const db = await this.handle();
    await inTransaction(db, META, 'readwrite', (tx) => {
      for (const [key, value] of entries) tx.objectStore(META).put(value.slice(), key);
    });
  }

  /** The cashier's screen state (not part of the journal contract). */
  async getUi<T>(key: string): Promise<T | undefined> {
    const db = await this.handle();
    return inTransaction(db, UI, 'readonly', (tx) => request(tx.objectStore(UI).get(key)) as Promise<T | undefined>);
  }

  async setUi(key: string, value: unknown): Promise<void> {
    const db = await this.handle();
    await inTransaction(db, UI, 'readwrite', (tx) => {
      if (value === undefined) tx.objectStore(UI).delete(key);
      else tx.objectStore(UI).put(value, key);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    this.db?.close();
    this.db = undefined;
  }
}
