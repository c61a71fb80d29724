/**
 * The published test vectors (docs/vectors/*.json, written once by scripts/make-vectors.mjs and
 * committed) against this implementation, with the Node provider and with the WebCrypto provider.
 *
 * Valid vectors must decode to exactly the expected fields, verify in their context, and re-encode
 * to the same signed bytes (to the same bytes outright where the signature is deterministic:
 * Ed25519, and the unsigned upload batch). Invalid vectors must fail at exactly the stated stage
 * (decode or verify) with exactly the stated error code. SHA256SUMS pins every file, so an edited
 * vector fails here even if it still happens to pass, and the coverage checks fail if an object
 * type, a suite or an error code loses its vectors.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  CODE_LABEL,
  CREDENTIAL_LABEL,
  type CryptoProvider,
  codeToText,
  DENY_LIST_LABEL,
  DENY_TYPES,
  decodeCode,
  decodeCredential,
  decodeDenyList,
  decodeRecord,
  decodeRiskPolicy,
  decodeTerminalCertificate,
  decodeTrustList,
  decodeUploadBatch,
  denyEntries,
  encodeUploadBatch,
  fromHex,
  makeCode,
  OBJECT_TYPE,
  type ObjectType,
  POLICY_LABEL,
  PROTOCOL_ERROR_CODES,
  ProtocolError,
  RECORD_LABEL,
  type RootKey,
  recordHash,
  SIGNATURE_BYTES,
  SUITES,
  type Signer,
  type SuiteName,
  signCredential,
  signDenyList,
  signRecord,
  signRiskPolicy,
  signTerminalCertificate,
  signTrustList,
  TERMINAL_CERT_LABEL,
  TRUST_LIST_LABEL,
  type TrustList,
  textToCode,
  textToCodeBytes,
  toHex,
  verifyChain,
  verifyCode,
  verifyCredentialSignature,
  checkCredentialValidity,
  verifyDenyList,
  verifyRecordSignature,
  verifyRiskPolicy,
  verifyTerminalCertificate,
  verifyTrustList,
} from '../src/index.js';
import { nodeCrypto } from '../src/node.js';
import { webCrypto } from '../src/web.js';

// ---------------------------------------------------------------------------------------------
// The JSON, read strictly: a malformed vector file is a failure, never a skipped vector.

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

function isObject(v: Json | undefined): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
function obj(v: Json | undefined, what: string): JsonObject {
  if (!isObject(v)) throw new Error(`${what}: not an object`);
  return v;
}
function arr(v: Json | undefined, what: string): Json[] {
  if (!Array.isArray(v)) throw new Error(`${what}: not an array`);
  return v;
}
function str(v: Json | undefined, what: string): string {
  if (typeof v !== 'string') throw new Error(`${what}: not a string`);
  return v;
}
function num(v: Json | undefined, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw new Error(`${what}: not an integer`);
  return v;
}
function suiteName(v: Json | undefined, what: string): SuiteName {
  const s = str(v, what);
  const found = SUITES.find((x) => x === s);
  if (found === undefined) throw new Error(`${what}: unknown suite ${s}`);
  return found;
}

const OBJECTS = ['trust-list', 'credential', 'code', 'terminal-certificate', 'record', 'upload-batch', 'deny-list', 'risk-policy'] as const;
type ObjectName = (typeof OBJECTS)[number];

/** Each file's object, its header type and the label its signatures are made over (none for the batch). */
const OBJECT_INFO: { readonly [O in ObjectName]: { readonly type: ObjectType; readonly label: Uint8Array | null } } = {
  'trust-list': { type: 'trustList', label: TRUST_LIST_LABEL },
  credential: { type: 'credential', label: CREDENTIAL_LABEL },
  code: { type: 'code', label: CODE_LABEL },
  'terminal-certificate': { type: 'terminalCertificate', label: TERMINAL_CERT_LABEL },
  record: { type: 'record', label: RECORD_LABEL },
  'upload-batch': { type: 'uploadBatch', label: null },
  'deny-list': { type: 'denyList', label: DENY_LIST_LABEL },
  'risk-policy': { type: 'riskPolicy', label: POLICY_LABEL },
};

interface KeyEntry {
  readonly suite: SuiteName;
  readonly privateKey: string;
  readonly publicKey: string;
}

interface Vector {
  readonly name: string;
  readonly suite: SuiteName;
  readonly suites: readonly SuiteName[];
  readonly valid: boolean;
  /** Exactly one of hex and text. */
  readonly input: Uint8Array | string;
  readonly context: JsonObject;
  readonly signer: string | undefined;
  readonly expect: JsonObject;
}

interface VectorFile {
  readonly file: string;
  readonly object: ObjectName;
  readonly raw: JsonObject;
  readonly keys: ReadonlyMap<string, KeyEntry>;
  readonly trustLists: ReadonlyMap<string, { hex: string; roots: RootKey[]; verifyAt: number }>;
  readonly vectors: readonly Vector[];
}

const DIR = new URL('../../../docs/vectors/', import.meta.url);
const FILE_NAMES = readdirSync(DIR)
  .filter((f) => f.endsWith('.json'))
  .sort();

function parseRoots(v: Json | undefined, what: string): RootKey[] {
  return arr(v, what).map((r, i) => {
    const o = obj(r, `${what}[${i}]`);
    return { keyId: num(o.keyId, 'keyId'), suite: suiteName(o.suite, 'suite'), publicKey: fromHex(str(o.publicKey, 'publicKey')) };
  });
}

function parseVector(v: Json, where: string): Vector {
  const o = obj(v, where);
  const hasHex = typeof o.hex === 'string';
  const hasText = typeof o.text === 'string';
  if (hasHex === hasText) throw new Error(`${where}: needs exactly one of hex and text`);
  const valid = o.valid;
  if (typeof valid !== 'boolean') throw new Error(`${where}: valid is not a boolean`);
  return {
    name: str(o.name, `${where}.name`),
    suite: suiteName(o.suite, `${where}.suite`),
    suites: arr(o.suites, `${where}.suites`).map((s) => suiteName(s, `${where}.suites`)),
    valid,
    input: hasHex ? fromHex(str(o.hex, 'hex')) : str(o.text, 'text'),
    context: obj(o.context, `${where}.context`),
    signer: o.signer === undefined ? undefined : str(o.signer, `${where}.signer`),
    expect: obj(o.expect, `${where}.expect`),
  };
}

function loadFile(file: string): VectorFile {
  const text = readFileSync(new URL(file, DIR), 'utf8');
  const raw = obj(JSON.parse(text), file);
  const objectName = str(raw.object, `${file}.object`);
  const object = OBJECTS.find((x) => x === objectName);
  if (object === undefined || file !== `${object}.json`) throw new Error(`${file}: object ${objectName}`);
  const keys = new Map<string, KeyEntry>();
  for (const [name, k] of Object.entries(obj(raw.keys, `${file}.keys`))) {
    const o = obj(k, name);
    keys.set(name, { suite: suiteName(o.suite, name), privateKey: str(o.privateKey, name), publicKey: str(o.publicKey, name) });
  }
  const trustLists = new Map<string, { hex: string; roots: RootKey[]; verifyAt: number }>();
  for (const [name, t] of Object.entries(obj(raw.trustLists, `${file}.trustLists`))) {
    const o = obj(t, name);
    trustLists.set(name, { hex: str(o.hex, name), roots: parseRoots(o.roots, name), verifyAt: num(o.verifyAt, name) });
  }
  const vectors = arr(raw.vectors, `${file}.vectors`).map((v, i) => parseVector(v, `${file}.vectors[${i}]`));
  return { file, object, raw, keys, trustLists, vectors };
}

const FILES = FILE_NAMES.map(loadFile);

// ---------------------------------------------------------------------------------------------
// Decoded objects as JSON, the way the vectors write them: bytes in hex, no `bytes`/`signed` views,
// deny-list columns as entries.

function plain(v: unknown): Json {
  if (v instanceof Uint8Array) return toHex(v);
  if (Array.isArray(v)) return v.map(plain);
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' || v === null) return v;
  if (typeof v === 'object') {
    const out: JsonObject = {};
    for (const [k, x] of Object.entries(v)) {
      if (k === 'bytes' || k === 'signed' || k === 'tags' || k === 'ids') continue;
      out[k] = plain(x);
    }
    if ('tags' in v && 'ids' in v && v.tags instanceof Uint8Array && v.ids instanceof Float64Array) {
      out.entries = plain(denyEntries({ tags: v.tags, ids: v.ids }));
    }
    return out;
  }
  throw new Error(`plain: cannot express ${typeof v} as JSON`);
}

// ---------------------------------------------------------------------------------------------
// Running one vector: decode, verify in its context, and (valid ones) re-encode.

type Outcome =
  | { readonly ok: true; readonly decoded: unknown; readonly bytes: Uint8Array }
  | { readonly ok: false; readonly stage: 'decode' | 'verify'; readonly error: string };

interface Runner {
  run(input: Uint8Array | string): Promise<Outcome>;
  /** Encodes the decoded object again with the vector's signer; returns the new bytes. */
  reencode(input: Uint8Array | string): Promise<Uint8Array>;
  /** Checks beyond the fields: QR text, record hashes. */
  extra(input: Uint8Array | string): void;
}

function runner<T extends { readonly bytes: Uint8Array }>(p: {
  decode(input: Uint8Array | string): T;
  verify(o: T): Promise<void> | void;
  reencode(o: T): Promise<Uint8Array>;
  extra?(o: T): void;
}): Runner {
  return {
    async run(input) {
      let o: T;
      try {
        o = p.decode(input);
      } catch (e) {
        if (e instanceof ProtocolError) return { ok: false, stage: 'decode', error: e.code };
        throw e;
      }
      try {
        await p.verify(o);
      } catch (e) {
        if (e instanceof ProtocolError) return { ok: false, stage: 'verify', error: e.code };
        throw e;
      }
      return { ok: true, decoded: o, bytes: o.bytes };
    },
    reencode: (input) => p.reencode(p.decode(input)),
    extra: (input) => p.extra?.(p.decode(input)),
  };
}

const bytesInput = (input: Uint8Array | string): Uint8Array => {
  if (typeof input === 'string') throw new Error('this object has no text form');
  return input.slice();
};

class Context {
  private readonly signers = new Map<string, Promise<Signer>>();
  private readonly lists = new Map<string, Promise<TrustList>>();
  constructor(
    readonly crypto: CryptoProvider,
    readonly file: VectorFile,
  ) {}

  signer(name: string | undefined): Promise<Signer> {
    if (name === undefined) throw new Error('valid vector without a signer');
    let s = this.signers.get(name);
    if (s === undefined) {
      const k = this.file.keys.get(name);
      if (k === undefined) throw new Error(`no key ${name}`);
      s = this.crypto.suite(k.suite).importPrivateKey(fromHex(k.privateKey));
      this.signers.set(name, s);
    }
    return s;
  }

  /** A context trust list, verified against its pinned root before anything relies on it. */
  trustList(name: Json | undefined): Promise<TrustList> {
    const key = str(name, 'context.trustList');
    let l = this.lists.get(key);
    if (l === undefined) {
      const t = this.file.trustLists.get(key);
      if (t === undefined) throw new Error(`no trust list ${key}`);
      l = (async () => {
        const list = decodeTrustList(fromHex(t.hex));
        await verifyTrustList(list, t.roots, this.crypto, t.verifyAt);
        return list;
      })();
      this.lists.set(key, l);
    }
    return l;
  }
}

function runnerFor(ctx: Context, v: Vector): Runner {
  const c = v.context;
  const crypto = ctx.crypto;
  const optNum = (x: Json | undefined): number | undefined => (x === undefined ? undefined : num(x, 'context'));
  switch (ctx.file.object) {
    case 'trust-list':
      return runner({
        decode: (i) => decodeTrustList(bytesInput(i)),
        verify: (o) => verifyTrustList(o, parseRoots(c.roots, 'context.roots'), crypto, num(c.nowS, 'nowS'), optNum(c.heldVersion)),
        reencode: async (o) => (await signTrustList(o, await ctx.signer(v.signer))).bytes,
      });
    case 'credential':
      return runner({
        decode: (i) => decodeCredential(bytesInput(i)),
        verify: async (o) => {
          await verifyCredentialSignature(o, await ctx.trustList(c.trustList), crypto);
          checkCredentialValidity(o, num(c.nowS, 'nowS'), num(c.skewS, 'skewS'));
        },
        reencode: async (o) => (await signCredential(o, await ctx.signer(v.signer))).bytes,
      });
    case 'code':
      return runner({
        decode: (i) => (typeof i === 'string' ? textToCode(i) : decodeCode(i.slice())),
        verify: async (o) =>
          verifyCode(o, {
            trust: await ctx.trustList(c.trustList),
            crypto,
            nowS: num(c.nowS, 'nowS'),
            windowS: num(c.windowS, 'windowS'),
            skewS: num(c.skewS, 'skewS'),
          }),
        reencode: async (o) => (await makeCode(o.credential, await ctx.signer(v.signer), o.time, o.counter)).bytes,
        extra: (o) => {
          const qr = str(v.expect.qr, 'expect.qr');
          expect(codeToText(o)).toBe(qr);
          expect(num(v.expect.qrChars, 'expect.qrChars')).toBe(qr.length);
          expect(toHex(textToCodeBytes(qr))).toBe(toHex(o.bytes));
        },
      });
    case 'terminal-certificate':
      return runner({
        decode: (i) => decodeTerminalCertificate(bytesInput(i)),
        verify: async (o) => verifyTerminalCertificate(o, await ctx.trustList(c.trustList), crypto, num(c.nowS, 'nowS')),
        reencode: async (o) => (await signTerminalCertificate(o, await ctx.signer(v.signer))).bytes,
      });
    case 'record':
      return runner({
        decode: (i) => decodeRecord(bytesInput(i)),
        verify: async (o) => {
          await verifyRecordSignature(o, fromHex(str(c.terminalPublicKey, 'terminalPublicKey')), crypto);
          verifyChain([o], num(c.afterSequence, 'afterSequence'), fromHex(str(c.afterHash, 'afterHash')), crypto);
        },
        reencode: async (o) => (await signRecord(o, await ctx.signer(v.signer))).bytes,
        extra: (o) => expect(toHex(recordHash(o, crypto))).toBe(str(v.expect.hash, 'expect.hash')),
      });
    case 'upload-batch':
      return runner({
        decode: (i) => decodeUploadBatch(bytesInput(i)),
        verify: async (o) => {
          for (const r of o.records) await verifyRecordSignature(r, fromHex(str(c.terminalPublicKey, 'terminalPublicKey')), crypto);
          verifyChain(o.records, num(c.afterSequence, 'afterSequence'), fromHex(str(c.afterHash, 'afterHash')), crypto);
        },
        reencode: async (o) => encodeUploadBatch(o.terminalId, o.records),
        extra: (o) => {
          const hashes = o.records.map((r) => toHex(recordHash(r, crypto)));
          expect(hashes).toEqual(arr(v.expect.recordHashes, 'expect.recordHashes'));
          const last = verifyChain(o.records, num(c.afterSequence, 'afterSequence'), fromHex(str(c.afterHash, 'afterHash')), crypto);
          expect(toHex(last)).toBe(str(v.expect.lastHash, 'expect.lastHash'));
        },
      });
    case 'deny-list':
      return runner({
        decode: (i) => decodeDenyList(bytesInput(i)),
        verify: async (o) => verifyDenyList(o, await ctx.trustList(c.trustList), crypto, num(c.nowS, 'nowS')),
        reencode: async (o) => (await signDenyList(o, await ctx.signer(v.signer))).bytes,
      });
    case 'risk-policy':
      return runner({
        decode: (i) => decodeRiskPolicy(bytesInput(i)),
        verify: async (o) =>
          verifyRiskPolicy(o, await ctx.trustList(c.trustList), crypto, c.nowS === undefined ? o.issuedAt : num(c.nowS, 'nowS')),
        reencode: async (o) => (await signRiskPolicy(o, await ctx.signer(v.signer))).bytes,
      });
  }
}

async function checkValid(ctx: Context, v: Vector): Promise<void> {
  const r = runnerFor(ctx, v);
  const got = await r.run(v.input);
  if (!got.ok) expect.fail(`expected valid, got ${got.stage} ${got.error}`);
  expect(plain(got.decoded)).toEqual(v.expect.fields);
  if (typeof v.input !== 'string') expect(got.bytes.length).toBe(num(v.expect.length, 'expect.length'));
  r.extra(v.input);

  // Re-encode from the decoded values with the vector's own private key.
  const again = await r.reencode(v.input);
  const signedLength = (b: Uint8Array): number => (ctx.file.object === 'upload-batch' ? b.length : b.length - SIGNATURE_BYTES);
  expect(toHex(again.subarray(0, signedLength(again)))).toBe(toHex(got.bytes.subarray(0, signedLength(got.bytes))));
  const signerSuite = ctx.file.keys.get(v.signer ?? '')?.suite;
  if (ctx.file.object === 'upload-batch' || signerSuite === 'ed25519') {
    // Deterministic: the same bytes outright.
    expect(toHex(again)).toBe(toHex(got.bytes));
  } else {
    // A fresh randomised signature: different bytes, and they pass the same checks.
    const rerun = await r.run(again);
    expect(rerun.ok).toBe(true);
  }
}

async function checkInvalid(ctx: Context, v: Vector): Promise<void> {
  const got = await runnerFor(ctx, v).run(v.input);
  const stage = str(v.expect.stage, 'expect.stage');
  const error = str(v.expect.error, 'expect.error');
  expect(got.ok ? 'valid' : `${got.stage} ${got.error}`).toBe(`${stage} ${error}`);
}

// ---------------------------------------------------------------------------------------------

const PROVIDERS: readonly (readonly [string, CryptoProvider])[] = [
  ['node', nodeCrypto()],
  ['webcrypto', webCrypto()],
];

describe.each(PROVIDERS)('docs/vectors with the %s provider', (_provider, crypto) => {
  for (const file of FILES) {
    describe(file.file, () => {
      const ctx = new Context(crypto, file);

      it('every private key derives to its stated public key', async () => {
        for (const [name, k] of file.keys) {
          const s = await crypto.suite(k.suite).importPrivateKey(fromHex(k.privateKey));
          expect(toHex(s.publicKey), name).toBe(k.publicKey);
        }
      });

      it('every context trust list verifies against its pinned root', async () => {
        for (const name of file.trustLists.keys()) await ctx.trustList(name);
      });

      it.each(file.vectors.map((v) => [v.name, v] as const))('%s', async (_name, v) => {
        if (v.valid) await checkValid(ctx, v);
        else await checkInvalid(ctx, v);
      });
    });
  }
});

describe('docs/vectors files', () => {
  it('SHA256SUMS pins every vector file (regenerate with scripts/make-vectors.mjs, never edit by hand)', () => {
    const lines = readFileSync(new URL('SHA256SUMS', DIR), 'utf8').trim().split('\n');
    const pinned = new Map(lines.map((l) => [l.slice(66), l.slice(0, 64)] as const));
    expect([...pinned.keys()].sort()).toEqual(FILE_NAMES);
    for (const f of FILE_NAMES) {
      expect(
        createHash('sha256')
          .update(readFileSync(new URL(f, DIR)))
          .digest('hex'),
        f,
      ).toBe(pinned.get(f));
    }
  });

  it('cover all eight object types, one file each', () => {
    expect(FILES.map((f) => f.object).sort()).toEqual([...OBJECTS].sort());
  });

  it('state each object type, header byte and signature label as the implementation has them', () => {
    for (const f of FILES) {
      const info = OBJECT_INFO[f.object];
      const type = OBJECT_TYPE[info.type];
      expect(f.raw.objectType, f.file).toBe(type);
      expect(f.raw.header, f.file).toBe(((type << 4) | 1).toString(16).padStart(2, '0'));
      if (info.label === null) expect(f.raw.label, f.file).toBeNull();
      else expect(obj(f.raw.label, f.file).hex, f.file).toBe(toHex(info.label));
    }
  });

  it('have valid and invalid vectors for every suite in every file', () => {
    for (const f of FILES) {
      for (const s of SUITES) {
        expect(
          f.vectors.some((v) => v.valid && v.suite === s),
          `${f.file}: valid ${s}`,
        ).toBe(true);
        expect(
          f.vectors.some((v) => !v.valid && v.suite === s),
          `${f.file}: invalid ${s}`,
        ).toBe(true);
      }
      expect(new Set(f.vectors.map((v) => v.name)).size, `${f.file}: names are unique`).toBe(f.vectors.length);
    }
  });

  it('exercise every error code that parsing and verifying can raise', () => {
    const seen = new Set<string>();
    for (const f of FILES) for (const v of f.vectors) if (!v.valid) seen.add(str(v.expect.error, v.name));
    for (const code of seen) expect(PROTOCOL_ERROR_CODES).toContain(code);
    // Not raised by any decoder or verifier: bad_key (private-key import), stale_list and bad_base (terminal rules).
    const terminalOnly = new Set(['bad_key', 'stale_list', 'bad_base']);
    expect([...seen].sort()).toEqual(PROTOCOL_ERROR_CODES.filter((c) => !terminalOnly.has(c)).sort());
  });
});

// ---------------------------------------------------------------------------------------------
// Deny-list delta application: a rule for terminals (docs/protocol.md), not a function of this
// package. The reference below is the rule as written; the cases must agree with it and with the
// signed full and delta vectors they are taken from.

interface HeldList {
  readonly version: number;
  readonly entries: readonly { type: string; id: number }[];
}

function applyDelta(
  held: HeldList,
  delta: { listVersion: number; baseVersion: number; entries: readonly { type: string; id: number; op: string }[] },
): HeldList | 'bad_base' {
  if (delta.baseVersion !== held.version) return 'bad_base';
  const key = (e: { type: string; id: number }): string => `${e.type}:${e.id}`;
  const set = new Map(held.entries.map((e) => [key(e), { type: e.type, id: e.id }] as const));
  for (const e of delta.entries) {
    if (e.op === 'add') set.set(key(e), { type: e.type, id: e.id });
    else set.delete(key(e));
  }
  const order = new Map<string, number>(DENY_TYPES.map((t, i) => [t, i]));
  const typeIndex = (t: string): number => order.get(t) ?? -1;
  const entries = [...set.values()].sort((a, b) => typeIndex(a.type) - typeIndex(b.type) || a.id - b.id);
  return { version: delta.listVersion, entries };
}

describe('deny-list delta application cases', () => {
  const file = FILES.find((f) => f.object === 'deny-list');
  const cases = arr(file?.raw.applications, 'applications').map((c, i) => obj(c, `applications[${i}]`));
  const entriesOf = (v: Json | undefined, what: string) =>
    arr(v, what).map((e) => {
      const o = obj(e, what);
      return { type: str(o.type, 'type'), id: num(o.id, 'id'), op: typeof o.op === 'string' ? o.op : 'add' };
    });

  it.each(cases.map((c) => [str(c.name, 'name'), c] as const))('%s', (_name, c) => {
    const heldJson = obj(c.held, 'held');
    const held = {
      version: num(heldJson.version, 'version'),
      entries: entriesOf(heldJson.entries, 'held.entries').map(({ type, id }) => ({ type, id })),
    };
    const d = obj(c.delta, 'delta');
    const result = applyDelta(held, {
      listVersion: num(d.listVersion, 'listVersion'),
      baseVersion: num(d.baseVersion, 'baseVersion'),
      entries: entriesOf(d.entries, 'delta.entries'),
    });
    const want = obj(c.expect, 'expect');
    if (typeof want.error === 'string') expect(result).toBe(want.error);
    else
      expect(result).toEqual({
        version: num(want.version, 'version'),
        entries: entriesOf(want.entries, 'expect.entries').map(({ type, id }) => ({ type, id })),
      });
  });

  it('start from the signed valid-full and valid-delta vectors', () => {
    const byName = (n: string): Vector => {
      const v = file?.vectors.find((x) => x.name === n);
      if (v === undefined) throw new Error(n);
      return v;
    };
    const first = cases[0];
    if (first === undefined) throw new Error('no cases');
    const full = obj(byName('p256/valid-full').expect.fields, 'fields');
    const delta = obj(byName('p256/valid-delta').expect.fields, 'fields');
    const held = obj(first.held, 'held');
    expect(held.version).toBe(full.listVersion);
    expect(entriesOf(held.entries, 'held')).toEqual(entriesOf(full.entries, 'full'));
    const d = obj(first.delta, 'delta');
    expect([d.listVersion, d.baseVersion]).toEqual([delta.listVersion, delta.baseVersion]);
    expect(entriesOf(d.entries, 'delta').sort((a, b) => a.id - b.id)).toEqual(
      entriesOf(delta.entries, 'delta').sort((a, b) => a.id - b.id),
    );
  });
});
