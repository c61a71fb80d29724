/**
 * Round trips for every signed object: arbitrary valid bodies → sign → bytes → decode → the same
 * fields, the same bytes, and the signature verifies (with the other provider half the time, so the
 * providers are checked against each other). Re-signing a decoded body gives the same signed bytes:
 * every body has exactly one encoding. Signing is the slow part, so runs are few but seeded.
 */
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  CREDENTIAL_LIFETIME_MAX_S,
  type CredentialBody,
  codeToText,
  DECISION_PATHS,
  DENY_TYPES,
  type DenyEntry,
  type DenyListBody,
  decodeCode,
  decodeCredential,
  decodeDenyList,
  decodeRecord,
  decodeRiskPolicy,
  decodeTerminalCertificate,
  decodeTrustList,
  decodeUploadBatch,
  denyColumns,
  denyEntries,
  encodeUploadBatch,
  fen,
  GENESIS_HASH,
  ID48_MAX,
  type KeyRole,
  KEY_ROLES,
  MEDIA,
  makeCode,
  OUTCOMES,
  PUBLIC_KEY_BYTES,
  type RecordBody,
  ROLES,
  type RiskPolicyBody,
  SCENES,
  SCOPES,
  type Signer,
  type SuiteName,
  signCredential,
  signDenyList,
  signRecord,
  signRiskPolicy,
  signTerminalCertificate,
  signTrustList,
  TRUST_LIST_KEYS_MAX,
  type TerminalCertificateBody,
  type TrustListBody,
  textToCode,
  verifyCodeSignature,
  verifyCredentialSignature,
  verifyDenyList,
  verifyRecordSignature,
  verifyRiskPolicy,
  verifyTerminalCertificate,
  verifyTrustList,
  recordHash,
} from '../src/index.js';
import { expectCodeAsync, fixedSigner, PROVIDERS, type ProviderName, SUITES, utf8 } from './fixtures.js';

const SEED = 20_260_101;
/** Signing-heavy properties: few runs, but every suite and both providers come up. */
const RUNS = 60;

const u8 = fc.integer({ min: 0, max: 0xff });
const u16 = fc.integer({ min: 0, max: 0xffff });
const u32 = fc.integer({ min: 0, max: 0xffff_ffff });
const id48 = fc.integer({ min: 1, max: ID48_MAX });
const suiteArb = fc.constantFrom(...SUITES);
const providerArb = fc.constantFrom<ProviderName>('node', 'web');
const keyBytes = (suite: SuiteName) => fc.uint8Array({ minLength: PUBLIC_KEY_BYTES[suite], maxLength: PUBLIC_KEY_BYTES[suite] });
const window = (maxLengthS = 0xffff_ffff) =>
  fc
    .integer({ min: 0, max: 0xffff_fffe })
    .chain((notBefore) =>
      fc.integer({ min: notBefore + 1, max: Math.min(0xffff_ffff, notBefore + maxLengthS) }).map((notAfter) => ({ notBefore, notAfter })),
    );
/** A non-empty subset in canonical order (the wire carries a bit set, so order is not data). */
const subset = <T>(all: readonly T[]) => fc.subarray([...all], { minLength: 1 });
/** Short labels whose UTF-8 is at most 64 bytes; grapheme units keep them well-formed. */
const location = fc
  .tuple(fc.constantFrom('', '\ufeff'), fc.string({ unit: 'grapheme', maxLength: 24 }))
  .map(([bom, s]) => bom + s) // a leading U+FEFF is text like any other, not a byte-order mark to drop
  .filter((s) => utf8(s).length <= 64);

interface Signers {
  readonly root: Signer;
  readonly issuer: Signer;
  readonly ca: Signer;
  readonly list: Signer;
  readonly device: Signer;
  readonly terminal: Signer;
}
const SIGNERS = new Map<SuiteName, Signers>();
function signers(suite: SuiteName): Signers {
  const s = SIGNERS.get(suite);
  if (s === undefined) throw new Error(`no signers for ${suite}`);
  return s;
}

beforeAll(async () => {
  for (const suite of SUITES) {
    const c = PROVIDERS.node;
    SIGNERS.set(suite, {
      root: await fixedSigner(c, suite, 'rt-root'),
      issuer: await fixedSigner(c, suite, 'rt-issuer'),
      ca: await fixedSigner(c, suite, 'rt-ca'),
      list: await fixedSigner(c, suite, 'rt-list'),
      device: await fixedSigner(c, suite, 'rt-device'),
      terminal: await fixedSigner(c, suite, 'rt-terminal'),
    });
  }
});

/** A trust list holding just the one key an object names, valid for all time, so any body's times verify. */
function trustFor(keyId: number, role: KeyRole, suite: SuiteName, publicKey: Uint8Array): TrustListBody {
  return {
    listVersion: 1,
    issuedAt: 0,
    expiresAt: 0xffff_ffff,
    rootKeyId: 1,
    rootSuite: suite,
    keys: [{ keyId, role, suite, notBefore: 0, notAfter: 0xffff_ffff, publicKey }],
  };
}

/** Everything but the signature and the byte views: what the decoder must give back exactly. */
function fields<T extends { signature: Uint8Array; bytes: Uint8Array; signed: Uint8Array }>(
  o: T,
): Omit<T, 'signature' | 'bytes' | 'signed'> {
  const { signature: _s, bytes: _b, signed: _d, ...rest } = o;
  return rest;
}

/** A decoder must copy: changing its input afterwards must not change what it returned. */
function expectNoAliasing(input: Uint8Array, decoded: { bytes: Uint8Array }): void {
  const before = decoded.bytes.slice();
  input.fill(0x5a);
  expect(decoded.bytes).toEqual(before);
}

const trustListArb = suiteArb.chain((suite) =>
  fc
    .record({
      listVersion: u32,
      issued: window(),
      rootKeyId: u16,
      ids: fc.uniqueArray(u16, { maxLength: 10 }),
    })
    .chain(({ listVersion, issued, rootKeyId, ids }) =>
      fc
        .tuple(
          ...[...ids]
            .sort((a, b) => a - b)
            .map((keyId) =>
              suiteArb.chain((keySuite) =>
                fc.record({
                  keyId: fc.constant(keyId),
                  role: fc.constantFrom(...KEY_ROLES),
                  suite: fc.constant(keySuite),
                  v: window(),
                  publicKey: keyBytes(keySuite),
                }),
              ),
            ),
        )
        .map((keys) => ({
          suite,
          body: {
            listVersion,
            issuedAt: issued.notBefore,
            expiresAt: issued.notAfter,
            rootKeyId,
            rootSuite: suite,
            keys: keys.map(({ v, ...k }) => ({ ...k, ...v })),
          } satisfies TrustListBody,
        })),
    ),
);

const credentialArb = fc.record({ issuerSuite: suiteArb, deviceSuite: suiteArb }).chain(({ issuerSuite, deviceSuite }) =>
  fc
    .record({
      issuerKeyId: u16,
      serial: id48,
      holder: id48,
      campus: u16,
      role: fc.constantFrom(...ROLES),
      scopes: subset(SCOPES),
      total: u32,
      perShare: fc.double({ min: 0, max: 1, noNaN: true }),
      offlineCount: fc.integer({ min: 1, max: 0xffff }),
      v: window(CREDENTIAL_LIFETIME_MAX_S),
    })
    .map(
      (r): CredentialBody => ({
        issuerSuite,
        deviceSuite,
        issuerKeyId: r.issuerKeyId,
        serial: r.serial,
        holder: r.holder,
        campus: r.campus,
        role: r.role,
        scopes: r.scopes,
        devicePublicKey: signers(deviceSuite).device.publicKey,
        // perPayment <= offlineTotal; the share only picks a point, the amount itself is an integer.
        limits: { perPayment: fen(Math.floor(r.total * r.perShare)), offlineTotal: fen(r.total), offlineCount: r.offlineCount },
        notBefore: r.v.notBefore,
        notAfter: r.v.notAfter,
      }),
    ),
);

const certArb = fc.record({ caSuite: suiteArb, terminalSuite: suiteArb }).chain(({ caSuite, terminalSuite }) =>
  fc
    .record({
      caKeyId: u16,
      terminalId: fc.integer({ min: 1, max: 0xffff_ffff }),
      merchantId: u32,
      scene: fc.constantFrom(...SCENES),
      campus: u16,
      location,
      v: window(),
      terminalPublicKey: keyBytes(terminalSuite),
    })
    .map(({ v, ...r }): TerminalCertificateBody => ({ caSuite, terminalSuite, ...r, ...v })),
);

/** A record body that satisfies the record rules: a payment is accepted and at least 1 fen, access carries no amount. */
const recordArb = (suite: SuiteName, sequence?: number, terminalId?: number) =>
  fc
    .record({
      terminalId: terminalId === undefined ? fc.integer({ min: 1, max: 0xffff_ffff }) : fc.constant(terminalId),
      sequence: sequence === undefined ? fc.integer({ min: 1, max: 0xffff_ffff }) : fc.constant(sequence),
      previousHash: fc.uint8Array({ minLength: 32, maxLength: 32 }),
      time: u32,
      kind: fc.constantFrom('payment', 'access'),
      path: fc.constantFrom(...DECISION_PATHS),
      medium: fc.constantFrom(...MEDIA),
      accessOutcome: fc.constantFrom(...OUTCOMES),
      payAmount: fc.integer({ min: 1, max: 0xffff_ffff }),
      merchantId: u32,
      trustListVersion: u32,
      denyListVersion: u32,
      policyVersion: u32,
      evidence: fc.uint8Array({ maxLength: 300 }),
    })
    .map(
      (r): RecordBody => ({
        terminalId: r.terminalId,
        sequence: r.sequence,
        previousHash: r.sequence === 1 ? GENESIS_HASH : r.previousHash,
        time: r.time,
        kind: r.kind,
        path: r.path,
        medium: r.medium,
        outcome: r.kind === 'payment' ? 'accepted' : r.accessOutcome,
        amount: fen(r.kind === 'payment' ? r.payAmount : 0),
        merchantId: r.merchantId,
        trustListVersion: r.trustListVersion,
        denyListVersion: r.denyListVersion,
        policyVersion: r.policyVersion,
        evidence: r.evidence,
        terminalSuite: suite,
      }),
    );

const denyArb = suiteArb.chain((suite) =>
  fc
    .record({
      keyId: u16,
      kind: fc.constantFrom<'full' | 'delta'>('full', 'delta'),
      listVersion: fc.integer({ min: 1, max: 0xffff_ffff }),
      baseShare: fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }),
      v: window(),
      entries: fc.uniqueArray(
        fc.record({ type: fc.constantFrom(...DENY_TYPES), id: id48, op: fc.constantFrom<'add' | 'remove'>('add', 'remove') }),
        { maxLength: 40, selector: (e) => `${e.type}:${e.id}` },
      ),
    })
    .map((r): { suite: SuiteName; body: DenyListBody } => ({
      suite,
      body: {
        signer: { suite, keyId: r.keyId },
        kind: r.kind,
        listVersion: r.listVersion,
        baseVersion: r.kind === 'full' ? 0 : Math.floor(r.listVersion * r.baseShare),
        issuedAt: r.v.notBefore,
        expiresAt: r.v.notAfter,
        ...denyColumns(r.kind === 'full' ? r.entries.map((e): DenyEntry => ({ ...e, op: 'add' })) : r.entries),
      },
    })),
);

const policyArb = suiteArb.chain((suite) =>
  fc
    .record({
      keyId: u16,
      policyVersion: u32,
      issuedAt: fc.integer({ min: 0, max: 0xffff_fffe }),
      codeWindowS: fc.integer({ min: 1, max: 0xffff }),
      clockSkewS: u16,
      maxOfflineS: u32,
      maxListAgeS: u32,
      dayTotalMax: u32,
      perShare: fc.double({ min: 0, max: 1, noNaN: true }),
      dayCountMax: u16,
      onlineBudgetMs: u16,
      randomOnlinePer10k: fc.integer({ min: 0, max: 10_000 }),
      scenes: fc.subarray([...SCENES]),
      ruleParts: fc.array(fc.record({ roles: fc.subarray([...ROLES]), campusOnly: fc.boolean(), perPaymentMax: u32 }), {
        minLength: SCENES.length,
        maxLength: SCENES.length,
      }),
    })
    .map((r): { suite: SuiteName; body: RiskPolicyBody } => ({
      suite,
      body: {
        signer: { suite, keyId: r.keyId },
        policyVersion: r.policyVersion,
        issuedAt: r.issuedAt,
        codeWindowS: r.codeWindowS,
        clockSkewS: r.clockSkewS,
        maxOfflineS: r.maxOfflineS,
        maxListAgeS: r.maxListAgeS,
        perPaymentMax: fen(Math.floor(r.dayTotalMax * r.perShare)),
        dayTotalMax: fen(r.dayTotalMax),
        dayCountMax: r.dayCountMax,
        onlineBudgetMs: r.onlineBudgetMs,
        randomOnlinePer10k: r.randomOnlinePer10k,
        rules: r.scenes.map((scene, i) => {
          const part = r.ruleParts[i] ?? { roles: [], campusOnly: false, perPaymentMax: 0 };
          return { scene, roles: part.roles, campusOnly: part.campusOnly, perPaymentMax: fen(part.perPaymentMax) };
        }),
      },
    })),
);

const params = (numRuns = RUNS) => ({ seed: SEED, numRuns });

describe('round trips of every signed object', () => {
  it('trust list', async () => {
    await fc.assert(
      fc.asyncProperty(trustListArb, providerArb, async ({ suite, body }, provider) => {
        const root = signers(suite).root;
        const list = await signTrustList(body, root);
        const input = list.bytes.slice();
        const decoded = decodeTrustList(input);
        expect(fields(decoded)).toEqual(body);
        expect(decoded.bytes).toEqual(list.bytes);
        expect(decoded.signed).toEqual(list.signed);
        expect(decoded.signature).toEqual(list.signature);
        expect((await signTrustList(decoded, root)).signed).toEqual(list.signed);
        await verifyTrustList(
          decoded,
          [{ keyId: body.rootKeyId, suite, publicKey: root.publicKey }],
          PROVIDERS[provider],
          body.issuedAt,
          body.listVersion,
        );
        expectNoAliasing(input, decoded);
      }),
      params(),
    );
  });

  it('credential', async () => {
    await fc.assert(
      fc.asyncProperty(credentialArb, providerArb, async (body, provider) => {
        const issuer = signers(body.issuerSuite).issuer;
        const cred = await signCredential(body, issuer);
        expect(cred.bytes.length).toBe(38 + PUBLIC_KEY_BYTES[body.deviceSuite] + 64);
        const input = cred.bytes.slice();
        const decoded = decodeCredential(input);
        expect(fields(decoded)).toEqual(body);
        expect(decoded.bytes).toEqual(cred.bytes);
        expect(decoded.signed).toEqual(cred.signed);
        expect((await signCredential(decoded, issuer)).signed).toEqual(cred.signed);
        const trust = trustFor(body.issuerKeyId, 'issuer', body.issuerSuite, issuer.publicKey);
        await verifyCredentialSignature(decoded, trust, PROVIDERS[provider]);
        expectNoAliasing(input, decoded);
      }),
      params(),
    );
  });

  it('code, and its QR text', async () => {
    await fc.assert(
      fc.asyncProperty(credentialArb, u32, u32, providerArb, async (body, time, counter, provider) => {
        const { issuer } = signers(body.issuerSuite);
        const device = signers(body.deviceSuite).device;
        const cred = await signCredential(body, issuer);
        const code = await makeCode(cred, device, time, counter);
        expect(code.bytes.length).toBe(1 + cred.bytes.length + 8 + 64);
        const input = code.bytes.slice();
        const decoded = decodeCode(input);
        expect(fields(decoded.credential)).toEqual(body);
        expect(decoded.credential.bytes).toEqual(cred.bytes);
        expect(decoded.time).toBe(time);
        expect(decoded.counter).toBe(counter);
        expect(decoded.bytes).toEqual(code.bytes);
        expect(decoded.signed).toEqual(code.signed);
        expect(textToCode(codeToText(code)).bytes).toEqual(code.bytes);
        const crypto = PROVIDERS[provider];
        await verifyCodeSignature(decoded, crypto);
        await verifyCredentialSignature(
          decoded.credential,
          trustFor(body.issuerKeyId, 'issuer', body.issuerSuite, issuer.publicKey),
          crypto,
        );
        expectNoAliasing(input, decoded);
      }),
      params(),
    );
  });

  it('terminal certificate', async () => {
    await fc.assert(
      fc.asyncProperty(certArb, providerArb, async (body, provider) => {
        const ca = signers(body.caSuite).ca;
        const cert = await signTerminalCertificate(body, ca);
        const input = cert.bytes.slice();
        const decoded = decodeTerminalCertificate(input);
        expect(fields(decoded)).toEqual(body);
        expect(decoded.bytes).toEqual(cert.bytes);
        expect((await signTerminalCertificate(decoded, ca)).signed).toEqual(cert.signed);
        await verifyTerminalCertificate(
          decoded,
          trustFor(body.caKeyId, 'terminal_ca', body.caSuite, ca.publicKey),
          PROVIDERS[provider],
          body.notBefore,
        );
        expectNoAliasing(input, decoded);
      }),
      params(),
    );
  });

  it('record', async () => {
    await fc.assert(
      fc.asyncProperty(
        suiteArb.chain((suite) => recordArb(suite)),
        providerArb,
        async (body, provider) => {
          const terminal = signers(body.terminalSuite).terminal;
          const rec = await signRecord(body, terminal);
          expect(rec.bytes.length).toBe(136 + body.evidence.length);
          const input = rec.bytes.slice();
          const decoded = decodeRecord(input);
          expect(fields(decoded)).toEqual(body);
          expect(decoded.bytes).toEqual(rec.bytes);
          expect((await signRecord(decoded, terminal)).signed).toEqual(rec.signed);
          await verifyRecordSignature(decoded, terminal.publicKey, PROVIDERS[provider]);
          expect(recordHash(decoded, PROVIDERS[provider])).toEqual(recordHash(rec, PROVIDERS.node));
          expectNoAliasing(input, decoded);
        },
      ),
      params(),
    );
  });

  it('upload batch of contiguous records', async () => {
    const batchArb = fc
      .record({ suite: suiteArb, terminalId: fc.integer({ min: 1, max: 0xffff_ffff }), first: fc.integer({ min: 1, max: 0xffff_0000 }) })
      .chain(({ suite, terminalId, first }) =>
        fc
          .integer({ min: 1, max: 5 })
          .chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => recordArb(suite, first + i, terminalId))))
          .map((bodies) => ({ suite, terminalId, bodies })),
      );
    await fc.assert(
      fc.asyncProperty(batchArb, async ({ suite, terminalId, bodies }) => {
        const terminal = signers(suite).terminal;
        const records = [];
        for (const b of bodies) records.push(await signRecord(b, terminal));
        const bytes = encodeUploadBatch(terminalId, records);
        expect(bytes.length).toBe(7 + records.reduce((n, r) => n + 2 + r.bytes.length, 0));
        const input = bytes.slice();
        const batch = decodeUploadBatch(input);
        expect(batch.terminalId).toBe(terminalId);
        expect(batch.bytes).toEqual(bytes);
        expect(batch.records.length).toBe(records.length);
        for (const [i, rec] of batch.records.entries()) {
          expect(fields(rec)).toEqual(bodies[i]);
          expect(rec.bytes).toEqual(records[i]?.bytes);
          await verifyRecordSignature(rec, terminal.publicKey, PROVIDERS.node);
        }
        expect(encodeUploadBatch(batch.terminalId, batch.records)).toEqual(bytes);
        expectNoAliasing(input, batch);
      }),
      params(30),
    );
  });

  it('deny list, full and delta', async () => {
    await fc.assert(
      fc.asyncProperty(denyArb, providerArb, async ({ suite, body }, provider) => {
        const signer = signers(suite).list;
        const list = await signDenyList(body, signer);
        expect(list.bytes.length).toBe(25 + 7 * body.tags.length + 64);
        const input = list.bytes.slice();
        const decoded = decodeDenyList(input);
        expect(fields(decoded)).toEqual(body);
        expect(denyEntries(decoded)).toEqual(denyEntries(body));
        expect(decoded.bytes).toEqual(list.bytes);
        expect((await signDenyList(decoded, signer)).signed).toEqual(list.signed);
        await verifyDenyList(
          decoded,
          trustFor(body.signer.keyId, 'list_signer', suite, signer.publicKey),
          PROVIDERS[provider],
          body.issuedAt,
        );
        expectNoAliasing(input, decoded);
      }),
      params(),
    );
  });

  it('deny-list columns: denyColumns and denyEntries are inverse up to sort order', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(
          fc.record({ type: fc.constantFrom(...DENY_TYPES), id: id48, op: fc.constantFrom<'add' | 'remove'>('add', 'remove') }),
          {
            maxLength: 200,
            selector: (e) => `${e.type}:${e.id}`,
          },
        ),
        (entries) => {
          const cols = denyColumns(entries);
          const back = denyEntries(cols);
          const key = (e: DenyEntry) => DENY_TYPES.indexOf(e.type) * 2 ** 48 + e.id;
          expect(back).toEqual([...entries].sort((a, b) => key(a) - key(b)));
        },
      ),
      { seed: SEED, numRuns: 500 },
    );
  });

  it('risk policy', async () => {
    await fc.assert(
      fc.asyncProperty(policyArb, providerArb, async ({ suite, body }, provider) => {
        const signer = signers(suite).list;
        const policy = await signRiskPolicy(body, signer);
        expect(policy.bytes.length).toBe(39 + 7 * body.rules.length + 64);
        const input = policy.bytes.slice();
        const decoded = decodeRiskPolicy(input);
        expect(fields(decoded)).toEqual(body);
        expect(decoded.bytes).toEqual(policy.bytes);
        expect((await signRiskPolicy(decoded, signer)).signed).toEqual(policy.signed);
        await verifyRiskPolicy(
          decoded,
          trustFor(body.signer.keyId, 'list_signer', suite, signer.publicKey),
          PROVIDERS[provider],
          body.issuedAt,
        );
        expectNoAliasing(input, decoded);
      }),
      params(),
    );
  });
});

describe('round trips at the bounds', () => {
  it(`a trust list of exactly ${TRUST_LIST_KEYS_MAX} keys round-trips; one more is too_large`, async () => {
    const { root, issuer } = signers('ed25519');
    const key = (keyId: number) => ({
      keyId,
      role: 'issuer' as const,
      suite: 'ed25519' as const,
      notBefore: 1,
      notAfter: 2,
      publicKey: issuer.publicKey,
    });
    const body: TrustListBody = {
      listVersion: 1,
      issuedAt: 1,
      expiresAt: 2,
      rootKeyId: 1,
      rootSuite: 'ed25519',
      keys: Array.from({ length: TRUST_LIST_KEYS_MAX }, (_, i) => key(i)),
    };
    const list = await signTrustList(body, root);
    expect(fields(decodeTrustList(list.bytes))).toEqual(body);
    await expectCodeAsync(() => signTrustList({ ...body, keys: [...body.keys, key(TRUST_LIST_KEYS_MAX)] }, root), 'too_large');
  });

  it('a record with 1,024 bytes of evidence round-trips; 1,025 is too_large', async () => {
    const terminal = signers('p256').terminal;
    const body = await fc.sample(recordArb('p256', 1), { seed: SEED, numRuns: 1 })[0];
    if (body === undefined) throw new Error('no sample');
    const big: RecordBody = { ...body, evidence: new Uint8Array(1024).fill(7) };
    const rec = await signRecord(big, terminal);
    expect(fields(decodeRecord(rec.bytes))).toEqual(big);
    await expectCodeAsync(() => signRecord({ ...big, evidence: new Uint8Array(1025) }, terminal), 'too_large');
  });

  it('a location of exactly 64 UTF-8 bytes round-trips; 65 is too_large', async () => {
    const ca = signers('p256').ca;
    const body = fc.sample(certArb, { seed: SEED, numRuns: 1 })[0];
    if (body === undefined) throw new Error('no sample');
    const caBody = { ...body, caSuite: 'p256' as const, location: `${'食'.repeat(21)}x` };
    expect(utf8(caBody.location).length).toBe(64);
    const cert = await signTerminalCertificate(caBody, ca);
    expect(decodeTerminalCertificate(cert.bytes).location).toBe(caBody.location);
    await expectCodeAsync(() => signTerminalCertificate({ ...caBody, location: `${caBody.location}y` }, ca), 'too_large');
  });

  it('a one-byte input gets past no decoder: wrong type, wrong version, or too short', () => {
    // A cheap sweep that pins the header nibble layout: type << 4 | version 1.
    const decoders = [
      decodeTrustList,
      decodeCredential,
      decodeCode,
      decodeTerminalCertificate,
      decodeRecord,
      decodeUploadBatch,
      decodeDenyList,
      decodeRiskPolicy,
    ];
    fc.assert(
      fc.property(u8, (b) => {
        decoders.forEach((decode, i) => {
          const type = i + 1;
          try {
            decode(Uint8Array.of(b));
          } catch (e) {
            const code = (e as { code?: string }).code;
            if (b >> 4 !== type) expect(code).toBe('unknown_type');
            else if ((b & 0xf) !== 1) expect(code).toBe('unknown_version');
            else expect(code).toBe('bad_length');
            return;
          }
          throw new Error(`one byte ${b} decoded as type ${type}`);
        });
      }),
      { seed: SEED, numRuns: 256 },
    );
  });
});
