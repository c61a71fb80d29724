/**
 * Sizes are requirements, not accidents: a code must stay at most 210 bytes so its QR symbol stays
 * small enough for a cheap scanner (DESIGN §5). These pin the size of a code for each suite, its QR
 * text, and the fixed part of every other object, so a format change shows up here first.
 */
import { describe, expect, it } from 'vitest';
import {
  CODE_MAX_BYTES,
  codeToText,
  credentialLength,
  makeCode,
  PUBLIC_KEY_BYTES,
  QR_PREFIX,
  QR_TEXT_MAX_CHARS,
  SIGNATURE_BYTES,
  SUITES,
  type SuiteName,
  signCredential,
} from '../src/index.js';
import { credentialBodyFor, fixedSigner, PROVIDERS, utf8, world } from './fixtures.js';

const CODE_BYTES: Readonly<Record<SuiteName, number>> = { p256: 208, ed25519: 207, sm2: 208 };
const QR_CHARS: Readonly<Record<SuiteName, number>> = { p256: 316, ed25519: 315, sm2: 316 };

describe('code size', () => {
  it('no code can exceed 210 bytes: CODE_MAX_BYTES is 208', () => {
    expect(CODE_MAX_BYTES).toBe(208);
    expect(CODE_MAX_BYTES).toBeLessThanOrEqual(210);
  });

  for (const suite of SUITES) {
    it(`a ${suite} code is ${CODE_BYTES[suite]} bytes and its QR text ${QR_CHARS[suite]} characters`, async () => {
      const w = await world(suite);
      expect(w.credential.bytes.length).toBe(credentialLength(suite));
      expect(w.code.bytes.length).toBe(CODE_BYTES[suite]);
      expect(w.code.bytes.length).toBeLessThanOrEqual(210);
      const text = codeToText(w.code);
      expect(text.length).toBe(QR_CHARS[suite]);
      expect(text.length).toBe(QR_PREFIX.length + Math.floor(CODE_BYTES[suite] / 2) * 3 + (CODE_BYTES[suite] % 2) * 2);
      expect(text.length).toBeLessThanOrEqual(QR_TEXT_MAX_CHARS);
    });
  }

  it('the size depends only on the device suite, whatever suite the issuer uses', async () => {
    for (const issuerSuite of SUITES) {
      const issuer = await fixedSigner(PROVIDERS.node, issuerSuite, 'size-issuer');
      for (const deviceSuite of SUITES) {
        const device = await fixedSigner(PROVIDERS.node, deviceSuite, 'size-device');
        const cred = await signCredential(credentialBodyFor(issuerSuite, device), issuer);
        expect(cred.bytes.length).toBe(38 + PUBLIC_KEY_BYTES[deviceSuite] + SIGNATURE_BYTES);
        const code = await makeCode(cred, device, 1, 1);
        expect(code.bytes.length, `${issuerSuite} issuer, ${deviceSuite} device`).toBe(CODE_BYTES[deviceSuite]);
      }
    }
  });

  it('counter and time never change the size (fixed-width fields)', async () => {
    const w = await world('p256');
    for (const [time, counter] of [
      [0, 0],
      [0xffff_ffff, 0xffff_ffff],
      [1, 2 ** 31],
    ] as const) {
      expect((await makeCode(w.credential, w.device, time, counter)).bytes.length).toBe(208);
    }
  });
});

describe('fixed layout sizes of the other objects', () => {
  for (const suite of SUITES) {
    it(`${suite}: trust list, certificate, record, batch, deny lists and policy`, async () => {
      const w = await world(suite);
      const k = PUBLIC_KEY_BYTES[suite];
      // header 1, version 4, issued 4, expires 4, root suite 1, root id 2, count 1; per key 12 + key; signature.
      expect(w.trustList.bytes.length).toBe(17 + w.trustBody.keys.length * (12 + k) + SIGNATURE_BYTES);
      // 24 fixed bytes (ids, suites, scene, campus, validity), the location with its length byte, the key, the signature.
      expect(w.cert.bytes.length).toBe(24 + 1 + utf8(w.cert.location).length + k + SIGNATURE_BYTES);
      for (const r of w.records) expect(r.bytes.length).toBe(72 + r.evidence.length + SIGNATURE_BYTES);
      expect(w.batchBytes.length).toBe(7 + w.records.reduce((n, r) => n + 2 + r.bytes.length, 0));
      expect(w.denyFull.bytes.length).toBe(25 + 7 * w.denyFull.tags.length + SIGNATURE_BYTES);
      expect(w.denyDelta.bytes.length).toBe(25 + 7 * w.denyDelta.tags.length + SIGNATURE_BYTES);
      expect(w.policy.bytes.length).toBe(39 + 7 * w.policy.rules.length + SIGNATURE_BYTES);
    });
  }
});
