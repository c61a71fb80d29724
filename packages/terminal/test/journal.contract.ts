/**
 * The one contract every JournalStore keeps (ports.ts), in the style of hono's common.case.test.ts:
 * journal.test.ts runs it against each implementation. A new storage (IndexedDB, PostgreSQL) passes
 * this suite before a terminal may use it.
 */
import { ProtocolError } from '@duet/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import type { AppendEntry, JournalSnapshot, JournalStore, SpendRow } from '../src/index.js';

export interface JournalHarness {
  /** A store over fresh, empty storage, not yet opened. */
  create(): Promise<JournalStore>;
  /**
   * Closes `store` and returns a store over the same storage, as after a restart, not yet opened.
   * For a memory journal this is the same instance; for a file it is a new one on the same path.
   */
  reopen(store: JournalStore): Promise<JournalStore>;
}

/** A record entry with recognisable bytes: byte 0 is the sequence, the hash is derived from it. */
export function entry(sequence: number, extra: Partial<AppendEntry> = {}): AppendEntry {
  return {
    sequence,
    time: 1_000 + sequence,
    bytes: Uint8Array.from([sequence & 0xff, 0xd0, 0xe7, sequence >> 8]),
    hash: new Uint8Array(32).fill(sequence & 0xff),
    ...extra,
  };
}

export function spendRow(serial: number, over: Partial<SpendRow> = {}): SpendRow {
  return {
    serial,
    total: 100 as SpendRow['total'],
    count: 1,
    day: 20_700,
    dayTotal: 100 as SpendRow['dayTotal'],
    dayCount: 1,
    notAfter: 5_000,
    ...over,
  };
}

/** A snapshot with its unordered parts in a fixed order, for comparing two snapshots. */
export function normal(s: JournalSnapshot) {
  return {
    ...s,
    headHash: Array.from(s.headHash),
    seen: s.seen.map(([a, b]) => `${a}:${b}`).sort(),
    spend: [...s.spend].sort((a, b) => a.serial - b.serial),
  };
}

async function rejectsBadValue(p: Promise<unknown>): Promise<void> {
  const error = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ProtocolError);
  expect((error as ProtocolError).code).toBe('bad_value');
}

const bytesOf = (records: readonly Uint8Array[]) => records.map((r) => r[0]);

export function journalContract(name: string, makeHarness: () => JournalHarness): void {
  describe(`JournalStore contract: ${name}`, () => {
    const open: JournalStore[] = [];
    let harness: JournalHarness;

    /** A new, opened, empty store. */
    async function fresh(): Promise<JournalStore> {
      harness ??= makeHarness();
      const j = await harness.create();
      open.push(j);
      await j.open();
      return j;
    }

    /** Closes `j` and opens the same storage again; returns the store and what it read back. */
    async function restart(j: JournalStore): Promise<[JournalStore, JournalSnapshot]> {
      const again = await harness.reopen(j);
      open.push(again);
      return [again, await again.open()];
    }

    afterEach(async () => {
      for (const j of open.splice(0)) await j.close();
    });

    it('opens empty: no head, no acknowledgement, nothing seen or spent', async () => {
      const j = await fresh();
      const s = await j.open();
      expect(normal(s)).toEqual({ headSequence: 0, headHash: new Array(32).fill(0), headTime: 0, ackedSequence: 0, seen: [], spend: [] });
      expect(await j.pending(0, 10)).toEqual([]);
      expect(await j.getMeta('anything')).toBeUndefined();
    });

    it('hands back appended records in order, after a sequence and at most max of them', async () => {
      const j = await fresh();
      for (let i = 1; i <= 5; i++) await j.append(entry(i));
      expect(bytesOf(await j.pending(0, 10))).toEqual([1, 2, 3, 4, 5]);
      expect(await j.pending(0, 1)).toEqual([entry(1).bytes]);
      expect(bytesOf(await j.pending(2, 2))).toEqual([3, 4]);
      expect(bytesOf(await j.pending(4, 100))).toEqual([5]);
      expect(await j.pending(5, 10)).toEqual([]);
      expect(await j.pending(0, 0)).toEqual([]);
      const s = await j.open();
      expect(s.headSequence).toBe(5);
      expect(Array.from(s.headHash)).toEqual(Array.from(entry(5).hash));
      expect(s.headTime).toBe(entry(5).time);
    });

    it('keeps its own copy of the bytes: changing the caller’s arrays afterwards changes nothing', async () => {
      const j = await fresh();
      const e = entry(1);
      await j.append(e);
      e.bytes.fill(0xee);
      e.hash.fill(0xee);
      const [out] = await j.pending(0, 1);
      expect(out).toEqual(entry(1).bytes);
      out?.fill(0xaa);
      expect(await j.pending(0, 1)).toEqual([entry(1).bytes]);
      expect(Array.from((await j.open()).headHash)).toEqual(Array.from(entry(1).hash));
    });

    it('refuses a first record other than sequence 1, a gap and a repeat, changing nothing', async () => {
      const j = await fresh();
      await rejectsBadValue(j.append(entry(2)));
      await rejectsBadValue(j.append(entry(0)));
      await j.append(entry(1));
      await j.append(entry(2));
      const before = normal(await j.open());
      await rejectsBadValue(j.append(entry(4, { seen: { serial: 9, counter: 1, notAfter: 5_000 }, spend: spendRow(9) })));
      await rejectsBadValue(j.append(entry(2, { seen: { serial: 9, counter: 2, notAfter: 5_000 }, spend: spendRow(9) })));
      await rejectsBadValue(j.append(entry(1)));
      await rejectsBadValue(j.append(entry(2.5)));
      expect(normal(await j.open())).toEqual(before);
      expect(bytesOf(await j.pending(0, 10))).toEqual([1, 2]);
      await j.append(entry(3));
      const [, after] = await restart(j);
      expect(after.headSequence).toBe(3);
      expect(after.seen).toEqual([]);
      expect(after.spend).toEqual([]);
    });

    it('refuses a code already seen, atomically: no record, no spend row, head unchanged', async () => {
      const j = await fresh();
      await j.append(entry(1, { seen: { serial: 7, counter: 1, notAfter: 5_000 }, spend: spendRow(7) }));
      const before = normal(await j.open());
      const replay = entry(2, {
        seen: { serial: 7, counter: 1, notAfter: 5_000 },
        spend: spendRow(7, { total: 999 as SpendRow['total'], count: 2 }),
      });
      await rejectsBadValue(j.append(replay));
      expect(normal(await j.open())).toEqual(before);
      expect(bytesOf(await j.pending(0, 10))).toEqual([1]);
      const [j2, reopened] = await restart(j);
      expect(normal(reopened)).toEqual(before);
      // The sequence the refused append wanted is still free, and a fresh counter of the same credential passes.
      await j2.append(entry(2, { seen: { serial: 7, counter: 2, notAfter: 5_000 } }));
      expect(normal(await j2.open()).seen).toEqual(['7:1', '7:2']);
    });

    it('keeps one spend row per credential, replaced by each later payment, across a restart', async () => {
      const j = await fresh();
      await j.append(entry(1, { seen: { serial: 7, counter: 1, notAfter: 5_000 }, spend: spendRow(7) }));
      await j.append(entry(2, { seen: { serial: 8, counter: 1, notAfter: 6_000 }, spend: spendRow(8, { notAfter: 6_000 }) }));
      const seven = spendRow(7, {
        total: 350 as SpendRow['total'],
        count: 2,
        day: 20_701,
        dayTotal: 250 as SpendRow['dayTotal'],
        dayCount: 1,
      });
      await j.append(entry(3, { seen: { serial: 7, counter: 2, notAfter: 5_000 }, spend: seven }));
      // An online payment or an access event consumes a code without a spend row.
      await j.append(entry(4, { seen: { serial: 7, counter: 3, notAfter: 5_000 } }));
      await j.append(entry(5));
      const expected = [seven, spendRow(8, { notAfter: 6_000 })];
      expect(normal(await j.open()).spend).toEqual(expected);
      const [, s] = await restart(j);
      expect(normal(s).spend).toEqual(expected);
      expect(normal(s).seen).toEqual(['7:1', '7:2', '7:3', '8:1']);
    });

    it('acknowledge prunes what the platform holds, never moves back and never passes the head', async () => {
      const j = await fresh();
      await j.acknowledge(3, 0);
      expect((await j.open()).ackedSequence).toBe(0);
      for (let i = 1; i <= 5; i++) await j.append(entry(i));
      await j.acknowledge(3, 0);
      expect((await j.open()).ackedSequence).toBe(3);
      expect(bytesOf(await j.pending(0, 10))).toEqual([4, 5]);
      expect(bytesOf(await j.pending(1, 10))).toEqual([4, 5]);
      await j.acknowledge(2, 0);
      expect((await j.open()).ackedSequence).toBe(3);
      expect(bytesOf(await j.pending(0, 10))).toEqual([4, 5]);
      await j.acknowledge(99, 0);
      const s = await j.open();
      expect(s.ackedSequence).toBe(5);
      expect(await j.pending(0, 10)).toEqual([]);
      // With everything acknowledged the head still anchors the chain: same hash, next sequence 6.
      expect(s.headSequence).toBe(5);
      expect(Array.from(s.headHash)).toEqual(Array.from(entry(5).hash));
      expect(s.headTime).toBe(entry(5).time);
      await rejectsBadValue(j.append(entry(5)));
      await j.append(entry(6));
      expect(bytesOf(await j.pending(0, 10))).toEqual([6]);
      const [, after] = await restart(j);
      expect(after.ackedSequence).toBe(5);
      expect(after.headSequence).toBe(6);
    });

    it('acknowledge drops the seen codes and spend rows of expired credentials only', async () => {
      const j = await fresh();
      await j.append(entry(1, { seen: { serial: 1, counter: 1, notAfter: 100 }, spend: spendRow(1, { notAfter: 100 }) }));
      await j.append(entry(2, { seen: { serial: 2, counter: 1, notAfter: 150 }, spend: spendRow(2, { notAfter: 150 }) }));
      await j.append(entry(3, { seen: { serial: 3, counter: 1, notAfter: 200 }, spend: spendRow(3, { notAfter: 200 }) }));
      await j.append(entry(4, { seen: { serial: 1, counter: 2, notAfter: 100 } }));
      // Acknowledging nothing new still prunes by time; "before 150" keeps notAfter == 150.
      await j.acknowledge(0, 150);
      let s = normal(await j.open());
      expect(s.ackedSequence).toBe(0);
      expect(s.seen).toEqual(['2:1', '3:1']);
      expect(s.spend.map((r) => r.serial)).toEqual([2, 3]);
      expect(bytesOf(await j.pending(0, 10))).toEqual([1, 2, 3, 4]);
      const [j2, reopened] = await restart(j);
      expect(normal(reopened)).toEqual(s);
      await j2.acknowledge(4, 201);
      s = normal(await j2.open());
      expect(s.seen).toEqual([]);
      expect(s.spend).toEqual([]);
    });

    it('keeps meta values: missing is undefined, set replaces, empty values survive, copies are its own', async () => {
      const j = await fresh();
      expect(await j.getMeta('key')).toBeUndefined();
      const value = Uint8Array.from([1, 2, 3]);
      await j.setMeta('key', value);
      value[0] = 9;
      expect(await j.getMeta('key')).toEqual(Uint8Array.from([1, 2, 3]));
      await j.setMeta('key', Uint8Array.from([4]));
      await j.setMeta('empty', new Uint8Array(0));
      await j.setMeta('证书', Uint8Array.from([5, 6]));
      const got = await j.getMeta('key');
      got?.fill(0);
      expect(await j.getMeta('key')).toEqual(Uint8Array.from([4]));
      const [j2] = await restart(j);
      expect(await j2.getMeta('key')).toEqual(Uint8Array.from([4]));
      expect(await j2.getMeta('empty')).toEqual(new Uint8Array(0));
      expect(await j2.getMeta('证书')).toEqual(Uint8Array.from([5, 6]));
      expect(await j2.getMeta('missing')).toBeUndefined();
    });

    it('sets several meta values in one write, all of them visible after a restart', async () => {
      const j = await fresh();
      await j.setMeta('a', Uint8Array.from([1]));
      await j.setMetaMany([
        ['a', Uint8Array.from([2])],
        ['b', Uint8Array.from([3])],
      ]);
      const [j2] = await restart(j);
      expect(await j2.getMeta('a')).toEqual(Uint8Array.from([2]));
      expect(await j2.getMeta('b')).toEqual(Uint8Array.from([3]));
    });

    it('reports each seen code with its credential expiry, so memory can be pruned too', async () => {
      const j = await fresh();
      await j.append(entry(1, { seen: { serial: 4, counter: 9, notAfter: 12_345 } }));
      const [j2] = await restart(j);
      const [, snap] = [j2, await j2.open()];
      expect(snap.seen).toEqual([[4, 9, 12_345]]);
    });

    it('reads back after a restart exactly what it held: head, hash, acknowledgement, seen, spend, records', async () => {
      const j = await fresh();
      for (let i = 1; i <= 8; i++) {
        const serial = 100 + (i % 3);
        await j.append(entry(i, { seen: { serial, counter: i, notAfter: 9_000 }, spend: spendRow(serial, { count: i, notAfter: 9_000 }) }));
      }
      await j.acknowledge(5, 0);
      const before = normal(await j.open());
      const records = await j.pending(0, 100);
      const [j2, after] = await restart(j);
      expect(normal(after)).toEqual(before);
      expect(await j2.pending(0, 100)).toEqual(records);
      const [, again] = await restart(j2);
      expect(normal(again)).toEqual(before);
    });

    it('refuses appends once closed', async () => {
      const j = await fresh();
      await j.append(entry(1));
      await j.close();
      await expect(j.append(entry(2))).rejects.toThrow();
    });
  });
}
