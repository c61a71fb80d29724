/**
 * "Parse strictly" (DESIGN §6): each decoder refuses, with its exact code, every value its format
 * does not allow, and every second encoding of the same content (duplicates, wrong order), so each
 * object has one canonical form. Each case patches one field of a valid object at its offset in
 * the layout of docs/protocol.md; decoders check before any signature, so no re-signing is needed.
 * Encoders refuse the same bodies.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodeCredential,
  decodeDenyList,
  decodeRecord,
  decodeRiskPolicy,
  decodeTerminalCertificate,
  decodeTrustList,
  fen,
  GENESIS_HASH,
  KEY_ROLES,
  ProtocolError,
  PUBLIC_KEY_BYTES,
  type ProtocolErrorCode,
  signCredential,
  signDenyList,
  signRecord,
  signRiskPolicy,
  signTerminalCertificate,
  signTrustList,
  type TrustListBody,
} from '../src/index.js';
import {
  at,
  certBodyFor,
  credentialBodyFor,
  denyFullBody,
  expectCode,
  expectCodeAsync,
  policyBody,
  recordBodyFor,
  world,
} from './fixtures.js';

const SUITE = 'p256';
const K = PUBLIC_KEY_BYTES[SUITE];

function patch(bytes: Uint8Array, offset: number, values: readonly number[]): Uint8Array {
  const out = bytes.slice();
  out.set(values, offset);
  return out;
}

const u16 = (v: number) => [v >>> 8, v & 0xff];
const u32 = (v: number) => [v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];

function expectAll(
  decode: (b: Uint8Array) => unknown,
  base: Uint8Array,
  cases: readonly [string, number, readonly number[], ProtocolErrorCode][],
  // A deny list checks its byte count against its entry count up front, so a spare byte is a length error.
  extraByte: ProtocolErrorCode = 'trailing_bytes',
) {
  decode(base);
  for (const [what, offset, values, code] of cases) {
    const e = expectCode(() => decode(patch(base, offset, values)), code);
    expect(e.message, what).toContain(code);
  }
  expectCode(() => decode(Uint8Array.of(...base, 0)), extraByte);
}

describe('strict decoding, field by field', () => {
  it('trust list', async () => {
    const w = await world(SUITE);
    const key = (i: number) => 17 + i * (12 + K);
    const b = w.trustList.bytes;
    expectAll(decodeTrustList, b, [
      ['expires_at = issued_at', 9, u32(w.trustList.issuedAt), 'bad_value'],
      ['root suite 0', 13, [0], 'unknown_suite'],
      ['root suite 4', 13, [4], 'unknown_suite'],
      ['65 keys', 16, [65], 'too_large'],
      ['key 1 repeats key 0 id', key(1), u16(at(w.trustBody.keys, 0).keyId), 'not_canonical'],
      ['key 1 id below key 0', key(1), u16(at(w.trustBody.keys, 0).keyId - 1), 'not_canonical'],
      ['role 0', key(0) + 2, [0], 'bad_value'],
      ['role 4', key(0) + 2, [4], 'bad_value'],
      ['key suite 0', key(0) + 3, [0], 'unknown_suite'],
      ['key not_after = not_before', key(0) + 8, u32(at(w.trustBody.keys, 0).notBefore), 'bad_value'],
      ['header of a credential', 0, [0x21], 'unknown_type'],
      ['version 2', 0, [0x12], 'unknown_version'],
    ]);
  });

  it('trust list encoder: unsorted or repeated key ids are not_canonical', async () => {
    const w = await world(SUITE);
    const [k0, k1] = [at(w.trustBody.keys, 0), at(w.trustBody.keys, 1)];
    await expectCodeAsync(() => signTrustList({ ...w.trustBody, keys: [k1, k0] }, w.root), 'not_canonical');
    await expectCodeAsync(() => signTrustList({ ...w.trustBody, keys: [k0, { ...k1, keyId: k0.keyId }] }, w.root), 'not_canonical');
    const sm2Root = (await world('sm2')).root;
    await expectCodeAsync(() => signTrustList(w.trustBody, sm2Root), 'unknown_suite');
  });

  it('credential', async () => {
    const w = await world(SUITE);
    const b = w.credential.bytes;
    const { perPayment } = w.credentialBody.limits;
    expectAll(decodeCredential, b, [
      ['issuer suite 0', 1, [0x01], 'unknown_suite'],
      ['device suite 5', 1, [0x15], 'unknown_suite'],
      ['serial 0', 4, [0, 0, 0, 0, 0, 0], 'bad_value'],
      ['holder 0', 10, [0, 0, 0, 0, 0, 0], 'bad_value'],
      ['role 0', 18, [0], 'bad_value'],
      ['role 4', 18, [4], 'bad_value'],
      ['no scope', 19, [0], 'bad_value'],
      ['unknown scope bit', 19, [0x17], 'bad_value'],
      ['per_payment > offline_total', 24 + K, u32(perPayment - 1), 'bad_value'],
      ['offline_count 0', 28 + K, [0, 0], 'bad_value'],
      ['not_after = not_before', 34 + K, u32(w.credential.notBefore), 'bad_value'],
      ['validity of 31 days + 1 s', 34 + K, u32(w.credential.notBefore + 31 * 86_400 + 1), 'bad_value'],
    ]);
    decodeCredential(patch(b, 34 + K, u32(w.credential.notBefore + 31 * 86_400)));
  });

  it('credential encoder refuses the same bodies', async () => {
    const w = await world(SUITE);
    const bad = [
      { serial: 0 },
      { holder: 2 ** 48 },
      { scopes: [] },
      { limits: { perPayment: fen(2), offlineTotal: fen(1), offlineCount: 1 } },
      { limits: { perPayment: fen(1), offlineTotal: fen(1), offlineCount: 0 } },
      { notAfter: w.credentialBody.notBefore },
      { notAfter: w.credentialBody.notBefore + 31 * 86_400 + 1 },
    ];
    for (const change of bad)
      await expectCodeAsync(() => signCredential(credentialBodyFor(SUITE, w.device, change), w.issuer), 'bad_value');
    await expectCodeAsync(
      () => signCredential(credentialBodyFor(SUITE, w.device, { devicePublicKey: new Uint8Array(32) }), w.issuer),
      'bad_length',
    );
  });

  it('terminal certificate', async () => {
    const w = await world(SUITE);
    const b = w.cert.bytes;
    const locLen = at(b, 16);
    const afterLoc = 17 + locLen;
    expectAll(decodeTerminalCertificate, b, [
      ['CA suite 0', 1, [0], 'unknown_suite'],
      ['terminal suite 9', 4, [9], 'unknown_suite'],
      ['terminal id 0', 5, u32(0), 'bad_value'],
      ['scene 0', 13, [0], 'bad_value'],
      ['scene 5', 13, [5], 'bad_value'],
      ['location not UTF-8', 17, [0xff], 'bad_encoding'],
      ['location cut in a character', 17, [0xe5, 0x41], 'bad_encoding'],
      ['location 65 bytes', 16, [65], 'too_large'],
      ['not_after = not_before', afterLoc + 4, u32(w.cert.notBefore), 'bad_value'],
    ]);
  });

  it('a location that starts with U+FEFF keeps it: text has one encoding, and decoding is exact', async () => {
    const w = await world(SUITE);
    const cert = await signTerminalCertificate(certBodyFor(SUITE, w.terminal, { location: '\ufeffGate 2' }), w.terminalCa);
    expect(decodeTerminalCertificate(cert.bytes).location).toBe('\ufeffGate 2');
    const plain = await signTerminalCertificate(certBodyFor(SUITE, w.terminal, { location: 'Gate 2' }), w.terminalCa);
    expect(decodeTerminalCertificate(plain.bytes).location).toBe('Gate 2');
  });

  it('terminal certificate encoder: terminal id 0, reversed validity, long location', async () => {
    const w = await world(SUITE);
    const sign = (change: Parameters<typeof certBodyFor>[2]) =>
      signTerminalCertificate(certBodyFor(SUITE, w.terminal, change), w.terminalCa);
    await expectCodeAsync(() => sign({ terminalId: 0 }), 'bad_value');
    await expectCodeAsync(() => sign({ notAfter: w.certBody.notBefore }), 'bad_value');
    await expectCodeAsync(() => sign({ location: 'x'.repeat(65) }), 'too_large');
  });

  it('record', async () => {
    const w = await world(SUITE);
    const pay = at(w.records, 2).bytes; // sequence 3, card payment
    const access = at(w.records, 1).bytes; // sequence 2, access denied
    const first = at(w.records, 0).bytes; // sequence 1
    const evLen = at(w.records, 2).evidence.length;
    expectAll(decodeRecord, pay, [
      ['terminal id 0', 1, u32(0), 'bad_value'],
      ['sequence 0', 5, u32(0), 'bad_value'],
      ['kind 0', 45, [0], 'bad_value'],
      ['kind 3', 45, [3], 'bad_value'],
      ['path 3', 46, [3], 'bad_value'],
      ['medium 5', 47, [5], 'bad_value'],
      ['outcome 3', 48, [3], 'bad_value'],
      ['a denied payment', 48, [2], 'bad_value'],
      ['a payment of 0 fen', 49, u32(0), 'bad_value'],
      ['evidence 1,025 bytes', 69, u16(1025), 'too_large'],
      ['suite 0', 71 + evLen, [0], 'unknown_suite'],
    ]);
    expectCode(() => decodeRecord(patch(access, 49, u32(1))), 'bad_value');
    expectCode(() => decodeRecord(patch(first, 9, [1])), 'bad_value');
  });

  it('record encoder: the same rules', async () => {
    const w = await world(SUITE);
    const sign = (seq: number, prev: Uint8Array, change: Parameters<typeof recordBodyFor>[3]) =>
      signRecord(recordBodyFor(SUITE, seq, prev, change), w.terminal);
    const prev = w.crypto.sha256(Uint8Array.of(1));
    await expectCodeAsync(() => sign(1, prev, {}), 'bad_value');
    await expectCodeAsync(() => sign(0, GENESIS_HASH, {}), 'bad_value');
    await expectCodeAsync(() => sign(2, prev, { amount: fen(0) }), 'bad_value');
    await expectCodeAsync(() => sign(2, prev, { outcome: 'denied' }), 'bad_value');
    await expectCodeAsync(() => sign(2, prev, { kind: 'access', amount: fen(1) }), 'bad_value');
    await expectCodeAsync(() => sign(2, prev, { terminalId: 0 }), 'bad_value');
    await expectCodeAsync(() => sign(2, prev.subarray(1), {}), 'bad_length');
  });

  it('deny list', async () => {
    const w = await world(SUITE);
    const full = w.denyFull.bytes;
    const delta = w.denyDelta.bytes;
    const entry = (i: number) => 25 + 7 * i;
    expectAll(
      decodeDenyList,
      full,
      [
        ['signer suite 0', 1, [0], 'unknown_suite'],
        ['kind 0', 4, [0], 'bad_value'],
        ['kind 3', 4, [3], 'bad_value'],
        ['full list with a base version', 9, u32(1), 'bad_value'],
        ['expires_at = issued_at', 17, u32(w.denyFull.issuedAt), 'bad_value'],
        ['count one more than the entries', 21, u32(w.denyFull.tags.length + 1), 'bad_length'],
        ['count one less than the entries', 21, u32(w.denyFull.tags.length - 1), 'bad_length'],
        ['remove in a full list', entry(0), [0x81], 'bad_value'],
        ['type 0', entry(0), [0], 'bad_value'],
        ['type 4', entry(0), [4], 'bad_value'],
        ['id 0', entry(0) + 1, [0, 0, 0, 0, 0, 0], 'bad_value'],
        ['entry 1 equal to entry 0', entry(1), [...full.subarray(entry(0), entry(1))], 'not_canonical'],
        [
          'entries 0 and 1 swapped',
          entry(0),
          [...full.subarray(entry(1), entry(2)), ...full.subarray(entry(0), entry(1))],
          'not_canonical',
        ],
      ],
      'bad_length',
    );
    expectAll(
      decodeDenyList,
      delta,
      [
        ['delta base = list version', 9, u32(w.denyDelta.listVersion), 'bad_value'],
        ['delta base above list version', 9, u32(w.denyDelta.listVersion + 1), 'bad_value'],
      ],
      'bad_length',
    );
  });

  it('deny list encoder: the same rules', async () => {
    const w = await world(SUITE);
    const tags = Uint8Array.of(1, 1);
    await expectCodeAsync(() => signDenyList(denyFullBody(SUITE, { tags, ids: new Float64Array([5, 5]) }), w.listSigner), 'not_canonical');
    await expectCodeAsync(() => signDenyList(denyFullBody(SUITE, { tags, ids: new Float64Array([6, 5]) }), w.listSigner), 'not_canonical');
    await expectCodeAsync(
      () => signDenyList(denyFullBody(SUITE, { tags: Uint8Array.of(0x81), ids: new Float64Array([5]) }), w.listSigner),
      'bad_value',
    );
    await expectCodeAsync(
      () => signDenyList(denyFullBody(SUITE, { tags: Uint8Array.of(1), ids: new Float64Array([1.5]) }), w.listSigner),
      'bad_value',
    );
    await expectCodeAsync(
      () => signDenyList(denyFullBody(SUITE, { tags: Uint8Array.of(1), ids: new Float64Array([2 ** 48]) }), w.listSigner),
      'bad_value',
    );
    await expectCodeAsync(
      () => signDenyList(denyFullBody(SUITE, { tags: Uint8Array.of(1), ids: new Float64Array([]) }), w.listSigner),
      'bad_length',
    );
    await expectCodeAsync(() => signDenyList(denyFullBody(SUITE, { baseVersion: 4 }), w.listSigner), 'bad_value');
    await expectCodeAsync(() => signDenyList(denyFullBody(SUITE, { kind: 'delta', baseVersion: 5 }), w.listSigner), 'bad_value');
  });

  it('risk policy', async () => {
    const w = await world(SUITE);
    const b = w.policy.bytes;
    const rule = (i: number) => 39 + 7 * i;
    expectAll(decodeRiskPolicy, b, [
      ['code window 0', 12, u16(0), 'bad_value'],
      ['per-payment cap above the day total', 24, u32(w.policy.dayTotalMax + 1), 'bad_value'],
      ['random online share above 100%', 36, u16(10_001), 'bad_value'],
      ['65 rules', 38, [65], 'too_large'],
      ['scene 0', rule(0), [0], 'bad_value'],
      ['unknown role bit', rule(0) + 1, [0x08], 'bad_value'],
      ['flags 2', rule(0) + 2, [2], 'bad_value'],
      ['flags 0x81', rule(0) + 2, [0x81], 'bad_value'],
      ['rule 1 repeats the scene of rule 0', rule(1), [at(b, rule(0))], 'not_canonical'],
      ['rules out of scene order', rule(0), [at(b, rule(2))], 'not_canonical'],
    ]);
    decodeRiskPolicy(patch(b, 36, u16(10_000)));
  });

  it('risk policy encoder: the same rules', async () => {
    const w = await world(SUITE);
    const rules = w.policy.rules;
    const sign = (change: Parameters<typeof policyBody>[1]) => signRiskPolicy(policyBody(SUITE, change), w.listSigner);
    await expectCodeAsync(() => sign({ rules: [...rules].reverse() }), 'not_canonical');
    await expectCodeAsync(() => sign({ rules: [at(rules, 0), at(rules, 0)] }), 'not_canonical');
    await expectCodeAsync(() => sign({ codeWindowS: 0 }), 'bad_value');
    await expectCodeAsync(() => sign({ randomOnlinePer10k: 10_001 }), 'bad_value');
    await expectCodeAsync(() => sign({ dayTotalMax: fen(1), perPaymentMax: fen(2) }), 'bad_value');
  });
});

describe('encoders never produce what decoders refuse', () => {
  // A producer (platform, terminal) must not be able to sign an object that every verifier then
  // rejects: whatever an encoder accepts, the decoder must accept and give back unchanged.
  const u32 = fc.integer({ min: 0, max: 0xffff_ffff });

  it('trust list: any times, including reversed windows', async () => {
    const w = await world('ed25519');
    const body = fc.record({
      listVersion: u32,
      issuedAt: u32,
      expiresAt: u32,
      keys: fc.uniqueArray(
        fc.record({ keyId: fc.integer({ min: 0, max: 0xffff }), role: fc.constantFrom(...KEY_ROLES), notBefore: u32, notAfter: u32 }),
        { maxLength: 4, selector: (k) => k.keyId },
      ),
    });
    await fc.assert(
      fc.asyncProperty(body, async (b) => {
        const full: TrustListBody = {
          listVersion: b.listVersion,
          issuedAt: b.issuedAt,
          expiresAt: b.expiresAt,
          rootKeyId: 1,
          rootSuite: 'ed25519',
          keys: [...b.keys]
            .sort((x, y) => x.keyId - y.keyId)
            .map((k) => ({ ...k, suite: 'ed25519' as const, publicKey: w.issuer.publicKey })),
        };
        let bytes: Uint8Array;
        try {
          bytes = (await signTrustList(full, w.root)).bytes;
        } catch (e) {
          expect(e).toBeInstanceOf(ProtocolError);
          return;
        }
        const decoded = decodeTrustList(bytes);
        expect(decoded.keys).toEqual(full.keys);
        expect([decoded.issuedAt, decoded.expiresAt]).toEqual([full.issuedAt, full.expiresAt]);
      }),
      {
        seed: 8,
        numRuns: 300,
        examples: [
          [{ listVersion: 1, issuedAt: 5, expiresAt: 5, keys: [] }],
          [{ listVersion: 1, issuedAt: 1, expiresAt: 2, keys: [{ keyId: 1, role: 'issuer', notBefore: 9, notAfter: 9 }] }],
        ],
      },
    );
  });
});
