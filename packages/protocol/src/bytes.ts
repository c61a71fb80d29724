/**
 * Bounded big-endian reader and writer for the wire formats. The reader throws only ProtocolError,
 * checks every length before it reads, and never allocates more than the input it was given.
 */
import { ProtocolError } from './errors.js';

export class Reader {
  private offset = 0;
  constructor(
    private readonly bytes: Uint8Array,
    private readonly what: string,
  ) {}

  get position(): number {
    return this.offset;
  }

  get remaining(): number {
    return this.bytes.length - this.offset;
  }

  private need(n: number, field: string): void {
    if (this.bytes.length - this.offset < n) {
      throw new ProtocolError('bad_length', `${this.what}.${field}: need ${n} bytes at offset ${this.offset}, have ${this.remaining}`);
    }
  }

  u8(field: string): number {
    this.need(1, field);
    return this.bytes[this.offset++] as number;
  }

  u16(field: string): number {
    this.need(2, field);
    const b = this.bytes;
    const o = this.offset;
    this.offset += 2;
    return ((b[o] as number) << 8) | (b[o + 1] as number);
  }

  u32(field: string): number {
    this.need(4, field);
    const b = this.bytes;
    const o = this.offset;
    this.offset += 4;
    return (b[o] as number) * 0x1000000 + (((b[o + 1] as number) << 16) | ((b[o + 2] as number) << 8) | (b[o + 3] as number));
  }

  /** Unsigned 48-bit integer: exact in a JS number. */
  u48(field: string): number {
    const hi = this.u16(field);
    return hi * 0x1_0000_0000 + this.u32(field);
  }

  /** A view (not a copy) of the next n bytes. */
  bytesView(n: number, field: string): Uint8Array {
    this.need(n, field);
    const out = this.bytes.subarray(this.offset, this.offset + n);
    this.offset += n;
    return out;
  }

  /** A copy of the next n bytes, so the result does not pin or alias the input buffer. */
  bytesCopy(n: number, field: string): Uint8Array {
    return this.bytesView(n, field).slice();
  }

  /** A view of the bytes from `start` to the current position (what a signature covers). */
  since(start: number): Uint8Array {
    return this.bytes.subarray(start, this.offset);
  }

  /** Short UTF-8 text with a u8 length prefix; rejects bad UTF-8 and over-long text. */
  text8(field: string, maxBytes: number): string {
    const n = this.u8(field);
    if (n > maxBytes) throw new ProtocolError('too_large', `${this.what}.${field}: ${n} bytes > ${maxBytes}`);
    const raw = this.bytesView(n, field);
    try {
      // ignoreBOM keeps a leading U+FEFF as text; dropping it would give the same string two encodings.
      return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(raw);
    } catch (e) {
      throw new ProtocolError('bad_encoding', `${this.what}.${field}: not UTF-8`, { cause: e });
    }
  }

  end(): void {
    if (this.offset !== this.bytes.length) {
      throw new ProtocolError('trailing_bytes', `${this.what}: ${this.remaining} bytes after the end`);
    }
  }
}

export class Writer {
  private buf: Uint8Array;
  private offset = 0;

  constructor(initialCapacity = 256) {
    this.buf = new Uint8Array(initialCapacity);
  }

  private ensure(n: number): void {
    if (this.offset + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.offset + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.offset));
    this.buf = next;
  }

  get length(): number {
    return this.offset;
  }

  u8(v: number, field: string): this {
    checkUint(v, 0xff, field);
    this.ensure(1);
    this.buf[this.offset++] = v;
    return this;
  }

  u16(v: number, field: string): this {
    checkUint(v, 0xffff, field);
    this.ensure(2);
    this.buf[this.offset++] = v >>> 8;
    this.buf[this.offset++] = v & 0xff;
    return this;
  }

  u32(v: number, field: string): this {
    checkUint(v, 0xffff_ffff, field);
    this.ensure(4);
    this.buf[this.offset++] = v >>> 24;
    this.buf[this.offset++] = (v >>> 16) & 0xff;
    this.buf[this.offset++] = (v >>> 8) & 0xff;
    this.buf[this.offset++] = v & 0xff;
    return this;
  }

  u48(v: number, field: string): this {
    checkUint(v, 2 ** 48 - 1, field);
    this.u16(Math.floor(v / 0x1_0000_0000), field);
    return this.u32(v % 0x1_0000_0000, field);
  }

  bytes(b: Uint8Array, expectedLength: number | undefined, field: string): this {
    if (expectedLength !== undefined && b.length !== expectedLength) {
      throw new ProtocolError('bad_length', `${field}: ${b.length} bytes, expected ${expectedLength}`);
    }
    this.ensure(b.length);
    this.buf.set(b, this.offset);
    this.offset += b.length;
    return this;
  }

  text8(s: string, maxBytes: number, field: string): this {
    const raw = new TextEncoder().encode(s);
    if (raw.length > maxBytes) throw new ProtocolError('too_large', `${field}: ${raw.length} bytes > ${maxBytes}`);
    this.u8(raw.length, field);
    return this.bytes(raw, undefined, field);
  }

  /** The bytes written so far (a copy, exactly sized). */
  finish(): Uint8Array {
    return this.buf.slice(0, this.offset);
  }
}

function checkUint(v: number, max: number, field: string): void {
  if (!Number.isInteger(v) || v < 0 || v > max) {
    throw new ProtocolError('bad_value', `${field}: ${String(v)} is not an integer in 0..${max}`);
  }
}

export function concatBytes(...parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= (a[i] as number) ^ (b[i] as number);
  return diff === 0;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

export function toHex(b: Uint8Array): string {
  let s = '';
  for (const x of b) s += HEX[x];
  return s;
}

export function fromHex(hex: string): Uint8Array {
  if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) {
    throw new ProtocolError('bad_encoding', `hex: ${hex.length} characters, or a non-hex character`);
  }
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** Domain-separation label for signatures: ASCII text plus a NUL, never transmitted. */
export function label(text: string): Uint8Array {
  return new TextEncoder().encode(`${text}\0`);
}
