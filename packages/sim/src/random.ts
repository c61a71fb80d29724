/**
 * sfc32 (Chris Doty-Humphrey's Small Fast Counting generator, from PractRand): a small, well-known
 * seeded generator. Every choice the simulator makes comes from one of these, so a seed replays the
 * run. Never for keys, nonces or anything secret: those come from the crypto provider.
 */
export interface Random {
  /** Uniform in [0, 1). */
  next(): number;
  /** Uniform integer in [0, n). */
  int(n: number): number;
  /** True with probability p. */
  chance(p: number): boolean;
  pick<T>(xs: readonly T[]): T;
  /** An independent generator for one part of the run, so adding draws in one part never shifts another. */
  fork(label: string): Random;
}

export function sfc32(seed: number): Random {
  // Seeded as the generator's author suggests: a fixed constant, the seed, and a warm-up.
  let a = 0x9e3779b9;
  let b = seed >>> 0;
  let c = Math.imul(seed >>> 0, 0x85ebca6b) >>> 0;
  let d = 1;
  const raw = (): number => {
    const t = (((a + b) >>> 0) + d) >>> 0;
    d = (d + 1) >>> 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) >>> 0;
    c = ((c << 21) | (c >>> 11)) >>> 0;
    c = (c + t) >>> 0;
    return t;
  };
  for (let i = 0; i < 15; i++) raw();
  const next = (): number => raw() / 4_294_967_296;
  return {
    next,
    int: (n) => {
      if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`int(n): n must be a positive integer, got ${n}`);
      return Math.floor(next() * n);
    },
    chance: (p) => p > 0 && next() < p,
    pick: <T>(xs: readonly T[]): T => {
      if (xs.length === 0) throw new RangeError('pick: empty list');
      return xs[Math.floor(next() * xs.length)] as T;
    },
    fork: (label) => sfc32((raw() ^ hashLabel(label)) >>> 0),
  };
}

/** FNV-1a over the label, to tell forks apart. */
function hashLabel(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}
