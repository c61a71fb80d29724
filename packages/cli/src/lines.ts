/**
 * Reads lines from a stream with a bound on line length, as a keyboard-wedge scanner types them: an
 * over-long line is reported once and skipped to its end, never buffered without limit.
 */
export async function* boundedLines(
  stream: AsyncIterable<Buffer | string>,
  maxChars: number,
): AsyncGenerator<{ line: string; tooLong: false } | { line: string; tooLong: true }> {
  let buf = '';
  let skipping = false;
  for await (const chunk of stream) {
    buf += typeof chunk === 'string' ? chunk : chunk.toString('utf8');
    for (;;) {
      const nl = buf.indexOf('\n');
      if (nl < 0) break;
      const line = buf.slice(0, nl).replace(/\r$/, '');
      buf = buf.slice(nl + 1);
      if (skipping) {
        skipping = false;
        continue;
      }
      yield line.length > maxChars ? { line: line.slice(0, 32), tooLong: true } : { line, tooLong: false };
    }
    if (buf.length > maxChars) {
      if (!skipping) yield { line: buf.slice(0, 32), tooLong: true };
      skipping = true;
      buf = '';
    }
  }
  if (buf.length > 0 && !skipping) yield buf.length > maxChars ? { line: buf.slice(0, 32), tooLong: true } : { line: buf, tooLong: false };
}
