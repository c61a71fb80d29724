/** The POS's own parsing of outside input: keypad text into fen, and typed activation codes. */
import { describe, expect, it } from 'vitest';
import { AMOUNT_TEXT_MAX, parseAmount, pressKey } from '../app/pos/amount.js';
import { parseActivationCode } from '../app/pos/engine.js';

describe('keypad amounts', () => {
  it('parses yuan text into exact integer fen', () => {
    expect(parseAmount('12.5', 10_000)).toEqual({ ok: true, fen: 1250 });
    expect(parseAmount('0.01', 10_000)).toEqual({ ok: true, fen: 1 });
    expect(parseAmount('100', 10_000)).toEqual({ ok: true, fen: 10_000 });
    expect(parseAmount('7.', 10_000)).toEqual({ ok: true, fen: 700 });
    // 0.1 + 0.2 style float traps do not exist here: 0.29 is 29 fen exactly.
    expect(parseAmount('0.29', 10_000)).toEqual({ ok: true, fen: 29 });
  });

  it('refuses empty, zero, three decimals, over the cap and junk, in both languages', () => {
    const codes = ['', '0', '0.00', '1.234', '100.01', '1..2', '.5', 'abc', '-1', '12345678'].map((x) => {
      const r = parseAmount(x, 10_000);
      if (r.ok) return 'ok';
      expect(r.en.length).toBeGreaterThan(0);
      expect(r.zh.length).toBeGreaterThan(0);
      return r.code;
    });
    expect(codes).toEqual(['empty', 'zero', 'zero', 'decimals', 'over_max', 'format', 'format', 'format', 'format', 'format']);
  });

  it('builds the text key by key with backspace, clear and a length cap', () => {
    let s = '';
    for (const k of ['0', '5', '00', '.', '2']) s = pressKey(s, k);
    expect(s).toBe('500.2');
    expect(pressKey(s, 'back')).toBe('500.');
    expect(pressKey(s, 'clear')).toBe('');
    let long = '';
    for (let i = 0; i < 20; i++) long = pressKey(long, '9');
    expect(long.length).toBe(AMOUNT_TEXT_MAX);
    expect(pressKey(pressKey('', '.'), '5')).toBe('0.5');
  });
});

describe('activation codes', () => {
  it('forgives case and spacing, then requires four groups of five', () => {
    expect(parseActivationCode(' abcde-fgh23-jklmn-pqrst ')).toEqual({ ok: true, code: 'ABCDE-FGH23-JKLMN-PQRST' });
    expect(parseActivationCode('ABCDEFGH23JKLMNPQRST')).toEqual({ ok: true, code: 'ABCDE-FGH23-JKLMN-PQRST' });
    for (const bad of ['', 'ABCDE', 'ABCDE-FGH23-JKLMN-PQRS1', 'ABCDE-FGH23-JKLMN-PQRST-UVWXY', '<script>']) {
      const r = parseActivationCode(bad);
      expect(r.ok).toBe(false);
    }
  });
});
