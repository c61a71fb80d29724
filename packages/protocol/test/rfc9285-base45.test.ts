/**
 * Base45 against RFC 9285: the RFC's own examples (kept in vectors/rfc9285.json with their
 * section), an exhaustive check of every triplet and pair, round trips, and strict rejection of
 * everything else with ProtocolError(bad_encoding).
 */
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { attempt, BASE45_ALPHABET, base45Decode, base45Encode } from '../src/index.js';
import { expectCode, hex, utf8 } from './fixtures.js';

interface Rfc9285Vectors {
  readonly encode: readonly { section: string; text: string; base45: string }[];
  readonly decode: readonly { section: string; base45: string; text: string }[];
  readonly valid_triplets: readonly { section: string; base45: string; hex: string }[];
  readonly invalid: readonly { section: string; base45: string }[];
}

const V: Rfc9285Vectors = JSON.parse(readFileSync(new URL('./vectors/rfc9285.json', import.meta.url), 'utf8'));
const text = (b: Uint8Array): string => new TextDecoder().decode(b);

describe('RFC 9285 examples', () => {
  it('has the examples it claims to have', () => {
    expect(V.encode.length).toBe(3);
    expect(V.decode.length).toBe(1);
    expect(V.invalid.map((v) => v.base45)).toContain('GGW');
  });

  for (const v of V.encode) {
    it(`§${v.section}: ${JSON.stringify(v.text)} encodes to ${JSON.stringify(v.base45)} and back`, () => {
      expect(base45Encode(utf8(v.text))).toBe(v.base45);
      expect(text(base45Decode(v.base45))).toBe(v.text);
    });
  }

  for (const v of V.decode) {
    it(`§${v.section}: ${JSON.stringify(v.base45)} decodes to ${JSON.stringify(v.text)} and back`, () => {
      expect(text(base45Decode(v.base45))).toBe(v.text);
      expect(base45Encode(utf8(v.text))).toBe(v.base45);
    });
  }

  for (const v of V.valid_triplets) {
    it(`§${v.section}: ${JSON.stringify(v.base45)} is the largest valid triplet`, () => {
      expect(base45Decode(v.base45)).toEqual(hex(v.hex));
      expect(base45Encode(hex(v.hex))).toBe(v.base45);
    });
  }

  for (const v of V.invalid) {
    it(`§${v.section}: ${JSON.stringify(v.base45)} is rejected`, () => {
      expectCode(() => base45Decode(v.base45), 'bad_encoding');
    });
  }
});

describe('Base45 exhaustively', () => {
  it('the alphabet is the 45 characters of the QR alphanumeric mode, in RFC order', () => {
    expect(BASE45_ALPHABET).toBe('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:');
    expect(new Set(BASE45_ALPHABET).size).toBe(45);
  });

  it('every one of the 45^3 triplets decodes to its value when <= 65535 and is rejected above', () => {
    // Plain comparisons in the loop (91,125 cases); one expect at the end with every disagreement.
    const wrong: string[] = [];
    let valid = 0;
    for (let e = 0; e < 45; e++) {
      for (let d = 0; d < 45; d++) {
        for (let c = 0; c < 45; c++) {
          const t = `${BASE45_ALPHABET[c]}${BASE45_ALPHABET[d]}${BASE45_ALPHABET[e]}`;
          const n = c + 45 * d + 2025 * e;
          const got = attempt(() => base45Decode(t));
          if (n > 0xffff) {
            if (got.ok || got.error.code !== 'bad_encoding') wrong.push(`${t}: accepted or wrong error`);
            continue;
          }
          valid++;
          if (!got.ok) wrong.push(`${t}: ${got.error.code}`);
          else if (got.value.length !== 2 || (((got.value[0] ?? -1) << 8) | (got.value[1] ?? -1)) !== n) wrong.push(`${t}: wrong value`);
          else if (base45Encode(got.value) !== t) wrong.push(`${t}: does not re-encode to itself`);
        }
      }
    }
    expect(wrong).toEqual([]);
    expect(valid).toBe(65_536);
  });

  it('every one of the 45^2 final pairs decodes to its byte when <= 255 and is rejected above', () => {
    let valid = 0;
    for (let d = 0; d < 45; d++) {
      for (let c = 0; c < 45; c++) {
        const t = `${BASE45_ALPHABET[c]}${BASE45_ALPHABET[d]}`;
        const n = c + 45 * d;
        if (n > 0xff) {
          expectCode(() => base45Decode(t), 'bad_encoding');
        } else {
          valid++;
          expect(base45Decode(t)).toEqual(Uint8Array.of(n));
          expect(base45Encode(Uint8Array.of(n))).toBe(t);
        }
      }
    }
    expect(valid).toBe(256);
  });

  it('the empty string is the empty byte string', () => {
    expect(base45Encode(new Uint8Array(0))).toBe('');
    expect(base45Decode('')).toEqual(new Uint8Array(0));
  });
});

describe('Base45 properties', () => {
  it('decode(encode(bytes)) = bytes, with 3 characters per 2 bytes and 2 for an odd last byte', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
        const t = base45Encode(bytes);
        expect(t.length).toBe(Math.floor(bytes.length / 2) * 3 + (bytes.length % 2) * 2);
        for (const ch of t) expect(BASE45_ALPHABET.includes(ch)).toBe(true);
        expect(base45Decode(t)).toEqual(bytes);
      }),
      { seed: 9285, numRuns: 2_000 },
    );
  });

  it('decoding is canonical: any alphabet text that decodes re-encodes to exactly itself', () => {
    const alphabetText = fc.string({ unit: fc.constantFrom(...BASE45_ALPHABET), maxLength: 60 });
    fc.assert(
      fc.property(alphabetText, (t) => {
        let out: Uint8Array;
        try {
          out = base45Decode(t);
        } catch {
          expectCode(() => base45Decode(t), 'bad_encoding');
          return;
        }
        expect(base45Encode(out)).toBe(t);
      }),
      { seed: 4545, numRuns: 3_000 },
    );
  });

  it('a length of 1 mod 3 is rejected even when every character is in the alphabet', () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom(...BASE45_ALPHABET), maxLength: 40 }), (t) => {
        const s = t.length % 3 === 1 ? t : `${t}${'0'.repeat((1 - (t.length % 3) + 3) % 3)}`;
        expect(s.length % 3).toBe(1);
        expectCode(() => base45Decode(s), 'bad_encoding');
      }),
      { seed: 13, numRuns: 500 },
    );
  });

  it('every string holding a character outside the alphabet is rejected with bad_encoding', () => {
    const outside = fc
      .string({ minLength: 1, maxLength: 2, unit: 'binary' })
      .filter((s) => [...s].some((ch) => !BASE45_ALPHABET.includes(ch)));
    const inside = fc.string({ unit: fc.constantFrom(...BASE45_ALPHABET), maxLength: 30 });
    fc.assert(
      fc.property(inside, outside, inside, (a, bad, b) => {
        expectCode(() => base45Decode(a + bad + b), 'bad_encoding');
      }),
      { seed: 45, numRuns: 3_000 },
    );
  });

  it('each non-alphabet UTF-16 code unit is rejected in every position of a group', () => {
    const bad: string[] = [];
    for (let u = 0; u < 0x180; u++) if (!BASE45_ALPHABET.includes(String.fromCharCode(u))) bad.push(String.fromCharCode(u));
    bad.push('\u3000', '\uff10', '\ud800', '\udfff', '\ufeff', '\uffff');
    for (const ch of bad) {
      for (const t of [`${ch}00`, `0${ch}0`, `00${ch}`, `${ch}0`, `0${ch}`, `000${ch}0`]) {
        expectCode(() => base45Decode(t), 'bad_encoding');
      }
    }
    // Lower case is not forgiven: the QR alphanumeric mode has none.
    expectCode(() => base45Decode('bb8'), 'bad_encoding');
  });
});
