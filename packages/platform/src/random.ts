/**
 * mulberry32: a small, well-known seeded generator for tools that must repeat themselves from a
 * seed (the demo campus, benchmarks' fault mixes, fault tests). Never for keys, nonces or anything
 * secret: those come from the crypto provider.
 */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}
