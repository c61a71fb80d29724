import { describe, expect, it } from 'vitest';
import { CrashJournal } from '../src/storage.js';

const entry = (sequence: number) => ({
  sequence,
  time: 1_000 + sequence,
  bytes: new Uint8Array([sequence]),
  hash: new Uint8Array(32).fill(sequence),
});

describe('CrashJournal: what a power cut leaves', () => {
  it('an append meeting a crash lands whole or not at all, and the terminal is told it failed', async () => {
    for (const land of [true, false]) {
      const j = new CrashJournal();
      await j.open();
      await j.append(entry(1));
      j.armCrash(land);
      await expect(j.append(entry(2))).rejects.toThrow(/power cut/);
      const after = await j.open();
      expect(after.headSequence).toBe(land ? 2 : 1);
      expect(j.crashes).toBe(1);
      expect(land ? j.tornLanded : j.tornLost).toBe(1);
    }
  });

  it('a meta write meeting a crash is lost; an earlier one survives', async () => {
    const j = new CrashJournal();
    await j.open();
    await j.setMeta('k', new Uint8Array([1]));
    j.armCrash(true);
    await expect(j.setMeta('k', new Uint8Array([2]))).rejects.toThrow(/power cut/);
    await j.open();
    expect(await j.getMeta('k')).toEqual(new Uint8Array([1]));
    j.armCrash(true);
    j.disarm();
    await j.setMetaMany([['k', new Uint8Array([3])]]);
    expect(await j.getMeta('k')).toEqual(new Uint8Array([3]));
  });
});
