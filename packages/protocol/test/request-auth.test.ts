/**
 * Terminal request signatures (src/request-auth.ts): the signed bytes have one fixed layout (checked
 * against a hand-built vector) and are injective; a signed request verifies under every suite with
 * either provider; every part the signature covers, when changed, makes it fail; the time window
 * holds at its edges; the headers parse strictly, each malformation with its own code.
 */
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  base64urlDecode,
  base64urlEncode,
  concatBytes,
  hasRequestAuthHeaders,
  parseRequestAuthHeaders,
  REQUEST_PATH_MAX_CHARS,
  REQUEST_TIME_WINDOW_S,
  requestSigningBytes,
  SUITES,
  signRequest,
  toHex,
  verifyRequestSignature,
} from '../src/index.js';
import { expectCode, expectCodeAsync, fixedSigner, NOW_S, PROVIDER_NAMES, PROVIDERS } from './fixtures.js';

const sha256 = (b: Uint8Array): Uint8Array => new Uint8Array(createHash('sha256').update(b).digest());
const text = (s: string): Uint8Array => new TextEncoder().encode(s);
const TERMINAL = 7_001;
const PATH = '/v1/terminal/records?from=12&to=40';
const BODY = text('{"records":[1,2,3]}');

describe('requestSigningBytes: the layout', () => {
  it('is label || method \\n path \\n || u32 time || u32 terminal || SHA-256(body), byte for byte', () => {
    const got = requestSigningBytes('POST', '/v1/x?a=1', 0x01020304, 0x0a0b0c0d, sha256(BODY));
    const want = concatBytes(
      text('duet/request/v1\0POST\n/v1/x?a=1\n'),
      new Uint8Array([1, 2, 3, 4, 0x0a, 0x0b, 0x0c, 0x0d]),
      sha256(BODY),
    );
    expect(toHex(got)).toBe(toHex(want));
  });

  it('gives different bytes for different (method, path) pairs (the "\\n" separators cannot be forged)', () => {
    const method = fc.stringMatching(/^[A-Z]{1,16}$/);
    const path = fc.stringMatching(/^\/[\x21-\x7e]{0,40}$/);
    fc.assert(
      fc.property(method, path, method, path, (m1, p1, m2, p2) => {
        fc.pre(m1 !== m2 || p1 !== p2);
        const h = sha256(new Uint8Array(0));
        expect(toHex(requestSigningBytes(m1, p1, 1, 1, h))).not.toBe(toHex(requestSigningBytes(m2, p2, 1, 1, h)));
      }),
      { numRuns: 300, seed: 20260101 },
    );
  });

  it('refuses methods and paths that are not plain tokens', () => {
    const h = sha256(new Uint8Array(0));
    expectCode(() => requestSigningBytes('get', '/x', 1, 1, h), 'bad_value');
    expectCode(() => requestSigningBytes('', '/x', 1, 1, h), 'bad_value');
    expectCode(() => requestSigningBytes('GET', 'x', 1, 1, h), 'bad_value');
    expectCode(() => requestSigningBytes('GET', '/a b', 1, 1, h), 'bad_value');
    expectCode(() => requestSigningBytes('GET', '/a\nGET', 1, 1, h), 'bad_value');
    expectCode(() => requestSigningBytes('GET', `/${'a'.repeat(REQUEST_PATH_MAX_CHARS)}`, 1, 1, h), 'too_large');
    expectCode(() => requestSigningBytes('GET', '/x', 1, 0, h), 'bad_value');
    expectCode(() => requestSigningBytes('GET', '/x', -1, 1, h), 'bad_value');
    expectCode(() => requestSigningBytes('GET', '/x', 1, 1, h.subarray(1)), 'bad_length');
  });
});

for (const provider of PROVIDER_NAMES) {
  const crypto = PROVIDERS[provider];
  for (const suite of SUITES) {
    describe(`a signed request (${suite}, ${provider})`, () => {
      it('verifies, and every covered part changed makes it fail', async () => {
        const terminal = await fixedSigner(crypto, suite, 'terminal');
        const other = await fixedSigner(crypto, suite, 'other-terminal');
        const key = { suite, publicKey: terminal.publicKey };
        const headers = await signRequest(terminal, TERMINAL, 'POST', PATH, BODY, NOW_S, crypto.sha256);
        expect(headers['x-duet-terminal']).toBe(String(TERMINAL));
        expect(headers['x-duet-time']).toBe(String(NOW_S));
        expect(headers['x-duet-signature']).toMatch(/^[A-Za-z0-9_-]{86}$/);
        const parsed = parseRequestAuthHeaders(headers);
        const digest = await verifyRequestSignature(crypto, key, parsed, 'POST', PATH, BODY, NOW_S);
        expect(toHex(digest)).toBe(toHex(sha256(requestSigningBytes('POST', PATH, NOW_S, TERMINAL, sha256(BODY)))));

        const fails = (p: Promise<unknown>) => expectCodeAsync(() => p, 'bad_signature');
        await fails(verifyRequestSignature(crypto, { suite, publicKey: other.publicKey }, parsed, 'POST', PATH, BODY, NOW_S));
        await fails(verifyRequestSignature(crypto, key, parsed, 'PUT', PATH, BODY, NOW_S));
        await fails(verifyRequestSignature(crypto, key, parsed, 'POST', '/v1/terminal/records?from=12&to=41', BODY, NOW_S));
        await fails(verifyRequestSignature(crypto, key, parsed, 'POST', PATH, text('{"records":[1,2,4]}'), NOW_S));
        await fails(verifyRequestSignature(crypto, key, { ...parsed, timeS: NOW_S - 1 }, 'POST', PATH, BODY, NOW_S));
        await fails(verifyRequestSignature(crypto, key, { ...parsed, terminalId: TERMINAL + 1 }, 'POST', PATH, BODY, NOW_S));
        const flipped = parsed.signature.slice();
        flipped[10] = (flipped[10] as number) ^ 1;
        await fails(verifyRequestSignature(crypto, key, { ...parsed, signature: flipped }, 'POST', PATH, BODY, NOW_S));
      });
    });
  }
}

describe('the time window', () => {
  const crypto = PROVIDERS.node;
  it(`accepts a request up to ${REQUEST_TIME_WINDOW_S} s either side of now, and says which side it missed by`, async () => {
    const terminal = await fixedSigner(crypto, 'p256', 'terminal');
    const key = { suite: 'p256' as const, publicKey: terminal.publicKey };
    const at = async (timeS: number) => parseRequestAuthHeaders(await signRequest(terminal, TERMINAL, 'GET', '/v1/x', BODY, timeS, sha256));
    const w = REQUEST_TIME_WINDOW_S;
    await verifyRequestSignature(crypto, key, await at(NOW_S - w), 'GET', '/v1/x', BODY, NOW_S);
    await verifyRequestSignature(crypto, key, await at(NOW_S + w), 'GET', '/v1/x', BODY, NOW_S);
    const old = await at(NOW_S - w - 1);
    await expectCodeAsync(() => verifyRequestSignature(crypto, key, old, 'GET', '/v1/x', BODY, NOW_S), 'expired');
    const future = await at(NOW_S + w + 1);
    await expectCodeAsync(() => verifyRequestSignature(crypto, key, future, 'GET', '/v1/x', BODY, NOW_S), 'not_yet_valid');
    // A narrower window is the caller's choice.
    await expectCodeAsync(() => verifyRequestSignature(crypto, key, old, 'GET', '/v1/x', BODY, NOW_S - w, 0), 'expired');
  });

  it('gives one digest per request, whatever the (randomised) ECDSA signature', async () => {
    const terminal = await fixedSigner(crypto, 'p256', 'terminal');
    const key = { suite: 'p256' as const, publicKey: terminal.publicKey };
    const a = parseRequestAuthHeaders(await signRequest(terminal, TERMINAL, 'GET', '/v1/x', BODY, NOW_S, sha256));
    const b = parseRequestAuthHeaders(await signRequest(terminal, TERMINAL, 'GET', '/v1/x', BODY, NOW_S, sha256));
    expect(toHex(a.signature)).not.toBe(toHex(b.signature));
    const da = await verifyRequestSignature(crypto, key, a, 'GET', '/v1/x', BODY, NOW_S);
    const db = await verifyRequestSignature(crypto, key, b, 'GET', '/v1/x', BODY, NOW_S);
    expect(toHex(da)).toBe(toHex(db));
  });
});

describe('parseRequestAuthHeaders', () => {
  const good = { 'x-duet-terminal': '7001', 'x-duet-time': String(NOW_S), 'x-duet-signature': 'A'.repeat(86) };

  it('parses canonical headers', () => {
    const p = parseRequestAuthHeaders(good);
    expect(p.terminalId).toBe(7001);
    expect(p.timeS).toBe(NOW_S);
    expect(p.signature).toEqual(new Uint8Array(64));
    expect(hasRequestAuthHeaders(good)).toBe(true);
    expect(hasRequestAuthHeaders({ authorization: 'Bearer x' })).toBe(false);
  });

  it('refuses missing, repeated and malformed headers, each with its own code', () => {
    const { 'x-duet-time': _, ...noTime } = good;
    expectCode(() => parseRequestAuthHeaders(noTime), 'bad_length');
    expectCode(() => parseRequestAuthHeaders({ ...good, 'x-duet-terminal': ['7001', '7002'] }), 'not_canonical');
    expectCode(() => parseRequestAuthHeaders({ ...good, 'x-duet-terminal': '07001' }), 'not_canonical');
    expectCode(() => parseRequestAuthHeaders({ ...good, 'x-duet-terminal': '+7001' }), 'not_canonical');
    expectCode(() => parseRequestAuthHeaders({ ...good, 'x-duet-terminal': '7001, 7002' }), 'not_canonical');
    expectCode(() => parseRequestAuthHeaders({ ...good, 'x-duet-terminal': '0' }), 'bad_value');
    expectCode(() => parseRequestAuthHeaders({ ...good, 'x-duet-time': '4294967296' }), 'bad_value');
    expectCode(() => parseRequestAuthHeaders({ ...good, 'x-duet-time': '1e9' }), 'not_canonical');
    expectCode(() => parseRequestAuthHeaders({ ...good, 'x-duet-signature': 'A'.repeat(85) }), 'bad_length');
    expectCode(() => parseRequestAuthHeaders({ ...good, 'x-duet-signature': `${'A'.repeat(85)}=` }), 'bad_encoding');
    expectCode(() => parseRequestAuthHeaders({ ...good, 'x-duet-signature': `${'A'.repeat(85)}+` }), 'bad_encoding');
    // 86 characters carry 516 bits for 512: the last character's 4 low bits must be zero.
    expectCode(() => parseRequestAuthHeaders({ ...good, 'x-duet-signature': `${'A'.repeat(85)}B` }), 'not_canonical');
  });
});

describe('base64url', () => {
  it('round-trips and matches Node for every length', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), (bytes) => {
        const s = base64urlEncode(bytes);
        expect(s).toBe(Buffer.from(bytes).toString('base64url'));
        expect(base64urlDecode(s, bytes.length, 't')).toEqual(bytes);
      }),
      { numRuns: 500, seed: 7 },
    );
  });
});
