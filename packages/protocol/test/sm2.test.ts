/**
 * The `sm2` suite: the national standard's signature examples (GB/T 32918.2 on its example curve,
 * GB/T 32918.5 on the recommended curve), interop both ways with sm-crypto-v2, sm-crypto and
 * OpenSSL (through node:crypto), rejection of every malformed input, and key round trips.
 */
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  getCurves,
  getHashes,
  type KeyObject,
  sign as nodeSign,
  verify as nodeVerify,
} from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import smCrypto from 'sm-crypto';
import { sm2 as smV2 } from 'sm-crypto-v2';
import { describe, expect, it } from 'vitest';
import { concatBytes, fromHex, toHex } from '../src/bytes.js';
import { ProtocolError } from '../src/errors.js';
import { SM2_CURVE, SM2_DEFAULT_USER_ID, SM2_USER_ID_BYTES_MAX, type Sm2CurveParams, sm2Scheme, sm2Suite, sm3 } from '../src/suites/sm2.js';
import { PRIVATE_KEY_BYTES, PUBLIC_KEY_BYTES, SIGNATURE_BYTES } from '../src/suites.js';

// ---------------------------------------------------------------------------------------------
// Fixtures and helpers

interface Sm2Vector {
  readonly name: string;
  readonly source: string;
  readonly curve: { readonly [K in keyof Sm2CurveParams]: string };
  readonly userIdAscii: string;
  readonly messageAscii: string;
  readonly d: string;
  readonly xA: string;
  readonly yA: string;
  readonly za: string;
  readonly e: string;
  readonly k: string;
  readonly r: string;
  readonly s: string;
}

function loadVectors(): { source: string; vectors: Sm2Vector[] } {
  const raw: unknown = JSON.parse(readFileSync(new URL('./vectors/sm2-gbt32918.json', import.meta.url), 'utf8'));
  const file = raw as { source?: unknown; vectors?: unknown };
  if (typeof file.source !== 'string' || !Array.isArray(file.vectors)) throw new Error('sm2 vector file: bad shape');
  return { source: file.source, vectors: file.vectors as Sm2Vector[] };
}

const { source: vectorSource, vectors } = loadVectors();
const ascii = (s: string): Uint8Array => new TextEncoder().encode(s);
const big = (hex: string): bigint => BigInt(`0x${hex}`);
const hex32 = (v: bigint): string => v.toString(16).padStart(64, '0');
const { n, p } = SM2_CURVE;

function curveOf(v: Sm2Vector): Sm2CurveParams {
  const c = v.curve;
  return { p: big(c.p), a: big(c.a), b: big(c.b), n: big(c.n), Gx: big(c.Gx), Gy: big(c.Gy) };
}

/** SEC1 compression of (x, y) given as hex. */
function compress(xHex: string, yHex: string): Uint8Array {
  return concatBytes(Uint8Array.of(big(yHex) & 1n ? 0x03 : 0x02), fromHex(xHex.padStart(64, '0')));
}

/** Uncompressed hex ("04" || x || y) of a compressed key, via sm-crypto-v2's decoder (a separate code path). */
function uncompressedHex(compressed: Uint8Array): string {
  return smV2.precomputePublicKey(toHex(compressed)).toHex(false);
}

function sig(r: bigint, s: bigint): Uint8Array {
  return fromHex(hex32(r) + hex32(s));
}

function flipBit(bytes: Uint8Array, bit: number): Uint8Array {
  const out = bytes.slice();
  out[bit >> 3] = (out[bit >> 3] as number) ^ (0x80 >> (bit & 7));
  return out;
}

async function expectProtocolError(p: Promise<unknown> | (() => unknown), code: string): Promise<void> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    expect(e).toBeInstanceOf(ProtocolError);
    expect((e as ProtocolError).code).toBe(code);
    return;
  }
  throw new Error(`expected ProtocolError(${code}), nothing was thrown`);
}

const hasNativeSm3 = getHashes().includes('sm3');
const hasNativeSm2 = hasNativeSm3 && getCurves().includes('SM2');
const nativeSm3 = (data: Uint8Array): Uint8Array => new Uint8Array(createHash('sm3').update(data).digest());

const suite = sm2Suite();
const messages = fc.uint8Array({ maxLength: 300 });

// ---------------------------------------------------------------------------------------------

describe('suite shape', () => {
  it('is named sm2 and uses the protocol sizes', async () => {
    expect(suite.name).toBe('sm2');
    const signer = await suite.generate();
    expect(signer.suite).toBe('sm2');
    expect(signer.publicKey).toHaveLength(PUBLIC_KEY_BYTES.sm2);
    expect([0x02, 0x03]).toContain(signer.publicKey[0]);
    expect(await signer.sign(ascii('x'))).toHaveLength(SIGNATURE_BYTES);
    expect(await signer.exportPrivateKey()).toHaveLength(PRIVATE_KEY_BYTES);
  });

  it('the default user id is ASCII 1234567812345678', () => {
    expect(SM2_DEFAULT_USER_ID).toBe('1234567812345678');
  });
});

describe('known answers from the national standard', () => {
  it('the vector file names its sources and holds both examples', () => {
    expect(vectorSource).toMatch(/standard/);
    expect(vectors.map((v) => v.source).join(' ')).toMatch(/GB\/T 32918\.2-2016 Annex A.*GB\/T 32918\.5-2017 Annex A/s);
  });

  it('SM2_CURVE is the recommended curve of GB/T 32918.5 as the vector file gives it', () => {
    const recommended = vectors[1];
    if (recommended === undefined) throw new Error('missing vector');
    expect(curveOf(recommended)).toEqual({ ...SM2_CURVE });
  });

  for (const v of vectors) {
    describe(v.name, () => {
      const curve = curveOf(v);
      const userId = ascii(v.userIdAscii);
      const message = ascii(v.messageAscii);
      const publicKey = compress(v.xA, v.yA);
      const expected = `${v.r}${v.s}`;
      const schemes = [
        ['pure-JS SM3', sm2Scheme(curve, sm3)],
        ...(hasNativeSm3 ? [['native SM3', sm2Scheme(curve, nativeSm3)] as const] : []),
      ] as const;

      for (const [label, scheme] of schemes) {
        it(`${label}: d gives the published public key (xA, yA)`, () => {
          expect(toHex(scheme.publicKey(fromHex(v.d)))).toBe(toHex(publicKey));
        });

        it(`${label}: Z_A and e = SM3(Z_A || M) are the published values`, () => {
          const za = scheme.za(publicKey, userId);
          expect(toHex(za)).toBe(v.za);
          expect(toHex(sm3(concatBytes(za, message)))).toBe(v.e);
        });

        it(`${label}: signing with the published k gives the published (r, s)`, () => {
          expect(toHex(scheme.signWithFixedK(fromHex(v.d), message, userId, fromHex(v.k)))).toBe(expected);
        });

        it(`${label}: the published signature verifies, and not under another id or message`, () => {
          expect(scheme.verify(publicKey, message, fromHex(expected), userId)).toBe(true);
          expect(scheme.verify(publicKey, message, fromHex(expected), ascii(`${v.userIdAscii}.`))).toBe(false);
          expect(scheme.verify(publicKey, ascii(`${v.messageAscii}.`), fromHex(expected), userId)).toBe(false);
        });
      }

      it('n is the order of G: d = n-2 gives -2G (same x as 2G, other y parity)', () => {
        const scheme = sm2Scheme(curve);
        const twoG = scheme.publicKey(fromHex(hex32(2n)));
        const minusTwoG = scheme.publicKey(fromHex(hex32(curve.n - 2n)));
        expect(toHex(minusTwoG.subarray(1))).toBe(toHex(twoG.subarray(1)));
        expect(minusTwoG[0]).toBe((twoG[0] as number) ^ 1);
        expect(toHex(scheme.publicKey(fromHex(hex32(1n))))).toBe(toHex(compress(hex32(curve.Gx), hex32(curve.Gy))));
      });

      it('signWithFixedK refuses k = 0, k = n and a k of the wrong length', async () => {
        const scheme = sm2Scheme(curve);
        await expectProtocolError(() => scheme.signWithFixedK(fromHex(v.d), message, userId, fromHex(hex32(0n))), 'bad_value');
        await expectProtocolError(() => scheme.signWithFixedK(fromHex(v.d), message, userId, fromHex(hex32(curve.n))), 'bad_value');
        await expectProtocolError(() => scheme.signWithFixedK(fromHex(v.d), message, userId, fromHex(v.k).subarray(1)), 'bad_value');
      });
    });
  }

  describe('the recommended-curve example through the suite and third-party verifiers', () => {
    const v = vectors[1];
    if (v === undefined) throw new Error('missing vector');
    const publicKey = compress(v.xA, v.yA);
    const message = ascii(v.messageAscii);
    const signature = fromHex(`${v.r}${v.s}`);

    it('sm2Suite() (default id) verifies it; so does the native-SM3 suite', async () => {
      expect(await suite.verify(publicKey, message, signature)).toBe(true);
      if (hasNativeSm3) expect(await sm2Suite({ sm3: nativeSm3 }).verify(publicKey, message, signature)).toBe(true);
    });

    it('importing the example d gives the example public key', async () => {
      const signer = await suite.importPrivateKey(fromHex(v.d));
      expect(toHex(signer.publicKey)).toBe(toHex(publicKey));
    });

    it('sm-crypto-v2 and sm-crypto verify it too (the vector is what other implementations expect)', () => {
      expect(smV2.doVerifySignature(message, toHex(signature), `04${v.xA}${v.yA}`, { hash: true })).toBe(true);
      expect(smCrypto.sm2.doVerifySignature(v.messageAscii, toHex(signature), `04${v.xA}${v.yA}`, { hash: true, der: false })).toBe(true);
    });
  });
});

// ---------------------------------------------------------------------------------------------

describe('interop with sm-crypto-v2 (default user id unless stated)', () => {
  it('our signatures verify in sm-crypto-v2 (24 random messages)', async () => {
    const signer = await suite.generate();
    const pubHex = toHex(signer.publicKey);
    await fc.assert(
      fc.asyncProperty(messages, async (m) => smV2.doVerifySignature(m, toHex(await signer.sign(m)), pubHex, { hash: true })),
      { numRuns: 24 },
    );
  });

  it("sm-crypto-v2's signatures verify in ours (24 random messages)", async () => {
    const pair = smV2.generateKeyPairHex();
    const pub = fromHex(smV2.compressPublicKeyHex(pair.publicKey));
    expect(toHex((await suite.importPrivateKey(fromHex(pair.privateKey))).publicKey)).toBe(toHex(pub));
    await fc.assert(
      fc.asyncProperty(messages, async (m) => suite.verify(pub, m, fromHex(smV2.doSignature(m, pair.privateKey, { hash: true })))),
      { numRuns: 24 },
    );
  });

  it('both ways with random non-default user ids (ENTL and ID enter Z_A the same way)', async () => {
    const pair = smV2.generateKeyPairHex();
    await fc.assert(
      fc.asyncProperty(fc.string({ unit: 'grapheme-ascii', minLength: 0, maxLength: 40 }), messages, async (id, m) => {
        const ours = sm2Suite({ userId: ascii(id) });
        const signer = await ours.importPrivateKey(fromHex(pair.privateKey));
        const theirs = fromHex(smV2.doSignature(m, pair.privateKey, { hash: true, userId: id }));
        return (
          smV2.doVerifySignature(m, toHex(await signer.sign(m)), pair.publicKey, { hash: true, userId: id }) &&
          (await ours.verify(signer.publicKey, m, theirs))
        );
      }),
      { numRuns: 20 },
    );
  });
});

describe('interop with sm-crypto (v1: jsbn curve and its own SM3, independent of noble)', () => {
  const opts = { hash: true, der: false, userId: SM2_DEFAULT_USER_ID };

  it('our signatures verify in sm-crypto (24 random messages)', async () => {
    const signer = await suite.generate();
    const pubHex = toHex(signer.publicKey);
    await fc.assert(
      fc.asyncProperty(messages, async (m) => smCrypto.sm2.doVerifySignature(Array.from(m), toHex(await signer.sign(m)), pubHex, opts)),
      { numRuns: 24 },
    );
  });

  it("sm-crypto's signatures verify in ours (24 random messages)", async () => {
    const pair = smCrypto.sm2.generateKeyPairHex();
    const pub = fromHex(toHex((await suite.importPrivateKey(fromHex(pair.privateKey))).publicKey));
    expect(toHex(pub).slice(2)).toBe(pair.publicKey.slice(2, 66));
    await fc.assert(
      fc.asyncProperty(messages, async (m) =>
        suite.verify(pub, m, fromHex(smCrypto.sm2.doSignature(Array.from(m), pair.privateKey, opts))),
      ),
      { numRuns: 24 },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// OpenSSL through node:crypto. Node's binding hashes an EMPTY user id into Z_A and cannot set one,
// so these tests use sm2Suite({ userId: empty }). Keys are only ever imported, never exported
// (exporting an imported SM2 key as SEC1 aborts the process).

/** SubjectPublicKeyInfo prefix: id-ecPublicKey with the SM2 curve OID 1.2.156.10197.1.301, compressed point. */
const SM2_SPKI_PREFIX = fromHex('3039301306072a8648ce3d020106082a811ccf5501822d032200');
/** PKCS#8 prefix: same algorithm, ECPrivateKey { version 1, privateKey OCTET STRING (32) } without the public key. */
const SM2_PKCS8_PREFIX = fromHex('3041020100301306072a8648ce3d020106082a811ccf5501822d042730250201010420');

function nodePublicKey(compressed: Uint8Array): KeyObject {
  return createPublicKey({ key: Buffer.from(concatBytes(SM2_SPKI_PREFIX, compressed)), format: 'der', type: 'spki' });
}

function nodePrivateKey(d: Uint8Array): KeyObject {
  return createPrivateKey({ key: Buffer.from(concatBytes(SM2_PKCS8_PREFIX, d)), format: 'der', type: 'pkcs8' });
}

/** DER INTEGER of a non-negative 32-byte big-endian number. */
function derInteger(v: Uint8Array): Uint8Array {
  let i = 0;
  while (i < v.length - 1 && v[i] === 0) i++;
  const body = (v[i] as number) & 0x80 ? concatBytes(Uint8Array.of(0), v.subarray(i)) : v.subarray(i);
  return concatBytes(Uint8Array.of(0x02, body.length), body);
}

/** r||s to DER SEQUENCE { INTEGER r, INTEGER s } (always < 128 bytes for 256-bit values). */
function toDer(rs: Uint8Array): Uint8Array {
  const body = concatBytes(derInteger(rs.subarray(0, 32)), derInteger(rs.subarray(32)));
  return concatBytes(Uint8Array.of(0x30, body.length), body);
}

/** DER SEQUENCE { INTEGER r, INTEGER s } to r||s. Strict enough for OpenSSL's output. */
function fromDer(der: Uint8Array): Uint8Array {
  expect(der[0]).toBe(0x30);
  expect(der[1]).toBe(der.length - 2);
  const parts: Uint8Array[] = [];
  let o = 2;
  for (let i = 0; i < 2; i++) {
    expect(der[o]).toBe(0x02);
    const len = der[o + 1] as number;
    const body = der.subarray(o + 2, o + 2 + len);
    parts.push(
      fromHex(
        toHex(body)
          .replace(/^(00)+/, '')
          .padStart(64, '0'),
      ),
    );
    o += 2 + len;
  }
  expect(o).toBe(der.length);
  return concatBytes(...parts);
}

describe.skipIf(!hasNativeSm2)('interop with OpenSSL (node:crypto) using the EMPTY user id', () => {
  const emptyId = sm2Suite({ userId: new Uint8Array(0) });

  it('an SPKI/PKCS#8 with the SM2 curve imports as an SM2 key, not as an "ec" (ECDSA) key', async () => {
    const signer = await emptyId.generate();
    const pub = nodePublicKey(signer.publicKey);
    const priv = nodePrivateKey((await signer.exportPrivateKey()) as Uint8Array);
    // Observed on Node 20 / OpenSSL 3.0: asymmetricKeyType is undefined (Node has no name for
    // EVP_PKEY_SM2); generateKeyPairSync('ec', { namedCurve: 'SM2' }) gives 'ec' and signs ECDSA.
    expect(pub.asymmetricKeyType).not.toBe('ec');
    expect(priv.asymmetricKeyType).not.toBe('ec');
  });

  it('our signatures (empty id) verify in OpenSSL, as DER (24 random messages)', async () => {
    const signer = await emptyId.generate();
    const key = nodePublicKey(signer.publicKey);
    await fc.assert(
      fc.asyncProperty(messages, async (m) => nodeVerify(null, m, key, toDer(await signer.sign(m)))),
      { numRuns: 24 },
    );
  });

  it("OpenSSL's signatures verify in ours with the empty id, and not with the default id (24 random messages)", async () => {
    const signer = await emptyId.generate();
    const key = nodePrivateKey((await signer.exportPrivateKey()) as Uint8Array);
    await fc.assert(
      fc.asyncProperty(messages, async (m) => {
        const der = new Uint8Array(nodeSign(null, m, key));
        const rs = fromDer(der);
        return (await emptyId.verify(signer.publicKey, m, rs)) && !(await suite.verify(signer.publicKey, m, rs));
      }),
      { numRuns: 24 },
    );
  });

  it("node ignores dsaEncoding: 'ieee-p1363' for SM2 keys: it emits DER and rejects raw r||s", async () => {
    const signer = await emptyId.generate();
    const m = ascii('p1363?');
    const out = new Uint8Array(
      nodeSign(null, m, { key: nodePrivateKey((await signer.exportPrivateKey()) as Uint8Array), dsaEncoding: 'ieee-p1363' }),
    );
    expect(out[0]).toBe(0x30); // DER, not 64 raw bytes
    const raw = await signer.sign(m);
    expect(nodeVerify(null, m, { key: nodePublicKey(signer.publicKey), dsaEncoding: 'ieee-p1363' }, raw)).toBe(false);
    expect(nodeVerify(null, m, { key: nodePublicKey(signer.publicKey), dsaEncoding: 'ieee-p1363' }, toDer(raw))).toBe(true);
  });

  it("node's generated 'SM2' keys sign plain ECDSA, which does not verify as SM2", async () => {
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'SM2' });
    expect(privateKey.asymmetricKeyType).toBe('ec');
    const spki = new Uint8Array(publicKey.export({ format: 'der', type: 'spki' })); // SPKI only, never SEC1
    const point = spki.subarray(-65);
    const compressed = compress(toHex(point.subarray(1, 33)), toHex(point.subarray(33)));
    const m = ascii('ecdsa, not sm2');
    const rs = new Uint8Array(nodeSign(null, m, { key: privateKey, dsaEncoding: 'ieee-p1363' }));
    expect(await emptyId.verify(compressed, m, rs)).toBe(false);
    expect(await suite.verify(compressed, m, rs)).toBe(false);
  });
});

/** The openssl command line (3.x) can set the SM2 user id (`-pkeyopt distid:`), which node cannot. */
const opensslCli = spawnSync('openssl', ['version'], { encoding: 'utf8' });
const hasOpenssl3Cli = opensslCli.status === 0 && /^OpenSSL 3\./.test(opensslCli.stdout);

describe.skipIf(!hasOpenssl3Cli)('interop with the OpenSSL 3 command line using the DEFAULT user id', () => {
  const distid = ['-pkeyopt', `distid:${SM2_DEFAULT_USER_ID}`];

  it('both ways, 20 random keys and messages; without distid (empty id) OpenSSL rejects ours', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'duet-sm2-'));
    const file = (name: string): string => join(dir, name);
    const pkeyutl = (args: string[]): string =>
      execFileSync('openssl', ['pkeyutl', '-keyform', 'DER', '-rawin', '-digest', 'sm3', '-in', file('m'), ...args], {
        encoding: 'utf8',
        stdio: 'pipe',
      });
    try {
      for (let i = 0; i < 20; i++) {
        const signer = await suite.generate();
        const m = crypto.getRandomValues(new Uint8Array(i * 17));
        writeFileSync(file('pub.der'), concatBytes(SM2_SPKI_PREFIX, signer.publicKey));
        writeFileSync(file('key.der'), concatBytes(SM2_PKCS8_PREFIX, (await signer.exportPrivateKey()) as Uint8Array));
        writeFileSync(file('m'), m);
        writeFileSync(file('ours.der'), toDer(await signer.sign(m)));
        const verifyOurs = ['-verify', '-pubin', '-inkey', file('pub.der'), '-sigfile', file('ours.der')];
        expect(pkeyutl([...verifyOurs, ...distid])).toMatch(/Signature Verified Successfully/);
        expect(() => pkeyutl(verifyOurs)).toThrow();
        pkeyutl(['-sign', '-inkey', file('key.der'), '-out', file('theirs.der'), ...distid]);
        expect(await suite.verify(signer.publicKey, m, fromDer(new Uint8Array(readFileSync(file('theirs.der')))))).toBe(true);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('round trips', () => {
  it('generate → sign → verify, for random messages', async () => {
    const signer = await suite.generate();
    await fc.assert(
      fc.asyncProperty(messages, async (m) => suite.verify(signer.publicKey, m, await signer.sign(m))),
      { numRuns: 30 },
    );
  });

  it('export → import gives the same key; its signatures verify under the original public key', async () => {
    const a = await suite.generate();
    const raw = await a.exportPrivateKey();
    expect(raw).toBeInstanceOf(Uint8Array);
    const b = await suite.importPrivateKey(raw as Uint8Array);
    expect(toHex(b.publicKey)).toBe(toHex(a.publicKey));
    expect(toHex((await b.exportPrivateKey()) as Uint8Array)).toBe(toHex(raw as Uint8Array));
    const m = ascii('round trip');
    expect(await suite.verify(a.publicKey, m, await b.sign(m))).toBe(true);
  });

  it('the exported bytes are a copy: changing them changes nothing', async () => {
    const a = await suite.generate();
    const first = (await a.exportPrivateKey()) as Uint8Array;
    const before = toHex(first);
    first.fill(0);
    expect(toHex((await a.exportPrivateKey()) as Uint8Array)).toBe(before);
  });

  it('extractable: false refuses export but signs', async () => {
    for (const signer of [
      await suite.generate({ extractable: false }),
      await suite.importPrivateKey(fromHex(hex32(12345n)), { extractable: false }),
    ]) {
      expect(await signer.exportPrivateKey()).toBeUndefined();
      const m = ascii('kept inside');
      expect(await suite.verify(signer.publicKey, m, await signer.sign(m))).toBe(true);
    }
  });

  it('signatures are randomized: two of the same message differ, both verify', async () => {
    const signer = await suite.generate();
    const m = ascii('same message');
    const [s1, s2] = [await signer.sign(m), await signer.sign(m)];
    expect(toHex(s1)).not.toBe(toHex(s2));
    expect(await suite.verify(signer.publicKey, m, s1)).toBe(true);
    expect(await suite.verify(signer.publicKey, m, s2)).toBe(true);
  });

  it('the smallest and largest private keys (1 and n-2) work', async () => {
    for (const d of [1n, n - 2n]) {
      const signer = await suite.importPrivateKey(fromHex(hex32(d)));
      const m = ascii(`d = ${d}`);
      expect(await suite.verify(signer.publicKey, m, await signer.sign(m))).toBe(true);
    }
  });

  it('generated private keys are in [1, n-2] even when the random source is extreme', async () => {
    for (const fill of [0x00, 0xff]) {
      const s = sm2Suite({ randomBytes: (len) => new Uint8Array(len).fill(fill) });
      const raw = (await (await s.generate()).exportPrivateKey()) as Uint8Array;
      const d = big(toHex(raw));
      expect(d >= 1n && d <= n - 2n).toBe(true);
    }
  });

  it('an injected random source makes signing reproducible (the simulator needs this)', async () => {
    const seeded = (): ((len: number) => Uint8Array) => {
      let counter = 0;
      return (len) => {
        const out = new Uint8Array(len);
        for (let o = 0; o < len; o += 32) out.set(sm3(ascii(`seed ${counter++}`)).subarray(0, Math.min(32, len - o)), o);
        return out;
      };
    };
    const run = async (): Promise<string> => {
      const s = sm2Suite({ randomBytes: seeded() });
      const signer = await s.generate();
      return toHex(concatBytes(signer.publicKey, await signer.sign(ascii('replay'))));
    };
    expect(await run()).toBe(await run());
  });

  it('a random source that returns the wrong length is refused with ProtocolError', async () => {
    const s = sm2Suite({ randomBytes: () => new Uint8Array(8) });
    await expectProtocolError(s.generate(), 'bad_value');
  });
});

describe('user id and injected SM3', () => {
  it('a signature under one id does not verify under another; the default id is the standard one', async () => {
    const alice = sm2Suite({ userId: ascii('ALICE123@YAHOO.COM') });
    const explicitDefault = sm2Suite({ userId: ascii('1234567812345678') });
    const signer = await alice.generate();
    const m = ascii('id bound');
    const s = await signer.sign(m);
    expect(await alice.verify(signer.publicKey, m, s)).toBe(true);
    expect(await suite.verify(signer.publicKey, m, s)).toBe(false);
    const d = (await signer.exportPrivateKey()) as Uint8Array;
    const dflt = await suite.importPrivateKey(d);
    expect(await explicitDefault.verify(dflt.publicKey, m, await dflt.sign(m))).toBe(true);
  });

  it('the user id is copied at construction: changing the caller array later changes nothing', async () => {
    const id = ascii('MUTABLE-ID');
    const s = sm2Suite({ userId: id });
    const signer = await s.generate();
    const m = ascii('copy');
    const sig1 = await signer.sign(m);
    id.fill(0x41);
    expect(await sm2Suite({ userId: ascii('MUTABLE-ID') }).verify(signer.publicKey, m, sig1)).toBe(true);
    expect(await s.verify(signer.publicKey, m, await signer.sign(m))).toBe(true);
  });

  it(`user ids up to ${SM2_USER_ID_BYTES_MAX} bytes work (ENTL is 16 bits); longer is refused`, async () => {
    const longest = sm2Suite({ userId: new Uint8Array(SM2_USER_ID_BYTES_MAX).fill(0x61) });
    const signer = await longest.generate();
    const m = ascii('long id');
    expect(await longest.verify(signer.publicKey, m, await signer.sign(m))).toBe(true);
    await expectProtocolError(() => sm2Suite({ userId: new Uint8Array(SM2_USER_ID_BYTES_MAX + 1) }), 'too_large');
  });

  it.skipIf(!hasNativeSm3)('the native-SM3 suite and the pure-JS suite verify each other', async () => {
    const native = sm2Suite({ sm3: nativeSm3 });
    const a = await native.generate();
    const b = await suite.generate();
    const m = ascii('native vs pure');
    expect(await suite.verify(a.publicKey, m, await a.sign(m))).toBe(true);
    expect(await native.verify(b.publicKey, m, await b.sign(m))).toBe(true);
  });

  it('an injected hash that is not SM3 is refused at construction', async () => {
    await expectProtocolError(() => sm2Suite({ sm3: (d) => new Uint8Array(createHash('sha256').update(d).digest()) }), 'bad_value');
  });
});

// ---------------------------------------------------------------------------------------------

describe('rejection: verify is false, never an exception', () => {
  async function fixture(): Promise<{ pub: Uint8Array; m: Uint8Array; s: Uint8Array }> {
    const signer = await suite.generate();
    const m = ascii('the message');
    return { pub: signer.publicKey, m, s: await signer.sign(m) };
  }

  it('every single-bit flip of the signature fails (all 512 bits)', async () => {
    const { pub, m, s } = await fixture();
    expect(await suite.verify(pub, m, s)).toBe(true);
    for (let bit = 0; bit < 512; bit++) expect(await suite.verify(pub, m, flipBit(s, bit)), `bit ${bit}`).toBe(false);
  });

  it('every single-bit flip of the message fails', async () => {
    const { pub, m, s } = await fixture();
    for (let bit = 0; bit < m.length * 8; bit++) expect(await suite.verify(pub, flipBit(m, bit), s), `bit ${bit}`).toBe(false);
    expect(await suite.verify(pub, concatBytes(m, Uint8Array.of(0)), s)).toBe(false);
    expect(await suite.verify(pub, m.subarray(1), s)).toBe(false);
  });

  it('every single-bit flip of the public key fails; so does another valid key', async () => {
    const { pub, m, s } = await fixture();
    for (let bit = 0; bit < 264; bit++) expect(await suite.verify(flipBit(pub, bit), m, s), `bit ${bit}`).toBe(false);
    expect(await suite.verify((await suite.generate()).publicKey, m, s)).toBe(false);
  });

  it('r or s out of [1, n-1], and r + s = n (t = 0), fail', async () => {
    const { pub, m, s: good } = await fixture();
    const r = big(toHex(good.subarray(0, 32)));
    const s = big(toHex(good.subarray(32)));
    const bad = [
      sig(0n, s),
      sig(r, 0n),
      sig(0n, 0n),
      sig(n, s),
      sig(r, n),
      sig(n + 1n, s),
      sig(r, n + 1n),
      sig(2n ** 256n - 1n, s),
      sig(r, 2n ** 256n - 1n),
      sig(r, n - r), // t = (r + s) mod n = 0
    ];
    for (const b of bad) expect(await suite.verify(pub, m, b), toHex(b)).toBe(false);
  });

  it('wrong signature lengths fail', async () => {
    const { pub, m, s } = await fixture();
    for (const b of [new Uint8Array(0), s.subarray(0, 63), concatBytes(s, Uint8Array.of(0)), concatBytes(Uint8Array.of(0), s), toDer(s)]) {
      expect(await suite.verify(pub, m, b)).toBe(false);
    }
  });

  it('public keys that are not compressed points on the curve are invalid and never verify', async () => {
    const { pub, m, s } = await fixture();
    const x = pub.subarray(1);
    // x with no y on the curve: the first x >= 1 for which x³ + ax + b is not a square mod p.
    const pow = (b: bigint, e: bigint): bigint => {
      let result = 1n;
      let base = b % p;
      for (let k = e; k > 0n; k >>= 1n, base = (base * base) % p) if (k & 1n) result = (result * base) % p;
      return result;
    };
    let offCurve = 1n;
    while (pow((offCurve ** 3n + SM2_CURVE.a * offCurve + SM2_CURVE.b) % p, (p - 1n) / 2n) !== p - 1n) offCurve++;
    const bad = [
      ...[0x00, 0x01, 0x04, 0x05, 0x06, 0x07, 0xff].map((prefix) => concatBytes(Uint8Array.of(prefix), x)),
      fromHex(uncompressedHex(pub)), // 65-byte 0x04 form: valid point, not the wire form
      concatBytes(Uint8Array.of(0x02), fromHex(hex32(p))), // x = p
      concatBytes(Uint8Array.of(0x03), fromHex(hex32(2n ** 256n - 1n))), // x > p
      concatBytes(Uint8Array.of(0x02), fromHex(hex32(offCurve))),
      concatBytes(Uint8Array.of(0x03), fromHex(hex32(offCurve))),
      Uint8Array.of(0x00), // SEC1 infinity
      new Uint8Array(0),
      pub.subarray(0, 32),
      concatBytes(pub, Uint8Array.of(0)),
    ];
    for (const b of bad) {
      expect(suite.isValidPublicKey(b), toHex(b)).toBe(false);
      expect(await suite.verify(b, m, s), toHex(b)).toBe(false);
    }
    expect(suite.isValidPublicKey(pub)).toBe(true);
  });

  it('random garbage never throws (fast-check)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ maxLength: 70 }),
        fc.uint8Array({ maxLength: 64 }),
        fc.uint8Array({ maxLength: 80 }),
        async (k, m, s) => {
          expect(typeof suite.isValidPublicKey(k)).toBe('boolean');
          return (await suite.verify(k, m, s)) === false;
        },
      ),
      { numRuns: 300 },
    );
  });

  it('well-formed but random keys and signatures never throw and never verify (fast-check)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(0x02, 0x03),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 64, maxLength: 64 }),
        messages,
        async (prefix, x, s, m) => (await suite.verify(concatBytes(Uint8Array.of(prefix), x), m, s)) === false,
      ),
      { numRuns: 200 },
    );
  });

  it('an injected SM3 that throws at verify time gives false, not an exception', async () => {
    let armed = false;
    const flaky = sm2Suite({
      sm3: (d) => {
        if (armed) throw new Error('hash unit failed');
        return sm3(d);
      },
    });
    const { pub, m, s } = await fixture();
    armed = true;
    expect(await flaky.verify(pub, m, s)).toBe(false);
  });
});

describe('private key import', () => {
  it('refuses scalars out of [1, n-2] and wrong lengths with ProtocolError(bad_key)', async () => {
    const bad = [
      fromHex(hex32(0n)),
      fromHex(hex32(n - 1n)),
      fromHex(hex32(n)),
      fromHex(hex32(n + 1n)),
      fromHex(hex32(2n ** 256n - 1n)),
      new Uint8Array(0),
      new Uint8Array(31).fill(1),
      new Uint8Array(33).fill(1),
    ];
    for (const raw of bad) await expectProtocolError(suite.importPrivateKey(raw), 'bad_key');
  });

  it('sm2Scheme.publicKey and za refuse bad input with ProtocolError', async () => {
    const scheme = sm2Scheme();
    await expectProtocolError(() => scheme.publicKey(fromHex(hex32(n - 1n))), 'bad_key');
    await expectProtocolError(() => scheme.za(Uint8Array.of(0x04), ascii('id')), 'bad_key');
    const pub = scheme.publicKey(fromHex(hex32(7n)));
    await expectProtocolError(() => scheme.za(pub, new Uint8Array(SM2_USER_ID_BYTES_MAX + 1)), 'too_large');
  });
});
