/**
 * A code is the one object a stranger hands a terminal, so every change to it must be refused, with
 * the reason a cashier would be told. For each suite: every single-bit flip of a valid code is
 * rejected with the exact code that the field it lands in predicts (an oracle written from the
 * byte layout, independent of the decoder), every truncation is bad_length, and the QR text form
 * is strict.
 */
import { describe, expect, it } from 'vitest';
import {
  CODE_MAX_BYTES,
  CREDENTIAL_LIFETIME_MAX_S,
  CredentialCache,
  type CodeCheck,
  codeToText,
  decodeCode,
  PUBLIC_KEY_BYTES,
  type ProtocolErrorCode,
  QR_PREFIX,
  QR_TEXT_MAX_CHARS,
  SUITE_ID,
  type SuiteName,
  textToCode,
  textToCodeBytes,
  verifyCode,
} from '../src/index.js';
import { at, expectCode, flipBit, isKnownCode, KEY_ID, SUITES, type World, world } from './fixtures.js';

/** The fields of a code in wire order, with their sizes for a device key of K bytes. */
function layout(k: number): readonly (readonly [string, number])[] {
  return [
    ['code_header', 1],
    ['credential_header', 1],
    ['suites', 1],
    ['issuer_key_id', 2],
    ['serial', 6],
    ['holder', 6],
    ['campus', 2],
    ['role', 1],
    ['scopes', 1],
    ['device_public_key', k],
    ['per_payment', 4],
    ['offline_total', 4],
    ['offline_count', 2],
    ['not_before', 4],
    ['not_after', 4],
    ['issuer_signature', 64],
    ['time', 4],
    ['counter', 4],
    ['device_signature', 64],
  ];
}

interface Field {
  readonly name: string;
  readonly start: number;
  readonly length: number;
}

function fieldAt(k: number, offset: number): Field {
  let start = 0;
  for (const [name, length] of layout(k)) {
    if (offset < start + length) return { name, start, length };
    start += length;
  }
  throw new Error(`offset ${offset} is past the end`);
}

function readUint(bytes: Uint8Array, start: number, length: number): number {
  let v = 0;
  for (let i = 0; i < length; i++) v = v * 256 + at(bytes, start + i);
  return v;
}

const VALID_SUITE_IDS = new Set(Object.values(SUITE_ID));
/** Outcome of a shifted layout (a device suite whose key has another length): some field further on fails. */
const SHIFTED: readonly ProtocolErrorCode[] = ['bad_length', 'bad_value', 'trailing_bytes'];

/**
 * What verifyCode (after decodeCode) must say when `tampered` differs from the world's code in one
 * bit. Written from the layout and the documented check order, not from the decoder.
 */
function expectedFor(w: World, tampered: Uint8Array, offset: number, mask: number): readonly ProtocolErrorCode[] {
  const k = PUBLIC_KEY_BYTES[w.suite];
  const f = fieldAt(k, offset);
  const v = readUint(tampered, f.start, f.length);
  const value = (name: string): number => {
    let start = 0;
    for (const [n, length] of layout(k)) {
      if (n === name) return readUint(tampered, start, length);
      start += length;
    }
    throw new Error(name);
  };
  switch (f.name) {
    case 'code_header':
    case 'credential_header':
      return [mask & 0xf0 ? 'unknown_type' : 'unknown_version'];
    case 'suites': {
      const issuer = v >> 4;
      const device = v & 0x0f;
      if (!VALID_SUITE_IDS.has(issuer) || !VALID_SUITE_IDS.has(device)) return ['unknown_suite'];
      const deviceSuite = SUITES.find((s) => SUITE_ID[s] === device) as SuiteName;
      if (PUBLIC_KEY_BYTES[deviceSuite] !== k) return SHIFTED;
      return issuer !== SUITE_ID[w.suite] ? ['unknown_suite'] : ['bad_signature'];
    }
    case 'issuer_key_id':
      if (v === KEY_ID.terminalCa || v === KEY_ID.listSigner) return ['wrong_key_role'];
      return v === KEY_ID.issuer ? ['bad_signature'] : ['unknown_key'];
    case 'serial':
    case 'holder':
      return v === 0 ? ['bad_value'] : ['bad_signature'];
    case 'role':
      return v >= 1 && v <= 3 ? ['bad_signature'] : ['bad_value'];
    case 'scopes':
      return v === 0 || v >> 4 !== 0 ? ['bad_value'] : ['bad_signature'];
    case 'per_payment':
    case 'offline_total':
    case 'offline_count':
      return value('per_payment') > value('offline_total') || value('offline_count') < 1 ? ['bad_value'] : ['bad_signature'];
    case 'not_before':
    case 'not_after': {
      const nb = value('not_before');
      const na = value('not_after');
      if (na <= nb || na - nb > CREDENTIAL_LIFETIME_MAX_S) return ['bad_value'];
      const key = w.trustBody.keys.find((x) => x.keyId === KEY_ID.issuer);
      if (key === undefined) throw new Error('issuer key');
      if (nb < key.notBefore) return ['not_yet_valid'];
      if (nb >= key.notAfter) return ['expired'];
      return ['bad_signature'];
    }
    default:
      // campus, device key, the two signatures, time and counter: only a signature can catch these.
      return ['bad_signature'];
  }
}

/** Decode then verify; the ProtocolError code it ends with, or 'accepted'. */
async function outcome(bytes: Uint8Array, check: CodeCheck): Promise<string> {
  try {
    await verifyCode(decodeCode(bytes), check);
    return 'accepted';
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    if (typeof code !== 'string' || !isKnownCode(code)) throw e;
    return code;
  }
}

describe.each(SUITES)('%s code tampering', (suite) => {
  it('the untouched code is accepted, and has the documented length', async () => {
    const w = await world(suite);
    expect(w.code.bytes.length).toBe(175 + PUBLIC_KEY_BYTES[suite]);
    expect(layout(PUBLIC_KEY_BYTES[suite]).reduce((n, [, l]) => n + l, 0)).toBe(w.code.bytes.length);
    expect(await outcome(w.code.bytes, w.check)).toBe('accepted');
  });

  it('every single-bit flip is rejected with the code its field predicts', async () => {
    const w = await world(suite);
    // The cache makes flips after the credential cost one verify; flips inside it must still miss.
    const cache = new CredentialCache();
    const check: CodeCheck = { ...w.check, cache };
    expect(await outcome(w.code.bytes, check)).toBe('accepted');
    expect(cache.size).toBe(1);
    const wrong: string[] = [];
    const seen = new Map<string, number>();
    for (let bit = 0; bit < w.code.bytes.length * 8; bit++) {
      const offset = bit >> 3;
      const tampered = flipBit(w.code.bytes, bit);
      const got = await outcome(tampered, check);
      const want = expectedFor(w, tampered, offset, 0x80 >> (bit & 7));
      seen.set(got, (seen.get(got) ?? 0) + 1);
      if (!want.includes(got as ProtocolErrorCode)) {
        wrong.push(`bit ${bit} (${fieldAt(PUBLIC_KEY_BYTES[suite], offset).name}): got ${got}, want ${want.join('|')}`);
      }
    }
    expect(wrong).toEqual([]);
    expect(seen.get('accepted')).toBeUndefined();
    // The oracle is not vacuous: the flips reach every kind of check a single bit can reach. (A single
    // flip cannot move not_before out of the issuer key's year without breaking the 31-day lifetime,
    // nor turn issuer key id 10 into the CA's 20 or the list signer's 30.)
    for (const code of ['unknown_type', 'unknown_version', 'unknown_suite', 'unknown_key', 'bad_value', 'bad_signature']) {
      expect(seen.get(code) ?? 0, code).toBeGreaterThan(0);
    }
    // No flip got a cached pass on changed credential bytes.
    expect(cache.size).toBe(1);
  });

  it('every truncation is bad_length, and every extension is too_large or trailing_bytes', async () => {
    const w = await world(suite);
    const bytes = w.code.bytes;
    for (let n = 0; n < bytes.length; n++) {
      const e = expectCode(() => decodeCode(bytes.subarray(0, n)), 'bad_length');
      expect(e.detail).toMatch(/^(code|credential)\./);
    }
    const longer = Uint8Array.of(...bytes, 0);
    expectCode(() => decodeCode(longer), longer.length > CODE_MAX_BYTES ? 'too_large' : 'trailing_bytes');
    expectCode(() => decodeCode(Uint8Array.of(...bytes, 0, 0)), 'too_large');
    expectCode(() => decodeCode(new Uint8Array(CODE_MAX_BYTES + 1)), 'too_large');
  });

  it('no random multi-byte mutation verifies (seeded; 300 cases, 100 for the slower SM2)', async () => {
    const w = await world(suite);
    let state = 0x9e3779b9 ^ SUITE_ID[suite];
    const rand = (n: number): number => {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      return (state >>> 0) % n;
    };
    for (let i = 0; i < (suite === 'sm2' ? 100 : 300); i++) {
      const t = w.code.bytes.slice();
      const changes = 2 + rand(6);
      for (let c = 0; c < changes; c++) t[rand(t.length)] = rand(256);
      if (t.every((b, j) => b === w.code.bytes[j])) continue;
      expect(await outcome(t, w.check)).not.toBe('accepted');
    }
  });
});

describe.each(SUITES)('%s QR text', (suite) => {
  it(`is ${QR_PREFIX} + Base45 and round-trips`, async () => {
    const { code } = await world(suite);
    const text = codeToText(code);
    expect(text.startsWith('DU1:')).toBe(true);
    expect(text).toMatch(/^DU1:[0-9A-Z $%*+\-./:]+$/);
    expect(textToCode(text).bytes).toEqual(code.bytes);
    expect(textToCodeBytes(text)).toEqual(code.bytes);
  });

  it('accepts a trailing CR, LF or CRLF from a keyboard-wedge scanner, and nothing else', async () => {
    const text = codeToText((await world(suite)).code);
    for (const end of ['\r', '\n', '\r\n', '\n\n', '\r\n\r\n']) expect(textToCode(text + end).bytes.length).toBeGreaterThan(0);
    for (const end of ['\t', '\r\nX', '\u00a0', '\0']) expectCode(() => textToCode(text + end), 'bad_encoding');
    // A space is a Base45 character: one makes the length 1 mod 3, two make a 1-byte-longer code.
    expectCode(() => textToCode(`${text} `), 'bad_encoding');
    expect(() => textToCode(`${text}  `)).toThrow();
    expectCode(() => textToCode(`\n${text}`), 'bad_prefix');
    expectCode(() => textToCode(` ${text}`), 'bad_prefix');
  });

  it('a wrong or missing prefix is bad_prefix', async () => {
    const body = codeToText((await world(suite)).code).slice(QR_PREFIX.length);
    for (const prefix of ['', 'du1:', 'DU2:', 'DU1', 'DU:', 'DUET1:', 'HC1:', 'DU1-', ':']) {
      expectCode(() => textToCode(prefix + body), 'bad_prefix');
    }
    expectCode(() => textToCode(''), 'bad_prefix');
    expectCode(() => textToCode('\r\n'), 'bad_prefix');
  });

  it(`text longer than ${QR_TEXT_MAX_CHARS} characters is too_large before anything else is looked at`, async () => {
    const text = codeToText((await world(suite)).code);
    expectCode(() => textToCode(QR_PREFIX + '0'.repeat(QR_TEXT_MAX_CHARS)), 'too_large');
    expectCode(() => textToCode('x'.repeat(QR_TEXT_MAX_CHARS + 1)), 'too_large');
    expectCode(() => textToCode(text + '\n'.repeat(QR_TEXT_MAX_CHARS)), 'too_large');
    // At the limit the text is read (and fails for what it is, not for its size).
    expectCode(() => textToCode(QR_PREFIX + '0'.repeat(QR_TEXT_MAX_CHARS - QR_PREFIX.length)), 'too_large');
    expectCode(() => textToCode(QR_PREFIX + '0'.repeat(QR_TEXT_MAX_CHARS - QR_PREFIX.length - 2)), 'bad_encoding');
  });

  it('a Base45 body of a non-code is refused by the code decoder', async () => {
    const w = await world(suite);
    expectCode(() => textToCode(codeToText({ bytes: w.credential.bytes })), 'unknown_type');
    expectCode(() => textToCode(codeToText({ bytes: w.code.bytes.subarray(0, 100) })), 'bad_length');
    expectCode(() => textToCode(QR_PREFIX), 'bad_length');
  });
});
