/**
 * Terminal storage with a crash model, over the in-memory journal. The terminal core acts only
 * after an append resolves, so an append is atomic: at a crash, one in flight lands whole or not at
 * all, and the decision it was for is never shown as accepted. Writes of meta values not yet
 * resolved are lost. After a crash the terminal is reopened from what survived.
 *
 * The attacker of the journal (a dishonest merchant) reaches the stored bytes through `tamper`.
 */
import { decodeRecord } from '@duet/protocol';
import { type AppendEntry, type JournalSnapshot, type JournalStore, MemoryJournal } from '@duet/terminal';

export class CrashJournal implements JournalStore {
  private readonly inner = new MemoryJournal();
  /** Set by the simulator: the next write meets a crash. `land` says whether an append lands anyway. */
  private crashArmed: { land: boolean } | undefined;
  /** Byte edits applied to records as `pending` reads them (a journal altered at rest). */
  private readonly edits = new Map<number, (bytes: Uint8Array) => Uint8Array | undefined>();
  crashes = 0;
  tornLanded = 0;
  tornLost = 0;

  /** The next append or meta write meets a power cut. */
  armCrash(land: boolean): void {
    this.crashArmed = { land };
  }

  /** Healing: no crash is pending any more. */
  disarm(): void {
    this.crashArmed = undefined;
  }

  get armed(): boolean {
    return this.crashArmed !== undefined;
  }

  /** Alters (returns new bytes) or deletes (returns undefined) the stored record `sequence`. */
  tamper(sequence: number, edit: (bytes: Uint8Array) => Uint8Array | undefined): void {
    this.edits.set(sequence, edit);
  }

  open(): Promise<JournalSnapshot> {
    return this.inner.open();
  }

  async append(entry: AppendEntry): Promise<void> {
    const crash = this.crashArmed;
    if (crash !== undefined) {
      this.crashArmed = undefined;
      this.crashes++;
      if (crash.land) {
        await this.inner.append(entry);
        this.tornLanded++;
      } else this.tornLost++;
      await this.inner.close();
      throw new Error('power cut during append');
    }
    await this.inner.append(entry);
  }

  async pending(afterSequence: number, max: number): Promise<Uint8Array[]> {
    if (this.edits.size === 0) return this.inner.pending(afterSequence, max);
    const rows = await this.inner.pending(afterSequence, max + this.edits.size);
    const out: Uint8Array[] = [];
    for (const bytes of rows) {
      const seq = sequenceOf(bytes);
      const edit = this.edits.get(seq);
      const kept = edit === undefined ? bytes : edit(bytes);
      if (kept !== undefined) out.push(kept);
      if (out.length >= max) break;
    }
    return out;
  }

  acknowledge(throughSequence: number, pruneBeforeS: number): Promise<void> {
    return this.inner.acknowledge(throughSequence, pruneBeforeS);
  }

  getMeta(key: string): Promise<Uint8Array | undefined> {
    return this.inner.getMeta(key);
  }

  async setMeta(key: string, value: Uint8Array): Promise<void> {
    if (this.crashArmed !== undefined) {
      this.crashArmed = undefined;
      this.crashes++;
      await this.inner.close();
      throw new Error('power cut during a meta write');
    }
    await this.inner.setMeta(key, value);
  }

  async setMetaMany(entries: ReadonlyArray<readonly [string, Uint8Array]>): Promise<void> {
    if (this.crashArmed !== undefined) {
      this.crashArmed = undefined;
      this.crashes++;
      await this.inner.close();
      throw new Error('power cut during a meta write');
    }
    await this.inner.setMetaMany(entries);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

function sequenceOf(bytes: Uint8Array): number {
  return decodeRecord(bytes).sequence;
}
