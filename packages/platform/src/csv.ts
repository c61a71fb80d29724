/**
 * CSV files for people with spreadsheets (finance offices in China): RFC 4180 (fields quoted when
 * they hold a comma, a quote or a line break; quotes doubled; CRLF between records), UTF-8 with a
 * byte-order mark, because Excel on a Chinese Windows opens a BOM-less file as GBK and turns every
 * name into mojibake. Money goes out twice per amount, as integer fen and as an exact yuan decimal
 * string, never through a float. Times go out in Beijing time with the offset written.
 *
 * Text a person typed (a name) is defused against formula injection (OWASP "CSV injection"): a cell
 * starting with = + - @ or a tab or CR is prefixed with an apostrophe, so a spreadsheet shows it
 * instead of running it. Numbers and dates we format ourselves are never touched (a negative amount
 * must stay a number).
 */
import { BEIJING_OFFSET_S } from './days.js';

/** What a CSV cell may hold: text we produced, text a person typed, or an integer. */
export type Cell = string | number | { readonly typed: string } | null;

/** The UTF-8 byte-order mark every file starts with (U+FEFF). */
export const CSV_BOM = '\uFEFF';

/** The Content-Type of every CSV answer. */
export const CSV_CONTENT_TYPE = 'text/csv; charset=utf-8';

/** Marks text that came from a person (a name): it is defused before it goes into a cell. */
export function typed(text: string): { readonly typed: string } {
  return { typed: text };
}

/** A whole file: BOM, header, rows, each record ended by CRLF. */
export function toCsv(header: readonly string[], rows: readonly (readonly Cell[])[]): string {
  for (const [i, r] of rows.entries()) {
    if (r.length !== header.length) throw new Error(`csv: row ${i} has ${r.length} cells, the header ${header.length}`);
  }
  const lines = [header.map(field), ...rows.map((r) => r.map(cell).map(field))];
  return `${CSV_BOM}${lines.map((l) => l.join(',')).join('\r\n')}\r\n`;
}

function cell(c: Cell): string {
  if (c === null) return '';
  if (typeof c === 'number') {
    if (!Number.isSafeInteger(c)) throw new Error(`csv: ${c} is not an exact integer`);
    return String(c);
  }
  if (typeof c === 'string') return c;
  return /^[=+\-@\t\r]/.test(c.typed) ? `'${c.typed}` : c.typed;
}

function field(s: string): string {
  return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

/** Integer fen as an exact yuan decimal string: 12345 → "123.45", -5 → "-0.05". */
export function yuan(fen: number): string {
  if (!Number.isSafeInteger(fen)) throw new RangeError(`yuan: ${fen} is not an integer number of fen`);
  const sign = fen < 0 ? '-' : '';
  const abs = Math.abs(fen);
  return `${sign}${Math.trunc(abs / 100)}.${String(abs % 100).padStart(2, '0')}`;
}

/** Seconds since the epoch as Beijing time with its offset: 2026-03-01T08:00:00+08:00. */
export function beijingTime(s: number): string {
  return `${new Date((s + BEIJING_OFFSET_S) * 1000).toISOString().slice(0, 19)}+08:00`;
}
