/**
 * The terminal's deny lists held compactly: per entry type one sorted Float64Array of ids (8 bytes
 * an entry, so 1,000,000 entries take 8 MB), looked up by binary search. A delta produces a new set
 * by one linear merge, and the terminal swaps the reference: readers never see a half-applied list.
 */
import { DENY_TYPES, type DenyList, type DenyType, ProtocolError } from '@duet/protocol';

export class DenySet {
  private constructor(
    readonly version: number,
    readonly issuedAt: number,
    readonly expiresAt: number,
    private readonly byType: readonly Float64Array[],
  ) {}

  static empty(): DenySet {
    return new DenySet(
      0,
      0,
      0,
      DENY_TYPES.map(() => new Float64Array(0)),
    );
  }

  /** Builds the set from a verified full list. */
  static fromFull(list: DenyList): DenySet {
    if (list.kind !== 'full') throw new ProtocolError('bad_value', 'deny set: expected a full list');
    const counts = DENY_TYPES.map(() => 0);
    for (const tag of list.tags) counts[(tag & 0x7f) - 1] = (counts[(tag & 0x7f) - 1] ?? 0) + 1;
    const arrays = counts.map((n) => new Float64Array(n));
    const fill = counts.map(() => 0);
    // Entries are sorted by (type, id) on the wire, so each type's ids arrive already sorted.
    for (let i = 0; i < list.tags.length; i++) {
      const t = ((list.tags[i] as number) & 0x7f) - 1;
      (arrays[t] as Float64Array)[fill[t] as number] = list.ids[i] as number;
      fill[t] = (fill[t] as number) + 1;
    }
    return new DenySet(list.listVersion, list.issuedAt, list.expiresAt, arrays);
  }

  /** A new set with a verified delta applied. The delta must name this set's version as its base. */
  applyDelta(delta: DenyList): DenySet {
    if (delta.kind !== 'delta') throw new ProtocolError('bad_value', 'deny set: expected a delta');
    if (delta.baseVersion !== this.version) {
      throw new ProtocolError('bad_base', `deny delta v${delta.listVersion} applies to v${delta.baseVersion}, held v${this.version}`);
    }
    const next = DENY_TYPES.map((_, t) => {
      const adds: number[] = [];
      const removes: number[] = [];
      for (let i = 0; i < delta.tags.length; i++) {
        const tag = delta.tags[i] as number;
        if ((tag & 0x7f) - 1 !== t) continue;
        (tag & 0x80 ? removes : adds).push(delta.ids[i] as number);
      }
      return merge(this.byType[t] as Float64Array, adds, removes);
    });
    return new DenySet(delta.listVersion, delta.issuedAt, delta.expiresAt, next);
  }

  has(type: DenyType, id: number): boolean {
    const a = this.byType[DENY_TYPES.indexOf(type)] as Float64Array;
    let lo = 0;
    let hi = a.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const v = a[mid] as number;
      if (v === id) return true;
      if (v < id) lo = mid + 1;
      else hi = mid - 1;
    }
    return false;
  }

  get size(): number {
    return this.byType.reduce((n, a) => n + a.length, 0);
  }

  /** Bytes held by the entry arrays (the set's whole variable-size state). */
  get byteLength(): number {
    return this.byType.reduce((n, a) => n + a.byteLength, 0);
  }
}

/** Merges sorted `base` with sorted, unique `adds` minus sorted `removes` (both from one canonical delta). */
function merge(base: Float64Array, adds: readonly number[], removes: readonly number[]): Float64Array {
  const out = new Float64Array(base.length + adds.length);
  let i = 0;
  let a = 0;
  let r = 0;
  let o = 0;
  const push = (v: number): void => {
    while (r < removes.length && (removes[r] as number) < v) r++;
    if (r < removes.length && removes[r] === v) return;
    if (o > 0 && out[o - 1] === v) return; // an add of an id already present
    out[o++] = v;
  };
  while (i < base.length || a < adds.length) {
    const b = i < base.length ? (base[i] as number) : Number.POSITIVE_INFINITY;
    const d = a < adds.length ? (adds[a] as number) : Number.POSITIVE_INFINITY;
    if (b <= d) {
      push(b);
      i++;
      if (b === d) a++;
    } else {
      push(d);
      a++;
    }
  }
  return o === out.length ? out : out.slice(0, o);
}
