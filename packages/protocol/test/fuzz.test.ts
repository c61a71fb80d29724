/**
 * Garbage in, ProtocolError out (DESIGN §15: every outside input gets a clear, typed error; nothing
 * crashes). Over 100,000 seeded cases across every decoder: random bytes, random bytes behind a
 * correct header, mutations of valid objects of every suite (bit flips, byte edits, insertions,
 * deletions, truncations, extensions, splices, big counts), and random text. Anything thrown must
 * be a ProtocolError with a code from PROTOCOL_ERROR_CODES; no call may take long. A failure
 * prints the seed, case number and input, so it replays.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import {
  BASE45_ALPHABET,
  base45Decode,
  base45Encode,
  decodeCode,
  decodeCredential,
  decodeDenyList,
  decodeRecord,
  decodeRiskPolicy,
  decodeTerminalCertificate,
  decodeTrustList,
  decodeUploadBatch,
  OBJECT_TYPE,
  ProtocolError,
  parseYuan,
  QR_PREFIX,
  textToCode,
  toHex,
} from '../src/index.js';
import { isKnownCode, SUITES, world } from './fixtures.js';

const SEED = 0x0d0e_7001;

/** xorshift128+-style 32-bit PRNG: tiny, fast and replayable from one seed. */
class Rng {
  private a: number;
  private b: number;
  constructor(seed: number) {
    this.a = seed | 0 || 1;
    this.b = (seed * 0x9e37_79b9) | 0 || 2;
  }
  next(): number {
    let x = this.a;
    const y = this.b;
    this.a = y;
    x ^= x << 23;
    x ^= x >>> 17;
    x ^= y ^ (y >>> 26);
    this.b = x;
    return (x + y) >>> 0;
  }
  int(n: number): number {
    return this.next() % n;
  }
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.next() & 0xff;
    return out;
  }
  pick<T>(list: readonly T[]): T {
    const v = list[this.int(list.length)];
    if (v === undefined) throw new Error('empty list');
    return v;
  }
}

type Decoder = (bytes: Uint8Array) => unknown;
const BINARY: Readonly<Record<keyof typeof OBJECT_TYPE, Decoder>> = {
  trustList: decodeTrustList,
  credential: decodeCredential,
  code: decodeCode,
  terminalCertificate: decodeTerminalCertificate,
  record: decodeRecord,
  uploadBatch: decodeUploadBatch,
  denyList: decodeDenyList,
  riskPolicy: decodeRiskPolicy,
};
type Kind = keyof typeof BINARY;
const KINDS = Object.keys(BINARY) as Kind[];

/** Valid objects of every kind and every suite: the seeds that mutations start from. */
const CORPUS = new Map<Kind, Uint8Array[]>();

beforeAll(async () => {
  for (const k of KINDS) CORPUS.set(k, []);
  const add = (k: Kind, b: Uint8Array) => CORPUS.get(k)?.push(b);
  for (const suite of SUITES) {
    const w = await world(suite);
    add('trustList', w.trustList.bytes);
    add('credential', w.credential.bytes);
    add('code', w.code.bytes);
    add('terminalCertificate', w.cert.bytes);
    for (const r of w.records) add('record', r.bytes);
    add('uploadBatch', w.batchBytes);
    add('denyList', w.denyFull.bytes);
    add('denyList', w.denyDelta.bytes);
    add('riskPolicy', w.policy.bytes);
  }
});

interface Tally {
  cases: number;
  accepted: number;
  readonly codes: Map<string, number>;
  readonly failures: string[];
  slowestMs: number;
}

const tally = (): Tally => ({ cases: 0, accepted: 0, codes: new Map(), failures: [], slowestMs: 0 });
let total = 0;

/** Runs one case; a non-ProtocolError, an unknown code, or a slow call is a failure. */
function run(t: Tally, what: string, i: number, fn: () => unknown, show: () => string): void {
  t.cases++;
  total++;
  const start = performance.now();
  try {
    fn();
    t.accepted++;
  } catch (e) {
    if (!(e instanceof ProtocolError) || !isKnownCode(e.code)) {
      if (t.failures.length < 5) t.failures.push(`${what} #${i} (seed ${SEED}): ${String(e)} on ${show()}`);
    } else {
      t.codes.set(e.code, (t.codes.get(e.code) ?? 0) + 1);
    }
  }
  const ms = performance.now() - start;
  if (ms > t.slowestMs) t.slowestMs = ms;
}

/** One mutation of a valid object: each kind of damage a radio link, a camera or an attacker does. */
function mutate(r: Rng, src: Uint8Array, other: Uint8Array): Uint8Array {
  const b = src.slice();
  const pos = (n: number) => r.int(Math.max(1, n));
  switch (r.int(10)) {
    case 0: {
      const flips = 1 + r.int(3);
      for (let i = 0; i < flips; i++) {
        const p = pos(b.length);
        b[p] = (b[p] ?? 0) ^ (1 << r.int(8));
      }
      return b;
    }
    case 1: {
      b[pos(b.length)] = r.pick([0x00, 0xff, 0x80, 0x7f, r.int(256)]);
      return b;
    }
    case 2: {
      const p = pos(b.length + 1);
      return Uint8Array.of(...b.subarray(0, p), ...r.bytes(1 + r.int(4)), ...b.subarray(p));
    }
    case 3: {
      const p = pos(b.length);
      return Uint8Array.of(...b.subarray(0, p), ...b.subarray(p + 1 + r.int(4)));
    }
    case 4:
      return b.subarray(0, pos(b.length));
    case 5:
      return Uint8Array.of(...b, ...r.bytes(1 + r.int(80)));
    case 6: {
      // Splice: the head of one object onto the tail of another.
      return Uint8Array.of(...b.subarray(0, pos(b.length)), ...other.subarray(pos(other.length)));
    }
    case 7: {
      // A run of 0xff or 0x00 over what is often a length or a count.
      const p = pos(b.length);
      b.fill(r.int(2) === 0 ? 0xff : 0x00, p, p + 1 + r.int(6));
      return b;
    }
    case 8: {
      // Duplicate a range in place (repeated keys, records, entries, rules).
      const p = pos(b.length);
      const len = 1 + r.int(40);
      return Uint8Array.of(...b.subarray(0, p + len), ...b.subarray(p, p + len), ...b.subarray(p + len));
    }
    default: {
      // Many random bytes over a random region.
      const p = pos(b.length);
      b.set(r.bytes(Math.min(b.length - p, 1 + r.int(16))), p);
      return b;
    }
  }
}

function randomText(r: Rng, maxLength: number): string {
  const n = r.int(maxLength + 1);
  let s = '';
  for (let i = 0; i < n; i++) {
    switch (r.int(6)) {
      case 0:
        s += String.fromCharCode(r.int(0x80));
        break;
      case 1:
        s += String.fromCharCode(r.int(0x10000)); // lone surrogates included
        break;
      case 2:
        s += String.fromCodePoint(r.int(0x110000));
        break;
      default:
        s += r.pick([...BASE45_ALPHABET, '.', '-', '\r', '\n', ' ', '0', '9', '\u3000', '\uff11']);
    }
  }
  return s;
}

function expectClean(t: Tally, what: string): void {
  expect(t.failures, what).toEqual([]);
  // Generous, so a loaded CI machine does not flake; a decoder that loops or allocates wildly takes far longer.
  expect(t.slowestMs, `${what}: slowest call`).toBeLessThan(1_000);
}

describe('fuzz: every decoder throws only ProtocolError', () => {
  for (const kind of KINDS) {
    it(`${kind}: random bytes, header-led random bytes and mutations of valid objects`, () => {
      const decode = BINARY[kind];
      const r = new Rng(SEED ^ OBJECT_TYPE[kind]);
      const t = tally();
      const header = (OBJECT_TYPE[kind] << 4) | 1;
      for (let i = 0; i < 2_500; i++) {
        const b = r.bytes(r.int(r.int(4) === 0 ? 1_200 : 260));
        run(
          t,
          `${kind}/random`,
          i,
          () => decode(b),
          () => toHex(b),
        );
      }
      for (let i = 0; i < 1_500; i++) {
        const b = Uint8Array.of(header, ...r.bytes(r.int(300)));
        run(
          t,
          `${kind}/header`,
          i,
          () => decode(b),
          () => toHex(b),
        );
      }
      const corpus = CORPUS.get(kind) ?? [];
      const everything = [...CORPUS.values()].flat();
      expect(corpus.length).toBeGreaterThan(0);
      for (let i = 0; i < 7_000; i++) {
        const src = r.pick(corpus);
        const other = r.int(3) === 0 ? r.pick(everything) : r.pick(corpus);
        const b = mutate(r, src, other);
        run(
          t,
          `${kind}/mutation`,
          i,
          () => decode(b),
          () => toHex(b),
        );
      }
      expectClean(t, kind);
      // The mutations reach past the header: more than one reason shows up.
      expect(t.codes.size, [...t.codes.keys()].join(',')).toBeGreaterThan(3);
    });
  }

  it('textToCode: random text, prefixed alphabet soup and Base45 of mutated codes', () => {
    const r = new Rng(SEED ^ 0x51);
    const t = tally();
    const codes = CORPUS.get('code') ?? [];
    for (let i = 0; i < 6_000; i++) {
      let s: string;
      switch (r.int(4)) {
        case 0:
          s = randomText(r, 400);
          break;
        case 1:
          s = QR_PREFIX + randomText(r, 400);
          break;
        case 2:
          s = QR_PREFIX + base45Encode(mutate(r, r.pick(codes), r.pick(codes)));
          break;
        default:
          s = QR_PREFIX + base45Encode(r.bytes(r.int(260))) + r.pick(['', '\n', '\r\n', ' ', 'X']);
      }
      run(
        t,
        'textToCode',
        i,
        () => textToCode(s),
        () => JSON.stringify(s),
      );
    }
    expectClean(t, 'textToCode');
  });

  it('base45Decode: random text', () => {
    const r = new Rng(SEED ^ 0x45);
    const t = tally();
    for (let i = 0; i < 6_000; i++) {
      const alphabetOnly = Array.from({ length: r.int(60) }, () => r.pick([...BASE45_ALPHABET])).join('');
      const s = r.int(2) === 0 ? randomText(r, 90) : alphabetOnly;
      run(
        t,
        'base45Decode',
        i,
        () => base45Decode(s),
        () => JSON.stringify(s),
      );
    }
    expectClean(t, 'base45Decode');
    expect(t.accepted).toBeGreaterThan(0);
  });

  it('parseYuan: random text and near-miss amounts', () => {
    const r = new Rng(SEED ^ 0x59);
    const t = tally();
    const digits = (n: number) => Array.from({ length: n }, () => String(r.int(10))).join('');
    for (let i = 0; i < 6_000; i++) {
      const s =
        r.int(2) === 0
          ? randomText(r, 24)
          : `${r.pick(['', '-', '+', ' ', '--'])}${digits(r.int(16))}${r.pick(['', '.', '..', ',', 'e'])}${digits(r.int(4))}${r.pick(['', ' ', 'e5', '\n'])}`;
      run(
        t,
        'parseYuan',
        i,
        () => parseYuan(s),
        () => JSON.stringify(s),
      );
    }
    expectClean(t, 'parseYuan');
    expect(t.accepted).toBeGreaterThan(100);
  });

  it(`ran at least 100,000 cases in all`, () => {
    expect(total).toBeGreaterThanOrEqual(100_000);
  });
});

describe('hostile counts are refused before anything is allocated', () => {
  const u32 = (v: number) => [v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];

  it('a deny list claiming 4,000,000 or 2^32-1 entries with no data behind them', () => {
    const head = [0x71, 1, 0, 30, 1, ...u32(5), ...u32(0), ...u32(100), ...u32(200)];
    const code = (count: number) => {
      try {
        decodeDenyList(Uint8Array.of(...head, ...u32(count)));
      } catch (e) {
        return e instanceof ProtocolError ? e.code : String(e);
      }
      return 'accepted';
    };
    expect(code(4_000_000)).toBe('bad_length');
    expect(code(4_000_001)).toBe('too_large');
    expect(code(0xffff_ffff)).toBe('too_large');
  });

  it('a trust list claiming 255 keys, and a batch claiming 1,000 records, with little data', () => {
    const trust = Uint8Array.of(0x11, ...u32(1), ...u32(1), ...u32(2), 1, 0, 1, 255);
    expect(() => decodeTrustList(trust)).toThrowError(expect.objectContaining({ code: 'too_large' }));
    const batch = Uint8Array.of(0x61, ...u32(1), 0x03, 0xe8, 0xff, 0xff);
    expect(() => decodeUploadBatch(batch)).toThrowError(expect.objectContaining({ code: 'bad_length' }));
    const tooMany = Uint8Array.of(0x61, ...u32(1), 0x03, 0xe9);
    expect(() => decodeUploadBatch(tooMany)).toThrowError(expect.objectContaining({ code: 'bad_value' }));
    expect(() => decodeUploadBatch(new Uint8Array(1_400_001))).toThrowError(expect.objectContaining({ code: 'too_large' }));
  });
});
