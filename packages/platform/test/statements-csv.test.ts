/**
 * The pieces every statement and export file is made of: exact yuan strings, RFC 4180 CSV with a
 * BOM that parses back to the same cells (property test against the strict reader in csv-parse.ts),
 * defused formulas in names, and Beijing calendar days.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { beijingTime, CSV_BOM, type Cell, toCsv, typed, yuan } from '../src/csv.js';
import { beijingDay, beijingDayStartS } from '../src/days.js';
import { ApiError } from '../src/errors.js';
import { parseCsv } from './csv-parse.js';

describe('yuan', () => {
  it('writes fen as an exact decimal string with two places', () => {
    expect([0, 1, 5, 10, 99, 100, 101, 12_345, -1, -5, -100, -12_345, 9_007_199_254_740_991].map(yuan)).toEqual([
      '0.00',
      '0.01',
      '0.05',
      '0.10',
      '0.99',
      '1.00',
      '1.01',
      '123.45',
      '-0.01',
      '-0.05',
      '-1.00',
      '-123.45',
      '90071992547409.91',
    ]);
  });

  it('reads back to the same integer for every safe integer (digits only, no float on the way)', () => {
    fc.assert(
      fc.property(
        fc.maxSafeInteger().filter((n) => n >= Number.MIN_SAFE_INTEGER),
        (n) => {
          const s = yuan(n);
          expect(s).toMatch(/^-?\d+\.\d{2}$/);
          const negative = s.startsWith('-');
          const digits = BigInt(s.replace('-', '').replace('.', ''));
          expect(negative ? -digits : digits).toBe(BigInt(n));
        },
      ),
    );
  });

  it('refuses a fraction of a fen', () => {
    expect(() => yuan(1.5)).toThrow(RangeError);
  });
});

describe('CSV', () => {
  it('starts with the BOM, ends every record with CRLF, and quotes only what must be quoted', () => {
    const text = toCsv(
      ['a', 'b', 'c'],
      [
        ['plain', 'with,comma', 'with "quote"'],
        ['line\r\nbreak', 42, null],
      ],
    );
    expect(text).toBe(`${CSV_BOM}a,b,c\r\nplain,"with,comma","with ""quote"""\r\n"line\r\nbreak",42,\r\n`);
  });

  it('defuses a typed name that a spreadsheet would run as a formula, and leaves numbers and our own text alone', () => {
    const { rows } = parseCsv(
      toCsv(
        ['name', 'n', 'yuan'],
        [
          [typed('=HYPERLINK("x")'), -5, yuan(-5)],
          [typed('@SUM(A1)'), 1, '1'],
        ],
      ),
    );
    expect(rows).toEqual([
      [`'=HYPERLINK("x")`, '-5', '-0.05'],
      [`'@SUM(A1)`, '1', '1'],
    ]);
    expect(parseCsv(toCsv(['name'], [[typed('张三')], [typed('-1')], [typed('+86')]])).rows).toEqual([['张三'], ["'-1"], ["'+86"]]);
  });

  it('parses back to exactly the cells written, whatever the text', () => {
    const text = fc.string({ unit: 'grapheme', maxLength: 12 });
    const cell: fc.Arbitrary<Cell> = fc.oneof(text, fc.integer(), fc.constant(null));
    fc.assert(
      fc.property(
        fc
          .integer({ min: 1, max: 4 })
          .chain((n) =>
            fc.tuple(
              fc.array(text, { minLength: n, maxLength: n }),
              fc.array(fc.array(cell, { minLength: n, maxLength: n }), { maxLength: 5 }),
            ),
          ),
        ([header, rows]) => {
          const back = parseCsv(toCsv(header, rows));
          expect(back.header).toEqual(header);
          expect(back.rows).toEqual(rows.map((r) => r.map((c) => (c === null ? '' : String(c)))));
        },
      ),
    );
  });

  it('refuses a row of the wrong length and a non-integer number (a programmer error)', () => {
    expect(() => toCsv(['a', 'b'], [['1']])).toThrow(/row 0 has 1 cells/);
    expect(() => toCsv(['a'], [[0.5]])).toThrow(/not an exact integer/);
  });
});

describe('Beijing days', () => {
  // 2026-03-01 00:00 in Beijing is 2026-02-28T16:00:00Z.
  const start = Date.UTC(2026, 1, 28, 16) / 1000;

  it('puts a second on the Beijing calendar day it falls in, UTC+08:00 all year', () => {
    expect(beijingDay(start - 1)).toBe('2026-02-28');
    expect(beijingDay(start)).toBe('2026-03-01');
    expect(beijingDay(start + 86_399)).toBe('2026-03-01');
    expect(beijingDay(start + 86_400)).toBe('2026-03-02');
    // No daylight saving: a July day starts at 16:00Z the day before, as a March one does.
    expect(beijingDayStartS('2026-07-01')).toBe(Date.UTC(2026, 5, 30, 16) / 1000);
    expect(beijingTime(start)).toBe('2026-03-01T00:00:00+08:00');
  });

  it('turns a day back into its first second, for every day', () => {
    fc.assert(
      fc.property(fc.integer({ min: Date.UTC(2000, 0, 1) / 1000, max: 4_000_000_000 }), (s) => {
        const day = beijingDay(s);
        const first = beijingDayStartS(day);
        expect(first).toBeLessThanOrEqual(s);
        expect(s - first).toBeLessThan(86_400);
        expect(beijingDay(first)).toBe(day);
      }),
    );
  });

  it('refuses a date that is not a real calendar day', () => {
    for (const bad of ['2026-02-29', '2026-13-01', '2026-1-01', '26-01-01', '2026-01-01T00', '1999-12-31', '']) {
      expect(() => beijingDayStartS(bad), bad).toThrow(ApiError);
    }
    expect(beijingDayStartS('2028-02-29')).toBe(Date.UTC(2028, 1, 28, 16) / 1000);
  });
});
