import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { sfc32 } from '../src/random.js';

describe('sfc32: the seeded generator every choice comes from', () => {
  it('repeats itself from a seed and differs between seeds', () => {
    const a = sfc32(42);
    const b = sfc32(42);
    const c = sfc32(43);
    const xs = Array.from({ length: 100 }, () => a.next());
    expect(Array.from({ length: 100 }, () => b.next())).toEqual(xs);
    expect(Array.from({ length: 100 }, () => c.next())).not.toEqual(xs);
  });

  it('draws in [0, 1) and integers in [0, n)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffff_ffff }), fc.integer({ min: 1, max: 1_000_000 }), (seed, n) => {
        const r = sfc32(seed);
        for (let i = 0; i < 50; i++) {
          const x = r.next();
          expect(x >= 0 && x < 1).toBe(true);
          const k = r.int(n);
          expect(Number.isInteger(k) && k >= 0 && k < n).toBe(true);
        }
      }),
    );
  });

  it('is roughly uniform (each tenth of [0, 1) within 10% of its share over 100,000 draws)', () => {
    const r = sfc32(7);
    const bins = new Array<number>(10).fill(0);
    for (let i = 0; i < 100_000; i++) {
      const k = Math.floor(r.next() * 10);
      bins[k] = (bins[k] ?? 0) + 1;
    }
    for (const b of bins) expect(Math.abs(b - 10_000)).toBeLessThan(1_000);
  });

  it('forks are independent of later draws in the parent and of each other', () => {
    const p1 = sfc32(1);
    const f1 = p1.fork('network');
    const p2 = sfc32(1);
    const f2 = p2.fork('network');
    p2.next();
    expect(f1.next()).toBe(f2.next());
    expect(sfc32(1).fork('a').next()).not.toBe(sfc32(1).fork('b').next());
  });

  it('chance(0) never fires and chance(1) always does; int refuses a bad bound', () => {
    const r = sfc32(3);
    for (let i = 0; i < 1_000; i++) {
      expect(r.chance(0)).toBe(false);
      expect(r.chance(1)).toBe(true);
    }
    expect(() => r.int(0)).toThrow(RangeError);
    expect(() => r.pick([])).toThrow(RangeError);
  });
});
