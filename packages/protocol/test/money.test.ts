/**
 * Money is integer fen in one bounded type (DESIGN §15, STYLE practice 3). These tests hold the
 * bounds, refuse every non-integer, and check yuan text both ways against an oracle in BigInt, so
 * no float arithmetic is trusted anywhere in the check.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { addFen, FEN_MAX, FEN_WIRE_MAX, fen, fenNonNegative, formatYuan, minFen, parseYuan, subFen, ZERO_FEN } from '../src/index.js';
import { expectCode } from './fixtures.js';

const fenArb = fc.integer({ min: -FEN_MAX, max: FEN_MAX });

/** The exact yuan text of an amount, computed in BigInt. */
function oracleText(amount: number): string {
  const v = BigInt(amount);
  const abs = v < 0n ? -v : v;
  return `${v < 0n ? '-' : ''}${abs / 100n}.${String(abs % 100n).padStart(2, '0')}`;
}

describe('fen(): the one constructor', () => {
  it('accepts every integer in [-FEN_MAX, FEN_MAX]', () => {
    for (const v of [0, 1, -1, 99, FEN_MAX, -FEN_MAX, FEN_WIRE_MAX]) expect(fen(v)).toBe(v);
    fc.assert(
      fc.property(fenArb, (v) => {
        expect(fen(v)).toBe(v);
      }),
      { seed: 1, numRuns: 1_000 },
    );
  });

  it('refuses anything past the bound, in both directions', () => {
    for (const v of [FEN_MAX + 1, -FEN_MAX - 1, 2 ** 53, -(2 ** 53), Number.MAX_SAFE_INTEGER, Number.MAX_VALUE])
      expectCode(() => fen(v), 'bad_value');
    fc.assert(
      fc.property(fc.integer({ min: FEN_MAX + 1, max: Number.MAX_SAFE_INTEGER }), fc.boolean(), (v, neg) => {
        expectCode(() => fen(neg ? -v : v), 'bad_value');
      }),
      { seed: 2, numRuns: 500 },
    );
  });

  it('refuses every non-integer: fractions, 0.1 + 0.2, NaN and the infinities', () => {
    for (const v of [
      0.5,
      -0.5,
      0.1 + 0.2,
      1e-9,
      1.000_000_1,
      12.34 * 100 + 0.1,
      Number.NaN,
      Number.POSITIVE_INFINITY,
      Number.NEGATIVE_INFINITY,
      Number.EPSILON,
    ]) {
      expectCode(() => fen(v), 'bad_value');
    }
    fc.assert(
      fc.property(
        fc.double({ min: -FEN_MAX, max: FEN_MAX }).filter((d) => !Number.isInteger(d)),
        (d) => {
          expectCode(() => fen(d), 'bad_value');
        },
      ),
      { seed: 3, numRuns: 1_000 },
    );
  });

  it('never hands out negative zero', () => {
    expect(Object.is(fen(-0), 0)).toBe(true);
    expect(Object.is(parseYuan('-0.00'), 0)).toBe(true);
    expect(Object.is(subFen(fen(5), fen(5)), 0)).toBe(true);
    expect(Object.is(addFen(fen(0), fen(-0)), 0)).toBe(true);
  });

  it('fenNonNegative refuses negatives; ZERO_FEN is 0', () => {
    expect(fenNonNegative(0)).toBe(0);
    expect(fenNonNegative(FEN_MAX)).toBe(FEN_MAX);
    expectCode(() => fenNonNegative(-1), 'bad_value');
    expectCode(() => fenNonNegative(0.5), 'bad_value');
    expect(ZERO_FEN).toBe(0);
  });

  it('arithmetic re-checks the bound and stays exact', () => {
    expect(addFen(fen(FEN_MAX - 1), fen(1))).toBe(FEN_MAX);
    expectCode(() => addFen(fen(FEN_MAX), fen(1)), 'bad_value');
    expectCode(() => subFen(fen(-FEN_MAX), fen(1)), 'bad_value');
    expect(minFen(fen(3), fen(-4))).toBe(-4);
    fc.assert(
      fc.property(fenArb, fenArb, (a, b) => {
        const exact = BigInt(a) + BigInt(b);
        if (exact > BigInt(FEN_MAX) || exact < -BigInt(FEN_MAX)) expectCode(() => addFen(fen(a), fen(b)), 'bad_value');
        else expect(BigInt(addFen(fen(a), fen(b)))).toBe(exact);
        const diff = BigInt(a) - BigInt(b);
        if (diff > BigInt(FEN_MAX) || diff < -BigInt(FEN_MAX)) expectCode(() => subFen(fen(a), fen(b)), 'bad_value');
        else expect(BigInt(subFen(fen(a), fen(b)))).toBe(diff);
        expect(minFen(fen(a), fen(b))).toBe(Math.min(a, b));
      }),
      { seed: 4, numRuns: 2_000 },
    );
  });

  it('the sum of 900 extreme amounts is still an exact integer (the reason for FEN_MAX)', () => {
    expect(Number.isSafeInteger(900 * FEN_MAX)).toBe(true);
  });
});

describe('yuan text', () => {
  it('parses the examples exactly', () => {
    const cases: [string, number][] = [
      ['12.34', 1234],
      ['12', 1200],
      ['0.5', 50],
      ['0.05', 5],
      ['0', 0],
      ['0.00', 0],
      ['-1.00', -100],
      ['-0.01', -1],
      [' 12.34 ', 1234],
      ['007.10', 710],
      ['99999999999.99', FEN_MAX - 1],
      ['100000000000', FEN_MAX],
      ['100000000000.00', FEN_MAX],
      ['-100000000000.00', -FEN_MAX],
    ];
    for (const [text, amount] of cases) expect(parseYuan(text), text).toBe(amount);
  });

  it('refuses everything that is not plain decimal yuan with at most two decimals', () => {
    const bad = [
      '',
      ' ',
      '12.345',
      '1e3',
      '0x10',
      '.5',
      '5.',
      '+1',
      '1,000',
      '1 000',
      '１２',
      '١٢',
      'NaN',
      'Infinity',
      '12.3.4',
      '- 1',
      '--1',
      '1-',
      '¥12',
      '12元',
      '100000000000.01',
      '999999999999.99',
      '1000000000000',
      '-100000000000.01',
      '0.1+0.2',
    ];
    for (const text of bad) expectCode(() => parseYuan(text), 'bad_value');
  });

  it('formats exactly, with two decimals and a sign only when negative', () => {
    const cases: [number, string][] = [
      [0, '0.00'],
      [5, '0.05'],
      [50, '0.50'],
      [1234, '12.34'],
      [-5, '-0.05'],
      [-1234, '-12.34'],
      [FEN_MAX, '100000000000.00'],
      [-FEN_MAX, '-100000000000.00'],
    ];
    for (const [amount, text] of cases) expect(formatYuan(fen(amount))).toBe(text);
  });

  it('formatYuan agrees with the BigInt oracle, and parseYuan(formatYuan(x)) = x for every valid amount', () => {
    fc.assert(
      fc.property(fenArb, (v) => {
        const text = formatYuan(fen(v));
        expect(text).toBe(oracleText(v));
        expect(parseYuan(text)).toBe(v);
      }),
      { seed: 5, numRuns: 5_000, examples: [[0], [FEN_MAX], [-FEN_MAX], [1], [-1], [99], [-99], [100]] },
    );
  });

  it('parseYuan agrees with a BigInt reading of generated yuan text', () => {
    fc.assert(
      fc.property(
        fc.boolean(),
        fc.stringMatching(/^\d{1,12}$/),
        fc.constantFrom('', '.x', '.xx'),
        fc.integer({ min: 0, max: 99 }),
        (neg, whole, fracShape, frac) => {
          const digits = String(frac).padStart(2, '0');
          const fracText = fracShape === '' ? '' : fracShape === '.x' ? `.${digits[0]}` : `.${digits}`;
          const text = `${neg ? '-' : ''}${whole}${fracText}`;
          const fracFen = fracText === '' ? 0n : BigInt(`${fracText.slice(1)}0`.slice(0, 2));
          const exact = (neg ? -1n : 1n) * (BigInt(whole) * 100n + fracFen);
          if (exact > BigInt(FEN_MAX) || exact < -BigInt(FEN_MAX)) {
            expectCode(() => parseYuan(text), 'bad_value');
          } else {
            expect(BigInt(parseYuan(text))).toBe(exact);
          }
        },
      ),
      { seed: 6, numRuns: 3_000 },
    );
  });
});
