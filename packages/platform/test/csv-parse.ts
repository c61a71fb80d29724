/**
 * A strict RFC 4180 reader for the tests: the files the platform hands finance must parse back to
 * exactly the cells that went in. Strict means it throws on anything a lenient reader would guess
 * at: no BOM, a bare CR or LF, a quote inside an unquoted field, text after a closing quote, a last
 * record without its CRLF, or records of different lengths.
 */

/** Parses a whole file into its header and rows (every cell a string). */
export function parseCsv(text: string): { header: string[]; rows: string[][] } {
  if (!text.startsWith('\uFEFF')) throw new Error('csv: no UTF-8 byte-order mark');
  const s = text.slice(1);
  const records: string[][] = [];
  let record: string[] = [];
  let i = 0;
  for (;;) {
    let cell = '';
    if (s[i] === '"') {
      i++;
      for (;;) {
        if (i >= s.length) throw new Error('csv: unterminated quoted field');
        if (s[i] === '"') {
          if (s[i + 1] === '"') {
            cell += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        cell += s[i];
        i++;
      }
    } else {
      while (i < s.length && s[i] !== ',' && s[i] !== '\r' && s[i] !== '\n') {
        if (s[i] === '"') throw new Error(`csv: a quote inside an unquoted field at ${i}`);
        cell += s[i];
        i++;
      }
    }
    record.push(cell);
    if (s[i] === ',') {
      i++;
      continue;
    }
    if (s[i] === '\r' && s[i + 1] === '\n') {
      i += 2;
      records.push(record);
      record = [];
      if (i === s.length) break;
      continue;
    }
    throw new Error(`csv: expected a comma or CRLF at ${i}, found ${JSON.stringify(s.slice(i, i + 10))}`);
  }
  const [header, ...rows] = records;
  if (header === undefined) throw new Error('csv: no header');
  for (const [n, r] of rows.entries()) {
    if (r.length !== header.length) throw new Error(`csv: row ${n} has ${r.length} cells, the header ${header.length}`);
  }
  return { header, rows };
}

/** The rows as objects keyed by the header's column names. */
export function csvObjects(text: string): Array<Record<string, string>> {
  const { header, rows } = parseCsv(text);
  return rows.map((r) => Object.fromEntries(header.map((h, i) => [h, r[i] ?? ''])));
}
