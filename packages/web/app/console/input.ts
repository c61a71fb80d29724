/**
 * What people type on the console, parsed with bounds into typed values (pure: no DOM, so the
 * tests run it in Node). Amounts are parsed as text into integer fen, never through a float.
 */

/** The largest amount a person may type on the console, in fen (one million yuan). */
export const TYPED_FEN_MAX = 100_000_000;

/** Yuan typed by a person ("12.5") as integer fen, without floats; undefined when not an amount in bounds. */
export function parseYuanInput(text: string, maxFen: number = TYPED_FEN_MAX): number | undefined {
  const m = /^(\d{1,9})(?:\.(\d{1,2}))?$/.exec(text.trim());
  if (m === null) return undefined;
  const v = Number(m[1]) * 100 + Number((m[2] ?? '').padEnd(2, '0'));
  return Number.isSafeInteger(v) && v <= maxFen ? v : undefined;
}

/** A whole number typed by a person, within bounds; undefined otherwise. */
export function parseIntInput(text: string, min: number, max: number): number | undefined {
  if (!/^\d{1,15}$/.test(text.trim())) return undefined;
  const v = Number(text.trim());
  return Number.isSafeInteger(v) && v >= min && v <= max ? v : undefined;
}
