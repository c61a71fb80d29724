/**
 * Money: integer minor units (fen, 1/100 yuan) in one bounded, branded type. No float ever touches
 * an amount: constructors refuse non-integers, and arithmetic re-checks the bound.
 */
import { ProtocolError } from './errors.js';

export type Fen = number & { readonly __unit: 'fen' };

/**
 * The largest magnitude any amount or balance may have: 10^13 fen (100 billion yuan). Far above any
 * campus figure, and low enough that the sum of 900 extreme values stays an exact JS integer
 * (2^53 ≈ 9.007e15), so ledger sums never lose precision.
 */
export const FEN_MAX = 10_000_000_000_000;

/** Largest amount a single wire field (u32) can carry: 42,949,672.95 yuan. */
export const FEN_WIRE_MAX = 0xffff_ffff;

/** Makes a Fen from a trusted number; throws ProtocolError(bad_value) if it is not a bounded integer. */
export function fen(value: number): Fen {
  if (!Number.isSafeInteger(value) || value > FEN_MAX || value < -FEN_MAX) {
    throw new ProtocolError('bad_value', `amount ${String(value)} is not an integer number of fen within ±${FEN_MAX}`);
  }
  // -0 passes the checks above; normalise it so no amount is ever negative zero (Object.is, 1/x, sign tests).
  return (value === 0 ? 0 : value) as Fen;
}

/** A non-negative amount, as every payment amount and limit must be. */
export function fenNonNegative(value: number): Fen {
  const v = fen(value);
  if (v < 0) throw new ProtocolError('bad_value', `amount ${String(value)} must not be negative`);
  return v;
}

export const ZERO_FEN = 0 as Fen;

export function addFen(a: Fen, b: Fen): Fen {
  return fen(a + b);
}

export function subFen(a: Fen, b: Fen): Fen {
  return fen(a - b);
}

export function minFen(a: Fen, b: Fen): Fen {
  return (a < b ? a : b) as Fen;
}

/** Parses outside text ("12.34", "12", "0.5") in yuan into fen, exactly, without floats. */
export function parseYuan(text: string): Fen {
  // Up to 12 whole digits, so FEN_MAX itself ("100000000000.00") parses; fen() enforces the bound.
  const m = /^(-)?(\d{1,12})(?:\.(\d{1,2}))?$/.exec(text.trim());
  if (m === null) throw new ProtocolError('bad_value', `"${text.slice(0, 32)}" is not an amount in yuan like 12.34`);
  const whole = Number(m[2]);
  const frac = Number((m[3] ?? '').padEnd(2, '0'));
  return fen((m[1] === '-' ? -1 : 1) * (whole * 100 + frac));
}

/** Formats fen as yuan text with exactly two decimals ("12.34"), without floats. */
export function formatYuan(amount: Fen): string {
  const sign = amount < 0 ? '-' : '';
  const abs = Math.abs(amount);
  return `${sign}${Math.trunc(abs / 100)}.${String(abs % 100).padStart(2, '0')}`;
}
