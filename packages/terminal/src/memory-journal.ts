/**
 * A journal held in memory, with exactly the contract of the durable ones (test/journal.contract.ts
 * runs against it too). The simulator uses it with its own crash model; production never does.
 */
import { equalBytes, ProtocolError } from '@duet/protocol';
import type { AppendEntry, JournalSnapshot, JournalStore, SpendRow } from './ports.js';

interface Row {
  readonly sequence: number;
  readonly time: number;
  readonly bytes: Uint8Array;
  readonly hash: Uint8Array;
}

export class MemoryJournal implements JournalStore {
  private records: Row[] = [];
  private head: Row | undefined;
  private acked = 0;
  private readonly seen = new Map<string, { serial: number; counter: number; notAfter: number }>();
  private readonly spend = new Map<number, SpendRow>();
  private readonly meta = new Map<string, Uint8Array>();
  private closed = false;

  async open(): Promise<JournalSnapshot> {
    this.closed = false;
    return {
      headSequence: this.head?.sequence ?? 0,
      headHash: this.head?.hash ?? new Uint8Array(32),
      headTime: this.head?.time ?? 0,
      ackedSequence: this.acked,
      seen: [...this.seen.values()].map((s) => [s.serial, s.counter, s.notAfter] as const),
      spend: [...this.spend.values()],
    };
  }

  async append(e: AppendEntry): Promise<void> {
    this.check();
    const expected = (this.head?.sequence ?? 0) + 1;
    if (e.sequence !== expected) throw new ProtocolError('bad_value', `journal: sequence ${e.sequence}, expected ${expected}`);
    const key = e.seen === undefined ? undefined : `${e.seen.serial}:${e.seen.counter}`;
    if (key !== undefined && this.seen.has(key)) throw new ProtocolError('bad_value', `journal: code ${key} already seen`);
    const row = { sequence: e.sequence, time: e.time, bytes: e.bytes.slice(), hash: e.hash.slice() };
    this.records.push(row);
    this.head = row;
    if (key !== undefined && e.seen !== undefined) this.seen.set(key, { ...e.seen });
    if (e.spend !== undefined) this.spend.set(e.spend.serial, { ...e.spend });
  }

  async pending(afterSequence: number, max: number): Promise<Uint8Array[]> {
    this.check();
    const from = Math.max(afterSequence, this.acked);
    return this.records
      .filter((r) => r.sequence > from)
      .slice(0, max)
      .map((r) => r.bytes.slice());
  }

  async acknowledge(throughSequence: number, pruneBeforeS: number): Promise<void> {
    this.check();
    const through = Math.min(throughSequence, this.head?.sequence ?? 0);
    if (through > this.acked) this.acked = through;
    this.records = this.records.filter((r) => r.sequence > this.acked);
    for (const [k, s] of this.seen) if (s.notAfter < pruneBeforeS) this.seen.delete(k);
    for (const [k, s] of this.spend) if (s.notAfter < pruneBeforeS) this.spend.delete(k);
  }

  async getMeta(key: string): Promise<Uint8Array | undefined> {
    return this.meta.get(key)?.slice();
  }

  async setMeta(key: string, value: Uint8Array): Promise<void> {
    this.check();
    this.meta.set(key, value.slice());
  }

  async setMetaMany(entries: ReadonlyArray<readonly [string, Uint8Array]>): Promise<void> {
    this.check();
    for (const [key, value] of entries) this.meta.set(key, value.slice());
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  /** The hash of the newest record, for tests that compare chains. */
  headHashEquals(hash: Uint8Array): boolean {
    return this.head !== undefined && equalBytes(this.head.hash, hash);
  }

  private check(): void {
    if (this.closed) throw new ProtocolError('bad_value', 'journal: closed');
  }
}
