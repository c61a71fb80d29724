/**
 * The verifiers, one test per way to fail, and the order they check in (docs/protocol.md
 * §Verification: trust → credential signature → device signature → credential validity → code
 * freshness). The order matters: a terminal must say "unknown key" for a code from a foreign issuer
 * even when the code is also stale, and must not spend a signature check on what the trust list
 * already refuses. Verify calls are counted to prove what was (and was not) checked.
 */
import { describe, expect, it } from 'vitest';
import {
  type Code,
  type CodeCheck,
  CredentialCache,
  type CryptoProvider,
  concatBytes,
  decodeCredential,
  decodeDenyList,
  decodeRecord,
  decodeRiskPolicy,
  decodeTerminalCertificate,
  decodeTrustList,
  decodeUploadBatch,
  encodeCredentialBody,
  encodeUploadBatch,
  fen,
  GENESIS_HASH,
  makeCode,
  type ProtocolError,
  recordHash,
  type SuiteName,
  signCredential,
  signDenyList,
  signRecord,
  signRiskPolicy,
  signTerminalCertificate,
  signTrustList,
  type TerminalRecord,
  type TrustedKey,
  type TrustListBody,
  verifyChain,
  verifyCode,
  verifyDenyList,
  verifyRecordSignature,
  verifyRiskPolicy,
  verifyTerminalCertificate,
  verifyTrustList,
} from '../src/index.js';
import { Writer } from '../src/bytes.js';
import {
  at,
  CLOCK_SKEW_S,
  CODE_WINDOW_S,
  credentialBodyFor,
  denyDeltaBody,
  denyFullBody,
  expectCode,
  expectCodeAsync,
  fixedSigner,
  flipBit,
  KEY_ID,
  NOW_S,
  policyBody,
  type ProviderName,
  protocolErrorOfAsync,
  recordBodyFor,
  type World,
  world,
} from './fixtures.js';

/** Every suite with the node provider, and the WebCrypto-native suites with the WebCrypto provider too. */
const COMBOS: readonly (readonly [SuiteName, ProviderName])[] = [
  ['p256', 'node'],
  ['ed25519', 'node'],
  ['sm2', 'node'],
  ['p256', 'web'],
  ['ed25519', 'web'],
];

/** A provider that counts signature verifications, so a test can tell which checks ran. */
function counting(crypto: CryptoProvider): { crypto: CryptoProvider; verifies: () => number } {
  let n = 0;
  return {
    crypto: {
      name: `${crypto.name}+count`,
      suite: (name) => {
        const impl = crypto.suite(name);
        return {
          ...impl,
          verify: async (pub, msg, sig) => {
            n++;
            return impl.verify(pub, msg, sig);
          },
        };
      },
      sha256: (d) => crypto.sha256(d),
      randomBytes: (l) => crypto.randomBytes(l),
    },
    verifies: () => n,
  };
}

/** The world's trust list with one key replaced (or removed, when `replace` is null). */
function withKey(w: World, keyId: number, replace: ((k: TrustedKey) => TrustedKey) | null): TrustListBody {
  const keys = w.trustBody.keys.flatMap((k) => (k.keyId !== keyId ? [k] : replace === null ? [] : [replace(k)]));
  return { ...w.trustBody, keys };
}

function otherSuite(suite: SuiteName): SuiteName {
  return suite === 'p256' ? 'ed25519' : 'p256';
}

/** A credential whose issuer signature has one bit flipped, inside a code the device signed properly. */
async function codeWithBadIssuerSignature(w: World, time = w.code.time): Promise<Code> {
  const sig = flipBit(w.credential.signature, 9);
  const bad = decodeCredential(concatBytes(w.credential.signed, sig));
  return makeCode(bad, w.device, time, 2);
}

function withBadDeviceSignature(code: Code): Code {
  const signature = flipBit(code.signature, 3);
  return { ...code, signature, bytes: concatBytes(code.signed, signature) };
}

async function failure(code: Code, check: CodeCheck): Promise<ProtocolError> {
  return protocolErrorOfAsync(() => verifyCode(code, check));
}

describe.each(COMBOS)('verifyCode (%s, %s provider)', (suite, provider) => {
  it('accepts the world code, checking two signatures', async () => {
    const w = await world(suite, provider);
    const c = counting(w.crypto);
    await verifyCode(w.code, { ...w.check, crypto: c.crypto });
    expect(c.verifies()).toBe(2);
  });

  it('issuer key not in the trust list → unknown_key, before any signature is checked', async () => {
    const w = await world(suite, provider);
    const cred = await signCredential(credentialBodyFor(suite, w.device, { issuerKeyId: 99 }), w.issuer);
    const code = await makeCode(cred, w.device, w.code.time, 1);
    const c = counting(w.crypto);
    const e = await failure(code, { ...w.check, crypto: c.crypto });
    expect(e.code).toBe('unknown_key');
    expect(c.verifies()).toBe(0);
    // Removed from the list: same.
    expect((await failure(w.code, { ...w.check, trust: withKey(w, KEY_ID.issuer, null) })).code).toBe('unknown_key');
  });

  it('a key of another role → wrong_key_role', async () => {
    const w = await world(suite, provider);
    for (const keyId of [KEY_ID.terminalCa, KEY_ID.listSigner]) {
      const cred = await signCredential(credentialBodyFor(suite, w.device, { issuerKeyId: keyId }), w.issuer);
      expect((await failure(await makeCode(cred, w.device, w.code.time, 1), w.check)).code).toBe('wrong_key_role');
    }
    const demoted = withKey(w, KEY_ID.issuer, (k) => ({ ...k, role: 'list_signer' }));
    expect((await failure(w.code, { ...w.check, trust: demoted })).code).toBe('wrong_key_role');
  });

  it('the trust list names another suite for the issuer key → unknown_suite', async () => {
    const w = await world(suite, provider);
    const o = otherSuite(suite);
    const foreign = await fixedSigner(w.crypto, o, 'issuer');
    const trust = withKey(w, KEY_ID.issuer, (k) => ({ ...k, suite: o, publicKey: foreign.publicKey }));
    expect((await failure(w.code, { ...w.check, trust })).code).toBe('unknown_suite');
  });

  it('the issuer key was not valid when the credential became valid → not_yet_valid / expired', async () => {
    const w = await world(suite, provider);
    const nb = w.credential.notBefore;
    const later = withKey(w, KEY_ID.issuer, (k) => ({ ...k, notBefore: nb + 1 }));
    expect((await failure(w.code, { ...w.check, trust: later })).code).toBe('not_yet_valid');
    const retired = withKey(w, KEY_ID.issuer, (k) => ({ ...k, notAfter: nb }));
    expect((await failure(w.code, { ...w.check, trust: retired })).code).toBe('expired');
    // The key must cover the credential's whole life: valid from its start to its end.
    const na = w.credential.notAfter;
    await verifyCode(w.code, { ...w.check, trust: withKey(w, KEY_ID.issuer, (k) => ({ ...k, notBefore: nb, notAfter: na })) });
    const outlived = withKey(w, KEY_ID.issuer, (k) => ({ ...k, notBefore: nb, notAfter: na - 1 }));
    expect((await failure(w.code, { ...w.check, trust: outlived })).code).toBe('expired');
  });

  it('issuer signature bad → bad_signature (issuer), after one verify', async () => {
    const w = await world(suite, provider);
    const c = counting(w.crypto);
    const e = await failure(await codeWithBadIssuerSignature(w), { ...w.check, crypto: c.crypto });
    expect(e.code).toBe('bad_signature');
    expect(e.detail).toMatch(/issuer signature/);
    expect(c.verifies()).toBe(1);
    // A credential signed by a key that is not the listed one, under the listed id.
    const impostor = await fixedSigner(w.crypto, suite, 'impostor');
    const forged = await signCredential(w.credentialBody, impostor);
    expect((await failure(await makeCode(forged, w.device, w.code.time, 1), w.check)).detail).toMatch(/issuer signature/);
  });

  it('device signature bad → bad_signature (device), after two verifies', async () => {
    const w = await world(suite, provider);
    const c = counting(w.crypto);
    const e = await failure(withBadDeviceSignature(w.code), { ...w.check, crypto: c.crypto });
    expect(e.code).toBe('bad_signature');
    expect(e.detail).toMatch(/device signature/);
    expect(c.verifies()).toBe(2);
    // A code signed by another device for this credential.
    const thief = await fixedSigner(w.crypto, suite, 'thief');
    expect((await failure(await makeCode(w.credential, thief, w.code.time, 1), w.check)).detail).toMatch(/device signature/);
  });

  it('credential validity at the terminal clock, with skew, at both edges', async () => {
    const w = await world(suite, provider);
    const { notBefore, notAfter } = w.credential;
    const at_ = async (nowS: number, time: number) => verifyCode(await makeCode(w.credential, w.device, time, 9), { ...w.check, nowS });
    await at_(notAfter + CLOCK_SKEW_S - 1, notAfter - 1);
    let e = await protocolErrorOfAsync(() => at_(notAfter + CLOCK_SKEW_S, notAfter - 1));
    expect([e.code, e.detail]).toEqual(['expired', expect.stringMatching(/^credential/)]);
    await at_(notBefore - CLOCK_SKEW_S, notBefore - CLOCK_SKEW_S);
    e = await protocolErrorOfAsync(() => at_(notBefore - CLOCK_SKEW_S - 1, notBefore - CLOCK_SKEW_S));
    expect([e.code, e.detail]).toEqual(['not_yet_valid', expect.stringMatching(/^credential/)]);
  });

  it('code freshness: too old → expired, from the future beyond skew → not_yet_valid, edges accepted', async () => {
    const w = await world(suite, provider);
    const at_ = async (time: number) => verifyCode(await makeCode(w.credential, w.device, time, 5), w.check);
    await at_(NOW_S + CLOCK_SKEW_S);
    await at_(NOW_S - CODE_WINDOW_S - CLOCK_SKEW_S);
    let e = await protocolErrorOfAsync(() => at_(NOW_S + CLOCK_SKEW_S + 1));
    expect([e.code, e.detail]).toEqual(['not_yet_valid', expect.stringMatching(/^code time/)]);
    e = await protocolErrorOfAsync(() => at_(NOW_S - CODE_WINDOW_S - CLOCK_SKEW_S - 1));
    expect([e.code, e.detail]).toEqual(['expired', expect.stringMatching(/^code time/)]);
  });

  it('a code made outside its credential validity → expired, even inside the code window', async () => {
    const w = await world(suite, provider);
    const { notBefore, notAfter } = w.credential;
    const wide = { ...w.check, windowS: 7_200 };
    const before = await makeCode(w.credential, w.device, notBefore - CLOCK_SKEW_S - 1, 3);
    expect((await failure(before, { ...wide, nowS: notBefore + 10 })).detail).toMatch(/outside credential/);
    await verifyCode(await makeCode(w.credential, w.device, notBefore - CLOCK_SKEW_S, 3), { ...wide, nowS: notBefore + 10 });
    const after = await makeCode(w.credential, w.device, notAfter, 4);
    const e = await failure(after, { ...wide, nowS: notAfter - 10 });
    expect([e.code, e.detail]).toEqual(['expired', expect.stringMatching(/outside credential/)]);
  });

  it('the order: trust before signatures, signatures before times, credential time before code time', async () => {
    const w = await world(suite, provider);
    const foreign = await signCredential(credentialBodyFor(suite, w.device, { issuerKeyId: 99 }), w.issuer);
    // unknown key + bad device signature + stale → unknown_key
    const a = withBadDeviceSignature(await makeCode(foreign, w.device, NOW_S - 10_000, 1));
    expect((await failure(a, w.check)).code).toBe('unknown_key');
    // bad issuer signature + bad device signature + stale → the issuer signature
    const b = withBadDeviceSignature(await codeWithBadIssuerSignature(w, NOW_S - 10_000));
    expect((await failure(b, w.check)).detail).toMatch(/issuer signature/);
    // bad device signature + expired credential + stale → the device signature
    const c = withBadDeviceSignature(w.code);
    expect((await failure(c, { ...w.check, nowS: w.credential.notAfter + 1_000 })).detail).toMatch(/device signature/);
    // expired credential + stale code → the credential
    expect((await failure(w.code, { ...w.check, nowS: w.credential.notAfter + 1_000 })).detail).toMatch(/^credential/);
    // only the code is stale → the code
    expect((await failure(w.code, { ...w.check, nowS: NOW_S + 1_000 })).detail).toMatch(/^code time/);
  });
});

describe.each(COMBOS)('CredentialCache (%s, %s provider)', (suite, provider) => {
  it('a repeat payer costs one verify; a new code of the same credential too', async () => {
    const w = await world(suite, provider);
    const cache = new CredentialCache();
    const c = counting(w.crypto);
    const check = { ...w.check, crypto: c.crypto, cache };
    await verifyCode(w.code, check);
    expect([c.verifies(), cache.size, cache.has(w.credential.bytes)]).toEqual([2, 1, true]);
    await verifyCode(w.code, check);
    expect(c.verifies()).toBe(3);
    await verifyCode(await makeCode(w.credential, w.device, w.code.time, 77), check);
    expect(c.verifies()).toBe(4);
  });

  it('a changed body with the same signature misses the cache and fails', async () => {
    const w = await world(suite, provider);
    const cache = new CredentialCache();
    const check = { ...w.check, cache };
    await verifyCode(w.code, check);
    for (const change of [
      { serial: w.credentialBody.serial + 1 },
      { limits: { ...w.credentialBody.limits, perPayment: fen(5_001) } },
      { role: 'staff' as const },
    ]) {
      const body = encodeCredentialBody({ ...w.credentialBody, ...change });
      const forged = decodeCredential(concatBytes(body, w.credential.signature));
      expect(cache.has(forged.bytes)).toBe(false);
      const e = await failure(await makeCode(forged, w.device, w.code.time, 2), check);
      expect([e.code, e.detail]).toEqual(['bad_signature', expect.stringMatching(/issuer signature/)]);
    }
    expect(cache.size).toBe(1);
  });

  it('a key removed, demoted or expired in a newer trust list stops a cached credential', async () => {
    const w = await world(suite, provider);
    const cache = new CredentialCache();
    await verifyCode(w.code, { ...w.check, cache });
    expect(cache.has(w.credential.bytes)).toBe(true);
    const c = counting(w.crypto);
    const check = { ...w.check, cache, crypto: c.crypto };
    expect((await failure(w.code, { ...check, trust: withKey(w, KEY_ID.issuer, null) })).code).toBe('unknown_key');
    expect((await failure(w.code, { ...check, trust: withKey(w, KEY_ID.issuer, (k) => ({ ...k, role: 'terminal_ca' })) })).code).toBe(
      'wrong_key_role',
    );
    const retired = withKey(w, KEY_ID.issuer, (k) => ({ ...k, notAfter: w.credential.notBefore }));
    expect((await failure(w.code, { ...check, trust: retired })).code).toBe('expired');
    expect(c.verifies()).toBe(0);
  });

  it('a failed credential is never cached', async () => {
    const w = await world(suite, provider);
    const cache = new CredentialCache();
    const bad = await codeWithBadIssuerSignature(w);
    await failure(bad, { ...w.check, cache });
    expect(cache.size).toBe(0);
    await failure(bad, { ...w.check, cache });
    expect(cache.has(bad.credential.bytes)).toBe(false);
  });
});

describe('CredentialCache bounds', () => {
  it('holds at most its capacity, dropping the oldest first; re-adding does not evict', () => {
    const cache = new CredentialCache(2);
    const [a, b, c] = [Uint8Array.of(1), Uint8Array.of(2), Uint8Array.of(3)];
    cache.add(a);
    cache.add(b);
    cache.add(b);
    expect([cache.size, cache.has(a), cache.has(b)]).toEqual([2, true, true]);
    cache.add(c);
    expect([cache.size, cache.has(a), cache.has(b), cache.has(c)]).toEqual([2, false, true, true]);
    expect(cache.has(Uint8Array.of(2, 0))).toBe(false);
    cache.clear();
    expect(cache.size).toBe(0);
  });
});

describe.each(COMBOS)('verifyTrustList (%s, %s provider)', (suite, provider) => {
  it('accepts a current list from a pinned root, at its own version or newer', async () => {
    const w = await world(suite, provider);
    await verifyTrustList(w.trustList, w.roots, w.crypto, NOW_S);
    await verifyTrustList(w.trustList, w.roots, w.crypto, NOW_S, w.trustList.listVersion);
    await verifyTrustList(w.trustList, w.roots, w.crypto, NOW_S, w.trustList.listVersion - 1);
    await verifyTrustList(decodeTrustList(w.trustList.bytes), w.roots, w.crypto, NOW_S);
  });

  it('an unpinned root → unknown_key, before the signature is checked', async () => {
    const w = await world(suite, provider);
    const root = at(w.roots, 0);
    const c = counting(w.crypto);
    for (const roots of [[], [{ ...root, keyId: root.keyId + 1 }], [{ ...root, suite: otherSuite(suite) }]]) {
      await expectCodeAsync(() => verifyTrustList(w.trustList, roots, c.crypto, NOW_S), 'unknown_key');
    }
    expect(c.verifies()).toBe(0);
  });

  it('a bad signature, another root key, or a list signed by an impostor → bad_signature', async () => {
    const w = await world(suite, provider);
    const flipped = decodeTrustList(flipBit(w.trustList.bytes, w.trustList.bytes.length * 8 - 20));
    await expectCodeAsync(() => verifyTrustList(flipped, w.roots, w.crypto, NOW_S), 'bad_signature');
    const other = await fixedSigner(w.crypto, suite, 'other-root');
    const roots = [{ ...at(w.roots, 0), publicKey: other.publicKey }];
    await expectCodeAsync(() => verifyTrustList(w.trustList, roots, w.crypto, NOW_S), 'bad_signature');
    const forged = await signTrustList(w.trustBody, other);
    await expectCodeAsync(() => verifyTrustList(forged, w.roots, w.crypto, NOW_S), 'bad_signature');
  });

  it('outside [issued_at, expires_at) → not_yet_valid / expired, with no skew', async () => {
    const w = await world(suite, provider);
    const { issuedAt, expiresAt } = w.trustList;
    await verifyTrustList(w.trustList, w.roots, w.crypto, issuedAt);
    await verifyTrustList(w.trustList, w.roots, w.crypto, expiresAt - 1);
    await expectCodeAsync(() => verifyTrustList(w.trustList, w.roots, w.crypto, expiresAt), 'expired');
    await expectCodeAsync(() => verifyTrustList(w.trustList, w.roots, w.crypto, issuedAt - 1), 'not_yet_valid');
  });

  it('an older version than the one held → version_regressed; the order is root, signature, time, version', async () => {
    const w = await world(suite, provider);
    const v = w.trustList.listVersion;
    await expectCodeAsync(() => verifyTrustList(w.trustList, w.roots, w.crypto, NOW_S, v + 1), 'version_regressed');
    const flipped = decodeTrustList(flipBit(w.trustList.bytes, w.trustList.bytes.length * 8 - 1));
    await expectCodeAsync(() => verifyTrustList(flipped, w.roots, w.crypto, w.trustList.expiresAt, v + 1), 'bad_signature');
    await expectCodeAsync(() => verifyTrustList(w.trustList, w.roots, w.crypto, w.trustList.expiresAt, v + 1), 'expired');
    await expectCodeAsync(() => verifyTrustList(flipped, [], w.crypto, w.trustList.expiresAt, v + 1), 'unknown_key');
  });
});

describe.each(COMBOS)('verifyTerminalCertificate (%s, %s provider)', (suite, provider) => {
  it('accepts the world certificate; validity is checked only when a time is given', async () => {
    const w = await world(suite, provider);
    await verifyTerminalCertificate(w.cert, w.trustBody, w.crypto, NOW_S);
    await verifyTerminalCertificate(decodeTerminalCertificate(w.cert.bytes), w.trustBody, w.crypto);
    await verifyTerminalCertificate(w.cert, w.trustBody, w.crypto, undefined);
    await verifyTerminalCertificate(w.cert, w.trustBody, w.crypto, w.cert.notBefore);
    await expectCodeAsync(() => verifyTerminalCertificate(w.cert, w.trustBody, w.crypto, w.cert.notAfter), 'expired');
    await expectCodeAsync(() => verifyTerminalCertificate(w.cert, w.trustBody, w.crypto, w.cert.notBefore - 1), 'not_yet_valid');
  });

  it('unknown CA key, a key of another role, another suite → unknown_key, wrong_key_role, unknown_suite', async () => {
    const w = await world(suite, provider);
    const unknown = await signTerminalCertificate({ ...w.certBody, caKeyId: 999 }, w.terminalCa);
    await expectCodeAsync(() => verifyTerminalCertificate(unknown, w.trustBody, w.crypto), 'unknown_key');
    const byIssuer = await signTerminalCertificate({ ...w.certBody, caKeyId: KEY_ID.issuer }, w.issuer);
    await expectCodeAsync(() => verifyTerminalCertificate(byIssuer, w.trustBody, w.crypto), 'wrong_key_role');
    const foreign = await fixedSigner(w.crypto, otherSuite(suite), 'terminal-ca');
    const trust = withKey(w, KEY_ID.terminalCa, (k) => ({ ...k, suite: otherSuite(suite), publicKey: foreign.publicKey }));
    await expectCodeAsync(() => verifyTerminalCertificate(w.cert, trust, w.crypto), 'unknown_suite');
  });

  it('a bad signature, or the issuer signing under the CA id → bad_signature; a retired CA key → expired', async () => {
    const w = await world(suite, provider);
    const flipped = decodeTerminalCertificate(flipBit(w.cert.bytes, w.cert.bytes.length * 8 - 30));
    await expectCodeAsync(() => verifyTerminalCertificate(flipped, w.trustBody, w.crypto), 'bad_signature');
    const forged = await signTerminalCertificate(w.certBody, w.issuer);
    await expectCodeAsync(() => verifyTerminalCertificate(forged, w.trustBody, w.crypto), 'bad_signature');
    const retired = withKey(w, KEY_ID.terminalCa, (k) => ({ ...k, notAfter: w.cert.notBefore }));
    await expectCodeAsync(() => verifyTerminalCertificate(w.cert, retired, w.crypto, NOW_S), 'expired');
  });
});

describe.each(COMBOS)('verifyDenyList and verifyRiskPolicy (%s, %s provider)', (suite, provider) => {
  it('accept the world lists', async () => {
    const w = await world(suite, provider);
    await verifyDenyList(w.denyFull, w.trustBody, w.crypto, NOW_S);
    await verifyDenyList(decodeDenyList(w.denyDelta.bytes), w.trustBody, w.crypto, NOW_S);
    await verifyRiskPolicy(decodeRiskPolicy(w.policy.bytes), w.trustBody, w.crypto, w.nowS);
  });

  it('a stale deny list → expired; one from the future → not_yet_valid (no skew)', async () => {
    const w = await world(suite, provider);
    await verifyDenyList(w.denyFull, w.trustBody, w.crypto, w.denyFull.expiresAt - 1);
    await expectCodeAsync(() => verifyDenyList(w.denyFull, w.trustBody, w.crypto, w.denyFull.expiresAt), 'expired');
    await expectCodeAsync(() => verifyDenyList(w.denyFull, w.trustBody, w.crypto, w.denyFull.issuedAt - 1), 'not_yet_valid');
    // Signature before freshness: a stale forgery is reported as a forgery.
    const flipped = decodeDenyList(flipBit(w.denyFull.bytes, w.denyFull.bytes.length * 8 - 100));
    await expectCodeAsync(() => verifyDenyList(flipped, w.trustBody, w.crypto, w.denyFull.expiresAt), 'bad_signature');
  });

  it('deny list: bad signature, wrong role, unknown key, retired key', async () => {
    const w = await world(suite, provider);
    const body = denyDeltaBody(suite);
    const forged = await signDenyList(body, w.issuer);
    await expectCodeAsync(() => verifyDenyList(forged, w.trustBody, w.crypto, NOW_S), 'bad_signature');
    const byIssuer = await signDenyList(denyFullBody(suite, { signer: { suite, keyId: KEY_ID.issuer } }), w.issuer);
    await expectCodeAsync(() => verifyDenyList(byIssuer, w.trustBody, w.crypto, NOW_S), 'wrong_key_role');
    const unknown = await signDenyList(denyFullBody(suite, { signer: { suite, keyId: 31 } }), w.listSigner);
    await expectCodeAsync(() => verifyDenyList(unknown, w.trustBody, w.crypto, NOW_S), 'unknown_key');
    const retired = withKey(w, KEY_ID.listSigner, (k) => ({ ...k, notAfter: w.denyFull.issuedAt }));
    await expectCodeAsync(() => verifyDenyList(w.denyFull, retired, w.crypto, NOW_S), 'expired');
  });

  it('risk policy: bad signature, wrong role, unknown key, retired key', async () => {
    const w = await world(suite, provider);
    const flipped = decodeRiskPolicy(flipBit(w.policy.bytes, w.policy.bytes.length * 8 - 60));
    await expectCodeAsync(() => verifyRiskPolicy(flipped, w.trustBody, w.crypto, w.nowS), 'bad_signature');
    const byCa = await signRiskPolicy(policyBody(suite, { signer: { suite, keyId: KEY_ID.terminalCa } }), w.terminalCa);
    await expectCodeAsync(() => verifyRiskPolicy(byCa, w.trustBody, w.crypto, w.nowS), 'wrong_key_role');
    const unknown = await signRiskPolicy(policyBody(suite, { signer: { suite, keyId: 2 } }), w.listSigner);
    await expectCodeAsync(() => verifyRiskPolicy(unknown, w.trustBody, w.crypto, w.nowS), 'unknown_key');
    const retired = withKey(w, KEY_ID.listSigner, (k) => ({ ...k, notAfter: w.policy.issuedAt }));
    await expectCodeAsync(() => verifyRiskPolicy(w.policy, retired, w.crypto, w.nowS), 'expired');
  });
});

describe.each(COMBOS)('records and chains (%s, %s provider)', (suite, provider) => {
  it('verifyRecordSignature: the terminal key verifies every record; any other key, bit or length does not', async () => {
    const w = await world(suite, provider);
    const other = await fixedSigner(w.crypto, suite, 'other-terminal');
    for (const rec of w.records) {
      await verifyRecordSignature(decodeRecord(rec.bytes), w.terminal.publicKey, w.crypto);
      await expectCodeAsync(() => verifyRecordSignature(rec, other.publicKey, w.crypto), 'bad_signature');
      await expectCodeAsync(
        () => verifyRecordSignature(decodeRecord(flipBit(rec.bytes, rec.bytes.length * 8 - 77)), w.terminal.publicKey, w.crypto),
        'bad_signature',
      );
      await expectCodeAsync(() => verifyRecordSignature(rec, w.terminal.publicKey.subarray(1), w.crypto), 'bad_signature');
    }
  });

  it('verifyChain: a whole chain, a chain resumed across batches, and an empty one', async () => {
    const w = await world(suite, provider);
    const [r1, r2, r3] = [at(w.records, 0), at(w.records, 1), at(w.records, 2)];
    const last = verifyChain(w.records, 0, GENESIS_HASH, w.crypto);
    expect(last).toEqual(recordHash(r3, w.crypto));
    expect(last).toEqual(w.crypto.sha256(r3.bytes));
    const mid = verifyChain([r1, r2], 0, GENESIS_HASH, w.crypto);
    expect(verifyChain([r3], 2, mid, w.crypto)).toEqual(last);
    expect(verifyChain([], 3, last, w.crypto)).toEqual(last);
    expect(r1.previousHash).toEqual(GENESIS_HASH);
    expect(r2.previousHash).toEqual(recordHash(r1, w.crypto));
  });

  it('verifyChain: a gap, a repeat, a reorder or a wrong starting point → bad_value', async () => {
    const w = await world(suite, provider);
    const [r1, r2, r3] = [at(w.records, 0), at(w.records, 1), at(w.records, 2)];
    const gap = expectCode(() => verifyChain([r1, r3], 0, GENESIS_HASH, w.crypto), 'bad_value');
    expect(gap.detail).toMatch(/sequence 3 after 1/);
    expectCode(() => verifyChain([r1, r1], 0, GENESIS_HASH, w.crypto), 'bad_value');
    expectCode(() => verifyChain([r2, r1], 1, recordHash(r1, w.crypto), w.crypto), 'bad_value');
    expectCode(() => verifyChain(w.records, 1, GENESIS_HASH, w.crypto), 'bad_value');
    expectCode(() => verifyChain([r2, r3], 1, GENESIS_HASH, w.crypto), 'bad_value');
  });

  it('verifyChain: a fork (another record 2 on the same record 1) breaks at the record after it', async () => {
    const w = await world(suite, provider);
    const [r1, r2, r3] = [at(w.records, 0), at(w.records, 1), at(w.records, 2)];
    const fork = await signRecord(recordBodyFor(suite, 2, recordHash(r1, w.crypto), { amount: fen(99_999) }), w.terminal);
    verifyChain([r1, fork], 0, GENESIS_HASH, w.crypto);
    const e = expectCode(() => verifyChain([r1, fork, r3], 0, GENESIS_HASH, w.crypto), 'bad_value');
    expect(e.detail).toMatch(/record 3 does not follow/);
    expect(recordHash(fork, w.crypto)).not.toEqual(recordHash(r2, w.crypto));
  });

  it('upload batches must be one terminal, contiguous, 1..1000 records, both ways', async () => {
    const w = await world(suite, provider);
    const [r1, r2, r3] = [at(w.records, 0), at(w.records, 1), at(w.records, 2)];
    const batch = decodeUploadBatch(w.batchBytes);
    expect(batch.records.map((r) => r.sequence)).toEqual([1, 2, 3]);
    verifyChain(batch.records, 0, GENESIS_HASH, w.crypto);
    const frame = (terminalId: number, records: readonly TerminalRecord[]): Uint8Array => {
      const out = new Writer();
      out.u8(0x61, 'header').u32(terminalId, 'terminal_id').u16(records.length, 'count');
      for (const r of records) out.u16(r.bytes.length, 'len').bytes(r.bytes, undefined, 'record');
      return out.finish();
    };
    expect(frame(w.records[0]?.terminalId ?? 0, w.records)).toEqual(w.batchBytes);
    expectCode(() => decodeUploadBatch(frame(r1.terminalId, [r1, r3])), 'bad_value');
    expectCode(() => decodeUploadBatch(frame(r1.terminalId + 1, [r1, r2])), 'bad_value');
    expectCode(() => decodeUploadBatch(frame(r1.terminalId, [])), 'bad_value');
    expectCode(() => encodeUploadBatch(r1.terminalId, [r1, r3]), 'bad_value');
    expectCode(() => encodeUploadBatch(r1.terminalId + 1, [r1]), 'bad_value');
    expectCode(() => encodeUploadBatch(r1.terminalId, []), 'bad_value');
    const other = await signRecord(recordBodyFor(suite, 2, recordHash(r1, w.crypto), { terminalId: r1.terminalId + 1 }), w.terminal);
    expectCode(() => encodeUploadBatch(r1.terminalId, [r1, other]), 'bad_value');
  });
});

describe.each(['p256', 'ed25519'] as const)('every single-bit flip of every signed object fails to decode or to verify (%s)', (suite) => {
  // Fast suites only: the same property for SM2 codes is in code-tamper.test.ts.
  const cases: readonly [string, (w: World) => Uint8Array, (w: World, b: Uint8Array) => Promise<void>][] = [
    [
      'trust list',
      (w) => w.trustList.bytes,
      (w, b) => verifyTrustList(decodeTrustList(b), w.roots, w.crypto, NOW_S, w.trustList.listVersion),
    ],
    [
      'terminal certificate',
      (w) => w.cert.bytes,
      (w, b) => verifyTerminalCertificate(decodeTerminalCertificate(b), w.trustBody, w.crypto, NOW_S),
    ],
    ['record', (w) => at(w.records, 1).bytes, (w, b) => verifyRecordSignature(decodeRecord(b), w.terminal.publicKey, w.crypto)],
    ['full deny list', (w) => w.denyFull.bytes, (w, b) => verifyDenyList(decodeDenyList(b), w.trustBody, w.crypto, NOW_S)],
    ['delta deny list', (w) => w.denyDelta.bytes, (w, b) => verifyDenyList(decodeDenyList(b), w.trustBody, w.crypto, NOW_S)],
    ['risk policy', (w) => w.policy.bytes, (w, b) => verifyRiskPolicy(decodeRiskPolicy(b), w.trustBody, w.crypto, w.nowS)],
  ];
  for (const [name, bytesOf, check] of cases) {
    it(name, async () => {
      const w = await world(suite);
      const bytes = bytesOf(w);
      await check(w, bytes);
      const accepted: number[] = [];
      for (let bit = 0; bit < bytes.length * 8; bit++) {
        try {
          await check(w, flipBit(bytes, bit));
          accepted.push(bit);
        } catch (e) {
          expect((e as { name?: string }).name).toBe('ProtocolError');
        }
      }
      expect(accepted).toEqual([]);
    });
  }
});
